/* SPDX-License-Identifier: MIT */
/* tcpkit_serve: an accept loop feeding a bounded pool of reused threads.
 *
 * The calling thread is the acceptor. It accepts only when a worker is free,
 * so at most max_conns handlers run at once and further clients wait in the
 * kernel's backlog instead of being refused. Workers are created lazily (one
 * more only when none is idle), reused for later connections, and all
 * joined before tcpkit_serve returns. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

/* Worker stack size: plenty for handlers with a 64 KiB buffer on the stack
 * and for libc calls such as getaddrinfo, while 1,000 workers reserve only
 * 512 MiB of address space (RSS counts only the pages actually touched). */
#define TK_WORKER_STACK (512u * 1024u)

/* Back-off while the process is out of descriptors, memory or threads:
 * doubles from the first to the last value, reset by a successful accept. */
#define TK_BACKOFF_MIN_MS 10
#define TK_BACKOFF_MAX_MS 100

struct pool;

struct worker {
    pthread_t tid;
    struct pool *pool;
    pthread_cond_t cv;   /* signalled when job is set or on stop */
    tcpkit_conn *job;    /* the connection to serve next, or NULL */
    struct worker *next; /* all workers (for joining) */
    struct worker *next_idle;
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t free_cv; /* a worker became idle */
    tcpkit_handler fn;
    void *arg;
    int max;
    int nthreads;          /* workers created */
    int nidle;             /* workers waiting for a job */
    bool stopping;         /* idle workers exit */
    bool acceptor_waiting; /* the acceptor sleeps on free_cv */
    struct worker *all;    /* every worker, for the final join */
    struct worker *idle;   /* stack of idle workers: the most recently
                                 used (cache-warm) one is reused first */
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct pool *pool = w->pool;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!w->job && !pool->stopping)
            pthread_cond_wait(&w->cv, &pool->mu);
        tcpkit_conn *c = w->job;
        if (!c)
            break; /* stopping, and no job handed over */
        w->job = NULL;
        pthread_mutex_unlock(&pool->mu);

        pool->fn(c, pool->arg);
        tcpkit_close(c);

        pthread_mutex_lock(&pool->mu);
        w->next_idle = pool->idle;
        pool->idle = w;
        pool->nidle++;
        /* Only a full pool makes the acceptor wait: signalling is needed
         * (and costs a futex call) only then. */
        if (pool->acceptor_waiting)
            pthread_cond_signal(&pool->free_cv);
    }
    pthread_mutex_unlock(&pool->mu);
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
    int e = pthread_cond_init(&w->cv, NULL);
    if (e != 0) {
        free(w);
        tk_fail_errno(e, "serve: worker condition variable");
        return NULL;
    }
    return w;
}

/* Creates w's thread with the async signals blocked: a new thread inherits
 * its creator's mask, so the worker never runs, even for an instant, with
 * them unblocked. The pool lock is held across creation (the worker's first
 * act is to take it, and by then it is already on the idle stack). */
static int start_thread(struct pool *pool, struct worker *w)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, TK_WORKER_STACK);
    sigset_t block, old;
    async_signal_set(&block);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_mutex_lock(&pool->mu);
    int e = pthread_create(&w->tid, &attr, worker_main, w);
    if (e == 0) {
        w->next = pool->all;
        pool->all = w;
        w->next_idle = pool->idle;
        pool->idle = w;
        pool->nidle++;
        pool->nthreads++;
    }
    pthread_mutex_unlock(&pool->mu);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
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
    pool->idle = w->next_idle;
    pool->nidle--;
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
static bool accept_error_is_fatal(tcpkit_err err)
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
    struct worker *w = pool->all;
    while (w) {
        struct worker *next = w->next;
        pthread_join(w->tid, NULL);
        pthread_cond_destroy(&w->cv);
        free(w);
        w = next;
    }
    pool->all = NULL;
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
        if (accept_error_is_fatal(err)) {
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

tcpkit_err tcpkit_serve(tcpkit_listener *l, tcpkit_handler fn, void *arg, int max_conns)
{
    if (!l || !fn || max_conns < 1)
        return tk_fail(TCPKIT_EINVAL, 0, "serve: %s",
                       !l    ? "listener is NULL"
                       : !fn ? "handler is NULL"
                             : "max_conns below 1");
    struct pool pool = {.fn = fn, .arg = arg, .max = max_conns};
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
