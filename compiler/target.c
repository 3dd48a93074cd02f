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
 * --march names another target (objects ahead of time run elsewhere):
 * an x86-64 level, whose features are spelled out below, or a CPU name
 * LLVM knows, whose features LLVM derives but its C API does not tell, so
 * its kernels are tiled for 128-bit vectors unless NNC_TARGET_FEATURES
 * says more ("+avx512f").
 *
 * The environment, read here only:
 *   NNC_TARGET_FEATURES  appended to the target's features ("-avx512f" tests
 *                        the AVX2 path on an AVX-512 machine)
 *   NNC_KC=N             packed matmul operands in blocks of N rows of K
 *                        (tests cover the blocked path with small models)
 *   NNC_PANELS=0         every weight row-major (to compare against)
 */
#include "nnc.h"

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <llvm/Config/llvm-config.h> /* LLVM_VERSION_MAJOR */
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

/* The x86-64 micro-architecture levels of the psABI, by their features:
 * LLVM takes a level as a CPU name and derives these itself, but the
 * kernels' tiles are chosen from the feature string (vector_bits), so it
 * spells them out. */
#define LEVEL1 "+cx8,+fxsr,+mmx,+sse,+sse2"
#define LEVEL2 LEVEL1 ",+cx16,+popcnt,+sahf,+sse3,+sse4.1,+sse4.2,+ssse3"
#define LEVEL3 LEVEL2 ",+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+xsave"
#define LEVEL4 LEVEL3 ",+avx512bw,+avx512cd,+avx512dq,+avx512f,+avx512vl"
static const struct {
    const char *name, *features;
} levels[] = {{"x86-64", LEVEL1}, {"x86-64-v2", LEVEL2}, {"x86-64-v3", LEVEL3}, {"x86-64-v4", LEVEL4}};

/* Data-parallel training's bucket cap. An all-reduce of b bytes over N
 * ranks on a ring costs 2(N-1) latencies a plus 2(N-1)/N b / bandwidth: up
 * to about a x bandwidth bytes (25 us x 10 Gbit/s: 31 KB; 5 us x 100
 * Gbit/s: 62 KB) it is mostly latency, so the biases and small layers
 * gain by going together, while a large gradient should start alone as
 * soon as it is computed, to overlap the rest of the backward pass.
 * DDP's 25 MB is a quarter of ResNet-50's gradients; these models have 0.9
 * (CNN) to 1.6 MB (MLP): 128 KiB coalesces every bias with the small
 * layers (the CNN's convolutions and last layer, the MLP's last layer)
 * and leaves each large weight matrix (0.8 and 1.6 MB) its own bucket. */
enum { BUCKET_BYTES = 128 << 10 };

/* The tuning knobs and NNC_TARGET_FEATURES over a CPU and its features. */
static Target *target_new(char *cpu, const char *features) {
    Target *t = xcalloc(1, sizeof *t);
    t->cpu = cpu;
    const char *env = getenv("NNC_TARGET_FEATURES");
    if (env && *env) {
        /* Appended after the CPU's: a later "-avx512f" overrides an earlier "+avx512f". */
        size_t n = strlen(features) + strlen(env) + 2;
        t->features = xrealloc(NULL, n, 1);
        snprintf(t->features, n, "%s,%s", features, env);
    } else {
        t->features = xstrdup(features);
    }
    t->vector_bits = feature_on(t->features, "avx512f") ? 512 : feature_on(t->features, "avx") ? 256 : 128;
    const char *kc = getenv("NNC_KC");
    t->kc = kc && atoll(kc) > 0 ? atoll(kc) : 0;
    const char *panels = getenv("NNC_PANELS");
    t->panels = !(panels && !strcmp(panels, "0"));
    const char *bucket = getenv("NNC_BUCKET");
    t->bucket = bucket && *bucket && atoll(bucket) >= 0 ? (size_t)atoll(bucket) : BUCKET_BYTES;
    return t;
}

Target *target_host(void) {
    char *features = taken(LLVMGetHostCPUFeatures());
    Target *t = target_new(taken(LLVMGetHostCPUName()), features);
    free(features);
    return t;
}

/* The x86 CPU names LLVM knows (llc -mcpu=help: 14's, and 19's newer
 * ones), the levels and "native" first: LLVM takes any other name with a
 * warning on standard error and compiles for a generic CPU, so nnc
 * refuses it instead. */
static const char *const cpu_names[] = {
    "native", "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", "alderlake", "amdfam10", "athlon", "athlon-4",
    "athlon-fx", "athlon-mp", "athlon-tbird", "athlon-xp", "athlon64", "athlon64-sse3", "atom", "barcelona",
    "bdver1", "bdver2", "bdver3", "bdver4", "bonnell", "broadwell", "btver1", "btver2", "c3", "c3-2",
    "cannonlake", "cascadelake", "cooperlake", "core-avx-i", "core-avx2", "core2", "corei7", "corei7-avx",
    "generic", "geode", "goldmont", "goldmont-plus", "haswell", "i386", "i486", "i586", "i686",
    "icelake-client", "icelake-server", "ivybridge", "k6", "k6-2", "k6-3", "k8", "k8-sse3", "knl", "knm",
    "lakemont", "nehalem", "nocona", "opteron", "opteron-sse3", "penryn", "pentium", "pentium-m",
    "pentium-mmx", "pentium2", "pentium3", "pentium3m", "pentium4", "pentium4m", "pentiumpro", "prescott",
    "rocketlake", "sandybridge", "sapphirerapids", "silvermont", "skx", "skylake", "skylake-avx512", "slm",
    "tigerlake", "tremont", "westmere", "winchip-c6", "winchip2", "yonah", "znver1", "znver2", "znver3",
#if LLVM_VERSION_MAJOR >= 19
    "arrowlake", "arrowlake-s", "clearwaterforest", "emeraldrapids", "gracemont", "grandridge", "graniterapids",
    "graniterapids-d", "lunarlake", "meteorlake", "pantherlake", "raptorlake", "sierraforest", "znver4", "znver5",
#endif
    NULL};

Target *target_named(const char *name) {
    if (!strcmp(name, "native"))
        return target_host();
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (!strcmp(name, levels[i].name))
            return target_new(xstrdup(name), levels[i].features);
    for (int i = 0; cpu_names[i]; i++)
        if (!strcmp(name, cpu_names[i])) /* LLVM derives its features from the name */
            return target_new(xstrdup(name), "");
    return NULL;
}

const char *target_closest(const char *name) { return closest_name(name, cpu_names); }

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
