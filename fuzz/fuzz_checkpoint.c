/* fuzz_checkpoint.c — libFuzzer target: a checkpoint file through fit_load,
 * the way --load and then --resume read it: the safetensors reader
 * (runtime/checkpoint.c: header length, JSON, fields, offsets), the check of
 * every tensor against the slots of a small fixed model, and, for --resume,
 * the training state in the metadata (format, position, RNG, fingerprint,
 * batch and sample count, history).
 *
 * The input is the whole file. It is written to one memfd per process and
 * read back through /proc/self/fd, because the loader takes a path and is
 * tested through it, open and fstat included. The model is built once: it
 * is fixed, and building it per input would cost more than the loading.
 * The seeds in fuzz/corpus/checkpoint were saved by `nnc --save` from
 * exactly MODEL_TEXT trained on SAMPLES samples (fuzz/README.md), so the
 * fingerprint and sample count match and resuming them succeeds.
 *
 * The oracle beyond the sanitizers: a file is accepted with no error
 * printed, or rejected with at least one — never silently either way.
 */
#ifndef _GNU_SOURCE /* memfd_create; LLVM's flags may define it already */
#define _GNU_SOURCE
#endif
#include "nnc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char MODEL_TEXT[] = "model tiny {\n"
                                 "    input  x[2, 2]\n"
                                 "    flatten\n"
                                 "    dense  2, softmax\n"
                                 "    loss   crossentropy\n"
                                 "    optimizer sgd(lr = 0.1, momentum = 0.9)\n"
                                 "    train  epochs = 1, batch = 4\n"
                                 "}\n";
enum { SAMPLES = 8 };

/* What every input is loaded against; built on the first input. */
typedef struct Fixture {
    Arena *arena;
    const Graph *graph;
    FitWeights weights;
    FitInfo info;
    FILE *devnull; /* diagnostics: printing them is tested, reading them is not */
    int fd;
    char path[64];
} Fixture;

static void fixture_init(Fixture *f) {
    Diag d;
    diag_init(&d, stderr);
    f->arena = arena_new();
    Source *src = arena_alloc(f->arena, sizeof *src);
    *src = (Source){.path = "tiny.nn", .text = MODEL_TEXT, .len = sizeof MODEL_TEXT - 1};
    AstProgram *ast = parse_program(f->arena, &d, src);
    Model *m = ast && ast->nmodels == 1 ? sema_model(f->arena, &d, &ast->models[0]) : NULL;
    if (!m)
        die("fuzz_checkpoint: the fixed model does not compile");
    Graph *g = step_graph(f->arena, m, STEP_TRAIN, m->batch, DT_F32, INPUT_FLOAT);
    f->graph = g;
    f->weights = fit_weights_new(g); /* what fit_load fills: the saved slots */
    f->info = (FitInfo){.model_name = m->name, .model_hash = fit_model_hash(src), .seed = 1,
                        .batch = (size_t)m->batch, .samples = SAMPLES};
    if (!(f->devnull = fopen("/dev/null", "w")))
        die("fuzz_checkpoint: cannot open /dev/null");
    if ((f->fd = memfd_create("fuzz_checkpoint", 0)) < 0)
        die("fuzz_checkpoint: memfd_create failed");
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* The file's content becomes exactly data[0..size). */
static void rewrite(int fd, const uint8_t *data, size_t size) {
    if (ftruncate(fd, 0) != 0)
        die("fuzz_checkpoint: ftruncate failed");
    for (size_t at = 0; at < size;) {
        ssize_t w = pwrite(fd, data + at, size - at, (off_t)at);
        if (w <= 0)
            die("fuzz_checkpoint: write failed");
        at += (size_t)w;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static Fixture f;
    if (!f.arena)
        fixture_init(&f);
    rewrite(f.fd, data, size);
    for (int resume = 0; resume <= 1; resume++) {
        Diag d;
        diag_init(&d, f.devnull);
        FitInfo info = f.info;
        info.resume = resume;
        FitState st;
        fit_state_init(&st, info.seed);
        bool ok = fit_load(&d, f.path, f.graph, f.weights.slots, &info, &st);
        if (ok != (d.errors == 0))
            die("fuzz_checkpoint: fit_load %s with %d errors reported",
                ok ? "accepted the file" : "rejected the file", d.errors);
        fit_state_free(&st);
    }
    return 0;
}
