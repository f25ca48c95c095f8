/* `vklora bench`: forward throughput (tokens/s) and peak device memory for a model and context, as one JSON line
 * that can be compared across devices. Nothing here is asserted by the tests: speed is measured, not promised. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "forward.h"
#include "ops/matmul.h"
#include "train.h"
#include "vklora/lora.h"
#include "vk/vk.h"

static const char *HELP =
    "usage: vklora bench --model M.gguf [--train] [--ctx N] [--batch B] [--iters I] [--r R]\n"
    "                    [--checkpointing false|true|unsloth] [--lora-dropout P] [--profile] [--device D]\n"
    "                    [--json]\n\n"
    "Runs the forward pass (with the loss) on B sequences of N pseudo-random tokens, once to warm up (shader\n"
    "compilation happens at the first dispatch) and then I timed times; prints tokens/s (median), the device\n"
    "memory plan and the peak device memory vklora allocated. With --train it times whole training steps\n"
    "instead: forward, backward and AdamW with rank-R LoRA adapters on all seven projections.\n\n"
    "  --ctx N     tokens per sequence (default 256)\n"
    "  --batch B   sequences per forward (default 1)\n"
    "  --iters I   timed iterations (default 3)\n"
    "  --train     time training steps (forward + backward + optimizer)\n"
    "  --r R       LoRA rank for --train (default 16)\n"
    "  --checkpointing MODE  use_gradient_checkpointing of --train: false (default), true, unsloth\n"
    "  --lora-dropout P  lora_dropout of --train (default 0): the masks' cost shows in the step and --profile\n"
    "  --profile   per-kernel device time of the timed iterations from timestamp queries (each dispatch's time\n"
    "              since the one before, barriers included), longest first with its share: what to optimise next;\n"
    "              JSON \"profile\": {\"ms_per_iter\", \"kernels\": [{\"name\", \"ms_per_iter\", \"share\", \"dispatches\"}]}\n"
    "  --devices LIST  with --train: data parallelism over the devices (\"0,1\", \"0,0\", names, or \"all\"; the\n"
    "              batch is split as in training): each device's tokens/s alone on its share, the tokens/s of the\n"
    "              devices together, and the scaling efficiency (together / sum of alone). Devices that share the\n"
    "              same cores or GPU (lavapipe twice) measure the overhead, not a speedup\n"
    "  --json      one JSON object on one line\n";

static int dcmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int vkl_cmd_bench(int argc, char **argv) {
    const char *model = NULL, *device = NULL, *ckpt_name = "false", *devices = NULL;
    uint32_t ctx = 256, batch = 1, iters = 3, rank = 16;
    float dropout = 0;
    bool json = false, train = false, profile = false;
    const vkl_cli_opt opts[] = {
        {"--model", VKL_OPT_STR, &model, 0, 0},      {"--device", VKL_OPT_STR, &device, 0, 0},
        {"--ctx", VKL_OPT_U32, &ctx, 2, 1u << 20},   {"--batch", VKL_OPT_U32, &batch, 1, 4096},
        {"--r", VKL_OPT_U32, &rank, 1, 1024},        {"--iters", VKL_OPT_U32, &iters, 1, 1000},
        {"--train", VKL_OPT_FLAG, &train, 0, 0},     {"--json", VKL_OPT_FLAG, &json, 0, 0},
        {"--checkpointing", VKL_OPT_STR, &ckpt_name, 0, 0}, {"--profile", VKL_OPT_FLAG, &profile, 0, 0},
        {"--devices", VKL_OPT_STR, &devices, 0, 0},   {"--lora-dropout", VKL_OPT_F32, &dropout, 0, 0.95},
    };
    int prc = vkl_cli_parse("bench", argc, argv, opts, VKL_ARRAY_LEN(opts), HELP);
    if (prc >= 0) return prc;
    if (!model) return vkl_cli_usage("bench", "--model is required");
    vkl_grad_ckpt ckpt = VKL_GRAD_CKPT_OFF;
    if (!strcmp(ckpt_name, "true")) ckpt = VKL_GRAD_CKPT_ON;
    else if (!strcmp(ckpt_name, "unsloth")) ckpt = VKL_GRAD_CKPT_UNSLOTH;
    else if (strcmp(ckpt_name, "false"))
        return vkl_cli_usage("bench", "--checkpointing: expected false, true or unsloth, got '%s'", ckpt_name);
    if (devices && (!train || profile || device || dropout > 0))
        return vkl_cli_usage("bench", "--devices goes with --train, without --profile, --device and --lora-dropout");
    if (dropout > 0 && !train) return vkl_cli_usage("bench", "--lora-dropout goes with --train");
    if (devices) return vkl_bench_train_devices(model, devices, batch, ctx, rank, ckpt, iters, json);
    vkl_err err = {0};
    vkl_session s;
    if (vkl_session_open(model, device, &s, &err)) return vkl_cli_fail("bench", err.status, "%s", err.msg);
    vkl_fwd *f = NULL;
    int rc = 0;
    size_t R = (size_t)batch * ctx;
    int32_t *tokens = vkl_malloc(R * 4), *targets = vkl_malloc(R * 4);
    float *nll = vkl_malloc(R * 4);
    double *times = vkl_calloc(iters, sizeof(double));
    uint64_t st = 12345;
    for (size_t i = 0; i < R; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((st >> 33) % s.model->hp.n_vocab);
    }
    for (size_t i = 0; i < R; i++) targets[i] = (i + 1) % ctx ? tokens[i + 1] : -1;
    vkl_lora *lora = NULL;
    vkl_train_dev *td = NULL;
    uint64_t planned = 0;
    if (train) {
        vkl_config cfg;
        vkl_config_defaults(&cfg);
        int32_t *pos = vkl_malloc(R * 4), *seg = vkl_calloc(R, 4);
        for (size_t i = 0; i < R; i++) pos[i] = (int32_t)(i % ctx);
        vkl_status st = vkl_lora_create(s.model, VKL_TM_ALL, rank, rank, false, &lora, &err);
        if (!st) {
            vkl_lora_init(lora, 3407);
            st = vkl_train_dev_create(s.vk, s.model, lora, batch, ctx, ckpt, &td, &err);
        }
        if (!st) st = vkl_train_dev_load_params(td, NULL, NULL, &err);
        if (!st) vkl_train_set_dropout(td, dropout, 3407, 0);
        for (uint32_t it = 0; it <= iters && !st; it++) { /* iteration 0 warms up */
            double t0 = vkl_now_s(), nll_sum, gn;
            st = vkl_train_zero_grads(td, &err);
            if (!st) st = vkl_train_micro_step(td, tokens, pos, seg, targets, 1.0f / (float)R, &nll_sum, &err);
            if (!st) st = vkl_train_optimizer_step(td, &cfg, it + 1, 1e-4, &gn, &err);
            if (it) times[it - 1] = vkl_now_s() - t0;
            if (!st && !it && profile) st = vkl_profile_start(s.vk, &err); /* the timed iterations only */
        }
        if (td) planned = td->planned_bytes;
        free(pos);
        free(seg);
        vkl_config_free(&cfg);
        if (st) goto fail;
    } else {
        vkl_fwd_dims dims = {.max_seq = batch, .max_T = ctx, .n_ctx = ctx};
        if (vkl_fwd_create(s.vk, s.model, &dims, &f, &err)) goto fail;
        planned = f->planned_bytes;
        if (vkl_fwd_run(f, tokens, batch, ctx, 0, targets, nll, NULL, &err)) goto fail; /* warm-up */
        if (profile && vkl_profile_start(s.vk, &err)) goto fail;
        for (uint32_t it = 0; it < iters; it++) {
            double t0 = vkl_now_s();
            if (vkl_fwd_run(f, tokens, batch, ctx, 0, targets, nll, NULL, &err)) goto fail;
            times[it] = vkl_now_s() - t0;
        }
    }
    qsort(times, iters, sizeof(double), dcmp);
    double med = times[iters / 2], tps = (double)R / med;
    cJSON *o = cJSON_CreateObject();
    vkl_profile_entry prof[64];
    double prof_ms = 0;
    uint64_t untimed = 0;
    size_t n_prof = profile ? vkl_profile_report(s.vk, prof, VKL_ARRAY_LEN(prof), &prof_ms, &untimed) : 0;
    if (profile) {
        cJSON *po = cJSON_AddObjectToObject(o, "profile"), *arr = cJSON_AddArrayToObject(po, "kernels");
        cJSON_AddNumberToObject(po, "ms_per_iter", prof_ms / iters);
        cJSON_AddNumberToObject(po, "untimed_dispatches", (double)untimed);
        for (size_t i = 0; i < n_prof; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", prof[i].name);
            cJSON_AddNumberToObject(e, "ms_per_iter", prof[i].ms / iters);
            cJSON_AddNumberToObject(e, "share", prof_ms > 0 ? prof[i].ms / prof_ms : 0);
            cJSON_AddNumberToObject(e, "dispatches", (double)prof[i].dispatches / iters);
            cJSON_AddItemToArray(arr, e);
        }
    }
    cJSON_AddStringToObject(o, "bench", train ? "train" : "forward");
    if (train) cJSON_AddNumberToObject(o, "lora_r", rank);
    if (train) cJSON_AddStringToObject(o, "checkpointing", ckpt_name);
    if (train) cJSON_AddNumberToObject(o, "lora_dropout", dropout);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "architecture", s.model->hp.arch_name);
    cJSON_AddNumberToObject(o, "n_params", (double)s.model->n_params);
    cJSON_AddStringToObject(o, "device", s.vk->info.name);
    if (*vkl_vk_cpu_tune_note()) cJSON_AddStringToObject(o, "cpu_tuning", vkl_vk_cpu_tune_note());
    cJSON_AddStringToObject(o, "device_type", s.vk->info.type);
    cJSON_AddStringToObject(o, "driver", s.vk->info.driver_name);
    cJSON_AddNumberToObject(o, "ctx", ctx);
    cJSON_AddNumberToObject(o, "batch", batch);
    cJSON_AddNumberToObject(o, "iters", iters);
    cJSON_AddNumberToObject(o, "seconds_median", med);
    cJSON_AddNumberToObject(o, "tokens_per_second", tps);
    cJSON_AddNumberToObject(o, "weights_bytes", (double)s.model->device_bytes);
    cJSON_AddNumberToObject(o, train ? "training_state_bytes_planned" : "activations_bytes_planned", (double)planned);
    cJSON_AddNumberToObject(o, "peak_device_bytes", (double)s.vk->device_bytes_peak);
    /* the kernel variants each op dispatched in this run (VKLORA_MATMUL / VKLORA_ATTN, or chosen from the device):
     * "kernels": {"matmul": "texel", "attention": "tile", ...}; matmul_kernels / matmul_t_kernels kept for scripts */
    char kern[2][64], kall[1024];
    char kops[32][32];
    uint32_t nk = vkl_op_variants_ops(kops, 32);
    cJSON *ko = cJSON_AddObjectToObject(o, "kernels");
    for (uint32_t i = 0; i < nk; i++) {
        char kv[256];
        cJSON_AddStringToObject(ko, kops[i], vkl_op_variants_of(kops[i], kv, sizeof(kv)));
    }
    cJSON_AddStringToObject(o, "matmul_kernels", vkl_op_variants_of("matmul", kern[0], sizeof(kern[0])));
    if (train) cJSON_AddStringToObject(o, "matmul_t_kernels", vkl_op_variants_of("matmul_t", kern[1], sizeof(kern[1])));
    vkl_op_variants_list(kall, sizeof(kall));
    if (json) {
        char *line = cJSON_PrintUnformatted(o);
        puts(line);
        free(line);
        cJSON_Delete(o);
    } else {
        cJSON_Delete(o);
        printf("%s  %s on %s (%s)\n", train ? "train  " : "forward", model, s.vk->info.name, s.vk->info.type);
        printf("shape    %u x %u tokens, %u iterations, median %.3f s\n", batch, ctx, iters, med);
        printf("speed    %.1f tokens/s\n", tps);
        printf("kernels  %s\n", kall);
        printf("memory   weights %.1f MiB, %s %.1f MiB planned, peak %.1f MiB\n", s.model->device_bytes / 1048576.0,
               train ? "training state" : "activations", planned / 1048576.0,
               s.vk->device_bytes_peak / 1048576.0);
        if (profile) {
            printf("profile  %.1f ms of device time per iteration (%.0f%% of the median wall time)%s\n",
                   prof_ms / iters, 100.0 * prof_ms / iters / (med * 1e3), untimed ? ", some dispatches untimed" : "");
            for (size_t i = 0; i < n_prof; i++)
                printf("  %5.1f%%  %9.3f ms  %7.1f x  %s\n", prof_ms > 0 ? 100.0 * prof[i].ms / prof_ms : 0.0,
                       prof[i].ms / iters, (double)prof[i].dispatches / iters, prof[i].name);
        }
    }
    goto done;
fail:
    rc = vkl_cli_fail("bench", err.status, "%s", err.msg);
done:
    vkl_fwd_destroy(f);
    vkl_train_dev_destroy(td);
    vkl_lora_free(lora);
    free(tokens);
    free(targets);
    free(nll);
    free(times);
    vkl_session_close(&s);
    return rc;
}
