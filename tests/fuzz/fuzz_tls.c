/* SPDX-License-Identifier: MIT */
/* libFuzzer target: peer bytes into a server-side TLS handshake and the
 * record layer. The input is what a client "sends": it is written in
 * chunks to the peer end of a socketpair whose other end is a conn from a
 * TLS listener configuration (lazy server handshake), and the server side
 * then runs tcpkit_conn_handshake and tcpkit_recv with timeout 0 between
 * chunks, so partial records and every resume path are exercised. The
 * peer end reads and discards what the server answers.
 *
 * Input: repeated [len byte][len bytes]; len 0 half-closes the peer end.
 * Seeds in corpus/tls start with a real ClientHello.
 *
 * The server's certificate is made in memory at start-up (a throw-away
 * P-256 self-signed one written to a temporary directory): no key is ever
 * committed. Checks: no crash, no leak, no sanitizer report, and the calls
 * only return the documented codes. */
#include "fuzz.h"
#include "internal.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static tcpkit_tls *server_cfg;

static bool write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
    FILE *f = fopen(path, "w");
    bool ok = f && (key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                        : PEM_write_X509(f, cert));
    if (f)
        fclose(f);
    return ok;
}

static X509 *self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, name);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    X509_NAME_free(name);
    return x;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char dir[] = "/tmp/tcpkit-fuzz-tls.XXXXXX", cert[64], key[64];
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? self_signed(k) : NULL;
    if (!x || !mkdtemp(dir))
        abort();
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    if (!write_pem(cert, NULL, x) || !write_pem(key, k, NULL) ||
        tcpkit_tls_new(&server_cfg) != TCPKIT_OK ||
        tcpkit_tls_set_cert_file(server_cfg, cert, key) != TCPKIT_OK)
        abort();
    unlink(cert);
    unlink(key);
    rmdir(dir);
    X509_free(x);
    EVP_PKEY_free(k);
    return 0;
}

static void check_code(tcpkit_err e)
{
    switch (e) {
    case TCPKIT_OK:
    case TCPKIT_EOF:
    case TCPKIT_ETIMEDOUT:
    case TCPKIT_ETLS:
    case TCPKIT_ECERT:
    case TCPKIT_ERESET:
        return;
    default:
        fprintf(stderr, "fuzz_tls: unexpected %s: %s\n", tcpkit_strerror(e), tcpkit_last_error());
        abort();
    }
}

/* One server step; false once the conn is finished (failed or EOF). */
static bool server_step(tcpkit_conn *c, int peer)
{
    char buf[4096];
    size_t n;
    tcpkit_err e = tcpkit_conn_handshake(c);
    if (e == TCPKIT_OK)
        e = tcpkit_recv(c, buf, sizeof buf, &n);
    check_code(e);
    while (recv(peer, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ; /* the server's answers */
    return e == TCPKIT_OK || e == TCPKIT_ETIMEDOUT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    tcpkit_conn *c;
    struct sockaddr_storage none = {.ss_family = AF_UNIX};
    if (tk_conn_new(sv[0], (struct sockaddr *)&none, sizeof(sa_family_t), 0, &c) != TCPKIT_OK ||
        tk_conn_attach_tls(c, server_cfg, true, NULL, "fuzz") != TCPKIT_OK)
        abort();
    bool alive = true;
    for (size_t at = 0; at < size && alive;) {
        size_t len = data[at++];
        if (len > size - at)
            len = size - at;
        if (len == 0)
            shutdown(sv[1], SHUT_WR);
        else if (send(sv[1], data + at, len, MSG_NOSIGNAL) < 0)
            break;
        at += len;
        alive = server_step(c, sv[1]);
    }
    shutdown(sv[1], SHUT_WR);
    /* The server sees the end of stream within a few steps. */
    for (int i = 0; alive && i < 4; i++)
        alive = server_step(c, sv[1]);
    tcpkit_close(c);
    close(sv[1]);
    return 0;
}
