/* SPDX-License-Identifier: MIT */
/* Deadlines and the one place the library blocks: poll(). */
#include "internal.h"

#include <errno.h>
#include <poll.h>

static struct timespec now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

int tk_deadline_left(tk_deadline *d)
{
    if (d->timeout_ms < 0)
        return -1;
    if (d->timeout_ms == 0)
        return 0;
    struct timespec t = now();
    if (!d->armed) {
        d->armed = true;
        d->end.tv_sec = t.tv_sec + d->timeout_ms / 1000;
        d->end.tv_nsec = t.tv_nsec + (long)(d->timeout_ms % 1000) * 1000000L;
        if (d->end.tv_nsec >= 1000000000L) {
            d->end.tv_sec++;
            d->end.tv_nsec -= 1000000000L;
        }
        return d->timeout_ms;
    }
    long long ns =
        (long long)(d->end.tv_sec - t.tv_sec) * 1000000000LL + (d->end.tv_nsec - t.tv_nsec);
    if (ns <= 0)
        return 0;
    /* Round up: a wait of 0 ms for a 0.4 ms remainder would spin. */
    long long ms = (ns + 999999) / 1000000;
    return ms > 2147483647LL ? 2147483647 : (int)ms;
}

tcpkit_err tk_wait(int fd, short events, int wake_fd, tk_deadline *d, const char *op)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = wake_fd, .events = POLLIN}};
    nfds_t n = wake_fd >= 0 ? 2 : 1;
    for (;;) {
        int left = tk_deadline_left(d);
        int r = poll(p, n, left);
        if (r > 0) {
            if (n == 2 && p[1].revents)
                return tk_fail(TCPKIT_ESHUTDOWN, 0, "%s: listener shut down", op);
            return TCPKIT_OK;
        }
        if (r == 0)
            return tk_fail(TCPKIT_ETIMEDOUT, 0, "%s: timed out", op);
        if (errno != EINTR)
            return tk_fail_errno(errno, op);
        /* EINTR: retry with whatever time is left; once left is 0 the next
         * poll() is a final non-blocking check. */
        if (left == 0)
            return tk_fail(TCPKIT_ETIMEDOUT, 0, "%s: timed out", op);
    }
}

/* The conn's deadline decides when it ends first (or is the only limit).
 * It is already armed, so reading it from two threads (a sender and a
 * receiver) only reads. */
static bool deadline_first(tcpkit_conn *c, tk_deadline *d, int *conn_left)
{
    int call_left = tk_deadline_left(d);
    *conn_left = tk_deadline_left(&c->deadline);
    return *conn_left >= 0 && (call_left < 0 || *conn_left < call_left);
}

tcpkit_err tk_conn_wait(tcpkit_conn *c, short events, tk_deadline *d, const char *op)
{
    tcpkit_err err = tk_conn_check(c, op);
    if (err != TCPKIT_OK)
        return err;
    /* The listener's shutdown wakes senders as well as receivers, so a
     * handler pushing to a client that stopped reading cannot keep
     * tcpkit_serve from returning. */
    int conn_left;
    if (!deadline_first(c, d, &conn_left)) {
        err = tk_wait(c->fd, events, c->wake_fd, d, op);
    } else {
        /* A passed deadline gives a 0 ms wait: one last look, exactly as
         * a timeout of 0. */
        tk_deadline rest = tk_deadline_make(conn_left);
        err = tk_wait(c->fd, events, c->wake_fd, &rest, op);
        if (err == TCPKIT_ETIMEDOUT)
            err = tk_fail(TCPKIT_ETIMEDOUT, 0, "%s: deadline passed", op);
    }
    /* tcpkit_conn_cancel shuts the socket down, which wakes the poll. */
    tcpkit_err canceled = tk_conn_check(c, op);
    return canceled != TCPKIT_OK ? canceled : err;
}
