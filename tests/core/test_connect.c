/* SPDX-License-Identifier: MIT */
/* tcpkit_connect on loopback: refused, localhost, timeouts, literals,
 * family restriction, argument checks. Name lookups that could reach a DNS
 * server live in test_resolve.c (private network namespace). */
#include "helpers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A socket bound to ip but not listening: connections to its port are
 * refused, and nobody else can take the port while it is held. */
static int bound_not_listening(const char *ip, int *port)
{
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
        len = sizeof *a;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    len = sizeof ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                              : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* ---- refused ---- */

START_TEST(refused_fast_with_message)
{
    int port;
    int hold = bound_not_listening("127.0.0.1", &port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_conn *c = (tcpkit_conn *)&port; /* must be overwritten with NULL */
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", ps, NULL);
    int64_t el = th_now_ms() - t0;
    close(hold);
    ck_assert_msg(e == TCPKIT_EREFUSED, "got %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_null(c);
    /* Refusal on loopback is immediate: no fallback delay, no retry. */
    ck_assert_msg(el < 200 * th_time_scale(), "refused after %lld ms", (long long)el);
    ck_assert_int_eq(tcpkit_last_errno(), ECONNREFUSED);
    const char *m = tcpkit_last_error();
    char attempt[64];
    snprintf(attempt, sizeof attempt, "127.0.0.1 port %d", port);
    ck_assert_msg(strncmp(m, "connect ", 8) == 0, "message: %s", m);
    ck_assert_msg(strstr(m, attempt) != NULL, "attempt '%s' missing from: %s", attempt, m);
    ck_assert_msg(strstr(m, "refused") != NULL, "message: %s", m);
}
END_TEST

START_TEST(refused_localhost_lists_attempts)
{
    int port;
    int hold = bound_not_listening("127.0.0.1", &port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_conn *c = NULL;
    tcpkit_err e = tcpkit_connect(&c, "localhost", ps, NULL);
    close(hold);
    ck_assert_msg(e == TCPKIT_EREFUSED, "got %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_null(c);
    const char *m = tcpkit_last_error();
    char attempt[64];
    snprintf(attempt, sizeof attempt, "127.0.0.1 port %d: ", port);
    ck_assert_msg(strstr(m, "localhost") != NULL, "host missing from: %s", m);
    ck_assert_msg(strstr(m, attempt) != NULL, "attempt '%s' missing from: %s", attempt, m);
}
END_TEST

/* ---- localhost ---- */

START_TEST(localhost_reaches_ipv4_listener)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    th_connect_exchange(l, "localhost", NULL);
    tcpkit_listener_close(l);
}
END_TEST

/* ---- connect timeout against a full backlog ---- */

START_TEST(connect_timeout_full_backlog)
{
    int port;
    int lfd = th_raw_listen("127.0.0.1", 1, &port);
    int fds[32];
    int n = th_fill_backlog("127.0.0.1", port, fds, 32);

    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    const int timeout = 300;
    ck_assert_int_eq(tcpkit_opts_set_connect_timeout(o, timeout), TCPKIT_OK);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_conn *c = NULL;
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", ps, o);
    int64_t el = th_now_ms() - t0;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", tcpkit_last_error());

    /* Timeout 0: one attempt that does not wait. */
    ck_assert_int_eq(tcpkit_opts_set_connect_timeout(o, 0), TCPKIT_OK);
    tcpkit_conn *c0 = NULL;
    int64_t t1 = th_now_ms();
    tcpkit_err e0 = tcpkit_connect(&c0, "127.0.0.1", ps, o);
    int64_t el0 = th_now_ms() - t1;
    tcpkit_opts_free(o);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(lfd);

    ck_assert_msg(e == TCPKIT_ETIMEDOUT, "got %s (%s)", tcpkit_strerror(e), msg);
    ck_assert_ptr_null(c);
    ck_assert_msg(el >= timeout - 5, "gave up after %lld ms, timeout %d", (long long)el, timeout);
    ck_assert_msg(el < timeout + 1500 * th_time_scale(), "took %lld ms, timeout %d", (long long)el,
                  timeout);
    ck_assert_msg(strstr(msg, "127.0.0.1") != NULL, "attempt missing from: %s", msg);

    ck_assert_msg(e0 == TCPKIT_ETIMEDOUT, "timeout 0: got %s", tcpkit_strerror(e0));
    ck_assert_ptr_null(c0);
    ck_assert_msg(el0 < 200 * th_time_scale(), "timeout 0 took %lld ms", (long long)el0);
}
END_TEST

/* ---- literals, family restriction ---- */

START_TEST(literal_ipv4)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    th_connect_exchange(l, "127.0.0.1", NULL);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(literal_ipv6)
{
    if (!th_have_ipv6()) {
        th_skip("literal_ipv6: no IPv6 on this host");
        return;
    }
    tcpkit_listener *l = th_listen_loopback("::1");
    th_connect_exchange(l, "::1", NULL);
    /* Brackets are tolerated. */
    th_connect_exchange(l, "[::1]", NULL);
    char peer[TCPKIT_ADDRSTRLEN];
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_conn *c = NULL;
    ck_assert_int_eq(tcpkit_connect(&c, "::1", port, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_peer(c, peer, sizeof peer), TCPKIT_OK);
    char expect[64];
    snprintf(expect, sizeof expect, "[::1]:%s", port);
    ck_assert_str_eq(peer, expect);
    tcpkit_close(c);
    tcpkit_conn *s = NULL;
    ck_assert_int_eq(tcpkit_accept(l, &s, 5000), TCPKIT_OK);
    tcpkit_close(s);
    tcpkit_listener_close(l);
}
END_TEST

static tcpkit_opts *family_opts(tcpkit_family f)
{
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_family(o, f), TCPKIT_OK);
    return o;
}

START_TEST(family_restriction)
{
    tcpkit_opts *v4 = family_opts(TCPKIT_FAMILY_IPV4);
    tcpkit_opts *v6 = family_opts(TCPKIT_FAMILY_IPV6);
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(l, port, sizeof port);

    /* A literal of the excluded family is tested in test_resolve.c, inside
     * a private network namespace: a resolver may treat it as a name. */
    /* localhost restricted to IPv4 reaches the IPv4 listener. */
    th_connect_exchange(l, "localhost", v4);
    th_connect_exchange(l, "127.0.0.1", v4);
    tcpkit_listener_close(l);

    if (th_have_ipv6()) {
        tcpkit_listener *l6 = th_listen_loopback("::1");
        th_connect_exchange(l6, "::1", v6);
        tcpkit_listener_close(l6);
    }
    tcpkit_opts_free(v4);
    tcpkit_opts_free(v6);
}
END_TEST

/* ---- argument checks ---- */

START_TEST(bad_ports)
{
    const char *bad[] = {"0", "65536", "-1", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tcpkit_conn *c = (tcpkit_conn *)bad;
        tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", bad[i], NULL);
        ck_assert_msg(e == TCPKIT_EINVAL, "port \"%s\": %s (%s)", bad[i], tcpkit_strerror(e),
                      tcpkit_last_error());
        ck_assert_ptr_null(c);
        ck_assert_msg(tcpkit_last_error()[0] != '\0', "port \"%s\": no message", bad[i]);
    }
}
END_TEST

START_TEST(bad_hosts)
{
    tcpkit_conn *c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_connect(&c, NULL, "80", NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(c);
    c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_connect(&c, "", "80", NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(c);
    /* Longer than a DNS name can be (253): invalid, and never looked up. */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_connect(&c, longname, "80", NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(c);
    c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", NULL, NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(tcpkit_connect(NULL, "127.0.0.1", "80", NULL), TCPKIT_EINVAL);
}
END_TEST

START_TEST(conn_addresses)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    char cl[TCPKIT_ADDRSTRLEN], cp[TCPKIT_ADDRSTRLEN], sl[TCPKIT_ADDRSTRLEN], sp[TCPKIT_ADDRSTRLEN];
    ck_assert_int_eq(tcpkit_conn_local(c, cl, sizeof cl), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_peer(c, cp, sizeof cp), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_local(s, sl, sizeof sl), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_peer(s, sp, sizeof sp), TCPKIT_OK);
    ck_assert_str_eq(cl, sp);
    ck_assert_str_eq(cp, sl);
    ck_assert_msg(strncmp(cl, "127.0.0.1:", 10) == 0, "local %s", cl);
    ck_assert_msg(strncmp(cp, "127.0.0.1:", 10) == 0, "peer %s", cp);
    /* The descriptors are non-blocking and close-on-exec. */
    int fd = tcpkit_conn_fd(c);
    ck_assert_int_ge(fd, 0);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    fd = tcpkit_conn_fd(s);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core-connect");
    TCase *tc = th_tcase("refused", 10);
    tcase_add_test(tc, refused_fast_with_message);
    tcase_add_test(tc, refused_localhost_lists_attempts);
    suite_add_tcase(s, tc);

    tc = th_tcase("localhost", 10);
    tcase_add_test(tc, localhost_reaches_ipv4_listener);
    suite_add_tcase(s, tc);

    tc = th_tcase("timeout", 20);
    tcase_add_test(tc, connect_timeout_full_backlog);
    suite_add_tcase(s, tc);

    tc = th_tcase("literals", 10);
    tcase_add_test(tc, literal_ipv4);
    tcase_add_test(tc, literal_ipv6);
    tcase_add_test(tc, family_restriction);
    tcase_add_test(tc, conn_addresses);
    suite_add_tcase(s, tc);

    tc = th_tcase("arguments", 10);
    tcase_add_test(tc, bad_ports);
    tcase_add_test(tc, bad_hosts);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
