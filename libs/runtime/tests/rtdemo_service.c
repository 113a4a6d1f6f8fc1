/* rtdemo_service.c -- mindroom-rtdemo: the smallest service on mr_service_main, for process tests.
 *
 * It logs "config generation N: K agents" whenever the config it sees changes, counts its loops
 * in rtdemo_loops_total, is not ready while the file named by MR_RTDEMO_NOT_READY exists, and
 * fails (exit 1) at once when MR_RTDEMO_FAIL is set. Its one route, GET /demo, is installed once
 * the file named by MR_RTDEMO_NO_ROUTES is gone (at once without it). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/runtime.h"

static bool demo_ready(void *ctx, char *why, size_t cap)
{
    (void)ctx;
    const char *path = getenv("MR_RTDEMO_NOT_READY");
    if (path && access(path, F_OK) == 0) {
        snprintf(why, cap, "rtdemo: %s exists", path);
        return false;
    }
    return true;
}

static mr_http_response *demo_route(void *ctx, const mr_http_request *req)
{
    (void)ctx;
    if (strcmp(req->path, "/demo") == 0)
        return mr_http_reply_text(200, "rtdemo");
    return mr_http_reply_text(404, "no such route");
}

/* Installs the route once MR_RTDEMO_NO_ROUTES names no file; false when stopped first. */
static bool install_routes(const mr_runtime *rt)
{
    const char *path = getenv("MR_RTDEMO_NO_ROUTES");
    while (path && access(path, F_OK) == 0)
        if (mr_runtime_sleep(rt, 20))
            return false;
    mr_runtime_set_http_handler(rt, demo_route, NULL);
    return true;
}

static int demo_serve(const mr_runtime *rt)
{
    if (getenv("MR_RTDEMO_FAIL")) {
        mr_log_error("rtdemo", "failing on purpose");
        return 1;
    }
    mr_err err = {0};
    if (mr_http_metrics_counter(rt->metrics, "rtdemo_loops_total", "Loops of the demo service", &err) != MR_OK ||
        mr_runtime_add_check(rt, demo_ready, NULL, &err) != MR_OK) {
        mr_log_error("rtdemo", "%s", err.msg);
        return 1;
    }
    unsigned long seen = ULONG_MAX;
    bool routed = install_routes(rt);
    while (routed && !mr_runtime_stopping(rt)) {
        unsigned long gen = 0;
        mr_config *cfg = mr_runtime_config(rt, &gen);
        if (gen != seen) {
            mr_log_info("rtdemo", "config generation %lu: %zu agents", gen, cfg->n_agents);
            seen = gen;
        }
        mr_config_release(cfg);
        mr_http_metrics_inc(rt->metrics, "rtdemo_loops_total", NULL, 1);
        mr_runtime_sleep(rt, 20);
    }
    mr_runtime_set_http_handler(rt, NULL, NULL);
    mr_runtime_remove_check(rt, demo_ready, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "rtdemo",
        .summary = "A demo service that watches its config (tests of libs/runtime).",
        .serve = demo_serve,
        .routes = true,
    };
    return mr_service_main(argc, argv, &def);
}
