/* pipeline.c — the compiler's stages in order, written out once. Every user
 * (the command line, its --emit=, the REPL, scripts, gradcheck) runs them
 * through here, so what `:kernels` shows is what `:train` runs.
 *
 *   source ─parse.c─▶ AST ─sema.c (+ model.c, layers.c, loss.c)─▶ Model    (the front end)
 *   Model ─model.c─▶ forward IR ─autodiff.c─▶ gradients ─optim.c─▶ update   (step.c: a step graph)
 *   step graphs ─conv_gemm.c, remat.c at -O2, fuse.c, fuse_rows.c─▶ schedules ─layout.c─▶ weights' layout
 *   ─codegen.c, cg_matmul.c, cg_rows.c, cg_guard.c─▶ LLVM IR ─jit.c─▶ machine code
 *   ─runtime (session.c, runtime/)─▶ data, training, evaluation
 *
 * The front end (parse, sema) is run by its users, which differ in what
 * they parse (a file, a REPL entry, a --schedule option); a model's part
 * starts at pipeline_plan, for the Target the driver chose once (target.c).
 * --emit= stops at the points below: ast after parsing, ir and grad at
 * pipeline_plan's graphs, kernels at its schedules, llvm at
 * pipeline_codegen's modules, asm at the JIT's code.
 */
#include "nnc.h"

#include <stdlib.h>

Plan pipeline_plan(Arena *a, const Model *m, int opt, InputType in, const Target *t, bool allreduce) {
    Plan p;
    step_graphs(a, m, m->batch, DT_F32, in, &p.ir[PLAN_TRAIN], &p.ir[PLAN_EVAL], allreduce);
    for (int i = 0; i < PLAN_STEPS; i++) {
        p.g[i] = p.ir[i];
        p.s[i] = pipeline_schedule(a, &p.g[i], opt, t);
    }
    layout_choose(a, p.g[PLAN_TRAIN], p.s[PLAN_TRAIN], p.g[PLAN_EVAL], p.s[PLAN_EVAL]);
    return p;
}

Schedule *pipeline_schedule(Arena *a, Graph **g, int opt, const Target *t) {
    if (opt >= 2)
        *g = remat(conv_gemm(*g));
    return schedule(a, *g, opt, t);
}

CgModule *pipeline_codegen(const char *module, int n, const char *const *fns, Graph *const *g,
                           Schedule *const *s) {
    CgModule *m = cg_module_new(module);
    for (int i = 0; i < n; i++)
        cg_add_step(m, fns[i], g[i], s[i]);
    return m;
}

static const char *const step_names[PLAN_STEPS] = {[PLAN_TRAIN] = "train_step", [PLAN_EVAL] = "eval_step"};

CgModule *pipeline_plan_codegen(const Plan *p, int step) {
    return pipeline_codegen(step_names[step], 1, &step_names[step], &p->g[step], &p->s[step]);
}

bool pipeline_compile(const Plan *p, int64_t batch, Compiled *c, Diag *d) {
    /* One module per function, so they compile in parallel; the training
     * step, the larger, first. */
    NnrtStep *steps[PLAN_STEPS] = {[PLAN_TRAIN] = &c->train_step, [PLAN_EVAL] = &c->eval_step};
    CgModule *mods[PLAN_STEPS];
    c->train = p->g[PLAN_TRAIN];
    c->sched = p->s[PLAN_TRAIN];
    c->arena_bytes = 0;
    for (int i = 0; i < PLAN_STEPS; i++) {
        mods[i] = pipeline_plan_codegen(p, i);
        if (p->s[i]->arena_bytes > c->arena_bytes)
            c->arena_bytes = p->s[i]->arena_bytes;
    }
    const Target *t = c->sched->target;
    cg_add_guard(mods[PLAN_TRAIN], "state_finite", c->train, c->sched, t);
    char err[1024];
    c->jit = jit_compile_modules(mods, PLAN_STEPS, t, err, sizeof err); /* takes the modules */
    if (!c->jit) {
        diag_plain(d, "%s", err);
        return false;
    }
    if (getenv("NNC_PERF_MAP") && !jit_write_perf_map(c->jit, err, sizeof err)) {
        diag_plain(d, "%s", err);
        return false;
    }
    for (int i = 0; i < PLAN_STEPS; i++) {
        *steps[i] = (NnrtStep){(NnrtStepFn)jit_lookup(c->jit, step_names[i], err, sizeof err), (size_t)batch};
        if (!steps[i]->fn) {
            diag_plain(d, "%s", err);
            return false;
        }
    }
    c->finite = (int (*)(void **))jit_lookup(c->jit, "state_finite", err, sizeof err);
    if (!c->finite) {
        diag_plain(d, "%s", err);
        return false;
    }
    return true;
}
