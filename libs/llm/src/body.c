/* body.c -- the JSON body of a chat-completions request: the prompt (system message from role,
 * instructions and context; history; the user's message), tools, structured output, sampling
 * and streaming options. */
#include "llm_internal.h"

#include <stdlib.h>
#include <string.h>

/* A block per part, in the tags Agno (the Python MindRoom's agent library) uses, so prompts
 * read the same to the model. */
static bool system_text(const mr_llm_request *req, mr_strbuf *b)
{
    bool ok = true;
    if (req->role && *req->role) {
        ok = ok && mr_strbuf_add(b, "<your_role>\n", 12);
        ok = ok && mr_strbuf_add(b, req->role, strlen(req->role));
        ok = ok && mr_strbuf_add(b, "\n</your_role>", 13);
    }
    if (req->n_instructions) {
        ok = ok && (b->len == 0 || mr_strbuf_add(b, "\n\n", 2));
        ok = ok && mr_strbuf_add(b, "<instructions>", 14);
        for (size_t i = 0; i < req->n_instructions; i++) {
            ok = ok && mr_strbuf_add(b, "\n- ", 3);
            ok = ok && mr_strbuf_add(b, req->instructions[i], strlen(req->instructions[i]));
        }
        ok = ok && mr_strbuf_add(b, "\n</instructions>", 16);
    }
    if (req->context && *req->context) {
        ok = ok && (b->len == 0 || mr_strbuf_add(b, "\n\n", 2));
        ok = ok && mr_strbuf_add(b, req->context, strlen(req->context));
    }
    return ok;
}

static const char *role_name(mr_llm_role r)
{
    switch (r) {
    case MR_LLM_SYSTEM:
        return "system";
    case MR_LLM_USER:
        return "user";
    case MR_LLM_ASSISTANT:
        return "assistant";
    case MR_LLM_TOOL:
        return "tool";
    }
    return "user";
}

static json_t *tool_calls_json(const mr_llm_tool_call *calls, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *tc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", calls[i].id ? calls[i].id : "",
                               "type", "function", "function", "name",
                               calls[i].name ? calls[i].name : "", "arguments",
                               calls[i].arguments ? calls[i].arguments : "{}");
        if (json_array_append_new(arr, tc) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *message_json(const mr_llm_message *m)
{
    json_t *o = json_pack("{s:s, s:o}", "role", role_name(m->role), "content",
                          m->content ? json_string(m->content) : json_null());
    if (!o)
        return NULL;
    bool ok = true;
    if (m->n_tool_calls)
        ok = json_object_set_new(o, "tool_calls", tool_calls_json(m->tool_calls, m->n_tool_calls)) == 0;
    if (ok && m->tool_call_id)
        ok = json_object_set_new(o, "tool_call_id", json_string(m->tool_call_id)) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *messages_json(const mr_llm_request *req)
{
    json_t *arr = json_array();
    mr_strbuf sys = {0};
    bool ok = arr && system_text(req, &sys);
    if (ok && sys.len) {
        mr_llm_message m = {.role = MR_LLM_SYSTEM, .content = sys.s};
        ok = json_array_append_new(arr, message_json(&m)) == 0;
    }
    free(sys.s);
    for (size_t i = 0; ok && i < req->n_history; i++)
        ok = json_array_append_new(arr, message_json(&req->history[i])) == 0;
    if (ok && req->user) {
        mr_llm_message m = {.role = MR_LLM_USER, .content = req->user};
        ok = json_array_append_new(arr, message_json(&m)) == 0;
    }
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static json_t *tools_json(const mr_llm_tool *tools, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *params = tools[i].parameters
                             ? json_incref(tools[i].parameters)
                             : json_pack("{s:s, s:{}}", "type", "object", "properties");
        json_t *fn = json_pack("{s:s, s:o}", "name", tools[i].name ? tools[i].name : "",
                               "parameters", params);
        if (fn && tools[i].description &&
            json_object_set_new(fn, "description", json_string(tools[i].description)) != 0) {
            json_decref(fn);
            fn = NULL;
        }
        if (!fn || json_array_append_new(arr, json_pack("{s:s, s:o}", "type", "function", "function",
                                                 fn)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static bool set_new(json_t *o, const char *key, json_t *v)
{
    return v && json_object_set_new(o, key, v) == 0;
}

mr_code mr_llm_request_body(const mr_llm_client *c, const mr_llm_request *req, json_t **out,
                            mr_err *err)
{
    *out = NULL;
    if (!req->user && req->n_history == 0)
        return mr_err_set(err, MR_EINVAL, "model %s: a request needs a user message or history",
                          c->model_name);
    if (req->schema && !json_is_object(req->schema))
        return mr_err_set(err, MR_EINVAL, "model %s: the answer schema must be a JSON object",
                          c->model_name);
    json_t *b = json_object();
    bool ok = b && set_new(b, "model", json_string(c->model_id)) &&
              set_new(b, "messages", messages_json(req)) &&
              set_new(b, "stream", json_boolean(req->stream));
    /* Usage comes in a last chunk only when asked for. */
    if (ok && req->stream)
        ok = set_new(b, "stream_options", json_pack("{s:b}", "include_usage", 1));
    double temp = req->temperature ? *req->temperature : c->temperature;
    if (ok && temp >= 0)
        ok = set_new(b, "temperature", json_real(temp));
    /* OpenAI's newer models refuse max_tokens; compatible servers mostly know only it. */
    if (ok && req->max_tokens > 0)
        ok = set_new(b, c->openai ? "max_completion_tokens" : "max_tokens",
                     json_integer(req->max_tokens));
    if (ok && req->n_tools)
        ok = set_new(b, "tools", tools_json(req->tools, req->n_tools));
    if (ok && req->n_tools && req->tool_choice)
        ok = set_new(b, "tool_choice", json_string(req->tool_choice));
    if (ok && req->schema)
        ok = set_new(b, "response_format",
                     json_pack("{s:s, s:{s:s, s:O, s:b}}", "type", "json_schema", "json_schema",
                               "name", req->schema_name ? req->schema_name : "answer", "schema",
                               req->schema, "strict", 1));
    if (!ok) {
        json_decref(b);
        return mr_err_set(err, MR_EINVAL, "model %s: cannot build the request (text that is "
                          "not UTF-8, or out of memory)", c->model_name);
    }
    *out = b;
    return MR_OK;
}
