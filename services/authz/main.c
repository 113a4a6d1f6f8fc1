/* main.c -- mindroom-authz: the authorization service as its own process. */
#include "authz_service.h"

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "authz",
        .summary = "Decides who may be served for each Matrix message and publishes turns for the agents.",
        .uses = MR_RUNTIME_USES_ALL,
        .serve_check = true,
        .serve = mr_authz_serve,
    };
    return mr_service_main(argc, argv, &def);
}
