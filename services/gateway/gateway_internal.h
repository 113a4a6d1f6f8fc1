/* gateway_internal.h -- what the gateway's modules share: the managed accounts with their
 * sessions, the registration settings, metrics and the test crash points. */
#ifndef MINDROOM_GATEWAY_INTERNAL_H
#define MINDROOM_GATEWAY_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "gateway.h"
#include "mindroom/authz.h"
#include "mindroom/matrix.h"

#define GW "gateway"   /* log component */
#define GW_ENTITY_MAX 128
/* How long a wait for the bus to hold what was published may take before it counts as failed. */
#define GW_FLUSH_TIMEOUT_MS 30000
/* Every way to give the gateway its accounts, for the messages that say none worked. */
#define GW_ACCOUNT_OPTIONS                                                                         \
    "set MATRIX_REGISTRATION_SHARED_SECRET, MATRIX_REGISTRATION_TOKEN, "                           \
    "MATRIX_MANAGED_ACCOUNT_AUTH=appservice with MATRIX_APPSERVICE_TOKEN, or existing accounts "    \
    "as MATRIX_ACCOUNT_<ENTITY>_USER_ID with _PASSWORD or _ACCESS_TOKEN, or run `mindroom "         \
    "connect --pair-code ...`"

/* How managed accounts come to exist (pairing-and-run.md §3, first that applies wins). */
typedef enum gw_reg_method {
    GW_REG_PROVISIONING = 0, /* the provisioning service's register-agent */
    GW_REG_SHARED_SECRET,    /* Synapse's admin API */
    GW_REG_TOKEN,            /* m.login.registration_token */
    GW_REG_OPEN,             /* m.login.dummy */
    GW_REG_APPSERVICE,       /* MATRIX_MANAGED_ACCOUNT_AUTH=appservice */
} gw_reg_method;

typedef struct gw_settings {
    char *homeserver;
    char *server_name;
    char ns[64];
    gw_reg_method method;
    char *registration_token;
    char *shared_secret;
    char *appservice_token;
    char *provisioning_url;
    char *client_id;
    char *client_secret;
    long startup_timeout_ms;   /* waiting for /versions; 0: no limit */
    long sync_timeout_ms;      /* the long poll */
    long timeline_limit;       /* events per room in one sync */
    long backfill_max;         /* events fetched to fill one limited timeline's gap */
    long long answer_max_age_ms; /* older events are history */
} gw_settings;

/* Where an account's credentials come from. */
typedef enum gw_given {
    GW_GIVEN_NONE = 0,  /* made by the gateway: registered, its password generated */
    GW_GIVEN_PASSWORD,  /* MATRIX_ACCOUNT_<ENTITY>_PASSWORD: logged in, never registered */
    GW_GIVEN_TOKEN,     /* MATRIX_ACCOUNT_<ENTITY>_ACCESS_TOKEN: used as is */
} gw_given;

/* A managed Matrix account: the router, an agent, a team or the internal user. */
typedef struct gw_account {
    char entity[GW_ENTITY_MAX];       /* store key part: "router", agent/team name, "user" */
    char setting[GW_ENTITY_MAX + 16]; /* MATRIX_ACCOUNT_<ENTITY>, the prefix of its settings */
    gw_given given;
    char display_name[256];
    char user_id[MR_MATRIX_ID_SIZE];
    char device_id[MR_MATRIX_ID_SIZE];
    /* The session other threads copy when theirs expires; guarded by lock. */
    pthread_mutex_t lock;
    char *token;
    char *password;                   /* NULL in appservice mode and for a given token */
    unsigned long generation;         /* bumped by each new login */
    mr_matrix *m;                     /* used by the bootstrap, then by its sync loop only */
    atomic_bool synced;               /* its first batch is saved */
} gw_account;

/* Where a process test wants the gateway to die by SIGKILL (test_hooks.c). */
typedef enum gw_crash {
    GW_CRASH_NONE = 0,
    GW_CRASH_AFTER_PUBLISH, /* a batch with a message is flushed to the bus, its token not saved */
    GW_CRASH_AFTER_SEND,    /* a send is done at the homeserver, its request not acknowledged */
} gw_crash;

typedef struct gw_syncs gw_syncs;

typedef struct gw {
    const mr_runtime *rt;
    mr_config *cfg;             /* the config at start, held until the end */
    unsigned long generation;   /* of cfg, or of the last reload noted */
    mr_authz *az;
    gw_settings s;
    gw_account *accounts;
    size_t n_accounts;
    gw_account *router;
    gw_syncs *_Atomic syncs;     /* the running sync loops (sync_driver.c), or NULL */
    pthread_mutex_t pub_lock;   /* guards pub_rooms (room_publisher.c) */
    json_t *pub_rooms;
    pthread_mutex_t enc_lock;   /* guards enc_rooms (room_encryption.c) */
    json_t *enc_rooms;
    gw_crash crash;
    atomic_bool bootstrapped;
    atomic_bool send_ready;
} gw;

/* ---- accounts.c ---- */
/* Fills gw->accounts from the config (router, agents, teams, the internal user if configured). */
mr_code gw_accounts_plan(gw *g, mr_err *err);
void gw_accounts_free(gw *g);
/* Makes sure each account exists and has a working session, then its display name. */
mr_code gw_accounts_bootstrap(gw *g, mr_err *err);
gw_account *gw_account_by_user(gw *g, const char *user_id);
/* The account of the entity (router, agent, team) user_id is; NULL for the internal user, who
 * is a person, and for anyone else. */
const gw_account *gw_entity_by_user(gw *g, const char *user_id);
/* A client for account a in the calling thread, with a's current session; *gen gets the
 * session's generation. */
mr_code gw_client_new(gw *g, gw_account *a, mr_matrix **out, unsigned long *gen, mr_err *err);
/* After MR_EAUTH on m: adopts a newer session of a if another thread made one, else logs in
 * again on the same device (so keys and transaction IDs survive) and saves the token. */
mr_code gw_account_relogin(gw *g, gw_account *a, mr_matrix *m, unsigned long *gen, mr_err *err);

/* ---- given_accounts.c ---- */
/* Reads a's MATRIX_ACCOUNT_<ENTITY>_* settings: a->setting always, and when an account is
 * given its user ID, password or token. MR_EINVAL names the setting that is wrong. */
mr_code gw_given_read(gw *g, gw_account *a, mr_err *err);
/* MR_EINVAL naming the first MATRIX_ACCOUNT_* setting (environment or .env) that belongs to
 * no planned account. */
mr_code gw_given_check_unknown(gw *g, mr_err *err);

/* ---- provisioning.c ---- */
/* POST {provisioning}/v1/local-mindroom/register-agent; *in_use tells whether the username
 * was taken already. Refusals are MR_EPERM/MR_EAUTH, retryable failures MR_EUNAVAIL, and a
 * success it cannot read MR_EINVAL. */
mr_code gw_provision_register(gw *g, const char *username, const char *password,
                              const char *display_name, bool *in_use, mr_err *err);

/* ---- rooms.c ---- */
/* Resolves or creates every managed room and the root Space, records them in the store,
 * invites who belongs and has each account join its rooms. */
mr_code gw_rooms_bootstrap(gw *g, mr_err *err);

/* ---- room_access.c ---- */
typedef struct gw_access {
    const char *join_rule;      /* "invite", "public" or "knock" */
    bool publish;               /* listed in the room directory */
} gw_access;
/* What matrix_room_access asks for the managed room (key, alias, room_id may be NULL). */
gw_access gw_access_wanted(const gw *g, const char *key, const char *alias, const char *room_id);
/* Moves an existing room to what is wanted, when reconcile_existing_rooms is set; missing power
 * is a warning naming the room, the Matrix error and the power level needed, not a failure. */
mr_code gw_access_reconcile(gw *g, mr_matrix *router, const char *key, const char *alias,
                            const char *room_id, mr_err *err);

/* ---- room_publisher.c ---- */
mr_code gw_pub_init(gw *g, mr_err *err);
void gw_pub_free(gw *g);
/* Notes that user_id's sync shows it joined to room_id (or no longer: it left); *mine tells
 * whether it now publishes the room's events. */
mr_code gw_pub_note(gw *g, const char *room_id, const char *user_id, bool joined, bool *mine,
                    mr_err *err);
/* True for the first account with this event ID, and for it again (a retried batch): that
 * account publishes the event. */
bool gw_pub_claim(gw *g, const char *room_id, const char *event_id, const char *user_id);
/* The rooms user_id took over since it last asked: room ID -> the newest event ID the former
 * publisher claimed, where fetching what came after it stops (null when it claimed none).
 * NULL when out of memory. */
json_t *gw_pub_take_handovers(gw *g, const char *user_id);
/* The rooms user_id is in that another account publishes, which its syncs leave out of their
 * timelines; NULL when out of memory. */
json_t *gw_pub_others(gw *g, const char *user_id);
/* The managed room's key and alias, which every inbound event of the room carries. */
mr_code gw_pub_set_facts(gw *g, const char *room_id, const char *key, const char *alias, mr_err *err);
/* {key, alias} of a managed room (a new reference), NULL for other rooms. */
json_t *gw_pub_facts(gw *g, const char *room_id);

/* ---- room_encryption.c ---- */
mr_code gw_enc_init(gw *g, mr_err *err);
void gw_enc_free(gw *g);
/* Notes ev when it is the room's m.room.encryption state event (kept in the store); *enc, the
 * room's content as its events are published, is then replaced by ev's. */
mr_code gw_enc_note(gw *g, const char *room_id, json_t *ev, json_t **enc, mr_err *err);
/* The room's m.room.encryption content (a new reference), NULL when it is not known encrypted:
 * from memory, the store, or (once per process, when m is not NULL) the homeserver as m's
 * account sees it. MR_EUNAVAIL when the homeserver could not be asked: try again. */
mr_code gw_enc_of(gw *g, mr_matrix *m, const char *room_id, json_t **content, mr_err *err);
/* The store key of the room's m.room.encryption content, `encryption:<room_id>`. */
void gw_enc_key(const char *room_id, char key[MR_MATRIX_ID_SIZE + 16]);
/* MR_EPERM naming the room when req (a room_event send_request) is a cleartext m.room.message
 * for a room known encrypted: in memory, or by stored (len bytes), the room's gw_enc_key value
 * the caller read from the store together with what else it needed (NULL: absent), or by the
 * homeserver as for gw_enc_of. */
mr_code gw_enc_check_send(gw *g, mr_matrix *m, json_t *req, const char *stored, size_t len, mr_err *err);

/* ---- sync_parse.c ---- */
/* The event ID of a room event whole enough to travel (non-empty event_id, type and sender, an
 * integer origin_server_ts); NULL for stripped state and anything malformed. */
const char *gw_sync_event_id(json_t *ev);
/* Whether msg (a message of type built from what the homeserver sent) is one its consumers take;
 * one that is not (a room ID or sender that is no Matrix ID, say) is logged and left out, so it
 * is never published only to be refused. */
bool gw_sync_publishable(const char *type, json_t *msg);
/* origin_server_ts of user_id's latest join among events, 0 when none. */
long long gw_sync_own_join_ts(const char *user_id, json_t *events);
/* The matrix.inbound message for ev, with the room's facts when given; NULL when out of memory. */
json_t *gw_sync_inbound(const char *account, const char *room_id, json_t *ev, const char *membership,
                        bool history, json_t *facts);
/* {changed, left} when the sync reports device list changes, else NULL. */
json_t *gw_sync_device_lists(json_t *sync);
/* {one_time_key_counts, unused_fallback_key_types} of the sync; NULL when out of memory. */
json_t *gw_sync_key_counts(json_t *sync);
/* The matrix.todevice messages of a batch: one per to-device event with a non-empty type, or one
 * synthetic event when only lists or counts (may be NULL) are to carry; the first message
 * carries both. NULL when out of memory. */
json_t *gw_sync_todevice(const char *account, const char *device_id, json_t *sync, json_t *lists,
                         json_t *counts);
/* The sender of user_id's own invite among an invited room's stripped state, or NULL. */
const char *gw_sync_inviter(const char *user_id, json_t *room);

/* ---- sync_loop.c: one account's rounds ---- */
typedef struct gw_loop gw_loop;
/* NULL when out of memory. */
gw_loop *gw_loop_new(gw *g, gw_account *a);
void gw_loop_free(gw_loop *l);
gw_account *gw_loop_account(gw_loop *l);
/* Starts the round's sync in mu, which reports it done with tag (reading the account's saved
 * state on the first round). */
mr_code gw_loop_begin(gw_loop *l, mr_http_multi *mu, void *tag, mr_err *err);
/* Ends the round whose sync mu reported done with rc: publishes the batch and saves its
 * token. Returns the ms to wait before the next round (0 after a success). */
long gw_loop_end(gw_loop *l, mr_code rc, const mr_err *why);
/* After a failed round: logs it, forgets what the unsaved batch published, returns the wait
 * (retry_ms when the homeserver asked for one, else a doubling backoff). */
long gw_loop_failed(gw_loop *l, const mr_err *err, long retry_ms);

/* ---- sync_token.c: an account's saved sync token ---- */
typedef struct gw_sync_token gw_sync_token;
/* NULL when out of memory. The store must outlive the bus whose commits save the token. */
gw_sync_token *gw_sync_token_new(mr_store *store, const char *user_id);
/* Drops the caller's reference; saves still waiting for the bus keep it until they ran. */
void gw_sync_token_release(gw_sync_token *t);
/* The saved token, or NULL before the account's first batch. */
mr_code gw_sync_token_load(gw_sync_token *t, char **token, mr_err *err);
/* Saves token once everything published on bus before the call is durable, without waiting
 * for it where the bus allows (mr_bus_when_durable); a later call's token is never overwritten
 * by an earlier one's. Fails as mr_bus_when_durable does, and then saves nothing. */
mr_code gw_sync_token_save(gw_sync_token *t, mr_bus *bus, const char *token, mr_err *err);

/* ---- sync_driver.c: every account's rounds on a fixed set of threads ---- */
/* Starts the sync loops of every account; on failure *out is still to be stopped. */
mr_code gw_syncs_start(gw *g, gw_syncs **out, mr_err *err);
/* Waits for the loops to end (after mr_runtime_stop) and frees them. */
void gw_syncs_stop(gw_syncs *s);
/* Ends user_id's running long poll at once: it publishes a room now whose timeline its request
 * left out, and the homeserver would not answer it for that room. s may be NULL (no loops yet). */
void gw_syncs_kick(gw_syncs *s, const char *user_id);

/* ---- send_consumer.c ---- */
typedef struct gw_sender gw_sender;
/* Starts the matrix.send consumers. On a failure *out holds those that started (or is NULL):
 * stop the runtime, then gw_sender_stop. */
mr_code gw_sender_start(gw *g, gw_sender **out, mr_err *err);
void gw_sender_stop(gw_sender *s);

/* ---- typing_lane.c: typing notices off the rooms' send lanes ---- */
typedef struct gw_typing gw_typing;
/* A typing send_request's fields, read the one way the lane and the send both use; a request
 * without timeout_ms asks for 30 s. */
bool gw_typing_wanted(const json_t *req);
long gw_typing_timeout_ms(const json_t *req);
/* Sends req, a typing request of the account at this index, on the typing lane's thread; fails
 * as a send of the matrix.send consumer does (MR_EUNAVAIL, MR_ENOMEM: worth another try). */
typedef mr_code (*gw_typing_fn)(void *ctx, size_t account, json_t *req, mr_err *err);
/* Starts the lane's thread; on a failure *out is still to be stopped. */
mr_code gw_typing_start(gw *g, gw_typing_fn send, void *ctx, gw_typing **out, mr_err *err);
/* Takes req (a typing send_request, its reference with it) for sending, in place of one of the
 * same account and room still waiting; false, taking nothing, when the lane is full. */
bool gw_typing_queue(gw_typing *t, size_t account, json_t *req);
/* Sends what waits, ends the thread and frees the lane (its callers stopped first). */
void gw_typing_stop(gw_typing *t);

/* ---- key_requests.c ---- */
/* Whether kind is one of crypto's key API requests (keys_upload, keys_query, keys_claim). */
bool gw_keys_kind(const char *kind);
/* Makes the call and publishes the answer, or the refusal, on matrix.keys. MR_EUNAVAIL,
 * MR_ENOMEM and MR_EAUTH leave the request for another try (MR_EAUTH after a relogin). */
mr_code gw_keys_perform(gw *g, mr_matrix *m, json_t *req, const char *kind, mr_err *err);

/* ---- metrics.c ---- */
mr_code gw_metrics_declare(gw *g, mr_err *err);
/* An mr_matrix observer counting failed attempts by endpoint and errcode. */
void gw_metrics_observe(void *ctx, const mr_matrix_attempt *a);
void gw_metrics_sync_lag(gw *g, double seconds);
void gw_metrics_send(gw *g, const char *kind, const char *outcome, double seconds);
void gw_metrics_published(gw *g, const char *topic, size_t n);
/* Events of the entities the sync loops left off matrix.inbound: nothing reads them back. */
void gw_metrics_echoes(gw *g, size_t n);

/* ---- serve.c ---- */
/* A secret given directly as key or in the file key_FILE (not both); *out NULL when neither. */
mr_code gw_secret_setting(const mr_runtime *rt, const char *key, char **out, mr_err *err);
/* The mr_matrix options every client of the gateway uses (stop-aware waits, metrics). */
void gw_matrix_opts(gw *g, mr_matrix_opts *o);

/* ---- test_hooks.c: only in mindroom-gateway-testhooks, the binary the process tests run ---- */
#ifdef MR_GATEWAY_TEST_HOOKS
/* The crash point MR_GATEWAY_TEST_CRASH names (after_publish, after_send), or none. */
gw_crash gw_crash_wanted(void);
/* Dies by SIGKILL when the test asked for a crash at this point. */
void gw_crash_point(gw *g, gw_crash where);
#else
/* Shipped binaries have no crash points: nothing in them reads MR_GATEWAY_TEST_CRASH. */
static inline gw_crash gw_crash_wanted(void)
{
    return GW_CRASH_NONE;
}
static inline void gw_crash_point(gw *g, gw_crash where)
{
    (void)g;
    (void)where;
}
#endif

#endif
