/* SPDX-License-Identifier: MIT */
/* The syscall seam of the fault tests: deterministic faults without a
 * single hook in the library.
 *
 * The fault test executables link the static library and pass
 * -Wl,--wrap=send,--wrap=recv,... (see meson.build). The linker then sends
 * every call to send() made by any object linked in statically - the
 * library's own objects included - to __wrap_send() in seam.c, which
 * forwards to the real send() (__real_send) unless a fault rule says
 * otherwise. The shipped library is untouched: zero cost.
 *
 * Rules belong to the thread that adds them, so a peer thread of a test
 * (or Check itself) never sees another thread's faults. A rule counts the
 * calls of its kind made by its thread: it lets `skip` calls through, then
 * acts on every `every`-th call, at most `times` times (0 or -1: no limit).
 * Rules marked while_held act only while tf_hold(true) is in force (a
 * process-wide switch another thread can flip).
 */
#ifndef TH_FAULT_SEAM_H
#define TH_FAULT_SEAM_H

#include <stdbool.h>
#include <stddef.h>

/* The wrapped calls. TF_ALLOC covers malloc, calloc and realloc. */
typedef enum tf_call {
    TF_SEND,
    TF_RECV,
    TF_POLL,
    TF_ACCEPT, /* accept4 */
    TF_CONNECT,
    TF_SOCKET,
    TF_BIND,
    TF_EVENTFD,
    TF_ALLOC,
    TF_THREAD,   /* pthread_create */
    TF_SENDMSG,  /* sendmsg (tcpkit_sendv, tcpkit_send_msg) */
    TF_SENDFILE, /* sendfile64: what sendfile is with 64-bit off_t */
    TF_NCALLS
} tf_call;

typedef enum tf_action {
    /* Fail with err before the real call: -1/errno (NULL for TF_ALLOC,
     * the error number itself for TF_THREAD). */
    TF_FAIL,
    /* Make the real call, then report err if it succeeded or is in
     * progress (connect interrupted by a signal goes on asynchronously). */
    TF_FAIL_AFTER,
    /* send/recv/sendmsg/sendfile: hand at most `max` bytes to the real
     * call. */
    TF_SHORT,
    /* poll: wait at most `max` ms; if the real poll timed out before the
     * caller's timeout, return -1 with err (a signal arriving every `max`
     * ms). */
    TF_SLICE,
} tf_action;

typedef struct tf_rule {
    tf_call call;
    tf_action action;
    int err;
    size_t max;
    unsigned skip;
    unsigned every; /* 0 is taken as 1 */
    long times;
    bool while_held;
} tf_rule;

/* Adds a rule for the calling thread; returns its id (for tf_hits). */
int tf_add(tf_rule r);
/* Shorthands. */
int tf_fail(tf_call c, int err, unsigned skip, unsigned every, long times);
int tf_short(tf_call c, size_t max, long times);
/* How often rule id (of the calling thread) has acted. */
long tf_hits(int id);
/* Removes the calling thread's rules and resets its allocation record. */
void tf_reset(void);
/* Process-wide number of calls of kind c so far (through the wrappers). */
unsigned long tf_calls(tf_call c);
/* The process-wide switch for while_held rules. */
void tf_hold(bool on);
/* The largest single allocation the calling thread requested since the
 * last tf_reset(). */
size_t tf_max_alloc(void);

#endif
