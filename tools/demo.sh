#!/usr/bin/env bash
# The main job on a fresh Debian/Ubuntu machine: installs what is missing, builds, writes the default model (a small
# random llama in Q8_0, made by tools/mkmodel.c), fine-tunes a LoRA adapter on data/demo.txt with configs/demo.json
# (eval loss before and after), then generates a sample with the adapter.
# Usage: tools/demo.sh [MODEL.gguf [DATASET]]   (your own GGUF and dataset instead of the defaults)
#        DEMO_PROMPT="..." sets the generation prompt; extra `vklora train` settings go in DEMO_SET="k=v k=v".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vkl_install_packages $VKL_BUILD_PACKAGES
vkl_build
cd "$VKL_ROOT"
export LP_NUM_THREADS=${LP_NUM_THREADS:-$(nproc)}
V="$BUILD_DIR/vklora"
demo="$BUILD_DIR/demo"
mkdir -p "$demo"
model=${1:-}
data=${2:-}
sets=()
if [ -z "$model" ]; then
    model="$demo/model.gguf"
    "$BUILD_DIR/vklora-mkmodel" "$model" --type q8_0 --dim 64 --layers 4 --heads 8 --kv-heads 4 --ff 192 --seed 1
    prompt=${DEMO_PROMPT:-"Tom had a"}
else
    prompt=${DEMO_PROMPT:-"Once upon a time"}
fi
sets+=(--set "model=$model" --set "output_dir=$demo/outputs")
[ -n "$data" ] && sets+=(--set "dataset=$data")
for kv in ${DEMO_SET:-}; do sets+=(--set "$kv"); done

echo "== Vulkan devices"
"$V" devices | grep -E "^device|type|subgroup" || true
echo
echo "== Model"
"$V" info "$model" --no-tensors | head -20
echo
echo "== Fine-tuning (configs/demo.json)"
"$V" train configs/demo.json "${sets[@]}"
echo
echo "== Sample with the adapter (greedy)"
"$V" generate --model "$model" --adapter "$demo/outputs/adapter.gguf" --prompt "$prompt" --temperature 0 --max-tokens 40
echo
echo "adapter: $demo/outputs/adapter.gguf (llama.cpp --lora) and $demo/outputs/adapter_model.safetensors (PEFT)"
