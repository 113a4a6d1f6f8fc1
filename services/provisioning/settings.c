/* settings.c -- mindroom-provisioning's settings from flags and the environment, each checked
 * with a message that names the setting. */
#include "prov_internal.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/fsutil.h"
#include "mindroom/ids.h"

#define TOKEN_FILE_MAX 4096
#define TTL_MAX_S 86400L
#define POLL_MAX_S 300L
#define DEFAULT_CORS "https://chat.mindroom.chat"

/* The variable; an empty one counts as unset. */
static const char *setting(const char *var)
{
    const char *v = getenv(var);
    return v && *v ? v : NULL;
}

static mr_code dup_setting(char **out, const char *value, const char *name, mr_err *err)
{
    *out = strdup(value);
    return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "%s: out of memory", name);
}

static mr_code parse_long(const char *var, long dflt, long min, long max, long *out, mr_err *err)
{
    const char *v = setting(var);
    *out = dflt;
    return v ? mr_runtime_parse_long(var, v, min, max, out, err) : MR_OK;
}

/* The host of an http(s) URL, without brackets' contents changed and without the port. */
static mr_code homeserver_host(const char *url, char *host, size_t cap, mr_err *err)
{
    const char *h = strstr(url, "://") + 3;
    size_t n = strcspn(h, "/?#");
    const char *at = memchr(h, '@', n);
    if (at)
        return mr_err_set(err, MR_EINVAL, "MATRIX_HOMESERVER: %s must not carry credentials", url);
    size_t hostlen = n;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', n);
        hostlen = close ? (size_t)(close - h) + 1 : n;
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon)
            hostlen = (size_t)(colon - h);
    }
    if (hostlen == 0 || hostlen >= cap)
        return mr_err_set(err, MR_EINVAL, "MATRIX_HOMESERVER: %s has no usable host", url);
    memcpy(host, h, hostlen);
    host[hostlen] = '\0';
    return MR_OK;
}

static mr_code resolve_matrix(mr_provisioning_settings *s, mr_err *err)
{
    const char *hs = setting("MATRIX_HOMESERVER");
    if (!hs)
        return mr_err_set(err, MR_EINVAL, "MATRIX_HOMESERVER: not set; give the homeserver's URL, "
                                          "e.g. https://mindroom.chat");
    if (strncmp(hs, "http://", 7) != 0 && strncmp(hs, "https://", 8) != 0)
        return mr_err_set(err, MR_EINVAL, "MATRIX_HOMESERVER: '%s' is not an http:// or https:// URL", hs);
    mr_code rc = dup_setting(&s->homeserver, hs, "MATRIX_HOMESERVER", err);
    if (rc != MR_OK)
        return rc;
    size_t n = strlen(s->homeserver);
    while (n > 0 && s->homeserver[n - 1] == '/')
        s->homeserver[--n] = '\0';
    char host[MR_ID_MAX + 1];
    if ((rc = homeserver_host(s->homeserver, host, sizeof host, err)) != MR_OK)
        return rc;
    const char *name = setting("MATRIX_SERVER_NAME");
    const char *var = name ? "MATRIX_SERVER_NAME" : "MATRIX_HOMESERVER";
    if (!name)
        name = host;
    if ((rc = mr_id_parse_server_name(name, NULL, err)) != MR_OK) {
        mr_err_prefix(err, "%s", var);
        return MR_EINVAL;
    }
    return dup_setting(&s->server_name, name, var, err);
}

/* The token, or the first line of its file; never quoted in a message. */
static mr_code resolve_token(mr_provisioning_settings *s, mr_err *err)
{
    const char *token = setting("MATRIX_REGISTRATION_TOKEN");
    if (token)
        return dup_setting(&s->registration_token, token, "MATRIX_REGISTRATION_TOKEN", err);
    const char *path = setting("MATRIX_REGISTRATION_TOKEN_FILE");
    if (!path)
        return mr_err_set(err, MR_EINVAL, "MATRIX_REGISTRATION_TOKEN: not set; set it, or "
                                          "MATRIX_REGISTRATION_TOKEN_FILE to a file holding it");
    char *text = NULL;
    size_t len = 0;
    mr_code rc = mr_fs_read_all(path, TOKEN_FILE_MAX, &text, &len, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "MATRIX_REGISTRATION_TOKEN_FILE");
        return MR_EINVAL;
    }
    text[strcspn(text, "\r\n")] = '\0';
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        text[--n] = '\0';
    char *start = text + strspn(text, " \t");
    if (*start)
        rc = dup_setting(&s->registration_token, start, "MATRIX_REGISTRATION_TOKEN_FILE", err);
    else
        rc = mr_err_set(err, MR_EINVAL, "MATRIX_REGISTRATION_TOKEN_FILE: %s has no token on its first line", path);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

typedef bool (*item_check)(const char *item);

/* Splits a comma-separated list, trimming blanks; every item must pass check. */
static mr_code split_list(const char *var, const char *value, item_check check, const char *expected, char ***out,
                          size_t *count, mr_err *err)
{
    char *copy = strdup(value);
    if (!copy)
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", var);
    mr_code rc = MR_OK;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == MR_OK; tok = strtok_r(NULL, ",", &save)) {
        tok += strspn(tok, " \t");
        size_t n = strlen(tok);
        while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
            tok[--n] = '\0';
        if (!n)
            continue;
        if (!check(tok)) {
            rc = mr_err_set(err, MR_EINVAL, "%s: '%s' is not %s", var, tok, expected);
            break;
        }
        char **grown = realloc(*out, (*count + 1) * sizeof *grown);
        if (!grown || !(grown[*count] = strdup(tok))) {
            if (grown)
                *out = grown;
            rc = mr_err_set(err, MR_ENOMEM, "%s: out of memory", var);
            break;
        }
        *out = grown;
        (*count)++;
    }
    free(copy);
    return rc;
}

static bool is_origin(const char *s)
{
    const char *host = strncmp(s, "https://", 8) == 0 ? s + 8 : strncmp(s, "http://", 7) == 0 ? s + 7 : NULL;
    return host && *host && !strchr(host, '/');
}

mr_code mr_provisioning_settings_resolve(mr_provisioning_settings *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    mr_code rc = resolve_matrix(out, err);
    if (rc == MR_OK)
        rc = resolve_token(out, err);
    if (rc == MR_OK)
        rc = parse_long("MINDROOM_PROVISIONING_PAIR_TTL_SECONDS", 600, MR_PROVISIONING_MIN_TTL_S, TTL_MAX_S,
                        &out->pair_ttl_s, err);
    if (rc == MR_OK)
        rc = parse_long("MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS", 3, 1, POLL_MAX_S, &out->poll_interval_s, err);
    const char *proxies = setting("MINDROOM_PROVISIONING_TRUSTED_PROXIES");
    if (rc == MR_OK && proxies)
        rc = split_list("MINDROOM_PROVISIONING_TRUSTED_PROXIES", proxies, api_is_ip, "an IP address",
                        &out->trusted_proxies, &out->n_trusted_proxies, err);
    const char *origins = setting("MINDROOM_PROVISIONING_CORS_ORIGINS");
    if (rc == MR_OK)
        rc = split_list("MINDROOM_PROVISIONING_CORS_ORIGINS", origins ? origins : DEFAULT_CORS, is_origin,
                        "an origin like https://chat.example.org", &out->cors_origins, &out->n_cors_origins, err);
    return rc;
}

mr_code mr_provisioning_check_settings(const mr_runtime *rt, mr_err *err)
{
    (void)rt;
    mr_provisioning_settings s;
    mr_code rc = mr_provisioning_settings_resolve(&s, err);
    mr_provisioning_settings_free(&s);
    return rc;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void mr_provisioning_settings_free(mr_provisioning_settings *s)
{
    if (s->registration_token) {
        OPENSSL_cleanse(s->registration_token, strlen(s->registration_token));
        free(s->registration_token);
    }
    free(s->homeserver);
    free(s->server_name);
    free_list(s->trusted_proxies, s->n_trusted_proxies);
    free_list(s->cors_origins, s->n_cors_origins);
    memset(s, 0, sizeof *s);
}
