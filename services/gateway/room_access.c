/* room_access.c -- matrix_room_access (seed 003): which join rule and directory listing each
 * managed room should have, and the opt-in migration of existing rooms, with warnings that name
 * the room, the Matrix error and the power level the router lacks. */
#include "gateway_internal.h"

#include <stdio.h>
#include <string.h>

static bool listed_invite_only(const gw *g, const char *key, const char *alias, const char *room_id)
{
    const mr_strlist *l = &g->cfg->matrix_room_access.invite_only_rooms;
    for (size_t i = 0; i < l->len; i++) {
        const char *e = l->v[i];
        if ((key && strcmp(e, key) == 0) || (alias && strcmp(e, alias) == 0) ||
            (room_id && strcmp(e, room_id) == 0))
            return true;
    }
    return false;
}

gw_access gw_access_wanted(const gw *g, const char *key, const char *alias, const char *room_id)
{
    const mr_room_access_cfg *c = &g->cfg->matrix_room_access;
    gw_access a = {.join_rule = "invite", .publish = false};
    if (c->mode != MR_ROOM_ACCESS_MULTI_USER || listed_invite_only(g, key, alias, room_id))
        return a;
    a.join_rule = c->multi_user_join_rule == MR_JOIN_RULE_KNOCK ? "knock" : "public";
    a.publish = c->publish_to_room_directory;
    return a;
}

/* The power level the room asks for a state event of `type`, and the one `user` has. */
static void power_needed(mr_matrix *m, const char *room_id, const char *type, const char *user,
                         long long *need, long long *have)
{
    json_t *pl = NULL;
    mr_err ignored = {0};
    *need = 50; /* the spec's state_default when power levels are absent */
    *have = 0;
    if (mr_matrix_state_get(m, room_id, "m.room.power_levels", "", &pl, &ignored) != MR_OK)
        return;
    json_t *ev = json_object_get(json_object_get(pl, "events"), type);
    json_t *sd = json_object_get(pl, "state_default");
    if (json_is_integer(ev))
        *need = json_integer_value(ev);
    else if (json_is_integer(sd))
        *need = json_integer_value(sd);
    json_t *mine = json_object_get(json_object_get(pl, "users"), user);
    json_t *ud = json_object_get(pl, "users_default");
    *have = json_is_integer(mine) ? json_integer_value(mine) : json_is_integer(ud) ? json_integer_value(ud) : 0;
    json_decref(pl);
}

/* A refusal the router cannot fix itself becomes a warning; other failures go up. */
static mr_code refused(gw *g, mr_matrix *m, const char *room, const char *room_id, const char *what,
                       const char *power_type, const char *power_hint, mr_code rc, mr_err *err)
{
    if (rc != MR_EPERM)
        return rc;
    /* Copied first: reading the power levels replaces the client's last status. */
    mr_matrix_status st = *mr_matrix_last(m);
    long long need, have;
    power_needed(m, room_id, power_type, g->router->user_id, &need, &have);
    const char *fields[] = {"room", room, "room_id", room_id, "errcode", st.errcode, NULL};
    mr_log_write(MR_LOG_WARN, GW, fields,
                 "matrix_room_access: cannot %s in %s (%s): %s: %s; this needs power level %lld "
                 "%s and %s has %lld", what, room, room_id, st.errcode[0] ? st.errcode : "HTTP 403",
                 st.error, need, power_hint, g->router->user_id, have);
    mr_err_clear(err);
    return MR_OK;
}

mr_code gw_access_reconcile(gw *g, mr_matrix *router, const char *key, const char *alias,
                            const char *room_id, mr_err *err)
{
    if (!g->cfg->matrix_room_access.reconcile_existing_rooms)
        return MR_OK;
    gw_access want = gw_access_wanted(g, key, alias, room_id);
    const char *room = alias ? alias : room_id;
    json_t *cur = NULL;
    mr_code rc = mr_matrix_state_get(router, room_id, "m.room.join_rules", "", &cur, err);
    if (rc != MR_OK && rc != MR_ENOTFOUND)
        return rc;
    const char *rule = json_string_value(json_object_get(cur, "join_rule"));
    bool same = rule ? strcmp(rule, want.join_rule) == 0 : strcmp(want.join_rule, "invite") == 0;
    json_decref(cur);
    rc = MR_OK;
    if (!same) {
        json_t *content = json_pack("{s:s}", "join_rule", want.join_rule);
        rc = mr_matrix_state_put(router, room_id, "m.room.join_rules", "", content, NULL, err);
        json_decref(content);
        char what[64];
        snprintf(what, sizeof what, "set m.room.join_rules to %s", want.join_rule);
        if (rc == MR_OK)
            mr_log_info(GW, "matrix_room_access: %s (%s) now has join rule %s", room, room_id,
                        want.join_rule);
        else
            rc = refused(g, router, room, room_id, what, "m.room.join_rules",
                         "for m.room.join_rules", rc, err);
    }
    bool published = false;
    if (rc == MR_OK)
        rc = mr_matrix_visibility_get(router, room_id, &published, err);
    if (rc != MR_OK || published == want.publish)
        return rc;
    rc = mr_matrix_visibility_put(router, room_id, want.publish, err);
    if (rc == MR_OK) {
        mr_log_info(GW, "matrix_room_access: %s (%s) is now %s the room directory", room, room_id,
                    want.publish ? "in" : "out of");
        return MR_OK;
    }
    /* Homeservers let those who may set the canonical alias change the listing (moderators). */
    return refused(g, router, room, room_id,
                   want.publish ? "publish the room to the room directory" :
                                  "remove the room from the room directory",
                   "m.room.canonical_alias", "(moderator)", rc, err);
}
