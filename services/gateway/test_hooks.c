/* test_hooks.c -- crash points for the gateway's process tests; built only into
 * mindroom-gateway-testhooks (MR_GATEWAY_TEST_HOOKS), never into a shipped binary. */
#include "gateway_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

gw_crash gw_crash_wanted(void)
{
    const char *v = getenv("MR_GATEWAY_TEST_CRASH");
    if (v && strcmp(v, "after_publish") == 0)
        return GW_CRASH_AFTER_PUBLISH;
    if (v && strcmp(v, "after_send") == 0)
        return GW_CRASH_AFTER_SEND;
    return GW_CRASH_NONE;
}

void gw_crash_point(gw *g, gw_crash where)
{
    if (g->crash != where)
        return;
    mr_log_warn(GW, "MR_GATEWAY_TEST_CRASH: dying by SIGKILL as the test asked");
    raise(SIGKILL);
}
