/* predict_idx.c — a program using a model compiled by `nnc -c`: reads an
 * IDX file of float32 or uint8 images, predicts every sample through the
 * model's header and object, and prints the CSV `nnc --predict` prints, so
 * a test can diff the two. uint8 images are scaled as nnc scales them.
 *
 *   cc -include MODEL.h -DPREDICT=MODEL_predict -DIN=MODEL_INPUT_SIZE \
 *      -DOUT=MODEL_OUTPUT_SIZE predict_idx.c MODEL.o -lm
 *   ./a.out IMAGES [CHUNK]   (CHUNK: samples per call, default all at once)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    FILE *f = fopen(argv[1], "rb");
    unsigned char h[4], d[4];
    if (!f || fread(h, 1, 4, f) != 4 || (h[2] != 0x08 && h[2] != 0x0D))
        return 2;
    size_t n = 0, elems = 1;
    for (int r = 0; r < h[3]; r++) {
        if (fread(d, 1, 4, f) != 4)
            return 2;
        if (r == 0)
            n = be32(d);
        else
            elems *= be32(d);
    }
    if (elems != IN)
        return 2;
    float *x = malloc(n * IN * sizeof *x), *out = malloc(n * OUT * sizeof *out);
    for (size_t i = 0; i < n * IN; i++) {
        unsigned char b[4];
        if (fread(b, 1, h[2] == 0x08 ? 1 : 4, f) != (h[2] == 0x08 ? 1u : 4u))
            return 2;
        if (h[2] == 0x08) {
            x[i] = (float)b[0] * (float)(1.0 / 255);
        } else {
            uint32_t u = be32(b);
            memcpy(&x[i], &u, 4);
        }
    }
    fclose(f);
    size_t chunk = argc > 2 ? (size_t)atol(argv[2]) : n;
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        int rc = PREDICT(x + i * IN, k, out + i * OUT);
        if (rc != 0) {
            fprintf(stderr, "predict: status %d\n", rc);
            return 1;
        }
    }
    printf("index,class");
    for (int j = 0; j < OUT; j++)
        printf(",p%d", j);
    printf("\n");
    for (size_t s = 0; s < n; s++) {
        size_t best = 0;
        for (size_t j = 1; j < OUT; j++)
            if (out[s * OUT + j] > out[s * OUT + best])
                best = j;
        printf("%zu,%zu", s, best);
        for (size_t j = 0; j < OUT; j++)
            printf(",%.9g", (double)out[s * OUT + j]);
        printf("\n");
    }
    free(x);
    free(out);
    return 0;
}
