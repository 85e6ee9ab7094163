/* SPDX-License-Identifier: MIT */
/* The event loop of one serve thread: its own epoll, a timer heap, a run
 * queue, and the fibers it runs. Fibers never move to another loop.
 *
 * Every descriptor a fiber waits on is registered once, edge-triggered for
 * reading and writing; events since the last wait are remembered as ready
 * bits, so a wait that comes after the edge still sees it. The callers (the
 * I/O calls) always try their system call before they wait, so a stale
 * ready bit costs one extra system call, never a missed wake-up. */
#include "fiber.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* epoll data of the descriptors that are not a fiber's. */
#define TAG_LISTEN (UINT64_MAX - 1)
#define TAG_WAKE (UINT64_MAX - 2)
#define TAG_REMOTE (UINT64_MAX - 3)

#define EV_IN (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
#define EV_OUT (EPOLLOUT | EPOLLHUP | EPOLLERR)

/* What the loop knows about one descriptor. */
struct fdent {
    tk_fiber *rd, *wr; /* the fiber waiting to read / to write */
    uint32_t ready;    /* epoll events not yet consumed by a wait */
    bool reg;          /* registered with this loop's epoll */
};

struct server;

struct tk_loop {
    struct server *srv;
    int epfd;
    int evfd; /* helpers' completions */
    pthread_t tid;
    tk_fiber *rq_head, *rq_tail;
    tk_fiber **heap;
    size_t heap_n, heap_cap;
    struct fdent *fds;
    size_t nfds;
    tk_fiber *live; /* list of every fiber of this loop */
    int nlive;
    struct tk_stack_cache stacks;
    bool shutting;
    bool armed;        /* the listener is in the epoll set */
    bool full;         /* disarmed because max_conns was reached */
    uint64_t rearm_at; /* back-off after EMFILE/ENOMEM: re-arm then */
    int backoff_ms;
    pthread_mutex_t mu;
    struct tk_job *done; /* finished by helpers, under mu */
    /* The accept error that made the listener unusable, as this loop
     * thread recorded it, for the caller of tcpkit_serve_with. */
    tcpkit_err fatal;
    int fatal_errno;
    char fatal_msg[256];
};

struct server {
    tcpkit_listener *l;
    tcpkit_handler fn;
    void *arg;
    int max_conns;
    atomic_int nconns;
    int nloops;
    struct tk_loop *loops;
    struct tk_helpers helpers;
};

static _Thread_local struct tk_loop *cur;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- run queue ---- */

static void make_ready(struct tk_loop *lp, tk_fiber *f);

static void runq_push(struct tk_loop *lp, tk_fiber *f)
{
    f->next = NULL;
    if (lp->rq_tail)
        lp->rq_tail->next = f;
    else
        lp->rq_head = f;
    lp->rq_tail = f;
}

static tk_fiber *runq_pop(struct tk_loop *lp)
{
    tk_fiber *f = lp->rq_head;
    if (f && !(lp->rq_head = f->next))
        lp->rq_tail = NULL;
    return f;
}

/* ---- timer heap (a binary min-heap on wake_at) ---- */

static void heap_set(struct tk_loop *lp, size_t i, tk_fiber *f)
{
    lp->heap[i] = f;
    f->heap_idx = i;
}

static void heap_up(struct tk_loop *lp, size_t i)
{
    tk_fiber *f = lp->heap[i];
    while (i > 0 && lp->heap[(i - 1) / 2]->wake_at > f->wake_at) {
        heap_set(lp, i, lp->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(lp, i, f);
}

static void heap_down(struct tk_loop *lp, size_t i)
{
    tk_fiber *f = lp->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= lp->heap_n)
            break;
        if (c + 1 < lp->heap_n && lp->heap[c + 1]->wake_at < lp->heap[c]->wake_at)
            c++;
        if (lp->heap[c]->wake_at >= f->wake_at)
            break;
        heap_set(lp, i, lp->heap[c]);
        i = c;
    }
    heap_set(lp, i, f);
}

static bool heap_add(struct tk_loop *lp, tk_fiber *f)
{
    if (lp->heap_n == lp->heap_cap) {
        size_t cap = lp->heap_cap ? lp->heap_cap * 2 : 64;
        tk_fiber **h = realloc(lp->heap, cap * sizeof *h);
        if (!h)
            return false;
        lp->heap = h;
        lp->heap_cap = cap;
    }
    lp->heap[lp->heap_n] = f;
    heap_up(lp, lp->heap_n++);
    return true;
}

static void heap_remove(struct tk_loop *lp, tk_fiber *f)
{
    size_t i = f->heap_idx;
    f->heap_idx = SIZE_MAX;
    tk_fiber *last = lp->heap[--lp->heap_n];
    if (last == f)
        return;
    heap_set(lp, i, last);
    heap_up(lp, i);
    heap_down(lp, last->heap_idx);
}

/* Wakes every fiber whose time has come. */
static void expire_timers(struct tk_loop *lp)
{
    if (lp->heap_n == 0)
        return;
    uint64_t now = now_ns();
    while (lp->heap_n > 0 && lp->heap[0]->wake_at <= now) {
        tk_fiber *f = lp->heap[0];
        f->timed_out = true;
        make_ready(lp, f);
    }
}

/* epoll_wait's timeout: until the earliest timer, rounded up. */
static int next_timeout(struct tk_loop *lp)
{
    if (lp->rq_head)
        return 0;
    uint64_t at = lp->heap_n ? lp->heap[0]->wake_at : UINT64_MAX;
    if (lp->rearm_at && lp->rearm_at < at)
        at = lp->rearm_at;
    if (at == UINT64_MAX)
        return -1;
    uint64_t now = now_ns();
    if (at <= now)
        return 0;
    uint64_t ms = (at - now + 999999) / 1000000;
    return ms > 2147483647u ? 2147483647 : (int)ms;
}

static void make_ready(struct tk_loop *lp, tk_fiber *f)
{
    if (!f->parked)
        return;
    f->parked = false;
    if (f->heap_idx != SIZE_MAX)
        heap_remove(lp, f);
    runq_push(lp, f);
}

/* ---- descriptors ---- */

static struct fdent *fd_entry(struct tk_loop *lp, int fd)
{
    if ((size_t)fd >= lp->nfds) {
        size_t n = lp->nfds ? lp->nfds : 256;
        while (n <= (size_t)fd)
            n *= 2;
        struct fdent *t = realloc(lp->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + lp->nfds, 0, (n - lp->nfds) * sizeof *t);
        lp->fds = t;
        lp->nfds = n;
    }
    return &lp->fds[fd];
}

/* Registers fd once for everything; the kernel reports the current state
 * at registration, so readiness from before is not lost. */
static struct fdent *fd_register(struct tk_loop *lp, int fd)
{
    struct fdent *e = fd_entry(lp, fd);
    if (!e) {
        errno = ENOMEM;
        return NULL;
    }
    if (e->reg)
        return e;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = (uint64_t)fd};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST)
        return NULL;
    e->reg = true;
    e->ready = 0;
    return e;
}

void tk_loop_forget(int fd)
{
    struct tk_loop *lp = cur;
    if (!lp || fd < 0 || (size_t)fd >= lp->nfds)
        return;
    lp->fds[fd] = (struct fdent){.reg = false};
}

static void fd_event(struct tk_loop *lp, int fd, uint32_t ev)
{
    if ((size_t)fd >= lp->nfds || !lp->fds[fd].reg)
        return;
    struct fdent *e = &lp->fds[fd];
    e->ready |= ev;
    if ((ev & EV_IN) && e->rd)
        make_ready(lp, e->rd);
    if ((ev & EV_OUT) && e->wr)
        make_ready(lp, e->wr);
}

/* ---- parking a fiber ---- */

static bool is_wake_fd(struct tk_loop *lp, int fd)
{
    return fd >= 0 && fd == lp->srv->l->wake_fd;
}

/* poll()'s revents from the ready bits, consuming what it reports. Errors
 * and hang-ups stay: they are states, not edges. */
static int collect(struct tk_loop *lp, struct pollfd *p, nfds_t n)
{
    int count = 0;
    for (nfds_t i = 0; i < n; i++) {
        p[i].revents = 0;
        if (p[i].fd < 0)
            continue;
        if (is_wake_fd(lp, p[i].fd)) {
            p[i].revents = lp->shutting ? POLLIN : 0;
        } else {
            struct fdent *e = &lp->fds[p[i].fd];
            uint32_t want =
                (p[i].events & POLLIN ? EV_IN : 0) | (p[i].events & POLLOUT ? EV_OUT : 0);
            uint32_t got = e->ready & (want | EPOLLHUP | EPOLLERR);
            e->ready &= ~(got & (EPOLLIN | EPOLLOUT | EPOLLRDHUP));
            p[i].revents = (short)((got & (EPOLLIN | EPOLLRDHUP) ? POLLIN : 0) |
                                   (got & EPOLLOUT ? POLLOUT : 0) | (got & EPOLLHUP ? POLLHUP : 0) |
                                   (got & EPOLLERR ? POLLERR : 0));
        }
        count += p[i].revents != 0;
    }
    return count;
}

/* Registers every descriptor and names f as its waiter (set) or clears
 * that (!set). -1 with errno when one cannot be registered. */
static int mark_waiters(struct tk_loop *lp, struct pollfd *p, nfds_t n, tk_fiber *f, bool set)
{
    f->wants_wake = false;
    for (nfds_t i = 0; i < n; i++) {
        if (p[i].fd < 0)
            continue;
        if (is_wake_fd(lp, p[i].fd)) {
            f->wants_wake = set;
            continue;
        }
        if (!set && (size_t)p[i].fd >= lp->nfds)
            continue;
        struct fdent *e = set ? fd_register(lp, p[i].fd) : &lp->fds[p[i].fd];
        if (!e)
            return -1;
        if (p[i].events & POLLIN)
            e->rd = set ? f : (e->rd == f ? NULL : e->rd);
        if (p[i].events & POLLOUT)
            e->wr = set ? f : (e->wr == f ? NULL : e->wr);
    }
    return 0;
}

/* Suspends f until make_ready(); with a timer when timeout_ms >= 0. */
static void park(struct tk_loop *lp, tk_fiber *f, int timeout_ms)
{
    f->timed_out = false;
    if (timeout_ms >= 0) {
        f->wake_at = now_ns() + (uint64_t)timeout_ms * 1000000u;
        if (!heap_add(lp, f))
            f->timed_out = true; /* no memory for a timer: time out now */
    }
    if (f->timed_out)
        return;
    f->parked = true;
    tk_fiber_suspend();
}

int tk_loop_poll(struct pollfd *p, nfds_t n, int timeout_ms)
{
    struct tk_loop *lp = cur;
    tk_fiber *f = tk_fiber_current();
    /* No wait: the kernel's own answer is the exact one. */
    if (timeout_ms == 0)
        return poll(p, n, 0);
    if (mark_waiters(lp, p, n, f, true) != 0) {
        int e = errno;
        mark_waiters(lp, p, n, f, false);
        errno = e;
        return -1;
    }
    int count = collect(lp, p, n);
    while (count == 0) {
        park(lp, f, timeout_ms);
        count = collect(lp, p, n);
        if (f->timed_out)
            break;
        /* Woken without news for us (a consumed edge): wait on, with the
         * time that is left. */
        if (count == 0 && timeout_ms >= 0) {
            uint64_t now = now_ns();
            if (now >= f->wake_at)
                break;
            timeout_ms = (int)((f->wake_at - now + 999999) / 1000000);
        }
    }
    mark_waiters(lp, p, n, f, false);
    return count;
}

void tk_loop_park(void)
{
    tk_fiber *f = tk_fiber_current();
    park(f->loop, f, -1);
}

struct tk_helpers *tk_loop_helpers(void)
{
    return &cur->srv->helpers;
}

void tk_loop_complete(struct tk_job *j)
{
    struct tk_loop *lp = j->f->loop;
    pthread_mutex_lock(&lp->mu);
    j->next = lp->done;
    lp->done = j;
    pthread_mutex_unlock(&lp->mu);
    uint64_t one = 1;
    ssize_t r = write(lp->evfd, &one, sizeof one);
    (void)r;
}

static void drain_completions(struct tk_loop *lp)
{
    uint64_t v;
    ssize_t r = read(lp->evfd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&lp->mu);
    struct tk_job *j = lp->done;
    lp->done = NULL;
    pthread_mutex_unlock(&lp->mu);
    while (j) {
        struct tk_job *next = j->next;
        j->done = true;
        make_ready(lp, j->f);
        j = next;
    }
}

/* ---- connections ---- */

static void conn_main(void *p)
{
    tk_fiber *f = tk_fiber_current();
    struct server *srv = f->loop->srv;
    tcpkit_conn *c = p;
    srv->fn(c, srv->arg);
    tk_loop_forget(c->fd);
    tcpkit_close(c);
}

static void live_add(struct tk_loop *lp, tk_fiber *f)
{
    f->prev_live = NULL;
    f->next_live = lp->live;
    if (lp->live)
        lp->live->prev_live = f;
    lp->live = f;
    lp->nlive++;
}

static void live_remove(struct tk_loop *lp, tk_fiber *f)
{
    if (f->prev_live)
        f->prev_live->next_live = f->next_live;
    else
        lp->live = f->next_live;
    if (f->next_live)
        f->next_live->prev_live = f->prev_live;
    lp->nlive--;
}

static void arm(struct tk_loop *lp, bool on)
{
    if (lp->armed == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = TAG_LISTEN};
    int r = epoll_ctl(lp->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, lp->srv->l->fd, &ev);
    lp->armed = on && r == 0;
    if (!on)
        lp->armed = false;
}

/* Out of descriptors, memory or threads: the client stays in the backlog,
 * and this loop stops accepting for a doubling pause (10 to 100 ms). */
static void back_off(struct tk_loop *lp)
{
    arm(lp, false);
    lp->rearm_at = now_ns() + (uint64_t)lp->backoff_ms * 1000000u;
    lp->backoff_ms = lp->backoff_ms * 2 > 100 ? 100 : lp->backoff_ms * 2;
}

/* Starts a fiber for c; false (c closed) when no stack could be had. */
static bool start_conn(struct tk_loop *lp, tcpkit_conn *c)
{
    tk_fiber *f = tk_fiber_new(&lp->stacks, conn_main, c);
    if (!f) {
        tcpkit_close(c);
        return false;
    }
    f->loop = lp;
    f->conn = c;
    live_add(lp, f);
    runq_push(lp, f);
    return true;
}

static void begin_shutdown(struct tk_loop *lp);

/* Takes one slot of max_conns; false (this loop disarmed until one of its
 * fibers ends) when none is left. */
static bool take_slot(struct tk_loop *lp)
{
    struct server *srv = lp->srv;
    if (atomic_fetch_add(&srv->nconns, 1) < srv->max_conns)
        return true;
    atomic_fetch_sub(&srv->nconns, 1);
    arm(lp, false);
    lp->full = true;
    return false;
}

/* Accepts what the backlog holds, a bounded batch so that one loop does not
 * starve its fibers (the level-triggered listener reports the rest). */
static void accept_batch(struct tk_loop *lp)
{
    struct server *srv = lp->srv;
    for (int i = 0; i < 64 && lp->armed && !lp->shutting; i++) {
        if (!take_slot(lp))
            return;
        tcpkit_conn *c;
        tcpkit_err err = tk_accept_now(srv->l, &c);
        if (err == TCPKIT_OK) {
            c->wake_fd = srv->l->wake_fd;
            if (start_conn(lp, c)) {
                lp->backoff_ms = 10;
                continue;
            }
            tk_fail(TCPKIT_ENOMEM, ENOMEM, "serve: no stack for a fiber");
        }
        atomic_fetch_sub(&srv->nconns, 1);
        if (err == TCPKIT_ETIMEDOUT || err == TCPKIT_ESHUTDOWN)
            return;
        if (tk_accept_fatal(err)) {
            lp->fatal = err;
            lp->fatal_errno = tcpkit_last_errno();
            snprintf(lp->fatal_msg, sizeof lp->fatal_msg, "%s", tcpkit_last_error());
            tcpkit_listener_shutdown(srv->l);
            return;
        }
        back_off(lp);
        return;
    }
}

static void fiber_end(struct tk_loop *lp, tk_fiber *f)
{
    live_remove(lp, f);
    tk_fiber_free(&lp->stacks, f);
    atomic_fetch_sub(&lp->srv->nconns, 1);
    if (lp->full && !lp->shutting) {
        lp->full = false;
        arm(lp, true);
    }
}

static void run_ready(struct tk_loop *lp)
{
    tk_fiber *f;
    while ((f = runq_pop(lp))) {
        tk_fiber_resume(f);
        if (f->done)
            fiber_end(lp, f);
    }
}

/* The listener was shut down: stop accepting, and wake every fiber that
 * waits on a connection or sleeps, as the eventfd wakes threads. */
static void begin_shutdown(struct tk_loop *lp)
{
    if (lp->shutting)
        return;
    lp->shutting = true;
    arm(lp, false);
    lp->rearm_at = 0;
    for (tk_fiber *f = lp->live; f; f = f->next_live)
        if (f->parked && f->wants_wake)
            make_ready(lp, f);
}

static void dispatch(struct tk_loop *lp, const struct epoll_event *ev)
{
    if (ev->data.u64 == TAG_LISTEN)
        accept_batch(lp);
    else if (ev->data.u64 == TAG_WAKE)
        begin_shutdown(lp);
    else if (ev->data.u64 == TAG_REMOTE)
        drain_completions(lp);
    else
        fd_event(lp, (int)ev->data.u64, ev->events);
}

static void loop_run(struct tk_loop *lp)
{
    struct epoll_event evs[128];
    cur = lp;
    tk_serve_wake_fd_set(lp->srv->l->wake_fd);
    for (;;) {
        run_ready(lp);
        if (lp->shutting && lp->nlive == 0)
            break;
        if (lp->rearm_at && !lp->shutting && now_ns() >= lp->rearm_at) {
            lp->rearm_at = 0;
            arm(lp, true);
        }
        int n = epoll_wait(lp->epfd, evs, 128, next_timeout(lp));
        for (int i = 0; i < n; i++)
            dispatch(lp, &evs[i]);
        expire_timers(lp);
    }
    tk_serve_wake_fd_set(-1);
    cur = NULL;
}

/* ---- a loop's life ---- */

static tcpkit_err loop_init(struct tk_loop *lp, struct server *srv, size_t stack_size)
{
    *lp = (struct tk_loop){.srv = srv, .epfd = -1, .evfd = -1, .backoff_ms = 10};
    tk_stack_cache_init(&lp->stacks, stack_size);
    int e = pthread_mutex_init(&lp->mu, NULL);
    if (e != 0)
        return tk_fail_errno(e, "serve: mutex");
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lp->epfd < 0 || lp->evfd < 0)
        return tk_fail_errno(errno, "serve: event loop");
    struct epoll_event w = {.events = EPOLLIN | EPOLLET, .data.u64 = TAG_WAKE};
    struct epoll_event r = {.events = EPOLLIN | EPOLLET, .data.u64 = TAG_REMOTE};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, srv->l->wake_fd, &w) != 0 ||
        epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->evfd, &r) != 0)
        return tk_fail_errno(errno, "serve: event loop");
    arm(lp, true);
    if (!lp->armed)
        return tk_fail_errno(errno, "serve: event loop");
    return TCPKIT_OK;
}

/* Only after loop_init, successful or not. */
static void loop_fini(struct tk_loop *lp)
{
    if (lp->epfd >= 0)
        close(lp->epfd);
    if (lp->evfd >= 0)
        close(lp->evfd);
    pthread_mutex_destroy(&lp->mu);
    tk_stack_cache_drain(&lp->stacks);
    free(lp->heap);
    free(lp->fds);
}

static void *loop_thread(void *p)
{
    loop_run(p);
    return NULL;
}

/* ---- tcpkit_serve_with ---- */

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

static tcpkit_err loops_init(struct server *srv, size_t stack_size)
{
    for (int i = 0; i < srv->nloops; i++) {
        tcpkit_err err = loop_init(&srv->loops[i], srv, stack_size);
        if (err != TCPKIT_OK) {
            for (int j = 0; j <= i; j++)
                loop_fini(&srv->loops[j]);
            return err;
        }
    }
    return TCPKIT_OK;
}

/* Runs every loop on a thread of its own, with the asynchronous signals
 * blocked as tcpkit_serve()'s workers have them: the caller only waits, so
 * its signal handlers (a SIGINT that shuts the server down) never run on a
 * fiber. Returns when all loops have ended. */
static tcpkit_err loops_run(struct server *srv)
{
    int started = 0;
    tcpkit_err err = TCPKIT_OK;
    for (; started < srv->nloops; started++) {
        int e = tk_thread_start(&srv->loops[started].tid, 0, loop_thread, &srv->loops[started]);
        if (e != 0) {
            err = tk_fail_errno(e, "serve: cannot start an event-loop thread");
            tcpkit_listener_shutdown(srv->l);
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(srv->loops[i].tid, NULL);
    for (int i = 0; i < srv->nloops && err == TCPKIT_OK; i++) {
        struct tk_loop *lp = &srv->loops[i];
        if (lp->fatal != TCPKIT_OK)
            err = tk_fail(lp->fatal, lp->fatal_errno, "%s", lp->fatal_msg);
    }
    return err;
}

tcpkit_err tk_serve_fibers(tcpkit_listener *l, tcpkit_handler fn, void *arg,
                           const struct tcpkit_opts *o)
{
    struct server srv = {.l = l, .fn = fn, .arg = arg, .max_conns = o->max_conns};
    srv.nloops = o->serve_threads > 0 ? o->serve_threads : online_cpus();
    atomic_init(&srv.nconns, 0);
    srv.loops = calloc((size_t)srv.nloops, sizeof *srv.loops);
    if (!srv.loops)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "serve: out of memory for the event loops");
    tcpkit_err err = tk_helpers_init(&srv.helpers);
    if (err == TCPKIT_OK && (err = loops_init(&srv, o->stack_size)) != TCPKIT_OK)
        tk_helpers_stop(&srv.helpers);
    if (err != TCPKIT_OK) {
        free(srv.loops);
        return err;
    }
    err = loops_run(&srv);
    tk_helpers_stop(&srv.helpers);
    for (int i = 0; i < srv.nloops; i++)
        loop_fini(&srv.loops[i]);
    free(srv.loops);
    return err;
}

tcpkit_err tcpkit_serve_with(tcpkit_listener *l, tcpkit_handler fn, void *arg,
                             const tcpkit_opts *opts)
{
    if (!l || !fn)
        return tk_fail(TCPKIT_EINVAL, 0, "serve: %s", !l ? "listener is NULL" : "handler is NULL");
    struct tcpkit_opts o = tk_serve_opts(opts);
    if (o.serve_mode == TCPKIT_SERVE_THREADS)
        return tk_serve_threads(l, fn, arg, o.max_conns, o.stack_size);
    return tk_serve_fibers(l, fn, arg, &o);
}
