/* roster.c -- the entities of the config (router, agents, teams) with their Matrix accounts. */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mr_code add_entry(roster *r, const char *name, const char *display, entity_kind kind, const char *server,
                         const char *ns, mr_err *err)
{
    roster_entry *e = &r->v[r->n];
    e->name = name;
    e->display_name = display && *display ? display : name;
    e->kind = kind;
    mr_code rc = mr_id_managed_user_id(name, ns, server, e->user_id, sizeof e->user_id, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "the account of %s", name);
        return rc;
    }
    r->n++;
    return MR_OK;
}

mr_code roster_build(mr_config *cfg, const char *server_name, const char *ns, roster *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    out->v = calloc(1 + cfg->n_agents + cfg->n_teams, sizeof *out->v);
    if (!out->v)
        return mr_err_set(err, MR_ENOMEM, "out of memory building the roster");
    out->cfg = mr_config_retain(cfg);
    mr_code rc = add_entry(out, "router", "Router", ENTITY_ROUTER, server_name, ns, err);
    for (size_t i = 0; rc == MR_OK && i < cfg->n_agents; i++) {
        rc = add_entry(out, cfg->agents[i].name, cfg->agents[i].display_name, ENTITY_AGENT, server_name, ns, err);
        if (rc == MR_OK)
            out->v[out->n - 1].agent = &cfg->agents[i];
    }
    for (size_t i = 0; rc == MR_OK && i < cfg->n_teams; i++) {
        rc = add_entry(out, cfg->teams[i].name, cfg->teams[i].display_name, ENTITY_TEAM, server_name, ns, err);
        if (rc == MR_OK)
            out->v[out->n - 1].team = &cfg->teams[i];
    }
    const char *user = cfg->mindroom_user.username ? cfg->mindroom_user.username : "mindroom_user";
    snprintf(out->internal_user, sizeof out->internal_user, "@%s:%s", user, server_name);
    if (rc != MR_OK)
        roster_free(out);
    return rc;
}

void roster_free(roster *r)
{
    free(r->v);
    mr_config_release(r->cfg);
    memset(r, 0, sizeof *r);
}

const roster_entry *roster_by_name(const roster *r, const char *name)
{
    for (size_t i = 0; name && i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

const roster_entry *roster_by_user(const roster *r, const char *user_id)
{
    for (size_t i = 0; user_id && i < r->n; i++)
        if (strcmp(r->v[i].user_id, user_id) == 0)
            return &r->v[i];
    return NULL;
}

bool roster_is_bot_account(const roster *r, const char *user_id)
{
    const mr_strlist *bots = &r->cfg->bot_accounts;
    for (size_t i = 0; user_id && i < bots->len; i++)
        if (strcmp(bots->v[i], user_id) == 0)
            return true;
    return false;
}
