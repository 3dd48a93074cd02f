/* test_pool.c — the runtime's thread pool (runtime/pool.c): every index of
 * every job runs exactly once, whatever the job's size against the thread
 * count, over many jobs in a row (the generations), and when one thread is
 * slow the others take its home range's indices. A small job is split, or
 * run on the caller in one call, as nnrt_set_split_small says.
 *
 * Three threads by default (argument: another count), so the home ranges are
 * uneven for most n. */
#include "nnrt.h"
#include "check.h"

#include <stdatomic.h>
#include <stdlib.h>
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
    return check_summary();
}
