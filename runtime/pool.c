/* pool.c — the one persistent thread pool, owned by the runtime.
 *
 * JIT-compiled kernels call nnrt_parallel_for(fn, slots, n) to run
 * fn(slots, begin, end) over [0, n) on every core. The range is cut into
 * one contiguous chunk per thread, the same cut for the same n and thread
 * count, and every index is computed the same way whichever thread runs it,
 * so results do not depend on the number of threads.
 *
 * The pool is process-wide state, the only such state of the runtime: one
 * pool, so two never compete for the cores. It starts on first use with
 * NNC_THREADS threads, else one per available core (nnrt_set_threads
 * changes that before first use). Workers spin briefly on a generation
 * counter before sleeping on a condition variable: a training step calls
 * the pool a few times per millisecond, and waking from a futex costs more
 * than the work of a small kernel.
 */
#define _GNU_SOURCE
#include "nnrt.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_THREADS = 256, SPIN = 1 << 14 };

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() ((void)0)
#endif

typedef struct Pool {
    int threads; /* including the caller */
    pthread_t tid[MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    atomic_uint generation; /* bumped once per job */
    atomic_int pending;     /* workers still running the job */
    /* The job, written before generation is bumped. */
    NnrtKernelFn fn;
    void **slots;
    int64_t n;
} Pool;

static Pool pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int requested_threads;

static void chunk(int64_t n, int threads, int t, int64_t *begin, int64_t *end) {
    *begin = n * t / threads;
    *end = n * (t + 1) / threads;
}

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        for (int i = 0; (g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen && i < SPIN; i++)
            cpu_relax();
        if (g == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((g = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = g;
        int64_t begin, end;
        chunk(pool.n, pool.threads, t, &begin, &end);
        if (begin < end)
            pool.fn(pool.slots, begin, end);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
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
    pthread_cond_init(&pool.done, NULL);
    pool.threads = 1;
    /* Workers run for the life of the process; a thread that cannot be
     * started just leaves the pool smaller. */
    for (int t = 1; t < n; t++) {
        if (pthread_create(&pool.tid[t], NULL, worker, (void *)(intptr_t)t) != 0)
            break;
        pthread_detach(pool.tid[t]);
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
    if (pool.threads == 1 || n <= 1) {
        fn(slots, 0, n);
        return;
    }
    pool.fn = fn;
    pool.slots = slots;
    pool.n = n;
    atomic_store_explicit(&pool.pending, pool.threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);

    int64_t begin, end;
    chunk(n, pool.threads, 0, &begin, &end);
    if (begin < end)
        fn(slots, begin, end);
    for (int i = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) && i < SPIN; i++)
        cpu_relax();
    if (atomic_load_explicit(&pool.pending, memory_order_acquire)) {
        pthread_mutex_lock(&pool.lock);
        while (atomic_load_explicit(&pool.pending, memory_order_acquire))
            pthread_cond_wait(&pool.done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
}
