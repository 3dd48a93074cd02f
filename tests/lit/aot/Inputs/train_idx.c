/* train_idx.c — trains a model compiled by `nnc -c` from C, on the batches
 * `nnc --train` would make: the runtime's IDX loader, the same shuffle of
 * the same seed per epoch and the same batch filling, so a test can compare
 * the parameters after N steps with nnc's. Then saves the state.
 *
 *   cc -include MODEL.h -DP=MODEL train_idx.c MODEL.o libnnrt.a -lz -ljansson -lpthread -lm
 *   ./a.out IMAGES LABELS EPOCHS SEED OUT.safetensors [IN.safetensors]
 *
 * OUT holds the training position (nnrt_aot_save_run): nnc --resume goes on
 * from it.
 */
#include "nnrt.h"

#include <stdio.h>
#include <stdlib.h>

#define CAT(a, b) a##b
#define FN(p, f) CAT(p, f)

int main(int argc, char **argv) {
    if (argc < 6)
        return 2;
    char err[512];
    NnrtDataset ds;
    if (!nnrt_dataset_load(argv[1], argv[2], 0, &ds, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    FN(P, _state) *s;
    int rc = FN(P, _state_new)(&s);
    if (rc == 0 && argc > 6)
        rc = FN(P, _state_load)(s, argv[6]);
    if (rc) {
        fprintf(stderr, "state: %d %s\n", rc, s ? FN(P, _state_error)(s) : "");
        return 1;
    }
    NnrtTrainPos pos;
    nnrt_train_pos_init(&pos, (uint64_t)atoll(argv[4]));
    uint32_t *order = malloc(ds.n * sizeof *order);
    float *x = malloc(ds.n * ds.sample_size * sizeof *x), *y = malloc(ds.n * ds.label_size * sizeof *y);
    for (int e = 0; e < atoi(argv[3]); e++) {
        for (size_t i = 0; i < ds.n; i++)
            order[i] = (uint32_t)i;
        nnrt_shuffle(&pos.rng, order, ds.n);
        for (size_t off = 0; off < ds.n; off += MODEL_BATCH) {
            size_t b = ds.n - off < MODEL_BATCH ? ds.n - off : MODEL_BATCH;
            nnrt_batch_fill(&ds, order + off, b, 4, false, x, y);
            float loss;
            if ((rc = FN(P, _train_step)(s, x, y, b, &loss)) != 0) {
                fprintf(stderr, "train_step: %d %s\n", rc, FN(P, _state_error)(s));
                return 1;
            }
            printf("epoch %d step %zu loss %.9g\n", e + 1, off / MODEL_BATCH + 1, (double)loss);
        }
        pos.epoch++;
    }
    if ((rc = nnrt_aot_save_run(s, argv[5], &pos, (uint64_t)atoll(argv[4]), ds.n)) != 0) {
        fprintf(stderr, "save: %d %s\n", rc, FN(P, _state_error)(s));
        return 1;
    }
    FN(P, _state_free)(s);
    nnrt_dataset_free(&ds);
    free(order);
    free(x);
    free(y);
    return 0;
}
