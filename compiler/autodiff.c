/* autodiff.c — reverse-mode symbolic differentiation on the IR.
 *
 * Walk the nodes in reverse topological order (decreasing id); each op's rule
 * emits IR nodes for its vector-Jacobian product and adds them to its
 * operands' adjoints, so a value used twice gets the sum of both. A broadcast
 * operand gets its adjoint summed back to its own shape. Only nodes that
 * depend on a wrt node get adjoints: no work for the input's gradient.
 * The result is ordinary IR: simplified by the constructors, printed by
 * --emit=grad, compiled like the forward pass.
 */
#include "nnc.h"

/* Sum g over the axes along which a value of shape s was broadcast to g's shape. */
static NodeId unbroadcast(Graph *g, NodeId grad, const Shape *s, Loc loc) {
    Shape gs = g->nodes[grad].shape;
    if (shape_eq(&gs, s))
        return grad;
    int lead = gs.rank - s->rank;
    for (int d = 0; d < gs.rank; d++)
        if (d < lead || (s->dim[d - lead] == 1 && gs.dim[d] != 1))
            grad = ir_sum(g, grad, d, loc);
    return ir_reshape(g, grad, *s, loc);
}

typedef struct Adjoints {
    Graph *g;
    NodeId *adj; /* -1: none yet */
    bool *needs; /* depends on a wrt node */
} Adjoints;

static void accumulate(Adjoints *a, NodeId x, NodeId contrib, Loc loc) {
    Graph *g = a->g;
    contrib = unbroadcast(g, contrib, &g->nodes[x].shape, loc);
    a->adj[x] = a->adj[x] < 0 ? contrib : ir_binary(g, OP_ADD, a->adj[x], contrib, loc);
}

/* The rule for node n (id `id`) with adjoint gy; each line is the math. */
static void backprop(Adjoints *ad, NodeId id, NodeId gy) {
    Graph *g = ad->g;
    IrNode n = g->nodes[id]; /* a copy: constructors may grow the node array */
    NodeId a = n.in[0], b = n.in[1], y = id;
    Loc l = n.loc;
    Shape scalar = {0};
/* Adds v to x's adjoint; v is built only if x needs one (so the input's
 * gradient, or a zero_grad op's, is never made). */
#define ACC(x, v)                    \
    do {                             \
        if (ad->needs[x])            \
            accumulate(ad, x, v, l); \
    } while (0)
#define ADD(p, q) ir_binary(g, OP_ADD, p, q, l)
#define SUB(p, q) ir_binary(g, OP_SUB, p, q, l)
#define MUL(p, q) ir_binary(g, OP_MUL, p, q, l)
#define DIV(p, q) ir_binary(g, OP_DIV, p, q, l)
#define NEG(p) ir_unary(g, OP_NEG, p, l)
#define ONE ir_const(g, 1, scalar, l)
/* Window op `op` of p and q with n's window, shaped as node `like`. */
#define WIN(op, p, q, like) ir_window(g, op, p, q, n.win, g->nodes[like].shape, g->nodes[like].batch_axes, l)
    switch (n.op) {
    IR_OPS_LEAF(OP_CASE)                                      /* no operands */
    case OP_STEP: case OP_ONEHOT: case OP_SIGN: case OP_EQ: case OP_FLOOR: /* zero_grad: nothing to pass on */
        break;
    case OP_ADD: ACC(a, gy); ACC(b, gy); break;               /* d(a+b) = da + db */
    case OP_SUB: ACC(a, gy); ACC(b, NEG(gy)); break;          /* d(a-b) = da - db */
    case OP_MUL: ACC(a, MUL(gy, b)); ACC(b, MUL(gy, a)); break; /* d(ab) = b da + a db */
    case OP_DIV:                                              /* d(a/b) = da/b - (a/b)/b db */
        ACC(a, DIV(gy, b));
        ACC(b, NEG(DIV(MUL(gy, y), b)));
        break;
    case OP_MAXIMUM: case OP_MINIMUM: {                       /* to the operand chosen; a tie goes to b */
        NodeId take_a = ir_unary(g, OP_STEP, n.op == OP_MAXIMUM ? SUB(a, b) : SUB(b, a), l);
        ACC(a, MUL(gy, take_a));
        ACC(b, MUL(gy, SUB(ONE, take_a)));
        break;
    }
    case OP_BCE_LOGITS:                                       /* the stable form:          */
        ACC(a, MUL(gy, SUB(ir_unary(g, OP_SIGMOID, a, l), b))); /* da = sigmoid(a) - b */
        ACC(b, NEG(MUL(gy, a)));                              /* db = -a */
        break;
    case OP_POW:                                              /* d a^b = b a^(b-1) da + a^b ln a db */
        ACC(a, MUL(gy, MUL(b, ir_binary(g, OP_POW, a, SUB(b, ONE), l))));
        ACC(b, MUL(gy, MUL(y, ir_unary(g, OP_LOG, a, l))));
        break;
    case OP_NEG: ACC(a, NEG(gy)); break;                      /* d(-a) = -da */
    case OP_EXP: ACC(a, MUL(gy, y)); break;                   /* d e^a = e^a da */
    case OP_LOG: ACC(a, DIV(gy, a)); break;                   /* d ln a = da / a */
    case OP_RELU: ACC(a, MUL(gy, ir_unary(g, OP_STEP, y, l))); break; /* relu'(a) = step(a) = step(relu a):
                                                                          then a need not outlive relu */
    case OP_SIGMOID: ACC(a, MUL(gy, MUL(y, SUB(ONE, y)))); break;     /* s' = s (1 - s) */
    case OP_TANH: ACC(a, MUL(gy, SUB(ONE, MUL(y, y)))); break;        /* tanh' = 1 - tanh^2 */
    case OP_SQRT: ACC(a, MUL(gy, DIV(ir_const(g, 0.5, scalar, l), y))); break; /* d sqrt a = da / (2 sqrt a) */
    case OP_ABS: ACC(a, MUL(gy, ir_unary(g, OP_SIGN, a, l))); break;  /* |a|' = sign a */
    case OP_SIN: ACC(a, MUL(gy, ir_unary(g, OP_COS, a, l))); break;   /* sin' = cos */
    case OP_COS: ACC(a, NEG(MUL(gy, ir_unary(g, OP_SIN, a, l)))); break; /* cos' = -sin */
    case OP_LEAKY_RELU: {                                     /* alpha + (1 - alpha) step(a) */
        NodeId step = ir_unary(g, OP_STEP, a, l);
        ACC(a, MUL(gy, ADD(MUL(step, ir_const(g, 1 - n.value, scalar, l)), ir_const(g, n.value, scalar, l))));
        break;
    }
    case OP_ELU: {                                            /* a > 0 ? 1 : elu(a) + alpha */
        NodeId step = ir_unary(g, OP_STEP, a, l);
        ACC(a, MUL(gy, ADD(step, MUL(SUB(ONE, step), ADD(y, ir_const(g, n.value, scalar, l))))));
        break;
    }
    case OP_SUM: ACC(a, ir_broadcast(g, gy, a, l)); break; /* each element once */
    case OP_MAX: case OP_MIN: {                               /* shared equally by the elements equal to it */
        NodeId mask = ir_binary(g, OP_EQ, a, y, l);
        ACC(a, MUL(mask, DIV(gy, ir_sum(g, mask, n.axis, l))));
        break;
    }
    case OP_CONCAT: {                                         /* each side its part */
        int64_t la = g->nodes[a].shape.dim[n.axis], lb = g->nodes[b].shape.dim[n.axis];
        ACC(a, ir_slice(g, gy, n.axis, 0, la, l));
        ACC(b, ir_slice(g, gy, n.axis, la, lb, l));
        break;
    }
    case OP_SLICE: {                                          /* zeros around it */
        Shape before = g->nodes[a].shape, after = before;
        before.dim[n.axis] = n.start;
        after.dim[n.axis] -= n.start + n.shape.dim[n.axis];
        NodeId r = gy;
        uint8_t axes = g->nodes[a].batch_axes;
        if (before.dim[n.axis])
            r = ir_concat(g, ir_const_axes(g, 0, before, axes, l), r, n.axis, l);
        if (after.dim[n.axis])
            r = ir_concat(g, r, ir_const_axes(g, 0, after, axes, l), n.axis, l);
        ACC(a, r);
        break;
    }
    case OP_LOGSOFTMAX:                                       /* da = g - softmax(a) sum_axis g */
        ACC(a, SUB(gy, MUL(ir_unary(g, OP_EXP, y, l), ir_sum(g, gy, n.axis, l))));
        break;
    case OP_MATMUL:                                           /* d(AB) = dA B + A dB */
        ACC(a, ir_matmul(g, gy, ir_transpose(g, b, l), l));
        ACC(b, ir_matmul(g, ir_transpose(g, a, l), gy, l));
        break;
    case OP_TRANSPOSE: ACC(a, ir_transpose(g, gy, l)); break;
    case OP_RESHAPE: ACC(a, ir_reshape(g, gy, g->nodes[a].shape, l)); break;
    case OP_BROADCAST: ACC(a, gy); break;                     /* accumulate sums it back */
    /* The window ops are linear in the operand each rule below feeds (but
     * for maxpool's choice of its maximum: piecewise constant in x), and
     * each one's adjoint is another of them with the same window. */
    case OP_CONV2D:                                           /* y = x * k: dx = dy *^T k, dk = x (*) dy */
        ACC(a, WIN(OP_CONV2D_DATA, gy, b, a));
        ACC(b, WIN(OP_CONV2D_FILTER, a, gy, b));
        break;
    case OP_CONV2D_DATA:                                      /* y = dy' *^T k: d dy' = dy * k, dk = dy (*) dy' */
        ACC(a, WIN(OP_CONV2D, gy, b, a));
        ACC(b, WIN(OP_CONV2D_FILTER, gy, a, b));
        break;
    case OP_CONV2D_FILTER:                                    /* y = x (*) dy': dx = dy' *^T dy, d dy' = x * dy */
        ACC(a, WIN(OP_CONV2D_DATA, b, gy, a));
        ACC(b, WIN(OP_CONV2D, a, gy, b));
        break;
    case OP_MAXPOOL: ACC(a, WIN(OP_MAXPOOL_GRAD, a, gy, a)); break;   /* to each window's first maximum */
    case OP_MAXPOOL_GRAD: ACC(b, WIN(OP_MAXPOOL_PICK, a, gy, b)); break; /* each window's maximum's */
    case OP_MAXPOOL_PICK: ACC(b, WIN(OP_MAXPOOL_GRAD, a, gy, b)); break;
    case OP_AVGPOOL: ACC(a, WIN(OP_AVGPOOL_GRAD, gy, -1, a)); break;  /* shared by the window's elements */
    case OP_AVGPOOL_GRAD: ACC(a, WIN(OP_AVGPOOL, gy, -1, a)); break;
    case OP_IM2COL: ACC(a, WIN(OP_COL2IM, gy, -1, a)); break;          /* each patch element back home */
    case OP_COL2IM: ACC(a, WIN(OP_IM2COL, gy, -1, a)); break;
    case OP_RANDOM: /* zero_grad */
        break;
    case OP_ALLREDUCE: /* made after the gradients, never differentiated; in one process the identity */
        ACC(a, gy);
        break;
    }
#undef ACC
#undef ADD
#undef SUB
#undef MUL
#undef DIV
#undef NEG
#undef ONE
#undef WIN
}

int ad_param_gradients(Graph *g, NodeId loss, NodeId **params, NodeId **grads) {
    int n = 0;
    *params = arena_array(g->arena, (size_t)g->nnodes, sizeof **params);
    for (NodeId i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_PARAM)
            (*params)[n++] = i;
    *grads = arena_array(g->arena, (size_t)n + 1, sizeof **grads);
    ad_gradients(g, loss, *params, n, *grads);
    return n;
}

void ad_gradients(Graph *g, NodeId loss, const NodeId *wrt, int nwrt, NodeId *grads) {
    Arena *ar = g->arena;
    int count = g->nnodes; /* nodes made below are never visited */
    Adjoints ad = {g, arena_array(ar, (size_t)count, sizeof(NodeId)), arena_array(ar, (size_t)count, sizeof(bool))};
    for (int i = 0; i < count; i++)
        ad.adj[i] = -1;
    for (int i = 0; i < nwrt; i++)
        ad.needs[wrt[i]] = true;
    /* A piecewise constant op (zero_grad) does not depend on its operands
     * here: it gets no adjoint, which would only be thrown away. */
    for (int i = 0; i < count; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity && !op_info[g->nodes[i].op].zero_grad; k++)
            ad.needs[i] |= ad.needs[g->nodes[i].in[k]];
    if (g->nodes[loss].shape.rank != 0)
        die("ad_gradients: the loss must be a scalar");
    ad.adj[loss] = ir_const(g, 1, (Shape){0}, g->nodes[loss].loc);
    for (NodeId i = loss; i >= 0; i--) {
        if (ad.adj[i] >= 0 && ad.needs[i])
            backprop(&ad, i, ad.adj[i]);
        if (g->node_limit && g->nnodes > g->node_limit) {
            for (int k = 0; k < nwrt; k++)
                grads[k] = -1;
            return;
        }
    }
    for (int i = 0; i < nwrt; i++)
        grads[i] = ad.adj[wrt[i]] >= 0 ? ad.adj[wrt[i]] : ir_const(g, 0, g->nodes[wrt[i]].shape, g->nodes[wrt[i]].loc);
}
