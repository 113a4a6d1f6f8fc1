/* test_doctor.c -- `mindroom doctor` as a process against the test homeserver (shared-secret
 * registration on, or off with a registration token instead) and the model stub (up, down,
 * another key): the line each check prints, the exit codes, and no secret in the output. */
#include "cli_harness.h"
#include "selfhosted_harness.h"

static struct {
    mr_hs_peer secret_hs; /* shared-secret registration on, POST /register off */
    mr_hs_peer token_hs;  /* shared-secret registration off, registration token on */
    mr_model_stub stub;
    bool started[3];
} G;

static int group_setup(void **state)
{
    (void)state;
    sh_clear_environment();
    mr_err err = {0};
    mr_hs_peer_opts with_secret = {.shared_secret = SH_SECRET};
    mr_hs_peer_opts with_token = {.registration_token = SH_TOKEN};
    static const char *const models[] = {SH_MODEL, NULL};
    if ((G.started[0] = mr_hs_peer_start(&with_secret, &G.secret_hs, &err) == MR_OK) &&
        (G.started[1] = mr_hs_peer_start(&with_token, &G.token_hs, &err) == MR_OK) &&
        (G.started[2] = mr_model_stub_start(SH_KEY, models, &G.stub, &err) == MR_OK))
        return 0;
    fprintf(stderr, "starting the peers: %s\n", err.msg);
    return -1;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_err err = {0};
    int failed = 0;
    if (G.started[0] && mr_hs_peer_stop(&G.secret_hs, &err) != MR_OK && ++failed)
        fprintf(stderr, "%s\n", err.msg);
    if (G.started[1] && mr_hs_peer_stop(&G.token_hs, &err) != MR_OK && ++failed)
        fprintf(stderr, "%s\n", err.msg);
    if (G.started[2] && mr_model_stub_stop(&G.stub, &err) != MR_OK && ++failed)
        fprintf(stderr, "%s\n", err.msg);
    return failed ? -1 : 0;
}

/* A self-hosted install on hs with the model at the stub, filled in with extra lines. */
static void install(sandbox *sb, const char *hs, const mr_dotenv_kv *extra, size_t n)
{
    sh_init(sb, hs);
    const mr_dotenv_kv model[] = {{"OPENAI_API_KEY", SH_KEY}, {"OPENAI_BASE_URL", G.stub.url}};
    sh_set_env(sb, model, 2);
    if (n)
        sh_set_env(sb, extra, n);
}

/* A loopback URL where nothing answers. */
static void nobody_listening(char *url, size_t cap)
{
    int port = 0;
    mr_err err = {0};
    sh_check(mr_tp_free_port(&port, &err), &err, "a free port");
    snprintf(url, cap, "http://127.0.0.1:%d", port);
}

static cli_run doctor(sandbox *sb)
{
    return run_cli(sb, "doctor", "--config", sb_path(sb, "config.yaml"));
}

static void expect_line(const cli_run *r, const char *line)
{
    if (!strstr(r->out, line))
        fail_msg("doctor's output lacks:\n%s\n--- stdout:\n%s--- stderr:\n%s", line, r->out, r->err);
}

/* Exit code as expected, and no secret of the .env in what it printed. */
static void expect_exit(const cli_run *r, int status)
{
    if (r->status != status)
        fail_msg("doctor: exit %d, not %d\n--- stdout:\n%s--- stderr:\n%s", r->status, status, r->out,
                 r->err);
    static const char *const secrets[] = {SH_SECRET, SH_TOKEN, SH_KEY, "wrong-token-0000"};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        if (strstr(r->out, secrets[i]) || strstr(r->err, secrets[i]))
            fail_msg("doctor printed the secret %s:\n%s%s", secrets[i], r->out, r->err);
}

static void test_help(void **state)
{
    char *text = expect_help_of(*state, "Usage: mindroom doctor [--config PATH]\n", "doctor");
    expect_all_in("doctor --help", text,
                  (const char *const[]){"POST /_synapse/admin/v1/register", "GET <base>/models",
                                        "Exit codes here: 0 every check ok, or only warnings; 1 a check FAILed",
                                        NULL});
    free(text);
}

static void test_bad_usage_or_config_exits_2(void **state)
{
    sandbox *sb = *state;
    expect_run(sb, 2, "mindroom doctor: unknown option '--fix'; try 'mindroom doctor --help'\n",
               (const char *const[]){"doctor", "--fix", NULL});
    cli_run r = run_cli(sb, "doctor", "--config", sb_path(sb, "absent.yaml"));
    assert_int_equal(r.status, 2);
    assert_true(starts_with(r.err, "mindroom doctor: --config: "));
    assert_non_null(strstr(r.err, "absent.yaml: No such file or directory"));
    cli_run_free(&r);

    install(sb, G.secret_hs.url, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_SHARED_SECRET", SH_SECRET}}, 1);
    FILE *f = fopen(sb_path(sb, "config.yaml"), "a");
    assert_non_null(f);
    fputs("agentz: {}\n", f);
    fclose(f);
    r = doctor(sb);
    expect_exit(&r, 2);
    expect_line(&r, "FAIL  config: ");
    assert_non_null(strstr(r.err, "agentz: "));
    /* The other checks still run, so one pass shows everything to fix. */
    expect_line(&r, "ok    homeserver: ");
    cli_run_free(&r);
}

static void test_shared_secret_install_is_all_ok(void **state)
{
    sandbox *sb = *state;
    install(sb, G.secret_hs.url, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_SHARED_SECRET", SH_SECRET}}, 1);
    cli_run r = doctor(sb);
    expect_exit(&r, 0);
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "ok    config: %s is valid (1 agent, 1 model)\n", sb_path(sb, "config.yaml"));
    expect_line(&r, line);
    snprintf(line, sizeof line, "ok    storage: %s will be created under %s (writable)\n",
             sb_path(sb, "mindroom_data"), sb->work);
    expect_line(&r, line);
    snprintf(line, sizeof line, "ok    homeserver: %s answers; Matrix versions ", G.secret_hs.url);
    expect_line(&r, line);
    snprintf(line, sizeof line, "ok    registration on %s: offers shared-secret registration "
             "(Synapse admin API)\n", G.secret_hs.url);
    expect_line(&r, line);
    snprintf(line, sizeof line, "ok    registration: agents register with MATRIX_REGISTRATION_SHARED_SECRET "
             "on %s (the secret is checked at the first registration)\n", G.secret_hs.url);
    expect_line(&r, line);
    snprintf(line, sizeof line, "ok    model default: %s/v1/models (from OPENAI_BASE_URL) answers with "
             "OPENAI_API_KEY as the key; " SH_MODEL " is listed\n", G.stub.url);
    expect_line(&r, line);
    expect_line(&r, "\n6 ok, 0 warnings, 0 FAIL\n");
    cli_run_free(&r);
}

static void test_shared_secret_set_but_server_has_it_off(void **state)
{
    sandbox *sb = *state;
    install(sb, G.token_hs.url, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_SHARED_SECRET", SH_SECRET}}, 1);
    cli_run r = doctor(sb);
    expect_exit(&r, 1);
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "ok    registration on %s: offers POST /register with "
             "[m.login.registration_token", G.token_hs.url);
    expect_line(&r, line);
    snprintf(line, sizeof line, "FAIL  registration: MATRIX_REGISTRATION_SHARED_SECRET is set, but %s has "
             "shared-secret registration off (HTTP 400 M_UNKNOWN: Shared secret registration is not "
             "enabled): set registration_shared_secret in its homeserver.yaml, or use "
             "MATRIX_REGISTRATION_TOKEN instead\n", G.token_hs.url);
    expect_line(&r, line);
    expect_line(&r, "\n5 ok, 0 warnings, 1 FAIL\n");
    cli_run_free(&r);
}

static void test_registration_token_checked_with_the_server(void **state)
{
    sandbox *sb = *state;
    install(sb, G.token_hs.url, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_TOKEN", SH_TOKEN}}, 1);
    cli_run r = doctor(sb);
    expect_exit(&r, 0);
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "ok    registration: agents register with MATRIX_REGISTRATION_TOKEN on %s\n",
             G.token_hs.url);
    expect_line(&r, line);
    cli_run_free(&r);

    sh_set_env(sb, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_TOKEN", "wrong-token-0000"}}, 1);
    r = doctor(sb);
    expect_exit(&r, 1);
    expect_line(&r, "FAIL  registration: the homeserver says MATRIX_REGISTRATION_TOKEN is not valid "
                    "(mistyped, used up or expired): ask the admin for a new one\n");
    cli_run_free(&r);

    /* A token, where the server takes none. */
    install(sb, G.secret_hs.url, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_TOKEN", SH_TOKEN}}, 1);
    r = doctor(sb);
    expect_exit(&r, 1);
    snprintf(line, sizeof line, "FAIL  registration: MATRIX_REGISTRATION_TOKEN is set, but %s offers no flow "
             "it completes (POST /register: HTTP 403 M_FORBIDDEN: ", G.secret_hs.url);
    expect_line(&r, line);
    cli_run_free(&r);
}

static void test_no_registration_setting(void **state)
{
    sandbox *sb = *state;
    install(sb, G.secret_hs.url, NULL, 0);
    cli_run r = doctor(sb);
    expect_exit(&r, 1);
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "FAIL  registration: neither MATRIX_REGISTRATION_SHARED_SECRET nor "
             "MATRIX_REGISTRATION_TOKEN is set, and %s has no open registration: set the one your "
             "homeserver allows in %s\n", G.secret_hs.url, sb_path(sb, ".env"));
    expect_line(&r, line);
    cli_run_free(&r);
}

static void test_model_down_wrong_key_or_no_key(void **state)
{
    sandbox *sb = *state;
    install(sb, G.secret_hs.url, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_SHARED_SECRET", SH_SECRET}}, 1);
    char down[64];
    nobody_listening(down, sizeof down);
    sh_set_env(sb, (const mr_dotenv_kv[]){{"OPENAI_BASE_URL", down}}, 1);
    cli_run r = doctor(sb);
    expect_exit(&r, 1);
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "FAIL  model default: GET %s/v1/models: ", down);
    expect_line(&r, line);
    expect_line(&r, "(base URL from OPENAI_BASE_URL, key from OPENAI_API_KEY): check that the server "
                    "runs and its URL\n");
    expect_line(&r, "\n5 ok, 0 warnings, 1 FAIL\n");
    cli_run_free(&r);

    sh_set_env(sb, (const mr_dotenv_kv[]){{"OPENAI_BASE_URL", G.stub.url}, {"OPENAI_API_KEY", "sk-other-1111"}}, 2);
    r = doctor(sb);
    expect_exit(&r, 1);
    snprintf(line, sizeof line, "FAIL  model default: GET %s/v1/models: HTTP 401: Incorrect API key "
             "provided: ", G.stub.url);
    expect_line(&r, line);
    expect_line(&r, ": check the key\n");
    assert_null(strstr(r.out, "sk-other-1111"));
    cli_run_free(&r);

    sh_set_env(sb, (const mr_dotenv_kv[]){{"OPENAI_API_KEY", ""}}, 1);
    r = doctor(sb);
    expect_exit(&r, 1);
    snprintf(line, sizeof line, "FAIL  model default (provider openai): OPENAI_API_KEY is not set "
             "(environment or %s): put the key there\n", sb_path(sb, ".env"));
    expect_line(&r, line);
    cli_run_free(&r);
}

static void test_homeserver_down_or_unset(void **state)
{
    sandbox *sb = *state;
    char down[64];
    nobody_listening(down, sizeof down);
    install(sb, down, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_SHARED_SECRET", SH_SECRET}}, 1);
    cli_run r = doctor(sb);
    expect_exit(&r, 1);
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "FAIL  homeserver: GET %s/_matrix/client/versions: ", down);
    expect_line(&r, line);
    expect_line(&r, ": check MATRIX_HOMESERVER and that the server runs\n");
    /* No registration lines without a server to ask. */
    assert_null(strstr(r.out, "registration"));
    cli_run_free(&r);

    sh_set_env(sb, (const mr_dotenv_kv[]){{"MATRIX_HOMESERVER", ""}}, 1);
    r = doctor(sb);
    expect_exit(&r, 1);
    snprintf(line, sizeof line, "FAIL  homeserver: MATRIX_HOMESERVER is not set (environment or %s): set "
             "it to your homeserver's URL\n", sb_path(sb, ".env"));
    expect_line(&r, line);
    cli_run_free(&r);
}

static void test_storage_in_the_way(void **state)
{
    sandbox *sb = *state;
    install(sb, G.secret_hs.url, (const mr_dotenv_kv[]){{"MATRIX_REGISTRATION_SHARED_SECRET", SH_SECRET}}, 1);
    spit(sb_path(sb, "mindroom_data"), "a file, not a directory\n");
    cli_run r = doctor(sb);
    expect_exit(&r, 1);
    char line[PATH_MAX * 2];
    snprintf(line, sizeof line, "FAIL  storage: MINDROOM_STORAGE_PATH %s: %s is not a directory: set "
             "MINDROOM_STORAGE_PATH to a directory\n", sb_path(sb, "mindroom_data"), sb_path(sb, "mindroom_data"));
    expect_line(&r, line);
    cli_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SANDBOXED(test_help),
        SANDBOXED(test_bad_usage_or_config_exits_2),
        SANDBOXED(test_shared_secret_install_is_all_ok),
        SANDBOXED(test_shared_secret_set_but_server_has_it_off),
        SANDBOXED(test_registration_token_checked_with_the_server),
        SANDBOXED(test_no_registration_setting),
        SANDBOXED(test_model_down_wrong_key_or_no_key),
        SANDBOXED(test_homeserver_down_or_unset),
        SANDBOXED(test_storage_in_the_way),
    };
    return cmocka_run_group_tests_name("cli doctor", tests, group_setup, group_teardown);
}
