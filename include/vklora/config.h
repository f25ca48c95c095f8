/* The training configuration: one JSON file (Unsloth/TRL key names, flat or grouped) plus --set overrides,
 * resolved into one plain struct with defaults, aliases and range checks applied.
 * configs/README.md has the key table. */
#ifndef VKLORA_CONFIG_H
#define VKLORA_CONFIG_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "vklora/common.h"

/* Learning-rate schedule after warmup (warmup applies to every schedule; "constant_with_warmup" reads as constant). */
typedef enum {
    VKL_SCHED_LINEAR = 0, /* decays linearly to 0 at the last step (TRL/HF "linear") */
    VKL_SCHED_COSINE,     /* half a cosine from lr to 0 (HF "cosine", num_cycles 0.5) */
    VKL_SCHED_CONSTANT,   /* stays at lr */
    VKL_SCHED_COUNT
} vkl_sched;

/* Which biases train besides the adapters (PEFT's `bias`); llama-family models have none, so there it
 * changes nothing. */
typedef enum { VKL_BIAS_NONE = 0, VKL_BIAS_ALL, VKL_BIAS_LORA_ONLY, VKL_BIAS_COUNT } vkl_lora_bias;

/* Activation checkpointing: off keeps every activation; on recomputes each layer in backward; "unsloth"
 * additionally keeps the recompute inputs off the hot memory path (Unsloth's offloaded variant). */
typedef enum { VKL_GRAD_CKPT_OFF = 0, VKL_GRAD_CKPT_ON, VKL_GRAD_CKPT_UNSLOTH, VKL_GRAD_CKPT_COUNT } vkl_grad_ckpt;

/* Storage of the frozen base weights during training: "keep" uses the GGUF's own types, the others
 * (re)quantize at load time (QLoRA is q4_k_m / q4_0). */
typedef enum {
    VKL_QUANT_KEEP = 0,
    VKL_QUANT_Q4_K_M,
    VKL_QUANT_Q5_K_M,
    VKL_QUANT_Q6_K,
    VKL_QUANT_Q8_0,
    VKL_QUANT_Q4_0,
    VKL_QUANT_F16,
    VKL_QUANT_BF16,
    VKL_QUANT_F32,
    VKL_QUANT_COUNT
} vkl_quant_mode;

/* The optimizer name as requested. All three run the same fp32 AdamW (decoupled weight decay);
 * "adamw_8bit" is accepted for Unsloth notebooks and served by fp32 state (same math, more memory). */
typedef enum { VKL_OPTIM_ADAMW_8BIT = 0, VKL_OPTIM_ADAMW_TORCH, VKL_OPTIM_ADAMW, VKL_OPTIM_COUNT } vkl_optim_kind;

/* How dataset records are read; "auto" decides from the file (.txt -> text, JSON record shape otherwise). */
typedef enum {
    VKL_DATASET_AUTO = 0,
    VKL_DATASET_TEXT,     /* plain text (or records with a text field) */
    VKL_DATASET_ALPACA,   /* {instruction, input, output} */
    VKL_DATASET_SHAREGPT, /* {conversations: [{from, value}]} */
    VKL_DATASET_MESSAGES, /* {messages: [{role, content}]} */
    VKL_DATASET_COUNT
} vkl_dataset_format;

/* Prompt template that turns records into token sequences; "auto" takes the GGUF's chat template when it has
 * one, else alpaca for instruction data and plain for text. */
typedef enum {
    VKL_TEMPLATE_AUTO = 0,
    VKL_TEMPLATE_ALPACA,
    VKL_TEMPLATE_CHATML,
    VKL_TEMPLATE_LLAMA3,
    VKL_TEMPLATE_LLAMA2,
    VKL_TEMPLATE_MISTRAL,
    VKL_TEMPLATE_PLAIN,
    /* exact renderings of real models' chat templates (src/data_template.c) */
    VKL_TEMPLATE_LLAMA31,       /* Llama 3.1 */
    VKL_TEMPLATE_LLAMA32,       /* Llama 3.2 (strftime_now date; 3.3 uses 3.1's template) */
    VKL_TEMPLATE_QWEN25,        /* Qwen2.5 */
    VKL_TEMPLATE_QWEN3,         /* Qwen3 (think blocks) */
    VKL_TEMPLATE_SMOLLM3,       /* SmolLM3 (/think, /no_think) */
    VKL_TEMPLATE_GEMMA2,        /* Gemma 1/2 */
    VKL_TEMPLATE_GEMMA3,        /* Gemma 3 */
    VKL_TEMPLATE_GEMMA4,        /* Gemma 4 */
    VKL_TEMPLATE_PHI35,         /* Phi-3.5 */
    VKL_TEMPLATE_MISTRAL_NEMO,  /* Mistral Nemo */
    VKL_TEMPLATE_MISTRAL_SMALL, /* Mistral Small 3.1/3.2 */
    VKL_TEMPLATE_DEEPSEEK_R1,   /* DeepSeek-R1 distills */
    VKL_TEMPLATE_GPT_OSS,       /* gpt-oss (harmony) */
    VKL_TEMPLATE_COUNT
} vkl_chat_template;

/* The linear projections of a block that can carry a LoRA adapter, as bits of a mask: llama's seven, and Phi-3's
 * two fused ones (PEFT's qkv_proj and gate_up_proj). Which ones a model has: vkl_arch_desc.modules. */
typedef enum {
    VKL_TM_Q = 1u << 0,    /* q_proj    / attn_q      */
    VKL_TM_K = 1u << 1,    /* k_proj    / attn_k      */
    VKL_TM_V = 1u << 2,    /* v_proj    / attn_v      */
    VKL_TM_O = 1u << 3,    /* o_proj    / attn_output */
    VKL_TM_GATE = 1u << 4, /* gate_proj / ffn_gate    */
    VKL_TM_UP = 1u << 5,   /* up_proj   / ffn_up      */
    VKL_TM_DOWN = 1u << 6, /* down_proj / ffn_down    */
    VKL_TM_QKV = 1u << 7,     /* qkv_proj     / attn_qkv (phi3) */
    VKL_TM_GATE_UP = 1u << 8, /* gate_up_proj / ffn_up of 2F rows (phi3) */
} vkl_target_module;
#define VKL_TM_COUNT 9
#define VKL_TM_ALL 0x7Fu       /* the default: llama's seven (on phi3: its four, q/k/v and gate/up fused) */
#define VKL_TM_MASK 0x1FFu     /* every bit a config may hold */
#define VKL_PROJ_COUNT 7       /* projections of the graph: q k v o gate up down (fused weights are split) */

/* Indexed by bit number (bit i = 1u << i): the PEFT names (q_proj ...) and the llama.cpp tensor names (attn_q ...). */
extern const char *const vkl_target_module_names[VKL_TM_COUNT];
extern const char *const vkl_target_module_gguf_names[VKL_TM_COUNT];

/* Canonical lower-case spellings, indexed by the enum value. */
extern const char *const vkl_sched_names[VKL_SCHED_COUNT];
extern const char *const vkl_lora_bias_names[VKL_BIAS_COUNT];
extern const char *const vkl_quant_mode_names[VKL_QUANT_COUNT];
extern const char *const vkl_optim_names[VKL_OPTIM_COUNT];
extern const char *const vkl_dataset_format_names[VKL_DATASET_COUNT];
extern const char *const vkl_chat_template_names[VKL_TEMPLATE_COUNT];

#define VKL_MAX_DEVICES 16  /* devices of one process */
#define VKL_MAX_SHARES 1024 /* devices of a whole job (all MPI ranks) */

/* Every knob, resolved. Strings are owned (malloc'd) and freed by vkl_config_free; NULL means "not given".
 * The comment on each field gives its canonical JSON path. */
typedef struct vkl_config {
    /* model */
    char *model_path;            /* model.path (flat: "model": "x.gguf"); base model GGUF; NULL = not given */
    vkl_quant_mode quantization; /* model.quantization; base weight storage while training */

    /* dataset */
    char *dataset_path;                /* dataset.path (flat: "dataset": "x.txt"); NULL = not given */
    vkl_dataset_format dataset_format; /* dataset.format */
    vkl_chat_template chat_template;   /* dataset.template */
    char *text_field;                  /* dataset.text_field; record field holding raw text ("text") */
    char *eval_path;                   /* dataset.eval_path; separate evaluation file, NULL = none */
    double eval_ratio;                 /* dataset.eval_ratio in [0,1); share of the training file held out */
    bool packing;                      /* dataset.packing; concatenate samples into full max_seq_length rows */
    bool train_on_responses_only;      /* dataset.train_on_responses_only; loss only on assistant/response tokens */

    /* lora */
    int r;                    /* lora.r in 1..1024; adapter rank: A is (r, in), B is (out, r) */
    double lora_alpha;        /* lora.lora_alpha > 0; scale = alpha / r (alpha / sqrt(r) with rslora) */
    double lora_dropout;      /* lora.lora_dropout in [0,1); dropout on the adapter input x */
    uint32_t target_modules;  /* lora.target_modules; vkl_target_module bits, never 0 */
    vkl_lora_bias bias;       /* lora.bias */
    bool use_rslora;          /* lora.use_rslora; rank-stabilized scale alpha / sqrt(r) */
    int loftq_bits;           /* lora.loftq_config.loftq_bits: 0 = LoftQ off, else 4 or 8 */
    int loftq_iter;           /* lora.loftq_config.loftq_iter >= 1 (1 when off) */

    /* training */
    double learning_rate;             /* training.learning_rate in (0,1]; peak lr after warmup */
    double num_train_epochs;          /* training.num_train_epochs > 0; may be fractional as in TRL */
    int64_t max_steps;                /* training.max_steps; > 0 wins over epochs, <= 0 means use epochs */
    int per_device_train_batch_size;  /* training.per_device_train_batch_size; sequences per micro-batch (B) */
    int gradient_accumulation_steps;  /* training.gradient_accumulation_steps; micro-batches per optimizer step */
    int max_seq_length;               /* training.max_seq_length; tokens per sequence (T); longer ones truncate */
    int64_t warmup_steps;             /* training.warmup_steps >= 0; used when > 0 (HF rule) */
    double warmup_ratio;              /* training.warmup_ratio in [0,1); share of steps, used if warmup_steps == 0 */
    vkl_sched lr_scheduler_type;      /* training.lr_scheduler_type */
    int64_t seed;                     /* training.seed (alias random_state) in 0..2^32-1 */
    double weight_decay;              /* training.weight_decay >= 0; decoupled (AdamW), on adapter weights */
    double max_grad_norm;             /* training.max_grad_norm >= 0; global L2 clip, 0 = off */
    vkl_optim_kind optim;             /* training.optim */
    double adam_beta1;                /* training.adam_beta1 in [0,1) */
    double adam_beta2;                /* training.adam_beta2 in [0,1) */
    double adam_epsilon;              /* training.adam_epsilon in (0,1] */
    vkl_grad_ckpt gradient_checkpointing; /* training.use_gradient_checkpointing */
    char *output_dir;                 /* training.output_dir; checkpoints and the adapter go here (never NULL) */
    int64_t save_steps;               /* training.save_steps; checkpoint every N optimizer steps, 0 = only at the end */
    int64_t eval_steps;               /* training.eval_steps; evaluate every N steps, 0 = off */
    int64_t logging_steps;            /* training.logging_steps >= 1; print loss/lr every N steps */
    bool resume_latest;               /* training.resume_from_checkpoint == true: newest checkpoint in output_dir */
    char *resume_from_checkpoint;     /* training.resume_from_checkpoint as a path; NULL = none (or latest) */
    bool advice;                      /* training.advice; print the LoRA guide's notes (src/advice.c) */
    int64_t plot_every;               /* training.plot_every; rewrite output_dir/curves.svg every N steps, 0 = off */

    /* device: "auto" (device_index -1, device_name NULL), an index (device_index >= 0) or a name substring */
    int device_index;  /* device as an index, -1 otherwise */
    char *device_name; /* device as a case-insensitive name substring, NULL otherwise */
    /* devices: data parallelism (each device runs a share of the rows of every micro-batch). n_devices 0 and not
     * devices_all: one device, from `device`. */
    int n_devices;                          /* entries in devices[] */
    bool devices_all;                       /* "all": every Vulkan device */
    char *devices[VKL_MAX_DEVICES];         /* each an index ("0") or a case-insensitive name substring */
    int n_device_shares;                    /* 0 = "auto" (even over identical devices, else measured at the start),
                                               -1 = "measure" (always measured), else the count given */
    double device_shares[VKL_MAX_SHARES];   /* relative speed of each device (with MPI: of every rank's devices,
                                               rank by rank); rows of a micro-batch are split in proportion */
    /* layer_split: model parallelism over the devices of `devices` (each a contiguous range of layers) */
    int n_layer_split;                      /* 0 = off, -1 = "auto" (from each device's memory), else the count */
    double layer_split[VKL_MAX_DEVICES];    /* relative share of the layers of each device */
} vkl_config;

/* Fill `c` with Unsloth's notebook defaults (allocates output_dir: release with vkl_config_free). */
void vkl_config_defaults(vkl_config *c);
/* Free the owned strings and leave `c` zeroed (device_index -1). Safe on a zeroed struct and twice in a row. */
void vkl_config_free(vkl_config *c);

/* Load a config: defaults, then the JSON file at `path` (NULL = defaults only), then each `sets[i]`
 * ("key.path=value"; the value is JSON when it parses as JSON, else a string), later ones winning.
 * On failure `out` holds nothing to free (as after vkl_config_free) and err names the file, the JSON path,
 * what was expected and what was found. */
vkl_status vkl_config_load(const char *path, const char *const *sets, int n_sets, vkl_config *out, vkl_err *err);
/* The same from a JSON text in memory; `source` names it in messages (e.g. "<test>"). */
vkl_status vkl_config_from_json_string(const char *json, const char *source, const char *const *sets, int n_sets,
                                       vkl_config *out, vkl_err *err);

/* The fully resolved config as grouped JSON with canonical names ({model, dataset, lora, training, device});
 * loading it back gives the same struct. Caller owns the result (cJSON_Delete). */
cJSON *vkl_config_to_json(const vkl_config *c);

/* Check what a training run needs beyond a valid config (model and dataset given). */
vkl_status vkl_config_check_for_training(const vkl_config *c, vkl_err *err);

/* Derived quantities, so every consumer applies TRL's rules the same way. */
/* LoRA output scale: alpha / r, or alpha / sqrt(r) with use_rslora. */
double vkl_config_lora_scale(const vkl_config *c);
/* Optimizer steps of the run for a training set of n_examples sequences: max_steps when > 0, else
 * ceil(epochs * max(1, ceil(ceil(n / batch) / accumulation))): a trailing partial accumulation still steps. */
int64_t vkl_config_total_steps(const vkl_config *c, int64_t n_examples);
/* Warmup length: warmup_steps when > 0, else ceil(warmup_ratio * total_steps). */
int64_t vkl_config_warmup_steps(const vkl_config *c, int64_t total_steps);
/* Learning rate of optimizer step `step` (0-based) out of `total_steps`, as HF's schedules: linear ramp
 * step/warmup during warmup, then linear/cosine decay to 0 at total_steps, or constant. */
double vkl_config_lr_at(const vkl_config *c, int64_t step, int64_t total_steps);

/* Write the key reference (name, aliases, default, accepted values, meaning) as text, for `--help`. */
void vkl_config_print_keys(FILE *f);
/* `vklora explain`: one knob (canonical path, flat key or alias) from the same table: meaning, default, accepted
 * values, cost and the LoRA guide's advice, as text or (json) one JSON object; NULL name = every knob in one line
 * each (json: an array). Unknown names are VKL_ERR_INPUT with the nearest known name. */
vkl_status vkl_config_explain(FILE *f, const char *name, bool json, vkl_err *err);
/* The same entry as a JSON object (caller owns it), or NULL when `name` is no knob. */
cJSON *vkl_config_knob_json(const char *name);

#endif
