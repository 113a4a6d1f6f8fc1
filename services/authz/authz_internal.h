/* authz_internal.h -- what the files of mindroom-authz share: the event in hand, room state. */
#ifndef MINDROOM_AUTHZ_INTERNAL_H
#define MINDROOM_AUTHZ_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mindroom/bus.h"
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
    const char *room_key;         /* room.key: the managed room as the instance recorded it, or NULL */
    const char *room_alias;       /* room.alias, or NULL */
    const char *member;           /* an m.room.member event: its state_key (the user) ... */
    const char *membership;       /* ... and content.membership; both NULL for other events */
} turn_event;

/* MR_EINVAL with what is wrong ("event.sender: ...") for a message that is not a valid
 * cleartext_event. */
mr_code turn_event_parse(const char *value, size_t len, turn_event *out, mr_err *err);
void turn_event_free(turn_event *ev);
/* NULL when the event becomes a turn, else why it is skipped. */
const char *turn_event_skip_reason(const turn_event *ev);

typedef struct turn_fields {
    const char *room_key;         /* NULL when the room is not managed */
    const char *room_alias;
    const char *sender;           /* canonical sender */
    bool relay;                   /* the sender is internal: carry original_sender */
    const char *const *entities;
    size_t n_entities;
    const char *const *joined;    /* an unmanaged room: the entities whose account is joined */
    size_t n_joined;
} turn_fields;

/* The turn message (JSON, malloc'd); NULL when out of memory. */
char *turn_build(const turn_event *ev, const turn_fields *f);

/* The `turn:<event_id>` markers (markers.c). A marker is written once what the decision
 * published is durable on the bus (mr_bus_when_durable), so handling the next event never waits
 * for the disk; until then the marker is waiting, and a copy of the event that comes meanwhile
 * counts as decided. The set lives until it is released and every marker is written. */
typedef struct authz_markers authz_markers;
authz_markers *authz_markers_new(mr_store *store); /* NULL when out of memory */
void authz_markers_release(authz_markers *m);
bool authz_markers_waiting(authz_markers *m, const char *key);
/* Sets key to outcome (a string constant) once everything published before the call is
 * durable; fails as mr_bus_when_durable does (a bus without a journal flushes here), and then
 * writes no marker. */
mr_code authz_markers_set_when_durable(authz_markers *m, mr_bus *bus, const char *key, const char *outcome,
                                       mr_err *err);

/* Authz's own record of rooms (proto/store.md), from the events it reads: who is joined where
 * (authz:members:<room_id>, from m.room.member events) and which room a managed key names
 * (authz:roomkey:<key>, from the room facts events carry). */
mr_code room_state_note(mr_store *s, const turn_event *ev, mr_err *err);

/* The membership answer of reply permissions' joined_rooms (an mr_authz_member_fn), reading
 * authz:members:<room_id>. A store failure answers false and is kept in rc/err, so the caller can
 * leave the message for a retry instead of deciding on missing facts. */
typedef struct room_members {
    mr_store *store;
    const char *server_name;
    const char *ns;
    mr_code rc;
    mr_err err;
} room_members;

bool room_state_is_member(void *ctx, const char *room, const char *user_id);

/* Which of the entities (names) have their managed account joined to room_id: out gets the
 * names, borrowed from names. */
mr_code room_state_joined_entities(const room_members *m, const char *room_id, const char *const *names, size_t n,
                                   const char **out, size_t *n_out, mr_err *err);

#endif
