/* SPDX-License-Identifier: MIT */
/* Soak: 2,000 connections through tcpkit_serve, many of them misbehaving
 * (early disconnects, resets before, during and after requests, readers
 * that vanish mid-response). The server must serve every well-behaved
 * client, survive the rest, stop on shutdown, and leave no descriptor or
 * thread behind. */
#include "helpers.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SOAK_CONNS 2000
#define SOAK_CONNS_VALGRIND 200
#define SOAK_CLIENTS 4
#define SOAK_MAX_CONNS 32
#define BIG_REPLY (512 * 1024)

/* ---- the server ---- */

struct soak_stats {
    atomic_int handlers;   /* handler calls */
    atomic_int active;     /* handlers running now */
    atomic_int max_active; /* most at once */
    atomic_int odd;        /* handler saw an error no client should cause */
    atomic_int echoes;     /* requests answered */
    atomic_bool have_odd;  /* odd_msg is written (by the first odd handler) */
    char odd_msg[256];
};

static void note_active(struct soak_stats *st)
{
    int now = atomic_fetch_add(&st->active, 1) + 1;
    int seen = atomic_load(&st->max_active);
    while (now > seen && !atomic_compare_exchange_weak(&st->max_active, &seen, now))
        ;
}

/* Line protocol: "ECHO <text>\n" -> the same line back; "BIG\n" ->
 * BIG_REPLY bytes. Ends at EOF or any error. */
static void soak_handler(tcpkit_conn *c, void *arg)
{
    struct soak_stats *st = arg;
    atomic_fetch_add(&st->handlers, 1);
    note_active(st);
    static const char big_chunk[16384];
    char line[128];
    size_t n;
    tcpkit_err err;
    while ((err = tcpkit_recv_line(c, line, sizeof line, &n)) == TCPKIT_OK) {
        if (strncmp(line, "ECHO ", 5) == 0) {
            err = tcpkit_send_all(c, line, n, NULL);
            atomic_fetch_add(&st->echoes, 1);
        } else if (strcmp(line, "BIG\n") == 0) {
            for (size_t sent = 0; err == TCPKIT_OK && sent < BIG_REPLY; sent += sizeof big_chunk)
                err = tcpkit_send_all(c, big_chunk, sizeof big_chunk, NULL);
        } else {
            err = TCPKIT_ESYS;
        }
        if (err != TCPKIT_OK)
            break;
    }
    /* EOF and resets are what misbehaving clients produce. ESHUTDOWN is
     * right for a handler still waiting when the test stops the server
     * (a client that closed, whose FIN the handler had not seen yet). */
    if (err != TCPKIT_EOF && err != TCPKIT_ERESET && err != TCPKIT_ESHUTDOWN &&
        atomic_fetch_add(&st->odd, 1) == 0) {
        snprintf(st->odd_msg, sizeof st->odd_msg, "%s: %s (line \"%.*s\")", tcpkit_strerror(err),
                 tcpkit_last_error(), (int)n, line);
        atomic_store(&st->have_odd, true);
    }
    atomic_fetch_sub(&st->active, 1);
}

/* ---- the clients ---- */

struct soak_client {
    int port;
    char port_str[16];
    int conns;
    unsigned seed;
    int good; /* well-behaved clients that got their answer */
    int kinds[6];
};

static bool connect_tk(th_peer *p, struct soak_client *cl, tcpkit_conn **c)
{
    tcpkit_err err = tcpkit_connect(c, "127.0.0.1", cl->port_str, NULL);
    if (err != TCPKIT_OK)
        th_peer_fail(p, "connect: %s", tcpkit_last_error());
    return err == TCPKIT_OK;
}

/* A full, polite exchange: the answer must be right. */
static void polite(th_peer *p, struct soak_client *cl, int i)
{
    tcpkit_conn *c;
    if (!connect_tk(p, cl, &c))
        return;
    tcpkit_conn_set_timeout(c, 10000 * th_time_scale());
    char req[64], rep[64];
    int n = snprintf(req, sizeof req, "ECHO %u-%d\n", cl->seed, i);
    size_t got = 0;
    if (tcpkit_send_all(c, req, (size_t)n, NULL) != TCPKIT_OK ||
        tcpkit_recv_line(c, rep, sizeof rep, &got) != TCPKIT_OK || strcmp(req, rep) != 0)
        th_peer_fail(p, "echo %d: %s", i, tcpkit_last_error());
    else
        cl->good++;
    tcpkit_close(c);
}

static void one_connection(th_peer *p, struct soak_client *cl, int i)
{
    int kind = (int)(rand_r(&cl->seed) % 6);
    cl->kinds[kind]++;
    tcpkit_conn *c;
    int fd;
    char buf[4096];
    switch (kind) {
    case 0:
    case 1:
        polite(p, cl, i);
        break;
    case 2: /* connect and go away at once */
        fd = th_raw_connect("127.0.0.1", cl->port);
        close(fd);
        break;
    case 3: /* reset in the middle of a line */
        fd = th_raw_connect("127.0.0.1", cl->port);
        th_raw_send_all(fd, "ECH", 3);
        th_raw_abort(fd);
        break;
    case 4: /* ask for a big reply, read a little, reset */
        if (!connect_tk(p, cl, &c))
            return;
        tcpkit_send_all(c, "BIG\n", 4, NULL);
        tcpkit_recv(c, buf, sizeof buf, NULL);
        tcpkit_abort(c);
        break;
    default: /* a request, then reset without reading the answer */
        if (!connect_tk(p, cl, &c))
            return;
        tcpkit_send_all(c, "ECHO gone\n", 10, NULL);
        tcpkit_abort(c);
        break;
    }
}

static void client_main(th_peer *p)
{
    struct soak_client *cl = p->arg;
    for (int i = 0; i < cl->conns && p->err[0] == '\0'; i++)
        one_connection(p, cl, i);
}

/* ---- the test ---- */

struct server {
    tcpkit_listener *l;
    struct soak_stats *st;
    tcpkit_err result;
};

static void *serve_main(void *arg)
{
    struct server *s = arg;
    s->result = tcpkit_serve(s->l, soak_handler, s->st, SOAK_MAX_CONNS);
    return NULL;
}

START_TEST(soak_2000_connections)
{
    th_warm_up_threads();
    int threads0 = th_stable_thread_count();
    int total = th_under_valgrind() ? SOAK_CONNS_VALGRIND : SOAK_CONNS;
    int64_t t0 = th_now_ms();

    struct soak_stats st;
    memset(&st, 0, sizeof st);
    struct server s = {.l = th_listen_loopback("127.0.0.1"), .st = &st, .result = -1};
    pthread_t tid;
    ck_assert_int_eq(pthread_create(&tid, NULL, serve_main, &s), 0);

    th_peer peers[SOAK_CLIENTS];
    struct soak_client cl[SOAK_CLIENTS];
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "soak seed %u\n", seed);
    for (int i = 0; i < SOAK_CLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].port = tcpkit_listener_port(s.l);
        snprintf(cl[i].port_str, sizeof cl[i].port_str, "%d", cl[i].port);
        cl[i].conns = total / SOAK_CLIENTS;
        cl[i].seed = seed + (unsigned)i * 7919u;
        memset(&peers[i], 0, sizeof peers[i]);
        peers[i].fd = -1;
        peers[i].arg = &cl[i];
        th_peer_start(&peers[i], client_main);
    }
    int good = 0, kinds[6] = {0};
    for (int i = 0; i < SOAK_CLIENTS; i++) {
        th_peer_join(&peers[i]);
        good += cl[i].good;
        for (int k = 0; k < 6; k++)
            kinds[k] += cl[i].kinds[k];
    }

    tcpkit_listener_shutdown(s.l);
    ck_assert_int_eq(pthread_join(tid, NULL), 0);
    int64_t took = th_now_ms() - t0;
    ck_assert_int_eq(s.result, TCPKIT_OK);
    tcpkit_listener_close(s.l);

    fprintf(stderr,
            "soak: %d connections in %lld ms: %d polite, %d early close, %d reset mid-line, "
            "%d reset mid-reply, %d reset after request; %d handlers, at most %d at once\n",
            total, (long long)took, good, kinds[2], kinds[3], kinds[4], kinds[5],
            atomic_load(&st.handlers), atomic_load(&st.max_active));
    ck_assert_int_eq(good, kinds[0] + kinds[1]);
    ck_assert_int_ge(atomic_load(&st.echoes), good);
    /* Every connection that got as far as accept had a handler; resets
     * before accept may be dropped by the kernel. */
    ck_assert_int_ge(atomic_load(&st.handlers), good + kinds[4]);
    ck_assert_int_le(atomic_load(&st.handlers), total);
    ck_assert_int_le(atomic_load(&st.max_active), SOAK_MAX_CONNS);
    ck_assert_int_eq(atomic_load(&st.active), 0);
    ck_assert_msg(atomic_load(&st.odd) == 0, "%d handlers failed oddly, the first with %s",
                  atomic_load(&st.odd), atomic_load(&st.have_odd) ? st.odd_msg : "?");
    ck_assert_int_eq(th_wait_thread_count(threads0), threads0);
    ck_assert_msg(took < 60000 * th_time_scale(), "soak took %lld ms", (long long)took);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("soak");
    TCase *tc = th_tcase("soak", 90);
    tcase_add_test(tc, soak_2000_connections);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
