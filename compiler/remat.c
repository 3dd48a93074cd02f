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

/* Is node i worth computing in each user: one cheap op of an operand of
 * its shape and a smaller one, every user taking it inline? */
static bool recomputed(const Graph *g, NodeId i, const int *uses, const bool *output) {
    const IrNode *n = &g->nodes[i];
    if ((n->op != OP_ADD && n->op != OP_SUB && n->op != OP_MUL) || uses[i] < 2 || output[i])
        return false;
    const Shape *a = &g->nodes[n->in[0]].shape, *b = &g->nodes[n->in[1]].shape;
    if (!(shape_eq(a, &n->shape) ^ shape_eq(b, &n->shape)))
        return false;
    for (int u = i + 1; u < g->nnodes; u++)
        for (int k = 0; k < op_info[g->nodes[u].op].arity; k++)
            if (g->nodes[u].in[k] == i && !schedule_inlines_into(g, u, &n->shape))
                return false;
    return true;
}

Graph *remat(Graph *g) {
    Arena *a = g->arena;
    size_t nn = (size_t)g->nnodes + 1;
    int *uses = arena_array(a, nn, sizeof *uses); /* users, each counted once */
    bool *output = arena_array(a, nn, sizeof *output), *pick = arena_array(a, nn, sizeof *pick), any = false;
    for (int u = 0; u < g->nnodes; u++)
        for (int k = 0; k < op_info[g->nodes[u].op].arity; k++)
            uses[g->nodes[u].in[k]] += k == 0 || g->nodes[u].in[1] != g->nodes[u].in[0];
    for (int o = 0; o < g->noutputs; o++)
        output[g->outputs[o].node] = true;
    for (int i = 0; i < g->nnodes; i++)
        any |= pick[i] = recomputed(g, i, uses, output);
    if (!any)
        return g;
    Graph *d = ir_new(a, g->dtype);
    d->batch = g->batch;
    d->global_samples = g->global_samples;
    for (int i = 0; i < g->nslots; i++)
        ir_add_slot(d, g->slots[i]);
    NodeId *map = arena_array(a, nn, sizeof *map);
    bool *taken = arena_array(a, nn, sizeof *taken); /* the node itself serves its first user */
    for (int i = 0; i < g->nnodes; i++) {
        IrNode n = g->nodes[i];
        NodeId own[2] = {-1, -1}; /* this user's copies of picked operands */
        for (int k = 0; k < op_info[n.op].arity; k++) {
            NodeId x = n.in[k];
            if (!pick[x])
                continue;
            if (k == 1 && n.in[0] == x)
                own[1] = own[0];
            else if (!taken[x])
                taken[x] = true, own[k] = map[x];
            else
                own[k] = ir_copy_apart(d, &g->nodes[x], map);
        }
        NodeId m[2] = {n.in[0], n.in[1]};
        for (int k = 0; k < op_info[n.op].arity; k++)
            n.in[k] = own[k] >= 0 ? own[k] : map[m[k]];
        map[i] = ir_copy_apart(d, &n, NULL);
    }
    for (int o = 0; o < g->noutputs; o++)
        ir_add_output(d, map[g->outputs[o].node], g->outputs[o].slot);
    return d;
}
