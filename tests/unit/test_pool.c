/* test_pool.c — the runtime's thread pool (runtime/pool.c): every index of
 * every job runs exactly once, whatever the job's size against the thread
 * count, over many jobs in a row (the generations), and when one thread is
 * slow the others take its home range's indices. A small job is split, or
 * run on the caller in one call, as nnrt_set_split_small says.
 *
 * Under nnrt_flush_denormals every thread computes a denormal product as
 * zero, the workers taking the caller's mode with each job; after
 * nnrt_restore_fp, every thread computes it.
 *
 * Three threads by default (argument: another count), so the home ranges are
 * uneven for most n. */
#include "nnrt.h"
#include "check.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_N = 1000 };

typedef struct Job {
    atomic_int runs[MAX_N];
    atomic_int wrong_range; /* calls not of one index */
    int slow_index;         /* sleeps 2 ms; -1: none */
} Job;

static void record(void **slots, int64_t begin, int64_t end) {
    Job *j = slots[0];
    if (end != begin + 1)
        atomic_fetch_add(&j->wrong_range, 1);
    if (begin == j->slow_index)
        nanosleep(&(struct timespec){0, 2000000}, NULL);
    for (int64_t i = begin; i < end && i < MAX_N; i++)
        atomic_fetch_add(&j->runs[i], 1);
}

/* tiny[i] = 1e-30 * 1e-10, a denormal (1e-40) unless flushed to zero;
 * slowly, so that every thread takes indices. */
static void tiny_product(void **slots, int64_t begin, int64_t end) {
    volatile float a = 1e-30f, b = 1e-10f;
    float *out = slots[0];
    for (int64_t i = begin; i < end; i++) {
        nanosleep(&(struct timespec){0, 100000}, NULL);
        out[i] = a * b;
    }
}

/* How many of n indices' products were flushed to zero: their bits (a
 * float comparison would read a denormal as zero under DAZ). */
static int flushed(int64_t n) {
    static float out[64];
    nnrt_parallel_for(tiny_product, (void *[]){out}, n);
    int zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &out[i], sizeof bits);
        zeros += bits == 0;
    }
    return zeros;
}

/* Runs a job of n indices; true if each ran once and nothing else ran. */
static bool run_once_each(Job *j, int64_t n, int slow) {
    for (int i = 0; i < MAX_N; i++)
        atomic_store(&j->runs[i], 0);
    atomic_store(&j->wrong_range, 0);
    j->slow_index = slow;
    void *slots[1] = {j};
    nnrt_parallel_for(record, slots, n);
    bool ok = true;
    for (int64_t i = 0; i < MAX_N; i++)
        ok &= atomic_load(&j->runs[i]) == (i < n);
    /* One thread runs the whole range at once. */
    return ok && (nnrt_threads() == 1 || n <= 1 || atomic_load(&j->wrong_range) == 0);
}

int main(int argc, char **argv) {
    nnrt_set_threads(argc > 1 ? atoi(argv[1]) : 3);
    static Job j;
    CHECK(nnrt_threads() == (argc > 1 ? atoi(argv[1]) : 3));
    /* Fewer, as many and more indices than threads. */
    for (int64_t n = 0; n <= 10; n++)
        CHECK(run_once_each(&j, n, -1));
    CHECK(run_once_each(&j, MAX_N, -1));
    /* Many small jobs in a row: a worker still finishing one job's index
     * while the next starts must not run the new job's indices twice. */
    int bad = 0;
    for (int k = 0; k < 20000; k++)
        bad += !run_once_each(&j, 2 + k % 7, -1);
    CHECK(bad == 0);
    /* A slow index in the caller's and in a worker's home range: the others
     * take the rest. */
    CHECK(run_once_each(&j, 12, 0));
    CHECK(run_once_each(&j, 12, 11));
    for (int split = 0; split < 2; split++) {
        nnrt_set_split_small(split);
        for (int i = 0; i < MAX_N; i++)
            atomic_store(&j.runs[i], 0);
        atomic_store(&j.wrong_range, 0);
        j.slow_index = -1;
        nnrt_parallel_for_small(record, (void *[]){&j}, 12);
        int once = 0;
        for (int i = 0; i < 12; i++)
            once += atomic_load(&j.runs[i]) == 1;
        CHECK(once == 12 && atomic_load(&j.wrong_range) == (split && nnrt_threads() > 1 ? 0 : 1));
    }
#if defined(__x86_64__) || defined(__i386__)
    CHECK(flushed(64) == 0);
    unsigned fp = nnrt_flush_denormals();
    CHECK(flushed(64) == 64);
    nnrt_restore_fp(fp);
    CHECK(flushed(64) == 0);
#endif
    return check_summary();
}
