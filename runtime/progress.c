/* progress.c — what the user watches during training: on a terminal, one
 * line per epoch redrawn in place with `\r` (a bar, step count, running loss
 * and accuracy, elapsed time); anywhere else (a pipe, a log file, a test),
 * nothing per step and one plain line per epoch, so logs stay readable and
 * golden tests stay deterministic apart from the time.
 *
 * Redraws are limited to about ten a second: a small model runs thousands
 * of steps a second and the terminal would otherwise be the bottleneck.
 * Colour follows https://no-color.org: only on a terminal, and never when
 * NO_COLOR is set to a non-empty value.
 */
#include "nnrt.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 30
#define REDRAW_SECONDS 0.1

#define BOLD "\033[1m"
#define GREEN "\033[32m"
#define RESET "\033[0m"
#define CLEAR_LINE "\r\033[K"

double nnrt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "  acc A" (or "  mae A") and a regression's "  mse S"; those < 0 are not shown. */
static void metrics(const NnrtProgress *p, double acc, double mse) {
    if (acc >= 0)
        fprintf(p->out, "  %s %.4f", p->metric, acc);
    if (mse >= 0)
        fprintf(p->out, "  mse %.4f", mse);
}

static void draw(NnrtProgress *p, double loss, double acc, double mse, double now) {
    size_t filled = p->steps ? p->done * BAR_WIDTH / p->steps : 0;
    char bar[BAR_WIDTH + 1];
    for (size_t i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[BAR_WIDTH] = '\0';
    if (p->done == 0)
        bar[0] = ' '; /* nothing done yet: no arrow */
    fprintf(p->out, CLEAR_LINE "%sepoch %d/%d%s [%s%.*s%s%s] %zu/%zu", p->color ? BOLD : "",
            p->epoch, p->epochs, p->color ? RESET : "", p->color ? GREEN : "", (int)filled,
            bar, p->color ? RESET : "", bar + filled, p->done, p->steps);
    if (p->done > 0) {
        fprintf(p->out, "  loss %.4f", loss);
        metrics(p, acc, mse);
    }
    fprintf(p->out, "  %.1fs", now - p->t0);
    fflush(p->out);
    p->last_draw = now;
}

const char *nnrt_metric_name(bool mae) { return mae ? "mae" : "acc"; }

void nnrt_progress_begin(NnrtProgress *p, FILE *out, int epoch, int epochs, size_t steps) {
    const char *no_color = getenv("NO_COLOR");
    p->out = out;
    p->tty = out && isatty(fileno(out));
    p->color = p->tty && !(no_color && no_color[0]);
    p->epoch = epoch;
    p->epochs = epochs;
    p->steps = steps;
    p->done = 0;
    p->t0 = nnrt_now();
    p->last_draw = p->t0;
    p->metric = "acc";
    p->heads = NULL;
    p->nheads = 0;
    /* An empty bar right away: the first step can be slow (page faults,
     * caches), and a silent terminal looks hung. */
    if (p->tty)
        draw(p, 0, -1, -1, p->t0);
}

void nnrt_progress_step(NnrtProgress *p, double loss, double acc, double mse) {
    p->done++;
    if (!p->tty)
        return;
    double now = nnrt_now();
    if (now - p->last_draw >= REDRAW_SECONDS || p->done == p->steps)
        draw(p, loss, acc, mse, now);
}

int nnrt_head_values(const NnrtHead *hd, const NnrtHeadStats *hs, bool val, const char *acc, const char *names[3],
                     double v[3]) {
    const NnrtHeadStats none = {-1, -1, -1, -1, -1, -1};
    hs = hs ? hs : &none;
    int n = 0;
    names[n] = "loss";
    v[n++] = val ? hs->val_loss : hs->loss;
    if (hd->classify || hd->mae) {
        names[n] = hd->mae ? "mae" : acc;
        v[n++] = val ? hs->val_acc : hs->acc;
    }
    if (hd->mae) {
        names[n] = "mse";
        v[n++] = val ? hs->val_mse : hs->mse;
    }
    return n;
}

void nnrt_print_heads(FILE *out, const NnrtHead *heads, size_t n, const NnrtHeadStats *hs, bool val) {
    for (size_t h = 0; h < n; h++) {
        const char *names[3];
        double v[3];
        for (int k = 0, nv = nnrt_head_values(&heads[h], &hs[h], val, "acc", names, v); k < nv; k++)
            fprintf(out, "  %s%s_%s %.4f", val ? "val_" : "", heads[h].name, names[k], v[k]);
    }
}

void nnrt_progress_end(NnrtProgress *p, const NnrtEpochStats *e, double secs) {
    if (!p->out)
        return;
    if (p->tty)
        fputs(CLEAR_LINE, p->out);
    fprintf(p->out, "%sepoch %d/%d%s  %zu/%zu  loss %.4f", p->color ? BOLD : "", p->epoch,
            p->epochs, p->color ? RESET : "", p->done, p->steps, e->loss);
    metrics(p, e->acc, e->mse);
    nnrt_print_heads(p->out, p->heads, p->nheads, e->head, false);
    fprintf(p->out, "  %.2fs\n", secs);
    fflush(p->out);
}
