/* data.c — inline data of a model, for the course's tiny worked examples:
 *
 *     data { x = [[3, 4]], y = [[6]] }
 *
 * Each value is a literal holding n samples of an input or a target (its
 * declared shape per sample, after a leading axis of n). They are packed
 * here as the step function's slots hold them: the inputs side by side in
 * one row per sample, the targets likewise, so the runtime trains on them
 * as on samples read from IDX files, through the same loop.
 */
#include "nnc.h"

#include <string.h>

/* The inputs and targets of a model, in the order their slots pack them. */
typedef struct Declared {
    const AstItem **v;
    int n;
} Declared;

static const char *names_text(Arena *a, const Declared *dl) {
    const char *s = "";
    for (int i = 0; i < dl->n; i++)
        s = arena_printf(a, "%s%s'%s'", s, i == 0 ? "" : i + 1 < dl->n ? ", " : " and ", dl->v[i]->name);
    return s;
}

static int64_t declared_elems(const AstItem *it) {
    int64_t n = 1;
    for (int i = 0; i < it->ndims; i++)
        n *= it->dims[i].ivalue; /* sema bounded the product */
    return n;
}

/* One value: its shape checked against the declaration `it`. Its samples go
 * to column `col` of the rows of `row` elements in *out (allocated by the
 * first value, which sets *n). False once reported. */
static bool data_value(ExprEnv *e, const AstItem *v, const AstItem *it, int64_t *n, Loc *first, int64_t col,
                       int64_t row, double **out) {
    Shape s;
    double *x;
    if (!expr_literal(e, v->expr, &s, &x))
        return false;
    bool fits = s.rank == it->ndims + 1;
    for (int i = 0; fits && i < it->ndims; i++)
        fits = s.dim[i + 1] == it->dims[i].ivalue;
    if (!fits) {
        const char *want = "[n";
        for (int i = 0; i < it->ndims; i++)
            want = arena_printf(e->arena, "%s, %lld", want, (long long)it->dims[i].ivalue);
        char b[96];
        diag_error(e->diag, v->expr->loc, "data for '%s' holds samples on its first axis: expected %s], found %s",
                   v->name, want, shape_str(&s, b, sizeof b));
        return false;
    }
    if (*n == 0) {
        *n = s.dim[0];
        *first = v->name_loc;
    } else if (s.dim[0] != *n) {
        diag_error(e->diag, v->expr->loc, "data for '%s' has %lld sample%s, but the first value has %lld", v->name,
                   (long long)s.dim[0], s.dim[0] == 1 ? "" : "s", (long long)*n);
        diag_note(e->diag, *first, "the first value is here");
        return false;
    }
    if (!*out)
        *out = arena_array(e->arena, (size_t)*n * (size_t)row, sizeof **out);
    int64_t k = declared_elems(it);
    for (int64_t i = 0; i < *n; i++)
        memcpy(*out + i * row + col, x + i * k, (size_t)k * sizeof *x);
    return true;
}

const ModelData *data_check(Arena *a, Diag *d, const Model *m, const AstModel *ast, const AstItem *data) {
    int errors = d->errors;
    Declared dl = {arena_array(a, (size_t)ast->nitems, sizeof *dl.v), 0};
    int64_t *col = arena_array(a, (size_t)ast->nitems, sizeof *col);
    const AstItem **given = arena_array(a, (size_t)ast->nitems, sizeof *given);
    int64_t xcol = 0, ycol = 0;
    for (int k = 0; k < 2; k++) /* the inputs, then the targets */
        for (int i = 0; i < ast->nitems; i++)
            if (ast->items[i].kind == (k ? AST_TARGET : AST_INPUT)) {
                col[dl.n] = k ? ycol : xcol;
                *(k ? &ycol : &xcol) += declared_elems(&ast->items[i]);
                dl.v[dl.n++] = &ast->items[i];
            }
    if (ycol == 0) { /* a sequential model, or a functional one without a target */
        diag_error(d, data->loc, "data needs a model with a 'target': the values name its inputs and targets");
        return NULL;
    }
    ExprEnv e = {.arena = a, .diag = d};
    ModelData *md = arena_alloc(a, sizeof *md);
    md->loc = data->loc;
    Loc first = data->loc;
    for (int i = 0; i < ast->nitems; i++) {
        const AstItem *v = &ast->items[i];
        if (v->kind != AST_DATA_VALUE)
            continue;
        int j = 0;
        while (j < dl.n && strcmp(dl.v[j]->name, v->name) != 0)
            j++;
        if (j == dl.n) {
            diag_error(d, v->name_loc, "'%s' is not an input or a target of model '%s'; expected %s",
                       diag_clip(a, v->name, strlen(v->name)), m->name, names_text(a, &dl));
        } else if (given[j]) {
            diag_error(d, v->name_loc, "data for '%s' is given twice", v->name);
            diag_note(d, given[j]->name_loc, "it was first given here");
        } else {
            given[j] = v;
            bool target = dl.v[j]->kind == AST_TARGET;
            data_value(&e, v, dl.v[j], &md->n, &first, col[j], target ? m->label_size : shape_elems(&m->input),
                       target ? &md->y : &md->x);
        }
    }
    Declared missing = {arena_array(a, (size_t)dl.n, sizeof *missing.v), 0};
    for (int j = 0; j < dl.n; j++)
        if (!given[j])
            missing.v[missing.n++] = dl.v[j];
    if (missing.n && d->errors == errors)
        diag_error(d, data->loc, "data gives no value for %s; every input and target needs one",
                   names_text(a, &missing));
    return d->errors == errors ? md : NULL;
}
