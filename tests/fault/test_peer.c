/* SPDX-License-Identifier: MIT */
/* Real peers misbehaving on loopback: resets mid-transfer, a peer that
 * never reads, clients that reset before accept, slow readers, oversize
 * senders, slow-loris clients, descriptor limits, busy ports, TIME_WAIT
 * and privileged ports. SIGPIPE stays at its default disposition: a send
 * without MSG_NOSIGNAL kills the test. */
#include "helpers.h"
#include "seam.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEED 0xbad9ee7

/* ---- resets ---- */

/* Reads 64 KiB, then resets. */
static void read_then_reset(th_peer *p)
{
    char *buf = malloc(65536);
    p->result = (int64_t)th_raw_recv_all(p->fd, buf, 65536);
    free(buf);
    th_raw_abort(p->fd);
    p->fd = -1;
}

START_TEST(peer_resets_during_send_all)
{
    tcpkit_conn *c;
    th_peer peer = {.fd = -1};
    th_pair_raw(&c, &peer.fd);
    th_peer_start(&peer, read_then_reset);
    size_t len = 64u << 20;
    char *data = calloc(1, len);
    ck_assert_ptr_nonnull(data);
    size_t sent = 0;
    tcpkit_err err = tcpkit_send_all(c, data, len, &sent);
    th_peer_join(&peer);
    ck_assert_msg(err == TCPKIT_ERESET, "send_all: %s (%s)", tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert(tcpkit_last_errno() == ECONNRESET || tcpkit_last_errno() == EPIPE);
    ck_assert_int_eq(peer.result, 65536);
    ck_assert_uint_ge(sent, 65536);
    ck_assert_uint_lt(sent, len);
    free(data);
    tcpkit_close(c);
}
END_TEST

/* Sends p->result bytes of pattern, then resets. */
static void send_then_reset(th_peer *p)
{
    size_t len = (size_t)p->result;
    char *data = th_pattern(len, SEED);
    p->result = (int64_t)th_raw_send_all(p->fd, data, len);
    free(data);
    th_raw_abort(p->fd);
    p->fd = -1;
}

START_TEST(peer_resets_during_receive)
{
    tcpkit_conn *c;
    th_peer peer = {.fd = -1, .result = 200000};
    th_pair_raw(&c, &peer.fd);
    th_peer_start(&peer, send_then_reset);
    th_peer_join(&peer);
    void *data;
    size_t len;
    tcpkit_err err = tcpkit_recv_all(c, &data, &len, 1u << 20);
    ck_assert_msg(err == TCPKIT_ERESET, "recv_all: %s (%s)", tcpkit_strerror(err),
                  tcpkit_last_error());
    /* Whatever arrived before the reset is handed back, in order. */
    ck_assert_uint_le(len, (size_t)peer.result);
    char *want = th_pattern(200000, SEED);
    ck_assert(len == 0 || memcmp(data, want, len) == 0);
    free(want);
    tcpkit_free(data);
    tcpkit_close(c);
}
END_TEST

/* The peer closes without reading while we send 64 MiB: TCPKIT_ERESET,
 * and the process is still alive (SIGPIPE at its default). */
START_TEST(peer_closes_before_reading)
{
    tcpkit_conn *c;
    int fd;
    th_pair_raw(&c, &fd);
    close(fd);
    size_t len = 64u << 20;
    char *data = calloc(1, len);
    ck_assert_ptr_nonnull(data);
    size_t sent = 0;
    tcpkit_err err = tcpkit_send_all(c, data, len, &sent);
    ck_assert_msg(err == TCPKIT_ERESET, "send_all: %s (%s)", tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert_uint_lt(sent, len);
    /* A second attempt fails the same way, still without a signal. */
    ck_assert_int_eq(tcpkit_send_all(c, data, 1000, &sent), TCPKIT_ERESET);
    ck_assert_uint_eq(sent, 0);
    free(data);
    tcpkit_close(c);
}
END_TEST

/* A client connects and resets before it is accepted; a second one
 * connects. Linux still hands out the dead connection, so accept may
 * return it (its first receive says TCPKIT_ERESET); the next accept must
 * return the live client, and the listener keeps working. */
START_TEST(client_resets_before_accept)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    int port = tcpkit_listener_port(l);
    int dead = th_raw_connect("127.0.0.1", port);
    th_raw_abort(dead);
    int live = th_raw_connect("127.0.0.1", port);
    ck_assert_uint_eq(th_raw_send_all(live, "L", 1), 1);
    /* The reset client is skipped inside: the first accept is the live one. */
    tcpkit_conn *c;
    tcpkit_err err = tcpkit_accept(l, &c, 5000);
    ck_assert_msg(err == TCPKIT_OK, "accept: %s (%s)", tcpkit_strerror(err), tcpkit_last_error());
    char b = 0;
    size_t n;
    err = tcpkit_recv_exact(c, &b, 1, &n);
    ck_assert_msg(err == TCPKIT_OK && b == 'L', "first accepted client gave %s, not the live one",
                  tcpkit_strerror(err));
    tcpkit_close(c);
    close(live);
    tcpkit_listener_close(l);
}
END_TEST

/* ---- slow and stubborn readers ---- */

/* Reads 1 KiB per call and pauses 2 ms every 32 KiB; counts and hashes. */
static void slow_reader(th_peer *p)
{
    int small = 65536; /* keeps the sender blocking often */
    setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    char buf[1024];
    uint64_t h = TH_FNV_INIT;
    int64_t total = 0;
    for (;;) {
        ssize_t n = recv(p->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        h = th_fnv(h, buf, (size_t)n);
        if ((total + n) / 32768 != total / 32768)
            th_pause_ms(2);
        total += n;
    }
    p->result = total;
    p->sum = h;
}

START_TEST(slow_reader_gets_everything)
{
    size_t len = th_bulk_size(16u << 20);
    tcpkit_conn *c;
    th_peer peer = {.fd = -1};
    th_pair_raw(&c, &peer.fd);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 60000), TCPKIT_OK);
    th_peer_start(&peer, slow_reader);
    char *data = th_pattern(len, SEED);
    size_t sent = 0;
    tcpkit_err err = tcpkit_send_all(c, data, len, &sent);
    tcpkit_close(c);
    th_peer_join(&peer);
    ck_assert_msg(err == TCPKIT_OK, "send_all: %s (%s)", tcpkit_strerror(err), tcpkit_last_error());
    ck_assert_uint_eq(sent, len);
    ck_assert_int_eq(peer.result, (int64_t)len);
    ck_assert(peer.sum == th_fnv(TH_FNV_INIT, data, len));
    free(data);
}
END_TEST

/* Reads 64 KiB, waits until the test says go (a byte on p->arg's fd),
 * then reads to EOF. */
static void stalling_reader(th_peer *p)
{
    int go = *(int *)p->arg;
    char *buf = malloc(1 << 16);
    uint64_t h = TH_FNV_INIT;
    int64_t total = (int64_t)th_raw_recv_all(p->fd, buf, 1 << 16);
    h = th_fnv(h, buf, (size_t)total);
    char b;
    if (read(go, &b, 1) != 1)
        th_peer_fail(p, "no go signal");
    for (;;) {
        ssize_t n = recv(p->fd, buf, 1 << 16, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        h = th_fnv(h, buf, (size_t)n);
        total += n;
    }
    free(buf);
    p->result = total;
    p->sum = h;
}

/* send_all times out against a reader that stalls: *sent is exactly what
 * the reader eventually receives. */
START_TEST(send_all_timeout_reports_exact_progress)
{
    size_t len = 64u << 20;
    int go[2];
    ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
    tcpkit_conn *c;
    th_peer peer = {.fd = -1, .arg = &go[0]};
    th_pair_raw(&c, &peer.fd);
    th_peer_start(&peer, stalling_reader);
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, 300), TCPKIT_OK);
    char *data = th_pattern(len, SEED);
    size_t sent = 0;
    tcpkit_err err = tcpkit_send_all(c, data, len, &sent);
    tcpkit_close(c);
    ck_assert_int_eq(write(go[1], "g", 1), 1);
    th_peer_join(&peer);
    close(go[0]);
    close(go[1]);
    ck_assert_msg(err == TCPKIT_ETIMEDOUT, "send_all: %s (%s)", tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert_uint_gt(sent, 0);
    ck_assert_uint_lt(sent, len);
    ck_assert_int_eq(peer.result, (int64_t)sent);
    ck_assert(peer.sum == th_fnv(TH_FNV_INIT, data, sent));
    free(data);
}
END_TEST

/* ---- oversize and slow senders ---- */

/* Sends pattern until the connection breaks. */
static void flood(th_peer *p)
{
    size_t chunk = 65536;
    char *data = th_pattern(chunk, SEED);
    size_t total = 0;
    while (total < (64u << 20) && th_raw_send_all(p->fd, data, chunk) == chunk)
        total += chunk;
    free(data);
}

START_TEST(recv_all_stops_at_its_cap)
{
    const size_t max = 256 * 1024;
    tcpkit_conn *c;
    th_peer peer = {.fd = -1};
    th_pair_raw(&c, &peer.fd);
    th_peer_start(&peer, flood);
    void *data;
    size_t len;
    tf_reset();
    tcpkit_err err = tcpkit_recv_all(c, &data, &len, max);
    size_t biggest = tf_max_alloc();
    tcpkit_close(c);
    th_peer_join(&peer);
    ck_assert_msg(err == TCPKIT_ETOOBIG, "recv_all: %s", tcpkit_strerror(err));
    ck_assert_uint_eq(len, max);
    /* Memory stays bounded by the cap, not by what the peer sends. */
    ck_assert_msg(biggest <= max + 64, "allocated %zu bytes for a %zu-byte cap", biggest, max);
    char *want = th_pattern(65536, SEED);
    for (size_t off = 0; off < len; off += 65536)
        ck_assert(memcmp((char *)data + off, want, 65536) == 0);
    ck_assert_int_eq(((char *)data)[len], '\0');
    free(want);
    tcpkit_free(data);
}
END_TEST

/* Slow-loris: a client trickles one byte every 50 ms and never ends its
 * line. The server's 300 ms I/O timeout bounds the whole recv_line, so
 * the trickle cannot keep the handler busy; a normal client is served
 * meanwhile. */
struct loris_server {
    tcpkit_listener *l;
    atomic_int timeouts, served;
    atomic_llong handler_ms;
};

static void loris_handler(tcpkit_conn *c, void *arg)
{
    struct loris_server *s = arg;
    char line[256];
    size_t n;
    int64_t t0 = th_now_ms();
    tcpkit_err err = tcpkit_recv_line(c, line, sizeof line, &n);
    if (err == TCPKIT_ETIMEDOUT) {
        atomic_store(&s->handler_ms, th_now_ms() - t0);
        atomic_fetch_add(&s->timeouts, 1);
        return;
    }
    if (err == TCPKIT_OK && tcpkit_send_all(c, line, n, NULL) == TCPKIT_OK)
        atomic_fetch_add(&s->served, 1);
}

static void *loris_serve(void *arg)
{
    struct loris_server *s = arg;
    tcpkit_serve(s->l, loris_handler, s, 4);
    return NULL;
}

START_TEST(slow_loris_is_cut_off)
{
    struct loris_server s = {0};
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_io_timeout(o, 300), TCPKIT_OK);
    s.l = th_listen_opts("127.0.0.1", o);
    tcpkit_opts_free(o);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, loris_serve, &s), 0);
    int port = tcpkit_listener_port(s.l);

    int loris = th_raw_connect("127.0.0.1", port);
    int64_t t0 = th_now_ms();
    bool closed = false;
    int bytes = 0;
    /* Trickle until the server hangs up (or 5 s pass). */
    while (!closed && th_now_ms() - t0 < 5000 * th_time_scale()) {
        if (send(loris, "x", 1, MSG_NOSIGNAL) != 1)
            break;
        bytes++;
        struct pollfd p = {.fd = loris, .events = POLLIN};
        if (poll(&p, 1, 50) > 0)
            closed = true; /* EOF or reset: the server gave up on us */
    }
    int64_t cut_after = th_now_ms() - t0;

    int normal = th_raw_connect("127.0.0.1", port);
    ck_assert_uint_eq(th_raw_send_all(normal, "hi\n", 3), 3);
    char buf[4];
    ck_assert_uint_eq(th_raw_recv_all(normal, buf, 3), 3);
    close(normal);
    close(loris);
    tcpkit_listener_shutdown(s.l);
    pthread_join(t, NULL);
    tcpkit_listener_close(s.l);

    ck_assert_int_eq(atomic_load(&s.timeouts), 1);
    ck_assert_int_eq(atomic_load(&s.served), 1);
    ck_assert_int_ge(bytes, 3);
    long long hm = atomic_load(&s.handler_ms);
    ck_assert_msg(hm >= 295 && hm <= 300 + 250 * th_time_scale(),
                  "recv_line took %lld ms for a 300 ms timeout while bytes trickled", hm);
    ck_assert_int_le(cut_after, 1000 * th_time_scale());
}
END_TEST

/* ---- descriptor limits, ports ---- */

/* In a forked child (the limit must not outlive the test): RLIMIT_NOFILE
 * lowered and every descriptor used up. Exit code = first failed step. */
static int emfile_child(void)
{
    tcpkit_listener *l = NULL;
    if (tcpkit_listen(&l, "127.0.0.1", "0", NULL) != TCPKIT_OK)
        return 10;
    char port[16];
    snprintf(port, sizeof port, "%d", tcpkit_listener_port(l));
    int waiting = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(tcpkit_listener_fd(l), (struct sockaddr *)&ss, &sl);
    if (waiting < 0 || connect(waiting, (struct sockaddr *)&ss, sl) != 0)
        return 11;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 12;
    rl.rlim_cur = (rlim_t)th_count_fds() + 16;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 12;
    int first = -1, last = -1;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        first = first < 0 ? fd : first;
        last = fd;
    }
    if (errno != EMFILE || last < 0)
        return 13;
    tcpkit_conn *c = (tcpkit_conn *)1;
    if (tcpkit_connect(&c, "127.0.0.1", port, NULL) != TCPKIT_EMFILE || c != NULL)
        return 14;
    tcpkit_listener *l2 = (tcpkit_listener *)1;
    if (tcpkit_listen(&l2, "127.0.0.1", "0", NULL) != TCPKIT_EMFILE || l2 != NULL)
        return 15;
    int64_t t0 = th_now_ms();
    if (tcpkit_accept(l, &c, 3000) != TCPKIT_EMFILE || c != NULL)
        return 16;
    if (th_now_ms() - t0 > 500)
        return 17; /* waited instead of reporting at once */
    /* Valgrind enforces the limit itself, after the real accept4: it
     * closes the accepted descriptor, so the waiting client is gone. */
    if (th_under_valgrind())
        return 0;
    /* Free a few; the waiting client can now be accepted. */
    for (int fd = last; fd >= first && fd > last - 4; fd--)
        close(fd);
    tcpkit_err err = tcpkit_accept(l, &c, 3000);
    if (err != TCPKIT_OK) {
        fprintf(stderr, "accept after freeing descriptors: %s\n", tcpkit_last_error());
        return 18; /* the waiting client is still there */
    }
    tcpkit_close(c);
    return 0;
}

START_TEST(rlimit_nofile_gives_emfile)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(emfile_child());
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed at step %d",
                  WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}
END_TEST

START_TEST(second_listener_on_busy_port)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_listener *l2 = (tcpkit_listener *)1;
    tcpkit_err err = tcpkit_listen(&l2, "127.0.0.1", port, NULL);
    ck_assert_msg(err == TCPKIT_EADDRINUSE, "listen on a busy port: %s", tcpkit_strerror(err));
    ck_assert_ptr_null(l2);
    ck_assert_int_eq(tcpkit_last_errno(), EADDRINUSE);
    tcpkit_listener_close(l);
}
END_TEST

/* The server closes first, so its end of the connection sits in
 * TIME_WAIT; a restarted listener on the same port must still bind. */
START_TEST(restart_with_time_wait)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_conn *c, *s;
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", port, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_accept(l, &s, 5000), TCPKIT_OK);
    tcpkit_close(s); /* active close: TIME_WAIT on the server's port */
    char b;
    size_t n;
    ck_assert_int_eq(tcpkit_recv(c, &b, 1, &n), TCPKIT_EOF);
    tcpkit_close(c);
    tcpkit_listener_close(l);

    tcpkit_listener *again = NULL;
    tcpkit_err err = tcpkit_listen(&again, "127.0.0.1", port, NULL);
    ck_assert_msg(err == TCPKIT_OK, "restart on port %s: %s (%s)", port, tcpkit_strerror(err),
                  tcpkit_last_error());
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", port, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_accept(again, &s, 5000), TCPKIT_OK);
    tcpkit_close(c);
    tcpkit_close(s);
    tcpkit_listener_close(again);
}
END_TEST

/* A port below 1024 without privilege: TCPKIT_EACCES. As root, a forked
 * child drops to nobody first; skipped where that is impossible or where
 * the system lets anyone bind low ports. */
static int unprivileged_port_start(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
    int v = 1024;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 1024;
        fclose(f);
    }
    return v;
}

START_TEST(low_port_without_privilege)
{
    if (unprivileged_port_start() <= 1023) {
        th_skip("low_port_without_privilege: low ports are unprivileged here");
        return;
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
            _exit(77);
        tcpkit_listener *l = (tcpkit_listener *)1;
        tcpkit_err err = tcpkit_listen(&l, "127.0.0.1", "1023", NULL);
        _exit(err == TCPKIT_EACCES && l == NULL ? 0 : 10 + (int)err);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77) {
        th_skip("low_port_without_privilege: cannot drop privileges");
        return;
    }
    ck_assert_msg(WEXITSTATUS(st) == 0, "listen on port 1023 as nobody: %s",
                  tcpkit_strerror((tcpkit_err)(WEXITSTATUS(st) - 10)));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault-peer");
    TCase *tc = th_tcase("resets", 60);
    tcase_add_test(tc, peer_resets_during_send_all);
    tcase_add_test(tc, peer_resets_during_receive);
    tcase_add_test(tc, peer_closes_before_reading);
    tcase_add_test(tc, client_resets_before_accept);
    suite_add_tcase(s, tc);

    tc = th_tcase("slow", 90);
    tcase_add_test(tc, slow_reader_gets_everything);
    tcase_add_test(tc, send_all_timeout_reports_exact_progress);
    tcase_add_test(tc, recv_all_stops_at_its_cap);
    tcase_add_test(tc, slow_loris_is_cut_off);
    suite_add_tcase(s, tc);

    tc = th_tcase("limits", 30);
    tcase_add_test(tc, rlimit_nofile_gives_emfile);
    tcase_add_test(tc, second_listener_on_busy_port);
    tcase_add_test(tc, restart_with_time_wait);
    suite_add_tcase(s, tc);

    /* Its own case and meson test (fault-peer-privilege): it skips where
     * low ports are unprivileged, and that skip must not hide the rest. */
    tc = th_tcase("privilege", 30);
    tcase_set_tags(tc, "privilege");
    tcase_add_test(tc, low_port_without_privilege);
    suite_add_tcase(s, tc);
    return th_run_suite(s);
}
