/* SPDX-License-Identifier: MIT */
/* tcpkit_serve reliability (issue 14): shutdown wakes handlers blocked in
 * a send, a fatal accept error ends the server, the pool gives back the
 * threads a burst took, and overload leaves clients waiting in the backlog
 * (their connect times out beyond it) rather than failing them.
 *
 * Handlers report to the test through a pipe (one byte per event), and
 * the server thread writes a byte when tcpkit_serve returns: the test
 * waits on descriptors, never on sleeps. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a server on its own thread ---- */

struct srv {
    tcpkit_listener *l;
    tcpkit_handler fn;
    int max;
    pthread_t tid;
    tcpkit_err result;
    int done[2];         /* one byte when tcpkit_serve has returned */
    int events[2];       /* handlers write one byte per event */
    atomic_int release;  /* handlers that wait for it may go on */
    atomic_int last_err; /* a handler's final tcpkit_err */
    atomic_int handler_tid;
    int port;
};

static void *srv_main(void *p)
{
    struct srv *s = p;
    s->result = tcpkit_serve(s->l, s->fn, s, s->max);
    ssize_t r = write(s->done[1], "x", 1);
    (void)r;
    return NULL;
}

static void srv_start(struct srv *s, tcpkit_handler fn, int max, const tcpkit_opts *o)
{
    memset(s, 0, sizeof *s);
    s->l = th_listen_opts("127.0.0.1", o);
    s->port = tcpkit_listener_port(s->l);
    s->fn = fn;
    s->max = max;
    s->result = (tcpkit_err)-1;
    atomic_init(&s->last_err, -1);
    ck_assert_int_eq(pipe2(s->done, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(s->events, O_CLOEXEC), 0);
    ck_assert_int_eq(pthread_create(&s->tid, NULL, srv_main, s), 0);
}

static bool wait_fd(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* Waits (bounded) for n handler events. */
static bool srv_events(struct srv *s, int n, int ms)
{
    int64_t end = th_now_ms() + ms;
    char buf[64];
    while (n > 0) {
        int left = (int)(end - th_now_ms());
        if (left <= 0 || !wait_fd(s->events[0], left))
            return false;
        ssize_t r = read(s->events[0], buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
        if (r <= 0)
            return false;
        n -= (int)r;
    }
    return true;
}

static void srv_event(struct srv *s)
{
    ssize_t r = write(s->events[1], "e", 1);
    (void)r;
}

/* True if tcpkit_serve returned within ms. */
static bool srv_returned(struct srv *s, int ms)
{
    return wait_fd(s->done[0], ms);
}

/* Joins the server thread (shutting the listener down first if it is
 * still serving) and frees everything. */
static void srv_finish(struct srv *s)
{
    tcpkit_listener_shutdown(s->l);
    pthread_join(s->tid, NULL);
    tcpkit_listener_close(s->l);
    close(s->done[0]);
    close(s->done[1]);
    close(s->events[0]);
    close(s->events[1]);
}

/* ---- item 2: shutdown wakes a handler blocked in a send ---- */

/* Echoes until an error; reports its thread, then its final error. */
static void echo_handler(tcpkit_conn *c, void *arg)
{
    struct srv *s = arg;
    atomic_store(&s->handler_tid, (int)th_gettid());
    srv_event(s);
    static _Thread_local char buf[1 << 16];
    tcpkit_err err;
    size_t n;
    while ((err = tcpkit_recv(c, buf, sizeof buf, &n)) == TCPKIT_OK)
        if ((err = tcpkit_send_all(c, buf, n, NULL)) != TCPKIT_OK)
            break;
    atomic_store(&s->last_err, err);
}

/* Sends until an error: a client that writes but never reads. */
static void push_forever(th_peer *p)
{
    static char buf[1 << 16];
    while (th_raw_send_all(p->fd, buf, sizeof buf) == sizeof buf)
        p->result += (int64_t)sizeof buf;
}

/* DESIGN.md section 3: shutdown wakes handlers blocked in a receive or a
 * send, so tcpkit_serve returns promptly even with no I/O timeout. Fails on
 * 1.0 (0ef92d1), whose send_all waited without the shutdown wake-up. */
START_TEST(shutdown_wakes_handler_blocked_in_send)
{
    int scale = th_time_scale();
    struct srv s;
    srv_start(&s, echo_handler, 4, NULL);
    th_peer client = {.fd = th_raw_connect("127.0.0.1", s.port)};
    th_peer_start(&client, push_forever);
    ck_assert(srv_events(&s, 1, 5000 * scale));
    /* The echo fills the client's receive buffer, then the handler sleeps
     * in send_all (and the client in its send). */
    ck_assert_msg(th_wait_thread_sleeping(atomic_load(&s.handler_tid), 10000 * scale),
                  "the handler never blocked");
    int64_t t0 = th_now_ms();
    tcpkit_listener_shutdown(s.l);
    bool returned = srv_returned(&s, 2000 * scale);
    int64_t took = th_now_ms() - t0;
    /* Unblock everything before asserting, so a failure leaves no thread
     * behind: shutdown ends the client's send, and the reset of its close
     * (linger 0, in th_peer_join) fails the handler's. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(client.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    shutdown(client.fd, SHUT_RDWR);
    th_peer_join(&client);
    srv_finish(&s);
    ck_assert_msg(returned, "tcpkit_serve still running %lld ms after shutdown", (long long)took);
    ck_assert_int_eq(s.result, TCPKIT_OK);
    tcpkit_err e = (tcpkit_err)atomic_load(&s.last_err);
    ck_assert_msg(e == TCPKIT_ESHUTDOWN, "the handler's send_all ended with %s",
                  tcpkit_strerror(e));
}
END_TEST

/* ---- item 4: a fatal accept error ends tcpkit_serve ---- */

/* Reports, then holds its worker until the test releases it. */
static void hold_handler(tcpkit_conn *c, void *arg)
{
    (void)c;
    struct srv *s = arg;
    srv_event(s);
    while (!atomic_load(&s->release)) {
        char b;
        if (tcpkit_recv(c, &b, 1, NULL) != TCPKIT_OK)
            break;
    }
}

/* Mutation: tcpkit_serve treating EBADF/ENOTSOCK/EINVAL from accept as
 * transient (accept_error_is_fatal returning false, lib/serve.c): it then
 * backs off and retries forever instead of returning TCPKIT_ESYS. The
 * listener's descriptor is replaced under the server while its only
 * worker is busy: by /dev/null (accept says ENOTSOCK) or by a socket that
 * is not listening (EINVAL). */
START_TEST(fatal_accept_error_ends_serve)
{
    int scale = th_time_scale();
    struct srv s;
    srv_start(&s, hold_handler, 1, NULL);
    int client = th_raw_connect("127.0.0.1", s.port);
    ck_assert(srv_events(&s, 1, 5000 * scale));
    /* The acceptor waits for the busy worker: swap its descriptor now. */
    int repl = _i == 0 ? open("/dev/null", O_RDONLY | O_CLOEXEC)
                       : socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(repl, 0);
    ck_assert_int_ge(dup3(repl, tcpkit_listener_fd(s.l), O_CLOEXEC), 0);
    close(repl);
    atomic_store(&s.release, 1);
    ck_assert_int_eq(th_raw_send_all(client, "x", 1), 1);
    bool returned = srv_returned(&s, 5000 * scale);
    close(client);
    srv_finish(&s);
    ck_assert_msg(returned, "tcpkit_serve kept retrying a dead listener");
    ck_assert_msg(s.result == TCPKIT_ESYS, "tcpkit_serve: %s", tcpkit_strerror(s.result));
}
END_TEST

/* ---- item 3: the pool gives back what a burst took ---- */

/* Echoes one byte, then waits for the client to close. */
static void echo_once_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char b;
    tcpkit_err err = tcpkit_recv(c, &b, 1, NULL);
    if (err == TCPKIT_OK)
        err = tcpkit_send_all(c, &b, 1, NULL);
    while (err == TCPKIT_OK)
        err = tcpkit_recv(c, &b, 1, NULL);
}

/* `batch` clients at once, each served (echo seen) before any closes, so
 * the pool needs `batch` workers; then all close. */
static void burst(int port, int batch, int rounds, int scale)
{
    int *fds = calloc((size_t)batch, sizeof *fds);
    ck_assert_ptr_nonnull(fds);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < batch; i++) {
            fds[i] = th_raw_connect("127.0.0.1", port);
            ck_assert_int_eq(th_raw_send_all(fds[i], "b", 1), 1);
        }
        for (int i = 0; i < batch; i++) {
            char b = 0;
            ck_assert_msg(wait_fd(fds[i], 10000 * scale) && recv(fds[i], &b, 1, 0) == 1,
                          "client %d of round %d not served", i, r);
        }
        for (int i = 0; i < batch; i++)
            close(fds[i]);
    }
    free(fds);
}

/* Polls the thread count (bounded) until it is at most want. */
static int wait_threads_at_most(int want, int ms)
{
    int64_t end = th_now_ms() + ms;
    int now = th_count_threads();
    while (now > want && th_now_ms() < end) {
        wait_fd(-1, 20); /* no event marks a thread's exit: re-check */
        now = th_count_threads();
    }
    return now;
}

/* Issue 14 item 3: after 2,000 connections, 200 at a time, the idle
 * workers beyond the warm set exit; the thread count comes back near its
 * start (server thread + warm set) instead of staying at 200. */
START_TEST(pool_shrinks_after_burst)
{
    int scale = th_time_scale();
    int batch = th_under_valgrind() ? 50 : 200, rounds = 10;
    th_warm_up_threads();
    int base = th_stable_thread_count();
    struct srv s;
    srv_start(&s, echo_once_handler, batch, NULL);
    burst(s.port, batch, rounds, scale);
    int peak = th_count_threads();
    ck_assert_msg(peak >= base + batch / 2, "the burst grew the pool only to %d threads (base %d)",
                  peak, base);
    /* Server thread + warm set (lib/serve.c TK_WARM_WORKERS, 4) + 1 slack
     * for a worker still finishing its last connection. */
    int want = base + 1 + 4 + 1;
    int now = wait_threads_at_most(want, 30000 * scale);
    ck_assert_msg(now <= want, "%d threads %d s after the burst (base %d, peak %d)", now,
                  30 * scale, base, peak);
    /* The pool still works, and grows again. */
    burst(s.port, 20, 1, scale);
    srv_finish(&s);
    ck_assert_int_eq(s.result, TCPKIT_OK);
    now = th_wait_thread_count(base);
    ck_assert_msg(now == base, "thread leak: %d before, %d after", base, now);
}
END_TEST

/* ---- item 6: overload ---- */

/* DESIGN.md section 3 / issue 14 item 6: with max_conns busy, clients
 * wait in the backlog; once it is full the kernel drops further SYNs, so a
 * client beyond it sees its own connect time out, never an error from the
 * server. Backlog 1, max_conns 1, the one worker held. */
START_TEST(client_beyond_backlog_times_out)
{
    int scale = th_time_scale();
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_backlog(o, 1), TCPKIT_OK);
    struct srv s;
    srv_start(&s, hold_handler, 1, o);
    int first = th_raw_connect("127.0.0.1", s.port);
    ck_assert(srv_events(&s, 1, 5000 * scale));
    /* The accept loop now waits for the worker: fill the backlog. */
    int fds[64];
    int n = th_fill_backlog("127.0.0.1", s.port, fds, 64);

    ck_assert_int_eq(tcpkit_opts_set_connect_timeout(o, 300), TCPKIT_OK);
    char port[16];
    tcpkit_conn *c = NULL;
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", th_port_str(s.l, port, sizeof port), o);
    int64_t took = th_now_ms() - t0;
    tcpkit_opts_free(o);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(first);
    atomic_store(&s.release, 1);
    srv_finish(&s);
    tcpkit_close(c);
    ck_assert_msg(e == TCPKIT_ETIMEDOUT, "connect beyond the backlog: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_msg(took >= 290, "timed out after %lld ms", (long long)took);
    ck_assert_int_eq(s.result, TCPKIT_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("serve-rel");
    TCase *tc = th_tcase("reliability", 60);
    tcase_add_test(tc, shutdown_wakes_handler_blocked_in_send);
    tcase_add_loop_test(tc, fatal_accept_error_ends_serve, 0, 2);
    tcase_add_test(tc, client_beyond_backlog_times_out);
    suite_add_tcase(s, tc);
    tc = th_tcase("pool", 120);
    tcase_add_test(tc, pool_shrinks_after_burst);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
