/* model_env.c -- a model's provider settings that may live in .env (its API key and base URL
 * variables) passed on to the process environment, where the model client reads them. */
#include <stdlib.h>

#include "cli.h"

const char *mr_cli_setting(const mr_dotenv *env, const char *key)
{
    const char *v = mr_setting(NULL, key, env, NULL);
    return v && *v ? v : NULL;
}

/* The process environment wins; .env fills in what it lacks, as for every other setting. */
static bool pass_on(const mr_dotenv *env, const char *var)
{
    const char *v = mr_cli_setting(env, var);
    return !v || getenv(var) || setenv(var, v, 0) == 0;
}

mr_cli_model_env_status mr_cli_model_env(const mr_model_cfg *m, const mr_dotenv *env,
                                         const mr_llm_provider **provider, const char **key_var)
{
    const mr_llm_provider *p = mr_llm_provider_find(m->provider);
    *provider = p;
    *key_var = NULL;
    if (!p)
        return MR_CLI_MODEL_UNSUPPORTED;
    const char *var = m->api_key_env && *m->api_key_env ? m->api_key_env : p->key_env;
    *key_var = var;
    if ((p->base_url_env && !pass_on(env, p->base_url_env)) || (var && !pass_on(env, var)))
        return MR_CLI_MODEL_NOT_PASSED;
    return var && !mr_cli_setting(env, var) ? MR_CLI_MODEL_NO_KEY : MR_CLI_MODEL_READY;
}
