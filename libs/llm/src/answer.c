/* answer.c -- turning what the server sent (a chat.completion, chat.completion.chunk deltas, or
 * an error object) into an mr_llm_response or an error text. */
#include "llm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"

/* Servers stream at most a handful of parallel calls; this bounds a hostile index. */
#define MAX_TOOL_CALLS 128

void mr_llm_response_clear(mr_llm_response *r)
{
    if (!r)
        return;
    free(r->content);
    for (size_t i = 0; i < r->n_tool_calls; i++) {
        free(r->tool_calls[i].id);
        free(r->tool_calls[i].name);
        free(r->tool_calls[i].arguments);
    }
    free(r->tool_calls);
    free(r->finish_reason);
    free(r->id);
    free(r->model);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static mr_code no_memory(mr_err *err)
{
    return mr_err_set(err, MR_ENOMEM, "out of memory reading the model's answer");
}

/* Replaces *dst with a copy of the string value v, when v is a string. */
static bool set_string(char **dst, json_t *v)
{
    if (!json_is_string(v))
        return true;
    char *s = strdup(json_string_value(v));
    if (!s)
        return false;
    free(*dst);
    *dst = s;
    return true;
}

/* Appends the string value v to *dst, whose capacity is *cap. */
static bool append_string(char **dst, size_t *cap, json_t *v)
{
    if (!json_is_string(v) && *dst)
        return true;
    mr_strbuf b = {.s = *dst, .len = *dst ? strlen(*dst) : 0, .cap = *cap};
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    bool ok = mr_strbuf_add(&b, s, json_is_string(v) ? json_string_length(v) : 0);
    *dst = b.s;
    *cap = b.cap;
    return ok;
}

static void read_usage(mr_llm_response *out, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    out->has_usage = true;
    out->usage.prompt_tokens = (long)json_integer_value(json_object_get(usage, "prompt_tokens"));
    out->usage.completion_tokens =
        (long)json_integer_value(json_object_get(usage, "completion_tokens"));
    out->usage.total_tokens = (long)json_integer_value(json_object_get(usage, "total_tokens"));
}

static bool read_ids(mr_llm_response *out, json_t *body)
{
    return (out->id || set_string(&out->id, json_object_get(body, "id"))) &&
           (out->model || set_string(&out->model, json_object_get(body, "model")));
}

/* The entry for tool-call `index`, inserted in index order when new. */
static mr_llm_tool_call *call_at(mr_llm_response *out, int **order, int index)
{
    size_t at = 0;
    while (at < out->n_tool_calls && (*order)[at] < index)
        at++;
    if (at < out->n_tool_calls && (*order)[at] == index)
        return &out->tool_calls[at];
    if (out->n_tool_calls >= MAX_TOOL_CALLS)
        return NULL;
    mr_llm_tool_call *calls = realloc(out->tool_calls, (out->n_tool_calls + 1) * sizeof *calls);
    if (calls)
        out->tool_calls = calls;
    int *idx = realloc(*order, (out->n_tool_calls + 1) * sizeof *idx);
    if (idx)
        *order = idx;
    if (!calls || !idx)
        return NULL;
    memmove(&calls[at + 1], &calls[at], (out->n_tool_calls - at) * sizeof *calls);
    memmove(&idx[at + 1], &idx[at], (out->n_tool_calls - at) * sizeof *idx);
    calls[at] = (mr_llm_tool_call){0};
    idx[at] = index;
    out->n_tool_calls++;
    return &calls[at];
}

/* Merges one tool-call object (whole, or a streamed delta) into the entry for its index. */
static bool merge_call(mr_llm_response *out, int **order, json_t *tc, int position)
{
    json_t *jindex = json_object_get(tc, "index");
    /* Some servers leave out the index of non-streamed or single calls. */
    int index = json_is_integer(jindex) ? (int)json_integer_value(jindex) : position;
    if (index < 0 || index >= MAX_TOOL_CALLS)
        return false;
    mr_llm_tool_call *call = call_at(out, order, index);
    if (!call)
        return false;
    json_t *fn = json_object_get(tc, "function");
    /* Arguments arrive in fragments; id and name come whole, in the first delta (some
     * servers repeat them, so the first one is kept). */
    size_t cap = call->arguments ? strlen(call->arguments) + 1 : 0;
    return (call->id || set_string(&call->id, json_object_get(tc, "id"))) &&
           (call->name || set_string(&call->name, json_object_get(fn, "name"))) &&
           append_string(&call->arguments, &cap, json_object_get(fn, "arguments"));
}

static bool merge_calls(mr_llm_response *out, int **order, json_t *calls)
{
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc)
        if (!merge_call(out, order, tc, (int)i))
            return false;
    return true;
}

mr_code mr_llm_acc_chunk(mr_llm_acc *a, json_t *chunk, mr_err *err)
{
    mr_llm_response *out = a->out;
    if (!read_ids(out, chunk))
        return no_memory(err);
    read_usage(out, json_object_get(chunk, "usage"));
    json_t *choice = json_array_get(json_object_get(chunk, "choices"), 0);
    if (!choice)
        return MR_OK;   /* the usage chunk has no choices */
    json_t *delta = json_object_get(choice, "delta");
    json_t *text = json_object_get(delta, "content");
    if (json_is_string(text) && json_string_length(text) > 0) {
        if (!append_string(&out->content, &a->content_cap, text))
            return no_memory(err);
        if (a->on_delta && !out->cancelled) {
            a->delivered += json_string_length(text);
            out->cancelled = !a->on_delta(a->delta_ctx, json_string_value(text),
                                          json_string_length(text));
        }
    }
    json_t *calls = json_object_get(delta, "tool_calls");
    if (json_is_array(calls) && !merge_calls(out, &a->call_index, calls))
        return mr_err_set(err, MR_EINVAL, "a tool-call delta has a bad index or no memory for it");
    if (!set_string(&out->finish_reason, json_object_get(choice, "finish_reason")))
        return no_memory(err);
    return MR_OK;
}

void mr_llm_acc_free(mr_llm_acc *a)
{
    free(a->call_index);
    a->call_index = NULL;
}

mr_code mr_llm_parse_completion(json_t *body, mr_llm_response *out, mr_err *err)
{
    json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg))
        return mr_err_set(err, MR_EINVAL, "the answer is not a chat completion "
                          "(no choices[0].message)");
    if (!read_ids(out, body) || !set_string(&out->finish_reason,
                                            json_object_get(choice, "finish_reason")))
        return no_memory(err);
    read_usage(out, json_object_get(body, "usage"));
    size_t cap = 0;
    if (!append_string(&out->content, &cap, json_object_get(msg, "content")))
        return no_memory(err);
    int *order = NULL;
    json_t *calls = json_object_get(msg, "tool_calls");
    bool ok = !json_is_array(calls) || merge_calls(out, &order, calls);
    free(order);
    if (!ok)
        return mr_err_set(err, MR_EINVAL, "a tool call of the answer has a bad index");
    return MR_OK;
}

void mr_llm_scrub(const char *in, const char *key, char *out, size_t cap)
{
    char masked[MR_ERR_MSG_MAX * 2];
    size_t n = 0, klen = key ? strlen(key) : 0;
    static const char mark[] = "[redacted]";
    while (*in && n + 1 < sizeof masked) {
        if (klen && strncmp(in, key, klen) == 0) {
            size_t m = sizeof mark - 1 < sizeof masked - 1 - n ? sizeof mark - 1
                                                                : sizeof masked - 1 - n;
            memcpy(masked + n, mark, m);
            n += m;
            in += klen;
        } else {
            masked[n++] = *in++;
        }
    }
    masked[n] = '\0';
    mr_log_redact(masked, out, cap);
}

void mr_llm_error_text(json_t *body, const char *key, char *out, size_t cap)
{
    json_t *e = json_object_get(body, "error");
    out[0] = '\0';
    if (!e)
        return;
    char raw[MR_ERR_MSG_MAX];
    /* Ollama and some proxies send the message as a bare string. */
    const char *msg = json_is_string(e) ? json_string_value(e)
                                        : json_string_value(json_object_get(e, "message"));
    json_t *code = json_object_get(e, "code");
    const char *label = json_string_value(code);
    if (!label)
        label = json_string_value(json_object_get(e, "type"));
    char num[24];
    if (!label && json_is_integer(code)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(code));
        label = num;
    }
    /* The code goes last, in parentheses: "invalid_api_key: ..." would read to the log's
     * redaction as a secret key and its value. */
    if (msg && label)
        snprintf(raw, sizeof raw, "%s (%s)", msg, label);
    else
        snprintf(raw, sizeof raw, "%s", msg ? msg : label ? label : "");
    mr_llm_scrub(raw, key, out, cap);
}
