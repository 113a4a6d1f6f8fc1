/* verifier.c -- the verifier's options and its JWKS cache: TTL, refetch on unknown kid with a
 * floor between fetches, one fetch at a time across threads, the last good set kept through an
 * outage for a bounded grace. */
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "jwt_internal.h"
#include "mindroom/log.h"
#include "mindroom/clock.h"

#define DEFAULT_LEEWAY_S 30
#define DEFAULT_FETCH_TIMEOUT_MS 5000
#define DEFAULT_CACHE_TTL_MS 60000
#define DEFAULT_REFETCH_FLOOR_MS 10000
#define MIN_REFETCH_FLOOR_MS 1000
#define DEFAULT_STALE_GRACE_MS 300000
#define DEFAULT_MAX_TOKEN_BYTES 16384

void mr_jwt_options_init(mr_jwt_options *o)
{
    memset(o, 0, sizeof *o);
    o->email_claim = "email";
    o->leeway_s = DEFAULT_LEEWAY_S;
    o->fetch_timeout_ms = DEFAULT_FETCH_TIMEOUT_MS;
    o->cache_ttl_ms = DEFAULT_CACHE_TTL_MS;
    o->refetch_floor_ms = DEFAULT_REFETCH_FLOOR_MS;
    o->stale_grace_ms = DEFAULT_STALE_GRACE_MS;
    o->max_token_bytes = DEFAULT_MAX_TOKEN_BYTES;
}

static int64_t realtime_ms(void *ctx)
{
    (void)ctx;
    return mr_clock_wall_ms();
}

/* Keys are public, but the channel must still be authentic: HTTPS, or plain HTTP only where
 * nobody else can answer (loopback). A user or password in the URL would reach messages. */
static mr_code check_jwks_url(const char *url, mr_err *err)
{
    CURLU *u = curl_url();
    if (!u)
        return mr_err_set(err, MR_ENOMEM, "out of memory checking jwks_url");
    char *scheme = NULL, *host = NULL, *user = NULL;
    mr_code rc = MR_OK;
    /* Any scheme parses, so one libcurl was built without is refused below by name. */
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        rc = mr_err_set(err, MR_EINVAL, "jwks_url \"%s\" is not a URL: %s", url, curl_url_strerror(uc));
    } else {
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        curl_url_get(u, CURLUPART_HOST, &host, 0);
        curl_url_get(u, CURLUPART_USER, &user, 0);
        bool loopback = host && (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
                                 strcmp(host, "localhost") == 0);
        if (user)
            rc = mr_err_set(err, MR_EINVAL, "jwks_url must not carry a user name or password");
        else if (!scheme || !(strcmp(scheme, "https") == 0 || (strcmp(scheme, "http") == 0 && loopback)))
            rc = mr_err_set(err, MR_EINVAL, "jwks_url \"%s\" must be https:// (http:// only to a loopback host)",
                            url);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

static mr_code check_options(const mr_jwt_options *o, mr_err *err)
{
    if (!o->jwks_url || !*o->jwks_url)
        return mr_err_set(err, MR_EINVAL, "jwks_url is required");
    if (!o->issuer || !*o->issuer)
        return mr_err_set(err, MR_EINVAL, "issuer is required");
    if (!o->audience || !*o->audience)
        return mr_err_set(err, MR_EINVAL, "audience is required");
    const char *claims[][2] = {{"email_claim", o->email_claim},
                               {"user_id_claim", o->user_id_claim},
                               {"matrix_user_id_claim", o->matrix_user_id_claim}};
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++)
        if (claims[i][1] && !*claims[i][1])
            return mr_err_set(err, MR_EINVAL, "%s is empty; leave it unset to not require a claim",
                              claims[i][0]);
    if (o->leeway_s < 0)
        return mr_err_set(err, MR_EINVAL, "leeway_s is %ld; it must be 0 or more", o->leeway_s);
    if (o->fetch_timeout_ms <= 0 || o->cache_ttl_ms <= 0 || o->stale_grace_ms < 0)
        return mr_err_set(err, MR_EINVAL,
                          "fetch_timeout_ms (%ld) and cache_ttl_ms (%ld) must be positive, "
                          "stale_grace_ms (%ld) 0 or more",
                          o->fetch_timeout_ms, o->cache_ttl_ms, o->stale_grace_ms);
    /* Below a second, a flood of unknown kids would become a flood of fetches. */
    if (o->refetch_floor_ms < MIN_REFETCH_FLOOR_MS)
        return mr_err_set(err, MR_EINVAL, "refetch_floor_ms is %ld; it must be at least %d",
                          o->refetch_floor_ms, MIN_REFETCH_FLOOR_MS);
    if (o->max_token_bytes == 0)
        return mr_err_set(err, MR_EINVAL, "max_token_bytes must be positive");
    return check_jwks_url(o->jwks_url, err);
}

/* strdup that keeps NULL as NULL and reports failure through *ok. */
static char *dup_opt(const char *s, bool *ok)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

mr_code mr_jwt_verifier_new(const mr_jwt_options *o, mr_jwt_verifier **out, mr_err *err)
{
    *out = NULL;
    mr_code rc = check_options(o, err);
    if (rc != MR_OK)
        return rc;
    mr_jwt_verifier *v = calloc(1, sizeof *v);
    if (!v)
        return mr_err_set(err, MR_ENOMEM, "out of memory creating the JWT verifier");
    bool ok = true;
    v->jwks_url = dup_opt(o->jwks_url, &ok);
    v->issuer = dup_opt(o->issuer, &ok);
    v->audience = dup_opt(o->audience, &ok);
    v->email_claim = dup_opt(o->email_claim, &ok);
    v->user_id_claim = dup_opt(o->user_id_claim, &ok);
    v->matrix_user_id_claim = dup_opt(o->matrix_user_id_claim, &ok);
    v->leeway_s = o->leeway_s;
    v->fetch_timeout_ms = o->fetch_timeout_ms;
    v->cache_ttl_ms = o->cache_ttl_ms;
    v->refetch_floor_ms = o->refetch_floor_ms;
    v->stale_grace_ms = o->stale_grace_ms;
    v->max_token_bytes = o->max_token_bytes;
    v->fetch = o->fetch ? o->fetch : mr_jwt_fetch_http;
    v->fetch_ctx = o->fetch_ctx;
    v->clock = o->clock ? o->clock : realtime_ms;
    v->clock_ctx = o->clock_ctx;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->fetched, NULL);
    if (!ok) {
        mr_jwt_verifier_free(v);
        return mr_err_set(err, MR_ENOMEM, "out of memory creating the JWT verifier");
    }
    *out = v;
    return MR_OK;
}

void mr_jwt_verifier_free(mr_jwt_verifier *v)
{
    if (!v)
        return;
    mr_jwt_keyset_free(v->keys);
    pthread_cond_destroy(&v->fetched);
    pthread_mutex_destroy(&v->mu);
    free(v->jwks_url);
    free(v->issuer);
    free(v->audience);
    free(v->email_claim);
    free(v->user_id_claim);
    free(v->matrix_user_id_claim);
    free(v);
}

void mr_jwt_verifier_stats(mr_jwt_verifier *v, mr_jwt_stats *out)
{
    pthread_mutex_lock(&v->mu);
    out->fetches = v->fetches;
    out->fetch_failures = v->failures;
    out->keys = v->keys ? v->keys->count : 0;
    pthread_mutex_unlock(&v->mu);
}

void mr_jwt_key_clear(mr_jwt_key *k)
{
    free(k->kid);
    free(k->pem);
    EVP_PKEY_free(k->pkey);
    for (int a = 0; a < JA_COUNT; a++) {
        EVP_PKEY_CTX_free(k->prepared[a]);
        EVP_MD_free(k->md[a]);
    }
    memset(k, 0, sizeof *k);
}

/* A clock that went backwards counts as the span having passed: one fetch too many is better
 * than a cache that never expires. */
static bool elapsed(int64_t now, int64_t since, long span_ms)
{
    return now < since || now - since >= span_ms;
}

static const mr_jwt_key *find_key(const mr_jwt_keyset *ks, const char *kid)
{
    if (!kid)
        return ks->count == 1 ? &ks->keys[0] : NULL;
    for (size_t i = 0; i < ks->count; i++)
        if (ks->keys[i].kid && strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* Fetches and parses the set without holding the lock; *ks is NULL and err filled on failure. */
static void fetch_keyset(mr_jwt_verifier *v, mr_jwt_keyset **ks, mr_err *err)
{
    char *body = NULL;
    size_t len = 0;
    *ks = NULL;
    if (v->fetch(v->fetch_ctx, v->jwks_url, v->fetch_timeout_ms, &body, &len, err) != MR_OK) {
        err->code = MR_EUNAVAIL;
    } else if (mr_jwt_keyset_parse(body, len, ks, err) != MR_OK) {
        mr_err_prefix(err, "JWKS from %s", v->jwks_url);
        err->code = MR_EUNAVAIL;
    }
    free(body);
    if (!*ks) {
        mr_log_warn("jwt", "%s", err->msg);
        return;
    }
    for (size_t i = 0; i < (*ks)->nskipped; i++)
        mr_log_warn("jwt", "JWKS from %s: skipped %s", v->jwks_url, (*ks)->skipped[i]);
}

/* Called with the lock held after a fetch: keeps a good set, or the reason it failed. A failed
 * refetch keeps the previous set, which stays in use for stale_grace_ms past its TTL. */
static void install(mr_jwt_verifier *v, mr_jwt_keyset *ks, const mr_err *fetch_err)
{
    if (ks) {
        mr_jwt_keyset_free(v->keys);
        v->keys = ks;
        v->keys_at = v->clock(v->clock_ctx);
        v->last_failed = false;
    } else {
        v->failures++;
        v->last_failed = true;
        memcpy(v->last_error, fetch_err->msg, sizeof v->last_error);
    }
    v->fetching = false;
    pthread_cond_broadcast(&v->fetched);
}

/* Called with the lock held when no fetch is allowed now: the error that explains why. A fetch
 * that failed in this very call speaks for itself; an earlier one is quoted with the wait. */
static mr_code no_key(const mr_jwt_verifier *v, bool usable, const char *kid, bool fetched_here, int64_t now,
                      mr_err *err)
{
    if (usable && kid) {
        char q[80];
        return mr_err_set(err, MR_EAUTH, "no key with kid \"%s\" in the JWKS from %s",
                          mr_jwt_quote(kid, q, sizeof q), v->jwks_url);
    }
    if (usable)
        return mr_err_set(err, MR_EAUTH, "the token has no kid and the JWKS from %s holds %zu keys",
                          v->jwks_url, v->keys->count);
    if (v->last_failed && fetched_here)
        return mr_err_set(err, MR_EUNAVAIL, "%s", v->last_error);
    if (v->last_failed) {
        long wait_ms = v->refetch_floor_ms - (long)(now - v->attempt_at);
        mr_err_set(err, MR_EUNAVAIL, "%s", v->last_error);
        mr_err_prefix(err, "JWKS unavailable (next fetch in %ld ms)", wait_ms > 0 ? wait_ms : 0);
        return MR_EUNAVAIL;
    }
    return mr_err_set(err, MR_EUNAVAIL, "JWKS unavailable: the set from %s expired before use", v->jwks_url);
}

/* The cache, as Envoy's jwt_authn keeps its remote JWKS:
 *   - a set is fresh for cache_ttl_ms (60 s); then the next token starts one refetch;
 *   - one fetch at a time (single flight): while it runs, tokens whose key is in the current set
 *     go on with it, the others wait for the fetch to end;
 *   - a kid missing from a fresh set prompts a refetch at most once per refetch_floor_ms (at
 *     least 1 s), so a flood of made-up kids costs the JWKS server one request per floor;
 *   - when refetching fails, the last good set stays in use up to stale_grace_ms past its TTL
 *     (retried once per floor), so an outage of the JWKS server does not turn every valid
 *     token into a 503 at once; past the grace the keys are unavailable (503). */
mr_code mr_jwt_verifier_key(mr_jwt_verifier *v, const char *kid, bool *must_wait, mr_jwt_keyset **held,
                            const mr_jwt_key **out, mr_err *err)
{
    *held = NULL;
    *out = NULL;
    bool fetched_here = false;
    mr_code rc;
    pthread_mutex_lock(&v->mu);
    for (;;) {
        int64_t now = v->clock(v->clock_ctx);
        bool fresh = v->keys && !elapsed(now, v->keys_at, v->cache_ttl_ms);
        bool usable = v->keys && !elapsed(now, v->keys_at, v->cache_ttl_ms + v->stale_grace_ms);
        const mr_jwt_key *k = usable ? find_key(v->keys, kid) : NULL;
        /* A stale set is refreshed first, unless that is under way or failed within the floor. */
        bool refresh = !fresh && !v->fetching && !fetched_here &&
                       (!v->last_failed || elapsed(now, v->attempt_at, v->refetch_floor_ms));
        if (k && (fresh || !refresh)) {
            atomic_fetch_add(&v->keys->refs, 1);
            *held = v->keys;
            *out = k;
            rc = MR_OK;
            break;
        }
        bool unknown_kid_fetch = fresh && !fetched_here &&
                                 (!v->attempted || elapsed(now, v->attempt_at, v->refetch_floor_ms));
        if (!v->fetching && !refresh && !unknown_kid_fetch) {
            rc = no_key(v, fresh, kid, fetched_here, now, err);
            break;
        }
        if (must_wait) {
            *must_wait = true;
            rc = mr_err_set(err, MR_EUNAVAIL, "the key needs a JWKS fetch (or one under way) from %s", v->jwks_url);
            break;
        }
        if (v->fetching) {
            pthread_cond_wait(&v->fetched, &v->mu);
            continue;
        }
        v->fetching = true;
        v->attempted = true;
        v->attempt_at = now;
        v->fetches++;
        pthread_mutex_unlock(&v->mu);
        mr_jwt_keyset *ks;
        mr_err fetch_err = {0};
        fetch_keyset(v, &ks, &fetch_err);
        pthread_mutex_lock(&v->mu);
        install(v, ks, &fetch_err);
        fetched_here = true;
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}
