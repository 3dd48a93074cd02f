/* aot.c — the training state of a model compiled ahead of time (nnc -c):
 * its buffers, its steps called on them, and its checkpoints.
 *
 * The object nnc writes holds the step functions and a description of
 * their slots (NnrtAotModel: names, shapes, layouts, first contents); this
 * file is the part that needs no code generation: memory, the checkpoint
 * format, errors. It is the runtime's, so the generated code stays small,
 * and a program that only predicts (MODEL_predict is generated whole) links
 * without it.
 *
 * The slots are laid out as the compiled steps read them: a weight matrix
 * the kernels keep in column panels (compiler/layout.c) is converted to
 * row-major when saved and back when loaded, as nnc's own sessions do.
 */
#include "nnrt.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct NnrtAotState {
    const NnrtAotModel *m;
    void **slots;
    void *loss, *output; /* the steps' buffers for the loss and a batch's outputs */
    float *labels;       /* zeros: the evaluation step computes a loss nobody reads */
    /* The inputs' normalization (--normalize), per input element: the
     * model's, or the last checkpoint loaded's; NULL: none. xn holds a
     * step's inputs normalized. */
    double *mean, *std;
    float *xn;
    char err[512];
};

static int fail(NnrtAotState *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(NnrtAotState *s, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return code;
}

/* Zeroed, 64-byte aligned (the kernels' vectors), count * size bytes; NULL
 * on overflow or when out of memory. */
static void *zalloc64(size_t count, size_t size) {
    if (size && count > (SIZE_MAX - 63) / size)
        return NULL;
    size_t bytes = (count * size + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes ? bytes : 64);
    return p;
}

void nnrt_aot_state_free(NnrtAotState *s) {
    if (!s)
        return;
    for (int64_t i = 0; s->slots && i < s->m->nslots; i++)
        if (i != 1 && i != 2 && i != 4) /* x, y and the output are the caller's */
            free(s->slots[i]);
    free(s->slots);
    free(s->labels);
    free(s->output);
    free(s->mean);
    free(s->std);
    free(s->xn);
    free(s);
}

/* The state's normalization from mean and std (NULL: none), copied; false
 * when out of memory, the state's unchanged. */
static bool set_normalize(NnrtAotState *s, const double *mean, const double *std) {
    size_t k = (size_t)s->m->input_size;
    double *m = NULL, *d = NULL;
    float *xn = NULL;
    if (mean) {
        m = malloc(k * sizeof *m);
        d = malloc(k * sizeof *d);
        xn = zalloc64((size_t)s->m->batch, k * sizeof *xn);
        if (!m || !d || !xn) {
            free(m);
            free(d);
            free(xn);
            return false;
        }
        memcpy(m, mean, k * sizeof *m);
        memcpy(d, std, k * sizeof *d);
    }
    free(s->mean);
    free(s->std);
    free(s->xn);
    s->mean = m;
    s->std = d;
    s->xn = xn;
    return true;
}

/* n samples of x as the steps take them: normalized into xn if the state
 * has a normalization (n up to a batch), else x itself. */
static void *inputs(NnrtAotState *s, const float *x, size_t n) {
    if (!s->mean)
        return (void *)x;
    size_t k = (size_t)s->m->input_size;
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < k; e++)
            s->xn[i * k + e] = nnrt_normalized(x[i * k + e], s->mean[e], s->std[e]);
    return s->xn;
}

int nnrt_aot_state_new(const NnrtAotModel *m, NnrtAotState **out) {
    *out = NULL;
    if (!m || m->abi != NNRT_AOT_ABI || m->nslots < 5)
        return NNRT_AOT_EINVAL;
    NnrtAotState *s = calloc(1, sizeof *s);
    if (!s)
        return NNRT_AOT_ENOMEM;
    s->m = m;
    s->slots = calloc((size_t)m->nslots, sizeof *s->slots);
    s->labels = zalloc64((size_t)m->batch, (size_t)m->label_size * sizeof(float));
    s->output = zalloc64((size_t)m->batch, (size_t)m->output_size * sizeof(float));
    bool ok = s->slots && s->labels && s->output && set_normalize(s, m->mean, m->std);
    if (ok) {
        s->slots[0] = zalloc64((size_t)m->arena_bytes, 1);
        s->slots[3] = s->loss = zalloc64(1, sizeof(float));
        ok = s->slots[0] && s->loss;
    }
    for (int64_t i = 5; ok && i < m->nslots; i++) {
        const NnrtAotSlot *sl = &m->slots[i];
        if (!sl->name)
            continue;
        ok = (s->slots[i] = zalloc64((size_t)sl->elems, sizeof(float))) != NULL;
        if (ok && sl->init)
            memcpy(s->slots[i], sl->init, (size_t)sl->elems * sizeof(float));
    }
    if (!ok) {
        nnrt_aot_state_free(s);
        return NNRT_AOT_ENOMEM;
    }
    *out = s;
    return 0;
}

const char *nnrt_aot_error(const NnrtAotState *s) { return s ? s->err : "no state"; }

int nnrt_aot_train_step(NnrtAotState *s, const float *x, const float *y, size_t n, float *loss) {
    if (!s || !x || !y || n < 1 || n > (size_t)s->m->batch)
        return s ? fail(s, NNRT_AOT_EINVAL, "a training step takes 1 to %lld samples, and x and y",
                        (long long)s->m->batch)
                 : NNRT_AOT_EINVAL;
    s->slots[1] = inputs(s, x, n);
    s->slots[2] = (void *)y;
    s->slots[4] = s->output;
    unsigned fp = nnrt_flush_denormals(); /* as nnc --train runs it */
    s->m->train_step(s->slots, (int64_t)n);
    nnrt_restore_fp(fp);
    if (loss)
        *loss = *(float *)s->loss;
    return 0;
}

int nnrt_aot_predict(NnrtAotState *s, const float *x, size_t n, float *out) {
    if (!s || ((!x || !out) && n > 0))
        return s ? fail(s, NNRT_AOT_EINVAL, "predict: x and out must not be NULL") : NNRT_AOT_EINVAL;
    size_t batch = (size_t)s->m->batch;
    s->slots[2] = s->labels;
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        s->slots[1] = inputs(s, x + i * (size_t)s->m->input_size, k); /* normalized as nnc does, not flushed */
        s->slots[4] = out + i * (size_t)s->m->output_size;
        unsigned fp = nnrt_flush_denormals();
        s->m->eval_step(s->slots, (int64_t)k);
        nnrt_restore_fp(fp);
    }
    return 0;
}

/* A copy of slot sl's matrix from its panels to row-major (to_rows) or
 * back; NULL when out of memory. */
static float *relaid(const NnrtAotSlot *sl, const float *src, bool to_rows) {
    float *dst = zalloc64((size_t)sl->elems, sizeof(float));
    int64_t K = sl->dims[0], N = sl->dims[1];
    for (int64_t i = 0; dst && i < K; i++)
        for (int64_t j = 0; j < N; j++) {
            size_t p = nnrt_panel_index(i, j, K, sl->panel_width), r = (size_t)(i * N + j);
            dst[to_rows ? r : p] = src[to_rows ? p : r];
        }
    return dst;
}

/* The state's tensors, row-major, with the model's name and fingerprint
 * and the metadata extra[0..nextra) after them. */
static int save(NnrtAotState *s, const char *path, const NnrtMeta *extra, size_t nextra) {
    if (!s || !path)
        return s ? fail(s, NNRT_AOT_EINVAL, "save: no path") : NNRT_AOT_EINVAL;
    const NnrtAotModel *m = s->m;
    NnrtTensor *t = calloc((size_t)m->nslots, sizeof *t);
    float **rows = calloc((size_t)m->nslots, sizeof *rows);
    size_t nt = 0;
    bool ok = t && rows;
    for (int64_t i = 5; ok && i < m->nslots; i++) {
        const NnrtAotSlot *sl = &m->slots[i];
        if (!sl->name)
            continue;
        const void *data = s->slots[i];
        if (sl->panel_width)
            ok = (data = rows[i] = relaid(sl, s->slots[i], true)) != NULL;
        t[nt] = (NnrtTensor){.name = sl->name, .rank = (int)sl->rank, .data = data};
        memcpy(t[nt].dims, sl->dims, sizeof sl->dims);
        nt++;
    }
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)m->fingerprint);
    /* as nnc --save keeps --normalize's, for nnc --load and MODEL_state_load */
    char *norm = s->mean ? nnrt_normalize_format(s->mean, s->std, (size_t)m->input_size) : NULL;
    ok = ok && (norm || !s->mean);
    NnrtMeta meta[18] = {{"model", m->name}, {"model_fnv1a64", fp}, {"normalize", norm ? norm : ""}};
    size_t nmeta = 3;
    for (size_t i = 0; i < nextra && nmeta < sizeof meta / sizeof meta[0]; i++)
        meta[nmeta++] = extra[i];
    int status = !ok ? fail(s, NNRT_AOT_ENOMEM, "save: out of memory")
                 : !nnrt_ckpt_save(path, t, nt, meta, nmeta, s->err, sizeof s->err) ? NNRT_AOT_EIO
                                                                                     : 0;
    for (int64_t i = 0; rows && i < m->nslots; i++)
        free(rows[i]);
    free(rows);
    free(t);
    free(norm);
    return status;
}

int nnrt_aot_save(NnrtAotState *s, const char *path) { return save(s, path, NULL, 0); }

int nnrt_aot_save_run(NnrtAotState *s, const char *path, const NnrtTrainPos *pos, uint64_t seed, size_t samples) {
    if (!s)
        return NNRT_AOT_EINVAL;
    if (!pos || pos->epoch < 0)
        return fail(s, NNRT_AOT_EINVAL, "save_run: no training position");
    char v[9][80];
    snprintf(v[0], sizeof v[0], "%d", pos->epoch);
    snprintf(v[1], sizeof v[1], "%zu", pos->step);
    snprintf(v[2], sizeof v[2], "%016llx %016llx %016llx %016llx", (unsigned long long)pos->rng.s[0],
             (unsigned long long)pos->rng.s[1], (unsigned long long)pos->rng.s[2], (unsigned long long)pos->rng.s[3]);
    snprintf(v[3], sizeof v[3], "%a", pos->sums.loss_sum);
    snprintf(v[4], sizeof v[4], "%zu", pos->sums.seen);
    snprintf(v[8], sizeof v[8], "%zu", pos->sums.correct);
    snprintf(v[5], sizeof v[5], "%llu", (unsigned long long)seed);
    snprintf(v[6], sizeof v[6], "%lld", (long long)s->m->batch);
    snprintf(v[7], sizeof v[7], "%zu", samples);
    /* nnc's training state (compiler/fit.c reads it): the position, and no
     * early-stopping state or history, which only nnc's loop keeps. */
    NnrtMeta meta[] = {{"format", NNRT_CKPT_FORMAT}, {"epoch", v[0]}, {"step", v[1]}, {"rng", v[2]},
                       {"loss_sum", v[3]}, {"seen", v[4]}, {"correct", v[8]}, {"seed", v[5]},
                       {"batch", v[6]}, {"samples", v[7]}, {"best", "nan"},
                       {"best_epoch_bad_epochs", "0 0"}, {"history", ""}};
    return save(s, path, meta, sizeof meta / sizeof meta[0]);
}

/* Checks every tensor of c against the model's slots: 0, or NNRT_AOT_EIO
 * with the problem in s->err. */
static int check_tensors(NnrtAotState *s, const NnrtCkpt *c, const char *path) {
    const NnrtAotModel *m = s->m;
    for (int64_t i = 5; i < m->nslots; i++) {
        const NnrtAotSlot *sl = &m->slots[i];
        const NnrtTensor *t = sl->name ? nnrt_ckpt_tensor(c, sl->name) : NULL;
        if (!t && sl->name && sl->weight)
            return fail(s, NNRT_AOT_EIO, "%s has no tensor '%s'", path, sl->name);
        if (t && t->f64)
            return fail(s, NNRT_AOT_EIO, "%s: tensor '%s' is F64; weights are F32", path, sl->name);
        bool same = !t || t->rank == sl->rank;
        for (int k = 0; t && same && k < t->rank; k++)
            same = t->dims[k] == sl->dims[k];
        if (!same)
            return fail(s, NNRT_AOT_EIO, "%s: tensor '%s' has another shape than model %s's", path, sl->name,
                        m->name);
    }
    for (size_t k = 0; k < c->ntensors; k++) {
        bool known = !strcmp(c->tensors[k].name, NNRT_CKPT_HISTORY); /* not a weight */
        for (int64_t i = 5; !known && i < m->nslots; i++)
            known = m->slots[i].name && !strcmp(m->slots[i].name, c->tensors[k].name);
        if (!known)
            return fail(s, NNRT_AOT_EIO, "%s holds a tensor '%s' that model %s does not have", path,
                        c->tensors[k].name, m->name);
    }
    return 0;
}

int nnrt_aot_load(NnrtAotState *s, const char *path) {
    if (!s || !path)
        return s ? fail(s, NNRT_AOT_EINVAL, "load: no path") : NNRT_AOT_EINVAL;
    const NnrtAotModel *m = s->m;
    NnrtCkpt c;
    if (!nnrt_ckpt_load(path, &c, s->err, sizeof s->err))
        return NNRT_AOT_EIO;
    /* Read whole into new buffers first: a failure leaves the state as it was. */
    float **in = calloc((size_t)m->nslots, sizeof *in);
    int status = in ? check_tensors(s, &c, path) : fail(s, NNRT_AOT_ENOMEM, "load: out of memory");
    for (int64_t i = 5; !status && i < m->nslots; i++) {
        const NnrtAotSlot *sl = &m->slots[i];
        const NnrtTensor *t = sl->name ? nnrt_ckpt_tensor(&c, sl->name) : NULL;
        if (!t)
            continue;
        if (!(in[i] = zalloc64((size_t)sl->elems, sizeof(float))))
            status = fail(s, NNRT_AOT_ENOMEM, "load: out of memory");
        else if (!nnrt_ckpt_read(&c, t, in[i], s->err, sizeof s->err))
            status = NNRT_AOT_EIO;
        /* As nnc's --load: a NaN weight would only show as a poor accuracy. */
        for (int64_t k = 0; !status && k < sl->elems; k++)
            if (!isfinite(in[i][k]))
                status = fail(s, NNRT_AOT_EIO, "%s: tensor '%s' holds %g at element %lld", path, sl->name,
                              (double)in[i][k], (long long)k);
        float *p = !status && sl->panel_width ? relaid(sl, in[i], false) : NULL;
        if (!status && sl->panel_width && !p)
            status = fail(s, NNRT_AOT_ENOMEM, "load: out of memory");
        if (p) {
            free(in[i]);
            in[i] = p;
        }
    }
    /* The checkpoint's normalization, or none, as nnc --load takes it: set
     * last, the one step after it cannot fail. */
    const char *norm = nnrt_ckpt_meta(&c, "normalize");
    size_t k = (size_t)m->input_size;
    double *mean = norm && *norm ? calloc(k, sizeof *mean) : NULL, *std = mean ? calloc(k, sizeof *std) : NULL;
    if (!status && norm && *norm && !std)
        status = fail(s, NNRT_AOT_ENOMEM, "load: out of memory");
    else if (!status && std && !nnrt_normalize_parse(norm, k, mean, std))
        status = fail(s, NNRT_AOT_EIO, "%s: its normalization (metadata 'normalize') is malformed or not for inputs "
                      "of %zu elements", path, k);
    if (!status && !set_normalize(s, mean, std))
        status = fail(s, NNRT_AOT_ENOMEM, "load: out of memory");
    free(mean);
    free(std);
    for (int64_t i = 5; in && i < m->nslots; i++) {
        if (!status && in[i]) {
            free(s->slots[i]);
            s->slots[i] = in[i];
        } else {
            free(in[i]);
        }
    }
    free(in);
    nnrt_ckpt_free(&c);
    return status;
}
