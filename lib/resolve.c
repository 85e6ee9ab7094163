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

tcpkit_err tk_check_port(const char *port, int min_port, const char *op)
{
    if (!port || !*port)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: port is NULL or empty", op);
    /* Anything that looks like a number is checked as one, so "-1" and
     * "65536" are argument errors rather than unknown service names. */
    const char *p = port;
    if (*p == '-' || *p == '+')
        p++;
    bool numeric = *p != '\0';
    for (const char *q = p; *q; q++)
        numeric = numeric && *q >= '0' && *q <= '9';
    if (!numeric)
        return TCPKIT_OK; /* a service name: getaddrinfo decides */
    long v = -1;
    if (*port != '-' && *port != '+' && strlen(p) <= 5)
        v = strtol(p, NULL, 10);
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
