/* ir.c — the tensor-level IR: an SSA DAG of nodes referred to by id.
 *
 * Every node is made by a constructor that first simplifies (constant
 * folding, algebraic identities) and then looks the node up in a hash table:
 * an identical node (same op, operands, shape and attributes) returns the
 * existing id. So CSE is free and the graph is always simplified; ids grow in
 * creation order, which is a topological order. Dead nodes are dropped by
 * ir_dce(), which also gives the canonical numbering.
 */
#include "nnc.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

const OpInfo op_info[OP_COUNT] = {
#define X(name, text, arity, cls, facts, libm)                                                                \
    [OP_##name] = {text, arity, CLASS_##cls, (facts) & OPF_ELEM, (facts) & OPF_ROW, (facts) & OPF_EPILOGUE,   \
                   (facts) & OPF_ZERO_GRAD, (facts) & OPF_ALPHA, (facts) & OPF_AXIS, (facts) & OPF_INDEX,       \
                   (facts) & OPF_GEMM, libm},
    IR_OPS(X)
#undef X
};

/* ---------------------------------------------------------------- graph */

Graph *ir_new(Arena *a, DType dt) {
    Graph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    g->dtype = dt;
    return g;
}

int ir_add_slot(Graph *g, Slot s) {
    g->slots = arena_grow(g->arena, g->slots, g->nslots, &g->slot_cap, sizeof *g->slots, 16);
    g->slots[g->nslots] = s;
    return g->nslots++;
}

void ir_add_output(Graph *g, NodeId node, int slot) {
    g->outputs = arena_grow(g->arena, g->outputs, g->noutputs, &g->out_cap, sizeof *g->outputs, 16);
    g->outputs[g->noutputs++] = (IrOutput){node, slot};
}

static uint64_t node_hash(const IrNode *n) {
    uint64_t h = 1469598103934665603ull;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
    MIX(n->op);
    MIX((uint32_t)n->in[0]);
    MIX((uint32_t)n->in[1]);
    MIX(n->shape.rank);
    for (int i = 0; i < n->shape.rank; i++)
        MIX(n->shape.dim[i]);
    uint64_t bits;
    memcpy(&bits, &n->value, sizeof bits);
    MIX(bits);
    MIX((uint32_t)n->axis);
    MIX((uint32_t)n->slot);
    MIX((uint64_t)n->start);
    MIX(n->batch_axes);
    MIX((uint8_t)n->batch_pow);
    MIX(((uint64_t)(uint32_t)n->win.kh << 32) | (uint32_t)n->win.kw);
    MIX(((uint64_t)(uint32_t)n->win.sh << 32) | (uint32_t)n->win.sw);
    MIX(((uint64_t)(uint32_t)n->win.pt << 32) | (uint32_t)n->win.pl);
    MIX((uint64_t)n->win.oh);
    MIX((uint64_t)n->win.ow);
#undef MIX
    return h ^ (h >> 29); /* the table uses the low bits: mix the high ones in */
}

static bool node_same(const IrNode *a, const IrNode *b) {
    return a->op == b->op && a->in[0] == b->in[0] && a->in[1] == b->in[1] &&
           shape_eq(&a->shape, &b->shape) && memcmp(&a->value, &b->value, sizeof a->value) == 0 &&
           a->axis == b->axis && a->slot == b->slot && a->start == b->start && a->batch_axes == b->batch_axes &&
           a->batch_pow == b->batch_pow && !memcmp(&a->win, &b->win, sizeof a->win);
}

static void rehash(Graph *g) {
    g->hcap = g->hcap ? 2 * g->hcap : 256;
    g->hash = arena_array(g->arena, (size_t)g->hcap, sizeof *g->hash);
    for (int i = 0; i < g->nnodes; i++) {
        size_t h = node_hash(&g->nodes[i]) & (size_t)(g->hcap - 1);
        while (g->hash[h])
            h = (h + 1) & (size_t)(g->hcap - 1);
        g->hash[h] = i + 1;
    }
}

/* The hash-consing point: returns the id of an identical node, or adds it. */
static NodeId intern(Graph *g, IrNode n) {
    if (2 * (g->nnodes + 1) > g->hcap)
        rehash(g);
    size_t h = node_hash(&n) & (size_t)(g->hcap - 1);
    while (g->hash[h]) {
        NodeId id = g->hash[h] - 1;
        if (node_same(&g->nodes[id], &n))
            return id;
        h = (h + 1) & (size_t)(g->hcap - 1);
    }
    g->nodes = arena_grow(g->arena, g->nodes, g->nnodes, &g->cap, sizeof *g->nodes, 64);
    g->nodes[g->nnodes] = n;
    g->hash[h] = g->nnodes + 1;
    return g->nnodes++;
}

static IrNode node_of(Op op, NodeId a, NodeId b, Shape s, uint8_t batch_axes, Loc loc) {
    return (IrNode){.op = op, .in = {a, b}, .shape = s, .batch_axes = batch_axes, .loc = loc, .slot = -1};
}

static const IrNode *N(const Graph *g, NodeId id) {
    if (id < 0 || id >= g->nnodes)
        die("ir: bad node id %d", id);
    return &g->nodes[id];
}

/* Node a's batch axes as axes of a result of rank r, right-aligned as
 * NumPy broadcasting aligns shapes. */
static uint8_t aligned_axes(const Graph *g, NodeId a, int r) {
    const IrNode *x = N(g, a);
    return (uint8_t)(x->batch_axes << (r - x->shape.rank));
}

/* Every element = v, proportional to n^pow where n is the batch size (v at
 * the full batch), with these batch axes. */
static NodeId konst(Graph *g, double v, int pow, Shape s, uint8_t batch_axes, Loc loc) {
    IrNode n = node_of(OP_CONST, -1, -1, s, batch_axes, loc);
    n.value = v == 0 ? 0.0 : v; /* one zero: -0.0 and 0.0 fold to the same node */
    n.batch_pow = v == 0 ? 0 : (int8_t)pow; /* zero at every batch size */
    return intern(g, n);
}

/* A constant of node x's batch-dependence (value v) with a result's shape. */
static NodeId konst_of(Graph *g, const IrNode *x, double v, Shape s, uint8_t batch_axes, Loc loc) {
    return konst(g, v, x->batch_pow, s, batch_axes, loc);
}

uint8_t ir_batch_axes(const Graph *g, NodeId x) { return N(g, x)->batch_axes; }

int ir_batch_pow(const Graph *g, NodeId x) { return N(g, x)->batch_pow; }

bool ir_is_const(const Graph *g, NodeId n, double v) {
    const IrNode *x = N(g, n);
    return x->op == OP_CONST && x->value == v;
}

static bool is_const(const Graph *g, NodeId n) { return N(g, n)->op == OP_CONST; }

/* The batch axes of x reduced over axis (-1: all): that axis is one element. */
static uint8_t reduced_axes(const IrNode *x, int axis) {
    return axis < 0 ? 0 : (uint8_t)(x->batch_axes & ~(1u << axis));
}

/* The batch axis of x, reshaped to s: the axis of s with as many elements
 * before it and of the same size; or, for a leading batch axis, the
 * leading axis of s if it holds whole samples (a batch axis merged with the
 * axes after it, [n, h, w, c] to [n h w, c], or split back): a batch axis
 * of B m elements at the full batch B has n m for n samples. */
static uint8_t reshaped_axes(const Graph *g, const IrNode *x, const Shape *s) {
    if (!x->batch_axes)
        return 0;
    int d = __builtin_ctz(x->batch_axes);
    if (x->batch_axes != 1u << d)
        die("ir_reshape: more than one batch axis");
    int64_t lead = 1, prefix = 1; /* elements before x's batch axis; before axis i of s */
    for (int i = 0; i < d; i++)
        lead *= x->shape.dim[i];
    for (int i = 0; i < s->rank; prefix *= s->dim[i], i++)
        if (prefix == lead && s->dim[i] == x->shape.dim[d])
            return (uint8_t)(1u << i);
    if (d == 0 && s->rank > 0 && g->batch > 1 && s->dim[0] % g->batch == 0)
        return 1;
    die("ir_reshape: the batch axis would be split or merged");
}

static NodeId broadcast(Graph *g, NodeId a, Shape s, uint8_t axes, Loc loc);

/* n as base * c for a scalar constant c (c = 1 when n is not scaled). */
static NodeId scaled_term(const Graph *g, NodeId n, double *c) {
    const IrNode *x = N(g, n);
    if (x->op == OP_MUL && is_const(g, x->in[1]) && N(g, x->in[1])->shape.rank == 0) {
        *c = N(g, x->in[1])->value;
        return x->in[0];
    }
    *c = 1;
    return n;
}

/* The batch-dependence (power of n) of n's constant factor, as scaled_term finds it. */
static int scaled_pow(const Graph *g, NodeId n) {
    double c;
    return scaled_term(g, n, &c) == n ? 0 : N(g, N(g, n)->in[1])->batch_pow;
}

/* ---------------------------------------------------------------- shapes */

int64_t shape_elems(const Shape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++)
        n *= s->dim[i];
    return n;
}

bool shape_eq(const Shape *a, const Shape *b) {
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

const char *dims_str(const int64_t *dims, int rank, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%" PRId64, i ? ", " : "", dims[i]);
    if (len < n)
        snprintf(buf + len, n - len, "]");
    return buf;
}

const char *shape_str(const Shape *s, char *buf, size_t n) { return dims_str(s->dim, s->rank, buf, n); }

bool shape_broadcast(const Shape *a, const Shape *b, Shape *out) {
    int r = a->rank > b->rank ? a->rank : b->rank;
    Shape s = {.rank = r};
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t da = ia >= 0 ? a->dim[ia] : 1, db = ib >= 0 ? b->dim[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        s.dim[i] = da == 1 ? db : da;
    }
    *out = s;
    return true;
}

/* ---------------------------------------------------------------- leaves */

unsigned dtype_bytes(DType dt) { return dt == DT_F64 ? 8 : 4; }

bool ir_is_slot_leaf(const IrNode *n) { return op_info[n->op].cls == CLASS_LEAF && n->op != OP_CONST; }

NodeId ir_leaf(Graph *g, Op op, int slot, Shape s, Loc loc) {
    if (op_info[op].cls != CLASS_LEAF || op == OP_CONST)
        die("ir_leaf: %s is not a slot leaf", op_info[op].name);
    /* An input's and a label's first axis holds the batch's samples (of
     * one sample, every batch is full: nothing varies). */
    bool batched = (op == OP_INPUT || op == OP_LABEL) && g->batch > 1;
    IrNode n = node_of(op, -1, -1, s, batched ? 1 : 0, loc);
    n.slot = slot;
    return intern(g, n);
}

NodeId ir_const(Graph *g, double v, Shape s, Loc loc) { return konst(g, v, 0, s, 0, loc); }

NodeId ir_const_batch(Graph *g, double v, int pow, Loc loc) {
    return konst(g, v, g->batch > 1 ? pow : 0, (Shape){0}, 0, loc);
}

NodeId ir_const_axes(Graph *g, double v, Shape s, uint8_t batch_axes, Loc loc) {
    return konst(g, v, 0, s, batch_axes, loc);
}

/* ---------------------------------------------------------------- elementwise */

/* The value of elementwise op on constants (b: the second operand, if any). */
static double fold(Op op, double a, double b, double alpha) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return pow(a, b);
    case OP_EQ: return a == b;
    case OP_MAXIMUM: return a > b ? a : b;
    case OP_MINIMUM: return a < b ? a : b;
    case OP_BCE_LOGITS: return fmax(a, 0) - a * b + log1p(exp(-fabs(a)));
    case OP_NEG: return -a;
    case OP_EXP: return exp(a);
    case OP_LOG: return log(a);
    case OP_RELU: return a > 0 ? a : 0;
    case OP_STEP: return a > 0 ? 1 : 0;
    case OP_SIGMOID: return 1 / (1 + exp(-a));
    case OP_TANH: return tanh(a);
    case OP_SQRT: return sqrt(a);
    case OP_ABS: return fabs(a);
    case OP_SIGN: return a > 0 ? 1 : a < 0 ? -1 : 0;
    case OP_SIN: return sin(a);
    case OP_COS: return cos(a);
    case OP_FLOOR: return floor(a);
    case OP_LEAKY_RELU: return a > 0 ? a : alpha * a;
    case OP_ELU: return a > 0 ? a : alpha * expm1(a);
    case OP_ONEHOT: /* ir_onehot folds nothing: its value depends on the index */
    IR_OPS_LEAF(OP_CASE) IR_OPS_REDUCE(OP_CASE) IR_OPS_MATMUL(OP_CASE) IR_OPS_MOVEMENT(OP_CASE)
    IR_OPS_WINDOW(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
        break;
    }
    die("fold: %s", op_info[op].name);
}

/* leaky_relu and elu: their alpha is the node's value. */
NodeId ir_unary_alpha(Graph *g, Op op, NodeId a, double alpha, Loc loc) {
    if (!op_info[op].alpha)
        die("ir_unary_alpha: %s", op_info[op].name);
    const IrNode *x = N(g, a);
    if (x->op == OP_CONST && !x->batch_pow)
        return konst(g, fold(op, x->value, 0, alpha), 0, x->shape, x->batch_axes, loc);
    IrNode n = node_of(op, a, -1, x->shape, x->batch_axes, loc);
    n.value = alpha;
    return intern(g, n);
}

NodeId ir_unary(Graph *g, Op op, NodeId a, Loc loc) {
    if (op_info[op].cls != CLASS_ELEMWISE || op_info[op].arity != 1 || op_info[op].index || op_info[op].alpha)
        die("ir_unary: %s", op_info[op].name);
    const IrNode *x = N(g, a);
    if (x->op == OP_CONST && op == OP_NEG) /* -(c n^p) = (-c) n^p */
        return konst_of(g, x, -x->value, x->shape, x->batch_axes, loc);
    if (x->op == OP_CONST && !x->batch_pow) /* of a constant that depends on the batch size, kept */
        return konst(g, fold(op, x->value, 0, 0), 0, x->shape, x->batch_axes, loc);
    if ((op == OP_ABS || op == OP_SIGN) && x->op == OP_NEG) /* |-a| = |a|; sign likewise, negated */
        return op == OP_ABS ? ir_unary(g, op, x->in[0], loc) : ir_unary(g, OP_NEG, ir_unary(g, op, x->in[0], loc), loc);
    if (op == OP_NEG && x->op == OP_NEG) /* --a = a */
        return x->in[0];
    if (op == OP_NEG && x->op == OP_SUB) /* -(a - b) = b - a */
        return ir_binary(g, OP_SUB, x->in[1], x->in[0], loc);
    if (op == OP_NEG && x->op == OP_MUL && is_const(g, x->in[1])) /* -(a * c) = a * -c */
        return ir_binary(g, OP_MUL, x->in[0], ir_unary(g, OP_NEG, x->in[1], loc), loc);
    if (op == OP_RELU && x->op == OP_RELU) /* relu(relu a) = relu a (step(relu a) stays: see autodiff.c) */
        return a;
    return intern(g, node_of(op, a, -1, x->shape, x->batch_axes, loc));
}

/* The constant a op b of constants, if it is one c n^p: a product or
 * quotient, or a sum of two of one p (or with a zero); false if it depends
 * on the batch size otherwise (the node is kept). */
static bool fold_consts(const IrNode *x, const IrNode *y, Op op, double *v, int *pow) {
    *v = fold(op, x->value, y->value, 0);
    *pow = op == OP_MUL ? x->batch_pow + y->batch_pow : op == OP_DIV ? x->batch_pow - y->batch_pow : 0;
    if (op == OP_MUL || op == OP_DIV)
        return *pow >= INT8_MIN && *pow <= INT8_MAX;
    if ((op == OP_ADD || op == OP_SUB) && (x->batch_pow == y->batch_pow || x->value == 0 || y->value == 0)) {
        *pow = x->value == 0 ? y->batch_pow : x->batch_pow;
        return true;
    }
    return !x->batch_pow && !y->batch_pow;
}

NodeId ir_binary(Graph *g, Op op, NodeId a, NodeId b, Loc loc) {
    if (op_info[op].cls != CLASS_ELEMWISE || op_info[op].arity != 2)
        die("ir_binary: %s", op_info[op].name);
    Shape s;
    if (!shape_broadcast(&N(g, a)->shape, &N(g, b)->shape, &s)) {
        char sa[64], sb[64];
        die("ir_binary: %s of %s and %s", op_info[op].name, shape_str(&N(g, a)->shape, sa, sizeof sa),
            shape_str(&N(g, b)->shape, sb, sizeof sb));
    }
    uint8_t axes = aligned_axes(g, a, s.rank) | aligned_axes(g, b, s.rank);
    bool ca = is_const(g, a), cb = is_const(g, b);
    double v;
    int pow;
    if (ca && cb && fold_consts(N(g, a), N(g, b), op, &v, &pow))
        return konst(g, v, pow, s, axes, loc);
    /* A constant that does not widen the result is written as a scalar, so
     * constants meet and fold whatever shape they were made with. */
    if (cb && N(g, b)->shape.rank && shape_eq(&N(g, a)->shape, &s) && aligned_axes(g, a, s.rank) == axes)
        b = konst_of(g, N(g, b), N(g, b)->value, (Shape){0}, 0, loc);
    if (ca && N(g, a)->shape.rank && shape_eq(&N(g, b)->shape, &s) && aligned_axes(g, b, s.rank) == axes)
        a = konst_of(g, N(g, a), N(g, a)->value, (Shape){0}, 0, loc);
    /* Constants go on the right of commutative ops, so a + 1 and 1 + a meet. */
    if ((op == OP_ADD || op == OP_MUL) && ca) {
        NodeId t = a;
        a = b;
        b = t;
        ca = false;
        cb = true;
    }
    const IrNode *x = N(g, a), *y = N(g, b);
    /* An identity may only return an operand that already has the result's shape. */
    bool a_full = shape_eq(&x->shape, &s) && aligned_axes(g, a, s.rank) == axes;
    bool b_full = shape_eq(&y->shape, &s) && aligned_axes(g, b, s.rank) == axes;
    switch (op) {
    case OP_ADD:
        if (cb && y->value == 0 && a_full) /* a + 0 = a */
            return a;
        if (y->op == OP_NEG) /* a + -b = a - b */
            return ir_binary(g, OP_SUB, a, y->in[0], loc);
        if (x->op == OP_NEG) /* -a + b = b - a */
            return ir_binary(g, OP_SUB, b, x->in[0], loc);
        if (a == b) /* a + a = 2 a */
            return ir_binary(g, OP_MUL, a, ir_const(g, 2, (Shape){0}, loc), loc);
        double c1, c2;
        NodeId t1 = scaled_term(g, a, &c1), t2 = scaled_term(g, b, &c2);
        if (t1 == t2 && scaled_pow(g, a) == scaled_pow(g, b)) /* a c1 + a c2 = a (c1 + c2): like terms, as
                                                                 autodiff's sums make them */
            return ir_binary(g, OP_MUL, t1, konst(g, c1 + c2, scaled_pow(g, a), (Shape){0}, 0, loc), loc);
        break;
    case OP_SUB:
        if (cb && y->value == 0 && a_full) /* a - 0 = a */
            return a;
        if (ca && x->value == 0 && b_full) /* 0 - b = -b */
            return ir_unary(g, OP_NEG, b, loc);
        if (a == b) /* a - a = 0 */
            return konst(g, 0, 0, s, axes, loc);
        if (y->op == OP_NEG) /* a - -b = a + b */
            return ir_binary(g, OP_ADD, a, y->in[0], loc);
        break;
    case OP_MUL:
        if (cb && y->value == 1 && !y->batch_pow) /* a * 1 = a, repeated to the result's shape */
            return broadcast(g, a, s, axes, loc);
        if (cb && y->value == 0) /* a * 0 = 0 (the IR assumes finite values here) */
            return konst(g, 0, 0, s, axes, loc);
        if (cb && y->value == -1 && !y->batch_pow && a_full) /* a * -1 = -a */
            return ir_unary(g, OP_NEG, a, loc);
        if (x->op == OP_NEG && y->op == OP_NEG) /* -a * -b = a * b */
            return ir_binary(g, OP_MUL, x->in[0], y->in[0], loc);
        if (cb && y->shape.rank == 0 && x->op == OP_MUL && is_const(g, x->in[1]) &&
            N(g, x->in[1])->shape.rank == 0) /* (a * c1) * c2 = a * (c1 c2), scalars */
            return ir_binary(g, OP_MUL, x->in[0], ir_binary(g, OP_MUL, x->in[1], b, loc), loc);
        if (cb && x->op == OP_NEG) /* -a * c = a * -c */
            return ir_binary(g, OP_MUL, x->in[0], ir_unary(g, OP_NEG, b, loc), loc);
        break;
    case OP_DIV:
        if (cb && y->value == 1 && !y->batch_pow && a_full) /* a / 1 = a */
            return a;
        if (ca && x->value == 0) /* 0 / b = 0 */
            return konst(g, 0, 0, s, axes, loc);
        if (cb && y->value != 0) /* a / c = a * (1/c): a multiply is cheaper */
            return ir_binary(g, OP_MUL, a, konst(g, 1 / y->value, -y->batch_pow, y->shape, y->batch_axes, loc), loc);
        break;
    case OP_EQ:
        if (a == b) /* a == a (the IR assumes finite values here) */
            return konst(g, 1, 0, s, axes, loc);
        break;
    case OP_POW:
        if (cb && y->value == 1 && !y->batch_pow && a_full) /* a^1 = a */
            return a;
        if (cb && y->value == 0) /* a^0 = 1 */
            return konst(g, 1, 0, s, axes, loc);
        if (cb && y->value == 2 && !y->batch_pow && a_full) /* a^2 = a a: exact, and its derivative reads 2 a */
            return ir_binary(g, OP_MUL, a, a, loc);
        break;
    case OP_MAXIMUM: case OP_MINIMUM: case OP_BCE_LOGITS: /* no identities */
        break;
    IR_OPS_LEAF(OP_CASE) IR_OPS_UNARY(OP_CASE) IR_OPS_REDUCE(OP_CASE) IR_OPS_MATMUL(OP_CASE) IR_OPS_MOVEMENT(OP_CASE)
    IR_OPS_WINDOW(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
        unreachable(); /* not elementwise of two operands: died above */
    }
    return intern(g, node_of(op, a, b, s, axes, loc));
}

/* r[i, j] = (labels[i] == j): labels [n] -> [n, classes]. */
NodeId ir_onehot(Graph *g, NodeId labels, int64_t classes, Loc loc) {
    const IrNode *x = N(g, labels);
    if (x->shape.rank != 1)
        die("ir_onehot: labels of rank %d", x->shape.rank);
    IrNode n = node_of(OP_ONEHOT, labels, -1, (Shape){2, {x->shape.dim[0], classes}}, x->batch_axes, loc);
    return intern(g, n);
}

/* ---------------------------------------------------------------- reductions */

NodeId ir_sum(Graph *g, NodeId a, int axis, Loc loc) {
    const IrNode *x = N(g, a);
    if (x->shape.rank == 0) /* one element */
        return a;
    Shape s = x->shape;
    if (axis < 0) {
        s = (Shape){0};
    } else {
        if (axis >= s.rank)
            die("ir_sum: axis %d of rank %d", axis, s.rank);
        if (s.dim[axis] == 1) /* summing one element */
            return a;
        s.dim[axis] = 1;
    }
    uint8_t axes = reduced_axes(x, axis);
    if (x->op == OP_CONST) { /* c n^p summed over k batch axes: (c B^k) n^(p + k) */
        double count = (double)shape_elems(&x->shape) / (double)shape_elems(&s);
        return konst(g, x->value * count, x->batch_pow + __builtin_popcount(x->batch_axes & ~axes), s, axes, loc);
    }
    IrNode n = node_of(OP_SUM, a, -1, s, axes, loc);
    n.axis = axis;
    return intern(g, n);
}

/* r = max (or min) of a over axis (kept, size 1) or over all (axis -1). */
NodeId ir_extreme(Graph *g, Op op, NodeId a, int axis, Loc loc) {
    if (op != OP_MAX && op != OP_MIN)
        die("ir_extreme: %s", op_info[op].name);
    const IrNode *x = N(g, a);
    Shape s = x->shape;
    if (axis < 0) {
        s = (Shape){0};
    } else {
        if (axis >= s.rank)
            die("ir_extreme: axis %d of rank %d", axis, s.rank);
        if (s.dim[axis] == 1) /* one element */
            return a;
        s.dim[axis] = 1;
    }
    uint8_t axes = reduced_axes(x, axis);
    if (x->op == OP_CONST)
        return konst_of(g, x, x->value, s, axes, loc);
    IrNode n = node_of(op, a, -1, s, axes, loc);
    n.axis = axis;
    return intern(g, n);
}

/* r = a - max(a) - log(sum(exp(a - max(a)))) along the last axis. */
NodeId ir_logsoftmax(Graph *g, NodeId a, Loc loc) {
    const IrNode *x = N(g, a);
    if (x->shape.rank < 1)
        die("ir_logsoftmax: scalar operand");
    IrNode n = node_of(OP_LOGSOFTMAX, a, -1, x->shape, x->batch_axes, loc);
    n.axis = x->shape.rank - 1;
    return intern(g, n);
}

/* ---------------------------------------------------------------- linear algebra, movement */

NodeId ir_matmul(Graph *g, NodeId a, NodeId b, Loc loc) {
    const IrNode *x = N(g, a), *y = N(g, b);
    if (x->shape.rank != 2 || y->shape.rank != 2 || x->shape.dim[1] != y->shape.dim[0]) {
        char sa[64], sb[64];
        die("ir_matmul: %s @ %s", shape_str(&x->shape, sa, sizeof sa), shape_str(&y->shape, sb, sizeof sb));
    }
    Shape s = {2, {x->shape.dim[0], y->shape.dim[1]}};
    uint8_t axes = (x->batch_axes & 1) | (y->batch_axes & 2); /* rows from a, columns from b */
    if (ir_is_const(g, a, 0) || ir_is_const(g, b, 0))
        return konst(g, 0, 0, s, axes, loc);
    if (x->shape.dim[1] == 1) /* an outer product: [m, 1] @ [1, n] = [m, 1] * [1, n] */
        return ir_binary(g, OP_MUL, a, b, loc);
    if (y->op == OP_CONST) /* A @ c = (sum_k A[i, k]) c, as a gradient of a sum makes it */
        return ir_binary(g, OP_MUL, ir_sum(g, a, 1, loc), konst_of(g, y, y->value, s, axes, loc), loc);
    if (x->op == OP_CONST) /* c @ B = c (sum_k B[k, j]) */
        return ir_binary(g, OP_MUL, ir_sum(g, b, 0, loc), konst_of(g, x, x->value, s, axes, loc), loc);
    return intern(g, node_of(OP_MATMUL, a, b, s, axes, loc));
}

NodeId ir_transpose(Graph *g, NodeId a, Loc loc) {
    const IrNode *x = N(g, a);
    if (x->shape.rank != 2)
        die("ir_transpose: rank %d", x->shape.rank);
    Shape s = {2, {x->shape.dim[1], x->shape.dim[0]}};
    uint8_t axes = (uint8_t)((x->batch_axes & 1) << 1 | (x->batch_axes >> 1 & 1));
    if (x->op == OP_TRANSPOSE) /* (a^T)^T = a */
        return x->in[0];
    if (x->op == OP_CONST)
        return konst_of(g, x, x->value, s, axes, loc);
    return intern(g, node_of(OP_TRANSPOSE, a, -1, s, axes, loc));
}

NodeId ir_reshape(Graph *g, NodeId a, Shape s, Loc loc) {
    const IrNode *x = N(g, a);
    if (shape_elems(&x->shape) != shape_elems(&s))
        die("ir_reshape: element counts differ");
    if (shape_eq(&x->shape, &s))
        return a;
    uint8_t axes = reshaped_axes(g, x, &s);
    if (x->op == OP_CONST)
        return konst_of(g, x, x->value, s, axes, loc);
    if (x->op == OP_RESHAPE) /* reshape(reshape a) = reshape a */
        return ir_reshape(g, x->in[0], s, loc);
    return intern(g, node_of(OP_RESHAPE, a, -1, s, axes, loc));
}

static NodeId broadcast(Graph *g, NodeId a, Shape s, uint8_t axes, Loc loc) {
    const IrNode *x = N(g, a);
    Shape r;
    if (!shape_broadcast(&x->shape, &s, &r) || !shape_eq(&r, &s) || (aligned_axes(g, a, s.rank) & ~axes))
        die("ir_broadcast: operand does not broadcast");
    if (shape_eq(&x->shape, &s) && aligned_axes(g, a, s.rank) == axes)
        return a;
    if (x->op == OP_CONST)
        return konst_of(g, x, x->value, s, axes, loc);
    return intern(g, node_of(OP_BROADCAST, a, -1, s, axes, loc));
}

NodeId ir_broadcast(Graph *g, NodeId a, NodeId like, Loc loc) {
    return broadcast(g, a, N(g, like)->shape, N(g, like)->batch_axes, loc);
}

/* a then b along axis: their other dimensions are equal. */
NodeId ir_concat(Graph *g, NodeId a, NodeId b, int axis, Loc loc) {
    const IrNode *x = N(g, a), *y = N(g, b);
    Shape s = x->shape;
    bool ok = x->shape.rank == y->shape.rank && axis >= 0 && axis < s.rank;
    for (int i = 0; ok && i < s.rank; i++)
        ok = i == axis || x->shape.dim[i] == y->shape.dim[i];
    if (!ok)
        die("ir_concat: operands do not fit along axis %d", axis);
    s.dim[axis] += y->shape.dim[axis];
    if (x->batch_axes != y->batch_axes || (x->batch_axes >> axis & 1))
        die("ir_concat: operands of other batch axes, or along one");
    if (x->op == OP_CONST && y->op == OP_CONST && x->value == y->value && x->batch_pow == y->batch_pow)
        return konst_of(g, x, x->value, s, x->batch_axes, loc);
    IrNode n = node_of(OP_CONCAT, a, b, s, x->batch_axes, loc);
    n.axis = axis;
    return intern(g, n);
}

/* a[.., start : start + size, ..] on axis. */
NodeId ir_slice(Graph *g, NodeId a, int axis, int64_t start, int64_t size, Loc loc) {
    const IrNode *x = N(g, a);
    if (axis < 0 || axis >= x->shape.rank || start < 0 || size < 1 || start > x->shape.dim[axis] - size)
        die("ir_slice: [%lld, +%lld) on axis %d", (long long)start, (long long)size, axis);
    if (start == 0 && size == x->shape.dim[axis])
        return a;
    Shape s = x->shape;
    s.dim[axis] = size;
    if (x->batch_axes >> axis & 1)
        die("ir_slice: along the batch axis");
    if (x->op == OP_CONST)
        return konst_of(g, x, x->value, s, x->batch_axes, loc);
    if (x->op == OP_CONCAT && x->axis == axis) { /* a slice of one side of a concat */
        int64_t la = N(g, x->in[0])->shape.dim[axis];
        if (start + size <= la)
            return ir_slice(g, x->in[0], axis, start, size, loc);
        if (start >= la)
            return ir_slice(g, x->in[1], axis, start - la, size, loc);
    }
    IrNode n = node_of(OP_SLICE, a, -1, s, x->batch_axes, loc);
    n.axis = axis;
    n.start = start;
    return intern(g, n);
}

/* ---------------------------------------------------------------- windows */

int64_t window_out(int64_t n, int64_t k, int64_t s, bool same, int64_t *before) {
    *before = 0;
    if (!same)
        return n < k ? 0 : (n - k) / s + 1;
    int64_t out = (n + s - 1) / s, total = (out - 1) * s + k - n;
    *before = total > 0 ? total / 2 : 0; /* TensorFlow's: the odd element after */
    return out;
}

/* The window of size kh x kw, stride sh x sw over the middle axes of x
 * [n, H, W, C]; *s is the result's shape with C channels. */
static Window window_over(const IrNode *x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, bool same,
                          int64_t channels, Shape *s) {
    if (x->shape.rank != 4 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || kh > INT32_MAX || kw > INT32_MAX ||
        sh > INT32_MAX || sw > INT32_MAX)
        die("ir: a window %lldx%lld stride %lldx%lld over a rank-%d operand", (long long)kh, (long long)kw,
            (long long)sh, (long long)sw, x->shape.rank);
    int64_t pt, pl;
    int64_t oh = window_out(x->shape.dim[1], kh, sh, same, &pt), ow = window_out(x->shape.dim[2], kw, sw, same, &pl);
    if (oh < 1 || ow < 1)
        die("ir: a window %lldx%lld leaves nothing", (long long)kh, (long long)kw);
    *s = (Shape){4, {x->shape.dim[0], oh, ow, channels}};
    return (Window){(int32_t)kh, (int32_t)kw, (int32_t)sh, (int32_t)sw, (int32_t)pt, (int32_t)pl, oh, ow};
}

NodeId ir_window(Graph *g, Op op, NodeId a, NodeId b, Window w, Shape s, uint8_t batch_axes, Loc loc) {
    if (op_info[op].cls != CLASS_WINDOW || (b < 0) != (op_info[op].arity == 1))
        die("ir_window: %s", op_info[op].name);
    N(g, a);
    if (b >= 0)
        N(g, b);
    IrNode n = node_of(op, a, b, s, batch_axes, loc);
    n.win = w;
    return intern(g, n);
}

NodeId ir_conv2d(Graph *g, NodeId x, NodeId k, int64_t sh, int64_t sw, bool same, Loc loc) {
    const IrNode *a = N(g, x), *f = N(g, k);
    if (f->shape.rank != 4 || a->shape.rank != 4 || a->shape.dim[3] != f->shape.dim[2] || f->batch_axes)
        die("ir_conv2d: a filter of rank %d does not fit", f->shape.rank);
    Shape s;
    Window w = window_over(a, f->shape.dim[0], f->shape.dim[1], sh, sw, same, f->shape.dim[3], &s);
    return ir_window(g, OP_CONV2D, x, k, w, s, a->batch_axes, loc);
}

NodeId ir_pool(Graph *g, Op op, NodeId x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, bool same, Loc loc) {
    if (op != OP_MAXPOOL && op != OP_AVGPOOL)
        die("ir_pool: %s", op_info[op].name);
    const IrNode *a = N(g, x);
    Shape s;
    Window w = window_over(a, kh, kw, sh, sw, same, a->shape.dim[3], &s);
    return ir_window(g, op, x, -1, w, s, a->batch_axes, loc);
}

NodeId ir_random(Graph *g, NodeId counter, uint32_t key, NodeId like, Loc loc) {
    const IrNode *c = N(g, counter), *l = N(g, like);
    if (c->shape.rank != 0 || c->batch_pow)
        die("ir_random: the counter is not a scalar");
    IrNode n = node_of(OP_RANDOM, counter, -1, l->shape, l->batch_axes, loc);
    n.value = key;
    n.start = g->global_samples && (l->batch_axes & 1);
    return intern(g, n);
}

NodeId ir_allreduce(Graph *g, NodeId a, Loc loc) {
    const IrNode *x = N(g, a);
    if (x->batch_axes || x->batch_pow)
        die("ir_allreduce: the operand varies with the batch size");
    if (x->op == OP_CONST) /* the same on every rank, and the shares add up to one */
        return a;
    return intern(g, node_of(OP_ALLREDUCE, a, -1, x->shape, 0, loc));
}

/* ---------------------------------------------------------------- copies */

NodeId ir_copy(Graph *g, const IrNode *x, const NodeId *map) {
    IrNode n = *x;
    for (int k = 0; k < op_info[n.op].arity; k++)
        n.in[k] = map[n.in[k]];
    return intern(g, n);
}

NodeId ir_copy_apart(Graph *g, const IrNode *x, const NodeId *map) {
    IrNode n = *x;
    for (int k = 0; map && k < op_info[n.op].arity; k++)
        n.in[k] = map[n.in[k]];
    int before = g->nnodes;
    NodeId id = intern(g, n);
    if (g->nnodes > before)
        return id;
    /* An identical node is there: this one is added beside it, not entered
     * in the table, which goes on finding the first. */
    g->nodes = arena_grow(g->arena, g->nodes, g->nnodes, &g->cap, sizeof *g->nodes, 64);
    g->nodes[g->nnodes] = n;
    return g->nnodes++;
}

/* ---------------------------------------------------------------- dead code */

Graph *ir_dce(const Graph *g) {
    Arena *a = g->arena;
    bool *live = arena_array(a, (size_t)g->nnodes + 1, sizeof *live);
    for (int i = 0; i < g->noutputs; i++)
        live[g->outputs[i].node] = true;
    /* Operands have smaller ids than their users: one backward sweep marks all. */
    for (int i = g->nnodes - 1; i >= 0; i--) {
        if (!live[i])
            continue;
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++)
            live[g->nodes[i].in[k]] = true;
    }
    Graph *d = ir_new(a, g->dtype);
    d->batch = g->batch;
    NodeId *map = arena_array(a, (size_t)g->nnodes + 1, sizeof *map);
    for (int i = 0; i < g->nnodes; i++) {
        if (!live[i])
            continue;
        map[i] = ir_copy(d, &g->nodes[i], map);
    }
    for (int i = 0; i < g->nslots; i++)
        ir_add_slot(d, g->slots[i]);
    for (int i = 0; i < g->noutputs; i++)
        ir_add_output(d, map[g->outputs[i].node], g->outputs[i].slot);
    return d;
}

int64_t ir_param_count(const Graph *g) {
    int64_t n = 0;
    for (int s = 0; s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM)
            n += shape_elems(&g->slots[s].shape);
    return n;
}
