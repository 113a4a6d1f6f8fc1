/* main.c -- mindroom-crypto: the end-to-end encryption service as its own process. */
#include "crypto_service.h"

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "crypto",
        .summary = "Turns synced room events into cleartext for authz, and intents into send requests for the gateway.",
        .uses = MR_RUNTIME_USES_ALL,
        .serve_check = true,
        .serve = mr_crypto_serve,
    };
    return mr_service_main(argc, argv, &def);
}
