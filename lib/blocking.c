/* SPDX-License-Identifier: MIT */
/* tcpkit_run_blocking: a bounded pool of helper threads that runs blocking
 * work for fibers, so that only the calling fiber waits, never its loop.
 * Each server has its own pool, started lazily and joined when the server
 * returns, so no thread outlives tcpkit_serve_with. */
#include "fiber.h"

#include <errno.h>

tcpkit_err tk_helpers_init(struct tk_helpers *h)
{
    *h = (struct tk_helpers){.n = 0};
    int e = pthread_mutex_init(&h->mu, NULL);
    if (e != 0)
        return tk_fail_errno(e, "serve: mutex");
    if ((e = pthread_cond_init(&h->cv, NULL)) != 0) {
        pthread_mutex_destroy(&h->mu);
        return tk_fail_errno(e, "serve: condition variable");
    }
    return TCPKIT_OK;
}

static struct tk_job *next_job(struct tk_helpers *h)
{
    while (!h->head && !h->stop) {
        h->idle++;
        pthread_cond_wait(&h->cv, &h->mu);
        h->idle--;
    }
    struct tk_job *j = h->head;
    if (j && !(h->head = j->next))
        h->tail = NULL;
    return j;
}

static void *helper_main(void *p)
{
    struct tk_helpers *h = p;
    pthread_mutex_lock(&h->mu);
    struct tk_job *j;
    while ((j = next_job(h))) {
        pthread_mutex_unlock(&h->mu);
        j->fn(j->arg);
        tk_loop_complete(j);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Queues j; starts a helper when none is idle and the pool may grow.
 * False when no helper exists or could be started. */
static bool submit(struct tk_helpers *h, struct tk_job *j)
{
    pthread_mutex_lock(&h->mu);
    j->next = NULL;
    if (h->tail)
        h->tail->next = j;
    else
        h->head = j;
    h->tail = j;
    bool ok = true;
    if (h->idle > 0) {
        pthread_cond_signal(&h->cv);
    } else if (h->n < TK_HELPERS_MAX) {
        int e = tk_thread_start(&h->tids[h->n], 0, helper_main, h);
        if (e == 0)
            h->n++;
        ok = e == 0 || h->n > 0;
    }
    if (!ok) {
        /* Nobody will ever run it: take it back (it is the only one). */
        h->head = h->tail = NULL;
    }
    pthread_mutex_unlock(&h->mu);
    return ok;
}

void tk_helpers_stop(struct tk_helpers *h)
{
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->n; i++)
        pthread_join(h->tids[i], NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
}

tcpkit_err tcpkit_run_blocking(void (*fn)(void *arg), void *arg)
{
    if (!fn)
        return tk_fail(TCPKIT_EINVAL, 0, "run_blocking: fn is NULL");
    tk_fiber *f = tk_fiber_current();
    if (!f) {
        fn(arg);
        return TCPKIT_OK;
    }
    struct tk_job j = {.fn = fn, .arg = arg, .f = f};
    if (!submit(tk_loop_helpers(), &j))
        return tk_fail(TCPKIT_ENOMEM, EAGAIN, "run_blocking: no helper thread could be started");
    while (!j.done)
        tk_loop_park();
    return TCPKIT_OK;
}
