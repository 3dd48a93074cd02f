/* rng.c — the one random number generator of a run: xoshiro256** seeded
 * through splitmix64 (the seeding its authors recommend: any 64-bit seed,
 * 0 included, gives a well-mixed nonzero state), Fisher-Yates shuffling
 * with unbiased bounded integers, and parameter initialisation.
 *
 * Everything is a pure function of the seed and the order of the calls, so
 * a run is reproducible: same seed, same initial weights, same batches.
 */
#include "nnrt.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void nnrt_rng_seed(NnrtRng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t nnrt_rng_next(NnrtRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The top 53 bits: every double in [0, 1) on the 2^-53 grid, equally likely. */
double nnrt_rng_uniform(NnrtRng *r) { return (double)(nnrt_rng_next(r) >> 11) * 0x1.0p-53; }

/* Box-Muller, keeping one of the pair: caching the other would need state
 * beyond the four words, and initialisation is not the bottleneck.
 * 1 - u is in (0, 1], so the log is finite. */
double nnrt_rng_normal(NnrtRng *r) {
    double u1 = 1.0 - nnrt_rng_uniform(r);
    double u2 = nnrt_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Uniform in [0, range), range > 0, without modulo bias: Lemire's
 * multiply-and-reject ("Fast random integer generation in an interval",
 * 2019). The rejection loop almost never runs. */
static uint64_t bounded(NnrtRng *r, uint64_t range) {
    unsigned __int128 m = (unsigned __int128)nnrt_rng_next(r) * range;
    uint64_t low = (uint64_t)m;
    if (low < range) {
        uint64_t threshold = -range % range;
        while (low < threshold) {
            m = (unsigned __int128)nnrt_rng_next(r) * range;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

void nnrt_shuffle(NnrtRng *r, uint32_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)bounded(r, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* Keras's truncated normal: draws beyond 2 std are redrawn, which shrinks
 * the std by this factor, so the std asked for is divided by it first and
 * the values end up with the std the formula names. */
#define TRUNCATED_NORMAL_STD 0.87962566103423978

static void store(void *p, size_t i, double v, int dtype_bytes) {
    if (dtype_bytes == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* Keras' VarianceScaling of variance 2 / fan (He: fan_in; Glorot: fan_in +
 * fan_out), uniform or truncated normal. */
static void variance_scaling(NnrtRng *r, double fan, bool normal, void *p, size_t count, int dtype_bytes) {
    double std = sqrt(2.0 / fan) / TRUNCATED_NORMAL_STD, limit = sqrt(6.0 / fan); /* U(-l, l): variance l^2 / 3 */
    for (size_t i = 0; i < count; i++) {
        double v;
        if (normal) {
            double z;
            do
                z = nnrt_rng_normal(r);
            while (fabs(z) > 2);
            v = z * std;
        } else {
            v = (2 * nnrt_rng_uniform(r) - 1) * limit;
        }
        store(p, i, v, dtype_bytes);
    }
}

void nnrt_init_fill(NnrtRng *r, const NnrtInit *init, int64_t fan_in, int64_t fan_out,
                    void *p, size_t n, int dtype_bytes) {
    /* A scalar parameter has no fan; treat it as 1 rather than divide by 0. */
    double in = fan_in > 0 ? (double)fan_in : 1, out = fan_out > 0 ? (double)fan_out : 1;
    switch (init->kind) {
    case NNRT_INIT_ZEROS:
        memset(p, 0, n * (dtype_bytes == 4 ? sizeof(float) : sizeof(double)));
        break;
    case NNRT_INIT_GLOROT_UNIFORM: variance_scaling(r, in + out, false, p, n, dtype_bytes); break;
    case NNRT_INIT_GLOROT_NORMAL: variance_scaling(r, in + out, true, p, n, dtype_bytes); break;
    case NNRT_INIT_HE_UNIFORM: variance_scaling(r, in, false, p, n, dtype_bytes); break;
    case NNRT_INIT_HE_NORMAL: variance_scaling(r, in, true, p, n, dtype_bytes); break;
    case NNRT_INIT_CONSTANT:
        for (size_t i = 0; i < n; i++)
            store(p, i, init->a, dtype_bytes);
        break;
    case NNRT_INIT_UNIFORM:
        for (size_t i = 0; i < n; i++)
            store(p, i, init->a + (init->b - init->a) * nnrt_rng_uniform(r), dtype_bytes);
        break;
    case NNRT_INIT_NORMAL:
        for (size_t i = 0; i < n; i++)
            store(p, i, init->a + init->b * nnrt_rng_normal(r), dtype_bytes);
        break;
    case NNRT_INIT_VALUES:
        for (size_t i = 0; i < n; i++)
            store(p, i, init->values[i], dtype_bytes);
        break;
    }
}
