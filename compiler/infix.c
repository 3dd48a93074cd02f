/* infix.c — an IR value written back as an expression a person reads:
 * `print grad(L, w)` shows `2*w + 2*((a + b)*w - t)*(a + b)`.
 *
 * The derivative is whatever autodiff built, already simplified by the IR's
 * constructors; this file only chooses how to write it, in the language's
 * own syntax (the ops that have no function of the language, such as
 * relu's derivative step(x), are written as calls all the same):
 *   - names: a node the user named is written by its name (below the root);
 *   - sharing: a nameless subexpression used more than once is written once,
 *     as t1, t2, ... in a `where` list, so nothing long is duplicated (one
 *     of fewer than SHARE_MIN operations, like a + b, reads better repeated);
 *   - the NumPy view: broadcasts, and reshapes and transposes that only add,
 *     drop or move axes of size 1, are invisible, as they are in the source;
 *   - the textbook view: a*a is a^2, x*2 is 2*x, a + x*-2 is a - 2*x,
 *     exp(log_softmax(z)) is softmax(z), step(relu(z)) is step(z) (autodiff
 *     masks relu's gradient by its output, which the kernels keep anyway);
 *   - the fewest parentheses that keep the meaning.
 * Strings are built bottom-up in the arena; the expressions printed are a
 * few lines long, so the copying costs nothing that matters.
 */
#include "nnc.h"

#include <string.h>

enum { SHARE_MIN = 3 };

/* Binding strength of a written form, loosest first. */
enum { P_SUM = 1, P_PRODUCT, P_UNARY, P_POWER, P_ATOM };

typedef struct Text {
    const char *s;
    int prec;
    bool product; /* written as a * b (associative: a*b*c needs no parentheses) */
} Text;

typedef struct Infix {
    Arena *a;
    const Graph *g;
    const char *const *names;
    NodeId root;
    int *uses; /* per node: references from the part of the root's DAG that is written out */
    int *temp; /* per node: its number n for `tn`, 0 if none */
    int *ops;  /* per node: operations in its written form + 1, 0 not yet known */
} Infix;

static const IrNode *node(const Infix *p, NodeId id) { return &p->g->nodes[id]; }

/* Does reshape/broadcast node n only add or drop axes of size 1 (or repeat
 * along them, which broadcasting does implicitly)? Then it is not written. */
static bool transparent(const Infix *p, const IrNode *n) {
    if (n->op == OP_BROADCAST)
        return true;
    if (n->op == OP_TRANSPOSE) /* a vector's: there are no column vectors in the source */
        return n->shape.dim[0] == 1 || n->shape.dim[1] == 1;
    if (n->op != OP_RESHAPE)
        return false;
    const Shape *from = &node(p, n->in[0])->shape, *to = &n->shape;
    int i = 0, j = 0;
    for (;;) {
        while (i < from->rank && from->dim[i] == 1)
            i++;
        while (j < to->rank && to->dim[j] == 1)
            j++;
        if (i == from->rank || j == to->rank)
            return i == from->rank && j == to->rank;
        if (from->dim[i++] != to->dim[j++])
            return false;
    }
}

static NodeId see_through(const Infix *p, NodeId id) {
    while (transparent(p, node(p, id)))
        id = node(p, id)->in[0];
    return id;
}

static const char *name_of(const Infix *p, NodeId id) {
    return id != p->root && p->names && p->names[id] ? p->names[id] : NULL;
}

/* Written as one word: a name, a temporary, a leaf or a constant. */
static bool opaque(const Infix *p, NodeId id) {
    return name_of(p, id) || (id != p->root && p->temp[id]) || op_info[node(p, id)->op].cls == CLASS_LEAF;
}

static bool scalar_const(const Infix *p, NodeId id, double *v) {
    const IrNode *n = node(p, id);
    if (n->op != OP_CONST || n->shape.rank != 0)
        return false;
    *v = n->value;
    return true;
}

/* Counts the references to each node in the part that will be written. */
static void count_uses(Infix *p, NodeId id) {
    id = see_through(p, id);
    if (p->uses[id]++ > 0 || name_of(p, id) || op_info[node(p, id)->op].cls == CLASS_LEAF)
        return;
    const IrNode *n = node(p, id);
    int arity = op_info[n->op].arity;
    if (n->op == OP_MUL && n->in[0] == n->in[1]) /* a*a is written a^2: one use */
        arity = 1;
    for (int k = 0; k < arity; k++)
        count_uses(p, n->in[k]);
}

/* The number of operations written out for node id (names and leaves are
 * one word), capped: only the comparison with SHARE_MIN matters. */
static int op_count(Infix *p, NodeId id) {
    id = see_through(p, id);
    if (name_of(p, id) || op_info[node(p, id)->op].cls == CLASS_LEAF)
        return 0;
    if (!p->ops[id]) {
        const IrNode *n = node(p, id);
        int count = 1;
        for (int k = 0; k < op_info[n->op].arity && count < SHARE_MIN; k++)
            count += op_count(p, n->in[k]);
        p->ops[id] = count + 1;
    }
    return p->ops[id] - 1;
}

static Text text_of(Infix *p, NodeId id);

static Text mk(Infix *p, int prec, const char *fmt, const char *x, const char *y) {
    return (Text){arena_printf(p->a, fmt, x, y), prec, false};
}

/* t as an operand that must bind at least as tightly as `need`. */
static const char *operand(Infix *p, Text t, int need) {
    return t.prec < need ? arena_printf(p->a, "(%s)", t.s) : t.s;
}

static const char *number(Infix *p, double v) { return arena_printf(p->a, "%g", v); }

/* x * c for a scalar constant c, written c*x (-c*x when c < 0). */
static Text scaled(Infix *p, NodeId x, double c) {
    Text t = text_of(p, x);
    const char *s = arena_printf(p->a, "%s*%s", number(p, c < 0 ? -c : c), operand(p, t, P_PRODUCT));
    if (c < 0)
        return (Text){arena_printf(p->a, "-%s", s), P_UNARY, false};
    return (Text){s, P_PRODUCT, true};
}

static Text call(Infix *p, const char *fn, NodeId x, const char *extra) {
    return (Text){arena_printf(p->a, "%s(%s%s)", fn, text_of(p, x).s, extra), P_ATOM, false};
}

/* The node's own structure (not its name or temporary). */
static Text structure(Infix *p, NodeId id) {
    const IrNode *n = node(p, id);
    NodeId a = n->in[0], b = n->in[1];
    double c;
    switch (n->op) {
    case OP_CONST:
        return (Text){number(p, n->value), n->value < 0 ? P_UNARY : P_ATOM, false};
    case OP_INPUT: case OP_LABEL: case OP_PARAM: case OP_STATE:
        return (Text){p->g->slots[n->slot].name, P_ATOM, false};
    case OP_ADD: {
        const char *l = operand(p, text_of(p, a), P_SUM);
        NodeId bb = see_through(p, b);
        const IrNode *y = node(p, bb);
        if (!opaque(p, bb) && y->op == OP_NEG) /* a + -x is a - x */
            return mk(p, P_SUM, "%s - %s", l, operand(p, text_of(p, y->in[0]), P_PRODUCT));
        if (!opaque(p, bb) && y->op == OP_MUL && scalar_const(p, y->in[1], &c) && c < 0)
            return mk(p, P_SUM, "%s - %s", l, scaled(p, y->in[0], -c).s);
        return mk(p, P_SUM, "%s + %s", l, operand(p, text_of(p, b), P_SUM)); /* + is associative */
    }
    case OP_SUB:
        return mk(p, P_SUM, "%s - %s", operand(p, text_of(p, a), P_SUM), operand(p, text_of(p, b), P_PRODUCT));
    case OP_MUL: {
        if (a == b)
            return mk(p, P_POWER, "%s^2", operand(p, text_of(p, a), P_ATOM), NULL);
        if (scalar_const(p, b, &c))
            return scaled(p, a, c);
        Text r = text_of(p, b);
        Text t = mk(p, P_PRODUCT, "%s*%s", operand(p, text_of(p, a), P_PRODUCT),
                    r.product ? r.s : operand(p, r, P_POWER));
        t.product = true;
        return t;
    }
    case OP_DIV:
        return mk(p, P_PRODUCT, "%s/%s", operand(p, text_of(p, a), P_PRODUCT), operand(p, text_of(p, b), P_POWER));
    case OP_POW:
        return mk(p, P_POWER, "%s^%s", operand(p, text_of(p, a), P_ATOM), operand(p, text_of(p, b), P_ATOM));
    case OP_MATMUL:
        return mk(p, P_PRODUCT, "%s @ %s", operand(p, text_of(p, a), P_PRODUCT), operand(p, text_of(p, b), P_POWER));
    case OP_NEG:
        return mk(p, P_UNARY, "-%s", operand(p, text_of(p, a), P_PRODUCT), NULL);
    case OP_EXP:
        if (!opaque(p, a) && node(p, a)->op == OP_LOGSOFTMAX)
            return call(p, "softmax", node(p, a)->in[0], "");
        return call(p, "exp", a, "");
    case OP_LOG: return call(p, "log", a, "");
    case OP_RELU: return call(p, "relu", a, "");
    case OP_STEP:
        if (!opaque(p, a) && node(p, a)->op == OP_RELU)
            return call(p, "step", node(p, a)->in[0], "");
        return call(p, "step", a, "");
    case OP_SIGMOID: return call(p, "sigmoid", a, "");
    case OP_TANH: return call(p, "tanh", a, "");
    case OP_LOGSOFTMAX: return call(p, "log_softmax", a, "");
    case OP_SQRT: return call(p, "sqrt", a, "");
    case OP_ABS: return call(p, "abs", a, "");
    case OP_SIGN: return call(p, "sign", a, "");
    case OP_SIN: return call(p, "sin", a, "");
    case OP_COS: return call(p, "cos", a, "");
    case OP_FLOOR: return call(p, "floor", a, "");
    case OP_LEAKY_RELU: return call(p, "leaky_relu", a, arena_printf(p->a, ", alpha=%g", n->value));
    case OP_ELU: return call(p, "elu", a, arena_printf(p->a, ", alpha=%g", n->value));
    case OP_EQ: return call(p, "eq", a, arena_printf(p->a, ", %s", text_of(p, b).s));
    case OP_MAXIMUM: case OP_MINIMUM:
        return call(p, op_info[n->op].name, a, arena_printf(p->a, ", %s", text_of(p, b).s));
    case OP_BCE_LOGITS: /* as written: softplus(z) (lower_activation), or binary_crossentropy(sigmoid(z), y) */
        if (scalar_const(p, b, &c) && c == 0)
            return call(p, "softplus", a, "");
        return (Text){arena_printf(p->a, "binary_crossentropy(sigmoid(%s), %s)", text_of(p, a).s, text_of(p, b).s),
                      P_ATOM, false};
    case OP_MAX: case OP_MIN:
        return call(p, op_info[n->op].name, a, n->axis < 0 ? "" : arena_printf(p->a, ", axis=%d", n->axis));
    case OP_CONCAT: return call(p, "concat", a, arena_printf(p->a, ", %s, axis=%d", text_of(p, b).s, n->axis));
    case OP_SLICE:
        return call(p, "slice", a, arena_printf(p->a, ", axis=%d, start=%lld, size=%lld", n->axis, (long long)n->start,
                                                (long long)n->shape.dim[n->axis]));
    case OP_TRANSPOSE: return call(p, "transpose", a, "");
    case OP_ONEHOT:
        return call(p, "onehot", a, arena_printf(p->a, ", %lld", (long long)n->shape.dim[1]));
    case OP_SUM:
        return call(p, "sum", a, n->axis < 0 ? "" : arena_printf(p->a, ", axis=%d", n->axis));
    case OP_RESHAPE: case OP_BROADCAST: {
        char sb[96];
        return call(p, n->op == OP_RESHAPE ? "reshape" : "broadcast", a,
                    arena_printf(p->a, ", %s", shape_str(&n->shape, sb, sizeof sb)));
    }
    }
    unreachable();
}

static Text text_of(Infix *p, NodeId id) {
    if (id != p->root)
        id = see_through(p, id);
    const char *name = name_of(p, id);
    if (name)
        return (Text){name, P_ATOM, false};
    if (id != p->root && p->temp[id])
        return (Text){arena_printf(p->a, "t%d", p->temp[id]), P_ATOM, false};
    return structure(p, id);
}

const char *infix_expr(Arena *a, const Graph *g, NodeId root, const char *const *names, const char **where) {
    Infix p = {a, g, names, -1, arena_array(a, (size_t)g->nnodes, sizeof(int)),
               arena_array(a, (size_t)g->nnodes, sizeof(int)), arena_array(a, (size_t)g->nnodes, sizeof(int))};
    /* The root is seen through like any node, but for a reshape that adds
     * axes and is not broadcast: the axes NumPy drops (sum(x, axis=0),
     * m @ v) and a gradient repeated to its variable's shape stay invisible,
     * the axis reshape(v, [3, 1]) adds must not read as v. */
    bool broadcast = false;
    for (const IrNode *n = &g->nodes[root]; transparent(&p, n); n = &g->nodes[root]) {
        if (n->op == OP_RESHAPE && n->shape.rank > g->nodes[n->in[0]].shape.rank && !broadcast)
            break;
        broadcast |= n->op == OP_BROADCAST;
        root = n->in[0];
    }
    p.root = root;
    count_uses(&p, p.root);
    int ntemps = 0;
    for (NodeId i = 0; i < g->nnodes; i++)
        if (i != p.root && p.uses[i] > 1 && !opaque(&p, i) && op_count(&p, i) >= SHARE_MIN)
            p.temp[i] = ++ntemps;
    const char *s = text_of(&p, p.root).s;
    *where = NULL;
    for (NodeId i = 0; i < g->nnodes; i++) {
        if (!p.temp[i])
            continue;
        NodeId saved = p.root; /* the temporary's own definition, not its name */
        p.root = i;
        const char *def = arena_printf(a, "t%d = %s", p.temp[i], text_of(&p, i).s);
        p.root = saved;
        *where = *where ? arena_printf(a, "%s, %s", *where, def) : def;
    }
    return s;
}
