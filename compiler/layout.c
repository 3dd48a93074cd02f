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

/* Is x (in g scheduled by s) read only where the kernels address W through
 * panels: as B, directly or through a transpose folded into the packing,
 * or loaded in the epilogue of a product of W's shape? */
static bool uses_ok(const Graph *g, const Schedule *s, NodeId x) {
    const Shape *w = &g->nodes[x].shape;
    for (int i = x + 1; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        for (int k = 0; k < op_info[n->op].arity; k++) {
            if (n->in[k] != x)
                continue;
            NodeId m = s->root[i];
            bool ok;
            if (n->op == OP_MATMUL)
                ok = k == 1 && n->in[0] != x && cg_matmul_tiled(g, i) && s->colsum[i] < 0;
            else if (n->op == OP_TRANSPOSE)
                ok = s->place[i] == PLACE_FOLDED && uses_ok(g, s, i);
            else
                ok = m != i && s->epilogue[m] >= 0 && shape_eq(&g->nodes[m].shape, w) && shape_eq(&n->shape, w);
            if (!ok)
                return false;
        }
    }
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

void layout_choose(Arena *a, const Graph *train, Schedule *ts, const Graph *eval, Schedule *es) {
    if (ts->opt < 2 || es->opt < 2 || !ts->target->panels)
        return;
    int64_t pw = cg_matmul_panel_width(train, ts->target);
    bool *panels = arena_array(a, (size_t)train->nslots, sizeof *panels), any = false;
    for (int sl = 0; sl < train->nslots; sl++) {
        panels[sl] = slot_ok(train, ts, sl, pw) && (sl >= eval->nslots || slot_ok(eval, es, sl, pw));
        any |= panels[sl];
    }
    if (any)
        ts->panels = es->panels = panels;
}

bool layout_in_panels(const Graph *g, const Schedule *s, NodeId x) {
    if (!s->panels)
        return false;
    const IrNode *n = &g->nodes[x];
    return (ir_is_slot_leaf(n) && s->panels[n->slot]) || (s->place[x] == PLACE_SLOT && s->panels[s->slot[x]]);
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
