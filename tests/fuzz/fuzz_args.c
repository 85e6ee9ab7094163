/* SPDX-License-Identifier: MIT */
/* libFuzzer target: argument handling of tcpkit_connect and tcpkit_listen
 * (host, port, options) with numeric hosts only.
 *
 * No name lookup may leave the machine: the process first moves into a
 * private network namespace with only loopback (when it can), and every
 * host string is filtered anyway: it is used only if it is empty, longer
 * than a DNS name may be (rejected before any lookup), or a numeric
 * loopback address, bracketed or not; anything else becomes "127.0.0.1"
 * so the input still exercises the port and option paths. Ports are
 * arbitrary strings (service names come from /etc/services). Outside the
 * namespace, listeners bind only port "0".
 *
 * Every call must return a defined tcpkit_err, write its out-parameter,
 * leave a message on failure, and leave no descriptor open. */
#include "helpers.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_args: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool private_netns;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    private_netns = th_enter_private_netns();
    if (!private_netns)
        fprintf(stderr, "fuzz_args: no private network namespace; loopback literals only\n");
    return 0;
}

/* True if host can reach no resolver: empty, too long for a DNS name, or
 * a numeric loopback address (IPv6 optionally in brackets). */
static bool host_is_safe(const char *host)
{
    size_t n = strlen(host);
    if (n == 0 || n > 253)
        return true;
    char bare[256];
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
        memcpy(bare, host + 1, n - 2);
        bare[n - 2] = '\0';
    } else {
        memcpy(bare, host, n + 1);
    }
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, bare, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, bare, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

static bool port_is_fixed(const char *port)
{
    return strcmp(port, "0") != 0 && strspn(port, "0123456789") == strlen(port) && *port;
}

static void check_failure(tcpkit_err err)
{
    CHECK(err >= TCPKIT_OK && err <= TCPKIT_ECANCELED);
    if (err != TCPKIT_OK)
        CHECK(tcpkit_last_error()[0] != '\0');
}

static void try_listen(const char *host, const char *port, const tcpkit_opts *o)
{
    tcpkit_listener *l = (tcpkit_listener *)8;
    tcpkit_err err = tcpkit_listen(&l, host, port, o);
    check_failure(err);
    if (err != TCPKIT_OK) {
        CHECK(l == NULL);
        return;
    }
    char addr[TCPKIT_ADDRSTRLEN];
    CHECK(tcpkit_listener_port(l) > 0);
    CHECK(tcpkit_listener_addr(l, addr, sizeof addr) == TCPKIT_OK);
    /* A client to it, accepted and dropped. */
    char p[16];
    snprintf(p, sizeof p, "%d", tcpkit_listener_port(l));
    tcpkit_conn *c = NULL, *s = NULL;
    const char *target = strchr(addr, '[') ? "::1" : "127.0.0.1";
    if (tcpkit_connect(&c, target, p, o) == TCPKIT_OK && tcpkit_accept(l, &s, 1000) == TCPKIT_OK) {
        CHECK(tcpkit_conn_peer(s, addr, sizeof addr) == TCPKIT_OK);
        tcpkit_close(s);
    }
    tcpkit_close(c);
    tcpkit_listener_close(l);
}

static void try_connect(const char *host, const char *port, const tcpkit_opts *o)
{
    tcpkit_conn *c = (tcpkit_conn *)8;
    tcpkit_err err = tcpkit_connect(&c, host, port, o);
    check_failure(err);
    CHECK((err == TCPKIT_OK) == (c != NULL));
    tcpkit_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint8_t flags = data[0], optb = data[1];
    size_t hlen = data[2];
    data += 3;
    size -= 3;
    if (hlen > size)
        hlen = size;
    char host[300], port[40];
    /* Host lengths above 255 come from repeating the bytes. */
    size_t full = (flags & 0x40) && hlen ? 254 + hlen % 8 : hlen;
    for (size_t i = 0; i < full && i < sizeof host - 1; i++)
        host[i] = (char)data[i % (hlen ? hlen : 1)];
    host[full < sizeof host ? full : sizeof host - 1] = '\0';
    size_t plen = size - hlen < sizeof port - 1 ? size - hlen : sizeof port - 1;
    memcpy(port, data + hlen, plen);
    port[plen] = '\0';

    if (!host_is_safe(host))
        snprintf(host, sizeof host, "127.0.0.1");

    tcpkit_opts *o = NULL;
    if ((flags & 0x80) && tcpkit_opts_new(&o) == TCPKIT_OK) {
        tcpkit_opts_set_family(o, (tcpkit_family)(optb & 3));
        tcpkit_opts_set_v6only(o, optb & 4);
        tcpkit_opts_set_reuseport(o, optb & 8);
        tcpkit_opts_set_nodelay(o, optb & 16);
        tcpkit_opts_set_keepalive(o, (optb >> 5) - 1);
        tcpkit_opts_set_backlog(o, (int)(optb % 5) - 1);
        tcpkit_opts_set_fallback_delay(o, (optb & 0x30) ? 1 : 0);
        /* Loopback answers at once; bounded anyway. */
        tcpkit_opts_set_connect_timeout(o, optb % 50);
        tcpkit_opts_set_io_timeout(o, (int)(optb % 7) - 2);
    }
    int fds = th_count_fds();
    const char *h = (flags & 2) ? NULL : host;
    if (flags & 1) {
        if (!private_netns && port_is_fixed(port))
            snprintf(port, sizeof port, "0");
        try_listen(h, port, o);
    } else {
        try_connect(h, (flags & 4) ? NULL : port, o);
    }
    tcpkit_opts_free(o);
    CHECK(th_count_fds() == fds);
    return 0;
}
