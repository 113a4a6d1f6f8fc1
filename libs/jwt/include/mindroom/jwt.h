/* jwt.h -- JWT verification against a JWKS endpoint: RSA and EC keys from JWKs, parsed into
 * OpenSSL keys once per fetch; signatures checked by OpenSSL (EVP_DigestVerify) with the
 * algorithm the key allows; claims checked here. libjwt is not used: it takes the algorithm
 * from the token and parses a PEM key on every call. */
#ifndef MINDROOM_JWT_H
#define MINDROOM_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mindroom/err.h"

/* Error codes of this library:
 *   MR_EAUTH     the token is invalid (any reason); err->msg says why, never quoting the token
 *   MR_EUNAVAIL  the JWKS could not be fetched or held no usable key; the token may be fine
 *   MR_EINVAL    bad options or a malformed JWKS document given to mr_jwt_keyset_parse
 *   MR_ENOMEM */

/* ---- key sets --------------------------------------------------------------------------- */

/* The usable keys of a JWKS document, each parsed into an OpenSSL key (with a verify context
 * per algorithm, made here once) and the algorithms it allows:
 *   RSA (n, e; modulus >= 2048 bits)  RS256, RS384, RS512 (only its "alg" when present)
 *   EC P-256 (x, y)                   ES256
 *   EC P-384 (x, y)                   ES384
 * A key with "use" other than "sig", "key_ops" without "verify", an "alg" its type cannot
 * have, another kty (symmetric "oct" keys above all), a kid seen before, or a field that does
 * not decode is skipped, and the reason kept. */
typedef struct mr_jwt_keyset mr_jwt_keyset;

/* Parses a JWKS ({"keys": [...]}). MR_EINVAL when the document is not one, or when no key is
 * usable (the message lists why each was skipped). mr_jwt_keyset_free drops the caller's
 * reference; a verifier checking a token with the set holds its own. */
mr_code mr_jwt_keyset_parse(const char *json, size_t len, mr_jwt_keyset **out, mr_err *err);
void mr_jwt_keyset_free(mr_jwt_keyset *ks);

size_t mr_jwt_keyset_count(const mr_jwt_keyset *ks);
/* Key i (< count): its kid (NULL when it has none), its PEM (SubjectPublicKeyInfo), and the
 * algorithms it allows as a space-separated list ("RS256 RS384 RS512", "ES256"). */
const char *mr_jwt_keyset_kid(const mr_jwt_keyset *ks, size_t i);
const char *mr_jwt_keyset_pem(const mr_jwt_keyset *ks, size_t i);
const char *mr_jwt_keyset_algs(const mr_jwt_keyset *ks, size_t i);
/* Keys skipped: how many, and why key i of those was ("keys[2] (kid \"a\"): use is \"enc\""). */
size_t mr_jwt_keyset_skipped_count(const mr_jwt_keyset *ks);
const char *mr_jwt_keyset_skipped(const mr_jwt_keyset *ks, size_t i);

/* ---- fetching --------------------------------------------------------------------------- */

/* Fetches the document at url within timeout_ms into *body (malloc'd, NUL-terminated, *len
 * excluding the NUL). Failures are MR_EUNAVAIL with a message naming the URL. */
typedef mr_code (*mr_jwt_fetch_fn)(void *ctx, const char *url, long timeout_ms, char **body,
                                   size_t *len, mr_err *err);

/* The default fetcher, through libs/http: GET without redirects, HTTP 200 only, body at most
 * MR_JWT_JWKS_MAX bytes. ctx is unused. */
mr_code mr_jwt_fetch_http(void *ctx, const char *url, long timeout_ms, char **body, size_t *len,
                          mr_err *err);

#define MR_JWT_JWKS_MAX (1024 * 1024)

/* Wall-clock time in milliseconds since the Unix epoch. */
typedef int64_t (*mr_jwt_clock_fn)(void *ctx);

/* ---- the verifier ----------------------------------------------------------------------- */

typedef struct mr_jwt_options {
    const char *jwks_url;  /* https://..., or http:// to a loopback host (127.0.0.1, ::1, localhost) */
    const char *issuer;    /* "iss" must equal it */
    const char *audience;  /* "aud" must equal it, or be a list holding it */
    /* Claims that must be present as non-empty strings, returned in mr_jwt_identity; NULL when
     * not required. email_claim defaults to "email". */
    const char *email_claim;
    const char *user_id_claim;
    const char *matrix_user_id_claim;
    long leeway_s;          /* allowed clock skew for exp, nbf, iat; default 30 */
    long fetch_timeout_ms;  /* whole JWKS request; default 5000 */
    long cache_ttl_ms;      /* a fetched key set is fresh this long; default 60000 */
    /* At least this long between two fetches prompted by a kid not in the cache, and before
     * retrying a fetch that failed; default 10000, at least 1000. Fetches are single-flight:
     * one at a time, whatever the number of threads. */
    long refetch_floor_ms;
    /* While refetching fails, the last good set stays in use this long past its TTL (Envoy's
     * jwt_authn likewise keeps its JWKS when a refresh fails); default 300000, 0 for none. */
    long stale_grace_ms;
    size_t max_token_bytes; /* default 16384 */
    mr_jwt_fetch_fn fetch;  /* default mr_jwt_fetch_http */
    void *fetch_ctx;
    mr_jwt_clock_fn clock;  /* default CLOCK_REALTIME */
    void *clock_ctx;
} mr_jwt_options;

/* Fills o with the defaults above and no URL, issuer or audience. */
void mr_jwt_options_init(mr_jwt_options *o);

/* One verifier per JWKS URL; mr_jwt_verify may be called from any number of threads. Strings
 * in o are copied. MR_EINVAL names the option at fault. Nothing is fetched before the first
 * token. */
typedef struct mr_jwt_verifier mr_jwt_verifier;

mr_code mr_jwt_verifier_new(const mr_jwt_options *o, mr_jwt_verifier **out, mr_err *err);
void mr_jwt_verifier_free(mr_jwt_verifier *v);

/* What a valid token says. Strings are malloc'd; free with mr_jwt_identity_free. */
typedef struct mr_jwt_identity {
    char *email;          /* NULL when email_claim is NULL, likewise for the two below */
    char *user_id;
    char *matrix_user_id;
    char *subject;        /* "sub" when it is a string, else NULL */
    char *kid;            /* the key that signed it, NULL when it had no kid */
    char alg[8];          /* "RS256", "ES256", ... */
    int64_t exp;          /* seconds since the epoch */
} mr_jwt_identity;

/* Verifies a compact JWS (header.payload.signature): size, shape (strict base64url, JSON
 * without duplicate members, typ "JWT" if any, no crit), key by kid (a token without kid only
 * when the set holds exactly one key), the header's alg against the key's, the signature, then
 * exp (required), nbf and iat (optional) with the leeway, iss, aud and the required claims. A
 * kid missing from the cache prompts a refetch, at most one per refetch_floor_ms. Header
 * members jku, x5u, jwk and x5c are ignored: nothing is fetched or trusted from a token. On
 * success fills *out (which may be NULL to only check). */
mr_code mr_jwt_verify(mr_jwt_verifier *v, const char *token, mr_jwt_identity *out, mr_err *err);
/* As mr_jwt_verify, for a thread that must not wait (an HTTP server's polling thread): when the
 * token's key would need a JWKS fetch, or another thread's fetch to end, nothing is fetched or
 * waited for; *must_wait is set and MR_EUNAVAIL returned, and the caller verifies the token with
 * mr_jwt_verify where it may wait. Otherwise as mr_jwt_verify, with *must_wait false: a token
 * whose key is cached, or that is refused before its key is looked up or for want of one no
 * fetch could bring now, is answered here. */
mr_code mr_jwt_verify_nowait(mr_jwt_verifier *v, const char *token, mr_jwt_identity *out, bool *must_wait,
                             mr_err *err);
void mr_jwt_identity_free(mr_jwt_identity *id);

typedef struct mr_jwt_stats {
    uint64_t fetches;        /* attempts, successful or not */
    uint64_t fetch_failures;
    size_t keys;             /* usable keys in the cached set (0 when none is cached) */
} mr_jwt_stats;

void mr_jwt_verifier_stats(mr_jwt_verifier *v, mr_jwt_stats *out);

#endif
