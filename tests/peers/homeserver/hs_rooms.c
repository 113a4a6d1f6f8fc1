/* hs_rooms.c -- the test homeserver's rooms: creation, membership with join rules, state,
 * sending, redaction, history and typing. */
#include "hs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static const char *join_rule(const hs_room *r)
{
    const char *rule = json_string_value(json_object_get(hs_state_content(r, "m.room.join_rules", ""),
                                                         "join_rule"));
    return rule ? rule : "invite";
}

static mr_http_response *event_id_reply(const hs_event *e)
{
    return e ? hs_ok(json_pack("{s:O}", "event_id", json_object_get(e->ev, "event_id"))) : NULL;
}

/* ---- membership ---- */

/* Whether sender may move target to `membership` in r under the join rules and power levels. */
static mr_http_response *membership_allowed(const hs_room *r, const char *sender,
                                            const char *target, const char *membership)
{
    const char *cur = hs_membership(r, target);
    const char *rule = join_rule(r);
    bool self = strcmp(sender, target) == 0;
    if (is(membership, "join") || is(membership, "knock")) {
        if (!self)
            return hs_error(403, "M_FORBIDDEN", "%s may not %s on behalf of %s", sender, membership, target);
        if (is(cur, "ban"))
            return hs_error(403, "M_FORBIDDEN", "%s is banned from %s", target, r->room_id);
        if (is(membership, "join")) {
            if (is(rule, "public") || is(cur, "invite") || is(cur, "join"))
                return NULL;
            return hs_error(403, "M_FORBIDDEN", "%s is not invited to %s (join rule %s)", target,
                            r->room_id, rule);
        }
        if (!is(rule, "knock") && !is(rule, "knock_restricted"))
            return hs_error(403, "M_FORBIDDEN", "room %s does not accept knocks (join rule %s)",
                            r->room_id, rule);
        if (is(cur, "join") || is(cur, "invite"))
            return hs_error(403, "M_FORBIDDEN", "%s is already %s in %s", target,
                            is(cur, "join") ? "joined" : "invited", r->room_id);
        return NULL;
    }
    if (is(membership, "leave") && self) {
        if (is(cur, "join") || is(cur, "invite") || is(cur, "knock"))
            return NULL;
        return hs_error(403, "M_FORBIDDEN", "%s is not in room %s", target, r->room_id);
    }
    /* invite, kick (leave of another), ban: the sender acts on someone else from inside. */
    if (!is(hs_membership(r, sender), "join"))
        return hs_error(403, "M_FORBIDDEN", "%s is not in room %s", sender, r->room_id);
    int mine = hs_power_level(r, sender);
    if (is(membership, "invite")) {
        int need = hs_power_action(r, "invite");
        if (mine < need)
            return hs_error(403, "M_FORBIDDEN", "inviting to %s needs power level %d, %s has %d",
                            r->room_id, need, sender, mine);
        if (is(cur, "join") || is(cur, "ban"))
            return hs_error(403, "M_FORBIDDEN", "%s is %s in %s", target,
                            is(cur, "join") ? "already joined" : "banned", r->room_id);
        return NULL;
    }
    const char *action = is(membership, "ban") ? "ban" : "kick";
    int need = hs_power_action(r, action);
    int theirs = hs_power_level(r, target);
    if (mine < need || mine <= theirs)
        return hs_error(403, "M_FORBIDDEN", "%s (power level %d) may not %s %s (power level %d) "
                        "from %s, which needs %d", sender, mine, action, target, theirs,
                        r->room_id, need);
    if (is(membership, "leave") && !is(cur, "join") && !is(cur, "invite") && !is(cur, "knock"))
        return hs_error(403, "M_FORBIDDEN", "%s is not in room %s", target, r->room_id);
    return NULL;
}

/* Checks and appends a member event; extra (may be NULL) adds fields such as is_direct. */
static mr_http_response *membership_set(hs_call *c, hs_room *r, const char *target,
                                        const char *membership, json_t *extra,
                                        const hs_event **out)
{
    mr_http_response *e = membership_allowed(r, c->user->user_id, target, membership);
    if (e)
        return e;
    hs_user *tu = hs_user_find(c->h, target);
    if (!tu && (is(membership, "invite") || is(membership, "join")))
        return hs_error(404, "M_NOT_FOUND", "unknown user %s", target);
    json_t *content = json_pack("{s:s}", "membership", membership);
    if (tu && !is(membership, "leave") && !is(membership, "ban"))
        json_object_set_new(content, "displayname", json_string(tu->displayname));
    json_object_update(content, extra);
    json_object_set_new(content, "membership", json_string(membership));
    const hs_event *ev = hs_room_append(c->h, r, c->user->user_id, "m.room.member", target,
                                        content, NULL, NULL);
    if (!ev)
        return hs_error(500, "M_UNKNOWN", "out of memory");
    if (out)
        *out = ev;
    return NULL;
}

/* The optional "reason" of a membership body, as content to merge. */
static json_t *reason_of(hs_call *c)
{
    const char *reason = json_string_value(json_object_get(c->body, "reason"));
    return reason ? json_pack("{s:s}", "reason", reason) : json_object();
}

static mr_http_response *membership_reply(hs_call *c, hs_room *r, const char *target,
                                          const char *membership, bool with_room_id)
{
    json_t *extra = reason_of(c);
    mr_http_response *e = NULL;
    /* Joining again is a no-op, as it is for Synapse. */
    if (!(is(membership, "join") && is(hs_membership(r, target), "join")))
        e = membership_set(c, r, target, membership, extra, NULL);
    json_decref(extra);
    if (e)
        return e;
    return hs_ok(with_room_id ? json_pack("{s:s}", "room_id", r->room_id) : json_object());
}

mr_http_response *hs_join(hs_call *c)
{
    mr_http_response *e = NULL;
    hs_room *r = hs_room_resolve(c, c->cap[0], &e);
    return r ? membership_reply(c, r, c->user->user_id, "join", true) : e;
}

mr_http_response *hs_knock(hs_call *c)
{
    mr_http_response *e = NULL;
    hs_room *r = hs_room_resolve(c, c->cap[0], &e);
    return r ? membership_reply(c, r, c->user->user_id, "knock", true) : e;
}

mr_http_response *hs_leave(hs_call *c)
{
    mr_http_response *e = NULL;
    hs_room *r = hs_room_resolve(c, c->cap[0], &e);
    return r ? membership_reply(c, r, c->user->user_id, "leave", false) : e;
}

/* invite and kick: POST {user_id, reason?} about another user. */
static mr_http_response *act_on_user(hs_call *c, const char *membership)
{
    const char *target;
    mr_http_response *e = hs_field_str(c->body, "user_id", true, &target);
    if (e)
        return e;
    hs_room *r = hs_room_resolve(c, c->cap[0], &e);
    return r ? membership_reply(c, r, target, membership, false) : e;
}

mr_http_response *hs_invite(hs_call *c)
{
    return act_on_user(c, "invite");
}

mr_http_response *hs_kick(hs_call *c)
{
    return act_on_user(c, "leave");
}

/* ---- createRoom ---- */

static json_t *default_power_levels(const char *creator)
{
    return json_pack("{s:{s:i}, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:i, s:i, s:i, "
                     "s:i, s:i, s:i, s:{s:i}}",
                     "users", creator, 100, "users_default", 0, "events", "m.room.name", 50,
                     "m.room.power_levels", 100, "m.room.history_visibility", 100,
                     "m.room.canonical_alias", 50, "m.room.avatar", 50, "m.room.tombstone", 100,
                     "m.room.server_acl", 100, "m.room.encryption", 100, "events_default", 0,
                     "state_default", 50, "ban", 50, "kick", 50, "redact", 50, "invite", 0,
                     "notifications", "room", 50);
}

typedef struct create_req {
    const char *visibility, *alias_name, *name, *topic, *preset, *version;
    json_t *invite, *initial_state, *creation_content, *pl_override;
    char alias[300];
} create_req;

static mr_http_response *create_parse(hs_call *c, create_req *q)
{
    json_t *b = c->body;
    mr_http_response *e;
    if ((e = hs_field_str(b, "visibility", false, &q->visibility)) ||
        (e = hs_field_str(b, "room_alias_name", false, &q->alias_name)) ||
        (e = hs_field_str(b, "name", false, &q->name)) ||
        (e = hs_field_str(b, "topic", false, &q->topic)) ||
        (e = hs_field_str(b, "preset", false, &q->preset)) ||
        (e = hs_field_str(b, "room_version", false, &q->version)) ||
        (e = hs_field_arr(b, "invite", false, &q->invite)) ||
        (e = hs_field_arr(b, "initial_state", false, &q->initial_state)) ||
        (e = hs_field_obj(b, "creation_content", false, &q->creation_content)) ||
        (e = hs_field_obj(b, "power_level_content_override", false, &q->pl_override)))
        return e;
    if (q->visibility && !is(q->visibility, "public") && !is(q->visibility, "private"))
        return hs_error(400, "M_INVALID_PARAM", "visibility must be public or private");
    if (!q->preset)
        q->preset = is(q->visibility, "public") ? "public_chat" : "private_chat";
    if (!is(q->preset, "public_chat") && !is(q->preset, "private_chat") &&
        !is(q->preset, "trusted_private_chat"))
        return hs_error(400, "M_INVALID_PARAM", "unknown preset %s", q->preset);
    if (q->version) {
        char *end;
        long v = strtol(q->version, &end, 10);
        if (*end || v < 1 || v > 11)
            return hs_error(400, "M_UNSUPPORTED_ROOM_VERSION", "room version %s is not supported",
                            q->version);
    }
    if (q->alias_name) {
        if (!*q->alias_name || strpbrk(q->alias_name, ":# \t\n") ||
            snprintf(q->alias, sizeof q->alias, "#%s:%s", q->alias_name, c->h->opts.server_name) > 255)
            return hs_error(400, "M_INVALID_PARAM", "invalid room_alias_name '%s'", q->alias_name);
        if (json_object_get(c->h->aliases, q->alias))
            return hs_error(400, "M_ROOM_IN_USE", "room alias %s is already taken", q->alias);
    }
    size_t i;
    json_t *v;
    json_array_foreach(q->invite, i, v) {
        if (!json_is_string(v) || json_string_value(v)[0] != '@')
            return hs_error(400, "M_INVALID_PARAM", "invite[%zu] is not a user ID", i);
        if (!hs_user_find(c->h, json_string_value(v)))
            return hs_error(404, "M_NOT_FOUND", "unknown user %s", json_string_value(v));
    }
    json_array_foreach(q->initial_state, i, v) {
        json_t *sk = json_object_get(v, "state_key");
        if (!json_is_string(json_object_get(v, "type")) ||
            !json_is_object(json_object_get(v, "content")) || (sk && !json_is_string(sk)))
            return hs_error(400, "M_BAD_JSON", "initial_state[%zu] needs a string type, an "
                            "object content and an optional string state_key", i);
    }
    return NULL;
}

static json_t *initial_state_find(json_t *initial, const char *type)
{
    size_t i;
    json_t *v;
    json_array_foreach(initial, i, v) {
        const char *sk = json_string_value(json_object_get(v, "state_key"));
        if (is(json_string_value(json_object_get(v, "type")), type) && (!sk || !*sk))
            return json_object_get(v, "content");
    }
    return NULL;
}

static void append_state(hs *h, hs_room *r, const char *sender, const char *type, json_t *content)
{
    hs_room_append(h, r, sender, type, "", content, NULL, NULL);
}

mr_http_response *hs_create_room(hs_call *c)
{
    create_req q = {0};
    mr_http_response *e = create_parse(c, &q);
    if (e)
        return e;
    hs *h = c->h;
    const char *me = c->user->user_id;
    hs_room *r = hs_room_new(h);
    if (!r)
        return NULL;
    const char *version = q.version ? q.version : "10";
    json_t *create = q.creation_content ? json_deep_copy(q.creation_content) : json_object();
    json_object_set_new(create, "room_version", json_string(version));
    if (atoi(version) < 11) /* v11 dropped creator in favour of the sender */
        json_object_set_new(create, "creator", json_string(me));
    append_state(h, r, me, "m.room.create", create);
    hs_room_append(h, r, me, "m.room.member", me,
                   json_pack("{s:s, s:s}", "membership", "join", "displayname", c->user->displayname),
                   NULL, NULL);

    /* An m.room.power_levels in initial_state replaces the default rather than following it. */
    json_t *initial_pl = initial_state_find(q.initial_state, "m.room.power_levels");
    json_t *pl = initial_pl ? json_deep_copy(initial_pl) : default_power_levels(me);
    json_t *users = json_object_get(pl, "users");
    if (!users) {
        users = json_object();
        json_object_set_new(pl, "users", users);
    }
    if (!json_object_get(users, me))
        json_object_set_new(users, me, json_integer(100));
    size_t i;
    json_t *v;
    if (is(q.preset, "trusted_private_chat"))
        json_array_foreach(q.invite, i, v)
            json_object_set_new(users, json_string_value(v), json_integer(100));
    json_object_update(pl, q.pl_override);
    append_state(h, r, me, "m.room.power_levels", pl);

    if (q.alias_name) {
        append_state(h, r, me, "m.room.canonical_alias", json_pack("{s:s}", "alias", q.alias));
        json_object_set_new(h->aliases, q.alias, json_pack("{s:s, s:s}", "room_id", r->room_id,
                                                           "creator", me));
    }
    bool pub = is(q.preset, "public_chat");
    append_state(h, r, me, "m.room.join_rules", json_pack("{s:s}", "join_rule", pub ? "public" : "invite"));
    append_state(h, r, me, "m.room.history_visibility", json_pack("{s:s}", "history_visibility", "shared"));
    append_state(h, r, me, "m.room.guest_access", json_pack("{s:s}", "guest_access",
                                                            pub ? "forbidden" : "can_join"));
    json_array_foreach(q.initial_state, i, v) {
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *sk = json_string_value(json_object_get(v, "state_key"));
        if (json_object_get(v, "content") == initial_pl)
            continue;
        hs_room_append(h, r, me, type, sk ? sk : "", json_deep_copy(json_object_get(v, "content")),
                       NULL, NULL);
    }
    if (q.name)
        append_state(h, r, me, "m.room.name", json_pack("{s:s}", "name", q.name));
    if (q.topic)
        append_state(h, r, me, "m.room.topic", json_pack("{s:s}", "topic", q.topic));
    json_t *direct = json_is_true(json_object_get(c->body, "is_direct")) ?
                     json_pack("{s:b}", "is_direct", 1) : json_object();
    json_array_foreach(q.invite, i, v) {
        if ((e = membership_set(c, r, json_string_value(v), "invite", direct, NULL)))
            break;
    }
    json_decref(direct);
    if (e)
        return e;
    r->published = is(q.visibility, "public");
    return hs_ok(json_pack("{s:s}", "room_id", r->room_id));
}

/* ---- reading rooms ---- */

mr_http_response *hs_joined_rooms(hs_call *c)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < c->h->nrooms; i++)
        if (is(hs_membership(c->h->rooms[i], c->user->user_id), "join"))
            json_array_append_new(ids, json_string(c->h->rooms[i]->room_id));
    return hs_ok(json_pack("{s:o}", "joined_rooms", ids));
}

mr_http_response *hs_joined_members(hs_call *c)
{
    hs_room *r = c->room;
    json_t *joined = json_object();
    const char *uid;
    json_t *idx;
    json_object_foreach(json_object_get(r->state, "m.room.member"), uid, idx) {
        json_t *content = json_object_get(r->events[json_integer_value(idx)].ev, "content");
        if (!is(json_string_value(json_object_get(content, "membership")), "join"))
            continue;
        json_t *who = json_object();
        json_t *name = json_object_get(content, "displayname");
        json_t *avatar = json_object_get(content, "avatar_url");
        if (name)
            json_object_set(who, "display_name", name);
        if (avatar)
            json_object_set(who, "avatar_url", avatar);
        json_object_set_new(joined, uid, who);
    }
    return hs_ok(json_pack("{s:o}", "joined", joined));
}

mr_http_response *hs_state_all(hs_call *c)
{
    hs_room *r = c->room;
    json_t *all = json_array();
    const char *type, *key;
    json_t *by_key, *idx;
    json_object_foreach(r->state, type, by_key)
        json_object_foreach(by_key, key, idx)
            json_array_append_new(all, hs_event_view(&r->events[json_integer_value(idx)], NULL));
    return hs_ok(all);
}

mr_http_response *hs_state_read(hs_call *c)
{
    hs_room *r = c->room;
    const char *key = c->cap[2] ? c->cap[2] : "";
    const hs_event *ev = hs_state_get(r, c->cap[1], key);
    if (!ev)
        return hs_error(404, "M_NOT_FOUND", "no %s state with key '%s' in %s", c->cap[1], key,
                        r->room_id);
    const char *format = mr_http_request_query(c->req, "format");
    if (is(format, "event"))
        return hs_ok(hs_event_view(ev, NULL));
    return hs_ok(json_incref(json_object_get(ev->ev, "content")));
}

/* ---- writing rooms ---- */

mr_http_response *hs_state_write(hs_call *c)
{
    mr_http_response *e = NULL;
    hs_room *r = hs_room_find(c->h, c->cap[0]);
    if (!r)
        return hs_error(404, "M_NOT_FOUND", "unknown room %s", c->cap[0]);
    const char *type = c->cap[1], *key = c->cap[2] ? c->cap[2] : "";
    if (is(type, "m.room.member")) {
        const char *membership;
        if ((e = hs_field_str(c->body, "membership", true, &membership)))
            return e;
        const hs_event *ev = NULL;
        e = membership_set(c, r, key, membership, c->body, &ev);
        return e ? e : event_id_reply(ev);
    }
    if (is(type, "m.room.create"))
        return hs_error(403, "M_FORBIDDEN", "m.room.create cannot be changed");
    if ((e = hs_check_send(r, c->user->user_id, type, key, c->body)))
        return e;
    return event_id_reply(hs_room_append(c->h, r, c->user->user_id, type, key,
                                         json_incref(c->body), NULL, NULL));
}

/* Idempotent by (device, path): a repeat returns what the first call returned. */
static mr_http_response *txn_reply(hs_call *c, const hs_event *ev)
{
    if (!ev)
        return NULL;
    json_t *body = json_pack("{s:O}", "event_id", json_object_get(ev->ev, "event_id"));
    hs_txn_put(c, body);
    return hs_ok(body);
}

mr_http_response *hs_send(hs_call *c)
{
    /* Waiting gives the server's lock up, so other requests are answered meanwhile. */
    while (c->h->held_room && strcmp(c->h->held_room, c->cap[0]) == 0 && !c->h->stopping)
        hs_wait(c->h, true, NULL);
    json_t *done = hs_txn_get(c);
    if (done)
        return hs_ok(json_incref(done));
    mr_http_response *e = NULL;
    hs_room *r = hs_room_for_member(c, c->cap[0], &e);
    if (!r || (e = hs_check_send(r, c->user->user_id, c->cap[1], NULL, c->body)))
        return e;
    return txn_reply(c, hs_room_append(c->h, r, c->user->user_id, c->cap[1], NULL,
                                       json_incref(c->body), c->device, c->cap[2]));
}

/* The content keys the redaction algorithm keeps (room versions 10 and 11). */
static void redact_content(json_t *ev)
{
    static const struct { const char *type; const char *keep[10]; } kept[] = {
        {"m.room.member", {"membership", "join_authorised_via_users_server", NULL}},
        {"m.room.join_rules", {"join_rule", "allow", NULL}},
        {"m.room.power_levels", {"ban", "events", "events_default", "invite", "kick", "redact",
                                 "state_default", "users", "users_default", NULL}},
        {"m.room.history_visibility", {"history_visibility", NULL}},
        {"m.room.redaction", {"redacts", NULL}},
    };
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *content = json_object_get(ev, "content");
    if (is(type, "m.room.create"))
        return;
    json_t *next = json_object();
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        if (!is(type, kept[i].type))
            continue;
        for (size_t k = 0; kept[i].keep[k]; k++) {
            json_t *v = json_object_get(content, kept[i].keep[k]);
            if (v)
                json_object_set(next, kept[i].keep[k], v);
        }
    }
    json_object_set_new(ev, "content", next);
}

mr_http_response *hs_redact(hs_call *c)
{
    json_t *done = hs_txn_get(c);
    if (done)
        return hs_ok(json_incref(done));
    mr_http_response *e = NULL;
    hs_room *r = hs_room_for_member(c, c->cap[0], &e);
    if (!r)
        return e;
    hs_event *target = NULL;
    for (size_t i = 0; i < r->nevents && !target; i++)
        if (is(json_string_value(json_object_get(r->events[i].ev, "event_id")), c->cap[1]))
            target = &r->events[i];
    if (!target)
        return hs_error(404, "M_NOT_FOUND", "event %s not found in %s", c->cap[1], r->room_id);
    const char *me = c->user->user_id;
    if ((e = hs_check_send(r, me, "m.room.redaction", NULL, NULL)))
        return e;
    if (!is(json_string_value(json_object_get(target->ev, "sender")), me)) {
        int mine = hs_power_level(r, me), need = hs_power_action(r, "redact");
        if (mine < need)
            return hs_error(403, "M_FORBIDDEN", "redacting another user's event in %s needs "
                            "power level %d, %s has %d", r->room_id, need, me, mine);
    }
    json_t *content = json_pack("{s:s}", "redacts", c->cap[1]);
    const char *reason = json_string_value(json_object_get(c->body, "reason"));
    if (reason)
        json_object_set_new(content, "reason", json_string(reason));
    hs_event *red = hs_room_append(c->h, r, me, "m.room.redaction", NULL, content, c->device,
                                   c->cap[2]);
    if (!red)
        return NULL;
    json_object_set_new(red->ev, "redacts", json_string(c->cap[1]));
    redact_content(target->ev);
    json_object_set(json_object_get(target->ev, "unsigned"), "redacted_because", red->ev);
    return txn_reply(c, red);
}

/* Synapse's RoomTypingRestServlet and TypingWriterHandler: 200 {} either way; the timeout
 * (default 30 s) capped at 120 s; another user's typing is 400 M_FORBIDDEN "Cannot set another
 * user's typing state", checked before membership (403). */
#define TYPING_TIMEOUT_DEFAULT_MS 30000
#define TYPING_TIMEOUT_MAX_MS 120000

mr_http_response *hs_typing(hs_call *c)
{
    hs *h = c->h;
    /* Waiting gives the server's lock up, so other requests are answered meanwhile. */
    if (h->held_typing_room && strcmp(h->held_typing_room, c->cap[0]) == 0) {
        h->typing_waiting++;
        while (h->held_typing_room && strcmp(h->held_typing_room, c->cap[0]) == 0 && !h->stopping)
            hs_wait(h, true, NULL);
        h->typing_waiting--;
    }
    if (strcmp(c->cap[1], c->user->user_id) != 0)
        return hs_error(400, "M_FORBIDDEN", "Cannot set another user's typing state");
    mr_http_response *e = NULL;
    hs_room *r = hs_room_for_member(c, c->cap[0], &e);
    if (!r)
        return e;
    json_t *typing = json_object_get(c->body, "typing");
    if (!json_is_boolean(typing))
        return hs_error(400, "M_BAD_JSON", "field 'typing' must be a boolean");
    json_t *timeout = json_object_get(c->body, "timeout");
    json_int_t ms = json_is_integer(timeout) ? json_integer_value(timeout) : TYPING_TIMEOUT_DEFAULT_MS;
    if (json_is_true(typing))
        json_object_set_new(r->typing, c->user->user_id,
                            json_integer(mr_clock_mono_ms() + (ms < TYPING_TIMEOUT_MAX_MS ? ms : TYPING_TIMEOUT_MAX_MS)));
    else
        json_object_del(r->typing, c->user->user_id);
    r->typing_pos = hs_bump(h);
    return hs_ok(json_object());
}

/* ---- history ---- */

/* Tokens are "s<N>": the point after stream position N. */
static bool token_parse(const char *t, long long *out)
{
    char *end;
    if (!t || t[0] != 's' || !t[1])
        return false;
    *out = strtoll(t + 1, &end, 10);
    return !*end && *out >= 0;
}

mr_http_response *hs_messages(hs_call *c)
{
    hs_room *r = hs_room_find(c->h, c->cap[0]);
    if (!r)
        return hs_error(404, "M_NOT_FOUND", "unknown room %s", c->cap[0]);
    const char *m = hs_membership(r, c->user->user_id);
    /* Members see everything; those who left see up to their leaving. */
    long long visible;
    if (is(m, "join"))
        visible = c->h->pos;
    else if (is(m, "leave") || is(m, "ban"))
        visible = hs_membership_pos(r, c->user->user_id);
    else
        return hs_error(403, "M_FORBIDDEN", "%s may not read the history of %s",
                        c->user->user_id, r->room_id);
    const char *dir = mr_http_request_query(c->req, "dir");
    dir = dir ? dir : "b";
    if (!is(dir, "b") && !is(dir, "f"))
        return hs_error(400, "M_INVALID_PARAM", "dir must be b or f");
    bool back = is(dir, "b");
    long long from = back ? visible : 0, to = back ? 0 : visible;
    const char *ft = mr_http_request_query(c->req, "from");
    const char *tt = mr_http_request_query(c->req, "to");
    if ((ft && !token_parse(ft, &from)) || (tt && !token_parse(tt, &to)))
        return hs_error(400, "M_INVALID_PARAM", "invalid pagination token");
    const char *lt = mr_http_request_query(c->req, "limit");
    long limit = lt ? strtol(lt, NULL, 10) : 10;
    if (limit <= 0 || limit > 1000)
        limit = 10;
    json_t *chunk = json_array();
    long long last = -1;
    for (size_t n = 0; n < r->nevents && json_array_size(chunk) < (size_t)limit; n++) {
        const hs_event *ev = &r->events[back ? r->nevents - 1 - n : n];
        bool in = back ? ev->pos <= from && ev->pos > to : ev->pos > from && ev->pos <= to;
        if (!in || ev->pos > visible)
            continue;
        json_array_append_new(chunk, hs_event_view(ev, c->device));
        last = ev->pos;
    }
    char start[32], end[32];
    snprintf(start, sizeof start, "s%lld", from);
    json_t *body = json_pack("{s:o, s:s, s:[]}", "chunk", chunk, "start", start, "state");
    /* "end" is left out when there is nothing further in this direction. */
    if (last >= 0 && json_array_size(chunk) == (size_t)limit) {
        snprintf(end, sizeof end, "s%lld", back ? last - 1 : last);
        json_object_set_new(body, "end", json_string(end));
    }
    return hs_ok(body);
}
