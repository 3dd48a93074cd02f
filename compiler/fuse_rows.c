/* fuse_rows.c — the schedule's row loops and element loops: adjacent kernels
 * become one loop.
 *
 * Row loops: adjacent kernels over the rows of the batch become one loop
 * over the rows, each row's values in registers.
 *
 * After the last matmul of the forward pass, the loss and its gradient are
 * a run of small kernels over [n, 10]: logsoftmax, exp, onehot, the
 * cross-entropy terms, their sums, the gradient softmax - onehot. Each was
 * a pass over the batch of its own, loading what the one before stored. In
 * a row loop (cg_rows.c) row r of each is a vector of the row's elements,
 * computed from the values of row r before it, so a row is read once and
 * each kernel costs its arithmetic and one store.
 *
 * A kernel joins a row loop when its loop nest starts with the batch axis
 * and its rows are short (at most ROW_MAX elements), when each value it
 * reads is either done before the loop or the same row of one of the
 * loop's kernels, and when its ops have vector forms. A reduction over all
 * rows (the loss's sum) accumulates across the loop; kernels that read it
 * move after the loop (the loss's scaling). Every result is still stored
 * for the kernels after the loop: only the order of the work changes.
 *
 * Element loops: adjacent elementwise kernels of one shape (an optimizer's
 * update of a parameter: Adam's m, v and the parameter; a momentum's
 * velocity and the parameter) become one loop storing each at every index.
 * Each element is computed as it was, from the same values. A kernel reads
 * another's result only at its own index, which the loop has just stored
 * there: an operand is broadcast only where its shape differs from the
 * result's, and the loop's results, and the slots they are stored into,
 * all have the loop's shape. A slot's old value is read by nothing after
 * the kernel that writes it (fuse.c's in_place_ok), so nothing later in the
 * loop reads it either. One loop is one pass over the shape instead of
 * several, and, more, one loop for LLVM to vectorise instead of several:
 * Adam's 24 loops in the CNN's step were half of its module's compile time.
 */
#include "nnc.h"

enum { ROW_MAX = 64 }; /* the longest row a row loop keeps in registers */

/* What a kernel of the row loop being formed is to a later one. */
enum { ROW_NONE, ROW_LOCAL, ROW_ACROSS, ROW_AFTER };

bool schedule_has_loop(const Schedule *s, NodeId k) {
    return s->epilogue[k] >= 0 || ((s->place[k] == PLACE_ARENA || s->place[k] == PLACE_SLOT) && s->root[k] == k);
}

NodeId schedule_memory(const Graph *g, const Schedule *s, NodeId n) {
    while (s->place[n] == PLACE_ALIAS)
        n = g->nodes[n].in[0];
    return n;
}

int64_t schedule_row_len(const Graph *g, NodeId x) {
    if (!(ir_batch_axes(g, x) & 1) || g->nodes[x].shape.dim[0] != g->batch)
        return -1; /* no batch axis, or one of several rows per sample */
    int64_t len = 1; /* at most the node's elements, which sema bounds */
    for (int d = 1; d < g->nodes[x].shape.rank; d++)
        len *= g->nodes[x].shape.dim[d];
    return len;
}

bool schedule_row_across(const Graph *g, NodeId k) {
    const IrNode *n = &g->nodes[k];
    return op_info[n->op].cls == CLASS_REDUCE && n->axis == -1; /* logsoftmax's axis is never -1 */
}

static bool slot_read(const Graph *g, int slot) {
    for (int i = 0; i < g->nnodes; i++)
        if (ir_is_slot_leaf(&g->nodes[i]) && g->nodes[i].slot == slot)
            return true;
    return false;
}

/* Nodes cg_rows.c computes on a row vector: of an op with a vector form
 * (op_info's row), elementwise on rows or on vectors, or reducing within
 * the row (axis 1; logsoftmax's when its rank is 2) or across rows (all). */
static bool row_op(const IrNode *n) {
    if (!op_info[n->op].row)
        return false;
    if (op_info[n->op].cls == CLASS_REDUCE)
        return n->axis == -1 || n->axis == 1;
    return n->shape.rank <= 2;
}

/* May x be read, one row at a time, by the loop nest of its user in kernel
 * k's tree: a nest over [n] (rank 1) or [n, len] (rank 2)? Values of the
 * loop's own kernels are read as their row r (same elements per row);
 * others come from memory: a row of a batch, or a constant broadcast to
 * every row. NumPy's right alignment makes a batch vector [n] read by a
 * rank-2 nest the column index, which only onehot's labels are not. */
static bool row_read_ok(const Graph *g, const Schedule *s, const uint8_t *st, NodeId x, int rank, int64_t len,
                        bool label) {
    const IrNode *n = &g->nodes[x];
    if (s->place[x] == PLACE_INLINE) {
        if (!row_op(n) || op_info[n->op].cls == CLASS_REDUCE)
            return false;
        for (int k = 0; k < op_info[n->op].arity; k++)
            if (!row_read_ok(g, s, st, n->in[k], rank, len, op_info[n->op].index))
                return false;
        return true;
    }
    NodeId src = schedule_memory(g, s, x);
    if (st[src] != ROW_NONE && st[src] != ROW_LOCAL)
        return false; /* a sum over all rows, incomplete; or computed after the loop */
    int64_t xl = schedule_row_len(g, x);
    if (xl < 0) /* no batch axis: the same for every row */
        return shape_elems(&n->shape) == 1 ||
               (rank == 2 && n->shape.dim[n->shape.rank - 1] == len && shape_elems(&n->shape) == len);
    if (st[src] == ROW_LOCAL && schedule_row_len(g, src) != xl)
        return false;
    if (label)
        return n->shape.rank == 1;
    return n->shape.rank == rank && (xl == 1 || xl == len);
}

/* Can kernel k run one row at a time in the loop whose kernels are marked
 * in st? Its slot, if it writes one in place, must be read by no one: its
 * rows are written while other kernels of the loop still run. */
static bool row_kernel(const Graph *g, const Schedule *s, const uint8_t *st, NodeId k) {
    const IrNode *n = &g->nodes[k];
    if (s->epilogue[k] >= 0 || !row_op(n) || (s->place[k] == PLACE_SLOT && slot_read(g, s->slot[k])))
        return false;
    /* The nest: over the operand of a reduction, else over k itself. */
    NodeId nest = op_info[n->op].cls == CLASS_REDUCE ? n->in[0] : k; /* logsoftmax's has its shape */
    const Shape *sh = &g->nodes[nest].shape;
    int64_t len = schedule_row_len(g, nest);
    if (len < 1 || len > ROW_MAX || sh->rank < 1 || sh->rank > 2)
        return false;
    if (op_info[n->op].cls == CLASS_REDUCE)
        return row_read_ok(g, s, st, n->in[0], sh->rank, len, false);
    for (int i = 0; i < op_info[n->op].arity; i++)
        if (!row_read_ok(g, s, st, n->in[i], sh->rank, len, op_info[n->op].index))
            return false;
    return true;
}

void schedule_rows(Arena *a, const Graph *g, Schedule *s) {
    size_t nn = (size_t)g->nnodes + 1;
    s->order = arena_array(a, nn, sizeof *s->order);
    s->rows = arena_array(a, nn, sizeof *s->rows);
    uint8_t *st = arena_array(a, nn, sizeof *st);
    NodeId *after = arena_array(a, nn, sizeof *after);
    int pos = 0;
    for (int i = 0; i < g->nnodes; i++)
        s->rows[i] = -1;
    for (int i = 0; i < g->nnodes;) {
        int members = 0, nafter = 0, j = i;
        for (; j < g->nnodes && s->opt >= 2; j++) {
            if (!schedule_has_loop(s, j))
                continue;
            if (row_kernel(g, s, st, j)) {
                st[j] = schedule_row_across(g, j) ? ROW_ACROSS : ROW_LOCAL;
                members++;
            } else if (members && (op_info[g->nodes[j].op].cls == CLASS_ELEMWISE ||
                                   op_info[g->nodes[j].op].cls == CLASS_REDUCE) && s->epilogue[j] < 0) {
                st[j] = ROW_AFTER;
                after[nafter++] = j;
            } else {
                break;
            }
        }
        if (members < 2) { /* no row loop from i */
            for (int k = i; k < j; k++)
                st[k] = ROW_NONE;
            s->order[pos++] = i++;
            continue;
        }
        NodeId first = -1;
        for (int k = i; k < j; k++)
            if (st[k] != ROW_AFTER) { /* the loop's kernels and the nodes without a loop */
                s->order[pos++] = k;
                if (st[k] != ROW_NONE)
                    s->rows[k] = first = first < 0 ? k : first;
            }
        for (int k = 0; k < nafter; k++)
            s->order[pos++] = after[k];
        for (int k = i; k < j; k++)
            st[k] = ROW_NONE;
        i = j;
    }
}

/* Can kernel k join an element loop: an elementwise op with a loop of its
 * own, in no row loop and no matmul's epilogue? */
static bool elem_kernel(const Graph *g, const Schedule *s, NodeId k) {
    const IrNode *n = &g->nodes[k];
    return schedule_has_loop(s, k) && s->epilogue[k] < 0 && s->root[k] == k && s->rows[k] < 0 &&
           op_info[n->op].elem && !op_info[n->op].index;
}

void schedule_elems(Arena *a, const Graph *g, Schedule *s) {
    size_t nn = (size_t)g->nnodes + 1;
    s->elems = arena_array(a, nn, sizeof *s->elems);
    for (int i = 0; i < g->nnodes; i++)
        s->elems[i] = -1;
    for (int k = 0; s->opt >= 2 && k < g->nnodes;) {
        NodeId first = s->order[k++];
        if (!elem_kernel(g, s, first))
            continue;
        for (; k < g->nnodes; k++) {
            NodeId j = s->order[k];
            if (!schedule_has_loop(s, j))
                continue;
            if (!elem_kernel(g, s, j) || !shape_eq(&g->nodes[j].shape, &g->nodes[first].shape) ||
                ir_batch_axes(g, j) != ir_batch_axes(g, first))
                break;
            s->elems[first] = s->elems[j] = first;
        }
    }
}
