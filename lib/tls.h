/* SPDX-License-Identifier: MIT */
/* Internal interface of the TLS rooms: tls.c (the shared configuration),
 * tls_conn.c (one connection's SSL), tls_bio.c (our socket BIO), and
 * tls_none.c (the same names in a build without OpenSSL). */
#ifndef TCPKIT_TLS_H
#define TCPKIT_TLS_H

#include "tcpkit.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* errno of a tk_tls_read/tk_tls_write that failed for a TLS reason: the
 * failure is recorded in the conn's TLS state (tk_tls_refail). */
#define TK_ETLS_ERRNO EPROTO

/* One connection's TLS state (tls_conn.c). */
struct tk_tls_conn;

/* Takes another reference (tls.c). */
void tk_tls_ref(tcpkit_tls *t);
/* Whether the configuration has a certificate of its own (listeners need one). */
bool tk_tls_has_cert(tcpkit_tls *t);

/* A new TLS state over the connected non-blocking socket fd, from t's
 * current context. server_name (client only) is verified and sent as SNI
 * unless t sets its own; NULL with no name in t leaves the name unchecked
 * (only for callers that pass an address). Failures are recorded with op. */
tcpkit_err tk_tls_conn_new(tcpkit_tls *t, int fd, bool server, const char *server_name,
                           const char *op, struct tk_tls_conn **out);
/* Frees the state; notify sends close_notify first if that is possible
 * without waiting (tcpkit_close), never for tcpkit_abort. */
void tk_tls_conn_free(struct tk_tls_conn *s, bool notify);

/* The I/O seam (tk_conn_read/tk_conn_write): bytes moved (> 0), 0 for
 * end of stream after close_notify (read), or -1 with errno: EAGAIN with
 * *wait_for set to POLLIN or POLLOUT, TK_ETLS_ERRNO for a recorded TLS
 * failure, or the socket's errno. Runs a pending handshake first. */
ssize_t tk_tls_read(struct tk_tls_conn *s, void *buf, size_t cap, short *wait_for);
ssize_t tk_tls_write(struct tk_tls_conn *s, const void *buf, size_t len, short *wait_for);

/* One non-blocking handshake step: 1 done, 0 wait for *wait_for, -1 failed
 * (report it with tk_tls_refail). */
int tk_tls_handshake_step(struct tk_tls_conn *s, short *wait_for);
/* One step of sending close_notify: 1 sent, 0 wait for *wait_for, -1 failed
 * (report it with tk_tls_refail). */
int tk_tls_shutdown_step(struct tk_tls_conn *s, short *wait_for);

/* Re-records the failure behind TK_ETLS_ERRNO with op as prefix. */
tcpkit_err tk_tls_refail(const struct tk_tls_conn *s, const char *op);

/* Decrypted bytes not yet handed out. */
size_t tk_tls_pending(struct tk_tls_conn *s);
/* Whether the handshake is complete. */
bool tk_tls_done(struct tk_tls_conn *s);

/* tcpkit_conn_tls_info for an established state. */
tcpkit_err tk_tls_info(struct tk_tls_conn *s, tcpkit_tls_info what, char *buf, size_t cap);

#ifdef TCPKIT_WITH_OPENSSL
#include <openssl/ssl.h>

/* A configuration's settings. Each SSL_CTX carries its own immutable copy
 * (ex_data), so a connection sees one consistent set for its whole life
 * however the configuration changes meanwhile. */
struct tk_tls_settings {
    char *ca_file, *cert_file, *key_file, *server_name;
    unsigned char *alpn; /* wire format: length-prefixed names */
    size_t alpn_len;
    unsigned char *pins; /* npins SHA-256 digests, 32 bytes each */
    size_t npins;
    int client_auth, min_version;
    bool insecure;
};

/* "h2,http/1.1" -> ALPN wire format (malloc'd; NULL/"" gives NULL, 0).
 * Empty or over-long names are TCPKIT_EINVAL (tls_parse.c). */
tcpkit_err tk_tls_parse_alpn(const char *s, unsigned char **wire, size_t *len, const char *op);
/* "sha256//B64;B64" -> n 32-byte digests (malloc'd; NULL/"" gives NULL, 0).
 * Anything but 44-character base64 of 32 bytes is TCPKIT_EINVAL. */
tcpkit_err tk_tls_parse_pins(const char *s, unsigned char **pins, size_t *n, const char *op);

/* The current context, with a reference for the caller (SSL_CTX_free). */
SSL_CTX *tk_tls_ctx(tcpkit_tls *t);
/* The settings a context was built from. */
const struct tk_tls_settings *tk_tls_settings_of(const SSL_CTX *ctx);
/* The verify callback every context installs (tls_conn.c): insecure mode,
 * pins, and remembering why verification failed. */
int tk_tls_verify_cb(int ok, X509_STORE_CTX *x);

/* A BIO doing recv/send(MSG_NOSIGNAL) on fd; the socket errno of a failed
 * call goes to *err (tls_bio.c). NULL on ENOMEM. */
BIO *tk_tls_bio_new(int fd, int *err);
#endif

#endif /* TCPKIT_TLS_H */
