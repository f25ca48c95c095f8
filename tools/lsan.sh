#!/usr/bin/env bash
# The test suite (or the tests whose names contain FILTER) under LeakSanitizer, with clang's standalone LSan runtime
# (libclang-rt-14-dev) in build-lsan (LSAN_BUILD_DIR overrides). Leaks of vklora's own code fail it; those inside the
# Vulkan loader, the validation layer and the driver (lavapipe, LLVM) are suppressed by tools/lsan.supp, so what it
# reports is ours. The CLI tests run the vklora binary of the same build, so its leaks count too.
#   tools/lsan.sh [FILTER]      e.g. tools/lsan.sh gguf     (no filter: the whole suite, long)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vkl_install_packages $VKL_BUILD_PACKAGES $VKL_TEST_PACKAGES $VKL_FUZZ_PACKAGES
LSAN_DIR=${LSAN_BUILD_DIR:-$VKL_ROOT/build-lsan}
if [ ! -f "$LSAN_DIR/build.ninja" ]; then
    CC=clang meson setup "$LSAN_DIR" "$VKL_ROOT" --buildtype=debugoptimized -Db_sanitize=leak -Db_lundef=false \
        -Dc_args=-fno-omit-frame-pointer >&2
fi
ninja -C "$LSAN_DIR" >&2
export LSAN_OPTIONS="suppressions=$VKL_ROOT/tools/lsan.supp:print_suppressions=0:report_objects=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LP_NUM_THREADS=${LP_NUM_THREADS:-$(nproc)}
export VKLORA_VALIDATION=${VKLORA_VALIDATION:-1}
exec "$LSAN_DIR/vklora-test" "$@"
