/* stub.h -- mr-model-stub: what its files share (state, scripts, answers, routes). */
#ifndef MINDROOM_MODEL_STUB_H
#define MINDROOM_MODEL_STUB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "mindroom/http.h"

/* One scripted behaviour, used by the next `times` chat-completion requests. */
typedef struct stub_script {
    int times;
    char *reply;              /* answer text; NULL: the default answer */
    json_t *tool_calls;       /* [{"id", "name", "arguments" (text)}], or NULL */
    json_t *error;            /* the scripted error fields (status, message, type, param,
                               * code, retry_after, retry_after_ms, after_chunks), or NULL */
    long stall_ms;            /* 0: no stall */
    unsigned long hold;       /* 0: no hold; else its ticket: the stall lasts until a release
                               * covers it (POST /_stub/release) or the stub stops */
    int stall_after_chunks;   /* streams: events sent before the stall */
    bool close_after_stall;   /* cut the connection when the stall ends */
    long chars_per_second;    /* streams: the answer text at this pace; 0: at once */
} stub_script;

typedef struct stub {
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* broadcast when stopping, so stalls end */
    bool stopping;
    const char *api_key;      /* NULL: no key checked */
    char **models;            /* served model IDs; none: every ID is served */
    size_t n_models;
    stub_script *queue;       /* first in, first out */
    size_t n_queue;
    json_t *requests;         /* what /_stub/requests reports */
    unsigned long seq;        /* numbers completion IDs */
    unsigned long holds;      /* hold tickets handed out (one per script with `hold`) */
    unsigned long released;   /* holds with a ticket up to this one are released */
    int held;                 /* streams waiting at a hold right now */
} stub;

/* ---- stub_state.c ---- */
void stub_init(stub *s);
void stub_free(stub *s);
void stub_stop(stub *s);
/* Sleeps ms, or less when the stub stops; false when it stopped. */
bool stub_sleep(stub *s, long ms);
/* The script's stall: its hold until released, else stall_ms; false when the stub stopped. */
bool stub_stall(stub *s, const stub_script *sc);
/* Streams waiting at a hold right now; with release, every hold queued so far (reached yet or
 * not) is released too. */
int stub_held(stub *s, bool release);
/* Appends scripts parsed from a JSON object or array; on a bad field writes why and fails. */
bool stub_script_add(stub *s, json_t *spec, char *why, size_t cap);
/* Takes the behaviour for the next request into *out (caller frees with stub_script_clear);
 * false when none is queued. */
bool stub_script_next(stub *s, stub_script *out);
void stub_script_clear(stub_script *sc);
void stub_reset(stub *s);
void stub_record(stub *s, json_t *entry);
json_t *stub_requests(stub *s);
unsigned long stub_next_id(stub *s);

/* ---- stub_errors.c: OpenAI's error objects ---- */
/* {"error": {"message", "type", "param", "code"}}; param and code may be NULL (JSON null). */
mr_http_response *stub_error(int status, const char *message, const char *type,
                             const char *param, const char *code);
/* The error OpenAI would send for that status (401 invalid_api_key, 404 model_not_found,
 * 429 rate_limit_exceeded, 500/503 server errors, ...), with the scripted fields on top. */
json_t *stub_default_error(int status, json_t *fields, const char *model);
/* "sk-a****wxyz": how OpenAI shows a wrong key back. */
void stub_mask_key(const char *key, char *out, size_t cap);

/* ---- stub_answer.c ---- */
/* The answer, streamed or not, as the script shapes it. A scripted error reaches here only
 * when it is to be sent inside a stream (error.after_chunks). */
mr_http_response *stub_answer(stub *s, json_t *body, const stub_script *sc);

/* ---- stub_chat.c ---- */
mr_http_response *stub_handle(void *ctx, const mr_http_request *req);

#endif
