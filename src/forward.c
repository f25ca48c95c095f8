/* The forward graph: embedding -> L x (RMSNorm, Q/K/V, RoPE, causal GQA attention, output projection + residual,
 * RMSNorm, SwiGLU MLP + residual) -> final norm -> output head in row chunks -> NLL or last logits. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/lora_ops.h"
#include "vk/vk.h"

/* The output head's logits are computed for at most this many bytes of rows at a time, so a 150k vocabulary
 * does not need (rows x V) floats at once. */
#define LOGIT_CHUNK_BYTES (64ull << 20)

uint64_t vkl_fwd_plan_bytes(const vkl_hparams *hp, const vkl_fwd_dims *d, uint32_t *logit_rows) {
    uint64_t rows = (uint64_t)d->max_seq * d->max_T;
    uint64_t C = hp->n_embd, QD = (uint64_t)hp->n_head * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    uint64_t KVD = (uint64_t)hp->n_head_kv * hp->head_dim;
    uint64_t lr = LOGIT_CHUNK_BYTES / (V * 4);
    if (lr < 1) lr = 1;
    if (lr > rows) lr = rows;
    if (logit_rows) *logit_rows = (uint32_t)lr;
    uint64_t f = 0;
    f += rows * C * 2;              /* x, xn */
    f += rows * QD * 2;             /* q, ao */
    f += rows * F * 2;              /* g, u */
    f += lr * V;                    /* logits */
    f += rows * 5;                  /* ids, pos, targets, nll, temperatures */
    f += rows * hp->n_head;         /* attention logsumexp */
    f += (uint64_t)hp->n_layer * 2 * (uint64_t)d->max_seq * d->n_ctx * KVD; /* KV cache */
    return f * 4;
}

vkl_status vkl_fwd_create(vkl_vk *vk, vkl_model *m, const vkl_fwd_dims *dims, vkl_fwd **out, vkl_err *err) {
    *out = NULL;
    const vkl_hparams *hp = &m->hp;
    if (!dims->max_seq || !dims->max_T || dims->n_ctx < dims->max_T)
        return vkl_err_set(err, VKL_ERR_INPUT, "forward: bad dimensions (sequences %u, tokens %u, context %u)",
                           dims->max_seq, dims->max_T, dims->n_ctx);
    vkl_fwd *f = vkl_calloc(1, sizeof(*f));
    f->vk = vk;
    f->m = m;
    f->dims = *dims;
    f->planned_bytes = vkl_fwd_plan_bytes(hp, dims, &f->logit_rows);
    uint64_t total = f->planned_bytes + m->device_bytes;
    if (vkl_vk_memory_budget(vk) && total > vkl_vk_memory_budget(vk)) {
        vkl_err_set(err, VKL_ERR_RUNTIME,
                    "forward: the model (%.1f MiB) and its activations for %u x %u tokens (%.1f MiB) need %.1f MiB, "
                    "more than the device's %.1f MiB: use a shorter context or fewer sequences",
                    m->device_bytes / 1048576.0, dims->max_seq, dims->max_T, f->planned_bytes / 1048576.0,
                    total / 1048576.0, vkl_vk_memory_budget(vk) / 1048576.0);
        free(f);
        return err->status;
    }
    uint64_t rows = (uint64_t)dims->max_seq * dims->max_T;
    uint64_t C = hp->n_embd, QD = (uint64_t)hp->n_head * hp->head_dim, F = hp->n_ff, V = hp->n_vocab;
    uint64_t KVD = (uint64_t)hp->n_head_kv * hp->head_dim;
    struct {
        vkl_buffer *b;
        uint64_t bytes;
    } plan[] = {
        {&f->x, rows * C * 4},  {&f->xn, rows * C * 4},           {&f->q, rows * QD * 4},
        {&f->ao, rows * QD * 4}, {&f->g, rows * F * 4},           {&f->u, rows * F * 4},
        {&f->logits, (uint64_t)f->logit_rows * V * 4},             {&f->ids, rows * 12},
        {&f->nll, rows * 4},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(plan); i++)
        if (vkl_buffer_create(vk, plan[i].bytes, VKL_MEM_DEVICE, plan[i].b, err)) goto fail;
    /* rope tables for this context, attention temperatures, and a logsumexp scratch (attention kernels that split
     * a long context merge their slices through it) */
    if (vkl_rope_tables_create(vk, m, dims->n_ctx, &f->rope_tab, f->rope, err) ||
        vkl_buffer_create(vk, rows * 4, VKL_MEM_DEVICE, &f->tfac, err) ||
        vkl_buffer_create(vk, rows * hp->n_head * 4, VKL_MEM_DEVICE, &f->lse, err))
        goto fail;
    f->kc = vkl_calloc(hp->n_layer, sizeof(vkl_buffer));
    f->vc = vkl_calloc(hp->n_layer, sizeof(vkl_buffer));
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        uint64_t bytes = (uint64_t)dims->max_seq * dims->n_ctx * KVD * 4;
        if (vkl_buffer_create(vk, bytes, VKL_MEM_DEVICE, &f->kc[l], err) ||
            vkl_buffer_create(vk, bytes, VKL_MEM_DEVICE, &f->vc[l], err))
            goto fail;
    }
    *out = f;
    return VKL_OK;
fail:
    vkl_fwd_destroy(f);
    return err->status;
}

void vkl_fwd_destroy(vkl_fwd *f) {
    if (!f) return;
    vkl_buffer *bs[] = {&f->x, &f->xn, &f->q, &f->ao, &f->g, &f->u, &f->logits, &f->ids, &f->nll,
                        &f->rope_tab, &f->tfac, &f->lse};
    for (size_t i = 0; i < VKL_ARRAY_LEN(bs); i++) vkl_buffer_destroy(f->vk, bs[i]);
    vkl_buffer_destroy(f->vk, &f->lp);
    vkl_buffer_destroy(f->vk, &f->xa);
    for (uint32_t l = 0; f->kc && l < f->m->hp.n_layer; l++) {
        vkl_buffer_destroy(f->vk, &f->kc[l]);
        vkl_buffer_destroy(f->vk, &f->vc[l]);
    }
    free(f->kc);
    free(f->vc);
    vkl_op_cache_destroy(f->vk, &f->cache);
    free(f);
}

vkl_status vkl_rope_tables_create(vkl_vk *vk, const vkl_model *m, uint32_t n_ctx, vkl_buffer *buf,
                                  vkl_rope_params rp[2], vkl_err *err) {
    const vkl_hparams *hp = &m->hp;
    const uint32_t n = hp->rope_dim / 2;
    double *fr = vkl_calloc(n, sizeof(double));
    float *packed = vkl_calloc(4 * (size_t)n, sizeof(float));
    for (uint32_t which = 0; which < 2; which++) {
        vkl_rope_freqs(m, which, n_ctx, fr, &rp[which].mscale);
        vkl_rope_pack_freqs(fr, n, packed + (size_t)which * 2 * n);
        rp[which].rope_dim = hp->rope_dim;
        rp[which].neox = hp->rope_neox;
        rp[which].freqs = vkl_tv(buf, (uint64_t)which * 2 * n * 4);
    }
    vkl_status st = vkl_buffer_create(vk, 16 * (uint64_t)n, VKL_MEM_DEVICE, buf, err);
    if (!st) st = vkl_buffer_upload(vk, buf, 0, packed, 16 * (uint64_t)n, err);
    free(fr);
    free(packed);
    return st;
}

vkl_status vkl_attn_temp_upload(vkl_vk *vk, const vkl_hparams *hp, const int32_t *pos, uint32_t R, vkl_buffer *buf,
                                bool *any, vkl_err *err) {
    *any = false;
    if (hp->attn_temp_scale == 0.0f) return VKL_OK;
    float *f = vkl_malloc((size_t)R * 4);
    for (uint32_t i = 0; i < R; i++) {
        f[i] = vkl_attn_temp(hp, pos[i]);
        if (f[i] != 1.0f) *any = true;
    }
    vkl_status st = *any ? vkl_buffer_upload(vk, buf, 0, f, (uint64_t)R * 4, err) : VKL_OK;
    free(f);
    return st;
}

static vkl_tview W(const vkl_weight *w) { return w->t ? vkl_tv(w->buf, 0) : vkl_tv_none(); }

vkl_status vkl_fwd_set_adapter(vkl_fwd *f, const vkl_lora *l, float multiplier, vkl_err *err) {
    if (vkl_lora_check_base(l, f->m, err)) return err->status;
    vkl_buffer_destroy(f->vk, &f->lp);
    vkl_buffer_destroy(f->vk, &f->xa);
    f->lora = NULL;
    uint64_t rows = (uint64_t)f->dims.max_seq * f->dims.max_T;
    if (vkl_buffer_create(f->vk, l->n_params * 4, VKL_MEM_DEVICE, &f->lp, err) ||
        vkl_buffer_create(f->vk, rows * l->r * 4, VKL_MEM_DEVICE, &f->xa, err) ||
        vkl_buffer_upload(f->vk, &f->lp, 0, l->params, l->n_params * 4, err))
        return err->status;
    f->lora = l;
    f->lora_scale = l->scale * multiplier;
    return VKL_OK;
}

/* y (=|+=) W·x (+bias) plus the adapter's branch for (layer, module) when there is one. */
static vkl_status proj(vkl_fwd *f, uint32_t layer, uint32_t mod, const vkl_weight *w, const vkl_weight *bias,
                       vkl_tview x, vkl_tview y, uint32_t R, bool accumulate, vkl_err *err) {
    const vkl_lora_bias_slot *tb = f->lora ? vkl_lora_bias_get(f->lora, layer, mod) : NULL;
    vkl_tview bv = tb ? vkl_tv(&f->lp, tb->off * 4) : bias ? W(bias) : vkl_tv_none();
    const vkl_lora_slot *sl = f->lora ? vkl_lora_proj_slot(f->lora, layer, mod) : NULL;
    vkl_mm_lowrank lr;
    if (sl) {
        if (vkl_op_lora_xa(f->vk, &f->cache, sl, f->lora->r, vkl_tv(&f->lp, 0), x, vkl_tv(&f->xa, 0), R, NULL, err))
            return err->status;
        lr = vkl_lora_term(sl, f->lora->r, f->lora_scale, vkl_tv(&f->lp, 0), vkl_tv(&f->xa, 0));
    }
    return vkl_op_matmul_lr(f->vk, &f->cache, w->type, W(w), x, bv, y, R, (uint32_t)w->rows, (uint32_t)w->cols,
                            accumulate, sl ? &lr : NULL, err);
}

/* Record the whole forward; the caller has uploaded ids/pos/targets and begun the command buffer. The
 * architecture's description switches the optional pieces, as in src/train.c. */
static vkl_status record(vkl_fwd *f, uint32_t n_seq, uint32_t T, uint32_t pos0, bool score, bool want_last,
                         vkl_err *err) {
    vkl_vk *vk = f->vk;
    vkl_op_cache *c = &f->cache;
    const vkl_model *m = f->m;
    const vkl_hparams *hp = &m->hp;
    const vkl_arch_desc *ad = hp->desc;
    const uint32_t R = n_seq * T, C = hp->n_embd, F = hp->n_ff, V = hp->n_vocab, H = hp->n_head,
                   KVH = hp->n_head_kv, D = hp->head_dim;
    const uint32_t KVD = KVH * D;
    const uint64_t rows_cap = (uint64_t)f->dims.max_seq * f->dims.max_T;
    vkl_tview ids = vkl_tv(&f->ids, 0), pos = vkl_tv(&f->ids, rows_cap * 4);
    vkl_tview x = vkl_tv(&f->x, 0), xn = vkl_tv(&f->xn, 0), q = vkl_tv(&f->q, 0), ao = vkl_tv(&f->ao, 0);
    vkl_tview g = vkl_tv(&f->g, 0), u = vkl_tv(&f->u, 0);
    /* With one sequence the cache holds n_ctx positions and new rows land at pos0; several sequences are laid
     * out back to back with a stride of T rows. */
    uint32_t S = n_seq == 1 ? f->dims.n_ctx : T;
    uint64_t kv_off = n_seq == 1 ? (uint64_t)pos0 * KVD * 4 : 0;

    if (vkl_op_get_rows(vk, c, m->tok_embd.type, W(&m->tok_embd), m->tok_embd.rows, ids, x, R, C, err) ||
        (hp->embd_scale != 1.0f && vkl_op_scale(vk, c, x, x, (uint64_t)R * C, hp->embd_scale, err)))
        return err->status;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const vkl_layer_weights *L = &m->layers[l];
        vkl_tview kc = vkl_tv(&f->kc[l], kv_off), vc = vkl_tv(&f->vc[l], kv_off);
        const vkl_rope_params *rp = &f->rope[hp->layer[l].rope];
        vkl_attn_shape as = {.n_seq = n_seq, .T = T, .S = S, .n_head = H, .n_head_kv = KVH, .D = D, .pos0 = pos0,
                             .scale = hp->query_scale, .window = hp->layer[l].window, .softcap = hp->attn_softcap};
        if (vkl_op_rmsnorm(vk, c, x, W(&L->attn_norm), xn, vkl_tv_none(), R, C, hp->rms_eps, err) ||
            proj(f, l, 0, &L->wq, &L->bq, xn, q, R, false, err) || proj(f, l, 1, &L->wk, &L->bk, xn, kc, R, false, err) ||
            proj(f, l, 2, &L->wv, &L->bv, xn, vc, R, false, err) ||
            (ad->qk_norm &&
             (vkl_op_rmsnorm(vk, c, q, W(&L->q_norm), q, vkl_tv_none(), R * H, D, hp->rms_eps, err) ||
              vkl_op_rmsnorm(vk, c, kc, W(&L->k_norm), kc, vkl_tv_none(), R * KVH, D, hp->rms_eps, err))) ||
            vkl_op_rope(vk, c, q, pos, R, H, D, rp, false, err) || vkl_op_rope(vk, c, kc, pos, R, KVH, D, rp, false, err) ||
            (f->has_tfac && vkl_op_scale_rows(vk, c, q, vkl_tv(&f->tfac, 0), q, R, H * D, err)) ||
            vkl_op_attention(vk, c, &as, q, vkl_tv(&f->kc[l], 0), vkl_tv(&f->vc[l], 0), vkl_tv_none(), ao,
                             vkl_tv(&f->lse, 0), err))
            return err->status;
        /* sub-block outputs: added to x directly, or through a post-norm in xn (free once q/k/v are made) */
        if (ad->post_norms) {
            if (proj(f, l, 3, &L->wo, NULL, ao, xn, R, false, err) ||
                vkl_op_rmsnorm(vk, c, xn, W(&L->attn_post_norm), xn, vkl_tv_none(), R, C, hp->rms_eps, err) ||
                vkl_op_add(vk, c, x, xn, 1.0f, x, (uint64_t)R * C, err))
                return err->status;
        } else if (proj(f, l, 3, &L->wo, NULL, ao, x, R, true, err)) {
            return err->status;
        }
        if (vkl_op_rmsnorm(vk, c, x, W(&L->ffn_norm), xn, vkl_tv_none(), R, C, hp->rms_eps, err) ||
            proj(f, l, 4, &L->w_gate, NULL, xn, g, R, false, err) || proj(f, l, 5, &L->w_up, NULL, xn, u, R, false, err) ||
            (ad->act == VKL_ACT_GELU_TANH ? vkl_op_geglu(vk, c, g, u, g, (uint64_t)R * F, err)
                                          : vkl_op_swiglu(vk, c, g, u, g, (uint64_t)R * F, err)))
            return err->status;
        if (ad->post_norms) {
            if (proj(f, l, 6, &L->w_down, NULL, g, xn, R, false, err) ||
                vkl_op_rmsnorm(vk, c, xn, W(&L->ffn_post_norm), xn, vkl_tv_none(), R, C, hp->rms_eps, err) ||
                vkl_op_add(vk, c, x, xn, 1.0f, x, (uint64_t)R * C, err))
                return err->status;
        } else if (proj(f, l, 6, &L->w_down, NULL, g, x, R, true, err)) {
            return err->status;
        }
    }
    if (vkl_op_rmsnorm(vk, c, x, W(&m->output_norm), xn, vkl_tv_none(), R, C, hp->rms_eps, err)) return err->status;
    const float cap = hp->final_softcap;
    if (score) {
        for (uint32_t r0 = 0; r0 < R; r0 += f->logit_rows) {
            uint32_t n = VKL_MIN(f->logit_rows, R - r0);
            if (vkl_op_matmul(vk, c, m->output.type, W(&m->output), vkl_tv(&f->xn, (uint64_t)r0 * C * 4),
                              vkl_tv_none(), vkl_tv(&f->logits, 0), n, V, C, false, err) ||
                (cap > 0 && vkl_op_softcap(vk, c, vkl_tv(&f->logits, 0), vkl_tv(&f->logits, 0), (uint64_t)n * V, cap,
                                           err)) ||
                vkl_op_cross_entropy(vk, c, vkl_tv(&f->logits, 0), vkl_tv(&f->ids, rows_cap * 8 + r0 * 4ull), n, V,
                                     vkl_tv(&f->nll, r0 * 4ull), vkl_tv_none(), 1.0f, err))
                return err->status;
        }
    }
    if (want_last) {
        /* One row per sequence; logits has at least one row, so do them one at a time when needed. */
        for (uint32_t b = 0; b < n_seq; b += f->logit_rows) {
            uint32_t n = VKL_MIN(f->logit_rows, n_seq - b);
            for (uint32_t i = 0; i < n; i++)
                if (vkl_op_matmul(vk, c, m->output.type, W(&m->output),
                                  vkl_tv(&f->xn, ((uint64_t)(b + i) * T + T - 1) * C * 4), vkl_tv_none(),
                                  vkl_tv(&f->logits, (uint64_t)i * V * 4), 1, V, C, false, err))
                    return err->status;
            if (cap > 0 && vkl_op_softcap(vk, c, vkl_tv(&f->logits, 0), vkl_tv(&f->logits, 0), (uint64_t)n * V, cap,
                                          err))
                return err->status;
            if (n_seq > f->logit_rows) break; /* handled by the caller one sequence at a time */
        }
    }
    return VKL_OK;
}

vkl_status vkl_fwd_run(vkl_fwd *f, const int32_t *tokens, uint32_t n_seq, uint32_t T, uint32_t pos0,
                       const int32_t *targets, float *nll, float *last_logits, vkl_err *err) {
    vkl_vk *vk = f->vk;
    const vkl_hparams *hp = &f->m->hp;
    if (n_seq == 0 || T == 0 || n_seq > f->dims.max_seq || T > f->dims.max_T ||
        (uint64_t)pos0 + T > f->dims.n_ctx || (pos0 > 0 && n_seq != 1))
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "forward: %u sequence(s) of %u tokens at position %u do not fit the planned %u x %u tokens "
                           "with a context of %u",
                           n_seq, T, pos0, f->dims.max_seq, f->dims.max_T, f->dims.n_ctx);
    if (last_logits && n_seq > f->logit_rows)
        return vkl_err_set(err, VKL_ERR_INPUT, "forward: logits of %u sequences requested; at most %u at once", n_seq,
                           f->logit_rows);
    const uint32_t R = n_seq * T;
    const uint64_t rows_cap = (uint64_t)f->dims.max_seq * f->dims.max_T;
    for (uint32_t i = 0; i < R; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return vkl_err_set(err, VKL_ERR_INPUT, "forward: token %d at index %u is outside the vocabulary (%u)",
                               tokens[i], i, hp->n_vocab);
    int32_t *pos = vkl_malloc((size_t)R * 4);
    for (uint32_t b = 0; b < n_seq; b++)
        for (uint32_t t = 0; t < T; t++) pos[b * T + t] = (int32_t)(pos0 + t);
    vkl_status st = vkl_buffer_upload(vk, &f->ids, 0, tokens, (uint64_t)R * 4, err);
    if (!st) st = vkl_buffer_upload(vk, &f->ids, rows_cap * 4, pos, (uint64_t)R * 4, err);
    if (!st && targets) {
        for (uint32_t i = 0; i < R && !st; i++)
            if (targets[i] >= (int32_t)hp->n_vocab)
                st = vkl_err_set(err, VKL_ERR_INPUT, "forward: target %d at index %u is outside the vocabulary",
                                 targets[i], i);
        if (!st) st = vkl_buffer_upload(vk, &f->ids, rows_cap * 8, targets, (uint64_t)R * 4, err);
    }
    if (!st) st = vkl_attn_temp_upload(vk, hp, pos, R, &f->tfac, &f->has_tfac, err);
    free(pos);
    if (st) return st;
    if (vkl_cmd_begin(vk, err)) return err->status;
    st = record(f, n_seq, T, pos0, targets != NULL, last_logits != NULL, err);
    if (st) {
        vkl_err tmp = {0};
        vkl_cmd_submit_wait(vk, &tmp); /* end the command buffer; the first error stays the reported one */
        return st;
    }
    if (vkl_cmd_submit_wait(vk, err)) return err->status;
    if (targets && nll && vkl_buffer_download(vk, &f->nll, 0, nll, (uint64_t)R * 4, err)) return err->status;
    if (last_logits &&
        vkl_buffer_download(vk, &f->logits, 0, last_logits, (uint64_t)n_seq * hp->n_vocab * 4, err))
        return err->status;
    return VKL_OK;
}
