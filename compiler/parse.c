/* parse.c — source -> AST: runs the flex lexer (grammar/nn.l) and the bison
 * parser (grammar/nn.y) over a Source, and holds the AST constructors that
 * the grammar's actions call.
 *
 * The constructors only build (checking meaning is sema's job, so --emit=ast
 * shows what was written), with one exception: the number of dimensions is
 * bounded here, so that no list grows without bound for nothing. Lists grow
 * in the ParseState and are copied to the compilation's arena at their exact
 * size when complete, so the AST carries no capacities and wastes no memory.
 */
#include "parse.h"
#include "nn.tab.h"
#include "nn.lex.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Room for one more element in a growing list of n. */
static void *ast_grow(void *v, int n, int *cap, size_t elem) {
    if (n < *cap)
        return v;
    *cap = *cap ? 2 * *cap : 16;
    return xrealloc(v, (size_t)*cap, elem);
}

/* A finished list, from the builder into the arena. */
static void *ast_copy(Arena *a, const void *v, int n, size_t elem) {
    if (n == 0)
        return NULL;
    void *w = arena_array(a, (size_t)n, elem);
    memcpy(w, v, (size_t)n * elem);
    return w;
}

static AstItem ast_item(AstKind kind, Loc loc) { return (AstItem){.kind = kind, .loc = loc}; }

/* NUMBER: digits [ '.' digits ] [ exponent ] | '.' digits [ exponent ]
 * An integer is written with digits only; one beyond int64 is kept (as a
 * double) and flagged, for sema to report where an integer is needed. */
AstNum ast_number(ParseState *ps, const char *text, size_t len, Loc loc) {
    (void)ps;
    AstNum n = {.loc = loc};
    n.is_int = strspn(text, "0123456789") == len;
    if (n.is_int) {
        int64_t v = 0;
        for (size_t i = 0; i < len && !n.too_large; i++) {
            int digit = text[i] - '0';
            if (v > (INT64_MAX - digit) / 10)
                n.too_large = true;
            else
                v = v * 10 + digit;
        }
        n.ivalue = n.too_large ? 0 : v;
        n.value = n.too_large ? strtod(text, NULL) : (double)v;
    } else {
        n.value = strtod(text, NULL);
    }
    return n;
}

/* number: '-' NUMBER */
AstNum ast_negate(ParseState *ps, AstNum n, Loc minus) {
    (void)ps;
    n.value = -n.value;
    if (n.is_int && !n.too_large)
        n.ivalue = -n.ivalue;
    n.loc = minus;
    return n;
}

/* dims: number { ',' number }
 * At most NNC_MAX_RANK: checked here, so that a huge list costs no memory. */
void ast_nums_new(ParseState *ps, AstNum first) {
    ps->nnums = 0;
    ast_nums_add(ps, first);
}

void ast_nums_add(ParseState *ps, AstNum n) {
    if (ps->nnums == NNC_MAX_RANK)
        diag_error(ps->diag, n.loc, "too many dimensions: at most %d are supported", NNC_MAX_RANK);
    if (ps->nnums >= NNC_MAX_RANK) {
        ps->nnums = NNC_MAX_RANK + 1; /* reported once per list */
        return;
    }
    ps->nums = ast_grow(ps->nums, ps->nnums, &ps->nums_cap, sizeof *ps->nums);
    ps->nums[ps->nnums++] = n;
}

/* arg: IDENT '=' number */
AstArg ast_arg(ParseState *ps, const char *key, Loc key_loc, AstNum value) {
    (void)ps;
    return (AstArg){.key = key, .loc = key_loc, .value = value};
}

/* args: arg { ',' arg } */
void ast_args_none(ParseState *ps) { ps->nargs = 0; }

void ast_args_new(ParseState *ps, AstArg first) {
    ps->nargs = 0;
    ast_args_add(ps, first);
}

void ast_args_add(ParseState *ps, AstArg arg) {
    ps->args = ast_grow(ps->args, ps->nargs, &ps->args_cap, sizeof *ps->args);
    ps->args[ps->nargs++] = arg;
}

/* stmt: 'input' IDENT '[' dims ']' */
AstItem ast_input(ParseState *ps, Loc loc, const char *name, Loc name_loc) {
    AstItem it = ast_item(AST_INPUT, loc);
    it.name = name;
    it.name_loc = name_loc;
    it.ndims = ps->nnums > NNC_MAX_RANK ? NNC_MAX_RANK : ps->nnums;
    it.dims = ast_copy(ps->arena, ps->nums, it.ndims, sizeof *it.dims);
    return it;
}

/* A layer line's item: its name (a layer's, dense's activation) and
 * arguments. */
static AstItem item_args(AstItem it, const char *name, Loc loc, const AstExprList *args) {
    it.name = name;
    it.name_loc = loc;
    if (args) {
        it.kwargs = args->v;
        it.nkwargs = args->n;
    }
    return it;
}

/* stmt: IDENT [call_args]    -- a layer line (flatten; conv2d 32, 3, relu):
 * its arguments are read by the layer's row of the table (layers.c), which
 * says whether the word names a layer. */
AstItem ast_layer(ParseState *ps, const char *name, Loc loc, AstExprList *args) {
    if (!layer_exists(name))
        ast_unknown_statement(ps, name, loc);
    AstItem it = ast_item(AST_LAYER, loc);
    return item_args(it, name, loc, args);
}

/* stmt: 'dense' number [',' IDENT] [',' keywords]
 * (no activation: act is NULL, act_loc the units') */
AstItem ast_dense(ParseState *ps, Loc loc, AstNum units, const char *act, Loc act_loc, AstExprList *kwargs) {
    (void)ps;
    AstItem it = ast_item(AST_DENSE, loc);
    it.units = units;
    return item_args(it, act, act_loc, kwargs);
}

/* stmt: 'loss' expr: a loss's name (the bare loss, of the network's
 * output), a loss call, or a sum of terms (name NULL). */
AstItem ast_loss(ParseState *ps, Loc loc, AstExpr *x) {
    (void)ps;
    AstItem it = ast_item(AST_LOSS, loc);
    it.name = x->kind == EX_NAME || x->kind == EX_CALL ? x->name : NULL;
    it.name_loc = x->loc;
    it.expr = x->kind == EX_NAME ? NULL : x;
    return it;
}

/* stmt: 'optimizer' IDENT ['(' [args] ')'] */
AstItem ast_optimizer(ParseState *ps, Loc loc, const char *name, Loc name_loc, bool has_args) {
    AstItem it = ast_item(AST_OPTIMIZER, loc);
    it.name = name;
    it.name_loc = name_loc;
    if (has_args) {
        it.nargs = ps->nargs;
        it.args = ast_copy(ps->arena, ps->args, ps->nargs, sizeof *it.args);
    }
    return it;
}

/* stmt: 'schedule' IDENT ['(' [args] ')'] */
AstItem ast_schedule(ParseState *ps, Loc loc, const char *name, Loc name_loc, bool has_args) {
    AstItem it = ast_optimizer(ps, loc, name, name_loc, has_args);
    it.kind = AST_SCHEDULE;
    return it;
}

/* stmt: 'train' [args] */
AstItem ast_train(ParseState *ps, Loc loc) {
    AstItem it = ast_item(AST_TRAIN, loc);
    it.nargs = ps->nargs;
    it.args = ast_copy(ps->arena, ps->args, ps->nargs, sizeof *it.args);
    return it;
}

/* stmt: 'target' IDENT '[' dims ']' */
AstItem ast_target(ParseState *ps, Loc loc, const char *name, Loc name_loc) {
    AstItem it = ast_input(ps, loc, name, name_loc);
    it.kind = AST_TARGET;
    return it;
}

/* param: IDENT '[' dims ']' ['=' expr] */
AstItem ast_param(ParseState *ps, const char *name, Loc name_loc, AstExpr *init) {
    AstItem it = ast_input(ps, name_loc, name, name_loc);
    it.kind = AST_PARAM;
    it.init = init;
    return it;
}

/* stmt: IDENT '=' expr */
AstItem ast_assign(ParseState *ps, const char *name, Loc name_loc, AstExpr *e) {
    (void)ps;
    AstItem it = ast_item(AST_ASSIGN, name_loc);
    it.name = name;
    it.name_loc = name_loc;
    it.expr = e;
    return it;
}

/* stmt: 'data' '{' ... '}': its values are the AST_DATA_VALUE items just
 * before it. */
AstItem ast_data(ParseState *ps, Loc loc) {
    (void)ps;
    return ast_item(AST_DATA, loc);
}

/* data_value: name '=' expr */
void ast_data_value(ParseState *ps, const char *name, Loc name_loc, AstExpr *e) {
    AstItem it = ast_assign(ps, name, name_loc, e);
    it.kind = AST_DATA_VALUE;
    ast_model_add(ps, it);
}

/* A statement of an unknown word: a statement keyword or a layer misspelt,
 * or a statement of a form this version does not know. */
void ast_unknown_statement(ParseState *ps, const char *word, Loc loc) {
    static const char *const statements[] = {"input", "target", "param", "dense", "loss", "optimizer", "schedule",
                                             "train", "data", NULL};
    enum { NSTATEMENTS = sizeof statements / sizeof statements[0] - 1 };
    const char *const *layers = layer_names();
    int nlayers = 0;
    while (layers[nlayers])
        nlayers++;
    const char **words = arena_array(ps->arena, NSTATEMENTS + (size_t)nlayers + 1, sizeof *words);
    memcpy(words, statements, sizeof statements);
    memcpy(words + NSTATEMENTS, layers, ((size_t)nlayers + 1) * sizeof *words);
    const char *shown = diag_clip(ps->arena, word, strlen(word));
    const char *guess = diag_quiet(ps->diag) ? NULL : closest_name(word, words);
    if (guess) {
        bool statement = false;
        for (int i = 0; i < NSTATEMENTS; i++)
            statement |= guess == statements[i];
        diag_error(ps->diag, loc, "unknown %s '%s'; did you mean '%s'?", statement ? "statement" : "layer", shown,
                   guess);
        return;
    }
    const char *list = "";
    for (int i = 0; i < nlayers; i++)
        list = arena_printf(ps->arena, "%s%s%s", list, i ? ", " : "", layers[i]);
    diag_error(ps->diag, loc, "unknown statement '%s'; expected input, target, param, dense, loss, optimizer, "
               "schedule, train, data, a layer (%s) or NAME = expression", shown, list);
}

/* ---------------------------------------------------------------- expressions */

static AstExpr *ast_expr(ParseState *ps, AstExprKind kind, Loc loc) {
    AstExpr *e = arena_alloc(ps->arena, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    return e;
}

/* expr: NUMBER */
AstExpr *ast_expr_num(ParseState *ps, AstNum n) {
    AstExpr *e = ast_expr(ps, EX_NUM, n.loc);
    e->num = n;
    return e;
}

/* expr: IDENT */
AstExpr *ast_expr_name(ParseState *ps, const char *name, Loc loc) {
    AstExpr *e = ast_expr(ps, EX_NAME, loc);
    e->name = name;
    return e;
}

/* e's height from its arguments'. */
static void ast_expr_height(AstExpr *e) {
    for (int i = 0; i < e->nargs; i++)
        if (e->args[i]->height >= e->height)
            e->height = e->args[i]->height + 1;
}

static void ast_expr_operands(ParseState *ps, AstExpr *e, AstExpr *l, AstExpr *r) {
    e->nargs = r ? 2 : 1;
    e->args = arena_array(ps->arena, (size_t)e->nargs, sizeof *e->args);
    e->args[0] = l;
    if (r)
        e->args[1] = r;
    ast_expr_height(e);
}

/* expr: '-' expr */
AstExpr *ast_expr_neg(ParseState *ps, Loc minus, AstExpr *x) {
    AstExpr *e = ast_expr(ps, EX_NEG, minus);
    ast_expr_operands(ps, e, x, NULL);
    return e;
}

/* expr: expr op expr    (located at the operator); NULL, reported, past
 * NNC_MAX_NESTING: the parse stops there, as it does when brackets nest
 * too deep. */
AstExpr *ast_expr_binary(ParseState *ps, char op, Loc op_loc, AstExpr *l, AstExpr *r) {
    AstExpr *e = ast_expr(ps, EX_BINARY, op_loc);
    e->op = op;
    ast_expr_operands(ps, e, l, r);
    if (e->height > NNC_MAX_NESTING) {
        diag_error(ps->diag, op_loc, "nesting too deep: more than %d operations inside one another", NNC_MAX_NESTING);
        return NULL;
    }
    return e;
}

/* expr: IDENT '(' [call_args] ')' */
AstExpr *ast_expr_call(ParseState *ps, const char *name, Loc loc, AstExprList *args) {
    AstExpr *e = ast_expr(ps, EX_CALL, loc);
    e->name = name;
    if (args) {
        e->args = args->v;
        e->nargs = args->n;
    }
    ast_expr_height(e);
    return e;
}

/* call_arg: IDENT '=' expr */
AstExpr *ast_expr_keyword(ParseState *ps, const char *key, Loc loc, AstExpr *value) {
    AstExpr *e = ast_expr(ps, EX_KEYWORD, loc);
    e->name = key;
    ast_expr_operands(ps, e, value, NULL);
    return e;
}

/* expr: '[' exprs ']' */
AstExpr *ast_expr_list(ParseState *ps, Loc open, AstExprList *elems) {
    AstExpr *e = ast_expr(ps, EX_LIST, open);
    e->args = elems->v;
    e->nargs = elems->n;
    ast_expr_height(e);
    return e;
}

/* exprs: expr { ',' expr }
 * Lists nest ([[1, 2], [3, 4]], f(g(x, y))), so each grows in the arena by
 * doubling; the memory of the outgrown arrays is the arena's until the end
 * of the compilation, a small price for a list that is rarely long. */
AstExprList *ast_exprs_new(ParseState *ps, AstExpr *first) {
    AstExprList *l = arena_alloc(ps->arena, sizeof *l);
    return ast_exprs_add(ps, l, first);
}

AstExprList *ast_exprs_add(ParseState *ps, AstExprList *l, AstExpr *e) {
    l->v = arena_grow(ps->arena, l->v, l->n, &l->cap, sizeof *l->v, 4);
    l->v[l->n++] = e;
    return l;
}

/* top: 'let' IDENT '=' expr {...} | IDENT '=' expr | 'print' expr */
void ast_stmt(ParseState *ps, AstStmtKind kind, Loc loc, const char *name, Loc name_loc, AstExpr *e) {
    ps->stmts = ast_grow(ps->stmts, ps->nstmts, &ps->stmts_cap, sizeof *ps->stmts);
    ps->stmts[ps->nstmts++] = (AstStmt){.kind = kind, .loc = loc, .name = name, .name_loc = name_loc, .expr = e};
}

/* top: 'repeat' NUMBER '{' block '}'. The statement goes in first; its
 * body is the statements parsed after it, which ast_repeat_end (at the
 * '}') moves into it. Returns its index. */
int ast_repeat_begin(ParseState *ps, Loc loc, AstNum count) {
    bool ok = count.is_int && !count.too_large && count.ivalue >= 1 && count.ivalue <= NNC_MAX_REPEAT;
    if (!ok)
        diag_error(ps->diag, count.loc, "repeat takes a whole number of times from 1 to %d", NNC_MAX_REPEAT);
    ast_stmt(ps, TOP_REPEAT, loc, NULL, loc, NULL);
    ps->stmts[ps->nstmts - 1].count = ok ? count.ivalue : 1;
    return ps->nstmts - 1;
}

void ast_repeat_end(ParseState *ps, int at) {
    AstStmt *r = &ps->stmts[at];
    r->nbody = ps->nstmts - at - 1;
    r->body = ast_copy(ps->arena, ps->stmts + at + 1, r->nbody, sizeof *r->body);
    ps->nstmts = at + 1;
    int64_t inner = 1; /* the most a statement of the body repeats */
    for (int i = 0; i < r->nbody; i++)
        if (r->body[i].kind == TOP_REPEAT && r->body[i].total > inner)
            inner = r->body[i].total;
    r->total = r->count * inner; /* each at most NNC_MAX_REPEAT: no overflow */
    if (r->total > NNC_MAX_REPEAT) {
        diag_error(ps->diag, r->loc, "repeat %lld of a body that repeats %lld times: %lld repetitions in all, "
                   "more than %d", (long long)r->count, (long long)inner, (long long)r->total, NNC_MAX_REPEAT);
        r->total = NNC_MAX_REPEAT;
    }
}

/* ---------------------------------------------------------------- models */

/* body: { [stmt] sep } [stmt] */
void ast_model_new(ParseState *ps) {
    ps->nitems = 0;
    ps->in_model = true;
}

void ast_model_add(ParseState *ps, AstItem item) {
    ps->items = ast_grow(ps->items, ps->nitems, &ps->items_cap, sizeof *ps->items);
    ps->items[ps->nitems++] = item;
}

/* model: 'model' IDENT { newline } '{' body '}' */
void ast_model_finish(ParseState *ps, Loc loc, const char *name, Loc name_loc) {
    ps->in_model = false;
    AstModel m = {.name = name, .loc = loc, .name_loc = name_loc, .nitems = ps->nitems};
    m.items = ast_copy(ps->arena, ps->items, ps->nitems, sizeof *m.items);
    ps->models = ast_grow(ps->models, ps->nmodels, &ps->models_cap, sizeof *ps->models);
    ps->models[ps->nmodels++] = m;
}

static AstProgram *parse(Arena *a, Diag *d, const Source *src, int start_token) {
    int errors = d->errors;
    if (src->len > INT_MAX) { /* flex takes an int; source_read refuses such files anyway */
        diag_plain(d, "'%s' is too large to parse", src->path);
        return NULL;
    }
    ParseState ps = {.arena = a, .diag = d, .src = src, .line = src->first_line ? src->first_line : 1, .col = 1,
                      .stmt_start = true, .start_token = start_token};
    yyscan_t scanner;
    if (yylex_init(&scanner) != 0)
        die("cannot create the lexer");
    /* yy_scan_bytes copies the text and handles NUL bytes in it. */
    YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, scanner);
    yyparse(scanner, &ps);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    AstProgram *p = arena_alloc(a, sizeof *p);
    p->nmodels = ps.nmodels;
    p->models = ast_copy(a, ps.models, ps.nmodels, sizeof *p->models);
    p->nstmts = ps.nstmts;
    p->stmts = ast_copy(a, ps.stmts, ps.nstmts, sizeof *p->stmts);
    free(ps.stmts);
    free(ps.nums);
    free(ps.args);
    free(ps.items);
    free(ps.models);
    return d->errors == errors ? p : NULL;
}

AstProgram *parse_program(Arena *a, Diag *d, const Source *src) {
    int errors = d->errors;
    AstProgram *p = parse(a, d, src, 0);
    if (p && p->nmodels == 0 && p->nstmts == 0)
        diag_error(d, (Loc){src, 1, 1, 0}, "no model in '%s'", src->path);
    return d->errors == errors ? p : NULL;
}

/* The lexer run by hand over --schedule's text: the current token. */
typedef struct OptLex {
    yyscan_t scanner;
    ParseState ps;
    int tok; /* 0 at the end */
    YYSTYPE v;
    Loc loc;
} OptLex;

static int opt_next(OptLex *x) { return x->tok = yylex(&x->v, &x->loc, x->scanner, &x->ps); }

/* One argument, at its first token: IDENT '=' ['-'] NUMBER. */
static bool opt_arg(OptLex *x, Diag *d) {
    if (x->tok != TK_IDENT) {
        diag_error(d, x->loc, "expected an argument NAME = number in --schedule");
        return false;
    }
    const char *key = x->v.name;
    Loc key_loc = x->loc;
    if (opt_next(x) != '=') {
        diag_error(d, x->loc, "expected '=' after '%s' in --schedule", diag_clip(x->ps.arena, key, strlen(key)));
        return false;
    }
    bool neg = opt_next(x) == '-';
    Loc minus = x->loc;
    if (neg)
        opt_next(x);
    if (x->tok != TK_NUMBER) {
        diag_error(d, x->loc, "expected a number in --schedule");
        return false;
    }
    ast_args_add(&x->ps, ast_arg(&x->ps, key, key_loc, neg ? ast_negate(&x->ps, x->v.num, minus) : x->v.num));
    opt_next(x);
    return true;
}

/* --schedule's text, read by the language's lexer so that its names and
 * numbers are the file's:
 *   option: IDENT ['(' [arg {',' arg}] ')']    arg: IDENT '=' ['-'] NUMBER */
AstItem *parse_schedule_option(Arena *a, Diag *d, const Source *src) {
    OptLex x = {.ps = {.arena = a, .diag = d, .src = src, .line = 1, .col = 1, .stmt_start = true}};
    if (yylex_init(&x.scanner) != 0)
        die("cannot create the lexer");
    YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, x.scanner);
    int errors = d->errors;
    AstItem *it = NULL;
    if (opt_next(&x) != TK_IDENT) {
        diag_error(d, x.loc, "expected a schedule name, e.g. cosine(decay_steps = 1000), in --schedule");
    } else {
        const char *name = x.v.name;
        Loc name_loc = x.loc;
        bool has_args = opt_next(&x) == '(';
        ast_args_none(&x.ps);
        if (has_args && opt_next(&x) != ')') {
            bool ok = opt_arg(&x, d);
            while (ok && x.tok == ',') {
                opt_next(&x);
                ok = opt_arg(&x, d);
            }
            if (ok && x.tok != ')')
                diag_error(d, x.loc, "expected ',' or ')' in --schedule");
        }
        if (d->errors == errors && has_args)
            opt_next(&x);
        if (d->errors == errors && x.tok != 0)
            diag_error(d, x.loc, "unexpected text after the schedule in --schedule");
        it = arena_alloc(a, sizeof *it);
        *it = ast_schedule(&x.ps, name_loc, name, name_loc, has_args);
    }
    yy_delete_buffer(buf, x.scanner);
    yylex_destroy(x.scanner);
    free(x.ps.args);
    return d->errors == errors ? it : NULL;
}
AstProgram *parse_entry(Arena *a, Diag *d, const Source *src) { return parse(a, d, src, TK_ENTRY); }
