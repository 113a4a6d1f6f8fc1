/* model_env.c -- a model's provider settings that may live in .env (its API key and base URL
 * variables) copied into the process environment, where the model client reads them, before
 * any thread starts: setenv is not safe beside threads that read the environment. */
#include "runtime_internal.h"

#include <stdlib.h>

/* The process environment wins; .env fills in what it lacks, as for every other setting. */
static bool pass_on(const mr_dotenv *env, const char *var)
{
    const char *v = mr_setting(NULL, var, env, NULL);
    return !v || !*v || getenv(var) || setenv(var, v, 0) == 0;
}

static bool is_set(const mr_dotenv *env, const char *var)
{
    const char *v = mr_setting(NULL, var, env, NULL);
    return v && *v;
}

mr_runtime_model_env_status mr_runtime_model_env(const mr_model_cfg *m, const mr_dotenv *env,
                                                 const mr_llm_provider **provider,
                                                 const char **key_var)
{
    const mr_llm_provider *p = mr_llm_provider_find(m->provider);
    *provider = p;
    *key_var = NULL;
    if (!p)
        return MR_RUNTIME_MODEL_UNSUPPORTED;
    const char *var = m->api_key_env && *m->api_key_env ? m->api_key_env : p->key_env;
    *key_var = var;
    if ((p->base_url_env && !pass_on(env, p->base_url_env)) || (var && !pass_on(env, var)))
        return MR_RUNTIME_MODEL_NOT_PASSED;
    return var && !is_set(env, var) ? MR_RUNTIME_MODEL_NO_KEY : MR_RUNTIME_MODEL_READY;
}

/* A missing key only warns: that model's agents answer with a short apology until it is set. */
void mr_runtime_export_model_settings(const mr_runtime *rt)
{
    mr_config *cfg = mr_runtime_config(rt, NULL);
    for (size_t i = 0; cfg && i < cfg->n_models; i++) {
        const mr_model_cfg *m = &cfg->models[i];
        const mr_llm_provider *p;
        const char *var;
        switch (mr_runtime_model_env(m, &rt->env, &p, &var)) {
        case MR_RUNTIME_MODEL_READY:
            break;
        case MR_RUNTIME_MODEL_UNSUPPORTED:
            mr_log_warn(rt->service, "model %s: provider %s is not supported yet; agents using it "
                        "will answer with an apology", m->name, m->provider);
            break;
        case MR_RUNTIME_MODEL_NO_KEY:
            mr_log_warn(rt->service, "model %s (provider %s): %s is not set in the environment or "
                        "%s; agents using it will answer with an apology until it is", m->name,
                        p->name, var, rt->settings.env_path);
            break;
        case MR_RUNTIME_MODEL_NOT_PASSED:
            mr_log_warn(rt->service, "model %s: could not pass its settings from %s on to the "
                        "model client", m->name, rt->settings.env_path);
            break;
        }
    }
    mr_config_release(cfg);
}
