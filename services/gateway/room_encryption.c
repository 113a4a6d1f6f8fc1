/* room_encryption.c -- which rooms are encrypted, as the gateway knows it: from the
 * m.room.encryption state events its syncs carry, kept under `encryption:<room_id>` so a restart
 * (whose syncs do not repeat state) still knows, and asked of the homeserver once per process for
 * a room it has no record of (one joined before the gateway kept them). Every inbound_event of an
 * encrypted room carries the content (`encryption`), so crypto learns it from any event; and a
 * cleartext m.room.message is never sent into an encrypted room. */
#include "gateway_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_TYPE "m.room.encryption"

/* enc_rooms: room ID -> the m.room.encryption content (known encrypted), or true (asked the
 * homeserver in this process: not encrypted then). A room that is neither is looked up in the
 * store each time, since another gateway process may have recorded it meanwhile. */

mr_code gw_enc_init(gw *g, mr_err *err)
{
    g->enc_rooms = json_object();
    if (!g->enc_rooms)
        return mr_err_set(err, MR_ENOMEM, "out of memory setting up the room encryption records");
    int e = pthread_mutex_init(&g->enc_lock, NULL);
    if (e != 0) {
        json_decref(g->enc_rooms);
        g->enc_rooms = NULL;
        return mr_err_errno(err, MR_EINTERNAL, e, "setting up the room encryption records");
    }
    return MR_OK;
}

void gw_enc_free(gw *g)
{
    if (!g->enc_rooms)
        return;
    pthread_mutex_destroy(&g->enc_lock);
    json_decref(g->enc_rooms);
    g->enc_rooms = NULL;
}

void gw_enc_key(const char *room_id, char key[MR_MATRIX_ID_SIZE + 16])
{
    snprintf(key, MR_MATRIX_ID_SIZE + 16, "encryption:%s", room_id);
}

/* Records content (a valid m.room.encryption content) as the room's, in memory and the store. */
static mr_code remember(gw *g, const char *room_id, json_t *content, mr_err *err)
{
    char key[MR_MATRIX_ID_SIZE + 16];
    gw_enc_key(room_id, key);
    char *text = json_dumps(content, JSON_COMPACT);
    mr_code rc = text ? mr_store_set(g->rt->store, key, text, strlen(text), 0, err)
                      : mr_err_set(err, MR_ENOMEM, "out of memory recording the encryption of %s", room_id);
    free(text);
    pthread_mutex_lock(&g->enc_lock);
    if (rc == MR_OK && json_object_set_new(g->enc_rooms, room_id, json_deep_copy(content)) != 0)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory recording the encryption of %s", room_id);
    pthread_mutex_unlock(&g->enc_lock);
    return rc;
}

static bool valid(json_t *content)
{
    return json_is_object(content) && json_is_string(json_object_get(content, "algorithm"));
}

mr_code gw_enc_note(gw *g, const char *room_id, json_t *ev, json_t **enc, mr_err *err)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *state_key = json_string_value(json_object_get(ev, "state_key"));
    json_t *content = json_object_get(ev, "content");
    if (!type || !state_key || strcmp(type, EVENT_TYPE) != 0 || state_key[0] || !valid(content))
        return MR_OK;
    json_t *copy = json_deep_copy(content);
    if (!copy)
        return mr_err_set(err, MR_ENOMEM, "out of memory noting the encryption of %s", room_id);
    json_decref(*enc);
    *enc = copy;
    pthread_mutex_lock(&g->enc_lock);
    bool same = json_equal(json_object_get(g->enc_rooms, room_id), content);
    pthread_mutex_unlock(&g->enc_lock);
    return same ? MR_OK : remember(g, room_id, content, err);
}

/* The homeserver's m.room.encryption of the room, asked once per process; *content NULL when
 * the room has none. Only a failure to reach the homeserver is an error (to try again); any
 * other refusal (not in the room) leaves the room unknown, with a warning. */
static mr_code ask(gw *g, mr_matrix *m, const char *room_id, json_t **content, mr_err *err)
{
    mr_err why = {0};
    mr_code rc = mr_matrix_state_get(m, room_id, EVENT_TYPE, "", content, &why);
    if (rc == MR_OK && !valid(*content)) {
        json_decref(*content);
        *content = NULL;
        rc = MR_ENOTFOUND;
    }
    if (rc == MR_OK)
        return remember(g, room_id, *content, err);
    if (rc == MR_EUNAVAIL || rc == MR_ENOMEM) {
        *err = why;
        return rc;
    }
    if (rc != MR_ENOTFOUND)
        mr_log_warn(GW, "cannot tell whether %s is encrypted: %s", room_id, why.msg);
    pthread_mutex_lock(&g->enc_lock);
    bool bad = json_object_set_new(g->enc_rooms, room_id, json_true()) != 0;
    pthread_mutex_unlock(&g->enc_lock);
    return bad ? mr_err_set(err, MR_ENOMEM, "out of memory noting that %s is not encrypted", room_id) : MR_OK;
}

/* What this process knows of the room: *content a copy of its m.room.encryption, or NULL with
 * *asked telling whether the homeserver was asked already. */
static void known(gw *g, const char *room_id, json_t **content, bool *asked)
{
    pthread_mutex_lock(&g->enc_lock);
    json_t *k = json_object_get(g->enc_rooms, room_id);
    *asked = json_is_true(k);
    *content = json_is_object(k) ? json_deep_copy(k) : NULL;
    pthread_mutex_unlock(&g->enc_lock);
}

/* The room's content from text, its encryption: value in the store (NULL: absent), kept in
 * memory; without one, asked of the homeserver through m (not when asked already or m NULL). */
static mr_code from_store(gw *g, mr_matrix *m, const char *room_id, const char *text, size_t len, bool asked,
                          json_t **content, mr_err *err)
{
    if (!text)
        return asked || !m ? MR_OK : ask(g, m, room_id, content, err);
    json_t *stored = json_loadb(text, len, 0, NULL);
    if (!valid(stored)) {
        json_decref(stored);
        char key[MR_MATRIX_ID_SIZE + 16];
        gw_enc_key(room_id, key);
        return mr_err_set(err, MR_EINVAL, "%s in the store is not an m.room.encryption content", key);
    }
    pthread_mutex_lock(&g->enc_lock);
    bool bad = json_object_set_new(g->enc_rooms, room_id, json_deep_copy(stored)) != 0;
    pthread_mutex_unlock(&g->enc_lock);
    *content = stored;
    return bad ? mr_err_set(err, MR_ENOMEM, "out of memory reading the encryption of %s", room_id) : MR_OK;
}

mr_code gw_enc_of(gw *g, mr_matrix *m, const char *room_id, json_t **content, mr_err *err)
{
    bool asked;
    known(g, room_id, content, &asked);
    if (*content)
        return MR_OK;
    char key[MR_MATRIX_ID_SIZE + 16], *text = NULL;
    size_t len = 0;
    gw_enc_key(room_id, key);
    mr_code rc = mr_store_get(g->rt->store, key, &text, &len, err);
    if (rc != MR_OK && rc != MR_ENOTFOUND)
        return rc;
    mr_err_clear(err);
    rc = from_store(g, m, room_id, text, len, asked, content, err);
    free(text);
    return rc;
}

mr_code gw_enc_check_send(gw *g, mr_matrix *m, json_t *req, const char *stored, size_t len, mr_err *err)
{
    const char *room_id = json_string_value(json_object_get(req, "room_id"));
    const char *type = json_string_value(json_object_get(req, "event_type"));
    if (!type || strcmp(type, "m.room.message") != 0)
        return MR_OK;
    json_t *content = NULL;
    bool asked;
    known(g, room_id, &content, &asked);
    mr_code rc = content ? MR_OK : from_store(g, m, room_id, stored, len, asked, &content, err);
    if (rc == MR_OK && content)
        rc = mr_err_set(err, MR_EPERM,
                        "room %s is encrypted (%s): refusing to send an m.room.message in clear; the crypto "
                        "service encrypts what goes there once it has seen the room's m.room.encryption",
                        room_id, json_string_value(json_object_get(content, "algorithm")));
    json_decref(content);
    return rc;
}
