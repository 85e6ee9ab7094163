/* SPDX-License-Identifier: MIT */
/* Sending and receiving on a connection: bulk data, the bounded reads,
 * lines, half-close, resets, timeouts, SIGPIPE. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- 64 MiB round trip ---- */

static size_t bulk_size(void)
{
    /* Scaled down, not off, where every byte is instrumented. */
    return th_under_valgrind() ? (size_t)4 << 20 : (size_t)64 << 20;
}

/* Echoes everything on p->conn until EOF, then half-closes. */
static void echo_fn(th_peer *p)
{
    size_t cap = 256 * 1024;
    char *buf = malloc(cap);
    if (buf == NULL) {
        th_peer_fail(p, "malloc");
        return;
    }
    for (;;) {
        size_t got = 0;
        tcpkit_err e = tcpkit_recv(p->conn, buf, cap, &got);
        if (e == TCPKIT_EOF)
            break;
        if (e != TCPKIT_OK) {
            th_peer_fail(p, "echo recv: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
            break;
        }
        p->result += (int64_t)got;
        size_t sent = 0;
        e = tcpkit_send_all(p->conn, buf, got, &sent);
        if (e != TCPKIT_OK || sent != got) {
            th_peer_fail(p, "echo send: %s, %zu of %zu", tcpkit_strerror(e), sent, got);
            break;
        }
    }
    tcpkit_err e = tcpkit_close_write(p->conn);
    if (e != TCPKIT_OK)
        th_peer_fail(p, "close_write: %s", tcpkit_strerror(e));
    free(buf);
}

/* Sends arg (a size_t *) bytes of pattern in uneven chunks, sums them, then
 * half-closes. */
static void sender_fn(th_peer *p)
{
    size_t total = *(size_t *)p->arg;
    size_t chunk_max = 1 << 20;
    char *buf = malloc(chunk_max);
    if (buf == NULL) {
        th_peer_fail(p, "malloc");
        return;
    }
    uint64_t h = TH_FNV_INIT;
    size_t off = 0;
    size_t step = 12345;
    while (off < total) {
        size_t n = step < total - off ? step : total - off;
        th_fill(buf, n, 7, off);
        h = th_fnv(h, buf, n);
        size_t sent = 0;
        tcpkit_err e = tcpkit_send_all(p->conn, buf, n, &sent);
        if (e != TCPKIT_OK || sent != n) {
            th_peer_fail(p, "send at %zu: %s, %zu of %zu", off, tcpkit_strerror(e), sent, n);
            break;
        }
        off += n;
        step = step * 3 % chunk_max + 1;
    }
    p->sum = h;
    p->result = (int64_t)off;
    tcpkit_err e = tcpkit_close_write(p->conn);
    if (e != TCPKIT_OK)
        th_peer_fail(p, "close_write: %s", tcpkit_strerror(e));
    p->conn = NULL; /* owned by the test */
    free(buf);
}

START_TEST(round_trip_64mib)
{
    size_t total = bulk_size();
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    th_peer echo = {.fd = -1, .conn = s};
    th_peer_start(&echo, echo_fn);
    th_peer send = {.fd = -1, .conn = c, .arg = &total};
    th_peer_start(&send, sender_fn);

    /* This thread receives while the sender thread sends on the same conn. */
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    char *want = malloc(cap);
    ck_assert(buf != NULL && want != NULL);
    uint64_t h = TH_FNV_INIT;
    size_t off = 0;
    while (off < total) {
        size_t n = cap < total - off ? cap : total - off;
        size_t got = 0;
        tcpkit_err e = tcpkit_recv_exact(c, buf, n, &got);
        ck_assert_msg(e == TCPKIT_OK, "recv_exact at %zu: %s (%s)", off, tcpkit_strerror(e),
                      tcpkit_last_error());
        ck_assert_uint_eq(got, n);
        th_fill(want, n, 7, off);
        ck_assert_msg(memcmp(buf, want, n) == 0, "data differs in block at %zu", off);
        h = th_fnv(h, buf, n);
        off += n;
    }
    size_t got = 99;
    ck_assert_int_eq(tcpkit_recv(c, buf, cap, &got), TCPKIT_EOF);
    ck_assert_uint_eq(got, 0);
    th_peer_join(&send);
    th_peer_join(&echo);
    ck_assert_uint_eq((uint64_t)send.result, total);
    ck_assert_uint_eq((uint64_t)echo.result, total);
    ck_assert_msg(send.sum == h, "checksum: sent %llx, received %llx", (unsigned long long)send.sum,
                  (unsigned long long)h);
    free(buf);
    free(want);
    tcpkit_close(c);
}
END_TEST

/* ---- bounded reads at end of stream ---- */

/* Sends data to the raw socket and closes it (or only half-closes). */
static void raw_send_and_close(int fd, const void *data, size_t len)
{
    ck_assert_uint_eq(th_raw_send_all(fd, data, len), len);
    close(fd);
}

START_TEST(recv_exact_eof_mid_message)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    raw_send_and_close(fd, "0123456789", 10);
    char buf[100];
    memset(buf, 0, sizeof buf);
    size_t got = 0;
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, sizeof buf, &got), TCPKIT_EOF);
    ck_assert_uint_eq(got, 10);
    ck_assert_int_eq(memcmp(buf, "0123456789", 10), 0);
    got = 99;
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &got), TCPKIT_EOF);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, 0, &got), TCPKIT_OK);
    ck_assert_uint_eq(got, 0);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_all_until_eof)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    char msg[3000];
    th_fill(msg, sizeof msg, 1, 0);
    raw_send_and_close(fd, msg, sizeof msg);
    void *data = NULL;
    size_t len = 0;
    /* A success, though it ends on EOF: the last failure's message stays. */
    ck_assert_int_eq(tcpkit_recv(NULL, msg, 1, NULL), TCPKIT_EINVAL);
    char before[256];
    snprintf(before, sizeof before, "%s", tcpkit_last_error());
    /* Exactly max bytes is not "more than max". */
    ck_assert_int_eq(tcpkit_recv_all(c, &data, &len, sizeof msg), TCPKIT_OK);
    ck_assert_str_eq(tcpkit_last_error(), before);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(len, sizeof msg);
    ck_assert_int_eq(memcmp(data, msg, sizeof msg), 0);
    ck_assert_int_eq(((char *)data)[len], '\0');
    tcpkit_free(data);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_all_empty_stream)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    close(fd);
    void *data = (void *)&data;
    size_t len = 99;
    ck_assert_int_eq(tcpkit_recv_all(c, &data, &len, 100), TCPKIT_OK);
    ck_assert_uint_eq(len, 0);
    if (data != NULL)
        ck_assert_int_eq(((char *)data)[0], '\0');
    tcpkit_free(data);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_all_over_cap)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    char msg[5000];
    th_fill(msg, sizeof msg, 2, 0);
    raw_send_and_close(fd, msg, sizeof msg);
    const size_t max = 1000;
    void *data = NULL;
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_all(c, &data, &len, max), TCPKIT_ETOOBIG);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(len, max);
    ck_assert_int_eq(memcmp(data, msg, max), 0);
    ck_assert_int_eq(((char *)data)[max], '\0');
    tcpkit_free(data);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_all_toobig_without_eof)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    const size_t max = 100;
    char msg[101];
    th_fill(msg, sizeof msg, 3, 0);
    ck_assert_uint_eq(th_raw_send_all(fd, msg, sizeof msg), sizeof msg);
    /* The peer stays open: waiting for EOF would run into the timeout. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, th_bound_ms(3000)), TCPKIT_OK);
    void *data = NULL;
    size_t len = 0;
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_recv_all(c, &data, &len, max);
    int64_t el = th_now_ms() - t0;
    ck_assert_msg(e == TCPKIT_ETOOBIG, "got %s", tcpkit_strerror(e));
    ck_assert_msg(el < th_bound_ms(1000), "took %lld ms", (long long)el);
    ck_assert_uint_eq(len, max);
    ck_assert_int_eq(memcmp(data, msg, max), 0);
    ck_assert_int_eq(((char *)data)[max], '\0');
    tcpkit_free(data);
    close(fd);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_all_timeout_keeps_data)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    ck_assert_uint_eq(th_raw_send_all(fd, "abcde", 5), 5);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 100), TCPKIT_OK);
    void *data = NULL;
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_all(c, &data, &len, 1000), TCPKIT_ETIMEDOUT);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(len, 5);
    ck_assert_str_eq(data, "abcde");
    tcpkit_free(data);
    close(fd);
    tcpkit_close(c);
}
END_TEST

/* ---- lines ---- */

START_TEST(recv_line_crlf_and_partial_last)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    const char *msg = "hello\r\na\n\nlast-no-newline";
    raw_send_and_close(fd, msg, strlen(msg));
    char buf[64];
    size_t len = 0;
    const char *want[] = {"hello\r\n", "a\n", "\n", "last-no-newline"};
    ck_assert_int_eq(tcpkit_recv_line(NULL, buf, sizeof buf, NULL), TCPKIT_EINVAL);
    char before[256];
    snprintf(before, sizeof before, "%s", tcpkit_last_error());
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_OK);
        /* The partial last line meets EOF, yet it is a success. */
        ck_assert_str_eq(tcpkit_last_error(), before);
        ck_assert_str_eq(buf, want[i]);
        ck_assert_uint_eq(len, strlen(want[i]));
    }
    len = 99;
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_EOF);
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "end of stream"));
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_EOF);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_line_over_cap)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    const char *msg = "0123456789abcdef\nrest\n";
    raw_send_and_close(fd, msg, strlen(msg));
    char buf[64];
    memset(buf, 'X', sizeof buf);
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_line(c, buf, 8, &len), TCPKIT_ETOOBIG);
    ck_assert_uint_eq(len, 7);
    ck_assert_str_eq(buf, "0123456");
    ck_assert_int_eq(buf[8], 'X');
    /* The rest of the line is still there. */
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_OK);
    ck_assert_str_eq(buf, "789abcdef\n");
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_OK);
    ck_assert_str_eq(buf, "rest\n");
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_EOF);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_line_cap_one)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    raw_send_and_close(fd, "x\n", 2);
    char buf[4] = "zzz";
    size_t len = 99;
    ck_assert_int_eq(tcpkit_recv_line(c, buf, 1, &len), TCPKIT_ETOOBIG);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(buf[0], '\0');
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_OK);
    ck_assert_str_eq(buf, "x\n");
    tcpkit_close(c);
}
END_TEST

/* recv_line reads ahead; every other receive must hand out the buffered
 * bytes first, in order. */
START_TEST(recv_line_mixed_with_other_receives)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    char body[2000];
    th_fill(body, sizeof body, 4, 0);
    for (size_t i = 0; i < sizeof body; i++)
        if (body[i] == '\n')
            body[i] = 'n';
    ck_assert_uint_eq(th_raw_send_all(fd, "L1\n", 3), 3);
    raw_send_and_close(fd, body, sizeof body);

    char line[16];
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_line(c, line, sizeof line, &len), TCPKIT_OK);
    ck_assert_str_eq(line, "L1\n");

    size_t off = 0, got = 0;
    char buf[2000];
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, 10, &got), TCPKIT_OK);
    ck_assert_uint_eq(got, 10);
    ck_assert_int_eq(memcmp(buf, body, 10), 0);
    off += 10;
    ck_assert_int_eq(tcpkit_recv(c, buf, 5, &got), TCPKIT_OK);
    ck_assert(got >= 1 && got <= 5);
    ck_assert_int_eq(memcmp(buf, body + off, got), 0);
    off += got;
    void *rest = NULL;
    size_t rlen = 0;
    ck_assert_int_eq(tcpkit_recv_all(c, &rest, &rlen, sizeof body), TCPKIT_OK);
    ck_assert_uint_eq(off + rlen, sizeof body);
    ck_assert_int_eq(memcmp(rest, body + off, rlen), 0);
    tcpkit_free(rest);
    tcpkit_close(c);
}
END_TEST

START_TEST(recv_line_then_recv_gets_buffer)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    /* Two lines in one segment: the second is read ahead. */
    ck_assert_uint_eq(th_raw_send_all(fd, "one\ntwo\n", 8), 8);
    char buf[64];
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_OK);
    ck_assert_str_eq(buf, "one\n");
    /* Nothing more will arrive: timeout 0 still returns the buffered bytes
     * (the socket is not even polled). */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 0), TCPKIT_OK);
    size_t got = 0;
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &got), TCPKIT_OK);
    ck_assert_uint_eq(got, 4);
    ck_assert_int_eq(memcmp(buf, "two\n", 4), 0);
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &got), TCPKIT_ETIMEDOUT);
    close(fd);
    tcpkit_close(c);
}
END_TEST

/* ---- half-close ---- */

START_TEST(half_close)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_send_all(c, "request", 7, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_close_write(c), TCPKIT_OK);
    void *data = NULL;
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_all(s, &data, &len, 100), TCPKIT_OK);
    ck_assert_str_eq(data, "request");
    tcpkit_free(data);
    /* The half-closed side still receives. */
    ck_assert_int_eq(tcpkit_send_all(s, "reply", 5, NULL), TCPKIT_OK);
    tcpkit_close(s);
    ck_assert_int_eq(tcpkit_recv_all(c, &data, &len, 100), TCPKIT_OK);
    ck_assert_uint_eq(len, 5);
    ck_assert_str_eq(data, "reply");
    tcpkit_free(data);
    tcpkit_close(c);
}
END_TEST

/* ---- resets ---- */

/* Reads arg (size_t *) bytes from the raw socket, then resets it. */
static void read_then_abort_fn(th_peer *p)
{
    size_t want = *(size_t *)p->arg;
    char *buf = malloc(want);
    if (buf == NULL) {
        th_peer_fail(p, "malloc");
        return;
    }
    size_t got = th_raw_recv_all(p->fd, buf, want);
    if (got != want)
        th_peer_fail(p, "read %zu of %zu", got, want);
    p->result = (int64_t)got;
    th_raw_abort(p->fd);
    p->fd = -1;
    free(buf);
}

START_TEST(send_into_reset_peer)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    size_t total = th_under_valgrind() ? (size_t)16 << 20 : (size_t)32 << 20;
    size_t read_first = 100000;
    char *buf = malloc(total);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'r', total);
    th_peer p = {.fd = fd, .arg = &read_first};
    th_peer_start(&p, read_then_abort_fn);
    size_t sent = 0;
    tcpkit_err e = tcpkit_send_all(c, buf, total, &sent);
    th_peer_join(&p);
    ck_assert_msg(e == TCPKIT_ERESET, "send_all: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_msg(sent >= read_first && sent < total, "sent %zu of %zu", sent, total);
    int en = tcpkit_last_errno();
    ck_assert_msg(en == ECONNRESET || en == EPIPE, "errno %d", en);
    free(buf);
    tcpkit_close(c);
}
END_TEST

START_TEST(abort_gives_peer_reset)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_send_all(s, "x", 1, NULL), TCPKIT_OK);
    char b;
    ck_assert_int_eq(tcpkit_recv(c, &b, 1, NULL), TCPKIT_OK);
    tcpkit_abort(s);
    size_t got = 99;
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, th_bound_ms(5000)), TCPKIT_OK);
    tcpkit_err e = tcpkit_recv(c, &b, 1, &got);
    ck_assert_msg(e == TCPKIT_ERESET, "recv after abort: %s", tcpkit_strerror(e));
    ck_assert_uint_eq(got, 0);
    /* The peer address is recorded, so it still works after the reset. */
    char peer[TCPKIT_ADDRSTRLEN];
    ck_assert_int_eq(tcpkit_conn_peer(c, peer, sizeof peer), TCPKIT_OK);
    ck_assert_msg(strncmp(peer, "127.0.0.1:", 10) == 0, "peer %s", peer);
    tcpkit_close(c);
}
END_TEST

START_TEST(abort_gives_peer_reset_in_recv_exact)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_send_all(s, "abc", 3, NULL), TCPKIT_OK);
    char buf[16];
    size_t got = 0;
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, 3, &got), TCPKIT_OK);
    tcpkit_abort(s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, th_bound_ms(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, 10, &got), TCPKIT_ERESET);
    ck_assert_uint_eq(got, 0);
    tcpkit_close(c);
}
END_TEST

/* SIGPIPE is at its default: a send without MSG_NOSIGNAL would kill us. */
START_TEST(send_to_closed_peer_no_sigpipe)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    tcpkit_close(s);
    char buf[4096];
    memset(buf, 'p', sizeof buf);
    tcpkit_err e = TCPKIT_OK;
    /* The first sends may succeed (the peer's RST has to come back first). */
    for (int i = 0; i < 1000 && e == TCPKIT_OK; i++)
        e = tcpkit_send_all(c, buf, sizeof buf, NULL);
    ck_assert_msg(e == TCPKIT_ERESET, "send to closed peer: %s", tcpkit_strerror(e));
    /* Again, after the connection is known dead (EPIPE now). */
    size_t sent = 99;
    ck_assert_int_eq(tcpkit_send_all(c, buf, sizeof buf, &sent), TCPKIT_ERESET);
    ck_assert_uint_eq(sent, 0);
    tcpkit_close(c);
}
END_TEST

/* ---- small things ---- */

START_TEST(zero_length_send)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    size_t sent = 99;
    ck_assert_int_eq(tcpkit_send_all(c, NULL, 0, &sent), TCPKIT_OK);
    ck_assert_uint_eq(sent, 0);
    sent = 99;
    ck_assert_int_eq(tcpkit_send_all(c, "x", 0, &sent), TCPKIT_OK);
    ck_assert_uint_eq(sent, 0);
    ck_assert_int_eq(tcpkit_send_all(c, "x", 0, NULL), TCPKIT_OK);
    /* Nothing went out. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(s, 50), TCPKIT_OK);
    char b;
    ck_assert_int_eq(tcpkit_recv(s, &b, 1, NULL), TCPKIT_ETIMEDOUT);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

START_TEST(recv_returns_what_is_there)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_send_all(s, "abcdef", 6, NULL), TCPKIT_OK);
    char buf[64];
    size_t got = 0;
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, 2, &got), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv(c, buf, 3, &got), TCPKIT_OK);
    ck_assert_uint_eq(got, 3);
    ck_assert_int_eq(memcmp(buf, "cde", 3), 0);
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &got), TCPKIT_OK);
    ck_assert_uint_eq(got, 1);
    ck_assert_int_eq(buf[0], 'f');
    tcpkit_close(s);
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &got), TCPKIT_EOF);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &got), TCPKIT_EOF);
    tcpkit_close(c);
}
END_TEST

START_TEST(timeout_zero_nothing_ready)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 0), TCPKIT_OK);
    char buf[16];
    size_t got = 99;
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, &got), TCPKIT_ETIMEDOUT);
    ck_assert_uint_eq(got, 0);
    got = 99;
    ck_assert_int_eq(tcpkit_recv_exact(c, buf, 4, &got), TCPKIT_ETIMEDOUT);
    ck_assert_uint_eq(got, 0);
    size_t len = 99;
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_ETIMEDOUT);
    ck_assert_uint_eq(len, 0);
    void *data = NULL;
    ck_assert_int_eq(tcpkit_recv_all(c, &data, &len, 100), TCPKIT_ETIMEDOUT);
    ck_assert_uint_eq(len, 0);
    tcpkit_free(data);
    ck_assert_msg(th_now_ms() - t0 < th_bound_ms(100), "timeout 0 waited");

    /* A partial line stays buffered across a timeout. */
    ck_assert_int_eq(tcpkit_send_all(s, "par", 3, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 50), TCPKIT_OK);
    len = 99;
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_ETIMEDOUT);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(tcpkit_send_all(s, "tial\n", 5, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, &len), TCPKIT_OK);
    ck_assert_str_eq(buf, "partial\n");
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

START_TEST(send_timeout_zero_reports_progress)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 0), TCPKIT_OK);
    /* More than the socket buffers hold, and the peer does not read. */
    size_t total = (size_t)64 << 20;
    char *buf = calloc(1, total);
    ck_assert_ptr_nonnull(buf);
    size_t sent = 0;
    tcpkit_err e = tcpkit_send_all(c, buf, total, &sent);
    ck_assert_msg(e == TCPKIT_ETIMEDOUT, "send_all: %s", tcpkit_strerror(e));
    ck_assert_msg(sent > 0 && sent < total, "sent %zu", sent);
    free(buf);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

/* Sends one byte every 40 ms until its pipe (p->fd) is readable. */
static void trickle_fn(th_peer *p)
{
    for (;;) {
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pf, 1, 40);
        if (r != 0)
            return;
        tcpkit_err e = tcpkit_send_all(p->conn, "t", 1, NULL);
        if (e != TCPKIT_OK)
            return; /* the test closed its end: done */
    }
}

/* The timeout bounds the whole call, not each wait: a peer trickling bytes
 * must not keep recv_exact going. */
START_TEST(timeout_bounds_whole_call)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    th_peer p = {.fd = pfd[0], .conn = s};
    th_peer_start(&p, trickle_fn);
    const int timeout = 300;
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, timeout), TCPKIT_OK);
    char buf[1000];
    size_t got = 0;
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_recv_exact(c, buf, sizeof buf, &got);
    int64_t el = th_now_ms() - t0;
    ck_assert_int_eq(write(pfd[1], "x", 1), 1);
    th_peer_join(&p);
    close(pfd[1]);
    ck_assert_msg(e == TCPKIT_ETIMEDOUT, "recv_exact: %s", tcpkit_strerror(e));
    ck_assert_msg(got >= 1 && got < sizeof buf, "got %zu", got);
    ck_assert_msg(el >= timeout - 5, "returned after %lld ms", (long long)el);
    ck_assert_msg(el < timeout + th_bound_ms(700), "took %lld ms", (long long)el);
    tcpkit_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core-io");
    TCase *tc = th_tcase("bulk", 60);
    tcase_add_test(tc, round_trip_64mib);
    suite_add_tcase(s, tc);

    tc = th_tcase("bounded", 10);
    tcase_add_test(tc, recv_exact_eof_mid_message);
    tcase_add_test(tc, recv_all_until_eof);
    tcase_add_test(tc, recv_all_empty_stream);
    tcase_add_test(tc, recv_all_over_cap);
    tcase_add_test(tc, recv_all_toobig_without_eof);
    tcase_add_test(tc, recv_all_timeout_keeps_data);
    suite_add_tcase(s, tc);

    tc = th_tcase("lines", 10);
    tcase_add_test(tc, recv_line_crlf_and_partial_last);
    tcase_add_test(tc, recv_line_over_cap);
    tcase_add_test(tc, recv_line_cap_one);
    tcase_add_test(tc, recv_line_mixed_with_other_receives);
    tcase_add_test(tc, recv_line_then_recv_gets_buffer);
    suite_add_tcase(s, tc);

    tc = th_tcase("close", 20);
    tcase_add_test(tc, half_close);
    tcase_add_test(tc, send_into_reset_peer);
    tcase_add_test(tc, abort_gives_peer_reset);
    tcase_add_test(tc, abort_gives_peer_reset_in_recv_exact);
    tcase_add_test(tc, send_to_closed_peer_no_sigpipe);
    suite_add_tcase(s, tc);

    tc = th_tcase("misc", 10);
    tcase_add_test(tc, zero_length_send);
    tcase_add_test(tc, recv_returns_what_is_there);
    tcase_add_test(tc, timeout_zero_nothing_ready);
    tcase_add_test(tc, send_timeout_zero_reports_progress);
    tcase_add_test(tc, timeout_bounds_whole_call);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
