/* sigpipe.h -- writes to a peer that may have gone (a closed socket, a dead child's pipe) with
 * SIGPIPE held back, so they fail with EPIPE instead of ending the process. A library must not
 * change the process's signal dispositions; this only masks the signal in the calling thread
 * for the length of the write, as curl's sigpipe guard does. */
#ifndef MINDROOM_SIGPIPE_H
#define MINDROOM_SIGPIPE_H

#include <signal.h>
#include <stdbool.h>

typedef struct mr_sigpipe_guard {
    sigset_t old;
    bool was_pending;
} mr_sigpipe_guard;

/* Blocks SIGPIPE in this thread; a SIGPIPE already pending is remembered and left alone. */
void mr_sigpipe_hold(mr_sigpipe_guard *g);
/* Consumes a SIGPIPE the writes since hold raised, then restores the thread's mask. */
void mr_sigpipe_release(mr_sigpipe_guard *g);

#endif
