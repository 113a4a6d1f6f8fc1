/* serve.c -- mr_gateway_serve: Matrix settings, waiting for the homeserver, the bootstrap of
 * accounts and rooms (retried while the homeserver is unavailable), then the sync loops and
 * the matrix.send consumer until the runtime stops. */
#include "gateway_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/fsutil.h"

#define VERSIONS_POLL_MS 2000
#define VERSIONS_TIMEOUT_MS 5000
#define BOOTSTRAP_BACKOFF_MS 5000
#define BOOTSTRAP_BACKOFF_MAX_MS 60000
#define MAX_STARTUP_TIMEOUT_S 86400
#define DEFAULT_SYNC_TIMEOUT_MS 30000
#define MAX_SYNC_TIMEOUT_MS 3600000
#define DEFAULT_TIMELINE_LIMIT 5000
#define MAX_TIMELINE_LIMIT 50000
#define DEFAULT_BACKFILL_MAX 1000
#define MAX_BACKFILL_MAX 1000000
#define DEFAULT_ANSWER_MAX_AGE_S 86400
#define MAX_ANSWER_MAX_AGE_S (6 * 86400)

/* ---- settings ---- */

static char *trimmed_dup(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return strndup(s, n);
}

mr_code gw_secret_setting(const mr_runtime *rt, const char *key, char **out, mr_err *err)
{
    char file_key[96];
    snprintf(file_key, sizeof file_key, "%s_FILE", key);
    const char *direct = mr_runtime_setting(rt, NULL, key, NULL);
    const char *path = mr_runtime_setting(rt, NULL, file_key, NULL);
    *out = NULL;
    if (direct && path)
        return mr_err_set(err, MR_EINVAL, "%s and %s are both set; set only one", key, file_key);
    if (direct) {
        *out = trimmed_dup(direct);
        return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory reading %s", key);
    }
    if (!path)
        return MR_OK;
    char *text = NULL;
    size_t len = 0;
    mr_code rc = mr_fs_read_all(path, 64 * 1024, &text, &len, err);
    /* "<KEY>: ..." would read as a secret to the log's redaction: name the key otherwise. */
    if (rc != MR_OK) {
        mr_err_prefix(err, "%s names a file that cannot be read", file_key);
        if (err)
            err->code = MR_EINVAL;
        return MR_EINVAL;
    }
    *out = trimmed_dup(text);
    memset(text, 0, len);
    free(text);
    if (!*out)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s", file_key);
    if (!**out) {
        free(*out);
        *out = NULL;
        return mr_err_set(err, MR_EINVAL, "%s names an empty file (%s)", file_key, path);
    }
    return MR_OK;
}

static mr_code dup_setting(const mr_runtime *rt, const char *key, char **out, mr_err *err)
{
    const char *v = mr_runtime_setting(rt, NULL, key, NULL);
    *out = NULL;
    if (v && !(*out = strdup(v)))
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", key);
    return MR_OK;
}

/* How far back the sync looks and what it may still answer. The age bound must stay below the
 * agent's claim lifetime (7 days), or a token reset could answer an event a second time. */
static mr_code history_settings(const mr_runtime *rt, gw_settings *s, mr_err *err)
{
    long age_s = 0;
    mr_code rc;
    if ((rc = mr_runtime_setting_long(rt, "MINDROOM_GATEWAY_TIMELINE_LIMIT", DEFAULT_TIMELINE_LIMIT, 1,
                                      MAX_TIMELINE_LIMIT, &s->timeline_limit, err)) ||
        (rc = mr_runtime_setting_long(rt, "MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS", DEFAULT_BACKFILL_MAX, 0,
                                      MAX_BACKFILL_MAX, &s->backfill_max, err)) ||
        (rc = mr_runtime_setting_long(rt, "MINDROOM_ANSWER_MAX_AGE_SECONDS", DEFAULT_ANSWER_MAX_AGE_S, 1,
                                      MAX_ANSWER_MAX_AGE_S, &age_s, err)))
        return rc;
    s->answer_max_age_ms = (long long)age_s * 1000;
    return MR_OK;
}

/* Picks the registration method as pairing-and-run.md §3 orders them: appservice when asked
 * for, else the provisioning service (a hosted install: a provisioning URL and no registration
 * token), else the shared secret, the registration token, open registration. need tells
 * whether any account is left to register (all may be given as MATRIX_ACCOUNT_* settings). */
static mr_code pick_method(gw_settings *s, const char *auth_mode, bool need, mr_err *err)
{
    bool appservice = auth_mode && strcasecmp(auth_mode, "appservice") == 0;
    if (auth_mode && !appservice && strcasecmp(auth_mode, "password") != 0)
        return mr_err_set(err, MR_EINVAL, "MATRIX_MANAGED_ACCOUNT_AUTH: must be password or "
                          "appservice, not \"%s\"", auth_mode);
    if (appservice) {
        if (!s->appservice_token)
            return mr_err_set(err, MR_EINVAL, "MATRIX_MANAGED_ACCOUNT_AUTH: appservice needs "
                              "MATRIX_APPSERVICE_TOKEN or MATRIX_APPSERVICE_TOKEN_FILE");
        s->method = GW_REG_APPSERVICE;
        return MR_OK;
    }
    if (s->appservice_token)
        return mr_err_set(err, MR_EINVAL, "MATRIX_APPSERVICE_TOKEN is set, but "
                          "MATRIX_MANAGED_ACCOUNT_AUTH is not appservice");
    bool paired = s->client_id && s->client_secret;
    if (s->provisioning_url && !s->registration_token && paired) {
        s->method = GW_REG_PROVISIONING;
        return MR_OK;
    }
    /* A provisioning URL the method above does not use: said, or an error when nothing else
     * could register the accounts. */
    if (s->provisioning_url && need && s->registration_token)
        mr_log_warn(GW, "MINDROOM_PROVISIONING_URL is not used: MATRIX_REGISTRATION_TOKEN is set, "
                    "so accounts are registered on the homeserver directly");
    else if (s->provisioning_url && need && s->shared_secret)
        mr_log_warn(GW, "MINDROOM_PROVISIONING_URL is not used: MINDROOM_LOCAL_CLIENT_ID and "
                    "MINDROOM_LOCAL_CLIENT_SECRET are not set, so accounts are registered with "
                    "MATRIX_REGISTRATION_SHARED_SECRET");
    else if (s->provisioning_url && need)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_LOCAL_CLIENT_ID and MINDROOM_LOCAL_CLIENT_SECRET "
                          "are not set, and MINDROOM_PROVISIONING_URL (%s) needs them to register "
                          "agent accounts; " GW_ACCOUNT_OPTIONS, s->provisioning_url);
    if (s->shared_secret)
        s->method = GW_REG_SHARED_SECRET;
    else if (s->registration_token)
        s->method = GW_REG_TOKEN;
    else
        s->method = GW_REG_OPEN;
    return MR_OK;
}

static mr_code settings_load(gw *g, mr_err *err)
{
    const mr_runtime *rt = g->rt;
    gw_settings *s = &g->s;
    if (!rt->settings.homeserver)
        return mr_err_set(err, MR_EINVAL, "MATRIX_HOMESERVER: not set; the gateway needs the "
                          "homeserver URL (e.g. https://mindroom.chat)");
    if (!(s->homeserver = strdup(rt->settings.homeserver)) ||
        !(s->server_name = strdup(rt->settings.server_name)))
        return mr_err_set(err, MR_ENOMEM, "out of memory reading settings");
    snprintf(s->ns, sizeof s->ns, "%s", rt->settings.ns);
    mr_code rc;
    if ((rc = gw_secret_setting(rt, "MATRIX_REGISTRATION_TOKEN", &s->registration_token, err)) ||
        (rc = gw_secret_setting(rt, "MATRIX_REGISTRATION_SHARED_SECRET", &s->shared_secret, err)) ||
        (rc = gw_secret_setting(rt, "MATRIX_APPSERVICE_TOKEN", &s->appservice_token, err)) ||
        (rc = dup_setting(rt, "MINDROOM_PROVISIONING_URL", &s->provisioning_url, err)) ||
        (rc = dup_setting(rt, "MINDROOM_LOCAL_CLIENT_ID", &s->client_id, err)) ||
        (rc = gw_secret_setting(rt, "MINDROOM_LOCAL_CLIENT_SECRET", &s->client_secret, err)) ||
        (rc = mr_runtime_setting_long(rt, "MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS", 0, 0,
                                      MAX_STARTUP_TIMEOUT_S, &s->startup_timeout_ms, err)) ||
        (rc = mr_runtime_setting_long(rt, "MINDROOM_GATEWAY_SYNC_TIMEOUT_MS", DEFAULT_SYNC_TIMEOUT_MS, 0,
                                      MAX_SYNC_TIMEOUT_MS, &s->sync_timeout_ms, err)) ||
        (rc = history_settings(rt, s, err)))
        return rc;
    s->startup_timeout_ms *= 1000;
    /* The URL is joined to API paths, so a trailing slash would double. */
    size_t n = s->provisioning_url ? strlen(s->provisioning_url) : 0;
    while (n && s->provisioning_url[n - 1] == '/')
        s->provisioning_url[--n] = '\0';
    return MR_OK;
}

static void wipe(char *s)
{
    if (s)
        memset(s, 0, strlen(s));
    free(s);
}

static void settings_free(gw_settings *s)
{
    free(s->homeserver);
    free(s->server_name);
    wipe(s->registration_token);
    wipe(s->shared_secret);
    wipe(s->appservice_token);
    free(s->provisioning_url);
    free(s->client_id);
    wipe(s->client_secret);
}

static const char *method_name(gw_reg_method m)
{
    static const char *const names[] = {"provisioning service", "shared secret",
                                        "registration token", "open registration", "appservice"};
    return names[m];
}

/* ---- shared helpers ---- */

static bool gw_sleep(void *ctx, long ms)
{
    return mr_runtime_sleep(ctx, (int)ms);
}

static bool gw_stopping(void *ctx)
{
    return mr_runtime_stopping(ctx);
}

void gw_matrix_opts(gw *g, mr_matrix_opts *o)
{
    /* Waits and requests in flight (long polls too) end when the runtime stops. */
    *o = (mr_matrix_opts){.homeserver = g->s.homeserver, .sleep = gw_sleep,
                          .sleep_ctx = (void *)g->rt, .stopping = gw_stopping,
                          .stopping_ctx = (void *)g->rt, .observe = gw_metrics_observe,
                          .observe_ctx = g};
}

/* ---- start-up ---- */

/* Polls /versions every 2 s until the homeserver answers like one. */
static mr_code wait_homeserver(gw *g, mr_err *err)
{
    mr_matrix_opts o;
    gw_matrix_opts(g, &o);
    o.timeout_ms = VERSIONS_TIMEOUT_MS;
    o.max_attempts = 1;
    mr_matrix *m = NULL;
    mr_code rc = mr_matrix_new(&o, &m, err);
    long waited = 0;
    bool told = false;
    while (rc == MR_OK) {
        mr_err why = {0};
        if (mr_matrix_versions(m, NULL, &why) == MR_OK)
            break;
        if (!told)
            mr_log_info(GW, "waiting for the homeserver %s: %s", g->s.homeserver, why.msg);
        told = true;
        if (g->s.startup_timeout_ms && waited >= g->s.startup_timeout_ms)
            rc = mr_err_set(err, MR_EUNAVAIL, "homeserver %s did not answer /versions within %ld s "
                            "(MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS): %s",
                            g->s.homeserver, g->s.startup_timeout_ms / 1000, why.msg);
        else if (mr_runtime_sleep(g->rt, VERSIONS_POLL_MS))
            rc = mr_err_set(err, MR_EUNAVAIL, "stopped while waiting for the homeserver");
        waited += VERSIONS_POLL_MS;
    }
    mr_matrix_free(m);
    return rc;
}

/* Accounts, then rooms; while the homeserver is unavailable, again after a growing pause (a
 * homeserver that never answers /versions within the start-up limit ends it). */
static mr_code bootstrap(gw *g, mr_err *err)
{
    long delay = BOOTSTRAP_BACKOFF_MS;
    for (;;) {
        mr_code rc = wait_homeserver(g, err);
        if (rc != MR_OK)
            return rc;
        rc = gw_accounts_bootstrap(g, err);
        if (rc == MR_OK)
            rc = gw_rooms_bootstrap(g, err);
        if (rc != MR_EUNAVAIL || mr_runtime_stopping(g->rt))
            return rc;
        mr_log_warn(GW, "start-up failed, again in %ld s: %s", delay / 1000, err->msg);
        if (mr_runtime_sleep(g->rt, (int)delay))
            return rc;
        delay = delay * 2 > BOOTSTRAP_BACKOFF_MAX_MS ? BOOTSTRAP_BACKOFF_MAX_MS : delay * 2;
    }
}

/* The accounts, rooms and authorization the gateway set up come from the config it started
 * with; a reloaded config is said to wait for the next start rather than half applied. */
static void note_reload(gw *g)
{
    unsigned long gen = 0;
    mr_config_release(mr_runtime_config(g->rt, &gen));
    if (gen == g->generation)
        return;
    g->generation = gen;
    mr_log_warn(GW, "config.yaml was reloaded; the gateway applies changes to accounts, rooms, "
                "room access and authorization at its next start");
}

static bool gw_ready(void *ctx, char *why, size_t cap)
{
    gw *g = ctx;
    if (!atomic_load(&g->bootstrapped)) {
        snprintf(why, cap, "gateway: accounts and rooms are being set up");
        return false;
    }
    for (size_t i = 0; i < g->n_accounts; i++) {
        if (!atomic_load(&g->accounts[i].synced)) {
            snprintf(why, cap, "gateway: first sync of %s not saved yet", g->accounts[i].user_id);
            return false;
        }
    }
    if (!atomic_load(&g->send_ready)) {
        snprintf(why, cap, "gateway: matrix.send consumer owns no partition yet");
        return false;
    }
    return true;
}

/* The accounts to manage and how to register them; MR_EINVAL when a setting is wrong. */
static mr_code plan(gw *g, mr_err *err)
{
    mr_code rc = gw_accounts_plan(g, err);
    size_t given = 0;
    for (size_t i = 0; rc == MR_OK && i < g->n_accounts; i++)
        given += g->accounts[i].given != GW_GIVEN_NONE;
    if (rc == MR_OK)
        rc = pick_method(&g->s, mr_runtime_setting(g->rt, NULL, "MATRIX_MANAGED_ACCOUNT_AUTH", NULL),
                         given < g->n_accounts, err);
    if (rc == MR_OK)
        mr_log_info(GW, "homeserver %s, server name %s, %zu managed accounts (%zu given in "
                    "settings), registration through %s", g->s.homeserver, g->s.server_name,
                    g->n_accounts, given, method_name(g->s.method));
    return rc;
}

static int run(gw *g)
{
    mr_err err = {0};
    mr_code rc = settings_load(g, &err);
    if (rc == MR_OK && (rc = gw_pub_init(g, &err)) == MR_OK && (rc = gw_enc_init(g, &err)) == MR_OK &&
        (rc = gw_metrics_declare(g, &err)) == MR_OK &&
        (rc = mr_authz_new(g->cfg, g->s.server_name, g->s.ns, &g->az, &err)) == MR_OK)
        rc = plan(g, &err);
    if (rc != MR_OK) {
        mr_log_error(GW, "%s", err.msg);
        return rc == MR_EINVAL ? 2 : 1;
    }
    if ((rc = mr_runtime_add_check(g->rt, gw_ready, g, &err)) != MR_OK) {
        mr_log_error(GW, "%s", err.msg);
        return 1;
    }
    int status = 0;
    gw_sender *sender = NULL;
    gw_syncs *syncs = NULL;
    rc = bootstrap(g, &err);
    if (rc == MR_OK)
        rc = gw_syncs_start(g, &syncs, &err);
    if (rc == MR_OK)
        rc = gw_sender_start(g, &sender, &err);
    if (rc == MR_OK) {
        atomic_store(&g->bootstrapped, true);
        mr_log_info(GW, "accounts and rooms are set up; syncing %zu accounts", g->n_accounts);
        while (!mr_runtime_sleep(g->rt, 1000))
            note_reload(g);
    } else if (!mr_runtime_stopping(g->rt)) {
        /* MR_EINVAL: the homeserver refused what the settings give (a registration method,
         * credentials), which only the admin can change. */
        mr_log_error(GW, "%s", err.msg);
        status = rc == MR_EINVAL ? 2 : 1;
    }
    /* A failure above may have left a stop to ask for, so the loops started so far end. */
    mr_runtime_stop(g->rt);
    gw_sender_stop(sender);
    gw_syncs_stop(syncs);
    mr_runtime_remove_check(g->rt, gw_ready, g);
    return status;
}

int mr_gateway_serve(const mr_runtime *rt)
{
    gw g = {.rt = rt, .crash = gw_crash_wanted()};
    g.cfg = mr_runtime_config(rt, &g.generation);
    int status = run(&g);
    gw_accounts_free(&g);
    gw_pub_free(&g);
    gw_enc_free(&g);
    mr_authz_free(g.az);
    settings_free(&g.s);
    mr_config_release(g.cfg);
    return status;
}
