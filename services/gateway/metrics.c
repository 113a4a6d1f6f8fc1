/* metrics.c -- the gateway's Prometheus series: sync lag, send latency, events published, and
 * failed Matrix requests by endpoint and errcode, the entities' messages left unpublished. */
#include "gateway_internal.h"

#include <stdio.h>

#define SYNC_LAG "mindroom_gateway_sync_lag_seconds"
#define SEND_SECONDS "mindroom_gateway_send_seconds"
#define SENDS "mindroom_gateway_sends_total"
#define PUBLISHED "mindroom_gateway_events_published_total"
#define ERRORS "mindroom_gateway_matrix_errors_total"
#define ECHOES "mindroom_gateway_echoes_unpublished_total"

mr_code gw_metrics_declare(gw *g, mr_err *err)
{
    static const double lag_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300};
    static const double send_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    mr_http_metrics *m = g->rt->metrics;
    mr_code rc;
    if ((rc = mr_http_metrics_histogram(m, SYNC_LAG, "Time from an event's origin_server_ts to its "
                                        "publication on matrix.inbound", lag_buckets,
                                        sizeof lag_buckets / sizeof *lag_buckets, err)) ||
        (rc = mr_http_metrics_histogram(m, SEND_SECONDS, "Latency of requests from matrix.send at "
                                        "the homeserver, retries included", send_buckets,
                                        sizeof send_buckets / sizeof *send_buckets, err)) ||
        (rc = mr_http_metrics_counter(m, SENDS, "Requests from matrix.send by kind and outcome "
                                      "(sent, dropped, retried; coalesced: a typing notice replaced by a later one)", err)) ||
        (rc = mr_http_metrics_counter(m, PUBLISHED, "Events the sync loops published, by topic",
                                      err)) ||
        (rc = mr_http_metrics_counter(m, ECHOES, "Messages of the router, agents and teams the sync loops "
                                      "left off matrix.inbound: nothing reads them back", err)) ||
        (rc = mr_http_metrics_counter(m, ERRORS, "Failed Matrix requests by endpoint and errcode "
                                      "(transport for no response, HTTP_<status> without one)", err)))
        return rc;
    return MR_OK;
}

void gw_metrics_observe(void *ctx, const mr_matrix_attempt *a)
{
    gw *g = ctx;
    if (a->status >= 200 && a->status < 400)
        return;
    char code[64];
    if (a->errcode)
        snprintf(code, sizeof code, "%s", a->errcode);
    else if (a->status == 0)
        snprintf(code, sizeof code, "transport");
    else
        snprintf(code, sizeof code, "HTTP_%ld", a->status);
    const char *labels[] = {"endpoint", a->endpoint, "errcode", code, NULL};
    mr_http_metrics_inc(g->rt->metrics, ERRORS, labels, 1);
}

void gw_metrics_sync_lag(gw *g, double seconds)
{
    mr_http_metrics_observe(g->rt->metrics, SYNC_LAG, NULL, seconds > 0 ? seconds : 0);
}

void gw_metrics_send(gw *g, const char *kind, const char *outcome, double seconds)
{
    const char *labels[] = {"kind", kind, "outcome", outcome, NULL};
    mr_http_metrics_inc(g->rt->metrics, SENDS, labels, 1);
    if (seconds >= 0) {
        const char *kl[] = {"kind", kind, NULL};
        mr_http_metrics_observe(g->rt->metrics, SEND_SECONDS, kl, seconds);
    }
}

void gw_metrics_echoes(gw *g, size_t n)
{
    mr_http_metrics_inc(g->rt->metrics, ECHOES, NULL, (double)n);
}

void gw_metrics_published(gw *g, const char *topic, size_t n)
{
    const char *labels[] = {"topic", topic, NULL};
    mr_http_metrics_inc(g->rt->metrics, PUBLISHED, labels, (double)n);
}
