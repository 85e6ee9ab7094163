/* SPDX-License-Identifier: MIT */
/* Faults a live peer cannot produce on demand, forced through the seam:
 * short writes, EAGAIN, EINTR on every blocking call, resets in the middle
 * of a send, 1-byte receives, EMFILE/ENFILE. Nothing may be lost,
 * duplicated or reordered, and timeouts bound the whole call.
 *
 * Check allocates inside its asserts: every test removes its rules
 * (tf_reset) before asserting. */
#include "helpers.h"
#include "seam.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define SEED 0x5eed

static void fault_setup(void)
{
    tf_reset();
    tf_hold(false);
}

static void fault_teardown(void)
{
    tf_reset();
    tf_hold(false);
}

static TCase *fault_tcase(const char *name, double timeout_s)
{
    TCase *tc = th_tcase(name, timeout_s);
    tcase_add_checked_fixture(tc, fault_setup, fault_teardown);
    return tc;
}

/* ---- a raw peer that reads everything ---- */

/* Reads p->fd until EOF: byte count in result, FNV hash in sum. */
static void drain_peer(th_peer *p)
{
    char buf[65536];
    uint64_t h = TH_FNV_INIT;
    int64_t total = 0;
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            /* A reset after everything we expect arrived is the test's
             * business (it compares counts), not a peer failure. */
            break;
        }
        if (n == 0)
            break;
        h = th_fnv(h, buf, (size_t)n);
        total += n;
    }
    p->result = total;
    p->sum = h;
}

/* Sends len pattern bytes through send_all with the current thread's rules
 * in force, then checks the peer received exactly them, in order. */
static void send_and_verify(size_t len, int *rule_ids, long *hits, int nrules)
{
    tcpkit_conn *c;
    th_peer peer = {.fd = -1};
    th_pair_raw(&c, &peer.fd);
    th_peer_start(&peer, drain_peer);
    char *data = th_pattern(len, SEED);
    size_t sent = 12345;

    (void)rule_ids;
    tcpkit_err err = tcpkit_send_all(c, data, len, &sent);
    for (int i = 0; i < nrules; i++)
        hits[i] = tf_hits(rule_ids[i]);
    tf_reset();

    ck_assert_msg(err == TCPKIT_OK, "send_all: %s (%s)", tcpkit_strerror(err), tcpkit_last_error());
    ck_assert_uint_eq(sent, len);
    tcpkit_close(c);
    th_peer_join(&peer);
    ck_assert_int_eq(peer.result, (int64_t)len);
    ck_assert_msg(peer.sum == th_fnv(TH_FNV_INIT, data, len), "bytes lost or reordered");
    free(data);
}

/* ---- send_all ---- */

START_TEST(send_all_one_byte_at_a_time)
{
    size_t len = th_bulk_size(65536);
    int id = tf_short(TF_SEND, 1, -1);
    long hits;
    unsigned long before = tf_calls(TF_SEND);
    send_and_verify(len, &id, &hits, 1);
    ck_assert_int_ge(hits, (long)len);
    ck_assert_uint_ge(tf_calls(TF_SEND) - before, len);
}
END_TEST

START_TEST(send_all_short_writes_and_eagain)
{
    size_t len = th_bulk_size(512 * 1024);
    int ids[4];
    ids[0] = tf_short(TF_SEND, 4093, -1); /* always short */
    ids[1] = tf_add((tf_rule){.call = TF_SEND, .action = TF_SHORT, .max = 1, .every = 3});
    ids[2] = tf_fail(TF_SEND, EAGAIN, 1, 4, -1);
    ids[3] = tf_fail(TF_SEND, EWOULDBLOCK, 2, 7, -1);
    long hits[4];
    send_and_verify(len, ids, hits, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(hits[i] > 0, "rule %d never fired", i);
}
END_TEST

START_TEST(send_all_eintr_before_every_call)
{
    size_t len = th_bulk_size(256 * 1024);
    int ids[2];
    ids[0] = tf_fail(TF_SEND, EINTR, 0, 2, -1);
    ids[1] = tf_short(TF_SEND, 1000, -1);
    long hits[2];
    send_and_verify(len, ids, hits, 2);
    ck_assert_int_ge(hits[0], (long)(len / 1000));
}
END_TEST

/* ECONNRESET or EPIPE after exactly 10 short sends of 1000 bytes:
 * TCPKIT_ERESET, *sent 10000, and the peer got exactly those bytes. */
START_TEST(send_all_reset_midway_reports_exact_count)
{
    const int errs[] = {ECONNRESET, EPIPE};
    int e = errs[_i];
    tcpkit_conn *c;
    th_peer peer = {.fd = -1};
    th_pair_raw(&c, &peer.fd);
    th_peer_start(&peer, drain_peer);
    size_t len = 100000;
    char *data = th_pattern(len, SEED);
    size_t sent = 0;

    tf_short(TF_SEND, 1000, -1);
    int id = tf_fail(TF_SEND, e, 10, 1, 1);
    tcpkit_err err = tcpkit_send_all(c, data, len, &sent);
    long hits = tf_hits(id);
    int last = tcpkit_last_errno();
    tf_reset();

    ck_assert_int_eq(hits, 1);
    ck_assert_msg(err == TCPKIT_ERESET, "send_all: %s, want ERESET", tcpkit_strerror(err));
    ck_assert_int_eq(last, e);
    ck_assert_uint_eq(sent, 10000);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "10000"));
    tcpkit_close(c);
    th_peer_join(&peer);
    ck_assert_int_eq(peer.result, 10000);
    ck_assert(peer.sum == th_fnv(TH_FNV_INIT, data, 10000));
    free(data);
}
END_TEST

/* A reset on the very first send: *sent is written (0), not left alone. */
START_TEST(send_all_reset_at_once_writes_zero)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    size_t sent = 777;
    tf_fail(TF_SEND, ECONNRESET, 0, 1, 1);
    tcpkit_err err = tcpkit_send_all(c, "abc", 3, &sent);
    tf_reset();
    ck_assert_int_eq(err, TCPKIT_ERESET);
    ck_assert_uint_eq(sent, 0);
    tcpkit_close(c);
    close(fd);
}
END_TEST

/* ---- receives ---- */

/* Lines of varied length (empty ones, one longer than the read-ahead
 * buffer), a CR LF, and a last line without a newline. */
static char *line_stream(size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    const size_t lens[] = {0, 1, 5, 0, 80, 4095, 4096, 9000, 3, 17};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (size_t k = 0; k < lens[i]; k++)
            s[n++] = (char)('a' + (i * 7 + k) % 26);
        if (i == 8)
            s[n++] = '\r';
        s[n++] = '\n';
    }
    memcpy(s + n, "tail-without-newline", 20);
    n += 20;
    *len = n;
    return s;
}

/* A pair whose server end has the whole stream queued and then EOF. */
static tcpkit_conn *conn_with_stream(const char *s, size_t len)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    ck_assert_uint_eq(th_raw_send_all(fd, s, len), len);
    close(fd);
    return c;
}

enum recv_mode { BY_LINE, BY_EXACT, BY_ALL, BY_RECV };

/* Reads the whole stream with one receive function; returns a malloc'd
 * copy of what came out, and checks every call's own contract. */
static char *read_stream(tcpkit_conn *c, enum recv_mode mode, size_t *out_len, tcpkit_err *fail)
{
    size_t cap = 128 * 1024, n = 0;
    char *got = malloc(cap);
    *fail = TCPKIT_OK;
    if (mode == BY_ALL) {
        void *data;
        size_t len;
        tcpkit_err err = tcpkit_recv_all(c, &data, &len, cap);
        if (err != TCPKIT_OK)
            *fail = err;
        memcpy(got, data, len);
        tcpkit_free(data);
        *out_len = len;
        return got;
    }
    for (;;) {
        size_t k = 0;
        tcpkit_err err;
        if (mode == BY_LINE) {
            err = tcpkit_recv_line(c, got + n, 16384, &k);
            if (err == TCPKIT_OK && got[n + k] != '\0')
                *fail = TCPKIT_ESYS; /* not NUL-terminated */
        } else if (mode == BY_EXACT) {
            err = tcpkit_recv_exact(c, got + n, 777, &k);
        } else {
            err = tcpkit_recv(c, got + n, 333, &k);
        }
        n += k;
        if (err == TCPKIT_EOF)
            break;
        if (err != TCPKIT_OK) {
            *fail = err;
            break;
        }
    }
    *out_len = n;
    return got;
}

/* Every receive function, with recv() delivering 1 byte at a time, EINTR
 * before every other call and EAGAIN now and then: the same bytes as the
 * stream, with every line intact. */
START_TEST(receive_under_tiny_reads_same_result)
{
    enum recv_mode mode = (enum recv_mode)(_i % 4);
    bool with_eintr = _i >= 4;
    size_t len;
    char *s = line_stream(&len);
    tcpkit_conn *c = conn_with_stream(s, len);
    int id = tf_short(TF_RECV, 1, -1);
    if (with_eintr) {
        tf_fail(TF_RECV, EINTR, 0, 2, -1);
        tf_fail(TF_RECV, EAGAIN, 3, 5, -1);
        tf_fail(TF_POLL, EINTR, 0, 2, -1);
    }
    size_t got_len;
    tcpkit_err fail;
    char *got = read_stream(c, mode, &got_len, &fail);
    long hits = tf_hits(id);
    tf_reset();
    ck_assert_msg(fail == TCPKIT_OK, "mode %d: %s (%s)", (int)mode, tcpkit_strerror(fail),
                  tcpkit_last_error());
    ck_assert_uint_eq(got_len, len);
    ck_assert_msg(memcmp(got, s, len) == 0, "mode %d: bytes differ", (int)mode);
    ck_assert_int_ge(hits, (long)len);
    free(got);
    free(s);
    tcpkit_close(c);
}
END_TEST

/* recv_line line by line under 1-byte reads returns exactly the lines. */
START_TEST(recv_line_one_byte_lines_exact)
{
    const char *s = "alpha\n\nbeta\r\ngamma";
    tcpkit_conn *c = conn_with_stream(s, strlen(s));
    const char *want[] = {"alpha\n", "\n", "beta\r\n", "gamma"};
    char lines[4][16];
    size_t lens[4];
    tcpkit_err errs[5];
    tf_short(TF_RECV, 1, -1);
    for (int i = 0; i < 4; i++)
        errs[i] = tcpkit_recv_line(c, lines[i], sizeof lines[i], &lens[i]);
    char extra[16];
    size_t xl = 99;
    errs[4] = tcpkit_recv_line(c, extra, sizeof extra, &xl);
    tf_reset();
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(errs[i], TCPKIT_OK);
        ck_assert_str_eq(lines[i], want[i]);
        ck_assert_uint_eq(lens[i], strlen(want[i]));
    }
    ck_assert_int_eq(errs[4], TCPKIT_EOF);
    ck_assert_uint_eq(xl, 0);
    tcpkit_close(c);
}
END_TEST

/* ---- EINTR and timeouts ---- */

/* A signal every 20 ms (EINTR out of poll after waiting 20 ms) must not
 * restart the timeout: a 200 ms call still ends at about 200 ms. */
enum blocked_call { W_RECV, W_RECV_LINE, W_RECV_EXACT, W_RECV_ALL, W_ACCEPT, W_SEND_ALL };

START_TEST(eintr_in_poll_keeps_the_deadline)
{
    enum blocked_call which = (enum blocked_call)_i;
    const int timeout = 200;
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, timeout), TCPKIT_OK);
    /* For send_all: a peer that never reads, with small buffers. */
    size_t big = 32u << 20;
    char *data = which == W_SEND_ALL ? calloc(1, big) : NULL;
    char buf[64];
    size_t n = 0;
    void *all = NULL;
    tcpkit_conn *acc = NULL;

    /* Bounded: a library that restarts the full timeout on EINTR would
     * take 100 * 20 ms + 200 ms, and fail the time check below. */
    int id = tf_add(
        (tf_rule){.call = TF_POLL, .action = TF_SLICE, .err = EINTR, .max = 20, .times = 100});
    int64_t t0 = th_now_ms();
    tcpkit_err err;
    switch (which) {
    case W_RECV:
        err = tcpkit_recv(c, buf, sizeof buf, &n);
        break;
    case W_RECV_LINE:
        err = tcpkit_recv_line(c, buf, sizeof buf, &n);
        break;
    case W_RECV_EXACT:
        err = tcpkit_recv_exact(c, buf, sizeof buf, &n);
        break;
    case W_RECV_ALL:
        err = tcpkit_recv_all(c, &all, &n, 1000);
        break;
    case W_ACCEPT:
        err = tcpkit_accept(l, &acc, timeout);
        break;
    default:
        err = tcpkit_send_all(c, data, big, &n);
        break;
    }
    int64_t took = th_now_ms() - t0;
    long hits = tf_hits(id);
    tf_reset();

    ck_assert_msg(err == TCPKIT_ETIMEDOUT, "call %d: %s (%s)", (int)which, tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert_int_ge(hits, 3);
    ck_assert_msg(took >= timeout - 5, "call %d returned after %lld ms, before its %d ms timeout",
                  (int)which, (long long)took, timeout);
    ck_assert_msg(took <= timeout + 250 * th_time_scale(),
                  "call %d took %lld ms for a %d ms timeout: EINTR restarted the timeout?",
                  (int)which, (long long)took, timeout);
    if (which == W_SEND_ALL)
        ck_assert_uint_gt(n, 0);
    else if (which != W_RECV_ALL)
        ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(acc);
    tcpkit_free(all);
    free(data);
    tcpkit_close(c);
    close(fd);
    tcpkit_listener_close(l);
}
END_TEST

/* connect: EINTR out of connect() (the attempt goes on in the background)
 * and out of every other poll; accept: EINTR before every accept4. The
 * connection comes up and carries data both ways. */
START_TEST(eintr_connect_and_accept_complete)
{
    if (_i && !th_have_ipv6())
        return;
    tcpkit_listener *l = th_listen_loopback(_i ? "::1" : "127.0.0.1");
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_connect_timeout(o, 5000), TCPKIT_OK);

    int cid = tf_add((tf_rule){.call = TF_CONNECT, .action = TF_FAIL_AFTER, .err = EINTR});
    int pid = tf_fail(TF_POLL, EINTR, 0, 2, -1);
    tcpkit_conn *c = NULL, *s = NULL;
    tcpkit_err ec = tcpkit_connect(&c, _i ? "::1" : "127.0.0.1", port, o);
    int aid = tf_fail(TF_ACCEPT, EINTR, 0, 2, -1);
    tcpkit_err ea = tcpkit_accept(l, &s, 5000);
    long ch = tf_hits(cid), ah = tf_hits(aid);
    (void)pid;
    tf_reset();

    tcpkit_opts_free(o);
    ck_assert_msg(ec == TCPKIT_OK, "connect: %s (%s)", tcpkit_strerror(ec), tcpkit_last_error());
    ck_assert_msg(ea == TCPKIT_OK, "accept: %s (%s)", tcpkit_strerror(ea), tcpkit_last_error());
    ck_assert_int_eq(ch, 1);
    ck_assert_int_ge(ah, 1);
    size_t n;
    ck_assert_int_eq(tcpkit_send_all(c, "ping\n", 5, &n), TCPKIT_OK);
    char line[16];
    ck_assert_int_eq(tcpkit_recv_line(s, line, sizeof line, &n), TCPKIT_OK);
    ck_assert_str_eq(line, "ping\n");
    ck_assert_int_eq(tcpkit_send_all(s, "pong\n", 5, &n), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_line(c, line, sizeof line, &n), TCPKIT_OK);
    ck_assert_str_eq(line, "pong\n");
    tcpkit_close(c);
    tcpkit_close(s);
    tcpkit_listener_close(l);
}
END_TEST

/* Three clients queued; EINTR before every accept4: each is accepted
 * exactly once, none skipped. */
START_TEST(eintr_accept_loses_no_client)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    int port = tcpkit_listener_port(l);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = th_raw_connect("127.0.0.1", port);
        char b = (char)('A' + i);
        ck_assert_uint_eq(th_raw_send_all(fds[i], &b, 1), 1);
    }
    tcpkit_conn *cs[3] = {0};
    tcpkit_err errs[3];
    tf_fail(TF_ACCEPT, EINTR, 0, 2, -1);
    for (int i = 0; i < 3; i++)
        errs[i] = tcpkit_accept(l, &cs[i], 5000);
    tf_reset();
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(errs[i], TCPKIT_OK);
        char b;
        size_t n;
        ck_assert_int_eq(tcpkit_recv_exact(cs[i], &b, 1, &n), TCPKIT_OK);
        ck_assert(b >= 'A' && b <= 'C');
        ck_assert_msg(!(seen & (1 << (b - 'A'))), "client %c accepted twice", b);
        seen |= 1 << (b - 'A');
        tcpkit_close(cs[i]);
        close(fds[i]);
    }
    tcpkit_listener_close(l);
}
END_TEST

/* A real signal (SIGALRM every 5 ms, handler without SA_RESTART) during a
 * receive with a 300 ms timeout: ETIMEDOUT at about 300 ms. */
static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

START_TEST(real_signals_keep_the_deadline)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 300), TCPKIT_OK);
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval it = {{0, 5000}, {0, 5000}}, off = {{0, 0}, {0, 0}};
    alarms = 0;
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
    char buf[16];
    size_t n;
    int64_t t0 = th_now_ms();
    tcpkit_err err = tcpkit_recv(c, buf, sizeof buf, &n);
    int64_t took = th_now_ms() - t0;
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    ck_assert_msg(err == TCPKIT_ETIMEDOUT, "recv: %s (%s)", tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert_int_ge(alarms, 5);
    ck_assert_int_ge(took, 295);
    ck_assert_int_le(took, 300 + 250 * th_time_scale());
    tcpkit_close(c);
    close(fd);
}
END_TEST

/* ---- descriptors ---- */

/* EMFILE/ENFILE from accept4 with a client waiting: TCPKIT_EMFILE at once
 * (one accept4 call, no waiting out the timeout); the client is still
 * there afterwards. */
START_TEST(accept_emfile_returns_at_once)
{
    const int errs[] = {EMFILE, ENFILE};
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    int fd = th_raw_connect("127.0.0.1", tcpkit_listener_port(l));
    tcpkit_conn *c = (tcpkit_conn *)1;
    unsigned long before = tf_calls(TF_ACCEPT);
    int id = tf_fail(TF_ACCEPT, errs[_i], 0, 1, -1);
    int64_t t0 = th_now_ms();
    tcpkit_err err = tcpkit_accept(l, &c, 2000);
    int64_t took = th_now_ms() - t0;
    long hits = tf_hits(id);
    int last = tcpkit_last_errno();
    tf_reset();
    ck_assert_msg(err == TCPKIT_EMFILE, "accept: %s (%s)", tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert_int_eq(last, errs[_i]);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(hits, 1);
    ck_assert_uint_eq(tf_calls(TF_ACCEPT) - before, 1);
    ck_assert_int_lt(took, 100 * th_time_scale());
    ck_assert_int_eq(tcpkit_accept(l, &c, 2000), TCPKIT_OK);
    tcpkit_close(c);
    close(fd);
    tcpkit_listener_close(l);
}
END_TEST

/* Out of descriptors while creating sockets: connect and listen say
 * TCPKIT_EMFILE (socket() or the listener's eventfd). */
START_TEST(socket_emfile_maps_to_emfile)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_conn *c = (tcpkit_conn *)1;
    tcpkit_listener *l2 = (tcpkit_listener *)1, *l3 = (tcpkit_listener *)1;
    tf_fail(TF_SOCKET, EMFILE, 0, 1, -1);
    tcpkit_err ec = tcpkit_connect(&c, "127.0.0.1", port, NULL);
    tcpkit_err el = tcpkit_listen(&l2, "127.0.0.1", "0", NULL);
    tf_reset();
    tf_fail(TF_EVENTFD, ENFILE, 0, 1, -1);
    tcpkit_err ee = tcpkit_listen(&l3, "127.0.0.1", "0", NULL);
    tf_reset();
    ck_assert_msg(ec == TCPKIT_EMFILE, "connect: %s (%s)", tcpkit_strerror(ec),
                  tcpkit_last_error());
    ck_assert_int_eq(el, TCPKIT_EMFILE);
    ck_assert_int_eq(ee, TCPKIT_EMFILE);
    ck_assert_ptr_null(c);
    ck_assert_ptr_null(l2);
    ck_assert_ptr_null(l3);
    tcpkit_listener_close(l);
}
END_TEST

/* bind() refusals map to their codes and leave nothing open. */
START_TEST(bind_errors_map)
{
    const int errs[] = {EACCES, EADDRINUSE};
    const tcpkit_err want[] = {TCPKIT_EACCES, TCPKIT_EADDRINUSE};
    tcpkit_listener *l = (tcpkit_listener *)1;
    tf_fail(TF_BIND, errs[_i], 0, 1, -1);
    tcpkit_err err = tcpkit_listen(&l, "127.0.0.1", "0", NULL);
    tf_reset();
    ck_assert_int_eq(err, want[_i]);
    ck_assert_ptr_null(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault-inject");
    TCase *tc = fault_tcase("send", 60);
    tcase_add_test(tc, send_all_one_byte_at_a_time);
    tcase_add_test(tc, send_all_short_writes_and_eagain);
    tcase_add_test(tc, send_all_eintr_before_every_call);
    tcase_add_loop_test(tc, send_all_reset_midway_reports_exact_count, 0, 2);
    tcase_add_test(tc, send_all_reset_at_once_writes_zero);
    suite_add_tcase(s, tc);

    tc = fault_tcase("recv", 60);
    tcase_add_loop_test(tc, receive_under_tiny_reads_same_result, 0, 8);
    tcase_add_test(tc, recv_line_one_byte_lines_exact);
    suite_add_tcase(s, tc);

    tc = fault_tcase("eintr", 30);
    tcase_add_loop_test(tc, eintr_in_poll_keeps_the_deadline, 0, 6);
    tcase_add_loop_test(tc, eintr_connect_and_accept_complete, 0, 2);
    tcase_add_test(tc, eintr_accept_loses_no_client);
    tcase_add_test(tc, real_signals_keep_the_deadline);
    suite_add_tcase(s, tc);

    tc = fault_tcase("descriptors", 30);
    tcase_add_loop_test(tc, accept_emfile_returns_at_once, 0, 2);
    tcase_add_test(tc, socket_emfile_maps_to_emfile);
    tcase_add_loop_test(tc, bind_errors_map, 0, 2);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
