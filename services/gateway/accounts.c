/* accounts.c -- the managed Matrix accounts (router, agents, teams, the internal user): names
 * under the namespace rules, accounts given in the settings used as they are, the others
 * registered by the configured method (a few at once), sessions kept sealed in the store and
 * checked with whoami, logins again on the same device, display names. */
#include "gateway_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mindroom/b64.h"
#include "mindroom/ids.h"
#include "mindroom/thread_name.h"

#define ROUTER_DISPLAY_NAME "RouterAgent"
#define PASSWORD_BYTES 24
#define BOOTSTRAP_THREADS 8

/* ---- the plan ---- */

static mr_code plan_one(gw *g, const char *entity, const char *username, const char *display,
                        mr_err *err)
{
    gw_account *a = &g->accounts[g->n_accounts];
    memset(a, 0, sizeof *a);
    snprintf(a->entity, sizeof a->entity, "%s", entity);
    snprintf(a->display_name, sizeof a->display_name, "%s", display && *display ? display : entity);
    mr_code rc;
    if (username) {
        /* Namespaced like the other accounts, so two instances on one homeserver do not share
         * it (a user ID persisted before still wins, see load_ids). */
        int n = g->s.ns[0] ? snprintf(a->user_id, sizeof a->user_id, "@%s_%s:%s", username,
                                      g->s.ns, g->s.server_name)
                           : snprintf(a->user_id, sizeof a->user_id, "@%s:%s", username,
                                      g->s.server_name);
        if (n >= (int)sizeof a->user_id)
            return mr_err_set(err, MR_EINVAL, "mindroom_user.username: the Matrix ID of %s on %s "
                              "would be longer than %zu bytes", username, g->s.server_name,
                              sizeof a->user_id - 1);
        rc = mr_id_parse_user(a->user_id, NULL, err);
    } else {
        rc = mr_id_managed_user_id(entity, g->s.ns, g->s.server_name, a->user_id,
                                   sizeof a->user_id, err);
    }
    if (rc == MR_OK)
        rc = gw_given_read(g, a, err);
    if (rc != MR_OK)
        return rc;
    pthread_mutex_init(&a->lock, NULL);
    g->n_accounts++;
    /* Two entities may not share an account ("Mind" and "mind" both become mindroom_mind). */
    for (size_t i = 0; i + 1 < g->n_accounts; i++) {
        const gw_account *b = &g->accounts[i];
        if (strcmp(b->user_id, a->user_id) != 0)
            continue;
        if (a->given || b->given)
            return mr_err_set(err, MR_EINVAL, "%s and %s would both be the Matrix account %s; "
                              "check %s_USER_ID", b->entity, entity, a->user_id,
                              a->given ? a->setting : b->setting);
        return mr_err_set(err, MR_EINVAL, "%s and %s would both be the Matrix account %s; "
                          "rename one of them", b->entity, entity, a->user_id);
    }
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
    if (rc == MR_OK)
        rc = gw_given_check_unknown(g, err);
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

const gw_account *gw_entity_by_user(gw *g, const char *user_id)
{
    const gw_account *a = gw_account_by_user(g, user_id);
    /* Planned in this order: the router, the agents, the teams, then the internal user. */
    return a && (size_t)(a - g->accounts) < 1 + g->cfg->n_agents + g->cfg->n_teams ? a : NULL;
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

static mr_code forget_secret(gw *g, const gw_account *a, const char *part, mr_err *err)
{
    char key[GW_ENTITY_MAX + 32];
    key_of(a, part, key, sizeof key);
    mr_code rc = mr_store_del(g->rt->store, key, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "removing %s", key);
    return rc;
}

/* The persisted IDs. Once recorded, the Matrix ID wins over the generated one; a given
 * account wins over both, and what was kept for another account under this entity (its
 * device, token and password) is dropped. */
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
    const char *uid = NULL, *dev = NULL;
    for (size_t i = 0; i < h.count; i++) {
        if (strcmp(h.entries[i].field, "user_id") == 0 && h.entries[i].value_len < sizeof a->user_id)
            uid = h.entries[i].value;
        else if (strcmp(h.entries[i].field, "device_id") == 0 &&
                 h.entries[i].value_len < sizeof a->device_id)
            dev = h.entries[i].value;
    }
    bool other = a->given && uid && strcmp(uid, a->user_id) != 0;
    if (uid && !a->given)
        snprintf(a->user_id, sizeof a->user_id, "%s", uid);
    if (dev && !other)
        snprintf(a->device_id, sizeof a->device_id, "%s", dev);
    if (other)
        mr_log_info(GW, "%s: %s_USER_ID gives %s in place of %s; the session and password kept "
                    "for %s are dropped", a->entity, a->setting, a->user_id, uid, uid);
    mr_store_hash_free(&h);
    if (other && (rc = forget_secret(g, a, "token", err)) == MR_OK)
        rc = forget_secret(g, a, "password", err);
    return rc;
}

/* Other threads read the IDs without the lock: they are only ever written while the sync
 * loops and the sender do not run yet, or with the same value. */
static mr_code save_ids(gw *g, const gw_account *a, mr_err *err)
{
    char key[GW_ENTITY_MAX + 32];
    key_of(a, NULL, key, sizeof key);
    mr_code rc;
    if ((rc = mr_store_hset(g->rt->store, key, "user_id", a->user_id, strlen(a->user_id), err)) ||
        (rc = mr_store_hset(g->rt->store, key, "device_id", a->device_id, strlen(a->device_id), err)))
        mr_err_prefix(err, "saving %s", key);
    return rc;
}

/* Adopts m's session into a and persists it (ids, then the sealed token). */
static mr_code keep_session(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
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
    mr_code rc = save_ids(g, a, err);
    return rc == MR_OK ? save_secret(g, a, "token", a->token, err) : rc;
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

/* A refusal in err becomes MR_EINVAL, advice (may be NULL) first: only the admin can change
 * what was refused, so the gateway exits 2 rather than retrying. */
static mr_code settings_refused(mr_err *err, const char *advice)
{
    if (advice)
        mr_err_prefix(err, "%s", advice);
    if (err)
        err->code = MR_EINVAL;
    return MR_EINVAL;
}

/* A new session for a on its known device (a fresh one when it has none yet). */
static mr_code login(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    char dev_name[GW_ENTITY_MAX + 16];
    device_name(a, dev_name, sizeof dev_name);
    const char *device = a->device_id[0] ? a->device_id : NULL;
    if (a->given == GW_GIVEN_TOKEN)
        return mr_err_set(err, MR_EAUTH, "the homeserver no longer accepts %s_ACCESS_TOKEN for "
                          "%s; give a current access token of that account and restart",
                          a->setting, a->user_id);
    if (!a->given && g->s.method == GW_REG_APPSERVICE)
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

/* A password made for a registration that did not create the account opens nothing: it goes,
 * so the next start (after the admin changed a setting) begins afresh. */
static void drop_new_password(gw *g, gw_account *a)
{
    mr_err why = {0};
    if (forget_secret(g, a, "password", &why) != MR_OK)
        mr_log_warn(GW, "%s: %s", a->user_id, why.msg);
    wipe(a->password);
    a->password = NULL;
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

/* Whether a failed registration was refused (nothing was created) rather than cut short. */
static bool registration_refused(const gw *g, mr_matrix *m, mr_code rc)
{
    if (rc == MR_EPERM || rc == MR_EAUTH)
        return true;
    /* Other 4xx of the homeserver: M_INVALID_USERNAME, M_EXCLUSIVE, shared-secret registration
     * not enabled, no such endpoint. A success it could not read may have made the account. */
    long st = mr_matrix_last(m)->status;
    return g->s.method != GW_REG_PROVISIONING && (rc == MR_EINVAL || rc == MR_ENOTFOUND) &&
           st >= 400 && st < 500;
}

/* What to tell the admin when the homeserver refuses the configured method; NULL when the
 * refusal says it already (the provisioning service's). */
static const char *method_advice(const gw *g)
{
    switch (g->s.method) {
    case GW_REG_SHARED_SECRET:
        return "the homeserver refused MATRIX_REGISTRATION_SHARED_SECRET (it must be the "
               "registration_shared_secret of the homeserver's config)";
    case GW_REG_TOKEN:
        return "the homeserver refused MATRIX_REGISTRATION_TOKEN (it must be a valid registration "
               "token of the homeserver, with uses left)";
    case GW_REG_APPSERVICE:
        return "the homeserver refused MATRIX_APPSERVICE_TOKEN (it must be the as_token of an "
               "application service registered with it, whose user namespace covers this account)";
    case GW_REG_OPEN:
        return "the homeserver does not offer open registration; " GW_ACCOUNT_OPTIONS;
    case GW_REG_PROVISIONING:
        break;
    }
    return NULL;
}

/* Registers a, or logs in when the name exists and the stored password opens it. */
static mr_code create_account(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    bool fresh = !a->password && g->s.method != GW_REG_APPSERVICE;
    mr_code rc = fresh ? new_password(g, a, err) : MR_OK;
    bool in_use = false, need_login = false;
    if (rc == MR_OK)
        rc = register_account(g, a, m, &in_use, &need_login, err);
    if (rc != MR_OK && registration_refused(g, m, rc)) {
        if (fresh)
            drop_new_password(g, a);
        return settings_refused(err, method_advice(g));
    }
    if (rc != MR_OK)
        return rc;
    if (!in_use)
        mr_log_info(GW, "registered %s (%s)", a->user_id, a->entity);
    if (!need_login)
        return MR_OK;
    rc = login(g, a, m, err);
    if (rc == MR_EPERM && in_use) {
        if (fresh)
            drop_new_password(g, a);
        return mr_err_set(err, MR_EPERM, "%s already exists and the stored password does not open "
                          "it (account collision); set a unique MINDROOM_NAMESPACE", a->user_id);
    }
    return rc;
}

/* Whether a's token opens a's account: MR_OK (its device adopted), MR_EAUTH when the
 * homeserver refused it or it opens another account, or a failure. */
static mr_code check_token(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    char who[MR_MATRIX_ID_SIZE], dev[MR_MATRIX_ID_SIZE];
    mr_code rc = mr_matrix_set_session(m, a->user_id, a->device_id, a->token, err);
    if (rc == MR_OK)
        rc = mr_matrix_whoami(m, who, dev, err);
    if (rc != MR_OK)
        return rc;
    if (strcmp(who, a->user_id) != 0)
        return mr_err_set(err, MR_EAUTH, "it opens %s, not %s", who, a->user_id);
    /* A given token names its own device; a stored one the device it was made on. */
    if (!dev[0] || strcmp(dev, a->device_id) == 0)
        return MR_OK;
    snprintf(a->device_id, sizeof a->device_id, "%s", dev);
    if ((rc = mr_matrix_set_session(m, a->user_id, a->device_id, a->token, err)) != MR_OK)
        return rc;
    return save_ids(g, a, err);
}

/* A working session for a in m: the token if whoami accepts it, else a login, else (for an
 * account the gateway makes) a registration. */
static mr_code open_session(gw *g, gw_account *a, mr_matrix *m, mr_err *err)
{
    mr_code rc;
    char advice[GW_ENTITY_MAX + MR_MATRIX_ID_SIZE + 96];
    if (a->token) {
        rc = check_token(g, a, m, err);
        if (rc != MR_EAUTH)
            return rc;
        if (a->given == GW_GIVEN_TOKEN) {
            snprintf(advice, sizeof advice, "%s_ACCESS_TOKEN does not open %s; give a current "
                     "access token of that account", a->setting, a->user_id);
            return settings_refused(err, advice);
        }
        mr_log_info(GW, "%s: stored session no longer valid (%s), logging in again", a->user_id,
                    err->msg);
    } else if (!a->given && (!a->password || g->s.method == GW_REG_APPSERVICE)) {
        /* Nothing to log in with yet, so register first. An appservice login proves nothing
         * either: Synapse gives a token for a user it does not have, then refuses the token. */
        rc = create_account(g, a, m, err);
        return rc == MR_OK ? keep_session(g, a, m, err) : rc;
    }
    rc = login(g, a, m, err);
    if (rc == MR_EPERM && a->given) {
        snprintf(advice, sizeof advice, "%s_PASSWORD does not open %s; give the one that opens it",
                 a->setting, a->user_id);
        return settings_refused(err, advice);
    }
    /* Refused: the account was never created (a crash after the password was kept) or the
     * homeserver lost it, so register it; a name taken by someone else then shows up as a
     * collision. */
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
        /* A given token is used as is; a given password may have left a session to reuse. */
        if (rc == MR_OK && a->given != GW_GIVEN_TOKEN)
            rc = load_secret(g, a, "token", &a->token, err);
        if (rc == MR_OK && !a->given)
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

/* ---- all accounts at once ---- */

typedef struct boot_pool {
    gw *g;
    atomic_size_t next;
    mr_code *rcs;
    mr_err *errs;
} boot_pool;

static void *boot_worker(void *arg)
{
    boot_pool *p = arg;
    mr_thread_name("gw-boot");
    for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->g->n_accounts;)
        p->rcs[i] = bootstrap_one(p->g, &p->g->accounts[i], &p->errs[i]);
    return NULL;
}

/* The failure to report: the first in plan order that retrying cannot fix, else the first. */
static size_t worst(const boot_pool *p)
{
    size_t first = p->g->n_accounts;
    for (size_t i = 0; i < p->g->n_accounts; i++) {
        if (p->rcs[i] != MR_OK && p->rcs[i] != MR_EUNAVAIL)
            return i;
        if (p->rcs[i] != MR_OK && first == p->g->n_accounts)
            first = i;
    }
    return first;
}

mr_code gw_accounts_bootstrap(gw *g, mr_err *err)
{
    size_t n = g->n_accounts;
    boot_pool p = {.g = g, .rcs = calloc(n ? n : 1, sizeof *p.rcs),
                   .errs = calloc(n ? n : 1, sizeof *p.errs)};
    atomic_init(&p.next, 0);
    if (!p.rcs || !p.errs) {
        free(p.rcs);
        free(p.errs);
        return mr_err_set(err, MR_ENOMEM, "out of memory starting %zu accounts", n);
    }
    /* Each account has its own client; a homeserver answers a few registrations at once far
     * sooner than one after another, and its 429s are waited out per request. */
    pthread_t threads[BOOTSTRAP_THREADS - 1];
    size_t started = 0;
    while (started + 1 < BOOTSTRAP_THREADS && started + 1 < n &&
           pthread_create(&threads[started], NULL, boot_worker, &p) == 0)
        started++;
    boot_worker(&p);
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    size_t bad = worst(&p);
    mr_code rc = bad < n ? p.rcs[bad] : MR_OK;
    for (size_t i = 0; i < n; i++)
        if (p.rcs[i] != MR_OK && i != bad)
            mr_log_error(GW, "%s", p.errs[i].msg);
    if (bad < n && err)
        *err = p.errs[bad];
    free(p.rcs);
    free(p.errs);
    return rc;
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
