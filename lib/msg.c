/* SPDX-License-Identifier: MIT */
/* Framing: messages with a 4-byte big-endian length prefix. */
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>

#define HDR_LEN 4

tcpkit_err tcpkit_send_msg(tcpkit_conn *c, const void *buf, size_t len, size_t *sent)
{
    if (sent)
        *sent = 0;
    if (!c)
        return tk_fail(TCPKIT_EINVAL, 0, "send_msg: conn is NULL");
    if (!buf && len > 0)
        return tk_fail(TCPKIT_EINVAL, 0, "send_msg: buffer is NULL");
    if ((uint64_t)len > UINT32_MAX)
        return tk_fail(TCPKIT_EINVAL, 0, "send_msg: %zu bytes do not fit a 4-byte length", len);
    unsigned char hdr[HDR_LEN] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                                  (unsigned char)(len >> 8), (unsigned char)len};
    /* One iovec array: header and body leave in one sendmsg(), so with
     * no-delay on a small message is one segment, not two. */
    struct iovec iov[2] = {{hdr, HDR_LEN}, {(void *)(uintptr_t)buf, len}};
    return tk_sendv(c, iov, len > 0 ? 2 : 1, sent, "send_msg");
}

/* Reads the header. EOF before any byte is the clean end between
 * messages; inside the header it is a truncated message. */
static tcpkit_err recv_header(tcpkit_conn *c, tk_deadline *d, uint32_t *n)
{
    unsigned char hdr[HDR_LEN];
    size_t got = 0;
    tcpkit_err err = tk_recv_exact(c, hdr, HDR_LEN, &got, d, "recv_msg");
    if (err == TCPKIT_EOF && got == 0)
        return tk_fail(TCPKIT_EOF, 0, "recv_msg: end of stream");
    if (err == TCPKIT_EOF)
        return tk_fail(TCPKIT_EOF, 0,
                       "recv_msg: truncated message: end of stream after %zu of %d header bytes",
                       got, HDR_LEN);
    if (err != TCPKIT_OK)
        return err;
    *n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    return TCPKIT_OK;
}

tcpkit_err tcpkit_recv_msg(tcpkit_conn *c, void **data, size_t *len, size_t max)
{
    if (len)
        *len = 0;
    if (data)
        *data = NULL;
    if (!c || !data)
        return tk_fail(TCPKIT_EINVAL, 0, "recv_msg: %s is NULL", c ? "data" : "conn");
    if (max == 0)
        return tk_fail(TCPKIT_EINVAL, 0, "recv_msg: max is 0");
    tcpkit_err err = tk_conn_check(c, "recv_msg");
    if (err != TCPKIT_OK)
        return err;
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    uint32_t n = 0;
    err = recv_header(c, &d, &n);
    if (err != TCPKIT_OK)
        return err;
    if (n > max) {
        if (len)
            *len = n;
        return tk_fail(TCPKIT_ETOOBIG, 0, "recv_msg: message of %lu bytes exceeds max %zu",
                       (unsigned long)n, max);
    }
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "recv_msg: out of memory for %lu bytes",
                       (unsigned long)n);
    size_t got = 0;
    err = tk_recv_exact(c, buf, n, &got, &d, "recv_msg");
    /* Whatever arrived of the body is handed back, on every outcome. */
    buf[got] = '\0';
    *data = buf;
    if (len)
        *len = got;
    if (err == TCPKIT_EOF)
        return tk_fail(TCPKIT_EOF, 0,
                       "recv_msg: truncated message: end of stream after %zu of %lu body bytes",
                       got, (unsigned long)n);
    return err;
}
