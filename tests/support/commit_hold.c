/* commit_hold.c -- see commit_hold.h. */
#include "commit_hold.h"
#include "tp_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int mr_tp_commit_hold_open(mr_tp_commit_hold *h, const mr_runtime_opts *ro, mr_runtime **rt)
{
    mr_err err = {0};
    unsetenv("MINDROOM_BUS_URL");
    unsetenv("MINDROOM_STORE_URL");
    if (mr_runtime_open(ro, rt, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    if (strncmp((*rt)->settings.bus_url, "inproc:///", 10) != 0)
        return fprintf(stderr, "expected a journaled inproc bus, got %s\n", (*rt)->settings.bus_url), -1;
    h->store = (*rt)->store;
    if (!mr_bus_before_commit((*rt)->bus, held_commit, h))
        return fprintf(stderr, "the bus has no journal\n"), -1;
    return 0;
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

static void *serve_main(void *arg)
{
    mr_tp_commit_hold *h = arg;
    h->serve(h->rt);
    return NULL;
}

int mr_tp_commit_hold_serve(mr_tp_commit_hold *h, const mr_runtime *rt, int (*serve)(const mr_runtime *rt))
{
    h->serve = serve;
    h->rt = rt;
    if (pthread_create(&h->service, NULL, serve_main, h) != 0) {
        fprintf(stderr, "cannot start the service's thread\n");
        return -1;
    }
    h->serving = true;
    return 0;
}

void mr_tp_commit_hold_close(mr_tp_commit_hold *h, mr_runtime *rt, mr_bus_consumer *consumer)
{
    mr_tp_commit_hold_set(h, false);
    if (rt)
        mr_runtime_stop(rt);
    if (h->serving)
        pthread_join(h->service, NULL);
    h->serving = false;
    mr_bus_consumer_close(consumer);
    mr_runtime_close(rt);
}

char *mr_tp_stored(const mr_runtime *rt, const char *key, const char *what)
{
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    mr_code rc = mr_store_get(rt->store, key, &v, &len, &err);
    if (rc == MR_ENOTFOUND)
        return NULL;
    mr_tp_check_step(rc, &err, what);
    return v;
}
