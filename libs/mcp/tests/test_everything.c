/* test_everything.c -- the MCP client against the published reference server
 * (@modelcontextprotocol/server-everything, run with Node.js), over stdio and over streamable
 * HTTP: tools listed with their schemas, called, timed out and cancelled, the child's
 * environment kept free of our secrets, a killed server restarted with backoff. SKIPPED
 * without node or the package (`make deps` installs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/clock.h"
#include "mindroom/mcp.h"
#include "peers.h"

static const char *g_entry;

static mr_mcp_client *stdio_client(const char *const *env, long backoff_ms)
{
    static const char *args[3];
    args[0] = g_entry;
    args[1] = "stdio";
    mr_mcp_client *c = NULL;
    mr_err err = {0};
    mr_mcp_server_opts o = {.name = "everything", .command = "node", .args = args, .env = env,
                            .timeout_ms = 20000, .restart_backoff_ms = backoff_ms};
    if (mr_mcp_client_new(&o, &c, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return c;
}

static json_t *find_tool(json_t *tools, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) return t;
    return NULL;
}

static char *call_text(mr_mcp_client *c, const char *tool, json_t *args, long timeout_ms, mr_code want)
{
    json_t *r = NULL;
    mr_err err = {0};
    mr_code rc = mr_mcp_tool_call(c, tool, args, timeout_ms, &r, &err);
    json_decref(args);
    if (rc != want)
        fail_msg("%s: got %d (%s), want %d", tool, rc, err.msg, want);
    if (rc != MR_OK)
        return strdup(err.msg);
    mr_strbuf out = {0};
    assert_true(mr_mcp_result_text(r, &out));
    json_decref(r);
    return mr_strbuf_take(&out);
}

static void check_tools_and_calls(mr_mcp_client *c)
{
    json_t *tools = NULL;
    mr_err err = {0};
    if (mr_mcp_tools_list(c, &tools, &err) != MR_OK)
        fail_msg("%s", err.msg);
    json_t *echo = find_tool(tools, "echo");
    assert_non_null(echo);
    json_t *schema = json_object_get(echo, "inputSchema");
    assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
    assert_non_null(json_object_get(json_object_get(schema, "properties"), "message"));
    assert_non_null(find_tool(tools, "get-sum"));
    json_decref(tools);

    char *text = call_text(c, "echo", json_pack("{s:s}", "message", "héllo ✓"), 0, MR_OK);
    assert_string_equal(text, "Echo: héllo ✓");
    free(text);
    text = call_text(c, "get-sum", json_pack("{s:i, s:i}", "a", 2, "b", 40), 0, MR_OK);
    assert_non_null(strstr(text, "42"));
    free(text);
    /* A call the server refuses (no such tool) is an error naming it, and the session goes on. */
    json_t *r = NULL;
    mr_code rc = mr_mcp_tool_call(c, "no-such-tool", NULL, 0, &r, &err);
    if (rc == MR_OK) {
        assert_true(json_is_true(json_object_get(r, "isError")));
        json_decref(r);
    } else {
        assert_int_equal(rc, MR_EINVAL);
        assert_non_null(strstr(err.msg, "refused tools/call"));
    }
    text = call_text(c, "echo", json_pack("{s:s}", "message", "still here"), 0, MR_OK);
    assert_string_equal(text, "Echo: still here");
    free(text);
}

/* A call longer than its timeout fails at the deadline; the server is told and stays usable. */
static void check_timeout(mr_mcp_client *c)
{
    long long t0 = mr_clock_mono_ms();
    char *text = call_text(c, "trigger-long-running-operation", json_pack("{s:i, s:i}", "duration", 4, "steps", 4),
                           500, MR_EUNAVAIL);
    assert_non_null(strstr(text, "tools/call took longer than 500 ms"));
    free(text);
    assert_true(mr_clock_mono_ms() - t0 < 4000);
    text = call_text(c, "echo", json_pack("{s:s}", "message", "after"), 0, MR_OK);
    assert_string_equal(text, "Echo: after");
    free(text);
}

/* The reference server registers a tool once it is told the client is initialised, and says
 * so (notifications/tools/list_changed): the tools version moves past the starts, so whoever
 * keeps the list lists again. */
static void check_list_changed(mr_mcp_client *c)
{
    assert_int_equal(mr_mcp_client_starts(c), 1);
    assert_true(mr_mcp_client_tools_version(c) > mr_mcp_client_starts(c));
    json_t *tools = NULL;
    mr_err err = {0};
    if (mr_mcp_tools_list(c, &tools, &err) != MR_OK)
        fail_msg("%s", err.msg);
    assert_non_null(find_tool(tools, "simulate-research-query"));
    json_decref(tools);
}

typedef struct long_call {
    mr_mcp_client *c;
    atomic_bool done;
    char *text;
} long_call;

static void *run_long(void *arg)
{
    long_call *l = arg;
    l->text = call_text(l->c, "trigger-long-running-operation", json_pack("{s:i, s:i}", "duration", 10, "steps", 2),
                        8000, MR_EUNAVAIL);
    atomic_store(&l->done, true);
    return NULL;
}

typedef struct echo_call {
    mr_mcp_client *c;
    char message[32];
    char *text;
} echo_call;

static void *run_echo(void *arg)
{
    echo_call *e = arg;
    e->text = call_text(e->c, "echo", json_pack("{s:s}", "message", e->message), 0, MR_OK);
    return NULL;
}

/* Many calls in flight on one session: while a long operation is under way, echoes from four
 * threads go out beside it and come back (each to its own caller) before it ends; the long one
 * then fails at its own deadline and the session goes on. */
static void check_parallel(mr_mcp_client *c)
{
    char *text = call_text(c, "echo", json_pack("{s:s}", "message", "up"), 0, MR_OK);
    free(text);
    long_call l = {.c = c};
    atomic_init(&l.done, false);
    pthread_t lt, et[4];
    assert_int_equal(pthread_create(&lt, NULL, run_long, &l), 0);
    while (mr_mcp_client_awaiting(c) == 0)
        mr_clock_sleep_ms(10);
    echo_call e[4];
    for (int i = 0; i < 4; i++) {
        e[i] = (echo_call){.c = c};
        snprintf(e[i].message, sizeof e[i].message, "side %d", i);
        assert_int_equal(pthread_create(&et[i], NULL, run_echo, &e[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(et[i], NULL);
        char want[48];
        snprintf(want, sizeof want, "Echo: side %d", i);
        assert_string_equal(e[i].text, want);
        free(e[i].text);
    }
    assert_false(atomic_load(&l.done));
    pthread_join(lt, NULL);
    assert_non_null(strstr(l.text, "tools/call took longer than 8000 ms"));
    free(l.text);
    text = call_text(c, "echo", json_pack("{s:s}", "message", "after"), 0, MR_OK);
    assert_string_equal(text, "Echo: after");
    free(text);
    assert_int_equal(mr_mcp_client_awaiting(c), 0);
}

/* One stdio pipe: the answers find their callers by JSON-RPC ID. */
static void test_stdio_parallel(void **state)
{
    (void)state;
    mr_mcp_client *c = stdio_client(NULL, 0);
    check_parallel(c);
    mr_mcp_client_free(c);
}

static void test_stdio(void **state)
{
    (void)state;
    mr_mcp_client *c = stdio_client(NULL, 0);
    check_tools_and_calls(c);
    check_list_changed(c);
    check_timeout(c);
    mr_mcp_client_free(c);
}

/* The child sees the configured variables and the few it needs, never ours. */
static void test_stdio_environment(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-must-not-leak", 1);
    const char *env[] = {"MCP_TEST_SETTING=configured", NULL};
    mr_mcp_client *c = stdio_client(env, 0);
    char *text = call_text(c, "get-env", NULL, 0, MR_OK);
    assert_non_null(strstr(text, "MCP_TEST_SETTING"));
    assert_non_null(strstr(text, "configured"));
    assert_non_null(strstr(text, "PATH"));
    assert_null(strstr(text, "sk-must-not-leak"));
    assert_null(strstr(text, "OPENAI_API_KEY"));
    free(text);
    mr_mcp_client_free(c);
    unsetenv("OPENAI_API_KEY");
}

/* A killed server: the call in flight fails, calls within the backoff fail at once, then it is
 * started again and answers. */
static void test_stdio_restart(void **state)
{
    (void)state;
    mr_mcp_client *c = stdio_client(NULL, 300);
    char *text = call_text(c, "echo", json_pack("{s:s}", "message", "one"), 0, MR_OK);
    free(text);
    pid_t pid = mr_tp_child_running("index.js stdio");
    assert_true(pid > 0);
    kill(pid, SIGKILL);
    text = call_text(c, "echo", json_pack("{s:s}", "message", "two"), 0, MR_EUNAVAIL);
    assert_non_null(strstr(text, "MCP server everything"));
    free(text);
    text = call_text(c, "echo", json_pack("{s:s}", "message", "three"), 0, MR_EUNAVAIL);
    assert_non_null(strstr(text, "is down; the next start is in"));
    free(text);
    long long end = mr_clock_mono_ms() + 20000;
    char *ok = NULL;
    while (!ok && mr_clock_mono_ms() < end) {
        json_t *r = NULL;
        mr_err err = {0};
        json_t *args = json_pack("{s:s}", "message", "four");
        if (mr_mcp_tool_call(c, "echo", args, 0, &r, &err) == MR_OK) {
            mr_strbuf out = {0};
            mr_mcp_result_text(r, &out);
            ok = mr_strbuf_take(&out);
            json_decref(r);
        } else {
            mr_clock_sleep_ms(100);
        }
        json_decref(args);
    }
    assert_non_null(ok);
    assert_string_equal(ok, "Echo: four");
    free(ok);
    assert_int_not_equal(mr_tp_child_running("index.js stdio"), pid);
    mr_mcp_client_free(c);
    assert_int_equal(mr_tp_child_running("index.js stdio"), 0);
}

static void test_streamable_http(void **state)
{
    (void)state;
    int port = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char port_env[32], url[64];
    snprintf(port_env, sizeof port_env, "%d", port);
    setenv("PORT", port_env, 1);
    char *argv[] = {"node", (char *)g_entry, "streamableHttp", NULL};
    pid_t pid = 0;
    assert_int_equal(mr_tp_spawn(argv, NULL, &pid, &err), MR_OK);
    unsetenv("PORT");
    if (mr_tp_wait_port(port, 30000, &err) != MR_OK) {
        mr_tp_stop_if_running(pid);
        fail_msg("%s", err.msg);
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/mcp", port);
    mr_mcp_client *c = NULL;
    const char *headers[] = {"X-Client: mindroom-test", NULL};
    assert_int_equal(mr_mcp_client_new(&(mr_mcp_server_opts){.name = "everything-http", .url = url,
                                                             .headers = headers, .timeout_ms = 20000},
                                       &c, &err),
                     MR_OK);
    check_tools_and_calls(c);
    check_timeout(c);
    /* Each call a POST of its own in the one session. */
    check_parallel(c);
    mr_mcp_client_free(c);
    mr_tp_stop_if_running(pid);
}

int main(void)
{
    if (!(g_entry = mr_tp_mcp_everything()))
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stdio),
        cmocka_unit_test(test_stdio_environment),
        cmocka_unit_test(test_stdio_restart),
        cmocka_unit_test(test_stdio_parallel),
        cmocka_unit_test(test_streamable_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
