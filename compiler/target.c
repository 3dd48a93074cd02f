/* target.c — the machine code is generated for, chosen once.
 *
 * The driver builds one Target (target_host) and passes it down: the
 * scheduler and the matmul kernel tile for its vector width, layout.c keeps
 * weights in panels unless it says not to, the guard scans at its width and
 * the JIT makes its target machine from its CPU name and features. Nothing
 * below the driver reads these variables or asks LLVM about the host.
 *
 * The CPU's features go with its name: LLVM 14 calls recent CPUs "generic",
 * and without the features it would not use FMA or AVX-512 at all.
 *
 * The environment, read here only:
 *   NNC_TARGET_FEATURES  appended to the host's features ("-avx512f" tests
 *                        the AVX2 path on an AVX-512 machine)
 *   NNC_KC=N             packed matmul operands in blocks of N rows of K
 *                        (tests cover the blocked path with small models)
 *   NNC_PANELS=0         every weight row-major (to compare against)
 */
#include "nnc.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdlib.h>
#include <string.h>

/* Is feature f ("avx512f") on in a feature string? The last mention wins,
 * as in LLVM, so "+avx512f,...,-avx512f" is off. */
static bool feature_on(const char *feats, const char *f) {
    bool on = false;
    size_t n = strlen(f);
    for (const char *p = feats; (p = strstr(p, f)); p += n)
        if (p > feats && (p[-1] == '+' || p[-1] == '-') && (p[n] == ',' || p[n] == 0))
            on = p[-1] == '+';
    return on;
}

/* An LLVM message as our own string. */
static char *taken(char *msg) {
    char *s = xstrdup(msg);
    LLVMDisposeMessage(msg);
    return s;
}

Target *target_host(void) {
    Target *t = xcalloc(1, sizeof *t);
    t->cpu = taken(LLVMGetHostCPUName());
    t->features = taken(LLVMGetHostCPUFeatures());
    const char *env = getenv("NNC_TARGET_FEATURES");
    if (env && *env) {
        /* Appended after the host's: a later "-avx512f" overrides an earlier "+avx512f". */
        size_t n = strlen(t->features) + strlen(env) + 2;
        char *s = xrealloc(NULL, n, 1);
        snprintf(s, n, "%s,%s", t->features, env);
        free(t->features);
        t->features = s;
    }
    t->vector_bits = feature_on(t->features, "avx512f") ? 512 : feature_on(t->features, "avx") ? 256 : 128;
    const char *kc = getenv("NNC_KC");
    t->kc = kc && atoll(kc) > 0 ? atoll(kc) : 0;
    const char *panels = getenv("NNC_PANELS");
    t->panels = !(panels && !strcmp(panels, "0"));
    return t;
}

void target_free(Target *t) {
    if (!t)
        return;
    free(t->cpu);
    free(t->features);
    free(t);
}

void target_describe(const Target *t, char *buf, size_t n) {
    /* Only the vector features matter to a reader. */
    snprintf(buf, n, "%s%s%s%s", t->cpu, feature_on(t->features, "avx512f") ? " avx512f" : "",
             feature_on(t->features, "avx2") ? " avx2" : "", feature_on(t->features, "fma") ? " fma" : "");
}
