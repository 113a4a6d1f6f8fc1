/* config_templates.c -- the config.yaml and .env that `mindroom config init` writes, and the
 * model provider presets they are built from. */
#include "config_templates.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mindroom/config.h"
#include "mindroom/llm.h"

/* One preset per --provider value. Model IDs and context windows are the providers' current
 * general-purpose models; a person changes them in config.yaml. */
static const mr_cli_provider providers[] = {
    {"openai", {NULL}, "OpenAI", "openai", "gpt-5.6", 1050000, NULL,
     "OPENAI_API_KEY", "your-openai-key-here", NULL, NULL},
    {"anthropic", {"claude", NULL}, "Anthropic", "anthropic", "claude-sonnet-4-5", 200000, NULL,
     "ANTHROPIC_API_KEY", "your-anthropic-key-here", NULL, NULL},
    {"openrouter", {NULL}, "OpenRouter", "openrouter", "anthropic/claude-sonnet-4.5", 200000, NULL,
     "OPENROUTER_API_KEY", "your-openrouter-key-here", NULL, NULL},
    {"azure", {"azure_openai", "azure-openai", NULL}, "Azure OpenAI", "azure", "gpt-5.6", 1050000,
     NULL, "AZURE_OPENAI_API_KEY", "your-azure-openai-key-here",
     "# The Azure OpenAI resource; models.default.id is your deployment's name.\n"
     "AZURE_OPENAI_ENDPOINT=https://your-resource.openai.azure.com\n",
     NULL},
    {"bedrock_claude", {NULL}, "Claude on AWS Bedrock", "bedrock_claude",
     "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 200000, NULL, NULL, NULL,
     "# AWS credentials allowed to call Bedrock in this region.\n"
     "AWS_ACCESS_KEY_ID=your-aws-access-key-id\n"
     "AWS_SECRET_ACCESS_KEY=your-aws-secret-access-key\n"
     "AWS_REGION=us-east-1\n",
     "Fill in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION"},
    {"vertexai_claude", {"vertexai", "vertex", "vertex-anthropic", "vertexai-anthropic", NULL},
     "Claude on Google Vertex AI", "vertexai_claude", "claude-sonnet-4-5@20250929", 200000, NULL,
     NULL, NULL,
     "# Google Cloud project and region with Claude enabled; credentials come from\n"
     "# `gcloud auth application-default login`.\n"
     "GOOGLE_CLOUD_PROJECT=your-gcp-project\n"
     "GOOGLE_CLOUD_LOCATION=us-east5\n",
     "Fill in GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION, then run "
     "`gcloud auth application-default login`"},
    {"codex", {NULL}, "OpenAI Codex", "codex", "gpt-5.6-codex", 400000, NULL, NULL, NULL,
     "# Codex signs in with your ChatGPT account through the Codex CLI (~/.codex/auth.json).\n",
     "Sign in once with the Codex CLI (`codex login`)"},
    {"kimi", {NULL}, "Kimi (Moonshot AI)", "kimi", "kimi-k2.5", 262144, NULL, "KIMI_API_KEY",
     "your-kimi-key-here", NULL, NULL},
    {"ollama", {NULL}, "Ollama", "ollama", "qwen3:8b", 40960, "http://localhost:11434", NULL, NULL,
     "# Ollama runs on this machine and needs no key; models.default.host points at it.\n",
     "Start Ollama and pull the model: `ollama pull qwen3:8b`"},
    {"llama.cpp", {"llama-cpp", "llama_cpp", NULL}, "llama.cpp", "llama_cpp", "local-model", 32768,
     "http://localhost:8080/v1", NULL, NULL,
     "# llama.cpp's server runs on this machine and needs no key; models.default.host points\n"
     "# at it.\n",
     "Start llama-server on port 8080 with the model you want"},
};

#define N_PROVIDERS (sizeof providers / sizeof providers[0])

const mr_cli_provider *mr_cli_provider_find(const char *name)
{
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        if (strcasecmp(providers[i].name, name) == 0)
            return &providers[i];
        for (const char *const *a = providers[i].aliases; *a; a++)
            if (strcasecmp(*a, name) == 0)
                return &providers[i];
    }
    return NULL;
}

const mr_cli_provider *mr_cli_provider_default(void)
{
    return &providers[0];
}

void mr_cli_providers_list(FILE *out, const char *wrap_indent)
{
    size_t column = wrap_indent ? strlen(wrap_indent) : 0;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        char item[128];
        int len = snprintf(item, sizeof item, "%s", providers[i].name);
        for (const char *const *a = providers[i].aliases; *a; a++)
            len += snprintf(item + len, sizeof item - (size_t)len, "%s%s",
                            a == providers[i].aliases ? " (" : "|", *a);
        if (providers[i].aliases[0])
            len += snprintf(item + len, sizeof item - (size_t)len, ")");
        bool last = i + 1 == N_PROVIDERS;
        if (wrap_indent && i > 0 && column + (size_t)len + 2 > 79) {
            fprintf(out, "\n%s", wrap_indent);
            column = strlen(wrap_indent);
        } else if (i > 0) {
            fputc(' ', out);
            column++;
        }
        fprintf(out, "%s%s", item, last ? "" : ",");
        column += (size_t)len + 1;
    }
}

/* A YAML double-quoted scalar, so any user ID reads back exactly. */
static void put_yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* "<indent>- <owner>": the quoted owner, or the placeholder `connect` replaces later. */
static void put_owner_item(FILE *f, const char *indent, const char *owner)
{
    fprintf(f, "%s- ", indent);
    if (owner)
        put_yaml_quoted(f, owner);
    else
        fputs(MR_CONFIG_OWNER_PLACEHOLDER, f);
    fputc('\n', f);
}

static const char *const mind_context_files[] = {
    "SOUL.md", "AGENTS.md", "USER.md", "IDENTITY.md", "TOOLS.md", "HEARTBEAT.md",
};

/* Only tools this build runs without further settings (file and shell wait for
 * MINDROOM_TOOL_FILE_AND_SHELL=1): a person reads the file to learn what the agent can do. */
static const char *const mind_tools[] = {
    "memory", "website", "scheduler", "todo", "matrix_message", "thread_summary",
};

static void put_list(FILE *f, const char *indent, const char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s- %s\n", indent, items[i]);
}

static void put_models(FILE *f, const mr_cli_provider *p)
{
    fprintf(f,
            "# Models the agents and the router use, by name. Provider keys live in .env.\n"
            "models:\n"
            "  default:\n"
            "    provider: %s\n"
            "    id: %s\n"
            "    context_window: %ld\n",
            p->provider, p->model_id, p->context_window);
    if (p->host)
        fprintf(f, "    host: %s\n", p->host);
    fputs("  # Other providers: add a model here and name it in an agent's `model:`.\n", f);
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        const mr_cli_provider *o = &providers[i];
        if (o == p)
            continue;
        fprintf(f, "  # %s: {provider: %s, id: %s%s%s}\n", o->provider, o->provider, o->model_id,
                o->host ? ", host: " : "", o->host ? o->host : "");
    }
}

static void put_agents(FILE *f)
{
    fputs("\n"
          "# Each agent is its own Matrix account. Mention it (@mind) or talk to it in its rooms.\n"
          "agents:\n"
          "  mind:\n"
          "    display_name: Mind\n"
          "    role: Your personal assistant, with memory, to-dos, schedules and the web\n"
          "    model: default\n"
          "    # Room keys: MindRoom creates and joins these rooms.\n"
          "    rooms: [personal]\n"
          "    memory_backend: file\n"
          "    # Files from the agent's workspace read into every conversation.\n"
          "    context_files:\n",
          f);
    put_list(f, "      ", mind_context_files, sizeof mind_context_files / sizeof *mind_context_files);
    fputs("    tools:\n", f);
    put_list(f, "      ", mind_tools, sizeof mind_tools / sizeof *mind_tools);
    /* Only what runs: skills are not in this build, so a written one would only warn. */
    fputs("    # skills: [mindroom-docs]    # the reference's; not in this build yet\n", f);
}

static void put_access(FILE *f, const mr_cli_matrix_target *t, const char *owner)
{
    fputs("\n"
          "# The router picks which agent answers when a message mentions none.\n"
          "router:\n"
          "  model: default\n"
          "  accept_invites: true\n",
          f);
    if (t->server == MR_CLI_MATRIX_SELF_HOSTED)
        fputs("\n"
              "# The account that creates rooms on your homeserver. Choose the username before the\n"
              "# first run: it cannot change afterwards (display_name can).\n"
              "mindroom_user:\n"
              "  username: mindroom_user\n"
              "  display_name: MindRoomUser\n",
              f);
    fputs("\n", f);
    if (!owner && t->server == MR_CLI_MATRIX_SELF_HOSTED)
        fprintf(f,
                "# The owner placeholder below stands for your Matrix ID: write yours in its three\n"
                "# places (e.g. \"@alice:%s\"), or run `mindroom config init --matrix-server\n"
                "# self-hosted --owner @alice:%s --force` again.\n",
                t->server_name, t->server_name);
    else if (!owner)
        fputs("# The owner placeholder below stands for your Matrix ID: `mindroom connect\n"
              "# --pair-code ABCD-EFGH` fills it in, or write yours (e.g. \"@alice:mindroom.chat\").\n",
              f);
    fputs("# single_user_private: the managed rooms are private to you; room_admins get full power.\n"
          "matrix_room_access:\n"
          "  mode: single_user_private\n"
          "  room_admins:\n",
          f);
    put_owner_item(f, "    ", owner);
    fputs("\n"
          "# A Matrix Space that groups the managed rooms in your client.\n"
          "matrix_space:\n"
          "  enabled: true\n"
          "  name: MindRoom\n"
          "\n"
          "# File memory needs no external embedder or database.\n"
          "memory:\n"
          "  backend: file\n"
          "\n"
          "# Who may talk to the agents. Only the users listed here get answers.\n"
          "authorization:\n"
          "  default_room_access: false\n"
          "  global_users:\n",
          f);
    put_owner_item(f, "    ", owner);
    fputs("  agent_reply_permissions:\n"
          "    \"*\":\n",
          f);
    put_owner_item(f, "      ", owner);
}

static void put_defaults(FILE *f)
{
    fputs("\n"
          "# Settings every agent gets unless it sets its own.\n"
          "defaults:\n"
          "  markdown: true\n"
          "  enable_streaming: true\n"
          "  tools:\n"
          "    - scheduler\n"
          "  worker_tools: []\n",
          f);
}

/* Runs a writer into a malloc'd string. */
static char *render(void (*write)(FILE *, const void *), const void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    write(f, arg);
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        free(buf);
        return NULL;
    }
    return buf;
}

typedef struct config_args {
    const mr_cli_provider *p;
    const mr_cli_matrix_target *t;
    const char *owner;
} config_args;

static void write_config(FILE *f, const void *arg)
{
    const config_args *a = arg;
    fprintf(f,
            "# MindRoom configuration, written by `mindroom config init` (%s, %s).\n"
            "# After editing, check it with: mindroom config validate\n"
            "\n",
            a->p->label, a->t->server == MR_CLI_MATRIX_HOSTED ? "Matrix at mindroom.chat" : "self-hosted Matrix");
    put_models(f, a->p);
    put_agents(f);
    put_access(f, a->t, a->owner);
    put_defaults(f);
}

char *mr_cli_template_config(const mr_cli_provider *p, const mr_cli_matrix_target *t,
                             const char *owner)
{
    config_args a = {p, t, owner};
    return render(write_config, &a);
}

typedef struct env_setting {
    const char *comment; /* lines written before it, or NULL */
    const char *key;     /* NULL: the comment alone */
    const char *value;
} env_setting;

#define ENV_SSL_VERIFY "# MATRIX_SSL_VERIFY=false\n"
#define ENV_SERVER_NAME_COMMENT "# Server name: the part after ':' in Matrix IDs.\n"
#define ENV_NAMESPACE_COMMENT                                                                  \
    "# Set by `mindroom connect`: keeps your agents' usernames and room aliases apart from\n" \
    "# other installs on the same homeserver.\n"

static const env_setting hosted_matrix[] = {
    {"# Matrix homeserver: the hosted one at mindroom.chat.\n", "MATRIX_HOMESERVER",
     "https://mindroom.chat"},
    {ENV_SSL_VERIFY, NULL, NULL},
    {ENV_SERVER_NAME_COMMENT, "MATRIX_SERVER_NAME", "mindroom.chat"},
    {"# Pairing and agent-account API that `mindroom connect` talks to.\n",
     "MINDROOM_PROVISIONING_URL", "https://mindroom.chat"},
    {ENV_NAMESPACE_COMMENT, "MINDROOM_NAMESPACE", ""},
    {"# Only for homeservers that gate registration with a token; stays empty with the\n"
     "# provisioning API.\n",
     "MATRIX_REGISTRATION_TOKEN", ""},
};

#define MATRIX_SETTINGS_MAX 8

/* The Matrix part of .env. Self-hosted: the homeserver chosen, no provisioning API (that is
 * mindroom.chat's), and the two ways an admin lets MindRoom register its agents' accounts,
 * commented out until the admin fills in one. */
static size_t matrix_settings(const mr_cli_matrix_target *t, env_setting out[MATRIX_SETTINGS_MAX])
{
    if (t->server == MR_CLI_MATRIX_HOSTED) {
        size_t n = sizeof hosted_matrix / sizeof *hosted_matrix;
        memcpy(out, hosted_matrix, sizeof hosted_matrix);
        return n;
    }
    const env_setting self_hosted[] = {
        {"# Matrix homeserver: your own.\n", "MATRIX_HOMESERVER", t->homeserver},
        {ENV_SSL_VERIFY, NULL, NULL},
        {ENV_SERVER_NAME_COMMENT, "MATRIX_SERVER_NAME", t->server_name},
        {ENV_NAMESPACE_COMMENT, "MINDROOM_NAMESPACE", ""},
        {"\n"
         "# How MindRoom registers its agents' accounts on your homeserver: uncomment and set ONE.\n"
         "# Synapse's shared-secret registration: registration_shared_secret in homeserver.yaml.\n"
         "# MATRIX_REGISTRATION_SHARED_SECRET=\n"
         "# Or a registration token, when registration requires one (Synapse:\n"
         "# registration_requires_token; an admin creates tokens with the admin API).\n"
         "# MATRIX_REGISTRATION_TOKEN=\n",
         NULL, NULL},
    };
    memcpy(out, self_hosted, sizeof self_hosted);
    return sizeof self_hosted / sizeof *self_hosted;
}

size_t mr_cli_template_matrix_defaults(const mr_cli_matrix_target *t, mr_dotenv_kv *out, size_t cap,
                                       const char **heading)
{
    env_setting s[MATRIX_SETTINGS_MAX];
    size_t n = matrix_settings(t, s), used = 0;
    for (size_t i = 0; i < n && used < cap; i++)
        if (s[i].key)
            out[used++] = (mr_dotenv_kv){s[i].key, s[i].value};
    *heading = t->server == MR_CLI_MATRIX_HOSTED ? "# Hosted Matrix defaults for mindroom.chat"
                                                 : "# Self-hosted Matrix settings";
    return used;
}

typedef struct env_args {
    const mr_cli_provider *p;
    const mr_cli_matrix_target *t;
    const char *storage_value; /* already formatted for .env */
    const char *api_key;
} env_args;

/* The selected provider's lines, then the other providers' keys commented out. Self-hosted
 * installs often reach models through a server of their own too: for them the variable that
 * moves the provider's base URL comes along, commented out. */
static void put_provider_env(FILE *f, const mr_cli_provider *p, mr_cli_matrix_server server)
{
    fprintf(f, "\n# Model provider for models.default in config.yaml: %s.\n", p->label);
    if (p->env_extra)
        fputs(p->env_extra, f);
    if (p->key_env)
        fprintf(f, "%s=%s\n", p->key_env, p->key_hint);
    const mr_llm_provider *lp = mr_llm_provider_find(p->provider);
    if (server == MR_CLI_MATRIX_SELF_HOSTED && lp && lp->base_url_env)
        fprintf(f,
                "# Another server speaking the same API (a proxy, vLLM, LiteLLM), for models\n"
                "# without `host:` in config.yaml:\n"
                "# %s=%s\n",
                lp->base_url_env, lp->base_url);
    fputs("# Keys of other providers, for models you add to config.yaml:\n", f);
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        const mr_cli_provider *o = &providers[i];
        if (o->key_env && o != p)
            fprintf(f, "# %s=%s\n", o->key_env, o->key_hint);
    }
}

static void write_env(FILE *f, const void *arg)
{
    const env_args *a = arg;
    fputs("# MindRoom settings for this install, written by `mindroom config init`.\n"
          "# Keep this file private (mode 0600): it holds keys. Settings resolve as command-line\n"
          "# flag, then process environment, then this file, then the default.\n"
          "\n",
          f);
    env_setting s[MATRIX_SETTINGS_MAX];
    size_t n = matrix_settings(a->t, s);
    for (size_t i = 0; i < n; i++) {
        if (s[i].comment)
            fputs(s[i].comment, f);
        if (s[i].key)
            fprintf(f, "%s=%s\n", s[i].key, s[i].value);
    }
    fprintf(f,
            "\n"
            "# Where MindRoom keeps its state: accounts, encryption keys, memory.\n"
            "MINDROOM_STORAGE_PATH=%s\n",
            a->storage_value);
    put_provider_env(f, a->p, a->t->server);
    fprintf(f,
            "\n"
            "# Dashboard API key, generated for this install: requests to /api/* must send\n"
            "# `Authorization: Bearer <key>`. Remove it to allow open access on localhost.\n"
            "MINDROOM_API_KEY=%s\n"
            "\n"
            "# OpenAI-compatible API authentication (separate from the dashboard key).\n"
            "# OPENAI_COMPAT_API_KEYS=sk-my-secret-key\n"
            "# OPENAI_COMPAT_ALLOW_UNAUTHENTICATED=true\n"
            "\n"
            "# Backend port (default 8765).\n"
            "# MINDROOM_PORT=8765\n",
            a->api_key);
}

char *mr_cli_template_env(const mr_cli_provider *p, const mr_cli_matrix_target *t,
                          const char *storage_path, const char *api_key)
{
    char *storage_value = mr_dotenv_format_value(storage_path);
    if (!storage_value)
        return NULL;
    env_args a = {p, t, storage_value, api_key};
    char *out = render(write_env, &a);
    free(storage_value);
    return out;
}
