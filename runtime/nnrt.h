/* nnrt.h — the nnc runtime: a small C library with a narrow ABI, used by the
 * CLI (data, training loop, progress, report) and by JIT-compiled code.
 *
 * Sections, one per source file:
 *   idx.c       IDX files (raw or gzip), every element type, fully validated
 *   dataset.c   finding label/test files next to an images file; any data
 *               file by its content; batches
 *   csv.c       CSV tables (plain or gzip): columns, quoting, class names
 *   npy.c       NumPy .npy arrays and .npz archives
 *   rng.c       the seeded RNG (splitmix64 + xoshiro256**), shuffling, init
 *   progress.c  per-epoch progress bar (TTY, NO_COLOR aware) or plain lines
 *   train.c     the training loop over compiled step functions
 *   report.c    --report FILE.json, peak memory
 *   pool.c      the persistent thread pool JIT-compiled kernels (and the
 *               CSV reader's parts, csv.c) run on
 *   file.c      the error formatter, the atomic write of every output, the
 *               checks of output paths, the signal handler cleaning up
 *   checkpoint.c  safetensors checkpoints: atomic save, validating load
 *   metrics.c   evaluation (confusion matrix) and prediction (CSV)
 *   plot.c      --log run.csv and --plot curves.svg
 *   aot.c       a model compiled ahead of time (nnc -c): its training state
 *
 * Memory: the runtime allocates with malloc and frees explicitly; its only
 * global mutable state is the thread pool (pool.c), the interrupt flag
 * (train.c) and what the signal handler reads (file.c). Errors are returned
 * (with a message buffer), never printed from inside the library except by
 * progress.c and train.c, which print to the FILE they are given.
 */
#ifndef NNRT_H
#define NNRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>

/* ---------------------------------------------------------------- idx.c */

/* IDX element types, as in the file's third magic byte, and one of a
 * table's: uint8 values taken as they are (NNRT_U8's are pixels, scaled to
 * [0, 1] when batches are made). */
typedef enum {
    NNRT_U8 = 0x08,
    NNRT_I8 = 0x09,
    NNRT_I16 = 0x0B,
    NNRT_I32 = 0x0C,
    NNRT_F32 = 0x0D,
    NNRT_F64 = 0x0E,
    NNRT_U8_VALUE = 0x100, /* never in a file */
} NnrtIdxType;

#define NNRT_IDX_MAX_RANK 8

typedef struct NnrtIdx {
    NnrtIdxType type;
    int rank;
    uint32_t dims[NNRT_IDX_MAX_RANK];
    size_t count;     /* product of dims (checked for overflow) */
    size_t elem_size; /* 1, 2, 4 or 8 */
    void *data;       /* count * elem_size bytes, converted to host byte order */
} NnrtIdx;

/* Reads an IDX file, raw or gzip-compressed (detected by content, not name).
 * Checks the magic (two zero bytes, a known type, rank 1..8), that the data
 * is exactly as long as the dims say, and the size arithmetic for overflow.
 * Returns false with a one-line message ("PATH: ...") in err on any problem. */
bool nnrt_idx_read(const char *path, NnrtIdx *out, char *err, size_t errlen);
/* A file read as a stream of bytes: inflated if it starts like gzip (member
 * after member, as gzip -d reads them; trailing garbage is an error), else
 * as it is. Every loader reads through one, so each format may be gzipped.
 * Errors go to the err given to open, "PATH: what is wrong"; a read after
 * one fails too. */
typedef struct NnrtStream NnrtStream;
NnrtStream *nnrt_stream_open(const char *path, char *err, size_t errlen);
/* The len bytes at buf (kept by the caller until close), named `name` in
 * messages; `deflated`: a raw deflate stream (a zip member). */
NnrtStream *nnrt_stream_open_mem(const void *buf, size_t len, bool deflated, const char *name, char *err,
                                 size_t errlen);
/* Up to n bytes; fewer only at the end; -1 on an error. */
long long nnrt_stream_read(NnrtStream *in, void *dst, size_t n);
/* The next few bytes (up to 8, fewer at the end) without consuming them;
 * -1 on an error. */
long long nnrt_stream_peek(NnrtStream *in, const unsigned char **bytes);
/* Exactly `bytes` bytes into *out (malloc'd), grown as the data arrives (a
 * header may declare gigabytes that the file does not hold), then nothing
 * more; `declared` says what the header declared ("60000 x 784 uint8"). */
bool nnrt_stream_read_body(NnrtStream *in, size_t bytes, const char *declared, void **out);
void nnrt_stream_close(NnrtStream *in); /* NULL: nothing */

/* The same in steps, so that the headers of several files can be checked
 * against each other (and against what the caller expects) before any data
 * is read: a header may declare gigabytes, a small gzip inflate to them.
 * open reads the header into out (NULL on an error); read_data reads the
 * data into out->data. Close the stream in any case. nnrt_idx_header reads
 * the header from a stream already open (false on an error). */
NnrtStream *nnrt_idx_open(const char *path, NnrtIdx *out, char *err, size_t errlen);
bool nnrt_idx_header(NnrtStream *in, NnrtIdx *out);
bool nnrt_idx_read_data(NnrtStream *f, NnrtIdx *out, char *err, size_t errlen);
void nnrt_idx_free(NnrtIdx *idx);
/* Element i converted to double. */
double nnrt_idx_get(const NnrtIdx *idx, size_t i);
/* Elements per sample: product of dims[1..]. 1 for rank 1. */
size_t nnrt_idx_sample_size(const NnrtIdx *idx);
const char *nnrt_idx_type_name(NnrtIdxType t); /* "uint8", "float32", ... */

/* ---------------------------------------------------------------- dataset.c */

/* The labels file next to an images file, by the usual names:
 * ".../train-images-idx3-ubyte[.gz]" -> ".../train-labels-idx1-ubyte[.gz]"
 * (either compression of the labels file is accepted; "images" -> "labels"
 * and "idx3" -> "idx1" in the base name). False if none exists. */
bool nnrt_find_labels(const char *images_path, char *out, size_t outlen);
/* The test images next to a training images file: "train-" -> "t10k-" in
 * the base name (same suffix, else the other compression). False if none. */
bool nnrt_find_test(const char *train_images_path, char *out, size_t outlen);

/* Names of a table's columns' values: class names, sorted (class i is
 * names[i]; empty: classes are integers), or target columns' names. */
typedef struct NnrtClasses {
    char **names;
    size_t n;
} NnrtClasses;
void nnrt_classes_free(NnrtClasses *cl); /* csv.c */

typedef struct NnrtDataset {
    NnrtIdx images; /* [n, ...] */
    NnrtIdx labels; /* [n] (class indices or values), or [n, ...] (targets) */
    size_t n;
    size_t sample_size;
    size_t label_size; /* elements of the labels per sample */
    /* A training table's target columns' names (--target A,B with a
     * header), in the targets' order; empty: none (arrays, no header). */
    NnrtClasses target_names;
    /* A table's input columns' names, in the inputs' order; empty: none
     * (arrays, a table with no header). */
    NnrtClasses feature_names;
} NnrtDataset;

/* Float data (float32, float64) must be finite as float32: false, with
 * "PATH: sample S holds V (element E)...", if not. */
bool nnrt_idx_check_finite(const NnrtIdx *idx, const char *path, char *err, size_t errlen);

/* Loads images and their labels; checks that the counts agree (from the
 * headers, before reading any data), that float data is finite, and that
 * every label is an integer in [0, classes) when classes > 0. */
bool nnrt_dataset_load(const char *images, const char *labels, size_t classes,
                       NnrtDataset *out, char *err, size_t errlen);
void nnrt_dataset_free(NnrtDataset *ds);
/* Inputs and a targets file of any IDX type and rank (--target): checks the
 * counts agree and that each sample has target_size target elements. */
bool nnrt_dataset_load_targets(const char *inputs, const char *targets, size_t target_size,
                               NnrtDataset *out, char *err, size_t errlen);
/* n samples from memory (inline data): x [n, sample_size], y [n, label_size]. */
bool nnrt_dataset_from_memory(size_t n, const double *x, size_t sample_size, const double *y,
                              size_t label_size, NnrtDataset *out, char *err, size_t errlen);

/* Writes samples idx[0..b) into x (b * sample_size elements) and their labels
 * into y (b * label_size elements), as float (dtype_bytes 4) or double (8).
 * uint8 images are scaled to [0, 1] (times the nearest float, or double, to
 * 1/255, which takes 255 to exactly 1); other types are converted as they
 * are. With raw_u8 the images must be uint8 and x gets their bytes, copied:
 * the step functions scale them. */
void nnrt_batch_fill(const NnrtDataset *ds, const uint32_t *idx, size_t b,
                     int dtype_bytes, bool raw_u8, void *x, void *y);

/* ---------------------------------------------------------------- csv.c */

/* What a data file holds beyond its arrays: a table's columns (lists of
 * column names, or of positions from 0 with no_header, comma-separated;
 * NULL: none), an archive's members. */
typedef struct NnrtDataSpec {
    const char *label;    /* --label: the class of each row */
    const char *targets;  /* --target (of a table): regression targets */
    const char *features; /* --features: the inputs, in this order; NULL: every other numeric column */
    const NnrtClasses *feature_names; /* the inputs by their exact names (a checkpoint's), as features */
    bool no_header;
    char delimiter;       /* 0: detected from the first line */
    const char *inputs, *outputs; /* .npz members (--inputs, --targets); NULL: "x", "y" */
    bool kept; /* label and targets are those the weights were trained on (for messages) */
} NnrtDataSpec;

/* A CSV table from a stream: inputs float32 [n, features], labels int32 [n]
 * (--label; names mapped through *classes when it has some, else integers
 * as they are, else with new_classes the names seen become *classes) or
 * float32 [n, targets]; without need_labels (prediction) those columns are
 * skipped if present and out->labels is left empty. A header's names of
 * the inputs go to out->feature_names, and a training table's (new_classes)
 * of the targets to out->target_names. Errors
 * "PATH:LINE:COL: ..." in err. The rows are parsed on the thread pool:
 * the values and the error are the same at any number of threads. */
bool nnrt_csv_read(NnrtStream *in, const char *path, const NnrtDataSpec *spec, bool need_labels, bool new_classes,
                   NnrtClasses *classes, NnrtDataset *out, char *err, size_t errlen);

/* ---------------------------------------------------------------- npy.c */

/* An .npy file's element layout, from its header. */
typedef struct NnrtNpyLayout {
    char kind; /* b, i, u, f */
    int size;  /* bytes */
    bool big_endian, fortran;
} NnrtNpyLayout;
/* The header (the stream at its "\x93NUMPY") into out (type, rank, dims,
 * count, elem_size: of the type the elements are converted to) and *lay. */
bool nnrt_npy_header(NnrtStream *in, const char *path, NnrtIdx *out, NnrtNpyLayout *lay, char *err,
                     size_t errlen);
/* The data, exactly as long as the header says, into out->data in C order. */
bool nnrt_npy_read_data(NnrtStream *in, const NnrtNpyLayout *lay, NnrtIdx *out, char *err, size_t errlen);
/* The member NAME.npy of a zip archive in memory: its bytes, stored or
 * deflated. False with a message if it is not there or the zip is bad. */
bool nnrt_npz_member(const unsigned char *zip, size_t size, const char *path, const char *name,
                     const unsigned char **data, size_t *csize, bool *deflated, char *err, size_t errlen);

/* ---------------------------------------------------------------- data files (dataset.c) */

/* What a run wants of a data file. */
typedef struct NnrtWant {
    size_t sample_size; /* the model's input elements per sample */
    size_t label_size;  /* label elements per sample (1: a class or one value) */
    size_t classes;     /* > 0: labels are class indices below it */
    bool unlabelled;    /* --predict: no labels read (zeros, label_size per sample) */
    bool new_classes;   /* the training set: a table's class names define the classes */
} NnrtWant;

/* A data set from a file of any format, by its content: an IDX or .npy
 * array of inputs (its labels from `labels`, an IDX or .npy file, or for
 * IDX found beside it by name), an .npz archive (inputs and labels as
 * members), or a CSV table (spec's columns). Checks that the samples have
 * w->sample_size elements ("'PATH' holds samples of N elements, but the
 * model's input has M"), the labels w->label_size, the counts agree (from
 * the headers, before the data is read), float data is finite, and class
 * indices are below w->classes. *classes: as nnrt_csv_read. */
bool nnrt_dataset_read(const char *path, const char *labels, const NnrtDataSpec *spec, const NnrtWant *w,
                       NnrtClasses *classes, NnrtDataset *out, char *err, size_t errlen);

/* --normalize: the mean and standard deviation of each input element over
 * ds's samples (a constant element gets 1: it is only centred). */
void nnrt_normalize_fit(const NnrtDataset *ds, double *mean, double *std);
/* ds's inputs become float32 (x - mean) / std, element by element
 * (nnrt_normalized). */
bool nnrt_normalize_apply(NnrtDataset *ds, const double *mean, const double *std, char *err, size_t errlen);
/* One input element normalized: in double, rounded to float, wherever a
 * model's inputs are (nnc's sets, the AOT training state), so they agree. */
static inline float nnrt_normalized(double x, double mean, double std) { return (float)((x - mean) / std); }
/* The normalization of n input elements as a checkpoint keeps it (metadata
 * 'normalize'): "mean std" in %a, a line per element; malloc'd, NULL when
 * out of memory. */
char *nnrt_normalize_format(const double *mean, const double *std, size_t n);
/* That text read back into mean[n] and std[n]: false unless it holds
 * exactly n lines, each mean finite and each std finite and positive. */
bool nnrt_normalize_parse(const char *text, size_t n, double *mean, double *std);
/* A double at *s as %a (or decimal) writes it, no blank first, followed by
 * the character `then` (0: the string's end); *s moved past both. The
 * checkpoint's metadata texts are read with it. */
bool nnrt_parse_double(const char **s, char then, double *out);

/* ---------------------------------------------------------------- rng.c */

typedef struct NnrtRng {
    uint64_t s[4];
} NnrtRng;

void nnrt_rng_seed(NnrtRng *r, uint64_t seed);
uint64_t nnrt_rng_next(NnrtRng *r);
double nnrt_rng_uniform(NnrtRng *r);                 /* [0, 1) */
double nnrt_rng_normal(NnrtRng *r);                  /* mean 0, std 1 */
void nnrt_shuffle(NnrtRng *r, uint32_t *idx, size_t n); /* Fisher-Yates */

/* Keras' initializers. The *_NORMAL ones of a fan are truncated normals, as
 * in Keras 2: drawn from N(0, s / 0.8796...) with anything beyond two of those
 * standard deviations redrawn, so that the values have the std s named. */
typedef enum {
    NNRT_INIT_ZEROS,
    NNRT_INIT_GLOROT_UNIFORM, /* U(-l, l), l = sqrt(6 / (fan_in + fan_out)) */
    NNRT_INIT_HE_NORMAL,      /* truncated N(0, sqrt(2 / fan_in)) */
    NNRT_INIT_GLOROT_NORMAL,  /* truncated N(0, sqrt(2 / (fan_in + fan_out))) */
    NNRT_INIT_HE_UNIFORM,     /* U(-l, l), l = sqrt(6 / fan_in) */
    NNRT_INIT_CONSTANT,       /* a (ones: 1) */
    NNRT_INIT_UNIFORM,        /* U(a, b) */
    NNRT_INIT_NORMAL,         /* N(a, b): mean a, std b, not truncated (Keras' RandomNormal) */
    NNRT_INIT_VALUES,         /* the n values given (a literal tensor) */
} NnrtInitKind;

typedef struct NnrtInit {
    NnrtInitKind kind;
    double a, b;
    const double *values; /* VALUES */
} NnrtInit;

/* Fills n elements of float (dtype_bytes 4) or double (8) at p. */
void nnrt_init_fill(NnrtRng *r, const NnrtInit *init, int64_t fan_in, int64_t fan_out,
                    void *p, size_t n, int dtype_bytes);

/* ---------------------------------------------------------------- progress.c */

/* A model of several loss terms (Keras' several outputs) reports each
 * term, a head, beside the total: its loss (unweighted, as Keras reports
 * it) and, as a model of one output would, its accuracy or its mae and
 * mse. The step's loss slot then holds the total, then each head's loss.
 * The first NNRT_MAX_HEADS terms are reported so. */
enum { NNRT_MAX_HEADS = 8 };
typedef struct NnrtHead {
    const char *name;         /* its prediction's ("logits"), as Keras names an output's metrics */
    size_t out_off, out_size; /* its prediction's slice of the output */
    size_t label_off;         /* its target's slice of the labels: a class, or out_size values */
    bool classify, mae;       /* as NnrtTrainSpec's; neither: its loss alone */
} NnrtHead;

/* A head's running sums (sample-weighted, as the model's): four doubles,
 * summed over the ranks as an array. */
typedef struct NnrtHeadSums {
    double loss_sum, correct, abs_sum, sq_sum;
} NnrtHeadSums;

/* A head's epoch: as NnrtEpochStats' fields of the same names. */
typedef struct NnrtHeadStats {
    double loss, acc, mse, val_loss, val_acc, val_mse;
} NnrtHeadStats;

typedef struct NnrtEpochStats NnrtEpochStats; /* train.c's */

typedef struct NnrtProgress {
    FILE *out;   /* NULL: nothing is printed */
    bool tty;    /* redraw one line with \r; otherwise one plain line per epoch */
    bool color;  /* tty && NO_COLOR unset */
    int epoch, epochs;
    size_t steps, done;
    double t0;   /* seconds, monotonic */
    double last_draw;
    const char *metric; /* the name of the value after the loss: "acc" (begin's default) or "mae" */
    const NnrtHead *heads; /* several loss terms: each one's values after the model's (begin: none) */
    size_t nheads;
} NnrtProgress;

void nnrt_progress_begin(NnrtProgress *p, FILE *out, int epoch, int epochs, size_t steps);
/* After each step: running mean loss and accuracy (or mae), and a
 * regression's mse (acc, mse < 0: not shown). */
void nnrt_progress_step(NnrtProgress *p, double loss, double acc, double mse);
/* End of epoch: prints the final line
 * "epoch 1/5  469/469  loss 0.5123  acc 0.8211  3.21s" (a regression's:
 * "loss 2.5  mae 1.25  mse 2.5"; each head's values after the model's:
 * "  logits_loss 0.3  logits_acc 0.75  reg_loss 0.1  reg_mae 0.2  reg_mse 0.1")
 * from e's loss, acc, mse and heads. */
void nnrt_progress_end(NnrtProgress *p, const NnrtEpochStats *e, double secs);
/* "  NAME_loss L  NAME_acc A" (or "NAME_mae M  NAME_mse S") for each of the
 * n heads, Keras' names; val: their validation values, "val_NAME_loss ...". */
void nnrt_print_heads(FILE *out, const NnrtHead *heads, size_t n, const NnrtHeadStats *hs, bool val);
/* What is reported of a head, in order (every output names them so): its
 * loss, then its accuracy (named `acc`: "acc" or "accuracy") or its mae and
 * mse. Their names (without the head's) into names, the values of hs
 * (NULL: none; val: the validation's) into v; returns how many (1 to 3). */
int nnrt_head_values(const NnrtHead *hd, const NnrtHeadStats *hs, bool val, const char *acc, const char *names[3],
                     double v[3]);

double nnrt_now(void); /* monotonic seconds */
/* The name of the metric in the place of the accuracy: "mae" or "acc". */
const char *nnrt_metric_name(bool mae);

/* ---------------------------------------------------------------- train.c */

/* A compiled step function: `void fn(void **slots, int64_t n)` runs one
 * batch of any n samples, 1 <= n <= its batch size (the last batch of a set
 * may be partial; the loss is the mean over the n samples). Slots:
 *   0 arena (scratch, >= arena_bytes), 1 x [n, sample], 2 y [n],
 *   3 loss (one element), 4 output [n, outputs], 5.. parameters then optimizer state. */
typedef void (*NnrtStepFn)(void **slots, int64_t n);

typedef struct NnrtStep {
    NnrtStepFn fn;
    size_t batch; /* the largest n, the size of every batch but a set's last */
} NnrtStep;

/* A pass's running sums over the samples seen so far (sample-weighted). */
typedef struct NnrtSums {
    double loss_sum;
    size_t seen, correct;
    double abs_sum; /* of |output - label| (NnrtTrainSpec.mae) */
    double sq_sum;  /* of (output - label)^2, for the mse beside the mae */
    NnrtHeadSums head[NNRT_MAX_HEADS]; /* each head's (NnrtTrainSpec.heads) */
} NnrtSums;

/* Where training is: enough to continue exactly (checkpoints hold it). */
typedef struct NnrtTrainPos {
    int epoch;     /* epochs completed */
    size_t step;   /* steps of the next epoch completed */
    NnrtRng rng;   /* the generator before the shuffle of that epoch */
    NnrtSums sums; /* that epoch's so far */
} NnrtTrainPos;

typedef struct NnrtEpochStats {
    double loss, acc, secs;   /* acc: the accuracy, or the mae (NnrtTrainSpec.mae); < 0 when neither */
    int epoch;                /* 1-based */
    double val_loss, val_acc; /* < 0 without a validation set */
    double mse, val_mse;      /* a regression's (NnrtTrainSpec.mae) mean squared error; < 0 otherwise */
    NnrtHeadStats head[NNRT_MAX_HEADS]; /* each head's (NnrtTrainSpec.heads) */
} NnrtEpochStats;

typedef enum { NNRT_HOOK_CONTINUE, NNRT_HOOK_STOP, NNRT_HOOK_FAIL } NnrtHookResult;

/* A non-finite value after a training step: the loss, or (loss finite) a
 * parameter or optimizer state, which means a gradient went bad. */
typedef struct NnrtNonFinite {
    int epoch;       /* 1-based */
    size_t step;     /* 1-based, in the epoch */
    bool in_loss;
    double loss;
    void **slots;    /* the step's slots, still holding its buffers */
} NnrtNonFinite;

typedef struct NnrtTrainSpec {
    int dtype_bytes;      /* 4 (float) or 8 (double) */
    bool input_u8;        /* the steps take uint8 images unscaled: every set must be uint8 */
    size_t outputs;       /* elements of the output per sample */
    bool classify;        /* accuracy = argmax(output) == label */
    bool mae;             /* else the mean absolute error of the outputs (as many as the labels), in acc's place */
    const NnrtHead *heads; /* several loss terms: each one's slices (the loss slot holds 1 + nheads values) */
    size_t nheads;         /* at most NNRT_MAX_HEADS */
    NnrtStep train, eval; /* their batch sizes may differ */
    void **slots;         /* slots 5.. filled by the caller; 0..4 set by the trainer */
    size_t nslots;
    size_t arena_bytes;   /* max over the step functions */
    int epochs;           /* in all, counting those before a resume */
    uint64_t seed;        /* shuffling */
    FILE *out;            /* progress and results; NULL: none (nnc -q) */
    /* Optional. */
    const NnrtDataset *val; /* evaluated after every epoch */
    const NnrtTrainPos *resume; /* NULL: epoch 0, the generator seeded from seed */
    /* The NaN/Inf guard, called with the slots after every training step:
     * nonzero when the parameters and optimizer state are all finite (NULL:
     * the loss alone is checked). The compiler generates it for the host. */
    int (*finite)(void **slots);
    void *ctx;
    /* After every training step (stats NULL) and every epoch (its stats). */
    NnrtHookResult (*after_step)(void *ctx, const NnrtTrainPos *pos,
                                 const NnrtEpochStats *stats, char *err, size_t errlen);
    /* When the guard fires, before the buffers are freed. */
    void (*on_nonfinite)(void *ctx, const NnrtNonFinite *nf);
    /* Data-parallel (mpi.c): `train` runs on this rank's slice of each
     * global batch and sums its gradients over the ranks itself (its
     * allreduce nodes), weighed by the slice's share of the batch; `begin`
     * is told the batch and where the slice starts in it before each step.
     * NULL: one process. */
    void (*begin)(size_t global_batch, size_t first);
    int rank, ranks; /* this process's place among them: its slice of each batch */
    void (*sum)(void *p, size_t n, int dtype_bytes); /* in place, over the ranks */
    /* Rank 0 writes to out each other rank's bytes, in rank order (every
     * rank calls it; rank 0's own bytes are written already). */
    bool (*write_ranks)(FILE *out, const void *bytes, size_t n, char *err, size_t errlen);
} NnrtTrainSpec;

typedef enum { NNRT_FAIL_NONE, NNRT_FAIL_NONFINITE, NNRT_FAIL_HOOK, NNRT_FAIL_INTERRUPTED, NNRT_FAIL_OTHER } NnrtFailure;

/* Asks a running nnrt_train to stop after its current step (it then fails
 * with NNRT_FAIL_INTERRUPTED, the weights those of that step and of the
 * last after_step call; at an epoch's last step, after the epoch and its
 * after_step), and a running interruptible step function to return before
 * its next loop. Safe in a signal handler; the request stays until cleared.
 * The flag is global mutable state (with the thread pool and its split
 * setting, pool.c, and file.c's signal handler): a signal handler has
 * nowhere else to put it, and JIT'd code reads it by name. */
extern volatile sig_atomic_t nnrt_interrupt_requested;
void nnrt_interrupt(void);
bool nnrt_interrupted(void);
void nnrt_clear_interrupt(void);

typedef struct NnrtTrainResult {
    NnrtEpochStats *epochs; /* malloc'd, the epochs run by this call */
    int nepochs;
    double test_loss, test_acc; /* < 0 when no test set */
    double test_mse;            /* < 0 when no test set or not a regression */
    NnrtHeadStats test_head[NNRT_MAX_HEADS]; /* each head's loss, acc and mse on it (NnrtTrainSpec.heads) */
    bool stopped;               /* after_step asked to stop (early stopping) */
    NnrtFailure failure;        /* why nnrt_train returned false */
} NnrtTrainResult;

/* The position of a fresh run. */
void nnrt_train_pos_init(NnrtTrainPos *pos, uint64_t seed);
/* Runs epochs up to spec.epochs over `train` (shuffled each epoch with the
 * seed), from spec.resume if set, then evaluates on `test` if not NULL.
 * Prints progress to spec.out. */
bool nnrt_train(const NnrtTrainSpec *spec, const NnrtDataset *train, const NnrtDataset *test,
                NnrtTrainResult *res, char *err, size_t errlen);
/* Loss and accuracy of the eval steps over a whole dataset. */
bool nnrt_evaluate(const NnrtTrainSpec *spec, const NnrtDataset *ds, double *loss, double *acc,
                   char *err, size_t errlen);
/* The same, calling on_batch with each batch's outputs [b, outputs] and
 * labels [b] (dtype_bytes elements); samples first..first+b-1, in order;
 * heads (NULL: not wanted) gets each head's loss, acc and mse.
 * Data-parallel (spec->begin), each rank evaluates its contiguous slice of
 * ds: the results are over all ranks, but on_batch sees this rank's
 * batches alone. */
typedef void (*NnrtBatchFn)(void *ctx, size_t first, size_t b, const void *output,
                            const void *y);
bool nnrt_evaluate_batches(const NnrtTrainSpec *spec, const NnrtDataset *ds, NnrtBatchFn on_batch,
                           void *ctx, double *loss, double *acc, NnrtHeadStats *heads, char *err, size_t errlen);
void nnrt_train_result_free(NnrtTrainResult *res);

/* ---------------------------------------------------------------- report.c */

size_t nnrt_peak_rss_bytes(void);

typedef struct NnrtReport {
    const char *model, *train_path, *test_path; /* test_path may be NULL */
    uint64_t seed;
    size_t batch;
    double lr;
    double compile_secs;
    bool input_u8; /* the steps took the images as uint8 (NnrtTrainSpec.input_u8) */
    bool mae;      /* the epochs' acc is the mae (NnrtTrainSpec.mae) */
    const NnrtHead *heads; /* several loss terms: each one's values beside the model's */
    size_t nheads;
    const NnrtTrainResult *result;
} NnrtReport;

/* Writes the JSON summary (atomically: temp file and rename). */
bool nnrt_report_write(const char *path, const NnrtReport *r, char *err, size_t errlen);

/* ---------------------------------------------------------------- pool.c */

/* A kernel over the index range [begin, end) of its work. */
typedef void (*NnrtKernelFn)(void **slots, int64_t begin, int64_t end);

/* Runs fn over [0, n) split across the pool's threads (the caller is one of
 * them) and returns when all are done. Called by JIT-compiled code, and
 * by csv.c for a block's parts. */
void nnrt_parallel_for(NnrtKernelFn fn, void **slots, int64_t n);
/* The same for a job small enough (a few microseconds) that splitting it
 * pays only where the pool's threads have cores of their own: split as
 * nnrt_set_split_small says (at first, split). Called by JIT-compiled code;
 * the results are the same either way. */
void nnrt_parallel_for_small(NnrtKernelFn fn, void **slots, int64_t n);
void nnrt_set_split_small(bool split);
bool nnrt_splits_small(void);
/* Threads of the pool: set before first use (0: NNC_THREADS, else one per
 * available core). */
void nnrt_set_threads(int n);
int nnrt_threads(void);
/* Compiled training and evaluation steps run with denormal floats flushed
 * to zero (on x86, MXCSR's FTZ and DAZ, as TensorFlow's threads run Keras
 * models): a denormal operand or result costs a microcode assist of about
 * a hundred cycles, and a network's small gradients and Adam's second
 * moments become denormal as training goes on (cnn.nn's epochs grew from
 * 5.3 s to 6.3 s over three; flushed, they stay at 5.3 s with the same test
 * accuracy). The REPL's own expressions keep IEEE's gradual underflow.
 * nnrt_flush_denormals sets the calling thread's mode and returns the old
 * one for nnrt_restore_fp; the pool's workers run each job in its
 * caller's mode, so a result never depends on which thread computed it. */
unsigned nnrt_flush_denormals(void);
void nnrt_restore_fp(unsigned mode);
/* ---------------------------------------------------------------- metrics.c */

/* --eval: "samples N  loss L  acc A" (a regression: "mae M  mse S"; each
 * head's values after the model's: nnrt_print_heads), then
 * for a classifier the accuracy of each class (its name after it when
 * `names` has some) and the confusion matrix (rows true class, columns
 * predicted), indexed by the labels: for a classifier they must be integers
 * in [0, spec->outputs) (nnrt_dataset_read checks it, given that many
 * classes). */
bool nnrt_eval_report(const NnrtTrainSpec *spec, const NnrtDataset *ds, const NnrtClasses *names, FILE *out,
                      char *err, size_t errlen);
/* --predict: CSV with a header; per sample "index,class,p0,p1,..." for a
 * classifier (the class's name when `names` has some), "index,y0,y1,..."
 * (the raw outputs) otherwise, named after `targets` when it has a name
 * for each output (names, a class's or a target's, quoted per RFC 4180
 * where they need it); or with npy, an .npy file of float32 [n, dims...]
 * (the outputs alone, dims[0..rank) the output's shape).
 * Data-parallel (spec->begin), every rank predicts its slice, and rank 0
 * writes to out every rank's rows in sample order (spec->write_ranks); the
 * others' out is not written. --eval's report is of every rank's slice. */
bool nnrt_predict_write(const NnrtTrainSpec *spec, const NnrtDataset *ds, const NnrtClasses *names,
                        const NnrtClasses *targets, const size_t *dims, int rank, bool npy, FILE *out, char *err,
                        size_t errlen);
/* Moves the last n_val samples of ds into val (Keras' validation_split:
 * the tail, before any shuffling). 0 < n_val < ds->n. */
bool nnrt_dataset_split(NnrtDataset *ds, size_t n_val, NnrtDataset *val, char *err,
                        size_t errlen);

/* ---------------------------------------------------------------- plot.c */

/* What a history holds beyond the loss: a regression's mae and mse (mae)
 * in the accuracy's place, and with several loss terms each head's values. */
typedef struct NnrtColumns {
    bool mae;
    const NnrtHead *heads;
    size_t nheads;
} NnrtColumns;

/* --log: "epoch,loss,accuracy,val_loss,val_accuracy,seconds" (with mae,
 * a regression's: "epoch,loss,mae,mse,val_loss,val_mae,val_mse,seconds";
 * with heads, before "seconds", each one's values (nnrt_head_values), then
 * each one's validation values: "logits_loss,logits_accuracy,reg_loss,
 * reg_mae,reg_mse,val_logits_loss,..."); empty cells for what was not
 * measured. Open writes the header and the history
 * h[0..n) (atomically) and leaves the file open in *f; append adds a row,
 * flushed; close syncs and closes it. */
bool nnrt_log_open(const char *path, const NnrtEpochStats *h, size_t n, const NnrtColumns *c, FILE **f, char *err,
                   size_t errlen);
bool nnrt_log_append(FILE *f, const char *path, const NnrtEpochStats *e, const NnrtColumns *c, char *err,
                     size_t errlen);
bool nnrt_log_close(FILE *f, const char *path, char *err, size_t errlen);
/* --plot: an SVG of loss and accuracy (with mae: mae and mse) per epoch,
 * training and validation, from the history h[0..n) (the whole file,
 * atomically); with heads, a row of panels per head below, its loss and
 * its metrics (the model's accuracy panel, which it has not, left out). */
bool nnrt_plot_write(const char *path, const NnrtEpochStats *h, size_t n, const NnrtColumns *c, char *err,
                     size_t errlen);

/* ---------------------------------------------------------------- checkpoint.c */

/* The largest JSON header accepted: far above any model nnc compiles, far
 * below what would hurt to allocate. */
#define NNRT_CKPT_MAX_HEADER (16u << 20)

typedef struct NnrtTensor {
    const char *name;
    int rank;
    int64_t dims[NNRT_IDX_MAX_RANK];
    bool f64;         /* float64 (F64), else float32 (F32): weights are F32 */
    const void *data; /* little-endian (saving; a loaded one: nnrt_ckpt_read) */
} NnrtTensor;

typedef struct NnrtMeta {
    const char *key, *value;
} NnrtMeta;

/* Writes a safetensors file atomically (temp file, fsync, rename, fsync of
 * the directory). Tensors are stored in the order given. */
bool nnrt_ckpt_save(const char *path, const NnrtTensor *t, size_t nt, const NnrtMeta *meta,
                    size_t nmeta, char *err, size_t errlen);

/* The format nnc's checkpoints with a training state name in their metadata. */
#define NNRT_CKPT_FORMAT "nnc-checkpoint-1"
/* The tensor of a run's history in nnc's checkpoints: F64 [epochs, 7] (a
 * row per epoch: epoch, loss, acc, val_loss, val_acc, mse, val_mse), data
 * rather than metadata text, so that saving it costs a copy, not a JSON
 * encoding that grew with every epoch. Not a weight: loaders skip it. The
 * ':' keeps it apart from any name of a model's. */
#define NNRT_CKPT_HISTORY "nnc:history"

typedef struct NnrtCkpt {
    NnrtTensor *tensors; /* names owned by the checkpoint; data NULL */
    size_t ntensors;
    NnrtMeta *meta;
    size_t nmeta;
    const char *path;    /* as given to nnrt_ckpt_load */
    int fd;              /* open until nnrt_ckpt_free */
    uint64_t *offset;    /* of each tensor's data in the file */
} NnrtCkpt;

/* Reads and validates a safetensors file's header: header size cap, JSON
 * (jansson), every field's type, F32 or F64, sizes without overflow, byte
 * ranges tiling the rest of the file exactly. False with "PATH: what is
 * wrong" in err. The data is read only on demand (nnrt_ckpt_read), so a
 * caller checks the names and shapes first: a file may declare gigabytes
 * (sparse, or of tensors the caller has no use for). */
bool nnrt_ckpt_load(const char *path, NnrtCkpt *c, char *err, size_t errlen);
/* Reads the data of t, one of c's tensors, into dst (its bytes: 4 or, f64, 8 per element). */
bool nnrt_ckpt_read(const NnrtCkpt *c, const NnrtTensor *t, void *dst, char *err, size_t errlen);
const NnrtTensor *nnrt_ckpt_tensor(const NnrtCkpt *c, const char *name); /* NULL: none */
const char *nnrt_ckpt_meta(const NnrtCkpt *c, const char *key);         /* NULL: none */
void nnrt_ckpt_free(NnrtCkpt *c);

/* ---------------------------------------------------------------- file.c */

/* Formats an error into err (when errlen > 0); returns false, so an error
 * path reads `return nnrt_fail(err, errlen, "...", ...)`. */
bool nnrt_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An atomic write: begin opens a temporary file beside the file path names
 * (a symlink's target; anything but a regular file, or an unwritable
 * directory, is refused), to be written through f; end with keep = true
 * flushes, fsyncs, renames it over the target (with the mode of the file it
 * replaces, or 0666 less the umask) and fsyncs the directory; with keep =
 * false, or on any error, removes it and leaves the target as it was.
 * `what` names the output in messages ("the report"). One at a time. */
typedef struct NnrtAtomic {
    FILE *f;
    const char *name; /* the path as given, for messages */
    char *path, *tmp; /* the target's canonical path; the temporary file */
    unsigned mode;
} NnrtAtomic;
bool nnrt_atomic_begin(NnrtAtomic *a, const char *path, char *err, size_t errlen);
bool nnrt_atomic_end(NnrtAtomic *a, bool keep, const char *what, char *err, size_t errlen);
/* The same, the file left open in *f (on success) to append to it. */
bool nnrt_atomic_end_open(NnrtAtomic *a, bool keep, const char *what, FILE **f, char *err,
                          size_t errlen);

/* A file of a run, by the option that names it. Files with the same nonzero
 * `shared` may be one file (--resume's checkpoint, which it saves to). */
typedef struct NnrtRunFile {
    const char *option, *path;
    bool output;
    int shared;
} NnrtRunFile;
/* Before a run: every output can be written (as nnrt_atomic_begin would
 * check) and none is an input or another output (the same device and inode,
 * or for files not there yet, the same resolved path). False with
 * "OPTION PATH: ..." in err. */
bool nnrt_check_run_files(const NnrtRunFile *f, size_t n, char *err, size_t errlen);

/* Installs the handler of SIGINT, SIGTERM and SIGHUP (those not ignored):
 * it removes the temporary file of an atomic write in progress, then ends
 * the process by the signal; SIGXFSZ is ignored (a write past the size limit
 * fails with EFBIG). Call once, early. */
void nnrt_signals_install(void);
/* While on, a first SIGINT asks the training loop to stop (nnrt_interrupt)
 * instead of ending the process; a second ends it. */
void nnrt_sigint_stops_training(bool on);

/* ---------------------------------------------------------------- aot.c */

/* A model compiled ahead of time (nnc -c) describes itself to the runtime
 * with these, emitted by the compiler as read-only data (compiler/aot.c
 * lays them out: every field 8 bytes, so no padding). The generated header
 * wraps the functions below as MODEL_state_new, MODEL_train_step, ... */
#define NNRT_AOT_ABI 2
typedef struct NnrtAotSlot {
    const char *name;   /* NULL: a buffer of the call (arena, x, y, loss, output) */
    int64_t elems;
    int64_t rank;
    int64_t dims[NNRT_IDX_MAX_RANK];
    int64_t panel_width; /* kept in the matmul kernel's column panels of this width; 0: row-major */
    int64_t weight;      /* a parameter or the model's state (1), or optimizer state (0) */
    const float *init;   /* its first contents, in its layout; NULL: zeros */
} NnrtAotSlot;

typedef struct NnrtAotModel {
    int64_t abi; /* NNRT_AOT_ABI */
    const char *name;
    uint64_t fingerprint;
    int64_t batch, input_size, label_size, output_size, arena_bytes, nslots;
    const NnrtAotSlot *slots;
    void (*train_step)(void **slots, int64_t n);
    void (*eval_step)(void **slots, int64_t n);
    const double *mean, *std; /* --normalize's, per input element (the weights' checkpoint's); NULL: none */
} NnrtAotModel;

/* Status codes: 0 success, else one of these (nnrt_aot_error says more). */
enum { NNRT_AOT_ENOMEM = 1, NNRT_AOT_EINVAL = 2, NNRT_AOT_EIO = 3 };

typedef struct NnrtAotState NnrtAotState;
/* A state: the weights and optimizer state from the model's first contents. */
int nnrt_aot_state_new(const NnrtAotModel *m, NnrtAotState **out);
void nnrt_aot_state_free(NnrtAotState *s); /* NULL: nothing */
/* One training step on n samples (1 <= n <= batch): x [n, input_size],
 * y [n, label_size] (class indices as floats for a classifier); *loss the
 * batch's mean loss. The state's inputs are normalized first if it has a
 * normalization (--normalize: the model's, or the last checkpoint loaded's),
 * as nnc's are; so are predict's. */
int nnrt_aot_train_step(NnrtAotState *s, const float *x, const float *y, size_t n, float *loss);
/* The evaluation step over n samples, in steps of at most the batch. */
int nnrt_aot_predict(NnrtAotState *s, const float *x, size_t n, float *out);
/* Safetensors files as `nnc --save` writes them and `nnc --load` reads them:
 * every parameter and state by name, row-major, and the normalization. Load
 * takes the weights, whatever optimizer state the file has and its
 * normalization (none if it has none, as `nnc --load`); a missing weight, a
 * tensor of another shape or one the model lacks, a malformed normalization
 * is an error (the state unchanged). */
int nnrt_aot_save(NnrtAotState *s, const char *path);
int nnrt_aot_load(NnrtAotState *s, const char *path);
/* The same with a training position, which `nnc --resume` continues from:
 * pos as nnrt_train keeps it (epochs done; steps of the next done; the
 * generator before that epoch's shuffle; its running sums), after training
 * on the batches nnc makes of `samples` samples with `seed`. */
int nnrt_aot_save_run(NnrtAotState *s, const char *path, const NnrtTrainPos *pos, uint64_t seed, size_t samples);
/* The last failure's message ("" if none). */
const char *nnrt_aot_error(const NnrtAotState *s);

/* Element (i, j) of a [K, N] matrix kept in column panels of pw columns
 * (layout.c): panel j / pw at (j - j % pw) K, its row i at i pw. */
static inline size_t nnrt_panel_index(int64_t i, int64_t j, int64_t K, int64_t pw) {
    return (size_t)((j - j % pw) * K + i * pw + j % pw);
}

/* ---------------------------------------------------------------- mpi.c */

/* Not in libnnrt.a (programs of nnc -c need no MPI): nnc's own library. */

/* Starts MPI when a launcher (mpirun) started the process; else nothing
 * (rank 0 of 1). Fails when launched but built without MPI. */
bool nnrt_mpi_init(int *argc, char ***argv, char *err, size_t errlen);
/* At exit: a failure stops every rank (they may wait in a collective). */
void nnrt_mpi_finish(int status);
bool nnrt_mpi_active(void);
int nnrt_mpi_rank(void);
int nnrt_mpi_size(void);
/* In place, over all ranks: the sum of n elements (dtype_bytes 4 or 8),
 * rank 0's bytes. */
void nnrt_mpi_sum(void *p, size_t n, int dtype_bytes);
void nnrt_mpi_bcast(void *p, size_t bytes);
/* NnrtTrainSpec.write_ranks: rank 0 writes to out the n bytes of each
 * other rank, in rank order; every rank calls it. */
bool nnrt_mpi_write_ranks(FILE *out, const void *bytes, size_t n, char *err, size_t errlen);
/* Before each data-parallel training step: the global batch's samples,
 * which weigh each rank's share in nnrt_allreduce, and the global index in
 * it of this rank's first (nnrt_mpi_first_sample). */
void nnrt_mpi_begin_step(size_t global_batch, size_t first);
/* That index, which the step's code reads by name (random numbers are
 * numbered by the global sample: a rank's dropout masks are one process's). */
extern int64_t nnrt_mpi_first_sample;
/* Called by a training step's code (the IR's allreduce node, on the step's
 * own thread): dst = the sum over the ranks of src n / global batch, this
 * rank's mean gradient over its n samples weighed by its share; elems
 * elements of dtype_bytes. dst lies in a bucket of bucket_elems elements
 * from `bucket`, summed in one all-reduce that the bucket's last call
 * starts (the others pass bucket_elems 0: dst scaled only). Started, not
 * finished: dst is valid after nnrt_allreduce_wait, which the step calls
 * before it reads dst. */
void nnrt_allreduce(void *dst, const void *src, int64_t elems, int64_t n, int32_t dtype_bytes, void *bucket,
                    int64_t bucket_elems);
void nnrt_allreduce_wait(void);

#endif
