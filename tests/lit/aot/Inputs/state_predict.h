/* state_predict.h — for predict_idx.c: PREDICT through a training state
 * (MODEL_state_predict) holding the checkpoint $CKPT (MODEL_state_load)
 * instead of MODEL_predict.
 *
 *   cc -include MODEL.h -DP=MODEL -include state_predict.h -DPREDICT=state_predict ... predict_idx.c
 */
#include <stdlib.h>

#define CAT(a, b) a##b
#define FN(p, f) CAT(p, f)

static int state_predict(const float *x, size_t n, float *out) {
    static FN(P, _state) *s;
    int rc = 0;
    if (!s && ((rc = FN(P, _state_new)(&s)) != 0 || (rc = FN(P, _state_load)(s, getenv("CKPT"))) != 0))
        return rc;
    return FN(P, _state_predict)(s, x, n, out);
}
