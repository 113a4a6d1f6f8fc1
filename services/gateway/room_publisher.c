/* room_publisher.c -- which managed account publishes each room's events: the router when it
 * is joined, else the lowest user ID among the managed accounts joined, so each event enters
 * matrix.inbound once. Every event ID is claimed here before it is published, so a hand-over
 * between two accounts' sync loops, which see the room at different moments, neither doubles
 * nor drops an event. Memory only: after a restart the loops report their rooms again, and a
 * replayed event is absorbed downstream as any replay is. */
#include "gateway_internal.h"

#include <stdlib.h>
#include <string.h>

/* Event IDs remembered per room: more than a hand-over can fetch again (backfill_max). */
#define CLAIMS_KEPT 4096

/* pub_rooms: room ID -> {"joined": {user ID: true}, "claimed": {event ID: the claiming account},
 * "order": [event IDs, oldest first], "last": the newest claimed event ID, "facts": {key,
 * alias} of a managed room}. */
static json_t *room_entry(gw *g, const char *room_id)
{
    json_t *r = json_object_get(g->pub_rooms, room_id);
    if (r)
        return r;
    r = json_pack("{s:{}, s:{}, s:[]}", "joined", "claimed", "order");
    if (!r || json_object_set_new(g->pub_rooms, room_id, r) != 0)
        return NULL;
    return r;
}

mr_code gw_pub_init(gw *g, mr_err *err)
{
    g->pub_rooms = json_object();
    if (!g->pub_rooms)
        return mr_err_set(err, MR_ENOMEM, "out of memory setting up the room publishers");
    int e = pthread_mutex_init(&g->pub_lock, NULL);
    if (e != 0) {
        json_decref(g->pub_rooms);
        g->pub_rooms = NULL;
        return mr_err_errno(err, MR_EINTERNAL, e, "setting up the room publishers");
    }
    return MR_OK;
}

void gw_pub_free(gw *g)
{
    if (!g->pub_rooms)
        return;
    pthread_mutex_destroy(&g->pub_lock);
    json_decref(g->pub_rooms);
    g->pub_rooms = NULL;
}

/* The publisher among the joined: the router first, then the lowest user ID. */
static const char *publisher_of(const gw *g, json_t *joined)
{
    if (json_object_get(joined, g->router->user_id))
        return g->router->user_id;
    const char *best = NULL, *user;
    json_t *v;
    json_object_foreach(joined, user, v)
        if (!best || strcmp(user, best) < 0)
            best = user;
    return best;
}

mr_code gw_pub_note(gw *g, const char *room_id, const char *user_id, bool joined, bool *mine,
                    mr_err *err)
{
    pthread_mutex_lock(&g->pub_lock);
    json_t *r = room_entry(g, room_id);
    json_t *set = json_object_get(r, "joined");
    int bad = !r;
    const char *before = bad ? NULL : publisher_of(g, set);
    char *was = before ? strdup(before) : NULL;
    bad = bad || (before && !was);
    if (!bad && joined)
        bad = json_object_set_new(set, user_id, json_true());
    else if (!bad)
        json_object_del(set, user_id);
    const char *who = bad ? NULL : publisher_of(g, set);
    *mine = who && strcmp(who, user_id) == 0;
    /* A new publisher fetches what its loop passed over while another published: the events
     * after the last one claimed now (with none claimed yet, what its own syncs left out). */
    json_t *last = json_object_get(r, "last");
    char *to = NULL;
    if (!bad && who && was && strcmp(who, was) != 0) {
        bad = json_object_set_new(r, "handover", json_pack("{s:s, s:O?}", "to", who, "stop", last)) ||
              !(to = strdup(who));
    }
    free(was);
    pthread_mutex_unlock(&g->pub_lock);
    /* Its long poll left the room out: the homeserver would keep it waiting. */
    if (to && strcmp(to, user_id) != 0)
        gw_syncs_kick(atomic_load(&g->syncs), to);
    free(to);
    return bad ? mr_err_set(err, MR_ENOMEM, "out of memory noting %s in %s", user_id, room_id) : MR_OK;
}

json_t *gw_pub_others(gw *g, const char *user_id)
{
    json_t *out = json_array();
    pthread_mutex_lock(&g->pub_lock);
    const char *room_id;
    json_t *r;
    json_object_foreach(g->pub_rooms, room_id, r) {
        json_t *joined = json_object_get(r, "joined");
        const char *who = publisher_of(g, joined);
        if (out && json_object_get(joined, user_id) && who && strcmp(who, user_id) != 0 &&
            json_array_append_new(out, json_string(room_id)) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    pthread_mutex_unlock(&g->pub_lock);
    return out;
}

json_t *gw_pub_take_handovers(gw *g, const char *user_id)
{
    json_t *out = json_object();
    pthread_mutex_lock(&g->pub_lock);
    const char *room_id;
    json_t *r;
    void *it;
    json_object_foreach_safe(g->pub_rooms, it, room_id, r) {
        json_t *h = json_object_get(r, "handover");
        const char *to = json_string_value(json_object_get(h, "to"));
        if (!out || !to || strcmp(to, user_id) != 0)
            continue;
        json_t *stop = json_object_get(h, "stop");
        if (json_object_set(out, room_id, stop ? stop : json_null()) != 0) {
            json_decref(out);
            out = NULL;
            continue;
        }
        json_object_del(r, "handover");
    }
    pthread_mutex_unlock(&g->pub_lock);
    return out;
}

bool gw_pub_claim(gw *g, const char *room_id, const char *event_id, const char *user_id)
{
    pthread_mutex_lock(&g->pub_lock);
    json_t *r = room_entry(g, room_id);
    json_t *claimed = json_object_get(r, "claimed"), *order = json_object_get(r, "order");
    const char *holder = json_string_value(json_object_get(claimed, event_id));
    /* The account that claimed an event may publish it again: its batch failed before the
     * token was saved and is being retried, as a replay after a crash would. */
    bool won = holder ? strcmp(holder, user_id) == 0 : false;
    /* Out of memory claims nothing new: the event stays unpublished rather than doubled, and
     * the caller's batch fails on its next allocation anyway. */
    if (r && !holder) {
        won = json_object_set_new(claimed, event_id, json_string(user_id)) == 0;
        if (won && (json_array_append_new(order, json_string(event_id)) != 0 ||
                    json_object_set_new(r, "last", json_string(event_id)) != 0)) {
            json_object_del(claimed, event_id);
            won = false;
        }
    }
    if (json_array_size(order) > CLAIMS_KEPT) {
        json_object_del(claimed, json_string_value(json_array_get(order, 0)));
        json_array_remove(order, 0);
    }
    pthread_mutex_unlock(&g->pub_lock);
    return won;
}

mr_code gw_pub_set_facts(gw *g, const char *room_id, const char *key, const char *alias, mr_err *err)
{
    pthread_mutex_lock(&g->pub_lock);
    json_t *r = room_entry(g, room_id);
    bool bad = !r || json_object_set_new(r, "facts", json_pack("{s:s, s:s}", "key", key, "alias", alias)) != 0;
    pthread_mutex_unlock(&g->pub_lock);
    return bad ? mr_err_set(err, MR_ENOMEM, "out of memory recording room %s", room_id) : MR_OK;
}

json_t *gw_pub_facts(gw *g, const char *room_id)
{
    pthread_mutex_lock(&g->pub_lock);
    json_t *facts = json_deep_copy(json_object_get(json_object_get(g->pub_rooms, room_id), "facts"));
    pthread_mutex_unlock(&g->pub_lock);
    return facts;
}
