/* cg.h — the code generator's internals: the LLVM module of a step and the
 * emission state shared by codegen.c, the kernel generators (cg_matmul.c,
 * cg_rows.c, cg_guard.c), jit.c and aot.c. Only these files include the LLVM
 * headers; the other stages see CgModule as an opaque type (nnc.h). */
#ifndef NNC_CG_H
#define NNC_CG_H

#include "nnc.h"

#include <llvm-c/Core.h>
#include <llvm-c/Orc.h>
struct CgModule {
    LLVMOrcThreadSafeContextRef tsctx; /* owns ctx */
    LLVMContextRef ctx;
    LLVMModuleRef mod;                 /* owned until jit_compile takes it */
    bool kernel;                       /* register-blocked vector code by construction: jit.c optimises
                                          it less (an outlined loop nest, such as cg_window.c's, is not) */
    bool kernel_fn;                    /* holds one kernel function (cg_kernel_begin), named as the module */
    CgModule *next;                    /* the kernels the step calls, each a module of its own */
};

/* Emission state of one step function, shared by codegen.c and the kernel
 * generators (cg_matmul.c). */
typedef struct Cg {
    CgModule *owner;    /* the step function's module: its kernels are chained to it */
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;    /* the function being emitted */
    const char *name;   /* the step function's name, to name its kernels */
    int kernels;        /* kernels outlined so far */
    LLVMTypeRef ft, i64, i8p;
    const Graph *g;
    const Schedule *sched;
    LLVMValueRef *ptr;  /* per node: base pointer of its elements in fn (NULL: constant) */
    LLVMValueRef *slot; /* per slot: its pointer in fn, as ft* */
    LLVMValueRef n;     /* the batch size this call runs on (i64) */
    LLVMValueRef kctx;  /* the kernels' context, once made (cg_kernel_context) */
    struct SampleLoop *samples; /* the sample loop being emitted (codegen.c), or NULL */
} Cg;

/* A counted loop 0 <= i < n: open it, emit the body, close it. */
typedef struct Loop {
    LLVMBasicBlockRef head, body, exit;
    LLVMValueRef iv;
} Loop;

LLVMValueRef cg_i64(Cg *c, int64_t v);
LLVMValueRef cg_f(Cg *c, double v);
LLVMValueRef cg_loop_open(Cg *c, Loop *l, LLVMValueRef n);
void cg_loop_close(Cg *c, Loop *l);
/* p as a pointer to t (a bitcast under LLVM 14's typed pointers, p itself later). */
LLVMValueRef cg_ptr_to(Cg *c, LLVMValueRef p, LLVMTypeRef t);
LLVMValueRef cg_elem_ptr(Cg *c, LLVMValueRef base, LLVMValueRef off);
LLVMValueRef cg_load_at(Cg *c, NodeId id, LLVMValueRef off);
/* Axis d of node id: its size, n along a batch axis. */
LLVMValueRef cg_dim(Cg *c, NodeId id, int d);
/* Is axis d of node id a batch axis (of n elements at run time)? */
bool cg_batch_axis(const Cg *c, NodeId id, int d);
/* The value of constant node id (scaled to n if it depends on the batch). */
LLVMValueRef cg_const(Cg *c, NodeId id);
/* A call of an intrinsic overloaded on type t (the element or a vector type). */
LLVMValueRef cg_intrinsic(Cg *c, const char *name, LLVMTypeRef t, LLVMValueRef *args, unsigned nargs);
/* The math of elementwise node n on its operands' values a and b (b NULL
 * for one operand): floats, or vectors of the same width (of the node's
 * elements along a row, cg_rows.c; not for tanh). col is the float index
 * along the last axis, read by onehot only. */
LLVMValueRef cg_elemwise_value(Cg *c, const IrNode *n, LLVMValueRef a, LLVMValueRef b, LLVMValueRef col);
/* A reduction (sum, max, min): its identity, and acc combined with x. */
double cg_reduce_identity(Op op);
LLVMValueRef cg_reduce_step(Cg *c, Op op, LLVMValueRef acc, LLVMValueRef x);
/* A pointer to the arena's byte `offset` (Schedule.partials). */
LLVMValueRef cg_arena_at(Cg *c, size_t offset);
/* dst[e] = the sum over u < count of partials[u stride + e] (the arena's),
 * for e < elems, u in order: partial sums made by the thread pool's units
 * (or per sample) added up the same way on any number of threads. */
void cg_sum_partials(Cg *c, LLVMValueRef dst, size_t partials, LLVMValueRef count, int64_t stride, LLVMValueRef elems);
/* base[0 .. count) = v, in a loop. */
void cg_fill(Cg *c, LLVMValueRef base, LLVMValueRef count, LLVMValueRef v);
/* n variables of type t in the function's entry block, 64-byte aligned:
 * an accumulator there is a register once SROA has run. */
LLVMValueRef cg_var(Cg *c, LLVMTypeRef t, int64_t n, const char *name);
/* x in every lane of a <w x type of x> vector. */
LLVMValueRef cg_splat(Cg *c, LLVMValueRef x, int w);
/* Emits into m from now on: its context, module, types and a new builder. */
void cg_use_module(Cg *c, CgModule *m);
/* Starts function fn: sets c->fn, the builder, c->slot, c->ptr and c->n for
 * it. A step function's parameters are (slots, n); an outlined kernel's
 * first parameter is its context {slots, n} (cg_kernel_context).
 * cg_end_function() ends and checks it. */
void cg_begin_function(Cg *c, LLVMValueRef fn, bool kernel);
/* The int32 at Schedule.finite_flag in the arena (any pointer to it). */
LLVMValueRef cg_finite_flag(Cg *c, LLVMValueRef arena);
/* In a step function: the context its kernels take. */
LLVMValueRef cg_kernel_context(Cg *c);
/* An outlined kernel's type, void (i8 **ctx, i64 begin, i64 end), and a
 * call running it over [0, n) on the thread pool (runtime/pool.c), for a
 * small job as the trainer finds faster (nnrt_parallel_for_small). */
LLVMTypeRef cg_kernel_type(Cg *c);
void cg_parallel_for(Cg *c, LLVMValueRef kfn, LLVMValueRef ctx, LLVMValueRef n, bool small);
void cg_end_function(Cg *c);
/* Below CG_PARALLEL_MIN_WORK multiply-adds of a product (about 5 us of one
 * core) a kernel runs on the calling thread: splitting costs more than the
 * wake-up, as the other core must fetch the operands this one just wrote.
 * Up to CG_SMALL_WORK (50 us), splitting pays only where the threads have
 * cores of their own, and the trainer times both ways
 * (nnrt_parallel_for_small, train.c). */
#define CG_PARALLEL_MIN_WORK 1e6
#define CG_SMALL_WORK 1e7
/* The multiply-adds one element visit of a loop nest (a window op's, an
 * elementwise or reduction kernel's) is worth: a visit loads and stores
 * through memory, a multiply-add is one lane of the product's
 * register-blocked FMAs. Measured on one thread at cnn.nn's batch 128:
 * conv1's maxpool gradient, 8.3M visits, took 2.8 ms, the time of 160M of
 * conv2's multiply-adds (57G a second). Counted as multiply-adds, such a
 * kernel was "small" and ran on one thread whenever the trainer chose so
 * for the MLP-sized kernels: 18% of an epoch. */
#define CG_VISIT_WORK 20
/* A kernel of its own, name.KINDn (name in `name`), in a module chained to
 * the step's (`blocked`: vector code already, CgModule.kernel). From
 * cg_kernel_begin, which saves the step function's state in *step and
 * returns the kernel (void (i8 **ctx, i64 begin, i64 end)) to emit over
 * units [begin, end), to cg_kernel_end, which restores it and runs the
 * kernel over the units `units` gives (in the step function), on the
 * thread pool if `work` is worth it. A kernel in a sample loop
 * (fuse_samples.c) is called by the loop instead, once per group of
 * samples, with units [s0, s1) the group's samples. */
LLVMValueRef cg_kernel_begin(Cg *c, Cg *step, const char *kind, bool blocked, char *name, size_t len);
void cg_kernel_end(Cg *c, const Cg *step, const char *name, LLVMValueRef (*units)(Cg *c, void *arg), void *arg,
                   double work);
/* Checks c->fn, whatever it returns (internal error if invalid). */
void cg_verify_function(Cg *c);

/* ---------------------------------------------------------------- cg_rows.c */

/* A row loop: kernels ks[0..nk) of the schedule's order (its kernels, and
 * nodes without a loop of their own between them) in one loop over rows. */
void cg_rows(Cg *c, const NodeId *ks, int nk);

/* ---------------------------------------------------------------- cg_window.c */

/* A window op (convolution, pooling, their adjoints) as its loop nest. */
void cg_window(Cg *c, NodeId id);
/* OP_RANDOM: a hash of (key, counter, index) per element. */
void cg_random(Cg *c, NodeId id);

/* ---------------------------------------------------------------- cg_matmul.c */

/* C = A B as a register-blocked kernel (A may be a transpose, read through
 * strides). Emits an outlined kernel over column panels and its call. */
void cg_matmul(Cg *c, NodeId id);

/* ---------------------------------------------------------------- jit.c, for aot.c */

/* Ahead of time (aot.c): the step modules (taken) optimised as for the JIT,
 * position-independent, and linked into one module of ctx; NULL with the
 * message in err. */
LLVMModuleRef jit_link_modules(CgModule **mods, int nmods, const Target *t, LLVMContextRef ctx, char *err,
                               size_t errlen);
/* mod's object code for t, position-independent; NULL with err. */
LLVMMemoryBufferRef jit_emit_object(LLVMModuleRef mod, const Target *t, char *err, size_t errlen);

#endif
