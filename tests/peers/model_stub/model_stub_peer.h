/* model_stub_peer.h -- starting the model-provider stub (mr-model-stub) from tests, and
 * scripting it. */
#ifndef MINDROOM_TEST_MODEL_STUB_PEER_H
#define MINDROOM_TEST_MODEL_STUB_PEER_H

#include <sys/types.h>
#include <jansson.h>
#include "mindroom/err.h"

typedef struct mr_model_stub {
    pid_t pid;
    int port;
    char url[64];    /* "http://127.0.0.1:<port>": a model's host (the client adds /v1) */
    char dir[256];   /* temp dir holding model-stub.log */
    char log[300];
} mr_model_stub;

/* Starts the stub on a free loopback port and waits for its "listening on" line. api_key
 * (may be NULL) turns on the key check; models (NULL-terminated, may be NULL) restricts the
 * served model IDs. */
mr_code mr_model_stub_start(const char *api_key, const char *const *models, mr_model_stub *st,
                            mr_err *err);
/* Stops it with SIGTERM and removes its dir. Fails (naming the log, which is then kept) when
 * the stub did not exit cleanly, e.g. a sanitizer found a leak in it. */
mr_code mr_model_stub_stop(mr_model_stub *st, mr_err *err);

/* Queues behaviours for the next requests: POST /_stub/script with this JSON text (one
 * script object or an array of them; see README.md). */
mr_code mr_model_stub_script(const mr_model_stub *st, const char *json_text, mr_err *err);
/* The requests received so far (GET /_stub/requests): a JSON array the caller releases. */
mr_code mr_model_stub_requests(const mr_model_stub *st, json_t **out, mr_err *err);
/* The requests received so far in *requests and how many connections they came over (their
 * distinct client ports) in *connections. */
mr_code mr_model_stub_connections(const mr_model_stub *st, size_t *requests, size_t *connections, mr_err *err);
/* Forgets scripts and recorded requests. */
mr_code mr_model_stub_reset(const mr_model_stub *st, mr_err *err);
/* Lets every answer held at a `hold` so far go on (POST /_stub/release). */
mr_code mr_model_stub_release(const mr_model_stub *st, mr_err *err);

#endif
