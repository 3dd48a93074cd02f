/* conv_gemm.c — at -O2, convolutions as products for the matmul kernel.
 *
 * A convolution is a product once its input's patches are rows: with
 * P = im2col(x), [n oh ow, kh kw C], and the filter k read as the matrix
 * K = [kh kw C, F] (channels last, it already lies so),
 *     conv2d(x, k)         = P K                       reshaped to [n, oh, ow, F]
 *     conv2d_filter(x, dy) = (dY^T P)^T or P^T dY      dY = dy as [n oh ow, F]
 *     conv2d_data(dy, k)   = col2im(dY K^T)
 * so the three run on the register-blocked kernel (cg_matmul.c), threads,
 * packing, transposes read through strides and all. P itself is not
 * computed where the kernel can read it from x (fuse.c folds it): as A,
 * each part of the rows gathered into a buffer that stays in L2; as B,
 * while packing. Nor is dY K^T: its kernel adds each result to the image
 * position col2im takes it to (emit_scatter). The filter gradient's long
 * sum runs down the rows of P and dY. Where it is long enough, the kernel
 * splits it between units (cg_matmul_ksplit): P^T dY, P^T gathered a
 * chunk of P's rows at a time. Else the kernel reads its A operand (here a
 * transpose) a tile's few floats of each row at a time, for every row
 * tile, so A is the one of shorter rows: dY^T P for 64 filters against 288
 * patch elements (P^T dY, not split, took 2.4 times the forward product's
 * time), P^T dY for 9 against 32 (dY^T P took 1.5 times as long).
 *
 * The window ops stay in the step graph (--emit=ir, grad) and are the -O0
 * reference (cg_window.c); this rewrite is what -O2 schedules and
 * --emit=kernels shows.
 *
 * An elementwise op of a product's result seen as an image, such as the
 * bias and activation after a convolution, is moved before the reshape,
 * onto the product's [n oh ow, F]: there fuse.c makes it the matmul
 * kernel's epilogue, computed on the accumulators.
 */
#include "nnc.h"

/* Node x's window's patches as rows, [n oh ow, kh kw C]. */
static NodeId patches(Graph *g, NodeId x, const Window *w, Loc l) {
    const IrNode *n = &g->nodes[x];
    Shape s = {2, {n->shape.dim[0] * w->oh * w->ow, (int64_t)w->kh * w->kw * n->shape.dim[3]}};
    return ir_window(g, OP_IM2COL, x, -1, *w, s, n->batch_axes, l);
}

/* 4-axis node x as the matrix [d0 d1 d2, d3]: an image's positions as rows
 * (dy as dY), a filter [kh, kw, C, F] as K [kh kw C, F]. */
static NodeId matrix(Graph *g, NodeId x, Loc l) {
    const Shape *s = &g->nodes[x].shape;
    return ir_reshape(g, x, (Shape){2, {s->dim[0] * s->dim[1] * s->dim[2], s->dim[3]}}, l);
}

/* Node n of the step graph (operands already in g as a, b) as products. */
static NodeId as_gemm(Graph *g, const IrNode *n, NodeId a, NodeId b) {
    Loc l = n->loc;
    const Window *w = &n->win;
    switch (n->op) {
    case OP_CONV2D:
        return ir_reshape(g, ir_matmul(g, patches(g, a, w, l), matrix(g, b, l), l), n->shape, l);
    case OP_CONV2D_FILTER: { /* A, read through strides, is the operand of shorter rows, unless the sum is split */
        NodeId p = patches(g, a, w, l), dy = matrix(g, b, l), m = ir_matmul(g, ir_transpose(g, p, l), dy, l);
        if (cg_matmul_ksplit(g, m) || g->nodes[p].shape.dim[1] <= g->nodes[dy].shape.dim[1])
            return ir_reshape(g, m, n->shape, l);
        return ir_reshape(g, ir_transpose(g, ir_matmul(g, ir_transpose(g, dy, l), p, l), l), n->shape, l);
    }
    case OP_CONV2D_DATA:
        return ir_window(g, OP_COL2IM, ir_matmul(g, matrix(g, a, l), ir_transpose(g, matrix(g, b, l), l), l), -1, *w,
                         n->shape, n->batch_axes, l);
    IR_OPS_LEAF(OP_CASE) IR_OPS_BINARY(OP_CASE) IR_OPS_UNARY(OP_CASE) IR_OPS_REDUCE(OP_CASE)
    IR_OPS_MATMUL(OP_CASE) IR_OPS_MOVEMENT(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
    case OP_MAXPOOL: case OP_MAXPOOL_GRAD: case OP_MAXPOOL_PICK: case OP_AVGPOOL: case OP_AVGPOOL_GRAD:
    case OP_IM2COL: case OP_COL2IM:
        break;
    }
    die("as_gemm: %s", op_info[n->op].name); /* not gemm */
}

/* Node n (elementwise; operands a, b in g, b -1 for one) done on the
 * matrix Y [R, F] that a reshapes to n's shape, and reshaped after; -1
 * unless a is such a reshape of a product or of an op on one (an epilogue
 * takes two: the bias, the activation) and b varies along the last axis
 * only (a bias, a scalar), so that Y's element (r, f) meets b's f. */
static NodeId sunk(Graph *g, const IrNode *n, NodeId a, NodeId b) {
    const IrNode *x = &g->nodes[a];
    int last = n->shape.rank - 1;
    if (x->op != OP_RESHAPE || !shape_eq(&x->shape, &n->shape) || last < 0 || op_info[n->op].index)
        return -1;
    NodeId y = x->in[0];
    const Shape *ys = &g->nodes[y].shape;
    const IrNode *yn = &g->nodes[y];
    bool product = yn->op == OP_MATMUL || (op_info[yn->op].cls == CLASS_ELEMWISE && g->nodes[yn->in[0]].op == OP_MATMUL);
    if (!product || ys->rank != 2 || ys->dim[1] != n->shape.dim[last]) /* the two ops an epilogue takes */
        return -1;
    Loc l = n->loc;
    if (b < 0)
        return ir_reshape(g, op_info[n->op].alpha ? ir_unary_alpha(g, n->op, y, n->value, l) : ir_unary(g, n->op, y, l),
                          n->shape, l);
    const IrNode *z = &g->nodes[b];
    if (z->batch_axes)
        return -1;
    for (int d = 0; d + 1 < z->shape.rank; d++)
        if (z->shape.dim[d] != 1)
            return -1;
    if (z->shape.rank > 1)
        b = ir_reshape(g, b, (Shape){1, {z->shape.dim[z->shape.rank - 1]}}, l);
    return ir_reshape(g, ir_binary(g, n->op, y, b, l), n->shape, l);
}

Graph *conv_gemm(Graph *g) {
    bool any = false;
    for (int i = 0; i < g->nnodes; i++)
        any |= op_info[g->nodes[i].op].gemm;
    if (!any)
        return g;
    Graph *d = ir_new(g->arena, g->dtype);
    d->batch = g->batch;
    for (int i = 0; i < g->nslots; i++)
        ir_add_slot(d, g->slots[i]);
    NodeId *map = arena_array(g->arena, (size_t)g->nnodes + 1, sizeof *map);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        NodeId a = op_info[n->op].arity > 0 ? map[n->in[0]] : -1, b = op_info[n->op].arity > 1 ? map[n->in[1]] : -1;
        NodeId r = op_info[n->op].cls == CLASS_ELEMWISE ? sunk(d, n, a, b) : -1;
        map[i] = op_info[n->op].gemm ? as_gemm(d, n, a, b) : r >= 0 ? r : ir_copy(d, n, map);
    }
    for (int i = 0; i < g->noutputs; i++)
        ir_add_output(d, map[g->outputs[i].node], g->outputs[i].slot);
    return ir_dce(d);
}
