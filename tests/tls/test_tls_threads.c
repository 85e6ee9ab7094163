/* SPDX-License-Identifier: MIT */
/* TLS with threads (suite 'threads', run under TSan too): one sender and
 * one receiver on one TLS connection at once, 64 MiB each way with
 * checksums, while the server echoes. */
#include "tls_util.h"

#include <stdio.h>
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

int main(void)
{
    th_tls_certs_make();
    Suite *s = suite_create("tls-threads");
    TCase *tc = th_tcase("bulk", 240);
    tcase_add_test(tc, bulk_64mib_both_ways);
    suite_add_tcase(s, tc);
    int rc = th_run_suite(s);
    th_tls_certs_remove();
    return rc;
}
