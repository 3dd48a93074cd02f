/* test_optim.c — optimizer updates (optim.c) run through codegen and the JIT
 * in float64, against their formulas computed here step by step.
 *
 *   1. The first three steps of adam, rmsprop, adagrad, adadelta and adamax
 *      on the quadratic L = sum((p - 1)^2), from Keras' formulas (Adam's
 *      bias correction included, Adagrad's initial accumulator value too),
 *      and with clipvalue, clipnorm and weight decay.
 *   2. The notes' normalised step: with bias correction gone (t large),
 *      m = g = [3, -2, 5] and v = g^2 = [9, 4, 25], the step is
 *      lr m / (sqrt v + eps) = lr [1, -1, 1].
 */
#include "nnc.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_close(const char *what, int step, double got, double want) {
    double err = fabs(got - want) / fmax(fabs(want), 1e-12);
    if (err < 1e-12) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s, step %d: %.17g, expected %.17g\n", what, step, got, want);
    }
}

static const Loc L0;

/* One step function: loss(p, q) = sum(f(p, q)), its gradient in p, the
 * update of p; slots as the graph numbers them. */
static NnrtStepFn compile(Graph *g, const Model *m, NodeId p, NodeId loss, Jit **jit) {
    NodeId grad;
    ad_gradients(g, loss, &p, 1, &grad);
    optim_update(g, m, &p, &grad, 1);
    Graph *d = ir_dce(g);
    CgModule *mod = cg_module_new("optim");
    cg_add_step(mod, "step", d, schedule(g->arena, d, 2));
    char err[512];
    *jit = jit_compile(mod, err, sizeof err);
    NnrtStepFn fn = *jit ? (NnrtStepFn)jit_lookup(*jit, "step", err, sizeof err) : NULL;
    if (!fn) {
        printf("FAIL jit: %s\n", err);
        exit(1);
    }
    return fn;
}

static void **alloc_slots(const Graph *g, size_t arena_bytes) {
    void **slots = calloc((size_t)g->nslots, sizeof *slots);
    slots[0] = calloc(arena_bytes + 4096, 1);
    for (int s = 1; s < g->nslots; s++)
        slots[s] = calloc((size_t)shape_elems(&g->slots[s].shape), sizeof(double));
    return slots;
}

static int slot_named(const Graph *g, const char *name) {
    for (int s = 0; s < g->nslots; s++)
        if (!strcmp(g->slots[s].name, name))
            return s;
    printf("FAIL no slot %s\n", name);
    exit(1);
}

/* The reference: one step of an optimizer's formula on p, with its state. */
typedef struct Ref {
    double p[3], s1[3], s2[3];
    int t;
} Ref;
typedef void (*Formula)(const Model *m, Ref *r);

static double quad_grad(double p) { return 2 * (p - 1); } /* d/dp (p - 1)^2 */

static void ref_adam(const Model *m, Ref *r) {
    r->t++;
    double alpha = m->lr * sqrt(1 - pow(m->beta2, r->t)) / (1 - pow(m->beta1, r->t));
    for (int i = 0; i < 3; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] += (g - r->s1[i]) * (1 - m->beta1);
        r->s2[i] += (g * g - r->s2[i]) * (1 - m->beta2);
        r->p[i] -= r->s1[i] * alpha / (sqrt(r->s2[i]) + m->epsilon);
    }
}

static void ref_rmsprop(const Model *m, Ref *r) {
    for (int i = 0; i < 3; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] = m->rho * r->s1[i] + (1 - m->rho) * g * g;
        r->p[i] -= m->lr * g / (sqrt(r->s1[i]) + m->epsilon);
    }
}

static void ref_adagrad(const Model *m, Ref *r) {
    for (int i = 0; i < 3; i++) {
        double g = quad_grad(r->p[i]);
        if (r->t == 0)
            r->s1[i] = m->accumulator;
        r->s1[i] += g * g;
        r->p[i] -= m->lr * g / (sqrt(r->s1[i]) + m->epsilon);
    }
    r->t++;
}

static void ref_adadelta(const Model *m, Ref *r) {
    for (int i = 0; i < 3; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] = m->rho * r->s1[i] + (1 - m->rho) * g * g;
        double d = -sqrt(r->s2[i] + m->epsilon) / sqrt(r->s1[i] + m->epsilon) * g;
        r->s2[i] = m->rho * r->s2[i] + (1 - m->rho) * d * d;
        r->p[i] += m->lr * d;
    }
}

static void ref_adamax(const Model *m, Ref *r) {
    r->t++;
    for (int i = 0; i < 3; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] += (g - r->s1[i]) * (1 - m->beta1);
        r->s2[i] = fmax(m->beta2 * r->s2[i], fabs(g));
        r->p[i] -= m->lr * r->s1[i] / ((1 - pow(m->beta1, r->t)) * (r->s2[i] + m->epsilon));
    }
}

/* rmsprop after Keras' clipvalue and weight decay: g clipped to [-c, c],
 * p decayed by p wd lr, then the step. */
static void ref_rmsprop_clip_decay(const Model *m, Ref *r) {
    for (int i = 0; i < 3; i++) {
        double g = fmin(fmax(quad_grad(r->p[i]), -m->clipvalue), m->clipvalue);
        double p = r->p[i] - r->p[i] * m->weight_decay * m->lr;
        r->s1[i] = m->rho * r->s1[i] + (1 - m->rho) * g * g;
        r->p[i] = p - m->lr * g / (sqrt(r->s1[i]) + m->epsilon);
    }
}

/* adam after clipnorm: the gradient scaled to a norm of at most c. */
static void ref_adam_clipnorm(const Model *m, Ref *r) {
    double g[3], norm = 0;
    for (int i = 0; i < 3; i++) {
        g[i] = quad_grad(r->p[i]);
        norm += g[i] * g[i];
    }
    norm = sqrt(norm);
    r->t++;
    double alpha = m->lr * sqrt(1 - pow(m->beta2, r->t)) / (1 - pow(m->beta1, r->t));
    for (int i = 0; i < 3; i++) {
        double gc = g[i] * m->clipnorm / fmax(norm, m->clipnorm);
        r->s1[i] += (gc - r->s1[i]) * (1 - m->beta1);
        r->s2[i] += (gc * gc - r->s2[i]) * (1 - m->beta2);
        r->p[i] -= r->s1[i] * alpha / (sqrt(r->s2[i]) + m->epsilon);
    }
}

/* Three steps on L = sum((p - 1)^2) from p = [3, -2, 0.5]. */
static void quadratic(const char *what, Model m, Formula formula) {
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F64);
    Shape v3 = {1, {3}};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId p = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "p", .shape = v3}), v3, L0);
    NodeId d = ir_binary(g, OP_SUB, p, ir_const(g, 1, (Shape){0}, L0), L0);
    NodeId loss = ir_sum(g, ir_binary(g, OP_MUL, d, d, L0), -1, L0);
    Jit *jit;
    NnrtStepFn fn = compile(g, &m, p, loss, &jit);
    void **slots = alloc_slots(g, 1 << 16);
    double *pv = slots[slot_named(g, "p")];
    Ref r = {.p = {3, -2, 0.5}};
    memcpy(pv, r.p, sizeof r.p);
    for (int t = 1; t <= 3; t++) {
        fn(slots, g->batch);
        formula(&m, &r);
        for (int i = 0; i < 3; i++)
            check_close(what, t, pv[i], r.p[i]);
    }
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
    jit_free(jit);
    arena_free(a);
}

static void adam_normalised_step(void) {
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F64);
    Shape v3 = {1, {3}};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId p = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "p", .shape = v3}), v3, L0);
    NodeId q = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "q", .shape = v3}), v3, L0);
    NodeId loss = ir_sum(g, ir_binary(g, OP_MUL, p, q, L0), -1, L0); /* dL/dp = q */
    Model m = {.opt = OPT_ADAM, .lr = 0.5, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-7};
    Jit *jit;
    NnrtStepFn fn = compile(g, &m, p, loss, &jit);
    void **slots = alloc_slots(g, 1 << 16);
    double gr[3] = {3, -2, 5}, v[3] = {9, 4, 25};
    memcpy(slots[slot_named(g, "q")], gr, sizeof gr);
    memcpy(slots[slot_named(g, "p.m")], gr, sizeof gr);
    memcpy(slots[slot_named(g, "p.v")], v, sizeof v);
    *(double *)slots[slot_named(g, "adam.step")] = 1e6; /* beta^t = 0: no bias correction */
    fn(slots, g->batch);
    double *pv = slots[slot_named(g, "p")];
    static const double normalised[3] = {1, -1, 1};
    for (int i = 0; i < 3; i++) /* p was 0: p' = -lr m / (sqrt v + eps) */
        check_close("adam normalised step", 1, -pv[i] / m.lr, normalised[i] * sqrt(v[i]) / (sqrt(v[i]) + m.epsilon));
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
    jit_free(jit);
    arena_free(a);
}

int main(void) {
    quadratic("adam", (Model){.opt = OPT_ADAM, .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-7}, ref_adam);
    quadratic("rmsprop", (Model){.opt = OPT_RMSPROP, .lr = 0.1, .rho = 0.9, .epsilon = 1e-7}, ref_rmsprop);
    quadratic("adagrad", (Model){.opt = OPT_ADAGRAD, .lr = 0.1, .accumulator = 0.1, .epsilon = 1e-7}, ref_adagrad);
    quadratic("adadelta", (Model){.opt = OPT_ADADELTA, .lr = 1.0, .rho = 0.95, .epsilon = 1e-7}, ref_adadelta);
    quadratic("adamax", (Model){.opt = OPT_ADAMAX, .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-7},
              ref_adamax);
    quadratic("rmsprop, clipvalue, weight_decay",
              (Model){.opt = OPT_RMSPROP, .lr = 0.1, .rho = 0.9, .epsilon = 1e-7, .clipvalue = 1.5,
                      .weight_decay = 0.05},
              ref_rmsprop_clip_decay);
    quadratic("adam, clipnorm", (Model){.opt = OPT_ADAM, .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-7,
                                        .clipnorm = 2},
              ref_adam_clipnorm);
    adam_normalised_step();
    return check_summary();
}
