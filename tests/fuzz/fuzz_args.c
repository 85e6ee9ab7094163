/* SPDX-License-Identifier: MIT */
/* libFuzzer target: argument handling of tcpkit_connect and tcpkit_listen
 * (host, port, options), with the host and port strings passed to the
 * library exactly as fuzzed: control bytes, "[::1", zone ids, "127.1"...
 * all reach host cleaning and port checking.
 *
 * No name lookup ever happens: the executable is linked with
 * -Wl,--wrap=getaddrinfo, and the wrapper below adds AI_NUMERICHOST to
 * every call the library makes, so a host that is not a numeric literal
 * fails inside getaddrinfo without consulting any resolver (service names
 * still come from /etc/services, a local file). On top of that the process
 * moves into a private network namespace with only loopback (when it can),
 * so nothing can leave the machine; outside it, listeners bind only port
 * "0" and connects go only to loopback.
 *
 * Every call must return a defined tcpkit_err, write its out-parameter,
 * leave a message on failure, and leave no descriptor open. The port rule
 * (DESIGN.md section 3) is checked independently: a malformed port string
 * must give TCPKIT_EINVAL. A successful call must land where it was asked:
 * the connection's peer (the listener's address) is the requested literal
 * and port. Options come from 4 input bytes each, so INT_MIN and INT_MAX
 * reach every setter. */
#include "fuzz.h"
#include "helpers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

/* Numeric hosts only, for the library and for this harness alike. */
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
    struct addrinfo h = {0};
    if (hints)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    return __real_getaddrinfo(node, service, &h, res);
}

static bool private_netns;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    private_netns = th_enter_private_netns();
    if (!private_netns)
        fprintf(stderr, "fuzz_args: no private network namespace; loopback, port 0 only\n");
    return 0;
}

/* ---- the contract, computed independently of the library ---- */

/* DESIGN.md section 3 "Ports": the port a string stands for, -1 for a
 * malformed string, -2 for a well-formed but unknown service name. */
static long contract_port(const char *s)
{
    size_t n = strlen(s);
    if (n >= 1 && n <= 5 && strspn(s, "0123456789") == n)
        return strtol(s, NULL, 10);
    if (n == 0 || n > 15 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z') || s[n - 1] == '-' ||
        strstr(s, "--") ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != n)
        return -1;
    struct servent *se = getservbyname(s, "tcp");
    return se ? ntohs((uint16_t)se->s_port) : -2;
}

/* The host as a numeric address (brackets tolerated), or false. */
static bool contract_host(const char *host, struct sockaddr_storage *ss)
{
    char bare[300];
    size_t n = strlen(host);
    if (n >= sizeof bare)
        return false;
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        memcpy(bare, host + 1, n - 2);
        bare[n - 2] = '\0';
    } else {
        memcpy(bare, host, n + 1);
    }
    /* glibc's getaddrinfo reads "*" as no host: the wildcard for listen,
     * the local host for connect (the unspecified address, below). */
    if (strcmp(bare, "*") == 0) {
        memset(ss, 0, sizeof *ss);
        ss->ss_family = AF_INET6;
        return true;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *res;
    if (bare[0] == '\0' || __real_getaddrinfo(bare, NULL, &hints, &res) != 0)
        return false;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return true;
}

/* Loopback only (127/8, ::1, their v4-mapped forms, link-local on lo). */
static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr) >> 24 == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* Same address, comparing v4 and v4-mapped v6 as equal; returns the port
 * of `got` in *port. */
static bool same_addr(const struct sockaddr_storage *want, const struct sockaddr_storage *got,
                      int *port)
{
    uint8_t w[16] = {0}, g[16] = {0};
    const struct sockaddr_storage *s[2] = {want, got};
    uint8_t *out[2] = {w, g};
    for (int i = 0; i < 2; i++) {
        if (s[i]->ss_family == AF_INET) {
            const struct sockaddr_in *in = (const void *)s[i];
            out[i][10] = out[i][11] = 0xff;
            memcpy(out[i] + 12, &in->sin_addr, 4);
            if (i == 1)
                *port = ntohs(in->sin_port);
        } else {
            const struct sockaddr_in6 *in6 = (const void *)s[i];
            memcpy(out[i], &in6->sin6_addr, 16);
            if (i == 1)
                *port = ntohs(in6->sin6_port);
        }
    }
    /* Connecting to the unspecified address reaches the local host: any
     * loopback peer counts. */
    static const uint8_t any4[16] = {[10] = 0xff, [11] = 0xff}, any6[16] = {0};
    if (memcmp(w, any4, 16) == 0 || memcmp(w, any6, 16) == 0)
        return true;
    return memcmp(w, g, 16) == 0;
}

static void check_failure(tcpkit_err err)
{
    CHECK(err >= TCPKIT_OK && err <= TCPKIT_ECANCELED);
    if (err != TCPKIT_OK)
        CHECK(tcpkit_last_error()[0] != '\0');
}

/* ---- the calls ---- */

static void try_listen(const char *host, const char *port, const tcpkit_opts *o)
{
    tcpkit_listener *l = (tcpkit_listener *)8;
    tcpkit_err err = tcpkit_listen(&l, host, port, o);
    check_failure(err);
    long want = port ? contract_port(port) : -1;
    if (want == -1 || want > 65535)
        CHECK(err == TCPKIT_EINVAL);
    if (err != TCPKIT_OK) {
        CHECK(l == NULL);
        return;
    }
    /* Landed where asked: that port (an ephemeral one for 0), that host. */
    CHECK(want >= 0);
    int got_port = tcpkit_listener_port(l);
    CHECK(want == 0 ? got_port > 0 : got_port == want);
    struct sockaddr_storage asked, bound;
    socklen_t len = sizeof bound;
    CHECK(getsockname(tcpkit_listener_fd(l), (struct sockaddr *)&bound, &len) == 0);
    if (host && *host) {
        int p;
        CHECK(contract_host(host, &asked) && same_addr(&asked, &bound, &p));
    }
    char addr[TCPKIT_ADDRSTRLEN];
    CHECK(tcpkit_listener_addr(l, addr, sizeof addr) == TCPKIT_OK);
    tcpkit_listener_close(l);
}

/* A listener on every loopback address at port, so that a connect there
 * succeeds; -1 when it cannot be had (then the connect is refused). */
static int listen_for(int port)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void try_connect(const char *host, const char *port, const tcpkit_opts *o)
{
    struct sockaddr_storage asked;
    bool numeric = host && contract_host(host, &asked);
    long want = port ? contract_port(port) : -1;
    /* Outside the private namespace, only loopback may be contacted. */
    if (!private_netns && numeric && !is_loopback(&asked))
        return;
    int srv = private_netns && want > 0 && want <= 65535 ? listen_for((int)want) : -1;
    tcpkit_conn *c = (tcpkit_conn *)8;
    tcpkit_err err = tcpkit_connect(&c, host, port, o);
    check_failure(err);
    CHECK((err == TCPKIT_OK) == (c != NULL));
    if (host && *host && (want == -1 || want == 0 || want > 65535))
        CHECK(err == TCPKIT_EINVAL);
    if (err == TCPKIT_OK) {
        /* Landed where asked: the literal's address, the port's number. */
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int p = -1;
        CHECK(numeric && want > 0);
        CHECK(getpeername(tcpkit_conn_fd(c), (struct sockaddr *)&peer, &len) == 0);
        CHECK(same_addr(&asked, &peer, &p) && p == want);
        char addr[TCPKIT_ADDRSTRLEN];
        CHECK(tcpkit_conn_peer(c, addr, sizeof addr) == TCPKIT_OK);
    }
    tcpkit_close(c);
    if (srv >= 0)
        close(srv);
}

/* ---- input ---- */

/* 4 bytes as an int (little-endian), 0 past the end: INT_MIN, INT_MAX and
 * everything between reach the setters. */
static int next_int(struct th_input *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint32_t b = in->left ? (in->left--, *in->p++) : 0;
        v |= b << (8 * i);
    }
    return (int)v;
}

static tcpkit_opts *fuzzed_opts(struct th_input *in)
{
    tcpkit_opts *o = NULL;
    if (tcpkit_opts_new(&o) != TCPKIT_OK)
        return NULL;
    int bits = next_int(in);
    tcpkit_opts_set_family(o, (tcpkit_family)next_int(in));
    tcpkit_opts_set_v6only(o, bits & 1);
    tcpkit_opts_set_reuseport(o, bits & 2);
    tcpkit_opts_set_nodelay(o, bits & 4);
    tcpkit_opts_set_keepalive(o, next_int(in));
    tcpkit_opts_set_backlog(o, next_int(in));
    tcpkit_opts_set_fallback_delay(o, next_int(in));
    tcpkit_opts_set_io_timeout(o, next_int(in));
    /* Loopback in a private namespace answers at once, but a connect
     * timeout bounds every input anyway. */
    int ct = next_int(in);
    tcpkit_opts_set_connect_timeout(o, (bits & 8) ? ct : ct % 200);
    return o;
}

/* Layout: flags, host length, port length, host bytes, port bytes, then
 * option values (4 bytes each) when flags & 0x80. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0];
    size_t hlen = data[1], plen = data[2];
    struct th_input in = {data + 3, size - 3};
    hlen = hlen > in.left ? in.left : hlen;
    char host[300], port[300];
    /* Host lengths above 255 come from repeating the bytes. */
    size_t full = (flags & 0x40) && hlen ? 254 + hlen % 8 : hlen;
    for (size_t i = 0; i < full; i++)
        host[i] = (char)in.p[i % (hlen ? hlen : 1)];
    host[full] = '\0';
    in.p += hlen;
    in.left -= hlen;
    plen = plen > in.left ? in.left : plen;
    memcpy(port, in.p, plen);
    port[plen] = '\0';
    in.p += plen;
    in.left -= plen;

    tcpkit_opts *o = (flags & 0x80) ? fuzzed_opts(&in) : NULL;
    int fds = th_count_fds();
    const char *h = (flags & 2) ? NULL : host;
    if (flags & 1) {
        long want = contract_port(port);
        if (!private_netns && want != 0 && want != -1)
            snprintf(port, sizeof port, "0");
        try_listen(h, (flags & 4) ? NULL : port, o);
    } else {
        try_connect(h, (flags & 4) ? NULL : port, o);
    }
    tcpkit_opts_free(o);
    CHECK(th_count_fds() == fds);
    return 0;
}
