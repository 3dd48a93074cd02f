/* test_idx.c — unit tests of the runtime (runtime/nnrt.h): the IDX reader
 * on every element type and on every kind of malformed file, finding label
 * and test files, loading and batching, the RNG and initialisers, progress
 * output, the training loop on fake step functions, and the JSON report.
 *
 * IDX files are built byte by byte here (not with the reader's own code), so
 * the byte order and the header layout are checked against the format, not
 * against themselves. Files go to the current directory (ctest runs this in
 * the build tree) and are removed; the find/report tests use a temp dir.
 */
#ifndef _GNU_SOURCE /* LLVM's compile definitions may have set it already */
#define _GNU_SOURCE /* posix_openpt and friends, mkdtemp, nftw */
#endif
#include "nnrt.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>


/* ---------------------------------------------------------------- building files */

typedef struct Buf {
    unsigned char p[4096];
    size_t n;
} Buf;

static void put8(Buf *b, unsigned v) { b->p[b->n++] = (unsigned char)v; }

static void put_be(Buf *b, uint64_t v, size_t bytes) {
    for (size_t i = 0; i < bytes; i++)
        put8(b, (unsigned)(v >> (8 * (bytes - 1 - i)) & 0xff));
}

static void put_header(Buf *b, int type, int rank, const uint32_t *dims) {
    put8(b, 0);
    put8(b, 0);
    put8(b, (unsigned)type);
    put8(b, (unsigned)rank);
    for (int i = 0; i < rank; i++)
        put_be(b, dims[i], 4);
}

/* Writes n bytes to path, gzip-compressed or not. */
static void write_file(const char *path, const void *p, size_t n, bool gzip) {
    if (gzip) {
        gzFile gz = gzopen(path, "wb");
        if (!gz || (n && gzwrite(gz, p, (unsigned)n) != (int)n) || gzclose(gz) != Z_OK)
            printf("cannot write %s\n", path);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
            printf("cannot write %s\n", path);
    }
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *p = malloc(1 << 16);
    *n = fread(p, 1, (1 << 16) - 1, f);
    p[*n] = '\0';
    fclose(f);
    return p;
}

static const char *tmp_dir;

static void tmp_path(char *out, size_t len, const char *name) {
    snprintf(out, len, "%s/%s", tmp_dir, name);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Writes the bytes to a file in the current directory, reads it back. */
static bool read_bytes(const char *name, const Buf *b, bool gzip, NnrtIdx *idx, char *err,
                       size_t errlen) {
    write_file(name, b->p, b->n, gzip);
    bool ok = nnrt_idx_read(name, idx, err, errlen);
    unlink(name);
    return ok;
}

/* ---------------------------------------------------------------- idx: valid files */

static void test_types(void) {
    static const struct {
        NnrtIdxType t;
        size_t size;
        double v[5];
    } cases[] = {
        {NNRT_U8, 1, {0, 1, 127, 128, 255}},
        {NNRT_I8, 1, {-128, -1, 0, 1, 127}},
        {NNRT_I16, 2, {-32768, -2, 0, 258, 32767}},
        {NNRT_I32, 4, {-2147483648.0, -70000, 0, 65539, 2147483647}},
        {NNRT_F32, 4, {-1.5, 0, 3.25, 0.0009765625, FLT_MAX}},
        {NNRT_F64, 8, {-1e300, 0.1, 3.141592653589793, -0.0, 5e-324}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int gzip = 0; gzip < 2; gzip++) {
            Buf b = {.n = 0};
            uint32_t dims[1] = {5};
            put_header(&b, cases[c].t, 1, dims);
            for (int i = 0; i < 5; i++) {
                double v = cases[c].v[i];
                uint64_t bits;
                if (cases[c].t == NNRT_F32) {
                    float f = (float)v;
                    uint32_t u;
                    memcpy(&u, &f, 4);
                    bits = u;
                } else if (cases[c].t == NNRT_F64) {
                    memcpy(&bits, &v, 8);
                } else {
                    bits = (uint64_t)(int64_t)v; /* two's complement, truncated by put_be */
                }
                put_be(&b, bits, cases[c].size);
            }
            NnrtIdx idx;
            char err[256] = "";
            bool ok = read_bytes(gzip ? "test_idx_type.idx.gz" : "test_idx_type.idx", &b,
                                 gzip, &idx, err, sizeof err);
            if (!CHECK(ok)) {
                printf("  %s: %s\n", nnrt_idx_type_name(cases[c].t), err);
                continue;
            }
            CHECK(idx.type == cases[c].t && idx.rank == 1 && idx.dims[0] == 5 &&
                  idx.count == 5 && idx.elem_size == cases[c].size);
            bool same = true;
            for (int i = 0; i < 5; i++)
                same &= nnrt_idx_get(&idx, (size_t)i) == cases[c].v[i];
            if (!CHECK(same))
                printf("  type %s gzip %d: values differ\n", nnrt_idx_type_name(cases[c].t),
                       gzip);
            nnrt_idx_free(&idx);
            CHECK(idx.data == NULL);
        }
    }
    /* Host order in memory: 258 is 01 02 in the file. */
    Buf b = {.n = 0};
    put_header(&b, NNRT_I16, 1, (uint32_t[]){2});
    put_be(&b, 258, 2);
    put_be(&b, 0xfffe, 2);
    CHECK(b.p[8] == 0x01 && b.p[9] == 0x02);
    NnrtIdx idx;
    char err[256];
    if (CHECK(read_bytes("test_idx_order.idx", &b, false, &idx, err, sizeof err))) {
        CHECK(((int16_t *)idx.data)[0] == 258 && ((int16_t *)idx.data)[1] == -2);
        nnrt_idx_free(&idx);
    }
    CHECK(strcmp(nnrt_idx_type_name(NNRT_U8), "uint8") == 0);
    CHECK(strcmp(nnrt_idx_type_name(NNRT_F64), "float64") == 0);
}

static void test_ranks(void) {
    static const uint32_t shapes[][3] = {{6, 0, 0}, {2, 3, 0}, {1, 2, 3}};
    for (int rank = 1; rank <= 3; rank++) {
        Buf b = {.n = 0};
        put_header(&b, NNRT_U8, rank, shapes[rank - 1]);
        for (int i = 0; i < 6; i++)
            put8(&b, (unsigned)(10 + i));
        NnrtIdx idx;
        char err[256];
        if (!CHECK(read_bytes("test_idx_rank.idx", &b, rank == 2, &idx, err, sizeof err))) {
            printf("  rank %d: %s\n", rank, err);
            continue;
        }
        CHECK(idx.rank == rank && idx.count == 6);
        CHECK(nnrt_idx_sample_size(&idx) == 6 / shapes[rank - 1][0]);
        CHECK(nnrt_idx_get(&idx, 0) == 10 && nnrt_idx_get(&idx, 5) == 15);
        for (int i = 0; i < rank; i++)
            CHECK(idx.dims[i] == shapes[rank - 1][i]);
        nnrt_idx_free(&idx);
    }
    /* The largest rank, and a dimension of 0 (an empty file is valid IDX). */
    Buf b = {.n = 0};
    put_header(&b, NNRT_F32, 8, (uint32_t[]){1, 1, 1, 1, 1, 1, 1, 2});
    put_be(&b, 0x3f800000, 4);
    put_be(&b, 0x40000000, 4);
    NnrtIdx idx;
    char err[256];
    if (CHECK(read_bytes("test_idx_rank8.idx", &b, false, &idx, err, sizeof err))) {
        CHECK(idx.rank == 8 && idx.count == 2 && nnrt_idx_get(&idx, 1) == 2.0);
        nnrt_idx_free(&idx);
    }
    b.n = 0;
    put_header(&b, NNRT_U8, 2, (uint32_t[]){0, 5});
    if (CHECK(read_bytes("test_idx_zero.idx", &b, true, &idx, err, sizeof err))) {
        CHECK(idx.count == 0 && nnrt_idx_sample_size(&idx) == 5);
        nnrt_idx_free(&idx);
    }
}

/* gzip or not is decided by content, whatever the name says. */
static void test_detection(void) {
    Buf b = {.n = 0};
    put_header(&b, NNRT_U8, 1, (uint32_t[]){3});
    put8(&b, 7), put8(&b, 8), put8(&b, 9);
    NnrtIdx idx;
    char err[256];
    if (CHECK(read_bytes("test_idx_gz_named_raw.idx", &b, true, &idx, err, sizeof err))) {
        CHECK(nnrt_idx_get(&idx, 2) == 9);
        nnrt_idx_free(&idx);
    }
    if (CHECK(read_bytes("test_idx_raw_named_gz.idx.gz", &b, false, &idx, err, sizeof err))) {
        CHECK(nnrt_idx_get(&idx, 2) == 9);
        nnrt_idx_free(&idx);
    }
}

/* ---------------------------------------------------------------- idx: malformed files */

/* Expects the file to be rejected with a message that starts with its path
 * and contains `want`; prints the message, so a reader can judge it. */
static void expect_reject(const char *path, const char *want, int line) {
    NnrtIdx idx;
    char err[512] = "";
    bool ok = nnrt_idx_read(path, &idx, err, sizeof err);
    bool good = !ok && strncmp(err, path, strlen(path)) == 0 && strstr(err, want) &&
                idx.data == NULL && !strchr(err, '\n');
    check(good, want, __FILE__, line);
    printf("  %s %s\n", good ? "rejected:" : "got:", ok ? "(accepted)" : err);
    if (ok)
        nnrt_idx_free(&idx);
}

static void reject_bytes(const Buf *b, bool gzip, const char *want, int line) {
    const char *path = gzip ? "test_idx_bad.idx.gz" : "test_idx_bad.idx";
    write_file(path, b->p, b->n, gzip);
    expect_reject(path, want, line);
    unlink(path);
}

static void test_malformed(void) {
    Buf b = {.n = 0};
    reject_bytes(&b, false, "empty file", __LINE__);
    reject_bytes(&b, true, "empty file", __LINE__);

    put8(&b, 0), put8(&b, 0), put8(&b, 8);
    reject_bytes(&b, false, "truncated header", __LINE__);
    b.n = 0;
    put_header(&b, NNRT_U8, 3, (uint32_t[]){2, 2, 2});
    b.n -= 6; /* half of the dimensions */
    reject_bytes(&b, false, "truncated header: rank 3 needs 12 bytes", __LINE__);

    b.n = 0;
    put8(&b, 0x12), put8(&b, 0x34), put8(&b, 8), put8(&b, 1);
    put_be(&b, 1, 4), put8(&b, 0);
    reject_bytes(&b, false, "not an IDX file: magic bytes 12 34 08 01", __LINE__);
    b.p[0] = 0;
    reject_bytes(&b, false, "not an IDX file", __LINE__);

    b.n = 0;
    put_header(&b, 0x0a, 1, (uint32_t[]){1});
    put8(&b, 0);
    reject_bytes(&b, false, "unknown IDX element type 0x0a", __LINE__);

    b.n = 0;
    put_header(&b, NNRT_U8, 0, NULL);
    put8(&b, 1);
    reject_bytes(&b, false, "IDX rank 0 is not supported", __LINE__);
    b.n = 0;
    put_header(&b, NNRT_U8, 9, (uint32_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1});
    put8(&b, 1);
    reject_bytes(&b, true, "IDX rank 9 is not supported", __LINE__);

    b.n = 0;
    put_header(&b, NNRT_U8, 3, (uint32_t[]){0xffffffff, 0xffffffff, 0xffffffff});
    reject_bytes(&b, false, "more than memory can address", __LINE__);
    /* The per-sample size overflows even though the first dimension is 0. */
    b.n = 0;
    put_header(&b, NNRT_U8, 4, (uint32_t[]){0, 0xffffffff, 0xffffffff, 0xffffffff});
    reject_bytes(&b, false, "more than memory can address", __LINE__);
    b.n = 0;
    put_header(&b, NNRT_F64, 2, (uint32_t[]){0x80000000, 0x80000000});
    reject_bytes(&b, false, "more than memory can address", __LINE__);
    b.n = 0;
    put_header(&b, NNRT_U8, 3, (uint32_t[]){65536, 65536, 5});
    reject_bytes(&b, false, "over the 16 GiB limit", __LINE__);

    b.n = 0;
    put_header(&b, NNRT_U8, 2, (uint32_t[]){2, 3});
    put8(&b, 1), put8(&b, 2), put8(&b, 3), put8(&b, 4);
    reject_bytes(&b, false, "header declares 2 x 3 uint8 (6 bytes) but the file holds 4 bytes",
                 __LINE__);
    reject_bytes(&b, true, "but the file holds 4 bytes", __LINE__);
    b.n = 0;
    put_header(&b, NNRT_I32, 1, (uint32_t[]){3});
    put_be(&b, 1, 4), put_be(&b, 2, 4), put_be(&b, 3, 4), put8(&b, 9), put8(&b, 9);
    reject_bytes(&b, false, "2 more bytes follow: the file is longer than its header declares",
                 __LINE__);
    reject_bytes(&b, true, "longer than its header declares", __LINE__);
    /* A large short file: the reader must not trust the header's size. */
    b.n = 0;
    put_header(&b, NNRT_U8, 3, (uint32_t[]){60000, 28, 28});
    put8(&b, 0);
    reject_bytes(&b, true, "header declares 60000 x 28 x 28 uint8 (47040000 bytes) but the "
                 "file holds 1 byte of data", __LINE__);

    /* Broken gzip: cut short (in the data, and just before the trailer) and
     * corrupted (the CRC, and a byte in the middle of the deflate data). */
    b.n = 0;
    put_header(&b, NNRT_U8, 1, (uint32_t[]){2000});
    for (int i = 0; i < 2000; i++)
        put8(&b, (unsigned)(i * i % 251));
    const char *path = "test_idx_badgz.idx.gz";
    write_file(path, b.p, b.n, true);
    size_t n;
    unsigned char *gz = slurp(path, &n);
    if (CHECK(gz && n > 40)) {
        write_file(path, gz, n / 2, false);
        expect_reject(path, "the gzip stream is truncated", __LINE__);
        write_file(path, gz, n - 4, false);
        expect_reject(path, "the gzip stream is truncated", __LINE__);
        gz[n - 8] ^= 0xff;
        write_file(path, gz, n, false);
        expect_reject(path, "the gzip stream is corrupt", __LINE__);
        gz[n - 8] ^= 0xff;
        for (size_t i = n / 2; i < n / 2 + 4; i++)
            gz[i] ^= 0x55;
        write_file(path, gz, n, false);
        expect_reject(path, "", __LINE__);
    }
    free(gz);
    unlink(path);

    expect_reject("test_idx_no_such_file.idx", "No such file", __LINE__);
    expect_reject(".", "", __LINE__);
}

/* ---------------------------------------------------------------- dataset: finding files */

static void touch(const char *name) {
    char p[1024];
    tmp_path(p, sizeof p, name);
    write_file(p, "", 0, false);
}

static bool found(bool (*find)(const char *, char *, size_t), const char *from,
                  const char *want) {
    char in[1024], out[1024], exp[1024];
    tmp_path(in, sizeof in, from);
    bool ok = find(in, out, sizeof out);
    if (!want)
        return !ok;
    tmp_path(exp, sizeof exp, want);
    if (!ok || strcmp(out, exp) != 0) {
        printf("  from %s: got %s, expected %s\n", in, ok ? out : "(none)", exp);
        return false;
    }
    return true;
}

static void test_find(void) {
    char p[1024];
    tmp_path(p, sizeof p, "a");
    mkdir(p, 0755);
    tmp_path(p, sizeof p, "b");
    mkdir(p, 0755);
    tmp_path(p, sizeof p, "train-images");
    mkdir(p, 0755);

    /* a: everything gzip. */
    touch("a/train-images-idx3-ubyte.gz");
    touch("a/train-labels-idx1-ubyte.gz");
    touch("a/t10k-images-idx3-ubyte.gz");
    CHECK(found(nnrt_find_labels, "a/train-images-idx3-ubyte.gz", "a/train-labels-idx1-ubyte.gz"));
    CHECK(found(nnrt_find_labels, "a/train-images-idx3-ubyte", "a/train-labels-idx1-ubyte.gz"));
    CHECK(found(nnrt_find_test, "a/train-images-idx3-ubyte.gz", "a/t10k-images-idx3-ubyte.gz"));
    CHECK(found(nnrt_find_test, "a/train-images-idx3-ubyte", "a/t10k-images-idx3-ubyte.gz"));
    CHECK(found(nnrt_find_labels, "a/t10k-images-idx3-ubyte.gz", NULL));

    /* b: images gzip, labels raw; the test set named "test-". */
    touch("b/train-images-idx3-ubyte.gz");
    touch("b/train-labels-idx1-ubyte");
    touch("b/test-images-idx3-ubyte");
    touch("b/test-labels-idx1-ubyte.gz");
    CHECK(found(nnrt_find_labels, "b/train-images-idx3-ubyte.gz", "b/train-labels-idx1-ubyte"));
    CHECK(found(nnrt_find_test, "b/train-images-idx3-ubyte.gz", "b/test-images-idx3-ubyte"));
    CHECK(found(nnrt_find_labels, "b/test-images-idx3-ubyte", "b/test-labels-idx1-ubyte.gz"));
    /* The same suffix is preferred when both exist. */
    touch("b/train-labels-idx1-ubyte.gz");
    CHECK(found(nnrt_find_labels, "b/train-images-idx3-ubyte.gz",
                "b/train-labels-idx1-ubyte.gz"));

    /* Only the base name changes, not the directory; other ranks and
     * MNIST's "train-images.idx3-ubyte" spelling work too. */
    touch("train-images/train-images.idx4-ubyte");
    touch("train-images/train-labels.idx1-ubyte");
    touch("train-images/t10k-images.idx4-ubyte.gz");
    CHECK(found(nnrt_find_labels, "train-images/train-images.idx4-ubyte",
                "train-images/train-labels.idx1-ubyte"));
    CHECK(found(nnrt_find_test, "train-images/train-images.idx4-ubyte",
                "train-images/t10k-images.idx4-ubyte.gz"));

    /* Nothing there, nothing to replace, no room for the answer. */
    CHECK(found(nnrt_find_labels, "a/nothing-idx3-ubyte", NULL));
    CHECK(found(nnrt_find_labels, "a/data.bin", NULL));
    CHECK(found(nnrt_find_test, "a/images.gz", NULL));
    char in[1024], small[8];
    tmp_path(in, sizeof in, "a/train-images-idx3-ubyte.gz");
    CHECK(!nnrt_find_labels(in, small, sizeof small));
    CHECK(!nnrt_find_test(in, small, sizeof small));
}

/* ---------------------------------------------------------------- dataset: loading */

static void write_idx_u8(const char *path, int rank, const uint32_t *dims,
                         const unsigned char *v, size_t n, bool gzip) {
    Buf b = {.n = 0};
    put_header(&b, NNRT_U8, rank, dims);
    for (size_t i = 0; i < n; i++)
        put8(&b, v[i]);
    write_file(path, b.p, b.n, gzip);
}

static bool load_fails(const char *images, const char *labels, size_t classes,
                       const char *want) {
    NnrtDataset ds;
    char err[512] = "";
    bool ok = nnrt_dataset_load(images, labels, classes, &ds, err, sizeof err);
    printf("  %s %s\n", ok ? "accepted" : "rejected:", err);
    if (ok)
        nnrt_dataset_free(&ds);
    return !ok && strstr(err, want) && ds.images.data == NULL && ds.labels.data == NULL;
}

static void test_dataset(void) {
    static const unsigned char pixels[20] = {0,  255, 51, 1,  2,  3,  4,  5,  6,  7,
                                             8,  9,   10, 11, 12, 13, 14, 15, 16, 255};
    static const unsigned char labels[5] = {0, 1, 2, 9, 3};
    const char *im = "test_idx_ds_images.idx", *lb = "test_idx_ds_labels.idx.gz";
    write_idx_u8(im, 3, (uint32_t[]){5, 2, 2}, pixels, 20, false);
    write_idx_u8(lb, 1, (uint32_t[]){5}, labels, 5, true);

    NnrtDataset ds;
    char err[512];
    if (CHECK(nnrt_dataset_load(im, lb, 10, &ds, err, sizeof err))) {
        CHECK(ds.n == 5 && ds.sample_size == 4);
        CHECK(ds.images.type == NNRT_U8 && ds.images.elem_size == 1); /* stays uint8 */
        /* Batches: order respected, uint8 scaled by the nearest float (or
         * double) to 1/255, as model.c scales them in a step, 255
         * exactly 1. */
        uint32_t order[2] = {4, 0};
        float xf[8], yf[2];
        nnrt_batch_fill(&ds, order, 2, 4, false, xf, yf);
        CHECK(xf[0] == 14 * (1 / 255.0f) && xf[3] == 1.0f && xf[4] == 0.0f && xf[5] == 1.0f);
        CHECK(xf[6] == 51 * (1 / 255.0f) && fabsf(xf[6] - 0.2f) < 1e-7f);
        CHECK(yf[0] == 3 && yf[1] == 0);
        double xd[8], yd[2];
        nnrt_batch_fill(&ds, order, 2, 8, false, xd, yd);
        CHECK(xd[3] == 1.0 && xd[5] == 1.0 && xd[6] == 51 * (1 / 255.0) && fabs(xd[6] - 0.2) < 1e-16);
        CHECK(yd[0] == 3 && yd[1] == 0);
        /* raw_u8: the bytes as they are, labels as before. */
        unsigned char xr[8];
        nnrt_batch_fill(&ds, order, 2, 4, true, xr, yf);
        CHECK(!memcmp(xr, pixels + 16, 4) && !memcmp(xr + 4, pixels, 4) && yf[0] == 3 && yf[1] == 0);
        nnrt_dataset_free(&ds);
    } else {
        printf("  %s\n", err);
    }
    /* Other types are converted as they are, not scaled. */
    Buf b = {.n = 0};
    put_header(&b, NNRT_I16, 2, (uint32_t[]){2, 2});
    put_be(&b, 0xfffd, 2), put_be(&b, 300, 2), put_be(&b, 255, 2), put_be(&b, 0, 2);
    write_file("test_idx_ds_i16.idx", b.p, b.n, false);
    b.n = 0;
    put_header(&b, NNRT_F32, 1, (uint32_t[]){2});
    put_be(&b, 0x40000000, 4), put_be(&b, 0x3f800000, 4); /* 2.0, 1.0 */
    write_file("test_idx_ds_f32labels.idx", b.p, b.n, false);
    if (CHECK(nnrt_dataset_load("test_idx_ds_i16.idx", "test_idx_ds_f32labels.idx", 3, &ds,
                                err, sizeof err))) {
        float xf[4], yf[2];
        nnrt_batch_fill(&ds, (uint32_t[]){0, 1}, 2, 4, false, xf, yf);
        CHECK(xf[0] == -3 && xf[1] == 300 && xf[2] == 255 && yf[0] == 2 && yf[1] == 1);
        nnrt_dataset_free(&ds);
    }

    /* Mismatches. */
    const char *lb4 = "test_idx_ds_labels4.idx";
    write_idx_u8(lb4, 1, (uint32_t[]){4}, labels, 4, false);
    CHECK(load_fails(im, lb4, 10, "holds 5 samples but test_idx_ds_labels4.idx holds 4 labels"));
    const char *lb11 = "test_idx_ds_labels11.idx";
    write_idx_u8(lb11, 1, (uint32_t[]){5}, (const unsigned char[]){0, 1, 2, 11, 3}, 5, false);
    CHECK(load_fails(im, lb11, 10, "label 11 at index 3 is out of range for 10 classes"));
    if (CHECK(nnrt_dataset_load(im, lb11, 0, &ds, err, sizeof err))) /* no class count */
        nnrt_dataset_free(&ds);
    const char *lb2d = "test_idx_ds_labels2d.idx";
    write_idx_u8(lb2d, 2, (uint32_t[]){5, 1}, labels, 5, false);
    CHECK(load_fails(im, lb2d, 10, "labels must be rank 1"));
    b.n = 0;
    put_header(&b, NNRT_F32, 1, (uint32_t[]){2});
    put_be(&b, 0x40200000, 4), put_be(&b, 0, 4); /* 2.5 */
    write_file("test_idx_ds_f32labels.idx", b.p, b.n, false);
    CHECK(load_fails("test_idx_ds_i16.idx", "test_idx_ds_f32labels.idx", 3,
                     "label 2.5 at index 0 is not an integer"));
    CHECK(load_fails(im, "test_idx_no_such_labels.idx", 10, "No such file"));
    CHECK(load_fails("test_idx_no_such_images.idx", lb, 10, "No such file"));
    const char *empty = "test_idx_ds_empty.idx";
    write_idx_u8(empty, 2, (uint32_t[]){0, 4}, NULL, 0, false);
    write_idx_u8("test_idx_ds_empty_labels.idx", 1, (uint32_t[]){0}, NULL, 0, false);
    CHECK(load_fails(empty, "test_idx_ds_empty_labels.idx", 10, "holds no samples"));

    const char *files[] = {im, lb, lb4, lb11, lb2d, empty, "test_idx_ds_empty_labels.idx",
                           "test_idx_ds_i16.idx", "test_idx_ds_f32labels.idx"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
}

/* ---------------------------------------------------------------- rng */

/* Targets of several elements per sample (--target), in any element type,
 * and inline data: batches take label_size elements per sample, in order. */
static void test_targets(void) {
    static const unsigned char pixels[6] = {0, 255, 51, 1, 2, 3};
    static const unsigned char targets[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    char im[1024], tg[1024], tg2[1024];
    tmp_path(im, sizeof im, "tg_inputs.idx");
    tmp_path(tg, sizeof tg, "tg_targets.idx");
    tmp_path(tg2, sizeof tg2, "tg_two.idx");
    write_idx_u8(im, 2, (uint32_t[]){3, 2}, pixels, 6, false);
    write_idx_u8(tg, 2, (uint32_t[]){3, 3}, targets, 9, false);
    write_idx_u8(tg2, 2, (uint32_t[]){3, 2}, targets, 6, false);
    NnrtDataset ds;
    char err[512] = "";
    uint32_t order[2] = {2, 0};
    if (CHECK(nnrt_dataset_load_targets(im, tg, 3, &ds, err, sizeof err))) {
        float x[4], y[6];
        nnrt_batch_fill(&ds, order, 2, 4, false, x, y);
        CHECK(ds.label_size == 3 && x[0] == 2 / 255.0f && x[3] == 1.0f);
        CHECK(y[0] == 7 && y[2] == 9 && y[3] == 1 && y[5] == 3); /* not scaled */
        nnrt_dataset_free(&ds);
    }
    CHECK(!nnrt_dataset_load_targets(im, tg2, 3, &ds, err, sizeof err) &&
          strstr(err, "targets of 2 elements per sample, but the model's targets have 3"));
    static const double mx[3] = {0.5, 1.5, 2.5}, my[6] = {1, 2, 3, 4, 5, 6};
    if (CHECK(nnrt_dataset_from_memory(3, mx, 1, my, 2, &ds, err, sizeof err))) {
        double x[2], y[4];
        nnrt_batch_fill(&ds, order, 2, 8, false, x, y);
        CHECK(ds.n == 3 && x[0] == 2.5 && x[1] == 0.5 && y[0] == 5 && y[1] == 6 && y[2] == 1 && y[3] == 2);
        nnrt_dataset_free(&ds);
    }
}

static void test_rng(void) {
    NnrtRng a, b;
    /* Known answers (splitmix64 seeding of xoshiro256**, from the reference
     * algorithms): changing the stream changes every seeded run. */
    nnrt_rng_seed(&a, 1);
    CHECK(nnrt_rng_next(&a) == 0xb3f2af6d0fc710c5u);
    CHECK(nnrt_rng_next(&a) == 0x853b559647364ceau);
    nnrt_rng_seed(&a, 0);
    CHECK(nnrt_rng_next(&a) == 0x99ec5f36cb75f2b4u);

    nnrt_rng_seed(&a, 42);
    nnrt_rng_seed(&b, 42);
    bool same = true;
    for (int i = 0; i < 1000; i++)
        same &= nnrt_rng_next(&a) == nnrt_rng_next(&b);
    CHECK(same);
    nnrt_rng_seed(&b, 43);
    CHECK(nnrt_rng_next(&a) != nnrt_rng_next(&b));

    double lo = 1, hi = 0, sum = 0, sum2 = 0;
    const int N = 100000;
    for (int i = 0; i < N; i++) {
        double u = nnrt_rng_uniform(&a);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        double z = nnrt_rng_normal(&a);
        sum += z;
        sum2 += z * z;
    }
    CHECK(lo >= 0 && lo < 1e-3 && hi < 1 && hi > 1 - 1e-3);
    double mean = sum / N, std = sqrt(sum2 / N - mean * mean);
    CHECK(fabs(mean) < 0.02 && fabs(std - 1) < 0.02);

    /* Shuffle: a permutation, deterministic, not the identity. */
    enum { M = 1000 };
    static uint32_t p[M], q[M];
    for (uint32_t i = 0; i < M; i++)
        p[i] = q[i] = i;
    nnrt_rng_seed(&a, 7);
    nnrt_rng_seed(&b, 7);
    nnrt_shuffle(&a, p, M);
    nnrt_shuffle(&b, q, M);
    static int seen[M];
    bool perm = true, moved = false;
    for (uint32_t i = 0; i < M; i++) {
        perm &= p[i] < M && seen[p[i]]++ == 0;
        moved |= p[i] != i;
    }
    CHECK(perm && moved && memcmp(p, q, sizeof p) == 0);
    nnrt_shuffle(&a, p, 0);
    nnrt_shuffle(&a, p, 1);

    /* Unbiased: the 6 orders of 3 elements come up equally often. */
    int counts[6] = {0};
    for (int t = 0; t < 60000; t++) {
        uint32_t r[3] = {0, 1, 2};
        nnrt_shuffle(&a, r, 3);
        counts[r[0] * 2 + (r[1] > r[2])]++;
    }
    bool even = true;
    for (int i = 0; i < 6; i++)
        even &= abs(counts[i] - 10000) < 500;
    CHECK(even);
}

static void test_init(void) {
    enum { N = 100000 };
    static double d[N];
    static float f[N];
    NnrtRng r;
    nnrt_rng_seed(&r, 3);

    /* Glorot: U(-l, l), l = sqrt(6 / (300 + 100)). */
    double l = sqrt(6.0 / 400);
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_GLOROT_UNIFORM}, 300, 100, d, N, 8);
    double sum = 0, sum2 = 0, maxabs = 0;
    for (int i = 0; i < N; i++) {
        sum += d[i], sum2 += d[i] * d[i];
        maxabs = fmax(maxabs, fabs(d[i]));
    }
    double mean = sum / N, std = sqrt(sum2 / N - mean * mean);
    CHECK(maxabs <= l && maxabs > 0.99 * l);
    CHECK(fabs(mean) < 0.01 * l && fabs(std - l / sqrt(3)) < 0.02 * l);

    /* He normal, truncated like Keras: std sqrt(2 / 50) = 0.2 in the end,
     * nothing beyond 2 std of the untruncated normal behind it. */
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 50, 10, f, N, 4);
    sum = sum2 = maxabs = 0;
    for (int i = 0; i < N; i++) {
        sum += f[i], sum2 += (double)f[i] * f[i];
        maxabs = fmax(maxabs, fabs(f[i]));
    }
    mean = sum / N, std = sqrt(sum2 / N - mean * mean);
    double bound = 2 * 0.2 / 0.87962566103423978;
    CHECK(fabs(mean) < 0.005 && fabs(std - 0.2) < 0.006);
    CHECK(maxabs <= bound * (1 + 1e-6) && maxabs > 0.95 * bound);

    /* Deterministic from the seed. */
    NnrtRng r1, r2;
    float a[16], b[16];
    nnrt_rng_seed(&r1, 9);
    nnrt_rng_seed(&r2, 9);
    nnrt_init_fill(&r1, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 4, 4, a, 16, 4);
    nnrt_init_fill(&r2, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 4, 4, b, 16, 4);
    CHECK(memcmp(a, b, sizeof a) == 0);

    for (int i = 0; i < 16; i++)
        a[i] = 7, d[i] = 7;
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_ZEROS}, 4, 4, a, 16, 4);
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_ZEROS}, 4, 4, d, 15, 8);
    bool zeros = true;
    for (int i = 0; i < 16; i++)
        zeros &= a[i] == 0 && (i < 15 ? d[i] == 0 : d[i] == 7);
    CHECK(zeros);
    /* No fan (a scalar): no division by zero. */
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 0, 0, d, 4, 8);
    CHECK(isfinite(d[0]) && isfinite(d[3]));
}

/* ---------------------------------------------------------------- progress */

static char *read_stream(FILE *f) {
    fflush(f);
    rewind(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

static int occurrences(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
        n++;
    return n;
}

static void test_progress(void) {
    FILE *f = tmpfile();
    NnrtProgress p;
    nnrt_progress_begin(&p, f, 1, 5, 469);
    CHECK(!p.tty && !p.color);
    for (int i = 0; i < 469; i++)
        nnrt_progress_step(&p, 0.6, 0.8);
    nnrt_progress_end(&p, 0.5123, 0.8211, 3.214);
    nnrt_progress_begin(&p, f, 2, 5, 3);
    nnrt_progress_end(&p, 0.25, -1, 1);
    CHECK(strcmp(read_stream(f), "epoch 1/5  469/469  loss 0.5123  acc 0.8211  3.21s\n"
                                 "epoch 2/5  0/3  loss 0.2500  1.00s\n") == 0);
    fclose(f);

    double t0 = nnrt_now();
    CHECK(t0 > 0 && nnrt_now() >= t0);

    /* On a terminal (a pseudo-terminal here): the bar, redrawn in place,
     * rate-limited, coloured unless NO_COLOR is set. */
    for (int color = 0; color < 2; color++) {
        int master = posix_openpt(O_RDWR | O_NOCTTY);
        if (master < 0 || grantpt(master) || unlockpt(master)) {
            printf("  (no pseudo-terminal: TTY progress not tested)\n");
            if (master >= 0)
                close(master);
            return;
        }
        int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        FILE *tty = fdopen(slave, "w");
        fcntl(master, F_SETFL, O_NONBLOCK);
        setenv("NO_COLOR", color ? "" : "1", 1); /* empty: colour, per no-color.org */
        nnrt_progress_begin(&p, tty, 1, 5, 1000);
        CHECK(p.tty && p.color == (color == 1));
        for (int i = 0; i < 1000; i++)
            nnrt_progress_step(&p, 0.5, 0.75);
        nnrt_progress_end(&p, 0.5, 0.75, 0.5);
        char out[8192];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof out - 1 && (r = read(master, out + n, sizeof out - 1 - n)) > 0)
            n += (size_t)r;
        out[n] = '\0';
        CHECK(strstr(out, "\r\033[K") != NULL);
        CHECK(strstr(out, "] 1000/1000  loss 0.5000  acc 0.7500") != NULL);
        CHECK(occurrences(out, "\r\033[K") < 10); /* begin, last step, end (+ slow ticks) */
        CHECK((strstr(out, "\033[32m==============================") != NULL) == color);
        CHECK((strstr(out, "\033[1mepoch 1/5\033[0m  1000/1000  loss 0.5000  acc 0.7500  0.50s")
               != NULL) == color);
        if (!color)
            CHECK(strstr(out, "\033[0m") == NULL &&
                  strstr(out, "epoch 1/5  1000/1000  loss 0.5000  acc 0.7500  0.50s") != NULL);
        fclose(tty);
        close(master);
    }
    unsetenv("NO_COLOR");
}

/* ---------------------------------------------------------------- training */

enum { K = 3 };

/* What the fake step functions saw, reached through slot 5. */
typedef struct Fake {
    int dtype;
    size_t sample_size;
    int calls, full_calls, rem_calls, eval_full_calls, eval_rem_calls;
    int nan_at; /* the call (1-based) whose loss is NaN; 0: none */
    bool inf_in_eval;
    uint32_t order[256];
    int norder;
    bool bad_y, bad_arena;
    /* Slot 6 when the guard checks the state: on call poison_at the step
     * writes poison into param[poison_index]. */
    float param[37];
    int poison_at;
    size_t poison_index;
    float poison;
    bool slow_split; /* train_timed: slower when small jobs are split, or not */
} Fake;

static double get(const void *p, size_t i, int dtype) {
    return dtype == 4 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static void set(void *p, size_t i, double v, int dtype) {
    if (dtype == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* Sample id = the first pixel (uint8, scaled by 1/255); label = id % K.
 * loss = batch mean of the first pixel; output: a tie (argmax 0) when
 * id % 3 == 0, the label when id % 3 == 1, a wrong class when id % 3 == 2. */
static void fake_step(void **slots, size_t b, bool eval) {
    Fake *fk = slots[5];
    int d = fk->dtype;
    fk->calls++;
    /* Aligned, and zeroed before the first step. */
    if (((uintptr_t)slots[0] & 63) || (fk->calls == 1 && ((unsigned char *)slots[0])[99] != 0))
        fk->bad_arena = true;
    memset(slots[0], 0xab, 100); /* arena_bytes: scratch may be clobbered */
    double sum = 0;
    for (size_t s = 0; s < b; s++) {
        double x0 = get(slots[1], s * fk->sample_size, d);
        uint32_t id = (uint32_t)lround(x0 * 255);
        if (fk->norder < 256)
            fk->order[fk->norder++] = id;
        if (get(slots[2], s, d) != id % K)
            fk->bad_y = true;
        sum += x0;
        for (int k = 0; k < K; k++)
            set(slots[4], s * K + (size_t)k, 0.5, d);
        if (id % 3 == 1)
            set(slots[4], s * K + id % K, 1, d);
        if (id % 3 == 2)
            set(slots[4], s * K + (id + 1) % K, 1, d);
    }
    double loss = sum / (double)b;
    if (fk->calls == fk->nan_at)
        loss = NAN;
    if (eval && fk->inf_in_eval)
        loss = INFINITY;
    if (fk->calls == fk->poison_at)
        fk->param[fk->poison_index] = fk->poison;
    set(slots[3], 0, loss, d);
}

/* Like the real ones, for any batch of up to their batch size (4, 5 and
 * 2 samples): the calls of each size are counted. */
static void train_four(void **slots, int64_t n) {
    ((Fake *)slots[5])->full_calls += n == 4;
    ((Fake *)slots[5])->rem_calls += n < 4;
    fake_step(slots, (size_t)n, false);
}

static void train_five(void **slots, int64_t n) {
    ((Fake *)slots[5])->full_calls += n == 5;
    ((Fake *)slots[5])->rem_calls += n < 5;
    fake_step(slots, (size_t)n, false);
}

static void eval_two(void **slots, int64_t n) {
    ((Fake *)slots[5])->eval_full_calls += n == 2;
    ((Fake *)slots[5])->eval_rem_calls += n < 2;
    fake_step(slots, (size_t)n, true);
}

/* Batch 1, busy for 200 us a step the slow way (slow_split: split small
 * jobs, or not), 50 us the other. */
static void train_timed(void **slots, int64_t n) {
    Fake *fk = slots[5];
    double until = nnrt_now() + (nnrt_splits_small() == fk->slow_split ? 200e-6 : 50e-6);
    while (nnrt_now() < until)
        ;
    fake_step(slots, (size_t)n, false);
}

/* n (<= 256) samples of 2 pixels: the id and 255; labels id % K. */
static bool make_ds(NnrtDataset *ds, size_t n, const char *stem) {
    unsigned char px[512], lb[256];
    for (size_t i = 0; i < n; i++) {
        px[2 * i] = (unsigned char)i, px[2 * i + 1] = 255;
        lb[i] = (unsigned char)(i % K);
    }
    char im[64], la[64], err[256];
    snprintf(im, sizeof im, "test_idx_%s_images.idx", stem);
    snprintf(la, sizeof la, "test_idx_%s_labels.idx", stem);
    write_idx_u8(im, 2, (uint32_t[]){(uint32_t)n, 2}, px, 2 * n, false);
    write_idx_u8(la, 1, (uint32_t[]){(uint32_t)n}, lb, n, false);
    bool ok = nnrt_dataset_load(im, la, K, ds, err, sizeof err);
    if (!ok)
        printf("  %s\n", err);
    unlink(im);
    unlink(la);
    return ok;
}

/* Expected accuracy of the fake over ids 0..n-1. */
static double fake_acc(size_t n) {
    size_t correct = 0;
    for (size_t id = 0; id < n; id++)
        correct += (id % 3 == 0 && id % K == 0) || id % 3 == 1;
    return (double)correct / (double)n;
}

/* The guard, as the compiler would generate it for slot 6 of 37 floats. */
static int fake_finite(void **slots) {
    const float *p = slots[6];
    for (int i = 0; i < 37; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

static NnrtTrainSpec fake_spec(Fake *fk, void **slots, int dtype, FILE *out) {
    memset(fk, 0, sizeof *fk);
    fk->dtype = dtype;
    fk->sample_size = 2;
    slots[5] = fk;
    return (NnrtTrainSpec){
        .dtype_bytes = dtype, .outputs = K, .classify = true,
        .train = {train_four, 4}, .eval = {eval_two, 2},
        .slots = slots, .nslots = 6, .arena_bytes = 100, .epochs = 3, .seed = 5, .out = out,
    };
}

static void test_train(void) {
    NnrtDataset train, test;
    if (!CHECK(make_ds(&train, 10, "train") && make_ds(&test, 5, "test")))
        return;
    for (int dtype = 4; dtype <= 8; dtype += 4) {
        FILE *out = tmpfile();
        void *slots[6];
        Fake fk;
        NnrtTrainSpec spec = fake_spec(&fk, slots, dtype, out);
        NnrtTrainResult res;
        char err[256] = "";
        if (!CHECK(nnrt_train(&spec, &train, &test, &res, err, sizeof err))) {
            printf("  %s\n", err);
            continue;
        }
        /* 10 samples in batches of 4: 2 full steps and a remainder of 2. */
        CHECK(fk.full_calls == 6 && fk.rem_calls == 3);
        CHECK(fk.eval_full_calls == 2 && fk.eval_rem_calls == 1);
        CHECK(!fk.bad_y && !fk.bad_arena && fk.norder == 35);
        bool each_once = true, shuffled = false, differ = false;
        for (int e = 0; e < 3; e++) {
            int seen[10] = {0};
            for (int i = 0; i < 10; i++) {
                seen[fk.order[10 * e + i]]++;
                shuffled |= fk.order[10 * e + i] != (uint32_t)i;
                differ |= e > 0 && fk.order[10 * e + i] != fk.order[i];
            }
            for (int i = 0; i < 10; i++)
                each_once &= seen[i] == 1;
        }
        CHECK(each_once && shuffled && differ);
        bool in_order = true; /* the test set is not shuffled */
        for (int i = 0; i < 5; i++)
            in_order &= fk.order[30 + i] == (uint32_t)i;
        CHECK(in_order);
        /* Sample-weighted: the mean over all samples, whatever the batches. */
        CHECK(res.nepochs == 3);
        for (int e = 0; e < res.nepochs; e++) {
            CHECK(fabs(res.epochs[e].loss - 4.5 / 255) < 1e-7);
            CHECK(fabs(res.epochs[e].acc - fake_acc(10)) < 1e-12 && res.epochs[e].secs >= 0);
        }
        CHECK(fabs(res.test_loss - 2.0 / 255) < 1e-7 && fabs(res.test_acc - fake_acc(5)) < 1e-12);
        CHECK(slots[0] == NULL && slots[4] == NULL && slots[5] == &fk);
        const char *text = read_stream(out);
        CHECK(strstr(text, "epoch 1/3  3/3  loss 0.0176  acc 0.7000  ") == text);
        CHECK(strstr(text, "epoch 3/3  3/3  loss 0.0176  acc 0.7000  ") != NULL);
        CHECK(strstr(text, "\ntest  loss 0.0078  acc 0.8000\n") != NULL);

        /* The same seed gives the same order; another seed another order. */
        uint32_t first[30];
        memcpy(first, fk.order, sizeof first);
        NnrtTrainResult res2;
        spec = fake_spec(&fk, slots, dtype, out);
        CHECK(nnrt_train(&spec, &train, NULL, &res2, err, sizeof err));
        CHECK(memcmp(first, fk.order, sizeof first) == 0 && res2.test_loss < 0);
        nnrt_train_result_free(&res2);
        spec = fake_spec(&fk, slots, dtype, out);
        spec.seed = 6;
        CHECK(nnrt_train(&spec, &train, NULL, &res2, err, sizeof err));
        CHECK(memcmp(first, fk.order, sizeof first) != 0);
        nnrt_train_result_free(&res2);

        /* Evaluation alone. */
        double loss, acc;
        spec = fake_spec(&fk, slots, dtype, out);
        CHECK(nnrt_evaluate(&spec, &test, &loss, &acc, err, sizeof err));
        CHECK(fabs(loss - res.test_loss) < 1e-12 && acc == res.test_acc);
        nnrt_train_result_free(&res);
        CHECK(res.epochs == NULL);
        fclose(out);
    }

    FILE *out = tmpfile();
    void *slots[7];
    Fake fk;
    NnrtTrainResult res;
    char err[256];
    /* A batch size that divides n has no partial batch. */
    NnrtTrainSpec spec = fake_spec(&fk, slots, 4, out);
    spec.train = (NnrtStep){train_five, 5};
    CHECK(nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
    CHECK(fk.full_calls == 6 && fk.rem_calls == 0);
    nnrt_train_result_free(&res);

    /* No step function, or one for batches of 0. */
    spec = fake_spec(&fk, slots, 4, out);
    spec.train.fn = NULL;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err) && res.epochs == NULL && fk.calls == 0);
    printf("  rejected: %s\n", err);
    spec = fake_spec(&fk, slots, 4, out);
    spec.eval.batch = 0;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err) && fk.calls == 0);

    /* A NaN loss stops training and says where. 3 steps per epoch: call 5 is
     * epoch 2, step 2. */
    spec = fake_spec(&fk, slots, 8, out);
    fk.nan_at = 5;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err));
    CHECK(strcmp(err, "loss is nan at epoch 2, step 2") == 0 && fk.calls == 5);
    CHECK(res.epochs == NULL && res.nepochs == 0);
    nnrt_train_result_free(&res); /* harmless */
    spec = fake_spec(&fk, slots, 4, out);
    fk.inf_in_eval = true;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err));
    CHECK(strcmp(err, "loss is inf on the test set at step 1") == 0);
    printf("  rejected: %s\n", err);

    /* A finite loss but a non-finite parameter: the guard is asked after
     * every step and stops training at the step that made it. (The
     * generated guard's own answers: tests/unit/test_guard.c.) */
    const float poisons[] = {NAN, FLT_MAX};
    for (size_t p = 0; p < sizeof poisons / sizeof *poisons; p++) {
        spec = fake_spec(&fk, slots, 4, out);
        slots[6] = fk.param;
        spec.nslots = 7;
        spec.finite = fake_finite;
        fk.poison_at = 5;
        fk.poison_index = 3;
        fk.poison = poisons[p];
        bool finite = isfinite(poisons[p]);
        const char *want = "a gradient became nan or inf at epoch 2, step 2 (the loss was ";
        bool ok = nnrt_train(&spec, &train, NULL, &res, err, sizeof err);
        CHECK(ok == finite);
        if (ok)
            nnrt_train_result_free(&res);
        else
            CHECK(strncmp(err, want, strlen(want)) == 0 && fk.calls == 5);
    }
    printf("  rejected: %s\n", err);

    /* Not classifying: no accuracy. */
    spec = fake_spec(&fk, slots, 4, out);
    fclose(out);
    out = tmpfile();
    spec.out = out;
    spec.classify = false;
    spec.epochs = 1;
    CHECK(nnrt_train(&spec, &train, &test, &res, err, sizeof err));
    CHECK(res.epochs[0].acc < 0 && res.test_acc < 0);
    const char *text = read_stream(out);
    CHECK(strstr(text, "epoch 1/1  3/3  loss 0.0176  ") == text && !strstr(text, "acc"));
    nnrt_train_result_free(&res);

    /* Step functions that take uint8 images refuse a set of another type,
     * for training, testing or evaluation alone. */
    NnrtDataset floats;
    static const double fx[4] = {0.5, 0.25, 1, 0}, fy[2] = {1, 0};
    if (CHECK(nnrt_dataset_from_memory(2, fx, 2, fy, 1, &floats, err, sizeof err))) {
        spec = fake_spec(&fk, slots, 4, out);
        spec.input_u8 = true;
        const char *want = "the step functions take uint8 images, but the set holds another type";
        CHECK(!nnrt_train(&spec, &floats, NULL, &res, err, sizeof err) && !strncmp(err, "training: ", 10) &&
              strstr(err, want) && fk.calls == 0);
        CHECK(!nnrt_train(&spec, &train, &floats, &res, err, sizeof err) && !strncmp(err, "evaluation: ", 12) &&
              strstr(err, want) && fk.calls == 0);
        double loss, acc;
        CHECK(!nnrt_evaluate(&spec, &floats, &loss, &acc, err, sizeof err) && !strncmp(err, "evaluation: ", 12));
        nnrt_dataset_free(&floats);
    }

    /* Bad specs. */
    spec = fake_spec(&fk, slots, 2, out);
    CHECK(!nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
    spec = fake_spec(&fk, slots, 4, out);
    spec.nslots = 4;
    CHECK(!nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
    fclose(out);
    nnrt_dataset_free(&train);
    nnrt_dataset_free(&test);
}

/* Whether small jobs are split is timed at the start of each training pass
 * (train.c): 100 steps of batch 1, of which the first 80 the trial, on two
 * threads (main() asks for them); the pass ends the fast way. */
static void test_split_trial(void) {
    NnrtDataset train;
    if (!CHECK(make_ds(&train, 100, "trial")))
        return;
    FILE *out = tmpfile();
    for (int slow = 0; slow < 2; slow++) {
        void *slots[6];
        Fake fk;
        NnrtTrainSpec spec = fake_spec(&fk, slots, 4, out);
        fk.slow_split = slow;
        spec.train = (NnrtStep){train_timed, 1};
        spec.epochs = 1;
        NnrtTrainResult res;
        char err[256] = "";
        CHECK(nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
        CHECK(nnrt_splits_small() == !slow);
        nnrt_train_result_free(&res);
    }
    fclose(out);
    nnrt_dataset_free(&train);
}

/* ---------------------------------------------------------------- report */

static void test_report(void) {
    NnrtEpochStats epochs[2] = {{0.5, 0.75, 3.25, 1, -1, -1}, {0.25, -1, 1.5, 2, -1, -1}};
    NnrtTrainResult res = {.epochs = epochs, .nepochs = 2, .test_loss = -1, .test_acc = -1};
    NnrtReport r = {.model = "we\"ird\\name\n\x01.nn", .train_path = "data/train.gz",
                    .test_path = NULL, .seed = 18446744073709551615u, .batch = 128,
                    .lr = 0.01, .compile_secs = 0.125, .input_u8 = true, .result = &res};
    char path[1024], err[512];
    tmp_path(path, sizeof path, "report.json");
    CHECK(nnrt_report_write(path, &r, err, sizeof err));
    size_t n;
    char *text = (char *)slurp(path, &n);
    if (CHECK(text != NULL)) {
        CHECK(strstr(text, "\"model\": \"we\\\"ird\\\\name\\n\\u0001.nn\","));
        CHECK(strstr(text, "\"train\": \"data/train.gz\",\n  \"test\": null,"));
        CHECK(strstr(text, "\"seed\": 18446744073709551615,\n  \"batch\": 128,\n  \"lr\": 0.01,"));
        CHECK(strstr(text, "\"lr\": 0.01,\n  \"input\": \"uint8\",\n  \"compile_seconds\": 0.125,"));
        CHECK(strstr(text, "{\"epoch\": 1, \"loss\": 0.5, \"accuracy\": 0.75, \"seconds\": 3.25},"));
        CHECK(strstr(text, "{\"epoch\": 2, \"loss\": 0.25, \"accuracy\": null, \"seconds\": 1.5}"));
        CHECK(strstr(text, "\"test_loss\": null,\n  \"test_accuracy\": null,"));
        CHECK(strstr(text, "\"peak_rss_bytes\": ") && text[n - 2] == '}');
        printf("%s", text);
    }
    free(text);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);

    /* Overwrites atomically; NaN becomes null; no result at all. */
    epochs[0].loss = NAN;
    res.test_loss = 0.375, res.test_acc = 0.5;
    r.test_path = "t";
    CHECK(nnrt_report_write(path, &r, err, sizeof err));
    text = (char *)slurp(path, &n);
    CHECK(text && strstr(text, "\"loss\": null") && strstr(text, "\"test_loss\": 0.375,") &&
          strstr(text, "\"test\": \"t\""));
    free(text);
    r.result = NULL;
    CHECK(nnrt_report_write(path, &r, err, sizeof err));
    text = (char *)slurp(path, &n);
    CHECK(text && strstr(text, "\"epochs\": [],"));
    free(text);

    /* No temporary files left behind. */
    DIR *dir = opendir(tmp_dir);
    int leftovers = 0;
    for (struct dirent *e; dir && (e = readdir(dir));)
        leftovers += strstr(e->d_name, ".tmp.") != NULL;
    if (dir)
        closedir(dir);
    CHECK(leftovers == 0);

    CHECK(!nnrt_report_write("/nonexistent-dir/r.json", &r, err, sizeof err));
    CHECK(strncmp(err, "/nonexistent-dir/r.json: ", 25) == 0);
    printf("  rejected: %s\n", err);
    CHECK(nnrt_peak_rss_bytes() > 1024 * 1024);
}

int main(void) {
    char tmpl[1024];
    const char *base = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/test_idx.XXXXXX", base && base[0] ? base : "/tmp");
    tmp_dir = mkdtemp(tmpl);
    if (!tmp_dir) {
        printf("cannot create a temp dir: %s\n", strerror(errno));
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    nnrt_set_threads(2); /* before the pool starts: the split trial needs two */
    test_types();
    test_ranks();
    test_detection();
    test_malformed();
    test_find();
    test_dataset();
    test_targets();
    test_rng();
    test_init();
    test_progress();
    test_train();
    test_split_trial();
    test_report();
    nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary();
}
