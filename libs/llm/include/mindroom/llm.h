/* llm.h -- model calls over the OpenAI chat-completions HTTP API (OpenAI, OpenRouter, Ollama,
 * llama.cpp server, vLLM and other compatible servers): prompts, streaming, tool calls,
 * structured output, timeouts and retries. */
#ifndef MINDROOM_LLM_H
#define MINDROOM_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "mindroom/config.h"
#include "mindroom/err.h"

/* ---- providers -------------------------------------------------------------------------- */

typedef struct mr_llm_provider {
    const char *name;       /* as in config.yaml: "openai" */
    const char *base_url;   /* default base URL, API version included: "https://api.openai.com/v1" */
    const char *base_url_env; /* variable that replaces base_url ("OPENAI_BASE_URL"); NULL: none */
    const char *key_env;    /* variable holding the API key; NULL when the server needs none */
} mr_llm_provider;

/* The provider that speaks the OpenAI API under that name; NULL for an unknown name and for
 * providers whose native API is not supported yet (anthropic, gemini, bedrock_claude, ...). */
const mr_llm_provider *mr_llm_provider_find(const char *name);

/* ---- prompts ---------------------------------------------------------------------------- */

typedef enum mr_llm_role {
    MR_LLM_SYSTEM = 0,
    MR_LLM_USER,
    MR_LLM_ASSISTANT,
    MR_LLM_TOOL,
} mr_llm_role;

typedef struct mr_llm_tool_call {
    char *id;               /* "call_..." as the server named it */
    char *name;             /* the function */
    char *arguments;        /* JSON text as the model wrote it: it may not parse */
} mr_llm_tool_call;

/* One turn of the conversation; every pointer is borrowed. */
typedef struct mr_llm_message {
    mr_llm_role role;
    const char *content;                /* NULL: an assistant turn that only calls tools */
    const mr_llm_tool_call *tool_calls; /* assistant turns: the calls the model made */
    size_t n_tool_calls;
    const char *tool_call_id;           /* tool turns: the call this result answers */
} mr_llm_message;

typedef struct mr_llm_tool {
    const char *name;
    const char *description;            /* may be NULL */
    json_t *parameters;                 /* JSON Schema of the arguments (borrowed); NULL: none */
} mr_llm_tool;

/* Called with each piece of answer text as it streams in (never empty). Returning false
 * cancels the call: mr_llm_chat then returns MR_OK with out->cancelled set. */
typedef bool (*mr_llm_delta_fn)(void *ctx, const char *text, size_t len);
/* Called while a stream runs, whether or not anything arrives: about once a second while it is
 * quiet, more often while data moves. It lets the caller act on a stalled stream (show text it
 * held back). Returning false cancels the call, as on_delta's false does. */
typedef bool (*mr_llm_tick_fn)(void *ctx);

/* One model call. The system message is made of role, instructions and context, in that order
 * (omitted when all three are empty); then come history and user. Everything is borrowed. */
typedef struct mr_llm_request {
    const char *role;                   /* the agent's role; NULL or "": none */
    const char *const *instructions;    /* one per line of the instructions block */
    size_t n_instructions;
    const char *context;                /* more system text (the router's candidates); may be NULL */
    const mr_llm_message *history;      /* earlier turns, oldest first */
    size_t n_history;
    const char *user;                   /* the message to answer; NULL when history ends the prompt */
    const mr_llm_tool *tools;
    size_t n_tools;
    const char *tool_choice;            /* with tools: "none", "auto" or "required"; NULL: not sent
                                         * (the server's default, "auto") */
    const char *schema_name;            /* with schema: the answer must be JSON matching it */
    json_t *schema;                     /* JSON Schema of the answer (borrowed); NULL: free text */
    const double *temperature;          /* NULL: the model config's, and none when that is unset */
    long max_tokens;                    /* 0: no limit sent */
    bool stream;                        /* ask for server-sent events */
    mr_llm_delta_fn on_delta;           /* stream only; may be NULL */
    mr_llm_tick_fn on_tick;             /* stream only; may be NULL */
    void *delta_ctx;                    /* for on_delta and on_tick */
    /* Called once the request of an attempt is out and the model works, before any of its
     * answer reaches on_delta (again for a retry): what the caller has to do before it shows an
     * answer can run meanwhile instead of in front of the call. May be NULL. */
    void (*on_sent)(void *ctx);
    void *sent_ctx;
} mr_llm_request;

/* ---- answers ---------------------------------------------------------------------------- */

typedef struct mr_llm_usage {
    long prompt_tokens, completion_tokens, total_tokens;
} mr_llm_usage;

typedef struct mr_llm_response {
    char *content;                      /* the whole answer text; "" when there is none */
    mr_llm_tool_call *tool_calls;       /* in the order of their index */
    size_t n_tool_calls;
    char *finish_reason;                /* "stop", "length", "tool_calls", ...; NULL if none came */
    char *id;                           /* "chatcmpl-..."; NULL if none came */
    char *model;                        /* the model the server says answered; NULL if none */
    bool has_usage;                     /* usage was reported */
    mr_llm_usage usage;
    json_t *json;                       /* content parsed, when the request had a schema */
    bool cancelled;                     /* on_delta asked to stop; content holds what came */
    int attempts;                       /* HTTP requests made */
} mr_llm_response;

void mr_llm_response_clear(mr_llm_response *r);

/* ---- the client ------------------------------------------------------------------------- */

/* A client for one configured model. It is not thread-safe: give each thread its own. */
typedef struct mr_llm_client mr_llm_client;

typedef struct mr_llm_opts {
    long timeout_ms;          /* the whole call, retries and waits included; 0 = 120 s */
    long stall_timeout_ms;    /* a stream fails when no byte arrives for this long; 0 = 30 s
                               * (an answer not streamed comes whole, so only timeout_ms
                               * bounds it) */
    long connect_timeout_ms;  /* 0 = 10 s */
    int max_attempts;         /* 0 = 4; 1 turns retries off */
    long backoff_ms;          /* wait before the second attempt, doubling after; 0 = 500 ms */
    long max_backoff_ms;      /* longest wait, Retry-After included; 0 = 20 s */
} mr_llm_opts;

/* Resolves the model's provider, base URL and key. The base URL is model->host when set, else
 * the provider's base_url_env variable (OPENAI_BASE_URL, ...) when set and not empty, else the
 * provider's default; a base URL without a path ("http://host:11434") gets "/v1". The key comes
 * from the variable model->api_key_env names, else the provider's (OPENAI_API_KEY, ...).
 * MR_EINVAL for a provider that is unknown or not supported yet, or a bad host or base URL
 * variable (the message names which); MR_EAUTH when
 * the key variable is unset or empty and the provider needs one. opts may be NULL. */
mr_code mr_llm_client_new(const mr_model_cfg *model, const mr_llm_opts *opts,
                          mr_llm_client **out, mr_err *err);
void mr_llm_client_free(mr_llm_client *c);
/* The chat-completions URL the client posts to. */
const char *mr_llm_client_url(const mr_llm_client *c);
/* The base URL it resolved ("https://api.openai.com/v1"), no trailing slash. */
const char *mr_llm_client_base_url(const mr_llm_client *c);

/* GET <base>/models with the key, once (no retries): *ids gets a new JSON array of the model
 * IDs the server lists. Errors as for mr_llm_chat, naming GET and the URL; a reply that is
 * not an OpenAI models list is MR_EINVAL. */
mr_code mr_llm_models(mr_llm_client *c, json_t **ids, mr_err *err);

/* The JSON body mr_llm_chat would post for req; caller releases it. */
mr_code mr_llm_request_body(const mr_llm_client *c, const mr_llm_request *req, json_t **out,
                            mr_err *err);

/* Runs one model call. Retries, with backoff, on connection failures, stalls, 408, 409, 429
 * (waiting as Retry-After says) and 5xx, never on other 4xx and never once answer text has
 * been handed to on_delta. Errors name the model, the URL, the HTTP status, and the server's
 * error code and message; the API key never appears in them (it is masked even when the
 * server echoes it). Codes: 400/422 MR_EINVAL, 401 MR_EAUTH, 403 MR_EPERM, 404 MR_ENOTFOUND,
 * retryable statuses, timeouts and transport failures MR_EUNAVAIL, an answer that is not a
 * chat completion (or not JSON when a schema was asked for) MR_EINVAL. out is cleared first
 * and must be released with mr_llm_response_clear, also after a failure (it then holds what
 * arrived). */
mr_code mr_llm_chat(mr_llm_client *c, const mr_llm_request *req, mr_llm_response *out,
                    mr_err *err);

#endif
