/* SPDX-License-Identifier: MIT */
/* TLS with threads (suite 'threads', run under TSan too): one sender and
 * one receiver on one TLS connection at once, 64 MiB each way with
 * checksums, while the server echoes. */
#include "tls_util.h"

#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define ck_ok(call) ck_assert_msg((call) == TCPKIT_OK, "%s: %s", #call, tcpkit_last_error())

/* ---- bulk ---- */

static size_t bulk_size(void)
{
    return th_under_valgrind() ? (size_t)4 << 20 : (size_t)64 << 20;
}

/* Echoes until close_notify, then sends its own. */
static void echo_all(th_tls_srv *s, tcpkit_conn *c)
{
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    size_t n;
    tcpkit_err e;
    while ((e = tcpkit_recv(c, buf, cap, &n)) == TCPKIT_OK)
        if (tcpkit_send_all(c, buf, n, NULL) != TCPKIT_OK)
            break;
    if (e != TCPKIT_EOF || tcpkit_close_write(c) != TCPKIT_OK)
        th_peer_fail(&s->peer, "echo: %s", tcpkit_last_error());
    free(buf);
}

static void bulk_sender(th_peer *p)
{
    size_t total = bulk_size(), chunk = 100003, off = 0;
    char *buf = malloc(chunk);
    uint64_t h = TH_FNV_INIT;
    while (off < total) {
        size_t n = chunk < total - off ? chunk : total - off;
        th_fill(buf, n, 11, off);
        h = th_fnv(h, buf, n);
        if (tcpkit_send_all(p->conn, buf, n, NULL) != TCPKIT_OK) {
            th_peer_fail(p, "send: %s", tcpkit_last_error());
            break;
        }
        off += n;
    }
    p->sum = h;
    if (tcpkit_close_write(p->conn) != TCPKIT_OK)
        th_peer_fail(p, "close_write: %s", tcpkit_last_error());
    p->conn = NULL; /* the test closes it */
    free(buf);
}

START_TEST(bulk_64mib_both_ways)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    th_tls_srv s;
    th_tls_srv_start(&s, sc, echo_all);
    tcpkit_conn *c = NULL;
    tcpkit_opts *o = th_tls_opts(cc);
    ck_ok(tcpkit_connect(&c, "127.0.0.1", s.port, o));
    tcpkit_opts_free(o);
    th_peer snd = {.fd = -1, .conn = c};
    th_peer_start(&snd, bulk_sender);
    size_t cap = 1 << 17, total = 0, n;
    char *buf = malloc(cap);
    uint64_t h = TH_FNV_INIT;
    tcpkit_err e;
    while ((e = tcpkit_recv(c, buf, cap, &n)) == TCPKIT_OK) {
        h = th_fnv(h, buf, n);
        total += n;
    }
    ck_assert_msg(e == TCPKIT_EOF, "%s", tcpkit_last_error());
    th_peer_join(&snd);
    th_tls_srv_join(&s);
    ck_assert_uint_eq(total, bulk_size());
    ck_assert(h == snd.sum);
    free(buf);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- a lazy handshake with a sender and a receiver at once ---- */

/* A TLS listener whose accepted conns handshake lazily, and the options of
 * a client that trusts it; every I/O call bounded by io_timeout_ms. */
struct lazy_fixture {
    tcpkit_tls *sc, *cc;
    tcpkit_opts *so, *co;
    tcpkit_listener *l;
    char port[8];
    void *client_args[2]; /* port, client opts: a client peer's p->arg */
};

static void lazy_open(struct lazy_fixture *f, int io_timeout_ms)
{
    f->sc = th_tls_server("server");
    f->cc = th_tls_client();
    f->so = th_tls_opts(f->sc);
    f->co = th_tls_opts(f->cc);
    tcpkit_opts_set_io_timeout(f->so, io_timeout_ms);
    tcpkit_opts_set_io_timeout(f->co, io_timeout_ms);
    f->l = th_listen_opts("127.0.0.1", f->so);
    th_port_str(f->l, f->port, sizeof f->port);
    f->client_args[0] = f->port;
    f->client_args[1] = f->co;
}

static void lazy_close(struct lazy_fixture *f)
{
    tcpkit_listener_close(f->l);
    tcpkit_opts_free(f->so);
    tcpkit_opts_free(f->co);
    tcpkit_tls_free(f->sc);
    tcpkit_tls_free(f->cc);
}

/* A client peer's connection (its handshake needs the server threads), or
 * NULL with the failure recorded. p->arg: lazy_fixture.client_args. */
static tcpkit_conn *lazy_connect(th_peer *p)
{
    void **args = p->arg;
    tcpkit_conn *c;
    if (tcpkit_connect(&c, "127.0.0.1", args[0], args[1]) != TCPKIT_OK) {
        th_peer_fail(p, "connect: %s", tcpkit_last_error());
        return NULL;
    }
    p->conn = c;
    return c;
}

/* The receiver: its first recv runs into the lazy handshake. */
static void lazy_receiver(th_peer *p)
{
    char b[1];
    size_t n;
    if (tcpkit_recv_exact(p->conn, b, 1, &n) != TCPKIT_OK)
        th_peer_fail(p, "receiver: %s", tcpkit_last_error());
    p->conn = NULL; /* shared: the test closes it */
}

static void lazy_sender(th_peer *p)
{
    if (tcpkit_send_all(p->conn, "hello", 5, NULL) != TCPKIT_OK)
        th_peer_fail(p, "sender: %s", tcpkit_last_error());
    p->conn = NULL;
}

/* The client: waits for the sender's bytes, then sends the byte the
 * receiver waits for. */
static void lazy_client(th_peer *p)
{
    char b[8];
    size_t n;
    tcpkit_conn *c = lazy_connect(p);
    if (c && (tcpkit_recv_exact(c, b, 5, &n) != TCPKIT_OK || tcpkit_send_all(c, "x", 1, NULL)))
        th_peer_fail(p, "client: %s", tcpkit_last_error());
}

/* Both server threads enter the handshake of an accepted conn; whichever
 * completes it, the other must go on at once, not wait for bytes that will
 * not come (the client sends nothing until it has the sender's bytes). */
START_TEST(lazy_handshake_shared_by_sender_and_receiver)
{
    struct lazy_fixture f;
    lazy_open(&f, 10000);
    th_peer client = {.fd = -1, .arg = f.client_args};
    int64_t t0 = th_now_ms();
    th_peer_start(&client, lazy_client);
    tcpkit_conn *sv;
    ck_ok(tcpkit_accept(f.l, &sv, 5000));
    th_peer rx = {.fd = -1, .conn = sv}, tx = {.fd = -1, .conn = sv};
    th_peer_start(&rx, lazy_receiver);
    th_peer_start(&tx, lazy_sender);
    th_peer_join(&tx);
    th_peer_join(&rx);
    th_peer_join(&client);
    int64_t took = th_now_ms() - t0;
    ck_assert_msg(took < 5000, "took %lld ms", (long long)took);
    tcpkit_close(sv);
    lazy_close(&f);
}
END_TEST

/* ---- the race the single handshake driver closes ---- */

/* The sender: it too arrives at the handshake (tcpkit_conn_handshake, as
 * a send would); it sends only once the receiver got its byte (p->arg: the
 * receiver), so the client's byte is the only thing that can wake the
 * receiver. */
static void race_sender(th_peer *p)
{
    th_peer *rx = p->arg;
    if (tcpkit_conn_handshake(p->conn) != TCPKIT_OK)
        th_peer_fail(p, "sender's handshake: %s", tcpkit_last_error());
    pthread_join(rx->tid, NULL); /* the test thread reads rx->err after us */
    if (rx->err[0] == '\0' && tcpkit_send_all(p->conn, "y", 1, NULL) != TCPKIT_OK)
        th_peer_fail(p, "sender: %s", tcpkit_last_error());
    p->conn = NULL;
}

/* The client: sends its byte at once (it can arrive with its Finished),
 * then waits for the reply. */
static void race_client(th_peer *p)
{
    char b[1];
    size_t n;
    tcpkit_conn *c = lazy_connect(p);
    if (c && (tcpkit_send_all(c, "x", 1, NULL) != TCPKIT_OK || tcpkit_recv_exact(c, b, 1, &n)))
        th_peer_fail(p, "client: %s", tcpkit_last_error());
}

/* Many rounds of: the client's Finished and its first byte arrive
 * together while a receiver and a sender both wait on the server's lazy
 * handshake. Were both to read the socket, one could pull the record the
 * other waits for into OpenSSL (read-ahead) and the other would sleep in
 * poll() for its whole timeout; with one driver each round takes a few ms. */
START_TEST(lazy_handshake_never_strands_a_waiter)
{
    struct lazy_fixture f;
    lazy_open(&f, 3000);
    for (int round = 0; round < 60; round++) {
        int64_t t0 = th_now_ms();
        th_peer client = {.fd = -1, .arg = f.client_args};
        th_peer_start(&client, race_client);
        tcpkit_conn *sv;
        ck_ok(tcpkit_accept(f.l, &sv, 5000));
        th_peer rx = {.fd = -1, .conn = sv}, tx = {.fd = -1, .conn = sv, .arg = &rx};
        th_peer_start(&rx, lazy_receiver);
        th_peer_start(&tx, race_sender);
        th_peer_join(&tx);
        ck_assert_msg(rx.err[0] == '\0', "%s", rx.err);
        th_peer_join(&client);
        int64_t took = th_now_ms() - t0;
        ck_assert_msg(took < 2000, "round %d took %lld ms: a waiter was stranded", round,
                      (long long)took);
        tcpkit_close(sv);
    }
    lazy_close(&f);
}
END_TEST

int main(void)
{
    th_tls_certs_make();
    Suite *s = suite_create("tls-threads");
    TCase *tc = th_tcase("bulk", 240);
    tcase_add_test(tc, bulk_64mib_both_ways);
    tcase_add_test(tc, lazy_handshake_shared_by_sender_and_receiver);
    tcase_add_test(tc, lazy_handshake_never_strands_a_waiter);
    suite_add_tcase(s, tc);
    int rc = th_run_suite(s);
    th_tls_certs_remove();
    return rc;
}
