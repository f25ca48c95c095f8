/* The training step on the device: the LoRA forward that keeps what the backward needs (all activations, or one
 * tensor per layer with recomputation), the loss and its gradient, the backward through every layer into the LoRA
 * gradients, and the AdamW update with global-norm clipping. The host loop around it lives in src/trainer.c. */
#ifndef VKLORA_TRAIN_H
#define VKLORA_TRAIN_H

#include "ops/matmul.h"
#include "ops/nn.h"
#include "ops/optim.h"
#include "vklora/config.h"
#include "vklora/lora.h"
#include "vklora/model.h"

/* Activations of one layer that the backward reads (shapes for R = B*T rows). */
typedef struct vkl_layer_acts {
    vkl_buffer xn1;   /* (R, C) attention-norm output */
    vkl_buffer rstd1; /* (R) */
    vkl_buffer q;     /* (R, H*D) after RoPE */
    vkl_buffer k, v;  /* (R, KVH*D), k after RoPE */
    vkl_buffer ao;    /* (R, H*D) attention output */
    vkl_buffer lse;   /* (B, H, T) */
    vkl_buffer mid;   /* (R, C) residual after attention */
    vkl_buffer xn2;   /* (R, C) */
    vkl_buffer rstd2; /* (R) */
    vkl_buffer g, u;  /* (R, F) gate and up projections (before SwiGLU) */
    vkl_buffer xa;    /* (7, R, r) x·A^T of each adapted projection, for the B gradient */
    vkl_buffer qp, kp;        /* (R, H*D) (R, KVH*D) q and k before their norms (qk_norm) */
    vkl_buffer rstdq, rstdk;  /* (R*H) (R*KVH) */
    vkl_buffer ob, rstdo;     /* (R, C) attention output before its post-norm, and its rstd (post_norms) */
    vkl_buffer fb, rstdf;     /* (R, C) FFN output before its post-norm, and its rstd */
} vkl_layer_acts;

typedef struct vkl_train_dev {
    vkl_vk *vk;
    vkl_model *m;
    const vkl_lora *lora;
    vkl_op_cache cache;
    uint32_t B, T, R;
    uint32_t l0, l1;         /* its layers [l0, l1): all of them, or a stage of a layer split over devices */
    vkl_grad_ckpt ckpt;
    uint32_t logit_rows;
    /* LoRA vectors, n_params floats each, in vkl_lora's flat layout */
    vkl_buffer lp, lg, lm1, lm2;
    vkl_buffer hyper;        /* vkl_adamw_hyper of the A/B region, then (at +64) of the biases (no decay) */
    vkl_buffer ones;         /* R floats of 1.0, for bias gradients */
    vkl_buffer norm_scratch; /* sumsq partials */
    /* inputs: tokens, pos, seg, targets, each R int32 at byte offsets 0, R*4, R*8, R*12 */
    vkl_buffer ids;
    vkl_buffer *res;         /* residual streams (R, C): res[l - l0] is layer l's input; l1 - l0 + 1 of them, or
                                with "unsloth" a ring of 2 on the device (slot l % 2) ... */
    vkl_buffer *res_host;    /* ... and the l1 - l0 + 1 layer inputs in host memory (NULL otherwise) */
    VkEvent res_event[2];    /* signalled when the asynchronous copy out of ring slot i is done */
    bool res_event_set[2];   /* recorded a copy whose event nobody waited for yet */
    vkl_layer_acts *acts;    /* l1 - l0 sets without checkpointing, 1 shared set with it */
    uint32_t n_acts;
    vkl_buffer xnf, rstdf;   /* final norm output (R, C) and (R) */
    /* backward scratch */
    vkl_buffer dres, dxn, dq, dk, dv, dao, dg, du, h, dxa, logits, nll;
    vkl_buffer delta; /* attention backward's Di = dOi.Oi, lse's shape */
    vkl_buffer dqn, dkn;     /* (R, H*D) (R, KVH*D): gradients before the q/k norms (qk_norm) */
    vkl_buffer pn, dpn;      /* (R, C): a post-norm's output, and its input's gradient (post_norms) */
    vkl_buffer dlogits;      /* (logit_rows, V): gradient of capped logits (final_softcap) */
    vkl_buffer tfac;         /* (R) attention temperature of each row's q (attn_temp) */
    bool has_tfac;           /* this batch has a factor != 1 */
    vkl_buffer rope_tab;     /* two packed frequency tables: global layers, local layers */
    vkl_rope_params rope[2];
    uint64_t planned_bytes;
    /* LoRA dropout: probability, seed, and the stream of the current micro-batch (set per micro-batch so that a
     * step's masks are a pure function of seed, step, micro-batch, layer and module). Eval passes use none. */
    float dropout_p;
    uint64_t dropout_seed, dropout_stream;
    uint32_t row_base;       /* first token row of this state's rows inside the whole micro-batch (several devices
                                each run a share of it): dropout masks are drawn by that row, so they do not depend
                                on the split. 0 for one device. */
    bool train_pass; /* inside vkl_train_micro_step */
} vkl_train_dev;

/* Device bytes the training state needs for B x T tokens in a checkpointing mode (weights not included): for all
 * layers, or for the stage of layers [l0, l1) of a layer split (the head and its logits only on the last). */
uint64_t vkl_train_plan_bytes(const vkl_hparams *hp, const vkl_lora *l, uint32_t B, uint32_t T, vkl_grad_ckpt ckpt);
uint64_t vkl_train_plan_bytes_layers(const vkl_hparams *hp, const vkl_lora *l, uint32_t B, uint32_t T,
                                     vkl_grad_ckpt ckpt, uint32_t l0, uint32_t l1);

vkl_status vkl_train_dev_create(vkl_vk *vk, vkl_model *m, const vkl_lora *l, uint32_t B, uint32_t T,
                                vkl_grad_ckpt ckpt, vkl_train_dev **out, vkl_err *err);
/* Layer split: a state for layers [l0, l1) only (a stage). Its model needs the weights of those layers, plus the
 * embedding on the first stage and the final norm and head on the last (vkl_model_upload_layers). */
vkl_status vkl_train_dev_create_layers(vkl_vk *vk, vkl_model *m, const vkl_lora *l, uint32_t B, uint32_t T,
                                       vkl_grad_ckpt ckpt, uint32_t l0, uint32_t l1, vkl_train_dev **out,
                                       vkl_err *err);
void vkl_train_dev_destroy(vkl_train_dev *t);

/* Upload the host parameter vector (l->params) and zero gradients and moments. */
vkl_status vkl_train_dev_load_params(vkl_train_dev *t, const float *m1, const float *m2, vkl_err *err);
/* Download parameters (and optionally the moments / gradients) to host arrays of n_params floats. */
vkl_status vkl_train_dev_read(vkl_train_dev *t, float *params, float *m1, float *m2, float *grads, vkl_err *err);
/* Upload parameters and/or gradients (n_params floats each; NULL leaves that vector as it is): data parallelism
 * writes the gradient summed over devices back before the optimizer step, and the updated parameters to the
 * devices that did not run it. */
vkl_status vkl_train_dev_write(vkl_train_dev *t, const float *params, const float *grads, vkl_err *err);

/* One micro-batch: forward, loss, backward; LoRA gradients ACCUMULATE (call vkl_train_zero_grads per step).
 * tokens/pos/seg/targets: (B, T) int32 (targets -1 = no loss); the loss of each target is scaled by grad_scale
 * (1 / targets in the whole accumulated step, so the step's loss is the HF mean). Returns the sum of the NLL
 * over the micro-batch's targets in *nll_sum. */
vkl_status vkl_train_micro_step(vkl_train_dev *t, const int32_t *tokens, const int32_t *pos, const int32_t *seg,
                                const int32_t *targets, float grad_scale, double *nll_sum, vkl_err *err);
/* Forward only (eval loss): sum of the NLL over the targets. */
vkl_status vkl_train_eval_batch(vkl_train_dev *t, const int32_t *tokens, const int32_t *pos, const int32_t *seg,
                                const int32_t *targets, double *nll_sum, vkl_err *err);
/* A stage's part of a micro-batch (micro_step / eval_batch are this with all layers). The first stage embeds the
 * tokens; any other reads the residual entering its first layer from x_in (R x C floats). A stage without the last
 * layer writes the residual leaving its last layer to x_out; its backward (training) comes later, from
 * vkl_train_stage_backward, with the gradient the next stage returns. The last stage computes the loss (*nll_sum,
 * 0 on the others) and with `backward` goes back through its layers at once, writing dL/d(its input residual) to
 * dx_out unless it is also the first. The LoRA gradients of the stage's layers accumulate in its own vector (the
 * other layers' entries stay zero), so the sum over stages is the whole gradient. */
vkl_status vkl_train_stage_forward(vkl_train_dev *t, const int32_t *tokens, const int32_t *pos, const int32_t *seg,
                                   const int32_t *targets, bool backward, float grad_scale, const float *x_in,
                                   float *x_out, float *dx_out, double *nll_sum, vkl_err *err);
/* Backward of a stage without the last layer: dx_in = dL/d(residual leaving its last layer); writes dL/d(residual
 * entering its first layer) to dx_out unless it is the first stage. */
vkl_status vkl_train_stage_backward(vkl_train_dev *t, const float *dx_in, float *dx_out, vkl_err *err);
vkl_status vkl_train_zero_grads(vkl_train_dev *t, vkl_err *err);
/* Dropout on the LoRA inputs from now on (p = 0: off); `stream` names the micro-batch (e.g. step * 65536 + index). */
void vkl_train_set_dropout(vkl_train_dev *t, float p, uint64_t seed, uint64_t stream);
/* Clip by global norm and apply AdamW with step number `step` (1-based) and learning rate lr; returns the
 * pre-clip gradient norm. */
vkl_status vkl_train_optimizer_step(vkl_train_dev *t, const vkl_config *c, int64_t step, double lr,
                                    double *grad_norm, vkl_err *err);

#endif
