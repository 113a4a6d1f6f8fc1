/* oauth_api.c -- the oauth_api tool: GET a path of an OAuth provider's API with the requester's
 * own access token (config.yaml oauth_providers). Without one it answers with a connect link
 * (seed 004: /api/oauth/<provider>/authorize?connect_token=...) bound to the requester, the
 * provider, the agent and the room, which mindroom-upstream-auth redeems for that person only. */
#include "tools_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/http.h"
#include "mindroom/oauth.h"

#define TOOL "oauth_api"
#define RESPONSE_MAX (1024 * 1024)
#define LINK_MAX 1024

static mr_code find_provider(const mr_tools_oauth *o, const char *name, const mr_oauth_provider_cfg **out,
                             mr_err *err)
{
    for (size_t i = 0; i < o->n_providers; i++)
        if (strcmp(o->providers[i].name, name) == 0) {
            *out = &o->providers[i];
            return MR_OK;
        }
    mr_strbuf names = {0};
    for (size_t i = 0; i < o->n_providers; i++) {
        mr_strbuf_puts(&names, i ? ", " : "");
        mr_strbuf_puts(&names, o->providers[i].name);
    }
    mr_code rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'provider' must be one of the configured providers "
                            "(%s), not '%.64s'", TOOL, !mr_strbuf_ok(&names) ? "out of memory"
                            : names.len ? names.s : "none", name);
    mr_strbuf_free(&names);
    return rc;
}

/* A path under the API base URL: it cannot name another host or climb out of the base, so the
 * bearer token goes nowhere else. */
static mr_code check_path(const char *path, mr_err *err)
{
    if (path[0] != '/')
        return mr_err_set(err, MR_EINVAL, "%s: the argument 'path' must start with '/', e.g. /user", TOOL);
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '#' || *p == '\\')
            return mr_err_set(err, MR_EINVAL, "%s: the argument 'path' must not hold spaces, control characters, "
                              "'#' or '\\'", TOOL);
    for (const char *seg = path; seg; seg = strchr(seg + 1, '/')) {
        size_t n = strcspn(seg + 1, "/?");
        if ((n == 2 && strncmp(seg + 1, "..", 2) == 0) || (n == 1 && seg[1] == '.'))
            return mr_err_set(err, MR_EINVAL, "%s: the argument 'path' must not hold '.' or '..' segments", TOOL);
        if (seg[1 + n] == '?')
            break;
    }
    return MR_OK;
}

static char *join_scopes(const mr_strlist *scopes)
{
    mr_strbuf b = {0};
    mr_strbuf_puts(&b, "");
    for (size_t i = 0; i < scopes->len; i++) {
        mr_strbuf_puts(&b, i ? " " : "");
        mr_strbuf_puts(&b, scopes->v[i]);
    }
    return mr_strbuf_take(&b);
}

/* What the model tells the person: the link to connect, as the requester. */
static mr_code connect_link(const mr_tools_env *env, const mr_oauth_provider_cfg *p, const char *why, mr_strbuf *out,
                            mr_err *err)
{
    char *scopes = join_scopes(&p->scopes);
    if (!scopes)
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
    mr_oauth_connect_request rq = {.requester = env->requester, .provider = p->name, .scopes = scopes,
                                   .agent = env->entity, .room_id = env->room_id};
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1], link[LINK_MAX];
    mr_code rc = mr_oauth_connect_mint(env->oauth->store, &rq, token, err);
    free(scopes);
    if (rc == MR_OK)
        rc = mr_oauth_connect_link(env->oauth->public_url, p->name, token, link, sizeof link, err);
    explicit_bzero(token, sizeof token);
    if (rc != MR_OK) {
        mr_err_prefix(err, "%s: making a connect link for %s", TOOL, p->name);
        return rc;
    }
    mr_strbuf_printf(out, "%s %s must connect their %s account first. Give them this link; it works once, for "
                     "them only, for %ld minutes: %s\nOnce they have connected, call %s again.", why, env->requester,
                     p->name, MR_OAUTH_CONNECT_TTL_DEFAULT_MS / 60000, link, TOOL);
    explicit_bzero(link, sizeof link);
    return MR_OK;
}

static mr_code api_get(const mr_oauth_provider_cfg *p, const char *path, const char *token, long long deadline_ms,
                       mr_http_result *res, mr_err *err)
{
    long left = (long)(deadline_ms - mr_clock_mono_ms());
    if (left <= 0)
        return mr_err_set(err, MR_EUNAVAIL, "%s: out of time", TOOL);
    size_t base_len = strlen(p->api_base_url);
    while (base_len > 0 && p->api_base_url[base_len - 1] == '/')
        base_len--;
    char *url = mr_str_printf("%.*s%s", (int)base_len, p->api_base_url, path);
    mr_http_client *c = NULL;
    mr_http_client_opts co = {.timeout_ms = left, .max_response = RESPONSE_MAX, .bearer_token = token};
    static const char *const headers[] = {"Accept: application/json", NULL};
    mr_http_call call = {.method = "GET", .url = url, .headers = headers};
    mr_code rc = url ? mr_http_client_new(&co, &c, err) : mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
    if (rc == MR_OK)
        rc = mr_http_client_do(c, &call, res, err);
    mr_http_client_free(c);
    free(url);
    return rc;
}

static mr_code oauth_api_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out,
                             mr_err *err)
{
    if (!env->oauth)
        return mr_err_set(err, MR_EINVAL, "%s: no OAuth providers are set up for this agent (oauth_providers in "
                          "config.yaml)", TOOL);
    if (!env->requester)
        return mr_err_set(err, MR_EINVAL, "%s: this call has no requester to act for", TOOL);
    const char *provider, *path;
    const mr_oauth_provider_cfg *p = NULL;
    mr_code rc = tools_arg_str(args, TOOL, "provider", true, &provider, err);
    if (rc == MR_OK)
        rc = tools_arg_str(args, TOOL, "path", true, &path, err);
    if (rc == MR_OK)
        rc = find_provider(env->oauth, provider, &p, err);
    if (rc == MR_OK)
        rc = check_path(path, err);
    if (rc != MR_OK)
        return rc;
    const char *secret = mr_setting(NULL, p->client_secret_env, env->oauth->dotenv, NULL);
    if (!secret || !*secret)
        return mr_err_set(err, MR_EUNAVAIL, "%s: %s is not set in the environment or .env: the %s client cannot "
                          "refresh credentials", TOOL, p->client_secret_env, p->name);
    mr_oauth_client client = {.token_url = p->token_url, .client_id = p->client_id, .client_secret = secret};
    char *token = NULL;
    rc = mr_oauth_credentials_fresh(env->oauth->store, env->requester, p->name, &client, &token, err);
    if (rc == MR_ENOTFOUND)
        return connect_link(env, p, "Not connected, or the connection has expired:", out, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "%s", TOOL);
        return rc;
    }
    mr_http_result res = {0};
    rc = api_get(p, path, token, deadline_ms, &res, err);
    explicit_bzero(token, strlen(token));
    free(token);
    if (rc == MR_OK && res.status == 401)
        rc = connect_link(env, p, "The provider no longer accepts the stored credentials:", out, err);
    else if (rc == MR_OK)
        mr_strbuf_printf(out, "HTTP %ld\n\n%s", res.status, res.body ? res.body : "");
    mr_http_result_clear(&res);
    return rc;
}

const mr_tool_def mr_tool_oauth_api = {
    .name = TOOL,
    .description = "GET a path of an OAuth provider's API (oauth_providers in config.yaml) as the person who "
                   "asked, with their own access token. When they have not connected that provider yet, the "
                   "result is a link for them to open; give it to them and call again once they have.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"provider\":{\"type\":\"string\",\"description\":\"the provider's name in config.yaml\"},"
                  "\"path\":{\"type\":\"string\",\"description\":\"the API path with any query, under the "
                  "provider's api_base_url, e.g. /user\"}},"
                  "\"required\":[\"provider\",\"path\"],\"additionalProperties\":false}",
    .run = oauth_api_run,
};
