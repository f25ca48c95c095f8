/* `vklora bench --train --devices LIST`: training steps split over several devices (data parallelism, src/dp.c):
 * each device's tokens/s on its share alone, the combined tokens/s, and the scaling efficiency between them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dp.h"
#include "vklora/config.h"
#include "vklora/lora.h"

static int dcmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, uint32_t n) {
    qsort(v, n, sizeof(double), dcmp);
    return v[n / 2];
}

/* "0,1", "0,0", "NVIDIA,Radeon" or "all" as the config's `devices` value (a JSON array or "all"). */
static char *devices_json(const char *list) {
    size_t cap = strlen(list) * 3 + 8, n = 0;
    char *out = vkl_malloc(cap);
    if (!strcmp(list, "all")) {
        snprintf(out, cap, "devices=\"all\"");
        return out;
    }
    n += (size_t)snprintf(out, cap, "devices=[");
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, ",");
        bool digits = k > 0;
        for (size_t i = 0; i < k; i++) digits &= p[i] >= '0' && p[i] <= '9';
        n += (size_t)snprintf(out + n, cap - n, "%s%s%.*s%s", n > 9 ? "," : "", digits ? "" : "\"", (int)k, p,
                              digits ? "" : "\"");
        p += k + (p[k] == ',');
    }
    snprintf(out + n, cap - n, "]");
    return out;
}

int vkl_bench_train_devices(const char *model_path, const char *devices, uint32_t batch, uint32_t ctx, uint32_t rank,
                            int ckpt, uint32_t iters, bool json) {
    vkl_err err = {0};
    vkl_config c;
    char *set = devices_json(devices);
    const char *sets[1] = {set};
    vkl_status st = vkl_config_load(NULL, sets, 1, &c, &err);
    free(set);
    if (st) return vkl_cli_fail("bench", st, "--devices %s: %s", devices, err.msg);
    vkl_model *m = NULL;
    vkl_vk *vk = NULL;
    vkl_lora *lora = NULL;
    vkl_dp *dp = NULL;
    size_t R = (size_t)batch * ctx;
    vkl_batch b = {.B = batch, .T = ctx};
    b.tokens = vkl_malloc(R * 4), b.targets = vkl_malloc(R * 4), b.pos = vkl_malloc(R * 4), b.seg = vkl_calloc(R, 4);
    double *t_step = vkl_calloc(iters, sizeof(double)), *t_alone = vkl_calloc((size_t)iters * VKL_MAX_DEVICES, 8);
    int rc = 0;
    if ((st = vkl_model_load(model_path, &m, &err)) || (st = vkl_dp_open_first(&c, &vk, &err)) ||
        (st = vkl_model_upload(m, vk, &err)) || (st = vkl_lora_create(m, VKL_TM_ALL, rank, rank, false, &lora, &err)))
        goto fail;
    vkl_lora_init(lora, 3407);
    if ((st = vkl_dp_create(&c, vk, m, lora, batch, ctx, (vkl_grad_ckpt)ckpt, json ? NULL : stdout, &dp, &err)) ||
        (st = vkl_dp_load_params(dp, NULL, NULL, &err)))
        goto fail;
    uint64_t s = 12345;
    for (size_t i = 0; i < R; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b.tokens[i] = (int32_t)((s >> 33) % m->hp.n_vocab);
        b.pos[i] = (int32_t)(i % ctx);
    }
    for (size_t i = 0; i < R; i++) b.targets[i] = (i + 1) % ctx ? b.tokens[i + 1] : -1;
    b.n_targets = (uint32_t)(R - batch);
    float scale = 1.0f / (float)b.n_targets;
    for (uint32_t it = 0; it <= iters; it++) { /* iteration 0 warms up (pipelines compile at the first dispatch) */
        for (int i = 0; i < dp->n; i++) {
            double secs;
            if ((st = vkl_dp_zero_grads(dp, &err)) || (st = vkl_dp_micro_step_alone(dp, i, &b, scale, &secs, &err)))
                goto fail;
            if (it) t_alone[(size_t)i * iters + it - 1] = secs;
        }
        double t0 = vkl_now_s(), gn;
        bool stop = false;
        if ((st = vkl_dp_zero_grads(dp, &err)) || (st = vkl_dp_micro_step(dp, &b, scale, 0, 0, 0, &err)) ||
            (st = vkl_dp_optimizer_step(dp, &c, it + 1, 1e-4, &gn, &stop, &err)))
            goto fail;
        if (it) t_step[it - 1] = vkl_now_s() - t0;
    }
    double per_sum = 0, tps_dev[VKL_MAX_DEVICES];
    for (int i = 0; i < dp->n; i++) {
        tps_dev[i] = (double)dp->w[i].B * ctx / median(t_alone + (size_t)i * iters, iters);
        per_sum += tps_dev[i];
    }
    double med = median(t_step, iters), tps = (double)R / med, eff = tps / per_sum;
    if (json) {
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "devices");
        cJSON_AddStringToObject(o, "bench", "train");
        cJSON_AddStringToObject(o, "model", model_path);
        cJSON_AddNumberToObject(o, "batch", batch);
        cJSON_AddNumberToObject(o, "ctx", ctx);
        cJSON_AddNumberToObject(o, "lora_r", rank);
        for (int i = 0; i < dp->n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "index", i);
            cJSON_AddStringToObject(e, "device", dp->w[i].vk->info.name);
            cJSON_AddNumberToObject(e, "sequences", dp->w[i].B);
            cJSON_AddNumberToObject(e, "tokens_per_second", tps_dev[i]);
            cJSON_AddItemToArray(arr, e);
        }
        cJSON_AddNumberToObject(o, "tokens_per_second", tps);
        cJSON_AddNumberToObject(o, "sum_of_device_tokens_per_second", per_sum);
        cJSON_AddNumberToObject(o, "scaling_efficiency", eff);
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("train    %s on %d devices, %u x %u tokens, %u iterations, median step %.3f s\n", model_path, dp->n,
               batch, ctx, iters, med);
        for (int i = 0; i < dp->n; i++)
            printf("device %d %s: %u sequences, %.1f tokens/s alone on its share\n", i, dp->w[i].vk->info.name,
                   dp->w[i].B, tps_dev[i]);
        printf("speed    %.1f tokens/s together (sum of the devices alone %.1f): scaling efficiency %.0f%%\n", tps,
               per_sum, 100 * eff);
        printf("note     devices that share the same cores or GPU (lavapipe twice) measure overhead, not speedup\n");
    }
    goto done;
fail:
    rc = vkl_cli_fail("bench", st, "%s", err.msg);
done:
    vkl_dp_destroy(dp);
    vkl_lora_free(lora);
    vkl_model_free(m);
    vkl_vk_destroy(vk);
    free(b.tokens), free(b.targets), free(b.pos), free(b.seg), free(t_step), free(t_alone);
    vkl_config_free(&c);
    return rc;
}
