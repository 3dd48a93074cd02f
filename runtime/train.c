/* train.c — the training loop around compiled step functions.
 *
 * A step function runs any batch of up to its batch size (the size is its
 * argument), so an epoch is a run of full batches plus, when the batch size
 * does not divide the dataset, one partial batch: every sample is seen
 * exactly once per epoch and no step pads or drops samples.
 *
 * The order is a permutation shuffled at the start of every epoch by one
 * generator seeded once from spec->seed, so a run is reproducible and the
 * epochs still differ. Loss and accuracy are sample-weighted means (a step
 * reports its batch's mean loss), so the partial batch counts for what
 * it holds. A non-finite loss, parameter or optimizer state stops training
 * with the epoch and step (the NaN/Inf guard): going on would only turn
 * every parameter into NaN. Checking the parameters costs one pass over
 * them per step, against the step's batch-times-larger arithmetic; the
 * compiler generates that pass for the host (spec->finite), at its full
 * vector width.
 *
 * The position (epoch, step, the generator before the epoch's shuffle and
 * the epoch's running sums) is all a run needs to continue: resuming
 * reshuffles from the saved generator and skips the steps already done, so
 * a resumed run is bit-identical to one that was never interrupted.
 */
#include "nnrt.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* The buffers behind slots 0..4, and the sample order. Aligned to 64 bytes
 * (a cache line, an AVX-512 vector) for the compiled code. */
typedef struct Buffers {
    void *arena, *x, *y, *loss, *output;
    uint32_t *order;
} Buffers;

/* Zeroed, 64-byte aligned memory for count * size bytes; NULL on overflow
 * or when out of memory. */
static void *alloc64(size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes) || bytes > SIZE_MAX - 64)
        return NULL;
    bytes = (bytes + 63) / 64 * 64; /* aligned_alloc wants a multiple */
    if (bytes == 0)
        bytes = 64;
    void *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

static void buffers_free(Buffers *b) {
    free(b->arena);
    free(b->x);
    free(b->y);
    free(b->loss);
    free(b->output);
    free(b->order);
    memset(b, 0, sizeof *b);
}

/* A set the step functions can take: uint8 images when they scale them. */
static bool check_input_type(const NnrtTrainSpec *spec, const char *what, const NnrtDataset *ds, char *err,
                             size_t errlen) {
    if (spec->input_u8 && ds->images.type != NNRT_U8)
        return nnrt_fail(err, errlen, "%s: the step functions take uint8 images, but the set holds another type",
                         what);
    return true;
}

/* For batches of up to max_batch samples of ds's sizes and up to n samples
 * in order. */
static bool buffers_alloc(Buffers *b, const NnrtTrainSpec *spec, size_t max_batch,
                          const NnrtDataset *ds, size_t n, char *err, size_t errlen) {
    size_t d = (size_t)spec->dtype_bytes, x_elems = 0, y_elems = 0, out_elems = 0, sample_size = ds->sample_size;
    memset(b, 0, sizeof *b);
    bool sizes_ok = !__builtin_mul_overflow(max_batch, sample_size, &x_elems) &&
                    !__builtin_mul_overflow(max_batch, ds->label_size, &y_elems) &&
                    !__builtin_mul_overflow(max_batch, spec->outputs, &out_elems);
    if (sizes_ok) {
        b->arena = alloc64(spec->arena_bytes, 1);
        b->x = alloc64(x_elems, spec->input_u8 ? 1 : d);
        b->y = alloc64(y_elems, d);
        b->loss = alloc64(1 + spec->nheads, d);
        b->output = alloc64(out_elems, d);
        b->order = malloc((n ? n : 1) * sizeof *b->order); /* n <= UINT32_MAX: checked */
    }
    if (!sizes_ok || !b->arena || !b->x || !b->y || !b->loss || !b->output || !b->order) {
        buffers_free(b);
        return nnrt_fail(err, errlen, "out of memory for the training buffers (arena %zu bytes, "
                    "batch %zu x %zu)", spec->arena_bytes, max_batch, sample_size);
    }
    return true;
}

static double read_elem(const void *p, size_t i, int dtype_bytes) {
    return dtype_bytes == 4 ? ((const float *)p)[i] : ((const double *)p)[i];
}

/* What a metric compares in each sample: `size` outputs from out_off (of
 * out_stride per sample) and their labels from y_off (of y_stride): the
 * whole output, or a head's slice. */
typedef struct Slice {
    size_t out_stride, out_off, size, y_stride, y_off;
} Slice;

/* The model's whole output against its labels (ds's). */
static Slice whole(const NnrtTrainSpec *spec, const NnrtDataset *ds) {
    return (Slice){spec->outputs, 0, spec->outputs, ds->label_size, 0};
}

/* Samples of the batch whose output's argmax (the first maximum) is the label. */
static size_t count_correct(const Buffers *bf, size_t b, const Slice *sl, int dtype_bytes) {
    size_t correct = 0;
    for (size_t s = 0; s < b; s++) {
        size_t best = 0, at = s * sl->out_stride + sl->out_off;
        double best_v = read_elem(bf->output, at, dtype_bytes);
        for (size_t k = 1; k < sl->size; k++) {
            double v = read_elem(bf->output, at + k, dtype_bytes);
            if (v > best_v) {
                best_v = v;
                best = k;
            }
        }
        /* Compared as doubles: a label need not fit an int. */
        if ((double)best == read_elem(bf->y, s * sl->y_stride + sl->y_off, dtype_bytes))
            correct++;
    }
    return correct;
}

/* The step for n samples; checks that it can run them. */
static bool check_step(const char *what, size_t n, NnrtStep step, char *err, size_t errlen) {
    if (!step.fn || step.batch == 0)
        return nnrt_fail(err, errlen, "no %s step function (or batch size 0)", what);
    if (n > UINT32_MAX)
        return nnrt_fail(err, errlen, "%s: %zu samples, more than the %u supported", what, n,
                    (unsigned)UINT32_MAX);
    return true;
}

static bool check_spec(const NnrtTrainSpec *spec, char *err, size_t errlen) {
    if (spec->dtype_bytes != 4 && spec->dtype_bytes != 8)
        return nnrt_fail(err, errlen, "dtype of %d bytes: expected 4 (float) or 8 (double)",
                    spec->dtype_bytes);
    if (spec->nslots < 5 || !spec->slots)
        return nnrt_fail(err, errlen, "%zu slots: the step functions need at least 5", spec->nslots);
    if (spec->classify && spec->outputs == 0)
        return nnrt_fail(err, errlen, "accuracy needs at least one output per sample");
    if (spec->nheads > NNRT_MAX_HEADS)
        return nnrt_fail(err, errlen, "%zu heads: at most %d are reported", spec->nheads, NNRT_MAX_HEADS);
    for (size_t h = 0; h < spec->nheads; h++)
        if (spec->heads[h].out_off > spec->outputs || spec->heads[h].out_size > spec->outputs - spec->heads[h].out_off)
            return nnrt_fail(err, errlen, "head %zu's outputs lie beyond the %zu of a sample", h, spec->outputs);
    if (spec->begin && (!spec->sum || spec->ranks < 1 || spec->rank < 0 || spec->rank >= spec->ranks))
        return nnrt_fail(err, errlen, "data-parallel training needs the sum over the ranks and this rank "
                                      "(%d of %d)", spec->rank, spec->ranks);
    return true;
}

static void set_slots(const NnrtTrainSpec *spec, const Buffers *b) {
    spec->slots[0] = b->arena;
    spec->slots[1] = b->x;
    spec->slots[2] = b->y;
    spec->slots[3] = b->loss;
    spec->slots[4] = b->output;
}

/* Leaves no pointers to freed buffers in the caller's slots. */
static void clear_slots(const NnrtTrainSpec *spec) {
    for (int i = 0; i < 5; i++)
        spec->slots[i] = NULL;
}

/* One pass over ds in bf->order: the step for each batch, the sample-
 * weighted loss and accuracy. Progress (if any) after every step. A
 * training pass starts at pos->step with pos's sums and reports every step
 * to the hook; an evaluation pass has pos NULL. */
typedef struct Pass {
    NnrtSums s;
    NnrtBatchFn on_batch; /* evaluation: sees every batch's outputs */
    void *ctx;
    size_t first;         /* the set's index of ds's first sample (a rank's slice) */
} Pass;

/* Whether small jobs are split on the thread pool (nnrt_parallel_for_small)
 * is measured, not assumed: on two cores of their own it pays (784-128-10
 * at batch 32: 0.09 s an epoch against 0.14), on a vCPU that shares its
 * core it costs (0.22 against 0.14), and a machine can move between the two
 * for minutes at a time. The first TRIAL_STEPS steps of each training pass
 * alternate, TRIAL_BLOCK at a time, between splitting and not (the first
 * block warms the caches and is not counted); the rest of the pass runs the
 * way whose median step was faster. Results are the same either way. */
enum { TRIAL_BLOCK = 8, TRIAL_STEPS = 10 * TRIAL_BLOCK };

typedef struct Trial {
    double secs[2][TRIAL_STEPS]; /* [split] seconds of each step timed */
    int n[2];
} Trial;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Before step k (0: the pass's first) of a training pass: sets how it runs;
 * returns whether it is timed, and which way (*split). */
static bool trial_next(Trial *t, size_t k, bool *split) {
    if (k > TRIAL_STEPS || nnrt_threads() == 1)
        return false;
    if (k == TRIAL_STEPS) {
        nnrt_set_split_small(median(t->secs[1], t->n[1]) <= median(t->secs[0], t->n[0]));
        return false;
    }
    *split = k / TRIAL_BLOCK % 2 == 0;
    nnrt_set_split_small(*split);
    return k >= TRIAL_BLOCK;
}

volatile sig_atomic_t nnrt_interrupt_requested;

void nnrt_interrupt(void) { nnrt_interrupt_requested = 1; }
bool nnrt_interrupted(void) { return nnrt_interrupt_requested != 0; }
void nnrt_clear_interrupt(void) { nnrt_interrupt_requested = 0; }

/* The accuracy, or the mean absolute error, of the samples seen; -1: neither. */
static double pass_acc(const NnrtTrainSpec *spec, const Pass *p) {
    return spec->classify ? (double)p->s.correct / (double)p->s.seen
           : spec->mae    ? p->s.abs_sum / ((double)p->s.seen * (double)spec->outputs)
                          : -1;
}

/* The sums of |output - label| and (output - label)^2 over the batch's b
 * samples (mean absolute and squared errors' numerators) into err[0] and
 * err[1], when `mae`; else 0. */
static void errors(const Buffers *bf, size_t b, const Slice *sl, bool mae, int dtype_bytes, double err[2]) {
    err[0] = err[1] = 0;
    for (size_t s = 0; mae && s < b; s++)
        for (size_t k = 0; k < sl->size; k++) {
            double e = read_elem(bf->output, s * sl->out_stride + sl->out_off + k, dtype_bytes) -
                       read_elem(bf->y, s * sl->y_stride + sl->y_off + k, dtype_bytes);
            err[0] += fabs(e);
            err[1] += e * e;
        }
}

/* Each head's sums over the batch's b samples (labels of label_size
 * elements), after its step: its loss (the loss slot's element 1 + h)
 * times b, and its samples right or its errors. */
static void head_sums(const NnrtTrainSpec *spec, const Buffers *bf, size_t b, size_t label_size, NnrtHeadSums *hs) {
    for (size_t h = 0; h < spec->nheads; h++) {
        const NnrtHead *hd = &spec->heads[h];
        Slice sl = {spec->outputs, hd->out_off, hd->out_size, label_size, hd->label_off};
        double e[2];
        errors(bf, b, &sl, hd->mae, spec->dtype_bytes, e);
        hs[h] = (NnrtHeadSums){read_elem(bf->loss, 1 + h, spec->dtype_bytes) * (double)b,
                               hd->classify ? (double)count_correct(bf, b, &sl, spec->dtype_bytes) : 0, e[0], e[1]};
    }
}

/* The metrics of a batch of b samples after its step: its samples
 * classified right (returned), its errors (errors()), each head's sums. */
static size_t batch_metrics(const NnrtTrainSpec *spec, const NnrtDataset *ds, const Buffers *bf, size_t b,
                            double err[2], NnrtHeadSums *hs) {
    Slice sl = whole(spec, ds);
    errors(bf, b, &sl, spec->mae, spec->dtype_bytes, err);
    head_sums(spec, bf, b, ds->label_size, hs);
    return spec->classify ? count_correct(bf, b, &sl, spec->dtype_bytes) : 0;
}

/* A head's loss and metrics over the `seen` samples of its sums. */
static void head_stats(const NnrtHead *hd, const NnrtHeadSums *s, size_t seen, double *loss, double *acc,
                       double *mse) {
    double n = (double)seen, elems = n * (double)hd->out_size;
    *loss = s->loss_sum / n;
    *acc = hd->classify ? s->correct / n : hd->mae ? s->abs_sum / elems : -1;
    *mse = hd->mae ? s->sq_sum / elems : -1;
}

/* Data-parallel: the n (at most 5: a step's 4, an evaluation's 5) sums of
 * this rank's slice, then its heads' (hs), added over the ranks in one
 * all-reduce: one latency, not two. */
static void sum_over_ranks(const NnrtTrainSpec *spec, double *sums, size_t n, NnrtHeadSums *hs) {
    double all[5 + 4 * NNRT_MAX_HEADS];
    size_t nh = 4 * spec->nheads; /* NnrtHeadSums: four doubles each; nheads <= NNRT_MAX_HEADS (check_spec) */
    memcpy(all, sums, n * sizeof *all);
    memcpy(all + n, hs, nh * sizeof *all);
    spec->sum(all, n + nh, 8);
    memcpy(sums, all, n * sizeof *all);
    memcpy(hs, all + n, nh * sizeof *all);
}

/* Step st (training or evaluation) on the b samples at order; returns the
 * batch's mean loss, *correct its samples classified right, err its errors
 * (errors()), hs each head's sums. A data-parallel training step (parallel)
 * runs this rank's slice of them, and sums its gradients, scaled by the
 * slice's share of the batch, over the ranks (so every rank holds the
 * batch's mean gradient, as one process would) before the update, the same
 * on every rank; the metrics are then over all ranks. The slices are
 * contiguous and differ by at most one sample when the ranks do not divide
 * b; a rank whose slice is empty (b < ranks) runs the step on no samples
 * and adds zeros. */
static double run_step(const NnrtTrainSpec *spec, const NnrtDataset *ds, const Buffers *bf, NnrtStep st,
                       const uint32_t *order, size_t b, bool parallel, size_t *correct, double err[2],
                       NnrtHeadSums *hs) {
    size_t r = (size_t)spec->rank, n = (size_t)spec->ranks;
    size_t lo = parallel ? b * r / n : 0, mine = parallel ? b * (r + 1) / n - lo : b; /* b < 2^32, n < 2^31 */
    /* loss times samples, samples right, absolute and squared error: of the slice, then of the batch */
    double sums[4] = {0, 0, 0, 0};
    memset(hs, 0, spec->nheads * sizeof *hs);
    nnrt_batch_fill(ds, order + lo, mine, spec->dtype_bytes, spec->input_u8, bf->x, bf->y);
    if (parallel)
        spec->begin(b, lo);
    unsigned fp = nnrt_flush_denormals();
    st.fn(spec->slots, (int64_t)mine);
    nnrt_restore_fp(fp);
    double loss = read_elem(bf->loss, 0, spec->dtype_bytes);
    if (mine) {
        sums[0] = loss * (double)mine;
        sums[1] = (double)batch_metrics(spec, ds, bf, mine, sums + 2, hs);
    }
    if (parallel)
        sum_over_ranks(spec, sums, 4, hs);
    *correct = (size_t)sums[1];
    err[0] = sums[2];
    err[1] = sums[3];
    return parallel ? sums[0] / (double)b : loss; /* alone: the step's mean itself, not times b over b */
}

/* A regression's mean squared error beside its mae; -1: not a regression. */
static double pass_mse(const NnrtTrainSpec *spec, const Pass *p) {
    return spec->mae ? p->s.sq_sum / ((double)p->s.seen * (double)spec->outputs) : -1;
}

static bool run_pass(const NnrtTrainSpec *spec, const NnrtDataset *ds, const Buffers *bf,
                     NnrtStep st, NnrtProgress *prog, Pass *pass,
                     NnrtTrainPos *pos, NnrtTrainResult *res, const char *where, char *err,
                     size_t errlen) {
    size_t step = pos ? pos->step : 0;
    pass->s = pos ? pos->sums : (NnrtSums){0};
    if (prog)
        prog->done = step;
    Trial trial = {{{0}}, {0}};
    size_t first = step;
    for (size_t off = step * st.batch; off < ds->n; off += st.batch) {
        bool split = false, timed = pos && trial_next(&trial, step - first, &split);
        step++;
        size_t b = ds->n - off < st.batch ? ds->n - off : st.batch;
        double t0 = timed ? nnrt_now() : 0, loss, errs[2];
        size_t correct;
        NnrtHeadSums hs[NNRT_MAX_HEADS];
        loss = run_step(spec, ds, bf, st, bf->order + off, b, pos && spec->begin, &correct, errs, hs);
        bool loss_ok = isfinite(loss);
        if (!loss_ok || (pos && spec->finite && !spec->finite(spec->slots))) {
            if (prog && prog->tty)
                fputc('\n', prog->out); /* keep the bar; the error goes below it */
            if (res)
                res->failure = NNRT_FAIL_NONFINITE;
            if (pos && spec->on_nonfinite) {
                NnrtNonFinite nf = {pos->epoch + 1, step, !loss_ok, loss, spec->slots};
                spec->on_nonfinite(spec->ctx, &nf);
            }
            if (loss_ok)
                return nnrt_fail(err, errlen, "a gradient became nan or inf %s step %zu (the loss "
                            "was %g)", where, step, loss);
            return nnrt_fail(err, errlen, "loss is %s %s step %zu", isnan(loss) ? "nan" : "inf",
                        where, step);
        }
        if (timed)
            trial.secs[split][trial.n[split]++] = nnrt_now() - t0; /* the step and the guard */
        if (pass->on_batch)
            pass->on_batch(pass->ctx, pass->first + off, b, bf->output, bf->y);
        pass->s.loss_sum += loss * (double)b;
        pass->s.seen += b;
        pass->s.correct += correct;
        pass->s.abs_sum += errs[0];
        pass->s.sq_sum += errs[1];
        for (size_t h = 0; h < spec->nheads; h++) {
            pass->s.head[h].loss_sum += hs[h].loss_sum;
            pass->s.head[h].correct += hs[h].correct;
            pass->s.head[h].abs_sum += hs[h].abs_sum;
            pass->s.head[h].sq_sum += hs[h].sq_sum;
        }
        if (prog)
            nnrt_progress_step(prog, pass->s.loss_sum / (double)pass->s.seen, pass_acc(spec, pass),
                               pass_mse(spec, pass));
        if (pos) {
            pos->step = step;
            pos->sums = pass->s;
            if (spec->after_step && off + b < ds->n &&
                spec->after_step(spec->ctx, pos, NULL, err, errlen) == NNRT_HOOK_FAIL) {
                res->failure = NNRT_FAIL_HOOK;
                return false;
            }
            /* At an epoch's last step the epoch is finished first (its
             * stats, its hook), so the hook's position always matches the
             * weights: the loop stops at the next epoch's start. */
            if (nnrt_interrupted() && off + b < ds->n) {
                if (prog && prog->tty)
                    fputc('\n', prog->out);
                res->failure = NNRT_FAIL_INTERRUPTED;
                return nnrt_fail(err, errlen, "training interrupted %s step %zu", where, step);
            }
        }
    }
    return true;
}


/* After a loss printed on spec->out: the accuracy or mae, and a
 * regression's mse, named with `prefix` ("val_"); those < 0 are not. */
static void print_metrics(const NnrtTrainSpec *spec, const char *prefix, double acc, double mse) {
    if (acc >= 0)
        fprintf(spec->out, "  %s%s %.4f", prefix, nnrt_metric_name(spec->mae), acc);
    if (mse >= 0)
        fprintf(spec->out, "  %smse %.4f", prefix, mse);
}

/* Evaluation over buffers allocated by the caller; mse may be NULL; heads
 * (NULL: not wanted) gets each head's loss, acc and mse. */
static bool evaluate(const NnrtTrainSpec *spec, const NnrtDataset *ds, const char *where, const Buffers *bf, double *loss, double *acc,
                     double *mse, NnrtHeadStats *heads, NnrtBatchFn on_batch, void *ctx, char *err, size_t errlen) {
    /* Data-parallel: each rank its contiguous slice of the set, the sums
     * added over the ranks; on_batch sees the slice's batches (the caller
     * adds up or gathers what it makes of them: metrics.c). */
    bool split = spec->begin;
    NnrtDataset part = *ds;
    size_t lo = 0;
    if (split) { /* n < 2^32, ranks < 2^31: no overflow */
        lo = ds->n * (size_t)spec->rank / (size_t)spec->ranks;
        part.n = ds->n * ((size_t)spec->rank + 1) / (size_t)spec->ranks - lo;
    }
    for (size_t i = 0; i < part.n; i++)
        bf->order[i] = (uint32_t)(lo + i);
    Pass pass = {.on_batch = on_batch, .ctx = ctx, .first = lo};
    if (!run_pass(spec, &part, bf, spec->eval, NULL, &pass, NULL, NULL, where, err,
                  errlen))
        return false;
    if (split) {
        double sums[5] = {pass.s.loss_sum, (double)pass.s.seen, (double)pass.s.correct, pass.s.abs_sum, pass.s.sq_sum};
        sum_over_ranks(spec, sums, 5, pass.s.head);
        pass.s.loss_sum = sums[0];
        pass.s.seen = (size_t)sums[1];
        pass.s.correct = (size_t)sums[2];
        pass.s.abs_sum = sums[3];
        pass.s.sq_sum = sums[4];
    }
    *loss = pass.s.loss_sum / (double)pass.s.seen;
    *acc = pass_acc(spec, &pass);
    if (mse)
        *mse = pass_mse(spec, &pass);
    for (size_t h = 0; heads && h < spec->nheads; h++)
        head_stats(&spec->heads[h], &pass.s.head[h], pass.s.seen, &heads[h].loss, &heads[h].acc, &heads[h].mse);
    return true;
}

bool nnrt_evaluate(const NnrtTrainSpec *spec, const NnrtDataset *ds, double *loss, double *acc,
                   char *err, size_t errlen) {
    return nnrt_evaluate_batches(spec, ds, NULL, NULL, loss, acc, NULL, err, errlen);
}

bool nnrt_evaluate_batches(const NnrtTrainSpec *spec, const NnrtDataset *ds, NnrtBatchFn on_batch,
                           void *ctx, double *loss, double *acc, NnrtHeadStats *heads, char *err, size_t errlen) {
    if (!check_spec(spec, err, errlen) || !check_step("evaluation", ds->n, spec->eval, err, errlen) ||
        !check_input_type(spec, "evaluation", ds, err, errlen))
        return false;
    if (ds->n == 0)
        return nnrt_fail(err, errlen, "evaluation: the dataset is empty");
    Buffers bf;
    if (!buffers_alloc(&bf, spec, spec->eval.batch, ds, ds->n, err, errlen))
        return false;
    set_slots(spec, &bf);
    bool ok = evaluate(spec, ds, "at", &bf, loss, acc, NULL, heads, on_batch, ctx, err,
                       errlen);
    clear_slots(spec);
    buffers_free(&bf);
    return ok;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

void nnrt_train_pos_init(NnrtTrainPos *pos, uint64_t seed) {
    memset(pos, 0, sizeof *pos);
    nnrt_rng_seed(&pos->rng, seed);
}

static bool check_eval_set(const NnrtTrainSpec *spec, const char *what, const NnrtDataset *ds,
                           const NnrtDataset *train, char *err, size_t errlen) {
    if (!check_step(what, ds->n, spec->eval, err, errlen))
        return false;
    if (ds->n == 0)
        return nnrt_fail(err, errlen, "%s: the set is empty", what);
    if (ds->sample_size != train->sample_size)
        return nnrt_fail(err, errlen, "%s samples have %zu elements, training samples %zu", what,
                    ds->sample_size, train->sample_size);
    if (ds->label_size != train->label_size)
        return nnrt_fail(err, errlen, "%s samples have %zu label elements, training samples %zu", what,
                    ds->label_size, train->label_size);
    return check_input_type(spec, what, ds, err, errlen);
}

/* On failure res holds nothing but the failure (freeing it anyway is harmless). */
bool nnrt_train(const NnrtTrainSpec *spec, const NnrtDataset *train, const NnrtDataset *test,
                NnrtTrainResult *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    res->test_loss = res->test_acc = res->test_mse = -1;
    res->failure = NNRT_FAIL_OTHER;
    if (!check_spec(spec, err, errlen) || !check_step("training", train->n, spec->train, err, errlen) ||
        !check_input_type(spec, "training", train, err, errlen))
        return false;
    if (train->n == 0)
        return nnrt_fail(err, errlen, "training: the dataset is empty");
    if (spec->epochs < 0)
        return nnrt_fail(err, errlen, "%d epochs", spec->epochs);
    size_t max_batch = spec->train.batch;
    if (test || spec->val)
        max_batch = max_size(max_batch, spec->eval.batch);
    size_t max_n = train->n;
    if (test) {
        if (!check_eval_set(spec, "evaluation", test, train, err, errlen))
            return false;
        max_n = max_size(max_n, test->n);
    }
    if (spec->val) {
        if (!check_eval_set(spec, "validation", spec->val, train, err, errlen))
            return false;
        max_n = max_size(max_n, spec->val->n);
    }
    NnrtTrainPos pos;
    if (spec->resume)
        pos = *spec->resume;
    else
        nnrt_train_pos_init(&pos, spec->seed);
    size_t full = spec->train.batch;
    size_t steps = train->n / full + (train->n % full != 0);
    if (pos.epoch < 0 || pos.step >= steps || pos.sums.seen > train->n || pos.sums.correct > pos.sums.seen)
        return nnrt_fail(err, errlen, "cannot resume at epoch %d, step %zu: an epoch has %zu steps",
                    pos.epoch, pos.step, steps);
    res->epochs = calloc(spec->epochs ? (size_t)spec->epochs : 1, sizeof *res->epochs);
    if (!res->epochs)
        return nnrt_fail(err, errlen, "out of memory for %d epochs of results", spec->epochs);
    Buffers bf;
    if (!buffers_alloc(&bf, spec, max_batch, train, max_n, err, errlen)) {
        nnrt_train_result_free(res);
        return false;
    }
    set_slots(spec, &bf);

    bool ok = true;
    nnrt_sigint_stops_training(true);
    while (ok && !res->stopped && pos.epoch < spec->epochs) {
        if (nnrt_interrupted()) {
            res->failure = NNRT_FAIL_INTERRUPTED;
            ok = nnrt_fail(err, errlen, "training interrupted after epoch %d", pos.epoch);
            break;
        }
        NnrtRng before = pos.rng;
        for (size_t i = 0; i < train->n; i++)
            bf.order[i] = (uint32_t)i;
        nnrt_shuffle(&pos.rng, bf.order, train->n);
        NnrtTrainPos in_epoch = pos;
        in_epoch.rng = before; /* a checkpoint mid-epoch reshuffles from here */
        NnrtProgress prog;
        nnrt_progress_begin(&prog, spec->out, pos.epoch + 1, spec->epochs, steps);
        prog.metric = nnrt_metric_name(spec->mae);
        prog.heads = spec->heads;
        prog.nheads = spec->nheads;
        char where[64];
        snprintf(where, sizeof where, "at epoch %d,", pos.epoch + 1);
        Pass pass = {0};
        ok = run_pass(spec, train, &bf, spec->train, &prog, &pass,
                      &in_epoch, res, where, err, errlen);
        if (!ok)
            break;
        NnrtEpochStats *st = &res->epochs[res->nepochs++];
        st->epoch = pos.epoch + 1;
        st->loss = pass.s.loss_sum / (double)pass.s.seen;
        st->acc = pass_acc(spec, &pass);
        st->mse = pass_mse(spec, &pass);
        st->val_loss = st->val_acc = st->val_mse = -1;
        for (size_t h = 0; h < spec->nheads; h++) {
            NnrtHeadStats *hs = &st->head[h];
            head_stats(&spec->heads[h], &pass.s.head[h], pass.s.seen, &hs->loss, &hs->acc, &hs->mse);
            hs->val_loss = hs->val_acc = hs->val_mse = -1;
        }
        if (spec->val) {
            NnrtHeadStats vh[NNRT_MAX_HEADS];
            ok = evaluate(spec, spec->val, "on the validation set at", &bf,
                          &st->val_loss, &st->val_acc, &st->val_mse, vh, NULL, NULL, err, errlen);
            if (!ok) {
                res->failure = NNRT_FAIL_NONFINITE;
                break;
            }
            for (size_t h = 0; h < spec->nheads; h++) {
                st->head[h].val_loss = vh[h].loss;
                st->head[h].val_acc = vh[h].acc;
                st->head[h].val_mse = vh[h].mse;
            }
        }
        st->secs = nnrt_now() - prog.t0;
        nnrt_progress_end(&prog, st, st->secs);
        if (spec->val && spec->out) {
            fprintf(spec->out, "           val_loss %.4f", st->val_loss);
            print_metrics(spec, "val_", st->val_acc, st->val_mse);
            nnrt_print_heads(spec->out, spec->heads, spec->nheads, st->head, true);
            fputc('\n', spec->out);
            fflush(spec->out);
        }
        pos.epoch++;
        pos.step = 0;
        pos.sums = (NnrtSums){0};
        if (spec->after_step) {
            NnrtHookResult h = spec->after_step(spec->ctx, &pos, st, err, errlen);
            if (h == NNRT_HOOK_FAIL) {
                res->failure = NNRT_FAIL_HOOK;
                ok = false;
            }
            res->stopped = h == NNRT_HOOK_STOP;
        }
    }
    if (ok && test) {
        ok = evaluate(spec, test, "on the test set at", &bf, &res->test_loss,
                      &res->test_acc, &res->test_mse, res->test_head, NULL, NULL, err, errlen);
        if (ok && spec->out) {
            fprintf(spec->out, "test  loss %.4f", res->test_loss);
            print_metrics(spec, "", res->test_acc, res->test_mse);
            nnrt_print_heads(spec->out, spec->heads, spec->nheads, res->test_head, false);
            fputc('\n', spec->out);
            fflush(spec->out);
        } else if (!ok) {
            res->failure = NNRT_FAIL_NONFINITE;
        }
    }
    nnrt_sigint_stops_training(false);
    clear_slots(spec);
    buffers_free(&bf);
    if (ok)
        res->failure = NNRT_FAIL_NONE;
    else
        nnrt_train_result_free(res);
    return ok;
}

void nnrt_train_result_free(NnrtTrainResult *res) {
    free(res->epochs);
    res->epochs = NULL;
    res->nepochs = 0;
    res->test_loss = res->test_acc = res->test_mse = -1;
}
