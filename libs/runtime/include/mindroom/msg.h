/* msg.h -- reading the JSON messages services exchange on the bus: each loaded message is checked
 * against its schema in proto/schemas (libs/proto), so what a service reads needs no more checks. */
#ifndef MINDROOM_MSG_H
#define MINDROOM_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

/* The string at obj.key; NULL when obj is not an object or the value is absent or not a string. */
const char *mr_msg_string(json_t *obj, const char *key);
/* The non-empty string at obj.key into *out, or MR_EINVAL naming path and key
 * ("event.type: missing or not a non-empty string"). */
mr_code mr_msg_need_string(json_t *obj, const char *path, const char *key, const char **out, mr_err *err);
/* As mr_msg_need_string, for a Matrix user ID, and for a room ID. */
mr_code mr_msg_need_user(json_t *obj, const char *path, const char *key, const char **out, mr_err *err);
mr_code mr_msg_need_room_id(json_t *obj, const char *path, const char *key, const char **out, mr_err *err);
/* Parses value as a message of the given type: JSON (duplicate keys refused) that
 * proto/schemas/<type>.schema.json accepts; MR_EINVAL names the field otherwise. *out is its
 * root, which the caller releases with json_decref. */
mr_code mr_msg_load(const char *value, size_t len, const char *type, json_t **out, mr_err *err);

/* The fields of a room event (common.schema.json room_event) in a message mr_msg_load accepted;
 * they point into the message. state_key is NULL when the event is not a state event. */
typedef struct mr_msg_event {
    const char *event_id, *sender, *type, *state_key;
    json_t *content;
} mr_msg_event;
void mr_msg_event_read(json_t *event, mr_msg_event *out);

/* Whether anything reads back a room event (as a homeserver serves it) that an entity of the
 * instance wrote: the router, an agent or a team, not the internal user, who is a person. Of
 * the entities' m.room.message events only the router's relays are (a hand-off, a schedule's
 * trigger: content.com.mindroom.original_sender names the person it speaks for), which the
 * entity they mention answers; every other message and every edit is in the thread history
 * from when it was sent, and the agent skips its echo (services/agent/turn_run.c). Other event
 * types are read (membership, encryption, reactions, and m.room.encrypted, which only crypto
 * can read). matrix.inbound leaves out what this says nobody reads (proto/README.md). */
bool mr_msg_entity_echo_read(json_t *event, bool from_router);

#endif
