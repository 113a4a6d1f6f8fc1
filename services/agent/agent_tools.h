/* agent_tools.h -- the tool loop of mindroom-agent: which tools an agent has and with which
 * limits (tool_setup.c), how calls show in the answer (tool_show.c), and the rounds of model
 * call, tool calls and results (tool_loop.c). */
#ifndef MINDROOM_AGENT_TOOLS_H
#define MINDROOM_AGENT_TOOLS_H

#include "mindroom/config.h"
#include "mindroom/llm.h"
#include "mindroom/runtime.h"
#include "mindroom/str.h"
#include "mindroom/tools.h"

#define TOOLS_PER_AGENT_MAX 64

/* ---- settings (tool_setup.c) ---- */

typedef struct tool_settings {
    long timeout_ms;             /* MINDROOM_TOOL_TIMEOUT_SECONDS [30], 1..3600 */
    size_t max_output;           /* MINDROOM_TOOL_OUTPUT_MAX_BYTES [16000], 256..1048576 */
    int max_rounds;              /* MINDROOM_TOOL_MAX_ROUNDS [10], 1..100 */
    long member_timeout_ms;      /* MINDROOM_TEAM_MEMBER_TIMEOUT_SECONDS [300], 1..3600: how long a team's
                                    member may take over its part, its model calls and tools included */
    bool file_and_shell;         /* MINDROOM_TOOL_FILE_AND_SHELL=1: file, shell and coding work in the agent's
                                    workspace; off by default */
    bool website_private_ok;     /* MINDROOM_TOOL_WEBSITE_ALLOW_PRIVATE=1 */
    const char *public_url;      /* MINDROOM_PUBLIC_URL, an http(s) URL, the base of oauth_api's
                                    connect links; NULL: unset (the links are paths) */
} tool_settings;

/* MR_EINVAL naming the setting and its range for a bad value. */
mr_code tool_settings_read(const mr_runtime *rt, tool_settings *out, mr_err *err);
/* The agent's workspace, as the reference keeps it: <storage>/agents/<name>/workspace (malloc'd). */
char *tool_workspace(const mr_runtime *rt, const char *agent);
/* Where the agent keeps its files for this requester (MEMORY.md, TODO.md, and what file and
 * shell work on): the workspace, or for an agent with private: the requester's own root,
 * <storage>/private_instances/<user|user_agent>-<digest>/<agent>/<root>, as the reference's
 * private instances. NULL when out of memory, or private without a requester. */
char *tool_memory_root(const mr_runtime *rt, const mr_agent_cfg *a, const char *agent, const char *requester);
/* The built-in tools the agent lists (its own, then defaults.tools), each once; names this
 * build does not implement, and file and shell while they are off, are left out (so the model is
 * never offered them; tool_config_warn names them). */
size_t tool_defs_for(const mr_config *cfg, const mr_agent_cfg *agent, const tool_settings *ts,
                     const mr_tool_def **out, size_t cap);
/* Logs a warning for each tool an agent or the defaults name that will not run: not in this
 * build, or file and shell while MINDROOM_TOOL_FILE_AND_SHELL is off. Names of mcp_servers
 * are servers, not tools of this build: never warned about. When anyone lists oauth_api, also
 * warns when config.yaml has no oauth_providers, and names each provider whose client secret
 * variable is set neither in dotenv nor in the environment. */
void tool_config_warn(const mr_config *cfg, const tool_settings *ts, const mr_dotenv *dotenv);

/* ---- MCP servers (tool_mcp.c) ---- */

/* A variable's value for "${NAME}" in mcp_servers; NULL when unset. */
typedef const char *(*mcp_lookup_fn)(void *ctx, const char *name);
typedef struct mcp_hub mcp_hub;

/* A client for each of cfg's mcp_servers, "${NAME}" in their args, env and headers replaced
 * by lookup(NAME); a stdio server without cwd runs in storage_path. No server starts here: each
 * starts on first use. MR_EINVAL names the server, field and variable of a value that cannot
 * be read. */
mr_code mcp_hub_new(const mr_config *cfg, const char *storage_path, mcp_lookup_fn lookup, void *lookup_ctx,
                    mcp_hub **out, mr_err *err);
void mcp_hub_free(mcp_hub *h);
/* Appends to out[n..cap) the tools of every MCP server names holds (an agent opts in by naming
 * the server in its tools:), each offered as "<server>__<tool>" with the server's description
 * and inputSchema; returns the new count. A server is listed on first use and again after it
 * restarted; one that cannot be listed adds its last listing, or nothing (logged). The defs
 * live as long as the hub. */
size_t mcp_hub_defs(mcp_hub *h, const mr_strlist *names, const mr_tool_def **out, size_t n, size_t cap);

/* ---- the workspace in the prompt (prompt_files.c) ---- */

/* "\n\n## Personality Context\n\n### <file>\n<text>..." for each of the agent's context_files
 * that can be read, then, with the file memory backend, "\n\n## Memory (...)\n" and the first
 * 200 lines of MEMORY.md; "" when there is nothing (malloc'd; NULL when out of memory). A file
 * that cannot be read is left out with a warning. */
char *prompt_files_context(const char *workspace, const char *memory_root, const mr_config *cfg,
                           const mr_agent_cfg *agent);

/* ---- display (tool_show.c): malloc'd, NULL when out of memory ---- */

/* "<tool>name(k=v, ...)</tool>" for a call in progress. */
char *tool_show_pending(const char *name, const char *arguments);
/* "<tool>name(k=v, ...)\n<result>" for a call done. */
char *tool_show_done(const char *name, const char *arguments, const char *result);

/* ---- the loop (tool_loop.c) ---- */

typedef struct tool_hooks {
    /* Answer text, and the "\n\n<pending>\n" of calls starting; false cancels. */
    bool (*on_text)(void *ctx, const char *text, size_t len);
    /* A call finished: its pending block becomes done. */
    void (*on_done)(void *ctx, const char *pending, const char *done);
    void *ctx;
    bool show;                   /* show_tool_calls: calls appear in the answer text */
    /* The "\n\n<pending>\n" of a call starting; NULL: on_text has it. */
    bool (*on_call)(void *ctx, const char *block, size_t len);
    /* Calls of local_def run through run_local on the loop's own thread instead of mr_tools_run
     * (a team's delegate_task: the member answers through the team's answer); it sets each
     * call's result and failed. NULL: none. */
    const mr_tool_def *local_def;
    mr_code (*run_local)(void *local_ctx, mr_tools_call *calls, size_t n, mr_err *err);
    void *local_ctx;
} tool_hooks;

/* Calls the model with the tools until it answers without calling any: each round's calls run
 * side by side (mr_tools_run) and their results go back as `tool` messages. After max_rounds
 * rounds of calls, the calls of one more round are answered with an error and the model is
 * asked once more with tool_choice "none". req->on_delta is replaced; text reaches on_text,
 * streamed or (req->stream false) whole per round. out holds the last model answer. */
mr_code tool_loop_chat(mr_llm_client *client, const mr_llm_request *req, const mr_tool_def *const *defs,
                       size_t n_defs, const mr_tools_env *env, int max_rounds, const tool_hooks *hooks,
                       mr_llm_response *out, mr_err *err);

#endif
