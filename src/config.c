/* The training config: a table of knobs (canonical JSON path, accepted aliases, type and range, default, help)
 * drives loading, validation, --set overrides, the resolved JSON print and the --help key reference. */
#include "vklora/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform.h"

/* Enum fields are stored through an int pointer by the table-driven loader. */
_Static_assert(sizeof(vkl_sched) == sizeof(int), "enum size");
_Static_assert(sizeof(vkl_quant_mode) == sizeof(int), "enum size");

#define MAX_CONFIG_BYTES (16u << 20) /* a config is a few KiB; anything this big is not one */
#define MAX_STRING_BYTES 4096        /* paths and field names */
#define MAX_JPATH 256

const char *const vkl_target_module_names[VKL_TM_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                           "gate_proj", "up_proj", "down_proj", "qkv_proj",
                                                           "gate_up_proj"};
const char *const vkl_target_module_gguf_names[VKL_TM_COUNT] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                                                "ffn_gate", "ffn_up", "ffn_down", "attn_qkv",
                                                                "ffn_up"};
static const char *const target_module_short_names[VKL_TM_COUNT] = {"q", "k", "v", "o", "gate", "up", "down",
                                                                    "qkv", "gate_up"};

const char *const vkl_sched_names[VKL_SCHED_COUNT] = {"linear", "cosine", "constant"};
const char *const vkl_lora_bias_names[VKL_BIAS_COUNT] = {"none", "all", "lora_only"};
const char *const vkl_quant_mode_names[VKL_QUANT_COUNT] = {"keep", "q4_k_m", "q5_k_m", "q6_k", "q8_0",
                                                           "q4_0", "f16",    "bf16",   "f32"};
const char *const vkl_optim_names[VKL_OPTIM_COUNT] = {"adamw_8bit", "adamw_torch", "adamw"};
const char *const vkl_dataset_format_names[VKL_DATASET_COUNT] = {"auto", "text", "alpaca", "sharegpt", "messages"};
const char *const vkl_chat_template_names[VKL_TEMPLATE_COUNT] = {
    "auto",    "alpaca",  "chatml",  "llama-3", "llama-2", "mistral",      "plain",         "llama-3.1",
    "llama-3.2", "qwen-2.5", "qwen-3", "smollm3", "gemma-2", "gemma-3", "gemma-4", "phi-3.5", "mistral-nemo",
    "mistral-small", "deepseek-r1", "gpt-oss"};

/* Accepted spellings of an enum (case-insensitive), canonical ones first; NULL-terminated. */
typedef struct {
    const char *name;
    int value;
} spelling;

static const spelling sched_spellings[] = {{"linear", VKL_SCHED_LINEAR},
                                           {"cosine", VKL_SCHED_COSINE},
                                           {"constant", VKL_SCHED_CONSTANT},
                                           {"constant_with_warmup", VKL_SCHED_CONSTANT},
                                           {NULL, 0}};
static const spelling bias_spellings[] = {
    {"none", VKL_BIAS_NONE}, {"all", VKL_BIAS_ALL}, {"lora_only", VKL_BIAS_LORA_ONLY}, {NULL, 0}};
static const spelling quant_spellings[] = {
    {"keep", VKL_QUANT_KEEP}, {"q4_k_m", VKL_QUANT_Q4_K_M}, {"q5_k_m", VKL_QUANT_Q5_K_M}, {"q6_k", VKL_QUANT_Q6_K},
    {"q8_0", VKL_QUANT_Q8_0}, {"q4_0", VKL_QUANT_Q4_0},     {"f16", VKL_QUANT_F16},       {"bf16", VKL_QUANT_BF16},
    {"f32", VKL_QUANT_F32},   {NULL, 0}};
static const spelling optim_spellings[] = {{"adamw_8bit", VKL_OPTIM_ADAMW_8BIT},
                                           {"adamw_torch", VKL_OPTIM_ADAMW_TORCH},
                                           {"adamw", VKL_OPTIM_ADAMW},
                                           {NULL, 0}};
static const spelling format_spellings[] = {{"auto", VKL_DATASET_AUTO},         {"text", VKL_DATASET_TEXT},
                                            {"alpaca", VKL_DATASET_ALPACA},     {"sharegpt", VKL_DATASET_SHAREGPT},
                                            {"messages", VKL_DATASET_MESSAGES}, {NULL, 0}};
static const spelling template_spellings[] = {
    {"auto", VKL_TEMPLATE_AUTO},       {"alpaca", VKL_TEMPLATE_ALPACA}, {"chatml", VKL_TEMPLATE_CHATML},
    {"llama-3", VKL_TEMPLATE_LLAMA3},  {"llama3", VKL_TEMPLATE_LLAMA3}, {"llama-2", VKL_TEMPLATE_LLAMA2},
    {"llama2", VKL_TEMPLATE_LLAMA2},   {"mistral", VKL_TEMPLATE_MISTRAL}, {"plain", VKL_TEMPLATE_PLAIN},
    {"llama-3.1", VKL_TEMPLATE_LLAMA31}, {"llama3.1", VKL_TEMPLATE_LLAMA31}, {"llama-3.2", VKL_TEMPLATE_LLAMA32},
    {"llama3.2", VKL_TEMPLATE_LLAMA32}, {"qwen-2.5", VKL_TEMPLATE_QWEN25},
    {"qwen2.5", VKL_TEMPLATE_QWEN25},   {"qwen-3", VKL_TEMPLATE_QWEN3},    {"qwen3", VKL_TEMPLATE_QWEN3},
    {"smollm3", VKL_TEMPLATE_SMOLLM3},  {"gemma-2", VKL_TEMPLATE_GEMMA2},  {"gemma2", VKL_TEMPLATE_GEMMA2},
    {"gemma", VKL_TEMPLATE_GEMMA2},     {"gemma-3", VKL_TEMPLATE_GEMMA3},  {"gemma3", VKL_TEMPLATE_GEMMA3},
    {"gemma-4", VKL_TEMPLATE_GEMMA4},   {"gemma4", VKL_TEMPLATE_GEMMA4},   {"phi-3.5", VKL_TEMPLATE_PHI35},
    {"phi3.5", VKL_TEMPLATE_PHI35},     {"mistral-nemo", VKL_TEMPLATE_MISTRAL_NEMO},
    {"mistral-small", VKL_TEMPLATE_MISTRAL_SMALL}, {"mistral-small-3", VKL_TEMPLATE_MISTRAL_SMALL},
    {"deepseek-r1", VKL_TEMPLATE_DEEPSEEK_R1}, {"gpt-oss", VKL_TEMPLATE_GPT_OSS}, {"harmony", VKL_TEMPLATE_GPT_OSS},
    {NULL, 0}};

typedef enum {
    K_INT,       /* int field, integral JSON number in [lo, hi] */
    K_I64,       /* int64_t field, same */
    K_NUM,       /* double field, finite number within lo/hi (open ends as flagged) */
    K_BOOL,      /* bool field, JSON true/false */
    K_STR,       /* char* field, non-empty string (null allowed when nullable) */
    K_ENUM,      /* int field, one of the spellings */
    K_TARGETS,   /* target_modules: list of module names or "all-linear" */
    K_LOFTQ,     /* loftq_config: null, {} or {loftq_bits, loftq_iter} */
    K_GRAD_CKPT, /* false | true | "unsloth" */
    K_DEVICE,    /* "auto" | index | name substring */
    K_RESUME,    /* null | false | true | path */
    K_DEVICES,   /* null | "all" | list of indices / name substrings */
    K_SHARES,    /* null | "auto" | list of positive numbers */
    K_SPLIT,     /* layer_split: null | "auto" | list of positive numbers */
} knob_kind;

typedef struct {
    const char *section;     /* canonical section ("model", "dataset", "lora", "training") or NULL for top level */
    const char *key;         /* canonical key inside the section */
    const char *aliases[3];  /* other names, accepted inside the section and at the top level */
    bool flat;               /* `key` itself is also accepted at the top level */
    knob_kind kind;
    size_t off;              /* field offset in vkl_config */
    double lo, hi;           /* K_INT/K_I64/K_NUM bounds */
    bool lo_open, hi_open;   /* K_NUM: bound excluded */
    bool nullable;           /* K_STR: JSON null leaves it unset */
    const spelling *enums;   /* K_ENUM */
    const char *expect;      /* what the value must be, as said in errors and --help; NULL = derived */
    const char *help;
    const char *cost;        /* what a larger value costs (memory, time); NULL = nothing worth saying */
    const char *guide;       /* the LoRA parameter guide's advice on this knob; NULL = none */
} knob;

#define F(field) offsetof(vkl_config, field)

static const knob knobs[] = {
    /* model */
    {.section = "model", .key = "path", .flat = false, .kind = K_STR, .off = F(model_path), .nullable = true,
     .expect = "a path string or null", .help = "base model GGUF file (required to train)"},
    {.section = "model", .key = "quantization", .flat = true, .kind = K_ENUM, .off = F(quantization),
     .enums = quant_spellings,
     .help = "frozen base weights while training: keep = as stored in the GGUF; "
             "others requantize at load (QLoRA: q4_k_m)",
     .cost = "load time; less device memory",
     .guide = "q4_k_m (QLoRA) for the least memory at little accuracy cost; keep trains on the weights you deploy"},
    /* dataset */
    {.section = "dataset", .key = "path", .flat = false, .kind = K_STR, .off = F(dataset_path), .nullable = true,
     .expect = "a path string or null", .help = "training data: .txt, .json or .jsonl (required to train)"},
    {.section = "dataset", .key = "format", .aliases = {"dataset_format"}, .flat = false, .kind = K_ENUM,
     .off = F(dataset_format), .enums = format_spellings, .help = "record layout; auto decides from the file"},
    {.section = "dataset", .key = "template", .aliases = {"chat_template"}, .flat = false, .kind = K_ENUM,
     .off = F(chat_template), .enums = template_spellings,
     .help = "prompt template; auto = the GGUF's chat template, else alpaca/plain by format"},
    {.section = "dataset", .key = "text_field", .aliases = {"dataset_text_field"}, .flat = true, .kind = K_STR,
     .off = F(text_field), .help = "record field holding raw text (text format from JSON)"},
    {.section = "dataset", .key = "eval_path", .flat = true, .kind = K_STR, .off = F(eval_path), .nullable = true,
     .expect = "a path string or null", .help = "separate evaluation file (excludes eval_ratio)"},
    {.section = "dataset", .key = "eval_ratio", .flat = true, .kind = K_NUM, .off = F(eval_ratio), .hi = 1,
     .hi_open = true, .help = "share of the training records held out for evaluation (excludes eval_path)",
     .guide = "hold out 5 to 10 % (or give eval_path) so overfitting can be seen"},
    {.section = "dataset", .key = "packing", .flat = true, .kind = K_BOOL, .off = F(packing),
     .help = "concatenate samples into full max_seq_length rows"},
    {.section = "dataset", .key = "train_on_responses_only", .flat = true, .kind = K_BOOL,
     .off = F(train_on_responses_only), .help = "loss only on response/assistant tokens (instruction and chat data)"},
    /* lora */
    {.section = "lora", .key = "r", .aliases = {"lora_r", "rank"}, .flat = true, .kind = K_INT, .off = F(r), .lo = 1,
     .hi = 1024, .help = "adapter rank",
     .cost = "adapter memory and LoRA time, linear",
     .guide = "16 or 32 typical (8 to 128 suggested); higher learns more, costs memory and may overfit; "
              "lower is faster and regularizes"},
    {.section = "lora", .key = "lora_alpha", .aliases = {"alpha"}, .flat = true, .kind = K_NUM, .off = F(lora_alpha),
     .hi = 1e6, .lo_open = true,
     .help = "adapter scale numerator: scale = alpha / r (alpha / sqrt(r) with use_rslora)",
     .guide = "r to 2r (alpha = r, or 2r to learn more aggressively); with use_rslora the scale is alpha / sqrt(r)"},
    {.section = "lora", .key = "lora_dropout", .aliases = {"dropout"}, .flat = true, .kind = K_NUM,
     .off = F(lora_dropout), .hi = 1, .hi_open = true, .help = "dropout on the adapter input",
     .cost = "0: nothing; > 0: one random draw per adapter input element",
     .guide = "0 is fastest (Unsloth's default); 0.1 to 0.2 against overfitting"},
    {.section = "lora", .key = "target_modules", .flat = true, .kind = K_TARGETS, .off = F(target_modules),
     .expect = "\"all-linear\" or a non-empty list of q_proj k_proj v_proj o_proj gate_proj up_proj down_proj "
               "(also q k v o gate up down, attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down)",
     .help = "projections that get an adapter",
     .cost = "memory and time per module",
     .guide = "all seven (attention and MLP) train best; fewer modules is cheaper and learns less"},
    {.section = "lora", .key = "bias", .flat = true, .kind = K_ENUM, .off = F(bias), .enums = bias_spellings,
     .help = "train the biases too (llama-family models have none, so there it changes nothing)"},
    {.section = "lora", .key = "use_rslora", .flat = true, .kind = K_BOOL, .off = F(use_rslora),
     .help = "rank-stabilized LoRA: scale = alpha / sqrt(r)",
     .guide = "for large ranks (64 and up): keeps the update scale stable as r grows"},
    {.section = "lora", .key = "loftq_config", .flat = true, .kind = K_LOFTQ, .off = F(loftq_bits),
     .expect = "null or {} (off), or {\"loftq_bits\": 4|8, \"loftq_iter\": 1..64}",
     .help = "LoftQ: initialize the adapters from the quantization error of the base weights",
     .cost = "one SVD per adapted weight at the start",
     .guide = "only with a quantized base (QLoRA); closes part of the quantization gap at the start"},
    /* training */
    {.section = "training", .key = "learning_rate", .aliases = {"lr"}, .flat = true, .kind = K_NUM,
     .off = F(learning_rate), .hi = 1, .lo_open = true, .help = "peak learning rate (after warmup)",
     .cost = "none; too high a rate diverges (loss spikes or NaN), too low a rate undertrains in the same time",
     .guide = "typical 5e-5 to 1e-4 (2e-4 is Unsloth's common default); higher trains faster but risks overfitting "
              "and instability, lower is slower but more stable"},
    {.section = "training", .key = "num_train_epochs", .aliases = {"epochs"}, .flat = true, .kind = K_NUM,
     .off = F(num_train_epochs), .hi = 1e6, .lo_open = true,
     .help = "passes over the training data (fractional allowed); ignored when max_steps > 0",
     .cost = "time, linear",
     .guide = "1 to 3; more epochs risk overfitting (memorizing the data), fewer undertrain; watch the eval loss"},
    {.section = "training", .key = "max_steps", .flat = true, .kind = K_I64, .off = F(max_steps), .lo = -1, .hi = 1e9,
     .expect = "an integer -1..1000000000",
     .help = "optimizer steps; > 0 wins over num_train_epochs, <= 0 = use epochs",
     .cost = "time, linear",
     .guide = "a fixed budget for quick experiments (Unsloth's notebooks use 60); for the real run prefer epochs"},
    {.section = "training", .key = "per_device_train_batch_size", .aliases = {"batch_size"}, .flat = true,
     .kind = K_INT, .off = F(per_device_train_batch_size), .lo = 1, .hi = 4096, .help = "sequences per micro-batch",
     .cost = "device memory and time per step, linear",
     .guide = "2 is the usual start; raise gradient_accumulation_steps instead when memory is short"},
    {.section = "training", .key = "gradient_accumulation_steps", .flat = true, .kind = K_INT,
     .off = F(gradient_accumulation_steps), .lo = 1, .hi = 65536, .help = "micro-batches summed per optimizer step",
     .cost = "time only (no memory)",
     .guide = "effective batch = batch x accumulation (8 to 16 is common); a larger effective batch is smoother"},
    {.section = "training", .key = "max_seq_length", .aliases = {"max_length"}, .flat = true, .kind = K_INT,
     .off = F(max_seq_length), .lo = 1, .hi = 1048576, .help = "tokens per sequence; longer samples are truncated",
     .cost = "memory linear, attention time quadratic",
     .guide = "as long as your examples need; packing fills each row"},
    {.section = "training", .key = "warmup_steps", .flat = true, .kind = K_I64, .off = F(warmup_steps), .hi = 1e9,
     .help = "linear warmup steps; used when > 0 (set warmup_steps or warmup_ratio, not both)",
     .guide = "5 to 10 % of the steps: a ramp keeps the first updates from wrecking the base model"},
    {.section = "training", .key = "warmup_ratio", .flat = true, .kind = K_NUM, .off = F(warmup_ratio), .hi = 1,
     .hi_open = true,
     .help = "warmup as a share of all steps, used when warmup_steps is 0 (setting it alone zeroes warmup_steps)",
     .guide = "0.05 to 0.1 (5 to 10 % of the steps)"},
    {.section = "training", .key = "lr_scheduler_type", .flat = true, .kind = K_ENUM, .off = F(lr_scheduler_type),
     .enums = sched_spellings,
     .help = "decay after warmup; constant_with_warmup = constant (warmup applies to every schedule)",
     .guide = "linear or cosine decay; both are fine, constant keeps the rate high to the end"},
    {.section = "training", .key = "seed", .aliases = {"random_state"}, .flat = true, .kind = K_I64, .off = F(seed),
     .hi = 4294967295.0, .help = "seed of adapter init, dropout and data shuffling",
     .guide = "fix it to compare runs: a difference then comes from the knob you changed, not from chance"},
    {.section = "training", .key = "weight_decay", .flat = true, .kind = K_NUM, .off = F(weight_decay), .hi = 1e6,
     .help = "AdamW decoupled weight decay on the adapter weights",
     .guide = "start at 0.01; raise to 0.1 against overfitting, very large values prevent learning"},
    {.section = "training", .key = "max_grad_norm", .flat = true, .kind = K_NUM, .off = F(max_grad_norm), .hi = 1e12,
     .help = "clip the global gradient L2 norm to this; 0 = no clipping",
     .cost = "one reduction per step"},
    {.section = "training", .key = "optim", .flat = true, .kind = K_ENUM, .off = F(optim), .enums = optim_spellings,
     .help = "optimizer; all are fp32 AdamW (adamw_8bit is accepted and served by fp32 state: same math, more memory)"},
    {.section = "training", .key = "adam_beta1", .flat = true, .kind = K_NUM, .off = F(adam_beta1), .hi = 1,
     .hi_open = true, .help = "AdamW first-moment decay"},
    {.section = "training", .key = "adam_beta2", .flat = true, .kind = K_NUM, .off = F(adam_beta2), .hi = 1,
     .hi_open = true, .help = "AdamW second-moment decay"},
    {.section = "training", .key = "adam_epsilon", .flat = true, .kind = K_NUM, .off = F(adam_epsilon), .hi = 1,
     .lo_open = true, .help = "AdamW denominator epsilon"},
    {.section = "training", .key = "use_gradient_checkpointing", .aliases = {"gradient_checkpointing"}, .flat = true,
     .kind = K_GRAD_CKPT, .off = F(gradient_checkpointing), .expect = "false, true or \"unsloth\"",
     .help = "recompute layer activations in backward to save memory (\"unsloth\": also offload the saved inputs)",
     .cost = "true: about one extra forward per step; unsloth: plus host copies, least device memory",
     .guide = "\"unsloth\" for long sequences or big models; false is fastest when memory allows"},
    {.section = "training", .key = "output_dir", .flat = true, .kind = K_STR, .off = F(output_dir),
     .help = "directory for checkpoints, logs and the final adapter"},
    {.section = "training", .key = "save_steps", .flat = true, .kind = K_I64, .off = F(save_steps), .hi = 1e9,
     .help = "checkpoint every N optimizer steps; 0 = only at the end"},
    {.section = "training", .key = "eval_steps", .flat = true, .kind = K_I64, .off = F(eval_steps), .hi = 1e9,
     .help = "evaluate every N steps (needs eval_path or eval_ratio); 0 = off",
     .cost = "one pass over the eval split each time",
     .guide = "evaluate a few times per epoch: eval loss rising while training loss falls is overfitting"},
    {.section = "training", .key = "logging_steps", .flat = true, .kind = K_I64, .off = F(logging_steps), .lo = 1,
     .hi = 1e9, .help = "print loss, lr and grad norm every N steps"},
    {.section = "training", .key = "resume_from_checkpoint", .flat = true, .kind = K_RESUME,
     .off = F(resume_from_checkpoint),
     .expect = "null/false (off), true (newest checkpoint in output_dir) or a checkpoint path",
     .help = "continue a run from a saved checkpoint"},
    {.section = "training", .key = "advice", .flat = true, .kind = K_BOOL, .off = F(advice),
     .help = "print the LoRA guide's notes on the knobs at the start and an overfitting note during training "
             "(notes only, never errors)"},
    {.section = "training", .key = "plot_every", .flat = true, .kind = K_I64, .off = F(plot_every), .hi = 1e9,
     .help = "rewrite output_dir/curves.svg (loss and eval loss against step) every N steps and at the end; 0 = off"},
    /* top level */
    {.key = "device", .flat = true, .kind = K_DEVICE,
     .expect = "\"auto\", a device index or a case-insensitive name substring",
     .help = "Vulkan device to train on (see vklora devices)"},
    {.key = "devices", .flat = true, .kind = K_DEVICES,
     .expect = "null, \"all\" or a list of device indices / case-insensitive name substrings (at most 16)",
     .help = "data parallelism: every listed Vulkan device (mixed vendors, or one device twice) runs a share of each "
             "micro-batch; gradients are summed in a fixed order and one AdamW update is applied (wins over device)",
     .cost = "the base weights once per device; a host copy of the LoRA gradient per device and step",
     .guide = "per_device_train_batch_size stays the whole micro-batch: the loss curve does not change with the "
              "device count (float rounding aside)"},
    {.key = "device_shares", .flat = true, .kind = K_SHARES,
     .expect = "null / \"auto\", \"measure\" or a list of positive numbers, one per device (of all MPI ranks)",
     .help = "relative speed of each device: the rows of a micro-batch are split in proportion, in whole sequences; "
             "auto = even over identical devices, else measured from a timed micro-step at the start; measure = "
             "always measured"},
    {.key = "layer_split", .flat = true, .kind = K_SPLIT,
     .expect = "null (off), \"auto\" or a list of positive numbers, one per device of `devices`",
     .help = "model parallelism: the layers are spread over the devices of `devices` (in order, a contiguous range "
             "each) instead of splitting the rows, so a model larger than one device trains; auto = from each "
             "device's memory, a list = the relative share of layers of each device",
     .cost = "the residual and its gradient cross devices through host memory at each boundary; the devices run "
             "one after another",
     .guide = "the result equals one device's; use it when the model does not fit one device, data parallelism "
              "(devices without layer_split) when it does"},
};
#define N_KNOBS ((int)VKL_ARRAY_LEN(knobs))

/* Canonical section names and the spellings accepted for them. */
static const struct {
    const char *name;
    const char *canonical;
} sections[] = {{"model", "model"}, {"dataset", "dataset"}, {"lora", "lora"}, {"training", "training"},
                {"train", "training"}};

/* ---- defaults, free ---- */

void vkl_config_defaults(vkl_config *c) {
    memset(c, 0, sizeof(*c));
    c->quantization = VKL_QUANT_KEEP;
    c->dataset_format = VKL_DATASET_AUTO;
    c->chat_template = VKL_TEMPLATE_AUTO;
    c->text_field = vkl_strdup("text");
    c->eval_ratio = 0.0;
    c->packing = false;
    c->train_on_responses_only = false;
    c->r = 16;
    c->lora_alpha = 16.0;
    c->lora_dropout = 0.0;
    c->target_modules = VKL_TM_ALL;
    c->bias = VKL_BIAS_NONE;
    c->use_rslora = false;
    c->loftq_bits = 0;
    c->loftq_iter = 1;
    c->learning_rate = 2e-4;
    c->num_train_epochs = 1.0;
    c->max_steps = -1;
    c->per_device_train_batch_size = 2;
    c->gradient_accumulation_steps = 4;
    c->max_seq_length = 2048;
    c->warmup_steps = 5;
    c->warmup_ratio = 0.0;
    c->lr_scheduler_type = VKL_SCHED_LINEAR;
    c->seed = 3407;
    c->weight_decay = 0.01;
    c->max_grad_norm = 1.0;
    c->optim = VKL_OPTIM_ADAMW_8BIT;
    c->adam_beta1 = 0.9;
    c->adam_beta2 = 0.999;
    c->adam_epsilon = 1e-8;
    c->gradient_checkpointing = VKL_GRAD_CKPT_UNSLOTH;
    c->output_dir = vkl_strdup("outputs");
    c->save_steps = 500;
    c->eval_steps = 0;
    c->logging_steps = 1;
    c->resume_latest = false;
    c->advice = true;
    c->plot_every = 0;
    c->device_index = -1;
}

void vkl_config_free(vkl_config *c) {
    if (!c) return;
    free(c->model_path);
    free(c->dataset_path);
    free(c->text_field);
    free(c->eval_path);
    free(c->output_dir);
    free(c->resume_from_checkpoint);
    free(c->device_name);
    for (int i = 0; i < c->n_devices; i++) free(c->devices[i]);
    memset(c, 0, sizeof(*c));
    c->device_index = -1;
}

/* ---- small helpers ---- */

static void set_str(char **dst, const char *s) {
    free(*dst);
    *dst = s ? vkl_strdup(s) : NULL;
}

/* A short JSON rendering of a value for "got ..." in messages. */
static void repr(const cJSON *v, char *buf, size_t n) {
    char *s = cJSON_PrintUnformatted(v);
    if (!s) {
        snprintf(buf, n, "?");
        return;
    }
    if (strlen(s) > 60) snprintf(buf, n, "%.57s...", s);
    else snprintf(buf, n, "%s", s);
    free(s);
}

/* Optimal-string-alignment distance (Levenshtein plus adjacent swaps, so "lroa" is 1 from "lora"),
 * case-insensitive. */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return (size_t)-1; /* nobody misspells a 64-char key; bounds the work */
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == cb &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* Candidate tracking for "did you mean". */
typedef struct {
    const char *best;
    size_t dist;
} suggest;

static void suggest_try(suggest *s, const char *name, const char *cand) {
    size_t d = edit_distance(name, cand);
    if (d < s->dist) {
        s->dist = d;
        s->best = cand;
    }
}

/* ---- collecting assignments: JSON document -> one slot per knob ---- */

typedef struct {
    const cJSON *value;     /* NULL = not set */
    char path[MAX_JPATH];   /* JSON path where it was given, e.g. "lora.r" or "random_state" */
    const char *origin;     /* file name or the --set argument */
    int batch;              /* 0 = the file, i+1 = sets[i]; a knob given twice in one batch is a duplicate */
} slot;

typedef struct {
    slot slots[VKL_ARRAY_LEN(knobs)];
    vkl_err *err;
} loader;

static vkl_status errf(loader *L, const char *origin, const char *path, const char *fmt, ...)
    VKL_PRINTF(4, 5);
static vkl_status errf(loader *L, const char *origin, const char *path, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path && path[0]) return vkl_err_set(L->err, VKL_ERR_INPUT, "config: %s: %s: %s", origin, path, msg);
    return vkl_err_set(L->err, VKL_ERR_INPUT, "config: %s: %s", origin, msg);
}

static bool name_is(const knob *k, const char *name, bool flat) {
    if ((!flat || k->flat) && !strcmp(k->key, name)) return true;
    for (int a = 0; a < 3 && k->aliases[a]; a++)
        if (!strcmp(k->aliases[a], name)) return true;
    return false;
}

/* The knob called `name` in `section` (canonical, NULL = top level), or -1. */
static int find_knob(const char *section, const char *name) {
    for (int i = 0; i < N_KNOBS; i++) {
        const knob *k = &knobs[i];
        if (section ? (k->section && !strcmp(k->section, section) && name_is(k, name, false))
                    : name_is(k, name, true))
            return i;
    }
    return -1;
}

static const char *section_canonical(const char *name) {
    for (size_t i = 0; i < VKL_ARRAY_LEN(sections); i++)
        if (!strcmp(sections[i].name, name)) return sections[i].canonical;
    return NULL;
}

/* Absurdly long keys are cut to 120 bytes per segment: paths only ever appear in messages. */
static void join_path(char *out, const char *prefix, const char *key) {
    if (prefix && prefix[0]) snprintf(out, MAX_JPATH, "%.120s.%.120s", prefix, key);
    else snprintf(out, MAX_JPATH, "%.240s", key);
}

static void knob_path(const knob *k, char *out) {
    join_path(out, k->section, k->key);
}

static vkl_status assign(loader *L, int ki, const cJSON *v, const char *path, const char *origin, int batch) {
    slot *s = &L->slots[ki];
    if (s->value && s->batch == batch) {
        char canon[MAX_JPATH];
        knob_path(&knobs[ki], canon);
        if (!strcmp(s->path, path))
            return errf(L, origin, path, "duplicate key (given twice)");
        return errf(L, origin, path, "duplicate of '%s' (both set %s); give it once", s->path, canon);
    }
    s->value = v;
    snprintf(s->path, sizeof(s->path), "%s", path);
    s->origin = origin;
    s->batch = batch;
    return VKL_OK;
}

static vkl_status unknown_key(loader *L, const char *origin, const char *section, const char *prefix,
                              const char *name) {
    char path[MAX_JPATH];
    join_path(path, prefix, name);
    /* a known key in the wrong section gets a precise hint rather than a spelling guess */
    int elsewhere = -1;
    for (int i = 0; i < N_KNOBS && elsewhere < 0; i++)
        if (name_is(&knobs[i], name, false)) elsewhere = i;
    if (section && elsewhere >= 0) {
        char canon[MAX_JPATH];
        knob_path(&knobs[elsewhere], canon);
        return errf(L, origin, path, "'%s' does not belong in section '%s'; it is %s", name, section, canon);
    }
    suggest s = {NULL, (size_t)-1};
    for (int i = 0; i < N_KNOBS; i++) {
        const knob *k = &knobs[i];
        bool here = section ? (k->section && !strcmp(k->section, section)) : true;
        if (!here) continue;
        if (!section && !k->flat) {
        } else {
            suggest_try(&s, name, k->key);
        }
        for (int a = 0; a < 3 && k->aliases[a]; a++) suggest_try(&s, name, k->aliases[a]);
    }
    if (!section)
        for (size_t i = 0; i < VKL_ARRAY_LEN(sections); i++) suggest_try(&s, name, sections[i].name);
    size_t len = strlen(name);
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    if (s.best && s.dist <= limit)
        return errf(L, origin, path, "unknown key '%s' (did you mean '%s'?)", name, s.best);
    return errf(L, origin, path, "unknown key '%s' (see 'vklora config --help' for the keys)", name);
}

/* One section object ("lora": {...}); `section` canonical, `prefix` as written. */
static vkl_status collect_section(loader *L, const cJSON *obj, const char *section, const char *prefix,
                                  const char *origin, int batch) {
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ki = find_knob(section, c->string);
        if (ki < 0) return unknown_key(L, origin, section, prefix, c->string);
        char path[MAX_JPATH];
        join_path(path, prefix, c->string);
        vkl_status st = assign(L, ki, c, path, origin, batch);
        if (st) return st;
    }
    return VKL_OK;
}

static vkl_status collect(loader *L, const cJSON *root, const char *origin, int batch) {
    if (!cJSON_IsObject(root)) {
        char got[80];
        repr(root, got, sizeof(got));
        return errf(L, origin, NULL, "expected a JSON object at the top level, got %s", got);
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        const char *sec = section_canonical(c->string);
        if (sec) {
            bool path_form = (!strcmp(sec, "model") || !strcmp(sec, "dataset")) && !cJSON_IsObject(c);
            if (path_form) {
                /* "model": "x.gguf" is shorthand for model.path */
                int ki = find_knob(sec, "path");
                vkl_status st = assign(L, ki, c, c->string, origin, batch);
                if (st) return st;
                continue;
            }
            if (!cJSON_IsObject(c)) {
                char got[80];
                repr(c, got, sizeof(got));
                return errf(L, origin, c->string, "expected an object (section of %s keys), got %s", sec, got);
            }
            vkl_status st = collect_section(L, c, sec, c->string, origin, batch);
            if (st) return st;
            continue;
        }
        int ki = find_knob(NULL, c->string);
        if (ki < 0) return unknown_key(L, origin, NULL, NULL, c->string);
        vkl_status st = assign(L, ki, c, c->string, origin, batch);
        if (st) return st;
    }
    return VKL_OK;
}

/* ---- applying one knob's value ---- */

static const char *kind_expect(const knob *k, char *buf, size_t n) {
    if (k->expect) return k->expect;
    switch (k->kind) {
    case K_INT:
    case K_I64:
        snprintf(buf, n, "an integer %.0f..%.0f", k->lo, k->hi);
        return buf;
    case K_NUM:
        if (k->hi >= 1e6 && !k->hi_open) /* a sanity cap rather than a range: say it last */
            snprintf(buf, n, "a number %s %g (at most %g)", k->lo_open ? ">" : ">=", k->lo, k->hi);
        else
            snprintf(buf, n, "a number in %c%g, %g%c", k->lo_open ? '(' : '[', k->lo, k->hi, k->hi_open ? ')' : ']');
        return buf;
    case K_BOOL: return "true or false";
    case K_STR: return k->nullable ? "a string or null" : "a non-empty string";
    case K_ENUM: {
        size_t used = (size_t)snprintf(buf, n, "one of");
        for (const spelling *s = k->enums; s->name && used < n; s++)
            used += (size_t)snprintf(buf + used, n - used, "%s \"%s\"", s == k->enums ? "" : ",", s->name);
        return buf;
    }
    default: return "?";
    }
}

static vkl_status bad_value(loader *L, const knob *k, const slot *s, const cJSON *v, const char *path) {
    char exp[512], got[80];
    repr(v, got, sizeof(got));
    return errf(L, s->origin, path ? path : s->path, "expected %s, got %s", kind_expect(k, exp, sizeof(exp)), got);
}

/* A non-empty list of at most `cap` positive finite numbers (at most 1e9) into out[], their count in *n; on a bad
 * element *n = 0 and the error names it (key[i]). */
static vkl_status positive_list(loader *L, const knob *k, const slot *s, const cJSON *v, double *out, int cap, int *n) {
    *n = 0;
    if (!cJSON_IsArray(v) || !v->child || cJSON_GetArraySize(v) > cap) return bad_value(L, k, s, v, NULL);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || !(e->valuedouble > 0) || e->valuedouble > 1e9) {
            char path[512];
            snprintf(path, sizeof(path), "%s[%d]", s->path, i);
            *n = 0;
            return bad_value(L, k, s, e, path);
        }
        out[(*n)++] = e->valuedouble;
    }
    return VKL_OK;
}

static bool is_int_in(const cJSON *v, double lo, double hi) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    return isfinite(d) && floor(d) == d && d >= lo && d <= hi;
}

static bool parse_module(const char *name, uint32_t *bit) {
    for (int i = 0; i < VKL_TM_COUNT; i++) {
        if (!strcmp(name, vkl_target_module_names[i]) || !strcmp(name, target_module_short_names[i]) ||
            !strcmp(name, vkl_target_module_gguf_names[i])) {
            *bit = 1u << i;
            return true;
        }
    }
    return false;
}

static vkl_status apply_targets(loader *L, const knob *k, const slot *s, vkl_config *c) {
    const cJSON *v = s->value;
    uint32_t mask = 0, bit;
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "all-linear")) mask = VKL_TM_ALL;
        else if (parse_module(v->valuestring, &bit)) mask = bit;
        else return bad_value(L, k, s, v, NULL);
    } else if (cJSON_IsArray(v)) {
        int i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            char path[MAX_JPATH];
            snprintf(path, sizeof(path), "%.200s[%d]", s->path, i);
            if (!cJSON_IsString(e) || !parse_module(e->valuestring, &bit)) return bad_value(L, k, s, e, path);
            mask |= bit;
        }
        if (!mask) return bad_value(L, k, s, v, NULL);
    } else {
        return bad_value(L, k, s, v, NULL);
    }
    c->target_modules = mask;
    return VKL_OK;
}

static vkl_status apply_loftq(loader *L, const knob *k, const slot *s, vkl_config *c) {
    const cJSON *v = s->value;
    if (cJSON_IsNull(v) || (cJSON_IsObject(v) && !v->child)) {
        c->loftq_bits = 0;
        c->loftq_iter = 1;
        return VKL_OK;
    }
    if (!cJSON_IsObject(v)) return bad_value(L, k, s, v, NULL);
    int bits = 4, iter = 1; /* PEFT's LoftQConfig defaults for the key not given */
    bool seen_bits = false, seen_iter = false;
    for (const cJSON *e = v->child; e; e = e->next) {
        char path[MAX_JPATH];
        join_path(path, s->path, e->string);
        if (!strcmp(e->string, "loftq_bits")) {
            if (seen_bits) return errf(L, s->origin, path, "duplicate key (given twice)");
            seen_bits = true;
            if (!is_int_in(e, 4, 8) || (e->valuedouble != 4 && e->valuedouble != 8)) {
                char got[80];
                repr(e, got, sizeof(got));
                return errf(L, s->origin, path, "expected 4 or 8, got %s", got);
            }
            bits = (int)e->valuedouble;
        } else if (!strcmp(e->string, "loftq_iter")) {
            if (seen_iter) return errf(L, s->origin, path, "duplicate key (given twice)");
            seen_iter = true;
            if (!is_int_in(e, 1, 64)) {
                char got[80];
                repr(e, got, sizeof(got));
                return errf(L, s->origin, path, "expected an integer 1..64, got %s", got);
            }
            iter = (int)e->valuedouble;
        } else {
            suggest sg = {NULL, (size_t)-1};
            suggest_try(&sg, e->string, "loftq_bits");
            suggest_try(&sg, e->string, "loftq_iter");
            if (sg.dist <= 3)
                return errf(L, s->origin, path, "unknown key '%s' (did you mean '%s'?)", e->string, sg.best);
            return errf(L, s->origin, path, "unknown key '%s' (loftq_config takes loftq_bits and loftq_iter)",
                        e->string);
        }
    }
    c->loftq_bits = bits;
    c->loftq_iter = iter;
    return VKL_OK;
}

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static vkl_status apply_knob(loader *L, int ki, vkl_config *c) {
    const knob *k = &knobs[ki];
    const slot *s = &L->slots[ki];
    const cJSON *v = s->value;
    void *field = (char *)c + k->off;
    switch (k->kind) {
    case K_INT:
        if (!is_int_in(v, k->lo, k->hi)) return bad_value(L, k, s, v, NULL);
        *(int *)field = (int)v->valuedouble;
        return VKL_OK;
    case K_I64:
        if (!is_int_in(v, k->lo, k->hi)) return bad_value(L, k, s, v, NULL);
        *(int64_t *)field = (int64_t)v->valuedouble;
        return VKL_OK;
    case K_NUM: {
        if (!cJSON_IsNumber(v)) return bad_value(L, k, s, v, NULL);
        double d = v->valuedouble;
        bool ok = isfinite(d) && (k->lo_open ? d > k->lo : d >= k->lo) && (k->hi_open ? d < k->hi : d <= k->hi);
        if (!ok) return bad_value(L, k, s, v, NULL);
        *(double *)field = d;
        return VKL_OK;
    }
    case K_BOOL:
        if (!cJSON_IsBool(v)) return bad_value(L, k, s, v, NULL);
        *(bool *)field = cJSON_IsTrue(v);
        return VKL_OK;
    case K_STR:
        if (k->nullable && cJSON_IsNull(v)) {
            set_str((char **)field, NULL);
            return VKL_OK;
        }
        if (!cJSON_IsString(v) || !v->valuestring[0]) return bad_value(L, k, s, v, NULL);
        if (strlen(v->valuestring) > MAX_STRING_BYTES)
            return errf(L, s->origin, s->path, "string longer than %d bytes", MAX_STRING_BYTES);
        set_str((char **)field, v->valuestring);
        return VKL_OK;
    case K_ENUM:
        if (cJSON_IsString(v))
            for (const spelling *e = k->enums; e->name; e++)
                if (!strcasecmp(e->name, v->valuestring)) {
                    *(int *)field = e->value;
                    return VKL_OK;
                }
        return bad_value(L, k, s, v, NULL);
    case K_TARGETS: return apply_targets(L, k, s, c);
    case K_LOFTQ: return apply_loftq(L, k, s, c);
    case K_GRAD_CKPT:
        if (cJSON_IsBool(v)) c->gradient_checkpointing = cJSON_IsTrue(v) ? VKL_GRAD_CKPT_ON : VKL_GRAD_CKPT_OFF;
        else if (cJSON_IsString(v) && !strcasecmp(v->valuestring, "unsloth"))
            c->gradient_checkpointing = VKL_GRAD_CKPT_UNSLOTH;
        else return bad_value(L, k, s, v, NULL);
        return VKL_OK;
    case K_DEVICE:
        set_str(&c->device_name, NULL);
        c->device_index = -1;
        if (is_int_in(v, 0, 1023)) {
            c->device_index = (int)v->valuedouble;
        } else if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= 256) {
            const char *str = v->valuestring;
            if (!strcasecmp(str, "auto")) {
            } else if (all_digits(str) && strlen(str) <= 4 && atoi(str) <= 1023) {
                c->device_index = atoi(str);
            } else {
                set_str(&c->device_name, str);
            }
        } else {
            return bad_value(L, k, s, v, NULL);
        }
        return VKL_OK;
    case K_DEVICES: {
        for (int i = 0; i < c->n_devices; i++) free(c->devices[i]);
        c->n_devices = 0;
        c->devices_all = false;
        if (cJSON_IsNull(v)) return VKL_OK;
        if (cJSON_IsString(v) && !strcasecmp(v->valuestring, "all")) {
            c->devices_all = true;
            return VKL_OK;
        }
        if (!cJSON_IsArray(v) || !v->child || cJSON_GetArraySize(v) > VKL_MAX_DEVICES) return bad_value(L, k, s, v, NULL);
        int i = 0;
        for (const cJSON *e = v->child; e; e = e->next, i++) {
            char buf[32], path[512];
            const char *str = NULL;
            if (is_int_in(e, 0, 1023)) {
                snprintf(buf, sizeof(buf), "%d", (int)e->valuedouble);
                str = buf;
            } else if (cJSON_IsString(e) && e->valuestring[0] && strlen(e->valuestring) <= 256 &&
                       strcasecmp(e->valuestring, "auto") && strcasecmp(e->valuestring, "all")) {
                str = e->valuestring;
            }
            if (!str) {
                snprintf(path, sizeof(path), "%s[%d]", s->path, i);
                return bad_value(L, k, s, e, path);
            }
            c->devices[c->n_devices++] = vkl_strdup(str);
        }
        return VKL_OK;
    }
    case K_SHARES: {
        c->n_device_shares = 0;
        if (cJSON_IsNull(v) || (cJSON_IsString(v) && !strcasecmp(v->valuestring, "auto"))) return VKL_OK;
        if (cJSON_IsString(v) && !strcasecmp(v->valuestring, "measure")) {
            c->n_device_shares = -1;
            return VKL_OK;
        }
        return positive_list(L, k, s, v, c->device_shares, VKL_MAX_SHARES, &c->n_device_shares);
    }
    case K_SPLIT: {
        c->n_layer_split = 0;
        if (cJSON_IsNull(v)) return VKL_OK;
        if (cJSON_IsString(v) && !strcasecmp(v->valuestring, "auto")) {
            c->n_layer_split = -1;
            return VKL_OK;
        }
        return positive_list(L, k, s, v, c->layer_split, VKL_MAX_DEVICES, &c->n_layer_split);
    }
    case K_RESUME:
        set_str(&c->resume_from_checkpoint, NULL);
        c->resume_latest = false;
        if (cJSON_IsNull(v) || cJSON_IsFalse(v)) return VKL_OK;
        if (cJSON_IsTrue(v)) {
            c->resume_latest = true;
            return VKL_OK;
        }
        if (cJSON_IsString(v) && v->valuestring[0] && strlen(v->valuestring) <= MAX_STRING_BYTES) {
            set_str(&c->resume_from_checkpoint, v->valuestring);
            return VKL_OK;
        }
        return bad_value(L, k, s, v, NULL);
    }
    return bad_value(L, k, s, v, NULL);
}

static int knob_index(const char *section, const char *key) {
    for (int i = 0; i < N_KNOBS; i++)
        if (((!section && !knobs[i].section) || (section && knobs[i].section && !strcmp(section, knobs[i].section))) &&
            !strcmp(key, knobs[i].key))
            return i;
    return -1;
}

/* Rules that involve more than one knob. */
static vkl_status cross_check(loader *L, vkl_config *c) {
    const slot *ws = &L->slots[knob_index("training", "warmup_steps")];
    const slot *wr = &L->slots[knob_index("training", "warmup_ratio")];
    if (ws->value && wr->value && c->warmup_steps > 0 && c->warmup_ratio > 0)
        return errf(L, wr->origin, NULL,
                    "%s and %s are both set; give one of them (warmup_steps is used when > 0, else warmup_ratio)",
                    ws->path, wr->path);
    /* warmup_ratio given alone replaces the default warmup_steps, which would otherwise win (HF rule) */
    if (wr->value && !ws->value) c->warmup_steps = 0;

    const slot *ep = &L->slots[knob_index("dataset", "eval_path")];
    const slot *er = &L->slots[knob_index("dataset", "eval_ratio")];
    if (c->eval_path && c->eval_ratio > 0)
        return errf(L, er->value ? er->origin : ep->origin, NULL,
                    "%s and %s are both set; evaluate on a separate file or on a held-out share, not both",
                    ep->value ? ep->path : "dataset.eval_path", er->value ? er->path : "dataset.eval_ratio");
    const slot *es = &L->slots[knob_index("training", "eval_steps")];
    if (c->eval_steps > 0 && !c->eval_path && c->eval_ratio <= 0)
        return errf(L, es->origin, es->path,
                    "evaluation every %lld steps needs evaluation data: set dataset.eval_path or dataset.eval_ratio",
                    (long long)c->eval_steps);
    return VKL_OK;
}

/* ---- parsing text, --set ---- */

static vkl_status parse_json_text(const char *text, size_t len, const char *source, cJSON **out, vkl_err *err) {
    *out = NULL;
    const char *nul = memchr(text, 0, len);
    if (nul) return vkl_err_set(err, VKL_ERR_INPUT, "config: %s: NUL byte at offset %zu; not a JSON text", source,
                                (size_t)(nul - text));
    const char *start = text;
    if (len >= 3 && !memcmp(start, "\xEF\xBB\xBF", 3)) start += 3; /* a UTF-8 BOM some editors write */
    size_t ws = 0;
    while (ws < len && isspace((unsigned char)text[ws])) ws++;
    if (ws == len) return vkl_err_set(err, VKL_ERR_INPUT, "config: %s: empty; expected a JSON object", source);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(start, &end, true);
    if (!root) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        bool at_end = off >= len;
        /* cJSON stops just past the offending character, often on following whitespace: point at the token */
        if (off > len) off = len;
        while (off > 0 && (off >= len || isspace((unsigned char)text[off]))) off--;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (at_end)
            return vkl_err_set(err, VKL_ERR_INPUT,
                               "config: %s:%d:%d: invalid JSON: the text ends early (unclosed object, array or "
                               "string? last token at line %d, column %d)",
                               source, line, col, line, col);
        size_t near = 0;
        while (near < 20 && off + near < len && text[off + near] != '\n' && text[off + near] != '\r') near++;
        return vkl_err_set(err, VKL_ERR_INPUT, "config: %s:%d:%d: invalid JSON at line %d, column %d, near '%.*s'",
                           source, line, col, line, col, (int)near, text + off);
    }
    *out = root;
    return VKL_OK;
}

/* "a.b.c=value" -> {"a":{"b":{"c":value}}}; the value is JSON when it parses, else a string. */
static vkl_status set_to_json(const char *arg, cJSON **out, vkl_err *err) {
    *out = NULL;
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return vkl_err_set(err, VKL_ERR_INPUT, "config: --set %s: expected key=value (e.g. --set lora.r=8)", arg);
    size_t klen = (size_t)(eq - arg);
    if (klen >= MAX_JPATH) return vkl_err_set(err, VKL_ERR_INPUT, "config: --set %s: key too long", arg);
    char key[MAX_JPATH];
    memcpy(key, arg, klen);
    key[klen] = 0;
    const char *valtext = eq + 1;
    cJSON *val = cJSON_ParseWithOpts(valtext, NULL, true);
    if (!val) val = cJSON_CreateString(valtext);
    /* build from the innermost key outwards */
    cJSON *node = val;
    char *p = key + klen;
    for (;;) {
        char *dot = p;
        while (dot > key && dot[-1] != '.') dot--;
        if (dot == p) {
            cJSON_Delete(node);
            return vkl_err_set(err, VKL_ERR_INPUT, "config: --set %s: empty key segment in '%s'", arg, key);
        }
        char seg[MAX_JPATH];
        memcpy(seg, dot, (size_t)(p - dot));
        seg[p - dot] = 0;
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddItemToObject(obj, seg, node);
        node = obj;
        if (dot == key) break;
        p = dot - 1;
    }
    *out = node;
    return VKL_OK;
}

static vkl_status load_doc(const char *text, size_t len, const char *source, const char *const *sets, int n_sets,
                           vkl_config *out, vkl_err *err) {
    vkl_config_defaults(out);
    loader *L = vkl_calloc(1, sizeof(*L));
    L->err = err;
    cJSON *root = NULL;
    cJSON **set_docs = n_sets > 0 ? vkl_calloc((size_t)n_sets, sizeof(cJSON *)) : NULL;
    char **set_origins = n_sets > 0 ? vkl_calloc((size_t)n_sets, sizeof(char *)) : NULL;
    vkl_status st = VKL_OK;
    if (text) {
        st = parse_json_text(text, len, source, &root, err);
        if (st) goto done;
        st = collect(L, root, source, 0);
        if (st) goto done;
    }
    for (int i = 0; i < n_sets; i++) {
        st = set_to_json(sets[i], &set_docs[i], err);
        if (st) goto done;
        size_t olen = strlen(sets[i]) + 7;
        set_origins[i] = vkl_malloc(olen);
        snprintf(set_origins[i], olen, "--set %s", sets[i]);
        st = collect(L, set_docs[i], set_origins[i], i + 1);
        if (st) goto done;
    }
    for (int i = 0; i < N_KNOBS; i++) {
        if (!L->slots[i].value) continue;
        st = apply_knob(L, i, out);
        if (st) goto done;
    }
    st = cross_check(L, out);
done:
    if (st) vkl_config_free(out);
    cJSON_Delete(root);
    for (int i = 0; i < n_sets; i++) {
        cJSON_Delete(set_docs[i]);
        free(set_origins[i]);
    }
    free(set_docs);
    free(set_origins);
    free(L);
    return st;
}

vkl_status vkl_config_from_json_string(const char *json, const char *source, const char *const *sets, int n_sets,
                                       vkl_config *out, vkl_err *err) {
    return load_doc(json, json ? strlen(json) : 0, source ? source : "<string>", sets, n_sets, out, err);
}

vkl_status vkl_config_load(const char *path, const char *const *sets, int n_sets, vkl_config *out, vkl_err *err) {
    memset(out, 0, sizeof(*out));
    out->device_index = -1;
    if (!path) return load_doc(NULL, 0, "<defaults>", sets, n_sets, out, err);
    FILE *f = vkl_os_fopen(path, "rb");
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "config: %s: cannot open: %s", path, strerror(errno));
    /* read in growing chunks: works for pipes too, and stops at the size cap without trusting a file size */
    size_t cap = 4096, n = 0;
    char *buf = vkl_malloc(cap + 1);
    vkl_status st = VKL_OK;
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (cap >= MAX_CONFIG_BYTES) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "config: %s: larger than %u MiB; not a config file", path,
                             MAX_CONFIG_BYTES >> 20);
            break;
        }
        cap *= 2;
        buf = vkl_realloc(buf, cap + 1);
    }
    if (!st && ferror(f)) st = vkl_err_set(err, VKL_ERR_INPUT, "config: %s: read error: %s", path, strerror(errno));
    fclose(f);
    if (!st) {
        buf[n] = 0;
        st = load_doc(buf, n, path, sets, n_sets, out, err);
    }
    free(buf);
    return st;
}

/* ---- resolved config -> JSON ---- */

static cJSON *knob_to_json(const knob *k, const vkl_config *c) {
    const void *field = (const char *)c + k->off;
    switch (k->kind) {
    case K_INT: return cJSON_CreateNumber(*(const int *)field);
    case K_I64: return cJSON_CreateNumber((double)*(const int64_t *)field);
    case K_NUM: return cJSON_CreateNumber(*(const double *)field);
    case K_BOOL: return cJSON_CreateBool(*(const bool *)field);
    case K_STR: {
        const char *s = *(char *const *)field;
        return s ? cJSON_CreateString(s) : cJSON_CreateNull();
    }
    case K_ENUM:
        for (const spelling *e = k->enums; e->name; e++)
            if (e->value == *(const int *)field) return cJSON_CreateString(e->name);
        return cJSON_CreateNull();
    case K_TARGETS: {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < VKL_TM_COUNT; i++)
            if (c->target_modules & (1u << i)) cJSON_AddItemToArray(a, cJSON_CreateString(vkl_target_module_names[i]));
        return a;
    }
    case K_LOFTQ: {
        if (!c->loftq_bits) return cJSON_CreateNull();
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "loftq_bits", c->loftq_bits);
        cJSON_AddNumberToObject(o, "loftq_iter", c->loftq_iter);
        return o;
    }
    case K_GRAD_CKPT:
        if (c->gradient_checkpointing == VKL_GRAD_CKPT_UNSLOTH) return cJSON_CreateString("unsloth");
        return cJSON_CreateBool(c->gradient_checkpointing == VKL_GRAD_CKPT_ON);
    case K_DEVICE:
        if (c->device_index >= 0) return cJSON_CreateNumber(c->device_index);
        return cJSON_CreateString(c->device_name ? c->device_name : "auto");
    case K_DEVICES: {
        if (c->devices_all) return cJSON_CreateString("all");
        if (!c->n_devices) return cJSON_CreateNull();
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < c->n_devices; i++) {
            const char *d = c->devices[i];
            bool digits = strlen(d) <= 4;
            for (const char *p = d; *p && digits; p++) digits = *p >= '0' && *p <= '9';
            cJSON_AddItemToArray(a, digits ? cJSON_CreateNumber(atoi(d)) : cJSON_CreateString(d));
        }
        return a;
    }
    case K_SHARES: {
        if (c->n_device_shares <= 0) return cJSON_CreateString(c->n_device_shares ? "measure" : "auto");
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < c->n_device_shares; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(c->device_shares[i]));
        return a;
    }
    case K_SPLIT: {
        if (c->n_layer_split <= 0) return c->n_layer_split ? cJSON_CreateString("auto") : cJSON_CreateNull();
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < c->n_layer_split; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(c->layer_split[i]));
        return a;
    }
    case K_RESUME:
        if (c->resume_from_checkpoint) return cJSON_CreateString(c->resume_from_checkpoint);
        return c->resume_latest ? cJSON_CreateTrue() : cJSON_CreateNull();
    }
    return cJSON_CreateNull();
}

cJSON *vkl_config_to_json(const vkl_config *c) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < N_KNOBS; i++) {
        const knob *k = &knobs[i];
        cJSON *parent = root;
        if (k->section) {
            parent = cJSON_GetObjectItemCaseSensitive(root, k->section);
            if (!parent) parent = cJSON_AddObjectToObject(root, k->section);
        }
        cJSON_AddItemToObject(parent, k->key, knob_to_json(k, c));
    }
    return root;
}

vkl_status vkl_config_check_for_training(const vkl_config *c, vkl_err *err) {
    if (!c->model_path)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "config: model.path is not set (give \"model\": \"path/to/model.gguf\" or --set model=...)");
    if (!c->dataset_path)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "config: dataset.path is not set (give \"dataset\": \"path/to/data\" or --set dataset=...)");
    return VKL_OK;
}

/* ---- derived quantities ---- */

double vkl_config_lora_scale(const vkl_config *c) {
    return c->use_rslora ? c->lora_alpha / sqrt((double)c->r) : c->lora_alpha / (double)c->r;
}

int64_t vkl_config_total_steps(const vkl_config *c, int64_t n_examples) {
    if (c->max_steps > 0) return c->max_steps;
    if (n_examples <= 0) return 0;
    int64_t B = c->per_device_train_batch_size, accum = c->gradient_accumulation_steps;
    int64_t micro = (n_examples + B - 1) / B;
    /* a trailing partial accumulation still makes an optimizer step, as in current HF Trainer */
    int64_t per_epoch = (micro + accum - 1) / accum;
    if (per_epoch < 1) per_epoch = 1;
    double total = ceil(c->num_train_epochs * (double)per_epoch);
    return total < 1 ? 1 : (int64_t)total;
}

int64_t vkl_config_warmup_steps(const vkl_config *c, int64_t total_steps) {
    if (c->warmup_steps > 0) return c->warmup_steps;
    if (total_steps <= 0) return 0;
    return (int64_t)ceil(c->warmup_ratio * (double)total_steps);
}

double vkl_config_lr_at(const vkl_config *c, int64_t step, int64_t total_steps) {
    int64_t w = vkl_config_warmup_steps(c, total_steps);
    double lr = c->learning_rate;
    if (step < w) return lr * (double)step / (double)(w > 1 ? w : 1);
    double span = (double)(total_steps - w > 1 ? total_steps - w : 1);
    switch (c->lr_scheduler_type) {
    case VKL_SCHED_LINEAR: {
        double f = (double)(total_steps - step) / span;
        return lr * (f > 0 ? f : 0);
    }
    case VKL_SCHED_COSINE: {
        double progress = (double)(step - w) / span;
        double f = 0.5 * (1.0 + cos(M_PI * progress));
        return lr * (f > 0 ? f : 0);
    }
    case VKL_SCHED_CONSTANT:
    default: return lr;
    }
}

/* ---- key reference ---- */

void vkl_config_print_keys(FILE *f) {
    vkl_config d;
    vkl_config_defaults(&d);
    const char *cur = "";
    for (int i = 0; i < N_KNOBS; i++) {
        const knob *k = &knobs[i];
        const char *sec = k->section ? k->section : "(top level)";
        if (strcmp(sec, cur)) {
            fprintf(f, "\n%s%s\n", sec, !strcmp(sec, "training") ? " (also spelled \"train\")" : "");
            cur = sec;
        }
        char path[MAX_JPATH], exp[512];
        knob_path(k, path);
        fprintf(f, "  %s", path);
        bool any = false;
        if (k->section && k->flat) {
            fprintf(f, "  [flat: %s", k->key);
            any = true;
        } else if (k->section && !strcmp(k->key, "path")) {
            fprintf(f, "  [flat: \"%s\": \"...\"", k->section);
            any = true;
        }
        for (int a = 0; a < 3 && k->aliases[a]; a++) {
            fprintf(f, "%s%s", a ? ", " : any ? "; aliases: " : "  [aliases: ", k->aliases[a]);
            any = true;
        }
        if (any) fputc(']', f);
        cJSON *dv = knob_to_json(k, &d);
        char *ds = cJSON_PrintUnformatted(dv);
        fprintf(f, "\n      default %s; %s\n      %s\n", ds ? ds : "?", kind_expect(k, exp, sizeof(exp)), k->help);
        free(ds);
        if (k->cost) fprintf(f, "      cost: %s\n", k->cost);
        if (k->guide) fprintf(f, "      guide: %s\n", k->guide);
        cJSON_Delete(dv);
    }
    vkl_config_free(&d);
}

/* ---- vklora explain: the same table, one knob at a time ---- */

/* The knob named `name`: its canonical path ("lora.r"), its key in any section, "section.alias", or an alias. */
static int explain_find(const char *name) {
    char path[MAX_JPATH];
    for (int i = 0; i < N_KNOBS; i++) {
        const knob *k = &knobs[i];
        knob_path(k, path);
        bool is_path = k->section && !strcmp(k->key, "path"); /* a bare "path" would be ambiguous */
        if (!strcasecmp(name, path) || (!is_path && !strcasecmp(name, k->key)) ||
            (is_path && !strcasecmp(name, k->section)))
            return i;
        for (int a = 0; a < 3 && k->aliases[a]; a++)
            if (!strcasecmp(name, k->aliases[a])) return i;
    }
    const char *dot = strchr(name, '.');
    if (dot) { /* "lora.rank": an alias inside its section */
        for (int i = 0; i < N_KNOBS; i++) {
            const knob *k = &knobs[i];
            if (!k->section || strncmp(name, k->section, (size_t)(dot - name)) || k->section[dot - name]) continue;
            for (int a = 0; a < 3 && k->aliases[a]; a++)
                if (!strcasecmp(dot + 1, k->aliases[a])) return i;
        }
    }
    return -1;
}

cJSON *vkl_config_knob_json(const char *name) {
    int ki = explain_find(name);
    if (ki < 0) return NULL;
    const knob *k = &knobs[ki];
    char path[MAX_JPATH], exp[512];
    knob_path(k, path);
    vkl_config d;
    vkl_config_defaults(&d);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "knob", path);
    cJSON *names = cJSON_AddArrayToObject(o, "names");
    if (k->section && k->flat) cJSON_AddItemToArray(names, cJSON_CreateString(k->key));
    for (int a = 0; a < 3 && k->aliases[a]; a++) cJSON_AddItemToArray(names, cJSON_CreateString(k->aliases[a]));
    cJSON_AddItemToObject(o, "default", knob_to_json(k, &d));
    cJSON_AddStringToObject(o, "accepted", kind_expect(k, exp, sizeof(exp)));
    cJSON_AddStringToObject(o, "meaning", k->help);
    if (k->cost) cJSON_AddStringToObject(o, "cost", k->cost);
    else cJSON_AddNullToObject(o, "cost");
    if (k->guide) cJSON_AddStringToObject(o, "guide", k->guide);
    else cJSON_AddNullToObject(o, "guide");
    vkl_config_free(&d);
    return o;
}

vkl_status vkl_config_explain(FILE *f, const char *name, bool json, vkl_err *err) {
    if (!name) {
        cJSON *all = json ? cJSON_CreateArray() : NULL;
        for (int i = 0; i < N_KNOBS; i++) {
            char path[MAX_JPATH];
            knob_path(&knobs[i], path);
            if (json) {
                cJSON_AddItemToArray(all, vkl_config_knob_json(path));
                continue;
            }
            fprintf(f, "  %-36s %s%s\n", path, knobs[i].help, knobs[i].guide ? "  [guide]" : "");
        }
        if (json) {
            char *txt = cJSON_Print(all);
            fprintf(f, "%s\n", txt ? txt : "[]");
            free(txt);
            cJSON_Delete(all);
        }
        return VKL_OK;
    }
    cJSON *o = vkl_config_knob_json(name);
    if (!o && !strcasecmp(name, "path"))
        return vkl_err_set(err, VKL_ERR_INPUT, "'path' is ambiguous: model.path or dataset.path");
    if (!o) {
        suggest sg = {NULL, (size_t)-1};
        char path[MAX_JPATH];
        for (int i = 0; i < N_KNOBS; i++) {
            knob_path(&knobs[i], path);
            suggest_try(&sg, name, knobs[i].key);
            for (int a = 0; a < 3 && knobs[i].aliases[a]; a++) suggest_try(&sg, name, knobs[i].aliases[a]);
        }
        if (sg.best && sg.dist <= 3)
            return vkl_err_set(err, VKL_ERR_INPUT, "unknown knob '%s' (did you mean '%s'?)", name, sg.best);
        return vkl_err_set(err, VKL_ERR_INPUT, "unknown knob '%s' (vklora explain lists them)", name);
    }
    if (json) {
        char *txt = cJSON_Print(o);
        fprintf(f, "%s\n", txt ? txt : "{}");
        free(txt);
    } else {
        const cJSON *names = cJSON_GetObjectItemCaseSensitive(o, "names");
        char *dv = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "default"));
        fprintf(f, "%s\n", cJSON_GetObjectItemCaseSensitive(o, "knob")->valuestring);
        if (cJSON_GetArraySize(names) > 0) {
            fprintf(f, "  also written:");
            const cJSON *n;
            cJSON_ArrayForEach(n, names) fprintf(f, " %s", n->valuestring);
            fputc('\n', f);
        }
        fprintf(f, "  meaning:  %s\n  default:  %s\n  accepted: %s\n", cJSON_GetObjectItemCaseSensitive(o, "meaning")->valuestring,
                dv ? dv : "?", cJSON_GetObjectItemCaseSensitive(o, "accepted")->valuestring);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cost"), *g = cJSON_GetObjectItemCaseSensitive(o, "guide");
        fprintf(f, "  cost:     %s\n", cJSON_IsString(c) ? c->valuestring : "nothing worth noting");
        if (cJSON_IsString(g)) fprintf(f, "  guide:    %s\n", g->valuestring);
        free(dv);
    }
    cJSON_Delete(o);
    return VKL_OK;
}
