/* SPDX-License-Identifier: MIT */
/* Shared parts of the TLS tests: the throw-away PKI, configurations, a
 * one-connection TLS server thread, and spawned OpenSSL/curl/nginx peers. */
#ifndef TH_TLS_UTIL_H
#define TH_TLS_UTIL_H

#include "helpers.h"

#include <stdbool.h>
#include <sys/types.h>

/* Generates the PKI (make-certs.sh) into a fresh directory under the build
 * dir (TH_TLS_TMP); th_tls_certs_remove deletes it. Call from main(). */
void th_tls_certs_make(void);
void th_tls_certs_remove(void);
/* Path of a generated file ("server.pem"), in one of 16 rotating buffers. */
const char *th_pem(const char *file);

/* A server configuration with <name>.pem/<name>.key; a client one that
 * trusts ca.pem. Both ck_assert success. */
tcpkit_tls *th_tls_server(const char *name);
tcpkit_tls *th_tls_client(void);
/* Options holding cfg (the opts keep their own reference). */
tcpkit_opts *th_tls_opts(tcpkit_tls *cfg);

/* A one-connection server: a thread accepts one conn from l, runs the
 * handshake (result in hs, message in hs_msg) and, if it worked, fn. */
typedef struct th_tls_srv th_tls_srv;
struct th_tls_srv {
    tcpkit_listener *l;
    char port[8];
    th_peer peer;
    void (*fn)(th_tls_srv *s, tcpkit_conn *c);
    tcpkit_err hs;
    char hs_msg[320];
    char info[5][256]; /* tcpkit_conn_tls_info after the handshake */
    void *arg;
};
/* Listens on 127.0.0.1 with cfg and starts the thread. */
void th_tls_srv_start(th_tls_srv *s, tcpkit_tls *cfg, void (*fn)(th_tls_srv *, tcpkit_conn *));
/* A th_tls_srv fn: echoes one line, then sends close_notify. */
void th_tls_echo_line(th_tls_srv *s, tcpkit_conn *c);
/* Joins the thread and closes the listener. */
void th_tls_srv_join(th_tls_srv *s);

/* Spawns argv (stdout+stderr to a pipe read by th_proc_wait_for); kill
 * and reap with th_proc_stop. */
typedef struct th_proc {
    pid_t pid;
    int out; /* read end of its stdout+stderr */
    char log[8192];
    size_t len;
} th_proc;
void th_proc_spawn(th_proc *p, char *const argv[], int stdin_fd);
/* Reads its output until it contains needle (true) or timeout/EOF. */
bool th_proc_wait_for(th_proc *p, const char *needle, int timeout_ms);
/* SIGTERM, waitpid; returns the wait status. */
int th_proc_stop(th_proc *p);
/* Waits for it to exit by itself (up to timeout_ms, then kills it);
 * returns the exit code, or -1. Drains its output into log. */
int th_proc_exit_code(th_proc *p, int timeout_ms);

/* A loopback port that was free a moment ago (bind port 0, close). */
int th_free_port(void);
/* True if prog is on PATH. */
bool th_have_program(const char *prog);

#endif
