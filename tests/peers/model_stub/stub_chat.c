/* stub_chat.c -- the stub's routes: /v1/chat/completions and /v1/models as the OpenAI API
 * serves them (key check, request validation, errors), and the /_stub/ control API. */
#include "stub.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation, in OpenAI's words ---- */

static mr_http_response *bad(const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static mr_http_response *bad(const char *param, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return stub_error(400, msg, "invalid_request_error", param, code);
}

static mr_http_response *missing(const char *param)
{
    return bad(param, "missing_required_parameter", "Missing required parameter: '%s'.", param);
}

/* Removes id from ids; false when it was not there. */
static bool take_id(json_t *ids, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        const char *have = json_string_value(v);
        if (id && have && strcmp(have, id) == 0)
            return json_array_remove(ids, i) == 0;
    }
    return false;
}

/* Tool results must answer the calls of the assistant turn before them, all of them. */
static mr_http_response *check_tool_turns(json_t *msgs)
{
    json_t *open = json_array();   /* call IDs still waiting for a result */
    size_t open_at = 0, i;
    json_t *m;
    mr_http_response *r = NULL;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        char param[64];
        if (strcmp(role, "tool") == 0) {
            const char *id = json_string_value(json_object_get(m, "tool_call_id"));
            if (!take_id(open, id)) {
                snprintf(param, sizeof param, "messages.[%zu].role", i);
                r = bad(param, NULL, "Invalid parameter: messages with role 'tool' must be a "
                        "response to a preceeding message with 'tool_calls'.");
                break;
            }
            continue;
        }
        if (json_array_size(open)) {
            snprintf(param, sizeof param, "messages.[%zu].role", open_at);
            r = bad(param, NULL, "An assistant message with 'tool_calls' must be followed by "
                    "tool messages responding to each 'tool_call_id'. The following "
                    "tool_call_ids did not have response messages: %s",
                    json_string_value(json_array_get(open, 0)));
            break;
        }
        json_t *calls = json_object_get(m, "tool_calls");
        size_t k;
        json_t *tc;
        json_array_foreach(calls, k, tc)
            json_array_append(open, json_object_get(tc, "id"));
        open_at = i;
    }
    if (!r && json_array_size(open))
        r = bad("messages", NULL, "An assistant message with 'tool_calls' must be followed by "
                "tool messages responding to each 'tool_call_id'.");
    json_decref(open);
    return r;
}

static mr_http_response *check_messages(json_t *msgs)
{
    if (!msgs)
        return missing("messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad("messages", "empty_array", "Invalid 'messages': empty array. Expected an "
                   "array with minimum length 1, but got an empty array instead.");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char param[64];
        const char *role = json_string_value(json_object_get(m, "role"));
        static const char *const roles[] = {"system", "developer", "user", "assistant", "tool",
                                            NULL};
        size_t r = 0;
        while (role && roles[r] && strcmp(roles[r], role) != 0)
            r++;
        if (!role || !roles[r]) {
            snprintf(param, sizeof param, "messages[%zu].role", i);
            return bad(param, "invalid_value", "Invalid value: '%s'. Supported values are: "
                       "'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                       role ? role : "");
        }
        json_t *content = json_object_get(m, "content");
        bool may_be_null = strcmp(role, "assistant") == 0 && json_object_get(m, "tool_calls");
        if (!json_is_string(content) && !json_is_array(content) &&
            !(may_be_null && (!content || json_is_null(content)))) {
            snprintf(param, sizeof param, "messages[%zu].content", i);
            return missing(param);
        }
        if (strcmp(role, "tool") == 0 && !json_is_string(json_object_get(m, "tool_call_id"))) {
            snprintf(param, sizeof param, "messages[%zu].tool_call_id", i);
            return missing(param);
        }
    }
    return check_tool_turns(msgs);
}

static mr_http_response *check_options(json_t *body)
{
    json_t *v = json_object_get(body, "stream");
    if (v && !json_is_boolean(v))
        return bad("stream", "invalid_type", "Invalid type for 'stream': expected a boolean.");
    v = json_object_get(body, "temperature");
    if (v && (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2))
        return bad("temperature", "invalid_value", "Invalid 'temperature': expected a number "
                   "from 0 to 2.");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(body, "tools"), i, t) {
        char param[64];
        snprintf(param, sizeof param, "tools[%zu].function.name", i);
        const char *name = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
        if (!name)
            return missing(param);
        /* OpenAI refuses function names outside ^[a-zA-Z0-9_-]{1,64}$. */
        size_t len = strlen(name);
        if (len == 0 || len > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                 "0123456789_-") != len)
            return bad(param, "invalid_value", "Invalid '%s': string does not match pattern. Expected a "
                       "string that matches the pattern '^[a-zA-Z0-9_-]+$'.", param);
        /* and parameters that are not a JSON Schema object. */
        json_t *params = json_object_get(json_object_get(t, "function"), "parameters");
        snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
        if (params && !json_is_object(params))
            return bad(param, "invalid_type", "Invalid type for '%s': expected an object.", param);
    }
    /* tool_choice: OpenAI takes "none", "auto", "required" or a named function, and only with
     * tools. */
    json_t *choice = json_object_get(body, "tool_choice");
    if (choice && !json_array_size(json_object_get(body, "tools")))
        return bad("tool_choice", NULL, "Invalid value for 'tool_choice': 'tool_choice' is only allowed "
                   "when 'tools' are specified.");
    const char *cv = json_string_value(choice);
    if (choice && !(cv && (strcmp(cv, "none") == 0 || strcmp(cv, "auto") == 0 || strcmp(cv, "required") == 0)) &&
        !json_is_string(json_object_get(json_object_get(choice, "function"), "name")))
        return bad("tool_choice", "invalid_value", "Invalid value: '%s'. Supported values are: 'none', 'auto', "
                   "and 'required'.", cv ? cv : "(object)");
    json_t *rf = json_object_get(body, "response_format");
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (rf && (!type || (strcmp(type, "text") != 0 && strcmp(type, "json_object") != 0 &&
                         strcmp(type, "json_schema") != 0)))
        return bad("response_format.type", "invalid_value", "Invalid value: '%s'. Supported "
                   "values are: 'text', 'json_object', and 'json_schema'.", type ? type : "");
    json_t *js = json_object_get(rf, "json_schema");
    if (type && strcmp(type, "json_schema") == 0) {
        if (!json_is_object(js))
            return missing("response_format.json_schema");
        if (!json_is_string(json_object_get(js, "name")))
            return missing("response_format.json_schema.name");
        if (!json_is_object(json_object_get(js, "schema")))
            return missing("response_format.json_schema.schema");
    }
    return NULL;
}

static bool model_served(stub *s, const char *model)
{
    for (size_t i = 0; i < s->n_models; i++)
        if (strcmp(s->models[i], model) == 0)
            return true;
    return s->n_models == 0;
}

/* ---- the API ---- */

static mr_http_response *scripted_error(json_t *fields, const char *model)
{
    int status = (int)json_integer_value(json_object_get(fields, "status"));
    mr_http_response *r = mr_http_reply_json(status, stub_default_error(status, fields, model));
    char v[32];
    json_t *after = json_object_get(fields, "retry_after");
    if (json_is_integer(after)) {
        snprintf(v, sizeof v, "%lld", (long long)json_integer_value(after));
        mr_http_response_header(r, "Retry-After", v);
    }
    after = json_object_get(fields, "retry_after_ms");
    if (json_is_integer(after)) {
        snprintf(v, sizeof v, "%lld", (long long)json_integer_value(after));
        mr_http_response_header(r, "retry-after-ms", v);
    }
    return r;
}

static mr_http_response *chat(stub *s, const mr_http_request *req)
{
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return bad(NULL, NULL, "We could not parse the JSON body of your request. The API "
                   "expects a JSON payload.");
    }
    mr_http_response *r = NULL;
    const char *model = json_string_value(json_object_get(body, "model"));
    if (!model)
        r = bad(NULL, NULL, "you must provide a model parameter");
    else if (!model_served(s, model))
        r = mr_http_reply_json(404, stub_default_error(404, NULL, model));
    if (!r)
        r = check_messages(json_object_get(body, "messages"));
    if (!r)
        r = check_options(body);
    if (r) {
        json_decref(body);
        return r;
    }
    stub_script sc;
    stub_script_next(s, &sc);
    bool in_stream = json_is_true(json_object_get(body, "stream")) &&
                     json_object_get(sc.error, "after_chunks");
    if (sc.error && !in_stream) {
        if (sc.stall_ms && !stub_sleep(s, sc.stall_ms))
            r = stub_error(503, "The stub is stopping.", "server_error", NULL, NULL);
        else
            r = scripted_error(sc.error, model);
    } else {
        r = stub_answer(s, body, &sc);
    }
    stub_script_clear(&sc);
    json_decref(body);
    return r;
}

static mr_http_response *models(stub *s)
{
    json_t *data = json_array();
    static const char *const fallback[] = {"stub-model"};
    char *const *ids = s->n_models ? s->models : (char *const *)fallback;
    size_t n = s->n_models ? s->n_models : 1;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s}", "id", ids[i], "object",
                                              "model", "created", 0, "owned_by", "mindroom-stub"));
    return mr_http_reply_json(200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static mr_http_response *invalid_url(const mr_http_request *req)
{
    char msg[300];
    snprintf(msg, sizeof msg, "Invalid URL (%s %s)", req->method, req->path);
    return stub_error(404, msg, "invalid_request_error", NULL, NULL);
}

/* "none", "valid" or "invalid"; the key itself is never recorded. */
static const char *auth_state(stub *s, const mr_http_request *req)
{
    const char *h = mr_http_request_header(req, "Authorization");
    if (!h)
        return "none";
    if (s->api_key && strncmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, s->api_key) == 0)
        return "valid";
    return s->api_key ? "invalid" : "valid";
}

static mr_http_response *check_key(stub *s, const mr_http_request *req, const char *state)
{
    if (!s->api_key || strcmp(state, "valid") == 0)
        return NULL;
    if (strcmp(state, "none") == 0)
        return stub_error(401, "You didn't provide an API key. You need to provide your API "
                          "key in an Authorization header using Bearer auth (i.e. "
                          "Authorization: Bearer YOUR_KEY).", "invalid_request_error", NULL,
                          NULL);
    const char *h = mr_http_request_header(req, "Authorization");
    char masked[64], msg[256];
    stub_mask_key(strncmp(h, "Bearer ", 7) == 0 ? h + 7 : h, masked, sizeof masked);
    snprintf(msg, sizeof msg, "Incorrect API key provided: %s. You can find your API key at "
             "https://platform.openai.com/account/api-keys.", masked);
    return stub_error(401, msg, "invalid_request_error", NULL, "invalid_api_key");
}

static void record(stub *s, const mr_http_request *req, const char *auth)
{
    json_t *body = req->body_len ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
    if (!body && req->body_len)
        body = json_stringn(req->body, req->body_len);
    stub_record(s, json_pack("{s:s, s:s, s:s, s:o, s:i}", "method", req->method, "path", req->path,
                             "auth", auth, "body", body ? body : json_null(), "client_port", req->client_port));
}

static mr_http_response *api(stub *s, const mr_http_request *req)
{
    const char *auth = auth_state(s, req);
    record(s, req, auth);
    mr_http_response *r = check_key(s, req, auth);
    if (r)
        return r;
    if (strcmp(req->path, "/v1/chat/completions") == 0 && strcmp(req->method, "POST") == 0)
        return chat(s, req);
    if (strcmp(req->path, "/v1/models") == 0 && strcmp(req->method, "GET") == 0)
        return models(s);
    return invalid_url(req);
}

/* ---- the control API ---- */

static mr_http_response *control(stub *s, const mr_http_request *req)
{
    bool post = strcmp(req->method, "POST") == 0;
    if (post && strcmp(req->path, "/_stub/script") == 0) {
        json_error_t je;
        json_t *spec = json_loadb(req->body, req->body_len, 0, &je);
        char why[256] = "";
        if (!spec)
            snprintf(why, sizeof why, "body is not JSON: %s", je.text);
        bool ok = spec && stub_script_add(s, spec, why, sizeof why);
        json_decref(spec);
        if (!ok)
            return stub_error(400, why, "invalid_request_error", NULL, NULL);
        return mr_http_reply_json(200, json_pack("{s:b}", "queued", 1));
    }
    if (post && strcmp(req->path, "/_stub/release") == 0)
        return mr_http_reply_json(200, json_pack("{s:i}", "released", stub_held(s, true)));
    if (post && strcmp(req->path, "/_stub/reset") == 0) {
        stub_reset(s);
        return mr_http_reply_json(200, json_object());
    }
    if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/_stub/requests") == 0)
        return mr_http_reply_json(200, json_pack("{s:o, s:i}", "requests", stub_requests(s),
                                                 "held", stub_held(s, false)));
    return invalid_url(req);
}

mr_http_response *stub_handle(void *ctx, const mr_http_request *req)
{
    stub *s = ctx;
    mr_http_response *ops = mr_http_ops_reply(req, NULL, NULL, NULL);
    if (ops)
        return ops;
    if (strncmp(req->path, "/_stub/", 7) == 0)
        return control(s, req);
    if (strncmp(req->path, "/v1/", 4) == 0)
        return api(s, req);
    return invalid_url(req);
}
