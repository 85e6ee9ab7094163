/* SPDX-License-Identifier: MIT */
/* Shared helpers for the libtcpkit Check suites.
 *
 * Rules the helpers enforce (see notes in helpers.c):
 * - every test case gets a descriptor-leak check (th_add_fd_check);
 * - SIGPIPE stays at its default disposition (th_run_suite), so a send
 *   without MSG_NOSIGNAL kills the test;
 * - only loopback addresses and port "0" are used;
 * - a check that cannot run here calls th_skip(), and the suite exits 77
 *   (skipped), never 0.
 *
 * Every name here starts with th_ ("test helper"); tk_ is the library's
 * internal prefix.
 *
 * ck_assert may only be called from the thread that runs the test: with
 * CK_FORK=no (Valgrind) a failing assert longjmps, which is undefined from
 * another thread. Peer threads (th_peer) record failures with th_peer_fail()
 * instead, and th_peer_join() asserts on the test thread.
 */
#ifndef TH_TEST_HELPERS_H
#define TH_TEST_HELPERS_H

#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "tcpkit.h"

/* ---- descriptors and suites ---- */

/* Number of open descriptors, from /proc/self/fd (the directory's own
 * descriptor is not counted). */
int th_count_fds(void);

/* Adds a checked fixture to tc: setup records th_count_fds(), teardown
 * asserts the count is back where it was and SIGPIPE is still SIG_DFL.
 * A failing teardown fails the test, with CK_FORK=yes and CK_FORK=no. */
void th_add_fd_check(TCase *tc);

/* Sets SIGPIPE to SIG_DFL (and checks it took), runs every test of s with
 * CK_NORMAL output, frees the runner. Returns EXIT_FAILURE if a test failed
 * (or none ran), else TH_SKIPPED if a test called th_skip(), else
 * EXIT_SUCCESS: return its value from main(). */
int th_run_suite(Suite *s);

/* Meson's exit status for "skipped". */
#define TH_SKIPPED 77

/* Records that the calling test could not run its checks (printf format
 * for the reason, printed with "SKIP"); the test should return right after.
 * th_run_suite then exits TH_SKIPPED, so meson counts the suite as skipped
 * rather than passed. Works with CK_FORK=yes and no. */
void th_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A TCase named name with the fd check and a timeout (seconds, scaled by
 * th_time_scale()). */
TCase *th_tcase(const char *name, double timeout_s);

/* ---- environment ---- */

/* True under Valgrind (TCPKIT_UNDER_VALGRIND=1). */
bool th_under_valgrind(void);
/* True when built with AddressSanitizer. */
bool th_under_asan(void);
/* Multiplier for time bounds: 1 normally, larger under ASan or Valgrind. */
int th_time_scale(void);
/* A time bound of ms milliseconds, scaled by th_time_scale(). */
int th_bound_ms(int ms);
/* A byte count for bulk transfers: n, or n / 8 under Valgrind, where every
 * system call is expensive. */
size_t th_bulk_size(size_t n);
/* Monotonic clock in milliseconds. */
int64_t th_now_ms(void);
/* Waits ms milliseconds (nanosleep, resumed after signals). Pacing only,
 * never synchronisation: wait on a socket, pipe or condition instead. */
void th_pause_ms(int ms);
/* True when a TCP socket can be bound to ::1. */
bool th_have_ipv6(void);

/* ---- libtcpkit shortcuts (all ck_assert success) ---- */

/* tcpkit_listen(host, "0", NULL), asserting TCPKIT_OK. */
tcpkit_listener *th_listen_loopback(const char *host);
/* Same with options. */
tcpkit_listener *th_listen_opts(const char *host, const tcpkit_opts *opts);
/* The listener's port as a string, in buf (at least 8 bytes). */
const char *th_port_str(const tcpkit_listener *l, char *buf, size_t cap);
/* Connects to host at the port of l (with options o, may be NULL),
 * accepts, and checks that one byte goes through; closes both ends. */
void th_connect_exchange(tcpkit_listener *l, const char *host, const tcpkit_opts *o);
/* A connected pair over 127.0.0.1 through a temporary listener (closed). */
void th_pair(tcpkit_conn **client, tcpkit_conn **server);
/* A tcpkit client connected to a raw blocking socket *server_fd. */
void th_pair_raw(tcpkit_conn **client, int *server_fd);

/* ---- raw sockets (blocking, close-on-exec; all ck_assert success) ---- */

/* Fills ss with the loopback address of family (AF_INET: 127.0.0.1,
 * AF_INET6: ::1) and port; returns its length. */
socklen_t th_loopback_sockaddr(int family, int port, struct sockaddr_storage *ss);

/* A blocking socket connected to ip:port (ip numeric, v4 or v6). */
int th_raw_connect(const char *ip, int port);
/* A raw listening socket on ip, port 0; *port receives the port. */
int th_raw_listen(const char *ip, int backlog, int *port);
/* Like th_raw_listen on a given port (SO_REUSEADDR set); returns -1 when
 * bind fails (no assert), e.g. the port is taken on that address. */
int th_raw_listen_port(const char *ip, int port, int backlog);
/* Fills the accept queue of a listener on ip:port that never accepts
 * (create it with backlog 1) with non-blocking raw connects, until one does
 * not complete within a short wait: from then on the kernel drops SYNs to
 * it, so connecting there hangs. The descriptors go into fds (the caller
 * closes them); returns how many. */
int th_fill_backlog(const char *ip, int port, int *fds, int max);
/* Sets SO_LINGER 0 and closes fd: the peer sees a reset. */
void th_raw_abort(int fd);
/* Writes all len bytes to a blocking fd; returns bytes written (stops at an
 * error). Uses MSG_NOSIGNAL. Safe from any thread (no asserts). */
size_t th_raw_send_all(int fd, const void *buf, size_t len);
/* Reads until EOF or error or cap bytes; returns bytes read. No asserts. */
size_t th_raw_recv_all(int fd, void *buf, size_t cap);

/* ---- peer threads ---- */

typedef struct th_peer th_peer;
typedef void (*th_peer_fn)(th_peer *p);

/* A thread running fn(p). fn must not call ck_assert: it reports problems
 * with th_peer_fail(), and may leave a result in p->result. */
struct th_peer {
    pthread_t tid;
    th_peer_fn fn;
    void *arg;         /* for fn */
    int fd;            /* a raw descriptor for fn, closed by join if >= 0 */
    tcpkit_conn *conn; /* a connection for fn, closed by join if not NULL */
    int64_t result;    /* for fn */
    uint64_t sum;      /* for fn (e.g. a checksum) */
    char err[256];     /* first failure, "" if none */
};

/* Starts fn on a new thread; p->fd, p->conn and p->arg are set by the
 * caller before (zero them with memset or an initialiser). */
void th_peer_start(th_peer *p, th_peer_fn fn);
/* Joins the thread, closes p->fd / p->conn if still set, and ck_asserts
 * that fn reported no failure. */
void th_peer_join(th_peer *p);
/* Records the first failure of a peer (printf format). */
void th_peer_fail(th_peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's kernel id. */
pid_t th_gettid(void);
/* Waits (polling /proc, up to timeout_ms) until thread tid is asleep in
 * the kernel (state S), e.g. blocked in poll() inside a library call.
 * Returns false if it never was. Use it to make "wake a blocked call"
 * tests exercise the blocked case; never as the only synchronisation. */
bool th_wait_thread_sleeping(pid_t tid, int timeout_ms);

/* ---- data ---- */

/* Fills buf with a deterministic pattern that depends on seed and offset. */
void th_fill(void *buf, size_t len, uint64_t seed, uint64_t offset);
/* FNV-1a 64 over buf, continuing from h (start with TH_FNV_INIT). */
#define TH_FNV_INIT UINT64_C(0xcbf29ce484222325)
uint64_t th_fnv(uint64_t h, const void *buf, size_t len);
/* A malloc'd buffer of len bytes (at least 1 allocated) filled by th_fill
 * with seed from offset 0; ck_asserts the allocation. The caller frees it. */
void *th_pattern(size_t len, uint64_t seed);

/* ---- threads of this process (the serve tests' leak checks) ---- */

/* Starts and joins one thread so lazily started runtime threads (TSan's)
 * exist before a baseline is taken. */
void th_warm_up_threads(void);
/* Threads of this process, from /proc/self/task; -1 if unreadable. */
int th_count_threads(void);
/* The thread count once it has not changed for 20 ms (at most ~2 s). */
int th_stable_thread_count(void);
/* Waits (at most ~5 s) for the count to reach want; returns the last count. */
int th_wait_thread_count(int want);

/* ---- private network namespace ---- */

/* Moves this process into a new, private network namespace with only
 * loopback (brought up), so that nothing it sends can leave the machine.
 * Call it at the start of main(), before any thread exists. Tries
 * unshare(CLONE_NEWNET) and, when not privileged, a user namespace too.
 * Returns true on success; false when namespaces are unavailable (then the
 * caller should exit 77, "skipped"). */
bool th_enter_private_netns(void);
/* True when the current network namespace differs from the one the process
 * started in (th_enter_private_netns succeeded). */
bool th_in_private_netns(void);

/* ---- private mount namespace (files such as /etc/hosts) ---- */

/* Moves this process into a new mount namespace whose mounts are all
 * private, so that the mounts it makes are seen by no other process. Call
 * it at the start of main(), before any thread exists. Works in a chroot
 * too, where "/" is not a mount point and cannot be made private itself:
 * there the process moves into a private copy of its root (see helpers.c).
 * Returns false when that is impossible (then skip what needs it). */
bool th_enter_private_mountns(void);
/* Replaces the file at path, for this process only, by one holding text
 * (a bind mount of a file made in $TMPDIR or /tmp and unlinked at once;
 * needs th_enter_private_mountns first). Returns false if
 * path does not exist or the mount fails. Leaves no temporary file. */
bool th_replace_file(const char *path, const char *text);

#endif
