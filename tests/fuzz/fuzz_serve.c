/* SPDX-License-Identifier: MIT */
/* libFuzzer target: tcpkit_serve driven by fuzzed clients over loopback.
 *
 * Each input starts a server (a listener on 127.0.0.1, port 0, with a
 * fuzzed I/O timeout, backlog and max_conns) and plays a short script of
 * client actions against it: connect, send a few bytes or a bulk of them,
 * read what came back, half-close, reset, close, and shut the server down
 * in the middle. The first byte a client sends picks its handler: echo
 * (recv + send_all), lines (recv_line with a fuzzed capacity), exact
 * (recv_exact of a fuzzed length), all (recv_all, max 4096) or push
 * (send_all of 256 KiB to a client that may never read). The echoing
 * handlers send back only what they received, in order, so whatever a
 * client reads must be the next bytes of what it sent; a push client reads
 * only the push pattern.
 *
 * At the end the listener is shut down: tcpkit_serve must return
 * TCPKIT_OK promptly (handlers blocked in a receive or a send are woken;
 * libFuzzer's -timeout catches a hang), and no descriptor may be left
 * open. Every input is bounded: at most 48 actions, waits of at most a few
 * tens of milliseconds. */
#include "fuzz.h"
#include "helpers.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 8
#define MAX_ACTIONS 48
#define HISTORY (256u * 1024u)
#define PUSH_LEN (256u * 1024u)

enum kind { ECHO, LINES, EXACT, ALL, PUSH, NKINDS };

/* ---- handlers ---- */

static void echo_loop(tcpkit_conn *c)
{
    char buf[512];
    size_t n;
    while (tcpkit_recv(c, buf, sizeof buf, &n) == TCPKIT_OK)
        if (tcpkit_send_all(c, buf, n, NULL) != TCPKIT_OK)
            return;
}

static void lines_loop(tcpkit_conn *c, size_t cap)
{
    char buf[256];
    size_t n;
    for (;;) {
        tcpkit_err e = tcpkit_recv_line(c, buf, cap, &n);
        if (e != TCPKIT_OK && e != TCPKIT_ETOOBIG)
            return;
        if (tcpkit_send_all(c, buf, n, NULL) != TCPKIT_OK)
            return;
    }
}

static void exact_loop(tcpkit_conn *c, size_t len)
{
    char buf[256];
    size_t n;
    tcpkit_err e;
    do {
        e = tcpkit_recv_exact(c, buf, len, &n);
        if (tcpkit_send_all(c, buf, n, NULL) != TCPKIT_OK)
            return;
    } while (e == TCPKIT_OK);
}

static void all_once(tcpkit_conn *c)
{
    void *data = NULL;
    size_t n = 0;
    tcpkit_recv_all(c, &data, &n, 4096);
    tcpkit_send_all(c, data, n, NULL);
    tcpkit_free(data);
}

static void push(tcpkit_conn *c)
{
    char pattern[4096];
    memset(pattern, 'p', sizeof pattern);
    for (size_t done = 0; done < PUSH_LEN; done += sizeof pattern)
        if (tcpkit_send_all(c, pattern, sizeof pattern, NULL) != TCPKIT_OK)
            return;
}

/* The first byte picks the handler; LINES and EXACT take a second one. */
static void handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    unsigned char k, param = 0;
    if (tcpkit_recv_exact(c, &k, 1, NULL) != TCPKIT_OK)
        return;
    k %= NKINDS;
    if ((k == LINES || k == EXACT) && tcpkit_recv_exact(c, &param, 1, NULL) != TCPKIT_OK)
        return;
    switch (k) {
    case ECHO:
        echo_loop(c);
        break;
    case LINES:
        lines_loop(c, 2 + param % 254); /* cap 1 holds no byte: ETOOBIG forever */
        break;
    case EXACT:
        exact_loop(c, 1 + param % 255);
        break;
    case ALL:
        all_once(c);
        break;
    default:
        push(c);
        break;
    }
}

/* ---- the server ---- */

struct server {
    tcpkit_listener *l;
    int max;
    pthread_t tid;
    tcpkit_err result;
};

static void *serve_main(void *p)
{
    struct server *s = p;
    s->result = tcpkit_serve(s->l, handler, NULL, s->max);
    return NULL;
}

/* ---- clients and their model ---- */

struct client {
    int fd;              /* -1 when closed */
    bool connected;      /* the handshake completed */
    unsigned char *sent; /* everything sent, for the echo check */
    size_t nsent, nread;
    bool checked; /* the echo check still applies */
};

static bool wait_for(int fd, short ev, int ms)
{
    struct pollfd p = {.fd = fd, .events = ev};
    return poll(&p, 1, ms) > 0;
}

static void client_connect(struct client *k, int port)
{
    k->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(k->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(k->fd, (struct sockaddr *)&a, sizeof a);
    CHECK(r == 0 || errno == EINPROGRESS);
    /* A full backlog drops the SYN: the client then stays unconnected. */
    k->connected = r == 0 || wait_for(k->fd, POLLOUT, 50);
    k->sent = malloc(HISTORY);
    CHECK(k->sent);
    k->nsent = k->nread = 0;
    k->checked = true;
}

static void client_send(struct client *k, const void *buf, size_t len)
{
    ssize_t n = send(k->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0)
        return;
    size_t keep = k->nsent + (size_t)n <= HISTORY ? (size_t)n : 0;
    if (keep == 0)
        k->checked = false; /* history full: stop checking this one */
    memcpy(k->sent + k->nsent, buf, keep);
    k->nsent += keep;
}

/* What a client reads must be the next bytes of what its handler echoes:
 * its own stream after the kind (and parameter) bytes, or the push
 * pattern. */
static void client_read(struct client *k, int ms)
{
    unsigned char buf[4096];
    if (!wait_for(k->fd, POLLIN, ms))
        return;
    ssize_t n = recv(k->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0 || !k->checked || k->nsent == 0)
        return;
    unsigned kind = k->sent[0] % NKINDS;
    if (kind == PUSH) {
        for (ssize_t i = 0; i < n; i++)
            CHECK(buf[i] == 'p');
        return;
    }
    size_t skip = (kind == LINES || kind == EXACT) ? 2 : 1;
    CHECK(skip + k->nread + (size_t)n <= k->nsent);
    CHECK(memcmp(buf, k->sent + skip + k->nread, (size_t)n) == 0);
    k->nread += (size_t)n;
}

static void client_close(struct client *k, bool reset)
{
    if (k->fd < 0)
        return;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(k->fd);
    k->fd = -1;
    free(k->sent);
    k->sent = NULL;
}

/* One scripted action on client k (connecting it first if needed). */
static void act(struct client *cl, struct th_input *in, int port, struct server *s)
{
    unsigned op = th_next(in);
    struct client *k = &cl[(op >> 3) % MAX_CLIENTS];
    if (k->fd < 0)
        client_connect(k, port);
    static unsigned char bulk[65536];
    size_t len;
    switch (op & 7) {
    case 0:
    case 1:
        len = th_next(in) % 64;
        len = len > in->left ? in->left : len;
        client_send(k, in->p, len);
        in->p += len;
        in->left -= len;
        break;
    case 2:
        memset(bulk, (int)th_next(in), sizeof bulk);
        client_send(k, bulk, sizeof bulk);
        break;
    case 3:
        client_read(k, th_next(in) % 20);
        break;
    case 4:
        shutdown(k->fd, SHUT_WR);
        break;
    case 5:
        client_close(k, th_next(in) & 1);
        break;
    case 6:
        if (th_next(in) == 0xff)
            tcpkit_listener_shutdown(s->l); /* stop in the middle */
        break;
    default:
        client_read(k, 0);
        break;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static tcpkit_opts *server_opts(struct th_input *in)
{
    static const int timeouts[] = {-1, 0, 1, 20, 100};
    tcpkit_opts *o = NULL;
    CHECK(tcpkit_opts_new(&o) == TCPKIT_OK);
    CHECK(tcpkit_opts_set_io_timeout(o, timeouts[th_next(in) % 5]) == TCPKIT_OK);
    CHECK(tcpkit_opts_set_backlog(o, 1 + (int)(th_next(in) % 16)) == TCPKIT_OK);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct th_input in = {data, size};
    int fds = th_count_fds();
    struct server s = {.result = (tcpkit_err)-1};
    tcpkit_opts *o = server_opts(&in);
    CHECK(tcpkit_listen(&s.l, "127.0.0.1", "0", o) == TCPKIT_OK);
    tcpkit_opts_free(o);
    s.max = 1 + (int)(th_next(&in) % 4);
    CHECK(pthread_create(&s.tid, NULL, serve_main, &s) == 0);
    int port = tcpkit_listener_port(s.l);

    struct client cl[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS; i++)
        cl[i].fd = -1;
    for (int i = 0; i < MAX_ACTIONS && in.left; i++)
        act(cl, &in, port, &s);

    tcpkit_listener_shutdown(s.l);
    pthread_join(s.tid, NULL);
    CHECK(s.result == TCPKIT_OK);
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(&cl[i], false);
    tcpkit_listener_close(s.l);
    CHECK(th_count_fds() == fds);
    return 0;
}
