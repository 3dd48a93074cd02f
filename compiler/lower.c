/* lower.c — a checked Model to forward IR for one batch size.
 *
 * The batch dimension becomes the leading axis of every value. Each layer is
 * a few IR nodes (dense: h @ W + b, then its activation); the loss is written
 * in its numerically stable form: crossentropy on the logits through
 * logsoftmax, never log(softmax(z)); binary_crossentropy after sigmoid on
 * the logits. Slots are numbered the same way for
 * every batch size, so one parameter buffer serves all step functions.
 */
#include "nnc.h"

static Shape batched(const Shape *s, int64_t batch) {
    Shape r = {.rank = s->rank + 1, .dim = {batch}};
    for (int i = 0; i < s->rank; i++)
        r.dim[i + 1] = s->dim[i];
    return r;
}

NodeId lower_activation(Graph *g, Act act, NodeId z, Loc loc) {
    switch (act) {
    case ACT_LINEAR: return z;
    case ACT_RELU: return ir_unary(g, OP_RELU, z, loc);
    case ACT_SIGMOID: return ir_unary(g, OP_SIGMOID, z, loc);
    case ACT_TANH: return ir_unary(g, OP_TANH, z, loc);
    case ACT_SOFTMAX: return ir_unary(g, OP_EXP, ir_logsoftmax(g, z, loc), loc); /* e^logsoftmax */
    }
    unreachable();
}

/* z = h @ W + b;  W [in, units], b [units] */
static NodeId dense(Graph *g, Arena *a, const Layer *l, NodeId h, NodeId *logits) {
    int64_t in = l->in.dim[0], units = l->out.dim[0];
    Slot w = {.kind = SLOT_PARAM, .name = arena_printf(a, "dense%d.W", l->index),
              .shape = {2, {in, units}}, .init = l->kernel_init, .fan_in = in, .fan_out = units};
    Slot b = {.kind = SLOT_PARAM, .name = arena_printf(a, "dense%d.b", l->index),
              .shape = {1, {units}}, .init = l->bias_init, .fan_in = in, .fan_out = units};
    NodeId W = ir_leaf(g, OP_PARAM, ir_add_slot(g, w), w.shape, l->loc);
    NodeId B = ir_leaf(g, OP_PARAM, ir_add_slot(g, b), b.shape, l->loc);
    NodeId z = ir_binary(g, OP_ADD, ir_matmul(g, h, W, l->loc), B, l->loc);
    *logits = z;
    return lower_activation(g, l->act, z, l->loc);
}

/* Images kept as uint8 are scaled by the nearest float to 1/255 (which takes
 * 255 to exactly 1), as nnrt_batch_fill scales them when it converts a batch
 * itself: a run gives the same numbers either way. */
NodeId lower_input(Graph *g, int slot, Loc loc) {
    NodeId x = ir_leaf(g, OP_INPUT, slot, g->slots[slot].shape, loc);
    return g->slots[slot].u8 ? ir_binary(g, OP_MUL, x, ir_const(g, 1.0 / 255, (Shape){0}, loc), loc) : x;
}

NodeId lower_forward(Graph *g, const Model *m, int64_t batch, InputType in, NodeId *pred) {
    if (m->functional) { /* checked by sema: no errors here */
        Diag quiet;
        diag_init(&quiet, stderr);
        /* No output shape wanted: sema has shown the warnings once. */
        NodeId loss = func_lower(g, m, batch, in, &quiet, pred, NULL);
        if (loss < 0)
            die("lower: a checked functional model has errors");
        return loss;
    }
    Arena *a = g->arena;
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Shape xs = batched(&m->input, batch), ys = {1, {batch}}, out = batched(&m->output, batch);
    int sx = ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = m->input_name, .shape = xs, .u8 = in == INPUT_U8});
    int sy = ir_add_slot(g, (Slot){.kind = SLOT_LABEL, .name = "label", .shape = ys});
    ir_add_slot(g, (Slot){.kind = SLOT_LOSS, .name = "loss"});
    ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "output", .shape = out});

    NodeId h = lower_input(g, sx, m->input_loc);
    NodeId logits = h;
    for (int i = 0; i < m->nlayers; i++) {
        const Layer *l = &m->layers[i];
        if (l->kind == LAYER_FLATTEN)
            logits = h = ir_reshape(g, h, batched(&l->out, batch), l->loc);
        else
            h = dense(g, a, l, h, &logits);
    }
    *pred = h;

    Loc loc = m->loss_loc;
    NodeId y = ir_leaf(g, OP_LABEL, sy, ys, loc);
    int64_t classes = m->output.dim[m->output.rank - 1];
    Shape scalar = {0};
    switch (m->loss) {
    case LOSS_CROSSENTROPY: {
        /* L = -1/n sum_i log softmax(z_i)[y_i]. After softmax, z is the layer's
         * logits; otherwise the output itself is taken as logits. */
        bool softmax_last = m->nlayers > 0 && m->layers[m->nlayers - 1].kind == LAYER_DENSE &&
                            m->layers[m->nlayers - 1].act == ACT_SOFTMAX;
        NodeId ls = ir_logsoftmax(g, softmax_last ? logits : h, loc);
        NodeId picked = ir_sum(g, ir_binary(g, OP_MUL, ir_onehot(g, y, classes, loc), ls, loc), -1, loc);
        return ir_binary(g, OP_MUL, picked, ir_const(g, -1.0 / (double)batch, scalar, loc), loc);
    }
    case LOSS_MAE:
    case LOSS_BCE: {
        /* The functions of expressions, on the output against mse's targets,
         * so binary_crossentropy after sigmoid takes the logits (expr.c). */
        NodeId t = classes > 1 ? ir_onehot(g, y, classes, loc) : ir_reshape(g, y, out, loc);
        Diag quiet; /* checked by sema: nothing to report */
        diag_init(&quiet, stderr);
        ExprEnv e = {.arena = a, .diag = &quiet, .g = g, .batch = batch};
        NodeId loss = expr_loss(&e, m->loss == LOSS_MAE ? "mae" : "binary_crossentropy", loc, loc, h, t);
        if (loss < 0)
            die("lower: the %s loss of a checked model", m->loss == LOSS_MAE ? "mae" : "binary_crossentropy");
        return loss;
    }
    case LOSS_MSE: {
        /* L = 1/(n k) sum (out - t)^2, t = onehot(y) for k > 1 outputs, else y. */
        NodeId t = classes > 1 ? ir_onehot(g, y, classes, loc) : ir_reshape(g, y, out, loc);
        NodeId d = ir_binary(g, OP_SUB, h, t, loc);
        NodeId ss = ir_sum(g, ir_binary(g, OP_MUL, d, d, loc), -1, loc);
        return ir_binary(g, OP_MUL, ss, ir_const(g, 1.0 / ((double)batch * (double)classes), scalar, loc), loc);
    }
    case LOSS_NLL: /* sema allows it in the functional form only */
        break;
    }
    unreachable();
}
