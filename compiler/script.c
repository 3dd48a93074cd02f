/* script.c — the statements outside any model: the course's computational
 * graphs, written and differentiated by hand in the notes,
 *
 *     let a = 1, b = 2, w = 2, t = 4
 *     L = ((a + b) * w - t)^2 + w^2
 *     print L                 # L = 8
 *     print grad(L, w)        # dL/dw = 2*w + 2*((a + b)*w - t)*(a + b) = 16
 *
 * There is no second evaluator: every statement adds to one IR graph (a
 * `let` variable is a leaf whose buffer holds its value, so nothing folds it
 * away and grad can differentiate by it), grad() is autodiff on that graph,
 * each printed value becomes an output, and the whole is compiled by the
 * JIT in float64 and run once. The symbolic form of a printed value is the
 * IR itself, written by infix.c with the user's names.
 */
#include "nnc.h"

#include <stdlib.h>
#include <string.h>

typedef struct Script {
    ExprEnv e;     /* first: the literal hook gets it and finds the rest */
    double **init; /* per slot: its initial elements (variables, literals), or NULL */
    int init_cap;
} Script;

/* A slot holding `values` from the start, as a leaf node. */
static NodeId script_leaf(Script *sc, const char *name, Shape s, const double *values, Loc loc) {
    Graph *g = sc->e.g;
    int slot = ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = name, .shape = s});
    if (slot >= sc->init_cap) {
        int cap = sc->init_cap ? 2 * sc->init_cap : 16;
        double **v = arena_array(sc->e.arena, (size_t)cap, sizeof *v);
        if (sc->init_cap)
            memcpy(v, sc->init, (size_t)sc->init_cap * sizeof *v);
        sc->init = v;
        sc->init_cap = cap;
    }
    sc->init[slot] = (double *)values;
    return ir_leaf(g, OP_PARAM, slot, s, loc);
}

typedef struct Print {
    const char *label; /* "L", "dL/dw", or NULL: the expression is the label */
    const char *text;  /* the value as an expression */
    const char *where; /* its shared subexpressions, or NULL */
    bool show_text;    /* the expression says more than the label and the value */
    NodeId node;
    int slot;
} Print;

/* The user's name of each node of g so far: the first name bound to it. */
static const char **node_names(Arena *a, const ExprEnv *e) {
    const char **names = arena_array(a, (size_t)e->g->nnodes, sizeof *names);
    for (int i = e->nnames - 1; i >= 0; i--)
        if (e->names[i].node >= 0)
            names[e->names[i].node] = e->names[i].name;
    return names;
}

/* How `print x` shows x: its name, d<f>/d<x> for a gradient, else itself. */
static void describe(Arena *a, ExprEnv *e, const AstExpr *x, NodeId n, Print *p) {
    const char *const *names = node_names(a, e);
    p->node = n;
    p->text = infix_expr(a, e->g, n, names, &p->where);
    p->show_text = x->kind != EX_NAME && e->g->nodes[n].op != OP_CONST;
    if (x->kind == EX_NAME) {
        p->label = x->name;
    } else if (x->kind == EX_CALL && strcmp(x->name, "grad") == 0) {
        const AstExpr *f = x->args[0], *v = x->args[1];
        if (f->kind == EX_NAME) {
            p->label = arena_printf(a, "d%s/d%s", f->name, v->name);
        } else { /* the outermost grad() of x was lowered last */
            const char *unused;
            p->label = arena_printf(a, "d/d%s (%s)", v->name, infix_expr(a, e->g, e->grad_of, names, &unused));
        }
    }
}

static void print_number(FILE *out, double v) { fprintf(out, "%g", v == 0 ? 0.0 : v); }

static void print_value(FILE *out, const double *v, const Shape *s, int axis, size_t *i);

/* A literal in an expression: a constant if its elements are all the same,
 * else a leaf named by its text (so a printed derivative shows it). */
static NodeId script_literal(ExprEnv *e, const AstExpr *x, Shape s, const double *values) {
    int64_t n = shape_elems(&s);
    bool uniform = n > 0;
    for (int64_t i = 1; i < n && uniform; i++)
        uniform = values[i] == values[0];
    if (uniform)
        return ir_const(e->g, values[0], s, x->loc);
    char *text = NULL;
    size_t len = 0, k = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        die("open_memstream: out of memory");
    print_value(f, values, &s, 0, &k);
    fclose(f);
    const char *name = arena_strndup(e->arena, text, len);
    free(text);
    return script_leaf((Script *)e, name, s, values, x->loc);
}

/* A tensor as nested lists, row-major: [[1, 2], [3, 4]]. */
static void print_value(FILE *out, const double *v, const Shape *s, int axis, size_t *i) {
    if (axis == s->rank) {
        print_number(out, v[(*i)++]);
        return;
    }
    fputc('[', out);
    for (int64_t k = 0; k < s->dim[axis]; k++) {
        if (k)
            fputs(", ", out);
        print_value(out, v, s, axis + 1, i);
    }
    fputc(']', out);
}

/* Compiles g and runs it once; the slots' initial contents are `init`. */
static int script_execute(Arena *a, Diag *d, Graph *g, double *const *init, int init_count, const Print *prints,
                          int nprints, FILE *out) {
    Graph *run = ir_dce(g);
    Schedule *plan = schedule(a, run, 2);
    CgModule *mod = cg_module_new("script");
    cg_add_step(mod, "script", run, plan);
    char err[1024];
    Jit *jit = jit_compile(mod, err, sizeof err); /* takes mod */
    NnrtStepFn fn = jit ? (NnrtStepFn)jit_lookup(jit, "script", err, sizeof err) : NULL;
    if (!fn) {
        diag_plain(d, "%s", err);
        jit_free(jit);
        return EXIT_USAGE;
    }
    void **slots = xrealloc(NULL, (size_t)run->nslots, sizeof *slots);
    slots[0] = xrealloc(NULL, plan->arena_bytes + 64, 1);
    for (int s = 1; s < run->nslots; s++) {
        size_t n = (size_t)shape_elems(&run->slots[s].shape);
        slots[s] = xrealloc(NULL, n, sizeof(double));
        if (s < init_count && init[s])
            memcpy(slots[s], init[s], n * sizeof(double));
    }
    fn(slots, run->batch);
    for (int i = 0; i < nprints; i++) {
        const Print *p = &prints[i];
        if (p->label)
            fprintf(out, "%s = ", p->label);
        if (p->show_text)
            fprintf(out, "%s = ", p->text);
        size_t k = 0;
        print_value(out, slots[p->slot], &g->nodes[p->node].shape, 0, &k);
        fputc('\n', out);
        if (p->where)
            fprintf(out, "  where %s\n", p->where);
    }
    for (int s = 0; s < run->nslots; s++)
        free(slots[s]);
    free(slots);
    jit_free(jit);
    return EXIT_OK;
}

int script_run(Arena *a, Diag *d, const AstProgram *p, FILE *out) {
    int errors = d->errors;
    Graph *g = ir_new(a, DT_F64);
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Print *prints = arena_array(a, (size_t)p->nstmts, sizeof *prints);
    int nprints = 0;
    Script sc = {.e = {.arena = a, .diag = d, .g = g, .literal = script_literal, .warn = true}};
    ExprEnv *e = &sc.e;
    for (int i = 0; i < p->nstmts && !diag_quiet(d); i++) {
        const AstStmt *st = &p->stmts[i];
        switch (st->kind) {
        case TOP_LET: {
            Shape s;
            double *values;
            NodeId n = -1;
            if (expr_literal(e, st->expr, &s, &values))
                n = script_leaf(&sc, st->name, s, values, st->name_loc);
            expr_bind(e, st->name, st->name_loc, n);
            break;
        }
        case TOP_ASSIGN:
            expr_bind(e, st->name, st->name_loc, expr_lower(e, st->expr));
            break;
        case TOP_PRINT: {
            NodeId n = expr_lower(e, st->expr);
            if (n < 0)
                break;
            Print *pr = &prints[nprints++];
            describe(a, e, st->expr, n, pr);
            pr->slot = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = arena_printf(a, "print%d", nprints),
                                             .shape = g->nodes[n].shape});
            ir_add_output(g, n, pr->slot);
            break;
        }
        }
    }
    if (d->errors != errors)
        return EXIT_INVALID_MODEL;
    return script_execute(a, d, g, sc.init, sc.init_cap, prints, nprints, out);
}
