/* main.c -- mindroom-upstream-auth: the identity boundary of the dashboard/API as its own process. */
#include "upstream_auth.h"

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "upstream-auth",
        .summary = "Authenticates dashboard/API requests (trusted upstream headers, strict JWT, API key), answers "
                   "forward auth for ingress controllers and runs the OAuth connect flow.",
        .serve = mr_upstream_auth_serve,
        /* Connect tokens and sealed OAuth credentials live in the store; nothing comes from
         * config.yaml, the bus or Matrix. */
        .uses = MR_RUNTIME_USES_STORE | MR_RUNTIME_USES_SECRET,
        .settings_help = MR_UPSTREAM_AUTH_SETTINGS_HELP,
        /* Forward auth answers from keys in memory, but a JWKS fetch (up to 5 s) or an OAuth code
         * exchange (up to 10 s) waits: with a thread per connection (no http_pool) such a wait
         * holds up no other connection. */
        .routes = true,
    };
    return mr_service_main(argc, argv, &def);
}
