/* token.c -- the client side of a provider's token endpoint: the authorization code exchange of
 * mindroom-upstream-auth (RFC 6749 section 4.1.3) and the refresh of a requester's credentials by
 * the tools that use them (section 6), both client_secret_post. */
#include "mindroom/oauth.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/clock.h"
#include "mindroom/http.h"
#include "mindroom/ids.h"

#define TOKEN_TIMEOUT_MS 10000L
#define TOKEN_RESPONSE_MAX (1024 * 1024)
/* How often a call waiting for another's refresh looks at the store. */
#define REFRESH_POLL_MS 50
/* A hundred years. */
#define MAX_LIFETIME_S (100LL * 366 * 86400)

void mr_oauth_form_add(mr_strbuf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    if (b->len > 0 && b->s[b->len - 1] != '?')
        mr_strbuf_puts(b, "&");
    mr_strbuf_puts(b, name);
    mr_strbuf_puts(b, "=");
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
            mr_strbuf_add(b, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            mr_strbuf_add(b, esc, 3);
        }
    }
}

void mr_oauth_form_wipe(mr_strbuf *b)
{
    if (b->s)
        explicit_bzero(b->s, b->cap);
    mr_strbuf_free(b);
}

/* A provider's RFC 6749 section 5.2 error code, if the answer has a short printable one. */
static const char *error_code(json_t *answer)
{
    const char *code = json_string_value(json_object_get(answer, "error"));
    if (!code || strlen(code) > 64)
        return NULL;
    for (const char *p = code; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return NULL;
    return code;
}

mr_code mr_oauth_token_request(const mr_oauth_client *c, mr_strbuf *form, json_t **tokens, mr_err *err)
{
    *tokens = NULL;
    mr_oauth_form_add(form, "client_id", c->client_id);
    mr_oauth_form_add(form, "client_secret", c->client_secret);
    if (!mr_strbuf_ok(form))
        return mr_err_set(err, MR_ENOMEM, "out of memory for the request to %s", c->token_url);
    mr_http_client *hc = NULL;
    mr_http_client_opts co = {.timeout_ms = TOKEN_TIMEOUT_MS, .max_response = TOKEN_RESPONSE_MAX};
    mr_http_result res = {0};
    static const char *const headers[] = {"Accept: application/json", NULL};
    mr_http_call call = {.method = "POST", .url = c->token_url, .body = form->s, .body_len = form->len,
                         .content_type = "application/x-www-form-urlencoded", .headers = headers};
    mr_code rc = mr_http_client_new(&co, &hc, err);
    if (rc == MR_OK)
        rc = mr_http_client_do(hc, &call, &res, err);
    json_t *answer = rc == MR_OK ? json_loadb(res.body ? res.body : "", res.body_len, 0, NULL) : NULL;
    if (rc == MR_OK && (res.status < 200 || res.status > 299)) {
        /* invalid_grant and invalid_client mean the grant or the client is no good: asking again
         * will not help, connecting again may. */
        const char *code = error_code(answer);
        bool refused = res.status == 400 || res.status == 401;
        rc = mr_err_set(err, refused ? MR_EAUTH : MR_EUNAVAIL, "POST %s answered HTTP %ld%s%s", c->token_url,
                        res.status, code ? ", error " : "", code ? code : "");
    } else if (rc == MR_OK) {
        if (!json_is_object(answer) || !json_string_value(json_object_get(answer, "access_token")) ||
            json_object_set_new(answer, "obtained_at", json_integer((json_int_t)time(NULL))) != 0)
            rc = mr_err_set(err, MR_EUNAVAIL, "POST %s: the answer is not a JSON object with an access_token",
                            c->token_url);
        else
            *tokens = json_incref(answer);
    }
    json_decref(answer);
    if (res.body)
        explicit_bzero(res.body, res.body_len);
    mr_http_result_clear(&res);
    mr_http_client_free(hc);
    return rc;
}

mr_code mr_oauth_exchange_code(const mr_oauth_client *c, const char *code, const char *redirect_uri,
                               const char *code_verifier, json_t **tokens, mr_err *err)
{
    mr_strbuf form = {0};
    mr_oauth_form_add(&form, "grant_type", "authorization_code");
    mr_oauth_form_add(&form, "code", code);
    mr_oauth_form_add(&form, "redirect_uri", redirect_uri);
    mr_oauth_form_add(&form, "code_verifier", code_verifier);
    mr_code rc = mr_oauth_token_request(c, &form, tokens, err);
    mr_oauth_form_wipe(&form);
    return rc;
}

/* ---- a requester's credentials, refreshed before they expire ---------------------------- */

/* Seconds left of an access token; LLONG_MAX when the provider gave no expires_in (or one past
 * any sensible lifetime, which must not overflow the sum). */
static long long seconds_left(json_t *creds)
{
    json_t *in = json_object_get(creds, "expires_in");
    json_t *at = json_object_get(creds, "obtained_at");
    if (!json_is_integer(in) || !json_is_integer(at) || json_integer_value(in) > MAX_LIFETIME_S ||
        json_integer_value(at) < 0 || json_integer_value(at) > LLONG_MAX / 2)
        return LLONG_MAX;
    return json_integer_value(at) + json_integer_value(in) - (long long)time(NULL);
}

static mr_code load(mr_store *s, const char *user_id, const char *provider, json_t **creds, mr_err *err)
{
    char *text = NULL;
    size_t len = 0;
    mr_code rc = mr_oauth_credentials_get(s, user_id, provider, &text, &len, err);
    if (rc != MR_OK)
        return rc;
    *creds = json_loadb(text, len, 0, NULL);
    explicit_bzero(text, len);
    free(text);
    if (!json_is_object(*creds) || !json_string_value(json_object_get(*creds, "access_token"))) {
        json_decref(*creds);
        *creds = NULL;
        return mr_err_set(err, MR_EINTERNAL, "the stored %s credentials of %s are not a token response", provider,
                          user_id);
    }
    return MR_OK;
}

static mr_code save(mr_store *s, const char *user_id, const char *provider, json_t *creds, mr_err *err)
{
    char *text = json_dumps(creds, JSON_COMPACT);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory for the %s credentials", provider);
    mr_code rc = mr_oauth_credentials_put(s, user_id, provider, text, strlen(text), err);
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

/* grant_type=refresh_token; an answer without a refresh_token keeps the old one (RFC 6749
 * section 6: the provider MAY issue a new one). */
static mr_code refresh(const mr_oauth_client *c, json_t *old, json_t **fresh, mr_err *err)
{
    mr_strbuf form = {0};
    mr_oauth_form_add(&form, "grant_type", "refresh_token");
    mr_oauth_form_add(&form, "refresh_token", json_string_value(json_object_get(old, "refresh_token")));
    mr_code rc = mr_oauth_token_request(c, &form, fresh, err);
    mr_oauth_form_wipe(&form);
    if (rc == MR_OK && !json_object_get(*fresh, "refresh_token") &&
        json_object_set(*fresh, "refresh_token", json_object_get(old, "refresh_token")) != 0) {
        json_decref(*fresh);
        *fresh = NULL;
        rc = mr_err_set(err, MR_ENOMEM, "out of memory for the refreshed credentials");
    }
    return rc;
}

/* Refreshes stale credentials under the refresh lock, which the holder deletes when done.
 * Returns the credentials to use in *creds (replacing the stale ones it was given). */
static mr_code refresh_locked(mr_store *s, const char *user_id, const char *provider, const mr_oauth_client *c,
                              const char *lock, json_t **creds, mr_err *err)
{
    /* Whoever held the lock before may have refreshed since we read them. */
    json_t *now = NULL;
    mr_code rc = load(s, user_id, provider, &now, err);
    if (rc == MR_OK && seconds_left(now) >= MR_OAUTH_REFRESH_MARGIN_S) {
        json_decref(*creds);
        *creds = now;
    } else if (rc == MR_OK && !json_string_value(json_object_get(now, "refresh_token"))) {
        json_decref(now);
        rc = mr_err_set(err, MR_ENOTFOUND, "the %s access token of %s has expired and there is no refresh token",
                        provider, user_id);
    } else if (rc == MR_OK) {
        json_t *fresh = NULL;
        rc = refresh(c, now, &fresh, err);
        json_decref(now);
        if (rc == MR_OK && (rc = save(s, user_id, provider, fresh, err)) == MR_OK) {
            json_decref(*creds);
            *creds = fresh;
        } else {
            json_decref(fresh);
        }
        if (rc == MR_EAUTH) {
            /* The grant is gone (revoked, expired): only connecting again helps. */
            char why[MR_ERR_MSG_MAX];
            snprintf(why, sizeof why, "%s", err ? err->msg : "refused");
            rc = mr_err_set(err, MR_ENOTFOUND, "refreshing the %s credentials of %s: %.300s", provider, user_id,
                            why);
        }
    }
    mr_store_del(s, lock, NULL);
    return rc;
}

mr_code mr_oauth_credentials_fresh(mr_store *s, const char *user_id, const char *provider, const mr_oauth_client *c,
                                   char **access_token, mr_err *err)
{
    *access_token = NULL;
    json_t *creds = NULL;
    mr_code rc = load(s, user_id, provider, &creds, err);
    if (rc != MR_OK)
        return rc;
    /* One refresh at a time per user and provider, across threads and replicas: a provider that
     * rotates refresh tokens refuses the second use of one, which would cost the person their
     * connection. The others wait for the holder's result in the store. */
    char lock[MR_ID_MAX + MR_OAUTH_PROVIDER_MAX + 32];
    snprintf(lock, sizeof lock, "oauth:refresh:%s:%s", provider, user_id);
    long long give_up = mr_clock_mono_ms() + MR_OAUTH_REFRESH_LOCK_MS;
    while (rc == MR_OK && seconds_left(creds) < MR_OAUTH_REFRESH_MARGIN_S) {
        bool won = false;
        if ((rc = mr_store_set_nx(s, lock, "1", 1, MR_OAUTH_REFRESH_LOCK_MS, &won, err)) != MR_OK)
            break;
        if (won) {
            rc = refresh_locked(s, user_id, provider, c, lock, &creds, err);
            break;
        }
        if (mr_clock_mono_ms() > give_up) {
            rc = mr_err_set(err, MR_EUNAVAIL, "another refresh of the %s credentials of %s did not finish in %d s",
                            provider, user_id, MR_OAUTH_REFRESH_LOCK_MS / 1000);
            break;
        }
        mr_clock_sleep_ms(REFRESH_POLL_MS);
        json_t *now = NULL;
        if ((rc = load(s, user_id, provider, &now, err)) == MR_OK) {
            json_decref(creds);
            creds = now;
        }
    }
    if (rc == MR_OK && !(*access_token = strdup(json_string_value(json_object_get(creds, "access_token")))))
        rc = mr_err_set(err, MR_ENOMEM, "out of memory for the %s access token", provider);
    json_decref(creds);
    return rc;
}
