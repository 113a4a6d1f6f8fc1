/* main.c -- mindroom-upstream-auth: the identity boundary of the dashboard/API as its own process. */
#include "upstream_auth.h"

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "upstream-auth",
        .summary = "Authenticates dashboard/API requests (trusted upstream headers, strict JWT, API key), answers "
                   "forward auth for ingress controllers and runs the OAuth connect flow.",
        .serve = mr_upstream_auth_serve,
    };
    return mr_service_main(argc, argv, &def);
}
