/* rate_limit.c -- per-user, per-address and per-connection request limits counted in the store,
 * so every replica behind one load balancer enforces the same budget. */
#include "prov_internal.h"

#include <stdio.h>

#define WINDOW_S 60

/* The reference product's budgets, per 60 s. */
const rate_rule rate_pair_start = {"pair_start", "pair/start requests", "Matrix user", 10};
const rate_rule rate_pair_status = {"pair_status", "pair/status requests", "Matrix user", 60};
const rate_rule rate_pair_complete = {"pair_complete", "pair/complete requests", "client address", 20};
const rate_rule rate_connections_list = {"conn_list", "connections requests", "Matrix user", 60};
const rate_rule rate_connections_revoke = {"conn_revoke", "revocations", "Matrix user", 20};
const rate_rule rate_register_agent = {"register_agent", "register-agent requests", "connection", 60};

mr_code rate_limit_hit(prov *p, const rate_rule *rule, const char *subject, long *retry_after_s, mr_err *err)
{
    long long now = pair_now();
    long long window = now - now % WINDOW_S;
    char key[512];
    snprintf(key, sizeof key, "rate:%s:%s:%lld", rule->scope, subject, window);
    long long count = 0;
    /* The counter expires with its window (a little later, so a slow clock on one replica
     * still finds it); a new window starts from zero. */
    mr_code rc = mr_store_incr(p->store, key, 1, (WINDOW_S + 5) * 1000L, &count, err);
    if (rc != MR_OK)
        return rc;
    *retry_after_s = 0;
    if (count > rule->per_minute) {
        long left = (long)(window + WINDOW_S - now);
        *retry_after_s = left > 0 ? left : 1;
    }
    return MR_OK;
}
