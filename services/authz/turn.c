/* turn.c -- reading a cleartext_event, choosing which events become turns, writing the turn. */
#include "authz_internal.h"

#include <string.h>

#include "mindroom/ids.h"
#include "mindroom/msg.h"

/* Longest identifier the schemas accept (common.schema.json). */
#define ID_MAX_LEN 255

static bool is_event_id(const char *s)
{
    return s && s[0] == '$' && s[1] && strlen(s) <= ID_MAX_LEN;
}

static mr_code parse_event(turn_event *ev, mr_err *err)
{
    json_t *e = ev->event;
    if (!json_is_object(e))
        return mr_err_set(err, MR_EINVAL, "event: missing or not an object");
    mr_code rc = mr_msg_need_string(e, "event.", "event_id", &ev->event_id, err);
    if (rc == MR_OK && !is_event_id(ev->event_id))
        rc = mr_err_set(err, MR_EINVAL, "event.event_id: \"%s\" is not an event ID", ev->event_id);
    if (rc == MR_OK)
        rc = mr_msg_need_user(e, "event.", "sender", &ev->sender, err);
    if (rc == MR_OK)
        rc = mr_msg_need_string(e, "event.", "type", &ev->type, err);
    if (rc != MR_OK)
        return rc;
    json_t *ts = json_object_get(e, "origin_server_ts");
    if (!json_is_integer(ts) || json_integer_value(ts) < 0)
        return mr_err_set(err, MR_EINVAL, "event.origin_server_ts: missing or not a non-negative integer");
    json_t *state_key = json_object_get(e, "state_key");
    if (state_key && !json_is_string(state_key))
        return mr_err_set(err, MR_EINVAL, "event.state_key: not a string");
    ev->is_state = state_key != NULL;
    json_t *content = json_object_get(e, "content");
    if (!json_is_object(content))
        return mr_err_set(err, MR_EINVAL, "event.content: missing or not an object");

    json_t *rel = json_object_get(content, "m.relates_to");
    ev->rel_type = json_is_object(rel) ? mr_msg_string(rel, "rel_type") : NULL;
    const char *root = json_is_object(rel) ? mr_msg_string(rel, "event_id") : NULL;
    if (ev->rel_type && strcmp(ev->rel_type, "m.thread") == 0 && is_event_id(root))
        ev->thread_root = root;
    ev->has_new_content = json_object_get(content, "m.new_content") != NULL;
    if (strcmp(ev->type, "m.room.member") == 0 && json_is_string(state_key)) {
        const char *who = json_string_value(state_key);
        const char *m = mr_msg_string(content, "membership");
        if (m && *m && strlen(m) <= ID_MAX_LEN && mr_id_parse_user(who, NULL, NULL) == MR_OK &&
            strlen(who) <= ID_MAX_LEN) {
            ev->member = who;
            ev->membership = m;
        }
    }
    /* Anyone can put this field in a message; whether it counts is the decision's business
     * (only relays from internal senders). Here it only has to be a user ID. */
    const char *orig = mr_msg_string(content, "com.mindroom.original_sender");
    if (orig && mr_id_parse_user(orig, NULL, NULL) == MR_OK && strlen(orig) <= ID_MAX_LEN)
        ev->original_sender = orig;
    return MR_OK;
}

/* The managed room's facts as the gateway recorded them (common.schema.json room_facts). */
static mr_code parse_room(turn_event *ev, mr_err *err)
{
    json_t *room = json_object_get(ev->root, "room");
    if (!room)
        return MR_OK;
    if (!json_is_object(room))
        return mr_err_set(err, MR_EINVAL, "room: not an object");
    mr_code rc = mr_msg_need_string(room, "room.", "key", &ev->room_key, err);
    if (rc == MR_OK && strlen(ev->room_key) > ID_MAX_LEN)
        rc = mr_err_set(err, MR_EINVAL, "room.key: longer than %d bytes", ID_MAX_LEN);
    if (rc == MR_OK && json_object_get(room, "alias") &&
        (rc = mr_msg_need_string(room, "room.", "alias", &ev->room_alias, err)) == MR_OK &&
        (ev->room_alias[0] != '#' || strlen(ev->room_alias) > ID_MAX_LEN))
        rc = mr_err_set(err, MR_EINVAL, "room.alias: \"%s\" is not a room alias", ev->room_alias);
    return rc;
}

mr_code turn_event_parse(const char *value, size_t len, turn_event *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    mr_code rc = mr_msg_load(value, len, "cleartext_event", &out->root, err);
    if (rc != MR_OK)
        return rc;
    json_t *r = out->root;
    rc = mr_msg_need_user(r, "", "account", &out->account, err);
    if (rc == MR_OK)
        rc = mr_msg_need_room_id(r, "", "room_id", &out->room_id, err);
    if (rc == MR_OK) {
        json_t *enc = json_object_get(r, "encrypted");
        if (!json_is_boolean(enc))
            rc = mr_err_set(err, MR_EINVAL, "encrypted: missing or not a boolean");
        out->encrypted = json_is_true(enc);
        json_t *history = json_object_get(r, "history");
        if (history && !json_is_boolean(history))
            rc = mr_err_set(err, MR_EINVAL, "history: not a boolean");
        out->history = json_is_true(history);
    }
    if (rc == MR_OK)
        rc = parse_room(out, err);
    if (rc == MR_OK) {
        out->event = json_object_get(r, "event");
        rc = parse_event(out, err);
    }
    if (rc != MR_OK)
        turn_event_free(out);
    return rc;
}

void turn_event_free(turn_event *ev)
{
    json_decref(ev->root);
    memset(ev, 0, sizeof *ev);
}

const char *turn_event_skip_reason(const turn_event *ev)
{
    if (ev->history)
        return "history: from before the agents were in the room, or older than the answer bound";
    if (ev->is_state)
        return "state event";
    if (strcmp(ev->type, "m.room.encrypted") == 0)
        return "still encrypted: crypto could not decrypt it";
    if (strcmp(ev->type, "m.room.message") != 0)
        return "not a message";
    if ((ev->rel_type && strcmp(ev->rel_type, "m.replace") == 0) || ev->has_new_content)
        return "edit";
    return NULL;
}

char *turn_build(const turn_event *ev, const turn_fields *f)
{
    json_t *entities = json_array();
    for (size_t i = 0; entities && i < f->n_entities; i++)
        json_array_append_new(entities, json_string(f->entities[i]));
    json_t *t = json_pack("{s:i, s:s, s:s, s:O, s:b, s:s, s:o}", "v", 1, "type", "turn", "room_id", ev->room_id,
                          "event", ev->event, "encrypted", ev->encrypted, "sender", f->sender,
                          "allowed_entities", entities);
    if (!t)
        return NULL;
    bool bad = false;
    if (f->room_key)
        bad |= json_object_set_new(t, "room_key", json_string(f->room_key)) != 0;
    if (f->room_alias)
        bad |= json_object_set_new(t, "room_alias", json_string(f->room_alias)) != 0;
    if (!f->room_key) {
        json_t *joined = json_array();
        for (size_t i = 0; joined && i < f->n_joined; i++)
            bad |= json_array_append_new(joined, json_string(f->joined[i])) != 0;
        bad |= json_object_set_new(t, "joined_entities", joined) != 0;
    }
    if (bad) {
        json_decref(t);
        return NULL;
    }
    /* The relayed human only matters, and is only trusted, when an internal identity relays. */
    if (f->relay && ev->original_sender)
        bad |= json_object_set_new(t, "original_sender", json_string(ev->original_sender)) != 0;
    if (ev->thread_root)
        bad |= json_object_set_new(t, "thread", json_pack("{s:s}", "root_event_id", ev->thread_root)) != 0;
    char *text = bad ? NULL : json_dumps(t, JSON_COMPACT);
    json_decref(t);
    return text;
}
