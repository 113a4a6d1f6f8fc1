/* authz_internal.h -- what the files of mindroom-authz share: the event in hand, room state. */
#ifndef MINDROOM_AUTHZ_INTERNAL_H
#define MINDROOM_AUTHZ_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mindroom/err.h"
#include "mindroom/store.h"

/* A cleartext_event, parsed and checked against its schema. Strings borrow from root. */
typedef struct turn_event {
    json_t *root;
    json_t *event;                /* root.event, copied into the turn as it is */
    const char *account;
    const char *room_id;
    const char *event_id;
    const char *sender;
    const char *type;
    bool encrypted;
    bool is_state;                /* the event has a state_key */
    const char *rel_type;         /* content.m.relates_to.rel_type, or NULL */
    const char *thread_root;      /* the event ID of an m.thread relation, or NULL */
    const char *original_sender;  /* content.com.mindroom.original_sender when a user ID, or NULL */
    bool has_new_content;         /* content.m.new_content: an edit */
    bool history;                 /* from before the account was there, or too old to answer */
} turn_event;

/* MR_EINVAL with what is wrong ("event.sender: ...") for a message that is not a valid
 * cleartext_event. */
mr_code turn_event_parse(const char *value, size_t len, turn_event *out, mr_err *err);
void turn_event_free(turn_event *ev);
/* NULL when the event becomes a turn, else why it is skipped. */
const char *turn_event_skip_reason(const turn_event *ev);

typedef struct turn_fields {
    const char *room_key;         /* NULL when the room is not managed */
    const char *sender;           /* canonical sender */
    bool relay;                   /* the sender is internal: carry original_sender */
    const char *const *entities;
    size_t n_entities;
} turn_fields;

/* The turn message (JSON, malloc'd); NULL when out of memory. */
char *turn_build(const turn_event *ev, const turn_fields *f);

/* What the gateway recorded for a room (proto/store.md); fields NULL when absent. */
typedef struct room_ids {
    char *alias;
    char *key;
} room_ids;

mr_code room_state_lookup(mr_store *s, const char *room_id, room_ids *out, mr_err *err);
void room_ids_free(room_ids *ids);

/* The membership answer of reply permissions' joined_rooms (an mr_authz_member_fn), reading
 * members:<room_id>. A store failure answers false and is kept in rc/err, so the caller can
 * leave the message for a retry instead of deciding on missing facts. */
typedef struct room_members {
    mr_store *store;
    const char *server_name;
    const char *ns;
    mr_code rc;
    mr_err err;
} room_members;

bool room_state_is_member(void *ctx, const char *room, const char *user_id);

#endif
