/* expr.c — tensor expressions to IR, with their shapes checked.
 *
 * One recursive walk over the AST: each operator and function becomes a few
 * IR nodes through the simplifying constructors, so an expression is
 * differentiated, printed and compiled like everything else. The IR's
 * constructors treat a shape error as an internal bug (die), so every shape
 * is checked here first and a user's mistake becomes a diagnostic at the
 * operator or call that cannot be applied, with what was expected and what
 * was found. After an error the walk goes on with the other operands (a
 * failed operand is -1 and its users stay quiet), so one bad line reports all
 * of its independent mistakes once each.
 *
 * Semantics are NumPy's: elementwise operators broadcast; `@` takes vectors
 * and matrices (a vector on the left is a row, on the right a column, and
 * that axis is dropped from the result); reductions drop the reduced axis.
 */
#include "nnc.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

/* Names are looked up by hash: a file or a REPL session may define tens of
 * thousands, and each statement looks some up. */
static size_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32));
}

/* The index slot of `name`: where it is, or the empty one where it goes. */
static size_t name_slot(const ExprEnv *e, const char *name) {
    size_t mask = (size_t)e->index_cap - 1, h = name_hash(name) & mask;
    while (e->index[h] && strcmp(e->names[e->index[h] - 1].name, name) != 0)
        h = (h + 1) & mask;
    return h;
}

const ExprName *expr_lookup(const ExprEnv *e, const char *name) {
    if (!e->nnames)
        return NULL;
    int32_t at = e->index[name_slot(e, name)];
    return at ? &e->names[at - 1] : NULL;
}

bool expr_bind(ExprEnv *e, const char *name, Loc loc, NodeId node) {
    ExprName *old = (ExprName *)expr_lookup(e, name);
    if (old && e->redefine) {
        *old = (ExprName){name, loc, node};
        return true;
    }
    if (old) {
        const char *shown = diag_clip(e->arena, name, strlen(name));
        diag_error(e->diag, loc, "'%s' is already defined", shown);
        diag_note(e->diag, old->loc, "'%s' was first defined here", shown);
        return false;
    }
    e->names = arena_grow(e->arena, e->names, e->nnames, &e->cap, sizeof *e->names, 16);
    e->names[e->nnames++] = (ExprName){name, loc, node};
    if (2 * e->nnames > e->index_cap) { /* at most half full: rebuilt at twice the size */
        e->index_cap = 4 * e->cap;
        e->index = arena_array(e->arena, (size_t)e->index_cap, sizeof *e->index);
        for (int i = 0; i < e->nnames; i++)
            e->index[name_slot(e, e->names[i].name)] = i + 1;
    } else {
        e->index[name_slot(e, name)] = e->nnames;
    }
    return true;
}

/* ---------------------------------------------------------------- helpers */

static const char *shape_text(ExprEnv *e, const Shape *s) {
    char buf[128];
    shape_str(s, buf, sizeof buf);
    return arena_strndup(e->arena, buf, strlen(buf));
}

bool expr_batched(ExprEnv *e, NodeId n) {
    if (e->batch == 0)
        return false;
    if (n >= e->batched_cap) {
        int cap = e->g->nnodes > 2 * e->batched_cap ? e->g->nnodes : 2 * e->batched_cap;
        signed char *v = arena_array(e->arena, (size_t)cap, 1);
        if (e->batched_cap)
            memcpy(v, e->batched, (size_t)e->batched_cap);
        e->batched = v;
        e->batched_cap = cap;
    }
    if (!e->batched[n]) {
        const IrNode *x = &e->g->nodes[n];
        bool b = x->op == OP_INPUT || x->op == OP_LABEL;
        for (int k = 0; k < op_info[x->op].arity && !b; k++)
            b = expr_batched(e, x->in[k]);
        e->batched[n] = b ? 2 : 1;
    }
    return e->batched[n] == 2;
}

Shape expr_shape(ExprEnv *e, NodeId n) {
    Shape s = e->g->nodes[n].shape;
    if (expr_batched(e, n) && s.rank > 0) { /* a scalar computed from a batch (a loss) is one per batch */
        for (int i = 1; i < s.rank; i++)
            s.dim[i - 1] = s.dim[i];
        s.rank--;
    }
    return s;
}

/* The per-sample shape of n, in the arena (for the many callers that keep a pointer). */
static const Shape *shape_of(ExprEnv *e, NodeId n) {
    Shape *s = arena_alloc(e->arena, sizeof *s);
    *s = expr_shape(e, n);
    return s;
}

/* A batched value with `rank` axes per sample: the missing ones in front
 * (after the batch axis) as size 1, so it broadcasts per sample. */
static NodeId per_sample_rank(ExprEnv *e, NodeId n, int rank, Loc loc) {
    Shape s = expr_shape(e, n);
    if (!expr_batched(e, n) || s.rank >= rank)
        return n;
    Shape r = {rank + 1, {e->batch}};
    for (int i = 0; i < rank; i++)
        r.dim[i + 1] = i < rank - s.rank ? 1 : s.dim[i - (rank - s.rank)];
    return ir_reshape(e->g, n, r, loc);
}

/* The largest rank a sample may have: the batch axis takes one. */
static bool rank_fits(ExprEnv *e, const AstExpr *x, const Shape *s) {
    if (e->batch == 0 || s->rank < NNC_MAX_RANK)
        return true;
    diag_error(e->diag, x->loc, "a value of a model has at most %d axes per sample, found %s", NNC_MAX_RANK - 1,
               shape_text(e, s));
    return false;
}

static const char *clip(ExprEnv *e, const char *s) { return diag_clip(e->arena, s, strlen(s)); }

/* ---------------------------------------------------------------- literals */

/* Fills shape (from the first element at each depth) and checks that the
 * literal is rectangular; appends the numbers to *values (count *n, room
 * `cap`). */
static bool literal_walk(ExprEnv *e, const AstExpr *x, int depth, Shape *shape, double **values, size_t *n,
                         size_t *cap) {
    if (x->kind == EX_NUM || (x->kind == EX_NEG && x->args[0]->kind == EX_NUM)) {
        if (depth != shape->rank) {
            diag_error(e->diag, x->loc, "ragged tensor literal: expected a list of %lld here, found a number",
                       (long long)shape->dim[depth]);
            return false;
        }
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 16;
            double *v = arena_array(e->arena, *cap, sizeof *v);
            if (*n)
                memcpy(v, *values, *n * sizeof *v);
            *values = v;
        }
        double v = x->kind == EX_NUM ? x->num.value : -x->args[0]->num.value;
        (*values)[(*n)++] = v;
        return true;
    }
    if (x->kind != EX_LIST) {
        diag_error(e->diag, x->loc, "expected a number or a tensor literal like [1, 2]");
        return false;
    }
    if (depth == shape->rank) { /* the first list at this depth fixes its length */
        if (depth > 0 && *n > 0) {
            diag_error(e->diag, x->loc, "ragged tensor literal: expected a number here, found a list");
            return false;
        }
        if (depth == NNC_MAX_RANK) {
            diag_error(e->diag, x->loc, "too many dimensions: at most %d are supported", NNC_MAX_RANK);
            return false;
        }
        shape->dim[shape->rank++] = x->nargs;
    } else if (depth > shape->rank || shape->dim[depth] != x->nargs) {
        diag_error(e->diag, x->loc, "ragged tensor literal: expected %lld elements, found %d",
                   (long long)shape->dim[depth], x->nargs);
        return false;
    }
    for (int i = 0; i < x->nargs; i++)
        if (!literal_walk(e, x->args[i], depth + 1, shape, values, n, cap))
            return false;
    return true;
}

bool expr_literal(ExprEnv *e, const AstExpr *x, Shape *shape, double **values) {
    *shape = (Shape){0};
    *values = NULL;
    size_t n = 0, cap = 0;
    return literal_walk(e, x, 0, shape, values, &n, &cap);
}

/* ---------------------------------------------------------------- operators */

/* a op b for an elementwise op, if the shapes broadcast. */
static NodeId elementwise(ExprEnv *e, const AstExpr *x, Op op, NodeId a, NodeId b) {
    Shape s;
    const Shape *sa = shape_of(e, a), *sb = shape_of(e, b);
    if (!shape_broadcast(sa, sb, &s)) {
        int r = sa->rank > sb->rank ? sa->rank : sb->rank, axis = 0;
        for (int i = 1; i <= r; i++) { /* the last axis where they differ, counted from the right */
            int64_t da = i <= sa->rank ? sa->dim[sa->rank - i] : 1, db = i <= sb->rank ? sb->dim[sb->rank - i] : 1;
            if (da != db && da != 1 && db != 1)
                axis = -i;
        }
        diag_error(e->diag, x->loc, "shapes %s and %s do not broadcast in '%c': axis %d has sizes %lld and %lld",
                   shape_text(e, sa), shape_text(e, sb), x->op, axis, (long long)sa->dim[sa->rank + axis],
                   (long long)sb->dim[sb->rank + axis]);
        return -1;
    }
    if (!rank_fits(e, x, &s))
        return -1;
    a = per_sample_rank(e, a, s.rank, x->loc);
    b = per_sample_rank(e, b, s.rank, x->loc);
    return ir_binary(e->g, op, a, b, x->loc);
}

/* a @ b, NumPy's matmul for vectors and matrices. */
static NodeId matmul(ExprEnv *e, const AstExpr *x, NodeId a, NodeId b) {
    Shape sa = *shape_of(e, a), sb = *shape_of(e, b);
    for (int k = 0; k < 2; k++) {
        const Shape *s = k ? &sb : &sa;
        if (s->rank < 1 || s->rank > 2) {
            diag_error(e->diag, x->loc, "'@' takes vectors and matrices: expected rank 1 or 2 on the %s, found %s",
                       k ? "right" : "left", shape_text(e, s));
            return -1;
        }
    }
    int64_t k = sa.dim[sa.rank - 1];
    if (sb.dim[0] != k) {
        Shape want = sb;
        want.dim[0] = k;
        diag_error(e->diag, x->loc, "inner dimensions of '@' differ: %s @ %s; expected %s on the right, found %s",
                   shape_text(e, &sa), shape_text(e, &sb), shape_text(e, &want), shape_text(e, &sb));
        return -1;
    }
    Graph *g = e->g;
    Loc l = x->loc;
    bool ba = expr_batched(e, a), bb = expr_batched(e, b);
    if (ba || bb) {
        /* Per sample; a batch is rows: only vector samples, which are the
         * rows of a matrix [batch, k], are supported. */
        if ((ba && sa.rank != 1) || (bb && sb.rank != 1)) {
            diag_error(e->diag, l, "'@' on a batch of samples takes vector samples: expected [k], found %s",
                       shape_text(e, ba && sa.rank != 1 ? &sa : &sb));
            return -1;
        }
        if (ba && bb) /* x . z per sample */
            return ir_reshape(g, ir_sum(g, ir_binary(g, OP_MUL, a, b, l), 1, l), (Shape){1, {e->batch}}, l);
        NodeId w = ba ? b : a; /* the weights: x W, or W x = x W^T */
        Shape sw = ba ? sb : sa;
        NodeId wm = sw.rank == 2 ? (ba ? w : ir_transpose(g, w, l)) : ir_reshape(g, w, (Shape){2, {k, 1}}, l);
        NodeId m = ir_matmul(g, ba ? a : b, wm, l);
        return sw.rank == 2 ? m : ir_reshape(g, m, (Shape){1, {e->batch}}, l);
    }
    Shape ma = {2, {sa.rank == 2 ? sa.dim[0] : 1, k}}, mb = {2, {k, sb.rank == 2 ? sb.dim[1] : 1}};
    Shape r = {0};
    if (sa.rank == 2)
        r.dim[r.rank++] = sa.dim[0];
    if (sb.rank == 2)
        r.dim[r.rank++] = sb.dim[1];
    NodeId m = ir_matmul(g, ir_reshape(g, a, ma, l), ir_reshape(g, b, mb, l), l);
    return ir_reshape(g, m, r, l);
}

static NodeId binary(ExprEnv *e, const AstExpr *x, NodeId a, NodeId b) {
    switch (x->op) {
    case '+': return elementwise(e, x, OP_ADD, a, b);
    case '-': return elementwise(e, x, OP_SUB, a, b);
    case '*': return elementwise(e, x, OP_MUL, a, b);
    case '/': return elementwise(e, x, OP_DIV, a, b);
    case '^': return elementwise(e, x, OP_POW, a, b);
    case '@': return matmul(e, x, a, b);
    }
    die("expr: operator '%c'", x->op);
}

/* ---------------------------------------------------------------- functions */

typedef enum {
    FN_UNARY, FN_ALPHA, FN_SOFTPLUS, FN_SOFTMAX, FN_LOG_SOFTMAX, FN_SUM, FN_MEAN, FN_EXTREME, FN_TRANSPOSE,
    FN_CONCAT, FN_RESHAPE, FN_GRAD, FN_LOSS
} FnKind;

typedef struct Fn {
    const char *name;
    FnKind kind;
    Op op;             /* FN_UNARY, FN_ALPHA, FN_EXTREME */
    int nargs;         /* positional arguments; -1: two or more */
    const char *key;   /* the keyword argument it takes, or NULL */
    double alpha;      /* FN_ALPHA: alpha's default (Keras') */
    const char *usage; /* for messages */
} Fn;

static const Fn functions[] = {
    {"exp", FN_UNARY, OP_EXP, 1, NULL, 0, "exp(x)"},
    {"log", FN_UNARY, OP_LOG, 1, NULL, 0, "log(x)"},
    {"sqrt", FN_UNARY, OP_SQRT, 1, NULL, 0, "sqrt(x)"},
    {"abs", FN_UNARY, OP_ABS, 1, NULL, 0, "abs(x)"},
    {"sin", FN_UNARY, OP_SIN, 1, NULL, 0, "sin(x)"},
    {"cos", FN_UNARY, OP_COS, 1, NULL, 0, "cos(x)"},
    {"relu", FN_UNARY, OP_RELU, 1, NULL, 0, "relu(x)"},
    {"sigmoid", FN_UNARY, OP_SIGMOID, 1, NULL, 0, "sigmoid(x)"},
    {"tanh", FN_UNARY, OP_TANH, 1, NULL, 0, "tanh(x)"},
    {"leaky_relu", FN_ALPHA, OP_LEAKY_RELU, 1, "alpha", 0.2, "leaky_relu(x[, alpha=0.2])"},
    {"elu", FN_ALPHA, OP_ELU, 1, "alpha", 1.0, "elu(x[, alpha=1])"},
    {"softplus", FN_SOFTPLUS, OP_COUNT, 1, NULL, 0, "softplus(x)"},
    {"softmax", FN_SOFTMAX, OP_COUNT, 1, NULL, 0, "softmax(x)"},
    {"log_softmax", FN_LOG_SOFTMAX, OP_COUNT, 1, NULL, 0, "log_softmax(x)"},
    {"sum", FN_SUM, OP_COUNT, 1, "axis", 0, "sum(x[, axis=k])"},
    {"mean", FN_MEAN, OP_COUNT, 1, "axis", 0, "mean(x[, axis=k])"},
    {"max", FN_EXTREME, OP_MAX, 1, "axis", 0, "max(x[, axis=k])"},
    {"min", FN_EXTREME, OP_MIN, 1, "axis", 0, "min(x[, axis=k])"},
    {"transpose", FN_TRANSPOSE, OP_COUNT, 1, NULL, 0, "transpose(x)"},
    {"concat", FN_CONCAT, OP_COUNT, -1, "axis", 0, "concat(x, y, ...[, axis=k])"},
    {"reshape", FN_RESHAPE, OP_COUNT, 2, NULL, 0, "reshape(x, [d, ...])"},
    {"grad", FN_GRAD, OP_COUNT, 2, NULL, 0, "grad(f, x)"},
    {"mse", FN_LOSS, OP_COUNT, 2, NULL, 0, "mse(prediction, target)"},
    {"mae", FN_LOSS, OP_COUNT, 2, NULL, 0, "mae(prediction, target)"},
    {"binary_crossentropy", FN_LOSS, OP_COUNT, 2, NULL, 0, "binary_crossentropy(prediction, target)"},
    {"crossentropy", FN_LOSS, OP_COUNT, 2, NULL, 0, "crossentropy(prediction, target)"},
    {"categorical_crossentropy", FN_LOSS, OP_COUNT, 2, NULL, 0, "categorical_crossentropy(prediction, target)"},
};
enum { NFUNCTIONS = sizeof functions / sizeof functions[0] };

static const Fn *find_function(const char *name) {
    for (int i = 0; i < NFUNCTIONS; i++)
        if (strcmp(functions[i].name, name) == 0)
            return &functions[i];
    return NULL;
}

static void unknown_function(ExprEnv *e, const AstExpr *x) {
    if (layer_exists(x->name)) { /* outside a model: a script's statement, a REPL entry */
        diag_error(e->diag, x->loc, "%s is a layer: it applies inside a model", x->name);
        return;
    }
    const char *const *layers = layer_names();
    int nlayers = 0;
    while (layers[nlayers])
        nlayers++;
    const char **names = arena_array(e->arena, NFUNCTIONS + (size_t)nlayers + 2, sizeof *names);
    for (int i = 0; i < NFUNCTIONS; i++)
        names[i] = functions[i].name;
    names[NFUNCTIONS] = "dense";
    memcpy(names + NFUNCTIONS + 1, layers, ((size_t)nlayers + 1) * sizeof *names);
    const char *guess = diag_quiet(e->diag) ? NULL : closest_name(x->name, names);
    if (guess)
        diag_error(e->diag, x->loc, "unknown function '%s'; did you mean '%s'?", clip(e, x->name), guess);
    else
        diag_error(e->diag, x->loc, "unknown function '%s'", clip(e, x->name));
}

/* A number written as a literal (alpha = 0.3, alpha = -1); false once reported. */
static bool number_arg(ExprEnv *e, const AstExpr *v, const char *what, double *out) {
    if (v->kind == EX_NUM || (v->kind == EX_NEG && v->args[0]->kind == EX_NUM)) {
        *out = v->kind == EX_NUM ? v->num.value : -v->args[0]->num.value;
        return true;
    }
    diag_error(e->diag, v->loc, "%s must be a number", what);
    return false;
}

/* An integer axis of a tensor of rank r, NumPy style (negative counts from
 * the end); -2 once reported. */
static int axis_arg(ExprEnv *e, const AstExpr *v, int rank) {
    bool neg = v->kind == EX_NEG && v->args[0]->kind == EX_NUM;
    const AstNum *n = v->kind == EX_NUM ? &v->num : neg ? &v->args[0]->num : NULL;
    if (!n || !n->is_int || n->too_large) {
        diag_error(e->diag, v->loc, "axis must be an integer");
        return -2;
    }
    int64_t k = neg ? -n->ivalue : n->ivalue;
    if (k < -rank || k >= rank) {
        diag_error(e->diag, v->loc, "axis %lld is out of range for a tensor of rank %d: expected %d to %d",
                   (long long)k, rank, -rank, rank - 1);
        return -2;
    }
    return (int)(k < 0 ? k + rank : k);
}

/* sum, mean, max or min of x over `axis` (-1: all), dropping the axis as
 * NumPy does. */
static NodeId reduce(ExprEnv *e, const AstExpr *x, const Fn *fn, NodeId a, int axis) {
    Graph *g = e->g;
    Shape s = *shape_of(e, a), r = {0};
    bool mean = fn->kind == FN_MEAN, batched = expr_batched(e, a);
    int lead = batched; /* the batch axis is kept: the reduction is per sample */
    if (batched)
        r.dim[r.rank++] = e->batch;
    NodeId sum = a;
    for (int i = 0; i < s.rank; i++) {
        if (axis >= 0 && i != axis) {
            r.dim[r.rank++] = s.dim[i];
            continue;
        }
        if (!batched && axis < 0) /* all at once */
            break;
        sum = fn->kind == FN_EXTREME ? ir_extreme(g, fn->op, sum, i + lead, x->loc) : ir_sum(g, sum, i + lead, x->loc);
    }
    if (!batched && axis < 0)
        sum = fn->kind == FN_EXTREME ? ir_extreme(g, fn->op, a, -1, x->loc) : ir_sum(g, a, -1, x->loc);
    int64_t count = axis >= 0 ? s.dim[axis] : shape_elems(&s);
    sum = ir_reshape(g, sum, r, x->loc);
    return mean ? ir_binary(g, OP_MUL, sum, ir_const(g, 1.0 / (double)count, (Shape){0}, x->loc), x->loc) : sum;
}

/* grad(f, x): d f / d x, the gradient of sum(f) where f is not a scalar (as
 * TensorFlow's GradientTape does), so it has x's shape. */
static NodeId gradient(ExprEnv *e, const AstExpr *x, NodeId f) {
    const AstExpr *v = x->args[1];
    if (e->batch) {
        diag_error(e->diag, x->loc, "grad is for statements outside a model: a model's loss is differentiated for you");
        return -1;
    }
    if (v->kind != EX_NAME) {
        diag_error(e->diag, v->loc, "grad differentiates with respect to a name: expected a name, found an expression");
        return -1;
    }
    const ExprName *b = expr_lookup(e, v->name);
    if (!b) /* the caller lowered every argument without an error */
        die("expr: grad of the unbound name '%s'", v->name);
    if (e->g->nodes[b->node].op == OP_CONST) {
        diag_error(e->diag, v->loc, "'%s' is a constant: grad differentiates with respect to a variable (bound by "
                   "'let') or a value computed from one", clip(e, v->name));
        return -1;
    }
    e->grad_of = f;
    if (shape_of(e, f)->rank)
        f = ir_sum(e->g, f, -1, x->loc);
    NodeId out;
    e->g->node_limit = NNC_MAX_NODES;
    ad_gradients(e->g, f, &b->node, 1, &out);
    if (out < 0)
        diag_error(e->diag, x->loc, "grad: the expression's graph would have more than %d nodes", NNC_MAX_NODES);
    return out;
}

/* concat(x, y, ..., axis=k): NumPy's concatenate; every other axis equal. */
static NodeId concat(ExprEnv *e, const AstExpr *x, const NodeId *args, int n, const AstExpr *key) {
    const Shape *s0 = shape_of(e, args[0]);
    if (s0->rank == 0) {
        diag_error(e->diag, x->args[0]->loc, "concat joins tensors along an axis: expected a vector or more, found []");
        return -1;
    }
    int axis = key ? axis_arg(e, key->args[0], s0->rank) : 0;
    if (axis == -2)
        return -1;
    bool batched = expr_batched(e, args[0]);
    for (int i = 1; i < n; i++)
        if (expr_batched(e, args[i]) != batched) {
            diag_error(e->diag, x->loc, "concat of a batch of samples and a parameter is not supported; "
                       "concatenate values of the same kind");
            return -1;
        }
    NodeId r = args[0];
    for (int i = 1; i < n; i++) {
        const Shape *si = shape_of(e, args[i]);
        Shape want = *s0;
        if (si->rank != s0->rank) {
            diag_error(e->diag, x->args[i]->loc, "concat joins tensors of one rank: expected rank %d, found %s",
                       s0->rank, shape_text(e, si));
            return -1;
        }
        want.dim[axis] = si->dim[axis];
        if (!shape_eq(si, &want)) {
            diag_error(e->diag, x->args[i]->loc, "concat along axis %d needs the other axes equal: expected %s, found %s",
                       axis, shape_text(e, &want), shape_text(e, si));
            return -1;
        }
        r = ir_concat(e->g, r, args[i], axis + batched, x->loc);
    }
    return r;
}

/* reshape(x, [d, ...]): the same elements in a new shape; one d may be -1
 * (whatever is left, as in NumPy). */
static NodeId reshape(ExprEnv *e, const AstExpr *x, NodeId a, const AstExpr *dims) {
    Shape lit, s = {0};
    double *v;
    if (!expr_literal(e, dims, &lit, &v))
        return -1;
    if (lit.rank != 1 || lit.dim[0] > NNC_MAX_RANK) {
        diag_error(e->diag, dims->loc, "reshape's shape is a list of at most %d sizes, like [2, 3]", NNC_MAX_RANK);
        return -1;
    }
    int64_t elems = shape_elems(shape_of(e, a)), known = 1;
    int wild = -1;
    s.rank = (int)lit.dim[0];
    for (int i = 0; i < s.rank; i++) {
        if (v[i] == -1 && wild < 0) {
            wild = i;
            continue;
        }
        if (v[i] != (double)(int64_t)v[i] || v[i] < 1 || v[i] > (double)NNC_MAX_ELEMS) {
            diag_error(e->diag, dims->args[i]->loc, "a size must be a positive integer (or one -1), found %g", v[i]);
            return -1;
        }
        s.dim[i] = (int64_t)v[i];
        known *= s.dim[i]; /* each at most NNC_MAX_ELEMS, and stopped below once larger than elems */
        if (known > elems)
            break;
    }
    if (wild >= 0 && known <= elems && elems % known == 0)
        s.dim[wild] = elems / known;
    if (known > elems || (wild >= 0 ? elems % known != 0 : known != elems)) {
        const char *want = "[";
        for (int i = 0; i < s.rank; i++)
            want = arena_printf(e->arena, "%s%s%g", want, i ? ", " : "", v[i]);
        diag_error(e->diag, dims->loc, "reshape cannot give %s (%lld elements) the shape %s]",
                   shape_text(e, shape_of(e, a)), (long long)elems, want);
        return -1;
    }
    if (expr_batched(e, a)) { /* per sample: the batch axis stays in front */
        if (!rank_fits(e, x, &s))
            return -1;
        for (int i = s.rank; i > 0; i--)
            s.dim[i] = s.dim[i - 1];
        s.dim[0] = e->batch;
        s.rank++;
    }
    return ir_reshape(e->g, a, s, x->loc);
}

static NodeId call(ExprEnv *e, const AstExpr *x) {
    const Fn *fn = find_function(x->name);
    if (!fn && e->layer && layer_exists(x->name))
        return e->layer(e, x);
    NodeId n;
    if (!fn && e->model && e->model(e, x, &n))
        return n;
    if (!fn) {
        unknown_function(e, x);
        return -1;
    }
    NodeId *args = arena_array(e->arena, (size_t)x->nargs + 1, sizeof *args);
    const AstExpr **pos = arena_array(e->arena, (size_t)x->nargs + 1, sizeof *pos);
    const AstExpr *key = NULL;
    int npos = 0;
    bool ok = true;
    for (int i = 0; i < x->nargs; i++) {
        const AstExpr *arg = x->args[i];
        if (arg->kind != EX_KEYWORD) {
            pos[npos++] = arg;
        } else if (!fn->key || strcmp(arg->name, fn->key) != 0) {
            diag_error(e->diag, arg->loc, "unknown argument '%s' for %s; expected %s", clip(e, arg->name), fn->name,
                       fn->usage);
            ok = false;
        } else if (key) {
            diag_error(e->diag, arg->loc, "duplicate argument '%s'", clip(e, arg->name));
            ok = false;
        } else {
            key = arg;
        }
    }
    if (fn->nargs >= 0 ? npos != fn->nargs : npos < 2) {
        if (fn->nargs >= 0)
            diag_error(e->diag, x->loc, "%s takes %d argument%s, found %d; expected %s", fn->name, fn->nargs,
                       fn->nargs == 1 ? "" : "s", npos, fn->usage);
        else
            diag_error(e->diag, x->loc, "%s takes two or more arguments, found %d; expected %s", fn->name, npos,
                       fn->usage);
        return -1;
    }
    /* reshape's shape is a literal, not a value */
    int nvalues = fn->kind == FN_RESHAPE ? 1 : npos;
    for (int i = 0; i < nvalues; i++)
        ok &= (args[i] = expr_lower(e, pos[i])) >= 0;
    if (!ok)
        return -1;
    Graph *g = e->g;
    NodeId a = args[0];
    const Shape *sa = shape_of(e, a);
    switch (fn->kind) {
    case FN_UNARY:
        return ir_unary(g, fn->op, a, x->loc);
    case FN_ALPHA: {
        double alpha = fn->alpha;
        return key && !number_arg(e, key->args[0], "alpha", &alpha) ? -1 : ir_unary_alpha(g, fn->op, a, alpha, x->loc);
    }
    case FN_SOFTPLUS: /* the activation's lowering */
        return act_lower(g, ACT_SOFTPLUS, a, x->loc);
    case FN_SOFTMAX:
    case FN_LOG_SOFTMAX:
        if (sa->rank == 0) {
            diag_error(e->diag, x->loc, "%s needs at least one axis: expected a vector, found a scalar", fn->name);
            return -1;
        }
        a = ir_logsoftmax(g, a, x->loc);
        return fn->kind == FN_SOFTMAX ? ir_unary(g, OP_EXP, a, x->loc) : a;
    case FN_SUM:
    case FN_MEAN:
    case FN_EXTREME: {
        int axis = key ? axis_arg(e, key->args[0], sa->rank) : -1;
        return axis == -2 ? -1 : reduce(e, x, fn, a, axis);
    }
    case FN_TRANSPOSE:
        if (sa->rank > 2) {
            diag_error(e->diag, x->loc, "transpose takes a vector or a matrix: expected rank 1 or 2, found %s",
                       shape_text(e, sa));
            return -1;
        }
        if (sa->rank == 2 && expr_batched(e, a)) {
            diag_error(e->diag, x->loc, "transpose of a batch of matrix samples is not supported");
            return -1;
        }
        return sa->rank == 2 ? ir_transpose(g, a, x->loc) : a;
    case FN_CONCAT:
        return concat(e, x, args, npos, key);
    case FN_RESHAPE:
        return reshape(e, x, a, pos[1]);
    case FN_GRAD:
        return gradient(e, x, a);
    case FN_LOSS: {
        LossKind k;
        if (!loss_lookup(fn->name, &k)) /* the table names losses of loss.c */
            unreachable();
        return loss_lower(e, k, x->loc, x->args[1]->loc, a, args[1]);
    }
    }
    unreachable();
}

/* ---------------------------------------------------------------- expressions */

static NodeId lower(ExprEnv *e, const AstExpr *x);

/* The parser caps an expression's height; names defined from names (h2 =
 * h1 + 1, h3 = h2 + 1, ...) nest further, which this caps. */
NodeId expr_lower(ExprEnv *e, const AstExpr *x) {
    if (e->depth == NNC_MAX_NESTING && !e->too_deep) {
        diag_error(e->diag, x->loc, "nesting too deep: more than %d values computed inside one another",
                   NNC_MAX_NESTING);
        e->too_deep = true;
    }
    if (e->too_deep) /* reported once: unwinding */
        return -1;
    e->depth++;
    NodeId n = lower(e, x);
    e->too_deep &= --e->depth > 0;
    return n;
}

static NodeId lower(ExprEnv *e, const AstExpr *x) {
    switch (x->kind) {
    case EX_NUM:
        return ir_const(e->g, x->num.value, (Shape){0}, x->loc);
    case EX_NAME: {
        const ExprName *b = expr_lookup(e, x->name);
        if (b && (b->node == EXPR_LAZY || b->node == EXPR_RESOLVING))
            return e->resolve(e, (int)(b - e->names), x->loc);
        NodeId n;
        if (b)
            return b->node;
        if (e->model && e->model(e, x, &n))
            return n;
        const char **names = arena_array(e->arena, (size_t)e->nnames + 1, sizeof *names);
        for (int i = 0; i < e->nnames; i++)
            names[i] = e->names[i].name;
        const char *guess = diag_quiet(e->diag) ? NULL : closest_name(x->name, names);
        if (guess)
            diag_error(e->diag, x->loc, "unknown name '%s'; did you mean '%s'?", clip(e, x->name), guess);
        else
            diag_error(e->diag, x->loc, "unknown name '%s'", clip(e, x->name));
        return -1;
    }
    case EX_LIST: {
        Shape s;
        double *v;
        if (!e->literal) {
            diag_error(e->diag, x->loc, "a tensor literal is not allowed here");
            return -1;
        }
        return expr_literal(e, x, &s, &v) ? e->literal(e, x, s, v) : -1;
    }
    case EX_NEG: {
        NodeId a = expr_lower(e, x->args[0]);
        return a < 0 ? -1 : ir_unary(e->g, OP_NEG, a, x->loc);
    }
    case EX_BINARY: {
        NodeId a = expr_lower(e, x->args[0]), b = expr_lower(e, x->args[1]);
        return a < 0 || b < 0 ? -1 : binary(e, x, a, b);
    }
    case EX_CALL:
        return call(e, x);
    case EX_KEYWORD:
        break; /* only inside a call's arguments (the grammar) */
    }
    unreachable();
}
