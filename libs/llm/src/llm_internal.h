/* llm_internal.h -- what the files of libs/llm share and nobody else sees. */
#ifndef MINDROOM_LLM_INTERNAL_H
#define MINDROOM_LLM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/http.h"
#include "mindroom/llm.h"
#include "mindroom/sse.h"
#include "mindroom/str.h"

struct mr_llm_client {
    mr_http_client *http;
    char *model_name;        /* the key under models: in config.yaml */
    char *model_id;          /* the provider's name for it */
    char *provider;
    char *base;              /* the base URL, "/v1" included, no trailing slash */
    char *url;               /* <base>/chat/completions */
    char *key;               /* NULL when the provider needs none */
    double temperature;      /* < 0: unset */
    bool openai;             /* speaks OpenAI's newest dialect (max_completion_tokens) */
    mr_llm_opts opts;        /* defaults filled in */
};

/* ---- assembling an answer ---- */

/* Collects a streamed answer chunk by chunk into out. */
typedef struct mr_llm_acc {
    mr_llm_response *out;
    size_t content_cap;
    int *call_index;         /* the "index" of each entry of out->tool_calls */
    mr_llm_delta_fn on_delta;
    void *delta_ctx;
    size_t delivered;        /* bytes of text handed to on_delta */
    bool done;               /* [DONE] came */
} mr_llm_acc;

/* One chat.completion.chunk: appends content (passing it to on_delta), merges tool-call
 * deltas by index (id and name from the first delta that has them, arguments appended),
 * and keeps finish_reason, usage, id and model. */
mr_code mr_llm_acc_chunk(mr_llm_acc *a, json_t *chunk, mr_err *err);
void mr_llm_acc_free(mr_llm_acc *a);

/* A whole (non-streamed) chat.completion into out. MR_EINVAL when it is not one. */
mr_code mr_llm_parse_completion(json_t *body, mr_llm_response *out, mr_err *err);

/* The OpenAI error object {"error": {"message", "type", "param", "code"}} of a body (or of a
 * streamed error event) as "message (code)", else "message (type)", with the key masked;
 * writes "" when body holds no error object. */
void mr_llm_error_text(json_t *body, const char *key, char *out, size_t cap);
/* Copies in to out with every occurrence of key replaced by "[redacted]", then passes it
 * through mr_log_redact. */
void mr_llm_scrub(const char *in, const char *key, char *out, size_t cap);

#endif
