/* fit.c — what the driver adds around the runtime's training loop to train
 * the way Keras users expect: checkpoints of a model's slots (save, load,
 * resume), the hook run after every step and epoch (periodic and keep-best
 * checkpoints, early stopping, the CSV log and the SVG plot), what is saved
 * when Ctrl-C stops a run, the check of a run's files before it starts, and
 * the NaN/Inf guard's report of where a value went bad.
 *
 * It sits on the compiler's side because it needs what only the compiler
 * knows: the slots' names and shapes, and the IR nodes with the source
 * location each came from. The runtime stays model-agnostic.
 *
 * A checkpoint holds every PARAM and STATE slot under its name ("dense1.W",
 * "dense1.W.velocity"), as string metadata (safetensors allows only
 * strings there) the training position and the early-stopping state, and
 * the history of epochs as a float64 tensor (NNRT_CKPT_HISTORY): everything
 * a resumed run needs to end bit-identical to one that never stopped.
 * Doubles are written with %a, which round-trips exactly. The history was
 * metadata text once (a line per epoch); such checkpoints still load, but
 * encoding it grew the time of every save with the epochs (20,000 epochs:
 * 5.5 ms an epoch became 24.7 ms), where copying a tensor costs next to
 * nothing.
 */
#include "nnc.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIT_FORMAT NNRT_CKPT_FORMAT

uint64_t fit_model_hash(const Source *src) {
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, 64 bits: a fingerprint, not a defence */
    for (size_t i = 0; i < src->len; i++)
        h = (h ^ (unsigned char)src->text[i]) * 0x100000001b3u;
    return h;
}

void **fit_slots_new(const Graph *g, uint64_t seed) {
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
        nnrt_init_fill(&rng, &sl->init, sl->fan_in, sl->fan_out, slots[s], n, 4);
    }
    return slots;
}

void fit_state_init(FitState *st, uint64_t seed) {
    memset(st, 0, sizeof *st);
    nnrt_train_pos_init(&st->pos, seed);
    st->best = NAN;
}

void fit_state_free(FitState *st) {
    free(st->history);
    st->history = NULL;
    st->nhistory = 0;
}

static bool is_saved(const Slot *s) { return s->kind == SLOT_PARAM || s->kind == SLOT_STATE; }
/* Keras' weights: the parameters and the model's own state (batchnorm's
 * moving statistics), what --load starts a new run from; the optimizer's
 * state is --resume's alone. */
static bool is_weight(const Slot *s) { return s->kind == SLOT_PARAM || s->model_state; }

/* ---------------------------------------------------------------- save */

/* The columns of the history tensor, in NNRT_CKPT_HISTORY's order, then
 * with several loss terms HEAD_COLS for each head (NnrtHeadStats' fields,
 * in their order), named in the metadata's "history_columns". Not the
 * seconds: two runs with the same seed must give identical files. */
enum { HISTORY_COLS = 7, HEAD_COLS = 6 };

static size_t history_cols(const FitInfo *info) { return HISTORY_COLS + HEAD_COLS * info->nheads; }

static void history_row(const NnrtEpochStats *e, size_t nheads, double *row) {
    double v[HISTORY_COLS] = {e->epoch, e->loss, e->acc, e->val_loss, e->val_acc, e->mse, e->val_mse};
    memcpy(row, v, sizeof v);
    for (size_t h = 0; h < nheads; h++) {
        const NnrtHeadStats *s = &e->head[h];
        double hv[HEAD_COLS] = {s->loss, s->acc, s->mse, s->val_loss, s->val_acc, s->val_mse};
        memcpy(row + HISTORY_COLS + h * HEAD_COLS, hv, sizeof hv);
    }
}

/* The history's column names, comma-separated (malloc'd): the model's,
 * then each head's by Keras' names ("logits_loss", "val_logits_acc"). */
static char *history_names(const FitInfo *info) {
    static const char *const head[HEAD_COLS] = {"%s_loss", "%s_acc", "%s_mse", "val_%s_loss", "val_%s_acc",
                                                "val_%s_mse"};
    const char *model = "epoch,loss,acc,val_loss,val_acc,mse,val_mse";
    size_t len = strlen(model) + 1;
    for (size_t h = 0; h < info->nheads; h++)
        len += HEAD_COLS * (strlen(info->heads[h].name) + 10);
    char *s = xrealloc(NULL, len, 1);
    size_t at = (size_t)sprintf(s, "%s", model);
    for (size_t h = 0; h < info->nheads; h++)
        for (int k = 0; k < HEAD_COLS; k++) {
            s[at++] = ',';
            at += (size_t)sprintf(s + at, head[k], info->heads[h].name);
        }
    return s;
}

char *fit_names_join(const NnrtClasses *names, char sep) {
    size_t len = 1;
    for (size_t i = 0; names && i < names->n; i++)
        len += strlen(names->names[i]) + 1;
    char *t = xrealloc(NULL, len, 1);
    t[0] = '\0';
    for (size_t i = 0, at = 0; names && i < names->n; i++)
        at += (size_t)sprintf(t + at, "%s%s", i ? (char[]){sep, 0} : "", names->names[i]);
    return t;
}

bool fit_save(const char *path, const Graph *g, void **slots, const FitInfo *info,
              const FitState *st, char *err, size_t errlen) {
    NnrtTensor *t = xrealloc(NULL, (size_t)g->nslots + 1, sizeof *t);
    size_t nt = 0;
    for (int s = 0; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        if (!is_saved(sl))
            continue;
        NnrtTensor *e = &t[nt++];
        *e = (NnrtTensor){.name = sl->name, .rank = sl->shape.rank, .data = slots[s]};
        for (int d = 0; d < sl->shape.rank; d++)
            e->dims[d] = sl->shape.dim[d];
    }
    char v[19][128];
    const NnrtTrainPos *p = &st->pos;
    snprintf(v[0], sizeof v[0], "%d", p->epoch);
    snprintf(v[1], sizeof v[1], "%zu", p->step);
    snprintf(v[2], sizeof v[2], "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64,
             p->rng.s[0], p->rng.s[1], p->rng.s[2], p->rng.s[3]);
    snprintf(v[3], sizeof v[3], "%a", p->sums.loss_sum);
    snprintf(v[4], sizeof v[4], "%zu", p->sums.seen);
    snprintf(v[5], sizeof v[5], "%zu", p->sums.correct);
    snprintf(v[6], sizeof v[6], "%016" PRIx64, info->model_hash);
    snprintf(v[7], sizeof v[7], "%" PRIu64, info->seed);
    snprintf(v[8], sizeof v[8], "%zu", info->batch);
    snprintf(v[9], sizeof v[9], "%zu", info->samples);
    snprintf(v[10], sizeof v[10], "%a", st->best);
    snprintf(v[11], sizeof v[11], "%d %d", st->best_epoch, st->bad_epochs);
    snprintf(v[12], sizeof v[12], "%" PRId64, info->epochs);
    snprintf(v[13], sizeof v[13], "%a", info->lr);
    snprintf(v[14], sizeof v[14], "%a", p->sums.abs_sum);
    snprintf(v[15], sizeof v[15], "%a", p->sums.sq_sum);
    snprintf(v[16], sizeof v[16], "%d", info->ranks > 1 ? info->ranks : 1);
    snprintf(v[17], sizeof v[17], "%" PRId64, info->patience);
    snprintf(v[18], sizeof v[18], "%a", info->min_delta);
    size_t cols = history_cols(info);
    double *hist = xrealloc(NULL, (size_t)st->nhistory * cols + 1, sizeof *hist);
    for (int i = 0; i < st->nhistory; i++)
        history_row(&st->history[i], info->nheads, hist + (size_t)i * cols);
    t[nt++] = (NnrtTensor){.name = NNRT_CKPT_HISTORY, .rank = 2, .dims = {st->nhistory, (int64_t)cols}, .f64 = true,
                           .data = hist};
    /* Each head's running sums: "loss_sum correct abs_sum sq_sum" in %a, a
     * line per head. */
    char *head_sums = xrealloc(NULL, info->nheads * 4 * 26 + 1, 1);
    head_sums[0] = '\0';
    for (size_t h = 0, at = 0; h < info->nheads; h++) {
        const NnrtHeadSums *hs = &p->sums.head[h];
        at += (size_t)sprintf(head_sums + at, "%a %a %a %a\n", hs->loss_sum, hs->correct, hs->abs_sum, hs->sq_sum);
    }
    char *names = history_names(info);
    /* one a line: a name holds no line break (csv.c's class and input
     * names, dataset.c's target names) */
    char *classes = fit_names_join(info->classes, '\n'), *targets = fit_names_join(info->targets, '\n');
    char *features = fit_names_join(info->features, '\n');
    char *norm = nnrt_normalize_format(info->norm_mean, info->norm_std, info->norm_n);
    if (!norm)
        die("out of memory");
    NnrtMeta meta[] = {
        {"format", FIT_FORMAT}, {"nnc_version", NNC_VERSION}, {"model", info->model_name},
        {"model_fnv1a64", v[6]}, {"epoch", v[0]}, {"step", v[1]}, {"rng", v[2]},
        {"loss_sum", v[3]}, {"seen", v[4]}, {"correct", v[5]}, {"seed", v[7]},
        {"batch", v[8]}, {"samples", v[9]}, {"best", v[10]}, {"best_epoch_bad_epochs", v[11]},
        {"epochs", v[12]}, {"lr", v[13]}, {"schedule", info->schedule ? info->schedule : ""},
        {"classes", classes}, {"abs_sum", v[14]}, {"normalize", norm},
        {"targets", targets}, {"label", info->label ? info->label : ""},
        {"features", features},
        {"sq_sum", v[15]}, {"ranks", v[16]}, {"patience", v[17]}, {"min_delta", v[18]},
        {"stop_rule", fit_stop_rules[info->stop_rule]}, {"monitor", info->monitor ? info->monitor : ""},
        {"history_columns", names}, {"head_sums", head_sums}, /* last: a model of one loss has none */
    };
    size_t nmeta = sizeof meta / sizeof meta[0] - (info->nheads ? 0 : 2);
    bool ok = nnrt_ckpt_save(path, t, nt, meta, nmeta, err, errlen);
    free(names);
    free(head_sums);
    free(norm);
    free(classes);
    free(targets);
    free(features);
    free(hist);
    free(t);
    return ok;
}

/* Bounds of what fit_save writes in the header: a tensor's entry besides
 * its name (dtype, up to 4 dimensions and 2 offsets of 20 digits, quotes,
 * commas; the history's is one of them), and the metadata: 32 fields,
 * under 160 bytes each besides the model's name, the class and target
 * names, the label column and the features list, the normalization, the
 * monitored metric (a head's) and the heads' names and sums, which
 * fit_saveable adds.
 * The history is data, whatever the epochs. */
#define TENSOR_ENTRY_MAX 200
#define META_MAX 5248

/* The bytes of names one a line in the header. */
static uint64_t names_bytes(const NnrtClasses *names) {
    uint64_t bytes = 0;
    for (size_t i = 0; names && i < names->n; i++)
        bytes += 6 * strlen(names->names[i]) + 2; /* JSON escapes a byte in at most 6 (\u00XX) */
    return bytes;
}

bool fit_saveable(Diag *d, const Graph *g, const FitInfo *info) {
    uint64_t bytes = META_MAX + TENSOR_ENTRY_MAX + strlen(NNRT_CKPT_HISTORY) + strlen(info->model_name) +
                     (info->monitor ? 6 * strlen(info->monitor) : 0) + (info->label ? 6 * strlen(info->label) : 0);
    bytes += names_bytes(info->classes) + names_bytes(info->targets) + names_bytes(info->features);
    bytes += info->norm_n * (2 * 26 + 2); /* two %a and a blank, "\n" as JSON escapes it */
    for (size_t h = 0; h < info->nheads; h++) /* the history's column names, the sums (four %a) */
        bytes += HEAD_COLS * (strlen(info->heads[h].name) + 10) + 4 * 26 + 2;
    for (int s = 0; s < g->nslots; s++)
        if (is_saved(&g->slots[s]))
            bytes += TENSOR_ENTRY_MAX + strlen(g->slots[s].name);
    if (bytes <= NNRT_CKPT_MAX_HEADER)
        return true;
    diag_plain(d, "the checkpoints of model %s could have headers of %" PRIu64 " bytes, over the %u bytes nnc "
                  "reads back: its names are too long", info->model_name, bytes, (unsigned)NNRT_CKPT_MAX_HEADER);
    return false;
}

/* ---------------------------------------------------------------- load */

/* An unsigned number in `base` at *s, at most max, followed by `then` (0:
 * the end of the string); *s moves past both. Stricter than strtoull alone,
 * which skips blanks and takes a sign (" -1" would be 2^64 - 1), and than
 * sscanf, which overflows silently and measures the whole rest of the string
 * on every call (a history of 16 MB took minutes to read). */
static bool next_u64(const char **s, int base, char then, uint64_t max, uint64_t *out) {
    unsigned char first = (unsigned char)**s;
    if (!(base == 16 ? isxdigit(first) : isdigit(first)))
        return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(*s, &end, base);
    if (errno || x > max || *end != then)
        return false;
    *out = x;
    *s = then ? end + 1 : end;
    return true;
}

static bool next_int(const char **s, char then, int *out) {
    uint64_t x;
    if (!next_u64(s, 10, then, INT_MAX, &x))
        return false;
    *out = (int)x;
    return true;
}


static bool meta_u64(const NnrtCkpt *c, const char *key, int base, uint64_t max, uint64_t *out) {
    const char *v = nnrt_ckpt_meta(c, key);
    return v && next_u64(&v, base, 0, max, out);
}

static bool meta_double(const NnrtCkpt *c, const char *key, double *out) {
    const char *v = nnrt_ckpt_meta(c, key);
    return v && nnrt_parse_double(&v, 0, out);
}

/* Adds e to st's history, whose epochs go up, from 1 to at most the
 * position's; false if e's does not. */
static bool history_add(FitState *st, const NnrtEpochStats *e) {
    int last = st->nhistory ? st->history[st->nhistory - 1].epoch : 0;
    if (e->epoch <= last || e->epoch > st->pos.epoch)
        return false;
    st->history[st->nhistory++] = *e;
    return true;
}

/* The history as nnc saved it before NNRT_CKPT_HISTORY: metadata text, one
 * line "epoch loss acc val_loss val_acc" (in %a) per epoch, each ending in
 * '\n'. The lines are counted first, so the array is allocated once:
 * growing it line by line copies it every time under ASan, quadratic in a
 * 16 MB history. */
static bool read_history_text(const NnrtCkpt *c, FitState *st, Diag *d, const char *path) {
    const char *h = nnrt_ckpt_meta(c, "history");
    size_t lines = 0;
    for (const char *q = h; q && *q; q++)
        lines += *q == '\n';
    if (lines)
        st->history = xrealloc(st->history, lines, sizeof *st->history);
    int line = 1;
    for (const char *q = h; q && *q; line++) {
        NnrtEpochStats e = {.secs = -1, .mse = -1, .val_mse = -1}; /* not kept */
        if (!(next_int(&q, ' ', &e.epoch) && nnrt_parse_double(&q, ' ', &e.loss) && nnrt_parse_double(&q, ' ', &e.acc) &&
              nnrt_parse_double(&q, ' ', &e.val_loss) && nnrt_parse_double(&q, '\n', &e.val_acc) && history_add(st, &e))) {
            diag_plain(d, "%s: its history (metadata) is malformed at line %d", path, line);
            return false;
        }
    }
    return true;
}

/* The history from the tensor NNRT_CKPT_HISTORY, or from an older
 * checkpoint's metadata. A model of several loss terms has its heads'
 * columns after the model's, named in "history_columns"; a checkpoint
 * from before them has the model's alone (its heads' values then are
 * not known: -1). */
static bool read_history(const NnrtCkpt *c, const FitInfo *info, FitState *st, Diag *d, const char *path) {
    const NnrtTensor *t = nnrt_ckpt_tensor(c, NNRT_CKPT_HISTORY);
    if (!t)
        return read_history_text(c, st, d, path);
    size_t cols = history_cols(info);
    char *names = history_names(info);
    const char *saved = nnrt_ckpt_meta(c, "history_columns");
    bool heads = cols > HISTORY_COLS && t->rank == 2 && t->dims[1] == (int64_t)cols;
    bool named = heads ? saved && !strcmp(saved, names) : !saved;
    free(names);
    /* No more rows than epochs done: the position's epoch is bounded. */
    if (!t->f64 || t->rank != 2 || (t->dims[1] != HISTORY_COLS && !heads) || t->dims[0] > st->pos.epoch) {
        char b[128];
        diag_plain(d, "%s: its history (tensor '%s') is %s %s, not F64 [epochs <= %d, %zu]", path, t->name,
                   t->f64 ? "F64" : "F32", dims_str(t->dims, t->rank, b, sizeof b), st->pos.epoch, cols);
        return false;
    }
    if (!named) {
        diag_plain(d, "%s: its history's columns (metadata 'history_columns') are not this model's", path);
        return false;
    }
    cols = (size_t)t->dims[1];
    size_t n = (size_t)t->dims[0];
    double *rows = xrealloc(NULL, n * cols + 1, sizeof *rows);
    char err[1024];
    if (!nnrt_ckpt_read(c, t, rows, err, sizeof err)) {
        diag_plain(d, "%s", err);
        free(rows);
        return false;
    }
    if (n)
        st->history = xrealloc(st->history, n, sizeof *st->history);
    for (size_t i = 0; i < n; i++) {
        const double *r = rows + i * cols;
        NnrtEpochStats e = {.epoch = (int)fmin(fmax(r[0], 0), INT_MAX), .loss = r[1], .acc = r[2],
                            .val_loss = r[3], .val_acc = r[4], .mse = r[5], .val_mse = r[6], .secs = -1};
        for (size_t h = 0; h < info->nheads; h++) {
            const double *hr = r + HISTORY_COLS + h * HEAD_COLS;
            e.head[h] = heads ? (NnrtHeadStats){hr[0], hr[1], hr[2], hr[3], hr[4], hr[5]}
                              : (NnrtHeadStats){-1, -1, -1, -1, -1, -1};
        }
        if (e.epoch != r[0] || !history_add(st, &e)) {
            diag_plain(d, "%s: its history (tensor '%s') is malformed at row %zu: epoch %g", path, t->name, i,
                       r[0]);
            free(rows);
            return false;
        }
    }
    free(rows);
    return true;
}

/* The training state from the metadata; false on anything missing or odd. */
static bool read_state(const NnrtCkpt *c, const FitInfo *info, FitState *st, Diag *d,
                       const char *path) {
    const char *fmt = nnrt_ckpt_meta(c, "format");
    if (!fmt || strcmp(fmt, FIT_FORMAT) != 0) {
        diag_plain(d, "%s: no nnc training state in it (format %s%s%s); --load starts a new "
                      "run from its weights", path, fmt ? "'" : "none", fmt ? fmt : "",
                   fmt ? "'" : "");
        return false;
    }
    uint64_t epoch, step, seen, correct, hash, batch, samples;
    double loss_sum;
    NnrtTrainPos *p = &st->pos;
    const char *rng = nnrt_ckpt_meta(c, "rng"), *be = nnrt_ckpt_meta(c, "best_epoch_bad_epochs");
    /* Every count of epochs is at most the epochs a run may have, so that
     * none overflows an int as training goes on (epoch + 1, bad_epochs++). */
    bool ok = meta_u64(c, "epoch", 10, NNC_MAX_EPOCHS, &epoch) &&
              meta_u64(c, "step", 10, SIZE_MAX, &step) &&
              meta_u64(c, "seen", 10, SIZE_MAX, &seen) &&
              meta_u64(c, "correct", 10, SIZE_MAX, &correct) &&
              meta_u64(c, "model_fnv1a64", 16, UINT64_MAX, &hash) &&
              meta_u64(c, "batch", 10, SIZE_MAX, &batch) &&
              meta_u64(c, "samples", 10, SIZE_MAX, &samples) &&
              meta_double(c, "loss_sum", &loss_sum) && meta_double(c, "best", &st->best) && rng &&
              next_u64(&rng, 16, ' ', UINT64_MAX, &p->rng.s[0]) &&
              next_u64(&rng, 16, ' ', UINT64_MAX, &p->rng.s[1]) &&
              next_u64(&rng, 16, ' ', UINT64_MAX, &p->rng.s[2]) &&
              next_u64(&rng, 16, 0, UINT64_MAX, &p->rng.s[3]) && be &&
              next_int(&be, ' ', &st->best_epoch) && next_int(&be, 0, &st->bad_epochs) &&
              st->best_epoch <= (int)epoch && st->bad_epochs <= (int)epoch;
    if (!ok) {
        diag_plain(d, "%s: its training state (metadata) is incomplete or malformed", path);
        return false;
    }
    /* The best so far is the watched metric's: where this run watches
     * another (--monitor on --resume), none is known yet. */
    const char *watched = nnrt_ckpt_meta(c, "monitor");
    if (watched && *watched && info->monitor && strcmp(watched, info->monitor) != 0) {
        st->best = NAN;
        st->best_epoch = st->bad_epochs = 0;
    }
    /* xoshiro256** never leaves the all-zero state: every draw would be 0
     * and the shuffle's rejection loop would spin forever. */
    if (!(p->rng.s[0] | p->rng.s[1] | p->rng.s[2] | p->rng.s[3])) {
        diag_plain(d, "%s: its generator state (metadata 'rng') is all zeros, which no run reaches", path);
        return false;
    }
    if (hash != info->model_hash) {
        diag_plain(d, "%s was saved from a different model file (fingerprint %016" PRIx64
                      ", this one %016" PRIx64 "): resuming would not continue the same run; "
                      "--load starts a new run from its weights", path, hash, info->model_hash);
        return false;
    }
    if (batch != info->batch || samples != info->samples) {
        diag_plain(d, "%s was saved training on %" PRIu64 " samples in batches of %" PRIu64
                      ", this run has %zu in batches of %zu: resuming needs the same data "
                      "and batch size", path, samples, batch, info->samples, info->batch);
        return false;
    }
    /* The ranks that trained it (data-parallel); a checkpoint from before
     * they were saved, or of one process: 1. */
    uint64_t ranks = 1;
    if (nnrt_ckpt_meta(c, "ranks") && !(meta_u64(c, "ranks", 10, INT_MAX, &ranks) && ranks > 0)) {
        diag_plain(d, "%s: its training state (metadata 'ranks') is malformed", path);
        return false;
    }
    st->ranks = (int)ranks;
    p->epoch = (int)epoch;
    p->step = (size_t)step;
    p->sums.seen = (size_t)seen;
    p->sums.correct = (size_t)correct;
    p->sums.loss_sum = loss_sum;
    /* The mae's and the mse's running sums; a checkpoint from before them
     * has none: 0. */
    static const char *const sums[] = {"abs_sum", "sq_sum"};
    double *sum[] = {&p->sums.abs_sum, &p->sums.sq_sum};
    for (int i = 0; i < 2; i++) {
        *sum[i] = 0;
        if (nnrt_ckpt_meta(c, sums[i]) && !meta_double(c, sums[i], sum[i])) {
            diag_plain(d, "%s: its training state (metadata '%s') is malformed", path, sums[i]);
            return false;
        }
    }
    /* Each head's running sums; a checkpoint from before them has none: 0
     * (the heads' values of the epoch it stopped in then count from it). */
    memset(p->sums.head, 0, sizeof p->sums.head);
    const char *hs = nnrt_ckpt_meta(c, "head_sums");
    for (size_t h = 0; hs && h < info->nheads; h++) {
        NnrtHeadSums *s = &p->sums.head[h];
        if (!(nnrt_parse_double(&hs, ' ', &s->loss_sum) && nnrt_parse_double(&hs, ' ', &s->correct) &&
              nnrt_parse_double(&hs, ' ', &s->abs_sum) && nnrt_parse_double(&hs, '\n', &s->sq_sum))) {
            diag_plain(d, "%s: its training state (metadata 'head_sums') is malformed", path);
            return false;
        }
    }
    if (hs && *hs) {
        diag_plain(d, "%s: its training state (metadata 'head_sums') has more heads than the model's %zu", path,
                   info->nheads);
        return false;
    }
    return read_history(c, info, st, d, path);
}

/* The checkpoint's tensors into the slots of the same names, whose shapes
 * they were checked to have (the weights; with `state`, the optimizer's
 * too); all or (on an error) none, so the weights a REPL session keeps
 * stay whole. Every value must be finite: a NaN weight would only show as
 * a poor accuracy, or a loss blamed on a step. */
static bool read_tensors(Diag *d, const NnrtCkpt *c, const Graph *g, void **slots, bool state) {
    float **staged = xcalloc((size_t)g->nslots, sizeof *staged);
    bool ok = true;
    char err[1024];
    for (int s = 0; ok && s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        const NnrtTensor *t = is_weight(sl) || (state && is_saved(sl)) ? nnrt_ckpt_tensor(c, sl->name) : NULL;
        if (!t)
            continue;
        size_t n = (size_t)shape_elems(&g->slots[s].shape);
        staged[s] = xcalloc64(n, sizeof(float));
        if (!(ok = nnrt_ckpt_read(c, t, staged[s], err, sizeof err))) {
            diag_plain(d, "%s", err);
            break;
        }
        for (size_t i = 0; ok && i < n; i++)
            if (!isfinite(staged[s][i])) {
                diag_plain(d, "%s: tensor '%s' holds %s at element %zu: not weights to start from", c->path,
                           t->name, isnan(staged[s][i]) ? "NaN" : "Inf", i);
                ok = false;
            }
    }
    for (int s = 0; s < g->nslots; s++) {
        if (ok && staged[s])
            memcpy(slots[s], staged[s], (size_t)shape_elems(&g->slots[s].shape) * sizeof(float));
        free(staged[s]);
    }
    free(staged);
    return ok;
}

/* k's checkpoint, loaded at the first call; NULL once the loader's message
 * is reported. */
static const NnrtCkpt *ckpt_open(Diag *d, FitCkpt *k) {
    if (!k->loaded && !k->failed) {
        char err[1024];
        k->loaded = nnrt_ckpt_load(k->path, &k->c, err, sizeof err);
        k->failed = !k->loaded;
        if (k->failed)
            diag_plain(d, "%s", err);
    }
    return k->loaded ? &k->c : NULL;
}

void fit_ckpt_free(FitCkpt *k) {
    if (k->loaded)
        nnrt_ckpt_free(&k->c);
    k->loaded = false;
}

bool fit_read_settings(Arena *a, Diag *d, FitCkpt *k, FitSettings *s) {
    const NnrtCkpt *c = ckpt_open(d, k);
    if (!c)
        return false;
    const char *path = k->path;
    *s = (FitSettings){0};
    uint64_t epochs = 0, batch = 0, patience = 0;
    double lr = 0, min_delta = 0;
    const char *sched = nnrt_ckpt_meta(c, "schedule"), *monitor = nnrt_ckpt_meta(c, "monitor");
    const char *rule = nnrt_ckpt_meta(c, "stop_rule");
    int stop_rule = rule ? fit_stop_rule_find(rule) : STOP_KERAS;
    /* Each may be missing (an older checkpoint, the REPL's); present, it
     * is held to the range of the option it stands for. */
    bool ok = (!nnrt_ckpt_meta(c, "epochs") || meta_u64(c, "epochs", 10, 1000000, &epochs)) &&
              (!nnrt_ckpt_meta(c, "batch") || (meta_u64(c, "batch", 10, 65536, &batch) && batch > 0)) &&
              (!nnrt_ckpt_meta(c, "lr") || (meta_double(c, "lr", &lr) && lr >= 0 && lr <= 1e6)) &&
              (!nnrt_ckpt_meta(c, "patience") || meta_u64(c, "patience", 10, 1000000, &patience)) &&
              (!nnrt_ckpt_meta(c, "min_delta") ||
               (meta_double(c, "min_delta", &min_delta) && min_delta >= 0 && min_delta <= 1e300)) &&
              stop_rule >= 0;
    if (ok) {
        *s = (FitSettings){.epochs = (int64_t)epochs, .batch = (int64_t)batch, .lr = lr,
                           .patience = (int64_t)patience, .min_delta = min_delta, .stop_rule = (FitStopRule)stop_rule,
                           .schedule = sched && *sched ? arena_printf(a, "%s", sched) : NULL,
                           .monitor = monitor && *monitor ? arena_printf(a, "%s", monitor) : NULL};
    } else {
        diag_plain(d, "%s: its run's settings (epochs, batch, lr, patience, min_delta, stop_rule: metadata) are "
                      "malformed",
                   path);
    }
    return ok;
}

/* The names one a line of metadata `key` (fit_save's fit_names_join); none
 * where it is missing or empty. */
static void split_lines(const NnrtCkpt *c, const char *key, NnrtClasses *out) {
    const char *v = nnrt_ckpt_meta(c, key);
    size_t n = v && *v ? 1 : 0;
    for (const char *p = v; n && *p; p++)
        n += *p == '\n';
    *out = (NnrtClasses){xcalloc(n ? n : 1, sizeof *out->names), 0};
    for (const char *p = v; out->n < n; out->n++) {
        size_t len = strcspn(p, "\n");
        out->names[out->n] = xrealloc(NULL, len + 1, 1);
        memcpy(out->names[out->n], p, len);
        out->names[out->n][len] = '\0';
        p += len + (p[len] == '\n');
    }
}

bool fit_read_classes(Diag *d, FitCkpt *k, NnrtClasses *out) {
    const NnrtCkpt *c = ckpt_open(d, k);
    if (!c)
        return false;
    split_lines(c, "classes", out);
    /* Sorted and distinct, as csv.c makes them: names are looked up by bisection. */
    bool ok = true;
    for (size_t i = 1; ok && i < out->n; i++)
        ok = strcmp(out->names[i - 1], out->names[i]) < 0;
    if (!ok) {
        diag_plain(d, "%s: its class names (metadata 'classes') are not sorted and distinct", k->path);
        nnrt_classes_free(out);
    }
    return ok;
}

bool fit_read_targets(Diag *d, FitCkpt *k, size_t n, NnrtClasses *out) {
    const NnrtCkpt *c = ckpt_open(d, k);
    if (!c)
        return false;
    split_lines(c, "targets", out);
    size_t empty = 0; /* the first empty name's position, from 1 */
    for (size_t i = 0; !empty && i < out->n; i++)
        empty = out->names[i][0] ? 0 : i + 1;
    if (out->n && out->n != n)
        diag_plain(d, "%s: its target names (metadata 'targets') are %zu, but the model has %zu targets", k->path,
                   out->n, n);
    else if (empty)
        diag_plain(d, "%s: its target name %zu of %zu (metadata 'targets') is empty", k->path, empty, out->n);
    else
        return true;
    nnrt_classes_free(out);
    return false;
}

bool fit_read_columns(Diag *d, FitCkpt *k, size_t n, char **label, NnrtClasses *features) {
    *label = NULL;
    *features = (NnrtClasses){0};
    const NnrtCkpt *c = ckpt_open(d, k);
    if (!c)
        return false;
    split_lines(c, "features", features);
    if (features->n && features->n != n) {
        diag_plain(d, "%s: its input columns (metadata 'features') are %zu, but the model's input has %zu "
                      "elements", k->path, features->n, n);
        nnrt_classes_free(features);
        return false;
    }
    const char *l = nnrt_ckpt_meta(c, "label");
    *label = l && *l ? xstrdup(l) : NULL;
    return true;
}

bool fit_read_normalize(Diag *d, FitCkpt *k, size_t n, double **mean, double **std) {
    *mean = *std = NULL;
    const NnrtCkpt *c = ckpt_open(d, k);
    if (!c)
        return false;
    const char *path = k->path;
    const char *v = nnrt_ckpt_meta(c, "normalize");
    bool ok = true;
    if (v && *v) {
        *mean = xcalloc(n, sizeof **mean);
        *std = xcalloc(n, sizeof **std);
        ok = nnrt_normalize_parse(v, n, *mean, *std);
        if (!ok) {
            diag_plain(d, "%s: its normalization (metadata 'normalize') is malformed or not for inputs of %zu "
                          "elements", path, n);
            free(*mean);
            free(*std);
            *mean = *std = NULL;
            ok = false;
        }
    }
    return ok;
}

bool fit_load(Diag *d, FitCkpt *k, const Graph *g, void **slots, const FitInfo *info, FitState *st) {
    const NnrtCkpt *c = ckpt_open(d, k);
    if (!c)
        return false;
    const char *path = k->path;
    int errors = d->errors;
    char b1[128], b2[128];
    for (int s = 0; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        if (!is_saved(sl))
            continue;
        const NnrtTensor *t = nnrt_ckpt_tensor(c, sl->name);
        if (!t) {
            /* Weights from elsewhere may come without optimizer state: a
             * new run starts its own. */
            if (is_weight(sl) || info->resume)
                diag_plain(d, "%s has no tensor '%s' (the model's %s %s)", path, sl->name,
                           sl->kind == SLOT_PARAM ? "parameter" : sl->model_state ? "state" : "optimizer state",
                           shape_str(&sl->shape, b1, sizeof b1));
            continue;
        }
        bool same = t->rank == sl->shape.rank;
        for (int k = 0; same && k < t->rank; k++)
            same = t->dims[k] == sl->shape.dim[k];
        if (!same)
            diag_plain(d, "%s: tensor '%s' is %s, but the model's is %s", path, sl->name,
                       dims_str(t->dims, t->rank, b2, sizeof b2), shape_str(&sl->shape, b1, sizeof b1));
        else if (t->f64)
            diag_plain(d, "%s: tensor '%s' is F64; weights are F32", path, sl->name);
    }
    for (size_t i = 0; i < c->ntensors; i++) {
        bool known = !strcmp(c->tensors[i].name, NNRT_CKPT_HISTORY); /* not a weight: read_state's */
        for (int s = 0; !known && s < g->nslots; s++)
            known = is_saved(&g->slots[s]) && !strcmp(g->slots[s].name, c->tensors[i].name);
        if (!known)
            diag_plain(d, "%s holds a tensor '%s' that model %s does not have", path,
                       c->tensors[i].name, info->model_name);
    }
    bool ok = d->errors == errors && (!info->resume || read_state(c, info, st, d, path)) &&
              read_tensors(d, c, g, slots, info->resume);
    return ok;
}

/* ---------------------------------------------------------------- the hook */

static double monitored(const FitHook *h, const NnrtEpochStats *e) {
    if (h->monitor_head) {
        const char *names[3];
        double v[3];
        int k = h->monitor_head - 1;
        nnrt_head_values(&h->cols.heads[k], &e->head[k], h->monitor == MONITOR_VAL_LOSS, "acc", names, v);
        return v[h->monitor_value];
    }
    switch (h->monitor) {
    case MONITOR_LOSS: return e->loss;
    case MONITOR_ACC: return e->acc;
    case MONITOR_VAL_LOSS: return e->val_loss;
    case MONITOR_VAL_ACC: return e->val_acc;
    }
    unreachable();
}

const char *const fit_stop_rules[] = {"keras", "sklearn", NULL};

int fit_stop_rule_find(const char *name) {
    for (int k = 0; fit_stop_rules[k]; k++)
        if (!strcmp(name, fit_stop_rules[k]))
            return k;
    return -1;
}

const char *fit_monitor_name(FitMonitor m, bool mae) {
    static const char *const names[2][4] = {{"loss", "acc", "val_loss", "val_acc"},
                                            {"loss", "mae", "val_loss", "val_mae"}};
    return names[mae][m];
}

static bool save(FitHook *h, const char *path, char *err, size_t errlen) {
    void **rows = layout_rows(h->graph, h->sched, h->slots); /* checkpoints are row-major */
    bool ok = fit_save(path, h->graph, rows, &h->info, &h->st, err, errlen);
    layout_rows_free(h->graph, h->sched, rows);
    if (!ok)
        return false;
    if (path == h->save_path) {
        h->saved_epoch = h->st.pos.epoch;
        h->saved_step = h->st.pos.step;
    }
    return true;
}

static bool plot(FitHook *h, char *err, size_t errlen) {
    if (!nnrt_plot_write(h->plot_path, h->st.history, (size_t)h->st.nhistory, &h->cols, err, errlen))
        return false;
    h->plotted = h->st.nhistory;
    return true;
}

NnrtHookResult fit_after_step(void *ctx, const NnrtTrainPos *pos, const NnrtEpochStats *e,
                              char *err, size_t errlen) {
    FitHook *h = ctx;
    h->st.pos = *pos;
    if (!e) /* mid-epoch: the periodic checkpoint only */
        return h->save_path && h->save_every && pos->step % h->save_every == 0 &&
                       !save(h, h->save_path, err, errlen)
                   ? NNRT_HOOK_FAIL
                   : NNRT_HOOK_CONTINUE;
    FitState *st = &h->st;
    st->history = xrealloc(st->history, (size_t)st->nhistory + 1, sizeof *st->history);
    st->history[st->nhistory++] = *e;
    double v = monitored(h, e);
    /* A loss, a mae and an mse fall; an accuracy (a head's second value, when it classifies) rises. */
    bool lower = h->monitor_head ? !(h->monitor_value == 1 && h->cols.heads[h->monitor_head - 1].classify)
                                      : h->monitor == MONITOR_LOSS || h->monitor == MONITOR_VAL_LOSS || h->cols.mae;
    /* improved: the patience starts again; better: the new best (and
     * --save-best's epoch). Keras' rule: both are an improvement by more
     * than min_delta. scikit-learn's (_update_no_improvement_count): an
     * improvement by min_delta or more, and any improvement; with
     * early_stopping it keeps the weights of its best validation score,
     * which is the best here. */
    double d = h->info.min_delta;
    bool sklearn = h->info.stop_rule == STOP_SKLEARN;
    bool first = isnan(st->best);
    bool improved = first || (!sklearn ? (lower ? v < st->best - d : v > st->best + d)
                                       : (lower ? v <= st->best - d : v >= st->best + d));
    bool better = sklearn ? first || (lower ? v < st->best : v > st->best) : improved;
    if (better) {
        st->best = v;
        st->best_epoch = e->epoch;
    }
    st->bad_epochs = improved ? 0 : st->bad_epochs + 1;
    bool stop = h->info.patience > 0 && st->bad_epochs >= h->info.patience;
    /* The plot is redrawn when the history has grown by a 32nd since it was
     * last drawn (every epoch for the first 64): its cost per epoch stays
     * bounded, and it lags by at most that much until fit_finish. */
    int plot_every = h->plotted / 32 > 1 ? h->plotted / 32 : 1;
    if ((h->save_path && !save(h, h->save_path, err, errlen)) ||
        (better && h->best_path && !save(h, h->best_path, err, errlen)) ||
        (h->log_path && !(h->log ? nnrt_log_append(h->log, h->log_path, e, &h->cols, err, errlen)
                                 : nnrt_log_open(h->log_path, st->history, (size_t)st->nhistory, &h->cols, &h->log, err,
                                                 errlen))) ||
        (h->plot_path && st->nhistory - h->plotted >= plot_every && !plot(h, err, errlen)))
        return NNRT_HOOK_FAIL;
    if (stop) {
        /* scikit-learn's best may be more recent than the last improvement by min_delta */
        char by[64] = "";
        if (sklearn)
            snprintf(by, sizeof by, " by min_delta %g", d);
        fprintf(h->out, "early stopping: %s has not improved%s for %d epochs (best %.4f at epoch %d)\n",
                h->monitor_head ? h->monitor_name : fit_monitor_name(h->monitor, h->cols.mae), by, st->bad_epochs,
                st->best, st->best_epoch);
        fflush(h->out);
        return NNRT_HOOK_STOP;
    }
    return NNRT_HOOK_CONTINUE;
}

bool fit_finish(FitHook *h) {
    char err[1024];
    bool ok = true;
    if (h->plot_path && h->plotted < h->st.nhistory && !plot(h, err, sizeof err)) {
        diag_plain(h->diag, "%s", err);
        ok = false;
    }
    if (h->log && !nnrt_log_close(h->log, h->log_path, err, sizeof err)) {
        diag_plain(h->diag, "%s", err);
        ok = false;
    }
    h->log = NULL;
    return ok;
}

bool fit_interrupted(FitHook *h, const char *msg, bool weights_kept) {
    char err[1024];
    if (h->save_path && !save(h, h->save_path, err, sizeof err)) {
        diag_plain(h->diag, "%s; its checkpoint could not be saved: %s", msg, err);
        return false;
    }
    if (h->save_path)
        fprintf(h->out, "%s; saved the checkpoint %s (continue with --resume %s)\n", msg, h->save_path,
                h->save_path);
    else if (weights_kept)
        fprintf(h->out, "%s; the weights are those after it\n", msg);
    else
        fprintf(h->out, "%s; no checkpoint (--save FILE keeps one)\n", msg);
    fflush(h->out);
    return true;
}

bool fit_check_files(Diag *d, const FitFiles *f) {
    const NnrtRunFile all[] = {
        {"the model", f->model, false, 0}, {"--train", f->train, false, 0},
        {"--target", f->target, false, 0}, {"--test", f->test, false, 0},
        {"--val", f->val, false, 0}, {"--eval", f->eval, false, 0},
        {"--predict", f->predict, false, 0}, {"--load", f->load, false, 0},
        {"--resume", f->resume, false, 1},
        {"--save", f->save, true, 1}, {"--save-best", f->best, true, 0},
        {"--log", f->log, true, 0}, {"--plot", f->plot, true, 0},
        {"--report", f->report, true, 0}, {"-o", f->out, true, 0},
    };
    /* The images' labels files, found beside them (--train's unless its
     * targets are given). */
    const NnrtRunFile *labelled[] = {f->target ? NULL : &all[1], &all[3], &all[4], &all[5]};
    enum { NALL = sizeof all / sizeof all[0], NLAB = sizeof labelled / sizeof labelled[0] };
    NnrtRunFile files[NALL + NLAB];
    char labels[NLAB][4096], options[NLAB][32];
    size_t n = 0;
    for (size_t i = 0; i < NALL; i++)
        if (all[i].path)
            files[n++] = all[i];
    for (size_t i = 0; i < NLAB; i++)
        if (labelled[i] && labelled[i]->path && nnrt_find_labels(labelled[i]->path, labels[i], sizeof labels[i])) {
            snprintf(options[i], sizeof options[i], "%s's labels", labelled[i]->option);
            files[n++] = (NnrtRunFile){options[i], labels[i], false, 0};
        }
    char err[1024];
    if (nnrt_check_run_files(files, n, err, sizeof err))
        return true;
    diag_plain(d, "%s", err);
    return false;
}

/* ---------------------------------------------------------------- the NaN/Inf guard */

/* The statement at loc, as written: from its keyword to the end of the line
 * or a comment, trailing blanks dropped, printable bytes only. */
static const char *statement_text(Arena *a, Loc loc) {
    const char *t = loc.src->text;
    size_t end = loc.offset;
    while (end < loc.src->len && t[end] != '\n' && t[end] != '#' && t[end] != ';')
        end++;
    while (end > loc.offset && (t[end - 1] == ' ' || t[end - 1] == '\t' || t[end - 1] == '\r'))
        end--;
    return diag_clip(a, t + loc.offset, end - loc.offset);
}

/* Marks the nodes the loss and the output depend on: the forward pass.
 * Node ids are topological, so one sweep from the end finds them all. */
bool *fit_forward_nodes(const Graph *g) {
    bool *fwd = xrealloc(NULL, (size_t)g->nnodes + 1, sizeof *fwd);
    memset(fwd, 0, ((size_t)g->nnodes + 1) * sizeof *fwd);
    for (int o = 0; o < g->noutputs; o++)
        if (g->outputs[o].slot == SLOT_NO_LOSS || g->outputs[o].slot == SLOT_NO_OUTPUT)
            fwd[g->outputs[o].node] = true;
    for (int i = g->nnodes - 1; i >= 0; i--)
        for (int k = 0; fwd[i] && k < op_info[g->nodes[i].op].arity; k++)
            fwd[g->nodes[i].in[k]] = true;
    return fwd;
}

void fit_on_nonfinite(void *ctx, const NnrtNonFinite *nf) {
    FitHook *h = ctx;
    const Graph *g = h->step;
    const Schedule *sc = h->sched;
    const char *arena = nf->slots[SLOT_NO_ARENA];
    /* After the step every materialised node still holds its value: in its
     * arena buffer, or in its slot when it was computed in place. The first
     * non-finite one in topological order is where the bad value was made,
     * as all its operands were finite. (A node inlined into its user's loop
     * has no value of its own: a bad value made there shows at that user.) */
    int bad = -1;
    double badv = 0;
    for (int i = 0; g && i < g->nnodes && bad < 0; i++) {
        const float *v = sc->place[i] == PLACE_ARENA  ? (const float *)(arena + sc->offset[i])
                         : sc->place[i] == PLACE_SLOT ? (const float *)nf->slots[sc->slot[i]]
                                                      : NULL;
        for (int64_t k = 0; v && k < shape_elems(&g->nodes[i].shape); k++)
            if (!isfinite(v[k])) {
                bad = i;
                badv = v[k];
                break;
            }
    }
    if (bad < 0 || !g->nodes[bad].loc.src)
        return; /* the runtime's own message says what it can */
    bool *fwd = fit_forward_nodes(g);
    const IrNode *n = &g->nodes[bad];
    const char *pass = fwd[bad] ? "forward pass"
                       : n->loc.offset == h->model->opt_loc.offset ? "optimizer update"
                                                                   : "backward pass";
    free(fwd);
    double shown = nf->in_loss ? nf->loss : badv;
    diag_error(h->diag, n->loc, "%s became %s in the %s of '%s' at epoch %d, step %zu",
               nf->in_loss ? "loss" : "a gradient", isnan(shown) ? "NaN" : "Inf", pass,
               statement_text(h->arena, n->loc), nf->epoch, nf->step);
    char buf[64];
    diag_note(h->diag, n->loc, "the first non-finite value (%s) is in node %%%d (%s %s)",
              isnan(badv) ? "NaN" : "Inf", bad, op_info[n->op].name,
              shape_str(&n->shape, buf, sizeof buf));
    h->nan_reported = true;
}

FitWeights fit_weights_keep(const Graph *g, void **slots) {
    FitWeights w = {.slots = slots, .nslots = g->nslots, .names = xcalloc((size_t)g->nslots, sizeof *w.names),
                    .elems = xcalloc((size_t)g->nslots, sizeof *w.elems)};
    for (int s = 0; s < g->nslots; s++)
        if (slots[s]) {
            w.names[s] = xstrdup(g->slots[s].name);
            w.elems[s] = shape_elems(&g->slots[s].shape);
        }
    return w;
}

FitWeights fit_weights_new(const Graph *g) {
    void **slots = xcalloc((size_t)g->nslots, sizeof *slots);
    for (int s = 0; s < g->nslots; s++)
        if (g->slots[s].kind == SLOT_PARAM || g->slots[s].kind == SLOT_STATE)
            slots[s] = xcalloc64((size_t)shape_elems(&g->slots[s].shape), sizeof(float));
    return fit_weights_keep(g, slots);
}

int fit_weights_take(FitWeights *w, const Graph *g, void **slots) {
    int dropped = 0;
    for (int k = 0; k < w->nslots; k++) {
        if (!w->slots[k])
            continue;
        int s = 0;
        while (s < g->nslots && !(slots[s] && strcmp(g->slots[s].name, w->names[k]) == 0 &&
                                  shape_elems(&g->slots[s].shape) == w->elems[k]))
            s++;
        if (s < g->nslots) {
            free(slots[s]);
            slots[s] = w->slots[k];
            w->slots[k] = NULL;
        } else {
            dropped++;
        }
    }
    FitMeaning meaning = w->meaning;
    w->meaning = (FitMeaning){0};
    fit_weights_free(w);
    w->meaning = meaning;
    return dropped;
}

void fit_weights_free(FitWeights *w) {
    for (int s = 0; s < w->nslots; s++) {
        free(w->slots[s]);
        if (w->names)
            free(w->names[s]);
    }
    free(w->slots);
    free(w->names);
    free(w->elems);
    fit_meaning_free(&w->meaning);
    *w = (FitWeights){0};
}

void fit_meaning_free(FitMeaning *m) {
    nnrt_classes_free(&m->classes);
    nnrt_classes_free(&m->targets);
    nnrt_classes_free(&m->features);
    free(m->label);
    free(m->mean);
    free(m->std);
    *m = (FitMeaning){0};
}
