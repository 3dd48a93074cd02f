/* gradcheck.c — the symbolic gradient against central differences.
 *
 * Both sides run through the real pipeline (autodiff, codegen, JIT) in
 * float64, so this checks the differentiation rules and the code generated
 * for them together: d L/d p[i] ~ (L(p + h e_i) - L(p - h e_i)) / 2h, at the
 * point training starts from: the parameters drawn from their own
 * initializers, the model's inline data if it has some (else random inputs
 * and labels).
 * The step trades truncation (~h^2) against rounding (~eps |L| / h, larger
 * than eps alone because L sums thousands of terms). Measured on the
 * examples: h = 1e-7 gives errors near 1e-5 (rounding), 1e-3 near 1e-6
 * (truncation), 1e-4 about 1e-8, so 1e-4 it is, with the differences at h
 * and h/2 combined (Richardson) to cancel the h^2 term: a layer norm's
 * steep curvature left 2e-5 at h alone. A gradient element so small that
 * the differences' rounding error alone would reach the tolerance is
 * measured against the smallest one it would not (a residual net's 1e-6
 * elements failed on rounding).
 *
 * Kinks: relu, abs, maximum, max... have no derivative at their kink, and a
 * difference whose two points lie on both sides of one measures neither
 * side's slope (a correct ReLU net failed on some seeds that way). So the
 * forward pass also returns, for each such op, which side of its kink every
 * element is on; an element whose perturbation moves one across is checked
 * with a one-sided difference of the same order, (3 L(p) - 4 L(p - h) +
 * L(p - 2h)) / 2h or its mirror, on the side where nothing crosses, and is
 * skipped (and counted) when both sides cross: the point is on the kink.
 */
#include "nnc.h"
#include "nnrt.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* L's rounding error in ulps of |L|: its sums of thousands of terms round
 * more than once (measured: 1-2 ulps on a 784-input net's loss). */
#define ROUNDING_ULPS 4

static size_t slot_elems(const Slot *s) { return (size_t)shape_elems(&s->shape); }

/* A node whose value says which side of node `id`'s kink (or step) each
 * element is on, or -1 if the op is smooth. */
static NodeId kink_side(Graph *g, NodeId id) {
    IrNode n = g->nodes[id];
    switch (n.op) {
    case OP_RELU:
    case OP_ABS:
    case OP_LEAKY_RELU: return ir_unary(g, OP_STEP, n.in[0], n.loc);
    case OP_ELU: /* its slopes meet at 0 when alpha = 1 */
        return n.value == 1 ? -1 : ir_unary(g, OP_STEP, n.in[0], n.loc);
    case OP_MAXIMUM:
    case OP_MINIMUM: return ir_unary(g, OP_STEP, ir_binary(g, OP_SUB, n.in[0], n.in[1], n.loc), n.loc);
    case OP_MAX:
    case OP_MIN: return ir_binary(g, OP_EQ, n.in[0], id, n.loc); /* which elements are the extreme */
    case OP_STEP:
    case OP_SIGN:
    case OP_FLOOR:
    case OP_EQ:
    case OP_ONEHOT:
    case OP_RANDOM: return id; /* piecewise constant: its value is the side */
    case OP_MAXPOOL:
    case OP_MAXPOOL_PICK:
    case OP_MAXPOOL_GRAD: { /* where each window's first maximum is: how often each element is one */
        NodeId windows = n.op == OP_MAXPOOL_GRAD ? n.in[1] : id;
        const IrNode *w = &g->nodes[windows], *x = &g->nodes[n.in[0]];
        NodeId ones = ir_const_axes(g, 1, w->shape, w->batch_axes, n.loc);
        return ir_window(g, OP_MAXPOOL_GRAD, n.in[0], ones, n.win, x->shape, x->batch_axes, n.loc);
    }
    case OP_INPUT:
    case OP_LABEL:
    case OP_PARAM:
    case OP_STATE:
    case OP_CONST:
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_POW:
    case OP_NEG:
    case OP_EXP:
    case OP_LOG:
    case OP_SIGMOID:
    case OP_TANH:
    case OP_SQRT:
    case OP_SIN:
    case OP_COS:
    case OP_BCE_LOGITS: /* max(a, 0) + ln(1 + e^-|a|) = ln(1 + e^a): smooth */
    case OP_SUM:
    case OP_LOGSOFTMAX: /* its max cancels */
    case OP_MATMUL:
    case OP_TRANSPOSE:
    case OP_RESHAPE:
    case OP_BROADCAST:
    case OP_CONCAT:
    case OP_SLICE:
    case OP_CONV2D:
    case OP_CONV2D_DATA:
    case OP_CONV2D_FILTER:
    case OP_AVGPOOL:
    case OP_AVGPOOL_GRAD:
    case OP_IM2COL:
    case OP_COL2IM:
    case OP_ALLREDUCE: return -1;
    }
    unreachable();
}

/* The kink sides of every node among the first n of g, as outputs in slots
 * of their own; their slots are returned, *count of them. */
static int *add_kink_sides(Graph *g, int n, int *count) {
    int *slots = arena_array(g->arena, (size_t)n + 1, sizeof *slots);
    *count = 0;
    for (NodeId i = 0; i < n; i++) {
        NodeId side = kink_side(g, i);
        if (side < 0)
            continue;
        int s = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "kink side", .shape = g->nodes[side].shape});
        ir_add_output(g, side, s);
        slots[(*count)++] = s;
    }
    return slots;
}

/* The buffers the forward pass runs on: the model's data cycled through the
 * batch if it has some, else random inputs and labels; the parameters from
 * their initializers; everything else zero. */
static void **make_slots(const Graph *g, size_t arena_bytes, int64_t classes, const ModelData *data, NnrtRng *rng) {
    void **slots = xcalloc((size_t)g->nslots, sizeof *slots);
    slots[0] = xcalloc(arena_bytes + 64, 1);
    for (int s = 1; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        size_t n = slot_elems(sl);
        double *p = xcalloc(n, sizeof *p);
        const double *given = !data ? NULL : sl->kind == SLOT_INPUT ? data->x : sl->kind == SLOT_LABEL ? data->y : NULL;
        size_t per_sample = given ? n / (size_t)sl->shape.dim[0] : 0; /* a batch on the leading axis */
        if (given)
            for (size_t i = 0; i < n; i++)
                p[i] = given[(i / per_sample) % (size_t)data->n * per_sample + i % per_sample];
        else if (sl->kind == SLOT_INPUT)
            for (size_t i = 0; i < n; i++)
                p[i] = nnrt_rng_uniform(rng);
        else if (sl->kind == SLOT_LABEL)
            for (size_t i = 0; i < n; i++)
                p[i] = classes > 0 ? (double)(nnrt_rng_next(rng) % (uint64_t)classes) : nnrt_rng_normal(rng);
        else if (sl->kind == SLOT_PARAM)
            nnrt_init_fill(rng, &sl->init, sl->fan_in, sl->fan_out, p, n, 8);
        slots[s] = p;
    }
    return slots;
}

/* The compiled forward pass, and what it is checked against. */
typedef struct Probe {
    NnrtStepFn fwd;
    void **slots;
    int64_t batch;
    int loss_slot;
    const Graph *g;
    const int *side_slots;
    int nsides;
    size_t nside;       /* their elements */
    double *base_sides; /* the sides at the unperturbed point, side by side */
    double *sides;      /* scratch for the perturbed point */
} Probe;

/* The sides of the last forward pass, into out. */
static void read_sides(const Probe *pr, double *out) {
    for (int k = 0; k < pr->nsides; k++) {
        size_t n = slot_elems(&pr->g->slots[pr->side_slots[k]]);
        memcpy(out, pr->slots[pr->side_slots[k]], n * sizeof *out);
        out += n;
    }
}

/* L with *p = x + t h; *crossed set if a kink lies between there and the
 * unperturbed point. */
static double loss_at(Probe *pr, double *p, double x, double t, double h, bool *crossed) {
    *p = x + t * h;
    pr->fwd(pr->slots, pr->batch);
    read_sides(pr, pr->sides);
    *crossed |= memcmp(pr->sides, pr->base_sides, pr->nside * sizeof *pr->sides) != 0;
    return *(double *)pr->slots[pr->loss_slot];
}

/* The numerical derivative of L in *p (its value x, L there l0), in *out,
 * and its rounding error in *noise: central if no kink lies within h of x,
 * else one-sided on a side without one within 2h; false if both sides have
 * one. Either difference is taken at h and at h/2 and the two combined
 * (Richardson) so that their h^2 terms cancel; the combination weighs L's
 * rounding error (taken as ROUNDING_ULPS of |L|) by 3/h, one-sided 12/h. */
static bool numeric(Probe *pr, double *p, double x, double l0, double *out, double *noise) {
    double h = 1e-4 * (fabs(x) > 1 ? fabs(x) : 1);
    bool cp = false, cm = false;
    double lp = loss_at(pr, p, x, 1, h, &cp), lp2 = loss_at(pr, p, x, 0.5, h, &cp);
    double lm = loss_at(pr, p, x, -1, h, &cm), lm2 = loss_at(pr, p, x, -0.5, h, &cm);
    *p = x;
    if (!cp && !cm) {
        double d_h = (lp - lm) / (2 * h), d_h2 = (lp2 - lm2) / h;
        *out = (4 * d_h2 - d_h) / 3;
        *noise = 3 * ROUNDING_ULPS * DBL_EPSILON * fabs(l0) / h;
        return true;
    }
    for (int s = -1; s <= 1; s += 2) { /* (-3 L(0) + 4 L(s h) - L(2 s h)) / 2 s h */
        bool crossed = s < 0 ? cm : cp;
        double l1 = s < 0 ? lm : lp, l2 = s < 0 ? lm2 : lp2;
        double l3 = crossed ? 0 : loss_at(pr, p, x, 2 * s, h, &crossed);
        *p = x;
        if (!crossed) {
            double d_h = (-3 * l0 + 4 * l1 - l3) / (2 * s * h), d_h2 = (-3 * l0 + 4 * l2 - l1) / (s * h);
            *out = (4 * d_h2 - d_h) / 3;
            *noise = 12 * ROUNDING_ULPS * DBL_EPSILON * fabs(l0) / h;
            return true;
        }
    }
    return false;
}

double gradcheck(Graph *g, NodeId loss, int64_t classes, const ModelData *data, uint64_t seed, int per_param, int opt,
                 const Target *t, int64_t *skipped, FILE *log, char *err, size_t errlen) {
    if (g->dtype != DT_F64)
        die("gradcheck needs a float64 graph");
    Arena *a = g->arena;
    int nforward = g->nnodes;
    NodeId *params, *grads;
    int nparams = ad_param_gradients(g, loss, &params, &grads);

    int loss_slot = ir_add_slot(g, (Slot){.kind = SLOT_LOSS, .name = "loss"});
    g->noutputs = 0;
    ir_add_output(g, loss, loss_slot);
    int nsides;
    int *side_slots = add_kink_sides(g, nforward, &nsides);
    Graph *fwd = ir_dce(g);
    int *grad_slot = arena_array(a, (size_t)nparams + 1, sizeof *grad_slot);
    g->noutputs = 0;
    for (int i = 0; i < nparams; i++) {
        const Slot *p = &g->slots[g->nodes[params[i]].slot];
        grad_slot[i] = ir_add_slot(g, (Slot){.kind = SLOT_GRAD, .name = arena_printf(a, "%s.grad", p->name),
                                             .shape = p->shape});
        ir_add_output(g, grads[i], grad_slot[i]);
    }
    Graph *bwd = ir_dce(g);

    Graph *steps[] = {fwd, bwd};
    Schedule *sched[] = {pipeline_schedule(a, &steps[0], opt, t), pipeline_schedule(a, &steps[1], opt, t)};
    CgModule *mod = pipeline_codegen("gradcheck", 2, (const char *const[]){"forward", "backward"}, steps, sched);
    Jit *jit = jit_compile(mod, t, err, errlen); /* takes mod */
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
    size_t arena_bytes = sched[0]->arena_bytes > sched[1]->arena_bytes ? sched[0]->arena_bytes : sched[1]->arena_bytes;
    void **slots = make_slots(g, arena_bytes, classes, data, &rng);
    size_t nside = 0;
    for (int k = 0; k < nsides; k++)
        nside += slot_elems(&g->slots[side_slots[k]]);
    Probe pr = {.fwd = fwd_fn, .slots = slots, .batch = g->batch, .loss_slot = loss_slot, .g = g,
                .side_slots = side_slots, .nsides = nsides, .nside = nside,
                .base_sides = xcalloc(nside + 1, sizeof(double)), .sides = xcalloc(nside + 1, sizeof(double))};
    bwd_fn(slots, g->batch);
    fwd_fn(slots, g->batch);
    read_sides(&pr, pr.base_sides);
    double l0 = *(double *)slots[loss_slot], worst = 0;
    *skipped = 0;
    for (int k = 0; k < nparams; k++) {
        const Slot *ps = &g->slots[g->nodes[params[k]].slot];
        double *p = slots[g->nodes[params[k]].slot], *an = slots[grad_slot[k]];
        size_t n = slot_elems(ps), count = n < (size_t)per_param ? n : (size_t)per_param, at_kink = 0;
        double param_worst = 0, num, noise;
        for (size_t c = 0; c < count; c++) {
            size_t i = count == n ? c : (size_t)(nnrt_rng_next(&rng) % n);
            if (!numeric(&pr, &p[i], p[i], l0, &num, &noise)) {
                at_kink++;
                continue;
            }
            /* A gradient so small that rounding alone would reach the
             * tolerance is measured against the smallest one it would not. */
            double denom = fmax(fabs(an[i]) + fabs(num), fmax(noise / GRADCHECK_TOLERANCE, 1e-10));
            double rel = fabs(an[i] - num) / denom;
            if (!(rel <= param_worst)) /* NaN too: a loss NaN at the point fails */
                param_worst = rel;
        }
        if (log)
            fprintf(log, "gradcheck %-24s %6zu of %8zu elements  max rel. error %.2e%s\n", ps->name, count - at_kink,
                    n, param_worst, at_kink ? arena_printf(a, " (skipped at a kink: %zu)", at_kink) : "");
        if (!(param_worst <= worst))
            worst = param_worst;
        *skipped += (int64_t)at_kink;
    }
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
    free(pr.base_sides);
    free(pr.sides);
    jit_free(jit);
    return worst;
}
