/* SPDX-License-Identifier: MIT */
/* Every API function given NULL or out-of-range arguments: TCPKIT_EINVAL
 * (or the documented value), no crash, out-parameters cleared, a message,
 * errno 0, and the handles still usable afterwards. */
#include "helpers.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* A non-NULL pointer that must be overwritten with NULL. */
static int sentinel_obj;
#define SENTINEL ((void *)&sentinel_obj)

/* Checks one EINVAL result: the code, a message, no OS errno. */
#define EXPECT_EINVAL(call)                                                                        \
    do {                                                                                           \
        tcpkit_err e_ = (call);                                                                    \
        ck_assert_msg(e_ == TCPKIT_EINVAL, "%s: %s", #call, tcpkit_strerror(e_));                  \
        ck_assert_msg(tcpkit_last_error()[0] != '\0', "%s: no message", #call);                    \
        ck_assert_msg(tcpkit_last_errno() == 0, "%s: errno %d", #call, tcpkit_last_errno());       \
    } while (0)

static void dummy_handler(tcpkit_conn *c, void *arg)
{
    (void)c;
    (void)arg;
}

START_TEST(library_and_errors)
{
    tcpkit_free(NULL);
    ck_assert_ptr_nonnull(tcpkit_strerror((tcpkit_err)-5));
    ck_assert_ptr_nonnull(tcpkit_last_error());
    ck_assert_ptr_nonnull(tcpkit_version());
}
END_TEST

START_TEST(options)
{
    EXPECT_EINVAL(tcpkit_opts_new(NULL));
    tcpkit_opts_free(NULL);
    EXPECT_EINVAL(tcpkit_opts_set_connect_timeout(NULL, 0));
    EXPECT_EINVAL(tcpkit_opts_set_io_timeout(NULL, 0));
    EXPECT_EINVAL(tcpkit_opts_set_family(NULL, TCPKIT_FAMILY_ANY));
    EXPECT_EINVAL(tcpkit_opts_set_nodelay(NULL, true));
    EXPECT_EINVAL(tcpkit_opts_set_keepalive(NULL, 0));
    EXPECT_EINVAL(tcpkit_opts_set_backlog(NULL, 1));
    EXPECT_EINVAL(tcpkit_opts_set_reuseport(NULL, true));
    EXPECT_EINVAL(tcpkit_opts_set_v6only(NULL, true));
    EXPECT_EINVAL(tcpkit_opts_set_fallback_delay(NULL, 0));
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    EXPECT_EINVAL(tcpkit_opts_set_connect_timeout(o, -2));
    EXPECT_EINVAL(tcpkit_opts_set_io_timeout(o, INT_MIN));
    EXPECT_EINVAL(tcpkit_opts_set_family(o, (tcpkit_family)42));
    EXPECT_EINVAL(tcpkit_opts_set_keepalive(o, -1));
    EXPECT_EINVAL(tcpkit_opts_set_backlog(o, 0));
    EXPECT_EINVAL(tcpkit_opts_set_fallback_delay(o, 60001));
    EXPECT_EINVAL(tcpkit_opts_set_fallback_delay(o, -1));
    tcpkit_opts_free(o);
}
END_TEST

START_TEST(connect_args)
{
    tcpkit_conn *c = SENTINEL;
    EXPECT_EINVAL(tcpkit_connect(NULL, "127.0.0.1", "80", NULL));
    EXPECT_EINVAL(tcpkit_connect(&c, NULL, "80", NULL));
    ck_assert_ptr_null(c);
    c = SENTINEL;
    EXPECT_EINVAL(tcpkit_connect(&c, "", "80", NULL));
    ck_assert_ptr_null(c);
    c = SENTINEL;
    EXPECT_EINVAL(tcpkit_connect(&c, "127.0.0.1", NULL, NULL));
    ck_assert_ptr_null(c);
    const char *ports[] = {"0", "65536", "-1", ""};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        c = SENTINEL;
        EXPECT_EINVAL(tcpkit_connect(&c, "127.0.0.1", ports[i], NULL));
        ck_assert_ptr_null(c);
    }
}
END_TEST

START_TEST(listener_args)
{
    tcpkit_listener *l = SENTINEL;
    EXPECT_EINVAL(tcpkit_listen(NULL, "127.0.0.1", "0", NULL));
    EXPECT_EINVAL(tcpkit_listen(&l, "127.0.0.1", NULL, NULL));
    ck_assert_ptr_null(l);
    l = SENTINEL;
    EXPECT_EINVAL(tcpkit_listen(&l, "127.0.0.1", "65536", NULL));
    ck_assert_ptr_null(l);
    l = SENTINEL;
    EXPECT_EINVAL(tcpkit_listen(&l, "127.0.0.1", "-1", NULL));
    ck_assert_ptr_null(l);

    ck_assert_int_eq(tcpkit_listener_port(NULL), -1);
    ck_assert_int_eq(tcpkit_listener_fd(NULL), -1);
    char buf[TCPKIT_ADDRSTRLEN];
    memset(buf, 'X', sizeof buf);
    EXPECT_EINVAL(tcpkit_listener_addr(NULL, buf, sizeof buf));
    tcpkit_conn *c = SENTINEL;
    EXPECT_EINVAL(tcpkit_accept(NULL, &c, 0));
    ck_assert_ptr_null(c);
    EXPECT_EINVAL(tcpkit_serve(NULL, dummy_handler, NULL, 1));
    tcpkit_listener_shutdown(NULL);
    tcpkit_listener_close(NULL);

    /* A real listener with bad arguments around it. */
    l = th_listen_loopback("127.0.0.1");
    EXPECT_EINVAL(tcpkit_listener_addr(l, NULL, 64));
    memset(buf, 'X', sizeof buf);
    EXPECT_EINVAL(tcpkit_listener_addr(l, buf, 0));
    ck_assert_int_eq(buf[0], 'X');
    EXPECT_EINVAL(tcpkit_accept(l, NULL, 0));
    c = SENTINEL;
    EXPECT_EINVAL(tcpkit_accept(l, &c, -2));
    ck_assert_ptr_null(c);
    c = SENTINEL;
    EXPECT_EINVAL(tcpkit_accept(l, &c, INT_MIN));
    ck_assert_ptr_null(c);
    /* These must fail before accepting anything (they would block). */
    EXPECT_EINVAL(tcpkit_serve(l, NULL, NULL, 1));
    EXPECT_EINVAL(tcpkit_serve(l, dummy_handler, NULL, 0));
    EXPECT_EINVAL(tcpkit_serve(l, dummy_handler, NULL, -1));
    /* The listener still works. */
    ck_assert_int_eq(tcpkit_accept(l, &c, 0), TCPKIT_ETIMEDOUT);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(conn_null_handle)
{
    char buf[16];
    size_t n = 99;
    EXPECT_EINVAL(tcpkit_send_all(NULL, "x", 1, &n));
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv(NULL, buf, sizeof buf, &n));
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_exact(NULL, buf, sizeof buf, &n));
    ck_assert_uint_eq(n, 0);
    void *data = SENTINEL;
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_all(NULL, &data, &n, 10));
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_line(NULL, buf, sizeof buf, &n));
    ck_assert_uint_eq(n, 0);
    EXPECT_EINVAL(tcpkit_close_write(NULL));
    EXPECT_EINVAL(tcpkit_conn_set_timeout(NULL, 0));
    ck_assert_int_eq(tcpkit_conn_fd(NULL), -1);
    EXPECT_EINVAL(tcpkit_conn_peer(NULL, buf, sizeof buf));
    EXPECT_EINVAL(tcpkit_conn_local(NULL, buf, sizeof buf));
    tcpkit_close(NULL);
    tcpkit_abort(NULL);
    /* NULL out-params are allowed where documented. */
    EXPECT_EINVAL(tcpkit_send_all(NULL, "x", 1, NULL));
    EXPECT_EINVAL(tcpkit_recv(NULL, buf, sizeof buf, NULL));
}
END_TEST

START_TEST(conn_bad_arguments)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_send_all(s, "data\n", 5, NULL), TCPKIT_OK);
    char buf[16];
    size_t n = 99;
    EXPECT_EINVAL(tcpkit_send_all(c, NULL, 5, &n));
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv(c, NULL, 5, &n));
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv(c, buf, 0, &n));
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_exact(c, NULL, 5, &n));
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_all(c, NULL, &n, 10));
    ck_assert_uint_eq(n, 0);
    void *data = SENTINEL;
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_all(c, &data, &n, 0));
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_line(c, NULL, 10, &n));
    ck_assert_uint_eq(n, 0);
    n = 99;
    EXPECT_EINVAL(tcpkit_recv_line(c, buf, 0, &n));
    ck_assert_uint_eq(n, 0);
    EXPECT_EINVAL(tcpkit_conn_set_timeout(c, -2));
    EXPECT_EINVAL(tcpkit_conn_set_timeout(c, INT_MIN));
    EXPECT_EINVAL(tcpkit_conn_peer(c, NULL, 64));
    EXPECT_EINVAL(tcpkit_conn_local(c, NULL, 64));
    memset(buf, 'X', sizeof buf);
    EXPECT_EINVAL(tcpkit_conn_peer(c, buf, 0));
    EXPECT_EINVAL(tcpkit_conn_local(c, buf, 0));
    ck_assert_int_eq(buf[0], 'X');

    /* Nothing was consumed or broken by the rejected calls. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 5000 * th_time_scale()), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &n), TCPKIT_OK);
    ck_assert_str_eq(buf, "data\n");
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core-misuse");
    TCase *tc = th_tcase("misuse", 10);
    tcase_add_test(tc, library_and_errors);
    tcase_add_test(tc, options);
    tcase_add_test(tc, connect_args);
    tcase_add_test(tc, listener_args);
    tcase_add_test(tc, conn_null_handle);
    tcase_add_test(tc, conn_bad_arguments);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
