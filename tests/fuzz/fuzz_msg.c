/* SPDX-License-Identifier: MIT */
/* libFuzzer target: tcpkit_recv_msg fed arbitrary peer bytes in arbitrary
 * chunks, mixed with recv_line (whose read-ahead recv_msg must drain
 * first) and plain recv.
 *
 * The input is a little program, as in fuzz_recv.c: write a chunk to the
 * peer end of a socketpair, half-close it, or call a receive function with
 * an argument from the input. The timeout is 0: a call never blocks, and
 * consumes every byte already there before it gives up. A model checks
 * each result against the contract (the frame parsed from the bytes
 * written, the announced length on ETOOBIG, "truncated" end of stream
 * with the partial body, nothing lost or reordered); any violation aborts.
 * Memory stays bounded: max is at most 16 KiB, and a larger announced
 * length must be refused before anything is allocated. */
#include "fuzz.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct model {
    tcpkit_conn *c;
    int peer;
    unsigned char *stream; /* everything written to the peer end */
    size_t written, pos;
    bool eof;
};

static size_t avail(const struct model *m)
{
    return m->written - m->pos;
}

static void op_write(struct model *m, struct th_input *in)
{
    size_t want = th_next(in) + 1;
    if (want > in->left)
        want = in->left;
    if (m->eof || want == 0)
        return;
    ssize_t n = write(m->peer, in->p, want);
    if (n > 0) {
        memcpy(m->stream + m->written, in->p, (size_t)n);
        m->written += (size_t)n;
    }
    in->p += want;
    in->left -= want;
}

static uint32_t header_at(const struct model *m)
{
    const unsigned char *h = m->stream + m->pos;
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

static bool truncated(void)
{
    return strstr(tcpkit_last_error(), "truncated") != NULL;
}

/* Not even a whole header there: a timeout consumes nothing, end of
 * stream everything. */
static void short_header(struct model *m, tcpkit_err err, void *data, size_t len)
{
    CHECK(data == NULL && len == 0);
    if (err == TCPKIT_ETIMEDOUT) {
        CHECK(!m->eof);
        return;
    }
    CHECK(err == TCPKIT_EOF && m->eof && truncated() == (avail(m) > 0));
    m->pos = m->written;
}

/* A whole header there, announcing n <= max bytes. */
static void body(struct model *m, tcpkit_err err, const char *data, size_t len, uint32_t n)
{
    size_t have = avail(m) - 4 < n ? avail(m) - 4 : n;
    CHECK(data != NULL && len == have && data[len] == '\0');
    CHECK(memcmp(data, m->stream + m->pos + 4, len) == 0);
    if (err == TCPKIT_OK)
        CHECK(have == n);
    else if (err == TCPKIT_ETIMEDOUT)
        CHECK(have < n && !m->eof);
    else
        CHECK(err == TCPKIT_EOF && have < n && m->eof && truncated());
    m->pos += 4 + len;
}

static void op_msg(struct model *m, size_t max)
{
    void *data = (void *)8;
    size_t len = 12345;
    tcpkit_err err = tcpkit_recv_msg(m->c, &data, &len, max);
    if (avail(m) < 4) {
        short_header(m, err, data, len);
    } else if (header_at(m) > max) {
        CHECK(err == TCPKIT_ETOOBIG && data == NULL && len == header_at(m));
        m->pos += 4; /* the body stays unread */
    } else {
        body(m, err, data, len, header_at(m));
    }
    tcpkit_free(data);
}

static void op_recv(struct model *m, size_t cap, bool line)
{
    char *buf = malloc(cap);
    size_t n = 0;
    tcpkit_err err = line ? tcpkit_recv_line(m->c, buf, cap, &n) : tcpkit_recv(m->c, buf, cap, &n);
    CHECK(err == TCPKIT_OK || err == TCPKIT_ETOOBIG || err == TCPKIT_ETIMEDOUT ||
          err == TCPKIT_EOF);
    CHECK(n <= avail(m) && (n == 0 || memcmp(buf, m->stream + m->pos, n) == 0));
    m->pos += n;
    free(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    struct model m = {.peer = sv[1], .stream = malloc(size + 1)};
    struct sockaddr_storage none = {0};
    if (tk_conn_new(sv[0], (struct sockaddr *)&none, 0, 0, &m.c) != TCPKIT_OK) {
        close(sv[1]);
        free(m.stream);
        return 0;
    }
    struct th_input in = {data, size};
    while (in.left) {
        unsigned op = th_next(&in) % 6;
        if (op <= 1) {
            op_write(&m, &in);
            continue;
        }
        unsigned arg = th_next(&in);
        if (op == 2) {
            if (!m.eof)
                shutdown(m.peer, SHUT_WR);
            m.eof = true;
        } else if (op == 3) {
            op_msg(&m, (size_t)arg * arg / 4 + 1); /* 1 .. 16257 */
        } else {
            op_recv(&m, (arg & 0x3f) + 1, op == 4);
        }
    }
    tcpkit_close(m.c);
    close(sv[1]);
    free(m.stream);
    return 0;
}
