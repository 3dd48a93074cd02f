/* cg_guard.c — the NaN/Inf guard's scan, `int fn(void **slots)`: 1 when
 * every element of the parameter and optimizer-state slots is finite.
 *
 * The trainer calls it after every step (runtime/train.c), so it reads all
 * the weights once a step. Compiled C at the runtime's portable width (SSE2,
 * 16-byte vectors) it took 25 us for 784-128-10's 101,770 floats: a quarter
 * of a batch-32 step. Generated here like the kernels, it loads vectors of
 * its Target's full width (zmm with AVX-512: 8 us), which NNC_TARGET_FEATURES
 * narrows, so the tests reach every width.
 *
 * It works on the bits: (u & exponent) + the exponent's lowest bit carries
 * into the sign bit exactly when the exponent is all ones (NaN, Inf). OR-ing
 * those is one cheap independent operation per element, where a float sum
 * would be one long chain of dependent adds.
 *
 * A weight matrix the matmul kernels update on the thread pool sits, one
 * column panel per thread, in the caches of the cores that wrote it: read
 * on the calling thread, half of it crossed to the other core and back at
 * every step (784-128-10 at batch 32 on 2 threads: 0.20 s an epoch with the
 * scan, 0.14 without). Large matrices are therefore scanned on the pool by
 * the same column panels, each by the thread that updated it.
 *
 * Better still is not to read them again at all: a matrix updated in a
 * matmul kernel's epilogue is checked there, as it is stored (cg_matmul.c),
 * and the kernel sets a flag in the step's arena that the guard reads
 * instead of scanning that slot. 784-2048-10 at batch 128: 3.63 s an epoch
 * with the scan, 2.98 s with the check, on one thread.
 */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>

/* Slots of rank 2 at least this large, and more than one panel wide, are
 * scanned on the thread pool. */
#define SPLIT_BYTES (64 * 1024)

/* A loop over [0, n) carrying a value: acc starts at init and is next
 * (acc_close) after each iteration; after the loop, the last. */
typedef struct AccLoop {
    Loop l;
    LLVMValueRef acc;
} AccLoop;

static LLVMValueRef acc_open(Cg *c, AccLoop *a, LLVMValueRef n, LLVMValueRef init) {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(c->b);
    LLVMValueRef i = cg_loop_open(c, &a->l, n);
    /* The value's phi, beside the counter's at the head. */
    LLVMPositionBuilderBefore(c->b, LLVMGetFirstInstruction(a->l.head));
    a->acc = LLVMBuildPhi(c->b, LLVMTypeOf(init), "acc");
    LLVMAddIncoming(a->acc, &init, &pre, 1);
    LLVMPositionBuilderAtEnd(c->b, a->l.body);
    return i;
}

static void acc_close(Cg *c, AccLoop *a, LLVMValueRef next) {
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(a->acc, &next, &latch, 1);
    cg_loop_close(c, &a->l);
}

/* The scan's constants, of element type it, vector type vt (lanes wide). */
typedef struct Bits {
    LLVMTypeRef it, vt;
    int lanes;
    LLVMValueRef exponent, carry, vexponent, vcarry;
} Bits;

/* acc | ((u & exponent) + carry) over the count values of type t (bits->it,
 * or bits->vt) from element start of base, in a loop of its own; returns
 * the final acc. */
static LLVMValueRef scan(Cg *c, const Bits *k, bool vec, LLVMValueRef base, LLVMValueRef start, LLVMValueRef count,
                         LLVMValueRef acc) {
    LLVMTypeRef t = vec ? k->vt : k->it;
    int lanes = vec ? k->lanes : 1;
    AccLoop l;
    LLVMValueRef i = acc_open(c, &l, count, acc);
    LLVMValueRef off = LLVMBuildAdd(c->b, start, LLVMBuildMul(c->b, i, cg_i64(c, lanes), ""), "");
    LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, k->it, base, &off, 1, "");
    LLVMValueRef u = LLVMBuildLoad2(c->b, t, cg_ptr_to(c, p, t), "");
    LLVMSetAlignment(u, LLVMGetIntTypeWidth(k->it) / 8); /* the slot's elements' alignment, not the vector's */
    LLVMValueRef bits =
        LLVMBuildAdd(c->b, LLVMBuildAnd(c->b, u, vec ? k->vexponent : k->exponent, ""), vec ? k->vcarry : k->carry, "");
    LLVMValueRef next = LLVMBuildOr(c->b, l.acc, bits, "");
    acc_close(c, &l, next);
    return l.acc;
}

/* acc | the scan of elements [start, start + count) of base. */
static LLVMValueRef scan_range(Cg *c, const Bits *k, LLVMValueRef base, LLVMValueRef start, LLVMValueRef count,
                               LLVMValueRef acc) {
    LLVMValueRef whole = LLVMBuildUDiv(c->b, count, cg_i64(c, k->lanes), "");
    LLVMValueRef vacc = scan(c, k, true, base, start, whole, LLVMConstNull(k->vt));
    LLVMValueRef done = LLVMBuildMul(c->b, whole, cg_i64(c, k->lanes), "");
    acc = scan(c, k, false, base, LLVMBuildAdd(c->b, start, done, ""), LLVMBuildSub(c->b, count, done, ""), acc);
    return LLVMBuildOr(c->b, acc, cg_intrinsic(c, "llvm.vector.reduce.or", k->vt, &vacc, 1), "");
}

/* The kernel scanning column panels [begin, end), of width pw, of a
 * [rows, cols] slot: its context is {the slot, an array of one scan per
 * panel}. */
static LLVMValueRef panel_kernel(Cg *c, const Bits *k, const char *name, int64_t rows, int64_t cols, int64_t pw) {
    LLVMValueRef fn = LLVMAddFunction(c->mod, name, cg_kernel_type(c)); /* external: perf maps see it */
    c->fn = fn;
    LLVMPositionBuilderAtEnd(c->b, LLVMAppendBasicBlockInContext(c->ctx, fn, "entry"));
    LLVMValueRef ctx = LLVMGetParam(fn, 0), one = cg_i64(c, 1);
    LLVMValueRef base = cg_ptr_to(c, LLVMBuildLoad2(c->b, c->i8p, ctx, ""), k->it);
    LLVMValueRef out = LLVMBuildLoad2(c->b, c->i8p, LLVMBuildInBoundsGEP2(c->b, c->i8p, ctx, &one, 1, ""), "");
    out = cg_ptr_to(c, out, k->it);
    LLVMValueRef begin = LLVMGetParam(fn, 1);
    Loop pl;
    LLVMValueRef count = LLVMBuildSub(c->b, LLVMGetParam(fn, 2), begin, "");
    LLVMValueRef j = LLVMBuildAdd(c->b, begin, cg_loop_open(c, &pl, count), "");
    LLVMValueRef col = LLVMBuildMul(c->b, j, cg_i64(c, pw), ""), pwv = cg_i64(c, pw);
    LLVMValueRef left = LLVMBuildSub(c->b, cg_i64(c, cols), col, "");
    LLVMValueRef width = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, left, pwv, ""), left, pwv, "");
    LLVMValueRef zero = LLVMConstInt(k->it, 0, false);
    AccLoop rl;
    LLVMValueRef i = acc_open(c, &rl, cg_i64(c, rows), zero);
    LLVMValueRef start = LLVMBuildAdd(c->b, LLVMBuildMul(c->b, i, cg_i64(c, cols), ""), col, "");
    acc_close(c, &rl, scan_range(c, k, base, start, width, rl.acc));
    LLVMBuildStore(c->b, rl.acc, LLVMBuildInBoundsGEP2(c->b, k->it, out, &j, 1, ""));
    cg_loop_close(c, &pl);
    LLVMBuildRetVoid(c->b);
    cg_verify_function(c);
    return fn;
}

/* The column panels of width pw of a [rows, cols] slot. */
static int64_t panels_of(const Slot *s, int64_t pw) { return (s->shape.dim[1] + pw - 1) / pw; }

/* Does slot s take the pool (see SPLIT_BYTES)? */
static bool split(const Slot *s, int64_t pw, unsigned elem_bytes) {
    return (s->kind == SLOT_PARAM || s->kind == SLOT_STATE) && s->shape.rank == 2 && s->shape.dim[1] > pw &&
           shape_elems(&s->shape) * elem_bytes >= SPLIT_BYTES;
}

/* Is slot s written by a value the step checks as it stores it? */
static bool checked(const Graph *g, const Schedule *sc, int s) {
    for (int i = 0; sc && i < g->nnodes; i++)
        if (schedule_checks(g, sc, i) && sc->slot[i] == s)
            return true;
    return false;
}

/* Does the guard scan slot s: a parameter's or the optimizer's state, not
 * checked as the step stores it? */
static bool scanned(const Graph *g, const Schedule *sc, int s) {
    return (g->slots[s].kind == SLOT_PARAM || g->slots[s].kind == SLOT_STATE) && !checked(g, sc, s);
}

void cg_add_guard(CgModule *owner, const char *name, const Graph *g, const Schedule *sc, const Target *t) {
    CgModule *m = cg_module_chain(owner, name);
    Cg c = {.owner = owner, .g = g, .sched = sc, .name = name};
    cg_use_module(&c, m);
    bool f64 = g->dtype == DT_F64;
    unsigned bits = f64 ? 64 : 32;
    Bits k = {.it = LLVMIntTypeInContext(m->ctx, bits), .lanes = t->vector_bits / (int)bits};
    k.vt = LLVMVectorType(k.it, (unsigned)k.lanes);
    k.exponent = LLVMConstInt(k.it, f64 ? 0x7ff0000000000000ull : 0x7f800000u, false);
    k.carry = LLVMConstInt(k.it, f64 ? 0x0010000000000000ull : 0x00800000u, false);
    k.vexponent = cg_splat(&c, k.exponent, k.lanes);
    k.vcarry = cg_splat(&c, k.carry, k.lanes);
    int64_t pw = cg_matmul_panel_width(g, t);

    /* The pool's kernels first, then the function calling them. */
    LLVMValueRef *kernel = xcalloc((size_t)g->nslots, sizeof *kernel);
    int64_t max_panels = 0;
    for (int s = 0; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        if (scanned(g, sc, s) && split(sl, pw, dtype_bytes(g->dtype))) {
            char kname[256];
            snprintf(kname, sizeof kname, "%s.%d", name, s);
            kernel[s] = panel_kernel(&c, &k, kname, sl->shape.dim[0], sl->shape.dim[1], pw);
            max_panels = panels_of(sl, pw) > max_panels ? panels_of(sl, pw) : max_panels;
        }
    }

    LLVMTypeRef i32 = LLVMInt32TypeInContext(m->ctx), param = LLVMPointerType(c.i8p, 0);
    c.fn = LLVMAddFunction(m->mod, name, LLVMFunctionType(i32, &param, 1, false));
    LLVMPositionBuilderAtEnd(c.b, LLVMAppendBasicBlockInContext(m->ctx, c.fn, "entry"));
    /* The kernels' context, {slot, one scan per panel}. */
    LLVMValueRef out = LLVMBuildArrayAlloca(c.b, k.it, cg_i64(&c, max_panels ? max_panels : 1), "panels");
    LLVMValueRef ctx = LLVMBuildArrayAlloca(c.b, c.i8p, cg_i64(&c, 2), "ctx"), one = cg_i64(&c, 1);
    LLVMValueRef outp = LLVMBuildInBoundsGEP2(c.b, c.i8p, ctx, &one, 1, "");
    LLVMBuildStore(c.b, cg_ptr_to(&c, out, LLVMInt8TypeInContext(c.ctx)), outp);
    LLVMValueRef acc = LLVMConstInt(k.it, 0, false);
    /* The slots scanned here, one loop over a table of {slot, elements}:
     * a loop nest per slot was most of the module (25 slots of the CNN:
     * 8% of its compile time). */
    LLVMValueRef *row = xcalloc((size_t)g->nslots * 2 + 1, sizeof *row);
    int rows = 0;
    for (int s = 0; s < g->nslots; s++)
        if (scanned(g, sc, s) && !kernel[s]) {
            row[2 * rows] = cg_i64(&c, s);
            row[2 * rows++ + 1] = cg_i64(&c, shape_elems(&g->slots[s].shape));
        }
    if (rows) {
        LLVMValueRef init = LLVMConstArray(c.i64, row, (unsigned)rows * 2);
        LLVMValueRef table = LLVMAddGlobal(m->mod, LLVMTypeOf(init), "slots");
        LLVMSetInitializer(table, init);
        LLVMSetGlobalConstant(table, true);
        LLVMSetLinkage(table, LLVMPrivateLinkage);
        AccLoop tl;
        LLVMValueRef t2 = LLVMBuildMul(c.b, acc_open(&c, &tl, cg_i64(&c, rows), acc), cg_i64(&c, 2), "");
        LLVMValueRef t3 = LLVMBuildAdd(c.b, t2, one, "");
        LLVMValueRef s = LLVMBuildLoad2(c.b, c.i64, LLVMBuildInBoundsGEP2(c.b, c.i64, table, &t2, 1, ""), "slot");
        LLVMValueRef n = LLVMBuildLoad2(c.b, c.i64, LLVMBuildInBoundsGEP2(c.b, c.i64, table, &t3, 1, ""), "n");
        LLVMValueRef p = LLVMBuildLoad2(c.b, c.i8p, LLVMBuildInBoundsGEP2(c.b, c.i8p, LLVMGetParam(c.fn, 0), &s, 1, ""), "");
        acc_close(&c, &tl, scan_range(&c, &k, cg_ptr_to(&c, p, k.it), cg_i64(&c, 0), n, tl.acc));
        acc = tl.acc;
    }
    free(row);
    for (int s = 0; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        if (!scanned(g, sc, s) || !kernel[s])
            continue;
        LLVMValueRef idx = cg_i64(&c, s);
        LLVMValueRef at = LLVMBuildInBoundsGEP2(c.b, c.i8p, LLVMGetParam(c.fn, 0), &idx, 1, "");
        LLVMValueRef p = LLVMBuildLoad2(c.b, c.i8p, at, sl->name);
        /* The kernel over the slot's panels, then the OR of their scans. */
        int64_t panels = panels_of(sl, pw);
        LLVMBuildStore(c.b, p, ctx);
        cg_parallel_for(&c, kernel[s], ctx, cg_i64(&c, panels), true);
        AccLoop ol;
        LLVMValueRef j = acc_open(&c, &ol, cg_i64(&c, panels), acc);
        LLVMValueRef r = LLVMBuildLoad2(c.b, k.it, LLVMBuildInBoundsGEP2(c.b, k.it, out, &j, 1, ""), "");
        acc_close(&c, &ol, LLVMBuildOr(c.b, ol.acc, r, ""));
        acc = ol.acc;
    }
    free(kernel);
    LLVMValueRef sign = LLVMConstInt(k.it, 1ull << (bits - 1), false);
    LLVMValueRef ok = LLVMBuildICmp(c.b, LLVMIntEQ, LLVMBuildAnd(c.b, acc, sign, ""), LLVMConstInt(k.it, 0, false), "");
    if (sc && sc->finite_flag != SIZE_MAX) {
        LLVMValueRef flag = cg_finite_flag(&c, LLVMBuildLoad2(c.b, c.i8p, LLVMGetParam(c.fn, 0), "arena"));
        LLVMValueRef clean = LLVMBuildICmp(c.b, LLVMIntEQ, LLVMBuildLoad2(c.b, i32, flag, "flag"), LLVMConstNull(i32), "");
        ok = LLVMBuildAnd(c.b, ok, clean, "");
    }
    LLVMBuildRet(c.b, LLVMBuildZExt(c.b, ok, i32, ""));
    cg_verify_function(&c);
    LLVMDisposeBuilder(c.b);
}
