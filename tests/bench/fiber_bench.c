/* SPDX-License-Identifier: MIT */
/* Fibers against the alternatives, interleaved in one run (see
 * doc/performance.md, "Fibers"):
 *   - echo ping-pong (64 bytes at 1, 50 and 500 connections, 16 KiB at 50)
 *     against tcpkit_serve_with fibers on 1 and 2 loop threads, tcpkit_serve
 *     threads, a hand-written edge-triggered epoll server and a libuv
 *     server, all driven by the same epoll client;
 *   - idle connections: server RSS per connection and a new client's echo
 *     latency while they are held (the holder is another process);
 *   - the cost of one fiber switch.
 * Servers run in child processes, killed after each measurement. */
#include "fiber.h"
#include "tcpkit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- the servers ---- */

enum server_kind { S_FIB1, S_FIB2, S_THREADS, S_EPOLL, S_LIBUV, S_COUNT };
static const char *const server_names[S_COUNT] = {"fibers-1", "fibers-2", "threads", "epoll",
                                                  "libuv"};

static void tk_echo(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char buf[16384];
    size_t n;
    while (tcpkit_recv(c, buf, sizeof buf, &n) == TCPKIT_OK)
        if (tcpkit_send_all(c, buf, n, NULL) != TCPKIT_OK)
            break;
}

static void serve_tk(int lfd_unused, enum server_kind k, int pfd)
{
    (void)lfd_unused;
    tcpkit_listener *l;
    tcpkit_opts *o;
    tcpkit_opts_new(&o);
    tcpkit_opts_set_backlog(o, 4096);
    if (tcpkit_listen(&l, "127.0.0.1", "0", o) != TCPKIT_OK)
        _exit(2);
    int port = tcpkit_listener_port(l);
    if (write(pfd, &port, sizeof port) != sizeof port)
        _exit(2);
    close(pfd);
    tcpkit_opts_set_serve_mode(o, k == S_THREADS ? TCPKIT_SERVE_THREADS : TCPKIT_SERVE_FIBERS);
    tcpkit_opts_set_serve_threads(o, k == S_FIB2 ? 2 : 1);
    tcpkit_opts_set_max_conns(o, 20000);
    tcpkit_serve_with(l, tk_echo, NULL, o);
    _exit(0);
}

/* The hand-written server: one thread, edge-triggered epoll, each
 * connection drained to EAGAIN through one shared buffer; only bytes the
 * kernel did not take are copied into the connection (until EPOLLOUT). */
struct econn {
    int fd;
    size_t out_len, out_off;
    char *out;
};

static char epoll_buf[16384];

/* Sends what is pending; false when some is still left. */
static bool epoll_flush(struct econn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        c->out_off += (size_t)w;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return true;
}

static void epoll_echo(struct econn *c, size_t n)
{
    ssize_t w = send(c->fd, epoll_buf, n, MSG_NOSIGNAL);
    size_t sent = w > 0 ? (size_t)w : 0;
    if (sent == n)
        return;
    c->out = malloc(n - sent);
    memcpy(c->out, epoll_buf + sent, n - sent);
    c->out_len = n - sent;
    c->out_off = 0;
}

static void epoll_readable(struct econn *c)
{
    for (;;) {
        if (c->out && !epoll_flush(c))
            return; /* wait for EPOLLOUT first */
        ssize_t r = recv(c->fd, epoll_buf, sizeof epoll_buf, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            close(c->fd);
            free(c->out);
            free(c);
            return;
        }
        if (r < 0)
            return;
        epoll_echo(c, (size_t)r);
    }
}

static void epoll_accept(int ep, int lfd)
{
    int fd;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        struct econn *c = calloc(1, sizeof *c);
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

static void serve_epoll(int lfd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct econn *c = evs[i].data.ptr;
            if (!c) {
                epoll_accept(ep, lfd);
                continue;
            }
            epoll_readable(c);
        }
    }
}

/* libuv: the usual echo, one write request (and copy) per read. */
struct uv_wreq {
    uv_write_t req;
    uv_buf_t buf;
};

static void uv_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(size);
    b->len = size;
}

static void uv_written(uv_write_t *req, int status)
{
    (void)status;
    struct uv_wreq *w = (struct uv_wreq *)req;
    free(w->buf.base);
    free(w);
}

static void uv_closed(uv_handle_t *h)
{
    free(h);
}

static void uv_readcb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n <= 0) {
        free(b->base);
        if (n < 0)
            uv_close((uv_handle_t *)s, uv_closed);
        return;
    }
    struct uv_wreq *w = malloc(sizeof *w);
    w->buf = uv_buf_init(b->base, (unsigned)n);
    uv_write(&w->req, s, &w->buf, 1, uv_written);
}

static void uv_conn(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        uv_tcp_nodelay(c, 1);
        uv_read_start((uv_stream_t *)c, uv_alloc, uv_readcb);
    } else {
        uv_close((uv_handle_t *)c, uv_closed);
    }
}

static void serve_libuv(int lfd)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    uv_tcp_open(&server, lfd);
    uv_listen((uv_stream_t *)&server, 4096, uv_conn);
    uv_run(loop, UV_RUN_DEFAULT);
}

static int raw_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("listen");
    *port = ntohs(a.sin_port);
    return fd;
}

struct child {
    pid_t pid;
    int port;
};

static struct child server_start(enum server_kind k)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        die("pipe");
    struct child ch = {.pid = fork()};
    if (ch.pid < 0)
        die("fork");
    if (ch.pid == 0) {
        close(pfd[0]);
        if (k == S_FIB1 || k == S_FIB2 || k == S_THREADS)
            serve_tk(-1, k, pfd[1]);
        int port, lfd = raw_listen(&port);
        if (write(pfd[1], &port, sizeof port) != sizeof port)
            _exit(2);
        close(pfd[1]);
        if (k == S_EPOLL)
            serve_epoll(lfd);
        else
            serve_libuv(lfd);
        _exit(0);
    }
    close(pfd[1]);
    if (read(pfd[0], &ch.port, sizeof ch.port) != sizeof ch.port)
        die("server child did not start");
    close(pfd[0]);
    return ch;
}

static long proc_kib(pid_t pid, const char *field)
{
    char path[64], line[256], key[32];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    snprintf(key, sizeof key, "%s: %%ld", field);
    long v = -1;
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, key, &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static void server_stop(struct child *ch)
{
    kill(ch->pid, SIGKILL);
    waitpid(ch->pid, NULL, 0);
}

/* ---- the client: one epoll thread, the same for every server ---- */

static int client_connect(int port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in a = loopback(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    set_nodelay(fd);
    if (nonblock)
        fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

struct pconn {
    int fd;
    size_t got;
};

static void pp_send(struct pconn *c, const char *msg, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(c->fd, msg + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN)
            die("send");
        if (w > 0)
            off += (size_t)w;
    }
}

/* Reads what is there; true when a whole echo has arrived. */
static bool pp_recv(struct pconn *c, char *buf, size_t len)
{
    for (;;) {
        ssize_t r = recv(c->fd, buf, len - c->got, 0);
        if (r == 0)
            die("server closed");
        if (r < 0)
            return false;
        c->got += (size_t)r;
        if (c->got == len) {
            c->got = 0;
            return true;
        }
    }
}

/* Each connection sends a message, waits for its echo, sends again; for
 * `secs` seconds after a short warm-up. Returns round trips per second. */
static double pingpong(int port, int nconns, size_t len, double secs)
{
    struct pconn *cs = calloc((size_t)nconns, sizeof *cs);
    char *msg = malloc(len), *buf = malloc(len);
    memset(msg, 'x', len);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = client_connect(port, true);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        pp_send(&cs[i], msg, len);
    }
    struct epoll_event evs[512];
    long done = 0;
    double t0 = now_s(), start = t0 + 0.2, end = start + secs;
    bool counting = false;
    for (double t = t0; t < end; t = now_s()) {
        if (!counting && t >= start) {
            counting = true;
            done = 0;
        }
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            struct pconn *c = evs[i].data.ptr;
            if (pp_recv(c, buf, len)) {
                done++;
                pp_send(c, msg, len);
            }
        }
    }
    for (int i = 0; i < nconns; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);
    free(msg);
    free(buf);
    return (double)done / secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A new client's 64-byte echo round trips: p50 and p99 in ms. */
static void latency(int port, int iters, double *p50, double *p99)
{
    int fd = client_connect(port, false);
    double *v = malloc((size_t)iters * sizeof *v);
    char msg[64] = {0}, buf[64];
    for (int i = 0; i < iters; i++) {
        double t = now_s();
        struct pconn c = {.fd = fd};
        pp_send(&c, msg, sizeof msg);
        while (!pp_recv(&c, buf, sizeof buf))
            ;
        v[i] = (now_s() - t) * 1e3;
    }
    qsort(v, (size_t)iters, sizeof *v, cmp_double);
    *p50 = v[iters / 2];
    *p99 = v[iters * 99 / 100];
    free(v);
    close(fd);
}

/* ---- idle connections ---- */

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2;
}

/* A child that holds n idle connections until killed; returns once they
 * are all connected. */
static pid_t hold_idle(int port, int n)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        for (int i = 0; i < n; i++)
            client_connect(port, false);
        char ok = 1;
        if (write(pfd[1], &ok, 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    close(pfd[1]);
    char ok;
    if (read(pfd[0], &ok, 1) != 1)
        die("idle holder failed");
    close(pfd[0]);
    return pid;
}

struct idle_result {
    double kib_per_conn, p50, p99;
    int conns;
};

static struct idle_result idle_run(enum server_kind k, int n, int iters)
{
    struct child ch = server_start(k);
    /* Warm up (threads, first stack, arenas), then measure from there. */
    double d1, d2;
    latency(ch.port, 200, &d1, &d2);
    long rss0 = proc_kib(ch.pid, "VmRSS");
    int fds0 = count_fds(ch.pid);
    pid_t holder = hold_idle(ch.port, n);
    /* The warm-up connection may still be open in fds0: allow one less. */
    double deadline = now_s() + 60;
    while (count_fds(ch.pid) < fds0 + n - 1 && now_s() < deadline)
        poll(NULL, 0, 20);
    struct idle_result r = {.conns = count_fds(ch.pid) - fds0};
    poll(NULL, 0, 200); /* let the server finish parking them */
    long rss1 = proc_kib(ch.pid, "VmRSS");
    r.kib_per_conn = (double)(rss1 - rss0) / n;
    latency(ch.port, iters, &r.p50, &r.p99);
    kill(holder, SIGKILL);
    waitpid(holder, NULL, 0);
    server_stop(&ch);
    return r;
}

/* ---- the run ---- */

struct scenario {
    const char *name;
    int conns;
    size_t len;
};
static const struct scenario scenarios[] = {
    {"64 B, 1 conn", 1, 64},
    {"64 B, 50 conns", 50, 64},
    {"64 B, 500 conns", 500, 64},
    {"16 KiB, 50 conns", 50, 16384},
};
#define N_SCEN (sizeof scenarios / sizeof scenarios[0])
#define MAX_ROUNDS 20

static double results[N_SCEN][S_COUNT][MAX_ROUNDS];
/* --server NAME: run only that server (for strace -c / perf). */
static int only_server = -1;
/* --scenario N: only that ping-pong scenario (0-3). */
static int only_scenario = -1;

static double median(const double *v, int n)
{
    double t[MAX_ROUNDS];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* One round: every scenario against every server, the server order
 * rotated from round to round so no server always runs first. */
static void pp_round(int round, double secs)
{
    for (size_t s = 0; s < N_SCEN; s++) {
        if (only_scenario >= 0 && (size_t)only_scenario != s)
            continue;
        printf("round %d, %-17s", round + 1, scenarios[s].name);
        for (int i = 0; i < S_COUNT; i++) {
            int k = (i + round) % S_COUNT;
            if (only_server >= 0 && k != only_server)
                continue;
            struct child ch = server_start((enum server_kind)k);
            results[s][k][round] = pingpong(ch.port, scenarios[s].conns, scenarios[s].len, secs);
            server_stop(&ch);
        }
        for (int k = 0; k < S_COUNT; k++)
            printf(" %s %.0f", server_names[k], results[s][k][round]);
        printf("\n");
        fflush(stdout);
    }
}

static bool pp_report(int rounds)
{
    bool met = true;
    printf("\n| scenario (median of %d, req/s) |", rounds);
    for (int k = 0; k < S_COUNT; k++)
        printf(" %s |", server_names[k]);
    printf(" fibers-1 / epoll | fibers-2 / epoll | best fibers / libuv | threads / epoll |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < N_SCEN; s++) {
        double m[S_COUNT];
        printf("| %s |", scenarios[s].name);
        for (int k = 0; k < S_COUNT; k++)
            printf(" %.0f |", m[k] = median(results[s][k], rounds));
        double best = m[S_FIB1] > m[S_FIB2] ? m[S_FIB1] : m[S_FIB2];
        printf(" %.3f | %.3f | %.3f | %.3f |\n", m[S_FIB1] / m[S_EPOLL], m[S_FIB2] / m[S_EPOLL],
               best / m[S_LIBUV], m[S_THREADS] / m[S_EPOLL]);
        if (scenarios[s].conns >= 50 && scenarios[s].len == 64)
            met = met && best >= m[S_EPOLL] && best >= 1.3 * m[S_LIBUV];
    }
    return met;
}

static bool idle_report(int n, int n_threads, int iters)
{
    static const enum server_kind kinds[] = {S_FIB1, S_THREADS, S_EPOLL};
    printf("\n| idle connections | held | server RSS per conn (KiB) | new client p50 (ms) | "
           "p99 (ms) |\n|---|---:|---:|---:|---:|\n");
    bool met = true;
    for (size_t i = 0; i < 3; i++) {
        int conns = kinds[i] == S_THREADS ? n_threads : n;
        struct idle_result r = idle_run(kinds[i], conns, iters);
        printf("| %s | %d | %.1f | %.3f | %.3f |\n", server_names[kinds[i]], r.conns,
               r.kib_per_conn, r.p50, r.p99);
        fflush(stdout);
        if (kinds[i] == S_FIB1)
            met = r.kib_per_conn <= 12.0 && r.p99 < 5.0 && r.conns >= n - 1;
    }
    return met;
}

static void usage(void)
{
    fprintf(stderr, "usage: fiber-bench [--quick] [--rounds N] [--only pingpong|idle|switch]\n"
                    "                   [--idle N] [--idle-threads N] [--server NAME]\n"
                    "                   [--scenario 0-3]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int rounds = 3, idle = 15000, idle_threads = 3000;
    double secs = 2.0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            rounds = 1, secs = 0.5, idle = 2000, idle_threads = 500;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--idle") == 0 && i + 1 < argc) {
            idle = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            for (int k = 0; k < S_COUNT; k++)
                if (strcmp(argv[i + 1], server_names[k]) == 0)
                    only_server = k;
            i++;
        } else if (strcmp(argv[i], "--scenario") == 0 && i + 1 < argc) {
            only_scenario = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--idle-threads") == 0 && i + 1 < argc) {
            idle_threads = atoi(argv[++i]);
        } else {
            usage();
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS)
        usage();
    signal(SIGPIPE, SIG_IGN);
    bool met = true;
    if (!only || strcmp(only, "switch") == 0)
        printf("fiber switch (one way): %.1f ns\n", tk_fiber_switch_ns(2000000));
    if (!only || strcmp(only, "pingpong") == 0) {
        for (int r = 0; r < rounds; r++)
            pp_round(r, secs);
        met = pp_report(rounds) && met;
    }
    if (!only || strcmp(only, "idle") == 0)
        met = idle_report(idle, idle_threads, 2000) && met;
    printf("\ntargets %s\n", met ? "met" : "missed");
    return met ? 0 : 1;
}
