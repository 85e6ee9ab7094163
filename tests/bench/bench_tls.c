/* SPDX-License-Identifier: MIT */
/* TLS benchmarks: libtcpkit over TLS 1.3 vs a hand-written raw OpenSSL
 * version of the same loop (blocking sockets, SSL_set_fd, SSL_write /
 * SSL_read), interleaved round by round (ABBA order), medians reported.
 *
 *   bulk        1 GiB client -> server, 64 KiB writes (tcpkit_send_all /
 *               tcpkit_recv vs SSL_write / SSL_read); also plain tcpkit
 *               bulk, for TLS's cost as a fraction of plain TCP
 *   handshakes  full TLS 1.3 handshakes per second (connect, handshake,
 *               one byte each way so both ends finished, close)
 *   latency     64-byte ping-pong over one TLS connection, mean RTT
 *
 * Targets (doc/performance.md): bulk >= 0.97x, handshakes >= 0.95x,
 * latency <= 1.05x of raw OpenSSL.
 *
 *   tcpkit-bench-tls [--quick] [--rounds N] [--only bulk|handshakes|latency]
 *
 * The certificate is a throw-away P-256 self-signed one made at start-up
 * into a temporary directory and removed at once after loading. */
#include "tcpkit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 15
#define CHUNK 65536

static char cert_path[64], key_path[64];
static SSL_CTX *raw_server_ctx, *raw_client_ctx;
static tcpkit_tls *tk_server_cfg, *tk_client_cfg;

static void die(const char *what)
{
    fprintf(stderr, "bench-tls: %s: %s\n", what, tcpkit_last_error());
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the certificate and both sides' configurations ---- */

static void make_cert(const char *dir)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"bench", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(x, k, EVP_sha256());
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    FILE *c = fopen(cert_path, "w"), *kf = fopen(key_path, "w");
    if (!c || !kf || !PEM_write_X509(c, x) ||
        !PEM_write_PrivateKey(kf, k, NULL, NULL, 0, NULL, NULL))
        die("writing the certificate");
    fclose(c);
    fclose(kf);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void setup_configs(void)
{
    char dir[] = "/tmp/tcpkit-bench-tls.XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp");
    make_cert(dir);
    /* The same work on both sides: TLS 1.3 only, the bench's certificate as
     * the only trust anchor, the name checked as IP 127.0.0.1. */
    raw_server_ctx = SSL_CTX_new(TLS_server_method());
    raw_client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(raw_server_ctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(raw_client_ctx, TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_file(raw_server_ctx, cert_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(raw_server_ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(raw_client_ctx, cert_path, NULL) != 1)
        die("raw OpenSSL contexts");
    SSL_CTX_set_verify(raw_client_ctx, SSL_VERIFY_PEER, NULL);
    if (tcpkit_tls_new(&tk_server_cfg) || tcpkit_tls_new(&tk_client_cfg) ||
        tcpkit_tls_set_cert_file(tk_server_cfg, cert_path, key_path) ||
        tcpkit_tls_set_ca_file(tk_client_cfg, cert_path) ||
        tcpkit_tls_set_min_version(tk_client_cfg, TCPKIT_TLS_1_3) ||
        tcpkit_tls_set_min_version(tk_server_cfg, TCPKIT_TLS_1_3))
        die("tcpkit configurations");
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
}

/* ---- sockets ---- */

static int raw_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 512) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        die("raw listen");
    *port = ntohs(a.sin_port);
    return fd;
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as tcpkit's default */
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a))
        die("raw connect");
    nodelay(fd);
    return fd;
}

static SSL *raw_tls(int fd, bool server)
{
    SSL *ssl = SSL_new(server ? raw_server_ctx : raw_client_ctx);
    SSL_set_fd(ssl, fd);
    if (!server)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1)
        die("raw handshake");
    return ssl;
}

static void raw_close(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

/* ---- a server thread, either kind ---- */

enum mode { TK_TLS, RAW_TLS, TK_PLAIN };
enum job { BULK, PINGPONG, HANDSHAKES };

struct server {
    enum mode mode;
    enum job job;
    size_t n; /* bytes (bulk), round trips (ping-pong) or connections */
    tcpkit_listener *l;
    int lfd;
    char port[8];
    pthread_t tid;
};

static void tk_serve_one(struct server *s, tcpkit_conn *c, char *buf)
{
    size_t got, done = 0;
    if (s->job == BULK) {
        while (done < s->n && tcpkit_recv(c, buf, CHUNK, &got) == TCPKIT_OK)
            done += got;
        tcpkit_send_all(c, "k", 1, NULL);
    } else if (s->job == PINGPONG) {
        for (size_t i = 0; i < s->n && tcpkit_recv_exact(c, buf, 64, NULL) == TCPKIT_OK; i++)
            tcpkit_send_all(c, buf, 64, NULL);
    } else if (tcpkit_recv_exact(c, buf, 1, NULL) == TCPKIT_OK) {
        tcpkit_send_all(c, buf, 1, NULL);
    }
}

static void raw_serve_one(struct server *s, SSL *ssl, char *buf)
{
    size_t done = 0;
    int r;
    if (s->job == BULK) {
        while (done < s->n && (r = SSL_read(ssl, buf, CHUNK)) > 0)
            done += (size_t)r;
        SSL_write(ssl, "k", 1);
    } else if (s->job == PINGPONG) {
        for (size_t i = 0; i < s->n; i++) {
            for (done = 0; done < 64 && (r = SSL_read(ssl, buf + done, 64 - (int)done)) > 0;)
                done += (size_t)r;
            SSL_write(ssl, buf, 64);
        }
    } else if (SSL_read(ssl, buf, 1) == 1) {
        SSL_write(ssl, buf, 1);
    }
}

static void *server_main(void *p)
{
    struct server *s = p;
    char *buf = malloc(CHUNK);
    size_t conns = s->job == HANDSHAKES ? s->n : 1;
    for (size_t i = 0; i < conns; i++) {
        if (s->mode == RAW_TLS) {
            int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
            nodelay(fd);
            SSL *ssl = raw_tls(fd, true);
            raw_serve_one(s, ssl, buf);
            raw_close(ssl);
            continue;
        }
        tcpkit_conn *c;
        if (tcpkit_accept(s->l, &c, -1) != TCPKIT_OK)
            die("accept");
        tk_serve_one(s, c, buf);
        tcpkit_close(c);
    }
    free(buf);
    return NULL;
}

static void server_start(struct server *s)
{
    if (s->mode == RAW_TLS) {
        int port;
        s->lfd = raw_listen(&port);
        snprintf(s->port, sizeof s->port, "%d", port);
    } else {
        tcpkit_opts *o;
        tcpkit_opts_new(&o);
        tcpkit_opts_set_backlog(o, 512);
        if (s->mode == TK_TLS)
            tcpkit_opts_set_tls(o, tk_server_cfg);
        if (tcpkit_listen(&s->l, "127.0.0.1", "0", o) != TCPKIT_OK)
            die("listen");
        tcpkit_opts_free(o);
        snprintf(s->port, sizeof s->port, "%d", tcpkit_listener_port(s->l));
    }
    pthread_create(&s->tid, NULL, server_main, s);
}

static void server_join(struct server *s)
{
    pthread_join(s->tid, NULL);
    if (s->mode == RAW_TLS)
        close(s->lfd);
    else
        tcpkit_listener_close(s->l);
}

static tcpkit_conn *tk_client(const struct server *s)
{
    tcpkit_opts *o;
    tcpkit_opts_new(&o);
    if (s->mode == TK_TLS)
        tcpkit_opts_set_tls(o, tk_client_cfg);
    tcpkit_conn *c;
    if (tcpkit_connect(&c, "127.0.0.1", s->port, o) != TCPKIT_OK)
        die("connect");
    tcpkit_opts_free(o);
    return c;
}

/* ---- the client side of each job ---- */

static double client_bulk(const struct server *s, char *buf)
{
    double t0 = now_s();
    if (s->mode == RAW_TLS) {
        SSL *ssl = raw_tls(raw_connect(atoi(s->port)), false);
        for (size_t done = 0; done < s->n; done += CHUNK)
            if (SSL_write(ssl, buf, CHUNK) != CHUNK)
                die("SSL_write");
        if (SSL_read(ssl, buf, 1) != 1)
            die("SSL_read");
        raw_close(ssl);
    } else {
        tcpkit_conn *c = tk_client(s);
        for (size_t done = 0; done < s->n; done += CHUNK)
            if (tcpkit_send_all(c, buf, CHUNK, NULL) != TCPKIT_OK)
                die("send_all");
        if (tcpkit_recv_exact(c, buf, 1, NULL) != TCPKIT_OK)
            die("recv_exact");
        tcpkit_close(c);
    }
    return (double)s->n / (now_s() - t0) / 1e6; /* MB/s */
}

static double client_pingpong(const struct server *s, char *buf)
{
    SSL *ssl = NULL;
    tcpkit_conn *c = NULL;
    if (s->mode == RAW_TLS)
        ssl = raw_tls(raw_connect(atoi(s->port)), false);
    else
        c = tk_client(s);
    double t0 = now_s();
    for (size_t i = 0; i < s->n; i++) {
        if (ssl) {
            SSL_write(ssl, buf, 64);
            for (int got = 0, r; got < 64 && (r = SSL_read(ssl, buf + got, 64 - got)) > 0;)
                got += r;
        } else if (tcpkit_send_all(c, buf, 64, NULL) || tcpkit_recv_exact(c, buf, 64, NULL)) {
            die("ping-pong");
        }
    }
    double us = (now_s() - t0) / (double)s->n * 1e6;
    if (ssl)
        raw_close(ssl);
    tcpkit_close(c);
    return us;
}

static double client_handshakes(const struct server *s, char *buf)
{
    double t0 = now_s();
    for (size_t i = 0; i < s->n; i++) {
        if (s->mode == RAW_TLS) {
            SSL *ssl = raw_tls(raw_connect(atoi(s->port)), false);
            if (SSL_write(ssl, "h", 1) != 1 || SSL_read(ssl, buf, 1) != 1)
                die("raw handshake round trip");
            raw_close(ssl);
            continue;
        }
        tcpkit_conn *c = tk_client(s);
        if (tcpkit_send_all(c, "h", 1, NULL) || tcpkit_recv_exact(c, buf, 1, NULL))
            die("handshake round trip");
        tcpkit_close(c);
    }
    return (double)s->n / (now_s() - t0);
}

/* CPU seconds (user + system) of the whole process: both ends. On a
 * loaded machine this is steadier than wall time. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU microseconds per unit (MB, round trip or handshake) of the last run. */
static double last_cpu_us;

static double run(enum mode mode, enum job job, size_t n)
{
    static char buf[CHUNK];
    struct server s = {.mode = mode, .job = job, .n = n, .lfd = -1};
    server_start(&s);
    double c0 = cpu_s();
    double v = job == BULK       ? client_bulk(&s, buf)
               : job == PINGPONG ? client_pingpong(&s, buf)
                                 : client_handshakes(&s, buf);
    server_join(&s);
    last_cpu_us = (cpu_s() - c0) * 1e6 / (double)(job == BULK ? n / 1000000 : n);
    return v;
}

/* ---- rounds and the report ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void line(const char *name, const char *unit, double *tk, double *raw, int n,
                 const char *target)
{
    double t = median(tk, n), r = median(raw, n);
    printf("%-26s %12.1f %12.1f %-7s %6.3fx  %s\n", name, t, r, unit, t / r, target);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int rounds = quick ? 1 : 5;
    const char *only = "";
    /* TCPKIT_BENCH_SIDE=tcpkit or raw runs one side only (for profilers). */
    const char *side = getenv("TCPKIT_BENCH_SIDE");
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--only") == 0)
            only = argv[i + 1]; /* bulk, handshakes or latency */
    }
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 5;
    size_t bulk = quick ? (size_t)64 << 20 : (size_t)1 << 30;
    size_t hs = quick ? 50 : 300, pp = quick ? 2000 : 20000;
    setup_configs();
    double bt[MAX_ROUNDS], br[MAX_ROUNDS], bp[MAX_ROUNDS], ht[MAX_ROUNDS], hr[MAX_ROUNDS];
    double lt[MAX_ROUNDS], lr[MAX_ROUNDS];
    double cbt[MAX_ROUNDS], cbr[MAX_ROUNDS], cht[MAX_ROUNDS], chr[MAX_ROUNDS];
    double clt[MAX_ROUNDS], clr[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        bool tk_first = r % 2 == 0; /* ABBA: neither side always goes first */
        for (int k = 0; k < 2; k++) {
            bool tk = (k == 0) == tk_first;
            if (side && strcmp(side, tk ? "tcpkit" : "raw") != 0)
                continue;
            enum mode m = tk ? TK_TLS : RAW_TLS;
            last_cpu_us = 1;
            (tk ? bt : br)[r] = *only && strcmp(only, "bulk") ? 1 : run(m, BULK, bulk);
            (tk ? cbt : cbr)[r] = last_cpu_us;
            last_cpu_us = 1;
            (tk ? ht : hr)[r] = *only && strcmp(only, "handshakes") ? 1 : run(m, HANDSHAKES, hs);
            (tk ? cht : chr)[r] = last_cpu_us;
            last_cpu_us = 1;
            (tk ? lt : lr)[r] = *only && strcmp(only, "latency") ? 1 : run(m, PINGPONG, pp);
            (tk ? clt : clr)[r] = last_cpu_us;
        }
        bp[r] = *only && strcmp(only, "bulk") ? 1 : run(TK_PLAIN, BULK, bulk);
        fprintf(stderr, "round %d/%d done\n", r + 1, rounds);
        fflush(stderr);
    }
    printf("TLS 1.3, %d round(s), medians       tcpkit   raw OpenSSL         ratio  target\n",
           rounds);
    line("bulk (64 KiB writes)", "MB/s", bt, br, rounds, ">= 0.97x");
    line("full handshakes", "conn/s", ht, hr, rounds, ">= 0.95x");
    line("64-byte ping-pong RTT", "us", lt, lr, rounds, "<= 1.05x");
    printf("CPU time, both ends (lower is better):\n");
    line("  bulk, per MB", "us", cbt, cbr, rounds, "");
    line("  per handshake", "us", cht, chr, rounds, "");
    line("  per round trip", "us", clt, clr, rounds, "");
    double tls_bulk = median(bt, rounds), plain_bulk = median(bp, rounds);
    printf("tcpkit TLS bulk / tcpkit plain bulk: %.1f / %.1f MB/s = %.3f\n", tls_bulk, plain_bulk,
           tls_bulk / plain_bulk);
    tcpkit_tls_free(tk_server_cfg);
    tcpkit_tls_free(tk_client_cfg);
    SSL_CTX_free(raw_server_ctx);
    SSL_CTX_free(raw_client_ctx);
    return 0;
}
