/* optim.c — the optimizer's update as IR, so it is simplified, fused and
 * compiled with the gradient that feeds it. Keras' semantics:
 *
 *   sgd:            p' = p - lr g
 *   sgd, momentum:  v' = m v - lr g;  p' = p + v'
 *   sgd, nesterov:  v' = m v - lr g;  p' = p + m v' - lr g
 *   adam, rmsprop, adagrad, adadelta: see adam_update and adaptive_update
 *
 * Optimizer state gets its own slots ("dense1.W.velocity"), numbered after
 * every parameter.
 */
#include "nnc.h"

/* A state slot of the optimizer ("dense1.W.m"), zero at the start. */
static NodeId state(Graph *g, const char *name, Shape shape, Loc l, int *slot) {
    Slot vs = {.kind = SLOT_STATE, .name = name, .shape = shape};
    *slot = ir_add_slot(g, vs);
    return ir_leaf(g, OP_STATE, *slot, shape, l);
}

/* Keras' Adam: t' = t + 1, a = lr sqrt(1 - b2^t') / (1 - b1^t'),
 * m' = m + (1 - b1)(g - m), v' = v + (1 - b2)(g^2 - v), p' = p - a m' / (sqrt(v') + eps).
 * t is one state for all parameters. */
static void adam_update(Graph *g, const Model *m, const NodeId *params, const NodeId *base, const NodeId *grads,
                        int n) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
#define C(v) ir_const(g, v, scalar, l)
#define B(op, a, b) ir_binary(g, op, a, b, l)
    int tslot;
    NodeId t1 = B(OP_ADD, state(g, "adam.step", scalar, l, &tslot), C(1));
    ir_add_output(g, t1, tslot);
    NodeId alpha = B(OP_DIV, B(OP_MUL, C(m->lr), ir_unary(g, OP_SQRT, B(OP_SUB, C(1), B(OP_POW, C(m->beta2), t1)), l)),
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
 *   rmsprop:  v' = rho v + (1 - rho) g^2;  p' = p - lr g / (sqrt(v') + eps)
 *   adagrad:  a' = a + g^2;  p' = p - lr g / (sqrt(a') + eps), a starting at
 *             initial_accumulator_value: the slot holds a - that value, so
 *             every state starts at zero
 *   adadelta: G' = rho G + (1 - rho) g^2;  d = -sqrt(D + eps) / sqrt(G' + eps) g;
 *             D' = rho D + (1 - rho) d^2;  p' = p + lr d
 *   adamax:   t' = t + 1;  m' = m + (1 - b1)(g - m);  u' = maximum(b2 u, |g|);
 *             p' = p - lr m' / ((1 - b1^t') (u' + eps)) */
static void adaptive_update(Graph *g, const Model *m, const NodeId *params, const NodeId *base, const NodeId *grads,
                            int n) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
#define C(v) ir_const(g, v, scalar, l)
#define B(op, a, b) ir_binary(g, op, a, b, l)
#define SQRT(a) ir_unary(g, OP_SQRT, a, l)
    NodeId t1 = -1;
    if (m->opt == OPT_ADAMAX) {
        int tslot;
        t1 = B(OP_ADD, state(g, "adamax.step", scalar, l, &tslot), C(1));
        ir_add_output(g, t1, tslot);
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
            np = B(OP_SUB, base[i], B(OP_DIV, B(OP_MUL, gr, C(m->lr)), B(OP_ADD, SQRT(nv), C(m->epsilon))));
            break;
        }
        case OPT_ADAGRAD: {
            NodeId a = state(g, arena_printf(g->arena, "%s.accumulator", name), shape, l, &s1);
            NodeId na = B(OP_ADD, a, g2);
            ir_add_output(g, na, s1);
            NodeId den = B(OP_ADD, SQRT(B(OP_ADD, na, C(m->accumulator))), C(m->epsilon));
            np = B(OP_SUB, base[i], B(OP_DIV, B(OP_MUL, gr, C(m->lr)), den));
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
            np = B(OP_ADD, base[i], B(OP_MUL, d, C(m->lr)));
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
            np = B(OP_SUB, base[i], B(OP_DIV, B(OP_MUL, mn, C(m->lr)), den));
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

/* Before an adaptive optimizer's step, as Keras does it: each gradient
 * clipped (clipnorm: g c / max(|g|, c), its own norm; clipvalue: to
 * [-c, c]), and each parameter decayed (p - p wd lr), the step then taken
 * from the decayed value. */
static void prepare(Graph *g, const Model *m, const NodeId *params, NodeId *base, NodeId *grads, int n) {
    Loc l = m->opt_loc;
    Shape scalar = {0};
    for (int i = 0; i < n; i++) {
        NodeId gr = grads[i];
        if (m->clipnorm > 0) {
            NodeId c = ir_const(g, m->clipnorm, scalar, l);
            NodeId norm = ir_unary(g, OP_SQRT, ir_sum(g, ir_binary(g, OP_MUL, gr, gr, l), -1, l), l);
            gr = ir_binary(g, OP_MUL, gr, ir_binary(g, OP_DIV, c, ir_binary(g, OP_MAXIMUM, norm, c, l), l), l);
        }
        if (m->clipvalue > 0)
            gr = ir_binary(g, OP_MINIMUM, ir_binary(g, OP_MAXIMUM, gr, ir_const(g, -m->clipvalue, scalar, l), l),
                           ir_const(g, m->clipvalue, scalar, l), l);
        grads[i] = gr;
        base[i] = m->weight_decay > 0 ? ir_binary(g, OP_SUB, params[i],
                                                  ir_binary(g, OP_MUL, params[i],
                                                            ir_const(g, m->weight_decay * m->lr, scalar, l), l), l)
                                      : params[i];
    }
}

void optim_update(Graph *g, const Model *m, const NodeId *params, const NodeId *grads, int n) {
    if (m->opt != OPT_SGD) {
        NodeId *base = arena_array(g->arena, (size_t)n + 1, sizeof *base);
        NodeId *clipped = arena_array(g->arena, (size_t)n + 1, sizeof *clipped);
        for (int i = 0; i < n; i++)
            clipped[i] = grads[i];
        prepare(g, m, params, base, clipped, n);
        if (m->opt == OPT_ADAM)
            adam_update(g, m, params, base, clipped, n);
        else
            adaptive_update(g, m, params, base, clipped, n);
        return;
    }
    Loc l = m->opt_loc;
    Shape scalar = {0};
    NodeId lr = ir_const(g, m->lr, scalar, l);
    for (int i = 0; i < n; i++) {
        const IrNode *p = &g->nodes[params[i]];
        int pslot = p->slot;
        NodeId step = ir_binary(g, OP_MUL, grads[i], lr, l); /* lr g */
        NodeId np;
        if (m->momentum > 0) {
            const Slot *ps = &g->slots[pslot];
            Slot vs = {.kind = SLOT_STATE, .name = arena_printf(g->arena, "%s.velocity", ps->name),
                       .shape = ps->shape};
            int vslot = ir_add_slot(g, vs);
            NodeId mom = ir_const(g, m->momentum, scalar, l);
            NodeId v = ir_leaf(g, OP_STATE, vslot, vs.shape, l);
            NodeId nv = ir_binary(g, OP_SUB, ir_binary(g, OP_MUL, v, mom, l), step, l);
            ir_add_output(g, nv, vslot);
            NodeId delta = m->nesterov ? ir_binary(g, OP_SUB, ir_binary(g, OP_MUL, nv, mom, l), step, l) : nv;
            np = ir_binary(g, OP_ADD, params[i], delta, l);
        } else {
            np = ir_binary(g, OP_SUB, params[i], step, l);
        }
        ir_add_output(g, np, pslot);
    }
}
