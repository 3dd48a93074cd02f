/* conv.c — the generated convolutions alone, on the two conv layers of
 * examples/cnn.nn at batch 128, against the machine's FMA peak:
 *
 *   nnc-bench-conv [--threads N] [N,H,W,C,KH,KW,F ...]
 *
 * For each x [N, H, W, C] and filter k [KH, KW, C, F] (stride 1, valid:
 * Keras' default, no padding) it times the forward convolution
 * y = conv2d(x, k), its data gradient conv2d_data(dy, k) and its filter
 * gradient conv2d_filter(x, dy), each compiled at -O2 through the real
 * pipeline (IR, conv_gemm, schedule, codegen, JIT) as a step of its own,
 * and prints
 *
 *   nnc conv2d N,H,W,C,KH,KW,F forward gflops=... peak=...%
 *
 * per op, from the best of a few rounds (seconds() below). All three do
 * 2 N OH OW F KH KW C flop. A last line gives the ops a training step runs
 * (all but the first layer's data gradient: its input is the data) together,
 * their flop over their time: issue 18's "the convolution kernels alone".
 * The peak is measured, not looked up: each of
 * the pool's threads runs independent float FMAs at the widest vector width
 * the CPU has (12 accumulators, more than latency x throughput), so it is
 * what these cores deliver (two vCPUs sharing one core's FMA units show as
 * such). It is measured before and after the convolutions and the larger
 * taken: other processes that take a core for a while lower one of the two
 * (both differ when the machine is that busy, and are printed). A
 * benchmark, not a test.
 */
#include "nnc.h"
#include "nnrt.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static const Loc L0;

/* ---------------------------------------------------------------- the peak */

enum { ACCS = 12, PEAK_ITERS = 1 << 22, PEAK_CHUNKS = 16 };

/* Each runs PEAK_ITERS rounds of ACCS independent FMAs on one vector
 * register each, and returns their sum so that nothing is optimised away. */
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float fma_512(void) {
    __m512 acc[ACCS], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < ACCS; k++)
        acc[k] = _mm512_set1_ps((float)k);
    for (int i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12 /* the accumulators in registers */
        for (int k = 0; k < ACCS; k++)
            acc[k] = _mm512_fmadd_ps(acc[k], m, c);
    float sum = 0;
    for (int k = 0; k < ACCS; k++)
        sum += _mm512_reduce_add_ps(acc[k]);
    return sum;
}

__attribute__((target("avx2,fma"))) static float fma_256(void) {
    __m256 acc[ACCS], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < ACCS; k++)
        acc[k] = _mm256_set1_ps((float)k);
    for (int i = 0; i < PEAK_ITERS; i++)
#pragma GCC unroll 12 /* the accumulators in registers */
        for (int k = 0; k < ACCS; k++)
            acc[k] = _mm256_fmadd_ps(acc[k], m, c);
    float lanes[8], sum = 0;
    for (int k = 0; k < ACCS; k++) {
        _mm256_storeu_ps(lanes, acc[k]);
        for (int l = 0; l < 8; l++)
            sum += lanes[l];
    }
    return sum;
}
#endif

/* The lanes of the widest FMA the CPU has: 16, 8, or 0 for none. */
static int fma_lanes(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 8;
#endif
    return 0;
}

static int peak_lanes;
static volatile float peak_sink;

static void peak_kernel(void **slots, int64_t begin, int64_t end) {
    (void)slots;
#if defined(__x86_64__)
    for (int64_t i = begin; i < end; i++)
        peak_sink = peak_lanes == 16 ? fma_512() : fma_256();
#else
    (void)begin, (void)end;
#endif
}

/* GFLOP/s of the pool's threads together, the best of 3 rounds; 0 if the
 * CPU has no FMA this knows of. The work is in more chunks than threads so
 * that a thread that starts late does not leave the others idle at the end. */
static double peak_gflops(void) {
    peak_lanes = fma_lanes();
    if (!peak_lanes)
        return 0;
    int64_t chunks = (int64_t)nnrt_threads() * PEAK_CHUNKS;
    double flop = (double)chunks * PEAK_ITERS * ACCS * peak_lanes * 2, best = 1e30;
    for (int round = 0; round < 3; round++) {
        double t = nnrt_now();
        nnrt_parallel_for(peak_kernel, NULL, chunks);
        t = nnrt_now() - t;
        if (t < best)
            best = t;
    }
    return flop / best / 1e9;
}

/* ---------------------------------------------------------------- the convolutions */

typedef enum { FORWARD, DATA, FILTER } Which;
static const char *const which_name[] = {[FORWARD] = "forward", [DATA] = "data", [FILTER] = "filter"};

/* One step computing `which` for x [N, H, W, C], k [KH, KW, C, F], at -O2:
 * its slots are the arena, the two operands and the result. */
typedef struct Bench {
    Graph *g;
    Schedule *s;
    int in[2], out;
} Bench;

static NodeId leaf(Graph *g, Op op, int *slot, const char *name, Shape s) {
    *slot = ir_add_slot(g, (Slot){.kind = op == OP_INPUT ? SLOT_INPUT : SLOT_PARAM, .name = name, .shape = s});
    return ir_leaf(g, op, *slot, s, L0);
}

static Bench build(Arena *a, const int64_t d[7], Which which, const Target *t) {
    Bench b = {.g = ir_new(a, DT_F32)};
    Graph *g = b.g;
    g->batch = d[0]; /* x and dy are inputs: their first axis is the batch */
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Shape xs = {4, {d[0], d[1], d[2], d[3]}}, ks = {4, {d[4], d[5], d[3], d[6]}};
    Shape ys = {4, {d[0], d[1] - d[4] + 1, d[2] - d[5] + 1, d[6]}};
    Window w = {.kh = (int32_t)d[4], .kw = (int32_t)d[5], .sh = 1, .sw = 1, .oh = ys.dim[1], .ow = ys.dim[2]};
    NodeId r = -1;
    switch (which) {
    case FORWARD: {
        NodeId x = leaf(g, OP_INPUT, &b.in[0], "x", xs);
        r = ir_conv2d(g, x, leaf(g, OP_PARAM, &b.in[1], "k", ks), 1, 1, false, L0);
        break;
    }
    case DATA: {
        NodeId dy = leaf(g, OP_INPUT, &b.in[0], "dy", ys);
        r = ir_window(g, OP_CONV2D_DATA, dy, leaf(g, OP_PARAM, &b.in[1], "k", ks), w, xs, g->nodes[dy].batch_axes, L0);
        break;
    }
    case FILTER: {
        NodeId x = leaf(g, OP_INPUT, &b.in[0], "x", xs);
        r = ir_window(g, OP_CONV2D_FILTER, x, leaf(g, OP_INPUT, &b.in[1], "dy", ys), w, ks, 0, L0);
        break;
    }
    }
    b.out = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "r", .shape = g->nodes[r].shape});
    ir_add_output(g, r, b.out);
    b.s = pipeline_schedule(a, &b.g, 2, t); /* as products (conv_gemm.c) */
    return b;
}

/* Seconds per call of fn: the best of 5 rounds of enough calls for ~0.5 s
 * (one call, timed first, says how many), of 2 rounds of one call where a
 * call takes over a second (the loop nests' filter gradient of the second
 * layer: 6 s). */
static double seconds(NnrtStepFn fn, void **slots, int64_t n) {
    double t = nnrt_now();
    fn(slots, n);
    t = nnrt_now() - t;
    int reps = t >= 0.5 ? 1 : (int)(0.5 / (t + 1e-9)) + 1, rounds = t > 1 ? 2 : 5;
    double best = 1e30;
    for (int round = 0; round < rounds; round++) {
        t = nnrt_now();
        for (int r = 0; r < reps; r++)
            fn(slots, n);
        t = (nnrt_now() - t) / reps;
        if (t < best)
            best = t;
    }
    return best;
}

/* The flop of each of a layer's three ops. */
static double layer_flop(const int64_t d[7]) {
    return 2.0 * (double)d[0] * (double)(d[1] - d[4] + 1) * (double)(d[2] - d[5] + 1) * (double)d[6] * (double)d[4] *
           (double)d[5] * (double)d[3];
}

/* The GFLOP/s of the three ops of one layer, into gflops[FORWARD..FILTER]. */
static void bench_layer(const int64_t d[7], double gflops[3]) {
    Arena *a = arena_new();
    Target *t = target_host();
    Bench b[3];
    Graph *graphs[3];
    Schedule *scheds[3];
    CgModule *mods[3];
    for (int i = 0; i < 3; i++) {
        b[i] = build(a, d, (Which)i, t);
        graphs[i] = b[i].g;
        scheds[i] = b[i].s;
        mods[i] = pipeline_codegen(which_name[i], 1, &which_name[i], &graphs[i], &scheds[i]);
    }
    char err[512];
    Jit *jit = jit_compile_modules(mods, 3, t, err, sizeof err); /* takes the modules */
    target_free(t);
    if (!jit || (getenv("NNC_PERF_MAP") && !jit_write_perf_map(jit, err, sizeof err))) {
        fprintf(stderr, "nnc-bench-conv: %s\n", err);
        exit(1);
    }
    double flop = layer_flop(d);
    for (int i = 0; i < 3; i++) {
        NnrtStepFn fn = (NnrtStepFn)jit_lookup(jit, which_name[i], err, sizeof err);
        if (!fn) {
            fprintf(stderr, "nnc-bench-conv: %s\n", err);
            exit(1);
        }
        /* 64-byte aligned, as nnc's training buffers are; small values
         * that keep the sums finite. */
        void **slots = xcalloc((size_t)b[i].g->nslots, sizeof *slots);
        slots[0] = xcalloc64(b[i].s->arena_bytes + 64, 1);
        for (int s = 1; s < b[i].g->nslots; s++) {
            size_t n = (size_t)shape_elems(&b[i].g->slots[s].shape);
            float *p = xcalloc64(n, sizeof *p);
            for (size_t e = 0; e < n; e++)
                p[e] = (float)((e * 7 + (size_t)s) % 11) * 0.125f - 0.625f;
            slots[s] = p;
        }
        gflops[i] = flop / seconds(fn, slots, d[0]) / 1e9;
        for (int s = 0; s < b[i].g->nslots; s++)
            free(slots[s]);
        free(slots);
    }
    jit_free(jit);
    arena_free(a);
}

/* "N,H,W,C,KH,KW,F" into d, each at least 1, the kernel inside the image
 * and each tensor at most 2^30 elements (products taken in double: no
 * overflow). */
static bool parse_layer(const char *s, int64_t d[7]) {
    long long v[7];
    int end = 0;
    int got = sscanf(s, "%lld,%lld,%lld,%lld,%lld,%lld,%lld%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &end);
    if (got != 7 || s[end])
        return false;
    for (int k = 0; k < 7; k++)
        if (v[k] < 1 || v[k] > 1 << 30)
            return false;
    double x = (double)v[0] * v[1] * v[2] * v[3], k = (double)v[4] * v[5] * v[3] * v[6];
    double y = (double)v[0] * (double)(v[1] - v[4] + 1) * (double)(v[2] - v[5] + 1) * v[6];
    if (v[4] > v[1] || v[5] > v[2] || x > 0x1p30 || k > 0x1p30 || y > 0x1p30)
        return false;
    for (int i = 0; i < 7; i++)
        d[i] = v[i];
    return true;
}

int main(int argc, char **argv) {
    /* examples/cnn.nn's conv2d 32, 3 on [28, 28, 1] and conv2d 64, 3 on
     * the pooled [13, 13, 32], batch 128 */
    static const int64_t defaults[][7] = {{128, 28, 28, 1, 3, 3, 32}, {128, 13, 13, 32, 3, 3, 64}};
    int first = 1;
    if (argc > 2 && !strcmp(argv[1], "--threads")) {
        nnrt_set_threads(atoi(argv[2]));
        first = 3;
    }
    int64_t (*layers)[7] = xcalloc((size_t)argc + 2, sizeof *layers);
    int nlayers = 0;
    for (int i = first; i < argc; i++, nlayers++)
        if (!parse_layer(argv[i], layers[nlayers])) {
            fprintf(stderr, "nnc-bench-conv: expected N,H,W,C,KH,KW,F (a kernel no larger than the image, "
                            "tensors of at most 2^30 elements), found '%s'\n",
                    argv[i]);
            return 2;
        }
    if (!nlayers)
        for (; nlayers < 2; nlayers++)
            memcpy(layers[nlayers], defaults[nlayers], sizeof defaults[0]);
    double before = peak_gflops(), (*gflops)[3] = xcalloc((size_t)nlayers, sizeof *gflops);
    for (int i = 0; i < nlayers; i++)
        bench_layer(layers[i], gflops[i]);
    double after = peak_gflops(), peak = before > after ? before : after;
    if (peak > 0)
        printf("peak %d threads, %d-bit float FMAs: %.1f GFLOP/s (before %.1f, after %.1f)\n", nnrt_threads(),
               peak_lanes * 32, peak, before, after);
    else
        printf("peak unknown (no AVX2 or AVX-512 FMA)\n");
    /* What a training step runs: every op but the first layer's data
     * gradient (its input is the data, which needs none), weighed by its
     * flop: their total over their total time. */
    double flop = 0, secs = 0;
    for (int i = 0; i < nlayers; i++)
        for (int w = 0; w < 3; w++)
            if (i > 0 || w != DATA) {
                flop += layer_flop(layers[i]);
                secs += layer_flop(layers[i]) / (gflops[i][w] * 1e9);
            }
    for (int i = 0; i < nlayers; i++)
        for (int w = 0; w < 3; w++) {
            const int64_t *d = layers[i];
            printf("nnc conv2d %lld,%lld,%lld,%lld,%lld,%lld,%lld %-7s gflops=%.1f", (long long)d[0], (long long)d[1],
                   (long long)d[2], (long long)d[3], (long long)d[4], (long long)d[5], (long long)d[6], which_name[w],
                   gflops[i][w]);
            if (peak > 0)
                printf(" peak=%.1f%%", 100 * gflops[i][w] / peak);
            printf("\n");
        }
    printf("nnc training convolutions (all but the first layer's data gradient) gflops=%.1f", flop / secs / 1e9);
    if (peak > 0)
        printf(" peak=%.1f%%", 100 * flop / secs / 1e9 / peak);
    printf("\n");
    free(gflops);
    free(layers);
    return 0;
}
