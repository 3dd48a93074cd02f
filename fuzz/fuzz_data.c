/* fuzz_data.c — libFuzzer target: the data loaders behind --train, --eval
 * and --predict (dataset.c's dispatch by content, csv.c, npy.c, and idx.c
 * through them), on a hostile file.
 *
 * The first byte chooses how the file is read: bit 0 a table with a header
 * and --label c (else no header, --target 0,1), bit 1 prediction (no
 * labels), bits 2-3 the model's input elements (1 to 4). The rest is the
 * file, in a memfd named through /proc/self/fd (the loaders take a path);
 * an .npz's members are found in it, an .npy or IDX file's labels are the
 * same file.
 */
#ifndef _GNU_SOURCE /* memfd_create; LLVM's flags may define it already */
#define _GNU_SOURCE
#endif
#include "nnrt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    unsigned mode = data[0];
    data++, size--;
    int fd = memfd_create("fuzz_data", 0);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size)) {
        perror("fuzz_data: memfd");
        abort();
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    bool header = mode & 1;
    NnrtDataSpec spec = {.label = header ? "c" : NULL, .targets = header ? NULL : "0,1", .no_header = !header};
    NnrtWant w = {.sample_size = 1 + (mode >> 2 & 3), .label_size = header ? 1 : 2, .classes = header ? 3 : 0,
                  .unlabelled = mode & 2, .new_classes = true};
    NnrtClasses classes = {0};
    NnrtDataset ds;
    if (nnrt_dataset_read(path, path, &spec, &w, &classes, &ds, err, sizeof err)) {
        /* Touch every element, so a size that promised more than was
         * allocated shows up under ASan. */
        double sum = 0;
        for (size_t i = 0; i < ds.images.count; i++)
            sum += nnrt_idx_get(&ds.images, i);
        for (size_t i = 0; i < ds.labels.count; i++)
            sum += nnrt_idx_get(&ds.labels, i);
        if (ds.images.count != ds.n * ds.sample_size || ds.labels.count != ds.n * ds.label_size)
            abort();
        (void)sum;
        nnrt_dataset_free(&ds);
    }
    nnrt_classes_free(&classes);
    close(fd);
    return 0;
}
