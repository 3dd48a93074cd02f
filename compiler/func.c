/* func.c — the functional form of a model (the slides' notation) to IR:
 *
 *     model shallow {
 *         input  x[1]
 *         target y[1]
 *         param  theta0[3] = zeros, theta1[3, 1] = he, phi0[1] = zeros, phi1[1, 3]
 *         h    = relu(theta0 + theta1 @ x)
 *         out  = phi0 + phi1 @ h
 *         loss   mse(out, y)
 *     }
 *
 * Expressions are lowered by expr.c with a batch: the input and the target
 * hold `batch` samples on a leading axis, parameters do not, and every shape
 * is checked and shown per sample. The step function has the same slots as
 * a sequential model's (arena, input, label, loss, output, then parameters
 * in the order they appear), so the runtime trains either alike. Sema calls
 * this once to check the model; lower_forward calls it per batch size.
 */
#include "nnc.h"

#include <string.h>

typedef struct Func {
    ExprEnv e; /* first: the dense hook gets it and finds the rest */
    int ndense;
} Func;

static Shape batched(const Shape *s, int64_t batch) {
    Shape r = {.rank = s->rank + 1, .dim = {batch}};
    for (int i = 0; i < s->rank; i++)
        r.dim[i + 1] = s->dim[i];
    return r;
}

/* The shape an item declares (sema checked its dimensions). */
static Shape declared(const AstItem *it) {
    Shape s = {.rank = it->ndims};
    for (int i = 0; i < it->ndims; i++)
        s.dim[i] = it->dims[i].ivalue;
    return s;
}

static NodeId param_leaf(Graph *g, Slot sl, Loc loc) {
    return ir_leaf(g, OP_PARAM, ir_add_slot(g, sl), sl.shape, loc);
}

/* param NAME[dims] [= INIT]: Keras' fans; glorot_uniform unless told. */
static NodeId func_param(Func *f, const AstItem *it) {
    Shape s = declared(it);
    Slot sl = {.kind = SLOT_PARAM, .name = it->name, .shape = s, .init = {.kind = NNRT_INIT_GLOROT_UNIFORM}};
    init_fans(&s, &sl.fan_in, &sl.fan_out);
    if (it->init && !init_resolve(&f->e, it->init, &s, &sl.init))
        return -1;
    return param_leaf(f->e.g, sl, it->loc);
}

/* The parameters of a dense layer on [in] -> [units], named dense1.W,
 * dense1.b, ... as a layer line's are: z = h @ W + b, then act. */
static NodeId func_dense_apply(Func *f, Loc loc, NodeId h, int64_t units, Act act, AstExpr *const *kwargs,
                               int nkwargs) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    int64_t in = expr_shape(e, h).dim[0];
    Slot w = {.kind = SLOT_PARAM, .shape = {2, {in, units}}, .fan_in = in, .fan_out = units};
    Slot b = {.kind = SLOT_PARAM, .shape = {1, {units}}, .fan_in = in, .fan_out = units};
    if (!init_dense(e, kwargs, nkwargs, act, &w.shape, &b.shape, &w.init, &b.init))
        return -1;
    f->ndense++;
    w.name = arena_printf(e->arena, "dense%d.W", f->ndense);
    b.name = arena_printf(e->arena, "dense%d.b", f->ndense);
    NodeId W = param_leaf(g, w, loc), B = param_leaf(g, b, loc);
    return lower_activation(g, act, ir_binary(g, OP_ADD, ir_matmul(g, h, W, loc), B, loc), loc);
}

/* dense(h, units[, act][, kernel_initializer = ..., bias_initializer = ...]) */
static NodeId func_dense(ExprEnv *e, const AstExpr *x) {
    Func *f = (Func *)e;
    int npos = 0;
    while (npos < x->nargs && x->args[npos]->kind != EX_KEYWORD)
        npos++;
    if (npos < 2 || npos > 3) {
        diag_error(e->diag, x->loc, "dense takes 2 or 3 arguments, found %d; expected dense(h, units[, activation])",
                   npos);
        return -1;
    }
    NodeId h = expr_lower(e, x->args[0]);
    const AstExpr *u = x->args[1];
    bool ok = h >= 0;
    if (u->kind != EX_NUM || !u->num.is_int || u->num.too_large || u->num.ivalue < 1 ||
        u->num.ivalue > NNC_MAX_ELEMS) {
        diag_error(e->diag, u->loc, "the number of units must be an integer from 1 to %lld", (long long)NNC_MAX_ELEMS);
        ok = false;
    }
    Act act = ACT_LINEAR;
    if (npos == 3 && (x->args[2]->kind != EX_NAME || !act_lookup(x->args[2]->name, &act))) {
        diag_error(e->diag, x->args[2]->loc, "expected an activation: relu, sigmoid, tanh, softmax or linear");
        ok = false;
    }
    if (!ok)
        return -1;
    Shape sh = expr_shape(e, h);
    if (!expr_batched(e, h) || sh.rank != 1) {
        diag_error(e->diag, x->args[0]->loc, "dense takes a vector per sample of the input: expected [n], found %s%s",
                   shape_str(&sh, (char[96]){0}, 96), expr_batched(e, h) ? "" : " (not computed from the input)");
        return -1;
    }
    int64_t in = sh.dim[0], units = u->num.ivalue, weights;
    if (__builtin_mul_overflow(in, units, &weights) || weights > NNC_MAX_ELEMS) {
        diag_error(e->diag, u->loc, "dense of %lld units is too large: its weight matrix [%lld, %lld] would have more "
                   "than %lld elements", (long long)units, (long long)in, (long long)units, (long long)NNC_MAX_ELEMS);
        return -1;
    }
    return func_dense_apply(f, x->loc, h, units, act, x->args + npos, x->nargs - npos);
}

/* dense N [, ACT] [, options] as a layer line: on the value before it. */
static NodeId func_dense_line(Func *f, const AstItem *it, NodeId h) {
    Shape sh = expr_shape(&f->e, h);
    if (!expr_batched(&f->e, h)) {
        diag_error(f->e.diag, it->loc, "dense applies to a value computed from the input; the one before it is not");
        return -1;
    }
    if (sh.rank != 1) {
        char b[96];
        diag_error(f->e.diag, it->loc, "dense expects a vector per sample: expected rank 1, found %s",
                   shape_str(&sh, b, sizeof b));
        diag_note(f->e.diag, it->loc, "add 'flatten' before it");
        return -1;
    }
    Act act = ACT_LINEAR;
    if (it->name && !act_lookup(it->name, &act)) /* sema reported it */
        return -1;
    int64_t in = sh.dim[0], units = it->units.ivalue, weights;
    if (__builtin_mul_overflow(in, units, &weights) || weights > NNC_MAX_ELEMS) {
        diag_error(f->e.diag, it->units.loc, "dense layer of %lld units is too large: its weight matrix [%lld, %lld] "
                   "would have more than %lld elements", (long long)units, (long long)in, (long long)units,
                   (long long)NNC_MAX_ELEMS);
        return -1;
    }
    return func_dense_apply(f, it->loc, h, units, act, it->kwargs, it->nkwargs);
}

/* The loss of out against y: mse or crossentropy, the mean over the batch.
 * loss mse(out, y) names both; a bare 'loss mse' takes the last value and
 * the target (or, without one, the labels as the sequential form does). */
static NodeId func_loss(Func *f, const Model *m, const AstItem *it, NodeId cur, NodeId target, int label_slot,
                        NodeId *pred, bool check) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    const AstExpr *call = it->expr;
    Loc lo = it->name_loc, ly = it->name_loc; /* where the prediction and the target are written */
    NodeId out = cur, y = target;
    if (call) {
        if (call->nargs != 2 || call->args[0]->kind == EX_KEYWORD || call->args[1]->kind == EX_KEYWORD) {
            diag_error(e->diag, call->loc, "%s takes 2 arguments, found %d; expected %s(prediction, target)",
                       call->name, call->nargs, call->name);
            return -1;
        }
        out = expr_lower(e, call->args[0]);
        y = expr_lower(e, call->args[1]);
        lo = call->args[0]->loc;
        ly = call->args[1]->loc;
    }
    if (out < 0 || (call && y < 0))
        return -1;
    Shape so = expr_shape(e, out);
    char b1[96], b2[96];
    if (!expr_batched(e, out)) {
        diag_error(e->diag, lo, "the prediction does not depend on the input");
        return -1;
    }
    if (y < 0) { /* the labels, as the sequential form reads them */
        NodeId labels = ir_leaf(g, OP_LABEL, label_slot, (Shape){1, {e->batch}}, it->loc);
        if (m->loss == LOSS_CROSSENTROPY) /* a class index per sample */
            y = labels;
        else if (shape_elems(&so) == 1) /* the label itself is the target */
            y = ir_reshape(g, labels, g->nodes[out].shape, it->loc);
        else /* one-hot targets */
            y = ir_onehot(g, labels, so.rank ? so.dim[so.rank - 1] : 1, it->loc);
    }
    Shape sy = expr_shape(e, y);
    Loc l = it->loc;
    int64_t batch = e->batch;
    *pred = out;
    if (m->loss == LOSS_MAE || m->loss == LOSS_BCE)
        return expr_loss(e, m->loss == LOSS_MAE ? "mae" : "binary_crossentropy", l, ly, out, y);
    if (m->loss == LOSS_MSE) { /* 1/(n k) sum (out - y)^2 */
        if (!shape_eq(&so, &sy)) {
            diag_error(e->diag, ly, "mse compares equal shapes: expected %s, found %s",
                       shape_str(&so, b1, sizeof b1), shape_str(&sy, b2, sizeof b2));
            return -1;
        }
        NodeId d = ir_binary(g, OP_SUB, out, y, l);
        NodeId ss = ir_sum(g, ir_binary(g, OP_MUL, d, d, l), -1, l);
        double n = (double)batch * (double)shape_elems(&so);
        return ir_binary(g, OP_MUL, ss, ir_const(g, 1 / n, (Shape){0}, l), l);
    }
    /* crossentropy against class indices: -1/n sum_i log softmax(z_i)[y_i],
     * on the logits z when out = softmax(z) (the stable form). */
    if (so.rank != 1 || so.dim[0] < 2) {
        diag_error(e->diag, lo,
                   "crossentropy expects a class score per class: expected [K] with K >= 2, found %s",
                   shape_str(&so, b1, sizeof b1));
        return -1;
    }
    if (shape_elems(&sy) != 1 || !expr_batched(e, y)) {
        diag_error(e->diag, ly, "crossentropy takes a class index per sample: expected [] or [1], "
                   "found %s", shape_str(&sy, b2, sizeof b2));
        return -1;
    }
    const IrNode *on = &g->nodes[out];
    bool softmax = on->op == OP_EXP && g->nodes[on->in[0]].op == OP_LOGSOFTMAX;
    if (!softmax && check)
        diag_warning(e->diag, lo, "crossentropy of a value that is not a softmax: it is taken as logits");
    NodeId ls = softmax ? on->in[0] : ir_logsoftmax(g, out, l);
    NodeId labels = ir_reshape(g, y, (Shape){1, {batch}}, l);
    NodeId picked = ir_sum(g, ir_binary(g, OP_MUL, ir_onehot(g, labels, so.dim[0], l), ls, l), -1, l);
    return ir_binary(g, OP_MUL, picked, ir_const(g, -1.0 / (double)batch, (Shape){0}, l), l);
}

NodeId func_lower(Graph *g, const Model *m, int64_t batch, Diag *d, NodeId *pred, Shape *output) {
    Arena *a = g->arena;
    int errors = d->errors;
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Shape xs = batched(&m->input, batch), ys = {1, {batch}};
    int sx = ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = m->input_name, .shape = xs});
    int sy = ir_add_slot(g, (Slot){.kind = SLOT_LABEL, .name = "label", .shape = ys});
    ir_add_slot(g, (Slot){.kind = SLOT_LOSS, .name = "loss"});
    ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "output"});

    Func f = {.e = {.arena = a, .diag = d, .g = g, .batch = batch, .dense = func_dense, .warn = output != NULL}};
    ExprEnv *e = &f.e;
    expr_bind(e, m->input_name, m->input_loc, ir_leaf(g, OP_INPUT, sx, xs, m->input_loc));
    NodeId loss = -1, target = -1;
    NodeId cur = e->names[0].node; /* the value a layer line applies to: the last one made */
    const AstModel *ast = m->functional;
    for (int i = 0; i < ast->nitems && !diag_quiet(d); i++) {
        const AstItem *it = &ast->items[i];
        switch (it->kind) {
        case AST_TARGET: {
            Shape t = declared(it);
            if (shape_elems(&t) != 1) {
                diag_error(d, it->name_loc, "target '%s' has %lld values per sample; only one value (or a class) "
                           "per sample is supported yet: expected [] or [1]",
                           diag_clip(a, it->name, strlen(it->name)), (long long)shape_elems(&t));
                expr_bind(e, it->name, it->name_loc, -1); /* known, so its uses stay quiet */
                break;
            }
            NodeId y = ir_leaf(g, OP_LABEL, sy, ys, it->loc);
            target = ir_reshape(g, y, batched(&t, batch), it->loc);
            expr_bind(e, it->name, it->name_loc, target);
            break;
        }
        case AST_PARAM:
            expr_bind(e, it->name, it->name_loc, func_param(&f, it));
            break;
        case AST_ASSIGN:
            cur = expr_lower(e, it->expr);
            expr_bind(e, it->name, it->name_loc, cur);
            break;
        case AST_FLATTEN:
            if (cur >= 0) { /* to a vector per sample */
                Shape ps = expr_shape(e, cur), s = {1, {shape_elems(&ps)}};
                cur = ir_reshape(g, cur, expr_batched(e, cur) ? batched(&s, batch) : s, it->loc);
            }
            break;
        case AST_DENSE:
            cur = cur >= 0 ? func_dense_line(&f, it, cur) : -1;
            break;
        case AST_LOSS:
            loss = func_loss(&f, m, it, cur, target, sy, pred, output != NULL);
            break;
        default: /* input: bound above; the others are sema's */
            break;
        }
    }
    if (d->errors != errors || loss < 0)
        return -1;
    g->slots[SLOT_NO_OUTPUT].shape = g->nodes[*pred].shape;
    if (output)
        *output = expr_shape(e, *pred);
    return loss;
}
