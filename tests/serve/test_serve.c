/* SPDX-License-Identifier: MIT */
/* tcpkit_serve: shutdown with idle clients, queueing at max_conns, signals,
 * bad arguments, EMFILE back-off, and no leaked descriptors or threads. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- threads ---- */

static int thread_baseline;

static void threads_setup(void)
{
    th_warm_up_threads();
    thread_baseline = th_stable_thread_count();
    ck_assert_int_gt(thread_baseline, 0);
}

static void threads_teardown(void)
{
    int now = th_wait_thread_count(thread_baseline);
    ck_assert_msg(now == thread_baseline, "thread leak: %d threads before the test, %d after",
                  thread_baseline, now);
}

static TCase *serve_tcase(const char *name, double timeout_s)
{
    TCase *tc = th_tcase(name, timeout_s);
    tcase_add_checked_fixture(tc, threads_setup, threads_teardown);
    return tc;
}

/* ---- a counter that tests can wait on ---- */

struct gauge {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;    /* handlers entered */
    int returned;   /* handlers left */
    int active;     /* started - returned */
    int max_active; /* highest active seen */
    int shutdowns;  /* receives that ended with TCPKIT_ESHUTDOWN */
    int other;      /* receives that ended with something unexpected */
    int limit;      /* handlers above this many at once are an error */
};

static void gauge_init(struct gauge *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &a);
    pthread_condattr_destroy(&a);
}

static void gauge_destroy(struct gauge *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void gauge_enter(struct gauge *g)
{
    pthread_mutex_lock(&g->mu);
    g->started++;
    g->active++;
    if (g->active > g->max_active)
        g->max_active = g->active;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gauge_leave(struct gauge *g, tcpkit_err last)
{
    pthread_mutex_lock(&g->mu);
    g->returned++;
    g->active--;
    if (last == TCPKIT_ESHUTDOWN)
        g->shutdowns++;
    else if (last != TCPKIT_OK && last != TCPKIT_EOF && last != TCPKIT_ERESET)
        g->other++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Waits until *field >= n; returns false after timeout_ms. */
static bool gauge_wait(struct gauge *g, const int *field, int n, int timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->mu);
    int r = 0;
    while (*field < n && r == 0)
        r = pthread_cond_timedwait(&g->cv, &g->mu, &end);
    bool ok = *field >= n;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

static int gauge_get(struct gauge *g, const int *field)
{
    pthread_mutex_lock(&g->mu);
    int v = *field;
    pthread_mutex_unlock(&g->mu);
    return v;
}

/* ---- a server on its own thread ---- */

struct server {
    tcpkit_listener *l;
    tcpkit_handler fn;
    void *arg;
    int max;
    pthread_t tid;
    tcpkit_err result;
    char port[16];
};

static void *serve_main(void *p)
{
    struct server *s = p;
    s->result = tcpkit_serve(s->l, s->fn, s->arg, s->max);
    return NULL;
}

static void server_start(struct server *s, tcpkit_handler fn, void *arg, int max)
{
    memset(s, 0, sizeof *s);
    s->l = th_listen_loopback("127.0.0.1");
    th_port_str(s->l, s->port, sizeof s->port);
    s->fn = fn;
    s->arg = arg;
    s->max = max;
    s->result = (tcpkit_err)-1;
    ck_assert_int_eq(pthread_create(&s->tid, NULL, serve_main, s), 0);
}

/* Shuts the listener down and asserts tcpkit_serve returns TCPKIT_OK within
 * limit_ms. Returns how long it took. */
static int64_t server_stop(struct server *s, int limit_ms)
{
    int64_t t0 = th_now_ms();
    tcpkit_listener_shutdown(s->l);
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += limit_ms / 1000 + 1;
    int r = pthread_timedjoin_np(s->tid, NULL, &end);
    int64_t took = th_now_ms() - t0;
    ck_assert_msg(r == 0, "tcpkit_serve did not return within %d ms of shutdown", limit_ms);
    ck_assert_msg(took <= limit_ms, "tcpkit_serve took %lld ms to return after shutdown",
                  (long long)took);
    ck_assert_msg(s->result == TCPKIT_OK, "tcpkit_serve: %s (%s)", tcpkit_strerror(s->result),
                  tcpkit_last_error());
    tcpkit_listener_close(s->l);
    s->l = NULL;
    return took;
}

static int port_num(const struct server *s)
{
    return atoi(s->port);
}

/* ---- handlers ---- */

/* Waits in one of the receive calls (chosen by the client's first byte)
 * until the connection ends or the listener is shut down. */
static void idle_handler(tcpkit_conn *c, void *arg)
{
    struct gauge *g = arg;
    gauge_enter(g);
    char kind;
    tcpkit_err err = tcpkit_recv_exact(c, &kind, 1, NULL);
    char buf[64];
    void *all = NULL;
    while (err == TCPKIT_OK) {
        switch (kind) {
        case 'l':
            err = tcpkit_recv_line(c, buf, sizeof buf, NULL);
            break;
        case 'x':
            err = tcpkit_recv_exact(c, buf, sizeof buf, NULL);
            break;
        case 'a':
            err = tcpkit_recv_all(c, &all, NULL, 1024);
            tcpkit_free(all);
            all = NULL;
            if (err == TCPKIT_OK)
                err = TCPKIT_EOF;
            break;
        default:
            err = tcpkit_recv(c, buf, sizeof buf, NULL);
            break;
        }
    }
    gauge_leave(g, err);
}

static void instant_handler(tcpkit_conn *c, void *arg)
{
    (void)c;
    struct gauge *g = arg;
    gauge_enter(g);
    gauge_leave(g, TCPKIT_OK);
}

/* Echoes one byte, then waits for the client to close. */
static void echo_once_handler(tcpkit_conn *c, void *arg)
{
    struct gauge *g = arg;
    gauge_enter(g);
    char b;
    tcpkit_err err = tcpkit_recv_exact(c, &b, 1, NULL);
    if (err == TCPKIT_OK)
        err = tcpkit_send_all(c, &b, 1, NULL);
    while (err == TCPKIT_OK)
        err = tcpkit_recv(c, &b, 1, NULL);
    gauge_leave(g, err);
}

/* ---- helpers for clients ---- */

/* True when fd has something to read (or EOF) within ms. */
static bool readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r > 0;
}

/* Reads one byte with a bound; returns it, or -1 on EOF/error/timeout. */
static int read_byte(int fd, int ms)
{
    if (!readable(fd, ms))
        return -1;
    unsigned char b;
    ssize_t n = recv(fd, &b, 1, 0);
    return n == 1 ? b : -1;
}

/* ---- tests ---- */

#define IDLE_CLIENTS 200

START_TEST(shutdown_wakes_200_idle_handlers)
{
    int scale = th_time_scale();
    struct gauge g;
    gauge_init(&g);
    struct server s;
    server_start(&s, idle_handler, &g, IDLE_CLIENTS + 16);

    static int fds[IDLE_CLIENTS];
    static const char kinds[] = "rlxa";
    for (int i = 0; i < IDLE_CLIENTS; i++) {
        fds[i] = th_raw_connect("127.0.0.1", port_num(&s));
        ck_assert_int_eq(th_raw_send_all(fds[i], &kinds[i % 4], 1), 1);
    }
    ck_assert_msg(gauge_wait(&g, &g.started, IDLE_CLIENTS, 20000 * scale),
                  "only %d of %d handlers started", gauge_get(&g, &g.started), IDLE_CLIENTS);
    ck_assert_int_eq(gauge_get(&g, &g.returned), 0);

    int64_t took = server_stop(&s, 3000 * scale);
    /* Every handler has returned by the time tcpkit_serve does. */
    ck_assert_int_eq(g.returned, IDLE_CLIENTS);
    ck_assert_int_eq(g.shutdowns, IDLE_CLIENTS);
    ck_assert_int_eq(g.other, 0);
    /* The connections were closed after the handlers: clients see EOF. */
    for (int i = 0; i < IDLE_CLIENTS; i++) {
        char b;
        ck_assert(readable(fds[i], 5000 * scale));
        ck_assert_int_eq(recv(fds[i], &b, 1, 0), 0);
        close(fds[i]);
    }
    fprintf(stderr, "shutdown with %d idle handlers took %lld ms\n", IDLE_CLIENTS, (long long)took);
    gauge_destroy(&g);
}
END_TEST

START_TEST(instant_handler_closes_and_reuses_threads)
{
    int scale = th_time_scale();
    struct gauge g;
    gauge_init(&g);
    struct server s;
    int base = th_stable_thread_count();
    /* max_conns 2: 30 sequential clients prove the workers are reused,
     * since never more than 2 (+ the server thread) may exist. */
    server_start(&s, instant_handler, &g, 2);
    for (int i = 0; i < 30; i++) {
        int fd = th_raw_connect("127.0.0.1", port_num(&s));
        char b;
        ck_assert_msg(readable(fd, 5000 * scale), "client %d: no EOF", i);
        ck_assert_int_eq(recv(fd, &b, 1, 0), 0);
        close(fd);
        int now = th_count_threads();
        ck_assert_msg(now <= base + 1 + 2, "%d threads with max_conns 2 (base %d)", now, base);
    }
    ck_assert(gauge_wait(&g, &g.returned, 30, 5000 * scale));
    server_stop(&s, 2000 * scale);
    ck_assert_int_eq(g.started, 30);
    gauge_destroy(&g);
}
END_TEST

#define QUEUED 10

START_TEST(max_conns_one_queues_clients)
{
    int scale = th_time_scale();
    struct gauge g;
    gauge_init(&g);
    struct server s;
    server_start(&s, echo_once_handler, &g, 1);

    /* All ten connect (the kernel completes the handshake from the
     * backlog: nobody is refused) and send their byte at once. */
    int fds[QUEUED];
    for (int i = 0; i < QUEUED; i++) {
        fds[i] = th_raw_connect("127.0.0.1", port_num(&s));
        char b = (char)('A' + i);
        ck_assert_int_eq(th_raw_send_all(fds[i], &b, 1), 1);
    }
    for (int i = 0; i < QUEUED; i++) {
        /* Client i is served (the accept queue is FIFO)... */
        ck_assert_int_eq(read_byte(fds[i], 5000 * scale), 'A' + i);
        /* ...and nobody behind it yet: its handler is still running. */
        for (int j = i + 1; j < QUEUED; j++)
            ck_assert_msg(!readable(fds[j], 0), "client %d served while %d still open", j, i);
        close(fds[i]);
    }
    ck_assert(gauge_wait(&g, &g.returned, QUEUED, 5000 * scale));
    server_stop(&s, 2000 * scale);
    ck_assert_int_eq(g.started, QUEUED);
    ck_assert_int_eq(g.max_active, 1);
    ck_assert_int_eq(g.other, 0);
    gauge_destroy(&g);
}
END_TEST

START_TEST(shutdown_with_full_pool_and_backlog)
{
    int scale = th_time_scale();
    struct gauge g;
    gauge_init(&g);
    struct server s;
    server_start(&s, idle_handler, &g, 2);
    int fds[5];
    for (int i = 0; i < 5; i++) {
        fds[i] = th_raw_connect("127.0.0.1", port_num(&s));
        ck_assert_int_eq(th_raw_send_all(fds[i], "r", 1), 1);
    }
    ck_assert(gauge_wait(&g, &g.started, 2, 5000 * scale));
    /* The acceptor waits for a free worker; shutdown must still end it. */
    server_stop(&s, 2000 * scale);
    ck_assert_int_eq(g.started, 2);
    ck_assert_int_eq(g.shutdowns, 2);
    /* Served clients see EOF; the listener is closed, so the three in the
     * backlog are reset. Either way every client sees its end. */
    for (int i = 0; i < 5; i++) {
        ck_assert(readable(fds[i], 5000 * scale));
        close(fds[i]);
    }
    gauge_destroy(&g);
}
END_TEST

/* ---- shutdown from a signal handler ---- */

static tcpkit_listener *sig_listener;
static atomic_int sig_tid;

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store(&sig_tid, (int)syscall(SYS_gettid));
    tcpkit_listener_shutdown(sig_listener);
}

struct sig_ctx {
    struct gauge g;
    atomic_int worker_tid;
    atomic_bool masked_ok; /* the worker's mask is as documented */
};

static void sig_handler_conn(tcpkit_conn *c, void *arg)
{
    struct sig_ctx *x = arg;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    bool ok = sigismember(&cur, SIGINT) == 1 && sigismember(&cur, SIGTERM) == 1 &&
              sigismember(&cur, SIGHUP) == 1 && sigismember(&cur, SIGCHLD) == 1 &&
              sigismember(&cur, SIGSEGV) == 0 && sigismember(&cur, SIGPIPE) == 0;
    atomic_store(&x->masked_ok, ok);
    atomic_store(&x->worker_tid, (int)syscall(SYS_gettid));
    idle_handler(c, &x->g);
}

/* Connects a client, waits for its handler, then sends the whole process
 * SIGINT. This thread blocks SIGINT, so the kernel must pick the thread in
 * tcpkit_serve: the workers block it too. */
static void sig_client(th_peer *p)
{
    struct sig_ctx *x = p->arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (th_raw_send_all(p->fd, "r", 1) != 1) {
        th_peer_fail(p, "send failed");
        return;
    }
    if (!gauge_wait(&x->g, &x->g.started, 1, 10000 * th_time_scale())) {
        th_peer_fail(p, "handler never started");
        tcpkit_listener_shutdown(sig_listener);
        return;
    }
    kill(getpid(), SIGINT);
}

START_TEST(shutdown_from_signal_handler)
{
    struct sig_ctx x;
    gauge_init(&x.g);
    atomic_init(&x.worker_tid, 0);
    atomic_init(&x.masked_ok, false);
    atomic_init(&sig_tid, 0);
    sig_listener = th_listen_loopback("127.0.0.1");

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGINT, &sa, &old), 0);
    sigset_t set, oldmask;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_UNBLOCK, &set, &oldmask);

    th_peer p;
    memset(&p, 0, sizeof p);
    p.arg = &x;
    p.fd = th_raw_connect("127.0.0.1", tcpkit_listener_port(sig_listener));
    th_peer_start(&p, sig_client);
    /* tcpkit_serve runs on the test thread, like a server's main(). */
    tcpkit_err err = tcpkit_serve(sig_listener, sig_handler_conn, &x, 8);
    th_peer_join(&p);

    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGINT, &old, NULL);
    ck_assert_msg(err == TCPKIT_OK, "serve: %s", tcpkit_strerror(err));
    ck_assert_int_eq(x.g.returned, 1);
    ck_assert_int_eq(x.g.shutdowns, 1);
    ck_assert_msg(atomic_load(&x.masked_ok), "worker signal mask not as documented");
    ck_assert_int_eq(atomic_load(&sig_tid), (int)syscall(SYS_gettid));
    ck_assert_int_ne(atomic_load(&sig_tid), atomic_load(&x.worker_tid));
    tcpkit_listener_close(sig_listener);
    sig_listener = NULL;
    gauge_destroy(&x.g);
}
END_TEST

/* ---- a handler that stops the server ---- */

static void stopping_handler(tcpkit_conn *c, void *arg)
{
    tcpkit_listener *l = arg;
    char line[32];
    if (tcpkit_recv_line(c, line, sizeof line, NULL) == TCPKIT_OK && strcmp(line, "quit\n") == 0)
        tcpkit_listener_shutdown(l);
    tcpkit_send_all(c, "bye\n", 4, NULL);
}

START_TEST(handler_can_shut_down)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    th_peer p;
    memset(&p, 0, sizeof p);
    p.fd = th_raw_connect("127.0.0.1", tcpkit_listener_port(l));
    ck_assert_int_eq(th_raw_send_all(p.fd, "quit\n", 5), 5);
    ck_assert_int_eq(tcpkit_serve(l, stopping_handler, l, 4), TCPKIT_OK);
    char buf[8] = {0};
    ck_assert_uint_eq(th_raw_recv_all(p.fd, buf, sizeof buf - 1), 4);
    ck_assert_str_eq(buf, "bye\n");
    close(p.fd);
    /* Serving a listener that is already shut down returns at once. */
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_serve(l, stopping_handler, l, 4), TCPKIT_OK);
    ck_assert_int_lt(th_now_ms() - t0, 1000 * th_time_scale());
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(two_servers_share_a_listener)
{
    int scale = th_time_scale();
    struct gauge g;
    gauge_init(&g);
    struct server a;
    server_start(&a, idle_handler, &g, 3);
    /* A second tcpkit_serve on the same listener, with its own pool. */
    struct server b = a;
    b.result = (tcpkit_err)-1;
    ck_assert_int_eq(pthread_create(&b.tid, NULL, serve_main, &b), 0);
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = th_raw_connect("127.0.0.1", port_num(&a));
        ck_assert_int_eq(th_raw_send_all(fds[i], "r", 1), 1);
    }
    /* 6 idle clients need both pools of 3. */
    ck_assert(gauge_wait(&g, &g.started, 6, 10000 * scale));
    tcpkit_listener_shutdown(a.l);
    ck_assert_int_eq(pthread_join(b.tid, NULL), 0);
    ck_assert_int_eq(b.result, TCPKIT_OK);
    server_stop(&a, 2000 * scale);
    ck_assert_int_eq(g.shutdowns, 6);
    for (int i = 0; i < 6; i++)
        close(fds[i]);
    gauge_destroy(&g);
}
END_TEST

/* ---- out of descriptors ---- */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

START_TEST(emfile_backs_off_then_recovers)
{
    /* Valgrind keeps its own descriptors above the limit and rejects
     * changes to it: nothing meaningful to test there. */
    if (th_under_valgrind())
        return;
    int scale = th_time_scale();
    struct gauge g;
    gauge_init(&g);
    struct server s;
    server_start(&s, echo_once_handler, &g, 4);
    /* One client served first, so a worker exists and the acceptor has
     * already reserved the next one: only accept can hit the limit. */
    int first = th_raw_connect("127.0.0.1", port_num(&s));
    ck_assert_int_eq(th_raw_send_all(first, "1", 1), 1);
    ck_assert_int_eq(read_byte(first, 5000 * scale), '1');

    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(client, 0);
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    /* Fill every free descriptor below a low limit. */
    low = old;
    low.rlim_cur = (rlim_t)client + 8;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fillers[64], nfill = 0;
    while (nfill < 64) {
        int fd = dup(client);
        if (fd < 0)
            break;
        fillers[nfill++] = fd;
    }
    ck_assert_int_eq(errno, EMFILE);

    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_num(&s))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(client, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(th_raw_send_all(client, "2", 1), 1);
    /* The server cannot accept: the client waits. Meanwhile the acceptor
     * must back off rather than spin (a spinning thread would burn about
     * as much CPU as the wall time). */
    double cpu0 = cpu_seconds();
    ck_assert(!readable(client, 400));
    double cpu = cpu_seconds() - cpu0;
    if (!th_under_asan())
        ck_assert_msg(cpu < 0.1, "acceptor burned %.3f s of CPU while out of descriptors", cpu);

    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* Back-off is at most 100 ms: the client is served soon after. */
    ck_assert_int_eq(read_byte(client, 5000 * scale), '2');
    close(client);
    close(first);
    ck_assert(gauge_wait(&g, &g.returned, 2, 5000 * scale));
    server_stop(&s, 2000 * scale);
    ck_assert_int_eq(g.started, 2);
    gauge_destroy(&g);
}
END_TEST

/* ---- the options of the listener reach the handler ---- */

static void timeout_handler(tcpkit_conn *c, void *arg)
{
    struct gauge *g = arg;
    gauge_enter(g);
    char b;
    tcpkit_err err = tcpkit_recv(c, &b, 1, NULL);
    /* Count a timeout as "other" only if it is NOT what happened. */
    gauge_leave(g, err == TCPKIT_ETIMEDOUT ? TCPKIT_OK : TCPKIT_ESYS);
}

START_TEST(handler_gets_listener_timeout)
{
    int scale = th_time_scale();
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_io_timeout(o, 50), TCPKIT_OK);
    struct gauge g;
    gauge_init(&g);
    struct server s;
    memset(&s, 0, sizeof s);
    s.l = th_listen_opts("127.0.0.1", o);
    tcpkit_opts_free(o);
    th_port_str(s.l, s.port, sizeof s.port);
    s.fn = timeout_handler;
    s.arg = &g;
    s.max = 2;
    ck_assert_int_eq(pthread_create(&s.tid, NULL, serve_main, &s), 0);
    int fd = th_raw_connect("127.0.0.1", port_num(&s));
    ck_assert(gauge_wait(&g, &g.returned, 1, 5000 * scale));
    ck_assert_int_eq(g.other, 0);
    server_stop(&s, 2000 * scale);
    close(fd);
    gauge_destroy(&g);
}
END_TEST

static Suite *serve_suite(void)
{
    Suite *s = suite_create("serve");
    TCase *tc = serve_tcase("shutdown", 60);
    tcase_add_test(tc, shutdown_wakes_200_idle_handlers);
    tcase_add_test(tc, shutdown_with_full_pool_and_backlog);
    tcase_add_test(tc, shutdown_from_signal_handler);
    tcase_add_test(tc, handler_can_shut_down);
    suite_add_tcase(s, tc);

    tc = serve_tcase("pool", 60);
    tcase_add_test(tc, instant_handler_closes_and_reuses_threads);
    tcase_add_test(tc, max_conns_one_queues_clients);
    tcase_add_test(tc, two_servers_share_a_listener);
    tcase_add_test(tc, handler_gets_listener_timeout);
    suite_add_tcase(s, tc);

    tc = serve_tcase("errors", 30);
    tcase_add_test(tc, emfile_backs_off_then_recovers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return th_run_suite(serve_suite());
}
