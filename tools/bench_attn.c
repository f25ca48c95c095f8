/* Micro-benchmark of causal GQA attention: milliseconds of vkl_op_attention and vkl_op_attention_back on random data
 * (GPU timestamps, median after one warm-up that pays shader compilation), plus the error against src/ref. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ops/nn.h"
#include "ops/ops.h"
#include "ref/nn.h"

static int usage(void) {
    fprintf(stderr, "usage: vklora-bench-attn [--T 512] [--H 8] [--KVH 4] [--D 64] [--B 1] [--reps 5] [--check 1] "
                    "[--window 0] [--softcap 0] [--device SEL] [--profile] [--json]\n"
                    "  the kernel variant follows VKLORA_ATTN\n"
                    "  --json: one object {B, T, H, KVH, D, window, softcap, reps, variant, device, forward_ms, "
                    "backward_ms,\n  forward_gflops, backward_gflops, and with --check 1 err_out, err_lse, err_dq, "
                    "err_dk, err_dv}\n"
                    "  --profile: each kernel's device time per iteration (timestamp queries after every dispatch);\n"
                    "  in the JSON \"kernels\": [{\"name\", \"ms_per_iter\", \"dispatches\"}] and "
                    "\"untimed_dispatches\"\n");
    return 2;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= e)) e = d; /* NaN propagates */
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return m > 0 ? e / m : e;
}

int main(int argc, char **argv) {
    const char *device = NULL;
    unsigned long T = 512, H = 8, KVH = 4, D = 64, B = 1, reps = 5, check = 1, window = 0;
    double softcap = 0;
    int json = 0, profile = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(argv[i], "--profile")) {
            profile = 1;
            continue;
        }
        if (i + 1 >= argc) return usage();
        const char *k = argv[i], *v = argv[++i];
        unsigned long x = strtoul(v, NULL, 10);
        if (!strcmp(k, "--device")) device = v;
        else if (!strcmp(k, "--T")) T = x;
        else if (!strcmp(k, "--H")) H = x;
        else if (!strcmp(k, "--KVH")) KVH = x;
        else if (!strcmp(k, "--D")) D = x;
        else if (!strcmp(k, "--B")) B = x;
        else if (!strcmp(k, "--reps")) reps = x;
        else if (!strcmp(k, "--check")) check = x;
        else if (!strcmp(k, "--window")) window = x;
        else if (!strcmp(k, "--softcap")) softcap = strtod(v, NULL);
        else return usage();
    }
    if (!T || T > 65536 || !H || H > 256 || !KVH || H % KVH || !D || D > 256 || !B || B > 64 || !reps || reps > 1000 ||
        window > 65536 || !(softcap >= 0 && softcap < 1e30))
        return usage();

    /* the device tuning the vklora program applies (src/vk/vk.h), so the figures are those of a training run */
    if (!vkl_vk_cpu_tune_main(argv)) {
        fprintf(stderr, "bench: could not run again with lavapipe's default vector width; set VKLORA_CPU_TUNE=off\n");
        return 1;
    }
    vkl_err err = {0};
    vkl_vk *vk = NULL;
    vkl_vk_options opt = {.device = device};
    if (vkl_vk_create(&opt, &vk, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    double *fw = NULL, *bw = NULL;
    cJSON *o = NULL;
    vkl_op_cache cache = {0};
    vkl_attn_shape s = {(uint32_t)B, (uint32_t)T, (uint32_t)T, (uint32_t)H, (uint32_t)KVH, (uint32_t)D, 0,
                        1.0f / sqrtf((float)D), (uint32_t)window, (float)softcap};
    size_t nq = B * T * H * D, nkv = B * T * KVH * D, nl = B * H * T;
    enum { Q, K, V, O, L, DO, DQ, DK, DV, DL, NBUF };
    size_t n[NBUF] = {nq, nkv, nkv, nq, nl, nq, nq, nkv, nkv, nl};
    vkl_buffer b[NBUF] = {{0}};
    float *h[NBUF] = {0}, *g = malloc(nq * 4);
    if (!g) goto done;
    uint32_t r = 12345;
    for (int i = 0; i < NBUF; i++) {
        if (!(h[i] = malloc(n[i] * 4))) goto done;
        for (size_t j = 0; j < n[i]; j++) {
            r = r * 1664525u + 1013904223u;
            h[i][j] = ((float)(r >> 8) / 8388608.0f - 1.0f) * (i <= K ? 2.0f : 1.0f);
        }
        if (vkl_buffer_create(vk, n[i] * 4, VKL_MEM_DEVICE, &b[i], &err)) goto done;
    }
    vkl_ref_attention(&s, h[Q], h[K], h[V], NULL, h[O], h[L]);
    for (int i = 0; i < NBUF; i++)
        if (vkl_buffer_upload(vk, &b[i], 0, h[i], n[i] * 4, &err)) goto done;
    fw = calloc(reps, sizeof(double)), bw = calloc(reps, sizeof(double));
    if (!fw || !bw) goto done;
    for (unsigned long it = 0; it <= reps; it++) {
        if (it == 1 && profile && vkl_profile_start(vk, &err)) goto done; /* the timed iterations only */
        if (vkl_cmd_begin(vk, &err)) goto done;
        vkl_cmd_timestamp(vk, 0);
        vkl_status st = vkl_op_attention(vk, &cache, &s, vkl_tv(&b[Q], 0), vkl_tv(&b[K], 0), vkl_tv(&b[V], 0),
                                         vkl_tv_none(), vkl_tv(&b[O], 0), vkl_tv(&b[L], 0), &err);
        vkl_cmd_timestamp(vk, 1);
        if (!st)
            st = vkl_op_attention_back(vk, &cache, &s, vkl_tv(&b[Q], 0), vkl_tv(&b[K], 0), vkl_tv(&b[V], 0),
                                       vkl_tv_none(), vkl_tv(&b[O], 0), vkl_tv(&b[L], 0), vkl_tv(&b[DO], 0),
                                       vkl_tv(&b[DQ], 0), vkl_tv(&b[DK], 0), vkl_tv(&b[DV], 0), vkl_tv(&b[DL], 0), &err);
        vkl_cmd_timestamp(vk, 2);
        vkl_status st2 = vkl_cmd_submit_wait(vk, &err);
        double ns0, ns1;
        if (st || st2 || vkl_timestamp_ns(vk, 0, 1, &ns0, &err) || vkl_timestamp_ns(vk, 1, 2, &ns1, &err)) goto done;
        if (it) fw[it - 1] = ns0 / 1e6, bw[it - 1] = ns1 / 1e6;
        else if (!json)
            printf("first run (with shader compilation): forward %.1f ms, backward %.1f ms\n", ns0 / 1e6, ns1 / 1e6);
    }
    qsort(fw, reps, sizeof(double), cmp_double);
    qsort(bw, reps, sizeof(double), cmp_double);
    /* causal: about half of the T x T scores; forward 2 products of D, backward 5 (s, dp recomputed, dq, dk, dv) */
    double pairs = (double)B * H * T * (T + 1) / 2;
    if (window && window < T) pairs = (double)B * H * (window * (window + 1) / 2 + (double)(T - window) * window);
    /* the kernels that ran, from the ops' registry (tile, scalar, flash or coopmat) */
    char var[64];
    vkl_op_variants_of("attention_back", var, sizeof(var));
    double fms = fw[reps / 2], bms = bw[reps / 2];
    double fgf = 4.0 * D * pairs / (fms * 1e6), bgf = 10.0 * D * pairs / (bms * 1e6);
    if (json) {
        if (!(o = cJSON_CreateObject())) goto done;
        const double dims[] = {B, T, H, KVH, D, window, softcap, reps};
        const char *names[] = {"B", "T", "H", "KVH", "D", "window", "softcap", "reps"};
        for (int i = 0; i < 8; i++) cJSON_AddNumberToObject(o, names[i], dims[i]);
        cJSON_AddStringToObject(o, "variant", var);
        cJSON_AddStringToObject(o, "device", vk->info.name);
        cJSON_AddNumberToObject(o, "forward_ms", fms);
        cJSON_AddNumberToObject(o, "backward_ms", bms);
        cJSON_AddNumberToObject(o, "forward_gflops", fgf);
        cJSON_AddNumberToObject(o, "backward_gflops", bgf);
    } else {
        printf("attention B=%lu T=%lu H=%lu KVH=%lu D=%lu window=%lu softcap=%g variant=%s device=\"%s\": "
               "forward %.2f ms (%.2f GFLOP/s), backward %.2f ms (%.2f GFLOP/s); fastest %.2f / %.2f ms\n",
               B, T, H, KVH, D, window, softcap, var, vk->info.name, fms, fgf, bms, bgf, fw[0], bw[0]);
    }
    /* the same per-kernel figures as `vklora bench --profile` (src/cli/bench.c), per timed iteration */
    vkl_profile_entry prof[16];
    double prof_ms = 0;
    uint64_t untimed = 0;
    size_t n_prof = profile ? vkl_profile_report(vk, prof, sizeof(prof) / sizeof(prof[0]), &prof_ms, &untimed) : 0;
    cJSON *arr = o && profile ? cJSON_AddArrayToObject(o, "kernels") : NULL;
    if (arr) cJSON_AddNumberToObject(o, "untimed_dispatches", (double)untimed);
    else if (profile && untimed) printf("  (%llu dispatches untimed)\n", (unsigned long long)untimed);
    for (size_t i = 0; i < n_prof; i++) {
        double ms = prof[i].ms / reps, nd = (double)prof[i].dispatches / reps;
        if (arr) {
            cJSON *e = cJSON_CreateObject();
            if (!e || !cJSON_AddItemToArray(arr, e)) goto done;
            cJSON_AddStringToObject(e, "name", prof[i].name);
            cJSON_AddNumberToObject(e, "ms_per_iter", ms);
            cJSON_AddNumberToObject(e, "dispatches", nd);
        } else {
            printf("  %-28s %9.2f ms per iteration, %g dispatches\n", prof[i].name, ms, nd);
        }
    }
    if (check) {
        /* The timed loop accumulated dk/dv reps+1 times from their initial values: compare forward and dq only,
         * then one fresh backward for dk/dv. */
        float *dq = malloc(nq * 4), *dk = malloc(nkv * 4), *dv = malloc(nkv * 4);
        if (!dq || !dk || !dv) goto done;
        memcpy(dk, h[DK], nkv * 4), memcpy(dv, h[DV], nkv * 4);
        vkl_ref_attention_back(&s, h[Q], h[K], h[V], NULL, h[O], h[L], h[DO], dq, dk, dv);
        double eo, el, eq, ek, ev;
        int bad = vkl_buffer_download(vk, &b[O], 0, g, nq * 4, &err);
        eo = rel_err(g, h[O], nq);
        bad = bad || vkl_buffer_download(vk, &b[L], 0, g, nl * 4, &err);
        el = rel_err(g, h[L], nl);
        bad = bad || vkl_buffer_download(vk, &b[DQ], 0, g, nq * 4, &err);
        eq = rel_err(g, dq, nq);
        bad = bad || vkl_buffer_upload(vk, &b[DK], 0, h[DK], nkv * 4, &err) ||
              vkl_buffer_upload(vk, &b[DV], 0, h[DV], nkv * 4, &err) ||
              vkl_op_attention_back(vk, &cache, &s, vkl_tv(&b[Q], 0), vkl_tv(&b[K], 0), vkl_tv(&b[V], 0),
                                    vkl_tv_none(), vkl_tv(&b[O], 0), vkl_tv(&b[L], 0), vkl_tv(&b[DO], 0),
                                    vkl_tv(&b[DQ], 0), vkl_tv(&b[DK], 0), vkl_tv(&b[DV], 0), vkl_tv(&b[DL], 0), &err);
        bad = bad || vkl_buffer_download(vk, &b[DK], 0, g, nkv * 4, &err);
        ek = rel_err(g, dk, nkv);
        bad = bad || vkl_buffer_download(vk, &b[DV], 0, g, nkv * 4, &err);
        ev = rel_err(g, dv, nkv);
        free(dq), free(dk), free(dv);
        if (bad) goto done;
        if (json) {
            const double e[] = {eo, el, eq, ek, ev};
            const char *names[] = {"err_out", "err_lse", "err_dq", "err_dk", "err_dv"};
            for (int i = 0; i < 5; i++) cJSON_AddNumberToObject(o, names[i], e[i]);
        } else {
            printf("error vs ref (of max): out %.2g lse %.2g dq %.2g dk %.2g dv %.2g\n", eo, el, eq, ek, ev);
        }
        if (!(eo < 1e-5 && el < 1e-5 && eq < 2e-5 && ek < 2e-5 && ev < 2e-5)) {
            fprintf(stderr, "bench: results differ from the reference\n");
            goto done;
        }
    }
    if (o) {
        char *txt = cJSON_PrintUnformatted(o);
        if (!txt) goto done;
        printf("%s\n", txt);
        free(txt);
    }
    rc = 0;
done:
    cJSON_Delete(o);
    if (rc && err.msg[0]) fprintf(stderr, "bench: %s\n", err.msg);
    free(fw), free(bw), free(g);
    for (int i = 0; i < NBUF; i++) {
        free(h[i]);
        vkl_buffer_destroy(vk, &b[i]);
    }
    vkl_op_cache_destroy(vk, &cache);
    vkl_vk_destroy(vk);
    return rc;
}
