/* SPDX-License-Identifier: MIT */
/* The child of core-adopt's socket_activation test: a minimal service
 * started the way systemd starts a socket-activated one. It adopts the
 * listening socket at fd 3 (LISTEN_FDS=1, LISTEN_PID=its pid), accepts one
 * connection, greets it and exits 0; any problem is a non-zero exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcpkit.h"

/* sd_listen_fds(3) semantics: the variables are meant for this process. */
static int listen_fds(void)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    return (int)strtol(fds, NULL, 10);
}

int main(void)
{
    if (listen_fds() != 1) {
        fprintf(stderr, "activate_child: no LISTEN_FDS for this process\n");
        return 2;
    }
    tcpkit_listener *l;
    if (tcpkit_listener_from_fd(&l, 3, NULL) != TCPKIT_OK) {
        fprintf(stderr, "activate_child: %s\n", tcpkit_last_error());
        return 3;
    }
    tcpkit_conn *c;
    int rc = 0;
    if (tcpkit_accept(l, &c, 30000) != TCPKIT_OK) {
        fprintf(stderr, "activate_child: %s\n", tcpkit_last_error());
        rc = 4;
    } else {
        if (tcpkit_send_all(c, "hello from fd 3\n", 16, NULL) != TCPKIT_OK)
            rc = 5;
        tcpkit_close(c);
    }
    tcpkit_listener_close(l);
    return rc;
}
