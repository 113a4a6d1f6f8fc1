/* hs_directory.c -- the test homeserver's directories: room aliases, room visibility and the
 * public room list. */
#define _GNU_SOURCE /* strcasestr */
#include "hs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "#local:server" with our server; anything else is M_INVALID_PARAM. */
static mr_http_response *alias_check(const hs *h, const char *alias)
{
    const char *colon = strchr(alias, ':');
    if (alias[0] != '#' || !colon || colon == alias + 1 || strlen(alias) > 255)
        return hs_error(400, "M_INVALID_PARAM", "room alias '%s' is invalid", alias);
    if (strcmp(colon + 1, h->opts.server_name) != 0)
        return hs_error(400, "M_INVALID_PARAM", "room alias %s is not on this server (%s)", alias,
                        h->opts.server_name);
    return NULL;
}

/* The existing alias of the path (c->cap[0]) into *entry, else the error to answer. */
static mr_http_response *alias_entry(hs_call *c, json_t **entry)
{
    mr_http_response *e = alias_check(c->h, c->cap[0]);
    if (!e && !(*entry = json_object_get(c->h->aliases, c->cap[0])))
        e = hs_error(404, "M_NOT_FOUND", "room alias %s not found", c->cap[0]);
    return e;
}

mr_http_response *hs_alias_get(hs_call *c)
{
    json_t *entry;
    mr_http_response *e = alias_entry(c, &entry);
    if (e)
        return e;
    return hs_ok(json_pack("{s:O, s:[s]}", "room_id", json_object_get(entry, "room_id"),
                           "servers", c->h->opts.server_name));
}

/* Who may manage a room's aliases and listing: members allowed to set its canonical alias. */
static mr_http_response *can_manage(const hs_room *r, const char *user_id)
{
    return hs_check_send(r, user_id, "m.room.canonical_alias", "", NULL);
}

mr_http_response *hs_alias_put(hs_call *c)
{
    const char *room_id;
    mr_http_response *e = alias_check(c->h, c->cap[0]);
    if (e || (e = hs_field_str(c->body, "room_id", true, &room_id)))
        return e;
    hs_room *r = hs_room_find(c->h, room_id);
    if (!r)
        return hs_error(404, "M_NOT_FOUND", "unknown room %s", room_id);
    if (json_object_get(c->h->aliases, c->cap[0]))
        return hs_error(409, "M_UNKNOWN", "room alias %s already exists", c->cap[0]);
    const char *m = hs_membership(r, c->user->user_id);
    if (!m || strcmp(m, "join") != 0)
        return hs_error(403, "M_FORBIDDEN", "%s is not in room %s", c->user->user_id, room_id);
    json_object_set_new(c->h->aliases, c->cap[0], json_pack("{s:s, s:s}", "room_id", room_id,
                                                            "creator", c->user->user_id));
    return hs_ok(json_object());
}

mr_http_response *hs_alias_delete(hs_call *c)
{
    json_t *entry;
    mr_http_response *e = alias_entry(c, &entry);
    if (e)
        return e;
    const char *creator = json_string_value(json_object_get(entry, "creator"));
    hs_room *r = hs_room_find(c->h, json_string_value(json_object_get(entry, "room_id")));
    /* The alias's creator, a server admin, or a room moderator may remove it. */
    if (strcmp(creator, c->user->user_id) != 0 && !c->user->admin &&
        (!r || (e = can_manage(r, c->user->user_id)))) {
        mr_http_response_free(e);
        return hs_error(403, "M_FORBIDDEN", "%s may not remove room alias %s", c->user->user_id,
                        c->cap[0]);
    }
    json_object_del(c->h->aliases, c->cap[0]);
    return hs_ok(json_object());
}

mr_http_response *hs_visibility_get(hs_call *c)
{
    hs_room *r = hs_room_find(c->h, c->cap[0]);
    if (!r)
        return hs_error(404, "M_NOT_FOUND", "unknown room %s", c->cap[0]);
    return hs_ok(json_pack("{s:s}", "visibility", r->published ? "public" : "private"));
}

mr_http_response *hs_visibility_put(hs_call *c)
{
    hs_room *r = hs_room_find(c->h, c->cap[0]);
    if (!r)
        return hs_error(404, "M_NOT_FOUND", "unknown room %s", c->cap[0]);
    const char *vis;
    mr_http_response *e = hs_field_str(c->body, "visibility", false, &vis);
    if (e)
        return e;
    vis = vis ? vis : "public";
    if (strcmp(vis, "public") != 0 && strcmp(vis, "private") != 0)
        return hs_error(400, "M_INVALID_PARAM", "visibility must be public or private");
    if ((e = can_manage(r, c->user->user_id)))
        return e;
    r->published = strcmp(vis, "public") == 0;
    return hs_ok(json_object());
}

static void copy_state_field(json_t *entry, const hs_room *r, const char *type,
                             const char *field, const char *as)
{
    json_t *v = json_object_get(hs_state_content(r, type, ""), field);
    if (json_is_string(v))
        json_object_set(entry, as, v);
}

static json_t *public_entry(const hs_room *r)
{
    const char *history = json_string_value(json_object_get(
        hs_state_content(r, "m.room.history_visibility", ""), "history_visibility"));
    const char *guest = json_string_value(json_object_get(
        hs_state_content(r, "m.room.guest_access", ""), "guest_access"));
    json_t *e = json_pack("{s:s, s:I, s:b, s:b}", "room_id", r->room_id, "num_joined_members",
                          (json_int_t)hs_count_members(r, "join"), "world_readable",
                          history && strcmp(history, "world_readable") == 0, "guest_can_join",
                          guest && strcmp(guest, "can_join") == 0);
    copy_state_field(e, r, "m.room.name", "name", "name");
    copy_state_field(e, r, "m.room.topic", "topic", "topic");
    copy_state_field(e, r, "m.room.canonical_alias", "alias", "canonical_alias");
    copy_state_field(e, r, "m.room.avatar", "url", "avatar_url");
    copy_state_field(e, r, "m.room.join_rules", "join_rule", "join_rule");
    copy_state_field(e, r, "m.room.create", "type", "room_type");
    return e;
}

static bool matches_term(json_t *entry, const char *term)
{
    if (!term || !*term)
        return true;
    const char *fields[] = {"name", "topic", "canonical_alias"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(entry, fields[i]));
        if (v && strcasestr(v, term))
            return true;
    }
    return false;
}

/* GET with ?limit&since, or POST with {limit, since, filter.generic_search_term}. Largest rooms
 * first; tokens are "p<offset>". */
mr_http_response *hs_public_rooms(hs_call *c)
{
    const char *since = mr_http_request_query(c->req, "since");
    const char *limit_s = mr_http_request_query(c->req, "limit");
    long limit = limit_s ? strtol(limit_s, NULL, 10) : 0;
    const char *term = NULL;
    if (c->body) {
        since = json_string_value(json_object_get(c->body, "since"));
        limit = (long)json_integer_value(json_object_get(c->body, "limit"));
        term = json_string_value(json_object_get(json_object_get(c->body, "filter"),
                                                 "generic_search_term"));
    }
    long offset = 0;
    if (since && (since[0] != 'p' || (offset = strtol(since + 1, NULL, 10)) < 0))
        return hs_error(400, "M_INVALID_PARAM", "invalid since token %s", since);
    json_t *all = json_array();
    for (size_t i = 0; i < c->h->nrooms; i++) {
        json_t *entry = c->h->rooms[i]->published ? public_entry(c->h->rooms[i]) : NULL;
        if (entry && matches_term(entry, term))
            json_array_append(all, entry);
        json_decref(entry);
    }
    /* Stable insertion sort by member count, descending. */
    size_t n = json_array_size(all);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_array_get(all, j - 1), *b = json_array_get(all, j);
            if (json_integer_value(json_object_get(a, "num_joined_members")) >=
                json_integer_value(json_object_get(b, "num_joined_members")))
                break;
            json_incref(a);
            json_array_set(all, j - 1, b);
            json_array_set_new(all, j, a);
        }
    if (limit <= 0)
        limit = (long)n;
    json_t *chunk = json_array();
    for (size_t i = (size_t)offset; i < n && json_array_size(chunk) < (size_t)limit; i++)
        json_array_append(chunk, json_array_get(all, i));
    json_t *body = json_pack("{s:o, s:I}", "chunk", chunk, "total_room_count_estimate", (json_int_t)n);
    char tok[32];
    if ((size_t)offset + (size_t)limit < n) {
        snprintf(tok, sizeof tok, "p%zu", (size_t)offset + (size_t)limit);
        json_object_set_new(body, "next_batch", json_string(tok));
    }
    if (offset > 0) {
        snprintf(tok, sizeof tok, "p%ld", offset > limit ? offset - limit : 0);
        json_object_set_new(body, "prev_batch", json_string(tok));
    }
    json_decref(all);
    return hs_ok(body);
}
