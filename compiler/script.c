/* script.c — the statements outside any model, in a file or typed into the
 * REPL: the course's computational graphs, written and differentiated by
 * hand in the notes,
 *
 *     let a = 1, b = 2, w = 2, t = 4
 *     L = ((a + b) * w - t)^2 + w^2
 *     print L                 # L = 8
 *     print grad(L, w)        # dL/dw = 2*w + 2*((a + b)*w - t)*(a + b) = 16
 *
 * There is no second evaluator: statements add to an IR graph (a `let`
 * variable is a leaf whose buffer holds its value, so nothing folds it away
 * and grad can differentiate by it), grad() is autodiff on that graph, each
 * printed value becomes an output, and the graph is compiled by the JIT in
 * float64 and run once. The symbolic form of a printed value is the IR
 * itself, written by infix.c with the user's names.
 *
 * A Script is a session: its definitions outlive the statements that made
 * them, so a REPL entry can use what earlier ones defined.
 *   - `let x = ...` stores a value: a variable. A literal is stored as it is
 *     written; any other expression is computed first, so a statement
 *     after it runs in a graph of its own ("segment") that sees x as a leaf.
 *   - `x = expr` stores the expression, lowered again wherever x is used
 *     (lazily, through ExprEnv.resolve), so redefining a variable changes
 *     every value defined from it, as in a spreadsheet.
 * A segment with an error changes nothing. A definition replaces the old
 * one, in a file as in the REPL (x = x + 1 is then a cycle, reported as
 * such: `let x = x + 1` is the way to step a value), and ends the segment:
 * what follows sees every value defined from the name follow it.
 * `repeat N { ... }` runs its statements N times, as if written out again
 * (the notes' update loop); what they define is not echoed.
 * Definitions refer to the text they were parsed from (a ScriptText, counted
 * references), which lives as long as they do.
 */
#include "nnc.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- texts */

ScriptText *script_text_new(const char *path, int first_line, const char *text, size_t len) {
    Arena *a = arena_new();
    ScriptText *t = arena_alloc(a, sizeof *t);
    t->arena = a;
    t->src = (Source){.path = arena_strndup(a, path, strlen(path)), .text = arena_strndup(a, text, len), .len = len,
                      .first_line = first_line};
    t->refs = 1;
    return t;
}

void script_text_hold(ScriptText *t) {
    if (t)
        t->refs++;
}

void script_text_release(ScriptText *t) {
    if (t && --t->refs == 0)
        arena_free(t->arena);
}

/* ---------------------------------------------------------------- the session */

/* A name the session knows: a variable (values) or a named value (expr). */
typedef struct Def {
    const char *name;
    Loc loc;
    ScriptText *text; /* held; NULL: a text that outlives the script */
    const AstExpr *expr;
    Shape shape;
    double *values;   /* malloc'd */
    char *own_name;   /* malloc'd: a model's weight's (name), or NULL */
} Def;

struct Script {
    Diag *diag;
    FILE *out;
    FILE *dot; /* --emit=dot: each segment's graph is written here, and no value */
    bool repl;
    Def *defs;
    int ndefs;
    const Target *target;
    Jit *jit; /* made at the first run */
    const ScriptModels *models; /* NULL: none (a file) */
    int repeating; /* repeat bodies being run: definitions are not echoed */
};

Script *script_new(Diag *d, FILE *out, bool repl, const Target *t) {
    Script *sc = xcalloc(1, sizeof *sc);
    *sc = (Script){.diag = d, .out = out, .repl = repl, .target = t};
    return sc;
}

static void def_clear(Def *d) {
    script_text_release(d->text);
    free(d->values);
    free(d->own_name);
}

void script_reset(Script *sc) {
    for (int i = 0; i < sc->ndefs; i++)
        def_clear(&sc->defs[i]);
    free(sc->defs);
    sc->defs = NULL;
    sc->ndefs = 0;
}

void script_free(Script *sc) {
    if (!sc)
        return;
    script_reset(sc);
    jit_free(sc->jit);
    free(sc);
}

int script_names(const Script *sc, const char ***names) {
    *names = xrealloc(NULL, (size_t)sc->ndefs + 1, sizeof **names);
    for (int i = 0; i < sc->ndefs; i++)
        (*names)[i] = sc->defs[i].name;
    return sc->ndefs;
}

/* Adds or replaces the definition of d.name, taking d; `at` is its position
 * in the session's names (script_names' order), sc->ndefs for a new one. */
static void define(Script *sc, Def d, int at) {
    script_text_hold(d.text);
    if (at < sc->ndefs) {
        def_clear(&sc->defs[at]);
        sc->defs[at] = d;
        return;
    }
    sc->defs = xrealloc(sc->defs, (size_t)sc->ndefs + 1, sizeof *sc->defs);
    sc->defs[sc->ndefs++] = d;
}

/* ---------------------------------------------------------------- models */

void script_models(Script *sc, const ScriptModels *models) { sc->models = models; }

/* Is `name` a weight of `model` (MODEL.NAME)? */
static bool weight_of(const char *name, const char *model) {
    size_t n = strlen(model);
    return strncmp(name, model, n) == 0 && name[n] == '.';
}

/* The kept float32 buffer of slot s of a model's step graph, into out. */
static void kept(const FitWeights *w, const Slot *s, double *out) {
    int64_t n = shape_elems(&s->shape);
    for (int k = 0; k < w->nslots; k++)
        if (w->slots[k] && strcmp(w->names[k], s->name) == 0 && w->elems[k] == n) {
            const float *v = w->slots[k];
            for (int64_t i = 0; i < n; i++)
                out[i] = v[i];
            return;
        }
    die("script: the kept weights lack '%s'", s->name);
}

/* Is slot s one of a model's weights (what --print-params prints)? */
static bool is_weight(const Slot *s) { return s->kind == SLOT_PARAM || s->model_state; }

void script_weights(Script *sc, const Model *m, const FitWeights *w, ScriptText *text) {
    int k = 0;
    for (int i = 0; i < sc->ndefs; i++) {
        if (weight_of(sc->defs[i].name, m->name))
            def_clear(&sc->defs[i]);
        else
            sc->defs[k++] = sc->defs[i];
    }
    sc->ndefs = k;
    if (!w || !w->slots)
        return;
    Arena *a = arena_new();
    Graph *g = step_graph(a, m, STEP_EVAL, 1, DT_F32, INPUT_FLOAT); /* the slots, by name */
    for (int s = 0; s < g->nslots; s++) {
        const Slot *sl = &g->slots[s];
        if (!is_weight(sl))
            continue;
        size_t n = (size_t)shape_elems(&sl->shape), len = strlen(m->name) + strlen(sl->name) + 2;
        Def d = {.loc = m->loc, .text = text, .shape = sl->shape, .values = xcalloc(n, sizeof(double)),
                 .own_name = xcalloc(len, 1)};
        snprintf(d.own_name, len, "%s.%s", m->name, sl->name);
        d.name = d.own_name;
        kept(w, sl, d.values);
        define(sc, d, sc->ndefs);
    }
    arena_free(a);
}

/* ---------------------------------------------------------------- one graph */

typedef struct Print {
    const char *label; /* "L", "dL/dw", or NULL: the expression is the label */
    const char *text;  /* the value as an expression */
    const char *where; /* its shared subexpressions, or NULL */
    bool show_text;    /* the expression says more than the label and the value */
    bool quiet;        /* not printed: a computed `let` in a file */
    const AstStmt *stmt;
    NodeId node;
    int slot;
} Print;

/* What a definition made in a segment becomes once the segment has run. */
typedef struct Pending {
    const AstStmt *stmt;
    Shape shape;
    const double *values; /* a literal's; NULL: a named value, or computed (print) */
    int print;            /* a computed value's Print, or -1 */
} Pending;

/* One segment: a graph and the names it sees. The session's definitions
 * come first in e.names, in order, bound lazily. */
typedef struct Eval {
    ExprEnv e; /* first: the hooks get it and find the rest */
    Script *sc;
    double **init; /* per slot: its initial elements (variables, literals), or NULL */
    int init_cap;
    Print *prints;
    int nprints, prints_cap;
    Pending *pending;
    int npending, pending_cap;
} Eval;

/* A slot holding `values` from the start, as a leaf node. */
static NodeId leaf(Eval *ev, const char *name, Shape s, const double *values, Loc loc) {
    Graph *g = ev->e.g;
    int slot = ir_add_slot(g, (Slot){.kind = SLOT_PARAM, .name = name, .shape = s});
    if (slot >= ev->init_cap) {
        int cap = ev->init_cap ? 2 * ev->init_cap : 16;
        double **v = arena_array(ev->e.arena, (size_t)cap, sizeof *v);
        if (ev->init_cap)
            memcpy(v, ev->init, (size_t)ev->init_cap * sizeof *v);
        ev->init = v;
        ev->init_cap = cap;
    }
    ev->init[slot] = (double *)values;
    return ir_leaf(g, OP_PARAM, slot, s, loc);
}

/* A session definition, lowered where it is first used (ExprEnv.resolve). */
static NodeId resolve(ExprEnv *e, int index, Loc use) {
    Eval *ev = (Eval *)e;
    if (e->names[index].node == EXPR_RESOLVING) {
        const char *name = diag_clip(e->arena, e->names[index].name, strlen(e->names[index].name));
        diag_error(e->diag, use, "'%s' is defined in terms of itself", name);
        diag_note(e->diag, e->names[index].loc,
                  "'%s' is defined here; to compute a new value from the old one, write 'let %s = ...'", name, name);
        e->names[index].node = -1;
        return -1;
    }
    const Def *d = &ev->sc->defs[index];
    NodeId n;
    if (d->values) {
        n = leaf(ev, d->name, d->shape, d->values, d->loc);
    } else {
        e->names[index].node = EXPR_RESOLVING;
        n = expr_lower(e, d->expr);
    }
    e->names[index].node = n;
    return n;
}

/* The user's name of each node of g so far: the first name bound to it. */
static const char **node_names(Arena *a, const ExprEnv *e) {
    const char **names = arena_array(a, (size_t)e->g->nnodes, sizeof *names);
    for (int i = e->nnames - 1; i >= 0; i--)
        if (e->names[i].node >= 0)
            names[e->names[i].node] = e->names[i].name;
    return names;
}

/* How `print x` shows x: its name, d<f>/d<x> for a gradient, else itself. */
static void describe(ExprEnv *e, const AstExpr *x, NodeId n, Print *p) {
    Arena *a = e->arena;
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

/* -0 prints as 0, and a NaN as nan whatever its sign bit (printf writes
 * -nan for the NaN that x86 computes for (-8)^(1/3) or log(-1)). */
static void print_number(FILE *out, double v) {
    if (isnan(v))
        fputs("nan", out);
    else
        fprintf(out, "%g", v == 0 ? 0.0 : v);
}

/* NumPy's summary of a large tensor: the first and last EDGE entries of
 * each axis, "..." between. */
enum { SUMMARY_OVER = 1000, EDGE = 3 };

/* A tensor as nested lists, row-major: [[1, 2], [3, 4]]; v is its part
 * from `axis` on. */
static void print_value(FILE *out, const double *v, const Shape *s, int axis, bool summary) {
    if (axis == s->rank) {
        print_number(out, v[0]);
        return;
    }
    int64_t stride = 1;
    for (int k = axis + 1; k < s->rank; k++)
        stride *= s->dim[k];
    int64_t n = s->dim[axis];
    fputc('[', out);
    for (int64_t k = 0; k < n; k++) {
        if (summary && n > 2 * EDGE && k == EDGE) {
            fputs(", ...", out);
            k = n - EDGE;
        }
        if (k)
            fputs(", ", out);
        print_value(out, v + k * stride, s, axis + 1, summary);
    }
    fputc(']', out);
}

static void print_tensor(FILE *out, const double *v, const Shape *s) {
    print_value(out, v, s, 0, shape_elems(s) > SUMMARY_OVER);
}

/* A tensor's value as it prints, in a. */
static const char *tensor_text(Arena *a, const double *values, const Shape *s) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        die("open_memstream: out of memory");
    print_tensor(f, values, s);
    fclose(f);
    const char *r = arena_strndup(a, text, len);
    free(text);
    return r;
}

/* A literal in an expression: a constant if its elements are all the same,
 * else a leaf named by its text (so a printed derivative shows it). */
static NodeId literal(ExprEnv *e, const AstExpr *x, Shape s, const double *values) {
    int64_t n = shape_elems(&s);
    bool uniform = n > 0;
    for (int64_t i = 1; i < n && uniform; i++)
        uniform = values[i] == values[0];
    if (uniform)
        return ir_const(e->g, values[0], s, x->loc);
    return leaf((Eval *)e, tensor_text(e->arena, values, &s), s, values, x->loc);
}

static bool model_use(ExprEnv *e, const AstExpr *x, NodeId *out);

static void eval_init(Eval *ev, Script *sc, Arena *a) {
    Graph *g = ir_new(a, DT_F64);
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    *ev = (Eval){.e = {.arena = a, .diag = sc->diag, .g = g, .literal = literal, .warn = true, .resolve = resolve,
                       .model = model_use, .redefine = true},
                 .sc = sc};
    for (int i = 0; i < sc->ndefs; i++)
        expr_bind(&ev->e, sc->defs[i].name, sc->defs[i].loc, EXPR_LAZY);
}

static Print *add_print(Eval *ev, const AstStmt *st, const AstExpr *x, NodeId n) {
    Graph *g = ev->e.g;
    ev->prints = arena_grow(ev->e.arena, ev->prints, ev->nprints, &ev->prints_cap, sizeof *ev->prints, 16);
    Print *p = &ev->prints[ev->nprints++];
    describe(&ev->e, x, n, p);
    p->stmt = st;
    /* named as printed: what --emit=dot's boxes show */
    p->slot = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = p->label ? p->label : p->text,
                                    .shape = g->nodes[n].shape});
    ir_add_output(g, n, p->slot);
    return p;
}

/* Grows by doubling: a file's segment may hold every one of its statements. */
static void add_pending(Eval *ev, Pending p) {
    ev->pending = arena_grow(ev->e.arena, ev->pending, ev->npending, &ev->pending_cap, sizeof *ev->pending, 16);
    ev->pending[ev->npending++] = p;
}

/* Is x a number or a list of them (what `let` stores as it is written)? */
static bool is_literal(const AstExpr *x) {
    if (x->kind == EX_NUM || (x->kind == EX_NEG && x->args[0]->kind == EX_NUM))
        return true;
    if (x->kind != EX_LIST)
        return false;
    for (int i = 0; i < x->nargs; i++)
        if (!is_literal(x->args[i]))
            return false;
    return true;
}

/* Does the session show what a statement defines (the REPL, outside repeat)? */
static bool echo(const Eval *ev) { return ev->sc->repl && !ev->sc->repeating; }

/* Adds statement st to the segment; false if it ends the segment (a
 * computed let: what follows must see its value as a leaf; a definition
 * replacing another: what follows must see the values defined from it
 * again). */
static bool eval_stmt(Eval *ev, const AstStmt *st) {
    ExprEnv *e = &ev->e;
    bool redefines = st->name && expr_lookup(e, st->name);
    switch (st->kind) {
    case TOP_LET: {
        if (is_literal(st->expr)) {
            Shape s;
            double *values;
            NodeId n = -1;
            if (expr_literal(e, st->expr, &s, &values)) {
                n = leaf(ev, st->name, s, values, st->name_loc);
                add_pending(ev, (Pending){.stmt = st, .shape = s, .values = values, .print = -1});
            }
            expr_bind(e, st->name, st->name_loc, n);
            return !redefines;
        }
        /* Bound to its node too, for checking what follows after an error. */
        NodeId n = expr_lower(e, st->expr);
        if (expr_bind(e, st->name, st->name_loc, n) && n >= 0) {
            Print *p = add_print(ev, st, st->expr, n);
            p->label = e->g->slots[p->slot].name = st->name;
            p->show_text = false;
            p->quiet = !echo(ev);
            add_pending(ev, (Pending){.stmt = st, .shape = e->g->nodes[n].shape, .print = ev->nprints - 1});
        }
        return false;
    }
    case TOP_ASSIGN: {
        /* Its expression is stored: one that uses the name is a cycle. */
        ExprName *old = (ExprName *)expr_lookup(e, st->name);
        if (old)
            *old = (ExprName){old->name, st->name_loc, EXPR_RESOLVING};
        NodeId n = expr_lower(e, st->expr);
        if (expr_bind(e, st->name, st->name_loc, n) && n >= 0) {
            add_pending(ev, (Pending){.stmt = st, .print = -1});
            if (echo(ev)) { /* as its value */
                Print *p = add_print(ev, st, st->expr, n);
                p->label = st->name;
                p->show_text = false;
            }
        }
        return !redefines;
    }
    case TOP_PRINT:
    case TOP_EXPR: {
        NodeId n = expr_lower(e, st->expr);
        if (n >= 0)
            add_print(ev, st, st->expr, n);
        return true;
    }
    case TOP_REPEAT: /* here only to be checked after an error (script_exec runs it) */
        for (int i = 0; i < st->nbody; i++)
            eval_stmt(ev, &st->body[i]);
        return true;
    }
    unreachable();
}

/* The buffers of a graph's run. */
typedef struct Slots {
    void **v;
    int n;
} Slots;

static void slots_free(Slots *s) {
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* Compiles graph `run` and runs it once on `batch` samples, slot s filled
 * from init[s] (s < ninit; NULL: zeros); false (reported) if the JIT failed
 * or Ctrl-C stopped it (*out then holds the partial results). */
static bool run_graph(Script *sc, Arena *a, Graph *run, double *const *init, int ninit, Slots *out) {
    Schedule *plan = pipeline_schedule(a, &run, 2, sc->target);
    plan->interruptible = true;
    const char *fn_name = "entry";
    CgModule *mod = pipeline_codegen("entry", 1, &fn_name, &run, &plan);
    char err[1024];
    if (!sc->jit && !(sc->jit = jit_new(sc->target, err, sizeof err))) {
        cg_module_free(mod);
        diag_plain(sc->diag, "%s", err);
        return false;
    }
    JitUnit *unit = jit_add(sc->jit, mod, sc->target, err, sizeof err); /* takes mod */
    NnrtStepFn fn = unit ? (NnrtStepFn)jit_lookup(sc->jit, "entry", err, sizeof err) : NULL;
    if (!fn) {
        diag_plain(sc->diag, "%s", err);
        jit_remove(unit);
        return false;
    }
    void **slots = xcalloc((size_t)run->nslots, sizeof *slots);
    slots[0] = xcalloc(plan->arena_bytes + 64, 1);
    for (int s = 1; s < run->nslots; s++) {
        size_t n = (size_t)shape_elems(&run->slots[s].shape);
        slots[s] = xcalloc(n ? n : 1, sizeof(double));
        if (s < ninit && init[s])
            memcpy(slots[s], init[s], n * sizeof(double));
    }
    fn(slots, run->batch);
    jit_remove(unit);
    *out = (Slots){slots, run->nslots};
    if (nnrt_interrupted()) { /* Ctrl-C: the results are partial */
        fprintf(sc->out, "interrupted\n");
        return false;
    }
    return true;
}

/* Compiles the segment's graph and runs it once. */
static bool eval_run(Eval *ev, Slots *out) {
    return run_graph(ev->sc, ev->e.arena, ir_dce(ev->e.g), ev->init, ev->init_cap, out);
}

/* The value of node n of the segment so far, in its arena; NULL once
 * reported. */
static double *node_value(Eval *ev, NodeId n) {
    Graph *g = ev->e.g;
    const Shape *s = &g->nodes[n].shape;
    int slot = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "value", .shape = *s});
    Graph only = *g; /* g with n its one output */
    only.outputs = &(IrOutput){n, slot};
    only.noutputs = only.out_cap = 1;
    Slots r = {0};
    bool ok = run_graph(ev->sc, ev->e.arena, ir_dce(&only), ev->init, ev->init_cap, &r);
    double *v = NULL;
    if (ok) {
        v = arena_array(ev->e.arena, (size_t)shape_elems(s), sizeof *v);
        memcpy(v, r.v[slot], (size_t)shape_elems(s) * sizeof *v);
    }
    slots_free(&r);
    return v;
}

/* A batch's shape without its first axis: a sample's (a scalar stays one). */
static Shape sample_of(Shape s) {
    if (s.rank) {
        s.rank--;
        memmove(s.dim, s.dim + 1, (size_t)s.rank * sizeof *s.dim);
    }
    return s;
}

/* m(x): model m in evaluation mode (dropout off, batchnorm's moving
 * statistics: what --predict computes, in float64) on x, one sample of the
 * model's input shape or a batch of them on a leading axis. Its value is
 * computed now, a leaf of the segment's graph: grad does not see through
 * it. */
static NodeId model_apply(Eval *ev, const Model *m, const FitWeights *w, const AstExpr *x) {
    ExprEnv *e = &ev->e;
    if (x->nargs != 1 || x->args[0]->kind == EX_KEYWORD) {
        diag_error(e->diag, x->loc, "model '%s' takes one argument: its input (a sample, or a batch of them)",
                   m->name);
        return -1;
    }
    const AstExpr *arg = x->args[0];
    NodeId nx = expr_lower(e, arg);
    if (nx < 0)
        return -1;
    Shape xs = e->g->nodes[nx].shape, one = sample_of(xs);
    bool single = shape_eq(&xs, &m->input);
    if (!single && !shape_eq(&one, &m->input)) {
        char in[64], found[64];
        shape_str(&m->input, in, sizeof in);
        diag_error(e->diag, arg->loc, "model '%s' takes an input of shape %s, or a batch of them [n, %s; found "
                   "%s", m->name, in, in + 1, shape_str(&xs, found, sizeof found));
        return -1;
    }
    double *xv = node_value(ev, nx);
    if (!xv)
        return -1;
    Graph *g = step_graph(e->arena, m, STEP_EVAL, single ? 1 : xs.dim[0], DT_F64, INPUT_FLOAT);
    double **init = arena_array(e->arena, (size_t)g->nslots, sizeof *init);
    init[SLOT_NO_INPUT] = xv;
    for (int s = 0; s < g->nslots; s++) {
        if (!is_weight(&g->slots[s]))
            continue;
        init[s] = arena_array(e->arena, (size_t)shape_elems(&g->slots[s].shape), sizeof **init);
        kept(w, &g->slots[s], init[s]);
    }
    Slots r = {0};
    bool ok = run_graph(ev->sc, e->arena, g, init, g->nslots, &r);
    Shape ys = g->slots[SLOT_NO_OUTPUT].shape;
    double *y = NULL;
    if (ok) {
        y = arena_array(e->arena, (size_t)shape_elems(&ys), sizeof *y);
        memcpy(y, r.v[SLOT_NO_OUTPUT], (size_t)shape_elems(&ys) * sizeof *y);
    }
    slots_free(&r);
    if (!ok)
        return -1;
    if (single)
        ys = sample_of(ys);
    /* named as it would be typed: a constant [1, 1] by its elements */
    const char *unused, *text = e->g->nodes[nx].op == OP_CONST && xs.rank ? tensor_text(e->arena, xv, &xs)
                                : infix_expr(e->arena, e->g, nx, node_names(e->arena, e), &unused);
    return leaf(ev, arena_printf(e->arena, "%s(%s)", m->name, text), ys, y, x->loc);
}

/* ExprEnv.model: m(x), or why m.NAME is no weight of model m. */
static bool model_use(ExprEnv *e, const AstExpr *x, NodeId *out) {
    Eval *ev = (Eval *)e;
    const ScriptModels *ms = ev->sc->models;
    const char *dot = x->kind == EX_NAME ? strchr(x->name, '.') : NULL;
    if (!ms || (x->kind == EX_NAME && !dot))
        return false;
    const char *name = dot ? arena_strndup(e->arena, x->name, (size_t)(dot - x->name)) : x->name;
    const FitWeights *w;
    const Model *m = ms->find(ms->ctx, name, &w);
    if (!m)
        return false;
    *out = -1;
    if (!w->slots) {
        diag_error(e->diag, x->loc, "model '%s' has no weights yet: :train it or :restore a checkpoint", name);
    } else if (dot) {
        const char **names = arena_array(e->arena, (size_t)ev->sc->ndefs + 1, sizeof *names);
        int n = 0;
        for (int i = 0; i < ev->sc->ndefs; i++)
            if (weight_of(ev->sc->defs[i].name, name))
                names[n++] = ev->sc->defs[i].name;
        names[n] = NULL;
        const char *guess = closest_name(x->name, names);
        diag_error(e->diag, x->loc, "model '%s' has no weight '%s'%s%s%s", name,
                   diag_clip(e->arena, dot + 1, strlen(dot + 1)), guess ? "; did you mean '" : "",
                   guess ? guess : "", guess ? "'?" : "");
    } else {
        *out = model_apply(ev, m, w, x);
    }
    return true;
}

static void eval_print(Eval *ev, void **slots) {
    FILE *out = ev->sc->out;
    for (int i = 0; i < ev->nprints; i++) {
        const Print *p = &ev->prints[i];
        if (p->quiet)
            continue;
        if (p->label)
            fprintf(out, "%s = ", p->label);
        if (p->show_text)
            fprintf(out, "%s = ", p->text);
        const Shape *s = &ev->e.g->nodes[p->node].shape;
        print_tensor(out, slots[p->slot], s);
        if (ev->sc->repl && s->rank) {
            char buf[64];
            fprintf(out, "  # %s", shape_str(s, buf, sizeof buf));
        }
        fputc('\n', out);
        if (p->where)
            fprintf(out, "  where %s\n", p->where);
    }
    fflush(out);
}

/* The segment's definitions become the session's. */
static void eval_commit(Eval *ev, ScriptText *text, void **slots) {
    for (int i = 0; i < ev->npending; i++) {
        const Pending *p = &ev->pending[i];
        const AstStmt *st = p->stmt;
        Def d = {.name = st->name, .loc = st->name_loc, .text = text};
        if (st->kind == TOP_ASSIGN) {
            d.expr = st->expr;
        } else {
            const double *v = p->values ? p->values : slots[ev->prints[p->print].slot];
            size_t n = (size_t)shape_elems(&p->shape);
            d.shape = p->shape;
            d.values = xcalloc(n ? n : 1, sizeof(double));
            memcpy(d.values, v, n * sizeof(double));
        }
        /* The segment bound the session's names first, in order, then its
         * own in the order they are defined here. */
        int at = (int)(expr_lookup(&ev->e, st->name) - ev->e.names);
        if (at > ev->sc->ndefs)
            die("script: '%s' defined out of order", st->name);
        define(ev->sc, d, at);
    }
}

/* repeat N { ... }: the body N times. */
static bool repeat(Script *sc, ScriptText *text, const AstStmt *st) {
    bool ok = true;
    sc->repeating++;
    for (int64_t k = 0; k < st->count && ok; k++) {
        ok = script_exec(sc, text, st->body, st->nbody);
        if (ok && nnrt_interrupted()) { /* Ctrl-C in the REPL */
            fprintf(sc->out, "interrupted after %lld of %lld repetitions\n", (long long)k + 1, (long long)st->count);
            ok = false;
        }
    }
    sc->repeating--;
    return ok;
}

bool script_exec(Script *sc, ScriptText *text, const AstStmt *stmts, int n) {
    for (int i = 0; i < n;) {
        int errors = sc->diag->errors;
        Arena *a = arena_new();
        Eval ev;
        eval_init(&ev, sc, a);
        /* After an error nothing runs: the rest is only checked, in this
         * graph. A repeat runs after the segment before it. */
        while (i < n && !diag_quiet(sc->diag)) {
            bool checking = sc->diag->errors != errors;
            if (stmts[i].kind == TOP_REPEAT && !checking)
                break;
            if (!eval_stmt(&ev, &stmts[i++]) && sc->diag->errors == errors)
                break;
        }
        Slots slots = {0};
        bool ok = sc->diag->errors == errors && (ev.e.g->noutputs == 0 || eval_run(&ev, &slots));
        if (ok && sc->dot && ev.e.g->noutputs) /* what the run computed: its values and gradients */
            dot_print(sc->dot, ir_dce(ev.e.g), "statements");
        else if (ok)
            eval_print(&ev, slots.v);
        if (ok)
            eval_commit(&ev, text, slots.v);
        slots_free(&slots);
        arena_free(a);
        if (ok && i < n && stmts[i].kind == TOP_REPEAT)
            ok = repeat(sc, text, &stmts[i++]);
        if (!ok)
            return false;
    }
    return true;
}

bool script_lower(Script *sc, Arena *a, const AstExpr *x, Graph **g, NodeId *node) {
    int errors = sc->diag->errors;
    Eval ev;
    eval_init(&ev, sc, a);
    *node = expr_lower(&ev.e, x);
    *g = ev.e.g;
    return *node >= 0 && sc->diag->errors == errors;
}

int script_run(Diag *d, const AstProgram *p, FILE *out, FILE *dot, const Target *t) {
    int errors = d->errors;
    Script *sc = script_new(d, out, false, t);
    sc->dot = dot;
    bool ok = script_exec(sc, NULL, p->stmts, p->nstmts);
    script_free(sc);
    return ok ? EXIT_OK : d->errors != errors ? EXIT_INVALID_MODEL : EXIT_USAGE;
}
