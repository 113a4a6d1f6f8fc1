/* tool_setup.c -- which built-in tools an agent gets and with which limits: the tool settings,
 * the agent's tool list from config.yaml, and a warning for every tool named there that this
 * build does not run (never silence), and for oauth_api without a provider or a client secret.
 * A name under mcp_servers is that server's tools (tool_mcp.c). */
#include "agent_tools.h"

#include <stdio.h>
#include <string.h>

#include "mindroom/log.h"
#include "mindroom/oauth.h"

#define COMPONENT "agent"

static mr_code read_flag(const mr_runtime *rt, const char *key, bool *out, mr_err *err)
{
    const char *v = mr_runtime_setting(rt, NULL, key, "0");
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return mr_err_set(err, MR_EINVAL, "%s: \"%s\" is neither 0 nor 1", key, v);
    *out = strcmp(v, "1") == 0;
    return MR_OK;
}

mr_code tool_settings_read(const mr_runtime *rt, tool_settings *out, mr_err *err)
{
    long secs, bytes, rounds, member_secs;
    mr_code rc = mr_runtime_setting_long(rt, "MINDROOM_TOOL_TIMEOUT_SECONDS", 30, 1, 3600, &secs, err);
    if (rc == MR_OK)
        rc = mr_runtime_setting_long(rt, "MINDROOM_TOOL_OUTPUT_MAX_BYTES", MR_TOOLS_OUTPUT_MAX, 256, 1048576, &bytes,
                                     err);
    if (rc == MR_OK)
        rc = mr_runtime_setting_long(rt, "MINDROOM_TOOL_MAX_ROUNDS", 10, 1, 100, &rounds, err);
    if (rc == MR_OK)
        rc = mr_runtime_setting_long(rt, "MINDROOM_TEAM_MEMBER_TIMEOUT_SECONDS", 300, 1, 3600, &member_secs, err);
    if (rc != MR_OK)
        return rc;
    bool priv, fs;
    rc = read_flag(rt, "MINDROOM_TOOL_WEBSITE_ALLOW_PRIVATE", &priv, err);
    if (rc == MR_OK)
        rc = read_flag(rt, "MINDROOM_TOOL_FILE_AND_SHELL", &fs, err);
    if (rc != MR_OK)
        return rc;
    /* Connect links go to people: a URL their browser can open, never a bare host. */
    const char *pub = mr_runtime_setting(rt, NULL, "MINDROOM_PUBLIC_URL", NULL);
    if (pub && strncmp(pub, "https://", 8) != 0 && strncmp(pub, "http://", 7) != 0)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PUBLIC_URL: \"%.200s\" is not an http(s) URL", pub);
    *out = (tool_settings){.timeout_ms = secs * 1000, .max_output = (size_t)bytes, .max_rounds = (int)rounds,
                           .member_timeout_ms = member_secs * 1000,
                           .file_and_shell = fs, .website_private_ok = priv, .public_url = pub};
    return MR_OK;
}

char *tool_workspace(const mr_runtime *rt, const char *agent)
{
    return mr_str_printf("%s/agents/%s/workspace", rt->settings.storage_path, agent);
}

char *tool_memory_root(const mr_runtime *rt, const mr_agent_cfg *a, const char *agent, const char *requester)
{
    const mr_private_cfg *p = &a->private_state;
    if (!p->configured)
        return tool_workspace(rt, agent);
    if (!requester || !*requester)
        return NULL;
    /* The scope key is a digest: user IDs stay out of paths (and their characters out of the
     * file system), while one requester always finds the same root. */
    char *who = p->per == MR_PRIVATE_USER_AGENT ? mr_str_printf("%s\n%s", requester, agent) : strdup(requester);
    char digest[MR_OAUTH_SHA256_HEX_LEN + 1];
    if (!who)
        return NULL;
    mr_oauth_sha256_hex(who, digest);
    free(who);
    return mr_str_printf("%s/private_instances/%s-%.32s/%s/%s", rt->settings.storage_path,
                         p->per == MR_PRIVATE_USER_AGENT ? "user_agent" : "user", digest, agent, p->root);
}

/* File, shell and coding reach beyond the agent's own files: only when the operator turned them
 * on. */
static bool is_off(const mr_tool_def *d, const tool_settings *ts)
{
    return !ts->file_and_shell &&
           (strcmp(d->name, "file") == 0 || strcmp(d->name, "shell") == 0 || strcmp(d->name, "coding") == 0);
}

static size_t add_defs(const mr_strlist *names, const tool_settings *ts, const mr_tool_def **out, size_t n,
                       size_t cap)
{
    for (size_t i = 0; i < names->len && n < cap; i++) {
        const mr_tool_def *d = mr_tools_find(names->v[i]);
        bool dup = false;
        for (size_t k = 0; d && k < n; k++)
            dup |= out[k] == d;
        if (d && !dup && !is_off(d, ts))
            out[n++] = d;
    }
    return n;
}

size_t tool_defs_for(const mr_config *cfg, const mr_agent_cfg *agent, const tool_settings *ts,
                     const mr_tool_def **out, size_t cap)
{
    size_t n = add_defs(&agent->tools, ts, out, 0, cap);
    return add_defs(&cfg->defaults.tools, ts, out, n, cap);
}

static void warn_list(const mr_config *cfg, const mr_strlist *names, const tool_settings *ts, const char *where)
{
    for (size_t i = 0; i < names->len; i++) {
        const mr_tool_def *d = mr_tools_find(names->v[i]);
        if ((d && !is_off(d, ts)) || mr_config_mcp_server(cfg, names->v[i]))
            continue;
        const char *fields[] = {"where", where, "tool", names->v[i], NULL};
        /* An unknown name never gets here: the config does not load with one. */
        if (d)
            mr_log_write(MR_LOG_WARN, COMPONENT, fields, "the tool %s is off until MINDROOM_TOOL_FILE_AND_SHELL=1: "
                         "the agent runs without it", names->v[i]);
        else
            mr_log_write(MR_LOG_WARN, COMPONENT, fields, "this build does not implement the tool %s yet: the agent "
                         "runs without it", names->v[i]);
    }
}

static bool lists(const mr_strlist *names, const char *name)
{
    for (size_t i = 0; i < names->len; i++)
        if (strcmp(names->v[i], name) == 0)
            return true;
    return false;
}

/* oauth_api loads without providers or secrets, and only a person's first call would show it:
 * the operator hears it at start-up instead. */
static void warn_oauth(const mr_config *cfg, const mr_dotenv *dotenv)
{
    const char *who = lists(&cfg->defaults.tools, "oauth_api") ? "defaults.tools" : NULL;
    char where[256];
    for (size_t i = 0; !who && i < cfg->n_agents; i++)
        if (lists(&cfg->agents[i].tools, "oauth_api")) {
            snprintf(where, sizeof where, "agents.%s.tools", cfg->agents[i].name);
            who = where;
        }
    if (!who)
        return;
    if (!cfg->n_oauth_providers) {
        const char *fields[] = {"where", who, "tool", "oauth_api", NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "%s lists oauth_api but config.yaml has no oauth_providers: "
                     "every call of it fails until one is added", who);
        return;
    }
    for (size_t i = 0; i < cfg->n_oauth_providers; i++) {
        const mr_oauth_provider_cfg *p = &cfg->oauth_providers[i];
        const char *secret = mr_setting(NULL, p->client_secret_env, dotenv, NULL);
        if (secret && *secret)
            continue;
        const char *fields[] = {"provider", p->name, "variable", p->client_secret_env, NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "oauth_providers.%s: its client secret %s is set neither in .env "
                     "nor in the environment: oauth_api cannot refresh that provider's credentials", p->name,
                     p->client_secret_env);
    }
}

void tool_config_warn(const mr_config *cfg, const tool_settings *ts, const mr_dotenv *dotenv)
{
    warn_oauth(cfg, dotenv);
    warn_list(cfg, &cfg->defaults.tools, ts, "defaults.tools");
    for (size_t i = 0; i < cfg->n_agents; i++) {
        char where[256];
        snprintf(where, sizeof where, "agents.%s.tools", cfg->agents[i].name);
        warn_list(cfg, &cfg->agents[i].tools, ts, where);
    }
}
