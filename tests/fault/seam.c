/* SPDX-License-Identifier: MIT */
/* The syscall seam: __wrap_X for every call listed in meson.build's
 * --wrap options (see seam.h). Without rules every wrapper is a plain
 * forward to __real_X. */
#include "seam.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The real functions, as the linker provides them under --wrap. */
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int __real_connect(int fd, const struct sockaddr *sa, socklen_t len);
int __real_socket(int domain, int type, int protocol);
int __real_bind(int fd, const struct sockaddr *sa, socklen_t len);
int __real_eventfd(unsigned int initval, int flags);
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
ssize_t __real_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t __real_sendfile64(int out, int in, off_t *off, size_t count);

/* The wrappers: declared here because nothing else names them. */
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len);
int __wrap_socket(int domain, int type, int protocol);
int __wrap_bind(int fd, const struct sockaddr *sa, socklen_t len);
int __wrap_eventfd(unsigned int initval, int flags);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t __wrap_sendfile64(int out, int in, off_t *off, size_t count);

#define TF_MAX_RULES 16

struct rule_state {
    tf_rule r;
    unsigned long seen; /* calls of this kind the rule has looked at */
    long hits;
};

/* Thread-local: a rule never leaks into a peer thread or into Check. */
static _Thread_local struct rule_state rules[TF_MAX_RULES];
static _Thread_local int nrules;
static _Thread_local size_t max_alloc;

static atomic_ulong call_count[TF_NCALLS];
static atomic_bool held;

int tf_add(tf_rule r)
{
    if (nrules >= TF_MAX_RULES)
        abort(); /* a test bug: never silently drop a fault */
    if (r.every == 0)
        r.every = 1;
    rules[nrules] = (struct rule_state){.r = r};
    return nrules++;
}

int tf_fail(tf_call c, int err, unsigned skip, unsigned every, long times)
{
    return tf_add((tf_rule){
        .call = c, .action = TF_FAIL, .err = err, .skip = skip, .every = every, .times = times});
}

int tf_short(tf_call c, size_t max, long times)
{
    return tf_add((tf_rule){.call = c, .action = TF_SHORT, .max = max, .times = times});
}

long tf_hits(int id)
{
    return id >= 0 && id < nrules ? rules[id].hits : -1;
}

void tf_reset(void)
{
    nrules = 0;
    max_alloc = 0;
}

unsigned long tf_calls(tf_call c)
{
    return atomic_load(&call_count[c]);
}

void tf_hold(bool on)
{
    atomic_store(&held, on);
}

size_t tf_max_alloc(void)
{
    return max_alloc;
}

/* What the rules of this thread say about the current call of kind c. */
struct verdict {
    const tf_rule *fail; /* a TF_FAIL / TF_FAIL_AFTER / TF_SLICE rule that acts */
    size_t max;          /* SIZE_MAX unless a TF_SHORT rule acts */
};

static bool rule_acts(struct rule_state *s)
{
    if (s->r.while_held && !atomic_load(&held))
        return false;
    unsigned long i = s->seen++;
    if (i < s->r.skip || (i - s->r.skip) % s->r.every != 0)
        return false;
    if (s->r.times > 0 && s->hits >= s->r.times)
        return false;
    s->hits++;
    return true;
}

static struct verdict judge(tf_call c)
{
    atomic_fetch_add(&call_count[c], 1);
    struct verdict v = {NULL, SIZE_MAX};
    for (int i = 0; i < nrules; i++) {
        struct rule_state *s = &rules[i];
        if (s->r.call != c || !rule_acts(s))
            continue;
        if (s->r.action == TF_SHORT) {
            if (s->r.max < v.max)
                v.max = s->r.max;
        } else if (!v.fail) {
            v.fail = &s->r;
        }
    }
    return v;
}

static int fail_with(int err)
{
    errno = err;
    return -1;
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    struct verdict v = judge(TF_SEND);
    if (v.fail && v.fail->action == TF_FAIL)
        return fail_with(v.fail->err);
    return __real_send(fd, buf, len < v.max ? len : v.max, flags);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    struct verdict v = judge(TF_RECV);
    if (v.fail && v.fail->action == TF_FAIL)
        return fail_with(v.fail->err);
    return __real_recv(fd, buf, len < v.max ? len : v.max, flags);
}

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    struct verdict v = judge(TF_POLL);
    if (!v.fail)
        return __real_poll(fds, n, timeout);
    if (v.fail->action != TF_SLICE)
        return fail_with(v.fail->err);
    /* A signal that arrives `max` ms into the wait. */
    int slice = v.fail->max > INT32_MAX ? INT32_MAX : (int)v.fail->max;
    if (timeout >= 0 && timeout <= slice)
        return __real_poll(fds, n, timeout);
    int r = __real_poll(fds, n, slice);
    return r == 0 ? fail_with(v.fail->err) : r;
}

int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    struct verdict v = judge(TF_ACCEPT);
    if (v.fail)
        return fail_with(v.fail->err);
    return __real_accept4(fd, sa, len, flags);
}

int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    struct verdict v = judge(TF_CONNECT);
    if (v.fail && v.fail->action == TF_FAIL)
        return fail_with(v.fail->err);
    int r = __real_connect(fd, sa, len);
    if (v.fail && (r == 0 || errno == EINPROGRESS))
        return fail_with(v.fail->err);
    return r;
}

int __wrap_socket(int domain, int type, int protocol)
{
    struct verdict v = judge(TF_SOCKET);
    if (v.fail)
        return fail_with(v.fail->err);
    return __real_socket(domain, type, protocol);
}

int __wrap_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    struct verdict v = judge(TF_BIND);
    if (v.fail)
        return fail_with(v.fail->err);
    return __real_bind(fd, sa, len);
}

int __wrap_eventfd(unsigned int initval, int flags)
{
    struct verdict v = judge(TF_EVENTFD);
    if (v.fail)
        return fail_with(v.fail->err);
    return __real_eventfd(initval, flags);
}

/* ---- allocations ---- */

static bool alloc_fails(size_t n)
{
    if (n > max_alloc)
        max_alloc = n;
    struct verdict v = judge(TF_ALLOC);
    if (!v.fail)
        return false;
    errno = ENOMEM;
    return true;
}

void *__wrap_malloc(size_t n)
{
    return alloc_fails(n) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    size_t total = (size && n > SIZE_MAX / size) ? SIZE_MAX : n * size;
    return alloc_fails(total) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return alloc_fails(n) ? NULL : __real_realloc(p, n);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    struct verdict v = judge(TF_THREAD);
    if (v.fail)
        return v.fail->err;
    return __real_pthread_create(t, attr, fn, arg);
}

/* ---- vectored and file sends ---- */

/* The library hands sendmsg at most 1024 buffers (tcpkit_sendv's limit). */
#define TF_IOV_MAX 1024

ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags)
{
    struct verdict v = judge(TF_SENDMSG);
    if (v.fail && v.fail->action == TF_FAIL)
        return fail_with(v.fail->err);
    if (v.max == SIZE_MAX || m->msg_iovlen > TF_IOV_MAX)
        return __real_sendmsg(fd, m, flags);
    /* A short write: the same buffers, cut after max bytes. */
    struct iovec iov[TF_IOV_MAX];
    struct msghdr cut = *m;
    size_t room = v.max, n = 0;
    for (size_t i = 0; i < m->msg_iovlen && room > 0; i++) {
        iov[n] = m->msg_iov[i];
        if (iov[n].iov_len > room)
            iov[n].iov_len = room;
        room -= iov[n++].iov_len;
    }
    cut.msg_iov = iov;
    cut.msg_iovlen = n;
    return __real_sendmsg(fd, &cut, flags);
}

ssize_t __wrap_sendfile64(int out, int in, off_t *off, size_t count)
{
    struct verdict v = judge(TF_SENDFILE);
    if (v.fail && v.fail->action == TF_FAIL)
        return fail_with(v.fail->err);
    return __real_sendfile64(out, in, off, count < v.max ? count : v.max);
}
