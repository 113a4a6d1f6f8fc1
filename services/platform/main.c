/* main.c -- mindroom-platform: per-user instance lifecycle through the Kubernetes API. */
#include "platform.h"

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "platform",
        .summary = "Creates, suspends, resumes and deletes per-user MindRoom instances by rendering the instance "
                   "chart and applying it through the Kubernetes API.",
        .serve = mr_platform_serve,
        /* Instance records live in the store; no config.yaml, bus or Matrix. */
        .uses = MR_RUNTIME_USES_STORE,
        /* Not ready before its routes are: a caller that trusted /readyz got 404s. */
        .routes = true,
        .settings_help = MR_PLATFORM_SETTINGS_HELP,
    };
    return mr_service_main(argc, argv, &def);
}
