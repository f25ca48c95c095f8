/* Placeholder suite; filled in by its owner. */
#include "harness.h"

const vkl_test_case vkl_tests_gguf_malformed[] = {
    {NULL, NULL},
};
