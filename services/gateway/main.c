/* main.c -- mindroom-gateway: the Matrix gateway as its own process. */
#include "gateway.h"

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "gateway",
        .summary = "Keeps the instance's Matrix accounts and rooms, syncs them onto the bus and "
                   "sends what matrix.send asks.",
        .uses = MR_RUNTIME_USES_ALL,
        .serve_check = true,
        .serve = mr_gateway_serve,
    };
    return mr_service_main(argc, argv, &def);
}
