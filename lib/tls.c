/* SPDX-License-Identifier: MIT */
/* The TLS configuration: a reference-counted holder of one SSL_CTX. Every
 * change builds a new context from a copy of the settings and swaps it in
 * under the lock, so a failed change (a bad file) leaves the old state
 * whole, and live connections keep the context they were made from. */
#include "internal.h"
#include "tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tcpkit_tls {
    atomic_int refs;
    pthread_mutex_t lock;
    SSL_CTX *ctx;
    /* ctx trusts the system store but has not loaded it yet (see
     * tk_tls_ctx): parsing a hundred-odd CA certificates is the costly part
     * of a context, and a config built up by several setters would pay it
     * once per setter. */
    bool system_store_pending;
};

/* ---- settings ---- */

static int settings_index = -1;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

static void settings_free(struct tk_tls_settings *st)
{
    if (!st)
        return;
    free(st->ca_file);
    free(st->cert_file);
    free(st->key_file);
    free(st->server_name);
    free(st->alpn);
    free(st->pins);
    free(st);
}

static void settings_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                             void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    settings_free(ptr);
}

static void settings_init(void)
{
    settings_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, settings_free_cb);
}

const struct tk_tls_settings *tk_tls_settings_of(const SSL_CTX *ctx)
{
    return SSL_CTX_get_ex_data(ctx, settings_index);
}

/* Copies src[0..n) (n == 0: NULL stays NULL); false on ENOMEM. */
static bool dup_bytes(void **dst, const void *src, size_t n)
{
    *dst = NULL;
    if (!src)
        return true;
    *dst = malloc(n ? n : 1);
    if (*dst && n)
        memcpy(*dst, src, n);
    return *dst != NULL;
}

static bool dup_str(char **dst, const char *src)
{
    return dup_bytes((void **)dst, src, src ? strlen(src) + 1 : 0);
}

static tcpkit_err settings_copy(const struct tk_tls_settings *src, struct tk_tls_settings **out,
                                const char *op)
{
    struct tk_tls_settings *st = calloc(1, sizeof *st);
    if (!st)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    st->client_auth = src->client_auth;
    st->min_version = src->min_version;
    st->insecure = src->insecure;
    st->alpn_len = src->alpn_len;
    st->npins = src->npins;
    bool ok = dup_str(&st->ca_file, src->ca_file) && dup_str(&st->cert_file, src->cert_file) &&
              dup_str(&st->key_file, src->key_file) &&
              dup_str(&st->server_name, src->server_name) &&
              dup_bytes((void **)&st->alpn, src->alpn, src->alpn_len) &&
              dup_bytes((void **)&st->pins, src->pins, src->npins * 32);
    if (!ok) {
        settings_free(st);
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    }
    *out = st;
    return TCPKIT_OK;
}

/* ---- building a context ---- */

/* Text of the newest OpenSSL error (the queue is cleared). */
static const char *ssl_reason(void)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    return r ? r : "unknown OpenSSL error";
}

static tcpkit_err check_readable(const char *path, const char *what, const char *op)
{
    if (access(path, R_OK) == 0)
        return TCPKIT_OK;
    int e = errno;
    return tk_fail(TCPKIT_ETLS, e, "%s: cannot read %s %s: %s", op, what, path, strerror(e));
}

static tcpkit_err load_ca(SSL_CTX *ctx, const struct tk_tls_settings *st, const char *op)
{
    if (!st->ca_file)
        return TCPKIT_OK; /* the system store: loaded on first use */
    tcpkit_err err = check_readable(st->ca_file, "CA file", op);
    if (err != TCPKIT_OK)
        return err;
    if (SSL_CTX_load_verify_locations(ctx, st->ca_file, NULL) != 1)
        return tk_fail(TCPKIT_ETLS, 0, "%s: CA file %s: %s", op, st->ca_file, ssl_reason());
    /* A server names these CAs when it asks for a client certificate. */
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(st->ca_file);
    if (names)
        SSL_CTX_set_client_CA_list(ctx, names);
    ERR_clear_error();
    return TCPKIT_OK;
}

static tcpkit_err load_cert(SSL_CTX *ctx, const struct tk_tls_settings *st, const char *op)
{
    if (!st->cert_file)
        return TCPKIT_OK;
    tcpkit_err err = check_readable(st->cert_file, "certificate", op);
    if (err == TCPKIT_OK)
        err = check_readable(st->key_file, "private key", op);
    if (err != TCPKIT_OK)
        return err;
    if (SSL_CTX_use_certificate_chain_file(ctx, st->cert_file) != 1)
        return tk_fail(TCPKIT_ETLS, 0, "%s: certificate %s: %s", op, st->cert_file, ssl_reason());
    bool loaded = SSL_CTX_use_PrivateKey_file(ctx, st->key_file, SSL_FILETYPE_PEM) == 1;
    if (!loaded && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
        return tk_fail(TCPKIT_ETLS, 0, "%s: private key %s: %s", op, st->key_file, ssl_reason());
    if (!loaded || SSL_CTX_check_private_key(ctx) != 1)
        return tk_fail(TCPKIT_ETLS, 0, "%s: certificate %s and private key %s do not match", op,
                       st->cert_file, st->key_file);
    return TCPKIT_OK;
}

/* Server side ALPN: the server's preference order wins; no overlap with a
 * client that offered something fails the handshake. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    const struct tk_tls_settings *st = tk_tls_settings_of(SSL_get_SSL_CTX(ssl));
    unsigned char *sel = NULL;
    if (!st->alpn || SSL_select_next_proto(&sel, outlen, st->alpn, (unsigned)st->alpn_len, in,
                                           inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static tcpkit_err configure_ctx(SSL_CTX *ctx, const struct tk_tls_settings *st, const char *op)
{
    int min = st->min_version == TCPKIT_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1)
        return tk_fail(TCPKIT_ETLS, 0, "%s: %s", op, ssl_reason());
    /* Partial writes match the seam's "bytes moved" contract. No auto
     * chain: we send the chain the certificate file holds, as documented;
     * OpenSSL's auto chain would search the trust store (the whole system
     * store by default) in every handshake, costing about 15% of one. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_NO_AUTO_CHAIN);
    /* Renegotiation would let a write need a read in TLS 1.2; nobody needs it. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    /* Read-ahead: one recv() per burst of records instead of two per record
     * (header, then body). Decrypted or not, buffered bytes are always
     * tried (SSL_read first) before any wait. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tk_tls_verify_cb);
    if (st->alpn) {
        if (SSL_CTX_set_alpn_protos(ctx, st->alpn, (unsigned)st->alpn_len) != 0)
            return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    }
    tcpkit_err err = load_ca(ctx, st, op);
    return err != TCPKIT_OK ? err : load_cert(ctx, st, op);
}

/* Builds a context from st; on success the context owns st. */
static tcpkit_err build_ctx(struct tk_tls_settings *st, SSL_CTX **out, const char *op)
{
    pthread_once(&settings_once, settings_init);
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx || settings_index < 0) {
        SSL_CTX_free(ctx);
        settings_free(st);
        return tk_fail(TCPKIT_ETLS, 0, "%s: cannot create a TLS context: %s", op, ssl_reason());
    }
    tcpkit_err err = configure_ctx(ctx, st, op);
    if (err == TCPKIT_OK && SSL_CTX_set_ex_data(ctx, settings_index, st) != 1)
        err = tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    if (err != TCPKIT_OK) {
        SSL_CTX_free(ctx);
        settings_free(st);
        ERR_clear_error();
        return err;
    }
    *out = ctx;
    return TCPKIT_OK;
}

/* ---- the object ---- */

tcpkit_err tcpkit_tls_new(tcpkit_tls **out)
{
    if (!out)
        return tk_fail(TCPKIT_EINVAL, 0, "tls_new: out is NULL");
    *out = NULL;
    tcpkit_tls *t = calloc(1, sizeof *t);
    struct tk_tls_settings *st = calloc(1, sizeof *st);
    if (!t || !st) {
        free(t);
        free(st);
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "tls_new: out of memory");
    }
    st->min_version = TCPKIT_TLS_1_2;
    tcpkit_err err = build_ctx(st, &t->ctx, "tls_new");
    if (err != TCPKIT_OK) {
        free(t);
        return err;
    }
    t->system_store_pending = true;
    atomic_init(&t->refs, 1);
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return TCPKIT_OK;
}

void tk_tls_ref(tcpkit_tls *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void tcpkit_tls_free(tcpkit_tls *t)
{
    if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

SSL_CTX *tk_tls_ctx(tcpkit_tls *t)
{
    pthread_mutex_lock(&t->lock);
    if (t->system_store_pending) {
        /* Before the context is first shared, so no connection sees it
         * change. A failure (out of memory) leaves the store empty: every
         * verification then fails, naming the missing issuer. */
        SSL_CTX_set_default_verify_paths(t->ctx);
        ERR_clear_error();
        t->system_store_pending = false;
    }
    SSL_CTX *ctx = t->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&t->lock);
    return ctx;
}

bool tk_tls_has_cert(tcpkit_tls *t)
{
    SSL_CTX *ctx = tk_tls_ctx(t);
    bool has = tk_tls_settings_of(ctx)->cert_file != NULL;
    SSL_CTX_free(ctx);
    return has;
}

/* Applies one change to a copy of the settings and swaps in a context
 * built from it; any failure leaves t exactly as it was. */
typedef tcpkit_err (*change_fn)(struct tk_tls_settings *st, const void *arg, const char *op);

static tcpkit_err change(tcpkit_tls *t, change_fn fn, const void *arg, const char *op)
{
    if (!t)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: tls is NULL", op);
    pthread_mutex_lock(&t->lock);
    struct tk_tls_settings *st = NULL;
    tcpkit_err err = settings_copy(tk_tls_settings_of(t->ctx), &st, op);
    if (err == TCPKIT_OK && fn && (err = fn(st, arg, op)) != TCPKIT_OK)
        settings_free(st);
    SSL_CTX *ctx = NULL;
    if (err == TCPKIT_OK && (err = build_ctx(st, &ctx, op)) == TCPKIT_OK) {
        SSL_CTX_free(t->ctx);
        t->ctx = ctx;
        t->system_store_pending = tk_tls_settings_of(ctx)->ca_file == NULL;
    }
    pthread_mutex_unlock(&t->lock);
    return err;
}

tcpkit_err tcpkit_tls_reload(tcpkit_tls *t)
{
    return change(t, NULL, NULL, "tls_reload");
}

/* ---- setters ---- */

/* Replaces *slot with a copy of s (NULL allowed). */
static tcpkit_err set_str(char **slot, const char *s, const char *op)
{
    char *copy;
    if (!dup_str(&copy, s))
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    free(*slot);
    *slot = copy;
    return TCPKIT_OK;
}

static tcpkit_err change_ca(struct tk_tls_settings *st, const void *arg, const char *op)
{
    return set_str(&st->ca_file, arg, op);
}

tcpkit_err tcpkit_tls_set_ca_file(tcpkit_tls *t, const char *pem_path)
{
    if (!pem_path)
        return tk_fail(TCPKIT_EINVAL, 0, "tls_set_ca_file: path is NULL");
    return change(t, change_ca, pem_path, "tls_set_ca_file");
}

static tcpkit_err change_cert(struct tk_tls_settings *st, const void *arg, const char *op)
{
    const char *const *paths = arg;
    tcpkit_err err = set_str(&st->cert_file, paths[0], op);
    return err != TCPKIT_OK ? err : set_str(&st->key_file, paths[1], op);
}

tcpkit_err tcpkit_tls_set_cert_file(tcpkit_tls *t, const char *cert_pem_path,
                                    const char *key_pem_path)
{
    if (!cert_pem_path || !key_pem_path)
        return tk_fail(TCPKIT_EINVAL, 0, "tls_set_cert_file: path is NULL");
    const char *paths[2] = {cert_pem_path, key_pem_path};
    return change(t, change_cert, paths, "tls_set_cert_file");
}

static tcpkit_err change_name(struct tk_tls_settings *st, const void *arg, const char *op)
{
    const char *name = arg;
    if (name && (!*name || strlen(name) > TK_HOST_MAX))
        return tk_fail(TCPKIT_EINVAL, 0, "%s: name is empty or longer than %d bytes", op,
                       TK_HOST_MAX);
    return set_str(&st->server_name, name, op);
}

tcpkit_err tcpkit_tls_set_server_name(tcpkit_tls *t, const char *name)
{
    return change(t, change_name, name, "tls_set_server_name");
}

static tcpkit_err change_auth(struct tk_tls_settings *st, const void *arg, const char *op)
{
    int a = *(const int *)arg;
    if (a < TCPKIT_TLS_CLIENT_AUTH_NONE || a > TCPKIT_TLS_CLIENT_AUTH_REQUIRE)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: unknown mode %d", op, a);
    st->client_auth = a;
    return TCPKIT_OK;
}

tcpkit_err tcpkit_tls_set_client_auth(tcpkit_tls *t, tcpkit_tls_client_auth a)
{
    int v = (int)a;
    return change(t, change_auth, &v, "tls_set_client_auth");
}

static tcpkit_err change_min(struct tk_tls_settings *st, const void *arg, const char *op)
{
    int v = *(const int *)arg;
    if (v != TCPKIT_TLS_1_2 && v != TCPKIT_TLS_1_3)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: version %d is not 12 or 13", op, v);
    st->min_version = v;
    return TCPKIT_OK;
}

tcpkit_err tcpkit_tls_set_min_version(tcpkit_tls *t, tcpkit_tls_version v)
{
    int iv = (int)v;
    return change(t, change_min, &iv, "tls_set_min_version");
}

static tcpkit_err change_insecure(struct tk_tls_settings *st, const void *arg, const char *op)
{
    (void)op;
    st->insecure = *(const bool *)arg;
    return TCPKIT_OK;
}

tcpkit_err tcpkit_tls_set_insecure_skip_verify(tcpkit_tls *t, bool on)
{
    return change(t, change_insecure, &on, "tls_set_insecure_skip_verify");
}

static tcpkit_err change_alpn(struct tk_tls_settings *st, const void *arg, const char *op)
{
    unsigned char *wire;
    size_t len;
    tcpkit_err err = tk_tls_parse_alpn(arg, &wire, &len, op);
    if (err != TCPKIT_OK)
        return err;
    free(st->alpn);
    st->alpn = wire;
    st->alpn_len = len;
    return TCPKIT_OK;
}

tcpkit_err tcpkit_tls_set_alpn(tcpkit_tls *t, const char *protocols)
{
    return change(t, change_alpn, protocols, "tls_set_alpn");
}

static tcpkit_err change_pins(struct tk_tls_settings *st, const void *arg, const char *op)
{
    unsigned char *pins;
    size_t n;
    tcpkit_err err = tk_tls_parse_pins(arg, &pins, &n, op);
    if (err != TCPKIT_OK)
        return err;
    free(st->pins);
    st->pins = pins;
    st->npins = n;
    return TCPKIT_OK;
}

tcpkit_err tcpkit_tls_set_pin_sha256(tcpkit_tls *t, const char *pins)
{
    return change(t, change_pins, pins, "tls_set_pin_sha256");
}
