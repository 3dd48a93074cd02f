/* npy.c — NumPy's .npy arrays (through nnrt_stream, so a gzipped one loads
 * too) and .npz archives of them (zip members stored or deflated), the
 * files Keras users have their data in (np.save, np.savez).
 *
 * An .npy file is "\x93NUMPY", a version, a header length, then a Python
 * dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (60000,
 * 784), } and the raw elements. Every numeric dtype is taken, in either
 * byte order and in C or Fortran order; elements land in the NnrtIdx type
 * holding them exactly (uint8 stays uint8 and is scaled like IDX's; the
 * types IDX has no code for, bool, uint16/32, int64/uint64 and float16,
 * become float32 or float64), in C order. The header is untrusted: its
 * size is capped, the shape's product overflow-checked, and the data read
 * as it arrives (nnrt_stream_read_body), never allocated from the header
 * alone. A zip's local headers are checked against the file's size.
 */
#include "nnrt.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* numpy writes headers of a few hundred bytes; this is far above that. */
#define NPY_MAX_HEADER 65536
#define NPY_MAX_BYTES ((uint64_t)16 << 30)

static uint32_t le(const unsigned char *p, int bytes) {
    uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The value of 'key' in the header dict: a pointer just after "'key':". */
static const char *dict_value(const char *h, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(h, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    return p;
}

bool nnrt_npy_header(NnrtStream *in, const char *path, NnrtIdx *out, NnrtNpyLayout *lay, char *err,
                     size_t errlen) {
    memset(out, 0, sizeof *out);
    unsigned char pre[12];
    long long got = nnrt_stream_read(in, pre, 10);
    if (got < 0)
        return false;
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6))
        return nnrt_fail(err, errlen, "%s: not an .npy file (it does not start with \\x93NUMPY and a header)", path);
    if (pre[6] < 1 || pre[6] > 3)
        return nnrt_fail(err, errlen, "%s: .npy format version %d.%d is not one nnc knows (1 to 3)", path, pre[6],
                         pre[7]);
    size_t hlen = le(pre + 8, 2);
    if (pre[6] > 1) {
        if (nnrt_stream_read(in, pre + 10, 2) != 2)
            return nnrt_fail(err, errlen, "%s: truncated .npy header", path);
        hlen = le(pre + 8, 4);
    }
    if (hlen > NPY_MAX_HEADER)
        return nnrt_fail(err, errlen, "%s: an .npy header of %zu bytes, over the %d nnc reads", path, hlen,
                         NPY_MAX_HEADER);
    char *h = malloc(hlen + 1);
    if (!h)
        return nnrt_fail(err, errlen, "%s: out of memory", path);
    got = nnrt_stream_read(in, h, hlen);
    if (got < 0 || (size_t)got < hlen) {
        free(h);
        return got < 0 ? false : nnrt_fail(err, errlen, "%s: truncated .npy header (%lld of %zu bytes)", path,
                                           got, hlen);
    }
    h[hlen] = '\0';
    bool ok = true;
    const char *d = dict_value(h, "descr"), *f = dict_value(h, "fortran_order"), *s = dict_value(h, "shape");
    if (!d || !f || !s || strlen(h) != hlen)
        ok = nnrt_fail(err, errlen, "%s: the .npy header is not a dict with 'descr', 'fortran_order' and "
                       "'shape'", path);
    /* descr: '<f4', '>i2', '|u1', ... : byte order, kind, size. */
    char order = 0, kind = 0;
    int size = 0, used = 0;
    if (ok && (sscanf(d, "'%c%c%d'%n", &order, &kind, &size, &used) != 3 || used == 0 ||
               !strchr("<>|=", order)))
        ok = nnrt_fail(err, errlen, "%s: dtype %.40s is not a plain numeric one (e.g. '<f4')", path, d);
    static const struct {
        char kind;
        int size;
        NnrtIdxType to;
    } types[] = {
        {'b', 1, NNRT_F32}, {'u', 1, NNRT_U8},  {'i', 1, NNRT_I8},  {'i', 2, NNRT_I16}, {'u', 2, NNRT_F32},
        {'i', 4, NNRT_I32}, {'u', 4, NNRT_F64}, {'i', 8, NNRT_F64}, {'u', 8, NNRT_F64}, {'f', 2, NNRT_F32},
        {'f', 4, NNRT_F32}, {'f', 8, NNRT_F64},
    };
    int t = -1;
    for (int k = 0; ok && k < (int)(sizeof types / sizeof types[0]); k++)
        if (types[k].kind == kind && types[k].size == size)
            t = k;
    if (ok && t < 0)
        ok = nnrt_fail(err, errlen, "%s: dtype '%c%c%d' is not a numeric type nnc reads (bool, int8 to int64, "
                       "uint8 to uint64, float16, float32, float64)", path, order, kind, size);
    if (ok && strncmp(f, "True", 4) && strncmp(f, "False", 5))
        ok = nnrt_fail(err, errlen, "%s: 'fortran_order' is neither True nor False", path);
    if (ok && *s != '(')
        ok = nnrt_fail(err, errlen, "%s: 'shape' is not a tuple", path);
    size_t count = 1;
    for (s = ok ? s + 1 : s; ok && *s != ')';) { /* s is NULL once !ok */
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == ')')
            break;
        char *end;
        errno = 0;
        unsigned long long v = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : (end = (char *)s, 0);
        if (end == s || errno || v > UINT32_MAX)
            ok = nnrt_fail(err, errlen, "%s: 'shape' holds something other than dimensions up to 4294967295",
                           path);
        else if (out->rank == NNRT_IDX_MAX_RANK)
            ok = nnrt_fail(err, errlen, "%s: an array of more than %d dimensions", path, NNRT_IDX_MAX_RANK);
        else if (__builtin_mul_overflow(count, (size_t)v, &count))
            ok = nnrt_fail(err, errlen, "%s: 'shape' declares more elements than memory can address", path);
        else
            out->dims[out->rank++] = (uint32_t)v;
        s = end;
        if (ok && *s != ',' && *s != ')' && *s != ' ')
            ok = nnrt_fail(err, errlen, "%s: 'shape' is not a tuple of dimensions", path);
    }
    if (ok && out->rank == 0)
        ok = nnrt_fail(err, errlen, "%s: a scalar (shape ()), not samples on a first axis", path);
    size_t bytes;
    if (ok && (__builtin_mul_overflow(count, (size_t)size, &bytes) || bytes > NPY_MAX_BYTES))
        ok = nnrt_fail(err, errlen, "%s: 'shape' declares over 16 GiB of data", path);
    if (ok) {
        out->type = types[t].to;
        out->count = count;
        out->elem_size = out->type == NNRT_U8 || out->type == NNRT_I8 ? 1 : out->type == NNRT_I16 ? 2
                         : out->type == NNRT_F64 ? 8 : 4;
        *lay = (NnrtNpyLayout){.kind = kind, .size = size, .big_endian = order == '>', .fortran = *f == 'T'};
    }
    free(h);
    return ok;
}

/* Element i of the file's data (its dtype, its byte order) as a double. */
static double decode(const unsigned char *p, const NnrtNpyLayout *lay) {
    unsigned char b[8];
    for (int k = 0; k < lay->size; k++)
        b[k] = p[lay->big_endian ? lay->size - 1 - k : k]; /* little-endian now */
    uint64_t u = 0;
    for (int k = lay->size - 1; k >= 0; k--)
        u = u << 8 | b[k];
    switch (lay->kind) {
    case 'b': return u != 0;
    case 'u': return (double)u;
    case 'i': { /* sign-extended from its size */
        int sh = 64 - 8 * lay->size;
        return (double)((int64_t)(u << sh) >> sh);
    }
    case 'f':
        if (lay->size == 8) {
            double v;
            memcpy(&v, &u, 8);
            return v;
        } else if (lay->size == 4) {
            float v;
            uint32_t w = (uint32_t)u;
            memcpy(&v, &w, 4);
            return v;
        } else { /* float16: sign, 5 bits of exponent, 10 of fraction */
            int e = (int)(u >> 10 & 31), m = (int)(u & 1023);
            double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
            return u >> 15 ? -v : v;
        }
    }
    return 0;
}

static void store(NnrtIdx *a, size_t i, double v) {
    unsigned char *p = (unsigned char *)a->data + i * a->elem_size;
    switch (a->type) {
    case NNRT_U8: case NNRT_U8_VALUE: *p = (unsigned char)v; return;
    case NNRT_I8: *p = (unsigned char)(int8_t)v; return;
    case NNRT_I16: { int16_t x = (int16_t)v; memcpy(p, &x, 2); return; }
    case NNRT_I32: { int32_t x = (int32_t)v; memcpy(p, &x, 4); return; }
    case NNRT_F32: { float x = (float)v; memcpy(p, &x, 4); return; }
    case NNRT_F64: memcpy(p, &v, 8); return;
    }
}

bool nnrt_npy_read_data(NnrtStream *in, const NnrtNpyLayout *lay, NnrtIdx *out, char *err, size_t errlen) {
    char declared[160];
    snprintf(declared, sizeof declared, "%zu elements of %c%d", out->count, lay->kind, lay->size);
    void *raw;
    if (!nnrt_stream_read_body(in, out->count * (size_t)lay->size, declared, &raw)) /* checked by the header */
        return false;
    /* Already as the type it becomes stores it (float32/64, int8/16/32,
     * uint8, in C order and the host's byte order): the bytes as they are.
     * The usual case, and 188 MB of float32 took 0.4 s element by element. */
    const uint16_t one = 1;
    bool host_big = *(const unsigned char *)&one == 0;
    bool same = (lay->kind == 'f' && lay->size >= 4) || (lay->kind == 'u' && lay->size == 1) ||
                (lay->kind == 'i' && lay->size <= 4);
    if (same && !lay->fortran && (lay->size == 1 || lay->big_endian == host_big)) {
        out->data = raw;
        return true;
    }
    out->data = malloc(out->count ? out->count * out->elem_size : 1);
    if (!out->data) {
        free(raw);
        return nnrt_fail(err, errlen, "out of memory for %zu elements", out->count);
    }
    /* In C order: element (i0, ..., ik) of a Fortran array is at
     * i0 + d0 * (i1 + d1 * (...)); idx counts in C order. */
    size_t idx[NNRT_IDX_MAX_RANK] = {0}, stride[NNRT_IDX_MAX_RANK];
    for (int k = 0, s = 1; k < out->rank; k++) {
        stride[k] = (size_t)s;
        s *= out->dims[k]; /* bounded by count, checked */
    }
    size_t src = 0;
    for (size_t i = 0; i < out->count; i++) {
        if (lay->fortran) {
            src = 0;
            for (int k = 0; k < out->rank; k++)
                src += idx[k] * stride[k];
            for (int k = out->rank - 1; k >= 0 && ++idx[k] == out->dims[k]; k--)
                idx[k] = 0;
        } else {
            src = i;
        }
        store(out, i, decode((const unsigned char *)raw + src * (size_t)lay->size, lay));
    }
    free(raw);
    return true;
}

/* ---------------------------------------------------------------- npz */

bool nnrt_npz_member(const unsigned char *zip, size_t size, const char *path, const char *name,
                     const unsigned char **data, size_t *csize, bool *deflated, char *err, size_t errlen) {
    char want[256];
    snprintf(want, sizeof want, "%s.npy", name);
    size_t at = 0;
    while (at + 30 <= size && le(zip + at, 4) == 0x04034b50) {
        const unsigned char *h = zip + at;
        unsigned flags = le(h + 6, 2), method = le(h + 8, 2);
        uint64_t cs = le(h + 18, 4), us = le(h + 22, 4);
        size_t nlen = le(h + 26, 2), xlen = le(h + 28, 2);
        if (at + 30 + nlen + xlen > size)
            return nnrt_fail(err, errlen, "%s: zip member header at byte %zu runs past the end of the file", path,
                             at);
        /* zip64: the sizes in the extra field (numpy writes every member so). */
        const unsigned char *x = h + 30 + nlen;
        for (size_t k = 0; k + 4 <= xlen;) {
            size_t id = le(x + k, 2), len = le(x + k + 2, 2);
            if (k + 4 + len > xlen)
                break;
            if (id == 1) {
                size_t q = k + 4;
                if (us == 0xffffffff && q + 8 <= k + 4 + len)
                    us = (uint64_t)le(x + q + 4, 4) << 32 | le(x + q, 4), q += 8;
                if (cs == 0xffffffff && q + 8 <= k + 4 + len)
                    cs = (uint64_t)le(x + q + 4, 4) << 32 | le(x + q, 4);
            }
            k += 4 + len;
        }
        size_t start = at + 30 + nlen + xlen;
        if (flags & 9)
            return nnrt_fail(err, errlen, "%s: zip member at byte %zu is %s, which nnc does not read", path, at,
                             flags & 1 ? "encrypted" : "written with a data descriptor (sizes after the data)");
        if (cs > size - start)
            return nnrt_fail(err, errlen, "%s: zip member at byte %zu declares %llu bytes, past the end of the "
                             "file", path, at, (unsigned long long)cs);
        if (nlen == strlen(want) && !memcmp(h + 30, want, nlen)) {
            if (method != 0 && method != 8)
                return nnrt_fail(err, errlen, "%s: member '%s' is compressed with method %u (nnc reads stored "
                                 "and deflated members)", path, want, method);
            *data = zip + start;
            *csize = (size_t)cs;
            *deflated = method == 8;
            return true;
        }
        at = start + (size_t)cs;
    }
    return nnrt_fail(err, errlen, "%s: no array '%s' in the archive (a member '%s')", path, name, want);
}
