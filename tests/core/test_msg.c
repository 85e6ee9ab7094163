/* SPDX-License-Identifier: MIT */
/* 1.1: framing (send_msg / recv_msg), vectored sends and file sends. */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static int scaled(int ms)
{
    return ms * th_time_scale();
}

static bool last_error_has(const char *s)
{
    return strstr(tcpkit_last_error(), s) != NULL;
}

/* A pair whose client waits at most 5 s per call (a bug fails, not hangs). */
static void pair_raw(tcpkit_conn **c, int *s)
{
    th_pair_raw(c, s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(*c, scaled(5000)), TCPKIT_OK);
}

static void raw_send(int fd, const void *buf, size_t len)
{
    ck_assert_uint_eq(th_raw_send_all(fd, buf, len), len);
}

/* Reads exactly len bytes from a raw blocking fd. */
static void raw_recv_exact(int fd, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = recv(fd, (char *)buf + done, len - done, 0);
        ck_assert_int_gt(r, 0);
        done += (size_t)r;
    }
}

/* ---- send_msg ---- */

START_TEST(send_msg_frames)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    size_t sent = 0;
    ck_assert_int_eq(tcpkit_send_msg(c, "hello", 5, &sent), TCPKIT_OK);
    ck_assert_uint_eq(sent, 9);
    ck_assert_int_eq(tcpkit_send_msg(c, NULL, 0, &sent), TCPKIT_OK);
    ck_assert_uint_eq(sent, 4);
    unsigned char got[13];
    raw_recv_exact(s, got, sizeof got);
    ck_assert_mem_eq(got, "\0\0\0\5hello\0\0\0\0", 13);
    /* A body of 300 bytes: the length is big-endian. */
    char body[300];
    memset(body, 'b', sizeof body);
    ck_assert_int_eq(tcpkit_send_msg(c, body, sizeof body, NULL), TCPKIT_OK);
    raw_recv_exact(s, got, 4);
    ck_assert_mem_eq(got, "\0\0\1\54", 4);
    /* Bad arguments. */
    sent = 99;
    ck_assert_int_eq(tcpkit_send_msg(c, NULL, 1, &sent), TCPKIT_EINVAL);
    ck_assert_uint_eq(sent, 0);
#if SIZE_MAX > UINT32_MAX
    sent = 99;
    ck_assert_int_eq(tcpkit_send_msg(c, body, (size_t)UINT32_MAX + 1, &sent), TCPKIT_EINVAL);
    ck_assert_uint_eq(sent, 0);
#endif
    ck_assert_int_eq(tcpkit_send_msg(NULL, body, 1, NULL), TCPKIT_EINVAL);
    tcpkit_close(c);
    close(s);
}
END_TEST

/* ---- recv_msg ---- */

START_TEST(recv_msg_round_trip)
{
    tcpkit_conn *c, *s;
    th_pair(&c, &s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(s, scaled(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_send_msg(c, "abc", 3, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_send_msg(c, "", 0, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_send_msg(c, "xyz", 3, NULL), TCPKIT_OK);
    void *data = NULL;
    size_t len = 99;
    ck_assert_int_eq(tcpkit_recv_msg(s, &data, &len, 3), TCPKIT_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert_str_eq(data, "abc");
    tcpkit_free(data);
    /* 0-length: a non-NULL, NUL-terminated buffer. */
    ck_assert_int_eq(tcpkit_recv_msg(s, &data, &len, 3), TCPKIT_OK);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(((char *)data)[0], '\0');
    tcpkit_free(data);
    ck_assert_int_eq(tcpkit_recv_msg(s, &data, NULL, 100), TCPKIT_OK);
    ck_assert_str_eq(data, "xyz");
    tcpkit_free(data);
    /* End of stream exactly between messages. */
    ck_assert_int_eq(tcpkit_close_write(c), TCPKIT_OK);
    data = &len;
    len = 99;
    ck_assert_int_eq(tcpkit_recv_msg(s, &data, &len, 100), TCPKIT_EOF);
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(len, 0);
    ck_assert_msg(!last_error_has("truncated"), "%s", tcpkit_last_error());
    tcpkit_close(c);
    tcpkit_close(s);
}
END_TEST

START_TEST(recv_msg_too_big_leaves_body)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    raw_send(s, "\0\0\x03\xe8", 4); /* 1000 */
    raw_send(s, "B", 1);
    void *data = &data;
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 999), TCPKIT_ETOOBIG);
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(len, 1000);
    /* The body is still unread. */
    char ch;
    ck_assert_int_eq(tcpkit_recv(c, &ch, 1, NULL), TCPKIT_OK);
    ck_assert_int_eq(ch, 'B');
    /* The largest allowed: exactly max. */
    char body[1000];
    memset(body, 'q', sizeof body);
    raw_send(s, "\0\0\x03\xe8", 4);
    raw_send(s, body, sizeof body);
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 1000), TCPKIT_OK);
    ck_assert_uint_eq(len, 1000);
    ck_assert_mem_eq(data, body, 1000);
    tcpkit_free(data);
    /* The largest length the header can say, with a small max. */
    raw_send(s, "\xff\xff\xff\xff", 4);
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 1 << 20), TCPKIT_ETOOBIG);
    ck_assert_uint_eq(len, UINT32_MAX);
    ck_assert_ptr_null(data);
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(recv_msg_truncated_in_header)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    raw_send(s, "\0\0", 2);
    ck_assert_int_eq(shutdown(s, SHUT_WR), 0);
    void *data = &data;
    size_t len = 99;
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 100), TCPKIT_EOF);
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(len, 0);
    ck_assert_msg(last_error_has("truncated"), "%s", tcpkit_last_error());
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(recv_msg_truncated_in_body)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    raw_send(s,
             "\0\0\0\x0a"
             "abcd",
             8);
    ck_assert_int_eq(shutdown(s, SHUT_WR), 0);
    void *data = NULL;
    size_t len = 99;
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 100), TCPKIT_EOF);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(len, 4);
    ck_assert_str_eq(data, "abcd");
    ck_assert_msg(last_error_has("truncated"), "%s", tcpkit_last_error());
    tcpkit_free(data);
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(recv_msg_after_recv_line)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    /* One write: the line and the message arrive together, so recv_line
     * reads part of the message ahead. */
    raw_send(s, "hi\n\0\0\0\3abc", 10);
    char line[16];
    ck_assert_int_eq(tcpkit_recv_line(c, line, sizeof line, NULL), TCPKIT_OK);
    ck_assert_str_eq(line, "hi\n");
    void *data = NULL;
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 10), TCPKIT_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert_str_eq(data, "abc");
    tcpkit_free(data);
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(recv_msg_timeout_consumes_nothing)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 0), TCPKIT_OK);
    void *data = &data;
    size_t len = 99;
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 10), TCPKIT_ETIMEDOUT);
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(len, 0);
    raw_send(s, "\0\0\0\1z", 5);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, scaled(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 10), TCPKIT_OK);
    ck_assert_str_eq(data, "z");
    tcpkit_free(data);
    /* Bad arguments. */
    data = &data;
    len = 99;
    ck_assert_int_eq(tcpkit_recv_msg(c, &data, &len, 0), TCPKIT_EINVAL);
    ck_assert_ptr_null(data);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(tcpkit_recv_msg(c, NULL, &len, 10), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_recv_msg(NULL, &data, &len, 10), TCPKIT_EINVAL);
    tcpkit_close(c);
    close(s);
}
END_TEST

/* ---- sendv ---- */

START_TEST(sendv_buffers_in_order)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    char big[100000];
    th_fill(big, sizeof big, 3, 0);
    struct iovec iov[5] = {
        {"head:", 5}, {NULL, 0}, {big, sizeof big}, {"", 0}, {"\r\n", 2},
    };
    struct iovec copy[5];
    memcpy(copy, iov, sizeof iov);
    size_t sent = 0;
    ck_assert_int_eq(tcpkit_sendv(c, iov, 5, &sent), TCPKIT_OK);
    ck_assert_uint_eq(sent, 5 + sizeof big + 2);
    ck_assert_mem_eq(iov, copy, sizeof iov); /* never modified */
    char *got = malloc(sent);
    ck_assert_ptr_nonnull(got);
    raw_recv_exact(s, got, sent);
    ck_assert_mem_eq(got, "head:", 5);
    ck_assert_mem_eq(got + 5, big, sizeof big);
    ck_assert_mem_eq(got + 5 + sizeof big, "\r\n", 2);
    free(got);
    tcpkit_close(c);
    close(s);
}
END_TEST

START_TEST(sendv_counts)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    size_t sent = 99;
    ck_assert_int_eq(tcpkit_sendv(c, NULL, 0, &sent), TCPKIT_OK);
    ck_assert_uint_eq(sent, 0);
    struct iovec one = {"x", 1};
    sent = 99;
    ck_assert_int_eq(tcpkit_sendv(c, &one, -1, &sent), TCPKIT_EINVAL);
    ck_assert_uint_eq(sent, 0);
    ck_assert_int_eq(tcpkit_sendv(c, NULL, 1, &sent), TCPKIT_EINVAL);
    struct iovec nullbase = {NULL, 3};
    ck_assert_int_eq(tcpkit_sendv(c, &nullbase, 1, &sent), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_sendv(NULL, &one, 1, &sent), TCPKIT_EINVAL);
    /* 1024 buffers are allowed, 1025 are not. */
    static struct iovec many[1025];
    static char bytes[1025];
    for (int i = 0; i < 1025; i++) {
        bytes[i] = (char)('a' + i % 26);
        many[i].iov_base = &bytes[i];
        many[i].iov_len = 1;
    }
    ck_assert_int_eq(tcpkit_sendv(c, many, 1025, &sent), TCPKIT_EINVAL);
    ck_assert_uint_eq(sent, 0);
    ck_assert_int_eq(tcpkit_sendv(c, many, 1024, &sent), TCPKIT_OK);
    ck_assert_uint_eq(sent, 1024);
    char got[1024];
    raw_recv_exact(s, got, sizeof got);
    ck_assert_mem_eq(got, bytes, 1024);
    /* Lengths whose sum overflows. */
    struct iovec huge[2] = {{bytes, SIZE_MAX}, {bytes, 2}};
    ck_assert_int_eq(tcpkit_sendv(c, huge, 2, &sent), TCPKIT_EINVAL);
    tcpkit_close(c);
    close(s);
}
END_TEST

/* ---- sendfile ---- */

/* A temporary regular file of len pattern bytes (seed 11), already
 * unlinked; the FNV hash of [off, off + n) goes to *hash when hash. */
static int temp_file(size_t len)
{
    char path[] = "/tmp/tcpkit-sendfile-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(unlink(path), 0);
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    ck_assert_ptr_nonnull(buf);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        th_fill(buf, n, 11, off);
        ck_assert_int_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
    }
    free(buf);
    return fd;
}

static uint64_t pattern_hash(size_t off, size_t n)
{
    char buf[65536];
    uint64_t h = TH_FNV_INIT;
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        th_fill(buf, k, 11, off);
        h = th_fnv(h, buf, k);
        off += k;
        n -= k;
    }
    return h;
}

/* Reads p->fd until EOF: count in result, hash in sum. */
static void hash_reader(th_peer *p)
{
    char *buf = malloc(1 << 16);
    if (!buf) {
        th_peer_fail(p, "malloc");
        return;
    }
    p->sum = TH_FNV_INIT;
    ssize_t r;
    while ((r = recv(p->fd, buf, 1 << 16, 0)) > 0) {
        p->sum = th_fnv(p->sum, buf, (size_t)r);
        p->result += r;
    }
    if (r < 0)
        th_peer_fail(p, "recv: %s", strerror(errno));
    free(buf);
}

static void sendfile_check(size_t file_len, uint64_t off, size_t len, tcpkit_err want,
                           size_t want_sent)
{
    int fd = temp_file(file_len);
    ck_assert_int_eq(lseek(fd, 123, SEEK_SET), 123);
    tcpkit_conn *c;
    th_peer p = {0};
    pair_raw(&c, &p.fd);
    th_peer_start(&p, hash_reader);
    size_t sent = 99;
    tcpkit_err e = tcpkit_sendfile(c, fd, off, len, &sent);
    tcpkit_close(c);
    th_peer_join(&p);
    ck_assert_msg(e == want, "%s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_uint_eq(sent, want_sent);
    ck_assert_int_eq(p.result, (int64_t)want_sent);
    ck_assert(p.sum == pattern_hash((size_t)off, want_sent));
    /* The file's own position is untouched. */
    ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 123);
    close(fd);
}

START_TEST(sendfile_big_checksum)
{
    size_t len = th_under_valgrind() ? (size_t)4 << 20 : (size_t)64 << 20;
    sendfile_check(len, 0, len, TCPKIT_OK, len);
}
END_TEST

START_TEST(sendfile_slices)
{
    sendfile_check(10000, 1000, 5000, TCPKIT_OK, 5000);
    sendfile_check(10000, 0, 0, TCPKIT_OK, 0);
}
END_TEST

START_TEST(sendfile_past_end)
{
    sendfile_check(100, 50, 100, TCPKIT_EOF, 50);
    ck_assert_msg(tcpkit_last_error()[0] != '\0', "no message");
    sendfile_check(100, 200, 10, TCPKIT_EOF, 0);
    sendfile_check(0, 0, 1, TCPKIT_EOF, 0);
}
END_TEST

START_TEST(sendfile_bad_descriptors)
{
    tcpkit_conn *c;
    int s;
    pair_raw(&c, &s);
    size_t sent = 99;
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    ck_assert_int_eq(tcpkit_sendfile(c, pfd[0], 0, 1, &sent), TCPKIT_EINVAL);
    ck_assert_uint_eq(sent, 0);
    ck_assert_int_eq(tcpkit_sendfile(c, s, 0, 1, &sent), TCPKIT_EINVAL); /* a socket */
    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dir, 0);
    ck_assert_int_eq(tcpkit_sendfile(c, dir, 0, 1, &sent), TCPKIT_EINVAL);
    /* A regular file open for writing only. */
    char path[] = "/tmp/tcpkit-wronly-XXXXXX";
    int tmp = mkstemp(path);
    ck_assert_int_ge(tmp, 0);
    int wr = open(path, O_WRONLY | O_CLOEXEC);
    ck_assert_int_ge(wr, 0);
    unlink(path);
    ck_assert_int_eq(tcpkit_sendfile(c, wr, 0, 1, &sent), TCPKIT_EINVAL);
    /* A closed descriptor number. */
    int closed = dup(tmp);
    close(closed);
    ck_assert_int_eq(tcpkit_sendfile(c, closed, 0, 1, &sent), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_sendfile(c, -1, 0, 1, &sent), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_sendfile(NULL, tmp, 0, 1, &sent), TCPKIT_EINVAL);
    ck_assert_uint_eq(sent, 0);
    /* An offset no off_t holds. */
    ck_assert_int_eq(tcpkit_sendfile(c, tmp, UINT64_MAX, 1, &sent), TCPKIT_EINVAL);
    /* Nothing was sent by any of them. */
    ck_assert_int_eq(tcpkit_send_all(c, "!", 1, NULL), TCPKIT_OK);
    char ch;
    ck_assert_int_eq(recv(s, &ch, 1, 0), 1);
    ck_assert_int_eq(ch, '!');
    close(pfd[0]);
    close(pfd[1]);
    close(dir);
    close(wr);
    close(tmp);
    tcpkit_close(c);
    close(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("core-msg");
    TCase *tc = th_tcase("msg", 30);
    tcase_add_test(tc, send_msg_frames);
    tcase_add_test(tc, recv_msg_round_trip);
    tcase_add_test(tc, recv_msg_too_big_leaves_body);
    tcase_add_test(tc, recv_msg_truncated_in_header);
    tcase_add_test(tc, recv_msg_truncated_in_body);
    tcase_add_test(tc, recv_msg_after_recv_line);
    tcase_add_test(tc, recv_msg_timeout_consumes_nothing);
    suite_add_tcase(su, tc);
    tc = th_tcase("sendv", 30);
    tcase_add_test(tc, sendv_buffers_in_order);
    tcase_add_test(tc, sendv_counts);
    suite_add_tcase(su, tc);
    tc = th_tcase("sendfile", 120);
    tcase_add_test(tc, sendfile_big_checksum);
    tcase_add_test(tc, sendfile_slices);
    tcase_add_test(tc, sendfile_past_end);
    tcase_add_test(tc, sendfile_bad_descriptors);
    suite_add_tcase(su, tc);
    return th_run_suite(su);
}
