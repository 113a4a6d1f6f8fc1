/* fuzz_agent_turn.c -- libFuzzer target: the agent's turn parser (turn_in.c) never crashes on
 * any message; a parsed turn has its body and its allowed entities. */
#include <stdint.h>
#include <stdlib.h>

#include "agent_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agent_turn t;
    mr_err err = {0};
    if (agent_turn_parse((const char *)data, size, &t, &err) != MR_OK)
        return 0;
    for (size_t i = 0; i < t.n_allowed; i++)
        if (!t.allowed[i])
            abort();
    agent_turn_free(&t);
    return 0;
}
