#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs one libFuzzer target for a bounded time (meson test, suite 'fuzz').
#   run-fuzz.sh TARGET-EXE SEED-DIR WORK-DIR
# TCPKIT_FUZZ_SECONDS sets the time (default 30). New inputs go to
# WORK-DIR/corpus (never into the committed seeds); a crashing input is
# saved in WORK-DIR/artifacts/ and the run fails.
set -eu
exe=$1
seeds=$2
work=$3
secs=${TCPKIT_FUZZ_SECONDS:-30}
mkdir -p "$work/corpus" "$work/artifacts"
exec "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds"
