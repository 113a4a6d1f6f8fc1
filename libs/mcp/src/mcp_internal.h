/* mcp_internal.h -- what the files of libs/mcp share: the client, and the two transports
 * behind one set of operations. */
#ifndef MINDROOM_MCP_INTERNAL_H
#define MINDROOM_MCP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "mindroom/http.h"
#include "mindroom/mcp.h"

typedef struct mcp_transport_ops {
    /* Starts the child or opens the HTTP client. */
    mr_code (*start)(mr_mcp_client *c, mr_err *err);
    /* Sends one message. For a request (id >= 0) then reads until the answer to id, answering
     * the server's own requests on the way; *answer is that message. *timed_out tells a
     * deadline passed (the transport is still usable) from a transport that failed. */
    mr_code (*exchange)(mr_mcp_client *c, const char *msg, long long id, long long deadline_ms,
                        json_t **answer, bool *timed_out, mr_err *err);
    void (*stop)(mr_mcp_client *c);
} mcp_transport_ops;

extern const mcp_transport_ops mr_mcp_stdio_ops;
extern const mcp_transport_ops mr_mcp_http_ops;

struct mr_mcp_client {
    pthread_mutex_t mu;              /* one request at a time */
    char *name, *command, *cwd, *url;
    char **args, **env, **headers;   /* NULL-terminated copies */
    long timeout_ms;
    size_t max_message;
    long long first_backoff_ms, backoff_ms, next_start_ms;
    const mcp_transport_ops *ops;
    bool running;                    /* started and initialised */
    atomic_ulong starts;             /* times it became running; read without mu, so a caller
                                        asks while a long call holds the lock */
    atomic_ulong tools_changed;      /* notifications/tools/list_changed received (route.c) */
    long long next_id;
    char protocol[32];               /* the version the server agreed to */
    /* stdio */
    pid_t pid;
    int to_child, from_child;
    mr_strbuf inbuf;                 /* bytes read past the last full line */
    /* streamable HTTP */
    mr_http_client *http;
    char *session_id;
};

/* Reads one message the server sent. When it is the answer to want_id, *answer takes it. A
 * request from the server gets *reply (caller frees): an empty result for ping, "method not
 * found" for anything else, since this client offers no capabilities. A tools/list_changed
 * notification is counted (c->tools_changed); other notifications and answers to abandoned
 * requests are dropped. Text that is not a JSON-RPC message is MR_EINVAL. */
mr_code mr_mcp_route(mr_mcp_client *c, const char *text, size_t len, long long want_id, json_t **answer,
                     char **reply, mr_err *err);

#endif
