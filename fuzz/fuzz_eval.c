/* fuzz_eval.c — libFuzzer target: --eval and --predict (runtime/metrics.c)
 * on a labelled set whose labels are hostile: the IDX labels file through
 * nnrt_dataset_load, which checks a classifier's labels against its number
 * of outputs (as the driver loads an --eval set), then the confusion matrix,
 * the per-class accuracy and the CSV of predictions, over batches of any
 * size (remainders included), in float and in double.
 *
 * The stand-in model: each sample's image is its index (uint8, one pixel),
 * and the evaluation step looks that sample's outputs up in the input, so
 * the outputs are hostile too (NaN, ties, infinities); the loss it reports
 * is the batch's first output (a non-finite loss is a path of its own).
 *
 * The input: byte 0 the model (bits 0-2: outputs k - 1; bit 3: a classifier,
 * whose labels are loaded against k classes, else a regression, whose labels
 * are values; bit 4: double, else float); byte 1 the labels' IDX type (u8,
 * i8, i16, i32, f32, f64, by its value mod 6); byte 2 the samples n - 1
 * (mod 64); byte 3 the evaluation batch - 1 (mod 8); then n labels in the
 * IDX body's byte order (big-endian) and n * k outputs as 8-byte IEEE
 * doubles (little-endian). An input too short for its header is skipped.
 *
 * The oracles are the sanitizers' (the confusion matrix is indexed by the
 * labels) and: a report or prediction that fails says why.
 */
#ifndef _GNU_SOURCE /* memfd_create, nftw (fuzz_files.h); LLVM's flags may define it already */
#define _GNU_SOURCE
#endif
#include "nnrt.h"
#include "fuzz_files.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_K = 8, MAX_N = 64 };

static const struct {
    int type;
    size_t size;
} label_types[] = {{NNRT_U8, 1}, {NNRT_I8, 1}, {NNRT_I16, 2}, {NNRT_I32, 4}, {NNRT_F32, 4}, {NNRT_F64, 8}};

/* The stand-in model's outputs for the current input: outputs[i * k + j]. */
static double outputs[MAX_N * MAX_K];
static size_t k_outputs;
static int dtype_bytes;

static void put(void *p, size_t i, double v) {
    if (dtype_bytes == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* Slots 1, 3 and 4 are the trainer's x, loss and output buffers; x holds
 * each sample's index, scaled by 1/255 as uint8 images are. */
static void stand_in_step(void **slots, int64_t n) {
    for (int64_t s = 0; s < n; s++) {
        double x = dtype_bytes == 4 ? ((const float *)slots[1])[s] : ((const double *)slots[1])[s];
        size_t sample = (size_t)lround(x * 255);
        for (size_t j = 0; j < k_outputs; j++)
            put(slots[4], (size_t)s * k_outputs + j, outputs[sample * k_outputs + j]);
    }
    put(slots[3], 0, outputs[0]);
}

/* An IDX file of one dimension-list and a body, into fd. */
static void write_idx(int fd, int type, const uint32_t *dims, int rank, const uint8_t *body,
                      size_t len) {
    uint8_t buf[4 + 4 * 2 + MAX_N * 8];
    size_t at = 0;
    buf[at++] = 0, buf[at++] = 0, buf[at++] = (uint8_t)type, buf[at++] = (uint8_t)rank;
    for (int d = 0; d < rank; d++)
        for (int b = 3; b >= 0; b--)
            buf[at++] = (uint8_t)(dims[d] >> (8 * b));
    memcpy(buf + at, body, len);
    fuzz_rewrite(fd, buf, at + len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int images_fd = -1, labels_fd;
    static char images[64], labels[64];
    static FILE *devnull;
    if (images_fd < 0) {
        images_fd = fuzz_memfd("images", images, sizeof images);
        labels_fd = fuzz_memfd("labels", labels, sizeof labels);
        if (!(devnull = fopen("/dev/null", "w")))
            fuzz_die("cannot open /dev/null");
    }
    if (size < 4)
        return 0;
    size_t k = 1 + (data[0] & 7), n = 1 + data[2] % MAX_N, batch = 1 + data[3] % 8;
    bool classify = data[0] & 8;
    dtype_bytes = data[0] & 16 ? 8 : 4;
    k_outputs = k;
    int type = label_types[data[1] % 6].type;
    size_t label_bytes = n * label_types[data[1] % 6].size;
    if (size < 4 + label_bytes + n * k * 8)
        return 0;
    const uint8_t *body = data + 4;
    for (size_t i = 0; i < n * k; i++) {
        uint64_t bits = 0;
        for (int b = 7; b >= 0; b--)
            bits = bits << 8 | body[label_bytes + i * 8 + (size_t)b];
        memcpy(&outputs[i], &bits, sizeof bits);
    }
    uint8_t index[MAX_N];
    for (size_t i = 0; i < n; i++)
        index[i] = (uint8_t)i;
    write_idx(images_fd, NNRT_U8, (uint32_t[]){(uint32_t)n, 1}, 2, index, n);
    write_idx(labels_fd, type, (uint32_t[]){(uint32_t)n}, 1, body, label_bytes);

    NnrtDataset ds;
    char err[1024] = "";
    if (!nnrt_dataset_load(images, labels, classify ? k : 0, &ds, err, sizeof err)) {
        if (!err[0])
            fuzz_die("the labels were rejected without a message");
        return 0;
    }
    void *slots[5] = {0};
    NnrtTrainSpec spec = {
        .dtype_bytes = dtype_bytes, .outputs = k, .classify = classify,
        .train = {stand_in_step, batch}, .eval = {stand_in_step, batch},
        .slots = slots, .nslots = 5, .arena_bytes = 16, .epochs = 1, .seed = 1, .out = devnull,
    };
    for (int predict = 0; predict <= 1; predict++) {
        err[0] = '\0';
        bool ok = predict ? nnrt_predict_write(&spec, &ds, &(NnrtClasses){0}, &(NnrtClasses){0}, &spec.outputs, 1,
                                               false, devnull, err, sizeof err)
                          : nnrt_eval_report(&spec, &ds, &(NnrtClasses){0}, devnull, err, sizeof err);
        if (!ok && !err[0])
            fuzz_die("--eval or --predict failed without a message");
    }
    nnrt_dataset_free(&ds);
    return 0;
}
