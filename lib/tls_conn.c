/* SPDX-License-Identifier: MIT */
/* One connection's TLS: the SSL object, its lock, and how OpenSSL's results
 * map onto the I/O seam and onto errors that name their reason.
 *
 * A sender and a receiver may use one connection at once, but an SSL object
 * must not be entered by two threads at once: every SSL_* call on it runs
 * under `lock`, which is never held across a wait (each call here is
 * non-blocking; the callers wait in tk_conn_wait). */
#include "internal.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tk_tls_conn {
    SSL *ssl;
    pthread_mutex_t lock;
    bool server;
    /* A fatal failure is sticky: later calls report it again. */
    bool failed;
    tcpkit_err err;
    int sys_err; /* errno of the BIO's last failed socket call */
    bool pin_mismatch;
    /* The handshake completed once. SSL_is_init_finished is not enough:
     * OpenSSL is "in init" again while it reads a TLS 1.3 session ticket. */
    bool established;
    char want_name[TK_HOST_MAX + 1];
    char msg[320];
};

/* ---- verification ---- */

static bool pin_matches(X509 *cert, const struct tk_tls_settings *st)
{
    unsigned char *der = NULL;
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    unsigned char md[32];
    bool ok = len > 0 && EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    for (size_t i = 0; ok && i < st->npins; i++)
        if (memcmp(md, st->pins + i * 32, 32) == 0)
            return true;
    return false;
}

int tk_tls_verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    const struct tk_tls_settings *st = tk_tls_settings_of(SSL_get_SSL_CTX(ssl));
    struct tk_tls_conn *s = SSL_get_app_data(ssl);
    if (!ok && st->insecure && !s->server) {
        X509_STORE_CTX_set_error(x, X509_V_OK);
        ok = 1;
    }
    if (!ok || st->npins == 0 || X509_STORE_CTX_get_error_depth(x) != 0)
        return ok;
    if (pin_matches(X509_STORE_CTX_get_current_cert(x), st))
        return 1;
    s->pin_mismatch = true;
    X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

/* ---- failures ---- */

/* Remembers a fatal failure (sticky) and returns -1. */
static int set_failure(struct tk_tls_conn *s, tcpkit_err err, const char *fmt, const char *arg)
{
    s->failed = true;
    s->err = err;
    snprintf(s->msg, sizeof s->msg, fmt, arg);
    return -1;
}

static int cert_failure(struct tk_tls_conn *s, long v)
{
    if (s->pin_mismatch)
        return set_failure(s, TCPKIT_ECERT, "%s", "public key pin mismatch");
    if (v == X509_V_ERR_HOSTNAME_MISMATCH)
        return set_failure(s, TCPKIT_ECERT, "hostname mismatch (wanted %s)", s->want_name);
    if (v == X509_V_ERR_IP_ADDRESS_MISMATCH)
        return set_failure(s, TCPKIT_ECERT, "IP address mismatch (wanted %s)", s->want_name);
    return set_failure(s, TCPKIT_ECERT, "%s", X509_verify_cert_error_string(v));
}

static bool is_version_reason(int r)
{
    return r == SSL_R_UNSUPPORTED_PROTOCOL || r == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
           r == SSL_R_NO_PROTOCOLS_AVAILABLE || r == SSL_R_WRONG_VERSION_NUMBER ||
           r == SSL_R_VERSION_TOO_LOW;
}

/* SSL_ERROR_SSL: the reason from the verify result or the error queue. */
static int ssl_failure(struct tk_tls_conn *s)
{
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    const char *text = ERR_reason_error_string(e);
    ERR_clear_error();
    long v = SSL_get_verify_result(s->ssl);
    if (v != X509_V_OK || s->pin_mismatch)
        return cert_failure(s, v);
    if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        return set_failure(s, TCPKIT_ECERT, "%s", "peer did not return a certificate");
    if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING && s->established)
        return set_failure(s, TCPKIT_ETLS, "%s",
                           "peer closed without close_notify: the data may be truncated");
    if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return set_failure(s, TCPKIT_ETLS, "%s", "peer closed the connection in the handshake");
    if (is_version_reason(reason))
        return set_failure(s, TCPKIT_ETLS, "protocol version: %s", text ? text : "no match");
    return set_failure(s, TCPKIT_ETLS, "%s", text ? text : "TLS failure");
}

/* Maps a failed SSL_* call: 0 with *wait_for to wait, 1 for close_notify
 * received, -1 for a failure (errno is the socket's, or TK_ETLS_ERRNO). */
static int classify(struct tk_tls_conn *s, int ret, short *wait_for)
{
    switch (SSL_get_error(s->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *wait_for = POLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *wait_for = POLLOUT;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return 1;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (s->sys_err)
            return set_failure(s, tk_err_from_errno(s->sys_err), "%s", tk_errno_text(s->sys_err));
        return set_failure(s, TCPKIT_ETLS, "%s",
                           "peer closed without close_notify: the data may be truncated");
    default:
        return ssl_failure(s);
    }
}

/* The errno a failed seam call reports for the sticky failure. */
static ssize_t failed_io(const struct tk_tls_conn *s)
{
    errno = s->err == TCPKIT_ETLS || s->err == TCPKIT_ECERT ? TK_ETLS_ERRNO : s->sys_err;
    return -1;
}

tcpkit_err tk_tls_refail(const struct tk_tls_conn *s, const char *op)
{
    return tk_fail(s->err, s->err == TCPKIT_ETLS || s->err == TCPKIT_ECERT ? 0 : s->sys_err,
                   "%s: %s", op, s->msg);
}

/* ---- the seam ---- */

/* Runs one SSL_read_ex/SSL_write_ex under the lock. */
static ssize_t io_call(struct tk_tls_conn *s, void *buf, size_t n, bool writing, short *wait_for)
{
    pthread_mutex_lock(&s->lock);
    if (s->failed) {
        pthread_mutex_unlock(&s->lock);
        return failed_io(s);
    }
    ERR_clear_error();
    s->sys_err = 0;
    size_t done = 0;
    int ret = writing ? SSL_write_ex(s->ssl, buf, n, &done) : SSL_read_ex(s->ssl, buf, n, &done);
    int k = ret == 1 ? 2 : classify(s, ret, wait_for);
    s->established = s->established || ret == 1;
    pthread_mutex_unlock(&s->lock);
    if (k == 2)
        return (ssize_t)done;
    if (k == 1)
        return 0;
    if (k == 0) {
        errno = EAGAIN;
        return -1;
    }
    return failed_io(s);
}

ssize_t tk_tls_read(struct tk_tls_conn *s, void *buf, size_t cap, short *wait_for)
{
    return io_call(s, buf, cap, false, wait_for);
}

ssize_t tk_tls_write(struct tk_tls_conn *s, const void *buf, size_t len, short *wait_for)
{
    return io_call(s, (void *)buf, len, true, wait_for);
}

/* Runs a step function under the lock: 1 done, 0 wait, -1 failed. */
static int step(struct tk_tls_conn *s, int (*fn)(SSL *), short *wait_for)
{
    pthread_mutex_lock(&s->lock);
    int k = -1;
    if (!s->failed) {
        ERR_clear_error();
        s->sys_err = 0;
        int ret = fn(s->ssl);
        k = ret >= 0 && (ret == 1 || fn == SSL_shutdown) ? 1 : classify(s, ret, wait_for);
    }
    pthread_mutex_unlock(&s->lock);
    return k;
}

static int handshake_once(SSL *ssl)
{
    struct tk_tls_conn *s = SSL_get_app_data(ssl);
    if (s->established)
        return 1;
    int r = SSL_do_handshake(ssl);
    s->established = r == 1;
    return r;
}

int tk_tls_handshake_step(struct tk_tls_conn *s, short *wait_for)
{
    int k = step(s, handshake_once, wait_for);
    if (k != 1 || tk_tls_done(s))
        return k;
    /* close_notify in the middle of the handshake: still a failure. */
    return set_failure(s, TCPKIT_ETLS, "%s", "peer closed the connection in the handshake");
}

int tk_tls_shutdown_step(struct tk_tls_conn *s, short *wait_for)
{
    return step(s, SSL_shutdown, wait_for);
}

size_t tk_tls_pending(struct tk_tls_conn *s)
{
    pthread_mutex_lock(&s->lock);
    int n = SSL_pending(s->ssl);
    pthread_mutex_unlock(&s->lock);
    return n > 0 ? (size_t)n : 0;
}

bool tk_tls_done(struct tk_tls_conn *s)
{
    pthread_mutex_lock(&s->lock);
    bool done = s->established;
    pthread_mutex_unlock(&s->lock);
    return done;
}

/* ---- life ---- */

static bool is_ip_literal(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* Client: the name to verify, and to send as SNI unless it is an IP
 * literal (RFC 6066 forbids those in SNI). */
static tcpkit_err set_peer_name(struct tk_tls_conn *s, const char *name, const char *op)
{
    char clean[TK_HOST_MAX + 1];
    if (!name)
        return TCPKIT_OK;
    tcpkit_err err = tk_clean_host(name, clean, sizeof clean, op);
    if (err != TCPKIT_OK)
        return err;
    clean[strcspn(clean, "%")] = '\0'; /* a zone index is not in certificates */
    snprintf(s->want_name, sizeof s->want_name, "%s", clean);
    X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    bool ok = is_ip_literal(clean) ? X509_VERIFY_PARAM_set1_ip_asc(vp, clean) == 1
                                   : SSL_set_tlsext_host_name(s->ssl, clean) == 1 &&
                                         SSL_set1_host(s->ssl, clean) == 1;
    if (!ok)
        return tk_fail(TCPKIT_ETLS, 0, "%s: cannot use server name %s", op, clean);
    return TCPKIT_OK;
}

static int server_verify_mode(int client_auth)
{
    if (client_auth == TCPKIT_TLS_CLIENT_AUTH_REQUIRE)
        return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    return client_auth == TCPKIT_TLS_CLIENT_AUTH_OPTIONAL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
}

static tcpkit_err setup(struct tk_tls_conn *s, SSL_CTX *ctx, int fd, const char *name,
                        const char *op)
{
    const struct tk_tls_settings *st = tk_tls_settings_of(ctx);
    s->ssl = SSL_new(ctx);
    BIO *bio = s->ssl ? tk_tls_bio_new(fd, &s->sys_err) : NULL;
    if (!bio)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    SSL_set_bio(s->ssl, bio, bio);
    SSL_set_app_data(s->ssl, s);
    if (s->server) {
        SSL_set_accept_state(s->ssl);
        SSL_set_verify(s->ssl, server_verify_mode(st->client_auth), tk_tls_verify_cb);
        return TCPKIT_OK;
    }
    SSL_set_connect_state(s->ssl);
    return set_peer_name(s, st->server_name ? st->server_name : name, op);
}

tcpkit_err tk_tls_conn_new(tcpkit_tls *t, int fd, bool server, const char *server_name,
                           const char *op, struct tk_tls_conn **out)
{
    *out = NULL;
    struct tk_tls_conn *s = calloc(1, sizeof *s);
    if (!s)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    s->server = server;
    pthread_mutex_init(&s->lock, NULL);
    SSL_CTX *ctx = tk_tls_ctx(t);
    tcpkit_err err = setup(s, ctx, fd, server_name, op);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    ERR_clear_error();
    if (err != TCPKIT_OK) {
        tk_tls_conn_free(s, false);
        return err;
    }
    *out = s;
    return TCPKIT_OK;
}

void tk_tls_conn_free(struct tk_tls_conn *s, bool notify)
{
    if (!s)
        return;
    /* One non-blocking attempt: a full send buffer or a dead peer just
     * means no close_notify (MSG_NOSIGNAL: never a SIGPIPE). */
    if (notify && s->ssl && !s->failed && s->established &&
        !(SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN))
        SSL_shutdown(s->ssl);
    ERR_clear_error();
    SSL_free(s->ssl);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- tcpkit_conn_tls_info ---- */

static tcpkit_err copy_out(const char *v, size_t n, char *buf, size_t cap)
{
    if (n + 1 > cap) {
        if (cap)
            buf[0] = '\0';
        return tk_fail(TCPKIT_EINVAL, 0, "conn_tls_info: buffer of %zu bytes too small for %zu",
                       cap, n + 1);
    }
    memcpy(buf, v, n);
    buf[n] = '\0';
    return TCPKIT_OK;
}

static tcpkit_err peer_subject(SSL *ssl, char *buf, size_t cap)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert)
        return copy_out("", 0, buf, cap);
    BIO *mem = BIO_new(BIO_s_mem());
    if (!mem || X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
        BIO_free(mem);
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "conn_tls_info: out of memory");
    }
    char *p;
    long n = BIO_get_mem_data(mem, &p);
    tcpkit_err err = copy_out(p, n > 0 ? (size_t)n : 0, buf, cap);
    BIO_free(mem);
    return err;
}

static tcpkit_err info_locked(SSL *ssl, tcpkit_tls_info what, char *buf, size_t cap)
{
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    const char *v;
    switch (what) {
    case TCPKIT_TLS_INFO_VERSION:
        v = SSL_get_version(ssl);
        break;
    case TCPKIT_TLS_INFO_CIPHER:
        v = SSL_get_cipher_name(ssl);
        break;
    case TCPKIT_TLS_INFO_ALPN:
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
        return copy_out(alpn ? (const char *)alpn : "", alpn_len, buf, cap);
    case TCPKIT_TLS_INFO_PEER_SUBJECT:
        return peer_subject(ssl, buf, cap);
    case TCPKIT_TLS_INFO_SERVER_NAME:
        v = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        break;
    default:
        return tk_fail(TCPKIT_EINVAL, 0, "conn_tls_info: unknown item %d", (int)what);
    }
    v = v ? v : "";
    return copy_out(v, strlen(v), buf, cap);
}

tcpkit_err tk_tls_info(struct tk_tls_conn *s, tcpkit_tls_info what, char *buf, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    tcpkit_err err = TCPKIT_OK;
    if (!s->established)
        err = tk_fail(TCPKIT_EINVAL, 0, "conn_tls_info: handshake not done");
    else
        err = info_locked(s->ssl, what, buf, cap);
    pthread_mutex_unlock(&s->lock);
    return err;
}
