/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the receive paths (recv, recv_line, recv_exact,
 * recv_all) fed an arbitrary byte stream in arbitrary chunks.
 *
 * The input is a little program: write a chunk to the peer end of a
 * socketpair, half-close it, or call one of the receive functions with a
 * capacity taken from the input. The connection's timeout is 0, so a call
 * never blocks: with nothing to read it returns TCPKIT_ETIMEDOUT, and the
 * next chunk arrives between calls, which exercises every "resume where
 * the last call stopped" path.
 *
 * A model checks each call against the contract: the bytes handed to the
 * caller, concatenated, are exactly the bytes written (nothing lost,
 * duplicated or reordered); lines end at their newline, fit the capacity
 * and are NUL-terminated; timeouts consume nothing from recv_line; EOF
 * comes only once everything was read. Any violation aborts. */
#include "internal.h"

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
            fprintf(stderr, "fuzz_recv: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct input {
    const uint8_t *p;
    size_t left;
};

static unsigned next(struct input *in)
{
    if (!in->left)
        return 0;
    in->left--;
    return *in->p++;
}

struct model {
    tcpkit_conn *c;
    int peer;
    char *stream; /* everything written to the peer end */
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

static void op_write(struct model *m, struct input *in)
{
    size_t want = next(in) + 1;
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
    struct model m = {.peer = sv[1], .stream = malloc(size + 1)};
    struct sockaddr_storage none = {0};
    if (tk_conn_new(sv[0], (struct sockaddr *)&none, 0, 0, &m.c) != TCPKIT_OK) {
        close(sv[1]);
        free(m.stream);
        return 0;
    }
    struct input in = {data, size};
    while (in.left && !m.done) {
        unsigned op = next(&in) % 7;
        if (op <= 1) {
            op_write(&m, &in);
            continue;
        }
        unsigned arg = next(&in);
        /* Mostly small capacities (they hit the edges), sometimes large. */
        size_t size_arg = (arg & 0x80) ? (size_t)(arg & 0x7f) * 97 + 1 : (size_t)(arg & 0x3f) + 1;
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
        default:
            op_all(&m, size_arg);
            break;
        }
    }
    tcpkit_close(m.c);
    close(sv[1]);
    free(m.stream);
    return 0;
}
