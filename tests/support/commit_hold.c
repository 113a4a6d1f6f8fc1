/* commit_hold.c -- see commit_hold.h. */
#include "commit_hold.h"

#include <time.h>

#include "mindroom/clock.h"

static mr_code held_commit(void *ctx, mr_err *err)
{
    mr_tp_commit_hold *h = ctx;
    mr_code rc = mr_store_sync(h->store, err);
    pthread_mutex_lock(&h->mu);
    h->held++;
    pthread_cond_broadcast(&h->cv);
    while (h->hold)
        pthread_cond_wait(&h->cv, &h->mu);
    h->held--;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

bool mr_tp_commit_hold_install(mr_tp_commit_hold *h, mr_bus *bus, mr_store *store)
{
    h->store = store;
    return mr_bus_before_commit(bus, held_commit, h);
}

void mr_tp_commit_hold_set(mr_tp_commit_hold *h, bool on)
{
    pthread_mutex_lock(&h->mu);
    h->hold = on;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

int mr_tp_commit_hold_wait(mr_tp_commit_hold *h, int timeout_ms)
{
    struct timespec until = mr_clock_after_ms(CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&h->mu);
    while (h->held == 0 && pthread_cond_timedwait(&h->cv, &h->mu, &until) == 0) {
    }
    int held = h->held;
    pthread_mutex_unlock(&h->mu);
    return held;
}
