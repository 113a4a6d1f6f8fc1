/* matrix.h -- a Matrix client-server API client on libcurl and jansson: one session (user,
 * device, access token) per mr_matrix, kept-alive connections, timeouts, retries with backoff,
 * M_LIMIT_EXCEEDED honoured through retry_after_ms, and soft logout detected.
 *
 * Retries. A 429 is retried after the delay the server advertises (retry_after_ms in the body,
 * else Retry-After, else the backoff), as often as it comes unless max_rate_limited says
 * otherwise: the server told us when to come back. Transport failures and 502/503/504 are
 * retried with exponential backoff (jittered, capped) up to max_attempts, but only for requests
 * that are safe to repeat: every GET and PUT (sends carry a transaction ID), joins, invites,
 * leaves and key calls; never createRoom or a registration stage. Every wait goes through the
 * sleep callback and requests in flight watch the stopping callback, so a stopping service is
 * not held up.
 *
 * Errors. Each call returns MR_OK, or the code mr_http_result_check gives the status (401
 * MR_EAUTH, 403 MR_EPERM, 404 MR_ENOTFOUND, 429/5xx MR_EUNAVAIL, ...) with a message naming the
 * method, the URL, the status and the Matrix errcode and error; transport failures are
 * MR_EUNAVAIL. mr_matrix_last tells the errcode and whether the token was soft-logged-out.
 * Tokens and passwords never appear in messages or in the observer's view.
 *
 * Threads: an mr_matrix belongs to one thread at a time (it owns one libcurl handle). */
#ifndef MINDROOM_MATRIX_H
#define MINDROOM_MATRIX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"
#include "mindroom/http.h"

/* Room IDs, user IDs, event IDs and aliases are at most 255 bytes. */
#define MR_MATRIX_ID_SIZE 256

typedef struct mr_matrix mr_matrix;

/* Waits ms milliseconds; returns true when the caller is stopping and the call should give up. */
typedef bool (*mr_matrix_sleep_fn)(void *ctx, long ms);

/* One attempt as it happened, for metrics. endpoint is a stable short name ("send", "sync",
 * "createRoom"); status is 0 for a transport failure; errcode NULL when the reply had none. */
typedef struct mr_matrix_attempt {
    const char *endpoint;
    const char *method;
    long status;
    const char *errcode;
    double seconds;
} mr_matrix_attempt;

typedef void (*mr_matrix_observe_fn)(void *ctx, const mr_matrix_attempt *a);

typedef struct mr_matrix_opts {
    const char *homeserver;     /* base URL, "https://matrix.example.org"; required */
    const char *user_id;        /* an existing session, or NULL until login/register */
    const char *device_id;
    const char *access_token;
    long timeout_ms;            /* each request; 0 = 30 s (sync adds its long-poll timeout) */
    long connect_timeout_ms;    /* 0 = 10 s */
    int max_attempts;           /* tries of a retryable request that fails in transit or with
                                   502/503/504; 0 = 5 */
    int max_rate_limited;       /* 429s in a row before giving up; 0 = no limit */
    long backoff_ms;            /* first backoff; doubles per attempt; 0 = 500 */
    long max_backoff_ms;        /* 0 = 30 s */
    mr_matrix_sleep_fn sleep;   /* NULL: nanosleep, never stopping */
    void *sleep_ctx;
    /* Polled before each attempt and about once a second during it (a sync's long poll
     * included): true abandons the call with MR_EUNAVAIL. NULL: never. */
    bool (*stopping)(void *ctx);
    void *stopping_ctx;
    mr_matrix_observe_fn observe; /* NULL: none */
    void *observe_ctx;
} mr_matrix_opts;

/* What the last response said when it was not a success. */
typedef struct mr_matrix_status {
    long status;                /* HTTP status; 0 for a transport failure */
    char errcode[64];           /* "M_FORBIDDEN"; "" when none */
    char error[256];            /* the server's words; "" when none */
    bool soft_logout;           /* 401 M_UNKNOWN_TOKEN with soft_logout: log in again with the
                                   same device, keeping its keys */
    long long retry_after_ms;   /* advertised by the last 429; -1 when none */
} mr_matrix_status;

mr_code mr_matrix_new(const mr_matrix_opts *opts, mr_matrix **out, mr_err *err);
/* Frees m, wiping its token. NULL is a no-op. */
void mr_matrix_free(mr_matrix *m);

const mr_matrix_status *mr_matrix_last(const mr_matrix *m);
/* True when the last response carried this errcode. */
bool mr_matrix_errcode_is(const mr_matrix *m, const char *errcode);

/* The session: replaced by a successful login or registration, or set by the caller (a token
 * read back from the store). Any argument may be NULL to clear that part. */
mr_code mr_matrix_set_session(mr_matrix *m, const char *user_id, const char *device_id,
                              const char *access_token, mr_err *err);
const char *mr_matrix_user_id(const mr_matrix *m);      /* "" when none */
const char *mr_matrix_device_id(const mr_matrix *m);    /* "" when none */
/* The access token, for the caller to persist (sealed); NULL when none. */
const char *mr_matrix_access_token(const mr_matrix *m);

/* A request to any endpoint: path is under the homeserver and already percent-encoded, body
 * (may be NULL) is not taken, *out (may be NULL) gets the parsed response. endpoint names it
 * for the observer. Retried as for a GET/PUT when retry is true. */
mr_code mr_matrix_request(mr_matrix *m, const char *endpoint, const char *method, const char *path,
                          json_t *body, bool retry, json_t **out, mr_err *err);
/* Percent-encodes s for one path segment or query value into a new string (NULL when out of
 * memory). */
char *mr_matrix_escape(const char *s);

/* ---- accounts ---- */

/* GET /_matrix/client/versions; *versions (may be NULL) gets the "versions" array (a new
 * reference). MR_EINVAL when the reply has no versions list. */
mr_code mr_matrix_versions(mr_matrix *m, json_t **versions, mr_err *err);

typedef struct mr_matrix_register_req {
    const char *username;           /* localpart */
    const char *password;           /* NULL with appservice_token */
    const char *device_id;          /* NULL: the server picks one */
    const char *device_display_name;
    const char *registration_token; /* completes an m.login.registration_token stage */
    /* Open registration: a flow of m.login.dummy alone may be taken. m.login.dummy beside a
     * stage this request completes (Synapse's [registration_token, dummy]) is always done. */
    bool allow_dummy;
    /* Registers as an application service (type m.login.application_service, this token as
     * bearer, no user-interactive stages); implies inhibit_login. */
    const char *appservice_token;
    bool inhibit_login;             /* no session: only the user ID comes back */
} mr_matrix_register_req;

/* POST /register, walking the user-interactive stages of the first flow req can complete, one
 * round per stage, following the server's "completed" list and session. The new user ID goes
 * to user_id (may be NULL); unless login is inhibited the new session replaces m's.
 * M_USER_IN_USE is MR_EEXISTS; no flow req can complete is MR_EPERM naming the flows on offer;
 * a refused stage (a wrong, expired or used-up token) MR_EAUTH naming the server's errcode. */
mr_code mr_matrix_register(mr_matrix *m, const mr_matrix_register_req *req,
                           char user_id[MR_MATRIX_ID_SIZE], mr_err *err);
/* POST /register with an empty body: what a server that registers answers with a 401 (its
 * flows and session; no account is made). *challenge gets that reply (a new reference). A
 * server that does not register answers otherwise: that is the error, with its status and
 * errcode in mr_matrix_last. */
mr_code mr_matrix_register_flows(mr_matrix *m, json_t **challenge, mr_err *err);
/* Synapse's admin registration: GET a nonce from /_synapse/admin/v1/register (Synapse's are
 * 128 characters; up to 4 KiB taken, MR_EINVAL past that), then POST with the hex HMAC-SHA1 of
 * nonce NUL user NUL password NUL "admin"|"notadmin" under the shared secret. The new session
 * replaces m's. M_USER_IN_USE is MR_EEXISTS, a wrong secret MR_EPERM. */
mr_code mr_matrix_register_shared_secret(mr_matrix *m, const char *shared_secret,
                                         const char *username, const char *password,
                                         const char *displayname, bool admin,
                                         char user_id[MR_MATRIX_ID_SIZE], mr_err *err);
/* POST /login with m.login.password for user (localpart or user ID), keeping device_id when
 * given (a known device keeps its keys and transaction IDs). The session replaces m's. */
mr_code mr_matrix_login_password(mr_matrix *m, const char *user, const char *password,
                                 const char *device_id, const char *device_display_name,
                                 mr_err *err);
/* POST /login with m.login.application_service under the appservice token. */
mr_code mr_matrix_login_appservice(mr_matrix *m, const char *appservice_token, const char *user_id,
                                   const char *device_id, const char *device_display_name,
                                   mr_err *err);
/* GET /account/whoami; either output may be NULL. A token the server no longer knows is
 * MR_EAUTH (see mr_matrix_last()->soft_logout). */
mr_code mr_matrix_whoami(mr_matrix *m, char user_id[MR_MATRIX_ID_SIZE],
                         char device_id[MR_MATRIX_ID_SIZE], mr_err *err);
/* POST /logout, then clears the session. */
mr_code mr_matrix_logout(mr_matrix *m, mr_err *err);
/* GET /profile/{user}/displayname into a new string (*name NULL when none is set). */
mr_code mr_matrix_displayname_get(mr_matrix *m, const char *user_id, char **name, mr_err *err);
/* PUT /profile/{own user}/displayname. */
mr_code mr_matrix_displayname_put(mr_matrix *m, const char *name, mr_err *err);

/* ---- sync ---- */

typedef struct mr_matrix_sync_req {
    const char *filter;         /* a filter ID or inline JSON; NULL for none */
    const char *since;          /* NULL for an initial sync */
    long timeout_ms;            /* long-poll; 0 returns at once */
    bool full_state;
} mr_matrix_sync_req;

/* GET /sync; *out gets the whole response (next_batch checked to be a string). */
mr_code mr_matrix_sync(mr_matrix *m, const mr_matrix_sync_req *req, json_t **out, mr_err *err);
/* The same GET /sync driven by mu, so one thread carries many accounts' long polls: m is not
 * used otherwise until mu reports tag done (or the sync is cancelled), then
 * mr_matrix_sync_finish reads the reply. No retries: a failure comes back, and *retry_ms says
 * how long a 429 asks to wait (-1: the caller's own backoff). */
mr_code mr_matrix_sync_start(mr_matrix *m, mr_http_multi *mu, const mr_matrix_sync_req *req,
                             void *tag, mr_err *err);
/* rc and why: what mu reported for the sync. *out as mr_matrix_sync gives it. */
mr_code mr_matrix_sync_finish(mr_matrix *m, mr_code rc, const mr_err *why, json_t **out,
                              long *retry_ms, mr_err *err);
/* Abandons m's running sync in mu, if any. */
void mr_matrix_sync_cancel(mr_matrix *m, mr_http_multi *mu);
/* POST /user/{own user}/filter; the filter ID goes to id. */
mr_code mr_matrix_filter_create(mr_matrix *m, json_t *filter, char id[MR_MATRIX_ID_SIZE],
                                mr_err *err);

/* ---- rooms ---- */

/* POST /createRoom with body as given (name, room_alias_name, preset, initial_state, ...). */
mr_code mr_matrix_create_room(mr_matrix *m, json_t *body, char room_id[MR_MATRIX_ID_SIZE],
                              mr_err *err);
/* POST /join/{room ID or alias}; the joined room's ID goes to room_id (may be NULL). */
mr_code mr_matrix_join(mr_matrix *m, const char *room, char room_id[MR_MATRIX_ID_SIZE], mr_err *err);
mr_code mr_matrix_invite(mr_matrix *m, const char *room_id, const char *user_id, mr_err *err);
mr_code mr_matrix_leave(mr_matrix *m, const char *room_id, mr_err *err);
/* GET /rooms/{id}/joined_members; *joined gets the "joined" object (user ID -> profile). */
mr_code mr_matrix_joined_members(mr_matrix *m, const char *room_id, json_t **joined, mr_err *err);
/* GET /rooms/{id}/state/{type}/{key}: the content. An absent event is MR_ENOTFOUND. */
mr_code mr_matrix_state_get(mr_matrix *m, const char *room_id, const char *type, const char *key,
                            json_t **content, mr_err *err);
/* PUT /rooms/{id}/state/{type}/{key}; event_id may be NULL. */
mr_code mr_matrix_state_put(mr_matrix *m, const char *room_id, const char *type, const char *key,
                            json_t *content, char event_id[MR_MATRIX_ID_SIZE], mr_err *err);
/* PUT /rooms/{id}/send/{type}/{txn_id}: the same txn_id from the same device never makes a
 * second event, so a retried send is safe. event_id may be NULL. */
mr_code mr_matrix_send(mr_matrix *m, const char *room_id, const char *type, const char *txn_id,
                       json_t *content, char event_id[MR_MATRIX_ID_SIZE], mr_err *err);
/* PUT /rooms/{id}/redact/{event}/{txn_id}; reason may be NULL. */
mr_code mr_matrix_redact(mr_matrix *m, const char *room_id, const char *event_id, const char *txn_id,
                         const char *reason, char redaction_id[MR_MATRIX_ID_SIZE], mr_err *err);
/* PUT /rooms/{id}/typing/{own user}. */
mr_code mr_matrix_typing(mr_matrix *m, const char *room_id, bool typing, long timeout_ms,
                         mr_err *err);
/* GET /rooms/{id}/messages; from and to (a pagination or sync token to stop at) may be NULL,
 * dir is 'b' or 'f'. */
mr_code mr_matrix_messages(mr_matrix *m, const char *room_id, const char *from, const char *to,
                           char dir, int limit, json_t **out, mr_err *err);

/* ---- directory ---- */

/* GET /directory/room/{alias}. An unknown alias is MR_ENOTFOUND. */
mr_code mr_matrix_alias_get(mr_matrix *m, const char *alias, char room_id[MR_MATRIX_ID_SIZE],
                            mr_err *err);
mr_code mr_matrix_alias_put(mr_matrix *m, const char *alias, const char *room_id, mr_err *err);
/* GET/PUT /directory/list/room/{id}: published means "public". */
mr_code mr_matrix_visibility_get(mr_matrix *m, const char *room_id, bool *published, mr_err *err);
mr_code mr_matrix_visibility_put(mr_matrix *m, const char *room_id, bool published, mr_err *err);

/* ---- end-to-end encryption transport ---- */

/* PUT /sendToDevice/{type}/{txn_id} with {"messages": messages}. */
mr_code mr_matrix_send_to_device(mr_matrix *m, const char *type, const char *txn_id, json_t *messages,
                                 mr_err *err);
/* POST /keys/upload, /keys/query, /keys/claim with body as given; *out gets the reply. */
mr_code mr_matrix_keys_upload(mr_matrix *m, json_t *body, json_t **out, mr_err *err);
mr_code mr_matrix_keys_query(mr_matrix *m, json_t *body, json_t **out, mr_err *err);
mr_code mr_matrix_keys_claim(mr_matrix *m, json_t *body, json_t **out, mr_err *err);
/* POST /keys/device_signing/upload with body (master and self-signing keys). A 401 asking for
 * user-interactive auth is answered with m.login.password and password once; without a password
 * or a password flow, or when the password is refused, MR_EPERM (never MR_EAUTH: the session is
 * fine). */
mr_code mr_matrix_keys_device_signing_upload(mr_matrix *m, json_t *body, const char *password, json_t **out,
                                             mr_err *err);
/* POST /keys/signatures/upload with body; *out gets the reply (its `failures`). */
mr_code mr_matrix_keys_signatures_upload(mr_matrix *m, json_t *body, json_t **out, mr_err *err);

#endif
