/* fuzz_plot.c — libFuzzer target: the training curves (runtime/plot.c), the
 * CSV log and the SVG plot written from a history of epochs, as the driver
 * writes them after every epoch from a history that a resumed run read from
 * its checkpoint: any doubles (NaN, infinities, -1 for "not measured",
 * values a few ulps apart, near DBL_MAX, subnormal) and any epoch the
 * checkpoint reader accepts (0 to INT_MAX).
 *
 * The input is a sequence of 44-byte records, one epoch each: the epoch
 * (4 bytes, little-endian, the sign bit dropped), then loss, accuracy,
 * val_loss, val_accuracy and seconds as 8-byte IEEE doubles (little-endian).
 * A trailing partial record is ignored.
 *
 * The oracles beyond the sanitizers: both writers succeed; the log has a
 * header and one line per epoch; the SVG is whole (it ends with </svg>) and
 * no coordinate or label in it is "nan" or "inf". A writer that loops is
 * stopped by the file-size cap (fuzz_files.h).
 */
#ifndef _GNU_SOURCE /* memfd_create, nftw (fuzz_files.h); LLVM's flags may define it already */
#define _GNU_SOURCE
#endif
#include "nnrt.h"
#include "fuzz_files.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { RECORD = 4 + 5 * 8 };

static uint64_t le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static double le_double(const uint8_t *p) {
    uint64_t bits = le(p, 8);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* The whole file (NUL-terminated, malloc'd) and its size. */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fuzz_die("cannot read back a written file");
    char *buf = malloc(FUZZ_FILE_LIMIT + 1);
    if (!buf)
        fuzz_die("out of memory");
    *n = fread(buf, 1, FUZZ_FILE_LIMIT, f);
    buf[*n] = '\0';
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char log_path[512], plot_path[512];
    if (!log_path[0]) {
        fuzz_path(log_path, sizeof log_path, "run.csv");
        fuzz_path(plot_path, sizeof plot_path, "curves.svg");
    }
    size_t n = size / RECORD;
    NnrtEpochStats *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        fuzz_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = data + i * RECORD;
        h[i] = (NnrtEpochStats){.epoch = (int)(le(r, 4) & 0x7fffffff), .loss = le_double(r + 4),
                                .acc = le_double(r + 12), .val_loss = le_double(r + 20),
                                .val_acc = le_double(r + 28), .secs = le_double(r + 36)};
    }
    /* The log as a run writes it: the history so far at the start (half of
     * it, as a resumed run has), then a row per epoch. */
    char err[1024];
    FILE *f = NULL;
    bool ok = nnrt_log_open(log_path, h, n / 2, &(NnrtColumns){0}, &f, err, sizeof err);
    for (size_t i = n / 2; ok && i < n; i++)
        ok = nnrt_log_append(f, log_path, &h[i], &(NnrtColumns){0}, err, sizeof err);
    ok = (f ? nnrt_log_close(f, log_path, err, sizeof err) : false) && ok;
    if (!ok || !nnrt_plot_write(plot_path, h, n, &(NnrtColumns){0}, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        fuzz_die("a writer failed");
    }
    free(h);

    size_t len, lines = 0;
    char *csv = slurp(log_path, &len);
    for (size_t i = 0; i < len; i++)
        lines += csv[i] == '\n';
    if (lines != n + 1 || strncmp(csv, "epoch,loss,", 11) != 0)
        fuzz_die("the log does not have a header and a line per epoch");
    free(csv);
    char *svg = slurp(plot_path, &len);
    if (len < 7 || strcmp(svg + len - 7, "</svg>\n") != 0)
        fuzz_die("the plot is not a whole SVG");
    if (strstr(svg, "nan") || strstr(svg, "inf"))
        fuzz_die("the plot has a coordinate or a label that is not a number");
    free(svg);
    return 0;
}
