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
        /* Forward auth answers from keys in memory on the polling threads; a JWKS fetch (up to
         * 5 s), the OAuth connect flow (store, code exchange up to 10 s) and /readyz go to a
         * worker thread (mr_http_reply_later), holding up no other connection. */
        .http_pool = true,
        .routes = true,
    };
    return mr_service_main(argc, argv, &def);
}
