/* test_checkpoint.c — the safetensors reader and writer (runtime/checkpoint.c)
 * without the compiler: a round trip of tensors and metadata; every
 * truncation of a small checkpoint rejected; and hand-made hostile headers
 * (over the size cap, not JSON, not an object, duplicate keys, wrong field
 * types, another dtype, negative or overflowing dimensions, offsets that
 * overlap, leave gaps, disagree with the shape or run past the file, bytes
 * after the last tensor), each with its own message. The atomic write leaves
 * no temporary file behind and replaces the old checkpoint whole.
 */
#include "nnrt.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static char dir[1024];

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        printf("cannot write %s\n", path);
}

static unsigned char *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* A safetensors file from a header text and `data` bytes of zeros. */
static void write_st(const char *path, const char *header, size_t data, uint64_t claimed_len) {
    size_t h = strlen(header), n = 8 + h + data;
    unsigned char *p = calloc(n, 1);
    uint64_t len = claimed_len ? claimed_len : h;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(len >> (8 * i));
    memcpy(p + 8, header, h);
    write_bytes(path, p, n);
    free(p);
}

/* Loading the header must fail with a message containing `want`. */
static void rejects(const char *name, const char *header, size_t data, uint64_t claimed_len,
                    const char *want) {
    char path[1200], err[512] = "";
    path_of(path, sizeof path, name);
    write_st(path, header, data, claimed_len);
    NnrtCkpt c;
    bool ok = nnrt_ckpt_load(path, &c, err, sizeof err);
    if (!CHECK(!ok && strstr(err, want) && strstr(err, path)))
        printf("  %s: got '%s', wanted '%s'\n", name, ok ? "(loaded)" : err, want);
    else
        printf("  rejected %s: %s\n", name, err + strlen(dir) + 1);
    if (ok)
        nnrt_ckpt_free(&c);
}

static void test_round_trip(void) {
    float w[6] = {1, -2, 3.5f, 0, 1e-30f, -7}, b[2] = {0.25f, 8};
    double h[2] = {0.1, -1}; /* F64: a run's history, not rounded to float */
    NnrtTensor t[3] = {{.name = "dense1.W", .rank = 2, .dims = {2, 3}, .data = w},
                       {.name = "dense1.b", .rank = 1, .dims = {2}, .data = b},
                       {.name = "nnc:history", .rank = 2, .dims = {1, 2}, .f64 = true, .data = h}};
    NnrtMeta meta[2] = {{"epoch", "3"}, {"note", "quote \" and newline \n"}};
    char path[1200], err[512];
    path_of(path, sizeof path, "ok.safetensors");
    CHECK(nnrt_ckpt_save(path, t, 3, meta, 2, err, sizeof err));
    NnrtCkpt c;
    if (!CHECK(nnrt_ckpt_load(path, &c, err, sizeof err))) {
        printf("  %s\n", err);
        return;
    }
    const NnrtTensor *W = nnrt_ckpt_tensor(&c, "dense1.W"), *B = nnrt_ckpt_tensor(&c, "dense1.b");
    const NnrtTensor *H = nnrt_ckpt_tensor(&c, "nnc:history");
    CHECK(c.ntensors == 3 && W && B && !nnrt_ckpt_tensor(&c, "dense2.W"));
    CHECK(W && !W->f64 && H && H->f64 && H->rank == 2 && H->dims[0] == 1 && H->dims[1] == 2);
    double rh[2];
    CHECK(H && nnrt_ckpt_read(&c, H, rh, err, sizeof err) && !memcmp(rh, h, sizeof h));
    float rw[6], rb[2];
    CHECK(W && W->rank == 2 && W->dims[0] == 2 && W->dims[1] == 3 && nnrt_ckpt_read(&c, W, rw, err, sizeof err) &&
          !memcmp(rw, w, sizeof w));
    CHECK(B && B->rank == 1 && B->dims[0] == 2 && nnrt_ckpt_read(&c, B, rb, err, sizeof err) &&
          !memcmp(rb, b, sizeof b));
    CHECK(nnrt_ckpt_meta(&c, "epoch") && !strcmp(nnrt_ckpt_meta(&c, "epoch"), "3"));
    CHECK(nnrt_ckpt_meta(&c, "note") && !strcmp(nnrt_ckpt_meta(&c, "note"), meta[1].value));
    CHECK(!nnrt_ckpt_meta(&c, "step"));
    nnrt_ckpt_free(&c);

    /* The header is padded to 8 bytes, so the data is aligned. */
    size_t n = 0;
    unsigned char *bytes = read_whole(path, &n);
    if (!CHECK(bytes != NULL))
        return;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)bytes[i] << (8 * i);
    CHECK(hlen % 8 == 0 && 8 + hlen + sizeof w + sizeof b + sizeof h == n);

    /* Every truncation is an error naming the file, never a crash or a load. */
    char cut[1200];
    path_of(cut, sizeof cut, "cut.safetensors");
    int accepted = 0, unnamed = 0;
    for (size_t k = 0; k < n; k++) {
        write_bytes(cut, bytes, k);
        err[0] = 0;
        if (nnrt_ckpt_load(cut, &c, err, sizeof err)) {
            accepted++;
            nnrt_ckpt_free(&c);
        } else if (!strstr(err, cut)) {
            unnamed++;
        }
    }
    CHECK(accepted == 0 && unnamed == 0);
    printf("  every truncation of a %zu-byte checkpoint rejected\n", n);
    free(bytes);

    /* Saving again replaces the file whole and leaves no temporary behind. */
    w[0] = 42;
    CHECK(nnrt_ckpt_save(path, t, 2, meta, 0, err, sizeof err));
    CHECK(nnrt_ckpt_load(path, &c, err, sizeof err) && nnrt_ckpt_meta(&c, "epoch") == NULL &&
          nnrt_ckpt_read(&c, nnrt_ckpt_tensor(&c, "dense1.W"), rw, err, sizeof err) && rw[0] == 42);
    nnrt_ckpt_free(&c);
    DIR *d = opendir(dir);
    int temps = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        temps += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    CHECK(temps == 0);
    CHECK(!nnrt_ckpt_save("/nonexistent-dir/x.safetensors", t, 2, meta, 0, err, sizeof err) &&
          strstr(err, "/nonexistent-dir/x.safetensors: "));
}

static void test_hostile(void) {
    const char *W = "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
    char h[512];
    rejects("cap", "{}", 0, (uint64_t)NNRT_CKPT_MAX_HEADER + 1, "limit");
    rejects("longer", "{}", 0, 1000, "truncated");
    rejects("json", "{\"w\":", 0, 0, "not valid JSON");
    rejects("array", "[1, 2]", 0, 0, "not a JSON object");
    rejects("dup", "{\"a\":{},\"a\":{}}", 0, 0, "not valid JSON");
    rejects("fields", "{\"w\":{\"dtype\":\"F32\"}}", 0, 0, "is not {");
    rejects("extra", "{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1}}", 4, 0,
            "is not {");
    rejects("dtype", "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0,
            "dtype F16");
    rejects("negative", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0,
            "dimension 0");
    rejects("overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],"
                        "\"data_offsets\":[0,8]}}", 8, 0, "overflows");
    snprintf(h, sizeof h, "{%s[0,12]}}", W);
    rejects("size", h, 12, 0, "its shape needs 8");
    snprintf(h, sizeof h, "{%s[8,0]}}", W);
    rejects("reversed", h, 8, 0, "0 <= begin <= end");
    snprintf(h, sizeof h, "{%s[0,8]},\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", W);
    rejects("overlap", h, 12, 0, "overlaps");
    snprintf(h, sizeof h, "{%s[0,8]},\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", W);
    rejects("gap", h, 20, 0, "a gap of 4 bytes");
    snprintf(h, sizeof h, "{%s[0,8]}}", W);
    rejects("past", h, 4, 0, "past the end");
    rejects("trailing", h, 12, 0, "4 bytes of data after");
    rejects("meta", "{\"__metadata__\":{\"epoch\":3}}", 0, 0, "metadata 'epoch' is not a string");
    char path[1200], err[512];
    path_of(path, sizeof path, "short");
    write_bytes(path, "\1\0\0", 3);
    NnrtCkpt c;
    CHECK(!nnrt_ckpt_load(path, &c, err, sizeof err) && strstr(err, "too short"));
    CHECK(!nnrt_ckpt_load(dir, &c, err, sizeof err) && strstr(err, "not a regular file"));
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_checkpoint.XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(dir)) {
        printf("cannot create a temp dir: %s\n", strerror(errno));
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_round_trip();
    test_hostile();
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("cannot remove %s\n", dir);
    return check_summary();
}
