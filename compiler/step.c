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
 *
 * The two steps are two lowerings of the model (model.c), in Keras'
 * training and evaluation modes, which differ where dropout and batchnorm
 * do; both make the same slots, so they run on one set of buffers.
 */
#include "nnc.h"

#include <string.h>

/* The forward pass in `mode`, its loss (with several terms, each head's
 * beside it) and output as outputs; *loss the total. */
static Graph *forward(Arena *a, const Model *m, int64_t batch, DType dt, InputType in, ModelMode mode,
                      bool global_samples, NodeId *loss) {
    Graph *g = ir_new(a, dt);
    g->global_samples = global_samples;
    NodeId pred, reported;
    *loss = model_forward(g, m, batch, in, mode, &pred, &reported);
    ir_add_output(g, reported, SLOT_NO_LOSS);
    ir_add_output(g, pred, SLOT_NO_OUTPUT);
    return g;
}

/* Data-parallel training sums each gradient over the ranks before its
 * update: an allreduce node between the two (runtime/mpi.c), so the step
 * stays one step and the schedule cuts only the kernels that must wait for
 * it (a weight gradient's product no longer stores the update). */
static void allreduce_gradients(Graph *g, const NodeId *params, NodeId *grads, int nparams) {
    for (int i = 0; i < nparams; i++)
        grads[i] = ir_allreduce(g, grads[i], g->nodes[params[i]].loc);
}

void step_graphs(Arena *a, const Model *m, int64_t batch, DType dt, InputType in, Graph **train, Graph **eval,
                 bool allreduce) {
    NodeId loss;
    if (eval) /* its own lowering: dropout and batchnorm differ (the slots do not) */
        *eval = ir_dce(forward(a, m, batch, dt, in, MODE_EVAL, false, &loss));
    if (!train)
        return;
    Graph *g = forward(a, m, batch, dt, in, MODE_TRAIN, allreduce, &loss);
    NodeId *params, *grads;
    int nparams = ad_param_gradients(g, loss, &params, &grads);
    if (allreduce)
        allreduce_gradients(g, params, grads, nparams);
    optim_update(g, m, params, grads, nparams);
    *train = ir_dce(g);
    /* The evaluation step runs on the training step's buffers: its slots
     * are the first of those (the optimizer's come after). */
    for (int s = 0; eval && s < (*eval)->nslots; s++)
        if (s >= (*train)->nslots || strcmp((*eval)->slots[s].name, (*train)->slots[s].name) != 0)
            die("step_graphs: the evaluation step's slot %d is not the training step's", s);
}

Graph *step_graph(Arena *a, const Model *m, StepKind kind, int64_t batch, DType dt, InputType in) {
    Graph *g;
    step_graphs(a, m, batch, dt, in, kind == STEP_TRAIN ? &g : NULL, kind == STEP_EVAL ? &g : NULL, false);
    return g;
}
