/* sync_driver.c -- every managed account's sync loop on a fixed set of threads: one thread drives
 * all the long polls through an HTTP multi handle (a connection per account, no thread), and a
 * small pool of workers handles the batches that come back (publishing, backfill, invites,
 * saving the token), one batch per account at a time, so each account's rounds stay in order. */
#include "gateway_internal.h"
#include "mindroom/clock.h"
#include "mindroom/thread_name.h"

#include <stdlib.h>
#include <string.h>

/* Workers handling returned batches: each may block on the bus (a flush waits for
 * durability), the store or the homeserver (backfill, invites), so several let slow batches
 * overlap. At 1,000 accounts, 4 made start-up wait on flushes in turn (114 s to ready against
 * 56 s with 16). */
#define SYNC_WORKERS 16
/* Open files the gateway needs whatever its account count. */
#define FD_SPARE 256
/* The driver's longest wait, so it sees a stop within this. */
#define DRIVER_TICK_MS 1000

typedef enum slot_state {
    SLOT_WAITING = 0,   /* until wake_at, then the driver starts its next sync */
    SLOT_RUNNING,       /* its sync is in the multi */
    SLOT_QUEUED,        /* its sync came back; in the work queue */
    SLOT_HANDLING,      /* a worker has it */
} slot_state;

typedef struct slot {
    gw_loop *l;
    slot_state state;
    bool kick;          /* its running sync is to end now: it publishes a room it left out */
    long long wake_at;  /* monotonic ms */
    mr_code rc;         /* what the multi reported */
    mr_err why;
    struct slot *next;  /* in the work queue */
} slot;

struct gw_syncs {
    gw *g;
    mr_http_multi *mu;
    slot *slots;
    size_t n;
    pthread_mutex_t lock;       /* guards the slots' state and the queue */
    pthread_cond_t work;
    slot *head, *tail;
    bool ending;
    pthread_t driver;
    pthread_t workers[SYNC_WORKERS];
    size_t started_workers;
    bool driver_started;
};

/* The multi reports a sync done: the batch goes to the workers. */
static void on_done(void *ctx, void *tag, mr_code rc, const mr_err *why)
{
    gw_syncs *s = ctx;
    slot *sl = tag;
    pthread_mutex_lock(&s->lock);
    sl->rc = rc;
    sl->why = *why;
    sl->state = SLOT_QUEUED;
    sl->next = NULL;
    if (s->tail)
        s->tail->next = sl;
    else
        s->head = sl;
    s->tail = sl;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
}

/* Starts the syncs that are due; returns how long until the next one is. */
static long start_due(gw_syncs *s)
{
    long long now = mr_clock_mono_ms();
    long wait = DRIVER_TICK_MS;
    for (size_t i = 0; i < s->n; i++) {
        slot *sl = &s->slots[i];
        pthread_mutex_lock(&s->lock);
        if (sl->state == SLOT_RUNNING && sl->kick) {
            mr_matrix_sync_cancel(gw_loop_account(sl->l)->m, s->mu);
            sl->state = SLOT_WAITING;
            sl->wake_at = now;
        }
        sl->kick = false;
        bool due = sl->state == SLOT_WAITING && sl->wake_at <= now;
        if (sl->state == SLOT_WAITING && !due && sl->wake_at - now < wait)
            wait = (long)(sl->wake_at - now);
        pthread_mutex_unlock(&s->lock);
        if (!due)
            continue;
        mr_err err = {0};
        mr_code rc = gw_loop_begin(sl->l, s->mu, sl, &err);
        pthread_mutex_lock(&s->lock);
        if (rc == MR_OK) {
            sl->state = SLOT_RUNNING;
        } else {
            long delay = gw_loop_failed(sl->l, &err, -1);
            sl->wake_at = now + delay;
            if (delay < wait)
                wait = delay;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return wait;
}

static void *driver_main(void *arg)
{
    gw_syncs *s = arg;
    mr_thread_name("gw-sync-poll");
    while (!mr_runtime_stopping(s->g->rt)) {
        long wait = start_due(s);
        mr_err err = {0};
        if (mr_http_multi_step(s->mu, (int)wait, on_done, s, &err) != MR_OK) {
            mr_log_error(GW, "the sync driver stops: %s", err.msg);
            break;
        }
    }
    pthread_mutex_lock(&s->lock);
    s->ending = true;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void *worker_main(void *arg)
{
    gw_syncs *s = arg;
    mr_thread_name("gw-sync");
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->ending)
            pthread_cond_wait(&s->work, &s->lock);
        slot *sl = s->head;
        if (!sl)
            break;
        s->head = sl->next;
        if (!s->head)
            s->tail = NULL;
        sl->state = SLOT_HANDLING;
        pthread_mutex_unlock(&s->lock);
        long delay = gw_loop_end(sl->l, sl->rc, &sl->why);
        pthread_mutex_lock(&s->lock);
        sl->state = SLOT_WAITING;
        sl->wake_at = mr_clock_mono_ms() + delay;
        mr_http_multi_wakeup(s->mu);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

void gw_syncs_kick(gw_syncs *s, const char *user_id)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(gw_loop_account(s->slots[i].l)->user_id, user_id) != 0)
            continue;
        pthread_mutex_lock(&s->lock);
        s->slots[i].kick = true;
        pthread_mutex_unlock(&s->lock);
        mr_http_multi_wakeup(s->mu);
    }
}

mr_code gw_syncs_start(gw *g, gw_syncs **out, mr_err *err)
{
    *out = NULL;
    gw_syncs *s = calloc(1, sizeof *s);
    if (!s || !(s->slots = calloc(g->n_accounts ? g->n_accounts : 1, sizeof *s->slots))) {
        free(s);
        return mr_err_set(err, MR_ENOMEM, "out of memory starting the sync loops");
    }
    s->g = g;
    int e = pthread_mutex_init(&s->lock, NULL);
    if (e == 0 && (e = pthread_cond_init(&s->work, NULL)) != 0)
        pthread_mutex_destroy(&s->lock);
    if (e != 0) {
        free(s->slots);
        free(s);
        return mr_err_errno(err, MR_EINTERNAL, e, "starting the sync loops");
    }
    *out = s;
    /* A long poll holds a connection per account, beside the bus, the store, the sender and
     * the listener: the usual soft limit of 1,024 files would end near 1,000 accounts. */
    unsigned long want = 2 * (unsigned long)g->n_accounts + FD_SPARE, got = 0;
    mr_err why = {0};
    if (mr_http_fd_limit_raise(want, &got, &why) != MR_OK || got < want)
        mr_log_warn(GW, "%zu accounts may need %lu open files, the limit is %lu%s%s", g->n_accounts, want, got,
                    why.msg[0] ? ": " : "", why.msg);
    mr_code rc = mr_http_multi_new(&s->mu, err);
    for (size_t i = 0; rc == MR_OK && i < g->n_accounts; i++, s->n++)
        if (!(s->slots[i].l = gw_loop_new(g, &g->accounts[i])))
            rc = mr_err_set(err, MR_ENOMEM, "out of memory starting the sync of %s", g->accounts[i].user_id);
    /* An account has one batch at a time: workers past the account count would never work. */
    size_t workers = g->n_accounts < SYNC_WORKERS ? (g->n_accounts ? g->n_accounts : 1) : SYNC_WORKERS;
    for (; rc == MR_OK && s->started_workers < workers; s->started_workers++)
        if ((e = pthread_create(&s->workers[s->started_workers], NULL, worker_main, s)) != 0)
            rc = mr_err_errno(err, MR_EINTERNAL, e, "starting a sync worker");
    if (rc == MR_OK && (e = pthread_create(&s->driver, NULL, driver_main, s)) != 0)
        rc = mr_err_errno(err, MR_EINTERNAL, e, "starting the sync driver");
    s->driver_started = rc == MR_OK;
    if (rc == MR_OK)
        atomic_store(&g->syncs, s);
    return rc;
}

void gw_syncs_stop(gw_syncs *s)
{
    if (!s)
        return;
    atomic_store(&s->g->syncs, NULL);
    if (s->driver_started) {
        pthread_join(s->driver, NULL);
    } else {
        pthread_mutex_lock(&s->lock);
        s->ending = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->lock);
    }
    for (size_t i = 0; i < s->started_workers; i++)
        pthread_join(s->workers[i], NULL);
    for (size_t i = 0; i < s->n; i++) {
        if (s->mu)
            mr_matrix_sync_cancel(gw_loop_account(s->slots[i].l)->m, s->mu);
        gw_loop_free(s->slots[i].l);
    }
    mr_http_multi_free(s->mu);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->lock);
    free(s->slots);
    free(s);
}
