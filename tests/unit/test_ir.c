/* test_ir.c — the op table (each row in its class's group, each libm
 * function it names known to the JIT), the IR's constructors: hash-consing
 * (CSE), the algebraic simplifications each constructor applies,
 * broadcasting shapes, and dead code removal with its canonical
 * renumbering.
 */
#include "nnc.h"
#include "check.h"

static const Loc L0;

/* Each group of rows (switches give a case to a whole group) holds ops of
 * its class and arity; the facts of a row agree with each other (what a
 * matmul epilogue or a row loop computes has a vector form: no libm call);
 * the JIT resolves each libm function of the table, double and float;
 * autodiff reads zero_grad. */
static void check_op_table(void) {
    OpClass want;
    int arity; /* -1: any */
#define ROW(name, ...) CHECK(op_info[OP_##name].cls == want && (arity < 0 || op_info[OP_##name].arity == arity));
    want = CLASS_LEAF, arity = 0;
    IR_OPS_LEAF(ROW)
    want = CLASS_ELEMWISE, arity = 2;
    IR_OPS_BINARY(ROW)
    want = CLASS_ELEMWISE, arity = 1;
    IR_OPS_UNARY(ROW)
    want = CLASS_REDUCE, arity = 1;
    IR_OPS_REDUCE(ROW)
    want = CLASS_MATMUL, arity = 2;
    IR_OPS_MATMUL(ROW)
    want = CLASS_MOVEMENT, arity = -1;
    IR_OPS_MOVEMENT(ROW)
#undef ROW
    char err[512];
    Target *t = target_host();
    Jit *j = jit_new(t, err, sizeof err);
    target_free(t);
    if (!CHECK(j != NULL))
        return;
    for (int op = 0; op < OP_COUNT; op++) {
        const OpInfo *o = &op_info[op];
        CHECK(!o->epilogue || (o->elem && !o->libm && !o->index));
        CHECK(!o->row || !o->libm);
        CHECK(!o->alpha || (o->cls == CLASS_ELEMWISE && o->arity == 1));
        if (o->libm) {
            char f32[32];
            snprintf(f32, sizeof f32, "%sf", o->libm);
            CHECK(jit_lookup(j, o->libm, err, sizeof err) != NULL);
            CHECK(jit_lookup(j, f32, err, sizeof err) != NULL);
        }
    }
    jit_free(j);

    /* A zero_grad op gets no adjoint: in d/dx, d/dy of sum(step(x) y y),
     * step's would be y y, a node nothing else makes. */
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F64);
    Shape v3 = {1, {3}};
    NodeId wrt[2], grads[2];
    for (int i = 0; i < 2; i++)
        wrt[i] = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = i ? "y" : "x", .shape = v3}),
                         v3, L0);
    NodeId y = wrt[1], f = ir_unary(g, OP_STEP, wrt[0], L0);
    f = ir_sum(g, ir_binary(g, OP_MUL, ir_binary(g, OP_MUL, f, y, L0), y, L0), -1, L0);
    ad_gradients(g, f, wrt, 2, grads);
    bool yy = false;
    for (int i = 0; i < g->nnodes; i++)
        yy |= g->nodes[i].op == OP_MUL && g->nodes[i].in[0] == y && g->nodes[i].in[1] == y;
    CHECK(!yy);
    CHECK(ir_is_const(g, grads[0], 0));
    arena_free(a);
}

int main(void) {
    check_op_table();
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F32);
    Shape m34 = {2, {3, 4}}, v4 = {1, {4}}, s0 = {0};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId x = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "x", .shape = m34}), m34, L0);
    NodeId b = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "b", .shape = v4}), v4, L0);
    NodeId zero = ir_const(g, 0, s0, L0), one = ir_const(g, 1, s0, L0), two = ir_const(g, 2, s0, L0);

    /* Hash-consing: the same node twice is one node. */
    NodeId e1 = ir_unary(g, OP_EXP, x, L0), e2 = ir_unary(g, OP_EXP, x, L0);
    CHECK(e1 == e2);
    CHECK(ir_binary(g, OP_ADD, x, b, L0) == ir_binary(g, OP_ADD, x, b, L0));
    /* Commutative ops put constants on the right: 2 * x and x * 2 meet. */
    CHECK(ir_binary(g, OP_MUL, two, x, L0) == ir_binary(g, OP_MUL, x, two, L0));

    /* Identities. */
    CHECK(ir_binary(g, OP_ADD, x, zero, L0) == x);
    CHECK(ir_binary(g, OP_MUL, x, one, L0) == x);
    CHECK(ir_binary(g, OP_SUB, x, zero, L0) == x);
    CHECK(ir_binary(g, OP_DIV, x, one, L0) == x);
    CHECK(ir_is_const(g, ir_binary(g, OP_MUL, x, zero, L0), 0));
    CHECK(ir_is_const(g, ir_binary(g, OP_SUB, x, x, L0), 0));
    CHECK(ir_unary(g, OP_NEG, ir_unary(g, OP_NEG, x, L0), L0) == x);
    CHECK(ir_binary(g, OP_SUB, zero, x, L0) == ir_unary(g, OP_NEG, x, L0));
    CHECK(ir_binary(g, OP_ADD, x, ir_unary(g, OP_NEG, e1, L0), L0) == ir_binary(g, OP_SUB, x, e1, L0));
    CHECK(ir_binary(g, OP_MUL, ir_binary(g, OP_MUL, x, two, L0), two, L0) ==
          ir_binary(g, OP_MUL, x, ir_const(g, 4, s0, L0), L0));
    CHECK(ir_binary(g, OP_ADD, x, x, L0) == ir_binary(g, OP_MUL, x, two, L0));
    /* A splat constant of the result's shape is a scalar: x * 2[3, 4] is x * 2. */
    CHECK(ir_binary(g, OP_MUL, x, ir_const(g, 2, m34, L0), L0) == ir_binary(g, OP_MUL, x, two, L0));
    CHECK(ir_transpose(g, ir_transpose(g, x, L0), L0) == x);
    CHECK(ir_reshape(g, x, m34, L0) == x);
    CHECK(ir_unary(g, OP_RELU, ir_unary(g, OP_RELU, x, L0), L0) == ir_unary(g, OP_RELU, x, L0));
    /* An identity never changes a shape: x[4] + 0[3, 4] must broadcast. */
    NodeId z34 = ir_const(g, 0, m34, L0);
    NodeId bz = ir_binary(g, OP_ADD, b, z34, L0);
    CHECK(bz != b && shape_eq(&g->nodes[bz].shape, &m34));

    /* The forms autodiff produces, simplified so a printed derivative reads
     * as the textbook's: -(x 2) = x -2, x 2 + x 3 = x 5, x 2 + x = x 3. */
    NodeId x2 = ir_binary(g, OP_MUL, x, two, L0);
    CHECK(ir_unary(g, OP_NEG, x2, L0) == ir_binary(g, OP_MUL, x, ir_const(g, -2, s0, L0), L0));
    CHECK(ir_binary(g, OP_ADD, x2, ir_binary(g, OP_MUL, x, ir_const(g, 3, s0, L0), L0), L0) ==
          ir_binary(g, OP_MUL, x, ir_const(g, 5, s0, L0), L0));
    CHECK(ir_binary(g, OP_ADD, x2, x, L0) == ir_binary(g, OP_MUL, x, ir_const(g, 3, s0, L0), L0));
    /* Powers: a^1 = a, a^0 = 1, a^2 = a a; others stay, and fold on constants. */
    CHECK(ir_binary(g, OP_POW, x, one, L0) == x);
    CHECK(ir_is_const(g, ir_binary(g, OP_POW, x, zero, L0), 1));
    CHECK(ir_binary(g, OP_POW, x, two, L0) == ir_binary(g, OP_MUL, x, x, L0));
    CHECK(g->nodes[ir_binary(g, OP_POW, x, ir_const(g, 3, s0, L0), L0)].op == OP_POW);
    CHECK(ir_is_const(g, ir_binary(g, OP_POW, two, ir_const(g, 3, s0, L0), L0), 8));
    /* x * 1 widened to a larger shape is a broadcast of x, not a multiply. */
    NodeId b1 = ir_binary(g, OP_MUL, b, ir_const(g, 1, m34, L0), L0);
    CHECK(g->nodes[b1].op == OP_BROADCAST && g->nodes[b1].in[0] == b);
    /* Matmuls that are not: an inner dimension of 1 is an outer product,
     * and a constant operand makes sums. */
    Shape c41 = {2, {4, 1}}, r13 = {2, {1, 3}}, m43 = {2, {4, 3}};
    NodeId col = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "col", .shape = c41}), c41, L0);
    NodeId row = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "row", .shape = r13}), r13, L0);
    CHECK(ir_matmul(g, col, row, L0) == ir_binary(g, OP_MUL, col, row, L0));
    NodeId xc = ir_matmul(g, x, ir_const(g, 2, m43, L0), L0); /* [3, 4] @ 2[4, 3] = 2 sum_k x[i, k] */
    CHECK(g->nodes[xc].op == OP_MUL && shape_eq(&g->nodes[xc].shape, &(Shape){2, {3, 3}}));

    /* Constant folding. */
    NodeId c = ir_binary(g, OP_ADD, two, ir_unary(g, OP_EXP, zero, L0), L0);
    CHECK(ir_is_const(g, c, 3));
    CHECK(ir_is_const(g, ir_sum(g, ir_const(g, 2, m34, L0), -1, L0), 24));
    CHECK(ir_is_const(g, ir_binary(g, OP_DIV, one, two, L0), 0.5));

    /* Broadcast shapes follow NumPy. */
    Shape r;
    CHECK(shape_broadcast(&m34, &v4, &r) && shape_eq(&r, &m34));
    Shape v3 = {1, {3}}, c31 = {2, {3, 1}};
    CHECK(!shape_broadcast(&m34, &v3, &r));
    CHECK(shape_broadcast(&c31, &v4, &r) && shape_eq(&r, &m34));
    CHECK(shape_eq(&g->nodes[ir_sum(g, x, 1, L0)].shape, &c31));
    CHECK(g->nodes[ir_sum(g, x, -1, L0)].shape.rank == 0);

    /* DCE keeps what the outputs need, renumbered in topological order. */
    int out = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "out", .shape = m34});
    NodeId keep = ir_unary(g, OP_TANH, ir_binary(g, OP_ADD, x, b, L0), L0);
    ir_add_output(g, keep, out);
    Graph *d = ir_dce(g);
    CHECK(d->nnodes == 4); /* x, b, add, tanh */
    CHECK(d->nodes[0].op == OP_PARAM && d->nodes[1].op == OP_PARAM);
    CHECK(d->nodes[2].op == OP_ADD && d->nodes[2].in[0] == 0 && d->nodes[2].in[1] == 1);
    CHECK(d->nodes[3].op == OP_TANH && d->outputs[0].node == 3 && d->outputs[0].slot == out);
    CHECK(d->nslots == g->nslots);

    arena_free(a);
    return check_summary();
}
