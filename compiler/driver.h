/* driver.h — the driver's own vocabulary, shared by main.c (the options,
 * the REPL's driver) and session.c (a run's data, training, evaluation and
 * prediction). The stages below it never see these. */
#ifndef NNC_DRIVER_H
#define NNC_DRIVER_H

#include "nnc.h"

#define NNC_DEFAULT_DATA "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

typedef enum { EMIT_NONE, EMIT_AST, EMIT_IR, EMIT_GRAD, EMIT_KERNELS, EMIT_LLVM, EMIT_ASM, EMIT_DOT, EMIT_OBJ } Emit;

typedef struct Options {
    const char *model_path;
    Emit emit;
    bool train, gradcheck;
    const char *train_path, *test_path, *report_path;
    const char *save_path, *best_path, *load_path, *resume_path, *val_path;
    const char *test_target_path, *val_target_path; /* the labels of --test's, --val's array file */
    const char *eval_path, *predict_path, *out_path, *log_path, *plot_path, *target_path;
    /* A table's columns (--label, --features; --target of a table names
     * columns), an archive's members (--inputs, --targets): nnrt.h's NnrtDataSpec. */
    const char *label, *features, *inputs, *targets;
    bool no_header;
    char delimiter; /* 0: detected */
    bool normalize; /* --normalize */
    bool print_params;
    const char *header_path; /* -H FILE: the object's C header */
    const char *march;       /* --march NAME; NULL: the host, or x86-64-v3 for an object */
    bool quiet;        /* -q: no progress, only errors, warnings and the outputs asked for */
    int64_t save_every, patience; /* 0: never */
    double min_delta;             /* --min-delta; -1: not given (0, or a resumed run's) */
    int stop_rule;                /* --stop-rule, a FitStopRule; -1: not given (Keras', or a resumed run's) */
    double val_split;             /* 0: none */
    int monitor;                  /* a FitMonitor; -1: the default */
    bool monitor_mae;             /* named mae or val_mae (a regression's, in acc's place) */
    const char *monitor_head;     /* a head's, [val_]HEAD_METRIC (session.c finds it); NULL: the model's */
    const char *monitor_text;     /* --monitor's METRIC as given; NULL: not given (the default, or a resumed run's) */
    int64_t epochs, batch; /* 0: from the model */
    double lr;             /* 0: from the model */
    const char *schedule;  /* --schedule's text, or NULL */
    uint64_t seed;
    int opt; /* 0 or 2 */
    bool interactive;  /* -i, or no model file: the REPL */
    bool have_weights; /* the REPL's model has weights already */
    FitCkpt *ckpt;     /* --resume's or --load's checkpoint, read once for all its readers */
    bool help, version; /* -h, --help; --version: print and stop (on the command line) */
} Options;

/* Trains (with --train or --resume), then evaluates and predicts, with
 * weights from --load or --resume if given. With `keep`, the weights are
 * keep's (made if it has none) and stay there. Compiled for t. */
int session_run(Arena *a, const Model *m, const Source *src, const Options *o, const Target *t, Diag *d,
                FitWeights *keep);

#endif
