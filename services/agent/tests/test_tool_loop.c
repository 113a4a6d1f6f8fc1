/* test_tool_loop.c -- the tool loop against the model stub over loopback: tool calls streamed as
 * OpenAI streams them, run side by side, their results sent back as `tool` messages answering
 * each tool_call_id, a failing call given to the model as an error, the round bound, and how
 * calls show in the answer (show_tool_calls). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_tools.h"
#include "mindroom/log.h"
#include "tool_model.h"

#define KEY "sk-tool-loop-0123456789"

typedef struct fixture {
    tool_model m;
    char dir[64];
    mr_strbuf text;              /* the answer as shown */
    int dones;
    bool show;                   /* show_tool_calls */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || tool_model_start(&f->m, KEY) != 0) {
        free(f);
        return -1;
    }
    f->show = true;
    snprintf(f->dir, sizeof f->dir, "/tmp/mr-tool-loop-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int rc = tool_model_stop(&f->m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    rc |= system(cmd);
    free(f->text.s);
    free(f);
    return rc;
}

static bool on_text(void *ctx, const char *text, size_t len)
{
    fixture *f = ctx;
    mr_strbuf_add(&f->text, text, len);
    return true;
}

/* Replaces the pending block, as the agent's answer does. */
static void on_done(void *ctx, const char *pending, const char *done)
{
    fixture *f = ctx;
    char *at = f->text.s ? strstr(f->text.s, pending) : NULL;
    assert_non_null(at);
    mr_strbuf b = {0};
    mr_strbuf_add(&b, f->text.s, (size_t)(at - f->text.s));
    mr_strbuf_puts(&b, done);
    mr_strbuf_puts(&b, at + strlen(pending));
    free(f->text.s);
    f->text = b;
    f->dones++;
}

static mr_code run(fixture *f, const char *tools_csv, int max_rounds, bool stream, mr_llm_response *out)
{
    const mr_tool_def *defs[8];
    size_t n = 0;
    char names[128];
    snprintf(names, sizeof names, "%s", tools_csv);
    for (char *save = NULL, *t = strtok_r(names, ",", &save); t; t = strtok_r(NULL, ",", &save))
        defs[n++] = mr_tools_find(t);
    mr_tools_env env = {.entity = "mind", .requester = "@alice:example.org", .room_id = "!r:example.org",
                        .data_dir = f->dir, .timeout_ms = 10000};
    tool_hooks hooks = {.on_text = on_text, .on_done = on_done, .ctx = f, .show = f->show};
    mr_llm_request req = {.role = "helper", .user = "remember tea and add a todo", .stream = stream};
    mr_err err = {0};
    mr_code rc = tool_loop_chat(f->m.c, &req, defs, n, &env, max_rounds, &hooks, out, &err);
    if (rc != MR_OK)
        fprintf(stderr, "tool_loop_chat: %s\n", err.msg);
    return rc;
}

static json_t *requests(fixture *f)
{
    json_t *r = NULL;
    mr_err err = {0};
    assert_int_equal(mr_model_stub_requests(&f->m.st, &r, &err), MR_OK);
    return r;
}

static json_t *body_at(json_t *reqs, size_t i)
{
    return json_object_get(json_array_get(reqs, i), "body");
}

/* The content of the message `back` places from the end of request i's messages (1: the last). */
static const char *content_from_end(json_t *reqs, size_t i, size_t back)
{
    json_t *msgs = json_object_get(body_at(reqs, i), "messages");
    size_t n = json_array_size(msgs);
    assert_true(n >= back);
    return json_string_value(json_object_get(json_array_get(msgs, n - back), "content"));
}

static void test_parallel_calls_and_results_back(void **state)
{
    fixture *f = *state;
    for (int stream = 1; stream >= 0; stream--) {
        assert_int_equal(mr_model_stub_reset(&f->m.st, NULL), MR_OK);
        free(f->text.s);
        f->text = (mr_strbuf){0};
        tool_model_script(&f->m, "{\"reply\":\"On it.\",\"tool_calls\":["
                                 "{\"id\":\"call_m\",\"name\":\"memory\",\"arguments\":"
                                 "{\"action\":\"add\",\"text\":\"likes tea\"}},"
                                 "{\"id\":\"call_t\",\"name\":\"todo\",\"arguments\":"
                                 "{\"action\":\"add\",\"text\":\"buy tea\"}}]}");
        mr_llm_response out;
        assert_int_equal(run(f, "memory,todo", 5, stream, &out), MR_OK);
        assert_int_equal(out.n_tool_calls, 0);
        json_t *reqs = requests(f);
        assert_int_equal(json_array_size(reqs), 2);
        /* The tools are offered as OpenAI functions with their schemas. */
        json_t *tools = json_object_get(body_at(reqs, 0), "tools");
        assert_int_equal(json_array_size(tools), 2);
        assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(tools, 0), "function"),
                                                              "name")),
                            "memory");
        /* Round two: the assistant turn with both calls, then a tool message for each id. */
        json_t *msgs = json_object_get(body_at(reqs, 1), "messages");
        size_t n = json_array_size(msgs);
        assert_true(n >= 4);
        json_t *asst = json_array_get(msgs, n - 3);
        assert_string_equal(json_string_value(json_object_get(asst, "role")), "assistant");
        assert_int_equal(json_array_size(json_object_get(asst, "tool_calls")), 2);
        json_t *t1 = json_array_get(msgs, n - 2), *t2 = json_array_get(msgs, n - 1);
        assert_string_equal(json_string_value(json_object_get(t1, "tool_call_id")), "call_m");
        assert_string_equal(json_string_value(json_object_get(t1, "content")), "Remembered as m1");
        assert_string_equal(json_string_value(json_object_get(t2, "tool_call_id")), "call_t");
        assert_non_null(strstr(json_string_value(json_object_get(t2, "content")), "- [ ] t1: buy tea"));
        /* The answer shows each call done, with its result, then the model's words. */
        assert_int_equal(f->dones, stream ? 2 : 4);
        assert_non_null(strstr(f->text.s, "On it.\n\n<tool>memory(action=add, text=likes tea)\nRemembered as "));
        assert_non_null(strstr(f->text.s, "\n\n<tool>todo(action=add, text=buy tea)\nAdded t1"));
        assert_non_null(strstr(f->text.s, "</tool>\nTool result: "));
        json_decref(reqs);
        mr_llm_response_clear(&out);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -f '%s/MEMORY.md' '%s/TODO.md'", f->dir, f->dir);
        assert_int_equal(system(cmd), 0);
    }
}

/* show_tool_calls: false: the calls still run, and the answer is the model's words alone. */
static void test_calls_hidden(void **state)
{
    fixture *f = *state;
    f->show = false;
    tool_model_script(&f->m, "{\"reply\":\"On it.\",\"tool_calls\":[{\"name\":\"todo\","
                             "\"arguments\":{\"action\":\"add\",\"text\":\"tea\"}}]}");
    mr_llm_response out;
    assert_int_equal(run(f, "todo", 5, true, &out), MR_OK);
    assert_null(strstr(f->text.s, "<tool>"));
    assert_int_equal(f->dones, 0);
    assert_true(strncmp(f->text.s, "On it.\n\nTool result: Added t1", 29) == 0);
    mr_llm_response_clear(&out);
}

static void test_failing_call_is_an_error_for_the_model(void **state)
{
    fixture *f = *state;
    tool_model_script(&f->m, "{\"tool_calls\":[{\"id\":\"call_x\",\"name\":\"todo\",\"arguments\":"
                             "\"{\\\"action\\\":\"},{\"id\":\"call_y\",\"name\":\"shell\","
                             "\"arguments\":{\"command\":\"ls\"}}]}");
    mr_llm_response out;
    assert_int_equal(run(f, "todo", 5, true, &out), MR_OK);
    json_t *reqs = requests(f);
    const char *bad_args = content_from_end(reqs, 1, 2);
    const char *not_given = content_from_end(reqs, 1, 1);
    assert_non_null(strstr(bad_args, "error: todo: the arguments must be a JSON object"));
    assert_string_equal(not_given, "error: there is no tool named 'shell'");
    assert_non_null(strstr(out.content, "Tool result: error: there is no tool named 'shell'"));
    json_decref(reqs);
    mr_llm_response_clear(&out);
}

/* A call that hangs and one that returns 10 MB, side by side: the model hears of the timeout and
 * gets the first bytes of the flood, and the round does not wait for the hanging one. */
static void test_timeout_and_flood(void **state)
{
    fixture *f = *state;
    tool_model_script(&f->m, "{\"tool_calls\":[{\"id\":\"call_slow\",\"name\":\"shell\",\"arguments\":"
                             "{\"command\":\"sleep 60\"}},{\"id\":\"call_big\",\"name\":\"shell\","
                             "\"arguments\":{\"command\":\"head -c 10485760 /dev/zero | tr '\\\\0' y\"}}]}");
    const mr_tool_def *defs[] = {mr_tools_find("shell")};
    mr_tools_env env = {.entity = "mind", .requester = "@alice:example.org", .data_dir = f->dir, .workspace = f->dir,
                        .timeout_ms = 2000, .max_output = 4096};
    tool_hooks hooks = {.on_text = on_text, .on_done = on_done, .ctx = f, .show = true};
    mr_llm_request req = {.user = "go", .stream = true};
    mr_llm_response out;
    mr_err err = {0};
    assert_int_equal(tool_loop_chat(f->m.c, &req, defs, 1, &env, 3, &hooks, &out, &err), MR_OK);
    json_t *reqs = requests(f);
    const char *slow = content_from_end(reqs, 1, 2);
    const char *big = content_from_end(reqs, 1, 1);
    assert_non_null(strstr(slow, "error: shell: the command did not finish in time and was killed"));
    assert_int_equal(strspn(big, "y"), 4096);
    assert_non_null(strstr(big, "[output cut at 4096 of "));
    assert_true(strlen(big) < 4200);
    assert_int_equal(f->dones, 2);
    json_decref(reqs);
    mr_llm_response_clear(&out);
}

static void test_round_bound(void **state)
{
    fixture *f = *state;
    tool_model_script(&f->m, "{\"times\":10,\"tool_calls\":[{\"name\":\"todo\","
                             "\"arguments\":{\"action\":\"list\"}}]}");
    mr_llm_response out;
    assert_int_equal(run(f, "todo", 2, true, &out), MR_OK);
    json_t *reqs = requests(f);
    /* Two rounds run, a third refused, then one last call that may not use tools. */
    assert_int_equal(json_array_size(reqs), 4);
    assert_null(json_object_get(body_at(reqs, 2), "tool_choice"));
    assert_string_equal(json_string_value(json_object_get(body_at(reqs, 3), "tool_choice")), "none");
    const char *refused = content_from_end(reqs, 3, 1);
    assert_non_null(strstr(refused, "not run: this answer has used its 2 rounds of tool calls"));
    assert_int_equal(out.n_tool_calls, 0);
    json_decref(reqs);
    mr_llm_response_clear(&out);
}

/* What tool_config_warn logs for cfg (YAML text) with dotenv: malloc'd. */
static char *warnings_for(const char *yaml, const mr_dotenv *dotenv)
{
    mr_config *cfg = NULL;
    mr_err err = {0};
    if (mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, NULL, &err) != MR_OK)
        fail_msg("config: %s", err.msg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    mr_log_configure(MR_LOG_WARN, MR_LOG_HUMAN, f);
    tool_config_warn(cfg, &(tool_settings){.max_rounds = 1}, dotenv);
    mr_log_configure(MR_LOG_WARN, MR_LOG_HUMAN, stderr);
    assert_int_equal(fclose(f), 0);
    mr_config_release(cfg);
    return text;
}

/* oauth_api without a provider, or a provider without its client secret, is named at start-up. */
static void test_oauth_api_start_up_warnings(void **state)
{
    (void)state;
    static const char base[] = "models: {default: {provider: openai, id: m}}\n"
                               "agents:\n  mind: {display_name: Mind, rooms: [lobby], tools: [oauth_api]}\n";
    static const char providers[] =
        "oauth_providers:\n"
        "  github: {authorize_url: \"https://github.example/a\", token_url: \"https://github.example/t\",\n"
        "           client_id: c, client_secret_env: MR_TEST_GH_SECRET,\n"
        "           api_base_url: \"https://api.github.example\"}\n"
        "  gitlab: {authorize_url: \"https://gitlab.example/a\", token_url: \"https://gitlab.example/t\",\n"
        "           client_id: c, api_base_url: \"https://gitlab.example/api\"}\n";
    char *w = warnings_for(base, NULL);
    assert_non_null(strstr(w, "agents.mind.tools lists oauth_api but config.yaml has no oauth_providers"));
    free(w);
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s%s", base, providers);
    unsetenv("MR_TEST_GH_SECRET");
    unsetenv("MINDROOM_OAUTH_GITLAB_CLIENT_SECRET");
    w = warnings_for(yaml, NULL);
    assert_non_null(strstr(w, "oauth_providers.github: its client secret MR_TEST_GH_SECRET is set neither"));
    assert_non_null(strstr(w, "oauth_providers.gitlab: its client secret MINDROOM_OAUTH_GITLAB_CLIENT_SECRET"));
    assert_null(strstr(w, "has no oauth_providers"));
    free(w);
    /* One secret in .env, the other in the environment: nothing to say. */
    mr_dotenv dotenv = {0};
    mr_err err = {0};
    assert_int_equal(mr_dotenv_parse("MR_TEST_GH_SECRET=s\n", 20, ".env", &dotenv, &err), MR_OK);
    setenv("MINDROOM_OAUTH_GITLAB_CLIENT_SECRET", "s", 1);
    w = warnings_for(yaml, &dotenv);
    assert_null(strstr(w, "oauth"));
    free(w);
    unsetenv("MINDROOM_OAUTH_GITLAB_CLIENT_SECRET");
    mr_dotenv_free(&dotenv);
    /* Nobody lists oauth_api: providers without secrets are upstream-auth's to report. */
    snprintf(yaml, sizeof yaml, "models: {default: {provider: openai, id: m}}\n"
             "agents:\n  mind: {display_name: Mind, rooms: [lobby]}\n%s", providers);
    w = warnings_for(yaml, NULL);
    assert_null(strstr(w, "oauth"));
    free(w);
}

static void test_show_blocks(void **state)
{
    (void)state;
    char *p = tool_show_pending("matrix_message", "{\"text\":\"ping @bob:x <b>\",\"n\":[1,2]}");
    assert_string_equal(p, "<tool>matrix_message(text=ping @\xe2\x80\x8b" "bob:x &lt;b&gt;, n=[1,2])</tool>");
    free(p);
    p = tool_show_pending("now", "{}");
    assert_string_equal(p, "<tool>now()</tool>");
    free(p);
    char big[700];
    memset(big, 'r', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    p = tool_show_done("now", "", big);
    /* Results are cut to 500 characters, the last an ellipsis. */
    assert_int_equal(strlen(p), strlen("<tool>now()\n") + 499 + 3 + strlen("</tool>"));
    assert_non_null(strstr(p, "rrr\xe2\x80\xa6</tool>"));
    free(p);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    mr_log_configure(MR_LOG_WARN, MR_LOG_HUMAN, stderr);
    const struct CMUnitTest tests[] = {
        T(test_parallel_calls_and_results_back),
        T(test_calls_hidden),
        T(test_failing_call_is_an_error_for_the_model),
        T(test_timeout_and_flood),
        T(test_round_bound),
        cmocka_unit_test(test_show_blocks),
        cmocka_unit_test(test_oauth_api_start_up_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
