/* SPDX-License-Identifier: MIT */
/* tcpkit_serve: an accept loop feeding a bounded pool of reused threads.
 *
 * The calling thread is the acceptor. It accepts only when a worker is free,
 * so at most max_conns handlers run at once and further clients wait in the
 * kernel's backlog instead of being refused. Workers are created lazily (one
 * more only when none is idle) and reused for later connections. After a
 * burst the pool shrinks again: a worker idle for TK_IDLE_EXIT_MS exits
 * unless only TK_WARM_WORKERS remain. Every worker is joined before
 * tcpkit_serve returns. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

/* Worker stack size: plenty for handlers with a 64 KiB buffer on the stack
 * and for libc calls such as getaddrinfo, while 1,000 workers reserve only
 * 512 MiB of address space (RSS counts only the pages actually touched). */
#define TK_WORKER_STACK (512u * 1024u)

/* Back-off while the process is out of descriptors, memory or threads:
 * doubles from the first to the last value, reset by a successful accept. */
#define TK_BACKOFF_MIN_MS 10
#define TK_BACKOFF_MAX_MS 100

/* The pool gives back what a burst took: a worker idle this long exits
 * (its thread and stack are released), but the last TK_WARM_WORKERS stay
 * so a lightly loaded server does not pay for thread creation. Documented
 * in tcpkit.h (tcpkit_serve). */
#define TK_IDLE_EXIT_MS 3000
#define TK_WARM_WORKERS 4

struct pool;

struct worker {
    pthread_t tid;
    struct pool *pool;
    pthread_cond_t cv;                    /* signalled when job is set or on stop */
    tcpkit_conn *job;                     /* the connection to serve next, or NULL */
    struct worker *next, *prev;           /* all live workers */
    struct worker *next_idle, *prev_idle; /* the idle stack */
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t free_cv; /* a worker became idle */
    tcpkit_handler fn;
    void *arg;
    int max;
    size_t stack_size;
    int wake_fd;            /* the listener's shutdown eventfd (tcpkit_sleep) */
    int nthreads;           /* workers created */
    int nidle;              /* workers waiting for a job */
    bool stopping;          /* idle workers exit */
    bool acceptor_waiting;  /* the acceptor sleeps on free_cv */
    struct worker *all;     /* every worker, for the final join */
    struct worker *idle;    /* stack of idle workers: the most recently
                               used (cache-warm) one is reused first, so
                               the ones at the bottom age out */
    struct worker *retired; /* the last worker that exited idle, not yet
                               joined: the next one to exit joins it,
                               stop_workers the last */
};

/* ---- the worker lists (pool->mu held) ---- */

static void idle_push(struct pool *pool, struct worker *w)
{
    w->prev_idle = NULL;
    w->next_idle = pool->idle;
    if (pool->idle)
        pool->idle->prev_idle = w;
    pool->idle = w;
    pool->nidle++;
}

static void idle_remove(struct pool *pool, struct worker *w)
{
    if (w->prev_idle)
        w->prev_idle->next_idle = w->next_idle;
    else
        pool->idle = w->next_idle;
    if (w->next_idle)
        w->next_idle->prev_idle = w->prev_idle;
    pool->nidle--;
}

static void all_push(struct pool *pool, struct worker *w)
{
    w->prev = NULL;
    w->next = pool->all;
    if (pool->all)
        pool->all->prev = w;
    pool->all = w;
    pool->nthreads++;
}

static void all_remove(struct pool *pool, struct worker *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        pool->all = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pool->nthreads--;
}

static void worker_free(struct worker *w)
{
    pthread_join(w->tid, NULL);
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* CLOCK_MONOTONIC time ms from now (the workers' condition variables use
 * that clock, so a clock change cannot retire them early or late). */
static struct timespec deadline_in(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Waits (pool->mu held) for a job. Returns NULL when the worker should
 * exit: the pool is stopping, or the worker sat idle TK_IDLE_EXIT_MS while
 * more than the warm set exist. A retiring worker is unlinked and parked
 * in pool->retired; *joinee gets the previous retiree, for the caller to
 * join once the lock is released. */
static tcpkit_conn *wait_for_job(struct pool *pool, struct worker *w, struct worker **joinee)
{
    struct timespec end = deadline_in(TK_IDLE_EXIT_MS);
    int r = 0;
    while (!w->job && !pool->stopping) {
        if (r == ETIMEDOUT && pool->nthreads > TK_WARM_WORKERS) {
            idle_remove(pool, w);
            all_remove(pool, w);
            *joinee = pool->retired;
            pool->retired = w;
            return NULL;
        }
        if (r == ETIMEDOUT) /* one of the warm set: idle on */
            end = deadline_in(TK_IDLE_EXIT_MS);
        r = pthread_cond_timedwait(&w->cv, &pool->mu, &end);
    }
    tcpkit_conn *c = w->job;
    w->job = NULL;
    return c;
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct pool *pool = w->pool;
    struct worker *joinee = NULL;
    tk_serve_wake_fd_set(pool->wake_fd);
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        tcpkit_conn *c = wait_for_job(pool, w, &joinee);
        if (!c)
            break; /* stopping or retiring, and no job handed over */
        pthread_mutex_unlock(&pool->mu);

        pool->fn(c, pool->arg);
        tcpkit_close(c);

        pthread_mutex_lock(&pool->mu);
        if (pool->stopping)
            break; /* stop_workers may already have freed idle workers */
        idle_push(pool, w);
        /* Only a full pool makes the acceptor wait: signalling is needed
         * (and costs a futex call) only then. */
        if (pool->acceptor_waiting)
            pthread_cond_signal(&pool->free_cv);
    }
    pthread_mutex_unlock(&pool->mu);
    /* From the unlock on this thread touches nothing of the pool, so
     * whoever joins it may free it at once. */
    if (joinee)
        worker_free(joinee);
    return NULL;
}

/* The process-directed signals a program typically handles itself
 * (SIGINT to stop a server, SIGCHLD, SIGHUP to reload...). Workers block
 * them so the kernel delivers them to the program's own threads; fault
 * signals and SIGPIPE (both thread-directed) stay as they are. */
static void async_signal_set(sigset_t *set)
{
    static const int sigs[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGUSR1,
                               SIGUSR2, SIGALRM, SIGCHLD, SIGWINCH};
    sigemptyset(set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(set, sigs[i]);
}

/* A worker record with its condition variable, or NULL (recorded). */
static struct worker *worker_new(struct pool *pool)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        tk_fail(TCPKIT_ENOMEM, ENOMEM, "serve: out of memory for a worker");
        return NULL;
    }
    w->pool = pool;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int e = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (e != 0) {
        free(w);
        tk_fail_errno(e, "serve: worker condition variable");
        return NULL;
    }
    return w;
}

int tk_thread_start(pthread_t *t, size_t stack_size, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (stack_size)
        pthread_attr_setstacksize(&attr, stack_size);
    /* A new thread inherits its creator's mask: block the async signals
     * around pthread_create so the thread never runs, even for an instant,
     * with them unblocked. */
    sigset_t block, old;
    async_signal_set(&block);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int e = pthread_create(t, &attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return e;
}

/* Creates w's thread. The pool lock is held across creation (the worker's
 * first act is to take it, and by then it is already on the idle stack). */
static int start_thread(struct pool *pool, struct worker *w)
{
    pthread_mutex_lock(&pool->mu);
    int e = tk_thread_start(&w->tid, pool->stack_size, worker_main, w);
    if (e == 0) {
        all_push(pool, w);
        idle_push(pool, w);
    }
    pthread_mutex_unlock(&pool->mu);
    return e;
}

/* Starts one more idle worker. Returns false (with the failure recorded)
 * when the process is out of memory or threads. */
static bool spawn_worker(struct pool *pool)
{
    struct worker *w = worker_new(pool);
    if (!w)
        return false;
    int e = start_thread(pool, w);
    if (e != 0) {
        pthread_cond_destroy(&w->cv);
        free(w);
        tk_fail_errno(e, "serve: cannot start a worker thread");
        return false;
    }
    return true;
}

/* Waits until a worker is idle or may be created, and makes sure one is
 * idle. Returns false if a worker could not be created. */
static bool reserve_worker(struct pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    /* No wake-up on shutdown is needed here: the pool is full, and
     * tcpkit_serve must wait for a handler to return anyway. */
    while (pool->nidle == 0 && pool->nthreads >= pool->max) {
        pool->acceptor_waiting = true;
        pthread_cond_wait(&pool->free_cv, &pool->mu);
    }
    pool->acceptor_waiting = false;
    bool have = pool->nidle > 0;
    pthread_mutex_unlock(&pool->mu);
    return have || spawn_worker(pool);
}

/* Hands c to an idle worker (reserve_worker made sure there is one). */
static void dispatch(struct pool *pool, tcpkit_conn *c)
{
    pthread_mutex_lock(&pool->mu);
    struct worker *w = pool->idle;
    idle_remove(pool, w);
    w->job = c;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&pool->mu);
}

/* Sleeps ms milliseconds, or until the listener is shut down. poll() on the
 * shutdown eventfd makes the pause interruptible without any spinning. */
static void back_off(const tcpkit_listener *l, int *ms)
{
    struct pollfd p = {.fd = l->wake_fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, *ms);
    while (r < 0 && errno == EINTR && !atomic_load(&l->shut));
    *ms = *ms * 2 > TK_BACKOFF_MAX_MS ? TK_BACKOFF_MAX_MS : *ms * 2;
}

/* Errors that mean the listener itself is unusable: retrying cannot help. */
bool tk_accept_fatal(tcpkit_err err)
{
    if (err != TCPKIT_ESYS)
        return false;
    int e = tcpkit_last_errno();
    return e == EBADF || e == ENOTSOCK || e == EINVAL || e == EFAULT;
}

/* Lets every idle worker exit, waits for the busy ones to finish their
 * handler, and frees the pool's threads. */
static void stop_workers(struct pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    for (struct worker *w = pool->all; w; w = w->next)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&pool->mu);
    /* No worker retires once stopping is set: the lists are final. */
    struct worker *w = pool->all;
    while (w) {
        struct worker *next = w->next;
        worker_free(w);
        w = next;
    }
    pool->all = NULL;
    if (pool->retired)
        worker_free(pool->retired);
    pool->retired = NULL;
}

/* The accept loop. Returns TCPKIT_OK once the listener is shut down, or the
 * error that made the listener unusable. */
static tcpkit_err accept_loop(tcpkit_listener *l, struct pool *pool)
{
    int backoff = TK_BACKOFF_MIN_MS;
    while (!atomic_load(&l->shut)) {
        if (!reserve_worker(pool)) {
            back_off(l, &backoff);
            continue;
        }
        tcpkit_conn *c;
        tcpkit_err err = tcpkit_accept(l, &c, -1);
        if (err == TCPKIT_OK) {
            /* Receives in the handler poll the shutdown eventfd too, so
             * tcpkit_listener_shutdown wakes them. */
            c->wake_fd = l->wake_fd;
            dispatch(pool, c);
            backoff = TK_BACKOFF_MIN_MS;
            continue;
        }
        if (err == TCPKIT_ESHUTDOWN)
            break;
        if (tk_accept_fatal(err)) {
            /* Wake the handlers so the drain below ends, as for shutdown. */
            tcpkit_listener_shutdown(l);
            return err;
        }
        /* EMFILE, ENOMEM, ENOBUFS...: the client stays in the backlog
         * until descriptors or memory are back. */
        back_off(l, &backoff);
    }
    return TCPKIT_OK;
}

tcpkit_err tk_serve_threads(tcpkit_listener *l, tcpkit_handler fn, void *arg, int max_conns,
                            size_t stack_size)
{
    struct pool pool = {
        .fn = fn, .arg = arg, .max = max_conns, .stack_size = stack_size, .wake_fd = l->wake_fd};
    int e = pthread_mutex_init(&pool.mu, NULL);
    if (e != 0)
        return tk_fail_errno(e, "serve: mutex");
    if ((e = pthread_cond_init(&pool.free_cv, NULL)) != 0) {
        pthread_mutex_destroy(&pool.mu);
        return tk_fail_errno(e, "serve: condition variable");
    }
    tcpkit_err err = accept_loop(l, &pool);
    stop_workers(&pool);
    pthread_cond_destroy(&pool.free_cv);
    pthread_mutex_destroy(&pool.mu);
    return err;
}

tcpkit_err tcpkit_serve(tcpkit_listener *l, tcpkit_handler fn, void *arg, int max_conns)
{
    if (!l || !fn || max_conns < 1)
        return tk_fail(TCPKIT_EINVAL, 0, "serve: %s",
                       !l    ? "listener is NULL"
                       : !fn ? "handler is NULL"
                             : "max_conns below 1");
    return tk_serve_threads(l, fn, arg, max_conns, TK_WORKER_STACK);
}
