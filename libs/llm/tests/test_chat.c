/* test_chat.c -- mr_llm_chat against the model-provider stub over loopback: answers whole and
 * streamed, tool calls, structured output, the prompt as sent, errors, retries, timeouts,
 * cancellation, the base URL from OPENAI_BASE_URL, the models list, and the API key kept out of
 * errors and logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/llm.h"
#include "mindroom/log.h"
#include "model_stub_peer.h"
#include "peers.h"

#define KEY "sk-test-4f9a0c1b2d3e5f6a7b8c"
#define KEY_ENV "MR_TEST_LLM_KEY"

typedef struct fixture {
    mr_model_stub st;
    mr_model_cfg model;
    mr_llm_client *c;
    FILE *log;           /* everything the library logs */
} fixture;

/* A client for the stub with these options (fast retries unless they say otherwise). */
static void client(fixture *f, mr_llm_opts o)
{
    mr_llm_client_free(f->c);
    f->c = NULL;
    if (!o.backoff_ms)
        o.backoff_ms = 10;
    mr_err err = {0};
    if (mr_llm_client_new(&f->model, &o, &f->c, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mr_err err = {0};
    if (mr_model_stub_start(KEY, NULL, &f->st, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    setenv(KEY_ENV, KEY, 1);
    f->model = (mr_model_cfg){.name = "default", .provider = "openai", .id = "stub-model",
                              .host = f->st.url, .api_key_env = KEY_ENV, .temperature = -1};
    f->log = tmpfile();
    mr_log_configure(MR_LOG_DEBUG, MR_LOG_HUMAN, f->log);
    client(f, (mr_llm_opts){0});
    *state = f;
    return 0;
}

/* What the library logged so far. */
static void log_text(fixture *f, char *buf, size_t cap)
{
    fflush(f->log);
    rewind(f->log);
    size_t n = fread(buf, 1, cap - 1, f->log);
    buf[n] = '\0';
    fseek(f->log, 0, SEEK_END);
}

/* Fails when the log holds the key: checked after every test. */
static int teardown(void **state)
{
    fixture *f = *state;
    mr_log_configure(MR_LOG_INFO, MR_LOG_HUMAN, stderr);
    char buf[65536];
    log_text(f, buf, sizeof buf);
    fclose(f->log);
    bool leaked = strstr(buf, KEY) != NULL;
    mr_llm_client_free(f->c);
    mr_err err = {0};
    mr_code rc = mr_model_stub_stop(&f->st, &err);
    if (rc != MR_OK)
        fprintf(stderr, "%s\n", err.msg);
    free(f);
    if (leaked)
        fprintf(stderr, "the API key reached the log:\n%s\n", buf);
    return rc == MR_OK && !leaked ? 0 : -1;
}

static void script(fixture *f, const char *json_text)
{
    mr_err err = {0};
    if (mr_model_stub_script(&f->st, json_text, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

static json_t *requests(fixture *f)
{
    json_t *r = NULL;
    assert_int_equal(mr_model_stub_requests(&f->st, &r, NULL), MR_OK);
    return r;
}

static size_t request_count(fixture *f)
{
    json_t *r = requests(f);
    size_t n = json_array_size(r);
    json_decref(r);
    return n;
}

/* The error message must never carry the key. */
static mr_code chat(fixture *f, const mr_llm_request *req, mr_llm_response *out, mr_err *err)
{
    mr_code rc = mr_llm_chat(f->c, req, out, err);
    assert_null(strstr(err->msg, KEY));
    return rc;
}

/* Text pieces as on_delta saw them. */
typedef struct deltas {
    char text[1024];
    int n;
    int cancel_at;   /* return false on this call; 0: never */
} deltas;

static bool on_delta(void *ctx, const char *text, size_t len)
{
    deltas *d = ctx;
    assert_true(len > 0);
    assert_int_equal(strlen(text), len);
    strncat(d->text, text, sizeof d->text - strlen(d->text) - 1);
    return ++d->n != d->cancel_at;
}

static void test_whole_answer(void **state)
{
    fixture *f = *state;
    mr_llm_request req = {.user = "hello there"};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: hello there");
    assert_string_equal(out.finish_reason, "stop");
    assert_string_equal(out.model, "stub-model");
    assert_string_equal(out.id, "chatcmpl-stub1");
    assert_int_equal(out.n_tool_calls, 0);
    assert_true(out.has_usage);
    assert_int_equal(out.usage.prompt_tokens, 2);
    assert_int_equal(out.usage.completion_tokens, 3);
    assert_int_equal(out.usage.total_tokens, 5);
    assert_int_equal(out.attempts, 1);
    assert_false(out.cancelled);
    mr_llm_response_clear(&out);
}

static void test_streamed_answer(void **state)
{
    fixture *f = *state;
    deltas d = {0};
    mr_llm_request req = {.user = "stream this reply please", .stream = true,
                          .on_delta = on_delta, .delta_ctx = &d};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: stream this reply please");
    assert_string_equal(d.text, out.content);
    assert_int_equal(d.n, 5);   /* one piece per word */
    assert_string_equal(out.finish_reason, "stop");
    assert_true(out.has_usage);
    assert_int_equal(out.usage.completion_tokens, 5);
    assert_string_equal(out.id, "chatcmpl-stub1");
    mr_llm_response_clear(&out);
    json_t *r = requests(f);
    json_t *body = json_object_get(json_array_get(r, 0), "body");
    assert_true(json_is_true(json_object_get(body, "stream")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "auth")), "valid");
    json_decref(r);
}

/* A client's calls, streamed or not and after a provider's error answer, go over one kept-alive
 * connection: the stub names each request's connection by the client's port. */
static void test_calls_reuse_one_connection(void **state)
{
    fixture *f = *state;
    mr_llm_response out;
    mr_err err = {0};
    deltas d = {0};
    mr_llm_request streamed = {.user = "one", .stream = true, .on_delta = on_delta, .delta_ctx = &d};
    assert_int_equal(chat(f, &streamed, &out, &err), MR_OK);
    mr_llm_response_clear(&out);
    mr_llm_request whole = {.user = "two"};
    assert_int_equal(chat(f, &whole, &out, &err), MR_OK);
    mr_llm_response_clear(&out);
    script(f, "{\"error\": {\"status\": 400, \"message\": \"bad\"}}");
    assert_int_equal(chat(f, &whole, &out, &err), MR_EINVAL);
    mr_llm_response_clear(&out);
    assert_int_equal(chat(f, &streamed, &out, &err), MR_OK);
    mr_llm_response_clear(&out);
    size_t n = 0, connections = 0;
    assert_int_equal(mr_model_stub_connections(&f->st, &n, &connections, NULL), MR_OK);
    assert_int_equal(n, 4);
    assert_int_equal(connections, 1);
}

/* What on_sent saw: how often it came, and the text on_delta had by then. */
typedef struct sent_seen {
    fixture *f;
    deltas *d;
    int calls;
    int deltas_before;
    bool release;        /* let the held answer go, which only a request that is out awaits */
} sent_seen;

static void on_sent(void *ctx)
{
    sent_seen *s = ctx;
    s->calls++;
    s->deltas_before += s->d->n;
    if (s->release)
        assert_int_equal(mr_model_stub_release(&s->f->st, NULL), MR_OK);
}

/* on_sent comes while the model works: the stub holds the answer until on_sent releases it, so
 * a hook called only after the answer (or never) would leave the call to time out. It comes
 * before any text, and once for each attempt. */
static void test_on_sent_while_the_model_works(void **state)
{
    fixture *f = *state;
    client(f, (mr_llm_opts){.timeout_ms = 10000, .max_attempts = 1});
    script(f, "{\"hold\": true}");
    deltas d = {0};
    sent_seen seen = {.f = f, .d = &d, .release = true};
    mr_llm_request req = {.user = "held for a while", .stream = true, .on_delta = on_delta, .delta_ctx = &d,
                          .on_sent = on_sent, .sent_ctx = &seen};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: held for a while");
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.deltas_before, 0);
    mr_llm_response_clear(&out);

    client(f, (mr_llm_opts){0});
    script(f, "{\"error\": {\"status\": 503}}");
    sent_seen again = {.f = f, .d = &d};
    mr_llm_request whole = {.user = "hi", .on_sent = on_sent, .sent_ctx = &again};
    assert_int_equal(chat(f, &whole, &out, &err), MR_OK);
    assert_int_equal(out.attempts, 2);
    assert_int_equal(again.calls, 2);
    mr_llm_response_clear(&out);
}

static void test_tool_calls(void **state)
{
    fixture *f = *state;
    script(f, "{\"times\":2,\"reply\":\"Let me check.\",\"tool_calls\":["
              "{\"id\":\"call_a\",\"name\":\"weather\",\"arguments\":{\"city\":\"Zürich\","
              "\"days\":3}},{\"id\":\"call_b\",\"name\":\"time\",\"arguments\":\"{}\"}]}");
    for (int stream = 0; stream < 2; stream++) {
        mr_llm_request req = {.user = "weather?", .stream = stream};
        mr_llm_response out;
        mr_err err = {0};
        assert_int_equal(chat(f, &req, &out, &err), MR_OK);
        assert_string_equal(out.content, "Let me check.");
        assert_string_equal(out.finish_reason, "tool_calls");
        assert_int_equal(out.n_tool_calls, 2);
        assert_string_equal(out.tool_calls[0].id, "call_a");
        assert_string_equal(out.tool_calls[0].name, "weather");
        /* Streamed, these arrive in seven-byte pieces. */
        assert_string_equal(out.tool_calls[0].arguments, "{\"city\":\"Zürich\",\"days\":3}");
        assert_string_equal(out.tool_calls[1].id, "call_b");
        assert_string_equal(out.tool_calls[1].name, "time");
        assert_string_equal(out.tool_calls[1].arguments, "{}");
        mr_llm_response_clear(&out);
    }
}

/* The stub checks tools as OpenAI does, and honours tool_choice "none". */
static void test_tool_choice_and_tool_names(void **state)
{
    fixture *f = *state;
    mr_llm_tool tools[] = {{.name = "weather"}};
    script(f, "{\"tool_calls\":[{\"name\":\"weather\",\"arguments\":{}}]}");
    mr_llm_request req = {.user = "weather?", .tools = tools, .n_tools = 1, .tool_choice = "none", .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_int_equal(out.n_tool_calls, 0);
    assert_string_equal(out.finish_reason, "stop");
    assert_string_equal(out.content, "Echo: weather?");
    mr_llm_response_clear(&out);
    req.tool_choice = "sometimes";
    assert_int_equal(chat(f, &req, &out, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "Supported values are: 'none', 'auto', and 'required'."));
    mr_llm_response_clear(&out);
    tools[0].name = "get weather";
    req.tool_choice = NULL;
    assert_int_equal(chat(f, &req, &out, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "tools[0].function.name"));
    mr_llm_response_clear(&out);
}

static void test_structured_answer(void **state)
{
    fixture *f = *state;
    json_t *schema = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:[s, s], s:b}", "type", "object",
                               "properties", "entity_name", "type", "string", "reasoning",
                               "type", "string", "required", "entity_name", "reasoning",
                               "additionalProperties", 0);
    mr_llm_request req = {.role = "Router", .context = "Agents in this room:\n- coder: writes "
                          "code\n- mind: general help", .user = "my build fails",
                          .schema_name = "route", .schema = schema, .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_non_null(out.json);
    assert_string_equal(json_string_value(json_object_get(out.json, "entity_name")), "coder");
    assert_true(json_is_string(json_object_get(out.json, "reasoning")));
    mr_llm_response_clear(&out);

    /* A model answering prose where JSON was asked for is an error. */
    script(f, "{\"reply\":\"I think coder.\"}");
    assert_int_equal(chat(f, &req, &out, &err), MR_EINVAL);
    char want[256];
    snprintf(want, sizeof want, "model default: POST %s: the answer is not JSON for schema "
             "route (", mr_llm_client_url(f->c));
    assert_memory_equal(err.msg, want, strlen(want));
    assert_string_equal(out.content, "I think coder.");
    mr_llm_response_clear(&out);
    json_decref(schema);
}

static void test_prompt_as_sent(void **state)
{
    fixture *f = *state;
    static const char *const instructions[] = {"Answer in English."};
    mr_llm_message history[] = {
        {.role = MR_LLM_USER, .content = "@alice: what is 2+2?"},
        {.role = MR_LLM_ASSISTANT, .content = "4"},
    };
    mr_llm_request req = {.role = "Math tutor", .instructions = instructions,
                          .n_instructions = 1, .history = history, .n_history = 2,
                          .user = "@alice: and 3+3?", .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: @alice: and 3+3?");
    mr_llm_response_clear(&out);
    json_t *r = requests(f);
    json_t *msgs = json_object_get(json_object_get(json_array_get(r, 0), "body"), "messages");
    assert_int_equal(json_array_size(msgs), 4);
    static const char *const roles[] = {"system", "user", "assistant", "user"};
    static const char *const texts[] = {
        ("<your_role>\nMath tutor\n</your_role>\n\n<instructions>\n- Answer in English.\n"
         "</instructions>"),
        "@alice: what is 2+2?", "4", "@alice: and 3+3?"};
    for (size_t i = 0; i < 4; i++) {
        json_t *m = json_array_get(msgs, i);
        assert_string_equal(json_string_value(json_object_get(m, "role")), roles[i]);
        assert_string_equal(json_string_value(json_object_get(m, "content")), texts[i]);
    }
    json_decref(r);
}

static void test_wrong_key(void **state)
{
    fixture *f = *state;
    setenv(KEY_ENV, "sk-wrong-1111222233334444", 1);
    client(f, (mr_llm_opts){0});
    mr_llm_request req = {.user = "hi"};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_EAUTH);
    char want[400];
    snprintf(want, sizeof want, "model default: POST %s: HTTP 401: Incorrect API key provided: "
             "sk-****4444. You can find your API key at "
             "https://platform.openai.com/account/api-keys. (invalid_api_key)", mr_llm_client_url(f->c));
    assert_string_equal(err.msg, want);
    assert_null(strstr(err.msg, "sk-wrong"));
    assert_int_equal(out.attempts, 1);
    mr_llm_response_clear(&out);
}

static void test_key_echoed_by_server_is_masked(void **state)
{
    fixture *f = *state;
    script(f, "{\"error\":{\"status\":403,\"message\":\"key " KEY " may not use this model\"}}");
    mr_llm_request req = {.user = "hi"};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_EPERM);
    assert_non_null(strstr(err.msg, "HTTP 403: key [redacted] may not use this model "
                                    "(unsupported_country_region_territory)"));
    mr_llm_response_clear(&out);
}

static void test_429_waits_then_succeeds(void **state)
{
    fixture *f = *state;
    script(f, "{\"error\":{\"status\":429,\"retry_after\":1}}");
    mr_llm_request req = {.user = "hi", .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: hi");
    assert_int_equal(out.attempts, 2);
    assert_int_equal(request_count(f), 2);
    mr_llm_response_clear(&out);
    /* The wait was the server's (1 s), not the client's backoff (10 ms). */
    char log[4096];
    log_text(f, log, sizeof log);
    assert_non_null(strstr(log, "(rate_limit_exceeded); retrying in 1000 ms (attempt 2 of 4)"));
}

static void test_5xx_retried(void **state)
{
    fixture *f = *state;
    script(f, "[{\"error\":{\"status\":500}},{\"error\":{\"status\":503}}]");
    mr_llm_request req = {.user = "hi"};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: hi");
    assert_int_equal(out.attempts, 3);
    mr_llm_response_clear(&out);
    char log[4096];
    log_text(f, log, sizeof log);
    assert_non_null(strstr(log, "HTTP 500: The server had an error while processing your "
                                "request. Sorry about that! (server_error); retrying in 10 ms "
                                "(attempt 2 of 4)"));
    assert_non_null(strstr(log, "(server_error); retrying in 20 ms (attempt 3 of 4)"));

    /* When every attempt fails, the last error says how many there were. */
    client(f, (mr_llm_opts){.max_attempts = 2});
    script(f, "{\"times\":2,\"error\":{\"status\":503}}");
    assert_int_equal(chat(f, &req, &out, &err), MR_EUNAVAIL);
    char want[300];
    snprintf(want, sizeof want, "model default: POST %s: HTTP 503: The engine is currently "
             "overloaded, please try again later. (server_error) (after 2 attempts)",
             mr_llm_client_url(f->c));
    assert_string_equal(err.msg, want);
    assert_int_equal(out.attempts, 2);
    assert_int_equal(request_count(f), 5);
    mr_llm_response_clear(&out);
}

static void test_4xx_not_retried(void **state)
{
    fixture *f = *state;
    script(f, "{\"error\":{\"status\":400,\"message\":\"Invalid 'messages[0].content': string "
              "too long.\",\"param\":\"messages[0].content\",\"code\":\"string_above_max_length\"}}");
    mr_llm_request req = {.user = "hi"};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "HTTP 400: Invalid 'messages[0].content': string "
                                    "too long. (string_above_max_length)"));
    assert_int_equal(out.attempts, 1);
    assert_int_equal(request_count(f), 1);
    mr_llm_response_clear(&out);

    /* The stub's own model check: a 404, not retried either. */
    f->model.id = "gpt-none";
    assert_int_equal(mr_model_stub_stop(&f->st, NULL), MR_OK);
    static const char *const models[] = {"stub-model", NULL};
    assert_int_equal(mr_model_stub_start(KEY, models, &f->st, NULL), MR_OK);
    f->model.host = f->st.url;
    client(f, (mr_llm_opts){0});
    assert_int_equal(chat(f, &req, &out, &err), MR_ENOTFOUND);
    assert_non_null(strstr(err.msg, "HTTP 404: The model `gpt-none` does not exist or you "
                                    "do not have access to it. (model_not_found)"));
    assert_int_equal(out.attempts, 1);
    mr_llm_response_clear(&out);
}

static void test_stall_times_out(void **state)
{
    fixture *f = *state;
    client(f, (mr_llm_opts){.stall_timeout_ms = 300, .max_attempts = 2});
    /* The first event (the role, no text) comes, then nothing: both attempts stall. */
    script(f, "{\"times\":2,\"stall_ms\":20000,\"stall_after_chunks\":1}");
    mr_llm_request req = {.user = "hi", .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_EUNAVAIL);
    char want[300];
    snprintf(want, sizeof want, "model default: POST %s: no data for 300 ms (stall timeout) "
             "(after 2 attempts)", mr_llm_client_url(f->c));
    assert_string_equal(err.msg, want);
    assert_int_equal(out.attempts, 2);
    mr_llm_response_clear(&out);
}

static void test_stall_after_text_is_not_retried(void **state)
{
    fixture *f = *state;
    client(f, (mr_llm_opts){.stall_timeout_ms = 300});
    script(f, "{\"stall_ms\":20000,\"stall_after_chunks\":3}");
    deltas d = {0};
    mr_llm_request req = {.user = "one two three", .stream = true, .on_delta = on_delta,
                          .delta_ctx = &d};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "no data for 300 ms (stall timeout)"));
    assert_int_equal(out.attempts, 1);
    assert_string_equal(d.text, "Echo: one");
    assert_string_equal(out.content, "Echo: one");
    mr_llm_response_clear(&out);
}

static void test_overall_timeout(void **state)
{
    fixture *f = *state;
    client(f, (mr_llm_opts){.timeout_ms = 500});
    script(f, "{\"stall_ms\":20000}");
    mr_llm_request req = {.user = "hi"};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_EUNAVAIL);
    char want[300];
    snprintf(want, sizeof want, "model default: POST %s: no complete answer within 500 ms "
             "(timeout)", mr_llm_client_url(f->c));
    assert_string_equal(err.msg, want);
    mr_llm_response_clear(&out);
}

static void test_cut_stream_retried(void **state)
{
    fixture *f = *state;
    script(f, "{\"stall_ms\":1,\"stall_after_chunks\":1,\"close_after_stall\":true}");
    mr_llm_request req = {.user = "again", .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: again");
    assert_int_equal(out.attempts, 2);
    mr_llm_response_clear(&out);
}

static void test_connection_refused(void **state)
{
    fixture *f = *state;
    int port = 0;
    assert_int_equal(mr_tp_free_port(&port, NULL), MR_OK);
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", port);
    f->model.host = host;
    client(f, (mr_llm_opts){.max_attempts = 3});
    mr_llm_request req = {.user = "hi", .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_EUNAVAIL);
    char want[128];
    snprintf(want, sizeof want, "model default: POST http://127.0.0.1:%d/v1/chat/completions: ",
             port);
    assert_memory_equal(err.msg, want, strlen(want));
    assert_non_null(strstr(err.msg, "(after 3 attempts)"));
    assert_int_equal(out.attempts, 3);
    mr_llm_response_clear(&out);
    f->model.host = f->st.url;
}

static void test_cancel(void **state)
{
    fixture *f = *state;
    deltas d = {.cancel_at = 2};
    mr_llm_request req = {.user = "a b c d e f", .stream = true, .on_delta = on_delta,
                          .delta_ctx = &d};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_true(out.cancelled);
    assert_int_equal(d.n, 2);
    assert_string_equal(out.content, "Echo: a");
    assert_int_equal(out.attempts, 1);
    mr_llm_response_clear(&out);
}

/* Ticks seen while the stream said nothing after the text in d; false cancels on the second. */
typedef struct quiet {
    deltas d;
    int ticks_after_text;
} quiet;

static bool on_quiet_tick(void *ctx)
{
    quiet *q = ctx;
    if (strcmp(q->d.text, "Echo: one") == 0)
        q->ticks_after_text++;
    return q->ticks_after_text < 2;
}

static bool on_quiet_delta(void *ctx, const char *text, size_t len)
{
    return on_delta(&((quiet *)ctx)->d, text, len);
}

/* A stalled stream still ticks, so its caller can show what came; a tick's false cancels the
 * call at once rather than after the stall. */
static void test_tick_while_stalled(void **state)
{
    fixture *f = *state;
    script(f, "{\"stall_ms\":60000,\"stall_after_chunks\":3}");
    quiet q = {0};
    mr_llm_request req = {.user = "one two three", .stream = true, .on_delta = on_quiet_delta,
                          .on_tick = on_quiet_tick, .delta_ctx = &q};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_true(out.cancelled);
    assert_int_equal(q.ticks_after_text, 2);
    assert_string_equal(out.content, "Echo: one");
    assert_int_equal(out.attempts, 1);
    mr_llm_response_clear(&out);
}

static void test_error_inside_stream(void **state)
{
    fixture *f = *state;
    /* Before any text: tried again, and the second attempt answers. */
    script(f, "{\"error\":{\"status\":500,\"after_chunks\":1}}");
    deltas d = {0};
    mr_llm_request req = {.user = "hi there", .stream = true, .on_delta = on_delta,
                          .delta_ctx = &d};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_int_equal(out.attempts, 2);
    assert_string_equal(d.text, "Echo: hi there");
    mr_llm_response_clear(&out);

    /* After text: the error stands, with what came before it. */
    memset(&d, 0, sizeof d);
    script(f, "{\"error\":{\"status\":500,\"after_chunks\":2}}");
    assert_int_equal(chat(f, &req, &out, &err), MR_EUNAVAIL);
    char want[300];
    snprintf(want, sizeof want, "model default: POST %s: the stream reported an error: "
             "The server had an error while processing your request. Sorry about that! "
             "(server_error)", mr_llm_client_url(f->c));
    assert_string_equal(err.msg, want);
    assert_int_equal(out.attempts, 1);
    assert_string_equal(out.content, "Echo:");
    assert_string_equal(d.text, "Echo:");
    mr_llm_response_clear(&out);
}


/* Without `host:`, OPENAI_BASE_URL places the model; `host:` still wins over it. */
static void test_base_url_from_environment(void **state)
{
    fixture *f = *state;
    f->model.host = NULL;
    setenv("OPENAI_BASE_URL", f->st.url, 1);
    client(f, (mr_llm_opts){0});
    char want[128];
    snprintf(want, sizeof want, "%s/v1", f->st.url);
    assert_string_equal(mr_llm_client_base_url(f->c), want);
    mr_llm_request req = {.user = "via the variable"};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    assert_string_equal(out.content, "Echo: via the variable");
    mr_llm_response_clear(&out);
    assert_int_equal(request_count(f), 1);

    int port = 0;
    assert_int_equal(mr_tp_free_port(&port, NULL), MR_OK);
    char nowhere[64];
    snprintf(nowhere, sizeof nowhere, "http://127.0.0.1:%d/v1/", port);
    setenv("OPENAI_BASE_URL", nowhere, 1);
    f->model.host = f->st.url;
    client(f, (mr_llm_opts){0});
    assert_string_equal(mr_llm_client_base_url(f->c), want);
    assert_int_equal(chat(f, &req, &out, &err), MR_OK);
    mr_llm_response_clear(&out);
    assert_int_equal(request_count(f), 2);

    /* Empty counts as unset: the provider's default. */
    f->model.host = NULL;
    setenv("OPENAI_BASE_URL", "", 1);
    client(f, (mr_llm_opts){0});
    assert_string_equal(mr_llm_client_url(f->c), "https://api.openai.com/v1/chat/completions");
    unsetenv("OPENAI_BASE_URL");
    f->model.host = f->st.url;
}

static void test_bad_base_url_variable_is_named(void **state)
{
    fixture *f = *state;
    f->model.host = NULL;
    setenv("OPENAI_BASE_URL", "localhost:4000", 1);
    mr_llm_client *c = NULL;
    mr_err err = {0};
    assert_int_equal(mr_llm_client_new(&f->model, NULL, &c, &err), MR_EINVAL);
    assert_null(c);
    assert_string_equal(err.msg, "model default: OPENAI_BASE_URL \"localhost:4000\" must be an "
                                 "http:// or https:// URL");
    unsetenv("OPENAI_BASE_URL");
    f->model.host = f->st.url;
}

static void test_models_list(void **state)
{
    fixture *f = *state;
    json_t *ids = NULL;
    mr_err err = {0};
    assert_int_equal(mr_llm_models(f->c, &ids, &err), MR_OK);
    assert_int_equal(json_array_size(ids), 1);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "stub-model");
    json_decref(ids);

    setenv(KEY_ENV, "sk-wrong-1111222233334444", 1);
    client(f, (mr_llm_opts){0});
    assert_int_equal(mr_llm_models(f->c, &ids, &err), MR_EAUTH);
    assert_null(ids);
    char want[200];
    snprintf(want, sizeof want, "model default: GET %s/v1/models: HTTP 401: Incorrect API key "
             "provided: sk-****4444.", f->st.url);
    assert_memory_equal(err.msg, want, strlen(want));
    assert_null(strstr(err.msg, "sk-wrong"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_whole_answer),
        T(test_streamed_answer),
        T(test_calls_reuse_one_connection),
        T(test_on_sent_while_the_model_works),
        T(test_tool_calls),
        T(test_tool_choice_and_tool_names),
        T(test_structured_answer),
        T(test_prompt_as_sent),
        T(test_wrong_key),
        T(test_key_echoed_by_server_is_masked),
        T(test_429_waits_then_succeeds),
        T(test_5xx_retried),
        T(test_4xx_not_retried),
        T(test_stall_times_out),
        T(test_stall_after_text_is_not_retried),
        T(test_overall_timeout),
        T(test_cut_stream_retried),
        T(test_connection_refused),
        T(test_cancel),
        T(test_tick_while_stalled),
        T(test_error_inside_stream),
        T(test_base_url_from_environment),
        T(test_bad_base_url_variable_is_named),
        T(test_models_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
