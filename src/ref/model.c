/* The reference forward: the same graph as src/forward.c, op by op with the scalar twins (double accumulation),
 * switched by the architecture's description the same way. */
#include "ref/model.h"

#include <math.h>
#include <stdlib.h>

#include "ref/matmul.h"
#include "ref/nn.h"

static const void *wdata(const vkl_weight *w) { return w->t ? w->data : NULL; }
static const float *fdata(const vkl_weight *w) { return w->t ? (const float *)w->data : NULL; }

bool vkl_ref_forward(const vkl_model *m, const int32_t *tokens, uint32_t T, const int32_t *targets, float *logits,
                     float *nll) {
    const vkl_hparams *hp = &m->hp;
    const vkl_arch_desc *ad = hp->desc;
    const uint32_t C = hp->n_embd, H = hp->n_head, KVH = hp->n_head_kv, D = hp->head_dim, QD = H * D, KVD = KVH * D;
    const uint32_t F = hp->n_ff, V = hp->n_vocab;
    float *x = malloc((size_t)T * C * 4), *xn = malloc((size_t)T * C * 4), *q = malloc((size_t)T * QD * 4);
    float *k = malloc((size_t)T * KVD * 4), *v = malloc((size_t)T * KVD * 4), *ao = malloc((size_t)T * QD * 4);
    float *g = malloc((size_t)T * F * 4), *u = malloc((size_t)T * F * 4), *h = malloc((size_t)T * F * 4);
    float *lg = malloc((size_t)T * V * 4), *tf = malloc((size_t)T * 4);
    int32_t *pos = malloc((size_t)T * 4);
    double *freqs[2] = {malloc((hp->rope_dim / 2) * sizeof(double)), malloc((hp->rope_dim / 2) * sizeof(double))};
    float mscale[2];
    bool has_tf = false;
    for (uint32_t t = 0; t < T; t++) {
        pos[t] = (int32_t)t;
        tf[t] = vkl_attn_temp(hp, (int32_t)t);
        has_tf |= tf[t] != 1.0f;
    }
    for (uint32_t w = 0; w < 2; w++) vkl_rope_freqs(m, w, T, freqs[w], &mscale[w]);
    bool ok = vkl_ref_get_rows(m->tok_embd.type, wdata(&m->tok_embd), tokens, T, C, x);
    if (ok && hp->embd_scale != 1.0f) vkl_ref_scale(x, x, (uint64_t)T * C, hp->embd_scale);
    for (uint32_t l = 0; l < hp->n_layer && ok; l++) {
        const vkl_layer_weights *L = &m->layers[l];
        const uint32_t rt = hp->layer[l].rope;
        vkl_attn_shape as = {.n_seq = 1, .T = T, .S = T, .n_head = H, .n_head_kv = KVH, .D = D, .pos0 = 0,
                             .scale = hp->query_scale, .window = hp->layer[l].window, .softcap = hp->attn_softcap};
        vkl_ref_rmsnorm(x, fdata(&L->attn_norm), xn, NULL, T, C, hp->rms_eps);
        ok = vkl_ref_matmul(L->wq.type, wdata(&L->wq), xn, fdata(&L->bq), q, T, QD, C, false) &&
             vkl_ref_matmul(L->wk.type, wdata(&L->wk), xn, fdata(&L->bk), k, T, KVD, C, false) &&
             vkl_ref_matmul(L->wv.type, wdata(&L->wv), xn, fdata(&L->bv), v, T, KVD, C, false);
        if (!ok) break;
        if (ad->qk_norm) {
            vkl_ref_rmsnorm(q, fdata(&L->q_norm), q, NULL, T * H, D, hp->rms_eps);
            vkl_ref_rmsnorm(k, fdata(&L->k_norm), k, NULL, T * KVH, D, hp->rms_eps);
        }
        vkl_ref_rope(q, pos, T, H, D, hp->rope_dim, hp->rope_neox, freqs[rt], mscale[rt], false);
        vkl_ref_rope(k, pos, T, KVH, D, hp->rope_dim, hp->rope_neox, freqs[rt], mscale[rt], false);
        if (has_tf) vkl_ref_scale_rows(q, tf, q, T, QD);
        vkl_ref_attention(&as, q, k, v, NULL, ao, NULL);
        if (ad->post_norms) {
            ok = vkl_ref_matmul(L->wo.type, wdata(&L->wo), ao, NULL, xn, T, C, QD, false);
            vkl_ref_rmsnorm(xn, fdata(&L->attn_post_norm), xn, NULL, T, C, hp->rms_eps);
            vkl_ref_add(x, xn, 1.0f, x, (uint64_t)T * C);
        } else {
            ok = vkl_ref_matmul(L->wo.type, wdata(&L->wo), ao, NULL, x, T, C, QD, true);
        }
        if (!ok) break;
        vkl_ref_rmsnorm(x, fdata(&L->ffn_norm), xn, NULL, T, C, hp->rms_eps);
        ok = vkl_ref_matmul(L->w_gate.type, wdata(&L->w_gate), xn, NULL, g, T, F, C, false) &&
             vkl_ref_matmul(L->w_up.type, wdata(&L->w_up), xn, NULL, u, T, F, C, false);
        if (!ok) break;
        if (ad->act == VKL_ACT_GELU_TANH) vkl_ref_geglu(g, u, h, (uint64_t)T * F);
        else vkl_ref_swiglu(g, u, h, (uint64_t)T * F);
        if (ad->post_norms) {
            ok = vkl_ref_matmul(L->w_down.type, wdata(&L->w_down), h, NULL, xn, T, C, F, false);
            vkl_ref_rmsnorm(xn, fdata(&L->ffn_post_norm), xn, NULL, T, C, hp->rms_eps);
            vkl_ref_add(x, xn, 1.0f, x, (uint64_t)T * C);
        } else {
            ok = vkl_ref_matmul(L->w_down.type, wdata(&L->w_down), h, NULL, x, T, C, F, true);
        }
    }
    if (ok) {
        vkl_ref_rmsnorm(x, fdata(&m->output_norm), xn, NULL, T, C, hp->rms_eps);
        ok = vkl_ref_matmul(m->output.type, wdata(&m->output), xn, NULL, lg, T, V, C, false);
        if (ok && hp->final_softcap > 0) vkl_ref_softcap(lg, lg, (uint64_t)T * V, hp->final_softcap);
    }
    if (ok && nll && targets) vkl_ref_cross_entropy(lg, targets, T, V, nll, NULL, 0);
    if (ok && logits)
        for (uint64_t i = 0; i < (uint64_t)T * V; i++) logits[i] = lg[i];
    free(x), free(xn), free(q), free(k), free(v), free(ao), free(g), free(u), free(h), free(lg), free(pos), free(tf);
    free(freqs[0]), free(freqs[1]);
    return ok;
}
