/* SPDX-License-Identifier: MIT */
/* Fibers: stacks with guard pages, the context switch, and what
 * AddressSanitizer, ThreadSanitizer and Valgrind must be told about both.
 *
 * Switches are asymmetric: the loop resumes a fiber, the fiber suspends back
 * to the loop. So each thread has one scheduler context and the fiber being
 * run; the sanitizers see exactly these two stacks trade places. */
#if defined(TK_FORCE_UCONTEXT) || !(defined(__x86_64__) || defined(__aarch64__))
/* The ucontext fallback longjmps between stacks, which glibc's fortified
 * longjmp would take for stack corruption. */
#undef _FORTIFY_SOURCE
#endif
#include "fiber.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TK_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define TK_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TK_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define TK_TSAN 1
#endif
#endif

#ifdef TK_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef TK_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef TK_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

/* Linux 6.13 installs guard pages without a new mapping, so tens of
 * thousands of stacks stay below vm.max_map_count (65530 by default). */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MAP_STACK
#define MAP_STACK 0
#endif

/* The loop side of the switch on this thread. */
struct sched {
    struct tk_ctx ctx;
    tk_fiber *current;
    const void *stack_lo; /* the thread's own stack, for ASan */
    size_t stack_len;
    void *asan_fake;
    void *tsan;
};

static _Thread_local struct sched sched;

static void fiber_main(void *p);

#ifndef TK_CTX_UCONTEXT
/* lib/fiber_<cpu>.S: saves the callee-saved registers and the FPU control
 * words on the current stack, stores the stack pointer in from->sp, loads
 * to->sp and restores what that stack holds. */
void tk_ctx_switch(struct tk_ctx *from, struct tk_ctx *to);
/* First code of a fiber: calls fiber_main(f) from the registers ctx_make
 * planted. */
void tk_ctx_start(void);
#endif

/* ---- sanitizer hooks ---- */

static void before_switch(void **fake, const void *to_lo, size_t to_len, void *to_tsan)
{
#ifdef TK_ASAN
    __sanitizer_start_switch_fiber(fake, to_lo, to_len);
#else
    (void)fake, (void)to_lo, (void)to_len;
#endif
#ifdef TK_TSAN
    __tsan_switch_to_fiber(to_tsan, 0);
#else
    (void)to_tsan;
#endif
}

static void after_switch(void *fake, const void **from_lo, size_t *from_len)
{
#ifdef TK_ASAN
    __sanitizer_finish_switch_fiber(fake, from_lo, from_len);
#else
    (void)fake, (void)from_lo, (void)from_len;
#endif
}

static void *tsan_new_fiber(void)
{
#ifdef TK_TSAN
    return __tsan_create_fiber(0);
#else
    return NULL;
#endif
}

static void tsan_free_fiber(void *t)
{
#ifdef TK_TSAN
    if (t)
        __tsan_destroy_fiber(t);
#else
    (void)t;
#endif
}

/* A reused stack may still carry the poisoned redzones of frames that never
 * returned (the last switch away of a finished fiber). */
static void asan_unpoison(void *p, size_t len)
{
#ifdef TK_ASAN
    __asan_unpoison_memory_region(p, len);
#else
    (void)p, (void)len;
#endif
}

/* ---- stacks ---- */

/* sysconf reads the value the kernel passed at exec: no system call, and
 * no shared cache for the loop threads to race on. */
static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t map_len(size_t stack_size)
{
    size_t ps = page_size();
    return (stack_size + ps - 1) / ps * ps + ps;
}

/* A stack reserved but not committed, with an inaccessible lowest page. */
static char *stack_map(size_t len)
{
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (madvise(m, page_size(), MADV_GUARD_INSTALL) == 0)
        return m;
    /* Older kernels (EINVAL): a PROT_NONE page splits the mapping in two,
     * so each stack costs two of the vm.max_map_count (65530) mappings. */
    if (mprotect(m, page_size(), PROT_NONE) == 0)
        return m;
    int e = errno;
    munmap(m, len);
    errno = e;
    return NULL;
}

void tk_stack_cache_init(struct tk_stack_cache *sc, size_t stack_size)
{
    sc->stack_size = stack_size;
    sc->n = 0;
}

void tk_stack_cache_drain(struct tk_stack_cache *sc)
{
    while (sc->n > 0)
        munmap(sc->maps[--sc->n], map_len(sc->stack_size));
}

static char *stack_get(struct tk_stack_cache *sc)
{
    if (sc->n > 0)
        return sc->maps[--sc->n];
    return stack_map(map_len(sc->stack_size));
}

/* Keeps the address space for the next fiber but gives the memory back:
 * an idle server's RSS shrinks to what its live fibers touch. */
static void stack_put(struct tk_stack_cache *sc, char *m, size_t len)
{
    size_t ps = page_size();
    asan_unpoison(m + ps, len - ps);
    if (sc->n < TK_STACK_CACHE_MAX) {
        madvise(m + ps, len - ps, MADV_DONTNEED);
        sc->maps[sc->n++] = m;
        return;
    }
    munmap(m, len);
}

/* ---- contexts ---- */

#if defined(TK_CTX_UCONTEXT)
static _Thread_local tk_fiber *starting;

static void ucontext_entry(void)
{
    fiber_main(starting);
}

static void ctx_make(tk_fiber *f, char *top)
{
    char *lo = f->map + page_size();
    getcontext(&f->ctx.uc);
    f->ctx.uc.uc_stack.ss_sp = lo;
    f->ctx.uc.uc_stack.ss_size = (size_t)(top - lo);
    f->ctx.uc.uc_link = NULL;
    f->ctx.started = 0;
    makecontext(&f->ctx.uc, ucontext_entry, 0);
}

/* Only the first entry into a fiber goes through setcontext (one
 * sigprocmask); every later switch is a plain _setjmp/_longjmp. */
static void tk_ctx_switch(struct tk_ctx *from, struct tk_ctx *to)
{
    from->started = 1; /* it runs: resuming it is a _longjmp */
    if (_setjmp(from->jb) != 0)
        return;
    if (!to->started) {
        to->started = 1;
        starting = sched.current;
        setcontext(&to->uc);
    }
    _longjmp(to->jb, 1);
}
#elif defined(__x86_64__)
/* The frame tk_ctx_switch pops: MXCSR and x87 control word, r15, r14,
 * r13 (entry), r12 (its argument), rbx, rbp, return address. */
static void ctx_make(tk_fiber *f, char *top)
{
    uint64_t *sp = (uint64_t *)(void *)top - 10;
    memset(sp, 0, 10 * sizeof *sp);
    uint32_t mxcsr = 0x1f80; /* the ABI's initial state: all masked */
    uint16_t fcw = 0x037f;
    memcpy(sp, &mxcsr, sizeof mxcsr);
    memcpy((char *)sp + 4, &fcw, sizeof fcw);
    sp[3] = (uint64_t)(uintptr_t)fiber_main;
    sp[4] = (uint64_t)(uintptr_t)f;
    sp[7] = (uint64_t)(uintptr_t)tk_ctx_start;
    f->ctx.sp = sp;
}
#else /* __aarch64__ */
/* The frame tk_ctx_switch pops: x19 (argument), x20 (entry), x21-x28, x29, x30
 * (return address), d8-d15, fpcr; 176 bytes. */
static void ctx_make(tk_fiber *f, char *top)
{
    uint64_t *sp = (uint64_t *)(void *)top - 22;
    memset(sp, 0, 22 * sizeof *sp);
    sp[0] = (uint64_t)(uintptr_t)f;
    sp[1] = (uint64_t)(uintptr_t)fiber_main;
    sp[11] = (uint64_t)(uintptr_t)tk_ctx_start;
    f->ctx.sp = sp;
}
#endif

/* ---- switching ---- */

/* The fiber's side of a switch to the loop; `exiting` lets ASan drop the
 * fiber's fake stack for good. */
static void to_sched(tk_fiber *f, bool exiting)
{
    before_switch(exiting ? NULL : &f->asan_fake, sched.stack_lo, sched.stack_len, sched.tsan);
    tk_ctx_switch(&f->ctx, &sched.ctx);
    after_switch(f->asan_fake, &sched.stack_lo, &sched.stack_len);
}

static void fiber_main(void *p)
{
    tk_fiber *f = p;
    after_switch(NULL, &sched.stack_lo, &sched.stack_len);
    f->fn(f->arg);
    f->done = true;
    to_sched(f, true);
    __builtin_unreachable();
}

void tk_fiber_resume(tk_fiber *f)
{
    if (!sched.tsan) {
#ifdef TK_TSAN
        sched.tsan = __tsan_get_current_fiber();
#endif
    }
    sched.current = f;
    tk_error_use(&f->err);
    size_t ps = page_size();
    before_switch(&sched.asan_fake, f->map + ps, f->map_len - ps, f->tsan);
    tk_ctx_switch(&sched.ctx, &f->ctx);
    after_switch(sched.asan_fake, NULL, NULL);
    tk_error_use(NULL);
    sched.current = NULL;
}

void tk_fiber_suspend(void)
{
    to_sched(sched.current, false);
}

tk_fiber *tk_fiber_current(void)
{
    return sched.current;
}

/* ---- life ---- */

/* The fiber's own record sits at the top of its stack, in the page its
 * first frames touch anyway: an idle fiber costs no extra page for it. */
tk_fiber *tk_fiber_new(struct tk_stack_cache *sc, void (*fn)(void *), void *arg)
{
    char *m = stack_get(sc);
    if (!m)
        return NULL;
    size_t len = map_len(sc->stack_size);
    uintptr_t top = (uintptr_t)(m + len) - sizeof(tk_fiber);
    top &= ~(uintptr_t)63;
    tk_fiber *f = (tk_fiber *)top;
    memset(f, 0, offsetof(tk_fiber, err));
    f->err.os_errno = 0;
    f->err.msg[0] = '\0';
    f->fn = fn;
    f->arg = arg;
    f->map = m;
    f->map_len = len;
    f->heap_idx = SIZE_MAX;
    f->tsan = tsan_new_fiber();
    f->vg_id = VALGRIND_STACK_REGISTER(m + page_size(), (char *)f);
    ctx_make(f, (char *)f);
    return f;
}

void tk_fiber_free(struct tk_stack_cache *sc, tk_fiber *f)
{
    char *m = f->map;
    size_t len = f->map_len;
    tsan_free_fiber(f->tsan);
    VALGRIND_STACK_DEREGISTER(f->vg_id);
    stack_put(sc, m, len);
}

/* ---- measurement ---- */

static void ping(void *arg)
{
    int *rounds = arg;
    for (int i = 0; i < *rounds; i++)
        tk_fiber_suspend();
}

double tk_fiber_switch_ns(int rounds)
{
    struct tk_stack_cache sc;
    tk_stack_cache_init(&sc, 64 * 1024);
    tk_fiber *f = tk_fiber_new(&sc, ping, &rounds);
    if (!f)
        return -1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    while (!f->done)
        tk_fiber_resume(f);
    clock_gettime(CLOCK_MONOTONIC, &b);
    tk_fiber_free(&sc, f);
    tk_stack_cache_drain(&sc);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    /* Each round is two switches: in and out. */
    return ns / (2.0 * (rounds + 1));
}
