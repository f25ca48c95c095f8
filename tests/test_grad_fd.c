/* Finite-difference checks of the scalar twins whose backward is a separate op: the input gradient through a frozen
 * (quantized) weight, ref matmul_t, is the derivative of ref matmul for every weight type. (The device kernels are
 * compared with these twins in tests/test_matmul.c; the LoRA and transformer-op backwards have their own checks.) */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ref/matmul.h"
#include "vklora/quant.h"

static int check_type(uint32_t type) {
    const uint32_t M = 3, N = 5, K = 256;
    uint64_t row;
    T_ASSERT(vkl_type_row_bytes(type, K, &row), "row bytes");
    float *wf = malloc(N * K * 4), *x = malloc(M * K * 4), *R = malloc(M * N * 4), *y = malloc(M * N * 4);
    float *dx = malloc(M * K * 4);
    void *w = malloc(row * N + 4);
    for (uint32_t i = 0; i < N * K; i++) wf[i] = t_rng_uniform(-1, 1);
    for (uint32_t i = 0; i < M * K; i++) x[i] = t_rng_uniform(-1, 1);
    for (uint32_t i = 0; i < M * N; i++) R[i] = t_rng_uniform(-1, 1);
    T_ASSERT(vkl_ref_quantize(type, wf, w, (uint64_t)N * K), "quantize");
    T_ASSERT(vkl_ref_matmul_t(type, w, R, dx, M, N, K, false), "matmul_t");
    double worst = 0;
    for (int t = 0; t < 12; t++) {
        uint32_t i = t_rng_u32() % (M * K);
        const float h = 1e-2f, orig = x[i];
        double L[2];
        for (int s = 0; s < 2; s++) {
            x[i] = orig + (s ? -h : h);
            T_ASSERT(vkl_ref_matmul(type, w, x, NULL, y, M, N, K, false), "matmul");
            double l = 0;
            for (uint32_t k = 0; k < M * N; k++) l += (double)R[k] * y[k];
            L[s] = l;
        }
        x[i] = orig;
        double fd = (L[0] - L[1]) / (2 * h);
        /* L is linear in x: only the fp32 rounding of y (~1e-7 * sum|R y|) over 2h remains */
        worst = fmax(worst, fabs(fd - dx[i]) / (fabs(fd) + 1e-2));
    }
    T_ASSERT(worst < 2e-3, "%s: matmul_t vs finite differences: rel err %.3g", vkl_type_traits_get(type)->name, worst);
    free(wf), free(x), free(R), free(y), free(dx), free(w);
    return 0;
}

static int test_matmul_t_fd(void) {
    const uint32_t types[] = {VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_BF16, VKL_TYPE_Q8_0,
                              VKL_TYPE_Q4_0, VKL_TYPE_Q4_K, VKL_TYPE_Q5_K, VKL_TYPE_Q6_K};
    t_rng_seed(41);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (check_type(types[i])) return 1;
    return 0;
}

const vkl_test_case vkl_tests_grad_fd[] = {
    {"grad_fd/ref_matmul_t_every_type", test_matmul_t_fd},
    {NULL, NULL},
};
