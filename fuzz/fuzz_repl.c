/* fuzz_repl.c — libFuzzer target: REPL entries, one per line of the input,
 * into one session, so later entries see (and redefine) what earlier ones
 * defined: statements and commands are parsed, checked, lowered,
 * differentiated, JIT-compiled and run; model blocks (on one line, with
 * ';') are checked and kept.
 *
 * The session has no driver: no training, and no file is read or written
 * (:load of /dev/zero would be a hang of the fuzzer's making, not nnc's).
 * Every entry is compiled by LLVM (milliseconds each), so only the first
 * MAX_ENTRIES lines count: depth of state matters more than length.
 * Output and diagnostics go to /dev/null.
 */
#include "nnc.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { MAX_ENTRIES = 8 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *devnull;
    static Target *target; /* made once, as the driver does */
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        die("cannot open /dev/null");
    if (!target)
        target = target_host();
    Diag d;
    diag_init(&d, devnull);
    Repl *r = repl_new(&d, devnull, NULL, target);
    const char *s = (const char *)data, *end = s + size;
    for (int n = 0; s < end && n < MAX_ENTRIES && !repl_done(r); n++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *stop = nl ? nl + 1 : end;
        repl_eval(r, "fuzz", s, (size_t)(stop - s));
        s = stop;
    }
    repl_free(r);
    return 0;
}
