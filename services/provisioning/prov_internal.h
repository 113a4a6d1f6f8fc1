/* prov_internal.h -- what the files of mindroom-provisioning share and nothing else sees. */
#ifndef MINDROOM_PROV_INTERNAL_H
#define MINDROOM_PROV_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "mindroom/err.h"
#include "mindroom/http.h"
#include "mindroom/runtime.h"
#include "mindroom/store.h"
#include "provisioning.h"

/* Redis connections of one service: each store handle serialises its calls on its one
 * connection, so each request in flight takes a handle of its own (as many as the 16
 * connections a busy local client or proxy keeps open) instead of waiting for other requests'
 * round trips. */
#define PROV_REDIS_CONNECTIONS 16

/* The running service; handlers get it as their context. */
typedef struct prov {
    const mr_provisioning_settings *s;
    mr_store *stores[PROV_REDIS_CONNECTIONS]; /* [0] the runtime's; one for a SQLite store */
    size_t nstores;
    unsigned next_store;
    /* Handles taken by requests in flight (prov_store_take), under lease_mu. */
    pthread_mutex_t lease_mu;
    bool leased[PROV_REDIS_CONNECTIONS];
    mr_http_metrics *metrics; /* the runtime's */
} prov;

/* The store handle of the calling thread's request (prov_store_take), else the next one round
 * robin. Calls of one request on different handles each wait for their answer, so what one
 * wrote the next reads. */
mr_store *prov_store(prov *p);
/* Gives the calling thread's request the first free handle for all its calls, so its round
 * trips wait for no other request's and take no lock another holds. When every handle is taken
 * (more requests in flight than handles), or there is only one (SQLite), the request shares
 * them round robin instead of waiting. prov_store_give hands it back. */
void prov_store_take(prov *p);
void prov_store_give(prov *p);

/* How long a finished or superseded session and its code stay readable, so a late poll or a
 * second try of a used code gets "connected"/409/410 instead of 404. */
#define PROV_RETENTION_S (24 * 3600)

/* ---- pair_codes.c: codes, tokens, digests, times ---- */

#define PAIR_CODE_LEN 9         /* "ABCD-EFGH" */
#define PAIR_TOKEN_MAX 64       /* base64url of up to 47 bytes, and the NUL */
#define PAIR_CLIENT_ID_BYTES 18 /* token_urlsafe(18): 24 characters */
#define PAIR_SECRET_BYTES 32    /* token_urlsafe(32): 43 characters */
#define PAIR_NAMESPACE_LEN 8
#define PAIR_TIME_LEN 20        /* "2026-08-01T12:00:00Z" */

/* The characters of pair codes: no 0/O, 1/I look-alikes. */
extern const char pair_code_alphabet[];
/* The characters of generated namespaces: lower case, no i/l/o/0/1 look-alikes. */
extern const char pair_namespace_alphabet[];

/* A fresh code, "ABCD-EFGH", from pair_code_alphabet. */
mr_code pair_code_generate(char out[PAIR_CODE_LEN + 1], mr_err *err);
/* Strips surrounding white space and upper-cases; false unless the result matches
 * ^[A-Z0-9]{4}-[A-Z0-9]{4}$ (the wire format; the alphabet is not enforced, so a mistyped code
 * is "not found" rather than "malformed"). */
bool pair_code_normalize(const char *in, char out[PAIR_CODE_LEN + 1]);
/* nbytes random bytes as unpadded base64url (Python's secrets.token_urlsafe). */
mr_code pair_random_token(size_t nbytes, char out[PAIR_TOKEN_MAX], mr_err *err);
/* Whether s could be a token of pair_random_token: client and session IDs from requests are
 * checked with it before they go into a store key. */
bool pair_token_shape_ok(const char *s);
mr_code pair_namespace_generate(char out[PAIR_NAMESPACE_LEN + 1], mr_err *err);
/* Lower-case hex SHA-256 of the bytes. */
void pair_sha256_hex(const void *data, size_t len, char out[65]);
/* UTC seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ". */
void pair_time_format(long long t, char out[PAIR_TIME_LEN + 1]);
long long pair_now(void);

/* ---- rate_limit.c: sliding one-minute logs kept in the store ---- */

typedef struct rate_rule {
    const char *scope;   /* "complete": part of the key and of the message */
    const char *what;    /* "pair/complete requests" */
    const char *per;     /* "client address" */
    long per_minute;
} rate_rule;

extern const rate_rule rate_pair_start, rate_pair_status, rate_pair_complete, rate_connections_list,
    rate_connections_revoke, rate_register_agent;

/* The subject a client address is counted under: every spelling of one address the same, an
 * IPv4-mapped IPv6 address as its IPv4 address, and IPv6 grouped by /64 ("2001:db8::/64"). */
void rate_address_subject(const char *ip, char *out, size_t cap);
/* Admits one request of subject under rule at now_ms unless rule->per_minute were admitted in
 * the 60 s before it. *retry_after_s is 0 when admitted, else the seconds until one of those
 * leaves the window (at least 1). Refused requests are not logged. A store failure is returned
 * as is. Tests pass their own now_ms; the service passes mr_clock_wall_ms(), the times the logs hold. */
mr_code rate_limit_hit_at(prov *p, const rate_rule *rule, const char *subject, long long now_ms,
                          long *retry_after_s, mr_err *err);
mr_code rate_limit_hit(prov *p, const rate_rule *rule, const char *subject, long *retry_after_s, mr_err *err);

/* ---- connections.c: client credentials, namespaces, revocation ---- */

typedef struct conn_new {
    char id[PAIR_TOKEN_MAX];
    char secret[PAIR_TOKEN_MAX];
    char ns[PAIR_NAMESPACE_LEN + 1];
} conn_new;

/* Generates the credentials, reserves a namespace unique among connections, writes the
 * connection (only the secret's digest) and lists it under its owner. */
mr_code conn_create(prov *p, const char *owner, const char *client_name, const char *fingerprint,
                    conn_new *out, mr_err *err);
/* Undoes conn_create for a pairing that lost its claim. */
void conn_discard(prov *p, const char *owner, const conn_new *c);
/* {id, client_name, fingerprint, namespace, created_at, last_seen_at, revoked_at}; MR_ENOTFOUND
 * when absent. */
mr_code conn_describe(prov *p, const char *id, json_t **out, mr_err *err);
/* {"connections": [...]} of owner, oldest first. */
mr_code conn_list(prov *p, const char *owner, json_t **out, mr_err *err);
/* Sets revoked_at (kept from the first revocation). *found is false when id is not a
 * connection of owner. The namespace stays reserved: the accounts made under it still exist. */
mr_code conn_revoke(prov *p, const char *owner, const char *id, bool *found, mr_err *err);

typedef enum conn_auth {
    CONN_AUTH_OK,
    CONN_AUTH_MISSING,
    CONN_AUTH_INVALID,
    CONN_AUTH_REVOKED,
} conn_auth;

/* Checks local client credentials (NULLs count as missing); on CONN_AUTH_OK fills ns and
 * records last_seen_at. The secret is compared by digest in constant time, before revocation
 * is revealed. */
mr_code conn_authenticate(prov *p, const char *id, const char *secret, conn_auth *out,
                          char ns[PAIR_NAMESPACE_LEN + 1], mr_err *err);

/* ---- pairing.c: sessions and codes ---- */

/* Makes a random name with gen in out until its store key (key_of) is free, up to attempts
 * times, and sets that key to id with ttl_ms (0: kept). MR_EINTERNAL naming what when every
 * pick was taken. */
typedef mr_code (*prov_name_fn)(char *out, mr_err *err);
typedef void (*prov_key_fn)(char *key, size_t cap, const char *name);
mr_code prov_claim_name(prov *p, prov_name_fn gen, prov_key_fn key_of, const char *id, long ttl_ms, int attempts,
                        const char *what, char *out, mr_err *err);

typedef struct pair_started {
    char code[PAIR_CODE_LEN + 1];
    char session_id[PAIR_TOKEN_MAX];
    long long expires_at;
} pair_started;

/* A new pending session for user_id; the user's earlier pending session expires. */
mr_code pairing_start(prov *p, const char *user_id, pair_started *out, mr_err *err);

typedef enum pair_state { PAIR_PENDING, PAIR_CONNECTED, PAIR_EXPIRED } pair_state;

typedef struct pair_view {
    pair_state state;
    long long expires_at;
    char connection[PAIR_TOKEN_MAX]; /* "" unless connected */
} pair_view;

/* MR_ENOTFOUND when the session is unknown, gone, or not user_id's. */
mr_code pairing_status(prov *p, const char *user_id, const char *session_id, pair_view *out, mr_err *err);

typedef enum pair_outcome { PAIR_DONE, PAIR_NOT_FOUND, PAIR_GONE, PAIR_USED } pair_outcome;

typedef struct pair_done {
    conn_new conn;
    char owner[256];
} pair_done;

/* Claims the normalised code once (compare-and-set on its session: of concurrent completes
 * exactly one gets PAIR_DONE, the others PAIR_USED) and creates the connection. */
mr_code pairing_complete(prov *p, const char *code, const char *client_name, const char *fingerprint,
                         pair_outcome *outcome, pair_done *out, mr_err *err);

/* ---- homeserver.c: the Matrix calls ---- */

/* The user ID behind a Matrix access token. *valid is false when the homeserver rejects the
 * token (401/403); MR_EUNAVAIL/MR_EIO when it cannot answer. */
mr_code hs_whoami(prov *p, const char *token, char *user_id, size_t cap, bool *valid, mr_err *err);

typedef enum hs_reg { HS_REG_CREATED, HS_REG_IN_USE } hs_reg;

/* Registers username through the user-interactive flow with the registration token, then sets
 * the display name (best effort) and logs the new device out. Any failure but M_USER_IN_USE is
 * an error naming the Matrix errcode. */
mr_code hs_register(prov *p, const char *username, const char *password, const char *display_name,
                    hs_reg *result, char *user_id, size_t cap, mr_err *err);

/* ---- register_agent.c ---- */

/* \A[-a-z0-9._=/+]+\Z */
bool agent_username_charset_ok(const char *username);
/* mindroom_<entity>_<ns> with a non-empty entity of [a-z0-9_]. */
bool agent_username_in_namespace(const char *username, const char *ns);
mr_http_response *agent_register(prov *p, const mr_http_request *req);

/* ---- page.c ---- */

/* The pairing page's answer for /, /local-mindroom and /local-mindroom/...; NULL for other paths. */
mr_http_response *page_reply(prov *p, const mr_http_request *req);

/* ---- api.c: the routes and what they share ---- */

mr_http_response *api_handle(void *ctx, const mr_http_request *req);
/* 503 naming the store failure (a transient fault: the client may retry). */
mr_http_response *api_store_failure(const mr_err *err);
/* NULL when allowed; else the 429 (or 503) to send. */
mr_http_response *api_rate_limit(prov *p, const rate_rule *rule, const char *subject);
/* The request body as a JSON object, or NULL with *reply set to the 422 to send. */
json_t *api_json_body(const mr_http_request *req, mr_http_response **reply);
bool api_is_ip(const char *s);
/* The address rate limits count: the TCP peer, or, when the peer is a trusted proxy, the
 * right-most entry of X-Forwarded-For (xff, may be NULL) that is not one. */
void api_client_ip(const mr_provisioning_settings *s, const char *peer, const char *xff, char *out, size_t cap);
/* NULL with user_id filled when the request carries a Matrix access token the homeserver
 * knows; else the 401 (or 502) to send. */
mr_http_response *api_browser_user(prov *p, const mr_http_request *req, char *user_id, size_t cap);
void api_count(prov *p, const char *metric, const char *label, const char *value);

/* ---- api_pair.c ---- */

mr_http_response *api_pair_start(prov *p, const mr_http_request *req);
mr_http_response *api_pair_status(prov *p, const mr_http_request *req);
mr_http_response *api_pair_complete(prov *p, const mr_http_request *req);
mr_http_response *api_connections_list(prov *p, const mr_http_request *req);
mr_http_response *api_connections_revoke(prov *p, const mr_http_request *req, const char *id);

#endif
