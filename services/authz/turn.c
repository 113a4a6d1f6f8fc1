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

/* What the turn decision needs from the event's content, which no schema describes: any sender
 * can put anything there, so each value is checked before it counts. */
static void read_content(turn_event *ev, json_t *content)
{
    json_t *rel = json_object_get(content, "m.relates_to");
    ev->rel_type = json_is_object(rel) ? mr_msg_string(rel, "rel_type") : NULL;
    const char *root = json_is_object(rel) ? mr_msg_string(rel, "event_id") : NULL;
    if (ev->rel_type && strcmp(ev->rel_type, "m.thread") == 0 && is_event_id(root))
        ev->thread_root = root;
    ev->has_new_content = json_object_get(content, "m.new_content") != NULL;
    /* Anyone can put this field in a message; whether it counts is the decision's business
     * (only relays from internal senders). Here it only has to be a user ID. */
    const char *orig = mr_msg_string(content, "com.mindroom.original_sender");
    if (orig && mr_id_parse_user(orig, NULL, NULL) == MR_OK && strlen(orig) <= ID_MAX_LEN)
        ev->original_sender = orig;
}

mr_code turn_event_parse(const char *value, size_t len, turn_event *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    mr_code rc = mr_msg_load(value, len, "cleartext_event", &out->root, err);
    if (rc != MR_OK)
        return rc;
    json_t *r = out->root;
    out->account = mr_msg_string(r, "account");
    out->room_id = mr_msg_string(r, "room_id");
    out->encrypted = json_is_true(json_object_get(r, "encrypted"));
    out->history = json_is_true(json_object_get(r, "history"));
    json_t *room = json_object_get(r, "room");
    out->room_key = mr_msg_string(room, "key");
    out->room_alias = mr_msg_string(room, "alias");
    out->event = json_object_get(r, "event");
    mr_msg_event e;
    mr_msg_event_read(out->event, &e);
    out->event_id = e.event_id;
    out->sender = e.sender;
    out->type = e.type;
    out->is_state = e.state_key != NULL;
    read_content(out, e.content);
    if (strcmp(e.type, "m.room.member") == 0 && e.state_key) {
        const char *m = mr_msg_string(e.content, "membership");
        if (m && *m && strlen(m) <= ID_MAX_LEN && mr_id_parse_user(e.state_key, NULL, NULL) == MR_OK &&
            strlen(e.state_key) <= ID_MAX_LEN) {
            out->member = e.state_key;
            out->membership = m;
        }
    }
    return MR_OK;
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
