/* Tests of shaders/dequant.comp through vkl_op_dequantize on the test device: every type against
 * vkl_ref_dequantize on random blocks, chunked and 2D-dispatched runs, recording mode, and refused inputs. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/ops.h"
#include "vklora/quant.h"

static const uint32_t types[] = {VKL_TYPE_F32,  VKL_TYPE_F16,  VKL_TYPE_BF16, VKL_TYPE_Q8_0,
                                 VKL_TYPE_Q4_0, VKL_TYPE_Q4_K, VKL_TYPE_Q5_K, VKL_TYPE_Q6_K};

static uint16_t finite_half(void) {
    uint16_t h = (uint16_t)t_rng_u32();
    return (h & 0x7c00) == 0x7c00 ? (uint16_t)(h & 0xbfff) : h; /* exponent 31 (inf/NaN) -> 15 */
}

/* Random bytes with finite fp16/bf16 fields (subnormal halves included) and finite f32 values. */
static void random_blocks(uint32_t type, uint8_t *b, size_t nblocks) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    for (size_t i = 0; i < nblocks * t->type_size; i++) b[i] = (uint8_t)t_rng_u32();
    for (size_t i = 0; i < nblocks; i++) {
        uint8_t *p = b + i * t->type_size;
        uint16_t h;
        switch (type) {
        case VKL_TYPE_F32: {
            float f = t_rng_uniform(-1.f, 1.f) * ldexpf(1.f, (int)(t_rng_u32() % 60) - 30);
            memcpy(p, &f, 4);
            break;
        }
        case VKL_TYPE_BF16:
            h = (uint16_t)t_rng_u32();
            if ((h & 0x7f80) == 0x7f80) h &= 0xbfff;
            memcpy(p, &h, 2);
            break;
        case VKL_TYPE_F16:
        case VKL_TYPE_Q8_0:
        case VKL_TYPE_Q4_0: h = finite_half(), memcpy(p, &h, 2); break;
        case VKL_TYPE_Q4_K:
        case VKL_TYPE_Q5_K:
            h = finite_half(), memcpy(p, &h, 2);
            h = finite_half(), memcpy(p + 2, &h, 2);
            break;
        case VKL_TYPE_Q6_K: h = finite_half(), memcpy(p + 208, &h, 2); break;
        }
    }
}

/* Bitwise equality is expected (the shader forbids fma contraction); anything else must still be within fp32
 * rounding. Reports the first difference. */
static int compare(const char *what, const vkl_type_traits *t, const float *got, const float *want, size_t n) {
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &got[i], 4);
        memcpy(&b, &want[i], 4);
        if (a != b && !diff++) first = i;
    }
    if (!diff) return 0;
    double rel = t_max_rel_err(got, want, n);
    fprintf(stderr, "    %s %s: %zu of %zu values not bitwise equal, first at %zu: got %a want %a; max rel %.3g\n",
            what, t->name, diff, n, first, got[first], want[first], rel);
    T_ASSERT(rel <= 1e-6, "%s %s: max relative error %.3g", what, t->name, rel);
    return 0;
}

typedef struct {
    uint64_t src_offset, dst_offset, max_chunk_bytes;
    uint32_t max_wg_x; /* 0: the device's; else pretend maxComputeWorkGroupCount[0] is this (forces 2D grids) */
    bool recording;
} run_opts;

/* Upload random blocks of `type`, dequantize on the device and compare with the reference. */
static int run_type(uint32_t type, size_t nblocks, const run_opts *o, const char *what) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    const vkl_type_traits *t = vkl_type_traits_get(type);
    size_t n = nblocks * t->block_size, bytes = nblocks * t->type_size;
    uint8_t *blocks = malloc(bytes);
    float *want = malloc(n * 4), *got = malloc(n * 4);
    random_blocks(type, blocks, nblocks);
    T_ASSERT(vkl_ref_dequantize(type, blocks, want, n), "reference %s", t->name);

    vkl_err err = {0};
    vkl_op_cache cache = {0};
    vkl_buffer src, dst;
    int rc = 1;
    /* the source ends mid-word for odd counts of 18/34/210-byte blocks: the op needs it padded to a word */
    T_ASSERT(vkl_buffer_create(vk, o->src_offset + (bytes + 3) / 4 * 4, VKL_MEM_DEVICE, &src, &err) == VKL_OK, "%s",
             err.msg);
    if (vkl_buffer_create(vk, o->dst_offset + n * 4 + 64, VKL_MEM_DEVICE, &dst, &err)) {
        vkl_buffer_destroy(vk, &src);
        T_FAIL("%s", err.msg);
    }
    uint32_t saved_wg_x = vk->info.max_workgroup_count[0];
    if (vkl_buffer_upload(vk, &src, o->src_offset, blocks, bytes, &err)) goto done;
    /* sentinel after the output: nothing may be written past n values */
    if (vkl_buffer_fill(vk, &dst, 0, dst.size, 0x7fc01234u, &err)) goto done;
    if (o->max_wg_x) vk->info.max_workgroup_count[0] = o->max_wg_x;
    if (o->recording) {
        /* two half-size dequantizes recorded into one submission */
        size_t half = nblocks / 2 & ~(size_t)3; /* keeps the second source offset a multiple of 4 */
        if (vkl_cmd_begin(vk, &err)) goto done;
        vkl_status st = vkl_op_dequantize(vk, &cache, type, &src, o->src_offset, &dst, o->dst_offset,
                                          half * t->block_size, o->max_chunk_bytes, &err);
        if (!st)
            st = vkl_op_dequantize(vk, &cache, type, &src, o->src_offset + half * t->type_size, &dst,
                                   o->dst_offset + half * t->block_size * 4, (nblocks - half) * t->block_size,
                                   o->max_chunk_bytes, &err);
        vkl_status st2 = vkl_cmd_submit_wait(vk, &err);
        if (st || st2) goto done;
    } else if (vkl_op_dequantize(vk, &cache, type, &src, o->src_offset, &dst, o->dst_offset, n, o->max_chunk_bytes,
                                 &err)) {
        goto done;
    }
    vk->info.max_workgroup_count[0] = saved_wg_x;
    if (vkl_buffer_download(vk, &dst, o->dst_offset, got, n * 4, &err)) goto done;
    uint32_t tail[16];
    if (vkl_buffer_download(vk, &dst, o->dst_offset + n * 4, tail, sizeof(tail), &err)) goto done;
    rc = 0;
    for (int i = 0; i < 16; i++)
        if (tail[i] != 0x7fc01234u) {
            fprintf(stderr, "    %s %s: word %d after the output was overwritten\n", what, t->name, i);
            rc = 1;
        }
    if (!rc) rc = compare(what, t, got, want, n);
done:
    vk->info.max_workgroup_count[0] = saved_wg_x;
    if (err.msg[0]) fprintf(stderr, "    %s %s: %s\n", what, t->name, err.msg);
    vkl_op_cache_destroy(vk, &cache);
    vkl_buffer_destroy(vk, &src);
    vkl_buffer_destroy(vk, &dst);
    free(blocks), free(want), free(got);
    return rc;
}

/* 37 blocks of each quantized type, 4099 values of the scalar types (not a multiple of 4: the tail path). */
static size_t odd_count(uint32_t type) { return vkl_type_traits_get(type)->block_size == 1 ? 4099 : 37; }

static int test_all_types(void) {
    t_rng_seed(101);
    run_opts o = {0};
    for (size_t i = 0; i < VKL_ARRAY_LEN(types); i++)
        if (run_type(types[i], odd_count(types[i]), &o, "plain")) return 1;
    return 0;
}

static int test_offsets(void) {
    t_rng_seed(102);
    run_opts o = {.src_offset = 12, .dst_offset = 20}; /* multiples of 4, not of the binding alignment */
    for (size_t i = 0; i < VKL_ARRAY_LEN(types); i++)
        if (run_type(types[i], odd_count(types[i]), &o, "offsets")) return 1;
    return 0;
}

/* A 4 KiB binding limit splits every type into several chunks; with a source offset the chunks of 18/34/210-byte
 * blocks start at unaligned bytes, which the push constant's byte offset absorbs. */
static int test_chunked(void) {
    t_rng_seed(103);
    run_opts o = {.src_offset = 36, .dst_offset = 4, .max_chunk_bytes = 4096};
    for (size_t i = 0; i < VKL_ARRAY_LEN(types); i++)
        if (run_type(types[i], odd_count(types[i]), &o, "chunked")) return 1;
    return 0;
}

/* Pretend the device allows only 3 workgroups in x, so every dispatch is a 2D grid with a ragged last row. */
static int test_2d_grid(void) {
    t_rng_seed(104);
    run_opts o = {.max_wg_x = 3};
    for (size_t i = 0; i < VKL_ARRAY_LEN(types); i++)
        if (run_type(types[i], odd_count(types[i]), &o, "2d-grid")) return 1;
    return 0;
}

static int test_recording(void) {
    t_rng_seed(105);
    run_opts o = {.recording = true, .max_chunk_bytes = 8192};
    for (size_t i = 0; i < VKL_ARRAY_LEN(types); i++)
        if (run_type(types[i], odd_count(types[i]), &o, "recording")) return 1;
    return 0;
}

/* The shader variant each type names must exist in the embedded SPIR-V. */
static int test_shader_names(void) {
    for (size_t i = 0; i < VKL_ARRAY_LEN(types); i++) {
        const char *name = vkl_dequant_shader_name(types[i]);
        T_ASSERT(name && vkl_spirv_find(name), "no embedded shader for type %u", types[i]);
    }
    T_ASSERT(!vkl_dequant_shader_name(VKL_TYPE_Q2_K) && !vkl_dequant_shader_name(1000), "unsupported types");
    return 0;
}

static int test_refused(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_err err = {0};
    vkl_op_cache cache = {0};
    vkl_buffer src, dst;
    T_ASSERT(vkl_buffer_create(vk, 1024, VKL_MEM_DEVICE, &src, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_buffer_create(vk, 4096, VKL_MEM_DEVICE, &dst, &err) == VKL_OK, "%s", err.msg);
    struct {
        uint32_t type;
        uint64_t so, doff, n, chunk;
        const char *msg;
    } cases[] = {
        {VKL_TYPE_Q2_K, 0, 0, 256, 0, "no dequantize shader"},
        {VKL_TYPE_Q4_0, 0, 0, 33, 0, "not a multiple"},
        {VKL_TYPE_Q4_0, 2, 0, 32, 0, "multiples of 4"},
        {VKL_TYPE_Q4_0, 0, 6, 32, 0, "multiples of 4"},
        {VKL_TYPE_Q8_0, 0, 0, 32 * 31, 0, "out of bounds"},       /* 31 * 34 = 1054 source bytes > 1024 */
        {VKL_TYPE_F32, 0, 0, 1025, 0, "out of bounds"},           /* 4100 output bytes > 4096 */
        {VKL_TYPE_Q4_0, 1008, 0, 32, 0, "out of bounds"},         /* 18 bytes padded to 20 past byte 1008 */
        {VKL_TYPE_F32, 0, 0, 1ull << 62, 0, "out of bounds"},     /* sizes overflow */
        {VKL_TYPE_Q6_K, 0, 0, 256, 300, "cannot hold one"},       /* a limit smaller than one block */
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        vkl_err_clear(&err);
        vkl_status st = vkl_op_dequantize(vk, &cache, cases[i].type, &src, cases[i].so, &dst, cases[i].doff,
                                          cases[i].n, cases[i].chunk, &err);
        T_ASSERT(st == VKL_ERR_INPUT, "case %zu accepted (status %d)", i, st);
        T_ASSERT(strstr(err.msg, cases[i].msg), "case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
        T_ASSERT(!vk->recording, "case %zu left the command buffer recording", i);
    }
    /* zero elements is a no-op */
    vkl_err_clear(&err);
    T_ASSERT(vkl_op_dequantize(vk, &cache, VKL_TYPE_Q4_K, &src, 0, &dst, 0, 0, 0, &err) == VKL_OK, "%s", err.msg);
    vkl_op_cache_destroy(vk, &cache);
    vkl_buffer_destroy(vk, &src);
    vkl_buffer_destroy(vk, &dst);
    return 0;
}

const vkl_test_case vkl_tests_dequant_vk[] = {
    {"dequant_vk/shader_names", test_shader_names},
    {"dequant_vk/all_types", test_all_types},
    {"dequant_vk/offsets", test_offsets},
    {"dequant_vk/chunked", test_chunked},
    {"dequant_vk/2d_grid", test_2d_grid},
    {"dequant_vk/recording", test_recording},
    {"dequant_vk/refused", test_refused},
    {NULL, NULL},
};
