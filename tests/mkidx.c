/* mkidx.c — makes IDX files for the lit tests, so they need no downloaded
 * data and run in milliseconds:
 *
 *   mkidx OUT_DIR [--n N] [--test-n N] [--shape HxW] [--classes K]
 *                 [--seed S] [--gzip] [--type u8|f32]
 *       a synthetic dataset in the MNIST layout and names. Each class has a
 *       fixed random prototype (from the seed) and a sample is its class's
 *       prototype plus Gaussian noise, so a model can learn it and a test
 *       can assert that accuracy goes up. --test-n 0 writes no test set.
 *       OUT_DIR is created if it does not exist (its parent must).
 *   mkidx --raw FILE --type T --dims D1,D2,... [--values V1,V2,...] [--gzip]
 *       one exact file (T: u8 i8 i16 i32 f32 f64); values default to 0, 1, 2...
 *   mkidx --bad KIND FILE
 *       a malformed file, to check nnc's messages. KIND: empty, header
 *       (truncated dims), badmagic, badtype, rank0, rank9, short, long,
 *       overflow, gztrunc (gzip cut in half), gzcorrupt (gzip with a wrong CRC).
 *
 * Output is a pure function of the arguments. Files are written through
 * zlib either way ("wbT" writes them uncompressed).
 */
#include "nnrt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Noise std of a sample around its prototype, in uint8 units. */
#define NOISE_STD 40.0

static const char usage[] =
    "usage: mkidx OUT_DIR [--n N] [--test-n N] [--shape HxW] [--classes K] [--seed S]\n"
    "                     [--gzip] [--type u8|f32]\n"
    "       mkidx --raw FILE --type u8|i8|i16|i32|f32|f64 --dims D1,D2,... "
    "[--values V1,...] [--gzip]\n"
    "       mkidx --bad empty|header|badmagic|badtype|rank0|rank9|short|long|overflow|"
    "gztrunc|gzcorrupt FILE\n";

static _Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("mkidx: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ---------------------------------------------------------------- writing */

typedef struct Writer {
    gzFile gz;
    const char *path;
} Writer;

static Writer writer_open(const char *path, bool gzip) {
    Writer w = {gzopen(path, gzip ? "wb9" : "wbT"), path};
    if (!w.gz)
        fatal("%s: %s", path, errno ? strerror(errno) : "cannot open");
    return w;
}

static void put(Writer *w, const void *p, size_t n) {
    if (n > 0 && gzwrite(w->gz, p, (unsigned)n) != (int)n) {
        int code;
        fatal("%s: %s", w->path, gzerror(w->gz, &code));
    }
}

static void writer_close(Writer *w) {
    if (gzclose(w->gz) != Z_OK)
        fatal("%s: write failed", w->path);
}

static void put_be32(Writer *w, uint32_t v) {
    unsigned char b[4] = {v >> 24, v >> 16 & 0xff, v >> 8 & 0xff, v & 0xff};
    put(w, b, 4);
}

static void put_header(Writer *w, int type, int rank, const uint32_t *dims) {
    unsigned char magic[4] = {0, 0, (unsigned char)type, (unsigned char)rank};
    put(w, magic, 4);
    for (int i = 0; i < rank; i++)
        put_be32(w, dims[i]);
}

/* One element of type t, big-endian; v has been range-checked. */
static void put_elem(Writer *w, NnrtIdxType t, double v) {
    unsigned char b[8];
    uint64_t bits = 0;
    size_t n = 0;
    switch (t) {
    case NNRT_U8: case NNRT_U8_VALUE: bits = (uint8_t)v; n = 1; break;
    case NNRT_I8: bits = (uint8_t)(int8_t)v; n = 1; break;
    case NNRT_I16: bits = (uint16_t)(int16_t)v; n = 2; break;
    case NNRT_I32: bits = (uint32_t)(int32_t)v; n = 4; break;
    case NNRT_F32: { float f = (float)v; uint32_t u; memcpy(&u, &f, 4); bits = u; n = 4; break; }
    case NNRT_F64: memcpy(&bits, &v, 8); n = 8; break;
    }
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(bits >> (8 * (n - 1 - i)));
    put(w, b, n);
}

/* ---------------------------------------------------------------- parsing */

static unsigned long long parse_uint(const char *opt, const char *s, unsigned long long max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        fatal("%s: expected a whole number up to %llu, got '%s'", opt, max, s);
    return v;
}

static NnrtIdxType parse_type(const char *s) {
    static const struct { const char *name; NnrtIdxType t; } types[] = {
        {"u8", NNRT_U8}, {"i8", NNRT_I8}, {"i16", NNRT_I16},
        {"i32", NNRT_I32}, {"f32", NNRT_F32}, {"f64", NNRT_F64},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(s, types[i].name) == 0)
            return types[i].t;
    fatal("--type: expected u8, i8, i16, i32, f32 or f64, got '%s'", s);
}

/* "28x28" or "2,3": up to max numbers separated by sep. */
static int parse_dims(const char *opt, const char *s, char sep, uint32_t *dims, int max) {
    int n = 0;
    const char *p = s;
    for (;;) {
        char num[32];
        size_t len = strcspn(p, (char[]){sep, '\0'});
        if (n == max || len == 0 || len >= sizeof num)
            fatal("%s: expected up to %d numbers separated by '%c', got '%s'", opt, max, sep, s);
        memcpy(num, p, len);
        num[len] = '\0';
        dims[n++] = (uint32_t)parse_uint(opt, num, UINT32_MAX);
        if (!p[len])
            return n;
        p += len + 1;
    }
}

static bool fits(NnrtIdxType t, double v) {
    switch (t) {
    case NNRT_U8: case NNRT_U8_VALUE: return v == floor(v) && v >= 0 && v <= 255;
    case NNRT_I8: return v == floor(v) && v >= -128 && v <= 127;
    case NNRT_I16: return v == floor(v) && v >= -32768 && v <= 32767;
    case NNRT_I32: return v == floor(v) && v >= -2147483648.0 && v <= 2147483647.0;
    case NNRT_F32: case NNRT_F64: return true;
    }
    return false;
}

/* ---------------------------------------------------------------- datasets */

static char *join(const char *dir, const char *name, bool gzip) {
    size_t n = strlen(dir) + strlen(name) + 8;
    char *p = malloc(n);
    if (!p)
        fatal("out of memory");
    snprintf(p, n, "%s/%s%s", dir, name, gzip ? ".gz" : "");
    return p;
}

typedef struct Synth {
    const char *dir;
    size_t n, test_n, classes;
    uint32_t shape[NNRT_IDX_MAX_RANK - 1];
    int shape_rank;
    uint64_t seed;
    bool gzip;
    NnrtIdxType type;
} Synth;

/* Writes PREFIX-images-idxR-ubyte and PREFIX-labels-idx1-ubyte with n samples. */
static void write_split(const Synth *sy, const char *prefix, size_t n, const uint8_t *protos,
                        size_t sample_size, NnrtRng *rng) {
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx%d-ubyte", prefix, sy->shape_rank + 1);
    char *images_path = join(sy->dir, name, sy->gzip);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    char *labels_path = join(sy->dir, name, sy->gzip);
    Writer images = writer_open(images_path, sy->gzip), labels = writer_open(labels_path, sy->gzip);

    uint32_t dims[NNRT_IDX_MAX_RANK] = {(uint32_t)n};
    memcpy(dims + 1, sy->shape, (size_t)sy->shape_rank * sizeof dims[0]);
    put_header(&images, sy->type, sy->shape_rank + 1, dims);
    put_header(&labels, NNRT_U8, 1, dims);
    size_t elem = sy->type == NNRT_U8 ? 1 : 4;
    unsigned char *row = malloc(sample_size * elem);
    if (!row)
        fatal("out of memory");
    for (size_t i = 0; i < n; i++) {
        uint8_t label = (uint8_t)(nnrt_rng_uniform(rng) * (double)sy->classes);
        const uint8_t *proto = protos + (size_t)label * sample_size;
        for (size_t k = 0; k < sample_size; k++) {
            double v = round(proto[k] + NOISE_STD * nnrt_rng_normal(rng));
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            if (sy->type == NNRT_U8) {
                row[k] = (unsigned char)v;
            } else {
                float f = (float)v * (float)(1.0 / 255); /* the value nnc gives that uint8 pixel */
                uint32_t u;
                memcpy(&u, &f, 4);
                for (int b = 0; b < 4; b++)
                    row[4 * k + (size_t)b] = (unsigned char)(u >> (24 - 8 * b));
            }
        }
        put(&images, row, sample_size * elem);
        put(&labels, &label, 1);
    }
    free(row);
    writer_close(&images);
    writer_close(&labels);
    free(images_path);
    free(labels_path);
}

static int make_dataset(const Synth *sy) {
    size_t sample_size = 1;
    for (int i = 0; i < sy->shape_rank; i++)
        if (__builtin_mul_overflow(sample_size, (size_t)sy->shape[i], &sample_size))
            fatal("--shape: too large");
    size_t proto_bytes;
    if (__builtin_mul_overflow(sample_size, sy->classes, &proto_bytes))
        fatal("--shape and --classes: too large");
    uint8_t *protos = malloc(proto_bytes ? proto_bytes : 1);
    if (!protos)
        fatal("out of memory");
    NnrtRng rng;
    nnrt_rng_seed(&rng, sy->seed);
    for (size_t i = 0; i < proto_bytes; i++)
        protos[i] = (uint8_t)(nnrt_rng_uniform(&rng) * 256);
    write_split(sy, "train", sy->n, protos, sample_size, &rng);
    if (sy->test_n > 0)
        write_split(sy, "t10k", sy->test_n, protos, sample_size, &rng);
    free(protos);
    return 0;
}

/* ---------------------------------------------------------------- --raw */

/* 0, 1, 2, ... wrapped around to stay in the type's range. */
static double default_value(NnrtIdxType t, size_t i) {
    switch (t) {
    case NNRT_U8: case NNRT_U8_VALUE: return (double)(i % 256);
    case NNRT_I8: return (double)(i % 128);
    case NNRT_I16: return (double)(i % 32768);
    case NNRT_I32: return (double)(i % 2147483648u);
    case NNRT_F32: case NNRT_F64: break;
    }
    return (double)i;
}

static int make_raw(const char *path, NnrtIdxType t, const uint32_t *dims, int rank,
                    const char *values, bool gzip) {
    size_t count = 1;
    for (int i = 0; i < rank; i++)
        if (__builtin_mul_overflow(count, (size_t)dims[i], &count) || count > ((size_t)1 << 32))
            fatal("--dims: too many elements for a test file");
    Writer w = writer_open(path, gzip);
    put_header(&w, t, rank, dims);
    const char *p = values;
    for (size_t i = 0; i < count; i++) {
        double v;
        if (values) {
            char *end;
            v = strtod(p, &end);
            if (end == p || (*end != ',' && *end != '\0') || (*end == '\0' && i + 1 < count))
                fatal("--values: expected %zu numbers separated by ',', got '%s'", count, values);
            p = *end ? end + 1 : end;
        } else {
            v = default_value(t, i);
        }
        if (!fits(t, v))
            fatal("--values: %g does not fit %s", v, nnrt_idx_type_name(t));
        put_elem(&w, t, v);
    }
    if (values && *p)
        fatal("--values: more than the %zu numbers the dims hold", count);
    writer_close(&w);
    return 0;
}

/* ---------------------------------------------------------------- --bad */

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        fatal("%s: %s", path, strerror(errno));
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0)
        fatal("%s: %s", path, strerror(errno));
    unsigned char *p = malloc((size_t)st.st_size + 1);
    if (!p || fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        fatal("%s: cannot read back", path);
    fclose(f);
    *n = (size_t)st.st_size;
    return p;
}

static int make_bad(const char *kind, const char *path) {
    /* A valid 2 x 3 uint8 file, for the kinds that start from one. */
    static const unsigned char good[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    static const struct { const char *kind; unsigned char bytes[48]; size_t n; } fixed[] = {
        {"empty", {0}, 0},
        {"header", {0, 0, 8, 3, 0, 0, 0, 2, 0, 0}, 10},
        {"badmagic", {0x12, 0x34, 8, 1, 0, 0, 0, 3, 1, 2, 3}, 11},
        {"badtype", {0, 0, 0x0a, 1, 0, 0, 0, 3, 1, 2, 3}, 11},
        {"rank0", {0, 0, 8, 0, 1}, 5},
        {"rank9", {0, 0, 8, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1,
                   0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7}, 41},
        {"short", {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4}, 16},
        {"long", {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8}, 20},
        {"overflow", {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                      0xff, 0xff, 0xff, 0xff, 1}, 17},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (strcmp(kind, fixed[i].kind) == 0) {
            write_bytes(path, fixed[i].bytes, fixed[i].n);
            return 0;
        }
    }
    if (strcmp(kind, "gztrunc") != 0 && strcmp(kind, "gzcorrupt") != 0)
        fatal("--bad: unknown kind '%s'\n%s", kind, usage);
    Writer w = writer_open(path, true);
    put(&w, good, sizeof good);
    writer_close(&w);
    size_t n;
    unsigned char *gz = read_bytes(path, &n);
    if (strcmp(kind, "gztrunc") == 0)
        n /= 2;
    else
        gz[n - 8] ^= 0xff; /* the trailer's CRC-32: zlib reports "incorrect data check" */
    write_bytes(path, gz, n);
    free(gz);
    return 0;
}

/* ---------------------------------------------------------------- main */

static const char *need_arg(int argc, char **argv, int *i) {
    if (*i + 1 >= argc)
        fatal("%s needs an argument\n%s", argv[*i], usage);
    return argv[++*i];
}

int main(int argc, char **argv) {
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "--bad") == 0)
        return make_bad(argv[2], argv[3]);

    Synth sy = {.n = 1000, .test_n = 200, .classes = 10, .shape = {28, 28}, .shape_rank = 2,
                .seed = 1, .type = NNRT_U8};
    const char *raw = NULL, *values = NULL;
    uint32_t dims[NNRT_IDX_MAX_RANK];
    int rank = 0;
    bool type_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--n") == 0)
            sy.n = parse_uint(a, need_arg(argc, argv, &i), UINT32_MAX);
        else if (strcmp(a, "--test-n") == 0)
            sy.test_n = parse_uint(a, need_arg(argc, argv, &i), UINT32_MAX);
        else if (strcmp(a, "--classes") == 0)
            sy.classes = parse_uint(a, need_arg(argc, argv, &i), 256);
        else if (strcmp(a, "--seed") == 0)
            sy.seed = parse_uint(a, need_arg(argc, argv, &i), UINT64_MAX);
        else if (strcmp(a, "--shape") == 0)
            sy.shape_rank = parse_dims(a, need_arg(argc, argv, &i), 'x', sy.shape,
                                       NNRT_IDX_MAX_RANK - 1);
        else if (strcmp(a, "--gzip") == 0)
            sy.gzip = true;
        else if (strcmp(a, "--type") == 0) {
            sy.type = parse_type(need_arg(argc, argv, &i));
            type_given = true;
        } else if (strcmp(a, "--raw") == 0)
            raw = need_arg(argc, argv, &i);
        else if (strcmp(a, "--dims") == 0)
            rank = parse_dims(a, need_arg(argc, argv, &i), ',', dims, NNRT_IDX_MAX_RANK);
        else if (strcmp(a, "--values") == 0)
            values = need_arg(argc, argv, &i);
        else if (a[0] == '-' || sy.dir)
            fatal("unexpected argument '%s'\n%s", a, usage);
        else
            sy.dir = a;
    }
    if (raw) {
        if (!type_given || rank == 0 || sy.dir)
            fatal("--raw needs --type and --dims (and no OUT_DIR)\n%s", usage);
        return make_raw(raw, sy.type, dims, rank, values, sy.gzip);
    }
    if (!sy.dir)
        fatal("no OUT_DIR\n%s", usage);
    if (sy.type != NNRT_U8 && sy.type != NNRT_F32)
        fatal("--type: a dataset is u8 or f32");
    if (sy.classes == 0)
        fatal("--classes: at least 1");
    if (mkdir(sy.dir, 0777) != 0 && errno != EEXIST)
        fatal("%s: %s", sy.dir, strerror(errno));
    return make_dataset(&sy);
}
