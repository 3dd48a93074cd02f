/* ir_print.c — the IR's canonical text form (--emit=ir, --emit=grad).
 *
 * One node per line in id order (topological after ir_dce), operands by id,
 * the shape after a colon and the source position it came from, so golden
 * tests can diff it and a reader can trace every node back to a line:
 *
 *   %3 = matmul %1, %2 : f32[128, 512]  @4:5
 */
#include "nnc.h"

static const char *dtype_name(DType dt) { return dt == DT_F64 ? "f64" : "f32"; }

static const char *slot_kind_name(SlotKind k) {
    switch (k) {
    case SLOT_ARENA: return "arena";
    case SLOT_INPUT: return "input";
    case SLOT_LABEL: return "label";
    case SLOT_LOSS: return "loss";
    case SLOT_OUTPUT: return "output";
    case SLOT_PARAM: return "param";
    case SLOT_STATE: return "state";
    case SLOT_GRAD: return "grad";
    }
    unreachable();
}

void ir_print(FILE *out, const Graph *g) {
    char sb[96];
    const char *dt = dtype_name(g->dtype);
    for (int i = 1; i < g->nslots; i++) {
        const Slot *s = &g->slots[i];
        fprintf(out, "slot #%d %s %s : %s%s\n", i, slot_kind_name(s->kind), s->name, s->u8 ? "u8" : dt,
                shape_str(&s->shape, sb, sizeof sb));
    }
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        fprintf(out, "%%%d = %s", i, op_info[n->op].name);
        if (ir_is_slot_leaf(n))
            fprintf(out, " %s", g->slots[n->slot].name);
        if (n->op == OP_CONST)
            fprintf(out, " %.9g", n->value);
        for (int k = 0; k < op_info[n->op].arity; k++)
            fprintf(out, "%s%%%d", k ? ", " : " ", n->in[k]);
        if (op_info[n->op].axis)
            fprintf(out, n->axis < 0 ? ", all" : ", axis %d", n->axis);
        if (n->op == OP_SLICE)
            fprintf(out, ", start %lld", (long long)n->start);
        if (op_info[n->op].alpha)
            fprintf(out, ", alpha %.9g", n->value);
        if (op_info[n->op].cls == CLASS_WINDOW)
            fprintf(out, ", window %dx%d stride %dx%d pad %d,%d", n->win.kh, n->win.kw, n->win.sh, n->win.sw, n->win.pt,
                    n->win.pl);
        if (n->op == OP_RANDOM)
            fprintf(out, ", key %.0f", n->value);
        fprintf(out, " : %s%s", dt, shape_str(&n->shape, sb, sizeof sb));
        if (n->loc.line)
            fprintf(out, "  @%d:%d", n->loc.line, n->loc.col);
        fputc('\n', out);
    }
    for (int i = 0; i < g->noutputs; i++)
        fprintf(out, "%s <- %%%d\n", g->slots[g->outputs[i].slot].name, g->outputs[i].node);
}
