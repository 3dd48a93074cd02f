/* plot.c — the training curves: `--log run.csv` (one row per epoch) and
 * `--plot curves.svg` (loss and accuracy per epoch, training and
 * validation, side by side).
 *
 * Per epoch, the cost must not grow with the history (a long run would
 * spend its time rewriting it). The log is written in full once (the
 * history so far, a resumed run's from its checkpoint, so there is no gap
 * and no duplicate), atomically, and then appended to, a row per epoch in
 * one write: a kill leaves whole rows. The SVG cannot be appended to, so
 * the caller rewrites it (atomically) as the history grows by a fraction,
 * and at the end.
 *
 * The SVG is written by hand: two panels of axes with "nice" ticks (1, 2 or
 * 5 times a power of ten), a polyline and dots per series, and a legend. No
 * plotting library is needed, and the file opens in any browser.
 */
#include "nnrt.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* c->mae: the metric in acc's place is the mean absolute error (a
 * regression's), and the mean squared error is shown beside it. */
typedef void (*WriteFn)(FILE *f, const NnrtEpochStats *h, size_t n, const NnrtColumns *c);

/* With `keep`, the file is left open there to append to. */
static bool write_atomic(const char *path, WriteFn fn, const NnrtEpochStats *h, size_t n, const NnrtColumns *c,
                         FILE **keep, char *err, size_t errlen) {
    NnrtAtomic a;
    if (!nnrt_atomic_begin(&a, path, err, errlen))
        return false;
    fn(a.f, h, n, c);
    return nnrt_atomic_end_open(&a, true, "it", keep, err, errlen);
}

/* ---------------------------------------------------------------- CSV */

/* A metric, or nothing for "not measured" (< 0) and non-finite values. */
static void csv_metric(FILE *f, double v) {
    if (v >= 0 && isfinite(v))
        fprintf(f, "%.6g", v);
}

/* The cells of one set's metrics: loss, acc or mae, a regression's mse. */
static void csv_metrics(FILE *f, double loss, double acc, double mse, bool mae) {
    csv_metric(f, loss);
    fputc(',', f);
    csv_metric(f, acc);
    fputc(',', f);
    if (mae) {
        csv_metric(f, mse);
        fputc(',', f);
    }
}

/* The heads' cells, or with e NULL their names, each followed by a comma:
 * every head's values, then every head's validation values. */
static void csv_heads(FILE *f, const NnrtEpochStats *e, const NnrtColumns *c) {
    for (int val = 0; val < 2; val++)
        for (size_t h = 0; h < c->nheads; h++) {
            const char *names[3];
            double v[3];
            int nv = nnrt_head_values(&c->heads[h], e ? &e->head[h] : NULL, val, "accuracy", names, v);
            for (int k = 0; k < nv; k++) {
                if (e)
                    csv_metric(f, v[k]);
                else
                    fprintf(f, "%s%s_%s", val ? "val_" : "", c->heads[h].name, names[k]);
                fputc(',', f);
            }
        }
}

static void csv_row(FILE *f, const NnrtEpochStats *e, const NnrtColumns *c) {
    fprintf(f, "%d,", e->epoch);
    csv_metrics(f, e->loss, e->acc, e->mse, c->mae);
    csv_metrics(f, e->val_loss, e->val_acc, e->val_mse, c->mae);
    csv_heads(f, e, c);
    if (e->secs >= 0) /* not kept in checkpoints: unknown for resumed epochs */
        fprintf(f, "%.3f", e->secs);
    fputc('\n', f);
}

static void write_csv(FILE *f, const NnrtEpochStats *h, size_t n, const NnrtColumns *c) {
    fputs(c->mae ? "epoch,loss,mae,mse,val_loss,val_mae,val_mse," : "epoch,loss,accuracy,val_loss,val_accuracy,", f);
    csv_heads(f, NULL, c);
    fputs("seconds\n", f);
    for (size_t i = 0; i < n; i++)
        csv_row(f, &h[i], c);
}

bool nnrt_log_open(const char *path, const NnrtEpochStats *h, size_t n, const NnrtColumns *c, FILE **f, char *err,
                   size_t errlen) {
    return write_atomic(path, write_csv, h, n, c, f, err, errlen);
}

bool nnrt_log_append(FILE *f, const char *path, const NnrtEpochStats *e, const NnrtColumns *c, char *err,
                     size_t errlen) {
    errno = 0;
    csv_row(f, e, c); /* shorter than the buffer, which the last flush emptied: one write */
    if (fflush(f) != 0 || ferror(f))
        return nnrt_fail(err, errlen, "%s: cannot write it: %s", path, strerror(errno ? errno : EIO));
    return true;
}

bool nnrt_log_close(FILE *f, const char *path, char *err, size_t errlen) {
    errno = 0;
    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    int e = errno ? errno : EIO;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    return ok || nnrt_fail(err, errlen, "%s: cannot write it: %s", path, strerror(e));
}

/* ---------------------------------------------------------------- SVG */

#define PANEL_W 420.0
#define PANEL_H 300.0
#define MARGIN_L 62.0 /* room for the tick labels and the axis title */
#define MARGIN_R 16.0
#define MARGIN_T 34.0 /* the panel title */
#define MARGIN_B 46.0 /* tick labels and "epoch" */

/* The largest value drawn as it is: larger ones are drawn at it, as the
 * axis arithmetic (hi - lo, rounding hi up to a tick) would overflow to
 * infinity near DBL_MAX. */
#define PLOT_MAX 1e300

typedef struct Axis {
    double lo, hi, step; /* ticks at lo, lo + step, ... hi */
    int ticks;           /* intervals between them */
} Axis;

/* Ticks 1, 2 or 5 times a power of ten, about `want` of them, covering
 * [lo, hi] (both in [-PLOT_MAX, PLOT_MAX]). A range too narrow for ticks
 * that differ (values a few ulps apart, whose step added to lo gives lo
 * again) is widened around it first. */
static Axis nice_axis(double lo, double hi, int want) {
    /* A flat range is widened: one of a few ulps, or one too small for its
     * step to be a normal number (0 to 5e-324 gave a step of 0, and NaN
     * coordinates), by at least 1e-300 (a tenth of 5e-324 is 0: the same
     * NaN). */
    if (!(hi - lo > 1e-9 * fmax(fabs(lo), fabs(hi))) || (hi - lo) / want < DBL_MIN) {
        double pad = fabs(lo) > 0 ? fmax(fabs(lo) * 0.1, 1e-300) : 1;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / want, mag = pow(10, floor(log10(raw))), step = mag;
    if (raw / mag > 5)
        step = 10 * mag;
    else if (raw / mag > 2)
        step = 5 * mag;
    else if (raw / mag > 1)
        step = 2 * mag;
    Axis a = {floor(lo / step) * step, ceil(hi / step) * step, step, 0};
    a.ticks = (int)lround((a.hi - a.lo) / step); /* about want: step >= raw */
    return a;
}

typedef struct Series {
    const char *label, *color;
    bool dashed;
    size_t offset; /* of the double in NnrtEpochStats */
} Series;

/* A metric as drawn (non-finite ones are not: present()). */
static double value(const NnrtEpochStats *st, size_t offset) {
    double v;
    memcpy(&v, (const char *)st + offset, sizeof v);
    return isfinite(v) ? fmin(v, PLOT_MAX) : v;
}

static bool present(double v) { return v >= 0 && isfinite(v); }

/* One panel at x0: axes, grid, ticks, the series that have values, legend. */
static void panel(FILE *f, double x0, const char *title, const char *ylabel,
                  const NnrtEpochStats *h, size_t n, const Series *ser, int nser) {
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < nser; s++)
        for (size_t i = 0; i < n; i++) {
            double v = value(&h[i], ser[s].offset);
            if (present(v)) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        }
    if (lo > hi)
        lo = hi = 0; /* nothing to draw: an empty, labelled panel */
    Axis y = nice_axis(lo, hi, 5);
    /* In double: first + 1 of an epoch of INT_MAX overflowed an int. */
    double first = h[0].epoch, last = h[n - 1].epoch;
    /* The x axis spans the epochs exactly; its ticks are whole epochs. */
    Axis x = nice_axis(first, last > first ? last : first + 1, 8);
    x.step = x.step < 1 ? 1 : x.step;
    x.lo = first;
    x.hi = last > first ? last : first + 1;
    double l = x0 + MARGIN_L, r = x0 + PANEL_W - MARGIN_R, t = MARGIN_T, b = PANEL_H - MARGIN_B;
#define PX(e) (l + ((e) - x.lo) / (x.hi - x.lo) * (r - l))
#define PY(v) (b - ((v) - y.lo) / (y.hi - y.lo) * (b - t))
    fprintf(f, "<text x=\"%.1f\" y=\"20\" class=\"title\">%s</text>\n", l, title);
    for (int i = 0; i <= y.ticks; i++) {
        double v = y.lo + i * y.step, vv = fabs(v) < y.step * 1e-9 ? 0 : v; /* no "-0" */
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n",
                l, PY(v), r, PY(v));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"ytick\">%g</text>\n", l - 6,
                PY(v) + 4, vv);
    }
    for (double e = ceil(x.lo / x.step) * x.step; e <= x.hi; e += x.step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>\n",
                PX(e), b, PX(e), b + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">%g</text>\n", PX(e), b + 18, e);
    }
    fprintf(f, "<polyline points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" class=\"axis\"/>\n", l, t, l,
            b, r, b);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"xlabel\">epoch</text>\n", (l + r) / 2,
            PANEL_H - 8);
    fprintf(f, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" class=\"ylabel\">%s"
               "</text>\n", x0 + 16, (t + b) / 2, ylabel);
    int shown[8], nshown = 0; /* the series drawn, for the legend */
    for (int s = 0; s < nser && s < 8; s++) {
        size_t have = 0;
        for (size_t i = 0; i < n; i++)
            have += present(value(&h[i], ser[s].offset));
        if (!have)
            continue;
        shown[nshown++] = s;
        fprintf(f, "<g stroke=\"%s\" fill=\"%s\">\n<polyline fill=\"none\" stroke-width=\"2\"%s "
                   "points=\"", ser[s].color, ser[s].color,
                ser[s].dashed ? " stroke-dasharray=\"6 4\"" : "");
        for (size_t i = 0; i < n; i++) {
            double v = value(&h[i], ser[s].offset);
            if (present(v))
                fprintf(f, "%.1f,%.1f ", PX(h[i].epoch), PY(v));
        }
        fputs("\"/>\n", f);
        for (size_t i = 0; n <= 60 && i < n; i++) { /* dots while they stay apart */
            double v = value(&h[i], ser[s].offset);
            if (present(v))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>\n", PX(h[i].epoch), PY(v));
        }
        fputs("</g>\n", f);
    }
    /* The legend in the top margin, right-aligned: it never hides a curve. */
    for (int k = nshown - 1, right = 0; k >= 0; k--) {
        const Series *se = &ser[shown[k]];
        double tx = r - right - 7.0 * (double)strlen(se->label);
        fprintf(f, "<line x1=\"%.1f\" y1=\"16\" x2=\"%.1f\" y2=\"16\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s/>\n", tx - 32, tx - 6, se->color,
                se->dashed ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "<text x=\"%.1f\" y=\"20\" class=\"legend\">%s</text>\n", tx, se->label);
        right += 7 * (int)strlen(se->label) + 46;
    }
#undef PX
#undef PY
}

/* A head's row of panels, below the model's: its loss, then its metrics
 * (nnrt_head_values), each training and validation. */
static void head_panels(FILE *f, const NnrtEpochStats *h, size_t n, const NnrtHead *hd, size_t index) {
    static const char *const titles[][2] = {{"loss", "Loss"}, {"accuracy", "Accuracy"},
                                            {"mae", "Mean absolute error"}, {"mse", "Mean squared error"}};
    /* Where each value is in an epoch's stats: as NnrtHeadStats' fields. */
    size_t base = offsetof(NnrtEpochStats, head) + index * sizeof(NnrtHeadStats);
    const size_t train[] = {offsetof(NnrtHeadStats, loss), offsetof(NnrtHeadStats, acc), offsetof(NnrtHeadStats, mse)},
                 val[] = {offsetof(NnrtHeadStats, val_loss), offsetof(NnrtHeadStats, val_acc),
                          offsetof(NnrtHeadStats, val_mse)};
    const char *names[3];
    double v[3];
    int nv = nnrt_head_values(hd, NULL, false, "accuracy", names, v);
    fprintf(f, "<g transform=\"translate(0 %.0f)\">\n", (double)(index + 1) * PANEL_H);
    for (int k = 0; k < nv; k++) {
        /* The k-th value is the loss, then the acc (or mae), then the mse:
         * the fields in their order. */
        Series ser[2] = {{"training", "#1f77b4", false, base + train[k]},
                         {"validation", "#d62728", true, base + val[k]}};
        const char *title = names[k];
        for (size_t t = 0; t < sizeof titles / sizeof titles[0]; t++)
            if (!strcmp(titles[t][0], names[k]))
                title = titles[t][1];
        char full[160], ylabel[160];
        snprintf(full, sizeof full, "%s: %s", hd->name, title);
        snprintf(ylabel, sizeof ylabel, "%s_%s", hd->name, names[k]);
        panel(f, k * PANEL_W, full, ylabel, h, n, ser, 2);
    }
    fputs("</g>\n", f);
}

static void write_svg(FILE *f, const NnrtEpochStats *h, size_t n, const NnrtColumns *c) {
    bool mae = c->mae;
    /* A regression's mse has a panel of its own; a model of several heads
     * has neither an accuracy nor an mae of its own, but its heads' rows
     * are up to three panels wide. */
    int top = mae ? 3 : c->nheads ? 1 : 2, wide = c->nheads ? 3 : top;
    double width = wide * PANEL_W, height = (double)(c->nheads + 1) * PANEL_H;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\">\n", width, height, width, height);
    fputs("<style>\n"
          "text { font: 12px sans-serif; fill: #222; }\n"
          ".title { font-size: 14px; font-weight: bold; }\n"
          ".xtick, .xlabel { text-anchor: middle; }\n"
          ".ytick { text-anchor: end; }\n"
          ".ylabel { text-anchor: middle; }\n"
          ".axis { stroke: #222; fill: none; }\n"
          ".grid { stroke: #ddd; }\n"

          "</style>\n"
          "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
    if (n == 0) {
        fputs("</svg>\n", f);
        return;
    }
    static const Series loss[] = {
        {"training", "#1f77b4", false, offsetof(NnrtEpochStats, loss)},
        {"validation", "#d62728", true, offsetof(NnrtEpochStats, val_loss)},
    };
    static const Series acc[] = {
        {"training", "#1f77b4", false, offsetof(NnrtEpochStats, acc)},
        {"validation", "#d62728", true, offsetof(NnrtEpochStats, val_acc)},
    };
    static const Series mse[] = {
        {"training", "#1f77b4", false, offsetof(NnrtEpochStats, mse)},
        {"validation", "#d62728", true, offsetof(NnrtEpochStats, val_mse)},
    };
    panel(f, 0, "Loss", "loss", h, n, loss, 2);
    if (top > 1)
        panel(f, PANEL_W, mae ? "Mean absolute error" : "Accuracy", mae ? "mae" : "accuracy", h, n, acc, 2);
    if (mae)
        panel(f, 2 * PANEL_W, "Mean squared error", "mse", h, n, mse, 2);
    for (size_t k = 0; k < c->nheads; k++)
        head_panels(f, h, n, &c->heads[k], k);
    fputs("</svg>\n", f);
}

bool nnrt_plot_write(const char *path, const NnrtEpochStats *h, size_t n, const NnrtColumns *c, char *err,
                     size_t errlen) {
    return write_atomic(path, write_svg, h, n, c, NULL, err, errlen);
}
