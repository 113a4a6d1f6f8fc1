/* turn_in.c -- reading a turn from agent.turns. */
#include "agent_run.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/msg.h"

/* A non-empty string no longer than an identifier may be (every string field of a turn is one). */
static mr_code need_string(json_t *obj, const char *path, const char *key, const char **out, mr_err *err)
{
    mr_code rc = mr_msg_need_string(obj, path, key, out, err);
    if (rc == MR_OK && strlen(*out) > MR_ID_MAX)
        rc = mr_err_set(err, MR_EINVAL, "%s%s: longer than %d bytes", path, key, MR_ID_MAX);
    return rc;
}

static mr_code need_event_id(json_t *obj, const char *path, const char *key, const char **out, mr_err *err)
{
    mr_code rc = need_string(obj, path, key, out, err);
    if (rc == MR_OK && (*out)[0] != '$')
        rc = mr_err_set(err, MR_EINVAL, "%s%s: \"%s\" is not an event ID", path, key, *out);
    return rc;
}

/* A list of entity names (allowed_entities, joined_entities) into *out, malloc'd. */
static mr_code parse_names(agent_turn *t, const char *key, const char ***out, size_t *n, mr_err *err)
{
    json_t *list = json_object_get(t->root, key);
    if (!json_is_array(list))
        return mr_err_set(err, MR_EINVAL, "%s: missing or not an array", key);
    /* One more than needed, so an empty list is an allocation too. */
    *out = malloc((json_array_size(list) + 1) * sizeof **out);
    if (!*out)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s", key);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *name = json_string_value(v);
        if (!name || mr_id_entity_name_check(name, true, NULL) != MR_OK)
            return mr_err_set(err, MR_EINVAL, "%s[%zu]: not an entity name", key, i);
        (*out)[(*n)++] = name;
    }
    return MR_OK;
}

static mr_code parse_event(agent_turn *t, mr_err *err)
{
    json_t *e = json_object_get(t->root, "event");
    if (!json_is_object(e))
        return mr_err_set(err, MR_EINVAL, "event: missing or not an object");
    const char *type = NULL;
    mr_code rc = need_event_id(e, "event.", "event_id", &t->event_id, err);
    if (rc == MR_OK)
        rc = mr_msg_need_user(e, "event.", "sender", &t->event_sender, err);
    if (rc == MR_OK)
        rc = need_string(e, "event.", "type", &type, err);
    if (rc != MR_OK)
        return rc;
    t->content = json_object_get(e, "content");
    if (!json_is_object(t->content))
        return mr_err_set(err, MR_EINVAL, "event.content: missing or not an object");
    if (strcmp(type, "m.room.message") != 0)
        return mr_err_set(err, MR_EINVAL, "event.type: \"%s\", a turn is an m.room.message", type);
    t->body = mr_msg_string(t->content, "body");
    t->msgtype = mr_msg_string(t->content, "msgtype");
    json_t *reply = json_object_get(json_object_get(t->content, "m.relates_to"), "m.in_reply_to");
    const char *to = mr_msg_string(reply, "event_id");
    t->in_reply_to = to && to[0] == '$' && strlen(to) <= MR_ID_MAX ? to : NULL;
    return MR_OK;
}

mr_code agent_turn_parse(const char *value, size_t len, agent_turn *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    mr_code rc = mr_msg_load(value, len, "turn", &out->root, err);
    if (rc != MR_OK)
        return rc;
    json_t *r = out->root;
    if ((rc = mr_msg_need_room_id(r, "", "room_id", &out->room_id, err)) == MR_OK)
        rc = mr_msg_need_user(r, "", "sender", &out->sender, err);
    if (rc == MR_OK && json_object_get(r, "original_sender"))
        rc = mr_msg_need_user(r, "", "original_sender", &out->original_sender, err);
    if (rc == MR_OK && json_object_get(r, "room_key"))
        rc = need_string(r, "", "room_key", &out->room_key, err);
    if (rc == MR_OK && json_object_get(r, "room_alias") &&
        (rc = need_string(r, "", "room_alias", &out->room_alias, err)) == MR_OK && out->room_alias[0] != '#')
        rc = mr_err_set(err, MR_EINVAL, "room_alias: \"%s\" is not a room alias", out->room_alias);
    if (rc == MR_OK && json_object_get(r, "joined_entities"))
        rc = parse_names(out, "joined_entities", &out->joined, &out->n_joined, err);
    if (rc == MR_OK && json_object_get(r, "thread"))
        rc = need_event_id(json_object_get(r, "thread"), "thread.", "root_event_id", &out->thread_root, err);
    if (rc == MR_OK)
        rc = parse_event(out, err);
    if (rc == MR_OK)
        rc = parse_names(out, "allowed_entities", &out->allowed, &out->n_allowed, err);
    if (rc != MR_OK)
        agent_turn_free(out);
    return rc;
}

void agent_turn_free(agent_turn *t)
{
    free(t->allowed);
    free(t->joined);
    json_decref(t->root);
    memset(t, 0, sizeof *t);
}
