/* metrics.c — `--eval` and `--predict`: what a trained model does on a
 * dataset, for people (loss, accuracy, per-class accuracy, the confusion
 * matrix) and for other programs (one CSV row per sample).
 *
 * Both run the compiled evaluation steps through nnrt_evaluate_batches and
 * look at each batch's outputs as it goes, so nothing of the size of the
 * dataset times the outputs is ever held in memory.
 *
 * Data-parallel (under mpirun), each rank evaluates its contiguous slice of
 * the set: the counts are added over the ranks, and the other ranks' rows
 * of predictions (held by each, its slice's) are written by rank 0 after
 * its own, so that rank 0 prints and writes what one process does.
 */
#include "nnrt.h"

#include <stdlib.h>
#include <string.h>

static double elem(const void *p, size_t i, int dtype_bytes) {
    return dtype_bytes == 4 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static size_t argmax(const void *out, size_t row, size_t k, int dtype_bytes) {
    size_t best = 0;
    double best_v = elem(out, row * k, dtype_bytes);
    for (size_t j = 1; j < k; j++) {
        double v = elem(out, row * k + j, dtype_bytes);
        if (v > best_v) {
            best_v = v;
            best = j;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- --eval */

typedef struct Confusion {
    size_t k;
    size_t *m; /* m[label * k + predicted] */
    int dtype_bytes;
    size_t outputs; /* a regression's (NnrtTrainSpec.mae): */
    double sq_sum;  /* its squared errors' sum */
} Confusion;

static void count_batch(void *ctx, size_t first, size_t b, const void *output, const void *y) {
    (void)first;
    Confusion *c = ctx;
    for (size_t i = 0; i < b * c->outputs; i++) {
        double e = elem(output, i, c->dtype_bytes) - elem(y, i, c->dtype_bytes);
        c->sq_sum += e * e;
    }
    for (size_t s = 0; s < b && c->k; s++) {
        /* Labels are integers in [0, k): nnrt_eval_report's precondition. */
        size_t label = (size_t)elem(y, s, c->dtype_bytes);
        c->m[label * c->k + argmax(output, s, c->k, c->dtype_bytes)]++;
    }
}

/* Data-parallel: the confusion matrix and squared errors of every rank's
 * slice, added over the ranks (counts below 2^53 are exact in a double). */
static bool sum_ranks(const NnrtTrainSpec *spec, Confusion *c, char *err, size_t errlen) {
    size_t cells = c->k * c->k; /* checked by the caller */
    double *v = calloc(cells + 1, sizeof *v);
    if (!v) /* the other ranks wait in the sum: the failure's MPI_Abort ends them */
        return nnrt_fail(err, errlen, "out of memory for the ranks' confusion matrices");
    for (size_t i = 0; i < cells; i++)
        v[i] = (double)c->m[i];
    v[cells] = c->sq_sum;
    spec->sum(v, cells + 1, 8);
    for (size_t i = 0; i < cells; i++)
        c->m[i] = (size_t)v[i];
    c->sq_sum = v[cells];
    free(v);
    return true;
}

bool nnrt_eval_report(const NnrtTrainSpec *spec, const NnrtDataset *ds, const NnrtClasses *names, FILE *out,
                      char *err, size_t errlen) {
    Confusion c = {spec->classify ? spec->outputs : 0, NULL, spec->dtype_bytes, spec->mae ? spec->outputs : 0, 0};
    if (c.k) {
        size_t cells;
        if (__builtin_mul_overflow(c.k, c.k, &cells) || !(c.m = calloc(cells, sizeof *c.m))) {
            snprintf(err, errlen, "out of memory for a %zu x %zu confusion matrix", c.k, c.k);
            return false;
        }
    }
    double loss, acc;
    NnrtHeadStats heads[NNRT_MAX_HEADS];
    bool ok = nnrt_evaluate_batches(spec, ds, c.k || c.outputs ? count_batch : NULL, &c, &loss, &acc, heads, err,
                                    errlen);
    if (ok && spec->begin)
        ok = sum_ranks(spec, &c, err, errlen);
    if (ok) {
        fprintf(out, "samples %zu  loss %.4f", ds->n, loss);
        if (acc >= 0)
            fprintf(out, "  %s %.4f", nnrt_metric_name(spec->mae), acc);
        if (c.outputs) /* the mean squared error, whatever the loss */
            fprintf(out, "  mse %.4f", c.sq_sum / ((double)ds->n * (double)c.outputs));
        nnrt_print_heads(out, spec->heads, spec->nheads, heads, false);
        fputc('\n', out);
    }
    if (ok && c.k) {
        fputs("\nclass  samples  accuracy\n", out);
        for (size_t i = 0; i < c.k; i++) {
            size_t row = 0;
            for (size_t j = 0; j < c.k; j++)
                row += c.m[i * c.k + j];
            fprintf(out, "%5zu  %7zu  ", i, row);
            if (row)
                fprintf(out, "%.4f", (double)c.m[i * c.k + i] / (double)row);
            else
                fputs("     -", out);
            if (i < names->n) /* a table's class: its name */
                fprintf(out, "  %s", names->names[i]);
            fputc('\n', out);
        }
        fputs("\nconfusion matrix (rows: true class, columns: predicted)\n      ", out);
        for (size_t j = 0; j < c.k; j++)
            fprintf(out, " %6zu", j);
        fputc('\n', out);
        for (size_t i = 0; i < c.k; i++) {
            fprintf(out, "%5zu ", i);
            for (size_t j = 0; j < c.k; j++)
                fprintf(out, " %6zu", c.m[i * c.k + j]);
            fputc('\n', out);
        }
    }
    fflush(out);
    free(c.m);
    return ok;
}

/* ---------------------------------------------------------------- --predict */

typedef struct Rows {
    FILE *out;
    size_t k;
    bool classify;
    int dtype_bytes;
    const NnrtClasses *names;
} Rows;

/* A field of the CSV written, quoted as RFC 4180 says where it holds a
 * delimiter, a quote or a line end: a name is a table's header's or
 * class's, which a quoted field there could hold. */
static void csv_field(FILE *out, const char *s) {
    if (!s[strcspn(s, ",\"\r\n")]) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void write_rows(void *ctx, size_t first, size_t b, const void *output, const void *y) {
    (void)y;
    Rows *c = ctx;
    for (size_t s = 0; s < b; s++) {
        fprintf(c->out, "%zu", first + s);
        size_t cls = c->classify ? argmax(output, s, c->k, c->dtype_bytes) : 0;
        if (c->classify && cls < c->names->n) {
            fputc(',', c->out);
            csv_field(c->out, c->names->names[cls]);
        } else if (c->classify) {
            fprintf(c->out, ",%zu", cls);
        }
        /* %.9g round-trips a float. */
        for (size_t j = 0; j < c->k; j++)
            fprintf(c->out, ",%.9g", elem(output, s * c->k + j, c->dtype_bytes));
        fputc('\n', c->out);
    }
}

/* The outputs as float32, little-endian, row after row. */
static void write_npy_rows(void *ctx, size_t first, size_t b, const void *output, const void *y) {
    (void)first, (void)y;
    Rows *c = ctx;
    for (size_t i = 0; i < b * c->k; i++) {
        float v = (float)elem(output, i, c->dtype_bytes);
        uint32_t u;
        memcpy(&u, &v, 4);
        unsigned char le[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                               (unsigned char)(u >> 24)};
        fwrite(le, 1, 4, c->out);
    }
}

bool nnrt_predict_write(const NnrtTrainSpec *spec, const NnrtDataset *ds, const NnrtClasses *names,
                        const NnrtClasses *targets, const size_t *dims, int rank, bool npy, FILE *out, char *err,
                        size_t errlen) {
    Rows c = {out, spec->outputs, spec->classify, spec->dtype_bytes, names};
    /* Data-parallel, a rank but 0 keeps its slice's rows for rank 0. */
    char *mine = NULL;
    size_t len = 0;
    if (spec->begin && spec->rank > 0 && !(c.out = open_memstream(&mine, &len)))
        return nnrt_fail(err, errlen, "out of memory for this rank's predictions");
    if (c.out == out && npy) { /* the header: rank 0's (or one process's) */
        /* Format 1.0, as numpy writes it: the magic, the version, the
         * header's length, the header padded with blanks to end in '\n' at a
         * multiple of 64 bytes. */
        char h[512];
        int n = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,", ds->n);
        for (int i = 0; i < rank; i++)
            n += snprintf(h + n, sizeof h - (size_t)n, " %zu,", dims[i]);
        n += snprintf(h + n, sizeof h - (size_t)n, "), }");
        while ((10 + n + 1) % 64)
            h[n++] = ' ';
        h[n++] = '\n';
        fwrite("\x93NUMPY\x01\x00", 1, 8, out);
        fputc(n & 0xff, out);
        fputc(n >> 8, out);
        fwrite(h, 1, (size_t)n, out);
    } else if (c.out == out) {
        fputs(c.classify ? "index,class" : "index", out);
        bool named = !c.classify && targets->n == c.k;
        for (size_t j = 0; j < c.k; j++) {
            fputc(',', out);
            if (named)
                csv_field(out, targets->names[j]);
            else
                fprintf(out, c.classify ? "p%zu" : "y%zu", j);
        }
        fputc('\n', out);
    }
    double loss, acc;
    bool ok = nnrt_evaluate_batches(spec, ds, npy ? write_npy_rows : write_rows, &c, &loss, &acc, NULL, err, errlen);
    if (c.out != out && fclose(c.out) && ok)
        ok = nnrt_fail(err, errlen, "out of memory for this rank's predictions");
    if (ok && spec->begin)
        ok = spec->write_ranks(out, mine, len, err, errlen);
    free(mine);
    return ok;
}

/* ---------------------------------------------------------------- datasets */

/* The first n - n_val samples of an IDX array stay, the rest move to val. */
static bool split_idx(NnrtIdx *all, size_t n_val, NnrtIdx *val) {
    size_t per = nnrt_idx_sample_size(all) * all->elem_size; /* bounded by all->count */
    size_t keep = all->dims[0] - n_val;
    *val = *all;
    val->dims[0] = (uint32_t)n_val;
    val->count = all->count / all->dims[0] * n_val;
    val->data = malloc(n_val * per);
    if (!val->data)
        return false;
    memcpy(val->data, (char *)all->data + keep * per, n_val * per);
    all->dims[0] = (uint32_t)keep;
    all->count = all->count / (keep + n_val) * keep;
    return true;
}

bool nnrt_dataset_split(NnrtDataset *ds, size_t n_val, NnrtDataset *val, char *err,
                        size_t errlen) {
    memset(val, 0, sizeof *val);
    if (n_val == 0 || n_val >= ds->n) {
        snprintf(err, errlen, "a validation split of %zu of %zu samples leaves %s", n_val,
                 ds->n, n_val ? "none to train on" : "none to validate on");
        return false;
    }
    if (!split_idx(&ds->images, n_val, &val->images) ||
        !split_idx(&ds->labels, n_val, &val->labels)) {
        nnrt_idx_free(&val->images);
        snprintf(err, errlen, "out of memory for the validation split");
        return false;
    }
    ds->n -= n_val;
    val->n = n_val;
    val->sample_size = ds->sample_size;
    val->label_size = ds->label_size;
    return true;
}
