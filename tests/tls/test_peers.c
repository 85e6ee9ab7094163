/* SPDX-License-Identifier: MIT */
/* TLS against real peers on loopback: openssl s_server and s_client, curl,
 * and nginx, each spawned as a process for one test. A peer program that
 * is not installed skips its test with a note (CI installs them all). */
#include "tls_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ck_ok(call) ck_assert_msg((call) == TCPKIT_OK, "%s: %s", #call, tcpkit_last_error())

/* ---- our client against openssl s_server ---- */

/* Starts `openssl s_server -www` plus extra args; port into port. */
static void s_server_start(th_proc *p, char *port, const char *const *extra)
{
    char *argv[32] = {"openssl", "s_server",
                      "-accept", "127.0.0.1:0",
                      "-cert",   (char *)th_pem("server.pem"),
                      "-key",    (char *)th_pem("server.key"),
                      "-www",    "-naccept",
                      "1"};
    int n = 11;
    for (; extra && *extra && n < 30; extra++)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;
    th_proc_spawn(p, argv, -1);
    ck_assert_msg(th_proc_wait_for(p, "ACCEPT 127.0.0.1:", 10000), "%s", p->log);
    ck_assert_msg(th_proc_wait_for(p, "\n", 10000), "%s", p->log);
    const char *at = strstr(p->log, "ACCEPT 127.0.0.1:") + strlen("ACCEPT 127.0.0.1:");
    snprintf(port, 8, "%.*s", (int)strcspn(at, "\r\n"), at);
}

/* Connects our client with cc to an s_server with extra; on success does
 * an HTTP GET of its status page. Returns the connect error; version
 * receives the negotiated version ("" on failure). */
static tcpkit_err get_from_s_server(tcpkit_tls *cc, const char *const *extra, char *version,
                                    char *msg)
{
    th_proc p;
    char port[8];
    s_server_start(&p, port, extra);
    tcpkit_opts *o = th_tls_opts(cc);
    tcpkit_opts_set_connect_timeout(o, 10000);
    tcpkit_opts_set_io_timeout(o, 10000);
    tcpkit_conn *c = NULL;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", port, o);
    snprintf(msg, 320, "%s", e == TCPKIT_OK ? "" : tcpkit_last_error());
    version[0] = '\0';
    if (e == TCPKIT_OK) {
        ck_ok(tcpkit_conn_tls_info(c, TCPKIT_TLS_INFO_VERSION, version, 32));
        ck_ok(tcpkit_send_all(c, "GET / HTTP/1.0\r\n\r\n", 18, NULL));
        char line[256];
        size_t n;
        ck_ok(tcpkit_recv_line(c, line, sizeof line, &n));
        ck_assert_msg(strstr(line, "200 ok"), "%s", line);
    }
    tcpkit_close(c);
    tcpkit_opts_free(o);
    th_proc_stop(&p);
    return e;
}

START_TEST(client_vs_s_server)
{
    tcpkit_tls *cc = th_tls_client();
    char v[32], msg[320];
    ck_assert_msg(get_from_s_server(cc, NULL, v, msg) == TCPKIT_OK, "%s", msg);
    ck_assert_str_eq(v, "TLSv1.3");
    const char *tls12[] = {"-tls1_2", NULL};
    ck_assert_msg(get_from_s_server(cc, tls12, v, msg) == TCPKIT_OK, "%s", msg);
    ck_assert_str_eq(v, "TLSv1.2");
    const char *tls13[] = {"-tls1_3", NULL};
    ck_ok(tcpkit_tls_set_min_version(cc, TCPKIT_TLS_1_3));
    ck_assert_msg(get_from_s_server(cc, tls13, v, msg) == TCPKIT_OK, "%s", msg);
    ck_assert_str_eq(v, "TLSv1.3");
    ck_assert_int_eq(get_from_s_server(cc, tls12, v, msg), TCPKIT_ETLS);
    ck_assert_msg(strstr(msg, "protocol version"), "%s", msg);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(client_vs_tls10_only_server)
{
    tcpkit_tls *cc = th_tls_client();
    char v[32], msg[320];
    const char *tls10[] = {"-tls1", "-cipher", "DEFAULT@SECLEVEL=0", NULL};
    ck_assert_int_eq(get_from_s_server(cc, tls10, v, msg), TCPKIT_ETLS);
    ck_assert_msg(strstr(msg, "protocol version"), "%s", msg);
    tcpkit_tls_free(cc);
}
END_TEST

START_TEST(client_alpn_vs_s_server)
{
    tcpkit_tls *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_alpn(cc, "h2,http/1.1"));
    const char *alpn[] = {"-alpn", "http/1.1", NULL};
    char v[32], msg[320];
    ck_assert_msg(get_from_s_server(cc, alpn, v, msg) == TCPKIT_OK, "%s", msg);
    tcpkit_tls_free(cc);
}
END_TEST

/* ---- s_client and curl against our server ---- */

/* A pipe whose read end holds text and EOF (stdin for a child). */
static int stdin_with(const char *text)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], text, strlen(text)), (ssize_t)strlen(text));
    close(fds[1]);
    return fds[0];
}

START_TEST(s_client_vs_server)
{
    tcpkit_tls *sc = th_tls_server("server");
    ck_ok(tcpkit_tls_set_alpn(sc, "h2,http/1.1"));
    th_tls_srv s;
    th_tls_srv_start(&s, sc, th_tls_echo_line);
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%s", s.port);
    char *argv[] = {"openssl",
                    "s_client",
                    "-connect",
                    connect,
                    "-CAfile",
                    (char *)th_pem("ca.pem"),
                    "-verify_return_error",
                    "-verify_hostname",
                    "localhost",
                    "-servername",
                    "localhost",
                    "-alpn",
                    "http/1.1",
                    "-quiet",
                    NULL};
    int in = stdin_with("hello over tls\n");
    th_proc p;
    th_proc_spawn(&p, argv, in);
    close(in);
    int code = th_proc_exit_code(&p, 20000);
    ck_assert_msg(code == 0, "s_client exit %d: %s", code, p.log);
    ck_assert_msg(strstr(p.log, "hello over tls"), "%s", p.log);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_OK);
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_SERVER_NAME], "localhost");
    ck_assert_str_eq(s.info[TCPKIT_TLS_INFO_ALPN], "http/1.1");
    tcpkit_tls_free(sc);
}
END_TEST

START_TEST(s_client_tls12_vs_min13_server)
{
    tcpkit_tls *sc = th_tls_server("server");
    ck_ok(tcpkit_tls_set_min_version(sc, TCPKIT_TLS_1_3));
    th_tls_srv s;
    th_tls_srv_start(&s, sc, NULL);
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%s", s.port);
    char *argv[] = {"openssl", "s_client", "-connect", connect, "-tls1_2", "-quiet", NULL};
    th_proc p;
    th_proc_spawn(&p, argv, -1);
    int code = th_proc_exit_code(&p, 20000);
    ck_assert_msg(code != 0, "s_client connected with TLS 1.2: %s", p.log);
    th_tls_srv_join(&s);
    ck_assert_int_eq(s.hs, TCPKIT_ETLS);
    ck_assert_msg(strstr(s.hs_msg, "protocol version"), "%s", s.hs_msg);
    tcpkit_tls_free(sc);
}
END_TEST

static void http_reply(th_tls_srv *s, tcpkit_conn *c)
{
    char line[512];
    size_t n;
    do {
        if (tcpkit_recv_line(c, line, sizeof line, &n) != TCPKIT_OK) {
            th_peer_fail(&s->peer, "request: %s", tcpkit_last_error());
            return;
        }
    } while (strcmp(line, "\r\n") != 0);
    const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ncurl-ok\r\n";
    /* No close_write: curl may close as soon as it has Content-Length bytes. */
    if (tcpkit_send_all(c, r, strlen(r), NULL) != TCPKIT_OK)
        th_peer_fail(&s->peer, "reply: %s", tcpkit_last_error());
}

START_TEST(curl_vs_server)
{
    if (!th_have_program("curl")) {
        fprintf(stderr, "curl not installed: skipped\n");
        return;
    }
    tcpkit_tls *sc = th_tls_server("server");
    th_tls_srv s;
    th_tls_srv_start(&s, sc, http_reply);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%s/", s.port);
    char *argv[] = {"curl", "-sS", "--max-time", "20", "--cacert", (char *)th_pem("ca.pem"),
                    url,    NULL};
    th_proc p;
    th_proc_spawn(&p, argv, -1);
    int code = th_proc_exit_code(&p, 30000);
    ck_assert_msg(code == 0 && strstr(p.log, "curl-ok"), "curl exit %d: %s", code, p.log);
    th_tls_srv_join(&s);
    tcpkit_tls_free(sc);
}
END_TEST

/* ---- our client against nginx ---- */

/* Writes nginx.conf for port into dir. */
static void nginx_conf(const char *dir, int port)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/nginx.conf", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "worker_processes 1;\nerror_log stderr notice;\npid %s/nginx.pid;\n"
            "events { worker_connections 32; }\n"
            "http {\n access_log off;\n client_body_temp_path %s;\n proxy_temp_path %s;\n"
            " fastcgi_temp_path %s;\n uwsgi_temp_path %s;\n scgi_temp_path %s;\n"
            " server {\n  listen 127.0.0.1:%d ssl;\n  ssl_certificate %s;\n"
            "  ssl_certificate_key %s;\n  location / { return 200 \"nginx-ok\\n\"; }\n }\n}\n",
            dir, dir, dir, dir, dir, dir, port, th_pem("server.pem"), th_pem("server.key"));
    fclose(f);
}

/* Starts nginx on a free port (retrying when the port got taken). */
static int nginx_start(th_proc *p, const char *dir)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = th_free_port();
        nginx_conf(dir, port);
        char conf[4200];
        snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
        char *argv[] = {"nginx", "-p",     (char *)dir, "-c",          conf,
                        "-e",    "stderr", "-g",        "daemon off;", NULL};
        th_proc_spawn(p, argv, -1);
        if (th_proc_wait_for(p, "start worker process", 20000))
            return port;
        bool in_use = strstr(p->log, "Address already in use") != NULL;
        th_proc_stop(p);
        ck_assert_msg(in_use, "nginx did not start: %s", p->log);
    }
    ck_abort_msg("no free port for nginx");
    return -1;
}

START_TEST(client_vs_nginx)
{
    if (!th_have_program("nginx")) {
        fprintf(stderr, "nginx not installed: skipped\n");
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", th_pem("nginx"));
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    th_proc p;
    int port = nginx_start(&p, dir);
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_tls *cc = th_tls_client();
    ck_ok(tcpkit_tls_set_server_name(cc, "localhost"));
    tcpkit_opts *o = th_tls_opts(cc);
    tcpkit_opts_set_io_timeout(o, 10000);
    tcpkit_conn *c;
    ck_ok(tcpkit_connect(&c, "127.0.0.1", ps, o));
    const char *req = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    ck_ok(tcpkit_send_all(c, req, strlen(req), NULL));
    void *all;
    size_t n;
    ck_ok(tcpkit_recv_all(c, &all, &n, 1 << 16));
    ck_assert_msg(strstr(all, "nginx-ok"), "%s", (char *)all);
    tcpkit_free(all);
    tcpkit_close(c);
    tcpkit_opts_free(o);
    tcpkit_tls_free(cc);
    th_proc_stop(&p);
}
END_TEST

int main(void)
{
    th_tls_certs_make();
    Suite *s = suite_create("tls-peers");
    TCase *tc = th_tcase("openssl", 120);
    tcase_add_test(tc, client_vs_s_server);
    tcase_add_test(tc, client_vs_tls10_only_server);
    tcase_add_test(tc, client_alpn_vs_s_server);
    tcase_add_test(tc, s_client_vs_server);
    tcase_add_test(tc, s_client_tls12_vs_min13_server);
    suite_add_tcase(s, tc);
    tc = th_tcase("curl-nginx", 120);
    tcase_add_test(tc, curl_vs_server);
    tcase_add_test(tc, client_vs_nginx);
    suite_add_tcase(s, tc);
    int rc = th_run_suite(s);
    th_tls_certs_remove();
    return rc;
}
