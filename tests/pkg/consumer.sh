#!/bin/bash
# SPDX-License-Identifier: MIT
# consumer.sh MODE MESON BUILD_ROOT SOURCE_ROOT PREFIX LIBDIR
#
# Builds and runs tests/pkg/consumer/main.c against libtcpkit the way a user
# would. MODE:
#   pkg-config         cc main.c $(pkg-config --cflags --libs libtcpkit)
#   pkg-config-static  the same with `pkg-config --static`, linking libtcpkit.a
#   cmake              find_package(tcpkit) -> tcpkit::tcpkit (and _static)
#   meson-subproject   a Meson project with libtcpkit under subprojects/
# The first three install the build into a temporary DESTDIR first
# (`meson install --destdir`); installs are serialized with flock so the
# tests can run in parallel. PREFIX and LIBDIR are the absolute install
# locations the build was configured with.
set -euo pipefail
mode=$1 meson=$2 build=$3 src=$4 prefix=$5 libdir=$6
here=$src/tests/pkg/consumer
# meson test points LD_LIBRARY_PATH at the build tree; a user has no such thing.
unset LD_LIBRARY_PATH

work=$(mktemp -d "$build/tests/pkg/consumer-$mode.XXXXXX")
cleanup() {
    local rc=$?
    # Never leave a link back to the source tree behind: with the build dir
    # inside the source tree it would make a directory loop.
    rm -f "$work/proj/subprojects/libtcpkit"
    if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "(work files kept in $work)"; fi
}
trap cleanup EXIT
cd "$work"

install_tree() {
    root=$work/root
    # One `meson install` at a time per build dir: they share its logs.
    flock "$build/tests/pkg/.install.lock" \
        "$meson" install -C "$build" --no-rebuild --quiet --destdir "$root" >install.log 2>&1 ||
        { cat install.log; exit 1; }
    [ -f "$root$libdir/libtcpkit.so.1" ] || { echo "FAIL: no $root$libdir/libtcpkit.so.1"; exit 1; }
}

# The program must have loaded the installed library, not the build tree's.
check_loaded_from() {
    local exe=$1 dir=$2 line
    line=$(ldd "$exe" | grep 'libtcpkit\.so' || true)
    echo "ldd: ${line:-libtcpkit not dynamically linked}"
    case $line in
    *"$dir"/libtcpkit.so*) ;;
    *) echo "FAIL: $exe does not load libtcpkit from $dir"; exit 1 ;;
    esac
}

# pkg-config sees the installed libtcpkit.pc first and the system's .pc
# files after it: Requires.private names libssl and libcrypto (TLS).
use_installed_pc() {
    local sys
    sys=$(pkg-config --variable pc_path pkg-config)
    export PKG_CONFIG_LIBDIR=$root$libdir/pkgconfig:$sys PKG_CONFIG_SYSROOT_DIR=$root
}

cc=${CC:-cc}
cflags=(-std=c99 -pedantic -Wall -Wextra -Werror)

case $mode in
pkg-config)
    install_tree
    use_installed_pc
    flags=$(pkg-config --cflags --libs libtcpkit)
    echo "pkg-config --cflags --libs libtcpkit: $flags"
    # shellcheck disable=SC2086 # word splitting of the flags is intended
    "$cc" "${cflags[@]}" "$here/main.c" $flags -o consumer
    export LD_LIBRARY_PATH=$root$libdir
    check_loaded_from ./consumer "$root$libdir"
    ./consumer
    ;;
pkg-config-static)
    install_tree
    use_installed_pc
    cflags_pc=$(pkg-config --cflags libtcpkit)
    libs_pc=$(pkg-config --static --libs libtcpkit)
    echo "pkg-config --static --libs libtcpkit: $libs_pc"
    # libtcpkit.a (and what Libs.private adds) statically, libc dynamically.
    # shellcheck disable=SC2086
    "$cc" "${cflags[@]}" $cflags_pc "$here/main.c" -Wl,-Bstatic $libs_pc -Wl,-Bdynamic -o consumer
    if readelf -d consumer | grep -q 'NEEDED.*libtcpkit'; then
        echo "FAIL: the --static link still needs libtcpkit.so"
        exit 1
    fi
    ./consumer
    ;;
cmake)
    install_tree
    cmake -S "$here" -B build-ok -DCMAKE_PREFIX_PATH="$root$prefix" -DCMAKE_C_COMPILER="$cc" \
        >cmake.log 2>&1 || { cat cmake.log; exit 1; }
    grep 'found tcpkit' cmake.log
    cmake --build build-ok >>cmake.log 2>&1 || { cat cmake.log; exit 1; }
    check_loaded_from build-ok/consumer "$root$libdir"
    build-ok/consumer
    build-ok/consumer_static
    if readelf -d build-ok/consumer_static | grep -q 'NEEDED.*libtcpkit'; then
        echo "FAIL: tcpkit::tcpkit_static links libtcpkit.so"
        exit 1
    fi
    # The version file must refuse a newer major version.
    if cmake -S "$here" -B build-v2 -DCMAKE_PREFIX_PATH="$root$prefix" \
        -DTCPKIT_WANT_VERSION=2.0 >cmake-v2.log 2>&1; then
        echo "FAIL: find_package(tcpkit 2.0) accepted the installed version"
        exit 1
    fi
    echo "find_package(tcpkit 2.0): refused, as it should be"
    ;;
meson-subproject)
    mkdir -p proj/subprojects
    cp "$here/meson.build" "$here/main.c" proj/
    # A symlink to the source tree: nothing is copied, and the subproject
    # is configured with tests=disabled, so this test does not recurse.
    ln -s "$src" proj/subprojects/libtcpkit
    CC=$cc "$meson" setup proj-build proj --force-fallback-for=libtcpkit >setup.log 2>&1 ||
        { cat setup.log; exit 1; }
    grep 'Dependency libtcpkit found' setup.log
    "$meson" compile -C proj-build >compile.log 2>&1 || { cat compile.log; exit 1; }
    check_loaded_from proj-build/consumer "$work/proj-build/subprojects/libtcpkit/lib"
    proj-build/consumer
    ;;
*)
    echo "unknown mode $mode"
    exit 2
    ;;
esac
