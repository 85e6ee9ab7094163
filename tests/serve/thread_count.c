/* SPDX-License-Identifier: MIT */
/* Counting this process's threads, for the serve tests' leak checks. */
#include "thread_count.h"

#include <dirent.h>
#include <pthread.h>
#include <time.h>

/* Runtimes start helper threads lazily on the first pthread_create (the
 * ThreadSanitizer background thread): start and join one thread first so
 * they already exist when the baseline is taken. */
static void *nothing(void *arg)
{
    return arg;
}

void warm_up_threads(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) == 0)
        pthread_join(t, NULL);
}

int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* A thread that pthread_join() has reaped can still be listed in
 * /proc/self/task for a moment (the kernel wakes the joiner before the task
 * is gone; under Valgrind the moment is long). There is no event to wait
 * for, so these two poll the count briefly, bounded. */
static void pause_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* The thread count once it has not changed for 20 ms (at most ~2 s). */
int stable_thread_count(void)
{
    int last = count_threads(), same = 0;
    for (int i = 0; i < 400 && same < 4; i++) {
        pause_ms(5);
        int now = count_threads();
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

/* Waits (at most ~5 s) for the thread count to come back to want; returns
 * the last count seen. */
int wait_thread_count(int want)
{
    int now = count_threads();
    for (int i = 0; i < 1000 && now != want; i++) {
        pause_ms(5);
        now = count_threads();
    }
    return now;
}
