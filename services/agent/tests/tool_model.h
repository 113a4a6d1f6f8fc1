/* tool_model.h -- the model the tool tests talk to: mr-model-stub over loopback, requiring an
 * API key, and the LLM client the agent would use for it. */
#ifndef TOOL_MODEL_H
#define TOOL_MODEL_H

#include "agent_tools.h"
#include "model_stub_peer.h"

typedef struct tool_model {
    mr_model_stub st;
    mr_model_cfg cfg; /* the client reads it: keep the struct where it is */
    mr_llm_client *c;
} tool_model;

/* Starts the stub requiring key and a client to it (retries after 10 ms). 0, or -1 after a line
 * on stderr saying what failed, with nothing left running. */
int tool_model_start(tool_model *m, const char *key);
/* Scripts the model's next answers (mr-model-stub's /_stub/script); fails the test when the
 * stub refuses them. */
void tool_model_script(tool_model *m, const char *json);
/* Frees the client and stops the stub: 0, or -1 when the stub did not stop cleanly. */
int tool_model_stop(tool_model *m);

#endif
