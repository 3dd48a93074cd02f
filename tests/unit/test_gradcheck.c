/* test_gradcheck.c — every differentiable IR op's gradient rule against
 * central differences in float64, through autodiff, codegen and the JIT.
 *
 * Each case builds loss = sum(f(params) * w) with w a random parameter of
 * f's shape: random weights keep a rule from hiding behind a symmetry (the
 * sum of a softmax is constant, so its plain sum has a zero gradient).
 */
#include "nnc.h"

#include <string.h>

typedef NodeId (*Build)(Graph *g, NodeId p, NodeId q, NodeId y);

static const Loc L0;

static NodeId param(Graph *g, const char *name, Shape s) {
    /* LeCun-normal for 4 inputs: keeps units out of saturation */
    Slot sl = {.kind = SLOT_PARAM, .name = name, .shape = s, .init = {.kind = NNRT_INIT_NORMAL, .a = 0, .b = 0.5}};
    return ir_leaf(g, OP_PARAM, ir_add_slot(g, sl), s, L0);
}

#define U(op) ir_unary(g, op, p, L0)
#define B(op, a, b) ir_binary(g, op, a, b, L0)
static NodeId f_add(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_ADD, p, q); }
static NodeId f_sub(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_SUB, q, p); }
static NodeId f_mul(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_MUL, p, q); }
static NodeId f_div(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_DIV, p, ir_unary(g, OP_EXP, q, L0)); }
/* A positive base, so that d/db = a^b ln a is defined; b broadcasts. */
static NodeId f_pow(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_POW, ir_unary(g, OP_EXP, p, L0), q); }
static NodeId f_neg(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_NEG); }
static NodeId f_exp(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_EXP); }
static NodeId f_log(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)q, (void)y;
    Shape s = {0};
    return ir_unary(g, OP_LOG, B(OP_ADD, B(OP_MUL, p, p), ir_const(g, 1, s, L0)), L0);
}
static NodeId f_relu(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_RELU); }
static NodeId f_step(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_MUL, U(OP_STEP), q); }
static NodeId f_sigmoid(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_SIGMOID); }
static NodeId f_tanh(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_TANH); }
/* sqrt of a positive value */
static NodeId f_sqrt(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)q, (void)y;
    return ir_unary(g, OP_SQRT, B(OP_ADD, B(OP_MUL, p, p), ir_const(g, 1, (Shape){0}, L0)), L0);
}
static NodeId f_abs(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_ABS); }
static NodeId f_sign(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_MUL, U(OP_SIGN), q); }
static NodeId f_floor(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_MUL, U(OP_FLOOR), q); }
static NodeId f_sin(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_SIN); }
static NodeId f_cos(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return U(OP_COS); }
static NodeId f_leaky_relu(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)q, (void)y;
    return ir_unary_alpha(g, OP_LEAKY_RELU, p, 0.2, L0);
}
static NodeId f_elu(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return ir_unary_alpha(g, OP_ELU, p, 0.7, L0); }
/* eq is a mask, constant almost everywhere: its users get the gradient. */
static NodeId f_eq(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)y;
    return B(OP_MUL, B(OP_EQ, p, U(OP_RELU)), q);
}
static NodeId f_max0(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return ir_extreme(g, OP_MAX, p, 0, L0); }
static NodeId f_max_all(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)y;
    return B(OP_MUL, ir_extreme(g, OP_MAX, p, -1, L0), q);
}
static NodeId f_min1(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return ir_extreme(g, OP_MIN, p, 1, L0); }
static NodeId f_concat0(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)y;
    return ir_concat(g, p, ir_reshape(g, q, (Shape){2, {1, 4}}, L0), 0, L0); /* [3, 4] then [1, 4] */
}
static NodeId f_concat1(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)y;
    return ir_concat(g, q, p, 1, L0); /* [3, 2] then [3, 4] */
}
static NodeId f_slice(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)q, (void)y;
    return ir_slice(g, p, 1, 1, 2, L0); /* columns 1 and 2 of 4: zeros on both sides */
}
/* targets in [0, 1] (a sigmoid), logits anywhere */
static NodeId f_bce_logits(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)y;
    return B(OP_BCE_LOGITS, p, ir_unary(g, OP_SIGMOID, q, L0));
}
static NodeId f_maximum(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_MAXIMUM, p, q); }
static NodeId f_minimum(Graph *g, NodeId p, NodeId q, NodeId y) { (void)y; return B(OP_MINIMUM, q, p); }
static NodeId f_onehot(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)q;
    return B(OP_MUL, ir_onehot(g, y, 4, L0), p);
}
static NodeId f_sum0(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return ir_sum(g, p, 0, L0); }
static NodeId f_sum1(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return ir_sum(g, p, 1, L0); }
static NodeId f_sum_all(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)y;
    return B(OP_MUL, ir_sum(g, p, -1, L0), q); /* a scalar times a vector: broadcast both ways */
}
static NodeId f_logsoftmax(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return ir_logsoftmax(g, p, L0); }
static NodeId f_matmul(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)q, (void)y;
    return ir_matmul(g, p, param(g, "r", (Shape){2, {4, 2}}), L0);
}
static NodeId f_transpose(Graph *g, NodeId p, NodeId q, NodeId y) { (void)q, (void)y; return ir_transpose(g, p, L0); }
static NodeId f_reshape(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)q, (void)y;
    return ir_reshape(g, p, (Shape){3, {2, 3, 2}}, L0);
}
static NodeId f_broadcast(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)y;
    return ir_broadcast(g, q, ir_const(g, 0, (Shape){2, {3, 4}}, L0), L0); /* to a [3, 4] */
}
/* A value used twice: gradients of both uses add up. */
static NodeId f_reuse(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)y;
    NodeId t = ir_unary(g, OP_TANH, B(OP_ADD, p, q), L0);
    return B(OP_MUL, t, ir_unary(g, OP_SIGMOID, t, L0));
}
/* The window ops, on their own parameters (q: the second operand, of the
 * case's shape): x [n, H, W, C] of odd sizes, several channels, batches of
 * 1 to 3, strides 1 and 2, valid and same padding, kernels 1, 3 and 5. */
static NodeId conv(Graph *g, Shape x, NodeId k, int sh, int sw, bool same) {
    return ir_conv2d(g, param(g, "x", x), k, sh, sw, same, L0);
}
static NodeId f_conv_valid(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)y;
    return conv(g, (Shape){4, {2, 5, 7, 3}}, q, 1, 1, false);
}
static NodeId f_conv_same_s2(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)y;
    return conv(g, (Shape){4, {3, 7, 5, 2}}, q, 2, 2, true);
}
static NodeId f_conv_1x1(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)y;
    return conv(g, (Shape){4, {1, 5, 4, 2}}, q, 2, 1, false);
}
/* An adjoint op with the window w, of shape s. */
static NodeId adjoint(Graph *g, Op op, NodeId a, NodeId b, Window w, Shape s) {
    return ir_window(g, op, a, b, w, s, 0, L0);
}
static NodeId f_conv_data(Graph *g, NodeId p, NodeId q, NodeId y) { /* conv of x [2, 7, 7, 3], stride 2 */
    (void)p, (void)y;
    return adjoint(g, OP_CONV2D_DATA, param(g, "dy", (Shape){4, {2, 3, 3, 2}}), q, (Window){3, 3, 2, 2, 0, 0, 3, 3},
                   (Shape){4, {2, 7, 7, 3}});
}
static NodeId f_conv_filter(Graph *g, NodeId p, NodeId q, NodeId y) { /* x [2, 6, 6, 2], 3x3 stride 2 same */
    (void)p, (void)y;
    return adjoint(g, OP_CONV2D_FILTER, param(g, "x", (Shape){4, {2, 6, 6, 2}}), q, (Window){3, 3, 2, 2, 0, 0, 3, 3},
                   (Shape){4, {3, 3, 2, 3}});
}
static NodeId f_maxpool(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)q, (void)y;
    return ir_pool(g, OP_MAXPOOL, param(g, "x", (Shape){4, {2, 5, 5, 3}}), 2, 2, 2, 2, false, L0);
}
static NodeId f_maxpool_same(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)q, (void)y;
    return ir_pool(g, OP_MAXPOOL, param(g, "x", (Shape){4, {1, 5, 6, 2}}), 3, 3, 2, 2, true, L0);
}
static NodeId f_avgpool_same(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)q, (void)y;
    return ir_pool(g, OP_AVGPOOL, param(g, "x", (Shape){4, {2, 5, 4, 2}}), 3, 2, 2, 1, true, L0);
}
static NodeId f_avgpool_grad(Graph *g, NodeId p, NodeId q, NodeId y) { /* avgpool 3 stride 2 same of [1, 5, 5, 2] */
    (void)p, (void)y;
    return adjoint(g, OP_AVGPOOL_GRAD, q, -1, (Window){3, 3, 2, 2, 1, 1, 3, 3}, (Shape){4, {1, 5, 5, 2}});
}
static NodeId f_maxpool_grad(Graph *g, NodeId p, NodeId q, NodeId y) { /* 3x3 windows, stride 2, same, of [1, 5, 5, 2] */
    (void)p, (void)y;
    return adjoint(g, OP_MAXPOOL_GRAD, param(g, "x", (Shape){4, {1, 5, 5, 2}}), q, (Window){3, 3, 2, 2, 1, 1, 3, 3},
                   (Shape){4, {1, 5, 5, 2}});
}
static NodeId f_maxpool_pick(Graph *g, NodeId p, NodeId q, NodeId y) {
    (void)p, (void)y;
    return adjoint(g, OP_MAXPOOL_PICK, param(g, "x", (Shape){4, {1, 5, 5, 2}}), q, (Window){3, 3, 2, 2, 1, 1, 3, 3},
                   (Shape){4, {1, 3, 3, 2}});
}
static NodeId f_im2col(Graph *g, NodeId p, NodeId q, NodeId y) { /* 3x3 same over [2, 5, 4, 3] */
    (void)p, (void)q, (void)y;
    return adjoint(g, OP_IM2COL, param(g, "x", (Shape){4, {2, 5, 4, 3}}), -1, (Window){3, 3, 1, 1, 1, 1, 5, 4},
                   (Shape){2, {40, 27}});
}
static NodeId f_col2im(Graph *g, NodeId p, NodeId q, NodeId y) { /* 3x3 stride 2 valid over [1, 7, 5, 2] */
    (void)p, (void)y;
    return adjoint(g, OP_COL2IM, q, -1, (Window){3, 3, 2, 2, 0, 0, 3, 2}, (Shape){4, {1, 7, 5, 2}});
}
static NodeId f_random(Graph *g, NodeId p, NodeId q, NodeId y) { /* a constant mask: p's gradient is masked */
    (void)q, (void)y;
    NodeId u = ir_random(g, ir_const(g, 7, (Shape){0}, L0), 3, p, L0);
    return B(OP_MUL, p, ir_unary(g, OP_STEP, B(OP_SUB, u, ir_const(g, 0.5, (Shape){0}, L0)), L0));
}
#undef U
#undef B

static NodeId f_allreduce(Graph *g, NodeId p, NodeId q, NodeId y) { /* in one process, the identity */
    (void)y;
    return ir_allreduce(g, ir_binary(g, OP_MUL, p, q, L0), L0);
}

static const struct {
    const char *name;
    Build build;
    Shape q; /* the second parameter's shape: broadcasting cases */
} cases[] = {
    {"add (broadcast [4])", f_add, {1, {4}}},
    {"sub (broadcast [3, 1])", f_sub, {2, {3, 1}}},
    {"mul (broadcast [4])", f_mul, {1, {4}}},
    {"div", f_div, {2, {3, 4}}},
    {"pow (broadcast [4])", f_pow, {1, {4}}},
    {"neg", f_neg, {1, {4}}},
    {"exp", f_exp, {1, {4}}},
    {"log", f_log, {1, {4}}},
    {"relu", f_relu, {1, {4}}},
    {"step", f_step, {2, {3, 4}}},
    {"sigmoid", f_sigmoid, {1, {4}}},
    {"tanh", f_tanh, {1, {4}}},
    {"onehot", f_onehot, {1, {4}}},
    {"sqrt", f_sqrt, {1, {4}}},
    {"abs", f_abs, {1, {4}}},
    {"sign", f_sign, {2, {3, 4}}},
    {"floor", f_floor, {2, {3, 4}}},
    {"sin", f_sin, {1, {4}}},
    {"cos", f_cos, {1, {4}}},
    {"leaky_relu", f_leaky_relu, {1, {4}}},
    {"elu", f_elu, {1, {4}}},
    {"eq", f_eq, {2, {3, 4}}},
    {"max axis 0", f_max0, {1, {4}}},
    {"max all", f_max_all, {1, {4}}},
    {"min axis 1", f_min1, {1, {4}}},
    {"concat axis 0", f_concat0, {1, {4}}},
    {"concat axis 1", f_concat1, {2, {3, 2}}},
    {"slice", f_slice, {1, {4}}},
    {"bce_logits (broadcast [4])", f_bce_logits, {1, {4}}},
    {"maximum (broadcast [4])", f_maximum, {1, {4}}},
    {"minimum (broadcast [3, 1])", f_minimum, {2, {3, 1}}},
    {"sum axis 0", f_sum0, {1, {4}}},
    {"sum axis 1", f_sum1, {1, {4}}},
    {"sum all", f_sum_all, {1, {4}}},
    {"logsoftmax", f_logsoftmax, {1, {4}}},
    {"matmul", f_matmul, {1, {4}}},
    {"transpose", f_transpose, {1, {4}}},
    {"reshape", f_reshape, {1, {4}}},
    {"broadcast", f_broadcast, {1, {4}}},
    {"reuse", f_reuse, {1, {4}}},
    {"conv2d 3x3 valid", f_conv_valid, {4, {3, 3, 3, 2}}},
    {"conv2d 5x5 same stride 2", f_conv_same_s2, {4, {5, 5, 2, 3}}},
    {"conv2d 1x1 stride [2, 1]", f_conv_1x1, {4, {1, 1, 2, 3}}},
    {"conv2d_data stride 2", f_conv_data, {4, {3, 3, 3, 2}}},
    {"conv2d_filter stride 2", f_conv_filter, {4, {2, 3, 3, 3}}},
    {"maxpool 2", f_maxpool, {1, {4}}},
    {"maxpool 3 stride 2 same", f_maxpool_same, {1, {4}}},
    {"avgpool [3, 2] same", f_avgpool_same, {1, {4}}},
    {"avgpool_grad", f_avgpool_grad, {4, {1, 3, 3, 2}}},
    {"maxpool_grad", f_maxpool_grad, {4, {1, 3, 3, 2}}},
    {"maxpool_pick", f_maxpool_pick, {4, {1, 5, 5, 2}}},
    {"im2col", f_im2col, {1, {4}}},
    {"col2im", f_col2im, {2, {6, 18}}},
    {"random", f_random, {1, {4}}},
    {"allreduce (broadcast [4])", f_allreduce, {1, {4}}},
};

/* Builds case i (loss = sum(f(p, q, y) * w)) and checks it at level opt. */
static bool check_case(size_t i, int opt, bool *covered) {
    Arena *a = arena_new();
    Graph *g = ir_new(a, DT_F64);
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Shape ys = {1, {3}};
    NodeId y = ir_leaf(g, OP_LABEL, ir_add_slot(g, (Slot){.kind = SLOT_LABEL, .name = "y", .shape = ys}), ys, L0);
    NodeId p = param(g, "p", (Shape){2, {3, 4}});
    NodeId q = param(g, "q", cases[i].q);
    NodeId f = cases[i].build(g, p, q, y);
    NodeId w = param(g, "w", g->nodes[f].shape);
    NodeId loss = ir_sum(g, ir_binary(g, OP_MUL, f, w, L0), -1, L0);
    for (int n = 0; n < g->nnodes; n++)
        covered[g->nodes[n].op] = true;
    char err[512];
    int64_t skipped;
    Target *t = target_host();
    double rel = gradcheck(g, loss, 4, NULL, 42 + i, 1000, opt, t, &skipped, NULL, err, sizeof err);
    target_free(t);
    bool ok = rel >= 0 && rel < 1e-6;
    printf("%s -O%d %-24s max rel. error %.2e%s%s\n", ok ? "PASS" : "FAIL", opt, cases[i].name, rel,
           rel < 0 ? " " : "", rel < 0 ? err : "");
    arena_free(a);
    return ok;
}

int main(void) {
    int passed = 0, failed = 0;
    bool covered[OP_COUNT] = {0};
    /* The naive reference (-O0) and the kernels (-O2). */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int opt = 0; opt <= 2; opt += 2)
            check_case(i, opt, covered) ? passed++ : failed++;
    /* Every op of the table must have been exercised above. */
    for (int op = 0; op < OP_COUNT; op++) {
        if (op == OP_INPUT || op == OP_STATE || covered[op])
            continue; /* input and state leaves are never differentiated through */
        printf("FAIL op '%s' has no gradient case\n", op_info[op].name);
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
