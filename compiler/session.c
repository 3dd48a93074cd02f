/* session.c — one run of a compiled model on data: the data sets loaded
 * and checked against the model, the weights made or loaded, the steps
 * compiled (pipeline.c), then training, evaluation and prediction through
 * the runtime. main.c hands it the parsed options; the REPL's :train and
 * :eval come here too. */
#include "driver.h"
#include "nnc.h"
#include "nnrt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The evaluation sets. */
enum { SET_TEST, SET_VAL, SET_EVAL, SET_PREDICT, NSETS };

/* The columns of a table that hold the labels or targets and the inputs:
 * those the options name (--label, --target, --features) or, where they
 * name none, those the weights were trained on (their checkpoint's, or the
 * REPL's kept weights'), so that a test or prediction table is read as the
 * training table was without naming them again, its inputs found by name
 * in whatever order it has them. */
typedef struct Columns {
    const char *label, *features; /* NULL: none */
    char *targets;                /* "a,b" (owned); NULL: none */
    const NnrtClasses *inputs;    /* the inputs by name; NULL: none */
    bool kept;                    /* label and targets are the weights' (for messages) */
} Columns;

/* A data set of any format (nnrt_dataset_read), labelled by `labels` (an
 * array file's, or NULL) or the table's columns c. */
static bool load_data(const char *path, const char *labels, const Options *o, const Columns *c, const NnrtWant *w,
                      NnrtClasses *cl, NnrtDataset *ds, Diag *d) {
    char err[1024];
    /* A mistyped path is the likelier problem than a missing labels file:
     * say so rather than look for labels beside a file that is not there. */
    if (access(path, F_OK) != 0) {
        diag_plain(d, "cannot open '%s': %s", path, strerror(errno));
        return false;
    }
    NnrtDataSpec spec = {.label = c->label, .targets = c->targets, .features = c->features,
                         .feature_names = c->inputs, .no_header = o->no_header, .delimiter = o->delimiter,
                         .inputs = o->inputs, .outputs = o->targets, .kept = c->kept};
    if (nnrt_dataset_read(path, labels, &spec, w, cl, ds, err, sizeof err))
        return true;
    diag_plain(d, "%s", err);
    return false;
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

/* --print-params: "NAME = [..]" for every parameter and the model's state
 * (batchnorm's moving statistics: Keras' weights), as float32 holds it. */
static void print_params(FILE *out, const Graph *g, void **slots) {
    for (int s = 0; s < g->nslots; s++) {
        if (g->slots[s].kind != SLOT_PARAM && !g->slots[s].model_state)
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
    /* What the weights meant before the run (their checkpoint's, or the
     * REPL's kept weights'), and after it: a table's class names, target
     * and input columns' names and label column, the training set's or
     * the weights'. */
    FitMeaning weights;
    NnrtClasses classes, targets, features;
    char *label;
    Columns cols;
    double *mean, *std;  /* --normalize's, or a checkpoint's; NULL: none */
} Data;

static void data_free(Data *dt) {
    fit_meaning_free(&dt->weights);
    nnrt_classes_free(&dt->classes);
    nnrt_classes_free(&dt->targets);
    nnrt_classes_free(&dt->features);
    free(dt->label);
    free(dt->cols.targets);
    free(dt->mean);
    free(dt->std);
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

/* A functional model without a target (an autoencoder's loss mse(out, x))
 * has no labels its outputs could be right about. */
static bool model_has_labels(const Model *m) {
    bool functional = false, targets = false;
    for (int i = 0; i < m->ast->nitems; i++) {
        functional |= m->ast->items[i].kind == AST_LOSS && m->ast->items[i].expr;
        targets |= m->ast->items[i].kind == AST_TARGET;
    }
    return targets || !functional;
}

/* A classifier's accuracy compares its output's argmax with the label. */
static bool model_classifies(const Model *m) {
    return m->label_size == 1 && !m->several_losses && model_has_labels(m) &&
           (model_classes(m) > 0 || m->output.dim[0] > 1);
}

/* Each output is the prediction of the target of its position (a
 * regression's; with several loss terms, where every head is one and
 * they lie as the targets do): --predict names its columns after them. */
static bool outputs_are_targets(const Model *m) {
    size_t covered = 0;
    for (int k = 0; k < m->nheads; k++) {
        const NnrtHead *h = &m->heads[k];
        if (!h->mae || h->out_off != h->label_off)
            return false;
        covered += h->out_size;
    }
    return shape_elems(&m->output) == m->label_size &&
           (m->several_losses ? covered == (size_t)m->label_size : !model_classifies(m));
}

/* The training set from --train PATH (and its labels: --target, a table's
 * columns, an archive's member or an IDX file's neighbour), the model's data
 * block, or the default data. */
static int load_train(const Model *m, const Options *o, const NnrtWant *w, Data *dt, Diag *d) {
    char err[1024];
    if (!o->train_path && m->data) {
        if (!nnrt_dataset_from_memory((size_t)m->data->n, m->data->x, (size_t)shape_elems(&m->input), m->data->y,
                                      (size_t)m->label_size, &dt->train, err, sizeof err)) {
            diag_plain(d, "%s", err);
            return EXIT_USAGE;
        }
        dt->train_path = "the model's data";
        dt->have_train = true;
        return EXIT_OK;
    }
    if (!o->train_path && o->target_path) {
        diag_plain(d, "--target names the targets of --train PATH's samples; give that PATH");
        return EXIT_USAGE;
    }
    dt->train_path = o->train_path;
    if (!dt->train_path) {
        if (access(NNC_DEFAULT_DATA, R_OK) != 0) {
            diag_plain(d, "--train without a path uses %s, which is not there (apt-get install "
                          "dataset-fashion-mnist)", NNC_DEFAULT_DATA);
            return EXIT_USAGE;
        }
        dt->train_path = NNC_DEFAULT_DATA;
        if (!o->quiet)
            printf("no data given: training on Fashion-MNIST from %s\n", dt->train_path);
    }
    if (!o->test_path && !o->target_path && nnrt_find_test(dt->train_path, dt->test_buf, sizeof dt->test_buf))
        dt->test_path = dt->test_buf;
    NnrtWant wt = *w;
    wt.new_classes = true;
    if (!(dt->have_train =
              load_data(dt->train_path, o->target_path, o, &dt->cols, &wt, &dt->classes, &dt->train, d)))
        return EXIT_USAGE;
    dt->targets = dt->train.target_names;
    dt->features = dt->train.feature_names;
    dt->train.target_names = dt->train.feature_names = (NnrtClasses){0};
    dt->label = dt->cols.label ? xstrdup(dt->cols.label) : NULL;
    if (!o->features) /* the other tables' inputs by the training table's names */
        dt->cols.inputs = dt->features.n ? &dt->features : NULL;
    if (dt->classes.n && !o->quiet) {
        FILE *out = o->predict_path && !o->out_path ? stderr : stdout; /* CSV on stdout keeps it to itself */
        fprintf(out, "classes of column '%s':", dt->cols.label);
        for (size_t i = 0; i < dt->classes.n; i++)
            fprintf(out, " %zu %s%s", i, dt->classes.names[i], i + 1 < dt->classes.n ? "," : "\n");
    }
    return EXIT_OK;
}

/* A copy of from's class names into to. */
static void classes_copy(NnrtClasses *to, const NnrtClasses *from) {
    to->names = from->n ? xcalloc(from->n, sizeof *to->names) : NULL;
    for (to->n = 0; to->n < from->n; to->n++)
        to->names[to->n] = xstrdup(from->names[to->n]);
}

/* What the weights meant (dt->weights): their checkpoint's (--load,
 * --resume), or the REPL's kept weights' (kept, or NULL). */
static bool weights_meaning(const Model *m, const Options *o, const FitMeaning *kept, FitMeaning *w, Diag *d) {
    if (o->load_path || o->resume_path)
        return fit_read_classes(d, o->ckpt, &w->classes) &&
               fit_read_targets(d, o->ckpt, (size_t)m->label_size, &w->targets) &&
               fit_read_columns(d, o->ckpt, (size_t)shape_elems(&m->input), &w->label, &w->features);
    if (kept) {
        classes_copy(&w->classes, &kept->classes);
        classes_copy(&w->targets, &kept->targets);
        classes_copy(&w->features, &kept->features);
        w->label = kept->label ? xstrdup(kept->label) : NULL;
    }
    return true;
}

/* The columns tables are read by: the label or targets the options
 * name, else the weights' (w); the inputs --features names, else the
 * weights' by name. */
static Columns columns(const Options *o, const FitMeaning *w) {
    Columns c = {.label = o->label, .features = o->features,
                 .inputs = !o->features && w->features.n ? &w->features : NULL};
    if (o->label || o->target_path) {
        c.targets = o->target_path ? xstrdup(o->target_path) : NULL;
    } else {
        c.label = w->label;
        /* "a,b": the names a --target list was split into hold no comma */
        c.targets = w->targets.n ? fit_names_join(&w->targets, ',') : NULL;
    }
    c.kept = !o->label && !o->target_path && (c.label || c.targets);
    return c;
}

/* kept: what the weights of an earlier run (the REPL's) meant; NULL: none. */
static int load_all(const Model *m, const Options *o, const FitMeaning *kept, Data *dt, Diag *d) {
    NnrtWant w = {.sample_size = (size_t)shape_elems(&m->input), .label_size = (size_t)m->label_size,
                  .classes = model_classes(m)};
    char err[1024];
    int status;
    if (!weights_meaning(m, o, kept, &dt->weights, d))
        return EXIT_USAGE;
    dt->cols = columns(o, &dt->weights);
    if (o->train) {
        dt->test_path = o->test_path;
        if ((status = load_train(m, o, &w, dt, d)) != EXIT_OK)
            return status;
        if (dt->test_path && !(dt->have[SET_TEST] = load_data(dt->test_path, o->test_target_path, o, &dt->cols, &w,
                                                              &dt->classes, &dt->set[SET_TEST], d)))
            return EXIT_USAGE;
        if (o->val_path && !(dt->have[SET_VAL] = load_data(o->val_path, o->val_target_path, o, &dt->cols, &w,
                                                           &dt->classes, &dt->set[SET_VAL], d)))
            return EXIT_USAGE;
        if (o->val_split) {
            size_t n_val = (size_t)((double)dt->train.n * o->val_split);
            if (!(dt->have[SET_VAL] = nnrt_dataset_split(&dt->train, n_val, &dt->set[SET_VAL], err, sizeof err))) {
                diag_plain(d, "--val-split %g: %s", o->val_split, err);
                return EXIT_USAGE;
            }
        }
    }
    /* Without training, what a table's columns mean is what the weights
     * were trained on. */
    if (!o->train) {
        classes_copy(&dt->classes, &dt->weights.classes);
        classes_copy(&dt->targets, &dt->weights.targets);
        classes_copy(&dt->features, &dt->weights.features);
        dt->label = dt->weights.label ? xstrdup(dt->weights.label) : NULL;
    }
    /* --eval's confusion matrix is indexed by a classifier's labels, whatever its loss. */
    NnrtWant we = w;
    we.classes = model_classifies(m) ? (size_t)shape_elems(&m->output) : 0;
    if (o->eval_path && !(dt->have[SET_EVAL] = load_data(o->eval_path, o->train ? NULL : o->target_path, o,
                                                         &dt->cols, &we, &dt->classes, &dt->set[SET_EVAL], d)))
        return EXIT_USAGE;
    NnrtWant wp = w;
    wp.unlabelled = true;
    if (o->predict_path && !(dt->have[SET_PREDICT] = load_data(o->predict_path, NULL, o, &dt->cols, &wp, &dt->classes,
                                                               &dt->set[SET_PREDICT], d)))
        return EXIT_USAGE;
    return EXIT_OK;
}

/* --normalize: every set's inputs scaled by the training data's mean and
 * standard deviation per element; without training, by those the
 * checkpoint (or the kept weights) was trained with, if any. */
static int normalize(const Model *m, const Options *o, const FitMeaning *kept, Data *dt, Diag *d) {
    size_t k = (size_t)shape_elems(&m->input);
    const char *weights = o->resume_path ? o->resume_path : o->load_path;
    if (o->normalize && dt->have_train) {
        dt->mean = xcalloc(k, sizeof *dt->mean);
        dt->std = xcalloc(k, sizeof *dt->std);
        nnrt_normalize_fit(&dt->train, dt->mean, dt->std);
    } else if (weights && !fit_read_normalize(d, o->ckpt, k, &dt->mean, &dt->std)) {
        return EXIT_USAGE;
    } else if (!weights && kept && kept->mean) {
        dt->mean = xcalloc(k, sizeof *dt->mean);
        dt->std = xcalloc(k, sizeof *dt->std);
        memcpy(dt->mean, kept->mean, k * sizeof *dt->mean);
        memcpy(dt->std, kept->std, k * sizeof *dt->std);
    }
    char err[1024];
    bool ok = true;
    if (dt->mean && dt->have_train)
        ok = nnrt_normalize_apply(&dt->train, dt->mean, dt->std, err, sizeof err);
    for (int s = 0; ok && dt->mean && s < NSETS; s++)
        if (dt->have[s])
            ok = nnrt_normalize_apply(&dt->set[s], dt->mean, dt->std, err, sizeof err);
    if (ok)
        return EXIT_OK;
    diag_plain(d, "%s", err);
    return EXIT_USAGE;
}

/* --monitor [val_]HEAD_METRIC: which head's value it names (Keras' name,
 * as the progress line shows it). False once reported. */
static bool find_monitored(const Model *m, const Options *o, FitHook *h, Diag *d) {
    const char *want = o->monitor_head + (o->monitor == MONITOR_VAL_LOSS ? 4 : 0); /* past "val_" */
    char all[1024] = "";
    for (int k = 0; k < m->nheads; k++) {
        const char *names[3];
        double v[3];
        int nv = nnrt_head_values(&m->heads[k], NULL, false, "acc", names, v);
        for (int i = 0; i < nv; i++) {
            size_t len = strlen(m->heads[k].name);
            if (!strncmp(want, m->heads[k].name, len) && want[len] == '_' && !strcmp(want + len + 1, names[i])) {
                h->monitor_head = k + 1;
                h->monitor_value = i;
                h->monitor_name = o->monitor_head;
                return true;
            }
            size_t at = strlen(all);
            snprintf(all + at, sizeof all - at, "%s%s_%s", at ? ", " : "", m->heads[k].name, names[i]);
        }
    }
    if (m->nheads)
        diag_plain(d, "--monitor %s: model %s has no such metric; its heads report %s (val_ before one: on the "
                      "validation set)", o->monitor_head, m->name, all);
    else
        diag_plain(d, "--monitor %s: model %s has one loss, no heads; expected loss, acc, val_loss or val_acc (a "
                      "regression's mae, val_mae)", o->monitor_head, m->name);
    return false;
}

int session_run(Arena *a, const Model *m, const Source *src, const Options *o, const Target *t, Diag *d,
                FitWeights *keep) {
    Data dt = {0};
    FitFiles files = {.model = src->path, .train = o->train_path, .target = o->target_path, .test = o->test_path,
                      .val = o->val_path, .eval = o->eval_path, .predict = o->predict_path, .load = o->load_path,
                      .resume = o->resume_path, .save = o->save_path ? o->save_path : o->resume_path,
                      .best = o->best_path, .log = o->log_path, .plot = o->plot_path, .report = o->report_path,
                      .out = o->out_path};
    if (!fit_check_files(d, &files))
        return EXIT_USAGE;
    const FitMeaning *kept = keep && keep->slots ? &keep->meaning : NULL;
    int status = load_all(m, o, kept, &dt, d);
    if (status == EXIT_OK)
        status = normalize(m, o, kept, &dt, d);
    if (status != EXIT_OK) {
        data_free(&dt);
        return status;
    }
    /* The checkpoint is loaded (and checked against the model's slots)
     * before compiling: a bad file is reported at once, and cheaply. */
    double t0 = nnrt_now();
    InputType in = data_input(&dt);
    Plan plan = pipeline_plan(a, m, o->opt, in, t, nnrt_mpi_active());
    Graph *g = plan.g[PLAN_TRAIN];
    void **slots = fit_slots_new(g, o->seed);
    bool writes = nnrt_mpi_rank() == 0; /* data-parallel: rank 0 alone writes files */
    int dropped = keep && keep->slots ? fit_weights_take(keep, g, slots) : 0;
    FitHook hook = {
        .diag = d, .arena = a, .model = m, .graph = g, .slots = slots,
        .info = {.model_name = m->name, .model_hash = fit_model_hash(src), .seed = o->seed,
                 .batch = (size_t)m->batch, .samples = dt.have_train ? dt.train.n : 0, .ranks = nnrt_mpi_size(),
                 .resume = o->resume_path != NULL, .epochs = m->epochs, .lr = m->lr, .schedule = o->schedule,
                 .patience = o->patience, .min_delta = o->min_delta > 0 ? o->min_delta : 0,
                 .stop_rule = o->stop_rule > 0 ? (FitStopRule)o->stop_rule : STOP_KERAS,
                 .monitor = o->monitor_head ? o->monitor_head
                                            : fit_monitor_name((FitMonitor)o->monitor, o->monitor_mae),
                 .classes = &dt.classes, .targets = &dt.targets, .label = dt.label, .features = &dt.features,
                 .norm_mean = dt.mean, .norm_std = dt.std,
                 .norm_n = dt.mean ? (size_t)shape_elems(&m->input) : 0, .heads = m->heads,
                 .nheads = (size_t)m->nheads},
        .save_path = !writes ? NULL : o->save_path ? o->save_path : o->resume_path,
        .best_path = writes ? o->best_path : NULL, .log_path = writes ? o->log_path : NULL,
        .plot_path = writes ? o->plot_path : NULL,
        .save_every = (size_t)o->save_every, .monitor = (FitMonitor)o->monitor,
        /* A regression's (an autoencoder's) mean absolute error, where each output has its label. */
        .cols = {.mae = !model_classifies(m) && shape_elems(&m->output) == m->label_size,
                 .heads = m->heads, .nheads = (size_t)m->nheads},
        .saved_epoch = -1,
    };
    fit_state_init(&hook.st, o->seed);
    if (o->monitor_head && !find_monitored(m, o, &hook, d))
        status = EXIT_USAGE;
    if ((hook.monitor == MONITOR_ACC || hook.monitor == MONITOR_VAL_ACC) && o->monitor_mae != hook.cols.mae) {
        diag_plain(d, "--monitor %s: model %s %s", fit_monitor_name(hook.monitor, o->monitor_mae), m->name,
                   hook.cols.mae ? "is a regression: it reports mae (mean absolute error), not acc"
                            : "reports acc, not mae (mean absolute error)");
        status = EXIT_USAGE;
    }
    const char *weights = o->resume_path ? o->resume_path : o->load_path;
    Compiled c = {0};
    if (weights && !fit_load(d, o->ckpt, g, slots, &hook.info, &hook.st))
        status = EXIT_USAGE;
    if (status == EXIT_OK && (hook.save_path || hook.best_path) && !fit_saveable(d, g, &hook.info))
        status = EXIT_USAGE;
    if (status == EXIT_OK && !pipeline_compile(&plan, m->batch, &c, d))
        status = EXIT_USAGE;
    /* Every rank starts from rank 0's weights (the same seed gives the
     * same, but a checkpoint may differ between machines). */
    for (int s = 0; status == EXIT_OK && s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM || g->slots[s].kind == SLOT_STATE)
            nnrt_mpi_bcast(slots[s], (size_t)shape_elems(&g->slots[s].shape) * sizeof(float));
    double compile_secs = nnrt_now() - t0;
    /* CSV on standard output keeps it to itself: the rest goes to stderr then.
     * shown: what was asked for and what went wrong; info: the progress
     * (NULL with -q). Ranks but 0 print nothing: their stdout goes nowhere. */
    FILE *shown = o->predict_path && !o->out_path && writes ? stderr : stdout, *info = o->quiet ? NULL : shown;
    hook.out = shown; /* its notes say why training stopped: early, or interrupted */
    if (dropped)
        fprintf(shown, "note: %d kept buffer%s of optimizer state this run does not use, dropped\n", dropped,
                dropped == 1 ? "" : "s");
    hook.step = c.train;
    hook.sched = c.sched;
    bool in_panels = status == EXIT_OK; /* the compiled steps' layout, until the weights leave the session */
    if (in_panels)
        layout_convert(g, c.sched, slots, true);
    if (status == EXIT_OK && info) {
        fprintf(info, "model %s: %lld parameters; compiled in %.0f ms\n", m->name, (long long)ir_param_count(g),
                compile_secs * 1e3);
        fflush(info);
    }
    NnrtTrainSpec spec = {
        .dtype_bytes = 4,
        .input_u8 = in == INPUT_U8,
        .outputs = (size_t)shape_elems(&m->output),
        .classify = model_classifies(m),
        .mae = hook.cols.mae,
        .heads = m->heads, .nheads = hook.cols.nheads,
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
        .begin = nnrt_mpi_active() ? nnrt_mpi_begin_step : NULL,
        .rank = nnrt_mpi_rank(), .ranks = nnrt_mpi_size(), .sum = nnrt_mpi_sum,
        .write_ranks = nnrt_mpi_write_ranks,
    };
    char err[1024];
    if (status == EXIT_OK && dt.have_train) {
        if (info && o->resume_path)
            fprintf(info, "resuming from %s at epoch %d, step %zu\n", o->resume_path, hook.st.pos.epoch + 1,
                    hook.st.pos.step);
        /* Another number of ranks continues the same run: the global
         * batches and their order are the checkpoint's; what differs is
         * each rank's slice of them. */
        if (o->resume_path && hook.st.ranks != nnrt_mpi_size() && writes)
            fprintf(shown, "note: %s was saved by %d process%s, this run has %d: it continues with the same "
                           "global batches in the same order, split over the processes anew (sums round "
                           "differently; batchnorm's batch statistics are of other slices)\n",
                    o->resume_path, hook.st.ranks, hook.st.ranks == 1 ? "" : "es", nnrt_mpi_size());
        /* Ctrl-C stops the run from here on, as it does once its steps run
         * (nnrt_train sets the same): after the line below, before the
         * first step, it killed nnc with no message and no checkpoint. */
        nnrt_sigint_stops_training(true);
        if (info) {
            fprintf(info, "training on %s (%zu samples", dt.train_path, dt.train.n);
            if (spec.val)
                fprintf(info, ", validating on %zu", spec.val->n);
            fprintf(info, "), %lld epochs, batch %lld, lr %g, seed %llu", (long long)m->epochs,
                    (long long)m->batch, m->lr, (unsigned long long)o->seed);
            if (hook.info.patience)
                fprintf(info, ", early stopping on %s (patience %lld, min_delta %g%s)", hook.info.monitor,
                        (long long)hook.info.patience, hook.info.min_delta,
                        hook.info.stop_rule == STOP_SKLEARN ? ", scikit-learn's rule" : "");
            fprintf(info, "\n");
            fflush(info);
        }
        NnrtTrainResult res = {0};
        bool trained = nnrt_train(&spec, &dt.train, dt.have[SET_TEST] ? &dt.set[SET_TEST] : NULL, &res, err,
                                  sizeof err);
        nnrt_sigint_stops_training(false);
        if (!trained && res.failure == NNRT_FAIL_INTERRUPTED) { /* Ctrl-C: in the REPL, not an error */
            status = !fit_interrupted(&hook, err, keep != NULL) ? EXIT_USAGE : keep ? EXIT_OK : EXIT_INTERRUPTED;
        } else if (!trained) {
            if (!(res.failure == NNRT_FAIL_NONFINITE && hook.nan_reported))
                diag_plain(d, "%s", err);
            status = res.failure == NNRT_FAIL_HOOK ? EXIT_USAGE : EXIT_TRAINING;
            if (res.failure == NNRT_FAIL_NONFINITE && hook.saved_epoch >= 0)
                fprintf(shown, "kept the last good checkpoint: %s (%s epoch %d, step %zu)\n", hook.save_path,
                        hook.saved_step ? "in" : "after", hook.saved_step ? hook.saved_epoch + 1 : hook.saved_epoch,
                        hook.saved_step);
        }
        if (!fit_finish(&hook) && status == EXIT_OK)
            status = EXIT_USAGE;
        if (status == EXIT_OK && o->report_path && writes) {
            NnrtReport r = {.model = o->model_path, .train_path = dt.train_path, .test_path = dt.test_path,
                            .seed = o->seed, .batch = (size_t)m->batch, .lr = m->lr,
                            .compile_secs = compile_secs, .input_u8 = spec.input_u8, .mae = spec.mae,
                            .heads = spec.heads, .nheads = spec.nheads, .result = &res};
            if (!nnrt_report_write(o->report_path, &r, err, sizeof err)) {
                diag_plain(d, "%s", err);
                status = EXIT_USAGE;
            }
        }
        nnrt_train_result_free(&res);
        if (status == EXIT_OK && o->print_params) {
            void **rows = layout_rows(g, c.sched, slots);
            print_params(shown, g, rows);
            layout_rows_free(g, c.sched, rows);
        }
    }
    /* Under mpirun every rank evaluates and predicts its slice of the set
     * (metrics.c); rank 0 prints and writes the whole's. */
    if (status == EXIT_OK && dt.have[SET_EVAL]) {
        if (info)
            fprintf(info, "evaluating on %s\n", o->eval_path);
        if (!nnrt_eval_report(&spec, &dt.set[SET_EVAL], &dt.classes, shown, err, sizeof err)) {
            diag_plain(d, "%s", err);
            status = EXIT_TRAINING;
        }
    }
    if (status == EXIT_OK && dt.have[SET_PREDICT]) {
        NnrtAtomic out = {.f = stdout}; /* -o FILE: written atomically (by rank 0) */
        if (o->out_path && writes && !nnrt_atomic_begin(&out, o->out_path, err, sizeof err)) {
            diag_plain(d, "%s", err);
            status = EXIT_USAGE;
        } else {
            size_t dims[NNRT_IDX_MAX_RANK];
            for (int i = 0; i < m->output.rank; i++)
                dims[i] = (size_t)m->output.dim[i];
            const char *ext = o->out_path ? strrchr(o->out_path, '.') : NULL;
            bool npy = ext && !strcmp(ext, ".npy"); /* -o out.npy: NumPy's format, else CSV */
            const NnrtClasses none = {0}, *targets = outputs_are_targets(m) ? &dt.targets : &none;
            if (!nnrt_predict_write(&spec, &dt.set[SET_PREDICT], &dt.classes, targets, dims, m->output.rank, npy,
                                    out.f, err, sizeof err)) {
                diag_plain(d, "%s", err);
                status = EXIT_TRAINING;
            }
            bool wrote = o->out_path && writes ? nnrt_atomic_end(&out, status == EXIT_OK, "the predictions", err, sizeof err)
                                     : fflush(stdout) == 0;
            if (!wrote && status == EXIT_OK) {
                diag_plain(d, "%s", o->out_path ? err : strerror(errno));
                status = EXIT_USAGE;
            }
        }
        if (status == EXIT_OK && o->out_path && info)
            printf("wrote %zu predictions to %s\n", dt.set[SET_PREDICT].n, o->out_path);
    }
    fit_state_free(&hook.st);
    if (in_panels)
        layout_convert(g, c.sched, slots, false);
    if (keep) { /* the weights, and what the data meant to them */
        FitWeights w = fit_weights_keep(g, slots);
        w.meaning = (FitMeaning){.classes = dt.classes, .targets = dt.targets, .features = dt.features,
                                 .label = dt.label, .mean = dt.mean, .std = dt.std};
        dt.classes = dt.targets = dt.features = (NnrtClasses){0};
        dt.label = NULL;
        dt.mean = dt.std = NULL;
        fit_weights_free(keep);
        *keep = w;
    } else {
        FitWeights w = {.slots = slots, .nslots = g->nslots};
        fit_weights_free(&w);
    }
    jit_free(c.jit);
    data_free(&dt);
    return status;
}

