/* sema.c — AST -> checked Model: the statements of a model.
 *
 * One pass over the statements in source order, so the errors come out in
 * the order of the file: this file checks the statements that say how the
 * model is trained (optimizer, schedule, train, data) and that each kind
 * of statement is given as it may be, and hands every item to model.c's
 * lowering as it goes, which checks the shapes (the layers, losses and
 * expressions). What needs the whole model (a missing input or loss, the
 * bare loss against the output) is checked at the end. It reports every
 * error it finds and keeps going: after a bad statement the values that are
 * still known keep being checked, so one mistake does not hide the next.
 *
 * Every dimension and weight matrix is bounded by NNC_MAX_ELEMS here, so the
 * later stages multiply dimensions without overflow checks.
 */
#include "nnc.h"

#include <float.h>

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* The course's optimizers, Keras' names (for "did you mean"). */
static const char *const optimizer_names[] = {"sgd",  "adagrad", "adadelta", "rmsprop", "adam",
                                              "adamax", "nadam", "ftrl",    NULL};

/* Each optimizer's arguments with Keras' default and its range, from lo
 * to hi, each end open unless said closed; a flag is 0 or 1. */
typedef struct OptArg {
    const char *key;
    size_t field; /* offsetof(Model, ...): a double, or a bool for a flag */
    double def, lo, hi;
    bool lo_closed, hi_closed, flag;
    bool required; /* no default */
} OptArg;

#define INF __builtin_inf()
#define ARG(key, field, def, lo, closed, hi) {key, offsetof(Model, field), def, lo, hi, closed, false, false, false}
#define FLAG(key, field) {key, offsetof(Model, field), 0, 0, 1, true, true, true, false}
#define NEEDED(key, field, lo, closed) {key, offsetof(Model, field), 0, lo, __builtin_inf(), closed, false, false, true}
/* Keras lets one of clipnorm, clipvalue and global_clipnorm act at a time. */
#define COMMON ARG("weight_decay", weight_decay, 0, 0, true, INF), ARG("clipnorm", clipnorm, 0, 0, true, INF), \
               ARG("clipvalue", clipvalue, 0, 0, true, INF), ARG("global_clipnorm", global_clipnorm, 0, 0, true, INF)
#define COMMON_KEYS "weight_decay, clipnorm, clipvalue or global_clipnorm"
static const struct {
    const char *name;
    OptKind kind;
    OptArg args[12];
    int nargs;
    const char *expected;
} opt_specs[] = {
    {"sgd", OPT_SGD, {ARG("lr", lr, 0.01, 0, false, INF), ARG("momentum", momentum, 0, 0, true, 1),
                      FLAG("nesterov", nesterov), COMMON},
     7, "lr, momentum, nesterov, " COMMON_KEYS},
    {"adam", OPT_ADAM, {ARG("lr", lr, 0.001, 0, false, INF), ARG("beta_1", beta1, 0.9, 0, true, 1),
                        ARG("beta_2", beta2, 0.999, 0, true, 1), ARG("epsilon", epsilon, 1e-7, 0, false, INF), COMMON},
     8, "lr, beta_1, beta_2, epsilon, " COMMON_KEYS},
    {"rmsprop", OPT_RMSPROP, {ARG("lr", lr, 0.001, 0, false, INF), ARG("rho", rho, 0.9, 0, true, 1),
                              ARG("epsilon", epsilon, 1e-7, 0, false, INF), COMMON},
     7, "lr, rho, epsilon, " COMMON_KEYS},
    {"adagrad", OPT_ADAGRAD, {ARG("lr", lr, 0.001, 0, false, INF),
                              ARG("initial_accumulator_value", accumulator, 0.1, 0, true, INF),
                              ARG("epsilon", epsilon, 1e-7, 0, false, INF), COMMON},
     7, "lr, initial_accumulator_value, epsilon, " COMMON_KEYS},
    {"adadelta", OPT_ADADELTA, {ARG("lr", lr, 0.001, 0, false, INF), ARG("rho", rho, 0.95, 0, true, 1),
                                ARG("epsilon", epsilon, 1e-7, 0, false, INF), COMMON},
     7, "lr, rho, epsilon, " COMMON_KEYS},
    {"adamax", OPT_ADAMAX, {ARG("lr", lr, 0.001, 0, false, INF), ARG("beta_1", beta1, 0.9, 0, true, 1),
                            ARG("beta_2", beta2, 0.999, 0, true, 1), ARG("epsilon", epsilon, 1e-7, 0, false, INF),
                            COMMON},
     8, "lr, beta_1, beta_2, epsilon, " COMMON_KEYS},
    {"nadam", OPT_NADAM, {ARG("lr", lr, 0.001, 0, false, INF), ARG("beta_1", beta1, 0.9, 0, true, 1),
                          ARG("beta_2", beta2, 0.999, 0, true, 1), ARG("epsilon", epsilon, 1e-7, 0, false, INF),
                          COMMON},
     8, "lr, beta_1, beta_2, epsilon, " COMMON_KEYS},
    /* learning_rate_power <= 0: Keras refuses a positive one */
    {"ftrl", OPT_FTRL, {ARG("lr", lr, 0.001, 0, false, INF),
                        {"learning_rate_power", offsetof(Model, lr_power), -0.5, -INF, 0, false, true, false, false},
                        ARG("initial_accumulator_value", accumulator, 0.1, 0, true, INF),
                        ARG("l1_regularization_strength", l1, 0, 0, true, INF),
                        ARG("l2_regularization_strength", l2, 0, 0, true, INF),
                        ARG("l2_shrinkage_regularization_strength", l2_shrinkage, 0, 0, true, INF),
                        ARG("beta", ftrl_beta, 0, 0, true, INF), COMMON},
     11, "lr, learning_rate_power, initial_accumulator_value, l1_regularization_strength, "
         "l2_regularization_strength, l2_shrinkage_regularization_strength, beta, " COMMON_KEYS},
};

/* Keras' schedules (keras.optimizers.schedules), of the step count k:
 *   constant      lr
 *   step          lr rate^floor(k / steps)         (ExponentialDecay, staircase)
 *   exponential   lr rate^(k / steps)              (floor(k / steps) with staircase = 1)
 *   inverse_time  lr / (1 + rate k / steps)        (likewise)
 *   cosine        lr ((1 - alpha) (1 + cos(pi min(k, steps) / steps)) / 2 + alpha) */
static const struct {
    const char *name;
    SchedKind kind;
    OptArg args[3];
    int nargs;
    const char *expected;
} sched_specs[] = {
    {"constant", SCHED_CONSTANT, {{0}}, 0, "no arguments"},
    {"step", SCHED_STEP, {NEEDED("decay_steps", decay_steps, 0, false), NEEDED("decay_rate", decay_rate, 0, false)},
     2, "decay_steps or decay_rate"},
    {"exponential", SCHED_EXPONENTIAL, {NEEDED("decay_steps", decay_steps, 0, false),
                                        NEEDED("decay_rate", decay_rate, 0, false), FLAG("staircase", staircase)},
     3, "decay_steps, decay_rate or staircase"},
    {"inverse_time", SCHED_INVERSE_TIME, {NEEDED("decay_steps", decay_steps, 0, false),
                                          NEEDED("decay_rate", decay_rate, 0, true), FLAG("staircase", staircase)},
     3, "decay_steps, decay_rate or staircase"},
    {"cosine", SCHED_COSINE, {NEEDED("decay_steps", decay_steps, 0, false), {"alpha", offsetof(Model, alpha), 0, 0, 1,
                                                                          true, true, false, false}},
     2, "decay_steps or alpha"},
};
static const char *const sched_names[] = {"constant", "step", "exponential", "inverse_time", "cosine", NULL};
#undef NEEDED
#undef COMMON
#undef COMMON_KEYS
#undef FLAG
#undef ARG
#undef INF
static const char *const train_keys[] = {"epochs", "batch", NULL};

/* The same bounds as the command line's --epochs and --batch. */
enum { SEMA_MAX_EPOCHS = NNC_MAX_EPOCHS, SEMA_MAX_BATCH = 65536 };

typedef struct Sema {
    Arena *arena;
    Diag *diag;
    const AstModel *ast;
    Model *m;
} Sema;

static int sema_lookup(const char *name, const char *const *names);

/* ---------------------------------------------------------------- helpers */

/* The number for messages: as written if it is a too large integer, which
 * only the source has exactly. */
static const char *sema_num(Arena *a, const AstNum *n) {
    if (n->is_int && !n->too_large)
        return arena_printf(a, "%" PRId64, n->ivalue);
    if (!n->too_large)
        return arena_printf(a, "%g", n->value);
    const char *text = n->loc.src->text + n->loc.offset, *end = n->loc.src->text + n->loc.src->len;
    const char *sign = "";
    if (*text == '-') {
        sign = "-";
        for (text++; text < end && *text && strchr(" \t\r\n\v\f", *text); text++)
            ;
    }
    size_t len = 0;
    while (text + len < end && text[len] >= '0' && text[len] <= '9')
        len++;
    return arena_printf(a, "%s%s", sign, diag_clip(a, text, len));
}

static const char *sema_name(Sema *s, const char *name) {
    return diag_clip(s->arena, name, strlen(name));
}

/* The index of `name` in `names`, or -1. */
static int sema_lookup(const char *name, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

/* "did you mean", unless no message would show it. */
static const char *sema_guess(Sema *s, const char *name, const char *const *names) {
    return diag_quiet(s->diag) ? NULL : closest_name(name, names);
}

bool sema_int(Arena *a, Diag *d, const AstNum *n, const char *what, int64_t lo, int64_t hi, int64_t *out) {
    if (!n->is_int) {
        diag_error(d, n->loc, "expected an integer, found %s", sema_num(a, n));
        return false;
    }
    if (n->too_large && n->value < 0) {
        diag_error(d, n->loc, "%s must be at least %" PRId64 ", found %s", what, lo, sema_num(a, n));
        return false;
    }
    if (n->too_large || n->ivalue > hi) {
        diag_error(d, n->loc, "%s must be at most %" PRId64 ", found %s", what, hi, sema_num(a, n));
        return false;
    }
    if (n->ivalue < lo) {
        diag_error(d, n->loc, "%s must be at least %" PRId64 ", found %s", what, lo, sema_num(a, n));
        return false;
    }
    *out = n->ivalue;
    return true;
}

/* A second `input`, `loss`, `optimizer` or `train`. */
static void sema_duplicate(Sema *s, const AstItem *it, const AstItem *first, const char *what) {
    diag_error(s->diag, it->loc, "more than one '%s' statement in model '%s'", what,
               sema_name(s, s->ast->name));
    diag_note(s->diag, first->loc, "the first '%s' is here", what);
}

/* Keras' spellings of a key, taken as ours: `adam(learning_rate = 0.01)`. */
static const char *sema_key(const char *key) {
    return strcmp(key, "learning_rate") ? key : "lr";
}

/* The arguments of `it` by key (found[i] for keys[i], NULL if absent);
 * unknown and repeated keys are reported. */
static void sema_args(Sema *s, const AstItem *it, const char *owner, const char *const *keys,
                      const char *expected, const AstArg **found) {
    for (int i = 0; keys[i]; i++)
        found[i] = NULL;
    for (int i = 0; i < it->nargs && !diag_quiet(s->diag); i++) {
        const AstArg *arg = &it->args[i];
        int k = sema_lookup(sema_key(arg->key), keys);
        const char *key = sema_name(s, arg->key);
        if (k < 0) {
            const char *guess = sema_guess(s, arg->key, keys);
            if (guess)
                diag_error(s->diag, arg->loc, "unknown argument '%s' for %s; did you mean '%s'?",
                           key, owner, guess);
            else
                diag_error(s->diag, arg->loc, "unknown argument '%s' for %s; expected %s", key,
                           owner, expected);
        } else if (found[k]) {
            diag_error(s->diag, arg->loc, "duplicate argument '%s'", key);
            diag_note(s->diag, found[k]->loc, "'%s' was first given here", sema_name(s, found[k]->key));
        } else {
            found[k] = arg;
        }
    }
}

/* ---------------------------------------------------------------- statements */

/* The dimensions of an input, target or param: model_declared's rule, each
 * breach of it reported. False if they are not valid. */
static bool sema_dims(Sema *s, const AstItem *it, const char *what) {
    Shape sh;
    if (model_declared(it, &sh))
        return true;
    const char *name = sema_name(s, it->name);
    bool ok = true;
    for (int i = 0; i < it->ndims; i++)
        ok &= sema_int(s->arena, s->diag, &it->dims[i], "dimensions", 1, NNC_MAX_ELEMS, &sh.dim[i]);
    if (!ok)
        return false;
    int64_t elems = 1;
    bool overflow = false;
    for (int i = 0; i < it->ndims; i++)
        overflow |= __builtin_mul_overflow(elems, sh.dim[i], &elems);
    if (overflow || elems > NNC_MAX_ELEMS) {
        const char *count = overflow ? "more than 9223372036854775807" : arena_printf(s->arena, "%" PRId64, elems);
        diag_error(s->diag, it->name_loc, "%s '%s' has %s elements; at most %" PRId64 " are supported", what, name,
                   count, NNC_MAX_ELEMS);
    } else { /* the batch axis comes before them */
        diag_error(s->diag, it->loc, "an %s has at most %d axes: the batch is one more", what, NNC_MAX_RANK - 1);
    }
    return false;
}

/* An optimizer's argument in its range (a); false once reported. */
static bool sema_real(Sema *s, const AstArg *arg, const OptArg *a, double *out) {
    const AstNum *v = &arg->value;
    bool ok = (a->lo_closed ? v->value >= a->lo : v->value > a->lo) &&
              (a->hi_closed ? v->value <= a->hi : v->value < a->hi);
    /* The step computes in float32: 1e-300 would be 0 there (decay_steps
     * = 1e-300 divided by zero), 1e39 infinite. */
    double mag = fabs(v->value);
    if (ok && mag != 0 && (mag < FLT_MIN || mag > FLT_MAX)) {
        diag_error(s->diag, v->loc,
                   "%s = %s is beyond float32, in which training computes (nonzero magnitudes: %g to %g)",
                   sema_name(s, arg->key), sema_num(s->arena, v), FLT_MIN, FLT_MAX);
        return false;
    }
    if (ok)
        *out = v->value;
    else if (isfinite(a->hi) && isfinite(a->lo))
        diag_error(s->diag, v->loc, "%s must be in %c%g, %g%c, found %s", sema_name(s, arg->key),
                   a->lo_closed ? '[' : '(', a->lo, a->hi, a->hi_closed ? ']' : ')', sema_num(s->arena, v));
    else if (isfinite(a->hi))
        diag_error(s->diag, v->loc, "%s must be %s %g, found %s", sema_name(s, arg->key),
                   a->hi_closed ? "at most" : "less than", a->hi, sema_num(s->arena, v));
    else
        diag_error(s->diag, v->loc, "%s must be a %s number, found %s", sema_name(s, arg->key),
                   a->lo_closed ? "non-negative" : "positive", sema_num(s->arena, v));
    return ok;
}

/* The arguments of an optimizer or a schedule (spec: nspec of them): the
 * defaults, then the values given, each checked; a missing required one is
 * reported at the statement's name. */
static void sema_spec_args(Sema *s, const AstItem *it, const char *owner, const OptArg *spec, int nspec,
                           const char *expected) {
    Model *m = s->m;
    const char *keys[16];
    const AstArg *args[16];
    if (nspec >= 16)
        unreachable();
    for (int k = 0; k < nspec; k++) {
        keys[k] = spec[k].key;
        if (spec[k].flag)
            *(bool *)((char *)m + spec[k].field) = spec[k].def != 0;
        else
            *(double *)((char *)m + spec[k].field) = spec[k].def;
    }
    keys[nspec] = NULL;
    sema_args(s, it, owner, keys, expected, args);
    const AstArg *clip = NULL;
    for (int k = 0; k < nspec; k++) {
        const OptArg *a = &spec[k];
        const AstNum *v = args[k] ? &args[k]->value : NULL;
        if (!v) {
            if (a->required)
                diag_error(s->diag, it->name_loc, "%s needs %s = ..., which has no default", owner, a->key);
            continue;
        }
        if (!a->flag)
            sema_real(s, args[k], a, (double *)((char *)m + a->field));
        else if (v->is_int && !v->too_large && (v->ivalue == 0 || v->ivalue == 1))
            *(bool *)((char *)m + a->field) = v->ivalue == 1;
        else
            diag_error(s->diag, v->loc, "%s must be 0 or 1, found %s", a->key, sema_num(s->arena, v));
        if (strstr(a->key, "clip") && clip) {
            diag_error(s->diag, args[k]->loc, "%s and %s exclude each other: the gradient is clipped one way",
                       clip->key, a->key);
            diag_note(s->diag, clip->loc, "'%s' is given here", clip->key);
        } else if (strstr(a->key, "clip")) {
            clip = args[k];
        }
    }
}

/* optimizer NAME [(k = v, ...)]: Keras' defaults, then the arguments given. */
static void sema_optimizer(Sema *s, const AstItem *it) {
    Model *m = s->m;
    m->opt_loc = it->loc;
    int i = sema_lookup(it->name, optimizer_names);
    if (i < 0) {
        const char *guess = sema_guess(s, it->name, optimizer_names);
        if (guess)
            diag_error(s->diag, it->name_loc, "unknown optimizer '%s'; did you mean '%s'?", sema_name(s, it->name),
                       guess);
        else
            diag_error(s->diag, it->name_loc, "unknown optimizer '%s'; expected sgd, adam, rmsprop, adagrad, "
                       "adadelta, adamax, nadam or ftrl", sema_name(s, it->name));
        return;
    }
    for (i = 0; strcmp(opt_specs[i].name, it->name) != 0; i++)
        ;
    m->opt = opt_specs[i].kind;
    sema_spec_args(s, it, opt_specs[i].name, opt_specs[i].args, opt_specs[i].nargs, opt_specs[i].expected);
}

/* schedule NAME [(k = v, ...)], in the file or from --schedule. */
static void sema_schedule_item(Sema *s, const AstItem *it) {
    Model *m = s->m;
    m->sched_loc = it->loc;
    int i = sema_lookup(it->name, sched_names);
    if (i < 0) {
        const char *guess = sema_guess(s, it->name, sched_names);
        if (guess)
            diag_error(s->diag, it->name_loc, "unknown schedule '%s'; did you mean '%s'?", sema_name(s, it->name),
                       guess);
        else
            diag_error(s->diag, it->name_loc, "unknown schedule '%s'; expected constant, step, exponential, "
                       "inverse_time or cosine", sema_name(s, it->name));
        return;
    }
    m->sched = sched_specs[i].kind;
    m->staircase = m->sched == SCHED_STEP;
    m->alpha = 0;
    sema_spec_args(s, it, sched_specs[i].name, sched_specs[i].args, sched_specs[i].nargs, sched_specs[i].expected);
}

bool sema_schedule(Arena *a, Diag *d, Model *m, const AstItem *it) {
    int errors = d->errors;
    Sema s = {.arena = a, .diag = d, .m = m};
    sema_schedule_item(&s, it);
    return d->errors == errors;
}

/* train [epochs = E] [, batch = B] */
static void sema_train(Sema *s, const AstItem *it) {
    const AstArg *args[2];
    sema_args(s, it, "train", train_keys, "epochs or batch", args);
    if (args[0])
        sema_int(s->arena, s->diag, &args[0]->value, "epochs", 1, SEMA_MAX_EPOCHS, &s->m->epochs);
    if (args[1])
        sema_int(s->arena, s->diag, &args[1]->value, "batch", 1, SEMA_MAX_BATCH, &s->m->batch);
}

static bool sema_has_arg(const AstItem *it, const char *key) {
    for (int i = 0; i < it->nargs; i++)
        if (!strcmp(it->args[i].key, key))
            return true;
    return false;
}

/* ---------------------------------------------------------------- models */

/* loss a + b + ...: the first of its loss calls, *n their count; NULL once
 * reported that it has none. */
static const AstExpr *sema_loss_sum(Sema *s, const AstItem *it, int *n) {
    int nterms;
    const AstExpr **terms = loss_terms(s->arena, it->expr, &nterms), *first = NULL;
    *n = 0;
    for (int i = 0; i < nterms; i++)
        if (loss_is_call(terms[i])) {
            first = first ? first : terms[i];
            ++*n;
        }
    if (!first)
        diag_error(s->diag, it->name_loc, "a loss is a loss call, or a sum of loss calls and penalty terms, such as "
                   "crossentropy(z, c) + 0.001 * sum(W^2); this has no loss call");
    return first;
}

Model *sema_model(Arena *a, Diag *d, const AstModel *ast) {
    int errors = d->errors;
    Model *m = arena_alloc(a, sizeof *m);
    Sema s = {.arena = a, .diag = d, .ast = ast, .m = m};
    m->name = ast->name;
    m->loc = ast->loc;
    m->ast = ast;
    m->loss = LOSS_CROSSENTROPY;
    m->opt = OPT_SGD;
    m->opt_loc = ast->loc;
    m->lr = 0.01;
    m->momentum = 0;
    m->nesterov = false;
    m->epochs = 1;
    m->batch = 32;
    m->seed = 1; /* --seed's default: what the REPL's :kernels shows is what :train runs */
    model_io(ast, m);

    /* The functional form (several inputs) is told by its items. */
    bool functional = false;
    for (int i = 0; i < ast->nitems; i++) {
        AstKind k = ast->items[i].kind;
        functional |= k == AST_TARGET || k == AST_PARAM || k == AST_ASSIGN || (k == AST_LOSS && ast->items[i].expr);
    }
    /* The items are lowered as they are checked, in the order of the file,
     * into a graph of any batch size (each checks the same). */
    ModelEnv f;
    model_begin(&f, ir_new(a, DT_F32), m, 2, INPUT_FLOAT, MODE_TRAIN, d, true);
    const AstItem *input = NULL, *loss = NULL, *opt = NULL, *train = NULL, *first_layer = NULL, *sched = NULL,
                  *data = NULL;
    for (int i = 0; i < ast->nitems && !diag_quiet(d); i++) {
        const AstItem *it = &ast->items[i];
        switch (it->kind) {
        case AST_INPUT:
            if (input && !functional) {
                sema_duplicate(&s, it, input, "input");
                continue;
            }
            if (!input && first_layer) {
                diag_error(d, it->loc, "'input' must come before the layers");
                diag_note(d, first_layer->loc, "the first layer is here");
            }
            input = input ? input : it;
            sema_dims(&s, it, "input");
            break;
        case AST_DENSE:
        case AST_LAYER:
            first_layer = first_layer ? first_layer : it;
            break;
        case AST_LOSS:
            if (loss && !(it->expr && loss->expr)) { /* several, each naming its prediction and target */
                sema_duplicate(&s, it, loss, "loss");
                continue;
            }
            const AstExpr *call = NULL; /* of a sum: its first loss call, which names the model's loss */
            int ncalls = 1;
            bool known = it->name || (call = sema_loss_sum(&s, it, &ncalls));
            m->several_losses |= loss != NULL || ncalls > 1;
            loss = it;
            m->loss_loc = it->loc;
            if (!known || !loss_resolve(a, d, call ? call->name : it->name, call ? call->loc : it->name_loc, &m->loss))
                continue;
            break;
        case AST_OPTIMIZER:
            if (opt) {
                sema_duplicate(&s, it, opt, "optimizer");
                continue;
            }
            opt = it;
            sema_optimizer(&s, it);
            break;
        case AST_SCHEDULE:
            if (sched) {
                sema_duplicate(&s, it, sched, "schedule");
                continue;
            }
            sched = it;
            sema_schedule_item(&s, it);
            break;
        case AST_TRAIN:
            if (train) {
                sema_duplicate(&s, it, train, "train");
                continue;
            }
            train = it;
            sema_train(&s, it);
            break;
        case AST_TARGET:
            sema_dims(&s, it, "target");
            break;
        case AST_PARAM:
            sema_dims(&s, it, "param");
            break;
        case AST_DATA:
            if (data)
                sema_duplicate(&s, it, data, "data");
            data = it;
            break;
        case AST_ASSIGN:
        case AST_DATA_VALUE: /* checked with the data statement, at the end */
            break;
        }
        model_item(&f, it);
    }
    const char *name = sema_name(&s, ast->name);
    if (!input)
        diag_error(d, ast->name_loc, "model '%s' has no input; add e.g. 'input x[28, 28]'", name);
    if (!loss)
        diag_error(d, ast->name_loc, "model '%s' has no loss; add e.g. 'loss crossentropy'", name);
    NodeId pred;
    if (input && loss) {
        model_end(&f, &pred, &m->output);
        memcpy(m->heads, f.heads, sizeof m->heads);
        m->nheads = f.nheads;
    }
    if (data && d->errors == errors) {
        m->data = data_check(a, d, m, ast, data);
        if (m->data && !(train && sema_has_arg(train, "batch")))
            m->batch = m->data->n < SEMA_MAX_BATCH ? m->data->n : SEMA_MAX_BATCH; /* all at once */
    }
    return d->errors == errors ? m : NULL;
}
