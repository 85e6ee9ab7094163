#!/bin/sh
# SPDX-License-Identifier: MIT
# header-test.sh COMPILER LANG STD INCLUDE_DIR
#
# Compiles a translation unit that includes only <tcpkit.h> (first, so it
# must be self-contained) and uses a little of it, with
# -pedantic -Wall -Wextra -Werror. LANG is c or c++; STD e.g. c99, c++11.
# Exit 77 (skipped) when COMPILER is not installed.
set -eu
compiler=$1 lang=$2 std=$3 incdir=$4

if ! command -v "$compiler" >/dev/null 2>&1; then
    echo "SKIP: $compiler not installed"
    exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$lang" = c ]; then
    src=$tmp/use.c
    extra="-Wstrict-prototypes -Wmissing-prototypes"
else
    src=$tmp/use.cpp
    extra="-Wold-style-cast"
fi

cat >"$src" <<'EOF'
#include <tcpkit.h>

#include <stdio.h>

int use_tcpkit(void);

/* A handler with the exact typedef'd signature. */
static void handler(tcpkit_conn *conn, void *arg)
{
    (void)conn;
    (void)arg;
}

int use_tcpkit(void)
{
    tcpkit_handler fn = handler;
    char buf[TCPKIT_ADDRSTRLEN];
    tcpkit_err e = TCPKIT_ESYS;
    tcpkit_family f = TCPKIT_FAMILY_IPV6;
    (void)fn;
    (void)f;
    snprintf(buf, sizeof buf, "%s %s %d.%d.%d", tcpkit_strerror(e), TCPKIT_VERSION_STRING,
             TCPKIT_VERSION_MAJOR, TCPKIT_VERSION_MINOR, TCPKIT_VERSION_PATCH);
    return buf[0] != '\0' && tcpkit_conn_fd(NULL) == -1;
}
EOF

set -x
# shellcheck disable=SC2086 # $extra is a list of flags
"$compiler" -x "$lang" -std="$std" -pedantic -Wall -Wextra -Werror $extra \
    -I"$incdir" -c "$src" -o "$tmp/use.o"
