/* test_guard.c — the generated NaN/Inf guard (cg_guard.c) against isfinite.
 *
 * Slots of 1, 3, 17, 37 and 1,000 elements, so every vector width (4, 8 or
 * 16 floats; 2, 4 or 8 doubles) meets slots shorter than a vector, a whole
 * body and a tail. Into each element of each parameter or state slot in
 * turn, every non-finite value (NaN, -NaN, +-Inf, and a NaN with payload)
 * must be found; finite extremes (+-max, the smallest normal and denormal, -0)
 * anywhere must not, nor a NaN in a slot that is not parameters or state.
 * Two matrices of 300 x 77 (92 KB of floats) are scanned on the thread pool
 * by the matmul kernel's column panels (77 = whole panels, then an edge
 * with a tail shorter than a vector): there, the bad values go into every
 * element of four rows (first, second, middle, last) and of every row at
 * the columns on either side of a panel boundary and the last.
 * ctest runs it with the host's features and narrowed to AVX2 and to SSE
 * (NNC_TARGET_FEATURES), so each width is tested on an AVX-512 machine, and
 * on one thread, where the pool runs a kernel over all its panels at once.
 */
#include "nnc.h"
#include "check.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { NSIZES = 5, NMATS = 2, ROWS = 300, COLS = 77 };
static const int64_t sizes[NSIZES] = {1, 3, 17, 37, 1000};

/* Is element i of a slot of n elements one the test poisons? All of a
 * vector, the places above in a matrix (n = ROWS x COLS). */
static bool probed(int64_t i, int64_t n, int64_t pw) {
    if (n != ROWS * COLS)
        return true;
    int64_t r = i / COLS, col = i % COLS;
    return r == 0 || r == 1 || r == ROWS / 2 || r == ROWS - 1 || col == 0 || col == pw - 1 || col == pw ||
           col == COLS - 1;
}

/* Element i of a slot of either type, set to v. */
static void put(void *p, int64_t i, double v, bool f64) {
    if (f64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

static void test_dtype(DType dt) {
    bool f64 = dt == DT_F64;
    size_t eb = f64 ? 8 : 4;
    Arena *a = arena_new();
    Graph *g = ir_new(a, dt);
    /* An input slot first (ignored by the guard), then parameters and
     * state alternating. */
    ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = "x", .shape = {1, {5}}});
    for (int k = 0; k < NSIZES; k++)
        ir_add_slot(g, (Slot){.kind = k % 2 ? SLOT_STATE : SLOT_PARAM, .name = "w", .shape = {1, {sizes[k]}}});
    for (int k = 0; k < NMATS; k++)
        ir_add_slot(g, (Slot){.kind = k % 2 ? SLOT_STATE : SLOT_PARAM, .name = "m", .shape = {2, {ROWS, COLS}}});
    CgModule *mod = cg_module_new("guard");
    Target *t = target_host();
    cg_add_guard(mod, "finite", g, NULL, t);
    char err[512];
    Jit *j = jit_compile(mod, t, err, sizeof err); /* takes mod */
    int64_t pw = cg_matmul_panel_width(g, t);
    target_free(t);
    if (!CHECK(j != NULL)) {
        printf("%s\n", err);
        arena_free(a);
        return;
    }
    int (*finite)(void **) = (int (*)(void **))jit_lookup(j, "finite", err, sizeof err);
    CHECK(finite != NULL);

    enum { NSLOTS = 1 + NSIZES + NMATS };
    int64_t n_of[NSLOTS] = {5};
    for (int s = 1; s < NSLOTS; s++)
        n_of[s] = s <= NSIZES ? sizes[s - 1] : ROWS * COLS;
    void *slots[NSLOTS];
    for (int s = 0; s < NSLOTS; s++) {
        int64_t n = n_of[s];
        slots[s] = calloc((size_t)n, eb);
        for (int64_t i = 0; i < n; i++)
            put(slots[s], i, 0.5 * (double)i - 3, f64);
    }
    CHECK(finite(slots) == 1);
    put(slots[0], 2, NAN, f64);
    CHECK(finite(slots) == 1); /* the input is not the guard's */

    const double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    const double fine[] = {f64 ? DBL_MAX : FLT_MAX, f64 ? -DBL_MAX : -FLT_MAX, f64 ? DBL_MIN : FLT_MIN,
                           f64 ? DBL_MIN / 4 : FLT_MIN / 4, -0.0};
    int missed = 0, false_alarms = 0;
    for (int s = 1; s < NSLOTS; s++)
        for (int64_t i = 0; i < n_of[s]; i++) {
            if (!probed(i, n_of[s], pw))
                continue;
            unsigned char keep[8];
            memcpy(keep, (char *)slots[s] + i * (int64_t)eb, eb);
            for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
                put(slots[s], i, bad[b], f64);
                missed += finite(slots) != 0;
            }
            /* A NaN with a payload: only some mantissa bits set. */
            if (f64) {
                uint64_t u = 0x7ff0000000000001ull;
                memcpy((char *)slots[s] + i * 8, &u, 8);
            } else {
                uint32_t u = 0xffc00123u;
                memcpy((char *)slots[s] + i * 4, &u, 4);
            }
            missed += finite(slots) != 0;
            for (size_t f = 0; f < sizeof fine / sizeof *fine; f++) {
                put(slots[s], i, fine[f], f64);
                false_alarms += finite(slots) != 1;
            }
            memcpy((char *)slots[s] + i * (int64_t)eb, keep, eb);
        }
    CHECK(missed == 0);
    CHECK(false_alarms == 0);
    CHECK(finite(slots) == 1);
    printf("%s: %d non-finite values missed, %d finite ones reported\n", f64 ? "f64" : "f32", missed,
           false_alarms);
    for (int s = 0; s < NSLOTS; s++)
        free(slots[s]);
    jit_free(j);
    arena_free(a);
}

int main(void) {
    Target *t = target_host();
    printf("vector width %d bits\n", t->vector_bits);
    target_free(t);
    test_dtype(DT_F32);
    test_dtype(DT_F64);
    return check_summary();
}
