/* codegen.c — IR to LLVM IR through the LLVM C API.
 *
 * Each IR node becomes its own naive loop nest over its shape, writing its
 * own buffer: nothing is fused. This is deliberately the simplest correct
 * translation: it is the -O0 reference the fused kernels are tested against.
 * Shapes are compile-time constants but for the batch axes, which have the
 * step's runtime n elements (step.c marks them): a buffer is laid out for n
 * samples inside the space planned for the full batch. So one function
 * serves the full batches and the partial last one.
 *
 * A step function is `void fn(void **slots, int64_t n)`: slot 0 is the arena
 * holding every intermediate buffer (offsets from the schedule), the other
 * slots are the named tensors. Results are copied to their slots after every
 * node is computed, so an update never overwrites a parameter that is still
 * read.
 */
#include "cg.h"

#include <llvm-c/Analysis.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- module */

CgModule *cg_module_new(const char *name) {
    CgModule *m = xcalloc(1, sizeof *m);
    m->tsctx = LLVMOrcCreateNewThreadSafeContext();
    m->ctx = LLVMOrcThreadSafeContextGetContext(m->tsctx);
    m->mod = LLVMModuleCreateWithNameInContext(name, m->ctx);
    return m;
}

CgModule *cg_module_chain(CgModule *owner, const char *name) {
    CgModule *km = cg_module_new(name);
    km->kernel = true;
    CgModule *last = owner;
    while (last->next)
        last = last->next;
    last->next = km; /* owner's chain frees it */
    return km;
}

void cg_module_free(CgModule *m) {
    while (m) {
        CgModule *next = m->next;
        LLVMDisposeModule(m->mod);
        LLVMOrcDisposeThreadSafeContext(m->tsctx);
        free(m);
        m = next;
    }
}

void cg_print(CgModule *m, FILE *out) {
    for (; m; m = m->next) {
        char *s = LLVMPrintModuleToString(m->mod);
        fputs(s, out);
        LLVMDisposeMessage(s);
    }
}

void cg_use_module(Cg *c, CgModule *m) {
    c->ctx = m->ctx;
    c->mod = m->mod;
    c->ft = c->g->dtype == DT_F64 ? LLVMDoubleTypeInContext(m->ctx) : LLVMFloatTypeInContext(m->ctx);
    c->i64 = LLVMInt64TypeInContext(m->ctx);
    c->i8p = LLVMPointerType(LLVMInt8TypeInContext(m->ctx), 0);
    c->b = LLVMCreateBuilderInContext(m->ctx);
}

/* ---------------------------------------------------------------- emission state */


LLVMValueRef cg_i64(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, false); }
LLVMValueRef cg_f(Cg *c, double v) { return LLVMConstReal(c->ft, v); }


LLVMValueRef cg_loop_open(Cg *c, Loop *l, LLVMValueRef n) {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    l->head = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "loop");
    l->body = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "body");
    l->exit = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "done");
    LLVMBuildBr(c->b, l->head);
    LLVMPositionBuilderAtEnd(c->b, l->head);
    l->iv = LLVMBuildPhi(c->b, c->i64, "i");
    LLVMValueRef zero = cg_i64(c, 0);
    LLVMAddIncoming(l->iv, &zero, &pre, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, l->iv, n, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(c->b, l->body);
    return l->iv;
}

void cg_loop_close(Cg *c, Loop *l) {
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMValueRef next = LLVMBuildNUWAdd(c->b, l->iv, cg_i64(c, 1), "");
    LLVMBuildBr(c->b, l->head);
    LLVMAddIncoming(l->iv, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(c->b, l->exit);
}

bool cg_batch_axis(const Cg *c, NodeId id, int d) { return ir_batch_axes(c->g, id) >> d & 1; }

/* A batch axis of B m elements for the full batch B (m > 1: samples'
 * rows merged, as an im2col's) has n m for n samples. */
static LLVMValueRef batch_dim(Cg *c, int64_t full) {
    int64_t m = full / c->g->batch;
    return m == 1 ? c->n : LLVMBuildNUWMul(c->b, c->n, cg_i64(c, m), "");
}

LLVMValueRef cg_dim(Cg *c, NodeId id, int d) {
    int64_t full = c->g->nodes[id].shape.dim[d];
    return cg_batch_axis(c, id, d) ? batch_dim(c, full) : cg_i64(c, full);
}

/* The elements of node id: n times those of a sample for a batched one. */
static LLVMValueRef elems(Cg *c, NodeId id) {
    LLVMValueRef r = cg_i64(c, 1);
    for (int d = 0; d < c->g->nodes[id].shape.rank; d++)
        r = LLVMBuildNUWMul(c->b, r, cg_dim(c, id, d), "");
    return r;
}

/* A batch-dependent constant v computed for the full batch B is v B / n or
 * v n / B; the full batch takes v itself, so it computes what a step
 * compiled for one batch size did, to the bit. */
LLVMValueRef cg_const(Cg *c, NodeId id) {
    const IrNode *x = &c->g->nodes[id];
    int pow = ir_batch_pow(c->g, id);
    if (!pow)
        return cg_f(c, x->value);
    LLVMBuilderRef B = c->b;
    LLVMTypeRef dt = LLVMDoubleTypeInContext(c->ctx);
    LLVMValueRef n = LLVMBuildSIToFP(B, c->n, dt, "");
    LLVMValueRef v = pow < 0 ? LLVMBuildFDiv(B, LLVMConstReal(dt, x->value * (double)c->g->batch), n, "")
                             : LLVMBuildFMul(B, LLVMConstReal(dt, x->value / (double)c->g->batch), n, "");
    if (c->ft != dt)
        v = LLVMBuildFPTrunc(B, v, c->ft, "");
    LLVMValueRef is_full = LLVMBuildICmp(B, LLVMIntEQ, c->n, cg_i64(c, c->g->batch), "");
    return LLVMBuildSelect(B, is_full, cg_f(c, x->value), v, "");
}

/* A loop nest over every index of node id's shape (none for a scalar). */
typedef struct Nest {
    Loop loop[NNC_MAX_RANK];
    LLVMValueRef idx[NNC_MAX_RANK];
    int rank;
} Nest;

/* The loops over node id's axes, axis `part` (-1: none) over [b0, b1) only. */
static void nest_open_part(Cg *c, Nest *n, NodeId id, int part, LLVMValueRef b0, LLVMValueRef b1) {
    n->rank = c->g->nodes[id].shape.rank;
    for (int d = 0; d < n->rank; d++)
        n->idx[d] = d == part ? LLVMBuildNUWAdd(c->b, b0, cg_loop_open(c, &n->loop[d], LLVMBuildSub(c->b, b1, b0, "")), "")
                              : cg_loop_open(c, &n->loop[d], cg_dim(c, id, d));
}

static void nest_open(Cg *c, Nest *n, NodeId id) { nest_open_part(c, n, id, -1, NULL, NULL); }

static void nest_close(Cg *c, Nest *n) {
    for (int d = n->rank - 1; d >= 0; d--)
        cg_loop_close(c, &n->loop[d]);
}

/* A tensor in memory: its shape and which axes are batch axes. */
typedef struct Layout {
    Shape s;
    uint8_t batch_axes;
} Layout;

static Layout layout(const Cg *c, NodeId id) {
    return (Layout){c->g->nodes[id].shape, ir_batch_axes(c->g, id)};
}

static LLVMValueRef layout_dim(Cg *c, const Layout *l, int d) {
    return l->batch_axes >> d & 1 ? batch_dim(c, l->s.dim[d]) : cg_i64(c, l->s.dim[d]);
}

/* Offset of the element of a tensor laid out as `l` seen through the index of
 * a nest over shape `r` with NumPy broadcasting: axes aligned at the right,
 * an axis of size 1 (or missing) repeats (stride 0). A batch axis is never
 * of size 1: a batch of one sample has no batch axes. */
static LLVMValueRef bcast_offset(Cg *c, const Layout *l, const Nest *r) {
    LLVMValueRef off = cg_i64(c, 0), stride = cg_i64(c, 1);
    int lead = r->rank - l->s.rank;
    for (int d = l->s.rank - 1; d >= 0; d--) {
        if (l->s.dim[d] != 1)
            off = LLVMBuildNUWAdd(c->b, off, LLVMBuildNUWMul(c->b, r->idx[d + lead], stride, ""), "");
        stride = LLVMBuildNUWMul(c->b, stride, layout_dim(c, l, d), "");
    }
    return off;
}

/* Under LLVM 14's typed pointers a pointer's type names what it points to,
 * and a load, store or GEP of a t needs a t*: a bitcast makes one. From LLVM
 * 15 on every pointer is `ptr`, and the builder folds the cast away. */
LLVMValueRef cg_ptr_to(Cg *c, LLVMValueRef p, LLVMTypeRef t) {
    return LLVMBuildBitCast(c->b, p, LLVMPointerType(t, 0), "");
}

LLVMValueRef cg_elem_ptr(Cg *c, LLVMValueRef base, LLVMValueRef off) {
    return LLVMBuildInBoundsGEP2(c->b, c->ft, base, &off, 1, "");
}

LLVMValueRef cg_load_at(Cg *c, NodeId id, LLVMValueRef off) {
    const IrNode *n = &c->g->nodes[id];
    if (n->op == OP_CONST)
        return cg_const(c, id);
    if (n->op == OP_INPUT && c->g->slots[n->slot].u8) { /* model.c's multiply scales it */
        LLVMTypeRef i8 = LLVMInt8TypeInContext(c->ctx);
        LLVMValueRef byte = LLVMBuildLoad2(c->b, i8, LLVMBuildInBoundsGEP2(c->b, i8, c->ptr[id], &off, 1, ""), "");
        return LLVMBuildUIToFP(c->b, byte, c->ft, "");
    }
    return LLVMBuildLoad2(c->b, c->ft, cg_elem_ptr(c, c->ptr[id], off), "");
}

static void store_at(Cg *c, LLVMValueRef base, LLVMValueRef off, LLVMValueRef v) {
    LLVMBuildStore(c->b, v, cg_elem_ptr(c, base, off));
}

LLVMValueRef cg_splat(Cg *c, LLVMValueRef x, int w) {
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)w);
    LLVMValueRef v = LLVMBuildInsertElement(c->b, LLVMGetUndef(vt), x, cg_i64(c, 0), "");
    LLVMValueRef mask = LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(c->ctx), (unsigned)w));
    return LLVMBuildShuffleVector(c->b, v, LLVMGetUndef(vt), mask, "");
}

/* An overloaded LLVM intrinsic, e.g. llvm.exp.f32 or llvm.fmuladd.v16f32. */
LLVMValueRef cg_intrinsic(Cg *c, const char *name, LLVMTypeRef t, LLVMValueRef *args, unsigned nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id)
        die("codegen: no intrinsic %s", name);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &t, 1);
    return LLVMBuildCall2(c->b, LLVMIntrinsicGetType(c->ctx, id, &t, 1), f, args, nargs, "");
}

/* The libm function of one argument of op (op_info's libm: given to the JIT
 * by jit.c's symbol table), of the graph's float type. */
static LLVMValueRef libm1(Cg *c, Op op, LLVMValueRef x) {
    char name[32];
    snprintf(name, sizeof name, "%s%s", op_info[op].libm, c->g->dtype == DT_F64 ? "" : "f");
    LLVMTypeRef t = LLVMFunctionType(c->ft, &c->ft, 1, false);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f) {
        f = LLVMAddFunction(c->mod, name, t);
        LLVMSetLinkage(f, LLVMExternalLinkage);
    }
    return LLVMBuildCall2(c->b, t, f, &x, 1, "");
}

static LLVMValueRef fexp(Cg *c, LLVMValueRef x) { return cg_intrinsic(c, "llvm.exp", LLVMTypeOf(x), &x, 1); }

/* The constant x of v's type: a float, or a vector of them (the builder
 * folds the splat of a constant into a constant). */
static LLVMValueRef like(Cg *c, LLVMValueRef v, double x) {
    LLVMTypeRef t = LLVMTypeOf(v);
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? cg_splat(c, cg_f(c, x), (int)LLVMGetVectorSize(t)) : cg_f(c, x);
}

/* ---------------------------------------------------------------- ops */

LLVMValueRef cg_elemwise_value(Cg *c, const IrNode *n, LLVMValueRef a, LLVMValueRef b, LLVMValueRef col) {
    LLVMBuilderRef B = c->b;
    switch (n->op) {
    case OP_ADD: return LLVMBuildFAdd(B, a, b, "");
    case OP_SUB: return LLVMBuildFSub(B, a, b, "");
    case OP_MUL: return LLVMBuildFMul(B, a, b, "");
    case OP_DIV: return LLVMBuildFDiv(B, a, b, "");
    case OP_POW: {
        LLVMValueRef ab[2] = {a, b};
        return cg_intrinsic(c, "llvm.pow", LLVMTypeOf(a), ab, 2);
    }
    case OP_NEG: return LLVMBuildFNeg(B, a, "");
    case OP_EXP: return fexp(c, a);
    case OP_LOG: return cg_intrinsic(c, "llvm.log", LLVMTypeOf(a), &a, 1);
    case OP_RELU: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, like(c, a, 0), ""), a, like(c, a, 0), "");
    case OP_STEP: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, like(c, a, 0), ""), like(c, a, 1), like(c, a, 0), "");
    case OP_SIGMOID: return LLVMBuildFDiv(B, like(c, a, 1), LLVMBuildFAdd(B, like(c, a, 1), fexp(c, LLVMBuildFNeg(B, a, "")), ""), "");
    case OP_TANH: return libm1(c, OP_TANH, a);
    case OP_SQRT: return cg_intrinsic(c, "llvm.sqrt", LLVMTypeOf(a), &a, 1);
    case OP_ABS: return cg_intrinsic(c, "llvm.fabs", LLVMTypeOf(a), &a, 1);
    case OP_SIGN: {
        LLVMValueRef neg = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, a, like(c, a, 0), ""), like(c, a, -1), like(c, a, 0), "");
        return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, like(c, a, 0), ""), like(c, a, 1), neg, "");
    }
    case OP_SIN: return cg_intrinsic(c, "llvm.sin", LLVMTypeOf(a), &a, 1);
    case OP_COS: return cg_intrinsic(c, "llvm.cos", LLVMTypeOf(a), &a, 1);
    case OP_FLOOR: return cg_intrinsic(c, "llvm.floor", LLVMTypeOf(a), &a, 1);
    case OP_LEAKY_RELU:
        return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, like(c, a, 0), ""), a,
                               LLVMBuildFMul(B, a, like(c, a, n->value), ""), "");
    case OP_ELU: {
        LLVMValueRef em1 = LLVMBuildFMul(B, LLVMBuildFSub(B, fexp(c, a), like(c, a, 1), ""), like(c, a, n->value), "");
        return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, like(c, a, 0), ""), a, em1, "");
    }
    case OP_BCE_LOGITS: { /* max(a, 0) - a b + log(1 + e^-|a|): no overflow for any a */
        LLVMValueRef relu = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, like(c, a, 0), ""), a, like(c, a, 0), "");
        LLVMValueRef e = fexp(c, LLVMBuildFNeg(B, cg_intrinsic(c, "llvm.fabs", LLVMTypeOf(a), &a, 1), ""));
        LLVMValueRef sp = LLVMBuildFAdd(B, like(c, a, 1), e, "");
        return LLVMBuildFAdd(B, LLVMBuildFSub(B, relu, LLVMBuildFMul(B, a, b, ""), ""), cg_intrinsic(c, "llvm.log", LLVMTypeOf(a), &sp, 1), "");
    }
    case OP_MAXIMUM: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, a, b, ""), a, b, "");
    case OP_MINIMUM: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, a, b, ""), a, b, "");
    case OP_EQ: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, a, b, ""), like(c, a, 1), like(c, a, 0), "");
    case OP_ONEHOT: return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, a, col, ""), like(c, a, 1), like(c, a, 0), "");
    case OP_BROADCAST: return a;
    IR_OPS_LEAF(OP_CASE) IR_OPS_REDUCE(OP_CASE) IR_OPS_MATMUL(OP_CASE)
    case OP_TRANSPOSE: case OP_RESHAPE: case OP_CONCAT: case OP_SLICE:
    IR_OPS_WINDOW(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
        break;
    }
    die("cg_elemwise_value: %s", op_info[n->op].name); /* not elem */
}

/* The value of elementwise node id at the index of nest r, a nest over id's
 * shape: an inlined operand is computed right here, any other is loaded
 * (broadcast to the nest). */
static LLVMValueRef elemwise_at(Cg *c, NodeId id, const Nest *r) {
    const IrNode *n = &c->g->nodes[id];
    LLVMValueRef v[2] = {NULL, NULL};
    for (int k = 0; k < op_info[n->op].arity; k++) {
        NodeId in = n->in[k];
        Layout l = layout(c, in);
        if (op_info[n->op].index) /* labels [n] index the leading axis of [n, k] */
            l.s = (Shape){2, {l.s.dim[0], 1}};
        v[k] = c->sched->place[in] == PLACE_INLINE ? elemwise_at(c, in, r) : cg_load_at(c, in, bcast_offset(c, &l, r));
    }
    LLVMValueRef col = op_info[n->op].index ? LLVMBuildSIToFP(c->b, r->idx[r->rank - 1], c->ft, "") : NULL;
    return cg_elemwise_value(c, n, v[0], v[1], col);
}

/* A loop nest of node id over node `over`'s axes, axis `part` over [b0,
 * b1) only (-1: all of every axis). */
typedef void NestBody(Cg *c, NodeId id, int part, LLVMValueRef b0, LLVMValueRef b1);

typedef struct Part {
    NodeId over;
    int axis;
} Part;

static LLVMValueRef part_units(Cg *c, void *arg) {
    const Part *p = arg;
    return cg_dim(c, p->over, p->axis);
}

/* A nest over at least CG_PARALLEL_MIN_WORK elements at -O2 is a kernel
 * over ranges of one axis of `over`, on the thread pool (a convolution's
 * activation gradient and bias gradient pass over whole images: on one
 * thread they were 12% of an epoch of cnn.nn; at CG_VISIT_WORK a visit,
 * never a small job); each element is computed
 * by one unit, as it would be by one thread, so the values do not depend
 * on the split. */
static void emit_nest(Cg *c, NodeId id, NodeId over, int axis, NestBody *body) {
    const Shape *s = &c->g->nodes[over].shape;
    if (c->sched->opt < 2 || axis >= s->rank || (double)shape_elems(s) < CG_PARALLEL_MIN_WORK) {
        body(c, id, -1, NULL, NULL);
        return;
    }
    char name[256];
    Cg step;
    LLVMValueRef kfn = cg_kernel_begin(c, &step, "loop", false, name, sizeof name);
    body(c, id, axis, LLVMGetParam(kfn, 1), LLVMGetParam(kfn, 2));
    Part p = {over, axis};
    cg_kernel_end(c, &step, name, part_units, &p, (double)shape_elems(s) * CG_VISIT_WORK);
}

static void elemwise_store(Cg *c, NodeId id, const Nest *r) {
    Layout l = layout(c, id);
    store_at(c, c->ptr[id], bcast_offset(c, &l, r), elemwise_at(c, id, r));
}

/* Elementwise node id, and the kernels of its element loop if it is the
 * first of one (fuse_rows.c): each stored at every index in turn. */
static void elemwise_body(Cg *c, NodeId id, int part, LLVMValueRef b0, LLVMValueRef b1) {
    const Schedule *s = c->sched;
    Nest r;
    nest_open_part(c, &r, id, part, b0, b1);
    if (s->elems[id] != id) {
        elemwise_store(c, id, &r);
    } else {
        int k = 0;
        while (s->order[k] != id)
            k++;
        for (; k < c->g->nnodes && (s->elems[s->order[k]] == id || !schedule_has_loop(s, s->order[k])); k++)
            if (s->elems[s->order[k]] == id)
                elemwise_store(c, s->order[k], &r);
    }
    nest_close(c, &r);
}

static void emit_elemwise(Cg *c, NodeId id) { emit_nest(c, id, id, 0, elemwise_body); }

void cg_fill(Cg *c, LLVMValueRef base, LLVMValueRef count, LLVMValueRef v) {
    LLVMBool lost;
    double k = LLVMIsAConstantFP(v) ? LLVMConstRealGetDouble(v, &lost) : 1;
    if (k == 0 && !signbit(k)) {
        /* Zeros (all bits clear) as a memset: a kernel's loops are not
         * vectorised (jit.c's kernel passes), and its scalar loop zeroing
         * conv2's data gradient took 6% of that kernel. */
        LLVMValueRef bytes = LLVMBuildNUWMul(c->b, count, cg_i64(c, (int64_t)dtype_bytes(c->g->dtype)), "");
        LLVMBuildMemSet(c->b, base, LLVMConstInt(LLVMInt8TypeInContext(c->ctx), 0, false), bytes,
                        (unsigned)dtype_bytes(c->g->dtype));
        return;
    }
    Loop l;
    LLVMValueRef i = cg_loop_open(c, &l, count);
    store_at(c, base, i, v);
    cg_loop_close(c, &l);
}

LLVMValueRef cg_arena_at(Cg *c, size_t offset) {
    LLVMValueRef at = cg_i64(c, (int64_t)offset);
    return cg_ptr_to(c, LLVMBuildInBoundsGEP2(c->b, LLVMInt8TypeInContext(c->ctx), c->slot[SLOT_NO_ARENA], &at, 1, ""),
                     c->ft);
}

/* Partial by partial, each a contiguous run the loop vectoriser takes
 * (element by element, the loads strode over the partials: 19 partials of
 * conv2's filter gradient were 1.6% of a cnn.nn epoch); each element's sum
 * is in the same order either way. */
void cg_sum_partials(Cg *c, LLVMValueRef dst, size_t partials, LLVMValueRef count, int64_t stride, LLVMValueRef elems) {
    LLVMValueRef p = cg_arena_at(c, partials);
    cg_fill(c, dst, elems, cg_f(c, 0));
    Loop le, lu;
    LLVMValueRef u = cg_loop_open(c, &lu, count);
    LLVMValueRef from = cg_elem_ptr(c, p, LLVMBuildMul(c->b, u, cg_i64(c, stride), ""));
    LLVMValueRef e = cg_loop_open(c, &le, elems);
    LLVMValueRef at = cg_elem_ptr(c, dst, e);
    LLVMValueRef x = LLVMBuildLoad2(c->b, c->ft, cg_elem_ptr(c, from, e), "");
    LLVMBuildStore(c->b, LLVMBuildFAdd(c->b, LLVMBuildLoad2(c->b, c->ft, at, ""), x, ""), at);
    cg_loop_close(c, &le);
    cg_loop_close(c, &lu);
}

LLVMValueRef cg_var(Cg *c, LLVMTypeRef t, int64_t n, const char *name) {
    LLVMBasicBlockRef here = LLVMGetInsertBlock(c->b);
    LLVMPositionBuilderBefore(c->b, LLVMGetFirstInstruction(LLVMGetEntryBasicBlock(c->fn)));
    LLVMValueRef v = LLVMBuildArrayAlloca(c->b, t, cg_i64(c, n), name);
    LLVMSetAlignment(v, 64);
    LLVMPositionBuilderAtEnd(c->b, here);
    return v;
}

double cg_reduce_identity(Op op) {
    switch (op) {
    case OP_SUM: return 0;
    case OP_MAX: return -__builtin_inf();
    case OP_MIN: return __builtin_inf();
    case OP_LOGSOFTMAX: /* not an accumulation */
    IR_OPS_LEAF(OP_CASE) IR_OPS_BINARY(OP_CASE) IR_OPS_UNARY(OP_CASE) IR_OPS_MATMUL(OP_CASE) IR_OPS_MOVEMENT(OP_CASE)
    IR_OPS_WINDOW(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
        break;
    }
    die("cg_reduce_identity: %s", op_info[op].name);
}

LLVMValueRef cg_reduce_step(Cg *c, Op op, LLVMValueRef acc, LLVMValueRef x) {
    switch (op) {
    case OP_SUM: return LLVMBuildFAdd(c->b, acc, x, "");
    case OP_MAX: return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, x, acc, ""), x, acc, "");
    case OP_MIN: return LLVMBuildSelect(c->b, LLVMBuildFCmp(c->b, LLVMRealOLT, x, acc, ""), x, acc, "");
    case OP_LOGSOFTMAX: /* not an accumulation */
    IR_OPS_LEAF(OP_CASE) IR_OPS_BINARY(OP_CASE) IR_OPS_UNARY(OP_CASE) IR_OPS_MATMUL(OP_CASE) IR_OPS_MOVEMENT(OP_CASE)
    IR_OPS_WINDOW(OP_CASE) IR_OPS_RANDOM(OP_CASE) IR_OPS_COLLECTIVE(OP_CASE)
        break;
    }
    die("cg_reduce_step: %s", op_info[op].name);
}

/* r[j] = r[j] (+ or max or min) a[i] where j is i with the reduced axes at
 * 0: the reduced shape seen through a nest over the operand is exactly a
 * broadcast. Each element of r is summed in the order of the reduced axis
 * however the others are split. */
static void reduce_body(Cg *c, NodeId id, int part, LLVMValueRef b0, LLVMValueRef b1) {
    const IrNode *n = &c->g->nodes[id];
    Nest r;
    nest_open_part(c, &r, n->in[0], part, b0, b1);
    LLVMBuilderRef B = c->b;
    Layout lr = layout(c, id), la = layout(c, n->in[0]);
    LLVMValueRef dst = cg_elem_ptr(c, c->ptr[id], bcast_offset(c, &lr, &r));
    LLVMValueRef acc = LLVMBuildLoad2(B, c->ft, dst, "");
    LLVMValueRef x = c->sched->place[n->in[0]] == PLACE_INLINE ? elemwise_at(c, n->in[0], &r)
                                                                : cg_load_at(c, n->in[0], bcast_offset(c, &la, &r));
    LLVMBuildStore(B, cg_reduce_step(c, n->op, acc, x), dst);
    nest_close(c, &r);
}

/* r starts at the identity of the operation. A reduction over axis 0
 * splits its operand's axis 1: each unit then has result elements of its
 * own. */
static void emit_reduce(Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    cg_fill(c, c->ptr[id], elems(c, id), cg_f(c, cg_reduce_identity(n->op)));
    emit_nest(c, id, n->in[0], n->axis == 0 ? 1 : NNC_MAX_RANK, reduce_body);
}

/* The offset in node id's buffer of the element at the nest's index, with
 * `shift` added to the index along `axis` (the nest has id's rank). The
 * axis is never a batch axis: expr.c concatenates and slices samples. */
static LLVMValueRef shifted_offset(Cg *c, NodeId id, const Nest *r, int axis, int64_t shift) {
    LLVMValueRef off = cg_i64(c, 0), stride = cg_i64(c, 1);
    for (int d = c->g->nodes[id].shape.rank - 1; d >= 0; d--) {
        LLVMValueRef i = d == axis ? LLVMBuildNUWAdd(c->b, r->idx[d], cg_i64(c, shift), "") : r->idx[d];
        off = LLVMBuildNUWAdd(c->b, off, LLVMBuildNUWMul(c->b, i, stride, ""), "");
        stride = LLVMBuildNUWMul(c->b, stride, cg_dim(c, id, d), "");
    }
    return off;
}

/* r = a then b along the axis: one copy loop nest per operand. */
static void emit_concat(Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    if (cg_batch_axis(c, id, n->axis))
        die("codegen: concat along the batch axis");
    int64_t shift = 0;
    for (int k = 0; k < 2; k++) {
        Nest r;
        nest_open(c, &r, n->in[k]);
        store_at(c, c->ptr[id], shifted_offset(c, id, &r, n->axis, shift),
                 cg_load_at(c, n->in[k], shifted_offset(c, n->in[k], &r, -1, 0)));
        nest_close(c, &r);
        shift += c->g->nodes[n->in[k]].shape.dim[n->axis];
    }
}

/* r[.., i, ..] = a[.., start + i, ..] */
static void emit_slice(Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    if (cg_batch_axis(c, id, n->axis))
        die("codegen: slice along the batch axis");
    Nest r;
    nest_open(c, &r, id);
    store_at(c, c->ptr[id], shifted_offset(c, id, &r, -1, 0),
             cg_load_at(c, n->in[0], shifted_offset(c, n->in[0], &r, n->axis, n->start)));
    nest_close(c, &r);
}

/* Per row of the last axis: m = max a, s = sum e^(a - m), r = a - m - log s. */
static void emit_logsoftmax(Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    int last = n->shape.rank - 1;
    if (cg_batch_axis(c, id, last))
        die("codegen: logsoftmax along the batch axis");
    LLVMValueRef len = cg_dim(c, id, last), rows = cg_i64(c, 1);
    for (int d = 0; d < last; d++)
        rows = LLVMBuildNUWMul(c->b, rows, cg_dim(c, id, d), "");
    LLVMBuilderRef B = c->b;
    LLVMValueRef mx = cg_var(c, c->ft, 1, "max"), sum = cg_var(c, c->ft, 1, "sum");

    Loop lr, l1, l2, l3;
    LLVMValueRef row = LLVMBuildNUWMul(B, cg_loop_open(c, &lr, rows), len, "");
    LLVMBuildStore(B, cg_f(c, -__builtin_inf()), mx);
    LLVMValueRef j = LLVMBuildNUWAdd(B, row, cg_loop_open(c, &l1, len), "");
    LLVMValueRef x = cg_load_at(c, n->in[0], j), m = LLVMBuildLoad2(B, c->ft, mx, "");
    LLVMBuildStore(B, LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, x, m, ""), x, m, ""), mx);
    cg_loop_close(c, &l1);
    m = LLVMBuildLoad2(B, c->ft, mx, "");
    LLVMBuildStore(B, cg_f(c, 0), sum);
    j = LLVMBuildNUWAdd(B, row, cg_loop_open(c, &l2, len), "");
    x = cg_load_at(c, n->in[0], j);
    LLVMValueRef e = fexp(c, LLVMBuildFSub(B, x, m, ""));
    LLVMBuildStore(B, LLVMBuildFAdd(B, LLVMBuildLoad2(B, c->ft, sum, ""), e, ""), sum);
    cg_loop_close(c, &l2);
    LLVMValueRef s = LLVMBuildLoad2(B, c->ft, sum, "");
    LLVMValueRef lse = LLVMBuildFAdd(B, m, cg_intrinsic(c, "llvm.log", c->ft, &s, 1), "");
    j = LLVMBuildNUWAdd(B, row, cg_loop_open(c, &l3, len), "");
    store_at(c, c->ptr[id], j, LLVMBuildFSub(B, cg_load_at(c, n->in[0], j), lse, ""));
    cg_loop_close(c, &l3);
    cg_loop_close(c, &lr);
}

/* C = A B, i-k-j order so the inner loop runs along rows of B and C: the
 * -O0 reference (cg_matmul.c has the kernel). */
static void emit_matmul_naive(Cg *c, NodeId id) {
    const IrNode *n = &c->g->nodes[id];
    LLVMValueRef M = cg_dim(c, id, 0), N = cg_dim(c, id, 1), K = cg_dim(c, n->in[0], 1);
    LLVMBuilderRef B = c->b;
    cg_fill(c, c->ptr[id], elems(c, id), cg_f(c, 0));
    Loop li, lk, lj;
    LLVMValueRef i = cg_loop_open(c, &li, M);
    LLVMValueRef k = cg_loop_open(c, &lk, K);
    LLVMValueRef a = cg_load_at(c, n->in[0], LLVMBuildNUWAdd(B, LLVMBuildNUWMul(B, i, K, ""), k, ""));
    LLVMValueRef j = cg_loop_open(c, &lj, N);
    LLVMValueRef bkj = cg_load_at(c, n->in[1], LLVMBuildNUWAdd(B, LLVMBuildNUWMul(B, k, N, ""), j, ""));
    LLVMValueRef dst = cg_elem_ptr(c, c->ptr[id], LLVMBuildNUWAdd(B, LLVMBuildNUWMul(B, i, N, ""), j, ""));
    LLVMValueRef args[3] = {a, bkj, LLVMBuildLoad2(B, c->ft, dst, "")};
    LLVMBuildStore(B, cg_intrinsic(c, "llvm.fmuladd", c->ft, args, 3), dst);
    cg_loop_close(c, &lj);
    cg_loop_close(c, &lk);
    cg_loop_close(c, &li);
}

/* r[i, j] = a[j, i] */
static void emit_transpose(Cg *c, NodeId id) {
    LLVMValueRef M = cg_dim(c, id, 0), N = cg_dim(c, id, 1);
    Loop li, lj;
    LLVMValueRef i = cg_loop_open(c, &li, M), j = cg_loop_open(c, &lj, N);
    LLVMValueRef src = LLVMBuildNUWAdd(c->b, LLVMBuildNUWMul(c->b, j, M, ""), i, "");
    LLVMValueRef dst = LLVMBuildNUWAdd(c->b, LLVMBuildNUWMul(c->b, i, N, ""), j, "");
    store_at(c, c->ptr[id], dst, cg_load_at(c, c->g->nodes[id].in[0], src));
    cg_loop_close(c, &lj);
    cg_loop_close(c, &li);
}

/* nnrt_allreduce(dst, src, elems, n, dtype bytes, bucket, its elements): a
 * call into the runtime (runtime/mpi.c, resolved by the JIT), made by the
 * step's own thread as MPI requires; n, this rank's samples, weighs its
 * share. The bucket's last all-reduce starts the bucket's (the others pass
 * 0 elements). */
static void emit_allreduce(Cg *c, NodeId id) {
    LLVMTypeRef i32 = LLVMInt32TypeInContext(c->ctx), i8 = LLVMInt8TypeInContext(c->ctx);
    LLVMTypeRef params[7] = {c->i8p, c->i8p, c->i64, c->i64, i32, c->i8p, c->i64};
    LLVMTypeRef type = LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), params, 7, false);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, "nnrt_allreduce");
    if (!f)
        f = LLVMAddFunction(c->mod, "nnrt_allreduce", type);
    const struct Bucket *b = &c->sched->buckets[c->sched->bucket[id]];
    size_t bucket_elems = b->last == id ? b->bytes / dtype_bytes(c->g->dtype) : 0;
    LLVMValueRef args[7] = {cg_ptr_to(c, c->ptr[id], i8), cg_ptr_to(c, c->ptr[c->g->nodes[id].in[0]], i8),
                            elems(c, id), c->n, LLVMConstInt(i32, dtype_bytes(c->g->dtype), false),
                            cg_ptr_to(c, c->ptr[b->first], i8), cg_i64(c, (int64_t)bucket_elems)};
    LLVMBuildCall2(c->b, type, f, args, 7, "");
}

/* nnrt_allreduce_wait() before the first of n kernels that reads an
 * all-reduced gradient. */
static void wait_allreduces(Cg *c, const NodeId *kernels, int n) {
    for (int k = 0; k < n; k++)
        if (c->sched->waits[kernels[k]]) {
            LLVMTypeRef type = LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), NULL, 0, false);
            LLVMValueRef f = LLVMGetNamedFunction(c->mod, "nnrt_allreduce_wait");
            if (!f)
                f = LLVMAddFunction(c->mod, "nnrt_allreduce_wait", type);
            LLVMBuildCall2(c->b, type, f, NULL, 0, "");
            return;
        }
}

static void emit_node(Cg *c, NodeId id) {
    if (c->sched->epilogue[id] >= 0) { /* a kernel that stores its user */
        if (c->g->nodes[id].op == OP_MAXPOOL_GRAD)
            cg_window(c, id);
        else
            cg_matmul(c, id);
        return;
    }
    Placement p = c->sched->place[id];
    if (p != PLACE_ARENA && p != PLACE_SLOT)
        return; /* no loop of its own */
    if (c->sched->root[id] != id)
        return; /* a matmul's epilogue */
    switch (c->g->nodes[id].op) {
    IR_OPS_BINARY(OP_CASE) IR_OPS_UNARY(OP_CASE)
    case OP_BROADCAST:
        emit_elemwise(c, id);
        return;
    case OP_SUM: case OP_MAX: case OP_MIN: emit_reduce(c, id); return;
    case OP_LOGSOFTMAX: emit_logsoftmax(c, id); return;
    case OP_MATMUL:
        if (c->sched->opt >= 2 && cg_matmul_tiled(c->g, id))
            cg_matmul(c, id);
        else
            emit_matmul_naive(c, id);
        return;
    case OP_TRANSPOSE: emit_transpose(c, id); return;
    case OP_CONCAT: emit_concat(c, id); return;
    case OP_SLICE: emit_slice(c, id); return;
    IR_OPS_WINDOW(OP_CASE) cg_window(c, id); return;
    case OP_RANDOM: cg_random(c, id); return;
    case OP_ALLREDUCE: emit_allreduce(c, id); return;
    IR_OPS_LEAF(OP_CASE)
    case OP_RESHAPE: /* an alias */
        unreachable();
    }
}

/* ---------------------------------------------------------------- step function */

/* In a kernel of a sample loop: node x, which lives in the buffer of the
 * group the kernel is called on (its context's third pointer), indexed as
 * the whole batch would be: the buffer's start is sample begin's. */
static LLVMValueRef group_ptr(Cg *c, NodeId x) {
    LLVMValueRef two = cg_i64(c, 2), ctx = LLVMGetParam(c->fn, 0);
    LLVMValueRef buf = LLVMBuildLoad2(c->b, c->i8p, LLVMBuildInBoundsGEP2(c->b, c->i8p, ctx, &two, 1, ""), "group");
    LLVMValueRef off = cg_i64(c, (int64_t)c->sched->local[x]);
    LLVMValueRef p = cg_ptr_to(c, LLVMBuildInBoundsGEP2(c->b, LLVMInt8TypeInContext(c->ctx), buf, &off, 1, ""), c->ft);
    int64_t per = shape_elems(&c->g->nodes[x].shape) / c->g->batch;
    LLVMValueRef back = LLVMBuildMul(c->b, LLVMBuildNeg(c->b, LLVMGetParam(c->fn, 1), ""), cg_i64(c, per), "");
    return LLVMBuildGEP2(c->b, c->ft, p, &back, 1, ""); /* before the buffer: not inbounds */
}

void cg_begin_function(Cg *c, LLVMValueRef fn, bool kernel) {
    const Graph *g = c->g;
    c->fn = fn;
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMValueRef slots = LLVMGetParam(fn, 0), arena = NULL;
    c->kctx = NULL;
    if (kernel) { /* slots and n from the context */
        LLVMValueRef one = cg_i64(c, 1);
        LLVMValueRef nptr = LLVMBuildLoad2(c->b, c->i8p, LLVMBuildInBoundsGEP2(c->b, c->i8p, slots, &one, 1, ""), "");
        c->n = LLVMBuildPtrToInt(c->b, nptr, c->i64, "n");
        slots = cg_ptr_to(c, LLVMBuildLoad2(c->b, c->i8p, slots, "slots"), c->i8p);
    } else {
        c->n = LLVMGetParam(fn, 1);
    }
    for (int s = 0; s < g->nslots; s++) {
        LLVMValueRef k = cg_i64(c, s);
        LLVMValueRef p = LLVMBuildLoad2(c->b, c->i8p, LLVMBuildInBoundsGEP2(c->b, c->i8p, slots, &k, 1, ""),
                                        g->slots[s].name);
        if (s == SLOT_NO_ARENA)
            arena = p;
        c->slot[s] = g->slots[s].u8 ? p : cg_ptr_to(c, p, c->ft);
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        switch (c->sched->place[i]) {
        case PLACE_NONE:
            c->ptr[i] = n->op == OP_CONST ? NULL : c->slot[n->slot];
            break;
        case PLACE_ALIAS: c->ptr[i] = c->ptr[n->in[0]]; break;
        case PLACE_SLOT: c->ptr[i] = c->slot[c->sched->slot[i]]; break;
        case PLACE_INLINE:
        case PLACE_FOLDED: c->ptr[i] = NULL; break; /* never in memory */
        case PLACE_ARENA: {
            if (c->sched->local[i] != SIZE_MAX) { /* in a sample loop's buffer */
                c->ptr[i] = kernel && c->samples ? group_ptr(c, i) : NULL;
                break;
            }
            LLVMValueRef off = cg_i64(c, (int64_t)c->sched->offset[i]);
            LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, LLVMInt8TypeInContext(c->ctx), arena, &off, 1, "");
            c->ptr[i] = cg_ptr_to(c, p, c->ft);
            break;
        }
        }
    }
}

LLVMValueRef cg_finite_flag(Cg *c, LLVMValueRef arena) {
    LLVMTypeRef i8 = LLVMInt8TypeInContext(c->ctx), i32 = LLVMInt32TypeInContext(c->ctx);
    arena = cg_ptr_to(c, arena, i8);
    LLVMValueRef off = cg_i64(c, (int64_t)c->sched->finite_flag);
    return cg_ptr_to(c, LLVMBuildInBoundsGEP2(c->b, i8, arena, &off, 1, ""), i32);
}

/* Made in the entry block, so every kernel call of the function finds it. */
LLVMValueRef cg_kernel_context(Cg *c) {
    if (c->kctx)
        return c->kctx;
    LLVMBuilderRef B = c->b;
    LLVMBasicBlockRef here = LLVMGetInsertBlock(B);
    LLVMValueRef term = LLVMGetBasicBlockTerminator(LLVMGetEntryBasicBlock(c->fn));
    if (term) /* else the builder is still in the entry block */
        LLVMPositionBuilderBefore(B, term);
    c->kctx = LLVMBuildArrayAlloca(B, c->i8p, cg_i64(c, 2), "ctx");
    LLVMValueRef one = cg_i64(c, 1);
    LLVMBuildStore(B, cg_ptr_to(c, LLVMGetParam(c->fn, 0), LLVMInt8TypeInContext(c->ctx)), c->kctx);
    LLVMBuildStore(B, LLVMBuildIntToPtr(B, c->n, c->i8p, ""), LLVMBuildInBoundsGEP2(B, c->i8p, c->kctx, &one, 1, ""));
    LLVMPositionBuilderAtEnd(B, here);
    return c->kctx;
}

LLVMTypeRef cg_kernel_type(Cg *c) {
    LLVMTypeRef params[3] = {LLVMPointerType(c->i8p, 0), c->i64, c->i64};
    return LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), params, 3, false);
}

void cg_parallel_for(Cg *c, LLVMValueRef kfn, LLVMValueRef ctx, LLVMValueRef n, bool small) {
    const char *name = small ? "nnrt_parallel_for_small" : "nnrt_parallel_for";
    LLVMTypeRef params[3] = {LLVMPointerType(cg_kernel_type(c), 0), LLVMPointerType(c->i8p, 0), c->i64};
    LLVMTypeRef type = LLVMFunctionType(LLVMVoidTypeInContext(c->ctx), params, 3, false);
    LLVMValueRef f = LLVMGetNamedFunction(c->mod, name);
    if (!f)
        f = LLVMAddFunction(c->mod, name, type);
    LLVMValueRef args[3] = {kfn, ctx, n};
    LLVMBuildCall2(c->b, type, f, args, 3, "");
}

LLVMValueRef cg_kernel_begin(Cg *c, Cg *step, const char *kind, bool blocked, char *name, size_t len) {
    snprintf(name, len, "%s.%s%d", c->name, kind, c->kernels++);
    CgModule *km = cg_module_chain(c->owner, name);
    km->kernel = blocked;
    km->kernel_fn = true;
    *step = *c;
    cg_use_module(c, km);
    LLVMValueRef kfn = LLVMAddFunction(c->mod, name, cg_kernel_type(c)); /* external: the step and perf maps see it */
    c->ptr = xrealloc(NULL, (size_t)c->g->nnodes + 1, sizeof *c->ptr);
    c->slot = xrealloc(NULL, (size_t)c->g->nslots, sizeof *c->slot);
    cg_begin_function(c, kfn, true);
    return kfn;
}

/* Removes what cg_begin_function made and nothing uses: the pointers to
 * every slot and buffer of the step (and the offsets into a sample loop's
 * buffer). Two kernels of the same code are then
 * the same IR but for their names, which jit.c compiles once. An operand
 * comes before its user, so one backward pass removes whole chains. */
static void prune_entry(Cg *c) {
    LLVMValueRef next;
    for (LLVMValueRef i = LLVMGetLastInstruction(LLVMGetEntryBasicBlock(c->fn)); i; i = next) {
        next = LLVMGetPreviousInstruction(i);
        LLVMOpcode op = LLVMGetInstructionOpcode(i);
        if (!LLVMGetFirstUse(i) && (op == LLVMGetElementPtr || op == LLVMBitCast || op == LLVMPtrToInt ||
                                    op == LLVMMul || op == LLVMSub || (op == LLVMLoad && !LLVMGetVolatile(i))))
            LLVMInstructionEraseFromParent(i);
    }
}

/* A sample loop (fuse_samples.c): a kernel of its own, name.samplesN,
 * over groups of samples, which calls each of its member kernels on the
 * group [s0, s1). The step runs it on the thread pool where it would have
 * called the first member; each member's kernel is emitted as usual, and
 * cg_kernel_end adds its call to the loop instead of the step. What the
 * step does after a member (adding up its partial sums) thus comes after
 * the loop, once every group is done, as fuse_samples.c requires. */
typedef struct SampleLoop {
    Cg d; /* the loop's kernel, being emitted */
    Loop l;
    LLVMValueRef ctx, s0, s1; /* the members': the context (and the group's buffer), the group */
    NodeId last;              /* its last member */
} SampleLoop;

static void samples_begin(Cg *c, NodeId head, NodeId last) {
    SampleLoop *sl = xrealloc(NULL, 1, sizeof *sl);
    char name[256];
    Cg unused;
    sl->d = *c;
    Cg *d = &sl->d;
    LLVMValueRef fn = cg_kernel_begin(d, &unused, "samples", false, name, sizeof name);
    c->kernels = d->kernels;
    int64_t group = c->sched->group[head];
    /* The members' context: the loop's, and a buffer for a group's values
     * that only the loop reads (Schedule.local), on this thread's stack. */
    sl->ctx = LLVMGetParam(fn, 0);
    if (c->sched->group_bytes[head]) {
        LLVMTypeRef i8 = LLVMInt8TypeInContext(d->ctx);
        LLVMValueRef buf = LLVMBuildArrayAlloca(d->b, i8, cg_i64(d, (int64_t)c->sched->group_bytes[head]), "group");
        LLVMSetAlignment(buf, 64);
        LLVMValueRef ctx = LLVMBuildArrayAlloca(d->b, d->i8p, cg_i64(d, 3), "ctx"), at[3];
        for (int k = 0; k < 3; k++)
            at[k] = cg_i64(d, k);
        for (int k = 0; k < 2; k++) {
            LLVMValueRef from = LLVMBuildInBoundsGEP2(d->b, d->i8p, sl->ctx, &at[k], 1, "");
            LLVMBuildStore(d->b, LLVMBuildLoad2(d->b, d->i8p, from, ""), LLVMBuildInBoundsGEP2(d->b, d->i8p, ctx, &at[k], 1, ""));
        }
        LLVMBuildStore(d->b, cg_ptr_to(d, buf, i8), LLVMBuildInBoundsGEP2(d->b, d->i8p, ctx, &at[2], 1, ""));
        sl->ctx = ctx;
    }
    LLVMValueRef g0 = LLVMGetParam(fn, 1);
    LLVMValueRef g = LLVMBuildAdd(d->b, g0, cg_loop_open(d, &sl->l, LLVMBuildSub(d->b, LLVMGetParam(fn, 2), g0, "")), "");
    sl->s0 = LLVMBuildMul(d->b, g, cg_i64(d, group), "s0");
    LLVMValueRef end = LLVMBuildAdd(d->b, sl->s0, cg_i64(d, group), "");
    sl->s1 = LLVMBuildSelect(d->b, LLVMBuildICmp(d->b, LLVMIntULT, end, d->n, ""), end, d->n, "s1");
    sl->last = last;
    LLVMValueRef groups = LLVMBuildUDiv(c->b, LLVMBuildAdd(c->b, c->n, cg_i64(c, group - 1), ""), cg_i64(c, group), "");
    cg_parallel_for(c, LLVMAddFunction(c->mod, name, cg_kernel_type(c)), cg_kernel_context(c), groups, false);
    c->samples = sl;
}

static void samples_end(Cg *c) {
    Cg *d = &c->samples->d;
    cg_loop_close(d, &c->samples->l);
    prune_entry(d);
    cg_end_function(d);
    free(d->ptr);
    free(d->slot);
    LLVMDisposeBuilder(d->b);
    free(c->samples);
    c->samples = NULL;
}

void cg_kernel_end(Cg *c, const Cg *step, const char *name, LLVMValueRef (*units)(Cg *c, void *arg), void *arg,
                   double work) {
    prune_entry(c);
    cg_end_function(c);
    free(c->ptr);
    free(c->slot);
    LLVMDisposeBuilder(c->b);
    int kernels = c->kernels;
    *c = *step;
    c->kernels = kernels;
    if (c->samples) { /* called by the sample loop, on each group */
        Cg *d = &c->samples->d;
        LLVMTypeRef kty = cg_kernel_type(d);
        LLVMValueRef args[3] = {c->samples->ctx, c->samples->s0, c->samples->s1};
        LLVMBuildCall2(d->b, kty, LLVMAddFunction(d->mod, name, kty), args, 3, "");
        return;
    }
    LLVMTypeRef kty = cg_kernel_type(c);
    LLVMValueRef kfn = LLVMAddFunction(c->mod, name, kty); /* declared; the JIT links it */
    LLVMValueRef n = units(c, arg);
    if ((!LLVMIsAConstantInt(n) || LLVMConstIntGetZExtValue(n) > 1) && work >= CG_PARALLEL_MIN_WORK) {
        cg_parallel_for(c, kfn, cg_kernel_context(c), n, work < CG_SMALL_WORK);
        return;
    }
    LLVMValueRef args[3] = {cg_kernel_context(c), cg_i64(c, 0), n};
    LLVMBuildCall2(c->b, kty, kfn, args, 3, "");
}

void cg_end_function(Cg *c) {
    LLVMBuildRetVoid(c->b);
    cg_verify_function(c);
}

void cg_verify_function(Cg *c) {
    if (LLVMVerifyFunction(c->fn, LLVMReturnStatusAction)) {
        char *msg = NULL;
        LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg);
        die("codegen: invalid LLVM IR in %s: %s", LLVMGetValueName(c->fn), msg ? msg : "?");
    }
}

/* if (nnrt_interrupt_requested) return;  -- the runtime's flag, set by Ctrl-C
 * (a volatile load: the handler may set it at any time). */
static void return_if_interrupted(Cg *c) {
    LLVMTypeRef i32 = LLVMInt32TypeInContext(c->ctx);
    LLVMValueRef flag = LLVMGetNamedGlobal(c->mod, "nnrt_interrupt_requested");
    if (!flag)
        flag = LLVMAddGlobal(c->mod, i32, "nnrt_interrupt_requested"); /* resolved by the JIT's symbol table */
    LLVMValueRef v = LLVMBuildLoad2(c->b, i32, flag, "interrupted");
    LLVMSetVolatile(v, true);
    LLVMBasicBlockRef stop = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "stop");
    LLVMBasicBlockRef go = LLVMAppendBasicBlockInContext(c->ctx, c->fn, "go");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, v, LLVMConstInt(i32, 0, false), ""), stop, go);
    LLVMPositionBuilderAtEnd(c->b, stop);
    LLVMBuildRetVoid(c->b);
    LLVMPositionBuilderAtEnd(c->b, go);
}

void cg_add_step(CgModule *m, const char *name, const Graph *g, const Schedule *sched) {
    Cg c = {.owner = m, .g = g, .sched = sched, .name = name};
    cg_use_module(&c, m);
    LLVMTypeRef params[2] = {LLVMPointerType(c.i8p, 0), c.i64};
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(m->ctx), params, 2, false);
    c.slot = xrealloc(NULL, (size_t)g->nslots, sizeof *c.slot);
    c.ptr = xrealloc(NULL, (size_t)g->nnodes + 1, sizeof *c.ptr);
    cg_begin_function(&c, LLVMAddFunction(m->mod, name, fty), false);
    if (sched->finite_flag != SIZE_MAX)
        LLVMBuildStore(c.b, LLVMConstNull(LLVMInt32TypeInContext(c.ctx)), cg_finite_flag(&c, c.slot[SLOT_NO_ARENA]));
    for (int k = 0; k < g->nnodes;) {
        NodeId i = sched->order[k];
        if (sched->interruptible && (sched->place[i] == PLACE_ARENA || sched->place[i] == PLACE_SLOT))
            return_if_interrupted(&c);
        if (sched->elems[i] >= 0 && sched->elems[i] != i) {
            k++; /* computed in its element loop, by the first kernel's */
            continue;
        }
        if (sched->rows[i] < 0) {
            wait_allreduces(&c, &i, 1);
            if (sched->samples[i] == i) {
                NodeId last = i;
                for (int j = k; j < g->nnodes; j++)
                    last = sched->samples[sched->order[j]] == i ? sched->order[j] : last;
                samples_begin(&c, i, last);
            }
            emit_node(&c, i);
            if (c.samples && c.samples->last == i)
                samples_end(&c);
            k++;
            continue;
        }
        int end = k; /* the row loop's kernels, and the nodes without a loop among them */
        while (end < g->nnodes && (sched->rows[sched->order[end]] == i || !schedule_has_loop(sched, sched->order[end])))
            end++;
        wait_allreduces(&c, sched->order + k, end - k);
        cg_rows(&c, sched->order + k, end - k);
        k = end;
    }
    /* Results go to their slots last: every read of the old values is done. */
    for (int o = 0; o < g->noutputs; o++) {
        NodeId id = g->outputs[o].node, m = schedule_memory(g, sched, id);
        const IrNode *n = &g->nodes[m];
        if ((ir_is_slot_leaf(n) && n->slot == g->outputs[o].slot) ||
            (sched->place[m] == PLACE_SLOT && sched->slot[m] == g->outputs[o].slot))
            continue; /* unchanged, or computed in place */
        Loop l;
        LLVMValueRef i = cg_loop_open(&c, &l, elems(&c, id));
        store_at(&c, c.slot[g->outputs[o].slot], i, cg_load_at(&c, id, i));
        cg_loop_close(&c, &l);
    }
    cg_end_function(&c);
    LLVMDisposeBuilder(c.b);
    free(c.slot);
    free(c.ptr);
}
