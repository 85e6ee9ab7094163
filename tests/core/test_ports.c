/* SPDX-License-Identifier: MIT */
/* Strict port strings (DESIGN.md section 3, "Ports"; issue 14 item 1).
 *
 * A port string is 1-5 ASCII digits (decimal, leading zeros allowed) or a
 * service name: a letter first, then letters, digits and single inner
 * hyphens, at most 15 characters. Anything else is TCPKIT_EINVAL and never
 * reaches the resolver.
 *
 * Runs in a private network namespace (nothing can leave the machine, and
 * every port is free, so fixed ports such as 4464 can be bound) and, when
 * possible, a private mount namespace whose /etc/services names the
 * malformed strings too: handed to getaddrinfo, they would resolve, so an
 * EINVAL for them proves the check runs before the resolver. Likewise a
 * listener sits on 4464 and 65535, where the resolver's low-16-bit
 * truncation of " 70000" and "\t131071" would land.
 */
#include "helpers.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool services_overridden;

/* Every malformed name here resolves through this file if it is ever
 * handed to getaddrinfo. tk-valid is well-formed: it must resolve. */
static const char services_text[] = "tk-valid 4001/tcp\n"
                                    "-tk 4002/tcp\n"
                                    "tk- 4003/tcp\n"
                                    "tk--x 4004/tcp\n"
                                    "tk_x 4005/tcp\n"
                                    "tk-sixteen-chars 4006/tcp\n"
                                    "80x 4007/tcp\n"
                                    "0x50 4008/tcp\n"
                                    "tk.x 4009/tcp\n";

static bool override_services(void)
{
    return th_enter_private_mountns() && th_replace_file("/etc/services", services_text);
}

static void require_netns(void)
{
    ck_assert_msg(th_in_private_netns(), "not in the private network namespace");
}

/* Both calls must reject port with EINVAL and leave *out NULL. */
static void assert_rejected(const char *port)
{
    tcpkit_conn *c = (tcpkit_conn *)&c;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", port, NULL);
    ck_assert_msg(e == TCPKIT_EINVAL, "connect port \"%s\": %s (%s)", port, tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_ptr_null(c);
    tcpkit_listener *l = (tcpkit_listener *)&l;
    e = tcpkit_listen(&l, "127.0.0.1", port, NULL);
    ck_assert_msg(e == TCPKIT_EINVAL, "listen port \"%s\": %s (%s)", port, tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_ptr_null(l);
}

/* A raw listener on 127.0.0.1:port (the namespace is empty: it is free). */
static int listen_fixed(int port)
{
    int fd = th_raw_listen_port("127.0.0.1", port, 16);
    ck_assert_msg(fd >= 0, "cannot bind 127.0.0.1:%d in the private namespace", port);
    return fd;
}

START_TEST(blanks_never_wrap)
{
    require_netns();
    /* Where the resolver's truncation would land: 70000 & 0xffff = 4464,
     * 131071 & 0xffff = 65535. With listeners there, a lenient parser
     * connects successfully; the strict one refuses before any lookup. */
    int a = listen_fixed(4464), b = listen_fixed(65535);
    static const char *const forms[] = {" 70000", "\t131071", " 80",  "80 ", "\t80",
                                        "8 0",    "\n80",     "80\n", " ",   "\t"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        assert_rejected(forms[i]);
    close(a);
    close(b);
}
END_TEST

START_TEST(signs_hex_and_garbage)
{
    require_netns();
    static const char *const forms[] = {"+80",
                                        "-80",
                                        "-0",
                                        "+0",
                                        "0x50",
                                        "0X50",
                                        "80x",
                                        "8x0",
                                        "80.",
                                        "8,0",
                                        "1e3",
                                        "\xd9\xa8\xd9\xa0",
                                        "\xef\xbc\x98\xef\xbc\x90"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        assert_rejected(forms[i]);
}
END_TEST

START_TEST(too_many_digits)
{
    require_netns();
    /* Six digits or more, whatever the value: "000080" is 80 but not a
     * port string; "047123" is rejected like "00080" is accepted, by
     * length, so the two cases are consistent. */
    static const char *const forms[] = {
        "000080", "047123", "65536", "70000", "99999", "100000", "0000000000000000000080"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        assert_rejected(forms[i]);
    /* Out of range for connect only. */
    tcpkit_conn *c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", "0", NULL), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", "00000", NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(c);
}
END_TEST

/* The port a listener made from `port` is bound to. */
static int listen_port_of(const char *port)
{
    tcpkit_listener *l = NULL;
    tcpkit_err e = tcpkit_listen(&l, "127.0.0.1", port, NULL);
    ck_assert_msg(e == TCPKIT_OK, "listen \"%s\": %s (%s)", port, tcpkit_strerror(e),
                  tcpkit_last_error());
    int p = tcpkit_listener_port(l);
    tcpkit_listener_close(l);
    return p;
}

START_TEST(leading_zeros_are_decimal)
{
    require_netns();
    /* Decimal, never octal: "04712" is 4712 (octal would be 2506),
     * "01000" is 1000 (octal 512). */
    ck_assert_int_eq(listen_port_of("04712"), 4712);
    ck_assert_int_eq(listen_port_of("01000"), 1000);
    ck_assert_int_eq(listen_port_of("00080"), 80);
    ck_assert_int_eq(listen_port_of("65535"), 65535);
    int p = listen_port_of("00000");
    ck_assert_int_gt(p, 0); /* ephemeral */

    int fd = listen_fixed(4712);
    tcpkit_conn *c = NULL;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", "04712", NULL);
    ck_assert_msg(e == TCPKIT_OK, "connect 04712: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    char peer[TCPKIT_ADDRSTRLEN];
    ck_assert_int_eq(tcpkit_conn_peer(c, peer, sizeof peer), TCPKIT_OK);
    ck_assert_str_eq(peer, "127.0.0.1:4712");
    tcpkit_close(c);
    close(fd);
}
END_TEST

START_TEST(malformed_service_names)
{
    require_netns();
    /* 16 characters; leading, trailing and doubled hyphens; characters
     * outside letters, digits and '-'; control bytes. With the private
     * /etc/services, the first ones would resolve if they got that far. */
    static const char *const forms[] = {"tk-sixteen-chars",
                                        "-tk",
                                        "tk-",
                                        "tk--x",
                                        "tk_x",
                                        "tk.x",
                                        "-",
                                        "--",
                                        "ht tp",
                                        "http\x01",
                                        "h\xc3\xa9",
                                        "abcdefghijklmnopqrstuvwxyz0123456789"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        assert_rejected(forms[i]);
}
END_TEST

START_TEST(valid_names_reach_the_resolver)
{
    require_netns();
    /* Well-formed but unknown: 15 characters (the longest allowed), digits
     * and inner hyphens. The resolver answers "unknown": ERESOLVE. */
    static const char *const unknown[] = {"abcdefghijklmno", "tk-no-such-svc", "a1-b2-c3", "x"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        tcpkit_conn *c = NULL;
        tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", unknown[i], NULL);
        ck_assert_msg(e == TCPKIT_ERESOLVE, "connect \"%s\": %s (%s)", unknown[i],
                      tcpkit_strerror(e), tcpkit_last_error());
        tcpkit_listener *l = NULL;
        e = tcpkit_listen(&l, "127.0.0.1", unknown[i], NULL);
        ck_assert_msg(e == TCPKIT_ERESOLVE, "listen \"%s\": %s (%s)", unknown[i],
                      tcpkit_strerror(e), tcpkit_last_error());
    }
    if (!services_overridden) {
        th_skip("valid_names_reach_the_resolver (known name): no private /etc/services");
        return;
    }
    /* Known through the private /etc/services: the call lands on 4001. */
    ck_assert_int_eq(listen_port_of("tk-valid"), 4001);
}
END_TEST

START_TEST(malformed_names_would_resolve)
{
    require_netns();
    if (!services_overridden) {
        th_skip("malformed_names_would_resolve: no private /etc/services");
        return;
    }
    /* The proof that the rejection happens before the resolver: the
     * resolver knows these names (the test fails if it does not). */
    static const char *const known[] = {"-tk", "tk-", "tk--x", "tk_x", "tk-sixteen-chars"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ck_assert_msg(getservbyname(known[i], "tcp") != NULL, "\"%s\" not in /etc/services",
                      known[i]);
}
END_TEST

START_TEST(null_and_empty)
{
    require_netns();
    assert_rejected("");
    tcpkit_conn *c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", NULL, NULL), TCPKIT_EINVAL);
    tcpkit_listener *l = (tcpkit_listener *)&l;
    ck_assert_int_eq(tcpkit_listen(&l, "127.0.0.1", NULL, NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_ptr_null(l);
}
END_TEST

int main(void)
{
    /* Before any thread exists (unshare of a user namespace needs that). */
    if (!th_enter_private_netns()) {
        fprintf(stderr, "SKIP core-ports: cannot create a private network namespace\n");
        return TH_SKIPPED;
    }
    services_overridden = override_services();
    if (!services_overridden)
        fprintf(stderr, "note: no private /etc/services; resolver-proof tests skip\n");

    Suite *s = suite_create("core-ports");
    TCase *tc = th_tcase("ports", 20);
    tcase_add_test(tc, blanks_never_wrap);
    tcase_add_test(tc, signs_hex_and_garbage);
    tcase_add_test(tc, too_many_digits);
    tcase_add_test(tc, leading_zeros_are_decimal);
    tcase_add_test(tc, malformed_service_names);
    tcase_add_test(tc, valid_names_reach_the_resolver);
    tcase_add_test(tc, malformed_names_would_resolve);
    tcase_add_test(tc, null_and_empty);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
