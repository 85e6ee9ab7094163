/* SPDX-License-Identifier: MIT */
/* Adopting descriptors the caller already has: tcpkit_conn_from_fd and
 * tcpkit_listener_from_fd (socketpair, socket activation, supervisors).
 * Ownership passes only on success; on failure the descriptor is left
 * open with its flags as they were. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>

static int sockopt_int(int fd, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, name, &v, &len) < 0)
        return -1;
    return v;
}

/* The kinds the contract accepts: TCP over IPv4/IPv6 and Unix-domain
 * stream sockets, listening or not as the caller wants. */
static tcpkit_err check_socket(int fd, bool want_listening, const char *op, int *family)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: fd %d is not an open descriptor", op, fd);
    if (!S_ISSOCK(st.st_mode))
        return tk_fail(TCPKIT_EINVAL, 0, "%s: fd %d is not a socket", op, fd);
    if (sockopt_int(fd, SO_TYPE) != SOCK_STREAM)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: fd %d is not a stream socket", op, fd);
    *family = sockopt_int(fd, SO_DOMAIN);
    bool inet = *family == AF_INET || *family == AF_INET6;
    if (*family != AF_UNIX && !(inet && sockopt_int(fd, SO_PROTOCOL) == IPPROTO_TCP))
        return tk_fail(TCPKIT_EINVAL, 0, "%s: fd %d is neither TCP nor a Unix-domain socket", op,
                       fd);
    if ((sockopt_int(fd, SO_ACCEPTCONN) == 1) != want_listening)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: fd %d is %s", op, fd,
                       want_listening ? "not listening" : "a listening socket");
    return TCPKIT_OK;
}

struct saved_flags {
    int fl, fdfl;
};

static void restore_flags(int fd, const struct saved_flags *s)
{
    fcntl(fd, F_SETFL, s->fl);
    fcntl(fd, F_SETFD, s->fdfl);
}

/* Non-blocking (the library's waits are poll()s) and close-on-exec (as
 * every descriptor the library holds). */
static tcpkit_err take_flags(int fd, struct saved_flags *s, const char *op)
{
    s->fl = fcntl(fd, F_GETFL);
    s->fdfl = fcntl(fd, F_GETFD);
    if (s->fl < 0 || s->fdfl < 0)
        return tk_fail_errno(errno, op);
    if (fcntl(fd, F_SETFL, s->fl | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, s->fdfl | FD_CLOEXEC) < 0) {
        int e = errno;
        restore_flags(fd, s);
        return tk_fail_errno(e, op);
    }
    return TCPKIT_OK;
}

/* nodelay and keepalive are TCP options: a Unix-domain socket gets none. */
static struct tcpkit_opts options_for(const tcpkit_opts *opts, int family)
{
    struct tcpkit_opts o = *tk_opts_or_default(opts);
    if (family == AF_UNIX) {
        o.nodelay = false;
        o.keepalive_idle_s = 0;
    }
    return o;
}

tcpkit_err tcpkit_conn_from_fd(tcpkit_conn **out, int fd, const tcpkit_opts *opts)
{
    const char *op = "conn_from_fd";
    if (out)
        *out = NULL;
    if (!out)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: out is NULL", op);
    int family;
    tcpkit_err err = check_socket(fd, false, op, &family);
    if (err != TCPKIT_OK)
        return err;
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: fd %d is not connected", op, fd);
    struct tcpkit_opts o = options_for(opts, family);
    struct saved_flags saved;
    if ((err = take_flags(fd, &saved, op)) != TCPKIT_OK)
        return err;
    err = tk_apply_conn_options(fd, &o);
    if (err == TCPKIT_OK)
        err = tk_conn_alloc(fd, (struct sockaddr *)&peer, len, o.io_timeout_ms, out);
    if (err != TCPKIT_OK)
        restore_flags(fd, &saved);
    return err;
}

tcpkit_err tcpkit_listener_from_fd(tcpkit_listener **out, int fd, const tcpkit_opts *opts)
{
    const char *op = "listener_from_fd";
    if (out)
        *out = NULL;
    if (!out)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: out is NULL", op);
    int family;
    tcpkit_err err = check_socket(fd, true, op, &family);
    if (err != TCPKIT_OK)
        return err;
    struct tcpkit_opts o = options_for(opts, family);
    struct saved_flags saved;
    if ((err = take_flags(fd, &saved, op)) != TCPKIT_OK)
        return err;
    if ((err = tk_listener_wrap(fd, &o, out)) != TCPKIT_OK)
        restore_flags(fd, &saved);
    return err;
}
