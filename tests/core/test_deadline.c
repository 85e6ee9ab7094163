/* SPDX-License-Identifier: MIT */
/* 1.1: whole-conversation deadlines, cancellation (from another thread and
 * from a signal handler), and tcpkit_conn_buffered. */
#include "helpers.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int scaled(int ms)
{
    return ms * th_time_scale();
}

/* Waits until fd is readable (a raw or a tcpkit descriptor). */
static void wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, scaled(5000)), 1);
}

static bool last_error_has(const char *s)
{
    return strstr(tcpkit_last_error(), s) != NULL;
}

/* ---- deadlines ---- */

/* Writes one byte every 50 ms to p->fd until the peer is gone or 400
 * bytes (20 s) went out. Pacing, not synchronisation. */
static void drip_fn(th_peer *p)
{
    struct timespec gap = {0, 50 * 1000000L};
    for (int i = 0; i < 400; i++) {
        if (send(p->fd, "x", 1, MSG_NOSIGNAL) != 1)
            return;
        nanosleep(&gap, NULL);
    }
}

START_TEST(deadline_bounds_a_slow_drip)
{
    tcpkit_conn *c;
    th_peer p = {0};
    th_pair_raw(&c, &p.fd);
    /* Every single call succeeds well within its 2 s timeout... */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, scaled(2000)), TCPKIT_OK);
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, 600), TCPKIT_OK);
    th_peer_start(&p, drip_fn);
    tcpkit_err e;
    int bytes = 0;
    char ch;
    while ((e = tcpkit_recv(c, &ch, 1, NULL)) == TCPKIT_OK)
        bytes++;
    int64_t took = th_now_ms() - t0;
    /* ...but the conversation ends at the deadline. */
    ck_assert_int_eq(e, TCPKIT_ETIMEDOUT);
    ck_assert_msg(last_error_has("deadline"), "%s", tcpkit_last_error());
    ck_assert_int_ge(bytes, 2);
    ck_assert_int_ge(took, 550);
    ck_assert_int_lt(took, 600 + scaled(2500));
    tcpkit_close(c);
    th_peer_join(&p);
}
END_TEST

START_TEST(deadline_passed_still_completes_at_once)
{
    tcpkit_conn *c;
    int s;
    th_pair_raw(&c, &s);
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, 0), TCPKIT_OK);
    char buf[8];
    size_t n = 99;
    /* Nothing there: no wait, even with no per-call limit. */
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &n), TCPKIT_ETIMEDOUT);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_lt(th_now_ms() - t0, scaled(500));
    /* Data there, room to send: done at once, as with timeout 0. */
    ck_assert_int_eq(send(s, "ab", 2, MSG_NOSIGNAL), 2);
    wait_readable(tcpkit_conn_fd(c));
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &n), TCPKIT_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(tcpkit_send_all(c, "cd", 2, &n), TCPKIT_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(tcpkit_send_msg(c, "e", 1, &n), TCPKIT_OK);
    ck_assert_uint_eq(n, 5);
    /* Cleared: the per-call timeout alone rules again (it waits). */
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, -1), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 300), TCPKIT_OK);
    t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &n), TCPKIT_ETIMEDOUT);
    ck_assert_int_ge(th_now_ms() - t0, 250);
    ck_assert_msg(!last_error_has("deadline"), "%s", tcpkit_last_error());
    /* Bad values. */
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, -2), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, INT_MIN), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_conn_set_deadline(NULL, 10), TCPKIT_EINVAL);
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(deadline_earlier_of_the_two_wins)
{
    tcpkit_conn *c;
    int s;
    th_pair_raw(&c, &s);
    char buf[8];
    /* The per-call timeout is shorter. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 100), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, scaled(20000)), TCPKIT_OK);
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, NULL), TCPKIT_ETIMEDOUT);
    ck_assert_int_lt(th_now_ms() - t0, scaled(5000));
    ck_assert_msg(!last_error_has("deadline"), "%s", tcpkit_last_error());
    /* The deadline is shorter. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, -1), TCPKIT_OK);
    t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, 200), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, sizeof buf, NULL), TCPKIT_ETIMEDOUT);
    ck_assert_int_ge(th_now_ms() - t0, 150);
    ck_assert_msg(last_error_has("deadline"), "%s", tcpkit_last_error());
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(deadline_send_to_stalled_reader)
{
    tcpkit_conn *c;
    int s;
    th_pair_raw(&c, &s);
    size_t len = (size_t)64 << 20; /* more than any loopback buffer */
    char *big = calloc(1, len);
    ck_assert_ptr_nonnull(big);
    size_t sent = 0;
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_conn_set_deadline(c, 300), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_send_all(c, big, len, &sent), TCPKIT_ETIMEDOUT);
    int64_t took = th_now_ms() - t0;
    ck_assert_uint_gt(sent, 0);
    ck_assert_uint_lt(sent, len);
    ck_assert_int_ge(took, 250);
    ck_assert_int_lt(took, scaled(5000));
    /* The same for sendv: the deadline has passed, the buffer is full. */
    struct iovec iov[2] = {{big, 1 << 20}, {big, 1 << 20}};
    ck_assert_int_eq(tcpkit_sendv(c, iov, 2, &sent), TCPKIT_ETIMEDOUT);
    ck_assert_uint_lt(sent, 2u << 20);
    free(big);
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(deadline_on_accepted_conn)
{
    tcpkit_conn *c, *s; /* s comes from tcpkit_accept */
    th_pair(&c, &s);
    void *data = NULL;
    size_t len = 0;
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_conn_set_deadline(s, 200), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_msg(s, &data, &len, 100), TCPKIT_ETIMEDOUT);
    ck_assert_ptr_null(data);
    ck_assert_int_ge(th_now_ms() - t0, 150);
    ck_assert_int_lt(th_now_ms() - t0, scaled(5000));
    tcpkit_close(s);
    tcpkit_close(c);
}
END_TEST

/* ---- cancel ---- */

struct blocked {
    tcpkit_conn *conn;
    bool send; /* send_all a large buffer instead of recv */
    atomic_int tid;
    tcpkit_err err;
    int64_t returned_ms;
};

static void blocked_fn(th_peer *p)
{
    struct blocked *b = p->arg;
    atomic_store(&b->tid, (int)th_gettid());
    if (b->send) {
        size_t len = (size_t)64 << 20;
        char *big = calloc(1, len);
        if (!big) {
            th_peer_fail(p, "calloc");
            return;
        }
        b->err = tcpkit_send_all(b->conn, big, len, NULL);
        free(big);
    } else {
        char buf[16];
        b->err = tcpkit_recv(b->conn, buf, sizeof buf, NULL);
    }
    b->returned_ms = th_now_ms();
}

/* Every later I/O call fails at once with ECANCELED. */
static void expect_all_canceled(tcpkit_conn *c)
{
    char buf[16];
    size_t n = 99;
    void *data = (void *)buf;
    struct iovec iov = {buf, 1};
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &n), TCPKIT_ECANCELED);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, 4, NULL), TCPKIT_ECANCELED);
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, NULL), TCPKIT_ECANCELED);
    ck_assert_int_eq(tcpkit_recv_all(c, &data, NULL, 10), TCPKIT_ECANCELED);
    tcpkit_free(data);
    data = (void *)buf;
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, NULL, 10), TCPKIT_ECANCELED);
    ck_assert_ptr_null(data);
    ck_assert_int_eq(tcpkit_send_all(c, "x", 1, &n), TCPKIT_ECANCELED);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tcpkit_send_msg(c, "x", 1, NULL), TCPKIT_ECANCELED);
    ck_assert_int_eq(tcpkit_sendv(c, &iov, 1, NULL), TCPKIT_ECANCELED);
    ck_assert_int_eq(tcpkit_close_write(c), TCPKIT_ECANCELED);
    ck_assert_msg(last_error_has("cancel"), "%s", tcpkit_last_error());
}

static void cancel_blocked(bool send)
{
    tcpkit_conn *c;
    int s;
    th_pair_raw(&c, &s);
    struct blocked b = {.conn = c, .send = send};
    th_peer p = {.fd = -1, .arg = &b};
    th_peer_start(&p, blocked_fn);
    while (atomic_load(&b.tid) == 0)
        sched_yield();
    ck_assert(th_wait_thread_sleeping((pid_t)atomic_load(&b.tid), scaled(10000)));
    int64_t t0 = th_now_ms();
    tcpkit_conn_cancel(c);
    th_peer_join(&p);
    ck_assert_int_eq(b.err, TCPKIT_ECANCELED);
    /* "Well under 100 ms"; the bound is generous for a loaded machine,
     * and without the wake-up the call never returns at all. */
    ck_assert_int_lt(b.returned_ms - t0, scaled(1000));
    expect_all_canceled(c);
    tcpkit_conn_cancel(c); /* twice is harmless */
    /* The peer sees an orderly end of stream (see tcpkit_conn_cancel). */
    if (!send) {
        char ch;
        ck_assert_int_eq(recv(s, &ch, 1, 0), 0);
    }
    tcpkit_close(c);
    close(s);
}

START_TEST(cancel_wakes_blocked_recv)
{
    cancel_blocked(false);
}
END_TEST

START_TEST(cancel_wakes_blocked_send)
{
    cancel_blocked(true);
}
END_TEST

START_TEST(cancel_with_data_waiting)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_send_all(s, "line\nmore", 9, NULL), TCPKIT_OK);
    char buf[16];
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, scaled(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, NULL), TCPKIT_OK);
    tcpkit_conn_cancel(c);
    /* Even buffered bytes are not handed out any more. */
    expect_all_canceled(c);
    tcpkit_conn_cancel(NULL);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

/* The conn the signal handler cancels. */
static tcpkit_conn *volatile sig_conn;

static void on_sigusr1(int sig)
{
    (void)sig;
    tcpkit_conn_cancel(sig_conn);
}

struct killer {
    pthread_t target;
    pid_t target_tid;
};

static void killer_fn(th_peer *p)
{
    struct killer *k = p->arg;
    if (!th_wait_thread_sleeping(k->target_tid, scaled(10000)))
        th_peer_fail(p, "the receiver never blocked");
    pthread_kill(k->target, SIGUSR1);
}

START_TEST(cancel_from_signal_handler)
{
    tcpkit_conn *c;
    int s;
    th_pair_raw(&c, &s);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: poll() sees EINTR */
    sig_conn = c;
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    struct killer k = {pthread_self(), th_gettid()};
    th_peer p = {.fd = -1, .arg = &k};
    th_peer_start(&p, killer_fn);
    char buf[8];
    int64_t t0 = th_now_ms();
    /* Blocks without limit until the handler cancels it. */
    tcpkit_err e = tcpkit_recv(c, buf, sizeof buf, NULL);
    th_peer_join(&p);
    ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
    ck_assert_int_eq(e, TCPKIT_ECANCELED);
    ck_assert_int_lt(th_now_ms() - t0, scaled(15000));
    expect_all_canceled(c);
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(cancel_accepted_then_abort)
{
    tcpkit_conn *c, *s; /* s comes from tcpkit_accept */
    th_pair(&c, &s);
    tcpkit_conn_cancel(s);
    expect_all_canceled(s);
    tcpkit_abort(s);
    /* After cancel + abort the client sees a reset or an end of stream,
     * never a hang. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, scaled(5000)), TCPKIT_OK);
    char buf[8];
    tcpkit_err e = tcpkit_recv(c, buf, sizeof buf, NULL);
    ck_assert_msg(e == TCPKIT_EOF || e == TCPKIT_ERESET, "%s", tcpkit_strerror(e));
    tcpkit_close(c);
}
END_TEST

/* ---- buffered bytes ---- */

START_TEST(buffered_counts_read_ahead)
{
    ck_assert_uint_eq(tcpkit_conn_buffered(NULL), 0);
    tcpkit_conn *c;
    int s;
    th_pair_raw(&c, &s);
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 0);
    ck_assert_int_eq(send(s, "one\ntwo", 7, MSG_NOSIGNAL), 7);
    wait_readable(tcpkit_conn_fd(c));
    /* Not read yet: in the kernel, not in the conn. */
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 0);
    char buf[16];
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, scaled(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, NULL), TCPKIT_OK);
    ck_assert_str_eq(buf, "one\n");
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 3);
    /* The descriptor has nothing more: a caller polling it would sleep. */
    struct pollfd pfd = {.fd = tcpkit_conn_fd(c), .events = POLLIN};
    ck_assert_int_eq(poll(&pfd, 1, 0), 0);
    size_t n;
    ck_assert_int_eq(tcpkit_recv(c, buf, 2, &n), TCPKIT_OK);
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 1);
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &n), TCPKIT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 0);
    tcpkit_close(c);
    close(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("core-deadline");
    TCase *tc = th_tcase("deadline", 60);
    tcase_add_test(tc, deadline_bounds_a_slow_drip);
    tcase_add_test(tc, deadline_passed_still_completes_at_once);
    tcase_add_test(tc, deadline_earlier_of_the_two_wins);
    tcase_add_test(tc, deadline_send_to_stalled_reader);
    tcase_add_test(tc, deadline_on_accepted_conn);
    suite_add_tcase(su, tc);
    tc = th_tcase("cancel", 60);
    tcase_add_test(tc, cancel_wakes_blocked_recv);
    tcase_add_test(tc, cancel_wakes_blocked_send);
    tcase_add_test(tc, cancel_with_data_waiting);
    tcase_add_test(tc, cancel_from_signal_handler);
    tcase_add_test(tc, cancel_accepted_then_abort);
    suite_add_tcase(su, tc);
    tc = th_tcase("buffered", 30);
    tcase_add_test(tc, buffered_counts_read_ahead);
    suite_add_tcase(su, tc);
    return th_run_suite(su);
}
