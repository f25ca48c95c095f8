#!/usr/bin/env bash
# Runs a command inside a Debian 13 (trixie) chroot whose Mesa comes from trixie-backports: a lavapipe with
# VK_KHR_cooperative_matrix and a glslc that compiles GL_KHR_cooperative_matrix, so the cooperative-matrix kernels
# are built and checked on a machine without a GPU (Debian 12's Mesa 22.3 and shaderc 2023.2 have neither).
#
#   tools/chroot-trixie.sh tools/test.sh matmul     # build in build-trixie inside the chroot, run matching tests
#   tools/chroot-trixie.sh vulkaninfo --summary     # any command, run from the source tree inside the chroot
#   tools/chroot-trixie.sh                          # just create (or check) the chroot
#
# The chroot is made once with debootstrap (about 5 minutes and 1.5 GB with PyTorch for the tests) under
# $VKL_CHROOT (default /var/cache/vklora-trixie) and reused; it is rebuilt only when the package list below changes.
# The Debian mirror is the one apt already uses on this machine (read from /etc/apt/sources.list*). The source tree
# and its sibling shared/ (test data) are bind-mounted at their own paths in a private mount namespace, so nothing
# stays mounted after the command and concurrent runs do not interfere. Builds go to build-trixie (BUILD_DIR), so the
# host's build directories are never touched; binaries built inside cannot run outside (Debian 13's glibc).
# Needs root (re-runs itself with sudo when it is not).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=${VKL_CHROOT:-/var/cache/vklora-trixie}
SUITE=trixie

# The variables that cross into the chroot (everything else is left outside).
PASS_VARS=(LP_NUM_THREADS LP_NATIVE_VECTOR_WIDTH VKLORA_MATMUL VKLORA_ATTN VKLORA_VALIDATION VKLORA_DEVICE
    VKL_TEST_DEVICE VKL_TEST_NO_VALIDATION VKL_TEST_KEEP_TMP VKL_TEST_VERBOSE VKL_TEST_REQUIRE_COOPMAT VKL_DATA_DIR)

if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env="VKL_CHROOT,BUILD_DIR,$(IFS=,; echo "${PASS_VARS[*]}")" "$0" "$@"
fi

# Where the build goes inside: build-trixie unless BUILD_DIR says otherwise; taken before tools/lib.sh, which would
# default it to build/ (the host's build directory, whose meson and glibc differ).
INNER_BUILD_DIR=${BUILD_DIR:-$SRC/build-trixie}

# The project's build and test packages (tools/lib.sh), plus what the chroot itself needs.
# shellcheck source=lib.sh
source "$SRC/tools/lib.sh"
# (libc6-dev: only a Recommends of gcc, which a host has anyway)
PACKAGES=$(echo $VKL_BUILD_PACKAGES $VKL_TEST_PACKAGES libc6-dev ca-certificates)
# Stamp of what the chroot holds: a changed list installs what is missing.
STAMP_WANT="suite=$SUITE backports=mesa-vulkan-drivers packages=$PACKAGES"

# The first http(s) URI of a Debian archive (not debian-security) in apt's sources, one-line or deb822 format.
debian_mirror() {
    local f uri=""
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        case "$f" in
        *.sources) uri=$(sed -n 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n' | grep -E '^https?://' || true) ;;
        *) uri=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(https\?:[^[:space:]]*\).*/\2/p' "$f") ;;
        esac
        uri=$(echo "$uri" | grep -v -- '-security' | grep '/debian/\?$' | head -n 1 || true)
        if [ -n "$uri" ]; then
            echo "${uri%/}"
            return 0
        fi
    done
    echo "chroot-trixie: no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d" >&2
    return 1
}

# Run "$@" inside the chroot with /proc, /dev, /sys mounted and the source tree bound, in a private mount
# namespace (everything is unmounted when it ends, even on failure).
in_chroot() {
    local shared
    shared=$(cd "$SRC/.." && pwd)/shared
    unshare --mount --propagation private -- /bin/bash -euc '
        root=$1 src=$2 shared=$3; shift 3
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        mount --rbind /sys "$root/sys"
        mkdir -p "$root$src"
        mount --bind "$src" "$root$src"
        if [ -d "$shared" ]; then mkdir -p "$root$shared"; mount --bind "$shared" "$root$shared"; fi
        cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
        exec chroot "$root" "$@"' bash "$ROOT" "$SRC" "$shared" "$@"
}

# debootstrap into $ROOT.partial, moved to $ROOT once complete (an interrupted run starts over).
make_base() {
    local mirror tmp="$ROOT.partial"
    mirror=$(debian_mirror)
    vkl_install_packages $VKL_CHROOT_PACKAGES
    echo "chroot-trixie: creating a Debian $SUITE chroot in $ROOT from $mirror (a few minutes)" >&2
    mkdir -p "$(dirname "$ROOT")"
    rm -rf --one-file-system "$tmp"
    debootstrap --variant=minbase "$SUITE" "$tmp" "$mirror" >&2
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-backports main\n' \
        "$mirror" "$SUITE" "$mirror" "$SUITE" "$mirror" "$SUITE" >"$tmp/etc/apt/sources.list"
    # no daemons may start inside
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod +x "$tmp/usr/sbin/policy-rc.d"
    mv "$tmp" "$ROOT"
}

# The packages (idempotent: apt-get installs what is missing), then the stamp.
install_packages() {
    echo "chroot-trixie: installing the build and test packages and trixie-backports' Mesa in $ROOT" >&2
    rm -f "$ROOT/.vklora-stamp"
    in_chroot /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive /bin/sh -ec "
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $PACKAGES
        apt-get install -y -qq --no-install-recommends -t $SUITE-backports mesa-vulkan-drivers
        apt-get clean" >&2
    echo "$STAMP_WANT" >"$ROOT/.vklora-stamp"
}

if [ ! -f "$ROOT/.vklora-stamp" ] || [ "$(cat "$ROOT/.vklora-stamp")" != "$STAMP_WANT" ]; then
    # one builder at a time; a second caller waits and then finds the chroot ready
    t0=$(date +%s)
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$ROOT.lock"
    flock 9
    [ -f "$ROOT/etc/apt/sources.list" ] || make_base
    if [ ! -f "$ROOT/.vklora-stamp" ] || [ "$(cat "$ROOT/.vklora-stamp")" != "$STAMP_WANT" ]; then
        install_packages
    fi
    flock -u 9
    echo "chroot-trixie: $ROOT ready in $(($(date +%s) - t0)) s" >&2
fi

[ $# -eq 0 ] && exit 0

# Inside: the source tree as working directory, build-trixie as BUILD_DIR, and only the variables that matter.
pass=()
# The cooperative-matrix tests must run here, not report that they cannot (VKL_TEST_REQUIRE_COOPMAT=0 allows it).
VKL_TEST_REQUIRE_COOPMAT=${VKL_TEST_REQUIRE_COOPMAT:-1}
for v in "${PASS_VARS[@]}"; do
    if [ -n "${!v:-}" ]; then pass+=("$v=${!v}"); fi
done
# VKL_IN_CHROOT: tools/test.sh inside runs its own part only (never a chroot within the chroot).
in_chroot /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 VKL_IN_CHROOT=trixie \
    BUILD_DIR="$INNER_BUILD_DIR" "${pass[@]}" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$SRC" "$@"
