/* checkpoint.c — checkpoints as safetensors files: an 8-byte little-endian
 * header length N, N bytes of JSON header, then the raw tensor data.
 *
 *   {"__metadata__": {"epoch": "2", ...},
 *    "dense1.W": {"dtype": "F32", "shape": [36, 16], "data_offsets": [0, 2304]}, ...}
 *
 * The format is the one other tools (Python's safetensors, the Hugging Face
 * hub) read, so nnc's weights go wherever the user wants them. A file may
 * come from anywhere, so reading treats it as hostile: the header length is
 * capped, the JSON is parsed by jansson (not by hand), every field is type-
 * checked, sizes are overflow-checked, and the tensors' byte ranges must tile
 * the data exactly (no gap, no overlap, nothing outside the file), as the
 * safetensors reference implementation requires. The data is read tensor by
 * tensor when asked for, after the caller has matched the header against
 * what it expects: what a file declares costs nothing until then.
 *
 * Writing is atomic: a temporary file in the target's directory, fsync,
 * rename over the target, fsync of the directory. A kill at any moment
 * leaves either the old checkpoint or the new one, never a mixture.
 *
 * Tensor data is stored in the host's byte order, which must be little-
 * endian (the format's); nnc targets x86-64 and AArch64 Linux.
 */
#include "nnrt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this host is not"
#endif

/* Bytes of a tensor's data, false on overflow. */
static bool tensor_bytes(const NnrtTensor *t, size_t *out) {
    size_t n = t->f64 ? sizeof(double) : sizeof(float);
    for (int d = 0; d < t->rank; d++)
        if (t->dims[d] < 0 || __builtin_mul_overflow(n, (size_t)t->dims[d], &n))
            return false;
    *out = n;
    return true;
}

/* ---------------------------------------------------------------- writing */

/* The JSON header, padded with spaces to a multiple of 8 bytes (the format
 * allows trailing spaces; aligned data lets readers map it). NULL on
 * overflow or out of memory. */
static char *make_header(const NnrtTensor *t, size_t nt, const NnrtMeta *meta, size_t nmeta,
                         size_t *len, char *err, size_t errlen) {
    json_t *root = json_object(), *md = json_object();
    bool ok = root && md && json_object_set(root, "__metadata__", md) == 0;
    for (size_t i = 0; ok && i < nmeta; i++)
        ok = json_object_set_new(md, meta[i].key, json_string(meta[i].value)) == 0;
    size_t off = 0;
    for (size_t i = 0; ok && i < nt; i++) {
        size_t bytes, end;
        if (!tensor_bytes(&t[i], &bytes) || __builtin_add_overflow(off, bytes, &end)) {
            ok = nnrt_fail(err, errlen, "tensor '%s' is too large", t[i].name);
            break;
        }
        json_t *shape = json_array();
        for (int d = 0; shape && d < t[i].rank; d++)
            json_array_append_new(shape, json_integer(t[i].dims[d]));
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", t[i].f64 ? "F64" : "F32", "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)end);
        ok = e && json_object_set_new(root, t[i].name, e) == 0;
        off = end;
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(md);
    json_decref(root);
    if (!text) {
        if (ok || (errlen && !err[0]))
            nnrt_fail(err, errlen, "out of memory for the checkpoint header");
        return NULL;
    }
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *buf = malloc(padded);
    if (buf) {
        memcpy(buf, text, n);
        memset(buf + n, ' ', padded - n);
        *len = padded;
    } else {
        nnrt_fail(err, errlen, "out of memory for the checkpoint header");
    }
    free(text);
    return buf;
}

bool nnrt_ckpt_save(const char *path, const NnrtTensor *t, size_t nt, const NnrtMeta *meta,
                    size_t nmeta, char *err, size_t errlen) {
    if (errlen)
        err[0] = 0;
    size_t hlen;
    char *header = make_header(t, nt, meta, nmeta, &hlen, err, errlen);
    if (!header)
        return false;
    NnrtAtomic a;
    if (!nnrt_atomic_begin(&a, path, err, errlen)) {
        free(header);
        return false;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    bool ok = fwrite(lenbuf, 1, 8, a.f) == 8 && fwrite(header, 1, hlen, a.f) == hlen;
    for (size_t i = 0; ok && i < nt; i++) {
        size_t bytes;
        ok = tensor_bytes(&t[i], &bytes) && fwrite(t[i].data, 1, bytes, a.f) == bytes;
    }
    free(header);
    return nnrt_atomic_end(&a, ok, "the checkpoint", err, errlen);
}

/* ---------------------------------------------------------------- reading */

void nnrt_ckpt_free(NnrtCkpt *c) {
    for (size_t i = 0; i < c->ntensors; i++)
        free((char *)c->tensors[i].name);
    for (size_t i = 0; i < c->nmeta; i++) {
        free((char *)c->meta[i].key);
        free((char *)c->meta[i].value);
    }
    free(c->tensors);
    free(c->meta);
    free(c->offset);
    if (c->fd >= 0)
        close(c->fd);
    *c = (NnrtCkpt){.fd = -1};
}

/* A tensor's byte range, for the tiling check. */
typedef struct Range {
    size_t begin, end, tensor;
} Range;

static int range_cmp(const void *a, const void *b) {
    const Range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* A JSON integer that is a valid size, or false. */
static bool json_size(const json_t *v, size_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (size_t)json_integer_value(v);
    return true;
}

/* One entry "name": {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
static bool parse_tensor(const char *path, const char *name, json_t *v, NnrtTensor *t, Range *r,
                         char *err, size_t errlen) {
    json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dtype) || !json_is_array(shape) ||
        !json_is_array(offs) || json_array_size(offs) != 2 || json_object_size(v) != 3)
        return nnrt_fail(err, errlen, "%s: tensor '%s' is not {\"dtype\", \"shape\", "
                    "\"data_offsets\": [begin, end]}", path, name);
    t->f64 = strcmp(json_string_value(dtype), "F64") == 0;
    if (strcmp(json_string_value(dtype), "F32") != 0 && !t->f64)
        return nnrt_fail(err, errlen, "%s: tensor '%s' has dtype %s; nnc reads F32 and F64 only", path, name,
                    json_string_value(dtype));
    if (json_array_size(shape) > NNRT_IDX_MAX_RANK)
        return nnrt_fail(err, errlen, "%s: tensor '%s' has rank %zu; at most %d is supported", path,
                    name, json_array_size(shape), NNRT_IDX_MAX_RANK);
    t->rank = (int)json_array_size(shape);
    for (int d = 0; d < t->rank; d++) {
        size_t dim;
        if (!json_size(json_array_get(shape, (size_t)d), &dim) || dim > INT64_MAX)
            return nnrt_fail(err, errlen, "%s: tensor '%s': dimension %d is not a non-negative "
                        "integer", path, name, d);
        t->dims[d] = (int64_t)dim;
    }
    size_t bytes;
    if (!tensor_bytes(t, &bytes))
        return nnrt_fail(err, errlen, "%s: tensor '%s': its size overflows", path, name);
    if (!json_size(json_array_get(offs, 0), &r->begin) ||
        !json_size(json_array_get(offs, 1), &r->end) || r->end < r->begin)
        return nnrt_fail(err, errlen, "%s: tensor '%s': data_offsets are not two integers "
                    "0 <= begin <= end", path, name);
    if (r->end - r->begin != bytes)
        return nnrt_fail(err, errlen, "%s: tensor '%s': data_offsets [%zu, %zu] hold %zu bytes, "
                    "its shape needs %zu", path, name, r->begin, r->end, r->end - r->begin,
                    bytes);
    return true;
}

/* Fills c from the parsed header; data_bytes is the size of the data part. */
static bool parse_header(const char *path, json_t *root, size_t data_bytes, NnrtCkpt *c,
                         Range **ranges, char *err, size_t errlen) {
    if (!json_is_object(root))
        return nnrt_fail(err, errlen, "%s: the header is not a JSON object", path);
    size_t n = json_object_size(root);
    c->tensors = calloc(n ? n : 1, sizeof *c->tensors);
    *ranges = calloc(n ? n : 1, sizeof **ranges);
    if (!c->tensors || !*ranges)
        return nnrt_fail(err, errlen, "%s: out of memory", path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v))
                return nnrt_fail(err, errlen, "%s: __metadata__ is not an object", path);
            size_t m = json_object_size(v);
            c->meta = calloc(m ? m : 1, sizeof *c->meta);
            if (!c->meta)
                return nnrt_fail(err, errlen, "%s: out of memory", path);
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv))
                    return nnrt_fail(err, errlen, "%s: metadata '%s' is not a string", path, mk);
                NnrtMeta *e = &c->meta[c->nmeta++];
                e->key = strdup(mk);
                e->value = strdup(json_string_value(mv));
                if (!e->key || !e->value)
                    return nnrt_fail(err, errlen, "%s: out of memory", path);
            }
            continue;
        }
        NnrtTensor *t = &c->tensors[c->ntensors];
        Range *r = &(*ranges)[c->ntensors];
        if (!parse_tensor(path, key, v, t, r, err, errlen))
            return false;
        if (!(t->name = strdup(key)))
            return nnrt_fail(err, errlen, "%s: out of memory", path);
        r->tensor = c->ntensors++;
    }
    /* The ranges must tile [0, data_bytes): sorted, each begins where the
     * previous one ended, the last ends at the end of the file. */
    qsort(*ranges, c->ntensors, sizeof **ranges, range_cmp);
    size_t at = 0;
    for (size_t i = 0; i < c->ntensors; i++) {
        const Range *r = &(*ranges)[i];
        const char *name = c->tensors[r->tensor].name;
        if (r->begin < at)
            return nnrt_fail(err, errlen, "%s: tensor '%s' at bytes [%zu, %zu) overlaps the one "
                        "before it (which ends at %zu)", path, name, r->begin, r->end, at);
        if (r->begin > at)
            return nnrt_fail(err, errlen, "%s: a gap of %zu bytes before tensor '%s' at [%zu, %zu)",
                        path, r->begin - at, name, r->begin, r->end);
        if (r->end > data_bytes)
            return nnrt_fail(err, errlen, "%s: tensor '%s' at bytes [%zu, %zu) is past the end of "
                        "the data (%zu bytes; the file is truncated?)", path, name, r->begin,
                        r->end, data_bytes);
        at = r->end;
    }
    if (at != data_bytes)
        return nnrt_fail(err, errlen, "%s: %zu bytes of data after the last tensor", path,
                    data_bytes - at);
    return true;
}

/* n bytes at offset `at` of the file. */
static bool read_all(int fd, void *p, size_t n, uint64_t at) {
    char *c = p;
    while (n > 0) {
        ssize_t r = pread(fd, c, n, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        c += r;
        n -= (size_t)r;
        at += (uint64_t)r;
    }
    return true;
}

bool nnrt_ckpt_load(const char *path, NnrtCkpt *c, char *err, size_t errlen) {
    *c = (NnrtCkpt){.path = path, .fd = -1};
    /* Not blocking: opening a FIFO for reading waits for a writer, and the
     * type is checked next (O_NONBLOCK means nothing to a regular file). */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return nnrt_fail(err, errlen, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return nnrt_fail(err, errlen, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    c->fd = fd;
    unsigned char lenbuf[8];
    if (size < 8 || !read_all(fd, lenbuf, 8, 0)) {
        nnrt_ckpt_free(c);
        return nnrt_fail(err, errlen, "%s: %zu bytes, too short for a safetensors header length",
                    path, size);
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)lenbuf[i] << (8 * i);
    if (hlen > NNRT_CKPT_MAX_HEADER) {
        nnrt_ckpt_free(c);
        return nnrt_fail(err, errlen, "%s: header of %llu bytes is over the %u-byte limit (not a "
                    "checkpoint, or a hostile one)", path, (unsigned long long)hlen,
                    (unsigned)NNRT_CKPT_MAX_HEADER);
    }
    if (hlen > size - 8) {
        nnrt_ckpt_free(c);
        return nnrt_fail(err, errlen, "%s: header of %llu bytes, but only %zu bytes follow the "
                    "length (truncated file?)", path, (unsigned long long)hlen, size - 8);
    }
    size_t data_bytes = size - 8 - (size_t)hlen;
    char *header = malloc(hlen ? hlen : 1);
    if (!header || !read_all(fd, header, hlen, 8)) {
        free(header);
        nnrt_ckpt_free(c);
        return nnrt_fail(err, errlen, "%s: cannot read the header", path);
    }
    json_error_t jerr;
    json_t *root = json_loadb(header, hlen, JSON_REJECT_DUPLICATES, &jerr);
    free(header);
    if (!root) {
        nnrt_ckpt_free(c);
        return nnrt_fail(err, errlen, "%s: the header is not valid JSON: %s (at byte %d)", path,
                    jerr.text, jerr.position);
    }
    Range *ranges = NULL;
    bool ok = parse_header(path, root, data_bytes, c, &ranges, err, errlen);
    json_decref(root);
    if (ok && !(c->offset = calloc(c->ntensors ? c->ntensors : 1, sizeof *c->offset)))
        ok = nnrt_fail(err, errlen, "%s: out of memory", path);
    for (size_t i = 0; ok && i < c->ntensors; i++)
        c->offset[ranges[i].tensor] = 8 + hlen + ranges[i].begin;
    free(ranges);
    if (!ok)
        nnrt_ckpt_free(c);
    return ok;
}

bool nnrt_ckpt_read(const NnrtCkpt *c, const NnrtTensor *t, void *dst, char *err, size_t errlen) {
    size_t bytes = 0;
    (void)tensor_bytes(t, &bytes); /* checked by nnrt_ckpt_load against the file's size */
    errno = 0;
    if (!read_all(c->fd, dst, bytes, c->offset[t - c->tensors]))
        return nnrt_fail(err, errlen, "%s: cannot read the %zu bytes of tensor '%s'%s%s", c->path, bytes,
                         t->name, errno ? ": " : " (the file is shorter than when it was opened)",
                         errno ? strerror(errno) : "");
    return true;
}

const NnrtTensor *nnrt_ckpt_tensor(const NnrtCkpt *c, const char *name) {
    for (size_t i = 0; i < c->ntensors; i++)
        if (!strcmp(c->tensors[i].name, name))
            return &c->tensors[i];
    return NULL;
}

const char *nnrt_ckpt_meta(const NnrtCkpt *c, const char *key) {
    for (size_t i = 0; i < c->nmeta; i++)
        if (!strcmp(c->meta[i].key, key))
            return c->meta[i].value;
    return NULL;
}
