/* ua_oauth.c -- the browser side of an OAuth connect token: authorize (check the requester,
 * redeem the token, send the browser to the provider with a state bound to it) and the callback
 * (redeem the state, exchange the code per RFC 6749 with PKCE, seal the credentials). */
#include "ua_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/log.h"
#include "mindroom/oauth.h"
#include "mindroom/str.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void count(const ua_oauth *o, const char *step, int status)
{
    if (!o->metrics)
        return;
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *labels[] = {"step", step, "code", code, NULL};
    mr_http_metrics_inc(o->metrics, "upstream_auth_oauth_total", labels, 1);
}

static mr_http_response *fail(const ua_oauth *o, const char *step, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static mr_http_response *fail(const ua_oauth *o, const char *step, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    count(o, step, status);
    return ua_reply_detail(status, "%s", msg);
}

/* The identity must resolve to the Matrix user the token or state was made for. */
static bool same_requester(const ua_identity *id, const char *requester)
{
    return id->matrix_user_id && strcmp(id->matrix_user_id, requester) == 0;
}

static void state_key(const char *state, const char *suffix, char *out, size_t cap)
{
    char digest[MR_OAUTH_SHA256_HEX_LEN + 1];
    mr_oauth_sha256_hex(state, digest);
    snprintf(out, cap, "oauth:state:%s%s", digest, suffix);
}

/* ---- authorize -------------------------------------------------------------------------- */

/* The state record: who, for which provider and token, and the PKCE verifier; sealed because
 * the verifier is what turns a stolen code into credentials. */
static mr_code state_store(const ua_oauth *o, const ua_provider *p, const mr_oauth_connect_grant *g,
                           const char *state, const char *verifier, mr_err *err)
{
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I}", "v", 1, "user_id", g->requester, "provider",
                          p->name, "token_sha256", g->token_sha256, "scopes", g->scopes, "code_verifier", verifier,
                          "expires_at", (json_int_t)(mr_clock_wall_ms() + UA_STATE_TTL_MS));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory for the OAuth state");
    char key[128];
    state_key(state, "", key, sizeof key);
    mr_code rc = mr_store_set_secret(o->store, key, text, strlen(text), UA_STATE_TTL_MS, err);
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

static mr_http_response *redirect_to_provider(const ua_oauth *o, const ua_provider *p,
                                              const mr_oauth_connect_grant *g)
{
    char state[MR_OAUTH_TOKEN_LEN + 1], verifier[MR_OAUTH_TOKEN_LEN + 1], challenge[MR_OAUTH_TOKEN_LEN + 1];
    mr_err err = {0};
    if (mr_oauth_random_token(state, &err) != MR_OK || mr_oauth_random_token(verifier, &err) != MR_OK ||
        state_store(o, p, g, state, verifier, &err) != MR_OK) {
        mr_log_error("upstream-auth", "OAuth authorize for %s: %s", p->name, err.msg);
        return fail(o, "authorize", 503, "Cannot start the OAuth flow right now; try the link again shortly");
    }
    mr_oauth_pkce_challenge(verifier, challenge);
    explicit_bzero(verifier, sizeof verifier);
    mr_strbuf url = {0};
    mr_strbuf_puts(&url, p->authorize_url);
    /* mr_oauth_form_add puts '&' before each parameter unless the URL ends in '?'. */
    if (!strchr(p->authorize_url, '?'))
        mr_strbuf_puts(&url, "?");
    mr_oauth_form_add(&url, "response_type", "code");
    mr_oauth_form_add(&url, "client_id", p->client_id);
    mr_oauth_form_add(&url, "redirect_uri", p->redirect_url);
    if (*g->scopes)
        mr_oauth_form_add(&url, "scope", g->scopes);
    mr_oauth_form_add(&url, "state", state);
    mr_oauth_form_add(&url, "code_challenge", challenge);
    mr_oauth_form_add(&url, "code_challenge_method", "S256");
    mr_http_response *r = url.failed ? NULL : mr_http_reply_text(302, "Redirecting to the provider.\n");
    if (r && (!mr_http_response_header(r, "Location", url.s) || !mr_http_response_header(r, "Cache-Control", "no-store"))) {
        mr_http_response_free(r);
        r = NULL;
    }
    mr_oauth_form_wipe(&url);
    explicit_bzero(state, sizeof state);
    count(o, "authorize", r ? 302 : 500);
    return r;
}

mr_http_response *ua_oauth_authorize(const ua_oauth *o, const char *provider, const mr_http_request *req,
                                     const ua_identity *id)
{
    const ua_provider *p = ua_settings_provider(o->settings, provider);
    if (!p)
        return fail(o, "authorize", 404, "Unknown OAuth provider");
    const char *token = mr_http_request_query(req, "connect_token");
    if (!token || !*token)
        return fail(o, "authorize", 400, "Missing connect_token");
    mr_oauth_connect_grant g;
    mr_err err = {0};
    mr_code rc = mr_oauth_connect_lookup(o->store, token, &g, &err);
    if (rc == MR_EINVAL)
        return fail(o, "authorize", 400, "Malformed connect token");
    if (rc == MR_ENOTFOUND)
        return fail(o, "authorize", 410, "Connect token is unknown or has expired; ask the agent for a new link");
    if (rc == MR_EEXISTS)
        return fail(o, "authorize", 409, "Connect token was already used; ask the agent for a new link");
    if (rc != MR_OK) {
        mr_log_error("upstream-auth", "OAuth authorize for %s: %s", p->name, err.msg);
        return fail(o, "authorize", 503, "Cannot read the connect token right now; try again shortly");
    }
    mr_http_response *r = NULL;
    if (strcmp(g.provider, p->name) != 0) {
        r = fail(o, "authorize", 400, "Connect token is for provider %s, not %s", g.provider, p->name);
    } else if (!same_requester(id, g.requester)) {
        mr_log_info("upstream-auth", "OAuth authorize for %s: identity %s (Matrix ID %s) is not the requester %s",
                    p->name, id->user_id, id->matrix_user_id ? id->matrix_user_id : "unknown", g.requester);
        r = fail(o, "authorize", 403, "Your identity does not match the Matrix user this link was made for");
    } else if ((rc = mr_oauth_connect_redeem(o->store, &g, &err)) == MR_EEXISTS) {
        r = fail(o, "authorize", 409, "Connect token was already used; ask the agent for a new link");
    } else if (rc == MR_ENOTFOUND) {
        r = fail(o, "authorize", 410, "Connect token is unknown or has expired; ask the agent for a new link");
    } else if (rc != MR_OK) {
        mr_log_error("upstream-auth", "OAuth authorize for %s: %s", p->name, err.msg);
        r = fail(o, "authorize", 503, "Cannot redeem the connect token right now; try again shortly");
    } else {
        r = redirect_to_provider(o, p, &g);
    }
    mr_oauth_connect_grant_clear(&g);
    return r;
}

/* ---- callback --------------------------------------------------------------------------- */

typedef struct state_record {
    json_t *root;
    const char *user_id;
    const char *provider;
    const char *code_verifier;
} state_record;

static void state_record_free(state_record *st)
{
    if (st->code_verifier)
        explicit_bzero((char *)st->code_verifier, strlen(st->code_verifier));
    json_decref(st->root);
    memset(st, 0, sizeof *st);
}

static mr_code state_load(const ua_oauth *o, const char *state, state_record *st, mr_err *err)
{
    memset(st, 0, sizeof *st);
    char key[128], *text = NULL;
    size_t len = 0;
    state_key(state, "", key, sizeof key);
    mr_code rc = mr_store_get_secret(o->store, key, &text, &len, err);
    if (rc != MR_OK)
        return rc;
    st->root = json_loadb(text, len, 0, NULL);
    explicit_bzero(text, len);
    free(text);
    st->user_id = json_string_value(json_object_get(st->root, "user_id"));
    st->provider = json_string_value(json_object_get(st->root, "provider"));
    st->code_verifier = json_string_value(json_object_get(st->root, "code_verifier"));
    if (!st->user_id || !st->provider || !st->code_verifier) {
        state_record_free(st);
        return mr_err_set(err, MR_EINTERNAL, "%s is not an OAuth state record", key);
    }
    return MR_OK;
}

/* Single use across replicas: the first request to set the marker owns the state. */
static mr_code state_claim(const ua_oauth *o, const char *state, bool *won, mr_err *err)
{
    char key[128];
    state_key(state, ":used", key, sizeof key);
    mr_code rc = mr_store_set_nx(o->store, key, "1", 1, UA_STATE_TTL_MS, won, err);
    if (rc == MR_OK && *won) {
        state_key(state, "", key, sizeof key);
        mr_store_del(o->store, key, NULL);
    }
    return rc;
}

/* Short printable values from the query (the provider's error code) may be shown; others not. */
static const char *printable_or(const char *v, const char *fallback)
{
    if (!v || strlen(v) > 64)
        return fallback;
    for (const char *p = v; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return fallback;
    return v;
}

static mr_http_response *finish(const ua_oauth *o, const ua_provider *p, const state_record *st,
                                const mr_http_request *req)
{
    const char *error = mr_http_request_query(req, "error");
    const char *code = mr_http_request_query(req, "code");
    if (error)
        return fail(o, "callback", 400, "The provider did not grant access (%s); ask the agent for a new link",
                    printable_or(error, "error"));
    if (!code || !*code)
        return fail(o, "callback", 400, "Missing code");
    json_t *tokens = NULL;
    mr_err err = {0};
    mr_oauth_client client = {.token_url = p->token_url, .client_id = p->client_id, .client_secret = p->client_secret};
    if (mr_oauth_exchange_code(&client, code, p->redirect_url, st->code_verifier, &tokens, &err) != MR_OK) {
        mr_log_warn("upstream-auth", "OAuth callback for %s: %s", p->name, err.msg);
        return fail(o, "callback", 502, "The provider did not exchange the authorization code; ask the agent for "
                    "a new link");
    }
    char *text = json_dumps(tokens, JSON_COMPACT);
    json_decref(tokens);
    mr_code rc = text ? mr_oauth_credentials_put(o->store, st->user_id, p->name, text, strlen(text), &err)
                      : mr_err_set(&err, MR_ENOMEM, "out of memory for the credentials");
    if (text)
        explicit_bzero(text, strlen(text));
    free(text);
    if (rc != MR_OK) {
        mr_log_error("upstream-auth", "OAuth callback for %s: storing credentials of %s: %s", p->name,
                     st->user_id, err.msg);
        return fail(o, "callback", 503, "Cannot store the credentials right now; ask the agent for a new link");
    }
    mr_log_info("upstream-auth", "stored %s credentials for %s", p->name, st->user_id);
    char page[512];
    snprintf(page, sizeof page,
             "<!doctype html><title>Connected</title><p>%s is connected. You can close this tab and return to "
             "the chat.</p>\n", p->name);
    count(o, "callback", 200);
    return mr_http_reply(200, "text/html; charset=utf-8", page, strlen(page));
}

mr_http_response *ua_oauth_callback(const ua_oauth *o, const char *provider, const mr_http_request *req,
                                    const ua_identity *id)
{
    const ua_provider *p = ua_settings_provider(o->settings, provider);
    if (!p)
        return fail(o, "callback", 404, "Unknown OAuth provider");
    const char *state = mr_http_request_query(req, "state");
    if (!state || !*state)
        return fail(o, "callback", 400, "Missing state");
    state_record st;
    mr_err err = {0};
    mr_code rc = state_load(o, state, &st, &err);
    if (rc == MR_ENOTFOUND || rc == MR_EAUTH)
        return fail(o, "callback", 410, "OAuth state is unknown, used or expired; ask the agent for a new link");
    if (rc != MR_OK) {
        mr_log_error("upstream-auth", "OAuth callback for %s: %s", p->name, err.msg);
        return fail(o, "callback", 503, "Cannot read the OAuth state right now; try again shortly");
    }
    mr_http_response *r = NULL;
    bool won = false;
    if (strcmp(st.provider, p->name) != 0) {
        r = fail(o, "callback", 400, "OAuth state is for provider %s, not %s", st.provider, p->name);
    } else if (!same_requester(id, st.user_id)) {
        mr_log_info("upstream-auth", "OAuth callback for %s: identity %s (Matrix ID %s) is not the requester %s",
                    p->name, id->user_id, id->matrix_user_id ? id->matrix_user_id : "unknown", st.user_id);
        r = fail(o, "callback", 403, "Your identity does not match the Matrix user this link was made for");
    } else if ((rc = state_claim(o, state, &won, &err)) != MR_OK) {
        mr_log_error("upstream-auth", "OAuth callback for %s: %s", p->name, err.msg);
        r = fail(o, "callback", 503, "Cannot redeem the OAuth state right now; try again shortly");
    } else if (!won) {
        r = fail(o, "callback", 410, "OAuth state is unknown, used or expired; ask the agent for a new link");
    } else {
        r = finish(o, p, &st, req);
    }
    state_record_free(&st);
    return r;
}
