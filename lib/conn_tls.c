/* SPDX-License-Identifier: MIT */
/* TLS on a conn: STARTTLS, the handshake and close_notify loops (they wait
 * in tk_conn_wait like every other conn call), and tcpkit_conn_tls_info.
 * The TLS engine itself is tls_conn.c (or tls_none.c without OpenSSL). */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

tcpkit_err tk_conn_attach_tls(tcpkit_conn *c, tcpkit_tls *t, bool server, const char *name,
                              const char *op)
{
    return tk_tls_conn_new(t, c->fd, server, name, op, &c->tls);
}

/* Repeats a non-blocking step (handshake or close_notify) until it is done,
 * waiting for what it asks for in between. */
static tcpkit_err run_steps(tcpkit_conn *c, int (*fn)(struct tk_tls_conn *, short *),
                            tk_deadline *d, const char *op)
{
    for (;;) {
        short wait_for = POLLIN;
        int k = fn(c->tls, &wait_for);
        if (k == 1)
            return TCPKIT_OK;
        if (k < 0) /* a cancel's shutdown shows as a TLS failure: name the cause */
            return tk_conn_check(c, op) != TCPKIT_OK ? TCPKIT_ECANCELED : tk_tls_refail(c->tls, op);
        tcpkit_err err = tk_conn_wait(c, wait_for, d, op);
        if (err != TCPKIT_OK)
            return err;
    }
}

tcpkit_err tk_conn_handshake(tcpkit_conn *c, tk_deadline *d, const char *op)
{
    if (!c->tls || tk_tls_done(c->tls))
        return TCPKIT_OK;
    return run_steps(c, tk_tls_handshake_step, d, op);
}

tcpkit_err tk_conn_tls_close_write(tcpkit_conn *c)
{
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    tcpkit_err err = tk_conn_handshake(c, &d, "close_write");
    if (err == TCPKIT_OK)
        err = run_steps(c, tk_tls_shutdown_step, &d, "close_write");
    if (err != TCPKIT_OK)
        return err;
    if (shutdown(c->fd, SHUT_WR) < 0)
        return tk_fail_errno(errno, "close_write");
    return TCPKIT_OK;
}

tcpkit_err tcpkit_conn_handshake(tcpkit_conn *c)
{
    if (!c)
        return tk_fail(TCPKIT_EINVAL, 0, "conn_handshake: conn is NULL");
    tcpkit_err err = tk_conn_check(c, "conn_handshake");
    if (err != TCPKIT_OK)
        return err;
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    return tk_conn_handshake(c, &d, "conn_handshake");
}

/* STARTTLS: both sides refuse when plaintext is buffered unread, since
 * those bytes would be taken as part of the secure session. */
static tcpkit_err start_tls(tcpkit_conn *c, tcpkit_tls *t, bool server, const char *name,
                            const char *op)
{
    if (!c || !t)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: %s is NULL", op, c ? "tls" : "conn");
    if (c->tls)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: the connection already speaks TLS", op);
    if (c->rend > c->rstart)
        return tk_fail(TCPKIT_ETLS, 0,
                       "%s: %zu plaintext bytes are buffered unread: refusing to upgrade (they "
                       "would be injected into the secure session)",
                       op, c->rend - c->rstart);
    if (server && !tk_tls_has_cert(t))
        return tk_fail(TCPKIT_EINVAL, 0, "%s: the TLS configuration has no certificate", op);
    tcpkit_err err = tk_conn_attach_tls(c, t, server, name, op);
    if (err != TCPKIT_OK)
        return err;
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    return tk_conn_handshake(c, &d, op);
}

tcpkit_err tcpkit_conn_start_tls_client(tcpkit_conn *c, tcpkit_tls *t, const char *server_name)
{
    char addr[TCPKIT_ADDRSTRLEN];
    if (c && !server_name &&
        tk_format_addr((const struct sockaddr *)&c->peer, c->peer_len, false, addr, sizeof addr) >
            0)
        server_name = addr; /* verify the address we are connected to */
    return start_tls(c, t, false, server_name, "conn_start_tls_client");
}

tcpkit_err tcpkit_conn_start_tls_server(tcpkit_conn *c, tcpkit_tls *t)
{
    return start_tls(c, t, true, NULL, "conn_start_tls_server");
}

tcpkit_err tcpkit_conn_tls_info(const tcpkit_conn *c, tcpkit_tls_info what, char *buf, size_t cap)
{
    if (buf && cap)
        buf[0] = '\0';
    if (!c || !buf || cap == 0)
        return tk_fail(TCPKIT_EINVAL, 0, "conn_tls_info: %s",
                       !c     ? "conn is NULL"
                       : !buf ? "buf is NULL"
                              : "capacity is 0");
    if (!c->tls)
        return tk_fail(TCPKIT_EINVAL, 0, "conn_tls_info: not a TLS connection");
    return tk_tls_info(c->tls, what, buf, cap);
}
