/* ua_auth.c -- who sent a request: trusted upstream headers (header-only or strict JWT mode), the
 * standalone API key, or the single owner; the checks and 401 sentences of the seed, in order. */
#include "ua_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mindroom/clock.h"
#include "mindroom/ids.h"
#include "mindroom/log.h"
#include "mindroom/oauth.h"
#include "mindroom/str.h"

#define TU "MINDROOM_TRUSTED_UPSTREAM_"
#define API_KEY_COOKIE "mindroom_api_key"
#define STANDALONE_USER "standalone"
#define INVALID_JWT "Invalid trusted upstream JWT"
#define MISSING_CREDENTIALS "Missing or invalid credentials"

struct ua_auth {
    const ua_settings *s;
    mr_jwt_verifier *verifier;    /* strict mode only */
    ua_token_cache *cache;        /* NULL when off */
    size_t max_token;
    mr_jwt_clock_fn clock;
    void *clock_ctx;
    mr_http_metrics *metrics;
    atomic_uint_fast64_t hits, misses;
};

const char *ua_method_name(ua_method m)
{
    switch (m) {
    case UA_METHOD_TRUSTED_HEADERS: return "trusted_upstream";
    case UA_METHOD_TRUSTED_JWT: return "trusted_upstream_jwt";
    case UA_METHOD_API_KEY: return "api_key";
    case UA_METHOD_OPEN: return "standalone";
    }
    return "unknown";
}

void ua_identity_clear(ua_identity *id)
{
    free(id->user_id);
    free(id->email);
    free(id->matrix_user_id);
    memset(id, 0, sizeof *id);
}

static int64_t wall_clock_ms(void *ctx)
{
    (void)ctx;
    return mr_clock_wall_ms();
}

mr_code ua_auth_new(const ua_settings *s, const ua_auth_options *o, ua_auth **out, mr_err *err)
{
    *out = NULL;
    ua_auth *a = calloc(1, sizeof *a);
    if (!a)
        return mr_err_set(err, MR_ENOMEM, "out of memory for the authenticator");
    a->s = s;
    a->clock = o && o->clock ? o->clock : wall_clock_ms;
    a->clock_ctx = o ? o->clock_ctx : NULL;
    a->metrics = o ? o->metrics : NULL;
    if (s->trusted && s->require_jwt) {
        mr_jwt_options jo;
        mr_jwt_options_init(&jo);
        jo.jwks_url = s->jwks_url;
        jo.issuer = s->jwt_issuer;
        jo.audience = s->jwt_audience;
        jo.email_claim = s->jwt_email_claim;
        jo.user_id_claim = s->jwt_user_id_claim;
        jo.matrix_user_id_claim = s->jwt_matrix_user_id_claim;
        jo.leeway_s = (long)s->jwt_leeway_s;
        jo.clock = a->clock;
        jo.clock_ctx = a->clock_ctx;
        if (o && o->fetch) {
            jo.fetch = o->fetch;
            jo.fetch_ctx = o->fetch_ctx;
        }
        a->max_token = jo.max_token_bytes;
        mr_code rc = mr_jwt_verifier_new(&jo, &a->verifier, err);
        if (rc != MR_OK) {
            /* Every other option was checked with its variable already; what is left is the URL. */
            mr_err_prefix(err, TU "JWKS_URL");
            ua_auth_free(a);
            return rc;
        }
        if (s->jwt_cache_entries && !(a->cache = ua_token_cache_new(s->jwt_cache_entries))) {
            ua_auth_free(a);
            return mr_err_set(err, MR_ENOMEM, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE: out of memory for %zu entries",
                              s->jwt_cache_entries);
        }
    }
    *out = a;
    return MR_OK;
}

void ua_auth_free(ua_auth *a)
{
    if (!a)
        return;
    mr_jwt_verifier_free(a->verifier);
    ua_token_cache_free(a->cache);
    free(a);
}

void ua_auth_stats_get(ua_auth *a, ua_auth_stats *out)
{
    memset(out, 0, sizeof *out);
    out->cache_hits = atomic_load(&a->hits);
    out->cache_misses = atomic_load(&a->misses);
    if (a->verifier)
        mr_jwt_verifier_stats(a->verifier, &out->jwks);
}

/* Identity values end up in response headers, JSON bodies and logs: no control characters, and
 * valid UTF-8 by the rules jansson applies when it writes them into the JSON replies (where it
 * would refuse them and turn the request into a 500). Checked in place: the JWT header is
 * checked on every request. */
static bool clean_n(const char *v, size_t len)
{
    for (size_t i = mr_str_printable_run(v, len); i < len; i += mr_str_printable_run(v + i, len - i)) {
        size_t n = (unsigned char)v[i] >= 0x80 ? mr_utf8_seq_len(v + i) : 0;
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static bool clean(const char *v)
{
    return clean_n(v, strlen(v));
}

/* One configured header: *value is NULL when absent or empty. Sent twice it is ambiguous (which
 * copy did the gateway add?), so it is refused like a forgery. */
static mr_code header_value(ua_header_fn h, void *hctx, const char *name, size_t max, const char **value,
                            mr_err *err)
{
    size_t count = 0;
    const char *v = h(hctx, name, &count);
    *value = NULL;
    if (count > 1)
        return mr_err_set(err, MR_EAUTH, "Duplicate trusted upstream header: %s", name);
    if (!v || !*v)
        return MR_OK;
    size_t len = strlen(v);
    if (len > max)
        return mr_err_set(err, MR_EAUTH, "Trusted upstream header too long: %s", name);
    if (!clean_n(v, len))
        return mr_err_set(err, MR_EAUTH, "Invalid characters in trusted upstream header: %s", name);
    *value = v;
    return MR_OK;
}

static mr_code set_identity(ua_identity *id, ua_method m, const char *user_id, const char *email,
                            const char *matrix_user_id, mr_err *err)
{
    id->method = m;
    id->user_id = strdup(user_id);
    id->email = email ? strdup(email) : NULL;
    id->matrix_user_id = matrix_user_id ? strdup(matrix_user_id) : NULL;
    if (!id->user_id || (email && !id->email) || (matrix_user_id && !id->matrix_user_id)) {
        ua_identity_clear(id);
        return mr_err_set(err, MR_ENOMEM, "out of memory for the identity");
    }
    return MR_OK;
}

static mr_code derive(const ua_settings *s, const char *email, char out[MR_ID_MAX + 1], mr_err *err)
{
    mr_err why = {0};
    if (ua_email_to_matrix_id(s->email_template, email, out, MR_ID_MAX + 1, &why) == MR_OK)
        return MR_OK;
    return mr_err_set(err, MR_EAUTH, "Trusted upstream email does not map to a Matrix user ID: %s", why.msg);
}

static mr_code header_only(const ua_settings *s, const char *user_id, const char *email, const char *mxid,
                           ua_identity *id, mr_err *err)
{
    char derived[MR_ID_MAX + 1];
    mr_code rc;
    if (mxid) {
        if (mr_id_parse_user(mxid, NULL, NULL) != MR_OK)
            return mr_err_set(err, MR_EAUTH, "Invalid Matrix user ID in trusted upstream header: %s",
                              s->matrix_user_id_header);
    } else if (s->email_template) {
        if (!email)
            return mr_err_set(err, MR_EAUTH, "Missing trusted upstream identity header: %s", s->email_header);
        if ((rc = derive(s, email, derived, err)) != MR_OK)
            return rc;
        mxid = derived;
    }
    return set_identity(id, UA_METHOD_TRUSTED_HEADERS, user_id, email, mxid, err);
}

/* libs/jwt; with must_wait (else NULL) without waiting for a JWKS fetch (mr_jwt_verify_nowait). */
static mr_code verify_uncached(ua_auth *a, const char *token, bool *must_wait, mr_jwt_identity *claims, mr_err *err)
{
    return must_wait ? mr_jwt_verify_nowait(a->verifier, token, claims, must_wait, err)
                     : mr_jwt_verify(a->verifier, token, claims, err);
}

/* libs/jwt, behind the cache of verified tokens. A lookup handed on to be waited for is counted
 * where it is finished, once. */
static mr_code verify_token(ua_auth *a, const char *token, bool *must_wait, mr_jwt_identity *claims, mr_err *err)
{
    if (!a->cache)
        return verify_uncached(a, token, must_wait, claims, err);
    unsigned char digest[MR_OAUTH_SHA256_LEN];
    mr_oauth_sha256(token, strlen(token), digest);
    bool hit = ua_token_cache_get(a->cache, digest, a->clock(a->clock_ctx) / 1000, claims);
    mr_code rc = hit ? MR_OK : verify_uncached(a, token, must_wait, claims, err);
    if (must_wait && *must_wait)
        return rc;
    static const char *const hit_labels[] = {"result", "hit", NULL}, *const miss_labels[] = {"result", "miss", NULL};
    atomic_fetch_add(hit ? &a->hits : &a->misses, 1);
    if (a->metrics)
        mr_http_metrics_inc(a->metrics, "upstream_auth_jwt_cache_total", hit ? hit_labels : miss_labels, 1);
    if (!hit && rc == MR_OK)
        ua_token_cache_put(a->cache, digest, claims);
    return rc;
}

static mr_code mismatch(const char *header, mr_err *err)
{
    return mr_err_set(err, MR_EAUTH, "Trusted upstream identity header does not match the JWT: %s", header);
}

/* The consistency rules of strict mode, on claims libs/jwt has verified (required claims are
 * present and non-empty by then). */
static mr_code strict_identity(const ua_settings *s, const mr_jwt_identity *c, const char *user_id,
                               const char *email, const char *mxid, ua_identity *id, mr_err *err)
{
    if (!clean(c->email) || (c->user_id && !clean(c->user_id)) ||
        (c->matrix_user_id && !clean(c->matrix_user_id))) {
        mr_log_info("upstream-auth", "rejected a trusted upstream JWT: a claim holds control characters");
        return mr_err_set(err, MR_EAUTH, INVALID_JWT);
    }
    /* Without a user ID claim the email claim is the only signed identity the header can match. */
    if (strcmp(user_id, s->jwt_user_id_claim ? c->user_id : c->email) != 0)
        return mismatch(s->user_id_header, err);
    if (email && strcmp(email, c->email) != 0)
        return mismatch(s->email_header, err);
    char derived[MR_ID_MAX + 1];
    const char *signed_mxid = NULL;
    mr_code rc;
    if (s->jwt_matrix_user_id_claim) {
        if (mr_id_parse_user(c->matrix_user_id, NULL, NULL) != MR_OK) {
            mr_log_info("upstream-auth", "rejected a trusted upstream JWT: claim \"%s\" is not a Matrix user ID",
                        s->jwt_matrix_user_id_claim);
            return mr_err_set(err, MR_EAUTH, INVALID_JWT);
        }
        signed_mxid = c->matrix_user_id;
    } else if (s->email_template) {
        if ((rc = derive(s, c->email, derived, err)) != MR_OK)
            return rc;
        signed_mxid = derived;
    }
    if (mxid && !signed_mxid)
        return mr_err_set(err, MR_EAUTH, "Trusted upstream Matrix identity is not signed");
    if (mxid && strcmp(mxid, signed_mxid) != 0)
        return mismatch(s->matrix_user_id_header, err);
    return set_identity(id, UA_METHOD_TRUSTED_JWT, user_id, c->email, signed_mxid, err);
}

static mr_code strict(ua_auth *a, ua_header_fn h, void *hctx, bool *must_wait, const char *user_id,
                      const char *email, const char *mxid, ua_identity *id, mr_err *err)
{
    const ua_settings *s = a->s;
    const char *token;
    mr_code rc = header_value(h, hctx, s->jwt_header, a->max_token, &token, err);
    if (rc != MR_OK)
        return rc;
    if (!token)
        return mr_err_set(err, MR_EAUTH, "Missing trusted upstream JWT header: %s", s->jwt_header);
    mr_jwt_identity claims = {0};
    mr_err why = {0};
    rc = verify_token(a, token, must_wait, &claims, &why);
    if (must_wait && *must_wait) {
        mr_err_set(err, rc, "%s", why.msg);
    } else if (rc == MR_OK) {
        rc = strict_identity(s, &claims, user_id, email, mxid, id, err);
    } else if (rc == MR_EAUTH) {
        mr_log_info("upstream-auth", "rejected a trusted upstream JWT: %s", why.msg);
        mr_err_set(err, MR_EAUTH, INVALID_JWT);
    } else if (rc == MR_EUNAVAIL) {
        mr_log_warn("upstream-auth", "cannot verify trusted upstream JWTs: %s", why.msg);
        mr_err_set(err, MR_EUNAVAIL, "Trusted upstream JWT keys are unavailable; try again shortly");
    } else {
        mr_err_set(err, rc, "%s", why.msg);
    }
    mr_jwt_identity_free(&claims);
    return rc;
}

static mr_code trusted(ua_auth *a, ua_header_fn h, void *hctx, bool *must_wait, ua_identity *id, mr_err *err)
{
    const ua_settings *s = a->s;
    const char *user_id, *email = NULL, *mxid = NULL;
    mr_code rc = header_value(h, hctx, s->user_id_header, UA_HEADER_VALUE_MAX, &user_id, err);
    if (rc == MR_OK && !user_id)
        return mr_err_set(err, MR_EAUTH, "Missing trusted upstream identity header: %s", s->user_id_header);
    if (rc == MR_OK && s->email_header)
        rc = header_value(h, hctx, s->email_header, UA_HEADER_VALUE_MAX, &email, err);
    if (rc == MR_OK && s->matrix_user_id_header)
        rc = header_value(h, hctx, s->matrix_user_id_header, UA_HEADER_VALUE_MAX, &mxid, err);
    if (rc != MR_OK)
        return rc;
    return s->require_jwt ? strict(a, h, hctx, must_wait, user_id, email, mxid, id, err)
                          : header_only(s, user_id, email, mxid, id, err);
}

/* The value of the API key cookie in a Cookie header, as a pointer into it and a length. */
static const char *cookie_value(const char *cookies, size_t *len)
{
    const size_t name_len = strlen(API_KEY_COOKIE);
    for (const char *p = cookies; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t n = strcspn(p, ";");
        if (n > name_len && strncmp(p, API_KEY_COOKIE, name_len) == 0 && p[name_len] == '=') {
            *len = n - name_len - 1;
            return p + name_len + 1;
        }
        p += n;
    }
    return NULL;
}

/* The presented key, copied into out: a Bearer token, else the cookie. */
static bool presented_key(ua_header_fn h, void *hctx, char *out, size_t cap)
{
    size_t count = 0, len = 0;
    const char *auth = h(hctx, "Authorization", &count);
    if (count > 1)
        return false;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *k = auth + 7;
        while (*k == ' ')
            k++;
        len = strlen(k);
        if (len == 0 || len >= cap)
            return false;
        memcpy(out, k, len + 1);
        return true;
    }
    const char *cookies = h(hctx, "Cookie", &count);
    const char *k = count == 1 ? cookie_value(cookies, &len) : NULL;
    if (!k || len == 0 || len >= cap)
        return false;
    memcpy(out, k, len);
    out[len] = '\0';
    return true;
}

static mr_code standalone(ua_auth *a, ua_header_fn h, void *hctx, ua_identity *id, mr_err *err)
{
    const ua_settings *s = a->s;
    const char *user = s->owner_user_id ? s->owner_user_id : STANDALONE_USER;
    if (!s->api_key)
        return set_identity(id, UA_METHOD_OPEN, user, NULL, s->owner_user_id, err);
    char key[1024];
    if (!presented_key(h, hctx, key, sizeof key))
        return mr_err_set(err, MR_EAUTH, MISSING_CREDENTIALS);
    bool ok = mr_oauth_secret_equal(key, s->api_key);
    explicit_bzero(key, sizeof key);
    if (!ok)
        return mr_err_set(err, MR_EAUTH, "Invalid API key");
    return set_identity(id, UA_METHOD_API_KEY, user, NULL, s->owner_user_id, err);
}

mr_code ua_authenticate(ua_auth *a, ua_header_fn headers, void *hctx, bool *must_wait, ua_identity *id, mr_err *err)
{
    memset(id, 0, sizeof *id);
    if (must_wait)
        *must_wait = false;
    return a->s->trusted ? trusted(a, headers, hctx, must_wait, id, err) : standalone(a, headers, hctx, id, err);
}
