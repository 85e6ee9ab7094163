/* SPDX-License-Identifier: MIT */
/* A tiny program built against an installed libtcpkit by the consumer
 * tests (pkg-config, CMake, Meson subproject): prints the library version
 * and sends one line over a loopback connection. Exit status 0 on success. */
#include <tcpkit.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, tcpkit_err e)
{
    fprintf(stderr, "%s: %s (%s)\n", what, tcpkit_strerror(e), tcpkit_last_error());
    return 1;
}

/* Listener on 127.0.0.1, port 0; a client connects and sends a line that
 * the accepted side reads back. The handshake completes in the backlog, so
 * one thread is enough. */
static int loopback_line(tcpkit_listener *l)
{
    char port[16];
    snprintf(port, sizeof port, "%d", tcpkit_listener_port(l));

    tcpkit_conn *client = NULL;
    tcpkit_err e = tcpkit_connect(&client, "127.0.0.1", port, NULL);
    if (e != TCPKIT_OK)
        return fail("connect", e);

    tcpkit_conn *server = NULL;
    e = tcpkit_accept(l, &server, 5000);
    if (e != TCPKIT_OK) {
        tcpkit_close(client);
        return fail("accept", e);
    }

    char line[64];
    size_t len = 0;
    e = tcpkit_send_all(client, "hello\n", 6, NULL);
    if (e == TCPKIT_OK)
        e = tcpkit_recv_line(server, line, sizeof line, &len);
    tcpkit_close(client);
    tcpkit_close(server);
    if (e != TCPKIT_OK)
        return fail("send/receive", e);
    if (len != 6 || strcmp(line, "hello\n") != 0) {
        fprintf(stderr, "received %zu bytes, not the line sent\n", len);
        return 1;
    }
    return 0;
}

int main(void)
{
    printf("libtcpkit %s (headers %s)\n", tcpkit_version(), TCPKIT_VERSION_STRING);
    if (strcmp(tcpkit_version(), TCPKIT_VERSION_STRING) != 0) {
        fprintf(stderr, "library and header versions differ\n");
        return 1;
    }

    tcpkit_listener *l = NULL;
    tcpkit_err e = tcpkit_listen(&l, "127.0.0.1", "0", NULL);
    if (e != TCPKIT_OK)
        return fail("listen", e);
    int rc = loopback_line(l);
    tcpkit_listener_close(l);
    if (rc == 0)
        printf("loopback line: ok\n");
    return rc;
}
