/* SPDX-License-Identifier: MIT */
/* Names, ports and literals: what connect and listen accept as a host and a
 * port, and getaddrinfo() for the rest. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 6335 section 5.1 service name syntax, narrowed to names that start
 * with a letter: a string that starts with a digit is a number, so "80x"
 * and "0x50" are malformed numbers, as DESIGN.md section 3 lists them. */
#define TK_SERVICE_MAX 15

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_service_name(const char *s)
{
    if (!is_alpha(s[0]))
        return false;
    size_t n = 1;
    for (const char *p = s + 1; *p; p++, n++) {
        bool hyphen_ok = *p == '-' && p[-1] != '-' && p[1] != '\0';
        if (!is_alpha(*p) && !is_digit(*p) && !hyphen_ok)
            return false;
    }
    return n <= TK_SERVICE_MAX;
}

/* 1-5 ASCII digits, decimal (leading zeros allowed, never octal); -1 for
 * any other string. */
static long parse_port_number(const char *s)
{
    long v = 0;
    size_t n = 0;
    for (; is_digit(s[n]); n++)
        v = n < 5 ? v * 10 + (s[n] - '0') : v;
    return (n == 0 || n > 5 || s[n] != '\0') ? -1 : v;
}

tcpkit_err tk_check_port(const char *port, int min_port, const char *op)
{
    if (!port || !*port)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: port is NULL or empty", op);
    if (is_service_name(port))
        return TCPKIT_OK; /* getaddrinfo looks it up */
    /* Nothing else may reach the resolver: it skips blanks and keeps the
     * low 16 bits of big numbers (" 70000" would become 4464). */
    long v = parse_port_number(port);
    if (v < 0)
        return tk_fail(TCPKIT_EINVAL, 0,
                       "%s: port \"%.32s\" is neither 1-5 digits nor a service name", op, port);
    if (v < min_port || v > 65535)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: port \"%s\" out of range %d-65535", op, port,
                       min_port);
    return TCPKIT_OK;
}

tcpkit_err tk_clean_host(const char *host, char *buf, size_t cap, const char *op)
{
    size_t n = strlen(host);
    if (n > TK_HOST_MAX)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: host name longer than %d bytes", op, TK_HOST_MAX);
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= cap)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: host is empty", op);
    memcpy(buf, host, n);
    buf[n] = '\0';
    return TCPKIT_OK;
}

void tk_format_label(char *buf, size_t cap, const char *host, const char *port)
{
    if (!host)
        snprintf(buf, cap, "*:%s", port);
    else
        snprintf(buf, cap, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

/* Numeric hosts skip getaddrinfo(): no allocation, no resolver, and the
 * connection rate of literal addresses stays that of raw connect(). */
bool tk_parse_numeric(const char *host, const char *port, tcpkit_family fam, struct tk_target *t)
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
bool tk_is_excluded_literal(const char *host, tcpkit_family fam)
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

struct lookup {
    const char *host, *port;
    const struct addrinfo *hints;
    struct addrinfo *res;
    int rc, err;
};

static void lookup_run(void *p)
{
    struct lookup *q = p;
    q->rc = getaddrinfo(q->host, q->port, q->hints, &q->res);
    q->err = errno;
}

tcpkit_err tk_resolve(const char *host, const char *port, tcpkit_family fam, bool passive,
                      const char *op, const char *label, struct tk_target **out, size_t *count)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    hints.ai_family = fam == TCPKIT_FAMILY_IPV4   ? AF_INET
                      : fam == TCPKIT_FAMILY_IPV6 ? AF_INET6
                                                  : AF_UNSPEC;
    struct lookup q = {.host = host, .port = port, .hints = &hints};
    /* On a fiber the lookup runs on a helper thread, so that only this
     * fiber waits for the resolver; if no helper can be had, it runs here
     * (slow for the loop, but still correct). */
    if (tcpkit_run_blocking(lookup_run, &q) != TCPKIT_OK)
        lookup_run(&q);
    struct addrinfo *res = q.res;
    if (q.rc != 0) {
        errno = q.err;
        return resolve_failed(q.rc, op, label);
    }
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
