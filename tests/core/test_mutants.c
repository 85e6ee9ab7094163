/* SPDX-License-Identifier: MIT */
/* Tests that kill mutants (issue 14 item 4): each was a one-line change to
 * lib/ that left every other test green. The comment above each test
 * names the mutation it catches; each was checked by applying it to a
 * scratch copy of lib/ and watching the test fail.
 *
 * main() moves the process into a private network namespace (loopback
 * only, nothing leaves the machine), adds the loopback addresses some
 * tests need (fe80::1, fd00::1, fd00::2 on lo) and, in a private mount
 * namespace, an /etc/hosts naming them. Tests that need those skip where
 * namespaces or `ip` are unavailable.
 */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static bool addrs_added;      /* fe80::1, fd00::1, fd00::2 on lo */
static bool hosts_overridden; /* tk-four in /etc/hosts */

static const char hosts_text[] = "127.0.0.1 localhost\n"
                                 "fd00::1 tk-four\n"
                                 "fd00::2 tk-four\n"
                                 "127.0.0.1 tk-four\n"
                                 "127.0.0.2 tk-four\n";

static bool override_hosts(void)
{
    return th_enter_private_mountns() && th_replace_file("/etc/hosts", hosts_text);
}

static bool add_addresses(void)
{
    /* nodad: usable at once, no duplicate address detection to wait for. */
    return system("ip -6 addr add fe80::1/64 dev lo nodad 2>/dev/null && "
                  "ip -6 addr add fd00::1/128 dev lo nodad && "
                  "ip -6 addr add fd00::2/128 dev lo nodad") == 0;
}

static void require_netns(void)
{
    ck_assert_msg(th_in_private_netns(), "not in the private network namespace");
}

/* ---- listen backlog ---- */

/* Mutation: listen(fd, SOMAXCONN) instead of listen(fd, o->backlog) in
 * lib/listen.c. With backlog 1 the kernel queues 2 connections and drops
 * further SYNs; with SOMAXCONN th_fill_backlog never sees a drop and fails
 * the test. */
START_TEST(backlog_option_applies)
{
    tcpkit_opts *o = NULL;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_backlog(o, 1), TCPKIT_OK);
    tcpkit_listener *l = th_listen_opts("127.0.0.1", o);
    tcpkit_opts_free(o);
    int fds[64];
    int n = th_fill_backlog("127.0.0.1", tcpkit_listener_port(l), fds, 64);
    ck_assert_msg(n <= 4, "backlog 1 queued %d connections", n - 1);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    tcpkit_listener_close(l);
}
END_TEST

/* ---- send_all's timeout bounds the whole call ---- */

struct slow_reader {
    int stop[2];      /* the test writes stop[1] to end the reader */
    int64_t lifetime; /* ms the reader runs at most */
};

/* Drains whatever arrived every 100 ms: every drain lets a blocked sender
 * make progress and wait again. */
static void slow_read(th_peer *p)
{
    struct slow_reader *r = p->arg;
    static char buf[1 << 16];
    int64_t end = th_now_ms() + r->lifetime;
    struct pollfd pf = {.fd = r->stop[0], .events = POLLIN};
    while (th_now_ms() < end && poll(&pf, 1, 100) == 0) {
        ssize_t n, got = 0;
        while ((n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
            got += n;
        p->result += got > 0; /* drains that freed room */
    }
}

/* Mutation: send_all's deadline made anew before every wait (the
 * tk_deadline_make moved into the loop, in lib/io.c / lib/send.c). Then a
 * reader that keeps taking a little keeps a 1 s send_all alive as long as
 * it reads (here 3 s and more); the whole call must end at about 1 s. */
START_TEST(send_all_timeout_bounds_whole_call)
{
    tcpkit_conn *c;
    th_peer p = {0};
    th_pair_raw(&c, &p.fd);
    int small = 4096;
    setsockopt(tcpkit_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct slow_reader r;
    ck_assert_int_eq(pipe2(r.stop, O_CLOEXEC), 0);
    int64_t bound = 1000 + 1500LL * th_time_scale();
    r.lifetime = bound + 2000;
    p.arg = &r;
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 1000), TCPKIT_OK);
    size_t len = 16u << 20, sent = 0;
    char *data = calloc(1, len);
    ck_assert_ptr_nonnull(data);
    th_peer_start(&p, slow_read);

    int64_t t0 = th_now_ms();
    tcpkit_err e = tcpkit_send_all(c, data, len, &sent);
    int64_t took = th_now_ms() - t0;
    ck_assert_int_eq(write(r.stop[1], "x", 1), 1);
    th_peer_join(&p);
    free(data);
    tcpkit_close(c);
    close(r.stop[0]);
    close(r.stop[1]);
    ck_assert_msg(e == TCPKIT_ETIMEDOUT, "send_all: %s after %zu bytes", tcpkit_strerror(e), sent);
    ck_assert_msg(took >= 990 && took <= bound, "a 1000 ms send_all took %lld ms", (long long)took);
    /* The reader made room several times: the sender waited again and
     * again, which is what a restarted deadline would extend. */
    ck_assert_msg(p.result >= 3, "only %lld drains during send_all", (long long)p.result);
}
END_TEST

/* ---- recv_line's read-ahead stays within cap ---- */

static int bytes_queued(int fd)
{
    int n = -1;
    ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* Mutation: the read-ahead doubling not clamped to the caller's cap (the
 * `if (want > ceiling) want = ceiling;` line in rbuf_reserve removed). With
 * cap 10001 the buffer must stop at 10000 bytes, so no more than that is
 * taken from the socket; the mutant grows to 16384 and reads 16384. */
START_TEST(recv_line_readahead_within_cap)
{
    tcpkit_conn *c;
    int s;
    th_pair_raw(&c, &s);
    enum { TOTAL = 20000, CAP = 10001 };
    static char out[TOTAL], line[CAP];
    memset(out, 'x', sizeof out);
    ck_assert_uint_eq(th_raw_send_all(s, out, sizeof out), sizeof out);
    /* Let everything arrive first, so recv() could take all of it. */
    int fd = tcpkit_conn_fd(c);
    for (int i = 0; i < 100 && bytes_queued(fd) < TOTAL; i++) {
        struct pollfd pf = {.fd = s, .events = 0};
        poll(&pf, 1, 10); /* no event to wait for: bounded re-check */
    }
    ck_assert_int_eq(bytes_queued(fd), TOTAL);
    size_t len = 0;
    ck_assert_int_eq(tcpkit_recv_line(c, line, CAP, &len), TCPKIT_ETOOBIG);
    ck_assert_uint_eq(len, CAP - 1);
    int left = bytes_queued(fd);
    ck_assert_msg(left >= TOTAL - CAP, "recv_line (cap %d) took %d bytes from the socket", CAP,
                  TOTAL - left);
    tcpkit_close(c);
    close(s);
}
END_TEST

/* ---- the zone of link-local addresses ---- */

/* Mutation: tk_format_addr printing IPv6 addresses with inet_ntop only
 * (the getnameinfo call that adds "%lo" dropped, lib/sockaddr.c). A
 * link-local address without its zone cannot be connected to. */
START_TEST(link_local_addresses_keep_zone)
{
    require_netns();
    if (!addrs_added) {
        th_skip("link_local_addresses_keep_zone: no fe80::1 on lo");
        return;
    }
    tcpkit_listener *l = th_listen_loopback("fe80::1%lo");
    char want[TCPKIT_ADDRSTRLEN], got[TCPKIT_ADDRSTRLEN], port[16];
    snprintf(want, sizeof want, "[fe80::1%%lo]:%d", tcpkit_listener_port(l));
    ck_assert_int_eq(tcpkit_listener_addr(l, got, sizeof got), TCPKIT_OK);
    ck_assert_str_eq(got, want);

    tcpkit_conn *c = NULL, *a = NULL;
    tcpkit_err e = tcpkit_connect(&c, "fe80::1%lo", th_port_str(l, port, sizeof port), NULL);
    ck_assert_msg(e == TCPKIT_OK, "connect: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_int_eq(tcpkit_conn_peer(c, got, sizeof got), TCPKIT_OK);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(tcpkit_accept(l, &a, 5000), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_local(a, got, sizeof got), TCPKIT_OK);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(tcpkit_conn_peer(a, got, sizeof got), TCPKIT_OK);
    ck_assert_msg(strncmp(got, "[fe80::1%lo]:", 13) == 0, "peer %s", got);
    tcpkit_close(a);
    tcpkit_close(c);
    tcpkit_listener_close(l);
}
END_TEST

/* ---- tcpkit_listener_shutdown keeps errno ---- */

/* The listener's shutdown eventfd: the one descriptor of kind eventfd
 * among those above `from`. */
static int find_eventfd(int from)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int found = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0 || atoi(de->d_name) < from)
            continue;
        link[n] = '\0';
        if (strcmp(link, "anon_inode:[eventfd]") == 0)
            found = atoi(de->d_name);
    }
    closedir(d);
    return found;
}

/* Mutation: tcpkit_listener_shutdown without the `errno = saved;` line
 * (lib/listen.c). It is called from signal handlers, where a changed errno
 * corrupts the interrupted code's error. Its write(2) fails here (the
 * eventfd's counter is at its maximum, so the write would block: EAGAIN),
 * and errno must still be what it was. */
START_TEST(listener_shutdown_keeps_errno)
{
    int first = dup(0);
    close(first);
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    int ev = find_eventfd(first);
    ck_assert_msg(ev >= 0, "the listener has no eventfd");
    uint64_t max = UINT64_C(0xfffffffffffffffe);
    ck_assert_int_eq(write(ev, &max, sizeof max), (ssize_t)sizeof max);
    errno = ERANGE;
    tcpkit_listener_shutdown(l);
    int e = errno;
    ck_assert_msg(e == ERANGE, "errno changed to %d (%s)", e, strerror(e));
    /* And the shutdown still took effect. */
    tcpkit_conn *c = NULL;
    ck_assert_int_eq(tcpkit_accept(l, &c, 1000), TCPKIT_ESHUTDOWN);
    tcpkit_listener_close(l);
}
END_TEST

/* ---- Happy Eyeballs interleaves families ---- */

/* The attempts of a failed connect, in order, from the message
 * "connect tk-four:P: A port P: why; B port P: why; ...": 4 or 6 per
 * attempt's family, 0 when unparsable. */
static int attempt_families(const char *m, int *fam, int max)
{
    int n = 0;
    const char *p = strstr(m, ": ");
    while (p && n < max) {
        p += 2;
        const char *sp = strchr(p, ' ');
        if (!sp)
            break;
        fam[n++] = memchr(p, ':', (size_t)(sp - p)) ? 6 : 4;
        p = strstr(sp, "; ");
    }
    return n;
}

/* Mutation: interleave() not called, or returning at once (lib/connect.c):
 * the attempts then follow resolver order, which sorts both IPv4
 * addresses before both ULA IPv6 ones (RFC 6724 precedence). RFC 8305
 * wants the families alternated: 4 6 4 6 (or 6 4 6 4). */
START_TEST(happy_eyeballs_alternates_families)
{
    require_netns();
    if (!addrs_added || !hosts_overridden) {
        th_skip("happy_eyeballs_alternates_families: no fd00:: addresses or private "
                "/etc/hosts");
        return;
    }
    /* A port with nothing on it anywhere: every attempt is refused. */
    int port = 0;
    int hold = th_raw_listen("127.0.0.1", 1, &port);
    close(hold);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);

    /* The resolver's own order is not already alternating (else the test
     * could not fail). */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    ck_assert_int_eq(getaddrinfo("tk-four", ps, &hints, &res), 0);
    int order[8], k = 0;
    for (struct addrinfo *ai = res; ai && k < 8; ai = ai->ai_next)
        order[k++] = ai->ai_family == AF_INET6 ? 6 : 4;
    freeaddrinfo(res);
    ck_assert_int_eq(k, 4);
    ck_assert_msg(order[0] == order[1] || order[1] == order[2] || order[2] == order[3],
                  "resolver order already alternates");

    tcpkit_conn *c = NULL;
    tcpkit_err e = tcpkit_connect(&c, "tk-four", ps, NULL);
    ck_assert_msg(e == TCPKIT_EREFUSED, "connect: %s (%s)", tcpkit_strerror(e),
                  tcpkit_last_error());
    int fam[8];
    int n = attempt_families(tcpkit_last_error(), fam, 8);
    ck_assert_msg(n == 4, "%d attempts in: %s", n, tcpkit_last_error());
    for (int i = 1; i < n; i++)
        ck_assert_msg(fam[i] != fam[i - 1], "attempt %d repeats the family: %s", i + 1,
                      tcpkit_last_error());
}
END_TEST

int main(void)
{
    /* Before any thread exists (unshare of a user namespace needs that). */
    if (!th_enter_private_netns()) {
        fprintf(stderr, "SKIP core-mutants: cannot create a private network namespace\n");
        return TH_SKIPPED;
    }
    addrs_added = add_addresses();
    hosts_overridden = override_hosts();
    if (!addrs_added || !hosts_overridden)
        fprintf(stderr, "note: addresses %s, /etc/hosts %s: some tests skip\n",
                addrs_added ? "added" : "not added", hosts_overridden ? "private" : "not private");

    Suite *s = suite_create("core-mutants");
    TCase *tc = th_tcase("mutants", 30);
    tcase_add_test(tc, backlog_option_applies);
    tcase_add_test(tc, send_all_timeout_bounds_whole_call);
    tcase_add_test(tc, recv_line_readahead_within_cap);
    tcase_add_test(tc, link_local_addresses_keep_zone);
    tcase_add_test(tc, listener_shutdown_keeps_errno);
    tcase_add_test(tc, happy_eyeballs_alternates_families);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
