#!/usr/bin/env bash
# Cross-build vklora for 64-bit Windows on Debian with MinGW-w64 (cross/x86_64-w64-mingw32.txt), from a clean
# checkout: installs the packages, stages the build-local dependencies in $BUILD_DIR-deps (Vulkan headers and volk
# copied from libvulkan-dev / libvulkan-volk-dev, cJSON compiled from Debian's own source package), then configures
# and builds $BUILD_DIR (default build-mingw). LoftQ is left out (Debian ships no MinGW LAPACK): `loftq_config` is
# refused by that build with a message. Output: $BUILD_DIR/vklora.exe, vklora-test.exe, vklora-mkmodel.exe.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-mingw}
DEPS=${BUILD_DIR}-deps
# shellcheck source=lib.sh
. "$ROOT/tools/lib.sh"

HOST=x86_64-w64-mingw32
CC=$HOST-gcc-posix
vkl_install_packages gcc-mingw-w64-x86-64-posix dpkg-dev pkg-config python3 meson ninja-build glslc \
    libvulkan-dev libvulkan-volk-dev

mkdir -p "$DEPS/include" "$DEPS/lib/pkgconfig" "$DEPS/src"

# Vulkan headers and volk: the same versions the Linux build uses, copied so that the cross compiler never sees
# /usr/include (glibc headers there would shadow MinGW's).
# (cp -a keeps the files' times, so that a second run rebuilds nothing)
cp -a /usr/include/vulkan /usr/include/vk_video /usr/include/volk.h /usr/include/volk.c "$DEPS/include/"

# cJSON from Debian's source package (with Debian's patches applied by dpkg-source): Debian ships no MinGW build.
if [ ! -f "$DEPS/lib/libcjson.a" ]; then
    if ! apt-cache showsrc cjson >/dev/null 2>&1 || [ -z "$(apt-cache showsrc cjson 2>/dev/null)" ]; then
        # Source indexes for the suites apt already uses (deb822 list; the mirror of the first deb entry).
        uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
        suites=$(grep -hE '^Suites:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | cut -d: -f2-)
        uri=${uri:-http://deb.debian.org/debian}
        suites=${suites:-" $(. /etc/os-release && echo "$VERSION_CODENAME")"}
        sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        echo "vklora: adding deb-src entries ($uri$suites) to fetch cJSON's source package" >&2
        printf 'Types: deb-src\nURIs: %s\nSuites:%s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$uri" "$suites" | $sudo tee /etc/apt/sources.list.d/vklora-deb-src.sources >/dev/null
        $sudo apt-get update -qq >&2
    fi
    rm -rf "$DEPS/src/cjson"
    mkdir -p "$DEPS/src/cjson"
    (cd "$DEPS/src/cjson" && apt-get source -qq --download-only cjson >&2 2>/dev/null &&
        dpkg-source --no-check -x ./*.dsc src >/dev/null)
    "$CC" -O2 -std=c89 -w -c "$DEPS/src/cjson/src/cJSON.c" -o "$DEPS/src/cjson/cJSON.o"
    rm -f "$DEPS/lib/libcjson.a"
    $HOST-ar rcs "$DEPS/lib/libcjson.a" "$DEPS/src/cjson/cJSON.o"
    mkdir -p "$DEPS/include/cjson"
    cp "$DEPS/src/cjson/src/cJSON.h" "$DEPS/include/cjson/"
fi

# pkg-config files for the cross build, and a machine file naming them and volk
cat > "$DEPS/lib/pkgconfig/vulkan.pc.new" <<EOF
Name: vulkan
Description: Vulkan headers from libvulkan-dev (volk loads vulkan-1.dll at run time)
Version: $(pkg-config --modversion vulkan)
Cflags: -I$DEPS/include
EOF
cat > "$DEPS/lib/pkgconfig/libcjson.pc.new" <<EOF
Name: libcjson
Description: cJSON built from Debian's source package for $HOST
Version: $(dpkg-query -W -f='${Version}' libcjson-dev 2>/dev/null | cut -d- -f1 || echo 1.7)
Cflags: -I$DEPS/include
Libs: -L$DEPS/lib -lcjson
EOF
cat > "$DEPS/paths.ini.new" <<EOF
[properties]
pkg_config_libdir = ['$DEPS/lib/pkgconfig']
volk_c = '$DEPS/include/volk.c'
EOF
for f in "$DEPS/lib/pkgconfig/vulkan.pc" "$DEPS/lib/pkgconfig/libcjson.pc" "$DEPS/paths.ini"; do
    if cmp -s "$f.new" "$f"; then rm "$f.new"; else mv "$f.new" "$f"; fi # unchanged: no reconfigure
done

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    meson setup "$BUILD_DIR" "$ROOT" --buildtype=release -Dloftq=disabled \
        --cross-file "$ROOT/cross/x86_64-w64-mingw32.txt" --cross-file "$DEPS/paths.ini" >&2
fi
ninja -C "$BUILD_DIR" >&2
echo "vklora: Windows build in $BUILD_DIR (vklora.exe, vklora-test.exe, vklora-mkmodel.exe)" >&2
