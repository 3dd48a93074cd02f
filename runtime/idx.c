/* idx.c — IDX files (the MNIST container): the magic 00 00 TYPE RANK, RANK
 * big-endian uint32 dimensions, then the elements, big-endian, row-major.
 *
 * A file that starts like gzip is inflated (zlib's inflate, member after
 * member), any other is read as it is: compression is detected by content
 * and a renamed file still loads. The header is untrusted input: the size
 * arithmetic is overflow-checked and capped, the buffer grows as data
 * actually arrives (a 20-byte file that claims 16 GiB does not get 16 GiB),
 * and the data must be exactly as long as the header says, because a longer
 * file almost always means wrong dimensions rather than harmless padding.
 */
#include "nnrt.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Far above any dataset this tool is for, far below what a corrupt header
 * can ask for. */
#define IDX_MAX_BYTES ((uint64_t)16 << 30)
/* The first allocation for the data; it doubles up to the declared size. */
#define IDX_FIRST_CHUNK ((size_t)1 << 20)

const char *nnrt_idx_type_name(NnrtIdxType t) {
    switch (t) {
    case NNRT_U8: case NNRT_U8_VALUE: return "uint8";
    case NNRT_I8: return "int8";
    case NNRT_I16: return "int16";
    case NNRT_I32: return "int32";
    case NNRT_F32: return "float32";
    case NNRT_F64: return "float64";
    }
    return "unknown";
}

static size_t type_size(int t) {
    switch (t) {
    case NNRT_U8: case NNRT_U8_VALUE: case NNRT_I8: return 1;
    case NNRT_I16: return 2;
    case NNRT_I32: case NNRT_F32: return 4;
    case NNRT_F64: return 8;
    }
    return 0;
}

/* The file as a stream of bytes: as it is, or inflated if it starts like
 * gzip (1f 8b), one member after another as gzip -d reads them. Whatever
 * follows a member must be another: zlib's gzread ignored anything else
 * (gzip -t rejects it), so a file with trailing garbage loaded. The first
 * error is kept in err, and every later read fails. */
struct NnrtStream {
    FILE *f;
    const char *path;
    bool gzip, raw_deflate, in_member, failed; /* raw_deflate: one zip member (npz) */
    int members;     /* begun so far */
    z_stream z;      /* next_in/avail_in: the bytes of buf not consumed, raw files too */
    unsigned char ahead[8]; /* bytes peeked at (nnrt_stream_peek), read before the rest */
    size_t nahead, ahead_pos;
    char *err;
    size_t errlen;
    unsigned char buf[1 << 17];
};

/* Makes sure buf has bytes; false at the end of the file or on an error. */
static bool fill(NnrtStream *in) {
    if (in->z.avail_in)
        return true;
    size_t r = fread(in->buf, 1, sizeof in->buf, in->f);
    if (r == 0 && ferror(in->f)) {
        nnrt_fail(in->err, in->errlen, "%s: read error: %s", in->path, strerror(errno));
        in->failed = true;
    }
    in->z.next_in = in->buf;
    in->z.avail_in = (uInt)r;
    return r > 0;
}

/* Inflating failed with zlib's rc (Z_BUF_ERROR: the file ended inside a
 * member). Bytes after the first member that give no output are not another
 * member: trailing garbage, which gzip -t rejects too. */
static void inflate_failed(NnrtStream *in, int rc) {
    const char *msg = rc == Z_BUF_ERROR ? "the file ends inside it" : in->z.msg ? in->z.msg : "no message";
    if (rc == Z_MEM_ERROR)
        nnrt_fail(in->err, in->errlen, "%s: out of memory while decompressing", in->path);
    else if (in->members > 1 && in->z.total_out == 0)
        nnrt_fail(in->err, in->errlen, "%s: bytes after the gzip stream are not another gzip member "
                  "(zlib: %s); gzip -t rejects the file too", in->path, msg);
    else if (rc == Z_BUF_ERROR)
        nnrt_fail(in->err, in->errlen, "%s: the %s stream is truncated (%s)", in->path,
                  in->raw_deflate ? "deflate" : "gzip", msg);
    else
        nnrt_fail(in->err, in->errlen, "%s: the %s stream is corrupt (zlib: %s)", in->path,
                  in->raw_deflate ? "deflate" : "gzip", msg);
    in->failed = true;
}

/* Up to n bytes into dst; fewer only at the end of the data; -1 on an error. */
static long long read_full(NnrtStream *in, void *dst, size_t n) {
    unsigned char *out = dst;
    size_t got = 0;
    for (; got < n && in->ahead_pos < in->nahead; got++)
        out[got] = in->ahead[in->ahead_pos++];
    while (got < n && !in->failed) {
        if (!in->gzip) {
            if (!fill(in))
                break;
            size_t k = n - got < in->z.avail_in ? n - got : in->z.avail_in;
            memcpy(out + got, in->z.next_in, k);
            in->z.next_in += k;
            in->z.avail_in -= (uInt)k;
            got += k;
            continue;
        }
        if (!in->in_member) { /* between members: the end, or another */
            if (!fill(in))
                break;
            if (in->raw_deflate && in->members) { /* a zip member is one deflate stream */
                nnrt_fail(in->err, in->errlen, "%s: bytes follow the member's deflate stream", in->path);
                in->failed = true;
                break;
            }
            if (in->members++)
                inflateReset(&in->z); /* fails only on a stream never initialised */
            in->in_member = true;
        }
        if (!fill(in)) {
            if (!in->failed)
                inflate_failed(in, Z_BUF_ERROR);
            break;
        }
        size_t want = n - got < UINT_MAX ? n - got : UINT_MAX;
        in->z.next_out = out + got;
        in->z.avail_out = (uInt)want;
        int rc = inflate(&in->z, Z_NO_FLUSH);
        got += want - in->z.avail_out;
        if (rc == Z_STREAM_END)
            in->in_member = false;
        else if (rc != Z_OK && rc != Z_BUF_ERROR) /* BUF_ERROR: no progress this time, more input next */
            inflate_failed(in, rc);
    }
    return in->failed ? -1 : (long long)got;
}

/* "60000 x 28 x 28" */
static void format_dims(const uint32_t *dims, int rank, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < rank && used < len; i++) {
        int w = snprintf(buf + used, len - used, i ? " x %u" : "%u", (unsigned)dims[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static uint32_t load_be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Big-endian elements to host order, assembled byte by byte so the code is
 * the same on either host. */
static void to_host(unsigned char *p, size_t count, size_t elem_size) {
    for (size_t i = 0; i < count; i++, p += elem_size) {
        if (elem_size == 2) {
            uint16_t v = (uint16_t)(p[0] << 8 | p[1]);
            memcpy(p, &v, 2);
        } else if (elem_size == 4) {
            uint32_t v = load_be32(p);
            memcpy(p, &v, 4);
        } else if (elem_size == 8) {
            uint64_t v = (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
            memcpy(p, &v, 8);
        }
    }
}

/* Reads the header into out (type, rank, dims, count, elem_size). */
static bool read_header(NnrtStream *in, const char *path, NnrtIdx *out, char *err, size_t errlen) {
    unsigned char magic[4];
    long long got = read_full(in, magic, 4);
    if (got < 0)
        return false;
    if (got == 0)
        return nnrt_fail(err, errlen, "%s: empty file (expected an IDX header)", path);
    if (got < 4)
        return nnrt_fail(err, errlen, "%s: truncated header: %lld of the 4 magic bytes", path, got);
    if (magic[0] != 0 || magic[1] != 0)
        return nnrt_fail(err, errlen,
                    "%s: not an IDX file: magic bytes %02x %02x %02x %02x, expected 00 00 "
                    "then a type and a rank byte",
                    path, magic[0], magic[1], magic[2], magic[3]);
    if (type_size(magic[2]) == 0)
        return nnrt_fail(err, errlen,
                    "%s: unknown IDX element type 0x%02x (expected 0x08 uint8, 0x09 int8, "
                    "0x0b int16, 0x0c int32, 0x0d float32 or 0x0e float64)",
                    path, magic[2]);
    if (magic[3] < 1 || magic[3] > NNRT_IDX_MAX_RANK)
        return nnrt_fail(err, errlen, "%s: IDX rank %d is not supported (expected 1 to %d)", path,
                    magic[3], NNRT_IDX_MAX_RANK);
    out->type = (NnrtIdxType)magic[2];
    out->rank = magic[3];
    out->elem_size = type_size(magic[2]);

    unsigned char dimbuf[4 * NNRT_IDX_MAX_RANK];
    size_t dimbytes = 4 * (size_t)out->rank;
    got = read_full(in, dimbuf, dimbytes);
    if (got < 0)
        return false;
    if ((size_t)got < dimbytes)
        return nnrt_fail(err, errlen,
                    "%s: truncated header: rank %d needs %zu bytes of dimensions, the file "
                    "has %lld",
                    path, out->rank, dimbytes, got);
    /* Multiplied from the last dimension so that the per-sample size
     * (dims[1..]) is checked too, even when dims[0] is 0. */
    size_t count = 1;
    bool overflow = false;
    for (int i = out->rank - 1; i >= 0; i--) {
        out->dims[i] = load_be32(dimbuf + 4 * i);
        overflow |= __builtin_mul_overflow(count, (size_t)out->dims[i], &count);
    }
    char dims[160];
    format_dims(out->dims, out->rank, dims, sizeof dims);
    size_t bytes;
    if (overflow || __builtin_mul_overflow(count, out->elem_size, &bytes))
        return nnrt_fail(err, errlen, "%s: header declares %s %s, more than memory can address",
                    path, dims, nnrt_idx_type_name(out->type));
    if ((uint64_t)bytes > IDX_MAX_BYTES)
        return nnrt_fail(err, errlen,
                    "%s: header declares %s %s (%zu bytes), over the 16 GiB limit for an "
                    "IDX file",
                    path, dims, nnrt_idx_type_name(out->type), bytes);
    out->count = count;
    return true;
}

bool nnrt_stream_read_body(NnrtStream *in, size_t bytes, const char *declared, void **out) {
    size_t cap = bytes < IDX_FIRST_CHUNK ? bytes : IDX_FIRST_CHUNK;
    unsigned char *data = malloc(cap ? cap : 1);
    *out = NULL;
    if (!data)
        return nnrt_fail(in->err, in->errlen, "%s: out of memory (%zu bytes)", in->path, cap);
    size_t have = 0;
    for (;;) {
        long long r = read_full(in, data + have, cap - have);
        if (r > 0)
            have += (size_t)r;
        if (r < 0 || have < cap || cap == bytes)
            break;
        size_t next = cap > bytes / 2 ? bytes : cap * 2;
        unsigned char *grown = realloc(data, next);
        if (!grown) {
            free(data);
            return nnrt_fail(in->err, in->errlen, "%s: out of memory (%zu bytes)", in->path, next);
        }
        data = grown;
        cap = next;
    }
    if (in->failed) {
        free(data);
        return false;
    }
    if (have < bytes) {
        free(data);
        return nnrt_fail(in->err, in->errlen, "%s: header declares %s (%zu bytes) but the file holds %zu "
                    "byte%s of data", in->path, declared, bytes, have, have == 1 ? "" : "s");
    }

    /* Count what follows (up to a point: the number is for the message). */
    unsigned char probe[4096];
    size_t extra = 0;
    long long r;
    while (extra < ((size_t)1 << 20) && (r = read_full(in, probe, sizeof probe)) > 0)
        extra += (size_t)r;
    if (in->failed) {
        free(data);
        return false;
    }
    if (extra > 0) {
        free(data);
        return nnrt_fail(in->err, in->errlen, "%s: header declares %s (%zu bytes) but %s%zu more bytes "
                    "follow: the file is longer than its header declares", in->path, declared, bytes,
                    extra >= ((size_t)1 << 20) ? "at least " : "", extra);
    }
    *out = data;
    return true;
}

/* Reads exactly count * elem_size bytes of data, then checks that nothing
 * follows. */
static bool read_data(NnrtStream *in, NnrtIdx *idx) {
    char dims[160], declared[192];
    format_dims(idx->dims, idx->rank, dims, sizeof dims);
    snprintf(declared, sizeof declared, "%s %s", dims, nnrt_idx_type_name(idx->type));
    void *data;
    if (!nnrt_stream_read_body(in, idx->count * idx->elem_size /* checked by read_header */, declared, &data))
        return false;
    to_host(data, idx->count, idx->elem_size);
    idx->data = data;
    return true;
}

/* f (named `path` in messages) as a stream: inflated as gzip if it starts
 * like gzip, as raw deflate if `deflated` (a zip member), else as it is. */
static NnrtStream *stream_of(FILE *f, const char *path, bool deflated, char *err, size_t errlen) {
    NnrtStream *in = calloc(1, sizeof *in);
    if (!in) {
        fclose(f);
        nnrt_fail(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    *in = (NnrtStream){.path = path, .err = err, .errlen = errlen, .f = f, .raw_deflate = deflated};
    /* gzip or not, by the first two bytes (the first read fills buf). */
    in->gzip = deflated || (fill(in) && in->z.avail_in >= 2 && in->buf[0] == 0x1f && in->buf[1] == 0x8b);
    if (in->gzip && inflateInit2(&in->z, deflated ? -15 : 15 + 16) != Z_OK) { /* 16: a gzip wrapper */
        nnrt_fail(err, errlen, "%s: out of memory for decompressing", path);
        in->gzip = false;
        in->failed = true;
    }
    if (in->failed) {
        nnrt_stream_close(in);
        return NULL;
    }
    return in;
}

NnrtStream *nnrt_stream_open(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nnrt_fail(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    return stream_of(f, path, false, err, errlen);
}

NnrtStream *nnrt_stream_open_mem(const void *buf, size_t len, bool deflated, const char *name, char *err,
                                 size_t errlen) {
    /* fmemopen wants at least a byte: an empty member is read from one
     * byte that the stream is told is past its end. */
    static const unsigned char none[1];
    FILE *f = fmemopen((void *)(len ? buf : none), len ? len : 1, "rb");
    if (!f) {
        nnrt_fail(err, errlen, "%s: %s", name, strerror(errno));
        return NULL;
    }
    if (!len)
        fseek(f, 0, SEEK_END);
    return stream_of(f, name, deflated, err, errlen);
}

long long nnrt_stream_read(NnrtStream *in, void *dst, size_t n) { return read_full(in, dst, n); }

long long nnrt_stream_peek(NnrtStream *in, const unsigned char **bytes) {
    if (in->ahead_pos == in->nahead) {
        long long r = read_full(in, in->ahead, sizeof in->ahead);
        if (r < 0)
            return -1;
        in->nahead = (size_t)r;
        in->ahead_pos = 0;
    }
    *bytes = in->ahead + in->ahead_pos;
    return (long long)(in->nahead - in->ahead_pos);
}

void nnrt_stream_close(NnrtStream *in) {
    if (!in)
        return;
    if (in->gzip)
        inflateEnd(&in->z);
    fclose(in->f); /* reading: any error has been seen already */
    free(in);
}

bool nnrt_idx_header(NnrtStream *in, NnrtIdx *out) {
    memset(out, 0, sizeof *out);
    if (read_header(in, in->path, out, in->err, in->errlen))
        return true;
    memset(out, 0, sizeof *out);
    return false;
}

NnrtStream *nnrt_idx_open(const char *path, NnrtIdx *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    NnrtStream *in = nnrt_stream_open(path, err, errlen);
    if (in && !nnrt_idx_header(in, out)) {
        nnrt_stream_close(in);
        return NULL;
    }
    return in;
}

bool nnrt_idx_read_data(NnrtStream *in, NnrtIdx *out, char *err, size_t errlen) {
    in->err = err;
    in->errlen = errlen;
    return read_data(in, out);
}

bool nnrt_idx_read(const char *path, NnrtIdx *out, char *err, size_t errlen) {
    NnrtStream *in = nnrt_idx_open(path, out, err, errlen);
    bool ok = in && nnrt_idx_read_data(in, out, err, errlen);
    nnrt_stream_close(in);
    if (!ok)
        memset(out, 0, sizeof *out);
    return ok;
}

void nnrt_idx_free(NnrtIdx *idx) {
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

double nnrt_idx_get(const NnrtIdx *idx, size_t i) {
    const unsigned char *p = (const unsigned char *)idx->data + i * idx->elem_size;
    switch (idx->type) {
    case NNRT_U8: case NNRT_U8_VALUE: return *p;
    case NNRT_I8: return (int8_t)*p;
    case NNRT_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case NNRT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case NNRT_F32: { float v; memcpy(&v, p, 4); return v; }
    case NNRT_F64: { double v; memcpy(&v, p, 8); return v; }
    }
    return 0;
}

size_t nnrt_idx_sample_size(const NnrtIdx *idx) {
    size_t n = 1;
    for (int i = 1; i < idx->rank; i++)
        n *= idx->dims[i]; /* checked when the header was read */
    return n;
}
