/* hs_sync.c -- the test homeserver's /sync: filters, since tokens, long polling, joined,
 * invited, knocked and left rooms, to-device messages and device list changes. A sync changes
 * state only at its start (the to-device messages it acknowledges); its passes and its wait hold
 * the server's lock for reading, so syncs build side by side and a write waits only for the
 * passes running, not for the long polls. A pass looks at the account's own rooms only. */
#include "hs.h"
#include "mindroom/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMELINE_LIMIT 10
#define TO_DEVICE_BATCH 100

static bool is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* ---- filters ---- */

mr_http_response *hs_filter_post(hs_call *c)
{
    if (strcmp(c->cap[0], c->user->user_id) != 0)
        return hs_error(403, "M_FORBIDDEN", "%s may not create filters for %s", c->user->user_id,
                        c->cap[0]);
    json_array_append(c->user->filters, c->body);
    char id[24];
    snprintf(id, sizeof id, "%zu", json_array_size(c->user->filters) - 1);
    return hs_ok(json_pack("{s:s}", "filter_id", id));
}

static json_t *filter_by_id(const hs_user *u, const char *id)
{
    char *end;
    unsigned long n = strtoul(id, &end, 10);
    return *id && !*end ? json_array_get(u->filters, n) : NULL;
}

mr_http_response *hs_filter_get(hs_call *c)
{
    if (strcmp(c->cap[0], c->user->user_id) != 0)
        return hs_error(403, "M_FORBIDDEN", "%s may not read filters of %s", c->user->user_id,
                        c->cap[0]);
    json_t *f = filter_by_id(c->user, c->cap[1]);
    return f ? hs_ok(json_incref(f)) : hs_error(404, "M_NOT_FOUND", "no filter %s", c->cap[1]);
}

/* The parts of a filter this server honours. */
typedef struct sync_filter {
    json_t *rooms, *not_rooms;      /* room.rooms / room.not_rooms */
    json_t *tl_rooms, *tl_not_rooms; /* room.timeline.rooms / not_rooms */
    json_t *types, *not_types;      /* room.timeline.types / not_types */
    size_t limit;                   /* room.timeline.limit */
    bool include_leave;             /* room.include_leave */
    bool no_typing;                 /* room.ephemeral.not_types holds m.typing */
} sync_filter;

static bool listed(json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *p = json_string_value(v);
        size_t n = p ? strlen(p) : 0;
        /* Event type filters may end in '*' to match a prefix. */
        if (p && (strcmp(p, s) == 0 || (n && p[n - 1] == '*' && strncmp(p, s, n - 1) == 0)))
            return true;
    }
    return false;
}

static void filter_read(json_t *f, sync_filter *out)
{
    json_t *room = json_object_get(f, "room");
    json_t *timeline = json_object_get(room, "timeline");
    out->rooms = json_object_get(room, "rooms");
    out->not_rooms = json_object_get(room, "not_rooms");
    out->tl_rooms = json_object_get(timeline, "rooms");
    out->tl_not_rooms = json_object_get(timeline, "not_rooms");
    out->types = json_object_get(timeline, "types");
    out->not_types = json_object_get(timeline, "not_types");
    json_t *limit = json_object_get(timeline, "limit");
    out->limit = json_is_integer(limit) && json_integer_value(limit) > 0 ?
                 (size_t)json_integer_value(limit) : DEFAULT_TIMELINE_LIMIT;
    out->include_leave = json_is_true(json_object_get(room, "include_leave"));
    out->no_typing = listed(json_object_get(json_object_get(room, "ephemeral"), "not_types"), "m.typing");
}

static bool room_wanted(const sync_filter *f, const char *room_id)
{
    /* Room IDs match literally, as in Synapse's Filter._check_fields ("rooms": room_id == v). */
    return (!f->rooms || mr_json_array_has(f->rooms, room_id)) && !mr_json_array_has(f->not_rooms, room_id);
}

/* Synapse's FilterCollection.filter_room_timeline: the room filter, then the timeline filter's
 * own rooms / not_rooms. */
static bool timeline_wanted(const sync_filter *f, const char *room_id)
{
    return room_wanted(f, room_id) && (!f->tl_rooms || mr_json_array_has(f->tl_rooms, room_id)) &&
           !mr_json_array_has(f->tl_not_rooms, room_id);
}

static bool type_wanted(const sync_filter *f, const hs_event *e)
{
    const char *type = json_string_value(json_object_get(e->ev, "type"));
    return (!f->types || listed(f->types, type)) && !listed(f->not_types, type);
}

/* ---- one sync pass ---- */

typedef struct sync_ctx {
    hs *h;
    hs_user *user;
    hs_device *device;
    long long since;      /* 0 for an initial sync */
    bool full_state;
    sync_filter filter;
    json_t *join, *invite, *knock, *leave;
    json_t *changed;      /* user IDs whose devices changed */
} sync_ctx;

static char *token(char *buf, size_t cap, long long pos)
{
    snprintf(buf, cap, "s%lld", pos);
    return buf;
}

/* Timeline of events in (lo, hi]: the last `limit` that pass the filter. A room the timeline
 * filter leaves out gets an empty timeline that is not limited, with prev_batch at hi: what
 * Synapse's SyncHandler._load_filtered_recents returns when every event it loads is filtered
 * out and they fit in one load (a later batch then takes the room's state changes, not a gap). */
static json_t *timeline(sync_ctx *s, const hs_room *r, long long lo, long long hi,
                        long long *first_pos)
{
    char prev[32];
    *first_pos = 0;
    if (!timeline_wanted(&s->filter, r->room_id))
        return json_pack("{s:[], s:b, s:s}", "events", "limited", false, "prev_batch",
                         token(prev, sizeof prev, hi));
    size_t count = 0, skip;
    for (size_t i = 0; i < r->nevents; i++)
        if (r->events[i].pos > lo && r->events[i].pos <= hi && type_wanted(&s->filter, &r->events[i]))
            count++;
    skip = count > s->filter.limit ? count - s->filter.limit : 0;
    json_t *events = json_array();
    for (size_t i = 0; i < r->nevents; i++) {
        const hs_event *e = &r->events[i];
        if (e->pos <= lo || e->pos > hi || !type_wanted(&s->filter, e))
            continue;
        if (skip) {
            skip--;
            continue;
        }
        if (!*first_pos)
            *first_pos = e->pos;
        json_array_append_new(events, hs_event_view(e, s->device));
    }
    __atomic_add_fetch(&s->user->timeline_served, (long long)json_array_size(events), __ATOMIC_RELAXED);
    return json_pack("{s:o, s:b, s:s}", "events", events, "limited", count > s->filter.limit,
                     "prev_batch", token(prev, sizeof prev, (*first_pos ? *first_pos : hi + 1) - 1));
}

/* State events to send beside a timeline starting at first_pos: with full (initial sync, a
 * new join, full_state) the whole current state, otherwise the state changes since `since`
 * that the timeline does not show; each only if the timeline does not carry it. */
static json_t *state_block(sync_ctx *s, const hs_room *r, bool full, long long first_pos)
{
    json_t *events = json_array();
    const char *type, *key;
    json_t *by_key, *idx;
    json_object_foreach(r->state, type, by_key) {
        json_object_foreach(by_key, key, idx) {
            const hs_event *e = &r->events[json_integer_value(idx)];
            bool in_timeline = first_pos && e->pos >= first_pos;
            if (in_timeline || (!full && e->pos <= s->since))
                continue;
            json_array_append_new(events, hs_event_view(e, s->device));
        }
    }
    return json_pack("{s:o}", "events", events);
}

static json_t *ephemeral(sync_ctx *s, hs_room *r, bool full)
{
    json_t *events = json_array();
    if (!s->filter.no_typing && (full || r->typing_pos > s->since)) {
        json_t *ids = json_array();
        const char *uid;
        json_t *until;
        long long now = mr_clock_mono_ms();
        json_object_foreach(r->typing, uid, until)
            if (json_integer_value(until) > now)
                json_array_append_new(ids, json_string(uid));
        if (!full || json_array_size(ids))
            json_array_append_new(events, json_pack("{s:s, s:{s:o}}", "type", "m.typing",
                                                    "content", "user_ids", ids));
        else
            json_decref(ids);
    }
    return json_pack("{s:o}", "events", events);
}

static void sync_joined(sync_ctx *s, hs_room *r)
{
    long long joined_at = hs_membership_pos(r, s->user->user_id);
    bool fresh = !s->since || joined_at > s->since;
    bool full = fresh || s->full_state;
    long long first = 0;
    json_t *tl = timeline(s, r, fresh ? 0 : s->since, s->h->pos, &first);
    /* Synapse's SyncHandler.compute_state_delta: an incremental batch whose timeline is not
     * limited carries no state, so a room the timeline filter empties shows none either. */
    json_t *state = full || timeline_wanted(&s->filter, r->room_id) ? state_block(s, r, full, first)
                                                                    : json_pack("{s:[]}", "events");
    json_t *eph = ephemeral(s, r, fresh);
    bool empty = !json_array_size(json_object_get(tl, "events")) &&
                 !json_array_size(json_object_get(state, "events")) &&
                 !json_array_size(json_object_get(eph, "events"));
    if (empty && !full) {
        json_decref(tl);
        json_decref(state);
        json_decref(eph);
        return;
    }
    json_object_set_new(s->join, r->room_id,
                        json_pack("{s:o, s:o, s:o, s:{s:[]}, s:{s:I, s:I}, s:{s:i, s:i}}",
                                  "timeline", tl, "state", state, "ephemeral", eph,
                                  "account_data", "events", "summary", "m.joined_member_count",
                                  (json_int_t)hs_count_members(r, "join"),
                                  "m.invited_member_count", (json_int_t)hs_count_members(r, "invite"),
                                  "unread_notifications", "highlight_count", 0,
                                  "notification_count", 0));
}

/* Stripped state an invitee or knocker sees, ending with their own member event. */
static json_t *stripped_state(const hs_room *r, const char *user_id)
{
    static const char *const types[] = {"m.room.create", "m.room.join_rules", "m.room.name",
                                        "m.room.canonical_alias", "m.room.avatar",
                                        "m.room.topic", "m.room.encryption", NULL};
    json_t *events = json_array();
    for (size_t i = 0; types[i]; i++) {
        const hs_event *e = hs_state_get(r, types[i], "");
        if (e)
            json_array_append_new(events, hs_event_stripped(e));
    }
    const hs_event *me = hs_state_get(r, "m.room.member", user_id);
    if (me)
        json_array_append_new(events, hs_event_view(me, NULL));
    return json_pack("{s:o}", "events", events);
}

static void sync_left(sync_ctx *s, hs_room *r, long long left_at)
{
    long long first = 0;
    json_t *tl = timeline(s, r, s->since, left_at, &first);
    json_object_set_new(s->leave, r->room_id,
                        json_pack("{s:o, s:{s:[]}, s:{s:[]}}", "timeline", tl, "state", "events",
                                  "account_data", "events"));
}

static void sync_room(sync_ctx *s, hs_room *r)
{
    if (!room_wanted(&s->filter, r->room_id))
        return;
    const char *m = hs_membership(r, s->user->user_id);
    long long at = hs_membership_pos(r, s->user->user_id);
    bool news = !s->since || at > s->since;
    if (is(m, "join"))
        sync_joined(s, r);
    else if (is(m, "invite") && news)
        json_object_set_new(s->invite, r->room_id,
                            json_pack("{s:o}", "invite_state", stripped_state(r, s->user->user_id)));
    else if (is(m, "knock") && news)
        json_object_set_new(s->knock, r->room_id,
                            json_pack("{s:o}", "knock_state", stripped_state(r, s->user->user_id)));
    else if ((is(m, "leave") || is(m, "ban")) && at > s->since && (s->since || s->filter.include_leave))
        sync_left(s, r, at);
}

/* Whether b is joined to one of the rooms a is joined to (mine, nmine); *joined_after gets the
 * later of their joins there. */
static bool share_room(hs_room *const *mine, size_t nmine, const char *a, const char *b,
                       long long *joined_after)
{
    bool shared = false;
    for (size_t i = 0; i < nmine; i++) {
        hs_room *r = mine[i];
        if (!is(hs_membership(r, b), "join"))
            continue;
        shared = true;
        long long pa = hs_membership_pos(r, a), pb = hs_membership_pos(r, b);
        long long later = pa > pb ? pa : pb;
        if (later > *joined_after)
            *joined_after = later;
    }
    return shared;
}

/* Users sharing a room with us whose devices changed, or who came to share one, since since.
 * Only our own rooms are searched, so an account in one room costs one lookup per user. */
static void device_changes(sync_ctx *s)
{
    if (!s->since)
        return;
    hs_room **mine = malloc((s->user->nrooms ? s->user->nrooms : 1) * sizeof *mine);
    if (!mine)
        return;
    size_t nmine = 0;
    for (size_t i = 0; i < s->user->nrooms; i++)
        if (is(hs_membership(s->user->rooms[i], s->user->user_id), "join"))
            mine[nmine++] = s->user->rooms[i];
    for (size_t i = 0; i < s->h->nusers; i++) {
        hs_user *o = s->h->users[i];
        long long met = 0;
        bool shared = o == s->user || share_room(mine, nmine, s->user->user_id, o->user_id, &met);
        if (shared && (o->keys_pos > s->since || met > s->since))
            json_array_append_new(s->changed, json_string(o->user_id));
    }
    free(mine);
}

/* Drops the messages the client acknowledged by syncing past them; with the lock held for
 * writing. */
static void to_device_ack(sync_ctx *s)
{
    json_t *inbox = s->device->inbox;
    while (json_array_size(inbox) &&
           json_integer_value(json_object_get(json_array_get(inbox, 0), "pos")) <= s->since)
        json_array_remove(inbox, 0);
}

/* The messages after since, up to a batch. */
static json_t *to_device(sync_ctx *s)
{
    json_t *events = json_array();
    size_t i, n = 0;
    json_t *m;
    json_array_foreach(s->device->inbox, i, m) {
        if (n == TO_DEVICE_BATCH)
            break;
        if (json_integer_value(json_object_get(m, "pos")) > s->since) {
            json_array_append(events, json_object_get(m, "event"));
            n++;
        }
    }
    return events;
}

/* Whether a pass could find news for the sync, from positions alone: a cheap test each woken
 * long poll makes before the whole pass, so a change in a room it does not see costs it little
 * under the lock (a superset of what sync_once counts as news). */
static bool maybe_news(const sync_ctx *s)
{
    long long since = s->since;
    for (size_t i = 0; i < s->user->nrooms; i++) {
        const hs_room *r = s->user->rooms[i];
        const char *m = hs_membership(r, s->user->user_id);
        if (!m)
            continue;
        if (hs_membership_pos(r, s->user->user_id) > since)
            return true;
        if (!is(m, "join") || !room_wanted(&s->filter, r->room_id))
            continue;
        /* As Synapse, a long poll whose filter leaves typing out goes on waiting. */
        if ((!s->filter.no_typing && r->typing_pos > since) ||
            (timeline_wanted(&s->filter, r->room_id) && r->nevents && r->events[r->nevents - 1].pos > since))
            return true;
        /* A member coming or going changes the device lists this sync reports. */
        if (r->member_pos > since)
            return true;
    }
    json_t *inbox = s->device->inbox;
    if (json_array_size(inbox) &&
        json_integer_value(json_object_get(json_array_get(inbox, json_array_size(inbox) - 1), "pos")) > since)
        return true;
    /* Any user's device list change: a superset of those sharing a room with us. */
    return s->h->keys_pos_max > since;
}

/* One pass; *has_news tells whether a long poll should return it. */
static json_t *sync_once(sync_ctx *s, bool *has_news)
{
    s->join = json_object();
    s->invite = json_object();
    s->knock = json_object();
    s->leave = json_object();
    s->changed = json_array();
    for (size_t i = 0; i < s->user->nrooms; i++)
        sync_room(s, s->user->rooms[i]);
    device_changes(s);
    json_t *td = to_device(s);
    *has_news = json_object_size(s->join) || json_object_size(s->invite) ||
                json_object_size(s->knock) || json_object_size(s->leave) ||
                json_array_size(s->changed) || json_array_size(td);
    char next[32];
    return json_pack("{s:s, s:{s:o, s:o, s:o, s:o}, s:{s:o}, s:{s:o, s:[]}, s:o, s:o, "
                     "s:{s:[]}, s:{s:[]}}",
                     "next_batch", token(next, sizeof next, s->h->pos), "rooms", "join", s->join,
                     "invite", s->invite, "knock", s->knock, "leave", s->leave, "to_device",
                     "events", td, "device_lists", "changed", s->changed, "left",
                     "device_one_time_keys_count", hs_otk_counts(s->device),
                     "device_unused_fallback_key_types", hs_fallback_types(s->device), "presence", "events", "account_data", "events");
}

static mr_http_response *sync_params(hs_call *c, sync_ctx *s, long *timeout)
{
    const char *since = mr_http_request_query(c->req, "since");
    if (since) {
        char *end;
        if (since[0] != 's' || !since[1] || (s->since = strtoll(since + 1, &end, 10), *end) ||
            s->since < 0 || s->since > c->h->pos)
            return hs_error(400, "M_INVALID_PARAM", "unknown since token '%s'", since);
    }
    const char *fs = mr_http_request_query(c->req, "full_state");
    s->full_state = is(fs, "true");
    const char *t = mr_http_request_query(c->req, "timeout");
    *timeout = t ? strtol(t, NULL, 10) : 0;
    const char *f = mr_http_request_query(c->req, "filter");
    json_t *filter = NULL;
    if (f && f[0] == '{') {
        filter = json_loads(f, 0, NULL);
        if (!json_is_object(filter)) {
            json_decref(filter);
            return hs_error(400, "M_NOT_JSON", "filter parameter is not a JSON object");
        }
    } else if (f) {
        filter = json_incref(filter_by_id(c->user, f));
        if (!filter)
            return hs_error(400, "M_INVALID_PARAM", "no filter with ID %s for %s", f,
                            c->user->user_id);
    }
    filter_read(filter, &s->filter);
    /* The filter's arrays are borrowed: keep the filter alive in the call's body slot. */
    c->body = filter;
    return NULL;
}

mr_http_response *hs_sync(hs_call *c)
{
    sync_ctx s = {.h = c->h, .user = c->user, .device = c->device};
    long timeout = 0;
    mr_http_response *e = sync_params(c, &s, &timeout);
    if (e)
        return e;
    struct timespec deadline = mr_clock_after_ms(CLOCK_MONOTONIC, timeout);
    to_device_ack(&s);
    /* The device may be logged out whenever the lock is given up; find it again by its token
     * once tokens have changed. */
    char tok[64];
    snprintf(tok, sizeof tok, "%s", c->device->token);
    /* From here on only reading: other requests may run between these two. */
    pthread_rwlock_unlock(&c->h->lock);
    pthread_rwlock_rdlock(&c->h->lock);
    unsigned long tokens_seen = c->h->tokens_gen;
    if (!hs_token_find(c->h, tok, &s.user, &s.device))
        return hs_token_refused(c->h, tok);
    for (;;) {
        bool news;
        long long seen = c->h->pos;
        json_t *body = sync_once(&s, &news);
        if (news || !s.since || s.full_state || timeout <= 0 || c->h->stopping)
            return hs_ok(body);
        json_decref(body);
        /* Nothing for us yet: sleep until the stream moves by something this sync may see,
         * then look again. */
        bool timed_out = false;
        do {
            __atomic_add_fetch(&c->h->syncs_waiting, 1, __ATOMIC_RELAXED);
            while (c->h->pos == seen && !c->h->stopping && !timed_out)
                timed_out = !hs_wait(c->h, false, &deadline);
            __atomic_sub_fetch(&c->h->syncs_waiting, 1, __ATOMIC_RELAXED);
            seen = c->h->pos;
            /* Answered as the next request with the token would be (soft logout included). */
            if (c->h->tokens_gen != tokens_seen) {
                tokens_seen = c->h->tokens_gen;
                if (!hs_token_find(c->h, tok, &s.user, &s.device))
                    return hs_token_refused(c->h, tok);
            }
        } while (!timed_out && !c->h->stopping && !maybe_news(&s));
        if (timed_out)
            return hs_ok(sync_once(&s, &news));
    }
}
