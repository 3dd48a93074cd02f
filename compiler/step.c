/* step.c — the whole step graph of a model for one batch size: the forward
 * pass, and for training the gradients and the optimizer update. This is the
 * middle of the pipeline written out in order; the result is dead-code
 * eliminated (constructors already simplified and shared every node).
 */
#include "nnc.h"

Graph *step_graph(Arena *a, const Model *m, StepKind kind, int64_t batch, DType dt) {
    Graph *g = ir_new(a, dt);
    NodeId pred;
    NodeId loss = lower_forward(g, m, batch, &pred);
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
