/* SPDX-License-Identifier: MIT */
/* Sending on a connection: every byte or a precise failure. */
#include "internal.h"

#include <errno.h>

tcpkit_err tcpkit_send_all(tcpkit_conn *c, const void *buf, size_t len, size_t *sent)
{
    tk_set_size(sent, 0);
    if (!c || (!buf && len > 0))
        return tk_fail(TCPKIT_EINVAL, 0, "send_all: %s is NULL", c ? "buffer" : "conn");
    tk_deadline d = tk_deadline_make(c->timeout_ms);
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        short wait_for;
        ssize_t r = tk_conn_write(c, p + done, len - done, &wait_for);
        if (r >= 0) {
            done += (size_t)r;
            tk_set_size(sent, done);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (tk_conn_tls_failed(c, errno))
            return tk_tls_refail(c->tls, "send_all");
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            int e = errno;
            return tk_fail(tk_err_from_errno(e), e, "send_all: %s (sent %zu of %zu bytes)",
                           tk_errno_text(e), done, len);
        }
        tcpkit_err err = tk_conn_wait(c, wait_for, &d, "send_all");
        if (err != TCPKIT_OK)
            return err;
    }
    return TCPKIT_OK;
}
