/* optim.c — the optimizer's update as IR, so it is simplified, fused and
 * compiled with the gradient that feeds it. Keras' semantics:
 *
 *   sgd:            p' = p - lr g
 *   sgd, momentum:  v' = m v - lr g;  p' = p + v'
 *   sgd, nesterov:  v' = m v - lr g;  p' = p + m v' - lr g
 *   adam:           see adam_update
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
static void adam_update(Graph *g, const Model *m, const NodeId *params, const NodeId *grads, int n) {
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
        ir_add_output(g, B(OP_SUB, params[i], step), pslot);
    }
#undef C
#undef B
}

void optim_update(Graph *g, const Model *m, const NodeId *params, const NodeId *grads, int n) {
    if (m->opt == OPT_ADAM) {
        adam_update(g, m, params, grads, n);
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
