#!/usr/bin/env bash
# The Windows build under Wine on lavapipe: cross-builds with tools/build-windows.sh, then runs, inside one
# `xvfb-run` (Wine's Vulkan needs its X11 driver) with Debian's wine64 bridging vulkan-1.dll to this machine's
# loader: `vklora devices`, the test binary (optionally filtered: tools/test-windows.sh FILTER...), a short
# `vklora train` / `eval` / `generate` on stories260K, Ctrl-C during training, a read-only output folder, and, when a
# Linux build is there (LINUX_BUILD_DIR, default build/), the same training run on Linux with the adapter bytes
# compared. Ends with "N passed, N failed": the test binary's count plus one for each check of this script.
# Exit 77: the packages cannot be installed here (tools/test.sh reports the part as skipped).
#
# Under Wine: no validation layer (Wine exposes no Windows build of VK_LAYER_KHRONOS_validation, and the Linux
# layer is not reachable through winevulkan), so the tests run with VKL_TEST_NO_VALIDATION=1 and the CLI without
# VKLORA_VALIDATION; the Linux run covers validation. Tests that need what Windows lacks skip with their reason.
# As root, the run gets a mount namespace of its own (unshare -m), so that the read-only folder check can
# bind-mount a folder read-only for the Wine server too (it is the process that opens files).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$ROOT/build-mingw}
# shellcheck source=lib.sh
. "$ROOT/tools/lib.sh"

if [ -z "${VKL_WIN_INNER:-}" ]; then
    if ! vkl_install_packages wine64 xvfb xauth mesa-vulkan-drivers libvulkan1 gcc-mingw-w64-x86-64-posix dpkg-dev; then
        echo "vklora: the Windows part's packages (wine64, xvfb, gcc-mingw-w64-x86-64-posix) cannot be installed here" >&2
        exit 77
    fi
    "$ROOT/tools/build-windows.sh" || exit 1
    ns=()
    if [ "$(id -u)" -eq 0 ] && unshare -m --propagation private true 2>/dev/null; then
        ns=(unshare -m --propagation private)
        export VKL_WIN_NS=1
    fi
    # One X server for the whole run
    VKL_WIN_INNER=1 exec "${ns[@]}" xvfb-run -a -s "-screen 0 640x480x24" "$0" "$@"
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

checks_passed=0 checks_failed=0
step() { echo "== $*" >&2; }
pass() { checks_passed=$((checks_passed + 1)); }
fail() { checks_failed=$((checks_failed + 1)); }
# check NAME COMMAND...: one counted check
check() {
    local name=$1
    shift
    if "$@"; then pass; else echo "  FAILED: $name" >&2; fail; fi
}

step "vklora devices (Wine's vulkan-1.dll)"
if ! "$WINE" "$BUILD_DIR/vklora.exe" devices </dev/null; then
    echo "vklora: no Vulkan device under Wine" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

step "vklora-test.exe $*"
VKL_TEST_NO_VALIDATION=1 VKL_DATA_DIR=${VKL_DATA_DIR:-$ROOT/../shared/data} \
    "$WINE" "$BUILD_DIR/vklora-test.exe" "$@" </dev/null >"$BUILD_DIR/test-windows.log" 2>&1
rc=$?
# (the Windows C runtime ends lines with CR LF)
tr -d '\r' <"$BUILD_DIR/test-windows.log" >"$BUILD_DIR/test-windows.log.tmp" &&
    mv "$BUILD_DIR/test-windows.log.tmp" "$BUILD_DIR/test-windows.log"
# the runner's count becomes part of this script's; its own line is relabelled so that a reader of the whole output
# (tools/test.sh takes the last "N passed, N failed") sees one count
sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/test binary: \1 passed, \2 failed/' "$BUILD_DIR/test-windows.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$BUILD_DIR/test-windows.log" | tail -1)
if [ -z "$line" ]; then
    echo "  FAILED: vklora-test.exe ended (exit $rc) without its count" >&2
    fail
else
    bin_passed=${line%% passed*} bin_failed=${line#*passed, }
    checks_passed=$((checks_passed + bin_passed)) checks_failed=$((checks_failed + ${bin_failed%% failed*}))
    [ "$rc" -ne 0 ] && [ "${bin_failed%% failed*}" -eq 0 ] && fail
fi

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
check "vklora train" "$WINE" "$BUILD_DIR/vklora.exe" train "$RUN/config.json"
step "vklora eval --adapter (Windows)"
check "vklora eval --adapter" "$WINE" "$BUILD_DIR/vklora.exe" eval --model "$MODEL" --text "$RUN/train.txt" --ctx 64 \
    --adapter "$RUN/win/adapter.gguf"
step "vklora generate --adapter (Windows)"
check "vklora generate --adapter" "$WINE" "$BUILD_DIR/vklora.exe" generate --model "$MODEL" \
    --adapter "$RUN/win/adapter.gguf" --prompt "Once upon a time" --max-tokens 24 --temperature 0

step "a read-only output folder (Windows): exit 2 naming the folder, the adapter there unchanged"
RO=$RUN/readonly
cp -r "$RUN/win" "$RO"
if [ -n "${VKL_WIN_NS:-}" ] && mount --bind "$RO" "$RO" && mount -o remount,bind,ro "$RO"; then
    "$WINE" "$BUILD_DIR/vklora.exe" train "$RUN/config.json" --set output_dir="$RO" </dev/null >"$RUN/ro.log" 2>&1
    rc=$?
    umount "$RO"
    if [ $rc -eq 2 ] && grep -q "read-only" "$RUN/ro.log" && grep -qF "$RO" "$RUN/ro.log" &&
        cmp -s "$RUN/win/adapter.gguf" "$RO/adapter.gguf" &&
        cmp -s "$RUN/win/adapter_model.safetensors" "$RO/adapter_model.safetensors"; then
        echo "  read-only folder: exit 2, $(grep -m1 "read-only" "$RUN/ro.log" | cut -c1-160)..."
        pass
    else
        echo "  FAILED: read-only folder: exit $rc (want 2), adapter compared; output:" >&2
        tail -3 "$RUN/ro.log" >&2
        fail
    fi
else
    echo "  skipped: a read-only bind mount needs root and a mount namespace (unshare -m); Wine enforces no ACLs"
fi

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
    echo "  FAILED: Ctrl-C: exit $rc (want 130), checkpoint '${ck}'" >&2
    fail
elif ! "$WINE" "$BUILD_DIR/vklora.exe" train "$RUN/config.json" --set max_steps=400 --set save_steps=0 \
    --set output_dir="$RUN/ctrlc" --resume "$ck" </dev/null >"$RUN/resume.log" 2>&1 ||
    ! grep -q '^step 400/400' "$RUN/resume.log"; then
    echo "  FAILED: resume from $ck:" >&2; tail -3 "$RUN/resume.log" >&2
    fail
else
    echo "  Ctrl-C: exit 130 with $(basename "$ck"); --resume ran to step 400"
    pass
fi

LINUX=${LINUX_BUILD_DIR:-$ROOT/build}/vklora
if [ -x "$LINUX" ]; then
    step "the same run on Linux ($LINUX): adapter bytes compared"
    # at lavapipe's own vector width, as under Wine (vklora tunes it only on Linux: README, Performance)
    check "vklora train (Linux)" env VKLORA_CPU_TUNE=off "$LINUX" train "$RUN/config.json" \
        --set output_dir="$RUN/linux" >/dev/null
    for f in adapter.gguf adapter_model.safetensors adapter_config.json; do
        if cmp -s "$RUN/win/$f" "$RUN/linux/$f"; then
            echo "  $f: identical on Windows (Wine, lavapipe) and Linux (lavapipe)"
            pass
        else
            echo "  FAILED: $f differs between Windows and Linux" >&2
            fail
        fi
    done
else
    echo "  skipped: no Linux build at $LINUX to compare the adapter bytes with"
fi
echo "$checks_passed passed, $checks_failed failed"
[ "$checks_failed" -eq 0 ]
