/* SPDX-License-Identifier: MIT */
/* A build without OpenSSL (-Dtls=disabled): every TLS function exists and
 * says TCPKIT_ENOTSUP (or EINVAL where the contract says so for any
 * build), and plain TCP is untouched. */
#include "helpers.h"

#include <string.h>

START_TEST(every_tls_function_is_enotsup)
{
    tcpkit_tls *t = (tcpkit_tls *)1;
    ck_assert_int_eq(tcpkit_tls_new(&t), TCPKIT_ENOTSUP);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(tcpkit_last_error(), "without TLS"));
    tcpkit_tls_free(NULL);
    ck_assert_int_eq(tcpkit_tls_set_ca_file(NULL, "x"), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_set_cert_file(NULL, "x", "y"), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_set_server_name(NULL, "x"), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_set_client_auth(NULL, TCPKIT_TLS_CLIENT_AUTH_NONE), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_set_min_version(NULL, TCPKIT_TLS_1_2), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_set_alpn(NULL, "h2"), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_set_pin_sha256(NULL, ""), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_set_insecure_skip_verify(NULL, true), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_tls_reload(NULL), TCPKIT_ENOTSUP);
}
END_TEST

START_TEST(conn_functions_without_tls)
{
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_tls(o, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_tls(o, (tcpkit_tls *)o), TCPKIT_ENOTSUP);
    tcpkit_opts_free(o);
    tcpkit_conn *a, *b;
    th_pair(&a, &b);
    ck_assert_int_eq(tcpkit_conn_handshake(a), TCPKIT_OK); /* plain: nothing pending */
    char v[32];
    ck_assert_int_eq(tcpkit_conn_tls_info(a, TCPKIT_TLS_INFO_VERSION, v, sizeof v), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_conn_start_tls_client(a, (tcpkit_tls *)a, "x"), TCPKIT_ENOTSUP);
    ck_assert_int_eq(tcpkit_conn_start_tls_server(a, (tcpkit_tls *)a), TCPKIT_ENOTSUP);
    /* Still a working plain connection. */
    ck_assert_int_eq(tcpkit_send_all(a, "hi", 2, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_recv_exact(b, v, 2, NULL), TCPKIT_OK);
    tcpkit_close(a);
    tcpkit_close(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls-notls");
    TCase *tc = th_tcase("enotsup", 30);
    tcase_add_test(tc, every_tls_function_is_enotsup);
    tcase_add_test(tc, conn_functions_without_tls);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
