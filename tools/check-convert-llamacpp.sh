#!/usr/bin/env bash
# Checks `vklora convert` against llama.cpp itself (outside the test suite, which does not build llama.cpp): for a
# random model of every supported family, a Hugging Face folder (exported by the suite's hf/ tests, with a
# tokenizer.json from tests/mk_hf_tokenizer.py) is converted, llama.cpp loads the GGUF and its mean NLL over a text
# must equal vklora's on the folder.
#
#   tools/check-convert-llamacpp.sh LLAMA_SRC LLAMA_BUILD [BUILD_DIR]
#
# LLAMA_SRC: llama.cpp's source (e.g. the git bundle of node-llama-cpp@3.22.1, see README); LLAMA_BUILD: its cmake
# build (holding bin/libllama.so). Prints one line per family and exits 1 if any differs by more than 1e-4.
set -euo pipefail
SRC=$1 LB=$2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${3:-$ROOT/build}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
g++ -std=c++17 -O2 -I"$SRC/include" -I"$SRC/ggml/include" "$ROOT/tools/llama_nll_oracle.cpp" -L"$LB/bin" -lllama \
    -lggml -lggml-base -Wl,-rpath,"$LB/bin" -o "$WORK/oracle"
# the suite's round-trip folders (random models of each family), kept
VKL_TEST_KEEP_TMP=1 LP_NUM_THREADS=$(nproc) "$BUILD/vklora-test" hf/folder_vs >"$WORK/suite.log" 2>&1 || {
    tail -20 "$WORK/suite.log"; exit 1; }
T=$(ls -dt /tmp/vklora-test-* | head -n 1)
head -c 600 "$ROOT/../shared/data/datasets/tinystories_sample.txt" >"$WORK/text.txt"
fail=0
for g in "$T"/hf-*.gguf; do
    name=$(basename "$g" .gguf)
    # a folder name without "phi3": llama.cpp treats models *named* phi3 specially and expects Phi-3's own tokens
    dir="$WORK/model-${name#hf-}" && dir=${dir//phi3/fused}
    cp -r "$T/$name" "$dir"
    /usr/bin/python3 "$ROOT/tests/mk_hf_tokenizer.py" "$g" "$dir"
    "$BUILD/vklora" convert "$dir" "$dir.gguf" >/dev/null
    a=$("$WORK/oracle" "$dir.gguf" "$WORK/text.txt" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["mean_nll"])')
    b=$("$BUILD/vklora" eval --model "$dir" --text "$WORK/text.txt" --ctx 512 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["mean_nll"])')
    ok=$(python3 -c "print(abs($a - $b) <= 1e-4 * abs($a))")
    echo "${name#hf-}: llama.cpp $a, vklora (folder) $b: $ok"
    [ "$ok" = True ] || fail=1
done
rm -rf "$T"
exit $fail
