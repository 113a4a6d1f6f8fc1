/* jwt_internal.h -- what the files of libs/jwt share and nobody else sees. */
#ifndef MINDROOM_JWT_INTERNAL_H
#define MINDROOM_JWT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "mindroom/jwt.h"

/* The algorithms this library verifies; JA_INVALID is every other name ("none", HMAC, PS*). */
typedef enum ja_alg {
    JA_INVALID = 0,
    JA_RS256,
    JA_RS384,
    JA_RS512,
    JA_ES256,
    JA_ES384,
    JA_COUNT,
} ja_alg;

/* One usable key, parsed once per JWKS fetch. algs is a bit set of (1u << ja_alg). For each
 * alg it allows, a verify context is prepared (key, padding, digest) at parse time; each thread
 * copies it once (sig.c), so a token costs a digest and the signature check. Read-only once the set is built, so
 * every thread may use it while it holds the set. */
typedef struct mr_jwt_key {
    char *kid;
    char *pem;         /* for mr_jwt_keyset_pem only */
    EVP_PKEY *pkey;
    EVP_PKEY_CTX *prepared[JA_COUNT];
    EVP_MD *md[JA_COUNT];
    uint64_t serial;   /* unique to this key among all ever prepared (sig.c) */
    unsigned algs;
    char algs_str[24];
} mr_jwt_key;

struct mr_jwt_keyset {
    atomic_int refs;      /* the verifier's cache and each token being checked hold one */
    mr_jwt_key *keys;
    size_t count;
    char **skipped;
    size_t nskipped;
};

struct mr_jwt_verifier {
    char *jwks_url;
    char *issuer;
    char *audience;
    char *email_claim;
    char *user_id_claim;
    char *matrix_user_id_claim;
    long leeway_s;
    long fetch_timeout_ms;
    long cache_ttl_ms;
    long refetch_floor_ms;
    size_t max_token_bytes;
    mr_jwt_fetch_fn fetch;
    void *fetch_ctx;
    mr_jwt_clock_fn clock;
    void *clock_ctx;

    long stale_grace_ms;
    /* The cache, under mu. One fetch at a time (fetching); others wait on fetched, or go on with
     * the previous set while it is within its grace. */
    pthread_mutex_t mu;
    pthread_cond_t fetched;
    mr_jwt_keyset *keys;  /* the last good set, NULL before one */
    int64_t keys_at;      /* when it was fetched */
    int64_t attempt_at;   /* when the last fetch started */
    bool attempted;
    bool fetching;
    bool last_failed;
    char last_error[MR_ERR_MSG_MAX];
    uint64_t fetches;
    uint64_t failures;
};

/* The key for kid (NULL: the only key of the set), in *held, a reference to its set (release
 * with mr_jwt_keyset_free), fetching the set when the cache is empty or old, or when kid is not
 * in it and the refetch floor allows. MR_EAUTH when no key matches, MR_EUNAVAIL when no set
 * could be had. With must_wait (else NULL), nothing is fetched or waited for: where that would
 * be needed, *must_wait is set and MR_EUNAVAIL returned. */
mr_code mr_jwt_verifier_key(mr_jwt_verifier *v, const char *kid, bool *must_wait, mr_jwt_keyset **held,
                            const mr_jwt_key **out, mr_err *err);
/* Frees what the key owns (the set frees each of its keys). */
void mr_jwt_key_clear(mr_jwt_key *k);
/* Prepares key->prepared and key->md for each alg in key->algs; false with why filled. */
bool mr_jwt_key_prepare(mr_jwt_key *key, char *why, size_t cap);

/* Base64url without padding (RFC 7515 section 2), strictly: another alphabet, '=' or a length
 * of 1 mod 4 is MR_EINVAL. *out is malloc'd with a NUL after *out_len bytes. */
mr_code mr_jwt_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len,
                             mr_err *err);

/* The algorithm named exactly `name` among those this library accepts (RS256/384/512,
 * ES256/384); JA_INVALID for any other, "none", HMAC and RSASSA-PSS included. */
ja_alg mr_jwt_alg_lookup(const char *name);

/* Checks sig over the signing input (header.payload as sent) with key's context for alg, which
 * the caller has matched to the key: RSASSA-PKCS1-v1_5, or ECDSA with the JWS r||s form
 * converted to DER (RFC 7518 3.4), all-zero halves refused. True when it verifies. */
bool mr_jwt_sig_verify(ja_alg alg, const mr_jwt_key *key, const unsigned char *input, size_t input_len,
                       const unsigned char *sig, size_t sig_len);

/* A JSON object as a JWT's header or claims: its members, read by name (json.c). */
typedef enum mr_jwt_json_kind {
    MR_JWT_JSON_STRING,
    MR_JWT_JSON_NUMBER,
    MR_JWT_JSON_TRUE,
    MR_JWT_JSON_FALSE,
    MR_JWT_JSON_NULL,
    MR_JWT_JSON_ARRAY,
    MR_JWT_JSON_OBJECT,
} mr_jwt_json_kind;

typedef struct mr_jwt_json_value {
    mr_jwt_json_kind kind;
    const char *str;      /* STRING: unescaped, NUL-terminated */
    double num;           /* NUMBER */
    const char *raw;      /* ARRAY: its text, for mr_jwt_json_array_has */
    size_t raw_len;
} mr_jwt_json_value;

typedef struct mr_jwt_json_member {
    const char *name;     /* unescaped */
    mr_jwt_json_value v;
} mr_jwt_json_member;

typedef struct mr_jwt_json {
    mr_jwt_json_member *members;
    size_t n, cap;
    char *arena;          /* the unescaped names and strings */
} mr_jwt_json;

typedef enum mr_jwt_json_status {
    MR_JWT_JSON_OK,
    MR_JWT_JSON_INVALID,     /* not JSON, or a duplicate name: why says what and where */
    MR_JWT_JSON_NOT_OBJECT,  /* JSON, but not an object */
    MR_JWT_JSON_NOMEM,
} mr_jwt_json_status;

/* Parses len bytes at text, which must be followed by a NUL, as one JSON object; on anything but
 * MR_JWT_JSON_OK, why (cap bytes) says what is wrong and *out holds nothing. The object's strings
 * live until mr_jwt_json_free; an array's raw text points into text. */
mr_jwt_json_status mr_jwt_json_parse(const char *text, size_t len, mr_jwt_json *out, char *why, size_t cap);
/* The member called name, or NULL. */
const mr_jwt_json_value *mr_jwt_json_get(const mr_jwt_json *o, const char *name);
/* The member called name when it is a string, else NULL. */
const char *mr_jwt_json_string(const mr_jwt_json *o, const char *name);
/* Whether the array holds the string want. */
bool mr_jwt_json_array_has(const mr_jwt_json_value *array, const char *want);
void mr_jwt_json_free(mr_jwt_json *o);

/* Copies s with every byte outside printable ASCII (and '"', '\\') replaced by '?', cut to
 * cap - 1 bytes: for quoting untrusted values (kid, iss, aud) in messages. Returns out. */
char *mr_jwt_quote(const char *s, char *out, size_t cap);

#endif
