#!/usr/bin/env bash
# vklora against PyTorch on this machine's CPU (issue 13's yardstick): one after the other, the same LoRA training
# step (rank 16 on all seven projections, AdamW, global-norm clipping) of the same random llama shape, at the same
# batch and sequence length: `vklora bench --train` (on the first Vulkan device: lavapipe without a GPU) and
# tools/bench_peft.py on the CPU in fp32 (PEFT when installed, else its plain-torch LoRA, labelled so). Prints both
# rows and the ratio. Speed is measured here, never asserted; run it on an otherwise idle machine.
#
#   tools/bench-vs-torch.sh [--shape small|1b] [--type f32|bf16|f16|q4_k] [--ctx N] [--batch B] [--iters I] [--rounds R]
#                           [--profile]
#
# The two sides alternate R times (default 3): a shared or virtual machine's speed drifts (on the one this was
# written on, by up to 2x within minutes), so each round's ratio compares runs made minutes apart, and the result
# is the median of the rounds' ratios; every round is printed.
#
# small: dim 512, 8 layers, 8 heads / 4 KV heads, FFN 1536; 1b: Llama-3.2-1B's blocks (dim 2048, 16 layers, 32/8
# heads, FFN 8192). Both with mkmodel's 806-token vocabulary, so the head does not dominate. --type converts the
# vklora side (q4_k: the q4_k_m mix; bf16, f16: every matrix); PyTorch stays fp32, as a user of either would run it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
shape=small type=f32 ctx=512 batch=4 iters=3 rounds=3 profile=""
while [ $# -gt 0 ]; do
    case $1 in
    --shape) shape=$2; shift ;;
    --type) type=$2; shift ;;
    --ctx) ctx=$2; shift ;;
    --batch) batch=$2; shift ;;
    --iters) iters=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --profile) profile=--profile ;;
    *) echo "bench-vs-torch: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
case $shape in
small) dims=(--dim 512 --layers 8 --heads 8 --kv-heads 4 --ff 1536) ;;
1b) dims=(--dim 2048 --layers 16 --heads 32 --kv-heads 8 --ff 8192) ;;
*) echo "bench-vs-torch: --shape small|1b, not '$shape'" >&2; exit 2 ;;
esac
case $type in f32 | bf16 | f16 | q4_k) ;; *) echo "bench-vs-torch: --type f32|bf16|f16|q4_k, not '$type'" >&2; exit 2 ;; esac
case $rounds in '' | *[!0-9]* | 0) echo "bench-vs-torch: --rounds takes a count >= 1, not '$rounds'" >&2; exit 2 ;; esac
[ -x "$BUILD/vklora" ] || { echo "bench-vs-torch: build first (tools/test.sh or ninja -C $BUILD)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BUILD/vklora-mkmodel" "$work/m.gguf" --arch llama --type f32 "${dims[@]}" --seed 7 >/dev/null
model=$work/m.gguf
if [ "$type" != f32 ]; then
    "$BUILD/vklora" quantize "$work/m.gguf" "$work/q.gguf" "$([ "$type" = q4_k ] && echo q4_k_m || echo "$type")" >/dev/null
    model=$work/q.gguf
fi
export LP_NUM_THREADS=${LP_NUM_THREADS:-$(nproc)}
for ((i = 0; i < rounds; i++)); do
    "$BUILD/vklora" bench --model "$model" --train --ctx "$ctx" --batch "$batch" --iters "$iters" --r 16 $profile \
        --json >"$work/v$i.json"
    /usr/bin/python3 "$ROOT/tools/bench_peft.py" --device cpu --dtype fp32 --preset tiny "${dims[@]}" --vocab 806 \
        --ctx "$ctx" --batch "$batch" --r 16 --warmup 1 --steps "$iters" --json >"$work/p$i.json"
done
WORK="$work" ROUNDS="$rounds" SHAPE="$shape" TYPE="$type" /usr/bin/python3 - <<'PY'
import json, os, statistics
w, n = os.environ["WORK"], int(os.environ["ROUNDS"])
vs = [json.load(open(f"{w}/v{i}.json")) for i in range(n)]
ps = [json.load(open(f"{w}/p{i}.json")) for i in range(n)]
v, p = vs[0], ps[0]
vt = [x["tokens_per_second"] for x in vs]
pt = [x["tokens_per_second"] for x in ps]
ratios = [a / b for a, b in zip(vt, pt)]
print(f"shape {os.environ['SHAPE']}, {v['batch']} x {v['ctx']} tokens, LoRA r 16 on all seven projections")
for i in range(n):
    print(f"  round {i + 1}: vklora {vt[i]:8.1f}  PyTorch {pt[i]:8.1f}  ratio {ratios[i]:.2f}x")
print(f"  vklora {os.environ['TYPE']:5s} on {v['device']}: {statistics.median(vt):8.1f} tokens/s (median), "
      f"peak device {max(x['peak_device_bytes'] for x in vs) / 2**20:.0f} MiB")
print(f"  PyTorch fp32 ({p['impl']}): {statistics.median(pt):8.1f} tokens/s (median), "
      f"peak {max(x['peak_memory_bytes'] for x in ps) / 2**20:.0f} MiB ({p['peak_memory_kind']})")
print(f"  ratio vklora / PyTorch: {statistics.median(ratios):.2f}x (median of {n} rounds, "
      f"{min(ratios):.2f}-{max(ratios):.2f})")
if "profile" in v:
    print("  vklora profile (share of device time, first round):")
    for k in v["profile"]["kernels"][:12]:
        print(f"    {100 * k['share']:5.1f}%  {k['ms_per_iter']:9.2f} ms  {k['name']}")
PY
