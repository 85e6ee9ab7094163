/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the receive paths (recv, recv_line, recv_exact,
 * recv_all) fed an arbitrary byte stream in arbitrary chunks.
 *
 * The input is a little program: write a chunk (or a bulk of up to 64 KiB)
 * to the peer end of a socketpair, half-close it, call one of the receive
 * functions with a capacity taken from the input (recv_all's max up to
 * 64 KiB, so its buffer grows past its first 16 KiB), change the
 * connection's timeout (0 to 5 ms: a call waits at most that long, with
 * nothing to read it returns TCPKIT_ETIMEDOUT, and the next chunk arrives
 * between calls, which exercises every "resume where the last call
 * stopped" path), or send_all a chunk or a bulk the other way, whose
 * bytes the peer must read back exactly (a timeout part-way reports in
 * *sent exactly what went out).
 *
 * A model checks each call against the contract: the bytes handed to the
 * caller, concatenated, are exactly the bytes written (nothing lost,
 * duplicated or reordered); lines end at their newline, fit the capacity
 * and are NUL-terminated; timeouts consume nothing from recv_line; EOF
 * comes only once everything was read. Any violation aborts. */
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
    char *stream; /* everything written to the peer end */
    size_t cap;   /* of stream */
    size_t written, pos;
    bool eof; /* the peer end is half-closed */
    bool done;
};

/* The caller got out[0..n): it must be the next n bytes of the stream. */
static void consumed(struct model *m, const char *out, size_t n)
{
    CHECK(n <= m->written - m->pos);
    CHECK(n == 0 || memcmp(out, m->stream + m->pos, n) == 0);
    m->pos += n;
}

/* Writes len bytes to the peer end (as many as fit) and records them. */
static void peer_write(struct model *m, const void *buf, size_t len)
{
    if (m->eof || len == 0)
        return;
    ssize_t n = write(m->peer, buf, len);
    if (n <= 0)
        return;
    if (m->written + (size_t)n > m->cap) {
        m->cap = (m->written + (size_t)n) * 2;
        m->stream = realloc(m->stream, m->cap);
        CHECK(m->stream != NULL);
    }
    memcpy(m->stream + m->written, buf, (size_t)n);
    m->written += (size_t)n;
}

static void op_write(struct model *m, struct th_input *in)
{
    size_t want = th_next(in) + 1;
    if (want > in->left)
        want = in->left;
    peer_write(m, in->p, want);
    in->p += want;
    in->left -= want;
}

/* A bulk of 1-64 KiB: a byte pattern that a newline every `every` bytes
 * breaks into lines. */
static void op_bulk(struct model *m, unsigned arg, unsigned every)
{
    size_t len = ((size_t)(arg & 0x3f) + 1) * 1024;
    char *buf = malloc(len);
    CHECK(buf != NULL);
    for (size_t i = 0; i < len; i++)
        buf[i] = every && i % (every + 1) == every ? '\n' : (char)('a' + i % 26);
    peer_write(m, buf, len);
    free(buf);
}

/* send_all the other way: the peer must read exactly *sent bytes, equal
 * to the start of what was given. A full socket buffer and a short
 * timeout give TCPKIT_ETIMEDOUT part-way. */
static void op_send(struct model *m, const char *buf, size_t len)
{
    size_t sent = 12345;
    tcpkit_err err = tcpkit_send_all(m->c, buf, len, &sent);
    CHECK(sent <= len);
    CHECK(err == TCPKIT_OK ? sent == len : err == TCPKIT_ETIMEDOUT && sent < len);
    char *got = malloc(sent + 1);
    CHECK(got != NULL);
    size_t n = 0;
    while (n < sent) {
        ssize_t r = read(m->peer, got + n, sent - n);
        CHECK(r > 0);
        n += (size_t)r;
    }
    CHECK(memcmp(got, buf, sent) == 0);
    char extra;
    CHECK(read(m->peer, &extra, 1) < 0); /* nothing more than reported */
    free(got);
}

/* send_all of len bytes: from the input while it lasts, then a pattern. */
static void op_send_input(struct model *m, struct th_input *in, size_t len)
{
    char *buf = malloc(len + 1);
    CHECK(buf != NULL);
    size_t from_input = len < in->left ? len : in->left;
    memcpy(buf, in->p, from_input);
    memset(buf + from_input, 's', len - from_input);
    in->p += from_input;
    in->left -= from_input;
    op_send(m, buf, len);
    free(buf);
}

static void op_line(struct model *m, size_t cap)
{
    char *buf = malloc(cap);
    size_t n = 12345;
    tcpkit_err err = tcpkit_recv_line(m->c, buf, cap, &n);
    CHECK(n < cap);
    switch (err) {
    case TCPKIT_OK:
        CHECK(n > 0 && buf[n] == '\0');
        CHECK(memchr(buf, '\n', n - 1) == NULL);
        /* Ends with its newline, or is the last, partial line. */
        CHECK(buf[n - 1] == '\n' || (m->eof && m->pos + n == m->written));
        break;
    case TCPKIT_ETOOBIG:
        CHECK(n == cap - 1 && buf[n] == '\0' && memchr(buf, '\n', n) == NULL);
        break;
    case TCPKIT_ETIMEDOUT:
        CHECK(n == 0 && !m->eof); /* nothing consumed; the partial line waits */
        break;
    case TCPKIT_EOF:
        CHECK(n == 0 && m->eof && m->pos == m->written);
        break;
    default:
        CHECK(!"unexpected recv_line result");
    }
    consumed(m, buf, n);
    free(buf);
}

static void op_exact(struct model *m, size_t len)
{
    char *buf = malloc(len + 1);
    size_t n = 12345;
    tcpkit_err err = tcpkit_recv_exact(m->c, buf, len, &n);
    CHECK(n <= len);
    if (err == TCPKIT_OK)
        CHECK(n == len);
    else if (err == TCPKIT_ETIMEDOUT)
        CHECK(n < len && !m->eof);
    else if (err == TCPKIT_EOF)
        CHECK(n < len && m->eof && m->pos + n == m->written);
    else
        CHECK(!"unexpected recv_exact result");
    consumed(m, buf, n);
    free(buf);
}

static void op_recv(struct model *m, size_t cap)
{
    char *buf = malloc(cap);
    size_t n = 12345;
    tcpkit_err err = tcpkit_recv(m->c, buf, cap, &n);
    if (err == TCPKIT_OK)
        CHECK(n >= 1 && n <= cap);
    else if (err == TCPKIT_ETIMEDOUT)
        CHECK(n == 0 && !m->eof && m->pos == m->written);
    else if (err == TCPKIT_EOF)
        CHECK(n == 0 && m->eof && m->pos == m->written);
    else
        CHECK(!"unexpected recv result");
    consumed(m, buf, n);
    free(buf);
}

static void op_all(struct model *m, size_t max)
{
    void *data = (void *)8;
    size_t n = 12345;
    tcpkit_err err = tcpkit_recv_all(m->c, &data, &n, max);
    CHECK(data != NULL || n == 0);
    CHECK(data == NULL || ((char *)data)[n] == '\0');
    if (err == TCPKIT_OK) {
        CHECK(m->eof && m->pos + n == m->written);
    } else if (err == TCPKIT_ETIMEDOUT) {
        CHECK(!m->eof && m->pos + n == m->written);
    } else if (err == TCPKIT_ETOOBIG) {
        /* The first max bytes are kept; the stream position after that is
         * not part of the contract, so the session ends here. */
        CHECK(n == max && m->written - m->pos > max);
        m->done = true;
    } else {
        CHECK(!"unexpected recv_all result");
    }
    consumed(m, data, n);
    tcpkit_free(data);
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
    struct model m = {.peer = sv[1], .stream = malloc(size + 1), .cap = size + 1};
    struct sockaddr_storage none = {0};
    if (tk_conn_new(sv[0], (struct sockaddr *)&none, 0, 0, &m.c) != TCPKIT_OK) {
        close(sv[1]);
        free(m.stream);
        return 0;
    }
    struct th_input in = {data, size};
    while (in.left && !m.done) {
        unsigned op = th_next(&in) % 11;
        if (op <= 1) {
            op_write(&m, &in);
            continue;
        }
        unsigned arg = th_next(&in);
        /* Mostly small capacities (they hit the edges), sometimes large,
         * sometimes past recv_all's first 16 KiB. */
        size_t size_arg = (arg & 0xc0) == 0xc0 ? ((size_t)(arg & 0x3f) + 1) * 1024
                          : (arg & 0x80)       ? (size_t)(arg & 0x7f) * 97 + 1
                                               : (size_t)(arg & 0x3f) + 1;
        switch (op) {
        case 2:
            if (!m.eof)
                shutdown(m.peer, SHUT_WR);
            m.eof = true;
            break;
        case 3:
            op_line(&m, size_arg);
            break;
        case 4:
            op_exact(&m, size_arg - 1);
            break;
        case 5:
            op_recv(&m, size_arg);
            break;
        case 6:
            op_all(&m, size_arg);
            break;
        case 7:
            tcpkit_conn_set_timeout(m.c, (int)(arg % 6));
            break;
        case 8:
            op_bulk(&m, arg, th_next(&in));
            break;
        default:
            op_send_input(&m, &in, op == 9 ? arg : (arg & 0x3f) * 8192);
            break;
        }
    }
    tcpkit_close(m.c);
    close(sv[1]);
    free(m.stream);
    return 0;
}
