/* test_stub.c -- mr-model-stub over raw HTTP: OpenAI's answer and error shapes, the key
 * check, request validation, streaming events, the router rule and the control API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/clock.h"
#include "mindroom/http.h"
#include "model_stub_peer.h"

#define KEY "sk-test-0123456789abcdef"

typedef struct fixture {
    mr_model_stub st;
    mr_http_client *http;
} fixture;

static int start(void **state, const char *key, const char *const *models)
{
    fixture *f = calloc(1, sizeof *f);
    mr_err err = {0};
    if (mr_model_stub_start(key, models, &f->st, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    mr_http_client_opts o = {.base_url = f->st.url, .bearer_token = key};
    if (mr_http_client_new(&o, &f->http, &err) != MR_OK)
        return -1;
    *state = f;
    return 0;
}

static int setup_open(void **state)
{
    return start(state, NULL, NULL);
}

static int setup_keyed(void **state)
{
    static const char *const models[] = {"stub-a", "stub-b", NULL};
    return start(state, KEY, models);
}

static int teardown(void **state)
{
    fixture *f = *state;
    mr_http_client_free(f->http);
    mr_err err = {0};
    mr_code rc = mr_model_stub_stop(&f->st, &err);
    if (rc != MR_OK)
        fprintf(stderr, "%s\n", err.msg);
    free(f);
    return rc == MR_OK ? 0 : -1;
}

/* POSTs body (JSON text) to path; returns the status, the parsed body in *out (may be NULL). */
static long post(fixture *f, const char *path, const char *body, json_t **out)
{
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    mr_http_result res;
    assert_int_equal(mr_http_client_json(f->http, "POST", path, j, &res, NULL), MR_OK);
    json_decref(j);
    long status = res.status;
    if (out)
        *out = json_incref(res.json);
    mr_http_result_clear(&res);
    return status;
}

static void assert_error(json_t *body, const char *type, const char *param, const char *code)
{
    json_t *e = json_object_get(body, "error");
    assert_int_equal(json_object_size(e), 4);
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    json_t *p = json_object_get(e, "param"), *c = json_object_get(e, "code");
    if (param)
        assert_string_equal(json_string_value(p), param);
    else
        assert_true(json_is_null(p));
    if (code)
        assert_string_equal(json_string_value(c), code);
    else
        assert_true(json_is_null(c));
}

static const char *message_text(json_t *completion)
{
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(completion, "choices"), 0), "message"),
        "content"));
}

static void test_echo_answer(void **state)
{
    fixture *f = *state;
    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/chat/completions",
                          "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
                          "{\"role\":\"user\",\"content\":\"hello there\"}]}", &b), 200);
    assert_string_equal(json_string_value(json_object_get(b, "object")), "chat.completion");
    assert_string_equal(json_string_value(json_object_get(b, "model")), "m");
    assert_string_equal(message_text(b), "Echo: hello there");
    json_t *choice = json_array_get(json_object_get(b, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    json_t *u = json_object_get(b, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 3);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 3);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 6);
    json_decref(b);
}

/* The data of each event of a raw event stream, in order. */
static json_t *events_of(const char *body)
{
    json_t *out = json_array();
    for (const char *p = strstr(body, "data: "); p; p = strstr(p, "data: ")) {
        p += 6;
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        json_t *j = json_loadb(p, (size_t)(end - p), 0, NULL);
        json_array_append_new(out, j ? j : json_stringn(p, (size_t)(end - p)));
        p = end;
    }
    return out;
}

static void test_stream_events(void **state)
{
    fixture *f = *state;
    const char *body = "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"one two\"}]}";
    mr_http_call call = {.method = "POST", .url = "/v1/chat/completions", .body = body,
                         .body_len = strlen(body), .content_type = "application/json"};
    mr_http_result res;
    assert_int_equal(mr_http_client_do(f->http, &call, &res, NULL), MR_OK);
    assert_int_equal(res.status, 200);
    assert_string_equal(mr_http_result_header(&res, "Content-Type"),
                        "text/event-stream; charset=utf-8");
    json_t *ev = events_of(res.body);
    /* role, "Echo:", " one", " two", finish, usage, [DONE] */
    assert_int_equal(json_array_size(ev), 7);
    static const char *const pieces[] = {"", "Echo:", " one", " two"};
    for (size_t i = 0; i < 4; i++) {
        json_t *c = json_array_get(ev, i);
        assert_string_equal(json_string_value(json_object_get(c, "object")),
                            "chat.completion.chunk");
        assert_true(json_is_null(json_object_get(c, "usage")));
        json_t *d = json_object_get(json_array_get(json_object_get(c, "choices"), 0), "delta");
        assert_string_equal(json_string_value(json_object_get(d, "content")), pieces[i]);
    }
    json_t *fin = json_array_get(json_object_get(json_array_get(ev, 4), "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(fin, "finish_reason")), "stop");
    json_t *last = json_array_get(ev, 5);
    assert_int_equal(json_array_size(json_object_get(last, "choices")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(last, "usage"),
                                                        "completion_tokens")), 3);
    assert_string_equal(json_string_value(json_array_get(ev, 6)), "[DONE]");
    json_decref(ev);
    mr_http_result_clear(&res);
}

/* A paced answer cannot come faster than its characters at chars_per_second: 50 characters at
 * 100 a second take at least half a second (only a lower bound: a slow machine is slower). */
static void test_paced_stream(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    assert_int_equal(mr_model_stub_script(&f->st, "{\"reply\":\"aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj\","
                                          "\"chars_per_second\":100}", &err), MR_OK);
    const char *body = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    mr_http_call call = {.method = "POST", .url = "/v1/chat/completions", .body = body,
                         .body_len = strlen(body), .content_type = "application/json"};
    mr_http_result res;
    long long t0 = mr_clock_mono_ms();
    assert_int_equal(mr_http_client_do(f->http, &call, &res, NULL), MR_OK);
    assert_true(mr_clock_mono_ms() - t0 >= 490);
    json_t *ev = events_of(res.body);
    /* role, ten words, finish, [DONE] */
    assert_int_equal(json_array_size(ev), 13);
    json_decref(ev);
    mr_http_result_clear(&res);
    assert_int_equal(mr_model_stub_script(&f->st, "{\"chars_per_second\":0}", &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "'chars_per_second'"));
}

static void test_key_check(void **state)
{
    fixture *f = *state;
    const char *body = "{\"model\":\"stub-a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/chat/completions", body, &b), 200);
    json_decref(b);

    /* A wrong key is shown back masked, as OpenAI does. */
    mr_http_client *wrong = NULL;
    mr_http_client_opts o = {.base_url = f->st.url, .bearer_token = "sk-wrong-key-9876543210"};
    assert_int_equal(mr_http_client_new(&o, &wrong, NULL), MR_OK);
    json_t *j = json_loads(body, 0, NULL);
    mr_http_result res;
    assert_int_equal(mr_http_client_json(wrong, "POST", "/v1/chat/completions", j, &res, NULL),
                     MR_OK);
    assert_int_equal(res.status, 401);
    assert_error(res.json, "invalid_request_error", NULL, "invalid_api_key");
    const char *msg = json_string_value(json_object_get(json_object_get(res.json, "error"),
                                                        "message"));
    assert_non_null(strstr(msg, "Incorrect API key provided: sk-****3210."));
    assert_null(strstr(msg, "sk-wrong-key"));
    mr_http_result_clear(&res);
    mr_http_client_free(wrong);

    /* No key at all. */
    mr_http_client *none = NULL;
    mr_http_client_opts no = {.base_url = f->st.url};
    assert_int_equal(mr_http_client_new(&no, &none, NULL), MR_OK);
    assert_int_equal(mr_http_client_json(none, "GET", "/v1/models", NULL, &res, NULL), MR_OK);
    assert_int_equal(res.status, 401);
    assert_error(res.json, "invalid_request_error", NULL, NULL);
    mr_http_result_clear(&res);
    mr_http_client_free(none);
    json_decref(j);

    /* The log says how each request was authorised, never with what. */
    json_t *reqs = NULL;
    assert_int_equal(mr_model_stub_requests(&f->st, &reqs, NULL), MR_OK);
    assert_int_equal(json_array_size(reqs), 3);
    static const char *const auth[] = {"valid", "invalid", "none"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, i), "auth")),
                            auth[i]);
    char *dump = json_dumps(reqs, 0);
    assert_null(strstr(dump, KEY));
    free(dump);
    json_decref(reqs);
}

static void test_models(void **state)
{
    fixture *f = *state;
    mr_http_result res;
    assert_int_equal(mr_http_client_json(f->http, "GET", "/v1/models", NULL, &res, NULL), MR_OK);
    assert_int_equal(res.status, 200);
    assert_string_equal(json_string_value(json_object_get(res.json, "object")), "list");
    json_t *data = json_object_get(res.json, "data");
    assert_int_equal(json_array_size(data), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "id")),
                        "stub-b");
    mr_http_result_clear(&res);

    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/chat/completions", "{\"model\":\"gpt-nope\",\"messages\":"
                          "[{\"role\":\"user\",\"content\":\"x\"}]}", &b), 404);
    assert_error(b, "invalid_request_error", NULL, "model_not_found");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "error"), "message")),
                        "The model `gpt-nope` does not exist or you do not have access to it.");
    json_decref(b);
}

static void test_validation(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *body, *param, *code;
    } cases[] = {
        {"{\"model\":\"m\"}", "messages", "missing_required_parameter"},
        {"{\"model\":\"m\",\"messages\":[]}", "messages", "empty_array"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
         "messages[0].role", "invalid_value"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
         "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r\"}]}",
         "messages.[1].role", NULL},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
         "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
         "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
         "{\"role\":\"user\",\"content\":\"y\"}]}",
         "messages.[1].role", NULL},
        {"{\"model\":\"m\",\"temperature\":3,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "temperature", "invalid_value"},
        {"{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":"
         "{\"name\":\"r\"}},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "response_format.json_schema.schema", "missing_required_parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *b = NULL;
        assert_int_equal(post(f, "/v1/chat/completions", cases[i].body, &b), 400);
        assert_error(b, "invalid_request_error", cases[i].param, cases[i].code);
        json_decref(b);
    }
    /* A tool result after its call is fine. */
    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/chat/completions",
                          "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
                          "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c1\",\"type\":"
                          "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                          "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]}", &b),
                     200);
    assert_string_equal(message_text(b), "Tool result: 42");
    json_decref(b);
}

static void test_scripts(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    assert_int_equal(mr_model_stub_script(&f->st, "[{\"times\":2,\"error\":{\"status\":429,"
                                          "\"retry_after\":7,\"retry_after_ms\":7000}},"
                                          "{\"reply\":\"scripted\"}]", &err), MR_OK);
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    for (int i = 0; i < 2; i++) {
        json_t *j = json_loads(body, 0, NULL);
        mr_http_result res;
        assert_int_equal(mr_http_client_json(f->http, "POST", "/v1/chat/completions", j, &res,
                                             NULL), MR_OK);
        json_decref(j);
        assert_int_equal(res.status, 429);
        assert_error(res.json, "requests", NULL, "rate_limit_exceeded");
        assert_string_equal(mr_http_result_header(&res, "Retry-After"), "7");
        assert_string_equal(mr_http_result_header(&res, "retry-after-ms"), "7000");
        mr_http_result_clear(&res);
    }
    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/chat/completions", body, &b), 200);
    assert_string_equal(message_text(b), "scripted");
    json_decref(b);
    assert_int_equal(post(f, "/v1/chat/completions", body, &b), 200);
    assert_string_equal(message_text(b), "Echo: x");
    json_decref(b);

    /* Scripted fields override the defaults of the status. */
    assert_int_equal(mr_model_stub_script(&f->st, "{\"error\":{\"status\":400,\"message\":\"no\","
                                          "\"param\":\"tools\",\"code\":\"bad_tools\"}}", &err),
                     MR_OK);
    assert_int_equal(post(f, "/v1/chat/completions", body, &b), 400);
    assert_error(b, "invalid_request_error", "tools", "bad_tools");
    json_decref(b);

    /* Mistakes in a script are refused, naming the field. */
    assert_int_equal(mr_model_stub_script(&f->st, "{\"relpy\":\"x\"}", &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "unknown script field 'relpy'"));

    json_t *reqs = NULL;
    assert_int_equal(mr_model_stub_requests(&f->st, &reqs, NULL), MR_OK);
    assert_int_equal(json_array_size(reqs), 5);
    json_decref(reqs);
    assert_int_equal(mr_model_stub_reset(&f->st, NULL), MR_OK);
    assert_int_equal(mr_model_stub_requests(&f->st, &reqs, NULL), MR_OK);
    assert_int_equal(json_array_size(reqs), 0);
    json_decref(reqs);
}

static void test_tool_call_script(void **state)
{
    fixture *f = *state;
    assert_int_equal(mr_model_stub_script(&f->st, "{\"tool_calls\":[{\"name\":\"weather\","
                                          "\"arguments\":{\"city\":\"Zürich\"}}]}", NULL), MR_OK);
    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/chat/completions", "{\"model\":\"m\",\"messages\":"
                          "[{\"role\":\"user\",\"content\":\"x\"}]}", &b), 200);
    json_t *choice = json_array_get(json_object_get(b, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "tool_calls");
    json_t *msg = json_object_get(choice, "message");
    assert_true(json_is_null(json_object_get(msg, "content")));
    json_t *tc = json_array_get(json_object_get(msg, "tool_calls"), 0);
    assert_string_equal(json_string_value(json_object_get(tc, "id")), "call_stub_0");
    assert_string_equal(json_string_value(json_object_get(tc, "type")), "function");
    json_t *fn = json_object_get(tc, "function");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "weather");
    assert_string_equal(json_string_value(json_object_get(fn, "arguments")),
                        "{\"city\":\"Zürich\"}");
    json_decref(b);
}

static void test_router_rule(void **state)
{
    fixture *f = *state;
    const char *listed =
        "{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
        "\"name\":\"route\",\"schema\":{\"type\":\"object\",\"properties\":{\"entity_name\":"
        "{\"type\":\"string\"},\"reasoning\":{\"type\":\"string\"}}}}},\"messages\":["
        "{\"role\":\"system\",\"content\":\"Pick one.\\n- Be brief.\\nAgents:\\n- @coder: writes "
        "code\\n- mind: general\"},{\"role\":\"user\",\"content\":\"fix my build\"}]}";
    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/chat/completions", listed, &b), 200);
    json_t *answer = json_loads(message_text(b), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(answer, "entity_name")), "coder");
    assert_true(json_is_string(json_object_get(answer, "reasoning")));
    json_decref(answer);
    json_decref(b);

    const char *enumerated =
        "{\"model\":\"m\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
        "\"name\":\"route\",\"schema\":{\"type\":\"object\",\"properties\":{\"entity_name\":"
        "{\"type\":\"string\",\"enum\":[\"mind\",\"coder\"]}}}}},\"messages\":["
        "{\"role\":\"system\",\"content\":\"- coder\"},{\"role\":\"user\",\"content\":\"hi\"}]}";
    assert_int_equal(post(f, "/v1/chat/completions", enumerated, &b), 200);
    answer = json_loads(message_text(b), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(answer, "entity_name")), "mind");
    json_decref(answer);
    json_decref(b);
}

static void test_unknown_url(void **state)
{
    fixture *f = *state;
    json_t *b = NULL;
    assert_int_equal(post(f, "/v1/completions", "{}", &b), 404);
    assert_error(b, "invalid_request_error", NULL, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "error"), "message")),
                        "Invalid URL (POST /v1/completions)");
    json_decref(b);
}

/* A request stalled for a minute, made on its own thread. */
static void *stalled_call(void *arg)
{
    fixture *f = arg;
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = f->st.url};
    mr_http_client_new(&o, &c, NULL);
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    mr_http_call call = {.method = "POST", .url = "/v1/chat/completions", .body = body,
                         .body_len = strlen(body), .content_type = "application/json"};
    mr_http_result res;
    long status = mr_http_client_do(c, &call, &res, NULL) == MR_OK ? res.status : -1;
    mr_http_result_clear(&res);
    mr_http_client_free(c);
    return (void *)(intptr_t)status;
}

static void test_stop_ends_stalls(void **state)
{
    fixture *f = *state;
    assert_int_equal(mr_model_stub_script(&f->st, "{\"stall_ms\":60000}", NULL), MR_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stalled_call, f), 0);
    /* Wait until the stub holds the request (it is recorded before it stalls). */
    json_t *reqs = NULL;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(mr_model_stub_requests(&f->st, &reqs, NULL), MR_OK);
        size_t n = json_array_size(reqs);
        json_decref(reqs);
        if (n == 1)
            break;
        usleep(10000);
    }
    mr_err err = {0};
    assert_int_equal(mr_model_stub_stop(&f->st, &err), MR_OK);
    void *status;
    pthread_join(t, &status);
    assert_int_equal((intptr_t)status, 503);
}

/* How many streams wait at a hold now, from GET /_stub/requests. */
static int held(fixture *f)
{
    mr_http_result res;
    assert_int_equal(mr_http_client_json(f->http, "GET", "/_stub/requests", NULL, &res, NULL),
                     MR_OK);
    json_t *n = json_object_get(res.json, "held");
    assert_true(json_is_integer(n));
    int v = (int)json_integer_value(n);
    mr_http_result_clear(&res);
    return v;
}

static void test_hold_until_released(void **state)
{
    fixture *f = *state;
    assert_int_equal(mr_model_stub_script(&f->st, "{\"hold\":true}", NULL), MR_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stalled_call, f), 0);
    /* However long it takes, the answer waits for the release. */
    while (held(f) == 0)
        usleep(10000);
    json_t *b = NULL;
    assert_int_equal(post(f, "/_stub/release", "{}", &b), 200);
    assert_int_equal(json_integer_value(json_object_get(b, "released")), 1);
    json_decref(b);
    void *status;
    pthread_join(t, &status);
    assert_int_equal((intptr_t)status, 200);
    assert_int_equal(held(f), 0);

    /* A release sent before the stream reaches its hold covers it too. */
    assert_int_equal(mr_model_stub_script(&f->st, "{\"hold\":true,\"stall_after_chunks\":2}",
                                          NULL), MR_OK);
    assert_int_equal(post(f, "/_stub/release", "{}", &b), 200);
    assert_int_equal(json_integer_value(json_object_get(b, "released")), 0);
    json_decref(b);
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    assert_int_equal(post(f, "/v1/chat/completions", body, &b), 200);
    assert_string_equal(message_text(b), "Echo: x");
    json_decref(b);

    mr_err err = {0};
    assert_int_equal(mr_model_stub_script(&f->st, "{\"hold\":1}", &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "'hold' must be true or false"));
    assert_int_equal(mr_model_stub_script(&f->st, "{\"hold\":true,\"stall_ms\":5}", &err),
                     MR_EINVAL);
    assert_non_null(strstr(err.msg, "'stall_ms' or 'hold', not both"));
}

/* Each recorded request names its connection by the client's port: requests on one kept-alive
 * connection share it, another client's connection has its own. */
static void test_requests_name_their_connection(void **state)
{
    fixture *f = *state;
    static const char *const body = "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", "
                                    "\"content\": \"hi\"}]}";
    assert_int_equal(post(f, "/v1/chat/completions", body, NULL), 200);
    assert_int_equal(post(f, "/v1/chat/completions", body, NULL), 200);
    /* Another client: a connection of its own. */
    mr_http_client *http = f->http;
    mr_http_client_opts o = {.base_url = f->st.url};
    assert_int_equal(mr_http_client_new(&o, &f->http, NULL), MR_OK);
    assert_int_equal(post(f, "/v1/chat/completions", body, NULL), 200);
    mr_http_client_free(f->http);
    f->http = http;
    size_t n = 0, connections = 0;
    assert_int_equal(mr_model_stub_connections(&f->st, &n, &connections, NULL), MR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(connections, 2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup_open, teardown)
#define KEYED(name) cmocka_unit_test_setup_teardown(name, setup_keyed, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_echo_answer),
        T(test_stream_events),
        T(test_paced_stream),
        KEYED(test_key_check),
        KEYED(test_models),
        T(test_validation),
        T(test_scripts),
        T(test_tool_call_script),
        T(test_router_rule),
        T(test_unknown_url),
        T(test_stop_ends_stalls),
        T(test_hold_until_released),
        T(test_requests_name_their_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
