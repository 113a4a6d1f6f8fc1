/* oauth.h -- OAuth connect tokens: the agent mints one when a tool lacks credentials and
 * links the requester to /api/oauth/<provider>/authorize?connect_token=...; mindroom-upstream-auth
 * redeems it once, for that requester only, and stores the provider's credentials under them.
 * Also the digests, random tokens and PKCE challenges both sides of that flow use.
 *
 * Store keys (proto/store.md, section oauth):
 *   oauth:connect:<sha256 hex of the token>       the grant (JSON), TTL = the token's lifetime
 *   oauth:connect:<sha256 hex of the token>:used  set once when the token is redeemed
 *   oauth:cred:<provider>:<matrix user id>        the provider's token response, sealed
 * The token itself is never stored, only its SHA-256. */
#ifndef MINDROOM_OAUTH_H
#define MINDROOM_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"
#include "mindroom/store.h"

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
/* Redeems a looked-up grant, atomically across replicas: MR_EEXISTS when another request redeemed
 * it first, MR_ENOTFOUND when it has expired since. */
mr_code mr_oauth_connect_redeem(mr_store *s, const mr_oauth_connect_grant *g, mr_err *err);
void mr_oauth_connect_grant_clear(mr_oauth_connect_grant *g);

/* The credentials of a Matrix user for a provider: the provider's token response (JSON), sealed
 * under the instance secret, kept until replaced. get: MR_ENOTFOUND when there are none. */
mr_code mr_oauth_credentials_put(mr_store *s, const char *user_id, const char *provider,
                                 const char *json, size_t len, mr_err *err);
mr_code mr_oauth_credentials_get(mr_store *s, const char *user_id, const char *provider,
                                 char **json, size_t *len, mr_err *err);

/* MR_EINVAL unless name is [a-z0-9_]{1,64}. */
mr_code mr_oauth_provider_check(const char *name, mr_err *err);

#endif
