/* runtime_files.h — what the runtime's unit tests (test_idx.c, test_dataset.c,
 * test_train.c, test_report.c, ...) share: IDX files built byte by byte (not
 * with the reader's own code, so the byte order and the header layout are
 * checked against the format, not against themselves), files and streams
 * read back, and a temp dir of the test's own, removed at its end.
 * Header-only, like check.h: each unit test is a program of its own. */
#ifndef NNC_TEST_RUNTIME_FILES_H
#define NNC_TEST_RUNTIME_FILES_H

#include "nnrt.h"

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

typedef struct Buf {
    unsigned char p[4096];
    size_t n;
} Buf;

static inline void put8(Buf *b, unsigned v) { b->p[b->n++] = (unsigned char)v; }

static inline void put_be(Buf *b, uint64_t v, size_t bytes) {
    for (size_t i = 0; i < bytes; i++)
        put8(b, (unsigned)(v >> (8 * (bytes - 1 - i)) & 0xff));
}

static inline void put_header(Buf *b, int type, int rank, const uint32_t *dims) {
    put8(b, 0);
    put8(b, 0);
    put8(b, (unsigned)type);
    put8(b, (unsigned)rank);
    for (int i = 0; i < rank; i++)
        put_be(b, dims[i], 4);
}

/* Writes n bytes to path, gzip-compressed or not. */
static inline void write_file(const char *path, const void *p, size_t n, bool gzip) {
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

static inline unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *p = malloc(1 << 16);
    *n = fread(p, 1, (1 << 16) - 1, f);
    p[*n] = '\0';
    fclose(f);
    return p;
}

static inline void write_idx_u8(const char *path, int rank, const uint32_t *dims,
                         const unsigned char *v, size_t n, bool gzip) {
    Buf b = {.n = 0};
    put_header(&b, NNRT_U8, rank, dims);
    for (size_t i = 0; i < n; i++)
        put8(&b, v[i]);
    write_file(path, b.p, b.n, gzip);
}

static inline char *read_stream(FILE *f) {
    fflush(f);
    rewind(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    return buf;
}

/* The test's temp dir (tmp_dir_make), for files named by tmp_path. */
static const char *tmp_dir;

static inline void tmp_path(char *out, size_t len, const char *name) {
    snprintf(out, len, "%s/%s", tmp_dir, name);
}

static inline int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Creates $TMPDIR/NAME.XXXXXX (/tmp without TMPDIR) as tmp_dir. */
static inline bool tmp_dir_make(const char *name) {
    static char tmpl[1024];
    const char *base = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/%s.XXXXXX", base && base[0] ? base : "/tmp", name);
    tmp_dir = mkdtemp(tmpl);
    if (!tmp_dir)
        printf("cannot create a temp dir: %s\n", strerror(errno));
    return tmp_dir != NULL;
}

static inline void tmp_dir_remove(void) { nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

#endif
