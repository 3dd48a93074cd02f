/* mpi.c — data-parallel training's collectives, over MPI (Open MPI).
 *
 * Under `mpirun -np N nnc ...` every rank runs the whole program on the
 * whole data; the trainer (train.c) gives each rank its slice of every
 * global batch, and the training step itself all-reduces each gradient
 * before its update (the IR's allreduce nodes call nnrt_allreduce), so
 * every rank applies the same update to the same weights.
 *
 * Overlap: the backward pass computes the last layer's gradients first,
 * and the schedule groups them, in that order, in buckets (fuse.c's
 * schedule_buckets: the biases and small layers together, a large weight
 * matrix alone); each bucket is handed to MPI as one non-blocking
 * all-reduce (MPI_Iallreduce) as soon as its last gradient is complete,
 * and the step waits for them (nnrt_allreduce_wait) only before the first
 * kernel that reads one: the latencies of the first overlap the
 * computation of the next, and small gradients share one.
 *
 * This file is the only one that sees MPI: built without it
 * (CMake's NNC_MPI off), a process is rank 0 of 1 and every collective is
 * the identity, so the trainer has one code path.
 *
 * MPI is started only when a launcher started the process (Open MPI's
 * mpirun sets OMPI_COMM_WORLD_SIZE; PMI_SIZE, PMIX_RANK: other launchers):
 * MPI_Init in a plain `nnc` would be a singleton that costs start-up time
 * and a daemon. A rank that fails stops every rank (MPI_Abort), so none
 * waits for ever in a collective the failed one will never enter.
 */
#include "nnrt.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

#ifdef NNC_MPI
#include <mpi.h>

static int rank, size = 1;
static bool active;
/* The step's global batch (nnrt_mpi_begin_step) and the all-reduces it has
 * started and not yet waited for. */
static size_t batch = 1;
enum { MAX_PENDING = 256 }; /* more: the oldest are waited for first */
static MPI_Request pending[MAX_PENDING];
static int npending;

/* dst = src n / batch: this rank's mean gradient over its n samples
 * weighed by its share of the global batch, so that the sum over the ranks
 * is the batch's mean. A rank without samples (n = 0: more ranks than the
 * last batch has samples) adds zeros, whatever its step made of 0 / 0. */
static void scale(void *dst, const void *src, int64_t elems, int64_t n, int32_t dtype_bytes) {
    double share = (double)n / (double)batch;
    if (dtype_bytes == 4) {
        float *d = dst;
        const float *x = src;
        for (int64_t i = 0; i < elems; i++)
            d[i] = n ? x[i] * (float)share : 0;
    } else {
        double *d = dst;
        const double *x = src;
        for (int64_t i = 0; i < elems; i++)
            d[i] = n ? x[i] * share : 0;
    }
}

bool nnrt_mpi_init(int *argc, char ***argv, char *err, size_t errlen) {
    if (!launched())
        return true;
    int provided;
    /* FUNNELED: the pool's threads never call MPI, the main thread does. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return nnrt_fail(err, errlen, "MPI_Init failed");
    active = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* mpirun merges the ranks' standard error: a message written in pieces
     * would interleave with another rank's. Buffered, each rank's comes out
     * whole when it ends (nnrt_mpi_finish flushes before MPI_Abort). */
    if (size > 1)
        setvbuf(stderr, NULL, _IOFBF, 1 << 16);
    return true;
}

void nnrt_mpi_finish(int status) {
    if (!active)
        return;
    fflush(NULL);
    if (status != 0 && size > 1)
        MPI_Abort(MPI_COMM_WORLD, status); /* the other ranks may be waiting in a collective */
    MPI_Finalize();
}

/* MPI counts are ints: a larger buffer goes in pieces. */
enum { CHUNK = INT_MAX / 8 };

void nnrt_mpi_sum(void *p, size_t n, int dtype_bytes) {
    MPI_Datatype t = dtype_bytes == 4 ? MPI_FLOAT : MPI_DOUBLE;
    for (size_t i = 0; active && size > 1 && i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, (char *)p + i * (size_t)dtype_bytes, (int)k, t, MPI_SUM, MPI_COMM_WORLD);
    }
}

void nnrt_allreduce(void *dst, const void *src, int64_t elems, int64_t n, int32_t dtype_bytes, void *bucket,
                    int64_t bucket_elems) {
    if (!active) { /* one process: the identity (gradcheck's) */
        memcpy(dst, src, (size_t)elems * (size_t)dtype_bytes);
        return;
    }
    scale(dst, src, elems, n, dtype_bytes);
    if (size == 1)
        return;
    MPI_Datatype t = dtype_bytes == 4 ? MPI_FLOAT : MPI_DOUBLE;
    for (int64_t i = 0; i < bucket_elems; i += CHUNK) { /* none but for the bucket's last */
        int64_t k = bucket_elems - i < CHUNK ? bucket_elems - i : CHUNK;
        if (npending == MAX_PENDING)
            nnrt_allreduce_wait();
        MPI_Iallreduce(MPI_IN_PLACE, (char *)bucket + i * dtype_bytes, (int)k, t, MPI_SUM, MPI_COMM_WORLD,
                       &pending[npending++]);
    }
    /* Open MPI moves a collective on only inside MPI calls: give the ones
     * already started a turn while the backward pass goes on. */
    int done;
    MPI_Testall(npending, pending, &done, MPI_STATUSES_IGNORE);
}

void nnrt_allreduce_wait(void) {
    if (npending)
        MPI_Waitall(npending, pending, MPI_STATUSES_IGNORE);
    npending = 0;
}

void nnrt_mpi_begin_step(size_t global_batch, size_t first) {
    batch = global_batch;
    nnrt_mpi_first_sample = (int64_t)first;
}

void nnrt_mpi_bcast(void *p, size_t bytes) {
    for (size_t i = 0; active && size > 1 && i < bytes; i += CHUNK) {
        size_t k = bytes - i < CHUNK ? bytes - i : CHUNK;
        MPI_Bcast((char *)p + i, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
}

/* The length, then pieces of up to a MiB: rank 0 holds one piece at a time. */
enum { PIECE = 1 << 20, TAG_BYTES = 22 };

bool nnrt_mpi_write_ranks(FILE *out, const void *bytes, size_t n, char *err, size_t errlen) {
    if (!active || size == 1)
        return true;
    if (rank > 0) {
        uint64_t len = n;
        MPI_Send(&len, 1, MPI_UINT64_T, 0, TAG_BYTES, MPI_COMM_WORLD);
        for (size_t i = 0; i < n; i += PIECE)
            MPI_Send((const char *)bytes + i, n - i < PIECE ? (int)(n - i) : PIECE, MPI_BYTE, 0, TAG_BYTES,
                     MPI_COMM_WORLD);
        return true;
    }
    char *piece = malloc(PIECE);
    if (!piece) /* the others wait in MPI_Send: the failure's MPI_Abort ends them */
        return nnrt_fail(err, errlen, "out of memory for the other ranks' output");
    for (int r = 1; r < size; r++) {
        uint64_t len;
        MPI_Recv(&len, 1, MPI_UINT64_T, r, TAG_BYTES, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        for (uint64_t i = 0; i < len; i += PIECE) {
            int k = len - i < PIECE ? (int)(len - i) : PIECE;
            MPI_Recv(piece, k, MPI_BYTE, r, TAG_BYTES, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            fwrite(piece, 1, (size_t)k, out); /* a failure shows in ferror(out), checked by the caller */
        }
    }
    free(piece);
    return true;
}
#else
static const int rank, size = 1;
static const bool active;

bool nnrt_mpi_init(int *argc, char ***argv, char *err, size_t errlen) {
    (void)argc, (void)argv;
    if (launched()) /* N copies training alone, each writing the same files: refused */
        return nnrt_fail(err, errlen, "started by an MPI launcher, but this nnc was built without MPI "
                                      "(install libopenmpi-dev and rebuild: CMake's NNC_MPI)");
    return true;
}

void nnrt_mpi_finish(int status) { (void)status; }
void nnrt_mpi_sum(void *p, size_t n, int dtype_bytes) { (void)p, (void)n, (void)dtype_bytes; }
void nnrt_mpi_bcast(void *p, size_t bytes) { (void)p, (void)bytes; }
void nnrt_mpi_begin_step(size_t global_batch, size_t first) { (void)global_batch, (void)first; }
bool nnrt_mpi_write_ranks(FILE *out, const void *bytes, size_t n, char *err, size_t errlen) {
    (void)out, (void)bytes, (void)n, (void)err, (void)errlen;
    return true;
}
void nnrt_allreduce(void *dst, const void *src, int64_t elems, int64_t n, int32_t dtype_bytes, void *bucket,
                    int64_t bucket_elems) {
    (void)n, (void)bucket, (void)bucket_elems;
    memcpy(dst, src, (size_t)elems * (size_t)dtype_bytes); /* one process: the identity (gradcheck's) */
}
void nnrt_allreduce_wait(void) {}
#endif

int64_t nnrt_mpi_first_sample;

bool nnrt_mpi_active(void) { return active; }
int nnrt_mpi_rank(void) { return rank; }
int nnrt_mpi_size(void) { return size; }

