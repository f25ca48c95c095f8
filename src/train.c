/* The LoRA training step on the device. Forward per layer (saving activations, or only the layer input when
 * checkpointing), output head in row chunks with the cross-entropy gradient, backward per layer in reverse
 * (recomputing the layer first when checkpointing), LoRA gradients accumulated across micro-batches, then the
 * global-norm clip and AdamW. Every product with a frozen weight decodes its GGUF blocks in the shader. */
#include "train.h"

#include "forward.h"

#include "ops/lora_ops.h"
#include "vklora/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

#define LOGIT_CHUNK_BYTES (64ull << 20)
/* The second AdamW parameter block (biases) sits at an offset every device accepts for a storage binding. */
#define HYPER_STRIDE 256u

/* ---- memory plan ---- */

typedef struct {
    uint64_t C, QD, KVD, F, V, r, R, BHT, RH, RKVH;
    bool qk_norm, post_norms;
} dims_t;

static dims_t dims_of(const vkl_hparams *hp, const vkl_lora *l, uint32_t B, uint32_t T) {
    dims_t d = {hp->n_embd, (uint64_t)hp->n_head * hp->head_dim, (uint64_t)hp->n_head_kv * hp->head_dim, hp->n_ff,
                hp->n_vocab, l->r, (uint64_t)B * T, (uint64_t)B * hp->n_head * T, (uint64_t)B * T * hp->n_head,
                (uint64_t)B * T * hp->n_head_kv, hp->desc->qk_norm, hp->desc->post_norms};
    return d;
}

/* Floats of each saved activation of one layer, in ACTS_LIST order; 0 for those the architecture lacks. */
static void acts_sizes(const dims_t *d, uint64_t *s) {
    uint64_t v[] = {d->R * d->C, d->R, d->R * d->QD, d->R * d->KVD, d->R * d->KVD, d->R * d->QD, d->BHT,
                    d->R * d->C, d->R * d->C, d->R, d->R * d->F, d->R * d->F, VKL_PROJ_COUNT * d->R * d->r,
                    d->qk_norm ? d->R * d->QD : 0, d->qk_norm ? d->R * d->KVD : 0, d->qk_norm ? d->RH : 0,
                    d->qk_norm ? d->RKVH : 0, d->post_norms ? d->R * d->C : 0, d->post_norms ? d->R : 0,
                    d->post_norms ? d->R * d->C : 0, d->post_norms ? d->R : 0};
    memcpy(s, v, sizeof(v));
}
#define N_ACTS 21

static uint64_t acts_floats(const dims_t *d) {
    uint64_t s[N_ACTS], f = 0;
    acts_sizes(d, s);
    for (int i = 0; i < N_ACTS; i++) f += s[i];
    return f;
}

static uint32_t logit_rows_for(uint64_t V, uint64_t R) {
    uint64_t lr = LOGIT_CHUNK_BYTES / (V * 4);
    return (uint32_t)VKL_MAX(1, VKL_MIN(lr, R));
}

uint64_t vkl_train_plan_bytes_layers(const vkl_hparams *hp, const vkl_lora *l, uint32_t B, uint32_t T,
                                     vkl_grad_ckpt ckpt, uint32_t l0, uint32_t l1) {
    dims_t d = dims_of(hp, l, B, T);
    uint64_t L = l1 - l0;
    bool last = l1 == hp->n_layer;
    uint64_t f = 4 * l->n_params;                                /* params, grads, two moments */
    f += 6 * d.R + 2 * HYPER_STRIDE / 4;                         /* ids, ones, temperature, hyper-parameters */
    f += (ckpt == VKL_GRAD_CKPT_UNSLOTH ? 2 : L + 1) * d.R * d.C; /* residual streams (host copies not counted) */
    f += (ckpt == VKL_GRAD_CKPT_OFF ? L : 1) * acts_floats(&d);  /* saved activations */
    f += d.R * (2 * d.C + 2 * d.QD + 2 * d.KVD + 3 * d.F + d.r + 1) + d.RH; /* backward scratch, Di */
    if (d.qk_norm) f += d.R * (d.QD + d.KVD);                    /* dq, dk before the q/k norms */
    if (d.post_norms) f += 2 * d.R * d.C;                        /* post-norm output and gradient */
    if (last) {
        f += d.R * (d.C + 1);                                    /* final norm */
        uint64_t lr = logit_rows_for(d.V, d.R);
        f += lr * d.V * (hp->final_softcap > 0 ? 2 : 1);         /* logits (and their gradient when capped) */
    }
    f += 2 * (uint64_t)hp->rope_dim;                             /* rope tables */
    return f * 4 + vkl_op_sumsq_scratch_bytes(NULL, l->n_params);
}

uint64_t vkl_train_plan_bytes(const vkl_hparams *hp, const vkl_lora *l, uint32_t B, uint32_t T, vkl_grad_ckpt ckpt) {
    return vkl_train_plan_bytes_layers(hp, l, B, T, ckpt, 0, hp->n_layer);
}

/* ---- creation ---- */

static vkl_status mk(vkl_train_dev *t, vkl_buffer *b, uint64_t floats, vkl_err *err) {
    return vkl_buffer_create(t->vk, VKL_MAX(floats, 1) * 4, VKL_MEM_DEVICE, b, err);
}

#define ACTS_LIST(a)                                                                                \
    {&(a)->xn1, &(a)->rstd1, &(a)->q, &(a)->k, &(a)->v, &(a)->ao, &(a)->lse, &(a)->mid, &(a)->xn2, \
     &(a)->rstd2, &(a)->g, &(a)->u, &(a)->xa, &(a)->qp, &(a)->kp, &(a)->rstdq, &(a)->rstdk, &(a)->ob, \
     &(a)->rstdo, &(a)->fb, &(a)->rstdf}

vkl_status vkl_train_dev_create(vkl_vk *vk, vkl_model *m, const vkl_lora *l, uint32_t B, uint32_t T,
                                vkl_grad_ckpt ckpt, vkl_train_dev **out, vkl_err *err) {
    return vkl_train_dev_create_layers(vk, m, l, B, T, ckpt, 0, m->hp.n_layer, out, err);
}

vkl_status vkl_train_dev_create_layers(vkl_vk *vk, vkl_model *m, const vkl_lora *l, uint32_t B, uint32_t T,
                                       vkl_grad_ckpt ckpt, uint32_t l0, uint32_t l1, vkl_train_dev **out,
                                       vkl_err *err) {
    *out = NULL;
    if (l0 >= l1 || l1 > m->hp.n_layer)
        return vkl_err_set(err, VKL_ERR_INPUT, "train: layers [%u, %u) are not a range of the model's %u", l0, l1,
                           m->hp.n_layer);
    vkl_train_dev *t = vkl_calloc(1, sizeof(*t));
    t->vk = vk;
    t->m = m;
    t->lora = l;
    t->B = B;
    t->T = T;
    t->R = B * T;
    t->ckpt = ckpt;
    t->l0 = l0;
    t->l1 = l1;
    const vkl_hparams *hp = &m->hp;
    const uint32_t nL = l1 - l0;
    const bool last = l1 == hp->n_layer;
    dims_t d = dims_of(hp, l, B, T);
    t->logit_rows = logit_rows_for(d.V, d.R);
    t->planned_bytes = vkl_train_plan_bytes_layers(hp, l, B, T, ckpt, l0, l1);
    uint64_t need = t->planned_bytes + m->device_bytes;
    if (vkl_vk_memory_budget(vk) && need > vkl_vk_memory_budget(vk)) {
        vkl_err_set(err, VKL_ERR_RUNTIME,
                    "train: %.1f MiB of device memory needed (weights %.1f MiB + training state %.1f MiB for %u x %u "
                    "tokens), the device has %.1f MiB: lower per_device_train_batch_size or max_seq_length, or set "
                    "use_gradient_checkpointing",
                    need / 1048576.0, m->device_bytes / 1048576.0, t->planned_bytes / 1048576.0, B, T,
                    vkl_vk_memory_budget(vk) / 1048576.0);
        free(t);
        return err->status;
    }
    uint64_t P = l->n_params;
    if (mk(t, &t->lp, P, err) || mk(t, &t->lg, P, err) || mk(t, &t->lm1, P, err) || mk(t, &t->lm2, P, err) ||
        mk(t, &t->hyper, 2 * HYPER_STRIDE / 4, err) || mk(t, &t->ones, d.R, err) ||
        vkl_buffer_create(vk, vkl_op_sumsq_scratch_bytes(vk, P), VKL_MEM_DEVICE, &t->norm_scratch, err) ||
        mk(t, &t->ids, 4 * d.R, err))
        goto fail;
    t->res = vkl_calloc(nL + 1, sizeof(vkl_buffer));
    uint32_t n_res = ckpt == VKL_GRAD_CKPT_UNSLOTH ? 2 : nL + 1;
    for (uint32_t i = 0; i < n_res; i++)
        if (mk(t, &t->res[i], d.R * d.C, err)) goto fail;
    if (ckpt == VKL_GRAD_CKPT_UNSLOTH) {
        VkEventCreateInfo eci = {.sType = VK_STRUCTURE_TYPE_EVENT_CREATE_INFO};
        for (int i = 0; i < 2; i++) {
            VkResult r = vkCreateEvent(vk->device, &eci, NULL, &t->res_event[i]);
            if (r != VK_SUCCESS) {
                vkl_vk_check(vk, r, "vkCreateEvent", __FILE__, __LINE__, err);
                goto fail;
            }
        }
        t->res_host = vkl_calloc(nL + 1, sizeof(vkl_buffer));
        for (uint32_t i = 0; i <= nL; i++)
            if (vkl_buffer_create(vk, d.R * d.C * 4, VKL_MEM_HOST, &t->res_host[i], err)) goto fail;
    }
    t->n_acts = ckpt == VKL_GRAD_CKPT_OFF ? nL : 1;
    t->acts = vkl_calloc(t->n_acts, sizeof(vkl_layer_acts));
    for (uint32_t i = 0; i < t->n_acts; i++) {
        vkl_buffer *l[] = ACTS_LIST(&t->acts[i]);
        uint64_t sizes[N_ACTS];
        _Static_assert(N_ACTS == VKL_ARRAY_LEN(l), "one size per activation buffer");
        acts_sizes(&d, sizes);
        for (size_t j = 0; j < VKL_ARRAY_LEN(l); j++)
            if (sizes[j] && mk(t, l[j], sizes[j], err)) goto fail;
    }
    /* the final norm, the head and the loss: on the state that holds the last layer */
    if (last && (mk(t, &t->xnf, d.R * d.C, err) || mk(t, &t->rstdf, d.R, err) ||
                 mk(t, &t->logits, (uint64_t)t->logit_rows * d.V, err) || mk(t, &t->nll, d.R, err) ||
                 (hp->final_softcap > 0 && mk(t, &t->dlogits, (uint64_t)t->logit_rows * d.V, err))))
        goto fail;
    if (mk(t, &t->dres, d.R * d.C, err) ||
        mk(t, &t->dxn, d.R * d.C, err) || mk(t, &t->dq, d.R * d.QD, err) || mk(t, &t->dk, d.R * d.KVD, err) ||
        mk(t, &t->dv, d.R * d.KVD, err) || mk(t, &t->dao, d.R * d.QD, err) || mk(t, &t->dg, d.R * d.F, err) ||
        mk(t, &t->du, d.R * d.F, err) || mk(t, &t->h, d.R * d.F, err) || mk(t, &t->dxa, d.R * d.r, err) ||
        mk(t, &t->tfac, d.R, err) || mk(t, &t->delta, d.RH, err) ||
        (d.qk_norm && (mk(t, &t->dqn, d.R * d.QD, err) || mk(t, &t->dkn, d.R * d.KVD, err))) ||
        (d.post_norms && (mk(t, &t->pn, d.R * d.C, err) || mk(t, &t->dpn, d.R * d.C, err))))
        goto fail;
    /* rope tables (Gemma 3's local layers have their own) for sequences of T tokens */
    if (vkl_rope_tables_create(vk, m, T, &t->rope_tab, t->rope, err)) goto fail;
    *out = t;
    return VKL_OK;
fail:
    vkl_train_dev_destroy(t);
    return err->status;
}

void vkl_train_dev_destroy(vkl_train_dev *t) {
    if (!t) return;
    vkl_vk *vk = t->vk;
    vkl_buffer *bs[] = {&t->lp,   &t->lg,  &t->lm1, &t->lm2, &t->hyper, &t->ones, &t->norm_scratch, &t->ids,
                        &t->xnf,  &t->rstdf, &t->dres, &t->dxn, &t->dq,  &t->dk,  &t->dv,
                        &t->dao,  &t->dg,  &t->du,  &t->h,   &t->dxa,   &t->logits, &t->nll, &t->tfac,
                        &t->dqn,  &t->dkn, &t->pn,  &t->dpn, &t->dlogits, &t->rope_tab, &t->delta};
    for (size_t i = 0; i < VKL_ARRAY_LEN(bs); i++) vkl_buffer_destroy(vk, bs[i]);
    for (uint32_t i = 0; t->res && i <= t->l1 - t->l0; i++) vkl_buffer_destroy(vk, &t->res[i]);
    for (uint32_t i = 0; t->res_host && i <= t->l1 - t->l0; i++) vkl_buffer_destroy(vk, &t->res_host[i]);
    free(t->res_host);
    for (int i = 0; i < 2; i++)
        if (t->res_event[i]) vkDestroyEvent(vk->device, t->res_event[i], NULL);
    for (uint32_t i = 0; t->acts && i < t->n_acts; i++) {
        vkl_buffer *l[] = ACTS_LIST(&t->acts[i]);
        for (size_t j = 0; j < VKL_ARRAY_LEN(l); j++) vkl_buffer_destroy(vk, l[j]);
    }
    free(t->res);
    free(t->acts);
    vkl_op_cache_destroy(vk, &t->cache);
    free(t);
}

/* ---- parameters ---- */

vkl_status vkl_train_dev_load_params(vkl_train_dev *t, const float *m1, const float *m2, vkl_err *err) {
    uint64_t bytes = t->lora->n_params * 4;
    if (vkl_buffer_fill(t->vk, &t->ones, 0, (uint64_t)t->R * 4, 0x3f800000u /* 1.0f */, err)) return err->status;
    if (vkl_buffer_upload(t->vk, &t->lp, 0, t->lora->params, bytes, err)) return err->status;
    if (m1 ? vkl_buffer_upload(t->vk, &t->lm1, 0, m1, bytes, err) : vkl_buffer_fill(t->vk, &t->lm1, 0, bytes, 0, err))
        return err->status;
    if (m2 ? vkl_buffer_upload(t->vk, &t->lm2, 0, m2, bytes, err) : vkl_buffer_fill(t->vk, &t->lm2, 0, bytes, 0, err))
        return err->status;
    return vkl_buffer_fill(t->vk, &t->lg, 0, bytes, 0, err);
}

vkl_status vkl_train_dev_read(vkl_train_dev *t, float *params, float *m1, float *m2, float *grads, vkl_err *err) {
    uint64_t bytes = t->lora->n_params * 4;
    if (params && vkl_buffer_download(t->vk, &t->lp, 0, params, bytes, err)) return err->status;
    if (m1 && vkl_buffer_download(t->vk, &t->lm1, 0, m1, bytes, err)) return err->status;
    if (m2 && vkl_buffer_download(t->vk, &t->lm2, 0, m2, bytes, err)) return err->status;
    if (grads && vkl_buffer_download(t->vk, &t->lg, 0, grads, bytes, err)) return err->status;
    return VKL_OK;
}

vkl_status vkl_train_dev_write(vkl_train_dev *t, const float *params, const float *grads, vkl_err *err) {
    uint64_t bytes = t->lora->n_params * 4;
    if (params && vkl_buffer_upload(t->vk, &t->lp, 0, params, bytes, err)) return err->status;
    if (grads && vkl_buffer_upload(t->vk, &t->lg, 0, grads, bytes, err)) return err->status;
    return VKL_OK;
}

vkl_status vkl_train_zero_grads(vkl_train_dev *t, vkl_err *err) {
    return vkl_buffer_fill(t->vk, &t->lg, 0, t->lora->n_params * 4, 0, err);
}

/* ---- LoRA pieces (strided GEMMs over the flat parameter vector) ---- */

static vkl_tview TV(const vkl_buffer *b) { return vkl_tv(b, 0); }
static vkl_tview W(const vkl_weight *w) { return w->t ? vkl_tv(w->buf, 0) : vkl_tv_none(); }

void vkl_train_set_dropout(vkl_train_dev *t, float p, uint64_t seed, uint64_t stream) {
    t->dropout_p = p;
    t->dropout_seed = seed;
    t->dropout_stream = stream;
}

/* The dropout of (layer, module) in this pass, or NULL (eval, or p = 0). */
static const vkl_lora_dropout *dropout_of(const vkl_train_dev *t, uint32_t layer, uint32_t mod, vkl_lora_dropout *d) {
    if (!t->train_pass || !(t->dropout_p > 0)) return NULL;
    d->p = t->dropout_p;
    d->key = vkl_rng_key(t->dropout_seed, (t->dropout_stream * t->m->hp.n_layer + layer) * 8 + mod);
    d->row0 = t->row_base;
    return d;
}

/* y (=|+=) W·x (+bias) (+ LoRA of module `mod`, saving xa): xa first, then the weight product adds the branch's
 * second factor as its low-rank term. */
static vkl_status proj(vkl_train_dev *t, uint32_t layer, uint32_t mod, const vkl_weight *w, const vkl_weight *bias,
                       vkl_tview x, vkl_tview y, bool accumulate, vkl_layer_acts *a, vkl_err *err) {
    /* a trained bias replaces the base one */
    const vkl_lora_bias_slot *tb = vkl_lora_bias_get(t->lora, layer, mod);
    vkl_tview bv = tb ? vkl_tv(&t->lp, tb->off * 4) : bias ? W(bias) : vkl_tv_none();
    const vkl_lora_slot *sl = vkl_lora_proj_slot(t->lora, layer, mod);
    vkl_mm_lowrank lr;
    if (sl) {
        vkl_lora_dropout d;
        vkl_tview xa = vkl_tv(&a->xa, (uint64_t)mod * t->R * t->lora->r * 4);
        if (vkl_op_lora_xa(t->vk, &t->cache, sl, t->lora->r, TV(&t->lp), x, xa, t->R,
                           dropout_of(t, layer, sl->module, &d), err))
            return err->status;
        lr = vkl_lora_term(sl, t->lora->r, t->lora->scale, TV(&t->lp), xa);
    }
    return vkl_op_matmul_lr(t->vk, &t->cache, w->type, W(w), x, bv, y, t->R, (uint32_t)w->rows, (uint32_t)w->cols,
                            accumulate, sl ? &lr : NULL, err);
}

/* dx (=|+=) dy·W (+ LoRA backward of module `mod`): the LoRA gradients come first, then the transposed weight product
 * adds dxa·A (masked by x's dropout) as its low-rank term. */
static vkl_status proj_back(vkl_train_dev *t, uint32_t layer, uint32_t mod, const vkl_weight *w, vkl_tview x,
                            vkl_tview dy, vkl_tview dx, bool accumulate, vkl_layer_acts *a, vkl_err *err) {
    const vkl_lora_bias_slot *tb = vkl_lora_bias_get(t->lora, layer, mod);
    if (tb && vkl_op_bias_grad(t->vk, &t->cache, dy, TV(&t->ones), vkl_tv(&t->lg, tb->off * 4), tb->n, t->R, err))
        return err->status;
    const vkl_lora_slot *sl = vkl_lora_proj_slot(t->lora, layer, mod);
    vkl_lora_dropout d;
    const vkl_lora_dropout *drop = sl ? dropout_of(t, layer, sl->module, &d) : NULL;
    vkl_tview xa = vkl_tv(&a->xa, (uint64_t)mod * t->R * t->lora->r * 4);
    if (!sl)
        return vkl_op_matmul_t(t->vk, &t->cache, w->type, W(w), dy, dx, t->R, (uint32_t)w->rows, (uint32_t)w->cols,
                               accumulate, err);
    vkl_gemm_dropout mask;
    vkl_mm_lowrank lr = vkl_lora_term_back(sl, t->lora->r, TV(&t->lp), TV(&t->dxa), drop, &mask);
    if (vkl_op_lora_backward(t->vk, &t->cache, sl, t->lora->r, t->lora->scale, TV(&t->lp), TV(&t->lg), x, xa, dy,
                             TV(&t->dxa), vkl_tv_none(), t->R, drop, err))
        return err->status;
    return vkl_op_matmul_t_lr(t->vk, &t->cache, w->type, W(w), dy, dx, t->R, (uint32_t)w->rows, (uint32_t)w->cols,
                              accumulate, &lr, err);
}

static vkl_status copy(vkl_train_dev *t, const vkl_buffer *src, vkl_buffer *dst, uint64_t bytes) {
    vkl_cmd_copy(t->vk, src, 0, dst, 0, bytes);
    return VKL_OK;
}

/* Offload: copy ring slot `slot` to host buffer `dst` without making later compute wait for it. */
static void offload(vkl_train_dev *t, uint32_t slot, vkl_buffer *dst, uint64_t bytes) {
    vkl_cmd_copy_async(t->vk, &t->res[slot], 0, dst, 0, bytes, t->res_event[slot]);
    t->res_event_set[slot] = true;
}

/* Before ring slot `slot` is overwritten: the copy out of it must be done. */
static void settle(vkl_train_dev *t, uint32_t slot) {
    if (!t->res_event_set[slot]) return;
    vkl_cmd_wait_event(t->vk, t->res_event[slot]);
    t->res_event_set[slot] = false;
}

enum { MQ = 0, MK = 1, MV = 2, MO = 3, MGATE = 4, MUP = 5, MDOWN = 6 };

/* The device buffer holding layer l's input (l in [l0, l1]): its own, or a slot of the 2-buffer ring when
 * offloading. */
static vkl_buffer *res_of(vkl_train_dev *t, uint32_t l) {
    return t->res_host ? &t->res[l % 2] : &t->res[l - t->l0];
}
/* Layer l's saved activations: its own set, or the one shared set when checkpointing. */
static vkl_layer_acts *acts_of(vkl_train_dev *t, uint32_t l) {
    return &t->acts[t->n_acts == t->l1 - t->l0 ? l - t->l0 : 0];
}

static vkl_attn_shape attn_shape_of(const vkl_train_dev *t, uint32_t l) {
    const vkl_hparams *hp = &t->m->hp;
    return (vkl_attn_shape){.n_seq = t->B, .T = t->T, .S = t->T, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                            .D = hp->head_dim, .pos0 = 0, .scale = hp->query_scale, .window = hp->layer[l].window,
                            .softcap = hp->attn_softcap};
}

/* act(g) * u, and its backward, for the architecture's gated FFN. */
static vkl_status ffn_act(vkl_train_dev *t, vkl_tview g, vkl_tview u, vkl_tview h, uint64_t n, vkl_err *err) {
    return t->m->hp.desc->act == VKL_ACT_GELU_TANH ? vkl_op_geglu(t->vk, &t->cache, g, u, h, n, err)
                                                   : vkl_op_swiglu(t->vk, &t->cache, g, u, h, n, err);
}
static vkl_status ffn_act_back(vkl_train_dev *t, vkl_tview g, vkl_tview u, vkl_tview dh, vkl_tview dg, vkl_tview du,
                               uint64_t n, vkl_err *err) {
    return t->m->hp.desc->act == VKL_ACT_GELU_TANH ? vkl_op_geglu_back(t->vk, &t->cache, g, u, dh, dg, du, n, err)
                                                   : vkl_op_swiglu_back(t->vk, &t->cache, g, u, dh, dg, du, n, err);
}

/* RoPE (or its transpose, the backward) of n_heads per row with layer l's frequency table. */
static vkl_status rope(vkl_train_dev *t, uint32_t l, vkl_tview x, uint32_t n_heads, bool inverse, vkl_err *err) {
    const vkl_hparams *hp = &t->m->hp;
    return vkl_op_rope(t->vk, &t->cache, x, vkl_tv(&t->ids, (uint64_t)t->R * 4), t->R, n_heads, hp->head_dim,
                       &t->rope[hp->layer[l].rope], inverse, err);
}

/* Forward of layer l from res[l] into res[l+1], keeping its activations in a. The architecture's description
 * switches the optional pieces: q/k norms (Qwen3, Gemma 3), post-norms and GELU (Gemma), windows and soft-caps
 * in the attention, the temperature of q (Mistral 3). */
static vkl_status layer_forward(vkl_train_dev *t, uint32_t l, vkl_layer_acts *a, vkl_err *err) {
    vkl_vk *vk = t->vk;
    vkl_op_cache *c = &t->cache;
    const vkl_hparams *hp = &t->m->hp;
    const vkl_arch_desc *ad = hp->desc;
    const vkl_layer_weights *Lw = &t->m->layers[l];
    const uint32_t R = t->R, C = hp->n_embd, F = hp->n_ff, H = hp->n_head, KVH = hp->n_head_kv, D = hp->head_dim;
    vkl_tview seg = vkl_tv(&t->ids, (uint64_t)R * 8);
    vkl_attn_shape as = attn_shape_of(t, l);
    /* with q/k norms the projections land in qp/kp and the normed heads in q/k */
    vkl_tview qp = ad->qk_norm ? TV(&a->qp) : TV(&a->q), kp = ad->qk_norm ? TV(&a->kp) : TV(&a->k);
    if (vkl_op_rmsnorm(vk, c, TV(res_of(t, l)), W(&Lw->attn_norm), TV(&a->xn1), TV(&a->rstd1), R, C, hp->rms_eps,
                       err) ||
        proj(t, l, MQ, &Lw->wq, &Lw->bq, TV(&a->xn1), qp, false, a, err) ||
        proj(t, l, MK, &Lw->wk, &Lw->bk, TV(&a->xn1), kp, false, a, err) ||
        proj(t, l, MV, &Lw->wv, &Lw->bv, TV(&a->xn1), TV(&a->v), false, a, err))
        return err->status;
    if (ad->qk_norm &&
        (vkl_op_rmsnorm(vk, c, qp, W(&Lw->q_norm), TV(&a->q), TV(&a->rstdq), R * H, D, hp->rms_eps, err) ||
         vkl_op_rmsnorm(vk, c, kp, W(&Lw->k_norm), TV(&a->k), TV(&a->rstdk), R * KVH, D, hp->rms_eps, err)))
        return err->status;
    if (rope(t, l, TV(&a->q), H, false, err) || rope(t, l, TV(&a->k), KVH, false, err) ||
        (t->has_tfac && vkl_op_scale_rows(vk, c, TV(&a->q), TV(&t->tfac), TV(&a->q), R, H * D, err)) ||
        vkl_op_attention(vk, c, &as, TV(&a->q), TV(&a->k), TV(&a->v), seg, TV(&a->ao), TV(&a->lse), err))
        return err->status;
    if (ad->post_norms) {
        /* mid = res + post_norm(W_o·ao) */
        if (proj(t, l, MO, &Lw->wo, NULL, TV(&a->ao), TV(&a->ob), false, a, err) ||
            vkl_op_rmsnorm(vk, c, TV(&a->ob), W(&Lw->attn_post_norm), TV(&t->pn), TV(&a->rstdo), R, C, hp->rms_eps,
                           err) ||
            vkl_op_add(vk, c, TV(res_of(t, l)), TV(&t->pn), 1.0f, TV(&a->mid), (uint64_t)R * C, err))
            return err->status;
    } else if (copy(t, res_of(t, l), &a->mid, (uint64_t)R * C * 4) ||
               proj(t, l, MO, &Lw->wo, NULL, TV(&a->ao), TV(&a->mid), true, a, err)) {
        return err->status;
    }
    if (vkl_op_rmsnorm(vk, c, TV(&a->mid), W(&Lw->ffn_norm), TV(&a->xn2), TV(&a->rstd2), R, C, hp->rms_eps, err) ||
        proj(t, l, MGATE, &Lw->w_gate, NULL, TV(&a->xn2), TV(&a->g), false, a, err) ||
        proj(t, l, MUP, &Lw->w_up, NULL, TV(&a->xn2), TV(&a->u), false, a, err) ||
        ffn_act(t, TV(&a->g), TV(&a->u), TV(&t->h), (uint64_t)R * F, err))
        return err->status;
    if (ad->post_norms) {
        if (proj(t, l, MDOWN, &Lw->w_down, NULL, TV(&t->h), TV(&a->fb), false, a, err) ||
            vkl_op_rmsnorm(vk, c, TV(&a->fb), W(&Lw->ffn_post_norm), TV(&t->pn), TV(&a->rstdf), R, C, hp->rms_eps,
                           err) ||
            vkl_op_add(vk, c, TV(&a->mid), TV(&t->pn), 1.0f, TV(res_of(t, l + 1)), (uint64_t)R * C, err))
            return err->status;
    } else if (copy(t, &a->mid, res_of(t, l + 1), (uint64_t)R * C * 4) ||
               proj(t, l, MDOWN, &Lw->w_down, NULL, TV(&t->h), TV(res_of(t, l + 1)), true, a, err)) {
        return err->status;
    }
    return VKL_OK;
}

/* Backward of layer l: dres holds dL/dres[l+1] on entry and dL/dres[l] on exit. */
static vkl_status layer_backward(vkl_train_dev *t, uint32_t l, vkl_layer_acts *a, vkl_err *err) {
    vkl_vk *vk = t->vk;
    vkl_op_cache *c = &t->cache;
    const vkl_hparams *hp = &t->m->hp;
    const vkl_arch_desc *ad = hp->desc;
    const vkl_layer_weights *Lw = &t->m->layers[l];
    const uint32_t R = t->R, C = hp->n_embd, F = hp->n_ff, H = hp->n_head, KVH = hp->n_head_kv, D = hp->head_dim;
    vkl_tview seg = vkl_tv(&t->ids, (uint64_t)R * 8);
    vkl_attn_shape as = attn_shape_of(t, l);
    vkl_tview dres = TV(&t->dres), dxn = TV(&t->dxn);
    /* MLP: res[l+1] = mid + [post_norm](W_down·h), h = act(g)*u */
    vkl_tview ddown = dres;
    if (ad->post_norms) {
        ddown = TV(&t->dpn);
        if (vkl_op_rmsnorm_back(vk, c, TV(&a->fb), W(&Lw->ffn_post_norm), TV(&a->rstdf), dres, ddown, false,
                                vkl_tv_none(), R, C, err))
            return err->status;
    }
    if (ffn_act(t, TV(&a->g), TV(&a->u), TV(&t->h), (uint64_t)R * F, err) ||
        /* dh goes to dg; once the down projection's LoRA gradient has read h, h's buffer takes d(gate) */
        proj_back(t, l, MDOWN, &Lw->w_down, TV(&t->h), ddown, TV(&t->dg), false, a, err) ||
        ffn_act_back(t, TV(&a->g), TV(&a->u), TV(&t->dg), TV(&t->h), TV(&t->du), (uint64_t)R * F, err) ||
        proj_back(t, l, MGATE, &Lw->w_gate, TV(&a->xn2), TV(&t->h), dxn, false, a, err) ||
        proj_back(t, l, MUP, &Lw->w_up, TV(&a->xn2), TV(&t->du), dxn, true, a, err) ||
        vkl_op_rmsnorm_back(vk, c, TV(&a->mid), W(&Lw->ffn_norm), TV(&a->rstd2), dxn, dres, true, vkl_tv_none(), R,
                            C, err))
        return err->status;
    /* attention: mid = res[l] + [post_norm](W_o·attn(rope(norm(q)), rope(norm(k)), v)) */
    vkl_tview dout = dres;
    if (ad->post_norms) {
        dout = TV(&t->dpn);
        if (vkl_op_rmsnorm_back(vk, c, TV(&a->ob), W(&Lw->attn_post_norm), TV(&a->rstdo), dres, dout, false,
                                vkl_tv_none(), R, C, err))
            return err->status;
    }
    const uint64_t kv_bytes = (uint64_t)R * KVH * D * 4;
    if (proj_back(t, l, MO, &Lw->wo, TV(&a->ao), dout, TV(&t->dao), false, a, err) ||
        /* attention_back accumulates into dk and dv (the heads of a GQA group share them) */
        vkl_buffer_fill(vk, &t->dk, 0, kv_bytes, 0, err) || vkl_buffer_fill(vk, &t->dv, 0, kv_bytes, 0, err) ||
        vkl_op_attention_back(vk, c, &as, TV(&a->q), TV(&a->k), TV(&a->v), seg, TV(&a->ao), TV(&a->lse),
                              TV(&t->dao), TV(&t->dq), TV(&t->dk), TV(&t->dv), TV(&t->delta), err) ||
        (t->has_tfac && vkl_op_scale_rows(vk, c, TV(&t->dq), TV(&t->tfac), TV(&t->dq), R, H * D, err)) ||
        rope(t, l, TV(&t->dq), H, true, err) || rope(t, l, TV(&t->dk), KVH, true, err))
        return err->status;
    vkl_tview dq = TV(&t->dq), dk = TV(&t->dk);
    if (ad->qk_norm) {
        if (vkl_op_rmsnorm_back(vk, c, TV(&a->qp), W(&Lw->q_norm), TV(&a->rstdq), dq, TV(&t->dqn), false,
                                vkl_tv_none(), R * H, D, err) ||
            vkl_op_rmsnorm_back(vk, c, TV(&a->kp), W(&Lw->k_norm), TV(&a->rstdk), dk, TV(&t->dkn), false,
                                vkl_tv_none(), R * KVH, D, err))
            return err->status;
        dq = TV(&t->dqn);
        dk = TV(&t->dkn);
    }
    if (proj_back(t, l, MQ, &Lw->wq, TV(&a->xn1), dq, dxn, false, a, err) ||
        proj_back(t, l, MK, &Lw->wk, TV(&a->xn1), dk, dxn, true, a, err) ||
        proj_back(t, l, MV, &Lw->wv, TV(&a->xn1), TV(&t->dv), dxn, true, a, err) ||
        vkl_op_rmsnorm_back(vk, c, TV(res_of(t, l)), W(&Lw->attn_norm), TV(&a->rstd1), dxn, dres, true,
                            vkl_tv_none(), R, C, err))
        return err->status;
    return VKL_OK;
}

static vkl_status upload_batch(vkl_train_dev *t, const int32_t *tokens, const int32_t *pos, const int32_t *seg,
                               const int32_t *targets, vkl_err *err) {
    const uint32_t R = t->R, V = t->m->hp.n_vocab;
    for (uint32_t i = 0; i < R; i++) {
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= V)
            return vkl_err_set(err, VKL_ERR_INPUT, "train: token %d at %u outside the vocabulary (%u)", tokens[i], i, V);
        if (targets[i] >= (int32_t)V)
            return vkl_err_set(err, VKL_ERR_INPUT, "train: target %d at %u outside the vocabulary", targets[i], i);
        if (seg[i] < 0 || (uint32_t)seg[i] > i % t->T)
            return vkl_err_set(err, VKL_ERR_INPUT, "train: segment start %d at %u is not within its row", seg[i], i);
    }
    const int32_t *src[4] = {tokens, pos, seg, targets};
    for (int k = 0; k < 4; k++)
        if (vkl_buffer_upload(t->vk, &t->ids, (uint64_t)k * R * 4, src[k], (uint64_t)R * 4, err)) return err->status;
    return vkl_attn_temp_upload(t->vk, &t->m->hp, pos, R, &t->tfac, &t->has_tfac, err);
}

/* End the recording (st: its status so far) and run it: no event is left set (the next submission reuses them); a
 * recording error wins over the submission's. */
static vkl_status submit(vkl_train_dev *t, vkl_status st, vkl_err *err) {
    if (t->res_host) {
        settle(t, 0);
        settle(t, 1);
    }
    vkl_err tmp = {0};
    vkl_status s2 = vkl_cmd_submit_wait(t->vk, st ? &tmp : err);
    return st ? st : s2;
}

/* Backward through the state's layers, last to first (recomputing each layer first when checkpointing): dres
 * holds dL/dres[l1] on entry and dL/dres[l0] on exit. Recorded into the open command buffer. */
static vkl_status back_layers(vkl_train_dev *t, vkl_err *err) {
    const uint64_t res_bytes = (uint64_t)t->R * t->m->hp.n_embd * 4;
    const uint32_t nL = t->l1 - t->l0;
    vkl_status st = VKL_OK;
    for (uint32_t l = t->l1; l-- > t->l0 && !st;) {
        vkl_layer_acts *a = acts_of(t, l);
        if (t->res_host) {
            settle(t, 0);
            settle(t, 1);
            st = copy(t, &t->res_host[l - t->l0], res_of(t, l), res_bytes);
        }
        if (!st && t->n_acts != nL) st = layer_forward(t, l, a, err); /* recompute; rewrites res[l+1] identically */
        if (!st) st = layer_backward(t, l, a, err);
    }
    return st;
}

/* The state's part of a micro-batch. The first stage (l0 = 0) embeds the tokens, any other takes the residual
 * entering layer l0 from x_in (R x C floats); then the forward through [l0, l1). A stage without the last layer
 * writes the residual leaving layer l1 - 1 to x_out and ends there (its backward is vkl_train_stage_backward). The
 * stage with the last layer computes the head and the loss and, with `backward`, goes back through its layers into
 * the LoRA gradients, writing dL/d(residual entering l0) to dx_out when it is not also the first. */
static vkl_status run(vkl_train_dev *t, bool backward, float grad_scale, const float *x_in, float *x_out,
                      float *dx_out, double *nll_sum, vkl_err *err) {
    vkl_vk *vk = t->vk;
    vkl_op_cache *c = &t->cache;
    const vkl_model *m = t->m;
    const vkl_hparams *hp = &m->hp;
    const uint32_t R = t->R, C = hp->n_embd, V = hp->n_vocab, L = hp->n_layer, l0 = t->l0, l1 = t->l1;
    const bool first = l0 == 0, last = l1 == L;
    const uint64_t res_bytes = (uint64_t)R * C * 4;
    *nll_sum = 0;
    if (!first && vkl_buffer_upload(vk, res_of(t, l0), 0, x_in, res_bytes, err)) return err->status;
    if (vkl_cmd_begin(vk, err)) return err->status;
    vkl_status st = VKL_OK;
    if (first) {
        st = vkl_op_get_rows(vk, c, m->tok_embd.type, W(&m->tok_embd), m->tok_embd.rows, TV(&t->ids),
                             TV(res_of(t, 0)), R, C, err);
        if (!st && hp->embd_scale != 1.0f)
            st = vkl_op_scale(vk, c, TV(res_of(t, 0)), TV(res_of(t, 0)), (uint64_t)R * C, hp->embd_scale, err);
    }
    /* With offloading, each layer input goes to host memory right after it is made (the copy is recorded in the
     * stream; the host never waits for it) and comes back before that layer's recompute. */
    if (!st && t->res_host) offload(t, l0 % 2, &t->res_host[0], res_bytes);
    for (uint32_t l = l0; l < l1 && !st; l++) {
        /* layer l writes ring slot (l+1)%2, whose previous content (layer l-1's input) may still be copying */
        if (t->res_host) settle(t, (l + 1) % 2);
        st = layer_forward(t, l, acts_of(t, l), err);
        if (!st && t->res_host) offload(t, (l + 1) % 2, &t->res_host[l + 1 - l0], res_bytes);
    }
    if (!st && last)
        st = vkl_op_rmsnorm(vk, c, TV(res_of(t, L)), W(&m->output_norm), TV(&t->xnf), TV(&t->rstdf), R, C, hp->rms_eps,
                            err);
    for (uint32_t r0 = 0; last && r0 < R && !st; r0 += t->logit_rows) {
        uint32_t n = VKL_MIN(t->logit_rows, R - r0);
        vkl_tview logits = TV(&t->logits);
        st = vkl_op_matmul(vk, c, m->output.type, W(&m->output), vkl_tv(&t->xnf, (uint64_t)r0 * C * 4), vkl_tv_none(),
                           logits, n, V, C, false, err);
        /* Gemma 2: logits = cap * tanh(logits / cap); the gradient goes through a buffer of its own then */
        const float cap = hp->final_softcap;
        vkl_tview dlogits = cap > 0 ? TV(&t->dlogits) : logits;
        if (!st && cap > 0) st = vkl_op_softcap(vk, c, logits, logits, (uint64_t)n * V, cap, err);
        if (!st)
            st = vkl_op_cross_entropy(vk, c, logits, vkl_tv(&t->ids, (uint64_t)R * 12 + r0 * 4ull), n, V,
                                      vkl_tv(&t->nll, r0 * 4ull), backward ? dlogits : vkl_tv_none(), grad_scale, err);
        if (!st && backward && cap > 0)
            st = vkl_op_softcap_back(vk, c, logits, dlogits, dlogits, (uint64_t)n * V, cap, err);
        if (!st && backward)
            st = vkl_op_matmul_t(vk, c, m->output.type, W(&m->output), dlogits,
                                 vkl_tv(&t->dxn, (uint64_t)r0 * C * 4), n, V, C, false, err);
    }
    if (backward && last && !st) {
        st = vkl_op_rmsnorm_back(vk, c, TV(res_of(t, L)), W(&m->output_norm), TV(&t->rstdf), TV(&t->dxn), TV(&t->dres),
                                 false, vkl_tv_none(), R, C, err);
        if (!st) st = back_layers(t, err);
    }
    if ((st = submit(t, st, err))) return st;
    if (!last) return vkl_buffer_download(vk, res_of(t, l1), 0, x_out, res_bytes, err);
    if (backward && !first && vkl_buffer_download(vk, &t->dres, 0, dx_out, res_bytes, err)) return err->status;
    float *nll = vkl_malloc((size_t)R * 4);
    st = vkl_buffer_download(vk, &t->nll, 0, nll, (uint64_t)R * 4, err);
    double s = 0;
    for (uint32_t i = 0; i < R; i++) s += nll[i];
    free(nll);
    *nll_sum = s;
    return st;
}

vkl_status vkl_train_micro_step(vkl_train_dev *t, const int32_t *tokens, const int32_t *pos, const int32_t *seg,
                                const int32_t *targets, float grad_scale, double *nll_sum, vkl_err *err) {
    return vkl_train_stage_forward(t, tokens, pos, seg, targets, true, grad_scale, NULL, NULL, NULL, nll_sum, err);
}

vkl_status vkl_train_eval_batch(vkl_train_dev *t, const int32_t *tokens, const int32_t *pos, const int32_t *seg,
                                const int32_t *targets, double *nll_sum, vkl_err *err) {
    return vkl_train_stage_forward(t, tokens, pos, seg, targets, false, 0.0f, NULL, NULL, NULL, nll_sum, err);
}

vkl_status vkl_train_stage_forward(vkl_train_dev *t, const int32_t *tokens, const int32_t *pos, const int32_t *seg,
                                   const int32_t *targets, bool backward, float grad_scale, const float *x_in,
                                   float *x_out, float *dx_out, double *nll_sum, vkl_err *err) {
    const bool first = t->l0 == 0, last = t->l1 == t->m->hp.n_layer;
    if ((!first && !x_in) || (!last && !x_out) || (last && backward && !first && !dx_out))
        return vkl_err_set(err, VKL_ERR_INPUT, "train: layers [%u, %u): a residual buffer is missing", t->l0, t->l1);
    if (upload_batch(t, tokens, pos, seg, targets, err)) return err->status;
    t->train_pass = backward;
    vkl_status st = run(t, backward, grad_scale, x_in, x_out, dx_out, nll_sum, err);
    t->train_pass = false;
    return st;
}

vkl_status vkl_train_stage_backward(vkl_train_dev *t, const float *dx_in, float *dx_out, vkl_err *err) {
    const bool first = t->l0 == 0;
    if (t->l1 == t->m->hp.n_layer || !dx_in || (!first && !dx_out))
        return vkl_err_set(err, VKL_ERR_INPUT, "train: layers [%u, %u): %s", t->l0, t->l1,
                           t->l1 == t->m->hp.n_layer ? "the last stage's backward runs in its forward"
                                                     : "a gradient buffer is missing");
    vkl_vk *vk = t->vk;
    const uint64_t res_bytes = (uint64_t)t->R * t->m->hp.n_embd * 4;
    if (vkl_buffer_upload(vk, &t->dres, 0, dx_in, res_bytes, err) || vkl_cmd_begin(vk, err)) return err->status;
    t->train_pass = true;
    vkl_status st = back_layers(t, err);
    t->train_pass = false;
    if ((st = submit(t, st, err))) return st;
    if (!first && vkl_buffer_download(vk, &t->dres, 0, dx_out, res_bytes, err)) return err->status;
    return VKL_OK;
}

vkl_status vkl_train_optimizer_step(vkl_train_dev *t, const vkl_config *c, int64_t step, double lr,
                                    double *grad_norm, vkl_err *err) {
    vkl_adamw_hyper h[2] = {{
        .lr = (float)lr,
        .beta1 = (float)c->adam_beta1,
        .beta2 = (float)c->adam_beta2,
        .eps = (float)c->adam_epsilon,
        .weight_decay = (float)c->weight_decay,
        .bc1 = (float)(1.0 - pow(c->adam_beta1, (double)step)),
        .bc2_sqrt = (float)sqrt(1.0 - pow(c->adam_beta2, (double)step)),
        .max_norm = (float)c->max_grad_norm,
    }};
    /* Biases train without weight decay, as HF's Trainer excludes them from decay. */
    h[1] = h[0];
    h[1].weight_decay = 0;
    const uint64_t n = t->lora->n_params, nl = t->lora->n_lora;
    if (vkl_buffer_upload(t->vk, &t->hyper, 0, &h[0], sizeof(h[0]), err) ||
        vkl_buffer_upload(t->vk, &t->hyper, HYPER_STRIDE, &h[1], sizeof(h[1]), err))
        return err->status;
    if (vkl_cmd_begin(t->vk, err)) return err->status;
    /* the squared norm goes into both hyper-parameter blocks */
    vkl_status st = vkl_op_sumsq(t->vk, &t->cache, TV(&t->lg), n, &t->norm_scratch,
                                 vkl_tv(&t->hyper, VKL_ADAMW_SUMSQ_OFFSET), err);
    if (!st && n > nl)
        st = vkl_op_sumsq(t->vk, &t->cache, TV(&t->lg), n, &t->norm_scratch,
                          vkl_tv(&t->hyper, HYPER_STRIDE + VKL_ADAMW_SUMSQ_OFFSET), err);
    if (!st)
        st = vkl_op_adamw(t->vk, &t->cache, TV(&t->lp), TV(&t->lg), TV(&t->lm1), TV(&t->lm2), TV(&t->hyper), nl, err);
    if (!st && n > nl) {
        uint64_t o = nl * 4;
        st = vkl_op_adamw(t->vk, &t->cache, vkl_tv(&t->lp, o), vkl_tv(&t->lg, o), vkl_tv(&t->lm1, o),
                          vkl_tv(&t->lm2, o), vkl_tv(&t->hyper, HYPER_STRIDE), n - nl, err);
    }
    vkl_err tmp = {0};
    vkl_status s2 = vkl_cmd_submit_wait(t->vk, st ? &tmp : err);
    if (st || s2) return st ? st : s2;
    float sumsq;
    if (vkl_buffer_download(t->vk, &t->hyper, VKL_ADAMW_SUMSQ_OFFSET, &sumsq, 4, err)) return err->status;
    *grad_norm = sqrt((double)sumsq);
    return VKL_OK;
}
