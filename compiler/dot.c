/* dot.c — --emit=dot: a model's training step as a Graphviz graph.
 *
 * One digraph with two clusters: the forward pass (what the loss and the
 * output depend on) and the gradient graph (the backward pass and the
 * optimizer update), drawn from the same IR that is compiled, so the
 * picture is what runs. A node is labelled with its op (and its slot or
 * value) and the file:line:col it came from; an edge with the shape of the
 * value it carries; each result of the step is a box named after its slot.
 */
#include "nnc.h"

#include <stdlib.h>
#include <string.h>

/* s inside a DOT string: quotes and backslashes escaped. */
static void dot_string(FILE *out, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void dot_node(FILE *out, const Graph *g, NodeId i) {
    const IrNode *n = &g->nodes[i];
    fprintf(out, "    n%d [label=\"%s", i, op_info[n->op].name);
    if (ir_is_slot_leaf(n)) {
        fputc(' ', out);
        dot_string(out, g->slots[n->slot].name);
    } else if (n->op == OP_CONST) {
        fprintf(out, " %.9g", n->value);
    }
    if (n->loc.src) { /* the file's base name: the graph reads the same wherever the file is */
        const char *base = strrchr(n->loc.src->path, '/');
        fputs("\\n", out);
        dot_string(out, base ? base + 1 : n->loc.src->path);
        fprintf(out, ":%d:%d", n->loc.line, n->loc.col);
    }
    fprintf(out, "\"%s];\n", op_info[n->op].cls == CLASS_LEAF ? " shape=ellipse" : "");
}

/* The nodes of one cluster (those whose fwd is `forward`) and the results
 * they give. */
static void dot_cluster(FILE *out, const Graph *g, const bool *fwd, const char *id, const char *title,
                        bool forward) {
    fprintf(out, "  subgraph cluster_%s {\n    label=\"%s\";\n", id, title);
    for (int i = 0; i < g->nnodes; i++)
        if (fwd[i] == forward)
            dot_node(out, g, i);
    for (int o = 0; o < g->noutputs; o++)
        if (fwd[g->outputs[o].node] == forward) {
            fprintf(out, "    r%d [shape=box label=\"", o);
            dot_string(out, g->slots[g->outputs[o].slot].name);
            fputs("\"];\n", out);
        }
    fputs("  }\n", out);
}

void dot_print(FILE *out, const Graph *g, const char *name) {
    char sb[96];
    /* A model's step has a loss: its forward pass and its gradient graph
     * apart. Statements' values and their gradients are one graph. */
    bool step = g->nslots > SLOT_NO_LOSS && g->slots[SLOT_NO_LOSS].kind == SLOT_LOSS;
    bool *fwd = fit_forward_nodes(g);
    fputs("digraph \"", out);
    dot_string(out, name);
    fputs("\" {\n  node [shape=box style=rounded fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\" "
          "fontsize=10];\n", out);
    if (step) {
        dot_cluster(out, g, fwd, "forward", "forward pass", true);
        dot_cluster(out, g, fwd, "gradient", "gradient: backward pass and update", false);
    } else {
        memset(fwd, 0, (size_t)g->nnodes * sizeof *fwd);
        dot_cluster(out, g, fwd, "statements", "statements: values and gradients", false);
    }
    for (int i = 0; i < g->nnodes; i++)
        for (int k = 0; k < op_info[g->nodes[i].op].arity; k++) {
            NodeId a = g->nodes[i].in[k];
            fprintf(out, "  n%d -> n%d [label=\"%s\"];\n", a, i, shape_str(&g->nodes[a].shape, sb, sizeof sb));
        }
    for (int o = 0; o < g->noutputs; o++) {
        NodeId a = g->outputs[o].node;
        fprintf(out, "  n%d -> r%d [label=\"%s\"];\n", a, o, shape_str(&g->nodes[a].shape, sb, sizeof sb));
    }
    fputs("}\n", out);
    free(fwd);
}
