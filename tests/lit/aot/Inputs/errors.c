/* errors.c — every function of a model compiled by nnc -c returns a status
 * for bad arguments and failed files, none aborts: prints each status, and
 * the message of the state's failures. Built against small.h (with --load);
 * its argument a checkpoint of small with a NaN weight.
 */
#include <stdio.h>

#define SHOW(call) printf("%s = %d\n", #call, call)

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    static float x[2 * SMALL_BATCH * SMALL_INPUT_SIZE], y[2 * SMALL_BATCH], out[2 * SMALL_BATCH * SMALL_OUTPUT_SIZE];
    SHOW(small_predict(NULL, 1, out));
    SHOW(small_predict(x, 1, NULL));
    SHOW(small_predict(NULL, 0, NULL));
    SHOW(small_predict(x, 2 * SMALL_BATCH, out));
    small_state *s;
    SHOW(small_state_new(&s));
    SHOW(small_train_step(s, x, y, 0, NULL));
    SHOW(small_train_step(s, x, y, SMALL_BATCH + 1, NULL));
    SHOW(small_train_step(s, NULL, y, 1, NULL));
    SHOW(small_train_step(s, x, y, SMALL_BATCH, NULL));
    SHOW(small_state_predict(s, NULL, 1, out));
    SHOW(small_state_load(s, "/nonexistent/w.safetensors"));
    printf("%s\n", small_state_error(s));
    SHOW(small_state_save(s, "/nonexistent/w.safetensors"));
    printf("%s\n", small_state_error(s));
    SHOW(small_state_save(s, NULL));
    SHOW(small_state_load(s, argv[1]));
    printf("%s\n", small_state_error(s));
    small_state_free(s);
    small_state_free(NULL);
    return 0;
}
