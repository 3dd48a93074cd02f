/* main.c — the nnc driver: options, then the pipeline's stages in order.
 *
 *   source -> parse -> sema -> lower -> autodiff -> optim -> dce
 *          -> codegen -> JIT (O3, host CPU) -> runtime (train, evaluate)
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

static const char usage[] =
    "usage: nnc [options] MODEL.nn\n"
    "\n"
    "Checks and compiles a model; with --train, trains it.\n"
    "\n"
    "  --emit=KIND        print a stage's output and stop; KIND is one of\n"
    "                     ast   the syntax tree\n"
    "                     ir    the forward pass (tensor IR)\n"
    "                     grad  the training step: forward, backward, update\n"
    "                     llvm  the LLVM IR of the training step\n"
    "                     asm   its machine code for this CPU, after O3\n"
    "  --train [PATH]     train on an IDX images file (raw or .gz); its labels\n"
    "                     file is found next to it. Without PATH:\n"
    "                     " NNC_DEFAULT_DATA "\n"
    "  --test PATH        evaluate on this IDX images file after training\n"
    "                     (default: the t10k-* file next to the training data)\n"
    "  --epochs N, --batch N, --lr X\n"
    "                     override the model file's values\n"
    "  --seed N           seed for initialisation and shuffling (default 1)\n"
    "  --report FILE      write a JSON summary of the training run\n"
    "  --gradcheck        check every parameter's gradient against central\n"
    "                     differences in float64 and report the worst error\n"
    "  -h, --help         this text\n"
    "  --version          version and host CPU\n"
    "\n"
    "Exit status: 0 success; 1 the model is invalid (errors were reported);\n"
    "2 usage or I/O error (bad option, unreadable file, bad data);\n"
    "3 training failed (the loss became NaN or Inf);\n"
    "4 --gradcheck found a relative error of 1e-6 or more.\n";

#define GRADCHECK_TOLERANCE 1e-6

typedef enum { EMIT_NONE, EMIT_AST, EMIT_IR, EMIT_GRAD, EMIT_LLVM, EMIT_ASM } Emit;

typedef struct Options {
    const char *model_path;
    Emit emit;
    bool train, gradcheck;
    const char *train_path, *test_path, *report_path;
    int64_t epochs, batch; /* 0: from the model */
    double lr;             /* 0: from the model */
    uint64_t seed;
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
    *o = (Options){.seed = 1};
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
            static const char *const kinds[] = {"ast", "ir", "grad", "llvm", "asm", NULL};
            o->emit = EMIT_NONE;
            for (int k = 0; kinds[k]; k++)
                if (!strcmp(a + 7, kinds[k]))
                    o->emit = (Emit)(k + 1);
            if (o->emit == EMIT_NONE) {
                const char *near = closest_name(a + 7, kinds);
                diag_plain(d, "unknown --emit kind '%s'%s%s%s; expected ast, ir, grad, llvm or asm", a + 7,
                           near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
                return EXIT_USAGE;
            }
        } else if (!strncmp(a, "--train=", 8)) {
            o->train = true;
            o->train_path = a + 8;
        } else if (!strcmp(a, "--train")) {
            o->train = true;
            /* The path is optional: take the next word unless it is an option or the model. */
            if (i + 1 < argc && argv[i + 1][0] != '-' && !strstr(argv[i + 1], ".nn"))
                o->train_path = argv[++i];
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
        } else if (!strcmp(a, "--gradcheck")) {
            o->gradcheck = true;
        } else if (a[0] == '-' && a[1]) {
            static const char *const known[] = {"--emit", "--train", "--test", "--report", "--epochs", "--batch",
                                                "--seed", "--lr", "--gradcheck", "--help", "--version", NULL};
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
    if (!o->model_path) {
        diag_plain(d, "no model file (see nnc --help)");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ---------------------------------------------------------------- compile */

/* The step functions a training run needs, compiled into one module. */
typedef struct Compiled {
    Jit *jit;
    Graph *train; /* the full-batch training graph: its slots describe every buffer */
    NnrtStep train_full, train_rem, eval_full, eval_rem;
    size_t arena_bytes;
} Compiled;

static void add_step(Arena *a, CgModule *mod, const Model *m, StepKind kind, size_t batch, const char *name,
                     size_t *arena_bytes, Graph **graph) {
    Graph *g = step_graph(a, m, kind, (int64_t)batch, DT_F32);
    BufferPlan p = plan_buffers(a, g);
    cg_add_step(mod, name, g, &p);
    if (p.arena_bytes > *arena_bytes)
        *arena_bytes = p.arena_bytes;
    if (graph)
        *graph = g;
}

static bool compile_steps(Arena *a, const Model *m, size_t n_train, size_t n_test, Compiled *c, Diag *d) {
    static const char *const names[4] = {"train_full", "train_rem", "eval_full", "eval_rem"};
    size_t b = (size_t)m->batch;
    size_t batches[4] = {b, n_train % b, b, n_test % b};
    NnrtStep *steps[4] = {&c->train_full, &c->train_rem, &c->eval_full, &c->eval_rem};
    CgModule *mod = cg_module_new(m->name);
    for (int i = 0; i < 4; i++)
        if (batches[i])
            add_step(a, mod, m, i < 2 ? STEP_TRAIN : STEP_EVAL, batches[i], names[i], &c->arena_bytes,
                     i == 0 ? &c->train : NULL);
    char err[1024];
    c->jit = jit_compile(mod, err, sizeof err); /* takes mod */
    if (!c->jit) {
        diag_plain(d, "%s", err);
        return false;
    }
    for (int i = 0; i < 4; i++) {
        *steps[i] = (NnrtStep){NULL, batches[i]};
        if (!batches[i])
            continue;
        /* The first lookup runs LLVM's code generator for the whole module. */
        steps[i]->fn = (NnrtStepFn)jit_lookup(c->jit, names[i], err, sizeof err);
        if (!steps[i]->fn) {
            diag_plain(d, "%s", err);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- train */

/* The parameter and optimizer-state buffers, initialised from the seed:
 * He-normal for layers followed by relu, Glorot-uniform otherwise, biases
 * and optimizer state zero (Keras' choices for these activations). */
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
        slots[s] = xrealloc(NULL, n, sizeof(float));
        NnrtInit init = sl->kind == SLOT_STATE || sl->is_bias ? NNRT_INIT_ZEROS
                        : sl->init_act == ACT_RELU            ? NNRT_INIT_HE_NORMAL
                                                              : NNRT_INIT_GLOROT_UNIFORM;
        nnrt_init_fill(&rng, init, sl->fan_in, sl->fan_out, slots[s], n, 4);
    }
    return slots;
}

static int64_t count_params(const Graph *g) {
    int64_t n = 0;
    for (int s = 0; s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM)
            n += shape_elems(&g->slots[s].shape);
    return n;
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

static int train(Arena *a, const Model *m, const Options *o, Diag *d) {
    const char *train_path = o->train_path;
    if (!train_path) {
        if (access(NNC_DEFAULT_DATA, R_OK) != 0) {
            diag_plain(d, "--train without a path uses %s, which is not there (apt-get install "
                          "dataset-fashion-mnist)", NNC_DEFAULT_DATA);
            return EXIT_USAGE;
        }
        train_path = NNC_DEFAULT_DATA;
        printf("no data given: training on Fashion-MNIST from %s\n", train_path);
    }
    char test_buf[4096];
    const char *test_path = o->test_path;
    if (!test_path && nnrt_find_test(train_path, test_buf, sizeof test_buf))
        test_path = test_buf;

    size_t classes = m->loss == LOSS_CROSSENTROPY ? (size_t)m->output.dim[0] : 0;
    size_t sample = (size_t)shape_elems(&m->input);
    NnrtDataset tr, te;
    if (!load_data(train_path, classes, sample, &tr, d))
        return EXIT_USAGE;
    if (test_path && !load_data(test_path, classes, sample, &te, d)) {
        nnrt_dataset_free(&tr);
        return EXIT_USAGE;
    }

    double t0 = nnrt_now();
    Compiled c = {0};
    if (!compile_steps(a, m, tr.n, test_path ? te.n : 0, &c, d)) {
        jit_free(c.jit);
        nnrt_dataset_free(&tr);
        if (test_path)
            nnrt_dataset_free(&te);
        return EXIT_USAGE;
    }
    double compile_secs = nnrt_now() - t0;
    printf("model %s: %lld parameters; compiled in %.0f ms\n", m->name, (long long)count_params(c.train),
           compile_secs * 1e3);
    printf("training on %s (%zu samples), %lld epochs, batch %lld, lr %g, seed %llu\n", train_path, tr.n,
           (long long)m->epochs, (long long)m->batch, m->lr, (unsigned long long)o->seed);
    fflush(stdout);

    void **slots = alloc_slots(c.train, o->seed);
    NnrtTrainSpec spec = {
        .dtype_bytes = 4,
        .outputs = (size_t)shape_elems(&m->output),
        .classify = m->loss == LOSS_CROSSENTROPY || (m->output.dim[0] > 1),
        .train_full = c.train_full, .train_rem = c.train_rem,
        .eval_full = c.eval_full, .eval_rem = c.eval_rem,
        .slots = slots, .nslots = (size_t)c.train->nslots,
        .arena_bytes = c.arena_bytes,
        .epochs = (int)m->epochs,
        .seed = o->seed,
        .out = stdout,
    };
    NnrtTrainResult res = {0};
    char err[1024];
    int status = EXIT_OK;
    if (!nnrt_train(&spec, &tr, test_path ? &te : NULL, &res, err, sizeof err)) {
        diag_plain(d, "%s", err);
        status = EXIT_TRAINING;
    }
    if (status == EXIT_OK && o->report_path) {
        NnrtReport r = {.model = o->model_path, .train_path = train_path, .test_path = test_path,
                        .seed = o->seed, .batch = (size_t)m->batch, .lr = m->lr,
                        .compile_secs = compile_secs, .result = &res};
        if (!nnrt_report_write(o->report_path, &r, err, sizeof err)) {
            diag_plain(d, "%s", err);
            status = EXIT_USAGE;
        }
    }
    nnrt_train_result_free(&res);
    for (int s = 0; s < c.train->nslots; s++)
        free(slots[s]);
    free(slots);
    jit_free(c.jit);
    nnrt_dataset_free(&tr);
    if (test_path)
        nnrt_dataset_free(&te);
    return status;
}

/* ---------------------------------------------------------------- the stages */

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
    Model *m = NULL;
    for (int i = 0; i < ast->nmodels; i++) {
        Model *mi = sema_model(a, d, &ast->models[i]);
        if (!m)
            m = mi;
    }
    if (d->errors || !m)
        return EXIT_INVALID_MODEL;
    if (o->epochs)
        m->epochs = o->epochs;
    if (o->batch)
        m->batch = o->batch;
    if (o->lr)
        m->lr = o->lr;

    if (o->gradcheck) {
        Graph *g = ir_new(a, DT_F64);
        NodeId pred;
        NodeId loss = lower_forward(g, m, 4, &pred);
        char err[1024];
        double worst = gradcheck(g, loss, m->output.dim[0], o->seed, 50, stdout, err, sizeof err);
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
        ir_print(stdout, step_graph(a, m, STEP_EVAL, m->batch, DT_F32));
        return EXIT_OK;
    case EMIT_GRAD:
        ir_print(stdout, step_graph(a, m, STEP_TRAIN, m->batch, DT_F32));
        return EXIT_OK;
    case EMIT_LLVM:
    case EMIT_ASM: {
        Graph *g = step_graph(a, m, STEP_TRAIN, m->batch, DT_F32);
        BufferPlan p = plan_buffers(a, g);
        CgModule *mod = cg_module_new(m->name);
        cg_add_step(mod, "train_step", g, &p);
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
    if (o->train)
        return train(a, m, o, d);
    /* No training: compile the training step anyway, so a model that passes
     * this check is known to go through the whole pipeline. */
    double t0 = nnrt_now();
    Compiled c = {0};
    int status = compile_steps(a, m, (size_t)m->batch, 0, &c, d) ? EXIT_OK : EXIT_USAGE;
    if (status == EXIT_OK)
        printf("model %s: %lld parameters; compiled in %.0f ms\n", m->name, (long long)count_params(c.train),
               (nnrt_now() - t0) * 1e3);
    jit_free(c.jit);
    return status;
}

int main(int argc, char **argv) {
    Diag d;
    diag_init(&d, stderr);
    Options o;
    int status = parse_options(argc, argv, &o, &d);
    if (status != EXIT_OK)
        return status;
    Arena *a = arena_new();
    status = run(a, &o, &d);
    arena_free(a);
    return status;
}
