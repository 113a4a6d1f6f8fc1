/* tool_mcp.c -- the tools of the configured MCP servers as the agent's tools: one client per
 * server (started on first use), its tools listed and offered to the model as
 * "<server>__<tool>", listed again after the server restarted or said its tools changed, and
 * each call made through the tool runner with the time left to it. */
#include "agent_tools.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/log.h"
#include "mindroom/mcp.h"

#define COMPONENT "agent"
#define FN_NAME_MAX 64               /* OpenAI's function names: ^[a-zA-Z0-9_-]{1,64}$ */

typedef struct mcp_server mcp_server;

typedef struct mcp_tool {
    mr_tool_def def;             /* name "<server>__<tool>", ctx this */
    char *tool;                  /* the name the server gave */
    mcp_server *server;
} mcp_tool;

/* One listing of a server's tools. A listing is kept until the hub is freed, since a call the
 * runner abandoned past its deadline may still read its tool. */
typedef struct mcp_listing {
    mcp_tool *tools;
    size_t n;
    struct mcp_listing *older;
} mcp_listing;

struct mcp_server {
    char *name;
    mr_mcp_client *client;
    pthread_mutex_t mu;          /* guards listing and listed_version */
    mcp_listing *listing;        /* the newest; NULL until listed */
    unsigned long listed_version; /* mr_mcp_client_tools_version when it was listed */
};

struct mcp_hub {
    mcp_server *servers;
    size_t n;
};

/* ---- "${NAME}" values ---- */

/* value with every "${NAME}" replaced by lookup(NAME) (malloc'd). MR_EINVAL naming the server,
 * the field and the variable when one is unset or the braces do not close. */
static mr_code interpolate(const char *value, const char *server, const char *field, mcp_lookup_fn lookup,
                           void *lookup_ctx, char **out, mr_err *err)
{
    mr_strbuf b = {0};
    const char *p = value;
    for (const char *at; (at = strstr(p, "${")) != NULL; p = strchr(at, '}') + 1) {
        const char *end = strchr(at, '}');
        if (!end) {
            free(b.s);
            return mr_err_set(err, MR_EINVAL, "mcp_servers.%s.%s: \"${\" without a closing \"}\"", server, field);
        }
        char *name = strndup(at + 2, (size_t)(end - at - 2));
        const char *v = name && *name ? lookup(lookup_ctx, name) : NULL;
        if (!v) {
            mr_code rc = name ? mr_err_set(err, MR_EINVAL, "mcp_servers.%s.%s: the variable %s is not set; set it in "
                                           "the environment or in .env next to config.yaml", server, field,
                                           *name ? name : "(empty name)")
                              : mr_err_set(err, MR_ENOMEM, "out of memory");
            free(name);
            free(b.s);
            return rc;
        }
        free(name);
        mr_strbuf_add(&b, p, (size_t)(at - p));
        mr_strbuf_puts(&b, v);
    }
    mr_strbuf_puts(&b, p);
    if (!mr_strbuf_ok(&b)) {
        free(b.s);
        return mr_err_set(err, MR_ENOMEM, "out of memory reading mcp_servers.%s.%s", server, field);
    }
    *out = mr_strbuf_take(&b);
    return MR_OK;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* A NULL-terminated copy of list with its values interpolated; field names it in messages. */
static mr_code interpolate_list(const mr_strlist *list, const char *server, const char *field, mcp_lookup_fn lookup,
                                void *lookup_ctx, char ***out, mr_err *err)
{
    char **v = calloc(list->len + 1, sizeof *v);
    if (!v)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading mcp_servers.%s.%s", server, field);
    for (size_t i = 0; i < list->len; i++) {
        mr_code rc = interpolate(list->v[i], server, field, lookup, lookup_ctx, &v[i], err);
        if (rc != MR_OK) {
            free_strv(v);
            return rc;
        }
    }
    *out = v;
    return MR_OK;
}

/* ---- the hub ---- */

static mr_code server_open(mcp_server *s, const mr_mcp_server_cfg *m, const char *storage_path, mcp_lookup_fn lookup,
                           void *lookup_ctx, mr_err *err)
{
    char **args = NULL, **env = NULL, **headers = NULL;
    mr_code rc = interpolate_list(&m->args, m->name, "args", lookup, lookup_ctx, &args, err);
    if (rc == MR_OK)
        rc = interpolate_list(&m->env, m->name, "env", lookup, lookup_ctx, &env, err);
    if (rc == MR_OK)
        rc = interpolate_list(&m->headers, m->name, "headers", lookup, lookup_ctx, &headers, err);
    mr_mcp_server_opts o = {.name = m->name, .command = m->command, .args = (const char *const *)args,
                            .env = (const char *const *)env, .cwd = m->url ? NULL : m->cwd ? m->cwd : storage_path,
                            .url = m->url, .headers = (const char *const *)headers,
                            .timeout_ms = m->timeout_seconds * 1000};
    s->name = strdup(m->name);
    if (rc == MR_OK && !s->name)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory");
    if (rc == MR_OK)
        rc = mr_mcp_client_new(&o, &s->client, err);
    if (rc == MR_OK && pthread_mutex_init(&s->mu, NULL) != 0) {
        mr_mcp_client_free(s->client);
        s->client = NULL;
        rc = mr_err_set(err, MR_EINTERNAL, "mcp_servers.%s: cannot make a lock", m->name);
    }
    free_strv(args);
    free_strv(env);
    free_strv(headers);
    return rc;
}

static void tool_clear(mcp_tool *t)
{
    free((char *)t->def.name);
    free((char *)t->def.description);
    free((char *)t->def.parameters);
    free(t->tool);
    memset(t, 0, sizeof *t);
}

static void listing_free(mcp_listing *l)
{
    while (l) {
        mcp_listing *older = l->older;
        for (size_t i = 0; i < l->n; i++)
            tool_clear(&l->tools[i]);
        free(l->tools);
        free(l);
        l = older;
    }
}

void mcp_hub_free(mcp_hub *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        mcp_server *s = &h->servers[i];
        if (s->client) {
            mr_mcp_client_free(s->client);
            pthread_mutex_destroy(&s->mu);
        }
        listing_free(s->listing);
        free(s->name);
    }
    free(h->servers);
    free(h);
}

mr_code mcp_hub_new(const mr_config *cfg, const char *storage_path, mcp_lookup_fn lookup, void *lookup_ctx,
                    mcp_hub **out, mr_err *err)
{
    *out = NULL;
    mcp_hub *h = calloc(1, sizeof *h);
    if (h && cfg->n_mcp_servers)
        h->servers = calloc(cfg->n_mcp_servers, sizeof *h->servers);
    if (!h || (cfg->n_mcp_servers && !h->servers)) {
        free(h);
        return mr_err_set(err, MR_ENOMEM, "out of memory starting the MCP clients");
    }
    for (size_t i = 0; i < cfg->n_mcp_servers; i++) {
        mr_code rc = server_open(&h->servers[i], &cfg->mcp_servers[i], storage_path, lookup, lookup_ctx, err);
        h->n++;
        if (rc != MR_OK) {
            mcp_hub_free(h);
            return rc;
        }
    }
    *out = h;
    return MR_OK;
}

static mcp_server *server_named(const mcp_hub *h, const char *name)
{
    for (size_t i = 0; h && i < h->n; i++)
        if (strcmp(h->servers[i].name, name) == 0)
            return &h->servers[i];
    return NULL;
}

/* ---- calls ---- */

static mr_code call_tool(void *ctx, const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out,
                         mr_err *err)
{
    const mcp_tool *t = ctx;
    long long left = deadline_ms - mr_clock_mono_ms();
    const char *fields[] = {"entity", env->entity ? env->entity : "", "requester", env->requester ? env->requester : "",
                            "mcp_server", t->server->name, "mcp_tool", t->tool, NULL};
    mr_log_write(MR_LOG_INFO, COMPONENT, fields, "MCP tool call");
    if (left <= 0)
        return mr_err_set(err, MR_EUNAVAIL, "%s: no time left for the call", t->def.name);
    json_t *result = NULL;
    mr_code rc = mr_mcp_tool_call(t->server->client, t->tool, args, (long)left, &result, err);
    if (rc != MR_OK)
        return rc;
    bool ok = mr_mcp_result_text(result, out);
    bool is_error = json_is_true(json_object_get(result, "isError"));
    json_decref(result);
    if (!ok && out->failed)
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory reading the result", t->def.name);
    /* The tool failed and said why: the model reads the why as an error. */
    if (is_error)
        return mr_err_set(err, MR_EINVAL, "%s failed: %.400s", t->def.name, out->s ? out->s : "(no text)");
    return MR_OK;
}

/* ---- listings ---- */

/* "<server>__<tool>" with every character a function name may not hold made '_'; false when it
 * is longer than a function name may be. */
static bool function_name(const char *server, const char *tool, char out[FN_NAME_MAX + 1])
{
    size_t n = (size_t)snprintf(out, FN_NAME_MAX + 1, "%s__%s", server, tool);
    for (char *c = out; *c; c++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", *c))
            *c = '_';
    return n <= FN_NAME_MAX;
}

/* One tool of the listing; out->def.name stays NULL when the tool is left out. */
static mr_code tool_from(mcp_server *s, json_t *t, mcp_tool *out, mr_err *err)
{
    const char *tool = json_string_value(json_object_get(t, "name"));
    char name[FN_NAME_MAX + 1];
    if (!function_name(s->name, tool, name)) {
        const char *fields[] = {"mcp_server", s->name, "mcp_tool", tool, NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "the MCP tool %s__%s is left out: the model takes function "
                     "names of at most %d characters", s->name, tool, FN_NAME_MAX);
        return MR_OK;
    }
    const char *desc = json_string_value(json_object_get(t, "description"));
    *out = (mcp_tool){.def = {.name = strdup(name), .description = desc ? strdup(desc) : NULL,
                              .parameters = json_dumps(json_object_get(t, "inputSchema"), JSON_COMPACT),
                              .run_bound = call_tool, .ctx = out},
                      .tool = strdup(tool), .server = s};
    if (out->def.name && out->def.parameters && out->tool && (!desc || out->def.description))
        return MR_OK;
    tool_clear(out);
    return mr_err_set(err, MR_ENOMEM, "out of memory listing the tools of MCP server %s", s->name);
}

/* Lists the server's tools into a new listing (s->mu held). */
static mr_code relist(mcp_server *s, mr_err *err)
{
    json_t *tools = NULL;
    unsigned long version = mr_mcp_client_tools_version(s->client);
    mr_code rc = mr_mcp_tools_list(s->client, &tools, err);
    if (rc != MR_OK)
        return rc;
    mcp_listing *l = calloc(1, sizeof *l);
    if (l && json_array_size(tools))
        l->tools = calloc(json_array_size(tools), sizeof *l->tools);
    rc = l && (l->tools || !json_array_size(tools)) ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory");
    for (size_t i = 0; rc == MR_OK && i < json_array_size(tools); i++) {
        rc = tool_from(s, json_array_get(tools, i), &l->tools[l->n], err);
        if (rc == MR_OK && l->tools[l->n].def.name)
            l->n++;
    }
    json_decref(tools);
    if (rc != MR_OK) {
        listing_free(l);
        return rc;
    }
    l->older = s->listing;
    s->listing = l;
    s->listed_version = version;
    return MR_OK;
}

/* The server's tools, listed now when never listed, or when it restarted or said its list
 * changed since (the version is read before listing: a change during the listing lists again
 * next time). A server that
 * cannot list them gives the last listing (its calls then fail with the reason), or none. */
static const mcp_listing *server_tools(mcp_server *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->listing || s->listed_version != mr_mcp_client_tools_version(s->client)) {
        mr_err err = {0};
        if (relist(s, &err) != MR_OK) {
            const char *fields[] = {"mcp_server", s->name, NULL};
            mr_log_write(MR_LOG_WARN, COMPONENT, fields, "listing the tools of MCP server %s: %s", s->name, err.msg);
        }
    }
    const mcp_listing *l = s->listing;
    pthread_mutex_unlock(&s->mu);
    return l;
}

size_t mcp_hub_defs(mcp_hub *h, const mr_strlist *names, const mr_tool_def **out, size_t n, size_t cap)
{
    for (size_t i = 0; i < names->len; i++) {
        mcp_server *s = server_named(h, names->v[i]);
        bool dup = false;
        for (size_t k = 0; s && k < n; k++)
            dup |= out[k]->run_bound == call_tool && ((const mcp_tool *)out[k]->ctx)->server == s;
        const mcp_listing *l = s && !dup ? server_tools(s) : NULL;
        for (size_t k = 0; l && k < l->n; k++) {
            if (n == cap) {
                const char *fields[] = {"mcp_server", s->name, NULL};
                mr_log_write(MR_LOG_WARN, COMPONENT, fields, "an agent may have %zu tools: the rest of MCP server "
                             "%s's are left out", cap, s->name);
                return n;
            }
            out[n++] = &l->tools[k].def;
        }
    }
    return n;
}
