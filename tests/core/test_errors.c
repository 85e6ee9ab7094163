/* SPDX-License-Identifier: MIT */
/* Errors, the thread-local error record, version. (Options: test_opts.c.) */
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
    ck_assert_int_eq(TCPKIT_ETLS, 15);
    ck_assert_int_eq(TCPKIT_ECERT, 16);
    ck_assert_int_eq(TCPKIT_ENOTSUP, 17);
    ck_assert_int_eq(TCPKIT_ECANCELED, 18);
    ck_assert_int_eq(TCPKIT_FAMILY_ANY, 0);
    ck_assert_int_eq(TCPKIT_ADDRSTRLEN, 64);
}
END_TEST

START_TEST(strerror_every_value)
{
    const char *unknown = tcpkit_strerror((tcpkit_err)19);
    ck_assert_ptr_nonnull(unknown);
    ck_assert_str_eq(unknown, "unknown error");
    for (int i = 0; i <= TCPKIT_ECANCELED; i++) {
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
    ck_assert_str_eq(tcpkit_strerror(TCPKIT_ECANCELED), "canceled");
}
END_TEST

START_TEST(strerror_unknown_values)
{
    const int bad[] = {-1, 19, 20, 100, INT_MAX, INT_MIN};
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
    return th_run_suite(s);
}
