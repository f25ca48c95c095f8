/* Micro-benchmark of the matrix products: GFLOP/s of vkl_op_matmul / vkl_op_matmul_t / vkl_op_gemm on random
 * data, timed with GPU timestamps (median of the repetitions after one warm-up that pays shader compilation). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ops/matmul.h"
#include "vklora/quant.h"

static int usage(void) {
    fprintf(stderr, "usage: vklora-bench-matmul [--op matmul|matmul_t|gemm] [--type q4_k] [--M 512] [--N 2048] "
                    "[--K 2048] [--reps 5] [--layout nt|nn|tn] [--device SEL] [--json]\n"
                    "  --layout (gemm): C = A·B with A [M,K] and B [N,K] (nt: x·A^T, the LoRA xa), A [M,K] and B [K,N]\n"
                    "  (nn: dy·B, dxa), or A [K,M] and B [K,N] (tn: dy^T·xa and dxa^T·x, the LoRA gradients)\n"
                    "  the kernel variant of every op follows VKLORA_MATMUL (auto, texel, regtile, tiled, coopmat)\n"
                    "  --json: one object {op, type, layout, M, N, K, reps, variant, device, median_ms, gflops}\n");
    return 2;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *op = "matmul", *type_name = "q4_k", *device = NULL, *layout = "nt";
    unsigned long M = 512, N = 2048, K = 2048, reps = 5;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (i + 1 >= argc) return usage();
        const char *k = argv[i], *v = argv[++i];
        if (!strcmp(k, "--op")) op = v;
        else if (!strcmp(k, "--type")) type_name = v;
        else if (!strcmp(k, "--device")) device = v;
        else if (!strcmp(k, "--layout")) layout = v;
        else if (!strcmp(k, "--M")) M = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--N")) N = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--K")) K = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--reps")) reps = strtoul(v, NULL, 10);
        else return usage();
    }
    int type = vkl_type_from_name(type_name);
    bool is_gemm = !strcmp(op, "gemm"), is_t = !strcmp(op, "matmul_t");
    if (is_gemm) type = VKL_TYPE_F32;
    uint64_t row_bytes;
    if (type < 0 || !M || !N || !K || M > 65536 || N > 65536 || K > 65536 || !reps || reps > 1000 ||
        (!is_gemm && !is_t && strcmp(op, "matmul")) ||
        (strcmp(layout, "nt") && strcmp(layout, "nn") && strcmp(layout, "tn")) || !vkl_type_row_bytes((uint32_t)type, K, &row_bytes)) {
        fprintf(stderr, "bench: bad arguments (type %s, K must be a multiple of its block size; sizes 1..65536)\n",
                type_name);
        return usage();
    }

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
    double *ms = NULL;
    vkl_op_cache cache = {0};
    vkl_buffer bw = {0}, bx = {0}, by = {0};
    size_t nw = (size_t)N * K, nx = (size_t)M * K, ny = (size_t)M * N;
    float *f = malloc(VKL_MAX(nw, VKL_MAX(nx, ny)) * sizeof(float));
    void *wq = malloc(row_bytes * N + 4);
    if (!f || !wq) goto done;
    uint32_t s = 12345;
    for (size_t i = 0; i < VKL_MAX(nw, VKL_MAX(nx, ny)); i++) {
        s = s * 1664525u + 1013904223u;
        f[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
    vkl_ref_quantize((uint32_t)type, f, wq, nw);
    /* matmul: x [M,K], y [M,N]; matmul_t: dy [M,N] in bx, dx [M,K] in by; gemm: A = x [M,K], B = W^T, C [M,N]. */
    size_t in_n = is_t ? ny : nx, out_n = is_t ? nx : ny;
    if (vkl_buffer_create(vk, (row_bytes * N + 3) / 4 * 4, VKL_MEM_DEVICE, &bw, &err) ||
        vkl_buffer_create(vk, in_n * 4, VKL_MEM_DEVICE, &bx, &err) ||
        vkl_buffer_create(vk, out_n * 4, VKL_MEM_DEVICE, &by, &err) ||
        vkl_buffer_upload(vk, &bw, 0, wq, row_bytes * N, &err) || vkl_buffer_upload(vk, &bx, 0, f, in_n * 4, &err))
        goto done;
    ms = calloc(reps, sizeof(double));
    if (!ms) goto done;
    for (unsigned long r = 0; r <= reps; r++) {
        if (vkl_cmd_begin(vk, &err)) goto done;
        vkl_cmd_timestamp(vk, 0);
        vkl_status st;
        if (is_gemm) {
            uint32_t m = (uint32_t)M, n = (uint32_t)N, k = (uint32_t)K;
            vkl_gemm_shape gs = {m, n, k, k, 1, 1, k, n, 1.0f, 0.0f};
            if (!strcmp(layout, "nn")) gs.b_rs = n, gs.b_cs = 1;
            if (!strcmp(layout, "tn")) gs.a_rs = 1, gs.a_cs = m, gs.b_rs = n, gs.b_cs = 1;
            st = vkl_op_gemm(vk, &cache, &gs, vkl_tv(&bx, 0), vkl_tv(&bw, 0), vkl_tv(&by, 0), &err);
        } else if (is_t) {
            st = vkl_op_matmul_t(vk, &cache, (uint32_t)type, vkl_tv(&bw, 0), vkl_tv(&bx, 0), vkl_tv(&by, 0),
                                 (uint32_t)M, (uint32_t)N, (uint32_t)K, false, &err);
        } else {
            st = vkl_op_matmul(vk, &cache, (uint32_t)type, vkl_tv(&bw, 0), vkl_tv(&bx, 0), vkl_tv_none(),
                               vkl_tv(&by, 0), (uint32_t)M, (uint32_t)N, (uint32_t)K, false, &err);
        }
        vkl_cmd_timestamp(vk, 1);
        vkl_status st2 = vkl_cmd_submit_wait(vk, &err);
        double ns;
        if (st || st2 || vkl_timestamp_ns(vk, 0, 1, &ns, &err)) goto done;
        if (r) ms[r - 1] = ns / 1e6;
    }
    qsort(ms, reps, sizeof(double), cmp_double);
    double med = ms[reps / 2];
    /* the kernels that actually ran, from the ops' registry (texel falls back to regtile on views it cannot read,
     * gemm picks a tile layout) */
    char var[64];
    vkl_op_variants_of(op, var, sizeof(var));
    const char *tname = vkl_type_traits_get((uint32_t)type)->name;
    double gflops = 2.0 * M * N * K / (med * 1e6);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "op", op);
        cJSON_AddStringToObject(o, "type", tname);
        if (is_gemm) cJSON_AddStringToObject(o, "layout", layout);
        cJSON_AddNumberToObject(o, "M", (double)M);
        cJSON_AddNumberToObject(o, "N", (double)N);
        cJSON_AddNumberToObject(o, "K", (double)K);
        cJSON_AddNumberToObject(o, "reps", (double)reps);
        cJSON_AddStringToObject(o, "variant", var);
        cJSON_AddStringToObject(o, "device", vk->info.name);
        cJSON_AddNumberToObject(o, "median_ms", med);
        cJSON_AddNumberToObject(o, "gflops", gflops);
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) printf("%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        printf("%s %s%s%s M=%lu N=%lu K=%lu variant=%s device=\"%s\": median %.3f ms, %.2f GFLOP/s\n", op, tname,
               is_gemm ? " " : "", is_gemm ? layout : "", M, N, K, var, vk->info.name, med, gflops);
    }
    rc = 0;
done:
    free(ms);
    if (rc) fprintf(stderr, "bench: %s\n", err.msg[0] ? err.msg : "out of memory");
    free(f);
    free(wq);
    vkl_buffer_destroy(vk, &bw);
    vkl_buffer_destroy(vk, &bx);
    vkl_buffer_destroy(vk, &by);
    vkl_op_cache_destroy(vk, &cache);
    vkl_vk_destroy(vk);
    return rc;
}
