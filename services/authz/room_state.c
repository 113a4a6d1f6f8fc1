/* room_state.c -- authz's own record of rooms, kept from the events it reads: who is joined
 * where, and which room a managed key names; the joined_rooms answers come from it alone. */
#include "authz_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/ids.h"

#define MEMBERS_KEY "authz:members:%s"
#define ROOMKEY_KEY "authz:roomkey:%s"

mr_code room_state_note(mr_store *s, const turn_event *ev, mr_err *err)
{
    char key[2 * MR_ID_MAX + 32];
    mr_code rc = MR_OK;
    if (ev->membership) {
        snprintf(key, sizeof key, MEMBERS_KEY, ev->room_id);
        rc = mr_store_hset(s, key, ev->member, ev->membership, strlen(ev->membership), err);
    }
    /* Written with each membership change of a managed room: its first sync brings the room's
     * members, so the key is known before anyone's joined_rooms can name the room. */
    if (rc == MR_OK && ev->membership && ev->room_key) {
        snprintf(key, sizeof key, ROOMKEY_KEY, ev->room_key);
        rc = mr_store_set(s, key, ev->room_id, strlen(ev->room_id), 0, err);
    }
    if (rc != MR_OK)
        mr_err_prefix(err, "recording the membership of %s in %s", ev->member, ev->room_id);
    return rc;
}

/* The managed room key a joined_rooms entry names: the key itself, or the localpart of an
 * alias on our own server without the namespace suffix. False for room IDs and foreign aliases. */
static bool entry_room_key(const room_members *m, const char *room, char *key, size_t cap)
{
    if (room[0] != '#')
        return snprintf(key, cap, "%s", room) < (int)cap;
    mr_id id;
    if (mr_id_parse_room_alias(room, &id, NULL) != MR_OK || strcmp(id.server, m->server_name) != 0)
        return false;
    return mr_id_room_key_from_alias_localpart(id.localpart, m->ns, key, cap);
}

/* Keeps the first store failure other than "absent" in m. */
static void note_failure(room_members *m, mr_code rc, const mr_err *err)
{
    if (rc != MR_OK && rc != MR_ENOTFOUND && m->rc == MR_OK) {
        m->rc = rc;
        m->err = *err;
    }
}

bool room_state_is_member(void *ctx, const char *room, const char *user_id)
{
    room_members *m = ctx;
    char key[2 * MR_ID_MAX + 32];
    char *room_id = NULL, *state = NULL;
    size_t len = 0;
    mr_err err = {0};
    mr_code rc;
    if (room[0] == '!') {
        room_id = strdup(room);
        rc = room_id ? MR_OK : mr_err_set(&err, MR_ENOMEM, "out of memory resolving joined room %s", room);
    } else {
        char rk[MR_ID_MAX + 1];
        if (!entry_room_key(m, room, rk, sizeof rk))
            return false;
        snprintf(key, sizeof key, ROOMKEY_KEY, rk);
        rc = mr_store_get(m->store, key, &room_id, &len, &err);
    }
    if (rc == MR_OK) {
        snprintf(key, sizeof key, MEMBERS_KEY, room_id);
        rc = mr_store_hget(m->store, key, user_id, &state, &len, &err);
    }
    note_failure(m, rc, &err);
    bool joined = rc == MR_OK && strcmp(state, "join") == 0;
    free(room_id);
    free(state);
    return joined;
}

mr_code room_state_joined_entities(const room_members *m, const char *room_id, const char *const *names, size_t n,
                                   const char **out, size_t *n_out, mr_err *err)
{
    char key[MR_ID_MAX + 32];
    snprintf(key, sizeof key, MEMBERS_KEY, room_id);
    mr_store_hash h = {0};
    mr_code rc = mr_store_hgetall(m->store, key, &h, err);
    *n_out = 0;
    for (size_t i = 0; rc == MR_OK && i < n; i++) {
        char user[MR_ID_MAX + 1];
        if (mr_id_managed_user_id(names[i], m->ns, m->server_name, user, sizeof user, NULL) != MR_OK)
            continue;
        for (size_t j = 0; j < h.count; j++)
            if (strcmp(h.entries[j].field, user) == 0 && strcmp(h.entries[j].value, "join") == 0)
                out[(*n_out)++] = names[i];
    }
    mr_store_hash_free(&h);
    return rc;
}
