/* test_tool_mcp.c -- MCP servers in the tool loop, against the published reference server
 * (@modelcontextprotocol/server-everything, run with Node.js) and the model stub: an agent that
 * names the server is offered its tools as "<server>__<tool>", the model's calls reach the
 * server and the results reach the model; a server killed mid-call is an error for the model and
 * is restarted for the next turn; "${NAME}" values read at start, an unset one named. SKIPPED
 * without node or the package (`make deps` installs it). */
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_tools.h"
#include "mindroom/clock.h"
#include "mindroom/log.h"
#include "tool_model.h"
#include "peers.h"

#define KEY "sk-tool-mcp-0123456789"

static const char *g_entry;

typedef struct fixture {
    tool_model m;
    mr_config *cfg;
    mcp_hub *hub;
    mr_strbuf text;
} fixture;

static const char *from_env(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static mr_config *config_with(const char *env_line)
{
    char text[1024];
    snprintf(text, sizeof text,
             "models:\n  default: {provider: openai, id: m}\n"
             "agents:\n  mind:\n    display_name: Mind\n    tools: [everything, todo]\n"
             "mcp_servers:\n  everything:\n    command: node\n    args: [\"%s\", stdio]\n"
             "    env: {%s}\n    timeout_seconds: 20\n",
             g_entry, env_line);
    mr_config *cfg = NULL;
    mr_err err = {0};
    if (mr_config_parse(text, strlen(text), "config.yaml", &cfg, NULL, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return cfg;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || tool_model_start(&f->m, KEY) != 0) {
        free(f);
        return -1;
    }
    mr_err err = {0};
    setenv("MR_TEST_MCP_GREETING", "hello from .env", 1);
    f->cfg = config_with("MCP_GREETING: \"${MR_TEST_MCP_GREETING}\"");
    if (mcp_hub_new(f->cfg, "/tmp", from_env, NULL, &f->hub, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mcp_hub_free(f->hub);
    mr_config_release(f->cfg);
    int rc = tool_model_stop(&f->m);
    free(f->text.s);
    free(f);
    /* Freeing the hub ended the server. */
    return rc | (mr_tp_child_running("index.js stdio") != 0);
}

static bool on_text(void *ctx, const char *text, size_t len)
{
    fixture *f = ctx;
    mr_strbuf_add(&f->text, text, len);
    return true;
}

static void on_done(void *ctx, const char *pending, const char *done)
{
    (void)ctx, (void)pending, (void)done;
}

/* The agent's tools as answer_tools.c gathers them: built-in, then its MCP servers'. */
static size_t agent_defs(fixture *f, const mr_tool_def **defs)
{
    const mr_agent_cfg *a = &f->cfg->agents[0];
    tool_settings ts = {.timeout_ms = 20000, .max_output = 16000, .max_rounds = 5};
    size_t n = tool_defs_for(f->cfg, a, &ts, defs, TOOLS_PER_AGENT_MAX);
    return mcp_hub_defs(f->hub, &a->tools, defs, n, TOOLS_PER_AGENT_MAX);
}

static const mr_tool_def *def_named(const mr_tool_def **defs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(defs[i]->name, name) == 0)
            return defs[i];
    return NULL;
}

/* One answer: the model stub plays script, the tools run for @alice. */
static json_t *turn(fixture *f, const char *script, mr_llm_response *out)
{
    assert_int_equal(mr_model_stub_reset(&f->m.st, NULL), MR_OK);
    tool_model_script(&f->m, script);
    const mr_tool_def *defs[TOOLS_PER_AGENT_MAX];
    size_t n = agent_defs(f, defs);
    char dir[] = "/tmp/mr-tool-mcp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    mr_tools_env env = {.entity = "mind", .requester = "@alice:example.org", .room_id = "!r:example.org",
                        .data_dir = dir, .timeout_ms = 20000};
    tool_hooks hooks = {.on_text = on_text, .on_done = on_done, .ctx = f, .show = true};
    mr_llm_request req = {.role = "helper", .user = "use the tools", .stream = true};
    mr_err err = {0};
    if (tool_loop_chat(f->m.c, &req, defs, n, &env, 5, &hooks, out, &err) != MR_OK)
        fail_msg("tool_loop_chat: %s", err.msg);
    mr_tp_cleanup_dir(dir);
    json_t *r = NULL;
    assert_int_equal(mr_model_stub_requests(&f->m.st, &r, &err), MR_OK);
    return r;
}

/* The content of the tool message answering id in the last request. */
static const char *tool_result(json_t *reqs, const char *id)
{
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, json_array_size(reqs) - 1), "body"),
                                   "messages");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *tid = json_string_value(json_object_get(m, "tool_call_id"));
        if (tid && strcmp(tid, id) == 0)
            return json_string_value(json_object_get(m, "content"));
    }
    fail_msg("no tool message answers %s", id);
    return NULL;
}

static void test_tools_offered_and_called(void **state)
{
    fixture *f = *state;
    const mr_tool_def *defs[TOOLS_PER_AGENT_MAX];
    size_t n = agent_defs(f, defs);
    /* todo (built in), then the server's tools under valid function names. */
    assert_string_equal(defs[0]->name, "todo");
    const mr_tool_def *echo = def_named(defs, n, "everything__echo");
    assert_non_null(echo);
    assert_non_null(def_named(defs, n, "everything__get-sum"));
    assert_non_null(echo->description);
    json_t *schema = json_loads(echo->parameters, 0, NULL);
    assert_non_null(json_object_get(json_object_get(schema, "properties"), "message"));
    json_decref(schema);

    /* Each call is logged with the person it runs for. */
    char *log = NULL;
    size_t log_len = 0;
    FILE *log_f = open_memstream(&log, &log_len);
    assert_non_null(log_f);
    mr_log_configure(MR_LOG_INFO, MR_LOG_HUMAN, log_f);
    mr_llm_response out;
    json_t *reqs = turn(f,
                        "{\"reply\":\"Checking.\",\"tool_calls\":["
                        "{\"id\":\"call_e\",\"name\":\"everything__echo\",\"arguments\":{\"message\":\"h\xc3\xa9llo\"}},"
                        "{\"id\":\"call_s\",\"name\":\"everything__get-sum\",\"arguments\":{\"a\":2,\"b\":40}},"
                        "{\"id\":\"call_v\",\"name\":\"everything__get-env\",\"arguments\":{}}]}",
                        &out);
    mr_log_configure(MR_LOG_WARN, MR_LOG_HUMAN, stderr);
    fclose(log_f);
    assert_non_null(strstr(log, "MCP tool call entity=mind requester=@alice:example.org mcp_server=everything "
                                "mcp_tool=echo"));
    free(log);
    /* The model was offered the server's tools with their schemas. */
    json_t *tools = json_object_get(json_object_get(json_array_get(reqs, 0), "body"), "tools");
    bool offered = false;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) offered |=
        strcmp(json_string_value(json_object_get(json_object_get(t, "function"), "name")), "everything__echo") == 0;
    assert_true(offered);
    assert_string_equal(tool_result(reqs, "call_e"), "Echo: h\xc3\xa9llo");
    assert_non_null(strstr(tool_result(reqs, "call_s"), "42"));
    /* "${MR_TEST_MCP_GREETING}" was read from the environment for the server. */
    assert_non_null(strstr(tool_result(reqs, "call_v"), "hello from .env"));
    /* The answer shows the calls as the built-in tools' are shown. */
    assert_non_null(strstr(f->text.s, "Checking.\n\n<tool>everything__echo(message=h\xc3\xa9llo)</tool>"));
    assert_non_null(strstr(out.content, "Tool result: "));
    json_decref(reqs);
    mr_llm_response_clear(&out);
}

/* A tool the server refuses or that fails: an error for the model, never a crash. */
static void test_server_errors_reach_the_model(void **state)
{
    fixture *f = *state;
    mr_llm_response out;
    json_t *reqs = turn(f,
                        "{\"tool_calls\":[{\"id\":\"call_bad\",\"name\":\"everything__get-sum\",\"arguments\":"
                        "{\"a\":\"two\"}}]}",
                        &out);
    const char *bad = tool_result(reqs, "call_bad");
    assert_non_null(strstr(bad, "error: "));
    assert_non_null(strstr(bad, "everything"));
    json_decref(reqs);
    mr_llm_response_clear(&out);
}

static void *kill_server(void *arg)
{
    fixture *f = arg;
    /* The model asked for the long call: the server is killed while it runs it (or, at worst,
     * just before it is sent; the model hears of it either way). */
    long long end = mr_clock_mono_ms() + 30000;
    pid_t pid = 0;
    while (mr_clock_mono_ms() < end) {
        json_t *r = NULL;
        mr_err err = {0};
        bool asked = mr_model_stub_requests(&f->m.st, &r, &err) == MR_OK && json_array_size(r) >= 1;
        json_decref(r);
        if (asked && (pid = mr_tp_child_running("index.js stdio")) > 0)
            break;
        mr_clock_sleep_ms(20);
    }
    if (pid > 0)
        kill(pid, SIGKILL);
    return (void *)(intptr_t)pid;
}

static void test_killed_mid_call_then_restarted(void **state)
{
    fixture *f = *state;
    const mr_tool_def *defs[TOOLS_PER_AGENT_MAX];
    size_t n = agent_defs(f, defs); /* starts the server */
    const mr_tool_def *echo_before = def_named(defs, n, "everything__echo");
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_server, f), 0);
    mr_llm_response out;
    json_t *reqs = turn(f,
                        "{\"tool_calls\":[{\"id\":\"call_long\",\"name\":\"everything__trigger-long-running-"
                        "operation\",\"arguments\":{\"duration\":15,\"steps\":15}}]}",
                        &out);
    void *killed = NULL;
    pthread_join(th, &killed);
    assert_true((intptr_t)killed > 0);
    const char *res = tool_result(reqs, "call_long");
    assert_non_null(strstr(res, "error: "));
    assert_non_null(strstr(res, "MCP server everything"));
    json_decref(reqs);
    mr_llm_response_clear(&out);
    /* Later turns work once the backoff has passed and the server is started again. */
    long long end = mr_clock_mono_ms() + 30000;
    bool ok = false;
    while (!ok && mr_clock_mono_ms() < end) {
        reqs = turn(f,
                    "{\"tool_calls\":[{\"id\":\"call_again\",\"name\":\"everything__echo\",\"arguments\":"
                    "{\"message\":\"back\"}}]}",
                    &out);
        ok = strcmp(tool_result(reqs, "call_again"), "Echo: back") == 0;
        json_decref(reqs);
        mr_llm_response_clear(&out);
        if (!ok)
            mr_clock_sleep_ms(200);
    }
    assert_true(ok);
    pid_t now = mr_tp_child_running("index.js stdio");
    assert_true(now > 0);
    assert_int_not_equal(now, (pid_t)(intptr_t)killed);
    /* The restarted server's tools were listed again: a new listing, the same tools. */
    n = agent_defs(f, defs);
    const mr_tool_def *echo_after = def_named(defs, n, "everything__echo");
    assert_non_null(echo_after);
    assert_ptr_not_equal(echo_after, echo_before);
}

/* An unset variable stops start-up with the server, field and variable named. */
static void test_unset_variable_named(void **state)
{
    (void)state;
    unsetenv("MR_TEST_MCP_UNSET");
    mr_config *cfg = config_with("TOKEN: \"Bearer ${MR_TEST_MCP_UNSET}\"");
    mcp_hub *hub = NULL;
    mr_err err = {0};
    assert_int_equal(mcp_hub_new(cfg, "/tmp", from_env, NULL, &hub, &err), MR_EINVAL);
    assert_null(hub);
    assert_non_null(strstr(err.msg, "mcp_servers.everything.env"));
    assert_non_null(strstr(err.msg, "MR_TEST_MCP_UNSET is not set"));
    mr_config_release(cfg);
    cfg = config_with("TOKEN: \"${MR_TEST_MCP_UNSET\"");
    assert_int_equal(mcp_hub_new(cfg, "/tmp", from_env, NULL, &hub, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "mcp_servers.everything.env: \"${\" without a closing \"}\""));
    mr_config_release(cfg);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    if (!(g_entry = mr_tp_mcp_everything()))
        return 77;
    mr_log_configure(MR_LOG_WARN, MR_LOG_HUMAN, stderr);
    const struct CMUnitTest tests[] = {
        T(test_tools_offered_and_called),
        T(test_server_errors_reach_the_model),
        T(test_killed_mid_call_then_restarted),
        cmocka_unit_test(test_unset_variable_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
