/* SPDX-License-Identifier: MIT */
/* Mutant-killing tests that need the syscall seam (issue 14 item 4). The
 * comment above each test names the one-line change to lib/ it catches;
 * each was checked by applying it to a scratch copy and seeing the test
 * fail.
 *
 * Check allocates inside its asserts: every test removes its rules
 * (tf_reset) before asserting. */
#include "helpers.h"
#include "seam.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static void fault_reset(void)
{
    tf_reset();
    tf_hold(false);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- timeouts are rounded up ---- */

/* Mutation: tk_deadline_left rounding the remaining time down
 * (`ms = ns / 1000000` instead of `(ns + 999999) / 1000000`, lib/wait.c).
 * A signal interrupts the first wait of a 10 ms receive after 9 ms; what
 * is left is under 1 ms, which rounds down to 0, and the call times out
 * early. It must wait out the full 10 ms, every time. */
START_TEST(sub_millisecond_remainder_still_waits)
{
    /* Timer slack would stretch each wait and hide the remainder. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 10), TCPKIT_OK);
    char buf[8];
    int64_t shortest = INT64_MAX;
    tcpkit_err worst = TCPKIT_ETIMEDOUT;
    for (int i = 0; i < 20; i++) {
        tf_add((tf_rule){.call = TF_POLL, .action = TF_SLICE, .err = EINTR, .max = 9, .times = 1});
        int64_t t0 = now_ns();
        size_t got;
        tcpkit_err e = tcpkit_recv(c, buf, sizeof buf, &got);
        int64_t took = now_ns() - t0;
        tf_reset();
        if (e != TCPKIT_ETIMEDOUT)
            worst = e;
        shortest = took < shortest ? took : shortest;
    }
    tcpkit_close(c);
    tcpkit_close(s);
    ck_assert_msg(worst == TCPKIT_ETIMEDOUT, "recv: %s", tcpkit_strerror(worst));
    ck_assert_msg(shortest >= 10000000, "a 10 ms recv timed out after %.3f ms",
                  (double)shortest / 1e6);
}
END_TEST

/* ---- accept's timeout is not restarted by dead clients ---- */

struct acceptor {
    tcpkit_listener *l;
    int done[2]; /* written when tcpkit_accept returned */
    tcpkit_err err;
    int64_t took;
};

/* While the test holds the seam, accept4 reports EAGAIN without taking a
 * connection: the test's client can connect and reset before the library
 * sees it, so the library skips a reset-before-accept client for sure. */
static void accept_once(th_peer *p)
{
    struct acceptor *a = p->arg;
    tf_add((tf_rule){.call = TF_ACCEPT, .action = TF_FAIL, .err = EAGAIN, .while_held = true});
    tcpkit_conn *c = NULL;
    int64_t t0 = th_now_ms();
    a->err = tcpkit_accept(a->l, &c, 1000);
    a->took = th_now_ms() - t0;
    tf_reset();
    tcpkit_close(c);
    if (write(a->done[1], "x", 1) != 1)
        th_peer_fail(p, "write: %s", strerror(errno));
}

/* Mutation: tcpkit_accept making its deadline anew after skipping a client
 * that reset before accept (`d = tk_deadline_make(timeout_ms);` in the
 * accepted_dead branch, lib/listen.c). A dead client every 100 ms then
 * keeps a 1 s accept waiting as long as they come; it must end at ~1 s. */
START_TEST(accept_timeout_spans_dead_clients)
{
    struct acceptor a = {.l = th_listen_loopback("127.0.0.1")};
    ck_assert_int_eq(pipe2(a.done, O_CLOEXEC), 0);
    int port = tcpkit_listener_port(a.l);
    int64_t bound = 1000 + 1500LL * th_time_scale();
    th_peer p = {.arg = &a, .fd = -1};
    th_peer_start(&p, accept_once);
    int dead = 0;
    struct pollfd pf = {.fd = a.done[0], .events = POLLIN};
    int64_t end = th_now_ms() + bound + 2000;
    /* Paced by the wait for the acceptor's end: one client per 100 ms. */
    while (th_now_ms() < end && poll(&pf, 1, 100) == 0) {
        tf_hold(true);
        th_raw_abort(th_raw_connect("127.0.0.1", port));
        tf_hold(false);
        dead++;
    }
    th_peer_join(&p);
    close(a.done[0]);
    close(a.done[1]);
    tcpkit_listener_close(a.l);
    ck_assert_msg(a.err == TCPKIT_ETIMEDOUT, "accept: %s", tcpkit_strerror(a.err));
    ck_assert_msg(a.took >= 990 && a.took <= bound, "a 1000 ms accept took %lld ms",
                  (long long)a.took);
    ck_assert_msg(dead >= 5, "only %d dead clients during accept", dead);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault-mutants");
    TCase *tc = th_tcase("mutants", 60);
    tcase_add_checked_fixture(tc, fault_reset, fault_reset);
    tcase_add_test(tc, sub_millisecond_remainder_still_waits);
    tcase_add_test(tc, accept_timeout_spans_dead_clients);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
