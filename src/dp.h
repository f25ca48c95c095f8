/* Data parallelism: several Vulkan devices in this process (config `devices`) and the devices of the other ranks of
 * an MPI job each run a share of the rows of every micro-batch; their flat LoRA gradients, losses and token counts
 * are summed in one fixed order (device by device, rank by rank) and one AdamW update is applied, by the first
 * device of rank 0, whose parameters then go to every other device. With one device and one process it is exactly
 * the single-device path (no host round trip). */
#ifndef VKLORA_DP_H
#define VKLORA_DP_H

#include <stdio.h>

#include "train.h"
#include "vk/vk.h"
#include "vklora/data.h"

typedef struct vkl_dp_worker {
    vkl_vk *vk;
    vkl_model *m;          /* the caller's model (worker 0) or a replica sharing its host weights */
    vkl_train_dev *dev;
    uint32_t b0, B;        /* its sequences [b0, b0 + B) of every micro-batch */
    uint32_t l0, l1;       /* its layers [l0, l1): all, or its range of a layer split */
    double nll;            /* its NLL sum over the micro-batches of the current step (or of an evaluation) */
    double busy_s;         /* seconds of its last micro-step (bench) */
    vkl_status st;         /* of its last threaded call */
    vkl_err err;
} vkl_dp_worker;

typedef struct vkl_dp {
    int n;                 /* devices of this process */
    vkl_dp_worker w[VKL_MAX_DEVICES];
    int rank, size;        /* MPI rank and job size (0, 1 without MPI) */
    int first;             /* global index of w[0] among the devices of the whole job (rank by rank) */
    int total;             /* devices of the whole job */
    uint32_t *rows;        /* [total] sequences of each device of the job */
    uint32_t *rank_devices; /* [size] devices of each rank */
    uint32_t B, T;         /* the whole micro-batch */
    uint64_t n_params;
    float *gbuf;           /* host gradients: n devices x chunk floats */
    float *gall, *sum;     /* rank 0: every device's chunk, and the running sum (chunk floats) */
    float *params;         /* n_params */
    bool shares_measured;
    bool split;            /* layer_split: the devices of this process hold consecutive ranges of layers and run
                              one after another on the same rows; the residual and its gradient cross through xb */
    float *xb[2];          /* host residual / gradient buffers between stages (rows x n_embd floats each) */
} vkl_dp;

/* Join the MPI job if launched by one (vkl_dist_init) and open this process's first device of `c` (devices[0],
 * else device): the caller uploads its model there and owns both (destroys the vk after its model). */
vkl_status vkl_dp_open_first(const vkl_config *c, vkl_vk **vk, vkl_err *err);
/* Open the other devices of `c` and upload a replica of `m` (already on vk0) to each, split B over the devices of
 * the whole job (c->device_shares, else even for identical devices and by a measured speed otherwise; whole
 * sequences, at least one each) and create the training states. `log` (may be NULL) gets a line per device.
 * With c->layer_split, `m` is not uploaded yet: the layers are split over this process's devices (from their
 * memory, or c->layer_split's shares), each device gets only its stage's weights (see vkl_dp_caller_uploads), the
 * rows of each micro-batch are split over the MPI ranks only, and the plan is logged per device. */
vkl_status vkl_dp_create(const vkl_config *c, vkl_vk *vk0, vkl_model *m, const vkl_lora *l, uint32_t B, uint32_t T,
                         vkl_grad_ckpt ckpt, FILE *log, vkl_dp **out, vkl_err *err);
/* Whether the caller uploads its model to the first device before vkl_dp_create (not with layer_split). */
static inline bool vkl_dp_caller_uploads(const vkl_config *c) { return c->n_layer_split == 0; }
/* Everything but the first device's vk (the caller's). */
void vkl_dp_destroy(vkl_dp *dp);
/* The device that runs the optimizer and holds the moments (rank 0's first; on other ranks their first). */
static inline vkl_train_dev *vkl_dp_primary(vkl_dp *dp) { return dp->w[0].dev; }

/* Upload l->params to every device, moments (NULL = zeros) to the primary. */
vkl_status vkl_dp_load_params(vkl_dp *dp, const float *m1, const float *m2, vkl_err *err);
vkl_status vkl_dp_zero_grads(vkl_dp *dp, vkl_err *err);
/* One micro-batch (all B rows of `b`; each device runs its rows), dropout stream as vkl_train_set_dropout's.
 * Each device's NLL adds to its own sum. */
vkl_status vkl_dp_micro_step(vkl_dp *dp, const vkl_batch *b, float grad_scale, float dropout_p, uint64_t seed,
                             uint64_t stream, vkl_err *err);
/* Device i alone runs its rows of the micro-batch (bench: its speed without the others); seconds in *secs. */
vkl_status vkl_dp_micro_step_alone(vkl_dp *dp, int i, const vkl_batch *b, float grad_scale, double *secs,
                                   vkl_err *err);
/* Forward only, adding each device's NLL of its rows to its sum (start with vkl_dp_reset_nll). */
vkl_status vkl_dp_eval_batch(vkl_dp *dp, const vkl_batch *b, vkl_err *err);
void vkl_dp_reset_nll(vkl_dp *dp);
/* The NLL sums of every device of the job, added device by device, rank by rank; the same value on every rank. */
vkl_status vkl_dp_nll(vkl_dp *dp, double *nll, vkl_err *err);
/* Sum the gradients (fixed order), apply the optimizer on the primary, give every device the new parameters.
 * *stop in: this rank wants to stop after this step; out: some rank does (the same on every rank). grad_norm is the
 * primary's (rank 0's value on every rank). */
vkl_status vkl_dp_optimizer_step(vkl_dp *dp, const vkl_config *c, int64_t step, double lr, double *grad_norm,
                                 bool *stop, vkl_err *err);
/* Peak device bytes over this process's devices. */
uint64_t vkl_dp_peak_bytes(const vkl_dp *dp);

#endif
