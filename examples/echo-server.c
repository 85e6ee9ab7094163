/* SPDX-License-Identifier: MIT */
/*
 * echo-server.c - the Echo Protocol (RFC 862) on top of tcpkit_serve().
 *
 *   echo-server [-b ADDR] [-p PORT] [-m MAX_CONNS] [-M threads|fibers]
 *               [-d SECONDS] [--tls-cert FILE --tls-key FILE]
 *
 *   $ ./echo-server -p 0
 *   listening on 127.0.0.1:40313
 *
 * Every byte a client sends is sent back to it, until the client closes its
 * side. Then the server closes too. That is the whole protocol, which makes
 * it the "hello world" of servers, and a handy peer for testing clients.
 *
 * Read it top to bottom; it shows, in this order:
 *   1. a connection handler: receive what is there, send all of it back, and
 *      tell an orderly end (EOF) from a reset, without ever crashing;
 *   2. a clean shutdown on Ctrl-C: a signal handler may only do
 *      async-signal-safe things, and tcpkit_listener_shutdown() is one;
 *   3. listening: bind + listen, and why a restarted server can bind again
 *      at once (SO_REUSEADDR);
 *   4. serving: tcpkit_serve() accepts in a loop and runs the handler for
 *      each client on a worker thread, at most MAX_CONNS at a time.
 *
 * Then the 1.1 additions, each a few lines and each optional:
 *   -d SECONDS  a deadline for each whole conversation (the slow-drip
 *               client that a per-call timeout cannot stop);
 *   -M fibers   the same handler as fibers on a few event-loop threads
 *               (tcpkit_serve_with), for thousands of mostly idle clients;
 *   socket activation: started by systemd with LISTEN_FDS=1, it serves the
 *               listening socket it was handed as descriptor 3 instead of
 *               binding one (doc/guide.md shows the unit files);
 *   --tls-cert/--tls-key: the same echo over TLS.
 *
 * Output: exactly one line on stdout when ready, "listening on ADDR:PORT"
 * (scripts read the port from it after -p 0), also for an adopted socket;
 * one line per connection on stderr. Exit status: 0 after SIGINT or SIGTERM, 1 when the address
 * cannot be used (one line on stderr, e.g. "echo-server: listen 127.0.0.1:9999: address already in
 * use"), 2 on bad usage.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <tcpkit.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A client that sends nothing, or stops reading what we send back, for this
 * long is dropped. Without such a limit one silent client would hold a worker
 * thread (and a descriptor) forever, and a few thousand of them would use up
 * the server. */
#define IDLE_TIMEOUT_MS 60000

static void usage(FILE *out)
{
    fputs("usage: echo-server [-b ADDR] [-p PORT] [-m MAX_CONNS] [-M threads|fibers]\n"
          "                   [-d SECONDS] [--tls-cert FILE --tls-key FILE]\n"
          "\n"
          "Echo Protocol server (RFC 862): sends every byte back until the client\n"
          "closes. Prints \"listening on ADDR:PORT\" when ready; stops on SIGINT/SIGTERM.\n"
          "Started with LISTEN_FDS=1 and LISTEN_PID=its pid (systemd socket\n"
          "activation), it serves descriptor 3 instead of binding (-b/-p unused).\n"
          "\n"
          "  -b ADDR          address to bind (default 127.0.0.1; -b :: for every interface)\n"
          "  -p PORT          port, 0-65535; 0 picks a free one (default 9999)\n"
          "  -m MAX_CONNS     clients served at once; more wait in the backlog (default 1024)\n"
          "  -M threads       one thread per client, the textbook model (the default)\n"
          "  -M fibers        the same handler as fibers on one event-loop thread per\n"
          "                   CPU, for thousands of mostly idle clients\n"
          "  -d SECONDS       end any conversation still going after SECONDS (default 0:\n"
          "                   no limit; each single wait is limited to 60 s anyway)\n"
          "  --tls-cert FILE  serve TLS with this certificate chain (PEM) ...\n"
          "  --tls-key FILE   ... and this private key (PEM); both or neither\n"
          "  -h, --help       show this help\n",
          out);
}

/* A failed libtcpkit call ends the program, exit status 1. The message
 * already names the operation, e.g. "listen 127.0.0.1:9999: address already in use",
 * so it is printed as it is, after the program's name. */
static void die(void)
{
    fprintf(stderr, "echo-server: %s\n", tcpkit_last_error());
    exit(1);
}

static void usage_error(const char *fmt, const char *arg)
{
    fputs("echo-server: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    usage(stderr);
    exit(2);
}

static bool parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/*
 * The handler: tcpkit_serve() calls it on a worker thread for each client,
 * and closes the connection when it returns.
 *
 * The buffer is on this thread's stack, so clients never share one. 16 KiB
 * per call is plenty: TCP hands us whatever has arrived, and we loop.
 */
static void echo(tcpkit_conn *conn, void *arg)
{
    char peer[TCPKIT_ADDRSTRLEN];
    if (tcpkit_conn_peer(conn, peer, sizeof peer) != TCPKIT_OK)
        strcpy(peer, "?");

    /*
     * -d: a deadline for the whole conversation. The I/O timeout above
     * limits each single wait, so a client that sends one byte every 59 s
     * never trips it and holds this handler forever (the "slow drip"). A
     * deadline counts from now, across every later call: once it has
     * passed, any call that would wait fails with TCPKIT_ETIMEDOUT
     * ("deadline passed"), and the client is dropped.
     */
    const long *deadline_s = arg;
    if (*deadline_s > 0)
        tcpkit_conn_set_deadline(conn, (int)(*deadline_s * 1000));

    char buf[16384];
    unsigned long long total = 0;
    const char *how = "closed by client";
    for (;;) {
        /*
         * recv() underneath. It returns as soon as at least one byte is
         * there, possibly far fewer than the client sent in one go: a
         * stream has no message boundaries. TCPKIT_EOF is recv() returning
         * 0: the client half-closed or closed, having sent everything.
         */
        size_t got;
        tcpkit_err err = tcpkit_recv(conn, buf, sizeof buf, &got);
        if (err == TCPKIT_EOF)
            break;
        if (err == TCPKIT_ESHUTDOWN) {
            how = "server shutting down";
            break;
        }
        if (err != TCPKIT_OK) {
            /* ERESET: the client's kernel aborted the connection - the
             * client closed while our echo was still unread on its side,
             * aborted on purpose (SO_LINGER 0), or its machine rebooted.
             * A client that crashed or was killed is no special case: its
             * kernel closes the socket as close() would, so we see EOF, or
             * a reset if our echo was still unread there.
             * ETIMEDOUT: idle too long, or past the -d deadline (we
             * close with the client's bytes unread, so it may see a reset
             * rather than EOF). The classic mistake is to exit() or
             * abort() here: one misbehaving client would kill the server
             * for everyone. We just return, and this one connection is
             * closed. */
            how = tcpkit_last_error();
            break;
        }

        /*
         * send() underneath, in a loop: a send may take only part of the
         * buffer when the socket's send buffer is nearly full, and the rest
         * must follow. tcpkit_send_all() also passes MSG_NOSIGNAL: without
         * it, sending to a client that has reset raises SIGPIPE, whose
         * default action silently kills the whole server.
         */
        size_t sent;
        err = tcpkit_send_all(conn, buf, got, &sent);
        total += sent;
        if (err != TCPKIT_OK) {
            how = tcpkit_last_error();
            break;
        }
    }
    /* One line per connection. stderr is unbuffered and stdio locks the
     * stream, so lines from concurrent handlers do not mix. */
    fprintf(stderr, "%s: echoed %llu bytes, %s\n", peer, total, how);
}

/*
 * Ctrl-C (SIGINT) or kill (SIGTERM): stop serving.
 *
 * A signal handler interrupts the program at an arbitrary point, so it may
 * only call async-signal-safe functions: no printf, no malloc, no locks.
 * tcpkit_listener_shutdown() is documented as async-signal-safe (it writes
 * to an eventfd), so the handler does exactly one thing: wake the server.
 * tcpkit_serve() then stops accepting, wakes the handlers waiting in a
 * receive, waits for them to return and returns TCPKIT_OK.
 */
static tcpkit_listener *listener;

static void on_signal(int sig)
{
    (void)sig;
    tcpkit_listener_shutdown(listener);
}

static void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocked system call returns EINTR instead of
     * restarting. libtcpkit retries EINTR itself (within the timeout). */
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/*
 * -M fibers: the same echo() runs as a fiber, a small stack of its own on
 * one of a few event-loop threads. When it waits in tcpkit_recv(), only that
 * fiber is suspended and the thread serves other clients meanwhile, so ten
 * thousand idle clients cost a few KiB each instead of a thread each
 * (doc/guide.md, "One thread per client, or ten thousand clients per
 * thread"). Fibers are tcpkit_serve_with()'s default mode.
 */
static tcpkit_err serve_fibers(long max_conns, long *deadline_s)
{
    tcpkit_opts *o;
    tcpkit_err err = tcpkit_opts_new(&o);
    if (err != TCPKIT_OK)
        return err;
    tcpkit_opts_set_max_conns(o, (int)max_conns);
    err = tcpkit_serve_with(listener, echo, deadline_s, o);
    tcpkit_opts_free(o);
    return err;
}

/*
 * Socket activation. A service manager (systemd, see the .socket unit in
 * doc/guide.md) can create, bind and listen on the socket itself, then start
 * us with it open as descriptor 3 and two environment variables:
 * LISTEN_FDS (how many descriptors, from 3 on) and LISTEN_PID (for which
 * process: a variable inherited by some child of ours is not meant for it).
 * Returns 3 when the socket is ours to adopt, -1 when we should bind.
 *
 * We unset both variables, as sd_listen_fds() does, so programs we might
 * start later do not believe descriptor 3 is theirs too.
 */
static int activated_socket(void)
{
    const char *fds = getenv("LISTEN_FDS");
    const char *pid = getenv("LISTEN_PID");
    long n, owner;
    bool ours = fds != NULL && pid != NULL && parse_int(fds, 1, 1, &n) &&
                parse_int(pid, 1, LONG_MAX, &owner) && owner == (long)getpid();
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    return ours ? 3 : -1;
}

/*
 * --tls-cert/--tls-key: every accepted connection speaks TLS. The server
 * proves who it is with a certificate (issued for its name by an authority
 * the clients trust) and the matching private key; tcpkit_tls_set_cert_file()
 * loads both now and checks that they match, so a wrong file fails here, at
 * startup, and not at the first client. Nothing else changes: echo() calls
 * the same tcpkit_recv()/tcpkit_send_all(), and the handshake runs inside
 * its first tcpkit_recv() (a client that fails it is logged and dropped).
 */
static void tls_options(tcpkit_opts *opts, const char *cert, const char *key)
{
    tcpkit_tls *tls;
    if (tcpkit_tls_new(&tls) != TCPKIT_OK || tcpkit_tls_set_cert_file(tls, cert, key) != TCPKIT_OK)
        die();                      /* e.g. "TLS is not supported by this build", a missing file */
    tcpkit_opts_set_tls(opts, tls); /* the options keep their own reference */
    tcpkit_tls_free(tls);
}

/* What the command line asks for. */
struct config {
    const char *addr, *port;
    long max_conns;
    bool fibers;
    long deadline_s; /* 0: none */
    const char *tls_cert, *tls_key;
};

static void parse_args(int argc, char **argv, struct config *cf)
{
    static const struct option long_opts[] = {{"help", no_argument, NULL, 'h'},
                                              {"tls-cert", required_argument, NULL, 'C'},
                                              {"tls-key", required_argument, NULL, 'K'},
                                              {NULL, 0, NULL, 0}};
    int opt;
    long value;
    while ((opt = getopt_long(argc, argv, "hb:p:m:M:d:", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            exit(0);
        case 'b':
            cf->addr = optarg;
            break;
        case 'p':
            if (!parse_int(optarg, 0, 65535, &value))
                usage_error("bad port '%s' (expected 0-65535)", optarg);
            cf->port = optarg;
            break;
        case 'm':
            if (!parse_int(optarg, 1, 1000000, &cf->max_conns))
                usage_error("bad connection limit '%s' (expected 1-1000000)", optarg);
            break;
        case 'M':
            if (strcmp(optarg, "threads") != 0 && strcmp(optarg, "fibers") != 0)
                usage_error("bad mode '%s' (expected threads or fibers)", optarg);
            cf->fibers = strcmp(optarg, "fibers") == 0;
            break;
        case 'd':
            if (!parse_int(optarg, 0, 86400, &cf->deadline_s))
                usage_error("bad deadline '%s' (expected seconds, 0-86400)", optarg);
            break;
        case 'C':
            cf->tls_cert = optarg;
            break;
        case 'K':
            cf->tls_key = optarg;
            break;
        default: /* getopt has already said what was wrong */
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if ((cf->tls_cert == NULL) != (cf->tls_key == NULL))
        usage_error("%s", "--tls-cert and --tls-key go together");
}

int main(int argc, char **argv)
{
    struct config cf = {.addr = "127.0.0.1", .port = "9999", .max_conns = 1024};
    parse_args(argc, argv, &cf);

    /*
     * Step 1: listen. Underneath: getaddrinfo() for the address, socket(),
     * setsockopt(SO_REUSEADDR), bind(), listen(). SO_REUSEADDR matters when
     * you restart a server: the connections of the previous run linger in
     * TIME_WAIT for a minute, and without it bind() fails with "address
     * already in use" until they are gone. (It does not let two servers
     * listen on the same port: that is still EADDRINUSE.)
     *
     * The I/O timeout given here becomes the timeout of every accepted
     * connection. An adopted socket gets the same options; only the
     * socket() + bind() + listen() part is skipped, systemd did it.
     */
    tcpkit_opts *opts;
    if (tcpkit_opts_new(&opts) != TCPKIT_OK)
        die();
    tcpkit_opts_set_io_timeout(opts, IDLE_TIMEOUT_MS);
    if (cf.tls_cert != NULL)
        tls_options(opts, cf.tls_cert, cf.tls_key);
    int fd = activated_socket();
    tcpkit_err err = fd >= 0 ? tcpkit_listener_from_fd(&listener, fd, opts)
                             : tcpkit_listen(&listener, cf.addr, cf.port, opts);
    tcpkit_opts_free(opts);
    if (err != TCPKIT_OK)
        die();

    /* Step 2: signal handlers, installed once `listener` is set and before we
     * announce ourselves, so a script that sends SIGINT right after reading
     * the "listening on" line always gets a clean exit. */
    install_signal_handlers();

    /* Step 3: tell the world where we are. With -p 0 the kernel picked the
     * port; tcpkit_listener_addr() reads it back (getsockname()). stdout is
     * fully buffered when it is a pipe: flush, or the reader waits forever. */
    char where[TCPKIT_ADDRSTRLEN];
    if (tcpkit_listener_addr(listener, where, sizeof where) != TCPKIT_OK)
        die();
    printf("listening on %s\n", where);
    fflush(stdout);
    if (fd >= 0)
        fputs("echo-server: serving descriptor 3 (socket activation)\n", stderr);

    /*
     * Step 4: serve. tcpkit_serve() runs the classic accept loop for us:
     * accept4() the next client (retrying transient errors such as a client
     * that reset before being accepted, and backing off instead of spinning
     * when out of descriptors), then hand the connection to a worker thread
     * that runs echo(). At most max_conns handlers run at once; further
     * clients wait in the kernel's listen backlog until a worker is free.
     *
     * Watch that with -m 1 and two clients: the second one's connect
     * succeeds at once (the kernel completed the handshake), its bytes are
     * sent, and no echo comes until the first client leaves - the stall of
     * a server that serves one client at a time. A client without a
     * timeout cannot tell this from a dead server: `client -t 2000` gives
     * up with "recv: timed out".
     */
    err = cf.fibers ? serve_fibers(cf.max_conns, &cf.deadline_s)
                    : tcpkit_serve(listener, echo, &cf.deadline_s, (int)cf.max_conns);
    if (err != TCPKIT_OK)
        die();
    tcpkit_listener_close(listener);
    fputs("echo-server: stopped\n", stderr);
    return 0;
}
