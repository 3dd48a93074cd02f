/* report.c — `--report FILE.json`: what a run did (model, data, seed,
 * hyperparameters, loss and accuracy (a regression's mae and mse) per epoch
 * (and the validation set's, val_loss and val_accuracy, when there is one),
 * test results, time and peak memory) for scripts and plots to read.
 *
 * The file is written to a temporary name in the same directory, synced,
 * and renamed over the target, so a reader never sees half a report and a
 * crash never destroys the previous one. Numbers that JSON cannot hold
 * (NaN, Inf) and the "not measured" values (< 0) are written as null.
 */
#include "nnrt.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

size_t nnrt_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
#ifdef __APPLE__
    return (size_t)ru.ru_maxrss; /* bytes on macOS */
#else
    return (size_t)ru.ru_maxrss * 1024; /* KiB on Linux */
#endif
}

/* The characters of a JSON string, escaped. Bytes from 0x80 up pass
 * through: paths and model names are UTF-8 here. */
static void json_string_body(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

/* A JSON string, or null for NULL. */
static void json_string(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    json_string_body(f, s);
    fputc('"', f);
}

/* Ten significant digits: plenty for a loss, and short. */
static void json_number(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
}

/* Loss, accuracy and similar: < 0 means "not measured". */
static void json_metric(FILE *f, double v) { json_number(f, v < 0 ? NAN : v); }

/* The members after a loss: the accuracy, or a regression's mae and mse;
 * `lead` comes before each name (the comma, the opening quote, "val_"). */
static void metrics(FILE *f, bool mae, const char *lead, double acc, double mse) {
    fprintf(f, "%s%s\": ", lead, mae ? "mae" : "accuracy");
    json_metric(f, acc);
    if (mae) {
        fprintf(f, "%smse\": ", lead);
        json_metric(f, mse);
    }
}

/* Each head's members (nnrt_head_values), or with val its validation's;
 * `lead` before each name (", \"val_logits_loss\": 0.5, ..."). */
static void heads(FILE *f, const NnrtReport *r, const NnrtHeadStats *hs, bool val, const char *lead) {
    for (size_t h = 0; h < r->nheads; h++) {
        const char *names[3];
        double v[3];
        for (int k = 0, nv = nnrt_head_values(&r->heads[h], &hs[h], val, "accuracy", names, v); k < nv; k++) {
            fputs(lead, f);
            json_string_body(f, r->heads[h].name);
            fprintf(f, "_%s\": ", names[k]);
            json_metric(f, v[k]);
        }
    }
}

static void write_json(FILE *f, const NnrtReport *r) {
    const NnrtTrainResult *res = r->result;
    fputs("{\n  \"model\": ", f);
    json_string(f, r->model);
    fputs(",\n  \"train\": ", f);
    json_string(f, r->train_path);
    fputs(",\n  \"test\": ", f);
    json_string(f, r->test_path);
    fprintf(f, ",\n  \"seed\": %" PRIu64 ",\n  \"batch\": %zu,\n  \"lr\": ", r->seed, r->batch);
    json_number(f, r->lr);
    fprintf(f, ",\n  \"input\": \"%s\"", r->input_u8 ? "uint8" : "float");
    fputs(",\n  \"compile_seconds\": ", f);
    json_number(f, r->compile_secs);
    fputs(",\n  \"epochs\": [", f);
    for (int e = 0; res && e < res->nepochs; e++) {
        const NnrtEpochStats *st = &res->epochs[e];
        fprintf(f, "%s\n    {\"epoch\": %d, \"loss\": ", e ? "," : "", st->epoch);
        json_number(f, st->loss);
        metrics(f, r->mae, ", \"", st->acc, st->mse);
        heads(f, r, st->head, false, ", \"");
        if (st->val_loss >= 0) { /* validating: Keras' history names */
            fputs(", \"val_loss\": ", f);
            json_number(f, st->val_loss);
            metrics(f, r->mae, ", \"val_", st->val_acc, st->val_mse);
            heads(f, r, st->head, true, ", \"val_");
        }
        fputs(", \"seconds\": ", f);
        json_number(f, st->secs);
        fputc('}', f);
    }
    fputs(res && res->nepochs ? "\n  ],\n  \"test_loss\": " : "],\n  \"test_loss\": ", f);
    json_metric(f, res ? res->test_loss : -1);
    metrics(f, r->mae, ",\n  \"test_", res ? res->test_acc : -1, res ? res->test_mse : -1);
    if (res)
        heads(f, r, res->test_head, false, ",\n  \"test_");
    fprintf(f, ",\n  \"peak_rss_bytes\": %zu\n}\n", nnrt_peak_rss_bytes());
}

bool nnrt_report_write(const char *path, const NnrtReport *r, char *err, size_t errlen) {
    NnrtAtomic a;
    if (!nnrt_atomic_begin(&a, path, err, errlen))
        return false;
    write_json(a.f, r);
    return nnrt_atomic_end(&a, true, "the report", err, errlen);
}
