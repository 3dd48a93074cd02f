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
 *   - the NumPy view: broadcasts, reshapes and transposes are invisible
 *     where the text without them reads back as the same value, as they are
 *     in the source: where broadcasting redoes them (leading axes of size 1,
 *     repeats), the axis sum(x, axis=k) drops, m @ v with v a vector; not
 *     where they change the value (reshape(r, [3, 1]) + r is no r + r; the
 *     outer product of a matrix gradient needs its reshape). Each node's
 *     written shape, the shape its text reads back as, decides that;
 *   - scalar factors of a product gathered in front: 2*-0.125*f*x is -0.25*f*x;
 *   - the textbook view: a*a is a^2, x*2 is 2*x, a + x*-2 is a - 2*x,
 *     exp(log_softmax(z)) is softmax(z), step(relu(z)) is step(z) (autodiff
 *     masks relu's gradient by its output, which the kernels keep anyway);
 *   - the fewest parentheses that keep the meaning.
 * Strings are built bottom-up in the arena; the expressions printed are a
 * few lines long, so the copying costs nothing that matters.
 */
#include "nnc.h"

#include <math.h>
#include <stdlib.h>
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
    Shape *ws; /* per node: the shape its text reads back as, once ws_known */
    bool *ws_known;
} Infix;

/* What the consumer of a value needs of its written form for the same
 * result: broadcastable to it (elementwise ops), exactly it (ops with an
 * axis), its elements in order (a sum of everything), or a matmul operand
 * (a vector stands for a row on the left, a column on the right). */
typedef enum { NEED_BROADCAST, NEED_EXACT, NEED_ELEMENTS, NEED_LEFT, NEED_RIGHT } Need;

static const IrNode *node(const Infix *p, NodeId id) { return &p->g->nodes[id]; }

static const char *name_of(const Infix *p, NodeId id) {
    return id != p->root && p->names && p->names[id] ? p->names[id] : NULL;
}

/* Written as one word: a name, a temporary, a leaf or a constant. */
static bool opaque(const Infix *p, NodeId id) {
    return name_of(p, id) || (id != p->root && p->temp[id]) || op_info[node(p, id)->op].cls == CLASS_LEAF;
}

static Shape written_shape(Infix *p, NodeId id);

/* NumPy's broadcast of two shapes (they are compatible: the IR's were). */
static Shape broadcast_shape(Shape x, Shape y) {
    Shape r = x.rank >= y.rank ? x : y;
    const Shape *o = x.rank >= y.rank ? &y : &x;
    for (int i = 0; i < o->rank; i++) {
        int64_t *d = &r.dim[r.rank - o->rank + i];
        if (*d == 1)
            *d = o->dim[i];
    }
    return r;
}

/* Does a value of written shape w serve where the IR has shape s? */
static bool serves(Need need, const Shape *w, const Shape *s) {
    switch (need) {
    case NEED_BROADCAST:
        if (w->rank > s->rank)
            return false;
        for (int i = 0; i < w->rank; i++)
            if (w->dim[i] != 1 && w->dim[i] != s->dim[s->rank - w->rank + i])
                return false;
        return true;
    case NEED_ELEMENTS: return shape_elems(w) == shape_elems(s);
    case NEED_LEFT: /* [1, k] as a vector [k] */
        return shape_eq(w, s) || (s->rank == 2 && s->dim[0] == 1 && w->rank == 1 && w->dim[0] == s->dim[1]);
    case NEED_RIGHT: /* [k, 1] as a vector [k] */
        return shape_eq(w, s) || (s->rank == 2 && s->dim[1] == 1 && w->rank == 1 && w->dim[0] == s->dim[0]);
    case NEED_EXACT: return shape_eq(w, s);
    }
    unreachable();
}

static bool movement(Op op) { return op == OP_RESHAPE || op == OP_TRANSPOSE || op == OP_BROADCAST; }

/* The deepest node of the chain of reshapes, transposes and broadcasts
 * that ends at id whose written form serves as id's value: the ones above
 * it are not written. A name or a temporary stops the chain (it is written
 * as such); so do a broadcast where only the elements count (it repeats
 * them) and a matrix's transpose where their order does. */
static NodeId see_through(Infix *p, NodeId id, Need need) {
    NodeId best = id;
    for (NodeId cur = id; movement(node(p, cur)->op) && !opaque(p, cur);) {
        const IrNode *n = node(p, cur);
        if (need == NEED_ELEMENTS && n->op == OP_BROADCAST)
            break;
        if (need != NEED_ELEMENTS && n->op == OP_TRANSPOSE && n->shape.dim[0] != 1 && n->shape.dim[1] != 1)
            break; /* it moves elements */
        cur = node(p, cur)->in[0];
        Shape w = written_shape(p, cur);
        if (serves(need, &w, &node(p, id)->shape))
            best = cur;
    }
    return best;
}

/* What operand k of an op needs of its written form. */
static Need need_of(const IrNode *n, int k) {
    switch (n->op) {
    case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: case OP_NEG: case OP_EXP: case OP_LOG:
    case OP_RELU: case OP_STEP: case OP_SIGMOID: case OP_TANH: case OP_SQRT: case OP_ABS: case OP_SIGN:
    case OP_SIN: case OP_COS: case OP_FLOOR: case OP_LEAKY_RELU: case OP_ELU: case OP_EQ: case OP_MAXIMUM:
    case OP_MINIMUM: case OP_BCE_LOGITS:
        return NEED_BROADCAST;
    case OP_SUM: case OP_MAX: case OP_MIN: return n->axis < 0 ? NEED_ELEMENTS : NEED_EXACT;
    case OP_MATMUL: return k == 0 ? NEED_LEFT : NEED_RIGHT;
    case OP_ONEHOT: case OP_LOGSOFTMAX: case OP_CONCAT: case OP_SLICE: case OP_TRANSPOSE: case OP_RESHAPE:
    case OP_BROADCAST: case OP_INPUT: case OP_LABEL: case OP_PARAM: case OP_STATE: case OP_CONST:
    IR_OPS_WINDOW(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
        return NEED_EXACT;
    }
    unreachable();
}

/* Operand k of node id as written (before any reshape its text needs: see
 * operand_fits). */
static NodeId arg(Infix *p, NodeId id, int k) {
    const IrNode *n = node(p, id);
    return see_through(p, n->in[k], need_of(n, k));
}

/* Does operand k of node id, as written, serve as its value? If not (a
 * reduction's kept axis the language's sum(x, axis=k) drops), the text
 * writes it as reshape(x, [its shape]). */
static bool operand_fits(Infix *p, NodeId id, int k) {
    const IrNode *n = node(p, id);
    Shape w = written_shape(p, arg(p, id, k));
    return serves(need_of(n, k), &w, &node(p, n->in[k])->shape);
}

/* The shape operand k of node id reads back as. */
static Shape operand_shape(Infix *p, NodeId id, int k) {
    return operand_fits(p, id, k) ? written_shape(p, arg(p, id, k)) : node(p, node(p, id)->in[k])->shape;
}

/* The shape node id's text reads back as: a constant is written as one
 * number, a reduction over an axis drops it, m @ v with v written as a
 * vector is a vector, an elementwise op has its written operands'
 * broadcast; a name, a leaf or a call written out is its own shape. */
static Shape written_shape(Infix *p, NodeId id) {
    if (p->ws_known[id])
        return p->ws[id];
    const IrNode *n = node(p, id);
    Shape w = n->shape;
    if (name_of(p, id)) {
        /* written as its name: its own shape */
    } else if (n->op == OP_CONST) {
        w = (Shape){0};
    } else if (n->op == OP_SUM || n->op == OP_MAX || n->op == OP_MIN) {
        w.rank = 0;
        for (int i = 0; n->axis >= 0 && i < n->shape.rank; i++)
            if (i != n->axis)
                w.dim[w.rank++] = n->shape.dim[i];
    } else if (n->op == OP_MATMUL) {
        Shape l = operand_shape(p, id, 0), r = operand_shape(p, id, 1);
        w.rank = 0;
        if (l.rank != 1)
            w.dim[w.rank++] = n->shape.dim[0];
        if (r.rank != 1)
            w.dim[w.rank++] = n->shape.dim[1];
    } else if (op_info[n->op].cls == CLASS_ELEMWISE && n->op != OP_ONEHOT) {
        w = operand_shape(p, id, 0);
        if (op_info[n->op].arity == 2)
            w = broadcast_shape(w, operand_shape(p, id, 1));
    }
    p->ws[id] = w;
    p->ws_known[id] = true;
    return w;
}

static bool scalar_const(const Infix *p, NodeId id, double *v) {
    const IrNode *n = node(p, id);
    if (n->op != OP_CONST || n->shape.rank != 0)
        return false;
    *v = n->value;
    return true;
}

/* Counts the references to each node (as written) in the part that will
 * be written. */
static void count_uses(Infix *p, NodeId id) {
    if (p->uses[id]++ > 0 || name_of(p, id) || op_info[node(p, id)->op].cls == CLASS_LEAF)
        return;
    const IrNode *n = node(p, id);
    int arity = op_info[n->op].arity;
    if (n->op == OP_MUL && n->in[0] == n->in[1]) /* a*a is written a^2: one use */
        arity = 1;
    for (int k = 0; k < arity; k++)
        count_uses(p, arg(p, id, k));
}

/* The number of operations written out for node id (names and leaves are
 * one word), capped: only the comparison with SHARE_MIN matters. */
static int op_count(Infix *p, NodeId id) {
    if (name_of(p, id) || op_info[node(p, id)->op].cls == CLASS_LEAF)
        return 0;
    if (!p->ops[id]) {
        const IrNode *n = node(p, id);
        int count = 1;
        for (int k = 0; k < op_info[n->op].arity && count < SHARE_MIN; k++)
            count += op_count(p, arg(p, id, k));
        p->ops[id] = count + 1;
    }
    return p->ops[id] - 1;
}

static Text text_of(Infix *p, NodeId id);
static Text operand_text(Infix *p, NodeId id, int k);

static Text mk(Infix *p, int prec, const char *fmt, const char *x, const char *y) {
    return (Text){arena_printf(p->a, fmt, x, y), prec, false};
}

/* t as an operand that must bind at least as tightly as `need`. */
static const char *operand(Infix *p, Text t, int need) {
    return t.prec < need ? arena_printf(p->a, "(%s)", t.s) : t.s;
}

/* A constant in %g's six digits, unless they round a non-integer to an
 * integer: Keras' clip at 1 - 1e-7 written as 1 would read back as
 * log(1 - 1). Then as many digits as it takes to read back exactly. */
static const char *number(Infix *p, double v) {
    const char *s = arena_printf(p->a, "%g", v);
    double back = strtod(s, NULL);
    for (int digits = 7; back != v && back == floor(back) && digits <= 17; digits++) {
        s = arena_printf(p->a, "%.*g", digits, v);
        back = strtod(s, NULL);
    }
    return s;
}

/* A product as written: its scalar constant factors (and negations)
 * multiplied into one coefficient in front, the other factors in order.
 * Products and broadcasting are associative and commutative, so the
 * nested multiplications of a chain rule read as one. */
typedef struct Product {
    double coef;
    Text *factor; /* in the arena */
    int n, cap;
} Product;

static void gather(Infix *p, NodeId id, Product *pr);

static void add_factor(Infix *p, Product *pr, Text t) {
    pr->factor = arena_grow(p->a, pr->factor, pr->n, &pr->cap, sizeof *pr->factor, 8);
    pr->factor[pr->n++] = t;
}

/* Operand k of node id, into the product. */
static void gather_operand(Infix *p, NodeId id, int k, Product *pr) {
    if (operand_fits(p, id, k))
        gather(p, arg(p, id, k), pr);
    else
        add_factor(p, pr, operand_text(p, id, k));
}

static void gather(Infix *p, NodeId id, Product *pr) {
    const IrNode *n = node(p, id);
    double c;
    if (scalar_const(p, id, &c)) {
        pr->coef *= c;
    } else if (!opaque(p, id) && n->op == OP_MUL && n->in[0] != n->in[1]) {
        gather_operand(p, id, 0, pr);
        gather_operand(p, id, 1, pr);
    } else if (!opaque(p, id) && n->op == OP_NEG) {
        pr->coef = -pr->coef;
        gather_operand(p, id, 0, pr);
    } else {
        add_factor(p, pr, text_of(p, id));
    }
}

/* The product's text, its coefficient times scale. */
static Text product_text(Infix *p, const Product *pr, double scale) {
    double coef = pr->coef * scale;
    if (pr->n == 0)
        return (Text){number(p, coef), coef < 0 ? P_UNARY : P_ATOM, false};
    if (pr->n == 1 && coef == 1)
        return pr->factor[0];
    const char *body = operand(p, pr->factor[0], P_PRODUCT);
    for (int k = 1; k < pr->n; k++) {
        Text t = pr->factor[k];
        body = arena_printf(p->a, "%s*%s", body, t.product ? t.s : operand(p, t, P_POWER));
    }
    double c = coef < 0 ? -coef : coef;
    if (c != 1)
        body = arena_printf(p->a, "%s*%s", number(p, c), body);
    if (coef < 0)
        return (Text){arena_printf(p->a, "-%s", body), P_UNARY, false};
    return (Text){body, P_PRODUCT, true};
}

/* Is operand k of node id a product or negation to gather? */
static bool gathers(Infix *p, NodeId id, int k) {
    NodeId x = arg(p, id, k);
    const IrNode *n = node(p, x);
    return operand_fits(p, id, k) && !opaque(p, x) &&
           ((n->op == OP_MUL && n->in[0] != n->in[1]) || n->op == OP_NEG);
}

static Text call(Infix *p, const char *fn, Text x, const char *extra) {
    return (Text){arena_printf(p->a, "%s(%s%s)", fn, x.s, extra), P_ATOM, false};
}

/* Operand k of node id as written, reshaped where its text alone would not
 * read back as its value. */
static Text operand_text(Infix *p, NodeId id, int k) {
    Text t = text_of(p, arg(p, id, k));
    if (operand_fits(p, id, k))
        return t;
    char sb[96];
    const char *shape = shape_str(&node(p, node(p, id)->in[k])->shape, sb, sizeof sb);
    return (Text){arena_printf(p->a, "reshape(%s, %s)", t.s, shape), P_ATOM, false};
}

/* The node's own structure (not its name or temporary). */
static Text structure(Infix *p, NodeId id) {
    const IrNode *n = node(p, id);
    int arity = op_info[n->op].arity;
    NodeId a = arity > 0 ? arg(p, id, 0) : -1, b = arity > 1 ? arg(p, id, 1) : -1;
    Text ta = arity > 0 ? operand_text(p, id, 0) : (Text){0}, tb = arity > 1 ? operand_text(p, id, 1) : (Text){0};
    switch (n->op) {
    case OP_CONST:
        return (Text){number(p, n->value), n->value < 0 ? P_UNARY : P_ATOM, false};
    case OP_INPUT: case OP_LABEL: case OP_PARAM: case OP_STATE:
        return (Text){p->g->slots[n->slot].name, P_ATOM, false};
    case OP_ADD: {
        const char *l = operand(p, ta, P_SUM);
        if (gathers(p, id, 1)) { /* a + -x is a - x, a + x*-2 is a - 2*x */
            Product pr = {.coef = 1};
            gather(p, b, &pr);
            if (pr.coef < 0)
                return mk(p, P_SUM, "%s - %s", l, operand(p, product_text(p, &pr, -1), P_PRODUCT));
        }
        return mk(p, P_SUM, "%s + %s", l, operand(p, tb, P_SUM)); /* + is associative */
    }
    case OP_SUB: return mk(p, P_SUM, "%s - %s", operand(p, ta, P_SUM), operand(p, tb, P_PRODUCT));
    case OP_MUL: {
        if (a == b && operand_fits(p, id, 0))
            return mk(p, P_POWER, "%s^2", operand(p, ta, P_ATOM), NULL);
        Product pr = {.coef = 1};
        gather(p, id, &pr);
        return product_text(p, &pr, 1);
    }
    case OP_DIV: return mk(p, P_PRODUCT, "%s/%s", operand(p, ta, P_PRODUCT), operand(p, tb, P_POWER));
    case OP_POW: return mk(p, P_POWER, "%s^%s", operand(p, ta, P_ATOM), operand(p, tb, P_ATOM));
    case OP_MATMUL: return mk(p, P_PRODUCT, "%s @ %s", operand(p, ta, P_PRODUCT), operand(p, tb, P_POWER));
    case OP_NEG: return mk(p, P_UNARY, "-%s", operand(p, ta, P_PRODUCT), NULL);
    case OP_EXP:
        if (!opaque(p, a) && node(p, a)->op == OP_LOGSOFTMAX && operand_fits(p, id, 0))
            return call(p, "softmax", operand_text(p, a, 0), "");
        return call(p, "exp", ta, "");
    case OP_LOG: return call(p, "log", ta, "");
    case OP_RELU: return call(p, "relu", ta, "");
    case OP_STEP:
        if (!opaque(p, a) && node(p, a)->op == OP_RELU && operand_fits(p, id, 0))
            return call(p, "step", operand_text(p, a, 0), "");
        return call(p, "step", ta, "");
    case OP_SIGMOID: return call(p, "sigmoid", ta, "");
    case OP_TANH: return call(p, "tanh", ta, "");
    case OP_LOGSOFTMAX: return call(p, "log_softmax", ta, "");
    case OP_SQRT: return call(p, "sqrt", ta, "");
    case OP_ABS: return call(p, "abs", ta, "");
    case OP_SIGN: return call(p, "sign", ta, "");
    case OP_SIN: return call(p, "sin", ta, "");
    case OP_COS: return call(p, "cos", ta, "");
    case OP_FLOOR: return call(p, "floor", ta, "");
    case OP_LEAKY_RELU: return call(p, "leaky_relu", ta, arena_printf(p->a, ", alpha=%g", n->value));
    case OP_ELU: return call(p, "elu", ta, arena_printf(p->a, ", alpha=%g", n->value));
    case OP_EQ: return call(p, "eq", ta, arena_printf(p->a, ", %s", tb.s));
    case OP_MAXIMUM: case OP_MINIMUM: return call(p, op_info[n->op].name, ta, arena_printf(p->a, ", %s", tb.s));
    case OP_BCE_LOGITS: { /* as written: softplus(z) (lower_activation), or binary_crossentropy(sigmoid(z), y) */
        double c;
        if (scalar_const(p, b, &c) && c == 0)
            return call(p, "softplus", ta, "");
        return (Text){arena_printf(p->a, "binary_crossentropy(sigmoid(%s), %s)", ta.s, tb.s), P_ATOM, false};
    }
    case OP_MAX: case OP_MIN:
        return call(p, op_info[n->op].name, ta, n->axis < 0 ? "" : arena_printf(p->a, ", axis=%d", n->axis));
    case OP_CONCAT: return call(p, "concat", ta, arena_printf(p->a, ", %s, axis=%d", tb.s, n->axis));
    case OP_SLICE:
        return call(p, "slice", ta, arena_printf(p->a, ", axis=%d, start=%lld, size=%lld", n->axis, (long long)n->start,
                                                 (long long)n->shape.dim[n->axis]));
    case OP_TRANSPOSE: return call(p, "transpose", ta, "");
    IR_OPS_WINDOW(OP_CASE) { /* the gradients have no name in the language: their op's */
        const Window *w = &n->win;
        return call(p, op_info[n->op].name, ta,
                    arena_printf(p->a, "%s%s, size=[%d, %d], stride=[%d, %d], pad=[%d, %d]", tb.s ? ", " : "",
                                 tb.s ? tb.s : "", w->kh, w->kw, w->sh, w->sw, w->pt, w->pl));
    }
    case OP_RANDOM: return call(p, "random", ta, arena_printf(p->a, ", key=%.0f", n->value));
    case OP_ALLREDUCE: return call(p, "allreduce", ta, "");
    case OP_ONEHOT: return call(p, "onehot", ta, arena_printf(p->a, ", %lld", (long long)n->shape.dim[1]));
    case OP_SUM: return call(p, "sum", ta, n->axis < 0 ? "" : arena_printf(p->a, ", axis=%d", n->axis));
    case OP_RESHAPE: case OP_BROADCAST: {
        char sb[96];
        return call(p, n->op == OP_RESHAPE ? "reshape" : "broadcast", ta,
                    arena_printf(p->a, ", %s", shape_str(&n->shape, sb, sizeof sb)));
    }
    }
    unreachable();
}

static Text text_of(Infix *p, NodeId id) {
    const char *name = name_of(p, id);
    if (name)
        return (Text){name, P_ATOM, false};
    if (id != p->root && p->temp[id])
        return (Text){arena_printf(p->a, "t%d", p->temp[id]), P_ATOM, false};
    return structure(p, id);
}

const char *infix_expr(Arena *a, const Graph *g, NodeId root, const char *const *names, const char **where) {
    Infix p = {a, g, names, root, arena_array(a, (size_t)g->nnodes, sizeof(int)),
               arena_array(a, (size_t)g->nnodes, sizeof(int)), arena_array(a, (size_t)g->nnodes, sizeof(int)),
               arena_array(a, (size_t)g->nnodes, sizeof(Shape)), arena_array(a, (size_t)g->nnodes, sizeof(bool))};
    /* The root is seen through as an elementwise operand is, but for a
     * reshape that adds axes and is not broadcast: the axes NumPy drops
     * (sum(x, axis=0), m @ v) and a gradient repeated to its variable's
     * shape stay invisible, a value printed [[1, 2, 3]] is not written as
     * the vector it was reshaped from. */
    bool broadcast = false;
    for (NodeId cur = root; movement(g->nodes[cur].op);) {
        const IrNode *n = &g->nodes[cur];
        if (n->op == OP_RESHAPE && n->shape.rank > g->nodes[n->in[0]].shape.rank && !broadcast)
            break;
        broadcast |= n->op == OP_BROADCAST;
        cur = n->in[0];
        Shape w = written_shape(&p, cur);
        if (serves(NEED_BROADCAST, &w, &g->nodes[root].shape))
            p.root = cur;
    }
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
