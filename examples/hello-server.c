/* SPDX-License-Identifier: MIT */
/*
 * hello-server.c - the classic threaded tutorial server, done carefully.
 *
 *   hello-server [-b ADDR] [-p PORT]
 *
 *   $ ./hello-server -p 0 &
 *   listening on 127.0.0.1:40313
 *   $ printf 'Ada\nexit\n' | ./client -p 40313
 *   Welcome!
 *   Hello, Ada!
 *
 * On connect the server sends "Welcome!\n". For every line it receives (LF
 * or CR LF; the line ending is stripped) it replies "Hello, LINE!\n". The
 * line "exit" closes the connection. A line longer than 1024 bytes gets
 * "error: line too long\n" and the connection is closed.
 *
 * echo-server.c lets tcpkit_serve() run the accept loop. This program writes
 * the loop out by hand - accept, one thread per client - because that is the
 * shape of nearly every server tutorial, and because doing it by hand shows
 * what tcpkit_serve() takes care of: limiting the number of threads, not
 * spinning when out of descriptors, and a shutdown that waits for every
 * client thread. It also shows line-based protocols: reading lines of
 * bounded length, and closing politely when the *server* ends the
 * conversation.
 *
 * Output and exit status as echo-server: one "listening on ADDR:PORT" line
 * on stdout, one line per connection on stderr, 0 after SIGINT/SIGTERM,
 * 1 when the address cannot be used, 2 on bad usage.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <tcpkit.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LINE 1024       /* longest line accepted, without its line ending */
#define MAX_CLIENTS 1024    /* threads at once; one more client gets "busy" */
#define POLL_MS 250         /* how often a waiting thread checks for shutdown */
#define IDLE_LIMIT_MS 60000 /* a client silent this long is dropped */
#define SEND_TIMEOUT_MS 10000
#define LINGER_MS 2000         /* see finish() */
#define LINGER_BYTES (1 << 20) /* see finish() */

static void usage(FILE *out)
{
    fputs("usage: hello-server [-b ADDR] [-p PORT]\n"
          "\n"
          "Greets every client with \"Welcome!\", answers each line with\n"
          "\"Hello, LINE!\"; the line \"exit\" ends the conversation. Prints\n"
          "\"listening on ADDR:PORT\" when ready; stops on SIGINT/SIGTERM.\n"
          "\n"
          "  -b ADDR     address to bind (default 127.0.0.1; -b :: for every interface)\n"
          "  -p PORT     port, 0-65535; 0 picks a free one (default 9999)\n"
          "  -h, --help  show this help\n",
          out);
}

/* A failed libtcpkit call ends the program, exit status 1. The message
 * already names the operation, e.g. "listen 127.0.0.1:9999: address already in use",
 * so it is printed as it is, after the program's name. */
static void die(void)
{
    fprintf(stderr, "hello-server: %s\n", tcpkit_last_error());
    exit(1);
}

static void usage_error(const char *fmt, const char *arg)
{
    fputs("hello-server: ", stderr);
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

/* ---- shutdown ------------------------------------------------------------ */

static tcpkit_listener *listener;
static atomic_bool stopping; /* set by the signal handler, read by the threads */

/* The count of client threads, so that main() can wait for the last one. */
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t clients_gone = PTHREAD_COND_INITIALIZER;
static int clients;

/* Async-signal-safe only: a lock-free atomic store, and
 * tcpkit_listener_shutdown() (documented as safe in a signal handler), which
 * makes the tcpkit_accept() in main() return TCPKIT_ESHUTDOWN. */
static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, true);
    tcpkit_listener_shutdown(listener);
}

static void install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- talking to one client ------------------------------------------------ */

/* Sends a whole reply; false if the client is gone (or stopped reading). */
static bool say(tcpkit_conn *conn, const char *text, size_t len)
{
    tcpkit_conn_set_timeout(conn, SEND_TIMEOUT_MS);
    return tcpkit_send_all(conn, text, len, NULL) == TCPKIT_OK;
}

/*
 * Waits for the next line, but never forever.
 *
 * A thread blocked in a receive cannot notice that the server is shutting
 * down. So we wait in slices of POLL_MS: after each slice we look at the
 * `stopping` flag, and we give up on a client that has been silent for
 * IDLE_LIMIT_MS. This is safe because a timed-out tcpkit_recv_line()
 * consumes nothing: a half-received line stays buffered for the next call.
 * (tcpkit_serve() does the same without waking up periodically; see
 * echo-server.c.)
 */
static tcpkit_err wait_line(tcpkit_conn *conn, char *buf, size_t cap, size_t *len)
{
    tcpkit_conn_set_timeout(conn, POLL_MS);
    for (int waited = 0;; waited += POLL_MS) {
        tcpkit_err err = tcpkit_recv_line(conn, buf, cap, len);
        if (err != TCPKIT_ETIMEDOUT)
            return err;
        if (atomic_load(&stopping) || waited >= IDLE_LIMIT_MS)
            return TCPKIT_ETIMEDOUT;
    }
}

/*
 * Closes politely when the *server* ends the conversation ("exit", a line
 * too long): the "lingering close".
 *
 * If we simply closed while the client's next bytes were still unread in
 * our receive buffer (or about to arrive), the kernel would answer with a
 * reset (RST) instead of a normal end of stream, and a reset may destroy our
 * last reply before the client has read it. So: half-close first (the
 * client sees our reply, then end of stream), then read and discard what
 * the client still sends until it closes too - bounded in time and bytes,
 * so a client that never closes cannot keep us here.
 */
static void finish(tcpkit_conn *conn)
{
    if (tcpkit_close_write(conn) != TCPKIT_OK)
        return;
    tcpkit_conn_set_timeout(conn, POLL_MS);
    char sink[4096];
    size_t drained = 0;
    int waited = 0;
    while (drained < LINGER_BYTES && waited < LINGER_MS && !atomic_load(&stopping)) {
        size_t got;
        tcpkit_err err = tcpkit_recv(conn, sink, sizeof sink, &got);
        if (err == TCPKIT_ETIMEDOUT)
            waited += POLL_MS;
        else if (err != TCPKIT_OK)
            return; /* EOF: the client closed too (or it reset: also done) */
        drained += got;
    }
}

/* Removes the line ending: "\n" or "\r\n". */
static size_t strip_eol(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    return len;
}

/* The conversation with one client; returns how it ended, for the log. */
static const char *converse(tcpkit_conn *conn, unsigned *lines)
{
    static const char welcome[] = "Welcome!\n";
    static const char too_long[] = "error: line too long\n";
    if (!say(conn, welcome, strlen(welcome)))
        return "gone before the welcome";

    /*
     * The line buffer holds the longest allowed line, its line ending (CR LF
     * at most) and the NUL: 1024 + 2 + 1 bytes. tcpkit_recv_line() returns
     * TCPKIT_ETOOBIG if no newline comes within sizeof line - 1 bytes, so a
     * client can never make us buffer more than that. A line of 1025 bytes
     * plus LF still fits, hence the length check after stripping.
     */
    char line[MAX_LINE + 3];
    char reply[MAX_LINE + sizeof "Hello, !\n"];
    for (;;) {
        size_t len;
        tcpkit_err err = wait_line(conn, line, sizeof line, &len);
        if (err == TCPKIT_EOF)
            return "client closed";
        if (err == TCPKIT_ETIMEDOUT)
            return atomic_load(&stopping) ? "server shutting down" : "idle too long";
        if (err != TCPKIT_OK && err != TCPKIT_ETOOBIG)
            return tcpkit_strerror(err); /* a reset, usually */

        len = strip_eol(line, len);
        if (err == TCPKIT_ETOOBIG || len > MAX_LINE) {
            say(conn, too_long, strlen(too_long));
            finish(conn);
            return "line too long";
        }
        if (len == 4 && memcmp(line, "exit", 4) == 0) {
            finish(conn);
            return "said exit";
        }

        /* Build the reply in one buffer and send it with one call: three
         * small sends would be three packets (libtcpkit turns Nagle's
         * algorithm off, as Go does). memcpy, not %s: a line may contain
         * NUL bytes. */
        size_t n = 0;
        memcpy(reply + n, "Hello, ", 7);
        n += 7;
        memcpy(reply + n, line, len);
        n += len;
        memcpy(reply + n, "!\n", 2);
        n += 2;
        if (!say(conn, reply, n))
            return "gone (could not send)";
        ++*lines;
    }
}

/* The client thread: converse, log one line, close, count ourselves out. */
static void *client_thread(void *arg)
{
    tcpkit_conn *conn = arg;
    char peer[TCPKIT_ADDRSTRLEN];
    if (tcpkit_conn_peer(conn, peer, sizeof peer) != TCPKIT_OK)
        strcpy(peer, "?");

    unsigned lines = 0;
    const char *how = converse(conn, &lines);
    fprintf(stderr, "%s: %u lines, %s\n", peer, lines, how);
    tcpkit_close(conn);

    pthread_mutex_lock(&clients_lock);
    if (--clients == 0)
        pthread_cond_signal(&clients_gone);
    pthread_mutex_unlock(&clients_lock);
    return NULL;
}

/*
 * Starts a thread for a new client. One thread per client is the simplest
 * server design, but unbounded it lets anyone create threads until memory
 * runs out: above MAX_CLIENTS a client gets "error: server busy" instead.
 */
static void start_client(tcpkit_conn *conn)
{
    static const char busy[] = "error: server busy\n";
    pthread_mutex_lock(&clients_lock);
    bool full = clients >= MAX_CLIENTS;
    if (!full)
        clients++;
    pthread_mutex_unlock(&clients_lock);
    if (full) {
        /* The lingering close of finish(), for the same reason: the client
         * may already have sent its first line, and closing with it unread
         * would reset the connection and could destroy "server busy" before
         * the client reads it. This keeps the accept loop busy for at most
         * LINGER_MS, but only while every slot is taken anyway: accepting
         * faster would just turn more clients away. */
        say(conn, busy, strlen(busy));
        finish(conn);
        tcpkit_close(conn);
        fputs("hello-server: too many clients, one turned away\n", stderr);
        return;
    }

    /* Detached: nobody joins the thread; it counts itself out instead. */
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, client_thread, conn);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return;
    fprintf(stderr, "hello-server: cannot start a thread: %s\n", strerror(rc));
    tcpkit_close(conn);
    pthread_mutex_lock(&clients_lock);
    clients--;
    pthread_mutex_unlock(&clients_lock);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    const char *port = "9999";

    static const struct option long_opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    long value;
    while ((opt = getopt_long(argc, argv, "hb:p:", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            return 0;
        case 'b':
            addr = optarg;
            break;
        case 'p':
            if (!parse_int(optarg, 0, 65535, &value))
                usage_error("bad port '%s' (expected 0-65535)", optarg);
            port = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);

    /* socket() + SO_REUSEADDR + bind() + listen(); see echo-server.c.
     * Accepted connections start with the send timeout. */
    tcpkit_opts *opts;
    if (tcpkit_opts_new(&opts) != TCPKIT_OK)
        die();
    tcpkit_opts_set_io_timeout(opts, SEND_TIMEOUT_MS);
    tcpkit_err err = tcpkit_listen(&listener, addr, port, opts);
    tcpkit_opts_free(opts);
    if (err != TCPKIT_OK)
        die();
    install_signal_handlers();

    char where[TCPKIT_ADDRSTRLEN];
    if (tcpkit_listener_addr(listener, where, sizeof where) != TCPKIT_OK)
        die();
    printf("listening on %s\n", where);
    fflush(stdout);

    /*
     * The accept loop. accept4() underneath: it takes the next completed
     * connection from the listen backlog and returns a new socket for it;
     * the listening socket stays open for the next client.
     */
    for (;;) {
        tcpkit_conn *conn;
        err = tcpkit_accept(listener, &conn, -1);
        if (err == TCPKIT_ESHUTDOWN)
            break; /* SIGINT/SIGTERM */
        if (err == TCPKIT_EMFILE || err == TCPKIT_ENOMEM) {
            /* Out of descriptors or memory. The pending client stays in the
             * backlog, so calling accept again at once would fail again at
             * once: a busy loop at 100% CPU. Back off and let clients
             * finish. (nanosleep returns early on a signal: fine.) */
            fprintf(stderr, "hello-server: %s (backing off)\n", tcpkit_last_error());
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
            continue;
        }
        if (err != TCPKIT_OK)
            die();
        start_client(conn);
    }

    /* Shutting down: the threads notice `stopping` within POLL_MS. Wait for
     * the last one before releasing anything they might still use. */
    pthread_mutex_lock(&clients_lock);
    while (clients > 0)
        pthread_cond_wait(&clients_gone, &clients_lock);
    pthread_mutex_unlock(&clients_lock);
    tcpkit_listener_close(listener);
    fputs("hello-server: stopped\n", stderr);
    return 0;
}
