/* test_train.c — the training loop (runtime/train.c) on fake step functions:
 * batches, shuffling, remainders, evaluation, the NaN/Inf guard, interrupts,
 * and the timed choice of splitting small jobs over the thread pool.
 */
#include "nnrt.h"
#include "check.h"
#include "runtime_files.h"

#include <float.h>
#include <math.h>
#include <unistd.h>

enum { K = 3 };

/* What the fake step functions saw, reached through slot 5. */
typedef struct Fake {
    int dtype;
    size_t sample_size;
    int calls, full_calls, rem_calls, eval_full_calls, eval_rem_calls;
    int nan_at; /* the call (1-based) whose loss is NaN; 0: none */
    bool inf_in_eval;
    uint32_t order[256];
    int norder;
    bool bad_y, bad_arena;
    /* Slot 6 when the guard checks the state: on call poison_at the step
     * writes poison into param[poison_index]. */
    float param[37];
    int poison_at;
    size_t poison_index;
    float poison;
    bool slow_split; /* train_timed: slower when small jobs are split, or not */
} Fake;

static double get(const void *p, size_t i, int dtype) {
    return dtype == 4 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static void set(void *p, size_t i, double v, int dtype) {
    if (dtype == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* Sample id = the first pixel (uint8, scaled by 1/255); label = id % K.
 * loss = batch mean of the first pixel; output: a tie (argmax 0) when
 * id % 3 == 0, the label when id % 3 == 1, a wrong class when id % 3 == 2. */
static void fake_step(void **slots, size_t b, bool eval) {
    Fake *fk = slots[5];
    int d = fk->dtype;
    fk->calls++;
    /* Aligned, and zeroed before the first step. */
    if (((uintptr_t)slots[0] & 63) || (fk->calls == 1 && ((unsigned char *)slots[0])[99] != 0))
        fk->bad_arena = true;
    memset(slots[0], 0xab, 100); /* arena_bytes: scratch may be clobbered */
    double sum = 0;
    for (size_t s = 0; s < b; s++) {
        double x0 = get(slots[1], s * fk->sample_size, d);
        uint32_t id = (uint32_t)lround(x0 * 255);
        if (fk->norder < 256)
            fk->order[fk->norder++] = id;
        if (get(slots[2], s, d) != id % K)
            fk->bad_y = true;
        sum += x0;
        for (int k = 0; k < K; k++)
            set(slots[4], s * K + (size_t)k, 0.5, d);
        if (id % 3 == 1)
            set(slots[4], s * K + id % K, 1, d);
        if (id % 3 == 2)
            set(slots[4], s * K + (id + 1) % K, 1, d);
    }
    double loss = sum / (double)b;
    if (fk->calls == fk->nan_at)
        loss = NAN;
    if (eval && fk->inf_in_eval)
        loss = INFINITY;
    if (fk->calls == fk->poison_at)
        fk->param[fk->poison_index] = fk->poison;
    set(slots[3], 0, loss, d);
}

/* Like the real ones, for any batch of up to their batch size (4, 5 and
 * 2 samples): the calls of each size are counted. */
static void train_four(void **slots, int64_t n) {
    ((Fake *)slots[5])->full_calls += n == 4;
    ((Fake *)slots[5])->rem_calls += n < 4;
    fake_step(slots, (size_t)n, false);
}

static void train_five(void **slots, int64_t n) {
    ((Fake *)slots[5])->full_calls += n == 5;
    ((Fake *)slots[5])->rem_calls += n < 5;
    fake_step(slots, (size_t)n, false);
}

static void eval_two(void **slots, int64_t n) {
    ((Fake *)slots[5])->eval_full_calls += n == 2;
    ((Fake *)slots[5])->eval_rem_calls += n < 2;
    fake_step(slots, (size_t)n, true);
}

/* Batch 1, busy for 200 us a step the slow way (slow_split: split small
 * jobs, or not), 50 us the other. */
static void train_timed(void **slots, int64_t n) {
    Fake *fk = slots[5];
    double until = nnrt_now() + (nnrt_splits_small() == fk->slow_split ? 200e-6 : 50e-6);
    while (nnrt_now() < until)
        ;
    fake_step(slots, (size_t)n, false);
}

/* n (<= 256) samples of 2 pixels: the id and 255; labels id % K. */
static bool make_ds(NnrtDataset *ds, size_t n, const char *stem) {
    unsigned char px[512], lb[256];
    for (size_t i = 0; i < n; i++) {
        px[2 * i] = (unsigned char)i, px[2 * i + 1] = 255;
        lb[i] = (unsigned char)(i % K);
    }
    char im[64], la[64], err[256];
    snprintf(im, sizeof im, "test_train_%s_images.idx", stem);
    snprintf(la, sizeof la, "test_train_%s_labels.idx", stem);
    write_idx_u8(im, 2, (uint32_t[]){(uint32_t)n, 2}, px, 2 * n, false);
    write_idx_u8(la, 1, (uint32_t[]){(uint32_t)n}, lb, n, false);
    bool ok = nnrt_dataset_load(im, la, K, ds, err, sizeof err);
    if (!ok)
        printf("  %s\n", err);
    unlink(im);
    unlink(la);
    return ok;
}

/* Expected accuracy of the fake over ids 0..n-1. */
static double fake_acc(size_t n) {
    size_t correct = 0;
    for (size_t id = 0; id < n; id++)
        correct += (id % 3 == 0 && id % K == 0) || id % 3 == 1;
    return (double)correct / (double)n;
}

/* The guard, as the compiler would generate it for slot 6 of 37 floats. */
static int fake_finite(void **slots) {
    const float *p = slots[6];
    for (int i = 0; i < 37; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

static NnrtTrainSpec fake_spec(Fake *fk, void **slots, int dtype, FILE *out) {
    memset(fk, 0, sizeof *fk);
    fk->dtype = dtype;
    fk->sample_size = 2;
    slots[5] = fk;
    return (NnrtTrainSpec){
        .dtype_bytes = dtype, .outputs = K, .classify = true,
        .train = {train_four, 4}, .eval = {eval_two, 2},
        .slots = slots, .nslots = 6, .arena_bytes = 100, .epochs = 3, .seed = 5, .out = out,
    };
}

static void test_train(void) {
    NnrtDataset train, test;
    if (!CHECK(make_ds(&train, 10, "train") && make_ds(&test, 5, "test")))
        return;
    for (int dtype = 4; dtype <= 8; dtype += 4) {
        FILE *out = tmpfile();
        void *slots[6];
        Fake fk;
        NnrtTrainSpec spec = fake_spec(&fk, slots, dtype, out);
        NnrtTrainResult res;
        char err[256] = "";
        if (!CHECK(nnrt_train(&spec, &train, &test, &res, err, sizeof err))) {
            printf("  %s\n", err);
            continue;
        }
        /* 10 samples in batches of 4: 2 full steps and a remainder of 2. */
        CHECK(fk.full_calls == 6 && fk.rem_calls == 3);
        CHECK(fk.eval_full_calls == 2 && fk.eval_rem_calls == 1);
        CHECK(!fk.bad_y && !fk.bad_arena && fk.norder == 35);
        bool each_once = true, shuffled = false, differ = false;
        for (int e = 0; e < 3; e++) {
            int seen[10] = {0};
            for (int i = 0; i < 10; i++) {
                seen[fk.order[10 * e + i]]++;
                shuffled |= fk.order[10 * e + i] != (uint32_t)i;
                differ |= e > 0 && fk.order[10 * e + i] != fk.order[i];
            }
            for (int i = 0; i < 10; i++)
                each_once &= seen[i] == 1;
        }
        CHECK(each_once && shuffled && differ);
        bool in_order = true; /* the test set is not shuffled */
        for (int i = 0; i < 5; i++)
            in_order &= fk.order[30 + i] == (uint32_t)i;
        CHECK(in_order);
        /* Sample-weighted: the mean over all samples, whatever the batches. */
        CHECK(res.nepochs == 3);
        for (int e = 0; e < res.nepochs; e++) {
            CHECK(fabs(res.epochs[e].loss - 4.5 / 255) < 1e-7);
            CHECK(fabs(res.epochs[e].acc - fake_acc(10)) < 1e-12 && res.epochs[e].secs >= 0);
        }
        CHECK(fabs(res.test_loss - 2.0 / 255) < 1e-7 && fabs(res.test_acc - fake_acc(5)) < 1e-12);
        CHECK(slots[0] == NULL && slots[4] == NULL && slots[5] == &fk);
        const char *text = read_stream(out);
        CHECK(strstr(text, "epoch 1/3  3/3  loss 0.0176  acc 0.7000  ") == text);
        CHECK(strstr(text, "epoch 3/3  3/3  loss 0.0176  acc 0.7000  ") != NULL);
        CHECK(strstr(text, "\ntest  loss 0.0078  acc 0.8000\n") != NULL);

        /* The same seed gives the same order; another seed another order. */
        uint32_t first[30];
        memcpy(first, fk.order, sizeof first);
        NnrtTrainResult res2;
        spec = fake_spec(&fk, slots, dtype, out);
        CHECK(nnrt_train(&spec, &train, NULL, &res2, err, sizeof err));
        CHECK(memcmp(first, fk.order, sizeof first) == 0 && res2.test_loss < 0);
        nnrt_train_result_free(&res2);
        spec = fake_spec(&fk, slots, dtype, out);
        spec.seed = 6;
        CHECK(nnrt_train(&spec, &train, NULL, &res2, err, sizeof err));
        CHECK(memcmp(first, fk.order, sizeof first) != 0);
        nnrt_train_result_free(&res2);

        /* Evaluation alone. */
        double loss, acc;
        spec = fake_spec(&fk, slots, dtype, out);
        CHECK(nnrt_evaluate(&spec, &test, &loss, &acc, err, sizeof err));
        CHECK(fabs(loss - res.test_loss) < 1e-12 && acc == res.test_acc);
        nnrt_train_result_free(&res);
        CHECK(res.epochs == NULL);
        fclose(out);
    }

    FILE *out = tmpfile();
    void *slots[7];
    Fake fk;
    NnrtTrainResult res;
    char err[256];
    /* A batch size that divides n has no partial batch. */
    NnrtTrainSpec spec = fake_spec(&fk, slots, 4, out);
    spec.train = (NnrtStep){train_five, 5};
    CHECK(nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
    CHECK(fk.full_calls == 6 && fk.rem_calls == 0);
    nnrt_train_result_free(&res);

    /* No step function, or one for batches of 0. */
    spec = fake_spec(&fk, slots, 4, out);
    spec.train.fn = NULL;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err) && res.epochs == NULL && fk.calls == 0);
    printf("  rejected: %s\n", err);
    spec = fake_spec(&fk, slots, 4, out);
    spec.eval.batch = 0;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err) && fk.calls == 0);

    /* A NaN loss stops training and says where. 3 steps per epoch: call 5 is
     * epoch 2, step 2. */
    spec = fake_spec(&fk, slots, 8, out);
    fk.nan_at = 5;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err));
    CHECK(strcmp(err, "loss is nan at epoch 2, step 2") == 0 && fk.calls == 5);
    CHECK(res.epochs == NULL && res.nepochs == 0);
    nnrt_train_result_free(&res); /* harmless */
    spec = fake_spec(&fk, slots, 4, out);
    fk.inf_in_eval = true;
    CHECK(!nnrt_train(&spec, &train, &test, &res, err, sizeof err));
    CHECK(strcmp(err, "loss is inf on the test set at step 1") == 0);
    printf("  rejected: %s\n", err);

    /* A finite loss but a non-finite parameter: the guard is asked after
     * every step and stops training at the step that made it. (The
     * generated guard's own answers: tests/unit/test_guard.c.) */
    const float poisons[] = {NAN, FLT_MAX};
    for (size_t p = 0; p < sizeof poisons / sizeof *poisons; p++) {
        spec = fake_spec(&fk, slots, 4, out);
        slots[6] = fk.param;
        spec.nslots = 7;
        spec.finite = fake_finite;
        fk.poison_at = 5;
        fk.poison_index = 3;
        fk.poison = poisons[p];
        bool finite = isfinite(poisons[p]);
        const char *want = "a gradient became nan or inf at epoch 2, step 2 (the loss was ";
        bool ok = nnrt_train(&spec, &train, NULL, &res, err, sizeof err);
        CHECK(ok == finite);
        if (ok)
            nnrt_train_result_free(&res);
        else
            CHECK(strncmp(err, want, strlen(want)) == 0 && fk.calls == 5);
    }
    printf("  rejected: %s\n", err);

    /* Not classifying: no accuracy. */
    spec = fake_spec(&fk, slots, 4, out);
    fclose(out);
    out = tmpfile();
    spec.out = out;
    spec.classify = false;
    spec.epochs = 1;
    CHECK(nnrt_train(&spec, &train, &test, &res, err, sizeof err));
    CHECK(res.epochs[0].acc < 0 && res.test_acc < 0);
    const char *text = read_stream(out);
    CHECK(strstr(text, "epoch 1/1  3/3  loss 0.0176  ") == text && !strstr(text, "acc"));
    nnrt_train_result_free(&res);

    /* Step functions that take uint8 images refuse a set of another type,
     * for training, testing or evaluation alone. */
    NnrtDataset floats;
    static const double fx[4] = {0.5, 0.25, 1, 0}, fy[2] = {1, 0};
    if (CHECK(nnrt_dataset_from_memory(2, fx, 2, fy, 1, &floats, err, sizeof err))) {
        spec = fake_spec(&fk, slots, 4, out);
        spec.input_u8 = true;
        const char *want = "the step functions take uint8 images, but the set holds another type";
        CHECK(!nnrt_train(&spec, &floats, NULL, &res, err, sizeof err) && !strncmp(err, "training: ", 10) &&
              strstr(err, want) && fk.calls == 0);
        CHECK(!nnrt_train(&spec, &train, &floats, &res, err, sizeof err) && !strncmp(err, "evaluation: ", 12) &&
              strstr(err, want) && fk.calls == 0);
        double loss, acc;
        CHECK(!nnrt_evaluate(&spec, &floats, &loss, &acc, err, sizeof err) && !strncmp(err, "evaluation: ", 12));
        nnrt_dataset_free(&floats);
    }

    /* Bad specs. */
    spec = fake_spec(&fk, slots, 2, out);
    CHECK(!nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
    spec = fake_spec(&fk, slots, 4, out);
    spec.nslots = 4;
    CHECK(!nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
    fclose(out);
    nnrt_dataset_free(&train);
    nnrt_dataset_free(&test);
}

/* Whether small jobs are split is timed at the start of each training pass
 * (train.c): 100 steps of batch 1, of which the first 80 the trial, on two
 * threads (main() asks for them); the pass ends the fast way. */
static void test_split_trial(void) {
    NnrtDataset train;
    if (!CHECK(make_ds(&train, 100, "trial")))
        return;
    FILE *out = tmpfile();
    for (int slow = 0; slow < 2; slow++) {
        void *slots[6];
        Fake fk;
        NnrtTrainSpec spec = fake_spec(&fk, slots, 4, out);
        fk.slow_split = slow;
        spec.train = (NnrtStep){train_timed, 1};
        spec.epochs = 1;
        NnrtTrainResult res;
        char err[256] = "";
        CHECK(nnrt_train(&spec, &train, NULL, &res, err, sizeof err));
        CHECK(nnrt_splits_small() == !slow);
        nnrt_train_result_free(&res);
    }
    fclose(out);
    nnrt_dataset_free(&train);
}

/* Data-parallel (one rank of one here): a step's sums and its heads' are
 * added over the ranks in one all-reduce, and so are an evaluation's. */
static int sums_called;
static void count_sum(void *p, size_t n, int dtype_bytes) { (void)p, (void)n, (void)dtype_bytes, sums_called++; }
static void no_begin(size_t global_batch, size_t first) { (void)global_batch, (void)first; }

static void test_parallel_sums(void) {
    NnrtDataset train, test;
    if (!CHECK(make_ds(&train, 10, "par") && make_ds(&test, 5, "partest")))
        return;
    FILE *out = tmpfile();
    void *slots[6];
    Fake fk;
    NnrtTrainSpec spec = fake_spec(&fk, slots, 4, out);
    NnrtHead head = {.name = "h", .out_size = K, .classify = true};
    spec.heads = &head;
    spec.nheads = 1;
    spec.begin = no_begin;
    spec.ranks = 1;
    spec.sum = count_sum;
    sums_called = 0;
    NnrtTrainResult res;
    char err[256] = "";
    if (CHECK(nnrt_train(&spec, &train, &test, &res, err, sizeof err)))
        CHECK(sums_called == 3 * 3 + 1); /* 3 epochs of 3 steps, the test set */
    else
        printf("  %s\n", err);
    nnrt_train_result_free(&res);
    fclose(out);
    nnrt_dataset_free(&train);
    nnrt_dataset_free(&test);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    nnrt_set_threads(2); /* before the pool starts: the split trial needs two */
    test_train();
    test_split_trial();
    test_parallel_sums();
    return check_summary();
}
