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
 *
 * Keras' keyword options of Dense are accepted as written there:
 * activation =, kernel_initializer =, bias_initializer =,
 * kernel_regularizer = and bias_regularizer = (a regularizer's penalty is
 * added to the model's loss, as Keras adds its layers' losses).
 */
#include "nnc.h"

#include <inttypes.h>
#include <math.h>
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

/* A weight's regularizer (Keras' l1, l2, l1_l2): the penalty
 * l1 sum |W| + l2 sum W^2, added to the loss. */
typedef struct Reg {
    double l1, l2;
} Reg;

/* A dense layer's options, as given or Keras' defaults. */
typedef struct DenseOpts {
    Act act;
    NnrtInit kernel, bias;
    Reg kernel_reg, bias_reg;
} DenseOpts;

/* The penalty of a weight w under r, added to the layers' penalty. */
static void dense_penalty(ModelEnv *f, NodeId w, Reg r, Loc loc) {
    Graph *g = f->e.g;
    const double factor[2] = {r.l1, r.l2};
    for (int i = 0; i < 2; i++) {
        if (factor[i] == 0)
            continue;
        NodeId v = i == 0 ? ir_unary(g, OP_ABS, w, loc) : ir_binary(g, OP_MUL, w, w, loc);
        NodeId p = ir_binary(g, OP_MUL, ir_sum(g, v, -1, loc), ir_const(g, factor[i], (Shape){0}, loc), loc);
        f->penalty = f->penalty < 0 ? p : ir_binary(g, OP_ADD, f->penalty, p, loc);
    }
}

/* z = h @ W + b, then act; W [in, units], b [units] (options checked). */
static NodeId dense_lower(ModelEnv *f, Loc loc, NodeId h, int64_t units, const DenseOpts *o) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    int64_t in = expr_shape(e, h).dim[0];
    f->ndense++;
    Slot w = {.kind = SLOT_PARAM, .name = arena_printf(e->arena, "dense%d.W", f->ndense), .shape = {2, {in, units}},
              .init = o->kernel, .fan_in = in, .fan_out = units};
    Slot b = {.kind = SLOT_PARAM, .name = arena_printf(e->arena, "dense%d.b", f->ndense), .shape = {1, {units}},
              .init = o->bias, .fan_in = in, .fan_out = units};
    NodeId W = ir_leaf(g, OP_PARAM, ir_add_slot(g, w), w.shape, loc);
    NodeId B = ir_leaf(g, OP_PARAM, ir_add_slot(g, b), b.shape, loc);
    NodeId out = act_lower(g, o->act, ir_binary(g, OP_ADD, ir_matmul(g, h, W, loc), B, loc), loc);
    dense_penalty(f, W, o->kernel_reg, loc);
    dense_penalty(f, B, o->bias_reg, loc);
    return out;
}

/* A regularizer: l1(v) or l2(v) (Keras' default v = 0.01), l1_l2(l1 = a,
 * l2 = b) (0 each unless given), positional or by key. False once reported. */
static bool reg_resolve(ExprEnv *e, const AstExpr *x, Reg *out) {
    static const char *const names[] = {"l1", "l2", "l1_l2"};
    static const char *const usage = "l1(v), l2(v) or l1_l2(l1 = a, l2 = b)";
    int k = -1;
    if (x->kind == EX_NAME || x->kind == EX_CALL)
        for (k = 2; k >= 0 && strcmp(x->name, names[k]) != 0; k--)
            ;
    if (k < 0) {
        diag_error(e->diag, x->loc, "expected a regularizer: %s", usage);
        return false;
    }
    *out = (Reg){k == 0 ? 0.01 : 0, k == 1 ? 0.01 : 0};
    double *positional[2] = {k == 1 ? &out->l2 : &out->l1, &out->l2};
    int nargs = x->kind == EX_CALL ? x->nargs : 0;
    if (nargs > (k == 2 ? 2 : 1)) {
        diag_error(e->diag, x->loc, "%s takes at most %s, found %d; expected %s", names[k],
                   k == 2 ? "2 arguments" : "1 argument", nargs, usage);
        return false;
    }
    for (int i = 0; i < nargs; i++) {
        const AstExpr *a = x->args[i];
        double *dst = positional[i];
        if (a->kind == EX_KEYWORD) {
            bool l1 = !strcmp(a->name, "l1"), l2 = !strcmp(a->name, "l2");
            if (!(l1 && k != 1) && !(l2 && k != 0)) {
                diag_error(e->diag, a->loc, "unknown argument '%s' for %s; expected %s",
                           diag_clip(e->arena, a->name, strlen(a->name)), names[k], usage);
                return false;
            }
            dst = l1 ? &out->l1 : &out->l2;
            a = a->args[0];
        }
        if (a->kind != EX_NUM || !isfinite(a->num.value)) { /* a number is never negative: -v is EX_NEG */
            diag_error(e->diag, a->loc, "a regularization factor is a number of at least 0");
            return false;
        }
        *dst = a->num.value;
    }
    return true;
}

/* A dense layer's keyword options over Keras' defaults: activation =
 * (unless the activation was given as an argument at act_loc: act_given),
 * kernel_initializer = (He-normal before relu, Glorot-uniform otherwise),
 * bias_initializer = (zeros), kernel_regularizer = and bias_regularizer =
 * (none). w, b: the weights' shapes (NULL: not known yet, a literal's shape
 * is not checked). o->act holds the activation given as an argument.
 * False once reported. */
static bool dense_options(ExprEnv *e, AstExpr *const *kwargs, int n, bool act_given, Loc act_loc, const Shape *w,
                          const Shape *b, DenseOpts *o) {
    static const char *const keys[] = {"activation", "kernel_initializer", "bias_initializer",
                                       "kernel_regularizer", "bias_regularizer", NULL};
    enum { ACTIVATION, KERNEL_INIT, BIAS_INIT, KERNEL_REG, BIAS_REG, NKEYS };
    const AstExpr *seen[NKEYS] = {NULL};
    o->bias = (NnrtInit){.kind = NNRT_INIT_ZEROS};
    o->kernel_reg = o->bias_reg = (Reg){0, 0};
    bool ok = true;
    for (int i = 0; i < n; i++) { /* each checked where it is, so the errors come left to right */
        const AstExpr *kw = kwargs[i];
        int k = 0;
        while (kw->kind == EX_KEYWORD && keys[k] && strcmp(kw->name, keys[k]) != 0)
            k++;
        if (kw->kind != EX_KEYWORD) {
            diag_error(e->diag, kw->loc, "expected an option of dense: activation, kernel_initializer, "
                       "bias_initializer, kernel_regularizer or bias_regularizer = ...");
        } else if (!keys[k]) {
            const char *guess = diag_quiet(e->diag) ? NULL : closest_name(kw->name, keys);
            const char *shown = diag_clip(e->arena, kw->name, strlen(kw->name));
            if (guess)
                diag_error(e->diag, kw->loc, "unknown option '%s' of dense; did you mean '%s'?", shown, guess);
            else
                diag_error(e->diag, kw->loc, "unknown option '%s' of dense; expected activation, kernel_initializer, "
                           "bias_initializer, kernel_regularizer or bias_regularizer", shown);
        } else if (seen[k] || (k == ACTIVATION && act_given)) {
            diag_error(e->diag, kw->loc, "duplicate option '%s'", keys[k]);
            diag_note(e->diag, seen[k] ? seen[k]->loc : act_loc, "'%s' was first given here", keys[k]);
        } else {
            seen[k] = kw;
            const AstExpr *v = kw->args[0];
            switch (k) {
            case ACTIVATION:
                if (v->kind == EX_NAME)
                    ok &= act_resolve(e, v->name, v->loc, &o->act);
                else
                    diag_error(e->diag, v->loc, "expected an activation: %s", act_expected(e->arena));
                ok &= v->kind == EX_NAME;
                break;
            case KERNEL_INIT: ok &= init_resolve(e, v, w, &o->kernel); break;
            case BIAS_INIT: ok &= init_resolve(e, v, b, &o->bias); break;
            case KERNEL_REG: ok &= reg_resolve(e, v, &o->kernel_reg); break;
            case BIAS_REG: ok &= reg_resolve(e, v, &o->bias_reg); break;
            }
            continue;
        }
        ok = false;
    }
    if (!seen[KERNEL_INIT]) /* after the activation, wherever it was given */
        o->kernel = (NnrtInit){.kind = o->act == ACT_RELU ? NNRT_INIT_HE_NORMAL : NNRT_INIT_GLOROT_UNIFORM};
    return ok;
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
    DenseOpts o = {.act = ACT_LINEAR};
    if (it->name)
        act_resolve(e, it->name, it->name_loc, &o.act); /* linear after an error: later layers are still checked */
    /* The initializers: a literal's shape is checked when the layer's is known. */
    bool shapes = ok && h >= 0;
    Shape w = {2, {shapes ? sh.dim[0] : 0, units}}, b = {1, {units}};
    /* a bad option is reported, and the layer's value still made for the next */
    dense_options(e, it->kwargs, it->nkwargs, it->name != NULL, it->name_loc, shapes ? &w : NULL,
                  shapes ? &b : NULL, &o);
    if (!ok || h < 0)
        return -1;
    h = dense_lower(f, it->loc, h, units, &o);
    layer_made(f, h, o.act);
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
    DenseOpts o = {.act = ACT_LINEAR};
    if (npos == 3 && (x->args[2]->kind != EX_NAME || !act_lookup(x->args[2]->name, &o.act))) {
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
    if (!dense_options(e, x->args + npos, x->nargs - npos, npos == 3, npos == 3 ? x->args[2]->loc : x->loc, &w, &b,
                       &o))
        return -1;
    return dense_lower(f, x->loc, h, units, &o);
}
