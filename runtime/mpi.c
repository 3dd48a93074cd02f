/* mpi.c — data-parallel training's collectives, over MPI (Open MPI).
 *
 * Under `mpirun -np N nnc ...` every rank runs the whole program on the
 * whole data; the trainer (train.c) gives each rank its slice of every
 * global batch and sums the gradients here between the gradient step and
 * the update step, so every rank applies the same update to the same
 * weights. This file is the only one that sees MPI: built without it
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

static bool launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

#ifdef NNC_MPI
#include <mpi.h>

static int rank, size = 1;
static bool active;

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

void nnrt_mpi_bcast(void *p, size_t bytes) {
    for (size_t i = 0; active && size > 1 && i < bytes; i += CHUNK) {
        size_t k = bytes - i < CHUNK ? bytes - i : CHUNK;
        MPI_Bcast((char *)p + i, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
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
#endif

bool nnrt_mpi_active(void) { return active; }
int nnrt_mpi_rank(void) { return rank; }
int nnrt_mpi_size(void) { return size; }
