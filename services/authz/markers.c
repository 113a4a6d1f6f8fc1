/* markers.c -- the `turn:<event_id>` markers of decided events, written once the bus holds what
 * the decision published (proto/store.md), without holding up the next event meanwhile. */
#include "authz_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"

#define COMPONENT "authz"
#define MARKER_TTL_MS (7L * 24 * 3600 * 1000)
/* How long a bus without a journal may take to make the turn durable (mr_bus_flush). */
#define FLUSH_TIMEOUT_MS 30000

typedef struct marker {
    authz_markers *set;
    struct marker *next;
    const char *outcome; /* a string constant */
    char key[];
} marker;

/* Shared by the service and every marker in flight, which may outlive it: the inproc journal
 * calls the last of them when the bus closes, after the service has returned. */
struct authz_markers {
    pthread_mutex_t mu;
    int refs;
    mr_store *store;
    marker *waiting; /* published, marker not written yet */
};

authz_markers *authz_markers_new(mr_store *store)
{
    authz_markers *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->refs = 1;
    m->store = store;
    return m;
}

static void unref(authz_markers *m)
{
    pthread_mutex_lock(&m->mu);
    bool last = --m->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last) {
        pthread_mutex_destroy(&m->mu);
        free(m);
    }
}

void authz_markers_release(authz_markers *m)
{
    if (m)
        unref(m);
}

bool authz_markers_waiting(authz_markers *m, const char *key)
{
    pthread_mutex_lock(&m->mu);
    const marker *k = m->waiting;
    while (k && strcmp(k->key, key) != 0)
        k = k->next;
    pthread_mutex_unlock(&m->mu);
    return k != NULL;
}

/* The bus holds the turn (durable), or never will in this process (it closed first: the event
 * comes again after the restart and is decided again). */
static void on_durable(void *ctx, bool durable)
{
    marker *k = ctx;
    authz_markers *m = k->set;
    bool won = false;
    mr_err err = {0};
    if (durable &&
        mr_store_set_nx(m->store, k->key, k->outcome, strlen(k->outcome), MARKER_TTL_MS, &won, &err) != MR_OK)
        mr_log_warn(COMPONENT, "marking %s decided: %s (a copy of it may give a second turn)", k->key, err.msg);
    pthread_mutex_lock(&m->mu);
    marker **at = &m->waiting;
    while (*at != k)
        at = &(*at)->next;
    *at = k->next;
    pthread_mutex_unlock(&m->mu);
    free(k);
    unref(m);
}

mr_code authz_markers_set_when_durable(authz_markers *m, mr_bus *bus, const char *key, const char *outcome,
                                       mr_err *err)
{
    size_t n = strlen(key) + 1;
    marker *k = malloc(sizeof *k + n);
    if (!k)
        return mr_err_set(err, MR_ENOMEM, "out of memory marking %s", key);
    *k = (marker){.set = m, .outcome = outcome};
    memcpy(k->key, key, n);
    pthread_mutex_lock(&m->mu);
    k->next = m->waiting;
    m->waiting = k;
    m->refs++;
    pthread_mutex_unlock(&m->mu);
    return mr_bus_when_durable(bus, FLUSH_TIMEOUT_MS, on_durable, k, err);
}
