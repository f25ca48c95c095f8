#!/usr/bin/env bash
# The GPU check of issue 10, for a machine with an NVIDIA GPU: builds (release), runs the test suite on the GPU,
# then times LoRA training steps of vklora and of PyTorch + PEFT on the same GPU and the same shape, and prints
# tokens/s, peak memory and the ratios next to the goal (vklora at least 2x PEFT's tokens/s at no more than 0.4x its
# memory).
#
#   tools/gpu-check.sh                 everything (build, suite, bench); the last lines are the comparison
#   tools/gpu-check.sh --bench-only    build and bench, no test suite
#   tools/gpu-check.sh --dry-run       the whole script on any machine (tests the script): no suite, the default
#                                      Vulkan device (lavapipe), a 2-layer width-256 model of the same family, 1 x 32
#                                      tokens, PEFT on the CPU (or bench_peft.py's labelled fallback); figures mean nothing
#   CTX=1024 BATCH=4 CKPT="false true" STEPS=10 tools/gpu-check.sh    (defaults: 512, 1, "false", 10)
#
# Assumes only: an NVIDIA GPU with its driver (nvidia-smi, and its Vulkan ICD for vklora), Debian/Ubuntu (the
# build packages are installed with apt-get like tools/test.sh does) and python3 with torch (CUDA) + peft (which
# brings transformers). It installs no Python package: what is missing is named and that part is not run.
# The model: `vklora-mkmodel --preset llama-3.2-1b` (random weights in Llama-3.2-1B's shapes and vocabulary) in
# F16, quantized by `vklora quantize ... q4_k_m` with llama.cpp's Q4_K_M rules; PEFT trains a bf16 model of the same
# shape (tools/bench_peft.py). CKPT lists vklora's --checkpointing modes to compare; "true" pairs with PEFT's
# gradient checkpointing, "false" and "unsloth" with none. Output and the model go to $OUT_DIR (default
# $BUILD_DIR/gpu-check; BUILD_DIR default build-gpu).
set -uo pipefail
BUILD_DIR=${BUILD_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build-gpu}
source "$(dirname "$0")/lib.sh"

run_suite=1 dry=0
for a in "$@"; do
    case "$a" in
    --bench-only) run_suite=0 ;;
    --dry-run) run_suite=0 dry=1 ;;
    -h | --help)
        sed -n '2,/^[^#]/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "gpu-check: unknown argument '$a' (see --help)" >&2
        exit 2
        ;;
    esac
done
PY=${PYTHON:-python3}
if [ $dry = 1 ]; then
    CTX=32 BATCH=1 STEPS=2 WARMUP=1 CKPT=${CKPT:-false} OUT_DIR=${OUT_DIR:-$BUILD_DIR/gpu-check-dry}
    SHAPE=(--dim 256 --layers 2 --heads 4 --kv-heads 2 --ff 512 --vocab 1024) TORCH_DEV=cpu
else
    CTX=${CTX:-512} BATCH=${BATCH:-1} STEPS=${STEPS:-10} WARMUP=${WARMUP:-3} CKPT=${CKPT:-false}
    OUT_DIR=${OUT_DIR:-$BUILD_DIR/gpu-check} SHAPE=() TORCH_DEV=cuda
fi
problems=()
note() { echo "gpu-check: $*" >&2; }

# ---- what is there ----
if command -v nvidia-smi >/dev/null && gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null) && [ -n "$gpu" ]; then
    note "NVIDIA GPU: $gpu"
else
    note "MISSING: no NVIDIA GPU or driver (nvidia-smi is absent or lists nothing); this check is for a machine with one"
    [ $dry = 1 ] || problems+=("no NVIDIA GPU/driver")
fi
have_torch=0 have_peft=0
if ! command -v "$PY" >/dev/null; then
    note "MISSING: $PY (set PYTHON=... to the interpreter that has torch and peft)"
elif ! tv=$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' 2>&1); then
    note "MISSING: PyTorch for $PY ($(echo "$tv" | tail -n 1)); the PEFT comparison is skipped"
else
    note "torch $tv (version, CUDA, cuda available)"
    case "$tv" in
    *True) have_torch=1 ;;
    *) if [ $dry = 1 ]; then have_torch=1; else
        note "MISSING: this torch sees no CUDA device (a CPU-only build?); the PEFT comparison is skipped"; fi ;;
    esac
    if pv=$("$PY" -c 'import peft, transformers; print(peft.__version__, transformers.__version__)' 2>&1); then
        note "peft, transformers $pv"
        have_peft=1
    elif [ $dry = 1 ]; then
        note "peft/transformers missing: the dry run uses bench_peft.py's plain-torch fallback (NOT PEFT)"
        have_peft=1
    else
        note "MISSING: peft/transformers for $PY ($(echo "$pv" | tail -n 1)): pip install peft; the PEFT comparison is skipped"
    fi
fi
[ $have_torch = 1 ] && [ $have_peft = 1 ] || problems+=("no PEFT comparison (torch with CUDA + peft missing)")

# ---- build ----
vkl_install_packages $VKL_BUILD_PACKAGES $VKL_TEST_PACKAGES || { note "package installation failed"; exit 1; }
vkl_build || { note "build failed"; exit 1; }
VKLORA="$BUILD_DIR/vklora"

# ---- the Vulkan device: the GPU must be the one vklora and the tests pick ----
devjson=$("$VKLORA" devices --json) || { note "vklora devices failed"; exit 1; }
"$VKLORA" devices
gpu_index=$(echo "$devjson" | "$PY" -c '
import json, sys
d = [x for x in json.load(sys.stdin)["devices"] if x["vendor_id"].lower() == "0x10de"]
print(d[0]["index"] if d else "")' 2>/dev/null || true)
if [ -z "$gpu_index" ] && [ $dry = 1 ]; then
    note "dry run: no NVIDIA Vulkan device; vklora uses its default device"
elif [ -z "$gpu_index" ]; then
    note "MISSING: vklora sees no NVIDIA Vulkan device (the driver's Vulkan ICD, e.g. nvidia_icd.json from" \
        "libnvidia-gl / nvidia-vulkan-icd, is not installed?); the suite and the bench would run on lavapipe: stop"
    exit 1
fi
first=$(echo "$devjson" | "$PY" -c 'import json, sys; d = json.load(sys.stdin)["devices"][0]; print(d["index"], d["name"], d["type"])')
note "Vulkan device 0: $first; NVIDIA device: ${gpu_index:-none} (used for the suite and the bench)"
if [ -n "$gpu_index" ]; then export VKLORA_DEVICE=$gpu_index VKL_TEST_DEVICE=$gpu_index; fi

# ---- the suite on the GPU ----
suite="not run (--bench-only or --dry-run)"
if [ $run_suite = 1 ]; then
    log=$(mktemp)
    BUILD_DIR=$BUILD_DIR "$VKL_ROOT/tools/test.sh" --host-only 2>&1 | tee "$log"
    suite=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    [ -n "$suite" ] || suite="no count (the suite did not finish)"
    rm -f "$log"
    case "$suite" in *" 0 failed") ;; *) problems+=("suite: $suite") ;; esac
fi

# ---- the model ----
mkdir -p "$OUT_DIR"
f16="$OUT_DIR/llama-3.2-1b.f16.gguf" model="$OUT_DIR/llama-3.2-1b.Q4_K_M.gguf"
if [ ! -f "$model" ]; then
    "$BUILD_DIR/vklora-mkmodel" "$f16" --preset llama-3.2-1b "${SHAPE[@]}" --type f16 >&2 &&
        "$VKLORA" quantize "$f16" "$model.tmp" q4_k_m >&2 && mv "$model.tmp" "$model" && rm -f "$f16" ||
        { note "writing the Q4_K_M model failed"; exit 1; }
fi

# ---- vklora and PEFT, side by side ----
field() {
    "$PY" -c 'import json, sys
v = json.loads(sys.stdin.readline()).get(sys.argv[1], "")
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}
rows=()
for mode in $CKPT; do
    v=$("$VKLORA" bench --model "$model" --train --ctx "$CTX" --batch "$BATCH" --iters "$STEPS" --r 16 \
        --checkpointing "$mode" --json | tee "$OUT_DIR/vklora-$mode.json")
    if [ -z "$v" ]; then
        problems+=("vklora bench --checkpointing $mode failed")
        continue
    fi
    v_tps=$(echo "$v" | field tokens_per_second) v_mem=$(echo "$v" | field peak_device_bytes)
    note "vklora kernels: $(echo "$v" | field kernels)"
    p_tps="" p_mem="" p_impl=""
    if [ $have_torch = 1 ] && [ $have_peft = 1 ]; then
        gc=()
        [ "$mode" = true ] && gc=(--gradient-checkpointing)
        if p=$("$PY" "$VKL_ROOT/tools/bench_peft.py" --device $TORCH_DEV --preset llama-3.2-1b "${SHAPE[@]}" \
            --ctx "$CTX" --batch "$BATCH" --warmup "$WARMUP" --steps "$STEPS" --r 16 "${gc[@]}" --json | tee "$OUT_DIR/peft-$mode.json") && [ -n "$p" ]; then
            p_tps=$(echo "$p" | field tokens_per_second) p_mem=$(echo "$p" | field peak_memory_bytes)
            p_impl=$(echo "$p" | field impl)
            note "PyTorch side: $(echo "$p" | field impl) $(echo "$p" | field dtype), peak from $(echo "$p" | field peak_memory_kind)"
        else
            problems+=("bench_peft.py (checkpointing $mode) failed")
        fi
    fi
    [ "$p_impl" = peft ] && p_impl=PEFT || p_impl=NOT-PEFT-fallback
    rows+=("$mode $v_tps $v_mem ${p_tps:--} ${p_mem:--} $p_impl")
done

echo
[ $dry = 1 ] && echo "DRY RUN (tests the script; vklora on $(echo "$devjson" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["devices"][0]["name"])'), PyTorch on the CPU, a 2-layer width-256 model): the figures mean nothing"
echo "GPU check: ${gpu:-no NVIDIA GPU}; Llama-3.2-1B shape, vklora Q4_K_M vs PEFT bf16, LoRA r 16 on all seven" \
    "projections, $BATCH x $CTX tokens, median of $STEPS steps"
echo "suite on the GPU: $suite"
for r in "${rows[@]}"; do
    # shellcheck disable=SC2086
    set -- $r
    "$PY" - "$@" <<'EOF'
import sys
mode, vt, vm, pt, pm, impl = sys.argv[1:7]
vt, vm = float(vt), float(vm)
line = f"checkpointing {mode:7s} vklora {vt:9.1f} tokens/s {vm / 2**20:8.0f} MiB peak"
if pt != "-":
    pt, pm = float(pt), float(pm)
    s, m = vt / pt, vm / pm
    goal = "meets" if s >= 2 and m <= 0.4 else "misses"
    line += (f" | {impl} {pt:9.1f} tokens/s {pm / 2**20:8.0f} MiB peak | speed x{s:.2f}, memory x{m:.2f}"
             f" ({goal} the goal: speed >= 2, memory <= 0.4)")
else:
    line += " | PEFT not run"
print(line)
EOF
done
if [ ${#problems[@]} -gt 0 ]; then
    printf 'gpu-check: INCOMPLETE: %s\n' "${problems[@]}"
    exit 1
fi
echo "gpu-check: complete"
