/* SPDX-License-Identifier: MIT */
/* Sending on a connection: every byte or a precise failure. send_all,
 * vectored sends (sendmsg) and file sends (sendfile), each with a plain
 * fast path; a TLS conn moves the same bytes through tk_conn_write. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* The contract's iovcnt limit (Linux's UIO_MAXIOV). */
#define TK_IOV_MAX 1024
/* iovecs handed to one sendmsg() after a short write: the caller's array
 * is never modified, so the unsent rest is described in a local copy. */
#define IOV_WINDOW 64
/* The most one sendfile() call moves (Linux's own per-call limit). */
#define SENDFILE_CHUNK ((size_t)0x7ffff000)
/* The bounded buffer of a file send that cannot use sendfile (TLS). */
#define COPY_CHUNK ((size_t)64 * 1024)

_Static_assert(sizeof(off_t) == 8, "the library is built with 64-bit off_t");

/* After a failed send: EINTR retries, EAGAIN waits (within d and the
 * conn's deadline), anything else fails with the progress in the message.
 * TCPKIT_OK means "try again". */
static tcpkit_err send_failed(tcpkit_conn *c, short wait_for, tk_deadline *d, size_t done,
                              size_t total, const char *op)
{
    int e = errno;
    if (e == EINTR)
        return TCPKIT_OK;
    if (e == EAGAIN || e == EWOULDBLOCK)
        return tk_conn_wait(c, wait_for, d, op);
    if (tk_conn_tls_failed(c, e))
        return tk_tls_refail(c->tls, op);
    return tk_fail(tk_err_from_errno(e), e, "%s: %s (sent %zu of %zu bytes)", op, tk_errno_text(e),
                   done, total);
}

/* Writes len bytes through the conn seam. *done counts the call's bytes
 * so far (of total), and is mirrored to *sent. */
static tcpkit_err write_all(tcpkit_conn *c, const char *p, size_t len, tk_deadline *d, size_t *done,
                            size_t total, size_t *sent, const char *op)
{
    const char *end = p + len;
    while (p < end) {
        short wait_for;
        ssize_t r = tk_conn_write(c, p, (size_t)(end - p), &wait_for);
        if (r >= 0) {
            p += r;
            *done += (size_t)r;
            tk_set_size(sent, *done);
            continue;
        }
        tcpkit_err err = send_failed(c, wait_for, d, *done, total, op);
        if (err != TCPKIT_OK)
            return err;
    }
    return TCPKIT_OK;
}

tcpkit_err tcpkit_send_all(tcpkit_conn *c, const void *buf, size_t len, size_t *sent)
{
    tk_set_size(sent, 0);
    if (!c || (!buf && len > 0))
        return tk_fail(TCPKIT_EINVAL, 0, "send_all: %s is NULL", c ? "buffer" : "conn");
    tcpkit_err err = tk_conn_check(c, "send_all");
    if (err != TCPKIT_OK)
        return err;
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    size_t done = 0;
    return write_all(c, buf, len, &d, &done, len, sent, "send_all");
}

/* ---- sendv ---- */

static tcpkit_err check_iov(const struct iovec *iov, int iovcnt, size_t *total, const char *op)
{
    if (iovcnt < 0 || iovcnt > TK_IOV_MAX)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: iovcnt %d outside 0..%d", op, iovcnt, TK_IOV_MAX);
    if (!iov && iovcnt > 0)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: iov is NULL", op);
    size_t sum = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len > 0)
            return tk_fail(TCPKIT_EINVAL, 0, "%s: buffer %d is NULL", op, i);
        /* sendmsg() itself refuses a total above SSIZE_MAX. */
        if (iov[i].iov_len > (size_t)SSIZE_MAX - sum)
            return tk_fail(TCPKIT_EINVAL, 0, "%s: total length overflows", op);
        sum += iov[i].iov_len;
    }
    *total = sum;
    return TCPKIT_OK;
}

/* Where the unsent rest starts: buffer idx, off bytes into it. */
struct vpos {
    int idx;
    size_t off;
};

static void vpos_advance(const struct iovec *iov, int iovcnt, struct vpos *v, size_t r)
{
    while (v->idx < iovcnt && r >= iov[v->idx].iov_len - v->off) {
        r -= iov[v->idx].iov_len - v->off;
        v->idx++;
        v->off = 0;
    }
    v->off += r;
}

/* One sendmsg() of the unsent rest. The first try passes the caller's
 * array as it is (sendmsg only reads it); later ones a shifted window. */
static ssize_t send_rest(tcpkit_conn *c, const struct iovec *iov, int iovcnt, struct vpos v)
{
    struct iovec win[IOV_WINDOW];
    struct msghdr m = {0};
    if (v.idx == 0 && v.off == 0) {
        m.msg_iov = (struct iovec *)(uintptr_t)iov;
        m.msg_iovlen = (size_t)iovcnt;
    } else {
        int n = 0;
        for (int i = v.idx; i < iovcnt && n < IOV_WINDOW; i++)
            win[n++] = iov[i];
        win[0].iov_base = (char *)win[0].iov_base + v.off;
        win[0].iov_len -= v.off;
        m.msg_iov = win;
        m.msg_iovlen = (size_t)n;
    }
    return tk_conn_settle(c, sendmsg(c->fd, &m, MSG_NOSIGNAL));
}

/* The path for conns whose bytes go through tk_conn_write (TLS): one
 * buffer after the other, with one deadline for the whole call. */
static tcpkit_err sendv_through_write(tcpkit_conn *c, const struct iovec *iov, int iovcnt,
                                      size_t total, size_t *sent, const char *op)
{
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    size_t done = 0;
    for (int i = 0; i < iovcnt; i++) {
        tcpkit_err err = write_all(c, iov[i].iov_base, iov[i].iov_len, &d, &done, total, sent, op);
        if (err != TCPKIT_OK)
            return err;
    }
    return TCPKIT_OK;
}

tcpkit_err tk_sendv(tcpkit_conn *c, const struct iovec *iov, int iovcnt, size_t *sent,
                    const char *op)
{
    tk_set_size(sent, 0);
    if (!c)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: conn is NULL", op);
    size_t total = 0;
    tcpkit_err err = check_iov(iov, iovcnt, &total, op);
    if (err == TCPKIT_OK)
        err = tk_conn_check(c, op);
    if (err != TCPKIT_OK || total == 0)
        return err;
    if (!tk_conn_is_plain(c))
        return sendv_through_write(c, iov, iovcnt, total, sent, op);
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    struct vpos v = {0, 0};
    size_t done = 0;
    while (done < total) {
        ssize_t r = send_rest(c, iov, iovcnt, v);
        if (r < 0 && (err = send_failed(c, POLLOUT, &d, done, total, op)) != TCPKIT_OK)
            return err;
        if (r <= 0)
            continue;
        done += (size_t)r;
        tk_set_size(sent, done);
        vpos_advance(iov, iovcnt, &v, (size_t)r);
    }
    return TCPKIT_OK;
}

tcpkit_err tcpkit_sendv(tcpkit_conn *c, const struct iovec *iov, int iovcnt, size_t *sent)
{
    return tk_sendv(c, iov, iovcnt, sent, "sendv");
}

/* ---- sendfile ---- */

static tcpkit_err check_file(int fd, uint64_t offset)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return tk_fail(TCPKIT_EINVAL, 0, "sendfile: file_fd %d is not an open descriptor", fd);
    if (!S_ISREG(st.st_mode))
        return tk_fail(TCPKIT_EINVAL, 0, "sendfile: file_fd %d is not a regular file", fd);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY)
        return tk_fail(TCPKIT_EINVAL, 0, "sendfile: file_fd %d is not open for reading", fd);
    if (offset > (uint64_t)INT64_MAX)
        return tk_fail(TCPKIT_EINVAL, 0, "sendfile: offset %llu beyond any file",
                       (unsigned long long)offset);
    return TCPKIT_OK;
}

static tcpkit_err file_ended(uint64_t at, size_t done, size_t len)
{
    return tk_fail(TCPKIT_EOF, 0, "sendfile: the file ends at byte %llu (sent %zu of %zu bytes)",
                   (unsigned long long)at, done, len);
}

/* The TLS path: read + write through one bounded buffer. */
static tcpkit_err sendfile_copy(tcpkit_conn *c, int fd, uint64_t offset, size_t len, size_t *sent)
{
    char *buf = malloc(COPY_CHUNK);
    if (!buf)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "sendfile: out of memory");
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    size_t done = 0;
    tcpkit_err err = TCPKIT_OK;
    while (done < len && err == TCPKIT_OK) {
        size_t want = len - done < COPY_CHUNK ? len - done : COPY_CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)(offset + done));
        if (r < 0 && errno != EINTR)
            err = tk_fail(tk_err_from_errno(errno), errno, "sendfile: read: %s",
                          tk_errno_text(errno));
        else if (r == 0)
            err = file_ended(offset + done, done, len);
        else if (r > 0)
            err = write_all(c, buf, (size_t)r, &d, &done, len, sent, "sendfile");
    }
    free(buf);
    return err;
}

tcpkit_err tcpkit_sendfile(tcpkit_conn *c, int file_fd, uint64_t offset, size_t len, size_t *sent)
{
    tk_set_size(sent, 0);
    if (!c)
        return tk_fail(TCPKIT_EINVAL, 0, "sendfile: conn is NULL");
    tcpkit_err err = check_file(file_fd, offset);
    if (err == TCPKIT_OK)
        err = tk_conn_check(c, "sendfile");
    if (err != TCPKIT_OK || len == 0)
        return err;
    if (!tk_conn_is_plain(c))
        return sendfile_copy(c, file_fd, offset, len, sent);
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    /* Our own offset variable: the file's position is never used or moved. */
    off_t pos = (off_t)offset;
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done < SENDFILE_CHUNK ? len - done : SENDFILE_CHUNK;
        if ((uint64_t)chunk > (uint64_t)(INT64_MAX - pos))
            chunk = (size_t)(INT64_MAX - pos); /* no file reaches past that */
        ssize_t r = chunk ? tk_conn_settle(c, sendfile(c->fd, file_fd, &pos, chunk)) : 0;
        if (r == 0)
            return file_ended((uint64_t)pos, done, len);
        if (r < 0 && (err = send_failed(c, POLLOUT, &d, done, len, "sendfile")) != TCPKIT_OK)
            return err;
        if (r > 0) {
            done += (size_t)r;
            tk_set_size(sent, done);
        }
    }
    return TCPKIT_OK;
}
