/* hs_test.c -- the test homeserver's control endpoints under /_test/: switching on 429s, ending
 * a user's sessions with a soft logout, holding a room's sends or typing notices, moving its
 * clock, and dumping rooms, members, aliases, registration token counts and a room's stored
 * events for assertions. */
#include "hs.h"

#include <stdlib.h>
#include <string.h>

mr_http_response *hs_test_ratelimit(hs_call *c)
{
    json_t *count = json_object_get(c->body, "count");
    json_t *retry = json_object_get(c->body, "retry_after_ms");
    if (!json_is_integer(count) || json_integer_value(count) < 0 ||
        (retry && (!json_is_integer(retry) || json_integer_value(retry) < 0)))
        return hs_error(400, "M_BAD_JSON", "expected {\"count\": N >= 0, \"retry_after_ms\": M >= 0}");
    c->h->limit_count = (int)json_integer_value(count);
    c->h->limit_retry_ms = retry ? json_integer_value(retry) : 1000;
    return hs_ok(json_object());
}

/* {"room_id": R} names the room whose requests *slot holds, {"room_id": null} releases them. */
static mr_http_response *hold_room(hs_call *c, char **slot)
{
    json_t *room = json_object_get(c->body, "room_id");
    if (!json_is_string(room) && !json_is_null(room))
        return hs_error(400, "M_BAD_JSON", "expected {\"room_id\": R or null}");
    char *held = json_is_string(room) ? strdup(json_string_value(room)) : NULL;
    if (json_is_string(room) && !held)
        return NULL;
    free(*slot);
    *slot = held;
    hs_wake(c->h);
    return hs_ok(json_object());
}

/* {"room_id": R}: sends into R wait, without holding up the rest of the server, until
 * {"room_id": null} releases them (or the server stops): a room whose event persister is slow. */
mr_http_response *hs_test_hold(hs_call *c)
{
    return hold_room(c, &c->h->held_room);
}

/* {"room_id": R}: typing notices into R wait the same way, as behind Synapse's typing writer
 * when it is a slow worker of its own; /_test/state counts those waiting (typing_waiting). */
mr_http_response *hs_test_hold_typing(hs_call *c)
{
    return hold_room(c, &c->h->held_typing_room);
}

/* {"user_id": U}: every token of U stops working with 401 M_UNKNOWN_TOKEN soft_logout true, as
 * when a server expires sessions. The devices stay, so logging in again with the same device ID
 * keeps their keys and transaction IDs. */
mr_http_response *hs_test_soft_logout(hs_call *c)
{
    const char *uid;
    mr_http_response *e = hs_field_str(c->body, "user_id", true, &uid);
    if (e)
        return e;
    hs_user *u = hs_user_find(c->h, uid);
    if (!u)
        return hs_error(404, "M_NOT_FOUND", "unknown user %s", uid);
    for (size_t i = 0; i < u->ndevices; i++) {
        json_object_set_new(c->h->soft_tokens, u->devices[i]->token, json_true());
        if (!hs_device_retoken(u->devices[i]))
            return NULL;
    }
    c->h->tokens_gen++;
    return hs_ok(json_pack("{s:I}", "devices", (json_int_t)u->ndevices));
}

/* {"advance_ms": N}: the homeserver's clock stops, then moves N ms ahead (nonces, token
 * uses and rate limits age by it alone from then on). */
mr_http_response *hs_test_clock(hs_call *c)
{
    json_t *ms = json_object_get(c->body, "advance_ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0)
        return hs_error(400, "M_BAD_JSON", "expected {\"advance_ms\": N >= 0}");
    c->h->frozen_ms = hs_now_ms(c->h) + json_integer_value(ms);
    return hs_ok(json_pack("{s:I}", "now_ms", (json_int_t)c->h->frozen_ms));
}

static json_t *room_dump(const hs *h, const hs_room *r)
{
    json_t *members = json_object();
    const char *uid;
    json_t *idx;
    json_object_foreach(json_object_get(r->state, "m.room.member"), uid, idx)
        json_object_set(members, uid, json_object_get(json_object_get(
                                          r->events[json_integer_value(idx)].ev, "content"),
                                          "membership"));
    json_t *aliases = json_array();
    const char *alias;
    json_t *entry;
    json_object_foreach(h->aliases, alias, entry)
        if (strcmp(json_string_value(json_object_get(entry, "room_id")), r->room_id) == 0)
            json_array_append_new(aliases, json_string(alias));
    json_t *d = json_pack("{s:o, s:o, s:b, s:I, s:b, s:O?, s:O?, s:O?, s:O?, s:O?}",
                          "members", members, "aliases", aliases, "published", r->published,
                          "events", (json_int_t)r->nevents, "encrypted",
                          hs_state_get(r, "m.room.encryption", "") != NULL, "join_rule",
                          json_object_get(hs_state_content(r, "m.room.join_rules", ""), "join_rule"),
                          "name", json_object_get(hs_state_content(r, "m.room.name", ""), "name"),
                          "topic", json_object_get(hs_state_content(r, "m.room.topic", ""), "topic"),
                          "room_type", json_object_get(hs_state_content(r, "m.room.create", ""), "type"),
                          "power_levels", hs_state_content(r, "m.room.power_levels", ""));
    return d;
}

mr_http_response *hs_test_state(hs_call *c)
{
    hs *h = c->h;
    json_t *users = json_array(), *rooms = json_object(), *aliases = json_object();
    json_t *served = json_object();
    for (size_t i = 0; i < h->nusers; i++) {
        json_array_append_new(users, json_string(h->users[i]->user_id));
        json_object_set_new(served, h->users[i]->user_id,
                            json_integer(__atomic_load_n(&h->users[i]->timeline_served, __ATOMIC_RELAXED)));
    }
    for (size_t i = 0; i < h->nrooms; i++)
        json_object_set_new(rooms, h->rooms[i]->room_id, room_dump(h, h->rooms[i]));
    const char *alias;
    json_t *entry;
    json_object_foreach(h->aliases, alias, entry)
        json_object_set(aliases, alias, json_object_get(entry, "room_id"));
    return hs_ok(json_pack("{s:s, s:o, s:o, s:o, s:o, s:I, s:i, s:i, s:{s:i, s:i}}", "server_name",
                           h->opts.server_name, "users", users, "rooms", rooms, "aliases", aliases,
                           "timeline_served", served,
                           "stream", (json_int_t)h->pos, "syncs_waiting", __atomic_load_n(&h->syncs_waiting, __ATOMIC_RELAXED),
                           "typing_waiting", h->typing_waiting,
                           "registration_token", "pending", h->token_pending, "completed",
                           h->token_completed));
}

/* Every event the room holds, as stored (what the server could read), oldest first. */
mr_http_response *hs_test_events(hs_call *c)
{
    hs_room *r = hs_room_find(c->h, c->cap[0]);
    if (!r)
        return hs_error(404, "M_NOT_FOUND", "unknown room %s", c->cap[0]);
    json_t *events = json_array();
    for (size_t i = 0; i < r->nevents; i++)
        json_array_append(events, r->events[i].ev);
    return hs_ok(json_pack("{s:o}", "events", events));
}
