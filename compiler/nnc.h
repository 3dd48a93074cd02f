/* nnc.h — the compiler's shared vocabulary: the AST, the Model, the IR,
 * shapes, diagnostics, and each stage's entry points. The parser's state is
 * in parse.h, the code generator's internals in cg.h, the driver's options in
 * driver.h: each seen only by the files of its layer.
 *
 * Sections follow the pipeline, one per source file (or small group of files):
 *   util.c      arena, die(), overflow-checked size arithmetic
 *   diag.c      the single path for user-facing errors and warnings
 *   parse.c     (with grammar/nn.l, grammar/nn.y) source -> AST
 *   ast_print.c --emit=ast
 *   sema.c      AST -> checked Model (shapes inferred and checked)
 *   expr.c      tensor expressions -> IR, with their shapes checked
 *   script.c    top-level statements (let, assignment, print) run through the JIT
 *   init.c      initializers: their names, calls and literals, checked
 *   ir.c        the tensor SSA DAG: hash-consed, simplifying constructors
 *   conv_gemm.c convolutions as products at -O2
 *   ir_print.c  the canonical text form (--emit=ir, --emit=grad)
 *   dot.c       the training step for Graphviz (--emit=dot)
 *   infix.c     an IR value as a readable infix expression (print grad(L, w))
 *   model.c     Model -> forward IR: one lowering of both forms
 *   layers.c    the layers (dense, conv2d, pools, ...) and activations: checks and IR
 *   loss.c      the losses: names, checks and IR
 *   data.c      inline data of a model (data { x = [[3, 4]], y = [[6]] })
 *   autodiff.c  reverse-mode symbolic differentiation on the IR
 *   optim.c     the optimizer update as IR
 *   step.c      a model's step graphs (forward, backward, update), built once
 *   gradcheck.c symbolic gradients against central differences, in float64
 *   fuse.c      the schedule: which loop computes each node, where it lives
 *   fuse_rows.c the schedule's row loops and element loops: kernels fused
 *   layout.c    weight matrices kept in the matmul kernel's column panels
 *   codegen.c   IR -> LLVM IR: a loop nest per scheduled loop (naive at -O0)
 *   cg_matmul.c the register-blocked matmul kernel, its packing and epilogue
 *   cg_rows.c   a row loop, each row's values in registers
 *   cg_window.c the window ops (convolution, pooling) and random numbers as loop nests
 *   jit.c       LLVM IR -> machine code for the host CPU (ORC LLJIT)
 *   aot.c       a model ahead of time: an object or library and its C header
 *   pipeline.c  the stages in order, once, for every user of them
 *   target.c    the host CPU, its features and the tuning knobs, chosen once
 *   fit.c       checkpoints of a model, the training hook, the NaN/Inf report
 *   session.c   a run on data: training, evaluation, prediction (driver.h)
 *   main.c      the driver: the options' table, the REPL's driver
 */
#ifndef NNC_H
#define NNC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nnrt.h" /* the runtime's types: initializers, the training loop */

#define NNC_VERSION "0.1.0"

/* Exit statuses, documented in `nnc --help`. */
enum { EXIT_OK = 0, EXIT_INVALID_MODEL = 1, EXIT_USAGE = 2, EXIT_TRAINING = 3, EXIT_GRADCHECK = 4,
       EXIT_INTERRUPTED = 130 /* Ctrl-C stopped --train: 128 + SIGINT, as a shell reports it */ };

/* The most epochs a run may have (the model file, --epochs, a checkpoint). */
#define NNC_MAX_EPOCHS 1000000

/* ---------------------------------------------------------------- util.c */

/* Internal bugs only; never for user input. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define unreachable() die("%s:%d: unreachable", __FILE__, __LINE__)

/* Arena for compiler objects: everything of one compilation is freed at once. */
typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size); /* zeroed, aligned to 16 */
void *arena_array(Arena *a, size_t count, size_t elem); /* overflow-checked */
/* Room for one more in v, an arena array of n elements of elem bytes and
 * capacity *cap: v itself, or a copy with twice the room (`first` at
 * first), *cap updated. */
void *arena_grow(Arena *a, void *v, int n, int *cap, size_t elem, int first);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* a*b and a+b on sizes; return false on overflow (result unspecified then). */
bool size_mul(size_t a, size_t b, size_t *out);
bool size_add(size_t a, size_t b, size_t *out);

/* Growable array of T in malloc'd memory (used where the final count is unknown).
 * Overflow-checked; out of memory is an error (exit 2), not a crash. */
void *xrealloc(void *p, size_t count, size_t elem);
void *xcalloc(size_t count, size_t elem); /* zeroed */
/* Zeroed and 64-byte aligned (a cache line, an AVX-512 vector): for the
 * tensors compiled code reads and writes by vectors and splits between
 * threads. Freed with free(). */
void *xcalloc64(size_t count, size_t elem);
char *xstrdup(const char *s);

/* Levenshtein distance, for "did you mean". */
int edit_distance(const char *a, const char *b);
/* The closest of `cands` (NULL-terminated) to `s`, or NULL if none is close. */
const char *closest_name(const char *s, const char *const *cands);

/* ---------------------------------------------------------------- diag.c */

typedef struct Source {
    const char *path; /* as given on the command line */
    const char *text; /* the whole file; may contain NUL bytes */
    size_t len;
    int first_line;   /* the number of its first line (a REPL entry's in the session); 0: 1 */
    const char *quoted; /* what messages quote, if not text: the same bytes before a
                           REPL command blanked all but its expression out */
} Source;

/* A position in a source: 1-based line and column (columns count bytes). */
typedef struct Loc {
    const Source *src;
    int line, col;
    size_t offset; /* byte offset of the position, to find the line */
} Loc;

typedef struct Diag {
    FILE *out;
    int errors, warnings;
    int max_errors; /* stop printing after this many (the count keeps going) */
    bool errors_only; /* print no warnings or notes (an MPI rank but 0: rank 0 prints them once) */
} Diag;

void diag_init(Diag *d, FILE *out);
/* `file:line:col: error: message`, the source line, a caret under the column. */
void diag_error(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error with no source position (`nnc: error: ...`): usage and I/O. */
void diag_plain(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Source files, and REPL entries, larger than this are refused: no model is
 * that long, and the lexer takes lengths as int. */
#define NNC_MAX_SOURCE_BYTES ((size_t)64 << 20)

/* Reads a whole file into `src` (text allocated in `a`). False, with a
 * diag_plain, when it cannot be read. */
bool source_read(Arena *a, Diag *d, const char *path, Source *src);

/* True once printing has stopped (more than max_errors errors): callers may
 * skip costly work, such as finding a "did you mean", whose message would not
 * be shown anyway. */
bool diag_quiet(const Diag *d);
/* `s` (`len` bytes) made fit for quoting in a message, in `a`: non-printable
 * bytes become '?' and a long text is cut to its first 40 bytes and "...". */
const char *diag_clip(Arena *a, const char *s, size_t len);

/* ---------------------------------------------------------------- target.c */

/* The machine code is generated for, and the tuning knobs: built once by
 * the driver (target_host) and passed down; the stages below it never read
 * the environment or probe the host. */
typedef struct Target {
    char *cpu;       /* LLVM's name for the host CPU */
    char *features;  /* the host's features, then NNC_TARGET_FEATURES (the last mention wins) */
    int vector_bits; /* the widest vector registers the features allow: 512, 256 or 128 */
    int64_t kc;      /* NNC_KC: rows of K per packed block of a matmul operand; 0: the kernel's own */
    bool panels;     /* weights may be kept in the kernel's column panels (NNC_PANELS=0: never) */
    size_t bucket;   /* NNC_BUCKET: data-parallel gradients all-reduced together up to these
                        bytes (fuse.c's schedule_buckets); 0: one all-reduce per gradient */
} Target;

/* The host as LLVM sees it and the environment says; freed with target_free. */
Target *target_host(void);
/* --march NAME: "native" (the host), "x86-64", "x86-64-v2", "-v3", "-v4",
 * or an x86 CPU name LLVM knows ("skylake-avx512"); NULL for another. */
Target *target_named(const char *name);
/* The known name nearest to name, for "did you mean"; NULL if none is near. */
const char *target_closest(const char *name);
void target_free(Target *t);
/* "sapphirerapids avx512f avx2 fma": the CPU and its vector features, for --version. */
void target_describe(const Target *t, char *buf, size_t n);

/* ---------------------------------------------------------------- parse.c: AST */

typedef struct AstNum {
    double value;
    bool is_int;     /* written without '.', 'e' */
    bool too_large;  /* an integer literal that does not fit int64 */
    int64_t ivalue;  /* when is_int && !too_large */
    Loc loc;
} AstNum;

typedef struct AstArg { /* key = value, in optimizer(...) and train ... */
    const char *key;
    Loc loc; /* of the key */
    AstNum value;
} AstArg;

/* A tensor expression. Operators are located at the operator, so a shape
 * error points at the '+' that cannot broadcast. */
typedef enum {
    EX_NUM,     /* 1.5 */
    EX_NAME,    /* w */
    EX_LIST,    /* [e, e, ...]: a literal tensor; args are the elements */
    EX_NEG,     /* -e */
    EX_BINARY,  /* e op e, op one of + - * / ^ @ */
    EX_CALL,    /* name(e, ..., key = e, ...) */
    EX_KEYWORD, /* key = e, an argument of a call: name is the key, args[0] the value */
} AstExprKind;

typedef struct AstExpr AstExpr;
struct AstExpr {
    AstExprKind kind;
    Loc loc;
    AstNum num;       /* EX_NUM */
    const char *name; /* EX_NAME, EX_CALL (the function), EX_KEYWORD (the key) */
    char op;          /* EX_BINARY */
    AstExpr **args;   /* operands, elements or arguments */
    int nargs;
    int height;       /* the longest path down to a leaf (0 for a leaf) */
};

/* How deep expressions may nest: an operator chain's length in the parser
 * (a + b + ... does not grow bison's stack, which caps brackets and '^'),
 * and the lowering's depth through named values (h2 = h1 + 1, ...). The
 * walks over expressions and their IR recurse, so without a cap a long
 * chain overflows the stack; no model written by hand comes near it. */
enum { NNC_MAX_NESTING = 2000 };
/* The most IR nodes a statement's grad() may make its graph grow to
 * (Graph.node_limit): the examples' graphs have a few hundred, a 10-layer
 * MLP's step a few thousand. */
enum { NNC_MAX_NODES = 200000 };

/* A list of expressions while the parser builds it (lists nest, so they grow
 * in the arena rather than in the ParseState). */
typedef struct AstExprList {
    AstExpr **v;
    int n, cap;
} AstExprList;

/* A statement outside any model: the course's scalar computational graphs. */
typedef enum {
    TOP_LET,    /* let NAME = literal: a variable (a leaf one can differentiate by) */
    TOP_ASSIGN, /* NAME = expr: a named value */
    TOP_PRINT,  /* print expr */
    TOP_EXPR,   /* expr: printed, as 'print expr' is (what a REPL entry usually is) */
    TOP_REPEAT, /* repeat N { statements }: the notes' update loop */
} AstStmtKind;

/* How many times repeat may run its body, nested repeats' counts
 * multiplied: each time compiles its segments (a gradient step: 2-4 ms), so
 * at most about 40 s; the notes' loops take a few hundred steps. */
enum { NNC_MAX_REPEAT = 10000 };

typedef struct AstStmt {
    AstStmtKind kind;
    Loc loc;          /* of the statement's first token */
    const char *name; /* LET, ASSIGN */
    Loc name_loc;
    AstExpr *expr;
    int64_t count, total;   /* REPEAT: N; the body's repetitions, nested ones' included */
    struct AstStmt *body;   /* REPEAT */
    int nbody;
} AstStmt;

typedef enum {
    AST_INPUT,     /* input NAME [d0, d1, ...] */
    AST_DENSE,     /* dense N [, ACT] */
    AST_LAYER,     /* NAME [args]: a layer line of the table in layers.c (flatten, conv2d 32, 3, relu) */
    AST_LOSS,      /* loss NAME | loss NAME(args) | loss a sum of such calls and penalty terms */
    AST_OPTIMIZER, /* optimizer NAME [( k = v, ... )] */
    AST_SCHEDULE,  /* schedule NAME [( k = v, ... )]: the learning rate's */
    AST_TRAIN,     /* train k = v, ... */
    AST_TARGET,    /* target NAME [d0, ...]: what the model learns to output */
    AST_PARAM,     /* param NAME [d0, ...] [= INIT]: one per declared parameter */
    AST_ASSIGN,    /* NAME = expr: a named value of the model */
    AST_DATA_VALUE, /* NAME = literal in a data block: the samples of an input or target */
    AST_DATA,      /* data { ... }: after its values */
} AstKind;

typedef struct AstItem {
    AstKind kind;
    Loc loc;          /* of the keyword */
    const char *name; /* input name, loss, optimizer, layer; activation of dense (NULL: linear) */
    Loc name_loc;
    AstNum *dims;     /* input */
    int ndims;
    AstNum units;     /* dense */
    AstArg *args;     /* optimizer, schedule, train */
    int nargs;
    AstExpr *expr;    /* assign: the value; loss: its call, as in loss mse(out, y), or its sum of terms
                       * (name NULL then), as in loss mse(out, y) + 0.01 * sum(w^2); else NULL */
    AstExpr *init;    /* param: its initializer (zeros, normal(0, 1), [1, 2]), or NULL */
    AstExpr **kwargs; /* dense: key = value options (kernel_initializer = ...); layer: its arguments */
    int nkwargs;
} AstItem;

typedef struct AstModel {
    const char *name;
    Loc loc;
    AstItem *items;
    int nitems;
    Loc name_loc;
} AstModel;

typedef struct AstProgram {
    AstModel *models;
    int nmodels;
    AstStmt *stmts; /* the top-level statements, in order */
    int nstmts;
} AstProgram;

/* Parses `src`; reports every syntax error through `d`. Returns NULL if there
 * was any error. Never crashes on any input. */
AstProgram *parse_program(Arena *a, Diag *d, const Source *src);
/* The text of --schedule, NAME [(k = v, ...)], as a schedule statement; NULL
 * after reporting a syntax error (located in src, whose path names the option). */
AstItem *parse_schedule_option(Arena *a, Diag *d, const Source *src);
/* The same for a REPL entry: statements may be bare expressions (TOP_EXPR),
 * and an entry of nothing is no error. */
AstProgram *parse_entry(Arena *a, Diag *d, const Source *src);

/* ---------------------------------------------------------------- ast_print.c */

void ast_print(FILE *out, const AstProgram *p);

/* ---------------------------------------------------------------- sema.c: Model */

#define NNC_MAX_RANK 4

typedef struct Shape {
    int rank;
    int64_t dim[NNC_MAX_RANK];
} Shape;

typedef enum { ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX, ACT_SOFTPLUS } Act;
typedef enum { LOSS_CROSSENTROPY, LOSS_MSE, LOSS_MAE, LOSS_BCE, LOSS_NLL } LossKind;
typedef enum { OPT_SGD, OPT_ADAM, OPT_RMSPROP, OPT_ADAGRAD, OPT_ADADELTA, OPT_ADAMAX, OPT_NADAM, OPT_FTRL } OptKind;
/* Keras' learning-rate schedules of the iteration count k (0 at the first step). */
typedef enum { SCHED_CONSTANT, SCHED_STEP, SCHED_EXPONENTIAL, SCHED_INVERSE_TIME, SCHED_COSINE } SchedKind;
/* Inline data: n samples of the inputs and of the targets, each side by
 * side in the slots' order (as the step function's slots 1 and 2 hold them). */
typedef struct ModelData {
    int64_t n;
    double *x, *y; /* n * input elements, n * label_size */
    Loc loc;
} ModelData;

typedef struct Model {
    const char *name;
    Loc loc;
    const char *input_name;
    Loc input_loc;
    Shape input;     /* per sample */
    Shape output;    /* per sample: the prediction's shape */
    LossKind loss;
    Loc loss_loc;
    OptKind opt;
    Loc opt_loc;
    double lr, momentum;
    bool nesterov;
    double beta1, beta2, epsilon; /* adam; epsilon for every adaptive one */
    double rho;                   /* rmsprop, adadelta */
    double accumulator;           /* adagrad, ftrl: initial_accumulator_value */
    double lr_power, l1, l2, l2_shrinkage, ftrl_beta; /* ftrl */
    double weight_decay, clipnorm, clipvalue, global_clipnorm; /* 0: off */
    SchedKind sched;              /* the lr as a function of the step count */
    Loc sched_loc;
    double decay_steps, decay_rate, alpha;
    bool staircase;
    int64_t epochs, batch;
    /* Its items: model.c lowers them for each batch size. */
    const AstModel *ast;
    /* Elements per sample of the label slot: 1 (a class index or one value,
     * the labels file's convention), or the targets of a functional model
     * side by side (then `input` above is the inputs side by side too when
     * there are several). */
    int64_t label_size;
    bool several_losses; /* the output is every prediction, flattened side by side */
    NnrtHead heads[NNRT_MAX_HEADS]; /* then each term's slices and metrics (model_end) */
    int nheads;
    const ModelData *data; /* inline data { ... }, or NULL */
    uint64_t seed;         /* --seed: dropout's masks are keyed by it */
} Model;

/* Checks one model; all errors go through `d`. Returns NULL if it had errors. */
Model *sema_model(Arena *a, Diag *d, const AstModel *m);
/* Sets m's learning-rate schedule from a schedule statement (the file's or
 * --schedule's); false once its errors are reported. */
bool sema_schedule(Arena *a, Diag *d, Model *m, const AstItem *it);

/* The largest number of elements a tensor may have (checked in sema, so
 * later stages multiply dimensions without overflow). */
#define NNC_MAX_ELEMS ((int64_t)1 << 31)

/* An integer in [lo, hi] (a dimension, a count); false once reported
 * ("expected an integer, found 2.5", "WHAT must be at least LO, found ..."). */
bool sema_int(Arena *a, Diag *d, const AstNum *n, const char *what, int64_t lo, int64_t hi, int64_t *out);

/* ---------------------------------------------------------------- data.c */

/* The values of a data block (the AST_DATA_VALUE items before `data`),
 * checked against the model's inputs and targets: each given once, the
 * same number of samples in all, the declared shape per sample. NULL once
 * reported. */
const ModelData *data_check(Arena *a, Diag *d, const Model *m, const AstModel *ast, const AstItem *data);

/* ---------------------------------------------------------------- ir.c: the IR */

typedef enum { DT_F32, DT_F64 } DType;
/* Bytes of one element. */
unsigned dtype_bytes(DType dt);

/* The op table, one row per op, grouped by class: a switch over ops may give
 * one case to a whole class that the code before it has dealt with
 * (`IR_OPS_LEAF(OP_CASE) unreachable();`). A row is
 *     X(NAME, text, arity, class, facts, libm)    -- the math beside it
 * facts: the OPF_ flags below, read by the passes as op_info[op].row, ...;
 * libm: the libm function of one double the op calls ("tanh"; the float
 * one is "tanhf", and jit.c resolves both), or NULL.
 * A new op gets a row; -Werror=switch then names each switch that must
 * handle it, and test_gradcheck.c fails until the op has a gradient case. */
enum {
    OPF_ELEM = 1 << 0,      /* computed from its operands' elements at its own index: cg_elemwise_value */
    OPF_ROW = 1 << 1,       /* has a vector form for a row loop (fuse_rows.c, cg_rows.c) */
    OPF_EPILOGUE = 1 << 2,  /* cheap enough for a matmul's epilogue: no libm call, no index (fuse.c) */
    OPF_ZERO_GRAD = 1 << 3, /* piecewise constant: zero derivative, so no adjoint (autodiff.c) */
    OPF_ALPHA = 1 << 4,     /* the node's value is the op's parameter alpha (ir_unary_alpha) */
    OPF_AXIS = 1 << 5,      /* the node's axis is an attribute of its own (printed by ir_print.c) */
    OPF_INDEX = 1 << 6,     /* reads its element's last index; its operand holds one label per row */
    OPF_GEMM = 1 << 7,      /* a product at -O2, through the matmul kernel (conv_gemm.c) */
};

/* leaves: their buffer is a slot of the step function */
#define IR_OPS_LEAF(X)                                                                                      \
    X(INPUT, "input", 0, LEAF, 0, NULL)                       /* x: a batch of samples                  */ \
    X(LABEL, "label", 0, LEAF, 0, NULL)                       /* y: class index (as a float) per sample */ \
    X(PARAM, "param", 0, LEAF, 0, NULL)                       /* trainable parameter                    */ \
    X(STATE, "state", 0, LEAF, 0, NULL)                       /* optimizer state (e.g. velocity)        */ \
    X(CONST, "const", 0, LEAF, 0, NULL)                       /* every element = value                  */
/* elementwise of two operands, NumPy broadcasting of both to the result shape */
#define IR_OPS_BINARY(X)                                                                                    \
    X(ADD, "add", 2, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_EPILOGUE, NULL) /* a + b                        */ \
    X(SUB, "sub", 2, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_EPILOGUE, NULL) /* a - b                        */ \
    X(MUL, "mul", 2, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_EPILOGUE, NULL) /* a * b                        */ \
    X(DIV, "div", 2, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_EPILOGUE, NULL) /* a / b                        */ \
    X(POW, "pow", 2, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)      /* a^b = e^(b ln a)                       */ \
    X(EQ, "eq", 2, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_ZERO_GRAD, NULL) /* a == b ? 1 : 0                */ \
    X(MAXIMUM, "maximum", 2, ELEMWISE, OPF_ELEM | OPF_ROW, NULL) /* a > b ? a : b                       */ \
    X(MINIMUM, "minimum", 2, ELEMWISE, OPF_ELEM | OPF_ROW, NULL) /* a < b ? a : b                       */ \
    /* max(a, 0) - a b + ln(1 + e^-|a|): BCE of sigmoid(a) vs b; with b = 0, softplus(a) */                 \
    X(BCE_LOGITS, "bce_logits", 2, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)
/* elementwise of one operand */
#define IR_OPS_UNARY(X)                                                                                     \
    X(NEG, "neg", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_EPILOGUE, NULL) /* -a                           */ \
    X(EXP, "exp", 1, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)      /* e^a                                    */ \
    X(LOG, "log", 1, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)      /* ln a                                   */ \
    X(RELU, "relu", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_EPILOGUE, NULL) /* max(a, 0)                  */ \
    /* a > 0 ? 1 : 0    (relu') */                                                                          \
    X(STEP, "step", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_EPILOGUE | OPF_ZERO_GRAD, NULL)                  \
    X(SIGMOID, "sigmoid", 1, ELEMWISE, OPF_ELEM | OPF_ROW, NULL) /* 1 / (1 + e^-a)                      */ \
    /* (e^a - e^-a) / (e^a + e^-a): a libm call of one float, so no vector form */                          \
    X(TANH, "tanh", 1, ELEMWISE, OPF_ELEM, "tanh")                                                          \
    X(SQRT, "sqrt", 1, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)    /* a^(1/2)                                */ \
    X(ABS, "abs", 1, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)      /* |a|                                    */ \
    /* a > 0 ? 1 : a < 0 ? -1 : 0    (abs') */                                                              \
    X(SIGN, "sign", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_ZERO_GRAD, NULL)                                  \
    X(SIN, "sin", 1, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)      /* sin a                                  */ \
    X(COS, "cos", 1, ELEMWISE, OPF_ELEM | OPF_ROW, NULL)      /* cos a                                  */ \
    /* the largest integer <= a  (staircase lr) */                                                          \
    X(FLOOR, "floor", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_ZERO_GRAD, NULL)                                \
    /* a > 0 ? a : alpha a   (alpha: value) */                                                              \
    X(LEAKY_RELU, "leaky_relu", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_ALPHA, NULL)                          \
    /* a > 0 ? a : alpha (e^a - 1)  (alpha: value) */                                                       \
    X(ELU, "elu", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_ALPHA, NULL)                                        \
    /* r[i, j] = (a[i] == j)    (shape [n, k]) */                                                           \
    X(ONEHOT, "onehot", 1, ELEMWISE, OPF_ELEM | OPF_ROW | OPF_ZERO_GRAD | OPF_INDEX, NULL)
/* reductions over one axis (keepdims) or over all (axis = -1, result []) */
#define IR_OPS_REDUCE(X)                                                                                    \
    X(SUM, "sum", 1, REDUCE, OPF_ROW | OPF_AXIS, NULL)        /* r = sum_axis a                         */ \
    X(MAX, "max", 1, REDUCE, OPF_ROW | OPF_AXIS, NULL)        /* r = max_axis a                         */ \
    X(MIN, "min", 1, REDUCE, OPF_ROW | OPF_AXIS, NULL)        /* r = min_axis a                         */ \
    /* r = a - max a - log sum e^(a - max a), last axis (its axis, never -1, is implied) */                 \
    X(LOGSOFTMAX, "logsoftmax", 1, REDUCE, OPF_ROW, NULL)
/* linear algebra */
#define IR_OPS_MATMUL(X)                                                                                    \
    X(MATMUL, "matmul", 2, MATMUL, 0, NULL)                   /* r[i, j] = sum_k a[i, k] b[k, j]        */
/* movement */
#define IR_OPS_MOVEMENT(X)                                                                                  \
    X(TRANSPOSE, "transpose", 1, MOVEMENT, 0, NULL)           /* r[i, j] = a[j, i]                      */ \
    X(RESHAPE, "reshape", 1, MOVEMENT, 0, NULL)               /* same elements, new shape               */ \
    /* a repeated along its size-1 axes */                                                                  \
    X(BROADCAST, "broadcast", 1, MOVEMENT, OPF_ELEM | OPF_ROW | OPF_EPILOGUE, NULL)                         \
    X(CONCAT, "concat", 2, MOVEMENT, OPF_AXIS, NULL)          /* a then b along axis                    */ \
    X(SLICE, "slice", 1, MOVEMENT, OPF_AXIS, NULL)            /* r[.., i, ..] = a[.., start + i, ..] on axis */
/* sliding windows over the two middle axes of [n, H, W, C] (IrNode.win: the
 * window kh x kw, stride sh, sw, padding pt, pl before the first row and
 * column; what falls outside the input is 0, or not counted by a pool).
 * Writing p = i sh + u - pt, q = j sw + v - pl, and w(i, j) for the window
 * of output (i, j), first(w) the position of its first largest element
 * (u, then v, ascending: PyTorch's tie): */
#define IR_OPS_WINDOW(X)                                                                                    \
    /* r[b, i, j, f] = sum_{u, v, c} a[b, p, q, c] k[u, v, c, f]      (a: x, b: k [kh, kw, C, F]) */       \
    X(CONV2D, "conv2d", 2, WINDOW, OPF_GEMM, NULL)                                                          \
    /* r[b, p, q, c] = sum_{i, j, u, v, f} a[b, i, j, f] k[u, v, c, f]  (conv2d's adjoint in x: a: dy) */   \
    X(CONV2D_DATA, "conv2d_data", 2, WINDOW, OPF_GEMM, NULL)                                                \
    /* r[u, v, c, f] = sum_{b, i, j} a[b, p, q, c] dy[b, i, j, f]      (conv2d's adjoint in k: b: dy) */    \
    X(CONV2D_FILTER, "conv2d_filter", 2, WINDOW, OPF_GEMM, NULL)                                            \
    /* r[b, i, j, c] = max_{u, v} a[b, p, q, c] */                                                          \
    X(MAXPOOL, "maxpool", 1, WINDOW, 0, NULL)                                                               \
    /* r[b, p, q, c] = sum_{i, j: first(w(i, j)) = (p, q)} dy[b, i, j, c]   (maxpool's adjoint; a: x, b: dy) */ \
    X(MAXPOOL_GRAD, "maxpool_grad", 2, WINDOW, 0, NULL)                                                     \
    /* r[b, i, j, c] = d[b, first(w(i, j)), c]          (maxpool_grad's adjoint in dy; a: x, b: d) */       \
    X(MAXPOOL_PICK, "maxpool_pick", 2, WINDOW, 0, NULL)                                                     \
    /* r[b, i, j, c] = sum_{u, v} a[b, p, q, c] / |w(i, j) inside a| */                                     \
    X(AVGPOOL, "avgpool", 1, WINDOW, 0, NULL)                                                               \
    /* r[b, p, q, c] = sum_{i, j: (p, q) in w(i, j)} dy[b, i, j, c] / |w(i, j) inside|  (avgpool's adjoint) */ \
    X(AVGPOOL_GRAD, "avgpool_grad", 1, WINDOW, 0, NULL)                                                     \
    /* r[(b, i, j), (u, v, c)] = a[b, p, q, c]: the patches as rows, [n oh ow, kh kw C] (conv_gemm.c) */   \
    X(IM2COL, "im2col", 1, WINDOW, 0, NULL)                                                                 \
    /* r[b, p, q, c] = sum_{i, j, u, v} a[(b, i, j), (u, v, c)]     (im2col's adjoint) */                   \
    X(COL2IM, "col2im", 1, WINDOW, 0, NULL)
/* generated */
#define IR_OPS_RANDOM(X)                                                                                    \
    /* uniform in [0, 1): a hash of (value: a key, a's value: a counter, the element's index) */             \
    X(RANDOM, "random", 1, RANDOM, OPF_ZERO_GRAD, NULL)
/* across the processes of data-parallel training (runtime/mpi.c) */
#define IR_OPS_COLLECTIVE(X)                                                                                \
    /* r = sum over the ranks of a n_rank / sum of n_rank: the global batch's mean gradient from each      \
     * rank's mean over its slice of n_rank samples; a itself in one process (a parameter's gradient) */    \
    X(ALLREDUCE, "allreduce", 1, COLLECTIVE, 0, NULL)
#define IR_OPS(X) IR_OPS_LEAF(X) IR_OPS_BINARY(X) IR_OPS_UNARY(X) IR_OPS_REDUCE(X) IR_OPS_MATMUL(X) IR_OPS_MOVEMENT(X) \
    IR_OPS_WINDOW(X) IR_OPS_RANDOM(X) IR_OPS_COLLECTIVE(X)
/* The case label of an op, for a group of rows: IR_OPS_LEAF(OP_CASE). */
#define OP_CASE(name, ...) case OP_##name:

typedef enum {
#define X(name, ...) OP_##name,
    IR_OPS(X)
#undef X
} Op;
/* The number of ops: an int, not an Op, so switches over ops need no case for it. */
#define OP_PLUS_ONE(...) +1
#define OP_COUNT (0 IR_OPS(OP_PLUS_ONE))

typedef enum { CLASS_LEAF, CLASS_ELEMWISE, CLASS_REDUCE, CLASS_MATMUL, CLASS_MOVEMENT, CLASS_WINDOW, CLASS_RANDOM,
               CLASS_COLLECTIVE } OpClass;

/* A row of the table; the booleans are its OPF_ facts. */
typedef struct OpInfo {
    const char *name;
    int arity;
    OpClass cls;
    bool elem, row, epilogue, zero_grad, alpha, axis, index, gemm;
    const char *libm;
} OpInfo;
extern const OpInfo op_info[OP_COUNT];

typedef int32_t NodeId;

/* A window op's window (IR_OPS_WINDOW): size, stride, padding before, and
 * how many windows fit along each axis. */
typedef struct Window {
    int32_t kh, kw, sh, sw, pt, pl;
    int64_t oh, ow;
} Window;

typedef struct IrNode {
    Op op;
    NodeId in[2];
    Shape shape;
    double value;  /* CONST; LEAKY_RELU, ELU: alpha */
    int axis;      /* SUM, MAX, MIN: axis or -1 for all; CONCAT, SLICE: axis */
    int64_t start; /* SLICE: the first index taken along axis; RANDOM: 1 if its elements
                      are numbered from the step's first sample among all ranks
                      (Graph.global_samples), else 0 */
    Window win;    /* IR_OPS_WINDOW */
    int slot;      /* leaves INPUT, LABEL, PARAM, STATE: the step function's slot */
    /* The batch size is symbolic: a graph built for `batch` samples (Graph)
     * runs on any n <= batch of them. Bit d of batch_axes is set when axis
     * d has n elements (batch in the shape); a constant's value is
     * proportional to n^batch_pow (a mean's 1/n: -1), `value` at the full
     * batch. The constructors derive both from the operands. */
    uint8_t batch_axes;
    int8_t batch_pow;
    Loc loc;       /* the source construct this node came from */
} IrNode;

/* The step function's arguments: `void step(void **slots, int64_t n)`;
 * slots[0] is the arena of intermediate buffers, the others are named
 * tensors; n is the batch size (see Graph's batch_axes). */
typedef enum { SLOT_ARENA, SLOT_INPUT, SLOT_LABEL, SLOT_LOSS, SLOT_OUTPUT, SLOT_PARAM, SLOT_STATE, SLOT_GRAD } SlotKind;

/* Fixed slot numbers, the same in every step function of a model. */
enum { SLOT_NO_ARENA = 0, SLOT_NO_INPUT = 1, SLOT_NO_LABEL = 2, SLOT_NO_LOSS = 3, SLOT_NO_OUTPUT = 4,
       SLOT_NO_FIRST_PARAM = 5 };

/* How a step receives its input: as floats, or as the uint8 of IDX images,
 * which it scales itself (model.c) so the runtime only copies bytes. */
typedef enum { INPUT_FLOAT, INPUT_U8 } InputType;

typedef struct Slot {
    SlotKind kind;
    const char *name;   /* "dense1.W", "dense1.W.velocity", "x", ... */
    Shape shape;
    bool u8;            /* INPUT: its elements are uint8 (INPUT_U8) */
    NnrtInit init;      /* PARAM: its initializer; STATE: its value at the start (zeros unless given) */
    int64_t fan_in, fan_out;
    /* STATE of the model itself (batchnorm's moving statistics, Keras'
     * non-trainable weights), not of the optimizer: --load needs it as it
     * needs the parameters, where optimizer state is optional. */
    bool model_state;
} Slot;

/* A result of the step function: node `node` is stored into slot `slot`. */
typedef struct IrOutput {
    NodeId node;
    int slot;
} IrOutput;

typedef struct Graph {
    Arena *arena;
    DType dtype;
    IrNode *nodes;
    int nnodes, cap;
    int32_t *hash; /* open addressing, node id + 1; 0 = empty */
    int hcap;
    Slot *slots;
    int nslots, slot_cap;
    IrOutput *outputs;
    int noutputs, out_cap;
    /* A graph built for `batch` samples (set before its input and label
     * leaves are made) runs on any n <= batch of them: its nodes'
     * batch_axes and batch_pow say how. 0 or 1: every size is fixed (a
     * script's graph; a batch of one). */
    int64_t batch;
    /* 0, or where ad_gradients gives up (its gradients are -1 then): a
     * derivative's graph may grow by a factor per grad, nested grads
     * exponentially. */
    int node_limit;
    /* Data-parallel training: this rank's samples are a slice of the global
     * batch, so the random numbers made for them (dropout's masks) are
     * numbered by the global sample (ir_random), as one process numbers
     * them. */
    bool global_samples;
} Graph;

Graph *ir_new(Arena *a, DType dt);
int ir_add_slot(Graph *g, Slot s); /* returns its number */
/* The elements of every PARAM slot: a model's parameter count. */
int64_t ir_param_count(const Graph *g);
void ir_add_output(Graph *g, NodeId node, int slot);

/* Constructors. Each one simplifies first (constant folding, algebraic
 * identities) and is hash-consed: an identical node returns the same id, so
 * common subexpressions are shared by construction. `loc` is the source
 * construct responsible for the node. */
NodeId ir_leaf(Graph *g, Op op, int slot, Shape s, Loc loc);
/* Is n a leaf read from a slot (an input, label, param or state; not a constant)? */
bool ir_is_slot_leaf(const IrNode *n);
NodeId ir_const(Graph *g, double v, Shape s, Loc loc);
/* A scalar constant proportional to n^pow for a batch of n samples: v at
 * the full batch (a mean's 1/n is ir_const_batch(g, 1.0 / batch, -1)). */
NodeId ir_const_batch(Graph *g, double v, int pow, Loc loc);
/* A constant of shape s with these batch axes (IrNode.batch_axes). */
NodeId ir_const_axes(Graph *g, double v, Shape s, uint8_t batch_axes, Loc loc);
NodeId ir_unary(Graph *g, Op op, NodeId a, Loc loc);
NodeId ir_binary(Graph *g, Op op, NodeId a, NodeId b, Loc loc); /* broadcasting elementwise */
NodeId ir_matmul(Graph *g, NodeId a, NodeId b, Loc loc);
NodeId ir_transpose(Graph *g, NodeId a, Loc loc);
NodeId ir_reshape(Graph *g, NodeId a, Shape s, Loc loc);
NodeId ir_broadcast(Graph *g, NodeId a, NodeId like, Loc loc); /* to like's shape and batch axes, NumPy rules */
NodeId ir_sum(Graph *g, NodeId a, int axis, Loc loc); /* keepdims; axis -1: all, result [] */
NodeId ir_extreme(Graph *g, Op op, NodeId a, int axis, Loc loc); /* MAX or MIN, like ir_sum */
NodeId ir_unary_alpha(Graph *g, Op op, NodeId a, double alpha, Loc loc); /* LEAKY_RELU, ELU */
NodeId ir_concat(Graph *g, NodeId a, NodeId b, int axis, Loc loc); /* other axes equal */
NodeId ir_slice(Graph *g, NodeId a, int axis, int64_t start, int64_t size, Loc loc);
NodeId ir_onehot(Graph *g, NodeId labels, int64_t classes, Loc loc);
NodeId ir_logsoftmax(Graph *g, NodeId a, Loc loc);
/* The output length of a window of k elements moved by s over n elements,
 * Keras' padding: valid (none) or same (ceil(n / s), the padding split with
 * the extra element at the end); *before gets the padding before the first
 * element. < 1: the window leaves nothing (the caller reports it). */
int64_t window_out(int64_t n, int64_t k, int64_t s, bool same, int64_t *before);
/* x [n, H, W, C] (rank 4: a batch axis, or a leading 1 without one),
 * k [kh, kw, C, F] -> [n, OH, OW, F], stride sh, sw: Keras' conv2d
 * (a correlation, channels last). The caller has checked the ranks, C and
 * that the window leaves something. */
NodeId ir_conv2d(Graph *g, NodeId x, NodeId k, int64_t sh, int64_t sw, bool same, Loc loc);
/* OP_MAXPOOL or OP_AVGPOOL of x [n, H, W, C] -> [n, OH, OW, C]. */
NodeId ir_pool(Graph *g, Op op, NodeId x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, bool same, Loc loc);
/* Any window op (the gradients: autodiff.c) with window w, of shape s and
 * these batch axes (b: -1 for an op of one operand). */
NodeId ir_window(Graph *g, Op op, NodeId a, NodeId b, Window w, Shape s, uint8_t batch_axes, Loc loc);
/* Uniform in [0, 1) for each element of `like`'s shape and batch axes: a
 * counter-based hash of (key, the value of the scalar `counter`, the
 * element's index), so the same key, counter and element give the same
 * number on every run, thread count and batch split. Zero gradient. */
NodeId ir_random(Graph *g, NodeId counter, uint32_t key, NodeId like, Loc loc);
/* OP_ALLREDUCE of a, a parameter's gradient (no batch axes); a constant is
 * its own (the same on every rank). */
NodeId ir_allreduce(Graph *g, NodeId a, Loc loc);

/* Node x's batch axes and batch power (none in a graph of fixed sizes). */
uint8_t ir_batch_axes(const Graph *g, NodeId x);
int ir_batch_pow(const Graph *g, NodeId x);
/* Shapes (shape_broadcast below too). */
int64_t shape_elems(const Shape *s);
bool shape_eq(const Shape *a, const Shape *b);
/* "[28, 28]" into buf; returns buf. dims_str: of any rank's dims (a
 * checkpoint's tensor, which may claim more than a Shape holds). */
const char *shape_str(const Shape *s, char *buf, size_t n);
const char *dims_str(const int64_t *dims, int rank, char *buf, size_t n);
/* Is node n a CONST with value v? */
bool ir_is_const(const Graph *g, NodeId n, double v);
/* Broadcast shape of a and b (NumPy rules); false if incompatible. */
bool shape_broadcast(const Shape *a, const Shape *b, Shape *out);

/* Node x of another graph as a node of g, its operands map[x->in[k]]
 * (hash-consed, not simplified again). */
NodeId ir_copy(Graph *g, const IrNode *x, const NodeId *map);
/* ir_copy (map NULL: x's operands as they are), but a node of its own even
 * where an identical one is in g (remat.c's copies, one a user; nothing is
 * built in g after them). */
NodeId ir_copy_apart(Graph *g, const IrNode *x, const NodeId *map);

/* Dead-code removal: a new graph holding only what the outputs need, in
 * topological order (the canonical numbering). */
Graph *ir_dce(const Graph *g);

/* ---------------------------------------------------------------- conv_gemm.c */

/* g with its convolutions as products (im2col, matmul, col2im) for the
 * matmul kernel: what -O2 schedules; g itself if it has none. */
Graph *conv_gemm(Graph *g);

/* ---------------------------------------------------------------- remat.c */

/* g with each cheap value of several users that all take it into their
 * loops copied, one copy a user, to be computed there and never stored:
 * what -O2 schedules; g itself if it has none. */
Graph *remat(Graph *g);

/* ---------------------------------------------------------------- ir_print.c */

void ir_print(FILE *out, const Graph *g);

/* ---------------------------------------------------------------- dot.c */

/* --emit=dot: the training step g as one Graphviz digraph called `name`,
 * the forward pass and the gradient graph as two clusters. */
void dot_print(FILE *out, const Graph *g, const char *name);

/* ---------------------------------------------------------------- infix.c */

/* Node `root` of g as a readable infix expression, in the language's own
 * syntax: `names[id]` (when not NULL) stands for node id wherever it occurs
 * below the root; a subexpression used more than once that has no name is
 * written once as t1, t2, ... and *where is set to "t1 = ..., t2 = ..."
 * (else NULL). Strings in `a`. */
const char *infix_expr(Arena *a, const Graph *g, NodeId root, const char *const *names, const char **where);

/* ---------------------------------------------------------------- expr.c */

/* The names an expression may use, each bound to an IR node. */
typedef struct ExprName {
    const char *name;
    Loc loc;      /* where it was defined */
    NodeId node;  /* -1: its definition had an error (reported); or one of: */
} ExprName;
enum {
    EXPR_LAZY = -2,      /* defined, but lowered only where used (ExprEnv.resolve) */
    EXPR_RESOLVING = -3, /* being lowered: a use now is a cycle */
};

typedef struct ExprEnv ExprEnv;
struct ExprEnv {
    Arena *arena;
    Diag *diag;
    Graph *g;
    ExprName *names;
    int nnames, cap;
    int32_t *index; /* names by hash, open addressing: position + 1; 0 = empty */
    int index_cap;
    /* A tensor literal [..] with these elements, as a node; NULL where they
     * are not allowed. */
    NodeId (*literal)(ExprEnv *e, const AstExpr *x, Shape s, const double *values);
    NodeId grad_of; /* the function differentiated by the last grad() lowered */
    /* In a model: values that depend on an input or target hold a batch
     * of `batch` samples on a leading axis; shapes are checked and shown
     * per sample. 0 at the top level. */
    int64_t batch;
    signed char *batched; /* per node: 0 unknown, 1 no, 2 yes */
    int batched_cap;
    bool warn; /* report warnings (not when lowering again what was checked) */
    /* A layer's call (dense(h, 512), conv2d(x, 32, 3)), in a model; NULL
     * elsewhere. */
    NodeId (*layer)(ExprEnv *e, const AstExpr *x);
    /* The node of names[index], bound to EXPR_LAZY or EXPR_RESOLVING, used
     * at `use` (script.c's session definitions); -1 once reported. */
    NodeId (*resolve)(ExprEnv *e, int index, Loc use);
    /* A call m(x) of a REPL model, or an unbound name m.dense1.W of one;
     * false if x names no model (the usual error follows), else *out (-1
     * once reported). NULL elsewhere. */
    bool (*model)(ExprEnv *e, const AstExpr *x, NodeId *out);
    bool redefine; /* binding a bound name replaces it (the REPL) */
    int depth;     /* expr_lower's recursion, capped at NNC_MAX_NESTING */
    bool too_deep; /* the cap was reached (reported): unwinding */
};

/* Does node n hold a batch of samples (a leading batch axis)? */
bool expr_batched(ExprEnv *e, NodeId n);
/* The shape of n per sample: without the batch axis (a scalar computed from
 * a batch, a loss, stays a scalar). */
Shape expr_shape(ExprEnv *e, NodeId n);

/* The binding of `name`, or NULL. */
const ExprName *expr_lookup(const ExprEnv *e, const char *name);
/* Binds `name`; false (reported, with a note at the first) if it is bound. */
bool expr_bind(ExprEnv *e, const char *name, Loc loc, NodeId node);
/* The IR of `x` (shapes checked, NumPy broadcasting), or -1 once every
 * error in it has been reported through e->diag. */
NodeId expr_lower(ExprEnv *e, const AstExpr *x);
/* The shape and elements of a literal (a number or nested [..] of numbers)
 * in `a`; false once reported. */
bool expr_literal(ExprEnv *e, const AstExpr *x, Shape *shape, double **values);

/* ---------------------------------------------------------------- init.c */

/* The initializer `x` (zeros, he_uniform, normal(0, 0.05), [1, 2], ...) of a
 * parameter of `shape` (NULL: not known yet, a literal's shape is not
 * checked); false once reported through e->diag. */
bool init_resolve(ExprEnv *e, const AstExpr *x, const Shape *shape, NnrtInit *out);
/* Keras' fans of a weight of this shape (for a matrix: its rows, columns). */
void init_fans(const Shape *s, int64_t *fan_in, int64_t *fan_out);

/* ---------------------------------------------------------------- script.c */

/* A text the statements came from (a REPL entry, a loaded file) with the
 * arena of its AST; freed when the last reference goes (script_text_new
 * gives the first one). */
typedef struct ScriptText {
    Arena *arena;
    Source src;
    int refs;
} ScriptText;
ScriptText *script_text_new(const char *path, int first_line, const char *text, size_t len);
void script_text_hold(ScriptText *t);
void script_text_release(ScriptText *t);

/* A session of statements: its definitions outlive each call. `repl`: a
 * name may be redefined, and assignments and computed lets show their value.
 * Its computations are compiled for t, which outlives it. */
typedef struct Script Script;
Script *script_new(Diag *d, FILE *out, bool repl, const Target *t);
void script_free(Script *sc);
/* Forgets every definition. */
void script_reset(Script *sc);
/* Runs statements parsed from `text` (held by the definitions they make; NULL
 * if it outlives the script), printing to the script's out. False once an
 * error is reported; the statements before the failing segment took effect. */
bool script_exec(Script *sc, ScriptText *text, const AstStmt *stmts, int n);
/* The defined names, in a malloc'd array (the strings are the script's). */
int script_names(const Script *sc, const char ***names);
/* x lowered in a new graph (float64) in `a`, seeing the session's names,
 * without running it: false once reported. */
bool script_lower(Script *sc, Arena *a, const AstExpr *x, Graph **g, NodeId *node);
/* The REPL's models as the statements see them: m(x) is model m (trained)
 * evaluated on x, and m.dense1.W a weight of it (script_weights). */
struct FitWeights;
typedef struct ScriptModels {
    void *ctx;
    /* The model `name` and its weights (*w; slots NULL until trained), or NULL. */
    const Model *(*find)(void *ctx, const char *name, const struct FitWeights **w);
} ScriptModels;
/* models: NULL (a file's statements), or one that outlives sc. */
void script_models(Script *sc, const ScriptModels *models);
/* Defines MODEL.NAME for every parameter and model-state slot of m as its
 * value in w now (Keras' weights, by their checkpoint names), replacing
 * those of an earlier run; w NULL or untrained: forgets them. text (held
 * while they live): where m was defined. */
void script_weights(Script *sc, const Model *m, const struct FitWeights *w, ScriptText *text);
/* Runs the top-level statements of a file: EXIT_OK, EXIT_INVALID_MODEL after
 * errors, EXIT_USAGE if the JIT fails. With `dot` (--emit=dot) the graph of
 * each segment (the printed values and their gradients) is written there as
 * a DOT digraph instead of the values. */
int script_run(Diag *d, const AstProgram *p, FILE *out, FILE *dot, const Target *t);

/* ---------------------------------------------------------------- model.c */

/* Keras' `training`: how the layers that differ between the steps are
 * lowered. Training: dropout drops, batchnorm normalizes by the batch's
 * statistics and updates its moving ones; evaluation: dropout is the
 * identity, batchnorm normalizes by the moving statistics. */
typedef enum { MODE_EVAL, MODE_TRAIN } ModelMode;

/* The state of lowering one model's items (model.c), seen by the layers
 * (layers.c) and the losses (loss.c). */
typedef struct ModelEnv {
    ExprEnv e;           /* first: expr.c's layer hook gets it and finds the rest */
    const Model *m;
    int ninputs, ntargets;
    NodeId xall, labels; /* the input slot's leaf; the label slot's (made when first used), or -1 */
    int64_t xoff, yoff;  /* where the next input, target starts in its slot */
    NodeId cur;          /* the value a layer line applies to: the last one made; -1: none known */
    NodeId target;       /* the last target, or -1 */
    bool layers_seen;    /* a layer line came before */
    int ndense;          /* dense layers so far: dense1.W, dense2.W, ... */
    int nlayer[8];       /* the same per row of layers.c's table: conv2d1.W, ... */
    NodeId layer_out;    /* the last layer line's value, and its activation */
    Act layer_act;
    const AstItem *bare_loss; /* loss NAME, of the network's output: lowered at the end */
    NodeId loss, outputs; /* the sum of the loss terms; the prediction(s), -1 before */
    NodeId penalty;       /* the layers' regularizers' sum (added to the loss), or -1 */
    NnrtHead heads[NNRT_MAX_HEADS]; /* several loss terms: the first ones, reported one by one */
    NodeId head_loss[NNRT_MAX_HEADS]; /* each one's loss, unweighted */
    int nheads;
    int64_t out_elems;    /* of the predictions so far, side by side in the output */
    ModelMode mode;
    NodeId dropout_step;  /* the dropout step count's leaf, or -1 before the first dropout */
} ModelEnv;

/* Is the shape an input, target or param item declares valid (each
 * dimension from 1, at most NNC_MAX_ELEMS elements, and for an input or a
 * target room for the batch axis)? Then *out. Sema reports what is not. */
bool model_declared(const AstItem *it, Shape *out);
/* Sets m's input (one sample, the inputs side by side if several), its
 * name and location, and label_size, from the items' declarations. */
void model_io(const AstModel *ast, Model *m);
/* Starts lowering m (its ast, input and label_size set) into g for `batch`
 * samples in `mode`: adds the slots. `check`: warnings are reported (sema's
 * walk). Both modes make the same slots in the same order (the steps share
 * one set of buffers); in MODE_TRAIN the layers' state is updated: its new
 * values are outputs of g. */
void model_begin(ModelEnv *f, Graph *g, const Model *m, int64_t batch, InputType in, ModelMode mode, Diag *d,
                 bool check);
/* Lowers one item (input, target, param, assignment, layer line, loss);
 * errors to the env's diag; after an error, later items stay quiet about
 * the values it did not make. */
void model_item(ModelEnv *f, const AstItem *it);
/* Ends: the loss (a scalar, the mean over the batch), and *pred the
 * prediction [batch, ...] (*output its shape per sample, if not NULL); -1
 * if there is none (after errors). */
NodeId model_end(ModelEnv *f, NodeId *pred, Shape *output);
/* The forward pass of a checked model for `batch` samples in `mode`: adds
 * the slots (and in MODE_TRAIN the layers' state updates as outputs) and
 * returns the loss; *pred is the network's output [batch, ...]. */
NodeId model_forward(Graph *g, const Model *m, int64_t batch, InputType in, ModelMode mode, NodeId *pred,
                     NodeId *reported);
/* The label slot's leaf (made at the first use, at loc). */
NodeId model_labels(ModelEnv *f, Loc loc);

/* ---------------------------------------------------------------- layers.c */

const char *act_name(Act a);
/* The activation called `name`; false if there is none. */
bool act_lookup(const char *name, Act *out);
/* z after activation `act` (softmax as e^logsoftmax, which the loss sees through). */
NodeId act_lower(Graph *g, Act act, NodeId z, Loc loc);
/* Is there a layer called `name` (dense, or a row of the table: flatten,
 * conv2d, ...)? */
bool layer_exists(const char *name);
/* The table's layers' names (not dense, a statement of its own), NULL-terminated. */
const char *const *layer_names(void);
/* Layer lines on h, the value before them (-1: none known; their own
 * arguments are still checked): the value made, or -1 after an error.
 * layer_line takes an AST_LAYER item. */
NodeId layer_dense_line(ModelEnv *f, const AstItem *it, NodeId h);
NodeId layer_line(ModelEnv *f, const AstItem *it, NodeId h);
/* A layer's call (dense(h, units[, act]), conv2d(x, 32, 3), ...) in an
 * expression of a model (ExprEnv.layer; e is a ModelEnv's). */
NodeId layer_call(ExprEnv *e, const AstExpr *x);

/* ---------------------------------------------------------------- loss.c */

const char *loss_name(LossKind k);
/* The loss called `name`; false if there is none. */
bool loss_lookup(const char *name, LossKind *out);
/* The same, reporting an unknown name at loc (with "did you mean"). */
bool loss_resolve(Arena *a, Diag *d, const char *name, Loc loc, LossKind *out);
/* The loss `kind` (not nll) of the prediction p against the target y of the
 * same shape per sample, the mean over samples, in its stable form; errors
 * and warnings at l and target_loc. */
NodeId loss_lower(ExprEnv *e, LossKind kind, Loc l, Loc target_loc, NodeId p, NodeId y);
/* A loss statement's term: `loss NAME` of the network's output against the
 * labels (or the target), `loss NAME(out, y[, weight = w])`; *pred is its
 * prediction. -1 once reported. */
NodeId loss_item(ModelEnv *f, const AstItem *it, NodeId *pred, NodeId *unweighted);
/* A loss statement's sum `loss a + b + c` (Keras' total loss: the losses
 * and a penalty written by hand): its terms left to right, *n of them. */
const AstExpr **loss_terms(Arena *a, const AstExpr *sum, int *n);
/* Is the term a loss call (mse(out, y)) rather than a penalty term? */
bool loss_is_call(const AstExpr *t);
/* A penalty term of a loss sum: a scalar, such as 0.001 * sum(W^2) (or
 * any value reduced over the batch), as one. -1 once reported. */
NodeId loss_penalty(ExprEnv *e, const AstExpr *t);

/* ---------------------------------------------------------------- autodiff.c */

/* d loss / d wrt[i] for each i, as IR nodes (reverse mode); all -1 once the
 * graph passes g->node_limit (if set). */
void ad_gradients(Graph *g, NodeId loss, const NodeId *wrt, int nwrt, NodeId *grads);
/* The same by every PARAM node of g, in id order: *params and *grads, in
 * g's arena; returns their count. */
int ad_param_gradients(Graph *g, NodeId loss, NodeId **params, NodeId **grads);

/* ---------------------------------------------------------------- optim.c */

/* Adds the update of every PARAM slot (and its optimizer state) as outputs. */
void optim_update(Graph *g, const Model *m, const NodeId *params, const NodeId *grads, int n);

/* ---------------------------------------------------------------- step.c */

typedef enum { STEP_TRAIN, STEP_EVAL } StepKind;

/* The whole step graph of `m` for `batch` samples: forward (loss and
 * output), and for STEP_TRAIN the gradients and the update. Simplified and
 * DCE'd. Its batch axes and batch-dependent constants are marked, so one
 * compiled step serves every batch of up to `batch` samples. */
Graph *step_graph(Arena *a, const Model *m, StepKind kind, int64_t batch, DType dt, InputType in);
/* Both steps: *eval the loss and output of the evaluation-mode lowering,
 * *train the training-mode one's with the gradients and the update (either
 * may be NULL: not wanted). With `allreduce` (data-parallel training), an
 * allreduce node between each gradient and its update. */
void step_graphs(Arena *a, const Model *m, int64_t batch, DType dt, InputType in, Graph **train, Graph **eval,
                 bool allreduce);

/* ---------------------------------------------------------------- gradcheck.c */

/* Checks the symbolic gradient of the scalar `loss` of `g` with respect to
 * every PARAM against central differences, all in float64 through the JIT.
 * `g` has its slots (slot 0 the arena); INPUT and LABEL slots get `data`'s
 * samples, cycled through the batch, or without data uniform [0, 1) inputs
 * and labels in [0, classes); PARAMs their slot's initializer; all seeded.
 * Up to `per_param` elements of each parameter are checked; an element
 * whose difference would straddle a kink (relu, abs, maximum, max, ...) on
 * both sides is skipped and counted in *skipped. Returns the largest
 * relative error |a - n| / max(|a| + |n|, 1e-10), or -1 on a JIT failure
 * (message in err). Prints one line per parameter to `log` if set. `opt` is
 * the schedule's level (0 or 2), for target t. */
/* The largest relative error --gradcheck accepts. */
#define GRADCHECK_TOLERANCE 1e-6
double gradcheck(Graph *g, NodeId loss, int64_t classes, const ModelData *data, uint64_t seed, int per_param, int opt,
                 const Target *t, int64_t *skipped, FILE *log, char *err, size_t errlen);

/* ---------------------------------------------------------------- codegen.c */


/* ---------------------------------------------------------------- fuse.c */

typedef enum {
    PLACE_NONE,   /* a leaf: its slot, or a constant: an immediate */
    PLACE_INLINE, /* computed inside its one user's loop, never stored */
    PLACE_ALIAS,  /* a reshape: its operand's memory */
    PLACE_FOLDED, /* a transpose or patch matrix the matmul kernel reads from its operand */
    PLACE_ARENA,  /* its own loop, a buffer in the arena */
    PLACE_SLOT,   /* its own loop, written straight into its output slot */
} Placement;

/* Where every node's value lives and which loop computes it. */
typedef struct Schedule {
    int opt;            /* 0: every node its own loop and buffer; 2: fused */
    const Target *target; /* what it is scheduled for (outlives it) */
    Placement *place;   /* per node */
    int *slot;          /* PLACE_SLOT: the slot */
    size_t *offset;     /* PLACE_ARENA: byte offset in the arena */
    NodeId *root;       /* the node whose loop computes it (itself unless inlined,
                           or the matmul whose epilogue it is) */
    NodeId *epilogue;   /* per matmul: the node its kernel stores instead of
                           the product (its one user, computed on the
                           accumulators; or col2im of it, added up); per
                           maxpool_grad: relu's gradient of it (fuse.c's
                           relu_of_pool); or -1 */
    NodeId *epilogue2;  /* per matmul with an epilogue: a second node its
                           kernel stores, computed on the first's value (its
                           one user), or -1 */
    NodeId *colsum;     /* per matmul: a sum of its B operand's rows (keepdims
                           [1, N]) its kernel computes while packing B; per
                           maxpool_grad: the sum of the value its kernel
                           stores over all axes but the channels (keepdims
                           [1, 1, 1, C]); or -1 */
    size_t *partials;   /* per matmul whose long sum is split between units
                           (cg_matmul_ksplit): arena offset of their partial
                           products; per maxpool_grad with a colsum: of its
                           samples' sums [n, C]; else SIZE_MAX */
    NodeId *order;      /* every node, in the order its loop is emitted */
    NodeId *rows;       /* per kernel in a row loop (fuse_rows.c): the loop's
                           first kernel, else -1; a loop's kernels are adjacent
                           in `order` */
    NodeId *elems;      /* per kernel in an element loop (fuse_rows.c): the
                           loop's first kernel, else -1; a loop's kernels are
                           adjacent in `order` */
    NodeId *samples;    /* per kernel in a sample loop (fuse_samples.c): the
                           loop's first kernel, else -1; adjacent in `order` */
    int64_t *group;     /* per sample loop's first kernel: samples a group */
    size_t *group_bytes; /* per sample loop's first kernel: its locals' buffer */
    size_t *local;      /* per node only its sample loop reads: its offset in
                           the loop's buffer of a group (its arena buffer
                           unused), else SIZE_MAX */
    size_t arena_bytes;
    bool *panels;       /* per slot: a weight matrix kept in the matmul
                           kernel's column panels (layout.c); NULL: none */
    bool *nodes_in_panels; /* per node: kept in panels too, data-parallel (layout.c's
                           choose_parallel: a weight's gradient); NULL: none */
    size_t finite_flag; /* arena offset of an int32 the step zeroes, which its
                           matmul kernels set where they store a NaN or Inf
                           (schedule_checks); SIZE_MAX: nothing is checked */
    bool *waits;        /* per kernel: it reads an all-reduced gradient (OP_ALLREDUCE),
                           so the step waits for the all-reduces started before
                           its loop (runtime/mpi.c's nnrt_allreduce_wait) */
    int *bucket;        /* per OP_ALLREDUCE node: its bucket in `buckets`, else -1 */
    struct Bucket {     /* all-reduces summed in one MPI call, started by the
                           last's: their results lie together in the arena */
        NodeId first, last; /* in `order` (first: the lowest arena offset) */
        int members;
        size_t bytes;       /* from first's offset to the end of last's result */
    } *buckets;
    int nbuckets;
    bool interruptible; /* returns before its next loop once nnrt_interrupt() was
                           called (a REPL entry's: Ctrl-C); set by the caller */
} Schedule;

/* g scheduled at level opt for target t (kept in the schedule: the matmul
 * kernel, layout.c and codegen follow the same target). */
Schedule *schedule(Arena *a, const Graph *g, int opt, const Target *t);
/* The users of each node (by later nodes, each once: x * x is one use of
 * x, which its loop may compute; outputs counted separately), and in
 * *single_user (unless NULL) one of them (the only one, where there is one). */
int *schedule_count_uses(Arena *a, const Graph *g, NodeId **single_user);
/* May an elementwise value of shape s, read only by node u, be computed
 * inside u's loop, never stored (fuse.c's rule)? */
bool schedule_inlines_into(const Graph *g, NodeId u, const Shape *s);
/* Is matmul m computed by the register-blocked kernel at -O2 (cg_matmul.c)? */
bool cg_matmul_tiled(const Graph *g, NodeId m);
/* Can its kernel pack B's column panels (K fits one packed block, or M the
 * partial sums kept between blocks)? Then it reads a transpose as B while
 * packing, and may sum B's rows (Schedule.colsum) on the way. */
bool cg_matmul_can_pack(const Graph *g, NodeId m, const Target *t);
/* Does the matmul kernel (cg_matmul.c) read this transpose node's operand,
 * or this patch matrix's image, directly in every use? Then the node
 * itself is never computed. */
bool cg_matmul_folds(const Graph *g, NodeId transpose_or_im2col, const Target *t);
/* Can matmul m's kernel gather its A, a patch matrix, from its image, a
 * part of the rows at a time? */
bool cg_matmul_gathers(const Graph *g, NodeId m, const Target *t);
/* Is matmul m's long sum split between units, each summing its range of K
 * into partial products that are then added up (a filter gradient P^T dY,
 * K = n oh ow)? Their number, or 0. */
int64_t cg_matmul_ksplit(const Graph *g, NodeId m);
/* The most bytes of A a part of a gathering product's rows holds. */
int64_t cg_matmul_part_bytes(void);
/* Can matmul m's kernel add its result into u = col2im(m) in its epilogue
 * (cg_matmul.c's emit_scatter), never storing m? */
bool cg_matmul_scatters(const Graph *g, NodeId m, NodeId u);
/* How its kernel reads B: 0, in place (or as kept in panels, layout.c);
 * else packed in blocks of this many rows (all of K where they fit one
 * block). */
int64_t cg_matmul_block_rows(const Graph *g, const Schedule *s, NodeId m);
/* The width of the kernel's column panels, the unit the thread pool splits
 * its products by: what the thread that computes a panel owns. */
int64_t cg_matmul_panel_width(const Graph *g, const Target *t);
/* Is x, a parameter's or optimizer state's new value stored by a matmul
 * kernel's epilogue, checked for NaN and Inf as it is stored? Then the
 * guard reads Schedule.finite_flag instead of scanning x's slot. */
bool schedule_checks(const Graph *g, const Schedule *s, NodeId x);
/* --emit=kernels: the loops of a step and the nodes each one computes. */
void schedule_print(FILE *out, const Graph *g, const Schedule *s);

/* ---------------------------------------------------------------- layout.c */

/* Chooses the weight matrices the training step t and the evaluation step
 * e (scheduled, not yet generated) keep in the matmul kernel's column
 * panels: sets both schedules' panels. Other steps keep every slot
 * row-major, and so do these if their target says so (NNC_PANELS=0). */
void layout_choose(Arena *a, const Graph *t, Schedule *ts, const Graph *e, Schedule *es);
/* Is x's memory (a parameter leaf, or a value stored into its slot) in panels? */
bool layout_in_panels(const Graph *g, const Schedule *s, NodeId x);
/* Converts the slots kept in panels (each a buffer of xcalloc64's, replaced)
 * from row-major into panels, or back. */
void layout_convert(const Graph *g, const Schedule *s, void **slots, bool to_panels);
/* The slots as row-major: those in panels copied (s may be NULL: none are);
 * freed with layout_rows_free. */
void **layout_rows(const Graph *g, const Schedule *s, void **slots);
void layout_rows_free(const Graph *g, const Schedule *s, void **rows);

/* ---------------------------------------------------------------- fuse_rows.c */

/* Sets s->order and s->rows: the row loops (s->place, root, epilogue and
 * colsum decided). */
void schedule_rows(Arena *a, const Graph *g, Schedule *s);
/* Sets s->elems: the element loops (after schedule_rows). */
void schedule_elems(Arena *a, const Graph *g, Schedule *s);
/* ---------------------------------------------------------------- fuse_samples.c */

/* Sets s->samples and s->group: the sample loops (after schedule_waits). */
void schedule_samples(Arena *a, const Graph *g, Schedule *s);
/* The value kernel k stores: its last epilogue's, else its own. */
NodeId schedule_stored(const Schedule *s, NodeId k);
/* The samples of a group of kernel k's sample loop, or 0: in none. */
int64_t schedule_group(const Schedule *s, NodeId k);
/* The units matmul m's long sum is split into (cg_matmul_ksplit's, or in
 * a sample loop one per group), or 0. */
int64_t schedule_ksplit_units(const Graph *g, const Schedule *s, NodeId m);

/* Does node k have a loop of its own (a kernel), not computed in another's? */
bool schedule_has_loop(const Schedule *s, NodeId k);
/* The node whose memory n's value is: n past its reshapes. */
NodeId schedule_memory(const Graph *g, const Schedule *s, NodeId n);
/* The elements of x per sample (its shape after the batch axis), or -1
 * without a leading batch axis. */
int64_t schedule_row_len(const Graph *g, NodeId x);
/* Is kernel k a reduction over all rows (accumulated across a row loop)? */
bool schedule_row_across(const Graph *g, NodeId k);

/* An LLVM module in its own thread-safe context, ready to hand to the JIT.
 * Its fields, and the code generator's internals, are in cg.h: seen only
 * by the files that include the LLVM headers (codegen.c, cg_*.c, jit.c). */
typedef struct CgModule CgModule;

CgModule *cg_module_new(const char *name);
/* A new module at the end of owner's chain, compiled with it (in parallel)
 * through the kernels' short pass pipeline, and freed with it. */
CgModule *cg_module_chain(CgModule *owner, const char *name);
/* Adds `void fn(void **slots, int64_t n)` computing g as scheduled by s for
 * n samples (n <= g->batch; n is ignored if g has no batch axes). */
void cg_add_step(CgModule *m, const char *fn, const Graph *g, const Schedule *s);
/* Prints the module's LLVM IR (before optimisation). */
void cg_print(CgModule *m, FILE *out);

/* ---------------------------------------------------------------- cg_guard.c */

/* Adds `int fn(void **slots)` in a module chained to m: 1 when every element
 * of g's parameter and optimizer-state slots is finite, else 0. Called
 * after a step scheduled by s (if not NULL), it reads the step's flag for
 * the slots the step checked as it stored them (schedule_checks), and
 * scans the others; in vectors of t's width (s's target, if s is given). */
void cg_add_guard(CgModule *m, const char *fn, const Graph *g, const Schedule *s, const Target *t);

/* ---------------------------------------------------------------- jit.c */

typedef struct Jit Jit;
/* Optimises (for t's CPU with its features) and compiles the module and its
 * kernels; takes ownership of `m`. NULL with a message in err on failure. */
Jit *jit_compile(CgModule *m, const Target *t, char *err, size_t errlen);
/* The same for n modules compiled in parallel (largest first is best); takes
 * every module. */
Jit *jit_compile_modules(CgModule **mods, int nmods, const Target *t, char *err, size_t errlen);
void *jit_lookup(Jit *j, const char *fn, char *err, size_t errlen);
/* A JIT with nothing in it yet, for a REPL session: each entry's module is
 * added under its own resource tracker and removed once it has run, so a
 * long session holds only the code it still uses. Its target machine is t's. */
Jit *jit_new(const Target *t, char *err, size_t errlen);
typedef struct JitUnit JitUnit;
/* Optimises and compiles m (taken) for t (j's) into j as one removable unit;
 * NULL with a message in err on failure. Its functions are found with jit_lookup. */
JitUnit *jit_add(Jit *j, CgModule *m, const Target *t, char *err, size_t errlen);
/* Removes the unit's code from its JIT and frees the unit. */
void jit_remove(JitUnit *u);
void jit_free(Jit *j);
/* Appends every function's address range to /tmp/perf-PID.map for perf. */
bool jit_write_perf_map(Jit *j, char *err, size_t errlen);
/* The module optimised and compiled for t, as assembly (--emit=asm).
 * The module stays the caller's. */
bool jit_emit_asm(CgModule *m, const Target *t, FILE *out, char *err, size_t errlen);
/* Frees a module that was never handed to jit_compile. */
void cg_module_free(CgModule *m);

/* ---------------------------------------------------------------- pipeline.c */

/* A model's two steps, training and evaluation, scheduled to agree on
 * where the weights live (layout_choose). */
enum { PLAN_TRAIN, PLAN_EVAL, PLAN_STEPS };
typedef struct Plan {
    Graph *ir[PLAN_STEPS]; /* the step graphs as built and differentiated */
    Graph *g[PLAN_STEPS];  /* what is scheduled and compiled: at -O2 with products for convolutions */
    Schedule *s[PLAN_STEPS];
} Plan;

/* The steps a run needs, compiled: one for training, one for evaluation,
 * each for every batch size up to the model's (the partial last batch of
 * a set too). */
typedef struct Compiled {
    Jit *jit;
    Graph *train; /* the training graph: its slots describe every buffer */
    const Schedule *sched;
    NnrtStep train_step, eval_step;
    int (*finite)(void **slots); /* the NaN/Inf guard of the training step's state */
    size_t arena_bytes;
} Compiled;

/* A checked model's steps: built (step.c), scheduled (fuse.c) at level
 * opt, their weights laid out (layout.c). --emit=ir and grad show the
 * graphs as built, --emit=kernels the schedules; the REPL's :ir, :grad-ir
 * and :kernels too. allreduce: for data-parallel training, each gradient
 * all-reduced over the ranks before its update (step_graphs). The
 * schedules are for t (which outlives them), and so is the code made from
 * them. */
Plan pipeline_plan(Arena *a, const Model *m, int opt, InputType in, const Target *t, bool allreduce);
/* Graph *g scheduled at level opt for t: at -O2 first rewritten, so that
 * convolutions are products (conv_gemm.c), *g then the rewritten graph. */
Schedule *pipeline_schedule(Arena *a, Graph **g, int opt, const Target *t);
/* One module holding each step g[i], as scheduled by s[i], as the
 * function fns[i]. */
CgModule *pipeline_codegen(const char *module, int n, const char *const *fns, Graph *const *g,
                           Schedule *const *s);
/* A plan's step (PLAN_TRAIN or PLAN_EVAL) in a module of its own, as
 * train_step or eval_step (--emit=llvm|asm, the REPL's :llvm). */
CgModule *pipeline_plan_codegen(const Plan *p, int step);
/* The plan's steps and the guard, JIT-compiled for `batch` samples, for the
 * plan's target; false once reported. */
bool pipeline_compile(const Plan *p, int64_t batch, Compiled *c, Diag *d);

/* ---------------------------------------------------------------- aot.c */

/* nnc -c: a model's steps with its first weights embedded (a checkpoint's,
 * or the seed's initialisation), as an object (out ending in .o), a static
 * library (.a) or a shared one (.so), and its C header if `header` is not
 * NULL; with weights, MODEL_predict too. */
typedef struct AotSpec {
    const Model *model;
    const Source *src;     /* the model file: its fingerprint */
    const char *out, *header;
    struct FitCkpt *weights; /* the checkpoint (--load), or NULL */
    int opt;
    const Target *target;
} AotSpec;
/* EXIT_OK, or EXIT_USAGE once reported through d. */
int aot_write(Arena *a, Diag *d, const AotSpec *spec);

/* ---------------------------------------------------------------- fit.c */

/* What a checkpoint holds beyond the tensors. */
typedef struct FitState {
    NnrtTrainPos pos;
    double best;           /* best monitored value so far; NaN before the first epoch */
    int best_epoch, bad_epochs;
    NnrtEpochStats *history; /* every epoch so far, resumed ones included (malloc'd) */
    int nhistory;
    int ranks;             /* the processes that trained it (mpi.c; 1 if it does not say) */
} FitState;

/* How early stopping and --save-best judge an epoch (--stop-rule). Keras'
 * (EarlyStopping): a value better than the best by more than min_delta
 * resets the patience and becomes the best; no other does. scikit-learn's
 * (MLPClassifier's tol and n_iter_no_change): one better by min_delta or
 * more resets the patience, and any better value becomes the best, so a
 * metric that improves every epoch by less than min_delta runs out of
 * patience. */
typedef enum { STOP_KERAS, STOP_SKLEARN } FitStopRule;
/* Their names as --stop-rule and the checkpoint's metadata give them, in
 * FitStopRule's order, then NULL. */
extern const char *const fit_stop_rules[];
/* name's index in fit_stop_rules; -1: none. */
int fit_stop_rule_find(const char *name);

/* What a checkpoint must agree with to be resumed. */
typedef struct FitInfo {
    const char *model_name;
    uint64_t model_hash; /* fit_model_hash of the model file */
    uint64_t seed;
    size_t batch, samples;
    int ranks;           /* data-parallel training's processes (mpi.c), saved; 0 or 1: one */
    bool resume;         /* loading: need the training state too */
    /* The run's settings, saved so that --resume continues the same run
     * (fit_read_settings); 0 and NULL: not known (the REPL's :save). */
    int64_t epochs;
    double lr;
    const char *schedule; /* --schedule's text, or NULL: the model file's */
    int64_t patience;     /* early stopping's (--early-stop; 0: none) */
    double min_delta;     /* --min-delta */
    FitStopRule stop_rule; /* --stop-rule */
    const char *monitor;  /* the metric early stopping and --save-best watch, as --monitor names it */
    const NnrtClasses *classes; /* a table's class names, saved for --eval and --predict; NULL: none */
    const NnrtClasses *targets; /* a table's target columns' names, saved for --predict; NULL: none */
    /* A table's label column and input columns, saved so that a later run
     * reads its tables by them (with the targets' names); NULL: none. */
    const char *label;
    const NnrtClasses *features;
    /* --normalize: each input element's mean and standard deviation on the
     * training data, saved for --eval and --predict; norm_n 0: none. */
    const double *norm_mean, *norm_std;
    size_t norm_n;
    /* Several loss terms: each head's values in the history, its running
     * sums in the position; nheads 0: none. */
    const NnrtHead *heads;
    size_t nheads;
} FitInfo;

/* The settings of the run a checkpoint was saved from, each 0 (or NULL)
 * where it does not say: what --resume takes unless told otherwise. */
typedef struct FitSettings {
    int64_t epochs, batch, patience;
    double lr, min_delta;
    FitStopRule stop_rule; /* Keras' where not saved */
    const char *schedule; /* in the arena; NULL: the model file's */
    const char *monitor;  /* in the arena; NULL: not saved (an older checkpoint, the REPL's) */
} FitSettings;
/* The checkpoint at path (--load's, --resume's), loaded by the first of
 * the readers below that needs it and kept for the others: its settings,
 * class names, normalization and weights come from one read of the file. */
typedef struct FitCkpt {
    const char *path;
    NnrtCkpt c;
    bool loaded, failed; /* failed: the loader's message reported */
} FitCkpt;
void fit_ckpt_free(FitCkpt *k);
/* Reads them from the checkpoint; false once reported through d. */
bool fit_read_settings(Arena *a, Diag *d, FitCkpt *k, FitSettings *s);
/* The class names saved in the checkpoint (none: out left empty); false
 * once reported through d. */
bool fit_read_classes(Diag *d, FitCkpt *k, NnrtClasses *out);
/* The target columns' names saved in the checkpoint, for a model of n
 * targets (none: out left empty); false once reported through d. */
bool fit_read_targets(Diag *d, FitCkpt *k, size_t n, NnrtClasses *out);
/* The normalization saved in the checkpoint, for inputs of n elements:
 * *mean and *std malloc'd, or NULL if it has none; false once reported
 * through d. */
bool fit_read_normalize(Diag *d, FitCkpt *k, size_t n, double **mean, double **std);
/* The table columns the checkpoint's training read its labels from (*label
 * malloc'd, NULL: none) and its n inputs from, in order (none, or n names):
 * metadata 'label' and 'features'. */
bool fit_read_columns(Diag *d, FitCkpt *k, size_t n, char **label, NnrtClasses *features);

uint64_t fit_model_hash(const Source *src);
/* The parameter and state buffers of g's slots (the others NULL),
 * initialised from the seed: each as its slot says (init.c; state zero
 * unless it says otherwise, as batchnorm's moving variance starts at one). */
void **fit_slots_new(const Graph *g, uint64_t seed);
void fit_state_init(FitState *st, uint64_t seed);
void fit_state_free(FitState *st);

/* Every PARAM and STATE slot of g under its name, and st, atomically. */
bool fit_save(const char *path, const Graph *g, void **slots, const FitInfo *info,
              const FitState *st, char *err, size_t errlen);
/* Whether every checkpoint of a run can be loaded again: its header (the
 * names, the metadata) within NNRT_CKPT_MAX_HEADER; reported if not. */
bool fit_saveable(Diag *d, const Graph *g, const FitInfo *info);
/* Loads a checkpoint's weights (the parameters and the model's state,
 * batchnorm's moving statistics) into the slots after checking every
 * tensor's name and shape against g (each mismatch reported through d);
 * with info->resume, the optimizer's state, and the training state into st
 * (checked against info), too. */
bool fit_load(Diag *d, FitCkpt *k, const Graph *g, void **slots, const FitInfo *info, FitState *st);

/* What the data meant to the run that trained some weights, as its
 * checkpoint keeps it: a table's class names, target columns' names,
 * label column and input columns, and --normalize's mean and standard
 * deviation per input element (NULL: none). */
typedef struct FitMeaning {
    NnrtClasses classes, targets, features;
    char *label;
    double *mean, *std;
} FitMeaning;
void fit_meaning_free(FitMeaning *m);
/* names (NULL: none) as one malloc'd string, sep between them. */
char *fit_names_join(const NnrtClasses *names, char sep);

/* A model's PARAM and STATE buffers (float32) kept between runs (the REPL),
 * laid out as the slots of its training step graph, and their meaning: a
 * run without training or a checkpoint reads its data by it, as --load
 * of their checkpoint would. */
typedef struct FitWeights {
    void **slots; /* NULL: none yet */
    int nslots;
    char **names; /* each slot's name (malloc'd), NULL for other slots: */
    int64_t *elems; /* a later run's step graph may have other slots */
    FitMeaning meaning;
} FitWeights;
/* Zeroed buffers for g's PARAM and STATE slots. */
FitWeights fit_weights_new(const Graph *g);
/* Keeps `slots`, laid out as g's. */
FitWeights fit_weights_keep(const Graph *g, void **slots);
/* Fills `slots` (g's, made afresh) from w by name where the kept buffer has
 * the same size, freeing what it replaces, and empties w of its buffers (its
 * meaning stays): a step graph may
 * differ from the last run's (a schedule adds a state slot, another
 * optimizer others), parameters carry over, new state starts zeroed, state
 * the graph lacks is dropped. The number of kept buffers dropped. */
int fit_weights_take(FitWeights *w, const Graph *g, void **slots);
void fit_weights_free(FitWeights *w);

typedef enum { MONITOR_LOSS, MONITOR_ACC, MONITOR_VAL_LOSS, MONITOR_VAL_ACC } FitMonitor;
/* Its name; with mae (a regression's metric in acc's place) "mae", "val_mae". */
const char *fit_monitor_name(FitMonitor m, bool mae);

/* The training hook's context: the runtime calls fit_after_step and
 * fit_on_nonfinite with it. */
typedef struct FitHook {
    Diag *diag;
    FILE *out;            /* messages (early stopping) */
    Arena *arena;
    const Model *model;
    const Graph *graph;   /* its slots describe the checkpoint */
    void **slots;
    FitInfo info;
    FitState st;
    const char *save_path, *best_path, *log_path, *plot_path; /* NULL: not wanted */
    size_t save_every;    /* steps; 0: at the end of every epoch only */
    FitMonitor monitor;   /* early stopping's (info.patience, info.min_delta, info.stop_rule) */
    /* Or a head's value (its val_ one with MONITOR_VAL_LOSS): head
     * monitor_head - 1's value monitor_value (nnrt_head_values' order),
     * called `monitor_name`; monitor_head 0: the model's. */
    int monitor_head, monitor_value;
    const char *monitor_name;
    NnrtColumns cols;     /* mae: the epochs' acc is a mae (lower is better); the heads */
    /* The guard: the training step's graph and schedule. */
    const Graph *step;
    const Schedule *sched;
    bool nan_reported;
    int saved_epoch;      /* where the last periodic checkpoint was taken; -1: none */
    size_t saved_step;
    FILE *log;            /* --log, open for appending after the first epoch */
    int plotted;          /* epochs the --plot file on disk shows */
} FitHook;

NnrtHookResult fit_after_step(void *ctx, const NnrtTrainPos *pos, const NnrtEpochStats *e,
                              char *err, size_t errlen);
/* After nnrt_train, however it ended: the plot brought up to date, the log
 * synced and closed. False after reporting a failure. */
bool fit_finish(FitHook *h);
/* After Ctrl-C stopped training (msg: the runtime's "training interrupted
 * at ..."): saves the checkpoint where the run saves one and says so (with
 * weights_kept, the REPL's, that they are those after the step). False
 * after reporting a failed save. */
bool fit_interrupted(FitHook *h, const char *msg, bool weights_kept);

/* The files a run reads and writes, by option; NULL: not given. */
typedef struct FitFiles {
    const char *model, *train, *target, *test, *val, *eval, *predict, *load, *resume; /* read */
    const char *save, *best, *log, *plot, *report, *out; /* written; save: --resume's by default */
} FitFiles;
/* Before anything runs: every output can be written (a regular file or
 * none yet, in a writable directory) and none would overwrite an input (the
 * labels files found next to the images too) or another output; --save may
 * be the --resume file. False after reporting. */
bool fit_check_files(Diag *d, const FitFiles *f);
/* Finds the IR node whose value went bad first and reports it as
 * "model.nn:5:5: error: loss became NaN in the forward pass of 'dense 3'
 * at epoch 2, step 7", with the source line. */
/* The nodes the loss and the output depend on (the forward pass), as a
 * malloc'd array of g->nnodes flags. */
bool *fit_forward_nodes(const Graph *g);
void fit_on_nonfinite(void *ctx, const NnrtNonFinite *nf);

/* ---------------------------------------------------------------- repl.c */

/* What the REPL borrows from the driver: running a model as `nnc` runs a
 * model file, with `argv` (argc options, no program name or file) and the
 * model's weights in *w (made if w->slots is NULL; kept there after). */
typedef struct ReplDriver {
    void *ctx;
    int (*run)(void *ctx, Diag *d, const Model *m, const Source *src, int argc, char **argv, FitWeights *w);
} ReplDriver;

typedef struct Repl Repl;
/* A session printing to `out`, errors to d; driver NULL: no :train, :eval,
 * and no files (:load, :save, :restore). Compiles for t, which outlives it. */
Repl *repl_new(Diag *d, FILE *out, const ReplDriver *driver, const Target *t);
void repl_free(Repl *r);
/* Evaluates one entry (a command, or statements and models; the text of a
 * whole multi-line block), read from `path`: false if it reported an error.
 * The session's state is as before a failed entry. */
bool repl_eval(Repl *r, const char *path, const char *text, size_t len);
/* After :quit. */
bool repl_done(const Repl *r);
/* Where the session reports its errors. */
Diag *repl_diag(const Repl *r);
/* Every name completion may offer: values, models, commands (":train"), in
 * a malloc'd array. */
int repl_names(const Repl *r, const char ***names);

/* ---------------------------------------------------------------- repl_term.c */

/* Reads entries from standard input until end of input or :quit. On a
 * terminal: prompts, line editing, history (~/.nnc_history), completion,
 * Ctrl-C. Otherwise plain lines without prompts. Returns EXIT_OK, or
 * EXIT_INVALID_MODEL if any entry failed. */
int repl_main(Repl *r);

#endif
