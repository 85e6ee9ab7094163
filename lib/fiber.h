/* SPDX-License-Identifier: MIT */
/* Fibers (lib/fiber.c) and the per-thread event loop (lib/loop.c): the
 * internal interface between them and lib/wait.c. */
#ifndef TK_FIBER_H
#define TK_FIBER_H

#include "internal.h"

#include <poll.h>
#include <pthread.h>
#include <stdint.h>

/* A saved execution context. With the assembly switch it is the stack
 * pointer, everything else is on the suspended stack itself. Other CPUs
 * (or -DTK_FORCE_UCONTEXT, to test the fallback) use ucontext. */
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(TK_FORCE_UCONTEXT)
struct tk_ctx {
    void *sp;
};
#else
#define TK_CTX_UCONTEXT 1
#include <setjmp.h>
#include <ucontext.h>
struct tk_ctx {
    jmp_buf jb;
    ucontext_t uc;
    int started;
};
#endif

struct tk_loop;

typedef struct tk_fiber {
    struct tk_ctx ctx;
    void (*fn)(void *);
    void *arg;
    char *map;      /* the whole mapping, guard page first */
    size_t map_len; /* guard page included */
    bool done;      /* fn returned: the fiber must not be resumed again */
    /* What the sanitizers and Valgrind need to know about this stack. */
    void *asan_fake;
    void *tsan;
    unsigned vg_id;
    /* The loop's bookkeeping (lib/loop.c). */
    struct tk_fiber *next;                  /* run queue link */
    size_t heap_idx;                        /* index in the timer heap, SIZE_MAX when absent */
    uint64_t wake_at;                       /* CLOCK_MONOTONIC ns, when heap_idx is valid */
    bool parked;                            /* waiting for an fd, a timer or a helper */
    bool timed_out;                         /* the timer, not an fd, ended the last park */
    bool wants_wake;                        /* the park ends on the server's shutdown too */
    struct tk_fiber *prev_live, *next_live; /* every fiber of the loop */
    struct tk_loop *loop;
    tcpkit_conn *conn;
    /* tcpkit_last_error() of this fiber: the switch redirects the thread's
     * record here. */
    struct tk_errrec err;
} tk_fiber;

/* Freed stacks of one size, kept for reuse by one loop thread. */
#define TK_STACK_CACHE_MAX 64
struct tk_stack_cache {
    size_t stack_size;
    int n;
    char *maps[TK_STACK_CACHE_MAX];
};

void tk_stack_cache_init(struct tk_stack_cache *sc, size_t stack_size);
/* Unmaps every cached stack. */
void tk_stack_cache_drain(struct tk_stack_cache *sc);

/* A new fiber that will run fn(arg) on its first resume. NULL with errno
 * set (ENOMEM) when no stack could be had. */
tk_fiber *tk_fiber_new(struct tk_stack_cache *sc, void (*fn)(void *), void *arg);
/* Releases a finished (or never started) fiber's stack into the cache. */
void tk_fiber_free(struct tk_stack_cache *sc, tk_fiber *f);
/* Runs f (from the loop, never from a fiber) until it suspends or ends. */
void tk_fiber_resume(tk_fiber *f);
/* Called on a fiber: back to the loop that resumed it. */
void tk_fiber_suspend(void);
/* The fiber running on this thread, NULL on a plain thread. */
tk_fiber *tk_fiber_current(void);
/* Nanoseconds of one switch there and back (benchmarks). */
double tk_fiber_switch_ns(int rounds);

/* ---- helper threads (lib/blocking.c) ---- */

/* One piece of blocking work, on the waiting fiber's stack. */
struct tk_job {
    void (*fn)(void *);
    void *arg;
    tk_fiber *f;
    bool done; /* set by the fiber's loop when the helper is finished */
    struct tk_job *next;
};

#define TK_HELPERS_MAX 16
struct tk_helpers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct tk_job *head, *tail;
    int n, idle;
    bool stop;
    pthread_t tids[TK_HELPERS_MAX];
};

tcpkit_err tk_helpers_init(struct tk_helpers *h);
/* Lets the helpers finish the queued work and joins them. */
void tk_helpers_stop(struct tk_helpers *h);

/* ---- the loop (lib/loop.c) ---- */

/* The helper pool of the current fiber's server. */
struct tk_helpers *tk_loop_helpers(void);
/* Parks the current fiber until tk_loop_complete() for its job. */
void tk_loop_park(void);
/* Called by a helper thread: j is finished, wake its fiber. */
void tk_loop_complete(struct tk_job *j);

/* poll() for the current fiber: parks it until one of the descriptors is
 * ready or timeout_ms passes (-1: no limit). Same return convention as
 * poll(); never fails with EINTR. */
int tk_loop_poll(struct pollfd *p, nfds_t n, int timeout_ms);
/* The descriptor is about to be closed: forget its registration. */
void tk_loop_forget(int fd);

#endif /* TK_FIBER_H */
