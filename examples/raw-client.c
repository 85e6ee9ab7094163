/* SPDX-License-Identifier: MIT */
/*
 * raw-client.c - client.c without libtcpkit: plain POSIX sockets and poll().
 *
 *   raw-client [-H HOST] [-p PORT] [MESSAGE...]     (default localhost, 9999)
 *
 * Sends the MESSAGE words joined by single spaces (no newline added), or else
 * standard input; then half-closes, and copies everything the server sends to
 * standard output until the server closes. Exit 0 then, 1 on a network error
 * (one line: "raw-client: WHAT: REASON"), 2 on bad usage. Every call is commented: what
 * it does, the mistake people make there, the libtcpkit call that replaces it.
 *
 * client.c sends on a second thread; this one does both directions on one
 * thread with poll(). Either way a client must read WHILE it sends: an echo
 * server blocks once its replies fill our receive buffer, stops reading us,
 * and if we only read after sending everything, both wait forever.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 65536

static void die(const char *what, const char *reason)
{
    fprintf(stderr, "raw-client: %s: %s\n", what, reason);
    exit(1);
}

/* One line, naming the operation once: "raw-client: connect HOST port PORT:
 * REASON". */
static void connect_failed(const char *host, const char *port, const char *reason)
{
    fprintf(stderr, "raw-client: connect %s port %s: %s\n", host, port, reason);
    exit(1);
}

/* connect() with EINTR handled. An interrupted connect() goes on in the
 * background; calling it again fails (EALREADY). Mistake: retrying it, or
 * closing and starting over. Wait until the socket is writable, then read
 * the outcome from SO_ERROR. libtcpkit: tcpkit_connect() does exactly this
 * for every attempt, since its sockets are non-blocking. */
static int connect_one(int fd, const struct addrinfo *ai)
{
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -1;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -1;
    errno = err;
    return err == 0 ? 0 : -1;
}

static int connect_to(const char *host, const char *port)
{
    /* getaddrinfo(): a name -> a LIST of addresses ("localhost" is ::1 and
     * 127.0.0.1, ::1 first by RFC 6724). Mistake: trying only the first, so
     * a server on 127.0.0.1 only is "refused". libtcpkit: tcpkit_connect()
     * tries them all, racing them (Happy Eyeballs, RFC 8305). */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *list;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0)
        connect_failed(host, port, gai_strerror(rc));
    int fd = -1, err = 0;
    for (struct addrinfo *ai = list; ai != NULL && fd < 0; ai = ai->ai_next) {
        /* socket() + connect(): the handshake. Mistake: a blocking connect
         * to a black-holed address waits ~2 min; libtcpkit bounds it with
         * tcpkit_opts_set_connect_timeout(). */
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd >= 0 && connect_one(fd, ai) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        } else if (fd < 0) {
            err = errno;
        }
    }
    freeaddrinfo(list);
    if (fd < 0)
        connect_failed(host, port, strerror(err)); /* the last address's error */
    return fd;
}

/* write() to standard output, looping over short writes and EINTR. While it
 * waits for a slow reader we read nothing else: fine, that is back-pressure.
 * (A closed pipe raises SIGPIPE here and ends us, like any Unix filter.) */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno != EINTR)
            die("write standard output", strerror(errno));
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
}

static char *join_words(char **words, int n)
{
    size_t total = 1;
    for (int i = 0; i < n; i++)
        total += strlen(words[i]) + 1;
    char *s = calloc(1, total);
    if (s == NULL)
        die("message", "out of memory");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            strcat(s, " ");
        strcat(s, words[i]);
    }
    return s;
}

int main(int argc, char **argv)
{
    const char *host = "localhost", *port = "9999";
    for (int opt; (opt = getopt(argc, argv, "hH:p:")) != -1;) {
        char *end = NULL;
        if (opt == 'H')
            host = optarg;
        else if (opt == 'p' && *optarg >= '1' && *optarg <= '9' &&
                 strtol(optarg, &end, 10) <= 65535 && *end == '\0')
            port = optarg;
        else {
            fputs("usage: raw-client [-H HOST] [-p PORT] [MESSAGE...]\n",
                  opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    static char in[CHUNK], buf[CHUNK];
    char *msg = optind < argc ? join_words(argv + optind, argc - optind) : NULL;
    const char *out = msg;                  /* bytes waiting to be sent */
    size_t left = msg ? strlen(msg) : 0;    /* how many */
    int reading = msg == NULL, sending = 1; /* stdin open; our direction open */
    int fd = connect_to(host, port);
    /* O_NONBLOCK: send() takes what fits and returns, instead of blocking
     * until all is sent while the server waits for us to read. Mistake:
     * poll() says "writable", then a blocking send() of 64 KiB still blocks.
     * libtcpkit: every socket is non-blocking inside. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        die("fcntl", strerror(errno));

    for (;;) {
        if (sending && !reading && left == 0) {
            /* shutdown(SHUT_WR): half-close. The server's recv() returns 0
             * after our last byte; we can still read its reply. Mistake:
             * close() here: no reply can be read, and replies still coming
             * make our kernel answer with a reset. libtcpkit:
             * tcpkit_close_write(). */
            if (shutdown(fd, SHUT_WR) < 0)
                die("shutdown", strerror(errno));
            sending = 0;
        }
        /* poll(): sleep until the socket has data (or room, when we have
         * something to send) or standard input has data. Mistake: sending
         * everything before reading anything: see the top of the file.
         * libtcpkit: one thread may send while another receives. */
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN | (left > 0 ? POLLOUT : 0)},
                              {.fd = reading && left == 0 ? STDIN_FILENO : -1, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll", strerror(errno));
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            /* recv(): what has arrived, maybe part of what the server sent.
             * 0 = end of stream: the server closed; all it sent is here. A
             * server killed with kill -9 gives that too (its kernel closes
             * the socket as close() would), so only the protocol can tell a
             * complete reply. ECONNRESET = reset, data may be lost. Mistake:
             * treating the two alike. libtcpkit: tcpkit_recv(). */
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n == 0)
                break;
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                die("recv", strerror(errno));
            if (n > 0)
                write_all(STDOUT_FILENO, buf, (size_t)n);
        }
        if (p[0].revents & POLLOUT) {
            /* send(): maybe only part of it; the rest next time round.
             * MSG_NOSIGNAL: a reset peer gives EPIPE, not a deadly SIGPIPE.
             * Mistake: write() on a socket (no flags, so SIGPIPE).
             * libtcpkit: tcpkit_send_all(). */
            ssize_t n = send(fd, out, left, MSG_NOSIGNAL);
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                die("send", strerror(errno));
            if (n > 0) {
                out += n;
                left -= (size_t)n;
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(STDIN_FILENO, in, sizeof in);
            if (n < 0 && errno != EINTR && errno != EAGAIN)
                die("read standard input", strerror(errno));
            reading = n != 0;
            out = in;
            left = n > 0 ? (size_t)n : 0;
        }
    }
    /* close(): release the socket. libtcpkit: tcpkit_close(). */
    close(fd);
    free(msg);
    return 0;
}
