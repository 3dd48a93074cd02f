/* fuzz_checkpoint.c — libFuzzer target: a checkpoint file through fit_load,
 * the way --load and then --resume read it: the safetensors reader
 * (runtime/checkpoint.c: header length, JSON, fields, offsets), the check of
 * every tensor against the slots of a small fixed model, and, for --resume,
 * the training state in the metadata (format, position, RNG, fingerprint,
 * batch and sample count, history); with --load, the class and target
 * names --eval and --predict take from it.
 *
 * A checkpoint that resumes is then resumed, as the driver's session does:
 * nnrt_train from the loaded position (its RNG shuffles, its step and sums
 * continue the epoch) to the end of the next epoch, with fit_after_step
 * appending to the loaded history, deciding the best epoch, and writing the
 * CSV log, the SVG plot and the checkpoint from that history. The step
 * functions are stand-ins (no model is compiled per input, and none needs
 * to be: the metadata is what is under test); the loss they report is the
 * loaded dense1.W[0], so the new epoch's loss is the input's too.
 *
 * The input is the whole file, in a memfd (fuzz_files.h). The model is built
 * once: it is fixed, and building it per input would cost more than the
 * loading. The seeds in fuzz/corpus/checkpoint were saved by `nnc --save`
 * from exactly MODEL_TEXT trained on SAMPLES samples (fuzz/README.md), so the
 * fingerprint and sample count match and resuming them succeeds.
 *
 * The oracles beyond the sanitizers: a file is accepted with no error
 * printed, or rejected with at least one, never silently either way; a
 * resumed epoch that trains writes a checkpoint that loads back, at the
 * position it was saved at and with one more epoch of history; an input
 * leaves no file open.
 */
#ifndef _GNU_SOURCE /* memfd_create, nftw (fuzz_files.h); LLVM's flags may define it already */
#define _GNU_SOURCE
#endif
#include "nnc.h"
#include "fuzz_files.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
/* The most epochs a run may have (--epochs and `train epochs =`; sema.c). */
enum { MAX_EPOCHS = 1000000 };

/* What every input is loaded against; built on the first input. */
typedef struct Fixture {
    Arena *arena;
    const Model *model;
    const Graph *graph;
    FitWeights weights;
    FitInfo info;
    NnrtDataset train; /* SAMPLES samples for the resumed epoch */
    FILE *devnull;     /* diagnostics: printing them is tested, reading them is not */
    int fd;
    char path[64];
    char save_path[512], log_path[512], plot_path[512];
} Fixture;

/* The slot of dense1.W, whose first element the stand-in step reports as the loss. */
static int loss_slot = -1;

/* The stand-in for the compiled training and evaluation steps: the loss is
 * dense1.W[0] as loaded, the outputs each sample's first two inputs (so the
 * accuracy is counted too). Slots 1, 3 and 4 are the trainer's x, loss and
 * output buffers. */
static void stand_in_step(void **slots, int64_t n) {
    const float *x = slots[1], *w = slots[loss_slot];
    float *loss = slots[3], *out = slots[4];
    *loss = w[0];
    for (int64_t i = 0; i < n; i++) {
        out[2 * i] = x[4 * i];
        out[2 * i + 1] = x[4 * i + 1];
    }
}

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
    f->model = m;
    f->graph = g;
    f->weights = fit_weights_new(g); /* what fit_load fills: the saved slots */
    for (int s = 0; s < g->nslots; s++)
        if (g->slots[s].name && !strcmp(g->slots[s].name, "dense1.W"))
            loss_slot = s;
    if (loss_slot < 0)
        die("fuzz_checkpoint: the fixed model has no dense1.W");
    f->info = (FitInfo){.model_name = m->name, .model_hash = fit_model_hash(src), .seed = 1,
                        .batch = (size_t)m->batch, .samples = SAMPLES};
    double x[SAMPLES * 4], y[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        for (int j = 0; j < 4; j++)
            x[4 * i + j] = (i + j) % 3;
        y[i] = i % 2;
    }
    char err[256];
    if (!nnrt_dataset_from_memory(SAMPLES, x, 4, y, 1, &f->train, err, sizeof err))
        die("fuzz_checkpoint: %s", err);
    if (!(f->devnull = fopen("/dev/null", "w")))
        die("fuzz_checkpoint: cannot open /dev/null");
    f->fd = fuzz_memfd("fuzz_checkpoint", f->path, sizeof f->path);
    fuzz_path(f->save_path, sizeof f->save_path, "resumed.safetensors");
    fuzz_path(f->log_path, sizeof f->log_path, "run.csv");
    fuzz_path(f->plot_path, sizeof f->plot_path, "curves.svg");
}

/* The checkpoint saved after the resumed epoch loads back, where it was saved. */
static void check_saved(const Fixture *f, const FitState *saved) {
    Diag d;
    diag_init(&d, stderr);
    FitInfo info = f->info;
    info.resume = true;
    FitState back;
    fit_state_init(&back, info.seed);
    FitCkpt k = {.path = f->save_path};
    if (!fit_load(&d, &k, f->graph, f->weights.slots, &info, &back))
        die("fuzz_checkpoint: the checkpoint saved after resuming does not load back");
    fit_ckpt_free(&k);
    if (back.pos.epoch != saved->pos.epoch || back.pos.step != saved->pos.step ||
        memcmp(&back.pos.rng, &saved->pos.rng, sizeof back.pos.rng) != 0 ||
        back.nhistory != saved->nhistory || back.best_epoch != saved->best_epoch ||
        back.bad_epochs != saved->bad_epochs)
        die("fuzz_checkpoint: the checkpoint saved after resuming loads back as another state "
            "(epoch %d step %zu history %d, saved epoch %d step %zu history %d)", back.pos.epoch,
            back.pos.step, back.nhistory, saved->pos.epoch, saved->pos.step, saved->nhistory);
    fit_state_free(&back);
}

/* Resumes the loaded run as the driver's session does, to the end of its
 * next epoch (as `--resume FILE --epochs E+1` would; a run has at most
 * MAX_EPOCHS, so from there on nothing trains), the hook writing the log,
 * the plot and the checkpoint after it. Takes *st's history. `monitor`
 * varies the early-stopping state's path. */
static void resume(Fixture *f, FitState *st, FitMonitor monitor) {
    Diag d;
    diag_init(&d, f->devnull);
    FitHook h = {
        .diag = &d, .out = f->devnull, .arena = f->arena, .model = f->model, .graph = f->graph,
        .slots = f->weights.slots, .info = f->info, .st = *st,
        .save_path = f->save_path, .log_path = f->log_path, .plot_path = f->plot_path,
        .monitor = monitor, .saved_epoch = -1,
    };
    h.info.resume = true;
    h.info.patience = 2;
    *st = (FitState){0};
    NnrtTrainSpec spec = {
        .dtype_bytes = 4, .outputs = 2, .classify = true,
        .train = {stand_in_step, f->info.batch}, .eval = {stand_in_step, f->info.batch},
        .slots = f->weights.slots, .nslots = (size_t)f->graph->nslots, .arena_bytes = 64,
        .epochs = h.st.pos.epoch < MAX_EPOCHS ? h.st.pos.epoch + 1 : MAX_EPOCHS,
        .seed = f->info.seed, .out = f->devnull, .resume = &h.st.pos,
        .ctx = &h, .after_step = fit_after_step,
    };
    NnrtTrainResult res;
    char err[1024];
    bool trained = nnrt_train(&spec, &f->train, NULL, &res, err, sizeof err);
    if (!trained && res.failure == NNRT_FAIL_HOOK)
        die("fuzz_checkpoint: writing after the resumed epoch failed: %s", err);
    /* As the driver's session does: the log closed, the plot drawn. Not
     * closing the log left a file open per input, until the 30-minute run
     * failed on "Too many open files". */
    if (!fit_finish(&h))
        die("fuzz_checkpoint: closing the log or drawing the plot failed");
    if (trained && res.nepochs > 0)
        check_saved(f, &h.st);
    nnrt_train_result_free(&res);
    fit_state_free(&h.st);
}

/* The lowest file descriptor not open: higher after an input than before
 * it if the input left a file open. */
/* --load's readers of the names and columns: each accepts the file with no
 * error reported or rejects it with one. */
static void read_names(Diag *d, FitCkpt *k, size_t targets, size_t inputs) {
    NnrtClasses names;
    int before = d->errors;
    bool classes = fit_read_classes(d, k, &names);
    nnrt_classes_free(&names);
    if (classes != (d->errors == before))
        die("fuzz_checkpoint: fit_read_classes %s with %d errors reported", classes ? "accepted" : "rejected",
            d->errors - before);
    before = d->errors;
    bool ok = fit_read_targets(d, k, targets, &names);
    nnrt_classes_free(&names);
    if (ok != (d->errors == before))
        die("fuzz_checkpoint: fit_read_targets %s with %d errors reported", ok ? "accepted" : "rejected",
            d->errors - before);
    before = d->errors;
    char *label;
    ok = fit_read_columns(d, k, inputs, &label, &names);
    free(label);
    nnrt_classes_free(&names);
    if (ok != (d->errors == before))
        die("fuzz_checkpoint: fit_read_columns %s with %d errors reported", ok ? "accepted" : "rejected",
            d->errors - before);
}

static int lowest_free_fd(void) {
    int fd = dup(2);
    if (fd < 0)
        die("fuzz_checkpoint: dup: %s", strerror(errno));
    close(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static Fixture f;
    if (!f.arena)
        fixture_init(&f);
    int free_fd = lowest_free_fd();
    fuzz_rewrite(f.fd, data, size);
    for (int resuming = 0; resuming <= 1; resuming++) {
        Diag d;
        diag_init(&d, f.devnull);
        FitInfo info = f.info;
        info.resume = resuming;
        FitState st;
        fit_state_init(&st, info.seed);
        FitCkpt k = {.path = f.path};
        bool ok = fit_load(&d, &k, f.graph, f.weights.slots, &info, &st);
        if (ok != (d.errors == 0))
            die("fuzz_checkpoint: fit_load %s with %d errors reported",
                ok ? "accepted the file" : "rejected the file", d.errors);
        if (ok && !resuming)
            read_names(&d, &k, (size_t)f.model->label_size, (size_t)shape_elems(&f.model->input));
        fit_ckpt_free(&k);
        if (ok && resuming)
            resume(&f, &st, (FitMonitor)(size % 4)); /* any function of the input would do */
        fit_state_free(&st);
    }
    if (lowest_free_fd() != free_fd)
        die("fuzz_checkpoint: the input left a file open");
    return 0;
}
