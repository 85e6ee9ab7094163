/* SPDX-License-Identifier: MIT */
/* Receiving on a connection: the four receive calls and the read-ahead
 * buffer that tcpkit_recv_line fills and every receive drains first. */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Read-ahead buffer of tcpkit_recv_line: large enough that a typical line
 * protocol costs one recv() for many lines. It grows (up to the caller's
 * cap) only for longer lines. */
#define TK_RBUF_MIN 4096
/* tcpkit_recv_all's first allocation; it doubles from there. */
#define TK_RECV_ALL_FIRST 16384

/* ---- the read-ahead buffer ---- */

static size_t rbuf_avail(const tcpkit_conn *c)
{
    return c->rend - c->rstart;
}

/* Hands up to cap buffered bytes to the caller. */
static size_t rbuf_take(tcpkit_conn *c, void *buf, size_t cap)
{
    size_t n = rbuf_avail(c);
    if (n > cap)
        n = cap;
    if (n == 0)
        return 0; /* rbuf may still be NULL */
    memcpy(buf, c->rbuf + c->rstart, n);
    c->rstart += n;
    if (c->rstart == c->rend)
        c->rstart = c->rend = 0;
    return n;
}

/* ---- one receive or send with waiting ---- */

/* recv() once, waiting (within d) while nothing is there. Returns OK with
 * *n > 0, EOF (not recorded as a failure: recv_all and a partial last line
 * end successfully on it, and successful calls leave tcpkit_last_error()
 * alone), or an error. The syscall comes first: poll() only after EAGAIN. */
static tcpkit_err recv_some(tcpkit_conn *c, void *buf, size_t cap, tk_deadline *d, size_t *n,
                            const char *op)
{
    *n = 0;
    for (;;) {
        short wait_for;
        ssize_t r = tk_conn_read(c, buf, cap, &wait_for);
        if (r > 0) {
            *n = (size_t)r;
            return TCPKIT_OK;
        }
        if (r == 0)
            return TCPKIT_EOF; /* not recorded: end of stream is success for some */
        if (errno == EINTR)
            continue;
        if (tk_conn_tls_failed(c, errno))
            return tk_tls_refail(c->tls, op);
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return tk_fail_errno(errno, op);
        tcpkit_err err = tk_conn_wait(c, wait_for, d, op);
        if (err != TCPKIT_OK)
            return err;
    }
}

static tcpkit_err check_conn_buf(tcpkit_conn *c, const void *buf, bool need_buf, const char *op)
{
    if (!c)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: conn is NULL", op);
    if (!buf && need_buf)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: buffer is NULL", op);
    /* A canceled conn hands out nothing, not even buffered bytes. */
    return tk_conn_check(c, op);
}

tcpkit_err tcpkit_recv(tcpkit_conn *c, void *buf, size_t cap, size_t *got)
{
    tk_set_size(got, 0);
    tcpkit_err err = check_conn_buf(c, buf, true, "recv");
    if (err != TCPKIT_OK)
        return err;
    if (cap == 0)
        return tk_fail(TCPKIT_EINVAL, 0, "recv: capacity is 0");
    if (rbuf_avail(c))
        return tk_set_size(got, rbuf_take(c, buf, cap));
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    size_t n;
    err = recv_some(c, buf, cap, &d, &n, "recv");
    tk_set_size(got, n);
    if (err == TCPKIT_EOF)
        return tk_fail(TCPKIT_EOF, 0, "recv: end of stream");
    return err;
}

tcpkit_err tk_recv_exact(tcpkit_conn *c, void *buf, size_t len, size_t *got, tk_deadline *d,
                         const char *op)
{
    char *p = buf;
    size_t done = rbuf_avail(c) ? rbuf_take(c, p, len) : 0;
    tcpkit_err err = TCPKIT_OK;
    while (done < len && err == TCPKIT_OK) {
        size_t n;
        err = recv_some(c, p + done, len - done, d, &n, op);
        done += n;
    }
    *got = done;
    return err;
}

tcpkit_err tcpkit_recv_exact(tcpkit_conn *c, void *buf, size_t len, size_t *got)
{
    tk_set_size(got, 0);
    tcpkit_err err = check_conn_buf(c, buf, len > 0, "recv_exact");
    if (err != TCPKIT_OK)
        return err;
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    size_t done;
    err = tk_recv_exact(c, buf, len, &done, &d, "recv_exact");
    tk_set_size(got, done);
    if (err == TCPKIT_EOF)
        return tk_fail(TCPKIT_EOF, 0, "recv_exact: end of stream after %zu of %zu bytes", done,
                       len);
    return err;
}

/* ---- recv_all ---- */

/* Grows *data so that at least one more byte fits before the NUL, never
 * beyond limit + 1 bytes of data (the +1 detects "more than max"). */
static tcpkit_err grow_all_buffer(char **data, size_t *cap, size_t limit)
{
    size_t want = *cap < TK_RECV_ALL_FIRST ? TK_RECV_ALL_FIRST : *cap;
    if (*cap >= TK_RECV_ALL_FIRST)
        want = *cap > SIZE_MAX / 2 ? SIZE_MAX - 1 : *cap * 2;
    if (want > limit + 1)
        want = limit + 1;
    char *p = realloc(*data, want + 1);
    if (!p)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "recv_all: out of memory after %zu bytes", *cap);
    *data = p;
    *cap = want;
    return TCPKIT_OK;
}

/* Reads until end of stream or until more than max bytes arrived, straight
 * into the growing result buffer (no intermediate copy). *buf and *done
 * hold what arrived on every outcome; EOF is success here. */
static tcpkit_err recv_all_into(tcpkit_conn *c, char **buf, size_t *done, size_t max)
{
    size_t cap = 0;
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    for (;;) {
        tcpkit_err err = TCPKIT_OK;
        if (*done == cap && (err = grow_all_buffer(buf, &cap, max)) != TCPKIT_OK)
            return err;
        size_t n;
        if (rbuf_avail(c))
            n = rbuf_take(c, *buf + *done, cap - *done);
        else
            err = recv_some(c, *buf + *done, cap - *done, &d, &n, "recv_all");
        *done += n;
        if (*done > max) {
            *done = max;
            return tk_fail(TCPKIT_ETOOBIG, 0, "recv_all: more than %zu bytes", max);
        }
        if (err != TCPKIT_OK)
            return err == TCPKIT_EOF ? TCPKIT_OK : err;
    }
}

tcpkit_err tcpkit_recv_all(tcpkit_conn *c, void **data, size_t *len, size_t max)
{
    tk_set_size(len, 0);
    if (data)
        *data = NULL;
    tcpkit_err err = check_conn_buf(c, data, true, "recv_all");
    if (err != TCPKIT_OK)
        return err;
    if (max == 0)
        return tk_fail(TCPKIT_EINVAL, 0, "recv_all: max is 0");
    if (max > SIZE_MAX - 2)
        max = SIZE_MAX - 2;
    char *buf = NULL;
    size_t done = 0;
    err = recv_all_into(c, &buf, &done, max);
    if (buf)
        buf[done] = '\0';
    *data = buf;
    tk_set_size(len, done);
    return err;
}

void tcpkit_free(void *p)
{
    free(p);
}

/* ---- recv_line ---- */

/* Makes room for at least one more byte of read-ahead: compacts, then
 * grows, up to `need` bytes of capacity. Called only while fewer than
 * `need` bytes are buffered, so growing always gains room. */
static tcpkit_err rbuf_reserve(tcpkit_conn *c, size_t need, const char *op)
{
    if (c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, rbuf_avail(c));
        c->rend -= c->rstart;
        c->rstart = 0;
    }
    if (c->rend < c->rcap)
        return TCPKIT_OK;
    /* Double, but never past what one line may occupy: the caller's cap
     * bounds the memory a line can pin. */
    size_t want = c->rcap ? c->rcap * 2 : TK_RBUF_MIN;
    size_t ceiling = need > TK_RBUF_MIN ? need : TK_RBUF_MIN;
    if (want > ceiling)
        want = ceiling;
    char *p = realloc(c->rbuf, want);
    if (!p)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    c->rbuf = p;
    c->rcap = want;
    return TCPKIT_OK;
}

/* Copies n buffered bytes to the caller as a NUL-terminated line. */
static tcpkit_err line_out(tcpkit_conn *c, char *buf, size_t n, size_t *len, tcpkit_err err)
{
    rbuf_take(c, buf, n);
    buf[n] = '\0';
    tk_set_size(len, n);
    return err;
}

tcpkit_err tcpkit_recv_line(tcpkit_conn *c, char *buf, size_t cap, size_t *len)
{
    tk_set_size(len, 0);
    tcpkit_err err = check_conn_buf(c, buf, true, "recv_line");
    if (err != TCPKIT_OK)
        return err;
    if (cap == 0)
        return tk_fail(TCPKIT_EINVAL, 0, "recv_line: capacity is 0");
    buf[0] = '\0';
    size_t limit = cap - 1; /* bytes of line that fit before the NUL */
    size_t scanned = 0;     /* buffered bytes known to hold no newline */
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    for (;;) {
        size_t avail = rbuf_avail(c);
        size_t look = avail < limit ? avail : limit;
        const char *base = c->rbuf ? c->rbuf + c->rstart : NULL;
        const char *nl = look > scanned ? memchr(base + scanned, '\n', look - scanned) : NULL;
        if (nl)
            return line_out(c, buf, (size_t)(nl - base) + 1, len, TCPKIT_OK);
        if (avail >= limit)
            return line_out(
                c, buf, limit, len,
                tk_fail(TCPKIT_ETOOBIG, 0, "recv_line: no newline within %zu bytes", limit));
        scanned = look;
        /* Keep the partial line buffered while we wait for the rest. */
        if ((err = rbuf_reserve(c, limit, "recv_line")) != TCPKIT_OK)
            return err;
        size_t n;
        err = recv_some(c, c->rbuf + c->rend, c->rcap - c->rend, &d, &n, "recv_line");
        c->rend += n;
        if (err == TCPKIT_EOF && rbuf_avail(c))
            return line_out(c, buf, rbuf_avail(c), len, TCPKIT_OK); /* partial last line */
        if (err == TCPKIT_ETIMEDOUT || err == TCPKIT_ESHUTDOWN)
            return err; /* nothing consumed: the next call resumes */
        if (err == TCPKIT_EOF)
            return tk_fail(TCPKIT_EOF, 0, "recv_line: end of stream");
        if (err != TCPKIT_OK)
            return line_out(c, buf, rbuf_avail(c), len, err);
    }
}

/* ---- read-ahead for framing ---- */

tcpkit_err tk_recv_ahead(tcpkit_conn *c, void *buf, size_t len, size_t *got, tk_deadline *d,
                         const char *op)
{
    /* One recv() into the read-ahead buffer usually brings a small
     * message's body along with its header. */
    tcpkit_err err = TCPKIT_OK;
    while (rbuf_avail(c) < len && err == TCPKIT_OK) {
        size_t n = 0;
        if ((err = rbuf_reserve(c, TK_RBUF_MIN, op)) == TCPKIT_OK)
            err = recv_some(c, c->rbuf + c->rend, c->rcap - c->rend, d, &n, op);
        c->rend += n;
    }
    /* Kept for the next call unless it can never complete. */
    *got = err == TCPKIT_OK || err == TCPKIT_EOF ? rbuf_take(c, buf, len) : 0;
    return err;
}
