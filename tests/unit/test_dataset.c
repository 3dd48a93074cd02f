/* test_dataset.c — the dataset layer (runtime/dataset.c): finding the label
 * and test files next to the images, loading images and labels (and targets
 * of several elements, and inline data) with their checks, batching.
 */
#include "nnrt.h"
#include "check.h"
#include "runtime_files.h"

#include <math.h>
#include <unistd.h>

/* ---------------------------------------------------------------- dataset: finding files */

static void touch(const char *name) {
    char p[1024];
    tmp_path(p, sizeof p, name);
    write_file(p, "", 0, false);
}

static bool found(bool (*find)(const char *, char *, size_t), const char *from,
                  const char *want) {
    char in[1024], out[1024], exp[1024];
    tmp_path(in, sizeof in, from);
    bool ok = find(in, out, sizeof out);
    if (!want)
        return !ok;
    tmp_path(exp, sizeof exp, want);
    if (!ok || strcmp(out, exp) != 0) {
        printf("  from %s: got %s, expected %s\n", in, ok ? out : "(none)", exp);
        return false;
    }
    return true;
}

static void test_find(void) {
    char p[1024];
    tmp_path(p, sizeof p, "a");
    mkdir(p, 0755);
    tmp_path(p, sizeof p, "b");
    mkdir(p, 0755);
    tmp_path(p, sizeof p, "train-images");
    mkdir(p, 0755);

    /* a: everything gzip. */
    touch("a/train-images-idx3-ubyte.gz");
    touch("a/train-labels-idx1-ubyte.gz");
    touch("a/t10k-images-idx3-ubyte.gz");
    CHECK(found(nnrt_find_labels, "a/train-images-idx3-ubyte.gz", "a/train-labels-idx1-ubyte.gz"));
    CHECK(found(nnrt_find_labels, "a/train-images-idx3-ubyte", "a/train-labels-idx1-ubyte.gz"));
    CHECK(found(nnrt_find_test, "a/train-images-idx3-ubyte.gz", "a/t10k-images-idx3-ubyte.gz"));
    CHECK(found(nnrt_find_test, "a/train-images-idx3-ubyte", "a/t10k-images-idx3-ubyte.gz"));
    CHECK(found(nnrt_find_labels, "a/t10k-images-idx3-ubyte.gz", NULL));

    /* b: images gzip, labels raw; the test set named "test-". */
    touch("b/train-images-idx3-ubyte.gz");
    touch("b/train-labels-idx1-ubyte");
    touch("b/test-images-idx3-ubyte");
    touch("b/test-labels-idx1-ubyte.gz");
    CHECK(found(nnrt_find_labels, "b/train-images-idx3-ubyte.gz", "b/train-labels-idx1-ubyte"));
    CHECK(found(nnrt_find_test, "b/train-images-idx3-ubyte.gz", "b/test-images-idx3-ubyte"));
    CHECK(found(nnrt_find_labels, "b/test-images-idx3-ubyte", "b/test-labels-idx1-ubyte.gz"));
    /* The same suffix is preferred when both exist. */
    touch("b/train-labels-idx1-ubyte.gz");
    CHECK(found(nnrt_find_labels, "b/train-images-idx3-ubyte.gz",
                "b/train-labels-idx1-ubyte.gz"));

    /* Only the base name changes, not the directory; other ranks and
     * MNIST's "train-images.idx3-ubyte" spelling work too. */
    touch("train-images/train-images.idx4-ubyte");
    touch("train-images/train-labels.idx1-ubyte");
    touch("train-images/t10k-images.idx4-ubyte.gz");
    CHECK(found(nnrt_find_labels, "train-images/train-images.idx4-ubyte",
                "train-images/train-labels.idx1-ubyte"));
    CHECK(found(nnrt_find_test, "train-images/train-images.idx4-ubyte",
                "train-images/t10k-images.idx4-ubyte.gz"));

    /* Nothing there, nothing to replace, no room for the answer. */
    CHECK(found(nnrt_find_labels, "a/nothing-idx3-ubyte", NULL));
    CHECK(found(nnrt_find_labels, "a/data.bin", NULL));
    CHECK(found(nnrt_find_test, "a/images.gz", NULL));
    char in[1024], small[8];
    tmp_path(in, sizeof in, "a/train-images-idx3-ubyte.gz");
    CHECK(!nnrt_find_labels(in, small, sizeof small));
    CHECK(!nnrt_find_test(in, small, sizeof small));
}

/* ---------------------------------------------------------------- dataset: loading */

static bool load_fails(const char *images, const char *labels, size_t classes,
                       const char *want) {
    NnrtDataset ds;
    char err[512] = "";
    bool ok = nnrt_dataset_load(images, labels, classes, &ds, err, sizeof err);
    printf("  %s %s\n", ok ? "accepted" : "rejected:", err);
    if (ok)
        nnrt_dataset_free(&ds);
    return !ok && strstr(err, want) && ds.images.data == NULL && ds.labels.data == NULL;
}

static void test_dataset(void) {
    static const unsigned char pixels[20] = {0,  255, 51, 1,  2,  3,  4,  5,  6,  7,
                                             8,  9,   10, 11, 12, 13, 14, 15, 16, 255};
    static const unsigned char labels[5] = {0, 1, 2, 9, 3};
    const char *im = "test_dataset_images.idx", *lb = "test_dataset_labels.idx.gz";
    write_idx_u8(im, 3, (uint32_t[]){5, 2, 2}, pixels, 20, false);
    write_idx_u8(lb, 1, (uint32_t[]){5}, labels, 5, true);

    NnrtDataset ds;
    char err[512];
    if (CHECK(nnrt_dataset_load(im, lb, 10, &ds, err, sizeof err))) {
        CHECK(ds.n == 5 && ds.sample_size == 4);
        CHECK(ds.images.type == NNRT_U8 && ds.images.elem_size == 1); /* stays uint8 */
        /* Batches: order respected, uint8 scaled by the nearest float (or
         * double) to 1/255, as model.c scales them in a step, 255
         * exactly 1. */
        uint32_t order[2] = {4, 0};
        float xf[8], yf[2];
        nnrt_batch_fill(&ds, order, 2, 4, false, xf, yf);
        CHECK(xf[0] == 14 * (1 / 255.0f) && xf[3] == 1.0f && xf[4] == 0.0f && xf[5] == 1.0f);
        CHECK(xf[6] == 51 * (1 / 255.0f) && fabsf(xf[6] - 0.2f) < 1e-7f);
        CHECK(yf[0] == 3 && yf[1] == 0);
        double xd[8], yd[2];
        nnrt_batch_fill(&ds, order, 2, 8, false, xd, yd);
        CHECK(xd[3] == 1.0 && xd[5] == 1.0 && xd[6] == 51 * (1 / 255.0) && fabs(xd[6] - 0.2) < 1e-16);
        CHECK(yd[0] == 3 && yd[1] == 0);
        /* raw_u8: the bytes as they are, labels as before. */
        unsigned char xr[8];
        nnrt_batch_fill(&ds, order, 2, 4, true, xr, yf);
        CHECK(!memcmp(xr, pixels + 16, 4) && !memcmp(xr + 4, pixels, 4) && yf[0] == 3 && yf[1] == 0);
        nnrt_dataset_free(&ds);
    } else {
        printf("  %s\n", err);
    }
    /* Other types are converted as they are, not scaled. */
    Buf b = {.n = 0};
    put_header(&b, NNRT_I16, 2, (uint32_t[]){2, 2});
    put_be(&b, 0xfffd, 2), put_be(&b, 300, 2), put_be(&b, 255, 2), put_be(&b, 0, 2);
    write_file("test_dataset_i16.idx", b.p, b.n, false);
    b.n = 0;
    put_header(&b, NNRT_F32, 1, (uint32_t[]){2});
    put_be(&b, 0x40000000, 4), put_be(&b, 0x3f800000, 4); /* 2.0, 1.0 */
    write_file("test_dataset_f32labels.idx", b.p, b.n, false);
    if (CHECK(nnrt_dataset_load("test_dataset_i16.idx", "test_dataset_f32labels.idx", 3, &ds,
                                err, sizeof err))) {
        float xf[4], yf[2];
        nnrt_batch_fill(&ds, (uint32_t[]){0, 1}, 2, 4, false, xf, yf);
        CHECK(xf[0] == -3 && xf[1] == 300 && xf[2] == 255 && yf[0] == 2 && yf[1] == 1);
        nnrt_dataset_free(&ds);
    }

    /* Mismatches. */
    const char *lb4 = "test_dataset_labels4.idx";
    write_idx_u8(lb4, 1, (uint32_t[]){4}, labels, 4, false);
    CHECK(load_fails(im, lb4, 10, "holds 5 samples but test_dataset_labels4.idx holds 4 labels"));
    const char *lb11 = "test_dataset_labels11.idx";
    write_idx_u8(lb11, 1, (uint32_t[]){5}, (const unsigned char[]){0, 1, 2, 11, 3}, 5, false);
    CHECK(load_fails(im, lb11, 10, "label 11 at index 3 is out of range for 10 classes"));
    if (CHECK(nnrt_dataset_load(im, lb11, 0, &ds, err, sizeof err))) /* no class count */
        nnrt_dataset_free(&ds);
    const char *lb2d = "test_dataset_labels2d.idx";
    write_idx_u8(lb2d, 2, (uint32_t[]){5, 1}, labels, 5, false);
    CHECK(load_fails(im, lb2d, 10, "labels must be rank 1"));
    b.n = 0;
    put_header(&b, NNRT_F32, 1, (uint32_t[]){2});
    put_be(&b, 0x40200000, 4), put_be(&b, 0, 4); /* 2.5 */
    write_file("test_dataset_f32labels.idx", b.p, b.n, false);
    CHECK(load_fails("test_dataset_i16.idx", "test_dataset_f32labels.idx", 3,
                     "label 2.5 at index 0 is not an integer"));
    CHECK(load_fails(im, "test_dataset_no_such_labels.idx", 10, "No such file"));
    CHECK(load_fails("test_dataset_no_such_images.idx", lb, 10, "No such file"));
    const char *empty = "test_dataset_empty.idx";
    write_idx_u8(empty, 2, (uint32_t[]){0, 4}, NULL, 0, false);
    write_idx_u8("test_dataset_empty_labels.idx", 1, (uint32_t[]){0}, NULL, 0, false);
    CHECK(load_fails(empty, "test_dataset_empty_labels.idx", 10, "holds no samples"));

    const char *files[] = {im, lb, lb4, lb11, lb2d, empty, "test_dataset_empty_labels.idx",
                           "test_dataset_i16.idx", "test_dataset_f32labels.idx"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
}

/* Targets of several elements per sample (--target), in any element type,
 * and inline data: batches take label_size elements per sample, in order. */
static void test_targets(void) {
    static const unsigned char pixels[6] = {0, 255, 51, 1, 2, 3};
    static const unsigned char targets[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    char im[1024], tg[1024], tg2[1024];
    tmp_path(im, sizeof im, "tg_inputs.idx");
    tmp_path(tg, sizeof tg, "tg_targets.idx");
    tmp_path(tg2, sizeof tg2, "tg_two.idx");
    write_idx_u8(im, 2, (uint32_t[]){3, 2}, pixels, 6, false);
    write_idx_u8(tg, 2, (uint32_t[]){3, 3}, targets, 9, false);
    write_idx_u8(tg2, 2, (uint32_t[]){3, 2}, targets, 6, false);
    NnrtDataset ds;
    char err[512] = "";
    uint32_t order[2] = {2, 0};
    if (CHECK(nnrt_dataset_load_targets(im, tg, 3, &ds, err, sizeof err))) {
        float x[4], y[6];
        nnrt_batch_fill(&ds, order, 2, 4, false, x, y);
        CHECK(ds.label_size == 3 && x[0] == 2 / 255.0f && x[3] == 1.0f);
        CHECK(y[0] == 7 && y[2] == 9 && y[3] == 1 && y[5] == 3); /* not scaled */
        nnrt_dataset_free(&ds);
    }
    CHECK(!nnrt_dataset_load_targets(im, tg2, 3, &ds, err, sizeof err) &&
          strstr(err, "targets of 2 elements per sample, but the model's targets have 3"));
    static const double mx[3] = {0.5, 1.5, 2.5}, my[6] = {1, 2, 3, 4, 5, 6};
    if (CHECK(nnrt_dataset_from_memory(3, mx, 1, my, 2, &ds, err, sizeof err))) {
        double x[2], y[4];
        nnrt_batch_fill(&ds, order, 2, 8, false, x, y);
        CHECK(ds.n == 3 && x[0] == 2.5 && x[1] == 0.5 && y[0] == 5 && y[1] == 6 && y[2] == 1 && y[3] == 2);
        nnrt_dataset_free(&ds);
    }
}

int main(void) {
    if (!tmp_dir_make("test_dataset"))
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_find();
    test_dataset();
    test_targets();
    tmp_dir_remove();
    return check_summary();
}
