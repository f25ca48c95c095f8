/* The processes of an MPI job (`mpirun -np N vklora train CFG`): rank, size, and the few collectives data
 * parallelism needs (fixed-order gathers, broadcasts from rank 0). Without MPI in the build it is one process, and
 * a start under an MPI launcher is refused with a message. */
#ifndef VKLORA_DIST_H
#define VKLORA_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vklora/common.h"

/* Join the job when the process was started by an MPI launcher (OpenMPI, MPICH/Hydra or PMIx environment), else
 * stay a single process. Idempotent. An MPI launch with more than one process in a build without MPI is an input
 * error that says how to build with it. */
vkl_status vkl_dist_init(vkl_err *err);
int vkl_dist_rank(void); /* 0 in a single process */
int vkl_dist_size(void); /* 1 in a single process */
/* Whether this build has MPI. */
bool vkl_dist_built(void);

/* Every rank's n ints, rank by rank, into out (size * n ints) on every rank. */
vkl_status vkl_dist_allgather_u32(const uint32_t *in, size_t n, uint32_t *out, vkl_err *err);
/* The same for doubles. */
vkl_status vkl_dist_allgather_f64(const double *in, size_t n, double *out, vkl_err *err);
/* Rank r's counts[r] floats of `in`, rank by rank, into out on rank 0 (out ignored elsewhere). */
vkl_status vkl_dist_gather_f32(const float *in, const size_t *counts, float *out, vkl_err *err);
/* Rank 0's `bytes` bytes at p, to every rank. */
vkl_status vkl_dist_bcast(void *p, size_t bytes, vkl_err *err);
vkl_status vkl_dist_barrier(vkl_err *err);
/* End every process of the job at once with this exit code (a failed rank must not leave the others waiting in a
 * collective). In a single process: exit(code). */
_Noreturn void vkl_dist_abort(int code);

#endif
