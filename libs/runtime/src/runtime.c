/* runtime.c -- opening and closing a runtime, the swappable config, the stop flag, readiness. */
#include "runtime_internal.h"
#include "mindroom/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* /readyz probes the bus at most this often, each probe waiting at most the timeout. */
#define BUS_PROBE_EVERY_MS 2000
#define BUS_PROBE_TIMEOUT_MS 1000

const char *mr_runtime_setting(const mr_runtime *rt, const char *flag, const char *key, const char *fallback)
{
    const char *v = mr_setting(flag, key, &rt->env, NULL);
    return v && *v ? v : fallback;
}

mr_code mr_runtime_load_config(const char *component, const char *path, mr_config **out, mr_err *err)
{
    mr_config_diags diags = {0};
    mr_code rc = mr_config_load(path, out, &diags, err);
    for (size_t i = 0; i < diags.len; i++) {
        char line[1024];
        mr_config_diag_format(&diags, i, line, sizeof line);
        mr_log_write(diags.v[i].severity == MR_DIAG_ERROR ? MR_LOG_ERROR : MR_LOG_WARN, component, NULL, "%s",
                     line);
    }
    mr_config_diags_free(&diags);
    return rc;
}

static mr_code state_new(mr_runtime *rt, mr_err *err)
{
    mr_runtime_state *st = calloc(1, sizeof *st);
    if (!st)
        return mr_err_set(err, MR_ENOMEM, "out of memory for the runtime");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    /* mr_runtime_sleep measures against the monotonic clock: a clock step must not stretch it. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->reload_mu, NULL);
    pthread_mutex_init(&st->bus_mu, NULL);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->http_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    atomic_init(&st->stop, false);
    atomic_init(&st->closing, false);
    rt->state = st;
    return MR_OK;
}

static mr_code sync_store(void *store, mr_err *err)
{
    return mr_store_sync(store, err);
}

/* Opens the peers; a bad URL is a bad setting, so the message leads with the variable. */
static mr_code open_peers(mr_runtime *rt, mr_err *err)
{
    const mr_runtime_settings *s = &rt->settings;
    mr_store_options so = {.secret = s->secret_len ? s->secret : NULL, .secret_len = s->secret_len};
    mr_code rc = s->store_url ? mr_store_open(s->store_url, &so, &rt->store, err) : MR_OK;
    if (rc != MR_OK) {
        mr_err_prefix(err, "MINDROOM_STORE_URL");
        return rc;
    }
    if (!s->bus_url)
        return MR_OK;
    char client_id[96];
    snprintf(client_id, sizeof client_id, "mindroom-%s", rt->service);
    mr_bus_options bo = {.client_id = client_id};
    rc = mr_bus_open(s->bus_url, &bo, &rt->bus, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "MINDROOM_BUS_URL");
        return rc;
    }
    /* A bus journal syncs the store before each commit, so the store need not fsync each
     * write: an acknowledgement is never durable ahead of the store writes made before it. */
    if (rt->store && mr_bus_before_commit(rt->bus, sync_store, rt->store))
        rc = mr_store_sync_on_demand(rt->store, err);
    return rc;
}

mr_code mr_runtime_open(const mr_runtime_opts *opts, mr_runtime **out, mr_err *err)
{
    mr_err local;
    if (!err)
        err = &local;
    *out = NULL;
    mr_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return mr_err_set(err, MR_ENOMEM, "out of memory for the runtime");
    rt->service = opts->service ? opts->service : "mindroom";
    mr_code rc = mr_runtime_tune_process(err);
    if (rc == MR_OK)
        rc = state_new(rt, err);
    if (rc == MR_OK)
        rc = mr_runtime_settings_resolve(opts, rt, err);
    if (rc == MR_OK && rt->settings.config_path) {
        rc = mr_runtime_load_config(rt->service, rt->settings.config_path, &rt->state->cfg, err);
        /* A file that does not load is a bad setting like any other: exit 2, naming it. */
        if (rc != MR_OK) {
            mr_err_prefix(err, "%s", opts->config_path ? "--config" : "MINDROOM_CONFIG_PATH");
            rc = MR_EINVAL;
        }
    }
    if (rc == MR_OK)
        rc = mr_runtime_settings_secret(rt, err);
    /* Before open_peers: librdkafka starts its threads there. */
    if (rc == MR_OK && opts->model_settings)
        mr_runtime_export_model_settings(rt);
    if (rc == MR_OK)
        rc = (rt->metrics = mr_http_metrics_new()) ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory for metrics");
    if (rc == MR_OK)
        rc = open_peers(rt, err);
    if (rc != MR_OK) {
        mr_runtime_close(rt);
        return rc;
    }
    *out = rt;
    return MR_OK;
}

void mr_runtime_close(mr_runtime *rt)
{
    if (!rt)
        return;
    if (rt->state)
        mr_runtime_unwatch_signals(rt);
    mr_bus_close(rt->bus);
    mr_store_close(rt->store);
    mr_http_metrics_free(rt->metrics);
    mr_dotenv_free(&rt->env);
    mr_runtime_settings_free(&rt->settings);
    mr_runtime_state *st = rt->state;
    if (st) {
        mr_config_release(st->cfg);
        pthread_mutex_destroy(&st->mu);
        pthread_mutex_destroy(&st->reload_mu);
        pthread_mutex_destroy(&st->bus_mu);
        pthread_rwlock_destroy(&st->http_lock);
        pthread_cond_destroy(&st->cv);
        free(st);
    }
    free(rt);
}

mr_config *mr_runtime_config(const mr_runtime *rt, unsigned long *generation)
{
    mr_runtime_state *st = rt->state;
    /* Retained under the lock: a reload cannot free it between the read and the retain. */
    pthread_mutex_lock(&st->mu);
    mr_config *cfg = mr_config_retain(st->cfg);
    if (generation)
        *generation = st->generation;
    pthread_mutex_unlock(&st->mu);
    return cfg;
}

mr_code mr_runtime_reload(const mr_runtime *rt, mr_err *err)
{
    mr_err local;
    if (!err)
        err = &local;
    mr_runtime_state *st = rt->state;
    if (!rt->settings.config_path) {
        mr_log_info(rt->service, "no config.yaml to reload: %s reads its settings at start only", rt->service);
        return MR_OK;
    }
    pthread_mutex_lock(&st->reload_mu);
    mr_config *fresh = NULL;
    mr_code rc = mr_runtime_load_config(rt->service, rt->settings.config_path, &fresh, err);
    if (rc != MR_OK) {
        mr_log_error(rt->service, "config reload failed, keeping the previous config: %s", err->msg);
        pthread_mutex_unlock(&st->reload_mu);
        return rc;
    }
    pthread_mutex_lock(&st->mu);
    mr_config *old = st->cfg;
    st->cfg = fresh;
    unsigned long gen = ++st->generation;
    pthread_mutex_unlock(&st->mu);
    /* Readers still holding the old config keep it alive until their message is done. */
    mr_config_release(old);
    mr_log_info(rt->service, "config reloaded from %s (generation %lu)", rt->settings.config_path, gen);
    pthread_mutex_unlock(&st->reload_mu);
    return MR_OK;
}

void mr_runtime_stop(const mr_runtime *rt)
{
    mr_runtime_state *st = rt->state;
    pthread_mutex_lock(&st->mu);
    atomic_store(&st->stop, true);
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

bool mr_runtime_stopping(const mr_runtime *rt)
{
    return atomic_load(&rt->state->stop);
}

bool mr_runtime_sleep(const mr_runtime *rt, int ms)
{
    mr_runtime_state *st = rt->state;
    struct timespec until = mr_clock_after_ms(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&st->mu);
    while (!atomic_load(&st->stop) && pthread_cond_timedwait(&st->cv, &st->mu, &until) != ETIMEDOUT)
        ;
    bool stopped = atomic_load(&st->stop);
    pthread_mutex_unlock(&st->mu);
    return stopped;
}

mr_code mr_runtime_add_check(const mr_runtime *rt, mr_http_ready_fn fn, void *ctx, mr_err *err)
{
    mr_runtime_state *st = rt->state;
    pthread_mutex_lock(&st->mu);
    mr_code rc = MR_OK;
    if (st->n_checks == MR_RUNTIME_MAX_CHECKS)
        rc = mr_err_set(err, MR_EINVAL, "%s: more than %d readiness checks", rt->service, MR_RUNTIME_MAX_CHECKS);
    else
        st->checks[st->n_checks++] = (mr_runtime_check){fn, ctx};
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void mr_runtime_remove_check(const mr_runtime *rt, mr_http_ready_fn fn, void *ctx)
{
    mr_runtime_state *st = rt->state;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->n_checks; i++) {
        if (st->checks[i].fn == fn && st->checks[i].ctx == ctx) {
            memmove(&st->checks[i], &st->checks[i + 1], (st->n_checks - i - 1) * sizeof st->checks[0]);
            st->n_checks--;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

/* Whether the bus answers (a service without one has nothing to wait for), probing it at most
 * once per BUS_PROBE_EVERY_MS. */
static bool bus_ready(const mr_runtime *rt, char *why, size_t cap)
{
    if (!rt->bus)
        return true;
    mr_runtime_state *st = rt->state;
    pthread_mutex_lock(&st->bus_mu);
    long long now = mr_clock_mono_ms();
    if (!st->bus_probed_ms || now - st->bus_probed_ms >= BUS_PROBE_EVERY_MS) {
        mr_err err = {0};
        st->bus_rc = mr_bus_ping(rt->bus, BUS_PROBE_TIMEOUT_MS, &err);
        snprintf(st->bus_why, sizeof st->bus_why, "%s", err.msg);
        st->bus_probed_ms = mr_clock_mono_ms();
    }
    bool ok = st->bus_rc == MR_OK;
    if (!ok)
        snprintf(why, cap, "bus: %s", st->bus_why);
    pthread_mutex_unlock(&st->bus_mu);
    return ok;
}

bool mr_runtime_ready(void *ctx, char *why, size_t cap)
{
    const mr_runtime *rt = ctx;
    mr_err err = {0};
    if (rt->store && mr_store_ping(rt->store, &err) != MR_OK) {
        snprintf(why, cap, "store: %s", err.msg);
        return false;
    }
    if (!bus_ready(rt, why, cap))
        return false;
    mr_runtime_state *st = rt->state;
    /* Checks run under the lock, so a service cannot remove one (and free its context) while it
     * runs; they are quick reads of the service's own flags. */
    pthread_mutex_lock(&st->mu);
    bool ok = true;
    for (size_t i = 0; ok && i < st->n_checks; i++)
        ok = st->checks[i].fn(st->checks[i].ctx, why, cap);
    pthread_mutex_unlock(&st->mu);
    return ok;
}

void mr_runtime_set_http_handler(const mr_runtime *rt, mr_http_handler fn, void *ctx)
{
    mr_runtime_state *st = rt->state;
    pthread_rwlock_wrlock(&st->http_lock);
    st->http_fn = fn;
    st->http_ctx = ctx;
    pthread_rwlock_unlock(&st->http_lock);
}

void mr_runtime_checks_from_here(const mr_runtime *rt)
{
    mr_runtime_state *st = rt->state;
    pthread_mutex_lock(&st->mu);
    st->base_checks = st->n_checks;
    pthread_mutex_unlock(&st->mu);
}

/* Runs as a check, so under st->mu already (see the readiness handler). */
bool mr_runtime_serve_check_added(void *ctx, char *why, size_t cap)
{
    const mr_runtime *rt = ctx;
    const mr_runtime_state *st = rt->state;
    bool added = st->n_checks > st->base_checks;
    if (!added)
        snprintf(why, cap, "%s: starting (its readiness check is not in place yet)", rt->service);
    return added;
}

bool mr_runtime_routes_installed(void *ctx, char *why, size_t cap)
{
    const mr_runtime *rt = ctx;
    mr_runtime_state *st = rt->state;
    pthread_rwlock_rdlock(&st->http_lock);
    bool installed = st->http_fn != NULL;
    pthread_rwlock_unlock(&st->http_lock);
    if (!installed)
        snprintf(why, cap, "%s: routes not installed yet", rt->service);
    return installed;
}

mr_http_response *mr_runtime_http_handle(void *ctx, const mr_http_request *req)
{
    const mr_runtime *rt = ctx;
    mr_http_response *r = mr_http_ops_reply(req, rt->metrics, mr_runtime_ready, ctx);
    if (r)
        return r;
    mr_runtime_state *st = rt->state;
    pthread_rwlock_rdlock(&st->http_lock);
    if (st->http_fn)
        r = st->http_fn(st->http_ctx, req);
    else
        r = mr_http_reply_error(404, "M_NOT_FOUND", "no such endpoint: %s", req->path);
    pthread_rwlock_unlock(&st->http_lock);
    return r;
}
