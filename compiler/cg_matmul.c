/* cg_matmul.c — C = A B as a register-blocked kernel in LLVM vector IR.
 *
 * The Goto/BLIS microkernel: C is cut into tiles of MR rows by NV vectors of
 * columns. A tile's MR x NV accumulators stay in registers for the whole k
 * loop; each step loads NV vectors of B's row k, broadcasts MR elements of A's
 * column k and does MR x NV fused multiply-adds. Every B element loaded feeds
 * MR FMAs and every A element NV x VL of them, so the loop is bound by FMA
 * throughput, where the naive i-k-j loop (codegen.c, the -O0 reference) is
 * bound by loading and storing C. Where it pays (cg_matmul_block_rows), a
 * column panel of B (K x NV*VL) is packed first, into a contiguous buffer
 * that stays in L2 across all row tiles; packing is also where B may be read
 * as a transpose and where the sum of its rows (a bias gradient) is taken.
 * A long K is cut into blocks of KC rows, packed one after the other (Goto's
 * KC loop). A weight matrix kept in panels between steps (layout.c) is read
 * as it lies, never packed, and the epilogue that updates it stores into
 * its panels.
 *
 * Column counts are constants, so edges are separate instantiations with
 * exact vector widths (10 columns: an 8-wide and a 2-wide vector), no scalar
 * remainder loops. With AVX-512, whose masked loads and stores cost what
 * plain ones do, an edge that is not a power of two is one masked vector
 * instead (10 columns: 10 lanes of 16): half the FMAs per row for the
 * 10-class layer, whose products are nothing but edge.
 * Rows and the k loop may be the batch, of n samples at run time: full
 * tiles while they fit, then tiles of fewer rows (mr/3, then 1) for what is
 * left, so every n is served by three tile shapes. A may be a transpose node: the kernel reads its operand through
 * swapped strides, so X^T dZ never materialises X^T. Either operand may be
 * a convolution's patch matrix (conv_gemm.c), read from its image: B while
 * packing, A gathered into a buffer a part of the rows at a time.
 * The kernel is an outlined function over column panels [begin, end) (or,
 * for a product of few panels and many rows, parts of the rows, each for
 * every panel: row_parts): the unit of work the thread pool splits. It is
 * a module of its own (in its own LLVM context), so kernels and step
 * functions compile in parallel, and the JIT gives it a short pass
 * pipeline: its loops are already what a CPU runs best, where the step
 * function's naive loops need O3's vectoriser.
 */
#include "cg.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_MR = 12, MAX_NV = 4 };

/* The thresholds of splitting a product between threads (cg.h's
 * CG_PARALLEL_MIN_WORK, CG_SMALL_WORK), measured: 784-128-10 at batch 32
 * has two products of 3.2M multiply-adds and three of 41K. On 2 vCPUs
 * (EPYC), epochs with its large products split against on one thread:
 * 0.09 s against 0.14 in the machine's quiet state, 0.22 against 0.14 in
 * the state (for minutes at a time) where the second vCPU runs kernels at
 * about half speed, as if it shared a core. Splitting 784-512-10 b128's
 * 51M pays in both (0.29 and 0.37 s against 0.49). */

/* A packed block of B (KC rows of a column panel) lives on the kernel's
 * stack and stays in L2 (1 MiB a core on the EPYC here) while every row tile
 * reads it: KC = 2048 with AVX-512 floats. Blocks sized for L1 instead (KC
 * 128 to 384) measured the same, within noise, on 128x784x512 (196-201
 * GFLOP/s, 1 thread). Longer products are cut into blocks: each row tile
 * then keeps its partial sums between blocks in a scratch panel of M rows,
 * on the stack too, of at most SCRATCH_BYTES (M <= 2048 with AVX-512
 * floats); where M is longer still, B is read in place, unpacked. */
#define PACK_BYTES (256 * 1024)
#define SCRATCH_BYTES (256 * 1024)
#define PACK_MIN_TILES 8                 /* row tiles (see cg_matmul_block_rows) */
#define IN_PLACE_BYTES (2 * 1024 * 1024) /* (see cg_matmul_block_rows) */
enum { UNITS = 8 };                       /* work units a product is cut into, at least (row_parts) */
#define A_PART_BYTES (256 * 1024)         /* of A in a part of the rows (row_parts) */
/* Of the patches a part gathers (a convolution's forward product): the
 * gather's stores then stay in L1 and its tiles read them from there. In
 * parts of 256 KiB, conv2 of cnn.nn spent 10% of its forward product
 * gathering (stores to L2), in parts of 32 KiB 6.6% (shares of the kernel,
 * perf, one thread). */
#define GATHER_PART_BYTES (32 * 1024)

/* A patch matrix P = im2col(x) (conv_gemm.c) read from the image x
 * itself: row i of P is the window at output position (b, oy, ox), column
 * j its element (ky, kx, ch), so
 *     P(i, j) = x[b, oy sh - pt + ky, ox sw - pl + kx, ch], 0 outside x.
 * x [n, H, W, C] is a few times smaller than P (conv2 of cnn.nn: 2.8 MB
 * against 17.8 MB at batch 128) and stays in L2, where P, written by an
 * im2col kernel and read back, went through memory twice. */
typedef struct Patches {
    const Window *w;
    int64_t H, W, C; /* x's sample */
    bool valid;      /* no window leaves x: no position is checked */
} Patches;

/* Element (row, column) of an operand is at base + (row - r0) * rs +
 * (column - k0) * cs; or, where it is a weight matrix kept in panels (layout.c)
 * read as B (rs and cs NULL), or as W^T (rs NULL, cs the panel width), at
 * panel_off(); or, where B is a patch matrix, at its image's (patches,
 * base x). r0 is where a part's copy of A starts (0 elsewhere). */
typedef struct Strided {
    LLVMValueRef base, rs, cs;
    int64_t panel_rows; /* in panels: the rows of the matrix in memory; else 0 */
    LLVMValueRef r0, k0;
    const Patches *patches;
} Strided;

/* The patch matrix of window w over an image of shape s. */
static Patches patches_from(const Window *w, const Shape *s) {
    return (Patches){w, s->dim[1], s->dim[2], s->dim[3],
                     w->pt == 0 && w->pl == 0 && (w->oh - 1) * w->sh + w->kh <= s->dim[1] &&
                         (w->ow - 1) * w->sw + w->kw <= s->dim[2]};
}

/* Is node p a patch matrix (then the kernel can read it from its image, a
 * float tensor: a uint8 input reaches a layer scaled, model.c)? */
static bool patches_of(const Graph *g, NodeId p, Patches *out) {
    const IrNode *n = &g->nodes[p];
    if (n->op != OP_IM2COL)
        return false;
    *out = patches_from(&n->win, &g->nodes[n->in[0]].shape);
    return true;
}

typedef struct Tiling {
    int64_t N;
    LLVMValueRef M, K; /* the batch size n where they are batch axes */
    int64_t kc;   /* rows of B per packed block */
    int mr;       /* rows per full tile */
    int nv;       /* vectors per full panel */
    int vl;       /* elements per vector */
    bool masks;   /* masked vectors are cheap (AVX-512) */
} Tiling;

/* A vector of a tile's row: w elements, of which the first `lanes` are
 * columns of C (the rest masked off). */
typedef struct Vec {
    int w, lanes;
} Vec;

/* Columns of a full column panel: the kernel's unit of work, and of the
 * packed layout (layout.c). */
static int64_t panel_of(const Tiling *t) { return (int64_t)t->nv * t->vl; }

/* The register tile for the target: MR x NV accumulators plus NV vectors of B
 * and a broadcast must fit the register file (32 with AVX-512, else 16). */
static Tiling tiling(DType dt, int64_t N, const Target *tg) {
    int bits = tg->vector_bits;
    int elem = dt == DT_F64 ? 64 : 32;
    Tiling t = {N, NULL, NULL, 0, bits >= 512 ? 12 : 6, 2, bits / elem, bits >= 512};
    t.kc = PACK_BYTES / ((int64_t)t.nv * bits / 8);
    /* Tests force short blocks, to cover the blocked path with small models. */
    if (tg->kc > 0)
        t.kc = tg->kc;
    return t;
}

bool cg_matmul_tiled(const Graph *g, NodeId m) {
    const IrNode *n = &g->nodes[m];
    /* The kernel reads its operands from memory: a constant one (rare) takes
     * the naive path, and so does a product with batch columns (the
     * kernel's column panels are fixed). */
    return n->op == OP_MATMUL && g->nodes[n->in[0]].op != OP_CONST && g->nodes[n->in[1]].op != OP_CONST &&
           !(ir_batch_axes(g, m) >> 1 & 1);
}

bool cg_matmul_can_pack(const Graph *g, NodeId m, const Target *tg) {
    if (!cg_matmul_tiled(g, m))
        return false;
    Tiling t = tiling(g->dtype, 0, tg);
    int64_t K = g->nodes[g->nodes[m].in[0]].shape.dim[1], M = g->nodes[m].shape.dim[0];
    return K <= t.kc || M <= SCRATCH_BYTES / (panel_of(&t) * dtype_bytes(g->dtype));
}

/* Packing copies B once per call. It pays for itself where B is read as a
 * transpose or summed, and where B is large and enough row tiles read each
 * panel. A panel of a 64-byte aligned B read in place is as fast as packed
 * while B spans few pages. Measured (EPYC, 1 thread, GFLOP/s, in place
 * against packed): K x N = 784x512 (1.6 MB) 222 against 209, 1024x512 215
 * against 209, 1536x512 175 against 206, 1024x2048 166 against 196, 4096x512
 * 156 against 193 (in blocks). 784-128-10 at batch 32, whose forward product
 * has 32 rows (3 tiles), took 0.169 s an epoch packed against 0.161. A
 * long sum over a large B (a convolution's filter gradient, dY^T P with P
 * [n oh ow, kh kw C]) is packed in blocks for half as many row tiles: read
 * in place, each of conv2's 6 tiles streamed its whole panel from memory
 * (the product took 1.4 times as long). */
int64_t cg_matmul_block_rows(const Graph *g, const Schedule *s, NodeId m) {
    if (layout_in_panels(g, s, g->nodes[m].in[1]))
        return 0; /* packed already */
    const IrNode *b = &g->nodes[g->nodes[m].in[1]];
    Tiling t = tiling(g->dtype, 0, s->target);
    double bytes = (double)b->shape.dim[0] * (double)b->shape.dim[1] * dtype_bytes(g->dtype);
    /* A K split's unit reads only its chunk of B, at most KC rows (512 KiB
     * of conv2's dY): packing that was 6% of conv2's filter gradient. */
    if (schedule_ksplit_units(g, s, m) && bytes > (double)t.kc * (double)b->shape.dim[1] * dtype_bytes(g->dtype))
        bytes = (double)t.kc * (double)b->shape.dim[1] * dtype_bytes(g->dtype);
    Patches p;
    bool packs = cg_matmul_can_pack(g, m, s->target) &&
                 (b->op == OP_TRANSPOSE || s->colsum[m] >= 0 || patches_of(g, g->nodes[m].in[1], &p) ||
                  (bytes > IN_PLACE_BYTES &&
                   (g->nodes[m].shape.dim[0] >= PACK_MIN_TILES * t.mr ||
                    (b->shape.dim[0] > t.kc && g->nodes[m].shape.dim[0] >= PACK_MIN_TILES / 2 * t.mr))));
    return !packs ? 0 : b->shape.dim[0] < t.kc ? b->shape.dim[0] : t.kc;
}

int64_t cg_matmul_panel_width(const Graph *g, const Target *tg) {
    Tiling t = tiling(g->dtype, 0, tg);
    return panel_of(&t);
}

/* Is x, the transpose of a patch matrix P, read only as the A of K splits,
 * which gather P's rows a chunk at a time (one row fits A_PART_BYTES)? */
static bool ksplit_gathers(const Graph *g, NodeId x) {
    const IrNode *n = &g->nodes[x];
    if (n->op != OP_TRANSPOSE || n->shape.dim[0] * (int64_t)dtype_bytes(g->dtype) > A_PART_BYTES)
        return false;
    for (int o = 0; o < g->noutputs; o++)
        if (g->outputs[o].node == x)
            return false;
    for (int i = x + 1; i < g->nnodes; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++)
            if (g->nodes[i].in[k] == x && (k != 0 || !cg_matmul_ksplit(g, i)))
                return false;
    return true;
}

bool cg_matmul_folds(const Graph *g, NodeId t, const Target *tg) {
    /* Folded into every use, or it must exist for the others: a transpose
     * as A read through swapped strides, a patch matrix as A gathered part
     * by part; either as B while packing. */
    for (int i = t + 1; i < g->nnodes; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++)
            if (g->nodes[i].in[k] == t &&
                !(k == 1                          ? cg_matmul_can_pack(g, i, tg)
                  : g->nodes[t].op == OP_IM2COL ? cg_matmul_gathers(g, i, tg) || ksplit_gathers(g, i)
                                                : cg_matmul_tiled(g, i)))
                return false;
    for (int o = 0; o < g->noutputs; o++)
        if (g->outputs[o].node == t)
            return false;
    return true;
}

static LLVMValueRef vec_ptr(Cg *c, LLVMValueRef base, LLVMValueRef off, int w) {
    return cg_ptr_to(c, cg_elem_ptr(c, base, off), LLVMVectorType(c->ft, (unsigned)w));
}

/* Vectors are loaded at any element offset: only element alignment holds. */
static unsigned elem_align(const Cg *c) { return dtype_bytes(c->g->dtype); }

/* <w x i1> with the first `lanes` set. */
static LLVMValueRef lane_mask(Cg *c, Vec v) {
    LLVMTypeRef i1 = LLVMInt1TypeInContext(c->ctx);
    LLVMValueRef bit[64];
    for (int l = 0; l < v.w; l++)
        bit[l] = LLVMConstInt(i1, l < v.lanes, false);
    return LLVMConstVector(bit, (unsigned)v.w);
}

/* llvm.masked.load / llvm.masked.store, overloaded on the vector and
 * pointer types. */
static LLVMValueRef masked_call(Cg *c, const char *name, LLVMTypeRef vt, LLVMValueRef *args, unsigned nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id)
        die("cg_matmul: no intrinsic %s", name);
    LLVMTypeRef types[2] = {vt, LLVMPointerType(vt, 0)};
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, types, 2);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, types, 2), f, args, nargs, "");
}

/* Loads v's lanes from element offset off of base (masked lanes: 0). */
static LLVMValueRef load_vec(Cg *c, LLVMValueRef base, LLVMValueRef off, Vec v) {
    LLVMTypeRef vt = LLVMVectorType(c->ft, (unsigned)v.w);
    LLVMValueRef p = vec_ptr(c, base, off, v.w);
    if (v.lanes < v.w) {
        LLVMValueRef args[4] = {p, LLVMConstInt(LLVMInt32TypeInContext(c->ctx), elem_align(c), false),
                                lane_mask(c, v), LLVMConstNull(vt)};
        return masked_call(c, "llvm.masked.load", vt, args, 4);
    }
    LLVMValueRef x = LLVMBuildLoad2(c->b, vt, p, "");
    LLVMSetAlignment(x, elem_align(c));
    return x;
}

static void store_vec(Cg *c, LLVMValueRef x, LLVMValueRef base, LLVMValueRef off, Vec v) {
    LLVMValueRef p = vec_ptr(c, base, off, v.w);
    if (v.lanes < v.w) {
        LLVMValueRef args[4] = {x, p, LLVMConstInt(LLVMInt32TypeInContext(c->ctx), elem_align(c), false),
                                lane_mask(c, v)};
        masked_call(c, "llvm.masked.store", LLVMVectorType(c->ft, (unsigned)v.w), args, 4);
        return;
    }
    LLVMSetAlignment(LLVMBuildStore(c->b, x, p), elem_align(c));
}

static LLVMValueRef add(Cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNUWAdd(c->b, a, b, ""); }
static LLVMValueRef mulv(Cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildNUWMul(c->b, a, b, ""); }
static LLVMValueRef mul(Cg *c, LLVMValueRef a, int64_t k) { return mulv(c, a, cg_i64(c, k)); }

/* Where row i of a patch matrix starts in its image: the offset of x[b,
 * p, q, 0] with p = oy sh - pt and q = ox sw - pl (either may be
 * negative, the offset then meaningless: only an inside element's is
 * used). */
typedef struct PatchRow {
    LLVMValueRef base, p, q;
} PatchRow;

/* Column j of a patch matrix: its offset from its row's base, and its
 * window position (ky, kx). */
typedef struct PatchCol {
    LLVMValueRef off, ky, kx;
} PatchCol;

static LLVMValueRef udiv(Cg *c, LLVMValueRef a, int64_t k) { return LLVMBuildUDiv(c->b, a, cg_i64(c, k), ""); }
static LLVMValueRef urem(Cg *c, LLVMValueRef a, int64_t k) { return LLVMBuildURem(c->b, a, cg_i64(c, k), ""); }
/* Offsets that may pass through negative values wrap: no NUW. */
static LLVMValueRef wadd(Cg *c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(c->b, a, b, ""); }
static LLVMValueRef wmul(Cg *c, LLVMValueRef a, int64_t k) { return LLVMBuildMul(c->b, a, cg_i64(c, k), ""); }

static PatchRow patch_row(Cg *c, const Patches *P, LLVMValueRef i) {
    const Window *w = P->w;
    int64_t per = (int64_t)w->oh * w->ow;
    LLVMValueRef b = udiv(c, i, per), r = urem(c, i, per);
    PatchRow pr;
    pr.p = wadd(c, wmul(c, udiv(c, r, w->ow), w->sh), cg_i64(c, -(int64_t)w->pt));
    pr.q = wadd(c, wmul(c, urem(c, r, w->ow), w->sw), cg_i64(c, -(int64_t)w->pl));
    pr.base = wmul(c, wadd(c, wmul(c, wadd(c, wmul(c, b, P->H), pr.p), P->W), pr.q), P->C);
    return pr;
}

static PatchCol patch_col(Cg *c, const Patches *P, LLVMValueRef j) {
    int64_t run = P->w->kw * P->C; /* a window row's elements */
    LLVMValueRef ky = udiv(c, j, run), r = urem(c, j, run), kx = udiv(c, r, P->C);
    return (PatchCol){wadd(c, wmul(c, wadd(c, wmul(c, ky, P->W), kx), P->C), urem(c, r, P->C)), ky, kx};
}

/* Is element (row, col) inside x? (true where no window leaves it) */
static LLVMValueRef patch_inside(Cg *c, const Patches *P, PatchRow r, PatchCol col) {
    if (P->valid)
        return LLVMConstInt(LLVMInt1TypeInContext(c->ctx), 1, false);
    LLVMValueRef p = wadd(c, r.p, col.ky), q = wadd(c, r.q, col.kx);
    return LLVMBuildAnd(c->b, LLVMBuildICmp(c->b, LLVMIntULT, p, cg_i64(c, P->H), ""),
                        LLVMBuildICmp(c->b, LLVMIntULT, q, cg_i64(c, P->W), ""), "");
}

/* The lanes of v at row r of a patch matrix whose image is at x: from
 * columns col[0] on where they lie in one window element's channels
 * (contiguous in x), else lane l from column col[l]. An element outside x
 * is read at offset 0 and replaced by 0: no load leaves x. */
static LLVMValueRef patch_load(Cg *c, const Patches *P, LLVMValueRef x, PatchRow r, const PatchCol *col,
                               bool contiguous, Vec v) {
    LLVMTypeRef vt = LLVMVectorType(c->ft, (unsigned)v.w);
    if (contiguous) {
        LLVMValueRef in = patch_inside(c, P, r, col[0]);
        LLVMValueRef off = wadd(c, r.base, col[0].off);
        if (P->valid)
            return load_vec(c, x, off, v);
        LLVMValueRef e = load_vec(c, x, LLVMBuildSelect(c->b, in, off, cg_i64(c, 0), ""), v);
        return LLVMBuildSelect(c->b, in, e, LLVMConstNull(vt), "");
    }
    LLVMValueRef e = LLVMConstNull(vt);
    for (int l = 0; l < v.lanes; l++) {
        LLVMValueRef in = patch_inside(c, P, r, col[l]);
        LLVMValueRef off = wadd(c, r.base, col[l].off);
        if (!P->valid)
            off = LLVMBuildSelect(c->b, in, off, cg_i64(c, 0), "");
        LLVMValueRef x1 = LLVMBuildLoad2(c->b, c->ft, cg_elem_ptr(c, x, off), "");
        if (!P->valid)
            x1 = LLVMBuildSelect(c->b, in, x1, cg_f(c, 0), "");
        e = LLVMBuildInsertElement(c->b, e, x1, cg_i64(c, l), "");
    }
    return e;
}

/* Element (i, j) of a matrix of `rows` rows kept in panels (layout.c): panel
 * j / P (P the panel width, a power of two) starts at (j - j % P) * rows,
 * its row i at i * P. */
static LLVMValueRef panel_off(Cg *c, const Tiling *t, int64_t rows, LLVMValueRef i, LLVMValueRef j) {
    int64_t pw = panel_of(t);
    LLVMValueRef q = LLVMBuildURem(c->b, j, cg_i64(c, pw), "");
    return add(c, add(c, mul(c, LLVMBuildSub(c->b, j, q, ""), rows), mul(c, i, pw)), q);
}

/* Where element (i, j) of node x, of the product's shape, is stored. */
static LLVMValueRef elem_off(Cg *c, const Tiling *t, NodeId x, LLVMValueRef i, LLVMValueRef j) {
    if (layout_in_panels(c->g, c->sched, x))
        return panel_off(c, t, c->g->nodes[x].shape.dim[0], i, j);
    return add(c, mul(c, i, t->N), j);
}

/* The epilogue: the value of node x of the user's expression tree at row i,
 * columns j .. j+w, with the product m's accumulator standing for m. */
static LLVMValueRef epilogue_value(Cg *c, const Tiling *t, NodeId x, NodeId u, NodeId m, LLVMValueRef acc,
                                   LLVMValueRef i, LLVMValueRef j, Vec vec) {
    int w = vec.w;
    if (x == m)
        return acc;
    const IrNode *n = &c->g->nodes[x];
    if (n->op == OP_CONST)
        return cg_splat(c, cg_const(c, x), w);
    if (x != u && c->sched->place[x] != PLACE_INLINE) {
        /* A value in memory, broadcast to [M, N]: rows and columns have
         * strides rs and cs (0 along a broadcast axis). */
        const Shape *s = &n->shape; /* its last axis is N's: never a batch axis */
        int64_t cs = s->rank >= 1 && s->dim[s->rank - 1] != 1;
        int64_t rs = s->rank >= 2 && s->dim[s->rank - 2] != 1 ? s->dim[s->rank - 1] : 0;
        LLVMValueRef off = layout_in_panels(c->g, c->sched, x) ? panel_off(c, t, s->dim[0], i, j)
                                                              : add(c, mul(c, i, rs), mul(c, j, cs));
        if (!cs)
            return cg_splat(c, LLVMBuildLoad2(c->b, c->ft, cg_elem_ptr(c, c->ptr[x], off), ""), w);
        return load_vec(c, c->ptr[x], off, vec);
    }
    LLVMValueRef a = epilogue_value(c, t, n->in[0], u, m, acc, i, j, vec);
    LLVMValueRef b = op_info[n->op].arity > 1 ? epilogue_value(c, t, n->in[1], u, m, acc, i, j, vec) : NULL;
    return cg_elemwise_value(c, n, a, b, NULL); /* fuse.c allows only op_info's epilogue ops: no index */
}

/* Ends the loop over k in 0 .. kc whose phi k opened block body after pre
 * and resume (if not NULL: see resume_open); it runs at least once (kc >=
 * 1). Returns its latch, for the other phis. */
static LLVMBasicBlockRef k_loop_close(Cg *c, LLVMValueRef k, LLVMValueRef kc, LLVMBasicBlockRef pre,
                                      LLVMBasicBlockRef resume, LLVMBasicBlockRef body, LLVMBasicBlockRef done) {
    LLVMValueRef k1 = add(c, k, cg_i64(c, 1));
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, k1, kc, ""), body, done);
    LLVMValueRef zero = cg_i64(c, 0);
    LLVMAddIncoming(k, &zero, &pre, 1);
    if (resume)
        LLVMAddIncoming(k, &zero, &resume, 1);
    LLVMAddIncoming(k, &k1, &latch, 1);
    return latch;
}

/* Where the tiles of a column panel read B: row k of vector v at
 * base + k * rs + col[v] (the packed copy, or B itself). */
typedef struct Panel {
    LLVMValueRef base, rs;
    LLVMValueRef col[MAX_NV];
} Panel;

/* The rows k0 .. k0+kc of B that one pass over a panel covers: all of them,
 * or where K is cut into blocks (scratch set), one block. Sums then go on
 * from the last block's (in scratch, or for a column sum, in its slot)
 * unless `first`, and the epilogue runs only on the `last`. Each sum is
 * still taken over k in order, as -O0 takes it. */
typedef struct Block {
    LLVMValueRef k0, kc, first, last, scratch;
    LLVMValueRef srs, scol; /* scratch: row i of the panel's sums at i srs + scol */
} Block;

/* Opens the way into a loop's body block where its sums start: from pre,
 * at zero; where blocks continue one another, returns the block (the
 * builder in it) where the caller loads what they go on from, and which it
 * ends with a branch to body; else NULL. */
static LLVMBasicBlockRef resume_open(Cg *c, const Block *blk, LLVMBasicBlockRef body) {
    if (!blk->scratch) {
        LLVMBuildBr(c->b, body);
        return NULL;
    }
    LLVMBasicBlockRef resume = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "resume");
    LLVMBuildCondBr(c->b, blk->first, body, resume);
    LLVMPositionBuilderAtEnd(c->b, resume);
    return resume;
}

/* A sum's phi in body: zero from pre, or `from` from resume. */
static LLVMValueRef sum_phi(Cg *c, LLVMTypeRef vt, LLVMBasicBlockRef pre, LLVMBasicBlockRef resume,
                            LLVMValueRef from) {
    LLVMValueRef phi = LLVMBuildPhi(c->b, vt, "sum"), zero = LLVMConstNull(vt);
    LLVMAddIncoming(phi, &zero, &pre, 1);
    if (resume)
        LLVMAddIncoming(phi, &from, &resume, 1);
    return phi;
}

/* The guard's check of what an epilogue stores into a parameter or its
 * state (schedule_checks): seen + x * 0 over v's lanes, which is NaN once
 * any of them was NaN or Inf, else 0. One fused multiply-add a stored
 * vector, on values still in registers. */
static LLVMValueRef see(Cg *c, LLVMValueRef seen, LLVMValueRef x, Vec v) {
    LLVMValueRef zero = LLVMConstNull(LLVMVectorType(c->ft, (unsigned)v.w));
    if (v.lanes < v.w) /* lanes past the matrix's edge hold whatever the epilogue made of zeros */
        x = LLVMBuildSelect(c->b, lane_mask(c, v), x, zero, "");
    LLVMValueRef args[3] = {x, zero, seen ? seen : zero};
    return cg_intrinsic(c, "llvm.fmuladd", LLVMTypeOf(zero), args, 3);
}

/* After a tile's stores: sets the step's finite flag if any seen[v] is NaN.
 * Threads may set it at once, to the same value: an atomic store. */
static void flag_nonfinite(Cg *c, LLVMValueRef *seen, int nv) {
    LLVMValueRef any = NULL;
    for (int v = 0; v < nv; v++) {
        unsigned w = LLVMGetVectorSize(LLVMTypeOf(seen[v]));
        LLVMValueRef bad = LLVMBuildFCmp(c->b, LLVMRealUNO, seen[v], seen[v], "");
        bad = LLVMBuildICmp(c->b, LLVMIntNE, LLVMBuildBitCast(c->b, bad, LLVMIntTypeInContext(c->ctx, w), ""),
                            LLVMConstInt(LLVMIntTypeInContext(c->ctx, w), 0, false), "");
        any = any ? LLVMBuildOr(c->b, any, bad, "") : bad;
    }
    LLVMBasicBlockRef set = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "nonfinite");
    LLVMBasicBlockRef go = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "checked");
    LLVMBuildCondBr(c->b, any, set, go);
    LLVMPositionBuilderAtEnd(c->b, set);
    LLVMValueRef one = LLVMConstInt(LLVMInt32TypeInContext(c->ctx), 1, false);
    LLVMValueRef st = LLVMBuildStore(c->b, one, cg_finite_flag(c, c->slot[SLOT_NO_ARENA]));
    LLVMSetAlignment(st, 4);
    LLVMSetOrdering(st, LLVMAtomicOrderingMonotonic);
    LLVMBuildBr(c->b, go);
    LLVMPositionBuilderAtEnd(c->b, go);
}

/* The epilogue of a product G whose one user is u = col2im(G) (a
 * convolution's data gradient col2im(dY K^T)): each element of the tile
 * added to the image position its patch element reads, G(i, j) to
 * dx[b, oy sh - pt + ky, ox sw - pl + kx, ch], never G stored. A part
 * holds whole samples and zeroed their dx first (cg_matmul), so no other
 * thread adds to these positions. An element outside dx (padding) is
 * added to a sink of the kernel's own instead. */
static void emit_scatter(Cg *c, const Tiling *t, NodeId u, LLVMValueRef next[][MAX_NV], const LLVMValueRef *row,
                         const LLVMValueRef *ccol, int mr, const Vec *w, int nv) {
    const IrNode *n = &c->g->nodes[u];
    Patches P = patches_from(&n->win, &n->shape);
    bool contiguous = P.C % t->vl == 0; /* as in emit_pack */
    LLVMValueRef sink = P.valid ? NULL : cg_var(c, c->ft, t->vl, "sink");
    PatchCol col[MAX_NV][64];
    for (int v = 0; v < nv; v++)
        for (int l = 0; l < (contiguous ? 1 : w[v].lanes); l++)
            col[v][l] = patch_col(c, &P, add(c, ccol[v], cg_i64(c, l)));
    for (int r = 0; r < mr; r++) {
        PatchRow pr = patch_row(c, &P, row[r]);
        for (int v = 0; v < nv; v++)
            for (int l = 0; l < (contiguous ? 1 : w[v].lanes); l++) {
                LLVMValueRef at = cg_elem_ptr(c, c->ptr[u], wadd(c, pr.base, col[v][l].off));
                if (!P.valid)
                    at = LLVMBuildSelect(c->b, patch_inside(c, &P, pr, col[v][l]), at, sink, "");
                if (contiguous) {
                    LLVMValueRef zero = cg_i64(c, 0);
                    store_vec(c, LLVMBuildFAdd(c->b, load_vec(c, at, zero, w[v]), next[r][v], ""), at, zero, w[v]);
                } else {
                    LLVMValueRef e = LLVMBuildExtractElement(c->b, next[r][v], cg_i64(c, l), "");
                    LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, c->ft, at, ""), e, ""), at);
                }
            }
    }
}

/* One tile: rows i0 .. i0+mr, columns j0 + the vectors w[0..nv), over the
 * rows of B in blk. */
static void emit_tile(Cg *c, const Tiling *t, Strided A, const Panel *bp, const Block *blk, NodeId C,
                      LLVMValueRef i0, LLVMValueRef j0, int mr, const Vec *w, int nv) {
    LLVMBuilderRef b = c->b;
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile.done");
    /* Row and column offsets, computed once outside the k loop. */
    LLVMValueRef row[MAX_MR], arow[MAX_MR], ccol[MAX_NV];
    for (int r = 0; r < mr; r++) {
        row[r] = add(c, i0, cg_i64(c, r));
        arow[r] = mulv(c, LLVMBuildSub(c->b, row[r], A.r0, ""), A.rs);
    }
    for (int v = 0, off = 0; v < nv; off += w[v].lanes, v++)
        ccol[v] = add(c, j0, cg_i64(c, off));
    /* The tile's partial sums in scratch. */
    LLVMValueRef part[MAX_MR][MAX_NV], from[MAX_MR][MAX_NV] = {{NULL}};
    for (int r = 0; r < mr && blk->scratch; r++)
        for (int v = 0, off = 0; v < nv; off += w[v].lanes, v++)
            part[r][v] = add(c, add(c, mulv(c, row[r], blk->srs), blk->scol), cg_i64(c, off));
    LLVMBasicBlockRef resume = resume_open(c, blk, body);
    if (resume) {
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++)
                from[r][v] = load_vec(c, blk->scratch, part[r][v], w[v]);
        LLVMBuildBr(b, body);
    }

    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef k = LLVMBuildPhi(b, c->i64, "k");
    LLVMValueRef acc[MAX_MR][MAX_NV], next[MAX_MR][MAX_NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = sum_phi(c, LLVMVectorType(c->ft, (unsigned)w[v].w), pre, resume, from[r][v]);
    LLVMValueRef brow = mulv(c, k, bp->rs), acol = mulv(c, LLVMBuildSub(b, add(c, blk->k0, k), A.k0, ""), A.cs);
    LLVMValueRef bv[MAX_NV];
    for (int v = 0; v < nv; v++)
        bv[v] = load_vec(c, bp->base, add(c, brow, bp->col[v]), w[v]);
    for (int r = 0; r < mr; r++) {
        LLVMValueRef a = LLVMBuildLoad2(b, c->ft, cg_elem_ptr(c, A.base, add(c, arow[r], acol)), "");
        for (int v = 0; v < nv; v++) {
            LLVMValueRef args[3] = {cg_splat(c, a, w[v].w), bv[v], acc[r][v]};
            next[r][v] = cg_intrinsic(c, "llvm.fmuladd", LLVMVectorType(c->ft, (unsigned)w[v].w), args, 3);
        }
    }
    LLVMBasicBlockRef latch = k_loop_close(c, k, blk->kc, pre, resume, body, done);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            LLVMAddIncoming(acc[r][v], &next[r][v], &latch, 1);

    LLVMPositionBuilderAtEnd(b, done);
    LLVMBasicBlockRef out = NULL;
    if (blk->scratch) { /* not the last block: keep the partial sums */
        LLVMBasicBlockRef save = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "save");
        LLVMBasicBlockRef last = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "last");
        out = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "tile.out");
        LLVMBuildCondBr(b, blk->last, last, save);
        LLVMPositionBuilderAtEnd(b, save);
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < nv; v++)
                store_vec(c, next[r][v], blk->scratch, part[r][v], w[v]);
        LLVMBuildBr(b, out);
        LLVMPositionBuilderAtEnd(b, last);
    }
    NodeId u = c->sched->epilogue[C], u2 = c->sched->epilogue2[C];
    if (u >= 0 && c->g->nodes[u].op == OP_COL2IM) {
        emit_scatter(c, t, u, next, row, ccol, mr, w, nv);
        if (out) {
            LLVMBuildBr(b, out);
            LLVMPositionBuilderAtEnd(b, out);
        }
        return;
    }
    bool check = u >= 0 && schedule_checks(c->g, c->sched, u), check2 = u2 >= 0 && schedule_checks(c->g, c->sched, u2);
    LLVMValueRef seen[MAX_NV] = {NULL};
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            LLVMValueRef x = u < 0 ? next[r][v] : epilogue_value(c, t, u, u, C, next[r][v], row[r], ccol[v], w[v]);
            /* Both values before either store: u2 may read the old value of
             * the slot u is stored in. */
            LLVMValueRef x2 = u2 < 0 ? NULL : epilogue_value(c, t, u2, u2, u, x, row[r], ccol[v], w[v]);
            store_vec(c, x, c->ptr[u < 0 ? C : u], elem_off(c, t, u < 0 ? C : u, row[r], ccol[v]), w[v]);
            if (x2)
                store_vec(c, x2, c->ptr[u2], elem_off(c, t, u2, row[r], ccol[v]), w[v]);
            if (check)
                seen[v] = see(c, seen[v], x, w[v]);
            if (check2)
                seen[v] = see(c, seen[v], x2, w[v]);
        }
    if (check || check2)
        flag_nonfinite(c, seen, nv);
    if (out) {
        LLVMBuildBr(b, out);
        LLVMPositionBuilderAtEnd(b, out);
    }
}

/* Packs the panel's columns of B into buf, row k at k * P (P: the panel's
 * width), so that its row tiles read one contiguous stream instead of rows N
 * apart. B may be a transpose W^T read as W (each vector gathered from W's
 * rows, or kept in panels, from their rows), so the backward pass's
 * dH = dY W^T never materialises W^T, or a patch matrix read from its
 * image (patch_load). The sum of B's rows (the bias gradient beside the
 * weight gradient X^T dY) is accumulated from the vectors packed: no other
 * pass over B. */
static Panel emit_pack(Cg *c, const Tiling *t, Strided B, LLVMValueRef buf, const Block *blk, LLVMValueRef j0,
                       const Vec *w, int nv, NodeId colsum) {
    LLVMBuilderRef b = c->b;
    Panel p = {.base = buf};
    int width = 0;
    for (int v = 0; v < nv; width += w[v].lanes, v++)
        p.col[v] = cg_i64(c, width);
    p.rs = cg_i64(c, width);
    const Patches *P = B.patches;
    bool gather = !P && !(LLVMIsAConstantInt(B.cs) && LLVMConstIntGetZExtValue(B.cs) == 1);
    /* With C a multiple of the vector width, each vector of a panel (which
     * starts at a multiple of its width, within one of vl) lies in one
     * window element's channels. */
    bool contiguous = P && P->C % t->vl == 0;
    /* Offsets of B's columns in this panel, computed once outside the loop:
     * of each vector, or with a gather, of each lane. */
    LLVMValueRef bcol[MAX_NV], lane[MAX_NV][64];
    PatchCol pcol[MAX_NV][64];
    for (int v = 0; v < nv; v++) {
        bcol[v] = add(c, j0, p.col[v]);
        for (int l = 0; l < w[v].lanes; l++) {
            LLVMValueRef j = add(c, bcol[v], cg_i64(c, l));
            if (gather)
                lane[v][l] = mulv(c, j, B.cs);
            else if (P && (l == 0 || !contiguous))
                pcol[v][l] = patch_col(c, P, j);
        }
    }
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(b);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pack");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "pack.done");
    LLVMValueRef from[MAX_NV] = {NULL};
    LLVMBasicBlockRef resume = NULL;
    if (colsum < 0)
        LLVMBuildBr(b, body);
    else
        resume = resume_open(c, blk, body);
    if (resume) {
        for (int v = 0; v < nv; v++)
            from[v] = load_vec(c, c->ptr[colsum], bcol[v], w[v]);
        LLVMBuildBr(b, body);
    }

    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef k = LLVMBuildPhi(b, c->i64, "k");
    LLVMValueRef sum[MAX_NV], next[MAX_NV];
    for (int v = 0; v < nv && colsum >= 0; v++)
        sum[v] = sum_phi(c, LLVMVectorType(c->ft, (unsigned)w[v].w), pre, resume, from[v]);
    LLVMValueRef kk = add(c, blk->k0, k), prow = mulv(c, k, p.rs), brow = NULL;
    PatchRow pr = {NULL, NULL, NULL};
    if (P)
        pr = patch_row(c, P, kk);
    else
        brow = B.panel_rows ? panel_off(c, t, B.panel_rows, cg_i64(c, 0), kk) : mulv(c, kk, B.rs);
    for (int v = 0; v < nv; v++) {
        LLVMValueRef x;
        if (P) {
            x = patch_load(c, P, B.base, pr, pcol[v], contiguous, w[v]);
        } else if (gather) {
            x = LLVMConstNull(LLVMVectorType(c->ft, (unsigned)w[v].w));
            for (int l = 0; l < w[v].lanes; l++) {
                LLVMValueRef e = LLVMBuildLoad2(b, c->ft, cg_elem_ptr(c, B.base, add(c, brow, lane[v][l])), "");
                x = LLVMBuildInsertElement(b, x, e, cg_i64(c, l), "");
            }
        } else {
            x = load_vec(c, B.base, add(c, brow, bcol[v]), w[v]);
        }
        store_vec(c, x, buf, add(c, prow, p.col[v]), w[v]);
        if (colsum >= 0)
            next[v] = LLVMBuildFAdd(b, sum[v], x, "");
    }
    LLVMBasicBlockRef latch = k_loop_close(c, k, blk->kc, pre, resume, body, done);
    for (int v = 0; v < nv && colsum >= 0; v++)
        LLVMAddIncoming(sum[v], &next[v], &latch, 1);

    LLVMPositionBuilderAtEnd(b, done);
    for (int v = 0; v < nv && colsum >= 0; v++)
        store_vec(c, next[v], c->ptr[colsum], bcol[v], w[v]); /* colsum is [1, N] */
    return p;
}

/* A column panel: B's columns packed into buf (if not NULL), then all row
 * tiles: of mr rows while they fit, then of mr/3 rows, then of one. With a
 * constant M, the IR builder folds the counts and a shape of tile that is
 * never used is not emitted. Over the rows of B in the caller's block
 * `outer` (a K split's), else all of K, in blocks where scratch is set. */
static void emit_panel(Cg *c, const Tiling *t, Strided A, Strided B, LLVMValueRef buf, LLVMValueRef scratch,
                       const Block *outer, NodeId colsum, NodeId C, LLVMValueRef j0, LLVMValueRef r0, LLVMValueRef r1,
                       const Vec *w, int nv) {
    int width = 0;
    for (int v = 0; v < nv; v++)
        width += w[v].lanes;
    Block blk = {cg_i64(c, 0), t->K, NULL, NULL, NULL, cg_i64(c, width), cg_i64(c, 0)};
    Loop kl;
    if (outer) {
        blk = *outer;
        blk.scol = j0; /* its scratch holds every panel: [M, N] */
    } else if (scratch) {
        LLVMValueRef kc = cg_i64(c, t->kc);
        LLVMValueRef blocks = LLVMBuildUDiv(c->b, add(c, t->K, cg_i64(c, t->kc - 1)), kc, "");
        LLVMValueRef kb = cg_loop_open(c, &kl, blocks);
        LLVMValueRef left = LLVMBuildSub(c->b, t->K, blk.k0 = mulv(c, kb, kc), "");
        blk.kc = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, left, kc, ""), left, kc, "");
        blk.first = LLVMBuildICmp(c->b, LLVMIntEQ, kb, cg_i64(c, 0), "");
        blk.last = LLVMBuildICmp(c->b, LLVMIntEQ, add(c, kb, cg_i64(c, 1)), blocks, "");
        blk.scratch = scratch;
    }
    Panel p = {B.base, B.rs, {0}};
    if (buf) {
        p = emit_pack(c, t, B, buf, &blk, j0, w, nv, colsum);
    } else if (B.panel_rows) { /* kept in panels: read as packed */
        p = (Panel){cg_elem_ptr(c, B.base, mul(c, j0, B.panel_rows)), cg_i64(c, panel_of(t)), {0}};
        for (int v = 0, off = 0; v < nv; off += w[v].lanes, v++)
            p.col[v] = cg_i64(c, off);
    } else {
        for (int v = 0, off = 0; v < nv; off += w[v].lanes, v++)
            p.col[v] = add(c, j0, cg_i64(c, off));
    }
    if (!buf) /* read in place from the block's first row (a K split's) */
        p.base = cg_elem_ptr(c, p.base, mulv(c, blk.k0, p.rs));
    LLVMValueRef i0 = r0;
    /* Rows known here end in one tile of the rows left (a conv1 filter
     * gradient's 9: one tile, not 4 + 4 + 1 each streaming B). */
    int heights[3] = {t->mr, t->mr / 3, 1};
    if (LLVMIsAConstantInt(r0) && LLVMIsAConstantInt(r1))
        heights[1] = (int)((LLVMConstIntGetZExtValue(r1) - LLVMConstIntGetZExtValue(r0)) % t->mr);
    for (int h = 0; h < 3; h++) {
        if (!heights[h])
            continue;
        LLVMValueRef count = LLVMBuildUDiv(c->b, LLVMBuildSub(c->b, r1, i0, ""), cg_i64(c, heights[h]), "");
        if (LLVMIsAConstantInt(count) && LLVMConstIntGetZExtValue(count) == 0)
            continue;
        Loop l;
        LLVMValueRef ib = cg_loop_open(c, &l, count);
        emit_tile(c, t, A, &p, &blk, C, add(c, i0, mul(c, ib, heights[h])), j0, heights[h], w, nv);
        cg_loop_close(c, &l);
        i0 = add(c, i0, mul(c, count, heights[h]));
    }
    if (!outer && scratch)
        cg_loop_close(c, &kl);
}

/* The edge panel's vectors: whole ones, then one masked vector for the rest
 * or, without cheap masks, halving powers of two (10 = 8 + 2). */
static int edge_widths(const Tiling *t, int64_t cols, Vec *w) {
    int n = 0;
    for (; cols >= t->vl && n < MAX_NV; cols -= t->vl)
        w[n++] = (Vec){t->vl, t->vl};
    if (t->masks && cols > 0 && (cols & (cols - 1)) && n < MAX_NV) { /* not a power of two */
        w[n++] = (Vec){t->vl, (int)cols};
        cols = 0;
    }
    for (int width = t->vl / 2; cols > 0 && width >= 1; width /= 2)
        while (cols >= width && n < MAX_NV) {
            w[n++] = (Vec){width, width};
            cols -= width;
        }
    if (cols)
        die("cg_matmul: edge of %lld columns does not fit %d vectors", (long long)cols, MAX_NV);
    return n;
}

/* Column panel jb of the product: a full one, or the last, of the `rest`
 * columns, where there is one. */
static void emit_column_panel(Cg *c, const Tiling *t, Strided A, Strided B, LLVMValueRef buf, LLVMValueRef scratch,
                              const Block *outer, NodeId colsum, NodeId id, LLVMValueRef jb, LLVMValueRef r0,
                              LLVMValueRef r1, int64_t full, int64_t rest, const Vec *wfull, const Vec *wedge,
                              int nedge) {
    LLVMValueRef j0 = mul(c, jb, panel_of(t));
    if (rest && !full) {
        emit_panel(c, t, A, B, buf, scratch, outer, colsum, id, j0, r0, r1, wedge, nedge);
    } else if (rest) {
        LLVMBasicBlockRef fullb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "full");
        LLVMBasicBlockRef edgeb = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "edge");
        LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "next");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, jb, cg_i64(c, full), ""), edgeb, fullb);
        LLVMPositionBuilderAtEnd(c->b, fullb);
        emit_panel(c, t, A, B, buf, scratch, outer, colsum, id, j0, r0, r1, wfull, t->nv);
        LLVMBuildBr(c->b, join);
        LLVMPositionBuilderAtEnd(c->b, edgeb);
        emit_panel(c, t, A, B, buf, scratch, outer, colsum, id, j0, r0, r1, wedge, nedge);
        LLVMBuildBr(c->b, join);
        LLVMPositionBuilderAtEnd(c->b, join);
    } else {
        emit_panel(c, t, A, B, buf, scratch, outer, colsum, id, j0, r0, r1, wfull, t->nv);
    }
}

/* Row parts: where the column panels are too few to keep the threads
 * busy (a convolution's product, of many rows and few filters), the unit
 * of work is a part of the rows instead, of whole tiles, and each part
 * computes every panel of its rows: its rows of A (at most A_PART_BYTES,
 * to stay in L2) are then read from memory once, not once a panel. A
 * result element is computed the same way in any part. Not with a column
 * sum, which one packing must take. */
static int64_t row_parts(const Tiling *t, int64_t M, int64_t K, unsigned elem, int64_t panels, bool colsum) {
    if (colsum || panels >= UNITS || M < 16 * t->mr)
        return 1;
    int64_t parts = (int64_t)((double)M * (double)K * elem / A_PART_BYTES) + 1, most = M / (2 * t->mr);
    parts = parts > UNITS ? parts : UNITS;
    return parts < most ? parts : most;
}

/* Parts of whole groups of rows (tiles where A is gathered part by part,
 * samples where the epilogue scatters into their images): at most
 * part_bytes of A each where a group fits, and at least UNITS where there
 * are groups enough, for the threads. */
static int64_t group_parts(int64_t groups, int64_t group_bytes, int64_t part_bytes) {
    int64_t fit = group_bytes < part_bytes ? part_bytes / group_bytes : 1;
    int64_t parts = (groups + fit - 1) / fit, least = groups < UNITS ? groups : UNITS;
    return parts > least ? parts : least;
}

int64_t cg_matmul_part_bytes(void) { return A_PART_BYTES; }

bool cg_matmul_gathers(const Graph *g, NodeId m, const Target *tg) {
    Patches p;
    Tiling t = tiling(g->dtype, 0, tg);
    NodeId a = g->nodes[m].in[0];
    return cg_matmul_tiled(g, m) && patches_of(g, a, &p) && g->nodes[m].in[1] != a &&
           t.mr * g->nodes[a].shape.dim[1] * (int64_t)dtype_bytes(g->dtype) <= A_PART_BYTES;
}

/* K split: a product of few rows and columns and a long sum, A^T B with
 * K = n oh ow (a convolution's filter gradient P^T dY: 288 x 15488 by
 * 15488 x 64 for conv2 of cnn.nn at batch 128, 9 x 86528 by 86528 x 32 for
 * its conv1), has too few tiles and panels to share between threads (the
 * conv1 one was a single unit), and each of them would stream all of K.
 * Instead each unit sums a range of K into partial products of its own, a
 * block of KC rows (or as many rows of a gathered A as fit A_PART_BYTES)
 * at a time; then the step adds the units' partials, in order. */
enum { KSPLIT_MIN_K = 4096 };
#define KSPLIT_MAX_BYTES (8 * 1024 * 1024) /* the partials of every unit */

int64_t cg_matmul_ksplit(const Graph *g, NodeId m) {
    if (!cg_matmul_tiled(g, m) || g->nodes[g->nodes[m].in[0]].op != OP_TRANSPOSE)
        return 0;
    int64_t M = g->nodes[m].shape.dim[0], N = g->nodes[m].shape.dim[1], K = g->nodes[g->nodes[m].in[0]].shape.dim[1];
    int64_t most = M > N ? M : N;
    if (K < KSPLIT_MIN_K || K / 16 < most || (double)M * N * UNITS * dtype_bytes(g->dtype) > KSPLIT_MAX_BYTES)
        return 0;
    return UNITS;
}

/* The rows of K each unit of a K split sums: whole chunks of ch rows,
 * `units` of them (or fewer, where K is short) covering K. */
static LLVMValueRef ksplit_range(Cg *c, LLVMValueRef K, int64_t ch, int64_t units) {
    LLVMValueRef chunks = udiv(c, add(c, K, cg_i64(c, ch - 1)), ch);
    return mul(c, udiv(c, add(c, chunks, cg_i64(c, units - 1)), units), ch);
}

typedef struct Split {
    NodeId k_of;    /* the node whose axis 1 is K */
    int64_t ch, units;
    int64_t rows;   /* of K a unit sums: a sample loop's group's (fuse_samples.c); 0: ksplit_range's */
} Split;

/* The rows of K each unit sums. */
static LLVMValueRef split_rows(Cg *c, const Split *sp) {
    return sp->rows ? cg_i64(c, sp->rows) : ksplit_range(c, cg_dim(c, sp->k_of, 1), sp->ch, sp->units);
}

/* The units a K split runs: those whose range is not empty. */
static LLVMValueRef ksplit_units(Cg *c, void *arg) {
    const Split *sp = arg;
    LLVMValueRef K = cg_dim(c, sp->k_of, 1), per = split_rows(c, sp);
    return LLVMBuildUDiv(c->b, add(c, K, LLVMBuildSub(c->b, per, cg_i64(c, 1), "")), per, "");
}

/* C = the sum of the used units' partial products, unit by unit in order:
 * the same sums on any number of threads. */
static void emit_ksplit_sum(Cg *c, NodeId id, const Split *sp, size_t partials) {
    const IrNode *n = &c->g->nodes[id];
    cg_sum_partials(c, c->ptr[id], partials, ksplit_units(c, (void *)sp), shape_elems(&n->shape),
                    mul(c, cg_dim(c, id, 0), n->shape.dim[1]));
}

bool cg_matmul_scatters(const Graph *g, NodeId m, NodeId u) {
    const IrNode *n = &g->nodes[u];
    return cg_matmul_tiled(g, m) && n->op == OP_COL2IM && n->in[0] == m;
}

/* Rows [r0, r1) of patch matrix P, its image at x, into buf (row i at
 * (i - r0) K): for each window element (ky, kx), its C channels, which lie
 * together in x and in the row, vectors of them at a time. Where no window
 * leaves x, a window row's kw C elements lie together too: one run per ky
 * (conv2 of cnn.nn: 6 vectors, where 3 runs of 2 took 10% of its forward
 * product in loop overhead). */
static void emit_gather(Cg *c, const Tiling *t, const Patches *P, LLVMValueRef x, LLVMValueRef buf, LLVMValueRef r0,
                        LLVMValueRef r1) {
    const Window *w = P->w;
    int64_t run = P->valid ? w->kw * P->C : P->C, runs = P->valid ? 1 : w->kw;
    int64_t K = w->kh * w->kw * P->C, full = run / t->vl, rest = run % t->vl;
    Loop li, ly, lx, lc;
    LLVMValueRef r = cg_loop_open(c, &li, LLVMBuildSub(c->b, r1, r0, ""));
    PatchRow pr = patch_row(c, P, add(c, r0, r));
    LLVMValueRef ky = cg_loop_open(c, &ly, cg_i64(c, w->kh)), kx = cg_loop_open(c, &lx, cg_i64(c, runs));
    LLVMValueRef from = mul(c, add(c, mul(c, ky, P->W), kx), P->C);
    LLVMValueRef to = add(c, mul(c, r, K), mul(c, add(c, mul(c, ky, w->kw), kx), P->C));
    if (full) {
        LLVMValueRef ch = mul(c, cg_loop_open(c, &lc, cg_i64(c, full)), t->vl);
        Vec v = {t->vl, t->vl};
        PatchCol col = {add(c, from, ch), ky, kx};
        store_vec(c, patch_load(c, P, x, pr, &col, true, v), buf, add(c, to, ch), v);
        cg_loop_close(c, &lc);
    }
    if (rest) {
        Vec v = {t->vl, (int)rest};
        PatchCol col = {add(c, from, cg_i64(c, full * t->vl)), ky, kx};
        store_vec(c, patch_load(c, P, x, pr, &col, true, v), buf, add(c, to, cg_i64(c, full * t->vl)), v);
    }
    cg_loop_close(c, &lx);
    cg_loop_close(c, &ly);
    cg_loop_close(c, &li);
}

static LLVMValueRef constant_units(Cg *c, void *units) { return cg_i64(c, *(int64_t *)units); }

void cg_matmul(Cg *c, NodeId id) {
    const Graph *g = c->g;
    const IrNode *n = &g->nodes[id];
    NodeId a = n->in[0], bnode = n->in[1];
    Tiling t = tiling(g->dtype, n->shape.dim[1], c->sched->target);
    int64_t panel = panel_of(&t), full = t.N / panel, rest = t.N % panel;
    Vec wfull[MAX_NV], wedge[MAX_NV];
    int nedge = rest ? edge_widths(&t, rest, wedge) : 0;
    for (int v = 0; v < t.nv; v++)
        wfull[v] = (Vec){t.vl, t.vl};

    /* The kernel, name.mmN over panels (or parts of them). */
    char name[256];
    Cg step;
    LLVMValueRef kfn = cg_kernel_begin(c, &step, "mm", true, name, sizeof name);
    t.M = cg_dim(c, id, 0);
    t.K = cg_dim(c, a, 1);
    LLVMValueRef zero = cg_i64(c, 0);
    Strided A = {c->ptr[a], t.K, cg_i64(c, 1), 0, zero, zero, NULL};
    /* A = X^T, X [K, M]: A(i, k) = X[k, i]. Read through X whether or not the
     * schedule also computes the transpose for another user. */
    if (g->nodes[a].op == OP_TRANSPOSE)
        A = (Strided){c->ptr[g->nodes[a].in[0]], cg_i64(c, 1), t.M, 0, zero, zero, NULL};
    /* A patch matrix never computed: each part gathers its rows of it. */
    Patches pa, pb;
    bool gather_a = c->sched->place[a] == PLACE_FOLDED && patches_of(g, a, &pa);
    /* B(k, j) likewise, and B = W^T, W [N, K], as W[j, k] when packing. */
    Strided B = {c->ptr[bnode], cg_i64(c, t.N), cg_i64(c, 1), 0, zero, zero, NULL};
    if (layout_in_panels(g, c->sched, bnode))
        B = (Strided){c->ptr[bnode], NULL, NULL, g->nodes[bnode].shape.dim[0], zero, zero, NULL};
    LLVMValueRef buf = NULL, scratch = NULL, abuf = NULL;
    int64_t block = cg_matmul_block_rows(g, c->sched, id);
    if (block) {
        if (g->nodes[bnode].op == OP_TRANSPOSE)
            B = (Strided){c->ptr[g->nodes[bnode].in[0]], cg_i64(c, 1), t.K, 0, zero, zero, NULL};
        /* W^T with W [N, K] in panels: B(k, j) = W[j, k] at panel_off(j, k). */
        if (g->nodes[bnode].op == OP_TRANSPOSE && layout_in_panels(g, c->sched, g->nodes[bnode].in[0]))
            B = (Strided){c->ptr[g->nodes[bnode].in[0]], NULL, cg_i64(c, panel), t.N, zero, zero, NULL};
        /* A patch matrix packed from its image, computed for another user
         * or not. */
        if (patches_of(g, bnode, &pb))
            B = (Strided){c->ptr[g->nodes[bnode].in[0]], NULL, NULL, 0, zero, zero, &pb};
        /* One block's buffer, for the largest K (the full batch), and where
         * K is cut into blocks, the panel's partial sums for the largest M. */
        buf = LLVMBuildArrayAlloca(c->b, c->ft, cg_i64(c, block * panel), "packed");
        LLVMSetAlignment(buf, 64);
        if (g->nodes[bnode].shape.dim[0] > block) {
            scratch = LLVMBuildArrayAlloca(c->b, c->ft, cg_i64(c, n->shape.dim[0] * panel), "partial");
            LLVMSetAlignment(scratch, 64);
        }
    }
    NodeId colsum = c->sched->colsum[id], u = c->sched->epilogue[id];
    int64_t panels = full + (rest != 0), M = n->shape.dim[0], K = g->nodes[a].shape.dim[1];
    unsigned elem = dtype_bytes(g->dtype);
    /* Parts are of whole groups of `align` rows: of samples where the
     * epilogue scatters into them (emit_scatter), else of tiles. */
    bool scatter = u >= 0 && g->nodes[u].op == OP_COL2IM;
    int64_t align = scatter ? (int64_t)g->nodes[u].win.oh * g->nodes[u].win.ow : t.mr, groups = (M + align - 1) / align;
    int64_t parts = scatter || gather_a
                        ? group_parts(groups, align * K * (int64_t)elem, gather_a ? GATHER_PART_BYTES : A_PART_BYTES)
                        : row_parts(&t, M, K, elem, panels, colsum >= 0);
    /* In a sample loop (fuse_samples.c), a unit is a group of samples: the
     * rows of `group` samples (of A, or of K for a K split). */
    int64_t group = schedule_group(c->sched, id), part_rows = (groups + parts - 1) / parts * align;
    if (group && (scatter || gather_a))
        part_rows = group * (M / g->batch);
    if (gather_a) { /* a part's rows of A, for the most rows a part has (at the full batch) */
        abuf = LLVMBuildArrayAlloca(c->b, c->ft, cg_i64(c, part_rows * K), "patches");
        LLVMSetAlignment(abuf, 64);
    }
    /* A K split's chunks: blocks of B, or of the rows of P (A = P^T, P
     * folded) gathered into abuf. */
    Split split = {a, block ? block : t.kc,
                   c->sched->partials[id] == SIZE_MAX ? 0 : schedule_ksplit_units(g, c->sched, id),
                   group ? group * (K / g->batch) : 0};
    NodeId at_p = g->nodes[a].op == OP_TRANSPOSE ? g->nodes[a].in[0] : -1;
    bool gather_at = split.units && at_p >= 0 && c->sched->place[at_p] == PLACE_FOLDED && patches_of(g, at_p, &pa);
    if (gather_at) {
        int64_t kp = g->nodes[at_p].shape.dim[1], fit = A_PART_BYTES / (kp * (int64_t)elem);
        split.ch = fit < split.ch ? fit : split.ch;
        abuf = LLVMBuildArrayAlloca(c->b, c->ft, cg_i64(c, split.ch * kp), "patches");
        LLVMSetAlignment(abuf, 64);
    }
    LLVMValueRef begin = LLVMGetParam(kfn, 1), end = LLVMGetParam(kfn, 2);
    if (group) { /* called on the samples [s0, s1) of one group */
        begin = udiv(c, begin, group);
        end = add(c, begin, cg_i64(c, 1));
    }
    LLVMBasicBlockRef entry = LLVMGetInsertBlock(c->b);
    LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(c->ctx, kfn, "panel");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c->ctx, kfn, "exit");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, begin, end, ""), loop, exit);
    LLVMPositionBuilderAtEnd(c->b, loop);
    LLVMValueRef unit = LLVMBuildPhi(c->b, c->i64, "unit");
    LLVMAddIncoming(unit, &begin, &entry, 1);
    /* The unit is panel jb, all rows; or a part: rows [r0, r1), every panel;
     * or a K split's range of K, every panel and row. */
    LLVMValueRef jb = unit, r0 = cg_i64(c, 0), r1 = t.M;
    Loop each, chunk;
    bool by_parts = !split.units && (parts > 1 || gather_a || scatter);
    Block kblk;
    if (split.units) {
        LLVMValueRef per = split_rows(c, &split), lo = mulv(c, unit, per);
        LLVMValueRef hi = add(c, lo, per);
        hi = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, hi, t.K, ""), hi, t.K, "");
        LLVMValueRef mine = cg_elem_ptr(c, cg_arena_at(c, c->sched->partials[id]), mul(c, unit, M * t.N));
        LLVMValueRef ci = cg_loop_open(c, &chunk, udiv(c, add(c, LLVMBuildSub(c->b, hi, lo, ""), cg_i64(c, split.ch - 1)), split.ch));
        LLVMValueRef kb = add(c, lo, mul(c, ci, split.ch)), left = LLVMBuildSub(c->b, hi, kb, "");
        LLVMValueRef kc = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, left, cg_i64(c, split.ch), ""), left,
                                          cg_i64(c, split.ch), "");
        if (gather_at) { /* A = P^T: the chunk's rows of P, read as columns */
            emit_gather(c, &t, &pa, c->ptr[g->nodes[g->nodes[a].in[0]].in[0]], abuf, kb, add(c, kb, kc));
            A = (Strided){abuf, cg_i64(c, 1), cg_i64(c, pa.w->kh * pa.w->kw * pa.C), 0, zero, kb, NULL};
        }
        kblk = (Block){kb, kc, LLVMBuildICmp(c->b, LLVMIntEQ, ci, zero, ""),
                       LLVMConstInt(LLVMInt1TypeInContext(c->ctx), 0, false), mine, cg_i64(c, t.N), zero};
        jb = cg_loop_open(c, &each, cg_i64(c, panels));
    } else if (by_parts) {
        LLVMValueRef have = udiv(c, add(c, t.M, cg_i64(c, align - 1)), align);
        LLVMValueRef per = group ? cg_i64(c, part_rows) : mul(c, udiv(c, add(c, have, cg_i64(c, parts - 1)), parts), align);
        r0 = mulv(c, unit, per);
        r1 = add(c, r0, per);
        r0 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, r0, t.M, ""), r0, t.M, "");
        r1 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, r1, t.M, ""), r1, t.M, "");
        if (scatter) { /* the part's samples of dx, which its tiles add to */
            const Shape *dx = &g->nodes[u].shape;
            int64_t image = dx->dim[1] * dx->dim[2] * dx->dim[3];
            cg_fill(c, cg_elem_ptr(c, c->ptr[u], mul(c, udiv(c, r0, align), image)),
                    mul(c, udiv(c, LLVMBuildSub(c->b, r1, r0, ""), align), image), cg_f(c, 0));
        }
        if (gather_a) {
            emit_gather(c, &t, &pa, c->ptr[g->nodes[a].in[0]], abuf, r0, r1);
            A = (Strided){abuf, cg_i64(c, K), cg_i64(c, 1), 0, r0, zero, NULL};
        }
        jb = cg_loop_open(c, &each, cg_i64(c, panels));
    }
    emit_column_panel(c, &t, A, B, buf, scratch, split.units ? &kblk : NULL, colsum, id, jb, r0, r1, full, rest,
                      wfull, wedge, nedge);
    if (by_parts || split.units)
        cg_loop_close(c, &each);
    if (split.units)
        cg_loop_close(c, &chunk);
    LLVMValueRef next = add(c, unit, cg_i64(c, 1));
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(unit, &next, &latch, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, next, end, ""), loop, exit);
    LLVMPositionBuilderAtEnd(c->b, exit);
    /* Back in the step function: run every unit, on the thread pool unless
     * the product is too small to be worth waking it. */
    int64_t units = by_parts ? parts : panels;
    double macs = (double)n->shape.dim[0] * (double)t.N * (double)g->nodes[a].shape.dim[1]; /* for the full batch */
    if (split.units) {
        cg_kernel_end(c, &step, name, ksplit_units, &split, macs);
        emit_ksplit_sum(c, id, &split, c->sched->partials[id]);
        return;
    }
    cg_kernel_end(c, &step, name, constant_units, &units, macs);
}
