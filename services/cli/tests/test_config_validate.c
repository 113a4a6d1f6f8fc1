/* test_config_validate.c -- `mindroom config validate` run as a process: summaries, every
 * diagnostic with file:line:col, exit codes and the config lookup order. */
#include "cli_harness.h"

#include "mindroom/config.h"

static const char example_config[] =
    "models:\n"
    "  default: {provider: openai, id: gpt-5.6, context_window: 1050000}\n"
    "  fast: {provider: anthropic, id: claude-haiku-4-5}\n"
    "agents:\n"
    "  mind:\n"
    "    display_name: Mind\n"
    "    role: Personal assistant\n"
    "    model: default\n"
    "    rooms: [personal]\n"
    "    tools: [todo, website]\n"
    "    instructions: [Be concise.]\n"
    "  coder:\n"
    "    display_name: Coder\n"
    "    role: Writes and reviews code\n"
    "    rooms: [personal, dev]\n"
    "    thread_mode: thread\n"
    "teams:\n"
    "  devteam:\n"
    "    display_name: Dev Team\n"
    "    role: Collaborative engineering\n"
    "    agents: [mind, coder]\n"
    "    mode: coordinate\n"
    "    rooms: [dev]\n"
    "router: {model: fast, accept_invites: true}\n"
    "rooms:\n"
    "  dev: {display_name: Development, encrypted: true}\n"
    "matrix_room_access: {mode: single_user_private, room_admins: [\"@alice:mindroom.chat\"]}\n"
    "matrix_space: {enabled: true, name: MindRoom}\n"
    "authorization:\n"
    "  global_users: [\"@alice:mindroom.chat\"]\n"
    "  default_room_access: false\n"
    "  agent_reply_permissions: {\"*\": [\"@alice:mindroom.chat\"]}\n"
    "memory: {backend: file}\n"
    "defaults: {markdown: true, enable_streaming: true}\n";

/* Three mistakes a person makes by hand: a typo'd key, a user ID without its @, and an enum
 * value that does not exist (lines 5, 8 and 10). */
static const char broken_config[] =
    "models:\n"
    "  default: {provider: openai, id: gpt-5.6}\n"
    "agents:\n"
    "  mind:\n"
    "    rooms: [personal]\n"
    "    toolz: [shell]\n"
    "authorization:\n"
    "  global_users: [alice]\n"
    "memory:\n"
    "  backend: postgres\n";

static void write_config(sandbox *sb, const char *rel, const char *text)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", sb_path(sb, rel));
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    make_dirs(dir);
    spit(sb_path(sb, rel), text);
}

static void test_valid_config_prints_a_summary(void **state)
{
    sandbox *sb = *state;
    const char *path = sb_path(sb, "example.yaml");
    spit(path, example_config);
    cli_run r = run_cli(sb, "config", "validate", path);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s: valid (2 agents, 1 team, 2 rooms)\n", path);
    assert_string_equal(r.out, want);
    cli_run_free(&r);
}

static void test_broken_config_reports_every_error_with_file_line(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"), broken_config);
    cli_run r = run_cli(sb, "config", "validate", "config.yaml");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "config.yaml: 3 errors\n");
    assert_int_equal(count_of(r.err, "\n"), 3);
    const char *want[] = {
        "config.yaml:6:5: agents.mind.toolz: ",
        "config.yaml:8:18: authorization.global_users[0]: ",
        "config.yaml:10:12: memory.backend: ",
    };
    const char *line = r.err;
    for (size_t i = 0; i < 3; i++) {
        if (!starts_with(line, want[i]))
            fail_msg("diagnostic %zu: want prefix '%s' in:\n%s", i, want[i], r.err);
        line = strchr(line, '\n') + 1;
    }
    assert_non_null(strstr(r.err, "did you mean 'tools'?"));
    assert_non_null(strstr(r.err, "mem0"));
    cli_run_free(&r);
}

static void test_warnings_are_printed_and_do_not_fail(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"),
         "models:\n"
         "  default: {provider: openai, id: gpt-5.6}\n"
         "agents:\n"
         "  mind: {rooms: [personal]}\n"
         "authorization:\n"
         "  global_users: [" MR_CONFIG_OWNER_PLACEHOLDER "]\n");
    cli_run r = run_cli(sb, "config", "validate", "config.yaml");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "config.yaml: valid (1 agent, 0 teams, 1 room), 1 warning\n");
    assert_true(starts_with(r.err, "config.yaml:6:18: warning: authorization.global_users[0]: "));
    assert_int_equal(count_of(r.err, "\n"), 1);
    cli_run_free(&r);
}

/* A tool nobody knows fails with a did-you-mean (a key under mcp_servers counts as a name); one
 * MindRoom knows that this build does not run is a warning naming it. */
static void test_tool_names(void **state)
{
    sandbox *sb = *state;
    static const char head[] = "models:\n"
                               "  default: {provider: openai, id: gpt-5.6}\n"
                               "mcp_servers:\n"
                               "  everything: {command: node}\n"
                               "agents:\n";
    char text[512];
    snprintf(text, sizeof text, "%s  mind: {rooms: [personal], tools: [todo, everything, evrything, scheduller]}\n",
             head);
    spit(sb_path(sb, "config.yaml"), text);
    cli_run r = run_cli(sb, "config", "validate", "config.yaml");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "config.yaml:6:55: agents.mind.tools[2]: unknown tool 'evrything'; did you mean "
                                  "'everything'?\n"));
    assert_non_null(strstr(r.err, "agents.mind.tools[3]: unknown tool 'scheduller'; did you mean 'scheduler'?\n"));
    assert_string_equal(r.out, "config.yaml: 2 errors\n");
    cli_run_free(&r);

    snprintf(text, sizeof text, "%s  mind: {rooms: [personal], tools: [todo, everything, duckduckgo]}\n"
             "defaults: {tools: [python]}\n", head);
    spit(sb_path(sb, "config.yaml"), text);
    r = run_cli(sb, "config", "validate", "config.yaml");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "config.yaml: warning: defaults.tools: this build does not implement the tool python "
                               "yet: the agent runs without it\n"
                               "config.yaml: warning: agents.mind.tools: this build does not implement the tool "
                               "duckduckgo yet: the agent runs without it\n");
    assert_string_equal(r.out, "config.yaml: valid (1 agent, 0 teams, 1 room), 2 warnings\n");
    cli_run_free(&r);
}

static void test_yaml_syntax_error_names_line_and_column(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"), "agents:\n  mind:\n\trooms: [personal]\n");
    cli_run r = run_cli(sb, "config", "validate", "config.yaml");
    assert_int_equal(r.status, 1);
    assert_true(starts_with(r.err, "config.yaml:3:"));
    assert_string_equal(r.out, "config.yaml: 1 error\n");
    cli_run_free(&r);
}

static void test_missing_file_fails_with_its_path(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "config", "validate", "nope.yaml");
    assert_int_equal(r.status, 1);
    assert_true(starts_with(r.err, "mindroom config validate: "));
    assert_non_null(strstr(r.err, "nope.yaml"));
    assert_string_equal(r.out, "");
    cli_run_free(&r);
}

static void test_no_config_anywhere_points_at_init(void **state)
{
    cli_run r = run_cli(*state, "config", "validate");
    assert_int_equal(r.status, 1);
    assert_true(starts_with(r.err, "mindroom config validate: "));
    assert_non_null(strstr(r.err, "mindroom config init"));
    assert_int_equal(count_of(r.err, "\n"), 1);
    assert_string_equal(r.out, "");
    cli_run_free(&r);
}

static void test_directory_argument_means_its_config_yaml(void **state)
{
    sandbox *sb = *state;
    write_config(sb, "dir/config.yaml", example_config);
    cli_run r = run_cli(sb, "config", "validate", "dir");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "dir/config.yaml: valid (2 agents, 1 team, 2 rooms)\n");
    cli_run_free(&r);
}

/* Three configs told apart by their agent count. */
static const char one_agent[] = "models: {default: {provider: openai, id: a}}\nagents: {a: {}}\n";
static const char two_agents[] = "models: {default: {provider: openai, id: a}}\nagents: {a: {}, b: {}}\n";
static const char three_agents[] =
    "models: {default: {provider: openai, id: a}}\nagents: {a: {}, b: {}, c: {}}\n";

static void expect_found(sandbox *sb, const char *const *env, const char *agents)
{
    cli_run r = run_cli_env(sb, env, (const char *const[]){"config", "validate", NULL});
    if (r.status != 0)
        fail_msg("validate: exit %d\n%s%s", r.status, r.out, r.err);
    if (!strstr(r.out, agents))
        fail_msg("validate found the wrong file: %s (want %s)", r.out, agents);
    cli_run_free(&r);
}

static void test_lookup_order_env_then_cwd_then_home(void **state)
{
    sandbox *sb = *state;
    write_config(sb, ".mindroom/config.yaml", one_agent);
    write_config(sb, "config.yaml", two_agents);
    write_config(sb, "../elsewhere/mr.yaml", three_agents);
    char env_var[PATH_MAX + 32];
    snprintf(env_var, sizeof env_var, "MINDROOM_CONFIG_PATH=%s", sb_path(sb, "../elsewhere/mr.yaml"));
    const char *env[] = {env_var, NULL};

    expect_found(sb, env, "(3 agents,");
    expect_found(sb, NULL, "(2 agents,");
    assert_int_equal(unlink(sb_path(sb, "config.yaml")), 0);
    expect_found(sb, NULL, "(1 agent,");
    expect_found(sb, env, "(3 agents,");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SANDBOXED(test_valid_config_prints_a_summary),
        SANDBOXED(test_broken_config_reports_every_error_with_file_line),
        SANDBOXED(test_warnings_are_printed_and_do_not_fail),
        SANDBOXED(test_tool_names),
        SANDBOXED(test_yaml_syntax_error_names_line_and_column),
        SANDBOXED(test_missing_file_fails_with_its_path),
        SANDBOXED(test_no_config_anywhere_points_at_init),
        SANDBOXED(test_directory_argument_means_its_config_yaml),
        SANDBOXED(test_lookup_order_env_then_cwd_then_home),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
