/* tool_model.c -- mr-model-stub and an LLM client to it, for the tool tests. */
#include "tool_model.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

int tool_model_start(tool_model *m, const char *key)
{
    mr_err err = {0};
    if (mr_model_stub_start(key, NULL, &m->st, &err) != MR_OK) {
        fprintf(stderr, "starting mr-model-stub: %s\n", err.msg);
        return -1;
    }
    /* The config names the variable that holds the key, as config.yaml does. */
    setenv("MR_TEST_TOOL_KEY", key, 1);
    m->cfg = (mr_model_cfg){.name = "default", .provider = "openai", .id = "stub-model", .host = m->st.url,
                            .api_key_env = "MR_TEST_TOOL_KEY", .temperature = -1};
    mr_llm_opts o = {.backoff_ms = 10};
    if (mr_llm_client_new(&m->cfg, &o, &m->c, &err) != MR_OK) {
        fprintf(stderr, "creating the model client: %s\n", err.msg);
        mr_err ignored = {0};
        mr_model_stub_stop(&m->st, &ignored);
        return -1;
    }
    return 0;
}

void tool_model_script(tool_model *m, const char *json)
{
    mr_err err = {0};
    if (mr_model_stub_script(&m->st, json, &err) != MR_OK)
        fail_msg("scripting the model stub: %s", err.msg);
}

int tool_model_stop(tool_model *m)
{
    mr_llm_client_free(m->c);
    m->c = NULL;
    mr_err err = {0};
    if (mr_model_stub_stop(&m->st, &err) == MR_OK)
        return 0;
    fprintf(stderr, "stopping mr-model-stub: %s\n", err.msg);
    return -1;
}
