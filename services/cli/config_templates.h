/* config_templates.h -- what `mindroom config init` writes: the config.yaml and .env templates,
 * the model provider presets and the Matrix defaults. */
#ifndef MINDROOM_CLI_CONFIG_TEMPLATES_H
#define MINDROOM_CLI_CONFIG_TEMPLATES_H

#include <stdio.h>
#include "mindroom/dotenv.h"

typedef enum mr_cli_matrix_server {
    MR_CLI_MATRIX_HOSTED = 0,  /* mindroom.chat with its provisioning API */
    MR_CLI_MATRIX_SELF_HOSTED, /* the user's own homeserver */
} mr_cli_matrix_server;

/* A self-hosted homeserver when none is named: one on this machine. */
#define MR_CLI_SELF_HOSTED_URL "http://localhost:8008"
#define MR_CLI_SELF_HOSTED_NAME "localhost"

/* The Matrix server the files are written for. */
typedef struct mr_cli_matrix_target {
    mr_cli_matrix_server server;
    const char *homeserver;  /* self-hosted: MATRIX_HOMESERVER (the hosted one is fixed) */
    const char *server_name; /* self-hosted: MATRIX_SERVER_NAME */
} mr_cli_matrix_target;

#define MR_CLI_PROVIDER_ALIASES_MAX 4

/* A `--provider` choice: the model `models.default` gets and what .env needs for it. */
typedef struct mr_cli_provider {
    const char *name;          /* as --provider takes it */
    const char *aliases[MR_CLI_PROVIDER_ALIASES_MAX + 1]; /* other accepted spellings, NULL-ended */
    const char *label;         /* for people: "OpenAI" */
    const char *provider;      /* models.default.provider, one of mr_config_providers */
    const char *model_id;
    long context_window;
    const char *host;          /* local servers only, else NULL */
    const char *key_env;       /* the API key variable, NULL when the provider takes none */
    const char *key_hint;      /* placeholder value written for key_env */
    const char *env_extra;     /* further .env lines the provider needs, or NULL */
    const char *setup;         /* next step when there is no key to set, else NULL */
} mr_cli_provider;

/* Looks up a --provider value (name or alias, case-insensitive); NULL when unknown. */
const mr_cli_provider *mr_cli_provider_find(const char *name);
/* The provider used when --provider is not given. */
const mr_cli_provider *mr_cli_provider_default(void);
/* Writes "openai, anthropic (claude), ..." listing every accepted value; with wrap_indent, lines
 * break before 80 columns and go on after wrap_indent. */
void mr_cli_providers_list(FILE *out, const char *wrap_indent);

/* The whole config.yaml. owner is a Matrix user ID to write in place of
 * MR_CONFIG_OWNER_PLACEHOLDER, or NULL. Returns a malloc'd string, NULL when out of memory. */
char *mr_cli_template_config(const mr_cli_provider *p, const mr_cli_matrix_target *t,
                             const char *owner);

/* The whole .env for a new install. storage_path is absolute; api_key is the generated
 * MINDROOM_API_KEY. Returns a malloc'd string, NULL when out of memory. */
char *mr_cli_template_env(const mr_cli_provider *p, const mr_cli_matrix_target *t,
                          const char *storage_path, const char *api_key);

/* The Matrix settings added to an existing .env when missing, and the comment heading them. */
size_t mr_cli_template_matrix_defaults(const mr_cli_matrix_target *t, mr_dotenv_kv *out, size_t cap,
                                       const char **heading);

#endif
