/* rooms.c -- the managed rooms: each configured room key resolved to its alias or created by the
 * router (name, alias, power levels, encryption, join rule), recorded in the store, linked into
 * the root Space, with the users authorization lets in invited and each account joined. */
#include "gateway_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/ids.h"

#define SPACE_KEY "_mindroom_root_space"

typedef struct gw_room {
    char key[128];
    char alias[MR_MATRIX_ID_SIZE];
    char room_id[MR_MATRIX_ID_SIZE];
} gw_room;

static bool is_room_key(const char *s)
{
    return s[0] != '!' && s[0] != '#';
}

/* The rooms an agent or team account is configured for; NULL for the router and the user. */
static const mr_strlist *rooms_of(const gw *g, const gw_account *a)
{
    const mr_agent_cfg *ag = mr_config_agent(g->cfg, a->entity);
    if (ag)
        return &ag->rooms;
    const mr_team_cfg *tm = mr_config_team(g->cfg, a->entity);
    return tm ? &tm->rooms : NULL;
}

/* Does account a belong in the room with this key (router: every managed room)? */
static bool belongs(const gw *g, const gw_account *a, const char *key)
{
    if (a == g->router)
        return true;
    const mr_strlist *rooms = rooms_of(g, a);
    for (size_t i = 0; rooms && i < rooms->len; i++)
        if (strcmp(rooms->v[i], key) == 0)
            return true;
    return false;
}

/* ---- state helpers ---- */

/* The membership of user in room as the router sees it: "join", "invite", ... or "" when none. */
static mr_code membership(mr_matrix *m, const char *room_id, const char *user, char out[16],
                          mr_err *err)
{
    json_t *c = NULL;
    out[0] = '\0';
    mr_code rc = mr_matrix_state_get(m, room_id, "m.room.member", user, &c, err);
    if (rc == MR_ENOTFOUND)
        rc = MR_OK;
    const char *v = json_string_value(json_object_get(c, "membership"));
    if (v)
        snprintf(out, 16, "%s", v);
    json_decref(c);
    return rc;
}

/* The managed room's record: room:<id> {key, alias}, roomkey:<key>, and the facts its inbound
 * events carry to authz and the agents. */
static mr_code record(gw *g, const gw_room *r, mr_err *err)
{
    char key[MR_MATRIX_ID_SIZE + 16];
    snprintf(key, sizeof key, "room:%s", r->room_id);
    mr_store *s = g->rt->store;
    mr_code rc;
    if ((rc = mr_store_hset(s, key, "key", r->key, strlen(r->key), err)) == MR_OK &&
        (rc = mr_store_hset(s, key, "alias", r->alias, strlen(r->alias), err)) == MR_OK) {
        snprintf(key, sizeof key, "roomkey:%s", r->key);
        rc = mr_store_set(s, key, r->room_id, strlen(r->room_id), 0, err);
    }
    if (rc == MR_OK)
        rc = gw_pub_set_facts(g, r->room_id, r->key, r->alias, err);
    /* The router is in every managed room from here on: it publishes the room from the first
     * sync, whichever account's sync reports the room first. */
    bool mine = false;
    if (rc == MR_OK)
        rc = gw_pub_note(g, r->room_id, g->router->user_id, true, &mine, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "recording room %s (%s)", r->alias, r->room_id);
    return rc;
}

/* The alias localpart (`<key>[_<ns>]`) and full alias of r. */
static mr_code alias_of(const gw *g, gw_room *r, char lp[MR_MATRIX_ID_SIZE], mr_err *err)
{
    mr_code rc = mr_id_managed_alias_localpart(r->key, g->s.ns, lp, MR_MATRIX_ID_SIZE, err);
    if (rc == MR_OK && snprintf(r->alias, sizeof r->alias, "#%s:%s", lp, g->s.server_name) >=
                       (int)sizeof r->alias)
        rc = mr_err_set(err, MR_EINVAL, "the alias of room %s on %s is longer than %d bytes",
                        r->key, g->s.server_name, MR_MATRIX_ID_SIZE - 1);
    return rc;
}

/* ---- creation ---- */

/* "dev_room" -> "Dev_Room", as Python's str.title() names rooms in the reference. */
static void title_case(const char *key, char *out, size_t cap)
{
    bool start = true;
    size_t i = 0;
    for (; key[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)key[i];
        out[i] = (char)(start ? toupper(c) : tolower(c));
        start = !isalpha(c);
    }
    out[i] = '\0';
}

static bool valid_user(const char *s)
{
    return s && s[0] == '@' && mr_id_parse_user(s, NULL, NULL) == MR_OK;
}

/* Power levels for a managed room: router and room_admins 100, the room's accounts 50. */
static json_t *power_levels(const gw *g, const char *key)
{
    json_t *users = json_object();
    bool ok = users != NULL;
    for (size_t i = 0; ok && key && i < g->n_accounts; i++)
        if (belongs(g, &g->accounts[i], key))
            ok = json_object_set_new(users, g->accounts[i].user_id, json_integer(50)) == 0;
    const mr_strlist *admins = &g->cfg->matrix_room_access.room_admins;
    for (size_t i = 0; ok && i < admins->len; i++)
        if (valid_user(admins->v[i]))
            ok = json_object_set_new(users, admins->v[i], json_integer(100)) == 0;
    if (!ok || json_object_set_new(users, g->router->user_id, json_integer(100)) != 0) {
        json_decref(users);
        return NULL;
    }
    return json_pack("{s:o, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:{s:i, s:i, s:i, s:i, s:i, s:i, "
                     "s:i, s:i, s:i}}",
                     "users", users, "users_default", 0, "events_default", 0, "state_default", 50,
                     "ban", 50, "kick", 50, "redact", 50, "invite", 0, "events",
                     "m.room.name", 50, "m.room.power_levels", 100, "m.room.history_visibility", 100,
                     "m.room.canonical_alias", 50, "m.room.avatar", 50, "m.room.tombstone", 100,
                     "m.room.server_acl", 100, "m.room.encryption", 100,
                     "org.matrix.msc3401.call.member", 0);
}

static json_t *state_event(const char *type, json_t *content)
{
    return json_pack("{s:s, s:s, s:o}", "type", type, "state_key", "", "content", content);
}

/* The private_chat preset lets guests join (Synapse sets guest_access can_join for it); managed
 * rooms and the Space are for the people the config names, never for guest accounts. */
static json_t *no_guests(void)
{
    return state_event("m.room.guest_access", json_pack("{s:s}", "guest_access", "forbidden"));
}

/* Appends v (taken) to arr while nothing before failed, so a builder checks once at the end. */
static bool append_ok(bool ok, json_t *arr, json_t *v)
{
    if (!ok || !arr || !v) {
        json_decref(v);
        return false;
    }
    return json_array_append_new(arr, v) == 0;
}

static json_t *create_body(gw *g, const gw_room *r, const char *alias_localpart)
{
    const mr_room_cfg *rc = mr_config_room(g->cfg, r->key);
    char title[128];
    title_case(r->key, title, sizeof title);
    gw_access access = gw_access_wanted(g, r->key, r->alias, NULL);
    json_t *invite = json_array();
    bool ok = invite != NULL;
    for (size_t i = 1; i < g->n_accounts; i++)
        if (belongs(g, &g->accounts[i], r->key))
            ok = append_ok(ok, invite, json_string(g->accounts[i].user_id));
    json_t *initial = json_array();
    ok = append_ok(ok, initial, state_event("m.room.power_levels", power_levels(g, r->key)));
    ok = append_ok(ok, initial, no_guests());
    if ((rc && rc->encrypted) || g->cfg->matrix_room_access.encrypt_managed_rooms)
        ok = append_ok(ok, initial, state_event("m.room.encryption", json_pack(
            "{s:s}", "algorithm", "m.megolm.v1.aes-sha2")));
    if (strcmp(access.join_rule, "invite") != 0)
        ok = append_ok(ok, initial, state_event("m.room.join_rules", json_pack(
            "{s:s}", "join_rule", access.join_rule)));
    if (!ok) {
        json_decref(invite);
        json_decref(initial);
        return NULL;
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "name",
                             rc && rc->display_name ? rc->display_name : title, "room_alias_name",
                             alias_localpart, "preset", "private_chat", "visibility",
                             access.publish ? "public" : "private", "invite", invite,
                             "initial_state", initial);
    if (body && rc && rc->topic && json_object_set_new(body, "topic", json_string(rc->topic)) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

static json_t *space_body(gw *g, const char *alias_localpart)
{
    json_t *initial = json_array();
    bool ok = append_ok(initial != NULL, initial, state_event("m.room.power_levels", power_levels(g, NULL)));
    if (!append_ok(ok, initial, no_guests())) {
        json_decref(initial);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:o}", "name", g->cfg->matrix_space.name,
                     "room_alias_name", alias_localpart, "preset", "private_chat", "visibility",
                     "private", "creation_content", "type", "m.space", "initial_state", initial);
}

/* Finds the room by its alias, or has the router create it with body_fn's body. *created tells
 * which. The router ends up joined either way (or MR_EPERM when it cannot). */
static mr_code resolve_or_create(gw *g, gw_room *r, const char *alias_localpart, bool space,
                                 bool *created, mr_err *err)
{
    mr_matrix *m = g->router->m;
    *created = false;
    mr_code rc = mr_matrix_alias_get(m, r->alias, r->room_id, err);
    if (rc == MR_ENOTFOUND) {
        json_t *body = space ? space_body(g, alias_localpart) : create_body(g, r, alias_localpart);
        rc = body ? mr_matrix_create_room(m, body, r->room_id, err)
                  : mr_err_set(err, MR_ENOMEM, "out of memory creating %s", r->alias);
        json_decref(body);
        if (rc == MR_OK) {
            *created = true;
            mr_log_info(GW, "created %s %s (%s)", space ? "the Space" : "room", r->alias, r->room_id);
            return MR_OK;
        }
        /* Made by an earlier attempt whose reply was lost: look it up again. */
        if (!mr_matrix_errcode_is(m, "M_ROOM_IN_USE"))
            return rc;
        rc = mr_matrix_alias_get(m, r->alias, r->room_id, err);
    }
    if (rc != MR_OK)
        return rc;
    char mine[16];
    rc = membership(m, r->room_id, g->router->user_id, mine, err);
    if (rc == MR_EPERM || (rc == MR_OK && strcmp(mine, "join") != 0))
        rc = mr_matrix_join(m, r->room_id, NULL, err);
    return rc;
}

/* ---- membership ---- */

/* Invites user (as the router) unless already joined, invited or gone by choice; an invite the
 * homeserver refuses (an unknown user) is a warning. */
static mr_code invite_once(gw *g, const gw_room *r, const char *user, mr_err *err)
{
    char state[16];
    mr_code rc = membership(g->router->m, r->room_id, user, state, err);
    if (rc != MR_OK || (state[0] && strcmp(state, "knock") != 0))
        return rc;
    rc = mr_matrix_invite(g->router->m, r->room_id, user, err);
    if (rc == MR_OK)
        mr_log_info(GW, "invited %s to %s", user, r->alias);
    else if (rc != MR_EUNAVAIL) {
        mr_log_warn(GW, "could not invite %s to %s (%s): %s", user, r->alias, r->room_id, err->msg);
        rc = MR_OK;
    }
    return rc;
}

static bool add_users(json_t *set, const mr_strlist *l)
{
    bool ok = true;
    for (size_t i = 0; ok && i < l->len; i++)
        if (valid_user(l->v[i]))
            ok = json_object_set_new(set, l->v[i], json_true()) == 0;
    return ok;
}

/* Everyone authorization names (global users, room permissions, room admins) and lets into
 * this room gets an invite. */
static mr_code invite_users(gw *g, const gw_room *r, mr_err *err)
{
    const mr_authz_cfg *a = &g->cfg->authorization;
    json_t *set = json_object();
    if (!set)
        return mr_err_set(err, MR_ENOMEM, "out of memory listing users to invite");
    bool ok = add_users(set, &a->global_users) && add_users(set, &g->cfg->matrix_room_access.room_admins);
    for (size_t i = 0; ok && i < a->n_room_permissions; i++)
        ok = add_users(set, &a->room_permissions[i].users);
    if (!ok) {
        json_decref(set);
        return mr_err_set(err, MR_ENOMEM, "out of memory listing users to invite");
    }
    mr_authz_room room = {.room_id = r->room_id, .alias = r->alias,
                          .room_key = is_room_key(r->key) ? r->key : NULL};
    mr_code rc = MR_OK;
    const char *u;
    json_t *v;
    json_object_foreach(set, u, v) {
        mr_authz_decision d;
        if (mr_authz_is_internal(g->az, u) || !mr_authz_check_room(g->az, u, &room, &d))
            continue;
        if ((rc = invite_once(g, r, u, err)) != MR_OK)
            break;
    }
    json_decref(set);
    return rc;
}

/* Each account that belongs in the room is invited by the router and joins. */
static mr_code join_accounts(gw *g, const gw_room *r, mr_err *err)
{
    for (size_t i = 1; i < g->n_accounts; i++) {
        gw_account *a = &g->accounts[i];
        if (!belongs(g, a, r->key))
            continue;
        char state[16];
        bool mine = false;
        mr_code rc = membership(g->router->m, r->room_id, a->user_id, state, err);
        bool joined = rc == MR_OK && strcmp(state, "join") == 0;
        if (rc == MR_OK && !joined && strcmp(state, "invite") != 0)
            rc = mr_matrix_invite(g->router->m, r->room_id, a->user_id, err);
        if (rc == MR_OK && !joined)
            rc = mr_matrix_join(a->m, r->room_id, NULL, err);
        /* Known joined before its first sync, so that sync leaves the router's room out. */
        if (rc == MR_OK)
            rc = gw_pub_note(g, r->room_id, a->user_id, true, &mine, err);
        if (rc != MR_OK) {
            mr_err_prefix(err, "%s joining %s", a->user_id, r->alias);
            return rc;
        }
        if (!joined)
            mr_log_info(GW, "%s joined %s", a->user_id, r->alias);
    }
    return MR_OK;
}

/* Rooms named by alias or ID in an agent's or team's rooms are not managed: the account only
 * joins them, and a refusal is a warning. */
static mr_code join_unmanaged(gw *g, mr_err *err)
{
    for (size_t i = 1; i < g->n_accounts; i++) {
        gw_account *a = &g->accounts[i];
        const mr_strlist *rooms = rooms_of(g, a);
        for (size_t k = 0; rooms && k < rooms->len; k++) {
            if (is_room_key(rooms->v[k]))
                continue;
            mr_code rc = mr_matrix_join(a->m, rooms->v[k], NULL, err);
            if (rc == MR_EUNAVAIL)
                return rc;
            if (rc != MR_OK)
                mr_log_warn(GW, "%s could not join %s: %s", a->user_id, rooms->v[k], err->msg);
        }
    }
    mr_err_clear(err);
    return MR_OK;
}

/* ---- the root Space ---- */

/* Puts the state event (type, state_key) into room_id unless one is there already: links a
 * person or an earlier start made stay as they are. */
static mr_code link_once(gw *g, const char *room_id, const char *type, const char *state_key,
                         bool canonical, mr_err *err)
{
    json_t *c = NULL;
    mr_code rc = mr_matrix_state_get(g->router->m, room_id, type, state_key, &c, err);
    json_decref(c);
    if (rc != MR_ENOTFOUND)
        return rc;
    mr_err_clear(err);
    json_t *content = json_pack("{s:[s], s:b}", "via", g->s.server_name,
                                canonical ? "canonical" : "suggested", 1);
    rc = content ? mr_matrix_state_put(g->router->m, room_id, type, state_key, content, NULL, err)
                 : mr_err_set(err, MR_ENOMEM, "out of memory linking %s to the Space", room_id);
    json_decref(content);
    return rc;
}

/* The Space lists the room (m.space.child) and the room names the Space as its parent
 * (m.space.parent, canonical), so clients show the room inside the Space from either side. */
static mr_code link_child(gw *g, const gw_room *space, const gw_room *child, mr_err *err)
{
    mr_code rc = link_once(g, space->room_id, "m.space.child", child->room_id, false, err);
    if (rc == MR_OK)
        rc = link_once(g, child->room_id, "m.space.parent", space->room_id, true, err);
    if (rc == MR_EPERM) {
        /* A room the router joined but does not administer: the Space still lists it. */
        mr_log_warn(GW, "room %s (%s) does not name the Space as its parent: %s", child->alias,
                    child->room_id, err->msg);
        mr_err_clear(err);
        rc = MR_OK;
    }
    return rc;
}

static mr_code space_bootstrap(gw *g, const gw_room *rooms, size_t n, mr_err *err)
{
    gw_room space = {.key = SPACE_KEY};
    char lp[MR_MATRIX_ID_SIZE];
    mr_code rc = alias_of(g, &space, lp, err);
    if (rc != MR_OK)
        return rc;
    bool created;
    if ((rc = resolve_or_create(g, &space, lp, true, &created, err)) != MR_OK ||
        (rc = invite_users(g, &space, err)) != MR_OK)
        return rc;
    for (size_t i = 0; rc == MR_OK && i < n; i++)
        if (rooms[i].room_id[0])
            rc = link_child(g, &space, &rooms[i], err);
    return rc;
}

/* ---- all of it ---- */

static void add_key(gw_room *rooms, size_t *n, const char *key)
{
    if (!is_room_key(key))
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(rooms[i].key, key) == 0)
            return;
    snprintf(rooms[(*n)++].key, sizeof rooms->key, "%s", key);
}

/* Every managed room key: the rooms block, then the rooms of agents and teams. */
static gw_room *collect(const gw *g, size_t *n)
{
    const mr_config *c = g->cfg;
    size_t cap = c->n_rooms;
    for (size_t i = 0; i < c->n_agents; i++)
        cap += c->agents[i].rooms.len;
    for (size_t i = 0; i < c->n_teams; i++)
        cap += c->teams[i].rooms.len;
    gw_room *rooms = calloc(cap ? cap : 1, sizeof *rooms);
    *n = 0;
    if (!rooms)
        return NULL;
    for (size_t i = 0; i < c->n_rooms; i++)
        add_key(rooms, n, c->rooms[i].key);
    for (size_t i = 0; i < c->n_agents; i++)
        for (size_t k = 0; k < c->agents[i].rooms.len; k++)
            add_key(rooms, n, c->agents[i].rooms.v[k]);
    for (size_t i = 0; i < c->n_teams; i++)
        for (size_t k = 0; k < c->teams[i].rooms.len; k++)
            add_key(rooms, n, c->teams[i].rooms.v[k]);
    return rooms;
}

static mr_code room_bootstrap(gw *g, gw_room *r, mr_err *err)
{
    char lp[MR_MATRIX_ID_SIZE];
    mr_code rc = alias_of(g, r, lp, err);
    if (rc != MR_OK)
        return rc;
    bool created = false;
    rc = resolve_or_create(g, r, lp, false, &created, err);
    if (rc == MR_EPERM) {
        /* A room someone else made under our alias, which the router may not join. */
        mr_log_warn(GW, "room %s exists but %s cannot join it; invite the router to manage it: %s",
                    r->alias, g->router->user_id, err->msg);
        r->room_id[0] = '\0';
        mr_err_clear(err);
        return MR_OK;
    }
    if (rc == MR_OK)
        rc = record(g, r, err);
    if (rc == MR_OK && !created)
        rc = gw_access_reconcile(g, g->router->m, r->key, r->alias, r->room_id, err);
    if (rc == MR_OK)
        rc = join_accounts(g, r, err);
    if (rc == MR_OK)
        rc = invite_users(g, r, err);
    return rc;
}

mr_code gw_rooms_bootstrap(gw *g, mr_err *err)
{
    size_t n = 0;
    gw_room *rooms = collect(g, &n);
    if (!rooms)
        return mr_err_set(err, MR_ENOMEM, "out of memory collecting rooms");
    mr_code rc = MR_OK;
    for (size_t i = 0; rc == MR_OK && i < n; i++)
        rc = room_bootstrap(g, &rooms[i], err);
    if (rc == MR_OK && g->cfg->matrix_space.enabled)
        rc = space_bootstrap(g, rooms, n, err);
    if (rc == MR_OK)
        rc = join_unmanaged(g, err);
    size_t ready = 0;
    for (size_t i = 0; i < n; i++)
        ready += rooms[i].room_id[0] != '\0';
    /* A room left out above (its alias is held by a room the router cannot join) is not ready. */
    if (rc == MR_OK && ready == n)
        mr_log_info(GW, "%zu managed rooms ready", n);
    else if (rc == MR_OK)
        mr_log_warn(GW, "%zu of %zu managed rooms ready; the others are named in the warnings above",
                    ready, n);
    free(rooms);
    return rc;
}
