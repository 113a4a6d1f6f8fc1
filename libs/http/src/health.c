/* health.c -- the /healthz, /readyz and /metrics answers every service gives. */
#include "mindroom/http.h"

#include <stdlib.h>
#include <string.h>

static mr_http_response *readyz(mr_http_ready_fn ready, void *ready_ctx)
{
    char why[256] = "";
    if (!ready || ready(ready_ctx, why, sizeof why))
        return mr_http_reply_json(200, json_pack("{s:s}", "status", "ready"));
    return mr_http_reply_json(503, json_pack("{s:s, s:s}", "status", "not ready", "reason", why));
}

static mr_http_response *metrics_reply(mr_http_metrics *metrics)
{
    if (!metrics)
        return mr_http_reply_text(404, "no metrics here\n");
    char *text = mr_http_metrics_render(metrics);
    if (!text)
        return NULL;
    mr_http_response *r = mr_http_reply(200, "text/plain; version=0.0.4; charset=utf-8", text,
                                        strlen(text));
    free(text);
    return r;
}

mr_http_response *mr_http_ops_reply(const mr_http_request *req, mr_http_metrics *metrics,
                                    mr_http_ready_fn ready, void *ready_ctx)
{
    if ((strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) ||
        req->nsegments != 1)
        return NULL;
    const char *what = req->segments[0];
    /* Probed often, answered from a constant. */
    static const char healthy[] = "{\"status\":\"ok\"}";
    if (strcmp(what, "healthz") == 0)
        return mr_http_reply(200, "application/json", healthy, sizeof healthy - 1);
    /* Readiness checks may ask a peer (the store's ping): not on a polling thread. */
    if (strcmp(what, "readyz") == 0)
        return ready && !req->may_block ? mr_http_reply_later() : readyz(ready, ready_ctx);
    if (strcmp(what, "metrics") == 0)
        return metrics_reply(metrics);
    return NULL;
}
