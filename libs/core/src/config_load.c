/* config_load.c -- the public config API: parse and load (all or nothing), defaults, reference
 * counting, lookups and where config.yaml lives. */
#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/fsutil.h"

/* Value visits allowed per node in the file: generous for anchors reused a few times, tight
 * enough that aliases of aliases cannot expand a small file into millions of values. */
#define VISITS_PER_NODE 16
#define VISITS_BASE 1024

void cfg_strlist_free(mr_strlist *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->len = 0;
}

static void free_model(mr_model_cfg *m)
{
    free(m->name);
    free(m->provider);
    free(m->id);
    free(m->host);
    free(m->api_key_env);
}

static void free_agent(mr_agent_cfg *a)
{
    free(a->name);
    free(a->display_name);
    free(a->role);
    free(a->model);
    free(a->memory_backend);
    cfg_strlist_free(&a->rooms);
    cfg_strlist_free(&a->tools);
    cfg_strlist_free(&a->skills);
    cfg_strlist_free(&a->instructions);
    cfg_strlist_free(&a->context_files);
    cfg_strlist_free(&a->knowledge_bases);
    free(a->private_state.root);
    free(a->private_state.template_dir);
    cfg_strlist_free(&a->private_state.context_files);
}

static void free_team(mr_team_cfg *t)
{
    free(t->name);
    free(t->display_name);
    free(t->role);
    free(t->model);
    cfg_strlist_free(&t->agents);
    cfg_strlist_free(&t->rooms);
    cfg_strlist_free(&t->instructions);
}

static void free_authz(mr_authz_cfg *z)
{
    cfg_strlist_free(&z->global_users);
    for (size_t i = 0; i < z->n_room_permissions; i++) {
        free(z->room_permissions[i].room);
        cfg_strlist_free(&z->room_permissions[i].users);
    }
    free(z->room_permissions);
    for (size_t i = 0; i < z->n_aliases; i++) {
        free(z->aliases[i].canonical);
        cfg_strlist_free(&z->aliases[i].aliases);
    }
    free(z->aliases);
    for (size_t i = 0; i < z->n_reply_permissions; i++) {
        free(z->reply_permissions[i].entity);
        cfg_strlist_free(&z->reply_permissions[i].users);
        cfg_strlist_free(&z->reply_permissions[i].joined_rooms);
    }
    free(z->reply_permissions);
}

static void free_mcp_server(mr_mcp_server_cfg *m)
{
    free(m->name);
    free(m->command);
    free(m->cwd);
    free(m->url);
    cfg_strlist_free(&m->args);
    cfg_strlist_free(&m->env);
    cfg_strlist_free(&m->headers);
}

static void free_oauth_provider(mr_oauth_provider_cfg *p)
{
    free(p->name);
    free(p->authorize_url);
    free(p->token_url);
    free(p->client_id);
    free(p->client_secret_env);
    cfg_strlist_free(&p->scopes);
    free(p->api_base_url);
}

static void config_free(mr_config *c)
{
    free(c->path);
    for (size_t i = 0; i < c->n_models; i++)
        free_model(&c->models[i]);
    free(c->models);
    for (size_t i = 0; i < c->n_agents; i++)
        free_agent(&c->agents[i]);
    free(c->agents);
    for (size_t i = 0; i < c->n_teams; i++)
        free_team(&c->teams[i]);
    free(c->teams);
    free(c->router.model);
    for (size_t i = 0; i < c->n_rooms; i++) {
        free(c->rooms[i].key);
        free(c->rooms[i].display_name);
        free(c->rooms[i].topic);
    }
    free(c->rooms);
    free_authz(&c->authorization);
    for (size_t i = 0; i < c->n_mcp_servers; i++)
        free_mcp_server(&c->mcp_servers[i]);
    free(c->mcp_servers);
    for (size_t i = 0; i < c->n_oauth_providers; i++)
        free_oauth_provider(&c->oauth_providers[i]);
    free(c->oauth_providers);
    cfg_strlist_free(&c->bot_accounts);
    free(c->mindroom_user.username);
    free(c->mindroom_user.display_name);
    cfg_strlist_free(&c->matrix_room_access.invite_only_rooms);
    cfg_strlist_free(&c->matrix_room_access.room_admins);
    free(c->matrix_space.name);
    cfg_strlist_free(&c->defaults.tools);
    cfg_strlist_free(&c->defaults.worker_tools);
    free(c->memory.backend);
    free(c->timezone);
    free(c);
}

/* Defaults that are not zero, set before loading so the file overrides them. */
static void set_scalar_defaults(mr_config *c)
{
    c->router.accept_invites = true;
    c->defaults.markdown = true;
    c->defaults.show_tool_calls = true;
    c->defaults.enable_streaming = true;
    c->scheduler_catch_up_grace_seconds = 3600;
}

/* String defaults, filled after loading where the file left them unset. */
static void set_string_defaults(cfg_ctx *ctx, mr_config *c)
{
    cfg_default_str(ctx, &c->router.model, "default");
    cfg_default_str(ctx, &c->mindroom_user.username, "mindroom_user");
    cfg_default_str(ctx, &c->mindroom_user.display_name, "MindRoomUser");
    cfg_default_str(ctx, &c->matrix_space.name, "MindRoom");
    cfg_default_str(ctx, &c->memory.backend, "file");
    cfg_default_str(ctx, &c->timezone, "UTC");
}

mr_code mr_config_parse(const char *text, size_t len, const char *name, mr_config **out,
                        mr_config_diags *diags, mr_err *err)
{
    *out = NULL;
    if (!name)
        name = "config.yaml";
    mr_config_diags local = {0};
    mr_config_diags *d = diags ? diags : &local;
    memset(d, 0, sizeof *d);
    cfg_ctx ctx = {.diags = d};
    mr_config *cfg = calloc(1, sizeof *cfg);
    d->file = strdup(name);
    if (!cfg || !d->file) {
        free(cfg);
        mr_config_diags_free(d);
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", name);
    }
    cfg->path = cfg_strdup(&ctx, name);
    cfg->refcount = 1;
    set_scalar_defaults(cfg);
    ctx.cfg = cfg;

    if (len > MR_CONFIG_MAX_BYTES) {
        cfg_diag_at(&ctx, MR_DIAG_ERROR, 1, 1, "", "the file is %zu bytes; the limit is %u bytes", len,
                    MR_CONFIG_MAX_BYTES);
    } else {
        cy_doc doc;
        cy_parse(&ctx, text ? text : "", text ? len : 0, &doc);
        ctx.budget = VISITS_PER_NODE * doc.n_all + VISITS_BASE;
        cfg_load_root(&ctx, doc.root);
        if (!ctx.oom && !ctx.exhausted && doc.root)
            cfg_validate(&ctx, doc.root);
        cy_free(&doc);
    }
    set_string_defaults(&ctx, cfg);
    cfg_diags_sort(d);

    mr_code rc = MR_OK;
    if (ctx.oom) {
        rc = mr_err_set(err, MR_ENOMEM, "%s: out of memory while loading", name);
    } else if (d->n_errors > 0) {
        char first[MR_ERR_MSG_MAX] = "";
        for (size_t i = 0; i < d->len; i++) {
            if (d->v[i].severity == MR_DIAG_ERROR) {
                mr_config_diag_format(d, i, first, sizeof first);
                break;
            }
        }
        rc = mr_err_set(err, MR_EINVAL, "%s: %zu error%s; the first: %s", name, d->n_errors,
                        d->n_errors == 1 ? "" : "s", first);
    }
    if (rc == MR_OK)
        *out = cfg;
    else
        config_free(cfg);
    if (!diags || rc == MR_ENOMEM)
        mr_config_diags_free(d);
    return rc;
}

mr_code mr_config_load(const char *path, mr_config **out, mr_config_diags *diags, mr_err *err)
{
    *out = NULL;
    if (diags)
        memset(diags, 0, sizeof *diags);
    char *text = NULL;
    size_t len = 0;
    mr_code rc = mr_fs_read_all(path, MR_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc != MR_OK)
        return rc;
    rc = mr_config_parse(text, len, path, out, diags, err);
    free(text);
    return rc;
}

mr_config *mr_config_retain(mr_config *cfg)
{
    if (cfg)
        __atomic_add_fetch(&cfg->refcount, 1, __ATOMIC_RELAXED);
    return cfg;
}

void mr_config_release(mr_config *cfg)
{
    /* acq_rel: the last releaser must see every other holder's reads finished before freeing. */
    if (cfg && __atomic_sub_fetch(&cfg->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

static bool put_path(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s%s", a, b);
    return n >= 0 && (size_t)n < cap;
}

mr_code mr_config_find_path(char *out, size_t cap, bool must_exist, mr_err *err)
{
    /* An explicit $MINDROOM_CONFIG_PATH is the only candidate: quietly using another file
     * when it is mistyped would run the wrong agents. */
    const char *env = getenv("MINDROOM_CONFIG_PATH");
    if (env && *env) {
        if (!put_path(out, cap, env, ""))
            return mr_err_set(err, MR_EINVAL, "MINDROOM_CONFIG_PATH is longer than %zu bytes", cap ? cap - 1 : 0);
        if (must_exist && !mr_fs_exists(out))
            return mr_err_set(err, MR_ENOTFOUND, "MINDROOM_CONFIG_PATH names %s, which does not exist", out);
        return MR_OK;
    }
    const char *home = getenv("HOME");
    char home_path[4096];
    bool have_home = home && *home && put_path(home_path, sizeof home_path, home, "/.mindroom/config.yaml");
    const char *candidates[] = {"config.yaml", have_home ? home_path : NULL};
    for (size_t i = 0; i < 2; i++) {
        if (candidates[i] && mr_fs_exists(candidates[i])) {
            if (!put_path(out, cap, candidates[i], ""))
                return mr_err_set(err, MR_EINVAL, "config path %s is longer than %zu bytes", candidates[i],
                                  cap ? cap - 1 : 0);
            return MR_OK;
        }
    }
    if (must_exist)
        return mr_err_set(err, MR_ENOTFOUND,
                          "no config.yaml found: looked in ./config.yaml%s%s (set MINDROOM_CONFIG_PATH or run "
                          "`mindroom config init`)",
                          have_home ? " and " : "", have_home ? home_path : "");
    /* Nothing yet: `config init` writes the per-user file, as the reference does. */
    const char *fresh = have_home ? home_path : "config.yaml";
    if (!put_path(out, cap, fresh, ""))
        return mr_err_set(err, MR_EINVAL, "config path %s is longer than %zu bytes", fresh, cap ? cap - 1 : 0);
    return MR_OK;
}

/* Looks up an element by its name member in an array of n elements of size bytes. */
static const void *find_named(const void *arr, size_t n, size_t size, size_t name_off, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *elem = (const char *)arr + i * size;
        const char *elem_name;
        memcpy(&elem_name, elem + name_off, sizeof elem_name);
        if (elem_name && strcmp(elem_name, name) == 0)
            return elem;
    }
    return NULL;
}

#define FIND(cfg, arr, count, T, member, name) \
    ((cfg) ? (const T *)find_named((cfg)->arr, (cfg)->count, sizeof(T), offsetof(T, member), name) : NULL)

const mr_model_cfg *mr_config_model(const mr_config *cfg, const char *name)
{
    return FIND(cfg, models, n_models, mr_model_cfg, name, name);
}

const mr_agent_cfg *mr_config_agent(const mr_config *cfg, const char *name)
{
    return FIND(cfg, agents, n_agents, mr_agent_cfg, name, name);
}

const mr_team_cfg *mr_config_team(const mr_config *cfg, const char *name)
{
    return FIND(cfg, teams, n_teams, mr_team_cfg, name, name);
}

const mr_mcp_server_cfg *mr_config_mcp_server(const mr_config *cfg, const char *name)
{
    return FIND(cfg, mcp_servers, n_mcp_servers, mr_mcp_server_cfg, name, name);
}

const mr_room_cfg *mr_config_room(const mr_config *cfg, const char *key)
{
    return FIND(cfg, rooms, n_rooms, mr_room_cfg, key, key);
}

const mr_oauth_provider_cfg *mr_config_oauth_provider(const mr_config *cfg, const char *name)
{
    return FIND(cfg, oauth_providers, n_oauth_providers, mr_oauth_provider_cfg, name, name);
}
