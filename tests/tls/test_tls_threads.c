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

static void lazy_receiver(th_peer *p)
{
    char b[8];
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

/* The client: connects (its handshake needs the server threads), waits
 * for the sender's bytes, then sends the byte the receiver waits for. */
static void lazy_client(th_peer *p)
{
    tcpkit_conn *c;
    char b[8];
    size_t n;
    void **args = p->arg;
    if (tcpkit_connect(&c, "127.0.0.1", args[0], args[1]) != TCPKIT_OK) {
        th_peer_fail(p, "connect: %s", tcpkit_last_error());
        return;
    }
    p->conn = c;
    if (tcpkit_recv_exact(c, b, 5, &n) != TCPKIT_OK || tcpkit_send_all(c, "x", 1, NULL))
        th_peer_fail(p, "client: %s", tcpkit_last_error());
}

/* Both server threads enter the handshake of an accepted conn; whichever
 * completes it, the other must go on at once, not wait for bytes that will
 * not come (the client sends nothing until it has the sender's bytes). */
START_TEST(lazy_handshake_shared_by_sender_and_receiver)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    tcpkit_opts *so = th_tls_opts(sc), *co = th_tls_opts(cc);
    tcpkit_opts_set_io_timeout(so, 10000);
    tcpkit_opts_set_io_timeout(co, 10000);
    tcpkit_listener *l = th_listen_opts("127.0.0.1", so);
    char port[8];
    th_port_str(l, port, sizeof port);
    void *args[2] = {port, co};
    th_peer client = {.fd = -1, .arg = args};
    int64_t t0 = th_now_ms();
    th_peer_start(&client, lazy_client);
    tcpkit_conn *sv;
    ck_ok(tcpkit_accept(l, &sv, 5000));
    th_peer rx = {.fd = -1, .conn = sv}, tx = {.fd = -1, .conn = sv};
    th_peer_start(&rx, lazy_receiver);
    th_peer_start(&tx, lazy_sender);
    th_peer_join(&tx);
    th_peer_join(&rx);
    th_peer_join(&client);
    int64_t took = th_now_ms() - t0;
    ck_assert_msg(took < 5000, "took %lld ms", (long long)took);
    tcpkit_close(sv);
    tcpkit_listener_close(l);
    tcpkit_opts_free(so);
    tcpkit_opts_free(co);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

int main(void)
{
    th_tls_certs_make();
    Suite *s = suite_create("tls-threads");
    TCase *tc = th_tcase("bulk", 240);
    tcase_add_test(tc, bulk_64mib_both_ways);
    tcase_add_test(tc, lazy_handshake_shared_by_sender_and_receiver);
    suite_add_tcase(s, tc);
    int rc = th_run_suite(s);
    th_tls_certs_remove();
    return rc;
}
