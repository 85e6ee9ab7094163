/* SPDX-License-Identifier: MIT */
/* Error codes, their names, and the thread-local record of the last failure. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Long enough for a connect failure that lists several attempts; longer
 * messages are truncated, never overflowed. */
#define TK_ERRMSG_MAX 1024

static _Thread_local char last_msg[TK_ERRMSG_MAX];
static _Thread_local int last_errno;

/* Indexed by tcpkit_err: the values are ABI and contiguous from 0. */
static const char *const err_texts[] = {
    [TCPKIT_OK] = "success",
    [TCPKIT_EOF] = "end of stream",
    [TCPKIT_EINVAL] = "invalid argument",
    [TCPKIT_ENOMEM] = "out of memory",
    [TCPKIT_ERESOLVE] = "name resolution failed",
    [TCPKIT_EREFUSED] = "connection refused",
    [TCPKIT_EUNREACH] = "network unreachable",
    [TCPKIT_ETIMEDOUT] = "timed out",
    [TCPKIT_ERESET] = "connection reset by peer",
    [TCPKIT_EADDRINUSE] = "address already in use",
    [TCPKIT_EACCES] = "permission denied",
    [TCPKIT_ETOOBIG] = "limit reached",
    [TCPKIT_EMFILE] = "too many open files",
    [TCPKIT_ESHUTDOWN] = "listener shut down",
    [TCPKIT_ESYS] = "system error",
    [TCPKIT_ETLS] = "TLS failure",
    [TCPKIT_ECERT] = "certificate not accepted",
    [TCPKIT_ENOTSUP] = "not supported",
    [TCPKIT_ECANCELED] = "canceled",
};

const char *tcpkit_strerror(tcpkit_err e)
{
    /* Compare as unsigned: a negative value from a bad cast is unknown too. */
    if ((unsigned)e >= sizeof err_texts / sizeof err_texts[0])
        return "unknown error";
    return err_texts[e];
}

const char *tcpkit_last_error(void)
{
    return last_msg;
}

int tcpkit_last_errno(void)
{
    return last_errno;
}

tcpkit_err tk_fail(tcpkit_err code, int os_errno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    last_errno = os_errno;
    return code;
}

tcpkit_err tk_err_from_errno(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return TCPKIT_EREFUSED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
        return TCPKIT_EUNREACH;
    case ETIMEDOUT:
        return TCPKIT_ETIMEDOUT;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ENOTCONN:
        return TCPKIT_ERESET;
    case EADDRINUSE:
        return TCPKIT_EADDRINUSE;
    case EACCES:
    case EPERM:
        return TCPKIT_EACCES;
    case EMFILE:
    case ENFILE:
        return TCPKIT_EMFILE;
    case ENOMEM:
    case ENOBUFS:
        return TCPKIT_ENOMEM;
    case ECANCELED: /* the conn I/O seam's way of saying tcpkit_conn_cancel() */
        return TCPKIT_ECANCELED;
    default:
        return TCPKIT_ESYS;
    }
}

const char *tk_errno_text(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return "connection refused";
    case ENETUNREACH:
        return "network unreachable";
    case EHOSTUNREACH:
        return "host unreachable";
    case ETIMEDOUT:
        return "timed out";
    case ECONNRESET:
        return "connection reset by peer";
    case EPIPE:
        return "broken pipe (peer closed)";
    case EADDRINUSE:
        return "address already in use";
    case EACCES:
        return "permission denied";
    case EMFILE:
        return "too many open files";
    case ENFILE:
        return "too many open files in system";
    case ECANCELED:
        return "canceled by tcpkit_conn_cancel";
    default:
        return strerror(e);
    }
}

tcpkit_err tk_fail_errno(int e, const char *what)
{
    return tk_fail(tk_err_from_errno(e), e, "%s: %s", what, tk_errno_text(e));
}
