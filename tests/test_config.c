/* Tests of the training config: Unsloth defaults, aliases, flat vs grouped, every validation error with its JSON
 * path, --set overrides, JSON syntax errors, the to_json round trip, derived schedules, the CLI and configs/. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vklora/config.h"

/* Load `json` (plus sets); on failure print the message and fail the case. */
#define LOAD_OK(json, c, ...)                                                                              \
    do {                                                                                                   \
        const char *sets_[] = {NULL, ##__VA_ARGS__};                                                       \
        vkl_err e_ = {0};                                                                                  \
        if (vkl_config_from_json_string((json), "t.json", sets_ + 1, (int)VKL_ARRAY_LEN(sets_) - 1, (c), &e_)) \
            T_FAIL("load of %s failed: %s", (json), e_.msg);                                               \
    } while (0)

/* Load must fail with status 2 and a message containing every given substring. */
static int expect_error(const char *json, const char *const *sets, int n_sets, const char *want1, const char *want2) {
    vkl_config c;
    vkl_err e = {0};
    vkl_status st = vkl_config_from_json_string(json, "t.json", sets, n_sets, &c, &e);
    if (st != VKL_ERR_INPUT) {
        fprintf(stderr, "    expected an input error for %s (set %s), got status %d\n", json ? json : "(none)",
                n_sets ? sets[0] : "-", (int)st);
        if (st == VKL_OK) vkl_config_free(&c);
        return 1;
    }
    if ((want1 && !strstr(e.msg, want1)) || (want2 && !strstr(e.msg, want2))) {
        fprintf(stderr, "    message for %s: '%s' lacks '%s' / '%s'\n", json ? json : "(none)", e.msg,
                want1 ? want1 : "", want2 ? want2 : "");
        return 1;
    }
    /* a failed load leaves nothing allocated */
    if (c.model_path || c.output_dir || c.text_field) {
        fprintf(stderr, "    failed load left owned strings in the struct\n");
        return 1;
    }
    return 0;
}

/* Two configs are equal when their fully resolved JSON is (to_json covers every field). */
static bool config_equal(const vkl_config *a, const vkl_config *b) {
    cJSON *ja = vkl_config_to_json(a), *jb = vkl_config_to_json(b);
    bool eq = cJSON_Compare(ja, jb, true);
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return eq;
}

static int test_defaults(void) {
    vkl_config c;
    LOAD_OK("{}", &c);
    /* Unsloth's notebook values (FastLanguageModel.get_peft_model + SFTTrainer TrainingArguments) */
    T_ASSERT(c.learning_rate == 2e-4, "lr %g", c.learning_rate);
    T_ASSERT(c.per_device_train_batch_size == 2 && c.gradient_accumulation_steps == 4, "batch");
    T_ASSERT(c.warmup_steps == 5 && c.warmup_ratio == 0, "warmup");
    T_ASSERT(c.lr_scheduler_type == VKL_SCHED_LINEAR, "sched");
    T_ASSERT(c.seed == 3407, "seed");
    T_ASSERT(c.r == 16 && c.lora_alpha == 16 && c.lora_dropout == 0, "lora");
    T_ASSERT(c.bias == VKL_BIAS_NONE && !c.use_rslora && c.loftq_bits == 0, "bias/rslora/loftq");
    T_ASSERT(c.target_modules == VKL_TM_ALL, "targets %x", c.target_modules);
    T_ASSERT(c.weight_decay == 0.01 && c.max_grad_norm == 1.0, "wd/clip");
    T_ASSERT(c.gradient_checkpointing == VKL_GRAD_CKPT_UNSLOTH, "ckpt");
    T_ASSERT(c.max_seq_length == 2048 && c.num_train_epochs == 1 && c.max_steps == -1, "length/epochs");
    T_ASSERT(c.save_steps == 500 && c.eval_steps == 0 && c.logging_steps == 1, "steps");
    T_ASSERT(c.quantization == VKL_QUANT_KEEP && !strcmp(c.output_dir, "outputs"), "quant/output");
    T_ASSERT(c.optim == VKL_OPTIM_ADAMW_8BIT && c.adam_beta1 == 0.9 && c.adam_beta2 == 0.999 &&
                 c.adam_epsilon == 1e-8, "adam");
    T_ASSERT(!c.packing && !c.train_on_responses_only && c.eval_ratio == 0 && !c.eval_path, "data");
    T_ASSERT(!c.model_path && !c.dataset_path && c.device_index == -1 && !c.device_name, "paths/device");
    T_ASSERT(!c.resume_latest && !c.resume_from_checkpoint, "resume");
    /* vkl_config_defaults gives the same struct as loading {} */
    vkl_config d;
    vkl_config_defaults(&d);
    T_ASSERT(config_equal(&c, &d), "defaults() differs from loading {}");
    vkl_config_free(&c);
    vkl_config_free(&d);
    vkl_config_free(&d); /* twice is safe */
    /* no file at all = defaults */
    vkl_err e = {0};
    T_ASSERT(vkl_config_load(NULL, NULL, 0, &c, &e) == VKL_OK, "%s", e.msg);
    vkl_config_defaults(&d);
    T_ASSERT(config_equal(&c, &d), "load(NULL) differs from defaults");
    vkl_config_free(&c);
    vkl_config_free(&d);
    return 0;
}

/* Every alias, flat and inside its section, gives the same config as the canonical grouped key. */
static int test_aliases(void) {
    static const struct {
        const char *alias_doc, *canonical_doc;
    } cases[] = {
        {"{\"lora_r\": 8}", "{\"lora\": {\"r\": 8}}"},
        {"{\"rank\": 8}", "{\"lora\": {\"r\": 8}}"},
        {"{\"lora\": {\"rank\": 8}}", "{\"lora\": {\"r\": 8}}"},
        {"{\"alpha\": 32}", "{\"lora\": {\"lora_alpha\": 32}}"},
        {"{\"dropout\": 0.1}", "{\"lora\": {\"lora_dropout\": 0.1}}"},
        {"{\"random_state\": 7}", "{\"training\": {\"seed\": 7}}"},
        {"{\"train\": {\"random_state\": 7}}", "{\"training\": {\"seed\": 7}}"},
        {"{\"lr\": 1e-4}", "{\"training\": {\"learning_rate\": 1e-4}}"},
        {"{\"epochs\": 3}", "{\"training\": {\"num_train_epochs\": 3}}"},
        {"{\"batch_size\": 8}", "{\"training\": {\"per_device_train_batch_size\": 8}}"},
        {"{\"max_length\": 512}", "{\"training\": {\"max_seq_length\": 512}}"},
        {"{\"gradient_checkpointing\": true}", "{\"training\": {\"use_gradient_checkpointing\": true}}"},
        {"{\"dataset_text_field\": \"body\"}", "{\"dataset\": {\"text_field\": \"body\"}}"},
        {"{\"dataset_format\": \"alpaca\"}", "{\"dataset\": {\"format\": \"alpaca\"}}"},
        {"{\"chat_template\": \"chatml\"}", "{\"dataset\": {\"template\": \"chatml\"}}"},
        {"{\"model\": \"m.gguf\"}", "{\"model\": {\"path\": \"m.gguf\"}}"},
        {"{\"dataset\": \"d.txt\"}", "{\"dataset\": {\"path\": \"d.txt\"}}"},
        {"{\"quantization\": \"Q4_K_M\"}", "{\"model\": {\"quantization\": \"q4_k_m\"}}"},
        {"{\"lr_scheduler_type\": \"constant_with_warmup\"}", "{\"training\": {\"lr_scheduler_type\": \"constant\"}}"},
        {"{\"chat_template\": \"llama3\"}", "{\"dataset\": {\"template\": \"llama-3\"}}"},
        {"{\"chat_template\": \"llama2\"}", "{\"dataset\": {\"template\": \"llama-2\"}}"},
        {"{\"target_modules\": [\"q\",\"k\",\"gate\",\"down\"]}",
         "{\"lora\": {\"target_modules\": [\"q_proj\",\"k_proj\",\"gate_proj\",\"down_proj\"]}}"},
        {"{\"target_modules\": [\"attn_v\",\"attn_output\",\"ffn_up\"]}",
         "{\"target_modules\": [\"v_proj\",\"o_proj\",\"up_proj\"]}"},
        {"{\"target_modules\": \"v\"}", "{\"target_modules\": [\"v_proj\"]}"},
        {"{\"device\": \"1\"}", "{\"device\": 1}"},
        {"{\"loftq_config\": {\"loftq_iter\": 2}}", "{\"loftq_config\": {\"loftq_bits\": 4, \"loftq_iter\": 2}}"},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        vkl_config a, b;
        LOAD_OK(cases[i].alias_doc, &a);
        LOAD_OK(cases[i].canonical_doc, &b);
        T_ASSERT(config_equal(&a, &b), "%s != %s", cases[i].alias_doc, cases[i].canonical_doc);
        /* a case that left the defaults alone would prove nothing */
        vkl_config d;
        vkl_config_defaults(&d);
        T_ASSERT(!config_equal(&a, &d), "%s left the defaults unchanged", cases[i].alias_doc);
        vkl_config_free(&a);
        vkl_config_free(&b);
        vkl_config_free(&d);
    }
    vkl_config c;
    LOAD_OK("{\"target_modules\": [\"q_proj\", \"ffn_down\", \"up\"], \"device\": \"NVIDIA H\"}", &c);
    T_ASSERT(c.target_modules == (VKL_TM_Q | VKL_TM_DOWN | VKL_TM_UP), "mixed names %x", c.target_modules);
    T_ASSERT(c.device_index == -1 && c.device_name && !strcmp(c.device_name, "NVIDIA H"), "device name");
    vkl_config_free(&c);
    /* spellings of "off"/"all"/"auto": override a non-default file so that ignoring them would show */
    LOAD_OK("{\"target_modules\": [\"q\"], \"device\": 3, \"loftq_config\": {\"loftq_bits\": 8},"
            " \"resume_from_checkpoint\": \"x\"}",
            &c, "target_modules=all-linear", "device=AUTO", "loftq_config={}", "resume_from_checkpoint=false");
    T_ASSERT(c.target_modules == VKL_TM_ALL && c.device_index == -1 && !c.device_name && c.loftq_bits == 0 &&
                 !c.resume_from_checkpoint && !c.resume_latest, "off/all/auto spellings");
    vkl_config_free(&c);
    LOAD_OK("{\"target_modules\": [\"q\",\"k\",\"v\",\"o\",\"gate\",\"up\",\"down\",\"q_proj\"],"
            " \"loftq_config\": {\"loftq_bits\": 8}}", &c, "loftq_config=null");
    T_ASSERT(c.target_modules == VKL_TM_ALL && c.loftq_bits == 0, "short names / loftq null");
    vkl_config_free(&c);
    LOAD_OK("{\"use_gradient_checkpointing\": false, \"resume_from_checkpoint\": true}", &c);
    T_ASSERT(c.gradient_checkpointing == VKL_GRAD_CKPT_OFF && c.resume_latest, "ckpt off / resume latest");
    vkl_config_free(&c);
    return 0;
}

static const char *FLAT_DOC =
    "{\"model\": \"m.gguf\", \"quantization\": \"q8_0\", \"dataset\": \"d.json\", \"dataset_format\": \"sharegpt\","
    " \"chat_template\": \"chatml\", \"text_field\": \"t\", \"eval_ratio\": 0.05, \"packing\": true,"
    " \"train_on_responses_only\": true, \"r\": 32, \"lora_alpha\": 64, \"lora_dropout\": 0.05,"
    " \"target_modules\": [\"q_proj\", \"v_proj\"], \"bias\": \"lora_only\", \"use_rslora\": true,"
    " \"loftq_config\": {\"loftq_bits\": 8, \"loftq_iter\": 3}, \"learning_rate\": 1e-4, \"num_train_epochs\": 2.5,"
    " \"max_steps\": 100, \"per_device_train_batch_size\": 4, \"gradient_accumulation_steps\": 2,"
    " \"max_seq_length\": 1024, \"warmup_ratio\": 0.1, \"lr_scheduler_type\": \"cosine\", \"seed\": 42,"
    " \"weight_decay\": 0, \"max_grad_norm\": 0.3, \"optim\": \"adamw_torch\", \"adam_beta1\": 0.8,"
    " \"adam_beta2\": 0.95, \"adam_epsilon\": 1e-6, \"use_gradient_checkpointing\": true, \"output_dir\": \"o\","
    " \"save_steps\": 50, \"eval_steps\": 10, \"logging_steps\": 5, \"resume_from_checkpoint\": \"o/checkpoint-50\","
    " \"device\": 0}";

static const char *GROUPED_DOC =
    "{\"model\": {\"path\": \"m.gguf\", \"quantization\": \"q8_0\"},"
    " \"dataset\": {\"path\": \"d.json\", \"format\": \"sharegpt\", \"template\": \"chatml\", \"text_field\": \"t\","
    "   \"eval_ratio\": 0.05, \"packing\": true, \"train_on_responses_only\": true},"
    " \"lora\": {\"r\": 32, \"lora_alpha\": 64, \"lora_dropout\": 0.05, \"target_modules\": [\"q\", \"v\"],"
    "   \"bias\": \"lora_only\", \"use_rslora\": true, \"loftq_config\": {\"loftq_bits\": 8, \"loftq_iter\": 3}},"
    " \"training\": {\"learning_rate\": 1e-4, \"num_train_epochs\": 2.5, \"max_steps\": 100,"
    "   \"per_device_train_batch_size\": 4, \"gradient_accumulation_steps\": 2, \"max_seq_length\": 1024,"
    "   \"warmup_ratio\": 0.1, \"lr_scheduler_type\": \"cosine\", \"seed\": 42, \"weight_decay\": 0,"
    "   \"max_grad_norm\": 0.3, \"optim\": \"adamw_torch\", \"adam_beta1\": 0.8, \"adam_beta2\": 0.95,"
    "   \"adam_epsilon\": 1e-6, \"use_gradient_checkpointing\": true, \"output_dir\": \"o\", \"save_steps\": 50,"
    "   \"eval_steps\": 10, \"logging_steps\": 5, \"resume_from_checkpoint\": \"o/checkpoint-50\"},"
    " \"device\": 0}";

static int test_flat_vs_grouped(void) {
    vkl_config a, b;
    LOAD_OK(FLAT_DOC, &a);
    LOAD_OK(GROUPED_DOC, &b);
    T_ASSERT(config_equal(&a, &b), "flat and grouped differ");
    /* and every knob left its default */
    T_ASSERT(!strcmp(a.model_path, "m.gguf") && a.quantization == VKL_QUANT_Q8_0, "model");
    T_ASSERT(!strcmp(a.dataset_path, "d.json") && a.dataset_format == VKL_DATASET_SHAREGPT &&
                 a.chat_template == VKL_TEMPLATE_CHATML && !strcmp(a.text_field, "t") && a.eval_ratio == 0.05 &&
                 a.packing && a.train_on_responses_only, "dataset");
    T_ASSERT(a.r == 32 && a.lora_alpha == 64 && a.lora_dropout == 0.05 && a.target_modules == (VKL_TM_Q | VKL_TM_V) &&
                 a.bias == VKL_BIAS_LORA_ONLY && a.use_rslora && a.loftq_bits == 8 && a.loftq_iter == 3, "lora");
    T_ASSERT(a.learning_rate == 1e-4 && a.num_train_epochs == 2.5 && a.max_steps == 100 &&
                 a.per_device_train_batch_size == 4 && a.gradient_accumulation_steps == 2 && a.max_seq_length == 1024,
             "training 1");
    /* warmup_ratio given alone replaces the default warmup_steps */
    T_ASSERT(a.warmup_ratio == 0.1 && a.warmup_steps == 0 && a.lr_scheduler_type == VKL_SCHED_COSINE && a.seed == 42,
             "training 2");
    T_ASSERT(a.weight_decay == 0 && a.max_grad_norm == 0.3 && a.optim == VKL_OPTIM_ADAMW_TORCH && a.adam_beta1 == 0.8 &&
                 a.adam_beta2 == 0.95 && a.adam_epsilon == 1e-6 && a.gradient_checkpointing == VKL_GRAD_CKPT_ON,
             "training 3");
    T_ASSERT(!strcmp(a.output_dir, "o") && a.save_steps == 50 && a.eval_steps == 10 && a.logging_steps == 5 &&
                 !strcmp(a.resume_from_checkpoint, "o/checkpoint-50") && !a.resume_latest && a.device_index == 0,
             "training 4");
    vkl_config_free(&a);
    vkl_config_free(&b);
    return 0;
}

/* Each bad value errors with the JSON path as written and what was expected. */
static int test_invalid_values(void) {
    static const struct {
        const char *doc, *want1, *want2;
    } cases[] = {
        {"{\"lora\": {\"r\": \"16\"}}", "config: t.json: lora.r: expected an integer 1..1024, got \"16\"", NULL},
        {"{\"r\": 0}", "r: expected an integer 1..1024", "got 0"},
        {"{\"r\": 2000}", "r: expected an integer 1..1024", "got 2000"},
        {"{\"r\": 8.5}", "r: expected an integer", "got 8.5"},
        {"{\"r\": true}", "r: expected an integer", "got true"},
        {"{\"r\": null}", "r: expected an integer", "got null"},
        {"{\"lora\": {\"lora_alpha\": 0}}", "lora.lora_alpha: expected a number > 0", NULL},
        {"{\"lora\": {\"lora_dropout\": 1}}", "lora.lora_dropout: expected a number in [0, 1)", "got 1"},
        {"{\"lora_dropout\": -0.1}", "lora_dropout: expected a number in [0, 1)", NULL},
        {"{\"learning_rate\": 0}", "learning_rate: expected a number in (0, 1]", NULL},
        {"{\"learning_rate\": -1e-4}", "learning_rate: expected", NULL},
        {"{\"learning_rate\": 1e400}", "learning_rate: expected", NULL},
        {"{\"learning_rate\": \"2e-4\"}", "learning_rate: expected a number", "got \"2e-4\""},
        {"{\"training\": {\"warmup_ratio\": 1}}", "training.warmup_ratio: expected a number in [0, 1)", NULL},
        {"{\"warmup_steps\": -1}", "warmup_steps: expected an integer 0..", NULL},
        {"{\"num_train_epochs\": 0}", "num_train_epochs: expected a number > 0", NULL},
        {"{\"max_steps\": -2}", "max_steps: expected an integer -1..", NULL},
        {"{\"per_device_train_batch_size\": 0}", "per_device_train_batch_size: expected an integer 1..", NULL},
        {"{\"gradient_accumulation_steps\": 1.5}", "gradient_accumulation_steps: expected an integer 1..", NULL},
        {"{\"max_seq_length\": \"2048\"}", "max_seq_length: expected an integer", NULL},
        {"{\"seed\": -1}", "seed: expected an integer 0..4294967295", NULL},
        {"{\"random_state\": 4294967296}", "random_state: expected an integer 0..4294967295", NULL},
        {"{\"weight_decay\": -0.1}", "weight_decay: expected a number >= 0", NULL},
        {"{\"max_grad_norm\": \"1\"}", "max_grad_norm: expected a number >= 0", NULL},
        {"{\"adam_beta1\": 1}", "adam_beta1: expected a number in [0, 1)", NULL},
        {"{\"adam_beta2\": -0.5}", "adam_beta2: expected a number in [0, 1)", NULL},
        {"{\"adam_epsilon\": 0}", "adam_epsilon: expected a number in (0, 1]", NULL},
        {"{\"save_steps\": -5}", "save_steps: expected an integer 0..", NULL},
        {"{\"logging_steps\": 0}", "logging_steps: expected an integer 1..", NULL},
        {"{\"eval_ratio\": 1.5}", "eval_ratio: expected a number in [0, 1)", NULL},
        {"{\"lr_scheduler_type\": \"cosine_with_restarts\"}", "lr_scheduler_type: expected one of \"linear\"",
         "got \"cosine_with_restarts\""},
        {"{\"lr_scheduler_type\": 1}", "lr_scheduler_type: expected one of", NULL},
        {"{\"bias\": \"some\"}", "bias: expected one of \"none\", \"all\", \"lora_only\"", NULL},
        {"{\"optim\": \"sgd\"}", "optim: expected one of \"adamw_8bit\", \"adamw_torch\", \"adamw\"", NULL},
        {"{\"model\": {\"quantization\": \"q3_k\"}}", "model.quantization: expected one of \"keep\"", NULL},
        {"{\"dataset\": {\"format\": \"csv\"}}", "dataset.format: expected one of \"auto\", \"text\"", NULL},
        {"{\"dataset\": {\"template\": \"vicuna\"}}", "dataset.template: expected one of", NULL},
        {"{\"packing\": \"yes\"}", "packing: expected true or false", NULL},
        {"{\"use_rslora\": 1}", "use_rslora: expected true or false", NULL},
        {"{\"train_on_responses_only\": null}", "train_on_responses_only: expected true or false", NULL},
        {"{\"use_gradient_checkpointing\": \"yes\"}", "use_gradient_checkpointing: expected false, true or \"unsloth\"",
         NULL},
        {"{\"target_modules\": []}", "target_modules: expected \"all-linear\" or a non-empty list", NULL},
        {"{\"target_modules\": [\"q_proj\", \"lm_head\"]}", "target_modules[1]: expected", "got \"lm_head\""},
        {"{\"lora\": {\"target_modules\": [\"q\", 3]}}", "lora.target_modules[1]: expected", NULL},
        {"{\"target_modules\": \"all\"}", "target_modules: expected", NULL},
        {"{\"target_modules\": {}}", "target_modules: expected", NULL},
        {"{\"loftq_config\": {\"loftq_bits\": 2}}", "loftq_config.loftq_bits: expected 4 or 8, got 2", NULL},
        {"{\"lora\": {\"loftq_config\": {\"loftq_iter\": 0}}}",
         "lora.loftq_config.loftq_iter: expected an integer 1..64", NULL},
        {"{\"loftq_config\": {\"loftq_bit\": 4}}", "loftq_config.loftq_bit: unknown key 'loftq_bit'",
         "did you mean 'loftq_bits'"},
        {"{\"loftq_config\": true}", "loftq_config: expected null or {}", NULL},
        {"{\"loftq_config\": {\"loftq_bits\": 4, \"loftq_bits\": 8}}", "loftq_config.loftq_bits: duplicate", NULL},
        {"{\"model\": 3}", "model: expected a path string or null", NULL},
        {"{\"model\": \"\"}", "model: expected a path string or null", "got \"\""},
        {"{\"model\": [\"a\"]}", "model: expected a path string or null", NULL},
        {"{\"dataset\": {\"path\": 5}}", "dataset.path: expected", NULL},
        {"{\"output_dir\": \"\"}", "output_dir: expected a non-empty string", NULL},
        {"{\"output_dir\": null}", "output_dir: expected a non-empty string", NULL},
        {"{\"text_field\": 1}", "text_field: expected a non-empty string", NULL},
        {"{\"eval_path\": false}", "eval_path: expected a path string or null", NULL},
        {"{\"device\": -1}", "device: expected \"auto\", a device index", NULL},
        {"{\"device\": \"\"}", "device: expected", NULL},
        {"{\"device\": 1.5}", "device: expected", NULL},
        {"{\"resume_from_checkpoint\": 3}", "resume_from_checkpoint: expected null/false", NULL},
        {"{\"lora\": 5}", "lora: expected an object", NULL},
        {"{\"training\": []}", "training: expected an object", NULL},
        {"[1, 2]", "t.json: expected a JSON object at the top level", NULL},
        {"\"x\"", "expected a JSON object at the top level", NULL},
        /* combinations */
        {"{\"warmup_steps\": 10, \"warmup_ratio\": 0.1}", "warmup_steps and warmup_ratio are both set", NULL},
        {"{\"training\": {\"warmup_steps\": 10}, \"warmup_ratio\": 0.1}",
         "training.warmup_steps and warmup_ratio are both set", NULL},
        {"{\"dataset\": {\"path\": \"a\", \"eval_path\": \"b\", \"eval_ratio\": 0.1}}",
         "dataset.eval_path and dataset.eval_ratio are both set", NULL},
        {"{\"eval_steps\": 10}", "eval_steps: evaluation every 10 steps needs evaluation data", NULL},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++)
        if (expect_error(cases[i].doc, NULL, 0, cases[i].want1, cases[i].want2)) T_FAIL("case %zu", i);
    /* explicit zeros do not conflict (this is what to_json writes) */
    vkl_config c;
    LOAD_OK("{\"warmup_steps\": 0, \"warmup_ratio\": 0.1, \"eval_path\": \"e\", \"eval_ratio\": 0}", &c);
    T_ASSERT(c.warmup_steps == 0 && c.warmup_ratio == 0.1 && !strcmp(c.eval_path, "e"), "zeros");
    vkl_config_free(&c);
    LOAD_OK("{\"warmup_steps\": 7, \"warmup_ratio\": 0}", &c);
    T_ASSERT(c.warmup_steps == 7 && c.warmup_ratio == 0, "steps with ratio 0");
    vkl_config_free(&c);
    /* integral floats are integers; huge strings are refused rather than stored */
    LOAD_OK("{\"r\": 8.0, \"max_steps\": 1e3}", &c);
    T_ASSERT(c.r == 8 && c.max_steps == 1000, "integral floats");
    vkl_config_free(&c);
    char *big = malloc(10000);
    strcpy(big, "{\"model\": \"");
    memset(big + 11, 'a', 5000);
    strcpy(big + 5011, "\"}");
    int rc = expect_error(big, NULL, 0, "model: string longer than 4096 bytes", NULL);
    free(big);
    T_ASSERT(rc == 0, "long string");
    return 0;
}

static int test_unknown_keys(void) {
    static const struct {
        const char *doc, *want1, *want2;
    } cases[] = {
        {"{\"lerning_rate\": 1e-4}", "t.json: lerning_rate: unknown key 'lerning_rate' (did you mean 'learning_rate'?)",
         NULL},
        {"{\"lora\": {\"lora_alfa\": 8}}", "lora.lora_alfa: unknown key 'lora_alfa'", "did you mean 'lora_alpha'"},
        {"{\"training\": {\"warmup_step\": 8}}", "training.warmup_step: unknown key", "did you mean 'warmup_steps'"},
        {"{\"Seed\": 1}", "unknown key 'Seed'", "did you mean 'seed'"},
        {"{\"lroa\": {}}", "unknown key 'lroa'", "did you mean 'lora'"},
        {"{\"zzzzzzzzzzzz\": 1}", "unknown key 'zzzzzzzzzzzz' (see 'vklora config --help'", NULL},
        /* known key, wrong section */
        {"{\"training\": {\"r\": 8}}", "training.r: 'r' does not belong in section 'training'; it is lora.r", NULL},
        {"{\"lora\": {\"seed\": 8}}", "lora.seed: 'seed' does not belong in section 'lora'; it is training.seed", NULL},
        {"{\"model\": {\"r\": 8}}", "model.r: 'r' does not belong", NULL},
        /* "path" and "format" are only meaningful inside their section */
        {"{\"path\": \"x\"}", "unknown key 'path'", NULL},
        {"{\"format\": \"text\"}", "unknown key 'format'", NULL},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++)
        if (expect_error(cases[i].doc, NULL, 0, cases[i].want1, cases[i].want2)) T_FAIL("case %zu", i);
    return 0;
}

static int test_duplicates(void) {
    static const struct {
        const char *doc, *want1, *want2;
    } cases[] = {
        {"{\"seed\": 1, \"random_state\": 2}", "random_state: duplicate of 'seed' (both set training.seed)", NULL},
        {"{\"r\": 8, \"lora\": {\"r\": 8}}", "lora.r: duplicate of 'r'", NULL},
        {"{\"lora\": {\"r\": 8, \"rank\": 4}}", "lora.rank: duplicate of 'lora.r'", NULL},
        {"{\"r\": 8, \"r\": 4}", "r: duplicate key (given twice)", NULL},
        {"{\"train\": {\"seed\": 1}, \"training\": {\"seed\": 2}}", "training.seed: duplicate of 'train.seed'", NULL},
        {"{\"model\": \"a.gguf\", \"model\": {\"path\": \"b.gguf\"}}", "model.path: duplicate of 'model'", NULL},
        {"{\"lr\": 1e-4, \"learning_rate\": 1e-4}", "learning_rate: duplicate of 'lr'", NULL},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++)
        if (expect_error(cases[i].doc, NULL, 0, cases[i].want1, cases[i].want2)) T_FAIL("case %zu", i);
    /* the sections may be split across train/training as long as no knob repeats */
    vkl_config c;
    LOAD_OK("{\"train\": {\"seed\": 1}, \"training\": {\"max_steps\": 9}}", &c);
    T_ASSERT(c.seed == 1 && c.max_steps == 9, "split sections");
    vkl_config_free(&c);
    return 0;
}

static int test_set_overrides(void) {
    vkl_config c;
    LOAD_OK("{\"lora\": {\"r\": 32}, \"seed\": 1, \"model\": \"a.gguf\"}", &c, "lora.r=8", "random_state=5",
            "target_modules=[\"q\",\"v\"]", "model=x.gguf", "training.learning_rate=3e-5", "dataset.format=alpaca",
            "loftq_config={\"loftq_bits\":8}", "use_gradient_checkpointing=false", "output_dir=runs/a b",
            "device=Radeon");
    T_ASSERT(c.r == 8, "nested override r=%d", c.r);
    T_ASSERT(c.seed == 5, "alias override across spellings: %lld", (long long)c.seed);
    T_ASSERT(c.target_modules == (VKL_TM_Q | VKL_TM_V), "list override");
    T_ASSERT(!strcmp(c.model_path, "x.gguf"), "string fallback: %s", c.model_path);
    T_ASSERT(c.learning_rate == 3e-5 && c.dataset_format == VKL_DATASET_ALPACA, "dotted");
    T_ASSERT(c.loftq_bits == 8 && c.loftq_iter == 1, "object override");
    T_ASSERT(c.gradient_checkpointing == VKL_GRAD_CKPT_OFF, "bool override");
    T_ASSERT(!strcmp(c.output_dir, "runs/a b") && !strcmp(c.device_name, "Radeon"), "strings");
    vkl_config_free(&c);
    /* later sets win; a --set of the whole section only touches the knobs it names */
    LOAD_OK("{\"dataset\": {\"path\": \"d.txt\", \"format\": \"text\"}}", &c, "r=4", "r=6",
            "dataset={\"format\":\"alpaca\"}", "model={\"path\":\"m.gguf\",\"quantization\":\"q4_k_m\"}");
    T_ASSERT(c.r == 6 && c.dataset_format == VKL_DATASET_ALPACA && !strcmp(c.dataset_path, "d.txt") &&
                 !strcmp(c.model_path, "m.gguf") && c.quantization == VKL_QUANT_Q4_K_M, "order and sections");
    vkl_config_free(&c);
    /* nested key inside a knob's object value */
    LOAD_OK("{}", &c, "lora.loftq_config.loftq_iter=3");
    T_ASSERT(c.loftq_bits == 4 && c.loftq_iter == 3, "deep set");
    vkl_config_free(&c);
    /* null unsets an optional path */
    LOAD_OK("{\"model\": \"m.gguf\"}", &c, "model=null");
    T_ASSERT(!c.model_path, "model=null");
    vkl_config_free(&c);
    /* a set may resolve a file-level conflict */
    LOAD_OK("{\"warmup_steps\": 10}", &c, "warmup_ratio=0.2", "warmup_steps=0");
    T_ASSERT(c.warmup_steps == 0 && c.warmup_ratio == 0.2, "set resolves conflict");
    vkl_config_free(&c);

    static const struct {
        const char *set, *want1, *want2;
    } bad[] = {
        {"lerning_rate=1e-4", "config: --set lerning_rate=1e-4: lerning_rate: unknown key 'lerning_rate'",
         "did you mean 'learning_rate'"},
        {"lora.alpah=8", "--set lora.alpah=8: lora.alpah: unknown key", "did you mean 'alpha'"},
        {"lora.r=abc", "--set lora.r=abc: lora.r: expected an integer 1..1024, got \"abc\"", NULL},
        {"lora.r=\"8\"", "lora.r: expected an integer 1..1024, got \"8\"", NULL},
        {"training.r=8", "training.r: 'r' does not belong in section 'training'", NULL},
        {"target_modules=[\"q\",\"w\"]", "target_modules[1]: expected", NULL},
        {"r", "--set r: expected key=value", NULL},
        {"=8", "expected key=value", NULL},
        {"lora..r=8", "empty key segment", NULL},
        {"lora.=8", "empty key segment", NULL},
        {".r=8", "empty key segment", NULL},
        {"dataset={\"path\":\"a\",\"path\":\"b\"}", "dataset.path: duplicate key", NULL},
        {"model.path.x=1", "model.path: expected a path string or null", NULL},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(bad); i++) {
        const char *sets[] = {bad[i].set};
        if (expect_error("{}", sets, 1, bad[i].want1, bad[i].want2)) T_FAIL("bad set %zu", i);
    }
    /* sets apply to a file-less load too */
    const char *sets[] = {"r=12"};
    vkl_err e = {0};
    T_ASSERT(vkl_config_load(NULL, sets, 1, &c, &e) == VKL_OK && c.r == 12, "load(NULL)+set: %s", e.msg);
    vkl_config_free(&c);
    return 0;
}

static int test_syntax_errors(void) {
    static const struct {
        const char *doc, *want1, *want2;
    } cases[] = {
        {"{\n  \"lora\": {\n    \"r\": 8,,\n  }\n}", "t.json:3:12:", "line 3, column 12"},
        {"{\n  \"r\": 8\n  \"seed\": 1\n}", "t.json:3:3:", "near '\"seed\": 1'"},
        {"{\"r\": tru}", "t.json:1:7:", NULL},
        {"{\n  \"r\": 8\n", "t.json:2:8: invalid JSON: the text ends early", NULL},
        {"{\"r\": 8} trailing", "t.json:1:10:", NULL},
        {"", "t.json: empty", NULL},
        {"  \n ", "t.json: empty", NULL},
        {"{\"r\": NaN}", "t.json:1:7:", NULL},
        {"{'r': 8}", "t.json:1:", "line 1, column"}, /* cJSON reports 2 or 3 here: it stops after the quote */
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++)
        if (expect_error(cases[i].doc, NULL, 0, cases[i].want1, cases[i].want2)) T_FAIL("case %zu", i);
    /* deep nesting is refused by the parser, not by the stack */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 16);
    strcpy(deep, "{\"r\": ");
    size_t n = strlen(deep);
    for (size_t i = 0; i < depth; i++) deep[n++] = '[';
    for (size_t i = 0; i < depth; i++) deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = 0;
    int rc = expect_error(deep, NULL, 0, "t.json:", NULL);
    free(deep);
    T_ASSERT(rc == 0, "deep nesting");
    return 0;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    fputs(text, f);
    return fclose(f) != 0;
}

static int test_files(void) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/cfg_file.json", t_tmpdir());
    T_ASSERT(write_file(path, "\xEF\xBB\xBF{\"r\": 4}\n") == 0, "write");
    vkl_config c;
    vkl_err e = {0};
    T_ASSERT(vkl_config_load(path, NULL, 0, &c, &e) == VKL_OK && c.r == 4, "BOM file: %s", e.msg);
    vkl_config_free(&c);
    /* messages name the file */
    T_ASSERT(write_file(path, "{\"lora\": {\"r\": \"16\"}}") == 0, "write");
    vkl_err_clear(&e);
    T_ASSERT(vkl_config_load(path, NULL, 0, &c, &e) == VKL_ERR_INPUT, "bad r");
    char want[1200];
    snprintf(want, sizeof(want), "config: %s: lora.r: expected an integer 1..1024, got \"16\"", path);
    T_ASSERT(!strcmp(e.msg, want), "message '%s'", e.msg);
    vkl_err_clear(&e);
    T_ASSERT(vkl_config_load("/nonexistent/x.json", NULL, 0, &c, &e) == VKL_ERR_INPUT &&
                 strstr(e.msg, "/nonexistent/x.json: cannot open"), "%s", e.msg);
    /* a NUL byte is not JSON */
    FILE *f = fopen(path, "wb");
    T_ASSERT(f && fwrite("{\"r\": 4\0}", 1, 9, f) == 9 && fclose(f) == 0, "write nul");
    vkl_err_clear(&e);
    T_ASSERT(vkl_config_load(path, NULL, 0, &c, &e) == VKL_ERR_INPUT && strstr(e.msg, "NUL byte at offset 7"), "%s",
             e.msg);
    /* oversized input is refused before parsing */
    f = fopen(path, "wb");
    T_ASSERT(f, "open");
    static char chunk[1 << 16];
    memset(chunk, ' ', sizeof(chunk));
    for (int i = 0; i < 257; i++) fwrite(chunk, 1, sizeof(chunk), f);
    fclose(f);
    vkl_err_clear(&e);
    T_ASSERT(vkl_config_load(path, NULL, 0, &c, &e) == VKL_ERR_INPUT && strstr(e.msg, "larger than 16 MiB"), "%s",
             e.msg);
    /* a directory is not a config */
    vkl_err_clear(&e);
    T_ASSERT(vkl_config_load(t_tmpdir(), NULL, 0, &c, &e) == VKL_ERR_INPUT, "directory accepted");
    return 0;
}

static int test_round_trip(void) {
    const char *docs[] = {"{}", FLAT_DOC,
                          "{\"device\": \"Intel Arc\", \"resume_from_checkpoint\": true, \"warmup_steps\": 12,"
                          " \"lr_scheduler_type\": \"constant_with_warmup\", \"learning_rate\": 0.000123456789012345,"
                          " \"use_gradient_checkpointing\": \"unsloth\", \"eval_path\": \"e.json\", \"eval_steps\": 3,"
                          " \"lora_alpha\": 0.1, \"max_steps\": 0, \"seed\": 4294967295}"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(docs); i++) {
        vkl_config a, b;
        LOAD_OK(docs[i], &a);
        cJSON *j = vkl_config_to_json(&a);
        char *text = cJSON_Print(j);
        cJSON_Delete(j);
        vkl_err e = {0};
        vkl_status st = vkl_config_from_json_string(text, "rt.json", NULL, 0, &b, &e);
        if (st) {
            fprintf(stderr, "%s\n", text);
            free(text);
            T_FAIL("reload of doc %zu failed: %s", i, e.msg);
        }
        free(text);
        T_ASSERT(config_equal(&a, &b), "round trip of doc %zu differs", i);
        /* also field by field for the ones JSON could blur */
        T_ASSERT(a.learning_rate == b.learning_rate && a.lora_alpha == b.lora_alpha && a.seed == b.seed &&
                     a.device_index == b.device_index && a.resume_latest == b.resume_latest &&
                     a.gradient_checkpointing == b.gradient_checkpointing && a.warmup_steps == b.warmup_steps &&
                     a.warmup_ratio == b.warmup_ratio,
                 "fields of doc %zu", i);
        vkl_config_free(&a);
        vkl_config_free(&b);
    }
    /* canonical names in the output */
    vkl_config c;
    LOAD_OK("{\"rank\": 4, \"random_state\": 9}", &c);
    cJSON *j = vkl_config_to_json(&c);
    const cJSON *lora = cJSON_GetObjectItemCaseSensitive(j, "lora");
    const cJSON *training = cJSON_GetObjectItemCaseSensitive(j, "training");
    T_ASSERT(cJSON_GetObjectItemCaseSensitive(lora, "r")->valuedouble == 4, "lora.r");
    T_ASSERT(cJSON_GetObjectItemCaseSensitive(training, "seed")->valuedouble == 9, "training.seed");
    T_ASSERT(!cJSON_GetObjectItemCaseSensitive(training, "random_state"), "alias in output");
    cJSON_Delete(j);
    vkl_config_free(&c);
    return 0;
}

static int test_derived(void) {
    vkl_config c;
    LOAD_OK("{\"r\": 16, \"lora_alpha\": 32}", &c);
    T_ASSERT(vkl_config_lora_scale(&c) == 2.0, "scale");
    c.use_rslora = true;
    T_ASSERT(fabs(vkl_config_lora_scale(&c) - 8.0) < 1e-12, "rslora scale");
    /* HF: ceil(1000/2)=500 micro-batches, /4 = 125 steps per epoch */
    T_ASSERT(vkl_config_total_steps(&c, 1000) == 125, "steps %lld", (long long)vkl_config_total_steps(&c, 1000));
    T_ASSERT(vkl_config_total_steps(&c, 1001) == 126, "partial accumulation");
    T_ASSERT(vkl_config_total_steps(&c, 1) == 1, "tiny");
    c.num_train_epochs = 2.5;
    T_ASSERT(vkl_config_total_steps(&c, 1000) == 313, "fractional epochs");
    c.max_steps = 60;
    T_ASSERT(vkl_config_total_steps(&c, 1000) == 60, "max_steps wins");
    vkl_config_free(&c);

    /* linear with 5 warmup steps over 60: HF get_linear_schedule_with_warmup */
    LOAD_OK("{\"max_steps\": 60}", &c);
    int64_t total = vkl_config_total_steps(&c, 10);
    T_ASSERT(total == 60 && vkl_config_warmup_steps(&c, total) == 5, "warmup");
    T_ASSERT(vkl_config_lr_at(&c, 0, total) == 0, "lr(0)");
    T_ASSERT(fabs(vkl_config_lr_at(&c, 2, total) - 2e-4 * 2 / 5) < 1e-18, "lr(2)");
    T_ASSERT(fabs(vkl_config_lr_at(&c, 5, total) - 2e-4) < 1e-18, "lr(5)");
    T_ASSERT(fabs(vkl_config_lr_at(&c, 30, total) - 2e-4 * 30.0 / 55.0) < 1e-18, "lr(30)");
    T_ASSERT(vkl_config_lr_at(&c, 60, total) == 0, "lr(end)");
    vkl_config_free(&c);
    /* cosine with warmup_ratio 0.1 of 100 steps: ceil(10) = 10 */
    LOAD_OK("{\"max_steps\": 100, \"warmup_ratio\": 0.1, \"lr_scheduler_type\": \"cosine\", \"lr\": 1e-3}", &c);
    T_ASSERT(vkl_config_warmup_steps(&c, 100) == 10, "ratio warmup");
    T_ASSERT(fabs(vkl_config_lr_at(&c, 55, 100) - 0.5e-3) < 1e-15, "cosine midpoint");
    T_ASSERT(fabs(vkl_config_lr_at(&c, 10, 100) - 1e-3) < 1e-15, "cosine start");
    T_ASSERT(fabs(vkl_config_lr_at(&c, 100, 100)) < 1e-15, "cosine end");
    vkl_config_free(&c);
    LOAD_OK("{\"lr_scheduler_type\": \"constant\", \"warmup_steps\": 4}", &c);
    T_ASSERT(vkl_config_lr_at(&c, 1, 50) == 2e-4 / 4 && vkl_config_lr_at(&c, 49, 50) == 2e-4, "constant");
    vkl_config_free(&c);

    vkl_err e = {0};
    LOAD_OK("{}", &c);
    T_ASSERT(vkl_config_check_for_training(&c, &e) == VKL_ERR_INPUT && strstr(e.msg, "model.path is not set"), "%s",
             e.msg);
    vkl_config_free(&c);
    LOAD_OK("{\"model\": \"m\"}", &c);
    vkl_err_clear(&e);
    T_ASSERT(vkl_config_check_for_training(&c, &e) == VKL_ERR_INPUT && strstr(e.msg, "dataset.path is not set"), "%s",
             e.msg);
    vkl_config_free(&c);
    LOAD_OK("{\"model\": \"m\", \"dataset\": \"d\"}", &c);
    vkl_err_clear(&e);
    T_ASSERT(vkl_config_check_for_training(&c, &e) == VKL_OK, "%s", e.msg);
    vkl_config_free(&c);
    return 0;
}

static int test_example_configs(void) {
    const char *names[] = {"demo.json", "full-example.json"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(names); i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/configs/%s", VKL_SOURCE_ROOT, names[i]);
        vkl_config c;
        vkl_err e = {0};
        T_ASSERT(vkl_config_load(path, NULL, 0, &c, &e) == VKL_OK, "%s", e.msg);
        T_ASSERT(vkl_config_check_for_training(&c, &e) == VKL_OK, "%s", e.msg);
        if (i == 0) {
            T_ASSERT(!strcmp(c.model_path, "build/demo/model.gguf") && !strcmp(c.dataset_path, "data/demo.txt"),
                     "demo paths");
        } else {
            /* full-example lists every key with its default: only model/dataset differ from vkl_config_defaults */
            vkl_config d;
            vkl_config_defaults(&d);
            d.model_path = vkl_strdup(c.model_path);
            d.dataset_path = vkl_strdup(c.dataset_path);
            T_ASSERT(config_equal(&c, &d), "full-example.json differs from the defaults");
            vkl_config_free(&d);
            /* ... and it names every knob: its grouped form has exactly to_json's keys */
            FILE *f = fopen(path, "rb");
            T_ASSERT(f, "open");
            static char buf[1 << 16];
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[n] = 0;
            cJSON *doc = cJSON_Parse(buf), *res = vkl_config_to_json(&c);
            T_ASSERT(doc && cJSON_Compare(doc, res, true), "full-example.json is not the resolved form of itself");
            cJSON_Delete(doc);
            cJSON_Delete(res);
        }
        vkl_config_free(&c);
    }
    return 0;
}

static int test_cli(void) {
    char cmd[4096], path[1024];
    char *out = NULL, *err = NULL;
    const char *bin = t_vklora_bin();
    snprintf(path, sizeof(path), "%s/cli_cfg.json", t_tmpdir());
    T_ASSERT(write_file(path, "{\"lora\": {\"r\": 8}, \"random_state\": 11}") == 0, "write");

    snprintf(cmd, sizeof(cmd), "%s config %s --set lora.lora_alpha=24 --set 'target_modules=[\"q\",\"v\"]' --print",
             bin, path);
    int rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 0, "rc %d: %s", rc, err ? err : "");
    cJSON *doc = cJSON_Parse(out);
    T_ASSERT(doc, "stdout is not JSON: %s", out);
    vkl_config c;
    vkl_err e = {0};
    T_ASSERT(vkl_config_from_json_string(out, "stdout", NULL, 0, &c, &e) == VKL_OK, "reload: %s", e.msg);
    T_ASSERT(c.r == 8 && c.lora_alpha == 24 && c.seed == 11 && c.target_modules == (VKL_TM_Q | VKL_TM_V), "values");
    vkl_config_free(&c);
    cJSON_Delete(doc);
    free(out);
    free(err);

    snprintf(cmd, sizeof(cmd), "%s config %s --json", bin, path);
    rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 0 && out && strstr(out, "\"ok\"") && strstr(out, "true"), "--json: %s", out ? out : "");
    free(out);
    free(err);

    snprintf(cmd, sizeof(cmd), "%s config %s", bin, path);
    rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 0 && out && strstr(out, "config OK: ") && strstr(out, path), "plain: %s", out ? out : "");
    free(out);
    free(err);

    /* errors: stderr carries the path, exit 2; with --json stdout is one JSON document */
    T_ASSERT(write_file(path, "{\"lora\": {\"r\": \"16\"}}") == 0, "write");
    snprintf(cmd, sizeof(cmd), "%s config %s --print", bin, path);
    rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 2 && err && strstr(err, "lora.r: expected an integer 1..1024, got \"16\""), "rc %d err %s", rc,
             err ? err : "");
    T_ASSERT(!out || !out[0], "stdout on error without --json: %s", out);
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd), "%s config %s --json", bin, path);
    rc = t_run(cmd, &out, &err);
    doc = out ? cJSON_Parse(out) : NULL;
    T_ASSERT(rc == 2 && doc && cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(doc, "ok")), "json error: %s",
             out ? out : "");
    cJSON_Delete(doc);
    free(out);
    free(err);

    const char *bad[] = {"/nonexistent.json", "--set", "--set lerning_rate=1", "--frobnicate", "a.json b.json"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(bad); i++) {
        snprintf(cmd, sizeof(cmd), "%s config %s", bin, bad[i]);
        rc = t_run(cmd, &out, &err);
        T_ASSERT(rc == 2 && err && err[0], "'%s': rc %d", bad[i], rc);
        free(out);
        free(err);
    }

    /* --help documents every key the resolved JSON has */
    snprintf(cmd, sizeof(cmd), "%s config --help", bin);
    rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 0 && out, "help rc %d", rc);
    vkl_config d;
    vkl_config_defaults(&d);
    cJSON *res = vkl_config_to_json(&d);
    for (const cJSON *s = res->child; s; s = s->next) {
        if (!cJSON_IsObject(s)) {
            T_ASSERT(strstr(out, s->string), "help lacks %s", s->string);
            continue;
        }
        for (const cJSON *k = s->child; k; k = k->next) {
            char key[256];
            snprintf(key, sizeof(key), "%s.%s", s->string, k->string);
            T_ASSERT(strstr(out, key), "help lacks %s", key);
        }
    }
    T_ASSERT(strstr(out, "random_state") && strstr(out, "lora_r") && strstr(out, "adamw_8bit"), "help aliases");
    cJSON_Delete(res);
    vkl_config_free(&d);
    free(out);
    free(err);
    return 0;
}

const vkl_test_case vkl_tests_config[] = {
    {"config/defaults", test_defaults},
    {"config/aliases", test_aliases},
    {"config/flat_vs_grouped", test_flat_vs_grouped},
    {"config/invalid_values", test_invalid_values},
    {"config/unknown_keys", test_unknown_keys},
    {"config/duplicates", test_duplicates},
    {"config/set_overrides", test_set_overrides},
    {"config/syntax_errors", test_syntax_errors},
    {"config/files", test_files},
    {"config/round_trip", test_round_trip},
    {"config/derived", test_derived},
    {"config/example_configs", test_example_configs},
    {"config/cli", test_cli},
    {NULL, NULL},
};
