/* llama-family model loading: hyper-parameters from GGUF metadata with llama.cpp's defaults, the tensor map with
 * shape and type checks, and the upload of every weight to the device in its own GGUF type. */
#include "vklora/model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"
#include "vklora/quant.h"

static bool get_u32(const vkl_gguf *g, const char *arch, const char *suffix, uint32_t *out, bool required,
                    uint32_t def, vkl_err *err) {
    char key[160];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    uint64_t v;
    if (!vkl_gguf_get_u64(g, key, &v)) {
        if (vkl_gguf_find_key(g, key) >= 0) {
            vkl_err_set(err, VKL_ERR_INPUT, "model: %s: metadata key %s: expected an unsigned integer", g->path, key);
            return false;
        }
        if (required) {
            vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing metadata key %s", g->path, key);
            return false;
        }
        v = def;
    }
    if (v > (1u << 30)) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: metadata key %s = %" PRIu64 " is out of range", g->path, key, v);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool get_f32(const vkl_gguf *g, const char *arch, const char *suffix, float *out, float def) {
    char key[160];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    double v;
    *out = vkl_gguf_get_f64(g, key, &v) ? (float)v : def;
    return true;
}

vkl_status vkl_hparams_read(const vkl_gguf *g, vkl_hparams *hp, vkl_err *err) {
    memset(hp, 0, sizeof(*hp));
    const char *arch = vkl_gguf_get_str(g, "general.architecture");
    if (!arch) return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing general.architecture (is this a model, "
                                  "or a vocabulary-only GGUF?)", g->path);
    hp->arch_name = arch;
    if (!strcmp(arch, "llama")) {
        hp->arch = VKL_ARCH_LLAMA;
    } else if (!strcmp(arch, "qwen2")) {
        hp->arch = VKL_ARCH_QWEN2;
        hp->rope_neox = true;
    } else {
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: architecture '%s' is not supported (supported: llama, qwen2)",
                           g->path, arch);
    }
    if (!get_u32(g, arch, "block_count", &hp->n_layer, true, 0, err) ||
        !get_u32(g, arch, "embedding_length", &hp->n_embd, true, 0, err) ||
        !get_u32(g, arch, "attention.head_count", &hp->n_head, true, 0, err) ||
        !get_u32(g, arch, "feed_forward_length", &hp->n_ff, true, 0, err) ||
        !get_u32(g, arch, "context_length", &hp->n_ctx_train, false, 2048, err))
        return err->status;
    if (hp->n_layer == 0 || hp->n_embd == 0 || hp->n_head == 0 || hp->n_ff == 0)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: block_count, embedding_length, head_count and "
                           "feed_forward_length must be positive", g->path);
    if (!get_u32(g, arch, "attention.head_count_kv", &hp->n_head_kv, false, hp->n_head, err)) return err->status;
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: %s.attention.head_count_kv = %u must divide head_count = %u",
                           g->path, arch, hp->n_head_kv, hp->n_head);
    if (hp->n_embd % hp->n_head)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: embedding_length %u is not a multiple of head_count %u",
                           g->path, hp->n_embd, hp->n_head);
    uint32_t key_len, val_len;
    if (!get_u32(g, arch, "attention.key_length", &key_len, false, hp->n_embd / hp->n_head, err) ||
        !get_u32(g, arch, "attention.value_length", &val_len, false, key_len, err))
        return err->status;
    if (key_len != hp->n_embd / hp->n_head || val_len != key_len)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: head dimension %u/%u differs from embedding_length / "
                           "head_count = %u, which vklora does not support yet", g->path, key_len, val_len,
                           hp->n_embd / hp->n_head);
    hp->head_dim = key_len;
    if (!get_u32(g, arch, "rope.dimension_count", &hp->rope_dim, false, hp->head_dim, err)) return err->status;
    if (hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: rope.dimension_count %u must be even and <= head dim %u",
                           g->path, hp->rope_dim, hp->head_dim);
    get_f32(g, arch, "rope.freq_base", &hp->rope_base, 10000.0f);
    get_f32(g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, 1e-5f);
    if (!(hp->rope_base > 0) || !(hp->rms_eps > 0) || !isfinite(hp->rope_base))
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: rope.freq_base and layer_norm_rms_epsilon must be positive",
                           g->path);
    char key[160];
    snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
    const char *scaling = vkl_gguf_get_str(g, key);
    if (scaling && strcmp(scaling, "none"))
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: rope scaling '%s' is not supported yet", g->path, scaling);
    const vkl_gguf_value *toks = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
    uint32_t vocab = toks ? (uint32_t)VKL_MIN(toks->v.arr.count, 1u << 30) : 0;
    if (!get_u32(g, arch, "vocab_size", &hp->n_vocab, false, vocab, err)) return err->status;
    return VKL_OK;
}

/* Bind a tensor by name and check its shape (ggml order: ne0 = cols, ne1 = rows) and type. */
static vkl_status bind(vkl_model *m, vkl_weight *w, const char *name, uint64_t cols, uint64_t rows, bool required,
                       bool must_be_f32, vkl_err *err) {
    const vkl_gguf *g = m->gguf;
    int64_t i = vkl_gguf_find_tensor(g, name);
    memset(w, 0, sizeof(*w));
    if (i < 0) {
        if (required) return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing tensor '%s'", g->path, name);
        return VKL_OK;
    }
    const vkl_gguf_tensor *t = &g->tensors[i];
    uint64_t ne1 = t->n_dims > 1 ? (uint64_t)t->ne[1] : 1;
    bool extra = (t->n_dims > 2 && t->ne[2] != 1) || (t->n_dims > 3 && t->ne[3] != 1);
    if ((uint64_t)t->ne[0] != cols || ne1 != rows || extra)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "model: %s: tensor '%s' has shape [%lld, %lld], expected [%llu, %llu] (ggml order)", g->path,
                           name, (long long)t->ne[0], (long long)ne1, (unsigned long long)cols,
                           (unsigned long long)rows);
    const vkl_type_traits *tr = vkl_type_traits_get(t->type);
    if (!tr || !tr->supported)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "model: %s: tensor '%s' has type %s, which vklora cannot compute with (supported: f32 f16 "
                           "bf16 q8_0 q4_0 q4_K q5_K q6_K; convert the model to one of them, e.g. with llama.cpp's llama-quantize)",
                           g->path, name, tr ? tr->name : "unknown");
    if (must_be_f32 && t->type != VKL_TYPE_F32)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: tensor '%s' must be f32 (norms and biases), got %s", g->path,
                           name, tr->name);
    if (cols % tr->block_size)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: tensor '%s': row length %llu is not a multiple of %s's "
                           "block size %u", g->path, name, (unsigned long long)cols, tr->name, tr->block_size);
    w->t = t;
    w->data = t->data;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->bytes = t->size;
    return VKL_OK;
}

vkl_status vkl_model_load(const char *path, vkl_model **out, vkl_err *err) {
    *out = NULL;
    vkl_model *m = vkl_calloc(1, sizeof(*m));
    if (vkl_gguf_open(path, &m->gguf, err)) goto fail;
    vkl_hparams *hp = &m->hp;
    if (vkl_hparams_read(m->gguf, hp, err)) goto fail;
    if (vkl_gguf_find_tensor(m->gguf, "rope_freqs.weight") >= 0) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: rope_freqs.weight (Llama 3.1 rope scaling) is not supported yet",
                    path);
        goto fail;
    }
    const uint64_t C = hp->n_embd, F = hp->n_ff, QD = (uint64_t)hp->n_head * hp->head_dim,
                   KVD = (uint64_t)hp->n_head_kv * hp->head_dim;
    /* The vocabulary size comes from the embedding when metadata lacks it. */
    int64_t ti = vkl_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (ti < 0) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing tensor 'token_embd.weight'", path);
        goto fail;
    }
    uint64_t V = m->gguf->tensors[ti].n_dims > 1 ? (uint64_t)m->gguf->tensors[ti].ne[1] : 0;
    if (hp->n_vocab && hp->n_vocab != V) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: token_embd.weight has %llu rows but the vocabulary has %u tokens",
                    path, (unsigned long long)V, hp->n_vocab);
        goto fail;
    }
    if (V == 0 || V > (1u << 24)) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: token_embd.weight: bad vocabulary size %llu", path,
                    (unsigned long long)V);
        goto fail;
    }
    hp->n_vocab = (uint32_t)V;
    if (bind(m, &m->tok_embd, "token_embd.weight", C, V, true, false, err) ||
        bind(m, &m->output_norm, "output_norm.weight", C, 1, true, true, err) ||
        bind(m, &m->output, "output.weight", C, V, false, false, err))
        goto fail;
    if (!m->output.t) {
        hp->tied_output = true;
        m->output = m->tok_embd;
    }
    m->layers = vkl_calloc(hp->n_layer, sizeof(*m->layers));
    bool bias = hp->arch == VKL_ARCH_QWEN2;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        vkl_layer_weights *L = &m->layers[l];
        char n[12][96];
        const char *names[] = {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                               "attn_output.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias",
                               "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
        for (int i = 0; i < 12; i++) snprintf(n[i], sizeof(n[i]), "blk.%u.%s", l, names[i]);
        if (bind(m, &L->attn_norm, n[0], C, 1, true, true, err) || bind(m, &L->wq, n[1], C, QD, true, false, err) ||
            bind(m, &L->wk, n[2], C, KVD, true, false, err) || bind(m, &L->wv, n[3], C, KVD, true, false, err) ||
            bind(m, &L->wo, n[4], QD, C, true, false, err) || bind(m, &L->bq, n[5], QD, 1, bias, true, err) ||
            bind(m, &L->bk, n[6], KVD, 1, bias, true, err) || bind(m, &L->bv, n[7], KVD, 1, bias, true, err) ||
            bind(m, &L->ffn_norm, n[8], C, 1, true, true, err) || bind(m, &L->w_gate, n[9], C, F, true, false, err) ||
            bind(m, &L->w_up, n[10], C, F, true, false, err) || bind(m, &L->w_down, n[11], F, C, true, false, err))
            goto fail;
    }
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        uint64_t ne = 1;
        for (uint32_t d = 0; d < m->gguf->tensors[i].n_dims; d++) ne *= (uint64_t)m->gguf->tensors[i].ne[d];
        m->n_params += ne;
    }
    *out = m;
    return VKL_OK;
fail:
    vkl_model_free(m);
    return err->status;
}

int vkl_model_weights(vkl_model *m, vkl_weight **ws) {
    int n = 0;
    ws[n++] = &m->tok_embd;
    ws[n++] = &m->output_norm;
    if (!m->hp.tied_output) ws[n++] = &m->output;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        vkl_layer_weights *L = &m->layers[l];
        vkl_weight *lw[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq,
                            &L->bk, &L->bv, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 12; i++)
            if (lw[i]->t) ws[n++] = lw[i];
    }
    return n;
}

vkl_weight *vkl_layer_projection(vkl_layer_weights *L, uint32_t module) {
    vkl_weight *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return module < 7 ? w[module] : NULL;
}

vkl_status vkl_model_upload(vkl_model *m, vkl_vk *vk, vkl_err *err) {
    vkl_weight **ws = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(m), sizeof(*ws));
    int n = vkl_model_weights(m, ws);
    m->vk = vk;
    vkl_status st = VKL_OK;
    uint64_t total = 0, budget = vkl_vk_memory_budget(vk);
    for (int i = 0; i < n; i++) total += ws[i]->bytes + 4;
    if (budget && total > budget) {
        free(ws);
        return vkl_err_set(err, VKL_ERR_RUNTIME,
                           "model: the weights need %.1f MiB of device memory, the device has %.1f MiB: use a smaller "
                           "or more strongly quantized model (vklora quantize)",
                           total / 1048576.0, budget / 1048576.0);
    }
    for (int i = 0; i < n && !st; i++) {
        vkl_weight *w = ws[i];
        w->buf = vkl_calloc(1, sizeof(vkl_buffer));
        /* +4: the shaders read whole 32-bit words, so a tensor whose size is not a multiple of 4 needs a tail */
        st = vkl_buffer_create(vk, w->bytes + 4, VKL_MEM_DEVICE, w->buf, err);
        if (!st) st = vkl_buffer_upload(vk, w->buf, 0, w->data, w->bytes, err);
        if (!st) m->device_bytes += w->buf->size;
        if (st) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            vkl_err_clear(err);
            vkl_err_set(err, st, "model: uploading '%s': %s", w->t->name.str, msg);
        }
    }
    if (m->hp.tied_output) m->output.buf = m->tok_embd.buf;
    free(ws);
    return st;
}

void vkl_model_free(vkl_model *m) {
    if (!m) return;
    if (m->layers) {
        vkl_weight **ws = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(m), sizeof(*ws));
        int n = vkl_model_weights(m, ws); /* the tied head is listed once, as tok_embd: one free each */
        for (int i = 0; i < n; i++) {
            if (m->vk && ws[i]->buf) {
                vkl_buffer_destroy(m->vk, ws[i]->buf);
                free(ws[i]->buf);
                ws[i]->buf = NULL;
            }
            free(ws[i]->owned);
        }
        free(ws);
    }
    free(m->layers);
    vkl_gguf_close(m->gguf);
    free(m);
}
