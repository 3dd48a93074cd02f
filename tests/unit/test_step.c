/* test_step.c — one compiled step serves every batch size: the step built
 * for 8 samples and run on n of them must compute what a step built for
 * exactly n samples does (loss, outputs, updated parameters and optimizer
 * state), at -O0 and -O2, for losses whose mean divides by n in different
 * places (crossentropy, mse, binary_crossentropy, a functional model, a
 * mean whose constant is also the learning rate) and
 * for partial M blocks of the matmul kernel (n = 3, 5, 7 against its 12-
 * or 6-row tiles) and a partial k loop (the weight gradients).
 */
#include "nnc.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FULL 8

static const char *const models[] = {
    "model ce { input x[6]\n dense 20, relu\n dense 3, softmax\n loss crossentropy\n"
    " optimizer sgd(lr = 0.1, momentum = 0.9) }\n",
    "model se { input x[2, 3]\n flatten\n dense 17, tanh\n dense 3, sigmoid\n loss mse\n"
    " optimizer adam(lr = 0.01) }\n",
    "model bce { input x[6]\n dense 9, relu\n dense 1, sigmoid\n loss binary_crossentropy\n"
    " optimizer rmsprop(lr = 0.01) }\n",
    "model f { input x[6]\n target y[1]\n param w[6, 1]\n param b[1]\n out = x @ w + b\n"
    " loss mse(out, y)\n optimizer sgd(lr = 0.05) }\n",
    /* The mean's 1/(8 * 2) is the learning rate: one node in the graph for
     * 8 samples, two in those for 9 and 10 (step.c builds from 9's). */
    "model co { input x[6]\n dense 2, sigmoid\n loss mse\n optimizer sgd(lr = 0.0625) }\n",
};

typedef struct StepJit {
    Jit *jit;
    NnrtStepFn fn;
    size_t arena_bytes;
} StepJit;

static bool compile(Arena *a, Graph *g, int opt, StepJit *c) {
    Target *t = target_host();
    Schedule *s = schedule(a, g, opt, t);
    CgModule *mod = cg_module_new("step");
    cg_add_step(mod, "step", g, s);
    char err[512];
    c->jit = jit_compile(mod, t, err, sizeof err);
    target_free(t);
    c->fn = c->jit ? (NnrtStepFn)jit_lookup(c->jit, "step", err, sizeof err) : NULL;
    c->arena_bytes = s->arena_bytes;
    if (!c->fn)
        printf("  %s\n", err);
    return c->fn != NULL;
}

/* Slots for g, every tensor filled from the same sequence (labels as small
 * integers, optimizer state zero), so both steps see equal inputs and
 * parameters. */
static void **make_slots(const Graph *g, size_t arena_bytes, int64_t classes) {
    void **slots = calloc((size_t)g->nslots, sizeof *slots);
    slots[SLOT_NO_ARENA] = calloc(arena_bytes + 64, 1);
    for (int s = 1; s < g->nslots; s++) {
        size_t n = (size_t)shape_elems(&g->slots[s].shape);
        float *p = calloc(n + 1, sizeof *p);
        for (size_t i = 0; i < n; i++)
            p[i] = g->slots[s].kind == SLOT_LABEL   ? (float)(i * 7 % (size_t)classes)
                   : g->slots[s].kind == SLOT_STATE ? 0
                                                    : (float)sin((double)(i * 13 + (size_t)s) * 0.7) * 0.5f;
        slots[s] = p;
    }
    return slots;
}

static void free_slots(const Graph *g, void **slots) {
    for (int s = 0; s < g->nslots; s++)
        free(slots[s]);
    free(slots);
}

/* Every slot but the arena agrees to a relative 1e-6 over the first n samples. */
static bool same_slots(const Graph *g, const Graph *h, void **gs, void **hs) {
    bool ok = true;
    for (int s = 1; s < h->nslots; s++) {
        size_t n = (size_t)shape_elems(&h->slots[s].shape);
        const float *x = gs[s], *y = hs[s];
        for (size_t i = 0; i < n; i++)
            if (!(fabsf(x[i] - y[i]) <= 1e-6f * fmaxf(1, fabsf(y[i])))) {
                printf("  slot %s[%zu]: %.9g against %.9g\n", g->slots[s].name, i, x[i], y[i]);
                ok = false;
                break;
            }
    }
    return ok;
}

static void check_model(Arena *a, const Model *m, StepKind kind, int opt, int64_t n) {
    int64_t classes = m->output.dim[0] > 1 ? m->output.dim[0] : 2;
    Graph *g = step_graph(a, m, kind, FULL, DT_F32, INPUT_FLOAT), *h = step_graph(a, m, kind, n, DT_F32, INPUT_FLOAT);
    StepJit cg, ch;
    if (!CHECK(compile(a, g, opt, &cg) && compile(a, h, opt, &ch)))
        return;
    void **gs = make_slots(g, cg.arena_bytes, classes), **hs = make_slots(h, ch.arena_bytes, classes);
    /* The first n samples of the full batch's inputs are the small one's. */
    CHECK(memcmp(gs[SLOT_NO_INPUT], hs[SLOT_NO_INPUT], (size_t)shape_elems(&h->slots[SLOT_NO_INPUT].shape) * 4) == 0);
    for (int step = 0; step < 2; step++) { /* the second sees the state the first left */
        cg.fn(gs, n);
        ch.fn(hs, n);
    }
    if (!CHECK(same_slots(g, h, gs, hs)))
        printf("  model %s, %s step, -O%d, n = %lld\n", m->name, kind == STEP_TRAIN ? "training" : "evaluation", opt,
               (long long)n);
    free_slots(g, gs);
    free_slots(h, hs);
    jit_free(cg.jit);
    jit_free(ch.jit);
}

int main(void) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stdout);
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        Source src = {.path = "m.nn", .text = models[k], .len = strlen(models[k])};
        AstProgram *ast = parse_program(a, &d, &src);
        Model *m = ast ? sema_model(a, &d, &ast->models[0]) : NULL;
        if (!CHECK(m != NULL))
            continue;
        /* The input's batch axis is marked; a parameter has none. */
        Graph *g = step_graph(a, m, STEP_TRAIN, FULL, DT_F32, INPUT_FLOAT);
        bool input_marked = false, param_clean = true;
        for (int i = 0; i < g->nnodes; i++) {
            input_marked |= g->nodes[i].op == OP_INPUT && ir_batch_axes(g, i) == 1;
            param_clean &= g->nodes[i].op != OP_PARAM || ir_batch_axes(g, i) == 0;
        }
        CHECK(input_marked && param_clean);
        for (int opt = 0; opt <= 2; opt += 2) {
            check_model(a, m, STEP_TRAIN, opt, 3);
            check_model(a, m, STEP_TRAIN, opt, 7);
            check_model(a, m, STEP_EVAL, opt, 5);
        }
    }
    arena_free(a);
    return check_summary();
}
