/* test_init.c — the initializers' values (runtime/rng.c) against their
 * distributions, as Keras defines them.
 *
 * For each random initializer, N draws: the sample mean within 5 standard
 * errors of the distribution's mean (sigma / sqrt(N)), the sample variance
 * within 5 standard errors of its variance (sqrt((mu4 - sigma^4) / N), mu4
 * the fourth central moment), every value inside its bounds and, for the
 * bounded ones, some value near each end (within a width that N draws
 * all miss with odds below e^-20). The moments are derived here from
 * the definitions (the truncated normals' from the normal density), not taken
 * from rng.c. The seed is fixed, so the test is deterministic; 5 standard
 * errors leave a correct implementation failing with odds of about 1e-6 per
 * check over seeds, and a wrong scale (a factor of sqrt 2, the wrong fan)
 * is off by hundreds of them.
 */
#include "nnrt.h"
#include "check.h"

#include <math.h>
#include <string.h>

enum { N = 200000 };
static double v[N];

typedef struct Dist {
    double mean, var, mu4; /* mu4: the fourth central moment */
    double lo, hi;         /* every value in [lo, hi] */
    double end_density;    /* > 0: the least density near either end, so values near both are drawn */
} Dist;

static void check_stats(const char *what, NnrtInit init, int64_t fan_in, int64_t fan_out, Dist d) {
    NnrtRng r;
    nnrt_rng_seed(&r, 11);
    nnrt_init_fill(&r, &init, fan_in, fan_out, v, N, 8);
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < N; i++) {
        sum += v[i];
        lo = fmin(lo, v[i]);
        hi = fmax(hi, v[i]);
    }
    double mean = sum / N, ss = 0;
    for (int i = 0; i < N; i++)
        ss += (v[i] - mean) * (v[i] - mean);
    double var = ss / (N - 1);
    double se_mean = sqrt(d.var / N), se_var = sqrt((d.mu4 - d.var * d.var) / N);
    printf("%-16s mean %+.5f (want %+.5f, se %.1e)  var %.6f (want %.6f, se %.1e)  range [%.4f, %.4f]\n", what,
           mean, d.mean, se_mean, var, d.var, se_var, lo, hi);
    CHECK(fabs(mean - d.mean) <= 5 * se_mean);
    CHECK(fabs(var - d.var) <= 5 * se_var);
    CHECK(lo >= d.lo && hi <= d.hi);
    if (d.end_density > 0) { /* P(no draw within w of an end) <= (1 - w density)^N < e^-20 */
        double w = 20 / (N * d.end_density);
        CHECK(lo <= d.lo + w && hi >= d.hi - w);
    }
}

static Dist uniform(double a, double b) {
    double w = b - a;
    return (Dist){(a + b) / 2, w * w / 12, w * w * w * w / 80, a, b, 1 / w};
}

static Dist normal(double mean, double std) {
    return (Dist){mean, std * std, 3 * pow(std, 4), -INFINITY, INFINITY, 0};
}

/* A normal cut at 2 of its standard deviations s0 and redrawn, scaled so that
 * the result has standard deviation `std` (Keras 2's truncated normals).
 * For z standard normal on [-c, c], Z = P(|z| <= c), phi the density:
 * E z^2 = 1 - 2 c phi(c) / Z, E z^4 = 3 - (2 c^3 + 6 c) phi(c) / Z. */
static Dist truncated(double std) {
    double c = 2, phi = exp(-c * c / 2) / sqrt(2 * 3.14159265358979323846), Z = erf(c / sqrt(2));
    double ez2 = 1 - 2 * c * phi / Z, ez4 = 3 - (2 * c * c * c + 6 * c) * phi / Z;
    double s0 = std / sqrt(ez2); /* the std of the normal before the cut */
    /* the density falls towards the ends: phi(c) / (Z s0) is its least there */
    return (Dist){0, std * std, ez4 * pow(s0, 4), -c * s0, c * s0, phi / (Z * s0)};
}

/* Constants, literals and zeros: exactly their values, float or double. */
static void exact_values(void) {
    NnrtRng r;
    nnrt_rng_seed(&r, 1);
    float f[5];
    double d[5];
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_CONSTANT, .a = -0.25}, 3, 4, f, 5, 4);
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_CONSTANT, .a = 1}, 3, 4, d, 5, 8);
    for (int i = 0; i < 5; i++)
        CHECK(f[i] == -0.25f && d[i] == 1);
    static const double lit[5] = {1, -2, 3.5, 0, 1e-3};
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_VALUES, .values = lit}, 1, 5, f, 5, 4);
    nnrt_init_fill(&r, &(NnrtInit){.kind = NNRT_INIT_VALUES, .values = lit}, 1, 5, d, 5, 8);
    for (int i = 0; i < 5; i++)
        CHECK(f[i] == (float)lit[i] && d[i] == lit[i]);
}

/* The same seed gives the same values; another seed others. */
static void seeded(void) {
    NnrtRng r1, r2, r3;
    nnrt_rng_seed(&r1, 5);
    nnrt_rng_seed(&r2, 5);
    nnrt_rng_seed(&r3, 6);
    double a[64], b[64], c[64];
    NnrtInit init = {.kind = NNRT_INIT_NORMAL, .a = 0, .b = 1};
    nnrt_init_fill(&r1, &init, 8, 8, a, 64, 8);
    nnrt_init_fill(&r2, &init, 8, 8, b, 64, 8);
    nnrt_init_fill(&r3, &init, 8, 8, c, 64, 8);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

int main(void) {
    /* Keras' definitions: glorot over fan_in + fan_out, he over fan_in. */
    check_stats("uniform(-1, 3)", (NnrtInit){.kind = NNRT_INIT_UNIFORM, .a = -1, .b = 3}, 1, 1, uniform(-1, 3));
    check_stats("normal(2, 0.5)", (NnrtInit){.kind = NNRT_INIT_NORMAL, .a = 2, .b = 0.5}, 1, 1, normal(2, 0.5));
    check_stats("glorot_uniform", (NnrtInit){.kind = NNRT_INIT_GLOROT_UNIFORM}, 300, 100,
                uniform(-sqrt(6.0 / 400), sqrt(6.0 / 400)));
    check_stats("he_uniform", (NnrtInit){.kind = NNRT_INIT_HE_UNIFORM}, 50, 10, uniform(-sqrt(6.0 / 50), sqrt(6.0 / 50)));
    check_stats("glorot_normal", (NnrtInit){.kind = NNRT_INIT_GLOROT_NORMAL}, 300, 100, truncated(sqrt(2.0 / 400)));
    check_stats("he_normal", (NnrtInit){.kind = NNRT_INIT_HE_NORMAL}, 50, 10, truncated(sqrt(2.0 / 50)));
    exact_values();
    seeded();
    return check_summary();
}
