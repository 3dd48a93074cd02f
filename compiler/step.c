/* step.c — the whole step graph of a model for one batch size: the forward
 * pass, and for training the gradients and the update. This is the middle
 * of the pipeline written out in order; the result is dead-code eliminated
 * (constructors already simplified and shared every node).
 *
 * One compiled step serves every batch size up to the model's (the last,
 * partial batch of an epoch too): the batch size is symbolic in the IR.
 * The graph is built once, for the full batch; its nodes say which of
 * their axes hold the batch's samples and which constants are powers of
 * the batch size (a mean's 1/n), as the constructors derive them from the
 * input and label leaves and from the losses' means (IrNode.batch_axes,
 * batch_pow), and code is generated for n samples from them.
 */
#include "nnc.h"

void step_graphs(Arena *a, const Model *m, int64_t batch, DType dt, InputType in, Graph **train, Graph **eval) {
    Graph *g = ir_new(a, dt);
    NodeId pred;
    NodeId loss = model_forward(g, m, batch, in, &pred);
    ir_add_output(g, loss, SLOT_NO_LOSS);
    ir_add_output(g, pred, SLOT_NO_OUTPUT);
    if (eval) /* the forward pass alone, before the gradients join it */
        *eval = ir_dce(g);
    if (!train)
        return;
    NodeId *params, *grads;
    int nparams = ad_param_gradients(g, loss, &params, &grads);
    optim_update(g, m, params, grads, nparams);
    *train = ir_dce(g);
}

Graph *step_graph(Arena *a, const Model *m, StepKind kind, int64_t batch, DType dt, InputType in) {
    Graph *g;
    step_graphs(a, m, batch, dt, in, kind == STEP_TRAIN ? &g : NULL, kind == STEP_EVAL ? &g : NULL);
    return g;
}
