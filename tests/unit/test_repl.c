/* test_repl.c — a long REPL session leaks nothing and stays small: 1,000
 * redefinitions of a variable and of a value defined from it, each followed
 * by a derivative that is compiled and run (three entries a round, every one
 * its own LLVM module under its own resource tracker).
 *
 * The answers are checked every round (the last line printed). Memory: the
 * heap in use (mallinfo2, which sees LLVM's allocations too) and the
 * resident set may not grow by 5 MB between round 100 and the end; in the
 * sanitizer build, where ASan's quarantine holds freed memory back, the
 * growth is not measured and LeakSanitizer checks at exit instead.
 * The time per entry is printed (the median), never asserted. Then 2,000
 * names are defined, each in an entry of its own: the heap per name is
 * checked (under 4 KB).
 */
#include "nnc.h"
#include "check.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    Diag d;
    diag_init(&d, stderr);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    Target *t = target_host();
    Repl *r = repl_new(&d, out, NULL, t);
    CHECK(repl_eval(r, "<test>", "let b = 2\n", 10));
    double *secs = xcalloc((size_t)rounds, sizeof *secs);
    size_t heap_at = 0, rss_at = 0;
    char entry[128];
    for (int i = 0; i < rounds + 100; i++) {
        if (i == 100) {
            heap_at = mallinfo2().uordblks;
            rss_at = rss_bytes();
        }
        snprintf(entry, sizeof entry, "let a = %d\n", i);
        bool ok = repl_eval(r, "<test>", entry, strlen(entry));
        snprintf(entry, sizeof entry, "L = (a + b)^2 + %d * a\n", i % 7);
        ok &= repl_eval(r, "<test>", entry, strlen(entry));
        fflush(out);
        size_t before = len;
        double t0 = nnrt_now();
        ok &= repl_eval(r, "<test>", "grad(L, a)\n", 11);
        if (i >= 100)
            secs[i - 100] = nnrt_now() - t0;
        /* dL/da = 2 (a + b) + k */
        fflush(out);
        char want[64];
        snprintf(want, sizeof want, "= %d\n", 2 * (i + 2) + i % 7);
        if (!CHECK(ok && len - before >= strlen(want) && strcmp(text + len - strlen(want), want) == 0)) {
            printf("round %d: expected a line ending in '%s', found: %s\n", i, want, text + before);
            break;
        }
    }
    qsort(secs, (size_t)rounds, sizeof *secs, by_value);
    printf("%d rounds: median %.1f ms per compiled entry (grad), max %.1f ms\n", rounds, secs[rounds / 2] * 1e3,
           secs[rounds - 1] * 1e3);
#ifndef SANITIZED
    size_t heap = mallinfo2().uordblks, rss = rss_bytes();
    printf("heap in use %+.2f MB, resident %+.2f MB from round 100 to %d\n",
           ((double)heap - (double)heap_at) / 1e6, ((double)rss - (double)rss_at) / 1e6, rounds + 100);
    CHECK(heap < heap_at + 5000000);
    CHECK(rss < rss_at + 5000000);
#else
    (void)heap_at, (void)rss_at;
#endif
    /* A name costs what it needs: each entry's text and AST are kept as long
     * as its definitions (an arena each), a few hundred bytes for these, not
     * the arena's 64 KB chunk (4,000 names took 308 MB). */
    enum { NAMES = 2000 };
    size_t heap_names = mallinfo2().uordblks;
    bool defined = true;
    for (int i = 0; i < NAMES; i++) {
        snprintf(entry, sizeof entry, "let v%d = %d\n", i, i);
        defined &= repl_eval(r, "<test>", entry, strlen(entry));
    }
    CHECK(defined);
#ifndef SANITIZED
    size_t per_name = (mallinfo2().uordblks - heap_names) / NAMES;
    printf("%zu bytes of heap per name defined\n", per_name);
    CHECK(per_name < 4096);
#else
    (void)heap_names;
#endif
    repl_free(r);
    target_free(t);
    fclose(out);
    free(text);
    free(secs);
    return check_summary();
}
