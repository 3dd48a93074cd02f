/* model.c — a model to IR: the one lowering of both forms.
 *
 * The sequential form (input, layer lines, a bare loss) is notation for the
 * functional form (the slides' notation):
 *
 *     model shallow {
 *         input  x[1]
 *         target y[1]
 *         param  theta0[3] = zeros, theta1[3, 1] = he, phi0[1] = zeros, phi1[1, 3]
 *         h    = relu(theta0 + theta1 @ x)
 *         out  = phi0 + phi1 @ h
 *         loss   mse(out, y)
 *     }
 *
 * so both are lowered by one walk over the items: a layer line applies to
 * the last value made (layers.c), a bare loss to the last value against the
 * labels (loss.c). Expressions are lowered by expr.c with a batch: the input
 * and the target hold `batch` samples on a leading axis, parameters do not,
 * and every shape is checked and shown per sample.
 *
 * Sema walks the items once with a checking lowering (model_begin,
 * model_item for each item in source order between its own checks, so the
 * errors come in the order of the file; model_end), and model_forward lowers
 * a checked model again for a step graph.
 *
 * The step function's slots are the same for every model (arena, input,
 * label, loss, output, then parameters in the order they appear), so the
 * runtime trains any alike. Several inputs, targets and losses (Keras'
 * functional API) keep those slots: the inputs lie side by side in the input
 * slot, the targets in the label slot, each a slice of it, and the loss is
 * the sum of the (weighted) terms, so the runtime feeds them from one file or
 * data block as it feeds one input.
 */
#include "nnc.h"

#include <string.h>

static Shape batched(const Shape *s, int64_t batch) {
    Shape r = {.rank = s->rank + 1, .dim = {batch}};
    for (int i = 0; i < s->rank; i++)
        r.dim[i + 1] = s->dim[i];
    return r;
}

bool model_declared(const AstItem *it, Shape *out) {
    Shape s = {.rank = it->ndims};
    int64_t elems = 1;
    if (it->kind != AST_PARAM && it->ndims > NNC_MAX_RANK - 1) /* the batch axis comes before them */
        return false;
    for (int i = 0; i < it->ndims; i++) {
        const AstNum *n = &it->dims[i];
        if (!n->is_int || n->too_large || n->ivalue < 1 || n->ivalue > NNC_MAX_ELEMS ||
            __builtin_mul_overflow(elems, n->ivalue, &elems) || elems > NNC_MAX_ELEMS)
            return false;
        s.dim[i] = n->ivalue;
    }
    *out = s;
    return true;
}

void model_io(const AstModel *ast, Model *m) {
    int64_t input_elems = 0, label_size = 0;
    int ninputs = 0;
    for (int i = 0; i < ast->nitems; i++) {
        const AstItem *it = &ast->items[i];
        Shape s = {0};
        bool ok = model_declared(it, &s);
        if (it->kind == AST_INPUT && !ninputs++) {
            m->input_name = it->name;
            m->input_loc = it->loc;
            m->input = s;
        }
        if (it->kind == AST_INPUT && ok)
            input_elems += shape_elems(&s);
        if (it->kind == AST_TARGET && ok)
            label_size += shape_elems(&s);
    }
    if (ninputs > 1) /* side by side, as the input slot holds them */
        m->input = (Shape){1, {input_elems}};
    m->label_size = label_size ? label_size : 1;
}

/* Images kept as uint8 are scaled by the nearest float to 1/255 (which takes
 * 255 to exactly 1), as nnrt_batch_fill scales them when it converts a batch
 * itself: a run gives the same numbers either way. */
static NodeId model_input_leaf(Graph *g, int slot, Loc loc) {
    NodeId x = ir_leaf(g, OP_INPUT, slot, g->slots[slot].shape, loc);
    return g->slots[slot].u8 ? ir_binary(g, OP_MUL, x, ir_const(g, 1.0 / 255, (Shape){0}, loc), loc) : x;
}

NodeId model_labels(ModelEnv *f, Loc loc) {
    if (f->labels < 0)
        f->labels = ir_leaf(f->e.g, OP_LABEL, SLOT_NO_LABEL, f->e.g->slots[SLOT_NO_LABEL].shape, loc);
    return f->labels;
}

/* param NAME[dims] [= INIT]: Keras' fans; glorot_uniform unless told. -1
 * when its shape was invalid (sema reported it). */
static NodeId model_param(ModelEnv *f, const AstItem *it) {
    Shape s;
    if (!model_declared(it, &s))
        return -1;
    Slot sl = {.kind = SLOT_PARAM, .name = it->name, .shape = s, .init = {.kind = NNRT_INIT_GLOROT_UNIFORM}};
    init_fans(&s, &sl.fan_in, &sl.fan_out);
    if (it->init && !init_resolve(&f->e, it->init, &s, &sl.init))
        return -1;
    Graph *g = f->e.g;
    return ir_leaf(g, OP_PARAM, ir_add_slot(g, sl), sl.shape, it->loc);
}

/* An input (or a target): with one, its slot holds it as declared; with
 * several, they lie side by side in one slot [batch, total] and each is a
 * slice of it. *offset: where this one starts. -1 when its shape was
 * invalid (sema reported it). */
static NodeId model_packed(ModelEnv *f, NodeId whole, int count, const AstItem *it, int64_t *offset) {
    Graph *g = f->e.g;
    Shape d;
    if (!model_declared(it, &d))
        return -1;
    Shape s = batched(&d, f->e.batch);
    int64_t n = shape_elems(&d);
    NodeId v = count == 1 ? whole : ir_slice(g, whole, 1, *offset, n, it->loc);
    *offset += n;
    return ir_reshape(g, v, s, it->loc);
}

/* Several losses: every prediction flattened, side by side, as the output. */
static NodeId model_outputs(ModelEnv *f, NodeId all, NodeId pred, Loc l) {
    Graph *g = f->e.g;
    Shape s = expr_shape(&f->e, pred);
    NodeId flat = ir_reshape(g, pred, (Shape){2, {f->e.batch, shape_elems(&s)}}, l);
    return all < 0 ? flat : ir_concat(g, all, flat, 1, l);
}

void model_begin(ModelEnv *f, Graph *g, const Model *m, int64_t batch, InputType in, ModelMode mode, Diag *d,
                 bool check) {
    const AstModel *ast = m->ast;
    *f = (ModelEnv){.e = {.arena = g->arena, .diag = d, .g = g, .batch = batch, .layer = layer_call,
                          .warn = check},
                    .m = m, .cur = -1, .target = -1, .labels = -1, .layer_out = -1, .loss = -1, .outputs = -1,
                    .penalty = -1, .mode = mode, .dropout_step = -1};
    const char *labels = "labels"; /* the label slot's name: the target's, "targets" for several */
    for (int i = 0; i < ast->nitems; i++) {
        f->ninputs += ast->items[i].kind == AST_INPUT;
        if (ast->items[i].kind == AST_TARGET)
            labels = f->ntargets++ ? "targets" : ast->items[i].name;
    }
    g->batch = batch;
    ir_add_slot(g, (Slot){.kind = SLOT_ARENA, .name = "arena"});
    Shape xs = f->ninputs == 1 ? batched(&m->input, batch) : (Shape){2, {batch, shape_elems(&m->input)}};
    Shape ys = m->label_size == 1 && f->ntargets <= 1 ? (Shape){1, {batch}} : (Shape){2, {batch, m->label_size}};
    ir_add_slot(g, (Slot){.kind = SLOT_INPUT, .name = f->ninputs == 1 ? m->input_name : "inputs", .shape = xs,
                          .u8 = in == INPUT_U8});
    ir_add_slot(g, (Slot){.kind = SLOT_LABEL, .name = labels, .shape = ys});
    ir_add_slot(g, (Slot){.kind = SLOT_LOSS, .name = "loss"});
    ir_add_slot(g, (Slot){.kind = SLOT_OUTPUT, .name = "output"});
    f->xall = model_input_leaf(g, SLOT_NO_INPUT, m->input_loc);
}

/* The declared target called `name`: its slice of the label slot (the
 * targets side by side, in the order declared). False: none. */
static bool model_target(const AstModel *ast, const char *name, int64_t *off, int64_t *elems) {
    *off = 0;
    for (int i = 0; i < ast->nitems; i++) {
        const AstItem *it = &ast->items[i];
        Shape s;
        if (it->kind != AST_TARGET || !model_declared(it, &s))
            continue;
        *elems = shape_elems(&s);
        if (!strcmp(it->name, name))
            return true;
        *off += *elems;
    }
    return false;
}

/* Several losses: the term `call` of prediction `pred` is a head (the
 * first NNRT_MAX_HEADS are), named after its prediction as Keras names an
 * output's metrics: its slice of the output (where model_outputs puts it),
 * of the labels when its target is a declared one, and its metrics as a
 * model of that one output has them (session.c: an accuracy for a class
 * index per sample, else the mae and mse where each output has its label). */
static void model_head(ModelEnv *f, const AstItem *call, NodeId pred, NodeId loss) {
    Shape s = expr_shape(&f->e, pred);
    int64_t size = shape_elems(&s), off = f->out_elems, label_off, label_size;
    f->out_elems += size;
    if (f->nheads == NNRT_MAX_HEADS)
        return;
    const AstExpr *p = call->expr->args[0], *y = call->expr->args[1];
    NnrtHead h = {.name = p->kind == EX_NAME ? p->name : arena_printf(f->e.arena, "out%d", f->nheads + 1),
                  .out_off = (size_t)off, .out_size = (size_t)size};
    if (y->kind == EX_NAME && model_target(f->m->ast, y->name, &label_off, &label_size)) {
        h.label_off = (size_t)label_off;
        h.classify = label_size == 1 && size > 1;
        h.mae = !h.classify && label_size == size;
    }
    f->heads[f->nheads] = h;
    f->head_loss[f->nheads++] = loss;
}

/* Adds a term to the loss. */
static void model_add_loss(ModelEnv *f, NodeId term, Loc loc) {
    f->loss = f->loss < 0 ? term : ir_binary(f->e.g, OP_ADD, f->loss, term, loc);
}

/* A loss statement: Keras' total is the sum of the (weighted) loss terms,
 * each a prediction's, and of the penalty terms of a sum. */
static void model_loss(ModelEnv *f, const AstItem *it) {
    int n = 1;
    const AstExpr **terms = it->name ? NULL : loss_terms(f->e.arena, it->expr, &n);
    for (int i = 0; i < n; i++) {
        const AstExpr *t = terms ? terms[i] : it->expr;
        NodeId p = -1, term;
        if (terms && !loss_is_call(t)) {
            if ((term = loss_penalty(&f->e, t)) >= 0)
                model_add_loss(f, term, t->loc);
            continue;
        }
        AstItem call = terms ? (AstItem){.kind = AST_LOSS, .loc = t->loc, .name = t->name, .name_loc = t->loc,
                                         .expr = (AstExpr *)t}
                             : *it;
        NodeId unweighted;
        if ((term = loss_item(f, &call, &p, &unweighted)) < 0)
            continue;
        model_add_loss(f, term, call.loc);
        if (call.expr) /* sema learns at the second term that there are several: model_end */
            model_head(f, &call, p, unweighted);
        f->outputs = f->m->several_losses ? model_outputs(f, f->outputs, p, call.loc) : p;
    }
}

void model_item(ModelEnv *f, const AstItem *it) {
    ExprEnv *e = &f->e;
    switch (it->kind) {
    case AST_INPUT: {
        NodeId x = model_packed(f, f->xall, f->ninputs, it, &f->xoff);
        if (!f->layers_seen) { /* layers before the input had nothing to apply to (sema reported it) */
            f->cur = f->layer_out = x; /* a bare loss of it is worded as after a linear layer */
            f->layer_act = ACT_LINEAR;
        }
        expr_bind(e, it->name, it->name_loc, x);
        break;
    }
    case AST_TARGET: {
        NodeId y = model_labels(f, it->loc);
        f->target = model_packed(f, y, f->ntargets, it, &f->yoff);
        expr_bind(e, it->name, it->name_loc, f->target);
        break;
    }
    case AST_PARAM:
        expr_bind(e, it->name, it->name_loc, model_param(f, it));
        break;
    case AST_ASSIGN:
        f->cur = expr_lower(e, it->expr);
        expr_bind(e, it->name, it->name_loc, f->cur);
        break;
    case AST_DENSE:
    case AST_LAYER:
        f->layers_seen = true;
        f->cur = it->kind == AST_DENSE ? layer_dense_line(f, it, f->cur) : layer_line(f, it, f->cur);
        break;
    case AST_LOSS:
        if (it->expr) /* a bare loss is of the network's output: model_end */
            model_loss(f, it);
        else
            f->bare_loss = it;
        break;
    case AST_OPTIMIZER: case AST_SCHEDULE: case AST_TRAIN: case AST_DATA: case AST_DATA_VALUE:
        break; /* sema's alone */
    }
}

/* The fans of a param matrix the forward pass uses transposed: written
 * W @ x per sample (the notes' Omega[out, in], h = a[beta + Omega x]; the
 * batch computes x W^T) or x @ transpose(W), its columns are its inputs,
 * its rows its outputs. Keras' fans, which model_param gave it, read a
 * matrix as a kernel [in, out] used as x @ W: He's sqrt(2 / fan_in) would
 * have taken the outputs for the inputs. */
static void notes_fans(Graph *g) {
    for (NodeId i = 0; i < g->nnodes; i++) {
        const IrNode *n = &g->nodes[i];
        const IrNode *p = n->op == OP_TRANSPOSE ? &g->nodes[n->in[0]] : NULL;
        if (p && p->op == OP_PARAM && p->shape.rank == 2) {
            g->slots[p->slot].fan_in = p->shape.dim[1];
            g->slots[p->slot].fan_out = p->shape.dim[0];
        }
    }
}

NodeId model_end(ModelEnv *f, NodeId *pred, Shape *output) {
    Graph *g = f->e.g;
    if (f->bare_loss)
        model_loss(f, f->bare_loss);
    if (f->loss < 0)
        return -1;
    notes_fans(g);
    if (!f->m->several_losses) /* one loss call: not a head */
        f->nheads = 0;
    if (f->penalty >= 0) /* Keras' total: the losses and the layers' penalties */
        model_add_loss(f, f->penalty, f->m->loss_loc);
    *pred = f->outputs;
    g->slots[SLOT_NO_OUTPUT].shape = g->nodes[*pred].shape;
    if (output)
        *output = expr_shape(&f->e, *pred);
    return f->loss;
}

/* The loss slot's value: the total, then with several loss terms each
 * head's loss, side by side (the runtime reports them). */
static NodeId model_reported(ModelEnv *f, NodeId total) {
    Graph *g = f->e.g;
    Loc l = f->m->loss_loc;
    NodeId v = total;
    for (int i = 0; f->nheads && i <= f->nheads; i++) {
        NodeId x = ir_reshape(g, i ? f->head_loss[i - 1] : total, (Shape){1, {1}}, l);
        v = i ? ir_concat(g, v, x, 0, l) : x;
    }
    g->slots[SLOT_NO_LOSS].shape = g->nodes[v].shape;
    return v;
}

NodeId model_forward(Graph *g, const Model *m, int64_t batch, InputType in, ModelMode mode, NodeId *pred,
                     NodeId *reported) {
    Diag quiet; /* the model was checked: nothing to report */
    diag_init(&quiet, stderr);
    ModelEnv f;
    model_begin(&f, g, m, batch, in, mode, &quiet, false);
    for (int i = 0; i < m->ast->nitems; i++)
        model_item(&f, &m->ast->items[i]);
    NodeId loss = model_end(&f, pred, NULL);
    if (loss < 0 || quiet.errors)
        die("model: a checked model has errors");
    if (reported)
        *reported = model_reported(&f, loss);
    return loss;
}
