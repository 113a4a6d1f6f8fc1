/* ua_internal.h -- what the files of mindroom-upstream-auth share: settings, identities, the
 * authenticator, the verified-token cache and the OAuth connect flow. */
#ifndef MINDROOM_UA_INTERNAL_H
#define MINDROOM_UA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mindroom/err.h"
#include "mindroom/http.h"
#include "mindroom/jwt.h"
#include "mindroom/store.h"

/* ---- settings (ua_settings.c) ------------------------------------------------------------ */

/* Identity header values longer than this are refused (401); the JWT header is bounded by
 * mr_jwt_options.max_token_bytes instead. */
#define UA_HEADER_VALUE_MAX 1024
#define UA_JWT_CACHE_DEFAULT 4096
/* Clock skew allowed between the gateway and us for exp, nbf and iat: libs/jwt's default. */
#define UA_JWT_LEEWAY_DEFAULT_S 30
#define UA_JWT_LEEWAY_MAX_S 300
#define UA_STATE_TTL_MS 600000L

typedef struct ua_provider {
    char *name;           /* "google_drive" */
    char *authorize_url;  /* MINDROOM_OAUTH_<NAME>_AUTHORIZE_URL */
    char *token_url;      /* MINDROOM_OAUTH_<NAME>_TOKEN_URL */
    char *client_id;      /* MINDROOM_OAUTH_<NAME>_CLIENT_ID */
    char *client_secret;  /* MINDROOM_OAUTH_<NAME>_CLIENT_SECRET; wiped on free */
    char *redirect_url;   /* MINDROOM_OAUTH_<NAME>_REDIRECT_URL, else <MINDROOM_PUBLIC_URL>/api/oauth/<name>/callback */
} ua_provider;

typedef struct ua_settings {
    bool trusted;                  /* MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED */
    bool require_jwt;              /* MINDROOM_TRUSTED_UPSTREAM_REQUIRE_JWT */
    char *user_id_header;          /* the rest of MINDROOM_TRUSTED_UPSTREAM_*; NULL when unset */
    char *email_header;
    char *matrix_user_id_header;
    char *email_template;          /* ..._EMAIL_TO_MATRIX_USER_ID_TEMPLATE */
    char *jwt_header;
    char *jwks_url;
    char *jwt_audience;
    char *jwt_issuer;
    char *jwt_email_claim;         /* "email" by default */
    char *jwt_user_id_claim;
    char *jwt_matrix_user_id_claim;
    char *api_key;                 /* MINDROOM_API_KEY; wiped on free */
    char *owner_user_id;           /* MINDROOM_OWNER_USER_ID */
    size_t jwt_cache_entries;      /* MINDROOM_UPSTREAM_AUTH_JWT_CACHE; 0 turns the cache off */
    size_t jwt_leeway_s;           /* ..._JWT_LEEWAY_SECONDS, 0 to 300, default 30 */
    ua_provider *providers;        /* MINDROOM_OAUTH_PROVIDERS, in the order listed */
    size_t n_providers;
} ua_settings;

/* Where settings come from: the runtime's env > .env lookup in the service, a table in tests.
 * NULL or "" counts as unset. */
typedef const char *(*ua_getenv_fn)(void *ctx, const char *name);

/* Reads and checks every setting; MR_EINVAL with a message that starts with the variable at
 * fault. out is cleared first and must be freed with ua_settings_free, also after a failure. */
mr_code ua_settings_load(ua_getenv_fn get, void *ctx, ua_settings *out, mr_err *err);
void ua_settings_free(ua_settings *s);
const ua_provider *ua_settings_provider(const ua_settings *s, const char *name);

/* Applies the template to an email: exactly one '@' with both sides non-empty, the part before
 * it replacing {localpart}, and the result a Matrix user ID. MR_EINVAL says which rule failed. */
mr_code ua_email_to_matrix_id(const char *tmpl, const char *email, char *out, size_t cap, mr_err *err);

/* ---- identities and the authenticator (ua_auth.c) ----------------------------------------- */

typedef enum ua_method {
    UA_METHOD_TRUSTED_HEADERS,   /* "trusted_upstream" */
    UA_METHOD_TRUSTED_JWT,       /* "trusted_upstream_jwt" */
    UA_METHOD_API_KEY,           /* "api_key" */
    UA_METHOD_OPEN,              /* "standalone": no API key configured */
} ua_method;

const char *ua_method_name(ua_method m);

/* Who is asking; strings malloc'd, email and matrix_user_id NULL when not known. */
typedef struct ua_identity {
    char *user_id;
    char *email;
    char *matrix_user_id;
    ua_method method;
} ua_identity;

void ua_identity_clear(ua_identity *id);

/* A request's headers as the authenticator sees them: the value of a header (NULL when absent)
 * and how many times it was sent. */
typedef const char *(*ua_header_fn)(void *ctx, const char *name, size_t *count);

typedef struct ua_auth_options {
    mr_jwt_fetch_fn fetch;        /* NULL: libcurl */
    void *fetch_ctx;
    mr_jwt_clock_fn clock;        /* NULL: the wall clock */
    void *clock_ctx;
    mr_http_metrics *metrics;     /* counts cache hits and misses when set (ua_metrics_declare) */
} ua_auth_options;

typedef struct ua_auth ua_auth;

/* MR_EINVAL (naming the variable) when the JWT settings are refused by libs/jwt. o may be NULL. */
mr_code ua_auth_new(const ua_settings *s, const ua_auth_options *o, ua_auth **out, mr_err *err);
void ua_auth_free(ua_auth *a);

/* Who sent a request. On MR_OK *id is filled. Otherwise err->msg is the sentence for the client
 * (never a secret, never the token) and the code gives the status: MR_EAUTH 401, MR_EUNAVAIL 503
 * (the JWKS could not be fetched), MR_ENOMEM 500. With must_wait (else NULL) nothing waits for
 * the JWKS (an HTTP polling thread): where strict mode would, *must_wait is set, nothing is
 * counted or logged, and the request is to be authenticated again where it may wait. */
mr_code ua_authenticate(ua_auth *a, ua_header_fn headers, void *hctx, bool *must_wait, ua_identity *id, mr_err *err);

typedef struct ua_auth_stats {
    uint64_t cache_hits;
    uint64_t cache_misses;
    mr_jwt_stats jwks;
} ua_auth_stats;

void ua_auth_stats_get(ua_auth *a, ua_auth_stats *out);

/* ---- verified-token cache (ua_token_cache.c) ---------------------------------------------- */

/* A bounded map from SHA-256(token) to the claims libs/jwt verified, kept until the token's exp.
 * Each slot holds one token (a newer one replaces it), so memory is fixed at creation. */
typedef struct ua_token_cache ua_token_cache;

ua_token_cache *ua_token_cache_new(size_t entries);
void ua_token_cache_free(ua_token_cache *c);
/* True, with copies of the claims in *out, when the token was verified before and now_s is
 * before its exp. */
bool ua_token_cache_get(ua_token_cache *c, const unsigned char digest[32], int64_t now_s, mr_jwt_identity *out);
void ua_token_cache_put(ua_token_cache *c, const unsigned char digest[32], const mr_jwt_identity *id);

/* ---- the OAuth connect flow (ua_oauth.c) --------------------------------------------------- */

typedef struct ua_oauth {
    const ua_settings *settings;
    mr_store *store;
    mr_http_metrics *metrics;     /* may be NULL */
} ua_oauth;

/* GET /api/oauth/<provider>/authorize?connect_token=...: 302 to the provider, or the error. */
mr_http_response *ua_oauth_authorize(const ua_oauth *o, const char *provider, const mr_http_request *req,
                                     const ua_identity *id);
/* GET /api/oauth/<provider>/callback?code=...&state=...: exchanges the code and stores the
 * credentials under the requester. */
mr_http_response *ua_oauth_callback(const ua_oauth *o, const char *provider, const mr_http_request *req,
                                    const ua_identity *id);

/* ---- HTTP (ua_routes.c) ---------------------------------------------------------------------- */

/* {"detail": "<formatted>"}, the error shape of the dashboard API; 401s carry
 * WWW-Authenticate. */
mr_http_response *ua_reply_detail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct ua_service {
    ua_settings settings;
    ua_auth *auth;
    ua_oauth oauth;
    mr_http_metrics *metrics;     /* may be NULL */
    /* upstream_auth_decisions_total's series for 200, 401, 503 and 500, looked up on first use:
     * every request is counted (ua_routes.c). */
    _Atomic(mr_http_series *) decisions[4];
} ua_service;

/* Every route but /healthz, /readyz and /metrics, which the runtime answers. ctx is a ua_service. */
mr_http_response *ua_routes_handle(void *ctx, const mr_http_request *req);
/* Declares the service's metrics; MR_OK when m is NULL. */
mr_code ua_metrics_declare(mr_http_metrics *m, mr_err *err);

#endif
