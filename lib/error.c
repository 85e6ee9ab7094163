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

const char *tcpkit_strerror(tcpkit_err e)
{
    switch (e) {
    case TCPKIT_OK:
        return "success";
    case TCPKIT_EOF:
        return "end of stream";
    case TCPKIT_EINVAL:
        return "invalid argument";
    case TCPKIT_ENOMEM:
        return "out of memory";
    case TCPKIT_ERESOLVE:
        return "name resolution failed";
    case TCPKIT_EREFUSED:
        return "connection refused";
    case TCPKIT_EUNREACH:
        return "network unreachable";
    case TCPKIT_ETIMEDOUT:
        return "timed out";
    case TCPKIT_ERESET:
        return "connection reset by peer";
    case TCPKIT_EADDRINUSE:
        return "address already in use";
    case TCPKIT_EACCES:
        return "permission denied";
    case TCPKIT_ETOOBIG:
        return "limit reached";
    case TCPKIT_EMFILE:
        return "too many open files";
    case TCPKIT_ESHUTDOWN:
        return "listener shut down";
    case TCPKIT_ESYS:
        return "system error";
    case TCPKIT_ETLS:
        return "TLS failure";
    case TCPKIT_ECERT:
        return "certificate not accepted";
    case TCPKIT_ENOTSUP:
        return "not supported";
    case TCPKIT_ECANCELED:
        return "canceled";
    }
    return "unknown error";
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
    default:
        return strerror(e);
    }
}

tcpkit_err tk_fail_errno(int e, const char *what)
{
    return tk_fail(tk_err_from_errno(e), e, "%s: %s", what, tk_errno_text(e));
}

const char *tcpkit_version(void)
{
    return TCPKIT_BUILD_VERSION;
}
