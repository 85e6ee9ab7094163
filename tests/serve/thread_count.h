/* SPDX-License-Identifier: MIT */
/* Thread counting for the tcpkit_serve tests: every case checks that the
 * workers it caused are gone again. */
#ifndef TH_THREAD_COUNT_H
#define TH_THREAD_COUNT_H

/* Starts and joins one thread so lazily started runtime threads (TSan's)
 * exist before a baseline is taken. */
void warm_up_threads(void);
/* Threads of this process, from /proc/self/task; -1 if unreadable. */
int count_threads(void);
/* The thread count once it has not changed for 20 ms (at most ~2 s). */
int stable_thread_count(void);
/* Waits (at most ~5 s) for the count to reach want; returns the last count. */
int wait_thread_count(int want);

#endif
