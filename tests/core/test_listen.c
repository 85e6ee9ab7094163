/* SPDX-License-Identifier: MIT */
/* tcpkit_listen, tcpkit_accept, tcpkit_listener_shutdown and the address
 * accessors. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A raw connect that reports failure instead of asserting. */
static int try_raw_connect(int family, int port, int *err)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_storage ss;
    socklen_t len = th_loopback_sockaddr(family, port, &ss);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    *err = 0;
    return fd;
}

/* The local port of a raw socket. */
static int raw_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* ---- listen ---- */

START_TEST(ephemeral_port_and_accessors)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    int port = tcpkit_listener_port(l);
    ck_assert(port > 0 && port <= 65535);
    char addr[TCPKIT_ADDRSTRLEN], expect[64];
    ck_assert_int_eq(tcpkit_listener_addr(l, addr, sizeof addr), TCPKIT_OK);
    snprintf(expect, sizeof expect, "127.0.0.1:%d", port);
    ck_assert_str_eq(addr, expect);

    int fd = tcpkit_listener_fd(l);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(sockopt_int(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    ck_assert_int_ne(sockopt_int(fd, SOL_SOCKET, SO_REUSEADDR), 0);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    ck_assert_int_eq(ntohs(a.sin_port), port);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(ipv6_loopback_accessors)
{
    if (!th_have_ipv6()) {
        th_skip("ipv6_loopback_accessors: no IPv6");
        return;
    }
    tcpkit_listener *l = th_listen_loopback("::1");
    char addr[TCPKIT_ADDRSTRLEN], expect[64];
    ck_assert_int_eq(tcpkit_listener_addr(l, addr, sizeof addr), TCPKIT_OK);
    snprintf(expect, sizeof expect, "[::1]:%d", tcpkit_listener_port(l));
    ck_assert_str_eq(addr, expect);
    tcpkit_listener_close(l);
}
END_TEST

/* NULL or "" = every interface: dual-stack "::" here (the host has IPv6). */
START_TEST(all_interfaces_dual_stack)
{
    const char *hosts[] = {NULL, "", "::"};
    for (int i = 0; i < 3; i++) {
        tcpkit_listener *l = th_listen_loopback(hosts[i]);
        int port = tcpkit_listener_port(l);
        char addr[TCPKIT_ADDRSTRLEN], expect[64];
        ck_assert_int_eq(tcpkit_listener_addr(l, addr, sizeof addr), TCPKIT_OK);
        if (th_have_ipv6())
            snprintf(expect, sizeof expect, "[::]:%d", port);
        else
            snprintf(expect, sizeof expect, "0.0.0.0:%d", port);
        if (hosts[i] == NULL || hosts[i][0] == '\0' || th_have_ipv6())
            ck_assert_str_eq(addr, expect);

        /* An IPv4 client is accepted and shown as plain IPv4. */
        int err;
        int cfd = try_raw_connect(AF_INET, port, &err);
        ck_assert_msg(cfd >= 0, "IPv4 connect to %s: %s", addr, strerror(err));
        tcpkit_conn *s = NULL;
        ck_assert_int_eq(tcpkit_accept(l, &s, th_bound_ms(5000)), TCPKIT_OK);
        char peer[TCPKIT_ADDRSTRLEN], local[TCPKIT_ADDRSTRLEN];
        ck_assert_int_eq(tcpkit_conn_peer(s, peer, sizeof peer), TCPKIT_OK);
        ck_assert_int_eq(tcpkit_conn_local(s, local, sizeof local), TCPKIT_OK);
        snprintf(expect, sizeof expect, "127.0.0.1:%d", raw_local_port(cfd));
        ck_assert_str_eq(peer, expect);
        snprintf(expect, sizeof expect, "127.0.0.1:%d", port);
        ck_assert_str_eq(local, expect);
        tcpkit_close(s);
        close(cfd);

        if (th_have_ipv6()) {
            cfd = try_raw_connect(AF_INET6, port, &err);
            ck_assert_msg(cfd >= 0, "IPv6 connect: %s", strerror(err));
            ck_assert_int_eq(tcpkit_accept(l, &s, th_bound_ms(5000)), TCPKIT_OK);
            ck_assert_int_eq(tcpkit_conn_peer(s, peer, sizeof peer), TCPKIT_OK);
            snprintf(expect, sizeof expect, "[::1]:%d", raw_local_port(cfd));
            ck_assert_str_eq(peer, expect);
            tcpkit_close(s);
            close(cfd);
        }
        tcpkit_listener_close(l);
    }
}
END_TEST

START_TEST(v6only_refuses_ipv4)
{
    if (!th_have_ipv6()) {
        th_skip("v6only_refuses_ipv4: no IPv6");
        return;
    }
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_v6only(o, true), TCPKIT_OK);
    tcpkit_listener *l = th_listen_opts("::", o);
    tcpkit_opts_free(o);
    ck_assert_int_ne(sockopt_int(tcpkit_listener_fd(l), IPPROTO_IPV6, IPV6_V6ONLY), 0);
    int port = tcpkit_listener_port(l);
    int err;
    int cfd = try_raw_connect(AF_INET, port, &err);
    if (cfd >= 0)
        close(cfd);
    ck_assert_msg(cfd < 0 && err == ECONNREFUSED, "IPv4 client reached a v6only listener");
    cfd = try_raw_connect(AF_INET6, port, &err);
    ck_assert_msg(cfd >= 0, "IPv6 connect: %s", strerror(err));
    tcpkit_conn *s = NULL;
    ck_assert_int_eq(tcpkit_accept(l, &s, th_bound_ms(5000)), TCPKIT_OK);
    tcpkit_close(s);
    close(cfd);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(addr_in_use_and_reuseport)
{
    tcpkit_listener *l1 = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(l1, port, sizeof port);
    tcpkit_listener *l2 = (tcpkit_listener *)&l2;
    tcpkit_err e = tcpkit_listen(&l2, "127.0.0.1", port, NULL);
    ck_assert_msg(e == TCPKIT_EADDRINUSE, "second listener: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_ptr_null(l2);
    ck_assert_int_eq(tcpkit_last_errno(), EADDRINUSE);
    tcpkit_listener_close(l1);

    /* With reuseport on both, two listeners share the port. */
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_reuseport(o, true), TCPKIT_OK);
    l1 = th_listen_opts("127.0.0.1", o);
    th_port_str(l1, port, sizeof port);
    e = tcpkit_listen(&l2, "127.0.0.1", port, o);
    ck_assert_msg(e == TCPKIT_OK, "second reuseport listener: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_int_eq(tcpkit_listener_port(l2), tcpkit_listener_port(l1));
    ck_assert_int_ne(sockopt_int(tcpkit_listener_fd(l2), SOL_SOCKET, SO_REUSEPORT), 0);
    tcpkit_opts_free(o);
    tcpkit_listener_close(l1);
    tcpkit_listener_close(l2);
}
END_TEST

START_TEST(listen_bad_ports)
{
    const char *bad[] = {"65536", "-1", "100000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tcpkit_listener *l = (tcpkit_listener *)&l;
        tcpkit_err e = tcpkit_listen(&l, "127.0.0.1", bad[i], NULL);
        ck_assert_msg(e == TCPKIT_EINVAL, "port %s: %s", bad[i], tcpkit_strerror(e));
        ck_assert_ptr_null(l);
    }
}
END_TEST

/* ---- address accessors with a small buffer ---- */

/* Calls fn with every cap from 0 to the exact size: too small gives EINVAL
 * and leaves every byte from cap on untouched (and "" at buf[0] when the
 * cap is not 0); exactly enough gives the full string. */
typedef tcpkit_err (*addr_fn)(const void *h, char *buf, size_t cap);

static tcpkit_err listener_addr_fn(const void *h, char *buf, size_t cap)
{
    return tcpkit_listener_addr(h, buf, cap);
}

static tcpkit_err conn_peer_fn(const void *h, char *buf, size_t cap)
{
    return tcpkit_conn_peer(h, buf, cap);
}

static tcpkit_err conn_local_fn(const void *h, char *buf, size_t cap)
{
    return tcpkit_conn_local(h, buf, cap);
}

static void check_small_caps(const char *name, addr_fn fn, const void *h)
{
    char full[TCPKIT_ADDRSTRLEN];
    ck_assert_int_eq(fn(h, full, sizeof full), TCPKIT_OK);
    size_t need = strlen(full) + 1;
    for (size_t cap = 0; cap < need; cap++) {
        char buf[TCPKIT_ADDRSTRLEN + 8];
        memset(buf, 'X', sizeof buf);
        tcpkit_err e = fn(h, buf, cap);
        ck_assert_msg(e == TCPKIT_EINVAL, "%s cap %zu: %s", name, cap, tcpkit_strerror(e));
        for (size_t i = cap; i < sizeof buf; i++)
            ck_assert_msg(buf[i] == 'X', "%s cap %zu: byte %zu written", name, cap, i);
        if (cap > 0)
            ck_assert_msg(buf[0] == '\0', "%s cap %zu: buf not emptied", name, cap);
    }
    char buf[TCPKIT_ADDRSTRLEN + 8];
    memset(buf, 'X', sizeof buf);
    ck_assert_int_eq(fn(h, buf, need), TCPKIT_OK);
    ck_assert_str_eq(buf, full);
    for (size_t i = need; i < sizeof buf; i++)
        ck_assert_msg(buf[i] == 'X', "%s exact cap: byte %zu written", name, i);
}

START_TEST(accessors_small_cap)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    check_small_caps("listener_addr", listener_addr_fn, l);
    tcpkit_listener_close(l);
    if (th_have_ipv6()) {
        l = th_listen_loopback("::1");
        check_small_caps("listener_addr v6", listener_addr_fn, l);
        tcpkit_listener_close(l);
    }
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    check_small_caps("conn_peer", conn_peer_fn, c);
    check_small_caps("conn_local", conn_local_fn, c);
    check_small_caps("conn_peer server", conn_peer_fn, s);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

/* ---- accept ---- */

START_TEST(accept_timeout_zero)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    tcpkit_conn *s = (tcpkit_conn *)&s;
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_accept(l, &s, 0), TCPKIT_ETIMEDOUT);
    ck_assert_msg(th_now_ms() - t0 < th_bound_ms(100), "timeout 0 waited");
    ck_assert_ptr_null(s);

    /* A client already waiting is taken with timeout 0. */
    int err;
    int cfd = try_raw_connect(AF_INET, tcpkit_listener_port(l), &err);
    ck_assert_int_ge(cfd, 0);
    ck_assert_int_eq(tcpkit_accept(l, &s, 0), TCPKIT_OK);
    ck_assert_ptr_nonnull(s);
    tcpkit_close(s);
    close(cfd);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(accept_timeout_bound)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    tcpkit_conn *s = (tcpkit_conn *)&s;
    const int timeout = 200;
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_accept(l, &s, timeout), TCPKIT_ETIMEDOUT);
    int64_t el = th_now_ms() - t0;
    ck_assert_ptr_null(s);
    ck_assert_msg(el >= timeout - 5, "returned after %lld ms", (long long)el);
    ck_assert_msg(el < timeout + th_bound_ms(1000), "took %lld ms", (long long)el);
    tcpkit_listener_close(l);
}
END_TEST

/* A thread blocked in tcpkit_accept; reports its result. */
struct acceptor {
    tcpkit_listener *l;
    int timeout;
    pid_t tid;
    tcpkit_err result;
    int ready; /* pipe write end: one byte once tid is known */
};

static void acceptor_fn(th_peer *p)
{
    struct acceptor *a = p->arg;
    a->tid = th_gettid();
    if (write(a->ready, "r", 1) != 1)
        th_peer_fail(p, "write: %s", strerror(errno));
    tcpkit_conn *c = (tcpkit_conn *)a;
    a->result = tcpkit_accept(a->l, &c, a->timeout);
    if (c != NULL)
        th_peer_fail(p, "accept left a connection: %s", tcpkit_strerror(a->result));
    tcpkit_close(c);
}

static void start_acceptor(th_peer *p, struct acceptor *a, tcpkit_listener *l, int pipefd[2])
{
    memset(a, 0, sizeof *a);
    a->l = l;
    a->timeout = -1;
    a->ready = pipefd[1];
    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->arg = a;
    th_peer_start(p, acceptor_fn);
    char b;
    ck_assert_int_eq(read(pipefd[0], &b, 1), 1);
    /* Give it the chance to block inside the library, so the test covers
     * the wake-up path; the contract holds either way. */
    th_wait_thread_sleeping(a->tid, th_bound_ms(2000));
}

START_TEST(shutdown_wakes_blocked_accepts)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    th_peer p[2];
    struct acceptor a[2];
    for (int i = 0; i < 2; i++)
        start_acceptor(&p[i], &a[i], l, pfd);
    int64_t t0 = th_now_ms();
    tcpkit_listener_shutdown(l);
    for (int i = 0; i < 2; i++)
        th_peer_join(&p[i]);
    int64_t el = th_now_ms() - t0;
    for (int i = 0; i < 2; i++)
        ck_assert_msg(a[i].result == TCPKIT_ESHUTDOWN, "acceptor %d: %s", i,
                      tcpkit_strerror(a[i].result));
    ck_assert_msg(el < th_bound_ms(1000), "wake-up took %lld ms", (long long)el);

    /* Later accepts fail at once, even with a client waiting; shutdown
     * again is harmless. */
    int err;
    int cfd = try_raw_connect(AF_INET, tcpkit_listener_port(l), &err);
    tcpkit_listener_shutdown(l);
    tcpkit_conn *s = (tcpkit_conn *)&s;
    ck_assert_int_eq(tcpkit_accept(l, &s, -1), TCPKIT_ESHUTDOWN);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(tcpkit_accept(l, &s, 0), TCPKIT_ESHUTDOWN);
    ck_assert_ptr_null(s);
    if (cfd >= 0)
        close(cfd);
    close(pfd[0]);
    close(pfd[1]);
    tcpkit_listener_close(l);
}
END_TEST

/* ---- signals ---- */

static tcpkit_listener *sig_listener;
static volatile sig_atomic_t sig_count;

static void on_sigusr1(int sig)
{
    (void)sig;
    sig_count++;
    if (sig_listener != NULL)
        tcpkit_listener_shutdown(sig_listener);
}

static void install_sigusr1(struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the wait sees EINTR */
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, old), 0);
}

/* A thread that waits until the target thread sleeps, then signals it. */
struct signaller {
    pthread_t target;
    pid_t target_tid;
    int count;
};

static void signaller_fn(th_peer *p)
{
    struct signaller *s = p->arg;
    for (int i = 0; i < s->count; i++) {
        th_wait_thread_sleeping(s->target_tid, 2000 * th_time_scale());
        int r = pthread_kill(s->target, SIGUSR1);
        if (r != 0) {
            th_peer_fail(p, "pthread_kill: %s", strerror(r));
            return;
        }
        /* Let the target get back into its wait before the next one. */
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

START_TEST(shutdown_from_signal_handler)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    sig_listener = l;
    sig_count = 0;
    struct sigaction old;
    install_sigusr1(&old);
    struct signaller sg = {.target = pthread_self(), .target_tid = th_gettid(), .count = 1};
    th_peer p = {.fd = -1, .arg = &sg};
    th_peer_start(&p, signaller_fn);
    tcpkit_conn *s = (tcpkit_conn *)&s;
    tcpkit_err e = tcpkit_accept(l, &s, th_bound_ms(10000));
    th_peer_join(&p);
    sig_listener = NULL;
    ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
    ck_assert_int_eq(sig_count, 1);
    ck_assert_msg(e == TCPKIT_ESHUTDOWN, "accept: %s", tcpkit_strerror(e));
    ck_assert_ptr_null(s);
    tcpkit_listener_close(l);
}
END_TEST

/* Signals that do nothing interrupt the wait with EINTR; the accept keeps
 * waiting for the rest of its timeout, no more and no less. */
START_TEST(accept_eintr_retried_within_timeout)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    sig_listener = NULL;
    sig_count = 0;
    struct sigaction old;
    install_sigusr1(&old);
    struct signaller sg = {.target = pthread_self(), .target_tid = th_gettid(), .count = 3};
    th_peer p = {.fd = -1, .arg = &sg};
    const int timeout = 400;
    th_peer_start(&p, signaller_fn);
    tcpkit_conn *s = (tcpkit_conn *)&s;
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_accept(l, &s, timeout);
    int64_t el = th_now_ms() - t0;
    th_peer_join(&p);
    ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
    ck_assert_msg(e == TCPKIT_ETIMEDOUT, "accept: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_ptr_null(s);
    ck_assert_int_ge(sig_count, 1);
    ck_assert_msg(el >= timeout - 5, "returned after %lld ms", (long long)el);
    ck_assert_msg(el < timeout + th_bound_ms(1000), "took %lld ms", (long long)el);
    tcpkit_listener_close(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core-listen");
    TCase *tc = th_tcase("listen", 10);
    tcase_add_test(tc, ephemeral_port_and_accessors);
    tcase_add_test(tc, ipv6_loopback_accessors);
    tcase_add_test(tc, all_interfaces_dual_stack);
    tcase_add_test(tc, v6only_refuses_ipv4);
    tcase_add_test(tc, addr_in_use_and_reuseport);
    tcase_add_test(tc, listen_bad_ports);
    tcase_add_test(tc, accessors_small_cap);
    suite_add_tcase(s, tc);

    tc = th_tcase("accept", 20);
    tcase_add_test(tc, accept_timeout_zero);
    tcase_add_test(tc, accept_timeout_bound);
    tcase_add_test(tc, shutdown_wakes_blocked_accepts);
    tcase_add_test(tc, shutdown_from_signal_handler);
    tcase_add_test(tc, accept_eintr_retried_within_timeout);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
