/* Layer split (issue 15): training states that each hold a range of layers (vkl_train_dev_create_layers, with
 * models uploaded by vkl_model_upload_layers) and pass the residual forward and its gradient back through host
 * memory give the whole state's loss and, summed, its LoRA gradients, in every checkpointing mode and with dropout;
 * each stage's gradient is zero outside its layers, and its device holds only its part of the weights. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train.h"
#include "vk/vk.h"

/* Whether flat parameter k belongs to an adapter or bias of a layer in [l0, l1). */
static bool param_in_layers(const vkl_lora *l, uint64_t k, uint32_t l0, uint32_t l1) {
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        uint64_t a = s->a_off, b = s->b_off;
        if ((k >= a && k < a + (uint64_t)l->r * s->in) || (k >= b && k < b + (uint64_t)s->out * l->r))
            return s->layer >= l0 && s->layer < l1;
    }
    return false;
}

static int test_stages_equal_whole(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    vkl_model *whole;
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &whole, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(whole, vk, &err), "%s", err.msg);
    const uint32_t L = whole->hp.n_layer;
    /* three stages of uneven size: [0, 2), [2, 4), [4, L) */
    const uint32_t cut[4] = {0, 2, 4, L};
    enum { NS = 3 };
    vkl_model *part[NS];
    uint64_t part_bytes = 0;
    for (int s = 0; s < NS; s++) {
        T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &part[s], &err), "%s", err.msg);
        T_ASSERT(!vkl_model_upload_layers(part[s], vk, cut[s], cut[s + 1], &err), "%s", err.msg);
        T_ASSERT(part[s]->device_bytes < whole->device_bytes, "stage %d holds %llu of %llu bytes", s,
                 (unsigned long long)part[s]->device_bytes, (unsigned long long)whole->device_bytes);
        part_bytes += part[s]->device_bytes;
    }
    /* each weight once, except the (tied) embedding that the first and the last stage both hold */
    T_ASSERT(part_bytes >= whole->device_bytes && part_bytes <= whole->device_bytes + whole->tok_embd.bytes + 8,
             "stages hold %llu bytes, the whole model %llu", (unsigned long long)part_bytes,
             (unsigned long long)whole->device_bytes);
    T_ASSERT(vkl_model_upload_layers(part[0], vk, 3, 3, &err) == VKL_ERR_INPUT && strstr(err.msg, "[3, 3)"), "%s",
             err.msg);
    vkl_err_clear(&err);

    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(whole, VKL_TM_ALL, 8, 16, false, &l, &err), "%s", err.msg);
    vkl_lora_init(l, 21);
    t_rng_seed(7);
    for (uint32_t i = 0; i < l->n_slots; i++) /* B != 0, so that every gradient reaches A and the residual */
        for (uint64_t k = 0; k < (uint64_t)l->slots[i].out * l->r; k++)
            l->params[l->slots[i].b_off + k] = t_rng_uniform(-0.05f, 0.05f);
    const uint32_t B = 2, T = 19, R = B * T, V = whole->hp.n_vocab, C = whole->hp.n_embd;
    int32_t *tok = malloc(R * 4), *pos = malloc(R * 4), *seg = malloc(R * 4), *tgt = malloc(R * 4);
    for (uint32_t i = 0; i < R; i++) {
        tok[i] = (int32_t)(t_rng_u32() % V);
        pos[i] = (int32_t)(i % T);
        seg[i] = 0;
    }
    for (uint32_t i = 0; i < R; i++) tgt[i] = (i + 1) % T && i % 5 ? tok[i + 1] : -1;
    const uint64_t n = l->n_params;
    float *ref = malloc(n * 4), *sum = malloc(n * 4), *g = malloc(n * 4);
    float *x[NS + 1], *dx[NS + 1];
    for (int s = 0; s <= NS; s++) x[s] = malloc((size_t)R * C * 4), dx[s] = malloc((size_t)R * C * 4);
    const float scale = 1.0f / 31;
    for (int mode = 0; mode < VKL_GRAD_CKPT_COUNT; mode++) {
        vkl_grad_ckpt ck = (vkl_grad_ckpt)mode;
        vkl_train_dev *t;
        double nll_ref, nll_eval_ref;
        T_ASSERT(!vkl_train_dev_create(vk, whole, l, B, T, ck, &t, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_eval_batch(t, tok, pos, seg, tgt, &nll_eval_ref, &err), "%s", err.msg);
        vkl_train_set_dropout(t, 0.25f, 3, 65536 * 2 + 1);
        T_ASSERT(!vkl_train_micro_step(t, tok, pos, seg, tgt, scale, &nll_ref, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_dev_read(t, NULL, NULL, NULL, ref, &err), "%s", err.msg);
        vkl_train_dev_destroy(t);

        vkl_train_dev *st[NS];
        for (int s = 0; s < NS; s++) {
            T_ASSERT(!vkl_train_dev_create_layers(vk, part[s], l, B, T, ck, cut[s], cut[s + 1], &st[s], &err), "%s",
                     err.msg);
            /* fewer layers (and no head before the last): less memory, except that "unsloth" keeps two residual
             * buffers and one set of activations whatever the number of layers */
            uint64_t whole_plan = vkl_train_plan_bytes(&whole->hp, l, B, T, ck);
            T_ASSERT(s == NS - 1 && ck == VKL_GRAD_CKPT_UNSLOTH ? st[s]->planned_bytes == whole_plan
                                                                 : st[s]->planned_bytes < whole_plan,
                     "mode %d: stage %d plans %llu bytes, the whole state %llu", mode, s,
                     (unsigned long long)st[s]->planned_bytes, (unsigned long long)whole_plan);
            T_ASSERT(!vkl_train_dev_load_params(st[s], NULL, NULL, &err), "%s", err.msg);
        }
        /* evaluation: the forward through the stages */
        double nll_eval = 0, nll = 0, ns;
        for (int s = 0; s < NS; s++) {
            T_ASSERT(!vkl_train_stage_forward(st[s], tok, pos, seg, tgt, false, 0, x[s], x[s + 1], NULL, &ns, &err),
                     "%s", err.msg);
            nll_eval += ns;
        }
        /* a training micro-step: forward down the stages (the last also goes back), then back up */
        for (int s = 0; s < NS; s++) {
            vkl_train_set_dropout(st[s], 0.25f, 3, 65536 * 2 + 1);
            T_ASSERT(!vkl_train_stage_forward(st[s], tok, pos, seg, tgt, true, scale, x[s], x[s + 1], dx[s], &ns,
                                              &err),
                     "%s", err.msg);
            nll += ns;
        }
        for (int s = NS - 2; s >= 0; s--)
            T_ASSERT(!vkl_train_stage_backward(st[s], dx[s + 1], dx[s], &err), "%s", err.msg);
        T_ASSERT(vkl_train_stage_backward(st[NS - 1], dx[0], dx[1], &err) == VKL_ERR_INPUT, "the last stage's "
                 "backward is refused");
        vkl_err_clear(&err);
        memset(sum, 0, n * 4);
        for (int s = 0; s < NS; s++) {
            T_ASSERT(!vkl_train_dev_read(st[s], NULL, NULL, NULL, g, &err), "%s", err.msg);
            for (uint64_t k = 0; k < n; k++) {
                if (g[k] != 0 && !param_in_layers(l, k, cut[s], cut[s + 1]))
                    T_FAIL("mode %d: stage %d has gradient %g at parameter %llu outside its layers", mode, s, g[k],
                           (unsigned long long)k);
                sum[k] += g[k];
            }
            vkl_train_dev_destroy(st[s]);
        }
        double rel = t_max_rel_err(sum, ref, n);
        T_ASSERT(nll_eval == nll_eval_ref, "mode %d: eval NLL %.9g through stages vs %.9g", mode, nll_eval,
                 nll_eval_ref);
        T_ASSERT(nll == nll_ref, "mode %d: NLL %.9g through stages vs %.9g", mode, nll, nll_ref);
        T_ASSERT(rel == 0, "mode %d: summed stage gradients vs one state: rel err %.3g (want bit-identical)", mode,
                 rel);
    }
    for (int s = 0; s <= NS; s++) free(x[s]), free(dx[s]);
    free(tok), free(pos), free(seg), free(tgt), free(ref), free(sum), free(g);
    vkl_lora_free(l);
    for (int s = 0; s < NS; s++) vkl_model_free(part[s]);
    vkl_model_free(whole);
    return 0;
}

const vkl_test_case vkl_tests_split[] = {
    {"split/stages_equal_whole", test_stages_equal_whole},
    {NULL, NULL},
};
