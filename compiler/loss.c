/* loss.c — the losses: their names, their checks and their IR, in one place.
 *
 * A loss is written as a model's statement (`loss crossentropy` of the
 * network's output against the labels, or `loss mse(out, y)` naming both) or
 * as a function in an expression (`mse(p, y)`). Keras' definitions, each the
 * mean over the batch (and over the other axes but the classes'), in its
 * numerically stable form:
 *
 *   mse = mean (p - y)^2          mae = mean |p - y|
 *   binary_crossentropy = mean -(y ln p + (1 - y) ln(1 - p)), p clipped to
 *     [1e-7, 1 - 1e-7] as Keras clips it (a p of 0 or 1 is no NaN); on the
 *     logits z when p = sigmoid(z): bce_logits(z, y), whose derivative is p - y
 *   crossentropy = mean over samples of -sum_classes y ln p; on
 *     log_softmax(z) when p = softmax(z), never log(softmax(z)); in a model,
 *     a prediction that is not a softmax is taken as logits, whatever the
 *     target's form
 *   against class indices (a target of one value per sample), crossentropy
 *   is -1/n sum_i log softmax(z_i)[y_i], and nll the same of log-probabilities
 */
#include "nnc.h"

#include <math.h>
#include <string.h>

/* Indexed by LossKind; the order messages list them. */
static const char *const loss_names[] = {"crossentropy", "mse", "mae", "binary_crossentropy", "nll", NULL};

/* Keras' names of crossentropy, each for one form of the targets, which is
 * checked where the target is written: categorical_crossentropy against
 * one-hot targets or probabilities (of the prediction's shape),
 * sparse_categorical_crossentropy against class indices. */
typedef enum { FORM_ANY, FORM_ONEHOT, FORM_INDEX } TargetForm;
static const struct {
    const char *name;
    TargetForm form;
} crossentropy_aliases[] = {
    {"categorical_crossentropy", FORM_ONEHOT},
    {"sparse_categorical_crossentropy", FORM_INDEX},
};

const char *loss_name(LossKind k) { return loss_names[k]; }

/* The form of the targets the loss named `name` takes. */
static TargetForm loss_form(const char *name) {
    for (size_t i = 0; i < sizeof crossentropy_aliases / sizeof crossentropy_aliases[0]; i++)
        if (!strcmp(name, crossentropy_aliases[i].name))
            return crossentropy_aliases[i].form;
    return FORM_ANY;
}

bool loss_lookup(const char *name, LossKind *out) {
    for (int i = 0; loss_names[i]; i++)
        if (!strcmp(name, loss_names[i])) {
            *out = (LossKind)i;
            return true;
        }
    if (loss_form(name) == FORM_ANY)
        return false;
    *out = LOSS_CROSSENTROPY;
    return true;
}

bool loss_resolve(Arena *a, Diag *d, const char *name, Loc loc, LossKind *out) {
    if (loss_lookup(name, out))
        return true;
    const char *guess = diag_quiet(d) ? NULL : closest_name(name, loss_names);
    const char *shown = diag_clip(a, name, strlen(name));
    if (guess)
        diag_error(d, loc, "unknown loss '%s'; did you mean '%s'?", shown, guess);
    else
        diag_error(d, loc, "unknown loss '%s'; expected crossentropy, mse, mae, binary_crossentropy or nll", shown);
    return false;
}

/* Keras' clip of a probability in binary_crossentropy. */
#define BCE_EPSILON 1e-7

/* Is n op(z)? Then *z. */
static bool applies(const Graph *g, NodeId n, Op op, NodeId *z) {
    if (g->nodes[n].op != op)
        return false;
    *z = g->nodes[n].in[0];
    return true;
}

NodeId loss_lower(ExprEnv *e, LossKind kind, Loc l, Loc target_loc, NodeId p, NodeId y) {
    Graph *g = e->g;
    const char *name = loss_names[kind];
    Shape sp = expr_shape(e, p), sy = expr_shape(e, y);
    char b1[96], b2[96];
    if (!shape_eq(&sp, &sy)) {
        diag_error(e->diag, target_loc, "%s compares a prediction and a target of one shape: expected %s, found %s",
                   name, shape_str(&sp, b1, sizeof b1), shape_str(&sy, b2, sizeof b2));
        return -1;
    }
    bool batched = expr_batched(e, p) || expr_batched(e, y);
    int64_t count = shape_elems(&sp) * (batched ? e->batch : 1);
    NodeId ls = -1, z, r = -1; /* ls: log_softmax(z) when p = softmax(z) */
    bool softmax = applies(g, p, OP_EXP, &ls) && g->nodes[ls].op == OP_LOGSOFTMAX;
    int64_t classes = sp.rank ? sp.dim[sp.rank - 1] : 1;
    switch (kind) {
    case LOSS_MSE:
    case LOSS_MAE:
        if (softmax && e->warn)
            diag_warning(e->diag, l, "%s of a softmax: crossentropy is the loss for class probabilities", name);
        r = ir_binary(g, OP_SUB, p, y, l);
        r = kind == LOSS_MSE ? ir_binary(g, OP_MUL, r, r, l) : ir_unary(g, OP_ABS, r, l);
        break;
    case LOSS_BCE:
        if (softmax && e->warn)
            diag_warning(e->diag, l, "binary_crossentropy of a softmax: crossentropy is the loss for one class "
                         "out of several");
        if (applies(g, p, OP_SIGMOID, &z)) {
            r = ir_binary(g, OP_BCE_LOGITS, z, y, l);
        } else { /* Keras' epsilon, backend.epsilon() */
            NodeId one = ir_const(g, 1, (Shape){0}, l);
            p = ir_binary(g, OP_MINIMUM, ir_binary(g, OP_MAXIMUM, p, ir_const(g, BCE_EPSILON, (Shape){0}, l), l),
                          ir_const(g, 1 - BCE_EPSILON, (Shape){0}, l), l);
            r = ir_binary(g, OP_ADD, ir_binary(g, OP_MUL, y, ir_unary(g, OP_LOG, p, l), l),
                          ir_binary(g, OP_MUL, ir_binary(g, OP_SUB, one, y, l),
                                    ir_unary(g, OP_LOG, ir_binary(g, OP_SUB, one, p, l), l), l), l);
            r = ir_unary(g, OP_NEG, r, l);
        }
        break;
    case LOSS_CROSSENTROPY:
        if (applies(g, p, OP_SIGMOID, &z) && classes > 2 && e->warn)
            diag_warning(e->diag, l, "crossentropy of a sigmoid on %lld classes: its outputs do not sum to 1; use "
                         "softmax, or binary_crossentropy for independent labels", (long long)classes);
        r = ir_unary(g, OP_NEG, ir_binary(g, OP_MUL, y, softmax ? ls : ir_unary(g, OP_LOG, p, l), l), l);
        count /= classes;
        break;
    case LOSS_NLL: /* of class indices only: loss_item */
        unreachable();
    }
    NodeId sum = ir_sum(g, r, -1, l); /* made before the constant: the IR's numbering follows */
    return ir_binary(g, OP_MUL, sum, ir_const_batch(g, 1 / (double)count, batched ? -1 : 0, l), l);
}

/* The weight of a loss term: loss f(out, y, weight = w), Keras'
 * loss_weights; 1 unless given. False once reported. */
static bool loss_weight(ExprEnv *e, const AstExpr *call, double *w) {
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
static NodeId loss_nll(Graph *g, NodeId logp, NodeId y, int64_t classes, int64_t batch, Loc l) {
    NodeId labels = ir_reshape(g, y, (Shape){1, {batch}}, l);
    NodeId picked = ir_sum(g, ir_binary(g, OP_MUL, ir_onehot(g, labels, classes, l), logp, l), -1, l);
    return ir_binary(g, OP_MUL, picked, ir_const_batch(g, -1.0 / (double)batch, -1, l), l);
}

/* A bare loss of a layer line's output (the sequential form): the checks
 * worded after the line ("crossentropy after 'relu'"), at the loss's name.
 * False once an error is reported. */
static bool loss_after_layer(ModelEnv *f, const AstItem *it, LossKind kind, const Shape *so) {
    Diag *d = f->e.diag;
    Act act = f->layer_act;
    char b[96];
    if (kind == LOSS_NLL) {
        diag_error(d, it->name_loc, "nll takes log-probabilities, which no layer line computes; write the model in "
                   "the functional form, e.g. loss nll(log_softmax(z), y)");
        return false;
    }
    if (kind == LOSS_CROSSENTROPY) {
        if (so->rank == 1 && so->dim[0] >= 2 && f->e.warn &&
            (act == ACT_SIGMOID || act == ACT_RELU || act == ACT_TANH || act == ACT_SOFTPLUS))
            diag_warning(d, it->name_loc, "crossentropy after '%s': the outputs are treated as logits; use "
                         "'softmax' or 'linear'", act_name(act));
        return true; /* its shape is checked as any crossentropy's */
    }
    if (so->rank != 1) {
        diag_error(d, it->name_loc, "%s expects a vector per sample: expected rank 1, found %s", loss_names[kind],
                   shape_str(so, b, sizeof b));
        return false;
    }
    if (f->e.warn && act == ACT_SOFTMAX)
        diag_warning(d, it->name_loc, "%s after 'softmax': crossentropy is the loss for one class out of several",
                     loss_names[kind]);
    else if (f->e.warn && kind == LOSS_BCE && act != ACT_SIGMOID)
        diag_warning(d, it->name_loc, "binary_crossentropy after '%s': the outputs are taken as probabilities; use "
                     "'sigmoid'", act_name(act));
    return true;
}

NodeId loss_item(ModelEnv *f, const AstItem *it, NodeId *pred, NodeId *unweighted) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    const AstExpr *call = it->expr;
    Loc lo = it->name_loc, ly = it->name_loc; /* where the prediction and the target are written */
    NodeId out = f->cur, y = f->target;
    LossKind kind;
    double weight = 1;
    if (!loss_lookup(it->name, &kind))
        return -1; /* sema reported it */
    if (call) {
        if (!loss_weight(e, call, &weight))
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
    bool after_layer = !call && out == f->layer_out;
    if (after_layer && !loss_after_layer(f, it, kind, &so))
        return -1;
    bool sparse = kind == LOSS_CROSSENTROPY || kind == LOSS_NLL;
    if (y < 0) { /* the labels, as the labels file gives them */
        NodeId labels = model_labels(f, it->loc);
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
    NodeId z = -1; /* softmax(z) */
    bool softmax = applies(g, out, OP_EXP, &z) && g->nodes[z].op == OP_LOGSOFTMAX;
    bool onehot = !sparse || (kind == LOSS_CROSSENTROPY && shape_eq(&so, &sy) && shape_elems(&sy) > 1);
    /* Keras' names say the targets' form: a written target must have it (the
     * labels file's class indices are taken one-hot for categorical_) */
    TargetForm form = loss_form(it->name);
    if ((form == FORM_ONEHOT && !onehot && call) || (form == FORM_INDEX && onehot)) {
        diag_error(e->diag, ly, "%s takes %s, found %s; %s", it->name,
                   form == FORM_INDEX ? "a class index per sample (expected [] or [1])"
                                      : arena_printf(e->arena, "one-hot targets or probabilities of the "
                                                     "prediction's shape %s", shape_str(&so, b1, sizeof b1)),
                   shape_str(&sy, b2, sizeof b2),
                   form == FORM_INDEX ? "for one-hot targets use categorical_crossentropy"
                                      : "for class indices use sparse_categorical_crossentropy");
        return -1;
    }
    if (onehot) {
        bool warn = e->warn; /* after a layer line, its own warnings were given */
        e->warn = warn && !after_layer;
        NodeId p = out;
        if (kind == LOSS_CROSSENTROPY && !softmax) { /* logits, as against class indices */
            if (e->warn)
                diag_warning(e->diag, lo, "crossentropy of a value that is not a softmax: it is taken as logits");
            p = ir_unary(g, OP_EXP, ir_logsoftmax(g, out, l), l);
        }
        loss = loss_lower(e, kind, l, ly, p, y);
        e->warn = warn;
    } else {
        const char *name = loss_names[kind];
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
        if (kind == LOSS_NLL) {
            if (softmax && e->warn)
                diag_warning(e->diag, lo, "nll of a softmax: nll takes log-probabilities; use log_softmax, or "
                             "crossentropy for probabilities");
        } else if (!softmax && e->warn && !after_layer) {
            diag_warning(e->diag, lo, "crossentropy of a value that is not a softmax: it is taken as logits");
        }
        NodeId logp = kind == LOSS_NLL ? out : softmax ? z : ir_logsoftmax(g, out, l);
        loss = loss_nll(g, logp, y, so.dim[0], e->batch, l);
    }
    *unweighted = loss;
    return loss < 0 || weight == 1 ? loss : ir_binary(g, OP_MUL, loss, ir_const(g, weight, (Shape){0}, l), l);
}

const AstExpr **loss_terms(Arena *a, const AstExpr *sum, int *n) {
    int count = 1;
    for (const AstExpr *x = sum; x->kind == EX_BINARY && x->op == '+'; x = x->args[0])
        count++;
    const AstExpr **terms = arena_array(a, (size_t)count, sizeof *terms);
    const AstExpr *x = sum; /* a + b + c is ((a + b) + c): walked from the right, without recursion */
    for (int i = count - 1; i > 0; i--, x = x->args[0])
        terms[i] = x->args[1];
    terms[0] = x;
    *n = count;
    return terms;
}

bool loss_is_call(const AstExpr *t) {
    LossKind k;
    return t->kind == EX_CALL && loss_lookup(t->name, &k);
}

NodeId loss_penalty(ExprEnv *e, const AstExpr *t) {
    NodeId v = expr_lower(e, t);
    if (v < 0)
        return -1;
    Shape whole = e->g->nodes[v].shape; /* a value of the input is a scalar once reduced over the batch too */
    if (shape_elems(&whole) != 1) {
        char b[96];
        Shape s = expr_shape(e, v);
        diag_error(e->diag, t->loc, "a term of a loss beside its loss calls is a scalar, such as 0.001 * sum(W^2); "
                   "found %s%s", shape_str(&s, b, sizeof b), expr_batched(e, v) ? " per sample" : "");
        return -1;
    }
    return whole.rank ? ir_reshape(e->g, v, (Shape){0}, t->loc) : v;
}
