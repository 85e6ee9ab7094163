/* SPDX-License-Identifier: MIT */
/* The conn object's life: creation, the two functions every byte moves
 * through, close, abort and the accessors. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

tcpkit_err tk_conn_alloc(int fd, const struct sockaddr *peer, socklen_t peer_len, int timeout_ms,
                         tcpkit_conn **out)
{
    tcpkit_conn *c = calloc(1, sizeof *c);
    if (!c)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "out of memory for a connection");
    c->fd = fd;
    c->timeout_ms = timeout_ms;
    c->wake_fd = -1;
    c->deadline = tk_deadline_make(-1);
    atomic_init(&c->canceled, false);
    if (peer_len > (socklen_t)sizeof c->peer)
        peer_len = sizeof c->peer;
    memcpy(&c->peer, peer, peer_len);
    c->peer_len = peer_len;
    *out = c;
    return TCPKIT_OK;
}

tcpkit_err tk_conn_new(int fd, const struct sockaddr *peer, socklen_t peer_len, int timeout_ms,
                       tcpkit_conn **out)
{
    tcpkit_err err = tk_conn_alloc(fd, peer, peer_len, timeout_ms, out);
    if (err != TCPKIT_OK)
        close(fd);
    return err;
}

tcpkit_err tk_conn_check(tcpkit_conn *c, const char *op)
{
    if (atomic_load(&c->canceled))
        return tk_fail(TCPKIT_ECANCELED, 0, "%s: canceled by tcpkit_conn_cancel", op);
    return TCPKIT_OK;
}

ssize_t tk_conn_settle(tcpkit_conn *c, ssize_t r)
{
    /* The cancel's shutdown(SHUT_RDWR) makes a receive see end of stream
     * and a send EPIPE; the caller must see why. */
    if (r <= 0 && atomic_load(&c->canceled)) {
        errno = ECANCELED;
        return -1;
    }
    return r;
}

bool tk_conn_is_plain(const tcpkit_conn *c)
{
    return c->tls == NULL;
}

ssize_t tk_conn_read(tcpkit_conn *c, void *buf, size_t cap, short *wait_for)
{
    if (c->tls)
        return tk_conn_settle(c, tk_tls_read(c->tls, buf, cap, wait_for));
    *wait_for = POLLIN;
    return tk_conn_settle(c, recv(c->fd, buf, cap, 0));
}

ssize_t tk_conn_write(tcpkit_conn *c, const void *buf, size_t len, short *wait_for)
{
    if (c->tls)
        return tk_conn_settle(c, tk_tls_write(c->tls, buf, len, wait_for));
    *wait_for = POLLOUT;
    /* MSG_NOSIGNAL: a peer that went away gives EPIPE, not SIGPIPE. */
    return tk_conn_settle(c, send(c->fd, buf, len, MSG_NOSIGNAL));
}

static void conn_free(tcpkit_conn *c)
{
    /* close() may report EINTR or a late error; the descriptor is gone on
     * Linux either way, so retrying would close someone else's. */
    tk_wait_forget(c->fd);
    close(c->fd);
    free(c->rbuf);
    free(c);
}

void tcpkit_close(tcpkit_conn *c)
{
    if (!c)
        return;
    tk_tls_conn_free(c->tls, true); /* close_notify if it goes out at once */
    conn_free(c);
}

void tcpkit_abort(tcpkit_conn *c)
{
    if (!c)
        return;
    /* Linger on with a zero timeout: close() sends RST and drops unsent
     * data instead of a FIN handshake. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    tk_tls_conn_free(c->tls, false); /* a reset carries no close_notify */
    conn_free(c);
}

tcpkit_err tcpkit_close_write(tcpkit_conn *c)
{
    if (!c)
        return tk_fail(TCPKIT_EINVAL, 0, "close_write: conn is NULL");
    tcpkit_err err = tk_conn_check(c, "close_write");
    if (err != TCPKIT_OK)
        return err;
    if (c->tls)
        return tk_conn_tls_close_write(c);
    if (shutdown(c->fd, SHUT_WR) < 0)
        return tk_fail_errno(errno, "close_write");
    return TCPKIT_OK;
}

tcpkit_err tcpkit_conn_set_timeout(tcpkit_conn *c, int ms)
{
    if (!c || ms < -1)
        return tk_fail(TCPKIT_EINVAL, 0, "conn_set_timeout: %s",
                       c ? "timeout below -1" : "conn is NULL");
    c->timeout_ms = ms;
    return TCPKIT_OK;
}

tcpkit_err tcpkit_conn_set_deadline(tcpkit_conn *c, int ms)
{
    if (!c || ms < -1)
        return tk_fail(TCPKIT_EINVAL, 0, "conn_set_deadline: %s",
                       c ? "deadline below -1" : "conn is NULL");
    /* Armed now: the limit counts from this call, not from the next wait. */
    c->deadline = tk_deadline_make(ms);
    tk_deadline_left(&c->deadline);
    return TCPKIT_OK;
}

void tcpkit_conn_cancel(tcpkit_conn *c)
{
    if (!c)
        return;
    /* Async-signal-safe steps only: a lock-free store and shutdown(2).
     * Shutting the socket down wakes every poll() on it at once in both
     * directions without a wake-up descriptor per conn; the price is that
     * the peer sees an orderly end of stream (documented in the header). */
    int saved = errno;
    atomic_store(&c->canceled, true);
    shutdown(c->fd, SHUT_RDWR);
    errno = saved;
}

size_t tcpkit_conn_buffered(const tcpkit_conn *c)
{
    if (!c)
        return 0;
    /* Bytes OpenSSL has decrypted but not handed out are just as ready. */
    return c->rend - c->rstart + (c->tls ? tk_tls_pending(c->tls) : 0);
}

int tcpkit_conn_fd(const tcpkit_conn *c)
{
    return c ? c->fd : -1;
}

tcpkit_err tcpkit_conn_peer(const tcpkit_conn *c, char *buf, size_t cap)
{
    if (buf && cap)
        buf[0] = '\0';
    if (!c || !buf)
        return tk_fail(TCPKIT_EINVAL, 0, "conn_peer: %s is NULL", c ? "buf" : "conn");
    return tk_addr_to_user((const struct sockaddr *)&c->peer, c->peer_len, buf, cap, "conn_peer");
}

tcpkit_err tcpkit_conn_local(const tcpkit_conn *c, char *buf, size_t cap)
{
    if (buf && cap)
        buf[0] = '\0';
    if (!c || !buf)
        return tk_fail(TCPKIT_EINVAL, 0, "conn_local: %s is NULL", c ? "buf" : "conn");
    return tk_sockname_to_user(c->fd, buf, cap, "conn_local");
}
