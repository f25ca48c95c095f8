/* Every supported architecture end to end as a user runs it: `vklora train` on a small random model of the
 * family, both adapter files reloaded by `vklora eval` (equal losses), `vklora merge` equal to base + adapter,
 * LoftQ on the fused Phi-3 modules, module names a family lacks refused, and the families vklora does not support
 * refused with a message that says why. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "vklora/gguf.h"
#include "vklora/loftq.h"

static const struct arch_case {
    const char *arch, *extra;
} ARCHS[] = {
    {"llama", "--rope-freqs --tied --rope-base 500000 --head-dim 24"},
    {"qwen2", "--tied"},
    {"qwen3", "--head-dim 32 --tied"},
    {"gemma2", "--head-dim 32 --window 16 --softcap 50,30 --tied"},
    {"gemma3", "--layers 3 --kv-heads 1 --head-dim 32 --window 16 --swa-period 3 --tied"},
    {"phi3", "--rope-dim 12 --longrope --ctx 256 --orig-ctx 64"},
    {"mistral3", "--head-dim 20 --scaling yarn --factor 4 --orig-ctx 32 --attn-temp 0.1"},
};

static int make_model(const struct arch_case *a, char *path, size_t cap) {
    char cmd[1024];
    snprintf(path, cap, "%.400s/arch-%.40s.gguf", t_tmpdir(), a->arch);
    snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --arch %s --type f32 --dim 64 --ff 128 --layers 2 --heads 4 "
             "--kv-heads 2 --seed 9 %s >/dev/null", VKL_BUILD_ROOT, path, a->arch, a->extra);
    T_ASSERT(system(cmd) == 0, "mkmodel %s", a->arch);
    return 0;
}

static double eval_nll(const char *model, const char *adapter) { return t_eval_nll(model, NULL, adapter, NULL); }

static int check_arch(const struct arch_case *a) {
    char model[512], out[512], args[4096];
    if (make_model(a, model, sizeof(model))) return 1;
    snprintf(out, sizeof(out), "%s/arch-run-%s", t_tmpdir(), a->arch);
    snprintf(args, sizeof(args), "train %s/configs/demo.json --set model=%s --set dataset=%s --set output_dir=%s "
             "--set max_steps=8 --set max_seq_length=64 --set learning_rate=3e-3 --set save_steps=0 "
             "--set per_device_train_batch_size=2 --set gradient_accumulation_steps=1 --json >/dev/null",
             VKL_SOURCE_ROOT, model, t_data_path("datasets/tinystories_sample.txt"), out);
    T_ASSERT(t_cli(args, NULL, NULL) == 0, "%s: train", a->arch);
    char gguf[700];
    snprintf(gguf, sizeof(gguf), "%s/adapter.gguf", out);
    double base = eval_nll(model, NULL), with_gguf = eval_nll(model, gguf), with_peft = eval_nll(model, out);
    T_ASSERT(isfinite(base) && isfinite(with_gguf) && isfinite(with_peft), "%s: eval losses %g %g %g", a->arch, base,
             with_gguf, with_peft);
    T_ASSERT(fabs(with_gguf - with_peft) < 1e-5 * base, "%s: GGUF adapter %.7f vs PEFT %.7f", a->arch, with_gguf,
             with_peft);
    T_ASSERT(with_gguf < base - 0.01, "%s: the adapter must lower the loss (%.5f -> %.5f)", a->arch, base, with_gguf);
    /* merged into one F32 GGUF: the same model as base + adapter */
    char merged[700];
    snprintf(merged, sizeof(merged), "%s/merged.gguf", out);
    snprintf(args, sizeof(args), "merge --model %s --adapter %s --out %s --quantization keep --json >/dev/null", model,
             gguf, merged);
    T_ASSERT(t_cli(args, NULL, NULL) == 0, "%s: merge", a->arch);
    double m = eval_nll(merged, NULL);
    T_ASSERT(fabs(m - with_gguf) < 1e-4 * base, "%s: merged %.7f vs base + adapter %.7f", a->arch, m, with_gguf);
    return 0;
}

static int test_llama(void) { return check_arch(&ARCHS[0]); }
static int test_qwen2(void) { return check_arch(&ARCHS[1]); }
static int test_qwen3(void) { return check_arch(&ARCHS[2]); }
static int test_gemma2(void) { return check_arch(&ARCHS[3]); }
static int test_gemma3(void) { return check_arch(&ARCHS[4]); }
static int test_phi3(void) { return check_arch(&ARCHS[5]); }
static int test_mistral3(void) { return check_arch(&ARCHS[6]); }

/* Phi-3 fuses q/k/v and gate/up: LoRA targets name them as PEFT does, llama's names stand for the fused module
 * when all are given, a part alone is refused with the list; LoftQ quantizes the fused weights whole. */
static int test_phi3_modules_and_loftq(void) {
    char model[512], out[512], args[4096];
    if (make_model(&ARCHS[5], model, sizeof(model))) return 1;
    snprintf(out, sizeof(out), "%s/arch-phi3-mods", t_tmpdir());
    const char *base = "train %s/configs/demo.json --set model=%s --set dataset=%s --set output_dir=%s "
                       "--set max_steps=2 --set max_seq_length=64 --set save_steps=0 %s --json";
    char *err = NULL;
    snprintf(args, sizeof(args), base, VKL_SOURCE_ROOT, model, t_data_path("datasets/tinystories_sample.txt"), out,
             "--set 'target_modules=[\"q_proj\",\"o_proj\"]'");
    T_ASSERT(t_cli(args, NULL, &err) == 2, "q_proj alone on phi3 must be a config error");
    T_ASSERT(err && strstr(err, "qkv_proj") && strstr(err, "gate_up_proj") && strstr(err, "target_modules"),
             "message lists the modules: %s", err ? err : "");
    free(err);
    /* (a build without LAPACK refuses LoftQ: the fused modules are trained without it there) */
    snprintf(args, sizeof(args), base, VKL_SOURCE_ROOT, model, t_data_path("datasets/tinystories_sample.txt"), out,
             vkl_loftq_available() ? "--set 'target_modules=[\"qkv_proj\",\"gate_up_proj\"]' "
                                     "--set 'loftq_config={\"loftq_bits\":4}' --set quantization=q4_k_m"
                                   : "--set 'target_modules=[\"qkv_proj\",\"gate_up_proj\"]' --set quantization=q4_k_m");
    cJSON *j = NULL;
    T_ASSERT(t_cli(args, &j, NULL) == 0, "qkv_proj + gate_up_proj with LoftQ");
    cJSON_Delete(j);
    /* the PEFT config names PEFT's modules and the GGUF adapter llama.cpp's fused tensors */
    char p[700];
    snprintf(p, sizeof(p), "%s/adapter_config.json", out);
    char *cfg = t_read_file(p, NULL);
    T_ASSERT(cfg && strstr(cfg, "qkv_proj") && strstr(cfg, "gate_up_proj") && !strstr(cfg, "\"q_proj\""),
             "adapter_config.json: %s", cfg ? cfg : "missing");
    free(cfg);
    snprintf(args, sizeof(args), "info %s/adapter.gguf", out);
    char *o = NULL, *e = NULL, cmd[4200];
    snprintf(cmd, sizeof(cmd), "%s %s", t_vklora_bin(), args);
    T_ASSERT(t_run(cmd, &o, &e) == 0, "info adapter: %s", e ? e : "");
    T_ASSERT(o && strstr(o, "blk.0.attn_qkv.weight.lora_a") && strstr(o, "blk.1.ffn_up.weight.lora_b"),
             "fused adapter tensors: %.600s", o ? o : "");
    free(o), free(e);
    /* gemma has no fused modules */
    char gm[512];
    if (make_model(&ARCHS[3], gm, sizeof(gm))) return 1;
    snprintf(args, sizeof(args), base, VKL_SOURCE_ROOT, gm, t_data_path("datasets/tinystories_sample.txt"), out,
             "--set 'target_modules=[\"qkv_proj\"]'");
    err = NULL;
    T_ASSERT(t_cli(args, NULL, &err) == 2, "qkv_proj on gemma2 must be a config error");
    T_ASSERT(err && strstr(err, "q_proj") && strstr(err, "gemma2"), "message: %s", err ? err : "");
    free(err);
    return 0;
}

/* Families people meet and vklora does not train: refused with what they are. */
static int test_unsupported_refused(void) {
    static const struct {
        const char *arch, *why;
    } cases[] = {{"qwen3moe", "mixture-of-experts"}, {"qwen3next", "hybrid"}, {"qwen35", "hybrid"},
                 {"llama4", "mixture-of-experts"}, {"clip", "vision"}, {"bert", "not supported"}};
    char src[512], cmd0[700];
    if (make_model(&ARCHS[1], src, sizeof(src))) return 1;
    cJSON *j0;
    snprintf(cmd0, sizeof(cmd0), "info %s --json", src);
    T_ASSERT(t_cli(cmd0, &j0, NULL) == 0, "info");
    T_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j0, "training"), "supported")), "qwen2 supported");
    cJSON_Delete(j0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* the same file with another general.architecture */
        char path[600], cmd[2048], *err = NULL;
        snprintf(path, sizeof(path), "%s/unsup-%s.gguf", t_tmpdir(), cases[i].arch);
        vkl_gguf *g;
        vkl_err e = {0};
        T_ASSERT(!vkl_gguf_open(src, &g, &e), "%s", e.msg);
        vkl_gguf_writer *w = vkl_gguf_writer_new(3, g->alignment);
        for (uint64_t k = 0; k < g->n_kv; k++) vkl_gguf_writer_set_value(w, g->kv[k].key.str, &g->kv[k].value);
        vkl_gguf_writer_set_str(w, "general.architecture", cases[i].arch);
        for (uint64_t k = 0; k < g->n_tensors; k++) {
            const vkl_gguf_tensor *t = &g->tensors[k];
            T_ASSERT(!vkl_gguf_writer_add_tensor(w, t->name.str, t->type, t->n_dims, t->ne, t->data, &e), "%s", e.msg);
        }
        T_ASSERT(!vkl_gguf_writer_write(w, path, &e), "%s", e.msg);
        vkl_gguf_writer_free(w);
        vkl_gguf_close(g);
        snprintf(cmd, sizeof(cmd), "eval --model %s --text %s --ctx 16", path,
                 t_data_path("datasets/tinystories_sample.txt"));
        int rc = t_cli(cmd, NULL, &err);
        T_ASSERT(rc == 2, "%s: exit %d, expected 2", cases[i].arch, rc);
        T_ASSERT(err && strstr(err, cases[i].arch) && strstr(err, cases[i].why) && strstr(err, "supported"),
                 "%s: %s", cases[i].arch, err ? err : "");
        free(err);
        /* `info` says so too, without failing: the file itself is fine */
        cJSON *j;
        snprintf(cmd, sizeof(cmd), "info %s --json", path);
        T_ASSERT(t_cli(cmd, &j, NULL) == 0, "info");
        cJSON *tr = cJSON_GetObjectItem(j, "training");
        T_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(tr, "supported")) &&
                     strstr(cJSON_GetStringValue(cJSON_GetObjectItem(tr, "reason")), cases[i].why),
                 "%s: info --json training", cases[i].arch);
        cJSON_Delete(j);
    }
    return 0;
}

const vkl_test_case vkl_tests_arch[] = {
    {"arch/llama3_train_reload_merge", test_llama},
    {"arch/qwen2_train_reload_merge", test_qwen2},
    {"arch/qwen3_train_reload_merge", test_qwen3},
    {"arch/gemma2_train_reload_merge", test_gemma2},
    {"arch/gemma3_train_reload_merge", test_gemma3},
    {"arch/phi3_train_reload_merge", test_phi3},
    {"arch/mistral3_train_reload_merge", test_mistral3},
    {"arch/phi3_fused_modules_and_loftq", test_phi3_modules_and_loftq},
    {"arch/unsupported_families_refused", test_unsupported_refused},
    {NULL, NULL},
};
