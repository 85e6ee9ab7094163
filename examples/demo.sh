#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The libtcpkit demo: build everything, start echo-server, talk to it with
# client, stop the server cleanly.
#
#   bash examples/demo.sh
#
# As root on Debian/Ubuntu it first installs what the build needs, doxygen
# and cmake included, so that a later `meson install -C build` (README,
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
    apt-get install -y -qq --no-install-recommends meson ninja-build gcc libc6-dev pkg-config \
        check python3 doxygen cmake >/dev/null
fi

# The server's FIFO and log, the test data and the setup log.
tmp=$(mktemp -d)
server_pid=
cleanup() {
    # Only the server we started, by its PID, if it is still running.
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

say "building libtcpkit and the examples into $build/"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
fi
meson compile -C "$build" >/dev/null
ex=$build/examples

# Start the server on a free port (-p 0). It prints one line when it is
# ready, "listening on 127.0.0.1:PORT"; we read it through a FIFO, which also
# tells us the port. Its log (one line per connection) goes to a file.

say "starting echo-server -p 0"
mkfifo "$tmp/ready"
"$ex/echo-server" -p 0 >"$tmp/ready" 2>"$tmp/server.log" &
server_pid=$!
exec 3<"$tmp/ready"
if ! read -r -t 10 line <&3; then
    echo "echo-server did not start:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi
echo "$line"
port=${line##*:}

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

say "stopping echo-server with SIGINT (Ctrl-C)"
kill -INT "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
exec 3<&-
echo "server log:"
sed 's/^/  /' "$tmp/server.log"
if [ "$status" -ne 0 ]; then
    echo "echo-server exited with status $status" >&2
    exit 1
fi
echo "echo-server exited with status 0: a clean shutdown"

say "done. Next: read examples/echo-server.c and examples/client.c, and doc/guide.md"
