/* SPDX-License-Identifier: MIT */
/* tcpkit_connect: race the addresses of a name (Happy Eyeballs, RFC 8305). */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The state of one Happy Eyeballs race. */
struct race {
    const struct tk_target *targets;
    size_t count;
    size_t next;            /* index of the next target to try */
    struct pollfd *pending; /* one slot per target; fd -1 when unused */
    tk_deadline deadline;   /* the connect timeout, over the whole race */
    tk_deadline fallback;   /* re-armed at every attempt start */
    int fallback_ms;
    /* An attempt failed since the last one started: RFC 8305 starts the
     * next at once rather than waiting out the fallback delay. */
    bool failed_since_start;
    const struct tcpkit_opts *opts; /* for the local address */
    tcpkit_err best;                /* most telling failure so far */
    int best_errno;
    char log[768]; /* "addr port N: reason; ..." for the message */
    size_t log_len;
};

/* Higher wins when attempts fail differently: a refusal proves the host is
 * there, unreachability says something about the path, a timeout little. */
static int err_rank(tcpkit_err e)
{
    switch (e) {
    case TCPKIT_EREFUSED:
        return 6;
    case TCPKIT_EUNREACH:
        return 5;
    case TCPKIT_EMFILE:
    case TCPKIT_ENOMEM:
        return 4;
    case TCPKIT_EACCES:
        return 3;
    case TCPKIT_ETIMEDOUT:
        return 1;
    default:
        return 2;
    }
}

static void race_note(struct race *r, size_t i, tcpkit_err e, int os_errno, const char *why)
{
    char addr[TCPKIT_ADDRSTRLEN];
    const struct tk_target *t = &r->targets[i];
    if (tk_format_addr((const struct sockaddr *)&t->addr, t->len, false, addr, sizeof addr) < 0)
        snprintf(addr, sizeof addr, "?");
    int port = ntohs(((const struct sockaddr_in *)(const void *)&t->addr)->sin_port);
    size_t room = sizeof r->log - r->log_len;
    int n = snprintf(r->log + r->log_len, room, "%s%s port %d: %s", r->log_len ? "; " : "", addr,
                     port, why);
    if (n > 0)
        r->log_len += (size_t)n < room ? (size_t)n : room - 1;
    r->failed_since_start = true;
    if (r->best == TCPKIT_OK || err_rank(e) > err_rank(r->best)) {
        r->best = e;
        r->best_errno = os_errno;
    }
}

/* Closes attempt i; a fiber's loop forgets the descriptor first. */
static void race_close_slot(struct race *r, size_t i)
{
    tk_wait_forget(r->pending[i].fd);
    close(r->pending[i].fd);
    r->pending[i].fd = -1;
}

static void race_fail_slot(struct race *r, size_t i, int e)
{
    race_close_slot(r, i);
    race_note(r, i, tk_err_from_errno(e), e, tk_errno_text(e));
}

/* Binds an attempt to the local address of the options, if any. With
 * port 0 the port is picked at connect() time rather than by bind()
 * (IP_BIND_ADDRESS_NO_PORT), so a bind does not reserve a port for every
 * destination and many outgoing connections do not exhaust them. */
static int bind_local(int fd, const struct tcpkit_opts *o)
{
    if (o->local_len == 0)
        return 0;
    /* sin_port and sin6_port sit at the same offset. */
    if (((const struct sockaddr_in *)(const void *)&o->local_addr)->sin_port == 0) {
        int on = 1;
        /* Older kernels lack it: bind() then picks the port, still fine. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
    }
    return bind(fd, (const struct sockaddr *)&o->local_addr, o->local_len);
}

/* Starts the next attempt. Returns the connected fd if connect() finished
 * at once (it can, on loopback), else -1. Failures are noted, not fatal. */
static int race_start_next(struct race *r)
{
    size_t i = r->next++;
    const struct tk_target *t = &r->targets[i];
    r->failed_since_start = false;
    r->fallback = tk_deadline_make(r->fallback_ms);
    tk_deadline_left(&r->fallback); /* arm it now */
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        race_note(r, i, tk_err_from_errno(errno), errno, tk_errno_text(errno));
        return -1;
    }
    r->pending[i].fd = fd;
    if (bind_local(fd, r->opts) < 0) {
        race_fail_slot(r, i, errno);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&t->addr, t->len) == 0) {
        r->pending[i].fd = -1;
        return fd;
    }
    /* EINTR on a non-blocking connect means it goes on asynchronously. */
    if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN)
        race_fail_slot(r, i, errno);
    return -1;
}

static bool race_has_pending(const struct race *r)
{
    for (size_t i = 0; i < r->next; i++)
        if (r->pending[i].fd >= 0)
            return true;
    return false;
}

/* Checks every attempt poll() flagged; returns a winner's fd or -1. */
static int race_collect(struct race *r, size_t *winner)
{
    for (size_t i = 0; i < r->next; i++) {
        if (r->pending[i].fd < 0 || !r->pending[i].revents)
            continue;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(r->pending[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr == 0) {
            int fd = r->pending[i].fd;
            r->pending[i].fd = -1;
            *winner = i;
            return fd;
        }
        race_fail_slot(r, i, soerr);
    }
    return -1;
}

static void race_close_all(struct race *r, bool note_timeout)
{
    for (size_t i = 0; i < r->next; i++) {
        if (r->pending[i].fd < 0)
            continue;
        race_close_slot(r, i);
        if (note_timeout)
            race_note(r, i, TCPKIT_ETIMEDOUT, ETIMEDOUT, "timed out");
    }
}

/* Milliseconds poll() may sleep: until the deadline, or until the next
 * attempt is due while untried addresses remain. */
static int race_wait_ms(struct race *r)
{
    int left = tk_deadline_left(&r->deadline);
    if (r->next >= r->count || !race_has_pending(r))
        return left;
    int fb = tk_deadline_left(&r->fallback);
    return (left < 0 || fb < left) ? fb : left;
}

/* Runs the race. Returns the connected fd (its target index in *winner),
 * or -1 with r->best describing the failure. */
static int race_run(struct race *r, size_t *winner)
{
    for (;;) {
        /* No new attempt once the deadline has passed; the first one
         * always starts, so timeout 0 still tries once. */
        bool in_time = r->next == 0 || tk_deadline_left(&r->deadline) != 0;
        bool start =
            in_time && r->next < r->count &&
            (!race_has_pending(r) || r->failed_since_start || tk_deadline_left(&r->fallback) == 0);
        if (start) {
            size_t i = r->next;
            int fd = race_start_next(r);
            if (fd >= 0) {
                *winner = i;
                return fd;
            }
            continue;
        }
        if (!race_has_pending(r))
            return -1; /* every address tried and failed */
        int wait_ms = race_wait_ms(r);
        int n = tk_poll(r->pending, r->next, wait_ms);
        if (n < 0 && errno != EINTR) {
            int e = errno;
            race_close_all(r, false);
            r->best = tk_err_from_errno(e);
            r->best_errno = e;
            return -1;
        }
        if (n > 0) {
            int fd = race_collect(r, winner);
            if (fd >= 0)
                return fd;
        }
        if (tk_deadline_left(&r->deadline) == 0) {
            race_close_all(r, true);
            return -1;
        }
    }
}

/* RFC 8305 section 4: alternate address families, starting with the
 * family of the first (most preferred) address. */
static void interleave(struct tk_target *t, size_t n)
{
    struct tk_target *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return; /* keep resolver order: still correct, just less eager */
    sa_family_t first = t[0].addr.ss_family;
    size_t a = 0, b = 0, k = 0;
    while (k < n) {
        bool want_first = (k % 2 == 0);
        size_t *cur = want_first ? &a : &b;
        while (*cur < n && (t[*cur].addr.ss_family == first) != want_first)
            (*cur)++;
        if (*cur >= n) {
            /* One family ran out: take the rest of the other in order. */
            cur = want_first ? &b : &a;
            while (*cur < n && (t[*cur].addr.ss_family == first) == want_first)
                (*cur)++;
        }
        tmp[k++] = t[(*cur)++];
    }
    memcpy(t, tmp, n * sizeof *tmp);
    free(tmp);
}

/* TLS over the won connection, inside what is left of the connect
 * timeout; a failure closes it. */
static tcpkit_err secure(tcpkit_conn **out, const struct tcpkit_opts *o, const char *name,
                         const char *label, tk_deadline *d)
{
    char op[TK_LABEL_MAX + 16];
    snprintf(op, sizeof op, "connect %s: TLS", label);
    tcpkit_err err = tk_conn_attach_tls(*out, o->tls, false, name, op);
    if (err == TCPKIT_OK)
        err = tk_conn_handshake(*out, d, op);
    if (err != TCPKIT_OK) {
        tcpkit_close(*out);
        *out = NULL;
    }
    return err;
}

static tcpkit_err race_targets(const struct tk_target *t, size_t n, const struct tcpkit_opts *o,
                               const char *name, const char *label, tcpkit_conn **out)
{
    struct race r = {.targets = t, .count = n, .fallback_ms = o->fallback_delay_ms, .opts = o};
    r.deadline = tk_deadline_make(o->connect_timeout_ms);
    tk_deadline_left(&r.deadline);
    struct pollfd one;
    r.pending = n == 1 ? &one : malloc(n * sizeof *r.pending);
    if (!r.pending)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "connect %s: out of memory", label);
    for (size_t i = 0; i < n; i++)
        r.pending[i] = (struct pollfd){.fd = -1, .events = POLLOUT};

    size_t win = 0;
    int fd = race_run(&r, &win);
    race_close_all(&r, false); /* the losers */
    if (r.pending != &one)
        free(r.pending);
    if (fd < 0)
        return tk_fail(r.best, r.best_errno, "connect %s: %s", label, r.log);

    tcpkit_err err = tk_apply_conn_options(fd, o);
    if (err != TCPKIT_OK) {
        tk_wait_forget(fd);
        close(fd);
        return err;
    }
    err = tk_conn_new(fd, (const struct sockaddr *)&t[win].addr, t[win].len, o->io_timeout_ms, out);
    if (err != TCPKIT_OK || !o->tls)
        return err;
    return secure(out, o, name, label, &r.deadline);
}

/* A local address narrows the targets to its own family. */
static tcpkit_err connect_family(const struct tcpkit_opts *o, const char *label, tcpkit_family *fam)
{
    *fam = o->family;
    if (o->local_len == 0)
        return TCPKIT_OK;
    tcpkit_family want =
        o->local_addr.ss_family == AF_INET ? TCPKIT_FAMILY_IPV4 : TCPKIT_FAMILY_IPV6;
    if (*fam != TCPKIT_FAMILY_ANY && *fam != want)
        return tk_fail(TCPKIT_ERESOLVE, 0,
                       "connect %s: the local address and the family option exclude each other",
                       label);
    *fam = want;
    return TCPKIT_OK;
}

static tcpkit_err family_excluded(const struct tcpkit_opts *o, const char *label)
{
    char local[TCPKIT_ADDRSTRLEN];
    if (o->local_len == 0 || tk_format_addr((const struct sockaddr *)&o->local_addr, o->local_len,
                                            false, local, sizeof local) < 0)
        return tk_fail(TCPKIT_ERESOLVE, 0, "connect %s: address family excluded by options", label);
    return tk_fail(TCPKIT_ERESOLVE, 0, "connect %s: no address of the family of local address %s",
                   label, local);
}

tcpkit_err tcpkit_connect(tcpkit_conn **out, const char *host, const char *port,
                          const tcpkit_opts *opts)
{
    if (out)
        *out = NULL;
    if (!out)
        return tk_fail(TCPKIT_EINVAL, 0, "connect: out is NULL");
    char name[TK_HOST_MAX + 1];
    if (!host || !*host)
        return tk_fail(TCPKIT_EINVAL, 0, "connect: host is NULL or empty");
    tcpkit_err err = tk_clean_host(host, name, sizeof name, "connect");
    if (err != TCPKIT_OK)
        return err;
    err = tk_check_port(port, 1, "connect");
    if (err != TCPKIT_OK)
        return err;

    const struct tcpkit_opts *o = tk_opts_or_default(opts);
    char label[TK_LABEL_MAX];
    tk_format_label(label, sizeof label, name, port);

    tcpkit_family fam;
    if ((err = connect_family(o, label, &fam)) != TCPKIT_OK)
        return err;
    struct tk_target one;
    if (tk_parse_numeric(name, port, fam, &one))
        return race_targets(&one, 1, o, name, label, out);
    if (tk_is_excluded_literal(name, fam))
        return family_excluded(o, label);

    struct tk_target *t;
    size_t n;
    err = tk_resolve(name, port, fam, false, "connect", label, &t, &n);
    if (err != TCPKIT_OK)
        return err;
    interleave(t, n);
    err = race_targets(t, n, o, name, label, out);
    free(t);
    return err;
}
