/* gradcheck.c — the symbolic gradient against central differences.
 *
 * Both sides run through the real pipeline (autodiff, codegen, JIT) in
 * float64, so this checks the differentiation rules and the code generated
 * for them together: d L/d p[i] ~ (L(p + h e_i) - L(p - h e_i)) / 2h.
 * The step trades truncation (~h^2) against rounding (~eps |L| / h, larger
 * than eps alone because L sums thousands of terms). Measured on the
 * examples: h = 1e-7 gives errors near 1e-5 (rounding), 1e-3 near 1e-6
 * (truncation), 1e-4 about 1e-8, so 1e-4 it is.
 */
#include "nnc.h"
#include "nnrt.h"

#include <math.h>
#include <stdlib.h>

static size_t slot_elems(const Slot *s) { return (size_t)shape_elems(&s->shape); }

double gradcheck(Graph *g, NodeId loss, int64_t classes, uint64_t seed, int per_param, int opt, FILE *log,
                 char *err, size_t errlen) {
    if (g->dtype != DT_F64)
        die("gradcheck needs a float64 graph");
    Arena *a = g->arena;
    int nparams = 0;
    NodeId *params = arena_array(a, (size_t)g->nnodes, sizeof *params);
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_PARAM)
            params[nparams++] = i;
    NodeId *grads = arena_array(a, (size_t)nparams + 1, sizeof *grads);
    ad_gradients(g, loss, params, nparams, grads);

    int loss_slot = ir_add_slot(g, (Slot){.kind = SLOT_LOSS, .name = "loss"});
    g->noutputs = 0;
    ir_add_output(g, loss, loss_slot);
    Graph *fwd = ir_dce(g);
    int *grad_slot = arena_array(a, (size_t)nparams + 1, sizeof *grad_slot);
    for (int i = 0; i < nparams; i++) {
        const Slot *p = &g->slots[g->nodes[params[i]].slot];
        grad_slot[i] = ir_add_slot(g, (Slot){.kind = SLOT_GRAD, .name = arena_printf(a, "%s.grad", p->name),
                                             .shape = p->shape});
        ir_add_output(g, grads[i], grad_slot[i]);
    }
    Graph *bwd = ir_dce(g);

    Graph *steps[] = {fwd, bwd};
    Schedule *sched[] = {schedule(a, fwd, opt), schedule(a, bwd, opt)};
    CgModule *mod = pipeline_codegen("gradcheck", 2, (const char *const[]){"forward", "backward"}, steps, sched);
    Jit *jit = jit_compile(mod, err, errlen); /* takes mod */
    if (!jit)
        return -1;
    NnrtStepFn fwd_fn = (NnrtStepFn)jit_lookup(jit, "forward", err, errlen);
    NnrtStepFn bwd_fn = fwd_fn ? (NnrtStepFn)jit_lookup(jit, "backward", err, errlen) : NULL;
    if (!bwd_fn) {
        jit_free(jit);
        return -1;
    }

    NnrtRng rng;
    nnrt_rng_seed(&rng, seed);
    void **slots = xcalloc((size_t)g->nslots, sizeof *slots);
    size_t arena_bytes = sched[0]->arena_bytes > sched[1]->arena_bytes ? sched[0]->arena_bytes : sched[1]->arena_bytes;
    slots[0] = xcalloc(arena_bytes + 64, 1);
    for (int s = 1; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        size_t n = slot_elems(sl);
        double *p = xcalloc(n, sizeof *p);
        for (size_t i = 0; i < n; i++) {
            if (sl->kind == SLOT_INPUT)
                p[i] = nnrt_rng_uniform(&rng);
            else if (sl->kind == SLOT_LABEL)
                p[i] = classes > 0 ? (double)(nnrt_rng_next(&rng) % (uint64_t)classes) : nnrt_rng_normal(&rng);
            else if (sl->kind == SLOT_PARAM) /* LeCun-normal: keeps units out of saturation */
                p[i] = nnrt_rng_normal(&rng) / sqrt(sl->fan_in > 0 ? (double)sl->fan_in : 4.0);
        }
        slots[s] = p;
    }

    bwd_fn(slots, g->batch);
    double worst = 0;
    for (int k = 0; k < nparams; k++) {
        const Slot *ps = &g->slots[g->nodes[params[k]].slot];
        double *p = slots[g->nodes[params[k]].slot], *an = slots[grad_slot[k]];
        size_t n = slot_elems(ps), count = n < (size_t)per_param ? n : (size_t)per_param;
        double param_worst = 0;
        for (size_t c = 0; c < count; c++) {
            size_t i = count == n ? c : (size_t)(nnrt_rng_next(&rng) % n);
            double x = p[i], h = 1e-4 * (fabs(x) > 1 ? fabs(x) : 1);
            p[i] = x + h;
            fwd_fn(slots, g->batch);
            double lp = *(double *)slots[loss_slot];
            p[i] = x - h;
            fwd_fn(slots, g->batch);
            double lm = *(double *)slots[loss_slot];
            p[i] = x;
            double num = (lp - lm) / (2 * h), denom = fabs(an[i]) + fabs(num);
            double rel = denom > 1e-10 ? fabs(an[i] - num) / denom : 0;
            if (rel > param_worst)
                param_worst = rel;
        }
        if (log)
            fprintf(log, "gradcheck %-24s %6zu of %8zu elements  max rel. error %.2e\n", ps->name, count, n,
                    param_worst);
        if (param_worst > worst)
            worst = param_worst;
    }
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
    jit_free(jit);
    return worst;
}
