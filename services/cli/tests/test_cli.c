/* test_cli.c -- the `mindroom` command's dispatch: help texts, --version, exit codes and the
 * one-line usage errors, run as a real process. */
#include "cli_harness.h"

static void test_no_arguments_prints_usage_and_exits_2(void **state)
{
    cli_run r = run_cli_env(*state, NULL, (const char *const[]){NULL});
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_true(starts_with(r.err, "Usage: mindroom <command> [options]\n"));
    cli_run_free(&r);
}

static void test_help_lists_only_existing_commands_and_exit_codes(void **state)
{
    cli_run r = run_cli(*state, "--help");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_true(starts_with(r.out, "Usage: mindroom <command> [options]\n"));
    expect_all_in("--help", r.out,
                  (const char *const[]){"\n  config init [options]", "\n  config validate [PATH]", "\n  help [COMMAND]",
                                        "\n  connect --pair-code CODE", "\n  run [options]",
                                        "\n  doctor [--config PATH]", "--version",
                                        "Exit codes:\n"
                                        "  0  success\n"
                                        "  1  the operation failed (validation errors, refused overwrite, I/O error)\n"
                                        "  2  bad usage (unknown command or option, bad option value)\n",
                                        NULL});
    cli_run_free(&r);
}

static void test_help_spellings_print_the_same_text(void **state)
{
    free(expect_help(*state, "Usage: mindroom <command> [options]\n", (const char *const[]){NULL}));
}

static void test_version(void **state)
{
    cli_run r = run_cli(*state, "--version");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "mindroom " MR_VERSION "\n");
    assert_string_equal(r.err, "");
    cli_run_free(&r);
}

static void test_unknown_command_exits_2_with_one_line(void **state)
{
    expect_run(*state, 2, "mindroom: unknown command 'frobnicate'; try 'mindroom --help'\n",
               (const char *const[]){"frobnicate", NULL});
    expect_run(*state, 2, "mindroom: unknown command 'frobnicate'; try 'mindroom --help'\n",
               (const char *const[]){"help", "frobnicate", NULL});
}

static void test_unknown_top_level_flag_exits_2(void **state)
{
    expect_run(*state, 2, "mindroom: unknown option '--bogus'; try 'mindroom --help'\n",
               (const char *const[]){"--bogus", NULL});
    expect_run(*state, 2, "mindroom: unknown option '-x'; try 'mindroom --help'\n",
               (const char *const[]){"-x", NULL});
}

static void test_config_group_help(void **state)
{
    char *text = expect_help_of(*state, "Usage: mindroom config <command> [options]\n", "config");
    assert_non_null(strstr(text, "\n  config init [options]"));
    assert_non_null(strstr(text, "\n  config validate [PATH]"));
    free(text);
}

static void test_config_group_usage_errors(void **state)
{
    expect_run(*state, 2, "mindroom config: missing command; try 'mindroom config --help'\n",
               (const char *const[]){"config", NULL});
    expect_run(*state, 2, "mindroom config: unknown command 'frob'; try 'mindroom config --help'\n",
               (const char *const[]){"config", "frob", NULL});
    expect_run(*state, 2, "mindroom config: unknown option '--frob'; try 'mindroom config --help'\n",
               (const char *const[]){"config", "--frob", NULL});
    expect_run(*state, 2, "mindroom config: unknown command 'frob'; try 'mindroom config --help'\n",
               (const char *const[]){"help", "config", "frob", NULL});
}

static void test_config_init_help(void **state)
{
    char *text = expect_help_of(*state, "Usage: mindroom config init [options]\n", "config", "init");
    expect_all_in("config init --help", text,
                  (const char *const[]){"--path PATH", "--force", "--matrix-server", "mindroom.chat", "self-hosted",
                                        "--provider NAME", "--profile public", "--print", "--homeserver URL",
                                        "--server-name NAME", "--owner USER_ID", "--no-input",
                                        "MATRIX_REGISTRATION_SHARED_SECRET", "MATRIX_REGISTRATION_TOKEN",
                                        "OPENAI_BASE_URL", "anthropic (claude)", "llama.cpp (llama-cpp|llama_cpp)",
                                        "azure (azure_openai|azure-openai)", "openrouter", "ollama", NULL});
    free(text);
    /* --help wins over everything else and writes nothing. */
    struct stat st;
    assert_int_not_equal(stat(sb_path(*state, ".mindroom"), &st), 0);
}

static void test_config_validate_help(void **state)
{
    free(expect_help_of(*state, "Usage: mindroom config validate [PATH]\n", "config", "validate"));
}

static void test_config_init_usage_errors(void **state)
{
    static const struct {
        const char *args[4];
        const char *err;
    } cases[] = {
        {{"--bogus"}, "mindroom config init: unknown option '--bogus'; try 'mindroom config init --help'\n"},
        {{"--bogus=1"}, "mindroom config init: unknown option '--bogus'; try 'mindroom config init --help'\n"},
        {{"-x"}, "mindroom config init: unknown option '-x'; try 'mindroom config init --help'\n"},
        {{"--path"}, "mindroom config init: option '--path' needs a value; try 'mindroom config init --help'\n"},
        {{"-p"}, "mindroom config init: option '-p' needs a value; try 'mindroom config init --help'\n"},
        {{"--force=yes"}, "mindroom config init: option '--force' takes no value; try 'mindroom config init --help'\n"},
        {{"--path", ""}, "mindroom config init: option '--path' needs a non-empty value; try 'mindroom config init --help'\n"},
        {{"extra"}, "mindroom config init: unexpected argument 'extra'; try 'mindroom config init --help'\n"},
        {{"--matrix-server", "matrix.org"},
         "mindroom config init: unknown --matrix-server 'matrix.org'; accepted: mindroom.chat, self-hosted; "
         "try 'mindroom config init --help'\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[8] = {"config", "init"};
        for (size_t k = 0; cases[i].args[k]; k++)
            args[2 + k] = cases[i].args[k];
        expect_run(*state, 2, cases[i].err, args);
    }
    /* A usage error writes nothing. */
    struct stat st;
    assert_int_not_equal(stat(sb_path(*state, ".mindroom"), &st), 0);
}

static void test_config_validate_usage_errors(void **state)
{
    expect_run(*state, 2,
               "mindroom config validate: unknown option '--strict'; try 'mindroom config validate --help'\n",
               (const char *const[]){"config", "validate", "--strict", NULL});
    expect_run(*state, 2,
               "mindroom config validate: unexpected argument 'b.yaml'; try 'mindroom config validate --help'\n",
               (const char *const[]){"config", "validate", "a.yaml", "b.yaml", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SANDBOXED(test_no_arguments_prints_usage_and_exits_2),
        SANDBOXED(test_help_lists_only_existing_commands_and_exit_codes),
        SANDBOXED(test_help_spellings_print_the_same_text),
        SANDBOXED(test_version),
        SANDBOXED(test_unknown_command_exits_2_with_one_line),
        SANDBOXED(test_unknown_top_level_flag_exits_2),
        SANDBOXED(test_config_group_help),
        SANDBOXED(test_config_group_usage_errors),
        SANDBOXED(test_config_init_help),
        SANDBOXED(test_config_validate_help),
        SANDBOXED(test_config_init_usage_errors),
        SANDBOXED(test_config_validate_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
