#!/usr/bin/env bash
# Training-step benchmark at the shapes of the models people fine-tune: writes each `vklora-mkmodel --preset`
# (random weights, real shapes and vocabulary sizes) in a K-quant where its rows allow one, else Q8_0, then runs
# `vklora bench --train --ctx 512` on it. One JSON line per preset on stdout (and in $OUT_DIR/bench-NAME.json).
#   tools/bench_presets.sh [PRESET ...]   (default: all; env CTX=512 ITERS=1 CKPT=unsloth OUT_DIR=build/bench-presets)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vkl_build
CTX=${CTX:-512}
ITERS=${ITERS:-1}
OUT_DIR=${OUT_DIR:-$BUILD_DIR/bench-presets}
mkdir -p "$OUT_DIR"
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(qwen2.5-0.5b qwen3-0.6b gemma-3-1b llama-3.2-1b mistral-nemo-like phi-4-mini)
for p in "${presets[@]}"; do
    case $p in
        qwen2.5-0.5b|gemma-3-1b) type=q8_0 ;; # widths 896 and 1152 are not multiples of Q4_K's 256
        *) type=q4_k ;;
    esac
    model="$OUT_DIR/$p.$type.gguf"
    [ -f "$model" ] || "$BUILD_DIR/vklora-mkmodel" "$model" --preset "$p" --type "$type" >&2
    "$BUILD_DIR/vklora" bench --model "$model" --train --ctx "$CTX" --iters "$ITERS" --checkpointing "${CKPT:-unsloth}" --json | tee "$OUT_DIR/bench-$p.json"
done
