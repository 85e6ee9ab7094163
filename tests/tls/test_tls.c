/* SPDX-License-Identifier: MIT */
/* TLS between libtcpkit's own client and server: configuration checks,
 * every certificate failure by name, mutual TLS, ALPN, pins, versions,
 * STARTTLS, close_notify and truncation, reload, bulk data, timeouts. */
#include "tls_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define ck_ok(call) ck_assert_msg((call) == TCPKIT_OK, "%s: %s", #call, tcpkit_last_error())

/* Connects to s with cfg; returns the error, message in msg. */
static tcpkit_err connect_to(const th_tls_srv *s, tcpkit_tls *cfg, const char *host,
                             tcpkit_conn **c, char *msg, size_t cap)
{
    tcpkit_opts *o = th_tls_opts(cfg);
    tcpkit_opts_set_connect_timeout(o, 10000 * th_time_scale());
    tcpkit_err e = tcpkit_connect(c, host, s->port, o);
    snprintf(msg, cap, "%s", e == TCPKIT_OK ? "" : tcpkit_last_error());
    tcpkit_opts_free(o);
    return e;
}

/* connect_to that must succeed. */
static tcpkit_conn *connect_ok(const th_tls_srv *s, tcpkit_tls *cfg)
{
    tcpkit_conn *c = NULL;
    char msg[320];
    ck_assert_msg(connect_to(s, cfg, "127.0.0.1", &c, msg, sizeof msg) == TCPKIT_OK, "%s", msg);
    return c;
}

/* Starts a one-connection server with sc and fn; connects to it with cc. */
static tcpkit_conn *start_and_connect(th_tls_srv *s, tcpkit_tls *sc, tcpkit_tls *cc,
                                      void (*fn)(th_tls_srv *, tcpkit_conn *))
{
    th_tls_srv_start(s, sc, fn);
    return connect_ok(s, cc);
}

/* ---- configuration ---- */

START_TEST(config_setters_validate)
{
    tcpkit_tls *t;
    ck_ok(tcpkit_tls_new(&t));
    ck_assert_int_eq(tcpkit_tls_new(NULL), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_tls_set_min_version(t, 11), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_tls_set_min_version(NULL, TCPKIT_TLS_1_3), TCPKIT_EINVAL);
    ck_ok(tcpkit_tls_set_min_version(t, TCPKIT_TLS_1_3));
    ck_assert_int_eq(tcpkit_tls_set_client_auth(t, 3), TCPKIT_EINVAL);
    ck_ok(tcpkit_tls_set_client_auth(t, TCPKIT_TLS_CLIENT_AUTH_REQUIRE));
    ck_assert_int_eq(tcpkit_tls_set_alpn(t, "h2,,http/1.1"), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_tls_set_alpn(t, "h2,"), TCPKIT_EINVAL);
    ck_ok(tcpkit_tls_set_alpn(t, "h2,http/1.1"));
    ck_ok(tcpkit_tls_set_alpn(t, NULL));
    ck_assert_int_eq(tcpkit_tls_set_pin_sha256(t, "sha256//short="), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_tls_set_pin_sha256(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;x"),
                     TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_tls_set_pin_sha256(t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*="),
                     TCPKIT_EINVAL);
    ck_ok(tcpkit_tls_set_pin_sha256(t, "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;"
                                       "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="));
    ck_assert_int_eq(tcpkit_tls_set_server_name(t, ""), TCPKIT_EINVAL);
    ck_ok(tcpkit_tls_set_server_name(t, "example.com"));
    ck_ok(tcpkit_tls_set_server_name(t, NULL));
    ck_ok(tcpkit_tls_set_insecure_skip_verify(t, false));
    ck_assert_int_eq(tcpkit_tls_set_ca_file(t, NULL), TCPKIT_EINVAL);
    tcpkit_tls_free(t);
    tcpkit_tls_free(NULL);
}
END_TEST

START_TEST(config_files_checked_now)
{
    tcpkit_tls *t;
    ck_ok(tcpkit_tls_new(&t));
    ck_assert_int_eq(tcpkit_tls_set_ca_file(t, th_pem("missing.pem")), TCPKIT_ETLS);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "missing.pem"));
    ck_assert_int_eq(tcpkit_tls_set_ca_file(t, th_pem("server.key")), TCPKIT_ETLS);
    ck_assert_int_eq(tcpkit_tls_set_cert_file(t, th_pem("server.pem"), th_pem("client.key")),
                     TCPKIT_ETLS);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "do not match"));
    ck_assert_int_eq(tcpkit_tls_set_cert_file(t, th_pem("server.pem"), th_pem("nokey")),
                     TCPKIT_ETLS);
    /* Nothing changed: still no certificate, so no listener. */
    tcpkit_opts *o = th_tls_opts(t);
    tcpkit_listener *l = NULL;
    ck_assert_int_eq(tcpkit_listen(&l, "127.0.0.1", "0", o), TCPKIT_EINVAL);
    ck_assert_ptr_null(l);
    ck_ok(tcpkit_tls_set_cert_file(t, th_pem("server.pem"), th_pem("server.key")));
    ck_ok(tcpkit_listen(&l, "127.0.0.1", "0", o));
    tcpkit_listener_close(l);
    tcpkit_opts_free(o);
    tcpkit_tls_free(t);
}
END_TEST

/* The opts' reference keeps a freed configuration alive, and replacing or
 * clearing it drops that reference (no leak under Valgrind/ASan). */
START_TEST(opts_hold_a_reference)
{
    tcpkit_tls *a = th_tls_server("server"), *b = th_tls_client();
    tcpkit_opts *o = th_tls_opts(a);
    tcpkit_tls_free(a);
    ck_ok(tcpkit_opts_set_tls(o, b));
    ck_ok(tcpkit_opts_set_tls(o, b));
    ck_ok(tcpkit_opts_set_tls(o, NULL));
    ck_ok(tcpkit_opts_set_tls(o, b));
    ck_assert_int_eq(tcpkit_opts_set_tls(NULL, b), TCPKIT_EINVAL);
    tcpkit_tls_free(b);
    tcpkit_opts_free(o);
}
END_TEST

/* ---- a working connection ---- */

START_TEST(handshake_and_info)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    th_tls_srv s;
    th_tls_srv_start(&s, sc, th_tls_echo_line);
    tcpkit_conn *c;
    c = connect_ok(&s, cc);
    ck_ok(tcpkit_conn_handshake(c));
    char v[128];
    ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_VERSION, v, sizeof v));
    ck_assert_str_eq(v, "TLSv1.3");
    ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_PEER_SUBJECT, v, sizeof v));
    ck_assert_str_eq(v, "CN=localhost");
    ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_SERVER_NAME, v, sizeof v));
    ck_assert_str_eq(v, ""); /* no SNI for an IP literal */
    ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_ALPN, v, sizeof v));
    ck_assert_str_eq(v, "");
    ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_CIPHER, v, sizeof v));
    ck_assert_int_gt(strlen(v), 5);
    ck_assert_int_eq(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_VERSION, v, 3), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_conn_tls_info(c, (tcpkit_tls_info)9, v, sizeof v), TCPKIT_EINVAL);
    ck_ok(tcpkit_send_all(c, "hello\n", 6, NULL));
    char buf[16];
    size_t n;
    ck_ok(tcpkit_recv_exact(c, buf, 6, &n));
    ck_assert_int_eq(memcmp(buf, "hello\n", 6), 0);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_OK);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_PEER_SUBJECT], "");
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(sni_sent_for_names)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_server_name(cc, "localhost"));
    th_tls_srv s;
    th_tls_srv_start(&s, sc, NULL);
    tcpkit_conn *c;
    c = connect_ok(&s, cc);
    th_tls_srv_join(&s);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_SERVER_NAME], "localhost");
    char v[64];
    ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_SERVER_NAME, v, sizeof v));
    ck_assert_str_eq(v, "localhost");
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(plain_conn_info_is_einval)
{
    tcpkit_conn *a, *b;
    th_pair(&a, &b);
    char v[64];
    ck_assert_int_eq(tcpkit_conn_tls_info(a, TCPKIT_TLS_INFO_VERSION, v, sizeof v), TCPKIT_EINVAL);
    ck_ok(tcpkit_conn_handshake(a));
    ck_assert_int_eq(tcpkit_conn_handshake(NULL), TCPKIT_EINVAL);
    tcpkit_close(a);
    tcpkit_close(b);
}
END_TEST

/* ---- certificate failures, each by name ---- */

/* Client with cc against a server with certificate `name`: the client's
 * error must be want with the message containing text. */
static void expect_client_failure(const char *name, tcpkit_tls *cc, tcpkit_err want,
                                  const char *text)
{
    tcpkit_tls *sc = th_tls_server(name);
    th_tls_srv s;
    th_tls_srv_start(&s, sc, NULL);
    tcpkit_conn *c = NULL;
    char msg[320];
    tcpkit_err e = connect_to(&s, cc, "127.0.0.1", &c, msg, sizeof msg);
    ck_assert_msg(e == want, "got %s: %s", tcpkit_strerror(e), msg);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(msg, text), "message \"%s\" lacks \"%s\"", msg, text);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_ETLS); /* the server sees the client's alert */
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}

START_TEST(fail_expired)
{
    expect_client_failure("expired", th_tls_client(), TCPKIT_ECERT, "certificate has expired");
}
END_TEST

START_TEST(fail_hostname)
{
    tcpkit_tls *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_server_name(cc, "localhost.invalid"));
    expect_client_failure("server", cc, TCPKIT_ECERT,
                          "hostname mismatch (wanted localhost.invalid)");
}
END_TEST

START_TEST(fail_wrong_name_for_ip)
{
    expect_client_failure("wrongname", th_tls_client(), TCPKIT_ECERT,
                          "IP address mismatch (wanted 127.0.0.1)");
}
END_TEST

START_TEST(fail_self_signed)
{
    expect_client_failure("self", th_tls_client(), TCPKIT_ECERT, "self-signed certificate");
}
END_TEST

START_TEST(fail_unknown_issuer_system_store)
{
    tcpkit_tls *cc;
    ck_ok(tcpkit_tls_new(&cc)); /* the system store knows nothing of our CA */
    expect_client_failure("server", cc, TCPKIT_ECERT, "unable to get local issuer certificate");
}
END_TEST

START_TEST(fail_foreign_ca)
{
    expect_client_failure("foreign", th_tls_client(), TCPKIT_ECERT,
                          "unable to get local issuer certificate");
}
END_TEST

/* Base64 SHA-256 of a PEM certificate's SubjectPublicKeyInfo, with the CLI. */
static void spki_pin(const char *pem, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl x509 -in '%s' -noout -pubkey | openssl pkey -pubin -outform DER | "
             "openssl dgst -sha256 -binary | openssl base64 -A",
             pem);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(out, (int)cap, f));
    ck_assert_int_eq(pclose(f), 0);
    out[strcspn(out, "\r\n")] = '\0';
    ck_assert_uint_eq(strlen(out), 44);
}

START_TEST(fail_pin_mismatch)
{
    char pin[64], pins[160];
    spki_pin(th_pem("client.pem"), pin, sizeof pin);
    snprintf(pins, sizeof pins, "sha256//%s", pin);
    tcpkit_tls *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_pin_sha256(cc, pins));
    expect_client_failure("server", cc, TCPKIT_ECERT, "public key pin mismatch");
}
END_TEST

START_TEST(fail_pin_mismatch_even_insecure)
{
    char pin[64];
    spki_pin(th_pem("client.pem"), pin, sizeof pin);
    tcpkit_tls *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_insecure_skip_verify(cc, true));
    ck_ok(tcpkit_tls_set_pin_sha256(cc, pin));
    expect_client_failure("self", cc, TCPKIT_ECERT, "public key pin mismatch");
}
END_TEST

/* Succeeds when verification and pins agree; returns the client's error. */
static tcpkit_err try_connect(const char *server_cert, tcpkit_tls *cc)
{
    tcpkit_tls *sc = th_tls_server(server_cert);
    th_tls_srv s;
    th_tls_srv_start(&s, sc, NULL);
    tcpkit_conn *c = NULL;
    char msg[320];
    tcpkit_err e = connect_to(&s, cc, "127.0.0.1", &c, msg, sizeof msg);
    tcpkit_close(c);
    th_tls_srv_join(&s);
    tcpkit_tls_free(sc);
    return e;
}

START_TEST(pin_match)
{
    char pin[64], pins[200];
    spki_pin(th_pem("server.pem"), pin, sizeof pin);
    snprintf(pins, sizeof pins, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;sha256//%s", pin);
    tcpkit_tls *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_pin_sha256(cc, pins));
    ck_assert_int_eq(try_connect("server", cc), TCPKIT_OK);
    /* A pin does not replace chain verification. */
    spki_pin(th_pem("self.pem"), pin, sizeof pin);
    ck_ok(tcpkit_tls_set_pin_sha256(cc, pin));
    ck_assert_int_eq(try_connect("self", cc), TCPKIT_ECERT);
    /* With verification off, the pin alone decides. */
    ck_ok(tcpkit_tls_set_insecure_skip_verify(cc, true));
    ck_assert_int_eq(try_connect("self", cc), TCPKIT_OK);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(insecure_accepts_anything)
{
    tcpkit_tls *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_insecure_skip_verify(cc, true));
    ck_assert_int_eq(try_connect("expired", cc), TCPKIT_OK);
    ck_assert_int_eq(try_connect("wrongname", cc), TCPKIT_OK);
    ck_ok(tcpkit_tls_set_insecure_skip_verify(cc, false));
    ck_assert_int_eq(try_connect("wrongname", cc), TCPKIT_ECERT);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- mutual TLS ---- */

static void recv_one(th_tls_srv *s, tcpkit_conn *c)
{
    char b[8];
    size_t n;
    if (tcpkit_recv(c, b, sizeof b, &n) != TCPKIT_OK || tcpkit_send_all(c, "ok", 2, NULL))
        th_peer_fail(&s->peer, "recv_one: %s", tcpkit_last_error());
}

/* A server configuration that asks for client certificates from ca.pem. */
static tcpkit_tls *mtls_server(tcpkit_tls_client_auth a)
{
    tcpkit_tls *sc = th_tls_server("server");
    ck_ok(tcpkit_tls_set_ca_file(sc, th_pem("ca.pem")));
    ck_ok(tcpkit_tls_set_client_auth(sc, a));
    return sc;
}

/* One byte to a recv_one server, its two back. */
static void ping(tcpkit_conn *c)
{
    char b[8];
    ck_ok(tcpkit_send_all(c, "x", 1, NULL));
    ck_ok(tcpkit_recv_exact(c, b, 2, NULL));
}

START_TEST(mtls_required_without_cert)
{
    tcpkit_tls *sc = mtls_server(TCPKIT_TLS_CLIENT_AUTH_REQUIRE), *cc = th_tls_client();
    th_tls_srv s;
    th_tls_srv_start(&s, sc, NULL);
    tcpkit_conn *c = NULL;
    /* TLS 1.3: the client's handshake ends before the server has judged. */
    c = connect_ok(&s, cc);
    char b[8];
    size_t n;
    ck_assert_int_eq(tcpkit_recv(c, b, sizeof b, &n), TCPKIT_ETLS);
    ck_assert_msg(strstr(tcpkit_last_error(), "certificate required"), "%s", tcpkit_last_error());
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_ECERT);
    ck_assert_msg(strstr(s.hs_msg, "peer did not return a certificate"), "%s", s.hs_msg);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(mtls_with_cert)
{
    tcpkit_tls *sc = mtls_server(TCPKIT_TLS_CLIENT_AUTH_REQUIRE), *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_cert_file(cc, th_pem("client.pem"), th_pem("client.key")));
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, recv_one);
    ping(c);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_OK);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_PEER_SUBJECT], "CN=test-client");
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(mtls_optional)
{
    tcpkit_tls *sc = mtls_server(TCPKIT_TLS_CLIENT_AUTH_OPTIONAL), *cc = th_tls_client();
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, recv_one);
    ping(c);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_OK);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_PEER_SUBJECT], "");
    tcpkit_close(c);
    /* A certificate from a CA the server does not trust is refused. */
    ck_ok(tcpkit_tls_set_cert_file(cc, th_pem("foreign.pem"), th_pem("foreign.key")));
    th_tls_srv_start(&s, sc, NULL);
    c = connect_ok(&s, cc);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_ECERT);
    ck_assert_msg(strstr(s.hs_msg, "unable to get local issuer"), "%s", s.hs_msg);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- ALPN and versions ---- */

START_TEST(alpn_agreed_and_no_overlap)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_alpn(sc, "http/1.1,h2"));
    ck_ok(tcpkit_tls_set_alpn(cc, "h2,http/1.1"));
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, NULL);
    char v[32], msg[320];
    ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_ALPN, v, sizeof v));
    ck_assert_str_eq(v, "http/1.1"); /* the server's preference */
    th_tls_srv_join(&s);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_ALPN], "http/1.1");
    tcpkit_close(c);

    ck_ok(tcpkit_tls_set_alpn(cc, "spdy/1"));
    th_tls_srv_start(&s, sc, NULL);
    ck_assert_int_eq(connect_to(&s, cc, "127.0.0.1", &c, msg, sizeof msg), TCPKIT_ETLS);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_ETLS);

    ck_ok(tcpkit_tls_set_alpn(cc, NULL)); /* a client offering none is served */
    th_tls_srv_start(&s, sc, NULL);
    c = connect_ok(&s, cc);
    th_tls_srv_join(&s);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_ALPN], "");
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(min_version_13_against_12_only)
{
    /* Our server is capped at 1.2 by a client-side minimum of 1.3 being
     * unmet; the reverse (server min 1.3, client max) is in test_peers. */
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_min_version(sc, TCPKIT_TLS_1_3));
    ck_ok(tcpkit_tls_set_min_version(cc, TCPKIT_TLS_1_3));
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, NULL);
    th_tls_srv_join(&s);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_VERSION], "TLSv1.3");
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- STARTTLS ---- */

static void starttls_server(th_peer *p)
{
    tcpkit_tls *sc = p->arg;
    char line[64];
    size_t n;
    if (tcpkit_recv_line(p->conn, line, sizeof line, &n) != TCPKIT_OK ||
        tcpkit_send_all(p->conn, "220 go ahead\n", 13, NULL) != TCPKIT_OK) {
        th_peer_fail(p, "plaintext: %s", tcpkit_last_error());
        return;
    }
    p->result = tcpkit_conn_start_tls_server(p->conn, sc);
    if (p->result == TCPKIT_OK && (tcpkit_recv_line(p->conn, line, sizeof line, &n) != TCPKIT_OK ||
                                   tcpkit_send_all(p->conn, line, n, NULL) != TCPKIT_OK))
        th_peer_fail(p, "secure echo: %s", tcpkit_last_error());
}

START_TEST(starttls_upgrade)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    tcpkit_conn *c, *sv;
    th_pair(&c, &sv);
    th_peer p = {.fd = -1, .conn = sv, .arg = sc};
    th_peer_start(&p, starttls_server);
    char line[64];
    size_t n;
    ck_ok(tcpkit_send_all(c, "STARTTLS\n", 9, NULL));
    ck_ok(tcpkit_recv_line(c, line, sizeof line, &n));
    ck_ok(tcpkit_conn_start_tls_client(c, cc, NULL)); /* verifies 127.0.0.1 */
    ck_assert_int_eq(tcpkit_conn_start_tls_client(c, cc, NULL), TCPKIT_EINVAL);
    ck_ok(tcpkit_send_all(c, "secret\n", 7, NULL));
    ck_ok(tcpkit_recv_line(c, line, sizeof line, &n));
    ck_assert_str_eq(line, "secret\n");
    th_peer_join(&p);
    ck_assert_int_eq(p.result, TCPKIT_OK);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(starttls_refuses_buffered_plaintext)
{
    tcpkit_tls *cc = th_tls_client();
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    /* The injected command arrives in the same segment as the reply. */
    th_raw_send_all(fd, "220 go ahead\nINJECTED\n", 22);
    char line[64];
    size_t n;
    ck_ok(tcpkit_recv_line(c, line, sizeof line, &n));
    ck_assert_int_eq(tcpkit_conn_start_tls_client(c, cc, "localhost"), TCPKIT_ETLS);
    ck_assert_msg(strstr(tcpkit_last_error(), "buffered"), "%s", tcpkit_last_error());
    /* Nothing changed: the buffered line is still plaintext for the caller. */
    ck_ok(tcpkit_recv_line(c, line, sizeof line, &n));
    ck_assert_str_eq(line, "INJECTED\n");
    tcpkit_tls *sc = th_tls_server("server");
    ck_assert_int_eq(tcpkit_conn_start_tls_server(NULL, sc), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_conn_start_tls_client(c, NULL, NULL), TCPKIT_EINVAL);
    tcpkit_close(c);
    close(fd);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- end of stream: close_notify and truncation ---- */

static void send_and_close_write(th_tls_srv *s, tcpkit_conn *c)
{
    if (tcpkit_send_all(c, "line one\nline two", 17, NULL) != TCPKIT_OK ||
        tcpkit_close_write(c) != TCPKIT_OK)
        th_peer_fail(&s->peer, "send: %s", tcpkit_last_error());
}

static void send_and_truncate(th_tls_srv *s, tcpkit_conn *c)
{
    if (tcpkit_send_all(c, "partial data", 12, NULL) != TCPKIT_OK)
        th_peer_fail(&s->peer, "send: %s", tcpkit_last_error());
    /* TCP FIN without close_notify: what an attacker's truncation looks like. */
    shutdown(tcpkit_conn_fd(c), SHUT_WR);
}

START_TEST(close_notify_is_eof)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, send_and_close_write);
    char line[64];
    size_t n;
    ck_ok(tcpkit_recv_line(c, line, sizeof line, &n));
    ck_assert_str_eq(line, "line one\n");
    void *all;
    ck_ok(tcpkit_recv_all(c, &all, &n, 1024));
    ck_assert_str_eq(all, "line two");
    tcpkit_free(all);
    ck_assert_int_eq(tcpkit_recv(c, line, sizeof line, &n), TCPKIT_EOF);
    th_tls_srv_join(&s);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(truncation_is_etls_with_data)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, send_and_truncate);
    void *all;
    size_t n;
    ck_assert_int_eq(tcpkit_recv_all(c, &all, &n, 1024), TCPKIT_ETLS);
    ck_assert_msg(
        strstr(tcpkit_last_error(), "peer closed without close_notify: the data may be truncated"),
        "%s", tcpkit_last_error());
    ck_assert_uint_eq(n, 12);
    ck_assert_str_eq(all, "partial data");
    tcpkit_free(all);
    th_tls_srv_join(&s);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- timeouts during a handshake ---- */

START_TEST(connect_timeout_covers_handshake)
{
    int port;
    int lfd = th_raw_listen("127.0.0.1", 4, &port); /* accepts in the kernel, never speaks */
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_tls *cc = th_tls_client();
    tcpkit_opts *o = th_tls_opts(cc);
    tcpkit_opts_set_connect_timeout(o, 300);
    tcpkit_conn *c = NULL;
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", ps, o), TCPKIT_ETIMEDOUT);
    int64_t took = th_now_ms() - t0;
    ck_assert_msg(took >= 250 && took < 5000 * th_time_scale(), "took %lld ms", (long long)took);
    ck_assert_ptr_null(c);
    close(lfd);
    tcpkit_opts_free(o);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(server_handshake_timeout)
{
    tcpkit_tls *sc = th_tls_server("server");
    tcpkit_opts *o = th_tls_opts(sc);
    tcpkit_opts_set_io_timeout(o, 300);
    tcpkit_listener *l = th_listen_opts("127.0.0.1", o);
    int fd = th_raw_connect("127.0.0.1", tcpkit_listener_port(l));
    tcpkit_conn *c;
    int64_t t0 = th_now_ms();
    ck_ok(tcpkit_accept(l, &c, 5000)); /* returns at once: lazy handshake */
    ck_assert_int_lt(th_now_ms() - t0, 250);
    char b[4];
    size_t n;
    ck_assert_int_eq(tcpkit_recv(c, b, sizeof b, &n), TCPKIT_ETIMEDOUT);
    ck_assert_int_ge(th_now_ms() - t0, 250);
    /* A client that sends garbage instead of a ClientHello. */
    th_raw_send_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    ck_assert_int_eq(tcpkit_conn_handshake(c), TCPKIT_ETLS);
    tcpkit_close(c);
    close(fd);
    tcpkit_listener_close(l);
    tcpkit_opts_free(o);
    tcpkit_tls_free(sc);
}
END_TEST

/* ---- SIGPIPE: the peer vanished ---- */

START_TEST(no_sigpipe_to_vanished_peer)
{
    ck_assert(signal(SIGPIPE, SIG_DFL) == SIG_DFL);
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    th_tls_srv s;
    th_tls_srv_start(&s, sc, NULL); /* handshakes, then closes */
    tcpkit_conn *c = NULL;
    c = connect_ok(&s, cc);
    th_tls_srv_join(&s);
    static char big[1 << 16];
    tcpkit_err e = TCPKIT_OK;
    for (int i = 0; i < 1000 && e == TCPKIT_OK; i++)
        e = tcpkit_send_all(c, big, sizeof big, NULL);
    ck_assert_msg(e == TCPKIT_ERESET, "%s", tcpkit_last_error());
    tcpkit_close(c); /* close_notify to a dead peer: EPIPE, not SIGPIPE */
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- reload ---- */

static void hold_and_echo(th_tls_srv *s, tcpkit_conn *c)
{
    (void)s;
    char b[64];
    size_t n;
    while (tcpkit_recv(c, b, sizeof b, &n) == TCPKIT_OK)
        if (tcpkit_send_all(c, b, n, NULL) != TCPKIT_OK)
            break;
}

START_TEST(reload_with_live_connections)
{
    /* A copy of server.pem that reload re-reads after we replace it. */
    char cert[4096], key[4096];
    snprintf(cert, sizeof cert, "%s", th_pem("live.pem"));
    snprintf(key, sizeof key, "%s", th_pem("live.key"));
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s' '%s'", th_pem("server.pem"), cert,
             th_pem("server.key"), key);
    ck_assert_int_eq(system(cmd), 0);
    tcpkit_tls *sc, *cc = th_tls_client();
    ck_ok(tcpkit_tls_new(&sc));
    ck_ok(tcpkit_tls_set_cert_file(sc, cert, key));
    th_tls_srv s1;
    th_tls_srv_start(&s1, sc, hold_and_echo);
    tcpkit_conn *old = NULL;
    char v[64];
    old = connect_ok(&s1, cc);

    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && cp '%s' '%s'", th_pem("server2.pem"), cert,
             th_pem("server2.key"), key);
    ck_assert_int_eq(system(cmd), 0);
    ck_ok(tcpkit_tls_reload(sc));
    th_tls_srv s2;
    th_tls_srv_start(&s2, sc, NULL);
    tcpkit_conn *c2 = NULL;
    c2 = connect_ok(&s2, cc);
    ck_ok(tcpkit_conn_tls_info(c2, TCPKIT_TLS_INFO_PEER_SUBJECT, v, sizeof v));
    ck_assert_str_eq(v, "CN=localhost-2");
    th_tls_srv_join(&s2);
    tcpkit_close(c2);

    /* A broken file: reload fails, the old state stays. */
    snprintf(cmd, sizeof cmd, "echo broken > '%s'", key);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(tcpkit_tls_reload(sc), TCPKIT_ETLS);
    th_tls_srv_start(&s2, sc, NULL);
    c2 = connect_ok(&s2, cc);
    ck_ok(tcpkit_conn_tls_info(c2, TCPKIT_TLS_INFO_PEER_SUBJECT, v, sizeof v));
    ck_assert_str_eq(v, "CN=localhost-2");
    th_tls_srv_join(&s2);
    tcpkit_close(c2);

    /* The first connection still works with what it negotiated. */
    ck_ok(tcpkit_send_all(old, "still here", 10, NULL));
    ck_ok(tcpkit_recv_exact(old, v, 10, NULL));
    ck_ok(tcpkit_conn_tls_info(old, TCPKIT_TLS_INFO_PEER_SUBJECT, v, sizeof v));
    ck_assert_str_eq(v, "CN=localhost");
    ck_ok(tcpkit_close_write(old));
    th_tls_srv_join(&s1);
    tcpkit_close(old);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- tcpkit_serve with a TLS listener ---- */

static void serve_handler(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char line[64];
    size_t n;
    if (tcpkit_recv_line(c, line, sizeof line, &n) == TCPKIT_OK)
        tcpkit_send_all(c, line, n, NULL);
}

static void serve_thread(th_peer *p)
{
    tcpkit_listener *l = p->arg;
    p->result = tcpkit_serve(l, serve_handler, NULL, 2);
}

START_TEST(serve_tls_listener)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    tcpkit_opts *o = th_tls_opts(sc);
    tcpkit_listener *l = th_listen_opts("127.0.0.1", o);
    th_peer p = {.fd = -1, .arg = l};
    th_peer_start(&p, serve_thread);
    /* A silent client does not stall the accept loop. */
    int silent = th_raw_connect("127.0.0.1", tcpkit_listener_port(l));
    th_tls_srv s = {.l = l};
    th_port_str(l, s.port, sizeof s.port);
    for (int i = 0; i < 4; i++) {
        tcpkit_conn *c = NULL;
        char line[64];
        size_t n;
        c = connect_ok(&s, cc);
        ck_ok(tcpkit_send_all(c, "ping\n", 5, NULL));
        ck_ok(tcpkit_recv_line(c, line, sizeof line, &n));
        ck_assert_str_eq(line, "ping\n");
        tcpkit_close(c);
    }
    tcpkit_listener_shutdown(l);
    th_peer_join(&p);
    close(silent);
    tcpkit_listener_close(l);
    tcpkit_opts_free(o);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- the 1.1 calls over TLS ---- */

static bool echo_msg_then_stream(tcpkit_conn *c)
{
    void *m = NULL, *all = NULL;
    size_t n, total;
    bool ok = tcpkit_recv_msg(c, &m, &n, 1024) == TCPKIT_OK &&
              tcpkit_send_msg(c, m, n, NULL) == TCPKIT_OK &&
              tcpkit_recv_all(c, &all, &total, 1 << 20) == TCPKIT_OK;
    if (ok) {
        struct iovec iov[2] = {{all, total / 2}, {(char *)all + total / 2, total - total / 2}};
        ok = tcpkit_sendv(c, iov, 2, NULL) == TCPKIT_OK && tcpkit_close_write(c) == TCPKIT_OK;
    }
    tcpkit_free(m);
    tcpkit_free(all);
    return ok;
}

/* Echoes one message with send_msg, then everything until close_notify
 * in two halves with sendv, then close_notify. */
static void msg_and_stream_echo(th_tls_srv *s, tcpkit_conn *c)
{
    if (!echo_msg_then_stream(c))
        th_peer_fail(&s->peer, "msg echo: %s", tcpkit_last_error());
}

START_TEST(msg_sendv_sendfile_over_tls)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, msg_and_stream_echo);
    ck_ok(tcpkit_send_msg(c, "framed", 6, NULL));
    void *m;
    size_t n;
    ck_ok(tcpkit_recv_msg(c, &m, &n, 64));
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(m, "framed", 6), 0);
    tcpkit_free(m);
    /* sendv, then a file through sendfile's TLS path. */
    struct iovec iov[3] = {{"one ", 4}, {"two ", 4}, {"three ", 6}};
    ck_ok(tcpkit_sendv(c, iov, 3, &n));
    ck_assert_uint_eq(n, 14);
    FILE *f = tmpfile();
    size_t flen = 300000;
    char *fdata = th_pattern(flen, 5);
    ck_assert_uint_eq(fwrite(fdata, 1, flen, f), flen);
    fflush(f);
    ck_ok(tcpkit_sendfile(c, fileno(f), 0, flen, &n));
    ck_assert_uint_eq(n, flen);
    fclose(f);
    ck_ok(tcpkit_close_write(c));
    void *all;
    ck_ok(tcpkit_recv_all(c, &all, &n, 1 << 20));
    ck_assert_uint_eq(n, 14 + flen);
    ck_assert_int_eq(memcmp(all, "one two three ", 14), 0);
    ck_assert_int_eq(memcmp((char *)all + 14, fdata, flen), 0);
    tcpkit_free(all);
    free(fdata);
    th_tls_srv_join(&s);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

static void send_two_lines(th_tls_srv *s, tcpkit_conn *c)
{
    if (tcpkit_send_all(c, "abc\ndefg\n", 9, NULL) != TCPKIT_OK)
        th_peer_fail(&s->peer, "send: %s", tcpkit_last_error());
}

START_TEST(buffered_counts_decrypted_bytes)
{
    tcpkit_tls *sc = th_tls_server("server"), *cc = th_tls_client();
    th_tls_srv s;
    tcpkit_conn *c = start_and_connect(&s, sc, cc, send_two_lines);
    char b[16];
    size_t n;
    ck_ok(tcpkit_recv_exact(c, b, 1, &n)); /* one record: 8 bytes stay decrypted in OpenSSL */
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 8);
    /* Ready without any wait, even with a zero timeout. */
    ck_ok(tcpkit_conn_set_timeout(c, 0));
    ck_ok(tcpkit_recv_line(c, b, sizeof b, &n));
    ck_assert_str_eq(b, "bc\n");
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 5);
    ck_ok(tcpkit_recv_exact(c, b, 5, &n));
    ck_assert_uint_eq(tcpkit_conn_buffered(c), 0);
    th_tls_srv_join(&s);
    tcpkit_close(c);
    tcpkit_tls_free(sc);
    tcpkit_tls_free(cc);
}
END_TEST

/* Writes its kernel thread id to the pipe in arg, then handshakes. */
static void handshake_in_thread(th_peer *p)
{
    pid_t tid = th_gettid();
    if (write(*(int *)p->arg, &tid, sizeof tid) != sizeof tid)
        th_peer_fail(p, "pipe");
    p->result = tcpkit_conn_handshake(p->conn);
    p->conn = NULL; /* the test closes it */
}

START_TEST(cancel_and_deadline_during_handshake)
{
    tcpkit_tls *sc = th_tls_server("server");
    tcpkit_opts *o = th_tls_opts(sc);
    tcpkit_listener *l = th_listen_opts("127.0.0.1", o);
    int fd = th_raw_connect("127.0.0.1", tcpkit_listener_port(l));
    tcpkit_conn *c;
    ck_ok(tcpkit_accept(l, &c, 5000));
    /* The conn's deadline bounds the handshake like any other call. */
    ck_ok(tcpkit_conn_set_deadline(c, 300));
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_conn_handshake(c), TCPKIT_ETIMEDOUT);
    ck_assert_int_ge(th_now_ms() - t0, 250);
    ck_ok(tcpkit_conn_set_deadline(c, -1));
    /* A cancel from another thread ends a handshake that waits. */
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    th_peer p = {.fd = -1, .conn = c, .arg = &pfd[1]};
    th_peer_start(&p, handshake_in_thread);
    pid_t tid;
    ck_assert_int_eq(read(pfd[0], &tid, sizeof tid), sizeof tid);
    ck_assert(th_wait_thread_sleeping(tid, 5000));
    tcpkit_conn_cancel(c);
    th_peer_join(&p);
    ck_assert_int_eq(p.result, TCPKIT_ECANCELED);
    close(pfd[0]);
    close(pfd[1]);
    tcpkit_close(c);
    close(fd);
    tcpkit_listener_close(l);
    tcpkit_opts_free(o);
    tcpkit_tls_free(sc);
}
END_TEST

int main(void)
{
    th_tls_certs_make();
    Suite *s = suite_create("tls");
    TCase *tc = th_tcase("config", 30);
    tcase_add_test(tc, config_setters_validate);
    tcase_add_test(tc, config_files_checked_now);
    tcase_add_test(tc, opts_hold_a_reference);
    suite_add_tcase(s, tc);

    tc = th_tcase("handshake", 60);
    tcase_add_test(tc, handshake_and_info);
    tcase_add_test(tc, sni_sent_for_names);
    tcase_add_test(tc, plain_conn_info_is_einval);
    tcase_add_test(tc, fail_expired);
    tcase_add_test(tc, fail_hostname);
    tcase_add_test(tc, fail_wrong_name_for_ip);
    tcase_add_test(tc, fail_self_signed);
    tcase_add_test(tc, fail_unknown_issuer_system_store);
    tcase_add_test(tc, fail_foreign_ca);
    tcase_add_test(tc, fail_pin_mismatch);
    tcase_add_test(tc, fail_pin_mismatch_even_insecure);
    tcase_add_test(tc, pin_match);
    tcase_add_test(tc, insecure_accepts_anything);
    tcase_add_test(tc, mtls_required_without_cert);
    tcase_add_test(tc, mtls_with_cert);
    tcase_add_test(tc, mtls_optional);
    tcase_add_test(tc, alpn_agreed_and_no_overlap);
    tcase_add_test(tc, min_version_13_against_12_only);
    suite_add_tcase(s, tc);

    tc = th_tcase("stream", 120);
    tcase_add_test(tc, starttls_upgrade);
    tcase_add_test(tc, starttls_refuses_buffered_plaintext);
    tcase_add_test(tc, close_notify_is_eof);
    tcase_add_test(tc, truncation_is_etls_with_data);
    tcase_add_test(tc, connect_timeout_covers_handshake);
    tcase_add_test(tc, server_handshake_timeout);
    tcase_add_test(tc, no_sigpipe_to_vanished_peer);
    tcase_add_test(tc, reload_with_live_connections);
    tcase_add_test(tc, serve_tls_listener);
    tcase_add_test(tc, msg_sendv_sendfile_over_tls);
    tcase_add_test(tc, buffered_counts_decrypted_bytes);
    tcase_add_test(tc, cancel_and_deadline_during_handshake);
    suite_add_tcase(s, tc);
    int rc = th_run_suite(s);
    th_tls_certs_remove();
    return rc;
}
