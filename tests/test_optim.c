/* Optimizer ops on the device vs their scalar twins: the fixed-order gradient norm (one and several reduction
 * levels, split bindings) and AdamW steps with and without clipping and weight decay. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/optim.h"
#include "ref/optim.h"
#include "vk/vk.h"

static int check_sumsq(vkl_vk *vk, vkl_op_cache *c, uint64_t n) {
    vkl_err err = {0};
    float *x = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++) x[i] = t_rng_uniform(-3, 3);
    vkl_buffer bx, bs, bo;
    T_ASSERT(!vkl_buffer_create(vk, n * 4, VKL_MEM_DEVICE, &bx, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, vkl_op_sumsq_scratch_bytes(vk, n), VKL_MEM_DEVICE, &bs, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, 64, VKL_MEM_DEVICE, &bo, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_upload(vk, &bx, 0, x, n * 4, &err), "%s", err.msg);
    T_ASSERT(!vkl_op_sumsq(vk, c, vkl_tv(&bx, 0), n, &bs, vkl_tv(&bo, VKL_ADAMW_SUMSQ_OFFSET), &err), "%s", err.msg);
    float got[2];
    T_ASSERT(!vkl_buffer_download(vk, &bo, VKL_ADAMW_SUMSQ_OFFSET, got, 4, &err), "%s", err.msg);
    double want = vkl_ref_sumsq(x, n);
    /* fp32 partial sums of positive terms: relative error <= ~log2(n) * 2^-24 per level */
    T_ASSERT(fabs(got[0] - want) <= 1e-5 * want, "n=%llu: %.9g vs %.9g", (unsigned long long)n, got[0], want);
    /* reproducible: the same bits again */
    T_ASSERT(!vkl_op_sumsq(vk, c, vkl_tv(&bx, 0), n, &bs, vkl_tv(&bo, VKL_ADAMW_SUMSQ_OFFSET), &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_download(vk, &bo, VKL_ADAMW_SUMSQ_OFFSET, &got[1], 4, &err), "%s", err.msg);
    T_ASSERT(!memcmp(&got[0], &got[1], 4), "not reproducible");
    vkl_buffer_destroy(vk, &bx);
    vkl_buffer_destroy(vk, &bs);
    vkl_buffer_destroy(vk, &bo);
    free(x);
    return 0;
}

static int test_sumsq(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_op_cache c = {0};
    t_rng_seed(11);
    uint64_t sizes[] = {1, 7, 1024, 1025, 70001, 1300007};
    int rc = 0;
    for (size_t i = 0; i < VKL_ARRAY_LEN(sizes) && !rc; i++) rc = check_sumsq(vk, &c, sizes[i]);
    /* split input bindings */
    setenv("VKLORA_MAX_BIND_BYTES", "65536", 1);
    if (!rc) rc = check_sumsq(vk, &c, 100003);
    unsetenv("VKLORA_MAX_BIND_BYTES");
    vkl_op_cache_destroy(vk, &c);
    return rc;
}

static int run_adamw(bool clip, bool split) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    vkl_op_cache c = {0};
    const uint64_t n = 50021;
    float *p = malloc(n * 4), *g = malloc(n * 4), *m1 = calloc(n, 4), *m2 = calloc(n, 4);
    float *got = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++) p[i] = t_rng_uniform(-1, 1);
    vkl_buffer bp, bg, b1, b2, bh, bs;
    T_ASSERT(!vkl_buffer_create(vk, n * 4, VKL_MEM_DEVICE, &bp, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, n * 4, VKL_MEM_DEVICE, &bg, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, n * 4, VKL_MEM_DEVICE, &b1, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, n * 4, VKL_MEM_DEVICE, &b2, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, sizeof(vkl_adamw_hyper), VKL_MEM_DEVICE, &bh, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, vkl_op_sumsq_scratch_bytes(vk, n), VKL_MEM_DEVICE, &bs, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_upload(vk, &bp, 0, p, n * 4, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_fill(vk, &b1, 0, n * 4, 0, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_fill(vk, &b2, 0, n * 4, 0, &err), "%s", err.msg);
    if (split) setenv("VKLORA_MAX_BIND_BYTES", "32768", 1);
    for (int step = 1; step <= 4; step++) {
        for (uint64_t i = 0; i < n; i++) g[i] = t_rng_uniform(-0.5f, 0.5f) * (float)step;
        T_ASSERT(!vkl_buffer_upload(vk, &bg, 0, g, n * 4, &err), "%s", err.msg);
        vkl_adamw_hyper h = {.lr = 2e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                             .bc1 = (float)(1 - pow(0.9, step)), .bc2_sqrt = (float)sqrt(1 - pow(0.999, step)),
                             .max_norm = clip ? 1.0f : 0.0f};
        T_ASSERT(!vkl_buffer_upload(vk, &bh, 0, &h, sizeof(h), &err), "%s", err.msg);
        T_ASSERT(!vkl_cmd_begin(vk, &err), "%s", err.msg);
        T_ASSERT(!vkl_op_sumsq(vk, &c, vkl_tv(&bg, 0), n, &bs, vkl_tv(&bh, VKL_ADAMW_SUMSQ_OFFSET), &err), "%s",
                 err.msg);
        T_ASSERT(!vkl_op_adamw(vk, &c, vkl_tv(&bp, 0), vkl_tv(&bg, 0), vkl_tv(&b1, 0), vkl_tv(&b2, 0),
                               vkl_tv(&bh, 0), n, &err),
                 "%s", err.msg);
        T_ASSERT(!vkl_cmd_submit_wait(vk, &err), "%s", err.msg);
        h.sumsq = (float)vkl_ref_sumsq(g, n);
        vkl_ref_adamw(p, g, m1, m2, &h, n);
        T_ASSERT(!vkl_buffer_download(vk, &bp, 0, got, n * 4, &err), "%s", err.msg);
        double e = t_max_rel_err(got, p, n);
        /* fp32 update of O(1) parameters by steps of ~lr: errors ~1e-7 relative to the largest parameter */
        T_ASSERT(e < 2e-6, "step %d (clip %d): max rel err %.3g", step, clip, e);
        if (clip) {
            float back;
            T_ASSERT(!vkl_buffer_download(vk, &bh, VKL_ADAMW_SUMSQ_OFFSET, &back, 4, &err), "%s", err.msg);
            T_ASSERT(sqrt(back) > 1.0, "the test must actually clip (norm %g)", sqrt(back));
        }
    }
    unsetenv("VKLORA_MAX_BIND_BYTES");
    vkl_buffer *bs_[] = {&bp, &bg, &b1, &b2, &bh, &bs};
    for (size_t i = 0; i < VKL_ARRAY_LEN(bs_); i++) vkl_buffer_destroy(vk, bs_[i]);
    vkl_op_cache_destroy(vk, &c);
    free(p), free(g), free(m1), free(m2), free(got);
    return 0;
}

static int test_adamw(void) { return run_adamw(false, false); }
static int test_adamw_clip(void) { return run_adamw(true, false); }
static int test_adamw_split(void) { return run_adamw(true, true); }

/* The reference itself against a hand-computed first step: with zero moments, Adam's first update is
 * lr * g / (|g| + eps') i.e. about lr * sign(g), after decay p * (1 - lr * wd). */
static int test_adamw_ref_first_step(void) {
    float p[3] = {0.5f, -0.25f, 1.0f}, g[3] = {0.2f, -3.0f, 1e-3f}, m1[3] = {0}, m2[3] = {0};
    vkl_adamw_hyper h = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f,
                         .bc1 = 0.1f, .bc2_sqrt = (float)sqrt(0.001), .max_norm = 0};
    vkl_ref_adamw(p, g, m1, m2, &h, 3);
    double want[3] = {0.5 * 0.95 - 0.1, -0.25 * 0.95 + 0.1, 1.0 * 0.95 - 0.1};
    for (int i = 0; i < 3; i++) T_ASSERT(fabs(p[i] - want[i]) < 1e-5, "p[%d] = %.7f, expected %.7f", i, p[i], want[i]);
    return 0;
}

const vkl_test_case vkl_tests_optim[] = {
    {"optim/sumsq", test_sumsq},
    {"optim/adamw_ref_first_step", test_adamw_ref_first_step},
    {"optim/adamw", test_adamw},
    {"optim/adamw_clip", test_adamw_clip},
    {"optim/adamw_split_bindings", test_adamw_split},
    {NULL, NULL},
};
