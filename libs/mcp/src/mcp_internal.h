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

#define MCP_HTTP_IDLE_MAX 8          /* HTTP clients kept for reuse between requests */

/* A request awaiting its answer on the stdio pipe, where many are in flight at once. */
typedef struct mcp_pending {
    long long id;
    json_t *answer;                  /* set by whichever waiter reads it */
    struct mcp_pending *next;
} mcp_pending;

typedef struct mcp_transport_ops {
    /* Starts the child or opens the HTTP client. */
    mr_code (*start)(mr_mcp_client *c, mr_err *err);
    /* Sends one message. For a request (id >= 0) then waits for the answer to id, answering
     * the server's own requests on the way; *answer is that message. *timed_out tells a
     * deadline passed (the transport is still usable) from a transport that failed. Called
     * with mu held; both let it go while they wait, so other requests go out meanwhile. */
    mr_code (*exchange)(mr_mcp_client *c, const char *msg, long long id, long long deadline_ms,
                        json_t **answer, bool *timed_out, mr_err *err);
    void (*stop)(mr_mcp_client *c);
} mcp_transport_ops;

extern const mcp_transport_ops mr_mcp_stdio_ops;
extern const mcp_transport_ops mr_mcp_http_ops;

struct mr_mcp_client {
    pthread_mutex_t mu;              /* the state below; HTTP holds it for a whole request, stdio
                                        only while it writes or routes what it read */
    pthread_cond_t cv;               /* (CLOCK_MONOTONIC) an answer arrived, reading or starting ended */
    bool starting;                   /* one request is starting the server; others wait */
    unsigned long stops;             /* times the transport was stopped: a request that sees it
                                        move knows its server went away under it */
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
    atomic_ulong awaiting;           /* requests sent, their answers not yet in */
    long long next_id;
    char protocol[32];               /* the version the server agreed to */
    /* stdio */
    pid_t pid;
    int to_child, from_child;
    mr_strbuf inbuf;                 /* bytes read past the last full line (the reader's) */
    bool reading;                    /* one waiter reads the pipe for all, without mu */
    mcp_pending *pending;            /* requests awaiting answers */
    /* streamable HTTP: each request takes a client of its own and lets mu go while it waits,
     * so calls run side by side in one session */
    mr_http_client *http;            /* the session's: made at start, used for the DELETE at the end */
    mr_http_client *http_idle[MCP_HTTP_IDLE_MAX]; /* clients free for the next request */
    size_t n_idle;
    char *session_id;
};

/* Reads one message the server sent. When it is an answer, *answer takes it and *answer_id is
 * its request's ID (the caller drops answers nobody waits for any more). A
 * request from the server gets *reply (caller frees): an empty result for ping, "method not
 * found" for anything else, since this client offers no capabilities. A tools/list_changed
 * notification is counted (c->tools_changed); other notifications and answers to abandoned
 * Text that is not a JSON-RPC message is MR_EINVAL. */
mr_code mr_mcp_route(mr_mcp_client *c, const char *text, size_t len, json_t **answer, long long *answer_id,
                     char **reply, mr_err *err);

#endif
