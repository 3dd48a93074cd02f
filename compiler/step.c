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

/* The forward pass in `mode`, its loss and output as outputs. */
static Graph *forward(Arena *a, const Model *m, int64_t batch, DType dt, InputType in, ModelMode mode,
                      NodeId *loss) {
    Graph *g = ir_new(a, dt);
    NodeId pred;
    *loss = model_forward(g, m, batch, in, mode, &pred);
    ir_add_output(g, *loss, SLOT_NO_LOSS);
    ir_add_output(g, pred, SLOT_NO_OUTPUT);
    return g;
}

/* g's outputs from..to-1 alone, dead code removed: the slots stay all of g's. */
static Graph *outputs_dce(const Graph *g, int from, int to) {
    Graph part = *g;
    part.outputs = g->outputs + from;
    part.noutputs = to - from;
    return ir_dce(&part);
}

/* Data-parallel training cuts the step where the gradients are complete:
 * the gradients go to slots of their own, which the runtime sums over the
 * ranks (runtime/mpi.c), and the update reads them back. */
static void split_at_gradients(Arena *a, Graph *g, const Model *m, const NodeId *params, const NodeId *grads,
                               int nparams, Graph **train, Graph **update) {
    NodeId *summed = arena_array(a, (size_t)nparams + 1, sizeof *summed);
    for (int i = 0; i < nparams; i++) {
        const IrNode *p = &g->nodes[params[i]];
        const Slot *ps = &g->slots[p->slot];
        int gs = ir_add_slot(g, (Slot){.kind = SLOT_GRAD, .name = arena_printf(a, "%s.grad", ps->name),
                                       .shape = ps->shape});
        ir_add_output(g, grads[i], gs);
        summed[i] = ir_leaf(g, OP_STATE, gs, ps->shape, p->loc);
    }
    int cut = g->noutputs;
    optim_update(g, m, params, summed, nparams);
    *train = outputs_dce(g, 0, cut);
    *update = outputs_dce(g, cut, g->noutputs);
}

void step_graphs(Arena *a, const Model *m, int64_t batch, DType dt, InputType in, Graph **train, Graph **eval,
                 Graph **update) {
    NodeId loss;
    if (eval) /* its own lowering: dropout and batchnorm differ (the slots do not) */
        *eval = ir_dce(forward(a, m, batch, dt, in, MODE_EVAL, &loss));
    if (!train)
        return;
    Graph *g = forward(a, m, batch, dt, in, MODE_TRAIN, &loss);
    NodeId *params, *grads;
    int nparams = ad_param_gradients(g, loss, &params, &grads);
    if (update) {
        split_at_gradients(a, g, m, params, grads, nparams, train, update);
    } else {
        optim_update(g, m, params, grads, nparams);
        *train = ir_dce(g);
    }
    /* The evaluation step runs on the training step's buffers: its slots
     * are the first of those (the optimizer's come after). */
    for (int s = 0; eval && s < (*eval)->nslots; s++)
        if (s >= (*train)->nslots || strcmp((*eval)->slots[s].name, (*train)->slots[s].name) != 0)
            die("step_graphs: the evaluation step's slot %d is not the training step's", s);
}

Graph *step_graph(Arena *a, const Model *m, StepKind kind, int64_t batch, DType dt, InputType in) {
    Graph *g;
    step_graphs(a, m, batch, dt, in, kind == STEP_TRAIN ? &g : NULL, kind == STEP_EVAL ? &g : NULL, NULL);
    return g;
}
