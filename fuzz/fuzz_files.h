/* fuzz_files.h — the files the fuzz targets read and write.
 *
 * Readers take a path (and are tested through it, open and fstat included),
 * so an input becomes a file: an anonymous memfd rewritten per input, named
 * by /proc/self/fd/N. Writers (the log, the plot, a checkpoint) write a
 * temporary file beside the target and rename it, so they get a directory of
 * the process's own, on tmpfs where there is one (the fsyncs then cost
 * nothing), removed at exit.
 *
 * Every target caps the size of the files it writes (RLIMIT_FSIZE): a writer
 * that loops (the plot, on losses a few ulps apart or near DBL_MAX) then dies
 * of SIGXFSZ at once, which libFuzzer reports with the input, instead of
 * filling the memory or the disk of a shared machine before a timeout. A
 * process that dies so leaves its directory behind (at most FUZZ_FILE_LIMIT
 * a file).
 *
 * Header-only (static inline): each target is a program of its own. Its
 * first lines define _GNU_SOURCE, before any system header.
 */
#ifndef NNC_FUZZ_FILES_H
#define NNC_FUZZ_FILES_H

#include "nnrt.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Far above what any input of libFuzzer's -max_len makes a writer write. */
enum { FUZZ_FILE_LIMIT = 8 << 20 };

static inline void fuzz_die(const char *what) {
    fprintf(stderr, "fuzz: %s\n", what);
    abort();
}

/* An empty memfd; its path is written to path. */
static inline int fuzz_memfd(const char *name, char *path, size_t len) {
    int fd = memfd_create(name, 0);
    if (fd < 0)
        fuzz_die("memfd_create failed");
    snprintf(path, len, "/proc/self/fd/%d", fd);
    return fd;
}

/* The file's content becomes exactly data[0..size). */
static inline void fuzz_rewrite(int fd, const uint8_t *data, size_t size) {
    if (ftruncate(fd, 0) != 0)
        fuzz_die("ftruncate failed");
    for (size_t at = 0; at < size;) {
        ssize_t w = pwrite(fd, data + at, size - at, (off_t)at);
        if (w <= 0)
            fuzz_die("write failed");
        at += (size_t)w;
    }
}

static char fuzz_dir_path[256];

static inline int fuzz_remove_entry(const char *path, const struct stat *st, int flag,
                                    struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void fuzz_dir_remove(void) {
    nftw(fuzz_dir_path, fuzz_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The process's directory for written files (made on the first call), and
 * the file-size cap. */
static inline const char *fuzz_dir(void) {
    if (fuzz_dir_path[0])
        return fuzz_dir_path;
    struct rlimit lim = {FUZZ_FILE_LIMIT, FUZZ_FILE_LIMIT};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        fuzz_die("setrlimit(RLIMIT_FSIZE) failed");
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/nnc-fuzz.XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(fuzz_dir_path))
        fuzz_die("mkdtemp failed");
    atexit(fuzz_dir_remove);
    return fuzz_dir_path;
}

/* fuzz_dir()/name, in out. */
static inline void fuzz_path(char *out, size_t len, const char *name) {
    snprintf(out, len, "%s/%s", fuzz_dir(), name);
}

#endif
