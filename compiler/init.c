/* init.c — initializers as the language writes them, Keras' names and
 * definitions, checked and turned into the runtime's NnrtInit:
 *
 *   zeros  ones  constant(v)  uniform(a, b)  normal(mean, std)
 *   glorot_uniform  glorot_normal  he_uniform  he_normal    (he, glorot: the
 *   first short names, kept: he_normal and glorot_uniform)
 *   [1, 2], [[1, 2], [3, 4]]    a literal of the parameter's shape
 *
 * The values are drawn by the runtime (rng.c) when the buffers are made, from
 * the run's seed, so the compiler only says which distribution. A parameter's
 * initializer is an expression of the grammar, so a misspelt name or a wrong
 * number of arguments is located like any other error.
 */
#include "nnc.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    NnrtInitKind kind;
    int nargs;
    const char *usage;
    double value; /* a constant's without arguments */
} inits[] = {
    {"zeros", NNRT_INIT_ZEROS, 0, "zeros", 0},
    {"ones", NNRT_INIT_CONSTANT, 0, "ones", 1},
    {"constant", NNRT_INIT_CONSTANT, 1, "constant(value)", 0},
    {"uniform", NNRT_INIT_UNIFORM, 2, "uniform(low, high)", 0},
    {"normal", NNRT_INIT_NORMAL, 2, "normal(mean, std)", 0},
    {"glorot_uniform", NNRT_INIT_GLOROT_UNIFORM, 0, "glorot_uniform", 0},
    {"glorot_normal", NNRT_INIT_GLOROT_NORMAL, 0, "glorot_normal", 0},
    {"he_uniform", NNRT_INIT_HE_UNIFORM, 0, "he_uniform", 0},
    {"he_normal", NNRT_INIT_HE_NORMAL, 0, "he_normal", 0},
    {"glorot", NNRT_INIT_GLOROT_UNIFORM, 0, "glorot", 0},
    {"he", NNRT_INIT_HE_NORMAL, 0, "he", 0},
};
enum { NINITS = sizeof inits / sizeof inits[0] };

void init_fans(const Shape *s, int64_t *fan_in, int64_t *fan_out) {
    if (s->rank == 0) {
        *fan_in = *fan_out = 1;
    } else if (s->rank == 1) {
        *fan_in = *fan_out = s->dim[0];
    } else { /* a matrix [in, out]; beyond, Keras' receptive field times those */
        int64_t field = 1;
        for (int i = 0; i < s->rank - 2; i++)
            field *= s->dim[i];
        *fan_in = field * s->dim[s->rank - 2];
        *fan_out = field * s->dim[s->rank - 1];
    }
}

/* A number argument (v, -v); false once reported. */
static bool init_number(ExprEnv *e, const AstExpr *x, const char *usage, double *out) {
    if (x->kind == EX_KEYWORD) {
        diag_error(e->diag, x->loc, "initializer arguments are positional: %s", usage);
        return false;
    }
    if (x->kind == EX_NUM || (x->kind == EX_NEG && x->args[0]->kind == EX_NUM)) {
        *out = x->kind == EX_NUM ? x->num.value : -x->args[0]->num.value;
        if (isfinite(*out))
            return true;
    }
    diag_error(e->diag, x->loc, "expected a number as an argument of %s", usage);
    return false;
}

/* A literal tensor of exactly the parameter's shape. */
static bool init_literal(ExprEnv *e, const AstExpr *x, const Shape *shape, NnrtInit *out) {
    Shape s;
    double *values;
    if (!expr_literal(e, x, &s, &values))
        return false;
    if (shape && !shape_eq(&s, shape)) {
        char b1[96], b2[96];
        diag_error(e->diag, x->loc, "the initial value has shape %s; the parameter is %s",
                   shape_str(&s, b1, sizeof b1), shape_str(shape, b2, sizeof b2));
        return false;
    }
    *out = (NnrtInit){.kind = NNRT_INIT_VALUES, .values = values};
    return true;
}

bool init_resolve(ExprEnv *e, const AstExpr *x, const Shape *shape, NnrtInit *out) {
    if (x->kind == EX_LIST)
        return init_literal(e, x, shape, out);
    if (x->kind != EX_NAME && x->kind != EX_CALL) {
        diag_error(e->diag, x->loc, "expected an initializer: a name such as he_uniform, a call such as "
                   "normal(0, 0.05), or a literal such as [1, 2]");
        return false;
    }
    int k = 0;
    while (k < NINITS && strcmp(inits[k].name, x->name) != 0)
        k++;
    if (k == NINITS) {
        const char *names[NINITS + 1];
        for (int i = 0; i < NINITS; i++)
            names[i] = inits[i].name;
        names[NINITS] = NULL;
        const char *guess = diag_quiet(e->diag) ? NULL : closest_name(x->name, names);
        const char *shown = diag_clip(e->arena, x->name, strlen(x->name));
        if (guess)
            diag_error(e->diag, x->loc, "unknown initializer '%s'; did you mean '%s'?", shown, guess);
        else
            diag_error(e->diag, x->loc, "unknown initializer '%s'; expected zeros, ones, constant(v), uniform(a, b), "
                       "normal(mean, std), glorot_uniform, glorot_normal, he_uniform, he_normal or a literal", shown);
        return false;
    }
    int nargs = x->kind == EX_CALL ? x->nargs : 0;
    if (nargs != inits[k].nargs) {
        diag_error(e->diag, x->loc, "%s takes %d argument%s, found %d: %s", inits[k].name, inits[k].nargs,
                   inits[k].nargs == 1 ? "" : "s", nargs, inits[k].usage);
        return false;
    }
    double a = inits[k].value, b = 0;
    if ((nargs > 0 && !init_number(e, x->args[0], inits[k].usage, &a)) ||
        (nargs > 1 && !init_number(e, x->args[1], inits[k].usage, &b)))
        return false;
    if (inits[k].kind == NNRT_INIT_UNIFORM && !(a < b)) {
        diag_error(e->diag, x->loc, "uniform(low, high) needs low < high, found %g and %g", a, b);
        return false;
    }
    if (inits[k].kind == NNRT_INIT_NORMAL && !(b > 0)) {
        diag_error(e->diag, x->args[1]->loc, "the standard deviation of normal(mean, std) must be positive, found %g",
                   b);
        return false;
    }
    *out = (NnrtInit){.kind = inits[k].kind, .a = a, .b = b};
    return true;
}
