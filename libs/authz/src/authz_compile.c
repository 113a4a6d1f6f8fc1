/* authz_compile.c -- turns a loaded config into the lookup tables decisions read. */
#include "authz_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_INTERNAL_USERNAME "mindroom_user"

/* The owner placeholder stands for "nobody yet": it is left out of every table. */
static bool is_placeholder(const char *s)
{
    return strcmp(s, MR_CONFIG_OWNER_PLACEHOLDER) == 0;
}

/* A map holding every real user of list, each with value 0. */
static mr_code user_set(mr_authz_map *m, const mr_strlist *list, mr_err *err)
{
    mr_code rc = mr_authz_map_init(m, list->len, err);
    if (rc != MR_OK)
        return rc;
    for (size_t i = 0; i < list->len; i++)
        if (!is_placeholder(list->v[i]))
            mr_authz_map_put(m, list->v[i], mr_authz_hash(list->v[i]), 0);
    return MR_OK;
}

static mr_code add_entity(mr_authz *az, mr_authz_entity_kind kind, const char *name,
                          const mr_team_cfg *team, mr_err *err)
{
    mr_authz_entity *e = &az->entities[az->n_entities];
    char id[MR_ID_MAX + 1];
    mr_code rc;
    if (kind == MR_AUTHZ_ENTITY_INTERNAL_USER) {
        /* Not namespaced: the internal user keeps its configured localpart. */
        int n = snprintf(id, sizeof id, "@%s:%s", name, az->server);
        if (n < 0 || n > MR_ID_MAX)
            return mr_err_set(err, MR_EINVAL, "mindroom_user.username: '@%.80s:%.80s' is longer than %d bytes",
                              name, az->server, MR_ID_MAX);
    } else {
        rc = mr_id_managed_user_id(name, az->ns, az->server, id, sizeof id, err);
        if (rc != MR_OK) {
            mr_err_prefix(err, "%s '%s'", kind == MR_AUTHZ_ENTITY_TEAM ? "team" : "agent", name);
            return rc;
        }
    }
    e->user_id = strdup(id);
    if (!e->user_id)
        return mr_err_set(err, MR_ENOMEM, "out of memory for the Matrix ID of '%s'", name);
    e->kind = kind;
    e->name = name;
    e->team = team;
    size_t idx = az->n_entities++;
    mr_authz_map_put(&az->internal_ids, e->user_id, mr_authz_hash(e->user_id), idx);
    if (kind != MR_AUTHZ_ENTITY_INTERNAL_USER)
        mr_authz_map_put(&az->entity_names, name, mr_authz_hash(name), idx);
    return MR_OK;
}

static mr_code compile_entities(mr_authz *az, mr_err *err)
{
    const mr_config *cfg = az->cfg;
    size_t n = 2 + cfg->n_agents + cfg->n_teams;
    az->entities = calloc(n, sizeof *az->entities);
    if (!az->entities)
        return mr_err_set(err, MR_ENOMEM, "out of memory for %zu managed identities", n);
    mr_code rc = mr_authz_map_init(&az->internal_ids, n, err);
    if (rc == MR_OK)
        rc = mr_authz_map_init(&az->entity_names, n, err);
    const char *username = cfg->mindroom_user.username && *cfg->mindroom_user.username
                               ? cfg->mindroom_user.username
                               : DEFAULT_INTERNAL_USERNAME;
    if (rc == MR_OK)
        rc = add_entity(az, MR_AUTHZ_ENTITY_INTERNAL_USER, username, NULL, err);
    for (size_t i = 0; rc == MR_OK && i < cfg->n_agents; i++)
        rc = add_entity(az, MR_AUTHZ_ENTITY_AGENT, cfg->agents[i].name, NULL, err);
    for (size_t i = 0; rc == MR_OK && i < cfg->n_teams; i++)
        rc = add_entity(az, MR_AUTHZ_ENTITY_TEAM, cfg->teams[i].name, &cfg->teams[i], err);
    if (rc == MR_OK)
        rc = add_entity(az, MR_AUTHZ_ENTITY_ROUTER, "router", NULL, err);
    return rc;
}

static mr_code compile_aliases(mr_authz *az, mr_err *err)
{
    const mr_authz_cfg *a = &az->cfg->authorization;
    size_t n = 0;
    for (size_t i = 0; i < a->n_aliases; i++)
        n += a->aliases[i].aliases.len;
    mr_code rc = mr_authz_map_init(&az->aliases, n, err);
    for (size_t i = 0; rc == MR_OK && i < a->n_aliases; i++) {
        const mr_alias_map *am = &a->aliases[i];
        if (is_placeholder(am->canonical))
            continue;
        for (size_t j = 0; j < am->aliases.len; j++) {
            const char *alias = am->aliases.v[j];
            /* The loader rejects duplicates; should one slip through, the first owner wins. */
            if (!is_placeholder(alias))
                mr_authz_map_put(&az->aliases, alias, mr_authz_hash(alias), i);
        }
    }
    return rc;
}

static mr_code compile_rooms(mr_authz *az, mr_err *err)
{
    const mr_authz_cfg *a = &az->cfg->authorization;
    mr_code rc = user_set(&az->global_users, &a->global_users, err);
    if (rc == MR_OK)
        rc = mr_authz_map_init(&az->room_keys, a->n_room_permissions, err);
    if (rc != MR_OK)
        return rc;
    az->rooms = calloc(a->n_room_permissions ? a->n_room_permissions : 1, sizeof *az->rooms);
    if (!az->rooms)
        return mr_err_set(err, MR_ENOMEM, "out of memory for %zu room_permissions entries",
                          a->n_room_permissions);
    for (size_t i = 0; i < a->n_room_permissions; i++) {
        const mr_room_perm *p = &a->room_permissions[i];
        mr_authz_room_perm *r = &az->rooms[az->n_rooms++];
        r->key = p->room;
        rc = user_set(&r->users, &p->users, err);
        if (rc != MR_OK)
            return rc;
        mr_authz_map_put(&az->room_keys, p->room, mr_authz_hash(p->room), i);
    }
    return MR_OK;
}

static mr_code compile_policy(mr_authz_policy *p, const mr_reply_policy *rp, mr_err *err)
{
    p->key = rp->entity;
    p->joined_rooms = &rp->joined_rooms;
    size_t n_globs = 0;
    for (size_t i = 0; i < rp->users.len; i++) {
        const char *u = rp->users.v[i];
        if (strcmp(u, "*") == 0)
            p->anyone = true;
        else if (mr_authz_glob_is_pattern(u))
            n_globs++;
    }
    mr_code rc = mr_authz_map_init(&p->exact, rp->users.len, err);
    if (rc != MR_OK)
        return rc;
    if (n_globs) {
        p->globs = calloc(n_globs, sizeof *p->globs);
        if (!p->globs)
            return mr_err_set(err, MR_ENOMEM, "out of memory for agent_reply_permissions.%s", rp->entity);
    }
    for (size_t i = 0; i < rp->users.len; i++) {
        const char *u = rp->users.v[i];
        if (strcmp(u, "*") == 0 || is_placeholder(u))
            continue;
        if (!mr_authz_glob_is_pattern(u)) {
            mr_authz_map_put(&p->exact, u, mr_authz_hash(u), i);
            continue;
        }
        rc = mr_authz_glob_compile(u, &p->globs[p->n_globs], err);
        if (rc != MR_OK)
            return rc;
        p->n_globs++;
    }
    return MR_OK;
}

static mr_code compile_policies(mr_authz *az, mr_err *err)
{
    const mr_authz_cfg *a = &az->cfg->authorization;
    mr_code rc = mr_authz_map_init(&az->policy_keys, a->n_reply_permissions, err);
    if (rc != MR_OK)
        return rc;
    az->policies = calloc(a->n_reply_permissions ? a->n_reply_permissions : 1, sizeof *az->policies);
    if (!az->policies)
        return mr_err_set(err, MR_ENOMEM, "out of memory for agent_reply_permissions");
    for (size_t i = 0; i < a->n_reply_permissions; i++) {
        const mr_reply_policy *rp = &a->reply_permissions[i];
        mr_authz_policy *p = &az->policies[az->n_policies++];
        rc = compile_policy(p, rp, err);
        if (rc != MR_OK)
            return rc;
        if (strcmp(rp->entity, "*") != 0 && !mr_authz_map_get(&az->entity_names, rp->entity,
                                                               mr_authz_hash(rp->entity)))
            return mr_err_set(err, MR_EINVAL,
                              "authorization.agent_reply_permissions: '%s' is not an agent, team, 'router' or '*'",
                              rp->entity);
        mr_authz_map_put(&az->policy_keys, rp->entity, mr_authz_hash(rp->entity), i);
        if (strcmp(rp->entity, "*") == 0)
            az->star = p;
    }
    return MR_OK;
}

mr_code mr_authz_new(mr_config *cfg, const char *server_name, const char *ns, mr_authz **out,
                     mr_err *err)
{
    *out = NULL;
    mr_code rc = mr_id_parse_server_name(server_name ? server_name : "", NULL, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "authorization: server name");
        return rc;
    }
    char norm[MR_NAMESPACE_MAX + 1];
    rc = mr_id_namespace_normalize(ns ? ns : "", norm, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "authorization: namespace");
        return rc;
    }
    if (strlen(server_name) > MR_ID_MAX)
        return mr_err_set(err, MR_EINVAL, "authorization: server name '%.80s...' is longer than %d bytes",
                          server_name, MR_ID_MAX);
    mr_authz *az = calloc(1, sizeof *az);
    if (!az)
        return mr_err_set(err, MR_ENOMEM, "out of memory for the authorization engine");
    az->cfg = mr_config_retain(cfg);
    strcpy(az->server, server_name);
    strcpy(az->ns, norm);
    rc = compile_entities(az, err);
    if (rc == MR_OK)
        rc = compile_aliases(az, err);
    if (rc == MR_OK)
        rc = compile_rooms(az, err);
    if (rc == MR_OK)
        rc = compile_policies(az, err);
    if (rc != MR_OK) {
        mr_authz_free(az);
        return rc;
    }
    *out = az;
    return MR_OK;
}

void mr_authz_free(mr_authz *az)
{
    if (!az)
        return;
    for (size_t i = 0; i < az->n_entities; i++)
        free(az->entities[i].user_id);
    free(az->entities);
    mr_authz_map_free(&az->internal_ids);
    mr_authz_map_free(&az->entity_names);
    mr_authz_map_free(&az->aliases);
    mr_authz_map_free(&az->global_users);
    for (size_t i = 0; i < az->n_rooms; i++)
        mr_authz_map_free(&az->rooms[i].users);
    free(az->rooms);
    mr_authz_map_free(&az->room_keys);
    for (size_t i = 0; i < az->n_policies; i++) {
        mr_authz_policy *p = &az->policies[i];
        for (size_t j = 0; j < p->n_globs; j++)
            mr_authz_glob_free(&p->globs[j]);
        free(p->globs);
        mr_authz_map_free(&p->exact);
    }
    free(az->policies);
    mr_authz_map_free(&az->policy_keys);
    mr_config_release(az->cfg);
    free(az);
}
