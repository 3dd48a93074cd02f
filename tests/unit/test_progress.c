/* test_progress.c — the progress line (runtime/progress.c): what it prints
 * to a file and to a terminal, colours, NO_COLOR.
 */
#ifndef _GNU_SOURCE /* LLVM's compile definitions may have set it already */
#define _GNU_SOURCE /* posix_openpt and friends */
#endif
#include "nnrt.h"
#include "check.h"
#include "runtime_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static int occurrences(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
        n++;
    return n;
}

static void test_progress(void) {
    FILE *f = tmpfile();
    NnrtProgress p;
    nnrt_progress_begin(&p, f, 1, 5, 469);
    CHECK(!p.tty && !p.color);
    for (int i = 0; i < 469; i++)
        nnrt_progress_step(&p, 0.6, 0.8, -1);
    nnrt_progress_end(&p, &(NnrtEpochStats){.loss = 0.5123, .acc = 0.8211, .mse = -1}, 3.214);
    nnrt_progress_begin(&p, f, 2, 5, 3);
    nnrt_progress_end(&p, &(NnrtEpochStats){.loss = 0.25, .acc = -1, .mse = -1}, 1);
    p.metric = nnrt_metric_name(true); /* a regression: its mae, then its mse */
    nnrt_progress_end(&p, &(NnrtEpochStats){.loss = 2.5, .acc = 1.25, .mse = 2.5}, 1);
    /* Two heads (several loss terms): each one's loss and metrics after the total, by Keras' names. */
    NnrtHead heads[2] = {{.name = "logits", .classify = true}, {.name = "reg", .mae = true}};
    p.metric = nnrt_metric_name(false);
    p.heads = heads;
    p.nheads = 2;
    nnrt_progress_end(&p, &(NnrtEpochStats){.loss = 0.75, .acc = -1, .mse = -1,
                                            .head = {{.loss = 0.5, .acc = 0.25, .mse = -1},
                                                     {.loss = 0.125, .acc = 0.5, .mse = 0.375}}}, 1);
    CHECK(strcmp(read_stream(f), "epoch 1/5  469/469  loss 0.5123  acc 0.8211  3.21s\n"
                                 "epoch 2/5  0/3  loss 0.2500  1.00s\n"
                                 "epoch 2/5  0/3  loss 2.5000  mae 1.2500  mse 2.5000  1.00s\n"
                                 "epoch 2/5  0/3  loss 0.7500  logits_loss 0.5000  logits_acc 0.2500  reg_loss "
                                 "0.1250  reg_mae 0.5000  reg_mse 0.3750  1.00s\n") == 0);
    fclose(f);

    double t0 = nnrt_now();
    CHECK(t0 > 0 && nnrt_now() >= t0);

    /* On a terminal (a pseudo-terminal here): the bar, redrawn in place,
     * rate-limited, coloured unless NO_COLOR is set. */
    for (int color = 0; color < 2; color++) {
        int master = posix_openpt(O_RDWR | O_NOCTTY);
        if (master < 0 || grantpt(master) || unlockpt(master)) {
            printf("  (no pseudo-terminal: TTY progress not tested)\n");
            if (master >= 0)
                close(master);
            return;
        }
        int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        FILE *tty = fdopen(slave, "w");
        fcntl(master, F_SETFL, O_NONBLOCK);
        setenv("NO_COLOR", color ? "" : "1", 1); /* empty: colour, per no-color.org */
        nnrt_progress_begin(&p, tty, 1, 5, 1000);
        CHECK(p.tty && p.color == (color == 1));
        for (int i = 0; i < 1000; i++)
            nnrt_progress_step(&p, 0.5, 0.75, -1);
        nnrt_progress_end(&p, &(NnrtEpochStats){.loss = 0.5, .acc = 0.75, .mse = -1}, 0.5);
        char out[8192];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof out - 1 && (r = read(master, out + n, sizeof out - 1 - n)) > 0)
            n += (size_t)r;
        out[n] = '\0';
        CHECK(strstr(out, "\r\033[K") != NULL);
        CHECK(strstr(out, "] 1000/1000  loss 0.5000  acc 0.7500") != NULL);
        CHECK(occurrences(out, "\r\033[K") < 10); /* begin, last step, end (+ slow ticks) */
        CHECK((strstr(out, "\033[32m==============================") != NULL) == color);
        CHECK((strstr(out, "\033[1mepoch 1/5\033[0m  1000/1000  loss 0.5000  acc 0.7500  0.50s")
               != NULL) == color);
        if (!color)
            CHECK(strstr(out, "\033[0m") == NULL &&
                  strstr(out, "epoch 1/5  1000/1000  loss 0.5000  acc 0.7500  0.50s") != NULL);
        fclose(tty);
        close(master);
    }
    unsetenv("NO_COLOR");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_progress();
    return check_summary();
}
