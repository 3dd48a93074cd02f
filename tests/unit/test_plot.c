/* test_plot.c — --plot's SVG (runtime/plot.c) for histories whose axis
 * arithmetic once never ended: losses a few ulps apart (the tick step added
 * to the axis' start gave the start again) and a loss near DBL_MAX (the axis
 * rounded up to infinity). Each looped forever writing tick lines into the
 * file. Here the file size is limited (RLIMIT_FSIZE, whose SIGXFSZ kills the
 * test) to far more than a plot needs, so such a loop fails the test at once
 * rather than filling the disk.
 */
#include "nnrt.h"
#include "check.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The plot of three epochs with these losses: written, closed, no "inf" or
 * "nan" in it. */
static void plot_of(const char *path, double l1, double l2, double l3) {
    NnrtEpochStats h[3] = {
        {.epoch = 1, .loss = l1, .acc = -1, .val_loss = -1, .val_acc = -1},
        {.epoch = 2, .loss = l2, .acc = -1, .val_loss = -1, .val_acc = -1},
        {.epoch = 3, .loss = l3, .acc = -1, .val_loss = -1, .val_acc = -1},
    };
    char err[512];
    if (!CHECK(nnrt_plot_write(path, h, 3, &(NnrtColumns){0}, err, sizeof err))) {
        printf("  %s\n", err);
        return;
    }
    FILE *f = fopen(path, "r");
    static char text[1 << 16];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = 0;
    CHECK(n > 0 && n < sizeof text - 1 && strstr(text, "</svg>"));
    CHECK(!strstr(text, "inf") && !strstr(text, "nan"));
}

int main(void) {
    struct rlimit lim = {1 << 20, 1 << 20};
    setrlimit(RLIMIT_FSIZE, &lim);
    char path[] = "/tmp/nnc-test-plot-XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0))
        return check_summary();
    close(fd);
    double l = 349525.33333333331; /* the mse of targets 1024, 3.3e-5, 7.1e-5 at 0 */
    plot_of(path, l, nextafter(l, INFINITY), nextafter(nextafter(l, INFINITY), INFINITY));
    plot_of(path, 1.0, DBL_MAX, 0.5);
    plot_of(path, DBL_MAX, DBL_MAX, DBL_MAX);
    plot_of(path, 0, 0, DBL_MIN);
    unlink(path);
    return check_summary();
}
