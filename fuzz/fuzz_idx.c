/* fuzz_idx.c — libFuzzer target: the IDX reader, raw and gzip.
 *
 * The first byte chooses the container: even, the rest of the input is the
 * file as is (so the fuzzer also feeds zlib its own broken gzip streams);
 * odd, the rest is gzip-compressed first, so mutations of the IDX header and
 * data reach the reader through a well-formed gzip stream too — random bytes
 * almost never form one. The file lives in a memfd, named through
 * /proc/self/fd, because the reader takes a path (and opens it).
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
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_all(int fd, const void *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror("fuzz_idx: write");
            abort();
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    bool gzip = data[0] & 1;
    data++, size--;
    int fd = memfd_create("fuzz_idx", 0);
    if (fd < 0) {
        perror("fuzz_idx: memfd_create");
        abort();
    }
    if (gzip) {
        uLongf cap = compressBound(size) + 32;
        unsigned char *z = malloc(cap);
        z_stream s = {0};
        /* windowBits 15 + 16: a gzip wrapper, not zlib's. */
        if (!z || deflateInit2(&s, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            abort();
        s.next_in = (Bytef *)data;
        s.avail_in = (uInt)size;
        s.next_out = z;
        s.avail_out = (uInt)cap;
        if (deflate(&s, Z_FINISH) != Z_STREAM_END)
            abort();
        write_all(fd, z, s.total_out);
        deflateEnd(&s);
        free(z);
    } else {
        write_all(fd, data, size);
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    NnrtIdx idx;
    if (nnrt_idx_read(path, &idx, err, sizeof err)) {
        /* Touch every element, so a header that promised more than was
         * allocated shows up under ASan. */
        double sum = 0;
        for (size_t i = 0; i < idx.count; i++)
            sum += nnrt_idx_get(&idx, i);
        if (idx.rank > 0 && nnrt_idx_sample_size(&idx) * idx.dims[0] != idx.count)
            abort();
        (void)sum;
        nnrt_idx_free(&idx);
    }
    close(fd);
    return 0;
}
