/* bench_tools.c -- what a tool call adds to an answer: N bare model round trips to the model
 * stub (the baseline), N answers through the tool loop that make one `todo list` call (two
 * round trips and one dispatch), N model answers that call the tool (the first of those two round
 * trips), and N dispatches alone (mr_tools_run: a thread, the arguments parsed, the tool run, the
 * result bounded). With MR_MCP_EVERYTHING (the reference MCP server's dist/index.js) also N
 * dispatches of `everything__echo` over stdio through the runner, and N bare mr_mcp_tool_call of
 * the same (the JSON-RPC round trip to node without the runner). Prints CSV: what,n,ms_per_op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_tools.h"
#include "mindroom/clock.h"
#include "mindroom/log.h"
#include "mindroom/mcp.h"
#include "model_stub_peer.h"

static bool on_text(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    (void)text;
    (void)len;
    return true;
}

static void on_done(void *ctx, const char *pending, const char *done)
{
    (void)ctx;
    (void)pending;
    (void)done;
}

static int die(const char *what, const mr_err *err)
{
    fprintf(stderr, "%s: %s\n", what, err->msg);
    return 1;
}

static const char *from_env(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

/* The MCP rows: dispatch through the runner, then the bare client call, both to a server
 * already started (its start-up is not per call). */
static int bench_mcp(const char *entry, const mr_tools_env *env, int n)
{
    char text[1024];
    snprintf(text, sizeof text, "models: {default: {provider: openai, id: m}}\n"
                                "agents: {bench: {tools: [everything]}}\n"
                                "mcp_servers: {everything: {command: node, args: [\"%s\", stdio]}}\n", entry);
    mr_config *cfg = NULL;
    mcp_hub *hub = NULL;
    mr_err err = {0};
    if (mr_config_parse(text, strlen(text), "bench.yaml", &cfg, NULL, &err) != MR_OK ||
        mcp_hub_new(cfg, "/tmp", from_env, NULL, &hub, &err) != MR_OK)
        return die("MCP set-up", &err);
    const mr_tool_def *defs[TOOLS_PER_AGENT_MAX];
    size_t n_defs = mcp_hub_defs(hub, &cfg->agents[0].tools, defs, 0, TOOLS_PER_AGENT_MAX);
    const mr_tool_def *echo = NULL;
    for (size_t i = 0; i < n_defs; i++)
        if (strcmp(defs[i]->name, "everything__echo") == 0)
            echo = defs[i];
    if (!echo) {
        fprintf(stderr, "MCP: the server offers no echo tool\n");
        return 1;
    }
    long long t0 = mr_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        mr_tools_call call = {.def = echo, .name = echo->name, .arguments = "{\"message\":\"ping\"}"};
        if (mr_tools_run(env, &call, 1, &err) != MR_OK || call.failed)
            return die("MCP dispatch", &err);
        mr_tools_calls_clear(&call, 1);
    }
    double dispatch = (double)(mr_clock_mono_ns() - t0) / 1e6 / n;
    /* Four calls of one model turn to the same server: one pipe, four JSON-RPC IDs in flight. */
    int rounds = n / 4 > 0 ? n / 4 : 1;
    t0 = mr_clock_mono_ns();
    for (int r = 0; r < rounds; r++) {
        mr_tools_call calls[4];
        for (int k = 0; k < 4; k++)
            calls[k] = (mr_tools_call){.def = echo, .name = echo->name, .arguments = "{\"message\":\"ping\"}"};
        mr_code rc = mr_tools_run(env, calls, 4, &err);
        bool failed = rc != MR_OK || calls[0].failed || calls[1].failed || calls[2].failed || calls[3].failed;
        mr_tools_calls_clear(calls, 4);
        if (failed)
            return die("MCP dispatch of four", &err);
    }
    double four = (double)(mr_clock_mono_ns() - t0) / 1e6 / rounds;
    mcp_hub_free(hub);

    const char *args[] = {entry, "stdio", NULL};
    mr_mcp_client *c = NULL;
    if (mr_mcp_client_new(&(mr_mcp_server_opts){.name = "everything", .command = "node", .args = args}, &c, &err) !=
        MR_OK)
        return die("MCP client", &err);
    json_t *arguments = json_pack("{s:s}", "message", "ping");
    json_t *warm = NULL;
    if (!arguments || mr_mcp_tool_call(c, "echo", arguments, 0, &warm, &err) != MR_OK)
        return die("MCP start", &err);
    json_decref(warm);
    t0 = mr_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        json_t *r = NULL;
        if (mr_mcp_tool_call(c, "echo", arguments, 0, &r, &err) != MR_OK)
            return die("MCP call", &err);
        json_decref(r);
    }
    double bare = (double)(mr_clock_mono_ns() - t0) / 1e6 / n;
    json_decref(arguments);
    mr_mcp_client_free(c);
    mr_config_release(cfg);
    printf("mcp_stdio_dispatch,%d,%.3f\n", n, dispatch);
    printf("mcp_stdio_four_side_by_side,%d,%.3f\n", rounds, four);
    printf("mcp_stdio_bare_call,%d,%.3f\n", n, bare);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    mr_log_configure(MR_LOG_ERROR, MR_LOG_HUMAN, stderr);
    mr_model_stub st;
    mr_err err = {0};
    if (mr_model_stub_start(NULL, NULL, &st, &err) != MR_OK)
        return die("model stub", &err);
    mr_model_cfg model = {.name = "default", .provider = "vllm", .id = "stub-model", .host = st.url, .temperature = -1};
    mr_llm_client *c = NULL;
    if (mr_llm_client_new(&model, NULL, &c, &err) != MR_OK)
        return die("client", &err);
    char dir[] = "/tmp/mr-bench-tools-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    mr_tools_env env = {.entity = "bench", .requester = "@bench:example.org", .data_dir = dir};
    mr_llm_request req = {.user = "hello there", .stream = true};

    long long t0 = mr_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        mr_llm_response out;
        if (mr_llm_chat(c, &req, &out, &err) != MR_OK)
            return die("bare round trip", &err);
        mr_llm_response_clear(&out);
    }
    double bare = (double)(mr_clock_mono_ns() - t0) / 1e6 / n;

    const mr_tool_def *defs[] = {mr_tools_find("todo")};
    tool_hooks hooks = {.on_text = on_text, .on_done = on_done};
    char script[128];
    snprintf(script, sizeof script, "{\"times\":%d,\"tool_calls\":[{\"name\":\"todo\",\"arguments\":"
                                    "{\"action\":\"list\"}}]}", 1);
    t0 = mr_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        /* One scripted call per answer; the stub's next request after it is the plain answer. */
        if (mr_model_stub_script(&st, script, &err) != MR_OK)
            return die("script", &err);
        mr_llm_response out;
        if (tool_loop_chat(c, &req, defs, 1, &env, 3, &hooks, &out, &err) != MR_OK)
            return die("tool loop", &err);
        mr_llm_response_clear(&out);
    }
    double loop = (double)(mr_clock_mono_ns() - t0) / 1e6 / n;
    /* The script requests are control calls, timed with a loop of their own to subtract. */
    t0 = mr_clock_mono_ns();
    for (int i = 0; i < n; i++)
        if (mr_model_stub_script(&st, "{\"reply\":\"x\"}", &err) != MR_OK || mr_model_stub_reset(&st, &err) != MR_OK)
            return die("script", &err);
    double control = (double)(mr_clock_mono_ns() - t0) / 1e6 / n / 2;

    /* A model answer that calls the tool, alone: the first half of the loop's model traffic. */
    t0 = mr_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        mr_llm_response out;
        mr_llm_tool offered = {.name = "todo"};
        mr_llm_request call_req = req;
        call_req.tools = &offered;
        call_req.n_tools = 1;
        if (mr_model_stub_script(&st, script, &err) != MR_OK || mr_llm_chat(c, &call_req, &out, &err) != MR_OK)
            return die("tool-call round trip", &err);
        mr_llm_response_clear(&out);
    }
    double calling = (double)(mr_clock_mono_ns() - t0) / 1e6 / n;

    t0 = mr_clock_mono_ns();
    for (int i = 0; i < n; i++) {
        mr_tools_call call = {.def = defs[0], .name = "todo", .arguments = "{\"action\":\"list\"}"};
        if (mr_tools_run(&env, &call, 1, &err) != MR_OK || call.failed)
            return die("dispatch", &err);
        mr_tools_calls_clear(&call, 1);
    }
    double dispatch = (double)(mr_clock_mono_ns() - t0) / 1e6 / n;

    printf("bare_round_trip,%d,%.3f\n", n, bare);
    printf("tool_call_round_trip,%d,%.3f\n", n, calling - control);
    printf("answer_with_one_tool_call,%d,%.3f\n", n, loop - control);
    printf("dispatch_alone,%d,%.3f\n", n, dispatch);
    const char *entry = getenv("MR_MCP_EVERYTHING");
    if (entry && *entry && bench_mcp(entry, &env, n) != 0)
        return 1;
    mr_llm_client_free(c);
    mr_model_stub_stop(&st, &err);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
