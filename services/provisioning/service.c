/* service.c -- mindroom-provisioning's serve: store connections, metrics, its API on --listen. */
#include "prov_internal.h"

#include <string.h>

static mr_code declare_metrics(mr_http_metrics *m, mr_err *err)
{
    static const char *const counters[][2] = {
        {"provisioning_pair_starts_total", "Pair codes handed out"},
        {"provisioning_pair_completes_total", "pair/complete answers, by result (connected, not_found, expired, used)"},
        {"provisioning_register_agent_total", "register-agent answers, by result (created, user_in_use, rejected, failed)"},
        {"provisioning_revocations_total", "Connections revoked by their owner"},
        {"provisioning_rate_limited_total", "Requests refused with 429, by limit"},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        mr_code rc = mr_http_metrics_counter(m, counters[i][0], counters[i][1], err);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

/* stores[0] is the runtime's, which also answers /readyz: not ours to close. */
static void close_stores(prov *p)
{
    for (size_t i = 1; i < p->nstores; i++)
        mr_store_close(p->stores[i]);
}

/* More connections beside the runtime's, for Redis only. */
static mr_code open_stores(prov *p, const mr_runtime *rt, mr_err *err)
{
    p->stores[0] = rt->store;
    p->nstores = 1;
    /* SQLite is one file with its own locking: one handle. */
    const char *url = rt->settings.store_url;
    size_t want = strncmp(url, "redis", 5) == 0 ? PROV_REDIS_CONNECTIONS : 1;
    mr_code rc = MR_OK;
    for (size_t i = 1; rc == MR_OK && i < want; i++) {
        rc = mr_store_open(url, NULL, &p->stores[i], err);
        p->nstores += rc == MR_OK;
    }
    if (rc != MR_OK)
        mr_err_prefix(err, "MINDROOM_STORE_URL");
    return rc;
}

int mr_provisioning_serve(const mr_runtime *rt)
{
    mr_provisioning_settings s;
    prov p = {.s = &s, .metrics = rt->metrics};
    pthread_mutex_init(&p.lease_mu, NULL);
    mr_err err = {0};
    mr_code rc = mr_provisioning_settings_resolve(&s, &err);
    if (rc == MR_OK)
        rc = open_stores(&p, rt, &err);
    if (rc == MR_OK)
        rc = declare_metrics(p.metrics, &err);
    if (rc != MR_OK) {
        mr_log_error(rt->service, "%s", err.msg);
        close_stores(&p);
        mr_provisioning_settings_free(&s);
        pthread_mutex_destroy(&p.lease_mu);
        return rc == MR_EINVAL ? 2 : 1;
    }
    const char *fields[] = {"homeserver", s.homeserver, "server_name", s.server_name, NULL};
    mr_log_write(MR_LOG_INFO, rt->service, fields, "serving pair codes, valid %ld s", s.pair_ttl_s);
    mr_runtime_set_http_handler(rt, api_handle, &p);
    while (!mr_runtime_sleep(rt, 1000))
        ;
    /* Waits for the requests in flight, which use the stores and the settings. */
    mr_runtime_set_http_handler(rt, NULL, NULL);
    close_stores(&p);
    mr_provisioning_settings_free(&s);
    pthread_mutex_destroy(&p.lease_mu);
    return 0;
}

/* The handle prov_store_take gave this thread's request, and its index; -1 for none. */
static _Thread_local int taken = -1;

mr_store *prov_store(prov *p)
{
    if (taken >= 0)
        return p->stores[taken];
    unsigned i = __atomic_fetch_add(&p->next_store, 1, __ATOMIC_RELAXED);
    return p->stores[i % p->nstores];
}

void prov_store_take(prov *p)
{
    if (p->nstores < 2)
        return;
    pthread_mutex_lock(&p->lease_mu);
    for (size_t i = 0; i < p->nstores && taken < 0; i++) {
        if (!p->leased[i]) {
            p->leased[i] = true;
            taken = (int)i;
        }
    }
    pthread_mutex_unlock(&p->lease_mu);
}

void prov_store_give(prov *p)
{
    if (taken < 0)
        return;
    pthread_mutex_lock(&p->lease_mu);
    p->leased[taken] = false;
    pthread_mutex_unlock(&p->lease_mu);
    taken = -1;
}
