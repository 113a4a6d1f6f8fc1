/* test_config_init.c -- `mindroom config init` run as a process: the files it writes, their
 * modes, what it refuses, and that its output passes `mindroom config validate`. */
#include "cli_harness.h"

#include "mindroom/config.h"
#include "mindroom/dotenv.h"

#define HOSTED_HEADING "# Hosted Matrix defaults for mindroom.chat"

static void expect_mode(const char *path, mode_t mode)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Runs `config validate PATH` and expects exit 0 and a "valid" summary. */
static void expect_valid(sandbox *sb, const char *path, const char *summary_part)
{
    cli_run r = run_cli(sb, "config", "validate", path);
    if (r.status != 0)
        fail_msg("validate %s: exit %d\n%s%s", path, r.status, r.out, r.err);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s: valid (", path);
    assert_true(starts_with(r.out, want));
    assert_non_null(strstr(r.out, summary_part));
    cli_run_free(&r);
}

static bool is_base64url(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static void test_init_writes_config_and_env_in_home(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "config", "init");
    assert_int_equal(r.status, 0);
    const char *config = sb_path(sb, ".mindroom/config.yaml");
    const char *env_path = sb_path(sb, ".mindroom/.env");
    expect_mode(sb_path(sb, ".mindroom"), 0700);
    expect_mode(env_path, 0600);

    char *yaml = slurp(config);
    assert_non_null(yaml);
    const char *want_yaml[] = {
        "models:\n  default:\n    provider: openai\n    id: gpt-5.6\n    context_window: 1050000\n",
        "agents:\n  mind:\n    display_name: Mind\n",
        "    model: default\n",
        "    rooms: [personal]\n",
        "    memory_backend: file\n",
        "      - SOUL.md\n", "      - HEARTBEAT.md\n",
        "    tools:\n      - memory\n      - website\n      - scheduler\n      - todo\n      - matrix_message\n      - thread_summary\n"
        "    # skills:",
        "router:\n  model: default\n  accept_invites: true\n",
        "matrix_room_access:\n  mode: single_user_private\n  room_admins:\n    - " MR_CONFIG_OWNER_PLACEHOLDER "\n",
        "matrix_space:\n  enabled: true\n  name: MindRoom\n",
        "memory:\n  backend: file\n",
        "authorization:\n  default_room_access: false\n  global_users:\n    - " MR_CONFIG_OWNER_PLACEHOLDER "\n"
        "  agent_reply_permissions:\n    \"*\":\n      - " MR_CONFIG_OWNER_PLACEHOLDER "\n",
        "defaults:\n",
    };
    for (size_t i = 0; i < sizeof want_yaml / sizeof *want_yaml; i++)
        if (!strstr(yaml, want_yaml[i]))
            fail_msg("config.yaml lacks:\n%s", want_yaml[i]);
    assert_null(strstr(yaml, "mindroom_user"));
    /* Only tools that run: `config validate` below warns of any other (and counts it). */
    assert_null(strstr(yaml, "- shell\n"));
    assert_null(strstr(yaml, "update_awareness"));
    assert_int_equal(count_of(yaml, MR_CONFIG_OWNER_PLACEHOLDER), 3);

    char *env = slurp(env_path);
    assert_non_null(env);
    char storage[PATH_MAX + 64];
    snprintf(storage, sizeof storage, "\nMINDROOM_STORAGE_PATH=%s/.mindroom/mindroom_data\n", sb->work);
    const char *want_env[] = {
        "\nMATRIX_HOMESERVER=https://mindroom.chat\n",
        "\n# MATRIX_SSL_VERIFY=false\n",
        "\nMATRIX_SERVER_NAME=mindroom.chat\n",
        "\nMINDROOM_PROVISIONING_URL=https://mindroom.chat\n",
        "\nMINDROOM_NAMESPACE=\n",
        "\nMATRIX_REGISTRATION_TOKEN=\n",
        storage,
        "\nOPENAI_API_KEY=your-openai-key-here\n",
        "\n# OPENROUTER_API_KEY=your-openrouter-key-here\n",
        "\n# OPENAI_COMPAT_API_KEYS=",
        "\n# MINDROOM_PORT=8765\n",
    };
    for (size_t i = 0; i < sizeof want_env / sizeof *want_env; i++)
        if (!strstr(env, want_env[i]))
            fail_msg(".env lacks:\n%s", want_env[i]);

    /* The generated API key: 43 base64url characters, never shown on the terminal. */
    mr_dotenv parsed = {0};
    mr_err err = {0};
    assert_int_equal(mr_dotenv_read(env_path, false, &parsed, &err), MR_OK);
    const char *api_key = mr_dotenv_get(&parsed, "MINDROOM_API_KEY");
    assert_non_null(api_key);
    assert_int_equal(strlen(api_key), 43);
    assert_true(is_base64url(api_key));
    assert_null(strstr(r.out, api_key));
    assert_null(strstr(r.err, api_key));
    assert_non_null(strstr(r.out, "mindroom connect --pair-code ABCD-EFGH"));
    assert_non_null(strstr(r.out, "OPENAI_API_KEY"));

    expect_valid(sb, config, "(1 agent, 0 teams, 1 room), 3 warnings\n");
    mr_dotenv_free(&parsed);
    free(yaml);
    free(env);
    cli_run_free(&r);
}

static char *api_key_of(const char *env_path)
{
    mr_dotenv parsed = {0};
    mr_err err = {0};
    assert_int_equal(mr_dotenv_read(env_path, false, &parsed, &err), MR_OK);
    const char *v = mr_dotenv_get(&parsed, "MINDROOM_API_KEY");
    assert_non_null(v);
    char *copy = strdup(v);
    mr_dotenv_free(&parsed);
    return copy;
}

static void test_each_install_gets_its_own_api_key(void **state)
{
    sandbox *sb = *state;
    make_dirs(sb_path(sb, "a"));
    make_dirs(sb_path(sb, "b"));
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--path", "a", NULL});
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--path", "b", NULL});
    char *a = api_key_of(sb_path(sb, "a/.env"));
    char *b = api_key_of(sb_path(sb, "b/.env"));
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_second_init_without_force_refuses_and_changes_nothing(void **state)
{
    sandbox *sb = *state;
    expect_run(sb, 0, "", (const char *const[]){"config", "init", NULL});
    const char *config = sb_path(sb, ".mindroom/config.yaml");
    const char *env_path = sb_path(sb, ".mindroom/.env");
    /* A user's edit, which a refused init must keep byte for byte. */
    char *before = slurp(config);
    size_t n = strlen(before) + 32;
    char *edited = malloc(n);
    snprintf(edited, n, "%s# my note\n", before);
    spit(config, edited);
    char *env_before = slurp(env_path);

    cli_run r = run_cli(sb, "config", "init");
    assert_int_equal(r.status, 1);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want,
             "mindroom config init: %s already exists; use --force to replace it (.env is kept either way)\n",
             config);
    assert_string_equal(r.err, want);
    char *after = slurp(config);
    char *env_after = slurp(env_path);
    assert_string_equal(after, edited);
    assert_string_equal(env_after, env_before);
    free(before);
    free(edited);
    free(after);
    free(env_before);
    free(env_after);
    cli_run_free(&r);
}

static void test_force_replaces_config_but_keeps_the_users_env(void **state)
{
    sandbox *sb = *state;
    const char *config = sb_path(sb, ".mindroom/config.yaml");
    const char *env_path = sb_path(sb, ".mindroom/.env");
    expect_run(sb, 0, "", (const char *const[]){"config", "init", NULL});
    spit(config, "agents: {}\n# mine\n");
    /* The user puts in a real key: --force must never lose it. */
    char *env = slurp(env_path);
    char *at = strstr(env, "OPENAI_API_KEY=your-openai-key-here\n");
    assert_non_null(at);
    size_t n = strlen(env) + 64;
    char *edited = malloc(n);
    snprintf(edited, n, "%.*sOPENAI_API_KEY=sk-user-real-key\n%s", (int)(at - env), env,
             at + strlen("OPENAI_API_KEY=your-openai-key-here\n"));
    spit(env_path, edited);

    cli_run r = run_cli(sb, "config", "init", "--force");
    assert_int_equal(r.status, 0);
    char *yaml = slurp(config);
    assert_null(strstr(yaml, "# mine"));
    assert_non_null(strstr(yaml, "    provider: openai\n"));
    char *env_after = slurp(env_path);
    assert_string_equal(env_after, edited);
    assert_non_null(strstr(r.out, "(it already has the Matrix settings)"));
    assert_null(strstr(r.out, "sk-user-real-key"));
    free(env);
    free(edited);
    free(yaml);
    free(env_after);
    cli_run_free(&r);
}

static void test_existing_env_gets_only_missing_matrix_keys_under_heading(void **state)
{
    sandbox *sb = *state;
    const char *env_path = sb_path(sb, ".mindroom/.env");
    make_dirs(sb_path(sb, ".mindroom"));
    const char *mine = "OPENAI_API_KEY=sk-mine\nMATRIX_HOMESERVER=https://matrix.example.org\n";
    spit(env_path, mine);
    chmod(env_path, 0644);

    cli_run r = run_cli(sb, "config", "init");
    assert_int_equal(r.status, 0);
    char *env = slurp(env_path);
    assert_string_equal(env, "OPENAI_API_KEY=sk-mine\n"
                             "MATRIX_HOMESERVER=https://matrix.example.org\n"
                             "\n" HOSTED_HEADING "\n"
                             "MATRIX_SERVER_NAME=mindroom.chat\n"
                             "MINDROOM_PROVISIONING_URL=https://mindroom.chat\n"
                             "MINDROOM_NAMESPACE=\n"
                             "MATRIX_REGISTRATION_TOKEN=\n");
    expect_mode(env_path, 0600);
    assert_non_null(strstr(r.out, "added 4 missing Matrix settings"));
    free(env);
    cli_run_free(&r);
}

static void test_print_writes_nothing_and_matches_the_file(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "config", "init", "--print");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_true(starts_with(r.out, "# MindRoom configuration"));
    assert_false(exists(sb_path(sb, ".mindroom")));
    assert_false(exists(sb_path(sb, "config.yaml")));

    expect_run(sb, 0, "", (const char *const[]){"config", "init", NULL});
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    assert_string_equal(r.out, yaml);
    /* With a config in place, --print still only prints. */
    cli_run again = run_cli(sb, "config", "init", "--print");
    assert_int_equal(again.status, 0);
    assert_string_equal(again.out, yaml);
    free(yaml);
    cli_run_free(&again);
    cli_run_free(&r);
}

static void test_provider_openrouter_writes_its_key(void **state)
{
    sandbox *sb = *state;
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--provider", "openrouter", NULL});
    char *env = slurp(sb_path(sb, ".mindroom/.env"));
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    assert_non_null(strstr(env, "\nOPENROUTER_API_KEY=your-openrouter-key-here\n"));
    assert_non_null(strstr(env, "\n# OPENAI_API_KEY=your-openai-key-here\n"));
    assert_null(strstr(env, "\nOPENAI_API_KEY="));
    assert_non_null(strstr(yaml, "  default:\n    provider: openrouter\n"));
    expect_valid(sb, sb_path(sb, ".mindroom/config.yaml"), "(1 agent, 0 teams, 1 room)");
    free(env);
    free(yaml);
}

/* Every --provider value and alias gives a config the loader accepts, with the right provider. */
static void test_every_provider_and_alias_validates(void **state)
{
    sandbox *sb = *state;
    static const struct {
        const char *arg;
        const char *provider;
    } cases[] = {
        {"openai", "openai"}, {"OpenAI", "openai"}, {"anthropic", "anthropic"}, {"claude", "anthropic"},
        {"openrouter", "openrouter"}, {"azure", "azure"}, {"azure_openai", "azure"},
        {"azure-openai", "azure"}, {"bedrock_claude", "bedrock_claude"}, {"codex", "codex"},
        {"kimi", "kimi"}, {"ollama", "ollama"}, {"llama.cpp", "llama_cpp"}, {"llama-cpp", "llama_cpp"},
        {"llama_cpp", "llama_cpp"}, {"vertexai_claude", "vertexai_claude"},
        {"vertexai", "vertexai_claude"}, {"vertex", "vertexai_claude"},
        {"vertex-anthropic", "vertexai_claude"}, {"vertexai-anthropic", "vertexai_claude"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_run r = run_cli(sb, "config", "init", "--print", "--provider", cases[i].arg);
        assert_int_equal(r.status, 0);
        char want[128];
        snprintf(want, sizeof want, "  default:\n    provider: %s\n", cases[i].provider);
        if (!strstr(r.out, want))
            fail_msg("--provider %s: config lacks '%s'", cases[i].arg, want);
        const char *file = sb_path(sb, "../provider.yaml");
        spit(file, r.out);
        expect_valid(sb, file, "(1 agent, 0 teams, 1 room)");
        cli_run_free(&r);
    }
    /* Local servers get a host and no key line. */
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--provider", "ollama", NULL});
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    char *env = slurp(sb_path(sb, ".mindroom/.env"));
    assert_non_null(strstr(yaml, "    host: http://localhost:11434\n"));
    assert_null(strstr(env, "\nOPENAI_API_KEY="));
    assert_null(strstr(env, "\nOLLAMA"));
    free(yaml);
    free(env);
}

static void test_bad_provider_profile_or_server_exit_2_and_write_nothing(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "config", "init", "--provider", "gpt");
    assert_int_equal(r.status, 2);
    assert_true(starts_with(r.err, "mindroom config init: unknown --provider 'gpt'; accepted: openai, "));
    assert_non_null(strstr(r.err, "anthropic (claude)"));
    assert_non_null(strstr(r.err, "llama.cpp (llama-cpp|llama_cpp)"));
    assert_non_null(strstr(r.err, "; try 'mindroom config init --help'\n"));
    assert_int_equal(count_of(r.err, "\n"), 1);
    cli_run_free(&r);

    expect_run(sb, 2,
               "mindroom config init: unknown --profile 'full'; accepted: public; try 'mindroom config init --help'\n",
               (const char *const[]){"config", "init", "--profile", "full", NULL});
    expect_run(sb, 2,
               "mindroom config init: unknown --matrix-server 'example.org'; accepted: mindroom.chat, "
               "self-hosted; try 'mindroom config init --help'\n",
               (const char *const[]){"config", "init", "--matrix-server", "example.org", NULL});
    assert_false(exists(sb_path(sb, ".mindroom")));
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--profile", "public", NULL});
    assert_true(exists(sb_path(sb, ".mindroom/config.yaml")));
}

static void test_self_hosted_uses_a_local_homeserver(void **state)
{
    sandbox *sb = *state;
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--matrix-server", "self-hosted", NULL});
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    char *env = slurp(sb_path(sb, ".mindroom/.env"));
    assert_non_null(strstr(yaml, "\nmindroom_user:\n  username: mindroom_user\n  display_name: MindRoomUser\n"));
    assert_non_null(strstr(env, "\nMATRIX_HOMESERVER=http://localhost:8008\n"));
    assert_non_null(strstr(env, "\nMATRIX_SERVER_NAME=localhost\n"));
    assert_null(strstr(env, "MINDROOM_PROVISIONING_URL"));
    assert_null(strstr(env, "mindroom.chat"));
    expect_valid(sb, sb_path(sb, ".mindroom/config.yaml"), "(1 agent, 0 teams, 1 room)");
    free(yaml);
    free(env);
}

static void test_self_hosted_with_homeserver_and_owner(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "config", "init", "--matrix-server", "self-hosted", "--homeserver",
                        "https://matrix.example.org:8448", "--owner", "@alice:example.org", "--no-input");
    assert_int_equal(r.status, 0);
    char *env = slurp(sb_path(sb, ".mindroom/.env"));
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    const char *want_env[] = {
        "\nMATRIX_HOMESERVER=https://matrix.example.org:8448\n",
        "\nMATRIX_SERVER_NAME=matrix.example.org\n",
        "\n# MATRIX_REGISTRATION_SHARED_SECRET=\n",
        "\n# MATRIX_REGISTRATION_TOKEN=\n",
        "\nOPENAI_API_KEY=your-openai-key-here\n",
        "\n# OPENAI_BASE_URL=https://api.openai.com/v1\n",
    };
    for (size_t i = 0; i < sizeof want_env / sizeof *want_env; i++)
        if (!strstr(env, want_env[i]))
            fail_msg(".env lacks:\n%s\n---\n%s", want_env[i], env);
    assert_null(strstr(env, "MINDROOM_PROVISIONING_URL"));
    assert_null(strstr(env, "mindroom.chat"));
    /* Filled in only by the admin: no line sets either yet. */
    assert_null(strstr(env, "\nMATRIX_REGISTRATION_TOKEN="));
    assert_null(strstr(env, "\nMATRIX_REGISTRATION_SHARED_SECRET="));
    assert_null(strstr(yaml, MR_CONFIG_OWNER_PLACEHOLDER));
    assert_int_equal(count_of(yaml, "- \"@alice:example.org\"\n"), 3);
    /* The owner is set: no step about it; the next steps name the registration settings. */
    assert_null(strstr(r.out, "--owner"));
    assert_non_null(strstr(r.out, "Let MindRoom register its agents on https://matrix.example.org:8448"));
    assert_non_null(strstr(r.out, "mindroom doctor --config "));
    expect_valid(sb, sb_path(sb, ".mindroom/config.yaml"), "(1 agent, 0 teams, 1 room)\n");
    free(env);
    free(yaml);
    cli_run_free(&r);

    /* --server-name wins over the URL's host. */
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--matrix-server", "self-hosted",
                                                  "--homeserver", "https://matrix.example.org",
                                                  "--server-name", "example.org", "--path", "other/", NULL});
    env = slurp(sb_path(sb, "other/.env"));
    assert_non_null(strstr(env, "\nMATRIX_HOMESERVER=https://matrix.example.org\n"));
    assert_non_null(strstr(env, "\nMATRIX_SERVER_NAME=example.org\n"));
    free(env);
}

static void test_self_hosted_without_owner_says_what_to_do(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "config", "init", "--matrix-server", "self-hosted");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Name yourself as the owner, who alone may talk to the agents: run this "
                                  "command\n     again with --owner @you:localhost --force, or replace each "
                                  "of the three\n     " MR_CONFIG_OWNER_PLACEHOLDER " in "));
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    assert_int_equal(count_of(yaml, MR_CONFIG_OWNER_PLACEHOLDER), 3);
    assert_non_null(strstr(yaml, "--owner @alice:localhost --force` again.\n"));
    free(yaml);
    cli_run_free(&r);
}

static void test_self_hosted_bad_flags_exit_2_and_write_nothing(void **state)
{
    sandbox *sb = *state;
    static const struct {
        const char *args[4];
        const char *err; /* the start of stderr */
    } cases[] = {
        {{"--homeserver", "matrix.example.org"},
         "mindroom config init: --homeserver: \"matrix.example.org\" is not an http:// or https:// URL; "},
        {{"--homeserver", "https://"}, "mindroom config init: --homeserver: \"https://\" has no usable host; "},
        {{"--homeserver", "https://bob:pw@matrix.example.org"},
         "mindroom config init: --homeserver: credentials are not allowed in the URL; "},
        {{"--homeserver", "https://matrix.example.org/#x"},
         "mindroom config init: --homeserver: \"https://matrix.example.org/#x\" has a character a URL "
         "cannot hold unescaped"},
        {{"--homeserver", "https://bad_host!/"}, "mindroom config init: --homeserver: its host cannot be a "
                                                 "Matrix server name: "},
        {{"--server-name", "not a name"}, "mindroom config init: --server-name: "},
        {{"--owner", "alice"}, "mindroom config init: --owner: "},
        {{"--owner", "@alice"}, "mindroom config init: --owner: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *args[8] = {"config", "init", "--matrix-server", "self-hosted"};
        for (size_t k = 0; cases[i].args[k]; k++)
            args[4 + k] = cases[i].args[k];
        cli_run r = run_cli_env(sb, NULL, args);
        if (r.status != 2 || !starts_with(r.err, cases[i].err) ||
            !strstr(r.err, "; try 'mindroom config init --help'\n") || count_of(r.err, "\n") != 1)
            fail_msg("%s %s: exit %d, stderr:\n%s", cases[i].args[0], cases[i].args[1], r.status, r.err);
        assert_string_equal(r.out, "");
        cli_run_free(&r);
    }
    expect_run(sb, 2, "mindroom config init: --homeserver is for --matrix-server self-hosted; the hosted "
                      "server is mindroom.chat; try 'mindroom config init --help'\n",
               (const char *const[]){"config", "init", "--homeserver", "https://matrix.example.org", NULL});
    expect_run(sb, 2, "mindroom config init: --server-name is for --matrix-server self-hosted; the hosted "
                      "server is mindroom.chat; try 'mindroom config init --help'\n",
               (const char *const[]){"config", "init", "--server-name", "example.org", NULL});
    assert_false(exists(sb_path(sb, ".mindroom")));
}

/* The .env of an earlier hosted init would send registration to mindroom.chat's provisioning
 * API: a self-hosted init clears that and, named on the command line, sets the homeserver. */
static void test_self_hosted_retargets_an_existing_hosted_env(void **state)
{
    sandbox *sb = *state;
    expect_run(sb, 0, "", (const char *const[]){"config", "init", NULL});
    const char *env_path = sb_path(sb, ".mindroom/.env");
    char *api_key = api_key_of(env_path);
    cli_run r = run_cli(sb, "config", "init", "--matrix-server", "self-hosted", "--homeserver",
                        "http://127.0.0.1:8008", "--server-name", "localhost", "--force");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "Cleared MINDROOM_PROVISIONING_URL in "));
    assert_non_null(strstr(r.out, "Set MATRIX_HOMESERVER=http://127.0.0.1:8008 in "));
    assert_non_null(strstr(r.out, "Set MATRIX_SERVER_NAME=localhost in "));
    mr_dotenv env = {0};
    mr_err err = {0};
    assert_int_equal(mr_dotenv_read(env_path, false, &env, &err), MR_OK);
    assert_string_equal(mr_dotenv_get(&env, "MATRIX_HOMESERVER"), "http://127.0.0.1:8008");
    assert_string_equal(mr_dotenv_get(&env, "MATRIX_SERVER_NAME"), "localhost");
    assert_string_equal(mr_dotenv_get(&env, "MINDROOM_PROVISIONING_URL"), "");
    assert_string_equal(mr_dotenv_get(&env, "MINDROOM_API_KEY"), api_key);
    assert_string_equal(mr_dotenv_get(&env, "OPENAI_API_KEY"), "your-openai-key-here");
    expect_mode(env_path, 0600);
    mr_dotenv_free(&env);
    cli_run_free(&r);

    /* Without --homeserver the homeserver in .env stays. */
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--matrix-server", "self-hosted", "--force", NULL});
    assert_int_equal(mr_dotenv_read(env_path, false, &env, &err), MR_OK);
    assert_string_equal(mr_dotenv_get(&env, "MATRIX_HOMESERVER"), "http://127.0.0.1:8008");
    mr_dotenv_free(&env);
    free(api_key);
}

static void test_owner_from_env_replaces_the_placeholder(void **state)
{
    sandbox *sb = *state;
    make_dirs(sb_path(sb, ".mindroom"));
    spit(sb_path(sb, ".mindroom/.env"), "MINDROOM_OWNER_USER_ID=@alice:mindroom.chat\n");
    cli_run r = run_cli(sb, "config", "init");
    assert_int_equal(r.status, 0);
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    assert_null(strstr(yaml, MR_CONFIG_OWNER_PLACEHOLDER));
    assert_int_equal(count_of(yaml, "- \"@alice:mindroom.chat\"\n"), 3);
    /* Already paired: no pairing step, and no placeholder warnings. */
    assert_null(strstr(r.out, "--pair-code"));
    cli_run v = run_cli(sb, "config", "validate");
    assert_int_equal(v.status, 0);
    assert_string_equal(v.err, "");
    assert_non_null(strstr(v.out, ": valid (1 agent, 0 teams, 1 room)\n"));
    free(yaml);
    cli_run_free(&v);
    cli_run_free(&r);
}

static void test_invalid_owner_in_env_keeps_the_placeholder(void **state)
{
    sandbox *sb = *state;
    make_dirs(sb_path(sb, ".mindroom"));
    spit(sb_path(sb, ".mindroom/.env"), "MINDROOM_OWNER_USER_ID=alice\n");
    cli_run r = run_cli(sb, "config", "init");
    assert_int_equal(r.status, 0);
    assert_true(starts_with(r.err, "mindroom config init: warning: ignoring MINDROOM_OWNER_USER_ID in "));
    char *yaml = slurp(sb_path(sb, ".mindroom/config.yaml"));
    assert_int_equal(count_of(yaml, MR_CONFIG_OWNER_PLACEHOLDER), 3);
    free(yaml);
    cli_run_free(&r);
}

static void test_unreadable_env_stops_before_writing(void **state)
{
    sandbox *sb = *state;
    make_dirs(sb_path(sb, ".mindroom"));
    spit(sb_path(sb, ".mindroom/.env"), "OPENAI_API_KEY=sk-mine\nthis is not an assignment\n");
    cli_run r = run_cli(sb, "config", "init");
    assert_int_equal(r.status, 1);
    assert_true(starts_with(r.err, "mindroom config init: "));
    assert_non_null(strstr(r.err, "/.mindroom/.env:2"));
    assert_int_equal(count_of(r.err, "\n"), 1);
    assert_false(exists(sb_path(sb, ".mindroom/config.yaml")));
    char *env = slurp(sb_path(sb, ".mindroom/.env"));
    assert_string_equal(env, "OPENAI_API_KEY=sk-mine\nthis is not an assignment\n");
    assert_null(strstr(r.err, "sk-mine"));
    free(env);
    cli_run_free(&r);
}

static void test_lookup_order_for_init(void **state)
{
    sandbox *sb = *state;
    char env_var[PATH_MAX + 32];
    snprintf(env_var, sizeof env_var, "MINDROOM_CONFIG_PATH=%s", sb_path(sb, "custom/mr.yaml"));
    const char *env[] = {env_var, NULL};

    /* Nothing exists yet: MINDROOM_CONFIG_PATH when set, its .env next to it. */
    make_dirs(sb_path(sb, "custom"));
    cli_run r = run_cli_with(sb, env, "config", "init");
    assert_int_equal(r.status, 0);
    assert_true(exists(sb_path(sb, "custom/mr.yaml")));
    assert_true(exists(sb_path(sb, "custom/.env")));
    assert_false(exists(sb_path(sb, ".mindroom")));
    assert_false(exists(sb_path(sb, "config.yaml")));
    cli_run_free(&r);

    /* It beats an existing ./config.yaml, which --force leaves alone. */
    spit(sb_path(sb, "config.yaml"), "# mine\n");
    r = run_cli_with(sb, env, "config", "init", "--force");
    assert_int_equal(r.status, 0);
    char *mine = slurp(sb_path(sb, "config.yaml"));
    assert_string_equal(mine, "# mine\n");
    free(mine);
    cli_run_free(&r);

    /* Without it, ./config.yaml is the one found: init refuses to replace it. */
    r = run_cli(sb, "config", "init");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "config.yaml already exists; use --force"));
    assert_false(exists(sb_path(sb, ".mindroom")));
    cli_run_free(&r);

    /* With neither, ~/.mindroom/config.yaml. */
    assert_int_equal(unlink(sb_path(sb, "config.yaml")), 0);
    expect_run(sb, 0, "", (const char *const[]){"config", "init", NULL});
    assert_true(exists(sb_path(sb, ".mindroom/config.yaml")));
    assert_true(exists(sb_path(sb, ".mindroom/.env")));
    assert_false(exists(sb_path(sb, "config.yaml")));
}

static void test_path_as_directory_or_new_file(void **state)
{
    sandbox *sb = *state;
    make_dirs(sb_path(sb, "dir"));
    expect_run(sb, 0, "", (const char *const[]){"config", "init", "--path", "dir", NULL});
    assert_true(exists(sb_path(sb, "dir/config.yaml")));
    expect_mode(sb_path(sb, "dir/.env"), 0600);

    expect_run(sb, 0, "", (const char *const[]){"config", "init", "-p", "new/sub/my.yaml", NULL});
    assert_true(exists(sb_path(sb, "new/sub/my.yaml")));
    expect_mode(sb_path(sb, "new/sub"), 0700);
    char *env = slurp(sb_path(sb, "new/sub/.env"));
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "\nMINDROOM_STORAGE_PATH=%s/new/sub/mindroom_data\n", sb->work);
    assert_non_null(strstr(env, want));
    free(env);
}

static void test_env_symlink_is_refused_and_target_untouched(void **state)
{
    sandbox *sb = *state;
    char target[PATH_MAX];
    snprintf(target, sizeof target, "%s", sb_path(sb, "../elsewhere.env"));
    spit(target, "SECRET_THING=keep-me\n");
    assert_int_equal(chmod(target, 0640), 0);
    const mode_t target_mode = 0640;
    make_dirs(sb_path(sb, ".mindroom"));
    assert_int_equal(symlink(target, sb_path(sb, ".mindroom/.env")), 0);

    const char *const *runs[] = {
        (const char *const[]){"config", "init", NULL},
        (const char *const[]){"config", "init", "--force", NULL},
    };
    for (size_t i = 0; i < 2; i++) {
        cli_run r = run_cli_env(sb, NULL, runs[i]);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err, "/.mindroom/.env is a symbolic link; refusing to write through it"));
        assert_false(exists(sb_path(sb, ".mindroom/config.yaml")));
        cli_run_free(&r);
    }
    char *after = slurp(target);
    assert_string_equal(after, "SECRET_THING=keep-me\n");
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 0777, target_mode);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SANDBOXED(test_init_writes_config_and_env_in_home),
        SANDBOXED(test_each_install_gets_its_own_api_key),
        SANDBOXED(test_second_init_without_force_refuses_and_changes_nothing),
        SANDBOXED(test_force_replaces_config_but_keeps_the_users_env),
        SANDBOXED(test_existing_env_gets_only_missing_matrix_keys_under_heading),
        SANDBOXED(test_print_writes_nothing_and_matches_the_file),
        SANDBOXED(test_provider_openrouter_writes_its_key),
        SANDBOXED(test_every_provider_and_alias_validates),
        SANDBOXED(test_bad_provider_profile_or_server_exit_2_and_write_nothing),
        SANDBOXED(test_self_hosted_uses_a_local_homeserver),
        SANDBOXED(test_self_hosted_with_homeserver_and_owner),
        SANDBOXED(test_self_hosted_without_owner_says_what_to_do),
        SANDBOXED(test_self_hosted_bad_flags_exit_2_and_write_nothing),
        SANDBOXED(test_self_hosted_retargets_an_existing_hosted_env),
        SANDBOXED(test_owner_from_env_replaces_the_placeholder),
        SANDBOXED(test_invalid_owner_in_env_keeps_the_placeholder),
        SANDBOXED(test_unreadable_env_stops_before_writing),
        SANDBOXED(test_lookup_order_for_init),
        SANDBOXED(test_path_as_directory_or_new_file),
        SANDBOXED(test_env_symlink_is_refused_and_target_untouched),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
