/* llama.cpp's per-tensor quantization rules (the q4_k_m ... f32 mixes), the threaded row converter, and the three
 * users: GGUF-to-GGUF quantization, quantize-on-load of a vkl_model, and merging a LoRA adapter into its base. */
#include "vklora/quantize.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform.h"
#include "vklora/adapter.h"
#include "vklora/gguf.h"
#include "vklora/hf.h"
#include "vklora/lora.h"
#include "vklora/quant.h"

/* GGML_QNT_VERSION, written as general.quantization_version as llama-quantize does. */
#define QNT_VERSION 2

int vkl_quant_mode_ftype(vkl_quant_mode mode) {
    switch (mode) {
    case VKL_QUANT_F32: return 0;
    case VKL_QUANT_F16: return 1;
    case VKL_QUANT_Q4_0: return 2;
    case VKL_QUANT_Q8_0: return 7;
    case VKL_QUANT_Q4_K_M: return 15;
    case VKL_QUANT_Q5_K_M: return 17;
    case VKL_QUANT_Q6_K: return 18;
    case VKL_QUANT_BF16: return 32;
    default: return -1;
    }
}

int vkl_quant_mode_from_name(const char *name) {
    for (int i = 0; i < VKL_QUANT_COUNT; i++)
        if (!strcasecmp(name, vkl_quant_mode_names[i])) return i;
    return -1;
}

static uint32_t default_type(vkl_quant_mode mode) {
    switch (mode) {
    case VKL_QUANT_Q4_K_M: return VKL_TYPE_Q4_K;
    case VKL_QUANT_Q5_K_M: return VKL_TYPE_Q5_K;
    case VKL_QUANT_Q6_K: return VKL_TYPE_Q6_K;
    case VKL_QUANT_Q8_0: return VKL_TYPE_Q8_0;
    case VKL_QUANT_Q4_0: return VKL_TYPE_Q4_0;
    case VKL_QUANT_F16: return VKL_TYPE_F16;
    case VKL_QUANT_BF16: return VKL_TYPE_BF16;
    default: return VKL_TYPE_F32;
    }
}

static bool is_block_quant(uint32_t type) {
    return type != VKL_TYPE_F32 && type != VKL_TYPE_F16 && type != VKL_TYPE_BF16;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* llama.cpp's "use more bits" layers: the first and last eighth, and every third layer in between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* llama.cpp counts attn_v / ffn_down tensors in (layer, name) order, which for a dense model is the layer number. */
static int layer_of(const char *name) {
    unsigned l;
    return sscanf(name, "blk.%u.", &l) == 1 ? (int)l : 0;
}

uint32_t vkl_quant_tensor_type(const vkl_quant_layout *lay, vkl_quant_mode mode, const char *name, uint32_t n_dims,
                               uint64_t ne0, uint32_t cur_type) {
    if (mode == VKL_QUANT_KEEP || mode >= VKL_QUANT_COUNT) return cur_type;
    /* llama.cpp converts 2D+ tensors whose name ends in "weight", norms excepted */
    if (n_dims < 2 || !ends_with(name, "weight") || strstr(name, "_norm.weight")) return cur_type;
    uint32_t def = default_type(mode), type = def;
    if (!is_block_quant(def)) return def; /* f32 / f16 / bf16: every 2D weight, no per-tensor rules */
    const bool is_output = !strcmp(name, "output.weight");
    const bool is_embd = !strcmp(name, "token_embd.weight");
    const bool km = mode == VKL_QUANT_Q4_K_M || mode == VKL_QUANT_Q5_K_M;
    const int n_layer = (int)lay->n_layer;
    if (is_output || (is_embd && !lay->has_output)) {
        if (ne0 % QK_K) type = VKL_TYPE_Q8_0;
        else if (def != VKL_TYPE_Q8_0) type = VKL_TYPE_Q6_K;
    } else if (is_embd) {
        /* the untied embedding keeps the default type for these mixes */
    } else if (strstr(name, "attn_qkv.weight")) {
        /* fused q/k/v (Phi-3): one step up in the K-quant mixes */
        if (mode == VKL_QUANT_Q4_K_M) type = VKL_TYPE_Q5_K;
        else if (mode == VKL_QUANT_Q5_K_M) type = VKL_TYPE_Q6_K;
    } else if (strstr(name, "attn_v.weight")) {
        if (km && use_more_bits(layer_of(name), n_layer)) type = VKL_TYPE_Q6_K;
        /* llama's 70B (80 layers, grouped-query attention): attn_v is 8x smaller than attn_q, so it gets more bits */
        bool is_70b = lay->arch == VKL_ARCH_LLAMA && lay->n_layer == 80 && lay->n_head != lay->n_head_kv;
        if (is_70b && type == VKL_TYPE_Q4_K) type = VKL_TYPE_Q5_K;
    } else if (strstr(name, "ffn_down")) {
        if (km && use_more_bits(layer_of(name), n_layer)) type = VKL_TYPE_Q6_K;
    }
    /* Row lengths the block does not divide (llama.cpp: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0; those two
     * 32-blocks are not vklora types, so Q8_0, the nearest supported type with more precision). */
    const vkl_type_traits *tr = vkl_type_traits_get(type);
    if (ne0 % tr->block_size) {
        if (type == VKL_TYPE_Q4_K || type == VKL_TYPE_Q5_K || type == VKL_TYPE_Q6_K) type = VKL_TYPE_Q8_0;
        if (ne0 % vkl_type_traits_get(type)->block_size) type = VKL_TYPE_F16;
    }
    return type;
}

/* ---- threaded row conversion ---- */

typedef struct {
    uint32_t src_type, dst_type;
    const uint8_t *src;
    uint8_t *dst;
    uint64_t cols, src_row, dst_row;
    uint64_t r0, r1;
    const vkl_quant_delta *delta;
    bool want_err;
    double err2, ref2;
    bool ok;
} row_job;

static void *row_worker(void *arg) {
    row_job *j = arg;
    float *x = malloc(j->cols * sizeof(float)), *y = j->want_err ? malloc(j->cols * sizeof(float)) : NULL;
    double *acc = j->delta ? malloc(j->cols * sizeof(double)) : NULL;
    j->ok = x && (!j->want_err || y) && (!j->delta || acc);
    for (uint64_t i = j->r0; j->ok && i < j->r1; i++) {
        if (!vkl_ref_dequantize(j->src_type, j->src + i * j->src_row, x, j->cols)) {
            j->ok = false;
            break;
        }
        if (j->delta) {
            /* fp64 accumulation so the merged weight is as exact as fp32 can hold it */
            const vkl_quant_delta *d = j->delta;
            memset(acc, 0, j->cols * sizeof(double));
            for (uint32_t k = 0; k < d->r; k++) {
                double b = (double)d->scale * d->B[i * d->r + k];
                const float *a = d->A + (uint64_t)k * j->cols;
                for (uint64_t c = 0; c < j->cols; c++) acc[c] += b * a[c];
            }
            for (uint64_t c = 0; c < j->cols; c++) x[c] = (float)((double)x[c] + acc[c]);
        }
        if (!vkl_ref_quantize(j->dst_type, x, j->dst + i * j->dst_row, j->cols)) {
            j->ok = false;
            break;
        }
        if (j->want_err) {
            vkl_ref_dequantize(j->dst_type, j->dst + i * j->dst_row, y, j->cols);
            for (uint64_t c = 0; c < j->cols; c++) {
                double e = (double)y[c] - x[c];
                j->err2 += e * e;
                j->ref2 += (double)x[c] * x[c];
            }
        }
    }
    free(x);
    free(y);
    free(acc);
    return NULL;
}

static int n_threads_for(uint64_t rows, uint64_t cols) {
    long ncpu = vkl_os_cpu_count();
    int n = ncpu > 0 ? (int)VKL_MIN(ncpu, 16L) : 1;
    /* below ~64K elements per thread the thread start costs more than it saves */
    uint64_t by_size = rows * cols / 65536 + 1;
    return (int)VKL_MIN((uint64_t)n, VKL_MIN(by_size, rows));
}

vkl_status vkl_quantize_rows(uint32_t src_type, const void *src, uint32_t dst_type, void *dst, uint64_t rows,
                             uint64_t cols, const vkl_quant_delta *delta, double *rel_rmse, vkl_err *err) {
    uint64_t src_row, dst_row;
    const vkl_type_traits *ts = vkl_type_traits_get(src_type), *td = vkl_type_traits_get(dst_type);
    if (!ts || !ts->supported || !vkl_type_row_bytes(src_type, cols, &src_row))
        return vkl_err_set(err, VKL_ERR_INPUT, "quantize: cannot read rows of %" PRIu64 " elements in type %s", cols,
                           ts && ts->name ? ts->name : "unknown");
    if (!td || !td->supported || !vkl_type_row_bytes(dst_type, cols, &dst_row))
        return vkl_err_set(err, VKL_ERR_INPUT, "quantize: cannot write rows of %" PRIu64 " elements in type %s",
                           cols, td && td->name ? td->name : "unknown");
    if (rel_rmse) *rel_rmse = 0;
    if (rows == 0 || cols == 0) return VKL_OK;
    int nt = n_threads_for(rows, cols);
    row_job *jobs = vkl_calloc((size_t)nt, sizeof(*jobs));
    pthread_t *th = vkl_calloc((size_t)nt, sizeof(*th));
    bool *started = vkl_calloc((size_t)nt, sizeof(*started));
    for (int t = 0; t < nt; t++) {
        row_job *j = &jobs[t];
        *j = (row_job){.src_type = src_type, .dst_type = dst_type, .src = src, .dst = dst, .cols = cols,
                       .src_row = src_row, .dst_row = dst_row, .r0 = rows * t / nt, .r1 = rows * (t + 1) / nt,
                       .delta = delta, .want_err = rel_rmse != NULL};
        /* thread 0 runs on the caller; a failed thread start runs its share inline */
        if (t > 0 && !pthread_create(&th[t], NULL, row_worker, j)) started[t] = true;
    }
    row_worker(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else row_worker(&jobs[t]);
    }
    double err2 = 0, ref2 = 0;
    bool ok = true;
    for (int t = 0; t < nt; t++) {
        err2 += jobs[t].err2;
        ref2 += jobs[t].ref2;
        ok &= jobs[t].ok;
    }
    free(jobs);
    free(th);
    free(started);
    if (!ok) return vkl_err_set(err, VKL_ERR_RUNTIME, "quantize: out of memory converting %s to %s", ts->name,
                                td->name);
    if (rel_rmse) *rel_rmse = ref2 > 0 ? sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0);
    return VKL_OK;
}

void vkl_quant_report_free(vkl_quant_report *r) {
    if (!r) return;
    for (uint32_t i = 0; i < r->n; i++) free(r->t[i].name);
    free(r->t);
    memset(r, 0, sizeof(*r));
}

static const char *tname(uint32_t type) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    return t && t->name ? t->name : "unknown";
}

static uint64_t n_rows_of(const vkl_gguf_tensor *t) {
    uint64_t n = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) n *= (uint64_t)t->ne[d];
    return n;
}

static bool layout_of(const vkl_gguf *g, vkl_quant_layout *lay, vkl_err *err) {
    vkl_hparams hp;
    if (vkl_hparams_read(g, &hp, err)) return false;
    *lay = (vkl_quant_layout){.arch = hp.arch, .n_layer = hp.n_layer, .n_head = hp.n_head,
                              .n_head_kv = hp.n_head_kv,
                              .has_output = vkl_gguf_find_tensor(g, "output.weight") >= 0};
    vkl_hparams_free(&hp);
    return true;
}

/* The (layer, module) of an adaptable projection from its GGUF name, or false. */
/* Shared by quantize and merge: write every tensor of `g` converted as `mode` decides, with the optional adapter
 * merged in. `lora` NULL = plain quantization (no requantizing of quantized tensors). */
static vkl_status convert_gguf(const vkl_gguf *g, const char *out_path, vkl_quant_mode mode, const vkl_lora *lora,
                               float scale, vkl_quant_report *rep, vkl_err *err) {
    vkl_quant_layout lay;
    if (!layout_of(g, &lay, err)) return err->status;
    memset(rep, 0, sizeof(*rep));
    rep->file_type = vkl_quant_mode_ftype(mode);
    rep->t = vkl_calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*rep->t));
    void **bufs = vkl_calloc(g->n_tensors ? g->n_tensors : 1, sizeof(void *));
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, g->alignment);
    for (uint64_t i = 0; i < g->n_kv; i++) vkl_gguf_writer_set_value(w, g->kv[i].key.str, &g->kv[i].value);
    if (mode != VKL_QUANT_KEEP) {
        vkl_gguf_writer_set_u32(w, "general.quantization_version", QNT_VERSION);
        vkl_gguf_writer_set_u32(w, "general.file_type", (uint32_t)rep->file_type);
    }
    vkl_status st = VKL_OK;
    for (uint64_t i = 0; i < g->n_tensors && !st; i++) {
        const vkl_gguf_tensor *t = &g->tensors[i];
        const char *name = t->name.str;
        uint32_t to = vkl_quant_tensor_type(&lay, mode, name, t->n_dims, (uint64_t)t->ne[0], t->type);
        const vkl_lora_slot *slot = NULL;
        uint32_t layer, module;
        const char *rest;
        if (lora && vkl_gguf_projection_name(name, vkl_arch_get(lay.arch), &layer, &module, &rest) &&
            !strcmp(rest, ".weight"))
            slot = vkl_lora_slot_get(lora, layer, module);
        vkl_quant_tensor_info *info = &rep->t[rep->n++];
        info->name = vkl_strdup(name);
        info->from_type = t->type;
        info->to_type = to;
        info->adapted = slot != NULL;
        rep->bytes_in += t->size;
        const void *data = t->data;
        uint64_t bytes = t->size;
        if (to != t->type || slot) {
            if (!lora && is_block_quant(t->type)) {
                st = vkl_err_set(err, VKL_ERR_INPUT,
                                 "quantize: %s: tensor '%s' is already %s; requantizing to %s is not supported "
                                 "(quantize the F32/F16/BF16 model instead)", g->path, name, tname(t->type), tname(to));
                break;
            }
            uint64_t rows = n_rows_of(t), cols = (uint64_t)t->ne[0], row_bytes;
            if (!vkl_type_row_bytes(to, cols, &row_bytes) || (rows && row_bytes > UINT64_MAX / rows)) {
                st = vkl_err_set(err, VKL_ERR_INPUT, "quantize: %s: tensor '%s': bad row length %" PRIu64 " for %s",
                                 g->path, name, cols, tname(to));
                break;
            }
            bytes = rows * row_bytes;
            bufs[i] = malloc(bytes ? bytes : 1);
            if (!bufs[i]) {
                st = vkl_err_set(err, VKL_ERR_RUNTIME, "quantize: out of memory for tensor '%s' (%" PRIu64 " bytes)",
                                 name, bytes);
                break;
            }
            vkl_quant_delta d;
            if (slot) {
                if (slot->in != cols || slot->out != rows) {
                    st = vkl_err_set(err, VKL_ERR_INPUT, "merge: adapter for '%s' is %u x %u, the tensor %" PRIu64
                                     " x %" PRIu64, name, slot->out, slot->in, rows, cols);
                    break;
                }
                d = (vkl_quant_delta){.A = lora->params + slot->a_off, .B = lora->params + slot->b_off, .r = lora->r,
                                      .scale = lora->scale * scale};
            }
            st = vkl_quantize_rows(t->type, t->data, to, bufs[i], rows, cols, slot ? &d : NULL, &info->rel_rmse, err);
            if (st) {
                char msg[sizeof(err->msg)];
                snprintf(msg, sizeof(msg), "%s", err->msg);
                vkl_err_clear(err);
                st = vkl_err_set(err, st, "%s: tensor '%s': %s", g->path, name, msg);
                break;
            }
            data = bufs[i];
        }
        info->bytes = bytes;
        rep->bytes_out += bytes;
        st = vkl_gguf_writer_add_tensor(w, name, to, t->n_dims, t->ne, data, err);
    }
    if (!st) st = vkl_gguf_writer_write(w, out_path, err);
    vkl_gguf_writer_free(w);
    for (uint64_t i = 0; i < g->n_tensors; i++) free(bufs[i]);
    free(bufs);
    if (st) vkl_quant_report_free(rep);
    return st;
}

vkl_status vkl_quantize_file(const char *in_path, const char *out_path, vkl_quant_mode mode, vkl_quant_report *rep,
                             vkl_err *err) {
    memset(rep, 0, sizeof(*rep));
    if (mode == VKL_QUANT_KEEP || mode >= VKL_QUANT_COUNT)
        return vkl_err_set(err, VKL_ERR_INPUT, "quantize: a target type is needed (q4_k_m q5_k_m q6_k q8_0 q4_0 f16 "
                           "bf16 f32), not \"keep\"");
    vkl_gguf *g;
    if (vkl_gguf_open(in_path, &g, err)) return err->status;
    vkl_status st = convert_gguf(g, out_path, mode, NULL, 1.0f, rep, err);
    vkl_gguf_close(g);
    return st;
}

vkl_status vkl_merge_file(const char *model_path, const char *adapter_path, const char *out_path, vkl_quant_mode mode,
                          float scale, vkl_quant_report *rep, vkl_err *err) {
    memset(rep, 0, sizeof(*rep));
    if (mode >= VKL_QUANT_COUNT) return vkl_err_set(err, VKL_ERR_INPUT, "merge: bad quantization mode %d", (int)mode);
    if (!isfinite(scale)) return vkl_err_set(err, VKL_ERR_INPUT, "merge: the scale must be finite");
    vkl_model *m;
    vkl_lora *lora = NULL;
    vkl_hf_model *conv = NULL;
    if (vkl_model_load(model_path, &m, err)) return err->status;
    vkl_status st = vkl_adapter_load(adapter_path, m, &lora, err);
    const vkl_gguf *g = m->gguf;
    if (!st && m->hp.qk_hf_rows) {
        /* a folder with Hugging Face's q/k rows: merge into the view llama.cpp reads (its rows), with the adapter's
         * q/k B rows moved the same way */
        if (!(st = vkl_hf_open(model_path, VKL_HF_VIEW_CONVERT, &conv, err))) g = vkl_hf_gguf(conv);
        const uint32_t D = m->hp.head_dim;
        for (uint32_t i = 0; !st && i < lora->n_slots; i++) {
            const vkl_lora_slot *s = &lora->slots[i];
            if (s->module > 1) continue;
            float *B = lora->params + s->b_off, *copy = vkl_malloc((size_t)s->out * lora->r * sizeof(float));
            memcpy(copy, B, (size_t)s->out * lora->r * sizeof(float));
            for (uint32_t row = 0; row < s->out; row++)
                memcpy(B + (size_t)row * lora->r, copy + (size_t)vkl_adapter_hf_row_of_gguf_row(row, D) * lora->r,
                       lora->r * sizeof(float));
            free(copy);
        }
    }
    if (!st) st = convert_gguf(g, out_path, mode, lora, scale, rep, err);
    vkl_hf_close(conv);
    vkl_lora_free(lora);
    vkl_model_free(m);
    return st;
}

vkl_status vkl_convert_folder(const char *dir, const char *out_path, vkl_quant_mode mode, vkl_quant_report *rep,
                              vkl_err *err) {
    memset(rep, 0, sizeof(*rep));
    if (mode >= VKL_QUANT_COUNT) return vkl_err_set(err, VKL_ERR_INPUT, "convert: bad quantization mode %d", (int)mode);
    if (!vkl_hf_is_folder(dir))
        return vkl_err_set(err, VKL_ERR_INPUT, "convert: %s is not a folder (expected a Hugging Face model folder)",
                           dir);
    vkl_hf_model *h;
    if (vkl_hf_open(dir, VKL_HF_VIEW_CONVERT, &h, err)) return err->status;
    if (vkl_gguf_find_key(vkl_hf_gguf(h), "tokenizer.ggml.model") < 0) {
        vkl_hf_close(h);
        return vkl_err_set(err, VKL_ERR_INPUT, "convert: %s: no tokenizer.json, which llama.cpp needs in the GGUF (copy "
                           "the model's tokenizer.json and tokenizer_config.json into the folder)", dir);
    }
    vkl_status st = convert_gguf(vkl_hf_gguf(h), out_path, mode, NULL, 1.0f, rep, err);
    vkl_hf_close(h);
    return st;
}

vkl_status vkl_merge_to_hf(const char *model_path, const char *adapter_path, const char *out_dir, float scale,
                           vkl_err *err) {
    if (!isfinite(scale)) return vkl_err_set(err, VKL_ERR_INPUT, "merge: the scale must be finite");
    vkl_model *m;
    vkl_lora *lora = NULL;
    if (vkl_model_load(model_path, &m, err)) return err->status;
    vkl_status st = vkl_adapter_load(adapter_path, m, &lora, err);
    if (!st) st = vkl_hf_export(m, lora, scale, out_dir, true, err);
    vkl_lora_free(lora);
    vkl_model_free(m);
    return st;
}

vkl_status vkl_model_quantize(vkl_model *m, vkl_quant_mode mode, vkl_err *err) {
    if (mode == VKL_QUANT_KEEP) return VKL_OK;
    if (mode >= VKL_QUANT_COUNT) return vkl_err_set(err, VKL_ERR_INPUT, "quantize: bad quantization mode %d", (int)mode);
    if (m->vk) return vkl_err_set(err, VKL_ERR_INPUT, "quantize: the model is already on the device; quantize first");
    vkl_quant_layout lay = {.arch = m->hp.arch, .n_layer = m->hp.n_layer, .n_head = m->hp.n_head,
                            .n_head_kv = m->hp.n_head_kv, .has_output = !m->hp.tied_output};
    vkl_weight **ws = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(m), sizeof(*ws));
    int n = vkl_model_weights(m, ws);
    vkl_status st = VKL_OK;
    for (int i = 0; i < n && !st; i++) {
        vkl_weight *w = ws[i];
        const char *name = w->t->name.str;
        uint32_t to = vkl_quant_tensor_type(&lay, mode, name, w->t->n_dims, w->cols, w->type);
        if (to == w->type) continue;
        if (is_block_quant(w->type)) {
            st = vkl_err_set(err, VKL_ERR_INPUT,
                             "model: %s: model.quantization \"%s\" needs a full-precision base: tensor '%s' is "
                             "already %s (use \"keep\", or an F32/F16/BF16 GGUF)", m->gguf->path,
                             vkl_quant_mode_names[mode], name, tname(w->type));
            break;
        }
        uint64_t row_bytes;
        if (!vkl_type_row_bytes(to, w->cols, &row_bytes)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "model: %s: tensor '%s': row length %" PRIu64 " does not fit %s",
                             m->gguf->path, name, w->cols, tname(to));
            break;
        }
        uint64_t bytes = row_bytes * w->rows;
        void *buf = malloc(bytes ? bytes : 1);
        if (!buf) {
            st = vkl_err_set(err, VKL_ERR_RUNTIME, "model: out of memory quantizing '%s' (%" PRIu64 " bytes)", name,
                             bytes);
            break;
        }
        st = vkl_quantize_rows(w->type, w->data, to, buf, w->rows, w->cols, NULL, NULL, err);
        if (st) {
            free(buf);
            break;
        }
        free(w->owned);
        w->owned = buf;
        w->data = buf;
        w->type = to;
        w->bytes = bytes;
    }
    if (m->hp.tied_output) m->output = m->tok_embd;
    free(ws);
    return st;
}

void vkl_model_type_summary(const vkl_model *m, char *buf, size_t size) {
    vkl_weight **ws = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(m), sizeof(*ws));
    int n = vkl_model_weights((vkl_model *)m, ws);
    uint32_t count[VKL_TYPE_COUNT] = {0};
    for (int i = 0; i < n; i++)
        if (ws[i]->type < VKL_TYPE_COUNT) count[ws[i]->type]++;
    free(ws);
    size_t pos = 0;
    buf[0] = 0;
    for (uint32_t t = 0; t < VKL_TYPE_COUNT && pos < size; t++)
        if (count[t]) {
            int k = snprintf(buf + pos, size - pos, "%s%s x %u", pos ? ", " : "", tname(t), count[t]);
            if (k < 0) break;
            pos += (size_t)k;
        }
}
