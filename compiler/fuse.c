/* fuse.c — the fuse/schedule stage: where each IR node's value lives and
 * which loop computes it, decided once before code generation.
 *
 * At -O2:
 *  - an elementwise node with one use, by an elementwise node of the same
 *    shape, is inlined: computed inside its user's loop, never stored (so
 *    v' = m v - lr g is one loop, not three passes over the weights);
 *  - a transpose read only by matmul kernels is folded into their strides
 *    (or, as B, into their packing);
 *  - a matmul's one elementwise user (a bias add, the SGD update of a weight
 *    gradient) is its epilogue: computed on the kernel's accumulators and
 *    stored instead of the product, which never reaches memory;
 *  - a transpose that is a matmul's B, and a sum of B's rows (the bias
 *    gradient beside X^T dY), are computed as the kernel packs B;
 *  - a result is written straight into its output slot (the parameter, the
 *    optimizer state, the loss) when nothing computed later still reads the
 *    slot's old value, so there is no copy at the end of the step;
 *  - everything else gets an arena buffer;
 *  - adjacent kernels over the batch's rows become one loop (fuse_rows.c).
 * At -O0 every node has its own loop and buffer, and results are copied to
 * their slots at the end: the reference.
 * The arena offsets are assigned here too (no reuse yet: buffers are few).
 */
#include "nnc.h"

#include <string.h>


int *schedule_count_uses(Arena *a, const Graph *g, NodeId **single_user) {
    int *uses = arena_array(a, (size_t)g->nnodes + 1, sizeof *uses);
    NodeId *user = arena_array(a, (size_t)g->nnodes + 1, sizeof *user);
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++) {
            uses[g->nodes[i].in[k]] += k == 0 || g->nodes[i].in[1] != g->nodes[i].in[0];
            user[g->nodes[i].in[k]] = i;
        }
    if (single_user)
        *single_user = user;
    return uses;
}

static int output_slot(const Graph *g, NodeId n) {
    for (int o = 0; o < g->noutputs; o++)
        if (g->outputs[o].node == n)
            return g->outputs[o].slot;
    return -1;
}

static int outputs_of(const Graph *g, NodeId n) {
    int k = 0;
    for (int o = 0; o < g->noutputs; o++)
        k += g->outputs[o].node == n;
    return k;
}

/* Can node x (u's expression tree: u and the nodes inlined into it) be
 * computed on the value of m (in registers) in the epilogue of the matmul
 * `when`? Only vector ops, and every value it loads must exist when that
 * kernel runs. */
static bool epilogue_tree_ok(const Graph *g, const Schedule *s, NodeId x, NodeId m, NodeId when, bool top) {
    if (x == m)
        return true;
    if (!top && s->place[x] == PLACE_NONE) /* the epilogue loads vectors of floats, not of bytes */
        return g->nodes[x].op == OP_CONST || !g->slots[g->nodes[x].slot].u8;
    if (!top && s->place[x] != PLACE_INLINE)
        return s->root[x] < when;
    if (!op_info[g->nodes[x].op].epilogue)
        return false;
    for (int k = 0; k < op_info[g->nodes[x].op].arity; k++)
        if (!epilogue_tree_ok(g, s, g->nodes[x].in[k], m, when, false))
            return false;
    return true;
}

/* May an elementwise value of shape s, read only by u, be computed inside
 * u's loop, never stored? If u is elementwise over the same shape, or
 * accumulates it along an axis (sum, max, min): batch normalization's
 * variance, the sum of (x - mean)^2, wrote and read back the squares, two
 * passes over conv1's activations (13 MB a step at batch 128). */
bool schedule_inlines_into(const Graph *g, NodeId u, const Shape *s) {
    const OpInfo *o = &op_info[g->nodes[u].op];
    if (o->elem)
        return shape_eq(s, &g->nodes[u].shape);
    return o->cls == CLASS_REDUCE && o->axis;
}

static void set_root(const Graph *g, Schedule *s, NodeId x, NodeId root) {
    s->root[x] = root;
    for (int k = 0; k < op_info[g->nodes[x].op].arity; k++)
        if (s->place[g->nodes[x].in[k]] == PLACE_INLINE)
            set_root(g, s, g->nodes[x].in[k], root);
}

/* May n write its value into slot s, the output of `out` (n, or a reshape
 * of it), while the step runs? Every read of the slot's old value must come
 * before: from a loop emitted earlier, or from n's own loop at the same
 * index (an elementwise reader there). */
static bool in_place_ok(const Graph *g, const Schedule *s, NodeId n, NodeId out, int slot) {
    /* (a col2im in a product's epilogue, which adds its tiles into it: a
     * convolution's data gradient) */
    bool scattered = g->nodes[n].op == OP_COL2IM && s->root[n] != n;
    if (!op_info[g->nodes[n].op].elem && op_info[g->nodes[n].op].cls != CLASS_MATMUL &&
        op_info[g->nodes[n].op].cls != CLASS_REDUCE && !scattered)
        return false;
    for (int o = 0; o < g->noutputs; o++)
        if (g->outputs[o].slot == slot && g->outputs[o].node != out)
            return false;
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *x = &g->nodes[i];
        for (int k = 0; k < op_info[x->op].arity; k++) {
            const IrNode *leaf = &g->nodes[x->in[k]];
            if (!ir_is_slot_leaf(leaf) || leaf->slot != slot)
                continue;
            NodeId when = s->root[i], at = s->root[n];
            if (when > at || (when == at && !op_info[x->op].elem))
                return false;
        }
    }
    return true;
}

/* Is x read by a loop at or before node `when`'s (through reshapes, which
 * are its memory)? */
static bool read_by(const Graph *g, const Schedule *s, NodeId x, NodeId when) {
    for (int i = x + 1; i < g->nnodes; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++)
            if (g->nodes[i].in[k] == x &&
                (s->place[i] == PLACE_ALIAS ? read_by(g, s, i, when) : s->root[i] <= when))
                return true;
    return false;
}

/* A sum r over the rows of a matmul's B operand (the bias gradient beside
 * the weight gradient X^T dY) is taken by the first such kernel that packs
 * B, if that kernel runs before anything reads r. */
static void schedule_colsum(const Graph *g, Schedule *s, NodeId r) {
    const IrNode *n = &g->nodes[r];
    if (n->op != OP_SUM || n->axis != 0 || n->shape.rank != 2 || s->place[r] != PLACE_ARENA || s->root[r] != r ||
        outputs_of(g, r))
        return;
    NodeId m = r + 1;
    while (m < g->nnodes && !(g->nodes[m].op == OP_MATMUL && g->nodes[m].in[1] == n->in[0]))
        m++;
    /* Not where the kernel works by parts of the rows, each of which packs
     * B: where it gathers A or scatters its result. */
    if (m == g->nnodes || !cg_matmul_can_pack(g, m, s->target) || s->colsum[m] >= 0 ||
        cg_matmul_ksplit(g, m) ||
        (s->place[g->nodes[m].in[0]] == PLACE_FOLDED && g->nodes[g->nodes[m].in[0]].op == OP_IM2COL) ||
        (s->epilogue[m] >= 0 && g->nodes[s->epilogue[m]].op == OP_COL2IM))
        return;
    if (read_by(g, s, r, m))
        return;
    s->colsum[m] = r;
    s->root[r] = m;
}

/* Is node m maxpool_grad(x, dy) of windows that do not overlap, whose one
 * user is mul(m, step(x)) (relu's gradient where x = relu(z): relu then
 * maxpool)? Then cg_window's kernel computes the product as it scatters:
 * each position gets at most one dy, so dy step(x) there is the product's
 * element, bit for bit, and neither m nor a pass over it exists. */
static bool relu_of_pool(const Graph *g, const Schedule *s, NodeId m, const int *uses, const NodeId *user) {
    const IrNode *n = &g->nodes[m];
    if (n->op != OP_MAXPOOL_GRAD || n->win.sh < n->win.kh || n->win.sw < n->win.kw || uses[m] != 1 ||
        outputs_of(g, m))
        return false;
    const IrNode *u = &g->nodes[user[m]];
    if (u->op != OP_MUL || s->place[user[m]] != PLACE_ARENA || !shape_eq(&u->shape, &n->shape))
        return false;
    NodeId other = u->in[0] == m ? u->in[1] : u->in[0];
    const IrNode *st = &g->nodes[other];
    return other != m && st->op == OP_STEP && st->in[0] == n->in[0] && s->place[other] == PLACE_INLINE;
}

/* A sum of maxpool_grad m's stored value x over every axis but the
 * channels (a convolution's bias gradient, which autodiff writes as sums
 * over one broadcast axis at a time: [n, h, w, C] -> [1, h, w, C] -> [1, 1,
 * w, C] -> [1, 1, 1, C]) is taken by m's kernel as it computes x: each
 * sample's sum into a partial of its own, then the partials added in
 * sample order, the same on any number of threads. Streaming x from memory
 * again for the first sum was 3.4% of an epoch of cnn.nn. */
static void schedule_sample_sums(const Graph *g, Schedule *s, NodeId m, const int *uses, const NodeId *user) {
    NodeId x = schedule_stored(s, m), r = -1, chain[NNC_MAX_RANK];
    int rank = g->nodes[x].shape.rank, k = 0;
    for (NodeId i = x + 1; i < g->nnodes && r < 0; i++)
        if (g->nodes[i].op == OP_SUM && g->nodes[i].in[0] == x && g->nodes[i].axis == 0)
            r = i;
    while (r >= 0 && s->place[r] == PLACE_ARENA && s->root[r] == r && !outputs_of(g, r)) {
        chain[k++] = r;
        if (k == rank - 1) { /* r is [1, ..., 1, C] */
            for (int j = 0; j < k - 1; j++) { /* computed by no loop of their own */
                s->place[chain[j]] = PLACE_INLINE;
                s->root[chain[j]] = m;
            }
            s->colsum[m] = r;
            s->root[r] = m;
            return;
        }
        r = uses[r] == 1 && g->nodes[user[r]].op == OP_SUM && g->nodes[user[r]].axis == k ? user[r] : -1;
    }
}

/* The offset of n elements of dt bytes added at the end of the arena, on a
 * cache line of their own. */
static size_t arena_reserve(Schedule *s, int64_t n, size_t dt) {
    size_t bytes, end, at = s->arena_bytes;
    /* n is bounded by sema, so only the running total can overflow. */
    if (!size_mul((size_t)n, dt, &bytes) || !size_add(at, bytes, &end) || !size_add(end, 63, &end))
        die("schedule: arena size overflows");
    s->arena_bytes = end & ~(size_t)63;
    return at;
}

/* Each all-reduce starts as soon as its gradient is complete: moved in
 * s->order to just after the loop that computes its operand (and the row
 * loop that loop is in), so that it runs while the backward pass goes on
 * (which makes the last layer's gradients first); the kernels that read
 * its result wait for it (schedule_waits). It reads nothing else, and
 * writes only its own buffer. */
static void start_early(const Graph *g, Schedule *s) {
    for (int k = 0; k < g->nnodes; k++) {
        NodeId x = s->order[k];
        if (g->nodes[x].op != OP_ALLREDUCE)
            continue;
        NodeId src = schedule_memory(g, s, g->nodes[x].in[0]);
        int at = 0;
        if (s->place[src] != PLACE_NONE) {
            while (s->order[at] != s->root[src])
                at++;
            NodeId loop = s->rows[s->order[at]];
            at++;
            while (loop >= 0 && at < k && (s->rows[s->order[at]] == loop || !schedule_has_loop(s, s->order[at])))
                at++;
        }
        memmove(s->order + at + 1, s->order + at, (size_t)(k - at) * sizeof *s->order);
        s->order[at] = x;
    }
}

/* The kernels that read an all-reduce's result (through reshapes, which
 * are its memory): the collective runs while the kernels before them do. */
static void schedule_waits(Arena *a, const Graph *g, Schedule *s) {
    bool *reduced = arena_array(a, (size_t)g->nnodes + 1, sizeof *reduced);
    s->waits = arena_array(a, (size_t)g->nnodes + 1, sizeof *s->waits);
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        for (int k = 0; k < op_info[n->op].arity; k++)
            if (reduced[n->in[k]]) {
                if (s->place[i] == PLACE_ALIAS)
                    reduced[i] = true;
                else
                    s->waits[s->root[i]] = true;
            }
        reduced[i] |= n->op == OP_ALLREDUCE;
    }
    /* An element loop waits before its first kernel, which emits it. */
    for (int i = 0; i < g->nnodes; i++)
        if (s->waits[i] && s->elems[i] >= 0)
            s->waits[s->elems[i]] = true;
}

/* Consecutive all-reduces (in `order`) go in one bucket of up to
 * t->bucket bytes, as DDP's: one MPI call for the biases and small layers,
 * started by the last one's kernel. A bucket ends before a kernel that
 * waits (for every all-reduce started) and before a gradient that would
 * take it past the cap; a larger gradient is a bucket of its own. Its
 * results are reserved together in the arena, in order, so that one range
 * holds them (and the padding between them, which nothing else uses). */
static void schedule_buckets(Arena *a, const Graph *g, Schedule *s, size_t dt) {
    s->bucket = arena_array(a, (size_t)g->nnodes + 1, sizeof *s->bucket);
    s->buckets = arena_array(a, (size_t)g->nnodes + 1, sizeof *s->buckets);
    struct Bucket *open = NULL;
    for (int k = 0; k < g->nnodes; k++) {
        NodeId x = s->order[k];
        s->bucket[x] = -1;
        if (s->waits[x])
            open = NULL;
        if (g->nodes[x].op != OP_ALLREDUCE)
            continue;
        if (s->place[x] != PLACE_ARENA)
            die("schedule: an all-reduce's result is not in the arena");
        int64_t n = shape_elems(&g->nodes[x].shape);
        size_t bytes = (size_t)n * dt; /* n bounded by sema; the bucket by the arena (arena_reserve) */
        if (open && open->bytes + bytes > s->target->bucket)
            open = NULL;
        if (!open)
            open = &s->buckets[s->nbuckets++];
        s->offset[x] = arena_reserve(s, n, dt);
        if (!open->members++)
            open->first = x;
        open->last = x;
        open->bytes = s->offset[x] + bytes - s->offset[open->first];
        s->bucket[x] = (int)(open - s->buckets);
    }
}

Schedule *schedule(Arena *a, const Graph *g, int opt, const Target *t) {
    Schedule *s = arena_alloc(a, sizeof *s);
    size_t nn = (size_t)g->nnodes + 1;
    s->opt = opt;
    s->target = t;
    s->place = arena_array(a, nn, sizeof *s->place);
    s->slot = arena_array(a, nn, sizeof *s->slot);
    s->offset = arena_array(a, nn, sizeof *s->offset);
    s->root = arena_array(a, nn, sizeof *s->root);
    s->epilogue = arena_array(a, nn, sizeof *s->epilogue);
    s->epilogue2 = arena_array(a, nn, sizeof *s->epilogue2);
    s->colsum = arena_array(a, nn, sizeof *s->colsum);
    s->partials = arena_array(a, nn, sizeof *s->partials);
    NodeId *user;
    int *uses = schedule_count_uses(a, g, &user);

    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        Placement p = PLACE_ARENA;
        if (op_info[n->op].cls == CLASS_LEAF)
            p = PLACE_NONE;
        else if (n->op == OP_RESHAPE)
            p = PLACE_ALIAS;
        else if (opt >= 2 && (n->op == OP_TRANSPOSE || n->op == OP_IM2COL) && cg_matmul_folds(g, i, t))
            p = PLACE_FOLDED;
        else if (opt >= 2 && op_info[n->op].elem && uses[i] == 1 && outputs_of(g, i) == 0 &&
                 schedule_inlines_into(g, user[i], &n->shape))
            p = PLACE_INLINE;
        s->place[i] = p;
        s->slot[i] = -1;
    }
    /* The loop that computes each node: its own, or its inlining user's. Users
     * come later, so a backward sweep sees every user's root first. */
    for (int i = g->nnodes - 1; i >= 0; i--)
        s->root[i] = s->place[i] == PLACE_INLINE ? s->root[user[i]] : i;
    for (int i = 0; i < g->nnodes; i++) {
        s->epilogue[i] = s->epilogue2[i] = -1;
        const IrNode *n = &g->nodes[i];
        if (opt < 2 || !cg_matmul_tiled(g, i) || uses[i] != 1 || outputs_of(g, i) || cg_matmul_ksplit(g, i))
            continue;
        if (cg_matmul_scatters(g, i, user[i])) { /* col2im of the product, added up in its epilogue */
            s->epilogue[i] = user[i];
            s->place[i] = PLACE_INLINE;
            s->root[user[i]] = i;
            continue;
        }
        NodeId u = s->root[user[i]]; /* the loop the product is consumed in */
        if (s->place[u] != PLACE_ARENA || !shape_eq(&g->nodes[u].shape, &n->shape) ||
            !epilogue_tree_ok(g, s, u, i, i, true))
            continue;
        s->epilogue[i] = u;
        s->place[i] = PLACE_INLINE; /* the product lives in registers only */
        set_root(g, s, u, i);
        s->root[i] = i;
        /* The epilogue's one user too, if it is elementwise on it: the
         * parameter update after a velocity (W + v' after v' = m v - lr g),
         * which would otherwise be another pass over the weights. */
        NodeId u2 = uses[u] == 1 ? s->root[user[u]] : -1;
        if (u2 >= 0 && s->place[u2] == PLACE_ARENA && shape_eq(&g->nodes[u2].shape, &n->shape) &&
            epilogue_tree_ok(g, s, u2, u, i, true)) {
            s->epilogue2[i] = u2;
            set_root(g, s, u2, i);
        }
    }
    for (int i = 0; opt >= 2 && i < g->nnodes; i++)
        if (relu_of_pool(g, s, i, uses, user)) { /* maxpool_grad(x, dy) * step(x), in one pass */
            s->epilogue[i] = user[i];
            s->place[i] = PLACE_INLINE;
            set_root(g, s, user[i], i);
            s->root[i] = i;
        }
    for (int i = 0; i < g->nnodes; i++)
        s->colsum[i] = -1;
    for (int i = 0; opt >= 2 && i < g->nnodes; i++)
        if (g->nodes[i].op == OP_MAXPOOL_GRAD && s->root[i] == i)
            schedule_sample_sums(g, s, i, uses, user);
    for (int r = 0; opt >= 2 && r < g->nnodes; r++)
        schedule_colsum(g, s, r);
    for (int i = 0; i < g->nnodes; i++) {
        /* A result that is a reshape (a convolution's product, [N OH OW, F]
         * as [N, OH, OW, F]) has its operand's memory: that is written
         * into the slot, not copied there after the step. */
        int slot = output_slot(g, i);
        NodeId v = i;
        while (s->place[v] == PLACE_ALIAS && uses[g->nodes[v].in[0]] == 1 && !outputs_of(g, g->nodes[v].in[0]))
            v = g->nodes[v].in[0];
        if (opt >= 2 && s->place[v] == PLACE_ARENA && slot >= 0 && outputs_of(g, i) == 1 && in_place_ok(g, s, v, i, slot)) {
            s->place[v] = PLACE_SLOT;
            s->slot[v] = slot;
        }
    }
    schedule_rows(a, g, s);
    start_early(g, s);
    schedule_elems(a, g, s);
    schedule_waits(a, g, s);
    schedule_samples(a, g, s);
    size_t dt = dtype_bytes(g->dtype);
    bool checks = false;
    for (int i = 0; i < g->nnodes; i++)
        checks |= schedule_checks(g, s, i);
    for (int i = 0; i < g->nnodes; i++) {
        s->offset[i] = s->partials[i] = SIZE_MAX;
        /* A sample loop's local value keeps its arena buffer, never touched
         * (so never resident): the offsets after it stay those of a step
         * where it is not local, and the evaluation step's kernels after
         * its forward loop (where conv1's activations are local) are the
         * training step's, compiled once. All-reduces: in their buckets
         * (schedule_buckets). */
        if (s->place[i] == PLACE_ARENA && g->nodes[i].op != OP_ALLREDUCE)
            s->offset[i] = arena_reserve(s, shape_elems(&g->nodes[i].shape), dt);
        int64_t units = opt >= 2 ? schedule_ksplit_units(g, s, i) : 0;
        if (units) /* bounded by cg_matmul_ksplit, and at most the batch in a sample loop */
            s->partials[i] = arena_reserve(s, units * shape_elems(&g->nodes[i].shape), dt);
        if (s->colsum[i] >= 0 && op_info[g->nodes[i].op].cls == CLASS_WINDOW) /* a sum per sample and channel */
            s->partials[i] = arena_reserve(s, g->nodes[i].shape.dim[0] * g->nodes[i].shape.dim[3], dt);
    }
    schedule_buckets(a, g, s, dt);
    s->finite_flag = SIZE_MAX;
    if (checks) {
        s->finite_flag = s->arena_bytes;
        if (!size_add(s->arena_bytes, 64, &s->arena_bytes))
            die("schedule: arena size overflows");
    }
    return s;
}

/* A weight matrix updated in the weight gradient's epilogue is checked
 * there, in registers: a scan after the step would read it all again from
 * memory (784-2048-10: 11% of a step on one thread, W and its velocity). */
bool schedule_checks(const Graph *g, const Schedule *s, NodeId x) {
    if (s->place[x] != PLACE_SLOT)
        return false;
    SlotKind k = g->slots[s->slot[x]].kind;
    NodeId m = s->root[x];
    return (k == SLOT_PARAM || k == SLOT_STATE) && (s->epilogue[m] == x || s->epilogue2[m] == x);
}

/* --emit=kernels: one line per loop of the step, with the nodes it computes. */
void schedule_print(FILE *out, const Graph *g, const Schedule *s) {
    char sb[96];
    int loops = 0;
    fprintf(out, "schedule -O%d: arena %zu bytes\n", s->opt, s->arena_bytes);
    for (int k = 0; k < g->nnodes; k++) {
        NodeId i = s->order[k];
        if (s->rows[i] == i) {
            int members = 0;
            for (int j = 0; j < g->nnodes; j++)
                members += s->rows[j] == i;
            fprintf(out, "rows: kernels %d-%d in one loop over the batch's rows\n", loops, loops + members - 1);
        }
        if (s->samples[i] == i) {
            int members = 0;
            for (int j = 0; j < g->nnodes; j++)
                members += s->samples[j] == i;
            fprintf(out, "samples: kernels %d-%d in one loop over the batch, %lld samples at a time\n", loops,
                    loops + members - 1, (long long)s->group[i]);
        }
        if (s->elems[i] == i) {
            int members = 0;
            for (int j = 0; j < g->nnodes; j++)
                members += s->elems[j] == i;
            fprintf(out, "elements: kernels %d-%d in one loop over %s\n", loops, loops + members - 1,
                    shape_str(&g->nodes[i].shape, sb, sizeof sb));
        }
        Placement p = s->place[i];
        if (p != PLACE_ARENA && p != PLACE_SLOT)
            continue;
        const IrNode *n = &g->nodes[i];
        NodeId host = s->root[i]; /* i, or the matmul whose epilogue it is */
        if (s->colsum[host] == i)
            continue; /* printed with its matmul's first line */
        /* A matmul's second epilogue is a second store of the same kernel:
         * the nodes after the first epilogue's. */
        bool second = host != i && s->epilogue2[host] == i;
        NodeId from = second ? s->epilogue[host] + 1 : 0;
        if (second)
            fprintf(out, "    and %s -> ", shape_str(&n->shape, sb, sizeof sb));
        else
            fprintf(out, "kernel %d: %s%s -> ", loops++,
                    op_info[g->nodes[host].op].cls == CLASS_MATMUL && s->opt >= 2 ? "matmul-tiled " : "",
                    shape_str(&n->shape, sb, sizeof sb));
        if (p == PLACE_SLOT)
            fprintf(out, "slot %s%s", g->slots[s->slot[i]].name, layout_in_panels(g, s, i) ? " in panels" : "");
        else if (s->local[i] != SIZE_MAX)
            fprintf(out, "group+%zu", s->local[i]);
        else
            fprintf(out, "arena+%zu%s", s->offset[i], layout_in_panels(g, s, i) ? " in panels" : "");
        fprintf(out, " :");
        for (int j = from; j <= i; j++)
            if (s->root[j] == host && s->colsum[host] != j)
                fprintf(out, " %%%d=%s", j, op_info[g->nodes[j].op].name);
        for (int k = 0; k < 2 && !second && g->nodes[host].op == OP_MATMUL; k++) /* and a patch matrix under a transpose */
            for (NodeId x = g->nodes[host].in[k]; s->place[x] == PLACE_FOLDED; x = g->nodes[x].in[0])
                fprintf(out, " (%%%d=%s folded)", x, op_info[g->nodes[x].op].name);
        if (n->op == OP_ALLREDUCE) {
            const struct Bucket *b = &s->buckets[s->bucket[i]];
            fprintf(out, " [bucket %d", s->bucket[i]);
            if (b->last == i)
                fprintf(out, ": %d gradient%s, %zu bytes, all-reduced from here", b->members,
                        b->members == 1 ? "" : "s", b->bytes);
            fputc(']', out);
        }
        if (!second && s->waits[host])
            fprintf(out, " [after the all-reduces]");
        if (!second && s->opt >= 2 && cg_matmul_tiled(g, host)) {
            int64_t rows = cg_matmul_block_rows(g, s, host), k = g->nodes[g->nodes[host].in[1]].shape.dim[0];
            int64_t units = schedule_ksplit_units(g, s, host);
            if (units)
                fprintf(out, " [K split in %lld]", (long long)units);
            if (layout_in_panels(g, s, g->nodes[host].in[1]))
                fprintf(out, " [B kept in panels]");
            else if (!rows)
                fprintf(out, " [B in place]");
            else if (rows == k)
                fprintf(out, " [B packed]");
            else
                fprintf(out, " [B packed in blocks of %lld rows]", (long long)rows);
        }
        fputc('\n', out);
        NodeId r = second ? -1 : s->colsum[host];
        if (r >= 0 && g->nodes[host].op == OP_MATMUL)
            fprintf(out, "    and %s -> arena+%zu : %%%d=sum while packing %%%d\n",
                    shape_str(&g->nodes[r].shape, sb, sizeof sb), s->offset[r], r, g->nodes[r].in[0]);
        else if (r >= 0)
            fprintf(out, "    and %s -> arena+%zu : %%%d=sum of %%%d over all but its channels, by sample\n",
                    shape_str(&g->nodes[r].shape, sb, sizeof sb), s->offset[r], r, i);
    }
    for (int o = 0; o < g->noutputs; o++) {
        NodeId n = schedule_memory(g, s, g->outputs[o].node);
        bool direct = s->place[n] == PLACE_SLOT || (ir_is_slot_leaf(&g->nodes[n]) && g->nodes[n].slot == g->outputs[o].slot);
        if (!direct)
            fprintf(out, "copy: %%%d -> slot %s\n", n, g->slots[g->outputs[o].slot].name);
    }
}
