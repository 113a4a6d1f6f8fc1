/* oauth.h -- OAuth connect tokens: the agent mints one when a tool lacks credentials and
 * links the requester to /api/oauth/<provider>/authorize?connect_token=...; mindroom-upstream-auth
 * redeems it once, for that requester only, and stores the provider's credentials under them.
 * Also the digests, random tokens and PKCE challenges both sides of that flow use.
 *
 * Store keys (proto/store.md, section oauth):
 *   oauth:connect:<sha256 hex of the token>       the grant (JSON), TTL = the token's lifetime
 *   oauth:connect:<sha256 hex of the token>:used  set once when the token is redeemed
 *   oauth:cred:<provider>:<matrix user id>        the provider's token response, sealed
 *   oauth:refresh:<provider>:<matrix user id>     held while one caller refreshes those
 * The token itself is never stored, only its SHA-256. */
#ifndef MINDROOM_OAUTH_H
#define MINDROOM_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "mindroom/err.h"
#include "mindroom/store.h"
#include "mindroom/str.h"

/* ---- tokens and digests --------------------------------------------------------------------- */

#define MR_OAUTH_SHA256_LEN 32
#define MR_OAUTH_SHA256_HEX_LEN 64
/* 32 random bytes (or a SHA-256) as base64url without padding. */
#define MR_OAUTH_TOKEN_LEN 43

/* MR_OAUTH_TOKEN_LEN characters of base64url from 32 bytes of OpenSSL's CSPRNG. */
mr_code mr_oauth_random_token(char out[MR_OAUTH_TOKEN_LEN + 1], mr_err *err);
void mr_oauth_sha256(const void *data, size_t n, unsigned char out[MR_OAUTH_SHA256_LEN]);
/* Lower-case hex SHA-256 of a string. */
void mr_oauth_sha256_hex(const char *s, char out[MR_OAUTH_SHA256_HEX_LEN + 1]);
/* The PKCE S256 code challenge of a verifier: base64url(SHA-256(verifier)), RFC 7636 section 4.2. */
void mr_oauth_pkce_challenge(const char *verifier, char out[MR_OAUTH_TOKEN_LEN + 1]);
/* Equality of two secrets (API keys, client secrets) in time that depends on neither content
 * nor length. */
bool mr_oauth_secret_equal(const char *a, const char *b);

/* ---- connect tokens ------------------------------------------------------------------------- */

#define MR_OAUTH_CONNECT_TOKEN_LEN MR_OAUTH_TOKEN_LEN
#define MR_OAUTH_CONNECT_TTL_DEFAULT_MS 600000L
#define MR_OAUTH_CONNECT_TTL_MAX_MS 3600000L
/* Provider names are [a-z0-9_]{1,64}, as in MINDROOM_OAUTH_<PROVIDER>_* and the routes. */
#define MR_OAUTH_PROVIDER_MAX 64

typedef struct mr_oauth_connect_request {
    const char *requester;  /* the Matrix user ID the tool ran for */
    const char *provider;   /* "google_drive" */
    const char *scopes;     /* space-separated scope tokens (RFC 6749 section 3.3); NULL: none */
    const char *agent;      /* the agent that asked, for the record; may be NULL */
    const char *room_id;    /* where it asked; may be NULL */
    long ttl_ms;            /* 0: MR_OAUTH_CONNECT_TTL_DEFAULT_MS; 1 to MR_OAUTH_CONNECT_TTL_MAX_MS */
} mr_oauth_connect_request;

/* Makes a token and stores its grant. MR_EINVAL names the field at fault. */
mr_code mr_oauth_connect_mint(mr_store *s, const mr_oauth_connect_request *rq,
                              char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1], mr_err *err);

/* The browser link for a token: "<base_url>/api/oauth/<provider>/authorize?connect_token=<token>",
 * or the path alone when base_url is NULL or empty. MR_EINVAL when it does not fit in cap. */
mr_code mr_oauth_connect_link(const char *base_url, const char *provider, const char *token,
                              char *out, size_t cap, mr_err *err);

/* A grant as stored; strings malloc'd (agent and room_id NULL when not given). */
typedef struct mr_oauth_connect_grant {
    char token_sha256[65];
    char *requester;
    char *provider;
    char *scopes;           /* "" when none */
    char *agent;
    char *room_id;
    long long created_at_ms;
    long long expires_at_ms;
} mr_oauth_connect_grant;

/* Reads the grant of a token without using it up. MR_EINVAL: not shaped like a token;
 * MR_ENOTFOUND: unknown or expired; MR_EEXISTS: already redeemed. */
mr_code mr_oauth_connect_lookup(mr_store *s, const char *token, mr_oauth_connect_grant *out,
                                mr_err *err);
/* mr_oauth_connect_lookup as of now_ms (ms since the epoch), for tests that move the clock
 * instead of waiting out a token's lifetime. */
mr_code mr_oauth_connect_lookup_at(mr_store *s, const char *token, long long now_ms,
                                   mr_oauth_connect_grant *out, mr_err *err);
/* Redeems a looked-up grant, atomically across replicas: MR_EEXISTS when another request redeemed
 * it first, MR_ENOTFOUND when it has expired since. */
mr_code mr_oauth_connect_redeem(mr_store *s, const mr_oauth_connect_grant *g, mr_err *err);
/* mr_oauth_connect_redeem as of now_ms, likewise. */
mr_code mr_oauth_connect_redeem_at(mr_store *s, const mr_oauth_connect_grant *g, long long now_ms, mr_err *err);
void mr_oauth_connect_grant_clear(mr_oauth_connect_grant *g);

/* The credentials of a Matrix user for a provider: the provider's token response (JSON), sealed
 * under the instance secret, kept until replaced. get: MR_ENOTFOUND when there are none. */
mr_code mr_oauth_credentials_put(mr_store *s, const char *user_id, const char *provider,
                                 const char *json, size_t len, mr_err *err);
mr_code mr_oauth_credentials_get(mr_store *s, const char *user_id, const char *provider,
                                 char **json, size_t *len, mr_err *err);

/* ---- the provider's token endpoint (token.c) ------------------------------------------------ */

/* A registered client of a provider (client_secret_post, RFC 6749 section 2.3.1). */
typedef struct mr_oauth_client {
    const char *token_url;
    const char *client_id;
    const char *client_secret;
} mr_oauth_client;

/* Appends name=value to a query or form body (application/x-www-form-urlencoded), with '&'
 * before it unless b is empty or ends in '?'. */
void mr_oauth_form_add(mr_strbuf *b, const char *name, const char *value);
/* Zeroes (it may hold secrets) and frees a form. */
void mr_oauth_form_wipe(mr_strbuf *b);

/* POSTs form, with the client's ID and secret added, to the token endpoint. MR_OK: *tokens is
 * the provider's JSON answer with an access_token, "obtained_at" (unix seconds) added.
 * MR_EAUTH: the provider refused (HTTP 400/401; the message names its RFC 6749 section 5.2
 * error code); MR_EUNAVAIL: it could not be reached or answered something else. */
mr_code mr_oauth_token_request(const mr_oauth_client *c, mr_strbuf *form, json_t **tokens, mr_err *err);
/* The authorization code grant with a PKCE verifier (RFC 6749 section 4.1.3, RFC 7636). */
mr_code mr_oauth_exchange_code(const mr_oauth_client *c, const char *code, const char *redirect_uri,
                               const char *code_verifier, json_t **tokens, mr_err *err);

/* An access token this close to its expiry (seconds) is refreshed before it is used. */
#define MR_OAUTH_REFRESH_MARGIN_S 60
/* The lifetime of the refresh lock, and how long a call waits for another's refresh. */
#define MR_OAUTH_REFRESH_LOCK_MS 15000

/* The access token of user_id for provider, refreshed first (grant_type=refresh_token, RFC 6749
 * section 6; the new credentials sealed in place of the old) when it expires within
 * MR_OAUTH_REFRESH_MARGIN_S; one refresh at a time per user and provider (oauth:refresh:, set
 * if absent), the others waiting for its result. MR_ENOTFOUND: no credentials, or they expired and cannot be
 * refreshed (no refresh token, or the provider refused it): the user must connect again.
 * MR_EUNAVAIL: the provider could not refresh them now. *access_token is malloc'd. */
mr_code mr_oauth_credentials_fresh(mr_store *s, const char *user_id, const char *provider, const mr_oauth_client *c,
                                   char **access_token, mr_err *err);

/* MR_EINVAL unless name is [a-z0-9_]{1,64}. */
mr_code mr_oauth_provider_check(const char *name, mr_err *err);

#endif
