/* fuse_samples.c — the schedule's sample loops: adjacent kernels that each
 * work sample by sample become one loop over groups of samples.
 *
 * A convolutional network's layers each pass over the whole batch: conv1's
 * product writes its activations (11 MB for cnn.nn at batch 128), then its
 * maxpool reads them back; in the backward pass the maxpool gradient writes
 * the activation gradient (11 MB) that the filter gradient then reads. Far
 * beyond the cores' caches, each such pass ran at the speed of memory: the
 * same kernels took about half the time per sample at batch 16.
 *
 * Kernels that compute each sample's result from that sample's inputs only
 * (a window op; a product whose rows are the samples' patches, gathered
 * from the image or scattered back into one; a filter gradient, whose long
 * sum over the samples' rows is split by ranges of samples) can instead
 * run a group of G samples at a time, one kernel after the other, so a
 * group's intermediate values are still in the core's cache when the next
 * kernel reads them. The loop over the groups is what the thread pool
 * splits (codegen.c's sample loop): each group is computed as it would be
 * by one thread, so the values do not depend on the split.
 *
 * A value only the loop's own kernels read (conv1's activation gradient)
 * does not even need memory of the whole batch's size: it lives in a buffer
 * of one group on the stack of the thread running the group, reused group
 * after group, so it is never written back to memory; at most
 * SAMPLES_BYTES, which bounds the stack the loop takes.
 *
 * A kernel joins the loop when it reads, of the values the loop's kernels
 * compute, only their per-sample results (not a filter gradient's sum, nor
 * a bias gradient summed over the samples, which are complete only after
 * the loop), writes no slot and waits for no all-reduce. G is chosen so
 * that a group's results fit SAMPLES_BYTES, and so that a gathering
 * product's patches fit its buffer (cg_matmul.c's A_PART_BYTES).
 */
#include "nnc.h"

#include <string.h>

/* About half of the L2 cache of a core here (2 MiB): the other half holds
 * what the group reads from earlier kernels and the weights. */
#define SAMPLES_BYTES (1024 * 1024)

NodeId schedule_stored(const Schedule *s, NodeId k) {
    return s->epilogue2[k] >= 0 ? s->epilogue2[k] : s->epilogue[k] >= 0 ? s->epilogue[k] : k;
}

/* Rows of x per sample, if its leading axis is the batch's samples (each
 * a run of equal rows), else 0. */
static int64_t rows_per_sample(const Graph *g, NodeId x) {
    int64_t d = g->nodes[x].shape.dim[0];
    if (g->batch <= 0 || !(ir_batch_axes(g, x) & 1) || d % g->batch)
        return 0;
    return d / g->batch;
}

/* Can kernel k run on any range of samples (see the top)? Its rows per
 * sample: of the image a window op walks, or of a product's rows (its
 * long sum's, for a K split); 0 if not. */
static int64_t sample_kernel(const Graph *g, const Schedule *s, NodeId k) {
    const IrNode *n = &g->nodes[k];
    if (!schedule_has_loop(s, k) || s->waits[k] || s->place[schedule_stored(s, k)] != PLACE_ARENA)
        return 0;
    if (op_info[n->op].cls == CLASS_WINDOW && !op_info[n->op].gemm)
        return rows_per_sample(g, n->op == OP_AVGPOOL_GRAD || n->op == OP_COL2IM ? k : n->in[0]) == 1; /* units: its images */
    if (n->op != OP_MATMUL || !cg_matmul_tiled(g, k))
        return 0;
    NodeId a = n->in[0];
    if (cg_matmul_ksplit(g, k))
        return rows_per_sample(g, g->nodes[a].in[0]); /* A = X^T, K = X's rows */
    bool gathers = s->place[a] == PLACE_FOLDED && g->nodes[a].op == OP_IM2COL;
    bool scatters = s->epilogue[k] >= 0 && g->nodes[s->epilogue[k]].op == OP_COL2IM;
    return gathers || scatters ? rows_per_sample(g, k) : 0;
}

/* x with the aliases and folded nodes the kernels see through removed. */
static NodeId source(const Graph *g, const Schedule *s, NodeId x) {
    while (s->place[x] == PLACE_ALIAS || s->place[x] == PLACE_FOLDED)
        x = g->nodes[x].in[0];
    return x;
}

/* Does kernel k read, of what the loop headed by `head` computes, only
 * per-sample results? */
static bool reads_ok(const Graph *g, const Schedule *s, NodeId head, NodeId k) {
    for (NodeId j = 0; j < g->nnodes; j++) {
        if (s->root[j] != k)
            continue;
        for (int a = 0; a < op_info[g->nodes[j].op].arity; a++) {
            NodeId x = source(g, s, g->nodes[j].in[a]), r = s->root[x];
            if (s->samples[r] == head && r != k && (x != schedule_stored(s, r) || cg_matmul_ksplit(g, r)))
                return false;
        }
    }
    return true;
}

/* Bytes of the values kernel k stores per sample (none for a K split's
 * sum over them). */
static int64_t sample_bytes(const Graph *g, const Schedule *s, NodeId k) {
    NodeId x = schedule_stored(s, k);
    return shape_elems(&g->nodes[x].shape) / g->batch * (int64_t)dtype_bytes(g->dtype);
}

/* The most samples a group may have for kernel k: its patches must fit a
 * part of a gathering product. */
static int64_t group_cap(const Graph *g, const Schedule *s, NodeId k, int64_t rows) {
    NodeId a = g->nodes[k].in[0];
    if (g->nodes[k].op != OP_MATMUL || cg_matmul_ksplit(g, k) || s->place[a] != PLACE_FOLDED)
        return g->batch;
    return cg_matmul_part_bytes() / (rows * g->nodes[a].shape.dim[1] * (int64_t)dtype_bytes(g->dtype));
}

/* Is x (or an alias of it) an output of the step? */
static bool is_output(const Graph *g, const Schedule *s, NodeId x) {
    for (int o = 0; o < g->noutputs; o++)
        if (schedule_memory(g, s, g->outputs[o].node) == x)
            return true;
    return false;
}

/* Is every reader of x (through aliases and folded nodes) a kernel of the
 * loop headed by `head`? */
static bool read_in_loop(const Graph *g, const Schedule *s, NodeId head, NodeId x) {
    for (NodeId j = x + 1; j < g->nnodes; j++)
        for (int a = 0; a < op_info[g->nodes[j].op].arity; a++) {
            if (g->nodes[j].in[a] != x)
                continue;
            bool through = s->place[j] == PLACE_ALIAS || s->place[j] == PLACE_FOLDED;
            if (through ? !read_in_loop(g, s, head, j) : s->samples[s->root[j]] != head)
                return false;
        }
    return true;
}

/* The values of the loop headed by `head` that only its own kernels read
 * live in a buffer of one group's samples, on the stack of the thread that
 * runs the group (codegen.c's sample loop), reused by each of its groups:
 * they are never written back to memory (conv1's activation gradient: 11
 * MB a step at batch 128). */
static void schedule_locals(const Graph *g, Schedule *s, NodeId head) {
    size_t at = 0;
    for (NodeId k = 0; k < g->nnodes; k++) {
        NodeId x = schedule_stored(s, k);
        if (s->samples[k] != head || cg_matmul_ksplit(g, k) || is_output(g, s, x) || !read_in_loop(g, s, head, x))
            continue;
        s->local[x] = at;
        at += ((size_t)(sample_bytes(g, s, k) * s->group[head]) + 63) & ~(size_t)63;
    }
    s->group_bytes[head] = at;
}

/* Data-parallel training: the all-reduces start_early put among the loop's
 * kernels, order[from, to), move after them, in the same order. A gradient
 * a kernel of the loop computes (a filter gradient, a bias gradient summed
 * by sample) is complete only once every group is done; the others just
 * start a little later. */
static void reduce_after(Arena *a, const Graph *g, Schedule *s, int from, int to) {
    NodeId *moved = arena_array(a, (size_t)(to - from), sizeof *moved);
    int n = 0, w = from;
    for (int k = from; k < to; k++) {
        NodeId x = s->order[k];
        if (g->nodes[x].op == OP_ALLREDUCE)
            moved[n++] = x;
        else
            s->order[w++] = x;
    }
    memcpy(s->order + w, moved, (size_t)n * sizeof *moved);
}

void schedule_samples(Arena *a, const Graph *g, Schedule *s) {
    size_t nn = (size_t)g->nnodes + 1;
    s->samples = arena_array(a, nn, sizeof *s->samples);
    s->group = arena_array(a, nn, sizeof *s->group);
    s->group_bytes = arena_array(a, nn, sizeof *s->group_bytes);
    s->local = arena_array(a, nn, sizeof *s->local);
    for (int i = 0; i < g->nnodes; i++) {
        s->samples[i] = -1;
        s->local[i] = SIZE_MAX;
    }
    for (int k = 0; s->opt >= 2 && k < g->nnodes;) {
        int at = k;
        NodeId head = s->order[k++];
        int64_t rows = sample_kernel(g, s, head);
        if (!rows || s->rows[head] >= 0 || s->elems[head] >= 0)
            continue;
        int64_t bytes = sample_bytes(g, s, head), cap = group_cap(g, s, head, rows), members = 1;
        bool reduces = false;
        s->samples[head] = head;
        for (; k < g->nnodes; k++) {
            NodeId j = s->order[k];
            reduces |= g->nodes[j].op == OP_ALLREDUCE;
            if (!schedule_has_loop(s, j) || g->nodes[j].op == OP_ALLREDUCE)
                continue;
            int64_t r = sample_kernel(g, s, j), c = r ? group_cap(g, s, j, r) : 0;
            if (!r || s->rows[j] >= 0 || s->elems[j] >= 0 || c < 2 || !reads_ok(g, s, head, j))
                break;
            s->samples[j] = head;
            bytes += sample_bytes(g, s, j);
            cap = c < cap ? c : cap;
            members++;
        }
        int64_t group = bytes && SAMPLES_BYTES / bytes < cap ? SAMPLES_BYTES / bytes : cap;
        if (members < 2 || group < 2 || group >= g->batch) { /* nothing to gain */
            for (int j = 0; j < g->nnodes; j++)
                if (s->samples[j] == head)
                    s->samples[j] = -1;
            continue;
        }
        s->group[head] = group;
        schedule_locals(g, s, head);
        if (reduces)
            reduce_after(a, g, s, at, k);
    }
}

int64_t schedule_group(const Schedule *s, NodeId k) {
    return s->samples && s->samples[k] >= 0 ? s->group[s->samples[k]] : 0;
}

int64_t schedule_ksplit_units(const Graph *g, const Schedule *s, NodeId m) {
    int64_t group = schedule_group(s, m), units = cg_matmul_ksplit(g, m);
    return units && group ? (g->batch + group - 1) / group : units;
}
