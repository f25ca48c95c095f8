#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian/Ubuntu machine: installs what is missing, builds, then runs every
# test on the first Vulkan device (lavapipe without a GPU) with the validation layer on.
# Ends with the line "N passed, N failed". Extra arguments filter tests by name substring.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vkl_install_packages $VKL_BUILD_PACKAGES $VKL_TEST_PACKAGES
vkl_build
# lavapipe: use both cores; tests must never depend on a subgroup size, so the default width is kept.
export LP_NUM_THREADS=${LP_NUM_THREADS:-$(nproc)}
# the core checks and synchronization validation: a missing barrier fails the test that records it
export VKLORA_VALIDATION=sync
exec "$BUILD_DIR/vklora-test" "$@"
