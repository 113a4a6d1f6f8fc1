/* authz.h -- the authorization decision engine: who may be served in a room, and which users
 * each agent, team or the router may reply to (seed 003, spec/authorization.md).
 *
 * An mr_authz is compiled once from a loaded mr_config and the instance identity (server name,
 * namespace) and is then read-only: any number of threads may ask questions at once. A
 * decision performs no I/O and allocates nothing; it writes into a caller-provided
 * mr_authz_decision whose string pointers borrow from the mr_authz and from the caller's
 * arguments, so they stay valid while both do. On a config reload, compile a new mr_authz and
 * swap the pointer. */
#ifndef MINDROOM_AUTHZ_H
#define MINDROOM_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/config.h"
#include "mindroom/err.h"

typedef struct mr_authz mr_authz;

/* Which rule decided. Room-access steps carry the seed's numbers (step 3, alias resolution,
 * rewrites the sender but never decides on its own). */
typedef enum mr_authz_step {
    MR_AUTHZ_STEP_INTERNAL_USER = 1,     /* the sender is @<mindroom_user.username>:<server> */
    MR_AUTHZ_STEP_MANAGED_ENTITY = 2,    /* the sender is an agent, team or the router */
    MR_AUTHZ_STEP_GLOBAL_USERS = 4,      /* the canonical sender is in global_users */
    MR_AUTHZ_STEP_ROOM_PERMISSIONS = 5,  /* a room_permissions key matched the room */
    MR_AUTHZ_STEP_DEFAULT_ACCESS = 6,    /* no key matched: default_room_access */
    MR_AUTHZ_STEP_REPLY_UNKNOWN_ENTITY = 10, /* not an agent, team or "router": denied */
    MR_AUTHZ_STEP_REPLY_INTERNAL,        /* internal identities bypass reply permissions */
    MR_AUTHZ_STEP_REPLY_NO_POLICY,       /* neither the entity nor "*" has an entry */
    MR_AUTHZ_STEP_REPLY_ANYONE,          /* the policy lists "*" */
    MR_AUTHZ_STEP_REPLY_LISTED,          /* the canonical sender matches a user entry or glob */
    MR_AUTHZ_STEP_REPLY_JOINED_ROOM,     /* the sender is a member of a joined_rooms room */
    MR_AUTHZ_STEP_REPLY_NOT_LISTED,      /* a policy applies and nothing in it matched */
} mr_authz_step;

typedef enum mr_authz_entity_kind {
    MR_AUTHZ_ENTITY_NONE = 0,
    MR_AUTHZ_ENTITY_AGENT,
    MR_AUTHZ_ENTITY_TEAM,
    MR_AUTHZ_ENTITY_ROUTER,
    MR_AUTHZ_ENTITY_INTERNAL_USER,
} mr_authz_entity_kind;

/* The identifiers the instance knows for a room; any may be NULL. Pass the alias and key the
 * instance recorded itself, never ones read from room state other users can set. */
typedef struct mr_authz_room {
    const char *room_id;  /* "!abc:example.com" */
    const char *alias;    /* "#lobby_ab3k9xyz:example.com" */
    const char *room_key; /* "lobby": the managed room key */
} mr_authz_room;

/* Answers "is this user a member of that managed room?" for joined_rooms. room is the entry
 * as written in the config (usually a managed room key). Called on the decision path, so it
 * must be safe for the caller's threads and should not block. */
typedef bool (*mr_authz_member_fn)(void *ctx, const char *room, const char *user_id);

typedef struct mr_authz_reply_query {
    const char *entity;          /* agent name, team name or "router" */
    const char *sender;          /* the event's sender */
    const char *original_sender; /* com.mindroom.original_sender, or NULL; honoured only when
                                    sender is an internal identity */
    mr_authz_member_fn is_member;/* NULL: joined_rooms grants nobody */
    void *member_ctx;
} mr_authz_reply_query;

typedef struct mr_authz_decision {
    bool allowed;
    bool reply;                  /* a reply-permission answer (else room access) */
    mr_authz_step step;
    const char *sender;          /* as asked */
    const char *subject;         /* the user judged: sender, or the relayed original sender */
    const char *canonical;       /* subject after alias resolution; == subject if no alias */
    mr_authz_entity_kind subject_kind; /* steps 1-2 and REPLY_INTERNAL: what the subject is */
    const char *subject_entity;  /* ... and its entity name (agent/team name, "router") */
    const char *room;            /* room access: the first identifier given, for messages */
    const char *entity;          /* reply: the entity asked about */
    mr_authz_entity_kind entity_kind;
    const char *policy_entity;   /* reply: whose policy decided (a member agent for a team) */
    const char *policy_key;      /* reply: the agent_reply_permissions key used: entity or "*" */
    const char *matched;         /* the global user, room_permissions key, user entry or glob,
                                    or joined room that decided; NULL if none did */
    size_t n_members;            /* reply to a team: member agents that were checked */
} mr_authz_decision;

/* Compiles cfg for the instance `server_name` (e.g. "example.com") and namespace `ns` (NULL or
 * "" for none; normalised like MINDROOM_NAMESPACE). Keeps a reference to cfg until
 * mr_authz_free. MR_EINVAL names the bad server name, namespace or entity. */
mr_code mr_authz_new(mr_config *cfg, const char *server_name, const char *ns, mr_authz **out,
                     mr_err *err);
void mr_authz_free(mr_authz *az);

/* "May sender be served in room?" Fills *out and returns out->allowed. sender must not be
 * NULL; room may be NULL (then only steps 1-4 and the default apply). */
bool mr_authz_check_room(const mr_authz *az, const char *sender, const mr_authz_room *room,
                         mr_authz_decision *out);

/* "May q->entity reply to q->sender?" Fills *out and returns out->allowed. A team is allowed
 * only when its own policy and the policy of every member agent allow the sender. q->entity
 * and q->sender must not be NULL. */
bool mr_authz_check_reply(const mr_authz *az, const mr_authz_reply_query *q,
                          mr_authz_decision *out);

/* True for the identities the instance manages: the internal user, agents, teams, router. */
bool mr_authz_is_internal(const mr_authz *az, const char *user_id);
/* Which of them user_id is: MR_AUTHZ_ENTITY_NONE for anyone else. */
mr_authz_entity_kind mr_authz_kind_of(const mr_authz *az, const char *user_id);

/* Classifies one string as the room of `authz explain`: "!..." a room ID, "#..." a full alias,
 * anything else a managed room key. out borrows s. */
void mr_authz_room_from_string(const char *s, mr_authz_room *out);

/* One sentence saying what was decided and why, e.g.
 * "denied: room_permissions lists #lobby:example.com and @bob:example.com is not in it".
 * Returns the length snprintf would have written (truncated to cap - 1 when longer). */
int mr_authz_describe(const mr_authz_decision *d, char *buf, size_t cap);

/* Stable short name of a step, e.g. "global_users", for logs and metrics labels. */
const char *mr_authz_step_name(mr_authz_step step);

#endif
