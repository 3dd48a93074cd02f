/* layout.c — weight matrices kept between steps in the layout the matmul
 * kernel packs B into.
 *
 * The kernel (cg_matmul.c) reads B by column panels PW columns wide (the
 * panel width: 32 floats with AVX-512), row k of a panel PW floats after row
 * k - 1. Row-major, a panel's rows are N floats apart: each row of a weight
 * matrix is a page or more away from the last, so the kernel either reads B
 * scattered over pages or copies every panel into a packed buffer first, at
 * every step. Kept in panels (panel p at p * PW * K, its row k at k * PW),
 * W is read as it lies, and the weight gradient's kernel, whose column
 * panels are the same columns, stores the update into the same place in
 * its epilogue. This is what oneDNN and IPEX do for training: weights live
 * in the kernel's blocked format, and only what leaves the trainer is
 * reordered. The backward pass's W^T, packed by gathering from W's rows,
 * gathers lanes PW floats apart instead of N.
 *
 * Only the compiled steps of a session see the layout: the session converts
 * the weights into panels once they are loaded and compiled for, and back
 * before they leave it; checkpoints saved during training are written from
 * row-major copies (layout_rows). A slot is kept in panels only where every
 * use of it, in the training step and the evaluation step alike, is one the
 * kernels address through the layout.
 */
#include "nnc.h"

#include <stdlib.h>

static bool uses_ok(const Graph *g, const Schedule *s, NodeId x);

/* Is operand k of node i, x, read where the kernels address W through
 * panels: as B, directly or through a transpose folded into the packing,
 * or loaded in the epilogue of a product of W's shape? */
static bool use_ok(const Graph *g, const Schedule *s, NodeId x, NodeId i, int k) {
    const IrNode *n = &g->nodes[i];
    const Shape *w = &g->nodes[x].shape;
    NodeId m = s->root[i];
    if (n->op == OP_MATMUL)
        return k == 1 && n->in[0] != x && cg_matmul_tiled(g, i) && s->colsum[i] < 0;
    if (n->op == OP_TRANSPOSE)
        return s->place[i] == PLACE_FOLDED && uses_ok(g, s, i);
    return m != i && s->epilogue[m] >= 0 && shape_eq(&g->nodes[m].shape, w) && shape_eq(&n->shape, w);
}

/* Is x (in g scheduled by s) read only so (use_ok)? */
static bool uses_ok(const Graph *g, const Schedule *s, NodeId x) {
    for (int i = x + 1; i < g->nnodes; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++)
            if (g->nodes[i].in[k] == x && !use_ok(g, s, x, i, k))
                return false;
    return true;
}

/* Can slot sl of g be kept in panels? Its leaf's uses are addressed through
 * them, it is not copied out as another result, and its new value, if the
 * step makes one, is stored by an epilogue. */
static bool slot_ok(const Graph *g, const Schedule *s, int sl, int64_t pw) {
    const Slot *slot = &g->slots[sl];
    if (slot->kind != SLOT_PARAM || slot->shape.rank != 2 || slot->shape.dim[1] <= pw || slot->shape.dim[1] % pw)
        return false;
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_PARAM && g->nodes[i].slot == sl && !uses_ok(g, s, i))
            return false;
    for (int o = 0; o < g->noutputs; o++) {
        NodeId y = g->outputs[o].node;
        bool leaf = ir_is_slot_leaf(&g->nodes[y]) && g->nodes[y].slot == sl;
        if (leaf ? g->outputs[o].slot != sl : g->outputs[o].slot == sl && !schedule_checks(g, s, y))
            return false;
    }
    return true;
}

/* ---- Data-parallel (under mpirun): an allreduce between each gradient and
 * its update, so W's update is no product's epilogue but an elementwise
 * kernel reading W, its all-reduced gradient and its optimizer state (SGD's
 * velocity, Adam's m and v) and storing the new W and state. Index for
 * index, such a loop is right in any layout all of them share: W stays in
 * panels where its gradient's product stores the gradient in panels (its
 * all-reduce sums and scales element by element, wherever they lie), and
 * its state slots are kept in panels too. One process's steps have no
 * all-reduce and none of this. */

static bool has_allreduce(const Graph *g) {
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == OP_ALLREDUCE)
            return true;
    return false;
}

static bool scalar(const Graph *g, NodeId x) { return shape_elems(&g->nodes[x].shape) == 1; }

/* Is the loop that computes i an elementwise kernel of W's shape w whose
 * operands in memory are scalars or in panels (`in`)? */
static bool update_ok(const Graph *g, const Schedule *s, NodeId i, const Shape *w, const bool *in) {
    NodeId m = s->root[i];
    if (!op_info[g->nodes[m].op].elem || s->epilogue[m] >= 0 || !shape_eq(&g->nodes[m].shape, w) ||
        (s->place[m] != PLACE_ARENA && s->place[m] != PLACE_SLOT))
        return false;
    for (int j = 0; j < g->nnodes; j++) {
        const IrNode *n = &g->nodes[j];
        if (s->root[j] != m || s->place[j] == PLACE_NONE)
            continue;
        for (int k = 0; k < op_info[n->op].arity; k++) {
            NodeId x = n->in[k];
            if (s->root[x] != m && !scalar(g, x) && !in[x])
                return false;
        }
    }
    return true;
}

/* Per node, is it in panels if the slots `kept` are: their leaves and the
 * values stored into them; all-reduces of W's shape (the candidates' only)
 * and the products they sum, where a product stores its result itself, in
 * its kernel (not in a K split's sum, nor an epilogue's node). */
static void mark(const Graph *g, const Schedule *s, const bool *kept, bool *in) {
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        in[i] = (ir_is_slot_leaf(n) && kept[n->slot]) || (s->place[i] == PLACE_SLOT && kept[s->slot[i]]);
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        NodeId m = n->in[0];
        if (n->op != OP_ALLREDUCE || s->place[m] != PLACE_ARENA || !cg_matmul_tiled(g, m) || s->epilogue[m] >= 0 ||
            cg_matmul_ksplit(g, m))
            continue;
        for (int sl = 0; sl < g->nslots; sl++)
            if (kept[sl] && g->slots[sl].kind == SLOT_PARAM && shape_eq(&g->slots[sl].shape, &n->shape))
                in[i] = in[m] = true;
    }
}

/* Is node x in panels read only where that is right: as use_ok has it, by
 * an all-reduce in panels (x a product's result), or in an update_ok
 * kernel? */
static bool reads_ok(const Graph *g, const Schedule *s, NodeId x, const bool *in) {
    const Shape *w = &g->nodes[x].shape;
    for (int i = x + 1; i < g->nnodes; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++)
            if (g->nodes[i].in[k] == x && !(g->nodes[i].op == OP_ALLREDUCE && in[i]) &&
                !update_ok(g, s, i, w, in) && !use_ok(g, s, x, i, k))
                return false;
    return true;
}

/* Can slot sl stay in panels in the data-parallel step g, with `kept`? */
static bool slot_ok_parallel(const Graph *g, const Schedule *s, int sl, int64_t pw, const bool *in) {
    const Slot *slot = &g->slots[sl];
    if ((slot->kind != SLOT_PARAM && slot->kind != SLOT_STATE) || slot->shape.rank != 2 ||
        slot->shape.dim[1] <= pw || slot->shape.dim[1] % pw)
        return false;
    for (int i = 0; i < g->nnodes; i++) {
        bool mine = ir_is_slot_leaf(&g->nodes[i]) ? g->nodes[i].slot == sl : s->place[i] == PLACE_SLOT && s->slot[i] == sl;
        if (in[i] && mine && !reads_ok(g, s, i, in))
            return false;
    }
    for (int o = 0; o < g->noutputs; o++) {
        NodeId y = g->outputs[o].node;
        bool leaf = ir_is_slot_leaf(&g->nodes[y]) && g->nodes[y].slot == sl;
        if (leaf ? g->outputs[o].slot != sl
                 : g->outputs[o].slot == sl && !(s->place[y] == PLACE_SLOT && update_ok(g, s, y, &slot->shape, in)))
            return false;
    }
    return true;
}

/* The slots of the data-parallel step kept in panels: every candidate, then
 * those that fail dropped until none does (a dropped state slot takes its
 * W's update with it); *nodes gets the step's nodes in panels. */
static bool choose_parallel(Arena *a, const Graph *g, const Schedule *s, const Graph *eval, const Schedule *es,
                            int64_t pw, bool *kept, bool **nodes) {
    bool *in = arena_array(a, (size_t)g->nnodes + 1, sizeof *in), any = false;
    for (int sl = 0; sl < g->nslots; sl++) {
        const Slot *slot = &g->slots[sl];
        bool used_in_eval = false; /* the evaluation step's uses: W's, as in one process */
        for (int i = 0; sl < eval->nslots && i < eval->nnodes; i++)
            used_in_eval |= ir_is_slot_leaf(&eval->nodes[i]) && eval->nodes[i].slot == sl;
        kept[sl] = (slot->kind == SLOT_PARAM || slot->kind == SLOT_STATE) && slot->shape.rank == 2 &&
                   (!used_in_eval || slot_ok(eval, es, sl, pw));
    }
    for (bool changed = true; changed;) {
        changed = false;
        mark(g, s, kept, in);
        for (int sl = 0; sl < g->nslots; sl++)
            if (kept[sl] && !slot_ok_parallel(g, s, sl, pw, in))
                kept[sl] = false, changed = true;
        /* A gradient in panels read elsewhere: the weights of its shape stay row-major. */
        for (int i = 0; i < g->nnodes; i++)
            if (in[i] && !ir_is_slot_leaf(&g->nodes[i]) && s->place[i] == PLACE_ARENA && !reads_ok(g, s, i, in))
                for (int sl = 0; sl < g->nslots; sl++)
                    if (kept[sl] && shape_eq(&g->slots[sl].shape, &g->nodes[i].shape))
                        kept[sl] = false, changed = true;
    }
    for (int sl = 0; sl < g->nslots; sl++)
        any |= kept[sl];
    *nodes = in;
    return any;
}

void layout_choose(Arena *a, const Graph *train, Schedule *ts, const Graph *eval, Schedule *es) {
    if (ts->opt < 2 || es->opt < 2 || !ts->target->panels)
        return;
    int64_t pw = cg_matmul_panel_width(train, ts->target);
    bool *panels = arena_array(a, (size_t)train->nslots, sizeof *panels), any = false;
    if (has_allreduce(train)) {
        any = choose_parallel(a, train, ts, eval, es, pw, panels, &ts->nodes_in_panels);
    } else {
        for (int sl = 0; sl < train->nslots; sl++) {
            panels[sl] = slot_ok(train, ts, sl, pw) && (sl >= eval->nslots || slot_ok(eval, es, sl, pw));
            any |= panels[sl];
        }
    }
    if (any)
        ts->panels = es->panels = panels;
    else
        ts->nodes_in_panels = NULL;
}

bool layout_in_panels(const Graph *g, const Schedule *s, NodeId x) {
    if (!s->panels)
        return false;
    const IrNode *n = &g->nodes[x];
    return (ir_is_slot_leaf(n) && s->panels[n->slot]) || (s->place[x] == PLACE_SLOT && s->panels[s->slot[x]]) ||
           (s->nodes_in_panels && s->nodes_in_panels[x]);
}

/* Is slot sl kept in panels (s may be NULL: none is)? */
static bool kept(const Schedule *s, int sl) { return s && s->panels && s->panels[sl]; }

/* A copy of slot sl's matrix, from row-major into panels of pw columns or back. */
static float *converted(const Graph *g, void **slots, int sl, int64_t pw, bool to_panels) {
    const Shape *s = &g->slots[sl].shape;
    int64_t K = s->dim[0], N = s->dim[1];
    const float *src = slots[sl];
    float *dst = xcalloc64((size_t)shape_elems(s), sizeof(float));
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = 0; j < N; j++) {
            size_t p = nnrt_panel_index(i, j, K, pw), r = (size_t)(i * N + j);
            dst[to_panels ? p : r] = src[to_panels ? r : p];
        }
    return dst;
}

void layout_convert(const Graph *g, const Schedule *s, void **slots, bool to_panels) {
    for (int sl = 0; sl < g->nslots; sl++)
        if (kept(s, sl)) {
            float *to = converted(g, slots, sl, cg_matmul_panel_width(g, s->target), to_panels);
            free(slots[sl]);
            slots[sl] = to;
        }
}

void **layout_rows(const Graph *g, const Schedule *s, void **slots) {
    void **rows = xrealloc(NULL, (size_t)g->nslots, sizeof *rows);
    for (int sl = 0; sl < g->nslots; sl++)
        rows[sl] = kept(s, sl) ? converted(g, slots, sl, cg_matmul_panel_width(g, s->target), false) : slots[sl];
    return rows;
}

void layout_rows_free(const Graph *g, const Schedule *s, void **rows) {
    for (int sl = 0; sl < g->nslots; sl++)
        if (kept(s, sl))
            free(rows[sl]);
    free(rows);
}
