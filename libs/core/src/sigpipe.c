/* sigpipe.c -- SIGPIPE held back around writes to peers that may be gone. */
#include "mindroom/sigpipe.h"

#include <pthread.h>
#include <time.h>

static sigset_t pipe_only(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    return s;
}

void mr_sigpipe_hold(mr_sigpipe_guard *g)
{
    sigset_t pipe_set = pipe_only(), pending;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
    /* A signal the thread does not block is delivered, not left pending: only when SIGPIPE was
     * blocked already can one be waiting (this runs around every Redis command: a syscall less). */
    g->was_pending = false;
    if (sigismember(&g->old, SIGPIPE)) {
        sigpending(&pending);
        g->was_pending = sigismember(&pending, SIGPIPE);
    }
}

void mr_sigpipe_release(mr_sigpipe_guard *g)
{
    sigset_t pipe_set = pipe_only(), pending;
    if (!g->was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}
