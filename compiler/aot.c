/* aot.c — a model ahead of time: its evaluation step as an object file (or
 * a static or shared library) and a C header, for programs that run it
 * without nnc and without LLVM.
 *
 * The steps are the ones the JIT runs (pipeline.c), optimised by the same
 * passes for the same target (jit_link_modules), so an object built for
 * the host computes what `nnc --predict` does, to the bit; only the code's
 * addressing differs (position-independent: one object serves a PIE
 * executable, Debian's default, a static library and a shared one). The
 * step functions and their kernels are made internal: the object exports
 * only `<model>_predict`, so two models link into one program.
 *
 * What the generated code needs at run time:
 *   - the weights, embedded as read-only data (--load), laid out as the
 *     kernels read them (layout.c's panels, converted here once);
 *   - scratch memory for the activations, allocated per call (aligned_alloc,
 *     freed before returning): the code keeps no mutable globals, so calls
 *     from several threads are safe, and a failed allocation is an error
 *     code, not an abort;
 *   - nnrt_parallel_for and nnrt_parallel_for_small, the thread pool's entry
 *     points: defined here as weak symbols that run a kernel's whole range
 *     on the calling thread. A program linked with libnnrt's pool (pool.c,
 *     pulled in by calling nnrt_set_threads) gets the pool's strong
 *     definitions instead: results are the same with any number of threads;
 *   - libc (aligned_alloc, free, memset) and libm (what LLVM calls, expf...).
 *
 * The archive (.a) is written here (one member and its symbol index, which
 * GNU ld wants); a shared library is linked by the system's C compiler ($CC,
 * else cc), which knows the platform's linker and its flags.
 */
#include "cg.h"
#include "nnrt.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The predict function's status codes, as the header names them. */
enum { AOT_OK = 0, AOT_ENOMEM = 1, AOT_EINVAL = 2 };

/* Bytes rounded up to the kernels' 64-byte alignment (sizes bounded by the
 * schedule's, far from overflow). */
static uint64_t round64(uint64_t n) { return (n + 63) / 64 * 64; }

/* What the generated module needs of the plan, in one place. */
typedef struct Aot {
    const Model *m;
    const Graph *eval;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef i8p, i32, i64;
    uint64_t arena, labels; /* scratch: the arena, then zero labels, then the loss */
} Aot;

static LLVMValueRef i64c(Aot *a, uint64_t v) { return LLVMConstInt(a->i64, v, false); }

static LLVMValueRef libc_fn(Aot *a, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, unsigned n,
                            LLVMTypeRef *type) {
    *type = LLVMFunctionType(ret, params, n, false);
    LLVMValueRef f = LLVMGetNamedFunction(a->mod, name);
    return f ? f : LLVMAddFunction(a->mod, name, *type);
}

/* Slot sl's weights (float32, in the kernels' layout) as a read-only global. */
static LLVMValueRef weights_global(Aot *a, int sl, const float *w) {
    size_t bytes = (size_t)shape_elems(&a->eval->slots[sl].shape) * sizeof(float);
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
    const Graph *g = a->eval;
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
    LLVMBuildRet(B, LLVMConstInt(a->i32, AOT_EINVAL, false));

    LLVMPositionBuilderAtEnd(B, alloc);
    uint64_t bytes = a->arena + a->labels + 64;
    LLVMTypeRef aty, fty, mty;
    LLVMTypeRef ap[2] = {a->i64, a->i64}, fpar[1] = {a->i8p}, mp[3] = {a->i8p, a->i32, a->i64};
    LLVMValueRef aligned_alloc = libc_fn(a, "aligned_alloc", a->i8p, ap, 2, &aty);
    LLVMValueRef free_fn = libc_fn(a, "free", LLVMVoidTypeInContext(a->ctx), fpar, 1, &fty);
    LLVMValueRef memset_fn = libc_fn(a, "memset", a->i8p, mp, 3, &mty);
    LLVMValueRef aargs[2] = {i64c(a, 64), i64c(a, bytes)};
    LLVMValueRef scratch = LLVMBuildCall2(B, aty, aligned_alloc, aargs, 2, "scratch");
    LLVMBuildCondBr(B, LLVMBuildIsNull(B, scratch, ""), nomem, head);
    LLVMPositionBuilderAtEnd(B, nomem);
    LLVMBuildRet(B, LLVMConstInt(a->i32, AOT_ENOMEM, false));

    /* The slots but x and the output, which move with each batch. */
    LLVMPositionBuilderBefore(B, LLVMGetBasicBlockTerminator(alloc));
    LLVMValueRef margs[3] = {scratch, LLVMConstInt(a->i32, 0, false), i64c(a, bytes)};
    LLVMBuildCall2(B, mty, memset_fn, margs, 3, ""); /* the arena, the labels and the loss start at zero */
    for (int s = 0; s < g->nslots; s++) {
        LLVMValueRef at = LLVMBuildGEP2(B, a->i8p, slots, &(LLVMValueRef){i64c(a, (uint64_t)s)}, 1, "");
        LLVMValueRef v = LLVMConstNull(a->i8p);
        if (s == SLOT_NO_ARENA)
            v = scratch;
        else if (s == SLOT_NO_LABEL)
            v = LLVMBuildGEP2(B, LLVMInt8TypeInContext(a->ctx), scratch, &(LLVMValueRef){i64c(a, a->arena)}, 1, "");
        else if (s == SLOT_NO_LOSS)
            v = LLVMBuildGEP2(B, LLVMInt8TypeInContext(a->ctx), scratch,
                              &(LLVMValueRef){i64c(a, a->arena + a->labels)}, 1, "");
        else if (weights[s])
            v = weights[s];
        if (s != SLOT_NO_INPUT && s != SLOT_NO_OUTPUT)
            LLVMBuildStore(B, v, at);
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
    LLVMBuildStore(B, LLVMBuildBitCast(B, xi, a->i8p, ""),
                   LLVMBuildGEP2(B, a->i8p, slots, &(LLVMValueRef){i64c(a, SLOT_NO_INPUT)}, 1, ""));
    LLVMBuildStore(B, LLVMBuildBitCast(B, oi, a->i8p, ""),
                   LLVMBuildGEP2(B, a->i8p, slots, &(LLVMValueRef){i64c(a, SLOT_NO_OUTPUT)}, 1, ""));
    LLVMTypeRef sparams[2] = {LLVMPointerType(a->i8p, 0), a->i64};
    LLVMTypeRef sty = LLVMFunctionType(LLVMVoidTypeInContext(a->ctx), sparams, 2, false);
    LLVMValueRef step = LLVMGetNamedFunction(a->mod, "eval_step");
    if (!step)
        die("aot: the evaluation step is missing from the linked module");
    LLVMValueRef sargs[2] = {slots, k};
    LLVMBuildCall2(B, sty, step, sargs, 2, "");
    LLVMValueRef next = LLVMBuildAdd(B, i, k, "");
    LLVMAddIncoming(i, &next, &body, 1);
    LLVMBuildBr(B, head);
    LLVMPositionBuilderAtEnd(B, done);
    LLVMBuildCall2(B, fty, free_fn, &scratch, 1, "");
    LLVMBuildRet(B, LLVMConstInt(a->i32, AOT_OK, false));
}

/* Every function defined here but the interface becomes internal; a
 * reference to the runtime the object does not define is a bug here. */
static void internalize(Aot *a, const char *keep) {
    for (LLVMValueRef f = LLVMGetFirstFunction(a->mod); f; f = LLVMGetNextFunction(f)) {
        const char *name = LLVMGetValueName(f);
        if (LLVMIsDeclaration(f)) {
            if (!strncmp(name, "nnrt_", 5))
                die("aot: the generated code calls %s, which the object does not define", name);
        } else if (strcmp(name, keep) != 0 && LLVMGetLinkage(f) != LLVMWeakAnyLinkage) {
            LLVMSetLinkage(f, LLVMInternalLinkage);
        }
    }
    if (LLVMGetNamedGlobal(a->mod, "nnrt_interrupt_requested"))
        die("aot: the generated code reads nnrt_interrupt_requested");
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
 * executable stack; the object goes through a temporary file. */
static bool link_shared(const char *path, LLVMMemoryBufferRef obj, char *err, size_t errlen) {
    char tmp[] = "/tmp/nnc-aot-XXXXXX.o";
    int fd = mkstemps(tmp, 2);
    if (fd < 0)
        return nnrt_fail(err, errlen, "a temporary object file: %s", strerror(errno));
    size_t size = LLVMGetBufferSize(obj);
    bool ok = write(fd, LLVMGetBufferStart(obj), size) == (ssize_t)size;
    close(fd);
    if (!ok) {
        unlink(tmp);
        return nnrt_fail(err, errlen, "%s: %s", tmp, strerror(errno));
    }
    /* Linked beside the target, then renamed over it: atomic, as every output. */
    size_t n = strlen(path) + 16;
    char *out = xrealloc(NULL, n, 1);
    snprintf(out, n, "%s.tmp%d", path, (int)getpid());
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    char *argv[] = {(char *)cc, "-shared", "-Wl,-z,noexecstack", "-Wl,-z,relro", "-o", out, tmp, "-lm", NULL};
    pid_t pid;
    int st = 0;
    int e = posix_spawnp(&pid, cc, NULL, NULL, argv, environ);
    if (e)
        ok = nnrt_fail(err, errlen, "running %s to link %s: %s", cc, path, strerror(e));
    else if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        ok = nnrt_fail(err, errlen, "%s failed to link %s", cc, path);
    else if (rename(out, path) != 0)
        ok = nnrt_fail(err, errlen, "%s: %s", path, strerror(errno));
    if (!ok)
        unlink(out);
    unlink(tmp);
    free(out);
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

static void write_header(FILE *f, const AotSpec *spec, const Graph *g, uint64_t scratch, uint64_t hash) {
    const Model *m = spec->model;
    char up[256];
    size_t k = 0;
    for (; m->name[k] && k + 1 < sizeof up; k++)
        up[k] = (char)(m->name[k] >= 'a' && m->name[k] <= 'z' ? m->name[k] - 'a' + 'A' : m->name[k]);
    up[k] = 0;
    const char *p = m->name;
    fprintf(f, "/* %s.h: model %s of %s, compiled ahead of time by nnc for %s.\n"
               " * Generated: do not edit. Link with the object (or library) nnc wrote\n"
               " * and -lm; nothing else (see docs/aot.md). */\n", p, p, spec->src->path, spec->target->cpu);
    fprintf(f, "#ifndef %s_H\n#define %s_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n"
               "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", up, up);
    fprintf(f, "/* One sample: float32 elements, row-major. */\n");
    fprintf(f, "#define %s_INPUT_SIZE %lld\n#define %s_INPUT_RANK %d\n#define %s_INPUT_SHAPE ", up,
            (long long)shape_elems(&m->input), up, m->input.rank, up);
    print_dims(f, &m->input);
    fprintf(f, "\n#define %s_OUTPUT_SIZE %lld\n#define %s_OUTPUT_RANK %d\n#define %s_OUTPUT_SHAPE ", up,
            (long long)shape_elems(&m->output), up, m->output.rank, up);
    print_dims(f, &m->output);
    fprintf(f, "\n/* Samples per step: predict runs any number, in steps of at most this. */\n"
               "#define %s_BATCH %lld\n", up, (long long)m->batch);
    fprintf(f, "/* Bytes predict allocates per call (aligned_alloc), freed before it returns. */\n"
               "#define %s_SCRATCH_BYTES %llu\n", up, (unsigned long long)scratch);
    fprintf(f, "/* The model file's fingerprint, as its checkpoints record it. */\n"
               "#define %s_FINGERPRINT UINT64_C(0x%016llx)\n", up, (unsigned long long)hash);
    fprintf(f, "/* The instruction set the code needs (nnc --march). */\n#define %s_TARGET \"%s\"\n\n", up,
            spec->target->cpu);
    int nparams = 0;
    for (int s = SLOT_NO_FIRST_PARAM; s < g->nslots; s++)
        nparams += g->slots[s].kind == SLOT_PARAM || g->slots[s].model_state;
    fprintf(f, "/* The weights embedded (from %s): parameters and the model's state. */\n"
               "#define %s_NPARAMS %d\n#define %s_PARAM_NAMES {", spec->weights, up, nparams, up);
    for (int s = SLOT_NO_FIRST_PARAM, i = 0; s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM || g->slots[s].model_state)
            fprintf(f, "%s\"%s\"", i++ ? ", " : "", g->slots[s].name);
    fprintf(f, "}\n#define %s_PARAM_SIZES {", up);
    for (int s = SLOT_NO_FIRST_PARAM, i = 0; s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM || g->slots[s].model_state)
            fprintf(f, "%s%lld", i++ ? ", " : "", (long long)shape_elems(&g->slots[s].shape));
    fprintf(f, "}\n");
    for (int s = SLOT_NO_FIRST_PARAM; s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM || g->slots[s].model_state) {
            fprintf(f, "/*   %s ", g->slots[s].name);
            print_dims(f, &g->slots[s].shape);
            fprintf(f, " */\n");
        }
    fprintf(f, "\n/* Status codes: every function returns one, none aborts or prints. */\n"
               "enum { %s_OK = %d, %s_ENOMEM = %d, %s_EINVAL = %d };\n\n", up, AOT_OK, up, AOT_ENOMEM, up,
            AOT_EINVAL);
    fprintf(f, "/* The evaluation step (dropout off, batchnorm's moving statistics), as\n"
               " * `nnc --predict`: x holds n samples of %s_INPUT_SIZE floats, out receives\n"
               " * n rows of %s_OUTPUT_SIZE (the probabilities of a softmax classifier).\n"
               " * %s_EINVAL if x or out is NULL and n > 0; %s_ENOMEM if the scratch memory\n"
               " * cannot be allocated. Thread-safe: no state outside the call. */\n"
               "int %s_predict(const float *x, size_t n, float *out);\n\n", up, up, up, up, p);
    fprintf(f, "#ifdef __cplusplus\n}\n#endif\n#endif\n");
}

/* ---------------------------------------------------------------- the driver's entry */

int aot_write(Arena *arena, Diag *d, const AotSpec *spec) {
    const Model *m = spec->model;
    Plan p = pipeline_plan(arena, m, spec->opt, INPUT_FLOAT, spec->target);
    Graph *g = p.g[PLAN_TRAIN];
    void **slots = xcalloc((size_t)g->nslots, sizeof *slots);
    for (int s = 0; s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM || g->slots[s].kind == SLOT_STATE)
            slots[s] = xcalloc64((size_t)shape_elems(&g->slots[s].shape), sizeof(float));
    uint64_t hash = fit_model_hash(spec->src);
    FitInfo info = {.model_name = m->name, .model_hash = hash, .batch = (size_t)m->batch};
    FitState st;
    fit_state_init(&st, m->seed);
    bool ok = fit_load(d, spec->weights, g, slots, &info, &st);
    fit_state_free(&st);
    int status = EXIT_USAGE;
    char err[1024];
    if (ok) {
        layout_convert(g, p.s[PLAN_TRAIN], slots, true);
        CgModule *mods[1] = {pipeline_plan_codegen(&p, PLAN_EVAL)};
        Aot a = {.m = m, .eval = p.g[PLAN_EVAL], .ctx = LLVMContextCreate()};
        a.mod = jit_link_modules(mods, 1, spec->target, a.ctx, err, sizeof err); /* takes mods */
        if (a.mod) {
            a.b = LLVMCreateBuilderInContext(a.ctx);
            a.i8p = LLVMPointerType(LLVMInt8TypeInContext(a.ctx), 0);
            a.i32 = LLVMInt32TypeInContext(a.ctx);
            a.i64 = LLVMInt64TypeInContext(a.ctx);
            a.arena = round64(p.s[PLAN_EVAL]->arena_bytes);
            a.labels = round64((uint64_t)m->batch * (uint64_t)m->label_size * sizeof(float));
            LLVMValueRef *weights = xcalloc((size_t)a.eval->nslots, sizeof *weights);
            for (int s = SLOT_NO_FIRST_PARAM; s < a.eval->nslots; s++)
                if (slots[s])
                    weights[s] = weights_global(&a, s, slots[s]);
            predict_fn(&a, weights);
            free(weights);
            serial_fallback(&a, "nnrt_parallel_for");
            serial_fallback(&a, "nnrt_parallel_for_small");
            char predict[256];
            snprintf(predict, sizeof predict, "%s_predict", m->name);
            internalize(&a, predict);
            LLVMDisposeBuilder(a.b);
            LLVMMemoryBufferRef obj = jit_emit_object(a.mod, spec->target, err, sizeof err);
            const char *syms[] = {predict, "nnrt_parallel_for", "nnrt_parallel_for_small"};
            int nsyms = 1 + (LLVMGetNamedFunction(a.mod, "nnrt_parallel_for") != NULL) +
                        (LLVMGetNamedFunction(a.mod, "nnrt_parallel_for_small") != NULL);
            if (nsyms == 2 && !LLVMGetNamedFunction(a.mod, "nnrt_parallel_for"))
                syms[1] = syms[2];
            bool written = obj != NULL;
            if (written && ends_with(spec->out, ".a"))
                written = write_archive(spec->out, m->name, syms, nsyms, obj, err, sizeof err);
            else if (written && ends_with(spec->out, ".so"))
                written = link_shared(spec->out, obj, err, sizeof err);
            else if (written)
                written = write_file(spec->out, LLVMGetBufferStart(obj), LLVMGetBufferSize(obj), "the object",
                                     err, sizeof err);
            if (obj)
                LLVMDisposeMemoryBuffer(obj);
            if (written && spec->header) {
                NnrtAtomic h;
                written = nnrt_atomic_begin(&h, spec->header, err, sizeof err);
                if (written) {
                    write_header(h.f, spec, a.eval, a.arena + a.labels + 64, hash);
                    written = nnrt_atomic_end(&h, !ferror(h.f), "the header", err, sizeof err);
                }
            }
            LLVMDisposeModule(a.mod);
            if (written)
                status = EXIT_OK;
            else
                diag_plain(d, "%s", err);
        } else {
            diag_plain(d, "%s", err);
        }
        LLVMContextDispose(a.ctx);
    }
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
    return status;
}
