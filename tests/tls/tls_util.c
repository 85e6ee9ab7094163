/* SPDX-License-Identifier: MIT */
#include "tls_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char certs[PATH_MAX / 2];

static int run_wait(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void th_tls_certs_make(void)
{
    const char *tmp = getenv("TH_TLS_TMP");
    const char *script = getenv("TH_TLS_CERTGEN");
    if (!tmp || !script) {
        fprintf(stderr, "TH_TLS_TMP and TH_TLS_CERTGEN must be set (meson test does)\n");
        exit(EXIT_FAILURE);
    }
    snprintf(certs, sizeof certs, "%s/certs.XXXXXX", tmp);
    char *argv[] = {"sh", (char *)script, certs, NULL};
    if (!mkdtemp(certs) || run_wait(argv) != 0) {
        fprintf(stderr, "generating test certificates in %s failed\n", certs);
        exit(EXIT_FAILURE);
    }
}

void th_tls_certs_remove(void)
{
    char *argv[] = {"rm", "-rf", certs, NULL};
    if (certs[0])
        run_wait(argv);
}

const char *th_pem(const char *file)
{
    static char bufs[16][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, PATH_MAX, "%s/%s", certs, file);
    return b;
}

tcpkit_tls *th_tls_server(const char *name)
{
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    tcpkit_tls *t;
    ck_assert_int_eq(tcpkit_tls_new(&t), TCPKIT_OK);
    ck_assert_msg(tcpkit_tls_set_cert_file(t, th_pem(cert), th_pem(key)) == TCPKIT_OK, "%s",
                  tcpkit_last_error());
    return t;
}

tcpkit_tls *th_tls_client(void)
{
    tcpkit_tls *t;
    ck_assert_int_eq(tcpkit_tls_new(&t), TCPKIT_OK);
    ck_assert_msg(tcpkit_tls_set_ca_file(t, th_pem("ca.pem")) == TCPKIT_OK, "%s",
                  tcpkit_last_error());
    return t;
}

tcpkit_opts *th_tls_opts(tcpkit_tls *cfg)
{
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_tls(o, cfg), TCPKIT_OK);
    return o;
}

static void srv_main(th_peer *p)
{
    th_tls_srv *s = p->arg;
    tcpkit_conn *c = NULL;
    tcpkit_err e = tcpkit_accept(s->l, &c, 20000);
    if (e != TCPKIT_OK) {
        th_peer_fail(p, "accept: %s", tcpkit_last_error());
        return;
    }
    p->conn = c;
    s->hs = tcpkit_conn_handshake(c);
    if (s->hs != TCPKIT_OK) {
        snprintf(s->hs_msg, sizeof s->hs_msg, "%s", tcpkit_last_error());
        return;
    }
    for (int i = 0; i < 5; i++)
        tcpkit_conn_tls_info(c, (tcpkit_tls_info)i, s->info[i], sizeof s->info[i]);
    if (s->fn)
        s->fn(s, c);
}

void th_tls_srv_start(th_tls_srv *s, tcpkit_tls *cfg, void (*fn)(th_tls_srv *, tcpkit_conn *))
{
    tcpkit_opts *o = th_tls_opts(cfg);
    s->l = th_listen_opts("127.0.0.1", o);
    tcpkit_opts_free(o);
    th_port_str(s->l, s->port, sizeof s->port);
    s->fn = fn;
    s->hs = TCPKIT_OK;
    memset(&s->peer, 0, sizeof s->peer);
    s->peer.fd = -1;
    s->peer.arg = s;
    th_peer_start(&s->peer, srv_main);
}

void th_tls_echo_line(th_tls_srv *s, tcpkit_conn *c)
{
    char line[128];
    size_t n;
    if (tcpkit_recv_line(c, line, sizeof line, &n) != TCPKIT_OK ||
        tcpkit_send_all(c, line, n, NULL) != TCPKIT_OK || tcpkit_close_write(c) != TCPKIT_OK)
        th_peer_fail(&s->peer, "echo: %s", tcpkit_last_error());
}

void th_tls_srv_join(th_tls_srv *s)
{
    th_peer_join(&s->peer);
    tcpkit_listener_close(s->l);
    s->l = NULL;
}

void th_proc_spawn(th_proc *p, char *const argv[], int stdin_fd)
{
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    int r = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    ck_assert_msg(r == 0, "spawn %s: %s", argv[0], strerror(r));
    p->out = fds[0];
    p->len = 0;
    p->log[0] = '\0';
}

/* Reads what is there within ms; false at EOF or timeout. */
static bool read_some(th_proc *p, int ms)
{
    struct pollfd pf = {.fd = p->out, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0)
        return false;
    if (p->len + 1 >= sizeof p->log) /* keep the newest half */
        memmove(p->log, p->log + sizeof p->log / 2, (p->len -= sizeof p->log / 2));
    ssize_t n = read(p->out, p->log + p->len, sizeof p->log - 1 - p->len);
    if (n <= 0)
        return false;
    p->len += (size_t)n;
    p->log[p->len] = '\0';
    return true;
}

bool th_proc_wait_for(th_proc *p, const char *needle, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    while (!strstr(p->log, needle)) {
        int64_t left = end - th_now_ms();
        if (left <= 0 || !read_some(p, (int)left))
            return strstr(p->log, needle) != NULL;
    }
    return true;
}

int th_proc_stop(th_proc *p)
{
    int st = 0;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (p->out >= 0)
        close(p->out);
    p->pid = -1;
    p->out = -1;
    return st;
}

int th_proc_exit_code(th_proc *p, int timeout_ms)
{
    int64_t end = th_now_ms() + timeout_ms;
    while (th_now_ms() < end && read_some(p, (int)(end - th_now_ms())))
        ;
    if (th_now_ms() >= end) { /* still talking: hung */
        th_proc_stop(p);
        return -1;
    }
    /* Its output ended: it is exiting. */
    int st = 0;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    close(p->out);
    p->pid = -1;
    p->out = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_free_port(void)
{
    int port = 0;
    int fd = th_raw_listen("127.0.0.1", 1, &port);
    close(fd);
    return port;
}

bool th_have_program(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t k = strcspn(p, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)k, p, prog);
        if (access(buf, X_OK) == 0)
            return true;
        p += k + (p[k] == ':');
    }
    return false;
}
