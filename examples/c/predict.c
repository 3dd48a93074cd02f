/* predict.c — predicts one Fashion-MNIST image with the MLP compiled ahead
 * of time (nnc -c, weights embedded): no nnc, no LLVM, no runtime library;
 * zlib reads the gzip'd IDX file.
 *
 *   ./predict [INDEX [IMAGES]]   (default: image 0 of the t10k set)
 */
#include "mlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define T10K "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

static const char *const classes[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

int main(int argc, char **argv) {
    long index = argc > 1 ? atol(argv[1]) : 0;
    const char *path = argc > 2 ? argv[2] : T10K;
    gzFile f = gzopen(path, "rb");
    unsigned char header[16], pixels[MLP_INPUT_SIZE];
    /* The IDX header: magic 0x00000803, then the count, rows and columns (big-endian). */
    if (!f || gzread(f, header, sizeof header) != sizeof header || header[2] != 0x08 || header[3] != 3) {
        fprintf(stderr, "%s: not an IDX file of uint8 images\n", path);
        return 1;
    }
    long count = (long)header[4] << 24 | header[5] << 16 | header[6] << 8 | header[7];
    if (index < 0 || index >= count || gzseek(f, 16 + index * MLP_INPUT_SIZE, SEEK_SET) < 0 ||
        gzread(f, pixels, sizeof pixels) != sizeof pixels) {
        fprintf(stderr, "%s: no image %ld (it has %ld)\n", path, index, count);
        return 1;
    }
    gzclose(f);
    float x[MLP_INPUT_SIZE], p[MLP_OUTPUT_SIZE];
    for (int i = 0; i < MLP_INPUT_SIZE; i++)
        x[i] = pixels[i] * (float)(1.0 / 255); /* as nnc scales uint8 images */
    int status = mlp_predict(x, 1, p);
    if (status != MLP_OK) {
        fprintf(stderr, "mlp_predict: status %d\n", status);
        return 1;
    }
    int best = 0;
    for (int k = 1; k < MLP_OUTPUT_SIZE; k++)
        if (p[k] > p[best])
            best = k;
    printf("image %ld: %s (p = %.4f)\n", index, classes[best], (double)p[best]);
    return 0;
}
