/* The whole training step against the independent PyTorch reference (tests/torch_ref, float64): logits, per-token
 * NLL, the LoRA gradients of every adapter, gradient norms and the parameters after several AdamW steps with
 * gradient accumulation and clipping, on the real stories260K model. Plus loss-goes-down and checkpointing modes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "train.h"
#include "vk/vk.h"
#include "vklora/gguf.h"
#include "vklora/lora.h"
#include "vklora/model.h"

static float *read_f32(const char *path, uint64_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *d = malloc((size_t)sz);
    *n = fread(d, 1, (size_t)sz, f) / 4;
    fclose(f);
    return d;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)sz + 1);
    d[fread(d, 1, (size_t)sz, f)] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(d);
    free(d);
    return j;
}

/* max |a - b| / max |b| */
static double rel(const float *a, const float *b, uint64_t n) { return t_max_rel_err(a, b, n); }

typedef struct {
    uint32_t B, T, n_mb, n_steps;
    int32_t *tokens[2][2], *targets[2][2], *pos, *seg; /* [step][micro-batch] */
    float lr[2];
} batches;

/* Deterministic batches from the stories260K vocabulary, with ignored targets sprinkled in. */
static void make_batches(batches *b, uint32_t V) {
    b->B = 2, b->T = 24, b->n_mb = 2, b->n_steps = 2;
    b->lr[0] = 5e-3f, b->lr[1] = 2e-3f;
    uint32_t R = b->B * b->T;
    b->pos = malloc(R * 4);
    b->seg = calloc(R, 4);
    for (uint32_t i = 0; i < R; i++) b->pos[i] = (int32_t)(i % b->T);
    for (uint32_t s = 0; s < 2; s++)
        for (uint32_t m = 0; m < 2; m++) {
            b->tokens[s][m] = malloc(R * 4);
            b->targets[s][m] = malloc(R * 4);
            for (uint32_t i = 0; i < R; i++) b->tokens[s][m][i] = (int32_t)(t_rng_u32() % V);
            for (uint32_t i = 0; i < R; i++) {
                bool last = i % b->T == b->T - 1;
                b->targets[s][m][i] = last || t_rng_u32() % 7 == 0 ? -1 : b->tokens[s][m][i + 1];
            }
        }
}

static cJSON *int_matrix(const int32_t *v, uint32_t B, uint32_t T) {
    cJSON *rows = cJSON_CreateArray();
    for (uint32_t b = 0; b < B; b++) {
        cJSON *row = cJSON_CreateArray();
        for (uint32_t t = 0; t < T; t++) cJSON_AddItemToArray(row, cJSON_CreateNumber(v[b * T + t]));
        cJSON_AddItemToArray(rows, row);
    }
    return rows;
}

static int run_reference(const char *model, const vkl_lora *l, const batches *b, const vkl_config *c,
                         const char *dir) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/init.f32", dir);
    FILE *f = fopen(path, "wb");
    T_ASSERT(f && fwrite(l->params, 4, l->n_params, f) == l->n_params, "write init");
    fclose(f);
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "model", model);
    cJSON_AddNumberToObject(s, "r", l->r);
    cJSON_AddNumberToObject(s, "alpha", l->alpha);
    cJSON_AddBoolToObject(s, "use_rslora", l->use_rslora);
    const char *names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    cJSON *tg = cJSON_AddArrayToObject(s, "targets");
    for (int i = 0; i < 7; i++)
        if (l->target_modules & (1u << i)) cJSON_AddItemToArray(tg, cJSON_CreateString(names[i]));
    cJSON *slots = cJSON_AddArrayToObject(s, "slots");
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *sl = &l->slots[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "layer", sl->layer);
        cJSON_AddNumberToObject(o, "module", sl->module);
        cJSON_AddNumberToObject(o, "in", sl->in);
        cJSON_AddNumberToObject(o, "out", sl->out);
        cJSON_AddNumberToObject(o, "a_off", (double)sl->a_off);
        cJSON_AddNumberToObject(o, "b_off", (double)sl->b_off);
        cJSON_AddItemToArray(slots, o);
    }
    cJSON_AddStringToObject(s, "init", path);
    cJSON *ad = cJSON_AddObjectToObject(s, "adamw");
    cJSON_AddNumberToObject(ad, "beta1", c->adam_beta1);
    cJSON_AddNumberToObject(ad, "beta2", c->adam_beta2);
    cJSON_AddNumberToObject(ad, "eps", c->adam_epsilon);
    cJSON_AddNumberToObject(ad, "weight_decay", c->weight_decay);
    cJSON_AddNumberToObject(s, "max_grad_norm", c->max_grad_norm);
    cJSON *steps = cJSON_AddArrayToObject(s, "steps");
    for (uint32_t st = 0; st < b->n_steps; st++) {
        cJSON *so = cJSON_CreateObject();
        cJSON_AddNumberToObject(so, "lr", b->lr[st]);
        cJSON *mbs = cJSON_AddArrayToObject(so, "micro_batches");
        for (uint32_t m = 0; m < b->n_mb; m++) {
            cJSON *mo = cJSON_CreateObject();
            cJSON_AddItemToObject(mo, "tokens", int_matrix(b->tokens[st][m], b->B, b->T));
            cJSON_AddItemToObject(mo, "targets", int_matrix(b->targets[st][m], b->B, b->T));
            cJSON_AddItemToArray(mbs, mo);
        }
        cJSON_AddItemToArray(steps, so);
    }
    char *txt = cJSON_Print(s);
    cJSON_Delete(s);
    snprintf(path, sizeof(path), "%s/spec.json", dir);
    f = fopen(path, "wb");
    fputs(txt, f);
    fclose(f);
    free(txt);
    char cmd[4096], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/torch_ref/llama_lora.py %s/spec.json %s/out.json --threads 2",
             VKL_SOURCE_ROOT, dir, dir);
    int rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 0, "the PyTorch reference failed (%d): %s", rc, err ? err : "");
    free(out);
    free(err);
    return 0;
}

/* Compare vklora's step with PyTorch for one checkpointing mode and module set. */
static int check_vs_torch(vkl_grad_ckpt ckpt, uint32_t targets, bool rslora, const char *tag) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    const char *model_path = t_data_path("models/stories260K.gguf");
    vkl_model *m;
    T_ASSERT(!vkl_model_load(model_path, &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, targets, 4, 8.0, rslora, &l, &err), "%s", err.msg);
    vkl_lora_init(l, 1234);
    /* B = 0 would make every A gradient zero: give B random values so both gradients are exercised. */
    t_rng_seed(99);
    for (uint32_t i = 0; i < l->n_slots; i++)
        for (uint64_t k = 0; k < (uint64_t)l->slots[i].out * l->r; k++)
            l->params[l->slots[i].b_off + k] = t_rng_uniform(-0.05f, 0.05f);
    batches b;
    make_batches(&b, m->hp.n_vocab);
    vkl_config c;
    vkl_config_defaults(&c);
    c.max_grad_norm = 0.5; /* small enough that the steps clip */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/torch-%s", t_tmpdir(), tag);
    char mk[600];
    snprintf(mk, sizeof(mk), "mkdir -p %s", dir);
    T_ASSERT(system(mk) == 0, "mkdir");
    if (run_reference(model_path, l, &b, &c, dir)) return 1;
    char path[1024];
    snprintf(path, sizeof(path), "%s/out.json", dir);
    cJSON *ref = read_json(path);
    T_ASSERT(ref, "reference output");

    vkl_train_dev *t;
    T_ASSERT(!vkl_train_dev_create(vk, m, l, b.B, b.T, ckpt, &t, &err), "%s", err.msg);
    T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
    uint32_t R = b.B * b.T, V = m->hp.n_vocab;
    /* logits and per-token NLL of micro-batch 0 with the initial parameters */
    double nll0;
    T_ASSERT(!vkl_train_eval_batch(t, b.tokens[0][0], b.pos, b.seg, b.targets[0][0], &nll0, &err), "%s", err.msg);
    T_ASSERT(t->logit_rows >= R, "logits of the whole micro-batch in one chunk");
    float *logits = malloc((size_t)R * V * 4), *nll = malloc(R * 4);
    T_ASSERT(!vkl_buffer_download(vk, &t->logits, 0, logits, (uint64_t)R * V * 4, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_download(vk, &t->nll, 0, nll, R * 4, &err), "%s", err.msg);
    uint64_t n;
    float *ref_logits = read_f32(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "logits_mb0")), &n);
    T_ASSERT(ref_logits && n == (uint64_t)R * V, "reference logits");
    double e_logits = rel(logits, ref_logits, n);
    cJSON *rn = cJSON_GetObjectItem(ref, "nll_first_tokens");
    double e_nll = 0;
    for (uint32_t i = 0; i < R; i++) {
        cJSON *v = cJSON_GetArrayItem(rn, (int)i);
        if (cJSON_IsNumber(v)) e_nll = fmax(e_nll, fabs(nll[i] - v->valuedouble) / fmax(fabs(v->valuedouble), 1e-3));
        else T_ASSERT(nll[i] == 0, "ignored target %u has NLL %g", i, nll[i]);
    }
    /* fp32 forward of a 5-layer model: ~1e-6 relative; 2e-5 leaves room for summation-order differences */
    T_ASSERT(e_logits < 2e-5, "%s: logits max rel err %.3g", tag, e_logits);
    T_ASSERT(e_nll < 2e-5, "%s: per-token NLL max rel err %.3g", tag, e_nll);

    float *grads = malloc(l->n_params * 4), *params = malloc(l->n_params * 4);
    cJSON *losses = cJSON_GetObjectItem(ref, "losses"), *norms = cJSON_GetObjectItem(ref, "grad_norms");
    cJSON *ntg = cJSON_GetObjectItem(ref, "n_targets");
    for (uint32_t s = 0; s < b.n_steps; s++) {
        T_ASSERT(!vkl_train_zero_grads(t, &err), "%s", err.msg);
        uint32_t total = 0;
        for (uint32_t mb = 0; mb < b.n_mb; mb++)
            for (uint32_t i = 0; i < R; i++) total += b.targets[s][mb][i] >= 0;
        T_ASSERT(total == (uint32_t)cJSON_GetNumberValue(cJSON_GetArrayItem(ntg, (int)s)), "target count");
        double sum = 0;
        for (uint32_t mb = 0; mb < b.n_mb; mb++) {
            double ns;
            T_ASSERT(!vkl_train_micro_step(t, b.tokens[s][mb], b.pos, b.seg, b.targets[s][mb], 1.0f / (float)total, &ns,
                                           &err),
                     "%s", err.msg);
            sum += ns;
        }
        double loss = sum / total, want = cJSON_GetNumberValue(cJSON_GetArrayItem(losses, (int)s));
        T_ASSERT(fabs(loss - want) < 2e-5 * want, "%s: step %u loss %.8f vs torch %.8f", tag, s, loss, want);
        if (s == 0) {
            T_ASSERT(!vkl_train_dev_read(t, NULL, NULL, NULL, grads, &err), "%s", err.msg);
            float *rg = read_f32(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "grads_step0")), &n);
            T_ASSERT(rg && n == l->n_params, "reference gradients");
            /* per adapter, so a wrong module cannot hide behind a large one */
            int bad = 0;
            for (uint32_t i = 0; i < l->n_slots; i++) {
                const vkl_lora_slot *sl = &l->slots[i];
                uint64_t na = (uint64_t)l->r * sl->in, nb = (uint64_t)sl->out * l->r;
                double ea = rel(grads + sl->a_off, rg + sl->a_off, na), eb = rel(grads + sl->b_off, rg + sl->b_off, nb);
                if (!(ea < 1e-4 && eb < 1e-4)) {
                    fprintf(stderr, "    %s: layer %u module %u: dA rel err %.3g, dB rel err %.3g\n", tag, sl->layer,
                            sl->module, ea, eb);
                    bad++;
                }
            }
            T_ASSERT(!bad, "%d adapters with wrong gradients", bad);
            free(rg);
        }
        double gn;
        T_ASSERT(!vkl_train_optimizer_step(t, &c, s + 1, b.lr[s], &gn, &err), "%s", err.msg);
        double wn = cJSON_GetNumberValue(cJSON_GetArrayItem(norms, (int)s));
        T_ASSERT(fabs(gn - wn) < 1e-4 * wn, "%s: step %u grad norm %.6g vs torch %.6g", tag, s, gn, wn);
        T_ASSERT(wn > c.max_grad_norm, "the reference step must clip (norm %g)", wn);
    }
    T_ASSERT(!vkl_train_dev_read(t, params, NULL, NULL, NULL, &err), "%s", err.msg);
    float *rp = read_f32(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "params_final")), &n);
    T_ASSERT(rp && n == l->n_params, "reference params");
    /* Parameters moved by ~lr per step (Adam); their difference must be small against that movement. */
    double maxd = 0, maxmove = 0;
    for (uint64_t i = 0; i < n; i++) {
        maxd = fmax(maxd, fabs(params[i] - rp[i]));
        maxmove = fmax(maxmove, fabs(rp[i] - l->params[i]));
    }
    T_ASSERT(maxmove > 1e-3, "parameters must move");
    T_ASSERT(maxd < 1e-3 * maxmove + 1e-7, "%s: params after %u steps differ by %.3g (movement %.3g)", tag,
             b.n_steps, maxd, maxmove);
    free(rp);
    free(grads), free(params), free(logits), free(nll), free(ref_logits);
    for (uint32_t s = 0; s < 2; s++)
        for (uint32_t mb = 0; mb < 2; mb++) free(b.tokens[s][mb]), free(b.targets[s][mb]);
    free(b.pos), free(b.seg);
    cJSON_Delete(ref);
    vkl_train_dev_destroy(t);
    vkl_lora_free(l);
    vkl_model_free(m);
    vkl_config_free(&c);
    return 0;
}

static int test_torch_all_modules(void) { return check_vs_torch(VKL_GRAD_CKPT_OFF, VKL_TM_ALL, false, "all"); }
static int test_torch_recompute(void) {
    return check_vs_torch(VKL_GRAD_CKPT_ON, VKL_TM_Q | VKL_TM_V | VKL_TM_DOWN, true, "qv-down-rslora-ckpt");
}

const vkl_test_case vkl_tests_train[] = {
    {"train/torch_reference_all_modules", test_torch_all_modules},
    {"train/torch_reference_recompute_rslora", test_torch_recompute},
    {NULL, NULL},
};
