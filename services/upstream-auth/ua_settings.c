/* ua_settings.c -- every setting of mindroom-upstream-auth, read and checked at start-up. */
#include "ua_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mindroom/ids.h"
#include "mindroom/oauth.h"
#include "mindroom/runtime.h"

#define TU "MINDROOM_TRUSTED_UPSTREAM_"
#define PLACEHOLDER "{localpart}"

typedef struct reader {
    ua_getenv_fn get;
    void *ctx;
} reader;

static const char *value_of(const reader *r, const char *name)
{
    const char *v = r->get(r->ctx, name);
    return v && *v ? v : NULL;
}

/* Copies a set variable into *out (NULL when unset). */
static mr_code read_str(const reader *r, const char *name, char **out, mr_err *err)
{
    const char *v = value_of(r, name);
    *out = NULL;
    if (v && !(*out = strdup(v)))
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", name);
    return MR_OK;
}

static mr_code read_bool(const reader *r, const char *name, bool *out, mr_err *err)
{
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    const char *v = value_of(r, name);
    *out = false;
    if (!v)
        return MR_OK;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return (*out = true), MR_OK;
        if (strcasecmp(v, no[i]) == 0)
            return MR_OK;
    }
    return mr_err_set(err, MR_EINVAL, "%s: \"%.40s\" is not a boolean (true or false)", name, v);
}

/* RFC 9110 field names are tokens: the characters a proxy will pass through as a name. */
static mr_code check_header_name(const char *name, const char *value, mr_err *err)
{
    size_t n = strlen(value);
    if (n > 128)
        return mr_err_set(err, MR_EINVAL, "%s: a header name of more than 128 characters", name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
            return mr_err_set(err, MR_EINVAL, "%s: \"%.128s\" is not a header name (character %zu)", name, value, i + 1);
    }
    return MR_OK;
}

static mr_code read_header_name(const reader *r, const char *name, char **out, mr_err *err)
{
    mr_code rc = read_str(r, name, out, err);
    return rc == MR_OK && *out ? check_header_name(name, *out, err) : rc;
}

/* Counts occurrences of {localpart}. */
static size_t placeholders(const char *tmpl)
{
    size_t n = 0;
    for (const char *p = strstr(tmpl, PLACEHOLDER); p; p = strstr(p + strlen(PLACEHOLDER), PLACEHOLDER))
        n++;
    return n;
}

mr_code ua_email_to_matrix_id(const char *tmpl, const char *email, char *out, size_t cap, mr_err *err)
{
    const char *at = strchr(email, '@');
    if (!at || strchr(at + 1, '@'))
        return mr_err_set(err, MR_EINVAL, "the email has no single '@'");
    if (at == email || at[1] == '\0')
        return mr_err_set(err, MR_EINVAL, "the email has an empty side around '@'");
    const char *p = strstr(tmpl, PLACEHOLDER);
    if (!p)
        return mr_err_set(err, MR_EINVAL, "the template has no " PLACEHOLDER);
    int n = snprintf(out, cap, "%.*s%.*s%s", (int)(p - tmpl), tmpl, (int)(at - email), email, p + strlen(PLACEHOLDER));
    if (n < 0 || (size_t)n >= cap)
        return mr_err_set(err, MR_EINVAL, "the derived Matrix ID is longer than %zu bytes", cap - 1);
    mr_code rc = mr_id_parse_user(out, NULL, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "the derived Matrix ID is not valid");
    return rc;
}

static mr_code check_template(const char *tmpl, mr_err *err)
{
    size_t n = placeholders(tmpl);
    if (n != 1)
        return mr_err_set(err, MR_EINVAL, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE: must contain exactly one " PLACEHOLDER
                          " placeholder, found %zu in \"%.200s\"", n, tmpl);
    /* A template that cannot make a valid ID from a plain localpart would fail every request. */
    char sample[MR_ID_MAX + 1];
    mr_err why = {0};
    if (ua_email_to_matrix_id(tmpl, "x@example.com", sample, sizeof sample, &why) != MR_OK)
        return mr_err_set(err, MR_EINVAL, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE: \"%.200s\" gives no Matrix user ID for "
                          "localpart \"x\": %s", tmpl, why.msg);
    return MR_OK;
}

/* https://, or http:// to a loopback host; plain http elsewhere only when allowed (browser
 * redirects on a LAN). No user:password@, no fragment. */
static mr_code check_url(const char *name, const char *url, bool plain_http_anywhere, mr_err *err)
{
    const char *rest = NULL;
    bool tls = false;
    if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8, tls = true;
    else if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    if (!rest || !*rest || *rest == '/')
        return mr_err_set(err, MR_EINVAL, "%s: \"%.200s\" is not an http(s) URL with a host", name, url);
    size_t host_len = strcspn(rest, "/?#");
    if (memchr(rest, '@', host_len))
        return mr_err_set(err, MR_EINVAL, "%s: must not carry a user name or password", name);
    if (strchr(url, '#') || strpbrk(url, " \t\r\n"))
        return mr_err_set(err, MR_EINVAL, "%s: \"%.200s\" holds a fragment or whitespace", name, url);
    if (tls || plain_http_anywhere)
        return MR_OK;
    static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(loopback[i]);
        if (strncasecmp(rest, loopback[i], n) == 0 && strchr(":/?", rest[n] ? rest[n] : '/'))
            return MR_OK;
    }
    return mr_err_set(err, MR_EINVAL, "%s: \"%.200s\" must be https:// (http:// only to a loopback host)", name, url);
}

static mr_code read_url(const reader *r, const char *name, bool plain_http_anywhere, char **out, mr_err *err)
{
    mr_code rc = read_str(r, name, out, err);
    return rc == MR_OK && *out ? check_url(name, *out, plain_http_anywhere, err) : rc;
}

static mr_code require(const char *name, const char *value, const char *why, mr_err *err)
{
    return value ? MR_OK : mr_err_set(err, MR_EINVAL, "%s: required %s", name, why);
}

static mr_code read_trusted(const reader *r, ua_settings *s, mr_err *err)
{
    mr_code rc;
    if ((rc = read_bool(r, TU "AUTH_ENABLED", &s->trusted, err)) != MR_OK ||
        (rc = read_bool(r, TU "REQUIRE_JWT", &s->require_jwt, err)) != MR_OK ||
        (rc = read_header_name(r, TU "USER_ID_HEADER", &s->user_id_header, err)) != MR_OK ||
        (rc = read_header_name(r, TU "EMAIL_HEADER", &s->email_header, err)) != MR_OK ||
        (rc = read_header_name(r, TU "MATRIX_USER_ID_HEADER", &s->matrix_user_id_header, err)) != MR_OK ||
        (rc = read_str(r, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", &s->email_template, err)) != MR_OK ||
        (rc = read_header_name(r, TU "JWT_HEADER", &s->jwt_header, err)) != MR_OK ||
        (rc = read_url(r, TU "JWKS_URL", false, &s->jwks_url, err)) != MR_OK ||
        (rc = read_str(r, TU "JWT_AUDIENCE", &s->jwt_audience, err)) != MR_OK ||
        (rc = read_str(r, TU "JWT_ISSUER", &s->jwt_issuer, err)) != MR_OK ||
        (rc = read_str(r, TU "JWT_EMAIL_CLAIM", &s->jwt_email_claim, err)) != MR_OK ||
        (rc = read_str(r, TU "JWT_USER_ID_CLAIM", &s->jwt_user_id_claim, err)) != MR_OK ||
        (rc = read_str(r, TU "JWT_MATRIX_USER_ID_CLAIM", &s->jwt_matrix_user_id_claim, err)) != MR_OK)
        return rc;
    if (!s->jwt_email_claim && !(s->jwt_email_claim = strdup("email")))
        return mr_err_set(err, MR_ENOMEM, TU "JWT_EMAIL_CLAIM: out of memory");
    if (s->trusted &&
        (rc = require(TU "USER_ID_HEADER", s->user_id_header, "when " TU "AUTH_ENABLED is true", err)) != MR_OK)
        return rc;
    if (s->email_template) {
        if ((rc = check_template(s->email_template, err)) != MR_OK)
            return rc;
        /* Strict mode derives from the verified email claim; header-only mode has only the header. */
        if (!s->require_jwt &&
            (rc = require(TU "EMAIL_HEADER", s->email_header,
                          "when " TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE is set without " TU "REQUIRE_JWT: the "
                          "Matrix localpart is derived from the trusted email header", err)) != MR_OK)
            return rc;
    }
    if (s->require_jwt) {
        static const char why[] = "when " TU "REQUIRE_JWT is true";
        if ((rc = require(TU "JWT_HEADER", s->jwt_header, why, err)) != MR_OK ||
            (rc = require(TU "JWKS_URL", s->jwks_url, why, err)) != MR_OK ||
            (rc = require(TU "JWT_AUDIENCE", s->jwt_audience, why, err)) != MR_OK ||
            (rc = require(TU "JWT_ISSUER", s->jwt_issuer, why, err)) != MR_OK)
            return rc;
    }
    return MR_OK;
}

static mr_code read_provider(const reader *r, const char *name, const char *public_url, ua_provider *p,
                             mr_err *err)
{
    char upper[MR_OAUTH_PROVIDER_MAX + 1], var[160];
    size_t i = 0;
    for (; name[i]; i++)
        upper[i] = (char)toupper((unsigned char)name[i]);
    upper[i] = '\0';
    if (!(p->name = strdup(name)))
        return mr_err_set(err, MR_ENOMEM, "MINDROOM_OAUTH_PROVIDERS: out of memory");
    /* The token URL receives the client secret, so only the browser's redirect may be plain http. */
    struct {
        const char *suffix;
        char **out;
        bool url, plain_http_anywhere, required;
    } fields[] = {
        {"AUTHORIZE_URL", &p->authorize_url, true, false, true},
        {"TOKEN_URL", &p->token_url, true, false, true},
        {"CLIENT_ID", &p->client_id, false, false, true},
        {"CLIENT_SECRET", &p->client_secret, false, false, true},
        {"REDIRECT_URL", &p->redirect_url, true, true, false},
    };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        snprintf(var, sizeof var, "MINDROOM_OAUTH_%s_%s", upper, fields[f].suffix);
        mr_code rc = fields[f].url ? read_url(r, var, fields[f].plain_http_anywhere, fields[f].out, err)
                                   : read_str(r, var, fields[f].out, err);
        if (rc != MR_OK)
            return rc;
        if (*fields[f].out || !fields[f].required)
            continue;
        return mr_err_set(err, MR_EINVAL, "%s: required because MINDROOM_OAUTH_PROVIDERS lists \"%s\"", var, name);
    }
    if (p->redirect_url)
        return MR_OK;
    if (!public_url)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PUBLIC_URL: required for the OAuth callback of \"%s\" (or set "
                          "MINDROOM_OAUTH_%s_REDIRECT_URL)", name, upper);
    size_t blen = strlen(public_url);
    while (blen > 0 && public_url[blen - 1] == '/')
        blen--;
    size_t cap = blen + strlen(name) + 32;
    if (!(p->redirect_url = malloc(cap)))
        return mr_err_set(err, MR_ENOMEM, "MINDROOM_PUBLIC_URL: out of memory");
    snprintf(p->redirect_url, cap, "%.*s/api/oauth/%s/callback", (int)blen, public_url, name);
    return MR_OK;
}

static mr_code read_providers(const reader *r, ua_settings *s, mr_err *err)
{
    const char *list = value_of(r, "MINDROOM_OAUTH_PROVIDERS");
    char *public_url = NULL;
    mr_code rc = read_url(r, "MINDROOM_PUBLIC_URL", true, &public_url, err);
    for (const char *p = list; rc == MR_OK && p && *p;) {
        size_t n = strcspn(p, ",");
        char name[MR_OAUTH_PROVIDER_MAX + 2];
        /* Spaces around names are allowed; the name itself is checked below. */
        while (n > 0 && *p == ' ')
            p++, n--;
        size_t len = n;
        while (len > 0 && p[len - 1] == ' ')
            len--;
        snprintf(name, sizeof name, "%.*s", (int)(len > MR_OAUTH_PROVIDER_MAX ? MR_OAUTH_PROVIDER_MAX + 1 : len), p);
        if ((rc = mr_oauth_provider_check(name, err)) != MR_OK) {
            mr_err_prefix(err, "MINDROOM_OAUTH_PROVIDERS");
            break;
        }
        if (ua_settings_provider(s, name)) {
            rc = mr_err_set(err, MR_EINVAL, "MINDROOM_OAUTH_PROVIDERS: \"%s\" is listed twice", name);
            break;
        }
        ua_provider *grown = realloc(s->providers, (s->n_providers + 1) * sizeof *grown);
        if (!grown) {
            rc = mr_err_set(err, MR_ENOMEM, "MINDROOM_OAUTH_PROVIDERS: out of memory");
            break;
        }
        s->providers = grown;
        memset(&grown[s->n_providers], 0, sizeof *grown);
        rc = read_provider(r, name, public_url, &grown[s->n_providers++], err);
        p += n;
        if (*p == ',')
            p++;
    }
    free(public_url);
    return rc;
}

/* A whole number from 0 to max, dflt when unset. */
static mr_code read_count(const reader *r, const char *name, size_t dflt, long max, size_t *out, mr_err *err)
{
    const char *v = value_of(r, name);
    long n = (long)dflt;
    mr_code rc = v ? mr_runtime_parse_long(name, v, 0, max, &n, err) : MR_OK;
    *out = (size_t)n;
    return rc;
}

mr_code ua_settings_load(ua_getenv_fn get, void *ctx, ua_settings *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    reader r = {get, ctx};
    mr_code rc = read_trusted(&r, out, err);
    if (rc == MR_OK)
        rc = read_str(&r, "MINDROOM_API_KEY", &out->api_key, err);
    if (rc == MR_OK)
        rc = read_str(&r, "MINDROOM_OWNER_USER_ID", &out->owner_user_id, err);
    if (rc == MR_OK && out->owner_user_id && (rc = mr_id_parse_user(out->owner_user_id, NULL, err)) != MR_OK)
        mr_err_prefix(err, "MINDROOM_OWNER_USER_ID");
    if (rc == MR_OK)
        rc = read_count(&r, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE", UA_JWT_CACHE_DEFAULT, 1000000,
                        &out->jwt_cache_entries, err);
    if (rc == MR_OK)
        rc = read_count(&r, TU "JWT_LEEWAY_SECONDS", UA_JWT_LEEWAY_DEFAULT_S, UA_JWT_LEEWAY_MAX_S,
                        &out->jwt_leeway_s, err);
    if (rc == MR_OK)
        rc = read_providers(&r, out, err);
    return rc;
}

static void free_secret(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

void ua_settings_free(ua_settings *s)
{
    char **strs[] = {&s->user_id_header, &s->email_header, &s->matrix_user_id_header, &s->email_template,
                     &s->jwt_header, &s->jwks_url, &s->jwt_audience, &s->jwt_issuer, &s->jwt_email_claim,
                     &s->jwt_user_id_claim, &s->jwt_matrix_user_id_claim, &s->owner_user_id};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    free_secret(s->api_key);
    for (size_t i = 0; i < s->n_providers; i++) {
        ua_provider *p = &s->providers[i];
        free(p->name);
        free(p->authorize_url);
        free(p->token_url);
        free(p->client_id);
        free_secret(p->client_secret);
        free(p->redirect_url);
    }
    free(s->providers);
    memset(s, 0, sizeof *s);
}

const ua_provider *ua_settings_provider(const ua_settings *s, const char *name)
{
    for (size_t i = 0; i < s->n_providers; i++)
        if (strcmp(s->providers[i].name, name) == 0)
            return &s->providers[i];
    return NULL;
}
