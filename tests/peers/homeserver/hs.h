/* hs.h -- the test homeserver's shared types: in-memory state under one read-write lock, and
 * the per-request call context the endpoint files work on. */
#ifndef MINDROOM_TEST_HS_H
#define MINDROOM_TEST_HS_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "mindroom/clock.h"
#include "mindroom/err.h"
#include "mindroom/http.h"

typedef struct hs_opts {
    const char *listen;             /* "127.0.0.1:0" */
    const char *server_name;        /* the domain of user IDs, room IDs and aliases */
    /* Synapse's registration_requires_token with this one token: every flow starts with the
     * m.login.registration_token stage. */
    const char *registration_token;
    int registration_token_uses;    /* its uses_allowed; 0 = unlimited */
    bool registration_token_expired; /* its expiry_time lies in the past */
    const char *shared_secret;      /* enables POST /_synapse/admin/v1/register */
    long long nonce_ttl_ms;         /* Synapse's NONCE_TIMEOUT, 60 s */
    bool open_registration;         /* Synapse's enable_registration: the m.login.dummy flow */
    bool registration_rate_limit;   /* Synapse's default rc_registration on /register */
    const char *appservice_token;   /* enables m.login.application_service register and login */
} hs_opts;

typedef struct hs_device {
    const char *user_id; /* the owner's, borrowed: accounts outlive their devices */
    char *device_id;
    char *display_name;
    char *token;         /* the device's access token */
    json_t *keys;        /* device_keys as uploaded, or NULL */
    json_t *otks;        /* "algorithm:key_id" -> key */
    json_t *fallback;    /* algorithm -> {"id": "algorithm:key_id", "key": key, "used": bool} */
    json_t *inbox;       /* to-device queue: [{"pos": N, "event": {...}}] in stream order */
    json_t *txns;        /* request path -> response body, for idempotent PUTs */
    json_t *xsigs;       /* cross-signatures of keys: user_id -> key_id -> signature, or NULL */
} hs_device;

typedef struct hs_user {
    char *user_id;
    char *password;
    char *displayname;
    bool admin;
    long long keys_pos;  /* stream position of the last device list change */
    json_t *xsign;       /* cross-signing keys: {master, self_signing, user_signing}, or NULL */
    hs_device **devices;
    size_t ndevices;
    json_t *filters;     /* array; the filter ID is the index */
    long long timeline_served; /* timeline events its syncs carried, for /_test/state (atomic:
                                  syncs add to it holding the lock for reading) */
    struct hs_room **rooms; /* every room it has a membership in, so a sync looks at those only */
    size_t nrooms;
} hs_user;

typedef struct hs_event {
    json_t *ev;          /* the event in client format */
    long long pos;       /* stream position */
    char *txn_device;    /* device of the sender that sent it with txn_id, for its own syncs */
    char *txn_id;
} hs_event;

typedef struct hs_room {
    char *room_id;
    hs_event *events;
    size_t nevents, cap;
    json_t *state;       /* type -> state_key -> index into events */
    bool published;      /* listed in the public room directory */
    json_t *typing;      /* user_id -> expiry (monotonic ms) */
    long long typing_pos;
    long long member_pos;  /* stream position of its latest m.room.member event */
} hs_room;

typedef struct hs {
    hs_opts opts;
    /* Requests hold it for writing; a /sync builds its response and checks for news holding it
     * for reading, so many build side by side and none holds up the server while it waits.
     * Writers are preferred, so a thousand long polls do not starve a send. */
    pthread_rwlock_t lock;
    pthread_mutex_t wake_lock; /* with changed and wakes: hs_wait / hs_wake */
    pthread_cond_t changed;  /* broadcast by hs_wake: pos moved, a hold ended, stop */
    unsigned long wakes;     /* hs_wake calls so far (atomic) */
    bool stopping;
    long long pos;           /* the stream: every event, to-device message, typing or key change */
    long long keys_pos_max;  /* the latest keys_pos of any user */
    unsigned long tokens_gen; /* moves when a token stops working (logout, new token, soft logout) */
    hs_user **users;
    size_t nusers;
    hs_room **rooms;
    size_t nrooms;
    json_t *aliases;         /* "#a:server" -> {"room_id": ..., "creator": ...} */
    json_t *uia;             /* session -> {"completed": [...], "token": T once its stage passed} */
    int token_pending;       /* registrations whose token stage passed, not yet completed */
    int token_completed;     /* registrations completed with the token */
    json_t *nonces;          /* admin registration nonce -> when it was made (hs_now_ms) */
    long long frozen_ms;     /* once /_test/clock is used, the clock stands here: tests expire
                                things by moving it, without sleeping or racing it */
    double reg_count;        /* rc_registration's bucket: registrations counted ... */
    long long reg_start_ms;  /* ... since this hs_now_ms */
    json_t *soft_tokens;     /* tokens ended by /_test/soft_logout: 401 with soft_logout true */
    /* Tokens of appservice logins for users not registered yet: token -> {user_id, device_id,
     * display_name}. Refused until the user registers, then they are that user's devices. */
    json_t *orphan_tokens;
    int syncs_waiting;       /* long polls asleep right now, so tests can act after they wait
                                (atomic: changed holding the lock for reading) */
    int limit_count;         /* requests still to be refused with 429 */
    long long limit_retry_ms;
    char *held_room;         /* /_test/hold: sends into this room wait until it is released */
    char *held_typing_room;  /* /_test/hold_typing: typing PUTs into this room wait likewise */
    int typing_waiting;      /* typing PUTs held right now (changed holding the lock for writing) */
} hs;

/* What an endpoint gets: the request, path captures, the parsed body and the caller. */
typedef struct hs_call {
    hs *h;
    const mr_http_request *req;
    const char *cap[4];
    json_t *body;            /* JSON object, for routes that take one */
    hs_user *user;           /* for routes that need an access token */
    hs_device *device;
    hs_room *room;           /* for routes that need the caller joined to the room in cap[0] */
} hs_call;

typedef mr_http_response *(*hs_endpoint)(hs_call *c);

/* ---- hs_state.c: the model ---- */
mr_code hs_init(hs *h, const hs_opts *opts, mr_err *err);
void hs_free(hs *h);
long long hs_bump(hs *h);                 /* next stream position; wakes waiting syncs */
/* Wakes every hs_wait; called holding the lock for writing. */
void hs_wake(hs *h);
/* Gives up the lock (held for writing when write, else for reading), sleeps until hs_wake or
 * deadline (NULL: none), and takes it back the same way; false when the deadline passed first. */
bool hs_wait(hs *h, bool write, const struct timespec *deadline);
/* u's device list changed: a new stream position, and keys_pos_max. */
void hs_keys_changed(hs *h, hs_user *u);
long long hs_now_ms(const hs *h);         /* wall clock, or where /_test/clock set it */
void hs_random_id(char *out, size_t len, const char *alphabet); /* len chars + NUL */

hs_user *hs_user_find(hs *h, const char *user_id);
/* A new account; it adopts the devices of orphan_tokens issued for its user ID. */
hs_user *hs_user_create(hs *h, const char *localpart, const char *password);
hs_device *hs_device_create(hs_user *u, const char *device_id, const char *display_name);
bool hs_device_retoken(hs_device *d);     /* a fresh access token; false when out of memory */
void hs_token_new(char out[41]);          /* "syt_" and 36 random characters */
void hs_device_remove(hs *h, hs_user *u, hs_device *d);
bool hs_token_find(hs *h, const char *token, hs_user **u, hs_device **d);
/* Synapse's contains_invalid_mxid_characters, negated: only a-z 0-9 . _ = / + - */
bool hs_localpart_chars_valid(const char *localpart);
/* "@name:server" or "name" (when server is ours) -> our user ID in out. */
bool hs_user_id_from(const hs *h, const char *name, char *out, size_t cap);

hs_room *hs_room_find(hs *h, const char *room_id);
hs_room *hs_room_new(hs *h);
/* Current state event (type, key) or NULL; its content or NULL. */
const hs_event *hs_state_get(const hs_room *r, const char *type, const char *key);
json_t *hs_state_content(const hs_room *r, const char *type, const char *key);
const char *hs_membership(const hs_room *r, const char *user_id); /* "join", ..., or NULL */
long long hs_membership_pos(const hs_room *r, const char *user_id);
/* Appends an event (state when state_key is non-NULL), taking content; returns it, or NULL
 * when out of memory. txn_dev and txn_id (may be NULL) mark it as sent by that device. */
hs_event *hs_room_append(hs *h, hs_room *r, const char *sender, const char *type,
                         const char *state_key, json_t *content, const hs_device *txn_dev,
                         const char *txn_id);
/* The event as the viewer device sees it (unsigned.transaction_id on the events it sent, as
 * transaction IDs are scoped to a device): a new reference. viewer may be NULL. */
json_t *hs_event_view(const hs_event *e, const hs_device *viewer);
json_t *hs_event_stripped(const hs_event *e);
int hs_power_level(const hs_room *r, const char *user_id);
int hs_power_action(const hs_room *r, const char *action); /* "invite", "kick", "redact", ... */
/* NULL when user may send this event in r, else the 403 response. */
mr_http_response *hs_check_send(const hs_room *r, const char *user_id, const char *type,
                                const char *state_key, json_t *content);
size_t hs_count_members(const hs_room *r, const char *membership);

/* ---- hs_router.c: dispatch and shared replies ---- */
mr_http_response *hs_handle(void *ctx, const mr_http_request *req);
#define hs_error mr_http_reply_error
mr_http_response *hs_ok(json_t *body);    /* 200 with body (taken) */
/* 429 M_LIMIT_EXCEEDED "Too Many Requests" with retry_after_ms and Retry-After, as Synapse's
 * LimitExceededError. */
mr_http_response *hs_limit_exceeded(long long retry_after_ms);
/* 401 M_UNKNOWN_TOKEN, soft_logout false; why NULL for Synapse's "Unrecognised access token". */
mr_http_response *hs_unknown_token(const char *why);
/* The 401 a request with this token gets: soft_logout when it was ended by /_test/soft_logout. */
mr_http_response *hs_token_refused(hs *h, const char *token);
/* The access token of a request (Authorization: Bearer, else ?access_token=), or NULL. */
const char *hs_request_token(const mr_http_request *req);
/* Field readers: NULL when fine (out set, or left NULL for an absent optional field), else a
 * 400 M_BAD_JSON naming the field. */
mr_http_response *hs_field_str(json_t *obj, const char *key, bool required, const char **out);
mr_http_response *hs_field_obj(json_t *obj, const char *key, bool required, json_t **out);
mr_http_response *hs_field_arr(json_t *obj, const char *key, bool required, json_t **out);
/* Idempotent PUTs: the stored response body for this device and path, or NULL. */
json_t *hs_txn_get(const hs_call *c);
void hs_txn_put(const hs_call *c, json_t *response);
/* Resolves "!id" or "#alias" to a room; NULL plus *err (404) when unknown. */
hs_room *hs_room_resolve(hs_call *c, const char *id_or_alias, mr_http_response **err);
/* The room room_id when the caller has joined it, else NULL with *err (404 or 403); routes flagged
 * MEMBER get it as c->room, the rest call this after what they must check first. */
hs_room *hs_room_for_member(hs_call *c, const char *room_id, mr_http_response **err);

/* ---- endpoints, one file per area ---- */
mr_http_response *hs_versions(hs_call *c);
mr_http_response *hs_register(hs_call *c);
mr_http_response *hs_register_token_validity(hs_call *c);
mr_http_response *hs_admin_nonce(hs_call *c);
mr_http_response *hs_admin_register(hs_call *c);
mr_http_response *hs_login_flows(hs_call *c);
mr_http_response *hs_login(hs_call *c);
mr_http_response *hs_logout(hs_call *c);
mr_http_response *hs_logout_all(hs_call *c);
mr_http_response *hs_whoami(hs_call *c);
mr_http_response *hs_profile_get(hs_call *c);
mr_http_response *hs_displayname_put(hs_call *c);

mr_http_response *hs_create_room(hs_call *c);
mr_http_response *hs_join(hs_call *c);
mr_http_response *hs_invite(hs_call *c);
mr_http_response *hs_leave(hs_call *c);
mr_http_response *hs_kick(hs_call *c);
mr_http_response *hs_knock(hs_call *c);
mr_http_response *hs_joined_rooms(hs_call *c);
mr_http_response *hs_joined_members(hs_call *c);
mr_http_response *hs_state_all(hs_call *c);
mr_http_response *hs_state_read(hs_call *c);
mr_http_response *hs_state_write(hs_call *c);
mr_http_response *hs_send(hs_call *c);
mr_http_response *hs_redact(hs_call *c);
mr_http_response *hs_messages(hs_call *c);
mr_http_response *hs_typing(hs_call *c);

mr_http_response *hs_alias_get(hs_call *c);
mr_http_response *hs_alias_put(hs_call *c);
mr_http_response *hs_alias_delete(hs_call *c);
mr_http_response *hs_visibility_get(hs_call *c);
mr_http_response *hs_visibility_put(hs_call *c);
mr_http_response *hs_public_rooms(hs_call *c);

mr_http_response *hs_filter_post(hs_call *c);
mr_http_response *hs_filter_get(hs_call *c);
mr_http_response *hs_sync(hs_call *c);

json_t *hs_otk_counts(const hs_device *d);      /* {"signed_curve25519": N, ...} */
json_t *hs_fallback_types(const hs_device *d);  /* algorithms with an unused fallback key */
mr_http_response *hs_keys_upload(hs_call *c);
mr_http_response *hs_keys_query(hs_call *c);
mr_http_response *hs_keys_claim(hs_call *c);
/* ---- hs_cross_signing.c ---- */
mr_http_response *hs_keys_device_signing_upload(hs_call *c);
mr_http_response *hs_keys_signatures_upload(hs_call *c);
/* keys (a device's keys view) with the cross-signatures uploaded for d merged in; returns keys. */
json_t *hs_xsign_device_keys(const hs_device *d, json_t *keys);
/* Adds user_id's master, self-signing (and, for the caller, user-signing) keys to a /keys/query
 * reply's master_keys, self_signing_keys, user_signing_keys (out of memory: fewer keys, as a
 * query racing the upload would see). */
void hs_xsign_query(hs_call *c, const char *user_id, json_t *reply);
mr_http_response *hs_send_to_device(hs_call *c);

mr_http_response *hs_test_ratelimit(hs_call *c);
mr_http_response *hs_test_hold(hs_call *c);
mr_http_response *hs_test_hold_typing(hs_call *c);
mr_http_response *hs_test_state(hs_call *c);
mr_http_response *hs_test_soft_logout(hs_call *c);
mr_http_response *hs_test_clock(hs_call *c);
mr_http_response *hs_test_events(hs_call *c);

#endif
