/* The counter-based generator: Random123's known-answer vectors for Philox-2x32-10, and the GLSL twin
 * (shaders/common/rng.glsl) bit-identical to the C one on the device. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vk/vk.h"
#include "vklora/rng.h"

static int test_known_answers(void) {
    /* Random123 kat_vectors, philox2x32_10: {ctr}, {key} -> {out} */
    const uint32_t kat[3][5] = {
        {0x00000000u, 0x00000000u, 0x00000000u, 0xff1dae59u, 0x6cd10df2u},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0x2c3f628bu, 0xab4fd7adu},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0xdd7ce038u, 0xf62a4c12u},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t o[2];
        vkl_philox2x32(kat[i][2], kat[i][0], kat[i][1], o);
        T_ASSERT(o[0] == kat[i][3] && o[1] == kat[i][4], "vector %d: %08x %08x", i, o[0], o[1]);
    }
    /* uniforms are in [0, 1) and look uniform */
    double sum = 0;
    for (uint32_t i = 0; i < 100000; i++) {
        float u = vkl_rng_uniform(vkl_rng_key(3407, 1), i);
        T_ASSERT(u >= 0 && u < 1, "range");
        sum += u;
    }
    T_ASSERT(sum / 100000 > 0.495 && sum / 100000 < 0.505, "mean %g", sum / 100000);
    T_ASSERT(vkl_rng_key(1, 2) != vkl_rng_key(2, 1) && vkl_rng_key(1, 2) != vkl_rng_key(1, 3), "keys differ");
    return 0;
}

static int test_glsl_twin(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    const uint32_t n = 1000, base = 0xfffffe00u; /* crosses the 32-bit counter's top */
    struct {
        uint32_t key, base, n, pad;
    } pc = {vkl_rng_key(42, 7), base, n, 0};
    vkl_pipeline_desc d = {.shader = "rng_test", .n_bindings = 1, .bindings = {VKL_BIND_STORAGE},
                           .push_size = sizeof(pc), .n_spec = 1, .spec = {64}};
    vkl_pipeline p;
    T_ASSERT(!vkl_pipeline_create(vk, &d, &p, &err), "%s", err.msg);
    vkl_buffer b;
    T_ASSERT(!vkl_buffer_create(vk, n * 12, VKL_MEM_DEVICE, &b, &err), "%s", err.msg);
    vkl_binding bind = {&b, 0, 0, VK_FORMAT_UNDEFINED};
    T_ASSERT(!vkl_cmd_begin(vk, &err), "%s", err.msg);
    T_ASSERT(!vkl_cmd_dispatch(vk, &p, &bind, 1, &pc, sizeof(pc), (n + 63) / 64, 1, 1, &err), "%s", err.msg);
    T_ASSERT(!vkl_cmd_submit_wait(vk, &err), "%s", err.msg);
    uint32_t *out = malloc(n * 12);
    T_ASSERT(!vkl_buffer_download(vk, &b, 0, out, n * 12, &err), "%s", err.msg);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t o[2];
        vkl_philox2x32(pc.key, base + i, 0, o);
        float u = vkl_rng_uniform(pc.key, (uint64_t)(uint32_t)(base + i));
        uint32_t ub;
        memcpy(&ub, &u, 4);
        T_ASSERT(out[3 * i] == o[0] && out[3 * i + 1] == o[1] && out[3 * i + 2] == ub, "index %u differs", i);
    }
    free(out);
    vkl_buffer_destroy(vk, &b);
    vkl_pipeline_destroy(vk, &p);
    return 0;
}

const vkl_test_case vkl_tests_rng[] = {
    {"rng/philox_known_answers", test_known_answers},
    {"rng/glsl_twin_on_device", test_glsl_twin},
    {NULL, NULL},
};
