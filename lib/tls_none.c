/* SPDX-License-Identifier: MIT */
/* A build without OpenSSL: every TLS function exists (the ABI does not
 * depend on the build) and says TCPKIT_ENOTSUP. No tcpkit_tls can exist, so
 * no connection ever has TLS state and the tk_tls_* seam is never entered. */
#include "internal.h"
#include "tls.h"

#include <errno.h>

static tcpkit_err no_tls(const char *op)
{
    return tk_fail(TCPKIT_ENOTSUP, 0, "%s: this libtcpkit was built without TLS (OpenSSL)", op);
}

tcpkit_err tcpkit_tls_new(tcpkit_tls **out)
{
    if (out)
        *out = NULL;
    return no_tls("tls_new");
}

void tcpkit_tls_free(tcpkit_tls *t)
{
    (void)t;
}

tcpkit_err tcpkit_tls_set_ca_file(tcpkit_tls *t, const char *pem_path)
{
    (void)t, (void)pem_path;
    return no_tls("tls_set_ca_file");
}

tcpkit_err tcpkit_tls_set_cert_file(tcpkit_tls *t, const char *cert_pem_path,
                                    const char *key_pem_path)
{
    (void)t, (void)cert_pem_path, (void)key_pem_path;
    return no_tls("tls_set_cert_file");
}

tcpkit_err tcpkit_tls_set_server_name(tcpkit_tls *t, const char *name)
{
    (void)t, (void)name;
    return no_tls("tls_set_server_name");
}

tcpkit_err tcpkit_tls_set_client_auth(tcpkit_tls *t, tcpkit_tls_client_auth a)
{
    (void)t, (void)a;
    return no_tls("tls_set_client_auth");
}

tcpkit_err tcpkit_tls_set_min_version(tcpkit_tls *t, tcpkit_tls_version v)
{
    (void)t, (void)v;
    return no_tls("tls_set_min_version");
}

tcpkit_err tcpkit_tls_set_alpn(tcpkit_tls *t, const char *protocols)
{
    (void)t, (void)protocols;
    return no_tls("tls_set_alpn");
}

tcpkit_err tcpkit_tls_set_pin_sha256(tcpkit_tls *t, const char *pins)
{
    (void)t, (void)pins;
    return no_tls("tls_set_pin_sha256");
}

tcpkit_err tcpkit_tls_set_insecure_skip_verify(tcpkit_tls *t, bool on)
{
    (void)t, (void)on;
    return no_tls("tls_set_insecure_skip_verify");
}

tcpkit_err tcpkit_tls_reload(tcpkit_tls *t)
{
    (void)t;
    return no_tls("tls_reload");
}

/* ---- the internal seam: unreachable without a tcpkit_tls ---- */

void tk_tls_ref(tcpkit_tls *t)
{
    (void)t;
}

/* True, so that STARTTLS gets as far as tk_tls_conn_new and says ENOTSUP. */
bool tk_tls_has_cert(tcpkit_tls *t)
{
    (void)t;
    return true;
}

tcpkit_err tk_tls_conn_new(tcpkit_tls *t, int fd, bool server, const char *server_name,
                           const char *op, struct tk_tls_conn **out)
{
    (void)t, (void)fd, (void)server, (void)server_name;
    *out = NULL;
    return no_tls(op);
}

void tk_tls_conn_free(struct tk_tls_conn *s, bool notify)
{
    (void)s, (void)notify;
}

ssize_t tk_tls_read(struct tk_tls_conn *s, void *buf, size_t cap, short *wait_for)
{
    (void)s, (void)buf, (void)cap, (void)wait_for;
    errno = ENOTSUP;
    return -1;
}

ssize_t tk_tls_write(struct tk_tls_conn *s, const void *buf, size_t len, short *wait_for)
{
    (void)s, (void)buf, (void)len, (void)wait_for;
    errno = ENOTSUP;
    return -1;
}

int tk_tls_handshake_step(struct tk_tls_conn *s, short *wait_for)
{
    (void)s, (void)wait_for;
    return -1;
}

int tk_tls_shutdown_step(struct tk_tls_conn *s, short *wait_for)
{
    (void)s, (void)wait_for;
    return -1;
}

tcpkit_err tk_tls_refail(const struct tk_tls_conn *s, const char *op)
{
    (void)s;
    return no_tls(op);
}

size_t tk_tls_pending(struct tk_tls_conn *s)
{
    (void)s;
    return 0;
}

bool tk_tls_done(struct tk_tls_conn *s)
{
    (void)s;
    return true;
}

tcpkit_err tk_tls_info(struct tk_tls_conn *s, tcpkit_tls_info what, char *buf, size_t cap)
{
    (void)s, (void)what, (void)buf, (void)cap;
    return no_tls("conn_tls_info");
}
