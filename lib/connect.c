/* SPDX-License-Identifier: MIT */
/* tcpkit_connect: resolve a name, then race its addresses (RFC 8305). */
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
    tcpkit_err best; /* most telling failure so far */
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
    if (r->best == TCPKIT_OK || err_rank(e) > err_rank(r->best)) {
        r->best = e;
        r->best_errno = os_errno;
    }
}

static void race_fail_slot(struct race *r, size_t i, int e)
{
    close(r->pending[i].fd);
    r->pending[i].fd = -1;
    race_note(r, i, tk_err_from_errno(e), e, tk_errno_text(e));
}

/* Starts the next attempt. Returns the connected fd if connect() finished
 * at once (it can, on loopback), else -1. Failures are noted, not fatal. */
static int race_start_next(struct race *r)
{
    size_t i = r->next++;
    const struct tk_target *t = &r->targets[i];
    r->fallback = tk_deadline_make(r->fallback_ms);
    tk_deadline_left(&r->fallback); /* arm it now */
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        race_note(r, i, tk_err_from_errno(errno), errno, tk_errno_text(errno));
        return -1;
    }
    r->pending[i].fd = fd;
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
        close(r->pending[i].fd);
        r->pending[i].fd = -1;
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
        bool start = in_time && r->next < r->count &&
                     (!race_has_pending(r) || tk_deadline_left(&r->fallback) == 0);
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
        int n = poll(r->pending, r->next, wait_ms);
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

/* Numeric hosts skip getaddrinfo(): no allocation, no resolver, and the
 * connection rate of literal addresses stays that of raw connect(). */
static bool parse_numeric(const char *host, const char *port, tcpkit_family fam,
                          struct tk_target *t)
{
    char *end;
    long p = strtol(port, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535)
        return false;
    memset(t, 0, sizeof *t);
    struct sockaddr_in *in = (void *)&t->addr;
    struct sockaddr_in6 *in6 = (void *)&t->addr;
    if (fam != TCPKIT_FAMILY_IPV6 && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)p);
        t->len = sizeof *in;
        return true;
    }
    if (fam != TCPKIT_FAMILY_IPV4 && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        t->len = sizeof *in6;
        return true;
    }
    return false;
}

/* A literal of the family the options exclude must not go to the resolver,
 * which could treat it as a name and send a query. */
static bool is_excluded_literal(const char *host, tcpkit_family fam)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (fam == TCPKIT_FAMILY_IPV4)
        return inet_pton(AF_INET6, host, buf) == 1;
    if (fam == TCPKIT_FAMILY_IPV6)
        return inet_pton(AF_INET, host, buf) == 1;
    return false;
}

static tcpkit_err resolve_failed(int rc, const char *op, const char *label)
{
    if (rc == EAI_SYSTEM)
        return tk_fail(tk_err_from_errno(errno), errno, "%s %s: lookup: %s", op, label,
                       strerror(errno));
    if (rc == EAI_MEMORY)
        return tk_fail(TCPKIT_ENOMEM, 0, "%s %s: lookup: %s", op, label, gai_strerror(rc));
    return tk_fail(TCPKIT_ERESOLVE, 0, "%s %s: lookup: %s", op, label, gai_strerror(rc));
}

tcpkit_err tk_resolve(const char *host, const char *port, tcpkit_family fam, bool passive,
                      const char *op, const char *label, struct tk_target **out, size_t *count)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    hints.ai_family = fam == TCPKIT_FAMILY_IPV4   ? AF_INET
                      : fam == TCPKIT_FAMILY_IPV6 ? AF_INET6
                                                  : AF_UNSPEC;
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return resolve_failed(rc, op, label);
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n += ai->ai_addrlen <= sizeof(struct sockaddr_storage);
    struct tk_target *t = n ? calloc(n, sizeof *t) : NULL;
    if (!t) {
        freeaddrinfo(res);
        if (n == 0)
            return tk_fail(TCPKIT_ERESOLVE, 0, "%s %s: lookup: no addresses", op, label);
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s %s: out of memory", op, label);
    }
    size_t k = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
            continue;
        memcpy(&t[k].addr, ai->ai_addr, ai->ai_addrlen);
        t[k++].len = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    *out = t;
    *count = n;
    return TCPKIT_OK;
}

static tcpkit_err race_targets(const struct tk_target *t, size_t n, const struct tcpkit_opts *o,
                               const char *label, tcpkit_conn **out)
{
    struct race r = {.targets = t, .count = n, .fallback_ms = o->fallback_delay_ms};
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
        close(fd);
        return err;
    }
    return tk_conn_new(fd, (const struct sockaddr *)&t[win].addr, t[win].len, o->io_timeout_ms,
                       out);
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
    char label[TK_HOST_MAX + 48];
    snprintf(label, sizeof label, strchr(name, ':') ? "[%s]:%s" : "%s:%s", name, port);

    struct tk_target one;
    if (parse_numeric(name, port, o->family, &one))
        return race_targets(&one, 1, o, label, out);
    if (is_excluded_literal(name, o->family))
        return tk_fail(TCPKIT_ERESOLVE, 0, "connect %s: address family excluded by options", label);

    struct tk_target *t;
    size_t n;
    err = tk_resolve(name, port, o->family, false, "connect", label, &t, &n);
    if (err != TCPKIT_OK)
        return err;
    interleave(t, n);
    err = race_targets(t, n, o, label, out);
    free(t);
    return err;
}
