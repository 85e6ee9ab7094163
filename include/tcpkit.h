/* SPDX-License-Identifier: MIT */
/**
 * @file tcpkit.h
 * @brief libtcpkit: TCP for C programs, with Go-quality semantics.
 *
 * libtcpkit wraps the classic TCP steps (resolve, connect, bind, listen,
 * accept, send everything, receive until end of stream, close) behind three
 * opaque handles:
 *
 * - ::tcpkit_conn, a connected byte stream;
 * - ::tcpkit_listener, a bound, listening socket;
 * - ::tcpkit_opts, an options object with setters.
 *
 * **Conventions shared by every function.**
 *
 * - Every function that can fail returns a ::tcpkit_err, where 0
 *   (#TCPKIT_OK) is success. Results come back through out-parameters,
 *   which are always written when the pointer is non-NULL, also on the
 *   earliest failure (with 0 or NULL).
 * - On failure, tcpkit_last_error() holds a detailed message and
 *   tcpkit_last_errno() the OS error behind it, for the calling thread.
 * - Transfer calls report the bytes they moved through a `size_t *`
 *   out-parameter, also when they fail. That pointer may be NULL.
 * - Timeouts are in milliseconds: -1 waits without limit, 0 tries once
 *   without waiting (#TCPKIT_ETIMEDOUT if nothing was ready). A timeout
 *   bounds the whole call, including retries after `EINTR`. Since 1.1 a
 *   connection may also have a deadline (tcpkit_conn_set_deadline()) that
 *   bounds every call on it: whichever ends first gives #TCPKIT_ETIMEDOUT.
 * - The library never changes a signal disposition (every send uses
 *   `MSG_NOSIGNAL`, so a closed peer is #TCPKIT_ERESET, never `SIGPIPE`),
 *   opens every descriptor with close-on-exec, never prints, never exits
 *   and keeps no global mutable state besides the per-thread error record.
 *
 * **Threads.** Different handles are independent and may be used from
 * different threads at once. On one connection, one thread may send while
 * another receives; two concurrent senders, or two concurrent receivers, on
 * one connection are a caller bug. tcpkit_listener_shutdown() may be called
 * from any thread and from a signal handler.
 */
#ifndef TCPKIT_H
#define TCPKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h> /* struct iovec, for tcpkit_sendv() (@since 1.1) */

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Marks a function exported from the shared library. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define TCPKIT_EXPORT __attribute__((visibility("default")))
#else
#define TCPKIT_EXPORT
#endif

/** @brief Major version of the headers (incompatible API changes; never for 1.x). */
#define TCPKIT_VERSION_MAJOR 1
/** @brief Minor version of the headers (API additions). */
#define TCPKIT_VERSION_MINOR 1
/** @brief Patch version of the headers (fixes only). */
#define TCPKIT_VERSION_PATCH 0
/** @brief The headers' version as a string, "MAJOR.MINOR.PATCH". */
#define TCPKIT_VERSION_STRING "1.1.0"

/**
 * @brief Buffer size that holds any address string the library writes.
 *
 * 64 bytes: enough for `[ipv6%scope]:65535` plus the terminating NUL.
 */
#define TCPKIT_ADDRSTRLEN 64

/**
 * @brief Result of every function that can fail.
 *
 * The values are part of the ABI: they never change, and new ones are only
 * appended. tcpkit_strerror() names each one.
 */
typedef enum tcpkit_err {
    TCPKIT_OK = 0,         /**< Success. */
    TCPKIT_EOF = 1,        /**< The peer closed its sending side (orderly end of stream). */
    TCPKIT_EINVAL = 2,     /**< Bad argument or misuse (NULL handle, bad port, zero capacity). */
    TCPKIT_ENOMEM = 3,     /**< Out of memory. */
    TCPKIT_ERESOLVE = 4,   /**< Name or service lookup failed. */
    TCPKIT_EREFUSED = 5,   /**< Connection refused. */
    TCPKIT_EUNREACH = 6,   /**< Network or host unreachable. */
    TCPKIT_ETIMEDOUT = 7,  /**< The call's timeout passed. */
    TCPKIT_ERESET = 8,     /**< The peer reset the connection (`ECONNRESET`, `EPIPE`). */
    TCPKIT_EADDRINUSE = 9, /**< Address already in use. */
    TCPKIT_EACCES = 10,    /**< Permission denied (e.g. a port below 1024). */
    TCPKIT_ETOOBIG = 11,   /**< A bounded read reached its limit. */
    TCPKIT_EMFILE = 12,    /**< Out of file descriptors (process or system). */
    TCPKIT_ESHUTDOWN = 13, /**< The listener was shut down. */
    TCPKIT_ESYS = 14,      /**< Any other OS error; tcpkit_last_errno() says which. */
    /** TLS handshake or protocol failure: an alert, no common version or
     *  cipher, a bad record, or a peer that closed without `close_notify`
     *  (@since 1.1). */
    TCPKIT_ETLS = 15,
    /** The peer's certificate was not accepted (unknown CA, self-signed,
     *  expired, name or pin mismatch, client certificate missing when
     *  required); tcpkit_last_error() names the exact reason (@since 1.1). */
    TCPKIT_ECERT = 16,
    /** Not available in this build or on this kernel, e.g. TLS in a build
     *  without OpenSSL (@since 1.1). */
    TCPKIT_ENOTSUP = 17,
    /** tcpkit_conn_cancel() was called on the connection (@since 1.1). */
    TCPKIT_ECANCELED = 18
} tcpkit_err;

/** @brief Address family restriction for name resolution. */
typedef enum tcpkit_family {
    TCPKIT_FAMILY_ANY = 0,  /**< IPv4 and IPv6 (the default). */
    TCPKIT_FAMILY_IPV4 = 1, /**< IPv4 only. */
    TCPKIT_FAMILY_IPV6 = 2  /**< IPv6 only. */
} tcpkit_family;

/**
 * @brief How tcpkit_serve_with() runs its handlers.
 * @since 1.1
 */
typedef enum tcpkit_serve_mode {
    /** Each handler is a fiber on a few event-loop threads (the default). */
    TCPKIT_SERVE_FIBERS = 0,
    /** Each handler has its own thread, as in tcpkit_serve(). */
    TCPKIT_SERVE_THREADS = 1
} tcpkit_serve_mode;

/** @brief A connected TCP stream (opaque). */
typedef struct tcpkit_conn tcpkit_conn;
/** @brief A bound, listening TCP socket (opaque). */
typedef struct tcpkit_listener tcpkit_listener;
/** @brief Options for connecting and listening (opaque). */
typedef struct tcpkit_opts tcpkit_opts;
/**
 * @brief A TLS configuration (opaque, reference-counted, thread-safe).
 *
 * Shared by any number of options, connections and listeners at once.
 * @since 1.1
 */
typedef struct tcpkit_tls tcpkit_tls;

/** @brief Client certificates a TLS server asks for (@since 1.1). */
typedef enum tcpkit_tls_client_auth {
    TCPKIT_TLS_CLIENT_AUTH_NONE = 0,     /**< Do not ask (the default). */
    TCPKIT_TLS_CLIENT_AUTH_OPTIONAL = 1, /**< Ask; verify one when given. */
    TCPKIT_TLS_CLIENT_AUTH_REQUIRE = 2   /**< Refuse clients without a valid one. */
} tcpkit_tls_client_auth;

/** @brief Lowest TLS protocol version to negotiate (@since 1.1). */
typedef enum tcpkit_tls_version {
    TCPKIT_TLS_1_2 = 12, /**< TLS 1.2 (the default minimum). */
    TCPKIT_TLS_1_3 = 13  /**< TLS 1.3. */
} tcpkit_tls_version;

/** @brief What tcpkit_conn_tls_info() reports (@since 1.1). */
typedef enum tcpkit_tls_info {
    TCPKIT_TLS_INFO_VERSION = 0,      /**< Protocol version, e.g. "TLSv1.3". */
    TCPKIT_TLS_INFO_CIPHER = 1,       /**< Cipher suite name. */
    TCPKIT_TLS_INFO_ALPN = 2,         /**< Agreed ALPN protocol, "" when none. */
    TCPKIT_TLS_INFO_PEER_SUBJECT = 3, /**< Peer certificate subject (RFC 2253), "" when none. */
    TCPKIT_TLS_INFO_SERVER_NAME = 4   /**< SNI sent (client) or received (server), "" when none. */
} tcpkit_tls_info;

/**
 * @brief A connection handler run by tcpkit_serve().
 *
 * @param conn the accepted connection. It is owned by tcpkit_serve(), which
 *             closes it when the handler returns: the handler must not
 *             close or free it, and must not keep it after returning.
 * @param arg  the `arg` given to tcpkit_serve().
 */
typedef void (*tcpkit_handler)(tcpkit_conn *conn, void *arg);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * @brief A short description of an error code, e.g. "connection refused".
 *
 * @param e any value; unknown values give "unknown error".
 * @return a static string; never NULL, never to be freed.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT const char *tcpkit_strerror(tcpkit_err e);

/**
 * @brief The detailed message of the last failed call in this thread.
 *
 * For example `connect localhost:9: ::1 port 9: connection refused;
 * 127.0.0.1 port 9: connection refused`. Successful calls leave it alone,
 * as `errno` does.
 *
 * @return a thread-local string, valid until the next libtcpkit call in
 *         this thread; the empty string when nothing failed yet. Never NULL;
 *         never to be freed.
 * @par Thread safety: safe (each thread has its own record).
 * @since 1.0
 */
TCPKIT_EXPORT const char *tcpkit_last_error(void);

/**
 * @brief The OS `errno` behind the last failure in this thread.
 *
 * @return the errno value, or 0 when the last failure had no OS error
 *         behind it (bad argument, name lookup failure, end of stream).
 * @par Thread safety: safe (each thread has its own record).
 * @since 1.0
 */
TCPKIT_EXPORT int tcpkit_last_errno(void);

/* ------------------------------------------------------------------------ */
/* Library                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * @brief The version of the library actually running, e.g. "1.1.0".
 *
 * Compare with #TCPKIT_VERSION_STRING to detect a header/library mismatch.
 *
 * @return a static string; never NULL.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT const char *tcpkit_version(void);

/**
 * @brief Frees memory the library handed out (the data of tcpkit_recv_all()).
 *
 * @param p the pointer, or NULL (nothing happens).
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT void tcpkit_free(void *p);

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * @brief Creates an options object holding the defaults.
 *
 * Every function that takes options accepts NULL for "all defaults". An
 * options object is only read by the calls it is given to: it may be freed
 * or changed right after them, and one object may be shared by calls in
 * several threads as long as no thread changes it meanwhile.
 *
 * Defaults: connect timeout -1, I/O timeout -1, family
 * #TCPKIT_FAMILY_ANY, nodelay on, keepalive off, backlog `SOMAXCONN`,
 * reuseport off, v6only off, fallback delay 250 ms.
 *
 * @param[out] out receives the new object (NULL on failure); free it with
 *                 tcpkit_opts_free().
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p out is NULL; #TCPKIT_ENOMEM.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_new(tcpkit_opts **out);

/**
 * @brief Frees an options object.
 *
 * @param o the object, or NULL (nothing happens).
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT void tcpkit_opts_free(tcpkit_opts *o);

/**
 * @brief Bounds the whole of tcpkit_connect(), every address tried.
 *
 * Name lookup itself (`getaddrinfo`) cannot be interrupted: a slow resolver
 * can make tcpkit_connect() take longer than this timeout, after which no
 * connection attempt is started.
 *
 * @param o  the options object.
 * @param ms milliseconds, -1 for no limit (the default), 0 for a single
 *           attempt that does not wait.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p ms < -1.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_connect_timeout(tcpkit_opts *o, int ms);

/**
 * @brief Initial per-call timeout of the connections made with these options.
 *
 * Applies to connections returned by tcpkit_connect() and to connections
 * accepted from a listener created with these options. Each blocking call
 * on such a connection is bounded by this timeout; change it later with
 * tcpkit_conn_set_timeout().
 *
 * @param o  the options object.
 * @param ms milliseconds, -1 for no limit (the default).
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p ms < -1.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_io_timeout(tcpkit_opts *o, int ms);

/**
 * @brief Restricts name resolution to one address family.
 *
 * @param o the options object.
 * @param f #TCPKIT_FAMILY_ANY (the default), #TCPKIT_FAMILY_IPV4 or
 *          #TCPKIT_FAMILY_IPV6.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p f is unknown.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_family(tcpkit_opts *o, tcpkit_family f);

/**
 * @brief Sets `TCP_NODELAY` (no Nagle delay) on connections; on by default.
 *
 * On by default, as in Go: small writes go out at once. Applies to
 * connections from tcpkit_connect() and to those accepted from a listener.
 *
 * @param o  the options object.
 * @param on true to disable Nagle's algorithm.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_nodelay(tcpkit_opts *o, bool on);

/**
 * @brief Enables TCP keepalive probes after @p idle_s idle seconds.
 *
 * Sets `SO_KEEPALIVE` and `TCP_KEEPIDLE` on connections. Idle times above
 * the kernel's maximum (32767 s) are clamped to it.
 *
 * @param o      the options object.
 * @param idle_s idle seconds before the first probe; 0 (the default) keeps
 *               keepalive off.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p idle_s < 0.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_keepalive(tcpkit_opts *o, int idle_s);

/**
 * @brief Sets the listen backlog (the queue of connections not yet accepted).
 *
 * @param o the options object.
 * @param n at least 1; the default is `SOMAXCONN`. The kernel caps it at
 *          `net.core.somaxconn`.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p n < 1.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_backlog(tcpkit_opts *o, int n);

/**
 * @brief Sets `SO_REUSEPORT` on listeners, so several may share one port.
 *
 * `SO_REUSEADDR` is always set on listeners regardless of this option.
 *
 * @param o  the options object.
 * @param on true to set it; off by default.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_reuseport(tcpkit_opts *o, bool on);

/**
 * @brief Makes an IPv6 listener accept IPv6 only (`IPV6_V6ONLY`).
 *
 * Off by default: an IPv6 listener (including the default all-interfaces
 * listener on `::`) also accepts IPv4 clients, shown as plain IPv4.
 *
 * @param o  the options object.
 * @param on true for IPv6 only.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_v6only(tcpkit_opts *o, bool on);

/**
 * @brief Sets the Happy Eyeballs (RFC 8305) connection-attempt delay.
 *
 * tcpkit_connect() starts the next address's attempt when the previous one
 * has not succeeded within this delay (or as soon as it fails).
 *
 * @param o  the options object.
 * @param ms 0 to 60000 milliseconds; the default is 250.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p ms is out of range.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_fallback_delay(tcpkit_opts *o, int ms);

/* ------------------------------------------------------------------------ */
/* Client                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * @brief Resolves @p host and connects to it, racing its addresses.
 *
 * The addresses from `getaddrinfo` are raced Happy Eyeballs style
 * (RFC 8305): families interleaved, the next attempt started after the
 * fallback delay or as soon as the previous one fails, the first success
 * wins and every other attempt is closed. The connect timeout bounds the
 * whole race; name lookup itself cannot be interrupted.
 *
 * On failure the most telling error wins (#TCPKIT_EREFUSED over
 * #TCPKIT_EUNREACH over #TCPKIT_ETIMEDOUT) and tcpkit_last_error() lists
 * every attempt, e.g. `connect localhost:9: ::1 port 9: connection refused;
 * 127.0.0.1 port 9: connection refused`.
 *
 * The connection gets the options' I/O timeout, nodelay and keepalive.
 *
 * With a TLS configuration in @p opts (tcpkit_opts_set_tls(), new in 1.1)
 * the TLS handshake runs after the race is won, inside the same connect
 * timeout: the server's chain and its name (@p host, or the configured
 * server name) are verified, and SNI is sent for names, not IP literals.
 *
 * @param[out] out  receives the connection (NULL on failure); release it
 *                  with tcpkit_close() or tcpkit_abort().
 * @param host a host name or a numeric address (IPv6 without brackets,
 *             e.g. "::1"; brackets are tolerated). NULL or "" is invalid;
 *             names longer than 253 bytes are invalid.
 * @param port 1-5 ASCII digits, decimal, from 1 to 65535 (leading zeros
 *             allowed: "00080" is 80), or a service name ("http": a
 *             letter, then letters, digits and single inner hyphens, at
 *             most 15 characters). Anything else (" 80", "+80", "80x",
 *             "0x50", "000080") is invalid and never reaches the resolver.
 * @param opts options, or NULL for the defaults. Only read during the call.
 * @return #TCPKIT_OK;
 *         #TCPKIT_EINVAL for a NULL @p out, a NULL, empty or over-long
 *         @p host, a malformed @p port (see above), or a numeric @p port
 *         outside 1-65535 ("0", "65536");
 *         #TCPKIT_ERESOLVE when the name or service cannot be resolved;
 *         #TCPKIT_EREFUSED, #TCPKIT_EUNREACH, #TCPKIT_ETIMEDOUT,
 *         #TCPKIT_EACCES, #TCPKIT_EMFILE, #TCPKIT_ENOMEM, #TCPKIT_ESYS;
 *         with TLS: #TCPKIT_ECERT when the server's certificate is refused
 *         (the message names why, e.g. "certificate has expired"),
 *         #TCPKIT_ETLS for any other handshake failure.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_connect(tcpkit_conn **out, const char *host, const char *port,
                                        const tcpkit_opts *opts);

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * @brief Creates a socket bound to @p host and @p port, and listens on it.
 *
 * `SO_REUSEADDR` is always set, so a restarted server can bind again while
 * old connections sit in TIME_WAIT. With @p host NULL or "", the listener
 * takes every interface: dual-stack `::` (IPv4 too, unless v6only is set),
 * or `0.0.0.0` on hosts without IPv6. A name that resolves to several
 * addresses binds the first one that works, IPv4 addresses first (as Go
 * does).
 *
 * The options' backlog, reuseport and v6only shape the listener; its
 * nodelay, keepalive and I/O timeout apply to every accepted connection.
 * With a TLS configuration (new in 1.1) accepted connections speak TLS;
 * the listener keeps its own reference to the configuration.
 *
 * @param[out] out  receives the listener (NULL on failure); release it with
 *                  tcpkit_listener_close().
 * @param host a numeric address or host name to bind, or NULL/"" for all
 *             interfaces.
 * @param port a number from 0 to 65535 ("0" for an ephemeral port, see
 *             tcpkit_listener_port()), or a service name; the same strict
 *             syntax as tcpkit_connect()'s @p port.
 * @param opts options, or NULL for the defaults. Only read during the call.
 * @return #TCPKIT_OK;
 *         #TCPKIT_EINVAL for a NULL @p out, a NULL or malformed @p port,
 *         a numeric @p port outside 0-65535, or a TLS configuration
 *         without a certificate;
 *         #TCPKIT_ERESOLVE when the name or service cannot be resolved;
 *         #TCPKIT_EADDRINUSE; #TCPKIT_EACCES (e.g. a port below 1024
 *         without privilege); #TCPKIT_EMFILE; #TCPKIT_ENOMEM; #TCPKIT_ESYS.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_listen(tcpkit_listener **out, const char *host, const char *port,
                                       const tcpkit_opts *opts);

/**
 * @brief The port the listener is bound to (useful after port "0").
 *
 * @param l the listener.
 * @return the port (1-65535), or -1 if @p l is NULL or a Unix-domain
 *         listener (tcpkit_listener_from_fd(), since 1.1).
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT int tcpkit_listener_port(const tcpkit_listener *l);

/**
 * @brief Writes the listener's local address, e.g. "127.0.0.1:9999" or "[::]:9999".
 *
 * @param l   the listener.
 * @param buf where to write the NUL-terminated string.
 * @param cap the size of @p buf; #TCPKIT_ADDRSTRLEN is always enough.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL argument or a @p cap too
 *         small (nothing is written past @p cap; @p buf gets "" if @p cap
 *         is not 0); #TCPKIT_ESYS.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_listener_addr(const tcpkit_listener *l, char *buf, size_t cap);

/**
 * @brief The listener's descriptor, e.g. to add it to your own poll loop.
 *
 * The descriptor is non-blocking and close-on-exec. It stays owned by the
 * listener: do not close it.
 *
 * @param l the listener.
 * @return the descriptor, or -1 if @p l is NULL.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT int tcpkit_listener_fd(const tcpkit_listener *l);

/**
 * @brief Waits for and accepts the next connection.
 *
 * Transient errors (a client that reset before being accepted:
 * `ECONNABORTED`, `EPROTO`, `ENETDOWN` and the like) are retried inside,
 * within the timeout. Running out of descriptors is reported at once, never
 * spun on. The connection gets the listener's nodelay, keepalive and I/O
 * timeout options.
 *
 * @param l          the listener.
 * @param[out] out   receives the connection (NULL on failure); release it
 *                   with tcpkit_close() or tcpkit_abort().
 * @param timeout_ms milliseconds to wait, -1 for no limit, 0 to take only a
 *                   connection that is already waiting.
 * @return #TCPKIT_OK;
 *         #TCPKIT_EINVAL for a NULL argument or @p timeout_ms < -1;
 *         #TCPKIT_ETIMEDOUT when no client came in time;
 *         #TCPKIT_ESHUTDOWN after tcpkit_listener_shutdown() (also when it
 *         interrupts the wait);
 *         #TCPKIT_EMFILE when the process or system is out of descriptors;
 *         #TCPKIT_ENOMEM; #TCPKIT_ESYS.
 * @par Thread safety: safe; several threads may accept on one listener.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_accept(tcpkit_listener *l, tcpkit_conn **out, int timeout_ms);

/**
 * @brief Accepts connections in a loop and runs @p fn on each, on a worker thread.
 *
 * The calling thread accepts; each connection is handed to a worker thread
 * that runs `fn(conn, arg)` and then closes the connection (tcpkit_close()).
 * At most @p max_conns handlers run at once: while all are busy, no more
 * connections are accepted, so further clients wait in the listen backlog
 * instead of being refused. Worker threads are created only when no idle one
 * is left (never more than @p max_conns) and are reused for later
 * connections; all of them have ended when the call returns.
 *
 * **After a burst** the pool shrinks again: a worker that has been idle for
 * 3 seconds exits (its thread and stack are released) unless only 4 workers
 * are left, the warm set kept for the next connections (lib/serve.c,
 * `TK_IDLE_EXIT_MS` and `TK_WARM_WORKERS`). So threads and memory come back
 * near where they started a few seconds after load drops.
 *
 * **Overload.** While all @p max_conns handlers are busy, the kernel still
 * completes the TCP handshake of new clients and queues them in the listen
 * backlog (tcpkit_opts_set_backlog()): their connect succeeds and they may
 * send, but nothing answers until a handler returns, and then they are
 * served in arrival order. Such a client cannot tell "queued" from "served
 * by a slow handler"; give it its own receive timeout. Once the backlog is
 * full too, the kernel drops further SYNs, so a new client's connect
 * neither succeeds nor fails: it retries and times out on the client's own
 * connect timeout (the server sends no refusal or reset).
 *
 * The server never dies of a client's behaviour: clients that go away
 * before they are accepted are skipped, and when the process runs out of
 * descriptors, memory or threads (`EMFILE`, `ENFILE`, `ENOMEM`, a failed
 * `pthread_create`) the loop pauses 10 ms, doubling up to 100 ms, and
 * retries; the waiting client stays in the backlog meanwhile. The pause
 * never spins and tcpkit_listener_shutdown() interrupts it.
 *
 * **Stopping.** After tcpkit_listener_shutdown() (from any thread, from a
 * handler, or from a signal handler) no further connection is accepted,
 * receives and sends that handlers are blocked in (tcpkit_recv(),
 * tcpkit_send_all() and the other I/O calls) return #TCPKIT_ESHUTDOWN, and
 * the call returns once every handler has returned, promptly even with no
 * I/O timeout set: a handler pushing data to a client that stopped reading
 * does not hold it up. Connections still waiting in the backlog are
 * reset when the listener is closed. Called on a listener that is already
 * shut down, the call returns #TCPKIT_OK at once.
 *
 * **Worker threads** have a 512 KiB stack: enough for ordinary handlers
 * (buffers of tens of KiB on the stack, libc calls), not for large arrays on
 * the stack (allocate those). They start with the signal mask of the thread
 * that called tcpkit_serve(), plus `SIGHUP`, `SIGINT`, `SIGQUIT`, `SIGTERM`,
 * `SIGUSR1`, `SIGUSR2`, `SIGALRM`, `SIGCHLD` and `SIGWINCH` blocked: these
 * process-directed signals are delivered to the program's own threads (for
 * example the one in tcpkit_serve(), whose handler may call
 * tcpkit_listener_shutdown()) and never interrupt a handler. Fault signals
 * and `SIGPIPE` are left alone.
 *
 * @param l         the listener; it stays owned by the caller, who closes it
 *                  with tcpkit_listener_close() after this call returned.
 * @param fn        the handler. It receives a connection owned by
 *                  tcpkit_serve(): it must not close it or keep it after
 *                  returning. The connection has the listener's options
 *                  (I/O timeout, nodelay, keepalive). Handlers run
 *                  concurrently and must be thread-safe with respect to
 *                  @p arg.
 * @param arg       passed unchanged to every call of @p fn.
 * @param max_conns the most connections handled at once (and the most
 *                  worker threads); at least 1.
 * @return #TCPKIT_OK after tcpkit_listener_shutdown(), once every handler
 *         has returned;
 *         #TCPKIT_EINVAL for a NULL @p l or @p fn, or @p max_conns < 1
 *         (nothing is started);
 *         #TCPKIT_ESYS (with tcpkit_last_errno()) when the listener's
 *         descriptor itself became unusable (`EBADF`, `ENOTSOCK`, `EINVAL`);
 *         the listener is then shut down and the call returns once every
 *         handler has returned.
 *         #TCPKIT_EMFILE and #TCPKIT_ENOMEM are never returned: they are
 *         waited out as described above.
 * @par Thread safety: safe. Several threads may serve (and accept on) one
 *      listener at once, each call with its own @p max_conns; one
 *      tcpkit_listener_shutdown() stops all of them.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_serve(tcpkit_listener *l, tcpkit_handler fn, void *arg,
                                      int max_conns);

/**
 * @brief Stops the listener: wakes every blocked accept and serve on it.
 *
 * After this call tcpkit_accept() returns #TCPKIT_ESHUTDOWN. The listener
 * still has to be released with tcpkit_listener_close() once no thread uses
 * it any more. Calling it more than once is harmless.
 *
 * @param l the listener, or NULL (nothing happens).
 * @par Thread safety: safe, and async-signal-safe: it may be called from a
 *      signal handler (e.g. for SIGINT).
 * @since 1.0
 */
TCPKIT_EXPORT void tcpkit_listener_shutdown(tcpkit_listener *l);

/**
 * @brief Closes the listening socket and frees the listener.
 *
 * Connections already accepted are not affected.
 *
 * @param l the listener, or NULL (nothing happens).
 * @par Thread safety: no other thread may use @p l during or after this
 *      call; wake them with tcpkit_listener_shutdown() first.
 * @since 1.0
 */
TCPKIT_EXPORT void tcpkit_listener_close(tcpkit_listener *l);

/* ------------------------------------------------------------------------ */
/* Connection                                                               */
/* ------------------------------------------------------------------------ */

/**
 * @brief Sends all @p len bytes, or fails.
 *
 * Retries short writes and `EINTR` until everything is handed to the
 * kernel, within the connection's timeout for the whole call. Sending never
 * raises `SIGPIPE`: a peer that has gone away gives #TCPKIT_ERESET. Over
 * TLS, @p sent counts plaintext bytes taken by the TLS layer.
 *
 * @param c         the connection.
 * @param buf       the bytes to send (may be NULL when @p len is 0).
 * @param len       how many; 0 is a successful no-op.
 * @param[out] sent bytes handed to the kernel, also on failure; may be NULL.
 * @return #TCPKIT_OK when all were sent;
 *         #TCPKIT_EINVAL for a NULL @p c, or a NULL @p buf with @p len > 0;
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET;
 *         #TCPKIT_ESHUTDOWN inside a tcpkit_serve() handler after
 *         tcpkit_listener_shutdown() (@p *sent says how much went out);
 *         #TCPKIT_ECANCELED after tcpkit_conn_cancel() (since 1.1);
 *         #TCPKIT_ESYS; over TLS also #TCPKIT_ETLS and #TCPKIT_ECERT (a
 *         failed lazy handshake).
 * @par Thread safety: one sender per connection at a time.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_send_all(tcpkit_conn *c, const void *buf, size_t len, size_t *sent);

/**
 * @brief Waits for at least one byte and returns what is there, up to @p cap.
 *
 * Bytes buffered by tcpkit_recv_line() are returned first. Over TLS,
 * #TCPKIT_EOF means the peer sent `close_notify`; a TCP end of stream
 * without it is #TCPKIT_ETLS ("peer closed without close_notify: the data
 * may be truncated").
 *
 * @param c        the connection.
 * @param buf      where to put the bytes.
 * @param cap      the size of @p buf; must not be 0.
 * @param[out] got bytes received (0 on failure or at end of stream); may
 *                 be NULL.
 * @return #TCPKIT_OK with @p *got > 0;
 *         #TCPKIT_EOF with @p *got 0 when the peer has closed its side;
 *         #TCPKIT_EINVAL for a NULL @p c or @p buf, or @p cap 0;
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET;
 *         #TCPKIT_ESHUTDOWN inside a tcpkit_serve() handler after
 *         tcpkit_listener_shutdown();
 *         #TCPKIT_ECANCELED after tcpkit_conn_cancel() (since 1.1);
 *         #TCPKIT_ESYS; over TLS also #TCPKIT_ETLS and #TCPKIT_ECERT.
 * @par Thread safety: one receiver per connection at a time.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_recv(tcpkit_conn *c, void *buf, size_t cap, size_t *got);

/**
 * @brief Receives exactly @p len bytes.
 *
 * The timeout bounds the whole call. On failure the bytes that did arrive
 * are in @p buf and counted in @p *got.
 *
 * @param c        the connection.
 * @param buf      where to put the bytes (may be NULL when @p len is 0).
 * @param len      how many; 0 is a successful no-op.
 * @param[out] got bytes received, also on failure; may be NULL.
 * @return #TCPKIT_OK with @p *got == @p len;
 *         #TCPKIT_EOF when the stream ended first;
 *         #TCPKIT_EINVAL for a NULL @p c, or a NULL @p buf with @p len > 0;
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET; #TCPKIT_ESHUTDOWN;
 *         #TCPKIT_ECANCELED after tcpkit_conn_cancel() (since 1.1);
 *         #TCPKIT_ESYS.
 * @par Thread safety: one receiver per connection at a time.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_recv_exact(tcpkit_conn *c, void *buf, size_t len, size_t *got);

/**
 * @brief Receives until end of stream into a new buffer, at most @p max bytes.
 *
 * The buffer holds one extra NUL byte after the data (not counted in
 * @p *len), so text can be used as a C string. As soon as more than @p max
 * bytes have arrived the call stops with #TCPKIT_ETOOBIG and keeps the
 * first @p max bytes; it does not wait for end of stream. The timeout
 * bounds the whole call.
 *
 * @param c         the connection.
 * @param[out] data receives the buffer. On every outcome except
 *                  #TCPKIT_EINVAL and a failed first allocation it holds
 *                  what arrived (possibly nothing); the caller owns it and
 *                  frees it with tcpkit_free(). NULL when no buffer exists.
 * @param[out] len  bytes in @p *data; may be NULL.
 * @param max       the most bytes to accept; must not be 0.
 * @return #TCPKIT_OK at end of stream;
 *         #TCPKIT_ETOOBIG when more than @p max bytes arrived;
 *         #TCPKIT_EINVAL for a NULL @p c or @p data, or @p max 0;
 *         #TCPKIT_ENOMEM (with what arrived so far);
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET; #TCPKIT_ESHUTDOWN;
 *         #TCPKIT_ECANCELED after tcpkit_conn_cancel() (since 1.1);
 *         #TCPKIT_ESYS.
 * @par Thread safety: one receiver per connection at a time.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_recv_all(tcpkit_conn *c, void **data, size_t *len, size_t max);

/**
 * @brief Receives one line, through the next `\n` (kept), NUL-terminated.
 *
 * CR LF line ends are kept as they are. Bytes read past the newline stay
 * buffered in the connection, and every other receive call returns them
 * first. If no newline comes within `cap - 1` bytes the call returns
 * #TCPKIT_ETOOBIG with those bytes in @p buf; the rest of that line is
 * still unread. If the stream ends after a partial line, that line is
 * returned with #TCPKIT_OK and the next call returns #TCPKIT_EOF.
 *
 * On #TCPKIT_ETIMEDOUT and #TCPKIT_ESHUTDOWN nothing is consumed: a partial
 * line stays buffered for the next call and @p *len is 0. On a reset or
 * another OS error, the partial line is handed back in @p buf and @p *len.
 *
 * @param c        the connection.
 * @param buf      where to put the line.
 * @param cap      the size of @p buf; must not be 0 (and 1 leaves no room
 *                 for any byte: #TCPKIT_ETOOBIG).
 * @param[out] len bytes in @p buf, not counting the NUL; may be NULL.
 * @return #TCPKIT_OK; #TCPKIT_EOF (nothing left at all);
 *         #TCPKIT_ETOOBIG; #TCPKIT_EINVAL for a NULL @p c or @p buf, or
 *         @p cap 0; #TCPKIT_ENOMEM; #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET;
 *         #TCPKIT_ESHUTDOWN;
 *         #TCPKIT_ECANCELED after tcpkit_conn_cancel() (since 1.1);
 *         #TCPKIT_ESYS.
 * @par Thread safety: one receiver per connection at a time.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_recv_line(tcpkit_conn *c, char *buf, size_t cap, size_t *len);

/**
 * @brief Half-closes the connection: the peer sees end of stream.
 *
 * Receiving still works, so a client can send a whole request, half-close,
 * and then read the whole reply. Over TLS it first finishes a pending
 * handshake and sends `close_notify` (within the connection's timeout),
 * then half-closes the socket.
 *
 * @param c the connection.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p c; #TCPKIT_ERESET when
 *         the connection is already gone;
 *         #TCPKIT_ECANCELED after tcpkit_conn_cancel() (since 1.1);
 *         #TCPKIT_ESYS; over TLS also #TCPKIT_ETLS, #TCPKIT_ECERT and
 *         #TCPKIT_ETIMEDOUT.
 * @par Thread safety: safe against a concurrent receiver.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_close_write(tcpkit_conn *c);

/**
 * @brief Closes the connection and frees it. Never blocks.
 *
 * Unsent data is still delivered by the kernel in the background. A TLS
 * connection sends `close_notify` first if that is possible without
 * waiting (never a `SIGPIPE`, even to a vanished peer).
 *
 * @param c the connection, or NULL (nothing happens).
 * @par Thread safety: no other thread may use @p c during or after this call.
 * @since 1.0
 */
TCPKIT_EXPORT void tcpkit_close(tcpkit_conn *c);

/**
 * @brief Resets the connection (RST, `SO_LINGER` 0) and frees it.
 *
 * **Dangerous:** unsent and unread data is thrown away and the peer sees
 * #TCPKIT_ERESET. Use it to drop a misbehaving peer, or to avoid TIME_WAIT.
 *
 * @param c the connection, or NULL (nothing happens).
 * @par Thread safety: no other thread may use @p c during or after this call.
 * @since 1.0
 */
TCPKIT_EXPORT void tcpkit_abort(tcpkit_conn *c);

/**
 * @brief Sets the per-call timeout of later blocking calls on @p c.
 *
 * @param c  the connection.
 * @param ms milliseconds, -1 for no limit, 0 to never wait.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p c or @p ms < -1.
 * @par Thread safety: not while another thread is in a call on @p c.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_set_timeout(tcpkit_conn *c, int ms);

/**
 * @brief The connection's descriptor (non-blocking, close-on-exec).
 *
 * It stays owned by @p c: do not close it. Reading from it directly
 * bypasses bytes that tcpkit_recv_line() buffered.
 *
 * @param c the connection.
 * @return the descriptor, or -1 if @p c is NULL.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT int tcpkit_conn_fd(const tcpkit_conn *c);

/**
 * @brief Writes the peer's address, e.g. "203.0.113.5:51234" or "[::1]:51234".
 *
 * An IPv4 client of a dual-stack listener is shown as plain IPv4, never as
 * <tt>\::ffff:...</tt>. The address is recorded when the connection is made, so
 * this works after a reset too.
 *
 * @param c   the connection.
 * @param buf where to write the NUL-terminated string.
 * @param cap the size of @p buf; #TCPKIT_ADDRSTRLEN is always enough.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL argument or a @p cap too
 *         small (nothing is written past @p cap).
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_peer(const tcpkit_conn *c, char *buf, size_t cap);

/**
 * @brief Writes the connection's local address, formatted as tcpkit_conn_peer().
 *
 * @param c   the connection.
 * @param buf where to write the NUL-terminated string.
 * @param cap the size of @p buf; #TCPKIT_ADDRSTRLEN is always enough.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL argument or a @p cap too
 *         small (nothing is written past @p cap); #TCPKIT_ESYS.
 * @par Thread safety: safe.
 * @since 1.0
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_local(const tcpkit_conn *c, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Serving at scale: fibers (1.1)                                           */
/* ------------------------------------------------------------------------ */

/**
 * @page fibers Fiber rules
 *
 * tcpkit_serve_with() in its default mode (#TCPKIT_SERVE_FIBERS) runs each
 * handler as a *fiber*: a function with its own stack that the library
 * suspends whenever it would wait, on a few event-loop threads (one epoll
 * each). The handler is the same blocking code as for tcpkit_serve(); these
 * rules are what changes.
 *
 * - **What suspends.** Every libtcpkit call that waits (receives, sends,
 *   tcpkit_connect(), tcpkit_accept() on another listener, tcpkit_sleep(),
 *   tcpkit_run_blocking()) suspends only the calling fiber; its loop runs
 *   the others meanwhile. Timeouts, EINTR and the shutdown wake-up behave
 *   exactly as on a thread. tcpkit_connect() inside a handler resolves the
 *   name on a helper thread and races the addresses in the loop.
 * - **What blocks the loop.** Anything outside libtcpkit that blocks
 *   (sleep(3), a disk read, a database client, a mutex held long, a long
 *   computation) stalls every fiber of that thread. Use tcpkit_sleep(),
 *   tcpkit_run_blocking(), or #TCPKIT_SERVE_THREADS.
 * - **Thread-locals.** A fiber never moves to another thread, so the
 *   handler's thread-local variables stay valid across waits, but other
 *   fibers of the same thread share them. tcpkit_last_error() and
 *   tcpkit_last_errno() belong to the fiber.
 * - **Stack size and overflow.** Each fiber has a stack of
 *   tcpkit_opts_set_stack_size() bytes (256 KiB by default) of reserved
 *   address space; only the pages it touches cost memory (an idle echo
 *   handler touches a few KiB). Below each stack is a guard page: an
 *   overflow crashes the process with `SIGSEGV` (under AddressSanitizer: a
 *   report and a non-zero exit); it never silently corrupts another fiber.
 *   On kernels before Linux 6.13 the guard page is a separate mapping, so
 *   each fiber costs two of the `vm.max_map_count` mappings (65530 by
 *   default): about 30,000 fibers per process at most there.
 * - **Sanitizers.** The library switches stacks itself (no `swapcontext`)
 *   and tells AddressSanitizer, ThreadSanitizer and Valgrind about every
 *   stack and every switch.
 */

/**
 * @brief Serves connections like tcpkit_serve(), configured by options.
 *
 * Accepts in a loop and runs `fn(conn, arg)` for every connection, closing
 * the connection when @p fn returns; at most tcpkit_opts_set_max_conns()
 * handlers run at once and further clients wait in the listen backlog. The
 * shutdown, back-off and return contract is tcpkit_serve()'s: after
 * tcpkit_listener_shutdown() no connection is accepted, handlers blocked in
 * a receive, a send or tcpkit_sleep() wake with #TCPKIT_ESHUTDOWN (or
 * #TCPKIT_EOF), and the call returns once every handler has returned; in
 * fiber mode also once every fiber stack and helper thread is freed.
 *
 * In #TCPKIT_SERVE_FIBERS mode (the default) handlers are fibers (see
 * @ref fibers) on tcpkit_opts_set_serve_threads() event-loop threads, while
 * the calling thread waits for them. Each loop takes connections from the
 * shared listener (`EPOLLEXCLUSIVE`), so they spread over the loops; a
 * fiber stays on its loop. Loop threads and helper threads start with the
 * same signals blocked as tcpkit_serve()'s workers, so handlers see the
 * same signal mask in both modes.
 * In #TCPKIT_SERVE_THREADS mode it is tcpkit_serve() with the options'
 * max_conns and stack size.
 *
 * Only the serve options (mode, max_conns, serve threads, stack size) are
 * read from @p opts; the connections get the listener's options.
 *
 * @param l    the listener; it stays owned by the caller, who closes it
 *             with tcpkit_listener_close() after this call returned.
 * @param fn   the handler; it receives a connection owned by the server:
 *             it must not close it or keep it after returning. Handlers
 *             run concurrently (in fiber mode on several threads when
 *             there is more than one loop) and must be thread-safe with
 *             respect to @p arg.
 * @param arg  passed unchanged to every call of @p fn.
 * @param opts the serve options; NULL = all defaults (fibers, 10000
 *             connections, one loop per online CPU, 256 KiB stacks). Read
 *             once as the call starts; the caller keeps ownership.
 * @return #TCPKIT_OK after tcpkit_listener_shutdown(), once every handler
 *         has returned;
 *         #TCPKIT_EINVAL for a NULL @p l or @p fn (nothing is started);
 *         #TCPKIT_ENOMEM, or #TCPKIT_ESYS / #TCPKIT_EMFILE (with
 *         tcpkit_last_errno()), when the event loops or their threads
 *         cannot be set up (nothing is served, or the started loops are
 *         shut down);
 *         #TCPKIT_ESYS when the listener's descriptor itself became
 *         unusable (`EBADF`, `ENOTSOCK`, `EINVAL`): the listener is then
 *         shut down and the call returns once every handler has returned.
 *         Running out of descriptors or memory while accepting is waited
 *         out (10 ms pauses doubling to 100 ms), never returned.
 * @par Thread safety: safe; one tcpkit_listener_shutdown() stops every
 *      serve on the listener.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_serve_with(tcpkit_listener *l, tcpkit_handler fn, void *arg,
                                           const tcpkit_opts *opts);

/**
 * @brief Chooses how tcpkit_serve_with() runs handlers.
 *
 * @param o the options object.
 * @param m #TCPKIT_SERVE_FIBERS (the default) or #TCPKIT_SERVE_THREADS.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p m is another value.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_serve_mode(tcpkit_opts *o, tcpkit_serve_mode m);

/**
 * @brief Sets how many handlers tcpkit_serve_with() runs at once.
 *
 * Further clients wait in the listen backlog until a handler returns.
 *
 * @param o the options object.
 * @param n at least 1; the default is 10000 in fiber mode and 1024 in
 *          thread mode.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p n < 1.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_max_conns(tcpkit_opts *o, int n);

/**
 * @brief Sets the number of event-loop threads in fiber mode.
 *
 * Ignored in thread mode.
 *
 * @param o the options object.
 * @param n 0 (the default) for one per online CPU, or a count >= 1.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p n < 0.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_serve_threads(tcpkit_opts *o, int n);

/**
 * @brief Sets the stack size of each handler of tcpkit_serve_with().
 *
 * The stack is reserved address space: only the pages a handler touches
 * cost memory. A handler that needs more (deep recursion, big arrays on the
 * stack) crashes on the guard page below it (see @ref fibers).
 *
 * @param o     the options object.
 * @param bytes 16 KiB to 64 MiB (rounded up to whole pages); the default is
 *              256 KiB for fibers and 512 KiB for threads.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL if @p o is NULL or @p bytes is out of
 *         range.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_stack_size(tcpkit_opts *o, size_t bytes);

/**
 * @brief Waits @p ms milliseconds; in a fiber only that fiber waits.
 *
 * Inside a handler of tcpkit_serve() or tcpkit_serve_with() (either mode)
 * the wait ends early when the listener is shut down. Signals do not end
 * it early (`EINTR` is retried with the time left).
 *
 * @param ms 0 or more milliseconds; 0 returns at once.
 * @return #TCPKIT_OK when the time has passed; #TCPKIT_ESHUTDOWN when the
 *         handler's server was shut down (at once if it already was);
 *         #TCPKIT_EINVAL if @p ms < 0.
 * @par Thread safety: safe, from any thread or fiber.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_sleep(int ms);

/**
 * @brief Runs blocking work without stalling the other fibers.
 *
 * In a fiber: `fn(arg)` runs on a helper thread of the server (a pool of
 * at most 16 per tcpkit_serve_with() call, started on demand, joined when
 * it returns; work beyond that waits its turn) and only the calling fiber
 * waits until it returns. Elsewhere `fn(arg)` is simply called. Use it for
 * disk I/O, a database client, anything that would block the loop. The
 * wait is not interrupted by shutdown: @p fn must return by itself.
 *
 * libtcpkit errors inside @p fn are recorded for the helper thread, not
 * for the fiber: @p fn hands back what it needs through @p arg. @p fn must
 * not call tcpkit_run_blocking() or expect the fiber's thread-locals.
 *
 * @param fn  the work; it runs exactly once when #TCPKIT_OK is returned.
 * @param arg passed to @p fn.
 * @return #TCPKIT_OK after @p fn returned; #TCPKIT_EINVAL if @p fn is NULL;
 *         #TCPKIT_ENOMEM when no helper thread exists and none could be
 *         started (@p fn did not run).
 * @par Thread safety: safe, from any thread or fiber.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_run_blocking(void (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------------------ */
/* TLS (@since 1.1)                                                         */
/* ------------------------------------------------------------------------ */
/* Every I/O call works unchanged over TLS, with the same contracts (partial
 * progress, timeouts, deadlines, cancel, shutdown wake-ups, one sender plus
 * one receiver at once); each can also return TCPKIT_ETLS or TCPKIT_ECERT.
 * Connections accepted from a TLS listener handshake lazily, on their first
 * I/O call or tcpkit_conn_handshake(). In a build without OpenSSL every
 * function here exists and returns TCPKIT_ENOTSUP (tcpkit_conn_handshake()
 * and tcpkit_conn_tls_info() then see only plain connections). */

/**
 * @brief Creates a TLS configuration holding the secure defaults.
 *
 * Defaults: the system CA store, the connect host as the verified name and
 * SNI, no certificate of our own, no client certificates asked for, TLS 1.2
 * as the minimum, no ALPN, no pins, verification on.
 *
 * @param out receives the configuration; the caller owns one reference and
 *            drops it with tcpkit_tls_free(). Set to NULL on failure.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p out; #TCPKIT_ENOMEM;
 *         #TCPKIT_ETLS when OpenSSL cannot set up a context (e.g. an
 *         unreadable system store); #TCPKIT_ENOTSUP in a build without
 *         OpenSSL.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_new(tcpkit_tls **out);

/**
 * @brief Drops the caller's reference to a TLS configuration.
 *
 * Options, listeners and connections that use it keep their own
 * references, so freeing it while they are alive is fine.
 *
 * @param t the configuration, or NULL (nothing happens).
 * @par Thread safety: safe; @p t must not be used by this caller afterwards.
 * @since 1.1
 */
TCPKIT_EXPORT void tcpkit_tls_free(tcpkit_tls *t);

/**
 * @brief Trusts the CAs in a PEM bundle *instead of* the system store.
 *
 * As a server, client certificates must chain to these CAs. The file is
 * loaded and checked now.
 *
 * @param t        the configuration.
 * @param pem_path path of a PEM file with one or more CA certificates; the
 *                 string is copied.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL argument; #TCPKIT_ETLS for a
 *         missing or unparsable file (the configuration is unchanged);
 *         #TCPKIT_ENOMEM; #TCPKIT_ENOTSUP without OpenSSL.
 * @par Thread safety: safe, also while connections are being made.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_ca_file(tcpkit_tls *t, const char *pem_path);

/**
 * @brief Sets the certificate chain and private key presented to peers.
 *
 * A server's certificate, or a client certificate for mutual TLS. Both
 * files are loaded now, and checked to match.
 *
 * @param t             the configuration.
 * @param cert_pem_path PEM file: the certificate first, then intermediates.
 * @param key_pem_path  PEM file with the (unencrypted) private key.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL argument; #TCPKIT_ETLS with
 *         the reason for a missing, unreadable or mismatched file (the
 *         configuration is unchanged); #TCPKIT_ENOMEM; #TCPKIT_ENOTSUP
 *         without OpenSSL.
 * @par Thread safety: safe, also while connections are being made.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_cert_file(tcpkit_tls *t, const char *cert_pem_path,
                                                  const char *key_pem_path);

/**
 * @brief Sets the name sent as SNI and verified in the server's certificate.
 *
 * For connecting to an IP literal or through a tunnel. An IP literal here
 * is verified against the certificate's IP addresses and sends no SNI.
 *
 * @param t    the configuration.
 * @param name a DNS name or IP literal (copied); NULL restores the default
 *             (the host given to tcpkit_connect()).
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p t or an empty or
 *         over-long (> 253 bytes) name; #TCPKIT_ENOMEM; #TCPKIT_ENOTSUP
 *         without OpenSSL.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_server_name(tcpkit_tls *t, const char *name);

/**
 * @brief Server side: whether to ask for and verify client certificates.
 *
 * With #TCPKIT_TLS_CLIENT_AUTH_REQUIRE a client without a valid certificate
 * fails with #TCPKIT_ECERT on the server's side; the client only gets an
 * alert (#TCPKIT_ETLS), at its handshake or, with TLS 1.3, at its first
 * receive.
 *
 * @param t the configuration.
 * @param a one of ::tcpkit_tls_client_auth.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p t or an unknown @p a;
 *         #TCPKIT_ENOTSUP without OpenSSL.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_client_auth(tcpkit_tls *t, tcpkit_tls_client_auth a);

/**
 * @brief Sets the lowest protocol version negotiated (default TLS 1.2).
 *
 * TLS 1.0 and 1.1 are never offered.
 *
 * @param t the configuration.
 * @param v #TCPKIT_TLS_1_2 or #TCPKIT_TLS_1_3.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p t or any other @p v;
 *         #TCPKIT_ENOTSUP without OpenSSL.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_min_version(tcpkit_tls *t, tcpkit_tls_version v);

/**
 * @brief Sets the ALPN protocols, comma-separated in preference order.
 *
 * E.g. "h2,http/1.1". The server's preference wins; a client offering only
 * protocols the server lacks fails the handshake (#TCPKIT_ETLS); a client
 * offering none is served without ALPN.
 *
 * @param t         the configuration.
 * @param protocols the list (copied); NULL or "" turns ALPN off.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p t, an empty entry or one
 *         over 255 bytes; #TCPKIT_ENOMEM; #TCPKIT_ENOTSUP without OpenSSL.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_alpn(tcpkit_tls *t, const char *protocols);

/**
 * @brief Pins the peer's public key, on top of chain verification.
 *
 * Each pin is the base64 SHA-256 of the peer certificate's
 * SubjectPublicKeyInfo, optionally prefixed "sha256//" (curl's format);
 * pins are separated by ';'. Checked in the handshake: no match is
 * #TCPKIT_ECERT "public key pin mismatch".
 *
 * @param t    the configuration.
 * @param pins the pins; NULL or "" removes them.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p t or a malformed pin
 *         (nothing changes); #TCPKIT_ENOMEM; #TCPKIT_ENOTSUP without
 *         OpenSSL.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_pin_sha256(tcpkit_tls *t, const char *pins);

/**
 * @brief **Dangerous:** accepts any certificate and any name.
 *
 * For tests against throw-away certificates only: it removes all protection
 * against an active attacker. Pins still apply.
 *
 * @param t  the configuration.
 * @param on true to skip verification.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p t; #TCPKIT_ENOTSUP
 *         without OpenSSL.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_set_insecure_skip_verify(tcpkit_tls *t, bool on);

/**
 * @brief Re-reads the certificate, key and CA files.
 *
 * New handshakes use them; live connections keep what they negotiated. On
 * any failure the old state stays.
 *
 * @param t the configuration.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p t; #TCPKIT_ETLS with the
 *         reason (old state kept); #TCPKIT_ENOMEM; #TCPKIT_ENOTSUP without
 *         OpenSSL.
 * @par Thread safety: safe, also while connections are being made.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_tls_reload(tcpkit_tls *t);

/**
 * @brief Makes connections made or accepted with @p o speak TLS.
 *
 * A listener's configuration must have a certificate (#TCPKIT_EINVAL from
 * tcpkit_listen() otherwise).
 *
 * @param o the options.
 * @param t the configuration, or NULL for plain TCP (the default). The
 *          options take their own reference; the one held before is
 *          dropped.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p o; #TCPKIT_ENOTSUP for a
 *         non-NULL @p t without OpenSSL (no such @p t can exist there).
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_tls(tcpkit_opts *o, tcpkit_tls *t);

/**
 * @brief STARTTLS, client side: upgrades a plain connection and handshakes.
 *
 * The handshake is bounded by the connection's timeout and deadline.
 *
 * @param c           a plain connection.
 * @param t           the configuration (the connection keeps what it needs).
 * @param server_name the name to send and verify; NULL verifies the IP
 *                    address @p c is connected to.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p c or @p t, or when @p c
 *         already speaks TLS; #TCPKIT_ETLS when plaintext bytes are
 *         buffered unread (they would be injected into the secure session;
 *         nothing changes) or the handshake fails; #TCPKIT_ECERT;
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ECANCELED; #TCPKIT_ESHUTDOWN;
 *         #TCPKIT_ERESET; #TCPKIT_ENOMEM; #TCPKIT_ESYS; #TCPKIT_ENOTSUP
 *         without OpenSSL.
 *         After a failed handshake the connection is only fit for closing.
 * @par Thread safety: no other thread may use @p c during this call.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_start_tls_client(tcpkit_conn *c, tcpkit_tls *t,
                                                      const char *server_name);

/**
 * @brief STARTTLS, server side: upgrades a plain connection and handshakes.
 *
 * Same rules as tcpkit_conn_start_tls_client(); @p t needs a certificate.
 *
 * @param c a plain connection.
 * @param t the configuration.
 * @return as tcpkit_conn_start_tls_client(), plus #TCPKIT_EINVAL when @p t
 *         has no certificate.
 * @par Thread safety: no other thread may use @p c during this call.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_start_tls_server(tcpkit_conn *c, tcpkit_tls *t);

/**
 * @brief Runs a pending TLS handshake now.
 *
 * Connections accepted from a TLS listener handshake lazily on their first
 * I/O call; this runs it at once, bounded by the connection's timeout and
 * deadline. Call it before handing an accepted connection to a second
 * thread (a sender next to a receiver): two threads that enter the lazy
 * handshake at once work, but in a rare interleaving the one that did not
 * finish it waits for its timeout before noticing.
 *
 * @param c the connection.
 * @return #TCPKIT_OK at once when the handshake is done or @p c is plain;
 *         #TCPKIT_EINVAL for a NULL @p c; #TCPKIT_ETLS; #TCPKIT_ECERT;
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ECANCELED after tcpkit_conn_cancel();
 *         #TCPKIT_ESHUTDOWN; #TCPKIT_ERESET; #TCPKIT_ESYS.
 * @par Thread safety: safe against one concurrent sender and receiver.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_handshake(tcpkit_conn *c);

/**
 * @brief Reports a property of an established TLS connection.
 *
 * @param c    the connection.
 * @param what one of ::tcpkit_tls_info.
 * @param buf  where to write the NUL-terminated string.
 * @param cap  the size of @p buf.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL argument, an unknown
 *         @p what, a plain connection (every connection, without OpenSSL),
 *         a handshake not done yet, or a @p cap too small (nothing is
 *         written past @p cap); #TCPKIT_ENOMEM.
 * @par Thread safety: safe against one concurrent sender and receiver.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_tls_info(const tcpkit_conn *c, tcpkit_tls_info what, char *buf,
                                              size_t cap);
/* 1.1: deadlines, cancellation, buffered bytes                             */
/* ------------------------------------------------------------------------ */

/**
 * @brief Sets an absolute limit for every later blocking call on @p c.
 *
 * From now, @p ms milliseconds is a deadline for every later call on @p c
 * that waits, in both directions, on top of the per-call timeout
 * (whichever ends first wins). This bounds a whole conversation: a client
 * that drips one byte just inside every per-call timeout still meets the
 * deadline. Once the deadline has passed, a call that would have to wait
 * returns #TCPKIT_ETIMEDOUT ("deadline passed" in tcpkit_last_error()),
 * while one that can complete at once (data already there, room to send)
 * still does, exactly as with a timeout of 0. Setting a new deadline
 * replaces the old one; the deadline is measured on the monotonic clock.
 *
 * @param c  the connection.
 * @param ms milliseconds from now; -1 clears the deadline; 0 means "now".
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p c or @p ms < -1.
 * @par Thread safety: not while another thread is in a call on @p c (as
 *      tcpkit_conn_set_timeout()); use tcpkit_conn_cancel() to stop a call
 *      from another thread.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_set_deadline(tcpkit_conn *c, int ms);

/**
 * @brief Bytes already received and held inside the connection.
 *
 * These are bytes read ahead by tcpkit_recv_line() (or, on a TLS
 * connection, already decrypted) that the next receive returns without
 * waiting. A caller that polls tcpkit_conn_fd() itself must drain them
 * first, or it can sleep on data it already has.
 *
 * @param c the connection, or NULL.
 * @return the number of buffered bytes; 0 for NULL.
 * @par Thread safety: the receiving thread, or any thread while no receive
 *      is running on @p c.
 * @since 1.1
 */
TCPKIT_EXPORT size_t tcpkit_conn_buffered(const tcpkit_conn *c);

/**
 * @brief Cancels every call blocked on @p c, and every later one.
 *
 * Every call blocked on @p c (send, receive, in any thread) returns
 * #TCPKIT_ECANCELED promptly (well under 100 ms), and every later I/O call
 * on @p c (send, receive, handshake, tcpkit_close_write()) returns it at
 * once, whether or not it would have waited. The connection is then only
 * good for tcpkit_close() or tcpkit_abort(). Calling it more than once is
 * harmless.
 *
 * How: it sets a flag and shuts the socket down in both directions
 * (`shutdown(SHUT_RDWR)`), which wakes every waiter without an extra
 * descriptor per connection. So the **peer sees an orderly end of stream**
 * (a FIN) after the bytes already handed to the kernel, just as after
 * tcpkit_close(); a peer that must see the conversation fail should be
 * sent a reset with tcpkit_abort() after the cancel. The shutdown acts on
 * the socket, so a copy of the descriptor held elsewhere (e.g. by another
 * process after tcpkit_conn_from_fd()) is shut down too.
 *
 * @param c the connection, or NULL (nothing happens).
 * @par Thread safety: safe, and async-signal-safe: it may be called from
 *      any thread or a signal handler while other threads use @p c. It must
 *      not race with tcpkit_close() / tcpkit_abort() of @p c.
 * @since 1.1
 */
TCPKIT_EXPORT void tcpkit_conn_cancel(tcpkit_conn *c);

/* ------------------------------------------------------------------------ */
/* 1.1: framing, vectors and files                                          */
/* ------------------------------------------------------------------------ */

/**
 * @brief Sends one message: a 4-byte big-endian length, then @p len bytes.
 *
 * TCP has no message boundaries; this is the usual fix. Header and body go
 * out in one system call where the kernel takes them (tcpkit_sendv()).
 * The per-call timeout bounds the whole message.
 *
 * @param c         the connection.
 * @param buf       the body (may be NULL when @p len is 0).
 * @param len       body bytes; at most 4294967295.
 * @param[out] sent frame bytes handed to the kernel, header included
 *                  (`4 + len` on success), also on failure; may be NULL.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p c, a NULL @p buf with
 *         @p len > 0, or @p len > 4294967295; #TCPKIT_ETIMEDOUT;
 *         #TCPKIT_ERESET; #TCPKIT_ESHUTDOWN; #TCPKIT_ECANCELED;
 *         #TCPKIT_ESYS.
 * @par Thread safety: one sender per connection at a time.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_send_msg(tcpkit_conn *c, const void *buf, size_t len, size_t *sent);

/**
 * @brief Receives one message sent by tcpkit_send_msg() into a new buffer.
 *
 * The buffer holds one NUL byte after the body (not counted in @p *len);
 * a 0-length message gives a non-NULL buffer and @p *len 0. Bytes buffered
 * by tcpkit_recv_line() are consumed first. The per-call timeout bounds the
 * whole message.
 *
 * - Announced length > @p max: #TCPKIT_ETOOBIG at once, @p *len = the
 *   announced length, @p *data NULL, the body left unread (the stream is
 *   then mid-message: close it).
 * - End of stream exactly between messages: #TCPKIT_EOF, @p *data NULL,
 *   @p *len 0.
 * - End of stream inside a message: #TCPKIT_EOF with "truncated" in
 *   tcpkit_last_error(); inside the body, what arrived of it is in
 *   @p *data / @p *len; inside the 4-byte header, @p *data NULL and
 *   @p *len 0.
 * - Any other failure inside the body also hands back what arrived of it
 *   in @p *data / @p *len; inside the header, @p *data is NULL and
 *   @p *len 0. The stream is then mid-message (close it), except after
 *   a failure while the 4-byte header was still incomplete (e.g.
 *   #TCPKIT_ETIMEDOUT): then nothing was consumed, and the next call
 *   starts with the header bytes that did arrive.
 *
 * @param c         the connection.
 * @param[out] data receives the buffer (free it with tcpkit_free()), or
 *                  NULL as described above.
 * @param[out] len  body bytes in @p *data (or the announced length with
 *                  #TCPKIT_ETOOBIG); may be NULL.
 * @param max       the largest body to accept; must not be 0.
 * @return #TCPKIT_OK; #TCPKIT_EOF; #TCPKIT_ETOOBIG; #TCPKIT_EINVAL for a
 *         NULL @p c or @p data, or @p max 0; #TCPKIT_ENOMEM;
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET; #TCPKIT_ESHUTDOWN;
 *         #TCPKIT_ECANCELED; #TCPKIT_ESYS.
 * @par Thread safety: one receiver per connection at a time.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_recv_msg(tcpkit_conn *c, void **data, size_t *len, size_t max);

/**
 * @brief Sends every byte of every buffer, in order, without copying them.
 *
 * Uses `sendmsg()` with the caller's buffers; short writes are resumed at
 * the exact byte, across buffer boundaries. The caller's array is never
 * modified. Buffers of length 0 are allowed (their base may be NULL). The
 * per-call timeout bounds the whole call.
 *
 * @param c         the connection.
 * @param iov       the buffers (may be NULL when @p iovcnt is 0).
 * @param iovcnt    how many; 0 is a successful no-op; at most 1024.
 * @param[out] sent bytes handed to the kernel, also on failure; may be NULL.
 * @return #TCPKIT_OK when all were sent; #TCPKIT_EINVAL for a NULL @p c,
 *         @p iovcnt < 0 or > 1024, a NULL @p iov with @p iovcnt > 0, a NULL
 *         base with a length > 0, or lengths whose sum exceeds `SSIZE_MAX`;
 *         #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET; #TCPKIT_ESHUTDOWN;
 *         #TCPKIT_ECANCELED; #TCPKIT_ESYS.
 * @par Thread safety: one sender per connection at a time.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_sendv(tcpkit_conn *c, const struct iovec *iov, int iovcnt,
                                      size_t *sent);

/**
 * @brief Sends @p len bytes of a file from @p offset, without copying them
 *        through user space (`sendfile(2)`).
 *
 * The file's own position (its `lseek` offset) is not changed. On a TLS
 * connection the bytes go through one bounded buffer (read + encrypt). The
 * per-call timeout bounds the whole call.
 *
 * @param c         the connection.
 * @param file_fd   a regular file open for reading; still owned by the
 *                  caller.
 * @param offset    where in the file to start.
 * @param len       how many bytes; 0 is a successful no-op (after the
 *                  checks of @p file_fd).
 * @param[out] sent bytes handed to the kernel, also on failure; may be NULL.
 * @return #TCPKIT_OK when all were sent; #TCPKIT_EOF when the file ends
 *         before `offset + len` (@p *sent says how much was sent);
 *         #TCPKIT_EINVAL for a NULL @p c, or a @p file_fd that is not open
 *         for reading or not a regular file, or an @p offset beyond what
 *         the system's `off_t` holds; #TCPKIT_ETIMEDOUT; #TCPKIT_ERESET;
 *         #TCPKIT_ESHUTDOWN; #TCPKIT_ECANCELED; #TCPKIT_ESYS (e.g. `EIO`
 *         reading the file).
 * @par Thread safety: one sender per connection at a time. Other threads
 *      may use @p file_fd meanwhile (its position is not used).
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_sendfile(tcpkit_conn *c, int file_fd, uint64_t offset, size_t len,
                                         size_t *sent);

/* ------------------------------------------------------------------------ */
/* 1.1: adopting descriptors, choosing the source address                   */
/* ------------------------------------------------------------------------ */

/**
 * @brief Wraps a connected stream socket the caller already has.
 *
 * Accepts `AF_INET` and `AF_INET6` TCP sockets and `AF_UNIX` stream sockets
 * (e.g. from `socketpair()`, or inherited from a parent). Makes the
 * descriptor non-blocking and close-on-exec and applies the options: the
 * io timeout, and on TCP nodelay and keepalive. A Unix-domain address
 * prints as `unix:PATH` (`unix:` when unnamed, `unix:@NAME` for an
 * abstract name); a long path may not fit #TCPKIT_ADDRSTRLEN (then
 * #TCPKIT_EINVAL as for any small buffer; 128 bytes always fit).
 *
 * @param[out] out receives the connection; NULL on failure.
 * @param fd       the descriptor. On success the connection owns it
 *                 (tcpkit_close() closes it); on failure it is left open
 *                 and its flags as they were.
 * @param opts     options, or NULL for the defaults (nodelay on for TCP).
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p out, or an @p fd that is
 *         not an open socket, not a stream socket of those families, not
 *         connected, or listening; #TCPKIT_ENOMEM; #TCPKIT_ESYS.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_conn_from_fd(tcpkit_conn **out, int fd, const tcpkit_opts *opts);

/**
 * @brief Wraps a listening stream socket the caller already has.
 *
 * For systemd socket activation (`LISTEN_FDS`, descriptors from 3 on) or a
 * supervisor that binds privileged ports. Accepts `AF_INET`, `AF_INET6`
 * (TCP) and `AF_UNIX` stream sockets on which `listen()` was called
 * (`SO_ACCEPTCONN`). Makes the descriptor non-blocking and close-on-exec.
 * Everything else (accept, serve, shutdown, close) works as for
 * tcpkit_listen(), and the options apply to accepted connections as they
 * do there (the backlog, reuseport and v6only options are not applied:
 * the socket is already listening). tcpkit_listener_port() is -1 for a
 * Unix-domain listener; tcpkit_listener_addr() gives `unix:PATH`.
 *
 * @param[out] out receives the listener; NULL on failure.
 * @param fd       the descriptor. On success the listener owns it; on
 *                 failure it is left open and its flags as they were.
 * @param opts     options, or NULL for the defaults.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p out, or an @p fd that is
 *         not an open socket, not a stream socket of those families, or
 *         not listening; #TCPKIT_ENOMEM; #TCPKIT_EMFILE (no descriptor for
 *         the shutdown event); #TCPKIT_ESYS.
 * @par Thread safety: safe.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_listener_from_fd(tcpkit_listener **out, int fd,
                                                 const tcpkit_opts *opts);

/**
 * @brief Binds every connection attempt of tcpkit_connect() to a local
 *        address.
 *
 * Only targets of the same family as @p host are tried; if the name has
 * none, tcpkit_connect() returns #TCPKIT_ERESOLVE. With port NULL or "0"
 * the kernel picks the port at connect time (`IP_BIND_ADDRESS_NO_PORT`),
 * so ephemeral ports are not exhausted by bind(). tcpkit_listen() ignores
 * this option.
 *
 * @param o    the options object.
 * @param host a literal IPv4 or IPv6 address ("127.0.0.2", "::1", "[::1]",
 *             "fe80::1%eth0"); names are not accepted. NULL clears the
 *             option.
 * @param port NULL or "0" for any port, else a port number or service name.
 * @return #TCPKIT_OK; #TCPKIT_EINVAL for a NULL @p o, a @p host that is not
 *         a literal address, or a bad @p port.
 * @par Thread safety: not while another thread uses @p o.
 * @since 1.1
 */
TCPKIT_EXPORT tcpkit_err tcpkit_opts_set_local_addr(tcpkit_opts *o, const char *host,
                                                    const char *port);

#ifdef __cplusplus
}
#endif

#endif /* TCPKIT_H */
