# Shared by tools/demo.sh and tools/test.sh: install missing Debian/Ubuntu packages, then configure and build.
# Sourced, not run. Honours BUILD_DIR (default: build).

VKL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$VKL_ROOT/build}

VKL_BUILD_PACKAGES="gcc pkg-config python3 meson ninja-build libvulkan-dev libvulkan-volk-dev glslc glslang-tools
spirv-tools libcjson-dev liblapacke-dev liblapack-dev libblas-dev mesa-vulkan-drivers vulkan-tools libcairo2-dev
libopenmpi-dev openmpi-bin"
VKL_TEST_PACKAGES="vulkan-validationlayers python3-torch python3-numpy libopenblas0-pthread python3-jinja2"
# tools/chroot-trixie.sh (the Debian 13 part of tools/test.sh): creates the chroot
VKL_CHROOT_PACKAGES="debootstrap"
# tools/fuzz.sh and tools/lsan.sh: clang with libFuzzer and the sanitizer runtimes
VKL_FUZZ_PACKAGES="clang libclang-rt-14-dev"

vkl_install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "vklora: missing packages (${missing[*]}) and no apt-get: install them with your package manager" >&2
        return 1
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "vklora: installing ${missing[*]}" >&2
    $sudo apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

vkl_build() {
    if [ ! -f "$BUILD_DIR/build.ninja" ]; then
        meson setup "$BUILD_DIR" "$VKL_ROOT" --buildtype=release >&2 || return 1
    fi
    ninja -C "$BUILD_DIR" >&2
}
