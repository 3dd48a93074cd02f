/* test_window.c — the values of the window ops (conv2d, maxpool, avgpool and
 * their adjoints) and of random, against references written plainly here.
 *
 * test_gradcheck shows each op's gradient matches its own forward
 * definition; this shows the forward definition is Keras': channels last,
 * a correlation (the kernel not flipped), 'same' padding as TensorFlow
 * (out = ceil(n / s), the odd padding element after), avgpool dividing by
 * the elements inside the input only, maxpool never choosing the padding.
 * The reference pads the input explicitly (zeros and a mask of what is
 * inside) and applies the textbook formula; it shares nothing with ir.c's
 * window_out or cg_window.c. Five cases small enough to compute by hand
 * give their expected numbers below, so a reader can check the convention
 * at a glance.
 *
 * The adjoints are checked as transposes: <conv2d(x, k), dy> =
 * <x, conv2d_data(dy, k)> = <k, conv2d_filter(x, dy)>, <avgpool(x), dy> =
 * <x, avgpool_grad(dy)>, <maxpool_pick(x, e), dy> = <e, maxpool_grad(x, dy)>,
 * and maxpool_grad element by element (PyTorch's tie: the first maximum, u
 * then v ascending).
 *
 * Every case runs in float64 and float32, at -O0 (the loop nests) and -O2
 * (whatever kernel computes it there), at the host's vector width (ctest
 * runs it again narrowed to AVX2's and SSE's through NNC_TARGET_FEATURES),
 * all the cases of one configuration compiled by one JIT; the cases of a
 * batch of 3 run on 3 samples and on 2 (a step serves every batch size:
 * conv_gemm merges the batch axis into the patch rows).
 *
 * Tolerance: an output summing terms t_i may differ from the exact sum by
 * a few rounding errors of the partial sums, each at most an ulp of
 * sum |t_i|; the reference sums in long double. So |got - want| <=
 * ULPS * eps * sum |t_i|, eps the dtype's, ULPS = 4: float32 within
 * 2^-21 of sum |t_i|, float64 within 2^-50 (the worst seen on these cases
 * in either: about 1 ulp). A maximum is one of its inputs: exact.
 *
 * random: the same key and counter give the same numbers whatever batch
 * size the step runs on (and in either dtype, at either level: bit for
 * bit), another counter or key other numbers, and 1e5 of them have a
 * mean within 0.5 +- 0.005 (about 5 standard deviations) all in [0, 1).
 */
#include "nnc.h"
#include "check.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const Loc L0;

#define ULPS 4

typedef enum { CONV, MAXPOOL, AVGPOOL } Kind;

/* A hand case's inputs x (and k, dy; NULL: random) and expected values of
 * y (and of maxpool_grad's dx). */
typedef struct Hand {
    const double *x, *k, *dy, *y, *dx;
} Hand;

/* A case: x [n, h, w, c] through a window kh x kw, stride sh x sw; conv2d
 * has f filters. */
typedef struct Case {
    const char *name;
    Kind kind;
    int64_t n, h, w, c;
    int kh, kw, sh, sw, f;
    bool same;
    const Hand *hand; /* NULL: random inputs */
} Case;

/* ---------------------------------------------------------------- hand cases */

/* 1. conv2d, 'same', stride 1, x 3x3 (one channel), k 2x2: out = ceil(3 / 1)
 * = 3, padding (3 - 1) 1 + 2 - 3 = 1, all after (TensorFlow's odd element):
 * a zero row below and a zero column on the right. A correlation:
 * y[i, j] = 1 x[i, j] + 2 x[i, j + 1] + 3 x[i + 1, j] + 4 x[i + 1, j + 1].
 *     x = 1 2 3   k = 1 2   y = 1+4+12+20  2+6+15+24  3+0+18+0  =  37 47 21
 *         4 5 6       3 4       4+10+21+32 5+12+24+36 6+0+27+0     67 77 33
 *         7 8 9                 7+16+0+0   8+18+0+0   9+0+0+0      23 26  9
 * (Padding before, a zero row above and column on the left, would give
 * y[0, 0] = 4 x[0, 0] = 4; a convolution, the kernel flipped, y[1, 1] =
 * 4 5 + 3 6 + 2 8 + 1 9 = 63.) */
static const double h1_x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, h1_k[] = {1, 2, 3, 4};
static const double h1_y[] = {37, 47, 21, 67, 77, 33, 23, 26, 9};

/* 2. conv2d, channels last: x [1, 1, 2, 2], k 1x1 [1, 1, 2, 3]; x's two
 * pixels are (1, 2) and (3, 4), k[c, f] = (1 10 100 / 2 20 200);
 * y[p, f] = x[p, 0] k[0, f] + x[p, 1] k[1, f]:
 *     y[0] = (1 + 4, 10 + 40, 100 + 400) = (5, 50, 500)
 *     y[1] = (3 + 8, 30 + 80, 300 + 800) = (11, 110, 1100), in memory in that order. */
static const double h2_x[] = {1, 2, 3, 4}, h2_k[] = {1, 10, 100, 2, 20, 200};
static const double h2_y[] = {5, 50, 500, 11, 110, 1100};

/* 3. avgpool 2x2, stride 2, 'same', x 3x3 = 1..9: out = ceil(3 / 2) = 2,
 * padding (2 - 1) 2 + 2 - 3 = 1, after; each window divided by the
 * elements inside x:
 *     y = (1+2+4+5)/4  (3+6)/2  =  3    4.5
 *         (7+8)/2      9/1         7.5  9
 * (Counting the padding: 3 2.25 / 3.75 2.25.) */
static const double h3_y[] = {3, 4.5, 7.5, 9};

/* 4. maxpool 3x3, stride 2, 'same', x 4x4 all negative, x[i, j] = -(4 i + j
 * + 1): out = 2, padding (2 - 1) 2 + 3 - 4 = 1, after. Each window's
 * maximum is its top-left element inside x, never the padding's 0:
 *     y = x[0, 0] x[0, 2]  =  -1  -3
 *         x[2, 0] x[2, 2]     -9 -11 */
static const double h4_x[] = {-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15, -16};
static const double h4_y[] = {-1, -3, -9, -11};

/* 5. maxpool 2x2, stride 2, ties: x [1, 2, 4, 1] = (5 5 1 2 / 5 5 2 2),
 * y = (5, 2); its gradient for dy = (1, 1) goes to each window's first
 * maximum (PyTorch's tie), (0, 0) and (0, 3):
 *     dx = 1 0 0 1
 *          0 0 0 0 */
static const double h5_x[] = {5, 5, 1, 2, 5, 5, 2, 2}, h5_dy[] = {1, 1}, h5_y[] = {5, 2};
static const double h5_dx[] = {1, 0, 0, 1, 0, 0, 0, 0};

static const Case cases[] = {
    {"hand conv2d 2x2 same", CONV, 1, 3, 3, 1, 2, 2, 1, 1, 1, true, &(const Hand){h1_x, h1_k, NULL, h1_y, NULL}},
    {"hand conv2d channels", CONV, 1, 1, 2, 2, 1, 1, 1, 1, 3, false, &(const Hand){h2_x, h2_k, NULL, h2_y, NULL}},
    {"hand avgpool 2 same", AVGPOOL, 1, 3, 3, 1, 2, 2, 2, 2, 0, true, &(const Hand){h1_x, NULL, NULL, h3_y, NULL}},
    {"hand maxpool 3/2 same", MAXPOOL, 1, 4, 4, 1, 3, 3, 2, 2, 0, true, &(const Hand){h4_x, NULL, NULL, h4_y, NULL}},
    {"hand maxpool ties", MAXPOOL, 1, 2, 4, 1, 2, 2, 2, 2, 0, false, &(const Hand){h5_x, NULL, h5_dy, h5_y, h5_dx}},
    /* random inputs: odd sizes (7x5), batches 1 and 3, several channels */
    {"conv2d 3x3 valid", CONV, 3, 7, 5, 2, 3, 3, 1, 1, 3, false, NULL},
    {"conv2d 3x3 same", CONV, 3, 7, 5, 3, 3, 3, 1, 1, 4, true, NULL},
    {"conv2d 3x3 same stride 2 over 6x5", CONV, 1, 6, 5, 3, 3, 3, 2, 2, 2, true, NULL},
    {"conv2d 5x5 valid stride 2", CONV, 1, 7, 5, 3, 5, 5, 2, 2, 2, false, NULL},
    {"conv2d 5x5 same over 3x4", CONV, 1, 3, 4, 2, 5, 5, 1, 1, 2, true, NULL},
    {"conv2d 1x1 valid stride [1, 2]", CONV, 1, 7, 5, 4, 1, 1, 1, 2, 3, false, NULL},
    {"conv2d [3, 5] same stride [2, 1]", CONV, 3, 7, 5, 2, 3, 5, 2, 1, 3, true, NULL},
    /* channels by whole vectors (the -O2 kernel reads patches from x a
     * vector at a time), by whole vectors and a rest, or by a part */
    {"conv2d 3x3 same, 16 channels", CONV, 3, 6, 5, 16, 3, 3, 1, 1, 5, true, NULL},
    {"conv2d 3x3 valid, 20 channels to 40", CONV, 2, 6, 6, 20, 3, 3, 1, 1, 40, false, NULL},
    {"conv2d 2x2 same stride 2, 32 channels to 33", CONV, 3, 5, 5, 32, 2, 2, 2, 2, 33, true, NULL},
    /* n oh ow >= 4096 patch rows: the filter gradient's sum split between
     * units (cg_matmul_ksplit), on 3 samples and on 2 */
    {"conv2d 3x3 valid over 42x40 (filter gradient split)", CONV, 3, 42, 40, 2, 3, 3, 1, 1, 3, false, NULL},
    {"conv2d 3x3 same over 46x45, 16 channels (split)", CONV, 2, 46, 45, 16, 3, 3, 1, 1, 5, true, NULL},
    {"maxpool 2 valid", MAXPOOL, 3, 7, 5, 3, 2, 2, 2, 2, 0, false, NULL},
    {"maxpool 3 stride 2 same", MAXPOOL, 1, 7, 5, 2, 3, 3, 2, 2, 0, true, NULL},
    {"maxpool [3, 2] stride [1, 3] valid", MAXPOOL, 3, 7, 5, 2, 3, 2, 1, 3, 0, false, NULL},
    {"avgpool 2 same", AVGPOOL, 3, 7, 5, 2, 2, 2, 2, 2, 0, true, NULL},
    {"avgpool 3 stride 1 same", AVGPOOL, 1, 5, 7, 2, 3, 3, 1, 1, 0, true, NULL},
    {"avgpool [2, 3] stride [3, 2] valid", AVGPOOL, 3, 7, 5, 2, 2, 3, 3, 2, 0, false, NULL},
};
enum { NCASES = sizeof cases / sizeof cases[0] };

/* ---------------------------------------------------------------- the reference */

/* One axis: TensorFlow's output length and padding, written out apart from
 * ir.c. valid: floor((n - k) / s) + 1, no padding; same: ceil(n / s), the
 * padding max((out - 1) s + k - n, 0) split with the odd element after. */
static int64_t axis_out(int64_t n, int k, int s, bool same, int64_t *before, int64_t *after) {
    if (!same) {
        *before = *after = 0;
        return (n - k) / s + 1;
    }
    int64_t out = (n + s - 1) / s, total = (out - 1) * s + k - n;
    if (total < 0)
        total = 0;
    *before = total / 2;
    *after = total - *before;
    return out;
}

/* A case's sizes: the output's, and x's zero-padded copy's. */
typedef struct Dims {
    int64_t oh, ow, oc;       /* y [n, oh, ow, oc] */
    int64_t ph, pw, pt, pl;   /* the padded x [n, ph, pw, c], x's first element at (pt, pl) */
    size_t nx, nk, ny;        /* elements of x, k, y */
} Dims;

static Dims dims_of(const Case *c) {
    Dims d;
    int64_t pb, pr;
    d.oh = axis_out(c->h, c->kh, c->sh, c->same, &d.pt, &pb);
    d.ow = axis_out(c->w, c->kw, c->sw, c->same, &d.pl, &pr);
    d.oc = c->kind == CONV ? c->f : c->c;
    d.ph = c->h + d.pt + pb;
    d.pw = c->w + d.pl + pr;
    d.nx = (size_t)(c->n * c->h * c->w * c->c);
    d.nk = c->kind == CONV ? (size_t)(c->kh * c->kw * c->c * c->f) : 0;
    d.ny = (size_t)(c->n * d.oh * d.ow * d.oc);
    return d;
}

/* What the reference computes of a case: y, the sum of |terms| of each y
 * (its rounding scale), and for maxpool each window's first maximum's
 * index in x and maxpool_grad(x, dy). */
typedef struct Ref {
    double *y, *scale;
    size_t *argmax;
    double *dx;
} Ref;

static Ref reference(const Case *c, const double *x, const double *k, const double *dy) {
    Dims d = dims_of(c);
    /* x padded: zeros, and whether each element is x's. */
    size_t np = (size_t)(c->n * d.ph * d.pw * c->c);
    double *xp = calloc(np, sizeof *xp);
    size_t *from = calloc(np, sizeof *from); /* x's index + 1; 0: padding */
    for (int64_t b = 0; b < c->n; b++)
        for (int64_t p = 0; p < c->h; p++)
            for (int64_t q = 0; q < c->w; q++)
                for (int64_t ch = 0; ch < c->c; ch++) {
                    size_t at = (size_t)(((b * d.ph + p + d.pt) * d.pw + q + d.pl) * c->c + ch);
                    size_t xi = (size_t)(((b * c->h + p) * c->w + q) * c->c + ch);
                    xp[at] = x[xi];
                    from[at] = xi + 1;
                }
    Ref r = {calloc(d.ny, sizeof(double)), calloc(d.ny, sizeof(double)), calloc(d.ny, sizeof(size_t)),
             calloc(d.nx, sizeof(double))};
    size_t yi = 0;
    for (int64_t b = 0; b < c->n; b++)
        for (int64_t i = 0; i < d.oh; i++)
            for (int64_t j = 0; j < d.ow; j++)
                for (int64_t o = 0; o < d.oc; o++, yi++) {
                    long double sum = 0, abs = 0, best = 0;
                    int64_t count = 0;
                    size_t arg = 0;
                    for (int u = 0; u < c->kh; u++)
                        for (int v = 0; v < c->kw; v++) {
                            size_t row = (size_t)(((b * d.ph + i * c->sh + u) * d.pw + j * c->sw + v) * c->c);
                            if (c->kind == CONV) { /* y[b, i, j, o] = sum x[.., c] k[u, v, c, o] */
                                for (int64_t ch = 0; ch < c->c; ch++) {
                                    long double t = (long double)xp[row + (size_t)ch] *
                                                    k[((u * c->kw + v) * c->c + ch) * c->f + o];
                                    sum += t;
                                    abs += fabsl(t);
                                }
                                continue;
                            }
                            size_t at = row + (size_t)o; /* a pool: channel o of x */
                            if (!from[at])
                                continue; /* the padding: neither a maximum nor counted */
                            if (!count || xp[at] > best)
                                best = xp[at], arg = from[at] - 1;
                            sum += xp[at];
                            abs += fabs(xp[at]);
                            count++;
                        }
                    switch (c->kind) {
                    case CONV: r.y[yi] = (double)sum, r.scale[yi] = (double)abs; break;
                    case MAXPOOL:
                        r.y[yi] = (double)best, r.argmax[yi] = arg;
                        r.dx[arg] += dy[yi]; /* each window's gradient to its first maximum */
                        break;
                    case AVGPOOL: r.y[yi] = (double)(sum / count), r.scale[yi] = (double)(abs / count); break;
                    }
                }
    free(xp);
    free(from);
    return r;
}

static void ref_free(Ref *r) {
    free(r->y);
    free(r->scale);
    free(r->argmax);
    free(r->dx);
}

/* ---------------------------------------------------------------- inputs */

static uint64_t rng_state = 0x5eed;

/* Uniform in [-1, 1), a float (so float32 and float64 runs see the same
 * numbers): splitmix64, written here so the inputs depend on nothing else. */
static double uniform(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(float)((double)(z >> 11) * 0x1p-52 - 1);
}

static double *given_or_random(const double *given, size_t n) {
    double *v = malloc((n + 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = given ? given[i] : uniform();
    return v;
}

/* A case's inputs, the same in every configuration: x, k (conv2d), dy (y's
 * shape), e (x's shape: maxpool_pick's operand), and the reference. */
typedef struct Data {
    Dims d;
    double *x, *k, *dy, *e;
    Ref ref;
} Data;

static Data data_for(const Case *c) {
    const Hand *h = c->hand ? c->hand : &(const Hand){0};
    Data t = {.d = dims_of(c)};
    t.x = given_or_random(h->x, t.d.nx);
    t.k = given_or_random(h->k, t.d.nk);
    t.dy = given_or_random(h->dy, t.d.ny);
    t.e = given_or_random(NULL, t.d.nx);
    t.ref = reference(c, t.x, t.k, t.dy);
    return t;
}

/* ---------------------------------------------------------------- the graphs */

/* A case's slots: x, k (conv2d), dy, e (maxpool), then the outputs y and
 * the adjoints': conv2d_data and conv2d_filter, maxpool_grad and
 * maxpool_pick, avgpool_grad. */
enum { S_X, S_K, S_DY, S_E, S_Y, S_ADJ1, S_ADJ2, NSLOTS };

typedef struct Built {
    Graph *g;
    Schedule *s;
    int slot[NSLOTS]; /* 0: none */
} Built;

static NodeId leaf(Graph *g, Op op, int *slot, const char *name, Shape s) {
    *slot = ir_add_slot(g, (Slot){.kind = op == OP_INPUT ? SLOT_INPUT : SLOT_PARAM, .name = name, .shape = s});
    return ir_leaf(g, op, *slot, s, L0);
}

static void output(Graph *g, int *slot, NodeId v) {
    *slot = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "out", .shape = g->nodes[v].shape});
    ir_add_output(g, v, *slot);
}

/* The case's graph for a batch of c->n samples: x and dy (and e) are its
 * inputs, so their first axis is the batch axis when n > 1. */
static Built build(Arena *a, const Case *c, DType dt, int opt, const Target *t) {
    Built r = {.g = ir_new(a, dt)};
    Graph *g = r.g;
    g->batch = c->n;
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Dims d = dims_of(c);
    Shape xs = {4, {c->n, c->h, c->w, c->c}}, ys = {4, {c->n, d.oh, d.ow, d.oc}};
    NodeId x = leaf(g, OP_INPUT, &r.slot[S_X], "x", xs), y;
    NodeId dy = leaf(g, OP_INPUT, &r.slot[S_DY], "dy", ys);
    uint8_t xb = g->nodes[x].batch_axes;
    switch (c->kind) {
    case CONV: {
        Shape ks = {4, {c->kh, c->kw, c->c, c->f}};
        NodeId k = leaf(g, OP_PARAM, &r.slot[S_K], "k", ks);
        y = ir_conv2d(g, x, k, c->sh, c->sw, c->same, L0);
        Window w = g->nodes[y].win;
        output(g, &r.slot[S_Y], y);
        output(g, &r.slot[S_ADJ1], ir_window(g, OP_CONV2D_DATA, dy, k, w, xs, xb, L0));
        output(g, &r.slot[S_ADJ2], ir_window(g, OP_CONV2D_FILTER, x, dy, w, ks, 0, L0));
        break;
    }
    case MAXPOOL: {
        NodeId e = leaf(g, OP_INPUT, &r.slot[S_E], "e", xs);
        y = ir_pool(g, OP_MAXPOOL, x, c->kh, c->kw, c->sh, c->sw, c->same, L0);
        Window w = g->nodes[y].win;
        output(g, &r.slot[S_Y], y);
        output(g, &r.slot[S_ADJ1], ir_window(g, OP_MAXPOOL_GRAD, x, dy, w, xs, xb, L0));
        output(g, &r.slot[S_ADJ2], ir_window(g, OP_MAXPOOL_PICK, x, e, w, ys, xb, L0));
        break;
    }
    case AVGPOOL:
        y = ir_pool(g, OP_AVGPOOL, x, c->kh, c->kw, c->sh, c->sw, c->same, L0);
        output(g, &r.slot[S_Y], y);
        output(g, &r.slot[S_ADJ1], ir_window(g, OP_AVGPOOL_GRAD, dy, -1, g->nodes[y].win, xs, xb, L0));
        break;
    }
    r.s = pipeline_schedule(a, &r.g, opt, t); /* -O2: what conv_gemm makes of it */
    /* At -O2 a convolution's product is computed straight into its output
     * slot: the forward product (a reshape of it is the output), and the
     * data gradient where a tiled product's epilogue scatters it. */
    for (int o = 0; opt >= 2 && c->kind == CONV && o < r.g->noutputs; o++) {
        NodeId m = schedule_memory(r.g, r.s, r.g->outputs[o].node);
        bool scattered = r.g->nodes[m].op == OP_COL2IM && r.s->root[m] != m;
        if (r.g->outputs[o].slot == r.slot[S_Y] || scattered)
            CHECK(r.s->place[m] == PLACE_SLOT);
    }
    return r;
}

/* random's graphs: u and v, uniform numbers of key 3 and of key 4 for
 * every element of x [8, 5, 3] (a batch of 8) at the counter in slot
 * `counter`; big: 1e5 of them. */
static Built build_random(Arena *a, DType dt, int opt, const Target *t, int64_t batch, Shape xs) {
    Built r = {.g = ir_new(a, dt)};
    Graph *g = r.g;
    g->batch = batch;
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    NodeId x = leaf(g, OP_INPUT, &r.slot[S_X], "x", xs);
    NodeId counter = leaf(g, OP_PARAM, &r.slot[S_K], "counter", (Shape){0});
    output(g, &r.slot[S_Y], ir_random(g, counter, 3, x, L0));
    output(g, &r.slot[S_ADJ1], ir_random(g, counter, 4, x, L0));
    r.s = pipeline_schedule(a, &r.g, opt, t); /* -O2: what conv_gemm makes of it */
    return r;
}

/* ---------------------------------------------------------------- running */

typedef struct Config {
    DType dt;
    int opt;
    int bits;
} Config;

static double eps_of(DType dt) { return dt == DT_F32 ? FLT_EPSILON : DBL_EPSILON; }

static double worst_ulps; /* the largest error seen, in ulps of its scale */

/* The buffer of `role`'s slot, in the dtype, holding v (NULL: zeros). */
static void fill(void **slots, const Built *b, int role, const double *v, DType dt) {
    int s = b->slot[role];
    size_t n = (size_t)shape_elems(&b->g->slots[s].shape);
    slots[s] = xcalloc64(n + 1, dt == DT_F32 ? sizeof(float) : sizeof(double));
    for (size_t i = 0; v && i < n; i++) {
        if (dt == DT_F32)
            ((float *)slots[s])[i] = (float)v[i];
        else
            ((double *)slots[s])[i] = v[i];
    }
}

static void **slots_for(const Built *b) {
    void **slots = calloc((size_t)b->g->nslots, sizeof *slots);
    slots[SLOT_NO_ARENA] = xcalloc64(b->s->arena_bytes + 64, 1);
    return slots;
}

static void slots_free(const Built *b, void **slots) {
    for (int s = 0; s < b->g->nslots; s++)
        free(slots[s]);
    free(slots);
}

static double value(void **slots, const Built *b, int role, size_t i) {
    const void *p = slots[b->slot[role]];
    return b->g->dtype == DT_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static const char *config_name(const Config *k) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s -O%d %d-bit", k->dt == DT_F32 ? "float32" : "float64", k->opt, k->bits);
    return buf;
}

/* Is err within ULPS of scale? (Keeps the worst ratio seen.) */
static bool within(double err, double scale, DType dt) {
    if (scale > 0 && err / (eps_of(dt) * scale) > worst_ulps)
        worst_ulps = err / (eps_of(dt) * scale);
    return err <= ULPS * eps_of(dt) * scale;
}

/* Output `role` against want, each element within ULPS of its scale (NULL:
 * exact). */
static void compare(const char *what, const Case *c, const Config *k, void **slots, const Built *b, int role,
                    const double *want, const double *scale, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (!within(fabs(value(slots, b, role, i) - want[i]), scale ? scale[i] : 0, k->dt) && !bad++)
            first = i;
    }
    if (!CHECK(bad == 0))
        printf("  %s, %s: %s: %zu of %zu wrong, first [%zu] = %.17g, expected %.17g\n", c->name, config_name(k),
               what, bad, n, first, value(slots, b, role, first), want[first]);
}

/* <u, v>, u from output `role` of the step, v given. */
static long double dot(void **slots, const Built *b, int role, const double *v, size_t n) {
    long double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (long double)value(slots, b, role, i) * v[i];
    return s;
}

/* Two sides of a transpose's identity agree within ULPS of scale (the sum
 * of |terms| of all the products both sides add up). */
static void same_product(const char *what, const Case *c, const Config *k, long double lhs, long double rhs,
                         double scale) {
    if (!CHECK(within((double)fabsl(lhs - rhs), scale, k->dt)))
        printf("  %s, %s: %s: %.17Lg against %.17Lg\n", c->name, config_name(k), what, lhs, rhs);
}

/* Case c's step run on its first n samples: what it computes for them. */
static void run_case(const Case *c, const Data *t, const Config *k, const Built *b, NnrtStepFn fn, int64_t n) {
    int failed_before = failed;
    void **slots = slots_for(b);
    fill(slots, b, S_X, t->x, k->dt);
    fill(slots, b, S_DY, t->dy, k->dt);
    if (c->kind == CONV)
        fill(slots, b, S_K, t->k, k->dt);
    if (c->kind == MAXPOOL)
        fill(slots, b, S_E, t->e, k->dt);
    fill(slots, b, S_Y, NULL, k->dt);
    fill(slots, b, S_ADJ1, NULL, k->dt);
    if (c->kind != AVGPOOL)
        fill(slots, b, S_ADJ2, NULL, k->dt);
    fn(slots, n);

    const Ref *r = &t->ref;
    size_t nx = t->d.nx / (size_t)c->n * (size_t)n, ny = t->d.ny / (size_t)c->n * (size_t)n, nk = t->d.nk;
    compare("y against the reference", c, k, slots, b, S_Y, r->y, c->kind == MAXPOOL ? NULL : r->scale, ny);
    if (c->hand)
        compare("y against the hand-computed values", c, k, slots, b, S_Y, c->hand->y, NULL, ny);
    /* The adjoints: every term x k dy (or x dy / count) appears once on
     * each side, so the scale of all of them is sum_i scale(y_i) |dy_i|. */
    double scale = 0;
    for (size_t i = 0; i < ny; i++)
        scale += r->scale[i] * fabs(t->dy[i]);
    long double y_dy = dot(slots, b, S_Y, t->dy, ny);
    switch (c->kind) {
    case CONV:
        same_product("<conv2d(x, k), dy> = <x, conv2d_data(dy, k)>", c, k, y_dy, dot(slots, b, S_ADJ1, t->x, nx),
                     scale);
        same_product("<conv2d(x, k), dy> = <k, conv2d_filter(x, dy)>", c, k, y_dy,
                     dot(slots, b, S_ADJ2, t->k, nk), scale);
        break;
    case AVGPOOL:
        same_product("<avgpool(x), dy> = <x, avgpool_grad(dy)>", c, k, y_dy, dot(slots, b, S_ADJ1, t->x, nx),
                     scale);
        break;
    case MAXPOOL: {
        /* maxpool_grad element by element: the sums of a few dy's */
        double *grad_scale = calloc(nx + 1, sizeof *grad_scale);
        for (size_t i = 0; i < ny; i++)
            grad_scale[r->argmax[i]] += fabs(t->dy[i]);
        compare("maxpool_grad against the reference", c, k, slots, b, S_ADJ1, r->dx, grad_scale, nx);
        if (c->hand && c->hand->dx)
            compare("maxpool_grad against the hand-computed values", c, k, slots, b, S_ADJ1, c->hand->dx, NULL,
                    nx);
        free(grad_scale);
        double pick_scale = 0;
        for (size_t i = 0; i < ny; i++)
            pick_scale += fabs(t->e[r->argmax[i]] * t->dy[i]);
        same_product("<maxpool_pick(x, e), dy> = <e, maxpool_grad(x, dy)>", c, k,
                     dot(slots, b, S_ADJ2, t->dy, ny), dot(slots, b, S_ADJ1, t->e, nx), pick_scale);
        break;
    }
    }
    if (failed > failed_before)
        printf("  (%s: the step run on %lld of its %lld samples)\n", c->name, (long long)n, (long long)c->n);
    slots_free(b, slots);
}

/* random's numbers for the batch-8 graph at counter `counter`, run on n
 * samples, into u (key 3) and v (key 4), [n * 15] each. */
static void run_random(const Built *b, NnrtStepFn fn, double counter, int64_t n, double *u, double *v) {
    void **slots = slots_for(b);
    DType dt = b->g->dtype;
    fill(slots, b, S_X, NULL, dt);
    fill(slots, b, S_K, &counter, dt);
    fill(slots, b, S_Y, NULL, dt);
    fill(slots, b, S_ADJ1, NULL, dt);
    fn(slots, n);
    size_t per = (size_t)shape_elems(&b->g->slots[b->slot[S_Y]].shape) / (size_t)b->g->batch;
    for (size_t i = 0; i < (size_t)n * per; i++) {
        u[i] = value(slots, b, S_Y, i);
        v[i] = value(slots, b, S_ADJ1, i);
    }
    slots_free(b, slots);
}

enum { RAND_BATCH = 8, RAND_PER = 15, RAND_BIG = 100000 };

/* The numbers of the first configuration, which every other must repeat
 * bit for bit. */
static double first_u[RAND_BATCH * RAND_PER];
static bool have_first;

static void check_random(const Config *k, const Built *b, NnrtStepFn fn, const Built *big, NnrtStepFn big_fn) {
    enum { N = RAND_BATCH * RAND_PER };
    double u[N], v[N], u2[N], v2[N], w[N], w2[N];
    run_random(b, fn, 7, RAND_BATCH, u, v);
    /* Fewer samples: the same numbers for them. */
    for (int64_t n = 1; n < RAND_BATCH; n += 2) {
        run_random(b, fn, 7, n, u2, v2);
        size_t bytes = (size_t)n * RAND_PER * sizeof *u;
        if (!CHECK(!memcmp(u, u2, bytes) && !memcmp(v, v2, bytes)))
            printf("  %s: random on %lld samples differs from the first of 8\n", config_name(k), (long long)n);
    }
    /* Another counter, another key: other numbers, element by element. */
    run_random(b, fn, 8, RAND_BATCH, w, w2);
    int same_counter = 0, same_key = 0;
    for (int i = 0; i < N; i++) {
        same_counter += u[i] == w[i];
        same_key += u[i] == v[i];
    }
    if (!CHECK(same_counter == 0 && same_key == 0))
        printf("  %s: random: %d equal at counters 7 and 8, %d at keys 3 and 4\n", config_name(k), same_counter,
               same_key);
    if (!have_first) {
        memcpy(first_u, u, sizeof u);
        have_first = true;
    } else if (!CHECK(!memcmp(first_u, u, sizeof u))) {
        printf("  %s: random differs from the first configuration's\n", config_name(k));
    }
    /* 1e5 numbers: all in [0, 1), mean 0.5 within 0.005 (its standard
     * deviation is 1 / sqrt(12e5) = 0.0009). */
    double *x = malloc(RAND_BIG * sizeof *x), *y = malloc(RAND_BIG * sizeof *y);
    run_random(big, big_fn, 11, 1, x, y);
    double sum = 0;
    size_t outside = 0;
    for (int i = 0; i < RAND_BIG; i++) {
        sum += x[i];
        outside += !(x[i] >= 0 && x[i] < 1);
    }
    if (!CHECK(outside == 0 && fabs(sum / RAND_BIG - 0.5) <= 0.005))
        printf("  %s: random: mean %.5f, %zu outside [0, 1)\n", config_name(k), sum / RAND_BIG, outside);
    free(x);
    free(y);
}

/* Every case and random at one configuration, compiled by one JIT. */
static void run_config(const Config *k, const Target *t, const Data *data) {
    Arena *a = arena_new();
    enum { NFNS = NCASES + 2 };
    Graph *graphs[NFNS];
    Schedule *scheds[NFNS];
    const char *names[NFNS];
    Built built[NFNS];
    for (int i = 0; i < NFNS; i++) {
        built[i] = i < NCASES        ? build(a, &cases[i], k->dt, k->opt, t)
                   : i == NCASES     ? build_random(a, k->dt, k->opt, t, RAND_BATCH, (Shape){3, {RAND_BATCH, 5, 3}})
                                     : build_random(a, k->dt, k->opt, t, 1, (Shape){1, {RAND_BIG}});
        graphs[i] = built[i].g;
        scheds[i] = built[i].s;
        names[i] = arena_printf(a, "f%d", i);
    }
    /* Two modules, which the JIT compiles in parallel. */
    CgModule *mods[2] = {pipeline_codegen("window0", NFNS / 2, names, graphs, scheds),
                         pipeline_codegen("window1", NFNS - NFNS / 2, names + NFNS / 2, graphs + NFNS / 2,
                                          scheds + NFNS / 2)};
    char err[512];
    Jit *jit = jit_compile_modules(mods, 2, t, err, sizeof err); /* takes the modules */
    NnrtStepFn fns[NFNS];
    for (int i = 0; i < NFNS; i++)
        if (!CHECK(jit && (fns[i] = (NnrtStepFn)jit_lookup(jit, names[i], err, sizeof err)))) {
            printf("  %s: %s\n", config_name(k), err);
            jit_free(jit);
            arena_free(a);
            return;
        }
    /* a batch of 3 also on 2 samples: the step serves every batch size */
    for (int i = 0; i < NCASES; i++)
        for (int64_t n = cases[i].n; n >= (cases[i].n > 1 ? cases[i].n - 1 : 1); n--)
            run_case(&cases[i], &data[i], k, &built[i], fns[i], n);
    check_random(k, &built[NCASES], fns[NCASES], &built[NCASES + 1], fns[NCASES + 1]);
    jit_free(jit);
    arena_free(a);
}

int main(void) {
    Data data[NCASES];
    for (int i = 0; i < NCASES; i++)
        data[i] = data_for(&cases[i]);
    Target *t = target_host(); /* ctest narrows it to AVX2's and SSE's too */
    for (int dt = 0; dt < 2; dt++)
        for (int opt = 0; opt <= 2; opt += 2)
            run_config(&(Config){dt ? DT_F32 : DT_F64, opt, t->vector_bits}, t, data);
    target_free(t);
    printf("worst error: %.2f ulps of the sum of |terms| (tolerance %d)\n", worst_ulps, ULPS);
    for (int i = 0; i < NCASES; i++) {
        free(data[i].x);
        free(data[i].k);
        free(data[i].dy);
        free(data[i].e);
        ref_free(&data[i].ref);
    }
    return check_summary();
}
