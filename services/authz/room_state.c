/* room_state.c -- what the gateway recorded about rooms: their managed key and alias, members. */
#include "authz_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/ids.h"

mr_code room_state_lookup(mr_store *s, const char *room_id, room_ids *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    char key[MR_ID_MAX + 16];
    snprintf(key, sizeof key, "room:%s", room_id);
    mr_store_hash h = {0};
    mr_code rc = mr_store_hgetall(s, key, &h, err);
    if (rc != MR_OK)
        return rc;
    for (size_t i = 0; i < h.count; i++) {
        char **slot = strcmp(h.entries[i].field, "alias") == 0 ? &out->alias
                      : strcmp(h.entries[i].field, "key") == 0 ? &out->key
                                                               : NULL;
        if (slot && !*slot && h.entries[i].value_len > 0) {
            *slot = h.entries[i].value;
            h.entries[i].value = NULL;
        }
    }
    mr_store_hash_free(&h);
    return MR_OK;
}

void room_ids_free(room_ids *ids)
{
    free(ids->alias);
    free(ids->key);
    memset(ids, 0, sizeof *ids);
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
    char key[2 * MR_ID_MAX + 16];
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
        snprintf(key, sizeof key, "roomkey:%s", rk);
        rc = mr_store_get(m->store, key, &room_id, &len, &err);
    }
    if (rc == MR_OK) {
        snprintf(key, sizeof key, "members:%s", room_id);
        rc = mr_store_hget(m->store, key, user_id, &state, &len, &err);
    }
    note_failure(m, rc, &err);
    bool joined = rc == MR_OK && strcmp(state, "join") == 0;
    free(room_id);
    free(state);
    return joined;
}
