/* train.c — trains the MLP for one epoch from C: the model compiled ahead of
 * time (nnc -c, here without weights: --seed's initialisation), its training
 * state and the runtime's data loading from libnnrt. Prints the loss as it
 * goes and the test accuracy, and saves a checkpoint with its training
 * position: `nnc examples/mlp.nn --resume FILE` trains the next epochs.
 *
 *   ./train [OUT.safetensors]   (default: mlp-c.safetensors)
 */
#include "mlp.h"
#include "nnrt.h"

#include <stdio.h>
#include <stdlib.h>

#define DATA "/usr/share/datasets/fashion-mnist/"

static int fail(mlp_state *s, const char *what, int status) {
    fprintf(stderr, "%s: status %d: %s\n", what, status, s ? mlp_state_error(s) : "");
    return 1;
}

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : "mlp-c.safetensors";
    char err[512];
    NnrtDataset train, test;
    if (!nnrt_dataset_load(DATA "train-images-idx3-ubyte.gz", DATA "train-labels-idx1-ubyte.gz", MLP_OUTPUT_SIZE,
                           &train, err, sizeof err) ||
        !nnrt_dataset_load(DATA "t10k-images-idx3-ubyte.gz", DATA "t10k-labels-idx1-ubyte.gz", MLP_OUTPUT_SIZE,
                           &test, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    mlp_state *s;
    int status = mlp_state_new(&s);
    if (status != MLP_OK)
        return fail(NULL, "mlp_state_new", status);

    /* One epoch of shuffled batches, as nnc --train --seed 1 makes them. */
    NnrtTrainPos pos;
    nnrt_train_pos_init(&pos, 1);
    uint32_t *order = malloc(train.n * sizeof *order);
    float *x = malloc((size_t)MLP_BATCH * MLP_INPUT_SIZE * sizeof *x), *y = malloc(MLP_BATCH * sizeof *y);
    if (!order || !x || !y)
        return fail(s, "out of memory", MLP_ENOMEM);
    for (size_t i = 0; i < train.n; i++)
        order[i] = (uint32_t)i;
    nnrt_shuffle(&pos.rng, order, train.n);
    double sum = 0;
    size_t seen = 0;
    for (size_t off = 0; off < train.n; off += MLP_BATCH) {
        size_t b = train.n - off < MLP_BATCH ? train.n - off : MLP_BATCH;
        nnrt_batch_fill(&train, order + off, b, 4, false, x, y);
        float loss;
        if ((status = mlp_train_step(s, x, y, b, &loss)) != MLP_OK)
            return fail(s, "mlp_train_step", status);
        sum += (double)loss * (double)b;
        seen += b;
        if ((off / MLP_BATCH + 1) % 100 == 0)
            printf("step %zu: mean loss %.4f\n", off / MLP_BATCH + 1, sum / (double)seen);
    }
    printf("epoch 1: loss %.4f\n", sum / (double)seen);
    pos.epoch = 1; /* one epoch done: the next shuffles from pos.rng */

    /* The test set through the state's evaluation step. */
    float *tx = malloc(test.n * MLP_INPUT_SIZE * sizeof *tx), *ty = malloc(test.n * sizeof *ty);
    float *p = malloc(test.n * MLP_OUTPUT_SIZE * sizeof *p);
    uint32_t *all = malloc(test.n * sizeof *all);
    if (!tx || !ty || !p || !all)
        return fail(s, "out of memory", MLP_ENOMEM);
    for (size_t i = 0; i < test.n; i++)
        all[i] = (uint32_t)i;
    nnrt_batch_fill(&test, all, test.n, 4, false, tx, ty);
    if ((status = mlp_state_predict(s, tx, test.n, p)) != MLP_OK)
        return fail(s, "mlp_state_predict", status);
    size_t correct = 0;
    for (size_t i = 0; i < test.n; i++) {
        int best = 0;
        for (int k = 1; k < MLP_OUTPUT_SIZE; k++)
            if (p[i * MLP_OUTPUT_SIZE + k] > p[i * MLP_OUTPUT_SIZE + best])
                best = k;
        correct += best == (int)ty[i];
    }
    printf("test accuracy %.4f\n", (double)correct / (double)test.n);
    if ((status = nnrt_aot_save_run(s, out, &pos, 1, train.n)) != MLP_OK)
        return fail(s, "nnrt_aot_save_run", status);
    printf("saved %s (nnc examples/mlp.nn --resume %s continues)\n", out, out);
    mlp_state_free(s);
    nnrt_dataset_free(&train);
    nnrt_dataset_free(&test);
    free(order), free(x), free(y), free(tx), free(ty), free(p), free(all);
    return 0;
}
