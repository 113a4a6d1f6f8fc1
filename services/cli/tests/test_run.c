/* test_run.c -- `mindroom run` up to the point where it needs peers: help, usage errors, invalid
 * settings (exit 2, naming the setting) and failures (exit 1). Runs with the homeserver and the
 * model stub are in tests/e2e. */
#include "cli_harness.h"

#define CONFIG                                                                                     \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {rooms: [lobby]}\n"                                                           \
    "authorization:\n  global_users: [\"@alice:localhost\"]\n"

static void write_config(sandbox *sb)
{
    spit(sb_path(sb, "config.yaml"), CONFIG);
}

static void test_help(void **state)
{
    char *text = expect_help_of(*state, "Usage: mindroom run [options]\n", "run");
    expect_all_in("run --help", text,
                  (const char *const[]){"  -c, --config PATH ", "      --storage-path DIR ", "  -l, --log-level LEVEL ",
                                        "      --log-format FORMAT ", "SIGINT or SIGTERM stops every service",
                                        "Exit codes:\n  0  success\n", NULL});
    free(text);
}

static void test_top_help_lists_run(void **state)
{
    cli_run r = run_cli(*state, "--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\n  run [options]                Run the agents: every service in this process\n"));
    cli_run_free(&r);
}

static void test_usage_errors(void **state)
{
    expect_run(*state, 2, "mindroom run: unknown option '--frobnicate'; try 'mindroom run --help'\n",
               (const char *const[]){"run", "--frobnicate", NULL});
    expect_run(*state, 2, "mindroom run: unexpected argument 'now'; try 'mindroom run --help'\n",
               (const char *const[]){"run", "now", NULL});
    expect_run(*state, 2, "mindroom run: option '--config' needs a value; try 'mindroom run --help'\n",
               (const char *const[]){"run", "--config", NULL});
    expect_run(*state, 2,
               "mindroom run: option '--storage-path' needs a non-empty value; try 'mindroom run --help'\n",
               (const char *const[]){"run", "--storage-path", "", NULL});
}

#define NOWHERE "MATRIX_HOMESERVER=http://127.0.0.1:9"

/* Runs `mindroom run` with args, expecting exit 2 and "<setting>: <why>" on stderr. */
static void expect_invalid(sandbox *sb, const char *setting, const char *why, const char *const *env,
                           const char *const *args)
{
    cli_run r = run_cli_env(sb, env, args);
    if (r.status != 2)
        fprintf(stderr, "exit %d, stderr:\n%s\n", r.status, r.err);
    assert_int_equal(r.status, 2);
    char want[256];
    snprintf(want, sizeof want, "%s: %s", setting, why);
    if (!strstr(r.err, want))
        fail_msg("stderr lacks \"%s\":\n%s", want, r.err);
    cli_run_free(&r);
}

static void test_invalid_settings_exit_2_naming_them(void **state)
{
    sandbox *sb = *state;
    write_config(sb);
    const char *run[] = {"run", NULL};
    expect_invalid(sb, "MINDROOM_NAMESPACE", "", (const char *const[]){NOWHERE, "MINDROOM_NAMESPACE=no!", NULL}, run);
    expect_invalid(sb, "LOG_LEVEL", "", (const char *const[]){NOWHERE, "LOG_LEVEL=chatty", NULL}, run);
    expect_invalid(sb, "--log-format", "", (const char *const[]){NOWHERE, NULL},
                   (const char *const[]){"run", "--log-format", "xml", NULL});
    expect_invalid(sb, "MINDROOM_BUS_URL", "",
                   (const char *const[]){NOWHERE, "MINDROOM_BUS_URL=carrier-pigeon://", NULL}, run);
    expect_invalid(sb, "--listen", "", (const char *const[]){NOWHERE, NULL},
                   (const char *const[]){"run", "--listen", "nowhere", NULL});
    expect_invalid(sb, "MATRIX_SERVER_NAME", "not set, and there is no MATRIX_HOMESERVER",
                   (const char *const[]){NULL}, run);
    /* The gateway's own setting: every service starts, the gateway names it, all stop. */
    expect_invalid(sb, "MATRIX_HOMESERVER", "not set", (const char *const[]){"MATRIX_SERVER_NAME=localhost", NULL},
                   run);
}

/* A model without its key is a warning, not a reason to stop; the key may come from .env. */
static void test_missing_model_key_only_warns(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"),
         "models:\n  default: {provider: openai, id: gpt-5.6, api_key_env: MR_TEST_RUN_KEY}\n"
         "agents:\n  mind: {rooms: [lobby]}\n");
    /* Without MATRIX_HOMESERVER the gateway stops everything right after the key check. */
    const char *env[] = {"MATRIX_SERVER_NAME=localhost", NULL};
    const char *warning = "model default (provider openai): MR_TEST_RUN_KEY is not set in the environment or ";
    cli_run r = run_cli_env(sb, env, (const char *const[]){"run", NULL});
    assert_int_equal(r.status, 2);
    if (!strstr(r.err, warning) || !strstr(r.err, " WARN "))
        fail_msg("no warning about the key:\n%s", r.err);
    cli_run_free(&r);

    spit(sb_path(sb, ".env"), "MR_TEST_RUN_KEY=sk-from-dotenv\n");
    r = run_cli_env(sb, env, (const char *const[]){"run", NULL});
    assert_int_equal(r.status, 2);
    assert_null(strstr(r.err, warning));
    assert_null(strstr(r.err, "sk-from-dotenv"));
    cli_run_free(&r);
}

static void test_missing_config_exits_2_naming_it(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli_with(sb, ((const char *const[]){NOWHERE, NULL}), "run", "--config",
                             sb_path(sb, "absent.yaml"));
    assert_int_equal(r.status, 2);
    assert_true(starts_with(r.err, "mindroom run: --config"));
    assert_non_null(strstr(r.err, "absent.yaml"));
    cli_run_free(&r);
}

static void test_broken_config_exits_2_with_file_and_line(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"), CONFIG "agentz: {}\n");
    cli_run r = run_cli_with(sb, ((const char *const[]){NOWHERE, NULL}), "run");
    assert_int_equal(r.status, 2);
    if (!strstr(r.err, "config.yaml:7:1: agentz: "))
        fail_msg("no diagnostic for agentz:\n%s", r.err);
    cli_run_free(&r);
}

/* Storage that cannot be created is a failure of the file system, not a bad setting. */
static void test_unusable_storage_exits_1(void **state)
{
    sandbox *sb = *state;
    write_config(sb);
    spit(sb_path(sb, "a-file"), "not a directory\n");
    cli_run r = run_cli_with(sb, ((const char *const[]){NOWHERE, NULL}), "run", "--storage-path",
                             sb_path(sb, "a-file/data"));
    if (r.status != 1)
        fprintf(stderr, "exit %d, stderr:\n%s\n", r.status, r.err);
    assert_int_equal(r.status, 1);
    assert_true(starts_with(r.err, "mindroom run: "));
    assert_non_null(strstr(r.err, "a-file: a file of that name exists"));
    cli_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SANDBOXED(test_help),
        SANDBOXED(test_top_help_lists_run),
        SANDBOXED(test_usage_errors),
        SANDBOXED(test_invalid_settings_exit_2_naming_them),
        SANDBOXED(test_missing_model_key_only_warns),
        SANDBOXED(test_missing_config_exits_2_naming_it),
        SANDBOXED(test_broken_config_exits_2_with_file_and_line),
        SANDBOXED(test_unusable_storage_exits_1),
    };
    return cmocka_run_group_tests_name("cli run", tests, NULL, NULL);
}
