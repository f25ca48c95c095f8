/* The reference forward: the same graph as src/forward.c, op by op with the scalar twins (double accumulation). */
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
    const uint32_t C = hp->n_embd, QD = hp->n_head * hp->head_dim, KVD = hp->n_head_kv * hp->head_dim;
    const uint32_t F = hp->n_ff, V = hp->n_vocab;
    float *x = malloc((size_t)T * C * 4), *xn = malloc((size_t)T * C * 4), *q = malloc((size_t)T * QD * 4);
    float *k = malloc((size_t)T * KVD * 4), *v = malloc((size_t)T * KVD * 4), *ao = malloc((size_t)T * QD * 4);
    float *g = malloc((size_t)T * F * 4), *u = malloc((size_t)T * F * 4), *h = malloc((size_t)T * F * 4);
    float *lg = malloc((size_t)T * V * 4);
    int32_t *pos = malloc((size_t)T * 4);
    for (uint32_t t = 0; t < T; t++) pos[t] = (int32_t)t;
    vkl_attn_shape as = {.n_seq = 1, .T = T, .S = T, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                         .D = hp->head_dim, .pos0 = 0, .scale = 1.0f / sqrtf((float)hp->head_dim)};
    bool ok = vkl_ref_get_rows(m->tok_embd.type, wdata(&m->tok_embd), tokens, T, C, x);
    for (uint32_t l = 0; l < hp->n_layer && ok; l++) {
        const vkl_layer_weights *L = &m->layers[l];
        vkl_ref_rmsnorm(x, fdata(&L->attn_norm), xn, NULL, T, C, hp->rms_eps);
        ok = vkl_ref_matmul(L->wq.type, wdata(&L->wq), xn, fdata(&L->bq), q, T, QD, C, false) &&
             vkl_ref_matmul(L->wk.type, wdata(&L->wk), xn, fdata(&L->bk), k, T, KVD, C, false) &&
             vkl_ref_matmul(L->wv.type, wdata(&L->wv), xn, fdata(&L->bv), v, T, KVD, C, false);
        if (!ok) break;
        vkl_ref_rope(q, pos, T, hp->n_head, hp->head_dim, hp->rope_dim, hp->rope_base, hp->rope_neox, false);
        vkl_ref_rope(k, pos, T, hp->n_head_kv, hp->head_dim, hp->rope_dim, hp->rope_base, hp->rope_neox, false);
        vkl_ref_attention(&as, q, k, v, NULL, ao, NULL);
        ok = vkl_ref_matmul(L->wo.type, wdata(&L->wo), ao, NULL, x, T, C, QD, true);
        if (!ok) break;
        vkl_ref_rmsnorm(x, fdata(&L->ffn_norm), xn, NULL, T, C, hp->rms_eps);
        ok = vkl_ref_matmul(L->w_gate.type, wdata(&L->w_gate), xn, NULL, g, T, F, C, false) &&
             vkl_ref_matmul(L->w_up.type, wdata(&L->w_up), xn, NULL, u, T, F, C, false);
        if (!ok) break;
        vkl_ref_swiglu(g, u, h, (uint64_t)T * F);
        ok = vkl_ref_matmul(L->w_down.type, wdata(&L->w_down), h, NULL, x, T, C, F, true);
    }
    if (ok) {
        vkl_ref_rmsnorm(x, fdata(&m->output_norm), xn, NULL, T, C, hp->rms_eps);
        ok = vkl_ref_matmul(m->output.type, wdata(&m->output), xn, NULL, lg, T, V, C, false);
    }
    if (ok && nll && targets) vkl_ref_cross_entropy(lg, targets, T, V, nll, NULL, 0);
    if (ok && logits)
        for (uint64_t i = 0; i < (uint64_t)T * V; i++) logits[i] = lg[i];
    free(x), free(xn), free(q), free(k), free(v), free(ao), free(g), free(u), free(h), free(lg), free(pos);
    return ok;
}
