/* SPDX-License-Identifier: MIT */
/* Shared helpers for the libtcpkit Check suites (see helpers.h). */
#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- descriptors and suites ---- */

int th_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int self = dirfd(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (atoi(e->d_name) == self)
            continue;
        n++;
    }
    closedir(d);
    return n;
}

/* Checked fixtures run in the same process as the test (the forked child
 * with CK_FORK=yes, the runner itself with CK_FORK=no), so a plain static
 * carries the baseline from setup to teardown. */
static int fd_baseline = -1;

static bool sigpipe_is_default(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) != 0)
        return false;
    return sa.sa_handler == SIG_DFL;
}

static void fd_check_setup(void)
{
    fd_baseline = th_count_fds();
    ck_assert_int_ge(fd_baseline, 0);
    ck_assert_msg(sigpipe_is_default(), "SIGPIPE is not at its default disposition");
}

static void fd_check_teardown(void)
{
    int now = th_count_fds();
    ck_assert_msg(now == fd_baseline, "descriptor leak: %d open before the test, %d after",
                  fd_baseline, now);
    ck_assert_msg(sigpipe_is_default(), "SIGPIPE disposition changed during the test");
}

void th_add_fd_check(TCase *tc)
{
    tcase_add_checked_fixture(tc, fd_check_setup, fd_check_teardown);
}

/* th_skip() writes a byte here, from the forked test process (CK_FORK=yes)
 * or the runner itself; th_run_suite counts them after the run. */
static int skip_pipe[2] = {-1, -1};

void th_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "SKIP: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (skip_pipe[1] >= 0 && write(skip_pipe[1], "s", 1) != 1)
        fprintf(stderr, "th_skip: cannot record the skip\n");
}

/* Skips recorded so far; closes the pipe. */
static int count_skips(void)
{
    char buf[256];
    int n = 0;
    ssize_t r;
    while ((r = read(skip_pipe[0], buf, sizeof buf)) > 0)
        n += (int)r;
    close(skip_pipe[0]);
    close(skip_pipe[1]);
    skip_pipe[0] = skip_pipe[1] = -1;
    return n;
}

int th_run_suite(Suite *s)
{
    /* A test that inherits SIGPIPE ignored would hide a missing
     * MSG_NOSIGNAL; force the default and make sure it took. */
    if (signal(SIGPIPE, SIG_DFL) == SIG_ERR || !sigpipe_is_default()) {
        fprintf(stderr, "cannot set SIGPIPE to SIG_DFL\n");
        return EXIT_FAILURE;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    if (pipe2(skip_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "pipe2: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    int run = srunner_ntests_run(sr);
    srunner_free(sr);
    int skipped = count_skips();
    if (failed != 0 || run == 0)
        return EXIT_FAILURE;
    if (skipped > 0) {
        fprintf(stderr, "%d check(s) skipped: the suite counts as skipped\n", skipped);
        return TH_SKIPPED;
    }
    return EXIT_SUCCESS;
}

TCase *th_tcase(const char *name, double timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s * th_time_scale());
    th_add_fd_check(tc);
    return tc;
}

/* ---- environment ---- */

bool th_under_valgrind(void)
{
    const char *v = getenv("TCPKIT_UNDER_VALGRIND");
    return v != NULL && strcmp(v, "1") == 0;
}

#if defined(__SANITIZE_ADDRESS__)
#define TH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TH_ASAN 1
#endif
#endif

bool th_under_asan(void)
{
#ifdef TH_ASAN
    return true;
#else
    return false;
#endif
}

int th_time_scale(void)
{
    if (th_under_valgrind())
        return 10;
    if (th_under_asan())
        return 3;
    return 1;
}

int th_bound_ms(int ms)
{
    return ms * th_time_scale();
}

size_t th_bulk_size(size_t n)
{
    return th_under_valgrind() ? n / 8 : n;
}

void th_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool th_have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* ---- libtcpkit shortcuts ---- */

tcpkit_listener *th_listen_opts(const char *host, const tcpkit_opts *opts)
{
    tcpkit_listener *l = NULL;
    tcpkit_err e = tcpkit_listen(&l, host, "0", opts);
    ck_assert_msg(e == TCPKIT_OK, "tcpkit_listen(%s, 0): %s (%s)", host ? host : "NULL",
                  tcpkit_strerror(e), tcpkit_last_error());
    ck_assert_ptr_nonnull(l);
    ck_assert_int_gt(tcpkit_listener_port(l), 0);
    return l;
}

tcpkit_listener *th_listen_loopback(const char *host)
{
    return th_listen_opts(host, NULL);
}

const char *th_port_str(const tcpkit_listener *l, char *buf, size_t cap)
{
    int port = tcpkit_listener_port(l);
    ck_assert_int_gt(port, 0);
    snprintf(buf, cap, "%d", port);
    return buf;
}

void th_connect_exchange(tcpkit_listener *l, const char *host, const tcpkit_opts *o)
{
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_conn *c = NULL, *s = NULL;
    tcpkit_err e = tcpkit_connect(&c, host, port, o);
    ck_assert_msg(e == TCPKIT_OK, "connect %s:%s: %s (%s)", host, port, tcpkit_strerror(e),
                  tcpkit_last_error());
    ck_assert_ptr_nonnull(c);
    e = tcpkit_accept(l, &s, 10000 * th_time_scale());
    ck_assert_msg(e == TCPKIT_OK, "accept: %s", tcpkit_last_error());
    ck_assert_int_eq(tcpkit_send_all(c, "k", 1, NULL), TCPKIT_OK);
    char b;
    size_t got = 0;
    ck_assert_int_eq(tcpkit_recv(s, &b, 1, &got), TCPKIT_OK);
    ck_assert_uint_eq(got, 1);
    ck_assert_int_eq(b, 'k');
    tcpkit_close(c);
    tcpkit_close(s);
}

void th_pair(tcpkit_conn **client, tcpkit_conn **server)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_err e = tcpkit_connect(client, "127.0.0.1", port, NULL);
    ck_assert_msg(e == TCPKIT_OK, "connect: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    e = tcpkit_accept(l, server, 10000 * th_time_scale());
    ck_assert_msg(e == TCPKIT_OK, "accept: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    tcpkit_listener_close(l);
}

void th_pair_raw(tcpkit_conn **client, int *server_fd)
{
    int port = 0;
    int lfd = th_raw_listen("127.0.0.1", 4, &port);
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    tcpkit_err e = tcpkit_connect(client, "127.0.0.1", ps, NULL);
    ck_assert_msg(e == TCPKIT_OK, "connect: %s (%s)", tcpkit_strerror(e), tcpkit_last_error());
    *server_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_msg(*server_fd >= 0, "accept4: %s", strerror(errno));
    close(lfd);
}

/* ---- raw sockets ---- */

/* Fills a sockaddr for a numeric ip and port; returns its length. */
static socklen_t make_addr(const char *ip, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        return sizeof *a4;
    }
    ck_assert_msg(inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1, "not a numeric address: %s", ip);
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    return sizeof *a6;
}

int th_raw_connect(const char *ip, int port)
{
    struct sockaddr_storage ss;
    socklen_t len = make_addr(ip, port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    int r;
    do {
        r = connect(fd, (struct sockaddr *)&ss, len);
    } while (r != 0 && errno == EINTR);
    ck_assert_msg(r == 0, "connect %s port %d: %s", ip, port, strerror(errno));
    return fd;
}

int th_raw_listen(const char *ip, int backlog, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = make_addr(ip, 0, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    ck_assert_msg(bind(fd, (struct sockaddr *)&ss, len) == 0, "bind %s: %s", ip, strerror(errno));
    ck_assert_msg(listen(fd, backlog) == 0, "listen: %s", strerror(errno));
    len = sizeof ss;
    ck_assert(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
    if (ss.ss_family == AF_INET)
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

int th_raw_listen_port(const char *ip, int port, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len = make_addr(ip, port, &ss);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int th_fill_backlog(const char *ip, int port, int *fds, int max)
{
    struct sockaddr_storage ss;
    socklen_t len = make_addr(ip, port, &ss);
    int n = 0;
    while (n < max) {
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
        fds[n++] = fd;
        if (connect(fd, (struct sockaddr *)&ss, len) == 0)
            continue;
        ck_assert_msg(errno == EINPROGRESS, "connect: %s", strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 300) == 0)
            return n; /* this SYN was dropped: the queue is full */
    }
    ck_abort_msg("backlog of %s port %d never filled after %d connects", ip, port, max);
    return n;
}

void th_raw_abort(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

size_t th_raw_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, p + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return done;
}

size_t th_raw_recv_all(int fd, void *buf, size_t cap)
{
    char *p = buf;
    size_t done = 0;
    while (done < cap) {
        ssize_t n = recv(fd, p + done, cap - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return done;
}

/* ---- peer threads ---- */

static void *peer_main(void *arg)
{
    th_peer *p = arg;
    p->fn(p);
    return NULL;
}

void th_peer_start(th_peer *p, th_peer_fn fn)
{
    p->fn = fn;
    p->err[0] = '\0';
    int r = pthread_create(&p->tid, NULL, peer_main, p);
    ck_assert_msg(r == 0, "pthread_create: %s", strerror(r));
}

void th_peer_join(th_peer *p)
{
    int r = pthread_join(p->tid, NULL);
    ck_assert_msg(r == 0, "pthread_join: %s", strerror(r));
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    tcpkit_close(p->conn);
    p->conn = NULL;
    ck_assert_msg(p->err[0] == '\0', "peer thread: %s", p->err);
}

void th_peer_fail(th_peer *p, const char *fmt, ...)
{
    if (p->err[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    if (p->err[0] == '\0')
        snprintf(p->err, sizeof p->err, "failed");
}

pid_t th_gettid(void)
{
    return gettid();
}

/* The state letter of thread tid, from /proc/self/task/TID/stat. */
static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: the state is the
     * first field after the last ')'. */
    const char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0' || p[2] == '\0')
        return '?';
    return p[2];
}

bool th_wait_thread_sleeping(pid_t tid, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    for (;;) {
        if (thread_state(tid) == 'S')
            return true;
        if (th_now_ms() >= end)
            return false;
        th_pause_ms(1);
    }
}

/* ---- data ---- */

void th_fill(void *buf, size_t len, uint64_t seed, uint64_t offset)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        /* A cheap mix of seed and position: neighbouring bytes differ and a
         * shifted or repeated block shows up in the checksum. */
        uint64_t x = (offset + i) * UINT64_C(0x9e3779b97f4a7c15) ^ seed;
        p[i] = (unsigned char)(x >> 29 ^ x >> 7);
    }
}

uint64_t th_fnv(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

void *th_pattern(size_t len, uint64_t seed)
{
    void *p = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(p);
    th_fill(p, len, seed, 0);
    return p;
}

/* ---- threads of this process ---- */

/* Runtimes start helper threads lazily on the first pthread_create (the
 * ThreadSanitizer background thread): start and join one thread first so
 * they already exist when the baseline is taken. */
static void *nothing(void *arg)
{
    return arg;
}

void th_warm_up_threads(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) == 0)
        pthread_join(t, NULL);
}

int th_count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* A thread that pthread_join() has reaped can still be listed in
 * /proc/self/task for a moment (the kernel wakes the joiner before the task
 * is gone; under Valgrind the moment is long). There is no event to wait
 * for, so these two poll the count briefly, bounded. */
int th_stable_thread_count(void)
{
    int last = th_count_threads(), same = 0;
    for (int i = 0; i < 400 && same < 4; i++) {
        th_pause_ms(5);
        int now = th_count_threads();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

int th_wait_thread_count(int want)
{
    int now = th_count_threads();
    for (int i = 0; i < 1000 && now != want; i++) {
        th_pause_ms(5);
        now = th_count_threads();
    }
    return now;
}

/* ---- private network namespace ---- */

static ino_t start_netns_ino;
static bool netns_entered;

static ino_t netns_ino(void)
{
    struct stat st;
    if (stat("/proc/self/ns/net", &st) != 0)
        return 0;
    return st.st_ino;
}

static bool loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    if (ok) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        ok = ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    }
    close(fd);
    return ok;
}

/* Maps our uid to root in a fresh user namespace; failure is harmless
 * (we keep the namespace's capabilities either way). */
static void map_uid(uid_t uid)
{
    int fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char line[64];
    int n = snprintf(line, sizeof line, "0 %u 1\n", (unsigned)uid);
    if (write(fd, line, (size_t)n) < 0) {
        /* ignored: see above */
    }
    close(fd);
}

bool th_enter_private_netns(void)
{
    start_netns_ino = netns_ino();
    if (start_netns_ino == 0)
        return false;
    uid_t uid = getuid();
    if (unshare(CLONE_NEWNET) != 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
            return false;
        map_uid(uid);
    }
    if (netns_ino() == start_netns_ino || !loopback_up())
        return false;
    netns_entered = true;
    return true;
}

bool th_in_private_netns(void)
{
    return netns_entered && start_netns_ino != 0 && netns_ino() != start_netns_ino;
}

socklen_t th_loopback_sockaddr(int family, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof *a;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    a->sin6_addr = in6addr_loopback;
    return sizeof *a;
}

/* ---- private mount namespace ---- */

/* "none" rather than NULL for the unused source and type: Valgrind checks
 * them as strings. */
static bool make_root_private(void)
{
    return mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0;
}

/* In a chroot, "/" is a directory inside some mount, often a shared one: it
 * cannot be made private, and a mount made on it (even "/" bound onto
 * itself) propagates to that mount's peers, outside this namespace. So:
 * clone the tree under "/" (a detached copy), make /proc's mount private
 * (the test needs /proc anyway) and attach the copy over it, where the
 * attach propagates nowhere; then make the copy our root and private. */
static bool enter_private_root_copy(void)
{
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return false;
    int t = open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (t < 0)
        return false;
    bool ok = mount("none", "/proc", "none", MS_PRIVATE, NULL) == 0 &&
              move_mount(t, "", AT_FDCWD, "/proc", MOVE_MOUNT_F_EMPTY_PATH) == 0 &&
              fchdir(t) == 0 && chroot(".") == 0;
    close(t);
    return ok && make_root_private() && chdir(cwd) == 0;
}

bool th_enter_private_mountns(void)
{
    if (unshare(CLONE_NEWNS) != 0)
        return false;
    return make_root_private() || enter_private_root_copy();
}

bool th_replace_file(const char *path, const char *text)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    const char *dir = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/tcpkit-test-file-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0)
        return false;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fchmod(fd, 0644) == 0;
    close(fd);
    ok = ok && mount(tmp, path, "none", MS_BIND, NULL) == 0;
    unlink(tmp); /* the bind mount keeps the file alive */
    return ok;
}
