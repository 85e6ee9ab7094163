/* SPDX-License-Identifier: MIT */
/* tcpkit_serve_with in fiber mode: thousands of connections on two loop
 * threads, waits that suspend only their fiber (timeouts, shutdown,
 * tcpkit_sleep, tcpkit_run_blocking, an outgoing connect), the per-fiber
 * last error, the guard page, and the options' checks. */
#include "helpers.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a fiber server on its own thread ---- */

struct fsrv {
    tcpkit_listener *l;
    tcpkit_handler fn;
    void *arg;
    int loops;
    int mode; /* TCPKIT_SERVE_FIBERS (0) unless a test sets it */
    int max;
    size_t stack;
    pthread_t tid;
    tcpkit_err result;
    int port;
};

static void *fsrv_main(void *p)
{
    struct fsrv *s = p;
    tcpkit_opts *o;
    if (tcpkit_opts_new(&o) != TCPKIT_OK) {
        s->result = TCPKIT_ENOMEM;
        return NULL;
    }
    tcpkit_opts_set_serve_threads(o, s->loops);
    tcpkit_opts_set_serve_mode(o, (tcpkit_serve_mode)s->mode);
    if (s->max)
        tcpkit_opts_set_max_conns(o, s->max);
    if (s->stack)
        tcpkit_opts_set_stack_size(o, s->stack);
    s->result = tcpkit_serve_with(s->l, s->fn, s->arg, o);
    tcpkit_opts_free(o);
    return NULL;
}

/* Starts a fiber server with `loops` loop threads on l (NULL: a new
 * loopback listener). */
static void fsrv_start(struct fsrv *s, tcpkit_listener *l, tcpkit_handler fn, void *arg, int loops)
{
    s->l = l ? l : th_listen_loopback("127.0.0.1");
    s->fn = fn;
    s->arg = arg;
    s->loops = loops;
    s->result = (tcpkit_err)-1;
    s->port = tcpkit_listener_port(s->l);
    ck_assert_int_eq(pthread_create(&s->tid, NULL, fsrv_main, s), 0);
}

static void fsrv_stop(struct fsrv *s)
{
    tcpkit_listener_shutdown(s->l);
    ck_assert_int_eq(pthread_join(s->tid, NULL), 0);
    ck_assert_msg(s->result == TCPKIT_OK, "serve_with: %s (%s)", tcpkit_strerror(s->result),
                  tcpkit_last_error());
    tcpkit_listener_close(s->l);
}

/* ---- counters the test thread can wait on ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int started, finished, bad;
static char bad_msg[256];

static void counters_reset(void)
{
    pthread_mutex_lock(&mu);
    started = finished = bad = 0;
    bad_msg[0] = '\0';
    pthread_mutex_unlock(&mu);
}

static void bump(int *v)
{
    pthread_mutex_lock(&mu);
    (*v)++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int get(const int *v)
{
    pthread_mutex_lock(&mu);
    int n = *v;
    pthread_mutex_unlock(&mu);
    return n;
}

static void note_bad(const char *what, tcpkit_err err)
{
    pthread_mutex_lock(&mu);
    if (bad++ == 0)
        snprintf(bad_msg, sizeof bad_msg, "%s: %s (%s)", what, tcpkit_strerror(err),
                 tcpkit_last_error());
    pthread_mutex_unlock(&mu);
}

/* Waits until *v reaches n or timeout_ms passes. */
static bool wait_count(int *v, int n, int timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mu);
    int r = 0;
    while (*v < n && r == 0)
        r = pthread_cond_timedwait(&cv, &mu, &end);
    bool ok = *v >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static void assert_no_bad(void)
{
    ck_assert_msg(get(&bad) == 0, "%d handlers failed, the first: %s", get(&bad), bad_msg);
}

static void echo_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    bump(&started);
    char buf[512];
    size_t n;
    tcpkit_err err;
    while ((err = tcpkit_recv(c, buf, sizeof buf, &n)) == TCPKIT_OK)
        if ((err = tcpkit_send_all(c, buf, n, NULL)) != TCPKIT_OK)
            break;
    if (err != TCPKIT_EOF && err != TCPKIT_ESHUTDOWN && err != TCPKIT_ERESET)
        note_bad("echo", err);
    bump(&finished);
}

static bool echo_ok(int fd, uint64_t seed, size_t len)
{
    char out[4096], in[4096];
    th_fill(out, len, seed, 0);
    if (th_raw_send_all(fd, out, len) != len)
        return false;
    size_t got = 0;
    while (got < len) {
        ssize_t r = recv(fd, in + got, len - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return memcmp(in, out, len) == 0;
}

/* ---- thousands of connections ---- */

/* Connections held open at once: 5,000 on the plain build (10,000
 * descriptors with the server's ends), fewer under Valgrind. */
static int many_conns(void)
{
    const char *v = getenv("TCPKIT_FIBER_SCALE");
    int div = v ? atoi(v) : 1;
    if (th_under_valgrind() && div < 10)
        div = 10;
    return 5000 / (div > 0 ? div : 1);
}

START_TEST(echo_5000_connections_on_2_loops)
{
    int n = many_conns();
    counters_reset();
    struct fsrv s = {0};
    fsrv_start(&s, NULL, echo_handler, NULL, 2);
    int *fds = malloc((size_t)n * sizeof *fds);
    ck_assert_ptr_nonnull(fds);
    for (int i = 0; i < n; i++)
        fds[i] = th_raw_connect("127.0.0.1", s.port);
    /* All handlers run at once: each is a fiber waiting in a receive. */
    ck_assert_msg(wait_count(&started, n, 30000 * th_time_scale()), "%d of %d handlers started",
                  get(&started), n);
    /* Every byte comes back to the client that sent it, in two rounds so
     * each fiber waits, wakes, and waits again. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < n; i++)
            ck_assert_msg(
                echo_ok(fds[i], (uint64_t)i * 31 + (uint64_t)round, 100 + (size_t)(i % 900)),
                "connection %d round %d: wrong echo", i, round);
    ck_assert_int_eq(get(&finished), 0);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ck_assert(wait_count(&finished, n, 30000 * th_time_scale()));
    fsrv_stop(&s);
    assert_no_bad();
    free(fds);
}
END_TEST

/* ---- timeouts and shutdown wake fibers as they wake threads ---- */

static void timeout_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    bump(&started);
    tcpkit_conn_set_timeout(c, 100);
    char b;
    int64_t t0 = th_now_ms();
    tcpkit_err err = tcpkit_recv(c, &b, 1, NULL);
    int64_t took = th_now_ms() - t0;
    if (err != TCPKIT_ETIMEDOUT || took < 95)
        note_bad("timeout", err);
    tcpkit_send_all(c, "T", 1, NULL);
    bump(&finished);
}

START_TEST(io_timeout_in_fibers)
{
    counters_reset();
    struct fsrv s = {0};
    fsrv_start(&s, NULL, timeout_handler, NULL, 1);
    int fds[20];
    int64_t t0 = th_now_ms();
    for (int i = 0; i < 20; i++)
        fds[i] = th_raw_connect("127.0.0.1", s.port);
    /* 20 fibers on one loop time out together, not one after another. */
    for (int i = 0; i < 20; i++) {
        char b = 0;
        ck_assert_int_eq(th_raw_recv_all(fds[i], &b, 1), 1);
        ck_assert_int_eq(b, 'T');
        close(fds[i]);
    }
    int64_t took = th_now_ms() - t0;
    ck_assert(wait_count(&finished, 20, 5000 * th_time_scale()));
    fsrv_stop(&s);
    assert_no_bad();
    ck_assert_msg(took < 1500 * th_time_scale(), "20 timeouts of 100 ms took %lld ms",
                  (long long)took);
}
END_TEST

/* Blocked in a send to a client that reads nothing, in a receive, or in a
 * long tcpkit_sleep: shutdown ends each wait at once, in fiber mode and
 * (the same test, _i = 1) in thread mode. */
static void stuck_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char kind;
    tcpkit_err err = tcpkit_recv_exact(c, &kind, 1, NULL);
    bump(&started);
    static const char chunk[65536];
    while (err == TCPKIT_OK) {
        if (kind == 's')
            err = tcpkit_send_all(c, chunk, sizeof chunk, NULL);
        else if (kind == 'z')
            err = tcpkit_sleep(600000);
        else
            err = tcpkit_recv(c, &kind, 1, NULL);
    }
    if (err != TCPKIT_ESHUTDOWN)
        note_bad("stuck", err);
    bump(&finished);
}

START_TEST(shutdown_wakes_send_recv_and_sleep)
{
    counters_reset();
    struct fsrv s = {.mode = _i};
    fsrv_start(&s, NULL, stuck_handler, NULL, 2);
    static const char kinds[] = "srz";
    int fds[30];
    for (int i = 0; i < 30; i++) {
        fds[i] = th_raw_connect("127.0.0.1", s.port);
        ck_assert_int_eq(th_raw_send_all(fds[i], &kinds[i % 3], 1), 1);
    }
    ck_assert(wait_count(&started, 30, 10000 * th_time_scale()));
    /* The senders are sending (and soon blocked on full buffers). */
    for (int i = 0; i < 30; i += 3) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 5000 * th_time_scale()), 1);
    }
    int64_t t0 = th_now_ms();
    fsrv_stop(&s);
    int64_t took = th_now_ms() - t0;
    ck_assert_int_eq(get(&finished), 30);
    assert_no_bad();
    ck_assert_msg(took < 2000 * th_time_scale(), "shutdown took %lld ms", (long long)took);
    for (int i = 0; i < 30; i++)
        close(fds[i]);
}
END_TEST

/* ---- tcpkit_sleep ---- */

static void sleep_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    bump(&started);
    int64_t t0 = th_now_ms();
    tcpkit_err err = tcpkit_sleep(500);
    if (err != TCPKIT_OK || th_now_ms() - t0 < 500)
        note_bad("sleep", err);
    tcpkit_send_all(c, "z", 1, NULL);
    bump(&finished);
}

START_TEST(sleep_1000_fibers_at_once)
{
    int n = many_conns() / 5;
    counters_reset();
    struct fsrv s = {0};
    fsrv_start(&s, NULL, sleep_handler, NULL, 1);
    int *fds = malloc((size_t)n * sizeof *fds);
    ck_assert_ptr_nonnull(fds);
    int64_t t0 = th_now_ms();
    for (int i = 0; i < n; i++)
        fds[i] = th_raw_connect("127.0.0.1", s.port);
    ck_assert(wait_count(&finished, n, 30000 * th_time_scale()));
    int64_t took = th_now_ms() - t0;
    for (int i = 0; i < n; i++) {
        char b = 0;
        ck_assert_int_eq(th_raw_recv_all(fds[i], &b, 1), 1);
        close(fds[i]);
    }
    fsrv_stop(&s);
    assert_no_bad();
    /* One loop thread: sleeping one after another would take n * 0.5 s. */
    ck_assert_msg(took < 3000 * th_time_scale(), "%d sleeps of 500 ms took %lld ms", n,
                  (long long)took);
    free(fds);
}
END_TEST

START_TEST(sleep_outside_fibers)
{
    ck_assert_int_eq(tcpkit_sleep(-1), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_sleep(0), TCPKIT_OK);
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_sleep(50), TCPKIT_OK);
    ck_assert_int_ge(th_now_ms() - t0, 50);
}
END_TEST

/* ---- tcpkit_run_blocking ---- */

static int block_pipe[2];

static void read_pipe(void *arg)
{
    char *b = arg;
    if (read(block_pipe[0], b, 1) != 1)
        *b = '?';
}

/* 'B': a blocking read of a pipe on a helper thread; else an echo. */
static void blocking_handler(tcpkit_conn *c, void *arg)
{
    char kind;
    if (tcpkit_recv_exact(c, &kind, 1, NULL) != TCPKIT_OK)
        return;
    if (kind != 'B') {
        echo_handler(c, arg);
        return;
    }
    bump(&started);
    char b = 0;
    tcpkit_err err = tcpkit_run_blocking(read_pipe, &b);
    if (err != TCPKIT_OK)
        note_bad("run_blocking", err);
    tcpkit_send_all(c, &b, 1, NULL);
}

static void direct_fn(void *arg)
{
    *(int *)arg = 42;
}

START_TEST(run_blocking_keeps_the_loop_running)
{
    counters_reset();
    ck_assert_int_eq(pipe(block_pipe), 0);
    struct fsrv s = {0};
    fsrv_start(&s, NULL, blocking_handler, NULL, 1);
    int blocker = th_raw_connect("127.0.0.1", s.port);
    ck_assert_int_eq(th_raw_send_all(blocker, "B", 1), 1);
    ck_assert(wait_count(&started, 1, 5000 * th_time_scale()));
    /* The only loop thread has a fiber waiting on a blocking read, yet
     * other connections on it keep being served. */
    for (int i = 0; i < 20; i++) {
        int fd = th_raw_connect("127.0.0.1", s.port);
        ck_assert_int_eq(th_raw_send_all(fd, "e", 1), 1);
        ck_assert(echo_ok(fd, (uint64_t)i, 300));
        close(fd);
    }
    struct pollfd p = {.fd = blocker, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    ck_assert_int_eq(write(block_pipe[1], "!", 1), 1);
    char b = 0;
    ck_assert_int_eq(th_raw_recv_all(blocker, &b, 1), 1);
    ck_assert_int_eq(b, '!');
    close(blocker);
    fsrv_stop(&s);
    assert_no_bad();
    close(block_pipe[0]);
    close(block_pipe[1]);
    /* Outside a fiber it is a plain call. */
    int v = 0;
    ck_assert_int_eq(tcpkit_run_blocking(direct_fn, &v), TCPKIT_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(tcpkit_run_blocking(NULL, &v), TCPKIT_EINVAL);
}
END_TEST

/* ---- a handler that connects out ---- */

static int backend_port;

/* Reads a line, asks the backend (an echo server) for the same line,
 * hands the answer back: a proxy. "localhost" makes the connect resolve a
 * name, which runs on a helper thread. */
static void proxy_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char line[128], port[16], rep[128];
    size_t n = 0, m = 0;
    if (tcpkit_recv_line(c, line, sizeof line, &n) != TCPKIT_OK)
        return;
    snprintf(port, sizeof port, "%d", backend_port);
    tcpkit_opts *o;
    tcpkit_opts_new(&o);
    tcpkit_opts_set_family(o, TCPKIT_FAMILY_IPV4);
    tcpkit_conn *up;
    tcpkit_err err = tcpkit_connect(&up, line[0] == 'n' ? "localhost" : "127.0.0.1", port, o);
    tcpkit_opts_free(o);
    if (err == TCPKIT_OK)
        err = tcpkit_send_all(up, line, n, NULL);
    if (err == TCPKIT_OK)
        err = tcpkit_recv_exact(up, rep, n, &m);
    if (err != TCPKIT_OK)
        note_bad("proxy", err);
    tcpkit_close(up);
    tcpkit_send_all(c, rep, m, NULL);
}

START_TEST(proxy_connects_out)
{
    counters_reset();
    struct fsrv back = {0}, front = {0};
    fsrv_start(&back, NULL, echo_handler, NULL, 1);
    backend_port = back.port;
    fsrv_start(&front, NULL, proxy_handler, NULL, 1);
    int fds[40];
    for (int i = 0; i < 40; i++) {
        fds[i] = th_raw_connect("127.0.0.1", front.port);
        char req[32];
        int len = snprintf(req, sizeof req, "%c%d\n", i % 2 ? 'n' : 'a', i);
        ck_assert_int_eq(th_raw_send_all(fds[i], req, (size_t)len), (size_t)len);
    }
    for (int i = 0; i < 40; i++) {
        char req[32], rep[32] = {0};
        int len = snprintf(req, sizeof req, "%c%d\n", i % 2 ? 'n' : 'a', i);
        ck_assert_int_eq(th_raw_recv_all(fds[i], rep, sizeof rep - 1), (size_t)len);
        ck_assert_str_eq(rep, req);
        close(fds[i]);
    }
    fsrv_stop(&front);
    fsrv_stop(&back);
    assert_no_bad();
}
END_TEST

/* ---- a connect that has to wait parks only its fiber ---- */

static int hang_port;

/* 'C': connect to a listener whose backlog is full (the SYN goes
 * unanswered) with a 2 s timeout; else an echo. */
static void hang_handler(tcpkit_conn *c, void *arg)
{
    char kind;
    if (tcpkit_recv_exact(c, &kind, 1, NULL) != TCPKIT_OK)
        return;
    if (kind != 'C') {
        echo_handler(c, arg);
        return;
    }
    bump(&started);
    char port[16];
    snprintf(port, sizeof port, "%d", hang_port);
    tcpkit_opts *o;
    tcpkit_opts_new(&o);
    tcpkit_opts_set_connect_timeout(o, 2000 * th_time_scale());
    tcpkit_conn *up = NULL;
    char r = (char)tcpkit_connect(&up, "127.0.0.1", port, o);
    tcpkit_opts_free(o);
    tcpkit_close(up);
    tcpkit_send_all(c, &r, 1, NULL);
}

START_TEST(connect_race_parks_in_the_loop)
{
    counters_reset();
    int lfd = th_raw_listen("127.0.0.1", 1, &hang_port);
    int fill[64];
    int nfill = th_fill_backlog("127.0.0.1", hang_port, fill, 64);
    struct fsrv s = {0};
    fsrv_start(&s, NULL, hang_handler, NULL, 1);
    int blocker = th_raw_connect("127.0.0.1", s.port);
    ck_assert_int_eq(th_raw_send_all(blocker, "C", 1), 1);
    ck_assert(wait_count(&started, 1, 5000 * th_time_scale()));
    /* While that fiber waits for the SYN-ACK, its loop serves others. */
    for (int i = 0; i < 20; i++) {
        int fd = th_raw_connect("127.0.0.1", s.port);
        ck_assert_int_eq(th_raw_send_all(fd, "e", 1), 1);
        ck_assert(echo_ok(fd, (uint64_t)i, 200));
        close(fd);
    }
    struct pollfd p = {.fd = blocker, .events = POLLIN};
    ck_assert_msg(poll(&p, 1, 0) == 0, "the connect ended before the echoes did");
    char r = 0;
    ck_assert_int_eq(th_raw_recv_all(blocker, &r, 1), 1);
    ck_assert_int_eq(r, TCPKIT_ETIMEDOUT);
    close(blocker);
    fsrv_stop(&s);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
    assert_no_bad();
}
END_TEST

/* ---- tcpkit_last_error belongs to the fiber ---- */

/* Each fiber records an error naming itself, waits (letting the others
 * run and record theirs on the same thread), and then still sees its own. */
static void last_error_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char id[16];
    size_t n = 0;
    if (tcpkit_recv_line(c, id, sizeof id, &n) != TCPKIT_OK)
        return;
    id[n - 1] = '\0';
    int ms = atoi(id);
    tcpkit_opts *o;
    tcpkit_opts_new(&o);
    tcpkit_opts_set_backlog(o, -ms); /* "opts_set_backlog: value -<id> out of range" */
    tcpkit_opts_free(o);
    char want[256];
    snprintf(want, sizeof want, "%s", tcpkit_last_error());
    int want_errno = tcpkit_last_errno();
    bump(&started);
    char b;
    tcpkit_recv_exact(c, &b, 1, NULL);
    tcpkit_sleep(ms % 7);
    if (strcmp(want, tcpkit_last_error()) != 0 || strstr(want, id) == NULL ||
        tcpkit_last_errno() != want_errno)
        note_bad(want, TCPKIT_ESYS);
    tcpkit_send_all(c, "k", 1, NULL);
}

START_TEST(last_error_per_fiber)
{
    counters_reset();
    struct fsrv s = {0};
    fsrv_start(&s, NULL, last_error_handler, NULL, 1);
    int fds[50];
    for (int i = 0; i < 50; i++) {
        fds[i] = th_raw_connect("127.0.0.1", s.port);
        char id[16];
        int len = snprintf(id, sizeof id, "%d\n", i + 1);
        ck_assert_int_eq(th_raw_send_all(fds[i], id, (size_t)len), (size_t)len);
    }
    ck_assert(wait_count(&started, 50, 10000 * th_time_scale()));
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(th_raw_send_all(fds[i], "go", 1), 1);
    for (int i = 0; i < 50; i++) {
        char b = 0;
        ck_assert_int_eq(th_raw_recv_all(fds[i], &b, 1), 1);
        close(fds[i]);
    }
    fsrv_stop(&s);
    assert_no_bad();
}
END_TEST

/* ---- stack overflow hits the guard page ---- */

static int recurse(volatile char *prev, int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    return depth > 1000000 ? frame[0] : recurse(frame, depth + 1) + frame[511];
}

/* "<what> 0x<hex>\n" on stderr, async-signal-safe. */
static void say_addr(const char *what, const void *p)
{
    char buf[64];
    size_t n = strlen(what);
    memcpy(buf, what, n);
    buf[n++] = ' ';
    buf[n++] = '0';
    buf[n++] = 'x';
    uintptr_t v = (uintptr_t)p;
    for (int shift = (int)sizeof v * 8 - 4; shift >= 0; shift -= 4)
        buf[n++] = "0123456789abcdef"[(v >> shift) & 0xf];
    buf[n++] = '\n';
    ssize_t r = write(2, buf, n);
    (void)r;
}

/* Reports where the fault was, then lets it kill the process. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    say_addr("fault", si->si_addr);
    signal(sig, SIG_DFL);
}

/* 'o': recurse without end (on an alternate signal stack for on_segv of
 * this loop thread); anything else: wait for the end of the connection. */
static void overflow_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char kind = 0;
    tcpkit_recv_exact(c, &kind, 1, NULL);
    if (kind != 'o') {
        while (tcpkit_recv_exact(c, &kind, 1, NULL) == TCPKIT_OK)
            ;
        return;
    }
    static char alt[64 * 1024];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    if (!th_under_asan())
        sigaltstack(&ss, NULL);
    say_addr("frame", &kind);
    recurse(NULL, 0);
}

/* A client connection to l that has sent `kind`. */
static void overflow_client(tcpkit_listener *l, char kind)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_storage ss;
    socklen_t len = th_loopback_sockaddr(AF_INET, tcpkit_listener_port(l), &ss);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0 || send(fd, &kind, 1, 0) != 1)
        _exit(4);
}

/* In a child process: a fiber server with 16 KiB stacks and two clients.
 * The first one's handler recurses without end; the second one's fiber,
 * started next, has its stack mapped just below (mmap goes downwards), so
 * without a guard page the recursion would run into it. Returns the
 * child's wait status; its stderr goes to err (cap bytes, terminated). */
static int run_overflow_child(char *err, size_t cap)
{
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(out[1], 2);
        close(out[0]);
        close(out[1]);
        if (!th_under_asan()) {
            struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_ONSTACK};
            sigaction(SIGSEGV, &sa, NULL);
        }
        tcpkit_listener *l;
        if (tcpkit_listen(&l, "127.0.0.1", "0", NULL) != TCPKIT_OK)
            _exit(3);
        overflow_client(l, 'o');
        overflow_client(l, 'i');
        tcpkit_opts *o;
        tcpkit_opts_new(&o);
        tcpkit_opts_set_serve_threads(o, 1);
        tcpkit_opts_set_stack_size(o, 16 * 1024);
        tcpkit_serve_with(l, overflow_handler, NULL, o);
        _exit(0); /* not reached: the handler never returns */
    }
    close(out[1]);
    /* Keep the first cap - 1 bytes, drain the rest so the child never
     * blocks on a long report. */
    size_t got = 0;
    ssize_t r;
    char sink[4096];
    while ((r = read(out[0], got < cap - 1 ? err + got : sink,
                     got < cap - 1 ? cap - 1 - got : sizeof sink)) > 0)
        if (got < cap - 1)
            got += (size_t)r;
    err[got] = '\0';
    close(out[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

START_TEST(stack_overflow_dies_on_the_guard_page)
{
    static char err[8192];
    int status = run_overflow_child(err, sizeof err);
    if (th_under_asan()) {
        /* AddressSanitizer reports the overflow and exits non-zero. */
        ck_assert_msg((WIFEXITED(status) && WEXITSTATUS(status) != 0) || WIFSIGNALED(status),
                      "status %#x", status);
        ck_assert_msg(strstr(err, "stack-overflow") != NULL, "no ASan report: %s", err);
        return;
    }
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                  "the child did not die of SIGSEGV (status %#x)", status);
    /* It died on the guard page: within the 16 KiB stack (plus the guard
     * page and the handler's own frame) below the handler's frame, not
     * further down in the next fiber's stack. */
    const char *f = strstr(err, "frame 0x"), *g = strstr(err, "fault 0x");
    ck_assert_msg(f && g, "no addresses reported: %s", err);
    uintptr_t frame = (uintptr_t)strtoull(f + 6, NULL, 16);
    uintptr_t fault = (uintptr_t)strtoull(g + 6, NULL, 16);
    ck_assert_msg(fault < frame && frame - fault <= 24 * 1024,
                  "fault at %#lx, %ld bytes below the handler's frame %#lx", (unsigned long)fault,
                  (long)(frame - fault), (unsigned long)frame);
}
END_TEST

/* ---- a handler that returns while the peer still sends ---- */

static void early_return_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char b;
    tcpkit_recv_exact(c, &b, 1, NULL);
    bump(&finished);
}

START_TEST(handler_returns_while_peer_sends)
{
    counters_reset();
    struct fsrv s = {0};
    fsrv_start(&s, NULL, early_return_handler, NULL, 1);
    for (int i = 0; i < 10; i++) {
        int fd = th_raw_connect("127.0.0.1", s.port);
        static char chunk[65536];
        /* The server reads one byte and closes with the rest unread: the
         * kernel resets the connection; the sender sees an error, the
         * server nothing. */
        size_t sent = 0;
        for (int k = 0; k < 64; k++) {
            size_t n = th_raw_send_all(fd, chunk, sizeof chunk);
            sent += n;
            if (n < sizeof chunk)
                break;
        }
        ck_assert_uint_gt(sent, 0);
        close(fd);
    }
    ck_assert(wait_count(&finished, 10, 5000 * th_time_scale()));
    /* And the server goes on serving. */
    int fd = th_raw_connect("127.0.0.1", s.port);
    ck_assert_int_eq(th_raw_send_all(fd, "x", 1), 1);
    char b;
    ck_assert_int_eq(th_raw_recv_all(fd, &b, 1), 0);
    close(fd);
    fsrv_stop(&s);
}
END_TEST

/* ---- a listener that becomes unusable ---- */

struct fatal_result {
    tcpkit_err err;
    int os_errno;
    char msg[256];
};

static void *fatal_serve(void *p)
{
    struct fsrv *s = p;
    struct fatal_result *r = s->arg;
    fsrv_main(s);
    r->err = s->result;
    r->os_errno = tcpkit_last_errno();
    snprintf(r->msg, sizeof r->msg, "%s", tcpkit_last_error());
    return NULL;
}

/* shutdown(2) on the listening socket makes accept fail with EINVAL: the
 * server stops and returns TCPKIT_ESYS with the loop thread's message on
 * the caller's thread (_i: serve mode). */
START_TEST(unusable_listener_ends_the_server)
{
    counters_reset();
    struct fatal_result r = {TCPKIT_OK, 0, ""};
    struct fsrv s = {.mode = _i,
                     .l = th_listen_loopback("127.0.0.1"),
                     .fn = echo_handler,
                     .arg = &r,
                     .loops = 2,
                     .result = (tcpkit_err)-1};
    s.port = tcpkit_listener_port(s.l);
    ck_assert_int_eq(pthread_create(&s.tid, NULL, fatal_serve, &s), 0);
    int fd = th_raw_connect("127.0.0.1", s.port);
    ck_assert(echo_ok(fd, 7, 100));
    ck_assert_int_eq(shutdown(tcpkit_listener_fd(s.l), SHUT_RDWR), 0);
    ck_assert_int_eq(pthread_join(s.tid, NULL), 0);
    ck_assert_msg(r.err == TCPKIT_ESYS, "serve: %s (%s)", tcpkit_strerror(r.err), r.msg);
    ck_assert_int_eq(r.os_errno, EINVAL);
    ck_assert_ptr_nonnull(strstr(r.msg, "accept"));
    /* The handler was woken like at shutdown and the connection closed. */
    char b;
    ck_assert_int_eq(th_raw_recv_all(fd, &b, 1), 0);
    close(fd);
    tcpkit_listener_close(s.l);
    assert_no_bad();
}
END_TEST

/* ---- arguments and options ---- */

static void never_handler(tcpkit_conn *c, void *arg)
{
    (void)c, (void)arg;
    bump(&started);
}

START_TEST(options_and_arguments)
{
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_serve_mode(o, TCPKIT_SERVE_THREADS), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_serve_mode(o, TCPKIT_SERVE_FIBERS), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_serve_mode(o, (tcpkit_serve_mode)2), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_serve_mode(NULL, TCPKIT_SERVE_FIBERS), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_max_conns(o, 1), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_max_conns(o, 0), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_max_conns(NULL, 5), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_serve_threads(o, 0), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_serve_threads(o, -1), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_serve_threads(NULL, 1), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_stack_size(o, 16 * 1024), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_stack_size(o, 64u * 1024 * 1024), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_stack_size(o, 16 * 1024 - 1), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_stack_size(o, 64u * 1024 * 1024 + 1), TCPKIT_EINVAL);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "stack_size"));
    ck_assert_int_eq(tcpkit_opts_set_stack_size(NULL, 65536), TCPKIT_EINVAL);

    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    ck_assert_int_eq(tcpkit_serve_with(NULL, never_handler, NULL, o), TCPKIT_EINVAL);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "listener"));
    ck_assert_int_eq(tcpkit_serve_with(l, NULL, NULL, o), TCPKIT_EINVAL);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "handler"));
    /* A listener already shut down: returns at once, in both modes. */
    tcpkit_listener_shutdown(l);
    ck_assert_int_eq(tcpkit_serve_with(l, never_handler, NULL, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_serve_with(l, never_handler, NULL, o), TCPKIT_OK);
    tcpkit_listener_close(l);
    tcpkit_opts_free(o);
}
END_TEST

static Suite *fiber_suite(void)
{
    Suite *s = suite_create("fiber");
    TCase *tc = th_tcase("scale", 120);
    tcase_add_test(tc, echo_5000_connections_on_2_loops);
    tcase_add_test(tc, sleep_1000_fibers_at_once);
    suite_add_tcase(s, tc);

    tc = th_tcase("waits", 60);
    tcase_add_test(tc, io_timeout_in_fibers);
    tcase_add_loop_test(tc, shutdown_wakes_send_recv_and_sleep, TCPKIT_SERVE_FIBERS,
                        TCPKIT_SERVE_THREADS + 1);
    tcase_add_test(tc, sleep_outside_fibers);
    tcase_add_test(tc, run_blocking_keeps_the_loop_running);
    tcase_add_test(tc, proxy_connects_out);
    tcase_add_test(tc, connect_race_parks_in_the_loop);
    tcase_add_test(tc, last_error_per_fiber);
    tcase_add_test(tc, handler_returns_while_peer_sends);
    suite_add_tcase(s, tc);

    tc = th_tcase("edges", 60);
    tcase_add_test(tc, stack_overflow_dies_on_the_guard_page);
    tcase_add_test(tc, options_and_arguments);
    tcase_add_loop_test(tc, unusable_listener_ends_the_server, TCPKIT_SERVE_FIBERS,
                        TCPKIT_SERVE_THREADS + 1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(fiber_suite());
}
