#!/usr/bin/env bash
# libFuzzer harnesses (tests/fuzz/): builds them with clang (-fsanitize=fuzzer,address,undefined, every finding
# fatal) in build-fuzz (FUZZ_BUILD_DIR overrides), writes seed corpora from the test material
# (tools/fuzz_seeds.py), then runs each harness for SECONDS (default 30) on 1 job.
#   tools/fuzz.sh [SECONDS] [HARNESS...]     e.g. tools/fuzz.sh 3600 gguf model   (hours: tools/fuzz.sh 14400)
# A finding (crash, sanitizer report, leak, timeout, out-of-memory) fails the script; its input is kept in
# build-fuzz/findings/HARNESS-*, and `build-fuzz/tests/fuzz/fuzz_HARNESS FILE` replays it. The growing corpus is kept
# in build-fuzz/corpus/HARNESS between runs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SECS=${1:-30}
shift || true
HARNESSES=${*:-gguf model safetensors config data tokenizer tokenizer_hf}
vkl_install_packages $VKL_BUILD_PACKAGES $VKL_FUZZ_PACKAGES
FUZZ_DIR=${FUZZ_BUILD_DIR:-$VKL_ROOT/build-fuzz}
if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
    # -O1: a third less build time than -O2 for about the same executions per second under the sanitizers
    CC=clang meson setup "$FUZZ_DIR" "$VKL_ROOT" --buildtype=plain -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dc_args="-O1 -g -fsanitize=fuzzer-no-link -fno-sanitize-recover=all" >&2
fi
ninja -C "$FUZZ_DIR" fuzz >&2
python3 "$VKL_ROOT/tools/fuzz_seeds.py" "$FUZZ_DIR/seeds"
mkdir -p "$FUZZ_DIR/findings"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for h in $HARNESSES; do
    mkdir -p "$FUZZ_DIR/corpus/$h"
    echo "fuzz: $h for ${SECS}s" >&2
    # -rss_limit_mb: a reader must stay within a small multiple of its input whatever the input claims.
    if ! "$FUZZ_DIR/tests/fuzz/fuzz_$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$FUZZ_DIR/findings/$h-" "$FUZZ_DIR/corpus/$h" "$FUZZ_DIR/seeds/$h" \
        >"$FUZZ_DIR/findings/$h.log" 2>&1; then
        failed+=("$h")
        tail -n 40 "$FUZZ_DIR/findings/$h.log" >&2
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$FUZZ_DIR/findings/$h.log" | tr '\n' ' ' >&2
        echo >&2
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FINDINGS in: ${failed[*]} (inputs in $FUZZ_DIR/findings/)" >&2
    exit 1
fi
echo "fuzz: no findings ($HARNESSES, ${SECS}s each)" >&2
