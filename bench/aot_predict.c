/* aot_predict.c — times a model compiled by nnc -c (bench/aot.sh builds it):
 * the latency of MODEL_predict on one sample (the median of many calls) and
 * its throughput on an IDX file of images (all samples in one call, best of
 * several). Not a test.
 *
 *   cc -O2 -include MODEL.h -DPREDICT=MODEL_predict -DIN=MODEL_INPUT_SIZE \
 *      -DOUT=MODEL_OUTPUT_SIZE aot_predict.c MODEL.o -lz -lm
 *   ./a.out IMAGES.gz
 *
 * With -DPOOL=N and libnnrt linked, the kernels run on the runtime's pool
 * of N threads (its nnrt_parallel_for replaces the object's weak, serial one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>
#ifdef POOL
void nnrt_set_threads(int n);
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
#ifdef POOL
    nnrt_set_threads(POOL);
#endif
    gzFile f = argc > 1 ? gzopen(argv[1], "rb") : NULL;
    unsigned char h[16];
    if (!f || gzread(f, h, 16) != 16 || h[2] != 0x08 || h[3] != 3)
        return 2;
    size_t n = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
    unsigned char *px = malloc(n * IN);
    float *x = malloc(n * IN * sizeof *x), *out = malloc(n * OUT * sizeof *out);
    if (!px || !x || !out || gzread(f, px, (unsigned)(n * IN)) != (int)(n * IN))
        return 2;
    for (size_t i = 0; i < n * IN; i++)
        x[i] = px[i] * (float)(1.0 / 255);
    enum { CALLS = 20000 };
    static double t[CALLS];
    for (int i = 0; i < CALLS; i++) {
        double t0 = now();
        if (PREDICT(x + (size_t)(i % 100) * IN, 1, out) != 0)
            return 1;
        t[i] = now() - t0;
    }
    qsort(t, CALLS, sizeof *t, by_value);
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        if (PREDICT(x, n, out) != 0)
            return 1;
        double s = now() - t0;
        best = s < best ? s : best;
    }
    printf("one sample: median %.1f us (p10 %.1f, p90 %.1f) over %d calls\n", t[CALLS / 2] * 1e6,
           t[CALLS / 10] * 1e6, t[CALLS * 9 / 10] * 1e6, CALLS);
    printf("%zu samples in one call: %.2f ms (best of 5), %.0f samples/s\n", n, best * 1e3, (double)n / best);
    return 0;
}
