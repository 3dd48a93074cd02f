/* parse.h — the parser's internals, shared by parse.c and the lexer and
 * parser generated from grammar/nn.l and grammar/nn.y. The other stages see
 * only the AST and parse_program (nnc.h). */
#ifndef NNC_PARSE_H
#define NNC_PARSE_H

#include "nnc.h"

/* Parser internals, shared by parse.c and the lexer and parser generated from
 * grammar/nn.l and grammar/nn.y. */
typedef struct ParseState {
    Arena *arena;
    Diag *diag;
    const Source *src;
    /* The lexer's position: the next byte. */
    int line, col;
    size_t offset;
    int depth;              /* open '(' and '[': newlines inside them are not separators */
    Loc open_loc;           /* the last '(' or '[' */
    bool stmt_start;        /* the next token starts a statement */
    int start_token;        /* returned by the lexer first (TK_ENTRY), then 0 */
    /* What syntax error messages quote: the last token (the parser's
     * lookahead when it finds an error) and the statement it is in. */
    int tok;
    size_t tok_offset, tok_len;
    int stmt_tok;           /* the token that started the current statement */
    size_t stmt_offset;
    Loc stmt_loc;           /* ... its position and length */
    size_t stmt_len;
    int stmt_second;        /* the token after it ('=': an assignment, not a layer line) */
    const char *stmt_name;  /* the identifier right after it: input x, optimizer sgd, model m */
    bool in_model;          /* in a model's body: a statement starting with a word is a layer line */
    const char *model_name; /* the model being parsed */
    /* The lists being built (they never nest): in malloc'd memory while they
     * grow, then copied to the arena at their exact size. */
    AstNum *nums;
    int nnums, nums_cap;
    AstArg *args;
    int nargs, args_cap;
    AstItem *items;
    int nitems, items_cap;
    AstModel *models;
    int nmodels, models_cap;
    AstStmt *stmts; /* a repeat's body follows it until its '}' (ast_repeat_end) */
    int nstmts, stmts_cap;
} ParseState;

/* Called by the lexer for every number literal (yytext is NUL-terminated). */
AstNum ast_number(ParseState *ps, const char *text, size_t len, Loc loc);
/* AST constructors, called by the grammar's actions; see the rules above
 * them in parse.c. Lists are built in `ps` and taken by the statement that
 * holds them. */
AstNum ast_negate(ParseState *ps, AstNum n, Loc minus);
void ast_nums_new(ParseState *ps, AstNum first);
void ast_nums_add(ParseState *ps, AstNum n);
AstArg ast_arg(ParseState *ps, const char *key, Loc key_loc, AstNum value);
void ast_args_none(ParseState *ps);
void ast_args_new(ParseState *ps, AstArg first);
void ast_args_add(ParseState *ps, AstArg arg);
AstItem ast_input(ParseState *ps, Loc loc, const char *name, Loc name_loc);
AstItem ast_layer(ParseState *ps, const char *name, Loc loc, AstExprList *args);
AstItem ast_dense(ParseState *ps, Loc loc, AstNum units, const char *act, Loc act_loc, AstExprList *kwargs);
AstItem ast_loss(ParseState *ps, Loc loc, AstExpr *x);
AstItem ast_optimizer(ParseState *ps, Loc loc, const char *name, Loc name_loc, bool has_args);
AstItem ast_schedule(ParseState *ps, Loc loc, const char *name, Loc name_loc, bool has_args);
AstItem ast_train(ParseState *ps, Loc loc);
AstItem ast_target(ParseState *ps, Loc loc, const char *name, Loc name_loc);
AstItem ast_param(ParseState *ps, const char *name, Loc name_loc, AstExpr *init);
AstItem ast_assign(ParseState *ps, const char *name, Loc name_loc, AstExpr *e);
AstItem ast_data(ParseState *ps, Loc loc);
void ast_data_value(ParseState *ps, const char *name, Loc name_loc, AstExpr *e);
void ast_unknown_statement(ParseState *ps, const char *word, Loc loc);
AstExpr *ast_expr_num(ParseState *ps, AstNum n);
AstExpr *ast_expr_name(ParseState *ps, const char *name, Loc loc);
AstExpr *ast_expr_neg(ParseState *ps, Loc minus, AstExpr *e);
AstExpr *ast_expr_binary(ParseState *ps, char op, Loc op_loc, AstExpr *l, AstExpr *r);
AstExpr *ast_expr_call(ParseState *ps, const char *name, Loc loc, AstExprList *args);
AstExpr *ast_expr_keyword(ParseState *ps, const char *key, Loc loc, AstExpr *value);
AstExpr *ast_expr_list(ParseState *ps, Loc open, AstExprList *elems);
AstExprList *ast_exprs_new(ParseState *ps, AstExpr *first);
AstExprList *ast_exprs_add(ParseState *ps, AstExprList *l, AstExpr *e);
void ast_stmt(ParseState *ps, AstStmtKind kind, Loc loc, const char *name, Loc name_loc, AstExpr *e);
int ast_repeat_begin(ParseState *ps, Loc loc, AstNum count);
void ast_repeat_end(ParseState *ps, int at);
void ast_model_new(ParseState *ps);
void ast_model_add(ParseState *ps, AstItem item);
void ast_model_finish(ParseState *ps, Loc loc, const char *name, Loc name_loc);

#endif
