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
#include "vklora/adapter.h"
#include "vklora/data.h"
#include "forward.h"
#include "ops/matmul.h"
#include "vklora/quant.h"
#include "vklora/gguf.h"
#include "vklora/loftq.h"
#include "vklora/trainer.h"
#include "vklora/lora.h"
#include "vklora/model.h"

static float *read_f32(const char *path, uint64_t *n) {
    size_t len = 0;
    float *d = (float *)t_read_file(path, &len);
    *n = len / 4;
    return d;
}

static cJSON *read_json(const char *path) {
    char *d = t_read_file(path, NULL);
    cJSON *j = d ? cJSON_Parse(d) : NULL;
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
    const char *names[] = {"q", "k", "v", "o", "gate", "up", "down", "qkv", "gate_up"};
    cJSON *tg = cJSON_AddArrayToObject(s, "targets");
    for (int i = 0; i < 9; i++)
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

/* Compare vklora's step with PyTorch for one model, checkpointing mode and module set. tol scales the fp32
 * tolerances (deeper or softer-capped random models lose a little more to fp32 summation order). */
static int check_vs_torch_model(const char *model_path, vkl_grad_ckpt ckpt, uint32_t targets, bool rslora,
                                const char *tag, double tol, double clip) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    vkl_model *m;
    T_ASSERT(!vkl_model_load(model_path, &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, targets, 4, 8.0, rslora, &l, &err), "%s", err.msg);
    vkl_lora_init(l, 1234);
    /* B = 0 would make every A gradient zero: give B random values so both gradients are exercised. */
    t_rng_seed(99);
    t_lora_random_b(l, 0.05f);
    batches b;
    make_batches(&b, m->hp.n_vocab);
    vkl_config c;
    vkl_config_defaults(&c);
    c.max_grad_norm = clip; /* small enough that the steps clip */
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
    T_ASSERT(e_logits < 2e-5 * tol, "%s: logits max rel err %.3g", tag, e_logits);
    T_ASSERT(e_nll < 2e-5 * tol, "%s: per-token NLL max rel err %.3g", tag, e_nll);

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
        T_ASSERT(fabs(loss - want) < 2e-5 * tol * want, "%s: step %u loss %.8f vs torch %.8f", tag, s, loss, want);
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
                if (!(ea < 1e-4 * tol && eb < 1e-4 * tol)) {
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
        T_ASSERT(fabs(gn - wn) < 1e-4 * tol * wn, "%s: step %u grad norm %.6g vs torch %.6g", tag, s, gn, wn);
        T_ASSERT(wn > c.max_grad_norm, "the reference step must clip (norm %g)", wn);
    }
    T_ASSERT(!vkl_train_dev_read(t, params, NULL, NULL, NULL, &err), "%s", err.msg);
    float *rp = read_f32(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "params_final")), &n);
    T_ASSERT(rp && n == l->n_params, "reference params");
    /* Parameters moved by ~lr per step (Adam); their difference must be small against that movement. Adam
     * normalises every coordinate's step by its own gradient scale, so the fp32 gradient error (<= 1e-4 of the
     * largest gradient, checked above) becomes up to ~1% of a step on coordinates whose gradient is ~100x smaller
     * than the largest; a wrong gradient or optimizer moves coordinates by whole steps. */
    double maxd = 0, maxmove = 0;
    for (uint64_t i = 0; i < n; i++) {
        maxd = fmax(maxd, fabs(params[i] - rp[i]));
        maxmove = fmax(maxmove, fabs(rp[i] - l->params[i]));
    }
    T_ASSERT(maxmove > 1e-3, "parameters must move");
    /* With the products on cooperative matrices (f16 operands) the gradients are right to ~1e-2 of the largest,
     * which flips Adam's step on coordinates whose gradient is that small: a whole step of difference (measured: 1.5x
     * the largest movement after 2 steps). There the losses after each update (above, tol) check the optimizer instead. */
    const char *mm = getenv("VKLORA_MATMUL"), *at = getenv("VKLORA_ATTN");
    if (!(mm && !strcmp(mm, "coopmat")) && !(at && !strcmp(at, "coopmat")))
        T_ASSERT(maxd < 1e-2 * maxmove, "%s: params after %u steps differ by %.3g (movement %.3g)", tag,
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

static int check_vs_torch(vkl_grad_ckpt ckpt, uint32_t targets, bool rslora, const char *tag) {
    return check_vs_torch_model(t_data_path("models/stories260K.gguf"), ckpt, targets, rslora, tag, 1.0, 0.5);
}

/* Every architecture's whole step against PyTorch written from the Hugging Face semantics (tests/torch_ref):
 * random F32 models with each family's features, LoRA on every module it has. */
static int check_arch_vs_torch(const char *arch, const char *extra, vkl_grad_ckpt ckpt, double tol) {
    char path[512], cmd[1024];
    snprintf(path, sizeof(path), "%s/torch-%s.gguf", t_tmpdir(), arch);
    snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --arch %s --type f32 --dim 64 --ff 96 --layers 2 --heads 4 "
             "--kv-heads 2 --seed 5 %s >/dev/null", VKL_BUILD_ROOT, path, arch, extra);
    T_ASSERT(system(cmd) == 0, "mkmodel %s", arch);
    char tag[64];
    snprintf(tag, sizeof(tag), "arch-%s", arch);
    return check_vs_torch_model(path, ckpt, VKL_TM_ALL, false, tag, tol, 0.1);
}
static int test_torch_llama3(void) {
    return check_arch_vs_torch("llama", "--rope-freqs --tied --rope-base 500000 --head-dim 24", VKL_GRAD_CKPT_OFF, 1);
}
static int test_torch_qwen3(void) {
    return check_arch_vs_torch("qwen3", "--head-dim 32 --tied --rope-base 1000000", VKL_GRAD_CKPT_ON, 1);
}
static int test_torch_gemma2(void) {
    return check_arch_vs_torch("gemma2", "--head-dim 32 --window 7 --softcap 5,3 --tied", VKL_GRAD_CKPT_OFF, 1);
}
static int test_torch_gemma3(void) {
    return check_arch_vs_torch("gemma3", "--layers 3 --kv-heads 1 --head-dim 32 --window 6 --swa-period 2 "
                               "--rope-base 1000000 --tied --scaling linear --factor 8", VKL_GRAD_CKPT_UNSLOTH, 1);
}
static int test_torch_phi3(void) {
    return check_arch_vs_torch("phi3", "--rope-dim 12 --longrope --ctx 64 --orig-ctx 16", VKL_GRAD_CKPT_OFF, 1);
}
static int test_torch_mistral3(void) {
    return check_arch_vs_torch("mistral3", "--head-dim 20 --scaling yarn --factor 4 --orig-ctx 8 --attn-temp 0.3",
                               VKL_GRAD_CKPT_OFF, 1);
}
static int test_torch_qwen2(void) { return check_arch_vs_torch("qwen2", "--tied", VKL_GRAD_CKPT_OFF, 1); }
/* A Qwen-sized 152,064-token vocabulary (tied head, soft-capped logits): the head and its backward run in row chunks
 * and the transposed product splits the vocabulary under the device's limits. */
static int test_torch_big_vocab(void) {
    return check_arch_vs_torch("gemma2", "--vocab 152064 --tied --head-dim 16 --window 8", VKL_GRAD_CKPT_UNSLOTH, 1);
}

static int test_torch_all_modules(void) { return check_vs_torch(VKL_GRAD_CKPT_OFF, VKL_TM_ALL, false, "all"); }
static int test_torch_recompute(void) {
    return check_vs_torch(VKL_GRAD_CKPT_ON, VKL_TM_Q | VKL_TM_V | VKL_TM_DOWN, true, "qv-down-rslora-ckpt");
}

/* The whole step with every weight product (projections, output head, their transposed products) and every LoRA
 * GEMM on cooperative matrices: VKLORA_MATMUL=coopmat, which runs inside tools/chroot-trixie.sh and is refused with
 * the reason where it cannot run (then only that refusal is checked; VKL_TEST_REQUIRE_COOPMAT=1 makes it a failure);
 * the variant registry must show coopmat and nothing else for all three ops. Those products
 * round both operands to f16 (2^-11 relative each, rounding to nearest), an error ~2^-10 of sum|x w| per product
 * where fp32 summation errs by ~1e-6; the fp32 tolerances below (2e-5 logits and loss, 1e-4 gradients) leave ~10x
 * room over fp32's errors, so tol = 100 keeps about that room over f16's: logits within 2e-3, gradients 1e-2
 * (measured on lavapipe: logits 6e-4; everything passes at tol = 35, so >= 3x margin). */
static int test_torch_coopmat(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    setenv("VKLORA_MATMUL", "coopmat", 1);
    const char *kern = NULL;
    vkl_err err = {0};
    vkl_status st = vkl_op_matmul_kernel(vk, VKL_TYPE_F32, (vkl_tview){NULL, 0}, (vkl_tview){NULL, 0}, 64, &kern, &err);
    int rc = 0;
    if (st) {
        unsetenv("VKLORA_MATMUL");
        if (t_coopmat_refusal(st, err.msg, "VKLORA_MATMUL=coopmat")) return 1;
    } else {
        vkl_op_variants_reset();
        rc = check_vs_torch_model(t_data_path("models/stories260K.gguf"), VKL_GRAD_CKPT_OFF, VKL_TM_ALL, false,
                                  "all-coopmat", 100.0, 0.5);
        /* the weight products and the LoRA GEMMs all ran on cooperative matrices */
        static const char *const ops[] = {"matmul", "matmul_t", "gemm"};
        for (size_t i = 0; i < VKL_ARRAY_LEN(ops) && !rc; i++) {
            char used[64];
            vkl_op_variants_of(ops[i], used, sizeof(used));
            T_ASSERT(!strcmp(used, "coopmat"), "VKLORA_MATMUL=coopmat: %s ran \"%s\"", ops[i], used);
        }
    }
    unsetenv("VKLORA_MATMUL");
    return rc;
}

/* The whole step with attention in the flash-attention kernels (shaders/attention_flash*.comp): VKLORA_ATTN=flash
 * (f32 block products, any device) on stories260K (GQA 2, D 8) and on the Gemma 2 model (sliding window, soft-cap)
 * at the fp32 tolerances; VKLORA_ATTN=coopmat (f16 x f16 -> f32 block products) where it can run, else only its
 * refusal is checked (VKL_TEST_REQUIRE_COOPMAT=1 makes that a failure). The coopmat attention rounds q * scale, k,
 * v, p and the scaled gradients to f16 (2^-11 relative) where the weight products above round x and w: the same
 * error class, so the same tol = 100 as train/torch_reference_coopmat (measured on the Debian 13 lavapipe, 8x8x8:
 * logits 6.3e-4 of max, which fails tol = 10 and passes 100 with 3x margin). */
static int test_torch_attn_flash(void) {
    setenv("VKLORA_ATTN", "flash", 1);
    int rc = check_vs_torch(VKL_GRAD_CKPT_OFF, VKL_TM_ALL, false, "attn-flash");
    unsetenv("VKLORA_ATTN");
    return rc;
}
static int test_torch_attn_flash_gemma2(void) {
    setenv("VKLORA_ATTN", "flash", 1);
    int rc = check_arch_vs_torch("gemma2", "--head-dim 32 --window 7 --softcap 5,3 --tied", VKL_GRAD_CKPT_OFF, 1);
    unsetenv("VKLORA_ATTN");
    return rc;
}
static int test_torch_attn_coopmat(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    /* a one-token attention tells whether the coopmat kernels can run here */
    vkl_attn_shape s = {1, 1, 1, 1, 1, 8, 0, 0.5f, 0, 0};
    vkl_buffer b = {0};
    vkl_err err = {0};
    T_ASSERT(!vkl_buffer_create(vk, 64, VKL_MEM_DEVICE, &b, &err), "%s", err.msg);
    vkl_op_cache cache = {0};
    setenv("VKLORA_ATTN", "coopmat", 1);
    vkl_status st = vkl_op_attention(vk, &cache, &s, vkl_tv(&b, 0), vkl_tv(&b, 0), vkl_tv(&b, 0), vkl_tv_none(),
                                     vkl_tv(&b, 32), vkl_tv_none(), &err);
    vkl_op_cache_destroy(vk, &cache);
    vkl_buffer_destroy(vk, &b);
    int rc = 0;
    if (st) {
        unsetenv("VKLORA_ATTN");
        if (t_coopmat_refusal(st, err.msg, "VKLORA_ATTN=coopmat")) return 1;
    } else {
        rc = check_vs_torch_model(t_data_path("models/stories260K.gguf"), VKL_GRAD_CKPT_OFF, VKL_TM_ALL, false,
                                  "attn-coopmat", 100.0, 0.5);
    }
    unsetenv("VKLORA_ATTN");
    return rc;
}

/* The whole step with every product on the shared-memory kernels of GPUs without cooperative matrices
 * (VKLORA_MATMUL=tiled: the weight matmul, its transpose and the LoRA GEMMs; fp32 like the default kernels, so the
 * fp32 tolerances hold). */
static int test_torch_tiled(void) {
    setenv("VKLORA_MATMUL", "tiled", 1);
    vkl_op_variants_reset();
    int rc = check_vs_torch_model(t_data_path("models/stories260K.gguf"), VKL_GRAD_CKPT_OFF, VKL_TM_ALL, false,
                                  "all-tiled", 1.0, 0.5);
    unsetenv("VKLORA_MATMUL");
    static const char *const ops[] = {"matmul", "matmul_t", "gemm"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(ops) && !rc; i++) {
        char used[64];
        vkl_op_variants_of(ops[i], used, sizeof(used));
        T_ASSERT(!strcmp(used, "tiled"), "VKLORA_MATMUL=tiled: %s ran \"%s\"", ops[i], used);
    }
    return rc;
}

/* ---- end-to-end runs of the trainer on stories260K ---- */

static vkl_status train_run(const char *out, int64_t max_steps, const char *extra_set, int64_t stop_after,
                            const char *resume, vkl_trainer_result *res, vkl_err *err) {
    char o[1200], ms[64];
    snprintf(o, sizeof(o), "output_dir=%s", out);
    snprintf(ms, sizeof(ms), "max_steps=%lld", (long long)max_steps);
    const char *sets[8] = {"per_device_train_batch_size=2", "gradient_accumulation_steps=2", "max_seq_length=64",
                           "learning_rate=3e-3", "use_gradient_checkpointing=false", o, ms, extra_set};
    char cfgtxt[2048];
    snprintf(cfgtxt, sizeof(cfgtxt), "{\"model\": \"%s\", \"dataset\": {\"path\": \"%s\", \"eval_path\": \"%s\"}}",
             t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"),
             t_data_path("datasets/tinystories_sample.txt"));
    vkl_config c;
    if (vkl_config_from_json_string(cfgtxt, "<test>", sets, extra_set ? 8 : 7, &c, err)) return err->status;
    vkl_trainer_opts op = {.quiet = true, .stop_after = stop_after, .resume_dir = resume};
    vkl_status st = vkl_trainer_run(&c, &op, res, err);
    vkl_config_free(&c);
    return st;
}

/* Training on cooperative matrices follows the fp32 loss curve: 50 steps on stories260K with every weight product
 * and attention's block products on f16 operands (VKLORA_MATMUL=coopmat, VKLORA_ATTN=coopmat) against the fp32
 * register-tile kernels (regtile and attention's default, on any device). The
 * first losses differ by the forward's f16 rounding (~1e-4 relative); later ones also by the updates, whose f16
 * gradient errors Adam turns into whole-step differences on coordinates with tiny gradients (see
 * check_vs_torch_model), so the curves drift apart slowly: measured at most 0.11% over the 50 steps on lavapipe
 * (eval loss 0.610835 vs 0.610705) with the weight products alone, 0.075% (0.610748) with attention's too; the
 * bound is 1% per step and on the final eval loss, while the fp32 loss itself
 * falls by more than 10% over the run (checked), so a product that is wrong or untrained shows. Refused with the
 * reason where coopmat cannot run, as the torch test. */
static int test_coopmat_loss_curve(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    setenv("VKLORA_MATMUL", "coopmat", 1);
    const char *kern = NULL;
    vkl_err err = {0};
    vkl_status st = vkl_op_matmul_kernel(vk, VKL_TYPE_F32, (vkl_tview){NULL, 0}, (vkl_tview){NULL, 0}, 64, &kern, &err);
    unsetenv("VKLORA_MATMUL");
    if (st) {
        if (t_coopmat_refusal(st, err.msg, "VKLORA_MATMUL=coopmat")) return 1;
        return 0;
    }
    static const char *const variants[2] = {"regtile", "coopmat"};
    double loss[2][64], eval[2];
    int n[2];
    for (int v = 0; v < 2; v++) {
        char out[512];
        snprintf(out, sizeof(out), "%s/run-curve-%s", t_tmpdir(), variants[v]);
        vkl_trainer_result r;
        setenv("VKLORA_MATMUL", variants[v], 1);
        if (v) setenv("VKLORA_ATTN", "coopmat", 1); /* attention's block products on cooperative matrices too */
        st = train_run(out, 50, "save_steps=0", 0, NULL, &r, &err);
        unsetenv("VKLORA_MATMUL");
        unsetenv("VKLORA_ATTN");
        T_ASSERT(!st && r.steps_done == 50, "%s: %s", variants[v], err.msg);
        n[v] = t_read_losses(out, loss[v], 64);
        eval[v] = r.eval_loss_after;
    }
    T_ASSERT(n[0] >= 50 && n[1] == n[0], "metrics lines: %d and %d", n[0], n[1]);
    double worst = 0;
    int worst_i = 0;
    for (int i = 0; i < n[0]; i++) {
        double d = fabs(loss[1][i] - loss[0][i]) / fabs(loss[0][i]);
        if (!(d <= worst)) worst = d, worst_i = i;
    }
    if (getenv("VKL_TEST_VERBOSE"))
        fprintf(stderr, "    coopmat vs fp32: worst loss difference %.3g (line %d), eval %.6f vs %.6f\n", worst,
                worst_i, eval[1], eval[0]);
    T_ASSERT(worst < 1e-2, "line %d of metrics.jsonl: loss %.6f with coopmat, %.6f in fp32 (%.2g apart)", worst_i,
             loss[1][worst_i], loss[0][worst_i], worst);
    T_ASSERT(fabs(eval[1] - eval[0]) < 1e-2 * eval[0], "eval loss %.6f with coopmat, %.6f in fp32", eval[1], eval[0]);
    T_ASSERT(loss[0][n[0] - 1] < 0.9 * loss[0][0], "the fp32 run must learn (%.4f -> %.4f)", loss[0][0],
             loss[0][n[0] - 1]);
    return 0;
}

/* Loss falls on real data; the adapter files re-load (llama.cpp GGUF and PEFT) and give the in-memory eval loss. */
static int test_train_loss_falls_and_reload(void) {
    vkl_err err = {0};
    vkl_trainer_result r;
    char out[512];
    snprintf(out, sizeof(out), "%s/run-falls", t_tmpdir());
    T_ASSERT(!train_run(out, 12, "save_steps=0", 0, NULL, &r, &err), "%s", err.msg);
    T_ASSERT(r.steps_done == 12 && !r.interrupted, "steps %lld", (long long)r.steps_done);
    T_ASSERT(r.eval_loss_after < r.eval_loss_before - 0.05, "eval loss %.4f -> %.4f: must fall", r.eval_loss_before,
             r.eval_loss_after);
    /* Re-load both files and score the eval set with the same device path the trainer used. */
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_model *m;
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    vkl_tokenizer *tok;
    T_ASSERT(!vkl_tokenizer_load(m->gguf, &tok, &err), "%s", err.msg);
    vkl_config c;
    vkl_config_defaults(&c);
    c.max_seq_length = 64;
    vkl_data_opts dopt;
    vkl_data_opts_from_config(&c, NULL, &dopt);
    vkl_dataset *ds;
    T_ASSERT(!vkl_data_load_file(t_data_path("datasets/tinystories_sample.txt"), &dopt, tok, &ds, &err), "%s",
             err.msg);
    const char *paths[2] = {"adapter.gguf", ""};
    for (int k = 0; k < 2; k++) {
        char p[700];
        snprintf(p, sizeof(p), "%s/%s", out, paths[k]);
        vkl_lora *l;
        T_ASSERT(!vkl_adapter_load(p, m, &l, &err), "%s: %s", p, err.msg);
        vkl_train_dev *t;
        T_ASSERT(!vkl_train_dev_create(vk, m, l, 2, ds->max_len, VKL_GRAD_CKPT_OFF, &t, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
        vkl_data_plan *plan;
        T_ASSERT(!vkl_data_plan_epoch(ds, NULL, 2, ds->max_len, false, &plan, &err), "%s", err.msg);
        vkl_batch b = {.B = 2, .T = ds->max_len};
        size_t n = (size_t)2 * ds->max_len;
        b.tokens = malloc(n * 4), b.targets = malloc(n * 4), b.pos = malloc(n * 4), b.seg = malloc(n * 4);
        double sum = 0;
        uint64_t cnt = 0;
        for (uint32_t i = 0; i < plan->n_batches; i++) {
            double s2;
            T_ASSERT(!vkl_data_fill_batch(ds, plan, i, &b, &err), "%s", err.msg);
            T_ASSERT(!vkl_train_eval_batch(t, b.tokens, b.pos, b.seg, b.targets, &s2, &err), "%s", err.msg);
            sum += s2;
            cnt += b.n_targets;
        }
        double loss = sum / (double)cnt;
        /* the same kernels on the same parameters: equal up to the last bits */
        T_ASSERT(fabs(loss - r.eval_loss_after) < 1e-6 * r.eval_loss_after, "%s: eval loss %.8f vs in-memory %.8f",
                 paths[k][0] ? paths[k] : "PEFT dir", loss, r.eval_loss_after);
        free(b.tokens), free(b.targets), free(b.pos), free(b.seg);
        vkl_data_plan_free(plan);
        vkl_train_dev_destroy(t);
        vkl_lora_free(l);
    }
    vkl_dataset_free(ds);
    vkl_tokenizer_free(tok);
    vkl_model_free(m);
    vkl_config_free(&c);
    /* and `vklora eval --adapter` lowers the loss on that text too */
    char cmd[2048], *o = NULL, *e = NULL;
    snprintf(cmd, sizeof(cmd), "%s eval --model %s --text %s --ctx 64 --adapter %s/adapter.gguf --json", t_vklora_bin(),
             t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"), out);
    T_ASSERT(t_run(cmd, &o, &e) == 0, "eval --adapter: %s", e ? e : "");
    cJSON *j = cJSON_Parse(o);
    double with = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "mean_nll"));
    cJSON_Delete(j);
    free(o), free(e);
    snprintf(cmd, sizeof(cmd), "%s eval --model %s --text %s --ctx 64 --json", t_vklora_bin(),
             t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"));
    T_ASSERT(t_run(cmd, &o, &e) == 0, "eval: %s", e ? e : "");
    j = cJSON_Parse(o);
    double without = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "mean_nll"));
    cJSON_Delete(j);
    free(o), free(e);
    T_ASSERT(with < without - 0.05, "eval --adapter %.4f vs base %.4f", with, without);
    return 0;
}

/* Same config and seed: byte-identical adapter; stopped at step 3 and resumed: the same curve and adapter. */
static int test_train_determinism_and_resume(void) {
    vkl_err err = {0};
    vkl_trainer_result r1, r2, r3, r4;
    char a[512], b[512], c[512], ck[600], pa[700], pb[700];
    snprintf(a, sizeof(a), "%s/run-a", t_tmpdir());
    snprintf(b, sizeof(b), "%s/run-b", t_tmpdir());
    snprintf(c, sizeof(c), "%s/run-c", t_tmpdir());
    T_ASSERT(!train_run(a, 6, "save_steps=3", 0, NULL, &r1, &err), "%s", err.msg);
    T_ASSERT(!train_run(b, 6, "save_steps=3", 0, NULL, &r2, &err), "%s", err.msg);
    snprintf(pa, sizeof(pa), "%s/adapter.gguf", a);
    snprintf(pb, sizeof(pb), "%s/adapter.gguf", b);
    T_ASSERT(t_same_file(pa, pb), "two identical runs gave different adapters");
    snprintf(pa, sizeof(pa), "%s/adapter_model.safetensors", a);
    snprintf(pb, sizeof(pb), "%s/adapter_model.safetensors", b);
    T_ASSERT(t_same_file(pa, pb), "two identical runs gave different PEFT files");
    /* interrupted after 3 steps, then resumed */
    T_ASSERT(!train_run(c, 6, "save_steps=3", 2, NULL, &r3, &err), "%s", err.msg);
    T_ASSERT(r3.interrupted && r3.steps_done == 2, "stop_after");
    snprintf(ck, sizeof(ck), "%s/checkpoint-2", c);
    T_ASSERT(!train_run(c, 6, "save_steps=3", 0, ck, &r4, &err), "%s", err.msg);
    T_ASSERT(r4.steps_done == 6 && !r4.interrupted, "resumed run finished at %lld", (long long)r4.steps_done);
    snprintf(pa, sizeof(pa), "%s/adapter.gguf", a);
    snprintf(pb, sizeof(pb), "%s/adapter.gguf", c);
    T_ASSERT(t_same_file(pa, pb), "resumed adapter differs from the uninterrupted one");
    double la[16], lc[16];
    int na = t_read_losses(a, la, 16), nc = t_read_losses(c, lc, 16);
    T_ASSERT(na == 6 && nc == 6, "metrics lines %d and %d", na, nc);
    for (int i = 0; i < 6; i++) T_ASSERT(la[i] == lc[i], "step %d loss %.9g vs resumed %.9g", i + 1, la[i], lc[i]);
    /* a checkpoint from another config is refused */
    snprintf(ck, sizeof(ck), "%s/checkpoint-3", a);
    vkl_trainer_result r5;
    vkl_err_clear(&err);
    T_ASSERT(train_run(c, 6, "seed=7", 0, ck, &r5, &err) == VKL_ERR_INPUT, "foreign checkpoint accepted");
    T_ASSERT(strstr(err.msg, "different run"), "%s", err.msg);
    return 0;
}

/* Recomputation gives the same gradients as keeping every activation, bit for bit, with less memory. */
static int test_checkpointing_same_gradients(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    vkl_model *m;
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_ALL, 8, 16, false, &l, &err), "%s", err.msg);
    vkl_lora_init(l, 5);
    t_lora_random_b(l, 0.05f);
    batches b;
    make_batches(&b, m->hp.n_vocab);
    float *g[3];
    uint64_t mem[3];
    const vkl_grad_ckpt modes[3] = {VKL_GRAD_CKPT_OFF, VKL_GRAD_CKPT_ON, VKL_GRAD_CKPT_UNSLOTH};
    for (int mode = 0; mode < 3; mode++) {
        vkl_train_dev *t;
        uint64_t before = vk->device_bytes;
        T_ASSERT(!vkl_train_dev_create(vk, m, l, b.B, b.T, modes[mode], &t, &err), "%s", err.msg);
        T_ASSERT(t->planned_bytes == vkl_train_plan_bytes(&m->hp, l, b.B, b.T, modes[mode]), "plan");
        mem[mode] = vk->device_bytes - before;
        T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
        double s;
        T_ASSERT(!vkl_train_micro_step(t, b.tokens[0][0], b.pos, b.seg, b.targets[0][0], 0.01f, &s, &err), "%s",
                 err.msg);
        g[mode] = malloc(l->n_params * 4);
        T_ASSERT(!vkl_train_dev_read(t, NULL, NULL, NULL, g[mode], &err), "%s", err.msg);
        vkl_train_dev_destroy(t);
    }
    T_ASSERT(!memcmp(g[0], g[1], l->n_params * 4), "recompute changed the gradients");
    T_ASSERT(!memcmp(g[0], g[2], l->n_params * 4), "offloading changed the gradients");
    T_ASSERT(mem[1] < mem[0] && mem[2] < mem[1], "device memory must fall off > true > unsloth: %llu %llu %llu",
             (unsigned long long)mem[0], (unsigned long long)mem[1], (unsigned long long)mem[2]);
    /* Bindings of 8 KiB split every product into row blocks (the LoRA products by rows_per_call in lora_ops.c, whose
     * dxa rows the transposed weight product then reads all at once as its low-rank term): the same gradients up to
     * the summation order. */
    {
        setenv("VKLORA_MAX_BIND_BYTES", "8192", 1);
        vkl_train_dev *t;
        vkl_status st = vkl_train_dev_create(vk, m, l, b.B, b.T, VKL_GRAD_CKPT_OFF, &t, &err);
        double s;
        if (!st) st = vkl_train_dev_load_params(t, NULL, NULL, &err);
        if (!st) st = vkl_train_micro_step(t, b.tokens[0][0], b.pos, b.seg, b.targets[0][0], 0.01f, &s, &err);
        if (!st) st = vkl_train_dev_read(t, NULL, NULL, NULL, g[1], &err);
        if (!st) vkl_train_dev_destroy(t);
        unsetenv("VKLORA_MAX_BIND_BYTES");
        T_ASSERT(!st, "small bindings: %s", err.msg);
        double gmax = 0, emax = 0;
        for (uint64_t i = 0; i < l->n_params; i++) {
            gmax = fmax(gmax, fabs(g[0][i]));
            emax = fmax(emax, fabs((double)g[0][i] - g[1][i]));
        }
        T_ASSERT(gmax > 0 && emax <= 1e-4 * gmax, "small bindings changed the gradients: %.3g of max |g| %.3g",
                 emax / gmax, gmax);
    }
    free(g[0]), free(g[1]), free(g[2]);
    for (uint32_t s2 = 0; s2 < 2; s2++)
        for (uint32_t mb = 0; mb < 2; mb++) free(b.tokens[s2][mb]), free(b.targets[s2][mb]);
    free(b.pos), free(b.seg);
    vkl_lora_free(l);
    vkl_model_free(m);
    return 0;
}

/* bias = all / lora_only on a Qwen2 model (the llama family's only biases are Qwen2's q/k/v): which biases train,
 * their gradient against central differences of the device loss, and the adapter formats (PEFT keeps them,
 * llama.cpp's GGUF cannot and is refused with a message). */
static int test_bias_modes(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    char path[512], cmd[1024];
    snprintf(path, sizeof(path), "%s/qwen2-bias.gguf", t_tmpdir());
    snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --arch qwen2 --dim 64 --ff 128 --layers 2 --heads 4 --kv-heads 2 "
             "--seed 4 >/dev/null", VKL_BUILD_ROOT, path);
    T_ASSERT(system(cmd) == 0, "mkmodel");
    vkl_err err = {0};
    vkl_model *m;
    T_ASSERT(!vkl_model_load(path, &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_Q | VKL_TM_O, 4, 8, false, &l, &err), "%s", err.msg);
    T_ASSERT(!vkl_lora_add_biases(l, m, VKL_BIAS_LORA_ONLY, &err), "%s", err.msg);
    T_ASSERT(l->n_bias == 2 && vkl_lora_bias_get(l, 1, 0) && !vkl_lora_bias_get(l, 1, 1), "lora_only: q biases only");
    vkl_lora_free(l);
    T_ASSERT(!vkl_lora_create(m, VKL_TM_Q | VKL_TM_O, 4, 8, false, &l, &err), "%s", err.msg);
    vkl_lora_init(l, 1);
    T_ASSERT(!vkl_lora_add_biases(l, m, VKL_BIAS_ALL, &err), "%s", err.msg);
    T_ASSERT(l->n_bias == 6, "all: q, k, v biases of 2 layers, got %u", l->n_bias);
    const vkl_lora_bias_slot *bk = vkl_lora_bias_get(l, 1, 1);
    T_ASSERT(!memcmp(l->params + bk->off, m->layers[1].bk.t->data, bk->n * 4), "biases start as the base's");
    /* gradient of the k bias of layer 1 vs central differences */
    const uint32_t B = 1, T = 16, V = m->hp.n_vocab;
    int32_t tok[16], tgt[16], pos[16], seg[16] = {0};
    for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)(t_rng_u32() % V), pos[i] = (int32_t)i;
    for (uint32_t i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1;
    vkl_train_dev *t;
    T_ASSERT(!vkl_train_dev_create(vk, m, l, B, T, VKL_GRAD_CKPT_OFF, &t, &err), "%s", err.msg);
    T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
    double s0;
    T_ASSERT(!vkl_train_micro_step(t, tok, pos, seg, tgt, 1.0f, &s0, &err), "%s", err.msg);
    float *g = malloc(l->n_params * 4);
    T_ASSERT(!vkl_train_dev_read(t, NULL, NULL, NULL, g, &err), "%s", err.msg);
    double worst = 0;
    /* the 4 largest gradients of the bias: the loss is a sum of ~40 NLLs in fp32, so differences of tiny
     * gradients drown in rounding noise */
    uint64_t pick[4];
    for (uint32_t j = 0; j < 4; j++) {
        uint64_t best = UINT64_MAX;
        for (uint64_t i = bk->off; i < bk->off + bk->n; i++) {
            bool used = false;
            for (uint32_t q = 0; q < j; q++) used |= pick[q] == i;
            if (!used && (best == UINT64_MAX || fabsf(g[i]) > fabsf(g[best]))) best = i;
        }
        pick[j] = best;
    }
    for (uint32_t j = 0; j < 4; j++) {
        uint64_t idx = pick[j];
        const float h = 1e-2f, orig = l->params[idx];
        double lp, lm;
        l->params[idx] = orig + h;
        T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_eval_batch(t, tok, pos, seg, tgt, &lp, &err), "%s", err.msg);
        l->params[idx] = orig - h;
        T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_eval_batch(t, tok, pos, seg, tgt, &lm, &err), "%s", err.msg);
        l->params[idx] = orig;
        double fd = (lp - lm) / (2 * h);
        /* fp32 losses of ~40 nats: their noise (~1e-5) over 2h gives ~5e-4 absolute; curvature adds O(h^2) */
        double e = fabs(fd - g[idx]) / (fabs(fd) + 2e-3);
        worst = fmax(worst, e);
    }
    T_ASSERT(worst < 0.05, "bias gradient vs central differences: rel err %.3g", worst);
    /* formats */
    char dir[600], gg[700];
    snprintf(dir, sizeof(dir), "%s/bias-peft", t_tmpdir());
    snprintf(gg, sizeof(gg), "%s/bias.gguf", t_tmpdir());
    vkl_err_clear(&err);
    T_ASSERT(vkl_adapter_save_gguf(l, m, gg, &err) == VKL_ERR_INPUT && strstr(err.msg, "biases"), "GGUF: %s", err.msg);
    for (uint64_t i = bk->off; i < bk->off + bk->n; i++) l->params[i] += 0.25f; /* a trained-looking bias */
    T_ASSERT(!vkl_adapter_save_peft(l, m, dir, &err), "%s", err.msg);
    vkl_lora *back;
    T_ASSERT(!vkl_adapter_load(dir, m, &back, &err), "%s", err.msg);
    T_ASSERT(back->n_bias == 6 && back->n_params == l->n_params, "reloaded biases");
    T_ASSERT(!memcmp(back->params + bk->off, l->params + bk->off, bk->n * 4), "bias values survive PEFT");
    vkl_lora_free(back);
    free(g);
    vkl_train_dev_destroy(t);
    vkl_lora_free(l);
    vkl_model_free(m);
    return 0;
}

/* LoftQ end to end: the quantized weights plus the LoftQ adapter give logits closer to the full-precision model
 * than the quantized weights alone (adapter scale 0), and `vklora train` with loftq_config runs. */
static int test_loftq_end_to_end(void) {
    if (!vkl_loftq_available()) {
        printf("    skipped: built without LAPACK, so LoftQ is refused (loftq/refused_without_lapack checks that)\n");
        return 0;
    }
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    char path[512], cmd[1024];
    snprintf(path, sizeof(path), "%s/loftq-f32.gguf", t_tmpdir());
    snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --type f32 --dim 256 --ff 512 --layers 2 --heads 4 --kv-heads 2 "
             "--seed 5 >/dev/null", VKL_BUILD_ROOT, path);
    T_ASSERT(system(cmd) == 0, "mkmodel");
    vkl_err err = {0};
    vkl_model *fp, *q;
    T_ASSERT(!vkl_model_load(path, &fp, &err) && !vkl_model_load(path, &q, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(q, VKL_TM_ALL, 16, 16, false, &l, &err), "%s", err.msg);
    vkl_loftq_result *res;
    T_ASSERT(!vkl_loftq_init_model(q, l, 4, 2, NULL, &res, &err), "%s", err.msg);
    for (uint32_t i = 0; i < res->n; i++) {
        vkl_loftq_weight *w = &res->weights[i];
        T_ASSERT(w->res_after < w->res_before, "slot %u: residual %g -> %g", i, w->res_before, w->res_after);
        vkl_weight *pw = vkl_layer_projection(&q->layers[w->layer], w->module);
        pw->owned = w->bytes;
        pw->data = w->bytes;
        pw->type = w->type;
        pw->bytes = w->size;
        w->bytes = NULL;
    }
    vkl_loftq_result_free(res);
    T_ASSERT(!vkl_model_upload(fp, vk, &err) && !vkl_model_upload(q, vk, &err), "%s", err.msg);
    const uint32_t T = 33, V = fp->hp.n_vocab;
    int32_t tok[33];
    t_rng_seed(1234);
    for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)(t_rng_u32() % V);
    float *ref = malloc(V * 4), *got = malloc(V * 4);
    double dist[2];
    vkl_fwd_dims d = {.max_seq = 1, .max_T = T, .n_ctx = T};
    vkl_fwd *f;
    T_ASSERT(!vkl_fwd_create(vk, fp, &d, &f, &err), "%s", err.msg);
    T_ASSERT(!vkl_fwd_run(f, tok, 1, T, 0, NULL, NULL, ref, &err), "%s", err.msg);
    vkl_fwd_destroy(f);
    for (int k = 0; k < 2; k++) {
        T_ASSERT(!vkl_fwd_create(vk, q, &d, &f, &err), "%s", err.msg);
        T_ASSERT(!vkl_fwd_set_adapter(f, l, k ? 1.0f : 0.0f, &err), "%s", err.msg);
        T_ASSERT(!vkl_fwd_run(f, tok, 1, T, 0, NULL, NULL, got, &err), "%s", err.msg);
        double s2 = 0;
        for (uint32_t i = 0; i < V; i++) s2 += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        dist[k] = sqrt(s2);
        vkl_fwd_destroy(f);
    }
    /* every weight residual falls (above); through 2 random layers that shows as a smaller logit error */
    T_ASSERT(dist[1] < 0.97 * dist[0], "LoftQ logits distance %.4g vs plain quantization %.4g", dist[1], dist[0]);
    free(ref), free(got);
    vkl_lora_free(l);
    vkl_model_free(fp);
    vkl_model_free(q);
    /* the trainer path: loftq_config on the same base */
    char out[600], ms[700];
    snprintf(out, sizeof(out), "%s/loftq-run", t_tmpdir());
    snprintf(ms, sizeof(ms), "model=%s", path);
    const char *sets[] = {ms, "max_steps=2", "max_seq_length=32", "loftq_config={\"loftq_bits\":8,\"loftq_iter\":1}",
                          "use_gradient_checkpointing=true"};
    char cfgtxt[1024];
    snprintf(cfgtxt, sizeof(cfgtxt), "{\"dataset\": \"%s\", \"output_dir\": \"%s\"}",
             t_data_path("datasets/tinystories_sample.txt"), out);
    vkl_config c;
    T_ASSERT(!vkl_config_from_json_string(cfgtxt, "<test>", sets, 5, &c, &err), "%s", err.msg);
    vkl_trainer_opts op = {.quiet = true};
    vkl_trainer_result r;
    T_ASSERT(!vkl_trainer_run(&c, &op, &r, &err), "%s", err.msg);
    T_ASSERT(r.steps_done == 2 && isfinite(r.last_loss), "loftq training run");
    vkl_config_free(&c);
    return 0;
}

/* Each knob of the parameter guide changes what happens: max_seq_length, seed, batch size, weight decay,
 * warmup_ratio. */
static double a_norm(const char *dir, const vkl_model *m) {
    char p[700];
    snprintf(p, sizeof(p), "%s/adapter.gguf", dir);
    vkl_lora *l;
    vkl_err err = {0};
    if (vkl_adapter_load(p, m, &l, &err)) return -1;
    double s = 0;
    for (uint32_t i = 0; i < l->n_slots; i++)
        for (uint64_t k = 0; k < (uint64_t)l->r * l->slots[i].in; k++) s += (double)l->params[l->slots[i].a_off + k] * l->params[l->slots[i].a_off + k];
    vkl_lora_free(l);
    return sqrt(s);
}

static int test_knobs(void) {
    vkl_err err = {0};
    vkl_trainer_result r1, r2;
    char a[512], b[512];
    snprintf(a, sizeof(a), "%s/knob-a", t_tmpdir());
    snprintf(b, sizeof(b), "%s/knob-b", t_tmpdir());
    /* max_seq_length: rows are cut to it (text windows of exactly that length) */
    T_ASSERT(!train_run(a, 1, "max_seq_length=16", 0, NULL, &r1, &err), "%s", err.msg);
    T_ASSERT(r1.seq_len == 16, "seq_len %u", r1.seq_len);
    T_ASSERT(!train_run(b, 1, "max_seq_length=32", 0, NULL, &r2, &err), "%s", err.msg);
    T_ASSERT(r2.seq_len == 32 && r1.n_train > r2.n_train, "windows: %u of 16 vs %u of 32", r1.n_train, r2.n_train);
    /* per_device_train_batch_size: the micro-batch shape, and with epochs the number of steps */
    T_ASSERT(!train_run(a, -1, "per_device_train_batch_size=1", 0, NULL, &r1, &err), "%s", err.msg);
    T_ASSERT(!train_run(b, -1, "per_device_train_batch_size=4", 0, NULL, &r2, &err), "%s", err.msg);
    T_ASSERT(r1.batch_size == 1 && r2.batch_size == 4, "batch shapes");
    /* gradient_accumulation_steps is 2 in train_run: steps = ceil(ceil(n / B) / 2) */
    T_ASSERT(r1.total_steps == ((int64_t)r1.n_train + 1) / 2 &&
                 r2.total_steps == (((int64_t)r2.n_train + 3) / 4 + 1) / 2,
             "steps per epoch %lld / %lld for %u examples", (long long)r1.total_steps, (long long)r2.total_steps,
             r1.n_train);
    /* seed: another seed, another adapter */
    T_ASSERT(!train_run(a, 2, "seed=1", 0, NULL, &r1, &err), "%s", err.msg);
    T_ASSERT(!train_run(b, 2, "random_state=2", 0, NULL, &r2, &err), "%s", err.msg);
    char pa[700], pb[700];
    snprintf(pa, sizeof(pa), "%s/adapter.gguf", a);
    snprintf(pb, sizeof(pb), "%s/adapter.gguf", b);
    T_ASSERT(!t_same_file(pa, pb), "different seeds gave the same adapter");
    /* weight_decay shrinks A (decoupled: p *= 1 - lr*wd each step) */
    vkl_model *m;
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &m, &err), "%s", err.msg);
    T_ASSERT(!train_run(a, 4, "weight_decay=0", 0, NULL, &r1, &err), "%s", err.msg);
    double n0 = a_norm(a, m);
    T_ASSERT(!train_run(b, 4, "weight_decay=20", 0, NULL, &r2, &err), "%s", err.msg);
    double n1 = a_norm(b, m);
    vkl_model_free(m);
    T_ASSERT(n0 > 0 && n1 > 0 && n1 < 0.97 * n0, "weight decay: |A| %.4f vs %.4f without", n1, n0);
    /* warmup_ratio: the first steps ramp up linearly (HF: lr * step / warmup) */
    T_ASSERT(!train_run(a, 8, "warmup_ratio=0.5", 0, NULL, &r1, &err), "%s", err.msg);
    char path[700], line[4096];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", a);
    FILE *f = fopen(path, "r");
    T_ASSERT(f, "metrics");
    double lr[8];
    int n = 0;
    while (n < 8 && fgets(line, sizeof(line), f)) {
        cJSON *j = cJSON_Parse(line);
        lr[n++] = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "lr"));
        cJSON_Delete(j);
    }
    fclose(f);
    T_ASSERT(n == 8, "8 steps");
    const double peak = 3e-3; /* train_run's learning_rate; warmup = ceil(0.5 * 8) = 4 */
    for (int i = 0; i < 4; i++) T_ASSERT(fabs(lr[i] - peak * i / 4) < 1e-9, "warmup step %d lr %g", i, lr[i]);
    T_ASSERT(fabs(lr[4] - peak) < 1e-9 && lr[7] < lr[4], "after warmup: %g then %g", lr[4], lr[7]);
    return 0;
}

static int test_train_cli(void) {
    char cfg[600], cmd[2048], *o = NULL, *e = NULL;
    snprintf(cfg, sizeof(cfg), "%s/cli-train.json", t_tmpdir());
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"model\": \"%s\", \"dataset\": \"%s\", \"max_steps\": 2, \"max_seq_length\": 32, \"output_dir\": \"%s/cli-out\"}",
            t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"), t_tmpdir());
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s train %s --json", t_vklora_bin(), cfg);
    T_ASSERT(t_run(cmd, &o, &e) == 0, "train: %s", e ? e : "");
    cJSON *j = cJSON_Parse(o);
    T_ASSERT(j && cJSON_GetNumberValue(cJSON_GetObjectItem(j, "steps")) == 2, "summary: %s", o);
    cJSON_Delete(j);
    T_ASSERT(e && strstr(e, "step 2/2") && strstr(e, "use_gradient_checkpointing"), "progress on stderr: %s", e);
    free(o), free(e);
    /* Ctrl-C: a checkpoint at the current step, exit 130 (the wait loop is bounded by timeout; --foreground, since
     * timeout otherwise passes the SIGINT on to its whole process group as well, a second Ctrl-C that kills) */
    snprintf(cmd, sizeof(cmd),
             "cd %s && (timeout --foreground 300 %s train %s --set max_steps=400 --set save_steps=0 --set output_dir=%s/sigint "
             ">sig.log 2>&1 & pid=$!; n=0; while ! grep -q 'step 2/' sig.log && [ $n -lt 600 ]; do sleep 0.1; "
             "n=$((n+1)); done; kill -INT $pid; wait $pid; echo $? > sig.rc)",
             t_tmpdir(), t_vklora_bin(), cfg, t_tmpdir());
    T_ASSERT(system(cmd) == 0, "sigint script");
    char p2[700];
    snprintf(p2, sizeof(p2), "%s/sig.rc", t_tmpdir());
    char *rcs = t_read_file(p2, NULL);
    T_ASSERT(rcs && atoi(rcs) == 130, "exit code after Ctrl-C: %s", rcs ? rcs : "?");
    free(rcs);
    snprintf(p2, sizeof(p2), "%s/sig.log", t_tmpdir());
    char *log = t_read_file(p2, NULL);
    T_ASSERT(log && strstr(log, "interrupted: checkpoint saved in"), "log: %s", log ? log : "");
    const char *ck = strstr(log, "checkpoint-");
    T_ASSERT(ck, "checkpoint named");
    snprintf(p2, sizeof(p2), "%s/sigint/checkpoint-%d/trainer_state.json", t_tmpdir(), atoi(ck + 11));
    free(log);
    char *state = t_read_file(p2, NULL);
    T_ASSERT(state && strstr(state, "global_step"), "checkpoint %s", p2);
    free(state);
    const char *bad[] = {"--set lora.r=0", "--set no_such_key=1", "--set dataset=/nonexistent.txt", "--bogus"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(bad); i++) {
        snprintf(cmd, sizeof(cmd), "%s train %s %s", t_vklora_bin(), cfg, bad[i]);
        T_ASSERT(t_run(cmd, &o, &e) == 2, "'%s' must exit 2", bad[i]);
        T_ASSERT(e && *e, "message for '%s'", bad[i]);
        free(o), free(e);
    }
    return 0;
}

const vkl_test_case vkl_tests_train[] = {
    {"train/torch_reference_all_modules", test_torch_all_modules},
    {"train/torch_reference_coopmat", test_torch_coopmat},
    {"train/torch_reference_tiled", test_torch_tiled},
    {"train/torch_reference_attn_flash", test_torch_attn_flash},
    {"train/torch_reference_attn_flash_gemma2", test_torch_attn_flash_gemma2},
    {"train/torch_reference_attn_coopmat", test_torch_attn_coopmat},
    {"train/coopmat_loss_curve_50_steps", test_coopmat_loss_curve},
    {"train/torch_reference_recompute_rslora", test_torch_recompute},
    {"train/torch_arch_llama3_rope_freqs_tied", test_torch_llama3},
    {"train/torch_arch_qwen2_tied", test_torch_qwen2},
    {"train/torch_arch_qwen3", test_torch_qwen3},
    {"train/torch_arch_gemma2", test_torch_gemma2},
    {"train/torch_arch_gemma3", test_torch_gemma3},
    {"train/torch_arch_phi3_fused", test_torch_phi3},
    {"train/torch_arch_mistral3", test_torch_mistral3},
    {"train/torch_arch_gemma_vocab_152064", test_torch_big_vocab},
    {"train/checkpointing_modes_same_gradients", test_checkpointing_same_gradients},
    {"train/loss_falls_and_adapters_reload", test_train_loss_falls_and_reload},
    {"train/determinism_and_resume", test_train_determinism_and_resume},
    {"train/bias_modes_qwen2", test_bias_modes},
    {"train/loftq_end_to_end", test_loftq_end_to_end},
    {"train/knobs_have_effect", test_knobs},
    {"train/cli", test_train_cli},
    {NULL, NULL},
};
