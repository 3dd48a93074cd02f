/* step.c — the whole step graph of a model for one batch size: the forward
 * pass, and for training the gradients and the update. This is the middle
 * of the pipeline written out in order; the result is dead-code eliminated
 * (constructors already simplified and shared every node).
 *
 * One compiled step serves every batch size up to the model's (the last,
 * partial batch of an epoch too), so the graph says what depends on the
 * batch size. Rather than teach every constructor and simplification about
 * a symbolic size, the graph is built a second time for one sample more and
 * compared: the two differ only in the batch axes (batch vs batch + 1) and in
 * constants such as the 1/batch of a mean. Or in structure, when hash-consing
 * made one node of two equal constants in one graph and not in the other
 * (a mean's 1/(5 * 2) and a learning rate of 0.1): then a second probe,
 * for batch + 2, shows the true structure. If the two probes agree and the
 * full batch's graph does not, that graph is the one with the coincidence
 * (a learning rate of 1/8 beside the 1/(4 * 2) of a mean), and the step is
 * built from the first probe instead: buffers for one sample more than any
 * batch, every constant of the mean computed for n. No stage builds a graph
 * whose structure depends on the batch size otherwise.
 */
#include "nnc.h"

#include <math.h>

static Graph *build(Arena *a, const Model *m, StepKind kind, int64_t batch, DType dt, InputType in) {
    Graph *g = ir_new(a, dt);
    NodeId pred;
    NodeId loss = model_forward(g, m, batch, in, &pred);
    ir_add_output(g, loss, SLOT_NO_LOSS);
    ir_add_output(g, pred, SLOT_NO_OUTPUT);
    if (kind == STEP_TRAIN) {
        int nparams = 0;
        NodeId *params = arena_array(a, (size_t)g->nnodes, sizeof *params);
        for (int i = 0; i < g->nnodes; i++)
            if (g->nodes[i].op == OP_PARAM)
                params[nparams++] = i;
        NodeId *grads = arena_array(a, (size_t)nparams + 1, sizeof *grads);
        ad_gradients(g, loss, params, nparams, grads);
        optim_update(g, m, params, grads, nparams);
    }
    return ir_dce(g);
}

/* Equal up to rounding (the two values are computed in different orders). */
static bool nearly_equal(double x, double y) { return fabs(x - y) <= 1e-12 * fmax(fabs(x), fabs(y)); }

/* Do g and h have the same nodes and outputs, but for shapes and values? */
static bool same_structure(const Graph *g, const Graph *h) {
    if (g->nnodes != h->nnodes || g->noutputs != h->noutputs)
        return false;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *x = &g->nodes[i], *y = &h->nodes[i];
        if (x->op != y->op || x->in[0] != y->in[0] || x->in[1] != y->in[1] || x->shape.rank != y->shape.rank ||
            x->axis != y->axis || x->start != y->start || x->slot != y->slot)
            return false;
    }
    for (int o = 0; o < g->noutputs; o++)
        if (g->outputs[o].node != h->outputs[o].node || g->outputs[o].slot != h->outputs[o].slot)
            return false;
    return true;
}

/* Marks g's batch axes and batch-dependent constants from h, the same step
 * of the same structure built for b2 samples. */
static void mark_batch(Graph *g, const Graph *h, int64_t b2) {
    int64_t b = g->batch;
    g->batch_axes = arena_array(g->arena, (size_t)g->nnodes, sizeof *g->batch_axes);
    g->batch_pow = arena_array(g->arena, (size_t)g->nnodes, sizeof *g->batch_pow);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *x = &g->nodes[i], *y = &h->nodes[i];
        for (int d = 0; d < x->shape.rank; d++)
            if (x->shape.dim[d] != y->shape.dim[d]) {
                if (x->shape.dim[d] != b || y->shape.dim[d] != b2)
                    die("step: axis %d of node %%%d is not the batch axis", d, i);
                g->batch_axes[i] |= (uint8_t)(1u << d);
            }
        if (x->value != y->value) {
            if (nearly_equal(x->value * (double)b, y->value * (double)b2))
                g->batch_pow[i] = -1;
            else if (nearly_equal(x->value / (double)b, y->value / (double)b2))
                g->batch_pow[i] = 1;
            else
                die("step: constant %%%d is not proportional to the batch size or its inverse", i);
        }
    }
}

Graph *step_graph(Arena *a, const Model *m, StepKind kind, int64_t batch, DType dt, InputType in) {
    Graph *g = build(a, m, kind, batch, dt, in);
    g->batch = batch;
    if (batch == 1) /* of one sample, every batch is full */
        return g;
    Graph *h1 = build(a, m, kind, batch + 1, dt, in);
    if (same_structure(g, h1)) {
        mark_batch(g, h1, batch + 1);
        return g;
    }
    Graph *h2 = build(a, m, kind, batch + 2, dt, in);
    if (same_structure(g, h2)) {
        mark_batch(g, h2, batch + 2);
        return g;
    }
    if (!same_structure(h1, h2))
        die("step: the graph's structure depends on the batch size");
    h1->batch = batch + 1;
    mark_batch(h1, h2, batch + 2);
    return h1;
}
