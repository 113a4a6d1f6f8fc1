/* msg.c -- reading the JSON messages services exchange on the bus: each checked against its
 * schema (libs/proto), then read without further checks. */
#include "mindroom/msg.h"

#include <string.h>

#include "mindroom/ids.h"
#include "mindroom/proto.h"

const char *mr_msg_string(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

mr_code mr_msg_need_string(json_t *obj, const char *path, const char *key, const char **out, mr_err *err)
{
    *out = mr_msg_string(obj, key);
    if (!*out || !**out)
        return mr_err_set(err, MR_EINVAL, "%s%s: missing or not a non-empty string", path, key);
    return MR_OK;
}

/* The non-empty string at obj.key, checked by parse; its complaint prefixed with path and key. */
static mr_code need_id(json_t *obj, const char *path, const char *key, const char **out,
                       mr_code (*parse)(const char *, mr_id *, mr_err *), mr_err *err)
{
    mr_code rc = mr_msg_need_string(obj, path, key, out, err);
    if (rc == MR_OK && (rc = parse(*out, NULL, err)) != MR_OK)
        mr_err_prefix(err, "%s%s", path, key);
    return rc;
}

mr_code mr_msg_need_user(json_t *obj, const char *path, const char *key, const char **out, mr_err *err)
{
    return need_id(obj, path, key, out, mr_id_parse_user, err);
}

mr_code mr_msg_need_room_id(json_t *obj, const char *path, const char *key, const char **out, mr_err *err)
{
    return need_id(obj, path, key, out, mr_id_parse_room_id, err);
}

mr_code mr_msg_load(const char *value, size_t len, const char *type, json_t **out, mr_err *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *r = json_loadb(value, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r)
        return mr_err_set(err, MR_EINVAL, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    mr_code rc = mr_proto_check(type, r, err);
    if (rc != MR_OK) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return MR_OK;
}

void mr_msg_event_read(json_t *event, mr_msg_event *out)
{
    out->event_id = mr_msg_string(event, "event_id");
    out->sender = mr_msg_string(event, "sender");
    out->type = mr_msg_string(event, "type");
    out->state_key = mr_msg_string(event, "state_key");
    out->content = json_object_get(event, "content");
}

bool mr_msg_entity_echo_read(json_t *event, bool from_router)
{
    mr_msg_event e;
    mr_msg_event_read(event, &e);
    if (!e.type || strcmp(e.type, "m.room.message") != 0 || e.state_key)
        return true;
    return from_router && mr_msg_string(e.content, "com.mindroom.original_sender") != NULL;
}
