/* config_validate.c -- rules that span fields: entity names, references to models, agents and
 * rooms, and values that may appear only once. Runs on the loaded struct plus the tree, which
 * still knows where each value was written. */
#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/ids.h"

/* Names of the elements of an array, for hints. */
typedef struct names {
    const char **v;
    size_t n;
} names;

static names names_of(cfg_ctx *ctx, const void *arr, size_t n, size_t size, size_t name_off)
{
    names out = {cfg_calloc(ctx, n, sizeof(char *)), 0};
    if (!out.v)
        return out;
    for (size_t i = 0; i < n; i++)
        memcpy(&out.v[out.n++], (const char *)arr + i * size + name_off, sizeof(char *));
    return out;
}

/* A mapping from the tree, or NULL when absent or of the wrong type (already reported). */
static const cy_node *map_at(const cy_node *parent, const char *key)
{
    const cy_node *n = cy_map_get(parent, key);
    return n && n->kind == CY_MAP ? n : NULL;
}

static const cy_node *string_at(const cy_node *parent, const char *key)
{
    const cy_node *n = cy_map_get(parent, key);
    return n && n->kind == CY_STRING ? n : NULL;
}

static bool scalar_key(const cy_node *k)
{
    return k->kind != CY_SEQ && k->kind != CY_MAP;
}

/* Reports name at `at` as unknown, suggesting the closest of known. */
static void unknown_ref(cfg_ctx *ctx, const cy_node *at, const char *path, const char *what, const char *name,
                        names known, const char *where)
{
    const char *hint = cfg_hint(name, known.v, known.n);
    if (hint)
        cfg_diag(ctx, MR_DIAG_ERROR, at, path, "unknown %s '%s'; did you mean '%s'?", what, name, hint);
    else
        cfg_diag(ctx, MR_DIAG_ERROR, at, path, "unknown %s '%s'; %s", what, name, where);
}

typedef struct entity {
    char *lower;           /* what the Matrix username is built from */
    const cy_node *key;
    const char *kind;      /* "agent" or "team" */
    char path[CFG_PATH_MAX];
} entity;

static int entity_cmp(const void *pa, const void *pb)
{
    const entity *a = pa, *b = pb;
    int c = strcmp(a->lower, b->lower);
    if (c)
        return c;
    return a->key->line != b->key->line ? a->key->line - b->key->line : a->key->col - b->key->col;
}

/* Collects the valid names of one entity block, reporting the invalid ones. */
static void collect_entities(cfg_ctx *ctx, const cy_node *map, const char *block, const char *kind, entity *out,
                             size_t *n)
{
    for (size_t i = 0; map && i < map->n; i++) {
        const cy_node *k = cy_key(map, i);
        if (!scalar_key(k))
            continue;
        entity *e = &out[*n];
        cfg_path_key(e->path, block, k->text);
        mr_err err;
        if (mr_id_entity_name_check(k->text, false, &err) != MR_OK) {
            cfg_diag(ctx, MR_DIAG_ERROR, k, e->path, "%s", err.msg);
            continue;
        }
        if (!(e->lower = cfg_strdup(ctx, k->text)))
            return;
        for (char *p = e->lower; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        e->key = k;
        e->kind = kind;
        (*n)++;
    }
}

/* Names must fit the grammar, and two entities may not map to one Matrix account. */
static void check_entity_names(cfg_ctx *ctx, const cy_node *agents, const cy_node *teams)
{
    size_t cap = (agents ? agents->n : 0) + (teams ? teams->n : 0);
    entity *e = cfg_calloc(ctx, cap, sizeof *e);
    if (!e)
        return;
    size_t n = 0;
    collect_entities(ctx, agents, "agents", "agent", e, &n);
    collect_entities(ctx, teams, "teams", "team", e, &n);
    qsort(e, n, sizeof *e, entity_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(e[i].lower, e[i - 1].lower) == 0)
            cfg_diag(ctx, MR_DIAG_ERROR, e[i].key, e[i].path,
                     "'%s' clashes with %s '%s' at line %d: both would be the Matrix user mindroom_%s",
                     e[i].key->text, e[i - 1].kind, e[i - 1].key->text, e[i - 1].key->line, e[i].lower);
    }
    for (size_t i = 0; i < n; i++)
        free(e[i].lower);
    free(e);
}

/* `model:` of one entity; a missing one means "default" where fallback says so. */
static void check_model_ref(cfg_ctx *ctx, const cy_node *key, const cy_node *settings, const char *path,
                            bool falls_back_to_default, names models)
{
    const cy_node *m = string_at(settings, "model");
    if (m) {
        if (!mr_config_model(ctx->cfg, m->text)) {
            char mpath[CFG_PATH_MAX];
            cfg_path_key(mpath, path, "model");
            unknown_ref(ctx, m, mpath, "model", m->text, models, "it must be a key under models:");
        }
    } else if (falls_back_to_default && !cy_map_get(settings, "model") && !mr_config_model(ctx->cfg, "default")) {
        cfg_diag(ctx, MR_DIAG_ERROR, key, path,
                 "no model set and models: has no 'default'; add model: or define models.default");
    }
}

static void check_models(cfg_ctx *ctx, const cy_node *root, const cy_node *agents, const cy_node *teams)
{
    const mr_config *c = ctx->cfg;
    names models = names_of(ctx, c->models, c->n_models, sizeof *c->models, offsetof(mr_model_cfg, name));
    const cy_node *blocks[] = {agents, teams};
    const char *block_names[] = {"agents", "teams"};
    for (size_t b = 0; b < 2; b++) {
        for (size_t i = 0; blocks[b] && i < blocks[b]->n; i++) {
            const cy_node *k = cy_key(blocks[b], i), *v = cy_val(blocks[b], i);
            if (!scalar_key(k) || (v->kind != CY_MAP && v->kind != CY_NULL))
                continue;
            char path[CFG_PATH_MAX];
            cfg_path_key(path, block_names[b], k->text);
            check_model_ref(ctx, k, v, path, b == 0, models);
        }
    }
    const cy_node *router = map_at(root, "router");
    if (router)
        check_model_ref(ctx, NULL, router, "router", false, models);
    free(models.v);
}

static void check_team_members(cfg_ctx *ctx, const cy_node *teams)
{
    const mr_config *c = ctx->cfg;
    names agents = names_of(ctx, c->agents, c->n_agents, sizeof *c->agents, offsetof(mr_agent_cfg, name));
    for (size_t i = 0; teams && i < teams->n; i++) {
        const cy_node *k = cy_key(teams, i);
        const cy_node *list = cy_map_get(cy_val(teams, i), "agents");
        if (!scalar_key(k) || !list || list->kind != CY_SEQ)
            continue;
        char tpath[CFG_PATH_MAX], lpath[CFG_PATH_MAX];
        cfg_path_key(tpath, "teams", k->text);
        cfg_path_key(lpath, tpath, "agents");
        for (size_t j = 0; j < list->n; j++) {
            const cy_node *item = list->kids[j];
            if (item->kind != CY_STRING || mr_config_agent(c, item->text))
                continue;
            char ipath[CFG_PATH_MAX];
            cfg_path_index(ipath, lpath, j);
            unknown_ref(ctx, item, ipath, "agent", item->text, agents, "it must be a key under agents:");
        }
    }
    free(agents.v);
}

static void check_reply_keys(cfg_ctx *ctx, const cy_node *replies)
{
    const mr_config *c = ctx->cfg;
    size_t n = c->n_agents + c->n_teams + 2;
    names known = {cfg_calloc(ctx, n, sizeof(char *)), 0};
    if (!known.v)
        return;
    for (size_t i = 0; i < c->n_agents; i++)
        known.v[known.n++] = c->agents[i].name;
    for (size_t i = 0; i < c->n_teams; i++)
        known.v[known.n++] = c->teams[i].name;
    known.v[known.n++] = "router";
    known.v[known.n++] = "*";
    for (size_t i = 0; replies && i < replies->n; i++) {
        const cy_node *k = cy_key(replies, i);
        if (!scalar_key(k))
            continue;
        bool found = false;
        for (size_t j = 0; j < known.n && !found; j++)
            found = strcmp(known.v[j], k->text) == 0;
        if (found)
            continue;
        char path[CFG_PATH_MAX];
        cfg_path_key(path, "authorization.agent_reply_permissions", k->text);
        unknown_ref(ctx, k, path, "entity", k->text, known, "keys must be an agent, a team, 'router' or '*'");
    }
    free(known.v);
}

/* One string in a list, remembered to find repeats. */
typedef struct occurrence {
    const cy_node *node;
    const cy_node *owner; /* key of the list it is in */
    size_t index;
} occurrence;

static int occurrence_cmp(const void *pa, const void *pb)
{
    const occurrence *a = pa, *b = pb;
    int c = strcmp(a->node->text, b->node->text);
    if (c)
        return c;
    if (a->owner != b->owner)
        return a->owner->line != b->owner->line ? a->owner->line - b->owner->line : a->owner->col - b->owner->col;
    return a->index < b->index ? -1 : a->index > b->index;
}

static size_t add_occurrences(occurrence *o, size_t n, const cy_node *owner, const cy_node *list)
{
    for (size_t j = 0; list && list->kind == CY_SEQ && j < list->n; j++)
        if (list->kids[j]->kind == CY_STRING)
            o[n++] = (occurrence){list->kids[j], owner, j};
    return n;
}

static size_t list_len(const cy_node *list)
{
    return list && list->kind == CY_SEQ ? list->n : 0;
}

/* Reports every string of each owner's list under base that repeats an earlier one. */
static void report_repeats(cfg_ctx *ctx, occurrence *o, size_t n, const char *base, const char *list_key)
{
    qsort(o, n, sizeof *o, occurrence_cmp);
    for (size_t i = 1; i < n; i++) {
        const occurrence *prev = &o[i - 1], *cur = &o[i];
        if (strcmp(prev->node->text, cur->node->text) != 0)
            continue;
        char opath[CFG_PATH_MAX], lpath[CFG_PATH_MAX], path[CFG_PATH_MAX];
        cfg_path_key(opath, base, cur->owner->text);
        if (list_key)
            cfg_path_key(lpath, opath, list_key);
        else
            memcpy(lpath, opath, sizeof lpath);
        cfg_path_index(path, lpath, cur->index);
        if (prev->owner == cur->owner)
            cfg_diag(ctx, MR_DIAG_ERROR, cur->node, path, "'%s' is listed twice; the first is at line %d",
                     cur->node->text, prev->node->line);
        else
            cfg_diag(ctx, MR_DIAG_ERROR, cur->node, path,
                     "'%s' is already an alias of '%s' (line %d); an alias belongs to one user only",
                     cur->node->text, prev->owner->text, prev->node->line);
    }
}

static void check_aliases(cfg_ctx *ctx, const cy_node *aliases)
{
    size_t total = 0;
    for (size_t i = 0; aliases && i < aliases->n; i++)
        total += list_len(cy_val(aliases, i));
    occurrence *o = cfg_calloc(ctx, total, sizeof *o);
    if (!o)
        return;
    size_t n = 0;
    for (size_t i = 0; aliases && i < aliases->n; i++)
        if (scalar_key(cy_key(aliases, i)))
            n = add_occurrences(o, n, cy_key(aliases, i), cy_val(aliases, i));
    report_repeats(ctx, o, n, "authorization.aliases", NULL);
    free(o);
}

static void check_joined_rooms(cfg_ctx *ctx, const cy_node *replies)
{
    for (size_t i = 0; replies && i < replies->n; i++) {
        const cy_node *k = cy_key(replies, i);
        const cy_node *rooms = cy_map_get(cy_val(replies, i), "joined_rooms");
        if (!scalar_key(k) || list_len(rooms) < 2)
            continue;
        occurrence *o = cfg_calloc(ctx, rooms->n, sizeof *o);
        if (!o)
            return;
        size_t n = add_occurrences(o, 0, k, rooms);
        report_repeats(ctx, o, n, "authorization.agent_reply_permissions", "joined_rooms");
        free(o);
    }
}

/* Every name of one tools: list is a tool of the reference or a key under mcp_servers:. An
 * item is a name or a one-key mapping {name: {settings}}; other shapes are reported where the
 * list is loaded. */
static void check_tool_list(cfg_ctx *ctx, const cy_node *list, const char *path, names cands)
{
    for (size_t j = 0; list && list->kind == CY_SEQ && j < list->n; j++) {
        const cy_node *item = list->kids[j];
        if (item->kind == CY_MAP && item->n == 1 && scalar_key(cy_key(item, 0)))
            item = cy_key(item, 0);
        if (item->kind != CY_STRING || mr_config_tool_known(item->text) || mr_config_mcp_server(ctx->cfg, item->text))
            continue;
        char ipath[CFG_PATH_MAX];
        cfg_path_index(ipath, path, j);
        unknown_ref(ctx, item, ipath, "tool", item->text, cands,
                    "it must be a tool MindRoom knows (docs.mindroom.chat/tools/) or a key under mcp_servers:");
    }
}

static void check_tools(cfg_ctx *ctx, const cy_node *root, const cy_node *agents)
{
    const mr_config *c = ctx->cfg;
    size_t n_known;
    const char *const *known = cfg_tool_names(&n_known);
    names cands = {cfg_calloc(ctx, n_known + c->n_mcp_servers, sizeof(char *)), 0};
    if (!cands.v)
        return;
    for (size_t i = 0; i < n_known; i++)
        cands.v[cands.n++] = known[i];
    for (size_t i = 0; i < c->n_mcp_servers; i++)
        cands.v[cands.n++] = c->mcp_servers[i].name;
    for (size_t i = 0; agents && i < agents->n; i++) {
        const cy_node *k = cy_key(agents, i);
        if (!scalar_key(k))
            continue;
        char apath[CFG_PATH_MAX], lpath[CFG_PATH_MAX];
        cfg_path_key(apath, "agents", k->text);
        cfg_path_key(lpath, apath, "tools");
        check_tool_list(ctx, cy_map_get(cy_val(agents, i), "tools"), lpath, cands);
    }
    const cy_node *defaults = map_at(root, "defaults");
    check_tool_list(ctx, cy_map_get(defaults, "tools"), "defaults.tools", cands);
    check_tool_list(ctx, cy_map_get(defaults, "worker_tools"), "defaults.worker_tools", cands);
    free(cands.v);
}

void cfg_validate(cfg_ctx *ctx, const cy_node *root)
{
    const cy_node *agents = map_at(root, "agents");
    const cy_node *teams = map_at(root, "teams");
    check_entity_names(ctx, agents, teams);
    check_models(ctx, root, agents, teams);
    check_team_members(ctx, teams);
    check_tools(ctx, root, agents);
    const cy_node *authz = map_at(root, "authorization");
    const cy_node *replies = map_at(authz, "agent_reply_permissions");
    check_reply_keys(ctx, replies);
    check_joined_rooms(ctx, replies);
    check_aliases(ctx, map_at(authz, "aliases"));
}
