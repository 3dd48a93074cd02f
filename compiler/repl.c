/* repl.c — the REPL's session: what an entry means, and the commands.
 *
 * An entry is either a command (`:grad L wrt w`) or text in the language:
 * statements (script.c runs them: every one parsed, checked, lowered,
 * differentiated where asked, JIT-compiled as a module of its own and run)
 * and model blocks (checked by sema, kept by name with their weights once
 * trained). The terminal (repl_term.c) decides where an entry ends; this file
 * never reads input, so a test or a fuzzer can feed entries directly.
 *
 * Training and evaluating a model is the command line's own work: the driver
 * (main.c) lends it as ReplDriver.run, called with the options of `nnc`, so
 * `:train m epochs=2` is `nnc m.nn --train --epochs 2` on the session's model,
 * with the same progress output. Without a driver (the fuzzer) those
 * commands, and the ones that read or write files, say they are not
 * available.
 *
 * An error prints its diagnostic, with the caret under the entry, and leaves
 * the session as it was before the entry.
 */
#include "nnc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

typedef struct ReplModel {
    const char *name;
    Model *model;
    ScriptText *text; /* held: the model's AST and Source */
    FitWeights weights; /* slots NULL until trained or restored */
} ReplModel;

struct Repl {
    Diag *diag;
    FILE *out;
    const ReplDriver *driver;
    const Target *target;
    Script *script;
    ScriptModels as_values; /* the models, for m(x) and m.dense1.W */
    ReplModel *models;
    int nmodels;
    int line; /* lines read so far: the next entry's first line is line + 1 */
    bool quit;
};

static ReplModel *find_model(Repl *r, const char *name);

/* ScriptModels.find */
static const Model *model_value(void *ctx, const char *name, const FitWeights **w) {
    ReplModel *m = find_model(ctx, name);
    if (m)
        *w = &m->weights;
    return m ? m->model : NULL;
}

Repl *repl_new(Diag *d, FILE *out, const ReplDriver *driver, const Target *t) {
    Repl *r = xcalloc(1, sizeof *r);
    *r = (Repl){.diag = d, .out = out, .driver = driver, .target = t, .script = script_new(d, out, true, t),
                .as_values = {.find = model_value}};
    r->as_values.ctx = r;
    script_models(r->script, &r->as_values);
    return r;
}

static void model_clear(ReplModel *m) {
    fit_weights_free(&m->weights);
    script_text_release(m->text);
}

static void models_reset(Repl *r) {
    for (int i = 0; i < r->nmodels; i++)
        model_clear(&r->models[i]);
    free(r->models);
    r->models = NULL;
    r->nmodels = 0;
}

void repl_free(Repl *r) {
    if (!r)
        return;
    models_reset(r);
    script_free(r->script);
    free(r);
}

bool repl_done(const Repl *r) { return r->quit; }

Diag *repl_diag(const Repl *r) { return r->diag; }

static ReplModel *find_model(Repl *r, const char *name) {
    for (int i = 0; i < r->nmodels; i++)
        if (strcmp(r->models[i].name, name) == 0)
            return &r->models[i];
    return NULL;
}

/* Keeps model m (checked, in text's arena), replacing one of the same name. */
static void define_model(Repl *r, Model *m, ScriptText *text) {
    ReplModel *old = find_model(r, m->name);
    if (old) {
        script_weights(r->script, old->model, NULL, NULL); /* the old model's */
        model_clear(old);
    } else {
        r->models = xrealloc(r->models, (size_t)r->nmodels + 1, sizeof *r->models);
        old = &r->models[r->nmodels++];
    }
    script_text_hold(text);
    *old = (ReplModel){.name = m->name, .model = m, .text = text};
    Arena *a = arena_new();
    char in[64], out[64];
    int64_t params = ir_param_count(step_graph(a, m, STEP_EVAL, 1, DT_F32, INPUT_FLOAT));
    fprintf(r->out, "model %s: input %s, output %s, %lld parameters\n", m->name, shape_str(&m->input, in, sizeof in),
            shape_str(&m->output, out, sizeof out), (long long)params);
    arena_free(a);
}

/* The statements and models of a parsed text. */
static bool run_program(Repl *r, ScriptText *text, const AstProgram *p) {
    int errors = r->diag->errors;
    Model **models = xcalloc((size_t)p->nmodels + 1, sizeof *models);
    for (int i = 0; i < p->nmodels; i++)
        models[i] = sema_model(text->arena, r->diag, &p->models[i]);
    if (r->diag->errors == errors)
        for (int i = 0; i < p->nmodels; i++)
            define_model(r, models[i], text);
    free(models);
    return r->diag->errors == errors && script_exec(r->script, text, p->stmts, p->nstmts);
}

/* ---------------------------------------------------------------- commands */

/* A command's text: its words after the name, as offsets into the entry. */
typedef struct Cmd {
    Repl *r;
    ScriptText *text;
    const char *s; /* the entry */
    size_t len, pos; /* the next unread byte */
} Cmd;

static void skip_blanks(Cmd *c) {
    while (c->pos < c->len && isspace((unsigned char)c->s[c->pos]))
        c->pos++;
}

static Loc cmd_loc(Cmd *c) {
    skip_blanks(c);
    return (Loc){&c->text->src, c->text->src.first_line, (int)c->pos + 1, c->pos};
}

/* The next word (up to a blank), in the text's arena; NULL at the end. */
static const char *next_word(Cmd *c, Loc *loc) {
    skip_blanks(c);
    if (loc)
        *loc = cmd_loc(c);
    if (c->pos == c->len)
        return NULL;
    size_t start = c->pos;
    while (c->pos < c->len && !isspace((unsigned char)c->s[c->pos]))
        c->pos++;
    if (loc)
        *loc = (Loc){&c->text->src, c->text->src.first_line, (int)start + 1, start};
    return arena_strndup(c->text->arena, c->s + start, c->pos - start);
}


/* The entry's text from byte `from` to `to` parsed as one expression: the
 * rest is blanked out, so its locations are the entry's own. */
static const AstExpr *parse_expr_at(Cmd *c, size_t from, size_t to) {
    size_t len = c->text->src.len;
    char *t = arena_strndup(c->text->arena, c->s, len);
    for (size_t i = 0; i < len; i++)
        if ((i < from || i >= to) && t[i] != '\n')
            t[i] = ' ';
    Source *src = arena_alloc(c->text->arena, sizeof *src);
    *src = c->text->src;
    src->text = t;
    src->quoted = c->text->src.text;
    AstProgram *p = parse_entry(c->text->arena, c->r->diag, src);
    if (!p)
        return NULL;
    if (p->nmodels || p->nstmts != 1 || p->stmts[0].kind != TOP_EXPR) {
        diag_error(c->r->diag, cmd_loc(c), "expected an expression");
        return NULL;
    }
    return p->stmts[0].expr;
}

static AstExpr *name_expr(Arena *a, const char *name, Loc loc) {
    AstExpr *x = arena_alloc(a, sizeof *x);
    *x = (AstExpr){.kind = EX_NAME, .loc = loc, .name = name};
    return x;
}

/* :grad EXPR wrt V1[, V2 ...]: `print grad(EXPR, V)` for each V. */
static bool cmd_grad(Cmd *c) {
    const char *wrt = NULL;
    for (size_t i = c->pos; i + 3 <= c->len && !wrt; i++)
        if (strncmp(c->s + i, "wrt", 3) == 0 && isspace((unsigned char)c->s[i - 1]) &&
            (i + 3 == c->len || isspace((unsigned char)c->s[i + 3])))
            wrt = c->s + i;
    if (!wrt) {
        diag_error(c->r->diag, cmd_loc(c), "expected ':grad EXPR wrt NAME[, NAME ...]'");
        return false;
    }
    const AstExpr *f = parse_expr_at(c, c->pos, (size_t)(wrt - c->s));
    if (!f)
        return false;
    c->pos = (size_t)(wrt - c->s) + 3;
    Arena *a = c->text->arena;
    AstStmt *stmts = NULL;
    int n = 0;
    for (;;) { /* the names, separated by blanks or commas */
        while (c->pos < c->len && (isspace((unsigned char)c->s[c->pos]) || c->s[c->pos] == ','))
            c->pos++;
        if (c->pos == c->len)
            break;
        size_t start = c->pos;
        while (c->pos < c->len && !isspace((unsigned char)c->s[c->pos]) && c->s[c->pos] != ',')
            c->pos++;
        Loc at = {&c->text->src, c->text->src.first_line, (int)start + 1, start};
        AstExpr **args = arena_array(a, 2, sizeof *args);
        args[0] = (AstExpr *)f;
        args[1] = name_expr(a, arena_strndup(a, c->s + start, c->pos - start), at);
        AstExpr *call = arena_alloc(a, sizeof *call);
        *call = (AstExpr){.kind = EX_CALL, .loc = f->loc, .name = "grad", .args = args, .nargs = 2};
        AstStmt *more = arena_array(a, (size_t)n + 1, sizeof *more);
        if (n)
            memcpy(more, stmts, (size_t)n * sizeof *more);
        stmts = more;
        stmts[n++] = (AstStmt){.kind = TOP_PRINT, .loc = f->loc, .expr = call};
    }
    if (!n) {
        diag_error(c->r->diag, cmd_loc(c), "expected the names to differentiate by after 'wrt'");
        return false;
    }
    return script_exec(c->r->script, c->text, stmts, n);
}

/* :type EXPR: its shape and element type, or a model's signature. */
static bool cmd_type(Cmd *c) {
    skip_blanks(c);
    ReplModel *m = find_model(c->r, arena_strndup(c->text->arena, c->s + c->pos, c->len - c->pos));
    char in[64], out[64];
    if (m) {
        fprintf(c->r->out, "model %s: input %s -> output %s, loss and optimizer as written\n", m->name,
                shape_str(&m->model->input, in, sizeof in), shape_str(&m->model->output, out, sizeof out));
        return true;
    }
    const AstExpr *x = parse_expr_at(c, c->pos, c->len);
    Arena *a = arena_new();
    Graph *g;
    NodeId n;
    bool ok = x && script_lower(c->r->script, a, x, &g, &n);
    if (ok)
        fprintf(c->r->out, "f64 %s\n", shape_str(&g->nodes[n].shape, out, sizeof out));
    arena_free(a);
    return ok;
}

/* The graph a command shows for a name: a model's step, or a value's graph
 * (with its gradients by every variable in it, for :grad-ir). */
typedef enum { SHOW_IR, SHOW_GRAD_IR, SHOW_KERNELS, SHOW_LLVM } Show;

static Graph *value_graph(Cmd *c, Arena *a, const char *name, Loc loc, bool grads) {
    Graph *g;
    NodeId n;
    if (!script_lower(c->r->script, a, name_expr(a, name, loc), &g, &n))
        return NULL;
    int slot = ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = name, .shape = g->nodes[n].shape});
    ir_add_output(g, n, slot);
    if (grads) {
        NodeId f = g->nodes[n].shape.rank ? ir_sum(g, n, -1, loc) : n;
        NodeId *leaves, *d;
        int nleaves = ad_param_gradients(g, f, &leaves, &d);
        for (int i = 0; i < nleaves; i++) {
            const Slot *s = &g->slots[g->nodes[leaves[i]].slot];
            int gs = ir_add_slot(g, (Slot){.kind = SLOT_GRAD, .name = arena_printf(a, "d%s/d%s", name, s->name),
                                           .shape = s->shape});
            ir_add_output(g, d[i], gs);
        }
    }
    return ir_dce(g);
}

static bool cmd_show(Cmd *c, Show what) {
    Loc loc;
    const char *name = next_word(c, &loc);
    if (!name) {
        diag_error(c->r->diag, loc, "expected a name");
        return false;
    }
    Arena *a = arena_new();
    ReplModel *m = find_model(c->r, name);
    /* A model's steps are those :train compiles (pipeline_plan); a value's
     * graph is scheduled as an entry is. */
    Plan p;
    int step = what == SHOW_IR ? PLAN_EVAL : PLAN_TRAIN;
    if (m) {
        p = pipeline_plan(a, m->model, 2, INPUT_FLOAT, c->r->target, false);
    } else {
        p.ir[step] = p.g[step] = value_graph(c, a, name, loc, what != SHOW_IR);
        p.s[step] = p.g[step] ? pipeline_schedule(a, &p.g[step], 2, c->r->target) : NULL;
    }
    bool ok = p.g[step] != NULL;
    if (ok && (what == SHOW_IR || what == SHOW_GRAD_IR))
        ir_print(c->r->out, p.ir[step]);
    if (ok && what == SHOW_KERNELS) {
        ir_print(c->r->out, p.g[step]);
        schedule_print(c->r->out, p.g[step], p.s[step]);
    }
    if (ok && what == SHOW_LLVM) {
        const char *fn = m ? "train_step" : "entry";
        CgModule *mod = m ? pipeline_plan_codegen(&p, step) : pipeline_codegen(name, 1, &fn, &p.g[step], &p.s[step]);
        cg_print(mod, c->r->out);
        cg_module_free(mod);
    }
    arena_free(a);
    return ok;
}

/* Files are the driver's to lend, as running models is: a session without
 * one (the fuzzer's) reads and writes none. */
static bool files_allowed(Cmd *c, const char *cmd) {
    if (c->r->driver)
        return true;
    diag_error(c->r->diag, cmd_loc(c), "%s is not available in this session", cmd);
    return false;
}

/* :load FILE: its models and statements, as if typed. */
static bool cmd_load(Cmd *c) {
    if (!files_allowed(c, ":load"))
        return false;
    skip_blanks(c);
    const char *path = arena_strndup(c->text->arena, c->s + c->pos, c->len - c->pos);
    size_t n = strlen(path);
    while (n && isspace((unsigned char)path[n - 1]))
        n--;
    Arena *tmp = arena_new();
    Source src;
    bool ok = n && source_read(tmp, c->r->diag, arena_strndup(tmp, path, n), &src);
    if (!n)
        diag_error(c->r->diag, cmd_loc(c), "expected a file name");
    if (ok) {
        ScriptText *t = script_text_new(src.path, 1, src.text, src.len);
        AstProgram *p = parse_program(t->arena, c->r->diag, &t->src);
        ok = p && run_program(c->r, t, p);
        script_text_release(t);
    }
    arena_free(tmp);
    return ok;
}

/* The model a command names first. */
static ReplModel *model_arg(Cmd *c) {
    Loc loc;
    const char *name = next_word(c, &loc);
    if (!name) {
        diag_error(c->r->diag, loc, "expected a model's name");
        return NULL;
    }
    ReplModel *m = find_model(c->r, name);
    if (!m) {
        const char **names = xcalloc((size_t)c->r->nmodels + 1, sizeof *names);
        for (int i = 0; i < c->r->nmodels; i++)
            names[i] = c->r->models[i].name;
        const char *guess = closest_name(name, names);
        const char *shown = diag_clip(c->text->arena, name, strlen(name));
        if (guess)
            diag_error(c->r->diag, loc, "no model '%s'; did you mean '%s'?", shown, guess);
        else
            diag_error(c->r->diag, loc, "no model '%s'%s", shown, c->r->nmodels ? "" : " (none is defined yet)");
        free(names);
    }
    return m;
}

/* :train MODEL [PATH] [key=value ...], :eval MODEL [PATH] and :predict
 * MODEL PATH [-o FILE]: the driver's run with the command line's options
 * (flag: --train, --eval or --predict, given PATH), key=value as
 * --key=value (:eval without a path: the driver's default test set). */
static bool cmd_run(Cmd *c, const char *flag) {
    bool train = !strcmp(flag, "--train");
    ReplModel *m = model_arg(c);
    if (!m || !files_allowed(c, arena_printf(c->text->arena, ":%s", flag + 2)))
        return false;
    if (!train && !m->weights.slots) {
        diag_error(c->r->diag, cmd_loc(c), "model '%s' has no weights yet: :train it or :restore a checkpoint",
                   m->name);
        return false;
    }
    Arena *a = c->text->arena;
    char **argv = NULL;
    int argc = 0;
    bool path_given = false;
    for (const char *w; (w = next_word(c, NULL));) {
        argv = xrealloc(argv, (size_t)argc + 4, sizeof *argv);
        const char *eq = strchr(w, '=');
        if (eq && w[0] != '-') { /* one word, so that a flag takes its 1 or 0 */
            argv[argc++] = arena_printf(a, "--%s", w);
        } else if (w[0] != '-' && !path_given && argc == 0) {
            argv[argc++] = (char *)flag;
            argv[argc++] = (char *)w;
            path_given = true;
        } else {
            argv[argc++] = (char *)w;
        }
    }
    argv = xrealloc(argv, (size_t)argc + 2, sizeof *argv);
    if (!path_given && train)
        argv[argc++] = "--train";
    int status = EXIT_USAGE;
    if (!path_given && !strcmp(flag, "--predict"))
        diag_error(c->r->diag, cmd_loc(c), "expected the file to predict on: :predict %s PATH [-o FILE]", m->name);
    else
        status = c->r->driver->run(c->r->driver->ctx, c->r->diag, m->model, &m->text->src, argc, argv, &m->weights);
    free(argv);
    if (train) /* what the run left, stopped or not: m.dense1.W ... */
        script_weights(c->r->script, m->model, &m->weights, m->text);
    return status == EXIT_OK;
}

/* :save MODEL FILE and :restore MODEL FILE: checkpoints, as --save writes. */
static bool cmd_checkpoint(Cmd *c, bool save) {
    ReplModel *m = model_arg(c);
    if (!m || !files_allowed(c, save ? ":save" : ":restore"))
        return false;
    Loc loc;
    const char *path = next_word(c, &loc);
    if (!path) {
        diag_error(c->r->diag, loc, "expected a file name");
        return false;
    }
    if (save && !m->weights.slots) {
        diag_error(c->r->diag, loc, "model '%s' has no weights yet: :train it first", m->name);
        return false;
    }
    Arena *a = arena_new();
    Graph *g = step_graph(a, m->model, STEP_TRAIN, m->model->batch, DT_F32, INPUT_FLOAT);
    const FitMeaning *kept = &m->weights.meaning; /* the names, columns and normalization :save keeps */
    FitInfo info = {.model_name = m->name, .model_hash = fit_model_hash(&m->text->src), .seed = 1,
                    .batch = (size_t)m->model->batch, .classes = &kept->classes, .targets = &kept->targets,
                    .label = kept->label, .features = &kept->features,
                    .norm_mean = kept->mean, .norm_std = kept->std,
                    .norm_n = kept->mean ? (size_t)shape_elems(&m->model->input) : 0};
    FitState st;
    fit_state_init(&st, 1);
    char err[1024];
    bool ok;
    if (save) {
        /* The kept weights are laid out as the last run's step graph, which
         * may differ from this one (a schedule given to :train). */
        FitWeights w = fit_weights_new(g);
        fit_weights_take(&m->weights, g, w.slots);
        w.meaning = m->weights.meaning;
        m->weights = w;
        ok = fit_save(path, g, m->weights.slots, &info, &st, err, sizeof err);
        if (!ok)
            diag_plain(c->r->diag, "%s", err);
        else
            fprintf(c->r->out, "saved %s to %s\n", m->name, path);
    } else {
        FitWeights w = fit_weights_new(g);
        FitCkpt k = {.path = path};
        ok = fit_load(c->r->diag, &k, g, w.slots, &info, &st) &&
             fit_read_classes(c->r->diag, &k, &w.meaning.classes) &&
             fit_read_targets(c->r->diag, &k, (size_t)m->model->label_size, &w.meaning.targets) &&
             fit_read_columns(c->r->diag, &k, (size_t)shape_elems(&m->model->input), &w.meaning.label,
                              &w.meaning.features) &&
             fit_read_normalize(c->r->diag, &k, (size_t)shape_elems(&m->model->input), &w.meaning.mean,
                                &w.meaning.std);
        fit_ckpt_free(&k);
        if (ok) {
            fit_weights_free(&m->weights);
            m->weights = w;
            script_weights(c->r->script, m->model, &m->weights, m->text);
            fprintf(c->r->out, "restored %s from %s\n", m->name, path);
        } else {
            fit_weights_free(&w);
        }
    }
    fit_state_free(&st);
    arena_free(a);
    return ok;
}

static bool cmd_help(Cmd *c);

static bool cmd_quit(Cmd *c) {
    c->r->quit = true;
    return true;
}

static bool cmd_reset(Cmd *c) {
    script_reset(c->r->script);
    models_reset(c->r);
    fprintf(c->r->out, "forgot every name and model\n");
    return true;
}

static bool cmd_ir(Cmd *c) { return cmd_show(c, SHOW_IR); }
static bool cmd_grad_ir(Cmd *c) { return cmd_show(c, SHOW_GRAD_IR); }
static bool cmd_kernels(Cmd *c) { return cmd_show(c, SHOW_KERNELS); }
static bool cmd_llvm(Cmd *c) { return cmd_show(c, SHOW_LLVM); }
static bool cmd_train(Cmd *c) { return cmd_run(c, "--train"); }
static bool cmd_eval(Cmd *c) { return cmd_run(c, "--eval"); }
static bool cmd_predict(Cmd *c) { return cmd_run(c, "--predict"); }
static bool cmd_save(Cmd *c) { return cmd_checkpoint(c, true); }
static bool cmd_restore(Cmd *c) { return cmd_checkpoint(c, false); }

/* Every command, once: the table drives dispatch, :help and completion. */
static const struct {
    const char *name, *alias, *alias2; /* other spellings, or NULL */
    bool (*run)(Cmd *c);
    const char *usage, *help; /* usage NULL: the name alone */
} commands[] = {
    {":grad", NULL, NULL, cmd_grad, ":grad EXPR wrt X[, Y]", "derivatives of EXPR, simplified, and their values"},
    {":type", NULL, NULL, cmd_type, ":type EXPR", "shape and element type (or a model's signature)"},
    {":ir", NULL, NULL, cmd_ir, ":ir NAME", "the IR of a value, or of a model's forward pass"},
    {":grad-ir", NULL, NULL, cmd_grad_ir, ":grad-ir NAME", "... with its gradients (a model's training step)"},
    {":kernels", NULL, NULL, cmd_kernels, ":kernels NAME", "... and which loop computes each node"},
    {":llvm", NULL, NULL, cmd_llvm, ":llvm NAME", "the LLVM IR it compiles to"},
    {":load", NULL, NULL, cmd_load, ":load FILE.nn", "read a file's models and statements"},
    {":train", NULL, NULL, cmd_train, ":train MODEL [PATH] [epochs=N batch=N lr=X seed=N ...]",
     "train (Fashion-MNIST by default); options as nnc's"},
    {":eval", NULL, NULL, cmd_eval, ":eval MODEL [PATH]", "loss, accuracy per class, confusion matrix"},
    {":predict", NULL, NULL, cmd_predict, ":predict MODEL PATH [-o FILE]", "predictions as CSV, as --predict"},
    {":save", NULL, NULL, cmd_save, ":save MODEL FILE", "a checkpoint of the trained weights"},
    {":restore", NULL, NULL, cmd_restore, ":restore MODEL FILE", "weights from a checkpoint"},
    {":reset", NULL, NULL, cmd_reset, NULL, "forget everything"},
    {":help", ":h", ":?", cmd_help, NULL, "this text"},
    {":quit", ":q", NULL, cmd_quit, NULL, "leave (Ctrl-D too)"},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static bool cmd_help(Cmd *c) {
    FILE *out = c->r->out;
    fputs("Entries:\n"
          "  let x = 1, v = [1, 2]   variables (any expression: its value now)\n"
          "  L = (x * v - 3)^2       a named value: recomputed from what it uses\n"
          "  L, grad(L, x), v @ v    an expression: its value (and its derivative's form)\n"
          "  repeat N { ... }        the statements N times (let x = x - ...: a step)\n"
          "  model m { ... }         a model (several lines: the block ends at its '}')\n"
          "  m(x), m.dense1.W        a trained model on a value; its weights\n"
          "Commands:\n", out);
    for (int i = 0; i < NCOMMANDS; i++) {
        const char *u = commands[i].usage ? commands[i].usage : commands[i].name;
        if (strlen(u) > 23) /* the help on a line of its own */
            fprintf(out, "  %s\n  %-23s %s\n", u, "", commands[i].help);
        else
            fprintf(out, "  %-23s %s\n", u, commands[i].help);
    }
    fputs("Ctrl-C stops a training run, a computation or a compilation and returns here.\n", out);
    return true;
}

static bool run_command(Cmd *c) {
    Loc loc = cmd_loc(c);
    const char *name = next_word(c, NULL);
    const char *names[NCOMMANDS + 1];
    for (int i = 0; i < NCOMMANDS; i++) {
        if (!strcmp(name, commands[i].name) || (commands[i].alias && !strcmp(name, commands[i].alias)) ||
            (commands[i].alias2 && !strcmp(name, commands[i].alias2)))
            return commands[i].run(c);
        names[i] = commands[i].name;
    }
    names[NCOMMANDS] = NULL;
    const char *guess = closest_name(name, names);
    const char *shown = diag_clip(c->text->arena, name, strlen(name));
    if (guess)
        diag_error(c->r->diag, loc, "unknown command '%s'; did you mean '%s'?", shown, guess);
    else
        diag_error(c->r->diag, loc, "unknown command '%s'; :help lists them", shown);
    return false;
}

/* ---------------------------------------------------------------- entries */

bool repl_eval(Repl *r, const char *path, const char *s, size_t len) {
    int first_line = r->line + 1;
    for (size_t i = 0; i < len; i++)
        r->line += s[i] == '\n';
    if (len && s[len - 1] != '\n')
        r->line++;
    size_t k = 0;
    while (k < len && isspace((unsigned char)s[k]))
        k++;
    if (k == len)
        return true;
    r->diag->errors = 0; /* each entry may show as many errors as a file */
    ScriptText *text = script_text_new(path, first_line, s, len);
    bool ok;
    if (s[k] == ':') {
        size_t end = len;
        while (isspace((unsigned char)s[end - 1]))
            end--;
        Cmd c = {.r = r, .text = text, .s = text->src.text, .len = end, .pos = k};
        ok = run_command(&c);
    } else {
        AstProgram *p = parse_entry(text->arena, r->diag, &text->src);
        ok = p && run_program(r, text, p);
    }
    script_text_release(text);
    return ok && r->diag->errors == 0;
}

int repl_names(const Repl *r, const char ***names) {
    const char **v;
    int n = script_names(r->script, &v);
    v = xrealloc(v, (size_t)n + (size_t)r->nmodels + NCOMMANDS, sizeof *v);
    for (int i = 0; i < r->nmodels; i++)
        v[n++] = r->models[i].name;
    for (int i = 0; i < NCOMMANDS; i++)
        v[n++] = commands[i].name;
    *names = v;
    return n;
}
