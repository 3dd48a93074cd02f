/* test_rng.c — the random numbers (runtime/rng.c): the generator's known
 * answers and distribution, shuffling, and the initialisers' statistics.
 */
#include "nnrt.h"
#include "check.h"
#include "runtime_files.h"

#include <math.h>

static void test_rng(void) {
    NnrtRng a, b;
    /* Known answers (splitmix64 seeding of xoshiro256**, from the reference
     * algorithms): changing the stream changes every seeded run. */
    nnrt_rng_seed(&a, 1);
    CHECK(nnrt_rng_next(&a) == 0xb3f2af6d0fc710c5u);
    CHECK(nnrt_rng_next(&a) == 0x853b559647364ceau);
    nnrt_rng_seed(&a, 0);
    CHECK(nnrt_rng_next(&a) == 0x99ec5f36cb75f2b4u);

    nnrt_rng_seed(&a, 42);
    nnrt_rng_seed(&b, 42);
    bool same = true;
    for (int i = 0; i < 1000; i++)
        same &= nnrt_rng_next(&a) == nnrt_rng_next(&b);
    CHECK(same);
    nnrt_rng_seed(&b, 43);
    CHECK(nnrt_rng_next(&a) != nnrt_rng_next(&b));

    double lo = 1, hi = 0, sum = 0, sum2 = 0;
    const int N = 100000;
    for (int i = 0; i < N; i++) {
        double u = nnrt_rng_uniform(&a);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        double z = nnrt_rng_normal(&a);
        sum += z;
        sum2 += z * z;
    }
    CHECK(lo >= 0 && lo < 1e-3 && hi < 1 && hi > 1 - 1e-3);
    double mean = sum / N, std = sqrt(sum2 / N - mean * mean);
    CHECK(fabs(mean) < 0.02 && fabs(std - 1) < 0.02);

    /* Shuffle: a permutation, deterministic, not the identity. */
    enum { M = 1000 };
    static uint32_t p[M], q[M];
    for (uint32_t i = 0; i < M; i++)
        p[i] = q[i] = i;
    nnrt_rng_seed(&a, 7);
    nnrt_rng_seed(&b, 7);
    nnrt_shuffle(&a, p, M);
    nnrt_shuffle(&b, q, M);
    static int seen[M];
    bool perm = true, moved = false;
    for (uint32_t i = 0; i < M; i++) {
        perm &= p[i] < M && seen[p[i]]++ == 0;
        moved |= p[i] != i;
    }
    CHECK(perm && moved && memcmp(p, q, sizeof p) == 0);
    nnrt_shuffle(&a, p, 0);
    nnrt_shuffle(&a, p, 1);

    /* Unbiased: the 6 orders of 3 elements come up equally often. */
    int counts[6] = {0};
    for (int t = 0; t < 60000; t++) {
        uint32_t r[3] = {0, 1, 2};
        nnrt_shuffle(&a, r, 3);
        counts[r[0] * 2 + (r[1] > r[2])]++;
    }
    bool even = true;
    for (int i = 0; i < 6; i++)
        even &= abs(counts[i] - 10000) < 500;
    CHECK(even);
}

static void test_init(void) {
    enum { N = 100000 };
    static double d[N];
    static float f[N];
    NnrtRng r;
    nnrt_rng_seed(&r, 3);

    /* Glorot: U(-l, l), l = sqrt(6 / (300 + 100)). */
    double l = sqrt(6.0 / 400);
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_GLOROT_UNIFORM}, 300, 100, d, N, 8);
    double sum = 0, sum2 = 0, maxabs = 0;
    for (int i = 0; i < N; i++) {
        sum += d[i], sum2 += d[i] * d[i];
        maxabs = fmax(maxabs, fabs(d[i]));
    }
    double mean = sum / N, std = sqrt(sum2 / N - mean * mean);
    CHECK(maxabs <= l && maxabs > 0.99 * l);
    CHECK(fabs(mean) < 0.01 * l && fabs(std - l / sqrt(3)) < 0.02 * l);

    /* He normal, truncated like Keras: std sqrt(2 / 50) = 0.2 in the end,
     * nothing beyond 2 std of the untruncated normal behind it. */
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 50, 10, f, N, 4);
    sum = sum2 = maxabs = 0;
    for (int i = 0; i < N; i++) {
        sum += f[i], sum2 += (double)f[i] * f[i];
        maxabs = fmax(maxabs, fabs(f[i]));
    }
    mean = sum / N, std = sqrt(sum2 / N - mean * mean);
    double bound = 2 * 0.2 / 0.87962566103423978;
    CHECK(fabs(mean) < 0.005 && fabs(std - 0.2) < 0.006);
    CHECK(maxabs <= bound * (1 + 1e-6) && maxabs > 0.95 * bound);

    /* Deterministic from the seed. */
    NnrtRng r1, r2;
    float a[16], b[16];
    nnrt_rng_seed(&r1, 9);
    nnrt_rng_seed(&r2, 9);
    nnrt_init_fill(&r1, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 4, 4, a, 16, 4);
    nnrt_init_fill(&r2, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 4, 4, b, 16, 4);
    CHECK(memcmp(a, b, sizeof a) == 0);

    for (int i = 0; i < 16; i++)
        a[i] = 7, d[i] = 7;
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_ZEROS}, 4, 4, a, 16, 4);
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_ZEROS}, 4, 4, d, 15, 8);
    bool zeros = true;
    for (int i = 0; i < 16; i++)
        zeros &= a[i] == 0 && (i < 15 ? d[i] == 0 : d[i] == 7);
    CHECK(zeros);
    /* No fan (a scalar): no division by zero. */
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 0, 0, d, 4, 8);
    CHECK(isfinite(d[0]) && isfinite(d[3]));
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_rng();
    test_init();
    return check_summary();
}
