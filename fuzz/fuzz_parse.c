/* fuzz_parse.c — libFuzzer target: a model file through the lexer, the
 * parser, the checker and, for a model that passes, the lowering to the
 * training step's graph and its buffer plan (everything before LLVM).
 *
 * The input is the whole file, NUL bytes and all, exactly as source_read
 * would hand it over. Diagnostics go to /dev/null: printing them is part of
 * what is tested (the caret line, clipping of long or binary text), reading
 * them is not. LLVM code generation is left out: it takes milliseconds per
 * input where everything else takes microseconds, and its input is the graph
 * this target already checks.
 */
#include "nnc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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
    Arena *a = arena_new();
    /* source_read's layout: a copy in the arena, NUL-terminated. */
    Source src = {.path = "fuzz.nn", .text = arena_strndup(a, (const char *)data, size), .len = size};
    AstProgram *ast = parse_program(a, &d, &src);
    for (int i = 0; ast && i < ast->nmodels; i++) {
        Model *m = sema_model(a, &d, &ast->models[i]);
        if (!m)
            continue;
        Graph *g = step_graph(a, m, STEP_TRAIN, m->batch, DT_F32, INPUT_FLOAT);
        schedule(a, g, 2, target);
    }
    arena_free(a);
    return 0;
}
