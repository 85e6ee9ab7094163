/* SPDX-License-Identifier: MIT */
/* tcpkit_listen, tcpkit_accept and shutdown. */
#include "internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Creates, configures, binds and listens one socket. Returns the fd or -1
 * with errno set. */
static int bind_one(const struct tk_target *t, const struct tcpkit_opts *o)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -1;
    /* SO_REUSEADDR lets a restarted server bind while old connections of
     * the previous run sit in TIME_WAIT. */
    int on = 1, v6only = o->v6only ? 1 : 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) ||
        (t->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) ||
        bind(fd, (const struct sockaddr *)&t->addr, t->len) < 0 || listen(fd, o->backlog) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Wildcard listeners prefer IPv6 (dual-stack "::" takes IPv4 too); named
 * hosts prefer IPv4, as Go does. Stable, so resolver order is kept. */
static void order_for_listen(struct tk_target *t, size_t n, bool prefer_v6)
{
    sa_family_t first = prefer_v6 ? AF_INET6 : AF_INET;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].addr.ss_family != first)
            continue;
        struct tk_target tmp = t[i];
        memmove(&t[k + 1], &t[k], (i - k) * sizeof *t);
        t[k++] = tmp;
    }
}

tcpkit_err tk_listener_wrap(int fd, const struct tcpkit_opts *o, tcpkit_listener **out)
{
    /* Linux copies TCP_NODELAY, SO_KEEPALIVE and TCP_KEEPIDLE from the
     * listening socket to every accepted one: set them once here instead
     * of paying a setsockopt() per accepted connection. */
    tcpkit_err err = tk_apply_conn_options(fd, o);
    if (err != TCPKIT_OK)
        return err;
    tcpkit_listener *l = calloc(1, sizeof *l);
    int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!l || wake < 0) {
        int e = l ? errno : ENOMEM;
        free(l);
        if (wake >= 0)
            close(wake);
        return tk_fail_errno(e, "listen: shutdown event");
    }
    l->fd = fd;
    l->wake_fd = wake;
    atomic_init(&l->shut, false);
    l->io_timeout_ms = o->io_timeout_ms;
    l->tls = o->tls;
    if (l->tls)
        tk_tls_ref(l->tls);
    *out = l;
    return TCPKIT_OK;
}

/* Binds the first address that works. Without IPv6 (socket() says
 * EAFNOSUPPORT, bind() EADDRNOTAVAIL) the wildcard falls back to 0.0.0.0;
 * a real error such as EADDRINUSE is reported as is. */
static tcpkit_err bind_first(struct tk_target *t, size_t n, const struct tcpkit_opts *o,
                             const char *label, int *fd_out)
{
    int fd = -1, e = 0;
    for (size_t i = 0; i < n && fd < 0; i++) {
        fd = bind_one(&t[i], o);
        if (fd < 0 && (e == 0 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL)))
            e = errno;
    }
    *fd_out = fd;
    if (fd < 0)
        return tk_fail(tk_err_from_errno(e), e, "listen %s: %s", label, tk_errno_text(e));
    return TCPKIT_OK;
}

tcpkit_err tcpkit_listen(tcpkit_listener **out, const char *host, const char *port,
                         const tcpkit_opts *opts)
{
    if (out)
        *out = NULL;
    if (!out)
        return tk_fail(TCPKIT_EINVAL, 0, "listen: out is NULL");
    tcpkit_err err = tk_check_port(port, 0, "listen");
    if (err != TCPKIT_OK)
        return err;
    const struct tcpkit_opts *o = tk_opts_or_default(opts);
    if (o->tls && !tk_tls_has_cert(o->tls))
        return tk_fail(TCPKIT_EINVAL, 0, "listen: the TLS configuration has no certificate");
    bool wildcard = !host || !*host;
    char name[TK_HOST_MAX + 1];
    if (!wildcard && (err = tk_clean_host(host, name, sizeof name, "listen")) != TCPKIT_OK)
        return err;
    char label[TK_LABEL_MAX];
    tk_format_label(label, sizeof label, wildcard ? NULL : name, port);

    struct tk_target *t;
    size_t n;
    err = tk_resolve(wildcard ? NULL : name, port, o->family, true, "listen", label, &t, &n);
    if (err != TCPKIT_OK)
        return err;
    order_for_listen(t, n, wildcard);
    int fd;
    err = bind_first(t, n, o, label, &fd);
    free(t);
    if (err != TCPKIT_OK)
        return err;
    if ((err = tk_listener_wrap(fd, o, out)) != TCPKIT_OK)
        close(fd);
    return err;
}

int tcpkit_listener_port(const tcpkit_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (!l || getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
        return -1; /* a Unix-domain listener (tcpkit_listener_from_fd) */
    /* sin_port and sin6_port sit at the same offset. */
    return ntohs(((const struct sockaddr_in *)(const void *)&ss)->sin_port);
}

tcpkit_err tcpkit_listener_addr(const tcpkit_listener *l, char *buf, size_t cap)
{
    if (buf && cap)
        buf[0] = '\0';
    if (!l || !buf)
        return tk_fail(TCPKIT_EINVAL, 0, "listener_addr: %s is NULL", l ? "buf" : "listener");
    return tk_sockname_to_user(l->fd, buf, cap, "listener_addr");
}

int tcpkit_listener_fd(const tcpkit_listener *l)
{
    return l ? l->fd : -1;
}

/* Errors accept() reports for a connection that died in the queue, or for
 * network trouble that concerns only that client (see accept(2), "Error
 * handling"): retrying is right, failing the server is not. */
static bool accept_error_is_transient(int e)
{
    switch (e) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM: /* firewall rules */
        return true;
    default:
        return false;
    }
}

/* Linux hands out a queued connection even when its client reset it before
 * accept(); such a socket has ECONNRESET pending. One getsockopt() keeps
 * that dead client from the caller, who gets the next live one instead. */
static bool accepted_dead(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0)
        return false;
    close(fd);
    return true;
}

/* Wraps an accepted socket; a TLS listener's conns handshake lazily, on
 * their first I/O, so a slow client never stalls accept. */
static tcpkit_err accepted(tcpkit_listener *l, int fd, const struct sockaddr_storage *peer,
                           socklen_t len, tcpkit_conn **out)
{
    tcpkit_err err = tk_conn_new(fd, (const struct sockaddr *)peer, len, l->io_timeout_ms, out);
    if (err != TCPKIT_OK || !l->tls)
        return err;
    err = tk_conn_attach_tls(*out, l->tls, true, NULL, "accept");
    if (err != TCPKIT_OK) {
        tcpkit_close(*out);
        *out = NULL;
    }
    return err;
}

tcpkit_err tk_accept_now(tcpkit_listener *l, tcpkit_conn **out)
{
    for (;;) {
        if (atomic_load(&l->shut))
            return tk_fail(TCPKIT_ESHUTDOWN, 0, "accept: listener shut down");
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 && accepted_dead(fd))
            continue;
        if (fd >= 0)
            return accepted(l, fd, &peer, len, out);
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return TCPKIT_ETIMEDOUT;
        if (!accept_error_is_transient(e))
            return tk_fail_errno(e, "accept");
    }
}

tcpkit_err tcpkit_accept(tcpkit_listener *l, tcpkit_conn **out, int timeout_ms)
{
    if (out)
        *out = NULL;
    if (!l || !out || timeout_ms < -1)
        return tk_fail(TCPKIT_EINVAL, 0, "accept: %s",
                       !l     ? "listener is NULL"
                       : !out ? "out is NULL"
                              : "timeout below -1");
    tk_deadline d = tk_deadline_make(timeout_ms);
    for (;;) {
        tcpkit_err err = tk_accept_now(l, out);
        if (err != TCPKIT_ETIMEDOUT)
            return err;
        err = tk_wait(l->fd, POLLIN, l->wake_fd, &d, "accept");
        if (err != TCPKIT_OK)
            return err;
    }
}

void tcpkit_listener_shutdown(tcpkit_listener *l)
{
    if (!l)
        return;
    /* Only async-signal-safe steps: a lock-free atomic store and write(2).
     * The eventfd is never read, so it stays readable and every present
     * and future poll() on it wakes. */
    int saved = errno;
    atomic_store(&l->shut, true);
    uint64_t one = 1;
    ssize_t r = write(l->wake_fd, &one, sizeof one);
    (void)r;
    errno = saved;
}

void tcpkit_listener_close(tcpkit_listener *l)
{
    if (!l)
        return;
    close(l->fd);
    close(l->wake_fd);
    tcpkit_tls_free(l->tls);
    free(l);
}
