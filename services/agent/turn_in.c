/* turn_in.c -- reading a turn from agent.turns. */
#include "agent_run.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/msg.h"

/* A list of entity names (allowed_entities, joined_entities; the schema checked each) into
 * *out, malloc'd; an absent list is empty. */
static mr_code read_names(agent_turn *t, const char *key, const char ***out, size_t *n, mr_err *err)
{
    json_t *list = json_object_get(t->root, key);
    /* One more than needed, so an empty list is an allocation too. */
    *out = malloc((json_array_size(list) + 1) * sizeof **out);
    if (!*out)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s", key);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        (*out)[(*n)++] = json_string_value(v);
    return MR_OK;
}

/* The event the turn answers; what its content says is the sender's, so each value is checked
 * before it counts. */
static mr_code read_event(agent_turn *t, mr_err *err)
{
    mr_msg_event e;
    mr_msg_event_read(json_object_get(t->root, "event"), &e);
    if (strcmp(e.type, "m.room.message") != 0)
        return mr_err_set(err, MR_EINVAL, "event.type: \"%s\", a turn is an m.room.message", e.type);
    t->event_id = e.event_id;
    t->event_sender = e.sender;
    t->content = e.content;
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
    out->room_id = mr_msg_string(r, "room_id");
    out->sender = mr_msg_string(r, "sender");
    out->original_sender = mr_msg_string(r, "original_sender");
    out->room_key = mr_msg_string(r, "room_key");
    out->room_alias = mr_msg_string(r, "room_alias");
    out->thread_root = mr_msg_string(json_object_get(r, "thread"), "root_event_id");
    rc = read_event(out, err);
    if (rc == MR_OK && json_object_get(r, "joined_entities"))
        rc = read_names(out, "joined_entities", &out->joined, &out->n_joined, err);
    if (rc == MR_OK)
        rc = read_names(out, "allowed_entities", &out->allowed, &out->n_allowed, err);
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
