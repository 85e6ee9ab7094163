/* SPDX-License-Identifier: MIT */
/* libtcpkit vs hand-written socket code, interleaved in one run.
 *
 *   bench [--quick] [--rounds N] [--only NAME]
 *
 * Every scenario runs a libtcpkit version and an equivalent raw-syscall
 * version once per round, alternating which goes first, and the table shows
 * the median of each over the rounds and the ratio libtcpkit/raw. The raw
 * versions are what a careful programmer writes by hand: blocking sockets,
 * SOCK_CLOEXEC, TCP_NODELAY on both ends (libtcpkit's default), MSG_NOSIGNAL,
 * a thread per connection on the server side.
 *
 * Scenarios (full / --quick sizes):
 *   bulk-64k, bulk-4k  1 GiB / 128 MiB over one loopback connection, send
 *                      and receive buffers of 64 KiB or 4 KiB;
 *   pingpong-1         64-byte ping-pong on one connection, client and
 *                      server both libtcpkit (tcpkit_serve) or both raw:
 *                      latency p50 and p99;
 *   pingpong-50/500    64-byte ping-pong on 50 / 500 connections from one
 *                      epoll client (the same code for both): requests/s of
 *                      a tcpkit_serve echo server vs a raw thread-per-
 *                      connection one, and the server's peak RSS;
 *   connrate           connect + accept + close per second.
 * Servers of the ping-pong scenarios run in a child process, so their RSS
 * is their own. Exit status 0 when every target is met, 1 otherwise.
 */
#include "tcpkit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 50
#define MSG 64

static void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void die_tk(const char *what, tcpkit_err e)
{
    fprintf(stderr, "bench: %s: %s (%s)\n", what, tcpkit_strerror(e), tcpkit_last_error());
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- sizes ---- */

struct config {
    int rounds;
    size_t bulk_bytes;
    int lat_iters;
    int rps50_iters;  /* round trips per connection */
    int rps500_iters; /* round trips per connection */
    int conns;        /* connections of the connection-rate scenario */
    const char *only;
    int variant; /* 0 both, 1 libtcpkit only, 2 raw only (for profiling) */
};

/* With --pin: pins the calling thread to one CPU (when there are at least
 * two), so the two ends of a one-connection scenario never share or swap a
 * CPU. Both variants are pinned the same way. Off by default: on a small VM
 * cross-CPU wake-ups can cost far more than sharing a CPU. */
static bool pin_enabled = false;

static void pin_to_cpu(int cpu)
{
    if (!pin_enabled || sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* Undoes pin_to_cpu for the calling thread. */
static void unpin(void)
{
    if (!pin_enabled || sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN) && i < CPU_SETSIZE; i++)
        CPU_SET((int)i, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* ---- raw socket helpers ---- */

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void set_nodelay(int fd)
{
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static int raw_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("raw listen");
    struct sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("raw bind/listen");
    *port = ntohs(a.sin_port);
    return fd;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("raw socket");
    set_nodelay(fd);
    struct sockaddr_in a = loopback(port);
    while (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        if (errno != EINTR)
            die("raw connect");
    return fd;
}

static bool raw_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool raw_recv_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static tcpkit_listener *lib_listen_lo(char *port, size_t cap)
{
    tcpkit_listener *l;
    tcpkit_err e = tcpkit_listen(&l, "127.0.0.1", "0", NULL);
    if (e != TCPKIT_OK)
        die_tk("tcpkit_listen", e);
    snprintf(port, cap, "%d", tcpkit_listener_port(l));
    return l;
}

static tcpkit_conn *lib_connect_lo(const char *port)
{
    tcpkit_conn *c;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", port, NULL);
    if (e != TCPKIT_OK)
        die_tk("tcpkit_connect", e);
    return c;
}

/* ---- bulk ---- */

struct bulk {
    size_t total, bufsize;
    tcpkit_conn *tc; /* libtcpkit variant */
    int fd;          /* raw variant */
    size_t got;
};

static void *bulk_tk_recv(void *p)
{
    struct bulk *b = p;
    pin_to_cpu(1);
    char *buf = malloc(b->bufsize);
    size_t n;
    while (tcpkit_recv(b->tc, buf, b->bufsize, &n) == TCPKIT_OK)
        b->got += n;
    free(buf);
    return NULL;
}

static void *bulk_raw_recv(void *p)
{
    struct bulk *b = p;
    pin_to_cpu(1);
    char *buf = malloc(b->bufsize);
    ssize_t n;
    while ((n = recv(b->fd, buf, b->bufsize, 0)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            b->got += (size_t)n;
    free(buf);
    return NULL;
}

/* MB/s (10^6 bytes) for total bytes in bufsize pieces. */
static double bulk_run(bool tk, size_t total, size_t bufsize)
{
    struct bulk b = {.total = total, .bufsize = bufsize, .fd = -1};
    char *buf = calloc(1, bufsize);
    pthread_t tid;
    double t0, t1;
    pin_to_cpu(0);
    if (tk) {
        char port[16];
        tcpkit_listener *l = lib_listen_lo(port, sizeof port);
        tcpkit_conn *c = lib_connect_lo(port);
        tcpkit_err e = tcpkit_accept(l, &b.tc, -1);
        if (e != TCPKIT_OK)
            die_tk("accept", e);
        tcpkit_listener_close(l);
        pthread_create(&tid, NULL, bulk_tk_recv, &b);
        t0 = now_s();
        for (size_t sent = 0; sent < total; sent += bufsize)
            if ((e = tcpkit_send_all(c, buf, bufsize, NULL)) != TCPKIT_OK)
                die_tk("send_all", e);
        tcpkit_close(c);
        pthread_join(tid, NULL);
        t1 = now_s();
        tcpkit_close(b.tc);
    } else {
        int port;
        int l = raw_listen(&port);
        int c = raw_connect(port);
        b.fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (b.fd < 0)
            die("accept4");
        set_nodelay(b.fd);
        close(l);
        pthread_create(&tid, NULL, bulk_raw_recv, &b);
        t0 = now_s();
        for (size_t sent = 0; sent < total; sent += bufsize)
            if (!raw_send_all(c, buf, bufsize))
                die("send");
        close(c);
        pthread_join(tid, NULL);
        t1 = now_s();
        close(b.fd);
    }
    unpin();
    free(buf);
    if (b.got != total) {
        fprintf(stderr, "bench: bulk received %zu of %zu bytes\n", b.got, total);
        exit(2);
    }
    return (double)total / (t1 - t0) / 1e6;
}

/* ---- echo servers in a child process ---- */

static void lib_echo(tcpkit_conn *c, void *arg)
{
    (void)arg;
    char buf[4096];
    size_t n;
    while (tcpkit_recv(c, buf, sizeof buf, &n) == TCPKIT_OK)
        if (tcpkit_send_all(c, buf, n, NULL) != TCPKIT_OK)
            break;
}

static void *raw_echo(void *p)
{
    int fd = (int)(intptr_t)p;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && !raw_send_all(fd, buf, (size_t)n))
            break;
    close(fd);
    return NULL;
}

static void raw_server(int lfd)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("server accept4");
        }
        set_nodelay(fd);
        pthread_t t;
        if (pthread_create(&t, &attr, raw_echo, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}

struct child {
    pid_t pid;
    char port[16];
};

/* Forks an echo server (libtcpkit or raw); returns when it listens. */
static struct child server_start(bool tk, bool pin)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        die("pipe");
    struct child ch;
    ch.pid = fork();
    if (ch.pid < 0)
        die("fork");
    if (ch.pid == 0) {
        close(pfd[0]);
        /* Threads inherit the affinity: the whole server on CPU 1. */
        if (pin)
            pin_to_cpu(1);
        int port;
        if (tk) {
            tcpkit_listener *l = lib_listen_lo(ch.port, sizeof ch.port);
            port = tcpkit_listener_port(l);
            if (write(pfd[1], &port, sizeof port) != sizeof port)
                _exit(2);
            close(pfd[1]);
            tcpkit_err e = tcpkit_serve(l, lib_echo, NULL, 4096);
            _exit(e == TCPKIT_OK ? 0 : 2);
        }
        int lfd = raw_listen(&port);
        if (write(pfd[1], &port, sizeof port) != sizeof port)
            _exit(2);
        close(pfd[1]);
        raw_server(lfd);
        _exit(0);
    }
    close(pfd[1]);
    int port = 0;
    if (read(pfd[0], &port, sizeof port) != sizeof port)
        die("server child did not start");
    close(pfd[0]);
    snprintf(ch.port, sizeof ch.port, "%d", port);
    return ch;
}

/* Peak RSS of the child in KiB (VmHWM), then kills it. */
static long server_stop(struct child *ch)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)ch->pid);
    long hwm = -1;
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &hwm) == 1)
            break;
    if (f)
        fclose(f);
    kill(ch->pid, SIGKILL);
    waitpid(ch->pid, NULL, 0);
    return hwm;
}

/* ---- ping-pong, one connection: latency ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void latency_run(bool tk, int iters, double *p50, double *p99)
{
    struct child ch = server_start(tk, true);
    pin_to_cpu(0);
    double *lat = malloc(sizeof *lat * (size_t)iters);
    char msg[MSG] = {0}, back[MSG];
    int warm = iters / 10;
    tcpkit_conn *c = NULL;
    int fd = -1;
    if (tk)
        c = lib_connect_lo(ch.port);
    else
        fd = raw_connect(atoi(ch.port));
    for (int i = -warm; i < iters; i++) {
        double t0 = now_s();
        bool ok;
        if (tk)
            ok = tcpkit_send_all(c, msg, MSG, NULL) == TCPKIT_OK &&
                 tcpkit_recv_exact(c, back, MSG, NULL) == TCPKIT_OK;
        else
            ok = raw_send_all(fd, msg, MSG) && raw_recv_exact(fd, back, MSG);
        double t1 = now_s();
        if (!ok)
            die("ping-pong");
        if (i >= 0)
            lat[i] = (t1 - t0) * 1e6;
    }
    tcpkit_close(c);
    if (fd >= 0)
        close(fd);
    server_stop(&ch);
    unpin();
    qsort(lat, (size_t)iters, sizeof *lat, cmp_double);
    *p50 = lat[iters / 2];
    *p99 = lat[(size_t)((double)iters * 0.99)];
    free(lat);
}

/* ---- ping-pong, many connections: requests/s from one epoll client ---- */

struct pp_conn {
    int fd;
    int done; /* round trips completed */
    int got;  /* bytes of the current reply */
};

/* One epoll client, identical for both servers: every connection sends 64
 * bytes, waits for the echo, and repeats iters times. */
static double rps_run(bool tk, int nconns, int iters, long *rss_kib)
{
    struct child ch = server_start(tk, false);
    int port = atoi(ch.port);
    struct pp_conn *cs = calloc((size_t)nconns, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = raw_connect(port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            die("epoll_ctl");
    }
    char msg[MSG] = {0}, buf[MSG];
    double t0 = now_s();
    for (int i = 0; i < nconns; i++)
        if (!raw_send_all(cs[i].fd, msg, MSG))
            die("client send");
    int finished = 0;
    struct epoll_event evs[256];
    while (finished < nconns) {
        int n = epoll_wait(ep, evs, 256, 10000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("epoll_wait (server stalled?)");
        for (int k = 0; k < n; k++) {
            struct pp_conn *c = evs[k].data.ptr;
            ssize_t r = recv(c->fd, buf, (size_t)(MSG - c->got), MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0)
                die("client recv");
            c->got += (int)r;
            if (c->got < MSG)
                continue;
            c->got = 0;
            if (++c->done == iters) {
                finished++;
                continue;
            }
            if (!raw_send_all(c->fd, msg, MSG))
                die("client send");
        }
    }
    double t1 = now_s();
    *rss_kib = server_stop(&ch);
    for (int i = 0; i < nconns; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);
    return (double)nconns * iters / (t1 - t0);
}

/* ---- connection rate ---- */

struct acceptor {
    tcpkit_listener *l;
    int lfd;
    int n;
};

static void *accept_tk(void *p)
{
    struct acceptor *a = p;
    for (int i = 0; i < a->n; i++) {
        tcpkit_conn *c;
        tcpkit_err e = tcpkit_accept(a->l, &c, -1);
        if (e != TCPKIT_OK)
            die_tk("accept", e);
        tcpkit_close(c);
    }
    return NULL;
}

static void *accept_raw(void *p)
{
    struct acceptor *a = p;
    for (int i = 0; i < a->n; i++) {
        int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                i--;
                continue;
            }
            die("accept4");
        }
        set_nodelay(fd);
        close(fd);
    }
    return NULL;
}

/* Connections per second: a client thread connects and closes n times, an
 * acceptor thread accepts and closes them. */
static double connrate_run(bool tk, int n)
{
    struct acceptor a = {.lfd = -1, .n = n};
    char port[16];
    int rport = 0;
    if (tk)
        a.l = lib_listen_lo(port, sizeof port);
    else
        a.lfd = raw_listen(&rport);
    pthread_t tid;
    double t0 = now_s();
    pthread_create(&tid, NULL, tk ? accept_tk : accept_raw, &a);
    for (int i = 0; i < n; i++) {
        if (tk)
            tcpkit_close(lib_connect_lo(port));
        else
            close(raw_connect(rport));
    }
    pthread_join(tid, NULL);
    double t1 = now_s();
    tcpkit_listener_close(a.l);
    if (a.lfd >= 0)
        close(a.lfd);
    return n / (t1 - t0);
}

/* ---- results ---- */

enum better { HIGHER, LOWER };

struct metric {
    const char *name, *unit;
    enum better better;
    double target; /* ratio bound; 0 = informational */
    double tk[MAX_ROUNDS], raw[MAX_ROUNDS];
    int n;
};

enum { M_BULK64, M_BULK4, M_LAT50, M_LAT99, M_RPS50, M_RPS500, M_RSS500, M_CONNRATE, M_COUNT };

static struct metric metrics[M_COUNT] = {
    [M_BULK64] = {.name = "bulk 64 KiB buffers", .unit = "MB/s", .better = HIGHER, .target = 0.97},
    [M_BULK4] = {.name = "bulk 4 KiB buffers", .unit = "MB/s", .better = HIGHER, .target = 0.97},
    [M_LAT50] = {.name = "ping-pong 1 conn p50", .unit = "us", .better = LOWER, .target = 1.05},
    [M_LAT99] = {.name = "ping-pong 1 conn p99", .unit = "us", .better = LOWER, .target = 0},
    [M_RPS50] = {.name = "ping-pong 50 conns", .unit = "req/s", .better = HIGHER, .target = 0.95},
    [M_RPS500] = {.name = "ping-pong 500 conns", .unit = "req/s", .better = HIGHER, .target = 0.95},
    [M_RSS500] = {.name = "  server peak RSS, 500 conns",
                  .unit = "KiB",
                  .better = LOWER,
                  .target = 0},
    [M_CONNRATE] = {.name = "connect+accept+close",
                    .unit = "conn/s",
                    .better = HIGHER,
                    .target = 0.90},
};

static void record(int m, bool tk, double v)
{
    struct metric *x = &metrics[m];
    (tk ? x->tk : x->raw)[x->n] = v;
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, sizeof *v * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static bool wanted(const struct config *cfg, const char *scenario)
{
    return !cfg->only || strcmp(cfg->only, scenario) == 0;
}

/* One round: every scenario, libtcpkit and raw, in the order given. */
static void round_run(const struct config *cfg, bool lib_first)
{
    for (int k = 0; k < 2; k++) {
        bool tk = (k == 0) == lib_first;
        if ((cfg->variant == 1 && !tk) || (cfg->variant == 2 && tk))
            continue;
        if (wanted(cfg, "bulk")) {
            record(M_BULK64, tk, bulk_run(tk, cfg->bulk_bytes, 65536));
            record(M_BULK4, tk, bulk_run(tk, cfg->bulk_bytes, 4096));
        }
        if (wanted(cfg, "latency")) {
            double p50, p99;
            latency_run(tk, cfg->lat_iters, &p50, &p99);
            record(M_LAT50, tk, p50);
            record(M_LAT99, tk, p99);
        }
        long rss;
        if (wanted(cfg, "rps50"))
            record(M_RPS50, tk, rps_run(tk, 50, cfg->rps50_iters, &rss));
        if (wanted(cfg, "rps500")) {
            record(M_RPS500, tk, rps_run(tk, 500, cfg->rps500_iters, &rss));
            record(M_RSS500, tk, (double)rss);
        }
        if (wanted(cfg, "connrate"))
            record(M_CONNRATE, tk, connrate_run(tk, cfg->conns));
    }
}

/* Prints the table; returns true when every target is met. */
static bool report(int rounds)
{
    bool all = true;
    printf("\n%-30s %8s %12s %12s %7s %8s  %s\n", "scenario (median of rounds)", "unit",
           "libtcpkit", "raw", "ratio", "target", "");
    for (int m = 0; m < M_COUNT; m++) {
        struct metric *x = &metrics[m];
        if (x->n == 0)
            continue;
        double tk = median(x->tk, x->n), raw = median(x->raw, x->n);
        double ratio = tk / raw;
        char target[16] = "-";
        const char *verdict = "";
        if (x->target > 0) {
            bool ok = x->better == HIGHER ? ratio >= x->target : ratio <= x->target;
            snprintf(target, sizeof target, "%s%.2f", x->better == HIGHER ? ">=" : "<=", x->target);
            verdict = ok ? "met" : "MISSED";
            all = all && ok;
        }
        printf("%-30s %8s %12.1f %12.1f %7.3f %8s  %s\n", x->name, x->unit, tk, raw, ratio, target,
               verdict);
    }
    printf("\n%d interleaved rounds; ratio = libtcpkit / raw.\n", rounds);
    return all;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench [--quick] [--rounds N] "
                    "[--only bulk|latency|rps50|rps500|connrate] [--tk-only|--raw-only] [--pin]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct config cfg = {5, (size_t)1 << 30, 20000, 2000, 200, 5000, NULL, 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            cfg = (struct config){3, (size_t)128 << 20, 2000, 200, 20, 1000, cfg.only, cfg.variant};
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            cfg.rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            cfg.only = argv[++i];
        else if (strcmp(argv[i], "--pin") == 0)
            pin_enabled = true;
        else if (strcmp(argv[i], "--tk-only") == 0)
            cfg.variant = 1;
        else if (strcmp(argv[i], "--raw-only") == 0)
            cfg.variant = 2;
        else
            usage();
    }
    if (cfg.rounds < 1 || cfg.rounds > MAX_ROUNDS)
        usage();
    printf("libtcpkit %s benchmark: %d rounds, bulk %zu MiB, %d ping-pongs, "
           "50x%d and 500x%d round trips, %d connections\n",
           tcpkit_version(), cfg.rounds, cfg.bulk_bytes >> 20, cfg.lat_iters, cfg.rps50_iters,
           cfg.rps500_iters, cfg.conns);
    double t0 = now_s();
    for (int r = 0; r < cfg.rounds; r++) {
        round_run(&cfg, r % 2 == 0);
        for (int m = 0; m < M_COUNT; m++)
            if (metrics[m].n < MAX_ROUNDS &&
                (metrics[m].tk[metrics[m].n] != 0 || metrics[m].raw[metrics[m].n] != 0))
                metrics[m].n++;
        printf("round %d/%d done (%.1f s)", r + 1, cfg.rounds, now_s() - t0);
        /* Per-round values, libtcpkit/raw, to judge the noise. */
        for (int m = 0; m < M_COUNT; m++)
            if (metrics[m].n > 0 && metrics[m].target > 0)
                printf(" %.3f", metrics[m].tk[metrics[m].n - 1] / metrics[m].raw[metrics[m].n - 1]);
        printf("\n");
        fflush(stdout);
    }
    bool ok = report(cfg.rounds);
    printf("total time %.1f s\n", now_s() - t0);
    return ok ? 0 : 1;
}
