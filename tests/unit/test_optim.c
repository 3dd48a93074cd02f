/* test_optim.c — optimizer updates (optim.c) run through codegen and the JIT
 * in float64, against their formulas computed here step by step.
 *
 *   1. The first three steps of sgd, adam, rmsprop, adagrad, adadelta,
 *      adamax, nadam and ftrl on the quadratic L = sum((p - 1)^2) +
 *      sum((q - 1)^2) of two parameters, from Keras 3's formulas (Adam's bias
 *      correction included, Adagrad's initial accumulator value too), and
 *      with clipvalue, clipnorm, global_clipnorm, weight decay and a schedule.
 *   2. The notes' normalised step: with bias correction gone (t large),
 *      m = g = [3, -2, 5] and v = g^2 = [9, 4, 25], the step is
 *      lr m / (sqrt v + eps) = lr [1, -1, 1].
 *   3. Each learning-rate schedule's value at several step counts, against
 *      Keras' formula: one sgd step of L = sum(p) from a step count set in
 *      its slot moves p by -lr(k).
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

/* One step function: the gradient of loss in the n params, their update;
 * slots as the graph numbers them. */
static NnrtStepFn compile(Graph *g, const Model *m, NodeId *params, int n, NodeId loss, Jit **jit) {
    NodeId grads[2];
    ad_gradients(g, loss, params, n, grads);
    optim_update(g, m, params, grads, n);
    Graph *d = ir_dce(g);
    CgModule *mod = cg_module_new("optim");
    Target *t = target_host();
    cg_add_step(mod, "step", d, schedule(g->arena, d, 2, t));
    char err[512];
    *jit = jit_compile(mod, t, err, sizeof err);
    target_free(t);
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

/* The reference: one step of an optimizer's formula on p and q (p[0..2]
 * and p[3..5]), with its state. */
enum { N = 6 };
typedef struct Ref {
    double p[N], s1[N], s2[N];
    int t;
    double prod; /* nadam: u_1 ... u_t */
} Ref;
typedef void (*Formula)(const Model *m, Ref *r);

static double quad_grad(double p) { return 2 * (p - 1); } /* d/dp (p - 1)^2 */

static void ref_adam(const Model *m, Ref *r) {
    r->t++;
    double alpha = m->lr * sqrt(1 - pow(m->beta2, r->t)) / (1 - pow(m->beta1, r->t));
    for (int i = 0; i < N; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] += (g - r->s1[i]) * (1 - m->beta1);
        r->s2[i] += (g * g - r->s2[i]) * (1 - m->beta2);
        r->p[i] -= r->s1[i] * alpha / (sqrt(r->s2[i]) + m->epsilon);
    }
}

static void ref_rmsprop(const Model *m, Ref *r) {
    for (int i = 0; i < N; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] = m->rho * r->s1[i] + (1 - m->rho) * g * g;
        r->p[i] -= m->lr * g / sqrt(r->s1[i] + m->epsilon);
    }
}

static void ref_adagrad(const Model *m, Ref *r) {
    for (int i = 0; i < N; i++) {
        double g = quad_grad(r->p[i]);
        if (r->t == 0)
            r->s1[i] = m->accumulator;
        r->s1[i] += g * g;
        r->p[i] -= m->lr * g / sqrt(r->s1[i] + m->epsilon);
    }
    r->t++;
}

static void ref_adadelta(const Model *m, Ref *r) {
    for (int i = 0; i < N; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] = m->rho * r->s1[i] + (1 - m->rho) * g * g;
        double d = -sqrt(r->s2[i] + m->epsilon) / sqrt(r->s1[i] + m->epsilon) * g;
        r->s2[i] = m->rho * r->s2[i] + (1 - m->rho) * d * d;
        r->p[i] += m->lr * d;
    }
}

static void ref_adamax(const Model *m, Ref *r) {
    r->t++;
    for (int i = 0; i < N; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] += (g - r->s1[i]) * (1 - m->beta1);
        r->s2[i] = fmax(m->beta2 * r->s2[i], fabs(g));
        r->p[i] -= m->lr * r->s1[i] / ((1 - pow(m->beta1, r->t)) * (r->s2[i] + m->epsilon));
    }
}

/* Keras' schedules, written out here: lr at step count k. */
static double ref_schedule(const Model *m, double k) {
    double p = m->staircase ? floor(k / m->decay_steps) : k / m->decay_steps;
    switch (m->sched) {
    case SCHED_CONSTANT: return m->lr;
    case SCHED_STEP:
    case SCHED_EXPONENTIAL: return m->lr * pow(m->decay_rate, p);
    case SCHED_INVERSE_TIME: return m->lr / (1 + m->decay_rate * p);
    case SCHED_COSINE: {
        double c = 0.5 * (1 + cos(3.14159265358979323846 * fmin(k, m->decay_steps) / m->decay_steps));
        return m->lr * ((1 - m->alpha) * c + m->alpha);
    }
    }
    return NAN;
}

/* Keras' Nadam: u_t = b1 (1 - 0.96^t / 2), its running product, the
 * momentum with the next step's u, the gradient with this one's. */
static void ref_nadam(const Model *m, Ref *r) {
    r->t++;
    if (r->t == 1)
        r->prod = 1;
    double u_t = m->beta1 * (1 - 0.5 * pow(0.96, r->t)), u_t1 = m->beta1 * (1 - 0.5 * pow(0.96, r->t + 1));
    r->prod *= u_t;
    double prod1 = r->prod * u_t1;
    for (int i = 0; i < N; i++) {
        double g = quad_grad(r->p[i]);
        r->s1[i] = m->beta1 * r->s1[i] + (1 - m->beta1) * g;
        r->s2[i] = m->beta2 * r->s2[i] + (1 - m->beta2) * g * g;
        double mhat = u_t1 * r->s1[i] / (1 - prod1) + (1 - u_t) * g / (1 - r->prod);
        double vhat = r->s2[i] / (1 - pow(m->beta2, r->t));
        r->p[i] -= m->lr * mhat / (sqrt(vhat) + m->epsilon);
    }
}

/* Keras' Ftrl (McMahan et al. 2013, with shrinkage and beta): n the
 * accumulator, z the linear term, p a closed form of both. */
static void ref_ftrl(const Model *m, Ref *r) {
    for (int i = 0; i < N; i++) {
        double g = quad_grad(r->p[i]);
        if (r->t == 0)
            r->s1[i] = m->accumulator;
        double gs = g + 2 * m->l2_shrinkage * r->p[i];
        double n_new = r->s1[i] + g * g;
        double sigma = (pow(n_new, -m->lr_power) - pow(r->s1[i], -m->lr_power)) / m->lr;
        r->s2[i] += gs - sigma * r->p[i];
        double quad = pow(n_new, -m->lr_power) / m->lr + 2 * (m->l2 + m->ftrl_beta / (2 * m->lr));
        double z = r->s2[i], zc = z > m->l1 ? m->l1 : z < -m->l1 ? -m->l1 : z;
        r->p[i] = (zc - z) / quad;
        r->s1[i] = n_new;
    }
    r->t++;
}

/* sgd with momentum, after global_clipnorm (if set): all six gradients
 * scaled by c / max(c, their norm together); the lr of the schedule. */
static void ref_sgd(const Model *m, Ref *r) {
    double g[N], norm = 0;
    for (int i = 0; i < N; i++) {
        g[i] = quad_grad(r->p[i]);
        norm += g[i] * g[i];
    }
    norm = sqrt(norm);
    double lr = ref_schedule(m, r->t);
    for (int i = 0; i < N; i++) {
        double gc = m->global_clipnorm > 0 ? g[i] * m->global_clipnorm / fmax(norm, m->global_clipnorm) : g[i];
        r->s1[i] = m->momentum * r->s1[i] - lr * gc;
        r->p[i] += r->s1[i];
    }
    r->t++;
}

/* rmsprop after Keras' clipvalue and weight decay: g clipped to [-c, c],
 * p decayed by p wd lr, then the step. */
static void ref_rmsprop_clip_decay(const Model *m, Ref *r) {
    for (int i = 0; i < N; i++) {
        double g = fmin(fmax(quad_grad(r->p[i]), -m->clipvalue), m->clipvalue);
        double p = r->p[i] - r->p[i] * m->weight_decay * m->lr;
        r->s1[i] = m->rho * r->s1[i] + (1 - m->rho) * g * g;
        r->p[i] = p - m->lr * g / sqrt(r->s1[i] + m->epsilon);
    }
}

/* adam after clipnorm: each gradient (p's, q's) scaled to a norm of at most c. */
static void ref_adam_clipnorm(const Model *m, Ref *r) {
    double g[N], norm[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        g[i] = quad_grad(r->p[i]);
        norm[i / 3] += g[i] * g[i];
    }
    r->t++;
    double alpha = m->lr * sqrt(1 - pow(m->beta2, r->t)) / (1 - pow(m->beta1, r->t));
    for (int i = 0; i < N; i++) {
        double gc = g[i] * m->clipnorm / fmax(sqrt(norm[i / 3]), m->clipnorm);
        r->s1[i] += (gc - r->s1[i]) * (1 - m->beta1);
        r->s2[i] += (gc * gc - r->s2[i]) * (1 - m->beta2);
        r->p[i] -= r->s1[i] * alpha / (sqrt(r->s2[i]) + m->epsilon);
    }
}

/* Three steps on L = sum((p - 1)^2) + sum((q - 1)^2) from p = [3, -2, 0.5],
 * q = [1.5, -4, 2]. */
static void quadratic(const char *what, Model m, Formula formula) {
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F64);
    Shape v3 = {1, {3}};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId pq[2], loss = -1;
    for (int k = 0; k < 2; k++) {
        Slot sl = {.kind = SLOT_PARAM, .name = k ? "q" : "p", .shape = v3};
        pq[k] = ir_leaf(g, OP_PARAM, ir_add_slot(g, sl), v3, L0);
        NodeId d = ir_binary(g, OP_SUB, pq[k], ir_const(g, 1, (Shape){0}, L0), L0);
        NodeId l = ir_sum(g, ir_binary(g, OP_MUL, d, d, L0), -1, L0);
        loss = k ? ir_binary(g, OP_ADD, loss, l, L0) : l;
    }
    Jit *jit;
    NnrtStepFn fn = compile(g, &m, pq, 2, loss, &jit);
    void **slots = alloc_slots(g, 1 << 16);
    double *pv = slots[slot_named(g, "p")], *qv = slots[slot_named(g, "q")];
    Ref r = {.p = {3, -2, 0.5, 1.5, -4, 2}};
    memcpy(pv, r.p, 3 * sizeof *pv);
    memcpy(qv, r.p + 3, 3 * sizeof *qv);
    for (int t = 1; t <= 3; t++) {
        fn(slots, g->batch);
        formula(&m, &r);
        for (int i = 0; i < N; i++)
            check_close(what, t, i < 3 ? pv[i] : qv[i - 3], r.p[i]);
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
    NnrtStepFn fn = compile(g, &m, &p, 1, loss, &jit);
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

/* lr(k) for several k: p = 0, L = sum(p) (gradient 1), one sgd step from a
 * step count of k leaves p = -lr(k) and the count at k + 1. */
static void schedule_values(const char *what, Model m) {
    static const double ks[] = {0, 1, 7, 99, 100, 101, 250, 999, 1000, 5000};
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F64);
    Shape v1 = {1, {1}};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId p = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "p", .shape = v1}), v1, L0);
    Jit *jit;
    NnrtStepFn fn = compile(g, &m, &p, 1, ir_sum(g, p, -1, L0), &jit);
    void **slots = alloc_slots(g, 1 << 16);
    /* a constant lr needs no count */
    double *pv = slots[slot_named(g, "p")], *kv = m.sched ? slots[slot_named(g, "sgd.step")] : NULL;
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        *pv = 0;
        if (kv)
            *kv = ks[i];
        fn(slots, g->batch);
        check_close(what, (int)ks[i], -*pv, ref_schedule(&m, ks[i]));
        if (kv)
            check_close(what, (int)ks[i], *kv, ks[i] + 1);
    }
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
    /* A large epsilon, so that where it goes shows: Keras 3 adds it under the
     * square root (tf.keras' optimizer_v2 added it to the root). */
    quadratic("rmsprop, epsilon 0.5", (Model){.opt = OPT_RMSPROP, .lr = 0.1, .rho = 0.9, .epsilon = 0.5}, ref_rmsprop);
    quadratic("adagrad, epsilon 0.5", (Model){.opt = OPT_ADAGRAD, .lr = 0.1, .accumulator = 0.1, .epsilon = 0.5},
              ref_adagrad);
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
    quadratic("sgd, momentum", (Model){.opt = OPT_SGD, .lr = 0.1, .momentum = 0.9}, ref_sgd);
    quadratic("nadam", (Model){.opt = OPT_NADAM, .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .epsilon = 1e-7}, ref_nadam);
    quadratic("ftrl", (Model){.opt = OPT_FTRL, .lr = 0.1, .lr_power = -0.5, .accumulator = 0.1}, ref_ftrl);
    quadratic("ftrl, l1, l2, shrinkage, beta, lr_power",
              (Model){.opt = OPT_FTRL, .lr = 0.3, .lr_power = -0.7, .accumulator = 0.2, .l1 = 0.05, .l2 = 0.1,
                      .l2_shrinkage = 0.2, .ftrl_beta = 0.5},
              ref_ftrl);
    quadratic("sgd, momentum, global_clipnorm, exponential schedule",
              (Model){.opt = OPT_SGD, .lr = 0.1, .momentum = 0.9, .global_clipnorm = 3, .sched = SCHED_EXPONENTIAL,
                      .decay_steps = 2, .decay_rate = 0.5},
              ref_sgd);
    adam_normalised_step();
    schedule_values("constant", (Model){.opt = OPT_SGD, .lr = 0.1});
    schedule_values("step", (Model){.opt = OPT_SGD, .lr = 0.1, .sched = SCHED_STEP, .decay_steps = 100,
                                    .decay_rate = 0.5, .staircase = true});
    schedule_values("exponential", (Model){.opt = OPT_SGD, .lr = 0.1, .sched = SCHED_EXPONENTIAL,
                                           .decay_steps = 1000, .decay_rate = 0.96});
    schedule_values("exponential, staircase", (Model){.opt = OPT_SGD, .lr = 0.1, .sched = SCHED_EXPONENTIAL,
                                                      .decay_steps = 100, .decay_rate = 0.96, .staircase = true});
    schedule_values("inverse_time", (Model){.opt = OPT_SGD, .lr = 0.1, .sched = SCHED_INVERSE_TIME,
                                            .decay_steps = 100, .decay_rate = 0.5});
    schedule_values("inverse_time, staircase", (Model){.opt = OPT_SGD, .lr = 0.1, .sched = SCHED_INVERSE_TIME,
                                                       .decay_steps = 100, .decay_rate = 0.5, .staircase = true});
    schedule_values("cosine", (Model){.opt = OPT_SGD, .lr = 0.1, .sched = SCHED_COSINE, .decay_steps = 1000});
    schedule_values("cosine, alpha", (Model){.opt = OPT_SGD, .lr = 0.1, .sched = SCHED_COSINE, .decay_steps = 1000,
                                             .alpha = 0.1});
    return check_summary();
}
