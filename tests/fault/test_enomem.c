/* SPDX-License-Identifier: MIT */
/* ENOMEM in every allocating path: the k-th allocation of a call fails,
 * for k = 1, 2, ... until the call makes no k-th allocation. Every time the
 * call must report TCPKIT_ENOMEM (or succeed, where the library can do
 * without the memory), leave no descriptor open and lose no received
 * byte. Leaks show up under ASan and Valgrind (both CI stages run this).
 *
 * The process runs in a private network namespace, and where it can in a
 * private mount namespace whose /etc/hosts gives "twohosts" both ::1 and
 * 127.0.0.1, so the connect race allocates for two attempts. */
#include "helpers.h"
#include "seam.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEED 0xa110c

static bool have_twohosts;

struct ctx {
    tcpkit_listener *l;
    char port[16];
    const char *host;
    tcpkit_opts *opts;
    tcpkit_conn *conn;
    tcpkit_listener *out_l;
    th_peer peer;
    int raw;
    void *data;
    size_t len;
    size_t stream_len;
    char *expect;
    char lines[2][16384];
    size_t line_len[2];
    int lines_done;
};

struct sweep {
    const char *name;
    void (*prepare)(struct ctx *);
    tcpkit_err (*run)(struct ctx *);
    /* Asserts on the outcome of run and releases everything. */
    void (*check)(struct ctx *, tcpkit_err err, bool fired);
    bool may_survive; /* the library may succeed without that memory */
};

/* ---- opts_new ---- */

static void prep_nothing(struct ctx *x)
{
    (void)x;
}

static tcpkit_err run_opts_new(struct ctx *x)
{
    x->opts = (tcpkit_opts *)1;
    return tcpkit_opts_new(&x->opts);
}

static void check_opts_new(struct ctx *x, tcpkit_err err, bool fired)
{
    if (fired) {
        ck_assert_int_eq(err, TCPKIT_ENOMEM);
        ck_assert_ptr_null(x->opts);
        return;
    }
    ck_assert_int_eq(err, TCPKIT_OK);
    tcpkit_opts_free(x->opts);
}

/* ---- connect ---- */

static void prep_listener(struct ctx *x)
{
    x->l = th_listen_loopback("127.0.0.1");
    th_port_str(x->l, x->port, sizeof x->port);
}

static tcpkit_err run_connect(struct ctx *x)
{
    x->conn = (tcpkit_conn *)1;
    return tcpkit_connect(&x->conn, x->host, x->port, NULL);
}

static void check_connect(struct ctx *x, tcpkit_err err, bool fired)
{
    if (err != TCPKIT_OK) {
        ck_assert_msg(fired && err == TCPKIT_ENOMEM, "connect %s: %s (%s)", x->host,
                      tcpkit_strerror(err), tcpkit_last_error());
        ck_assert_ptr_null(x->conn);
    } else {
        /* Connected for real: the server side sees the client. */
        tcpkit_conn *s;
        ck_assert_int_eq(tcpkit_accept(x->l, &s, 5000), TCPKIT_OK);
        size_t n;
        char b;
        ck_assert_int_eq(tcpkit_send_all(x->conn, "x", 1, &n), TCPKIT_OK);
        ck_assert_int_eq(tcpkit_recv_exact(s, &b, 1, &n), TCPKIT_OK);
        tcpkit_close(s);
        tcpkit_close(x->conn);
    }
    tcpkit_listener_close(x->l);
}

static void prep_connect_v4(struct ctx *x)
{
    prep_listener(x);
    x->host = "127.0.0.1";
}

static void prep_connect_name(struct ctx *x)
{
    prep_listener(x);
    x->host = "localhost";
}

static void prep_connect_two(struct ctx *x)
{
    prep_listener(x);
    x->host = "twohosts";
}

/* ---- listen ---- */

static tcpkit_err run_listen(struct ctx *x)
{
    x->out_l = (tcpkit_listener *)1;
    return tcpkit_listen(&x->out_l, x->host, "0", NULL);
}

static void check_listen(struct ctx *x, tcpkit_err err, bool fired)
{
    if (fired) {
        ck_assert_int_eq(err, TCPKIT_ENOMEM);
        ck_assert_ptr_null(x->out_l);
        return;
    }
    ck_assert_int_eq(err, TCPKIT_OK);
    ck_assert_int_gt(tcpkit_listener_port(x->out_l), 0);
    tcpkit_listener_close(x->out_l);
}

static void prep_listen_v4(struct ctx *x)
{
    x->host = "127.0.0.1";
}

static void prep_listen_any(struct ctx *x)
{
    x->host = NULL;
}

/* ---- accept ---- */

static void prep_accept(struct ctx *x)
{
    prep_listener(x);
    x->raw = th_raw_connect("127.0.0.1", tcpkit_listener_port(x->l));
}

static tcpkit_err run_accept(struct ctx *x)
{
    x->conn = (tcpkit_conn *)1;
    return tcpkit_accept(x->l, &x->conn, 5000);
}

static void check_accept(struct ctx *x, tcpkit_err err, bool fired)
{
    if (fired) {
        ck_assert_int_eq(err, TCPKIT_ENOMEM);
        ck_assert_ptr_null(x->conn);
    } else {
        ck_assert_int_eq(err, TCPKIT_OK);
        tcpkit_close(x->conn);
    }
    close(x->raw);
    tcpkit_listener_close(x->l);
}

/* ---- recv_all ---- */

static void send_stream_peer(th_peer *p)
{
    /* No failure when cut short: a test that stops reading closes early. */
    const struct ctx *x = p->arg;
    p->result = (int64_t)th_raw_send_all(p->fd, x->expect, x->stream_len);
    shutdown(p->fd, SHUT_WR);
}

/* A pair whose peer thread sends x->expect and half-closes. */
static void prep_stream(struct ctx *x, size_t len)
{
    x->stream_len = len;
    x->expect = malloc(len);
    ck_assert_ptr_nonnull(x->expect);
    th_fill(x->expect, len, SEED, 0);
    x->peer = (th_peer){.fd = -1, .arg = x};
    th_pair_raw(&x->conn, &x->peer.fd);
    th_peer_start(&x->peer, send_stream_peer);
}

static void finish_stream(struct ctx *x)
{
    tcpkit_close(x->conn);
    th_peer_join(&x->peer);
    free(x->expect);
}

static void prep_recv_all_small(struct ctx *x)
{
    prep_stream(x, 1000);
}

static void prep_recv_all_big(struct ctx *x)
{
    prep_stream(x, 300 * 1000);
}

static tcpkit_err run_recv_all(struct ctx *x)
{
    return tcpkit_recv_all(x->conn, &x->data, &x->len, 1u << 20);
}

static void check_recv_all(struct ctx *x, tcpkit_err err, bool fired)
{
    if (fired) {
        ck_assert_int_eq(err, TCPKIT_ENOMEM);
        /* What arrived before the failed allocation is handed back. */
        ck_assert(x->len == 0 || x->data != NULL);
        ck_assert_uint_lt(x->len, x->stream_len);
    } else {
        ck_assert_int_eq(err, TCPKIT_OK);
        ck_assert_uint_eq(x->len, x->stream_len);
    }
    if (x->len)
        ck_assert_msg(memcmp(x->data, x->expect, x->len) == 0, "recv_all: wrong bytes");
    if (x->data)
        ck_assert_int_eq(((char *)x->data)[x->len], '\0');
    tcpkit_free(x->data);
    finish_stream(x);
}

/* ---- recv_line ---- */

static void prep_lines(struct ctx *x)
{
    /* A short line, then one that needs the read-ahead buffer to grow
     * (4 KiB -> 8 KiB -> 16 KiB). */
    const size_t long_len = 10000;
    x->stream_len = 6 + long_len + 1;
    x->expect = malloc(x->stream_len);
    ck_assert_ptr_nonnull(x->expect);
    memcpy(x->expect, "short\n", 6);
    th_fill(x->expect + 6, long_len, SEED, 0);
    for (size_t i = 6; i < 6 + long_len; i++)
        if (x->expect[i] == '\n')
            x->expect[i] = '.';
    x->expect[x->stream_len - 1] = '\n';
    x->peer = (th_peer){.fd = -1, .arg = x};
    th_pair_raw(&x->conn, &x->peer.fd);
    th_peer_start(&x->peer, send_stream_peer);
}

static tcpkit_err run_lines(struct ctx *x)
{
    for (; x->lines_done < 2; x->lines_done++) {
        int i = x->lines_done;
        tcpkit_err err =
            tcpkit_recv_line(x->conn, x->lines[i], sizeof x->lines[i], &x->line_len[i]);
        if (err != TCPKIT_OK)
            return err;
    }
    return TCPKIT_OK;
}

static void check_lines(struct ctx *x, tcpkit_err err, bool fired)
{
    if (fired) {
        ck_assert_int_eq(err, TCPKIT_ENOMEM);
        ck_assert_uint_eq(x->line_len[x->lines_done], 0);
        /* Nothing lost: without the fault the same lines come out. */
        err = run_lines(x);
    }
    ck_assert_msg(err == TCPKIT_OK, "recv_line: %s (%s)", tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert_uint_eq(x->line_len[0], 6);
    ck_assert_str_eq(x->lines[0], "short\n");
    ck_assert_uint_eq(x->line_len[1], x->stream_len - 6);
    ck_assert(memcmp(x->lines[1], x->expect + 6, x->stream_len - 6) == 0);
    char extra[8];
    size_t n;
    ck_assert_int_eq(tcpkit_recv_line(x->conn, extra, sizeof extra, &n), TCPKIT_EOF);
    finish_stream(x);
}

static const struct sweep sweeps[] = {
    {"opts_new", prep_nothing, run_opts_new, check_opts_new, false},
    {"connect 127.0.0.1", prep_connect_v4, run_connect, check_connect, false},
    {"connect localhost", prep_connect_name, run_connect, check_connect, true},
    {"connect twohosts", prep_connect_two, run_connect, check_connect, true},
    {"listen 127.0.0.1", prep_listen_v4, run_listen, check_listen, false},
    {"listen any", prep_listen_any, run_listen, check_listen, false},
    {"accept", prep_accept, run_accept, check_accept, false},
    {"recv_all small", prep_recv_all_small, run_recv_all, check_recv_all, false},
    {"recv_all big", prep_recv_all_big, run_recv_all, check_recv_all, false},
    {"recv_line", prep_lines, run_lines, check_lines, false},
};

START_TEST(enomem_sweep)
{
    const struct sweep *sw = &sweeps[_i];
    if (strcmp(sw->name, "connect twohosts") == 0 && !have_twohosts) {
        th_skip("connect twohosts: no private /etc/hosts or no IPv6 loopback");
        return;
    }
    int fired_count = 0;
    for (unsigned k = 0; k < 200; k++) {
        int fds = th_count_fds();
        struct ctx x;
        memset(&x, 0, sizeof x);
        x.raw = -1;
        sw->prepare(&x);
        int id = tf_fail(TF_ALLOC, ENOMEM, k, 1, 1);
        tcpkit_err err = sw->run(&x);
        bool fired = tf_hits(id) > 0;
        tf_reset();
        if (fired && err == TCPKIT_OK)
            ck_assert_msg(sw->may_survive, "%s: allocation %u failed, yet the call succeeded",
                          sw->name, k + 1);
        sw->check(&x, err, fired);
        ck_assert_msg(th_count_fds() == fds, "%s, allocation %u failing: descriptors leaked",
                      sw->name, k + 1);
        if (!fired)
            break;
        fired_count++;
    }
    ck_assert_msg(fired_count > 0, "%s allocated nothing through the seam", sw->name);
    fprintf(stderr, "%s: %d allocation(s) failed in turn\n", sw->name, fired_count);
}
END_TEST

/* /etc/hosts in a private mount namespace: "twohosts" is ::1 and
 * 127.0.0.1. Only inside the private network namespace. */
static bool setup_twohosts(void)
{
    if (!th_in_private_netns() || !th_have_ipv6())
        return false;
    return th_enter_private_mountns() &&
           th_replace_file("/etc/hosts", "127.0.0.1 localhost\n::1 twohosts\n127.0.0.1 twohosts\n");
}

int main(void)
{
    /* Name lookups below must never leave the machine. */
    bool netns = th_enter_private_netns();
    have_twohosts = netns && setup_twohosts();
    if (!netns)
        fprintf(stderr, "no private network namespace: name cases use /etc/hosts only\n");
    Suite *s = suite_create("fault-enomem");
    TCase *tc = th_tcase("enomem", 60);
    tcase_add_checked_fixture(tc, tf_reset, tf_reset);
    tcase_add_loop_test(tc, enomem_sweep, 0, (int)(sizeof sweeps / sizeof sweeps[0]));
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
