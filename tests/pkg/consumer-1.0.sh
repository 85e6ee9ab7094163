#!/bin/sh
# SPDX-License-Identifier: MIT
# consumer-1.0.sh NM EXE
#
# EXE was built with the released 1.0 header (tests/pkg/tcpkit-1.0.h) and
# linked against the library being built. Every libtcpkit symbol it binds
# must be the TCPKIT_1.0 version (what a program built against 1.0 binds),
# and it must run unchanged.
set -eu
nm=$1 exe=$2
syms=$("$nm" -D --undefined-only --with-symbol-versions "$exe" | awk '$2 ~ /^tcpkit_/ {print $2}')
[ -n "$syms" ] || { echo "FAIL: $exe binds no tcpkit_ symbol"; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v '@TCPKIT_1\.0$' || true)
if [ -n "$bad" ]; then
    echo "FAIL: symbols not bound at TCPKIT_1.0:"
    echo "$bad"
    exit 1
fi
echo "$(printf '%s\n' "$syms" | wc -l) symbols, all @TCPKIT_1.0"
exec "$exe"
