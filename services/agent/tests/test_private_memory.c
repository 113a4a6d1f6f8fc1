/* test_private_memory.c -- per-requester memory, as the reference's private instances: an agent
 * with private: keeps MEMORY.md in a root of each requester's own (per user, or per user and
 * agent), so what one person asked it to remember is neither found by the memory tool nor put in
 * the prompt for another; an agent without private: shares its workspace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_tools.h"
#include "mindroom/config.h"
#include "mindroom/tools.h"
#include "peers.h"

#define ALICE "@alice:example.org"
#define BOB "@bob:example.org"

static char dir[512];
static mr_runtime rt;
static mr_config *cfg;

static int setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_tp_mkdtemp("mr-agent-private", dir, sizeof dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    rt.settings.storage_path = dir;
    const char *yaml = "models: {default: {provider: openai, id: m}}\n"
                       "memory: {backend: file}\n"
                       "agents:\n"
                       "  mind: {tools: [memory], private: {per: user}}\n"
                       "  pair: {tools: [memory], private: {per: user_agent, root: notes}}\n"
                       "  shared: {tools: [memory]}\n";
    if (mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, NULL, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_config_release(cfg);
    mr_tp_rmtree(dir, NULL);
    return 0;
}

static char *root_of(const char *agent, const char *requester)
{
    char *root = tool_memory_root(&rt, mr_config_agent(cfg, agent), agent, requester);
    assert_non_null(root);
    return root;
}

/* One memory tool call as requester, in the root the agent service gives it; the result. */
static char *memory(const char *agent, const char *requester, const char *args)
{
    char *root = root_of(agent, requester);
    mr_tools_env env = {.entity = agent, .requester = requester, .room_id = "!r:example.org", .data_dir = root};
    mr_tools_call call = {.def = mr_tools_find("memory"), .name = "memory", .arguments = args};
    mr_err err = {0};
    if (mr_tools_run(&env, &call, 1, &err) != MR_OK)
        fail_msg("memory: %s", err.msg);
    char *result = strdup(call.result);
    if (call.failed)
        fail_msg("memory %s: %s", args, result);
    mr_tools_calls_clear(&call, 1);
    free(root);
    return result;
}

static bool has(char *text, const char *what)
{
    bool found = strstr(text, what) != NULL;
    free(text);
    return found;
}

static void test_roots(void **state)
{
    (void)state;
    char *a = root_of("mind", ALICE), *b = root_of("mind", BOB), *again = root_of("mind", ALICE);
    char *pair = root_of("pair", ALICE), *shared_a = root_of("shared", ALICE), *shared_b = root_of("shared", BOB);
    char want[600];
    assert_string_not_equal(a, b);
    assert_string_equal(a, again);
    snprintf(want, sizeof want, "%s/private_instances/user-", dir);
    assert_memory_equal(a, want, strlen(want));
    assert_non_null(strstr(a, "/mind/mind_data"));
    assert_null(strstr(a, "alice"));                 /* the user ID stays out of the path */
    snprintf(want, sizeof want, "%s/private_instances/user_agent-", dir);
    assert_memory_equal(pair, want, strlen(want));
    assert_non_null(strstr(pair, "/pair/notes"));
    snprintf(want, sizeof want, "%s/agents/shared/workspace", dir);
    assert_string_equal(shared_a, want);
    assert_string_equal(shared_b, want);
    /* A private agent with no requester has no root: never a shared fallback. */
    assert_null(tool_memory_root(&rt, mr_config_agent(cfg, "mind"), "mind", NULL));
    free(a);
    free(b);
    free(again);
    free(pair);
    free(shared_a);
    free(shared_b);
}

static void test_each_requester_remembers_alone(void **state)
{
    (void)state;
    assert_true(has(memory("mind", ALICE, "{\"action\": \"add\", \"text\": \"likes green tea\"}"), "Remembered as m1"));
    assert_true(has(memory("mind", BOB, "{\"action\": \"add\", \"text\": \"drinks coffee\"}"), "Remembered as m1"));
    assert_true(has(memory("mind", ALICE, "{\"action\": \"search\", \"query\": \"tea\"}"), "likes green tea"));
    assert_true(has(memory("mind", BOB, "{\"action\": \"search\", \"query\": \"tea\"}"), "No memory matches."));
    assert_false(has(memory("mind", BOB, "{\"action\": \"list\"}"), "tea"));
    /* Bob forgetting his m1 leaves Alice's m1. */
    assert_true(has(memory("mind", BOB, "{\"action\": \"forget\", \"id\": \"m1\"}"), "m1"));
    assert_true(has(memory("mind", ALICE, "{\"action\": \"search\", \"query\": \"tea\"}"), "likes green tea"));

    /* The prompt carries the requester's own MEMORY.md. */
    char *ws = tool_workspace(&rt, "mind"), *a = root_of("mind", ALICE), *b = root_of("mind", BOB);
    char *pa = prompt_files_context(ws, a, cfg, mr_config_agent(cfg, "mind"));
    char *pb = prompt_files_context(ws, b, cfg, mr_config_agent(cfg, "mind"));
    assert_non_null(pa);
    assert_non_null(strstr(pa, "likes green tea"));
    assert_true(!pb || !strstr(pb, "likes green tea"));
    free(pa);
    free(pb);
    free(ws);
    free(a);
    free(b);

    /* Without private: one memory for everyone, as before. */
    assert_true(has(memory("shared", ALICE, "{\"action\": \"add\", \"text\": \"the office is on floor 3\"}"), "m1"));
    assert_true(has(memory("shared", BOB, "{\"action\": \"search\", \"query\": \"office\"}"), "floor 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roots),
        cmocka_unit_test(test_each_requester_remembers_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
