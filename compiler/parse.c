/* parse.c — source -> AST: runs the flex lexer (grammar/nn.l) and the bison
 * parser (grammar/nn.y) over a Source, and holds the AST constructors that
 * the grammar's actions call.
 *
 * The constructors only build: checking meaning is sema's job, so that the AST
 * is what was written and --emit=ast shows it faithfully. All nodes live in
 * the compilation's arena; lists grow by doubling, with the capacity implied
 * by the count, so the AST structs carry no capacity fields.
 */
#include "nnc.h"
#include "nn.tab.h"
#include "nn.lex.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Room for one more element in an array of `n` whose capacity is the next
 * power of two at or above n. */
static void *ast_grow(Arena *a, void *v, int n, size_t elem) {
    if (n > 0 && (n & (n - 1)) != 0)
        return v;
    void *w = arena_array(a, n > 0 ? 2 * (size_t)n : 1, elem);
    if (n > 0)
        memcpy(w, v, (size_t)n * elem);
    return w;
}

static AstItem *ast_item(ParseState *ps, AstKind kind, Loc loc) {
    AstItem *it = arena_alloc(ps->arena, sizeof *it);
    it->kind = kind;
    it->loc = loc;
    return it;
}

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

/* dims: number { ',' number } */
AstNumList ast_nums_add(ParseState *ps, AstNumList l, AstNum n) {
    l.v = ast_grow(ps->arena, l.v, l.n, sizeof *l.v);
    l.v[l.n++] = n;
    return l;
}

/* arg: IDENT '=' number */
AstArg ast_arg(ParseState *ps, const char *key, Loc key_loc, AstNum value) {
    (void)ps;
    return (AstArg){.key = key, .loc = key_loc, .value = value};
}

/* args: arg { ',' arg } */
AstArgList ast_args_add(ParseState *ps, AstArgList l, AstArg arg) {
    l.v = ast_grow(ps->arena, l.v, l.n, sizeof *l.v);
    l.v[l.n++] = arg;
    return l;
}

/* stmt: 'input' IDENT '[' dims ']' */
AstItem *ast_input(ParseState *ps, Loc loc, const char *name, Loc name_loc, AstNumList dims) {
    AstItem *it = ast_item(ps, AST_INPUT, loc);
    it->name = name;
    it->name_loc = name_loc;
    it->dims = dims.v;
    it->ndims = dims.n;
    return it;
}

/* stmt: 'flatten' */
AstItem *ast_flatten(ParseState *ps, Loc loc) { return ast_item(ps, AST_FLATTEN, loc); }

/* stmt: 'dense' number [',' IDENT]     (no activation: act is NULL, act_loc the units') */
AstItem *ast_dense(ParseState *ps, Loc loc, AstNum units, const char *act, Loc act_loc) {
    AstItem *it = ast_item(ps, AST_DENSE, loc);
    it->units = units;
    it->name = act;
    it->name_loc = act_loc;
    return it;
}

/* stmt: 'loss' IDENT */
AstItem *ast_loss(ParseState *ps, Loc loc, const char *name, Loc name_loc) {
    AstItem *it = ast_item(ps, AST_LOSS, loc);
    it->name = name;
    it->name_loc = name_loc;
    return it;
}

/* stmt: 'optimizer' IDENT ['(' [args] ')'] */
AstItem *ast_optimizer(ParseState *ps, Loc loc, const char *name, Loc name_loc, AstArgList args) {
    AstItem *it = ast_item(ps, AST_OPTIMIZER, loc);
    it->name = name;
    it->name_loc = name_loc;
    it->args = args.v;
    it->nargs = args.n;
    return it;
}

/* stmt: 'train' [args] */
AstItem *ast_train(ParseState *ps, Loc loc, AstArgList args) {
    AstItem *it = ast_item(ps, AST_TRAIN, loc);
    it->args = args.v;
    it->nargs = args.n;
    return it;
}

/* stmt: IDENT junk    -- a statement keyword misspelt, or a statement of
 * a form this version does not know. */
AstItem *ast_unknown_statement(ParseState *ps, const char *word, Loc loc) {
    static const char *const statements[] = {"input", "flatten", "dense", "loss", "optimizer",
                                             "train", NULL};
    const char *shown = diag_clip(ps->arena, word, strlen(word));
    const char *guess = diag_quiet(ps->diag) ? NULL : closest_name(word, statements);
    if (guess)
        diag_error(ps->diag, loc, "unknown statement '%s'; did you mean '%s'?", shown, guess);
    else
        diag_error(ps->diag, loc,
                   "unknown statement '%s'; expected input, flatten, dense, loss, optimizer or "
                   "train", shown);
    return NULL;
}

/* body: { [stmt] sep } [stmt] */
AstModel *ast_model_new(ParseState *ps) { return arena_alloc(ps->arena, sizeof(AstModel)); }

AstModel *ast_model_add(ParseState *ps, AstModel *m, AstItem *item) {
    if (item) {
        m->items = ast_grow(ps->arena, m->items, m->nitems, sizeof *m->items);
        m->items[m->nitems++] = *item;
    }
    return m;
}

/* model: 'model' IDENT { newline } '{' body '}' */
void ast_model_finish(ParseState *ps, AstModel *m, Loc loc, const char *name, Loc name_loc) {
    m->name = name;
    m->loc = loc;
    m->name_loc = name_loc;
    AstProgram *p = ps->prog;
    p->models = ast_grow(ps->arena, p->models, p->nmodels, sizeof *p->models);
    p->models[p->nmodels++] = *m;
}

AstProgram *parse_program(Arena *a, Diag *d, const Source *src) {
    int errors = d->errors;
    if (src->len > INT_MAX) { /* flex takes an int; source_read refuses such files anyway */
        diag_plain(d, "'%s' is too large to parse", src->path);
        return NULL;
    }
    ParseState ps = {.arena = a, .diag = d, .src = src, .line = 1, .col = 1, .stmt_start = true};
    ps.prog = arena_alloc(a, sizeof *ps.prog);
    yyscan_t scanner;
    if (yylex_init(&scanner) != 0)
        die("cannot create the lexer");
    /* yy_scan_bytes copies the text and handles NUL bytes in it. */
    YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, scanner);
    yyparse(scanner, &ps);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    if (d->errors == errors && ps.prog->nmodels == 0)
        diag_error(d, (Loc){src, 1, 1, 0}, "no model in '%s'", src->path);
    return d->errors == errors ? ps.prog : NULL;
}
