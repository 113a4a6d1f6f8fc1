/* replay.c -- Megolm replay detection: which event each (session, message index) decrypted. */
#include "olm_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct replay_entry {
    struct replay_entry *next;
    uint64_t hash;
    uint32_t index;
    char *session_id;
    char *event_id;
} replay_entry;

struct mr_olm_replay {
    replay_entry **buckets;
    size_t nbuckets, count;
};

/* FNV-1a over the session ID and the index. */
static uint64_t replay_hash(const char *session_id, uint32_t index)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)session_id; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    for (int i = 0; i < 4; i++)
        h = (h ^ ((index >> (8 * i)) & 0xff)) * 1099511628211ULL;
    return h;
}

mr_code mr_olm_replay_new(mr_olm_replay **out, mr_err *err)
{
    *out = NULL;
    mr_olm_replay *r = calloc(1, sizeof *r);
    if (r) {
        r->nbuckets = 64;
        r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    }
    if (!r || !r->buckets) {
        free(r);
        return mr_err_set(err, MR_ENOMEM, "out of memory making a Megolm replay table");
    }
    *out = r;
    return MR_OK;
}

void mr_olm_replay_free(mr_olm_replay *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbuckets; i++)
        for (replay_entry *e = r->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->session_id);
            free(e->event_id);
            free(e);
        }
    free(r->buckets);
    free(r);
}

/* Doubles the bucket array; on failure the table keeps working, only with longer chains. */
static void replay_grow(mr_olm_replay *r)
{
    size_t n = r->nbuckets * 2;
    replay_entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < r->nbuckets; i++)
        for (replay_entry *e = r->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash % n];
            b[e->hash % n] = e;
        }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

mr_code mr_olm_replay_check(mr_olm_replay *r, const char *session_id, uint32_t index, const char *event_id,
                            mr_err *err)
{
    if (!session_id || !session_id[0] || !event_id || !event_id[0])
        return mr_err_set(err, MR_EINVAL, "replay check needs a Megolm session ID and an event ID");
    uint64_t h = replay_hash(session_id, index);
    for (replay_entry *e = r->buckets[h % r->nbuckets]; e; e = e->next) {
        if (e->hash != h || e->index != index || strcmp(e->session_id, session_id) != 0)
            continue;
        if (strcmp(e->event_id, event_id) == 0)
            return MR_OK;
        return mr_err_set(err, MR_EEXISTS,
                          "Megolm replay: message index %u of session %s decrypted event %s already, and now %s",
                          (unsigned)index, session_id, e->event_id, event_id);
    }
    replay_entry *e = calloc(1, sizeof *e);
    if (e) {
        e->session_id = strdup(session_id);
        e->event_id = strdup(event_id);
    }
    if (!e || !e->session_id || !e->event_id) {
        if (e) {
            free(e->session_id);
            free(e->event_id);
        }
        free(e);
        return mr_err_set(err, MR_ENOMEM, "out of memory recording Megolm index %u of session %s", (unsigned)index,
                          session_id);
    }
    e->hash = h;
    e->index = index;
    e->next = r->buckets[h % r->nbuckets];
    r->buckets[h % r->nbuckets] = e;
    if (++r->count > r->nbuckets * 2)
        replay_grow(r);
    return MR_OK;
}
