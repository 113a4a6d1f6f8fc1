/* connect.c -- minting, looking up and redeeming OAuth connect tokens; sealed credentials. */
#include "mindroom/oauth.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/ids.h"

#define FIELD_MAX 255

mr_code mr_oauth_provider_check(const char *name, mr_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MR_OAUTH_PROVIDER_MAX)
        return mr_err_set(err, MR_EINVAL, "provider name must be 1 to %d characters", MR_OAUTH_PROVIDER_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return mr_err_set(err, MR_EINVAL, "provider name \"%.64s\" may only hold a-z, 0-9 and _", name);
    }
    return MR_OK;
}

/* RFC 6749 section 3.3: scope tokens of %x21 / %x23-5B / %x5D-7E, one space apart. */
static mr_code scopes_check(const char *s, mr_err *err)
{
    size_t n = strlen(s);
    if (n > 2048)
        return mr_err_set(err, MR_EINVAL, "scopes: longer than 2048 characters");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool token_char = c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
        bool separator = c == ' ' && i > 0 && i + 1 < n && s[i + 1] != ' ';
        if (!token_char && !separator)
            return mr_err_set(err, MR_EINVAL,
                              "scopes: character %zu is not allowed (scope tokens separated by one space)", i + 1);
    }
    return MR_OK;
}

static mr_code printable_check(const char *field, const char *s, mr_err *err)
{
    size_t n = strlen(s);
    if (n == 0 || n > FIELD_MAX)
        return mr_err_set(err, MR_EINVAL, "%s: must be 1 to %d characters", field, FIELD_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return mr_err_set(err, MR_EINVAL, "%s: holds a control character", field);
    return MR_OK;
}

static mr_code request_check(const mr_oauth_connect_request *rq, mr_err *err)
{
    mr_code rc = mr_id_parse_user(rq->requester ? rq->requester : "", NULL, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "requester");
        return rc;
    }
    if ((rc = mr_oauth_provider_check(rq->provider, err)) != MR_OK)
        return rc;
    if (rq->scopes && (rc = scopes_check(rq->scopes, err)) != MR_OK)
        return rc;
    if (rq->agent && (rc = printable_check("agent", rq->agent, err)) != MR_OK)
        return rc;
    if (rq->room_id && (rc = mr_id_parse_room_id(rq->room_id, NULL, err)) != MR_OK) {
        mr_err_prefix(err, "room_id");
        return rc;
    }
    if (rq->ttl_ms < 0 || rq->ttl_ms > MR_OAUTH_CONNECT_TTL_MAX_MS)
        return mr_err_set(err, MR_EINVAL, "ttl_ms is %ld; it must be 1 to %ld (0 for the default)", rq->ttl_ms,
                          MR_OAUTH_CONNECT_TTL_MAX_MS);
    return MR_OK;
}

static void grant_key(char *out, size_t cap, const char *digest, const char *suffix)
{
    snprintf(out, cap, "oauth:connect:%s%s", digest, suffix);
}

mr_code mr_oauth_connect_mint(mr_store *s, const mr_oauth_connect_request *rq,
                              char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1], mr_err *err)
{
    token[0] = '\0';
    mr_code rc = request_check(rq, err);
    if (rc != MR_OK)
        return rc;
    long ttl = rq->ttl_ms ? rq->ttl_ms : MR_OAUTH_CONNECT_TTL_DEFAULT_MS;
    char fresh[MR_OAUTH_TOKEN_LEN + 1], digest[MR_OAUTH_SHA256_HEX_LEN + 1], key[128];
    if ((rc = mr_oauth_random_token(fresh, err)) != MR_OK)
        return rc;
    mr_oauth_sha256_hex(fresh, digest);
    grant_key(key, sizeof key, digest, "");
    long long now = mr_clock_wall_ms();
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I}", "v", 1, "user_id", rq->requester, "provider",
                          rq->provider, "scopes", rq->scopes ? rq->scopes : "", "created_at", (json_int_t)now,
                          "expires_at", (json_int_t)(now + ttl));
    bool ok = j != NULL;
    if (ok && rq->agent)
        ok = json_object_set_new(j, "agent", json_string(rq->agent)) == 0;
    if (ok && rq->room_id)
        ok = json_object_set_new(j, "room_id", json_string(rq->room_id)) == 0;
    char *text = ok ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory minting a connect token");
    bool won = false;
    /* set_nx: a digest collision with a live grant would hand one token another's grant. */
    rc = mr_store_set_nx(s, key, text, strlen(text), ttl, &won, err);
    free(text);
    if (rc != MR_OK) {
        mr_err_prefix(err, "storing connect token");
        return rc;
    }
    if (!won)
        return mr_err_set(err, MR_EINTERNAL, "connect token collided with a live one; mint again");
    memcpy(token, fresh, sizeof fresh);
    return MR_OK;
}

mr_code mr_oauth_connect_link(const char *base_url, const char *provider, const char *token,
                              char *out, size_t cap, mr_err *err)
{
    const char *base = base_url ? base_url : "";
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    int n = snprintf(out, cap, "%.*s/api/oauth/%s/authorize?connect_token=%s", (int)blen, base, provider, token);
    if (n < 0 || (size_t)n >= cap)
        return mr_err_set(err, MR_EINVAL, "connect link longer than %zu bytes", cap);
    return MR_OK;
}

static bool token_shaped(const char *t)
{
    if (!t || strlen(t) != MR_OAUTH_CONNECT_TOKEN_LEN)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_'))
            return false;
    return true;
}

static char *dup_member(json_t *j, const char *name)
{
    const char *v = json_string_value(json_object_get(j, name));
    return v ? strdup(v) : NULL;
}

static mr_code grant_parse(const char *text, size_t len, mr_oauth_connect_grant *g, mr_err *err)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    g->requester = dup_member(j, "user_id");
    g->provider = dup_member(j, "provider");
    g->scopes = dup_member(j, "scopes");
    g->agent = dup_member(j, "agent");
    g->room_id = dup_member(j, "room_id");
    g->created_at_ms = json_integer_value(json_object_get(j, "created_at"));
    g->expires_at_ms = json_integer_value(json_object_get(j, "expires_at"));
    json_decref(j);
    if (!g->requester || !g->provider || !g->scopes || g->expires_at_ms <= 0)
        return mr_err_set(err, MR_EINTERNAL, "connect grant oauth:connect:%s is not a grant record",
                          g->token_sha256);
    return MR_OK;
}

mr_code mr_oauth_connect_lookup(mr_store *s, const char *token, mr_oauth_connect_grant *out, mr_err *err)
{
    return mr_oauth_connect_lookup_at(s, token, mr_clock_wall_ms(), out, err);
}

mr_code mr_oauth_connect_lookup_at(mr_store *s, const char *token, long long now, mr_oauth_connect_grant *out,
                                   mr_err *err)
{
    memset(out, 0, sizeof *out);
    if (!token_shaped(token))
        return mr_err_set(err, MR_EINVAL, "connect token is malformed");
    mr_oauth_sha256_hex(token, out->token_sha256);
    char key[128], *text = NULL;
    size_t len = 0;
    grant_key(key, sizeof key, out->token_sha256, "");
    mr_code rc = mr_store_get(s, key, &text, &len, err);
    if (rc == MR_ENOTFOUND)
        return mr_err_set(err, MR_ENOTFOUND, "connect token is unknown or has expired");
    if (rc != MR_OK)
        return rc;
    rc = grant_parse(text, len, out, err);
    free(text);
    text = NULL;
    if (rc == MR_OK && out->expires_at_ms <= now)
        rc = mr_err_set(err, MR_ENOTFOUND, "connect token is unknown or has expired");
    if (rc == MR_OK) {
        grant_key(key, sizeof key, out->token_sha256, ":used");
        rc = mr_store_get(s, key, &text, &len, err);
        free(text);
        if (rc == MR_OK)
            rc = mr_err_set(err, MR_EEXISTS, "connect token was already used");
        else if (rc == MR_ENOTFOUND)
            rc = MR_OK;
    }
    if (rc != MR_OK)
        mr_oauth_connect_grant_clear(out);
    return rc;
}

mr_code mr_oauth_connect_redeem(mr_store *s, const mr_oauth_connect_grant *g, mr_err *err)
{
    return mr_oauth_connect_redeem_at(s, g, mr_clock_wall_ms(), err);
}

mr_code mr_oauth_connect_redeem_at(mr_store *s, const mr_oauth_connect_grant *g, long long now, mr_err *err)
{
    long long left = g->expires_at_ms - now;
    if (left <= 0)
        return mr_err_set(err, MR_ENOTFOUND, "connect token has expired");
    char key[128];
    grant_key(key, sizeof key, g->token_sha256, ":used");
    bool won = false;
    mr_code rc = mr_store_set_nx(s, key, "1", 1, (long)left, &won, err);
    if (rc != MR_OK)
        return rc;
    return won ? MR_OK : mr_err_set(err, MR_EEXISTS, "connect token was already used");
}

void mr_oauth_connect_grant_clear(mr_oauth_connect_grant *g)
{
    free(g->requester);
    free(g->provider);
    free(g->scopes);
    free(g->agent);
    free(g->room_id);
    memset(g, 0, sizeof *g);
}

static mr_code cred_key(const char *user_id, const char *provider, char *out, size_t cap, mr_err *err)
{
    mr_code rc = mr_oauth_provider_check(provider, err);
    if (rc != MR_OK)
        return rc;
    if ((rc = mr_id_parse_user(user_id, NULL, err)) != MR_OK)
        return rc;
    snprintf(out, cap, "oauth:cred:%s:%s", provider, user_id);
    return MR_OK;
}

mr_code mr_oauth_credentials_put(mr_store *s, const char *user_id, const char *provider, const char *json,
                                 size_t len, mr_err *err)
{
    char key[MR_ID_MAX + MR_OAUTH_PROVIDER_MAX + 16];
    mr_code rc = cred_key(user_id, provider, key, sizeof key, err);
    return rc == MR_OK ? mr_store_set_secret(s, key, json, len, 0, err) : rc;
}

mr_code mr_oauth_credentials_get(mr_store *s, const char *user_id, const char *provider, char **json,
                                 size_t *len, mr_err *err)
{
    *json = NULL;
    char key[MR_ID_MAX + MR_OAUTH_PROVIDER_MAX + 16];
    mr_code rc = cred_key(user_id, provider, key, sizeof key, err);
    return rc == MR_OK ? mr_store_get_secret(s, key, json, len, err) : rc;
}
