/* test_report.c — the JSON report (runtime/report.c): escaping, nulls for
 * what was not measured, the atomic rewrite, the message for a bad path.
 */
#include "nnrt.h"
#include "check.h"
#include "runtime_files.h"

#include <dirent.h>
#include <math.h>

static void test_report(void) {
    NnrtEpochStats epochs[2] = {{.loss = 0.5, .acc = 0.75, .secs = 3.25, .epoch = 1, .val_loss = -1, .val_acc = -1, .mse = -1, .val_mse = -1},
                                {.loss = 0.25, .acc = -1, .secs = 1.5, .epoch = 2, .val_loss = -1, .val_acc = -1, .mse = -1,
                                 .val_mse = -1}};
    NnrtTrainResult res = {.epochs = epochs, .nepochs = 2, .test_loss = -1, .test_acc = -1};
    NnrtReport r = {.model = "we\"ird\\name\n\x01.nn", .train_path = "data/train.gz",
                    .test_path = NULL, .seed = 18446744073709551615u, .batch = 128,
                    .lr = 0.01, .compile_secs = 0.125, .input_u8 = true, .result = &res};
    char path[1024], err[512];
    tmp_path(path, sizeof path, "report.json");
    CHECK(nnrt_report_write(path, &r, err, sizeof err));
    size_t n;
    char *text = (char *)slurp(path, &n);
    if (CHECK(text != NULL)) {
        CHECK(strstr(text, "\"model\": \"we\\\"ird\\\\name\\n\\u0001.nn\","));
        CHECK(strstr(text, "\"train\": \"data/train.gz\",\n  \"test\": null,"));
        CHECK(strstr(text, "\"seed\": 18446744073709551615,\n  \"batch\": 128,\n  \"lr\": 0.01,"));
        CHECK(strstr(text, "\"lr\": 0.01,\n  \"input\": \"uint8\",\n  \"compile_seconds\": 0.125,"));
        CHECK(strstr(text, "{\"epoch\": 1, \"loss\": 0.5, \"accuracy\": 0.75, \"seconds\": 3.25},"));
        CHECK(strstr(text, "{\"epoch\": 2, \"loss\": 0.25, \"accuracy\": null, \"seconds\": 1.5}"));
        CHECK(strstr(text, "\"test_loss\": null,\n  \"test_accuracy\": null,"));
        CHECK(strstr(text, "\"peak_rss_bytes\": ") && text[n - 2] == '}');
        printf("%s", text);
    }
    free(text);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);

    /* Overwrites atomically; NaN becomes null; no result at all. */
    epochs[0].loss = NAN;
    res.test_loss = 0.375, res.test_acc = 0.5;
    r.test_path = "t";
    CHECK(nnrt_report_write(path, &r, err, sizeof err));
    text = (char *)slurp(path, &n);
    CHECK(text && strstr(text, "\"loss\": null") && strstr(text, "\"test_loss\": 0.375,") &&
          strstr(text, "\"test\": \"t\""));
    free(text);
    r.result = NULL;
    CHECK(nnrt_report_write(path, &r, err, sizeof err));
    text = (char *)slurp(path, &n);
    CHECK(text && strstr(text, "\"epochs\": [],"));
    free(text);

    /* A regression: its mae and its mse, for each set. */
    r.result = &res;
    r.mae = true;
    epochs[0] = (NnrtEpochStats){.epoch = 1, .loss = 0.5, .acc = 0.25, .mse = 0.5, .secs = 1,
                                 .val_loss = 2, .val_acc = 1.5, .val_mse = 2};
    res.nepochs = 1;
    res.test_mse = 0.125;
    CHECK(nnrt_report_write(path, &r, err, sizeof err));
    text = (char *)slurp(path, &n);
    CHECK(text && strstr(text, "{\"epoch\": 1, \"loss\": 0.5, \"mae\": 0.25, \"mse\": 0.5, \"val_loss\": 2, "
                               "\"val_mae\": 1.5, \"val_mse\": 2, \"seconds\": 1}") &&
          strstr(text, "\"test_loss\": 0.375,\n  \"test_mae\": 0.5,\n  \"test_mse\": 0.125,"));
    free(text);

    /* No temporary files left behind. */
    DIR *dir = opendir(tmp_dir);
    int leftovers = 0;
    for (struct dirent *e; dir && (e = readdir(dir));)
        leftovers += strstr(e->d_name, ".tmp.") != NULL;
    if (dir)
        closedir(dir);
    CHECK(leftovers == 0);

    CHECK(!nnrt_report_write("/nonexistent-dir/r.json", &r, err, sizeof err));
    CHECK(strncmp(err, "/nonexistent-dir/r.json: ", 25) == 0);
    printf("  rejected: %s\n", err);
    CHECK(nnrt_peak_rss_bytes() > 1024 * 1024);
}

int main(void) {
    if (!tmp_dir_make("test_report"))
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_report();
    tmp_dir_remove();
    return check_summary();
}
