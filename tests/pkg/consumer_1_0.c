/* SPDX-License-Identifier: MIT */
/* A program written and built against the released 1.0 header (the
 * fixture tcpkit-1.0.h, `git show 0ef92d1:include/tcpkit.h`) and run
 * against the library being built: the 1.1 library must run it unchanged.
 * It exercises every 1.0 function family and the 1.0 error values, and
 * reports problems on stderr with exit status 1. */
#include "tcpkit-1.0.h"

#include <stdio.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s (%s)\n", what, tcpkit_last_error());
        failures++;
    }
}

static void errors_and_options(void)
{
    check(strcmp(TCPKIT_VERSION_STRING, "1.0.0") == 0, "built with the 1.0 header");
    check(strncmp(tcpkit_version(), "1.", 2) == 0, "runtime version 1.x");
    check(strcmp(tcpkit_strerror(TCPKIT_EREFUSED), "connection refused") == 0, "strerror");
    check(strcmp(tcpkit_strerror(TCPKIT_ESYS), "unknown error") != 0, "strerror(ESYS)");
    tcpkit_opts *o = NULL;
    check(tcpkit_opts_new(&o) == TCPKIT_OK, "opts_new");
    check(tcpkit_opts_set_io_timeout(o, 5000) == TCPKIT_OK, "set_io_timeout");
    check(tcpkit_opts_set_connect_timeout(o, 5000) == TCPKIT_OK, "set_connect_timeout");
    check(tcpkit_opts_set_family(o, TCPKIT_FAMILY_IPV4) == TCPKIT_OK, "set_family");
    check(tcpkit_opts_set_nodelay(o, true) == TCPKIT_OK, "set_nodelay");
    check(tcpkit_opts_set_keepalive(o, 0) == TCPKIT_OK, "set_keepalive");
    check(tcpkit_opts_set_backlog(o, 8) == TCPKIT_OK, "set_backlog");
    check(tcpkit_opts_set_reuseport(o, false) == TCPKIT_OK, "set_reuseport");
    check(tcpkit_opts_set_v6only(o, false) == TCPKIT_OK, "set_v6only");
    check(tcpkit_opts_set_fallback_delay(o, 250) == TCPKIT_OK, "set_fallback_delay");
    check(tcpkit_opts_set_backlog(o, 0) == TCPKIT_EINVAL, "EINVAL keeps its value");
    check(tcpkit_last_errno() == 0, "last_errno");
    tcpkit_opts_free(o);
}

static void conversation(void)
{
    tcpkit_listener *l = NULL;
    check(tcpkit_listen(&l, "127.0.0.1", "0", NULL) == TCPKIT_OK, "listen");
    if (!l)
        return;
    char port[16], addr[TCPKIT_ADDRSTRLEN];
    snprintf(port, sizeof port, "%d", tcpkit_listener_port(l));
    check(tcpkit_listener_fd(l) >= 0, "listener_fd");
    check(tcpkit_listener_addr(l, addr, sizeof addr) == TCPKIT_OK, "listener_addr");
    tcpkit_conn *c = NULL, *s = NULL;
    check(tcpkit_accept(l, &s, 0) == TCPKIT_ETIMEDOUT, "ETIMEDOUT keeps its value");
    check(tcpkit_connect(&c, "127.0.0.1", port, NULL) == TCPKIT_OK, "connect");
    check(tcpkit_accept(l, &s, 5000) == TCPKIT_OK, "accept");
    if (c && s) {
        char buf[64];
        size_t n = 0;
        void *all = NULL;
        check(tcpkit_conn_set_timeout(s, 5000) == TCPKIT_OK, "set_timeout");
        check(tcpkit_conn_fd(c) >= 0, "conn_fd");
        check(tcpkit_conn_peer(s, addr, sizeof addr) == TCPKIT_OK, "conn_peer");
        check(tcpkit_conn_local(s, addr, sizeof addr) == TCPKIT_OK, "conn_local");
        check(tcpkit_send_all(c, "line\nabcdrest", 13, &n) == TCPKIT_OK && n == 13, "send_all");
        check(tcpkit_close_write(c) == TCPKIT_OK, "close_write");
        check(tcpkit_recv_line(s, buf, sizeof buf, &n) == TCPKIT_OK && n == 5, "recv_line");
        check(tcpkit_recv_exact(s, buf, 4, &n) == TCPKIT_OK && n == 4, "recv_exact");
        check(tcpkit_recv(s, buf, 2, &n) == TCPKIT_OK && n == 2, "recv");
        check(tcpkit_recv_all(s, &all, &n, 100) == TCPKIT_OK && n == 2, "recv_all");
        tcpkit_free(all);
        check(tcpkit_recv(s, buf, sizeof buf, &n) == TCPKIT_EOF, "EOF keeps its value");
    }
    tcpkit_close(c);
    tcpkit_abort(s);
    tcpkit_listener_shutdown(l);
    check(tcpkit_serve(l, NULL, NULL, 1) == TCPKIT_EINVAL, "serve");
    check(tcpkit_accept(l, &s, -1) == TCPKIT_ESHUTDOWN, "ESHUTDOWN keeps its value");
    tcpkit_listener_close(l);
}

int main(void)
{
    errors_and_options();
    conversation();
    if (failures == 0)
        printf("a 1.0 program runs unchanged against libtcpkit %s\n", tcpkit_version());
    return failures ? 1 : 0;
}
