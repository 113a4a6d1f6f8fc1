/* accounts.c -- the managed Matrix accounts (router, agents, teams, the internal user): names
 * under the namespace rules, registration by the configured method, sessions kept sealed in the
 * store and checked with whoami, logins again on the same device, display names. */
#include "gateway_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mindroom/b64.h"
#include "mindroom/ids.h"

#define ROUTER_DISPLAY_NAME "RouterAgent"
#define PASSWORD_BYTES 24

/* ---- the plan ---- */

static mr_code plan_one(gw *g, const char *entity, const char *localpart, const char *display,
                        mr_err *err)
{
    gw_account *a = &g->accounts[g->n_accounts];
    memset(a, 0, sizeof *a);
    snprintf(a->entity, sizeof a->entity, "%s", entity);
    snprintf(a->display_name, sizeof a->display_name, "%s", display && *display ? display : entity);
    mr_code rc;
    if (localpart) {
        if (snprintf(a->user_id, sizeof a->user_id, "@%s:%s", localpart, g->s.server_name) >=
            (int)sizeof a->user_id)
            return mr_err_set(err, MR_EINVAL, "mindroom_user.username: @%s:%s is too long",
                              localpart, g->s.server_name);
        rc = mr_id_parse_user(a->user_id, NULL, err);
    } else {
        rc = mr_id_managed_user_id(entity, g->s.ns, g->s.server_name, a->user_id,
                                   sizeof a->user_id, err);
    }
    if (rc != MR_OK)
        return rc;
    /* Two entities may not share an account ("Mind" and "mind" both become mindroom_mind). */
    for (size_t i = 0; i < g->n_accounts; i++)
        if (strcmp(g->accounts[i].user_id, a->user_id) == 0)
            return mr_err_set(err, MR_EINVAL, "%s and %s would both be the Matrix account %s; "
                              "rename one of them", g->accounts[i].entity, entity, a->user_id);
    pthread_mutex_init(&a->lock, NULL);
    g->n_accounts++;
    return MR_OK;
}

mr_code gw_accounts_plan(gw *g, mr_err *err)
{
    const mr_config *c = g->cfg;
    size_t n = 1 + c->n_agents + c->n_teams + (c->mindroom_user.configured ? 1 : 0);
    if (!(g->accounts = calloc(n, sizeof *g->accounts)))
        return mr_err_set(err, MR_ENOMEM, "out of memory planning %zu accounts", n);
    mr_code rc = plan_one(g, "router", NULL, ROUTER_DISPLAY_NAME, err);
    for (size_t i = 0; rc == MR_OK && i < c->n_agents; i++)
        rc = plan_one(g, c->agents[i].name, NULL, c->agents[i].display_name, err);
    for (size_t i = 0; rc == MR_OK && i < c->n_teams; i++)
        rc = plan_one(g, c->teams[i].name, NULL, c->teams[i].display_name, err);
    if (rc == MR_OK && c->mindroom_user.configured)
        rc = plan_one(g, "user", c->mindroom_user.username, c->mindroom_user.display_name, err);
    g->router = &g->accounts[0];
    return rc;
}

static void wipe(char *s)
{
    if (s)
        memset(s, 0, strlen(s));
    free(s);
}

void gw_accounts_free(gw *g)
{
    for (size_t i = 0; i < g->n_accounts; i++) {
        gw_account *a = &g->accounts[i];
        mr_matrix_free(a->m);
        wipe(a->token);
        wipe(a->password);
        pthread_mutex_destroy(&a->lock);
    }
    free(g->accounts);
    g->accounts = NULL;
    g->n_accounts = 0;
}

gw_account *gw_account_by_user(gw *g, const char *user_id)
{
    for (size_t i = 0; user_id && i < g->n_accounts; i++)
        if (strcmp(g->accounts[i].user_id, user_id) == 0)
            return &g->accounts[i];
    return NULL;
}

/* ---- the store: account:<entity> {user_id, device_id}, sealed token and password ---- */

static void key_of(const gw_account *a, const char *part, char *out, size_t cap)
{
    snprintf(out, cap, "account:%s%s%s", a->entity, part ? ":" : "", part ? part : "");
}

/* A sealed value, or NULL when absent. */
static mr_code load_secret(gw *g, const gw_account *a, const char *part, char **out, mr_err *err)
{
    char key[GW_ENTITY_MAX + 32];
    key_of(a, part, key, sizeof key);
    size_t len = 0;
    mr_code rc = mr_store_get_secret(g->rt->store, key, out, &len, err);
    if (rc == MR_ENOTFOUND) {
        *out = NULL;
        return MR_OK;
    }
    if (rc != MR_OK)
        mr_err_prefix(err, "reading %s", key);
    return rc;
}

static mr_code save_secret(gw *g, const gw_account *a, const char *part, const char *v, mr_err *err)
{
    char key[GW_ENTITY_MAX + 32];
    key_of(a, part, key, sizeof key);
    mr_code rc = mr_store_set_secret(g->rt->store, key, v, strlen(v), 0, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "saving %s", key);
    return rc;
}

static mr_code load_ids(gw *g, gw_account *a, mr_err *err)
{
    char key[GW_ENTITY_MAX + 32];
    key_of(a, NULL, key, sizeof key);
    mr_store_hash h = {0};
    mr_code rc = mr_store_hgetall(g->rt->store, key, &h, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "reading %s", key);
        return rc;
    }
    for (size_t i = 0; i < h.count; i++) {
        /* Once persisted, the recorded Matrix ID wins over the generated one. */
        if (strcmp(h.entries[i].field, "user_id") == 0 && h.entries[i].value_len < sizeof a->user_id)
            snprintf(a->user_id, sizeof a->user_id, "%s", h.entries[i].value);
        else if (strcmp(h.entries[i].field, "device_id") == 0 &&
                 h.entries[i].value_len < sizeof a->device_id)
            snprintf(a->device_id, sizeof a->device_id, "%s", h.entries[i].value);
    }
    mr_store_hash_free(&h);
    return MR_OK;
}

/* Adopts m's session into a and persists it (ids, then the sealed token). */
static mr_code keep_session(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    /* Other threads read the IDs without the lock: they are only ever written while the sync
     * loops and the sender do not run yet, or with the same value. */
    if (strcmp(a->user_id, mr_matrix_user_id(m)) != 0)
        snprintf(a->user_id, sizeof a->user_id, "%s", mr_matrix_user_id(m));
    if (strcmp(a->device_id, mr_matrix_device_id(m)) != 0)
        snprintf(a->device_id, sizeof a->device_id, "%s", mr_matrix_device_id(m));
    char *token = strdup(mr_matrix_access_token(m));
    if (!token)
        return mr_err_set(err, MR_ENOMEM, "out of memory keeping the session of %s", a->user_id);
    wipe(a->token);
    a->token = token;
    a->generation++;
    char key[GW_ENTITY_MAX + 32];
    key_of(a, NULL, key, sizeof key);
    mr_code rc;
    if ((rc = mr_store_hset(g->rt->store, key, "user_id", a->user_id, strlen(a->user_id), err)) ||
        (rc = mr_store_hset(g->rt->store, key, "device_id", a->device_id, strlen(a->device_id), err))) {
        mr_err_prefix(err, "saving %s", key);
        return rc;
    }
    return save_secret(g, a, "token", a->token, err);
}

/* ---- logging in and registering ---- */

static const char *localpart_of(const char *user_id, char *out, size_t cap)
{
    const char *colon = strchr(user_id, ':');
    size_t n = colon ? (size_t)(colon - user_id - 1) : strlen(user_id + 1);
    snprintf(out, cap, "%.*s", (int)n, user_id + 1);
    return out;
}

static void device_name(const gw_account *a, char *out, size_t cap)
{
    snprintf(out, cap, "MindRoom %s", a->entity);
}

/* A new session for a on its known device (a fresh one when it has none yet). */
static mr_code login(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    char dev_name[GW_ENTITY_MAX + 16];
    device_name(a, dev_name, sizeof dev_name);
    const char *device = a->device_id[0] ? a->device_id : NULL;
    if (g->s.method == GW_REG_APPSERVICE)
        return mr_matrix_login_appservice(m, g->s.appservice_token, a->user_id, device, dev_name, err);
    if (!a->password)
        return mr_err_set(err, MR_EAUTH, "%s: no stored password to log in with, and its token "
                          "no longer works; remove the account:%s keys from the store to register "
                          "it again", a->user_id, a->entity);
    return mr_matrix_login_password(m, a->user_id, a->password, device, dev_name, err);
}

static mr_code new_password(gw *g, gw_account *a, mr_err *err)
{
    unsigned char raw[PASSWORD_BYTES];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return mr_err_set(err, MR_EIO, "getrandom failed making a password for %s", a->user_id);
    char *pw = malloc(MR_B64URL_LEN(sizeof raw) + 1);
    if (!pw)
        return mr_err_set(err, MR_ENOMEM, "out of memory making a password");
    mr_b64url_encode(raw, sizeof raw, pw);
    memset(raw, 0, sizeof raw);
    a->password = pw;
    /* Kept before registering: a crash between the two would otherwise leave an account
     * nobody can log in to, which would look like a collision on the next start. */
    return save_secret(g, a, "password", pw, err);
}

/* Registers a by the configured method. *in_use tells whether the name was taken already,
 * *need_login whether the registration left m without a session (appservice, provisioning). */
static mr_code register_account(gw *g, gw_account *a, mr_matrix *m, bool *in_use, bool *need_login,
                                mr_err *err)
{
    char username[MR_MATRIX_ID_SIZE], dev_name[GW_ENTITY_MAX + 16];
    localpart_of(a->user_id, username, sizeof username);
    device_name(a, dev_name, sizeof dev_name);
    *in_use = false;
    *need_login = g->s.method == GW_REG_APPSERVICE || g->s.method == GW_REG_PROVISIONING;
    mr_code rc;
    if (g->s.method == GW_REG_PROVISIONING) {
        rc = gw_provision_register(g, username, a->password, a->display_name, in_use, err);
    } else if (g->s.method == GW_REG_SHARED_SECRET) {
        rc = mr_matrix_register_shared_secret(m, g->s.shared_secret, username, a->password,
                                              a->display_name, false, NULL, err);
    } else {
        mr_matrix_register_req req = {.username = username, .password = a->password,
                                      .device_id = a->device_id[0] ? a->device_id : NULL,
                                      .device_display_name = dev_name,
                                      .registration_token = g->s.registration_token,
                                      .allow_dummy = g->s.method == GW_REG_OPEN};
        if (g->s.method == GW_REG_APPSERVICE)
            req = (mr_matrix_register_req){.username = username,
                                           .appservice_token = g->s.appservice_token};
        rc = mr_matrix_register(m, &req, NULL, err);
    }
    if (rc == MR_EEXISTS) {
        *in_use = *need_login = true;
        return MR_OK;
    }
    return rc;
}

/* Registers a, or logs in when the name exists and the stored password opens it. */
static mr_code create_account(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    mr_code rc = MR_OK;
    if (!a->password && g->s.method != GW_REG_APPSERVICE)
        rc = new_password(g, a, err);
    bool in_use = false, need_login = false;
    if (rc == MR_OK)
        rc = register_account(g, a, m, &in_use, &need_login, err);
    if (rc != MR_OK)
        return rc;
    if (!in_use)
        mr_log_info(GW, "registered %s (%s)", a->user_id, a->entity);
    if (!need_login)
        return MR_OK;
    rc = login(g, a, m, err);
    if (rc == MR_EPERM && in_use)
        return mr_err_set(err, MR_EPERM, "%s already exists and the stored password does not open "
                          "it (account collision); set a unique MINDROOM_NAMESPACE", a->user_id);
    return rc;
}

/* A working session for a in m: the stored token if whoami accepts it, else a login, else a
 * registration. */
static mr_code open_session(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    mr_code rc;
    if (a->token) {
        char who[MR_MATRIX_ID_SIZE], dev[MR_MATRIX_ID_SIZE];
        if ((rc = mr_matrix_set_session(m, a->user_id, a->device_id, a->token, err)) != MR_OK)
            return rc;
        rc = mr_matrix_whoami(m, who, dev, err);
        if (rc == MR_OK && strcmp(who, a->user_id) == 0) {
            if (!a->device_id[0] && dev[0])
                snprintf(a->device_id, sizeof a->device_id, "%s", dev);
            return MR_OK;
        }
        if (rc != MR_OK && rc != MR_EAUTH)
            return rc;
        mr_log_info(GW, "%s: stored session no longer valid (%s), logging in again", a->user_id,
                    rc == MR_OK ? "it belongs to another user" : err->msg);
    } else if (!a->password && g->s.method != GW_REG_APPSERVICE) {
        rc = create_account(g, a, m, err);
        return rc == MR_OK ? keep_session(g, a, m, err) : rc;
    }
    rc = login(g, a, m, err);
    /* Refused: the account was never created (a crash after the password was kept, a first
     * appservice start) or the homeserver lost it, so register it; a name taken by someone
     * else then shows up as a collision. */
    if (rc == MR_EPERM)
        rc = create_account(g, a, m, err);
    return rc == MR_OK ? keep_session(g, a, m, err) : rc;
}

static mr_code sync_display_name(gw_account *a, mr_err *err)
{
    char *current = NULL;
    mr_code rc = mr_matrix_displayname_get(a->m, a->user_id, &current, err);
    if (rc == MR_ENOTFOUND)
        rc = MR_OK;
    if (rc == MR_OK && (!current || strcmp(current, a->display_name) != 0))
        rc = mr_matrix_displayname_put(a->m, a->display_name, err);
    free(current);
    return rc;
}

static mr_code bootstrap_one(gw *g, gw_account *a, mr_err *err)
{
    mr_code rc = MR_OK;
    if (!a->m) {
        mr_matrix_opts o;
        gw_matrix_opts(g, &o);
        rc = mr_matrix_new(&o, &a->m, err);
        if (rc == MR_OK)
            rc = load_ids(g, a, err);
        if (rc == MR_OK)
            rc = load_secret(g, a, "token", &a->token, err);
        if (rc == MR_OK)
            rc = load_secret(g, a, "password", &a->password, err);
        if (rc != MR_OK)
            return rc;
    }
    pthread_mutex_lock(&a->lock);
    rc = open_session(g, a, a->m, err);
    pthread_mutex_unlock(&a->lock);
    if (rc == MR_OK)
        rc = sync_display_name(a, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "account %s (%s)", a->user_id, a->entity);
    return rc;
}

mr_code gw_accounts_bootstrap(gw *g, mr_err *err)
{
    for (size_t i = 0; i < g->n_accounts; i++) {
        mr_code rc = bootstrap_one(g, &g->accounts[i], err);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

/* ---- sessions for other threads ---- */

mr_code gw_client_new(gw *g, gw_account *a, mr_matrix **out, unsigned long *gen, mr_err *err)
{
    mr_matrix_opts o;
    gw_matrix_opts(g, &o);
    pthread_mutex_lock(&a->lock);
    o.user_id = a->user_id;
    o.device_id = a->device_id;
    o.access_token = a->token;
    *gen = a->generation;
    mr_code rc = mr_matrix_new(&o, out, err);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

mr_code gw_account_relogin(gw *g, gw_account *a, mr_matrix *m, unsigned long *gen, mr_err *err)
{
    pthread_mutex_lock(&a->lock);
    mr_code rc;
    if (a->generation != *gen) {
        rc = mr_matrix_set_session(m, a->user_id, a->device_id, a->token, err);
    } else {
        mr_log_info(GW, "%s: session ended%s; logging in again on device %s", a->user_id,
                    mr_matrix_last(m)->soft_logout ? " (soft logout)" : "", a->device_id);
        rc = login(g, a, m, err);
        if (rc == MR_OK)
            rc = keep_session(g, a, m, err);
    }
    *gen = a->generation;
    pthread_mutex_unlock(&a->lock);
    return rc;
}
