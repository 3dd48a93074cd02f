/* optim.c — the optimizer's update as IR, so it is simplified, fused and
 * compiled with the gradient that feeds it. Keras 3's semantics (the
 * update_step of each optimizer in keras/src/optimizers, read at Keras 3.8; tf.keras'
 * older optimizer_v2 put rmsprop's and adagrad's epsilon outside the square
 * root, Keras >= 2.11 and 3 inside it):
 *
 *   sgd:            p' = p - lr g
 *   sgd, momentum:  v' = m v - lr g;  p' = p + v'
 *   sgd, nesterov:  v' = m v - lr g;  p' = p + m v' - lr g
 *   adam, rmsprop, adagrad, adadelta, adamax, nadam, ftrl: see adam_update
 *   and adaptive_update
 *
 * Optimizer state gets its own slots ("dense1.W.velocity"), numbered after
 * every parameter. The learning rate is IR too: a function of the step
 * count, a state slot like the rest ("adam.step"), so a checkpoint holds
 * where the schedule is and --resume continues it.
 */
#include "nnc.h"

/* A state slot of the optimizer ("dense1.W.m"), zero at the start. */
static NodeId state(Graph *g, const char *name, Shape shape, Loc l, int *slot) {
    Slot vs = {.kind = SLOT_STATE, .name = name, .shape = shape};
    *slot = ir_add_slot(g, vs);
    return ir_leaf(g, OP_STATE, *slot, shape, l);
}

/* Indexed by OptKind: the step count's slot is "adam.step", ... */
static const char *const opt_names[] = {"sgd", "adam", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl"};

/* Keras' schedules of the step count k (the steps taken before this one):
 *   step, exponential:  lr rate^p          p = k / steps, floor(k / steps) staircase
 *   inverse_time:       lr / (1 + rate p)
 *   cosine:             lr ((1 - alpha) (1 + cos(pi min(k, steps) / steps)) / 2 + alpha) */
static NodeId learning_rate(Graph *g, const Model *m, NodeId k) {
    Loc l = m->sched_loc;
    Shape scalar = {0};
#define C(v) ir_const(g, v, scalar, l)
#define B(op, a, b) ir_binary(g, op, a, b, l)
    NodeId lr = ir_const(g, m->lr, scalar, m->opt_loc), p = -1;
    if (m->sched != SCHED_CONSTANT && m->sched != SCHED_COSINE) {
        p = B(OP_DIV, k, C(m->decay_steps));
        p = m->staircase ? ir_unary(g, OP_FLOOR, p, l) : p;
    }
    switch (m->sched) {
    case SCHED_CONSTANT: return lr;
    case SCHED_STEP:
    case SCHED_EXPONENTIAL: return B(OP_MUL, lr, B(OP_POW, C(m->decay_rate), p));
    case SCHED_INVERSE_TIME: return B(OP_DIV, lr, B(OP_ADD, C(1), B(OP_MUL, C(m->decay_rate), p)));
    case SCHED_COSINE: {
        NodeId frac = B(OP_DIV, B(OP_MINIMUM, k, C(m->decay_steps)), C(m->decay_steps));
        NodeId cosine = B(OP_MUL, C(0.5), B(OP_ADD, C(1), ir_unary(g, OP_COS, B(OP_MUL, C(3.14159265358979323846), frac), l)));
        return B(OP_MUL, lr, B(OP_ADD, B(OP_MUL, C(1 - m->alpha), cosine), C(m->alpha)));
    }
    }
    unreachable();
#undef C
#undef B
}

/* Keras' Adam: t = k + 1, a = lr sqrt(1 - b2^t) / (1 - b1^t),
 * m' = m + (1 - b1)(g - m), v' = v + (1 - b2)(g^2 - v), p' = p - a m' / (sqrt(v') + eps). */
static void adam_update(Graph *g, const Model *m, const NodeId *params, const NodeId *base, const NodeId *grads,
                        int n, NodeId lr, NodeId t1) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
#define C(v) ir_const(g, v, scalar, l)
#define B(op, a, b) ir_binary(g, op, a, b, l)
    NodeId alpha = B(OP_DIV, B(OP_MUL, lr, ir_unary(g, OP_SQRT, B(OP_SUB, C(1), B(OP_POW, C(m->beta2), t1)), l)),
                     B(OP_SUB, C(1), B(OP_POW, C(m->beta1), t1)));
    for (int i = 0; i < n; i++) {
        const Slot *ps = &g->slots[g->nodes[params[i]].slot];
        Shape shape = ps->shape;
        const char *name = ps->name;
        int pslot = g->nodes[params[i]].slot, mslot, vslot;
        NodeId mo = state(g, arena_printf(g->arena, "%s.m", name), shape, l, &mslot);
        NodeId vo = state(g, arena_printf(g->arena, "%s.v", name), shape, l, &vslot);
        NodeId gr = grads[i];
        NodeId mn = B(OP_ADD, mo, B(OP_MUL, B(OP_SUB, gr, mo), C(1 - m->beta1)));
        NodeId vn = B(OP_ADD, vo, B(OP_MUL, B(OP_SUB, B(OP_MUL, gr, gr), vo), C(1 - m->beta2)));
        NodeId step = B(OP_DIV, B(OP_MUL, mn, alpha), B(OP_ADD, ir_unary(g, OP_SQRT, vn, l), C(m->epsilon)));
        ir_add_output(g, mn, mslot);
        ir_add_output(g, vn, vslot);
        ir_add_output(g, B(OP_SUB, base[i], step), pslot);
    }
#undef C
#undef B
}

/* The other adaptive optimizers, per parameter, Keras' update steps:
 *   rmsprop:  v' = rho v + (1 - rho) g^2;  p' = p - lr g / sqrt(v' + eps)
 *   adagrad:  a' = a + g^2;  p' = p - lr g / sqrt(a' + eps), a starting at
 *             initial_accumulator_value: the slot holds a - that value, so
 *             every state starts at zero
 *   adadelta: G' = rho G + (1 - rho) g^2;  d = -sqrt(D + eps) / sqrt(G' + eps) g;
 *             D' = rho D + (1 - rho) d^2;  p' = p + lr d
 *   adamax:   t = k + 1;  m' = m + (1 - b1)(g - m);  u' = maximum(b2 u, |g|);
 *             p' = p - lr m' / ((1 - b1^t) (u' + eps))
 *   nadam:    t = k + 1;  u_t = b1 (1 - 0.96^t / 2);  P_t = u_1 ... u_t (a state:
 *             P_t - 1, so that it starts at zero);  m', v' as Adam's;
 *             p' = p - lr mh / (sqrt(v' / (1 - b2^t)) + eps),
 *             mh = u_t+1 m' / (1 - P_t u_t+1) + (1 - u_t) g / (1 - P_t)
 *   ftrl:     n' = n + g^2 (n from initial_accumulator_value, kept as adagrad's);
 *             gs = g + 2 l2_shrinkage p;  s = (n'^-lr_power - n^-lr_power) / lr;
 *             z' = z + gs - s p;  q = n'^-lr_power / lr + 2 (l2 + beta / (2 lr));
 *             p' = (clip(z', -l1, l1) - z') / q */
static void adaptive_update(Graph *g, const Model *m, const NodeId *params, const NodeId *base, const NodeId *grads,
                            int n, NodeId lr, NodeId t1) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
#define C(v) ir_const(g, v, scalar, l)
#define B(op, a, b) ir_binary(g, op, a, b, l)
#define SQRT(a) ir_unary(g, OP_SQRT, a, l)
    NodeId u_t = -1, prod_t = -1, prod_t1 = -1, u_t1 = -1;
    if (m->opt == OPT_NADAM) {
        int ps;
        u_t = B(OP_MUL, C(m->beta1), B(OP_SUB, C(1), B(OP_MUL, C(0.5), B(OP_POW, C(0.96), t1))));
        u_t1 = B(OP_MUL, C(m->beta1), B(OP_SUB, C(1), B(OP_MUL, C(0.5), B(OP_POW, C(0.96), B(OP_ADD, t1, C(1))))));
        prod_t = B(OP_MUL, B(OP_ADD, state(g, "nadam.u_product", scalar, l, &ps), C(1)), u_t);
        prod_t1 = B(OP_MUL, prod_t, u_t1);
        ir_add_output(g, B(OP_SUB, prod_t, C(1)), ps);
    }
    for (int i = 0; i < n; i++) {
        const Slot *ps = &g->slots[g->nodes[params[i]].slot];
        Shape shape = ps->shape;
        const char *name = ps->name;
        int pslot = g->nodes[params[i]].slot, s1, s2;
        NodeId gr = grads[i], g2 = B(OP_MUL, gr, gr), np;
        switch (m->opt) {
        case OPT_RMSPROP: {
            NodeId v = state(g, arena_printf(g->arena, "%s.rms", name), shape, l, &s1);
            NodeId nv = B(OP_ADD, B(OP_MUL, v, C(m->rho)), B(OP_MUL, g2, C(1 - m->rho)));
            ir_add_output(g, nv, s1);
            np = B(OP_SUB, base[i], B(OP_DIV, B(OP_MUL, gr, lr), SQRT(B(OP_ADD, nv, C(m->epsilon)))));
            break;
        }
        case OPT_ADAGRAD: {
            NodeId a = state(g, arena_printf(g->arena, "%s.accumulator", name), shape, l, &s1);
            NodeId na = B(OP_ADD, a, g2);
            ir_add_output(g, na, s1);
            NodeId den = SQRT(B(OP_ADD, na, C(m->accumulator + m->epsilon)));
            np = B(OP_SUB, base[i], B(OP_DIV, B(OP_MUL, gr, lr), den));
            break;
        }
        case OPT_ADADELTA: {
            NodeId G = state(g, arena_printf(g->arena, "%s.accumulated_grad", name), shape, l, &s1);
            NodeId D = state(g, arena_printf(g->arena, "%s.accumulated_delta", name), shape, l, &s2);
            NodeId nG = B(OP_ADD, B(OP_MUL, G, C(m->rho)), B(OP_MUL, g2, C(1 - m->rho)));
            NodeId d = ir_unary(g, OP_NEG, B(OP_MUL, B(OP_DIV, SQRT(B(OP_ADD, D, C(m->epsilon))),
                                                            SQRT(B(OP_ADD, nG, C(m->epsilon)))), gr), l);
            NodeId nD = B(OP_ADD, B(OP_MUL, D, C(m->rho)), B(OP_MUL, B(OP_MUL, d, d), C(1 - m->rho)));
            ir_add_output(g, nG, s1);
            ir_add_output(g, nD, s2);
            np = B(OP_ADD, base[i], B(OP_MUL, d, lr));
            break;
        }
        case OPT_ADAMAX: { /* Keras' form; t as Adam's */
            NodeId mo = state(g, arena_printf(g->arena, "%s.m", name), shape, l, &s1);
            NodeId u = state(g, arena_printf(g->arena, "%s.u", name), shape, l, &s2);
            NodeId mn = B(OP_ADD, mo, B(OP_MUL, B(OP_SUB, gr, mo), C(1 - m->beta1)));
            NodeId un = B(OP_MAXIMUM, B(OP_MUL, u, C(m->beta2)), ir_unary(g, OP_ABS, gr, l));
            ir_add_output(g, mn, s1);
            ir_add_output(g, un, s2);
            NodeId den = B(OP_MUL, B(OP_SUB, C(1), B(OP_POW, C(m->beta1), t1)), B(OP_ADD, un, C(m->epsilon)));
            np = B(OP_SUB, base[i], B(OP_DIV, B(OP_MUL, mn, lr), den));
            break;
        }
        case OPT_NADAM: {
            NodeId mo = state(g, arena_printf(g->arena, "%s.m", name), shape, l, &s1);
            NodeId vo = state(g, arena_printf(g->arena, "%s.v", name), shape, l, &s2);
            NodeId mn = B(OP_ADD, mo, B(OP_MUL, B(OP_SUB, gr, mo), C(1 - m->beta1)));
            NodeId vn = B(OP_ADD, vo, B(OP_MUL, B(OP_SUB, g2, vo), C(1 - m->beta2)));
            ir_add_output(g, mn, s1);
            ir_add_output(g, vn, s2);
            NodeId mh = B(OP_ADD, B(OP_DIV, B(OP_MUL, u_t1, mn), B(OP_SUB, C(1), prod_t1)),
                          B(OP_DIV, B(OP_MUL, B(OP_SUB, C(1), u_t), gr), B(OP_SUB, C(1), prod_t)));
            NodeId vh = B(OP_DIV, vn, B(OP_SUB, C(1), B(OP_POW, C(m->beta2), t1)));
            np = B(OP_SUB, base[i], B(OP_DIV, B(OP_MUL, mh, lr), B(OP_ADD, SQRT(vh), C(m->epsilon))));
            break;
        }
        case OPT_FTRL: {
            NodeId acc = state(g, arena_printf(g->arena, "%s.accumulator", name), shape, l, &s1);
            NodeId z = state(g, arena_printf(g->arena, "%s.linear", name), shape, l, &s2);
            NodeId na = B(OP_ADD, acc, C(m->accumulator)), nn = B(OP_ADD, na, g2);
            NodeId p = base[i];
            NodeId gs = B(OP_ADD, gr, B(OP_MUL, p, C(2 * m->l2_shrinkage)));
            NodeId pn = B(OP_POW, nn, C(-m->lr_power));
            NodeId sigma = B(OP_DIV, B(OP_SUB, pn, B(OP_POW, na, C(-m->lr_power))), lr);
            NodeId zn = B(OP_SUB, B(OP_ADD, z, gs), B(OP_MUL, sigma, p));
            NodeId l2 = B(OP_ADD, C(m->l2), B(OP_DIV, C(m->ftrl_beta / 2), lr));
            NodeId q = B(OP_ADD, B(OP_DIV, pn, lr), B(OP_MUL, C(2), l2));
            NodeId zc = B(OP_MINIMUM, B(OP_MAXIMUM, zn, C(-m->l1)), C(m->l1));
            ir_add_output(g, B(OP_ADD, acc, g2), s1);
            ir_add_output(g, zn, s2);
            np = B(OP_DIV, B(OP_SUB, zc, zn), q);
            break;
        }
        default:
            unreachable();
        }
        ir_add_output(g, np, pslot);
    }
#undef C
#undef B
#undef SQRT
}

/* Before the step, as Keras does it: the gradients clipped (clipnorm:
 * each g c / max(|g|, c), its own norm; global_clipnorm: every g c / max(N, c),
 * N the norm of all of them together; clipvalue: to [-c, c]), and each
 * parameter decayed (p - p wd lr), the step then taken from the decayed value. */
static void prepare(Graph *g, const Model *m, const NodeId *params, NodeId *base, NodeId *grads, int n, NodeId lr) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
#define C(v) ir_const(g, v, scalar, l)
#define B(op, a, b) ir_binary(g, op, a, b, l)
#define NORM(x) ir_unary(g, OP_SQRT, x, l)
#define SUMSQ(x) ir_sum(g, B(OP_MUL, x, x), -1, l)
    NodeId global = -1;
    if (m->global_clipnorm > 0) {
        NodeId sq = C(0);
        for (int i = 0; i < n; i++)
            sq = B(OP_ADD, sq, SUMSQ(grads[i]));
        global = B(OP_DIV, C(m->global_clipnorm), B(OP_MAXIMUM, NORM(sq), C(m->global_clipnorm)));
    }
    for (int i = 0; i < n; i++) {
        NodeId gr = grads[i];
        if (m->clipnorm > 0)
            gr = B(OP_MUL, gr, B(OP_DIV, C(m->clipnorm), B(OP_MAXIMUM, NORM(SUMSQ(gr)), C(m->clipnorm))));
        if (global >= 0)
            gr = B(OP_MUL, gr, global);
        if (m->clipvalue > 0)
            gr = B(OP_MINIMUM, B(OP_MAXIMUM, gr, C(-m->clipvalue)), C(m->clipvalue));
        grads[i] = gr;
        base[i] = m->weight_decay > 0 ? B(OP_SUB, params[i], B(OP_MUL, params[i], B(OP_MUL, C(m->weight_decay), lr)))
                                      : params[i];
    }
#undef C
#undef B
#undef NORM
#undef SUMSQ
}

/* sgd, with momentum or Nesterov's. */
static void sgd_update(Graph *g, const Model *m, const NodeId *params, const NodeId *base, const NodeId *grads,
                       int n, NodeId lr) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
    for (int i = 0; i < n; i++) {
        int pslot = g->nodes[params[i]].slot;
        NodeId step = ir_binary(g, OP_MUL, grads[i], lr, l); /* lr g */
        NodeId np;
        if (m->momentum > 0) {
            const Slot *ps = &g->slots[pslot];
            int vslot;
            NodeId mom = ir_const(g, m->momentum, scalar, l);
            NodeId v = state(g, arena_printf(g->arena, "%s.velocity", ps->name), ps->shape, l, &vslot);
            NodeId nv = ir_binary(g, OP_SUB, ir_binary(g, OP_MUL, v, mom, l), step, l);
            ir_add_output(g, nv, vslot);
            NodeId delta = m->nesterov ? ir_binary(g, OP_SUB, ir_binary(g, OP_MUL, nv, mom, l), step, l) : nv;
            np = ir_binary(g, OP_ADD, base[i], delta, l);
        } else {
            np = ir_binary(g, OP_SUB, base[i], step, l);
        }
        ir_add_output(g, np, pslot);
    }
}

void optim_update(Graph *g, const Model *m, const NodeId *params, const NodeId *grads, int n) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
    /* k, the steps taken so far: one count for the optimizer and its schedule
     * (a float like every slot: exact up to 2^24 steps in float32). */
    NodeId k = -1, t1 = -1;
    if (m->opt == OPT_ADAM || m->opt == OPT_ADAMAX || m->opt == OPT_NADAM || m->sched != SCHED_CONSTANT) {
        int kslot;
        k = state(g, arena_printf(g->arena, "%s.step", opt_names[m->opt]), scalar, l, &kslot);
        t1 = ir_binary(g, OP_ADD, k, ir_const(g, 1, scalar, l), l);
        ir_add_output(g, t1, kslot);
    }
    NodeId lr = learning_rate(g, m, k);
    NodeId *base = arena_array(g->arena, (size_t)n + 1, sizeof *base);
    NodeId *clipped = arena_array(g->arena, (size_t)n + 1, sizeof *clipped);
    for (int i = 0; i < n; i++)
        clipped[i] = grads[i];
    prepare(g, m, params, base, clipped, n, lr);
    if (m->opt == OPT_SGD)
        sgd_update(g, m, params, base, clipped, n, lr);
    else if (m->opt == OPT_ADAM)
        adam_update(g, m, params, base, clipped, n, lr, t1);
    else
        adaptive_update(g, m, params, base, clipped, n, lr, t1);
}
