/* http_internal.h -- what the files of libs/http share and nobody else sees. */
#ifndef MINDROOM_HTTP_INTERNAL_H
#define MINDROOM_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <time.h>

#include "mindroom/http.h"
#include "mindroom/str.h"

struct mr_http_response {
    int status;
    char *content_type;
    char *body;
    size_t len;
    /* Each header as its name and value, both NUL-terminated, one after the other: one buffer
     * for all, as forward auth adds five to every answer. */
    mr_strbuf headers;
    size_t nheaders;
    mr_http_stream_fn stream;      /* set for mr_http_reply_stream; body is then unused */
    void *stream_ctx;
    void (*stream_done)(void *ctx);
};

/* What the callbacks fill while a transfer runs. */
typedef struct http_transfer {
    mr_http_result *out;
    const mr_http_call *call;
    CURL *easy;
    mr_strbuf body;                  /* limited to the client's max_response */
    bool failed_alloc;
    bool aborted;                    /* on_data returned false */
    bool stalled;                    /* no byte moved for call->stall_timeout_ms */
    bool cancelled;                  /* call->cancelled said so */
    bool told_sent;                  /* call->sent was called */
    curl_off_t moved;                /* bytes up and down at the last progress call */
    struct timespec last_move;
} http_transfer;

struct mr_http_client {
    CURL *easy;
    char *base_url;
    char *auth_header;    /* "Authorization: Bearer ..." or NULL */
    char *user_agent;
    char *ca_file;        /* CURLOPT_CAINFO, or NULL for the system's */
    long connect_timeout_ms, timeout_ms;
    size_t max_response;
    char errbuf[CURL_ERROR_SIZE];
    /* mr_http_client_do ran on easy: libcurl keeps a connection and a wake-up socket pair for
     * it, which a request in a multi does not use (multi.c drops them). */
    bool own_used;
    /* The request running inside an mr_http_multi (multi.c), while `tag` is set. */
    struct http_multi_run {
        void *tag;
        mr_http_call call;
        http_transfer t;
        char *url;
        struct curl_slist *hdrs;
    } run;
};


/* Fills out's request fields and sets c's easy handle up for call (which, with out and t, must
 * outlive the transfer); *url and *hdrs are the caller's to free once the transfer is over. */
mr_code http_client_prepare(mr_http_client *c, const mr_http_call *call, mr_http_result *out,
                            http_transfer *t, char **url, struct curl_slist **hdrs, mr_err *err);
/* The outcome of c's transfer t, which ended with rc, as mr_http_client_do reports it. */
mr_code http_client_finish(mr_http_client *c, CURLcode rc, http_transfer *t, mr_err *err);

/* ---- workers (workers.c): where a pooled server runs the handlers that wait --------------- */

/* A job, linked through itself: the owner keeps it alive until run has been called. */
typedef struct http_job {
    struct http_job *next;
    void (*run)(struct http_job *j);
} http_job;

typedef struct http_workers http_workers;

/* Up to max threads (at least 1, started now); NULL when out of memory or no thread starts. */
http_workers *http_workers_new(unsigned max);
/* Queues j; a thread runs it as soon as one is free. Never fails. */
void http_workers_submit(http_workers *w, http_job *j);
/* Runs every queued job, then joins the threads. NULL is a no-op. */
void http_workers_free(http_workers *w);

/* What a handler on a polling thread returns to be called again on a worker
 * (mr_http_reply_later); never freed. */
extern mr_http_response http_later_reply;

#endif
