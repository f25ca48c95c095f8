#!/usr/bin/env bash
# The weight products per GGUF type (issue 13's "≥ 100 GFLOP/s in every type"): vklora-bench-matmul's `matmul`
# (y = x·Wᵀ) and `matmul_t` (dx = dy·W) for every type at M x N x K, on the first Vulkan device, with the device
# tuning vklora applies. The machine's own speed is measured before and after (PyTorch fp32 sgemm 2048³ through
# OpenBLAS, /usr/bin/python3, when python3-torch is installed), since a shared or virtual machine's speed drifts (on
# the one this was written on, by up to 2x within minutes): compare figures only with the calibration beside them.
# Speed is measured here, never asserted; run it on an otherwise idle machine.
#
#   tools/bench-types.sh [--types f32,f16,...] [--ops matmul,matmul_t] [--shapes 512x4096x4096,...] [--reps R]
#                        [--json]
#
# Defaults: all eight types, both ops, the issue's shapes 512x4096x4096 and 512x14336x4096 (M x N x K), 3
# repetitions (median). --json prints one object {calibration_gflops: [before, after], device, results: [...]},
# each result vklora-bench-matmul's own --json object.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
types=f32,f16,bf16,q8_0,q4_0,q4_k,q5_k,q6_k ops=matmul,matmul_t shapes=512x4096x4096,512x14336x4096 reps=3 json=0
while [ $# -gt 0 ]; do
    case $1 in
    --types) types=$2; shift ;;
    --ops) ops=$2; shift ;;
    --shapes) shapes=$2; shift ;;
    --reps) reps=$2; shift ;;
    --json) json=1 ;;
    *) echo "bench-types: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
case $reps in '' | *[!0-9]* | 0) echo "bench-types: --reps takes a count >= 1, not '$reps'" >&2; exit 2 ;; esac
for s in ${shapes//,/ }; do
    [[ $s =~ ^[0-9]+x[0-9]+x[0-9]+$ ]] || { echo "bench-types: a shape is MxNxK, not '$s'" >&2; exit 2; }
done
for o in ${ops//,/ }; do
    case $o in matmul | matmul_t) ;; *) echo "bench-types: --ops takes matmul and matmul_t, not '$o'" >&2; exit 2 ;; esac
done
[ -x "$BUILD/vklora-bench-matmul" ] || { echo "bench-types: build first (tools/test.sh or ninja -C $BUILD)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

calibrate() {
    /usr/bin/python3 - 2>/dev/null <<'PY' || echo null
import time
import torch
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
torch.mm(a, b)
t = []
for _ in range(5):
    s = time.perf_counter()
    torch.mm(a, b)
    t.append(time.perf_counter() - s)
print("%.1f" % (2 * 2048**3 / sorted(t)[2] / 1e9))
PY
}

cal0=$(calibrate)
: >"$work/r.jsonl"
for s in ${shapes//,/ }; do
    IFS=x read -r M N K <<<"$s"
    for t in ${types//,/ }; do
        for o in ${ops//,/ }; do
            "$BUILD/vklora-bench-matmul" --op "$o" --type "$t" --M "$M" --N "$N" --K "$K" --reps "$reps" --json \
                >>"$work/r.jsonl"
        done
    done
done
cal1=$(calibrate)
WORK="$work" CAL0="$cal0" CAL1="$cal1" JSON="$json" /usr/bin/python3 - <<'PY'
import json, os
rs = [json.loads(l) for l in open(os.environ["WORK"] + "/r.jsonl") if l.strip()]
cal = [json.loads(os.environ["CAL0"]), json.loads(os.environ["CAL1"])]
if os.environ["JSON"] == "1":
    print(json.dumps({"calibration_gflops": cal, "device": rs[0]["device"] if rs else None, "results": rs}))
    raise SystemExit
print(f"device: {rs[0]['device'] if rs else '?'}")
print("machine: PyTorch sgemm 2048^3 " + (f"{cal[0]} GFLOP/s before, {cal[1]} after" if cal[0] else "not measured"
                                           " (no python3-torch)"))
cols = []
for r in rs:
    c = (r["op"], r["M"], r["N"], r["K"])
    if c not in cols:
        cols.append(c)
types = []
for r in rs:
    if r["type"] not in types:
        types.append(r["type"])
print("| type | " + " | ".join(f"{o} {m}x{n}x{k}" for o, m, n, k in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for t in types:
    cells = []
    for c in cols:
        g = [r for r in rs if r["type"] == t and (r["op"], r["M"], r["N"], r["K"]) == c]
        cells.append(f"{g[0]['gflops']:.0f} ({g[0]['variant']})" if g else "")
    print(f"| {t} | " + " | ".join(cells) + " |")
print("GFLOP/s (kernel variant), median of the repetitions")
PY
