/* SPDX-License-Identifier: MIT */
/* 1.1's vectored, file and framed sends under forced short writes, EAGAIN,
 * EINTR and resets at every possible split, through the seam's sendmsg and
 * sendfile64 wrappers: progress is exact, nothing is lost, duplicated or
 * reordered, and the caller's iovec array is never modified.
 *
 * Check allocates inside its asserts: every test removes its rules
 * (tf_reset) before asserting. */
#include "helpers.h"
#include "seam.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void fault_setup(void)
{
    tf_reset();
    tf_hold(false);
}

static TCase *fault_tcase(const char *name, double timeout_s)
{
    TCase *tc = th_tcase(name, timeout_s);
    tcase_add_checked_fixture(tc, fault_setup, fault_setup);
    return tc;
}

/* Reads p->fd until EOF into p->arg (a buffer of p->result bytes
 * capacity on entry); the byte count is left in p->result. */
static void collect_fn(th_peer *p)
{
    size_t cap = (size_t)p->result;
    p->result = (int64_t)th_raw_recv_all(p->fd, p->arg, cap);
}

/* The message the vector tests send: 6 buffers of uneven sizes (one
 * empty) over 40 bytes. */
static const char text[] = "HEADER:body-of-the-message...\r\nTRAILER!";
#define TEXT_LEN (sizeof text - 1)

/* Each buffer sits in its own slot between filler bytes, so sending past
 * the end of one (a window not shortened after a split) shows. */
static int make_iov(struct iovec *iov)
{
    static const size_t cuts[] = {7, 0, 15, 1, 8, TEXT_LEN - 31};
    static char slots[6][64];
    memset(slots, '#', sizeof slots);
    const char *p = text;
    for (int i = 0; i < 6; i++) {
        memcpy(slots[i], p, cuts[i]);
        iov[i].iov_base = slots[i];
        iov[i].iov_len = cuts[i];
        p += cuts[i];
    }
    return 6;
}

struct run {
    tcpkit_err err;
    size_t sent;
    long hits;
    size_t got;
    char buf[256];
};

/* sendv of the text through rules set by `rules`, then close; the peer
 * collects what arrived. */
static struct run sendv_with(void (*rules)(int k, int *id), int k)
{
    struct run r = {0};
    tcpkit_conn *c;
    th_peer p = {.arg = r.buf, .result = sizeof r.buf};
    th_pair_raw(&c, &p.fd);
    th_peer_start(&p, collect_fn);
    struct iovec iov[6], copy[6];
    int n = make_iov(iov);
    memcpy(copy, iov, sizeof iov);
    int id = -1;
    rules(k, &id);
    r.err = tcpkit_sendv(c, iov, n, &r.sent);
    r.hits = tf_hits(id);
    tf_reset();
    tcpkit_close(c);
    th_peer_join(&p);
    r.got = (size_t)p.result;
    ck_assert_mem_eq(iov, copy, sizeof iov);
    return r;
}

static void one_byte_writes(int k, int *id)
{
    (void)k;
    *id = tf_short(TF_SENDMSG, 1, -1);
}

START_TEST(sendv_one_byte_writes)
{
    struct run r = sendv_with(one_byte_writes, 0);
    ck_assert_int_eq(r.err, TCPKIT_OK);
    ck_assert_uint_eq(r.sent, TEXT_LEN);
    ck_assert_int_eq(r.hits, (long)TEXT_LEN); /* the seam saw every write */
    ck_assert_uint_eq(r.got, TEXT_LEN);
    ck_assert_mem_eq(r.buf, text, TEXT_LEN);
}
END_TEST

/* 1-byte writes, and a reset on the write after k bytes. */
static void reset_after(int k, int *id)
{
    tf_short(TF_SENDMSG, 1, -1);
    *id = tf_fail(TF_SENDMSG, ECONNRESET, (unsigned)k, 1, 1);
}

START_TEST(sendv_progress_exact_at_every_split)
{
    for (int k = 0; k <= (int)TEXT_LEN - 1; k++) {
        struct run r = sendv_with(reset_after, k);
        ck_assert_msg(r.err == TCPKIT_ERESET, "split %d: %s", k, tcpkit_strerror(r.err));
        ck_assert_int_eq(r.hits, 1);
        ck_assert_msg(r.sent == (size_t)k, "split %d: sent %zu", k, r.sent);
        ck_assert_uint_eq(r.got, (size_t)k);
        ck_assert_mem_eq(r.buf, text, (size_t)k);
    }
}
END_TEST

/* 3-byte writes, every other one refused with EAGAIN or EINTR. */
static void again_and_intr(int k, int *id)
{
    tf_short(TF_SENDMSG, 3, -1);
    *id = tf_fail(TF_SENDMSG, k ? EINTR : EAGAIN, 0, 2, -1);
}

START_TEST(sendv_eagain_and_eintr)
{
    for (int k = 0; k < 2; k++) {
        struct run r = sendv_with(again_and_intr, k);
        ck_assert_int_eq(r.err, TCPKIT_OK);
        ck_assert_uint_eq(r.sent, TEXT_LEN);
        ck_assert_int_gt(r.hits, 5);
        ck_assert_uint_eq(r.got, TEXT_LEN);
        ck_assert_mem_eq(r.buf, text, TEXT_LEN);
    }
}
END_TEST

START_TEST(send_msg_split_header)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(s, 5000 * th_time_scale()), TCPKIT_OK);
    int id = tf_short(TF_SENDMSG, 1, -1);
    size_t sent = 0;
    tcpkit_err e = tcpkit_send_msg(c, "framed", 6, &sent);
    long hits = tf_hits(id);
    /* The receiving side gets its bytes one at a time too. */
    tf_short(TF_RECV, 1, -1);
    void *data = NULL;
    size_t len = 0;
    tcpkit_err e2 = tcpkit_recv_msg(s, &data, &len, 100);
    tf_reset();
    ck_assert_int_eq(e, TCPKIT_OK);
    ck_assert_uint_eq(sent, 10);
    ck_assert_int_eq(hits, 10);
    ck_assert_int_eq(e2, TCPKIT_OK);
    ck_assert_uint_eq(len, 6);
    ck_assert_str_eq(data, "framed");
    tcpkit_free(data);
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

/* ---- sendfile ---- */

static int pattern_file(size_t len)
{
    char path[] = "/tmp/tcpkit-fault-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    char *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    th_fill(buf, len, 5, 0);
    ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
    free(buf);
    return fd;
}

START_TEST(sendfile_short_writes_and_reset)
{
    size_t len = 100000;
    int fd = pattern_file(len);
    char *want = malloc(len);
    char *got = malloc(len);
    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    th_fill(want, len, 5, 0);
    for (int reset = 0; reset < 2; reset++) {
        tcpkit_conn *c;
        th_peer p = {.arg = got, .result = (int64_t)len};
        th_pair_raw(&c, &p.fd);
        th_peer_start(&p, collect_fn);
        off_t pos = lseek(fd, 17, SEEK_SET);
        int id = tf_short(TF_SENDFILE, 7, -1);
        if (reset)
            tf_fail(TF_SENDFILE, ECONNRESET, 1000, 1, 1);
        size_t sent = 0;
        tcpkit_err e = tcpkit_sendfile(c, fd, 3, len - 3, &sent);
        long hits = tf_hits(id);
        tf_reset();
        tcpkit_close(c);
        th_peer_join(&p);
        size_t expect = reset ? 7000 : len - 3;
        ck_assert_int_eq(e, reset ? TCPKIT_ERESET : TCPKIT_OK);
        ck_assert_uint_eq(sent, expect);
        ck_assert_int_ge(hits, 1000);
        ck_assert_int_eq(p.result, (int64_t)expect);
        ck_assert_mem_eq(got, want + 3, expect);
        ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), pos);
    }
    free(want);
    free(got);
    close(fd);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("fault-vec");
    TCase *tc = fault_tcase("sendv", 60);
    tcase_add_test(tc, sendv_one_byte_writes);
    tcase_add_test(tc, sendv_progress_exact_at_every_split);
    tcase_add_test(tc, sendv_eagain_and_eintr);
    tcase_add_test(tc, send_msg_split_header);
    suite_add_tcase(su, tc);
    tc = fault_tcase("sendfile", 60);
    tcase_add_test(tc, sendfile_short_writes_and_reset);
    suite_add_tcase(su, tc);
    return th_run_suite(su);
}
