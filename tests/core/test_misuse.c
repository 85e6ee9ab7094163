/* SPDX-License-Identifier: MIT */
/* The misuse table, the one place where every public function meets
 * NULL handles, NULL buffers and out-parameters, zero capacities, bad
 * ports, an over-long host name, out-of-range options, max_conns <= 0,
 * timeouts below -1, and use after tcpkit_listener_shutdown. Each row must
 * give its tcpkit_err (never a crash: CI runs this under ASan and
 * Valgrind), write its out-parameters (NULL / 0), write nothing past a
 * capacity, and on failure leave a message (naming the bad argument where
 * the row says which) and, for TCPKIT_EINVAL, errno 0. After every row the
 * handles it was given still work: the pending line on the server side is
 * still there, the listener still times out an accept, and no handler ran.
 *
 * Runs in a private network namespace where possible, so the service-name
 * rows ("abc") cannot cause traffic; their host is numeric, so only
 * /etc/services is consulted anyway. */
#include "helpers.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

struct ctx {
    tcpkit_opts *o;
    tcpkit_listener *l;      /* a working listener, never connected to */
    tcpkit_listener *target; /* what the connect rows connect to (port) */
    tcpkit_listener *shut;   /* shut down, not closed */
    tcpkit_conn *c;          /* a connected client... */
    tcpkit_conn *s;          /* ...and its server side */
    char port[16];
    char long_host[300];
    bool outs_ok; /* every out-parameter was written */
    bool no_overrun;
    int handler_calls; /* a rejected tcpkit_serve must start nothing */
};

/* Sentinels that a call must overwrite. */
#define BAD_CONN ((tcpkit_conn *)8)
#define BAD_LISTENER ((tcpkit_listener *)8)
#define BAD_OPTS ((tcpkit_opts *)8)
#define BAD_SIZE ((size_t)0xdead)
/* What the client sent before each row; still unread after it. */
#define PENDING "data\n"

static void handler(tcpkit_conn *c, void *arg)
{
    (void)c;
    struct ctx *x = arg;
    x->handler_calls++;
}

/* ---- rows ---- */

#define ROW(name) static tcpkit_err name(struct ctx *x)

ROW(opts_new_null)
{
    (void)x;
    return tcpkit_opts_new(NULL);
}
ROW(set_ct_null)
{
    (void)x;
    return tcpkit_opts_set_connect_timeout(NULL, 5);
}
ROW(set_io_null)
{
    (void)x;
    return tcpkit_opts_set_io_timeout(NULL, 5);
}
ROW(set_family_null)
{
    (void)x;
    return tcpkit_opts_set_family(NULL, TCPKIT_FAMILY_ANY);
}
ROW(set_nodelay_null)
{
    (void)x;
    return tcpkit_opts_set_nodelay(NULL, true);
}
ROW(set_keepalive_null)
{
    (void)x;
    return tcpkit_opts_set_keepalive(NULL, 1);
}
ROW(set_backlog_null)
{
    (void)x;
    return tcpkit_opts_set_backlog(NULL, 1);
}
ROW(set_reuseport_null)
{
    (void)x;
    return tcpkit_opts_set_reuseport(NULL, true);
}
ROW(set_v6only_null)
{
    (void)x;
    return tcpkit_opts_set_v6only(NULL, true);
}
ROW(set_fallback_null)
{
    (void)x;
    return tcpkit_opts_set_fallback_delay(NULL, 1);
}
ROW(set_io_intmin)
{
    return tcpkit_opts_set_io_timeout(x->o, INT_MIN);
}
ROW(set_family_42)
{
    return tcpkit_opts_set_family(x->o, (tcpkit_family)42);
}
ROW(set_ct_minus2)
{
    return tcpkit_opts_set_connect_timeout(x->o, -2);
}
ROW(set_ct_intmin)
{
    return tcpkit_opts_set_connect_timeout(x->o, INT_MIN);
}
ROW(set_io_minus2)
{
    return tcpkit_opts_set_io_timeout(x->o, -2);
}
ROW(set_io_minus1)
{
    return tcpkit_opts_set_io_timeout(x->o, -1);
}
ROW(set_family_7)
{
    return tcpkit_opts_set_family(x->o, (tcpkit_family)7);
}
ROW(set_family_neg)
{
    return tcpkit_opts_set_family(x->o, (tcpkit_family)-1);
}
ROW(set_keepalive_neg)
{
    return tcpkit_opts_set_keepalive(x->o, -1);
}
ROW(set_backlog_0)
{
    return tcpkit_opts_set_backlog(x->o, 0);
}
ROW(set_backlog_neg)
{
    return tcpkit_opts_set_backlog(x->o, -5);
}
ROW(set_fallback_neg)
{
    return tcpkit_opts_set_fallback_delay(x->o, -1);
}
ROW(set_fallback_big)
{
    return tcpkit_opts_set_fallback_delay(x->o, 60001);
}

static tcpkit_err connect_to(struct ctx *x, const char *host, const char *port)
{
    tcpkit_conn *c = BAD_CONN;
    tcpkit_err err = tcpkit_connect(&c, host, port, x->o);
    x->outs_ok = c == NULL || err == TCPKIT_OK;
    tcpkit_close(err == TCPKIT_OK ? c : NULL);
    return err;
}

ROW(connect_out_null)
{
    return tcpkit_connect(NULL, "127.0.0.1", x->port, NULL);
}
ROW(connect_host_null)
{
    return connect_to(x, NULL, x->port);
}
ROW(connect_host_empty)
{
    return connect_to(x, "", x->port);
}
ROW(connect_host_brackets_empty)
{
    return connect_to(x, "[]", x->port);
}
ROW(connect_host_long)
{
    return connect_to(x, x->long_host, x->port);
}
ROW(connect_port_null)
{
    return connect_to(x, "127.0.0.1", NULL);
}
ROW(connect_port_empty)
{
    return connect_to(x, "127.0.0.1", "");
}
ROW(connect_port_0)
{
    return connect_to(x, "127.0.0.1", "0");
}
ROW(connect_port_65536)
{
    return connect_to(x, "127.0.0.1", "65536");
}
ROW(connect_port_minus1)
{
    return connect_to(x, "127.0.0.1", "-1");
}
ROW(connect_port_huge)
{
    return connect_to(x, "127.0.0.1", "99999999999999999999");
}
ROW(connect_port_abc)
{
    return connect_to(x, "127.0.0.1", "abc");
}
ROW(connect_ok)
{
    return connect_to(x, "127.0.0.1", x->port);
}

static tcpkit_err listen_on(struct ctx *x, const char *host, const char *port)
{
    tcpkit_listener *l = BAD_LISTENER;
    tcpkit_err err = tcpkit_listen(&l, host, port, NULL);
    x->outs_ok = l == NULL || err == TCPKIT_OK;
    tcpkit_listener_close(err == TCPKIT_OK ? l : NULL);
    return err;
}

ROW(listen_out_null)
{
    (void)x;
    return tcpkit_listen(NULL, "127.0.0.1", "0", NULL);
}
ROW(listen_port_null)
{
    return listen_on(x, "127.0.0.1", NULL);
}
ROW(listen_port_65536)
{
    return listen_on(x, "127.0.0.1", "65536");
}
ROW(listen_port_minus1)
{
    return listen_on(x, "127.0.0.1", "-1");
}
ROW(listen_port_abc)
{
    return listen_on(x, "127.0.0.1", "abc");
}
ROW(listen_host_long)
{
    return listen_on(x, x->long_host, "0");
}

/* Address accessors: nothing written past cap (a canary follows). */
static tcpkit_err addr_call(struct ctx *x, int which, bool null_handle, bool null_buf, size_t cap)
{
    char buf[TCPKIT_ADDRSTRLEN + 8];
    memset(buf, '#', sizeof buf);
    char *b = null_buf ? NULL : buf;
    tcpkit_err err;
    if (which == 0)
        err = tcpkit_listener_addr(null_handle ? NULL : x->l, b, cap);
    else if (which == 1)
        err = tcpkit_conn_peer(null_handle ? NULL : x->c, b, cap);
    else
        err = tcpkit_conn_local(null_handle ? NULL : x->c, b, cap);
    x->no_overrun = true;
    for (size_t i = cap; i < sizeof buf; i++)
        x->no_overrun = x->no_overrun && buf[i] == '#';
    if (cap > 0 && !null_buf && err != TCPKIT_OK)
        x->outs_ok = buf[0] == '\0';
    return err;
}

ROW(laddr_null)
{
    return addr_call(x, 0, true, false, 64);
}
ROW(laddr_buf_null)
{
    return addr_call(x, 0, false, true, 64);
}
ROW(laddr_cap0)
{
    return addr_call(x, 0, false, false, 0);
}
ROW(laddr_cap5)
{
    return addr_call(x, 0, false, false, 5);
}
ROW(peer_null)
{
    return addr_call(x, 1, true, false, 64);
}
ROW(peer_buf_null)
{
    return addr_call(x, 1, false, true, 64);
}
ROW(peer_cap0)
{
    return addr_call(x, 1, false, false, 0);
}
ROW(peer_cap3)
{
    return addr_call(x, 1, false, false, 3);
}
ROW(local_null)
{
    return addr_call(x, 2, true, false, 64);
}
ROW(local_buf_null)
{
    return addr_call(x, 2, false, true, 64);
}
ROW(local_cap0)
{
    return addr_call(x, 2, false, false, 0);
}
ROW(local_cap3)
{
    return addr_call(x, 2, false, false, 3);
}

static tcpkit_err accept_on(struct ctx *x, tcpkit_listener *l, int timeout)
{
    tcpkit_conn *c = BAD_CONN;
    tcpkit_err err = tcpkit_accept(l, &c, timeout);
    x->outs_ok = c == NULL;
    tcpkit_close(err == TCPKIT_OK ? c : NULL);
    return err;
}

ROW(accept_null)
{
    return accept_on(x, NULL, 0);
}
ROW(accept_out_null)
{
    return tcpkit_accept(x->l, NULL, 0);
}
ROW(accept_timeout_minus2)
{
    return accept_on(x, x->l, -2);
}
ROW(accept_timeout_intmin)
{
    return accept_on(x, x->l, INT_MIN);
}
ROW(accept_timeout_0)
{
    return accept_on(x, x->l, 0);
}
ROW(accept_after_shutdown)
{
    return accept_on(x, x->shut, 0);
}
ROW(accept_after_shutdown_wait)
{
    return accept_on(x, x->shut, -1);
}

ROW(serve_null)
{
    (void)x;
    return tcpkit_serve(NULL, handler, x, 1);
}
ROW(serve_fn_null)
{
    return tcpkit_serve(x->l, NULL, x, 1);
}
ROW(serve_max0)
{
    return tcpkit_serve(x->l, handler, x, 0);
}
ROW(serve_max_neg)
{
    return tcpkit_serve(x->l, handler, x, -1);
}
ROW(serve_max_minus5)
{
    return tcpkit_serve(x->l, handler, x, -5);
}
ROW(serve_all_bad)
{
    (void)x;
    return tcpkit_serve(NULL, NULL, NULL, 0);
}
ROW(serve_after_shutdown)
{
    return tcpkit_serve(x->shut, handler, x, 1);
}

/* ---- 1.1: serving with options, fibers ---- */

ROW(serve_with_null)
{
    return tcpkit_serve_with(NULL, handler, x, x->o);
}
ROW(serve_with_fn_null)
{
    return tcpkit_serve_with(x->l, NULL, x, NULL);
}
ROW(serve_with_after_shutdown)
{
    return tcpkit_serve_with(x->shut, handler, x, NULL);
}
ROW(set_serve_mode_null)
{
    (void)x;
    return tcpkit_opts_set_serve_mode(NULL, TCPKIT_SERVE_FIBERS);
}
ROW(set_serve_mode_2)
{
    return tcpkit_opts_set_serve_mode(x->o, (tcpkit_serve_mode)2);
}
ROW(set_max_conns_null)
{
    (void)x;
    return tcpkit_opts_set_max_conns(NULL, 10);
}
ROW(set_max_conns_0)
{
    return tcpkit_opts_set_max_conns(x->o, 0);
}
ROW(set_serve_threads_null)
{
    (void)x;
    return tcpkit_opts_set_serve_threads(NULL, 1);
}
ROW(set_serve_threads_neg)
{
    return tcpkit_opts_set_serve_threads(x->o, -1);
}
ROW(set_stack_size_null)
{
    (void)x;
    return tcpkit_opts_set_stack_size(NULL, 65536);
}
ROW(set_stack_size_small)
{
    return tcpkit_opts_set_stack_size(x->o, 16383);
}
ROW(set_stack_size_huge)
{
    return tcpkit_opts_set_stack_size(x->o, (size_t)-1);
}
ROW(sleep_neg)
{
    (void)x;
    return tcpkit_sleep(-1);
}
ROW(run_blocking_null)
{
    return tcpkit_run_blocking(NULL, x);
}

static tcpkit_err send_call(struct ctx *x, tcpkit_conn *c, const void *buf, size_t len)
{
    size_t sent = BAD_SIZE;
    tcpkit_err err = tcpkit_send_all(c, buf, len, &sent);
    x->outs_ok = sent == (err == TCPKIT_OK ? len : 0);
    return err;
}

ROW(send_null)
{
    return send_call(x, NULL, "abc", 3);
}
ROW(send_null_out_null)
{
    (void)x;
    return tcpkit_send_all(NULL, "x", 1, NULL);
}
ROW(send_buf_null)
{
    return send_call(x, x->c, NULL, 3);
}
ROW(send_buf_null_len0)
{
    return send_call(x, x->c, NULL, 0);
}
ROW(send_len0)
{
    return send_call(x, x->c, "abc", 0);
}

static tcpkit_err recv_call(struct ctx *x, int which, tcpkit_conn *c, bool null_buf, size_t cap)
{
    char buf[16];
    char *b = null_buf ? NULL : buf;
    size_t n = BAD_SIZE;
    tcpkit_err err;
    if (which == 0)
        err = tcpkit_recv(c, b, cap, &n);
    else if (which == 1)
        err = tcpkit_recv_exact(c, b, cap, &n);
    else
        err = tcpkit_recv_line(c, b, cap, &n);
    x->outs_ok = n == 0;
    return err;
}

ROW(recv_null)
{
    return recv_call(x, 0, NULL, false, 16);
}
ROW(recv_null_out_null)
{
    (void)x;
    char buf[16];
    return tcpkit_recv(NULL, buf, sizeof buf, NULL);
}
ROW(recv_buf_null)
{
    return recv_call(x, 0, x->s, true, 16);
}
ROW(recv_cap0)
{
    return recv_call(x, 0, x->s, false, 0);
}
ROW(recv_exact_null)
{
    return recv_call(x, 1, NULL, false, 16);
}
ROW(recv_exact_buf_null)
{
    return recv_call(x, 1, x->s, true, 16);
}
ROW(recv_exact_len0)
{
    return recv_call(x, 1, x->s, false, 0);
}
ROW(recv_exact_null_len0)
{
    return recv_call(x, 1, x->s, true, 0);
}
ROW(recv_line_null)
{
    return recv_call(x, 2, NULL, false, 16);
}
ROW(recv_line_buf_null)
{
    return recv_call(x, 2, x->s, true, 16);
}
ROW(recv_line_cap0)
{
    return recv_call(x, 2, x->s, false, 0);
}

static tcpkit_err recv_all_call(struct ctx *x, tcpkit_conn *c, bool null_data, size_t max)
{
    void *d = (void *)8;
    size_t n = BAD_SIZE;
    tcpkit_err err = tcpkit_recv_all(c, null_data ? NULL : &d, &n, max);
    x->outs_ok = n == 0 && (null_data || d == NULL);
    return err;
}

ROW(recv_all_null)
{
    return recv_all_call(x, NULL, false, 10);
}
ROW(recv_all_data_null)
{
    return recv_all_call(x, x->s, true, 10);
}
ROW(recv_all_max0)
{
    return recv_all_call(x, x->s, false, 0);
}

ROW(close_write_null)
{
    (void)x;
    return tcpkit_close_write(NULL);
}
ROW(set_timeout_null)
{
    (void)x;
    return tcpkit_conn_set_timeout(NULL, 0);
}
ROW(set_timeout_minus2)
{
    return tcpkit_conn_set_timeout(x->s, -2);
}
ROW(set_timeout_intmin)
{
    return tcpkit_conn_set_timeout(x->s, INT_MIN);
}

/* void and int functions: NULL is harmless, -1 for the accessors. */
ROW(void_functions_take_null)
{
    (void)x;
    tcpkit_close(NULL);
    tcpkit_abort(NULL);
    tcpkit_listener_close(NULL);
    tcpkit_listener_shutdown(NULL);
    tcpkit_opts_free(NULL);
    tcpkit_free(NULL);
    bool ok = tcpkit_conn_fd(NULL) == -1 && tcpkit_listener_fd(NULL) == -1 &&
              tcpkit_listener_port(NULL) == -1 && tcpkit_strerror((tcpkit_err)99) != NULL &&
              tcpkit_strerror((tcpkit_err)-5) != NULL && tcpkit_last_error() != NULL &&
              tcpkit_version() != NULL;
    return ok ? TCPKIT_OK : TCPKIT_ESYS;
}

/* Shutting a listener down twice is harmless; it stays usable for
 * accessors until closed. */
ROW(shutdown_twice)
{
    tcpkit_listener_shutdown(x->shut);
    tcpkit_listener_shutdown(x->shut);
    return tcpkit_listener_port(x->shut) > 0 ? TCPKIT_OK : TCPKIT_ESYS;
}

/* ---- 1.1: deadlines, cancel, framing, vectors, files, adoption ---- */

ROW(deadline_null)
{
    (void)x;
    return tcpkit_conn_set_deadline(NULL, 0);
}
ROW(deadline_minus2)
{
    return tcpkit_conn_set_deadline(x->s, -2);
}
ROW(deadline_intmin)
{
    return tcpkit_conn_set_deadline(x->s, INT_MIN);
}
ROW(cancel_and_buffered_take_null)
{
    (void)x;
    tcpkit_conn_cancel(NULL);
    return tcpkit_conn_buffered(NULL) == 0 ? TCPKIT_OK : TCPKIT_ESYS;
}

static tcpkit_err send_msg_call(struct ctx *x, tcpkit_conn *c, const void *buf, size_t len)
{
    size_t sent = BAD_SIZE;
    tcpkit_err err = tcpkit_send_msg(c, buf, len, &sent);
    x->outs_ok = sent == (err == TCPKIT_OK ? len + 4 : 0);
    return err;
}
ROW(send_msg_null)
{
    return send_msg_call(x, NULL, "x", 1);
}
ROW(send_msg_buf_null)
{
    return send_msg_call(x, x->c, NULL, 1);
}
ROW(send_msg_too_long)
{
#if SIZE_MAX > UINT32_MAX
    return send_msg_call(x, x->c, "x", (size_t)UINT32_MAX + 1);
#else
    (void)x;
    return tcpkit_send_msg(NULL, "x", 1, NULL);
#endif
}

static tcpkit_err recv_msg_call(struct ctx *x, tcpkit_conn *c, bool with_data, size_t max)
{
    void *data = BAD_CONN;
    size_t len = BAD_SIZE;
    tcpkit_err err = tcpkit_recv_msg(c, with_data ? &data : NULL, &len, max);
    x->outs_ok = len == 0 && (!with_data || data == NULL);
    return err;
}
ROW(recv_msg_null)
{
    return recv_msg_call(x, NULL, true, 10);
}
ROW(recv_msg_data_null)
{
    return recv_msg_call(x, x->s, false, 10);
}
ROW(recv_msg_max0)
{
    return recv_msg_call(x, x->s, true, 0);
}

static tcpkit_err sendv_call(struct ctx *x, tcpkit_conn *c, const struct iovec *iov, int n)
{
    size_t sent = BAD_SIZE;
    tcpkit_err err = tcpkit_sendv(c, iov, n, &sent);
    x->outs_ok = sent == 0;
    return err;
}
static struct iovec one_iov = {"x", 1};
ROW(sendv_null)
{
    return sendv_call(x, NULL, &one_iov, 1);
}
ROW(sendv_iov_null)
{
    return sendv_call(x, x->c, NULL, 1);
}
ROW(sendv_cnt_neg)
{
    return sendv_call(x, x->c, &one_iov, -1);
}
ROW(sendv_cnt_1025)
{
    return sendv_call(x, x->c, &one_iov, 1025);
}
ROW(sendv_base_null)
{
    static struct iovec bad = {NULL, 4};
    return sendv_call(x, x->c, &bad, 1);
}
ROW(sendv_cnt0)
{
    return sendv_call(x, x->c, NULL, 0);
}

static tcpkit_err sendfile_call(struct ctx *x, tcpkit_conn *c, int fd)
{
    size_t sent = BAD_SIZE;
    tcpkit_err err = tcpkit_sendfile(c, fd, 0, 1, &sent);
    x->outs_ok = sent == 0;
    return err;
}
ROW(sendfile_null)
{
    return sendfile_call(x, NULL, 0);
}
ROW(sendfile_fd_minus1)
{
    return sendfile_call(x, x->c, -1);
}
ROW(sendfile_socket)
{
    return sendfile_call(x, x->c, tcpkit_conn_fd(x->s));
}

ROW(conn_from_fd_out_null)
{
    return tcpkit_conn_from_fd(NULL, tcpkit_conn_fd(x->c), NULL);
}
ROW(conn_from_fd_minus1)
{
    tcpkit_conn *c = BAD_CONN;
    tcpkit_err err = tcpkit_conn_from_fd(&c, -1, NULL);
    x->outs_ok = c == NULL;
    return err;
}
ROW(conn_from_fd_listening)
{
    tcpkit_conn *c = BAD_CONN;
    tcpkit_err err = tcpkit_conn_from_fd(&c, tcpkit_listener_fd(x->l), NULL);
    x->outs_ok = c == NULL;
    return err;
}
ROW(listener_from_fd_out_null)
{
    return tcpkit_listener_from_fd(NULL, tcpkit_listener_fd(x->l), NULL);
}
ROW(listener_from_fd_connected)
{
    tcpkit_listener *l = BAD_LISTENER;
    tcpkit_err err = tcpkit_listener_from_fd(&l, tcpkit_conn_fd(x->s), NULL);
    x->outs_ok = l == NULL;
    return err;
}
ROW(local_addr_null)
{
    (void)x;
    return tcpkit_opts_set_local_addr(NULL, "127.0.0.1", NULL);
}
ROW(local_addr_name)
{
    return tcpkit_opts_set_local_addr(x->o, "localhost", NULL);
}
ROW(local_addr_empty)
{
    return tcpkit_opts_set_local_addr(x->o, "", NULL);
}
ROW(local_addr_port_65536)
{
    return tcpkit_opts_set_local_addr(x->o, "127.0.0.1", "65536");
}

/* TLS rows: the same answer with and without OpenSSL in the build. */
ROW(opts_set_tls_null)
{
    (void)x;
    return tcpkit_opts_set_tls(NULL, NULL);
}
ROW(handshake_null)
{
    (void)x;
    return tcpkit_conn_handshake(NULL);
}
ROW(handshake_plain)
{
    tcpkit_tls_free(NULL);
    return tcpkit_conn_handshake(x->s); /* nothing pending: OK at once */
}
static tcpkit_err tls_info_call(struct ctx *x, tcpkit_conn *c, size_t cap)
{
    char buf[8] = "zzzzzzz";
    tcpkit_err err = tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_VERSION, buf, cap);
    x->outs_ok = cap == 0 ? buf[0] == 'z' : buf[0] == '\0';
    x->no_overrun = buf[1] == 'z';
    return err;
}
ROW(tls_info_null)
{
    return tls_info_call(x, NULL, sizeof(char[8]));
}
ROW(tls_info_plain)
{
    return tls_info_call(x, x->c, 1);
}
ROW(tls_info_cap0)
{
    return tls_info_call(x, x->c, 0);
}
ROW(start_tls_client_null)
{
    (void)x;
    return tcpkit_conn_start_tls_client(NULL, NULL, NULL);
}
ROW(start_tls_server_tls_null)
{
    return tcpkit_conn_start_tls_server(x->s, NULL);
}

struct row {
    const char *name;
    tcpkit_err (*fn)(struct ctx *);
    tcpkit_err want;
    const char *says; /* the message must contain this; NULL: any message */
};

#define R(fn, want)                                                                                \
    {                                                                                              \
#fn, fn, want, NULL                                                                        \
    }
/* A row whose message must name the bad argument. */
#define RM(fn, want, says)                                                                         \
    {                                                                                              \
#fn, fn, want, says                                                                        \
    }
static const struct row rows[] = {
    R(opts_new_null, TCPKIT_EINVAL),
    R(set_ct_null, TCPKIT_EINVAL),
    R(set_io_null, TCPKIT_EINVAL),
    R(set_family_null, TCPKIT_EINVAL),
    R(set_nodelay_null, TCPKIT_EINVAL),
    R(set_keepalive_null, TCPKIT_EINVAL),
    R(set_backlog_null, TCPKIT_EINVAL),
    R(set_reuseport_null, TCPKIT_EINVAL),
    R(set_v6only_null, TCPKIT_EINVAL),
    R(set_fallback_null, TCPKIT_EINVAL),
    R(set_ct_minus2, TCPKIT_EINVAL),
    R(set_ct_intmin, TCPKIT_EINVAL),
    R(set_io_minus2, TCPKIT_EINVAL),
    R(set_io_minus1, TCPKIT_OK),
    R(set_io_intmin, TCPKIT_EINVAL),
    R(set_family_42, TCPKIT_EINVAL),
    R(set_family_7, TCPKIT_EINVAL),
    R(set_family_neg, TCPKIT_EINVAL),
    R(set_keepalive_neg, TCPKIT_EINVAL),
    R(set_backlog_0, TCPKIT_EINVAL),
    R(set_backlog_neg, TCPKIT_EINVAL),
    R(set_fallback_neg, TCPKIT_EINVAL),
    R(set_fallback_big, TCPKIT_EINVAL),
    R(connect_out_null, TCPKIT_EINVAL),
    R(connect_host_null, TCPKIT_EINVAL),
    R(connect_host_empty, TCPKIT_EINVAL),
    R(connect_host_brackets_empty, TCPKIT_EINVAL),
    R(connect_host_long, TCPKIT_EINVAL),
    R(connect_port_null, TCPKIT_EINVAL),
    R(connect_port_empty, TCPKIT_EINVAL),
    R(connect_port_0, TCPKIT_EINVAL),
    R(connect_port_65536, TCPKIT_EINVAL),
    R(connect_port_minus1, TCPKIT_EINVAL),
    R(connect_port_huge, TCPKIT_EINVAL),
    R(connect_port_abc, TCPKIT_ERESOLVE),
    R(connect_ok, TCPKIT_OK),
    R(listen_out_null, TCPKIT_EINVAL),
    R(listen_port_null, TCPKIT_EINVAL),
    R(listen_port_65536, TCPKIT_EINVAL),
    R(listen_port_minus1, TCPKIT_EINVAL),
    R(listen_port_abc, TCPKIT_ERESOLVE),
    R(listen_host_long, TCPKIT_EINVAL),
    R(laddr_null, TCPKIT_EINVAL),
    R(laddr_buf_null, TCPKIT_EINVAL),
    R(laddr_cap0, TCPKIT_EINVAL),
    R(laddr_cap5, TCPKIT_EINVAL),
    R(peer_null, TCPKIT_EINVAL),
    R(peer_buf_null, TCPKIT_EINVAL),
    R(peer_cap0, TCPKIT_EINVAL),
    R(peer_cap3, TCPKIT_EINVAL),
    R(local_null, TCPKIT_EINVAL),
    R(local_buf_null, TCPKIT_EINVAL),
    R(local_cap0, TCPKIT_EINVAL),
    R(local_cap3, TCPKIT_EINVAL),
    R(accept_null, TCPKIT_EINVAL),
    R(accept_out_null, TCPKIT_EINVAL),
    R(accept_timeout_minus2, TCPKIT_EINVAL),
    R(accept_timeout_intmin, TCPKIT_EINVAL),
    R(accept_timeout_0, TCPKIT_ETIMEDOUT),
    R(accept_after_shutdown, TCPKIT_ESHUTDOWN),
    R(accept_after_shutdown_wait, TCPKIT_ESHUTDOWN),
    RM(serve_null, TCPKIT_EINVAL, "listener"),
    RM(serve_fn_null, TCPKIT_EINVAL, "handler"),
    RM(serve_max0, TCPKIT_EINVAL, "max_conns"),
    R(serve_max_neg, TCPKIT_EINVAL),
    R(serve_max_minus5, TCPKIT_EINVAL),
    R(serve_all_bad, TCPKIT_EINVAL),
    R(serve_after_shutdown, TCPKIT_OK),
    RM(serve_with_null, TCPKIT_EINVAL, "listener"),
    RM(serve_with_fn_null, TCPKIT_EINVAL, "handler"),
    R(serve_with_after_shutdown, TCPKIT_OK),
    R(set_serve_mode_null, TCPKIT_EINVAL),
    R(set_serve_mode_2, TCPKIT_EINVAL),
    R(set_max_conns_null, TCPKIT_EINVAL),
    R(set_max_conns_0, TCPKIT_EINVAL),
    R(set_serve_threads_null, TCPKIT_EINVAL),
    R(set_serve_threads_neg, TCPKIT_EINVAL),
    R(set_stack_size_null, TCPKIT_EINVAL),
    RM(set_stack_size_small, TCPKIT_EINVAL, "stack_size"),
    RM(set_stack_size_huge, TCPKIT_EINVAL, "stack_size"),
    R(sleep_neg, TCPKIT_EINVAL),
    R(run_blocking_null, TCPKIT_EINVAL),
    R(send_null, TCPKIT_EINVAL),
    R(send_null_out_null, TCPKIT_EINVAL),
    R(send_buf_null, TCPKIT_EINVAL),
    R(send_buf_null_len0, TCPKIT_OK),
    R(send_len0, TCPKIT_OK),
    R(recv_null, TCPKIT_EINVAL),
    R(recv_null_out_null, TCPKIT_EINVAL),
    R(recv_buf_null, TCPKIT_EINVAL),
    R(recv_cap0, TCPKIT_EINVAL),
    R(recv_exact_null, TCPKIT_EINVAL),
    R(recv_exact_buf_null, TCPKIT_EINVAL),
    R(recv_exact_len0, TCPKIT_OK),
    R(recv_exact_null_len0, TCPKIT_OK),
    R(recv_line_null, TCPKIT_EINVAL),
    R(recv_line_buf_null, TCPKIT_EINVAL),
    R(recv_line_cap0, TCPKIT_EINVAL),
    R(recv_all_null, TCPKIT_EINVAL),
    R(recv_all_data_null, TCPKIT_EINVAL),
    R(recv_all_max0, TCPKIT_EINVAL),
    R(close_write_null, TCPKIT_EINVAL),
    R(set_timeout_null, TCPKIT_EINVAL),
    R(set_timeout_minus2, TCPKIT_EINVAL),
    R(set_timeout_intmin, TCPKIT_EINVAL),
    R(void_functions_take_null, TCPKIT_OK),
    R(shutdown_twice, TCPKIT_OK),
    R(deadline_null, TCPKIT_EINVAL),
    R(deadline_minus2, TCPKIT_EINVAL),
    R(deadline_intmin, TCPKIT_EINVAL),
    R(cancel_and_buffered_take_null, TCPKIT_OK),
    R(send_msg_null, TCPKIT_EINVAL),
    R(send_msg_buf_null, TCPKIT_EINVAL),
    R(send_msg_too_long, TCPKIT_EINVAL),
    R(recv_msg_null, TCPKIT_EINVAL),
    R(recv_msg_data_null, TCPKIT_EINVAL),
    RM(recv_msg_max0, TCPKIT_EINVAL, "max"),
    R(sendv_null, TCPKIT_EINVAL),
    RM(sendv_iov_null, TCPKIT_EINVAL, "iov"),
    RM(sendv_cnt_neg, TCPKIT_EINVAL, "iovcnt"),
    RM(sendv_cnt_1025, TCPKIT_EINVAL, "iovcnt"),
    R(sendv_base_null, TCPKIT_EINVAL),
    R(sendv_cnt0, TCPKIT_OK),
    R(sendfile_null, TCPKIT_EINVAL),
    R(sendfile_fd_minus1, TCPKIT_EINVAL),
    RM(sendfile_socket, TCPKIT_EINVAL, "regular file"),
    R(conn_from_fd_out_null, TCPKIT_EINVAL),
    R(conn_from_fd_minus1, TCPKIT_EINVAL),
    RM(conn_from_fd_listening, TCPKIT_EINVAL, "listening"),
    R(listener_from_fd_out_null, TCPKIT_EINVAL),
    RM(listener_from_fd_connected, TCPKIT_EINVAL, "not listening"),
    R(local_addr_null, TCPKIT_EINVAL),
    R(local_addr_name, TCPKIT_EINVAL),
    R(local_addr_empty, TCPKIT_EINVAL),
    R(local_addr_port_65536, TCPKIT_EINVAL),
    R(opts_set_tls_null, TCPKIT_EINVAL),
    R(handshake_null, TCPKIT_EINVAL),
    R(handshake_plain, TCPKIT_OK),
    R(tls_info_null, TCPKIT_EINVAL),
    RM(tls_info_plain, TCPKIT_EINVAL, "not a TLS connection"),
    RM(tls_info_cap0, TCPKIT_EINVAL, "capacity"),
    R(start_tls_client_null, TCPKIT_EINVAL),
    RM(start_tls_server_tls_null, TCPKIT_EINVAL, "tls is NULL"),
};

static struct ctx ctx;
static int fd_baseline;

/* The shared helpers' fd fixture would run its teardown before ours (Check
 * runs teardowns in the order they were added), so this fixture checks
 * descriptors itself: counted before the context opens anything and after
 * it closed everything. */
static void ctx_setup(void)
{
    fd_baseline = th_count_fds();
    memset(&ctx, 0, sizeof ctx);
    ck_assert_int_eq(tcpkit_opts_new(&ctx.o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_connect_timeout(ctx.o, 2000), TCPKIT_OK);
    ctx.l = th_listen_loopback("127.0.0.1");
    ctx.target = th_listen_loopback("127.0.0.1");
    th_port_str(ctx.target, ctx.port, sizeof ctx.port);
    ctx.shut = th_listen_loopback("127.0.0.1");
    tcpkit_listener_shutdown(ctx.shut);
    th_pair(&ctx.c, &ctx.s);
    /* A line waits on s: a receive that got past its checks would consume
     * it (the teardown looks for it); and it gets no time to wait. */
    ck_assert_int_eq(tcpkit_send_all(ctx.c, PENDING, strlen(PENDING), NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_set_timeout(ctx.s, 0), TCPKIT_OK);
    memset(ctx.long_host, 'a', 254);
    ctx.long_host[254] = '\0';
}

/* The handles survived the row: nothing read, nothing accepted or served. */
static void check_handles_intact(void)
{
    char buf[16];
    size_t n = 0;
    ck_assert_int_eq(tcpkit_conn_set_timeout(ctx.s, 5000 * th_time_scale()), TCPKIT_OK);
    tcpkit_err e = tcpkit_recv_exact(ctx.s, buf, strlen(PENDING), &n);
    ck_assert_msg(e == TCPKIT_OK, "pending line: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert(memcmp(buf, PENDING, strlen(PENDING)) == 0);
    tcpkit_conn *c = BAD_CONN;
    ck_assert_int_eq(tcpkit_accept(ctx.l, &c, 0), TCPKIT_ETIMEDOUT);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(ctx.handler_calls, 0);
}

static void ctx_teardown(void)
{
    check_handles_intact();
    tcpkit_close(ctx.c);
    tcpkit_close(ctx.s);
    tcpkit_listener_close(ctx.l);
    tcpkit_listener_close(ctx.target);
    tcpkit_listener_close(ctx.shut);
    tcpkit_opts_free(ctx.o);
    ck_assert_msg(th_count_fds() == fd_baseline, "descriptor leak: %d before, %d after",
                  fd_baseline, th_count_fds());
}

START_TEST(misuse_row)
{
    const struct row *r = &rows[_i];
    ctx.outs_ok = true;
    ctx.no_overrun = true;
    tcpkit_err err = r->fn(&ctx);
    ck_assert_msg(err == r->want, "%s: %s (%s), want %s", r->name, tcpkit_strerror(err),
                  tcpkit_last_error(), tcpkit_strerror(r->want));
    ck_assert_msg(ctx.outs_ok, "%s: out-parameter not written", r->name);
    ck_assert_msg(ctx.no_overrun, "%s: wrote past cap", r->name);
    if (err != TCPKIT_OK)
        ck_assert_msg(tcpkit_last_error()[0] != '\0', "%s: no message", r->name);
    if (err == TCPKIT_EINVAL)
        ck_assert_msg(tcpkit_last_errno() == 0, "%s: errno %d", r->name, tcpkit_last_errno());
    if (r->says != NULL)
        ck_assert_msg(strstr(tcpkit_last_error(), r->says) != NULL, "%s: message \"%s\" lacks %s",
                      r->name, tcpkit_last_error(), r->says);
}
END_TEST

int main(void)
{
    if (!th_enter_private_netns())
        fprintf(stderr, "no private network namespace; service rows use numeric hosts\n");
    Suite *s = suite_create("core-misuse");
    TCase *tc = tcase_create("misuse");
    tcase_set_timeout(tc, 20 * th_time_scale());
    tcase_add_checked_fixture(tc, ctx_setup, ctx_teardown);
    tcase_add_loop_test(tc, misuse_row, 0, (int)(sizeof rows / sizeof rows[0]));
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
