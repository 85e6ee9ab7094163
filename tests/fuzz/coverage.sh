#!/bin/sh
# SPDX-License-Identifier: MIT
# Line coverage of lib/ reached by the committed fuzz seeds (doc/fuzzing.md):
# builds with gcc --coverage, replays tests/fuzz/corpus/<target>/ through
# each target once (replay.c), and prints gcovr's per-file table.
#   sh tests/fuzz/coverage.sh [BUILD-DIR]     (default build-fuzz-cov)
set -eu
cd "$(dirname "$0")/../.."
dir=${1:-build-fuzz-cov}
[ -d "$dir" ] || meson setup "$dir" -Dtests=enabled -Db_coverage=true -Dexamples=false \
    -Ddocs=disabled >/dev/null
targets="args recv serve"
for t in $targets; do
    ninja -C "$dir" "tests/fuzz/fuzz-replay-$t" >/dev/null
done
find "$dir" -name '*.gcda' -delete
for t in $targets; do
    "$dir/tests/fuzz/fuzz-replay-$t" "tests/fuzz/corpus/$t"
done
gcovr -r . --filter lib/ --object-directory "$dir" "$dir"
