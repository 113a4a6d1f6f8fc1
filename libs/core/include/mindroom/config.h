/* config.h -- `config.yaml` loaded into typed structs, validated with file:line:col errors.
 *
 * A loaded mr_config is immutable and reference counted: a reload builds a whole new one and
 * the caller swaps the pointer, so readers never see a half-updated config. */
#ifndef MINDROOM_CONFIG_H
#define MINDROOM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

/* Written by `config init` where the owner's Matrix ID goes until `connect` replaces it. It
 * loads with a warning and never matches a real user. */
#define MR_CONFIG_OWNER_PLACEHOLDER "__MINDROOM_OWNER_USER_ID_FROM_PAIRING__"
/* Largest config file accepted. */
#define MR_CONFIG_MAX_BYTES (4u * 1024u * 1024u)

typedef struct mr_strlist {
    char **v;
    size_t len;
} mr_strlist;

typedef struct mr_model_cfg {
    char *name;           /* key under models: */
    char *provider;       /* openai, openrouter, ollama, anthropic, ... (see mr_config_providers) */
    char *id;             /* the provider's model name */
    char *host;           /* base URL override, or NULL */
    char *api_key_env;    /* env variable holding the key, or NULL for the provider default */
    long context_window;  /* 0 when unset */
    double temperature;   /* < 0 when unset */
} mr_model_cfg;

typedef enum mr_thread_mode { MR_THREAD_MODE_THREAD = 0, MR_THREAD_MODE_ROOM } mr_thread_mode;

/* private: one agent definition, a separate state root per requester (the reference's private
 * instances): its file memory lives there. */
typedef enum mr_private_per { MR_PRIVATE_USER = 0, MR_PRIVATE_USER_AGENT } mr_private_per;
typedef struct mr_private_cfg {
    bool configured;      /* the agent has a private: block */
    mr_private_per per;   /* who gets a separate root: each requester, or each requester and agent */
    char *root;           /* the root's name, relative; "<agent>_data" by default */
    char *template_dir;   /* accepted, not implemented: a start-up warning */
    mr_strlist context_files; /* accepted, not implemented: a start-up warning */
} mr_private_cfg;

typedef struct mr_agent_cfg {
    char *name;
    char *display_name;   /* defaults to the name */
    char *role;           /* "" when unset */
    char *model;          /* defaults to "default"; must name a model */
    mr_strlist rooms;     /* managed room keys, full aliases or room IDs */
    mr_strlist tools;
    mr_strlist skills;
    mr_strlist instructions;
    mr_strlist context_files;
    mr_strlist knowledge_bases;
    char *memory_backend; /* NULL (use memory.backend), "mem0", "file", "none" */
    mr_thread_mode thread_mode;
    bool markdown;        /* defaults to defaults.markdown */
    bool show_tool_calls; /* tool calls shown in the answer; defaults to defaults.show_tool_calls */
    bool learning;
    int num_history_runs; /* 0 when unset */
    mr_private_cfg private_state; /* config key private: */
} mr_agent_cfg;

typedef enum mr_team_mode { MR_TEAM_COORDINATE = 0, MR_TEAM_COLLABORATE } mr_team_mode;

typedef struct mr_team_cfg {
    char *name;
    char *display_name;
    char *role;
    mr_strlist agents;    /* agent names, each must exist */
    mr_team_mode mode;
    char *model;          /* NULL: each agent's own */
    mr_strlist rooms;
    mr_strlist instructions;
} mr_team_cfg;

typedef struct mr_router_cfg {
    char *model;          /* defaults to "default" */
    bool accept_invites;  /* default true */
} mr_router_cfg;

typedef struct mr_room_cfg {
    char *key;            /* managed room key */
    char *display_name;   /* NULL: title-cased key */
    char *topic;
    bool encrypted;
} mr_room_cfg;

typedef struct mr_room_perm {
    char *room;           /* room ID, full alias or managed room key */
    mr_strlist users;
} mr_room_perm;

typedef struct mr_alias_map {
    char *canonical;      /* the user the aliases resolve to */
    mr_strlist aliases;   /* bridge-created IDs; each belongs to one canonical user only */
} mr_alias_map;

typedef struct mr_reply_policy {
    char *entity;         /* agent, team, "router" or "*" */
    mr_strlist users;     /* user IDs or globs; "*" allows anyone */
    mr_strlist joined_rooms; /* members of these managed rooms are allowed too */
} mr_reply_policy;

typedef struct mr_authz_cfg {
    mr_strlist global_users;
    mr_room_perm *room_permissions;
    size_t n_room_permissions;
    bool default_room_access;      /* default false */
    mr_alias_map *aliases;
    size_t n_aliases;
    mr_reply_policy *reply_permissions;
    size_t n_reply_permissions;
} mr_authz_cfg;

typedef struct mr_mindroom_user_cfg {
    bool configured;      /* the block was present */
    char *username;       /* default "mindroom_user" */
    char *display_name;   /* default "MindRoomUser" */
} mr_mindroom_user_cfg;

typedef enum mr_room_access_mode { MR_ROOM_ACCESS_SINGLE_USER_PRIVATE = 0, MR_ROOM_ACCESS_MULTI_USER } mr_room_access_mode;
typedef enum mr_join_rule { MR_JOIN_RULE_PUBLIC = 0, MR_JOIN_RULE_KNOCK } mr_join_rule;

typedef struct mr_room_access_cfg {
    mr_room_access_mode mode;
    mr_join_rule multi_user_join_rule;
    bool publish_to_room_directory;
    mr_strlist invite_only_rooms;  /* room keys, aliases or IDs */
    bool reconcile_existing_rooms;
    bool encrypt_managed_rooms;
    mr_strlist room_admins;        /* user IDs given power 100 in managed rooms */
} mr_room_access_cfg;

typedef struct mr_space_cfg {
    bool enabled;         /* default false */
    char *name;           /* default "MindRoom" */
} mr_space_cfg;

typedef struct mr_defaults_cfg {
    bool markdown;        /* default true */
    bool enable_streaming;/* default true */
    bool show_stop_button;
    bool show_tool_calls; /* default true */
    int num_history_runs; /* 0 when unset */
    mr_strlist tools;
    mr_strlist worker_tools;
} mr_defaults_cfg;

typedef struct mr_memory_cfg {
    char *backend;        /* "mem0", "file", "none"; default "file" */
} mr_memory_cfg;

/* An MCP server whose tools agents may use: a child speaking stdio (command) or a streamable
 * HTTP endpoint (url), never both. In args, env and headers a value written "${NAME}" is read
 * from the environment, then .env, when mindroom-agent starts (services/agent tool_mcp.c), so
 * secrets stay out of config.yaml. */
typedef struct mr_mcp_server_cfg {
    char *name;           /* key under mcp_servers: */
    char *command;        /* stdio: the program, looked up on PATH; or NULL */
    mr_strlist args;
    mr_strlist env;       /* "NAME=value" */
    char *cwd;            /* stdio: where it runs; NULL: the storage path */
    char *url;            /* streamable HTTP: the endpoint; or NULL */
    mr_strlist headers;   /* "Name: value" */
    long timeout_seconds; /* per request; 0 when unset (30) */
} mr_mcp_server_cfg;

/* An OAuth 2.0 provider whose API the oauth_api tool calls with each requester's own credential
 * (seed 004's connect flow). The client secret stays in .env: client_secret_env names its
 * variable, by default the MINDROOM_OAUTH_<NAME>_CLIENT_SECRET that mindroom-upstream-auth reads. */
typedef struct mr_oauth_provider_cfg {
    char *name;              /* key under oauth_providers:, [a-z0-9_]{1,64} */
    char *authorize_url;     /* https (http only to loopback) */
    char *token_url;         /* https (http only to loopback) */
    char *client_id;
    char *client_secret_env; /* never NULL once loaded */
    mr_strlist scopes;       /* scope tokens (RFC 6749 section 3.3) the connect link asks for */
    char *api_base_url;      /* oauth_api sends the bearer token to URLs under this one only */
} mr_oauth_provider_cfg;

typedef struct mr_config {
    char *path;           /* file it was loaded from, or the name given to mr_config_parse */
    mr_model_cfg *models;   size_t n_models;
    mr_agent_cfg *agents;   size_t n_agents;
    mr_team_cfg *teams;     size_t n_teams;
    mr_router_cfg router;
    mr_room_cfg *rooms;     size_t n_rooms;
    mr_authz_cfg authorization;
    mr_strlist bot_accounts;
    mr_mindroom_user_cfg mindroom_user;
    mr_room_access_cfg matrix_room_access;
    mr_space_cfg matrix_space;
    mr_defaults_cfg defaults;
    mr_memory_cfg memory;
    mr_mcp_server_cfg *mcp_servers; size_t n_mcp_servers;
    mr_oauth_provider_cfg *oauth_providers; size_t n_oauth_providers;
    char *timezone;       /* IANA name schedules keep wall times in; "UTC" by default */
    int scheduler_catch_up_grace_seconds; /* a missed occurrence older than this is skipped; 3600 */
    int refcount;         /* managed by mr_config_retain / mr_config_release */
} mr_config;

typedef enum mr_diag_severity { MR_DIAG_ERROR = 0, MR_DIAG_WARNING } mr_diag_severity;

/* One finding: `<file>:<line>:<col>: <path>: <message>`. line/col are 1-based and point at the
 * offending key or value. */
typedef struct mr_config_diag {
    mr_diag_severity severity;
    int line;
    int col;
    char *path;           /* field path, e.g. "agents.code.rooms" or "authorization.global_users[1]" */
    char *message;        /* e.g. "expected a list of room keys, got a mapping" */
} mr_config_diag;

typedef struct mr_config_diags {
    char *file;
    mr_config_diag *v;
    size_t len;
    size_t n_errors;
} mr_config_diags;

/* Loads and validates. Every problem found is added to diags (all of them, not just the
 * first). Returns MR_OK with *out set when there are no errors (warnings allowed); otherwise
 * MR_EINVAL with *out NULL and err summarising ("config.yaml: 3 errors"), or MR_EIO/
 * MR_ENOTFOUND when the file cannot be read. diags may be NULL. */
mr_code mr_config_load(const char *path, mr_config **out, mr_config_diags *diags, mr_err *err);
/* Same, from memory; name is used in messages in place of a path. */
mr_code mr_config_parse(const char *text, size_t len, const char *name, mr_config **out,
                        mr_config_diags *diags, mr_err *err);

mr_config *mr_config_retain(mr_config *cfg);
/* Drops one reference; frees on the last. NULL is fine. */
void mr_config_release(mr_config *cfg);

void mr_config_diags_free(mr_config_diags *diags);
/* "config.yaml:12:5: agents.code.rooms: expected a list of room keys, got a mapping"; warnings
 * get "warning: " before the path. Returns the length snprintf would write. */
int mr_config_diag_format(const mr_config_diags *diags, size_t i, char *buf, size_t cap);

/* Where to look: $MINDROOM_CONFIG_PATH, ./config.yaml, ~/.mindroom/config.yaml. Writes the
 * first that exists, else the first candidate that applies (for `config init`), into out. */
mr_code mr_config_find_path(char *out, size_t cap, bool must_exist, mr_err *err);

const mr_model_cfg *mr_config_model(const mr_config *cfg, const char *name);
const mr_agent_cfg *mr_config_agent(const mr_config *cfg, const char *name);
const mr_mcp_server_cfg *mr_config_mcp_server(const mr_config *cfg, const char *name);
/* Whether name is a tool of the reference MindRoom. tools: lists may name only these and the
 * keys of mcp_servers (any other name is an error with a did-you-mean); this build may not run
 * every one of them (mr_tools_find in libs/tools says which it does). */
bool mr_config_tool_known(const char *name);
const mr_team_cfg *mr_config_team(const mr_config *cfg, const char *name);
const mr_room_cfg *mr_config_room(const mr_config *cfg, const char *key);
const mr_oauth_provider_cfg *mr_config_oauth_provider(const mr_config *cfg, const char *name);

/* The model providers the loader accepts, NULL-terminated. */
extern const char *const mr_config_providers[];

#endif
