/* SPDX-License-Identifier: MIT */
/* The options object: defaults and range-checked setters. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const struct tcpkit_opts tk_defaults = {
    .connect_timeout_ms = -1,
    .io_timeout_ms = -1,
    .family = TCPKIT_FAMILY_ANY,
    .nodelay = true,
    .keepalive_idle_s = 0,
    .backlog = SOMAXCONN,
    .reuseport = false,
    .v6only = false,
    .fallback_delay_ms = 250,
    .serve_mode = TCPKIT_SERVE_FIBERS,
    .max_conns = 0,
    .serve_threads = 0,
    .stack_size = 0,
};

const struct tcpkit_opts *tk_opts_or_default(const tcpkit_opts *o)
{
    return o ? o : &tk_defaults;
}

tcpkit_err tcpkit_opts_new(tcpkit_opts **out)
{
    if (!out)
        return tk_fail(TCPKIT_EINVAL, 0, "opts_new: out is NULL");
    *out = malloc(sizeof **out);
    if (!*out)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "opts_new: out of memory");
    **out = tk_defaults;
    return TCPKIT_OK;
}

void tcpkit_opts_free(tcpkit_opts *o)
{
    if (o)
        tcpkit_tls_free(o->tls);
    free(o);
}

tcpkit_err tcpkit_opts_set_tls(tcpkit_opts *o, tcpkit_tls *t)
{
    if (!o)
        return tk_fail(TCPKIT_EINVAL, 0, "opts_set_tls: opts is NULL");
#ifndef TCPKIT_WITH_OPENSSL
    if (t)
        return tk_fail(TCPKIT_ENOTSUP, 0, "opts_set_tls: this libtcpkit was built without TLS");
#endif
    if (t)
        tk_tls_ref(t);
    tcpkit_tls_free(o->tls);
    o->tls = t;
    return TCPKIT_OK;
}

/* Every setter funnels through here so the NULL and range checks read the
 * same and record the same kind of message. */
static tcpkit_err check_setter(const tcpkit_opts *o, const char *name, bool in_range, int value)
{
    if (!o)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: opts is NULL", name);
    if (!in_range)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: value %d out of range", name, value);
    return TCPKIT_OK;
}

tcpkit_err tcpkit_opts_set_connect_timeout(tcpkit_opts *o, int ms)
{
    tcpkit_err err = check_setter(o, "opts_set_connect_timeout", ms >= -1, ms);
    if (err == TCPKIT_OK)
        o->connect_timeout_ms = ms;
    return err;
}

tcpkit_err tcpkit_opts_set_io_timeout(tcpkit_opts *o, int ms)
{
    tcpkit_err err = check_setter(o, "opts_set_io_timeout", ms >= -1, ms);
    if (err == TCPKIT_OK)
        o->io_timeout_ms = ms;
    return err;
}

tcpkit_err tcpkit_opts_set_family(tcpkit_opts *o, tcpkit_family f)
{
    bool known = f == TCPKIT_FAMILY_ANY || f == TCPKIT_FAMILY_IPV4 || f == TCPKIT_FAMILY_IPV6;
    tcpkit_err err = check_setter(o, "opts_set_family", known, (int)f);
    if (err == TCPKIT_OK)
        o->family = f;
    return err;
}

tcpkit_err tcpkit_opts_set_nodelay(tcpkit_opts *o, bool on)
{
    tcpkit_err err = check_setter(o, "opts_set_nodelay", true, on);
    if (err == TCPKIT_OK)
        o->nodelay = on;
    return err;
}

tcpkit_err tcpkit_opts_set_keepalive(tcpkit_opts *o, int idle_s)
{
    tcpkit_err err = check_setter(o, "opts_set_keepalive", idle_s >= 0, idle_s);
    if (err == TCPKIT_OK)
        o->keepalive_idle_s = idle_s;
    return err;
}

tcpkit_err tcpkit_opts_set_backlog(tcpkit_opts *o, int n)
{
    tcpkit_err err = check_setter(o, "opts_set_backlog", n >= 1, n);
    if (err == TCPKIT_OK)
        o->backlog = n;
    return err;
}

tcpkit_err tcpkit_opts_set_reuseport(tcpkit_opts *o, bool on)
{
    tcpkit_err err = check_setter(o, "opts_set_reuseport", true, on);
    if (err == TCPKIT_OK)
        o->reuseport = on;
    return err;
}

tcpkit_err tcpkit_opts_set_v6only(tcpkit_opts *o, bool on)
{
    tcpkit_err err = check_setter(o, "opts_set_v6only", true, on);
    if (err == TCPKIT_OK)
        o->v6only = on;
    return err;
}

tcpkit_err tcpkit_opts_set_fallback_delay(tcpkit_opts *o, int ms)
{
    tcpkit_err err = check_setter(o, "opts_set_fallback_delay", ms >= 0 && ms <= 60000, ms);
    if (err == TCPKIT_OK)
        o->fallback_delay_ms = ms;
    return err;
}

tcpkit_err tcpkit_opts_set_serve_mode(tcpkit_opts *o, tcpkit_serve_mode m)
{
    bool known = m == TCPKIT_SERVE_FIBERS || m == TCPKIT_SERVE_THREADS;
    tcpkit_err err = check_setter(o, "opts_set_serve_mode", known, (int)m);
    if (err == TCPKIT_OK)
        o->serve_mode = m;
    return err;
}

tcpkit_err tcpkit_opts_set_max_conns(tcpkit_opts *o, int n)
{
    tcpkit_err err = check_setter(o, "opts_set_max_conns", n >= 1, n);
    if (err == TCPKIT_OK)
        o->max_conns = n;
    return err;
}

tcpkit_err tcpkit_opts_set_serve_threads(tcpkit_opts *o, int n)
{
    tcpkit_err err = check_setter(o, "opts_set_serve_threads", n >= 0, n);
    if (err == TCPKIT_OK)
        o->serve_threads = n;
    return err;
}

tcpkit_err tcpkit_opts_set_stack_size(tcpkit_opts *o, size_t bytes)
{
    if (!o)
        return tk_fail(TCPKIT_EINVAL, 0, "opts_set_stack_size: opts is NULL");
    if (bytes < TK_STACK_MIN || bytes > TK_STACK_MAX)
        return tk_fail(TCPKIT_EINVAL, 0, "opts_set_stack_size: %zu bytes out of range", bytes);
    o->stack_size = bytes;
    return TCPKIT_OK;
}

struct tcpkit_opts tk_serve_opts(const tcpkit_opts *opts)
{
    struct tcpkit_opts o = *tk_opts_or_default(opts);
    bool fibers = o.serve_mode == TCPKIT_SERVE_FIBERS;
    if (o.max_conns == 0)
        o.max_conns = fibers ? 10000 : 1024;
    if (o.stack_size == 0)
        o.stack_size = fibers ? 256u * 1024u : 512u * 1024u;
    return o;
}

/* Literal addresses only, so the setter never reaches a resolver: IPv4 in
 * strict dotted form (inet_pton, not inet_aton's "127.1"), IPv6 with an
 * optional "%scope" (getaddrinfo with AI_NUMERICHOST parses it). */
tcpkit_err tcpkit_opts_set_local_addr(tcpkit_opts *o, const char *host, const char *port)
{
    const char *op = "opts_set_local_addr";
    if (!o)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: opts is NULL", op);
    if (!host) {
        o->local_len = 0;
        return TCPKIT_OK;
    }
    char name[TK_HOST_MAX + 1];
    tcpkit_err err = *host ? tk_clean_host(host, name, sizeof name, op)
                           : tk_fail(TCPKIT_EINVAL, 0, "%s: host is empty", op);
    if (err == TCPKIT_OK && port)
        err = tk_check_port(port, 0, op);
    if (err != TCPKIT_OK)
        return err;
    unsigned char v4[4];
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
    hints.ai_family = inet_pton(AF_INET, name, v4) == 1 ? AF_INET : AF_INET6;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(name, port ? port : "0", &hints, &res);
    if (rc != 0)
        return tk_fail(TCPKIT_EINVAL, 0, "%s: %s", op,
                       rc == EAI_SERVICE ? "unknown port or service"
                                         : "host is not a literal IPv4 or IPv6 address");
    memcpy(&o->local_addr, res->ai_addr, res->ai_addrlen);
    o->local_len = res->ai_addrlen;
    freeaddrinfo(res);
    return TCPKIT_OK;
}
