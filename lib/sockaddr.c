/* SPDX-License-Identifier: MIT */
/* Address formatting and per-connection socket options. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* The kernel rejects larger TCP_KEEPIDLE values; the setter accepts any
 * idle time >= 0 and we clamp here instead of failing at connect time. */
#define TK_MAX_KEEPIDLE 32767

static bool is_v4_mapped(const struct sockaddr *sa)
{
    if (sa->sa_family != AF_INET6)
        return false;
    return IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
}

/* "unix:PATH", "unix:" for an unnamed socket (a socketpair, a client
 * that never bound) and "unix:@NAME" for Linux's abstract names. */
static int format_unix(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
    const struct sockaddr_un *un = (const void *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = (size_t)len > off ? (size_t)len - off : 0;
    if (n > sizeof un->sun_path)
        n = sizeof un->sun_path;
    const char *path = un->sun_path;
    const char *prefix = "unix:";
    if (n > 0 && path[0] == '\0') {
        prefix = "unix:@";
        path++;
        n--;
    }
    n = strnlen(path, n);
    int r = snprintf(buf, cap, "%s%.*s", prefix, (int)n, path);
    if (r < 0 || (size_t)r >= cap) {
        if (cap)
            buf[0] = '\0';
        return -1;
    }
    return r;
}

int tk_format_addr(const struct sockaddr *sa, socklen_t len, bool with_port, char *buf, size_t cap)
{
    if (sa->sa_family == AF_UNIX)
        return format_unix(sa, len, buf, cap);

    char host[NI_MAXHOST];
    int port;
    bool v6 = false;

    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        port = ntohs(in6->sin6_port);
        if (is_v4_mapped(sa)) {
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
        } else {
            /* getnameinfo adds "%scope" for link-local addresses; with
             * NI_NUMERICHOST it never queries DNS. */
            v6 = true;
            if (getnameinfo(sa, len, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        }
    } else {
        if (cap)
            buf[0] = '\0';
        return -1;
    }

    int n;
    if (!with_port)
        n = snprintf(buf, cap, "%s", host);
    else
        n = snprintf(buf, cap, v6 ? "[%s]:%d" : "%s:%d", host, port);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return -1;
    }
    return n;
}

tcpkit_err tk_addr_to_user(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap,
                           const char *op)
{
    if (tk_format_addr(sa, len, true, buf, cap) < 0)
        return tk_fail(TCPKIT_EINVAL, 0,
                       "%s: buffer of %zu bytes too small (use TCPKIT_ADDRSTRLEN)", op, cap);
    return TCPKIT_OK;
}

tcpkit_err tk_sockname_to_user(int fd, char *buf, size_t cap, const char *op)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return tk_fail(tk_err_from_errno(errno), errno, "%s: getsockname: %s", op,
                       tk_errno_text(errno));
    return tk_addr_to_user((const struct sockaddr *)&ss, len, buf, cap, op);
}

tcpkit_err tk_apply_conn_options(int fd, const struct tcpkit_opts *o)
{
    /* Fresh sockets have Nagle on and keepalive off: only "on" costs a
     * syscall. */
    int on = 1;
    if (o->nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0)
        return tk_fail_errno(errno, "setsockopt TCP_NODELAY");
    if (o->keepalive_idle_s <= 0)
        return TCPKIT_OK;
    int idle = o->keepalive_idle_s > TK_MAX_KEEPIDLE ? TK_MAX_KEEPIDLE : o->keepalive_idle_s;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0)
        return tk_fail_errno(errno, "setsockopt SO_KEEPALIVE");
    if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0)
        return tk_fail_errno(errno, "setsockopt TCP_KEEPIDLE");
    return TCPKIT_OK;
}
