/* SPDX-License-Identifier: MIT */
/* Internal declarations shared by the library's source files. Nothing here is
 * exported: the build uses -fvisibility=hidden and lib/libtcpkit.map. */
#ifndef TCPKIT_INTERNAL_H
#define TCPKIT_INTERNAL_H

#include "tcpkit.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#if defined(__GNUC__)
#define TK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TK_PRINTF(a, b)
#endif

struct tcpkit_opts {
    int connect_timeout_ms;
    int io_timeout_ms;
    tcpkit_family family;
    bool nodelay;
    int keepalive_idle_s;
    int backlog;
    bool reuseport;
    bool v6only;
    int fallback_delay_ms;
};

struct tcpkit_conn {
    int fd;
    int timeout_ms;
    /* Readable once the owning listener is shut down (tcpkit_serve sets it);
     * -1 otherwise. Receives poll it next to fd so shutdown wakes them. */
    int wake_fd;
    /* Read-ahead of tcpkit_recv_line: bytes [rstart, rend) of rbuf are
     * received but not yet handed to the caller. Allocated on first use. */
    char *rbuf;
    size_t rstart, rend, rcap;
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

struct tcpkit_listener {
    int fd;
    /* eventfd that becomes readable (and stays so: never read) on
     * shutdown; writing it is async-signal-safe. */
    int wake_fd;
    atomic_bool shut;
    /* Timeout of accepted conns; nodelay and keepalive need no copy here,
     * the kernel passes them on from the listening socket. */
    int io_timeout_ms;
};

/* ---- errors (lib/error.c) ---- */

/* Records a failure for tcpkit_last_error()/tcpkit_last_errno() and returns
 * code, so callers can write `return tk_fail(...)`. */
tcpkit_err tk_fail(tcpkit_err code, int os_errno, const char *fmt, ...) TK_PRINTF(3, 4);
/* Maps an OS errno to the tcpkit_err it stands for (ESYS when none fits). */
tcpkit_err tk_err_from_errno(int e);
/* Records a failure from errno e: "what: <text of e>". */
tcpkit_err tk_fail_errno(int e, const char *what);
/* Lower-case text for common socket errnos ("connection refused"). */
const char *tk_errno_text(int e);

/* ---- deadlines and waiting (lib/wait.c) ---- */

/* A deadline is armed lazily: the fast path (the syscall succeeds at once)
 * never reads the clock. */
typedef struct tk_deadline {
    int timeout_ms;
    bool armed;
    struct timespec end;
} tk_deadline;

static inline tk_deadline tk_deadline_make(int timeout_ms)
{
    tk_deadline d = {timeout_ms, false, {0, 0}};
    return d;
}

/* Milliseconds left (rounded up), -1 for no limit, 0 when passed. Arms the
 * deadline on first use. */
int tk_deadline_left(tk_deadline *d);

/* Waits until fd has `events` (POLLIN/POLLOUT), the deadline passes, or
 * wake_fd (if >= 0) becomes readable. EINTR is retried with the remaining
 * time. Returns TCPKIT_OK, TCPKIT_ETIMEDOUT, TCPKIT_ESHUTDOWN or TCPKIT_ESYS
 * (recorded with `op` as the message prefix). */
tcpkit_err tk_wait(int fd, short events, int wake_fd, tk_deadline *d, const char *op);

/* ---- sockets and addresses (lib/sockaddr.c) ---- */

/* Validates a port string: a number in [min_port, 65535] or a service
 * name. Numeric strings out of range give TCPKIT_EINVAL (recorded). */
tcpkit_err tk_check_port(const char *port, int min_port, const char *op);

/* Formats "1.2.3.4:80" or "[::1%lo]:80"; an IPv4-mapped IPv6 address is
 * shown as plain IPv4. with_port false gives the bare address. Returns
 * the length, or -1 if it does not fit in cap (buf then holds ""). */
int tk_format_addr(const struct sockaddr *sa, socklen_t len, bool with_port, char *buf, size_t cap);

/* Copies a formatted address into a caller's buffer with the contract's
 * rules (EINVAL when cap is too small, nothing written past cap). */
tcpkit_err tk_addr_to_user(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap,
                           const char *op);

/* Applies nodelay and keepalive to a socket (a connected one, or a
 * listening one whose accepted sockets inherit them). */
tcpkit_err tk_apply_conn_options(int fd, const struct tcpkit_opts *o);

/* Wraps a connected, non-blocking descriptor in a new conn. On ENOMEM the
 * descriptor is closed. */
tcpkit_err tk_conn_new(int fd, const struct sockaddr *peer, socklen_t peer_len, int timeout_ms,
                       tcpkit_conn **out);

/* DNS names are at most 253 bytes; longer strings are rejected before they
 * can reach a resolver. */
#define TK_HOST_MAX 253

/* Checks a non-empty host and copies it without IPv6 brackets ("[::1]" ->
 * "::1") into buf (TK_HOST_MAX + 1 bytes). */
tcpkit_err tk_clean_host(const char *host, char *buf, size_t cap, const char *op);

/* ---- resolution (lib/connect.c) ---- */

/* A resolved address, wherever it came from (getaddrinfo or a literal). */
struct tk_target {
    struct sockaddr_storage addr;
    socklen_t len;
};

/* getaddrinfo() for TCP, in resolver order, into a new array (free()).
 * host NULL with passive gives the wildcard addresses. Failures are
 * recorded as "<op> <label>: lookup: ...". */
tcpkit_err tk_resolve(const char *host, const char *port, tcpkit_family fam, bool passive,
                      const char *op, const char *label, struct tk_target **out, size_t *count);

/* The defaults, for NULL opts. */
const struct tcpkit_opts *tk_opts_or_default(const tcpkit_opts *o);

#endif /* TCPKIT_INTERNAL_H */
