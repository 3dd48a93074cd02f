/* layers.c — the layers of the language and their activations.
 *
 * A layer is written as a line of a model (`dense 512, relu`, applied to the
 * value before it) or as a call in an expression (`dense(h, 512, relu)`).
 * Both parse their arguments here and share one checker of shapes and one
 * lowering, so a layer's diagnostics and its IR live in one place. The
 * sequential form is only notation: model.c lowers a model of layer lines as
 * it lowers any functional model.
 *
 *   flatten      [d0, d1, ...] -> [d0 d1 ...]
 *   dense N, a   [in] -> [N]:  a(h @ W + b),  W [in, N], b [N]
 */
#include "nnc.h"

#include <inttypes.h>
#include <string.h>

/* ---------------------------------------------------------------- activations */

/* Every activation: its name, in the order messages list them. */
static const struct {
    const char *name;
    Act act;
} activations[] = {
    {"relu", ACT_RELU}, {"sigmoid", ACT_SIGMOID}, {"tanh", ACT_TANH}, {"softmax", ACT_SOFTMAX},
    {"softplus", ACT_SOFTPLUS}, {"linear", ACT_LINEAR},
};
enum { NACTS = sizeof activations / sizeof activations[0] };

/* "relu, sigmoid, tanh, softmax, softplus or linear" */
static const char *act_expected(Arena *a) {
    const char *s = "";
    for (int i = 0; i < NACTS; i++)
        s = arena_printf(a, "%s%s%s", s, i == 0 ? "" : i == NACTS - 1 ? " or " : ", ", activations[i].name);
    return s;
}

const char *act_name(Act act) {
    for (int i = 0; i < NACTS; i++)
        if (activations[i].act == act)
            return activations[i].name;
    unreachable();
}

bool act_lookup(const char *name, Act *out) {
    for (int i = 0; i < NACTS; i++)
        if (!strcmp(activations[i].name, name)) {
            *out = activations[i].act;
            return true;
        }
    return false;
}

/* The activation written at loc; linear and false once an unknown one is reported. */
static bool act_resolve(ExprEnv *e, const char *name, Loc loc, Act *out) {
    *out = ACT_LINEAR;
    if (act_lookup(name, out))
        return true;
    const char *names[NACTS + 1];
    for (int i = 0; i < NACTS; i++)
        names[i] = activations[i].name;
    names[NACTS] = NULL;
    const char *guess = diag_quiet(e->diag) ? NULL : closest_name(name, names);
    const char *shown = diag_clip(e->arena, name, strlen(name));
    if (guess)
        diag_error(e->diag, loc, "unknown activation '%s'; did you mean '%s'?", shown, guess);
    else
        diag_error(e->diag, loc, "unknown activation '%s'; expected %s", shown, act_expected(e->arena));
    return false;
}

NodeId act_lower(Graph *g, Act act, NodeId z, Loc loc) {
    switch (act) {
    case ACT_LINEAR: return z;
    case ACT_RELU: return ir_unary(g, OP_RELU, z, loc);
    case ACT_SIGMOID: return ir_unary(g, OP_SIGMOID, z, loc);
    case ACT_TANH: return ir_unary(g, OP_TANH, z, loc);
    case ACT_SOFTMAX: return ir_unary(g, OP_EXP, ir_logsoftmax(g, z, loc), loc); /* e^logsoftmax: the loss sees
                                                                                      through it */
    case ACT_SOFTPLUS: /* ln(1 + e^z) = bce_logits(z, 0): stable for any z, derivative sigmoid(z) */
        return ir_binary(g, OP_BCE_LOGITS, z, ir_const(g, 0, (Shape){0}, loc), loc);
    }
    unreachable();
}

/* ---------------------------------------------------------------- flatten */

/* A layer line made h, its last activation act: a loss of h words its
 * messages after the line ("crossentropy after 'relu'"). */
static void layer_made(ModelEnv *f, NodeId h, Act act) {
    f->layer_out = h;
    f->layer_act = act;
}

/* flatten as a line: h to a vector per sample (-1 stays -1). */
NodeId layer_flatten_line(ModelEnv *f, const AstItem *it, NodeId h) {
    ExprEnv *e = &f->e;
    if (h < 0)
        return -1;
    Shape ps = expr_shape(e, h), s = {1, {shape_elems(&ps)}};
    Act act = h == f->layer_out ? f->layer_act : ACT_LINEAR;
    h = ir_reshape(e->g, h, expr_batched(e, h) ? (Shape){2, {e->batch, s.dim[0]}} : s, it->loc);
    layer_made(f, h, act);
    return h;
}

/* ---------------------------------------------------------------- dense */

/* z = h @ W + b, then act; W [in, units], b [units] (initializers checked). */
static NodeId dense_lower(ModelEnv *f, Loc loc, NodeId h, int64_t units, Act act, NnrtInit kernel, NnrtInit bias) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    int64_t in = expr_shape(e, h).dim[0];
    f->ndense++;
    Slot w = {.kind = SLOT_PARAM, .name = arena_printf(e->arena, "dense%d.W", f->ndense), .shape = {2, {in, units}},
              .init = kernel, .fan_in = in, .fan_out = units};
    Slot b = {.kind = SLOT_PARAM, .name = arena_printf(e->arena, "dense%d.b", f->ndense), .shape = {1, {units}},
              .init = bias, .fan_in = in, .fan_out = units};
    NodeId W = ir_leaf(g, OP_PARAM, ir_add_slot(g, w), w.shape, loc);
    NodeId B = ir_leaf(g, OP_PARAM, ir_add_slot(g, b), b.shape, loc);
    return act_lower(g, act, ir_binary(g, OP_ADD, ir_matmul(g, h, W, loc), B, loc), loc);
}

/* Does a weight matrix [in, units] fit? Reported at loc if not. */
static bool dense_fits(ExprEnv *e, Loc loc, const char *what, int64_t in, int64_t units) {
    int64_t weights;
    if (!__builtin_mul_overflow(in, units, &weights) && weights <= NNC_MAX_ELEMS)
        return true;
    diag_error(e->diag, loc, "%s of %" PRId64 " units is too large: its weight matrix [%" PRId64 ", %" PRId64
               "] would have more than %" PRId64 " elements", what, units, in, units, NNC_MAX_ELEMS);
    return false;
}

/* dense N [, ACT] [, kernel_initializer = ..., bias_initializer = ...] as a
 * line: on h, the value before it (-1: none known, after an error; its own
 * arguments are still checked). Reported left to right. */
NodeId layer_dense_line(ModelEnv *f, const AstItem *it, NodeId h) {
    ExprEnv *e = &f->e;
    Shape sh = h >= 0 ? expr_shape(e, h) : (Shape){0};
    if (h >= 0 && !expr_batched(e, h)) {
        diag_error(e->diag, it->loc, "dense applies to a value computed from the input; the one before it is not");
        h = -1;
    } else if (h >= 0 && sh.rank != 1) {
        char b[96];
        diag_error(e->diag, it->loc, "dense expects a vector per sample: expected rank 1, found %s",
                   shape_str(&sh, b, sizeof b));
        diag_note(e->diag, it->loc, "add 'flatten' before it");
        h = -1;
    }
    int64_t units = 0;
    bool ok = sema_int(e->arena, e->diag, &it->units, "the number of units", 1, INT64_MAX, &units);
    if (ok && h >= 0) {
        ok = dense_fits(e, it->units.loc, "dense layer", sh.dim[0], units);
    } else if (ok && units > NNC_MAX_ELEMS) {
        diag_error(e->diag, it->units.loc, "dense layer of %" PRId64 " units is too large: at most %" PRId64
                   " are supported", units, NNC_MAX_ELEMS);
        ok = false;
    }
    Act act = ACT_LINEAR;
    if (it->name)
        act_resolve(e, it->name, it->name_loc, &act); /* linear after an error: later layers are still checked */
    /* The initializers: a literal's shape is checked when the layer's is known. */
    bool shapes = ok && h >= 0;
    Shape w = {2, {shapes ? sh.dim[0] : 0, units}}, b = {1, {units}};
    NnrtInit kernel, bias; /* a bad initializer is reported, and the layer's value still made for the next */
    init_dense(e, it->kwargs, it->nkwargs, act, shapes ? &w : NULL, shapes ? &b : NULL, &kernel, &bias);
    if (!ok || h < 0)
        return -1;
    h = dense_lower(f, it->loc, h, units, act, kernel, bias);
    layer_made(f, h, act);
    return h;
}

/* dense(h, units[, act][, kernel_initializer = ..., bias_initializer = ...]):
 * expr.c's hook for the call, in a model. */
NodeId layer_dense_call(ExprEnv *e, const AstExpr *x) {
    ModelEnv *f = (ModelEnv *)e;
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
        diag_error(e->diag, u->loc, "the number of units must be an integer from 1 to %" PRId64, NNC_MAX_ELEMS);
        ok = false;
    }
    Act act = ACT_LINEAR;
    if (npos == 3 && (x->args[2]->kind != EX_NAME || !act_lookup(x->args[2]->name, &act))) {
        diag_error(e->diag, x->args[2]->loc, "expected an activation: %s", act_expected(e->arena));
        ok = false;
    }
    if (!ok)
        return -1;
    Shape sh = expr_shape(e, h);
    if (!expr_batched(e, h) || sh.rank != 1) {
        char b[96];
        diag_error(e->diag, x->args[0]->loc, "dense takes a vector per sample of the input: expected [n], found %s%s",
                   shape_str(&sh, b, sizeof b), expr_batched(e, h) ? "" : " (not computed from the input)");
        return -1;
    }
    int64_t units = u->num.ivalue;
    if (!dense_fits(e, u->loc, "dense", sh.dim[0], units))
        return -1;
    Shape w = {2, {sh.dim[0], units}}, b = {1, {units}};
    NnrtInit kernel, bias;
    if (!init_dense(e, x->args + npos, x->nargs - npos, act, &w, &b, &kernel, &bias))
        return -1;
    return dense_lower(f, x->loc, h, units, act, kernel, bias);
}
