/* http.h -- HTTP for services: a server on libmicrohttpd, Prometheus metrics, health
 * endpoints, and a JSON client on libcurl. */
#ifndef MINDROOM_HTTP_H
#define MINDROOM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "mindroom/err.h"

/* ---- metrics ---------------------------------------------------------------------------- */

/* A registry of counters and histograms, each with any number of labelled series. All calls
 * are thread-safe. Labels are a NULL-terminated list of name, value pairs (or NULL). */
typedef struct mr_http_metrics mr_http_metrics;

mr_http_metrics *mr_http_metrics_new(void);
void mr_http_metrics_free(mr_http_metrics *m);

/* Declares a metric before use. Names follow Prometheus ([a-zA-Z_:][a-zA-Z0-9_:]*).
 * Declaring the same name again with the same type is a no-op; with another type, MR_EEXISTS.
 * Histogram buckets are upper bounds in ascending order; +Inf is implied. */
mr_code mr_http_metrics_counter(mr_http_metrics *m, const char *name, const char *help,
                                mr_err *err);
mr_code mr_http_metrics_histogram(mr_http_metrics *m, const char *name, const char *help,
                                  const double *buckets, size_t nbuckets, mr_err *err);

/* Adds `by` (>= 0) to a counter series. MR_ENOTFOUND for an undeclared name, MR_EINVAL for a
 * histogram, a negative amount or a bad label name. */
mr_code mr_http_metrics_inc(mr_http_metrics *m, const char *name, const char *const *labels,
                            double by);
/* Records one observation in a histogram series; errors as for mr_http_metrics_inc. */
mr_code mr_http_metrics_observe(mr_http_metrics *m, const char *name, const char *const *labels,
                                double value);

/* One series of a declared metric, made on first use and kept until the registry is freed
 * (NULL on the errors of mr_http_metrics_inc, or when histogram does not match the metric's
 * type). Recording into a series held this way takes no lock and allocates nothing: for the
 * paths that count every request. */
typedef struct mr_http_series mr_http_series;
mr_http_series *mr_http_metrics_series(mr_http_metrics *m, const char *name, const char *const *labels,
                                       bool histogram);
/* Adds v (>= 0) to a counter series, or records the observation v in a histogram series. */
void mr_http_series_add(mr_http_series *s, double v);

/* The Prometheus text exposition (format 0.0.4) of every metric, in declaration order and
 * each metric's series in first-use order. Caller frees; NULL when out of memory. */
char *mr_http_metrics_render(mr_http_metrics *m);

/* ---- server ----------------------------------------------------------------------------- */

typedef struct mr_http_server mr_http_server;
typedef struct mr_http_response mr_http_response;

typedef struct mr_http_param {
    char *name;
    char *value;
} mr_http_param;

/* One request as the handler sees it; valid only during the handler call. */
typedef struct mr_http_request {
    const char *method;     /* "GET", "POST", ... */
    const char *path;       /* as sent, still percent-encoded, without the query string */
    char **segments;        /* path split on '/', each percent-decoded; "/a/b%2Fc" -> a, b/c */
    size_t nsegments;       /* "/" has none; "/a/" has two: "a" and "" */
    mr_http_param *query;   /* decoded query parameters in order */
    size_t nquery;
    const char *body;       /* body_len bytes, NUL-terminated for convenience */
    size_t body_len;
    char client_ip[46];     /* "127.0.0.1", "::1" */
    int client_port;        /* the peer's port: one per connection, so requests on one share it */
    /* False on a pooled server's polling thread, which serves other connections between this
     * request's calls: a handler that would wait there (a store, an upstream, a lock held
     * across I/O) returns mr_http_reply_later() instead, and is called again for the same
     * request on a worker thread, where this is true. Always true with a thread per
     * connection. */
    bool may_block;
    void *impl;             /* the server's view of the connection */
} mr_http_request;

/* Header value by name, case-insensitive; NULL when absent. */
const char *mr_http_request_header(const mr_http_request *req, const char *name);
/* How many times a header was sent (case-insensitive name): a header that should come once,
 * such as an identity set by a trusted proxy, is ambiguous when it comes twice. */
size_t mr_http_request_header_count(const mr_http_request *req, const char *name);
/* Both in one pass over the headers: the first value of the header (NULL when absent) and, in
 * *count, how many times it came. */
const char *mr_http_request_header_n(const mr_http_request *req, const char *name, size_t *count);
/* First query parameter of that name (decoded); NULL when absent. */
const char *mr_http_request_query(const mr_http_request *req, const char *name);

/* A handler returns a response made by mr_http_reply*; the server sends and frees it. NULL
 * becomes a 500. Handlers run on the connection's own thread and may block, except on a
 * pooled server's polling thread (req->may_block false), where they answer what they can from
 * memory and hand the rest on with mr_http_reply_later. */
typedef mr_http_response *(*mr_http_handler)(void *ctx, const mr_http_request *req);

/* Makes the answer for an error the server detects itself (400 malformed header, 413, 500 for
 * a handler that returned NULL); message says what went wrong. */
typedef mr_http_response *(*mr_http_error_fn)(int status, const char *message);

typedef struct mr_http_server_opts {
    const char *listen;        /* "HOST:PORT"; "127.0.0.1:0", "[::1]:0", "0.0.0.0:8080" */
    size_t max_body;           /* larger bodies get 413 before the handler; 0 = 1 MiB */
    unsigned max_connections;  /* 0 = 256 */
    unsigned idle_timeout_s;   /* idle keep-alive connections are closed; 0 = 60 */
    /* Connections from one client address beyond this are closed at once, so one client
     * cannot take every slot; 0 = 64. Clients behind a reverse proxy, or agents on one host,
     * share one address: set it to max_connections (or 256) to lift the limit. */
    unsigned max_per_address;
    /* A new connection that falls silent this long before its first request's headers are
     * complete is closed (idle_timeout_s applies from then on); 0 = 10. */
    unsigned header_timeout_s;
    /* When set, every request is counted in http_requests_total{method,code} and timed in
     * http_request_duration_seconds{method}; the server declares both. */
    mr_http_metrics *metrics;
    /* The server's own error answers in the service's shape; NULL: the Matrix shape of
     * mr_http_reply_error. */
    mr_http_error_fn error_reply;
    /* 0: a thread per connection, for handlers that may block (long polls, upstream calls).
     * N: N polling threads, each serving its share of the connections with one poll(), which
     * is cheaper a request. A handler called there must not wait: what would (req->may_block)
     * goes to a worker thread while its connection is suspended (libmicrohttpd's
     * suspend/resume), so it stalls no other connection. A streamed body still runs on the
     * polling thread: streams belong on a thread-per-connection server. */
    unsigned pool_threads;
    /* With pool_threads: worker threads for the handlers that wait, started as needed; 0 = 16.
     * Requests beyond that many waiting at once queue for a free worker. */
    unsigned pool_workers;
} mr_http_server_opts;

/* Binds, then serves on background threads until mr_http_server_stop. */
mr_code mr_http_server_start(const mr_http_server_opts *opts, mr_http_handler handler,
                             void *ctx, mr_http_server **out, mr_err *err);
/* The bound port (the kernel's pick when the listen port was 0). */
int mr_http_server_port(const mr_http_server *srv);
/* "http://HOST:PORT" at which a server listening on listen ("HOST:PORT") and bound to port is
 * reached: a wildcard host (none, 0.0.0.0, [::]) becomes loopback. */
void mr_http_server_url(const char *listen, int port, char *out, size_t cap);
/* Stops accepting, waits for requests in flight to finish (a handler that blocks must be
 * woken by its owner first), and frees the server. NULL is a no-op. */
void mr_http_server_stop(mr_http_server *srv);

/* ---- responses -------------------------------------------------------------------------- */

/* Each returns NULL only when out of memory. */
mr_http_response *mr_http_reply(int status, const char *content_type, const void *body,
                                 size_t len);
/* Serializes and releases `body` (the caller's reference is taken, also on failure). */
mr_http_response *mr_http_reply_json(int status, json_t *body);
mr_http_response *mr_http_reply_text(int status, const char *text);
/* A flat JSON object of string fields, written as mr_http_reply_json would write it but without
 * a jansson tree: for answers made on every request. fields is a NULL-terminated list of name,
 * value pairs; a NULL value is written as null. NULL when a name or value is not UTF-8 or out
 * of memory. */
mr_http_response *mr_http_reply_json_strings(int status, const char *const *fields);
/* "Call me again where I may wait": for a handler on a polling thread (req->may_block false);
 * the server then calls it for the same request on a worker thread. Returned where waiting is
 * allowed already, it becomes a 500. Never NULL; nothing to free. */
mr_http_response *mr_http_reply_later(void);
/* Writes the next part of a streamed body into buf (at most cap bytes) and returns its length;
 * 0 ends the body, -1 cuts the connection. It runs on the connection's thread and may block
 * until it has something to send: each part goes out as soon as it is returned. */
typedef long (*mr_http_stream_fn)(void *ctx, char *buf, size_t cap);
/* A response whose body `next` produces while it is sent (chunked, for server-sent events).
 * `done` (may be NULL) releases ctx once the response is finished or abandoned; ctx is taken,
 * also when this returns NULL. */
mr_http_response *mr_http_reply_stream(int status, const char *content_type,
                                       mr_http_stream_fn next, void *ctx,
                                       void (*done)(void *ctx));
/* {"errcode": errcode, "error": "<formatted>"}, the Matrix error shape used by every service. */
mr_http_response *mr_http_reply_error(int status, const char *errcode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a response header; false when out of memory or r is NULL. */
bool mr_http_response_header(mr_http_response *r, const char *name, const char *value);
int mr_http_response_status(const mr_http_response *r);
void mr_http_response_free(mr_http_response *r);

/* ---- health and metrics endpoints ------------------------------------------------------- */

/* Readiness check: true when ready; otherwise writes a reason into why. */
typedef bool (*mr_http_ready_fn)(void *ctx, char *why, size_t cap);

/* Answers GET/HEAD /healthz (200 {"status":"ok"}), /readyz (200 {"status":"ready"} or 503
 * {"status":"not ready","reason":...}; always ready when ready is NULL) and /metrics (the
 * rendered registry, 404 when metrics is NULL). Returns NULL for any other request, so a
 * handler can call it first and fall through. On a polling thread (req->may_block false) a
 * /readyz with a ready check answers mr_http_reply_later: checks may ask a peer. */
mr_http_response *mr_http_ops_reply(const mr_http_request *req, mr_http_metrics *metrics,
                                    mr_http_ready_fn ready, void *ready_ctx);

/* ---- client ----------------------------------------------------------------------------- */

/* A client owns one libcurl easy handle, so consecutive requests reuse its kept-alive
 * connections. A client is not thread-safe: give each thread its own (they are cheap), or
 * serialise calls on a shared one. */
typedef struct mr_http_client mr_http_client;

typedef struct mr_http_client_opts {
    const char *base_url;       /* joined to relative request paths ("/x"); may be NULL */
    long connect_timeout_ms;    /* 0 = 10 s */
    long timeout_ms;            /* whole request, default for each call; 0 = 30 s */
    size_t max_response;        /* larger bodies fail the request; 0 = 16 MiB */
    const char *bearer_token;   /* sent as Authorization: Bearer on every request; may be NULL */
    const char *user_agent;     /* NULL: "mindroom/<version>" */
    const char *ca_file;        /* PEM bundle that verifies https peers instead of the system's
                                 * (a Kubernetes service account's ca.crt); may be NULL */
} mr_http_client_opts;

typedef struct mr_http_result {
    char method[16];            /* the request, for messages: "GET" */
    char *url;                  /* the full URL with any access_token redacted; owned */
    long status;                /* HTTP status of the final response */
    char *body;                 /* body_len bytes, NUL-terminated; owned */
    size_t body_len;
    mr_http_param *headers;     /* headers of the final response, names as sent */
    size_t nheaders;
    json_t *json;               /* the parsed body, for the JSON calls; owned */
    long new_connections;       /* connections opened for this request (0 when one was reused) */
} mr_http_result;

typedef struct mr_http_call {
    const char *method;         /* "GET", "POST", "PUT", "DELETE", "HEAD", ... */
    const char *url;            /* absolute, or a path joined to base_url */
    const void *body;           /* may be NULL */
    size_t body_len;
    const char *content_type;   /* for the body; NULL: none sent */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    long timeout_ms;            /* 0: the client's default */
    /* When set, the body of a 2xx response goes to on_data as it arrives instead of into
     * out->body (other statuses are collected as usual, so their errors can be read);
     * returning false aborts the transfer (MR_EIO, "aborted by the receiver"). */
    bool (*on_data)(void *ctx, const char *data, size_t len);
    void *data_ctx;
    /* Fails the request (MR_EUNAVAIL, "no data for N ms") when no byte moves for this long,
     * checked about once a second; 0: no limit. */
    long stall_timeout_ms;
    /* Polled about once a second while the request runs: returning true abandons it
     * (MR_EUNAVAIL, "cancelled by the caller"), so a stopping service need not sit out a long
     * poll. NULL: never. */
    bool (*cancelled)(void *ctx);
    void *cancel_ctx;
    /* Called once, on the thread running the request, when the whole body has gone out and the
     * answer is awaited (before any of it reaches on_data): what the caller would otherwise do
     * before the request runs while the server works. Requests with a body only; NULL: none. */
    void (*sent)(void *ctx);
    void *sent_ctx;
} mr_http_call;

mr_code mr_http_client_new(const mr_http_client_opts *opts, mr_http_client **out, mr_err *err);
void mr_http_client_free(mr_http_client *c);

/* Performs one request. Every HTTP status is MR_OK (read out->status); a transport failure is
 * MR_EUNAVAIL (refused, unreachable, timed out, cut off) or MR_EIO, with a message naming the
 * method, the URL (access_token redacted) and curl's error. out is cleared first and must be
 * released with mr_http_result_clear, also after a failure. */
mr_code mr_http_client_do(mr_http_client *c, const mr_http_call *call, mr_http_result *out,
                          mr_err *err);
/* As mr_http_client_do with an optional JSON body (not taken) and the response parsed into
 * out->json (NULL for an empty body). A non-empty body that is not JSON is MR_EINVAL, with
 * out->status and out->body still set. */
mr_code mr_http_client_json(mr_http_client *c, const char *method, const char *url,
                            json_t *body, mr_http_result *out, mr_err *err);

/* Many clients' requests on one thread: each client runs at most one request in a multi at a
 * time, and is not used otherwise until the multi hands it back. One thread calls the
 * functions of a multi; mr_http_multi_wakeup may be called from any thread. */
typedef struct mr_http_multi mr_http_multi;
/* A request of the multi ended: rc and err as mr_http_client_do would return them; the result
 * given to mr_http_multi_start is filled. */
typedef void (*mr_http_multi_done_fn)(void *ctx, void *tag, mr_code rc, const mr_err *err);

mr_code mr_http_multi_new(mr_http_multi **out, mr_err *err);
/* Every request must have ended or been cancelled. */
void mr_http_multi_free(mr_http_multi *mu);
/* Starts call on c inside mu; call's strings and out must stay valid until done reports tag
 * (non-NULL) or the request is cancelled. out is released by the caller as usual. */
mr_code mr_http_multi_start(mr_http_multi *mu, mr_http_client *c, const mr_http_call *call,
                            mr_http_result *out, void *tag, mr_err *err);
/* Abandons c's request in mu, if any: done is not called for it. */
void mr_http_multi_cancel(mr_http_multi *mu, mr_http_client *c);
/* Moves every request on, calls done for each that ended, then waits up to wait_ms for
 * network activity or a wakeup. */
mr_code mr_http_multi_step(mr_http_multi *mu, int wait_ms, mr_http_multi_done_fn done, void *ctx,
                           mr_err *err);
/* Ends the wait of mr_http_multi_step early (from any thread). */
void mr_http_multi_wakeup(mr_http_multi *mu);
/* Raises the soft limit of open files towards want, up to the hard limit (a process holding a
 * connection per account or per client needs more than the usual 1,024); *got is the limit
 * now. */
mr_code mr_http_fd_limit_raise(unsigned long want, unsigned long *got, mr_err *err);

/* Response header by name, case-insensitive; NULL when absent. */
const char *mr_http_result_header(const mr_http_result *r, const char *name);
/* Retry-After in milliseconds (delta-seconds or an HTTP date, never negative); -1 when absent
 * or unreadable. */
long long mr_http_result_retry_after_ms(const mr_http_result *r);
/* MR_OK for 2xx; otherwise an error whose code follows the status (400 MR_EINVAL, 401
 * MR_EAUTH, 403 MR_EPERM, 404 MR_ENOTFOUND, 409 MR_ECONFLICT, 429 and 5xx MR_EUNAVAIL, else
 * MR_EIO) and whose message names method, URL, status and any Matrix errcode and error. */
mr_code mr_http_result_check(const mr_http_result *r, mr_err *err);
void mr_http_result_clear(mr_http_result *r);

#endif
