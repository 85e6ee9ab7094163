/* SPDX-License-Identifier: MIT */
/* The 1.1 transfer calls vs hand-written code, interleaved in one run.
 *
 *   bench-1.1 [--quick] [--rounds N] [--dir DIR]
 *
 * Each scenario runs its variants once per round, the order rotating from
 * round to round, and the table shows the median of each over the rounds
 * and its ratio to the raw variant. All variants send over one loopback
 * TCP connection (TCP_NODELAY on both ends) to the same receiving thread,
 * which reads and discards (or echoes) with plain blocking calls.
 *
 * Scenarios (full / --quick sizes):
 *   sendfile   a 1 GiB / 256 MiB sparse file (created in DIR, default ".",
 *              deleted at exit): tcpkit_sendfile vs a raw sendfile(2) loop
 *              on a blocking socket vs read(2) + tcpkit_send_all through a
 *              64 KiB buffer;
 *   sendv      200000 / 50000 messages of a 16-byte header + 4 KiB body:
 *              tcpkit_sendv vs a raw sendmsg loop (blocking, partial
 *              writes resumed);
 *   msg-rtt    20000 / 5000 round trips of a 64-byte framed message:
 *              tcpkit_send_msg + tcpkit_recv_msg on both ends vs the same
 *              framing written by hand (writev header+body; read 4 bytes,
 *              then the body).
 * Exit status 0 when sendfile and sendv reach 0.97 of raw, 1 otherwise.
 */
#include "tcpkit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 50
#define HDR 16
#define BODY 4096
#define RTT_MSG 64

static void die(const char *what)
{
    fprintf(stderr, "bench-1.1: %s: %s (%s)\n", what, strerror(errno), tcpkit_last_error());
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- one loopback connection: the sender's fd and a receiving thread ---- */

struct link {
    int send_fd; /* blocking, TCP_NODELAY */
    int recv_fd;
    pthread_t tid;
    bool echo; /* echo framed messages (msg-rtt) instead of discarding */
    size_t received;
};

static void nodelay(int fd)
{
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static bool read_exact(int fd, void *buf, size_t len)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = recv(fd, (char *)buf + done, len - done, 0);
        if (n <= 0 && !(n < 0 && errno == EINTR))
            return false;
        done += n > 0 ? (size_t)n : 0;
    }
    return true;
}

static void *sink(void *p)
{
    struct link *k = p;
    size_t cap = 256 * 1024;
    char *buf = malloc(cap);
    ssize_t n;
    while (buf && ((n = recv(k->recv_fd, buf, cap, 0)) > 0 || (n < 0 && errno == EINTR)))
        k->received += n > 0 ? (size_t)n : 0;
    free(buf);
    return NULL;
}

/* Echoes framed messages back until EOF (hand-written framing: it is the
 * peer of both variants). */
static void *echo(void *p)
{
    struct link *k = p;
    unsigned char hdr[4], body[RTT_MSG];
    while (read_exact(k->recv_fd, hdr, 4)) {
        size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
        if (n > sizeof body || !read_exact(k->recv_fd, body, n))
            break;
        struct iovec iov[2] = {{hdr, 4}, {body, n}};
        if (writev(k->recv_fd, iov, 2) != (ssize_t)(4 + n))
            break;
    }
    return NULL;
}

static struct link link_open(bool echo_mode)
{
    struct link k = {.echo = echo_mode};
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        die("listen");
    k.send_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (k.send_fd < 0 || connect(k.send_fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    k.recv_fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (k.recv_fd < 0)
        die("accept");
    close(l);
    nodelay(k.send_fd);
    nodelay(k.recv_fd);
    return k;
}

static void link_start(struct link *k)
{
    if (pthread_create(&k->tid, NULL, k->echo ? echo : sink, k) != 0)
        die("pthread_create");
}

/* The sending fd as a tcpkit conn (owning it). */
static tcpkit_conn *adopt(int fd)
{
    tcpkit_conn *c;
    if (tcpkit_conn_from_fd(&c, fd, NULL) != TCPKIT_OK)
        die("tcpkit_conn_from_fd");
    return c;
}

/* ---- sendfile ---- */

enum { SF_TCPKIT, SF_RAW, SF_READ_SEND };

static double sendfile_run(int variant, int file, size_t size)
{
    struct link k = link_open(false);
    link_start(&k);
    tcpkit_conn *c = variant == SF_RAW ? NULL : adopt(k.send_fd);
    double t0 = now_s();
    if (variant == SF_TCPKIT && tcpkit_sendfile(c, file, 0, size, NULL) != TCPKIT_OK)
        die("tcpkit_sendfile");
    for (off_t off = 0; variant == SF_RAW && (size_t)off < size;)
        if (sendfile(k.send_fd, file, &off, size - (size_t)off) < 0 && errno != EINTR)
            die("sendfile");
    if (variant == SF_READ_SEND) {
        static char buf[64 * 1024];
        for (size_t done = 0; done < size;) {
            ssize_t n = pread(file, buf, sizeof buf, (off_t)done);
            if (n <= 0 || tcpkit_send_all(c, buf, (size_t)n, NULL) != TCPKIT_OK)
                die("read + send_all");
            done += (size_t)n;
        }
    }
    if (c)
        tcpkit_close_write(c);
    else
        shutdown(k.send_fd, SHUT_WR);
    pthread_join(k.tid, NULL);
    double dt = now_s() - t0;
    if (k.received != size)
        die("sendfile: short transfer");
    tcpkit_close(c); /* closes send_fd for the tcpkit variants */
    if (!c)
        close(k.send_fd);
    close(k.recv_fd);
    return (double)size / dt / 1e6;
}

/* ---- sendv ---- */

static bool raw_sendv(int fd, struct iovec *iov, int cnt)
{
    /* The hand-written loop: sendmsg, then shift the array past what went. */
    while (cnt > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return true;
}

static double sendv_run(bool tk, int msgs)
{
    static char hdr[HDR], body[BODY];
    struct link k = link_open(false);
    link_start(&k);
    tcpkit_conn *c = tk ? adopt(k.send_fd) : NULL;
    double t0 = now_s();
    for (int i = 0; i < msgs; i++) {
        struct iovec iov[2] = {{hdr, HDR}, {body, BODY}};
        bool ok = tk ? tcpkit_sendv(c, iov, 2, NULL) == TCPKIT_OK : raw_sendv(k.send_fd, iov, 2);
        if (!ok)
            die("sendv");
    }
    shutdown(k.send_fd, SHUT_WR);
    pthread_join(k.tid, NULL);
    double dt = now_s() - t0;
    if (k.received != (size_t)msgs * (HDR + BODY))
        die("sendv: short transfer");
    tcpkit_close(c);
    if (!c)
        close(k.send_fd);
    close(k.recv_fd);
    return (double)msgs * (HDR + BODY) / dt / 1e6;
}

/* ---- framed round trips ---- */

static bool raw_round_trip(int fd, const char *msg)
{
    unsigned char hdr[4] = {0, 0, 0, RTT_MSG}, back[4];
    char body[RTT_MSG];
    struct iovec iov[2] = {{hdr, 4}, {(void *)msg, RTT_MSG}};
    if (writev(fd, iov, 2) != 4 + RTT_MSG || !read_exact(fd, back, 4))
        return false;
    size_t n = (size_t)back[0] << 24 | (size_t)back[1] << 16 | (size_t)back[2] << 8 | back[3];
    return n == RTT_MSG && read_exact(fd, body, n);
}

static double rtt_run(bool tk, int iters)
{
    static const char msg[RTT_MSG] = "ping";
    struct link k = link_open(true);
    link_start(&k);
    tcpkit_conn *c = tk ? adopt(k.send_fd) : NULL;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        bool ok;
        if (tk) {
            void *data = NULL;
            size_t len = 0;
            ok = tcpkit_send_msg(c, msg, RTT_MSG, NULL) == TCPKIT_OK &&
                 tcpkit_recv_msg(c, &data, &len, 1024) == TCPKIT_OK && len == RTT_MSG;
            tcpkit_free(data);
        } else {
            ok = raw_round_trip(k.send_fd, msg);
        }
        if (!ok)
            die("round trip");
    }
    double dt = now_s() - t0;
    shutdown(k.send_fd, SHUT_WR);
    pthread_join(k.tid, NULL);
    tcpkit_close(c);
    if (!c)
        close(k.send_fd);
    close(k.recv_fd);
    return iters / dt;
}

/* ---- rounds and the table ---- */

enum { M_SF_TK, M_SF_RAW, M_SF_READ, M_SV_TK, M_SV_RAW, M_RTT_TK, M_RTT_RAW, M_COUNT };

struct metric {
    const char *name, *unit;
    int raw;       /* the metric it is compared with (itself for raw ones) */
    double target; /* ratio it must reach; 0 = informational */
    double v[MAX_ROUNDS];
};

static struct metric metrics[M_COUNT] = {
    [M_SF_TK] = {"sendfile: tcpkit_sendfile", "MB/s", M_SF_RAW, 0.97, {0}},
    [M_SF_RAW] = {"sendfile: raw sendfile loop", "MB/s", M_SF_RAW, 0, {0}},
    [M_SF_READ] = {"sendfile: read + send_all", "MB/s", M_SF_RAW, 0, {0}},
    [M_SV_TK] = {"sendv: tcpkit_sendv 16+4096", "MB/s", M_SV_RAW, 0.97, {0}},
    [M_SV_RAW] = {"sendv: raw sendmsg loop", "MB/s", M_SV_RAW, 0, {0}},
    [M_RTT_TK] = {"msg-rtt: send_msg/recv_msg", "rt/s", M_RTT_RAW, 0, {0}},
    [M_RTT_RAW] = {"msg-rtt: hand-written framing", "rt/s", M_RTT_RAW, 0, {0}},
};

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof *s);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

struct config {
    int rounds;
    size_t file_size;
    int msgs, iters;
};

static void round_run(const struct config *cfg, int r, int file)
{
    /* Rotate the order, so no variant always runs first (cold) or last. */
    for (int i = 0; i < 3; i++) {
        int v = (i + r) % 3;
        metrics[M_SF_TK + v].v[r] = sendfile_run(v, file, cfg->file_size);
    }
    for (int i = 0; i < 2; i++) {
        bool tk = (i + r) % 2 == 0;
        metrics[tk ? M_SV_TK : M_SV_RAW].v[r] = sendv_run(tk, cfg->msgs);
        metrics[tk ? M_RTT_TK : M_RTT_RAW].v[r] = rtt_run(tk, cfg->iters);
    }
}

static bool report(int rounds)
{
    bool ok = true;
    printf("\n%-32s %6s %12s %7s %7s\n", "scenario (median of rounds)", "unit", "value", "ratio",
           "target");
    for (int m = 0; m < M_COUNT; m++) {
        struct metric *x = &metrics[m];
        double v = median(x->v, rounds), ratio = v / median(metrics[x->raw].v, rounds);
        char target[16] = "";
        if (x->target > 0) {
            snprintf(target, sizeof target, ">=%.2f", x->target);
            ok = ok && ratio >= x->target;
        }
        printf("%-32s %6s %12.1f %7.3f %7s\n", x->name, x->unit, v, ratio, target);
    }
    printf("\n%d interleaved rounds; ratio = value / raw value (higher is better).\n", rounds);
    return ok;
}

/* A sparse file: its holes read as zeros from memory, so the scenario
 * measures the socket path, not the disk. */
static int make_file(const char *dir, size_t size, char *path, size_t cap)
{
    snprintf(path, cap, "%s/tcpkit-bench-sendfile-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        die("bench file");
    return fd;
}

int main(int argc, char **argv)
{
    struct config cfg = {5, (size_t)1 << 30, 200000, 20000};
    const char *dir = ".";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            cfg = (struct config){3, (size_t)256 << 20, 50000, 5000};
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            cfg.rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--rounds N] [--dir DIR]\n", argv[0]);
            return 2;
        }
    }
    if (cfg.rounds < 1 || cfg.rounds > MAX_ROUNDS)
        cfg.rounds = 5;
    char path[4096];
    int file = make_file(dir, cfg.file_size, path, sizeof path);
    for (int r = 0; r < cfg.rounds; r++)
        round_run(&cfg, r, file);
    close(file);
    unlink(path);
    return report(cfg.rounds) ? 0 : 1;
}
