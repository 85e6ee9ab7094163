#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of the example programs in examples/.

    driver.py TEST CLIENT ECHO_SERVER HELLO_SERVER HTTP_GET RAW_CLIENT RAW_ECHO_SERVER [EXTRA...]

Runs one named test (see TESTS at the bottom) against the built programs.
Servers are started with -p 0 and the port is read from their
"listening on ADDR:PORT" line; every process we start is stopped by PID and
every wait is bounded. Exit status 0 = pass, 1 = fail, 77 = skipped.
"""
import os
import random
import re
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

WAIT = 30  # seconds: the bound for any single wait in these tests
PROGS = {}  # key -> argv prefix that runs the program (maybe under valgrind)
NAMES = {}  # key -> program name, as it prints it in messages
TMP = None

# Under `meson test --setup valgrind` the wrapper runs only this script, so
# the programs are put under memcheck here (children are not traced). Servers
# always; the clients too, except in tests that start dozens of them.
VALGRIND = ['valgrind', '--quiet', '--error-exitcode=99', '--leak-check=full',
            '--errors-for-leak-kinds=definite,indirect', '--show-leak-kinds=definite,indirect']
UNWRAPPED_CLIENTS = {'echo-many', 'usage'}
KEYS = ('client', 'echo', 'hello', 'http', 'raw-client', 'raw-echo')


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(argv, stdin=None, input=None, timeout=WAIT, **kw):
    """Runs a program to completion; returns CompletedProcess (bytes)."""
    return subprocess.run(argv, stdin=stdin, input=input, capture_output=True,
                          timeout=timeout, **kw)


def read_line(f, timeout=WAIT):
    """Reads one line from a pipe with a deadline (no sleeping)."""
    fd = f.fileno()
    deadline = time.monotonic() + timeout
    data = b''
    while not data.endswith(b'\n'):
        left = deadline - time.monotonic()
        check(left > 0, 'timed out waiting for a line; got %r' % data)
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data


def read_bytes(f, n, timeout=WAIT):
    """Reads n bytes from a pipe with a deadline; fewer only at EOF."""
    fd = f.fileno()
    deadline = time.monotonic() + timeout
    data = b''
    while len(data) < n:
        left = deadline - time.monotonic()
        check(left > 0, 'timed out after %d of %d bytes' % (len(data), n))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


class Server:
    """A server program on an ephemeral port, stopped by PID."""

    def __init__(self, prog, *args):
        self.name = os.path.basename(prog[-1])
        # raw-echo-server has no signal handler, on purpose: SIGINT/SIGTERM
        # end it by their default action, not with exit status 0.
        self.clean_exit = prog is not PROGS.get('raw-echo')
        self.log = tempfile.TemporaryFile(dir=TMP)
        self.proc = subprocess.Popen([*prog, '-p', '0', *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = read_line(self.proc.stdout)
        m = re.fullmatch(rb'listening on (\S+):(\d+)\n', line)
        check(m is not None, '%s: bad ready line %r (log: %s)' % (self.name, line, self.text()))
        self.addr = m.group(1).decode()
        self.port = int(m.group(2))
        check(0 < self.port < 65536, 'bad port in %r' % line)

    def text(self):
        self.log.seek(0)
        return self.log.read().decode(errors='replace')

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGINT):
        """Stops the server with sig and checks it exits 0, cleanly."""
        check(self.alive(), '%s died early (status %s): %s' %
              (self.name, self.proc.returncode, self.text()))
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            raise Failure('%s did not stop on signal %d' % (self.name, sig))
        rest = self.proc.stdout.read()
        self.proc.stdout.close()
        want = 0 if self.clean_exit else -sig
        check(rc == want, '%s exited with %d after signal %d; log:\n%s' %
              (self.name, rc, sig, self.text()))
        check(rest == b'', '%s printed more than one line on stdout: %r' % (self.name, rest))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()  # by PID: a process we started
            self.proc.wait(WAIT)
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if exc[0] is not None:
            sys.stderr.write('--- %s log ---\n%s\n' % (self.name, self.text()))
        self.log.close()


def connect(port, host='127.0.0.1'):
    s = socket.create_connection((host, port), timeout=WAIT)
    s.settimeout(WAIT)
    return s


def recv_exact(s, n):
    data = b''
    while len(data) < n:
        chunk = s.recv(n - len(data))
        check(chunk, 'EOF after %d of %d bytes (%r)' % (len(data), n, data[-80:]))
        data += chunk
    return data


def recv_until_eof(s):
    """Everything until an orderly end of stream; a reset fails the test."""
    data = b''
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            raise Failure('connection reset instead of an orderly close, after %r' %
                          data[-80:])
        if not chunk:
            return data
        data += chunk


def reset(s):
    """Closes with RST (SO_LINGER on, timeout 0): an abrupt disconnect."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()


def tmpfile(name, data):
    path = os.path.join(TMP, name)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def reserved_port():
    """A bound, non-listening socket: connecting to its port is refused, and
    nobody else can take the port while we hold it."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    return s


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- echo tests

def test_echo_bulk(server='echo', client='client'):
    """8 MiB of random bytes through client's stdin, echoed byte-exact."""
    data = os.urandom(8 << 20)
    src = tmpfile('bulk.in', data)
    with Server(PROGS[server]) as srv, open(src, 'rb') as fin:
        r = run([*PROGS[client], '-H', '127.0.0.1', '-p', str(srv.port)], stdin=fin,
                timeout=120)
        check(r.returncode == 0, 'client exited %d: %r' % (r.returncode, r.stderr))
        check(r.stderr == b'', 'client wrote to stderr: %r' % r.stderr)
        check(len(r.stdout) == len(data), 'got %d of %d bytes' % (len(r.stdout), len(data)))
        check(r.stdout == data, 'echoed bytes differ')
        # MESSAGE words are joined by single spaces, nothing added.
        r = run([*PROGS[client], '-p', str(srv.port), 'hello,', 'echo', 'server'])
        check(r.returncode == 0 and r.stdout == b'hello, echo server', repr(r))
        srv.stop()
        check('echoed %d bytes, closed by client' % len(data) in srv.text(), srv.text())


def test_echo_many():
    """50 connections at once: all open together, then 50 client processes."""
    with Server(PROGS['echo']) as srv:
        socks = [connect(srv.port) for _ in range(50)]
        for i, s in enumerate(socks):  # all 50 are open now; each gets its echo
            msg = ('client %d says hi\n' % i).encode() * (i + 1)
            s.sendall(msg)
            check(recv_exact(s, len(msg)) == msg, 'wrong echo on connection %d' % i)
        for s in socks:
            s.shutdown(socket.SHUT_WR)
            check(recv_until_eof(s) == b'', 'data after the echo')
            s.close()

        procs = []
        for i in range(50):
            data = os.urandom(random.randint(1, 256 << 10))
            fin = open(tmpfile('many%d.in' % i, data), 'rb')
            p = subprocess.Popen([*PROGS['client'], '-p', str(srv.port), '-t', '20000'],
                                 stdin=fin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            procs.append((p, fin, data))
        for i, (p, fin, data) in enumerate(procs):
            out, err = p.communicate(timeout=120)
            fin.close()
            check(p.returncode == 0, 'client %d exited %d: %r' % (i, p.returncode, err))
            check(out == data, 'client %d: echo differs (%d of %d bytes)' %
                  (i, len(out), len(data)))
        srv.stop()
        lines = [l for l in srv.text().splitlines() if 'echoed' in l]
        check(len(lines) == 100, 'expected 100 log lines, got %d' % len(lines))


def feed_quietly(f, data):
    """Writes data to a child's stdin and closes it; a child that has ended
    is not an error here."""
    try:
        f.write(data)
        f.close()
    except (BrokenPipeError, ValueError, OSError):
        pass


def test_echo_abort(server='echo', client='client'):
    """Clients that vanish mid-stream do not disturb the others."""
    chunk = os.urandom(256 << 10)
    with Server(PROGS[server]) as srv:
        steady = connect(srv.port)  # stays mid-stream through all of this

        def steady_round():
            steady.sendall(chunk)
            check(recv_exact(steady, len(chunk)) == chunk, 'steady client: wrong echo')

        steady_round()

        # 1. Sends 2 MiB without reading the echo, then resets.
        a = connect(srv.port)
        a_port = a.getsockname()[1]
        a.sendall(b'x')  # a round trip first: the server is handling `a` now
        check(recv_exact(a, 1) == b'x', 'no echo')
        a.setblocking(False)
        try:
            for _ in range(32):
                a.send(chunk[:64 << 10])
        except BlockingIOError:
            pass  # both directions are full: the server is stuck sending to us
        reset(a)
        steady_round()

        # 2. Connects and resets at once, before sending anything.
        reset(connect(srv.port))
        steady_round()

        # 3. A client process killed (SIGKILL) in the middle of a transfer.
        p = subprocess.Popen([*PROGS[client], '-p', str(srv.port)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # Fed from a thread: a client may stop reading its input while its
        # output is full (raw-client does), and we read that output below.
        threading.Thread(target=feed_quietly, args=(p.stdin, chunk), daemon=True).start()
        check(len(read_bytes(p.stdout, 1000)) == 1000,
              'no echo for the client that is about to be killed')
        p.kill()
        p.wait(WAIT)
        p.stdout.close()
        steady_round()

        # 4. Half a request, then a plain close without reading the reply.
        h = connect(srv.port)
        h.sendall(chunk)
        h.close()
        steady_round()

        # 5. The server is stopped while a client sends 64 KiB and closes
        # (plainly). When it runs again, it reads and echoes those bytes into
        # a closed socket: the first echo is answered with a reset, the next
        # one fails with EPIPE - or, without MSG_NOSIGNAL, raises the SIGPIPE
        # that kills a server.
        c = connect(srv.port)
        c.sendall(b'y')  # a round trip first: the server is handling `c` now
        check(recv_exact(c, 1) == b'y', 'no echo')
        srv.proc.send_signal(signal.SIGSTOP)
        try:
            c.sendall(chunk[:64 << 10])
            c.close()
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        steady_round()

        # The server is alive and still serves newcomers.
        r = run([*PROGS[client], '-p', str(srv.port), 'still', 'here'])
        check(r.returncode == 0 and r.stdout == b'still here', repr(r))
        steady.shutdown(socket.SHUT_WR)
        check(recv_until_eof(steady) == b'', 'steady client: data after its echo')
        steady.close()
        srv.stop()
        line = [l for l in srv.text().splitlines() if l.startswith('127.0.0.1:%d:' % a_port)]
        check(len(line) == 1 and re.search('reset|broken pipe', line[0], re.I),
              'no reset logged for the aborting client: %r' % line)


def test_echo_limit():
    """-m 1: one client at a time; the next waits in the backlog, not refused.
    This is the guide's demonstration of a full server: connect succeeds, no
    reply comes, and a client with a timeout gives up."""
    with Server(PROGS['echo'], '-m', '1') as srv:
        a = connect(srv.port)
        a.sendall(b'first')
        check(recv_exact(a, 5) == b'first', 'first client: wrong echo')
        b = connect(srv.port)  # accepted by the kernel, waits for a worker
        b.sendall(b'second')
        ready, _, _ = select.select([b], [], [], 0.5)
        check(not ready, 'second client answered while the only worker is busy')
        r = run([*PROGS['client'], '-H', '127.0.0.1', '-p', str(srv.port), '-t', '1000', 'third'])
        check(r.returncode == 1 and r.stdout == b'' and b'timed out' in r.stderr,
              'client -t 1000 behind a busy worker: %r' % r)
        a.close()
        check(recv_exact(b, 6) == b'second', 'second client: wrong echo')
        b.close()
        srv.stop(signal.SIGTERM)


# ------------------------------------------------------- echo-server in 1.1

def raise_fd_limit(need):
    """Raises our descriptor limit (children inherit it) or skips the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        print('SKIP: descriptor limit %d is below the %d this test needs' % (hard, need))
        sys.exit(77)
    want = need if hard == resource.RLIM_INFINITY else min(hard, max(need, soft))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def thread_count(pid):
    with open('/proc/%d/status' % pid) as f:
        return int(re.search(r'^Threads:\s*(\d+)', f.read(), re.M).group(1))


def test_echo_fibers():
    """-M fibers: 2,000 clients connected at once, each echoed while all the
    others stay open; then the usual 8 MiB and abort tests in fiber mode."""
    n = 2000
    if os.environ.get('TCPKIT_UNDER_VALGRIND') == '1':
        n = 200  # memcheck runs every fiber switch through its JIT: bounded time
    raise_fd_limit(2 * n + 200)  # our n sockets plus the server's n
    socks = []
    try:
        with Server(PROGS['echo'], '-M', 'fibers', '-m', str(2 * n)) as srv:
            for _ in range(n):
                socks.append(connect(srv.port))
            for i, s in enumerate(socks):  # every connection has its handler
                s.sendall(b'fiber %d\n' % i)
            for i, s in enumerate(socks):
                check(recv_exact(s, len(b'fiber %d\n' % i)) == b'fiber %d\n' % i,
                      'wrong echo on connection %d of %d' % (i, n))
            # ...on a few event-loop threads, not a thread per client.
            threads = thread_count(srv.proc.pid)
            check(threads < 64, '%d server threads for %d clients: not fibers' % (threads, n))
            for s in socks:
                s.shutdown(socket.SHUT_WR)
            for s in socks:
                check(recv_until_eof(s) == b'', 'data after the echo')
                s.close()
            socks = []
            srv.stop()
            lines = [l for l in srv.text().splitlines() if 'closed by client' in l]
            check(len(lines) == n, 'expected %d log lines, got %d' % (n, len(lines)))
    finally:
        for s in socks:
            s.close()
    # The other echo lessons hold in fiber mode too.
    data = os.urandom(8 << 20)
    with Server(PROGS['echo'], '-M', 'fibers') as srv:
        r = run([*PROGS['client'], '-p', str(srv.port)], input=data, timeout=120)
        check(r.returncode == 0 and r.stdout == data, 'fibers, 8 MiB: %r' % r.stderr)
        srv.stop(signal.SIGTERM)


def test_echo_deadline():
    """-d 1: a slow-drip client (one byte every 0.2 s, each well inside the
    60 s per-call timeout) is dropped after about 1 s, while normal clients
    are served before, during and after."""
    with Server(PROGS['echo'], '-d', '1') as srv:
        drip = connect(srv.port)
        start = time.monotonic()
        echoed, ended, n = b'', None, 0
        while time.monotonic() - start < 20:  # without a deadline: never ends
            try:
                drip.sendall(b'.')
            except (BrokenPipeError, ConnectionResetError):
                ended = time.monotonic() - start
                break
            n += 1
            # Waiting on the socket paces the drip and sees the drop at once.
            if select.select([drip], [], [], 0.2)[0]:
                try:
                    chunk = drip.recv(100)
                except ConnectionResetError:
                    chunk = b''
                if not chunk:
                    ended = time.monotonic() - start
                    break
                echoed += chunk
            if n % 2 == 0:  # a normal client, served while the drip goes on
                r = run([*PROGS['client'], '-p', str(srv.port), 'normal %d' % n])
                check(r.returncode == 0 and r.stdout == b'normal %d' % n, repr(r))
        drip.close()
        check(ended is not None, 'drip client still served after 20 s')
        # Generous above (a loaded machine, valgrind); the per-call timeout is 60 s.
        check(0.8 <= ended <= 10, 'drip client dropped after %.2f s, not about 1 s' % ended)
        check(len(echoed) >= 2 and set(echoed) == {ord('.')}, 'drip echo %r' % echoed)
        r = run([*PROGS['client'], '-p', str(srv.port), 'after'])
        check(r.returncode == 0 and r.stdout == b'after', repr(r))
        srv.stop()
        check('deadline passed' in srv.text(), srv.text())
    with Server(PROGS['echo'], '-d', '0') as srv:  # 0: no deadline
        r = run([*PROGS['client'], '-p', str(srv.port), 'none'])
        check(r.returncode == 0 and r.stdout == b'none', repr(r))
        srv.stop()


class Activated(Server):
    """echo-server started the way systemd starts it: the listening socket
    already bound by us, its parent, and handed over as descriptor 3."""

    def __init__(self, sock, pid='', fds='1'):
        self.name = 'echo-server (activated)'
        self.clean_exit = True
        self.log = tempfile.TemporaryFile(dir=TMP)
        # A small Python stage moves the socket to descriptor 3 and execs the
        # server: exec keeps the process ID, so getpid() is the server's PID.
        stage = ('import os, sys\n'
                 'if %d != 3:\n'
                 '    os.dup2(%d, 3)\n'
                 '    os.close(%d)\n'
                 'env = dict(os.environ, LISTEN_FDS=%r, LISTEN_PID=%r or str(os.getpid()))\n'
                 'os.execvpe(sys.argv[1], sys.argv[1:], env)\n') % (
                     sock.fileno(), sock.fileno(), sock.fileno(), fds, pid)
        self.proc = subprocess.Popen([sys.executable, '-c', stage, *PROGS['echo'], '-p', '0'],
                                     pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = read_line(self.proc.stdout)
        m = re.fullmatch(rb'listening on (\S+):(\d+)\n', line)
        check(m is not None, 'bad ready line %r (log: %s)' % (line, self.text()))
        self.addr, self.port = m.group(1).decode(), int(m.group(2))


def test_echo_activation():
    """Socket activation: LISTEN_FDS=1 and LISTEN_PID=its PID make
    echo-server serve descriptor 3 instead of binding; a LISTEN_PID of some
    other process does not."""
    parent = socket.socket()
    parent.bind(('127.0.0.1', 0))
    parent.listen(16)
    port = parent.getsockname()[1]
    early = connect(port)  # queued before the server even runs: not refused
    early.sendall(b'early')
    try:
        with Activated(parent) as srv:
            parent.close()  # the server holds the only copy now
            check(srv.port == port, 'ready line says port %d, we bound %d' % (srv.port, port))
            check(recv_exact(early, 5) == b'early', 'queued client: wrong echo')
            early.close()
            data = os.urandom(1 << 20)
            r = run([*PROGS['client'], '-H', '127.0.0.1', '-p', str(port)], input=data,
                    timeout=120)
            check(r.returncode == 0 and r.stdout == data, 'activated: %r' % r.stderr)
            srv.stop()
            check('socket activation' in srv.text(), srv.text())
    finally:
        parent.close()
        early.close()
    # Variables meant for another process (the PID of this driver): ignored.
    other = socket.socket()
    other.bind(('127.0.0.1', 0))
    other.listen(1)
    try:
        with Activated(other, pid=str(os.getpid())) as srv:
            check(srv.port != other.getsockname()[1], 'adopted a socket meant for another PID')
            check('socket activation' not in srv.text(), srv.text())
            srv.stop()
    finally:
        other.close()


# --------------------------------------------------------------- hello tests

def greet(port):
    s = connect(port)
    check(recv_exact(s, 9) == b'Welcome!\n', 'no welcome')
    return s


def ask(s, line, expect):
    s.sendall(line)
    got = recv_exact(s, len(expect))
    check(got == expect, 'sent %r, expected %r, got %r' % (line[:40], expect[:40], got[:40]))


def test_hello():
    """The hello-server conversation: lines, CR LF, exit, over-long lines."""
    with Server(PROGS['hello']) as srv:
        s = greet(srv.port)
        ask(s, b'Alice\n', b'Hello, Alice!\n')
        ask(s, b'Bob\r\n', b'Hello, Bob!\n')
        ask(s, b'\n', b'Hello, !\n')
        ask(s, b'a\nb\r\nc\n', b'Hello, a!\nHello, b!\nHello, c!\n')  # one send, 3 lines
        s.sendall(b'Car')  # one line in two sends: a short read must not split it
        ask(s, b'ol\n', b'Hello, Carol!\n')
        ask(s, b'x' * 1024 + b'\r\n', b'Hello, ' + b'x' * 1024 + b'!\n')  # longest line
        ask(s, b'y' * 1024 + b'\n', b'Hello, ' + b'y' * 1024 + b'!\n')
        ask(s, b'exit now\n', b'Hello, exit now!\n')
        # "exit" closes, orderly (FIN, not RST) even with more data behind it.
        s.sendall(b'exit\nnobody reads this\n')
        check(recv_until_eof(s) == b'', 'reply after exit')
        s.close()

        for line in (b'z' * 1025 + b'\n', b'z' * 1025 + b'\r\n', b'z' * 1026 + b'\n',
                     b'w' * 100000):
            s = greet(srv.port)
            s.sendall(line)
            got = recv_until_eof(s)
            check(got == b'error: line too long\n', '%d-byte line: got %r' % (len(line), got))
            s.close()

        # A line that ends with the stream, through the client program.
        r = run([*PROGS['client'], '-p', str(srv.port), 'Zed'])
        check(r.returncode == 0 and r.stdout == b'Welcome!\nHello, Zed!\n', repr(r))
        r = run([*PROGS['client'], '-p', str(srv.port)], input=b'World\r\nexit\nmore\n')
        check(r.returncode == 0 and r.stdout == b'Welcome!\nHello, World!\n', repr(r))
        r = run([*PROGS['client'], '-p', str(srv.port)], input=b'q' * 5000 + b'\n')
        check(r.returncode == 0 and r.stdout == b'Welcome!\nerror: line too long\n', repr(r))

        # 20 conversations at once, each on its own thread in the server.
        socks = [greet(srv.port) for _ in range(20)]
        for i, s in enumerate(socks):
            ask(s, b'n%d\n' % i, b'Hello, n%d!\n' % i)
        for s in socks:
            s.sendall(b'exit\n')
            check(recv_until_eof(s) == b'', 'reply after exit')
            s.close()

        # SIGTERM with an idle client connected: clean exit, the client sees EOF.
        idle = greet(srv.port)
        ask(idle, b'idle\n', b'Hello, idle!\n')
        srv.stop(signal.SIGTERM)
        check(recv_until_eof(idle) == b'', 'data after shutdown')
        idle.close()
        log = srv.text()
        check(log.count('said exit') == 22 and log.count('line too long') == 5, log)


def test_signals():
    """SIGINT/SIGTERM stop the servers promptly, idle clients included."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        with Server(PROGS['echo']) as srv:
            idle = connect(srv.port)
            idle.sendall(b'ping')
            check(recv_exact(idle, 4) == b'ping', 'no echo')
            srv.stop(sig)  # the handler blocked in a receive is woken
            check(recv_until_eof(idle) == b'', 'data after shutdown')
            idle.close()
        with Server(PROGS['hello']) as srv:
            srv.stop(sig)
    bind = '::1' if have_ipv6_loopback() else '127.0.0.1'
    with Server(PROGS['echo'], '-b', bind) as srv:
        check(srv.addr in ('[::1]', '127.0.0.1'), 'ready line shows %r' % srv.addr)
        r = run([*PROGS['client'], '-H', srv.addr.strip('[]'), '-p', str(srv.port), 'v6'])
        check(r.returncode == 0 and r.stdout == b'v6', repr(r))
        srv.stop()


def test_hello_busy():
    """Client 1025 gets "error: server busy" and a clean end of stream, even
    when its first line is already waiting: the busy path closes lingering."""
    if os.environ.get('TCPKIT_UNDER_VALGRIND') == '1':
        print('SKIP: 1025 server threads exceed valgrind\'s thread limit')
        sys.exit(77)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        print('SKIP: descriptor limit %d is below the 1200 this test needs' % hard)
        sys.exit(77)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))  # inherited
    socks = []
    try:
        with Server(PROGS['hello']) as srv:
            socks = [greet(srv.port) for _ in range(1024)]
            # Stopped, the server cannot accept; the kernel still completes
            # the handshake and queues our line, so it is certainly unread
            # when the server turns us away.
            srv.proc.send_signal(signal.SIGSTOP)
            try:
                late = connect(srv.port)
                late.sendall(b'Ada\n')
            finally:
                srv.proc.send_signal(signal.SIGCONT)
            check(recv_until_eof(late) == b'error: server busy\n', 'wrong reply when full')
            late.close()
            ask(socks[0], b'still\n', b'Hello, still!\n')
            srv.stop(signal.SIGTERM)
            check('one turned away' in srv.text(), srv.text()[-500:])
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------- the raw programs

def test_raw_bulk():
    """raw-client and raw-echo-server: 8 MiB byte-exact, message and stdin
    modes, and each against its libtcpkit twin."""
    test_echo_bulk('raw-echo', 'raw-client')
    data = os.urandom(1 << 20)
    for server, client in (('echo', 'raw-client'), ('raw-echo', 'client')):
        with Server(PROGS[server]) as srv:
            r = run([*PROGS[client], '-p', str(srv.port)], input=data, timeout=120)
            check(r.returncode == 0 and r.stdout == data,
                  '%s to %s: exit %d, %d bytes, %r' %
                  (client, server, r.returncode, len(r.stdout), r.stderr))
            srv.stop()
    with Server(PROGS['raw-echo']) as srv:
        port = str(srv.port)
        for args, stdin, want in ((['one', 'two'], b'ignored', b'one two'),
                                  ([''], None, b''),
                                  ([], b'one\ntwo\n', b'one\ntwo\n'),
                                  ([], b'', b'')):
            r = run([*PROGS['raw-client'], '-p', port, *args], input=stdin,
                    stdin=subprocess.DEVNULL if stdin is None else None)
            check(r.returncode == 0 and r.stdout == want and r.stderr == b'',
                  '%r with stdin %r: %r' % (args, stdin, r))
        srv.stop()
    with Server(PROGS['hello']) as srv:  # the server closes first, after "exit"
        r = run([*PROGS['raw-client'], '-p', str(srv.port)], input=b'World\r\nexit\nmore\n')
        check(r.returncode == 0 and r.stdout == b'Welcome!\nHello, World!\n', repr(r))
        srv.stop()


def test_raw_abort():
    """raw-echo-server survives clients that reset, abort or are killed."""
    test_echo_abort('raw-echo', 'raw-client')


def stream_through(client, port, kill):
    """Runs `client` with an endless stream on stdin while draining its stdout;
    calls kill() once 1 MiB has come back. Returns (exit status, stderr,
    echoed bytes, sent bytes)."""
    p = subprocess.Popen([*PROGS[client], '-H', '127.0.0.1', '-p', str(port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent, echoed, errors = [], [], []
    enough = threading.Event()

    def feed():
        try:
            for _ in range(256):  # at most 64 MiB
                chunk = os.urandom(256 << 10)
                sent.append(chunk)  # first: part of it may be echoed
                p.stdin.write(chunk)
                p.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the client has ended

    def drain():
        got = 0
        while True:
            chunk = p.stdout.read1(65536)
            if not chunk:
                break
            echoed.append(chunk)
            got += len(chunk)
            if got >= 1 << 20:
                enough.set()
        enough.set()

    def drain_err():
        errors.append(p.stderr.read())

    threads = [threading.Thread(target=f, daemon=True) for f in (feed, drain, drain_err)]
    for t in threads:
        t.start()
    check(enough.wait(WAIT * 2), 'no echo from %s' % client)
    kill()
    try:
        rc = p.wait(WAIT * 2)
    except subprocess.TimeoutExpired:
        p.kill()
        raise Failure('%s did not end after its server was killed' % client)
    for t in threads[1:]:
        t.join(WAIT)
    try:
        p.stdin.close()
    except OSError:
        pass  # unflushed bytes for a client that is gone
    return rc, errors[0] if errors else b'', b''.join(echoed), b''.join(sent)


def test_raw_killed():
    """A server killed mid-stream: the client exits by itself, 0 or 1 with one
    line on stderr, never killed by SIGPIPE; an idle server killed gives EOF."""
    for client in ('raw-client', 'client'):
        with Server(PROGS['raw-echo']) as srv:
            rc, err, echoed, sent = stream_through(client, srv.port, srv.proc.kill)
        check(rc >= 0, '%s died of signal %d (SIGPIPE is %d)' % (client, -rc, signal.SIGPIPE))
        check(rc in (0, 1), '%s exited %d: %r' % (client, rc, err))
        check(rc == 0 or (err.startswith(NAMES[client].encode() + b': ') and
                          err.count(b'\n') == 1), '%s: stderr %r' % (client, err))
        check(sent.startswith(echoed), '%s: echoed bytes differ from those sent' % client)

        # Crash versus reset: a server killed while it has read everything
        # we sent closes like close() does; the client sees EOF and exits 0.
        with Server(PROGS['raw-echo']) as srv:
            p = subprocess.Popen([*PROGS[client], '-H', '127.0.0.1', '-p', str(srv.port)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            p.stdin.write(b'ping')
            p.stdin.flush()
            check(read_bytes(p.stdout, 4) == b'ping', 'no echo')
            srv.proc.kill()
            try:
                out, err = p.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                p.kill()
                raise Failure('%s still waits after its idle server was killed' % client)
            check(p.returncode == 0 and out == b'' and err == b'',
                  '%s after kill -9 of an idle server: exit %d, %r' % (client, p.returncode, err))


# ---------------------------------------------------------------- http tests

def http_get(*args, timeout=WAIT):
    return run([*PROGS['http'], *args], timeout=timeout)


def test_http_file():
    """http-get against python's http.server: a binary file, byte-exact."""
    root = os.path.join(TMP, 'www')
    os.mkdir(root)
    data = os.urandom((3 << 20) + 12345)
    tmpfile('www/data.bin', data)
    tmpfile('www/empty.bin', b'')
    p = subprocess.Popen([sys.executable, '-u', '-m', 'http.server', '0', '--bind', '127.0.0.1',
                          '--directory', root], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = read_line(p.stdout)
        m = re.search(rb'port (\d+)', line)
        check(m is not None, 'http.server said %r' % line)
        base = 'http://127.0.0.1:%s' % m.group(1).decode()

        r = http_get(base + '/data.bin', timeout=120)
        check(r.returncode == 0, 'exit %d: %r' % (r.returncode, r.stderr[-500:]))
        check(r.stdout == data, 'body differs (%d of %d bytes)' % (len(r.stdout), len(data)))
        check(re.match(rb'HTTP/1\.[01] 200 ', r.stderr), 'status line: %r' % r.stderr[:100])
        check(b'\nContent-Length: %d\n' % len(data) in r.stderr, 'headers: %r' % r.stderr)

        out = os.path.join(TMP, 'data.out')
        r = http_get('-o', out, '-t', '20000', base + '/data.bin?query=1#fragment',
                     timeout=120)
        check(r.returncode == 0 and r.stdout == b'', repr(r.stderr[-300:]))
        with open(out, 'rb') as f:
            check(f.read() == data, '-o FILE: body differs')

        r = http_get(base + '/empty.bin')
        check(r.returncode == 0 and r.stdout == b'', repr(r))
        r = http_get(base + '/missing')  # any HTTP response is a success
        check(r.returncode == 0 and re.match(rb'HTTP/1\.[01] 404 ', r.stderr), repr(r))
    finally:
        p.terminate()  # by PID
        p.wait(WAIT)
        p.stdout.close()


class TinyHTTP:
    """A little HTTP server on a thread, for what http.server cannot send."""

    def __init__(self, family=socket.AF_INET, host='127.0.0.1'):
        self.sock = socket.socket(family)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(WAIT)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.body = os.urandom(300000)
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def close(self):
        self.stop = True
        self.sock.close()

    def handle(self, c):
        c.settimeout(WAIT)
        try:
            req = b''
            while b'\r\n\r\n' not in req:
                chunk = c.recv(4096)
                if not chunk:
                    return
                req += chunk
            self.requests.append(req)
            path = req.split(b' ')[1].decode()
            getattr(self, 'route_' + path.strip('/').split('?')[0], self.route_404)(c)
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def dribble(c, data):
        """Sends in small random pieces, so reads come back short."""
        rnd = random.Random(1)
        i = 0
        while i < len(data):
            n = rnd.randint(1, 3000)
            c.sendall(data[i:i + n])
            i += n

    def chunked(self, body):
        rnd = random.Random(2)
        out, i = [], 0
        while i < len(body):
            n = rnd.randint(1, 9000)
            piece = body[i:i + n]
            size = '%x' % len(piece)
            size = size.upper() if rnd.random() < 0.5 else size
            ext = ';name=value' if rnd.random() < 0.2 else ''
            out.append(('%s%s\r\n' % (size, ext)).encode() + piece + b'\r\n')
            i += n
        return b''.join(out)

    def route_chunked(self, c):
        self.dribble(c, b'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n'
                        b'Transfer-Encoding: chunked\r\n\r\n' + self.chunked(self.body) +
                     b'0\r\nX-Trailer: yes\r\n\r\n')

    def route_length(self, c):
        # Content-Length, then the connection stays open until the client
        # closes: http-get must stop at the length, not wait for EOF.
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(self.body) +
                  self.body)
        while c.recv(4096):
            pass

    def route_eof(self, c):
        self.dribble(c, b'HTTP/1.0 200 OK\r\n\r\n' + self.body)

    def route_interim(self, c):
        c.sendall(b'HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n'
                  b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello')

    def route_nobody(self, c):
        c.sendall(b'HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n')
        while c.recv(4096):
            pass

    def route_truncated(self, c):
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789')

    def route_garbage(self, c):
        c.sendall(b'SSH-2.0-OpenSSH_9.2\r\n')

    def route_badchunk(self, c):
        c.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n')

    def route_cutchunk(self, c):
        c.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc')

    def route_silent(self, c):
        while c.recv(4096):
            pass

    def route_404(self, c):
        c.sendall(b'HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found')


def test_http_chunked():
    """Chunked bodies, Content-Length, EOF-delimited, 1xx, and bad responses."""
    srv = TinyHTTP()
    try:
        base = 'http://127.0.0.1:%d' % srv.port
        r = http_get(base + '/chunked')
        check(r.returncode == 0, 'exit %d: %r' % (r.returncode, r.stderr))
        check(r.stdout == srv.body, 'chunked body differs (%d bytes)' % len(r.stdout))
        check(b'Transfer-Encoding: chunked' in r.stderr and b'X-Trailer: yes' in r.stderr,
              repr(r.stderr))
        req = srv.requests[-1].decode()
        check(req.startswith('GET /chunked HTTP/1.1\r\n'), req)
        for header in ('Host: 127.0.0.1:%d' % srv.port, 'Connection: close',
                       'User-Agent: libtcpkit-http-get/'):
            check('\r\n' + header in req, 'request lacks %r: %r' % (header, req))

        for path in ('/length', '/eof'):
            r = http_get('-t', '10000', base + path)
            check(r.returncode == 0 and r.stdout == srv.body, '%s: %r' % (path, r.stderr))
        r = http_get(base + '/interim')
        check(r.returncode == 0 and r.stdout == b'hello' and b'103 Early' in r.stderr, repr(r))
        r = http_get(base + '/nobody')
        check(r.returncode == 0 and r.stdout == b'', repr(r))
        r = http_get(base + '/404')
        check(r.returncode == 0 and r.stdout == b'not found', repr(r))
        r = http_get(base + '?x=1')
        check(srv.requests[-1].startswith(b'GET /?x=1 HTTP/1.1\r\n'), repr(srv.requests[-1]))

        for path, words in (('/truncated', b'truncated'), ('/garbage', b'malformed'),
                            ('/badchunk', b'chunk size'), ('/cutchunk', b'truncated'),
                            ('/silent', b'timed out')):
            r = http_get('-t', '500', base + path)
            check(r.returncode == 1, '%s: exit %d: %r' % (path, r.returncode, r.stderr))
            last = r.stderr.splitlines()[-1] if r.stderr else b''
            check(last.startswith(b'http-get: ') and words in last, '%s: %r' % (path, r.stderr))
    finally:
        srv.close()

    if have_ipv6_loopback():
        srv = TinyHTTP(socket.AF_INET6, '::1')
        try:
            r = http_get('http://[::1]:%d/chunked' % srv.port)
            check(r.returncode == 0 and r.stdout == srv.body, repr(r.stderr))
            check(b'\r\nHost: [::1]:%d\r\n' % srv.port in srv.requests[-1],
                  repr(srv.requests[-1]))
        finally:
            srv.close()


# ------------------------------------------------------------------------ TLS

def tls_setup():
    """Generates the test PKI (tests/tls/make-certs.sh) into a fresh
    directory, removed with TMP; returns its path. Skips the test (77) in a
    build without TLS or without openssl."""
    if os.environ.get('TK_EXAMPLES_TLS') != '1':
        print('SKIP: this build has no TLS (-Dtls=disabled or no OpenSSL)')
        sys.exit(77)
    gen = os.environ.get('TK_EXAMPLES_CERTGEN', '')
    if not os.path.exists(gen) or shutil.which('openssl') is None:
        print('SKIP: no openssl or no certificate generator (%r)' % gen)
        sys.exit(77)
    pki = os.path.join(TMP, 'pki')
    os.mkdir(pki)
    r = run(['sh', gen, pki], timeout=120)
    check(r.returncode == 0, 'make-certs.sh failed: %r' % r.stderr)
    return pki


def tls_server(pki, cert='server', *args):
    return Server(PROGS['echo'], '--tls-cert', os.path.join(pki, cert + '.pem'),
                  '--tls-key', os.path.join(pki, cert + '.key'), *args)


def test_tls_echo():
    """client --tls to echo-server --tls-cert/--tls-key: 8 MiB byte-exact,
    verified by name and by address; refused certificates exit 1 with the
    reason; --insecure passes with a warning."""
    pki = tls_setup()
    ca = os.path.join(pki, 'ca.pem')
    data = os.urandom(8 << 20)
    src = tmpfile('tls-bulk.in', data)
    with tls_server(pki) as srv, open(src, 'rb') as fin:
        port = str(srv.port)
        r = run([*PROGS['client'], '-p', port, '--tls', '--cacert', ca], stdin=fin, timeout=120)
        check(r.returncode == 0 and r.stderr == b'', 'TLS 8 MiB: exit %d, %r' %
              (r.returncode, r.stderr))
        check(r.stdout == data, 'TLS echo differs (%d of %d bytes)' % (len(r.stdout), len(data)))
        for args in ((['-H', '127.0.0.1', '--tls', '--cacert', ca]),  # IP in the certificate
                     (['-H', '127.0.0.1', '--cacert', ca, '--servername', 'localhost'])):
            r = run([*PROGS['client'], '-p', port, *args, 'secret', 'words'])
            check(r.returncode == 0 and r.stdout == b'secret words' and r.stderr == b'',
                  '%r: %r' % (args, r))
        # Refused: the reason on stderr, exit 1, nothing on stdout.
        for args, why in ((['--tls'], rb'certificate|issuer'),  # test CA not in the system store
                          (['--cacert', ca, '--servername', 'other.invalid'],
                           rb'mismatch|name')):
            r = run([*PROGS['client'], '-p', port, *args, 'hi'])
            check(r.returncode == 1 and r.stdout == b'' and r.stderr.startswith(b'client: ') and
                  re.search(why, r.stderr, re.I), '%r: %r' % (args, r))
        r = run([*PROGS['client'], '-p', port, '--insecure', 'anyway'])
        check(r.returncode == 0 and r.stdout == b'anyway' and b'warning' in r.stderr and
              b'insecure' in r.stderr, '--insecure: %r' % r)
        # A plain-TCP client gets no echo: the server waits for a handshake.
        r = run([*PROGS['client'], '-p', port, '-t', '2000', 'plain'])
        check(r.stdout == b'', 'plaintext echoed by a TLS server: %r' % r)
        srv.stop()
        check(srv.text().count('closed by client') >= 4, srv.text())
    with tls_server(pki, 'expired') as srv:
        r = run([*PROGS['client'], '-p', str(srv.port), '--cacert', ca, 'hi'])
        check(r.returncode == 1 and b'certificate has expired' in r.stderr, repr(r))
        srv.stop()
    with tls_server(pki, 'server', '-M', 'fibers') as srv:  # TLS on fibers too
        r = run([*PROGS['client'], '-p', str(srv.port), '--cacert', ca], input=data[:1 << 20],
                timeout=120)
        check(r.returncode == 0 and r.stdout == data[:1 << 20], 'fibers: %r' % r.stderr)
        srv.stop()
    # A key that does not match the certificate fails at startup.
    r = run([*PROGS['echo'], '-p', '0', '--tls-cert', os.path.join(pki, 'server.pem'),
             '--tls-key', os.path.join(pki, 'expired.key')])
    check(r.returncode == 1 and r.stdout == b'' and r.stderr.startswith(b'echo-server: '),
          'mismatched key: %r' % r)


class HTTPSServer:
    """Python's http.server behind ssl on loopback, serving root with cert."""

    def __init__(self, root, pki, cert):
        import http.server
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(pki, cert + '.pem'), os.path.join(pki, cert + '.key'))

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root, **kw)

            def log_message(self, *a):
                pass

        class Threaded(http.server.ThreadingHTTPServer):
            def handle_error(self, *a):
                pass  # a client that refuses our certificate is expected here

        self.httpd = Threaded(('127.0.0.1', 0), Quiet)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


NGINX_CONF = """%(user)sworker_processes 1;
pid %(p)s/nginx.pid;
error_log %(p)s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(p)s/body;
    proxy_temp_path %(p)s/proxy;
    fastcgi_temp_path %(p)s/fastcgi;
    uwsgi_temp_path %(p)s/uwsgi;
    scgi_temp_path %(p)s/scgi;
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(pki)s/server.pem;
        ssl_certificate_key %(pki)s/server.key;
        root %(root)s;
    }
}
"""


def start_nginx(root, pki):
    """nginx on loopback with the test certificate. We bind and listen on
    the port ourselves and hand the socket over (nginx inherits listening
    sockets named in $NGINX), so it is ready before nginx even runs: no
    polling, no race for the port. Returns (process, port), or (None, 0)."""
    nginx = shutil.which('nginx') or '/usr/sbin/nginx'
    if not os.path.exists(nginx):
        return None, 0
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    prefix = os.path.join(TMP, 'nginx')
    os.makedirs(os.path.join(prefix, 'logs'))  # nginx opens logs/error.log before its config
    conf = os.path.join(prefix, 'nginx.conf')
    with open(conf, 'w') as f:
        # As root, nginx's worker would run as nobody, who cannot read our
        # private temporary directory: keep it as root.
        user = 'user root;\n' if os.geteuid() == 0 else ''
        f.write(NGINX_CONF % {'user': user, 'p': prefix, 'port': port, 'pki': pki,
                              'root': root})
    env = dict(os.environ, NGINX='%d;' % sock.fileno())
    proc = subprocess.Popen([nginx, '-p', prefix, '-c', conf, '-g', 'daemon off;'],
                            pass_fds=(sock.fileno(),), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock.close()  # nginx has its own copy
    return proc, port


def test_https():
    """http-get https:// against Python's ssl http.server, nginx and
    echo-server with a test CA (--cacert): byte-exact; expired, wrong-name
    and untrusted certificates exit 1 with the reason; -k passes with a
    warning."""
    pki = tls_setup()
    ca = os.path.join(pki, 'ca.pem')
    root = os.path.join(TMP, 'www')
    os.mkdir(root)
    data = os.urandom((2 << 20) + 777)
    tmpfile('www/data.bin', data)

    with HTTPSServer(root, pki, 'server') as srv:
        for host in ('localhost', '127.0.0.1'):
            url = 'https://%s:%d/data.bin' % (host, srv.port)
            r = http_get('--cacert', ca, url, timeout=120)
            check(r.returncode == 0 and r.stdout == data, '%s: exit %d, %d bytes, %r' %
                  (url, r.returncode, len(r.stdout), r.stderr[-300:]))
        out = os.path.join(TMP, 'https.out')
        r = http_get('-o', out, '-t', '20000', '--cacert', ca,
                     'https://localhost:%d/data.bin' % srv.port, timeout=120)
        check(r.returncode == 0, repr(r.stderr[-300:]))
        with open(out, 'rb') as f:
            check(f.read() == data, '-o FILE over https: body differs')
        # The system store does not know our test CA.
        r = http_get('https://localhost:%d/data.bin' % srv.port)
        check(r.returncode == 1 and r.stdout == b'' and
              re.search(rb'^http-get: .*(certificate|issuer)', r.stderr, re.I | re.M),
              'untrusted CA: %r' % r)

    for cert, why in (('expired', b'certificate has expired'),
                      ('wrongname', b'mismatch'), ('self', b'self-signed')):
        with HTTPSServer(root, pki, cert) as srv:
            url = 'https://localhost:%d/data.bin' % srv.port
            r = http_get('--cacert', ca, url)
            check(r.returncode == 1 and r.stdout == b'' and why in r.stderr and
                  r.stderr.startswith(b'http-get: ') and r.stderr.count(b'\n') == 1,
                  '%s certificate: %r' % (cert, r))
            for k in ('-k', '--insecure'):
                r = http_get(k, url, timeout=120)
                check(r.returncode == 0 and r.stdout == data, '%s %s: %r' %
                      (k, cert, r.stderr[-300:]))
                check(r.stderr.startswith(b'http-get: warning: ') and b'insecure' in r.stderr,
                      '%s %s: no warning: %r' % (k, cert, r.stderr[:200]))

    # A libtcpkit TLS server: echo-server. The certificate checks happen in
    # the handshake, before any HTTP; once connected, the server echoes our
    # request, which http-get rightly calls malformed.
    with tls_server(pki, 'expired') as srv:
        r = http_get('--cacert', ca, 'https://localhost:%d/' % srv.port)
        check(r.returncode == 1 and b'certificate has expired' in r.stderr, repr(r))
        srv.stop()
    with tls_server(pki, 'wrongname') as srv:
        r = http_get('--cacert', ca, 'https://127.0.0.1:%d/' % srv.port)
        check(r.returncode == 1 and b'mismatch' in r.stderr, repr(r))
        srv.stop()
    with tls_server(pki) as srv:
        r = http_get('--cacert', ca, 'https://localhost:%d/x' % srv.port)
        check(r.returncode == 1 and b'bad status line' in r.stderr, repr(r))
        srv.stop()
        check(re.search(r'echoed \d+ bytes', srv.text()), srv.text())

    proc, port = start_nginx(root, pki)
    if proc is None:
        print('note: no nginx here; the nginx part was not run')
        return
    try:
        r = http_get('--cacert', ca, 'https://localhost:%d/data.bin' % port, timeout=120)
        check(r.returncode == 0 and r.stdout == data, 'nginx: exit %d, %d bytes, %r' %
              (r.returncode, len(r.stdout), r.stderr[-300:]))
        check(re.search(rb'^Server: nginx', r.stderr, re.M), 'not nginx? %r' % r.stderr[:300])
        r = http_get('--cacert', ca, 'https://localhost:%d/missing' % port)
        check(r.returncode == 0 and re.match(rb'HTTP/1\.1 404 ', r.stderr), repr(r))
    finally:
        proc.terminate()  # by PID
        proc.wait(WAIT)


# ------------------------------------------------------- usage and failures

def test_usage():
    """-h/--help: usage on stdout, 0. Bad usage: usage on stderr, 2."""
    for key in ('raw-client', 'raw-echo'):
        r = run([*PROGS[key], '-h'])
        check(r.returncode == 0 and r.stdout.startswith(b'usage: ') and r.stderr == b'',
              '%s -h: %r' % (key, r))
    for key in ('client', 'echo', 'hello', 'http'):
        for flag in ('-h', '--help'):
            r = run([*PROGS[key], flag])
            check(r.returncode == 0 and r.stdout.startswith(b'usage: ') and r.stderr == b'',
                  '%s %s: %r' % (key, flag, r))
        r = run([*PROGS[key], '-Z'])
        check(r.returncode == 2 and b'usage: ' in r.stderr and r.stdout == b'',
              '%s -Z: %r' % (key, r))
    bad = [('client', '-p', '0'), ('client', '-p', 'x'), ('client', '-p', '65536'),
           ('client', '-t', '0'), ('client', '-t', 'soon'), ('client', '-H'),
           ('echo', '-p', '65536'), ('echo', '-p', '-1'), ('echo', '-m', '0'),
           ('echo', 'extra'), ('echo', '-f'), ('echo', '-M', 'x'), ('echo', '-M'),
           ('echo', '-M', ''), ('echo', '-d', '-1'), ('echo', '-d', 'x'), ('echo', '-d', '1.5'),
           ('echo', '--tls-cert', 'c.pem'), ('echo', '--tls-key', 'k.pem'), ('hello', '-p', 'x'), ('hello', 'extra'),
           ('client', '--cacert'), ('client', '--servername'), ('client', '--servername', ''),
           ('client', '--tls=yes'), ('client', '--insecure=1'),
           ('http',), ('http', 'http://a/', 'http://b/'), ('http', '-t', '-5', 'http://a/'),
           ('http', '-k'), ('http', '--cacert'), ('http', '--insecure'), ('http', '-K', 'x'),
           ('raw-client', '-Z'), ('raw-client', '-p', '0'), ('raw-client', '-p', 'x'),
           ('raw-client', '-p', '65536'), ('raw-client', '-p', '-1'), ('raw-client', '-H'),
           ('raw-echo', '-Z'), ('raw-echo', '-p', '65536'), ('raw-echo', '-p', '-1'),
           ('raw-echo', '-p', ''), ('raw-echo', 'extra')]
    for key, *args in bad:
        r = run([*PROGS[key], *args])
        check(r.returncode == 2 and b'usage: ' in r.stderr, '%s %s: %r' % (key, args, r))
    urls = {'https://': b'no host', 'HTTPS://h:0/': b'bad port', 'https://[::1/': b"'['",
            'ftp://example.com/': b'only http:// and https://', 'example.com': b'only http://',
            'http://': b'no host', 'http:///path': b'no host', 'http://:80/': b'no host',
            'http://[::1/': b"'['", 'http://::1/': b'brackets', 'http://[127.0.0.1]/': b'IPv6',
            'http://h:99999/': b'bad port', 'http://h:0/': b'bad port', 'http://h:8x/': b'port',
            'http://u:pw@h/': b'user', 'http://h/a b': b'spaces', 'http://h/a\r\nX: y': b'control'}
    for url, words in urls.items():
        r = run([*PROGS['http'], url])
        check(r.returncode == 2 and words in r.stderr and r.stdout == b'', '%r: %r' % (url, r))


def test_notls():
    """A build without TLS: --tls and https:// fail with exit 1 and say so."""
    if os.environ.get('TK_EXAMPLES_TLS') != '0':
        print('SKIP: this build has TLS')
        sys.exit(77)
    for key, *args in (('client', '--tls', '-p', '1', 'x'), ('http', 'https://127.0.0.1:1/'),
                       ('echo', '-p', '0', '--tls-cert', 'c.pem', '--tls-key', 'k.pem')):
        r = run([*PROGS[key], *args])
        check(r.returncode == 1 and b'without TLS' in r.stderr and r.stdout == b'',
              '%s %r: %r' % (key, args, r))


def test_refused():
    """Nobody listening: exit 1 with one line "PROGRAM: connect ADDR...: ...
    refused", naming the operation once (not "connect: connect")."""
    hold = reserved_port()
    port = hold.getsockname()[1]
    try:
        for key, *args in (('client', '-H', '127.0.0.1', '-p', str(port), 'hi'),
                           ('client', '-p', str(port)),
                           ('http', 'http://127.0.0.1:%d/' % port),
                           ('raw-client', '-H', '127.0.0.1', '-p', str(port), 'hi'),
                           ('raw-client', '-p', str(port))):
            argv = [*PROGS[key], *args]
            r = run(argv, input=b'')
            prog = NAMES[key].encode()
            check(r.returncode == 1, '%r: exit %d' % (argv, r.returncode))
            check(r.stderr.startswith(prog + b': connect ') and b'refused' in r.stderr,
                  '%r: %r' % (argv, r.stderr))
            check(len(re.findall(rb'\bconnect\b', r.stderr)) == 1,
                  'operation named twice: %r' % r.stderr)
            check(r.stderr.count(b'\n') == 1 and r.stdout == b'', repr(r))
        # A server whose port is taken by a listening socket.
        hold.listen(1)
        for key, op in (('echo', b'listen '), ('hello', b'listen '), ('raw-echo', b'bind: ')):
            r = run([*PROGS[key], '-p', str(port)])
            check(r.returncode == 1 and r.stdout == b'', '%s: %r' % (key, r))
            check(r.stderr.startswith(NAMES[key].encode() + b': ' + op)
                  and b'in use' in r.stderr.lower(), repr(r.stderr))
            check(r.stderr.count(op.strip(b' :')) == 1, 'operation named twice: %r' % r.stderr)
    finally:
        hold.close()


# --------------------------------------------------------------- outside build

def test_outside():
    """Install the library to a temporary root and build client.c against it
    with pkg-config, exactly as a user would; run it against echo-server."""
    build_root, source_root, meson, cc, pkgconf = sys.argv[8:13]
    dest = os.path.join(TMP, 'root')
    r = run([meson, 'install', '-C', build_root, '--no-rebuild', '--destdir', dest,
             '--quiet'], timeout=120)
    check(r.returncode == 0, 'meson install failed: %r' % (r.stdout + r.stderr)[-2000:])
    pcs = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs if f == 'libtcpkit.pc']
    check(len(pcs) == 1, 'libtcpkit.pc installed %d times' % len(pcs))
    # The system's .pc files come after the installed one: libtcpkit.pc's
    # Requires.private names libssl and libcrypto when built with TLS.
    sys_pc = run([pkgconf, '--variable', 'pc_path', 'pkg-config']).stdout.decode().strip()
    pc_dirs = os.path.dirname(pcs[0]) + (':' + sys_pc if sys_pc else '')
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]),
               PKG_CONFIG_SYSROOT_DIR=dest, PKG_CONFIG_LIBDIR=pc_dirs)
    r = run([pkgconf, '--cflags', '--libs', 'libtcpkit'], env=env)
    check(r.returncode == 0, 'pkg-config: %r' % r.stderr)
    flags = r.stdout.decode().split()
    check(any(f.startswith('-I' + dest) for f in flags), 'no -I into the root: %r' % flags)
    libdirs = [f[2:] for f in flags if f.startswith('-L' + dest)]
    check(libdirs, 'no -L into the root: %r' % flags)

    exe = os.path.join(TMP, 'client')
    src = os.path.join(source_root, 'examples', 'client.c')
    r = run(cc.split() + ['-std=c11', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-o', exe,
                          src] + flags, timeout=120)
    check(r.returncode == 0, 'compiling client.c failed: %r' % r.stderr)
    # The other examples compile the same way.
    for name in ('echo-server', 'hello-server', 'http-get'):
        r = run(cc.split() + ['-std=c11', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-o',
                              os.path.join(TMP, name),
                              os.path.join(source_root, 'examples', name + '.c')] + flags,
                timeout=120)
        check(r.returncode == 0, 'compiling %s.c failed: %r' % (name, r.stderr))
    # The raw programs need no libtcpkit at all: no pkg-config flags.
    for name in ('raw-client', 'raw-echo-server'):
        r = run(cc.split() + ['-std=c11', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-pthread',
                              '-o', os.path.join(TMP, name),
                              os.path.join(source_root, 'examples', name + '.c')], timeout=120)
        check(r.returncode == 0, 'compiling %s.c failed: %r' % (name, r.stderr))

    run_env = dict(os.environ, LD_LIBRARY_PATH=':'.join(libdirs))
    r = run(['ldd', exe], env=run_env)
    check(r.returncode == 0 and dest.encode() in r.stdout,
          'client does not load the installed library: %r' % r.stdout)
    data = os.urandom(1 << 20)
    with Server(PROGS['echo']) as srv:
        r = run([exe, '-p', str(srv.port)], input=data, env=run_env, timeout=120)
        check(r.returncode == 0 and r.stdout == data, 'outside client: %r' % r.stderr)
        srv.stop()


TESTS = {
    'echo-bulk': test_echo_bulk,
    'echo-many': test_echo_many,
    'echo-abort': test_echo_abort,
    'echo-limit': test_echo_limit,
    'echo-fibers': test_echo_fibers,
    'echo-deadline': test_echo_deadline,
    'echo-activation': test_echo_activation,
    'hello': test_hello,
    'hello-busy': test_hello_busy,
    'raw-bulk': test_raw_bulk,
    'raw-abort': test_raw_abort,
    'raw-killed': test_raw_killed,
    'signals': test_signals,
    'http-file': test_http_file,
    'http-chunked': test_http_chunked,
    'tls-echo': test_tls_echo,
    'https': test_https,
    'notls': test_notls,
    'usage': test_usage,
    'refused': test_refused,
    'outside': test_outside,
}


def main():
    global TMP
    if len(sys.argv) < 8 or sys.argv[1] not in TESTS:
        sys.stderr.write('usage: driver.py {%s} CLIENT ECHO HELLO HTTP RAW_CLIENT RAW_ECHO'
                         ' [...]\n' % ','.join(TESTS))
        return 2
    test = sys.argv[1]
    under_valgrind = os.environ.get('TCPKIT_UNDER_VALGRIND') == '1'
    for key, path in zip(KEYS, sys.argv[2:8]):
        NAMES[key] = os.path.basename(path)
        wrap = under_valgrind and (key in ('echo', 'hello', 'raw-echo') or
                                   test not in UNWRAPPED_CLIENTS)
        PROGS[key] = (VALGRIND if wrap else []) + [path]
    # Python ignores SIGPIPE in this process (its own socket writes to a
    # peer that went away raise an exception instead), but it restores the
    # default disposition in every program it starts: the examples run with
    # SIGPIPE at its default, so a send without MSG_NOSIGNAL would kill them.
    # Under the build dir when meson says where (certificates and keys the
    # TLS tests generate stay there, and go with the directory).
    with tempfile.TemporaryDirectory(prefix='tk-examples-',
                                     dir=os.environ.get('TK_EXAMPLES_TMP')) as tmp:
        TMP = tmp
        try:
            TESTS[sys.argv[1]]()
        except Failure as e:
            print('FAIL: %s: %s' % (sys.argv[1], e))
            return 1
        except subprocess.TimeoutExpired as e:
            print('FAIL: %s: timed out: %s' % (sys.argv[1], e))
            return 1
    print('PASS: %s' % sys.argv[1])
    return 0


if __name__ == '__main__':
    sys.exit(main())
