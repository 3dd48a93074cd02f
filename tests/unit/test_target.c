/* test_target.c — the target is chosen once (target.c). target_host()
 * reads the host and NNC_TARGET_FEATURES, NNC_KC and NNC_PANELS; the stages
 * then follow the Target they are given: changing the environment
 * afterwards changes nothing scheduled for it, a second target_host() sees
 * the change, and a Target made by hand (plain SSE2, whatever the host)
 * drives scheduling, code generation and the JIT on its own.
 */
#include "nnc.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const Loc L0;

enum { M = 8, K = 64, N = 24 };

/* C = A P^T: a weight P [N, K] read as a transpose, which the matmul kernel
 * packs in blocks of the target's KC rows. */
static Graph *matmul_graph(Arena *a, NodeId *mm) {
    Graph *g = ir_new(a, DT_F32);
    Shape sa = {2, {M, K}}, sp = {2, {N, K}}, sc = {2, {M, N}};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId A = ir_leaf(g, OP_INPUT, ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = "a", .shape = sa}), sa, L0);
    NodeId P = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "p", .shape = sp}), sp, L0);
    int out = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "c", .shape = sc});
    *mm = ir_matmul(g, A, ir_transpose(g, P, L0), L0);
    ir_add_output(g, *mm, out);
    return g;
}

/* The assembly of g's step for t, malloc'd. */
static char *assembly(Arena *a, Graph *g, const Target *t) {
    CgModule *mod = cg_module_new("mm");
    cg_add_step(mod, "mm", g, schedule(a, g, 2, t));
    char *text = NULL, err[512];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!CHECK(f && jit_emit_asm(mod, t, f, err, sizeof err)))
        printf("  %s\n", err);
    if (f)
        fclose(f);
    cg_module_free(mod);
    return text;
}

/* Compiles g for t and checks C = A P^T on small integers (exact in float). */
static void check_runs(Arena *a, Graph *g, const Target *t) {
    Schedule *s = schedule(a, g, 2, t);
    CgModule *mod = cg_module_new("mm");
    cg_add_step(mod, "mm", g, s);
    char err[512];
    Jit *jit = jit_compile(mod, t, err, sizeof err); /* takes mod */
    NnrtStepFn fn = jit ? (NnrtStepFn)jit_lookup(jit, "mm", err, sizeof err) : NULL;
    if (!CHECK(fn != NULL)) {
        printf("  %s\n", err);
        jit_free(jit);
        return;
    }
    float *A = xcalloc64(M * K, sizeof *A), *P = xcalloc64(N * K, sizeof *P), *C = xcalloc64(M * N, sizeof *C);
    for (int i = 0; i < M * K; i++)
        A[i] = (float)(i % 7 - 3);
    for (int i = 0; i < N * K; i++)
        P[i] = (float)(i % 5 - 2);
    void *slots[4] = {xcalloc64(s->arena_bytes + 1, 1), A, P, C};
    fn(slots, M);
    int wrong = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float want = 0;
            for (int k = 0; k < K; k++)
                want += A[i * K + k] * P[j * K + k];
            wrong += C[i * N + j] != want;
        }
    CHECK(wrong == 0);
    for (int i = 0; i < 4; i++)
        free(slots[i]);
    jit_free(jit);
}

int main(void) {
    unsetenv("NNC_TARGET_FEATURES");
    unsetenv("NNC_KC");
    unsetenv("NNC_PANELS");
    Arena *a = arena_new();
    NodeId mm;
    Graph *g = matmul_graph(a, &mm);
    Target *host = target_host();
    CHECK(host->kc == 0 && host->panels);
    int64_t pw = cg_matmul_panel_width(g, host);
    int64_t rows = cg_matmul_block_rows(g, schedule(a, g, 2, host), mm);
    CHECK(rows == K); /* all of K in one block */

    /* The environment changed after the target was chosen: nothing follows it. */
    setenv("NNC_TARGET_FEATURES", "-avx512f,-avx2,-fma,-avx", 1);
    setenv("NNC_KC", "8", 1);
    setenv("NNC_PANELS", "0", 1);
    CHECK(cg_matmul_panel_width(g, host) == pw);
    CHECK(cg_matmul_block_rows(g, schedule(a, g, 2, host), mm) == rows);

    /* The next target chosen sees it. */
    Target *narrow = target_host();
    const char *tail = ",-avx512f,-avx2,-fma,-avx";
    size_t nf = strlen(narrow->features), nt = strlen(tail);
    CHECK(nf > nt && strcmp(narrow->features + nf - nt, tail) == 0);
    CHECK(narrow->vector_bits == 128 && narrow->kc == 8 && !narrow->panels);
    CHECK(cg_matmul_panel_width(g, narrow) == (host->vector_bits == 128 ? pw : 2 * 128 / 32));
    CHECK(cg_matmul_block_rows(g, schedule(a, g, 2, narrow), mm) == 8);
    check_runs(a, g, narrow);
    check_runs(a, g, host);

    /* A target made by hand, without asking the host: baseline x86-64. */
    char cpu[] = "x86-64", features[] = "+sse2";
    Target sse2 = {.cpu = cpu, .features = features, .vector_bits = 128, .kc = 16, .panels = true};
    CHECK(cg_matmul_block_rows(g, schedule(a, g, 2, &sse2), mm) == 16);
    check_runs(a, g, &sse2);
    /* Its code is SSE's (no VEX encoding, no FMA), whatever the host has. */
    char *text = assembly(a, g, &sse2);
    CHECK(text && strstr(text, "mulps") && !strstr(text, "vmovups") && !strstr(text, "vfmadd"));
    free(text);

    target_free(narrow);
    target_free(host);
    arena_free(a);
    return check_summary();
}
