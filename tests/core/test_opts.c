/* SPDX-License-Identifier: MIT */
/* Options: every setter's accepted and rejected values, and each option's
 * effect on the sockets of connect and accept. (NULL objects and
 * out-of-range values are rows of the misuse table too: test_misuse.c.) */
#include "helpers.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- setters ---- */

static tcpkit_opts *new_opts(void)
{
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_ptr_nonnull(o);
    return o;
}

typedef tcpkit_err (*int_setter)(tcpkit_opts *, int);

/* Every value of good[] is accepted, every value of bad[] is EINVAL, and a
 * NULL object is EINVAL. */
static void check_int_setter(const char *name, int_setter set, const int *good, size_t ngood,
                             const int *bad, size_t nbad)
{
    tcpkit_opts *o = new_opts();
    for (size_t i = 0; i < ngood; i++)
        ck_assert_msg(set(o, good[i]) == TCPKIT_OK, "%s(%d) rejected", name, good[i]);
    for (size_t i = 0; i < nbad; i++) {
        ck_assert_msg(set(o, bad[i]) == TCPKIT_EINVAL, "%s(%d) accepted", name, bad[i]);
        ck_assert_msg(tcpkit_last_error()[0] != '\0', "%s(%d): no message", name, bad[i]);
    }
    ck_assert_msg(set(NULL, good[0]) == TCPKIT_EINVAL, "%s(NULL) accepted", name);
    tcpkit_opts_free(o);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(setter_timeouts)
{
    /* Timeouts >= -1. */
    const int good[] = {-1, 0, 1, 1000, INT_MAX};
    const int bad[] = {-2, -1000, INT_MIN};
    check_int_setter("connect_timeout", tcpkit_opts_set_connect_timeout, good, N(good), bad,
                     N(bad));
    check_int_setter("io_timeout", tcpkit_opts_set_io_timeout, good, N(good), bad, N(bad));
}
END_TEST

START_TEST(setter_backlog)
{
    const int good[] = {1, 2, SOMAXCONN, INT_MAX};
    const int bad[] = {0, -1, INT_MIN};
    check_int_setter("backlog", tcpkit_opts_set_backlog, good, N(good), bad, N(bad));
}
END_TEST

START_TEST(setter_fallback_delay)
{
    const int good[] = {0, 1, 250, 59999, 60000};
    const int bad[] = {-1, 60001, INT_MAX, INT_MIN};
    check_int_setter("fallback_delay", tcpkit_opts_set_fallback_delay, good, N(good), bad, N(bad));
}
END_TEST

START_TEST(setter_keepalive)
{
    const int good[] = {0, 1, 32767, 32768, INT_MAX};
    const int bad[] = {-1, INT_MIN};
    check_int_setter("keepalive", tcpkit_opts_set_keepalive, good, N(good), bad, N(bad));
}
END_TEST

START_TEST(setter_family)
{
    tcpkit_opts *o = new_opts();
    ck_assert_int_eq(tcpkit_opts_set_family(o, TCPKIT_FAMILY_ANY), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_family(o, TCPKIT_FAMILY_IPV4), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_family(o, TCPKIT_FAMILY_IPV6), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_family(o, (tcpkit_family)3), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_family(o, (tcpkit_family)-1), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_family(NULL, TCPKIT_FAMILY_ANY), TCPKIT_EINVAL);
    tcpkit_opts_free(o);
}
END_TEST

START_TEST(setter_bools)
{
    tcpkit_err (*const set[])(tcpkit_opts *, bool) = {
        tcpkit_opts_set_nodelay, tcpkit_opts_set_reuseport, tcpkit_opts_set_v6only};
    tcpkit_opts *o = new_opts();
    for (size_t i = 0; i < N(set); i++) {
        ck_assert_int_eq(set[i](o, true), TCPKIT_OK);
        ck_assert_int_eq(set[i](o, false), TCPKIT_OK);
        ck_assert_int_eq(set[i](NULL, true), TCPKIT_EINVAL);
    }
    tcpkit_opts_free(o);
    tcpkit_opts_free(NULL);
}
END_TEST

START_TEST(opts_new_null)
{
    ck_assert_int_eq(tcpkit_opts_new(NULL), TCPKIT_EINVAL);
}
END_TEST

/* ---- option effects ---- */

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* Connects with copts to a listener made with lopts; returns both ends. */
static void pair_with(const tcpkit_opts *lopts, const tcpkit_opts *copts, tcpkit_conn **c,
                      tcpkit_conn **s)
{
    tcpkit_listener *l = th_listen_opts("127.0.0.1", lopts);
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_err e = tcpkit_connect(c, "127.0.0.1", port, copts);
    ck_assert_msg(e == TCPKIT_OK, "connect: %s", tcpkit_last_error());
    e = tcpkit_accept(l, s, 10000);
    ck_assert_msg(e == TCPKIT_OK, "accept: %s", tcpkit_last_error());
    tcpkit_listener_close(l);
}

START_TEST(default_nodelay_on)
{
    tcpkit_conn *c, *s;
    pair_with(NULL, NULL, &c, &s);
    ck_assert_int_ne(sockopt_int(tcpkit_conn_fd(c), IPPROTO_TCP, TCP_NODELAY), 0);
    ck_assert_int_ne(sockopt_int(tcpkit_conn_fd(s), IPPROTO_TCP, TCP_NODELAY), 0);
    ck_assert_int_eq(sockopt_int(tcpkit_conn_fd(c), SOL_SOCKET, SO_KEEPALIVE), 0);
    ck_assert_int_eq(sockopt_int(tcpkit_conn_fd(s), SOL_SOCKET, SO_KEEPALIVE), 0);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

START_TEST(nodelay_off_keepalive_on)
{
    tcpkit_opts *o = new_opts();
    ck_assert_int_eq(tcpkit_opts_set_nodelay(o, false), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_keepalive(o, 77), TCPKIT_OK);
    tcpkit_conn *c, *s;
    pair_with(o, o, &c, &s);
    tcpkit_opts_free(o);
    tcpkit_conn *both[] = {c, s};
    for (int i = 0; i < 2; i++) {
        int fd = tcpkit_conn_fd(both[i]);
        ck_assert_int_eq(sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);
        ck_assert_int_ne(sockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
        ck_assert_int_eq(sockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 77);
    }
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

START_TEST(keepalive_clamped)
{
    tcpkit_opts *o = new_opts();
    ck_assert_int_eq(tcpkit_opts_set_keepalive(o, 1000000), TCPKIT_OK);
    tcpkit_conn *c, *s;
    pair_with(NULL, o, &c, &s);
    tcpkit_opts_free(o);
    ck_assert_int_ne(sockopt_int(tcpkit_conn_fd(c), SOL_SOCKET, SO_KEEPALIVE), 0);
    ck_assert_int_eq(sockopt_int(tcpkit_conn_fd(c), IPPROTO_TCP, TCP_KEEPIDLE), 32767);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

/* Expects a receive on c to time out after about ms milliseconds. */
static void expect_recv_timeout(tcpkit_conn *c, int ms)
{
    char b[4];
    size_t got = 99;
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_recv(c, b, sizeof b, &got), TCPKIT_ETIMEDOUT);
    int64_t el = th_now_ms() - t0;
    ck_assert_uint_eq(got, 0);
    ck_assert_msg(el >= ms - 5, "timed out after %lld ms, timeout %d", (long long)el, ms);
    ck_assert_msg(el < ms + 2000 * th_time_scale(), "took %lld ms, timeout %d", (long long)el, ms);
}

START_TEST(io_timeout_applies)
{
    tcpkit_opts *lo = new_opts();
    tcpkit_opts *co = new_opts();
    ck_assert_int_eq(tcpkit_opts_set_io_timeout(lo, 150), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_io_timeout(co, 100), TCPKIT_OK);
    tcpkit_conn *c, *s;
    pair_with(lo, co, &c, &s);
    /* The options may be freed right after the calls that used them. */
    tcpkit_opts_free(lo);
    tcpkit_opts_free(co);
    expect_recv_timeout(c, 100);
    expect_recv_timeout(s, 150);
    /* tcpkit_conn_set_timeout overrides it. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 50), TCPKIT_OK);
    expect_recv_timeout(c, 50);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core-opts");
    TCase *tc = th_tcase("setters", 10);
    tcase_add_test(tc, opts_new_null);
    tcase_add_test(tc, setter_timeouts);
    tcase_add_test(tc, setter_backlog);
    tcase_add_test(tc, setter_fallback_delay);
    tcase_add_test(tc, setter_keepalive);
    tcase_add_test(tc, setter_family);
    tcase_add_test(tc, setter_bools);
    suite_add_tcase(s, tc);

    tc = th_tcase("effects", 20);
    tcase_add_test(tc, default_nodelay_on);
    tcase_add_test(tc, nodelay_off_keepalive_on);
    tcase_add_test(tc, keepalive_clamped);
    tcase_add_test(tc, io_timeout_applies);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
