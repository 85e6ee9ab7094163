/* SPDX-License-Identifier: MIT */
/* Our own socket BIO. OpenSSL's socket BIO calls write(), which raises
 * SIGPIPE on a vanished peer; this one sends with MSG_NOSIGNAL, for data
 * and close_notify alike, and never blocks (the socket is non-blocking). */
#include "internal.h"
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

struct bio_sock {
    int fd;
    int *err; /* where the errno of a failed call goes */
};

static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

/* EAGAIN becomes a retry; anything else is left for SSL_ERROR_SYSCALL. */
static int finish(BIO *b, ssize_t r, bool reading)
{
    BIO_clear_retry_flags(b);
    if (r >= 0)
        return (int)r;
    struct bio_sock *s = BIO_get_data(b);
    *s->err = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        if (reading)
            BIO_set_retry_read(b);
        else
            BIO_set_retry_write(b);
    }
    return -1;
}

static int sock_write(BIO *b, const char *buf, int len)
{
    struct bio_sock *s = BIO_get_data(b);
    return finish(b, send(s->fd, buf, (size_t)len, MSG_NOSIGNAL), false);
}

static int sock_read(BIO *b, char *buf, int len)
{
    struct bio_sock *s = BIO_get_data(b);
    ssize_t r = recv(s->fd, buf, (size_t)len, 0);
    if (r == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return finish(b, r, true);
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* nothing is buffered here */
    case BIO_CTRL_EOF:
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
        return 0;
    }
}

static int sock_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    return 1;
}

static void method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tcpkit socket");
    if (!m)
        return;
    BIO_meth_set_write(m, sock_write);
    BIO_meth_set_read(m, sock_read);
    BIO_meth_set_ctrl(m, sock_ctrl);
    BIO_meth_set_destroy(m, sock_destroy);
    method = m;
}

BIO *tk_tls_bio_new(int fd, int *err)
{
    pthread_once(&method_once, method_init);
    struct bio_sock *s = malloc(sizeof *s);
    BIO *b = method && s ? BIO_new(method) : NULL;
    if (!b) {
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->err = err;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    return b;
}
