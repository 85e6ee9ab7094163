/* SPDX-License-Identifier: MIT */
/* Name resolution and Happy Eyeballs, inside a private network namespace.
 *
 * main() moves the process into a new network namespace with only loopback
 * before anything runs, so no lookup (a DNS query included) can leave the
 * machine; the suite exits 77 ("skipped") where that is impossible. Every
 * lookup test also asserts it still runs in that namespace.
 *
 * Run with the argument "names" (meson test core-resolve-names), it runs
 * the checks that need names with several addresses instead: in a private
 * mount namespace as well, /etc/hosts and /etc/resolv.conf are replaced
 * (bind mounts visible to this process only) with names that map to
 * several loopback addresses, so the Happy Eyeballs race can be driven:
 * one address refused, black-holed (a listener whose backlog is full drops
 * SYNs) or accepting. Where that override or the IPv6 loopback is
 * impossible, that run exits 77, so meson counts those checks as skipped.
 */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static bool hosts_overridden;

static const char hosts_text[] = "127.0.0.1 localhost\n"
                                 "::1 localhost\n"
                                 "::1 tk-dual\n"
                                 "127.0.0.1 tk-dual\n"
                                 "::1 tk-three\n"
                                 "127.0.0.1 tk-three\n"
                                 "127.0.0.2 tk-three\n";

static bool override_hosts(void)
{
    if (!th_enter_private_mountns())
        return false;
    /* DNS, if a lookup ever gets that far, goes to loopback in this
     * namespace, where nothing answers. A chroot may have no resolv.conf:
     * the resolver then uses loopback anyway. */
    if (access("/etc/resolv.conf", F_OK) == 0 &&
        !th_replace_file("/etc/resolv.conf",
                         "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"))
        return false;
    return th_replace_file("/etc/hosts", hosts_text);
}

static void require_netns(void)
{
    ck_assert_msg(th_in_private_netns(), "not in the private network namespace: refusing to "
                                         "look names up");
}

/* Only run as core-resolve-names, where main() made sure of both. */
static bool need_hosts(const char *test)
{
    if (hosts_overridden && th_have_ipv6())
        return true;
    th_skip("%s: no private /etc/hosts or no IPv6 loopback", test);
    return false;
}

static tcpkit_opts *opts_with(int connect_timeout, int fallback_delay)
{
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_connect_timeout(o, connect_timeout), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_fallback_delay(o, fallback_delay), TCPKIT_OK);
    return o;
}

/* Connects to tk-dual:port with those timeouts; gives the result, the time
 * it took and a copy of the message (later calls overwrite the original). */
static tcpkit_err connect_dual(int port, int timeout, int fallback, tcpkit_conn **c,
                               int64_t *elapsed, char *msg, size_t cap)
{
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_opts *o = opts_with(timeout, fallback);
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_connect(c, "tk-dual", ps, o);
    *elapsed = th_now_ms() - t0;
    snprintf(msg, cap, "%s", tcpkit_last_error());
    tcpkit_opts_free(o);
    return e;
}

/* The failure message names the attempt on each address of tk-dual. */
static void assert_both_attempts_listed(const char *m, int port)
{
    char a4[64], a6[64];
    snprintf(a4, sizeof a4, "127.0.0.1 port %d", port);
    snprintf(a6, sizeof a6, "::1 port %d", port);
    ck_assert_msg(strstr(m, a4) != NULL, "'%s' missing: %s", a4, m);
    ck_assert_msg(strstr(m, a6) != NULL, "'%s' missing: %s", a6, m);
}

/* A socket holding ip:port bound but not listening: connections there are
 * refused. Returns -1 if the port is taken on that address. */
static int hold_refused(const char *ip, int port)
{
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    int one = 1;
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_storage ss;
    socklen_t len = th_loopback_sockaddr(family, port, &ss);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- lookups that fail ---- */

START_TEST(unresolvable_name)
{
    require_netns();
    tcpkit_conn *c = (tcpkit_conn *)&c;
    tcpkit_err e = tcpkit_connect(&c, "nonexistent.invalid", "80", NULL);
    ck_assert_msg(e == TCPKIT_ERESOLVE, "got %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_null(c);
    const char *m = tcpkit_last_error();
    ck_assert_msg(strstr(m, "nonexistent.invalid") != NULL, "name missing from: %s", m);
    ck_assert_msg(strstr(m, "lookup") != NULL, "not a lookup message: %s", m);
    /* The text comes from gai_strerror, not from errno. */
    ck_assert_msg(strstr(m, "Success") == NULL, "errno text in: %s", m);

    tcpkit_listener *l = (tcpkit_listener *)&l;
    e = tcpkit_listen(&l, "nonexistent.invalid", "0", NULL);
    ck_assert_msg(e == TCPKIT_ERESOLVE, "listen: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_null(l);
}
END_TEST

START_TEST(unknown_service)
{
    require_netns();
    tcpkit_conn *c = (tcpkit_conn *)&c;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", "tk-no-such-service", NULL);
    ck_assert_msg(e == TCPKIT_ERESOLVE, "got %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_null(c);
    tcpkit_listener *l = (tcpkit_listener *)&l;
    e = tcpkit_listen(&l, "127.0.0.1", "tk-no-such-service", NULL);
    ck_assert_msg(e == TCPKIT_ERESOLVE, "listen: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_null(l);
}
END_TEST

START_TEST(known_service_name)
{
    require_netns();
    if (getservbyname("http", "tcp") == NULL) {
        th_skip("known_service_name: no /etc/services entry for http (package netbase)");
        return;
    }
    /* Nothing listens on port 80 in this namespace: refused, on port 80. */
    tcpkit_conn *c = NULL;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", "http", NULL);
    ck_assert_msg(e == TCPKIT_EREFUSED, "got %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_msg(strstr(tcpkit_last_error(), "port 80") != NULL, "message: %s",
                  tcpkit_last_error());
}
END_TEST

START_TEST(excluded_family_literal)
{
    require_netns();
    tcpkit_opts *v4 = NULL, *v6 = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&v4), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_new(&v6), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_family(v4, TCPKIT_FAMILY_IPV4), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_family(v6, TCPKIT_FAMILY_IPV6), TCPKIT_OK);
    tcpkit_conn *c = (tcpkit_conn *)&c;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", "80", v6);
    ck_assert_msg(e == TCPKIT_ERESOLVE, "v6-only to 127.0.0.1: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_ptr_null(c);
    c = (tcpkit_conn *)&c;
    e = tcpkit_connect(&c, "::1", "80", v4);
    ck_assert_msg(e == TCPKIT_ERESOLVE, "v4-only to ::1: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_ptr_null(c);
    tcpkit_opts_free(v4);
    tcpkit_opts_free(v6);
}
END_TEST

/* ---- names with several addresses (private /etc/hosts) ---- */

static void accept_one_and_check_peer(tcpkit_listener *l, tcpkit_conn *c, const char *peer)
{
    char buf[TCPKIT_ADDRSTRLEN];
    ck_assert_int_eq(tcpkit_conn_peer(c, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, peer);
    tcpkit_conn *s = NULL;
    ck_assert_int_eq(tcpkit_accept(l, &s, 5000 * th_time_scale()), TCPKIT_OK);
    tcpkit_close(s);
    tcpkit_close(c);
}

START_TEST(localhost_both_families)
{
    require_netns();
    if (!need_hosts("localhost_both_families"))
        return;
    const char *hosts[] = {"127.0.0.1", "::1"};
    for (int i = 0; i < 2; i++) {
        tcpkit_listener *l = th_listen_loopback(hosts[i]);
        char port[16], peer[80];
        th_port_str(l, port, sizeof port);
        snprintf(peer, sizeof peer, i == 0 ? "127.0.0.1:%s" : "[::1]:%s", port);
        tcpkit_conn *c = NULL;
        tcpkit_err e = tcpkit_connect(&c, "localhost", port, NULL);
        ck_assert_msg(e == TCPKIT_OK, "localhost to %s listener: %s (%s)", hosts[i],
                      tcpkit_strerror(e), tcpkit_last_error());
        accept_one_and_check_peer(l, c, peer);
        tcpkit_listener_close(l);
    }
}
END_TEST

/* Moved from test_connect.c: it needs localhost to have ::1, which the
 * private /etc/hosts guarantees. */
START_TEST(localhost_reaches_ipv6_listener)
{
    require_netns();
    if (!need_hosts("localhost_reaches_ipv6_listener"))
        return;
    tcpkit_listener *l = th_listen_loopback("::1");
    th_connect_exchange(l, "localhost", NULL);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(family_restriction_by_name)
{
    require_netns();
    if (!need_hosts("family_restriction_by_name"))
        return;
    const tcpkit_family fam[] = {TCPKIT_FAMILY_IPV4, TCPKIT_FAMILY_IPV6};
    const char *fmt[] = {"127.0.0.1:%d", "[::1]:%d"};
    /* A dual-stack listener: the family of the client shows which address
     * was used. */
    tcpkit_listener *l = th_listen_loopback("::");
    int port = tcpkit_listener_port(l);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    for (int i = 0; i < 2; i++) {
        tcpkit_opts *o = NULL;
        ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
        ck_assert_int_eq(tcpkit_opts_set_family(o, fam[i]), TCPKIT_OK);
        tcpkit_conn *c = NULL;
        tcpkit_err e = tcpkit_connect(&c, "tk-dual", ps, o);
        tcpkit_opts_free(o);
        ck_assert_msg(e == TCPKIT_OK, "%s", tcpkit_last_error());
        char peer[80];
        snprintf(peer, sizeof peer, fmt[i], port);
        accept_one_and_check_peer(l, c, peer);
    }
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(listen_on_name_prefers_ipv4)
{
    require_netns();
    if (!need_hosts("listen_on_name_prefers_ipv4"))
        return;
    tcpkit_listener *l = NULL;
    ck_assert_int_eq(tcpkit_listen(&l, "tk-dual", "0", NULL), TCPKIT_OK);
    char addr[TCPKIT_ADDRSTRLEN], expect[80];
    ck_assert_int_eq(tcpkit_listener_addr(l, addr, sizeof addr), TCPKIT_OK);
    snprintf(expect, sizeof expect, "127.0.0.1:%d", tcpkit_listener_port(l));
    ck_assert_str_eq(addr, expect);
    tcpkit_listener_close(l);
}
END_TEST

/* One address refused, the other accepting: the refusal starts the next
 * attempt at once, long before the (large) fallback delay. */
START_TEST(he_refused_then_next_at_once)
{
    require_netns();
    if (!need_hosts("he_refused_then_next_at_once"))
        return;
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    int port = tcpkit_listener_port(l);
    int hold = hold_refused("::1", port);
    ck_assert_int_ge(hold, 0);
    char peer[40], m[1024];
    tcpkit_conn *c = NULL;
    int64_t el;
    tcpkit_err e = connect_dual(port, -1, 5000, &c, &el, m, sizeof m);
    close(hold);
    ck_assert_msg(e == TCPKIT_OK, "%s (%s)", tcpkit_strerror(e), m);
    ck_assert_msg(el < 1000 * th_time_scale(), "took %lld ms: waited for the fallback delay?",
                  (long long)el);
    snprintf(peer, sizeof peer, "127.0.0.1:%d", port);
    accept_one_and_check_peer(l, c, peer);
    tcpkit_listener_close(l);
}
END_TEST

/* One address black-holed: the next attempt starts after the fallback delay
 * and wins; the hanging attempt is closed (the fd check sees a leak). */
START_TEST(he_blackhole_then_fallback)
{
    require_netns();
    if (!need_hosts("he_blackhole_then_fallback"))
        return;
    int port = 0;
    int bh = th_raw_listen("::1", 1, &port);
    int fds[32];
    int n = th_fill_backlog("::1", port, fds, 32);
    tcpkit_listener *l = NULL;
    char ps[16], peer[40];
    snprintf(ps, sizeof ps, "%d", port);
    ck_assert_int_eq(tcpkit_listen(&l, "127.0.0.1", ps, NULL), TCPKIT_OK);

    const int delay = 100;
    tcpkit_conn *c = NULL;
    int64_t el;
    char m[1024];
    tcpkit_err e = connect_dual(port, 10000 * th_time_scale(), delay, &c, &el, m, sizeof m);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(bh);
    ck_assert_msg(e == TCPKIT_OK, "%s (%s)", tcpkit_strerror(e), m);
    ck_assert_msg(el < delay + 1500 * th_time_scale(), "took %lld ms", (long long)el);
    snprintf(peer, sizeof peer, "127.0.0.1:%d", port);
    accept_one_and_check_peer(l, c, peer);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(he_all_refused_lists_every_attempt)
{
    require_netns();
    if (!need_hosts("he_all_refused_lists_every_attempt"))
        return;
    int port = 0;
    int lfd = th_raw_listen("127.0.0.1", 1, &port);
    close(lfd);
    int h4 = hold_refused("127.0.0.1", port);
    int h6 = hold_refused("::1", port);
    ck_assert(h4 >= 0 && h6 >= 0);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_conn *c = (tcpkit_conn *)&c;
    tcpkit_err e = tcpkit_connect(&c, "tk-dual", ps, NULL);
    close(h4);
    close(h6);
    ck_assert_msg(e == TCPKIT_EREFUSED, "%s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_null(c);
    const char *m = tcpkit_last_error();
    ck_assert_msg(strstr(m, "tk-dual") != NULL, "host missing: %s", m);
    assert_both_attempts_listed(m, port);
}
END_TEST

/* Refused on one address, timed out on the other: refused is the more
 * telling error, and both attempts are listed. */
START_TEST(he_refused_beats_timeout)
{
    require_netns();
    if (!need_hosts("he_refused_beats_timeout"))
        return;
    int port = 0;
    int bh = th_raw_listen("::1", 1, &port);
    int fds[32];
    int n = th_fill_backlog("::1", port, fds, 32);
    int h4 = hold_refused("127.0.0.1", port);
    ck_assert_int_ge(h4, 0);
    const int timeout = 400;
    tcpkit_conn *c = (tcpkit_conn *)&c;
    int64_t el;
    char m[1024];
    tcpkit_err e = connect_dual(port, timeout, 50, &c, &el, m, sizeof m);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(bh);
    close(h4);
    ck_assert_msg(e == TCPKIT_EREFUSED, "%s (%s)", tcpkit_strerror(e), m);
    ck_assert_ptr_null(c);
    ck_assert_msg(el < timeout + 1500 * th_time_scale(), "took %lld ms", (long long)el);
    assert_both_attempts_listed(m, port);
}
END_TEST

/* Both addresses black-holed: the connect timeout bounds the whole race. */
START_TEST(he_timeout_bounds_whole_race)
{
    require_netns();
    if (!need_hosts("he_timeout_bounds_whole_race"))
        return;
    int port = 0;
    int bh6 = th_raw_listen("::1", 1, &port);
    int bh4 = th_raw_listen_port("127.0.0.1", port, 1);
    ck_assert_int_ge(bh4, 0);
    int fds[64];
    int n = th_fill_backlog("::1", port, fds, 32);
    n += th_fill_backlog("127.0.0.1", port, fds + n, 32);
    const int timeout = 400;
    tcpkit_conn *c = (tcpkit_conn *)&c;
    int64_t el;
    char m[1024];
    tcpkit_err e = connect_dual(port, timeout, 100, &c, &el, m, sizeof m);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(bh4);
    close(bh6);
    ck_assert_msg(e == TCPKIT_ETIMEDOUT, "%s (%s)", tcpkit_strerror(e), m);
    ck_assert_ptr_null(c);
    ck_assert_msg(el >= timeout - 5, "gave up after %lld ms, timeout %d", (long long)el, timeout);
    ck_assert_msg(el < timeout + 1500 * th_time_scale(), "took %lld ms", (long long)el);
    assert_both_attempts_listed(m, port);
}
END_TEST

/* Three addresses: ::1 black-holed, 127.0.0.1 refused, 127.0.0.2 listening.
 * The refusal of the second attempt comes while the first still hangs; the
 * third must start at once (RFC 8305), not after another fallback delay, so
 * the race ends about one delay in, not two. */
START_TEST(he_failure_while_pending_starts_next_at_once)
{
    require_netns();
    if (!need_hosts("he_failure_while_pending_starts_next_at_once"))
        return;
    int port = 0;
    int bh = th_raw_listen("::1", 1, &port);
    int fds[32];
    int n = th_fill_backlog("::1", port, fds, 32);
    int hold = hold_refused("127.0.0.1", port);
    ck_assert_int_ge(hold, 0);
    tcpkit_listener *l = NULL;
    char ps[16], peer[40], m[1024];
    snprintf(ps, sizeof ps, "%d", port);
    ck_assert_int_eq(tcpkit_listen(&l, "127.0.0.2", ps, NULL), TCPKIT_OK);

    const int delay = 1000;
    tcpkit_opts *o = opts_with(10000 * th_time_scale(), delay);
    tcpkit_conn *c = NULL;
    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_connect(&c, "tk-three", ps, o);
    int64_t el = th_now_ms() - t0;
    snprintf(m, sizeof m, "%s", tcpkit_last_error());
    tcpkit_opts_free(o);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(bh);
    close(hold);
    ck_assert_msg(e == TCPKIT_OK, "%s (%s)", tcpkit_strerror(e), m);
    fprintf(stderr, "three-address race connected after %lld ms (fallback %d ms)\n", (long long)el,
            delay);
    ck_assert_msg(el >= delay - 5, "connected after %lld ms, before the fallback delay",
                  (long long)el);
    ck_assert_msg(el < delay + 200 * th_time_scale(),
                  "took %lld ms: the third attempt waited for a second fallback delay",
                  (long long)el);
    snprintf(peer, sizeof peer, "127.0.0.2:%d", port);
    accept_one_and_check_peer(l, c, peer);
    tcpkit_listener_close(l);
}
END_TEST

/* The checks that need the private /etc/hosts (core-resolve-names). */
static Suite *names_suite(void)
{
    Suite *s = suite_create("core-resolve-names");
    TCase *tc = th_tcase("names", 20);
    tcase_add_test(tc, localhost_both_families);
    tcase_add_test(tc, localhost_reaches_ipv6_listener);
    tcase_add_test(tc, family_restriction_by_name);
    tcase_add_test(tc, listen_on_name_prefers_ipv4);
    suite_add_tcase(s, tc);

    tc = th_tcase("happy-eyeballs", 20);
    tcase_add_test(tc, he_refused_then_next_at_once);
    tcase_add_test(tc, he_blackhole_then_fallback);
    tcase_add_test(tc, he_all_refused_lists_every_attempt);
    tcase_add_test(tc, he_refused_beats_timeout);
    tcase_add_test(tc, he_timeout_bounds_whole_race);
    tcase_add_test(tc, he_failure_while_pending_starts_next_at_once);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *lookup_suite(void)
{
    Suite *s = suite_create("core-resolve");
    TCase *tc = th_tcase("lookup", 20);
    tcase_add_test(tc, unresolvable_name);
    tcase_add_test(tc, unknown_service);
    tcase_add_test(tc, known_service_name);
    tcase_add_test(tc, excluded_family_literal);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    bool names = argc > 1 && strcmp(argv[1], "names") == 0;
    /* Before any thread exists (unshare of a user namespace needs that). */
    if (!th_enter_private_netns()) {
        fprintf(stderr, "SKIP: cannot create a private network namespace\n");
        return TH_SKIPPED;
    }
    if (!names)
        return th_run_suite(lookup_suite());
    hosts_overridden = override_hosts();
    if (!hosts_overridden || !th_have_ipv6()) {
        fprintf(stderr, "SKIP: %s\n",
                hosts_overridden ? "no IPv6 loopback" : "cannot replace /etc/hosts privately");
        return TH_SKIPPED;
    }
    return th_run_suite(names_suite());
}
