/* optim.c — the optimizer's update as IR, so it is simplified, fused and
 * compiled with the gradient that feeds it. Keras' semantics:
 *
 *   sgd:            p' = p - lr g
 *   sgd, momentum:  v' = m v - lr g;  p' = p + v'
 *   sgd, nesterov:  v' = m v - lr g;  p' = p + m v' - lr g
 *
 * Optimizer state gets its own slots ("dense1.W.velocity"), numbered after
 * every parameter.
 */
#include "nnc.h"

void optim_update(Graph *g, const Model *m, const NodeId *params, const NodeId *grads, int n) {
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
