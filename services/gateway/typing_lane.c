/* typing_lane.c -- typing notices off the rooms' send lanes: a lane hands each typing request
 * here when it reaches it and goes on with the room's next request, so an answer never waits for
 * the typing PUT before it (which, on the lane, it did). One thread sends them, the newest
 * request of an account and room replacing one still waiting (a notice is a state: only the last
 * counts), and an "off" whose "on" never went out cancels it. How long an answer runs before it
 * shows typing is the agent's to decide (MINDROOM_AGENT_TYPING_DELAY_MS): a quick answer
 * publishes no typing at all, so nothing here waits. Typing is advisory and expires on the
 * homeserver by itself: a notice lost to a crash or a refusal is not retried, and one that could
 * not be sent is tried again only until a newer one comes. A lane hands an "off" over only after
 * the messages before it went out, so it never goes ahead of the answer it ends. */
#include "gateway_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/thread_name.h"

/* Accounts and rooms with a notice waiting, in flight, or "on" at the homeserver; past this a
 * lane sends its notice itself, as before. */
#define TYPING_SLOTS 256
#define RETRY_MS 1000
#define TYPING_TIMEOUT_MS 30000 /* of a typing request without timeout_ms */

typedef struct slot {
    bool used;
    size_t account;
    char room[MR_MATRIX_ID_SIZE];
    json_t *req;              /* the request waiting, or NULL */
    unsigned long long seq;   /* when req came: the oldest waiting goes first */
    bool in_flight;
    bool on;                  /* the homeserver may show typing: told "on", or not known */
    long long until_ms;       /* when a known "on" expires there */
} slot;

struct gw_typing {
    gw *g;
    gw_typing_fn send;
    void *ctx;
    pthread_mutex_t lock;
    pthread_cond_t more;
    bool stopping;
    bool started;
    pthread_t thread;
    unsigned long long seq;
    slot slots[TYPING_SLOTS];
};

bool gw_typing_wanted(const json_t *req)
{
    return json_is_true(json_object_get(req, "typing"));
}

long gw_typing_timeout_ms(const json_t *req)
{
    json_t *t = json_object_get(req, "timeout_ms");
    return json_is_integer(t) ? (long)json_integer_value(t) : TYPING_TIMEOUT_MS;
}

/* A slot that holds nothing: no request waiting or in flight, and no "on" still shown. */
static bool idle(const slot *s, long long now)
{
    return !s->used || (!s->req && !s->in_flight && (!s->on || s->until_ms <= now));
}

/* The slot of account and room, else a free one (cleared), else NULL; under the lock. */
static slot *find_locked(gw_typing *t, size_t account, const char *room)
{
    long long now = mr_clock_mono_ms();
    slot *free_one = NULL;
    for (size_t i = 0; i < TYPING_SLOTS; i++) {
        slot *s = &t->slots[i];
        if (s->used && s->account == account && strcmp(s->room, room) == 0)
            return s;
        if (!free_one && idle(s, now))
            free_one = s;
    }
    if (free_one) {
        /* What the homeserver shows is not known (an earlier process, a failed send). */
        *free_one = (slot){.used = true, .account = account, .on = true, .until_ms = now};
        snprintf(free_one->room, sizeof free_one->room, "%s", room);
    }
    return free_one;
}

bool gw_typing_queue(gw_typing *t, size_t account, json_t *req)
{
    const char *room = json_string_value(json_object_get(req, "room_id"));
    if (!t || !room || strlen(room) >= MR_MATRIX_ID_SIZE)
        return false;
    pthread_mutex_lock(&t->lock);
    slot *s = find_locked(t, account, room);
    if (!s) {
        pthread_mutex_unlock(&t->lock);
        return false;
    }
    int folded = 0;
    /* A newer request keeps the waiting one's turn. */
    if (s->req) {
        json_decref(s->req);
        s->req = NULL;
        folded++;
    } else {
        s->seq = ++t->seq;
    }
    /* An "off" where the homeserver is known to show no typing has nothing to end. */
    if (!gw_typing_wanted(req) && !s->in_flight && !s->on) {
        json_decref(req);
        folded++;
    } else {
        s->req = req;
        pthread_cond_signal(&t->more);
    }
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < folded; i++)
        gw_metrics_send(t->g, "typing", "coalesced", -1);
    return true;
}

/* The waiting request that came first, taken from its slot (now in flight); NULL when none is. */
static slot *next_locked(gw_typing *t, json_t **req)
{
    slot *first = NULL;
    for (size_t i = 0; i < TYPING_SLOTS; i++) {
        slot *s = &t->slots[i];
        if (s->used && s->req && !s->in_flight && (!first || s->seq < first->seq))
            first = s;
    }
    if (first) {
        *req = first->req;
        first->req = NULL;
        first->in_flight = true;
    }
    return first;
}

static void *typing_main(void *arg)
{
    gw_typing *t = arg;
    mr_thread_name("gw-typing");
    pthread_mutex_lock(&t->lock);
    for (;;) {
        json_t *req = NULL;
        slot *s = next_locked(t, &req);
        if (!s) {
            /* Stopping, what waits still goes out first: an "off" left unsent shows typing until
             * it expires. */
            if (t->stopping)
                break;
            pthread_cond_wait(&t->more, &t->lock);
            continue;
        }
        size_t account = s->account;
        pthread_mutex_unlock(&t->lock);
        mr_err err = {0};
        mr_code rc = t->send(t->ctx, account, req, &err);
        bool again = (rc == MR_EUNAVAIL || rc == MR_ENOMEM) && !mr_runtime_stopping(t->g->rt);
        pthread_mutex_lock(&t->lock);
        s->in_flight = false;
        s->on = rc != MR_OK || gw_typing_wanted(req);
        s->until_ms = mr_clock_mono_ms() + (rc == MR_OK ? gw_typing_timeout_ms(req) : 0);
        if (again && !s->req) {
            s->req = req;
            req = NULL;
            s->seq = ++t->seq;
        }
        json_decref(req);
        if (again) {
            pthread_mutex_unlock(&t->lock);
            mr_runtime_sleep(t->g->rt, RETRY_MS);
            pthread_mutex_lock(&t->lock);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

mr_code gw_typing_start(gw *g, gw_typing_fn send, void *ctx, gw_typing **out, mr_err *err)
{
    gw_typing *t = *out = calloc(1, sizeof *t);
    if (!t)
        return mr_err_set(err, MR_ENOMEM, "out of memory starting the typing lane");
    t->g = g;
    t->send = send;
    t->ctx = ctx;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->more, NULL);
    int e = pthread_create(&t->thread, NULL, typing_main, t);
    if (e != 0)
        return mr_err_errno(err, MR_EINTERNAL, e, "starting the typing lane");
    t->started = true;
    return MR_OK;
}

void gw_typing_stop(gw_typing *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->more);
    pthread_mutex_unlock(&t->lock);
    if (t->started)
        pthread_join(t->thread, NULL);
    for (size_t i = 0; i < TYPING_SLOTS; i++)
        json_decref(t->slots[i].req);
    pthread_cond_destroy(&t->more);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
