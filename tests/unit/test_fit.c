/* test_fit.c — the NaN/Inf guard's report (compiler/fit.c) on a real
 * training-step graph, without running it: a NaN is planted in the arena
 * buffer of one node and fit_on_nonfinite must name that node's model-file
 * line and the right pass. Diverging runs reach only the forward pass on
 * this op set (forward values overflow before their gradients do), so the
 * backward pass and the optimizer update are checked here. And a
 * checkpoint is read once for all its readers.
 */
#include "nnc.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static const char model_text[] = "model m {\n"
                                  "    input  x[4]\n"
                                  "    dense  5, relu\n"
                                  "    dense  3, softmax\n"
                                  "    loss   crossentropy\n"
                                  "    optimizer sgd(lr = 0.1, momentum = 0.9)\n"
                                  "}\n";

/* The first node (in topological order) for which want() holds. */
typedef bool (*Want)(const Graph *g, int i, const bool *fwd);

static bool fwd_matmul(const Graph *g, int i, const bool *fwd) {
    return fwd[i] && g->nodes[i].op == OP_MATMUL;
}
/* dW of the second layer: a matmul of shape [5, 3] outside the forward pass. */
static bool grad_w2(const Graph *g, int i, const bool *fwd) {
    return !fwd[i] && g->nodes[i].op == OP_MATMUL && g->nodes[i].shape.rank == 2 &&
           g->nodes[i].shape.dim[0] == 5 && g->nodes[i].shape.dim[1] == 3;
}
static bool update(const Graph *g, int i, const bool *fwd) {
    (void)fwd;
    return g->nodes[i].loc.line == 6 && g->nodes[i].op != OP_CONST;
}

/* Plants a NaN in the first node matching want, runs the report, returns it. */
static char *report(Arena *a, const Model *m, Graph *g, Want want, bool in_loss) {
    Target *t = target_host();
    Schedule *p = schedule(a, g, 0, t); /* -O0: every node has an arena buffer to plant in */
    float *arena = calloc(p->arena_bytes / sizeof(float) + 1, sizeof(float));
    bool *fwd = fit_forward_nodes(g);
    int target = -1;
    for (int i = 0; i < g->nnodes && target < 0; i++)
        if (p->place[i] == PLACE_ARENA && want(g, i, fwd))
            target = i;
    char *out = NULL;
    size_t len = 0;
    if (!CHECK(target >= 0)) {
        free(arena);
        free(fwd);
        target_free(t);
        return strdup("");
    }
    arena[p->offset[target] / sizeof(float)] = NAN;
    FILE *f = open_memstream(&out, &len);
    Diag d;
    diag_init(&d, f);
    void *slots[8] = {arena};
    FitHook h = {.diag = &d, .arena = a, .model = m, .step = g, .sched = p};
    NnrtNonFinite nf = {.epoch = 2, .step = 7, .in_loss = in_loss, .loss = NAN,
                        .slots = slots};
    fit_on_nonfinite(&h, &nf);
    fclose(f);
    CHECK(h.nan_reported);
    free(arena);
    free(fwd);
    target_free(t);
    return out;
}

static void expect(char *got, const char *want) {
    if (!CHECK(strstr(got, want) != NULL))
        printf("  wanted '%s' in:\n%s\n", want, got);
    else
        printf("  %.*s\n", (int)(strchr(got, '\n') - got), got);
    free(got);
}

/* A checkpoint's five readers (settings, class and target names,
 * normalization, weights) share one FitCkpt: the file is loaded by the first and read by
 * all, so they succeed even once the file is gone after the first. */
static void test_ckpt_once(Arena *a, const Model *m, Graph *g) {
    char path[64], err[512];
    snprintf(path, sizeof path, "test_fit_%d.safetensors", (int)getpid());
    void **slots = fit_slots_new(g, 7), **back = fit_slots_new(g, 8);
    char *names[] = {"a", "b", "c"};
    NnrtClasses classes = {names, 3}, targets = {names + 1, 2};
    double mean[4] = {1, 2, 3, 4}, std[4] = {0.5, 1, 2, 4};
    FitInfo info = {.model_name = m->name, .model_hash = 1, .seed = 7, .batch = 4, .epochs = 3, .lr = 0.25,
                    .classes = &classes, .targets = &targets, .norm_mean = mean, .norm_std = std, .norm_n = 4};
    FitState st;
    fit_state_init(&st, 7);
    if (!CHECK(fit_save(path, g, slots, &info, &st, err, sizeof err)))
        printf("  %s\n", err);
    Diag d;
    diag_init(&d, stdout);
    FitCkpt k = {.path = path};
    FitSettings set;
    CHECK(fit_read_settings(a, &d, &k, &set) && set.epochs == 3 && set.batch == 4 && set.lr == 0.25);
    CHECK(unlink(path) == 0);
    NnrtClasses got = {0};
    CHECK(fit_read_classes(&d, &k, &got) && got.n == 3 && !strcmp(got.names[2], "c"));
    NnrtClasses got_targets = {0};
    CHECK(fit_read_targets(&d, &k, 2, &got_targets) && got_targets.n == 2 && !strcmp(got_targets.names[0], "b"));
    double *gm = NULL, *gs = NULL;
    CHECK(fit_read_normalize(&d, &k, 4, &gm, &gs) && gm && gm[3] == 4 && gs[3] == 4);
    FitState st2;
    fit_state_init(&st2, 8);
    CHECK(fit_load(&d, &k, g, back, &info, &st2));
    bool same = true;
    for (int s = 0; s < g->nslots; s++)
        if (slots[s] && g->slots[s].kind == SLOT_PARAM)
            same = same && !memcmp(slots[s], back[s], (size_t)shape_elems(&g->slots[s].shape) * sizeof(float));
    CHECK(same);
    fit_ckpt_free(&k);
    nnrt_classes_free(&got);
    nnrt_classes_free(&got_targets);
    free(gm);
    free(gs);
    fit_state_free(&st);
    fit_state_free(&st2);
    for (int s = 0; s < g->nslots; s++) {
        free(slots[s]);
        free(back[s]);
    }
    free(slots);
    free(back);
}

int main(void) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, stdout);
    Source src = {.path = "m.nn", .text = model_text, .len = sizeof model_text - 1};
    AstProgram *ast = parse_program(a, &d, &src);
    Model *m = ast ? sema_model(a, &d, &ast->models[0]) : NULL;
    if (!CHECK(m != NULL))
        return 1;
    Graph *g = step_graph(a, m, STEP_TRAIN, 4, DT_F32, INPUT_FLOAT);
    expect(report(a, m, g, fwd_matmul, true),
           "m.nn:3:5: error: loss became NaN in the forward pass of 'dense  5, relu' at epoch 2, "
           "step 7");
    expect(report(a, m, g, grad_w2, false),
           "m.nn:4:5: error: a gradient became NaN in the backward pass of 'dense  3, softmax' at "
           "epoch 2, step 7");
    expect(report(a, m, g, update, false),
           "m.nn:6:5: error: a gradient became NaN in the optimizer update of 'optimizer sgd(lr = "
           "0.1, momentum = 0.9)'");
    test_ckpt_once(a, m, g);
    arena_free(a);
    return check_summary();
}
