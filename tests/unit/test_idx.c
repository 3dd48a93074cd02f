/* test_idx.c — the IDX reader (runtime/idx.c) on every element type, rank
 * and byte order, gzip or not whatever the name says, and on every kind of
 * malformed file, each with its own message. Files go to the current
 * directory (ctest runs this in the build tree) and are removed.
 */
#include "nnrt.h"
#include "check.h"
#include "runtime_files.h"

#include <float.h>
#include <math.h>
#include <unistd.h>

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

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_types();
    test_ranks();
    test_detection();
    test_malformed();
    return check_summary();
}
