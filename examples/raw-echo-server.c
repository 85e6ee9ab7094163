/* SPDX-License-Identifier: MIT */
/*
 * raw-echo-server.c - echo-server.c without libtcpkit: plain POSIX sockets,
 * one detached thread per client.
 *
 *   raw-echo-server [-b ADDR] [-p PORT]    (default 127.0.0.1, port 0 = any free port)
 *
 * Prints "listening on ADDR:PORT" when ready, one line per client on stderr.
 * Every call is commented: what it does, the mistake people make there, and
 * the libtcpkit call that replaces it. Left out to stay short, on purpose:
 * a cap on threads, a whole-conversation deadline and a clean shutdown
 * (Ctrl-C just ends the process; the kernel then closes every socket, and
 * clients see a normal end of stream, not a reset).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define IDLE_TIMEOUT_S 60
#define ADDR_LEN (INET6_ADDRSTRLEN + 8) /* "[" host "]:" port */

static void die(const char *what, const char *reason)
{
    fprintf(stderr, "raw-echo-server: %s: %s\n", what, reason);
    exit(1);
}

static int usage(int asked)
{
    fputs("usage: raw-echo-server [-b ADDR] [-p PORT]\n", asked ? stdout : stderr);
    return asked ? 0 : 2;
}

static int valid_port(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s >= '0' && *s <= '9' && *end == '\0' && v <= 65535;
}

/* "127.0.0.1:8080" or "[::1]:8080". getnameinfo() with NUMERIC flags only
 * formats; without them it does a slow reverse DNS lookup.
 * libtcpkit: tcpkit_conn_peer(), tcpkit_listener_addr(). */
static void format_addr(int fd, int peer, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN], port[8];
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                  : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (rc != 0 || getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                               NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, cap, "?");
    else
        snprintf(out, cap, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

/* send() may take only PART of the buffer (a short send). Mistake: calling
 * it once and losing the tail, which only shows with big data. MSG_NOSIGNAL:
 * without it, sending to a client that has gone away raises SIGPIPE, whose
 * default action kills the whole server (write() has no flags: never use it
 * on a socket unless SIGPIPE is ignored). libtcpkit: tcpkit_send_all(). */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue; /* a signal came before anything was sent: retry */
        if (n < 0)
            return -1; /* EPIPE, ECONNRESET (gone), EAGAIN (SO_SNDTIMEO) */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One client, on its own thread. The buffer is on this thread's stack. */
static void *serve_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char peer[ADDR_LEN], buf[16384];
    const char *how = "closed by client";
    unsigned long long total = 0;
    format_addr(fd, 1, peer, sizeof peer);
    for (;;) {
        /* recv() waits for at least one byte and returns what has arrived,
         * maybe less than the client sent in one call: TCP has no message
         * boundaries. 0 = end of stream (the client closed or half-closed).
         * Mistake: exit() on an error here; one client kills the server.
         * libtcpkit: tcpkit_recv(), TCPKIT_EOF / TCPKIT_ERESET. */
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || send_all(fd, buf, (size_t)n) < 0) {
            how = errno == ECONNRESET ? "reset by client"
                  : errno == EPIPE    ? "broken pipe"
                  : errno == EAGAIN   ? "idle too long" /* SO_RCVTIMEO, below */
                                      : "I/O error";
            break;
        }
        total += (unsigned long long)n;
    }
    fprintf(stderr, "%s: echoed %llu bytes, %s\n", peer, total, how);
    /* close() releases the socket. Mistake: forgetting it (a descriptor leak
     * per client, EMFILE after a thousand). libtcpkit: tcpkit_serve() closes. */
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *port = "0";
    for (int opt; (opt = getopt(argc, argv, "hb:p:")) != -1;) {
        if (opt == 'b')
            addr = optarg;
        else if (opt == 'p' && valid_port(optarg))
            port = optarg;
        else
            return usage(opt == 'h');
    }
    if (optind < argc)
        return usage(0);

    /* getaddrinfo(): text address + port -> socket address. AI_PASSIVE: for
     * bind(). Mistake: reading errno after it; it returns its own codes, for
     * gai_strerror(). libtcpkit: inside tcpkit_listen(). */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(addr, port, &hints, &ai);
    if (rc != 0)
        die(addr, gai_strerror(rc));
    /* socket(): a TCP endpoint of the address's family. Mistake: hard-coding
     * AF_INET, so -b ::1 cannot work. libtcpkit adds SOCK_CLOEXEC (not leaked
     * into exec()ed children) and SOCK_NONBLOCK (for timeouts). */
    int lfd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (lfd < 0)
        die("socket", strerror(errno));
    /* SO_REUSEADDR: bind even while the last run's connections sit in
     * TIME_WAIT. Mistake: leaving it out ("address already in use" for a
     * minute after a restart). libtcpkit: tcpkit_listen() always sets it. */
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR", strerror(errno));
    /* bind(): claim ADDR:PORT. 127.0.0.1 = this machine only; :: = every
     * interface, IPv4 too (dual stack). Mistake: binding 0.0.0.0 by default,
     * which exposes a toy server to the network. libtcpkit: tcpkit_listen(). */
    if (bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("bind", strerror(errno));
    freeaddrinfo(ai);
    /* listen(): the kernel now completes handshakes by itself and queues up
     * to SOMAXCONN connections until we accept them. Mistake: a backlog of 5
     * from old tutorials; under load, new clients' SYNs are then dropped.
     * libtcpkit: tcpkit_listen(), tcpkit_opts_set_backlog(). */
    if (listen(lfd, SOMAXCONN) < 0)
        die("listen", strerror(errno));
    /* getsockname() inside: with -p 0 the kernel chose the port. Mistake:
     * not flushing; stdout to a pipe is fully buffered and the reader waits. */
    char where[ADDR_LEN];
    format_addr(lfd, 0, where, sizeof where);
    printf("listening on %s\n", where);
    fflush(stdout);

    for (;;) {
        /* accept(): the next queued connection, as a NEW socket; lfd stays
         * for the next client. Mistakes: treating ECONNABORTED (the client
         * reset while queued) as fatal; retrying EMFILE at once, a 100% CPU
         * loop. libtcpkit: tcpkit_accept(), or tcpkit_serve() for the loop. */
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO))
            continue;
        if (fd < 0) { /* EMFILE, ENFILE, ENOMEM: let clients finish */
            perror("raw-echo-server: accept (backing off)");
            nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
            continue;
        }
        /* SO_RCVTIMEO/SO_SNDTIMEO: drop a client idle for 60 s instead of
         * holding its thread forever. Per call only: a client dripping one
         * byte every 59 s still stays forever (slow drip). libtcpkit:
         * tcpkit_opts_set_io_timeout(); 1.1 adds tcpkit_conn_set_deadline(). */
        struct timeval tv = {.tv_sec = IDLE_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        /* One detached thread per client: nobody joins it. Mistake: no
         * limit; a flood of clients creates threads until memory runs out
         * (here pthread_create then fails and we drop the client).
         * libtcpkit: tcpkit_serve(l, fn, arg, max_conns) caps them. */
        pthread_t tid;
        rc = pthread_create(&tid, NULL, serve_client, (void *)(intptr_t)fd);
        if (rc != 0) {
            fprintf(stderr, "raw-echo-server: thread: %s\n", strerror(rc));
            close(fd);
            continue;
        }
        pthread_detach(tid);
    }
}
