/* SPDX-License-Identifier: MIT */
/* Errors, the thread-local error record, options and their effects, version. */
#include "helpers.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- error codes ---- */

START_TEST(enum_values_fixed)
{
    /* The values are ABI: a renumbering must fail here. */
    ck_assert_int_eq(TCPKIT_OK, 0);
    ck_assert_int_eq(TCPKIT_EOF, 1);
    ck_assert_int_eq(TCPKIT_EINVAL, 2);
    ck_assert_int_eq(TCPKIT_ENOMEM, 3);
    ck_assert_int_eq(TCPKIT_ERESOLVE, 4);
    ck_assert_int_eq(TCPKIT_EREFUSED, 5);
    ck_assert_int_eq(TCPKIT_EUNREACH, 6);
    ck_assert_int_eq(TCPKIT_ETIMEDOUT, 7);
    ck_assert_int_eq(TCPKIT_ERESET, 8);
    ck_assert_int_eq(TCPKIT_EADDRINUSE, 9);
    ck_assert_int_eq(TCPKIT_EACCES, 10);
    ck_assert_int_eq(TCPKIT_ETOOBIG, 11);
    ck_assert_int_eq(TCPKIT_EMFILE, 12);
    ck_assert_int_eq(TCPKIT_ESHUTDOWN, 13);
    ck_assert_int_eq(TCPKIT_ESYS, 14);
    ck_assert_int_eq(TCPKIT_FAMILY_ANY, 0);
    ck_assert_int_eq(TCPKIT_ADDRSTRLEN, 64);
}
END_TEST

START_TEST(strerror_every_value)
{
    const char *unknown = tcpkit_strerror((tcpkit_err)15);
    ck_assert_ptr_nonnull(unknown);
    ck_assert_str_eq(unknown, "unknown error");
    for (int i = 0; i <= TCPKIT_ESYS; i++) {
        const char *s = tcpkit_strerror((tcpkit_err)i);
        ck_assert_msg(s != NULL && s[0] != '\0', "strerror(%d) empty", i);
        ck_assert_msg(strcmp(s, unknown) != 0, "strerror(%d) is the generic text", i);
        /* Each value has its own text. */
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(s, tcpkit_strerror((tcpkit_err)j)) != 0,
                          "strerror(%d) == strerror(%d): \"%s\"", i, j, s);
        /* Static: the same pointer every time. */
        ck_assert_ptr_eq(s, tcpkit_strerror((tcpkit_err)i));
    }
    ck_assert_str_eq(tcpkit_strerror(TCPKIT_EREFUSED), "connection refused");
}
END_TEST

START_TEST(strerror_unknown_values)
{
    const int bad[] = {-1, 15, 16, 100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *s = tcpkit_strerror((tcpkit_err)bad[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s, "unknown error");
    }
}
END_TEST

/* ---- the thread-local record ---- */

struct fresh_thread {
    char msg_before[256];
    int errno_before;
    int msg_was_null;
    tcpkit_err refused;
    char msg_after[512];
    int errno_after;
};

/* A port with a socket bound but not listening: connecting is refused, and
 * the bound socket keeps anybody else from taking the port meanwhile. */
static int bound_not_listening(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int refused_port;

static void fresh_thread_fn(th_peer *p)
{
    struct fresh_thread *r = p->arg;
    const char *m = tcpkit_last_error();
    r->msg_was_null = m == NULL;
    snprintf(r->msg_before, sizeof r->msg_before, "%s", m ? m : "");
    r->errno_before = tcpkit_last_errno();
    char port[16];
    snprintf(port, sizeof port, "%d", refused_port);
    tcpkit_conn *c = NULL;
    r->refused = tcpkit_connect(&c, "127.0.0.1", port, NULL);
    tcpkit_close(c);
    snprintf(r->msg_after, sizeof r->msg_after, "%s", tcpkit_last_error());
    r->errno_after = tcpkit_last_errno();
}

START_TEST(last_error_thread_local)
{
    int hold = bound_not_listening(&refused_port);

    /* A failure in this thread... */
    ck_assert_int_eq(tcpkit_opts_set_backlog(NULL, 1), TCPKIT_EINVAL);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", tcpkit_last_error());
    ck_assert_msg(mine[0] != '\0', "no message after EINVAL");
    ck_assert_int_eq(tcpkit_last_errno(), 0);

    /* ...is invisible to a new thread, whose record starts empty, and that
     * thread's failure does not touch ours. */
    struct fresh_thread r;
    memset(&r, 0, sizeof r);
    th_peer p = {.fd = -1, .arg = &r};
    th_peer_start(&p, fresh_thread_fn);
    th_peer_join(&p);
    close(hold);

    ck_assert_int_eq(r.msg_was_null, 0);
    ck_assert_str_eq(r.msg_before, "");
    ck_assert_int_eq(r.errno_before, 0);
    ck_assert_int_eq(r.refused, TCPKIT_EREFUSED);
    ck_assert_msg(strstr(r.msg_after, "refused") != NULL, "message: %s", r.msg_after);
    ck_assert_int_eq(r.errno_after, ECONNREFUSED);

    ck_assert_str_eq(tcpkit_last_error(), mine);
    ck_assert_int_eq(tcpkit_last_errno(), 0);
}
END_TEST

START_TEST(last_error_kept_by_success)
{
    ck_assert_int_eq(tcpkit_opts_set_fallback_delay(NULL, 1), TCPKIT_EINVAL);
    char before[512];
    snprintf(before, sizeof before, "%s", tcpkit_last_error());
    ck_assert(before[0] != '\0');
    /* Successful calls leave the record alone, as errno does. */
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_backlog(o, 5), TCPKIT_OK);
    ck_assert_str_eq(tcpkit_last_error(), before);
    tcpkit_opts_free(o);
}
END_TEST

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

/* ---- version ---- */

START_TEST(version_matches_header)
{
    const char *v = tcpkit_version();
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, TCPKIT_VERSION_STRING);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", TCPKIT_VERSION_MAJOR, TCPKIT_VERSION_MINOR,
             TCPKIT_VERSION_PATCH);
    ck_assert_str_eq(v, expect);
    tcpkit_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core-errors");
    TCase *tc = th_tcase("errors", 10);
    tcase_add_test(tc, enum_values_fixed);
    tcase_add_test(tc, strerror_every_value);
    tcase_add_test(tc, strerror_unknown_values);
    tcase_add_test(tc, last_error_thread_local);
    tcase_add_test(tc, last_error_kept_by_success);
    tcase_add_test(tc, version_matches_header);
    suite_add_tcase(s, tc);

    tc = th_tcase("setters", 10);
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
