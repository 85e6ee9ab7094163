/* SPDX-License-Identifier: MIT */
/* Internal declarations shared by the library's source files. Nothing here is
 * exported: the build uses -fvisibility=hidden and lib/libtcpkit.map. */
#ifndef TCPKIT_INTERNAL_H
#define TCPKIT_INTERNAL_H

#include "tcpkit.h"
#include "tls.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>
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
    /* tcpkit_serve_with (1.1) */
    tcpkit_serve_mode serve_mode;
    int max_conns;     /* 0 = the mode's default */
    int serve_threads; /* 0 = one per online CPU */
    size_t stack_size; /* 0 = the mode's default */
    /* TLS configuration (a reference held by the opts), NULL for plain TCP. */
    tcpkit_tls *tls;
    /* tcpkit_opts_set_local_addr: local_len 0 = unset. Port 0 = any port,
     * chosen at connect time (IP_BIND_ADDRESS_NO_PORT). */
    struct sockaddr_storage local_addr;
    socklen_t local_len;
};

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
    /* TLS state, NULL for plain TCP; tk_conn_read/tk_conn_write go through
     * it when set. */
    struct tk_tls_conn *tls;
    /* tcpkit_conn_set_deadline: an armed deadline (timeout -1 = none) that
     * tk_conn_wait applies on top of each call's own. */
    tk_deadline deadline;
    /* Set by tcpkit_conn_cancel (async-signal-safe: a lock-free store). */
    atomic_bool canceled;
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
    /* TLS configuration of accepted conns (a reference), NULL for plain. */
    tcpkit_tls *tls;
};

/* Writes v to an optional size_t out-parameter; returns TCPKIT_OK so a
 * success path can end with `return tk_set_size(p, n)`. */
static inline tcpkit_err tk_set_size(size_t *p, size_t v)
{
    if (p)
        *p = v;
    return TCPKIT_OK;
}

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

/* The record behind tcpkit_last_error(): one per thread, one per fiber. */
#define TK_ERRMSG_MAX 1024
struct tk_errrec {
    int os_errno;
    char msg[TK_ERRMSG_MAX];
};
/* Makes r the calling thread's current record (NULL: the thread's own); the
 * fiber switch points it at the running fiber's. */
void tk_error_use(struct tk_errrec *r);

/* ---- options (lib/opts.c) ---- */

/* The defaults, for NULL opts. */
const struct tcpkit_opts *tk_opts_or_default(const tcpkit_opts *o);

/* Limits of tcpkit_opts_set_stack_size(). */
#define TK_STACK_MIN (16u * 1024u)
#define TK_STACK_MAX (64u * 1024u * 1024u)

/* The options of tcpkit_serve_with, with the serve mode's defaults filled
 * in (max_conns, stack_size). */
struct tcpkit_opts tk_serve_opts(const tcpkit_opts *opts);

/* ---- deadlines and waiting (lib/wait.c) ---- */

/* Milliseconds left (rounded up), -1 for no limit, 0 when passed. Arms the
 * deadline on first use. */
int tk_deadline_left(tk_deadline *d);

/* Waits until fd has `events` (POLLIN/POLLOUT), the deadline passes, or
 * wake_fd (if >= 0) becomes readable. EINTR is retried with the remaining
 * time. Returns TCPKIT_OK, TCPKIT_ETIMEDOUT, TCPKIT_ESHUTDOWN or TCPKIT_ESYS
 * (recorded with `op` as the message prefix). */
tcpkit_err tk_wait(int fd, short events, int wake_fd, tk_deadline *d, const char *op);

/* poll() for the library: on a fiber, parks only the fiber (lib/loop.c).
 * Same return convention as poll(). */
int tk_poll(struct pollfd *p, nfds_t n, int timeout_ms);

/* fd is about to be closed: the fiber loop (if any) forgets it. */
void tk_wait_forget(int fd);

/* The shutdown eventfd of the server whose handler this thread (or its
 * fibers) runs, -1 elsewhere: what tcpkit_sleep also waits on. */
void tk_serve_wake_fd_set(int fd);

/* The one place a conn's I/O calls wait: for `events` on c's socket, woken
 * by the owning listener's shutdown in either direction, within the
 * earlier of d and the conn's deadline; TCPKIT_ECANCELED once the conn is
 * canceled. */
tcpkit_err tk_conn_wait(tcpkit_conn *c, short events, tk_deadline *d, const char *op);

/* ---- names, ports and literals (lib/resolve.c) ---- */

/* DNS names are at most 253 bytes; longer strings are rejected before they
 * can reach a resolver. */
#define TK_HOST_MAX 253
/* Room for a "[host]:port" label built from a cleaned host. */
#define TK_LABEL_MAX (TK_HOST_MAX + 48)

/* A resolved address, wherever it came from (getaddrinfo or a literal). */
struct tk_target {
    struct sockaddr_storage addr;
    socklen_t len;
};

/* THE port rule (DESIGN.md section 3, "Ports"), for every call that takes
 * a port string (connect, listen, the 1.1 local-address setter): 1-5
 * ASCII digits, decimal, in [min_port, 65535]; or a service name (a
 * letter, then letters, digits and single inner hyphens, at most 15
 * characters). Anything else is TCPKIT_EINVAL (recorded) and must not be
 * handed to getaddrinfo, which skips blanks and truncates big numbers. */
tcpkit_err tk_check_port(const char *port, int min_port, const char *op);

/* Checks a non-empty host and copies it without IPv6 brackets ("[::1]" ->
 * "::1") into buf (TK_HOST_MAX + 1 bytes). */
tcpkit_err tk_clean_host(const char *host, char *buf, size_t cap, const char *op);

/* "host:port", "[v6]:port", or "*:port" for a NULL host: how messages name
 * what a call was asked for. */
void tk_format_label(char *buf, size_t cap, const char *host, const char *port);

/* Fills t from a numeric host of an allowed family and a numeric port;
 * false when either is not numeric (then the resolver decides). */
bool tk_parse_numeric(const char *host, const char *port, tcpkit_family fam, struct tk_target *t);

/* True for a literal of the family the options exclude: it must not reach
 * the resolver, which could take it for a name and send a query. */
bool tk_is_excluded_literal(const char *host, tcpkit_family fam);

/* getaddrinfo() for TCP, in resolver order, into a new array (free()).
 * host NULL with passive gives the wildcard addresses. Failures are
 * recorded as "<op> <label>: lookup: ...". */
tcpkit_err tk_resolve(const char *host, const char *port, tcpkit_family fam, bool passive,
                      const char *op, const char *label, struct tk_target **out, size_t *count);

/* ---- addresses and socket options (lib/sockaddr.c) ---- */

/* Formats "1.2.3.4:80" or "[::1%lo]:80"; an IPv4-mapped IPv6 address is
 * shown as plain IPv4. with_port false gives the bare address. Returns
 * the length, or -1 if it does not fit in cap (buf then holds ""). */
int tk_format_addr(const struct sockaddr *sa, socklen_t len, bool with_port, char *buf, size_t cap);

/* Copies a formatted address into a caller's buffer with the contract's
 * rules (EINVAL when cap is too small, nothing written past cap). */
tcpkit_err tk_addr_to_user(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap,
                           const char *op);

/* tk_addr_to_user() of the socket's own address (getsockname). */
tcpkit_err tk_sockname_to_user(int fd, char *buf, size_t cap, const char *op);

/* Applies nodelay and keepalive to a socket (a connected one, or a
 * listening one whose accepted sockets inherit them). */
tcpkit_err tk_apply_conn_options(int fd, const struct tcpkit_opts *o);

/* ---- the conn object (lib/conn.c) ---- */

/* Wraps a connected, non-blocking descriptor in a new conn. On ENOMEM the
 * descriptor is closed. */
tcpkit_err tk_conn_new(int fd, const struct sockaddr *peer, socklen_t peer_len, int timeout_ms,
                       tcpkit_conn **out);
/* The same, but on failure the descriptor stays open (adoption). */
tcpkit_err tk_conn_alloc(int fd, const struct sockaddr *peer, socklen_t peer_len, int timeout_ms,
                         tcpkit_conn **out);

/* Entry check of every I/O call: TCPKIT_ECANCELED (recorded) once
 * tcpkit_conn_cancel() was called, else TCPKIT_OK. */
tcpkit_err tk_conn_check(tcpkit_conn *c, const char *op);
/* Passes a syscall result through; a failure or end of stream on a
 * canceled conn (its socket is shut down) becomes -1 with ECANCELED. */
ssize_t tk_conn_settle(tcpkit_conn *c, ssize_t r);
/* False when bytes must pass through tk_conn_write (TLS), so the plain
 * sendmsg/sendfile fast paths of send.c do not apply. */
bool tk_conn_is_plain(const tcpkit_conn *c);

/* Every byte a conn moves goes through these two: bytes moved (> 0), 0 at
 * end of stream (read only), or -1 with errno set. On EAGAIN, *wait_for
 * names the readiness to wait for with tk_conn_wait (POLLIN or POLLOUT; a
 * TLS write can need POLLIN). Never waits. */
ssize_t tk_conn_read(tcpkit_conn *c, void *buf, size_t cap, short *wait_for);
ssize_t tk_conn_write(tcpkit_conn *c, const void *buf, size_t len, short *wait_for);

/* ---- accepting and serving (lib/listen.c, lib/serve.c, lib/loop.c) ---- */

/* One accept without waiting: TCPKIT_OK with a new conn, TCPKIT_ETIMEDOUT
 * (not recorded: it is the normal end of a batch) when no client is
 * queued, TCPKIT_ESHUTDOWN, or the recorded error. */
tcpkit_err tk_accept_now(tcpkit_listener *l, tcpkit_conn **out);
/* Accept errors that mean the listener itself is unusable. */
bool tk_accept_fatal(tcpkit_err err);
/* Starts a thread with the asynchronous signals blocked, so that the
 * program's own threads keep receiving them; stack_size 0 = the default.
 * Returns 0 or an errno. */
int tk_thread_start(pthread_t *t, size_t stack_size, void *(*fn)(void *), void *arg);
/* The thread-per-connection server (1.0's tcpkit_serve). */
tcpkit_err tk_serve_threads(tcpkit_listener *l, tcpkit_handler fn, void *arg, int max_conns,
                            size_t stack_size);
/* The fiber server; o has its defaults resolved. */
tcpkit_err tk_serve_fibers(tcpkit_listener *l, tcpkit_handler fn, void *arg,
                           const struct tcpkit_opts *o);

/* ---- TLS on a conn (lib/conn_tls.c) ---- */

/* Gives c a TLS state from t (server: handshake on first I/O). */
tcpkit_err tk_conn_attach_tls(tcpkit_conn *c, tcpkit_tls *t, bool server, const char *name,
                              const char *op);
/* Runs c's pending handshake to completion within d, waiting in
 * tk_conn_wait. TCPKIT_OK at once for a plain conn or a done handshake. */
tcpkit_err tk_conn_handshake(tcpkit_conn *c, tk_deadline *d, const char *op);
/* close_notify (after finishing a pending handshake), then SHUT_WR. */
tcpkit_err tk_conn_tls_close_write(tcpkit_conn *c);

/* Whether a failed tk_conn_read/tk_conn_write errno e is a TLS failure
 * recorded in c->tls (report it with tk_tls_refail). */
static inline bool tk_conn_tls_failed(const tcpkit_conn *c, int e)
{
    return c->tls && e == TK_ETLS_ERRNO;
}
/* ---- receiving and sending (lib/io.c, lib/send.c) ---- */

/* Receives exactly len bytes (buffered ones first) within d. *got holds
 * what arrived on every outcome; end of stream is TCPKIT_EOF, not
 * recorded (the caller words the message). */
tcpkit_err tk_recv_exact(tcpkit_conn *c, void *buf, size_t len, size_t *got, tk_deadline *d,
                         const char *op);

/* Receives exactly len bytes (len <= 4096) through the read-ahead buffer,
 * which takes whatever else the kernel has too (a message body). At end
 * of stream (TCPKIT_EOF, unrecorded) the bytes that did arrive are handed
 * over in buf and *got; on any other failure nothing is consumed (they
 * stay buffered for the next call) and *got is 0. */
tcpkit_err tk_recv_ahead(tcpkit_conn *c, void *buf, size_t len, size_t *got, tk_deadline *d,
                         const char *op);

struct iovec;
/* tcpkit_sendv with `op` naming the call in messages (send_msg uses it). */
tcpkit_err tk_sendv(tcpkit_conn *c, const struct iovec *iov, int iovcnt, size_t *sent,
                    const char *op);

/* ---- adoption (lib/adopt.c) ---- */

/* Wraps a listening descriptor (already non-blocking) in a new listener
 * with the conn options of o. On failure fd stays open. */
tcpkit_err tk_listener_wrap(int fd, const struct tcpkit_opts *o, tcpkit_listener **out);

#endif /* TCPKIT_INTERNAL_H */
