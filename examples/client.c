/* SPDX-License-Identifier: MIT */
/*
 * client.c - a tiny netcat: connect to a TCP server, talk, print the replies.
 *
 *   client [-H HOST] [-p PORT] [-t MS] [--tls] [--cacert FILE] [--insecure]
 *          [--servername NAME] [MESSAGE...]
 *
 *   $ ./echo-server -p 9999 &
 *   $ ./client hello world                  # prints "hello world" (no newline)
 *   $ printf 'one\ntwo\n' | ./client        # prints "one\ntwo\n"
 *   $ printf 'GET / HTTP/1.0\r\n\r\n' | ./client -H example.com -p 80
 *   $ ./echo-server -p 9443 --tls-cert cert.pem --tls-key key.pem &
 *   $ ./client -p 9443 --tls --cacert ca.pem hello   # the same, encrypted
 *
 * The client connects to HOST:PORT (default localhost:9999). With MESSAGE
 * words it sends them joined by single spaces (no newline is added); without,
 * it copies standard input to the connection. Everything the server sends is
 * copied to standard output *while* we are still sending. When the last byte
 * is sent the client half-closes the connection, and it exits 0 as soon as
 * the server has closed its side.
 *
 * Read it top to bottom; it shows, in this order:
 *   1. connecting: a name can stand for several addresses (localhost is
 *      127.0.0.1 *and* ::1), and a connect attempt must not wait forever;
 *   2. full duplex: why a client must send and receive at the same time;
 *   3. sending everything (a send may take only part of the buffer) and
 *      receiving what is there (a receive may return fewer bytes than sent);
 *   4. half-close: how a server learns that the request is complete;
 *   5. the orderly end of a stream (EOF) versus a reset, and why a server
 *      that crashed, even one killed with kill -9, usually gives EOF;
 *   6. (1.1) TLS: with --tls the same program speaks TLS. Only step 1
 *      changes (tls_options()); every send, receive and half-close after it
 *      is the same call, encrypted underneath.
 *
 * Exit status: 0 when the server closed the connection, 1 on a network or
 * I/O error (one line on stderr: "client: " and what failed, e.g.
 * "client: connect localhost:9999: ..."), 2 on bad usage.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <tcpkit.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Without -t, connecting gives up after 10 s. A connect to an address that
 * silently drops packets would otherwise hang for minutes (the kernel retries
 * SYNs for about 2 minutes). Sends and receives wait without limit by
 * default: an interactive session may legitimately be quiet for a long time. */
#define DEFAULT_CONNECT_TIMEOUT_MS 10000

/* How much we move per system call. 64 KiB is large enough that an 8 MiB
 * transfer takes only a few hundred calls. */
#define CHUNK 65536

static void usage(FILE *out)
{
    fputs("usage: client [-H HOST] [-p PORT] [-t MS] [--tls] [--cacert FILE] [--insecure]\n"
          "              [--servername NAME] [MESSAGE...]\n"
          "\n"
          "Connects to HOST:PORT, sends MESSAGE (the words joined by single spaces,\n"
          "no newline added) or else standard input, and copies everything the\n"
          "server sends to standard output. Exits 0 when the server closes.\n"
          "\n"
          "  -H HOST            server name or address (default localhost)\n"
          "  -p PORT            server port, 1-65535 (default 9999)\n"
          "  -t MS              give up if connecting, or any single send or receive,\n"
          "                     takes longer than MS milliseconds (default: 10000 for\n"
          "                     connecting, no limit for sending and receiving)\n"
          "  --tls              speak TLS; the server's certificate must be valid for\n"
          "                     HOST and issued by an authority in the system's store\n"
          "  --cacert FILE      trust the CAs in FILE (PEM) instead (implies --tls)\n"
          "  --insecure         DANGEROUS: accept any certificate (implies --tls)\n"
          "  --servername NAME  verify (and send as SNI) NAME instead of HOST\n"
          "                     (implies --tls)\n"
          "  -h, --help         show this help\n",
          out);
}

/*
 * Ends the process, from either thread. Both threads can fail at once (a
 * reset fails the send and the receive alike), and exit() must not run in
 * two threads at the same time. The first caller takes this lock and never
 * releases it; a second one waits here until the process is gone. So there
 * is exactly one error line.
 */
static pthread_mutex_t exit_lock = PTHREAD_MUTEX_INITIALIZER;

static void end_process(int status)
{
    pthread_mutex_lock(&exit_lock);
    exit(status);
}

/* A failure outside libtcpkit ends the program: "client: WHAT: REASON",
 * exit status 1. */
static void die(const char *what, const char *reason)
{
    pthread_mutex_lock(&exit_lock);
    fprintf(stderr, "client: %s: %s\n", what, reason);
    exit(1);
}

/* A failed libtcpkit call. Its message already names the operation, e.g.
 * "connect localhost:9999: ::1 port 9999: connection refused", so it is
 * printed as it is: "client: connect ...", not "client: connect: connect ...". */
static void die_tk(void)
{
    pthread_mutex_lock(&exit_lock);
    fprintf(stderr, "client: %s\n", tcpkit_last_error());
    exit(1);
}

/* Bad usage: say why, show the usage, exit status 2. */
static void usage_error(const char *fmt, const char *arg)
{
    fputs("client: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    usage(stderr);
    exit(2);
}

/* Parses a decimal number in [min, max]; false for anything else. */
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

/* What the command line asks for. */
struct config {
    const char *host, *port;
    long timeout_ms; /* -1: the defaults */
    bool tls, insecure;
    const char *cacert, *servername;
};

static void parse_args(int argc, char **argv, struct config *cf)
{
    static const struct option long_opts[] = {{"help", no_argument, NULL, 'h'},
                                              {"tls", no_argument, NULL, 'S'},
                                              {"cacert", required_argument, NULL, 'C'},
                                              {"insecure", no_argument, NULL, 'k'},
                                              {"servername", required_argument, NULL, 'N'},
                                              {NULL, 0, NULL, 0}};
    int opt;
    long value;
    while ((opt = getopt_long(argc, argv, "hH:p:t:", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            exit(0);
        case 'H':
            cf->host = optarg;
            break;
        case 'p':
            if (!parse_int(optarg, 1, 65535, &value))
                usage_error("bad port '%s' (expected 1-65535)", optarg);
            cf->port = optarg;
            break;
        case 't':
            if (!parse_int(optarg, 1, INT_MAX, &cf->timeout_ms))
                usage_error("bad timeout '%s' (expected milliseconds > 0)", optarg);
            break;
        case 'S':
            cf->tls = true;
            break;
        case 'C':
            cf->tls = true;
            cf->cacert = optarg;
            break;
        case 'k':
            cf->tls = cf->insecure = true;
            break;
        case 'N':
            if (optarg[0] == '\0')
                usage_error("%s", "empty --servername");
            cf->tls = true;
            cf->servername = optarg;
            break;
        default: /* getopt has already said what was wrong */
            usage(stderr);
            exit(2);
        }
    }
}

/*
 * TLS (--tls). A tcpkit_tls holds the settings; tcpkit_connect() then runs
 * the TLS handshake right after TCP's, inside the same connect timeout. Its
 * defaults are the secure ones, and they are two separate checks:
 *   - the certificate chain leads to an authority we trust (the system's
 *     CA store, or --cacert for a private CA such as a test one);
 *   - the certificate was issued for the name we connected to (-H, or
 *     --servername when connecting by address). Without this check any
 *     valid certificate, for any site, would do - the classic TLS bug.
 * A failed check is TCPKIT_ECERT, and tcpkit_last_error() says which one
 * ("certificate has expired", "hostname mismatch"...).
 */
static void tls_options(tcpkit_opts *opts, const struct config *cf)
{
    tcpkit_tls *tls;
    if (tcpkit_tls_new(&tls) != TCPKIT_OK)
        die_tk(); /* e.g. "TLS is not supported by this build" */
    if (cf->cacert != NULL && tcpkit_tls_set_ca_file(tls, cf->cacert) != TCPKIT_OK)
        die_tk();
    if (cf->servername != NULL && tcpkit_tls_set_server_name(tls, cf->servername) != TCPKIT_OK)
        die_tk();
    if (cf->insecure) {
        /* Encrypted, but to whom? Anyone on the path can pose as the server. */
        fputs("client: warning: --insecure: the server's certificate is not checked\n", stderr);
        tcpkit_tls_set_insecure_skip_verify(tls, true);
    }
    tcpkit_opts_set_tls(opts, tls); /* the options keep their own reference */
    tcpkit_tls_free(tls);
}

/* The words of MESSAGE joined by single spaces, in a new string. */
static char *join_words(char **words, int n)
{
    size_t total = 1;
    for (int i = 0; i < n; i++)
        total += strlen(words[i]) + 1;
    char *s = malloc(total);
    if (s == NULL)
        die("message", "out of memory");
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i > 0)
            strcat(s, " ");
        strcat(s, words[i]);
    }
    return s;
}

/* What the two threads share. It is a global so that it stays reachable even
 * when main() returns while the sender is still blocked (see the end of main). */
static struct session {
    tcpkit_conn *conn;
    char *message; /* NULL: send standard input instead */
    atomic_bool done_sending;
} session;

/*
 * Writes all of buf to a file descriptor.
 *
 * write(2), like send(2), may take only part of the buffer (a "short
 * write", e.g. when standard output is a pipe that is nearly full), and it
 * fails with EINTR when a signal arrives before anything was written. Both
 * are normal: the answer is to loop, never to drop the rest.
 *
 * write() has no flags argument, so no MSG_NOSIGNAL: writing to a pipe (or a
 * socket) whose reader has gone raises SIGPIPE, which kills the process. For
 * standard output that is the Unix convention (`client | head -c 10` ends
 * quietly once head has had enough), so we keep it. On a socket, never use
 * write(): use send() with MSG_NOSIGNAL, as tcpkit_send_all() does.
 */
static bool write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends everything or ends the program. tcpkit_send_all() loops over short
 * sends and EINTR for us, and never raises SIGPIPE: if the server has gone
 * away we get TCPKIT_ERESET instead of being killed by a signal. */
static void send_or_die(tcpkit_conn *conn, const void *buf, size_t len)
{
    if (tcpkit_send_all(conn, buf, len, NULL) != TCPKIT_OK)
        die_tk();
}

/*
 * The sending half of the conversation, on its own thread.
 *
 * Why a second thread? Because TCP buffers are finite. An echo server sends
 * back everything we send; if we first sent 8 MiB and only then started to
 * read, the server's replies would fill our receive buffer, the server would
 * block sending them, stop reading from us, our sends would block too, and
 * both programs would wait for each other forever. So one thread sends while
 * the main thread receives. libtcpkit allows exactly this: one sender and
 * one receiver on the same connection at the same time.
 *
 * Note: tcpkit_last_error() is per thread, so errors of this thread's calls
 * are reported from this thread.
 */
static void *sender(void *arg)
{
    struct session *s = arg;
    if (s->message != NULL) {
        send_or_die(s->conn, s->message, strlen(s->message));
    } else {
        static char buf[CHUNK];
        for (;;) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                die("read standard input", strerror(errno));
            if (n == 0)
                break; /* end of our input */
            send_or_die(s->conn, buf, (size_t)n);
        }
    }

    /*
     * Half-close: shutdown(fd, SHUT_WR) underneath. The server receives
     * end-of-stream ("this request is complete") after our last byte, while
     * our receiving direction stays open for the rest of its reply. Plain
     * close() here would be wrong: we could no longer read the reply, and
     * replies still arriving would make our kernel answer with a reset.
     */
    atomic_store(&s->done_sending, true); /* no longer blocked on our input */
    if (tcpkit_close_write(s->conn) != TCPKIT_OK)
        die_tk();
    return NULL;
}

int main(int argc, char **argv)
{
    struct config cf = {.host = "localhost", .port = "9999", .timeout_ms = -1};
    parse_args(argc, argv, &cf);
    if (optind < argc)
        session.message = join_words(argv + optind, argc - optind);

    /*
     * Step 1: connect. Underneath: getaddrinfo() turns the name into a list
     * of addresses ("localhost" is usually both ::1 and 127.0.0.1, ::1
     * first: RFC 6724's ordering ranks it highest), then for
     * each one socket() + a non-blocking connect() + poll() until it
     * completes. libtcpkit races the addresses (Happy Eyeballs, RFC 8305), so
     * a server that listens only on IPv4 is still reached quickly, and it
     * bounds the whole attempt by the connect timeout.
     */
    tcpkit_opts *opts;
    if (tcpkit_opts_new(&opts) != TCPKIT_OK)
        die_tk();
    tcpkit_opts_set_connect_timeout(opts, cf.timeout_ms > 0 ? (int)cf.timeout_ms
                                                            : DEFAULT_CONNECT_TIMEOUT_MS);
    if (cf.timeout_ms > 0)
        tcpkit_opts_set_io_timeout(opts, (int)cf.timeout_ms); /* every send and receive */
    if (cf.tls)
        tls_options(opts, &cf);
    tcpkit_err err = tcpkit_connect(&session.conn, cf.host, cf.port, opts);
    tcpkit_opts_free(opts); /* only read during the call */
    if (err != TCPKIT_OK)
        die_tk(); /* lists every address tried */

    /* Step 2: the sender thread (see sender() for why it exists). */
    pthread_t tid;
    int rc = pthread_create(&tid, NULL, sender, &session);
    if (rc != 0)
        die("start sender thread", strerror(rc));

    /*
     * Step 3: receive until the server closes. tcpkit_recv() returns as soon
     * as *some* bytes are there: TCP is a stream of bytes, not of messages,
     * so one send of 10 bytes may arrive as 3 + 7, and two sends may arrive
     * as one. Never assume a receive returns "one message".
     */
    static char buf[CHUNK];
    for (;;) {
        size_t got;
        err = tcpkit_recv(session.conn, buf, sizeof buf, &got);
        if (err == TCPKIT_EOF)
            break; /* recv() returned 0: the server closed, all data arrived */
        /*
         * ERESET: the server's kernel aborted the connection (RST) and data
         * may be lost. That happens when the server closes with bytes of
         * ours still unread, aborts on purpose (tcpkit_abort(), SO_LINGER 0),
         * or its machine rebooted and forgot the connection. A server that
         * crashed, even kill -9, is no special case: its kernel closes the
         * socket as close() would, so we usually see EOF (a reset only if
         * our bytes were still unread there). So EOF alone does not prove
         * the reply is complete; only the protocol can (a length, an end
         * marker). ETIMEDOUT: nothing arrived within -t milliseconds.
         * Over TLS, ETLS "closed without close_notify" is TLS's answer to
         * that doubt: a server that really finished says goodbye inside
         * the encrypted stream, so a bare TCP EOF - a crash, or an attacker
         * cutting the connection - is reported as the error it may be.
         */
        if (err != TCPKIT_OK)
            die_tk();
        if (!write_all(STDOUT_FILENO, buf, got))
            die("write standard output", strerror(errno));
    }

    /*
     * Step 4: the server has closed; the conversation is over. If we have
     * sent everything, wait for the sender thread and release the
     * connection. If we are still sending (a server may close first, e.g.
     * after "exit", while standard input is still open), the rest of our
     * input has nobody to read it: we simply end the process, and the kernel
     * closes the socket and ends the blocked sender thread with it (through
     * end_process(): the sender may be failing at this very moment).
     */
    if (!atomic_load(&session.done_sending))
        end_process(0);
    pthread_join(tid, NULL); /* at most the half-close is left to finish */
    tcpkit_close(session.conn); /* close(): the kernel finishes in the background */
    free(session.message);
    return 0;
}
