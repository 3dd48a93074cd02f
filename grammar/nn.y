/* nn.y — the grammar of nnc's model language: models (sequential form) and
 * top-level statements (let, assignment, print) over tensor expressions.
 *
 * A pure parser over the reentrant lexer of nn.l; both get the ParseState.
 * Every action is one line calling an AST constructor in compiler/parse.c
 * with the locations it needs, so the grammar reads as a grammar.
 *
 * Errors: every syntax error is reported, then the parser skips to the end of
 * the statement (newline, ';' or '}') and goes on; at the top level it skips
 * to the end of the model ('}'), quietly for the next few tokens (bison's
 * rule), so that a run of stray tokens is one error. The messages are
 * written by yyreport_syntax_error below: "unexpected X in 'input x'; expected ',' or
 * ']'", with readable token names and the statement the error is in. LAC
 * keeps the expected-token lists exact. A statement starting with a word is
 * a layer line (IDENT and its arguments, as a call's: conv2d 32, 3, relu),
 * whose word the layer table of compiler/layers.c knows or not; an unknown
 * word gets "unknown statement 'dens'; did you mean 'dense'?" there, or here
 * when the rest of its line does not parse, rather than a syntax error.
 */
%code requires {
#include "parse.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
}

%code provides {
/* The lexer (nn.l): flex's bison bridge plus the parser state. */
#define YY_DECL int yylex(YYSTYPE *yylval_param, YYLTYPE *yylloc_param, yyscan_t yyscanner, ParseState *ps)
YY_DECL;
}

%code {
#include <string.h>

/* A rule is located where its first symbol is (an empty one where the
 * previous symbol is): nodes point at their first token. */
#define YYLLOC_DEFAULT(cur, rhs, n) ((cur) = (n) ? YYRHSLOC(rhs, 1) : YYRHSLOC(rhs, 0))

static void yyerror(const Loc *loc, yyscan_t scanner, ParseState *ps, const char *msg);

/* An operator chain past NNC_MAX_NESTING (reported) ends the parse. */
#define BINARY(out, op, loc, l, r) if (!((out) = ast_expr_binary(ps, op, loc, l, r))) YYABORT
}

%define api.pure full
%define api.location.type {Loc}
%locations
%define parse.error custom
%define parse.lac full
%expect 0
%param {yyscan_t scanner} {ParseState *ps}
%initial-action { @$ = (Loc){ps->src, 1, 1, 0}; }

%union {
    AstNum num;
    const char *name;
    AstArg arg;
    AstItem item;
    AstExpr *expr;
    AstExprList *list;
    int index;
}

/* Declared in the order that lists of expected tokens read best in. */
%token ',' ')' ']'
%token TK_NEWLINE "newline"
%token ';' '}'
%token <name> TK_IDENT "identifier"
%token <num> TK_NUMBER "number"
%token <name> TK_WEIGHT "model weight (m.dense1.W)"
%token KW_MODEL "'model'"
%token KW_INPUT "'input'"
%token KW_DENSE "'dense'"
%token KW_LOSS "'loss'"
%token KW_OPTIMIZER "'optimizer'"
%token KW_TRAIN "'train'"
%token KW_LET "'let'"
%token KW_PRINT "'print'"
%token KW_TARGET "'target'"
%token KW_PARAM "'param'"
%token KW_SCHEDULE "'schedule'"
%token KW_DATA "'data'"
%token KW_REPEAT "'repeat'"
%token TK_ENTRY "start of an entry" /* never in a file: the lexer's first token for a REPL entry */

/* Operators, loosest first; unary minus binds tighter than * and looser
 * than ^, so -x^2 is -(x^2) as in mathematics. */
%left '+' '-'
%left '*' '/' '@'
%precedence NEG
%right '^'

%nterm <item> stmt params param
%nterm <expr> expr call_arg keyword
%nterm <name> name
%nterm <list> exprs call_args keywords
%nterm <num> number
%nterm <arg> arg
%nterm <index> repeat_head

%%

/* input: program | ENTRY entry
 * ENTRY is no text: the lexer returns it first when parse_entry asks. */
input
    : program
    | TK_ENTRY entry
    ;

/* program: { newline | ';' | model | top sep } [top] */
program
    : items
    | items top
    ;

items
    : %empty
    | items sep
    | items model
    | items top sep
    | items top_error
    | items error '}'                                   { ps->in_model = false; }
    ;

/* top: 'let' IDENT '=' expr { ',' IDENT '=' expr }
 *    | IDENT '=' expr
 *    | 'print' expr
 *    | 'repeat' NUMBER '{' block '}' */
top
    : KW_LET lets
    | name '=' expr                                     { ast_stmt(ps, TOP_ASSIGN, @1, $1, @1, $3); }
    | KW_PRINT expr                                     { ast_stmt(ps, TOP_PRINT, @1, NULL, @1, $2); }
    | repeat_head block '}'                             { ast_repeat_end(ps, $1); }
    ;

repeat_head
    : KW_REPEAT TK_NUMBER '{'                           { $$ = ast_repeat_begin(ps, @1, $2); }
    ;

/* block: { sep | top sep } [top]: a repeat's statements */
block
    : block_items
    | block_items top
    ;

block_items
    : %empty
    | block_items sep
    | block_items top sep
    | block_items top_error
    ;

lets
    : name '=' expr                                     { ast_stmt(ps, TOP_LET, @1, $1, @1, $3); }
    | lets ',' name '=' expr                            { ast_stmt(ps, TOP_LET, @3, $3, @3, $5); }
    ;

/* entry: a program whose statements may also be bare expressions, which
 * are printed (in a file they are not allowed: there a stray word is more
 * likely a misspelt statement, and says so). */
entry
    : entry_items
    | entry_items entry_top
    ;

entry_items
    : %empty
    | entry_items sep
    | entry_items model
    | entry_items entry_top sep
    | entry_items top_error
    | entry_items error '}'                             { ps->in_model = false; }
    ;

entry_top
    : top
    | expr                                              { ast_stmt(ps, TOP_EXPR, @1, NULL, @1, $1); }
    ;

/* name: IDENT, or a statement word that cannot be mistaken there: the notes
 * call their values input, target, loss; a schedule is a plausible name too. */
name
    : TK_IDENT
    | KW_INPUT                                          { $$ = "input"; }
    | KW_TARGET                                         { $$ = "target"; }
    | KW_LOSS                                           { $$ = "loss"; }
    | KW_PARAM                                          { $$ = "param"; }
    | KW_SCHEDULE                                       { $$ = "schedule"; }
    | KW_DATA                                           { $$ = "data"; }
    ;

/* A syntax error after a statement's first token skips to the end of that
 * statement, so the next ones are still read. One at its first token skips
 * to the end of the model (items: error '}'), as at the start of any
 * top-level line: it may be a misspelt 'model' whose body must not be read
 * as statements. */
top_error
    : KW_LET error sep                                  { yyerrok; }
    | name '=' error sep                                { (void)$1; yyerrok; }
    | KW_PRINT error sep                                { yyerrok; }
    ;

/* expr: NUMBER | IDENT | WEIGHT | IDENT '(' [call_args] ')' | 'dense' '(' call_args ')'
 *     | '(' expr ')' | '[' exprs ']'
 *     | '-' expr | expr op expr        op: + - * / @ ^ */
expr
    : TK_NUMBER                                         { $$ = ast_expr_num(ps, $1); }
    | name                                              { $$ = ast_expr_name(ps, $1, @1); }
    | TK_WEIGHT                                         { $$ = ast_expr_name(ps, $1, @1); }
    | TK_IDENT '(' ')'                                  { $$ = ast_expr_call(ps, $1, @1, NULL); }
    | TK_IDENT '(' call_args ')'                        { $$ = ast_expr_call(ps, $1, @1, $3); }
    | KW_DENSE '(' call_args ')'                        { $$ = ast_expr_call(ps, "dense", @1, $3); }
    | '(' expr ')'                                      { $$ = $2; }
    | '[' exprs ']'                                     { $$ = ast_expr_list(ps, @1, $2); }
    | '-' expr %prec NEG                                { $$ = ast_expr_neg(ps, @1, $2); }
    | expr '+' expr                                     { BINARY($$, '+', @2, $1, $3); }
    | expr '-' expr                                     { BINARY($$, '-', @2, $1, $3); }
    | expr '*' expr                                     { BINARY($$, '*', @2, $1, $3); }
    | expr '/' expr                                     { BINARY($$, '/', @2, $1, $3); }
    | expr '@' expr                                     { BINARY($$, '@', @2, $1, $3); }
    | expr '^' expr                                     { BINARY($$, '^', @2, $1, $3); }
    ;

/* exprs: expr { ',' expr } */
exprs
    : expr                                              { $$ = ast_exprs_new(ps, $1); }
    | exprs ',' expr                                    { $$ = ast_exprs_add(ps, $1, $3); }
    ;

/* call_args: call_arg { ',' call_arg }    call_arg: expr | IDENT '=' expr */
call_args
    : call_arg                                          { $$ = ast_exprs_new(ps, $1); }
    | call_args ',' call_arg                            { $$ = ast_exprs_add(ps, $1, $3); }
    ;

call_arg
    : expr
    | TK_IDENT '=' expr                                 { $$ = ast_expr_keyword(ps, $1, @1, $3); }
    ;

/* model: 'model' IDENT { newline } '{' body '}' */
model
    : KW_MODEL TK_IDENT newlines '{' body '}'           { ast_model_finish(ps, @1, $2, @2); }
    ;

newlines
    : %empty
    | newlines TK_NEWLINE
    ;

/* body: { [stmt] sep } [stmt]    where sep: newline | ';'
 * The statements are collected in ps; an unknown one is reported and left out. */
body
    : lines
    | lines stmt                                        { ast_model_add(ps, $2); }
    | lines error                                       { yyerrok; }
    ;

lines
    : %empty                                            { ast_model_new(ps); }
    | lines sep
    | lines stmt sep                                    { ast_model_add(ps, $2); }
    | lines error sep                                   { yyerrok; }
    ;

sep
    : TK_NEWLINE
    | ';'
    ;

/* stmt: 'input' IDENT '[' dims ']'
 *     | 'target' IDENT '[' dims ']'
 *     | 'param' params
 *     | IDENT '=' expr
 *     | 'loss' expr    (a loss's name, a loss call, or a sum of loss calls and penalty terms)
 *     | IDENT [call_args]    (a layer line: conv2d 32, 3, relu, padding = same; flatten)
 *     | 'dense' number [',' IDENT] [',' keywords]
 *     | 'optimizer' IDENT ['(' [args] ')']
 *     | 'schedule' IDENT ['(' [args] ')']
 *     | 'train' [args]
 *     | 'data' '{' { data_value | sep | ',' } '}'    (values separated) */
stmt
    : KW_INPUT TK_IDENT '[' dims ']'                    { $$ = ast_input(ps, @1, $2, @2); }
    | TK_IDENT                                          { $$ = ast_layer(ps, $1, @1, NULL); }
    | TK_IDENT call_args                                { $$ = ast_layer(ps, $1, @1, $2); }
    | KW_DENSE number                                   { $$ = ast_dense(ps, @1, $2, NULL, @2, NULL); }
    | KW_DENSE number ',' TK_IDENT                      { $$ = ast_dense(ps, @1, $2, $4, @4, NULL); }
    | KW_DENSE number ',' TK_IDENT ',' keywords         { $$ = ast_dense(ps, @1, $2, $4, @4, $6); }
    | KW_DENSE number ',' keywords                      { $$ = ast_dense(ps, @1, $2, NULL, @2, $4); }
    | KW_LOSS expr                                      { $$ = ast_loss(ps, @1, $2); }
    | KW_OPTIMIZER TK_IDENT                             { $$ = ast_optimizer(ps, @1, $2, @2, false); }
    | KW_OPTIMIZER TK_IDENT '(' args_opt ')'            { $$ = ast_optimizer(ps, @1, $2, @2, true); }
    | KW_SCHEDULE TK_IDENT                              { $$ = ast_schedule(ps, @1, $2, @2, false); }
    | KW_SCHEDULE TK_IDENT '(' args_opt ')'             { $$ = ast_schedule(ps, @1, $2, @2, true); }
    | KW_TRAIN args_opt                                 { $$ = ast_train(ps, @1); }
    | KW_TARGET TK_IDENT '[' dims ']'                   { $$ = ast_target(ps, @1, $2, @2); }
    | KW_PARAM params                                   { $$ = $2; }
    | name '=' expr                                     { $$ = ast_assign(ps, $1, @1, $3); }
    | KW_DATA '{' data_lines '}'                        { $$ = ast_data(ps, @1); }
    | KW_DATA '{' data_lines data_value '}'             { $$ = ast_data(ps, @1); }
    ;
/* data_value: name '=' expr    (each added to the model here, before the
 * 'data' statement that holds them) */
data_lines
    : %empty
    | data_lines data_sep
    | data_lines data_value data_sep
    | data_lines error data_sep                         { yyerrok; }
    ;
data_sep
    : sep
    | ','
    ;
data_value
    : name '=' expr                                     { ast_data_value(ps, $1, @1, $3); }
    ;

/* params: param { ',' param }    (all but the last are added here, in order)
 * param: IDENT '[' dims ']' ['=' expr]    (the initializer: a name, a call or a literal) */
params
    : param
    | params ',' param                                  { ast_model_add(ps, $1); $$ = $3; }
    ;

param
    : TK_IDENT '[' dims ']'                             { $$ = ast_param(ps, $1, @1, NULL); }
    | TK_IDENT '[' dims ']' '=' expr                    { $$ = ast_param(ps, $1, @1, $6); }
    ;

/* keywords: keyword { ',' keyword }    keyword: IDENT '=' expr */
keywords
    : keyword                                           { $$ = ast_exprs_new(ps, $1); }
    | keywords ',' keyword                              { $$ = ast_exprs_add(ps, $1, $3); }
    ;

keyword
    : TK_IDENT '=' expr                                 { $$ = ast_expr_keyword(ps, $1, @1, $3); }
    ;

/* dims: number { ',' number } */
dims
    : number                                            { ast_nums_new(ps, $1); }
    | dims ',' number                                   { ast_nums_add(ps, $3); }
    ;

/* args: arg { ',' arg }    arg: IDENT '=' number */
args_opt
    : %empty                                            { ast_args_none(ps); }
    | args
    ;

args
    : arg                                               { ast_args_new(ps, $1); }
    | args ',' arg                                      { ast_args_add(ps, $3); }
    ;

arg
    : TK_IDENT '=' number                               { $$ = ast_arg(ps, $1, @1, $3); }
    ;

/* number: ['-'] NUMBER */
number
    : TK_NUMBER
    | '-' TK_NUMBER                                     { $$ = ast_negate(ps, $2, @1); }
    ;

%%

/* The parser's stack grows with the nesting of expressions: a pathological
 * nesting exhausts it (bison's YYMAXDEPTH), which is a located error rather
 * than a crash. */
static void yyerror(const Loc *loc, yyscan_t scanner, ParseState *ps, const char *msg) {
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0)
        msg = "nesting too deep";
    diag_error(ps->diag, *loc, "%s", msg);
}

/* Appends to a message buffer, cutting at its end. */
static void msg_add(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msg_add(char *buf, size_t cap, const char *fmt, ...) {
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* The word of a keyword token ("model" for 'model'), or NULL. */
static const char *keyword_word(ParseState *ps, yysymbol_kind_t sym) {
    const char *name = yysymbol_name(sym);
    size_t len = strlen(name);
    if (len < 3 || name[0] != '\'' || name[len - 1] != '\'' ||
        !(name[1] >= 'a' && name[1] <= 'z'))
        return NULL;
    return arena_strndup(ps->arena, name + 1, len - 2);
}

/* The statement an error is in, for the message: " in 'input x'". */
static void describe_statement(ParseState *ps, char *buf, size_t cap) {
    if (ps->stmt_offset == ps->tok_offset) /* the error is at its first token */
        return;
    const char *kw = NULL;
    switch (ps->stmt_tok) {
    case KW_MODEL: kw = "model"; break;
    case KW_INPUT: kw = "input"; break;
    case KW_DENSE: kw = "dense"; break;
    case KW_LOSS: kw = "loss"; break;
    case KW_OPTIMIZER: kw = "optimizer"; break;
    case KW_TRAIN: kw = "train"; break;
    case KW_LET: kw = "let"; break;
    case KW_TARGET: kw = "target"; break;
    case KW_PARAM: kw = "param"; break;
    case KW_SCHEDULE: kw = "schedule"; break;
    case KW_DATA: kw = "data"; break;
    case KW_REPEAT: kw = "repeat"; break;
    case KW_PRINT: kw = "print"; break;
    default: return;
    }
    msg_add(buf, cap, " %s '%s", ps->stmt_tok == KW_MODEL ? "after" : "in", kw);
    if (ps->stmt_name)
        msg_add(buf, cap, " %s", diag_clip(ps->arena, ps->stmt_name, strlen(ps->stmt_name)));
    msg_add(buf, cap, "'");
}

/* "unexpected X[ in STATEMENT]; expected A, B or C", or "...; did you mean
 * 'model'?" when X is a misspelt keyword. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, ParseState *ps) {
    (void)scanner;
    enum { MAX_EXPECTED = 16, MAX_SHOWN = 6 };
    yysymbol_kind_t expected[MAX_EXPECTED];
    int n = yypcontext_expected_tokens(ctx, expected, MAX_EXPECTED);
    if (n < 0)
        n = 0;
    yysymbol_kind_t tok = yypcontext_token(ctx);
    char msg[512] = "";
    /* A top-level line that starts with a word is an assignment; when no
     * '=' follows, the word itself is the mistake (a misspelt 'model', a
     * stray word): say so there. */
    if (ps->stmt_tok == TK_IDENT && n == 1 && !strcmp(yysymbol_name(expected[0]), "'='")) {
        static const char *const top_words[] = {"model", "let", "print", NULL};
        const char *word = arena_strndup(ps->arena, ps->src->text + ps->stmt_offset, ps->stmt_len);
        const char *guess = diag_quiet(ps->diag) ? NULL : closest_name(word, top_words);
        msg_add(msg, sizeof msg, "unexpected identifier '%s'; ", diag_clip(ps->arena, word, ps->stmt_len));
        if (guess)
            msg_add(msg, sizeof msg, "did you mean '%s'?", guess);
        else
            msg_add(msg, sizeof msg, "expected 'model', 'let', 'print' or an assignment NAME = expression");
        diag_error(ps->diag, ps->stmt_loc, "%s", msg);
        ps->depth = 0;
        return 0;
    }
    /* A layer line of an unknown word: the word is the mistake, whatever
     * follows it (dens 512 relu). */
    if (ps->in_model && ps->stmt_tok == TK_IDENT && ps->stmt_second != '=' && ps->tok_offset != ps->stmt_offset) {
        const char *word = arena_strndup(ps->arena, ps->src->text + ps->stmt_offset, ps->stmt_len);
        if (!layer_exists(word)) {
            ast_unknown_statement(ps, word, ps->stmt_loc);
            ps->depth = 0;
            return 0;
        }
    }
    const char *text = diag_clip(ps->arena, ps->src->text + ps->tok_offset, ps->tok_len);
    if (tok == YYSYMBOL_TK_IDENT)
        msg_add(msg, sizeof msg, "unexpected identifier '%s'", text);
    else if (tok == YYSYMBOL_TK_NUMBER)
        msg_add(msg, sizeof msg, "unexpected number '%s'", text);
    else if (tok == YYSYMBOL_YYEMPTY)
        msg_add(msg, sizeof msg, "syntax error");
    else
        msg_add(msg, sizeof msg, "unexpected %s", yysymbol_name(tok));
    describe_statement(ps, msg, sizeof msg);

    /* The expected tokens, minus the unhelpful: "end of file", '-' next
     * to "number", the words that may be names next to "identifier", and
     * the operators one by one (they become "an operator"). */
    bool number = false, operators = false, ident = false;
    int names = 0;
    const char *words[MAX_EXPECTED + 1];
    int nwords = 0;
    for (int i = 0; i < n; i++) {
        number |= expected[i] == YYSYMBOL_TK_NUMBER;
        ident |= expected[i] == YYSYMBOL_TK_IDENT;
        operators |= strcmp(yysymbol_name(expected[i]), "'*'") == 0;
    }
    for (int i = 0; i < n; i++) {
        const char *name = yysymbol_name(expected[i]);
        bool minus = strcmp(name, "'-'") == 0;
        bool op = strlen(name) == 3 && strchr("+-*/@^", name[1]);
        bool word = expected[i] == YYSYMBOL_KW_INPUT || expected[i] == YYSYMBOL_KW_TARGET ||
                    expected[i] == YYSYMBOL_KW_LOSS || expected[i] == YYSYMBOL_KW_PARAM ||
                    expected[i] == YYSYMBOL_KW_SCHEDULE || expected[i] == YYSYMBOL_KW_DATA ||
                    expected[i] == YYSYMBOL_KW_DENSE || expected[i] == YYSYMBOL_TK_WEIGHT; /* a name too */
        if (expected[i] != YYSYMBOL_YYEOF && !(number && minus) && !(operators && op) && !(ident && word))
            expected[nwords++] = expected[i];
        else if (ident && word)
            names++; /* not counted against the length of the list either */
    }
    /* A long list helps nobody: then the message says where the error is. */
    if ((operators ? nwords + 1 : n - names) > MAX_SHOWN) {
        nwords = 0;
        operators = false;
    }
    int nkw = 0;
    for (int i = 0; i < nwords; i++)
        if ((words[nkw] = keyword_word(ps, expected[i])))
            nkw++;
    words[nkw] = NULL;
    const char *guess = NULL;
    if (tok == YYSYMBOL_TK_IDENT && nkw > 0 && !diag_quiet(ps->diag)) {
        const char *word = ps->src->text + ps->tok_offset;
        guess = closest_name(arena_strndup(ps->arena, word, ps->tok_len), words);
    }
    if ((tok == YYSYMBOL_KW_MODEL || tok == YYSYMBOL_YYEOF) && ps->in_model && ps->model_name) {
        msg_add(msg, sizeof msg, " inside model '%s'; is a '}' missing?",
                diag_clip(ps->arena, ps->model_name, strlen(ps->model_name)));
    } else if (guess) {
        msg_add(msg, sizeof msg, "; did you mean '%s'?", guess);
    } else if (nwords + operators > 0) {
        msg_add(msg, sizeof msg, "; expected ");
        int nshown = nwords + operators;
        for (int i = 0; i < nshown; i++)
            msg_add(msg, sizeof msg, "%s%s", i == 0 ? "" : i + 1 < nshown ? ", " : " or ",
                    i < nwords ? yysymbol_name(expected[i]) : "an operator");
    } else if (ps->stmt_offset == ps->tok_offset) {
        msg_add(msg, sizeof msg, "; expected a statement");
    }
    diag_error(ps->diag, *yypcontext_location(ctx), "%s", msg);
    bool closer = false;
    for (int i = 0; i < nwords; i++)
        closer |= !strcmp(yysymbol_name(expected[i]), "')'") ||
                  !strcmp(yysymbol_name(expected[i]), "']'");
    if (closer && ps->depth > 0 && ps->open_loc.line < yypcontext_location(ctx)->line)
        diag_note(ps->diag, ps->open_loc, "to match this '%c'", ps->src->text[ps->open_loc.offset]);
    /* An unclosed bracket would hide the newlines that end this statement,
     * and the parser needs one to recover. */
    ps->depth = 0;
    return 0;
}
