/* SPDX-License-Identifier: MIT */
/* tcpkit_serve_with in fiber mode when the OS fails: accept out of
 * descriptors, no memory for a connection, no thread for
 * tcpkit_run_blocking (nor for the name lookup of a connect).
 *
 * Seam rules belong to the thread that adds them, and the fiber server's
 * loop runs on a thread of its own: so a handler (a fiber on that loop
 * thread) arms the fault, on a command from the client, and a later
 * handler on the same loop reports how often it acted. */
#include "helpers.h"
#include "seam.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fsrv {
    tcpkit_listener *l;
    pthread_t tid;
    tcpkit_err result;
};

static void noop(void *arg)
{
    *(int *)arg += 1;
}

/* One command per connection, one line back. */
static void command_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char line[64], rep[64];
    size_t n;
    if (tcpkit_recv_line(c, line, sizeof line, &n) != TCPKIT_OK)
        return;
    int v = 0;
    if (strcmp(line, "arm-accept\n") == 0) {
        v = tf_fail(TF_ACCEPT, EMFILE, 0, 1, 3);
    } else if (strcmp(line, "arm-alloc\n") == 0) {
        v = tf_fail(TF_ALLOC, ENOMEM, 0, 1, 1);
    } else if (sscanf(line, "hits %d", &v) == 1) {
        v = (int)tf_hits(v);
        tf_reset();
    } else if (strcmp(line, "no-thread\n") == 0) {
        /* No helper exists yet and none can start: ENOMEM, fn not run;
         * once threads are back, it runs. */
        int ran = 0;
        tf_fail(TF_THREAD, EAGAIN, 0, 1, 1);
        tcpkit_err a = tcpkit_run_blocking(noop, &ran);
        tf_reset();
        tcpkit_err b = tcpkit_run_blocking(noop, &ran);
        v = (a == TCPKIT_ENOMEM) * 100 + (b == TCPKIT_OK) * 10 + ran;
    } else if (strcmp(line, "lookup\n") == 0) {
        /* The name lookup of a connect cannot get a helper thread: it runs
         * on the loop thread instead, and the connect still works. */
        tf_fail(TF_THREAD, EAGAIN, 0, 1, -1);
        tcpkit_conn *up;
        char port[16];
        snprintf(port, sizeof port, "%d", tcpkit_listener_port(arg));
        tcpkit_opts *o;
        tcpkit_opts_new(&o);
        tcpkit_opts_set_family(o, TCPKIT_FAMILY_IPV4);
        v = tcpkit_connect(&up, "localhost", port, o);
        tcpkit_opts_free(o);
        tcpkit_close(up);
        tf_reset();
    }
    n = (size_t)snprintf(rep, sizeof rep, "%d\n", v);
    tcpkit_send_all(c, rep, n, NULL);
}

static void *serve_main(void *p)
{
    struct fsrv *s = p;
    tcpkit_opts *o;
    tcpkit_opts_new(&o);
    tcpkit_opts_set_serve_threads(o, 1);
    s->result = tcpkit_serve_with(s->l, command_handler, s->l, o);
    tcpkit_opts_free(o);
    return NULL;
}

/* Sends cmd on a new connection; returns the number answered, or -1 when
 * the server closed without an answer. */
static int ask(int port, const char *cmd)
{
    int fd = th_raw_connect("127.0.0.1", port);
    ck_assert_uint_eq(th_raw_send_all(fd, cmd, strlen(cmd)), strlen(cmd));
    char rep[64] = {0};
    size_t n = th_raw_recv_all(fd, rep, sizeof rep - 1);
    close(fd);
    return n > 0 ? atoi(rep) : -1;
}

static void start(struct fsrv *s)
{
    s->l = th_listen_loopback("127.0.0.1");
    s->result = (tcpkit_err)-1;
    ck_assert_int_eq(pthread_create(&s->tid, NULL, serve_main, s), 0);
}

static void stop(struct fsrv *s)
{
    tcpkit_listener_shutdown(s->l);
    ck_assert_int_eq(pthread_join(s->tid, NULL), 0);
    ck_assert_int_eq(s->result, TCPKIT_OK);
    tcpkit_listener_close(s->l);
}

START_TEST(accept_emfile_backs_off_then_serves)
{
    struct fsrv s;
    start(&s);
    int port = tcpkit_listener_port(s.l);
    int id = ask(port, "arm-accept\n");
    /* The next three accepts fail with EMFILE: the client waits in the
     * backlog through the back-off (10 + 20 + 40 ms) and is then served. */
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(ask(port, "x\n"), 0);
    ck_assert_int_ge(th_now_ms() - t0, 60);
    char cmd[32];
    snprintf(cmd, sizeof cmd, "hits %d\n", id);
    ck_assert_int_eq(ask(port, cmd), 3);
    stop(&s);
}
END_TEST

START_TEST(no_memory_for_a_connection)
{
    struct fsrv s;
    start(&s);
    int port = tcpkit_listener_port(s.l);
    int id = ask(port, "arm-alloc\n");
    /* The next connection gets no conn object: it is closed unanswered,
     * and the server goes on. */
    ck_assert_int_eq(ask(port, "x\n"), -1);
    char cmd[32];
    snprintf(cmd, sizeof cmd, "hits %d\n", id);
    ck_assert_int_eq(ask(port, cmd), 1);
    stop(&s);
}
END_TEST

START_TEST(run_blocking_without_threads)
{
    struct fsrv s;
    start(&s);
    ck_assert_int_eq(ask(tcpkit_listener_port(s.l), "no-thread\n"), 111);
    stop(&s);
}
END_TEST

START_TEST(lookup_without_helper_threads)
{
    struct fsrv s;
    start(&s);
    ck_assert_int_eq(ask(tcpkit_listener_port(s.l), "lookup\n"), TCPKIT_OK);
    stop(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault-fiber");
    TCase *tc = th_tcase("fiber", 60);
    tcase_add_test(tc, accept_emfile_backs_off_then_serves);
    tcase_add_test(tc, no_memory_for_a_connection);
    tcase_add_test(tc, run_blocking_without_threads);
    tcase_add_test(tc, lookup_without_helper_threads);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
