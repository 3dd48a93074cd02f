/* main.c — the nnc driver: options, then the pipeline's stages in order.
 *
 *   source -> parse -> sema -> lower -> autodiff -> optim -> dce
 *          -> codegen -> JIT (host CPU) -> runtime (train, evaluate)
 *
 * Each --emit= stops after the stage it names and prints its result, so a
 * golden test can look at any point of the pipeline.
 */
#include "nnc.h"
#include "nnrt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NNC_DEFAULT_DATA "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
#define NNC_DEFAULT_TEST "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

static const char usage[] =
    "usage: nnc [options] MODEL.nn\n"
    "       nnc [-i MODEL.nn]\n"
    "\n"
    "Checks and compiles a model; with --train, trains it. Without a model\n"
    "file, or with -i, the REPL (:help there lists its commands).\n"
    "\n"
    "  --emit=KIND        print a stage's output and stop; KIND is one of\n"
    "                     ast   the syntax tree\n"
    "                     ir    the forward pass (tensor IR)\n"
    "                     grad  the training step: forward, backward, update\n"
    "                     kernels  the training step's IR and its schedule:\n"
    "                           which loop computes each node, where it lives\n"
    "                     llvm  the LLVM IR of the training step\n"
    "                     asm   its machine code for this CPU, optimised\n"
    "                     dot   the forward and gradient graphs for Graphviz\n"
    "  --train [PATH]     train on an IDX images file (raw or .gz); its labels\n"
    "                     file is found next to it. Without PATH: the model's\n"
    "                     data block if it has one, else\n"
    "                     " NNC_DEFAULT_DATA "\n"
    "  --target PATH      the targets of --train's samples, an IDX file of any\n"
    "                     element type: [n, the model's target elements]\n"
    "  --print-params     print every parameter after training\n"
    "  --test PATH        evaluate on this IDX images file after training\n"
    "                     (default: the t10k-* file next to the training data)\n"
    "  --epochs N, --batch N, --lr X\n"
    "                     override the model file's values\n"
    "  --schedule S       override the model's learning-rate schedule, e.g.\n"
    "                     'cosine(decay_steps = 500)'; S is constant, step,\n"
    "                     exponential, inverse_time or cosine, with the\n"
    "                     arguments of the model file's 'schedule'\n"
    "  --seed N           seed for initialisation and shuffling (default 1)\n"
    "  --report FILE      write a JSON summary of the training run\n"
    "  --save FILE        save a checkpoint (safetensors: weights, optimizer\n"
    "                     state, training position) after every epoch\n"
    "  --save-every N     ... and every N training steps\n"
    "  --save-best FILE   save a checkpoint whenever the monitored metric improves\n"
    "  --load FILE        start from the weights of a safetensors file\n"
    "  --resume FILE      continue the run saved in FILE exactly where it stopped\n"
    "                     (implies --train; saves to FILE unless --save is given)\n"
    "  --val PATH         validate on this IDX images file after every epoch\n"
    "  --val-split F      ... or on the last fraction F (0 < F < 1) of the training data\n"
    "  --early-stop N     stop when the monitored metric has not improved for N epochs\n"
    "  --monitor METRIC   loss, acc, val_loss or val_acc (default val_loss with\n"
    "                     validation, else loss)\n"
    "  --log FILE         write loss and accuracy per epoch as CSV\n"
    "  --plot FILE        draw them as an SVG (training and validation curves)\n"
    "  --eval PATH        print loss, accuracy per class and the confusion matrix\n"
    "                     on this labelled IDX file (with --load, or after --train)\n"
    "  --predict PATH     write the prediction for every sample of an IDX images\n"
    "                     file as CSV: index, class, probabilities (or the outputs)\n"
    "  -o FILE            where --predict writes (default: standard output)\n"
    "  --threads N        threads of the kernels (default: NNC_THREADS, else\n"
    "                     one per core); results do not depend on it\n"
    "  -O0                compile every IR node to its own naive loop nest\n"
    "                     (the reference); -O2 (default) uses kernels\n"
    "  --gradcheck        check every parameter's gradient against central\n"
    "                     differences in float64 and report the worst error\n"
    "  -i                 the REPL, after loading MODEL.nn\n"
    "  -h, --help         this text\n"
    "  --version          version and host CPU\n"
    "\n"
    "Environment: NNC_THREADS (threads), NNC_TARGET_FEATURES (e.g. -avx512f:\n"
    "a narrower target), NNC_PERF_MAP=1 (write /tmp/perf-PID.map for perf).\n"
    "\n"
    "Exit status: 0 success; 1 the model is invalid (errors were reported);\n"
    "2 usage or I/O error (bad option, unreadable file, bad data);\n"
    "3 training failed (the loss or a gradient became NaN or Inf);\n"
    "4 --gradcheck found a relative error of 1e-6 or more.\n";

#define GRADCHECK_TOLERANCE 1e-6

typedef enum { EMIT_NONE, EMIT_AST, EMIT_IR, EMIT_GRAD, EMIT_KERNELS, EMIT_LLVM, EMIT_ASM, EMIT_DOT } Emit;

typedef struct Options {
    const char *model_path;
    Emit emit;
    bool train, gradcheck;
    const char *train_path, *test_path, *report_path;
    const char *save_path, *best_path, *load_path, *resume_path, *val_path;
    const char *eval_path, *predict_path, *out_path, *log_path, *plot_path, *target_path;
    bool print_params;
    int64_t save_every, patience; /* 0: never */
    double val_split;             /* 0: none */
    int monitor;                  /* a FitMonitor; -1: the default */
    int64_t epochs, batch; /* 0: from the model */
    double lr;             /* 0: from the model */
    const char *schedule;  /* --schedule's text, or NULL */
    uint64_t seed;
    int opt; /* 0 or 2 */
    bool interactive;  /* -i, or no model file: the REPL */
    bool have_weights; /* the REPL's model has weights already */
} Options;

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Returns EXIT_OK, or EXIT_USAGE after printing the problem. */
static int parse_options(int argc, char **argv, Options *o, Diag *d) {
    *o = (Options){.seed = 1, .monitor = -1, .opt = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        /* --opt=value or --opt value for the options that take one. */
#define VALUE_OPT(name)                                                                \
    (strncmp(a, name "=", sizeof name) == 0 ? (val = a + sizeof name, true)            \
     : strcmp(a, name) == 0 && i + 1 < argc ? (val = argv[++i], true)                  \
                                             : false)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            exit(EXIT_OK);
        } else if (!strcmp(a, "--version")) {
            char host[256];
            jit_host_description(host, sizeof host);
            printf("nnc %s (LLVM %s; host %s)\n", NNC_VERSION, NNC_LLVM_VERSION, host);
            exit(EXIT_OK);
        } else if (!strncmp(a, "--emit=", 7)) {
            static const char *const kinds[] = {"ast", "ir", "grad", "kernels", "llvm", "asm", "dot", NULL};
            o->emit = EMIT_NONE;
            for (int k = 0; kinds[k]; k++)
                if (!strcmp(a + 7, kinds[k]))
                    o->emit = (Emit)(k + 1);
            if (o->emit == EMIT_NONE) {
                const char *near = closest_name(a + 7, kinds);
                diag_plain(d, "unknown --emit kind '%s'%s%s%s; expected ast, ir, grad, kernels, llvm, asm or dot", a + 7,
                           near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
                return EXIT_USAGE;
            }
        } else if (!strcmp(a, "-i")) {
            o->interactive = true;
        } else if (!strncmp(a, "--train=", 8)) {
            o->train = true;
            o->train_path = a + 8;
        } else if (!strcmp(a, "--train")) {
            o->train = true;
            /* The path is optional: take the next word unless it is an option or the model. */
            if (i + 1 < argc && argv[i + 1][0] != '-' && !strstr(argv[i + 1], ".nn"))
                o->train_path = argv[++i];
        } else if (VALUE_OPT("--target")) {
            o->target_path = val;
        } else if (!strcmp(a, "--print-params")) {
            o->print_params = true;
        } else if (VALUE_OPT("--test")) {
            o->test_path = val;
        } else if (VALUE_OPT("--report")) {
            o->report_path = val;
        } else if (VALUE_OPT("--epochs")) {
            if (!parse_int(val, 1, 1000000, &o->epochs)) {
                diag_plain(d, "--epochs expects an integer from 1 to 1000000, found '%s'", val);
                return EXIT_USAGE;
            }
        } else if (VALUE_OPT("--batch")) {
            if (!parse_int(val, 1, 65536, &o->batch)) {
                diag_plain(d, "--batch expects an integer from 1 to 65536, found '%s'", val);
                return EXIT_USAGE;
            }
        } else if (VALUE_OPT("--threads")) {
            int64_t t;
            if (!parse_int(val, 1, 256, &t)) {
                diag_plain(d, "--threads expects an integer from 1 to 256, found '%s'", val);
                return EXIT_USAGE;
            }
            nnrt_set_threads((int)t);
        } else if (!strcmp(a, "-O0") || !strcmp(a, "-O2")) {
            o->opt = a[2] - '0';
        } else if (VALUE_OPT("--seed")) {
            int64_t s;
            if (!parse_int(val, 0, INT64_MAX, &s)) {
                diag_plain(d, "--seed expects a non-negative integer, found '%s'", val);
                return EXIT_USAGE;
            }
            o->seed = (uint64_t)s;
        } else if (VALUE_OPT("--lr")) {
            char *end;
            o->lr = strtod(val, &end);
            if (end == val || *end || !(o->lr > 0) || o->lr > 1e6) {
                diag_plain(d, "--lr expects a positive number, found '%s'", val);
                return EXIT_USAGE;
            }
        } else if (VALUE_OPT("--schedule")) {
            o->schedule = val;
        } else if (VALUE_OPT("--save")) {
            o->save_path = val;
        } else if (VALUE_OPT("--save-best")) {
            o->best_path = val;
        } else if (VALUE_OPT("--load")) {
            o->load_path = val;
        } else if (VALUE_OPT("--resume")) {
            o->resume_path = val;
            o->train = true;
        } else if (VALUE_OPT("--val")) {
            o->val_path = val;
        } else if (VALUE_OPT("--eval")) {
            o->eval_path = val;
        } else if (VALUE_OPT("--predict")) {
            o->predict_path = val;
        } else if (VALUE_OPT("-o")) {
            o->out_path = val;
        } else if (VALUE_OPT("--log")) {
            o->log_path = val;
        } else if (VALUE_OPT("--plot")) {
            o->plot_path = val;
        } else if (VALUE_OPT("--save-every")) {
            if (!parse_int(val, 1, INT64_MAX, &o->save_every)) {
                diag_plain(d, "--save-every expects a positive number of steps, found '%s'", val);
                return EXIT_USAGE;
            }
        } else if (VALUE_OPT("--early-stop")) {
            if (!parse_int(val, 1, 1000000, &o->patience)) {
                diag_plain(d, "--early-stop expects a patience from 1 to 1000000 epochs, found '%s'", val);
                return EXIT_USAGE;
            }
        } else if (VALUE_OPT("--val-split")) {
            char *end;
            o->val_split = strtod(val, &end);
            if (end == val || *end || !(o->val_split > 0 && o->val_split < 1)) {
                diag_plain(d, "--val-split expects a fraction between 0 and 1, found '%s'", val);
                return EXIT_USAGE;
            }
        } else if (VALUE_OPT("--monitor")) {
            static const char *const metrics[] = {"loss", "acc", "val_loss", "val_acc", NULL};
            for (int k = 0; metrics[k]; k++)
                if (!strcmp(val, metrics[k]))
                    o->monitor = k;
            if (o->monitor < 0) {
                const char *near = closest_name(val, metrics);
                diag_plain(d, "unknown --monitor metric '%s'%s%s%s; expected loss, acc, val_loss or val_acc",
                           val, near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
                return EXIT_USAGE;
            }
        } else if (!strcmp(a, "--gradcheck")) {
            o->gradcheck = true;
        } else if (a[0] == '-' && a[1]) {
            static const char *const known[] = {"--emit", "--train", "--test", "--report", "--epochs", "--batch",
                                                "--seed", "--lr", "--schedule", "--threads", "--gradcheck", "--help", "--version",
                                                "--save", "--save-every", "--save-best", "--load", "--resume",
                                                "--val", "--val-split", "--early-stop", "--monitor", "--log",
                                                "--plot", "--eval", "--predict", "-i", "--target", "--print-params",
                                                NULL};
            const char *near = closest_name(a, known);
            diag_plain(d, "unknown option '%s'%s%s%s (see nnc --help)", a, near ? "; did you mean '" : "",
                       near ? near : "", near ? "'?" : "");
            return EXIT_USAGE;
        } else if (o->model_path) {
            diag_plain(d, "more than one model file: '%s' and '%s'", o->model_path, a);
            return EXIT_USAGE;
        } else {
            o->model_path = a;
        }
#undef VALUE_OPT
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
                              : o->log_path ? "--log" : o->plot_path ? "--plot"
                              : o->target_path ? "--target" : o->print_params ? "--print-params" : NULL;
    if (needs_train && !o->train) {
        diag_plain(d, "%s needs --train (or --resume)", needs_train);
        return EXIT_USAGE;
    }
    if ((o->eval_path || o->predict_path) && !o->train && !o->load_path && !o->have_weights) {
        diag_plain(d, "%s needs weights: --load FILE, or --train", o->eval_path ? "--eval" : "--predict");
        return EXIT_USAGE;
    }
    if (o->save_every && !o->save_path && !o->resume_path) {
        diag_plain(d, "--save-every needs --save FILE (or --resume FILE) to save to");
        return EXIT_USAGE;
    }
    if (o->out_path && !o->predict_path) {
        diag_plain(d, "-o names the --predict output; there is no --predict");
        return EXIT_USAGE;
    }
    bool validates = o->val_path || o->val_split;
    if (o->monitor >= MONITOR_VAL_LOSS && !validates) {
        diag_plain(d, "--monitor %s needs a validation set (--val or --val-split)",
                   fit_monitor_name((FitMonitor)o->monitor));
        return EXIT_USAGE;
    }
    if (o->monitor < 0)
        o->monitor = validates ? MONITOR_VAL_LOSS : MONITOR_LOSS;
    return EXIT_OK;
}

/* ---------------------------------------------------------------- compile */

/* The evaluation sets. */
enum { SET_TEST, SET_VAL, SET_EVAL, SET_PREDICT, NSETS };

/* The step functions a run needs: one for training, one for evaluation,
 * each for every batch size up to the model's (the partial last batch of a
 * set too). */
typedef struct Compiled {
    Jit *jit;
    Graph *train; /* the training graph: its slots describe every buffer */
    const Schedule *sched;
    NnrtStep train_step, eval_step;
    int (*finite)(void **slots); /* the NaN/Inf guard of the training step's state */
    size_t arena_bytes;
} Compiled;

/* The training and the evaluation step, scheduled to agree on where the
 * weights live (layout_choose). */
typedef struct Plan {
    Graph *g[2];
    Schedule *s[2];
} Plan;

static Plan plan_steps(Arena *a, const Model *m, int opt, InputType in) {
    Plan p;
    for (int i = 0; i < 2; i++) {
        p.g[i] = step_graph(a, m, i == 0 ? STEP_TRAIN : STEP_EVAL, m->batch, DT_F32, in);
        p.s[i] = schedule(a, p.g[i], opt);
    }
    layout_choose(a, p.g[0], p.s[0], p.g[1], p.s[1]);
    return p;
}

static bool compile_steps(Arena *a, const Model *m, int opt, InputType in, Compiled *c, Diag *d) {
    /* One module per function, so they compile in parallel; the training
     * step, the larger, first. */
    enum { NFN = 2 };
    const char *names[NFN] = {"train_step", "eval_step"};
    NnrtStep *steps[NFN] = {&c->train_step, &c->eval_step};
    CgModule *mods[NFN];
    Plan p = plan_steps(a, m, opt, in);
    c->train = p.g[0];
    c->sched = p.s[0];
    for (int i = 0; i < NFN; i++) {
        mods[i] = cg_module_new(names[i]);
        cg_add_step(mods[i], names[i], p.g[i], p.s[i]);
        if (p.s[i]->arena_bytes > c->arena_bytes)
            c->arena_bytes = p.s[i]->arena_bytes;
    }
    cg_add_guard(mods[0], "state_finite", c->train, c->sched);
    char err[1024];
    c->jit = jit_compile_modules(mods, NFN, err, sizeof err); /* takes the modules */
    if (!c->jit) {
        diag_plain(d, "%s", err);
        return false;
    }
    if (getenv("NNC_PERF_MAP") && !jit_write_perf_map(c->jit, err, sizeof err)) {
        diag_plain(d, "%s", err);
        return false;
    }
    for (int i = 0; i < NFN; i++) {
        *steps[i] = (NnrtStep){(NnrtStepFn)jit_lookup(c->jit, names[i], err, sizeof err), (size_t)m->batch};
        if (!steps[i]->fn) {
            diag_plain(d, "%s", err);
            return false;
        }
    }
    c->finite = (int (*)(void **))jit_lookup(c->jit, "state_finite", err, sizeof err);
    if (!c->finite) {
        diag_plain(d, "%s", err);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- train */

/* The parameter and optimizer-state buffers, initialised from the seed:
 * each parameter as its slot says (init.c), optimizer state zero. */
static void **alloc_slots(const Graph *g, uint64_t seed) {
    void **slots = xrealloc(NULL, (size_t)g->nslots, sizeof *slots);
    NnrtRng rng;
    nnrt_rng_seed(&rng, seed ^ 0x9e3779b97f4a7c15ull); /* a stream apart from shuffling */
    for (int s = 0; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        slots[s] = NULL;
        if (sl->kind != SLOT_PARAM && sl->kind != SLOT_STATE)
            continue;
        size_t n = (size_t)shape_elems(&sl->shape);
        slots[s] = xcalloc64(n, sizeof(float));
        NnrtInit zeros = {.kind = NNRT_INIT_ZEROS};
        nnrt_init_fill(&rng, sl->kind == SLOT_STATE ? &zeros : &sl->init, sl->fan_in, sl->fan_out, slots[s], n, 4);
    }
    return slots;
}

static bool load_data(const char *images, size_t classes, size_t sample, NnrtDataset *ds, Diag *d) {
    char labels[4096], err[1024];
    /* A mistyped path is the likelier problem than a missing labels file:
     * say so rather than look for labels beside a file that is not there. */
    if (access(images, F_OK) != 0) {
        diag_plain(d, "cannot open '%s': %s", images, strerror(errno));
        return false;
    }
    if (!nnrt_find_labels(images, labels, sizeof labels)) {
        diag_plain(d, "no labels file next to '%s' (expected e.g. train-labels-idx1-ubyte[.gz] beside "
                      "train-images-idx3-ubyte[.gz])", images);
        return false;
    }
    if (!nnrt_dataset_load(images, labels, classes, ds, err, sizeof err)) {
        diag_plain(d, "%s", err);
        return false;
    }
    if (ds->sample_size != sample) {
        diag_plain(d, "'%s' holds samples of %zu elements, but the model's input has %zu", images,
                   ds->sample_size, sample);
        nnrt_dataset_free(ds);
        return false;
    }
    return true;
}

/* Elements [*i, ...) of a float tensor of shape s from axis `axis` on, as
 * nested lists like the language's literals. */
static void print_nested(FILE *out, const float *v, const Shape *s, int axis, int64_t *i) {
    if (axis == s->rank) {
        fprintf(out, "%.7g", (double)v[(*i)++]);
        return;
    }
    fputc('[', out);
    for (int64_t k = 0; k < s->dim[axis]; k++) {
        if (k)
            fputs(", ", out);
        print_nested(out, v, s, axis + 1, i);
    }
    fputc(']', out);
}

/* --print-params: "NAME = [..]" for every parameter, as float32 holds it. */
static void print_params(FILE *out, const Graph *g, void **slots) {
    for (int s = 0; s < g->nslots; s++) {
        if (g->slots[s].kind != SLOT_PARAM)
            continue;
        int64_t i = 0;
        fprintf(out, "%s = ", g->slots[s].name);
        print_nested(out, slots[s], &g->slots[s].shape, 0, &i);
        fputc('\n', out);
    }
}

/* Every dataset of a run; `have` says which were loaded. */
typedef struct Data {
    const char *train_path, *test_path;
    char test_buf[4096];
    NnrtDataset train, set[NSETS];
    bool have_train, have[NSETS];
} Data;

static void data_free(Data *dt) {
    if (dt->have_train)
        nnrt_dataset_free(&dt->train);
    for (int k = 0; k < NSETS; k++)
        if (dt->have[k])
            nnrt_dataset_free(&dt->set[k]);
}

/* The steps take uint8 images as they are, and scale them themselves, when
 * every set of the run is uint8: a batch is then copied, where converting
 * it was most of a small model's time outside the kernels. */
static InputType data_input(const Data *dt) {
    bool any = dt->have_train, all = !dt->have_train || dt->train.images.type == NNRT_U8;
    for (int k = 0; k < NSETS; k++)
        if (dt->have[k]) {
            any = true;
            all = all && dt->set[k].images.type == NNRT_U8;
        }
    return any && all ? INPUT_U8 : INPUT_FLOAT;
}

/* Class indices are checked against the classes of a model that takes them. */
static size_t model_classes(const Model *m) {
    bool indices = (m->loss == LOSS_CROSSENTROPY || m->loss == LOSS_NLL) && m->label_size == 1 && !m->several_losses;
    return indices ? (size_t)m->output.dim[0] : 0;
}

/* The training set from --train PATH --target PATH, or from the model's
 * data block; false (with *status) if neither applies. */
static bool load_targets(const Model *m, const Options *o, Data *dt, Diag *d, int *status) {
    char err[1024];
    *status = EXIT_USAGE;
    if (o->target_path) {
        if (!o->train_path) {
            diag_plain(d, "--target names the targets of --train PATH's samples; give that PATH");
            return true;
        }
        if (!nnrt_dataset_load_targets(o->train_path, o->target_path, (size_t)m->label_size, &dt->train, err,
                                       sizeof err)) {
            diag_plain(d, "%s", err);
            return true;
        }
        dt->train_path = o->train_path;
    } else if (!o->train_path && m->data) {
        if (!nnrt_dataset_from_memory((size_t)m->data->n, m->data->x, (size_t)shape_elems(&m->input), m->data->y,
                                      (size_t)m->label_size, &dt->train, err, sizeof err)) {
            diag_plain(d, "%s", err);
            return true;
        }
        dt->train_path = "the model's data";
    } else {
        return false;
    }
    dt->have_train = true;
    if (dt->train.sample_size != (size_t)shape_elems(&m->input)) {
        diag_plain(d, "'%s' holds samples of %zu elements, but the model's input has %lld", dt->train_path,
                   dt->train.sample_size, (long long)shape_elems(&m->input));
        return true;
    }
    *status = EXIT_OK;
    return true;
}

static int load_all(const Model *m, const Options *o, Data *dt, Diag *d) {
    size_t classes = model_classes(m);
    size_t sample = (size_t)shape_elems(&m->input);
    char err[1024];
    int status;
    const char *labelled = o->test_path ? "--test" : o->val_path ? "--val" : o->eval_path ? "--eval" : NULL;
    if (m->label_size > 1 && labelled) {
        diag_plain(d, "%s reads a labels file (one label per sample), but model %s has targets of %lld elements per "
                      "sample; validate with --val-split", labelled, m->name, (long long)m->label_size);
        return EXIT_USAGE;
    }
    if (o->train && load_targets(m, o, dt, d, &status)) {
        if (status != EXIT_OK)
            return status;
        dt->test_path = o->test_path;
        if (dt->test_path && !(dt->have[SET_TEST] = load_data(dt->test_path, classes, sample,
                                                              &dt->set[SET_TEST], d)))
            return EXIT_USAGE;
    } else if (o->train && m->label_size > 1) {
        diag_plain(d, "model %s has targets of %lld elements per sample: give them with --target FILE (or a "
                      "data block in the model)", m->name, (long long)m->label_size);
        return EXIT_USAGE;
    } else if (o->train) {
        dt->train_path = o->train_path;
        if (!dt->train_path) {
            if (access(NNC_DEFAULT_DATA, R_OK) != 0) {
                diag_plain(d, "--train without a path uses %s, which is not there (apt-get install "
                              "dataset-fashion-mnist)", NNC_DEFAULT_DATA);
                return EXIT_USAGE;
            }
            dt->train_path = NNC_DEFAULT_DATA;
            printf("no data given: training on Fashion-MNIST from %s\n", dt->train_path);
        }
        dt->test_path = o->test_path;
        if (!dt->test_path && nnrt_find_test(dt->train_path, dt->test_buf, sizeof dt->test_buf))
            dt->test_path = dt->test_buf;
        if (!(dt->have_train = load_data(dt->train_path, classes, sample, &dt->train, d)))
            return EXIT_USAGE;
        if (dt->test_path && !(dt->have[SET_TEST] = load_data(dt->test_path, classes, sample,
                                                              &dt->set[SET_TEST], d)))
            return EXIT_USAGE;
    }
    if (o->train) {
        if (o->val_path && !(dt->have[SET_VAL] = load_data(o->val_path, classes, sample, &dt->set[SET_VAL], d)))
            return EXIT_USAGE;
        if (o->val_split) {
            size_t n_val = (size_t)((double)dt->train.n * o->val_split);
            if (!(dt->have[SET_VAL] = nnrt_dataset_split(&dt->train, n_val, &dt->set[SET_VAL], err, sizeof err))) {
                diag_plain(d, "--val-split %g: %s", o->val_split, err);
                return EXIT_USAGE;
            }
        }
    }
    if (o->eval_path && !(dt->have[SET_EVAL] = load_data(o->eval_path, classes, sample, &dt->set[SET_EVAL], d)))
        return EXIT_USAGE;
    if (o->predict_path) {
        if (!(dt->have[SET_PREDICT] = nnrt_dataset_load_unlabelled(o->predict_path, (size_t)m->label_size, &dt->set[SET_PREDICT], err,
                                                                   sizeof err))) {
            diag_plain(d, "%s", err);
            return EXIT_USAGE;
        }
        if (dt->set[SET_PREDICT].sample_size != sample) {
            diag_plain(d, "'%s' holds samples of %zu elements, but the model's input has %zu", o->predict_path,
                       dt->set[SET_PREDICT].sample_size, sample);
            return EXIT_USAGE;
        }
    }
    return EXIT_OK;
}

/* Trains (with --train or --resume), then evaluates and predicts, with
 * weights from --load or --resume if given. */
/* With `keep`, the weights are keep's (made if it has none) and stay there. */
static int session(Arena *a, const Model *m, const Source *src, const Options *o, Diag *d, FitWeights *keep) {
    Data dt = {0};
    int status = load_all(m, o, &dt, d);
    if (status != EXIT_OK) {
        data_free(&dt);
        return status;
    }
    /* The checkpoint is loaded (and checked against the model's slots)
     * before compiling: a bad file is reported at once, and cheaply. */
    Graph *g = step_graph(a, m, STEP_TRAIN, m->batch, DT_F32, INPUT_FLOAT);
    void **slots = keep && keep->slots ? keep->slots : alloc_slots(g, o->seed);
    FitHook hook = {
        .diag = d, .arena = a, .model = m, .graph = g, .slots = slots,
        .info = {.model_name = m->name, .model_hash = fit_model_hash(src), .seed = o->seed,
                 .batch = (size_t)m->batch, .samples = dt.have_train ? dt.train.n : 0,
                 .resume = o->resume_path != NULL},
        .save_path = o->save_path ? o->save_path : o->resume_path, .best_path = o->best_path,
        .log_path = o->log_path, .plot_path = o->plot_path,
        .save_every = (size_t)o->save_every, .patience = (int)o->patience, .monitor = (FitMonitor)o->monitor,
        .saved_epoch = -1,
    };
    fit_state_init(&hook.st, o->seed);
    const char *weights = o->resume_path ? o->resume_path : o->load_path;
    Compiled c = {0};
    if (weights && !fit_load(d, weights, g, slots, &hook.info, &hook.st))
        status = EXIT_USAGE;
    double t0 = nnrt_now();
    InputType in = data_input(&dt);
    if (status == EXIT_OK && !compile_steps(a, m, o->opt, in, &c, d))
        status = EXIT_USAGE;
    double compile_secs = nnrt_now() - t0;
    /* CSV on standard output keeps it to itself: the rest goes to stderr then. */
    FILE *info = o->predict_path && !o->out_path ? stderr : stdout;
    hook.out = info;
    hook.step = c.train;
    hook.sched = c.sched;
    bool in_panels = status == EXIT_OK; /* the compiled steps' layout, until the weights leave the session */
    if (in_panels)
        layout_convert(g, c.sched, slots, true);
    if (status == EXIT_OK) {
        fprintf(info, "model %s: %lld parameters; compiled in %.0f ms\n", m->name, (long long)ir_param_count(g),
                compile_secs * 1e3);
        fflush(info);
    }
    NnrtTrainSpec spec = {
        .dtype_bytes = 4,
        .input_u8 = in == INPUT_U8,
        .outputs = (size_t)shape_elems(&m->output),
        .classify = m->label_size == 1 && !m->several_losses &&
                    (model_classes(m) > 0 || m->output.dim[0] > 1),
        .train = c.train_step, .eval = c.eval_step,
        .slots = slots, .nslots = (size_t)g->nslots,
        .arena_bytes = c.arena_bytes,
        .epochs = (int)m->epochs,
        .seed = o->seed,
        .out = info,
        .val = dt.have[SET_VAL] ? &dt.set[SET_VAL] : NULL,
        .resume = o->resume_path ? &hook.st.pos : NULL,
        .finite = c.finite,
        .ctx = &hook, .after_step = fit_after_step, .on_nonfinite = fit_on_nonfinite,
    };
    char err[1024];
    if (status == EXIT_OK && dt.have_train) {
        if (o->resume_path)
            fprintf(info, "resuming from %s at epoch %d, step %zu\n", o->resume_path, hook.st.pos.epoch + 1,
                    hook.st.pos.step);
        fprintf(info, "training on %s (%zu samples", dt.train_path, dt.train.n);
        if (spec.val)
            fprintf(info, ", validating on %zu", spec.val->n);
        fprintf(info, "), %lld epochs, batch %lld, lr %g, seed %llu\n", (long long)m->epochs, (long long)m->batch,
                m->lr, (unsigned long long)o->seed);
        fflush(info);
        NnrtTrainResult res = {0};
        bool trained = nnrt_train(&spec, &dt.train, dt.have[SET_TEST] ? &dt.set[SET_TEST] : NULL, &res, err,
                                  sizeof err);
        if (!trained && res.failure == NNRT_FAIL_INTERRUPTED) { /* Ctrl-C in the REPL: not an error */
            fprintf(info, "%s; the weights are those after it\n", err);
        } else if (!trained) {
            if (!(res.failure == NNRT_FAIL_NONFINITE && hook.nan_reported))
                diag_plain(d, "%s", err);
            status = res.failure == NNRT_FAIL_HOOK ? EXIT_USAGE : EXIT_TRAINING;
            if (res.failure == NNRT_FAIL_NONFINITE && hook.saved_epoch >= 0)
                fprintf(info, "kept the last good checkpoint: %s (%s epoch %d, step %zu)\n", hook.save_path,
                        hook.saved_step ? "in" : "after", hook.saved_step ? hook.saved_epoch + 1 : hook.saved_epoch,
                        hook.saved_step);
        }
        if (status == EXIT_OK && o->report_path) {
            NnrtReport r = {.model = o->model_path, .train_path = dt.train_path, .test_path = dt.test_path,
                            .seed = o->seed, .batch = (size_t)m->batch, .lr = m->lr,
                            .compile_secs = compile_secs, .input_u8 = spec.input_u8, .result = &res};
            if (!nnrt_report_write(o->report_path, &r, err, sizeof err)) {
                diag_plain(d, "%s", err);
                status = EXIT_USAGE;
            }
        }
        nnrt_train_result_free(&res);
        if (status == EXIT_OK && o->print_params) {
            void **rows = layout_rows(g, c.sched, slots);
            print_params(info, g, rows);
            layout_rows_free(g, c.sched, rows);
        }
    }
    if (status == EXIT_OK && dt.have[SET_EVAL]) {
        fprintf(info, "evaluating on %s\n", o->eval_path);
        if (!nnrt_eval_report(&spec, &dt.set[SET_EVAL], info, err, sizeof err)) {
            diag_plain(d, "%s", err);
            status = EXIT_TRAINING;
        }
    }
    if (status == EXIT_OK && dt.have[SET_PREDICT]) {
        FILE *out = o->out_path ? fopen(o->out_path, "w") : stdout;
        if (!out) {
            diag_plain(d, "%s: %s", o->out_path, strerror(errno));
            status = EXIT_USAGE;
        } else {
            if (!nnrt_predict_csv(&spec, &dt.set[SET_PREDICT], out, err, sizeof err)) {
                diag_plain(d, "%s", err);
                status = EXIT_TRAINING;
            }
            if ((out != stdout ? fclose(out) : fflush(out)) != 0 && status == EXIT_OK) {
                diag_plain(d, "%s: %s", o->out_path ? o->out_path : "standard output", strerror(errno));
                status = EXIT_USAGE;
            }
        }
        if (status == EXIT_OK && o->out_path)
            printf("wrote %zu predictions to %s\n", dt.set[SET_PREDICT].n, o->out_path);
    }
    fit_state_free(&hook.st);
    if (in_panels)
        layout_convert(g, c.sched, slots, false);
    if (keep) {
        *keep = (FitWeights){slots, g->nslots};
    } else {
        FitWeights w = {slots, g->nslots};
        fit_weights_free(&w);
    }
    jit_free(c.jit);
    data_free(&dt);
    return status;
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
    if (o->schedule) { /* checked like the file's, its errors located in the option's text */
        Source *opt = arena_alloc(a, sizeof *opt);
        *opt = (Source){.path = "--schedule", .text = o->schedule, .len = strlen(o->schedule)};
        AstItem *it = parse_schedule_option(a, d, opt);
        if (!it || !sema_schedule(a, d, m, it))
            return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int run(Arena *a, const Options *o, Diag *d) {
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
    if (ast->nmodels == 0 && (o->train || o->gradcheck || o->emit != EMIT_NONE)) {
        diag_plain(d, "'%s' has no model for %s", o->model_path,
                   o->train ? "--train" : o->gradcheck ? "--gradcheck" : "--emit");
        return EXIT_USAGE;
    }
    if (ast->nstmts) {
        int status = script_run(d, ast, stdout);
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
    if (apply_overrides(a, d, m, o) != EXIT_OK)
        return EXIT_USAGE;

    if (o->gradcheck) {
        Graph *g = ir_new(a, DT_F64);
        NodeId pred;
        NodeId loss = model_forward(g, m, 4, INPUT_FLOAT, &pred);
        char err[1024];
        double worst = gradcheck(g, loss, m->output.dim[0], o->seed, 50, o->opt, stdout, err, sizeof err);
        if (worst < 0) {
            diag_plain(d, "%s", err);
            return EXIT_USAGE;
        }
        bool ok = worst < GRADCHECK_TOLERANCE;
        printf("gradcheck %s: max rel. error %.2e (float64, central differences): %s\n", m->name, worst,
               ok ? "ok" : "FAILED");
        return ok ? EXIT_OK : EXIT_GRADCHECK;
    }
    switch (o->emit) {
    case EMIT_IR:
        ir_print(stdout, step_graph(a, m, STEP_EVAL, m->batch, DT_F32, INPUT_FLOAT));
        return EXIT_OK;
    case EMIT_GRAD:
        ir_print(stdout, step_graph(a, m, STEP_TRAIN, m->batch, DT_F32, INPUT_FLOAT));
        return EXIT_OK;
    case EMIT_DOT:
        dot_print(stdout, step_graph(a, m, STEP_TRAIN, m->batch, DT_F32, INPUT_FLOAT), m->name);
        return EXIT_OK;
    case EMIT_KERNELS: {
        Plan p = plan_steps(a, m, o->opt, INPUT_FLOAT);
        ir_print(stdout, p.g[0]);
        schedule_print(stdout, p.g[0], p.s[0]);
        return EXIT_OK;
    }
    case EMIT_LLVM:
    case EMIT_ASM: {
        Plan p = plan_steps(a, m, o->opt, INPUT_FLOAT);
        CgModule *mod = cg_module_new(m->name);
        cg_add_step(mod, "train_step", p.g[0], p.s[0]);
        char err[1024];
        bool ok = true;
        if (o->emit == EMIT_LLVM)
            cg_print(mod, stdout);
        else if (!(ok = jit_emit_asm(mod, stdout, err, sizeof err)))
            diag_plain(d, "%s", err);
        cg_module_free(mod);
        return ok ? EXIT_OK : EXIT_USAGE;
    }
    case EMIT_AST:
    case EMIT_NONE:
        break;
    }
    if (o->train || o->eval_path || o->predict_path)
        return session(a, m, &src, o, d, NULL);
    /* No training: compile the training step anyway, so a model that passes
     * this check is known to go through the whole pipeline. */
    double t0 = nnrt_now();
    Compiled c = {0};
    int status = compile_steps(a, m, o->opt, INPUT_FLOAT, &c, d) ? EXIT_OK : EXIT_USAGE;
    if (status == EXIT_OK)
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
    (void)ctx;
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
    o.model_path = src->path;
    o.have_weights = w->slots != NULL;
    if (status == EXIT_OK && !o.train && !o.eval_path && !o.predict_path)
        o.eval_path = NNC_DEFAULT_TEST; /* :eval MODEL */
    if (status != EXIT_OK || (status = check_options(&o, d)) != EXIT_OK)
        return status;
    Model run = *m;
    Arena *a = arena_new();
    status = apply_overrides(a, d, &run, &o);
    if (status == EXIT_OK)
        status = session(a, &run, src, &o, d, w);
    arena_free(a);
    return status;
}

/* nnc [-i MODEL.nn]: the REPL, after loading the file if one is given. */
static int interactive(const Options *o, Diag *d) {
    ReplDriver driver = {.run = repl_run_model};
    Repl *r = repl_new(d, stdout, &driver);
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

int main(int argc, char **argv) {
    Diag d;
    diag_init(&d, stderr);
    Options o;
    int status = parse_options(argc, argv, &o, &d);
    if (status == EXIT_OK && o.interactive)
        return interactive(&o, &d);
    if (status == EXIT_OK)
        status = check_options(&o, &d);
    if (status != EXIT_OK)
        return status;
    Arena *a = arena_new();
    status = run(a, &o, &d);
    arena_free(a);
    return status;
}

