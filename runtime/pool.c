/* pool.c — the one persistent thread pool, owned by the runtime.
 *
 * JIT-compiled kernels (and the CSV reader's parts, csv.c) call
 * nnrt_parallel_for(fn, slots, n) to run fn(slots, i, i + 1) for every i
 * in [0, n) on all cores. Each index is
 * computed the same way whichever thread runs it, so results do not depend
 * on the number of threads.
 *
 * Each thread (the caller is thread 0) has a home range of the indices,
 * the same contiguous share in every job, and takes from it first: the
 * kernels split by column panels, so the panels of a weight matrix stay in
 * one core's cache from the forward product to the weight update (handed
 * out first come, first served, they wandered between cores: an epoch of
 * 784-512-10 at batch 128 took 0.52 s on 2 threads, now 0.43 s). A
 * thread whose range is empty takes from the others', so a worker that is
 * asleep or descheduled (two cores are often shared) delays nothing.
 * Indices are taken one at a time from per-range counters that also carry
 * the job's generation. A worker only touches a job after taking one of its
 * indices, which the job cannot finish without, so a late worker can never
 * run a stale job.
 *
 * The pool is process-wide state, as is, beside it, the trainer's choice
 * whether small jobs are split (nnrt_set_split_small, train.c): one pool, so
 * two never compete for the cores. It starts on first use with NNC_THREADS
 * threads, else one per available core (nnrt_set_threads changes that
 * before first use). Idle workers spin briefly, then sleep on
 * a condition variable; the caller wakes them only if some sleep.
 */
#define _GNU_SOURCE
#include "nnrt.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

enum { MAX_THREADS = 256, SPIN = 2000 };

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* A thread's home range of the current job: [next's index, end). One
 * cache line each, so threads taking from their own do not contend. */
typedef struct Range {
    _Alignas(64) atomic_uint_fast64_t next; /* generation << 32 | next index to take */
    atomic_int_fast64_t end;
} Range;

typedef struct Pool {
    int threads; /* including the caller */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_uint generation;  /* bumped once per job */
    Range range[MAX_THREADS];
    atomic_int done;         /* indices of the current job finished */
    atomic_int sleepers;     /* workers waiting on `wake` */
    /* The job, written before generation is bumped. */
    NnrtKernelFn fn;
    void **slots;
    unsigned fp_mode; /* its caller's floating-point mode (nnrt_flush_denormals) */
} Pool;

static Pool pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int requested_threads;
static atomic_bool split_small = true;

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
enum { FLUSH = 0x8040 }; /* MXCSR's flush-to-zero and denormals-are-zero */
static unsigned fp_mode(void) { return _mm_getcsr(); }
static void set_fp_mode(unsigned mode) {
    if (_mm_getcsr() != mode)
        _mm_setcsr(mode);
}
#else
enum { FLUSH = 0 }; /* elsewhere the mode is left as it is */
static unsigned fp_mode(void) { return 0; }
static void set_fp_mode(unsigned mode) { (void)mode; }
#endif

unsigned nnrt_flush_denormals(void) {
    unsigned old = fp_mode();
    set_fp_mode(old | FLUSH);
    return old;
}

void nnrt_restore_fp(unsigned mode) { set_fp_mode(mode); }

/* Takes and runs indices of job `gen` from range r until none is left. */
static void run_range(unsigned gen, int r) {
    Range *rg = &pool.range[r];
    uint_fast64_t v = atomic_load_explicit(&rg->next, memory_order_acquire);
    for (bool mode_set = false;;) {
        /* A new job may have replaced end after v was read: then next was
         * closed first (nnrt_parallel_for), so the compare-exchange below
         * fails and v has the new generation, or the closed index, and this
         * stops. */
        int64_t i = (int64_t)(v & 0xffffffffu);
        if ((unsigned)(v >> 32) != gen || i >= atomic_load_explicit(&rg->end, memory_order_acquire))
            return;
        if (!atomic_compare_exchange_weak_explicit(&rg->next, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        if (!mode_set) /* the job cannot finish without index i: its fields hold */
            set_fp_mode(pool.fp_mode);
        mode_set = true;
        pool.fn(pool.slots, i, i + 1);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        v = atomic_load_explicit(&rg->next, memory_order_acquire);
    }
}

/* Thread self's part of job `gen`: its own range, then what is left of the
 * others'. */
static void run_indices(unsigned gen, int self) {
    for (int k = 0; k < pool.threads; k++)
        run_range(gen, (self + k) % pool.threads);
}

static void *worker(void *arg) {
    int self = (int)(intptr_t)arg;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        for (int i = 0; (g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen && i < SPIN; i++)
            cpu_relax();
        if (g == seen) {
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = g;
        run_indices(g, self);
    }
    return NULL;
}

static int available_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
    return 1;
}

static void pool_start(void) {
    int n = requested_threads;
    const char *env = getenv("NNC_THREADS");
    if (n <= 0 && env && *env)
        n = atoi(env);
    if (n <= 0)
        n = available_cores();
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pool.threads = 1;
    /* Workers run for the life of the process; a thread that cannot be
     * started just leaves the pool smaller. */
    for (int t = 1; t < n; t++) {
        pthread_t tid;
        if (pthread_create(&tid, NULL, worker, (void *)(intptr_t)pool.threads) != 0)
            break;
        pthread_detach(tid);
        pool.threads++;
    }
}

void nnrt_set_threads(int n) { requested_threads = n; }

int nnrt_threads(void) {
    pthread_once(&pool_once, pool_start);
    return pool.threads;
}

void nnrt_parallel_for(NnrtKernelFn fn, void **slots, int64_t n) {
    pthread_once(&pool_once, pool_start);
    if (pool.threads == 1 || n <= 1 || n > 0xffffffff) {
        fn(slots, 0, n);
        return;
    }
    unsigned gen = atomic_load_explicit(&pool.generation, memory_order_relaxed) + 1;
    pool.fn = fn;
    pool.slots = slots;
    pool.fp_mode = fp_mode();
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    for (int t = 0; t < pool.threads; t++) {
        Range *rg = &pool.range[t];
        /* The last job's range is closed before its end changes: a worker
         * still holding its next (all taken: its index at the old end)
         * must not find that index below the new end and take it, running
         * the new job's index under the old generation (the index twice,
         * and its count toward the new job: seen as a flake of test_pool
         * under ASan, which slows the workers). The acquire of end in
         * run_range orders this store before its compare-exchange. */
        atomic_store_explicit(&rg->next, (uint_fast64_t)(gen - 1) << 32 | 0xffffffffu, memory_order_relaxed);
        /* n <= 2^32 - 1, threads <= 256: no overflow */
        atomic_store_explicit(&rg->end, n * (t + 1) / pool.threads, memory_order_release);
        atomic_store_explicit(&rg->next, (uint_fast64_t)gen << 32 | (uint_fast64_t)(n * t / pool.threads),
                              memory_order_release);
    }
    atomic_store_explicit(&pool.generation, gen, memory_order_release);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    run_indices(gen, 0);
    /* Only indices a worker took and is still running are left. */
    for (int i = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < n; i++)
        if (i < SPIN)
            cpu_relax();
        else
            sched_yield(); /* the worker may be waiting for this core */
}

void nnrt_set_split_small(bool split) { atomic_store_explicit(&split_small, split, memory_order_relaxed); }

bool nnrt_splits_small(void) { return atomic_load_explicit(&split_small, memory_order_relaxed); }

void nnrt_parallel_for_small(NnrtKernelFn fn, void **slots, int64_t n) {
    if (nnrt_splits_small())
        nnrt_parallel_for(fn, slots, n);
    else
        fn(slots, 0, n);
}
