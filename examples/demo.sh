#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The libtcpkit demo: build everything, start echo-server, talk to it with
# client, the same over TLS, stop the servers cleanly.
#
#   bash examples/demo.sh
#
# As root on Debian/Ubuntu it first installs what the build needs (OpenSSL
# for TLS, and the openssl tool that makes the demo's throw-away
# certificates), doxygen, cmake and g++ included, so that a later `meson install -C build` (README,
# Installing) also installs the man pages and the CMake package. It builds
# into ./build (or $BUILD_DIR), reusing that directory if it is configured.
# Its temporary files live in a directory it removes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}

say() {
    if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing build dependencies (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # g++: Meson asks CMake for its system information through a C++ project
    # when it writes the CMake package files. dpkg-dev: Meson asks
    # dpkg-architecture for Debian's library directory (lib/x86_64-linux-gnu);
    # without it, `meson install` would use lib64, which Debian does not search.
    apt-get install -y -qq --no-install-recommends meson ninja-build gcc g++ libc6-dev pkg-config \
        dpkg-dev check python3 doxygen cmake libssl-dev openssl >/dev/null
fi

# The servers' FIFOs and logs, the test data, certificates, the setup log.
tmp=$(mktemp -d)
server_pid=
tls_pid=
cleanup() {
    # Only the servers we started, by their PIDs, if they are still running.
    for pid in $server_pid $tls_pid; do
        if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

say "building libtcpkit and the examples into $build/"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
fi
meson compile -C "$build" >/dev/null
ex=$build/examples

# Starts echo-server on a free port (-p 0) with the given options. It prints
# one line when it is ready, "listening on 127.0.0.1:PORT"; we read it
# through a FIFO, which also tells us the port. Its log (one line per
# connection) goes to a file. Sets $started_pid and $port.
start_echo() { # name, options...
    local name=$1
    shift
    mkfifo "$tmp/$name.ready"
    "$ex/echo-server" -p 0 "$@" >"$tmp/$name.ready" 2>"$tmp/$name.log" &
    started_pid=$!
    local line=
    if ! read -r -t 10 line <"$tmp/$name.ready"; then
        echo "echo-server did not start:" >&2
        cat "$tmp/$name.log" >&2
        exit 1
    fi
    echo "$line"
    port=${line##*:}
}

say "starting echo-server -p 0"
start_echo server
server_pid=$started_pid

say "client sends a message, the server echoes it"
echo "\$ client -p $port Hello, TCP!"
"$ex/client" -p "$port" Hello, TCP!
echo

say "client copies standard input (three lines) and prints the echo"
echo "\$ printf 'one\\ntwo\\nthree\\n' | client -p $port"
printf 'one\ntwo\nthree\n' | "$ex/client" -p "$port"

say "8 MiB of random bytes there and back, compared byte for byte"
head -c 8388608 /dev/urandom >"$tmp/random.bin"
echo "\$ client -p $port < random.bin > echoed.bin && cmp random.bin echoed.bin"
"$ex/client" -p "$port" <"$tmp/random.bin" >"$tmp/echoed.bin"
cmp "$tmp/random.bin" "$tmp/echoed.bin"
echo "identical: $(wc -c <"$tmp/echoed.bin") bytes"

say "nobody listening: a clear error and exit status 1"
echo "\$ client -H 127.0.0.1 -p 1 hi"
status=0
"$ex/client" -H 127.0.0.1 -p 1 hi || status=$?
echo "(exit status $status)"

# TLS: a throw-away certificate authority and a certificate for localhost
# (EC keys: quick to make), echo-server --tls-cert, client --tls --cacert.
# Skipped when the build has no TLS or openssl is missing.
tls_probe=$("$ex/client" --tls -H 127.0.0.1 -p 1 x 2>&1 || true)
if ! command -v openssl >/dev/null || [[ $tls_probe == *"without TLS"* ]]; then
    say "TLS skipped: $(command -v openssl >/dev/null && echo "$tls_probe" || echo "no openssl")"
else
    say "the same echo over TLS, with a throw-away certificate authority"
    (
        cd "$tmp"
        ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        openssl req -x509 $ec -subj /CN=demo-ca -days 1 -keyout ca.key -out ca.pem \
            -addext basicConstraints=critical,CA:TRUE 2>/dev/null
        openssl req $ec -subj /CN=localhost -keyout key.pem -out req.pem 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
        openssl x509 -req -in req.pem -CA ca.pem -CAkey ca.key -days 1 -extfile san.ext \
            -out cert.pem 2>/dev/null
    )
    echo "\$ echo-server -p 0 --tls-cert cert.pem --tls-key key.pem"
    start_echo tls --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
    tls_pid=$started_pid
    echo "\$ client -p $port --tls --cacert ca.pem Hello, TLS!"
    "$ex/client" -p "$port" --tls --cacert "$tmp/ca.pem" Hello, TLS!
    echo
    echo "\$ client -p $port --tls hi        # our CA is not in the system's store"
    status=0
    "$ex/client" -p "$port" --tls hi || status=$?
    echo "(exit status $status)"
    kill -INT "$tls_pid"
    wait "$tls_pid" || { echo "TLS echo-server did not exit cleanly" >&2; exit 1; }
    tls_pid=
fi

say "stopping echo-server with SIGINT (Ctrl-C)"
kill -INT "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
echo "server log:"
sed 's/^/  /' "$tmp/server.log"
if [ "$status" -ne 0 ]; then
    echo "echo-server exited with status $status" >&2
    exit 1
fi
echo "echo-server exited with status 0: a clean shutdown"

say "done. Next: read examples/echo-server.c and examples/client.c, and doc/guide.md"
