/* cg_rows.c — a row loop (fuse_rows.c) as LLVM IR: one loop over the
 * batch's rows, in which every kernel of the loop computes its row r.
 *
 * A row is a value in registers: a float, or a <len x float> vector of the
 * row's elements (len <= 64, a constant; LLVM splits or pads it to the
 * host's vectors). Each kernel computes its row from the rows of the
 * kernels before it, kept as values, so nothing the loop computes is loaded
 * again; it stores its row for the kernels after the loop, and a reduction
 * over all rows adds its row into its one element. Reductions along a row
 * combine the lanes in order, from the identity, as the -O0 loops do, so
 * the loop computes what they compute, to the bit (the libm calls of exp
 * and log are the same, made per lane).
 */
#include "cg.h"

#include <stdlib.h>

typedef struct Rows {
    Cg *c;
    NodeId loop;       /* the loop's first kernel: Schedule.rows of each of its kernels */
    LLVMValueRef r;    /* the row */
    LLVMValueRef *val; /* per node: its row r, once computed in this row */
} Rows;

static bool is_vector(LLVMValueRef v) { return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind; }

/* A float v in every lane of a row of len elements; a row as it is. */
static LLVMValueRef widen(Cg *c, LLVMValueRef v, int64_t len) {
    return len > 1 && !is_vector(v) ? cg_splat(c, v, (int)len) : v;
}

/* The lanes of a row combined in order, starting from acc. */
static LLVMValueRef fold_lanes(Cg *c, Op op, LLVMValueRef acc, LLVMValueRef v) {
    if (!is_vector(v))
        return cg_reduce_step(c, op, acc, v);
    for (unsigned l = 0; l < LLVMGetVectorSize(LLVMTypeOf(v)); l++)
        acc = cg_reduce_step(c, op, acc, LLVMBuildExtractElement(c->b, v, cg_i64(c, l), ""));
    return acc;
}

/* len elements of type et (float, or the bytes of a uint8 input) at
 * element offset off of base, as a row of floats. */
static LLVMValueRef load_row(Cg *c, LLVMTypeRef et, LLVMValueRef base, LLVMValueRef off, int64_t len) {
    LLVMTypeRef t = len > 1 ? LLVMVectorType(et, (unsigned)len) : et;
    LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, et, base, &off, 1, "");
    LLVMValueRef x = LLVMBuildLoad2(c->b, t, cg_ptr_to(c, p, t), "");
    if (et == c->ft) {
        LLVMSetAlignment(x, dtype_bytes(c->g->dtype));
        return x;
    }
    LLVMSetAlignment(x, 1);
    return LLVMBuildUIToFP(c->b, x, len > 1 ? LLVMVectorType(c->ft, (unsigned)len) : c->ft, "");
}

static void store_row(Cg *c, LLVMValueRef v, LLVMValueRef base, LLVMValueRef off) {
    LLVMValueRef p = cg_ptr_to(c, cg_elem_ptr(c, base, off), LLVMTypeOf(v));
    LLVMSetAlignment(LLVMBuildStore(c->b, v, p), dtype_bytes(c->g->dtype));
}

/* Is x computed by a kernel of this loop (its own, or inlined into one)? */
static bool in_loop(const Rows *w, NodeId x) {
    const Schedule *s = w->c->sched;
    Placement p = s->place[x];
    return (p == PLACE_INLINE || p == PLACE_ARENA || p == PLACE_SLOT) && s->rows[s->root[x]] == w->loop;
}

/* x's elements per row in this loop: its row length, or for a value
 * without a batch axis (the same in every row), its elements. */
static int64_t width(const Graph *g, NodeId x) {
    int64_t len = schedule_row_len(g, x);
    return len >= 0 ? len : shape_elems(&g->nodes[x].shape);
}

/* <0, 1, .., len-1> as floats: the column of each lane (onehot's). */
static LLVMValueRef lane_index(Cg *c, int64_t len) {
    if (len == 1)
        return cg_f(c, 0);
    LLVMValueRef e[64];
    for (int64_t l = 0; l < len; l++)
        e[l] = cg_f(c, (double)l);
    return LLVMConstVector(e, (unsigned)len);
}

/* logsoftmax of a row: x - max - log sum e^(x - max). */
static LLVMValueRef row_logsoftmax(Cg *c, LLVMValueRef x, int64_t len) {
    LLVMValueRef m = fold_lanes(c, OP_MAX, cg_f(c, cg_reduce_identity(OP_MAX)), x);
    LLVMValueRef d = LLVMBuildFSub(c->b, x, widen(c, m, len), "");
    LLVMValueRef e = cg_intrinsic(c, "llvm.exp", LLVMTypeOf(d), &d, 1);
    LLVMValueRef s = fold_lanes(c, OP_SUM, cg_f(c, 0), e);
    LLVMValueRef lse = LLVMBuildFAdd(c->b, m, cg_intrinsic(c, "llvm.log", c->ft, &s, 1), "");
    return LLVMBuildFSub(c->b, x, widen(c, lse, len), "");
}

/* Row r of x from memory: of a batch, or what every row shares. */
static LLVMValueRef row_load(Rows *w, NodeId x) {
    Cg *c = w->c;
    if (c->g->nodes[x].op == OP_CONST)
        return cg_const(c, x);
    const IrNode *n = &c->g->nodes[x];
    LLVMTypeRef et = n->op == OP_INPUT && c->g->slots[n->slot].u8 ? LLVMInt8TypeInContext(c->ctx) : c->ft;
    int64_t len = width(c->g, x);
    LLVMValueRef off = schedule_row_len(c->g, x) >= 0 ? LLVMBuildNUWMul(c->b, w->r, cg_i64(c, len), "") : cg_i64(c, 0);
    return load_row(c, et, c->ptr[x], off, len);
}

/* Row r of x: computed here from the rows it reads if the loop computes x,
 * else loaded; once per row. */
static LLVMValueRef row_value(Rows *w, NodeId x) {
    if (w->val[x])
        return w->val[x];
    Cg *c = w->c;
    const IrNode *n = &c->g->nodes[x];
    NodeId src = schedule_memory(c->g, c->sched, x);
    int64_t len = width(c->g, x);
    LLVMValueRef v;
    if (src != x && in_loop(w, src)) {
        v = row_value(w, src); /* a reshape keeping the row: the same elements */
    } else if (!in_loop(w, x)) {
        v = row_load(w, x);
    } else if (n->op == OP_LOGSOFTMAX) {
        v = row_logsoftmax(c, row_value(w, n->in[0]), len);
    } else if (op_info[n->op].cls == CLASS_REDUCE) { /* along the row: [n, 1] */
        v = fold_lanes(c, n->op, cg_f(c, cg_reduce_identity(n->op)), row_value(w, n->in[0]));
    } else {
        LLVMValueRef a = widen(c, row_value(w, n->in[0]), len);
        LLVMValueRef b = op_info[n->op].arity > 1 ? widen(c, row_value(w, n->in[1]), len) : NULL;
        v = cg_elemwise_value(c, n, a, b, op_info[n->op].index ? lane_index(c, len) : NULL);
    }
    return w->val[x] = v;
}

void cg_rows(Cg *c, const NodeId *ks, int nk) {
    const Schedule *s = c->sched;
    Rows w = {.c = c, .loop = -1};
    for (int k = 0; k < nk; k++) {
        if (w.loop < 0)
            w.loop = s->rows[ks[k]];
        if (schedule_has_loop(s, ks[k]) && schedule_row_across(c->g, ks[k]))
            LLVMBuildStore(c->b, cg_f(c, cg_reduce_identity(c->g->nodes[ks[k]].op)), c->ptr[ks[k]]);
    }
    w.val = xcalloc((size_t)c->g->nnodes + 1, sizeof *w.val);
    Loop l;
    w.r = cg_loop_open(c, &l, c->n);
    for (int k = 0; k < nk; k++) {
        NodeId id = ks[k];
        if (!schedule_has_loop(s, id))
            continue; /* no loop of its own: an alias, or computed in another kernel */
        if (schedule_row_across(c->g, id)) {
            LLVMValueRef acc = LLVMBuildLoad2(c->b, c->ft, c->ptr[id], "");
            Op op = c->g->nodes[id].op;
            LLVMBuildStore(c->b, fold_lanes(c, op, acc, row_value(&w, c->g->nodes[id].in[0])), c->ptr[id]);
        } else {
            LLVMValueRef off = LLVMBuildNUWMul(c->b, w.r, cg_i64(c, width(c->g, id)), "");
            store_row(c, row_value(&w, id), c->ptr[id], off);
        }
    }
    cg_loop_close(c, &l);
    free(w.val);
}
