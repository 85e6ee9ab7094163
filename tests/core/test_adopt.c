/* SPDX-License-Identifier: MIT */
/* 1.1: adopting descriptors (tcpkit_conn_from_fd, tcpkit_listener_from_fd,
 * systemd-style socket activation) and choosing the source address
 * (tcpkit_opts_set_local_addr). */
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int scaled(int ms)
{
    return ms * th_time_scale();
}

static int fd_flags(int fd)
{
    return fcntl(fd, F_GETFL);
}

/* The descriptor is still open and as it was: blocking, no close-on-exec
 * (the test created it so). */
static void expect_untouched(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fl & O_NONBLOCK, 0);
    ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
}

static void expect_conn_rejected(int fd)
{
    tcpkit_conn *c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_conn_from_fd(&c, fd, NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(tcpkit_last_error()[0] != '\0', "no message");
}

static void expect_listener_rejected(int fd)
{
    tcpkit_listener *l = (tcpkit_listener *)&l;
    ck_assert_int_eq(tcpkit_listener_from_fd(&l, fd, NULL), TCPKIT_EINVAL);
    ck_assert_ptr_null(l);
}

/* ---- conn_from_fd ---- */

START_TEST(conn_from_socketpair)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    tcpkit_conn *c = NULL;
    ck_assert_int_eq(tcpkit_conn_from_fd(&c, sv[0], NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_fd(c), sv[0]);
    ck_assert(fd_flags(sv[0]) & O_NONBLOCK);
    ck_assert(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
    char buf[TCPKIT_ADDRSTRLEN];
    ck_assert_int_eq(tcpkit_conn_peer(c, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, "unix:");
    ck_assert_int_eq(tcpkit_conn_local(c, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, "unix:");
    /* It works as any conn. */
    ck_assert_int_eq(tcpkit_conn_set_timeout(c, scaled(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_send_msg(c, "ping", 4, NULL), TCPKIT_OK);
    char got[8];
    ck_assert_int_eq(recv(sv[1], got, 8, MSG_WAITALL), 8);
    ck_assert_mem_eq(got, "\0\0\0\4ping", 8);
    ck_assert_int_eq(send(sv[1], "pong\n", 5, 0), 5);
    ck_assert_int_eq(tcpkit_recv_line(c, buf, sizeof buf, NULL), TCPKIT_OK);
    ck_assert_str_eq(buf, "pong\n");
    /* The conn owns the descriptor: closing it closes sv[0] (the fd
     * check of the test case catches a leak). */
    tcpkit_close(c);
    ck_assert_int_eq(recv(sv[1], got, 1, 0), 0);
    close(sv[1]);
}
END_TEST

START_TEST(conn_from_tcp_socket)
{
    int port = 0;
    int lfd = th_raw_listen("127.0.0.1", 4, &port);
    int fd = th_raw_connect("127.0.0.1", port);
    int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(s, 0);
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_io_timeout(o, 100), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_keepalive(o, 30), TCPKIT_OK);
    tcpkit_conn *c = NULL;
    ck_assert_int_eq(tcpkit_conn_from_fd(&c, fd, o), TCPKIT_OK);
    tcpkit_opts_free(o);
    int on = 0;
    socklen_t len = sizeof on;
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    ck_assert_int_eq(on, 1);
    ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len), 0);
    ck_assert_int_eq(on, 1);
    char buf[TCPKIT_ADDRSTRLEN], want[32];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    ck_assert_int_eq(tcpkit_conn_peer(c, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, want);
    /* The io timeout of the opts applies. */
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_recv(c, buf, sizeof buf, NULL), TCPKIT_ETIMEDOUT);
    ck_assert_int_lt(th_now_ms() - t0, scaled(5000));
    tcpkit_close(c);
    close(s);
    close(lfd);
}
END_TEST

START_TEST(conn_from_wrong_kinds)
{
    /* UDP, connected or not. */
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(udp, 0);
    expect_conn_rejected(udp);
    expect_untouched(udp);
    struct sockaddr_storage ss;
    socklen_t sl = th_loopback_sockaddr(AF_INET, 9, &ss);
    ck_assert_int_eq(connect(udp, (struct sockaddr *)&ss, sl), 0);
    expect_conn_rejected(udp);
    expect_untouched(udp);
    close(udp);
    /* A TCP socket that is not connected. */
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(tcp, 0);
    expect_conn_rejected(tcp);
    expect_untouched(tcp);
    close(tcp);
    /* A listening socket. */
    int port;
    int lfd = th_raw_listen("127.0.0.1", 4, &port);
    ck_assert_int_eq(fcntl(lfd, F_SETFD, 0), 0);
    expect_conn_rejected(lfd);
    expect_untouched(lfd);
    close(lfd);
    /* A pipe, a regular file, a closed number, -1. */
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    expect_conn_rejected(pfd[0]);
    expect_untouched(pfd[0]);
    expect_listener_rejected(pfd[0]);
    expect_untouched(pfd[0]);
    close(pfd[1]);
    int closed = pfd[1];
    expect_conn_rejected(closed);
    expect_listener_rejected(closed);
    close(pfd[0]);
    expect_conn_rejected(-1);
    expect_listener_rejected(-1);
    /* A NULL out-parameter leaves the descriptor alone too. */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(tcpkit_conn_from_fd(NULL, sv[0], NULL), TCPKIT_EINVAL);
    expect_untouched(sv[0]);
    /* A datagram socketpair. */
    int dv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM, 0, dv), 0);
    expect_conn_rejected(dv[0]);
    expect_untouched(dv[0]);
    close(dv[0]);
    close(dv[1]);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ---- listener_from_fd ---- */

START_TEST(listener_from_tcp_socket)
{
    int port;
    int lfd = th_raw_listen("127.0.0.1", 8, &port);
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_io_timeout(o, 100), TCPKIT_OK);
    tcpkit_listener *l = NULL;
    ck_assert_int_eq(tcpkit_listener_from_fd(&l, lfd, o), TCPKIT_OK);
    tcpkit_opts_free(o);
    ck_assert_int_eq(tcpkit_listener_fd(l), lfd);
    ck_assert_int_eq(tcpkit_listener_port(l), port);
    ck_assert(fd_flags(lfd) & O_NONBLOCK);
    tcpkit_conn *s = NULL;
    ck_assert_int_eq(tcpkit_accept(l, &s, 0), TCPKIT_ETIMEDOUT);
    int fd = th_raw_connect("127.0.0.1", port);
    ck_assert_int_eq(tcpkit_accept(l, &s, scaled(5000)), TCPKIT_OK);
    /* The opts apply to accepted conns: the io timeout. */
    char buf[8];
    int64_t t0 = th_now_ms();
    ck_assert_int_eq(tcpkit_recv(s, buf, sizeof buf, NULL), TCPKIT_ETIMEDOUT);
    ck_assert_int_lt(th_now_ms() - t0, scaled(5000));
    tcpkit_close(s);
    close(fd);
    /* Shutdown works as for tcpkit_listen. */
    tcpkit_listener_shutdown(l);
    ck_assert_int_eq(tcpkit_accept(l, &s, -1), TCPKIT_ESHUTDOWN);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(listener_from_wrong_kinds)
{
    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(tcp, 0);
    expect_listener_rejected(tcp);
    expect_untouched(tcp);
    close(tcp);
    int udp = socket(AF_INET6, SOCK_DGRAM, 0);
    if (udp >= 0) {
        expect_listener_rejected(udp);
        expect_untouched(udp);
        close(udp);
    }
    /* A connected stream socket is not a listener. */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    expect_listener_rejected(sv[0]);
    expect_untouched(sv[0]);
    ck_assert_int_eq(tcpkit_listener_from_fd(NULL, sv[0], NULL), TCPKIT_EINVAL);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

START_TEST(unix_listener_and_conns)
{
    char dir[] = "/tmp/tcpkit-unix-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    tcpkit_listener *l = NULL;
    ck_assert_int_eq(tcpkit_listener_from_fd(&l, lfd, NULL), TCPKIT_OK);
    char buf[TCPKIT_ADDRSTRLEN], want[sizeof sun.sun_path + 8];
    snprintf(want, sizeof want, "unix:%s", sun.sun_path);
    ck_assert_int_eq(tcpkit_listener_addr(l, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, want);
    ck_assert_int_eq(tcpkit_listener_port(l), -1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    tcpkit_conn *s = NULL;
    ck_assert_int_eq(tcpkit_accept(l, &s, scaled(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_peer(s, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, "unix:");
    ck_assert_int_eq(tcpkit_conn_local(s, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, want);
    /* A buffer too small for the path: EINVAL, nothing past cap. */
    memset(buf, 'X', sizeof buf);
    ck_assert_int_eq(tcpkit_conn_local(s, buf, 8), TCPKIT_EINVAL);
    ck_assert_int_eq(buf[8], 'X');
    ck_assert_int_eq(tcpkit_send_all(s, "hi", 2, NULL), TCPKIT_OK);
    char got[2];
    ck_assert_int_eq(recv(fd, got, 2, MSG_WAITALL), 2);
    /* A conn adopted from the client end names the server's path. */
    tcpkit_conn *c = NULL;
    ck_assert_int_eq(tcpkit_conn_from_fd(&c, fd, NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_peer(c, buf, sizeof buf), TCPKIT_OK);
    ck_assert_str_eq(buf, want);
    tcpkit_close(c);
    tcpkit_close(s);
    tcpkit_listener_close(l);
    unlink(sun.sun_path);
    rmdir(dir);
}
END_TEST

/* ---- socket activation ---- */

/* Formats n in decimal into buf (async-signal-safe, for the child). */
static void put_decimal(char *buf, long n)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    while (i > 0)
        *buf++ = tmp[--i];
    *buf = '\0';
}

START_TEST(socket_activation)
{
    const char *child = getenv("TH_ACTIVATE_CHILD");
    ck_assert_msg(child != NULL, "TH_ACTIVATE_CHILD not set");
    int port;
    int lfd = th_raw_listen("127.0.0.1", 4, &port);
    static char pid_env[48] = "LISTEN_PID=";
    char *const envp[] = {"LISTEN_FDS=1", pid_env, NULL};
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* As systemd does: the socket at fd 3, without close-on-exec. */
        if (lfd == 3)
            fcntl(3, F_SETFD, 0);
        else if (dup2(lfd, 3) != 3)
            _exit(120);
        put_decimal(pid_env + strlen("LISTEN_PID="), (long)getpid());
        char *const argv[] = {(char *)child, NULL};
        execve(child, argv, envp);
        _exit(121);
    }
    close(lfd);
    int fd = th_raw_connect("127.0.0.1", port);
    char buf[64];
    size_t n = th_raw_recv_all(fd, buf, sizeof buf - 1);
    buf[n] = '\0';
    close(fd);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    ck_assert_str_eq(buf, "hello from fd 3\n");
}
END_TEST

/* ---- local address ---- */

/* Connects to l with o; the server must see a peer address starting with
 * want, and the client's local address must be the same. */
static void expect_source(tcpkit_listener *l, const tcpkit_opts *o, const char *want)
{
    char port[16], buf[TCPKIT_ADDRSTRLEN];
    th_port_str(l, port, sizeof port);
    tcpkit_conn *c = NULL, *s = NULL;
    tcpkit_err e = tcpkit_connect(&c, "127.0.0.1", port, o);
    ck_assert_msg(e == TCPKIT_OK, "%s", tcpkit_last_error());
    ck_assert_int_eq(tcpkit_accept(l, &s, scaled(5000)), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_conn_peer(s, buf, sizeof buf), TCPKIT_OK);
    ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "peer %s, want %s", buf, want);
    ck_assert_int_eq(tcpkit_conn_local(c, buf, sizeof buf), TCPKIT_OK);
    ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "local %s, want %s", buf, want);
    tcpkit_close(c);
    tcpkit_close(s);
}

START_TEST(local_addr_seen_by_server)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, "127.0.0.2", NULL), TCPKIT_OK);
    expect_source(l, o, "127.0.0.2:");
    /* "0" is any port too, and a NULL host clears the option. */
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, "127.0.0.3", "0"), TCPKIT_OK);
    expect_source(l, o, "127.0.0.3:");
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, NULL, NULL), TCPKIT_OK);
    expect_source(l, o, "127.0.0.1:");
    tcpkit_opts_free(o);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(local_addr_family_mismatch)
{
    tcpkit_listener *l = th_listen_loopback("127.0.0.1");
    char port[16];
    th_port_str(l, port, sizeof port);
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, "::1", NULL), TCPKIT_OK);
    tcpkit_conn *c = (tcpkit_conn *)&c;
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", port, o), TCPKIT_ERESOLVE);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(tcpkit_last_error(), "::1") != NULL, "%s", tcpkit_last_error());
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, "[::1]", "0"), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_connect(&c, "127.0.0.1", port, o), TCPKIT_ERESOLVE);
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, "127.0.0.1", NULL), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_connect(&c, "::1", port, o), TCPKIT_ERESOLVE);
    ck_assert_ptr_null(c);
    /* Nothing was accepted. */
    tcpkit_conn *s = NULL;
    ck_assert_int_eq(tcpkit_accept(l, &s, 0), TCPKIT_ETIMEDOUT);
    tcpkit_opts_free(o);
    tcpkit_listener_close(l);
}
END_TEST

START_TEST(local_addr_setter_checks)
{
    tcpkit_opts *o;
    ck_assert_int_eq(tcpkit_opts_new(&o), TCPKIT_OK);
    const char *bad_hosts[] = {"localhost", "", "1.2.3.4.5", "127.0.0.1:80", "[::1", "::1]"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++)
        ck_assert_msg(tcpkit_opts_set_local_addr(o, bad_hosts[i], NULL) == TCPKIT_EINVAL, "%s",
                      bad_hosts[i]);
    /* Strictly malformed strings (" 80", "0x50") are th_check_port's
     * business and tested with it. */
    const char *bad_ports[] = {"65536", "-1", "", "80x", "no-such-service"};
    for (size_t i = 0; i < sizeof bad_ports / sizeof bad_ports[0]; i++)
        ck_assert_msg(tcpkit_opts_set_local_addr(o, "127.0.0.1", bad_ports[i]) == TCPKIT_EINVAL,
                      "%s", bad_ports[i]);
    ck_assert_int_eq(tcpkit_opts_set_local_addr(NULL, "127.0.0.1", NULL), TCPKIT_EINVAL);
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, "::", "0"), TCPKIT_OK);
    ck_assert_int_eq(tcpkit_opts_set_local_addr(o, "0.0.0.0", NULL), TCPKIT_OK);
    tcpkit_opts_free(o);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("core-adopt");
    TCase *tc = th_tcase("from_fd", 30);
    tcase_add_test(tc, conn_from_socketpair);
    tcase_add_test(tc, conn_from_tcp_socket);
    tcase_add_test(tc, conn_from_wrong_kinds);
    tcase_add_test(tc, listener_from_tcp_socket);
    tcase_add_test(tc, listener_from_wrong_kinds);
    tcase_add_test(tc, unix_listener_and_conns);
    tcase_add_test(tc, socket_activation);
    suite_add_tcase(su, tc);
    tc = th_tcase("local_addr", 30);
    tcase_add_test(tc, local_addr_seen_by_server);
    tcase_add_test(tc, local_addr_family_mismatch);
    tcase_add_test(tc, local_addr_setter_checks);
    suite_add_tcase(su, tc);
    return th_run_suite(su);
}
