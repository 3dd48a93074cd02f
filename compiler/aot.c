/* aot.c — a model ahead of time: its steps as an object file (or a static
 * or shared library) and a C header, for programs that run them without
 * nnc and without LLVM.
 *
 * The steps are the ones the JIT runs (pipeline.c), optimised by the same
 * passes for the same target (jit_link_modules), so an object built for
 * the host computes what `nnc --predict` and `nnc --train` do, to the bit;
 * only the code's addressing differs (position-independent: one object
 * serves a PIE executable, Debian's default, a static library and a shared
 * one). The steps and their kernels are internal: the object exports
 * MODEL_predict and MODEL_model, so two models link into one program.
 *
 * What the object holds:
 *   - the first contents of every parameter and state buffer as read-only
 *     data: the weights of --load (else --seed's initialisation, as nnc
 *     --train would start), the optimizer's state as a new run starts it
 *     unless that is zero, laid out as the kernels read them (layout.c's
 *     panels);
 *   - with --load, MODEL_predict: the evaluation step over the caller's
 *     samples on those weights, generated whole here, so that a program
 *     that only predicts links with libc and libm alone. Its scratch
 *     memory is allocated per call (aligned_alloc, freed before it
 *     returns): the code keeps no mutable globals, calls from several
 *     threads are safe, and a failed allocation is an error code;
 *   - MODEL_model (NnrtAotModel, nnrt.h): the steps and every slot's name,
 *     shape, layout and first contents, from which libnnrt's aot.c makes a
 *     training state (train, predict, save and load checkpoints). The
 *     header wraps those functions as static inline MODEL_state_new,
 *     MODEL_train_step, ... so a program that does not call them does not
 *     need libnnrt;
 *   - weak definitions of nnrt_parallel_for and nnrt_parallel_for_small, the
 *     thread pool's entry points, running a kernel's whole range on the
 *     calling thread. A program linked with libnnrt's pool (pool.c, pulled
 *     in by calling nnrt_set_threads) gets the pool's strong definitions
 *     instead: the results are the same with any number of threads.
 *
 * The archive (.a) is written here (one member and its symbol index, which
 * GNU ld wants); a shared library is linked by the system's C compiler ($CC,
 * else cc; split into words as make does), which knows the platform's
 * linker and its flags.
 */
#include "cg.h"
#include "nnrt.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Bytes rounded up to the kernels' 64-byte alignment (sizes bounded by the
 * schedule's, far from overflow). */
static uint64_t round64(uint64_t n) { return (n + 63) / 64 * 64; }

/* What the generated module needs of the plan, in one place. */
typedef struct Aot {
    Arena *arena;
    const Model *m;
    const Plan *plan;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef i8p, i32, i64;
    uint64_t arena_bytes; /* the larger step's */
    uint64_t labels;      /* predict's scratch: the arena, then zero labels, then the loss */
    bool predict;         /* MODEL_predict is generated (the weights were given) */
    LLVMValueRef mean, std; /* --normalize's double[input elements], from the weights' checkpoint; NULL: none */
} Aot;

static LLVMValueRef i64c(Aot *a, uint64_t v) { return LLVMConstInt(a->i64, v, false); }

/* &base[off], base a byte pointer. */
static LLVMValueRef byte_at(Aot *a, LLVMValueRef base, uint64_t off) {
    LLVMValueRef o = i64c(a, off);
    return LLVMBuildGEP2(a->b, LLVMInt8TypeInContext(a->ctx), base, &o, 1, "");
}

/* &slots[s], slots an array of pointers. */
static LLVMValueRef slot_at(Aot *a, LLVMValueRef slots, int s) {
    LLVMValueRef o = i64c(a, (uint64_t)s);
    return LLVMBuildGEP2(a->b, a->i8p, slots, &o, 1, "");
}

static LLVMValueRef libc_fn(Aot *a, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, unsigned n,
                            LLVMTypeRef *type) {
    *type = LLVMFunctionType(ret, params, n, false);
    LLVMValueRef f = LLVMGetNamedFunction(a->mod, name);
    return f ? f : LLVMAddFunction(a->mod, name, *type);
}

/* Is slot s one of the weights (a parameter or the model's state)? */
static bool is_weight(const Slot *s) { return s->kind == SLOT_PARAM || s->model_state; }

/* Are v[0..n) all +0 (whose bits are zero, as the runtime's fresh memory)? */
static bool all_zero(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (v[i] != 0 || signbit(v[i]))
            return false;
    return true;
}

/* Slot sl's weights (float32, in the kernels' layout) as a read-only global. */
static LLVMValueRef weights_global(Aot *a, int sl, const float *w) {
    size_t bytes = (size_t)shape_elems(&a->plan->g[PLAN_TRAIN]->slots[sl].shape) * sizeof(float);
    LLVMValueRef init = LLVMConstStringInContext(a->ctx, (const char *)w, (unsigned)bytes, true);
    char name[64];
    snprintf(name, sizeof name, "weights.%d", sl);
    LLVMValueRef gv = LLVMAddGlobal(a->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetAlignment(gv, 64);
    return LLVMConstBitCast(gv, a->i8p);
}

/* v[0..n) as a read-only global double[n]. */
static LLVMValueRef doubles_global(Aot *a, const char *name, const double *v, size_t n) {
    LLVMTypeRef dt = LLVMDoubleTypeInContext(a->ctx);
    LLVMValueRef *e = xcalloc(n, sizeof *e);
    for (size_t i = 0; i < n; i++)
        e[i] = LLVMConstReal(dt, v[i]);
    LLVMValueRef init = LLVMConstArray(dt, e, (unsigned)n);
    free(e);
    LLVMValueRef gv = LLVMAddGlobal(a->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

/* Bytes of MODEL_predict's scratch: the arena, the zero labels, the loss,
 * and with --normalize a step's inputs normalized. */
static uint64_t scratch_bytes(const Aot *a) {
    uint64_t norm = a->mean ? round64((uint64_t)a->m->batch * (uint64_t)shape_elems(&a->m->input) * sizeof(float))
                            : 0;
    return a->arena_bytes + a->labels + 64 + norm;
}

/* dst[j] = (x[j] - mean[e]) / std[e] for j < k * K, e = j % K (K the
 * input's elements): in double, rounded to float, as nnrt_normalize_apply
 * computes it for nnc --predict, so that the predictions agree to the bit.
 * The builder is left after the loop, in f. */
static void normalize_loop(Aot *a, LLVMValueRef f, LLVMValueRef x, LLVMValueRef k, LLVMValueRef dst) {
    LLVMBuilderRef B = a->b;
    LLVMTypeRef ft = LLVMFloatTypeInContext(a->ctx), dt = LLVMDoubleTypeInContext(a->ctx);
    LLVMValueRef K = i64c(a, (uint64_t)shape_elems(&a->m->input)), zero = i64c(a, 0);
    LLVMValueRef count = LLVMBuildMul(B, k, K, "");
    LLVMBasicBlockRef from = LLVMGetInsertBlock(B), head = LLVMAppendBasicBlockInContext(a->ctx, f, "norm"),
                      body = LLVMAppendBasicBlockInContext(a->ctx, f, "norm.element"),
                      done = LLVMAppendBasicBlockInContext(a->ctx, f, "norm.done");
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, head);
    LLVMValueRef j = LLVMBuildPhi(B, a->i64, "j");
    LLVMAddIncoming(j, &zero, &from, 1);
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntULT, j, count, ""), body, done);
    LLVMPositionBuilderAtEnd(B, body);
    LLVMValueRef e = LLVMBuildURem(B, j, K, "");
    LLVMValueRef v = LLVMBuildFPExt(B, LLVMBuildLoad2(B, ft, LLVMBuildGEP2(B, ft, x, &j, 1, ""), ""), dt, "");
    LLVMValueRef mean = LLVMBuildLoad2(B, dt, LLVMBuildGEP2(B, dt, a->mean, &e, 1, ""), "");
    LLVMValueRef std = LLVMBuildLoad2(B, dt, LLVMBuildGEP2(B, dt, a->std, &e, 1, ""), "");
    LLVMValueRef r = LLVMBuildFDiv(B, LLVMBuildFSub(B, v, mean, ""), std, "");
    LLVMBuildStore(B, LLVMBuildFPTrunc(B, r, ft, ""), LLVMBuildGEP2(B, ft, dst, &j, 1, ""));
    LLVMValueRef next = LLVMBuildAdd(B, j, i64c(a, 1), "");
    LLVMAddIncoming(j, &next, &body, 1);
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, done);
}

/* `void name(void (*fn)(void **, int64_t, int64_t), void **ctx, int64_t n)`
 * running fn(ctx, 0, n) on this thread, weak: see the note at the top. */
static void serial_fallback(Aot *a, const char *name) {
    LLVMValueRef f = LLVMGetNamedFunction(a->mod, name);
    if (!f || !LLVMIsDeclaration(f))
        return;
    LLVMTypeRef kparams[3] = {LLVMPointerType(a->i8p, 0), a->i64, a->i64};
    LLVMTypeRef kty = LLVMFunctionType(LLVMVoidTypeInContext(a->ctx), kparams, 3, false);
    LLVMSetLinkage(f, LLVMWeakAnyLinkage);
    LLVMPositionBuilderAtEnd(a->b, LLVMAppendBasicBlockInContext(a->ctx, f, "entry"));
    LLVMValueRef kfn = LLVMBuildBitCast(a->b, LLVMGetParam(f, 0), LLVMPointerType(kty, 0), "");
    LLVMValueRef args[3] = {LLVMGetParam(f, 1), i64c(a, 0), LLVMGetParam(f, 2)};
    LLVMBuildCall2(a->b, kty, kfn, args, 3, "");
    LLVMBuildRetVoid(a->b);
}

/* int <model>_predict(const float *x, size_t n, float *out): the evaluation
 * step over batches of at most the model's batch size, on scratch memory of
 * its own, weights[] the slots' read-only data. */
static void predict_fn(Aot *a, LLVMValueRef *weights) {
    const Graph *g = a->plan->g[PLAN_EVAL];
    LLVMTypeRef fp = LLVMPointerType(LLVMFloatTypeInContext(a->ctx), 0);
    LLVMTypeRef params[3] = {fp, a->i64, fp};
    char name[256];
    snprintf(name, sizeof name, "%s_predict", a->m->name);
    LLVMValueRef f = LLVMAddFunction(a->mod, name, LLVMFunctionType(a->i32, params, 3, false));
    LLVMValueRef x = LLVMGetParam(f, 0), n = LLVMGetParam(f, 1), out = LLVMGetParam(f, 2);
    LLVMBuilderRef B = a->b;
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(a->ctx, f, "entry"),
                      bad = LLVMAppendBasicBlockInContext(a->ctx, f, "invalid"),
                      alloc = LLVMAppendBasicBlockInContext(a->ctx, f, "alloc"),
                      nomem = LLVMAppendBasicBlockInContext(a->ctx, f, "nomem"),
                      head = LLVMAppendBasicBlockInContext(a->ctx, f, "batch"),
                      body = LLVMAppendBasicBlockInContext(a->ctx, f, "step"),
                      done = LLVMAppendBasicBlockInContext(a->ctx, f, "done");
    LLVMPositionBuilderAtEnd(B, entry);
    LLVMValueRef slots = LLVMBuildArrayAlloca(B, a->i8p, i64c(a, (uint64_t)g->nslots), "slots");
    /* n = 0 is nothing to do; NULL buffers for n > 0 are the caller's error. */
    LLVMValueRef null_in = LLVMBuildOr(B, LLVMBuildIsNull(B, x, ""), LLVMBuildIsNull(B, out, ""), "");
    LLVMValueRef is_bad = LLVMBuildAnd(B, null_in, LLVMBuildICmp(B, LLVMIntNE, n, i64c(a, 0), ""), "");
    LLVMBuildCondBr(B, is_bad, bad, alloc);
    LLVMPositionBuilderAtEnd(B, bad);
    LLVMBuildRet(B, LLVMConstInt(a->i32, NNRT_AOT_EINVAL, false));

    LLVMPositionBuilderAtEnd(B, alloc);
    uint64_t bytes = scratch_bytes(a);
    LLVMTypeRef aty, fty, mty;
    LLVMTypeRef ap[2] = {a->i64, a->i64}, fpar[1] = {a->i8p}, mp[3] = {a->i8p, a->i32, a->i64};
    LLVMValueRef aligned_alloc = libc_fn(a, "aligned_alloc", a->i8p, ap, 2, &aty);
    LLVMValueRef free_fn = libc_fn(a, "free", LLVMVoidTypeInContext(a->ctx), fpar, 1, &fty);
    LLVMValueRef memset_fn = libc_fn(a, "memset", a->i8p, mp, 3, &mty);
    LLVMValueRef aargs[2] = {i64c(a, 64), i64c(a, bytes)};
    LLVMValueRef scratch = LLVMBuildCall2(B, aty, aligned_alloc, aargs, 2, "scratch");
    LLVMBuildCondBr(B, LLVMBuildIsNull(B, scratch, ""), nomem, head);
    LLVMPositionBuilderAtEnd(B, nomem);
    LLVMBuildRet(B, LLVMConstInt(a->i32, NNRT_AOT_ENOMEM, false));

    /* The slots but x and the output, which move with each batch. The
     * labels and the loss start at zero; the arena need not (a step writes
     * every buffer before it reads it, as the trainer's steps run on one
     * arena in turn), and zeroing it was most of a sample's time. */
    LLVMPositionBuilderBefore(B, LLVMGetBasicBlockTerminator(alloc));
    LLVMValueRef labels = byte_at(a, scratch, a->arena_bytes);
    LLVMValueRef margs[3] = {labels, LLVMConstInt(a->i32, 0, false), i64c(a, a->labels + 64)};
    LLVMBuildCall2(B, mty, memset_fn, margs, 3, "");
    for (int s = 0; s < g->nslots; s++) {
        LLVMValueRef v = s == SLOT_NO_ARENA   ? scratch
                         : s == SLOT_NO_LABEL ? labels
                         : s == SLOT_NO_LOSS  ? byte_at(a, scratch, a->arena_bytes + a->labels)
                         : weights[s]         ? weights[s]
                                              : LLVMConstNull(a->i8p);
        if (s != SLOT_NO_INPUT && s != SLOT_NO_OUTPUT)
            LLVMBuildStore(B, v, slot_at(a, slots, s));
    }

    /* for (i = 0; i < n; i += batch) step(slots, min(batch, n - i)) */
    LLVMPositionBuilderAtEnd(B, head);
    LLVMValueRef i = LLVMBuildPhi(B, a->i64, "i");
    LLVMValueRef zero = i64c(a, 0);
    LLVMAddIncoming(i, &zero, &alloc, 1);
    LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntULT, i, n, ""), body, done);
    LLVMPositionBuilderAtEnd(B, body);
    LLVMValueRef left = LLVMBuildSub(B, n, i, ""), batch = i64c(a, (uint64_t)a->m->batch);
    LLVMValueRef k = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntULT, left, batch, ""), left, batch, "k");
    LLVMTypeRef ft = LLVMFloatTypeInContext(a->ctx);
    LLVMValueRef xoff = LLVMBuildMul(B, i, i64c(a, (uint64_t)shape_elems(&a->m->input)), "");
    LLVMValueRef ooff = LLVMBuildMul(B, i, i64c(a, (uint64_t)shape_elems(&a->m->output)), "");
    LLVMValueRef xi = LLVMBuildGEP2(B, ft, x, &xoff, 1, ""), oi = LLVMBuildGEP2(B, ft, out, &ooff, 1, "");
    if (a->mean) {
        LLVMValueRef xn = byte_at(a, scratch, a->arena_bytes + a->labels + 64);
        normalize_loop(a, f, xi, k, xn);
        xi = xn;
    }
    LLVMBuildStore(B, LLVMBuildBitCast(B, xi, a->i8p, ""), slot_at(a, slots, SLOT_NO_INPUT));
    LLVMBuildStore(B, LLVMBuildBitCast(B, oi, a->i8p, ""), slot_at(a, slots, SLOT_NO_OUTPUT));
    LLVMTypeRef sparams[2] = {LLVMPointerType(a->i8p, 0), a->i64};
    LLVMTypeRef sty = LLVMFunctionType(LLVMVoidTypeInContext(a->ctx), sparams, 2, false);
    LLVMValueRef step = LLVMGetNamedFunction(a->mod, "eval_step");
    if (!step)
        die("aot: the evaluation step is missing from the linked module");
    LLVMValueRef sargs[2] = {slots, k};
    LLVMBuildCall2(B, sty, step, sargs, 2, "");
    LLVMValueRef next = LLVMBuildAdd(B, i, k, "");
    LLVMBasicBlockRef last = LLVMGetInsertBlock(B); /* body, or the normalization's end */
    LLVMAddIncoming(i, &next, &last, 1);
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, done);
    LLVMBuildCall2(B, fty, free_fn, &scratch, 1, "");
    LLVMBuildRet(B, LLVMConstInt(a->i32, 0, false));
}

/* Every function defined here but MODEL_predict and the weak fallbacks
 * becomes internal; a reference to the runtime the object does not define
 * is a bug here. */
static void internalize(Aot *a) {
    char predict[256];
    snprintf(predict, sizeof predict, "%s_predict", a->m->name);
    for (LLVMValueRef f = LLVMGetFirstFunction(a->mod); f; f = LLVMGetNextFunction(f)) {
        const char *name = LLVMGetValueName(f);
        if (LLVMIsDeclaration(f)) {
            if (!strncmp(name, "nnrt_", 5))
                die("aot: the generated code calls %s, which the object does not define", name);
        } else if (strcmp(name, predict) != 0 && LLVMGetLinkage(f) != LLVMWeakAnyLinkage) {
            LLVMSetLinkage(f, LLVMInternalLinkage);
        }
    }
    if (LLVMGetNamedGlobal(a->mod, "nnrt_interrupt_requested"))
        die("aot: the generated code reads nnrt_interrupt_requested");
}

/* A private constant C string. */
static LLVMValueRef cstring(Aot *a, const char *s) {
    LLVMValueRef init = LLVMConstStringInContext(a->ctx, s, (unsigned)strlen(s), false);
    LLVMValueRef gv = LLVMAddGlobal(a->mod, LLVMTypeOf(init), "str");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return LLVMConstBitCast(gv, a->i8p);
}

/* const NnrtAotModel MODEL_model (nnrt.h): the steps, the slots' names,
 * shapes, layouts and first contents (weights[s]), for the runtime's
 * training state. Every field is 8 bytes, pointers or int64_t, so the
 * structs below have C's layout without padding. */
static void model_global(Aot *a, LLVMValueRef *weights, uint64_t hash) {
    const Graph *g = a->plan->g[PLAN_TRAIN];
    const Schedule *sc = a->plan->s[PLAN_TRAIN];
    int64_t pw = cg_matmul_panel_width(g, sc->target);
    LLVMTypeRef dims_ty = LLVMArrayType(a->i64, NNRT_IDX_MAX_RANK);
    LLVMTypeRef sf[7] = {a->i8p, a->i64, a->i64, dims_ty, a->i64, a->i64, a->i8p};
    LLVMTypeRef slot_ty = LLVMStructTypeInContext(a->ctx, sf, 7, false);
    LLVMValueRef *row = xcalloc((size_t)g->nslots, sizeof *row);
    for (int s = 0; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        bool saved = sl->kind == SLOT_PARAM || sl->kind == SLOT_STATE;
        LLVMValueRef dims[NNRT_IDX_MAX_RANK];
        for (int k = 0; k < NNRT_IDX_MAX_RANK; k++)
            dims[k] = i64c(a, k < sl->shape.rank ? (uint64_t)sl->shape.dim[k] : 0);
        bool panels = sc->panels && sc->panels[s];
        LLVMValueRef f[7] = {saved ? cstring(a, sl->name) : LLVMConstNull(a->i8p),
                             i64c(a, (uint64_t)shape_elems(&sl->shape)), i64c(a, (uint64_t)sl->shape.rank),
                             LLVMConstArray(a->i64, dims, NNRT_IDX_MAX_RANK), i64c(a, panels ? (uint64_t)pw : 0),
                             i64c(a, sl->kind == SLOT_PARAM || sl->model_state),
                             weights[s] ? weights[s] : LLVMConstNull(a->i8p)};
        row[s] = LLVMConstNamedStruct(slot_ty, f, 7);
    }
    LLVMValueRef table_init = LLVMConstArray(slot_ty, row, (unsigned)g->nslots);
    free(row);
    LLVMValueRef table = LLVMAddGlobal(a->mod, LLVMTypeOf(table_init), "slots");
    LLVMSetInitializer(table, table_init);
    LLVMSetGlobalConstant(table, true);
    LLVMSetLinkage(table, LLVMPrivateLinkage);
    LLVMValueRef train = LLVMGetNamedFunction(a->mod, "train_step"), eval = LLVMGetNamedFunction(a->mod, "eval_step");
    if (!train || !eval)
        die("aot: a step is missing from the linked module");
    const Model *m = a->m;
    LLVMValueRef none = LLVMConstNull(a->i8p);
    LLVMValueRef f[14] = {i64c(a, NNRT_AOT_ABI), cstring(a, m->name), i64c(a, hash), i64c(a, (uint64_t)m->batch),
                          i64c(a, (uint64_t)shape_elems(&m->input)), i64c(a, (uint64_t)m->label_size),
                          i64c(a, (uint64_t)shape_elems(&m->output)), i64c(a, a->arena_bytes),
                          i64c(a, (uint64_t)g->nslots), LLVMConstBitCast(table, a->i8p),
                          LLVMConstBitCast(train, a->i8p), LLVMConstBitCast(eval, a->i8p),
                          a->mean ? LLVMConstBitCast(a->mean, a->i8p) : none,
                          a->std ? LLVMConstBitCast(a->std, a->i8p) : none};
    LLVMValueRef init = LLVMConstStructInContext(a->ctx, f, 14, false);
    char name[256];
    snprintf(name, sizeof name, "%s_model", m->name);
    LLVMValueRef gv = LLVMAddGlobal(a->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, true);
    LLVMSetAlignment(gv, 8);
}

/* ---------------------------------------------------------------- files */

/* Writes n bytes to path atomically; false with err. */
static bool write_file(const char *path, const void *p, size_t n, const char *what, char *err, size_t errlen) {
    NnrtAtomic at;
    if (!nnrt_atomic_begin(&at, path, err, errlen))
        return false;
    bool ok = fwrite(p, 1, n, at.f) == n;
    return nnrt_atomic_end(&at, ok, what, err, errlen) && ok;
}

/* A member header of a System V / GNU archive: name, then decimal fields. */
static void ar_header(FILE *f, const char *name, size_t size) {
    fprintf(f, "%-16s%-12s%-6s%-6s%-8s%-10zu`\n", name, "0", "0", "0", "644", size);
}

/* A static library of one object: "!<arch>", the symbol index ("/": the
 * count and each symbol's member offset, big-endian, then the names) that
 * GNU ld requires, then the object. */
static bool write_archive(const char *path, const char *member, const char *const *syms, int nsyms,
                          LLVMMemoryBufferRef obj, char *err, size_t errlen) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        die("open_memstream: out of memory");
    size_t names = 0;
    for (int i = 0; i < nsyms; i++)
        names += strlen(syms[i]) + 1;
    size_t index = 4 + 4 * (size_t)nsyms + names;
    size_t member_at = 8 + 60 + index + (index & 1);
    fputs("!<arch>\n", f);
    ar_header(f, "/", index);
    unsigned char be[4];
    for (int k = 0; k <= nsyms; k++) {
        uint32_t v = k == 0 ? (uint32_t)nsyms : (uint32_t)member_at;
        for (int b = 0; b < 4; b++)
            be[b] = (unsigned char)(v >> (24 - 8 * b));
        fwrite(be, 1, 4, f);
    }
    for (int i = 0; i < nsyms; i++)
        fwrite(syms[i], 1, strlen(syms[i]) + 1, f);
    if (index & 1)
        fputc('\n', f);
    char name[17];
    snprintf(name, sizeof name, "%.15s/", member);
    size_t size = LLVMGetBufferSize(obj);
    ar_header(f, name, size);
    fwrite(LLVMGetBufferStart(obj), 1, size, f);
    if (size & 1)
        fputc('\n', f);
    fclose(f);
    bool ok = write_file(path, buf, len, "the library", err, errlen);
    free(buf);
    return ok;
}

/* A shared library from the object, linked by $CC (else cc) with no
 * executable stack, into the temporary file of an atomic write (the
 * linker replaces it), then renamed over path as every output is. The
 * object goes through a temporary file too. */
static bool link_shared(const char *path, LLVMMemoryBufferRef obj, char *err, size_t errlen) {
    char tmp[] = "/tmp/nnc-aot-XXXXXX.o";
    int fd = mkstemps(tmp, 2);
    if (fd < 0)
        return nnrt_fail(err, errlen, "a temporary object file: %s", strerror(errno));
    size_t size = LLVMGetBufferSize(obj);
    bool ok = write(fd, LLVMGetBufferStart(obj), size) == (ssize_t)size;
    if (close(fd) != 0 || !ok) {
        unlink(tmp);
        return nnrt_fail(err, errlen, "%s: %s", tmp, strerror(errno));
    }
    NnrtAtomic at;
    ok = nnrt_atomic_begin(&at, path, err, errlen);
    if (ok) {
        const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
        /* $CC split into words by the shell, as make does ("gcc -m64"); the
         * paths go as arguments, never through the shell's parsing. */
        char *argv[] = {"sh", "-c", "exec ${CC:-cc} \"$@\"", "cc", "-shared", "-Wl,-z,noexecstack", "-Wl,-z,relro",
                        "-o", at.tmp, tmp, "-lm", NULL};
        pid_t pid;
        int st = 0, e = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
        if (e)
            ok = nnrt_fail(err, errlen, "running %s to link %s: %s", cc, path, strerror(e));
        else if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ok = nnrt_fail(err, errlen, "%s failed to link %s", cc, path);
        char ignored[256]; /* err says what failed first */
        ok = nnrt_atomic_end(&at, ok, "the library", ok ? err : ignored, ok ? errlen : sizeof ignored) && ok;
    }
    unlink(tmp);
    return ok;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* ---------------------------------------------------------------- the header */

static void print_dims(FILE *f, const Shape *s) {
    fputc('{', f);
    for (int d = 0; d < s->rank; d++)
        fprintf(f, "%s%lld", d ? ", " : "", (long long)s->dim[d]);
    fputc('}', f);
}

static void write_header(FILE *f, const AotSpec *spec, const Aot *a, uint64_t hash) {
    const Model *m = spec->model;
    const Graph *g = a->plan->g[PLAN_EVAL];
    char up[256];
    size_t k = 0;
    for (; m->name[k] && k + 1 < sizeof up; k++)
        up[k] = (char)(m->name[k] >= 'a' && m->name[k] <= 'z' ? m->name[k] - 'a' + 'A' : m->name[k]);
    up[k] = 0;
    const char *p = m->name;
    fprintf(f, "/* %s.h: model %s, compiled ahead of time by nnc for %s.\n"
               " * Generated: do not edit. See nnc's docs/aot.md. %s_predict needs the\n"
               " * object and -lm only; the training state needs libnnrt too. */\n", p, p, spec->target->cpu, p);
    fprintf(f, "#ifndef %s_H\n#define %s_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n"
               "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", up, up);
    fprintf(f, "/* One sample: float32 elements, row-major; its targets (a class index\n"
               " * as a float for a classifier); its outputs. */\n");
    fprintf(f, "#define %s_INPUT_SIZE %lld\n#define %s_INPUT_RANK %d\n#define %s_INPUT_SHAPE ", up,
            (long long)shape_elems(&m->input), up, m->input.rank, up);
    print_dims(f, &m->input);
    fprintf(f, "\n#define %s_LABEL_SIZE %lld\n", up, (long long)m->label_size);
    fprintf(f, "#define %s_OUTPUT_SIZE %lld\n#define %s_OUTPUT_RANK %d\n#define %s_OUTPUT_SHAPE ", up,
            (long long)shape_elems(&m->output), up, m->output.rank, up);
    print_dims(f, &m->output);
    fprintf(f, "\n/* Samples per step: a training step takes 1 to this many, predict any\n"
               " * number, in steps of at most this. */\n#define %s_BATCH %lld\n", up, (long long)m->batch);
    if (a->predict)
        fprintf(f, "/* Bytes %s_predict allocates per call (aligned_alloc), freed before it returns. */\n"
                   "#define %s_SCRATCH_BYTES %llu\n", p, up,
                (unsigned long long)scratch_bytes(a));
    fprintf(f, "/* The model file's fingerprint, as its checkpoints record it. */\n"
               "#define %s_FINGERPRINT UINT64_C(0x%016llx)\n", up, (unsigned long long)hash);
    fprintf(f, "/* The instruction set the code needs (nnc --march). */\n#define %s_TARGET \"%s\"\n\n", up,
            spec->target->cpu);
    int nparams = 0;
    for (int s = SLOT_NO_FIRST_PARAM; s < g->nslots; s++)
        nparams += is_weight(&g->slots[s]);
    fputs("/* The weights (parameters and the model's state), embedded ", f);
    if (a->predict) {
        fputs("from ", f);
        for (const char *c = spec->weights->path; *c; c++) {
            fputc(*c, f);
            if (c[0] == '*' && c[1] == '/')
                fputc(' ', f); /* a path may hold the comment's end */
        }
    } else {
        fputs("as --seed initialises them", f);
    }
    fprintf(f, ". */\n#define %s_NPARAMS %d\n#define %s_PARAM_NAMES {", up, nparams, up);
    for (int s = SLOT_NO_FIRST_PARAM, i = 0; s < g->nslots; s++)
        if (is_weight(&g->slots[s]))
            fprintf(f, "%s\"%s\"", i++ ? ", " : "", g->slots[s].name);
    fprintf(f, "}\n#define %s_PARAM_SIZES {", up);
    for (int s = SLOT_NO_FIRST_PARAM, i = 0; s < g->nslots; s++)
        if (is_weight(&g->slots[s]))
            fprintf(f, "%s%lld", i++ ? ", " : "", (long long)shape_elems(&g->slots[s].shape));
    fprintf(f, "}\n");
    for (int s = SLOT_NO_FIRST_PARAM; s < g->nslots; s++)
        if (is_weight(&g->slots[s])) {
            fprintf(f, "/*   %s ", g->slots[s].name);
            print_dims(f, &g->slots[s].shape);
            fprintf(f, " */\n");
        }
    fprintf(f, "\n/* Status codes: every function returns one, none aborts or prints. */\n"
               "enum { %s_OK = 0, %s_ENOMEM = %d, %s_EINVAL = %d, %s_EIO = %d };\n\n", up, up, NNRT_AOT_ENOMEM,
            up, NNRT_AOT_EINVAL, up, NNRT_AOT_EIO);
    if (a->predict)
        fprintf(f, "/* The evaluation step (dropout off, batchnorm's moving statistics), as\n"
                   " * `nnc --predict`: x holds n samples of %s_INPUT_SIZE floats, out receives\n"
                   " * n rows of %s_OUTPUT_SIZE (the probabilities of a softmax classifier).\n"
                   "%s"
                   " * %s_EINVAL if x or out is NULL and n > 0; %s_ENOMEM if the scratch memory\n"
                   " * cannot be allocated. Thread-safe: no state outside the call. */\n"
                   "int %s_predict(const float *x, size_t n, float *out);\n\n", up, up,
                a->mean ? " * Each input element is first normalized by the checkpoint's mean and\n"
                          " * standard deviation (nnc --normalize), as `nnc --predict` does.\n" : "",
                up, up, p);
    fprintf(f, "/* The training interface, in libnnrt (link with it and -lz -ljansson\n"
               " * -lpthread -lm). A state holds the weights, the optimizer's state and\n"
               " * step count; it starts from the embedded weights. One state per thread\n"
               " * at a time. */\n"
               "typedef struct NnrtAotModel NnrtAotModel;\ntypedef struct NnrtAotState NnrtAotState;\n"
               "int nnrt_aot_state_new(const NnrtAotModel *m, NnrtAotState **out);\n"
               "void nnrt_aot_state_free(NnrtAotState *s);\n"
               "int nnrt_aot_train_step(NnrtAotState *s, const float *x, const float *y, size_t n, float *loss);\n"
               "int nnrt_aot_predict(NnrtAotState *s, const float *x, size_t n, float *out);\n"
               "int nnrt_aot_save(NnrtAotState *s, const char *path);\n"
               "int nnrt_aot_load(NnrtAotState *s, const char *path);\n"
               "const char *nnrt_aot_error(const NnrtAotState *s);\n"
               "extern const NnrtAotModel %s_model;\n\n", p);
    fprintf(f, "typedef NnrtAotState %s_state;\n"
               "/* A new state in *s (NULL on failure). */\n"
               "static inline int %s_state_new(%s_state **s) { return nnrt_aot_state_new(&%s_model, s); }\n"
               "static inline void %s_state_free(%s_state *s) { nnrt_aot_state_free(s); }\n"
               "/* One step of the optimizer on n samples, 1 <= n <= %s_BATCH: x [n, %s_INPUT_SIZE],\n"
               " * y [n, %s_LABEL_SIZE]; *loss (if not NULL) the batch's mean loss. With\n"
               " * --normalize's mean and standard deviation (the embedded checkpoint's, or\n"
               " * the last one loaded's), x is scaled by them first, as nnc --train does. */\n"
               "static inline int %s_train_step(%s_state *s, const float *x, const float *y, size_t n, "
               "float *loss) {\n    return nnrt_aot_train_step(s, x, y, n, loss);\n}\n"
               "/* The evaluation step on the state's weights, as %s_predict. */\n"
               "static inline int %s_state_predict(%s_state *s, const float *x, size_t n, float *out) {\n"
               "    return nnrt_aot_predict(s, x, n, out);\n}\n"
               "/* The state as a safetensors checkpoint `nnc --load` reads, or one of\n"
               " * `nnc --save` read into it: the weights, and any optimizer state. */\n"
               "static inline int %s_state_save(%s_state *s, const char *path) { return nnrt_aot_save(s, path); }\n"
               "static inline int %s_state_load(%s_state *s, const char *path) { return nnrt_aot_load(s, path); }\n"
               "/* What the last failure of s was. */\n"
               "static inline const char *%s_state_error(const %s_state *s) { return nnrt_aot_error(s); }\n\n",
            p, p, p, p, p, p, up, up, up, p, p, p, p, p, p, p, p, p, p, p);
    fprintf(f, "#ifdef __cplusplus\n}\n#endif\n#endif\n");
}

/* ---------------------------------------------------------------- the driver's entry */

/* The model's initial slots: the checkpoint's weights (and optimizer
 * state, if it has any) over the seed's initialisation, as `nnc --load`
 * starts a run; in the kernels' layout. NULL once reported. */
static void **initial_slots(Diag *d, const AotSpec *spec, const Plan *p, uint64_t hash) {
    const Graph *g = p->g[PLAN_TRAIN];
    void **slots = fit_slots_new(g, spec->model->seed);
    FitInfo info = {.model_name = spec->model->name, .model_hash = hash, .batch = (size_t)spec->model->batch};
    FitState st;
    fit_state_init(&st, spec->model->seed);
    bool ok = !spec->weights || fit_load(d, spec->weights, g, slots, &info, &st);
    fit_state_free(&st);
    if (ok) {
        layout_convert(g, p->s[PLAN_TRAIN], slots, true);
        return slots;
    }
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
    return NULL;
}

/* Writes the object or library of a's module, and the header. */
static bool write_outputs(Aot *a, const AotSpec *spec, uint64_t hash, char *err, size_t errlen) {
    const char *name = spec->model->name;
    const char *syms[4];
    int nsyms = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(a->mod); f; f = LLVMGetNextFunction(f))
        if (!LLVMIsDeclaration(f) && LLVMGetLinkage(f) != LLVMInternalLinkage && nsyms < 3)
            syms[nsyms++] = LLVMGetValueName(f);
    syms[nsyms++] = arena_printf(a->arena, "%s_model", name);
    LLVMMemoryBufferRef obj = jit_emit_object(a->mod, spec->target, err, errlen);
    bool ok = obj != NULL;
    if (ok && ends_with(spec->out, ".a"))
        ok = write_archive(spec->out, name, syms, nsyms, obj, err, errlen);
    else if (ok && ends_with(spec->out, ".so"))
        ok = link_shared(spec->out, obj, err, errlen);
    else if (ok)
        ok = write_file(spec->out, LLVMGetBufferStart(obj), LLVMGetBufferSize(obj), "the object", err, errlen);
    if (obj)
        LLVMDisposeMemoryBuffer(obj);
    if (ok && spec->header) {
        NnrtAtomic h;
        ok = nnrt_atomic_begin(&h, spec->header, err, errlen);
        if (ok) {
            write_header(h.f, spec, a, hash);
            ok = nnrt_atomic_end(&h, !ferror(h.f), "the header", err, errlen);
        }
    }
    return ok;
}

int aot_write(Arena *arena, Diag *d, const AotSpec *spec) {
    const Model *m = spec->model;
    Plan p = pipeline_plan(arena, m, spec->opt, INPUT_FLOAT, spec->target, false);
    const Graph *g = p.g[PLAN_TRAIN];
    for (int s = 0; s < g->nslots; s++) /* LLVM's constant data is counted in unsigned */
        if ((uint64_t)shape_elems(&g->slots[s].shape) * sizeof(float) > UINT_MAX) {
            diag_plain(d, "model %s's tensor '%s' is over 4 GiB, more than an object can embed", m->name,
                       g->slots[s].name);
            return EXIT_USAGE;
        }
    uint64_t hash = fit_model_hash(spec->src);
    double *mean = NULL, *std = NULL; /* --normalize's, if the checkpoint has them */
    if (spec->weights && !fit_read_normalize(d, spec->weights, (size_t)shape_elems(&m->input), &mean, &std))
        return EXIT_USAGE;
    void **slots = initial_slots(d, spec, &p, hash);
    if (!slots) {
        free(mean);
        free(std);
        return EXIT_USAGE;
    }
    char err[1024];
    bool ok = false;
    CgModule *mods[PLAN_STEPS];
    for (int i = 0; i < PLAN_STEPS; i++)
        mods[i] = pipeline_plan_codegen(&p, i);
    Aot a = {.arena = arena, .m = m, .plan = &p, .ctx = LLVMContextCreate()};
    a.mod = jit_link_modules(mods, PLAN_STEPS, spec->target, a.ctx, err, sizeof err); /* takes mods */
    if (a.mod) {
        a.b = LLVMCreateBuilderInContext(a.ctx);
        a.i8p = LLVMPointerType(LLVMInt8TypeInContext(a.ctx), 0);
        a.i32 = LLVMInt32TypeInContext(a.ctx);
        a.i64 = LLVMInt64TypeInContext(a.ctx);
        a.arena_bytes = round64(p.s[PLAN_TRAIN]->arena_bytes > p.s[PLAN_EVAL]->arena_bytes
                                    ? p.s[PLAN_TRAIN]->arena_bytes : p.s[PLAN_EVAL]->arena_bytes);
        a.labels = round64((uint64_t)m->batch * (uint64_t)m->label_size * sizeof(float));
        LLVMValueRef *weights = xcalloc((size_t)g->nslots, sizeof *weights);
        /* Optimizer state that starts at zero (momentum, moments) is left
         * to the runtime's zeroed memory: it was half of the MLP's object. */
        for (int s = SLOT_NO_FIRST_PARAM; s < g->nslots; s++)
            if (slots[s] && (is_weight(&g->slots[s]) || !all_zero(slots[s], shape_elems(&g->slots[s].shape))))
                weights[s] = weights_global(&a, s, slots[s]);
        a.predict = spec->weights != NULL; /* else the weights are the seed's: predict through a state */
        if (mean) {
            a.mean = doubles_global(&a, "normalize.mean", mean, (size_t)shape_elems(&m->input));
            a.std = doubles_global(&a, "normalize.std", std, (size_t)shape_elems(&m->input));
        }
        if (a.predict)
            predict_fn(&a, weights);
        model_global(&a, weights, hash);
        free(weights);
        serial_fallback(&a, "nnrt_parallel_for");
        serial_fallback(&a, "nnrt_parallel_for_small");
        internalize(&a);
        LLVMDisposeBuilder(a.b);
        ok = write_outputs(&a, spec, hash, err, sizeof err);
        LLVMDisposeModule(a.mod);
    }
    if (!ok)
        diag_plain(d, "%s", err);
    LLVMContextDispose(a.ctx);
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
    free(mean);
    free(std);
    return ok ? EXIT_OK : EXIT_USAGE;
}
