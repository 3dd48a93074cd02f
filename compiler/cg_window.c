/* cg_window.c — the window ops (convolution, pooling, their adjoints, the
 * patches) and the random numbers of dropout as loop nests. The
 * convolutions here are the -O0 reference (at -O2 they are products,
 * conv_gemm.c), each the op table's formula written out one result element
 * at a time; the other window ops are kernels over the samples, on the
 * thread pool, at every level.
 *
 * Every op reads [n, H, W, C] tensors through a window: output (i, j) reads
 * input rows p = i sh + u - pt for u < kh (columns alike). The forward ops
 * walk an output's window; the adjoints walk the other way, from an input
 * position to the windows that hold it (i = (p + pt - u) / sh when that
 * divides). A position outside the tensor is read at a clamped index and
 * its value replaced (0, or -inf for a maximum), so no load is out of
 * bounds and no branch is needed.
 */
#include "cg.h"

/* One axis of a window: the position it reads, and whether that is inside. */
typedef struct Pos {
    LLVMValueRef at, inside; /* at clamped to 0 when outside */
} Pos;

/* Forward: row p = i s + u - pad of an input of `len` rows. */
static Pos forward_pos(Cg *c, LLVMValueRef i, LLVMValueRef u, int64_t s, int64_t pad, LLVMValueRef len) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef p = LLVMBuildSub(B, LLVMBuildAdd(B, LLVMBuildMul(B, i, cg_i64(c, s), ""), u, ""), cg_i64(c, pad), "");
    LLVMValueRef in = LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, p, cg_i64(c, 0), ""),
                                   LLVMBuildICmp(B, LLVMIntSLT, p, len, ""), "");
    return (Pos){LLVMBuildSelect(B, in, p, cg_i64(c, 0), ""), in};
}

/* Backward: the window i whose offset u reads row p (i s + u - pad = p), of
 * `count` windows. */
static Pos window_of(Cg *c, LLVMValueRef p, LLVMValueRef u, int64_t s, int64_t pad, LLVMValueRef count) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef t = LLVMBuildSub(B, LLVMBuildAdd(B, p, cg_i64(c, pad), ""), u, "");
    LLVMValueRef nonneg = LLVMBuildICmp(B, LLVMIntSGE, t, cg_i64(c, 0), "");
    t = LLVMBuildSelect(B, nonneg, t, cg_i64(c, 0), "");
    LLVMValueRef i = LLVMBuildUDiv(B, t, cg_i64(c, s), "");
    LLVMValueRef exact = LLVMBuildICmp(B, LLVMIntEQ, LLVMBuildURem(B, t, cg_i64(c, s), ""), cg_i64(c, 0), "");
    LLVMValueRef in = LLVMBuildAnd(B, LLVMBuildAnd(B, nonneg, exact, ""), LLVMBuildICmp(B, LLVMIntSLT, i, count, ""), "");
    return (Pos){LLVMBuildSelect(B, in, i, cg_i64(c, 0), ""), in};
}

/* The offset of element [a, b, d, e] of 4-axis node id. */
static LLVMValueRef offset4(Cg *c, NodeId id, LLVMValueRef a, LLVMValueRef b, LLVMValueRef d, LLVMValueRef e) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef off = a;
    off = LLVMBuildAdd(B, LLVMBuildMul(B, off, cg_dim(c, id, 1), ""), b, "");
    off = LLVMBuildAdd(B, LLVMBuildMul(B, off, cg_dim(c, id, 2), ""), d, "");
    return LLVMBuildAdd(B, LLVMBuildMul(B, off, cg_dim(c, id, 3), ""), e, "");
}

static LLVMValueRef load4(Cg *c, NodeId id, LLVMValueRef a, LLVMValueRef b, LLVMValueRef d, LLVMValueRef e) {
    return cg_load_at(c, id, offset4(c, id, a, b, d, e));
}


static LLVMValueRef get(Cg *c, LLVMValueRef v, LLVMTypeRef t) { return LLVMBuildLoad2(c->b, t, v, ""); }

/* Four nested loops (over a node's axes, or a window's). */
typedef struct Nest4 {
    Loop l[4];
    LLVMValueRef i[4];
} Nest4;

static void open4(Cg *c, Nest4 *n, LLVMValueRef d0, LLVMValueRef d1, LLVMValueRef d2, LLVMValueRef d3) {
    LLVMValueRef d[4] = {d0, d1, d2, d3};
    for (int k = 0; k < 4; k++)
        n->i[k] = cg_loop_open(c, &n->l[k], d[k]);
}

static void close4(Cg *c, Nest4 *n) {
    for (int k = 3; k >= 0; k--)
        cg_loop_close(c, &n->l[k]);
}

static void open_dims(Cg *c, Nest4 *n, NodeId id) {
    open4(c, n, cg_dim(c, id, 0), cg_dim(c, id, 1), cg_dim(c, id, 2), cg_dim(c, id, 3));
}

/* The number of rows of window i inside `len` rows: min(i s - pad + k,
 * len) - max(i s - pad, 0). */
static LLVMValueRef rows_inside(Cg *c, LLVMValueRef i, int64_t k, int64_t s, int64_t pad, LLVMValueRef len) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef lo = LLVMBuildSub(B, LLVMBuildMul(B, i, cg_i64(c, s), ""), cg_i64(c, pad), "");
    LLVMValueRef hi = LLVMBuildAdd(B, lo, cg_i64(c, k), "");
    hi = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, hi, len, ""), hi, len, "");
    lo = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, lo, cg_i64(c, 0), ""), lo, cg_i64(c, 0), "");
    return LLVMBuildSub(B, hi, lo, "");
}

/* 1 / |w(i, j) inside x|: avgpool's divisor. */
static LLVMValueRef inv_count(Cg *c, NodeId x, const Window *w, LLVMValueRef i, LLVMValueRef j) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef n = LLVMBuildMul(B, rows_inside(c, i, w->kh, w->sh, w->pt, cg_dim(c, x, 1)),
                                  rows_inside(c, j, w->kw, w->sw, w->pl, cg_dim(c, x, 2)), "");
    return LLVMBuildFDiv(B, cg_f(c, 1), LLVMBuildSIToFP(B, n, c->ft, ""), "");
}

static LLVMValueRef masked(Cg *c, LLVMValueRef inside, LLVMValueRef v, double other) {
    return LLVMBuildSelect(c->b, inside, v, cg_f(c, other), "");
}

static LLVMValueRef fma3(Cg *c, LLVMValueRef a, LLVMValueRef b, LLVMValueRef acc) {
    LLVMValueRef args[3] = {a, b, acc};
    return cg_intrinsic(c, "llvm.fmuladd", c->ft, args, 3);
}

/* The offset of element [(b, i, j), (u, v, ch)] of a patch matrix of window w
 * over C channels. */
static LLVMValueRef patch_off(Cg *c, const Window *w, int64_t C, LLVMValueRef b, LLVMValueRef i, LLVMValueRef j,
                              LLVMValueRef u, LLVMValueRef v, LLVMValueRef ch) {
    LLVMBuilderRef B = c->b;
    LLVMValueRef row = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildAdd(B, LLVMBuildMul(B, b, cg_i64(c, w->oh), ""), i, ""),
                                                    cg_i64(c, w->ow), ""), j, "");
    LLVMValueRef col = LLVMBuildAdd(B, LLVMBuildMul(B, LLVMBuildAdd(B, LLVMBuildMul(B, u, cg_i64(c, w->kw), ""), v, ""),
                                                    cg_i64(c, C), ""), ch, "");
    return LLVMBuildAdd(B, LLVMBuildMul(B, row, cg_i64(c, (int64_t)w->kh * w->kw * C), ""), col, "");
}

/* Samples [b0, b1) of 4-axis node id = 0. */
static void zero_samples(Cg *c, NodeId id, LLVMValueRef b0, LLVMValueRef b1) {
    const Shape *s = &c->g->nodes[id].shape;
    LLVMValueRef per = cg_i64(c, s->dim[1] * s->dim[2] * s->dim[3]);
    cg_fill(c, cg_elem_ptr(c, c->ptr[id], LLVMBuildMul(c->b, b0, per, "")),
            LLVMBuildMul(c->b, LLVMBuildSub(c->b, b1, b0, ""), per, ""), cg_f(c, 0));
}

/* dst (a pointer) += v */
static void add_to(Cg *c, LLVMValueRef dst, LLVMValueRef v) {
    LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, c->ft, dst, ""), v, ""), dst);
}

/* The loops over a window's (u, v), then its channels, at window (i, j) of
 * image x: the position read and whether it is inside x. */
typedef struct Walk {
    Loop lu, lv, lc;
    LLVMValueRef u, v, ch, inside;
    Pos p, q;
} Walk;

static void walk_open(Cg *c, Walk *k, NodeId x, const Window *w, LLVMValueRef i, LLVMValueRef j) {
    k->u = cg_loop_open(c, &k->lu, cg_i64(c, w->kh));
    k->v = cg_loop_open(c, &k->lv, cg_i64(c, w->kw));
    k->p = forward_pos(c, i, k->u, w->sh, w->pt, cg_dim(c, x, 1));
    k->q = forward_pos(c, j, k->v, w->sw, w->pl, cg_dim(c, x, 2));
    k->inside = LLVMBuildAnd(c->b, k->p.inside, k->q.inside, "");
    k->ch = cg_loop_open(c, &k->lc, cg_dim(c, x, 3));
}

static void walk_close(Cg *c, Walk *k) {
    cg_loop_close(c, &k->lc);
    cg_loop_close(c, &k->lv);
    cg_loop_close(c, &k->lu);
}

/* The image node id's windows are over: its samples are the units. */
static NodeId image_of(const Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    return n->op == OP_AVGPOOL_GRAD || n->op == OP_COL2IM ? id : n->in[0];
}

/* The adjoints scatter into x: they add to the positions a window read. */
static bool scatters(Op op) { return op == OP_AVGPOOL_GRAD || op == OP_COL2IM || op == OP_MAXPOOL_GRAD; }

/* maxpool's adjoints walk each window twice: its maximum, then where it is. */
static bool two_passes(Op op) { return op == OP_MAXPOOL_GRAD || op == OP_MAXPOOL_PICK; }

/* The pooling ops and the patches walk the windows: samples b (those in
 * [b0, b1): each kernel call's share), windows (i,
 * j), then each window's (u, v), then the channels innermost, contiguous
 * in every tensor, so the loop vectorises; a window's position is inside
 * or not for all its channels. The adjoints scatter: their result starts
 * at zero and each window adds to the positions it read (the order is
 * fixed, so the sums are the same on every run). The position of a
 * window's maximum differs by channel: those ops find it per channel. */
static void emit_windows(Cg *c, NodeId id, LLVMValueRef b0, LLVMValueRef b1) {
    const IrNode *n = &c->g->nodes[id];
    const Window *w = &n->win;
    NodeId a = n->in[0], b = n->in[1];
    bool scatter = scatters(n->op);
    NodeId x = image_of(c, id);
    LLVMValueRef C = cg_dim(c, x, 3);
    int64_t cc = c->g->nodes[x].shape.dim[3];
    LLVMBuilderRef B = c->b;
    /* maxpool_grad's user mul(it, step(x)) computed here instead (fuse.c's
     * relu_of_pool): dy step(x) where dy goes. */
    NodeId relu = c->sched->epilogue[id], out = relu >= 0 ? relu : id;
    const IrNode *step = relu < 0 ? NULL : &c->g->nodes[c->g->nodes[relu].in[c->g->nodes[relu].in[0] == id]];
    /* Windows that tile x exactly (maxpool 2 over 26 x 26) give every
     * position of dx one value: stored, with no pass zeroing dx first. */
    const Shape *xs = &c->g->nodes[x].shape;
    bool tiles = n->op == OP_MAXPOOL_GRAD && w->sh == w->kh && w->sw == w->kw && w->pt == 0 && w->pl == 0 &&
                 w->oh * w->sh == xs->dim[1] && w->ow * w->sw == xs->dim[2];
    if (scatter && !tiles)
        zero_samples(c, out, b0, b1);
    /* The sum of out over all but its channels (fuse.c's
     * schedule_sample_sums): each sample's channels at part[b C]. */
    LLVMValueRef part = NULL;
    if (c->sched->colsum[id] >= 0) {
        part = cg_arena_at(c, c->sched->partials[id]);
        cg_fill(c, cg_elem_ptr(c, part, LLVMBuildMul(B, b0, C, "")), LLVMBuildMul(B, LLVMBuildSub(B, b1, b0, ""), C, ""),
                cg_f(c, 0));
    }
    Nest4 o; /* b - b0, i, j, and one */
    Loop lc;
    open4(c, &o, LLVMBuildSub(B, b1, b0, ""), cg_i64(c, w->oh), cg_i64(c, w->ow), cg_i64(c, 1));
    LLVMValueRef bi = LLVMBuildAdd(B, b0, o.i[0], ""), i = o.i[1], j = o.i[2];
    /* maxpool's adjoints find each channel's first maximum (u, then v:
     * PyTorch's tie) in two passes over the window: its maximum per
     * channel (in max[]), then the first position holding it (done[]). */
    bool first = two_passes(n->op);
    LLVMValueRef max = first ? cg_var(c, c->ft, cc, "") : NULL, done = first ? cg_var(c, c->ft, cc, "") : NULL;
    if (n->op == OP_MAXPOOL || n->op == OP_AVGPOOL || first) { /* the window's values start at the identity */
        LLVMValueRef ch = cg_loop_open(c, &lc, C);
        LLVMValueRef ident = cg_f(c, n->op == OP_AVGPOOL ? 0 : -__builtin_inf());
        LLVMBuildStore(B, ident, first ? cg_elem_ptr(c, max, ch) : cg_elem_ptr(c, c->ptr[id], offset4(c, id, bi, i, j, ch)));
        if (first)
            LLVMBuildStore(B, cg_f(c, 0), cg_elem_ptr(c, done, ch));
        if (n->op == OP_MAXPOOL_PICK) /* a window of NaNs has no maximum: 0 */
            LLVMBuildStore(B, cg_f(c, 0), cg_elem_ptr(c, c->ptr[id], offset4(c, id, bi, i, j, ch)));
        cg_loop_close(c, &lc);
    }
    for (int pass = 0; first && pass < 2; pass++) {
        Walk k;
        walk_open(c, &k, x, w, i, j);
        LLVMValueRef xv = masked(c, k.inside, load4(c, x, bi, k.p.at, k.q.at, k.ch), -__builtin_inf());
        LLVMValueRef mp = cg_elem_ptr(c, max, k.ch), dp = cg_elem_ptr(c, done, k.ch);
        if (pass == 0) {
            LLVMBuildStore(B, cg_reduce_step(c, OP_MAX, LLVMBuildLoad2(B, c->ft, mp, ""), xv), mp);
        } else {
            LLVMValueRef d = LLVMBuildLoad2(B, c->ft, dp, "");
            LLVMValueRef hit = LLVMBuildAnd(B, LLVMBuildAnd(B, k.inside, LLVMBuildFCmp(B, LLVMRealOEQ, xv,
                                                              LLVMBuildLoad2(B, c->ft, mp, ""), ""), ""),
                                            LLVMBuildFCmp(B, LLVMRealOEQ, d, cg_f(c, 0), ""), "");
            LLVMBuildStore(B, LLVMBuildSelect(B, hit, cg_f(c, 1), d, ""), dp);
            if (n->op == OP_MAXPOOL_GRAD) { /* dx[b, first, c] += dy[b, i, j, c] */
                LLVMValueRef dy = load4(c, b, bi, i, j, k.ch);
                if (step)
                    dy = LLVMBuildFMul(B, dy, cg_elemwise_value(c, step, xv, NULL, NULL), "");
                LLVMValueRef at = cg_elem_ptr(c, c->ptr[out], offset4(c, id, bi, k.p.at, k.q.at, k.ch));
                LLVMValueRef dx = masked(c, hit, dy, 0);
                if (tiles)
                    LLVMBuildStore(B, dx, at);
                else
                    add_to(c, at, dx);
                if (part)
                    add_to(c, cg_elem_ptr(c, part, LLVMBuildAdd(B, LLVMBuildMul(B, bi, C, ""), k.ch, "")), dx);
            } else { /* r[b, i, j, c] = d[b, first, c] */
                LLVMValueRef r = cg_elem_ptr(c, c->ptr[id], offset4(c, id, bi, i, j, k.ch));
                LLVMBuildStore(B, LLVMBuildSelect(B, hit, load4(c, b, bi, k.p.at, k.q.at, k.ch), LLVMBuildLoad2(B, c->ft, r, ""), ""), r);
            }
        }
        walk_close(c, &k);
    }
    if (first) {
        close4(c, &o);
        return;
    }
    LLVMValueRef inv = n->op == OP_AVGPOOL || n->op == OP_AVGPOOL_GRAD ? inv_count(c, x, w, i, j) : NULL;
    Walk k;
    walk_open(c, &k, x, w, i, j);
    LLVMValueRef u = k.u, v = k.v, ch = k.ch, inside = k.inside;
    LLVMValueRef at_x = offset4(c, x, bi, k.p.at, k.q.at, ch); /* x[b, p, q, c] */
    switch (n->op) {
    case OP_MAXPOOL: { /* r[b, i, j, c] = max over the window of x */
        LLVMValueRef dst = cg_elem_ptr(c, c->ptr[id], offset4(c, id, bi, i, j, ch));
        LLVMValueRef xv = masked(c, inside, cg_load_at(c, a, at_x), -__builtin_inf());
        LLVMBuildStore(B, cg_reduce_step(c, OP_MAX, LLVMBuildLoad2(B, c->ft, dst, ""), xv), dst);
        break;
    }
    case OP_AVGPOOL: /* r[b, i, j, c] += x / |inside| */
        add_to(c, cg_elem_ptr(c, c->ptr[id], offset4(c, id, bi, i, j, ch)),
               LLVMBuildFMul(B, masked(c, inside, cg_load_at(c, a, at_x), 0), inv, ""));
        break;
    case OP_AVGPOOL_GRAD: /* dx[b, p, q, c] += dy[b, i, j, c] / |inside| (at a clamped position: 0) */
        add_to(c, cg_elem_ptr(c, c->ptr[id], at_x), masked(c, inside, LLVMBuildFMul(B, load4(c, a, bi, i, j, ch), inv, ""), 0));
        break;
    case OP_IM2COL: /* P[(b, i, j), (u, v, c)] = x[b, p, q, c] */
        LLVMBuildStore(B, masked(c, inside, cg_load_at(c, a, at_x), 0),
                       cg_elem_ptr(c, c->ptr[id], patch_off(c, w, cc, bi, i, j, u, v, ch)));
        break;
    case OP_COL2IM: /* dx[b, p, q, c] += P[(b, i, j), (u, v, c)] */
        add_to(c, cg_elem_ptr(c, c->ptr[id], at_x),
               masked(c, inside, cg_load_at(c, a, patch_off(c, w, cc, bi, i, j, u, v, ch)), 0));
        break;
    case OP_MAXPOOL_GRAD: case OP_MAXPOOL_PICK: /* above */
    IR_OPS_LEAF(OP_CASE) IR_OPS_BINARY(OP_CASE) IR_OPS_UNARY(OP_CASE) IR_OPS_REDUCE(OP_CASE)
    IR_OPS_MATMUL(OP_CASE) IR_OPS_MOVEMENT(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
    case OP_CONV2D: case OP_CONV2D_DATA: case OP_CONV2D_FILTER:
        die("emit_windows: %s", op_info[n->op].name);
    }
    walk_close(c, &k);
    close4(c, &o);
}

static LLVMValueRef samples(Cg *c, void *id) { return cg_dim(c, image_of(c, *(NodeId *)id), 0); }

/* The convolutions, one result element at a time: the reference (at -O2
 * they are products, conv_gemm.c). The other window ops are kernels over
 * the samples, on the thread pool. */
void cg_window(Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    const Window *w = &n->win;
    NodeId a = n->in[0], b = n->in[1];
    LLVMBuilderRef B = c->b;
    if (!op_info[n->op].gemm) {
        /* The element visits emit_windows makes: each pass over the
         * windows, and the adjoints' zeroing of x (counting it whether or
         * not the windows tile x errs on the side of the pool). */
        const Shape *x = &c->g->nodes[image_of(c, id)].shape;
        double work = (double)x->dim[0] * (double)w->oh * (double)w->ow * w->kh * w->kw * (double)x->dim[3] *
                          (two_passes(n->op) ? 2 : 1) +
                      (scatters(n->op) ? (double)x->dim[0] * (double)x->dim[1] * (double)x->dim[2] * (double)x->dim[3] : 0);
        work *= CG_VISIT_WORK;
        char name[256];
        Cg step;
        LLVMValueRef kfn = cg_kernel_begin(c, &step, "win", false, name, sizeof name);
        emit_windows(c, id, LLVMGetParam(kfn, 1), LLVMGetParam(kfn, 2));
        cg_kernel_end(c, &step, name, samples, &id, work);
        NodeId sum = c->sched->colsum[id];
        if (sum >= 0) /* the samples' partial sums, in order */
            cg_sum_partials(c, c->ptr[sum], c->sched->partials[id], samples(c, &id), x->dim[3], cg_i64(c, x->dim[3]));
        return;
    }
    LLVMValueRef acc = cg_var(c, c->ft, 1, "acc");
    Nest4 o; /* over the result: o.i[0..3] */
    open_dims(c, &o, id);
    LLVMValueRef *r = o.i;
    LLVMBuildStore(B, cg_f(c, 0), acc);
    Nest4 in; /* the loops of the sum */
    LLVMValueRef v = NULL;
    switch (n->op) {
    case OP_CONV2D: { /* r[b, i, j, f] += x[b, p, q, c] k[u, v, c, f] */
        open4(c, &in, cg_i64(c, w->kh), cg_i64(c, w->kw), cg_dim(c, a, 3), cg_i64(c, 1));
        Pos p = forward_pos(c, r[1], in.i[0], w->sh, w->pt, cg_dim(c, a, 1));
        Pos q = forward_pos(c, r[2], in.i[1], w->sw, w->pl, cg_dim(c, a, 2));
        LLVMValueRef x = masked(c, LLVMBuildAnd(B, p.inside, q.inside, ""), load4(c, a, r[0], p.at, q.at, in.i[2]), 0);
        v = fma3(c, x, load4(c, b, in.i[0], in.i[1], in.i[2], r[3]), get(c, acc, c->ft));
        break;
    }
    case OP_CONV2D_DATA: { /* r[b, p, q, c] += dy[b, i, j, f] k[u, v, c, f] */
        open4(c, &in, cg_i64(c, w->kh), cg_i64(c, w->kw), cg_dim(c, b, 3), cg_i64(c, 1));
        Pos i = window_of(c, r[1], in.i[0], w->sh, w->pt, cg_dim(c, a, 1));
        Pos j = window_of(c, r[2], in.i[1], w->sw, w->pl, cg_dim(c, a, 2));
        LLVMValueRef dy = masked(c, LLVMBuildAnd(B, i.inside, j.inside, ""), load4(c, a, r[0], i.at, j.at, in.i[2]), 0);
        v = fma3(c, dy, load4(c, b, in.i[0], in.i[1], r[3], in.i[2]), get(c, acc, c->ft));
        break;
    }
    case OP_CONV2D_FILTER: { /* r[u, v, c, f] += x[b, p, q, c] dy[b, i, j, f] */
        open4(c, &in, cg_dim(c, b, 0), cg_dim(c, b, 1), cg_dim(c, b, 2), cg_i64(c, 1));
        Pos p = forward_pos(c, in.i[1], r[0], w->sh, w->pt, cg_dim(c, a, 1));
        Pos q = forward_pos(c, in.i[2], r[1], w->sw, w->pl, cg_dim(c, a, 2));
        LLVMValueRef x = masked(c, LLVMBuildAnd(B, p.inside, q.inside, ""), load4(c, a, in.i[0], p.at, q.at, r[2]), 0);
        v = fma3(c, x, load4(c, b, in.i[0], in.i[1], in.i[2], r[3]), get(c, acc, c->ft));
        break;
    }
    IR_OPS_LEAF(OP_CASE) IR_OPS_BINARY(OP_CASE) IR_OPS_UNARY(OP_CASE) IR_OPS_REDUCE(OP_CASE)
    IR_OPS_MATMUL(OP_CASE) IR_OPS_MOVEMENT(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
    case OP_MAXPOOL: case OP_MAXPOOL_GRAD: case OP_MAXPOOL_PICK: case OP_AVGPOOL: case OP_AVGPOOL_GRAD:
    case OP_IM2COL: case OP_COL2IM:
        die("cg_window: %s", op_info[n->op].name);
    }
    LLVMBuildStore(B, v, acc);
    close4(c, &in);
    LLVMBuildStore(B, get(c, acc, c->ft), cg_elem_ptr(c, c->ptr[id], offset4(c, id, r[0], r[1], r[2], r[3])));
    close4(c, &o);
}

/* A 64-bit mix of (key, counter, index): splitmix64's finalizer over a
 * sum of the three scaled by odd constants. The top 24 bits make a float
 * in [0, 1) exact in float32 and float64 alike. */
void cg_random(Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    LLVMBuilderRef B = c->b;
    LLVMValueRef count = cg_i64(c, 1);
    for (int d = 0; d < n->shape.rank; d++)
        count = LLVMBuildMul(B, count, cg_dim(c, id, d), "");
    LLVMValueRef k = LLVMBuildFPToSI(B, cg_load_at(c, n->in[0], cg_i64(c, 0)), c->i64, "");
    LLVMValueRef seed = LLVMBuildAdd(B, LLVMBuildMul(B, k, cg_i64(c, (int64_t)0xC2B2AE3D27D4EB4Full), ""),
                                     cg_i64(c, (int64_t)((uint64_t)n->value * 0x9E3779B97F4A7C15ull)), "");
    Loop l;
    LLVMValueRef e = cg_loop_open(c, &l, count);
    LLVMValueRef at = e;
    if (n->start) { /* numbered from the step's first sample among all ranks (runtime/mpi.c) */
        LLVMValueRef first = LLVMGetNamedGlobal(c->mod, "nnrt_mpi_first_sample");
        if (!first)
            first = LLVMAddGlobal(c->mod, c->i64, "nnrt_mpi_first_sample"); /* resolved by the JIT */
        LLVMValueRef per = cg_i64(c, 1); /* elements of a sample: axis 0 is the batch's */
        for (int d = 1; d < n->shape.rank; d++)
            per = LLVMBuildMul(B, per, cg_dim(c, id, d), "");
        at = LLVMBuildAdd(B, e, LLVMBuildMul(B, LLVMBuildLoad2(B, c->i64, first, "first"), per, ""), "");
    }
    LLVMValueRef z = LLVMBuildAdd(B, seed, LLVMBuildMul(B, at, cg_i64(c, (int64_t)0x165667B19E3779F9ull), ""), "");
    static const uint64_t mul[2] = {0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull};
    static const int shift[3] = {30, 27, 31};
    for (int r = 0; r < 3; r++) {
        z = LLVMBuildXor(B, z, LLVMBuildLShr(B, z, cg_i64(c, shift[r]), ""), "");
        if (r < 2)
            z = LLVMBuildMul(B, z, cg_i64(c, (int64_t)mul[r]), "");
    }
    LLVMValueRef u = LLVMBuildUIToFP(B, LLVMBuildLShr(B, z, cg_i64(c, 40), ""), c->ft, "");
    LLVMBuildStore(B, LLVMBuildFMul(B, u, cg_f(c, 0x1p-24), ""), cg_elem_ptr(c, c->ptr[id], e));
    cg_loop_close(c, &l);
}
