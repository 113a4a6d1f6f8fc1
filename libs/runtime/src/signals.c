/* signals.c -- SIGHUP reloads the config, SIGINT and SIGTERM stop: taken by one watcher thread. */
#include "runtime_internal.h"

#include <signal.h>
#include <string.h>
#include "mindroom/thread_name.h"

/* Waiting for the signals on a thread of our own (rather than in handlers) lets a reload load
 * files, allocate and log, none of which a signal handler may do. */
static void watched_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

mr_code mr_runtime_block_signals(mr_err *err)
{
    sigset_t set;
    watched_set(&set);
    int e = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return e ? mr_err_errno(err, MR_EINTERNAL, e, "blocking SIGHUP, SIGINT and SIGTERM") : MR_OK;
}

static void *watch(void *arg)
{
    const mr_runtime *rt = arg;
    mr_thread_name("signals");
    sigset_t set;
    watched_set(&set);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (atomic_load(&rt->state->closing))
            break;
        if (sig == SIGHUP) {
            if (rt->settings.config_path)
                mr_log_info(rt->service, "SIGHUP: reloading %s", rt->settings.config_path);
            mr_err err = {0};
            mr_runtime_reload(rt, &err);
        } else {
            /* Logged once the stop is set, so whoever reads the line knows every thread will
             * see it (the end-to-end tests release a held model answer then). */
            mr_runtime_stop(rt);
            mr_log_info(rt->service, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        }
    }
    return NULL;
}

mr_code mr_runtime_watch_signals(const mr_runtime *rt, mr_err *err)
{
    mr_runtime_state *st = rt->state;
    if (st->watching)
        return MR_OK;
    int e = pthread_create(&st->watcher, NULL, watch, (void *)rt);
    if (e)
        return mr_err_errno(err, MR_EINTERNAL, e, "starting the signal watcher");
    st->watching = true;
    return MR_OK;
}

void mr_runtime_unwatch_signals(const mr_runtime *rt)
{
    mr_runtime_state *st = rt->state;
    if (!st->watching)
        return;
    atomic_store(&st->closing, true);
    /* The watcher waits for SIGTERM among others: sending it one ends its wait. */
    pthread_kill(st->watcher, SIGTERM);
    pthread_join(st->watcher, NULL);
    st->watching = false;
}
