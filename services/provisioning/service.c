/* service.c -- starting and stopping mindroom-provisioning: store, metrics, HTTP server. */
#include "prov_internal.h"

#include <stdlib.h>
#include <string.h>

/* libs/http's default total cap, named here for the per-address lift behind proxies. */
#define MAX_CONNECTIONS 256
#define MAX_BODY (64u * 1024u)

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

mr_code mr_provisioning_start(const mr_provisioning_settings *settings, mr_provisioning **out, mr_err *err)
{
    *out = NULL;
    prov *p = calloc(1, sizeof *p);
    if (!p)
        return mr_err_set(err, MR_ENOMEM, "out of memory starting the provisioning service");
    p->s = settings;
    /* SQLite is one file with its own locking: one handle. */
    size_t want = strncmp(settings->store_url, "redis", 5) == 0 ? PROV_REDIS_CONNECTIONS : 1;
    mr_code rc = MR_OK;
    for (size_t i = 0; rc == MR_OK && i < want; i++) {
        rc = mr_store_open(settings->store_url, NULL, &p->stores[i], err);
        p->nstores += rc == MR_OK;
    }
    if (rc != MR_OK)
        mr_err_prefix(err, "MINDROOM_STORE_URL");
    if (rc == MR_OK)
        rc = (p->metrics = mr_http_metrics_new()) ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory for metrics");
    if (rc == MR_OK)
        rc = declare_metrics(p->metrics, err);
    if (rc == MR_OK) {
        /* Behind trusted proxies every client shares their addresses: the per-address cap would
         * count all of them as one, so it is lifted to the total cap there. */
        mr_http_server_opts so = {.listen = settings->listen, .max_body = MAX_BODY, .metrics = p->metrics,
                                  .max_per_address = settings->n_trusted_proxies ? MAX_CONNECTIONS : 0,
                                  .max_connections = MAX_CONNECTIONS,
                                  .error_reply = api_error_reply};
        rc = mr_http_server_start(&so, api_handle, p, &p->srv, err);
        if (rc != MR_OK)
            mr_err_prefix(err, "listen address %s", settings->listen);
    }
    if (rc != MR_OK) {
        mr_provisioning_stop(p);
        return rc;
    }
    *out = p;
    return MR_OK;
}

mr_store *prov_store(prov *p)
{
    unsigned i = __atomic_fetch_add(&p->next_store, 1, __ATOMIC_RELAXED);
    return p->stores[i % p->nstores];
}

int mr_provisioning_port(const mr_provisioning *p)
{
    return mr_http_server_port(p->srv);
}

void mr_provisioning_stop(mr_provisioning *p)
{
    if (!p)
        return;
    mr_http_server_stop(p->srv);
    for (size_t i = 0; i < p->nstores; i++)
        mr_store_close(p->stores[i]);
    mr_http_metrics_free(p->metrics);
    free(p);
}
