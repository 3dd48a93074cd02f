/* matmul.c — the generated matmul kernel alone, on the shapes of MLP
 * training, for comparison with OpenBLAS (../shared/bench/peer_sgemm.py):
 *
 *   nnc-bench-matmul [--threads N] [M,K,N ...]
 *
 * prints `nnc sgemm M K N gflops=...` per shape: the best of 5 rounds of
 * enough repeats for ~1 s of work, like the peer script. The product is
 * compiled through the real pipeline (IR, schedule, codegen, JIT) as a step
 * whose output is C = A @ B. A benchmark, not a test.
 */
#include "nnc.h"
#include "nnrt.h"

#include <stdlib.h>
#include <string.h>

static const Loc L0;

static double gflops(int64_t M, int64_t K, int64_t N) {
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F32);
    Shape sa = {2, {M, K}}, sb = {2, {K, N}}, sc = {2, {M, N}};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId A = ir_leaf(g, OP_INPUT, ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = "a", .shape = sa}), sa, L0);
    NodeId B = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "b", .shape = sb}), sb, L0);
    int out = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "c", .shape = sc});
    ir_add_output(g, ir_matmul(g, A, B, L0), out);
    Target *t = target_host();
    Schedule *s = schedule(a, g, 2, t);
    CgModule *mod = cg_module_new("bench");
    cg_add_step(mod, "mm", g, s);
    char err[512];
    Jit *jit = jit_compile(mod, t, err, sizeof err);
    target_free(t);
    NnrtStepFn fn = jit ? (NnrtStepFn)jit_lookup(jit, "mm", err, sizeof err) : NULL;
    if (!fn) {
        fprintf(stderr, "nnc-bench-matmul: %s\n", err);
        exit(1);
    }
    /* 64-byte aligned, as nnc's training buffers are. */
    void *slots[4] = {xcalloc64(s->arena_bytes, 1), xcalloc64((size_t)(M * K), 4), xcalloc64((size_t)(K * N), 4),
                      xcalloc64((size_t)(M * N), 4)};
    for (int64_t i = 0; i < M * K; i++)
        ((float *)slots[1])[i] = (float)(i % 7) * 0.25f;
    for (int64_t i = 0; i < K * N; i++)
        ((float *)slots[2])[i] = (float)(i % 5) * 0.5f;
    double flop = 2.0 * (double)M * (double)K * (double)N, best = 1e30;
    int reps = (int)(3e9 / flop) > 5 ? (int)(3e9 / flop) : 5;
    for (int round = 0; round < 5; round++) {
        double t = nnrt_now();
        for (int r = 0; r < reps; r++)
            fn(slots, 0); /* a graph of fixed shapes: n is not read */
        t = (nnrt_now() - t) / reps;
        if (t < best)
            best = t;
    }
    for (int i = 0; i < 4; i++)
        free(slots[i]);
    jit_free(jit);
    arena_free(a);
    return flop / best / 1e9;
}

int main(int argc, char **argv) {
    static const int64_t defaults[][3] = {{128, 784, 512}, {784, 128, 512}, {128, 512, 784},
                                          {128, 512, 10},  {512, 128, 10},  {128, 10, 512}};
    int first = 1;
    if (argc > 2 && !strcmp(argv[1], "--threads")) {
        nnrt_set_threads(atoi(argv[2]));
        first = 3;
    }
    if (first >= argc) {
        for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
            printf("nnc sgemm %lld %lld %lld gflops=%.1f\n", (long long)defaults[i][0], (long long)defaults[i][1],
                   (long long)defaults[i][2], gflops(defaults[i][0], defaults[i][1], defaults[i][2]));
        return 0;
    }
    for (int i = first; i < argc; i++) {
        long long m, k, n;
        if (sscanf(argv[i], "%lld,%lld,%lld", &m, &k, &n) != 3 || m < 1 || k < 1 || n < 1) {
            fprintf(stderr, "nnc-bench-matmul: expected M,K,N, found '%s'\n", argv[i]);
            return 2;
        }
        printf("nnc sgemm %lld %lld %lld gflops=%.1f\n", m, k, n, gflops(m, k, n));
    }
    return 0;
}
