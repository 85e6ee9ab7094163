/* SPDX-License-Identifier: MIT */
/* The seam itself: the library's calls really go through the wrappers (a
 * fault test whose fault never fires proves nothing), and rules fire on
 * the calls they name, in the thread that set them. */
#include "helpers.h"
#include "seam.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void reset(void)
{
    tf_reset();
    tf_hold(false);
}

struct listen_conn {
    tcpkit_listener *l;
    tcpkit_conn *client, *server;
};

/* Listen, connect, accept, send, receive and wait once each through the
 * library. */
static void exercise(struct listen_conn *x)
{
    x->l = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(x->l, port, sizeof port);
    ck_assert_int_eq(tcpkit_connect(&x->client, "127.0.0.1", port, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_accept(x->l, &x->server, 5000), TCPKIT_OK);
    size_t n;
    ck_assert_int_eq(tcpkit_send_all(x->client, "hi\n", 3, &n), TCPKIT_OK);
    char line[8];
    ck_assert_int_eq(tcpkit_recv_line(x->server, line, sizeof line, &n), TCPKIT_OK);
    ck_assert_str_eq(line, "hi\n");
    ck_assert_int_eq(tcpkit_conn_set_timeout(x->server, 0), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv(x->server, line, sizeof line, &n), TCPKIT_ETIMEDOUT);
}

static void undo(struct listen_conn *x)
{
    tcpkit_close(x->client);
    tcpkit_close(x->server);
    tcpkit_listener_close(x->l);
}

START_TEST(library_calls_go_through_the_seam)
{
    reset();
    unsigned long before[TF_NCALLS];
    for (int c = 0; c < TF_NCALLS; c++)
        before[c] = tf_calls((tf_call)c);
    struct listen_conn x = {0};
    exercise(&x);
    static const char *const names[] = {"send",   "recv", "poll",    "accept4", "connect",
                                        "socket", "bind", "eventfd", "alloc"};
    for (int c = 0; c < TF_ALLOC + 1; c++)
        ck_assert_msg(tf_calls((tf_call)c) > before[c],
                      "the library's %s() bypassed the seam (check nm for __%s_chk)", names[c],
                      names[c]);
    undo(&x);
}
END_TEST

START_TEST(rule_counts_skip_every_times)
{
    reset();
    int id = tf_fail(TF_ALLOC, ENOMEM, 2, 3, 2);
    /* Through a volatile pointer: the compiler may not assume the
     * allocations succeed and drop them. */
    void *(*volatile alloc)(size_t) = malloc;
    void *p[10];
    int failed_at[10], nfailed = 0;
    for (int i = 0; i < 10; i++) {
        p[i] = alloc(8);
        if (!p[i])
            failed_at[nfailed++] = i;
    }
    long hits = tf_hits(id);
    reset();
    for (int i = 0; i < 10; i++)
        free(p[i]);
    /* Skip 2, then every 3rd call, twice: calls 2 and 5. */
    ck_assert_int_eq(hits, 2);
    ck_assert_int_eq(nfailed, 2);
    ck_assert_int_eq(failed_at[0], 2);
    ck_assert_int_eq(failed_at[1], 5);
}
END_TEST

static void *(*volatile alloc16)(size_t) = malloc;

static void *alloc_in_thread(void *arg)
{
    void *p = alloc16(16);
    *(bool *)arg = p != NULL;
    free(p);
    return NULL;
}

START_TEST(rules_are_per_thread)
{
    reset();
    pthread_t t;
    bool ok = false;
    tf_fail(TF_ALLOC, ENOMEM, 0, 1, -1);
    void *mine = alloc16(16);
    reset();
    ck_assert_ptr_null(mine);
    /* Every allocation of this thread fails; the new thread's must not. */
    tf_fail(TF_ALLOC, ENOMEM, 0, 1, -1);
    /* Check allocates in its asserts: assert only after tf_reset(). */
    int r = pthread_create(&t, NULL, alloc_in_thread, &ok);
    if (r == 0)
        pthread_join(t, NULL);
    reset();
    ck_assert_int_eq(r, 0);
    ck_assert(ok);
}
END_TEST

START_TEST(short_rule_clamps_length)
{
    reset();
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    int id = tf_short(TF_SEND, 1, 3);
    size_t sent;
    tcpkit_err err = tcpkit_send_all(c, "abcdef", 6, &sent);
    unsigned long hits = (unsigned long)tf_hits(id);
    reset();
    ck_assert_int_eq(err, TCPKIT_OK);
    ck_assert_uint_eq(sent, 6);
    ck_assert_uint_eq(hits, 3);
    tcpkit_close(c);
    char buf[16];
    size_t got = th_raw_recv_all(fd, buf, sizeof buf);
    close(fd);
    ck_assert_uint_eq(got, 6);
    ck_assert(memcmp(buf, "abcdef", 6) == 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault-seam");
    TCase *tc = th_tcase("seam", 10);
    tcase_add_test(tc, library_calls_go_through_the_seam);
    tcase_add_test(tc, rule_counts_skip_every_times);
    tcase_add_test(tc, rules_are_per_thread);
    tcase_add_test(tc, short_rule_clamps_length);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
