/* client.c -- the model client: provider, URL and key from the model's config; a call made of
 * attempts with retries, backoff, Retry-After, timeouts and errors that name what failed. */
#include "llm_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"
#include "mindroom/clock.h"
#include "mindroom/json.h"

#define DEFAULT_TIMEOUT_MS 120000L
#define DEFAULT_STALL_MS 30000L
#define DEFAULT_CONNECT_MS 10000L
#define DEFAULT_ATTEMPTS 4
#define DEFAULT_BACKOFF_MS 500L
#define DEFAULT_MAX_BACKOFF_MS 20000L
/* The longest single event (one chunk of JSON) a stream may carry. */
#define MAX_EVENT_BYTES (4u * 1024 * 1024)

/* ---- setting up ---- */

static bool provider_known(const char *name)
{
    for (size_t i = 0; mr_config_providers[i]; i++)
        if (strcmp(mr_config_providers[i], name) == 0)
            return true;
    return false;
}

/* The base URL and where it came from: config `host:`, the provider's variable, or its default. */
static const char *pick_base(const mr_model_cfg *m, const mr_llm_provider *p, const char **from)
{
    if (m->host && *m->host) {
        *from = "host";
        return m->host;
    }
    const char *env = p->base_url_env ? getenv(p->base_url_env) : NULL;
    if (env && *env) {
        *from = p->base_url_env;
        return env;
    }
    *from = "default base URL";
    return p->base_url;
}

/* The base URL without trailing slashes, where one without a path gets the usual "/v1"; and
 * "<base>/chat/completions". */
static mr_code endpoint(const mr_model_cfg *m, const mr_llm_provider *p, mr_llm_client *c,
                        mr_err *err)
{
    const char *from;
    const char *base = pick_base(m, p, &from);
    const char *rest = strncmp(base, "http://", 7) == 0    ? base + 7
                       : strncmp(base, "https://", 8) == 0 ? base + 8
                                                           : NULL;
    if (!rest || !*rest)
        return mr_err_set(err, MR_EINVAL, "model %s: %s \"%s\" must be an http:// or "
                          "https:// URL", m->name, from, base);
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    const char *path = strchr(rest, '/');
    bool bare = !path || path >= base + n;
    size_t cap = n + 32;
    c->base = malloc(cap);
    c->url = malloc(cap);
    if (!c->base || !c->url)
        return mr_err_set(err, MR_ENOMEM, "model %s: out of memory", m->name);
    snprintf(c->base, cap, "%.*s%s", (int)n, base, bare ? "/v1" : "");
    snprintf(c->url, cap, "%s/chat/completions", c->base);
    return MR_OK;
}

static mr_code find_key(const mr_model_cfg *m, const mr_llm_provider *p, char **out,
                        mr_err *err)
{
    *out = NULL;
    bool chosen = m->api_key_env && *m->api_key_env;
    const char *var = chosen ? m->api_key_env : p->key_env;
    if (!var)
        return MR_OK;
    const char *v = getenv(var);
    if (!v || !*v) {
        if (!chosen && !p->key_env)
            return MR_OK;
        return mr_err_set(err, MR_EAUTH, "model %s (provider %s): the API key variable %s is "
                          "not set", m->name, p->name, var);
    }
    *out = strdup(v);
    return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "model %s: out of memory", m->name);
}

static long or_default(long v, long dflt)
{
    return v > 0 ? v : dflt;
}

mr_code mr_llm_client_new(const mr_model_cfg *model, const mr_llm_opts *opts,
                          mr_llm_client **out, mr_err *err)
{
    static const mr_llm_opts none = {0};
    opts = opts ? opts : &none;
    *out = NULL;
    const char *name = model->name ? model->name : "?";
    const char *prov = model->provider ? model->provider : "";
    const mr_llm_provider *p = mr_llm_provider_find(prov);
    if (!p && provider_known(prov))
        return mr_err_set(err, MR_EINVAL, "model %s: provider %s is not supported yet (only "
                          "OpenAI-compatible providers are: openai, openrouter, ollama, "
                          "llama_cpp, vllm, deepseek, groq, cerebras)", name, prov);
    if (!p)
        return mr_err_set(err, MR_EINVAL, "model %s: unknown provider \"%s\"", name, prov);
    if (!model->id || !*model->id)
        return mr_err_set(err, MR_EINVAL, "model %s: id (the provider's model name) is empty",
                          name);
    mr_llm_client *c = calloc(1, sizeof *c);
    if (!c)
        return mr_err_set(err, MR_ENOMEM, "model %s: out of memory", name);
    c->model_name = strdup(name);
    c->model_id = strdup(model->id);
    c->provider = strdup(p->name);
    c->temperature = model->temperature;
    c->openai = strcmp(p->name, "openai") == 0;
    c->opts = (mr_llm_opts){
        .timeout_ms = or_default(opts->timeout_ms, DEFAULT_TIMEOUT_MS),
        .stall_timeout_ms = or_default(opts->stall_timeout_ms, DEFAULT_STALL_MS),
        .connect_timeout_ms = or_default(opts->connect_timeout_ms, DEFAULT_CONNECT_MS),
        .max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_ATTEMPTS,
        .backoff_ms = or_default(opts->backoff_ms, DEFAULT_BACKOFF_MS),
        .max_backoff_ms = or_default(opts->max_backoff_ms, DEFAULT_MAX_BACKOFF_MS),
    };
    mr_code rc = MR_OK;
    if (!c->model_name || !c->model_id || !c->provider)
        rc = mr_err_set(err, MR_ENOMEM, "model %s: out of memory", name);
    if (rc == MR_OK)
        rc = endpoint(model, p, c, err);
    if (rc == MR_OK)
        rc = find_key(model, p, &c->key, err);
    if (rc == MR_OK) {
        mr_http_client_opts ho = {.connect_timeout_ms = c->opts.connect_timeout_ms,
                                  .timeout_ms = c->opts.timeout_ms, .bearer_token = c->key};
        rc = mr_http_client_new(&ho, &c->http, err);
    }
    if (rc != MR_OK) {
        mr_llm_client_free(c);
        return rc;
    }
    *out = c;
    return MR_OK;
}

void mr_llm_client_free(mr_llm_client *c)
{
    if (!c)
        return;
    mr_http_client_free(c->http);
    if (c->key) {
        /* The key should not linger in freed memory. */
        memset(c->key, 0, strlen(c->key));
        free(c->key);
    }
    free(c->model_name);
    free(c->model_id);
    free(c->provider);
    free(c->url);
    free(c->base);
    free(c);
}

const char *mr_llm_client_url(const mr_llm_client *c)
{
    return c->url;
}

const char *mr_llm_client_base_url(const mr_llm_client *c)
{
    return c->base;
}

/* ---- errors ---- */

/* Sets "model <name>: [POST <url>: ]<detail>" with the key masked wherever it appears. */
static mr_code model_error(const mr_llm_client *c, mr_code code, bool with_url, mr_err *err,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static mr_code model_error(const mr_llm_client *c, mr_code code, bool with_url, mr_err *err,
                           const char *fmt, ...)
{
    char raw[MR_ERR_MSG_MAX], clean[MR_ERR_MSG_MAX];
    int n = with_url ? snprintf(raw, sizeof raw, "model %s: POST %s: ", c->model_name, c->url)
                     : snprintf(raw, sizeof raw, "model %s: ", c->model_name);
    if (n > 0 && (size_t)n < sizeof raw) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw + n, sizeof raw - (size_t)n, fmt, ap);
        va_end(ap);
    }
    mr_llm_scrub(raw, c->key, clean, sizeof clean);
    return mr_err_set(err, code, "%s", clean);
}

static mr_code status_code(long status)
{
    switch (status) {
    case 400:
    case 422:
        return MR_EINVAL;
    case 401:
        return MR_EAUTH;
    case 403:
        return MR_EPERM;
    case 404:
        return MR_ENOTFOUND;
    case 409:
        return MR_ECONFLICT;
    default:
        return status == 408 || status == 429 || status >= 500 ? MR_EUNAVAIL : MR_EIO;
    }
}

/* The wait the server asked for: OpenAI's retry-after-ms, else Retry-After; -1 when none. */
static long long asked_wait_ms(const mr_http_result *res)
{
    const char *ms = mr_http_result_header(res, "retry-after-ms");
    if (ms && *ms) {
        char *end;
        long long v = strtoll(ms, &end, 10);
        if (*end == '\0' && v >= 0)
            return v;
    }
    return mr_http_result_retry_after_ms(res);
}

/* One state of a call between attempts: what the last one asks of the next. */
typedef struct attempt {
    mr_llm_client *c;
    const mr_llm_request *req;
    mr_llm_response *out;
    mr_sse sse;
    mr_llm_acc acc;
    mr_code failed;          /* an error found while reading the stream */
    mr_err ferr;
    bool retryable;
    bool transport;          /* it failed below HTTP: refused, reset, stalled, timed out */
    long long wait_ms;       /* the server's Retry-After; -1: none */
} attempt;

/* What an error response says: OpenAI's error object, else the start of whatever came, on one
 * line. */
static void reply_error_text(const mr_llm_client *c, const mr_http_result *res, char *text,
                             size_t cap)
{
    json_t *j = json_loadb(res->body ? res->body : "", res->body_len, 0, NULL);
    mr_llm_error_text(j, c->key, text, cap);
    json_decref(j);
    if (!text[0] && res->body_len) {
        snprintf(text, cap < 200 ? cap : 200, "%s", res->body);
        for (char *p = text; *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
    }
}

static mr_code status_error(attempt *a, const mr_http_result *res, mr_err *err)
{
    char text[MR_ERR_MSG_MAX];
    reply_error_text(a->c, res, text, sizeof text);
    a->retryable = status_code(res->status) == MR_EUNAVAIL || res->status == 409;
    a->wait_ms = asked_wait_ms(res);
    return model_error(a->c, status_code(res->status), true, err, "HTTP %ld%s%s", res->status,
                       text[0] ? ": " : "", text);
}

/* ---- streaming ---- */

static mr_code on_event(void *ctx, const char *event, const char *data, size_t len, mr_err *err)
{
    (void)event;
    attempt *a = ctx;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        a->acc.done = true;
        return MR_OK;
    }
    json_error_t je;
    json_t *j = json_loadb(data, len, 0, &je);
    if (!j)
        return mr_err_set(err, MR_EINVAL, "a stream event is not JSON (%s)", je.text);
    mr_code rc;
    if (json_object_get(j, "error")) {
        /* Servers report failures that happen mid-answer as an event of their own. */
        char text[MR_ERR_MSG_MAX];
        mr_llm_error_text(j, a->c->key, text, sizeof text);
        a->retryable = true;
        rc = mr_err_set(err, MR_EUNAVAIL, "the stream reported an error: %s", text);
    } else {
        rc = mr_llm_acc_chunk(&a->acc, j, err);
    }
    json_decref(j);
    return rc;
}

static bool on_data(void *ctx, const char *data, size_t len)
{
    attempt *a = ctx;
    a->failed = mr_sse_feed(&a->sse, data, len, &a->ferr);
    return a->failed == MR_OK && !a->out->cancelled;
}

/* The HTTP client polls its cancel hook about once a second even while nothing arrives, which
 * is the tick the caller asked for. */
static bool on_tick(void *ctx)
{
    attempt *a = ctx;
    if (!a->out->cancelled && !a->req->on_tick(a->req->delta_ctx))
        a->out->cancelled = true;
    return a->out->cancelled;
}

/* ---- one attempt ---- */

static mr_code attempt_run(attempt *a, const mr_llm_request *req, const char *body,
                           long timeout_ms, mr_err *err)
{
    mr_llm_client *c = a->c;
    static const char *const accept_sse[] = {"Accept: text/event-stream", NULL};
    static const char *const accept_json[] = {"Accept: application/json", NULL};
    mr_http_call call = {.method = "POST", .url = c->url, .body = body, .body_len = strlen(body),
                         .content_type = "application/json",
                         .headers = req->stream ? accept_sse : accept_json,
                         .timeout_ms = timeout_ms, .sent = req->on_sent, .sent_ctx = req->sent_ctx};
    if (req->stream) {
        mr_sse_init(&a->sse, MAX_EVENT_BYTES, on_event, a);
        a->acc = (mr_llm_acc){.out = a->out, .on_delta = req->on_delta, .delta_ctx = req->delta_ctx};
        call.on_data = on_data;
        call.data_ctx = a;
        call.stall_timeout_ms = c->opts.stall_timeout_ms;
        if (req->on_tick) {
            call.cancelled = on_tick;
            call.cancel_ctx = a;
        }
    }
    mr_http_result res;
    mr_code rc = mr_http_client_do(c->http, &call, &res, err);
    if (a->failed != MR_OK) {
        rc = model_error(c, a->failed, true, err, "%s", a->ferr.msg);
    } else if (rc != MR_OK && a->out->cancelled) {
        rc = MR_OK;
    } else if (rc != MR_OK) {
        /* Transport failures (refused, reset, stalled, timed out) are worth another try. */
        a->transport = true;
        a->retryable = rc == MR_EUNAVAIL;
        char msg[MR_ERR_MSG_MAX];
        memcpy(msg, err->msg, sizeof msg);
        /* The HTTP client's message already names the method and URL. */
        rc = model_error(c, rc, false, err, "%s", msg);
    } else if (res.status < 200 || res.status >= 300) {
        rc = status_error(a, &res, err);
    } else if (req->stream) {
        if (!a->acc.done && !a->out->finish_reason && !a->out->cancelled) {
            a->retryable = true;
            rc = model_error(c, MR_EUNAVAIL, true, err, "the stream ended before [DONE]");
        }
    } else {
        json_error_t je;
        json_t *j = json_loadb(res.body, res.body_len, 0, &je);
        mr_err perr = {0};
        if (!j || mr_llm_parse_completion(j, a->out, &perr) != MR_OK) {
            rc = model_error(c, j ? perr.code : MR_EINVAL, true, err, "HTTP %ld: %s", res.status,
                             j ? perr.msg : "the answer is not JSON");
        }
        json_decref(j);
    }
    mr_http_result_clear(&res);
    if (req->stream) {
        mr_sse_free(&a->sse);
        mr_llm_acc_free(&a->acc);
    }
    return rc;
}

/* The answer as JSON, when the request asked for a schema. */
static mr_code parse_structured(const mr_llm_client *c, const mr_llm_request *req,
                                mr_llm_response *out, mr_err *err)
{
    if (!req->schema || out->cancelled)
        return MR_OK;
    json_error_t je;
    out->json = json_loads(out->content ? out->content : "", JSON_DECODE_ANY, &je);
    if (out->json)
        return MR_OK;
    return model_error(c, MR_EINVAL, true, err, "the answer is not JSON for schema %s (%s)",
                       req->schema_name ? req->schema_name : "answer", je.text);
}

mr_code mr_llm_chat(mr_llm_client *c, const mr_llm_request *req, mr_llm_response *out,
                    mr_err *err_out)
{
    /* The message of one attempt feeds the log line and the next, so keep one always. */
    mr_err local = {0};
    mr_err *err = err_out ? err_out : &local;
    memset(out, 0, sizeof *out);
    json_t *jbody;
    mr_code rc = mr_llm_request_body(c, req, &jbody, err);
    if (rc != MR_OK)
        return rc;
    char *body = json_dumps(jbody, JSON_COMPACT);
    json_decref(jbody);
    if (!body)
        return mr_err_set(err, MR_ENOMEM, "model %s: out of memory", c->model_name);
    long long deadline = mr_clock_mono_ms() + c->opts.timeout_ms;
    long long backoff = c->opts.backoff_ms;
    for (int n = 1;; n++) {
        attempt a = {.c = c, .req = req, .out = out, .wait_ms = -1};
        /* At least 1 ms: 0 would mean the HTTP client's own default. */
        long long left = deadline - mr_clock_mono_ms();
        rc = attempt_run(&a, req, body, left > 0 ? (long)left : 1, err);
        out->attempts = n;
        if (rc == MR_OK) {
            rc = parse_structured(c, req, out, err);
            break;
        }
        if (a.transport && mr_clock_mono_ms() >= deadline) {
            rc = model_error(c, MR_EUNAVAIL, true, err, "no complete answer within %ld ms "
                             "(timeout)", c->opts.timeout_ms);
            break;
        }
        /* Text already shown to the caller cannot be taken back, so it is not asked for twice. */
        if (!a.retryable || n >= c->opts.max_attempts || a.acc.delivered > 0)
            break;
        long long wait = a.wait_ms >= 0 ? a.wait_ms : backoff;
        if (wait > c->opts.max_backoff_ms)
            wait = c->opts.max_backoff_ms;
        if (mr_clock_mono_ms() + wait >= deadline)
            break;
        mr_log_warn("llm", "%s; retrying in %lld ms (attempt %d of %d)", err->msg, wait, n + 1,
                    c->opts.max_attempts);
        mr_llm_response_clear(out);
        mr_clock_sleep_ms(wait);
        backoff *= 2;
    }
    free(body);
    if (rc != MR_OK && out->attempts > 1) {
        char msg[MR_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        mr_err_set(err, rc, "%s (after %d attempts)", msg, out->attempts);
    }
    return rc;
}

/* ---- the models list ---- */

/* The IDs of an OpenAI models list ({"object": "list", "data": [{"id": ...}, ...]}). */
static bool is_string(const json_t *v)
{
    return json_is_string(v);
}

static json_t *model_ids(json_t *list)
{
    return mr_json_array_pluck(json_object_get(list, "data"), "id", is_string);
}

mr_code mr_llm_models(mr_llm_client *c, json_t **ids, mr_err *err)
{
    *ids = NULL;
    size_t cap = strlen(c->base) + sizeof "/models";
    char *url = malloc(cap);
    if (!url)
        return mr_err_set(err, MR_ENOMEM, "model %s: out of memory", c->model_name);
    snprintf(url, cap, "%s/models", c->base);
    static const char *const accept_json[] = {"Accept: application/json", NULL};
    mr_http_call call = {.method = "GET", .url = url, .headers = accept_json,
                         .timeout_ms = c->opts.timeout_ms};
    mr_http_result res;
    mr_code rc = mr_http_client_do(c->http, &call, &res, err);
    if (rc != MR_OK) {
        char msg[MR_ERR_MSG_MAX];
        memcpy(msg, err->msg, sizeof msg);
        /* The HTTP client's message already names the method and URL. */
        rc = model_error(c, rc, false, err, "%s", msg);
    } else if (res.status < 200 || res.status >= 300) {
        char text[MR_ERR_MSG_MAX];
        reply_error_text(c, &res, text, sizeof text);
        rc = model_error(c, status_code(res.status), false, err, "GET %s: HTTP %ld%s%s", url,
                         res.status, text[0] ? ": " : "", text);
    } else {
        json_t *list = json_loadb(res.body, res.body_len, 0, NULL);
        *ids = model_ids(list);
        json_decref(list);
        if (!*ids)
            rc = model_error(c, MR_EINVAL, false, err, "GET %s: HTTP %ld: the reply is not a "
                             "models list ({\"data\": [{\"id\": ...}]})", url, res.status);
    }
    mr_http_result_clear(&res);
    free(url);
    return rc;
}
