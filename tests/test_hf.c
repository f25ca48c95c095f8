/* Hugging Face model folders: every architecture exported from a random GGUF model to a folder (config.json +
 * safetensors) and read back gives the same forward on the device, and the convert view's tensors equal the
 * GGUF's; shards through model.safetensors.index.json; the folder's own errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "forward.h"
#include "vk/vk.h"
#include "vklora/gguf.h"
#include "vklora/adapter.h"
#include "vklora/hf.h"
#include "vklora/lora.h"
#include "vklora/model.h"
#include "vklora/quant.h"
#include "vklora/quantize.h"
#include "vklora/safetensors.h"
#include "vklora/tokenizer.h"

/* Logits of tokens under model m (with adapter l when not NULL) on the device (T x V floats, malloc'd). */
static float *device_logits_with(vkl_model *m, const vkl_lora *l, const int32_t *tok, uint32_t T) {
    vkl_vk *vk = t_vk();
    vkl_err err = {0};
    if (!vk || vkl_model_upload(m, vk, &err)) {
        fprintf(stderr, "    upload: %s\n", err.msg);
        return NULL;
    }
    vkl_fwd *f;
    vkl_fwd_dims d = {.max_seq = 1, .max_T = T, .n_ctx = T};
    float *logits = malloc((size_t)T * m->hp.n_vocab * 4), nll[64];
    int32_t tgt[64];
    for (uint32_t i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1; /* scoring keeps every row's logits */
    if (T > 64 || vkl_fwd_create(vk, m, &d, &f, &err) || (l && vkl_fwd_set_adapter(f, l, 1.0f, &err)) ||
        vkl_fwd_run(f, tok, 1, T, 0, tgt, nll, NULL, &err) ||
        f->logit_rows < T ||
        vkl_buffer_download(vk, &f->logits, 0, logits, (uint64_t)T * m->hp.n_vocab * 4, &err)) {
        fprintf(stderr, "    forward: %s\n", err.msg);
        free(logits);
        logits = NULL;
    }
    vkl_fwd_destroy(f);
    return logits;
}

static float *device_logits(vkl_model *m, const int32_t *tok, uint32_t T) { return device_logits_with(m, NULL, tok, T); }

/* Models a and b (the same weights read two ways) give the same logits on T (<= 64) random tokens: within 1e-4 of
 * the largest logit, float rounding, far below what a wrong row order, norm or tensor moves. */
static int same_logits(vkl_model *a, vkl_model *b, uint32_t T, const char *what) {
    const uint32_t V = a->hp.n_vocab;
    int32_t tok[64];
    T_ASSERT(T <= 64 && b->hp.n_vocab == V, "%s: shapes", what);
    for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)(t_rng_u32() % V);
    float *la = device_logits(a, tok, T), *lb = device_logits(b, tok, T);
    T_ASSERT(la && lb, "%s: logits", what);
    double e = t_max_rel_err(lb, la, (size_t)T * V);
    free(la), free(lb);
    T_ASSERT(e < 1e-4, "%s: max rel err %.3g", what, e);
    return 0;
}

/* A tensor's elements as floats (F32, F16, BF16). */
static float *tensor_f32(const vkl_gguf_tensor *t) {
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->ne[d];
    float *f = malloc(n * 4);
    if (!vkl_ref_dequantize(t->type, t->data, f, n)) {
        free(f);
        return NULL;
    }
    return f;
}

/* Logits of tokens for the folder `dir` from tests/torch_ref/hf_forward.py (float64 PyTorch written from the
 * transformers modeling code, independent of vklora's importer and exporter); malloc'd T x V, NULL on failure. */
static float *hf_reference_logits(const char *dir, const int32_t *tok, uint32_t T, uint32_t V) {
    char tp[600], op[600], cmd[2048];
    snprintf(tp, sizeof(tp), "%s/tokens.json", dir);
    snprintf(op, sizeof(op), "%s/ref_logits.json", dir);
    FILE *f = fopen(tp, "w");
    if (!f) return NULL;
    fprintf(f, "{\"tokens\": [");
    for (uint32_t i = 0; i < T; i++) fprintf(f, "%s%d", i ? ", " : "", tok[i]);
    fprintf(f, "]}");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/torch_ref/hf_forward.py %s %s %s", VKL_SOURCE_ROOT, dir, tp,
             op);
    char *out = NULL, *err = NULL;
    int rc = t_run(cmd, &out, &err);
    if (rc) fprintf(stderr, "    %s: exit %d: %s\n", cmd, rc, err ? err : "");
    free(out), free(err);
    remove(tp);
    if (rc) return NULL;
    char *text = t_read_file(op, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    remove(op);
    const cJSON *rows = cJSON_GetObjectItem(j, "logits");
    float *l = NULL;
    if (cJSON_GetArraySize(rows) == (int)T) {
        l = malloc((size_t)T * V * 4);
        uint32_t t = 0;
        for (const cJSON *r = rows->child; r && l; r = r->next, t++) {
            uint32_t v = 0;
            for (const cJSON *e = r->child; e && v < V; e = e->next) l[(size_t)t * V + v++] = (float)e->valuedouble;
            if (v != V) free(l), l = NULL;
        }
    }
    cJSON_Delete(j);
    return l;
}

/* Set rope_scaling.<key> = value in dir/config.json (an attention_factor Hugging Face gives explicitly). */
static int patch_rope(const char *dir, const char *key, double value) {
    char p[600];
    snprintf(p, sizeof(p), "%s/config.json", dir);
    char *text = t_read_file(p, NULL);
    cJSON *c = text ? cJSON_Parse(text) : NULL;
    free(text);
    cJSON *rs = cJSON_GetObjectItem(c, "rope_scaling");
    if (!rs) return 1;
    cJSON_DeleteItemFromObject(rs, key);
    cJSON_AddNumberToObject(rs, key, value);
    text = cJSON_Print(c);
    FILE *f = fopen(p, "w");
    int rc = !f || fputs(text, f) < 0;
    if (f) rc |= fclose(f) != 0;
    free(text);
    cJSON_Delete(c);
    return rc;
}

/* A random model and its folder: `vklora-mkmodel` with the usual small shape (dim 256, FFN 512, 2 layers, 4 heads,
 * 2 KV heads; later options override) into t_tmpdir()/NAME.gguf, loaded into *a, exported to the folder
 * t_tmpdir()/NAME (BF16 weights when bf16). path and dir receive the two paths (512 bytes each). */
static int model_and_folder(const char *name, const char *mkargs, bool bf16, char *path, char *dir, vkl_model **a) {
    char cmd[2048];
    vkl_err err = {0};
    snprintf(path, 512, "%s/%s.gguf", t_tmpdir(), name);
    snprintf(dir, 512, "%s/%s", t_tmpdir(), name);
    snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --dim 256 --ff 512 --layers 2 --heads 4 --kv-heads 2 %s >/dev/null",
             VKL_BUILD_ROOT, path, mkargs);
    T_ASSERT(system(cmd) == 0, "mkmodel %s", mkargs);
    T_ASSERT(!vkl_model_load(path, a, &err), "%s", err.msg);
    T_ASSERT(!vkl_hf_export(*a, NULL, 1.0f, dir, bf16, &err), "%s: export: %s", name, err.msg);
    return 0;
}

/* GGUF model (mkmodel) -> folder -> model: the same logits; and the convert view of the folder holds the GGUF's
 * tensors (q/k permuted back into llama.cpp's rows, Gemma's norms as 1 + w), so export and import are inverses. */
static int check_round_trip(const char *arch, const char *type, const char *extra) {
    char path[512], dir[512], name[64], args[512];
    vkl_err err = {0};
    vkl_model *a, *b;
    snprintf(name, sizeof(name), "hf-%s-%s", arch, type);
    snprintf(args, sizeof(args), "--arch %s --type %s --seed 5 %s", arch, type, extra);
    if (model_and_folder(name, args, !strcmp(type, "bf16"), path, dir, &a)) return 1;
    T_ASSERT(!vkl_model_load(dir, &b, &err), "%s %s: folder: %s", arch, type, err.msg);
    T_ASSERT(b->hp.n_layer == a->hp.n_layer && b->hp.rope_dim == a->hp.rope_dim && b->hp.n_vocab == a->hp.n_vocab &&
                 b->hp.tied_output == a->hp.tied_output && b->hp.n_swa == a->hp.n_swa &&
                 b->hp.rope_scaling == a->hp.rope_scaling && b->hp.final_softcap == a->hp.final_softcap &&
                 b->hp.attn_temp_scale == a->hp.attn_temp_scale,
             "%s %s: hyper-parameters differ after the round trip", arch, type);
    for (uint32_t l = 0; l < a->hp.n_layer; l++)
        T_ASSERT(a->hp.layer[l].window == b->hp.layer[l].window && a->hp.layer[l].rope == b->hp.layer[l].rope,
                 "%s: layer %u window/rope table", arch, l);
    T_ASSERT(b->hp.qk_hf_rows == !vkl_arch_find(arch)->rope_neox, "%s: q/k rows flag", arch);
    /* rope factor tables are rebuilt from config.json: equal to float precision */
    const vkl_weight *ta[] = {&a->rope_freqs, &a->rope_long, &a->rope_short},
                     *tb[] = {&b->rope_freqs, &b->rope_long, &b->rope_short};
    for (int i = 0; i < 3; i++) {
        T_ASSERT(!ta[i]->t == !tb[i]->t, "%s: rope table %d present on one side only", arch, i);
        for (uint64_t j = 0; ta[i]->t && j < ta[i]->cols; j++) {
            float x = ((const float *)ta[i]->data)[j], y = ((const float *)tb[i]->data)[j];
            T_ASSERT(fabsf(x - y) <= 1e-5f * fabsf(x), "%s: rope table %d [%llu]: %g vs %g", arch, i,
                     (unsigned long long)j, x, y);
        }
    }

    const uint32_t T = 29, V = a->hp.n_vocab;
    int32_t tok[29];
    for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)(t_rng_u32() % V);
    float *la = device_logits(a, tok, T), *lb = device_logits(b, tok, T);
    T_ASSERT(la && lb, "forward");
    /* the same weights (BF16 exported from BF16, F32 from F32), rope pairs in another layout and Gemma's norms as
     * (w - 1) + 1: logits agree to float rounding, far below what a wrong row order or norm would move */
    double e = t_max_rel_err(lb, la, (size_t)T * V);
    T_ASSERT(e < 1e-4, "%s %s: folder logits vs GGUF logits: max rel err %.3g", arch, type, e);
    /* the independent reference reads the folder as transformers would: agreement proves the folder is a real
     * Hugging Face model of the family, not just something our importer inverts; float64 against fp32 logits */
    float *lr = hf_reference_logits(dir, tok, T, V);
    T_ASSERT(lr, "%s %s: hf_forward.py failed", arch, type);
    e = t_max_rel_err(lb, lr, (size_t)T * V);
    T_ASSERT(e < 5e-4, "%s %s: folder logits vs transformers-semantics reference: max rel err %.3g", arch, type, e);
    free(lr);
    free(la), free(lb);

    vkl_hf_model *h;
    T_ASSERT(!vkl_hf_open(dir, VKL_HF_VIEW_CONVERT, &h, &err), "%s", err.msg);
    const vkl_gguf *g = vkl_hf_gguf(h);
    T_ASSERT(vkl_gguf_find_key(g, "vklora.rope_neox") < 0, "the convert view is llama.cpp's layout");
    for (uint64_t i = 0; i < a->gguf->n_tensors; i++) {
        const vkl_gguf_tensor *x = &a->gguf->tensors[i];
        int64_t k = vkl_gguf_find_tensor(g, x->name.str);
        T_ASSERT(k >= 0, "%s: convert view lacks '%s'", arch, x->name.str);
        const vkl_gguf_tensor *y = &g->tensors[k];
        T_ASSERT(x->n_dims == y->n_dims && x->ne[0] == y->ne[0] && x->ne[1] == y->ne[1], "%s: '%s' shape", arch,
                 x->name.str);
        float *fx = tensor_f32(x), *fy = tensor_f32(y);
        T_ASSERT(fx && fy, "decode '%s'", x->name.str);
        uint64_t n = (uint64_t)x->ne[0] * (x->n_dims > 1 ? (uint64_t)x->ne[1] : 1);
        for (uint64_t j = 0; j < n; j++)
            T_ASSERT(fabsf(fx[j] - fy[j]) <= 1e-6f * (1 + fabsf(fx[j])), "%s: '%s'[%llu]: %g vs %g", arch,
                     x->name.str, (unsigned long long)j, fx[j], fy[j]);
        free(fx), free(fy);
    }
    T_ASSERT(g->n_tensors == a->gguf->n_tensors, "%s: %llu tensors in the view, %llu in the GGUF", arch,
             (unsigned long long)g->n_tensors, (unsigned long long)a->gguf->n_tensors);
    vkl_hf_close(h);
    vkl_model_free(a);
    vkl_model_free(b);
    return 0;
}

static const struct {
    const char *arch, *type, *extra;
} ARCH_CASES[] = {
    {"llama", "f32", "--rope-freqs --tied --rope-base 500000"},
    {"llama", "bf16", "--head-dim 96 --kv-heads 1 --scaling yarn --factor 8 --orig-ctx 16"},
    {"qwen2", "bf16", "--head-dim 64"},
    {"qwen3", "f32", "--head-dim 96 --tied --rope-base 1000000"},
    {"gemma2", "f32", "--head-dim 96 --window 7 --softcap 5,3 --tied"},
    {"gemma3", "bf16", "--layers 3 --kv-heads 1 --window 6 --swa-period 2 --rope-base 1000000 --tied "
                       "--scaling linear --factor 8"},
    {"phi3", "f32", "--rope-dim 48 --longrope --ctx 64 --orig-ctx 16"},
    {"mistral3", "f32", "--head-dim 80 --scaling yarn --factor 4 --orig-ctx 8 --attn-temp 0.3"},
};

/* Two halves of ARCH_CASES, each well within a test's time on lavapipe (the reference starts PyTorch per case). */
static int round_trips(size_t from, size_t to) {
    t_rng_seed(31 + (uint32_t)from);
    for (size_t i = from; i < to; i++)
        if (check_round_trip(ARCH_CASES[i].arch, ARCH_CASES[i].type, ARCH_CASES[i].extra)) return 1;
    return 0;
}
static int test_llama_qwen(void) { return round_trips(0, 4); }
static int test_gemma_phi_mistral(void) { return round_trips(4, sizeof(ARCH_CASES) / sizeof(ARCH_CASES[0])); }

/* Write a small text file. */
static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs(text, f);
    return fclose(f) != 0;
}

/* A qwen2 folder split into two shards by an index; then each broken variant of it is refused naming the file. */
static int test_shards_and_errors(void) {
    char path[512], dir[512], cmd[1200], p[700];
    vkl_err err = {0};
    vkl_model *a, *b;
    if (model_and_folder("hfs", "--arch qwen2 --type f32 --seed 9", false, path, dir, &a)) return 1;
    /* split model.safetensors: layer 1 into a second shard */
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    vkl_safetensors *st;
    T_ASSERT(!vkl_safetensors_open(p, &st, &err), "%s", err.msg);
    vkl_st_writer *w1 = vkl_st_writer_new(), *w2 = vkl_st_writer_new();
    cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
    for (uint64_t i = 0; i < st->n_tensors; i++) {
        const vkl_st_tensor *t = &st->tensors[i];
        bool second = strstr(t->name, "layers.1.") != NULL;
        T_ASSERT(!vkl_st_writer_add(second ? w2 : w1, t->name, t->dtype, t->n_dims, t->shape, t->data, &err), "%s",
                 err.msg);
        cJSON_AddStringToObject(map, t->name, second ? "model-00002-of-00002.safetensors"
                                                     : "model-00001-of-00002.safetensors");
    }
    snprintf(p, sizeof(p), "%s/model-00001-of-00002.safetensors", dir);
    T_ASSERT(!vkl_st_writer_write(w1, p, &err), "%s", err.msg);
    snprintf(p, sizeof(p), "%s/model-00002-of-00002.safetensors", dir);
    T_ASSERT(!vkl_st_writer_write(w2, p, &err), "%s", err.msg);
    vkl_st_writer_free(w1), vkl_st_writer_free(w2);
    vkl_safetensors_close(st);
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    remove(p);
    char *text = cJSON_Print(index);
    snprintf(p, sizeof(p), "%s/model.safetensors.index.json", dir);
    T_ASSERT(!write_text(p, text), "write index");
    free(text);
    T_ASSERT(!vkl_model_load(dir, &b, &err), "sharded: %s", err.msg);
    if (same_logits(a, b, 17, "sharded folder vs GGUF")) return 1;
    vkl_model_free(b);
    vkl_model_free(a);

    /* broken variants, each: exit-2 class error naming the file and the field or tensor */
    cJSON *bad = cJSON_Duplicate(index, true);
    cJSON_AddStringToObject(cJSON_GetObjectItem(bad, "weight_map"), "model.layers.0.mlp.extra.weight",
                            "model-00001-of-00002.safetensors");
    text = cJSON_Print(bad);
    T_ASSERT(!write_text(p, text), "write");
    free(text);
    cJSON_Delete(bad);
    T_ASSERT(vkl_model_load(dir, &b, &err) == VKL_ERR_INPUT && strstr(err.msg, "model.safetensors.index.json") &&
                 strstr(err.msg, "model.layers.0.mlp.extra.weight"), "index naming a missing tensor: %s", err.msg);
    vkl_err_clear(&err);
    bad = cJSON_Duplicate(index, true);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(bad, "weight_map"), "model.norm.weight",
                              cJSON_CreateString("model-00003-of-00003.safetensors"));
    text = cJSON_Print(bad);
    T_ASSERT(!write_text(p, text), "write");
    free(text);
    cJSON_Delete(bad);
    T_ASSERT(vkl_model_load(dir, &b, &err) == VKL_ERR_INPUT && strstr(err.msg, "model-00003-of-00003.safetensors") &&
                 strstr(err.msg, "missing"), "missing shard: %s", err.msg);
    vkl_err_clear(&err);
    text = cJSON_Print(index);
    T_ASSERT(!write_text(p, text), "write");
    free(text);
    cJSON_Delete(index);

    /* config.json: an unsupported class, a missing field, a shape that disagrees */
    snprintf(p, sizeof(p), "%s/config.json", dir);
    char *conf = t_read_file(p, NULL);
    T_ASSERT(conf, "read config");
    cJSON *c = cJSON_Parse(conf);
    struct {
        const char *key, *value, *expect1, *expect2;
    } cases[] = {
        {"architectures", "[\"MixtralForCausalLM\"]", "mixture-of-experts", "architectures"},
        {"architectures", "[\"BertModel\"]", "BertModel", "not supported"},
        {"hidden_size", NULL, "hidden_size", "missing"},
        {"intermediate_size", "384", "model.layers.0.mlp.gate_proj.weight", "384"},
        {"num_key_value_heads", "3", "num_key_value_heads", "divide"},
        {"rope_scaling", "{\"rope_type\": \"dynamic\", \"factor\": 2}", "rope_type", "dynamic"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *v = cJSON_Duplicate(c, true);
        cJSON_DeleteItemFromObject(v, cases[i].key);
        if (cases[i].value) cJSON_AddItemToObject(v, cases[i].key, cJSON_Parse(cases[i].value));
        text = cJSON_Print(v);
        T_ASSERT(!write_text(p, text), "write");
        free(text);
        cJSON_Delete(v);
        vkl_status s = vkl_model_load(dir, &b, &err);
        T_ASSERT(s == VKL_ERR_INPUT && strstr(err.msg, cases[i].expect1) && strstr(err.msg, cases[i].expect2),
                 "config case %zu (%s): status %d: %s", i, cases[i].key, s, err.msg);
        vkl_err_clear(&err);
    }
    T_ASSERT(!write_text(p, conf), "restore");
    free(conf);
    cJSON_Delete(c);
    /* the CLI: a folder without config.json is an input error naming it */
    char *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof(cmd), "%s info %s --json", t_vklora_bin(), t_tmpdir());
    T_ASSERT(t_run(cmd, &out, &errs) == 2 && errs && strstr(errs, "config.json"), "info on a non-model folder: %s",
             errs ? errs : "");
    free(out), free(errs);
    snprintf(cmd, sizeof(cmd), "%s info %s --json", t_vklora_bin(), dir);
    T_ASSERT(t_run(cmd, &out, &errs) == 0 && out && strstr(out, "qwen2"), "info on the folder: %s", errs ? errs : "");
    free(out), free(errs);
    return 0;
}

/* A Hugging Face YaRN config with an explicit attention_factor (the whole cos/sin scale there; llama.cpp's
 * attn_factor is a multiplier of its own YaRN scale): the folder's logits follow the transformers reference. */
static int test_yarn_attention_factor(void) {
    char path[512], dir[512];
    vkl_err err = {0};
    vkl_model *a, *b;
    if (model_and_folder("hfy", "--arch qwen2 --type f32 --seed 7 --scaling yarn --factor 4 --orig-ctx 8", false, path,
                         dir, &a))
        return 1;
    vkl_model_free(a);
    T_ASSERT(!patch_rope(dir, "attention_factor", 1.37), "patch config.json");
    T_ASSERT(!vkl_model_load(dir, &b, &err), "%s", err.msg);
    T_ASSERT(fabsf(b->hp.rope_attn_factor * (0.1f * logf(4.0f) + 1.0f) - 1.37f) < 1e-5f, "attn_factor %g",
             b->hp.rope_attn_factor);
    const uint32_t T = 23, V = b->hp.n_vocab;
    int32_t tok[23];
    t_rng_seed(41);
    for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)(t_rng_u32() % V);
    float *lb = device_logits(b, tok, T), *lr = hf_reference_logits(dir, tok, T, V);
    T_ASSERT(lb && lr, "logits");
    double e = t_max_rel_err(lb, lr, (size_t)T * V);
    T_ASSERT(e < 5e-4, "yarn attention_factor: max rel err %.3g", e);
    free(lb), free(lr);
    vkl_model_free(b);
    return 0;
}

/* Adapters of a folder-loaded llama (q/k rows in Hugging Face's order) keep their meaning in both files: the GGUF
 * adapter loads onto the GGUF model (llama.cpp's rows) and the PEFT adapter onto either, each giving the folder
 * model's adapted logits; the GGUF adapter also reloads onto the folder. Random A and B, so a row order mix-up in
 * any direction changes the logits by whole percents. */
static int test_adapter_rows(void) {
    char path[512], dir[512], cmd[4096], ga[600], pa[600];
    snprintf(ga, sizeof(ga), "%s/hfa-adapter.gguf", t_tmpdir());
    snprintf(pa, sizeof(pa), "%s/hfa-peft", t_tmpdir());
    vkl_err err = {0};
    vkl_model *a, *b;
    if (model_and_folder("hfa", "--arch llama --type f32 --seed 11", false, path, dir, &a)) return 1;
    T_ASSERT(!vkl_model_load(dir, &b, &err), "%s", err.msg);
    T_ASSERT(b->hp.qk_hf_rows, "a llama folder keeps HF rows");
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(b, VKL_TM_ALL, 8, 16, false, &l, &err), "%s", err.msg);
    t_rng_seed(51);
    for (uint64_t i = 0; i < l->n_params; i++) l->params[i] = (float)((int32_t)(t_rng_u32() % 2001) - 1000) * 1e-4f;
    T_ASSERT(!vkl_adapter_save_gguf(l, b, ga, &err), "%s", err.msg);
    T_ASSERT(!vkl_adapter_save_peft(l, b, pa, &err), "%s", err.msg);
    const uint32_t T = 21, V = b->hp.n_vocab;
    int32_t tok[21];
    for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)(t_rng_u32() % V);
    float *want = device_logits_with(b, l, tok, T), *plain = device_logits(b, tok, T);
    T_ASSERT(want && plain, "folder logits");
    T_ASSERT(t_max_rel_err(plain, want, (size_t)T * V) > 1e-3, "the adapter changes the logits");
    struct {
        vkl_model *m;
        const char *adapter, *what;
    } cases[] = {{a, ga, "GGUF adapter on the GGUF model"}, {a, pa, "PEFT adapter on the GGUF model"},
                 {b, ga, "GGUF adapter on the folder"}, {b, pa, "PEFT adapter on the folder"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vkl_lora *x;
        T_ASSERT(!vkl_adapter_load(cases[i].adapter, cases[i].m, &x, &err), "%s: %s", cases[i].what, err.msg);
        float *got = device_logits_with(cases[i].m, x, tok, T);
        T_ASSERT(got, "%s: logits", cases[i].what);
        double e = t_max_rel_err(got, want, (size_t)T * V);
        T_ASSERT(e < 1e-4, "%s: max rel err %.3g", cases[i].what, e);
        free(got);
        vkl_lora_free(x);
    }
    /* merges: a folder base into a GGUF (llama.cpp's rows), a GGUF base into a folder (F32 exactly, and the CLI's
     * BF16 folder within BF16 rounding) give the adapted logits without the adapter */
    char mg[600], md[600], mh[600], *out = NULL, *errs = NULL;
    snprintf(mg, sizeof(mg), "%s/hfa-merged.gguf", t_tmpdir());
    snprintf(md, sizeof(md), "%s/hfa-merged-f32", t_tmpdir());
    snprintf(mh, sizeof(mh), "%s/hfa-merged-bf16", t_tmpdir());
    snprintf(cmd, sizeof(cmd), "%s merge --model %s --adapter %s --out %s --quantization f32", t_vklora_bin(), dir, pa,
             mg);
    T_ASSERT(t_run(cmd, &out, &errs) == 0, "merge a folder: %s", errs ? errs : "");
    free(out), free(errs);
    snprintf(cmd, sizeof(cmd), "%s merge --model %s --adapter %s --out-hf %s --json", t_vklora_bin(), path, ga, mh);
    T_ASSERT(t_run(cmd, &out, &errs) == 0 && out && strstr(out, "out_hf"), "merge --out-hf: %s", errs ? errs : "");
    free(out), free(errs);
    vkl_lora *x;
    T_ASSERT(!vkl_adapter_load(ga, a, &x, &err), "%s", err.msg);
    T_ASSERT(!vkl_hf_export(a, x, 1.0f, md, false, &err), "%s", err.msg);
    vkl_lora_free(x);
    const char *merged[] = {mg, md, mh};
    for (int i = 0; i < 3; i++) {
        vkl_model *mm;
        T_ASSERT(!vkl_model_load(merged[i], &mm, &err), "%s", err.msg);
        T_ASSERT(i != 0 || (!mm->hp.qk_hf_rows && !mm->hp.rope_neox), "the merged GGUF is in llama.cpp's layout");
        float *got = device_logits(mm, tok, T);
        T_ASSERT(got, "merged logits");
        double e = t_max_rel_err(got, want, (size_t)T * V);
        /* BF16 weights: 2^-9 relative per weight, ~1e-2 on logits; the adapter moves them by more than that */
        double tol = i == 2 ? 2e-2 : 1e-4;
        T_ASSERT(e < tol, "merged %s: max rel err %.3g", merged[i], e);
        free(got);
        vkl_model_free(mm);
    }
    T_ASSERT(t_max_rel_err(plain, want, (size_t)T * V) > 4e-2, "the adapter moves logits past BF16's rounding");
    free(want), free(plain);
    vkl_lora_free(l);
    vkl_model_free(b);
    vkl_model_free(a);
    return 0;
}

static double eval_nll(const char *model, const char *adapter) { return t_eval_nll(model, NULL, adapter, NULL); }

/* stories260K as a complete Hugging Face folder in dir: its weights exported, and tokenizer.json built from its
 * SentencePiece vocabulary as transformers' LlamaConverter does (tests/mk_hf_tokenizer.py). */
static int make_stories_folder(const char *dir) {
    char gguf[512];
    snprintf(gguf, sizeof(gguf), "%s", t_data_path("models/stories260K.gguf"));
    char cmd[2048];
    vkl_err err = {0};
    vkl_model *m;
    T_ASSERT(!vkl_model_load(gguf, &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_hf_export(m, NULL, 1.0f, dir, false, &err), "%s", err.msg);
    vkl_model_free(m);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/mk_hf_tokenizer.py %s %s", VKL_SOURCE_ROOT, gguf, dir);
    T_ASSERT(system(cmd) == 0, "mk_hf_tokenizer.py");
    return 0;
}

/* Token ids of text under tok (malloc'd). */
static int32_t *ids_of(const vkl_tokenizer *tok, const char *text, size_t *n) {
    int32_t *ids = NULL;
    vkl_err err = {0};
    if (vkl_tokenize(tok, text, strlen(text), true, true, &ids, n, &err)) {
        fprintf(stderr, "    tokenize: %s\n", err.msg);
        return NULL;
    }
    return ids;
}

/* vklora convert: the stories260K folder becomes a GGUF whose tensors are the original GGUF's, whose tokenizer
 * (read back by the GGUF path, the one tested against llama.cpp) tokenizes the dataset as the folder's
 * tokenizer.json does, and that evaluates to the same loss. Then the real Llama 3.1, Qwen3 and Gemma 3
 * tokenizer.json files in folders of random models: the converted GGUF's tokenizer (gpt2 with llama.cpp's
 * pre-tokenizer name and merges; llama with merge-rank scores for Gemma) encodes like Hugging Face's. */
static int test_convert(void) {
    char gguf[512];
    snprintf(gguf, sizeof(gguf), "%s", t_data_path("models/stories260K.gguf"));
    char dir[512], out[600], args[2048];
    snprintf(dir, sizeof(dir), "%s/stories260K-conv", t_tmpdir());
    snprintf(out, sizeof(out), "%s/stories260K-conv.gguf", t_tmpdir());
    if (make_stories_folder(dir)) return 1;
    snprintf(args, sizeof(args), "convert %s %s --json", dir, out);
    cJSON *rep;
    T_ASSERT(t_cli(args, &rep, NULL) == 0 && cJSON_GetArraySize(cJSON_GetObjectItem(rep, "tensors")) > 0, "convert");
    cJSON_Delete(rep);
    vkl_err err = {0};
    vkl_gguf *a, *b;
    T_ASSERT(!vkl_gguf_open(gguf, &a, &err) && !vkl_gguf_open(out, &b, &err), "%s", err.msg);
    T_ASSERT(a->n_tensors == b->n_tensors, "%llu vs %llu tensors", (unsigned long long)a->n_tensors,
             (unsigned long long)b->n_tensors);
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const vkl_gguf_tensor *x = &a->tensors[i];
        int64_t k = vkl_gguf_find_tensor(b, x->name.str);
        T_ASSERT(k >= 0 && b->tensors[k].type == x->type && b->tensors[k].size == x->size &&
                     !memcmp(b->tensors[k].data, x->data, x->size), "tensor '%s' differs after convert", x->name.str);
    }
    T_ASSERT(!strcmp(vkl_gguf_get_str(b, "general.architecture"), "llama") && vkl_gguf_find_key(b, "vklora.rope_neox") < 0,
             "llama.cpp's layout");
    vkl_tokenizer *ta, *tb, *tf;
    T_ASSERT(!vkl_tokenizer_load(a, &ta, &err) && !vkl_tokenizer_load(b, &tb, &err) &&
                 !vkl_tokenizer_load_hf(dir, &tf, &err), "%s", err.msg);
    char *text = t_read_file(t_data_path("datasets/tinystories_sample.txt"), NULL);
    T_ASSERT(text, "dataset");
    size_t na, nb, nf;
    int32_t *ia = ids_of(ta, text, &na), *ib = ids_of(tb, text, &nb), *in = ids_of(tf, text, &nf);
    T_ASSERT(ia && ib && in && na == nb && nb == nf && !memcmp(ia, ib, na * 4) && !memcmp(ib, in, nb * 4),
             "converted tokenizer: %zu / %zu / %zu tokens", na, nb, nf);
    free(ia), free(ib), free(in), free(text);
    vkl_tokenizer_free(ta), vkl_tokenizer_free(tb), vkl_tokenizer_free(tf);
    vkl_gguf_close(a), vkl_gguf_close(b);
    double la = eval_nll(gguf, NULL), lb = eval_nll(out, NULL);
    T_ASSERT(isfinite(la) && fabs(la - lb) < 1e-6 * la, "eval: %.8f vs %.8f", la, lb);

    static const struct {
        const char *name, *arch;
        uint32_t vocab;
    } real[] = {{"llama-3.1", "llama", 128256}, {"qwen3", "qwen3", 151936}, {"gemma-3", "gemma3", 262208}};
    static const char *texts[] = {
        "Hello world! It's 2026-12-06, 3.14159 and 1234567890.",
        "  def f(x):\n\treturn x**2  # squares\n\n\n",
        "日本語のテキストと中文，以及 emoji 👩‍💻🎉 and accents: café naïve Ångström",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "<|im_start|>user\nhello<|im_end|>\n<start_of_turn>model\nok<end_of_turn>",
    };
    for (size_t r = 0; r < sizeof(real) / sizeof(real[0]); r++) {
        char model[600], fdir[600], conv[600], cmd[4096];
        snprintf(model, sizeof(model), "%s/conv-%s.gguf", t_tmpdir(), real[r].name);
        snprintf(fdir, sizeof(fdir), "%s/conv-%s", t_tmpdir(), real[r].name);
        snprintf(conv, sizeof(conv), "%s/conv-%s-out.gguf", t_tmpdir(), real[r].name);
        snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --arch %s --type bf16 --dim 64 --ff 128 --layers 1 --heads 2 "
                 "--kv-heads 1 --vocab %u --seed 3 >/dev/null", VKL_BUILD_ROOT, model, real[r].arch, real[r].vocab);
        T_ASSERT(system(cmd) == 0, "mkmodel %s", real[r].name);
        vkl_model *m;
        T_ASSERT(!vkl_model_load(model, &m, &err), "%s", err.msg);
        T_ASSERT(!vkl_hf_export(m, NULL, 1.0f, fdir, true, &err), "%s", err.msg);
        vkl_model_free(m);
        snprintf(cmd, sizeof(cmd), "cp %s/%s/tokenizer.json %s/%s/tokenizer_config.json %s/", t_data_path("hf"),
                 real[r].name, t_data_path("hf"), real[r].name, fdir);
        T_ASSERT(system(cmd) == 0, "copy the tokenizer files");
        snprintf(args, sizeof(args), "convert %s %s --json >/dev/null", fdir, conv);
        T_ASSERT(t_cli(args, NULL, NULL) == 0, "convert %s", real[r].name);
        vkl_gguf *g;
        T_ASSERT(!vkl_gguf_open(conv, &g, &err), "%s", err.msg);
        const vkl_gguf_value *toks = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
        T_ASSERT(toks && toks->v.arr.count == real[r].vocab, "%s: %u tokens (the embedding's rows)", real[r].name,
                 real[r].vocab);
        T_ASSERT(!vkl_tokenizer_load(g, &tb, &err) && !vkl_tokenizer_load_hf(fdir, &tf, &err), "%s: %s", real[r].name,
                 err.msg);
        const char *pre = vkl_gguf_get_str(g, "tokenizer.ggml.pre");
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
            ib = ids_of(tb, texts[i], &nb);
            in = ids_of(tf, texts[i], &nf);
            T_ASSERT(ib && in, "tokenize");
            bool same = nb == nf && !memcmp(ib, in, nb * 4);
            if (!same) {
                fprintf(stderr, "    %s (pre %s) text %zu:\n      gguf:", real[r].name, pre ? pre : "-", i);
                for (size_t k = 0; k < nb && k < 40; k++) fprintf(stderr, " %d", ib[k]);
                fprintf(stderr, "\n      hf:  ");
                for (size_t k = 0; k < nf && k < 40; k++) fprintf(stderr, " %d", in[k]);
                fprintf(stderr, "\n");
            }
            free(ib), free(in);
            T_ASSERT(same, "%s: the converted GGUF tokenizes text %zu differently from tokenizer.json", real[r].name, i);
        }
        vkl_tokenizer_free(tb), vkl_tokenizer_free(tf);
        vkl_gguf_close(g);
    }
    return 0;
}

/* The real stories260K as a complete Hugging Face folder (weights exported, tokenizer.json built from its
 * SentencePiece vocabulary as transformers' LlamaConverter does: tests/mk_hf_tokenizer.py): the folder tokenizes
 * the dataset as the GGUF does, evaluates to the GGUF's loss, trains, and its adapters (PEFT in HF rows, the GGUF
 * adapter in llama.cpp's) give the same loss on the folder and on the original GGUF. */
static int test_stories_folder(void) {
    char gguf[512], text[512]; /* t_data_path's buffers are reused by later calls */
    snprintf(gguf, sizeof(gguf), "%s", t_data_path("models/stories260K.gguf"));
    snprintf(text, sizeof(text), "%s", t_data_path("datasets/tinystories_sample.txt"));
    char dir[512], out[600], cmd[4096];
    snprintf(dir, sizeof(dir), "%s/stories260K-hf", t_tmpdir());
    snprintf(out, sizeof(out), "%s/stories260K-hf-run", t_tmpdir());
    (void)cmd;
    if (make_stories_folder(dir)) return 1;
    cJSON *ta, *tb;
    char args[2048];
    snprintf(args, sizeof(args), "tokenize --model %s --file %s --json", dir, text);
    T_ASSERT(t_cli(args, &ta, NULL) == 0 && ta, "tokenize the folder");
    snprintf(args, sizeof(args), "tokenize --model %s --file %s --json", gguf, text);
    T_ASSERT(t_cli(args, &tb, NULL) == 0 && tb, "tokenize the GGUF");
    const cJSON *xa = cJSON_GetObjectItem(ta, "tokens"), *xb = cJSON_GetObjectItem(tb, "tokens");
    T_ASSERT(cJSON_GetArraySize(xa) > 1000 && cJSON_Compare(xa, xb, true), "folder and GGUF tokenize alike (%d vs %d)",
             cJSON_GetArraySize(xa), cJSON_GetArraySize(xb));
    cJSON_Delete(ta), cJSON_Delete(tb);
    double base_gguf = eval_nll(gguf, NULL), base_dir = eval_nll(dir, NULL);
    T_ASSERT(isfinite(base_gguf) && fabs(base_gguf - base_dir) < 1e-4 * base_gguf, "eval: GGUF %.7f, folder %.7f",
             base_gguf, base_dir);
    snprintf(args, sizeof(args), "train %s/configs/demo.json --set model=%s --set dataset=%s --set output_dir=%s "
             "--set max_steps=6 --set max_seq_length=64 --set learning_rate=3e-3 --set save_steps=0 "
             "--set per_device_train_batch_size=2 --set gradient_accumulation_steps=1 --json >/dev/null",
             VKL_SOURCE_ROOT, dir, text, out);
    T_ASSERT(t_cli(args, NULL, NULL) == 0, "train from the folder");
    char conf[700], ga[700];
    snprintf(conf, sizeof(conf), "%s/adapter_config.json", out);
    snprintf(ga, sizeof(ga), "%s/adapter.gguf", out);
    char *ctext = t_read_file(conf, NULL);
    cJSON *c = ctext ? cJSON_Parse(ctext) : NULL;
    free(ctext);
    T_ASSERT(c && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "task_type")), "CAUSAL_LM") &&
                 cJSON_GetArraySize(cJSON_GetObjectItem(c, "target_modules")) == 7,
             "adapter_config.json as PEFT writes it");
    const char *bm = cJSON_GetStringValue(cJSON_GetObjectItem(c, "base_model_name_or_path"));
    T_ASSERT(bm && strstr(bm, "stories260K-hf"), "base_model_name_or_path names the folder: %s", bm ? bm : "(none)");
    cJSON_Delete(c);
    double peft_dir = eval_nll(dir, out), gguf_dir = eval_nll(dir, ga), peft_gguf = eval_nll(gguf, out),
           gguf_gguf = eval_nll(gguf, ga);
    T_ASSERT(peft_dir < base_dir - 0.01, "training lowered the loss (%.5f -> %.5f)", base_dir, peft_dir);
    double tol = 1e-5 * base_dir;
    T_ASSERT(fabs(gguf_dir - peft_dir) < tol && fabs(peft_gguf - peft_dir) < tol && fabs(gguf_gguf - peft_dir) < tol,
             "adapter losses: PEFT/folder %.7f, GGUF/folder %.7f, PEFT/GGUF %.7f, GGUF/GGUF %.7f", peft_dir, gguf_dir,
             peft_gguf, gguf_gguf);
    return 0;
}

/* QLoRA from a folder: a BF16 Llama folder quantized on load (q4_k_m) is the GGUF quantized the same way (blocks
 * run along rows, so HF's q/k row order quantizes to the same blocks), giving the same logits; and a training run
 * with quantization=q4_k_m from the folder writes its adapters. */
static int test_qlora_folder(void) {
    char path[512], dir[512], cmd[4096], out[600];
    snprintf(out, sizeof(out), "%s/hfq-run", t_tmpdir());
    vkl_err err = {0};
    vkl_model *a, *b;
    if (model_and_folder("hfq", "--arch llama --type bf16 --seed 13", true, path, dir, &a)) return 1;
    T_ASSERT(!vkl_model_load(dir, &b, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_quantize(a, VKL_QUANT_Q4_K_M, &err) && !vkl_model_quantize(b, VKL_QUANT_Q4_K_M, &err), "%s",
             err.msg);
    T_ASSERT(b->layers[0].wq.type == VKL_TYPE_Q4_K && b->layers[0].wv.type == a->layers[0].wv.type, "q4_k_m mix");
    t_rng_seed(61);
    if (same_logits(a, b, 19, "quantized folder vs quantized GGUF")) return 1;
    vkl_model_free(a), vkl_model_free(b);
    /* the CLI: train with quantization from the folder (it needs a tokenizer: the mkmodel vocabulary's) */
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/mk_hf_tokenizer.py %s %s", VKL_SOURCE_ROOT, path, dir);
    T_ASSERT(system(cmd) == 0, "mk_hf_tokenizer.py");
    char args[2048];
    snprintf(args, sizeof(args), "train %s/configs/demo.json --set model=%s --set dataset=%s --set output_dir=%s "
             "--set max_steps=2 --set max_seq_length=32 --set save_steps=0 --set quantization=q4_k_m "
             "--set per_device_train_batch_size=1 --set gradient_accumulation_steps=1 --json >/dev/null",
             VKL_SOURCE_ROOT, dir, t_data_path("datasets/tinystories_sample.txt"), out);
    T_ASSERT(t_cli(args, NULL, NULL) == 0, "QLoRA training from the folder");
    snprintf(args, sizeof(args), "%s/adapter_model.safetensors", out);
    char *st = t_read_file(args, NULL);
    T_ASSERT(st != NULL, "PEFT adapter written");
    free(st);
    return 0;
}

/* A multimodal Gemma 3 checkpoint (Gemma3ForConditionalGeneration, 4B and up): the text model's config under
 * text_config, its tensors under language_model.model., a vision tower and projector beside them. The text model
 * loads and gives the logits of the same weights saved as Gemma3ForCausalLM. */
static int test_gemma3_multimodal(void) {
    char path[512], dir[512], p[700];
    vkl_err err = {0};
    vkl_model *a, *b;
    if (model_and_folder("hfmm", "--arch gemma3 --type f32 --kv-heads 1 --window 6 --swa-period 2 --tied --seed 17",
                         false, path, dir, &a))
        return 1;
    /* re-save the tensors under the multimodal names, with a vision tower */
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    vkl_safetensors *st;
    T_ASSERT(!vkl_safetensors_open(p, &st, &err), "%s", err.msg);
    vkl_st_writer *w = vkl_st_writer_new();
    char name[256];
    for (uint64_t i = 0; i < st->n_tensors; i++) {
        const vkl_st_tensor *t = &st->tensors[i];
        T_ASSERT(!strncmp(t->name, "model.", 6), "exported name %s", t->name);
        snprintf(name, sizeof(name), "language_model.model.%s", t->name + 6);
        T_ASSERT(!vkl_st_writer_add(w, name, t->dtype, t->n_dims, t->shape, t->data, &err), "%s", err.msg);
    }
    static const float vision[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint64_t vshape[2] = {3, 4};
    T_ASSERT(!vkl_st_writer_add(w, "vision_tower.vision_model.embeddings.patch_embedding.weight", VKL_ST_F32, 2,
                                vshape, vision, &err) &&
                 !vkl_st_writer_add(w, "multi_modal_projector.mm_input_projection_weight", VKL_ST_F32, 2, vshape,
                                    vision, &err), "%s", err.msg);
    snprintf(p, sizeof(p), "%s/model-mm.safetensors", dir);
    T_ASSERT(!vkl_st_writer_write(w, p, &err), "%s", err.msg);
    vkl_st_writer_free(w);
    vkl_safetensors_close(st);
    char from[700];
    snprintf(from, sizeof(from), "%s/model.safetensors", dir);
    T_ASSERT(rename(p, from) == 0, "rename");
    snprintf(p, sizeof(p), "%s/config.json", dir);
    char *text = t_read_file(p, NULL);
    cJSON *c = text ? cJSON_Parse(text) : NULL, *root = cJSON_CreateObject();
    free(text);
    T_ASSERT(c, "config");
    cJSON_DeleteItemFromObject(c, "architectures");
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("Gemma3ForConditionalGeneration"));
    cJSON_AddStringToObject(root, "model_type", "gemma3");
    cJSON_AddItemToObject(root, "text_config", c);
    cJSON_AddItemToObject(root, "vision_config", cJSON_Parse("{\"model_type\": \"siglip_vision_model\"}"));
    text = cJSON_Print(root);
    T_ASSERT(!write_text(p, text), "write config");
    free(text);
    cJSON_Delete(root);
    T_ASSERT(!vkl_model_load(dir, &b, &err), "%s", err.msg);
    t_rng_seed(71);
    if (same_logits(a, b, 15, "multimodal Gemma 3 text model vs the GGUF")) return 1;
    vkl_model_free(a), vkl_model_free(b);
    return 0;
}

const vkl_test_case vkl_tests_hf[] = {
    {"hf/gemma3_multimodal_checkpoint_text_model", test_gemma3_multimodal},
    {"hf/qlora_folder_quantize_on_load", test_qlora_folder},
    {"hf/stories260K_folder_tokenize_eval_train", test_stories_folder},
    {"hf/convert_stories260K_and_real_tokenizers", test_convert},
    {"hf/adapter_row_order_gguf_and_peft", test_adapter_rows},
    {"hf/yarn_attention_factor_vs_transformers", test_yarn_attention_factor},
    {"hf/folder_vs_gguf_and_transformers_llama_qwen", test_llama_qwen},
    {"hf/folder_vs_gguf_and_transformers_gemma_phi_mistral", test_gemma_phi_mistral},
    {"hf/shards_and_errors", test_shards_and_errors},
    {NULL, NULL},
};
