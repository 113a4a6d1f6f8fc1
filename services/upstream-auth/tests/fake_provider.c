/* fake_provider.c -- the loopback OAuth provider of the connect-flow tests, on libs/http's server. */
#include "fake_provider.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <jansson.h>

#include "mindroom/http.h"
#include "mindroom/oauth.h"

#define MAX_CODES 16
#define MAX_PARAMS 16
#define MAX_TOKENS 32

typedef struct issued {
    char code[MR_OAUTH_TOKEN_LEN + 1];
    char *redirect_uri;
    char *challenge;
    char *scope;
    bool used;
} issued;

/* An access token with its refresh token, as the provider remembers them. */
typedef struct pair {
    char access[32], refresh[32];
    time_t expires_at;
    bool refresh_used;           /* rotated: a refresh token works once */
    bool revoked;
} token_pair;

struct fake_provider {
    mr_http_server *srv;
    char *client_id, *client_secret;
    char authorize_url[64], token_url[64], api_url[64];
    pthread_mutex_t mu;
    issued codes[MAX_CODES];
    size_t ncodes;
    mr_http_param last[MAX_PARAMS];
    size_t nlast;
    unsigned issued_n, refused_n, refreshed_n;
    char refusal[128];
    long expires_in;
    token_pair grants[MAX_TOKENS];
    size_t ngrants;
    char last_api_token[32];
    unsigned api_ok, api_refused;
    pthread_cond_t arrived;
    unsigned hold, held;          /* refreshes to gather before answering any, and gathered */
    long hold_ms;
    bool stalling;                /* code exchanges wait while set */
    unsigned stalled;             /* and how many wait now */
};

/* Decodes a form body into params (names and values percent-decoded, '+' as space). */
static size_t form_parse(const char *body, mr_http_param *out, size_t max)
{
    size_t n = 0;
    for (const char *p = body; *p && n < max;) {
        size_t len = strcspn(p, "&");
        char *pair = strndup(p, len);
        char *eq = strchr(pair, '=');
        char *value = strdup(eq ? eq + 1 : "");
        if (eq)
            *eq = '\0';
        for (char *s = value, *d = value; ; s++, d++) {
            if (*s == '%' && s[1] && s[2]) {
                char hex[3] = {s[1], s[2], 0};
                *d = (char)strtol(hex, NULL, 16);
                s += 2;
            } else {
                *d = *s == '+' ? ' ' : *s;
            }
            if (!*s)
                break;
        }
        out[n++] = (mr_http_param){pair, value};
        p += len;
        if (*p == '&')
            p++;
    }
    return n;
}

static const char *param(const mr_http_param *ps, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ps[i].name, name) == 0)
            return ps[i].value;
    return NULL;
}

static void params_free(mr_http_param *ps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ps[i].name);
        free(ps[i].value);
    }
}

static mr_http_response *authorize(fake_provider *p, const mr_http_request *req)
{
    pthread_mutex_lock(&p->mu);
    params_free(p->last, p->nlast);
    p->nlast = 0;
    for (size_t i = 0; i < req->nquery && i < MAX_PARAMS; i++)
        p->last[p->nlast++] = (mr_http_param){strdup(req->query[i].name), strdup(req->query[i].value)};
    pthread_mutex_unlock(&p->mu);
    const char *type = mr_http_request_query(req, "response_type");
    const char *client = mr_http_request_query(req, "client_id");
    const char *redirect = mr_http_request_query(req, "redirect_uri");
    const char *state = mr_http_request_query(req, "state");
    const char *challenge = mr_http_request_query(req, "code_challenge");
    const char *method = mr_http_request_query(req, "code_challenge_method");
    const char *scope = mr_http_request_query(req, "scope");
    if (!type || strcmp(type, "code") != 0 || !client || strcmp(client, p->client_id) != 0 || !redirect ||
        !state || !challenge || !method || strcmp(method, "S256") != 0)
        return mr_http_reply_json(400, json_pack("{s:s}", "error", "invalid_request"));
    pthread_mutex_lock(&p->mu);
    if (p->ncodes == MAX_CODES) {
        pthread_mutex_unlock(&p->mu);
        return mr_http_reply_json(500, json_pack("{s:s}", "error", "server_error"));
    }
    issued *c = &p->codes[p->ncodes++];
    mr_oauth_random_token(c->code, NULL);
    c->redirect_uri = strdup(redirect);
    c->challenge = strdup(challenge);
    c->scope = strdup(scope ? scope : "");
    char *location = NULL;
    size_t cap = strlen(redirect) + strlen(state) * 3 + 128;
    location = malloc(cap);
    snprintf(location, cap, "%s%scode=%s&state=%s", redirect, strchr(redirect, '?') ? "&" : "?", c->code, state);
    pthread_mutex_unlock(&p->mu);
    mr_http_response *r = mr_http_reply_text(302, "to the client\n");
    mr_http_response_header(r, "Location", location);
    free(location);
    return r;
}

static mr_http_response *refuse(fake_provider *p, const char *error, const char *why)
{
    p->refused_n++;
    snprintf(p->refusal, sizeof p->refusal, "%s", why);
    return mr_http_reply_json(400, json_pack("{s:s}", "error", error));
}

static mr_http_response *issue(fake_provider *p, const char *scope);
static mr_http_response *refresh(fake_provider *p, const mr_http_param *ps, size_t n);

/* Called with the lock held. */
static mr_http_response *exchange(fake_provider *p, const mr_http_param *ps, size_t n)
{
    const char *grant = param(ps, n, "grant_type"), *code = param(ps, n, "code");
    const char *redirect = param(ps, n, "redirect_uri"), *verifier = param(ps, n, "code_verifier");
    const char *client = param(ps, n, "client_id"), *secret = param(ps, n, "client_secret");
    if (!grant || (strcmp(grant, "authorization_code") != 0 && strcmp(grant, "refresh_token") != 0))
        return refuse(p, "unsupported_grant_type", "grant_type");
    if (!client || !secret || strcmp(client, p->client_id) != 0 || strcmp(secret, p->client_secret) != 0)
        return refuse(p, "invalid_client", "client credentials");
    if (strcmp(grant, "refresh_token") == 0)
        return refresh(p, ps, n);
    if (p->stalling) {
        p->stalled++;
        pthread_cond_broadcast(&p->arrived);
        while (p->stalling)
            pthread_cond_wait(&p->arrived, &p->mu);
        p->stalled--;
    }
    issued *c = NULL;
    for (size_t i = 0; code && i < p->ncodes; i++)
        if (strcmp(p->codes[i].code, code) == 0)
            c = &p->codes[i];
    if (!c || c->used)
        return refuse(p, "invalid_grant", c ? "code used twice" : "unknown code");
    c->used = true;
    if (!redirect || strcmp(redirect, c->redirect_uri) != 0)
        return refuse(p, "invalid_grant", "redirect_uri differs from the authorization request");
    char computed[MR_OAUTH_TOKEN_LEN + 1];
    if (!verifier)
        return refuse(p, "invalid_grant", "no code_verifier");
    mr_oauth_pkce_challenge(verifier, computed);
    if (strcmp(computed, c->challenge) != 0)
        return refuse(p, "invalid_grant", "code_verifier does not match the challenge");
    return issue(p, c->scope);
}

/* A fresh access and refresh token pair (section 5.1), remembered for the API and refreshes. */
static mr_http_response *issue(fake_provider *p, const char *scope)
{
    if (p->ngrants == MAX_TOKENS)
        return mr_http_reply_json(500, json_pack("{s:s}", "error", "server_error"));
    p->issued_n++;
    token_pair *g = &p->grants[p->ngrants++];
    snprintf(g->access, sizeof g->access, "at-%u", p->issued_n);
    snprintf(g->refresh, sizeof g->refresh, "rt-%u", p->issued_n);
    g->expires_at = time(NULL) + p->expires_in;
    return mr_http_reply_json(200, json_pack("{s:s, s:s, s:I, s:s, s:s}", "access_token", g->access, "token_type",
                                             "Bearer", "expires_in", (json_int_t)p->expires_in, "refresh_token",
                                             g->refresh, "scope", scope));
}

/* grant_type=refresh_token (section 6): the refresh token is rotated, so it works once. Called
 * with the lock held. */
static mr_http_response *refresh(fake_provider *p, const mr_http_param *ps, size_t n)
{
    if (p->hold) {
        /* Gather the refreshes that come together, then answer them in turn (the test makes
         * concurrent callers visible); after hold_ms, answer whatever came. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += p->hold_ms / 1000;
        until.tv_nsec += (p->hold_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        p->held++;
        pthread_cond_broadcast(&p->arrived);
        while (p->hold && p->held < p->hold && pthread_cond_timedwait(&p->arrived, &p->mu, &until) == 0)
            ;
        p->hold = 0;
        pthread_cond_broadcast(&p->arrived);
    }
    const char *rt = param(ps, n, "refresh_token");
    token_pair *g = NULL;
    for (size_t i = 0; rt && i < p->ngrants; i++)
        if (strcmp(p->grants[i].refresh, rt) == 0)
            g = &p->grants[i];
    if (!g || g->refresh_used || g->revoked)
        return refuse(p, "invalid_grant", g ? "refresh token used or revoked" : "unknown refresh token");
    g->refresh_used = true;
    p->refreshed_n++;
    return issue(p, "");
}

/* GET /api/user: the resource server. A missing, unknown, expired or revoked bearer token is 401
 * with the challenge of RFC 6750 section 3.1. */
static mr_http_response *api_user(fake_provider *p, const mr_http_request *req)
{
    const char *auth = mr_http_request_header(req, "Authorization");
    const char *token = auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
    pthread_mutex_lock(&p->mu);
    token_pair *g = NULL;
    for (size_t i = 0; token && i < p->ngrants; i++)
        if (strcmp(p->grants[i].access, token) == 0)
            g = &p->grants[i];
    bool ok = g && !g->revoked && time(NULL) < g->expires_at;
    snprintf(p->last_api_token, sizeof p->last_api_token, "%s", token ? token : "");
    ok ? p->api_ok++ : p->api_refused++;
    pthread_mutex_unlock(&p->mu);
    if (!ok) {
        mr_http_response *r = mr_http_reply_json(401, json_pack("{s:s}", "message", "Bad credentials"));
        mr_http_response_header(r, "WWW-Authenticate", token ? "Bearer error=\"invalid_token\"" : "Bearer");
        return r;
    }
    return mr_http_reply_json(200, json_pack("{s:s, s:i}", "login", "carol-at-provider", "id", 4242));
}

static mr_http_response *handle(void *ctx, const mr_http_request *req)
{
    fake_provider *p = ctx;
    if (req->nsegments == 2 && strcmp(req->segments[0], "api") == 0 && strcmp(req->segments[1], "user") == 0 &&
        strcmp(req->method, "GET") == 0)
        return api_user(p, req);
    if (req->nsegments == 1 && strcmp(req->segments[0], "authorize") == 0 && strcmp(req->method, "GET") == 0)
        return authorize(p, req);
    if (req->nsegments == 1 && strcmp(req->segments[0], "token") == 0 && strcmp(req->method, "POST") == 0) {
        const char *type = mr_http_request_header(req, "Content-Type");
        mr_http_param ps[MAX_PARAMS];
        size_t n = form_parse(req->body, ps, MAX_PARAMS);
        pthread_mutex_lock(&p->mu);
        mr_http_response *r = type && strncmp(type, "application/x-www-form-urlencoded", 33) == 0
                                  ? exchange(p, ps, n)
                                  : refuse(p, "invalid_request", "content type");
        pthread_mutex_unlock(&p->mu);
        params_free(ps, n);
        return r;
    }
    return mr_http_reply_json(404, json_pack("{s:s}", "error", "not_found"));
}

fake_provider *fp_start(const char *client_id, const char *client_secret)
{
    fake_provider *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->client_id = strdup(client_id);
    p->client_secret = strdup(client_secret);
    p->expires_in = 3600;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->arrived, NULL);
    mr_http_server_opts o = {.listen = "127.0.0.1:0"};
    mr_err err = {0};
    if (mr_http_server_start(&o, handle, p, &p->srv, &err) != MR_OK)
        fail_msg("fake provider: %s", err.msg);
    int port = mr_http_server_port(p->srv);
    snprintf(p->authorize_url, sizeof p->authorize_url, "http://127.0.0.1:%d/authorize", port);
    snprintf(p->token_url, sizeof p->token_url, "http://127.0.0.1:%d/token", port);
    snprintf(p->api_url, sizeof p->api_url, "http://127.0.0.1:%d/api", port);
    return p;
}

void fp_stop(fake_provider *p)
{
    if (!p)
        return;
    fp_release_exchanges(p);
    mr_http_server_stop(p->srv);
    for (size_t i = 0; i < p->ncodes; i++) {
        free(p->codes[i].redirect_uri);
        free(p->codes[i].challenge);
        free(p->codes[i].scope);
    }
    params_free(p->last, p->nlast);
    pthread_cond_destroy(&p->arrived);
    pthread_mutex_destroy(&p->mu);
    free(p->client_id);
    free(p->client_secret);
    free(p);
}

const char *fp_authorize_url(fake_provider *p)
{
    return p->authorize_url;
}

const char *fp_token_url(fake_provider *p)
{
    return p->token_url;
}

const char *fp_last_authorize_param(fake_provider *p, const char *name)
{
    pthread_mutex_lock(&p->mu);
    const char *v = param(p->last, p->nlast, name);
    pthread_mutex_unlock(&p->mu);
    return v;
}

/* One of p's counters, read under its lock: the handlers bump them from the server's threads. */
static unsigned counter(fake_provider *p, const unsigned *which)
{
    pthread_mutex_lock(&p->mu);
    unsigned n = *which;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned fp_tokens_issued(fake_provider *p)
{
    return counter(p, &p->issued_n);
}

unsigned fp_tokens_refused(fake_provider *p)
{
    return counter(p, &p->refused_n);
}

const char *fp_last_refusal(fake_provider *p)
{
    return p->refusal;
}

const char *fp_api_url(fake_provider *p)
{
    return p->api_url;
}

void fp_set_expires_in(fake_provider *p, long seconds)
{
    pthread_mutex_lock(&p->mu);
    p->expires_in = seconds;
    pthread_mutex_unlock(&p->mu);
}

void fp_revoke_all(fake_provider *p)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->ngrants; i++)
        p->grants[i].revoked = true;
    pthread_mutex_unlock(&p->mu);
}

unsigned fp_refreshes(fake_provider *p)
{
    return counter(p, &p->refreshed_n);
}

void fp_last_api_token(fake_provider *p, char out[32])
{
    pthread_mutex_lock(&p->mu);
    memcpy(out, p->last_api_token, sizeof p->last_api_token);
    pthread_mutex_unlock(&p->mu);
}

void fp_stall_exchanges(fake_provider *p)
{
    pthread_mutex_lock(&p->mu);
    p->stalling = true;
    pthread_mutex_unlock(&p->mu);
}

void fp_release_exchanges(fake_provider *p)
{
    pthread_mutex_lock(&p->mu);
    p->stalling = false;
    pthread_cond_broadcast(&p->arrived);
    pthread_mutex_unlock(&p->mu);
}

bool fp_wait_stalled(fake_provider *p, unsigned n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (p->stalled < n && rc == 0)
        rc = pthread_cond_timedwait(&p->arrived, &p->mu, &until);
    bool ok = p->stalled >= n;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

void fp_hold_refreshes(fake_provider *p, unsigned n, long ms)
{
    pthread_mutex_lock(&p->mu);
    p->hold = n;
    p->held = 0;
    p->hold_ms = ms;
    pthread_mutex_unlock(&p->mu);
}
