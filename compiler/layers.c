/* layers.c — the layers of the language and their activations.
 *
 * A layer is written as a line of a model (`dense 512, relu`, applied to the
 * value before it) or as a call in an expression (`dense(h, 512, relu)`).
 * Both parse their arguments here and share one checker of shapes and one
 * lowering, so a layer's diagnostics and its IR live in one place. The
 * sequential form is only notation: model.c lowers a model of layer lines as
 * it lowers any functional model.
 *
 *   dense N, a         [in] -> [N]:  a(h @ W + b),  W [in, N], b [N]
 *   flatten            [d0, d1, ...] -> [d0 d1 ...]  (row-major: channels last, as Keras)
 *   conv2d F, k, a     [H, W, C] -> [OH, OW, F]: a(conv(h, W) + b), W [kh, kw, C, F], b [F]
 *   conv2d(x, K)       the same with a declared kernel K, no bias
 *   maxpool k          [H, W, C] -> [OH, OW, C]: the largest of each k x k window
 *   avgpool k          ... their mean (over the elements inside the input)
 *   globalavgpool      [H, W, C] -> [C]: the mean over height and width
 *   dropout r          training: zero with probability r, the rest scaled by 1 / (1 - r)
 *   batchnorm          (h - mean) / sqrt(var + epsilon) * gamma + beta, per channel
 *
 * dense is a statement of its own (its grammar rule, and its arguments read
 * by its own code, predate the table); every other layer is a row of the
 * table at the end, which gives its arguments (Keras' names and defaults),
 * their kinds (read and checked alike for a line and a call), a checker of
 * the value it applies to, and its lowering.
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

/* ---------------------------------------------------------------- the layers' common parts */

/* A layer line made h, its last activation act: a loss of h words its
 * messages after the line ("crossentropy after 'relu'"). */
static void layer_made(ModelEnv *f, NodeId h, Act act) {
    f->layer_out = h;
    f->layer_act = act;
}

/* A weight of a layer: a parameter slot `name` (dense1.W) with its
 * initializer and Keras' fans. */
static NodeId layer_weight(ModelEnv *f, const char *name, Shape s, NnrtInit init, int64_t fan_in, int64_t fan_out,
                           Loc loc) {
    Graph *g = f->e.g;
    Slot w = {.kind = SLOT_PARAM, .name = name, .shape = s, .init = init, .fan_in = fan_in, .fan_out = fan_out};
    return ir_leaf(g, OP_PARAM, ir_add_slot(g, w), s, loc);
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
    NodeId W = layer_weight(f, arena_printf(e->arena, "dense%d.W", f->ndense), (Shape){2, {in, units}}, o->kernel,
                            in, units, loc);
    NodeId B = layer_weight(f, arena_printf(e->arena, "dense%d.b", f->ndense), (Shape){1, {units}}, o->bias, in,
                            units, loc);
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

/* dense(h, units[, act][, kernel_initializer = ..., bias_initializer = ...]),
 * in a model. */
static NodeId layer_dense_call(ExprEnv *e, const AstExpr *x) {
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

/* ---------------------------------------------------------------- the table of layers */

/* What an argument of a layer may be; each is checked where it is written. */
typedef enum {
    LA_FILTERS,  /* conv2d's: a count, or its kernel, a tensor [kh, kw, channels, filters] */
    LA_SIZE,     /* an integer from 1, or a pair [height, width] of them: a window, a stride */
    LA_ACT,      /* an activation's name */
    LA_PADDING,  /* valid or same */
    LA_RATE,     /* a number in [0, 1) */
    LA_FRACTION, /* a number in [0, 1] */
    LA_POSITIVE, /* a number above 0 */
    LA_BOOL,     /* true or false */
    LA_INIT,     /* an initializer; its literal's shape checked by the layer, which knows the weight's */
    LA_REG,      /* a regularizer: l1, l2, l1_l2 */
} LayerArgKind;

enum { LAYER_MAX_ARGS = 10 };

typedef struct LayerParam {
    const char *name;
    LayerArgKind kind;
    bool positional; /* may be given by position: these come first, in order */
    bool required;
    double def;      /* when not given: a SIZE's both sides (0: the layer decides), a number, a BOOL's 1 or 0 */
} LayerParam;

/* An argument's value, as given or its default. */
typedef struct LayerArg {
    const AstExpr *x; /* as written (the value of a key = value); NULL: the default */
    Loc loc;          /* where it is given (a key = value: the key) */
    int64_t size[2];  /* SIZE; FILTERS (a count: size[0]) */
    double num;       /* RATE, FRACTION, POSITIVE; BOOL and PADDING (same) as 1 or 0 */
    Act act;          /* ACT */
    NodeId kernel;    /* FILTERS given as a tensor; else -1 */
    Reg reg;          /* REG */
} LayerArg;

typedef struct Layer Layer;

/* One use of a layer, a line or a call, its arguments read. */
typedef struct LayerCall {
    const Layer *layer;
    bool line;
    Loc loc;  /* the line's word, the call's name */
    Loc at;   /* where a fault of the value it applies to is reported: the line, the call's first argument */
    int nth;  /* its number among the layers of its row, from 1: conv2d1, conv2d2, ... */
    LayerArg arg[LAYER_MAX_ARGS]; /* by the row's params */
} LayerCall;

struct Layer {
    const char *name;
    const char *usage;                 /* its call's arguments after the value: ", rate" */
    LayerParam params[LAYER_MAX_ARGS]; /* up to the first without a name */
    /* Checks h, a value of shape `in` per sample, against the arguments
     * (each checked on its own already); false once reported. NULL: any
     * value will do. */
    bool (*check)(ExprEnv *e, const LayerCall *c, NodeId h, const Shape *in);
    /* The layer's IR on h (checked); -1 once reported. */
    NodeId (*lower)(ModelEnv *f, const LayerCall *c, NodeId h);
    bool keeps_act; /* the activation before it still shows through it (flatten) */
};

/* How c is written: "dropout(x, rate)" for a call, "dropout rate" (the
 * call's arguments without the value and its comma) for a line. */
static const char *layer_usage(Arena *a, const LayerCall *c) {
    const Layer *l = c->layer;
    if (!c->line)
        return arena_printf(a, "%s(x%s)", l->name, l->usage);
    const char *comma = strstr(l->usage, ", ");
    if (!comma)
        return l->name;
    return arena_printf(a, "%s %.*s%s", l->name, (int)(comma - l->usage), l->usage, comma + 2);
}

/* An integer from 1 (to NNC_MAX_ELEMS) written at x? */
static bool layer_int(const AstExpr *x, int64_t *out) {
    if (x->kind != EX_NUM || !x->num.is_int || x->num.too_large || x->num.ivalue < 1 || x->num.ivalue > NNC_MAX_ELEMS)
        return false;
    *out = x->num.ivalue;
    return true;
}

/* A word among the two `names` written at x: its index, or -1 once
 * reported ("conv2d's padding must be valid or same, found 'full'"). */
static int layer_word(ExprEnv *e, const LayerCall *c, const LayerParam *p, const AstExpr *x,
                      const char *const *names) {
    if (x->kind == EX_NAME)
        for (int i = 0; names[i]; i++)
            if (!strcmp(x->name, names[i]))
                return i;
    const char *what = arena_printf(e->arena, "%s's %s must be %s or %s", c->layer->name, p->name, names[0], names[1]);
    if (x->kind != EX_NAME) {
        diag_error(e->diag, x->loc, "%s", what);
        return -1;
    }
    const char *guess = diag_quiet(e->diag) ? NULL : closest_name(x->name, names);
    diag_error(e->diag, x->loc, "%s, found '%s'%s%s%s", what, diag_clip(e->arena, x->name, strlen(x->name)),
               guess ? "; did you mean '" : "", guess ? guess : "", guess ? "'?" : "");
    return -1;
}

/* The value of argument p written at x, checked, into v; false once reported. */
static bool layer_arg(ExprEnv *e, const LayerCall *c, const LayerParam *p, const AstExpr *x, LayerArg *v) {
    static const char *const paddings[] = {"valid", "same", NULL}, *const bools[] = {"true", "false", NULL};
    const char *name = c->layer->name;
    switch (p->kind) {
    case LA_FILTERS:
        if (x->kind != EX_NUM && !(x->kind == EX_NEG && x->args[0]->kind == EX_NUM)) /* conv2d(x, K): the notes' */
            return (v->kernel = expr_lower(e, x)) >= 0;
        if (layer_int(x, &v->size[0]))
            return true;
        diag_error(e->diag, x->loc, "%s's filters must be an integer from 1 to %" PRId64 ", or a kernel tensor "
                   "[height, width, channels, filters]", name, NNC_MAX_ELEMS);
        return false;
    case LA_SIZE:
        if (layer_int(x, &v->size[0])) {
            v->size[1] = v->size[0];
            return true;
        }
        if (x->kind == EX_LIST && x->nargs == 2 && layer_int(x->args[0], &v->size[0]) &&
            layer_int(x->args[1], &v->size[1]))
            return true;
        diag_error(e->diag, x->loc, "%s's %s must be an integer from 1, or a pair [height, width] of them", name,
                   p->name);
        return false;
    case LA_ACT:
        if (x->kind == EX_NAME)
            return act_resolve(e, x->name, x->loc, &v->act);
        diag_error(e->diag, x->loc, "expected an activation: %s", act_expected(e->arena));
        return false;
    case LA_PADDING:
    case LA_BOOL: {
        int k = layer_word(e, c, p, x, p->kind == LA_PADDING ? paddings : bools);
        v->num = p->kind == LA_PADDING ? k == 1 : k == 0; /* same; true */
        return k >= 0;
    }
    case LA_RATE:
    case LA_FRACTION:
    case LA_POSITIVE: {
        bool number = x->kind == EX_NUM || (x->kind == EX_NEG && x->args[0]->kind == EX_NUM);
        double d = !number ? 0 : x->kind == EX_NUM ? x->num.value : -x->args[0]->num.value;
        bool in = number && isfinite(d) &&
                  (p->kind == LA_RATE ? d >= 0 && d < 1 : p->kind == LA_FRACTION ? d >= 0 && d <= 1 : d > 0);
        const char *range = p->kind == LA_RATE ? "in [0, 1)" : p->kind == LA_FRACTION ? "in [0, 1]" : "above 0";
        if (in)
            v->num = d;
        else if (number)
            diag_error(e->diag, x->loc, "%s's %s must be a number %s, found %g", name, p->name, range, d);
        else
            diag_error(e->diag, x->loc, "%s's %s must be a number %s", name, p->name, range);
        return in;
    }
    case LA_INIT: { /* its name and arguments now, its shape where the layer makes the weight */
        NnrtInit init;
        return init_resolve(e, x, NULL, &init);
    }
    case LA_REG:
        return reg_resolve(e, x, &v->reg);
    }
    unreachable();
}

/* Reads the arguments args[0..n) of c's layer (a line's, or a call's after
 * its value) into c->arg, over the defaults: positional ones in order, the
 * others as key = value. Every one is checked; false once reported. */
static bool layer_read(ExprEnv *e, LayerCall *c, AstExpr *const *args, int n) {
    const Layer *l = c->layer;
    const char *keys[LAYER_MAX_ARGS + 1];
    int nparams = 0, npositional = 0, given = 0;
    for (; nparams < LAYER_MAX_ARGS && l->params[nparams].name; nparams++) {
        const LayerParam *p = &l->params[nparams];
        keys[nparams] = p->name;
        npositional += p->positional;
        c->arg[nparams] = (LayerArg){.size = {(int64_t)p->def, (int64_t)p->def}, .num = p->def, .kernel = -1};
    }
    keys[nparams] = NULL;
    for (int i = 0; i < n; i++)
        given += args[i]->kind != EX_KEYWORD;
    if (given > npositional) {
        int off = c->line ? 0 : 1, most = npositional + off; /* a call counts its value */
        const char *options = nparams > npositional ? " besides its key = value options" : "";
        if (most == 0)
            diag_error(e->diag, c->loc, "%s takes no arguments%s, found %d; expected %s", l->name, options, given,
                       layer_usage(e->arena, c));
        else
            diag_error(e->diag, c->loc, "%s takes at most %d argument%s%s, found %d; expected %s", l->name, most,
                       most == 1 ? "" : "s", options, given + off, layer_usage(e->arena, c));
        return false;
    }
    bool ok = true;
    int pos = 0;
    for (int i = 0; i < n; i++) {
        const AstExpr *a = args[i];
        int k = a->kind == EX_KEYWORD ? 0 : pos++;
        if (a->kind == EX_KEYWORD) {
            while (k < nparams && strcmp(keys[k], a->name) != 0)
                k++;
            if (k == nparams) {
                const char *guess = diag_quiet(e->diag) ? NULL : closest_name(a->name, keys);
                const char *shown = diag_clip(e->arena, a->name, strlen(a->name));
                if (guess)
                    diag_error(e->diag, a->loc, "unknown option '%s' of %s; did you mean '%s'?", shown, l->name, guess);
                else
                    diag_error(e->diag, a->loc, "unknown option '%s' of %s; expected %s", shown, l->name,
                               layer_usage(e->arena, c));
                ok = false;
                continue;
            }
        }
        const AstExpr *v = a->kind == EX_KEYWORD ? a->args[0] : a;
        if (c->arg[k].x) {
            diag_error(e->diag, a->loc, "duplicate option '%s'", keys[k]);
            diag_note(e->diag, c->arg[k].loc, "'%s' was first given here", keys[k]);
            ok = false;
            continue;
        }
        c->arg[k].x = v;
        c->arg[k].loc = a->loc;
        ok &= layer_arg(e, c, &l->params[k], v, &c->arg[k]);
        if (c->arg[k].kernel >= 0 && a->kind != EX_KEYWORD)
            pos++; /* a kernel tensor has its size: conv2d(x, K, relu) */
    }
    for (int k = 0; k < nparams && ok; k++)
        if (l->params[k].required && !c->arg[k].x) {
            diag_error(e->diag, c->loc, "%s needs its %s: expected %s", l->name, keys[k], layer_usage(e->arena, c));
            ok = false;
        }
    return ok;
}

/* The activation c ends with: its activation argument's, or linear. */
static Act layer_act(const LayerCall *c) {
    for (int k = 0; k < LAYER_MAX_ARGS && c->layer->params[k].name; k++)
        if (c->layer->params[k].kind == LA_ACT)
            return c->arg[k].act;
    return ACT_LINEAR;
}

/* A weight of c called "NAMEn.what" (conv2d1.W), initialized by the
 * argument at c->arg[k] (or `def`), Keras' fans; -1 once an initializer
 * literal of another shape is reported. */
static NodeId layer_init_weight(ModelEnv *f, const LayerCall *c, const char *what, Shape s, int k, NnrtInit def) {
    ExprEnv *e = &f->e;
    NnrtInit init = def;
    if (c->arg[k].x && !init_resolve(e, c->arg[k].x, &s, &init))
        return -1;
    int64_t fan_in, fan_out;
    init_fans(&s, &fan_in, &fan_out);
    return layer_weight(f, arena_printf(e->arena, "%s%d.%s", c->layer->name, c->nth, what), s, init, fan_in, fan_out,
                        c->loc);
}

/* Is h a batch of samples (of rank `rank`, 3: an image [height, width,
 * channels]; 0: any)? Reported at c->at if not. */
static bool layer_takes(ExprEnv *e, const LayerCall *c, NodeId h, const Shape *in, int rank) {
    const char *name = c->layer->name;
    char b[96];
    if (!expr_batched(e, h)) {
        diag_error(e->diag, c->at, "%s applies to a value computed from the input; %s is not", name,
                   c->line ? "the one before it" : "this one");
        return false;
    }
    if (rank == 3 && in->rank != 3) {
        diag_error(e->diag, c->at, "%s takes an image [height, width, channels] per sample: expected rank 3, found %s",
                   name, shape_str(in, b, sizeof b));
        const Model *m = ((ModelEnv *)e)->m;
        if (in->rank == 2 && shape_eq(in, &m->input)) /* the input itself, most likely */
            diag_note(e->diag, m->input_loc, "an image of one channel is [%" PRId64 ", %" PRId64 ", 1]: declare "
                      "the input as '%s[%" PRId64 ", %" PRId64 ", 1]'", in->dim[0], in->dim[1], m->input_name,
                      in->dim[0], in->dim[1]);
        else if (in->rank == 2)
            diag_note(e->diag, c->at, "an image of one channel is [%" PRId64 ", %" PRId64 ", 1]: reshape it to that",
                      in->dim[0], in->dim[1]);
        return false;
    }
    if (rank == 0 && in->rank == 0) {
        diag_error(e->diag, c->at, "%s needs at least one axis per sample: found a scalar", name);
        return false;
    }
    return true;
}

/* Is the product of the n sizes d (each at most NNC_MAX_ELEMS) at most NNC_MAX_ELEMS? */
static bool layer_fits(const int64_t *d, int n) {
    int64_t p = 1;
    for (int i = 0; i < n; i++)
        if (__builtin_mul_overflow(p, d[i], &p) || p > NNC_MAX_ELEMS)
            return false;
    return true;
}

/* Does a window [kh, kw] moved by `stride` over in's height and width
 * leave anything? Reported at c->loc if not (only valid padding can fail). */
static bool layer_window(ExprEnv *e, const LayerCall *c, const char *what, const Shape *in, int64_t kh, int64_t kw,
                         const int64_t *stride, bool same) {
    int64_t before;
    if (window_out(in->dim[0], kh, stride[0], same, &before) >= 1 &&
        window_out(in->dim[1], kw, stride[1], same, &before) >= 1)
        return true;
    char b[96];
    diag_error(e->diag, c->loc, "%s's %s [%" PRId64 ", %" PRId64 "] is larger than its input %s: with valid padding "
               "nothing is left", c->layer->name, what, kh, kw, shape_str(in, b, sizeof b));
    diag_note(e->diag, c->loc, "padding = same pads the input to keep ceil(size / stride) of each side");
    return false;
}

/* ---------------------------------------------------------------- flatten */

/* h to a vector per sample (a value not computed from the input: to one vector). */
static NodeId flatten_lower(ModelEnv *f, const LayerCall *c, NodeId h) {
    ExprEnv *e = &f->e;
    Shape ps = expr_shape(e, h), s = {1, {shape_elems(&ps)}};
    return ir_reshape(e->g, h, expr_batched(e, h) ? (Shape){2, {e->batch, s.dim[0]}} : s, c->loc);
}

/* ---------------------------------------------------------------- conv2d */

enum { CONV_FILTERS, CONV_KERNEL_SIZE, CONV_ACTIVATION, CONV_STRIDE, CONV_PADDING, CONV_USE_BIAS, CONV_KERNEL_INIT,
       CONV_BIAS_INIT, CONV_KERNEL_REG, CONV_BIAS_REG };

/* The kernel's shape [kh, kw, C, F] of c on an input of C channels. */
static Shape conv_kernel_shape(ExprEnv *e, const LayerCall *c, const Shape *in) {
    const LayerArg *a = c->arg;
    if (a[CONV_FILTERS].kernel >= 0)
        return expr_shape(e, a[CONV_FILTERS].kernel);
    return (Shape){4, {a[CONV_KERNEL_SIZE].size[0], a[CONV_KERNEL_SIZE].size[1], in->dim[2], a[CONV_FILTERS].size[0]}};
}

static bool conv_check(ExprEnv *e, const LayerCall *c, NodeId h, const Shape *in) {
    const LayerArg *a = c->arg;
    char b[96], kb[96];
    if (!layer_takes(e, c, h, in, 3))
        return false;
    NodeId k = a[CONV_FILTERS].kernel;
    Shape ks = conv_kernel_shape(e, c, in);
    if (k >= 0) { /* the notes' form: the kernel is a declared parameter, and nothing else is made */
        Loc kl = a[CONV_FILTERS].x->loc;
        if (expr_batched(e, k) || ks.rank != 4) {
            diag_error(e->diag, kl, "conv2d's kernel is a tensor [height, width, channels, filters]: expected rank 4, "
                       "found %s%s", shape_str(&ks, b, sizeof b), expr_batched(e, k) ? " per sample" : "");
            return false;
        }
        if (ks.dim[2] != in->dim[2]) {
            Shape want = ks;
            want.dim[2] = in->dim[2];
            diag_error(e->diag, kl, "conv2d's kernel %s does not match its input's %" PRId64 " channel%s: expected %s",
                       shape_str(&ks, b, sizeof b), in->dim[2], in->dim[2] == 1 ? "" : "s",
                       shape_str(&want, kb, sizeof kb));
            return false;
        }
        static const int own[] = {CONV_KERNEL_SIZE, CONV_USE_BIAS, CONV_KERNEL_INIT, CONV_BIAS_INIT,
                                  CONV_KERNEL_REG, CONV_BIAS_REG};
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
            if (a[own[i]].x) {
                diag_error(e->diag, a[own[i]].loc, "conv2d of a kernel tensor takes its size from the kernel "
                           "and has no bias: %s does not apply", c->layer->params[own[i]].name);
                return false;
            }
    } else if (!a[CONV_KERNEL_SIZE].x) {
        diag_error(e->diag, c->loc, "conv2d needs its kernel_size: expected %s", layer_usage(e->arena, c));
        return false;
    } else if (!layer_fits(ks.dim, 4) || !layer_fits((int64_t[]){in->dim[0], in->dim[1], ks.dim[3]}, 3)) {
        /* the output is at most the input's height and width */
        diag_error(e->diag, a[CONV_FILTERS].x->loc, "conv2d of %" PRId64 " filters is too large: its kernel %s or its "
                   "output would have more than %" PRId64 " elements", ks.dim[3], shape_str(&ks, b, sizeof b),
                   NNC_MAX_ELEMS);
        return false;
    }
    return layer_window(e, c, "kernel", in, ks.dim[0], ks.dim[1], a[CONV_STRIDE].size, a[CONV_PADDING].num != 0);
}

/* act(conv(h, W) + b): W [kh, kw, C, F] (Glorot-uniform unless told), b [F] (zeros). */
static NodeId conv_lower(ModelEnv *f, const LayerCall *c, NodeId h) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    const LayerArg *a = c->arg;
    Shape in = expr_shape(e, h), ks = conv_kernel_shape(e, c, &in);
    NodeId k = a[CONV_FILTERS].kernel, bias = -1;
    if (k < 0) {
        k = layer_init_weight(f, c, "W", ks, CONV_KERNEL_INIT, (NnrtInit){.kind = NNRT_INIT_GLOROT_UNIFORM});
        if (a[CONV_USE_BIAS].num != 0)
            bias = layer_init_weight(f, c, "b", (Shape){1, {ks.dim[3]}}, CONV_BIAS_INIT,
                                     (NnrtInit){.kind = NNRT_INIT_ZEROS});
        if (k < 0 || (a[CONV_USE_BIAS].num != 0 && bias < 0))
            return -1;
        dense_penalty(f, k, a[CONV_KERNEL_REG].reg, c->loc);
        if (bias >= 0)
            dense_penalty(f, bias, a[CONV_BIAS_REG].reg, c->loc);
    }
    const int64_t *stride = a[CONV_STRIDE].size;
    NodeId z = ir_conv2d(g, h, k, stride[0], stride[1], a[CONV_PADDING].num != 0, c->loc);
    if (bias >= 0) /* [F] broadcast over [n, OH, OW, F] */
        z = ir_binary(g, OP_ADD, z, bias, c->loc);
    return act_lower(g, a[CONV_ACTIVATION].act, z, c->loc);
}

/* ---------------------------------------------------------------- pools */

enum { POOL_SIZE, POOL_STRIDE, POOL_PADDING };

/* The stride of a pool: as given, else its window's (Keras'). */
static const int64_t *pool_stride(const LayerCall *c) {
    return c->arg[POOL_STRIDE].x ? c->arg[POOL_STRIDE].size : c->arg[POOL_SIZE].size;
}

static bool pool_check(ExprEnv *e, const LayerCall *c, NodeId h, const Shape *in) {
    const int64_t *k = c->arg[POOL_SIZE].size;
    return layer_takes(e, c, h, in, 3) &&
           layer_window(e, c, "window", in, k[0], k[1], pool_stride(c), c->arg[POOL_PADDING].num != 0);
}

static NodeId pool_lower(ModelEnv *f, const LayerCall *c, NodeId h, Op op) {
    const int64_t *k = c->arg[POOL_SIZE].size, *s = pool_stride(c);
    return ir_pool(f->e.g, op, h, k[0], k[1], s[0], s[1], c->arg[POOL_PADDING].num != 0, c->loc);
}

static NodeId maxpool_lower(ModelEnv *f, const LayerCall *c, NodeId h) { return pool_lower(f, c, h, OP_MAXPOOL); }
static NodeId avgpool_lower(ModelEnv *f, const LayerCall *c, NodeId h) { return pool_lower(f, c, h, OP_AVGPOOL); }

static bool image_check(ExprEnv *e, const LayerCall *c, NodeId h, const Shape *in) {
    return layer_takes(e, c, h, in, 3);
}

/* The mean over height and width: sum over axes 1 and 2 of [n, H, W, C],
 * times 1 / (H W), to [n, C]. */
static NodeId globalavgpool_lower(ModelEnv *f, const LayerCall *c, NodeId h) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    Shape in = expr_shape(e, h);
    NodeId sum = ir_sum(g, ir_sum(g, h, 1, c->loc), 2, c->loc);
    NodeId mean = ir_binary(g, OP_MUL, sum, ir_const(g, 1.0 / (double)(in.dim[0] * in.dim[1]), (Shape){0}, c->loc),
                            c->loc);
    return ir_reshape(g, mean, (Shape){2, {e->batch, in.dim[2]}}, c->loc);
}

/* ---------------------------------------------------------------- dropout, batchnorm */

enum { DROPOUT_RATE };
enum { BATCHNORM_MOMENTUM, BATCHNORM_EPSILON, BATCHNORM_CENTER, BATCHNORM_SCALE };

/* A state slot of a layer ("batchnorm1.moving_mean"), init at the start,
 * its leaf in *leaf. */
static int layer_state(Graph *g, const char *name, Shape s, NnrtInit init, bool model_state, Loc loc, NodeId *leaf) {
    int slot = ir_add_slot(g, (Slot){.kind = SLOT_STATE, .name = name, .shape = s, .init = init,
                                     .model_state = model_state});
    *leaf = ir_leaf(g, OP_STATE, slot, s, loc);
    return slot;
}

static bool batch_check(ExprEnv *e, const LayerCall *c, NodeId h, const Shape *in) {
    return layer_takes(e, c, h, in, 0);
}

/* Dropout layer i's key: the i-th number of a stream of the seed's own
 * (apart from the initializers' and the shuffling's), so a run's masks
 * follow from --seed and differ between layers. */
static uint32_t dropout_key(uint64_t seed, int layer) {
    NnrtRng r;
    nnrt_rng_seed(&r, seed ^ 0xd1b54a32d192ed03ull);
    uint64_t k = 0;
    for (int i = 0; i < layer; i++)
        k = nnrt_rng_next(&r);
    return (uint32_t)(k >> 32);
}

/* y = h keep / (1 - rate), keep = (u >= rate), u uniform in [0, 1) from
 * (the layer's key, the step count, the element): the step count is state
 * ("dropout.step"), one for the model, advanced by each training step, so
 * each step draws new masks and --resume continues their sequence. */
static NodeId dropout_lower(ModelEnv *f, const LayerCall *c, NodeId h) {
    Graph *g = f->e.g;
    Shape scalar = {0};
    Loc loc = c->loc;
    double rate = c->arg[DROPOUT_RATE].num;
    if (rate == 0)
        return h;
    if (f->dropout_step < 0) { /* in both modes: the steps share their slots */
        int slot = layer_state(g, "dropout.step", scalar, (NnrtInit){.kind = NNRT_INIT_ZEROS}, false, loc,
                               &f->dropout_step);
        if (f->mode == MODE_TRAIN)
            ir_add_output(g, ir_binary(g, OP_ADD, f->dropout_step, ir_const(g, 1, scalar, loc), loc), slot);
    }
    if (f->mode == MODE_EVAL)
        return h;
    NodeId u = ir_random(g, f->dropout_step, dropout_key(f->m->seed, c->nth), h, loc);
    NodeId drop = ir_unary(g, OP_STEP, ir_binary(g, OP_SUB, ir_const(g, rate, scalar, loc), u, loc), loc);
    NodeId keep = ir_binary(g, OP_SUB, ir_const(g, 1, scalar, loc), drop, loc);
    return ir_binary(g, OP_MUL, h, ir_binary(g, OP_MUL, keep, ir_const(g, 1 / (1 - rate), scalar, loc), loc), loc);
}

/* Keras 3's BatchNormalization over every axis but the last (C channels or
 * features): y = (h - mean) gamma / sqrt(var + epsilon) + beta. Training:
 * mean and the biased variance of the batch (its samples, and an image's
 * positions), and the moving statistics updated as
 *     moving' = moving momentum + batch statistic (1 - momentum);
 * evaluation: the moving statistics. gamma (ones) and beta (zeros) are
 * parameters when scale and center say so; the moving mean (zeros) and
 * variance (ones) are the model's state. */
static NodeId batchnorm_lower(ModelEnv *f, const LayerCall *c, NodeId h) {
    ExprEnv *e = &f->e;
    Graph *g = e->g;
    Loc loc = c->loc;
    Shape xs = g->nodes[h].shape, scalar = {0};
    int64_t ch = xs.dim[xs.rank - 1];
    Shape cs = {1, {ch}};
    const char *name = arena_printf(e->arena, "batchnorm%d", c->nth);
    double momentum = c->arg[BATCHNORM_MOMENTUM].num, epsilon = c->arg[BATCHNORM_EPSILON].num;
#define C(v) ir_const(g, v, scalar, loc)
#define B(op, a, b) ir_binary(g, op, a, b, loc)
    NodeId gamma = C(1), beta = -1, mean, var;
    if (c->arg[BATCHNORM_SCALE].num != 0)
        gamma = layer_weight(f, arena_printf(e->arena, "%s.gamma", name), cs,
                             (NnrtInit){.kind = NNRT_INIT_CONSTANT, .a = 1}, ch, ch, loc);
    if (c->arg[BATCHNORM_CENTER].num != 0)
        beta = layer_weight(f, arena_printf(e->arena, "%s.beta", name), cs, (NnrtInit){.kind = NNRT_INIT_ZEROS}, ch,
                            ch, loc);
    NodeId moving_mean, moving_var;
    int mean_slot = layer_state(g, arena_printf(e->arena, "%s.moving_mean", name), cs,
                                (NnrtInit){.kind = NNRT_INIT_ZEROS}, true, loc, &moving_mean);
    int var_slot = layer_state(g, arena_printf(e->arena, "%s.moving_variance", name), cs,
                               (NnrtInit){.kind = NNRT_INIT_CONSTANT, .a = 1}, true, loc, &moving_var);
    if (f->mode == MODE_TRAIN) {
        /* 1 / the elements per channel: the batch's n (ir_const_batch, so a
         * partial batch divides by its own) times an image's positions */
        NodeId inv = ir_const_batch(g, (double)ch / (double)shape_elems(&xs), -1, loc);
        NodeId sum = h;
        for (int a = 0; a < xs.rank - 1; a++)
            sum = ir_sum(g, sum, a, loc);
        mean = B(OP_MUL, sum, inv);
        NodeId d = B(OP_SUB, h, mean), sq = B(OP_MUL, d, d);
        for (int a = 0; a < xs.rank - 1; a++)
            sq = ir_sum(g, sq, a, loc);
        var = B(OP_MUL, sq, inv);
        NodeId keep = C(momentum), take = C(1 - momentum), batch_mean = mean, batch_var = var;
        if (g->global_samples) { /* data-parallel: each rank normalizes by its own slice's statistics,
                                  * as PyTorch's DDP without SyncBatchNorm does, but the moving ones
                                  * take the global batch's (the ranks' shares of the mean, and of
                                  * the variance about it: var + (mean - global mean)^2), so that
                                  * they are the same on every rank */
            batch_mean = ir_allreduce(g, mean, loc);
            NodeId off = B(OP_SUB, mean, batch_mean);
            batch_var = ir_allreduce(g, B(OP_ADD, var, B(OP_MUL, off, off)), loc);
        }
        ir_add_output(g, B(OP_ADD, B(OP_MUL, moving_mean, keep), B(OP_MUL, ir_reshape(g, batch_mean, cs, loc), take)),
                      mean_slot);
        ir_add_output(g, B(OP_ADD, B(OP_MUL, moving_var, keep), B(OP_MUL, ir_reshape(g, batch_var, cs, loc), take)),
                      var_slot);
    } else {
        mean = moving_mean;
        var = moving_var;
    }
    NodeId y = B(OP_MUL, B(OP_SUB, h, mean), B(OP_DIV, gamma, ir_unary(g, OP_SQRT, B(OP_ADD, var, C(epsilon)), loc)));
    return beta < 0 ? y : B(OP_ADD, y, beta);
#undef C
#undef B
}

/* ---------------------------------------------------------------- the table */

#define POOL_PARAMS                                                                                                \
    {{"pool_size", LA_SIZE, true, false, 2}, {"stride", LA_SIZE, false, false, 0},                                 \
     {"padding", LA_PADDING, false, false, 0}}

/* Keras' layers, arguments and defaults (Conv2D, MaxPooling2D, ...), in the
 * order messages list them. */
static const Layer layers[] = {
    {"flatten", "", .lower = flatten_lower, .keeps_act = true},
    {"conv2d", ", filters, kernel_size[, activation][, stride = 1, padding = valid|same, use_bias = true, ...]",
     {{"filters", LA_FILTERS, true, true, 0}, {"kernel_size", LA_SIZE, true, false, 0},
      {"activation", LA_ACT, true, false, 0}, {"stride", LA_SIZE, false, false, 1},
      {"padding", LA_PADDING, false, false, 0}, {"use_bias", LA_BOOL, false, false, 1},
      {"kernel_initializer", LA_INIT, false, false, 0}, {"bias_initializer", LA_INIT, false, false, 0},
      {"kernel_regularizer", LA_REG, false, false, 0}, {"bias_regularizer", LA_REG, false, false, 0}},
     conv_check, conv_lower, false},
    {"maxpool", "[, pool_size][, stride = pool_size, padding = valid|same]", POOL_PARAMS, pool_check, maxpool_lower,
     false},
    {"avgpool", "[, pool_size][, stride = pool_size, padding = valid|same]", POOL_PARAMS, pool_check, avgpool_lower,
     false},
    {"globalavgpool", "", .check = image_check, .lower = globalavgpool_lower},
    {"dropout", ", rate", {{"rate", LA_RATE, true, true, 0}}, batch_check, dropout_lower, false},
    {"batchnorm", "[, momentum = 0.99, epsilon = 0.001, center = true, scale = true]",
     {{"momentum", LA_FRACTION, false, false, 0.99}, {"epsilon", LA_POSITIVE, false, false, 0.001},
      {"center", LA_BOOL, false, false, 1}, {"scale", LA_BOOL, false, false, 1}},
     batch_check, batchnorm_lower, false},
};
enum { NLAYERS = sizeof layers / sizeof layers[0] };
_Static_assert(NLAYERS <= sizeof ((ModelEnv *)0)->nlayer / sizeof(int), "ModelEnv.nlayer has a count per row");

static const Layer *layer_find(const char *name) {
    for (int i = 0; i < NLAYERS; i++)
        if (!strcmp(layers[i].name, name))
            return &layers[i];
    return NULL;
}

bool layer_exists(const char *name) { return !strcmp(name, "dense") || layer_find(name); }

const char *const *layer_names(void) {
    static const char *names[NLAYERS + 1];
    for (int i = 0; i < NLAYERS; i++)
        names[i] = layers[i].name;
    return names;
}

/* c on h, its arguments read: h checked, then lowered. */
static NodeId layer_apply(ModelEnv *f, LayerCall *c, NodeId h) {
    Shape in = expr_shape(&f->e, h);
    if (c->layer->check && !c->layer->check(&f->e, c, h, &in))
        return -1;
    c->nth = ++f->nlayer[c->layer - layers];
    return c->layer->lower(f, c, h);
}

NodeId layer_line(ModelEnv *f, const AstItem *it, NodeId h) {
    LayerCall c = {.layer = layer_find(it->name), .line = true, .loc = it->loc, .at = it->loc};
    if (!c.layer) /* the parser reported it */
        die("layer_line: unknown layer '%s'", it->name);
    if (!layer_read(&f->e, &c, it->kwargs, it->nkwargs) || h < 0)
        return -1;
    Act act = c.layer->keeps_act ? (h == f->layer_out ? f->layer_act : ACT_LINEAR) : layer_act(&c);
    if ((h = layer_apply(f, &c, h)) >= 0)
        layer_made(f, h, act);
    return h;
}

NodeId layer_call(ExprEnv *e, const AstExpr *x) {
    if (!strcmp(x->name, "dense"))
        return layer_dense_call(e, x);
    LayerCall c = {.layer = layer_find(x->name), .loc = x->loc};
    if (!c.layer) /* expr.c calls only layers */
        die("layer_call: unknown layer '%s'", x->name);
    if (x->nargs == 0 || x->args[0]->kind == EX_KEYWORD) {
        diag_error(e->diag, x->loc, "%s applies to a value: expected %s", c.layer->name, layer_usage(e->arena, &c));
        return -1;
    }
    c.at = x->args[0]->loc;
    NodeId h = expr_lower(e, x->args[0]);
    bool ok = layer_read(e, &c, x->args + 1, x->nargs - 1);
    return ok && h >= 0 ? layer_apply((ModelEnv *)e, &c, h) : -1;
}
