/* consume.c -- a service's consumer loop: subscribe, poll until the runtime stops, judge each poll. */
#include "runtime_internal.h"

#include <stdio.h>
#include <string.h>

/* The pause after a failed poll: 200 ms, doubling while polls keep failing (a store or broker
 * that is down), up to 5 s, so a lost peer is neither hammered nor the log flooded. */
#define FAILURE_PAUSE_MIN_MS 200
#define FAILURE_PAUSE_MAX_MS 5000

int mr_runtime_failure_pause(int previous_ms)
{
    if (previous_ms <= 0)
        return FAILURE_PAUSE_MIN_MS;
    return previous_ms >= FAILURE_PAUSE_MAX_MS / 2 ? FAILURE_PAUSE_MAX_MS : previous_ms * 2;
}

static void default_after_poll(const mr_runtime *rt, const mr_runtime_consumer *c, mr_bus_consumer *bc,
                               mr_code rc, const mr_err *err)
{
    (void)bc;
    (void)rt;
    if (rc == MR_OK) {
        atomic_store(c->consuming, true);
        return;
    }
    mr_log_warn(c->component, "%s", err->msg);
}

void mr_runtime_consume(const mr_runtime *rt, const mr_runtime_consumer *c)
{
    mr_runtime_after_poll after = c->after_poll ? c->after_poll : default_after_poll;
    char names[256] = "";
    for (size_t i = 0, used = 0; i < c->n_topics && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", c->topics[i]);
    mr_bus_consumer *bc = NULL;
    mr_err err = {0};
    int pause = 0;
    while (!mr_runtime_stopping(rt)) {
        if (!bc && mr_bus_subscribe(rt->bus, c->group, c->topics, c->n_topics, &bc, &err) != MR_OK) {
            mr_log_warn(c->component, "subscribing to %s: %s", names, err.msg);
            mr_runtime_sleep(rt, c->subscribe_retry_ms);
            continue;
        }
        size_t handled = 0;
        mr_code rc = mr_bus_poll(bc, c->poll_timeout_ms, c->batch, c->handler, c->ctx, &handled, &err);
        after(rt, c, bc, rc, &err);
        pause = rc == MR_OK ? 0 : mr_runtime_failure_pause(pause);
        if (pause)
            mr_runtime_sleep(rt, pause);
    }
    mr_bus_consumer_close(bc);
}
