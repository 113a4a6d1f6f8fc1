/* main.c -- mindroom-agent: the agents, teams and router as their own process. */
#include "agent_service.h"

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "agent",
        .summary = "Decides who answers each turn and answers it through the configured models, streaming replies into Matrix threads.",
        .uses = MR_RUNTIME_USES_ALL,
        .serve_check = true,
        .serve = mr_agent_serve,
        .calls_models = true,
    };
    return mr_service_main(argc, argv, &def);
}
