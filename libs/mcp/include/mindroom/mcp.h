/* mcp.h -- a Model Context Protocol client: the tools of an MCP server, listed and called over
 * stdio (a child process speaking newline-delimited JSON-RPC) or streamable HTTP (JSON-RPC
 * POSTed, answered as JSON or as an event stream). Protocol revision 2025-06-18. */
#ifndef MINDROOM_MCP_H
#define MINDROOM_MCP_H

#include <stddef.h>
#include <jansson.h>

#include "mindroom/err.h"
#include "mindroom/str.h"

#define MR_MCP_PROTOCOL_VERSION "2025-06-18"

typedef struct mr_mcp_server_opts {
    const char *name;                /* for messages: the key under mcp_servers */
    /* stdio: the program (looked up on PATH), its arguments (NULL-terminated, without argv[0])
     * and "NAME=value" additions to the environment it gets. The child inherits only HOME,
     * LOGNAME, PATH, SHELL, TERM and USER from this process, as the MCP SDKs' default
     * environment does, so the instance's secrets never reach a third-party server. */
    const char *command;
    const char *const *args;
    const char *const *env;
    const char *cwd;                 /* NULL: this process's */
    /* streamable HTTP: the endpoint, and "Name: value" headers sent with every request. */
    const char *url;
    const char *const *headers;
    long timeout_ms;                 /* per request; 0 = 30 s */
    size_t max_message;              /* longest JSON-RPC message read; 0 = 4 MiB */
    long restart_backoff_ms;         /* first wait before a restart after a failure; 0 = 500 ms,
                                        doubling to 30 s, back to the first after a good call */
} mr_mcp_server_opts;

typedef struct mr_mcp_client mr_mcp_client;

/* Checks opts (exactly one of command and url) and keeps a copy; the server is started and
 * initialised by the first call, so a server that is down at start-up costs nothing until
 * used. MR_EINVAL names the option at fault. */
mr_code mr_mcp_client_new(const mr_mcp_server_opts *opts, mr_mcp_client **out, mr_err *err);
/* Ends the session: stdio children get their stdin closed, then SIGTERM, then SIGKILL (the
 * specification's shutdown order); HTTP sessions get a DELETE. */
void mr_mcp_client_free(mr_mcp_client *c);

/* How many times the server was started and initialised (never waits on a call under way): a
 * change tells a caller that keeps the tool list that the server restarted and the list may
 * have changed. */
unsigned long mr_mcp_client_starts(mr_mcp_client *c);
/* Requests sent to the server whose answers are not in yet: many may be in flight at once (over
 * stdio each JSON-RPC ID answered in any order, over HTTP each POST on a connection of its own).
 * Never waits. */
unsigned long mr_mcp_client_awaiting(mr_mcp_client *c);
/* Changes whenever the server was started again or said notifications/tools/list_changed (seen
 * while reading its answers to calls and listings): a caller that keeps the tool list lists the
 * tools again when it differs from the value it listed at. Never waits either. */
unsigned long mr_mcp_client_tools_version(mr_mcp_client *c);

/* The server's tools, every page: a JSON array (caller owns) of {name, description?,
 * inputSchema, ...} as the server sent them. */
mr_code mr_mcp_tools_list(mr_mcp_client *c, json_t **tools, mr_err *err);

/* Calls one tool with arguments (an object, not taken; NULL: {}); calls from several threads
 * go to the server side by side, each with its own timeout (over HTTP in the one session, its
 * Mcp-Session-Id on every POST). *result (caller owns) is the
 * CallToolResult: {content: [...], isError?, structuredContent?}. A tool that failed is still
 * MR_OK with isError true: the model is told. A protocol error is MR_EINVAL with the server's
 * message; no answer within timeout_ms (0: the server's timeout) is MR_EUNAVAIL, and the
 * server is told the request is cancelled. A server that died is restarted, with backoff;
 * while it waits, calls fail at once with MR_EUNAVAIL saying when the next attempt is. */
mr_code mr_mcp_tool_call(mr_mcp_client *c, const char *tool, json_t *arguments, long timeout_ms,
                         json_t **result, mr_err *err);

/* A CallToolResult as text for the model: text items joined by newlines, other items named
 * ("[image image/png, 1024 bytes of base64]"), within out's limit. false when out is full or
 * out of memory (out->too_big or out->failed say which). */
bool mr_mcp_result_text(const json_t *result, mr_strbuf *out);

#endif
