/* main.c — the nnc driver: options, then the pipeline's stages in order.
 *
 *   source -> parse -> sema -> lower -> autodiff -> optim -> dce
 *          -> codegen -> JIT (host CPU) -> runtime (train, evaluate)
 *
 * Each --emit= stops after the stage it names and prints its result, so a
 * golden test can look at any point of the pipeline.
 */
#include "driver.h"
#include "nnc.h"
#include "nnrt.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NNC_DEFAULT_TEST "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

/* Every option, once: the table drives parsing, --help and "did you mean".
 * An option with a value takes it as --opt=VALUE or --opt VALUE. */
typedef enum {
    O_EMIT, O_TRAIN, O_TARGET, O_PRINT_PARAMS, O_TEST, O_EPOCHS, O_BATCH, O_LR, O_SCHEDULE, O_SEED, O_REPORT,
    O_SAVE, O_SAVE_EVERY, O_SAVE_BEST, O_LOAD, O_RESUME, O_VAL, O_VAL_SPLIT, O_EARLY_STOP, O_MIN_DELTA, O_STOP_RULE,
    O_MONITOR, O_LOG, O_PLOT,
    O_TEST_TARGET, O_VAL_TARGET,
    O_EVAL, O_PREDICT, O_OUT, O_COMPILE, O_HEADER, O_MARCH, O_LABEL, O_FEATURES, O_NO_HEADER, O_DELIMITER,
    O_INPUTS, O_TARGETS, O_NORMALIZE, O_THREADS, O_O0, O_O2, O_GRADCHECK, O_QUIET, O_INTERACTIVE, O_HELP, O_VERSION
} OptId;
typedef enum { ARG_NONE, ARG_VALUE, ARG_OPTIONAL, ARG_INT } ArgKind;
static const struct Opt {
    const char *name, *alias; /* alias: another spelling, or NULL */
    OptId id;
    ArgKind arg;
    const char *meta; /* the value's name in --help */
    const char *help; /* its lines, the later ones indented */
    int64_t lo, hi;   /* ARG_INT: its range, */
    size_t field;     /* its int64_t in Options, */
    const char *expects; /* and what a message says it expects */
} opts[] = {
#define OPT(name, alias, id, arg, meta, help) {name, alias, id, arg, meta, help, 0, 0, 0, NULL}
#define INT_OPT(name, alias, id, meta, help, lo, hi, field, expects) \
    {name, alias, id, ARG_INT, meta, help, lo, hi, offsetof(Options, field), expects}
    OPT("--emit", NULL, O_EMIT, ARG_VALUE, "KIND", "print a stage's output and stop; KIND is one of\n"
     "ast   the syntax tree\n"
     "ir    the forward pass (tensor IR)\n"
     "grad  the training step: forward, backward, update\n"
     "kernels  the training step's IR and its schedule:\n"
     "      which loop computes each node, where it lives\n"
     "llvm  the LLVM IR of the training step\n"
     "asm   its machine code for this CPU, optimised\n"
     "dot   the forward and gradient graphs for Graphviz\n"
     "obj   an object file, as -c"),
    OPT("--train", NULL, O_TRAIN, ARG_OPTIONAL, "[PATH]", "train on a data file (raw or .gz): a CSV table, an\n"
     ".npz archive, or an IDX or .npy array of inputs (an\n"
     "IDX file's labels are found next to it). Without\n"
     "PATH: the model's "
     "data block if it has one, else\n" NNC_DEFAULT_DATA),
    OPT("--target", NULL, O_TARGET, ARG_VALUE, "PATH", "the labels or targets of --train's (alone: --eval's)\n"
     "samples: an IDX or .npy file of any element type,\n"
     "[n, the model's target elements]; of a table, the\n"
     "columns of regression targets: COLUMN[,COLUMN...]"),
    OPT("--label", NULL, O_LABEL, ARG_VALUE, "COLUMN", "a table's column of classes: integers, or names (the\n"
     "mapping to indices is printed and saved)"),
    OPT("--features", NULL, O_FEATURES, ARG_VALUE, "A,B,...", "a table's input columns, in this order (default:\n"
     "every other column holding numbers)"),
    OPT("--no-header", NULL, O_NO_HEADER, ARG_NONE, NULL, "a table's first row is data; columns are named by\n"
     "their position from 0"),
    OPT("--delimiter", NULL, O_DELIMITER, ARG_VALUE, "C", "a table's delimiter (default: the one of , ; tab |\n"
     "most frequent on its first line); 'tab' for a tab"),
    OPT("--normalize", NULL, O_NORMALIZE, ARG_NONE, NULL, "scale each input element by its mean and standard\n"
     "deviation on the training data (saved in checkpoints;\n"
     "--eval and --predict after --load apply them). uint8\n"
     "inputs are otherwise scaled to [0, 1], others taken as\n"
     "they are"),
    OPT("--inputs", NULL, O_INPUTS, ARG_VALUE, "NAME", "an .npz archive's array of inputs (default x)"),
    OPT("--targets", NULL, O_TARGETS, ARG_VALUE, "NAME", "an .npz archive's array of labels or targets (default y)"),
    OPT("--print-params", NULL, O_PRINT_PARAMS, ARG_NONE, NULL, "print every parameter after training\n"
     "(and batchnorm's moving statistics)"),
    OPT("--test", NULL, O_TEST, ARG_VALUE, "PATH", "evaluate on this data file after training\n"
     "(default: the t10k-* file next to the training data)"),
    OPT("--test-target", NULL, O_TEST_TARGET, ARG_VALUE, "PATH", "the labels or targets of --test's array file\n"
     "(IDX or .npy), as --target is --train's"),
    INT_OPT("--epochs", NULL, O_EPOCHS, "N", "override the model file's epochs", 1, 1000000,
     epochs, "an integer from 1 to 1000000"),
    INT_OPT("--batch", NULL, O_BATCH, "N", "override the model file's batch size", 1, 65536,
     batch, "an integer from 1 to 65536"),
    OPT("--lr", NULL, O_LR, ARG_VALUE, "X", "override the model file's learning rate"),
    OPT("--schedule", NULL, O_SCHEDULE, ARG_VALUE, "S", "override the model's learning-rate schedule, e.g.\n"
     "'cosine(decay_steps = 500)'; S is constant, step,\n"
     "exponential, inverse_time or cosine, with the\n"
     "arguments of the model file's 'schedule'"),
    OPT("--seed", NULL, O_SEED, ARG_VALUE, "N", "seed for initialisation and shuffling (default 1)"),
    OPT("--report", NULL, O_REPORT, ARG_VALUE, "FILE", "write a JSON summary of the training run"),
    OPT("--save", NULL, O_SAVE, ARG_VALUE, "FILE", "save a checkpoint (safetensors: weights, optimizer\n"
     "state, training position) after every epoch"),
    INT_OPT("--save-every", NULL, O_SAVE_EVERY, "N", "... and every N training steps", 1, INT64_MAX,
     save_every, "a positive number of steps"),
    OPT("--save-best", NULL, O_SAVE_BEST, ARG_VALUE, "FILE", "save a checkpoint whenever the monitored metric improves"),
    OPT("--load", NULL, O_LOAD, ARG_VALUE, "FILE", "start from the weights of a safetensors file"),
    OPT("--resume", NULL, O_RESUME, ARG_VALUE, "FILE", "continue the run saved in FILE exactly where it stopped\n"
     "(implies --train; saves to FILE unless --save is given),\n"
     "with that run's --epochs, --batch, --lr and --schedule\n"
     "unless given again"),
    OPT("--val", NULL, O_VAL, ARG_VALUE, "PATH", "validate on this data file after every epoch"),
    OPT("--val-target", NULL, O_VAL_TARGET, ARG_VALUE, "PATH", "the labels or targets of --val's array file"),
    OPT("--val-split", NULL, O_VAL_SPLIT, ARG_VALUE, "F", "... or on the last fraction F (0 < F < 1) of the training data"),
    INT_OPT("--early-stop", NULL, O_EARLY_STOP, "N", "stop when the monitored metric has not improved for N epochs",
     1, 1000000, patience, "a patience from 1 to 1000000 epochs"),
    OPT("--min-delta", NULL, O_MIN_DELTA, ARG_VALUE, "X", "an improvement of the monitored metric by X or\n"
     "less is none, for --early-stop and --save-best\n"
     "(Keras' min_delta; default 0)"),
    OPT("--stop-rule", NULL, O_STOP_RULE, ARG_VALUE, "R", "keras (default): only an improvement by more than\n"
     "min_delta becomes the best; sklearn: any improvement\n"
     "does, and one by min_delta or more restarts the\n"
     "patience (MLPClassifier's tol)"),
    OPT("--monitor", NULL, O_MONITOR, ARG_VALUE, "METRIC", "loss, acc, val_loss or val_acc (default val_loss with\n"
     "validation, else loss); a regression's mae, val_mae; a head's (val_reg_mae)"),
    OPT("--log", NULL, O_LOG, ARG_VALUE, "FILE", "write loss and accuracy (or mae) per epoch as CSV"),
    OPT("--plot", NULL, O_PLOT, ARG_VALUE, "FILE", "draw them as an SVG (training and validation curves)"),
    OPT("--eval", NULL, O_EVAL, ARG_VALUE, "PATH", "print loss, accuracy per class and the confusion matrix\n"
     "on this labelled data file (with --load, or after --train)"),
    OPT("--predict", NULL, O_PREDICT, ARG_VALUE, "PATH", "write the prediction for every sample of a data file\n"
     "as CSV: index, class, probabilities (or the outputs,\n"
     "named after a table's --target columns)"),
    OPT("-o", NULL, O_OUT, ARG_VALUE, "FILE", "where --predict writes (default, or -: standard output);\n"
     "with -c the object (MODEL.o by default), or a\n"
     "library if FILE ends in .a or .so"),
    OPT("-c", NULL, O_COMPILE, ARG_NONE, NULL, "compile the model ahead of time into an object file\n"
     "(docs/aot.md): its training and evaluation steps,\n"
     "the weights of --load FILE embedded (else --seed's\n"
     "initialisation); with --load, MODEL_predict()"),
    OPT("--header", "-H", O_HEADER, ARG_VALUE, "FILE", "... and write its C header to FILE"),
    OPT("--march", NULL, O_MARCH, ARG_VALUE, "CPU", "the instruction set to compile for: native, x86-64,\n"
     "x86-64-v2, x86-64-v3, x86-64-v4 or an LLVM CPU name\n"
     "(default: native; x86-64-v3 for -c, which runs on\n"
     "x86-64 CPUs since 2013-2015: AVX2 and FMA)"),
    OPT("--threads", NULL, O_THREADS, ARG_VALUE, "N", "threads of the kernels (default: NNC_THREADS, else\n"
     "one per core); results do not depend on it"),
    OPT("-O0", NULL, O_O0, ARG_NONE, NULL, "compile every IR node to its own naive loop nest\n(the reference)"),
    OPT("-O2", NULL, O_O2, ARG_NONE, NULL, "fuse the IR into kernels (the default)"),
    OPT("--gradcheck", NULL, O_GRADCHECK, ARG_NONE, NULL, "check every parameter's gradient (up to 50 elements\n"
     "each) against central differences in float64, at\n"
     "the parameters' initializers (--seed) and the data\n"
     "block's samples (else random inputs); an element\n"
     "next to a kink (relu, abs, max...) gets a one-sided\n"
     "difference, one on a kink is skipped and counted"),
    OPT("--quiet", "-q", O_QUIET, ARG_NONE, NULL, "print no progress (compiling, epochs, test): only\n"
     "errors, warnings and the outputs asked for\n(--print-params, --eval, --predict)"),
    OPT("-i", NULL, O_INTERACTIVE, ARG_NONE, NULL, "the REPL, after loading MODEL.nn"),
    OPT("--help", "-h", O_HELP, ARG_NONE, NULL, "this text"),
    OPT("--version", NULL, O_VERSION, ARG_NONE, NULL, "version and host CPU"),
#undef INT_OPT
#undef OPT
};
enum { NOPTS = sizeof opts / sizeof opts[0] };

static void usage(FILE *out) {
    fputs("usage: nnc [options] MODEL.nn\n"
          "       nnc [-i MODEL.nn]\n"
          "\n"
          "Checks and compiles a model; with --train, trains it. Without a model\n"
          "file, or with -i, the REPL (:help there lists its commands).\n"
          "\n", out);
    for (int i = 0; i < NOPTS; i++) {
        const struct Opt *o = &opts[i];
        char head[64];
        snprintf(head, sizeof head, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "", o->name,
                 o->meta ? (o->arg == ARG_OPTIONAL ? " " : o->id == O_EMIT ? "=" : " ") : "", o->meta ? o->meta : "");
        const char *h = o->help;
        fprintf(out, "  %-18s", head);
        if (strlen(head) > 18) /* the help on a line of its own */
            fprintf(out, "\n  %18s", "");
        for (;;) {
            const char *nl = strchr(h, '\n');
            fprintf(out, " %.*s\n", nl ? (int)(nl - h) : (int)strlen(h), h);
            if (!nl)
                break;
            h = nl + 1;
            fprintf(out, "  %18s", "");
        }
    }
    fputs("\n"
          "Outputs (--save, --save-best, --log, --plot, --report, -o) are checked\n"
          "before anything runs and written atomically (a temporary file beside the\n"
          "target, renamed over it) to regular files only, through symlinks, keeping\n"
          "an existing file's mode; none may be an input or another output. Ctrl-C\n"
          "during --train stops after the step and saves the checkpoint (--save or\n"
          "--resume); a second Ctrl-C ends nnc at once.\n"
          "\n"
          "Environment: NNC_THREADS (threads), NNC_TARGET_FEATURES (e.g. -avx512f:\n"
          "a narrower target), NNC_PERF_MAP=1 (write /tmp/perf-PID.map for perf).\n"
          "\n"
          "Exit status: 0 success; 1 the model is invalid (errors were reported);\n"
          "2 usage or I/O error (bad option, unreadable file, bad data);\n"
          "3 training failed (the loss or a gradient became NaN or Inf);\n"
          "4 --gradcheck found a relative error of 1e-6 or more;\n"
          "130 Ctrl-C stopped --train (the checkpoint, if any, is saved).\n", out);
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    /* Digits, with a '-' at most: strtoll also skips blanks and takes a '+'. */
    if (!isdigit((unsigned char)s[s[0] == '-']))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* The option argument `a` names (with its =VALUE cut off into *val), or NULL. */
static const struct Opt *find_option(const char *a, const char **val) {
    *val = NULL;
    for (int i = 0; i < NOPTS; i++) {
        const struct Opt *o = &opts[i];
        size_t n = strlen(o->name);
        if (!strcmp(a, o->name) || (o->alias && !strcmp(a, o->alias)))
            return o;
        if (!strncmp(a, o->name, n) && a[n] == '=') { /* a flag's: 1 or 0, as the REPL's print-params=1 */
            *val = a + n + 1;
            return o;
        }
    }
    return NULL;
}

/* "; did you mean 'x'?" for s among names (NULL-terminated), or "". */
static const char *did_you_mean(char *buf, size_t n, const char *s, const char *const *names) {
    const char *near = closest_name(s, names);
    snprintf(buf, n, "%s%s%s", near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    return buf;
}

/* mae and val_mae: a regression's, in the place of acc and val_acc. */
static const char *const monitor_metrics[] = {"loss", "acc", "val_loss", "val_acc", "mae", "val_mae", NULL};

/* --monitor METRIC (or the one a resumed run watched) into o; false if it
 * names no metric. */
static bool parse_monitor(Options *o, const char *val) {
    o->monitor = -1;
    o->monitor_mae = false;
    o->monitor_head = NULL;
    for (int k = 0; monitor_metrics[k]; k++)
        if (!strcmp(val, monitor_metrics[k])) {
            o->monitor = k < 4 ? k : k == 4 ? MONITOR_ACC : MONITOR_VAL_ACC;
            o->monitor_mae = k >= 4;
        }
    /* Else a head's, as Keras names it (val_logits_loss): the model says
     * which there are. */
    const char *metric = strrchr(val, '_');
    if (o->monitor < 0 && metric && metric > val && (!strcmp(metric, "_loss") || !strcmp(metric, "_acc") ||
                                                     !strcmp(metric, "_mae") || !strcmp(metric, "_mse"))) {
        o->monitor = !strncmp(val, "val_", 4) ? MONITOR_VAL_LOSS : MONITOR_LOSS;
        o->monitor_head = val;
    }
    o->monitor_text = o->monitor >= 0 ? val : NULL;
    return o->monitor >= 0;
}

/* One option's value into o; EXIT_USAGE after printing the problem. */
static int set_option(Options *o, OptId id, const char *val, Diag *d) {
    char hint[128];
    int64_t t;
    char *end;
    switch (id) {
    case O_EMIT: {
        static const char *const kinds[] = {"ast", "ir", "grad", "kernels", "llvm", "asm", "dot", "obj", NULL};
        o->emit = EMIT_NONE;
        for (int k = 0; kinds[k]; k++)
            if (!strcmp(val, kinds[k]))
                o->emit = (Emit)(k + 1);
        if (o->emit != EMIT_NONE)
            return EXIT_OK;
        diag_plain(d, "unknown --emit kind '%s'%s; expected ast, ir, grad, kernels, llvm, asm, dot or obj", val,
                   did_you_mean(hint, sizeof hint, val, kinds));
        return EXIT_USAGE;
    }
    case O_TRAIN: o->train = true; o->train_path = val; return EXIT_OK;
    case O_TARGET: o->target_path = val; return EXIT_OK;
    case O_LABEL: o->label = val; return EXIT_OK;
    case O_FEATURES: o->features = val; return EXIT_OK;
    case O_NO_HEADER: o->no_header = true; return EXIT_OK;
    case O_DELIMITER:
        o->delimiter = !strcmp(val, "tab") ? '\t' : val[0] && !val[1] && val[0] != '"' && val[0] != '\n' ? val[0] : 0;
        if (o->delimiter)
            return EXIT_OK;
        diag_plain(d, "--delimiter expects one character (or 'tab'), not a quote or a newline, found '%s'", val);
        return EXIT_USAGE;
    case O_INPUTS: o->inputs = val; return EXIT_OK;
    case O_NORMALIZE: o->normalize = true; return EXIT_OK;
    case O_TARGETS: o->targets = val; return EXIT_OK;
    case O_PRINT_PARAMS: o->print_params = true; return EXIT_OK;
    case O_QUIET: o->quiet = true; return EXIT_OK;
    case O_TEST: o->test_path = val; return EXIT_OK;
    case O_TEST_TARGET: o->test_target_path = val; return EXIT_OK;
    case O_EPOCHS: case O_BATCH: case O_SAVE_EVERY: case O_EARLY_STOP: /* ARG_INT: parse_options set them */
        return EXIT_OK;
    case O_LR:
        o->lr = strtod(val, &end);
        if (end != val && !*end && o->lr > 0 && o->lr <= 1e6)
            return EXIT_OK;
        diag_plain(d, "--lr expects a positive number, found '%s'", val);
        return EXIT_USAGE;
    case O_SCHEDULE: o->schedule = val; return EXIT_OK;
    case O_SEED:
        if (!parse_int(val, 0, INT64_MAX, &t)) {
            diag_plain(d, "--seed expects a non-negative integer, found '%s'", val);
            return EXIT_USAGE;
        }
        o->seed = (uint64_t)t;
        return EXIT_OK;
    case O_REPORT: o->report_path = val; return EXIT_OK;
    case O_SAVE: o->save_path = val; return EXIT_OK;
    case O_SAVE_BEST: o->best_path = val; return EXIT_OK;
    case O_LOAD: o->load_path = val; return EXIT_OK;
    case O_RESUME: o->resume_path = val; o->train = true; return EXIT_OK;
    case O_VAL: o->val_path = val; return EXIT_OK;
    case O_VAL_TARGET: o->val_target_path = val; return EXIT_OK;
    case O_MIN_DELTA:
        o->min_delta = strtod(val, &end);
        if (end != val && !*end && o->min_delta >= 0 && o->min_delta <= 1e300)
            return EXIT_OK;
        diag_plain(d, "--min-delta expects a number from 0, found '%s'", val);
        return EXIT_USAGE;
    case O_STOP_RULE:
        o->stop_rule = fit_stop_rule_find(val);
        if (o->stop_rule >= 0)
            return EXIT_OK;
        diag_plain(d, "unknown --stop-rule '%s'%s; expected keras or sklearn", val,
                   did_you_mean(hint, sizeof hint, val, fit_stop_rules));
        return EXIT_USAGE;
    case O_VAL_SPLIT:
        o->val_split = strtod(val, &end);
        if (end != val && !*end && o->val_split > 0 && o->val_split < 1)
            return EXIT_OK;
        diag_plain(d, "--val-split expects a fraction between 0 and 1, found '%s'", val);
        return EXIT_USAGE;
    case O_MONITOR:
        if (parse_monitor(o, val))
            return EXIT_OK;
        diag_plain(d, "unknown --monitor metric '%s'%s; expected loss, acc, val_loss, val_acc, mae, val_mae or a "
                   "head's (logits_loss, val_reg_mae)", val, did_you_mean(hint, sizeof hint, val, monitor_metrics));
        return EXIT_USAGE;
    case O_LOG: o->log_path = val; return EXIT_OK;
    case O_PLOT: o->plot_path = val; return EXIT_OK;
    case O_EVAL: o->eval_path = val; return EXIT_OK;
    case O_PREDICT: o->predict_path = val; return EXIT_OK;
    case O_OUT: o->out_path = val; return EXIT_OK;
    case O_COMPILE: o->emit = EMIT_OBJ; return EXIT_OK;
    case O_HEADER: o->header_path = val; return EXIT_OK;
    case O_MARCH: o->march = val; return EXIT_OK;
    case O_THREADS:
        if (!parse_int(val, 1, 256, &t)) {
            diag_plain(d, "--threads expects an integer from 1 to 256, found '%s'", val);
            return EXIT_USAGE;
        }
        nnrt_set_threads((int)t);
        return EXIT_OK;
    case O_O0: o->opt = 0; return EXIT_OK;
    case O_O2: o->opt = 2; return EXIT_OK;
    case O_GRADCHECK: o->gradcheck = true; return EXIT_OK;
    case O_INTERACTIVE: o->interactive = true; return EXIT_OK;
    case O_HELP: o->help = true; return EXIT_OK;
    case O_VERSION: o->version = true; return EXIT_OK;
    }
    unreachable();
}

/* Returns EXIT_OK, or EXIT_USAGE after printing the problem. */
static int parse_options(int argc, char **argv, Options *o, Diag *d) {
    *o = (Options){.seed = 1, .monitor = -1, .min_delta = -1, .stop_rule = -1, .opt = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        const struct Opt *opt = a[0] == '-' && a[1] ? find_option(a, &val) : NULL;
        if (!opt && a[0] == '-' && a[1]) {
            const char *names[NOPTS + 1];
            char hint[128];
            for (int k = 0; k < NOPTS; k++)
                names[k] = opts[k].name;
            names[NOPTS] = NULL;
            diag_plain(d, "unknown option '%s'%s (see nnc --help)", a, did_you_mean(hint, sizeof hint, a, names));
            return EXIT_USAGE;
        }
        if (!opt && o->model_path) {
            diag_plain(d, "more than one model file: '%s' and '%s'", o->model_path, a);
            return EXIT_USAGE;
        }
        if (!opt) {
            o->model_path = a;
            continue;
        }
        if (opt->arg == ARG_NONE && val && strcmp(val, "1") != 0 && strcmp(val, "0") != 0) {
            diag_plain(d, "%s takes no value (or =1, =0), found '%s'", opt->name, a);
            return EXIT_USAGE;
        }
        if (opt->arg == ARG_NONE && val && !strcmp(val, "0"))
            continue; /* --flag=0: not given */
        /* A value in the next word; an optional one (--train's path) unless
         * it is an option or the model. */
        if (!val && (opt->arg == ARG_VALUE || opt->arg == ARG_INT) && i + 1 < argc)
            val = argv[++i];
        else if (!val && opt->arg == ARG_OPTIONAL && i + 1 < argc && argv[i + 1][0] != '-' &&
                 !strstr(argv[i + 1], ".nn"))
            val = argv[++i];
        if (!val && (opt->arg == ARG_VALUE || opt->arg == ARG_INT)) {
            diag_plain(d, "%s needs a value: %s %s", opt->name, opt->name, opt->meta);
            return EXIT_USAGE;
        }
        if (opt->arg == ARG_INT && !parse_int(val, opt->lo, opt->hi, (int64_t *)((char *)o + opt->field))) {
            diag_plain(d, "%s expects %s, found '%s'", opt->name, opt->expects, val);
            return EXIT_USAGE;
        }
        int status = set_option(o, opt->id, val, d);
        if (status != EXIT_OK)
            return status;
    }
    if (!o->model_path)
        o->interactive = true;
    return EXIT_OK;
}

/* The options' combinations; EXIT_USAGE after printing the problem. */
static int check_options(Options *o, Diag *d) {
    const char *conflict = o->val_path && o->val_split ? "--val and --val-split"
                           : o->load_path && o->resume_path ? "--load and --resume"
                                                           : NULL;
    if (conflict) {
        diag_plain(d, "%s exclude each other", conflict);
        return EXIT_USAGE;
    }
    const char *needs_train = o->save_path ? "--save" : o->save_every ? "--save-every"
                              : o->best_path ? "--save-best" : o->val_path ? "--val"
                              : o->val_split ? "--val-split" : o->patience ? "--early-stop"
                              : o->min_delta >= 0 ? "--min-delta" : o->stop_rule >= 0 ? "--stop-rule"
                              : o->log_path ? "--log" : o->plot_path ? "--plot"
                              : o->target_path && !o->eval_path && !o->predict_path ? "--target"
                              : o->print_params ? "--print-params" : o->normalize ? "--normalize" : NULL;
    if (needs_train && !o->train) {
        diag_plain(d, "%s needs --train (or --resume)", needs_train);
        return EXIT_USAGE;
    }
    if ((o->eval_path || o->predict_path) && !o->train && !o->load_path && !o->have_weights) {
        diag_plain(d, "%s needs weights: --load FILE, or --train", o->eval_path ? "--eval" : "--predict");
        return EXIT_USAGE;
    }
    if ((o->test_target_path && !o->test_path) || (o->val_target_path && !o->val_path)) {
        diag_plain(d, "%s", o->val_target_path && !o->val_path ? "--val-target names the labels of --val PATH's "
                   "samples; give that PATH" : "--test-target names the labels of --test PATH's samples; give "
                   "that PATH");
        return EXIT_USAGE;
    }
    if (o->save_every && !o->save_path && !o->resume_path) {
        diag_plain(d, "--save-every needs --save FILE (or --resume FILE) to save to");
        return EXIT_USAGE;
    }
    if (o->emit == EMIT_OBJ && (o->train || o->eval_path || o->predict_path || o->gradcheck)) {
        diag_plain(d, "-c compiles the model and stops; train, evaluate or predict in another run");
        return EXIT_USAGE;
    }
    if (o->header_path && o->emit != EMIT_OBJ) {
        diag_plain(d, "--header writes the header of an object; there is no -c");
        return EXIT_USAGE;
    }
    if (o->out_path && !o->predict_path && o->emit != EMIT_OBJ) {
        diag_plain(d, "-o names the --predict output (or -c's object); there is no --predict");
        return EXIT_USAGE;
    }
    if (o->out_path && !strcmp(o->out_path, "-")) {
        if (o->emit == EMIT_OBJ) {
            diag_plain(d, "-o -: an object file goes to a file, not to standard output");
            return EXIT_USAGE;
        }
        o->out_path = NULL; /* the predictions on standard output, as without -o */
    }
    bool validates = o->val_path || o->val_split;
    if (o->monitor >= MONITOR_VAL_LOSS && !validates) {
        diag_plain(d, "--monitor %s needs a validation set (--val or --val-split)",
                   o->monitor_head ? o->monitor_head : fit_monitor_name((FitMonitor)o->monitor, o->monitor_mae));
        return EXIT_USAGE;
    }
    if (o->monitor < 0)
        o->monitor = validates ? MONITOR_VAL_LOSS : MONITOR_LOSS;
    return EXIT_OK;
}

/* ---------------------------------------------------------------- the stages */

/* --epochs, --batch, --lr over the model file's values. */
/* The command line's values over the model file's; EXIT_USAGE after
 * reporting a bad --schedule. */
static int apply_overrides(Arena *a, Diag *d, Model *m, const Options *o) {
    if (o->epochs)
        m->epochs = o->epochs;
    if (o->batch)
        m->batch = o->batch;
    if (o->lr)
        m->lr = o->lr;
    m->seed = o->seed;
    if (o->schedule) { /* checked like the file's, its errors located in the option's text */
        Source *opt = arena_alloc(a, sizeof *opt);
        *opt = (Source){.path = "--schedule", .text = o->schedule, .len = strlen(o->schedule)};
        AstItem *it = parse_schedule_option(a, d, opt);
        if (!it || !sema_schedule(a, d, m, it))
            return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* --resume continues the run it names with that run's --epochs, --batch,
 * --lr, --schedule, --early-stop, --min-delta, --stop-rule and --monitor (saved in the
 * checkpoint) where the command line does not give them; where it gives another
 * epochs, lr or schedule, it says so. */
static bool resume_settings(Arena *a, Diag *d, const Options *o, Options *out) {
    FitSettings s;
    if (!fit_read_settings(a, d, o->ckpt, &s))
        return false;
    *out = *o;
    if (s.epochs && o->epochs && o->epochs != s.epochs)
        printf("resuming with --epochs %lld (the interrupted run had %lld)\n", (long long)o->epochs,
               (long long)s.epochs);
    if (s.lr && o->lr && o->lr != s.lr)
        printf("resuming with --lr %g (the interrupted run had %g)\n", o->lr, s.lr);
    if (o->schedule && (!s.schedule || strcmp(o->schedule, s.schedule) != 0))
        printf("resuming with --schedule '%s' (the interrupted run had %s%s%s)\n", o->schedule,
               s.schedule ? "'" : "the model file's", s.schedule ? s.schedule : "", s.schedule ? "'" : "");
    if (!o->epochs)
        out->epochs = s.epochs;
    if (!o->batch)
        out->batch = s.batch;
    if (!o->lr)
        out->lr = s.lr;
    if (!o->schedule)
        out->schedule = s.schedule;
    if (!o->patience)
        out->patience = s.patience;
    if (o->min_delta < 0)
        out->min_delta = s.min_delta;
    if (o->stop_rule < 0)
        out->stop_rule = (int)s.stop_rule;
    if (!o->monitor_text && s.monitor) {
        if (!parse_monitor(out, s.monitor)) {
            diag_plain(d, "%s: its run's monitored metric (metadata 'monitor': '%.60s') is none nnc knows",
                       o->resume_path, s.monitor);
            return false;
        }
        if (out->monitor >= MONITOR_VAL_LOSS && !o->val_path && !o->val_split) {
            diag_plain(d, "%s: its run monitored %s, which needs a validation set: give --val or --val-split as "
                       "that run did, or --monitor METRIC", o->resume_path, s.monitor);
            return false;
        }
    }
    return true;
}

static int run(Arena *a, const Options *o, const Target *t, Diag *d) {
    Source src;
    if (!source_read(a, d, o->model_path, &src))
        return EXIT_USAGE;
    AstProgram *ast = parse_program(a, d, &src);
    if (!ast)
        return EXIT_INVALID_MODEL;
    if (o->emit == EMIT_AST) {
        ast_print(stdout, ast);
        return EXIT_OK;
    }
    /* Top-level statements (let, print) run first; a file of only those is
     * a program of its own, with no model to train, check or show. */
    if (ast->nmodels == 0 && (o->train || o->gradcheck || (o->emit != EMIT_NONE && o->emit != EMIT_DOT))) {
        diag_plain(d, "'%s' has no model for %s", o->model_path,
                   o->train ? "--train" : o->gradcheck ? "--gradcheck" : o->emit == EMIT_OBJ ? "-c" : "--emit");
        return EXIT_USAGE;
    }
    if (ast->nstmts) {
        int status = script_run(d, ast, stdout, o->emit == EMIT_DOT ? stdout : NULL, t);
        if (status != EXIT_OK || ast->nmodels == 0)
            return status;
    }
    Model *m = NULL;
    for (int i = 0; i < ast->nmodels; i++) {
        Model *mi = sema_model(a, d, &ast->models[i]);
        if (!m)
            m = mi;
    }
    if (d->errors || !m)
        return EXIT_INVALID_MODEL;
    Options resumed;
    if (o->resume_path) {
        if (!resume_settings(a, d, o, &resumed))
            return EXIT_USAGE;
        o = &resumed;
    }
    if (apply_overrides(a, d, m, o) != EXIT_OK)
        return EXIT_USAGE;

    if (o->gradcheck) {
        Graph *g = ir_new(a, DT_F64);
        NodeId pred;
        int64_t batch = m->batch < 4 ? m->batch : 4; /* a small batch, the model's own if smaller */
        NodeId loss = model_forward(g, m, batch, INPUT_FLOAT, MODE_TRAIN, &pred, NULL);
        char err[1024];
        int64_t skipped;
        double worst = gradcheck(g, loss, m->output.dim[0], m->data, o->seed, 50, o->opt, t, &skipped, stdout,
                                 err, sizeof err);
        if (worst < 0) {
            diag_plain(d, "%s", err);
            return EXIT_USAGE;
        }
        bool ok = worst < GRADCHECK_TOLERANCE;
        printf("gradcheck %s: max rel. error %.2e (float64, batch %lld, central differences%s): %s\n", m->name,
               worst, (long long)batch,
               skipped ? arena_printf(a, "; skipped at a kink: %lld", (long long)skipped) : "", ok ? "ok" : "FAILED");
        return ok ? EXIT_OK : EXIT_GRADCHECK;
    }
    if (o->emit == EMIT_NONE && (o->train || o->eval_path || o->predict_path))
        return session_run(a, m, &src, o, t, d, NULL); /* it plans for its data's input type */
    double t0 = nnrt_now();
    Plan p = pipeline_plan(a, m, o->opt, INPUT_FLOAT, t, nnrt_mpi_active());
    switch (o->emit) {
    case EMIT_IR:
        ir_print(stdout, p.ir[PLAN_EVAL]);
        return EXIT_OK;
    case EMIT_GRAD:
        ir_print(stdout, p.ir[PLAN_TRAIN]);
        return EXIT_OK;
    case EMIT_DOT:
        dot_print(stdout, p.ir[PLAN_TRAIN], m->name);
        return EXIT_OK;
    case EMIT_KERNELS:
        ir_print(stdout, p.g[PLAN_TRAIN]);
        schedule_print(stdout, p.g[PLAN_TRAIN], p.s[PLAN_TRAIN]);
        return EXIT_OK;
    case EMIT_LLVM:
    case EMIT_ASM: {
        CgModule *mod = pipeline_plan_codegen(&p, PLAN_TRAIN);
        char err[1024];
        bool ok = true;
        if (o->emit == EMIT_LLVM)
            cg_print(mod, stdout);
        else if (!(ok = jit_emit_asm(mod, t, stdout, err, sizeof err)))
            diag_plain(d, "%s", err);
        cg_module_free(mod);
        return ok ? EXIT_OK : EXIT_USAGE;
    }
    case EMIT_OBJ: {
        AotSpec spec = {.model = m, .src = &src, .out = o->out_path, .header = o->header_path,
                        .weights = o->load_path ? o->ckpt : NULL, .opt = o->opt, .target = t};
        if (!spec.out) /* MODEL.o in the current directory, as cc -c */
            spec.out = arena_printf(a, "%s.o", m->name);
        return aot_write(a, d, &spec);
    }
    case EMIT_AST:
    case EMIT_NONE:
        break;
    }
    /* No training: compile the training step anyway, so a model that passes
     * this check is known to go through the whole pipeline. */
    Compiled c = {0};
    int status = pipeline_compile(&p, m->batch, &c, d) ? EXIT_OK : EXIT_USAGE;
    if (status == EXIT_OK && !o->quiet)
        printf("model %s: %lld parameters; compiled in %.0f ms\n", m->name, (long long)ir_param_count(c.train),
               (nnrt_now() - t0) * 1e3);
    jit_free(c.jit);
    return status;
}

/* ---------------------------------------------------------------- the REPL */

/* ReplDriver.run: what `nnc MODEL.nn OPTIONS` does, on a model of the REPL
 * session and its weights; the overrides hold for this run only. */
static int repl_run_model(void *ctx, Diag *d, const Model *m, const Source *src, int argc, char **argv,
                          FitWeights *w) {
    const Target *t = ctx;
    char **args = xcalloc((size_t)argc + 1, sizeof *args);
    args[0] = "nnc";
    memcpy(args + 1, argv, (size_t)argc * sizeof *argv);
    Options o;
    int status = parse_options(argc + 1, args, &o, d);
    free(args);
    if (status == EXIT_OK && o.model_path) {
        diag_plain(d, "unexpected '%s': the model is the session's", o.model_path);
        status = EXIT_USAGE;
    }
    if (status == EXIT_OK && (o.emit == EMIT_OBJ || o.march)) { /* the session has its target and runs */
        diag_plain(d, "%s is the command line's", o.march ? "--march" : "-c");
        status = EXIT_USAGE;
    }
    if (status == EXIT_OK && (o.help || o.version)) { /* the session goes on */
        diag_plain(d, "%s is the command line's; :help lists the REPL's commands", o.help ? "--help" : "--version");
        status = EXIT_USAGE;
    }
    o.model_path = src->path;
    o.have_weights = w->slots != NULL;
    if (status == EXIT_OK && !o.train && !o.eval_path && !o.predict_path)
        o.eval_path = NNC_DEFAULT_TEST; /* :eval MODEL */
    if (status != EXIT_OK || (status = check_options(&o, d)) != EXIT_OK)
        return status;
    Model run = *m;
    Arena *a = arena_new();
    FitCkpt ckpt = {.path = o.resume_path ? o.resume_path : o.load_path};
    o.ckpt = &ckpt;
    status = apply_overrides(a, d, &run, &o);
    if (status == EXIT_OK)
        status = session_run(a, &run, src, &o, t, d, w);
    fit_ckpt_free(&ckpt);
    arena_free(a);
    return status;
}

/* nnc [-i MODEL.nn]: the REPL, after loading the file if one is given. */
static int interactive(const Options *o, Target *t, Diag *d) {
    ReplDriver driver = {.ctx = t, .run = repl_run_model};
    Repl *r = repl_new(d, stdout, &driver, t);
    bool loaded = true;
    if (o->model_path) {
        char *load = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&load, &len);
        if (!f)
            die("open_memstream: out of memory");
        fprintf(f, ":load %s", o->model_path);
        fclose(f);
        loaded = repl_eval(r, "<command line>", load, len);
        free(load);
    }
    int status = repl_main(r);
    repl_free(r);
    return loaded ? status : EXIT_INVALID_MODEL;
}

/* Under mpirun every rank runs all of this; rank 0 alone prints and
 * writes files (the others' standard output goes nowhere). */
static int run_main(int argc, char **argv, Diag *d) {
    Options o;
    int status = parse_options(argc, argv, &o, d);
    if (nnrt_mpi_rank() > 0) {
        d->errors_only = true; /* every rank compiles the same model: its warnings, once, from rank 0 */
        if (!freopen("/dev/null", "w", stdout))
            die("cannot send rank %d's standard output to /dev/null", nnrt_mpi_rank());
        if (!o.predict_path) /* the predictions' file: rank 0 writes it (session.c), with every rank's rows */
            o.out_path = NULL;
    }
    if (status == EXIT_OK && o.help) {
        usage(stdout);
        return EXIT_OK;
    }
    if (status == EXIT_OK && !o.version && !o.interactive)
        status = check_options(&o, d);
    if (status != EXIT_OK)
        return status;
    /* Chosen once: every stage compiles for this target. An object runs
     * elsewhere: by default on any x86-64 CPU since Haswell (2013) and
     * Excavator (2015), AVX2 and FMA, the level most distributions build
     * for next, where the host's AVX-512 would exclude most machines. */
    Target *t = o.march ? target_named(o.march) : o.emit == EMIT_OBJ ? target_named("x86-64-v3") : target_host();
    if (!t) {
        const char *near = target_closest(o.march);
        diag_plain(d, "unknown --march '%s'%s%s%s; expected native, x86-64, x86-64-v2, x86-64-v3, x86-64-v4 or an "
                       "x86 CPU name (skylake, znver3...)", o.march, near ? "; did you mean '" : "", near ? near : "",
                   near ? "'?" : "");
        return EXIT_USAGE;
    }
    if (o.version) {
        char host[256];
        target_describe(t, host, sizeof host);
        printf("nnc %s (LLVM %s; host %s)\n", NNC_VERSION, NNC_LLVM_VERSION, host);
    } else if (o.interactive) {
        status = interactive(&o, t, d);
    } else {
        FitCkpt ckpt = {.path = o.resume_path ? o.resume_path : o.load_path};
        o.ckpt = &ckpt;
        Arena *a = arena_new();
        status = run(a, &o, t, d);
        arena_free(a);
        fit_ckpt_free(&ckpt);
    }
    target_free(t);
    return status;
}

int main(int argc, char **argv) {
    nnrt_signals_install(); /* no temporary file left by a signal; Ctrl-C stops --train cleanly */
    Diag d;
    diag_init(&d, stderr);
    char err[256];
    if (!nnrt_mpi_init(&argc, &argv, err, sizeof err)) {
        diag_plain(&d, "%s", err);
        return EXIT_USAGE;
    }
    int status = run_main(argc, argv, &d);
    nnrt_mpi_finish(status);
    return status;
}
