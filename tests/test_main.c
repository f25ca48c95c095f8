/* Test runner: runs every suite's cases (or those whose name contains argv[1]), fails a case that makes the
 * Vulkan validation layer report anything or leaves device memory allocated on the shared context, counts a failure
 * when destroying that context makes the layer report objects left alive, and ends with the line
 * "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "vk/vk.h"

extern const vkl_test_case vkl_tests_gguf[];
extern const vkl_test_case vkl_tests_gguf_malformed[];
extern const vkl_test_case vkl_tests_quant[];
extern const vkl_test_case vkl_tests_vk[];
extern const vkl_test_case vkl_tests_dequant_vk[];
extern const vkl_test_case vkl_tests_config[];
extern const vkl_test_case vkl_tests_data[];
extern const vkl_test_case vkl_tests_cli[];
extern const vkl_test_case vkl_tests_optim[];
extern const vkl_test_case vkl_tests_rng[];
extern const vkl_test_case vkl_tests_dropout[];
extern const vkl_test_case vkl_tests_grad_fd[];
extern const vkl_test_case vkl_tests_model[];
extern const vkl_test_case vkl_tests_hf[];
extern const vkl_test_case vkl_tests_knobs[];
extern const vkl_test_case vkl_tests_train[];
extern const vkl_test_case vkl_tests_arch[];
extern const vkl_test_case vkl_tests_tokenizer[];
extern const vkl_test_case vkl_tests_tokenizer_hf[];
extern const vkl_test_case vkl_tests_matmul[];
extern const vkl_test_case vkl_tests_nn[];
extern const vkl_test_case vkl_tests_attn_flash[];
extern const vkl_test_case vkl_tests_adapter[];
extern const vkl_test_case vkl_tests_quantize[];
extern const vkl_test_case vkl_tests_loftq[];
extern const vkl_test_case vkl_tests_reliability[];
extern const vkl_test_case vkl_tests_platform[];
extern const vkl_test_case vkl_tests_dp[];
extern const vkl_test_case vkl_tests_split[];

static const vkl_test_case *const suites[] = {
    vkl_tests_gguf, vkl_tests_gguf_malformed, vkl_tests_quant, vkl_tests_vk,
    vkl_tests_dequant_vk, vkl_tests_config, vkl_tests_data, vkl_tests_optim, vkl_tests_rng, vkl_tests_dropout, vkl_tests_grad_fd, vkl_tests_cli, vkl_tests_tokenizer, vkl_tests_tokenizer_hf, vkl_tests_matmul, vkl_tests_nn, vkl_tests_attn_flash,
    vkl_tests_adapter, vkl_tests_loftq, vkl_tests_model, vkl_tests_hf, vkl_tests_knobs, vkl_tests_train, vkl_tests_arch,
    vkl_tests_quantize, vkl_tests_reliability, vkl_tests_platform, vkl_tests_dp, vkl_tests_split,
};

extern struct vkl_vk *t_vk_if_created(void);
extern void t_cleanup(void);

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    if (filter && (!strcmp(filter, "--list"))) {
        for (size_t s = 0; s < VKL_ARRAY_LEN(suites); s++)
            for (const vkl_test_case *t = suites[s]; t->name; t++) printf("%s\n", t->name);
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The suite runs at the device tuning the vklora program chooses (src/vk/vk.h), so that its in-process runs and
     * the vklora processes it starts (which tune themselves) compute alike: several tests compare them bit for bit. */
    if (!vkl_vk_cpu_tune_main(argv)) {
        fprintf(stderr, "vklora-test: could not run again with lavapipe's default vector width\n");
        return 1;
    }
    if (*vkl_vk_cpu_tune_note()) printf("device tuning: %s\n", vkl_vk_cpu_tune_note());
    int passed = 0, failed = 0;
    for (size_t s = 0; s < VKL_ARRAY_LEN(suites); s++) {
        for (const vkl_test_case *t = suites[s]; t->name; t++) {
            if (filter && !strstr(t->name, filter)) continue;
            /* every context counts (the shared one and those a test makes itself, e.g. the trainer's) */
            uint32_t msgs_before = vkl_vk_validation_total();
            const struct vkl_vk *vk0 = t_vk_if_created();
            uint64_t bytes_before = vk0 ? vk0->device_bytes : 0;
            double t0 = now_ms();
            int rc = t->fn();
            double dt = now_ms() - t0;
            uint32_t msgs = vkl_vk_validation_total() - msgs_before;
            const struct vkl_vk *vk1 = t_vk_if_created();
            uint64_t bytes_after = vk1 ? vk1->device_bytes : 0;
            if (rc == 0 && msgs) {
                fprintf(stderr, "    FAIL: %u Vulkan validation message(s) during this test\n", msgs);
                rc = 1;
            }
            if (rc == 0 && bytes_after > bytes_before) {
                fprintf(stderr, "    FAIL: %llu bytes of device memory left allocated on the shared context\n",
                        (unsigned long long)(bytes_after - bytes_before));
                rc = 1;
            }
            if (rc == 0) {
                passed++;
                printf("ok   %-60s %8.1f ms\n", t->name, dt);
            } else {
                failed++;
                printf("FAIL %-60s %8.1f ms\n", t->name, dt);
            }
        }
    }
    uint32_t msgs_before = vkl_vk_validation_total();
    t_cleanup();
    if (vkl_vk_validation_total() > msgs_before) {
        fprintf(stderr, "FAIL: %u Vulkan validation message(s) when the shared context was destroyed (objects a test "
                "left alive)\n", vkl_vk_validation_total() - msgs_before);
        failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed || passed == 0 ? 1 : 0;
}
