/* tools.h -- the agent's built-in tools (matrix_message, memory, todo, website, file, shell,
 * scheduler, oauth_api, thread_summary, coding): their names, JSON Schemas and implementations,
 * and a runner that calls several at once, each with a time limit and a bound on what it
 * returns. */
#ifndef MINDROOM_TOOLS_H
#define MINDROOM_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "mindroom/config.h"
#include "mindroom/dotenv.h"
#include "mindroom/err.h"
#include "mindroom/store.h"
#include "mindroom/str.h"

/* Sends one Matrix event as the agent, through its normal outbound path. room_id is the room of
 * the conversation; event_type "m.room.message" or "m.reaction"; content is borrowed. */
typedef mr_code (*mr_tools_send_fn)(void *ctx, const char *room_id, const char *event_type, json_t *content,
                                    mr_err *err);

/* Schedules for the agent in the conversation's room, for the scheduler tool: action "add"
 * (when: what !schedule reads, e.g. "in 5 minutes", "every weekday at 8:30", "30 8 * * 1-5"; task), "list", or "cancel" (id, or "all"). Writes what
 * the model is told to out; MR_EINVAL with a message that says how to write it. */
typedef mr_code (*mr_tools_schedule_fn)(void *ctx, const char *action, const char *when, const char *task,
                                        const char *id, mr_strbuf *out, mr_err *err);

/* The messages the agent keeps of one thread of room_id (root: its root event ID), oldest first,
 * for thread_summary: *messages is a new JSON array of {"event_id" (may be absent), "sender",
 * "body"}. MR_ENOTFOUND when the agent knows no such thread in that room. */
typedef mr_code (*mr_tools_thread_fn)(void *ctx, const char *room_id, const char *root, json_t **messages,
                                      mr_err *err);

/* What oauth_api needs to act for a requester at an OAuth provider (libs/oauth). */
typedef struct mr_tools_oauth {
    mr_store *store;             /* connect tokens and the sealed credentials */
    const mr_oauth_provider_cfg *providers; /* config.yaml oauth_providers */
    size_t n_providers;
    const mr_dotenv *dotenv;     /* .env, where client secrets may live beside the environment */
    const char *public_url;      /* MINDROOM_PUBLIC_URL, the base of connect links; NULL: the path */
} mr_tools_oauth;

/* Where and for whom a tool runs. Every string is borrowed for the length of the call. */
typedef struct mr_tools_env {
    const char *entity;          /* the agent that calls ("mind") */
    const char *requester;       /* the person whose message started the turn */
    const char *room_id;         /* the conversation's room */
    const char *thread_root;     /* its thread root event ID; NULL outside threads */
    const char *data_dir;        /* the agent's workspace, for its own files MEMORY.md and TODO.md;
                                    NULL: none */
    const char *workspace;       /* the same directory when file and shell may work in it; NULL:
                                    both are off */
    bool website_private_ok;     /* website may reach loopback and private addresses */
    long timeout_ms;             /* each call's time limit (0 = MR_TOOLS_TIMEOUT_MS) */
    size_t max_output;           /* bytes of a result the model sees (0 = MR_TOOLS_OUTPUT_MAX) */
    mr_tools_send_fn send;       /* matrix_message; NULL: that tool refuses */
    void *send_ctx;
    mr_tools_schedule_fn schedule; /* scheduler; NULL: that tool refuses */
    void *schedule_ctx;
    const mr_tools_oauth *oauth; /* oauth_api; NULL: that tool refuses */
    mr_tools_thread_fn thread;   /* thread_summary (with send); NULL: that tool refuses */
    void *thread_ctx;
} mr_tools_env;

#define MR_TOOLS_TIMEOUT_MS 30000L
#define MR_TOOLS_OUTPUT_MAX 16000

/* One tool. run writes its result (text for the model) to out, or fails with a message that
 * names the argument at fault; the model is shown either. args is the parsed arguments object.
 * deadline_ms is on the monotonic clock (mr_clock_mono_ms): a tool that waits on something
 * stops by then. */
typedef mr_code (*mr_tool_fn)(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out,
                              mr_err *err);

/* A tool bound to a context (an MCP server's tool, or one of the item lists of this library):
 * run_bound gets the def's ctx, which must outlive every call, abandoned ones included. */
typedef mr_code (*mr_tool_bound_fn)(void *ctx, const mr_tools_env *env, json_t *args, long long deadline_ms,
                                    mr_strbuf *out, mr_err *err);

typedef struct mr_tool_def {
    const char *name;
    const char *description;
    const char *parameters;      /* JSON Schema of the arguments, as JSON text */
    mr_tool_fn run;              /* a built-in tool; NULL for a bound one */
    mr_tool_bound_fn run_bound;  /* used when run is NULL */
    void *ctx;
} mr_tool_def;

/* The built-in tool of that name; NULL when this build has none (mr_config_tool_known says
 * whether MindRoom knows the name at all). */
const mr_tool_def *mr_tools_find(const char *name);

/* Reads rel (a path relative to the workspace directory) whole, up to max bytes, opening each
 * component with O_NOFOLLOW: MR_EPERM for "..", an absolute path or a symbolic link on the way,
 * MR_ENOTFOUND when absent, MR_EINVAL when it is not a regular file or is larger than max.
 * *text is NUL-terminated; *len excludes the NUL. */
mr_code mr_tools_workspace_read(const char *workspace, const char *rel, size_t max, char **text, size_t *len,
                                mr_err *err);

/* One call the model made and what came of it. */
typedef struct mr_tools_call {
    const mr_tool_def *def;      /* NULL: the model named a tool it was not given */
    const char *name;            /* as the model wrote it */
    const char *arguments;       /* JSON text as the model wrote it: it may not parse */
    char *result;                /* out: what the model is told (malloc'd, at most max_output
                                  * bytes plus a note that it was cut); never NULL after a run */
    bool failed;                 /* out: result is an error */
} mr_tools_call;

/* Runs the calls side by side, each on its own thread with env->timeout_ms, and waits for all.
 * A call that fails, times out, returns too much or names an unknown tool gets a result that
 * says so; the only failure is running out of memory or threads (then every result that could
 * not be made is an error text, when even that fits). A call still running at its deadline is
 * left to finish on its own and its result dropped. */
mr_code mr_tools_run(const mr_tools_env *env, mr_tools_call *calls, size_t n, mr_err *err);
void mr_tools_calls_clear(mr_tools_call *calls, size_t n);

#endif
