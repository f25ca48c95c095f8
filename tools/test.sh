#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian/Ubuntu machine: installs what is missing, builds, then runs every
# test on the first Vulkan device (lavapipe without a GPU) with the validation layer on, and then runs it again
# inside a Debian 13 chroot whose lavapipe has cooperative matrices (tools/chroot-trixie.sh), so the
# cooperative-matrix kernels are checked too, and then the Windows build: cross-compiled with MinGW-w64 and run
# under Wine on lavapipe (tools/test-windows.sh: the whole suite, CLI runs, adapter bytes equal to Linux). Ends
# with the line "N passed, N failed": the sum of the parts.
#
#   tools/test.sh                        all parts (what CI runs); each part's count, labelled, then the sum
#   tools/test.sh FILTER                 this machine only, the tests whose name contains FILTER (fast)
#   tools/test.sh --host-only [FILTER]   this machine only (no chroot), whole suite or filtered
#   tools/test.sh --chroot-only [FILTER] the Debian 13 chroot only (creates it the first time: root, ~10 minutes)
#   tools/test.sh --windows-only [FILTER] the Windows part only (MinGW-w64 build under Wine)
#   tools/test.sh --both FILTER          all parts, filtered
#
# The chroot part needs root (or sudo), debootstrap and the Debian mirror apt uses; where it cannot run (not root
# and no sudo, no network, not Debian) it counts as one clearly printed failure, so CI never passes without it.
# VKL_TEST_CHROOT=0 skips it with a notice (a developer without root); VKL_TEST_CHROOT=1 runs it even with a
# filter. The Windows part runs when its packages (wine64, xvfb, gcc-mingw-w64) are installable and is reported as
# skipped otherwise; VKL_TEST_WINDOWS=0 skips it, VKL_TEST_WINDOWS=1 makes "not installable" a failure (CI).
# Builds: BUILD_DIR (default build/) here, VKL_CHROOT_BUILD_DIR (default build-trixie/) in the chroot,
# VKL_WINDOWS_BUILD_DIR (default build-mingw/) for Windows.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,/^[^#]/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

mode=""
args=()
for a in "$@"; do
    case "$a" in
    --host-only | --no-chroot) mode=host ;;
    --chroot-only) mode=chroot ;;
    --windows-only) mode=windows ;;
    --both) mode=both ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) args+=("$a") ;;
    esac
done
if [ -z "$mode" ]; then
    # A filter is a developer's quick check: this machine only, unless VKL_TEST_CHROOT=1 asks for both.
    if [ ${#args[@]} -gt 0 ] && [ "${VKL_TEST_CHROOT:-}" != 1 ]; then mode=host; else mode=both; fi
fi
# Inside the chroot (tools/chroot-trixie.sh sets VKL_IN_CHROOT) "this machine" is the chroot: never nest.
if [ -n "${VKL_IN_CHROOT:-}" ]; then mode=host; fi

# This machine's part: packages, build, the runner. Its output ends with the runner's "N passed, N failed".
run_host() {
    vkl_install_packages $VKL_BUILD_PACKAGES $VKL_TEST_PACKAGES || return 1
    vkl_build || return 1
    # lavapipe: use both cores; tests must never depend on a subgroup size, so the default width is kept.
    export LP_NUM_THREADS=${LP_NUM_THREADS:-$(nproc)}
    # the core checks and synchronization validation: a missing barrier fails the test that records it
    export VKLORA_VALIDATION=sync
    "$BUILD_DIR/vklora-test" "${args[@]}"
}

if [ "$mode" = host ]; then
    run_host
    exit
fi

# The chroot's part: tools/chroot-trixie.sh creates the chroot when needed, then runs this script inside with
# --host-only, where VKL_TEST_REQUIRE_COOPMAT=1 makes a cooperative-matrix test that cannot run a failure.
run_chroot() {
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
        echo "vklora: the Debian 13 chroot part needs root or sudo (debootstrap, chroot, mounts); this user has" \
            "neither. VKL_TEST_CHROOT=0 skips it; tools/test.sh --host-only runs this machine's part alone." >&2
        return 1
    fi
    BUILD_DIR=${VKL_CHROOT_BUILD_DIR:-$VKL_ROOT/build-trixie} VKL_TEST_REQUIRE_COOPMAT=1 \
        "$VKL_ROOT/tools/chroot-trixie.sh" tools/test.sh --host-only "${args[@]}"
}

# The Windows part: cross-build and run under Wine (exit 77: its packages cannot be installed here). The Linux
# build of this run is the one whose adapter bytes the Windows run's are compared with.
run_windows() {
    local linux=$BUILD_DIR
    # the Linux build must be this tree's (the host part built it already; --windows-only builds it here)
    if [ "$mode" = windows ] && ! { vkl_install_packages $VKL_BUILD_PACKAGES && vkl_build; }; then
        echo "vklora: the Linux build failed: the adapter bytes are not compared" >&2
        linux=/nonexistent
    fi
    LINUX_BUILD_DIR=$linux BUILD_DIR=${VKL_WINDOWS_BUILD_DIR:-$VKL_ROOT/build-mingw} \
        "$VKL_ROOT/tools/test-windows.sh" "${args[@]}"
}

# Runs one part with its output shown and kept; sets part_passed, part_failed and part_note. A part that ends
# without the runner's count (package, build or chroot failure, a crash) counts as one failure; the Windows part's
# exit 77 (packages not installable) is a skip unless VKL_TEST_WINDOWS=1.
part_passed=0 part_failed=0 part_note=""
run_part() {
    local fn=$1 label=$2 log rc t0 line
    log=$(mktemp)
    t0=$(date +%s)
    echo "=== $label ===" >&2
    "$fn" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    part_note="$(($(date +%s) - t0)) s"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    rm -f "$log"
    if [ -z "$line" ] && [ "$rc" -eq 77 ] && [ "$fn" = run_windows ] && [ "${VKL_TEST_WINDOWS:-}" != 1 ]; then
        part_passed=0 part_failed=0
        part_note="SKIPPED: its packages cannot be installed here (see above); the Windows build was not tested"
    elif [ -z "$line" ]; then
        part_passed=0 part_failed=1
        part_note="$part_note; FAILED before any test ran (exit $rc): see the messages above; counted as 1 failure"
    else
        part_passed=${line%% passed*}
        part_failed=${line#*passed, }
        part_failed=${part_failed%% failed*}
        if [ "$rc" -ne 0 ] && [ "$part_failed" -eq 0 ]; then
            part_failed=1
            part_note="$part_note; exited $rc after its count: counted as 1 failure"
        fi
    fi
}

total_passed=0 total_failed=0 summary=()
host_label="this machine ($(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown OS}"))"
chroot_label="Debian 13 chroot (cooperative-matrix lavapipe)"
if [ "$mode" = both ]; then
    run_part run_host "$host_label"
    total_passed=$((total_passed + part_passed)) total_failed=$((total_failed + part_failed))
    summary+=("$host_label: $part_passed passed, $part_failed failed ($part_note)")
fi
windows_label="Windows (MinGW-w64 build under Wine, lavapipe)"
if [ "$mode" = windows ]; then
    :
elif [ "${VKL_TEST_CHROOT:-}" = 0 ]; then
    summary+=("$chroot_label: SKIPPED (VKL_TEST_CHROOT=0): the cooperative-matrix kernels were not tested")
else
    run_part run_chroot "$chroot_label"
    total_passed=$((total_passed + part_passed)) total_failed=$((total_failed + part_failed))
    summary+=("$chroot_label: $part_passed passed, $part_failed failed ($part_note)")
fi
if [ "$mode" = windows ] || [ "$mode" = both ]; then
    if [ "${VKL_TEST_WINDOWS:-}" = 0 ]; then
        summary+=("$windows_label: SKIPPED (VKL_TEST_WINDOWS=0): the Windows build was not tested")
    else
        run_part run_windows "$windows_label"
        total_passed=$((total_passed + part_passed)) total_failed=$((total_failed + part_failed))
        summary+=("$windows_label: $part_passed passed, $part_failed failed ($part_note)")
    fi
fi
echo
for s in "${summary[@]}"; do echo "$s"; done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
