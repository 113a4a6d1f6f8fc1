/* bench_stop.h -- the bench servers run until SIGTERM or SIGINT: both are blocked before any
 * thread starts (threads inherit the mask) and taken by sigwait on the main thread. */
#ifndef MR_BENCH_STOP_H
#define MR_BENCH_STOP_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

/* Blocks the stop signals into *stop; false (said on stderr) when the mask cannot be set. */
static inline int bench_stop_block(sigset_t *stop)
{
    if (sigemptyset(stop) != 0 || sigaddset(stop, SIGTERM) != 0 || sigaddset(stop, SIGINT) != 0 ||
        pthread_sigmask(SIG_BLOCK, stop, NULL) != 0) {
        fprintf(stderr, "bench: could not block SIGTERM and SIGINT\n");
        return 0;
    }
    return 1;
}

/* Waits for one of the stop signals blocked by bench_stop_block. */
static inline void bench_stop_wait(const sigset_t *stop)
{
    int sig = 0;
    (void)sigwait(stop, &sig);
}

#endif
