/* jit.c — LLVM IR to machine code for this very CPU, through ORC LLJIT.
 *
 * The target machine is built from the host CPU's name *and* its feature
 * string: LLVM 14 calls recent CPUs "generic", and without the features it
 * would not use FMA or AVX-512 at all. The module is optimised here with
 * default<O3> (LLJIT itself does not optimise), then handed to the JIT.
 * Symbols the generated code calls (libm) are given by an explicit table:
 * that table is the whole ABI between JIT'd code and the process.
 *
 * NNC_TARGET_FEATURES, if set, replaces the host features (e.g.
 * "-avx512f" to test the AVX2 path on an AVX-512 machine).
 *
 * Ownership: every LLVMErrorRef is consumed by take_error(); comments mark
 * where an object passes to LLVM.
 */
#define NNC_WITH_LLVM
#include "nnc.h"

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct Jit {
    LLVMOrcLLJITRef lljit;
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

static char *host_features(void) {
    const char *env = getenv("NNC_TARGET_FEATURES");
    char *host = LLVMGetHostCPUFeatures();
    if (!env || !*env)
        return host;
    /* Appended after the host's: a later "-avx512f" overrides an earlier "+avx512f". */
    size_t n = strlen(host) + strlen(env) + 2;
    char *s = xrealloc(NULL, n, 1);
    snprintf(s, n, "%s,%s", host, env);
    LLVMDisposeMessage(host);
    return s;
}

static void free_features(char *f) {
    const char *env = getenv("NNC_TARGET_FEATURES");
    if (env && *env)
        free(f);
    else
        LLVMDisposeMessage(f);
}

static LLVMTargetMachineRef host_machine(char *err, size_t errlen) {
    init_native();
    char *triple = LLVMGetDefaultTargetTriple();
    char *cpu = LLVMGetHostCPUName();
    char *feats = host_features();
    LLVMTargetRef target;
    char *msg = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(err, errlen, "no LLVM target for %s: %s", triple, msg);
        LLVMDisposeMessage(msg);
    } else {
        tm = LLVMCreateTargetMachine(target, triple, cpu, feats, LLVMCodeGenLevelAggressive, LLVMRelocDefault,
                                     LLVMCodeModelJITDefault);
        if (!tm)
            snprintf(err, errlen, "cannot create a target machine for %s (%s)", triple, cpu);
    }
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    free_features(feats);
    return tm;
}

void jit_host_description(char *buf, size_t n) {
    init_native();
    char *cpu = LLVMGetHostCPUName();
    char *feats = host_features();
    /* Only the vector features matter to a reader. */
    snprintf(buf, n, "%s%s%s%s", cpu, strstr(feats, "+avx512f") ? " avx512f" : "",
             strstr(feats, "+avx2") ? " avx2" : "", strstr(feats, "+fma") ? " fma" : "");
    LLVMDisposeMessage(cpu);
    free_features(feats);
}

/* The functions generated code may call: libm, and what LLVM itself emits
 * calls to (memset/memcpy for fill and copy loops). */
static const struct {
    const char *name;
    void *addr;
} runtime_symbols[] = {
    {"tanhf", (void *)tanhf}, {"tanh", (void *)tanh},     {"expf", (void *)expf},
    {"exp", (void *)exp},     {"logf", (void *)logf},     {"log", (void *)log},
    {"powf", (void *)powf},   {"pow", (void *)pow},       {"sinf", (void *)sinf},
    {"sin", (void *)sin},     {"cosf", (void *)cosf},     {"cos", (void *)cos},
    {"memset", (void *)memset}, {"memcpy", (void *)memcpy}, {"memmove", (void *)memmove},
};

static bool define_runtime_symbols(LLVMOrcLLJITRef j, char *err, size_t errlen) {
    enum { N = sizeof runtime_symbols / sizeof runtime_symbols[0] };
    LLVMJITCSymbolMapPair pairs[N];
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(j, runtime_symbols[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)runtime_symbols[i].addr;
        pairs[i].Sym.Flags = (LLVMJITSymbolFlags){LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable, 0};
    }
    /* The materialization unit takes the names' references. */
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, N);
    LLVMErrorRef e = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j), mu);
    if (e) {
        LLVMOrcDisposeMaterializationUnit(mu); /* not taken on failure */
        return take_error(e, "defining runtime symbols", err, errlen);
    }
    return true;
}

static bool optimise(LLVMModuleRef mod, char *err, size_t errlen) {
    LLVMTargetMachineRef tm = host_machine(err, errlen);
    if (!tm)
        return false;
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, dl);
    LLVMDisposeTargetData(dl);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    bool ok = take_error(LLVMRunPasses(mod, "default<O3>", tm, opts), "optimising", err, errlen);
    LLVMDisposePassBuilderOptions(opts);
    LLVMDisposeTargetMachine(tm);
    return ok;
}

bool jit_emit_asm(CgModule *m, FILE *out, char *err, size_t errlen) {
    if (!optimise(m->mod, err, errlen))
        return false;
    LLVMTargetMachineRef tm = host_machine(err, errlen);
    if (!tm)
        return false;
    char *msg = NULL;
    LLVMMemoryBufferRef buf = NULL;
    bool ok = !LLVMTargetMachineEmitToMemoryBuffer(tm, m->mod, LLVMAssemblyFile, &msg, &buf);
    if (ok) {
        fwrite(LLVMGetBufferStart(buf), 1, LLVMGetBufferSize(buf), out);
        LLVMDisposeMemoryBuffer(buf);
    } else {
        snprintf(err, errlen, "emitting assembly: %s", msg);
        LLVMDisposeMessage(msg);
    }
    LLVMDisposeTargetMachine(tm);
    return ok;
}

Jit *jit_compile(CgModule *m, char *err, size_t errlen) {
    Jit *j = NULL;
    LLVMOrcLLJITRef lljit = NULL;
    if (!optimise(m->mod, err, errlen))
        goto fail;
    LLVMTargetMachineRef tm = host_machine(err, errlen);
    if (!tm)
        goto fail;
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    /* The JTMB takes tm; the builder takes the JTMB; CreateLLJIT takes the
     * builder, even when it fails. */
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    if (!take_error(LLVMOrcCreateLLJIT(&lljit, builder), "creating the JIT", err, errlen))
        goto fail;
    if (!define_runtime_symbols(lljit, err, errlen))
        goto fail;
    /* The thread-safe module takes the module; it shares the context. */
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m->mod, m->tsctx);
    m->mod = NULL;
    LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModule(lljit, LLVMOrcLLJITGetMainJITDylib(lljit), tsm);
    if (e) {
        LLVMOrcDisposeThreadSafeModule(tsm); /* only taken on success */
        take_error(e, "adding the module", err, errlen);
        goto fail;
    }
    j = xrealloc(NULL, 1, sizeof *j);
    j->lljit = lljit;
    lljit = NULL;
fail:
    if (lljit)
        take_error(LLVMOrcDisposeLLJIT(lljit), "disposing the JIT", err, errlen);
    if (m->mod)
        LLVMDisposeModule(m->mod);
    LLVMOrcDisposeThreadSafeContext(m->tsctx); /* modules keep the context alive */
    free(m);
    return j;
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
    if (!take_error(LLVMOrcDisposeLLJIT(j->lljit), "disposing the JIT", err, sizeof err))
        die("%s", err);
    free(j);
}
