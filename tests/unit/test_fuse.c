/* test_fuse.c — the row loops and element loops of the schedule (fuse_rows.c) on graphs
 * built by hand, for what the language does not produce today: a kernel
 * over the batch's rows that reads a reduction over every row must run
 * after the loop that computes it; one that reads a row of the loop through
 * a different rank, one with an op that has no vector form (tanh) and one
 * whose rows are too long for registers must not join it.
 */
#include "nnc.h"
#include "check.h"

static const Loc L0;

/* A graph for batch 4 with input x [4, cols]: the constructors mark x's
 * rows, and every node computed from them, as the batch axis. */
static Graph *graph_with_input(Arena *a, NodeId *x, int64_t cols) {
    Graph *g = ir_new(a, DT_F32);
    g->batch = 4; /* the input's rows are the batch: the graph runs on n <= 4 of them */
    Shape s = {2, {4, cols}};
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    *x = ir_leaf(g, OP_INPUT, ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = "x", .shape = s}), s, L0);
    return g;
}

static int position(const Schedule *s, const Graph *g, NodeId n) {
    for (int k = 0; k < g->nnodes; k++)
        if (s->order[k] == n)
            return k;
    return -1;
}

int main(void) {
    Arena *a = arena_new();
    Target *tg = target_host();

    /* e = exp x, t = sum(e) over everything, u = e t: u reads the whole
     * sum, so it runs after the loop of e and t. */
    NodeId x;
    Graph *g = graph_with_input(a, &x, 3);
    NodeId e = ir_unary(g, OP_EXP, x, L0), t = ir_sum(g, e, -1, L0);
    NodeId u = ir_binary(g, OP_MUL, e, t, L0);
    NodeId v = ir_binary(g, OP_MUL, u, u, L0); /* u has two uses: a loop of its own */
    Schedule *s = schedule(a, g, 2, tg);
    CHECK(s->rows[e] == e && s->rows[t] == e);
    CHECK(s->rows[u] == -1 && position(s, g, u) > position(s, g, t));
    CHECK(s->rows[v] == -1 && position(s, g, v) > position(s, g, u));
    /* -O0: no row loops, nodes in their order. */
    Schedule *s0 = schedule(a, g, 0, tg);
    for (int i = 0; i < g->nnodes; i++)
        CHECK(s0->rows[i] == -1 && s0->order[i] == i);

    /* r = row sums of e, [4, 1]; w = e + r reads row r of it: one loop.
     * f = e + P, P [4, 4, 3], reads e at rank 3: its row r needs every row
     * of e (e's batch axis is f's axis 1), so it stays out. */
    g = graph_with_input(a, &x, 3);
    Shape s443 = {3, {4, 4, 3}};
    NodeId p = ir_leaf(g, OP_PARAM, ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "P", .shape = s443}), s443, L0);
    e = ir_unary(g, OP_EXP, x, L0);
    NodeId r = ir_sum(g, e, 1, L0);
    NodeId w = ir_binary(g, OP_ADD, e, r, L0);
    NodeId f = ir_binary(g, OP_ADD, e, p, L0);
    s = schedule(a, g, 2, tg);
    CHECK(s->rows[e] == e && s->rows[r] == e && s->rows[w] == e);
    CHECK(s->rows[f] == -1 && position(s, g, f) > position(s, g, w));

    /* y = tanh(e) + e: tanh is a libm call of one float, so y stays out
     * (after the loop: it reads e); z, a row sum of e, joins e's loop. */
    g = graph_with_input(a, &x, 3);
    e = ir_unary(g, OP_EXP, x, L0);
    NodeId y = ir_binary(g, OP_ADD, ir_unary(g, OP_TANH, e, L0), e, L0);
    NodeId z = ir_sum(g, e, 1, L0);
    s = schedule(a, g, 2, tg);
    CHECK(s->rows[e] == e && s->rows[z] == e);
    CHECK(s->rows[y] == -1 && position(s, g, y) > position(s, g, z));

    /* Rows of 100 floats are longer than a row loop holds (64). */
    g = graph_with_input(a, &x, 100);
    e = ir_unary(g, OP_EXP, x, L0);
    r = ir_sum(g, e, 1, L0);
    w = ir_binary(g, OP_ADD, e, r, L0);
    s = schedule(a, g, 2, tg);
    CHECK(s->rows[e] == -1 && s->rows[r] == -1 && s->rows[w] == -1);

    /* Element loops: v' = 0.9 v - 0.1 P and P' = P + v' (a momentum step,
     * each into its slot) are one loop over [5]; then q' = 2 Q, over [3],
     * is a loop of its own; at -O0 none. */
    g = ir_new(a, DT_F32);
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Shape s5 = {1, {5}}, s3 = {1, {3}}, scalar = {0, {0}};
    int ps = ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "P", .shape = s5});
    int vs = ir_add_slot(g, (Slot){.kind = SLOT_STATE, .name = "v", .shape = s5});
    int qs = ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = "Q", .shape = s3});
    NodeId pp = ir_leaf(g, OP_PARAM, ps, s5, L0), vv = ir_leaf(g, OP_STATE, vs, s5, L0);
    NodeId qq = ir_leaf(g, OP_PARAM, qs, s3, L0);
    NodeId v1 = ir_binary(g, OP_SUB, ir_binary(g, OP_MUL, vv, ir_const(g, 0.9, scalar, L0), L0),
                          ir_binary(g, OP_MUL, pp, ir_const(g, 0.1, scalar, L0), L0), L0);
    NodeId p1 = ir_binary(g, OP_ADD, pp, v1, L0);
    NodeId q1 = ir_binary(g, OP_MUL, qq, ir_const(g, 2, scalar, L0), L0);
    ir_add_output(g, v1, vs);
    ir_add_output(g, p1, ps);
    ir_add_output(g, q1, qs);
    s = schedule(a, g, 2, tg);
    CHECK(s->elems[v1] == v1 && s->elems[p1] == v1 && s->elems[q1] == -1);
    CHECK(position(s, g, p1) > position(s, g, v1) && position(s, g, q1) > position(s, g, p1));
    Schedule *e0 = schedule(a, g, 0, tg);
    for (int i = 0; i < g->nnodes; i++)
        CHECK(e0->elems[i] == -1);

    arena_free(a);
    target_free(tg);
    return check_summary();
}
