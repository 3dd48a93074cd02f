/* jit.c — LLVM IR to machine code for this very CPU, through ORC LLJIT.
 *
 * The target machine is built from the Target's CPU name *and* its feature
 * string (target.c says why both). The modules are optimised here (LLJIT
 * itself does not optimise; the pipelines are below optimise()) and compiled
 * to object code here, one module per step function and one per kernel on
 * the runtime's thread pool (each module has its own LLVM context, so they
 * compile in parallel); LLJIT then only links the objects.
 * The runtime's own functions (the thread pool, data-parallel training's
 * all-reduce) are given to the JIT by an explicit table: the executable
 * does not export them. Every other symbol
 * is looked up in the process (libm, libc, libgcc): the code generator and
 * instcombine emit library calls of their own choosing (sin and cos of one
 * value become sincosf, pow(10, x) exp10f, powi __powisf2, frem fmodf), and
 * a hand-kept list of them once missed sincosf.
 *
 * Ownership: every LLVMErrorRef is consumed by take_error(); comments mark
 * where an object passes to LLVM.
 */
#include "cg.h"
#include "nnrt.h"

#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Error.h>
#include <llvm-c/Linker.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm/Config/llvm-config.h> /* LLVM_VERSION_MAJOR */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct Jit {
    LLVMOrcLLJITRef lljit;
    char **names; /* the module's functions, for the perf map */
    int nnames;
};

/* Consumes e; false (with the message in err) if it was an error. */
static bool take_error(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
    if (!e)
        return true;
    char *msg = LLVMGetErrorMessage(e); /* consumes e */
    snprintf(err, errlen, "%s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

static void init_native(void) {
    /* Idempotent in LLVM; cheap after the first call. */
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
}

/* pic: position-independent code for an object ahead of time (aot.c), so
 * that one object serves a PIE executable (Debian's default), a static
 * library and a shared one; else code for the JIT's own memory. */
static LLVMTargetMachineRef target_machine(const Target *t, bool pic, char *err, size_t errlen) {
    init_native();
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *msg = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(err, errlen, "no LLVM target for %s: %s", triple, msg);
        LLVMDisposeMessage(msg);
    } else {
        tm = LLVMCreateTargetMachine(target, triple, t->cpu, t->features, LLVMCodeGenLevelAggressive,
                                     pic ? LLVMRelocPIC : LLVMRelocDefault,
                                     pic ? LLVMCodeModelDefault : LLVMCodeModelJITDefault);
        if (!tm)
            snprintf(err, errlen, "cannot create a target machine for %s (%s)", triple, t->cpu);
    }
    LLVMDisposeMessage(triple);
    return tm;
}

/* The runtime's functions generated code calls; see the note at the top. */
static const struct {
    const char *name;
    void *addr;
} runtime_symbols[] = {
    {"nnrt_parallel_for", (void *)nnrt_parallel_for},
    {"nnrt_parallel_for_small", (void *)nnrt_parallel_for_small},
    {"nnrt_interrupt_requested", (void *)&nnrt_interrupt_requested},
    {"nnrt_allreduce", (void *)nnrt_allreduce},
    {"nnrt_allreduce_wait", (void *)nnrt_allreduce_wait},
    {"nnrt_mpi_first_sample", (void *)&nnrt_mpi_first_sample},
};

static bool define_runtime_symbols(LLVMOrcLLJITRef j, char *err, size_t errlen) {
    enum { N = sizeof runtime_symbols / sizeof runtime_symbols[0] };
    /* Through the pointer typedef: the pair's own type was renamed in LLVM 15. */
    LLVMOrcCSymbolMapPairs pairs = xrealloc(NULL, N, sizeof *pairs);
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(j, runtime_symbols[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)runtime_symbols[i].addr;
        pairs[i].Sym.Flags = (LLVMJITSymbolFlags){LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    }
    /* The materialization unit takes the names' references. */
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, N);
    free(pairs);
    LLVMErrorRef e = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j), mu);
    if (e) {
        LLVMOrcDisposeMaterializationUnit(mu); /* not taken on failure */
        return take_error(e, "defining runtime symbols", err, errlen);
    }
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    if (!take_error(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j), NULL,
                                                                           NULL),
                    "searching the process for symbols", err, errlen))
        return false;
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j), gen); /* takes gen */
    return true;
}

/* The pass pipelines: what the generated code needs of O3, at a fifth of
 * its cost (examples/mlp.nn: 145 of 255 ms CPU for the training step's
 * module went to default<O3>). The kernels are register-blocked vector
 * code by construction (cg_matmul.c), their loop-invariant offsets already
 * outside their loops: they need only their address arithmetic simplified
 * and shared (with LICM and GVN too, their inner loops were the same
 * instructions, and the kernels' passes cost 2.5 times as much). A step
 * function's naive loops need the loop vectoriser too; O3's inliner,
 * unroller and repeated cleanups left the same code (its share of an epoch
 * stayed 3.3-3.5%). */
#if LLVM_VERSION_MAJOR >= 18
/* Named in a pipeline string, instcombine checks since LLVM 18 that one run
 * reached its fixpoint and aborts the process if not: a check for LLVM's
 * own tests (the default pipelines turn it off too). */
#define INSTCOMBINE "instcombine<no-verify-fixpoint>"
#else
#define INSTCOMBINE "instcombine"
#endif
static const char kernel_passes[] = "function(early-cse," INSTCOMBINE ",simplifycfg)";
static const char step_passes[] = "function(sroa,early-cse," INSTCOMBINE ",simplifycfg,loop-simplify,lcssa,"
                                  "loop-rotate,loop-mssa(licm),loop-vectorize," INSTCOMBINE ",simplifycfg)";

/* Sets the module's target and optimises it for tm. */
static bool optimise(const CgModule *m, LLVMTargetMachineRef tm, char *err, size_t errlen) {
    LLVMModuleRef mod = m->mod;
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    bool ok = take_error(LLVMRunPasses(mod, m->kernel ? kernel_passes : step_passes, tm, opts), "optimising", err,
                         errlen);
    LLVMDisposePassBuilderOptions(opts);
    return ok;
}

bool jit_emit_asm(CgModule *m, const Target *t, FILE *out, char *err, size_t errlen) {
    LLVMTargetMachineRef tm = target_machine(t, false, err, errlen);
    if (!tm)
        return false;
    bool ok = true;
    for (; ok && m; m = m->next) {
        char *msg = NULL;
        LLVMMemoryBufferRef buf = NULL;
        ok = optimise(m, tm, err, errlen);
        if (ok && LLVMTargetMachineEmitToMemoryBuffer(tm, m->mod, LLVMAssemblyFile, &msg, &buf)) {
            snprintf(err, errlen, "emitting assembly: %s", msg);
            LLVMDisposeMessage(msg);
            ok = false;
        }
        if (ok) {
            fwrite(LLVMGetBufferStart(buf), 1, LLVMGetBufferSize(buf), out);
            LLVMDisposeMemoryBuffer(buf);
        }
    }
    LLVMDisposeTargetMachine(tm);
    return ok;
}

/* One module's way to machine code: optimise it, emit an object file. */
typedef struct Job {
    const CgModule *mod;
    LLVMMemoryBufferRef obj; /* NULL: failed (see err), or not compiled */
    char err[512];
} Job;

/* A compilation: its modules, compiled by threads of its own, not the
 * runtime's pool: Ctrl-C (the runtime's interrupt request) abandons it, and
 * the caller goes on (the REPL's prompt comes back) while the threads end
 * the modules they are optimising, which no LLVM call can interrupt (a
 * large model's training step took seconds); a thread takes no module
 * after the interrupt. The last thread of an abandoned compilation frees
 * it, modules and objects, when it ends; nnc's exit waits for them. */
typedef struct Jobs {
    Target target; /* a copy (its strings too): the caller's may be gone before the threads */
    Job *job;
    int n;
    atomic_int next;
    CgModule **mods; /* owned */
    int nmods;
    int running;     /* threads not ended; under jobs_lock */
    atomic_bool abandoned; /* set under jobs_lock */
} Jobs;

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_ended = PTHREAD_COND_INITIALIZER;
static int abandoned_running; /* threads of abandoned compilations; under jobs_lock */

/* A kernel module's text with its own name (the module's and its one
 * function's) blanked: equal for two kernels that differ only in name;
 * the caller frees it. */
static char *kernel_text(const CgModule *m) {
    size_t len = 0;
    const char *name = LLVMGetModuleIdentifier(m->mod, &len);
    char *text = LLVMPrintModuleToString(m->mod), *out = xstrdup(text), *to = out;
    for (const char *from = text; *from;)
        if (len && strncmp(from, name, len) == 0) {
            *to++ = '#';
            from += len;
        } else {
            *to++ = *from++;
        }
    *to = '\0';
    LLVMDisposeMessage(text);
    return out;
}

/* Its instructions, a cheap first test of equality. */
static size_t instructions(const CgModule *m) {
    size_t n = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(m->mod); f; f = LLVMGetNextFunction(f))
        for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(f); b; b = LLVMGetNextBasicBlock(b))
            for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i))
                n++;
    return n;
}

/* Is kernel module k the same code as an earlier one of the n in mod[]?
 * Then every call to it calls that one instead (the declarations in all
 * the modules renamed), and it is not compiled. The evaluation step's
 * forward kernels are the training step's, buffers and all (the arena
 * offsets of the forward pass coincide). */
static bool same_as_earlier(const CgModule *const *mod, int n, int k, char **text, const size_t *count) {
    for (int e = 0; e < k; e++) {
        if (!mod[e]->kernel_fn || count[e] != count[k])
            continue;
        if (!text[e])
            text[e] = kernel_text(mod[e]);
        if (!text[k])
            text[k] = kernel_text(mod[k]);
        if (strcmp(text[e], text[k]) != 0)
            continue;
        const char *dup = LLVMGetModuleIdentifier(mod[k]->mod, &(size_t){0});
        const char *orig = LLVMGetModuleIdentifier(mod[e]->mod, &(size_t){0});
        for (int i = 0; i < n; i++) {
            LLVMValueRef f = i == k ? NULL : LLVMGetNamedFunction(mod[i]->mod, dup);
            if (!f || !LLVMIsDeclaration(f))
                continue;
            LLVMValueRef to = LLVMGetNamedFunction(mod[i]->mod, orig); /* a step calling both */
            if (to) {
                LLVMReplaceAllUsesWith(f, to);
                LLVMDeleteFunction(f);
            } else {
                LLVMSetValueName2(f, orig, strlen(orig));
            }
        }
        return true;
    }
    return false;
}

/* A job per module: each step function, then its kernels, but a kernel
 * that is an earlier one under another name once; takes mods. */
static Jobs *jobs_of(CgModule **mods, int nmods, const Target *t) {
    int n = 0;
    for (int i = 0; i < nmods; i++)
        for (const CgModule *m = mods[i]; m; m = m->next)
            n++;
    const CgModule **all = xrealloc(NULL, (size_t)n + 1, sizeof *all);
    char **text = xcalloc((size_t)n + 1, sizeof *text);
    size_t *count = xcalloc((size_t)n + 1, sizeof *count);
    n = 0;
    for (int i = 0; i < nmods; i++)
        for (const CgModule *m = mods[i]; m; m = m->next) {
            count[n] = m->kernel_fn ? instructions(m) : 0;
            all[n++] = m;
        }
    Jobs *js = xcalloc(1, sizeof *js);
    *js = (Jobs){.target = *t, .job = xrealloc(NULL, (size_t)n + 1, sizeof *js->job),
                 .mods = xrealloc(NULL, (size_t)nmods + 1, sizeof *js->mods), .nmods = nmods};
    js->target.cpu = xstrdup(t->cpu);
    js->target.features = xstrdup(t->features);
    memcpy(js->mods, mods, (size_t)nmods * sizeof *mods);
    for (int k = 0; k < n; k++)
        if (!all[k]->kernel_fn || !same_as_earlier(all, n, k, text, count))
            js->job[js->n++] = (Job){.mod = all[k]};
    for (int k = 0; k < n; k++)
        free(text[k]);
    free(text);
    free(count);
    free(all);
    return js;
}

static void jobs_free(Jobs *js) {
    for (int i = 0; i < js->n; i++)
        if (js->job[i].obj)
            LLVMDisposeMemoryBuffer(js->job[i].obj);
    for (int i = 0; i < js->nmods; i++)
        cg_module_free(js->mods[i]);
    free(js->mods);
    free(js->job);
    free(js->target.cpu);
    free(js->target.features);
    free(js);
}

/* The next module to compile into *i; false when none is left, after Ctrl-C
 * and once abandoned (Ctrl-C's request ends at the next prompt). */
static bool next_job(Jobs *js, int *i) {
    return !nnrt_interrupted() && !atomic_load(&js->abandoned) && (*i = atomic_fetch_add(&js->next, 1)) < js->n;
}

/* Run by every thread of the compilation: take the next module until none
 * is left (largest first, as the caller orders them) or Ctrl-C. Each
 * module has its own LLVM context, so modules compile in parallel; a
 * thread makes one target machine for all the modules it takes. */
static void *compile_jobs(void *arg) {
    Jobs *js = arg;
    LLVMTargetMachineRef tm = NULL;
    for (int i; next_job(js, &i);) {
        Job *jb = &js->job[i];
        if (!tm && !(tm = target_machine(&js->target, false, jb->err, sizeof jb->err)))
            continue;
        char *msg = NULL;
        if (optimise(jb->mod, tm, jb->err, sizeof jb->err) &&
            LLVMTargetMachineEmitToMemoryBuffer(tm, jb->mod->mod, LLVMObjectFile, &msg, &jb->obj)) {
            snprintf(jb->err, sizeof jb->err, "code generation: %s", msg);
            LLVMDisposeMessage(msg);
            jb->obj = NULL;
        }
    }
    if (tm)
        LLVMDisposeTargetMachine(tm);
    pthread_mutex_lock(&jobs_lock);
    bool last = --js->running == 0, abandoned = js->abandoned;
    abandoned_running -= abandoned;
    pthread_cond_broadcast(&jobs_ended);
    pthread_mutex_unlock(&jobs_lock);
    if (last && abandoned)
        jobs_free(js);
    return NULL;
}

/* At exit: LLVM's static state must outlive the threads using it. */
static void wait_abandoned(void) {
    pthread_mutex_lock(&jobs_lock);
    while (abandoned_running)
        pthread_cond_wait(&jobs_ended, &jobs_lock);
    pthread_mutex_unlock(&jobs_lock);
}

static void register_wait(void) { atexit(wait_abandoned); }

/* Compiles the modules of *jsp to object code in parallel; false (message
 * in err) if any failed, or if Ctrl-C abandoned the compilation: *jsp is
 * then NULL (its threads free it). Each job's obj is then the caller's. */
static bool compile_objects(Jobs **jsp, char *err, size_t errlen) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_wait);
    init_native(); /* before threads use the target registry */
    Jobs *js = *jsp;
    int threads = nnrt_threads() < js->n ? nnrt_threads() : js->n;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&jobs_lock);
    for (int k = 0; k < threads; k++) {
        pthread_t th;
        if (pthread_create(&th, &attr, compile_jobs, js) != 0)
            die("cannot start a compilation thread");
        js->running++;
    }
    pthread_attr_destroy(&attr);
    /* Woken when a thread ends, and every 20 ms to look for Ctrl-C. */
    while (js->running && !nnrt_interrupted()) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 20 * 1000 * 1000;
        until.tv_sec += until.tv_nsec / 1000000000;
        until.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&jobs_ended, &jobs_lock, &until);
    }
    bool abandoned = js->running > 0;
    if (abandoned) {
        js->abandoned = true;
        abandoned_running += js->running;
        *jsp = NULL;
    }
    pthread_mutex_unlock(&jobs_lock);
    if (abandoned || nnrt_interrupted()) { /* ended, but the threads left modules out */
        snprintf(err, errlen, "compilation interrupted (Ctrl-C): abandoned");
        return false;
    }
    for (int i = 0; i < js->n; i++)
        if (!js->job[i].obj) {
            snprintf(err, errlen, "%s", js->job[i].err);
            return false;
        }
    return true;
}

Jit *jit_new(const Target *t, char *err, size_t errlen) {
    LLVMTargetMachineRef tm = target_machine(t, false, err, errlen);
    if (!tm)
        return NULL;
    LLVMOrcLLJITRef lljit = NULL;
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    /* The JTMB takes tm; the builder takes the JTMB; CreateLLJIT takes the
     * builder, even when it fails. */
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    if (!take_error(LLVMOrcCreateLLJIT(&lljit, builder), "creating the JIT", err, errlen))
        return NULL;
    Jit *j = xcalloc(1, sizeof *j);
    j->lljit = lljit;
    if (!define_runtime_symbols(lljit, err, errlen)) {
        jit_free(j);
        return NULL;
    }
    return j;
}

/* Adds an object buffer (taken, also on failure) under rt, or the main
 * library's default tracker if rt is NULL. */
static bool add_object(Jit *j, LLVMOrcResourceTrackerRef rt, LLVMMemoryBufferRef obj, char *err, size_t errlen) {
    LLVMErrorRef e = rt ? LLVMOrcLLJITAddObjectFileWithRT(j->lljit, rt, obj)
                        : LLVMOrcLLJITAddObjectFile(j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), obj);
    return take_error(e, "adding the object code", err, errlen);
}

Jit *jit_compile_modules(CgModule **mods, int nmods, const Target *t, char *err, size_t errlen) {
    Jobs *js = jobs_of(mods, nmods, t);
    Jit *j = compile_objects(&js, err, errlen) ? jit_new(t, err, errlen) : NULL;
    if (j)
        for (int i = 0; i < js->n; i++)
            for (LLVMValueRef f = LLVMGetFirstFunction(js->job[i].mod->mod); f; f = LLVMGetNextFunction(f))
                if (!LLVMIsDeclaration(f)) {
                    j->names = xrealloc(j->names, (size_t)j->nnames + 1, sizeof *j->names);
                    j->names[j->nnames++] = xstrdup(LLVMGetValueName(f));
                }
    for (int i = 0; j && i < js->n; i++) { /* j: js was not abandoned */
        bool ok = add_object(j, NULL, js->job[i].obj, err, errlen);
        js->job[i].obj = NULL; /* taken */
        if (!ok) {
            jit_free(j);
            j = NULL;
        }
    }
    if (js)
        jobs_free(js);
    return j;
}

Jit *jit_compile(CgModule *m, const Target *t, char *err, size_t errlen) {
    return jit_compile_modules(&m, 1, t, err, errlen);
}

/* ---------------------------------------------------------------- objects ahead of time */

/* The modules are optimised exactly as for the JIT (the same passes for
 * the same CPU and features, so the same arithmetic), then moved into one
 * module of ctx through bitcode (each was built in a context of its own)
 * and linked there. */
LLVMModuleRef jit_link_modules(CgModule **mods, int nmods, const Target *t, LLVMContextRef ctx, char *err,
                               size_t errlen) {
    LLVMTargetMachineRef tm = target_machine(t, true, err, errlen);
    LLVMModuleRef linked = NULL;
    bool ok = tm != NULL;
    for (int i = 0; ok && i < nmods; i++)
        for (const CgModule *m = mods[i]; ok && m; m = m->next) {
            ok = optimise(m, tm, err, errlen);
            LLVMMemoryBufferRef bc = ok ? LLVMWriteBitcodeToMemoryBuffer(m->mod) : NULL;
            LLVMModuleRef mod = NULL;
            if (ok && LLVMParseBitcodeInContext2(ctx, bc, &mod)) {
                snprintf(err, errlen, "reading back the bitcode of %s", LLVMGetModuleIdentifier(m->mod, &(size_t){0}));
                ok = false;
            }
            if (bc)
                LLVMDisposeMemoryBuffer(bc);
            if (ok && !linked) {
                linked = mod;
            } else if (ok && LLVMLinkModules2(linked, mod)) { /* takes mod */
                snprintf(err, errlen, "linking the step modules");
                ok = false;
            }
        }
    for (int i = 0; i < nmods; i++)
        cg_module_free(mods[i]);
    if (tm)
        LLVMDisposeTargetMachine(tm);
    if (!ok && linked) {
        LLVMDisposeModule(linked);
        linked = NULL;
    }
    return linked;
}

LLVMMemoryBufferRef jit_emit_object(LLVMModuleRef mod, const Target *t, char *err, size_t errlen) {
    LLVMTargetMachineRef tm = target_machine(t, true, err, errlen);
    if (!tm)
        return NULL;
    char *triple = LLVMGetTargetMachineTriple(tm), *msg = NULL;
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMMemoryBufferRef obj = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &msg, &obj)) {
        snprintf(err, errlen, "code generation: %s", msg);
        LLVMDisposeMessage(msg);
        obj = NULL;
    }
    LLVMDisposeTargetMachine(tm);
    return obj;
}

struct JitUnit {
    LLVMOrcResourceTrackerRef rt;
};

JitUnit *jit_add(Jit *j, CgModule *m, const Target *t, char *err, size_t errlen) {
    Jobs *js = jobs_of(&m, 1, t);
    JitUnit *u = NULL;
    if (compile_objects(&js, err, errlen)) {
        LLVMOrcResourceTrackerRef rt = LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(j->lljit));
        bool ok = true;
        for (int i = 0; i < js->n && ok; i++) { /* the step and its kernels */
            ok = add_object(j, rt, js->job[i].obj, err, errlen);
            js->job[i].obj = NULL; /* taken, also on failure */
        }
        if (ok) {
            u = xcalloc(1, sizeof *u);
            u->rt = rt;
        } else {
            char ignored[64]; /* err says what failed first */
            take_error(LLVMOrcResourceTrackerRemove(rt), "", ignored, sizeof ignored);
            LLVMOrcReleaseResourceTracker(rt);
        }
    }
    if (js)
        jobs_free(js);
    return u;
}

void jit_remove(JitUnit *u) {
    if (!u)
        return;
    char err[256];
    /* Frees the unit's code and symbols; the tracker itself is ours to release. */
    if (!take_error(LLVMOrcResourceTrackerRemove(u->rt), "removing JIT code", err, sizeof err))
        die("%s", err);
    LLVMOrcReleaseResourceTracker(u->rt);
    free(u);
}

void *jit_lookup(Jit *j, const char *fn, char *err, size_t errlen) {
    LLVMOrcExecutorAddress addr = 0;
    if (!take_error(LLVMOrcLLJITLookup(j->lljit, &addr, fn), fn, err, errlen))
        return NULL;
    return (void *)(uintptr_t)addr;
}

void jit_free(Jit *j) {
    if (!j)
        return;
    char err[256];
    if (j->lljit && !take_error(LLVMOrcDisposeLLJIT(j->lljit), "disposing the JIT", err, sizeof err))
        die("%s", err);
    for (int i = 0; i < j->nnames; i++)
        free(j->names[i]);
    free(j->names);
    free(j);
}

typedef struct MapEntry {
    uintptr_t addr;
    const char *name;
} MapEntry;

static int by_addr(const void *a, const void *b) {
    uintptr_t x = ((const MapEntry *)a)->addr, y = ((const MapEntry *)b)->addr;
    return x < y ? -1 : x > y;
}

/* perf's map of JIT code, /tmp/perf-PID.map ("START SIZE NAME" in hex), so
 * `perf report` names the step functions and kernels. A function's size is
 * taken as the distance to the next one: LLVM's C API does not give it. */
bool jit_write_perf_map(Jit *j, char *err, size_t errlen) {
    MapEntry *e = xrealloc(NULL, (size_t)j->nnames + 1, sizeof *e);
    int n = 0;
    for (int i = 0; i < j->nnames; i++) {
        void *p = jit_lookup(j, j->names[i], err, errlen);
        if (!p) {
            free(e);
            return false;
        }
        e[n++] = (MapEntry){(uintptr_t)p, j->names[i]};
    }
    qsort(e, (size_t)n, sizeof *e, by_addr);
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    FILE *f = fopen(path, "a");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(e);
        return false;
    }
    for (int i = 0; i < n; i++)
        fprintf(f, "%" PRIxPTR " %" PRIxPTR " %s\n", e[i].addr, i + 1 < n ? e[i + 1].addr - e[i].addr : 4096, e[i].name);
    fclose(f);
    free(e);
    return true;
}
