#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, as CI runs it (.ci/run calls this script with no
# arguments), or the stages you name. See usage() or run it with -h.
#
# Installs what it needs on Debian 12 (as root, unless --no-install),
# builds with -Werror, runs every Check suite (plain), then the suite again
# under AddressSanitizer+UBSan (asan) and under Valgrind memcheck
# (valgrind), in a build without OpenSSL (notls), the threaded tests
# under ThreadSanitizer (tsan), and each
# libFuzzer target for 30 s (fuzz). Ends with a line "K skipped" and then
# the last line "N passed, M failed", counted from meson's test logs; exits
# non-zero if M > 0 or N == 0. Temporary files go to build-suite/tmp
# (TMPDIR), removed at the end: nothing is left in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
out=${TCPKIT_BUILD_ROOT:-$top/build-suite}
all_stages=(plain asan valgrind notls tsan fuzz)

usage() {
    cat <<EOF
usage: tests/run-suite.sh [--no-install] [STAGE]...
Runs the named stages of the test suite, in this order (all by default):
  plain     build with -Werror and run every test (meson test)
  asan      the tests again under AddressSanitizer + UndefinedBehaviorSanitizer
  valgrind  the tests again under Valgrind memcheck (uses the plain build)
  notls     a build without OpenSSL (-Dtls=disabled) and its tests
  tsan      the threaded tests (suite 'threads') under ThreadSanitizer
  fuzz      each libFuzzer target for \$TCPKIT_FUZZ_SECONDS (30) seconds (clang)
Options:
  --no-install  do not apt-get install the build dependencies (otherwise
                done when running as root on Debian)
  -h, --help    print this help and exit
Build directories go under \$TCPKIT_BUILD_ROOT (default build-suite/).
The last line of output is "N passed, M failed"; the exit status is
non-zero if M > 0 or N == 0. One test: meson test -C build-suite/plain NAME.
EOF
}

install=1
stages=()
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --no-install) install=0 ;;
        plain | asan | valgrind | notls | tsan | fuzz) stages+=("$1") ;;
        *) echo "run-suite.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[ ${#stages[@]} -gt 0 ] || stages=("${all_stages[@]}")

# wanted STAGE: true if STAGE was asked for.
wanted() {
    local s
    for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}

install_deps() {
    local pkgs=(meson ninja-build gcc g++ pkg-config check doxygen graphviz abigail-tools
                valgrind clang libclang-rt-14-dev python3 iproute2 util-linux cmake
                procps netbase libssl-dev openssl nginx-light curl dpkg-dev) # nginx: tests/examples;
                # dpkg-dev: Meson finds Debian's multiarch libdir with dpkg-architecture
    if [ "$install" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
    fi
}

# setup NAME MESON-ARGS...: configure (or reconfigure) one build directory.
setup() {
    local dir=$out/$1
    shift
    rm -rf "$dir"
    meson setup "$dir" --werror -Dtests=enabled "$@" >"$out/$(basename "$dir").setup.log" 2>&1 ||
        { cat "$out/$(basename "$dir").setup.log"; return 1; }
    meson compile -C "$dir" >/dev/null
}

# run_tests NAME MESON-TEST-ARGS...: run the suite in one build directory;
# failures are counted at the end, not fatal here.
run_tests() {
    local dir=$out/$1
    shift
    echo "== meson test ($(basename "$dir") $*)"
    meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || true
}

count_results() {
    python3 - "$out" <<'PY'
import json, pathlib, sys
passed = failed = skipped = 0
for log in sorted(pathlib.Path(sys.argv[1]).glob('*/meson-logs/testlog*.json')):
    for line in log.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line).get('result')
        if r in ('OK', 'EXPECTEDFAIL'):
            passed += 1
        elif r == 'SKIP':
            skipped += 1
        else:
            failed += 1
print(f"{skipped} skipped")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
PY
}

install_deps
mkdir -p "$out"
rm -rf "$out"/*/meson-logs
# Every temporary file of the build and the tests (compilers, mktemp,
# Python's tempfile, Valgrind) goes here, and goes away with it.
export TMPDIR=$out/tmp
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT

if wanted plain || wanted valgrind; then
    setup plain
fi
if wanted plain; then
    run_tests plain
fi

if wanted asan; then
    setup asan -Db_sanitize=address,undefined -Db_lundef=false -Dexamples=true
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_tests asan --no-suite nosan
fi

if wanted valgrind; then
    run_tests plain --setup valgrind --no-suite novalgrind --logbase testlog-valgrind
fi

# A build without OpenSSL (-Dtls=disabled): every TLS function must say
# TCPKIT_ENOTSUP and everything else must still pass.
if wanted notls; then
    setup notls -Dtls=disabled -Ddocs=disabled
    run_tests notls
fi

# ThreadSanitizer: the threaded tests (suite 'threads': tcpkit_serve, the
# fiber server and their fault tests). The fiber soak runs a 20th of its
# 200,000 connections here.
if wanted tsan; then
    setup tsan -Db_sanitize=thread -Db_lundef=false -Dexamples=false -Ddocs=disabled
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 TCPKIT_SOAK_DIVISOR=20 \
        run_tests tsan --suite threads
fi

# Fuzzing: clang + libFuzzer (tests/fuzz, doc/fuzzing.md), each of the three
# targets (recv, args, serve) for TCPKIT_FUZZ_SECONDS (30 s), so about two
# minutes. Only the fuzz targets are built with clang. A build that cannot
# produce them is recorded as a failed test, so the count below shows it.
fuzz_failed() {
    mkdir -p "$out/fuzz/meson-logs"
    echo "{\"name\": \"fuzz: $1\", \"result\": \"FAIL\"}" >>"$out/fuzz/meson-logs/testlog-fuzz-stage.json"
    echo "== fuzz: $1"
}
fuzz_stage() {
    local dir=$out/fuzz cc=clang
    command -v clang >/dev/null || cc=clang-14
    rm -rf "$dir"
    CC=$cc meson setup "$dir" --werror -Dtests=enabled -Dexamples=false -Ddocs=disabled \
        >"$out/fuzz.setup.log" 2>&1 || { cat "$out/fuzz.setup.log"; fuzz_failed "setup failed"; return; }
    meson compile -C "$dir" tests/fuzz/fuzz-recv tests/fuzz/fuzz-msg tests/fuzz/fuzz-args tests/fuzz/fuzz-serve \
        tests/fuzz/fuzz-tls >"$out/fuzz.build.log" 2>&1 ||
        { cat "$out/fuzz.build.log"; fuzz_failed "libFuzzer targets did not build"; return; }
    run_tests fuzz --suite fuzz --no-rebuild
}
if wanted fuzz; then
    fuzz_stage
fi

count_results
