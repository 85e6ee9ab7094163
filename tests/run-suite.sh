#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, as CI runs it (.ci/run calls this script).
#
#   bash tests/run-suite.sh
#
# Installs what it needs on Debian 12 (as root), builds with -Werror, runs
# every Check suite, then runs the suite again under AddressSanitizer+UBSan
# and under Valgrind memcheck, in a build without TLS (-Dtls=disabled), the threaded tests under ThreadSanitizer, and
# each libFuzzer target for 30 s. Ends with one line "N passed, M failed"
# counted from meson's test logs, and exits non-zero if M > 0 or N == 0.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
out=${TCPKIT_BUILD_ROOT:-$top/build-suite}

install_deps() {
    local pkgs=(meson ninja-build gcc g++ pkg-config check doxygen graphviz abigail-tools
                valgrind clang libclang-rt-14-dev python3 iproute2 util-linux cmake
                procps libssl-dev openssl nginx-light curl)
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
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
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or not passed else 0)
PY
}

install_deps
mkdir -p "$out"
rm -rf "$out"/*/meson-logs

setup plain
run_tests plain

setup asan -Db_sanitize=address,undefined -Db_lundef=false -Dexamples=true
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_tests asan --no-suite nosan

run_tests plain --setup valgrind --no-suite novalgrind --logbase testlog-valgrind

# A build without OpenSSL (-Dtls=disabled): every TLS function must say
# TCPKIT_ENOTSUP and everything else must still pass.
setup notls -Dtls=disabled -Ddocs=disabled
run_tests notls

# ThreadSanitizer: the threaded tests (suite 'threads': tcpkit_serve and its
# fault tests).
setup tsan -Db_sanitize=thread -Db_lundef=false -Dexamples=false -Ddocs=disabled
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_tests tsan --suite threads

# Fuzzing: clang + libFuzzer (tests/fuzz, doc/fuzzing.md), each target for
# TCPKIT_FUZZ_SECONDS (30 s). Only the fuzz targets are built with clang. A
# build that cannot produce them is recorded as a failed test, so the count
# below shows it.
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
    meson compile -C "$dir" tests/fuzz/fuzz-recv tests/fuzz/fuzz-args tests/fuzz/fuzz-tls >"$out/fuzz.build.log" 2>&1 ||
        { cat "$out/fuzz.build.log"; fuzz_failed "libFuzzer targets did not build"; return; }
    run_tests fuzz --suite fuzz --no-rebuild
}
fuzz_stage

count_results
