#!/usr/bin/env bash
# The main job on a fresh Debian/Ubuntu machine: installs what is missing, builds, writes the default model
# (a small random llama GGUF made by tools/mkmodel.c), then lists the Vulkan devices and describes the model.
# Usage: tools/demo.sh [MODEL.gguf]   (a GGUF of your own instead of the generated one)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vkl_install_packages $VKL_BUILD_PACKAGES
vkl_build
export LP_NUM_THREADS=${LP_NUM_THREADS:-$(nproc)}
demo="$BUILD_DIR/demo"
mkdir -p "$demo"
model=${1:-}
if [ -z "$model" ]; then
    model="$demo/model.gguf"
    "$BUILD_DIR/vklora-mkmodel" "$model" --dim 64 --layers 4 --heads 8 --kv-heads 4 --ff 172 --seed 1
fi
"$BUILD_DIR/vklora" devices
echo
"$BUILD_DIR/vklora" info "$model" --no-tensors
