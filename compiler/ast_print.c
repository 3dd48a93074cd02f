/* ast_print.c — --emit=ast: the AST as an indented tree, one node per line,
 * each with the line:col it came from.
 *
 * The format is golden-tested, so it is plain and stable: two spaces per
 * level, integers as written (int64), other numbers with %g. An expression
 * is one line in prefix form, fully parenthesised, so a test shows how the
 * operators grouped: (+ (^ x 2) (neg y)).
 */
#include "nnc.h"

#include <inttypes.h>

static void ast_print_num(FILE *out, const AstNum *n) {
    if (n->is_int && !n->too_large)
        fprintf(out, "%" PRId64, n->ivalue);
    else
        fprintf(out, "%g", n->value);
}

static void ast_print_loc(FILE *out, Loc loc) { fprintf(out, " @%d:%d\n", loc.line, loc.col); }

static void ast_print_args(FILE *out, const AstItem *it) {
    for (int i = 0; i < it->nargs; i++) {
        const AstArg *arg = &it->args[i];
        fprintf(out, "      arg %s = ", arg->key);
        ast_print_num(out, &arg->value);
        ast_print_loc(out, arg->loc);
    }
}

static void ast_print_expr(FILE *out, const AstExpr *e) {
    switch (e->kind) {
    case EX_NUM: ast_print_num(out, &e->num); return;
    case EX_NAME: fputs(e->name, out); return;
    case EX_KEYWORD: fprintf(out, "%s=", e->name); ast_print_expr(out, e->args[0]); return;
    case EX_LIST: fputs("[", out); break;
    case EX_NEG: fputs("(neg", out); break;
    case EX_BINARY: fprintf(out, "(%c", e->op); break;
    case EX_CALL: fprintf(out, "(%s", e->name); break;
    }
    for (int i = 0; i < e->nargs; i++) {
        fputs(e->kind == EX_LIST && i == 0 ? "" : " ", out);
        ast_print_expr(out, e->args[i]);
    }
    fputs(e->kind == EX_LIST ? "]" : ")", out);
}

static void ast_print_item(FILE *out, const AstItem *it) {
    switch (it->kind) {
    case AST_INPUT:
        fprintf(out, "    input %s [", it->name);
        for (int i = 0; i < it->ndims; i++) {
            if (i > 0)
                fputs(", ", out);
            ast_print_num(out, &it->dims[i]);
        }
        fputc(']', out);
        ast_print_loc(out, it->loc);
        return;
    case AST_LAYER:
        fprintf(out, "    %s", it->name);
        for (int i = 0; i < it->nkwargs; i++) {
            fputc(' ', out);
            ast_print_expr(out, it->kwargs[i]);
        }
        ast_print_loc(out, it->loc);
        return;
    case AST_DENSE:
        fputs("    dense ", out);
        ast_print_num(out, &it->units);
        if (it->name)
            fprintf(out, " %s", it->name);
        for (int i = 0; i < it->nkwargs; i++) {
            fputc(' ', out);
            ast_print_expr(out, it->kwargs[i]);
        }
        ast_print_loc(out, it->loc);
        return;
    case AST_LOSS:
        fputs("    loss ", out);
        if (it->expr)
            ast_print_expr(out, it->expr);
        else
            fputs(it->name, out);
        ast_print_loc(out, it->loc);
        return;
    case AST_TARGET:
    case AST_PARAM:
        fprintf(out, "    %s %s [", it->kind == AST_TARGET ? "target" : "param", it->name);
        for (int i = 0; i < it->ndims; i++) {
            if (i > 0)
                fputs(", ", out);
            ast_print_num(out, &it->dims[i]);
        }
        fputc(']', out);
        if (it->init) {
            fputs(" = ", out);
            ast_print_expr(out, it->init);
        }
        ast_print_loc(out, it->loc);
        return;
    case AST_ASSIGN:
    case AST_DATA_VALUE:
        fprintf(out, "    %s %s = ", it->kind == AST_ASSIGN ? "assign" : "data value", it->name);
        ast_print_expr(out, it->expr);
        ast_print_loc(out, it->loc);
        return;
    case AST_OPTIMIZER:
    case AST_SCHEDULE:
        fprintf(out, "    %s %s", it->kind == AST_OPTIMIZER ? "optimizer" : "schedule", it->name);
        ast_print_loc(out, it->loc);
        ast_print_args(out, it);
        return;
    case AST_DATA:
        fputs("    data", out);
        ast_print_loc(out, it->loc);
        return;
    case AST_TRAIN:
        fputs("    train", out);
        ast_print_loc(out, it->loc);
        ast_print_args(out, it);
        return;
    }
    unreachable();
}

static void ast_print_stmt(FILE *out, const AstStmt *st, int depth) {
    static const char *const kinds[] = {[TOP_LET] = "let", [TOP_ASSIGN] = "assign", [TOP_PRINT] = "print",
                                        [TOP_EXPR] = "expr", [TOP_REPEAT] = "repeat"};
    fprintf(out, "%*s%s ", 2 * depth, "", kinds[st->kind]);
    if (st->kind == TOP_REPEAT) {
        fprintf(out, "%lld", (long long)st->count);
        ast_print_loc(out, st->loc);
        for (int i = 0; i < st->nbody; i++)
            ast_print_stmt(out, &st->body[i], depth + 1);
        return;
    }
    if (st->name)
        fprintf(out, "%s = ", st->name);
    ast_print_expr(out, st->expr);
    ast_print_loc(out, st->loc);
}

void ast_print(FILE *out, const AstProgram *p) {
    fputs("program\n", out);
    for (int i = 0; i < p->nstmts; i++)
        ast_print_stmt(out, &p->stmts[i], 1);
    for (int i = 0; i < p->nmodels; i++) {
        const AstModel *m = &p->models[i];
        fprintf(out, "  model %s", m->name);
        ast_print_loc(out, m->loc);
        for (int j = 0; j < m->nitems; j++)
            ast_print_item(out, &m->items[j]);
    }
}
