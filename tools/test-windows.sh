#!/usr/bin/env bash
# The Windows build under Wine on lavapipe: cross-builds with tools/build-windows.sh, then runs, inside one
# `xvfb-run` (Wine's Vulkan needs its X11 driver) with Debian's wine64 bridging vulkan-1.dll to this machine's
# loader: `vklora devices`, the test binary (optionally filtered: tools/test-windows.sh FILTER...), and a short
# `vklora train` / `eval` / `generate` on stories260K; when a Linux build is there (LINUX_BUILD_DIR, default build/)
# the same training run on Linux and the adapter bytes compared.
#
# Under Wine: no validation layer (Wine exposes no Windows build of VK_LAYER_KHRONOS_validation, and the Linux
# layer is not reachable through winevulkan), so the tests run with VKL_TEST_NO_VALIDATION=1 and the CLI without
# VKLORA_VALIDATION; the Linux run covers validation. Tests that need POSIX tools or python3 from cmd.exe fail or
# skip with their reason (see the report at the end of the test output).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$ROOT/build-mingw}
# shellcheck source=lib.sh
. "$ROOT/tools/lib.sh"

if [ -z "${VKL_WIN_INNER:-}" ]; then
    vkl_install_packages wine64 xvfb xauth mesa-vulkan-drivers libvulkan1 || exit 1
    "$ROOT/tools/build-windows.sh" || exit 1
    # One X server for the whole run
    VKL_WIN_INNER=1 exec xvfb-run -a -s "-screen 0 640x480x24" "$0" "$@"
fi

WINE=$(command -v wine64 || command -v wine || echo /usr/lib/wine/wine64)
export WINEPREFIX=${WINEPREFIX:-$BUILD_DIR-wine}
export WINEDEBUG=${WINEDEBUG:--all}
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-"mscoree,mshtml="} # no Mono / Gecko installer dialogs
export LP_NUM_THREADS=${LP_NUM_THREADS:-2}
WINESERVER=$(command -v wineserver || echo /usr/lib/wine/wineserver)
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "vklora: creating the Wine prefix $WINEPREFIX" >&2
    "$WINE" wineboot -i </dev/null >/dev/null 2>&1
fi
# Keep the server between the many short processes below. Wine's service processes inherit the standard streams of
# the process that starts them: never a pipe here (a reader would wait for them), only files and /dev/null.
"$WINESERVER" -p 60 </dev/null >/dev/null 2>&1
"$WINE" wineboot </dev/null >/dev/null 2>&1 # starts the services with /dev/null as their streams
trap '"$WINESERVER" -k 2>/dev/null' EXIT

fail=0
step() { echo "== $*" >&2; }

step "vklora devices (Wine's vulkan-1.dll)"
if ! "$WINE" "$BUILD_DIR/vklora.exe" devices </dev/null; then
    echo "vklora: no Vulkan device under Wine" >&2
    exit 1
fi

step "vklora-test.exe $*"
VKL_TEST_NO_VALIDATION=1 VKL_DATA_DIR=${VKL_DATA_DIR:-$ROOT/../shared/data} \
    "$WINE" "$BUILD_DIR/vklora-test.exe" "$@" </dev/null >"$BUILD_DIR/test-windows.log" 2>&1
cat "$BUILD_DIR/test-windows.log"
tail -1 "$BUILD_DIR/test-windows.log" | grep -q ' 0 failed' || fail=1

# A short training run, its eval and a generation, on Windows and (when built) on Linux with the same config.
MODEL=${VKL_DATA_DIR:-$ROOT/../shared/data}/models/stories260K.gguf
RUN=$BUILD_DIR/win-run
rm -rf "$RUN" && mkdir -p "$RUN"
head -c 20000 "$ROOT/data/demo.txt" > "$RUN/train.txt"
cat > "$RUN/config.json" <<EOF
{"model": "$MODEL", "dataset": "$RUN/train.txt", "output_dir": "$RUN/win",
 "max_steps": 6, "max_seq_length": 64, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1,
 "lora_r": 4, "lora_alpha": 8, "save_steps": 3, "seed": 7, "eval_ratio": 0}
EOF
step "vklora train (Windows)"
"$WINE" "$BUILD_DIR/vklora.exe" train "$RUN/config.json" || fail=1
step "vklora eval --adapter (Windows)"
"$WINE" "$BUILD_DIR/vklora.exe" eval --model "$MODEL" --text "$RUN/train.txt" --ctx 64 \
    --adapter "$RUN/win/adapter.gguf" || fail=1
step "vklora generate --adapter (Windows)"
"$WINE" "$BUILD_DIR/vklora.exe" generate --model "$MODEL" --adapter "$RUN/win/adapter.gguf" --prompt "Once upon a time" \
    --max-tokens 24 --temperature 0 || fail=1

step "Ctrl-C during vklora train (Windows): checkpoint, exit 130, --resume finishes"
# Wine turns SIGINT into CTRL_C_EVENT for the process's console control handlers (SetConsoleCtrlHandler)
"$WINE" "$BUILD_DIR/vklora.exe" train "$RUN/config.json" --set max_steps=400 --set save_steps=0 \
    --set output_dir="$RUN/ctrlc" </dev/null >"$RUN/ctrlc.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q '^step 3/' "$RUN/ctrlc.log" 2>/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid
rc=$?
ck=$(ls -d "$RUN"/ctrlc/checkpoint-* 2>/dev/null | head -1)
grep -v '^step' "$RUN/ctrlc.log" | tail -2
if [ $rc -ne 130 ] || [ -z "$ck" ]; then
    echo "  Ctrl-C: exit $rc (want 130), checkpoint '${ck}'"
    fail=1
elif ! "$WINE" "$BUILD_DIR/vklora.exe" train "$RUN/config.json" --set max_steps=400 --set save_steps=0 \
    --set output_dir="$RUN/ctrlc" --resume "$ck" </dev/null >"$RUN/resume.log" 2>&1 ||
    ! grep -q '^step 400/400' "$RUN/resume.log"; then
    echo "  resume from $ck failed:"; tail -3 "$RUN/resume.log"
    fail=1
else
    echo "  Ctrl-C: exit 130 with $(basename "$ck"); --resume ran to step 400"
fi

LINUX=${LINUX_BUILD_DIR:-$ROOT/build}/vklora
if [ -x "$LINUX" ]; then
    step "the same run on Linux ($LINUX): adapter bytes compared"
    "$LINUX" train "$RUN/config.json" --set output_dir="$RUN/linux" >/dev/null || fail=1
    for f in adapter.gguf adapter_model.safetensors adapter_config.json; do
        if cmp -s "$RUN/win/$f" "$RUN/linux/$f"; then
            echo "  $f: identical on Windows (Wine, lavapipe) and Linux (lavapipe)"
        else
            echo "  $f: DIFFERS between Windows and Linux"
            fail=1
        fi
    done
fi
[ $fail -eq 0 ] && echo "vklora: Windows run passed" || echo "vklora: Windows run had failures (see above)"
exit $fail
