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
 *
 * Several inputs, targets and losses (Keras' functional API) keep those
 * slots: the inputs lie side by side in the input slot, the targets in the
 * label slot, each a slice of it, and the loss is the sum of the (weighted)
 * terms, so the runtime feeds them from one file or data block as it feeds
 * one input.
 */
#include "nnc.h"

#include <math.h>
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

/* The weight of a loss term: loss f(out, y, weight = w), Keras'
 * loss_weights; 1 unless given. False once reported. */
static bool func_loss_weight(ExprEnv *e, const AstExpr *call, double *w) {
    *w = 1;
    if (call->nargs == 3 && call->args[2]->kind == EX_KEYWORD && !strcmp(call->args[2]->name, "weight")) {
        const AstExpr *v = call->args[2]->args[0];
        if (v->kind == EX_NUM && v->num.value >= 0 && isfinite(v->num.value)) {
            *w = v->num.value;
            return true;
        }
        diag_error(e->diag, v->loc, "a loss weight is a number of at least 0");
        return false;
    }
    if (call->nargs == 2 && call->args[0]->kind != EX_KEYWORD && call->args[1]->kind != EX_KEYWORD)
        return true;
    if (call->nargs == 3 && call->args[2]->kind == EX_KEYWORD) {
        const char *key = diag_clip(e->arena, call->args[2]->name, strlen(call->args[2]->name));
        diag_error(e->diag, call->args[2]->loc, "unknown argument '%s' for %s; expected weight = w", key, call->name);
        return false;
    }
    diag_error(e->diag, call->loc, "%s takes 2 arguments and a weight, found %d; expected %s(prediction, target"
               "[, weight = w])", call->name, call->nargs, call->name);
    return false;
}

/* -1/n sum_i logp[i, y_i]: the mean negative log-likelihood of class
 * indices y under the log-probabilities logp [n, K]. */
static NodeId func_nll(Graph *g, NodeId logp, NodeId y, int64_t classes, int64_t batch, Loc l) {
    NodeId labels = ir_reshape(g, y, (Shape){1, {batch}}, l);
    NodeId picked = ir_sum(g, ir_binary(g, OP_MUL, ir_onehot(g, labels, classes, l), logp, l), -1, l);
    return ir_binary(g, OP_MUL, picked, ir_const(g, -1.0 / (double)batch, (Shape){0}, l), l);
}

/* The loss of out against y, the mean over the batch. loss mse(out, y)
 * names both; a bare 'loss mse' takes the last value and the target (or,
 * without one, the labels as the sequential form does). crossentropy and
 * nll against class indices (a target of one value per sample) go through
 * log-probabilities: crossentropy on the logits z when out = softmax(z) (the
 * stable form), nll on out itself; against a target of out's shape (one-hot
 * or probabilities, Keras' categorical crossentropy) expr_loss computes it. */
static NodeId func_loss(Func *f, const AstItem *it, NodeId cur, NodeId target, int label_slot, NodeId *pred,
                        bool check) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    const AstExpr *call = it->expr;
    Loc lo = it->name_loc, ly = it->name_loc; /* where the prediction and the target are written */
    NodeId out = cur, y = target;
    LossKind kind;
    double weight = 1;
    if (!sema_loss_lookup(it->name, &kind))
        return -1; /* sema reported it */
    if (call) {
        if (!func_loss_weight(e, call, &weight))
            return -1;
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
    bool sparse = kind == LOSS_CROSSENTROPY || kind == LOSS_NLL;
    if (y < 0) { /* the labels, as the sequential form reads them */
        NodeId labels = ir_leaf(g, OP_LABEL, label_slot, (Shape){1, {e->batch}}, it->loc);
        if (sparse) /* a class index per sample */
            y = labels;
        else if (shape_elems(&so) == 1) /* the label itself is the target */
            y = ir_reshape(g, labels, g->nodes[out].shape, it->loc);
        else /* one-hot targets */
            y = ir_onehot(g, labels, so.rank ? so.dim[so.rank - 1] : 1, it->loc);
    }
    Shape sy = expr_shape(e, y);
    Loc l = it->loc;
    *pred = out;
    NodeId loss;
    if (!sparse || (kind == LOSS_CROSSENTROPY && shape_eq(&so, &sy) && shape_elems(&sy) > 1)) {
        static const char *const names[] = {[LOSS_CROSSENTROPY] = "crossentropy", [LOSS_MSE] = "mse",
                                            [LOSS_MAE] = "mae", [LOSS_BCE] = "binary_crossentropy"};
        loss = expr_loss(e, names[kind], l, ly, out, y);
    } else {
        const char *name = kind == LOSS_NLL ? "nll" : "crossentropy";
        if (so.rank != 1 || so.dim[0] < 2) {
            diag_error(e->diag, lo, "%s expects a %s per class: expected [K] with K >= 2, found %s", name,
                       kind == LOSS_NLL ? "log-probability" : "class score", shape_str(&so, b1, sizeof b1));
            return -1;
        }
        if (shape_elems(&sy) != 1 || !expr_batched(e, y)) {
            diag_error(e->diag, ly, "%s takes a class index per sample (expected [] or [1])%s, found %s", name,
                       kind == LOSS_NLL ? "" : " or a target of the prediction's shape",
                       shape_str(&sy, b2, sizeof b2));
            return -1;
        }
        const IrNode *on = &g->nodes[out];
        bool softmax = on->op == OP_EXP && g->nodes[on->in[0]].op == OP_LOGSOFTMAX;
        if (kind == LOSS_NLL) {
            if (softmax && check)
                diag_warning(e->diag, lo, "nll of a softmax: nll takes log-probabilities; use log_softmax, or "
                             "crossentropy for probabilities");
        } else if (!softmax && check) {
            diag_warning(e->diag, lo, "crossentropy of a value that is not a softmax: it is taken as logits");
        }
        NodeId logp = kind == LOSS_NLL ? out : softmax ? on->in[0] : ir_logsoftmax(g, out, l);
        loss = func_nll(g, logp, y, so.dim[0], e->batch, l);
    }
    return loss < 0 || weight == 1 ? loss : ir_binary(g, OP_MUL, loss, ir_const(g, weight, (Shape){0}, l), l);
}

/* The inputs (or the targets) of a model: with one, its slot holds it as
 * declared; with several, they lie side by side in one slot [batch, total]
 * (the runtime fills a slot from one file or one data block) and each is a
 * slice of it. *offset: where this one starts. */
static NodeId func_packed(Func *f, NodeId whole, int count, const AstItem *it, int64_t *offset) {
    Graph *g = f->e.g;
    Shape d = declared(it), s = batched(&d, f->e.batch);
    int64_t n = shape_elems(&d);
    NodeId v = count == 1 ? whole : ir_slice(g, whole, 1, *offset, n, it->loc);
    *offset += n;
    return ir_reshape(g, v, s, it->loc);
}

/* Several losses: every prediction flattened, side by side, as the output. */
static NodeId func_outputs(Func *f, NodeId all, NodeId pred, Loc l) {
    Graph *g = f->e.g;
    Shape s = expr_shape(&f->e, pred);
    NodeId flat = ir_reshape(g, pred, (Shape){2, {f->e.batch, shape_elems(&s)}}, l);
    return all < 0 ? flat : ir_concat(g, all, flat, 1, l);
}

NodeId func_lower(Graph *g, const Model *m, int64_t batch, InputType in, Diag *d, NodeId *pred, Shape *output) {
    Arena *a = g->arena;
    int errors = d->errors;
    const AstModel *ast = m->functional;
    int ninputs = 0, ntargets = 0;
    Loc xloc = ast->loc, yloc = ast->loc; /* of the first input and target */
    for (int i = 0; i < ast->nitems; i++) {
        if (ast->items[i].kind == AST_INPUT && !ninputs++)
            xloc = ast->items[i].loc;
        if (ast->items[i].kind == AST_TARGET && !ntargets++)
            yloc = ast->items[i].loc;
    }
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Shape xs = ninputs == 1 ? batched(&m->input, batch) : (Shape){2, {batch, shape_elems(&m->input)}};
    Shape ys = m->label_size == 1 && ntargets <= 1 ? (Shape){1, {batch}} : (Shape){2, {batch, m->label_size}};
    int sx = ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = ninputs == 1 ? m->input_name : "inputs",
                                   .shape = xs, .u8 = in == INPUT_U8});
    int sy = ir_add_slot(g, (Slot){.kind = SLOT_LABEL, .name = "label", .shape = ys});
    ir_add_slot(g, (Slot){.kind = SLOT_LOSS, .name = "loss"});
    ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "output"});

    Func f = {.e = {.arena = a, .diag = d, .g = g, .batch = batch, .dense = func_dense, .warn = output != NULL}};
    ExprEnv *e = &f.e;
    NodeId xall = lower_input(g, sx, xloc), yall = ir_leaf(g, OP_LABEL, sy, ys, yloc);
    NodeId loss = -1, target = -1, outputs = -1;
    int64_t xoff = 0, yoff = 0;
    NodeId cur = -1; /* the value a layer line applies to: the last one made */
    for (int i = 0; i < ast->nitems && !diag_quiet(d); i++) {
        const AstItem *it = &ast->items[i];
        switch (it->kind) {
        case AST_INPUT:
            cur = func_packed(&f, xall, ninputs, it, &xoff);
            expr_bind(e, it->name, it->name_loc, cur);
            break;
        case AST_TARGET:
            target = func_packed(&f, yall, ntargets, it, &yoff);
            expr_bind(e, it->name, it->name_loc, target);
            break;
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
        case AST_LOSS: {
            NodeId p = -1, term = func_loss(&f, it, cur, target, sy, &p, output != NULL);
            if (term >= 0) { /* Keras' total: the sum of the (weighted) terms */
                loss = loss < 0 ? term : ir_binary(g, OP_ADD, loss, term, it->loc);
                outputs = m->several_losses ? func_outputs(&f, outputs, p, it->loc) : p;
            }
            break;
        }
        default: /* the others are sema's */
            break;
        }
    }
    if (d->errors != errors || loss < 0)
        return -1;
    *pred = outputs;
    g->slots[SLOT_NO_OUTPUT].shape = g->nodes[*pred].shape;
    if (output)
        *output = expr_shape(e, *pred);
    return loss;
}
