/* MPI processes of one job (see dist.h). Every collective here has a fixed order (gathers into rank 0, broadcasts
 * from it): reductions are summed by the caller rank by rank, never by MPI_Allreduce, whose order is the
 * implementation's, so the same job run twice gives the same bytes. */
#include "dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if VKL_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static bool g_init;

/* The size an MPI launcher announced in the environment, or 0 when the process was not started by one. */
static int launcher_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

bool vkl_dist_built(void) { return VKL_HAVE_MPI; }
int vkl_dist_rank(void) { return g_rank; }
int vkl_dist_size(void) { return g_size; }

#if VKL_HAVE_MPI
static bool g_mpi;

static void finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
}

static vkl_status mpi_fail(int rc, const char *what, vkl_err *err) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return vkl_err_set(err, VKL_ERR_RUNTIME, "mpi: %s failed on rank %d of %d: %s (another rank may have failed)",
                       what, g_rank, g_size, msg);
}
#define MPI_TRY(call, what)                                                                                            \
    do {                                                                                                               \
        int rc_ = (call);                                                                                              \
        if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, what, err);                                                       \
    } while (0)
#endif

vkl_status vkl_dist_init(vkl_err *err) {
    if (g_init) return VKL_OK;
    int n = launcher_size();
#if VKL_HAVE_MPI
    if (n > 0) {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited && MPI_Init(NULL, NULL) != MPI_SUCCESS)
            return vkl_err_set(err, VKL_ERR_RUNTIME, "mpi: MPI_Init failed");
        /* errors come back to us: a rank that fails says why and ends the job (vkl_dist_abort) */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
        g_mpi = true;
        if (!inited) atexit(finalize);
    }
#else
    if (n > 1)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "this vklora was built without MPI, so it cannot run as %d processes under mpirun: install "
                           "libopenmpi-dev and rebuild (meson -Dmpi=enabled), or run one process (\"devices\" uses "
                           "several devices in one process)", n);
#endif
    g_init = true;
    return VKL_OK;
}

vkl_status vkl_dist_allgather_u32(const uint32_t *in, size_t n, uint32_t *out, vkl_err *err) {
#if VKL_HAVE_MPI
    if (g_mpi && g_size > 1) {
        MPI_TRY(MPI_Allgather(in, (int)n, MPI_UINT32_T, out, (int)n, MPI_UINT32_T, MPI_COMM_WORLD), "MPI_Allgather");
        return VKL_OK;
    }
#endif
    (void)err;
    memcpy(out, in, n * sizeof(*in));
    return VKL_OK;
}

vkl_status vkl_dist_allgather_f64(const double *in, size_t n, double *out, vkl_err *err) {
#if VKL_HAVE_MPI
    if (g_mpi && g_size > 1) {
        MPI_TRY(MPI_Allgather(in, (int)n, MPI_DOUBLE, out, (int)n, MPI_DOUBLE, MPI_COMM_WORLD), "MPI_Allgather");
        return VKL_OK;
    }
#endif
    (void)err;
    memcpy(out, in, n * sizeof(*in));
    return VKL_OK;
}

vkl_status vkl_dist_gather_f32(const float *in, const size_t *counts, float *out, vkl_err *err) {
#if VKL_HAVE_MPI
    if (g_mpi && g_size > 1) {
        int *cnt = NULL, *disp = NULL;
        if (g_rank == 0) {
            cnt = vkl_calloc((size_t)g_size, sizeof(int));
            disp = vkl_calloc((size_t)g_size, sizeof(int));
            size_t at = 0;
            for (int r = 0; r < g_size; r++) {
                if (counts[r] > INT_MAX || at > INT_MAX) {
                    free(cnt);
                    free(disp);
                    return vkl_err_set(err, VKL_ERR_RUNTIME, "mpi: a gather of %zu floats is too large", at);
                }
                cnt[r] = (int)counts[r];
                disp[r] = (int)at;
                at += counts[r];
            }
        }
        int rc = MPI_Gatherv(in, (int)counts[g_rank], MPI_FLOAT, out, cnt, disp, MPI_FLOAT, 0, MPI_COMM_WORLD);
        free(cnt);
        free(disp);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Gatherv", err);
        return VKL_OK;
    }
#endif
    (void)err;
    memcpy(out, in, counts[0] * sizeof(float));
    return VKL_OK;
}

vkl_status vkl_dist_bcast(void *p, size_t bytes, vkl_err *err) {
#if VKL_HAVE_MPI
    if (g_mpi && g_size > 1) {
        for (size_t at = 0; at < bytes;) { /* MPI counts are ints */
            size_t n = bytes - at < (1u << 30) ? bytes - at : (1u << 30);
            MPI_TRY(MPI_Bcast((char *)p + at, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
            at += n;
        }
        return VKL_OK;
    }
#endif
    (void)p, (void)bytes, (void)err;
    return VKL_OK;
}

vkl_status vkl_dist_barrier(vkl_err *err) {
#if VKL_HAVE_MPI
    if (g_mpi && g_size > 1) MPI_TRY(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
    (void)err;
    return VKL_OK;
}

_Noreturn void vkl_dist_abort(int code) {
    fflush(stdout);
    fflush(stderr);
#if VKL_HAVE_MPI
    if (g_mpi && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}
