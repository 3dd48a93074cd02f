/* remat.c — at -O2, a cheap value computed again in each of its users'
 * loops instead of stored once and read back.
 *
 * Batch normalization's x - mean, [n, h, w, c], is read by the variance's
 * sum of squares, by the normalization and by two of the gradient's
 * products. Stored, it is a full pass writing a whole batch of activations
 * (13 MB a step for examples/cnn-bn.nn's first layer at batch 128) and
 * each user then reads it back; recomputed, each user reads x (the same
 * bytes) and the channel's mean (a few). So a node is copied, one copy a
 * user, when it is one add, sub or mul of an operand of its own shape and
 * one broadcast to it (a per-channel statistic) or a constant, and every
 * user takes it into its own loop (fuse.c's inlines_into: elementwise over
 * the same shape, or a sum, max or min along an axis). The copies are
 * nodes of their own (ir_copy_apart): hash-consing would merge them back.
 * They compute the same operations on the same values, so the results are
 * bit for bit those of the stored value.
 */
#include "nnc.h"

/* Is node n one cheap op of an operand of its shape and a smaller one? */
static bool cheap(const Graph *g, const IrNode *n) {
    if (n->op != OP_ADD && n->op != OP_SUB && n->op != OP_MUL)
        return false;
    return shape_eq(&g->nodes[n->in[0]].shape, &n->shape) ^ shape_eq(&g->nodes[n->in[1]].shape, &n->shape);
}

Graph *remat(Graph *g) {
    Arena *a = g->arena;
    size_t nn = (size_t)g->nnodes + 1;
    int *uses = schedule_count_uses(a, g, NULL);
    bool *inline_all = arena_array(a, nn, sizeof *inline_all), *pick = arena_array(a, nn, sizeof *pick);
    for (int i = 0; i < g->nnodes; i++)
        inline_all[i] = true;
    for (int u = 0; u < g->nnodes; u++)
        for (int k = 0; k < op_info[g->nodes[u].op].arity; k++) {
            NodeId x = g->nodes[u].in[k];
            inline_all[x] = inline_all[x] && schedule_inlines_into(g, u, &g->nodes[x].shape);
        }
    for (int o = 0; o < g->noutputs; o++)
        inline_all[g->outputs[o].node] = false;
    bool any = false;
    for (int i = 0; i < g->nnodes; i++)
        any |= pick[i] = uses[i] >= 2 && inline_all[i] && cheap(g, &g->nodes[i]);
    if (!any)
        return g;
    Graph *d = ir_new(a, g->dtype);
    d->batch = g->batch;
    d->global_samples = g->global_samples;
    for (int i = 0; i < g->nslots; i++)
        ir_add_slot(d, g->slots[i]);
    NodeId *map = arena_array(a, nn, sizeof *map);
    bool *taken = arena_array(a, nn, sizeof *taken); /* the picked node itself serves its first user */
    for (int i = 0; i < g->nnodes; i++) {
        IrNode n = g->nodes[i];
        for (int k = 0; k < op_info[n.op].arity; k++) {
            NodeId x = g->nodes[i].in[k];
            if (k == 1 && x == g->nodes[i].in[0]) { /* x * x: one copy */
                n.in[1] = n.in[0];
            } else if (!pick[x] || !taken[x]) {
                n.in[k] = map[x];
                taken[x] = pick[x];
            } else {
                n.in[k] = ir_copy_apart(d, &g->nodes[x], map);
            }
        }
        map[i] = ir_copy_apart(d, &n, NULL);
    }
    for (int o = 0; o < g->noutputs; o++)
        ir_add_output(d, map[g->outputs[o].node], g->outputs[o].slot);
    return d;
}
