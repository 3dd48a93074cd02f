/* test_jit.c — JIT hygiene: no memory is ever writable and executable at
 * once, and compiling, running and freeing a model 1,000 times leaks
 * nothing.
 *
 * W^X is checked two ways. This program defines mmap and mprotect itself
 * (passing them to the kernel by syscall); libLLVM calls them through its
 * PLT, so every protection LLVM's memory manager ever asks for is seen,
 * including a writable+executable one that lasted only between two calls.
 * And /proc/self/maps is read after each stage — compile, first lookup
 * (which runs the code generator and finalizes memory), a call of the
 * generated code — in case memory got its protection another way. The test
 * also checks that the hook saw executable memory being made at all, so it
 * cannot pass by watching the wrong calls.
 *
 * A failed lookup checks one LLVM error path: its message reaches us and
 * its error object is freed.
 *
 * Leaks: the heap in use after the last compilation must be no larger than
 * after the 10th, give or take LLVM's caches (this also catches memory that
 * is still reachable, say in a registry that grows per compilation), and in
 * the sanitizer build LeakSanitizer checks at exit. ctest runs 100
 * compilations in the plain build and 1,000 in the sanitizer build (each
 * takes a few hundred ms at O3, so 1,000 would make the plain suite minutes
 * longer for every edit).
 */

#include "nnc.h"
#include "check.h"
#include "nnrt.h"

#include <malloc.h>
#include <math.h>
#ifdef __SANITIZE_ADDRESS__ /* gcc */
#define NNC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define NNC_ASAN 1
#endif
#endif
#ifdef NNC_ASAN
/* From <sanitizer/allocator_interface.h>, which gcc does not install. */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Compilations in the leak check, unless argv[1] says otherwise. */
#define COMPILATIONS 1000
/* Heap growth from compilation 10 to 1,000 that is still not a leak: a
 * leak of even 1 KiB per compilation would be 990 KiB. */
#define HEAP_SLACK ((size_t)256 << 10)


/* Bytes of heap in use; ASan's allocator replaces glibc's, whose mallinfo2
 * then reports nothing. */
static size_t heap_in_use(void) {
#ifdef NNC_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/* ---------------------------------------------------------------- the hooks */

static volatile int wx_requests, exec_requests;

static void note_prot(int prot) {
    if ((prot & PROT_WRITE) && (prot & PROT_EXEC))
        wx_requests++;
    if (prot & PROT_EXEC)
        exec_requests++;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    note_prot(prot);
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap(addr, len, prot, flags, fd, off);
}

int mprotect(void *addr, size_t len, int prot) {
    note_prot(prot);
    return (int)syscall(SYS_mprotect, addr, len, prot);
}

/* Mappings whose permissions start "rwx" right now. */
static int wx_mappings(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) {
        perror("/proc/self/maps");
        exit(1);
    }
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[5];
        if (sscanf(line, "%*s %4s", perms) == 1 && perms[1] == 'w' && perms[2] == 'x') {
            printf("writable and executable: %s", line);
            n++;
        }
    }
    fclose(f);
    return n;
}

/* ------------------------------------------------------- library calls */

/* Every library function LLVM 14 may emit a call to in code for x86-64
 * Linux, in either precision: the floating-point libcalls of
 * llvm/IR/RuntimeLibcalls.def (an intrinsic or an instruction without a
 * native instruction: frem is fmod, llvm.powi __powisf2, llvm.floor floorf
 * without SSE4.1, llvm.fma fmaf without FMA, ...), what instcombine's
 * SimplifyLibCalls turns calls into (sin and cos of one value become
 * sincosf, pow(10, x) exp10f, exp2(int) ldexpf), and what loop idioms
 * become (memset, memcpy, memmove). Left out: soft-float arithmetic and
 * conversions (x86-64 has SSE2; nnc has no half, i128 or fp128 values),
 * the __*_finite variants (emitted only under no-infs/no-nans fast-math,
 * which nnc never sets, and no longer linkable in glibc), and Darwin's
 * __sincospif_stret. */
static const char *const library_calls[] = {
    "sinf", "sin", "cosf", "cos", "sincosf", "sincos", "tanhf", "tanh", "expf", "exp", "exp2f", "exp2",
    "exp10f", "exp10", "logf", "log", "log2f", "log2", "log10f", "log10", "powf", "pow", "__powisf2",
    "__powidf2", "sqrtf", "sqrt", "cbrtf", "cbrt", "fmaf", "fma", "fmodf", "fmod", "ldexpf", "ldexp",
    "ceilf", "ceil", "floorf", "floor", "truncf", "trunc", "rintf", "rint", "nearbyintf", "nearbyint",
    "roundf", "round", "roundevenf", "roundeven", "copysignf", "copysign", "fminf", "fmin", "fmaxf",
    "fmax", "lroundf", "lround", "llroundf", "llround", "lrintf", "lrint", "llrintf", "llrint", "memset",
    "memcpy", "memmove",
};

/* The JIT resolves each of them, and to the function itself: sincosf,
 * which a table once lacked, is called through the address found. */
static void check_library_calls(void) {
    char err[1024];
    Target *t = target_host();
    Jit *j = jit_new(t, err, sizeof err);
    target_free(t);
    if (!CHECK(j != NULL)) {
        printf("jit_new: %s\n", err);
        return;
    }
    for (size_t i = 0; i < sizeof library_calls / sizeof library_calls[0]; i++)
        if (!CHECK(jit_lookup(j, library_calls[i], err, sizeof err) != NULL))
            printf("  %s: %s\n", library_calls[i], err);
    void (*sc)(float, float *, float *) = (void (*)(float, float *, float *))jit_lookup(j, "sincosf", err, sizeof err);
    if (CHECK(sc != NULL)) {
        volatile float x = 0.5f; /* libm's values, not the compiler's folding */
        float s = 0, c = 0;
        sc(x, &s, &c);
        CHECK(s == sinf(x) && c == cosf(x));
    }
    jit_free(j);
}

/* ---------------------------------------------------------------- a model */

static const char model_text[] =
    "model tiny {\n"
    "    input x[3]\n"
    "    dense 4, relu\n"
    "    dense 2, softmax\n"
    "    loss crossentropy\n"
    "    optimizer sgd(lr = 0.1, momentum = 0.9)\n"
    "    train epochs = 1, batch = 4\n"
    "}\n";

/* Compiles the model's training step, runs it once on zeros and frees it
 * all; check_maps adds a /proc/self/maps check after each stage. False on
 * any error (printed). */
static bool compile_and_run(bool check_maps) {
    Diag d;
    diag_init(&d, stdout);
    Arena *a = arena_new();
    Source src = {.path = "tiny.nn", .text = model_text, .len = sizeof model_text - 1};
    AstProgram *ast = parse_program(a, &d, &src);
    Model *m = ast && ast->nmodels == 1 ? sema_model(a, &d, &ast->models[0]) : NULL;
    if (!m) {
        arena_free(a);
        return false;
    }
    Graph *g = step_graph(a, m, STEP_TRAIN, m->batch, DT_F32, INPUT_FLOAT);
    Target *t = target_host();
    Schedule *plan = schedule(a, g, 2, t);
    CgModule *mod = cg_module_new(m->name);
    cg_add_step(mod, "train_step", g, plan);
    char err[1024];
    Jit *j = jit_compile(mod, t, err, sizeof err); /* takes mod */
    target_free(t);
    if (!j) {
        printf("jit_compile: %s\n", err);
        arena_free(a);
        return false;
    }
    if (check_maps)
        CHECK(wx_mappings() == 0);
    if (check_maps) {
        /* An LLVM error path: the lookup fails with LLVM's message, and the
         * error object is consumed (else LeakSanitizer reports it). */
        err[0] = '\0';
        CHECK(jit_lookup(j, "no_such_step", err, sizeof err) == NULL);
        CHECK(strstr(err, "no_such_step") != NULL);
    }
    NnrtStepFn fn = (NnrtStepFn)jit_lookup(j, "train_step", err, sizeof err);
    CHECK(fn != NULL);
    if (check_maps)
        CHECK(wx_mappings() == 0);
    if (fn) {
        /* Zeroed buffers of the sizes the graph's slots declare. */
        void **slots = calloc((size_t)g->nslots, sizeof *slots);
        for (int s = 0; s < g->nslots; s++) {
            size_t bytes = s == SLOT_NO_ARENA ? plan->arena_bytes
                                              : (size_t)shape_elems(&g->slots[s].shape) * sizeof(float);
            slots[s] = aligned_alloc(64, (bytes + 64) / 64 * 64);
            memset(slots[s], 0, (bytes + 64) / 64 * 64);
        }
        fn(slots, g->batch);
        if (check_maps)
            CHECK(wx_mappings() == 0);
        for (int s = 0; s < g->nslots; s++)
            free(slots[s]);
        free(slots);
    }
    jit_free(j);
    arena_free(a);
    return fn != NULL;
}

int main(int argc, char **argv) {
    int compilations = argc > 1 ? atoi(argv[1]) : COMPILATIONS;
    if (compilations < 11) {
        fprintf(stderr, "usage: test_jit [COMPILATIONS >= 11]\n");
        return 2;
    }
    /* One thread: with two, the worker's allocator warms up at some point in
     * the first few hundred compilations and the heap then stays flat (about
     * 1.08 MB here after 300 and after 3,000), which would blur the 10th
     * compilation's baseline. LeakSanitizer, in the sanitizer build, sees
     * leaks on every thread. */
    nnrt_set_threads(1);
    check_library_calls();
    CHECK(compile_and_run(true));
    /* The hook must have seen the JIT make its code executable. */
    CHECK(exec_requests > 0);
    size_t heap_at_10 = 0;
    for (int i = 1; i < compilations; i++) {
        if (!compile_and_run(false)) {
            CHECK(!"compilation failed");
            break;
        }
        if (i == 10)
            heap_at_10 = heap_in_use();
    }
    size_t heap_at_end = heap_in_use();
    printf("heap in use: %zu bytes after 10 compilations, %zu after %d\n", heap_at_10, heap_at_end,
           compilations);
    CHECK(heap_at_10 > 0);
    CHECK(heap_at_end <= heap_at_10 + HEAP_SLACK);
    CHECK(wx_requests == 0);
    CHECK(wx_mappings() == 0);
    printf("%d checks passed, %d failed; %d executable mappings requested, %d writable+executable\n",
           passed, failed, exec_requests, wx_requests);
    return failed > 0;
}
