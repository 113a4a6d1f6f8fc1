/* test_accounts.c -- every way a homeserver admin gives mindroom-gateway its accounts: an
 * application service, the shared secret, a registration token, open registration, existing
 * accounts with a password or an access token; each first start followed by one that changes
 * nothing, each refusal an exit 2 naming the setting with nothing half-made left, malformed
 * account settings, many accounts registered at once, and the internal user's namespace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"
#include "mindroom/fsutil.h"

#define CONFIG GWT_CONFIG_MIND
#define AS_TOKEN "as-token-gw"
#define SHARED_SECRET "admin-shared-secret"

static const char *const managed[] = {"router", "mind"};
static const char *const managed_users[] = {GWT_ROUTER, GWT_MIND};

/* Starts the gateway expecting exit 2, and line in its log (times: counted over every run;
 * a refused registration method fails, and is logged, once for each account). */
static void expect_refusal(gwt *f, const char *line, int times)
{
    gwt_start(f, NULL);
    assert_int_equal(gwt_wait_exit(f), 2);
    gwt_assert_log(f, line, times);
}

/* Nothing was made: no account on the homeserver besides want, no password or session kept. */
static void assert_nothing_made(gwt *f, const char *const *want, size_t n)
{
    json_t *s = gwt_hs_state(f);
    gwt_assert_users(s, want, n);
    json_decref(s);
    static const char *const keys[] = {"account:router:password", "account:router:token",
                                       "account:mind:password", "account:mind:token"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char *v = gwt_store_secret(f, keys[i]);
        if (v)
            fail_msg("%s was kept although nothing was registered", keys[i]);
    }
}

/* Fails unless user has joined the room alias names. */
static void assert_joined(gwt *f, const char *alias, const char *user)
{
    char room[MR_MATRIX_ID_SIZE];
    gwt_room_id(f, alias, room);
    json_t *s = gwt_hs_state(f);
    const char *m = json_string_value(json_object_get(json_object_get(json_object_get(
        json_object_get(s, "rooms"), room), "members"), user));
    if (!m || strcmp(m, "join") != 0)
        fail_msg("%s in %s: %s, not join", user, alias, m ? m : "no membership");
    json_decref(s);
}

/* The first start makes the managed accounts, the second changes nothing. */
static void first_and_second_start(gwt *f)
{
    gwt_start(f, NULL);
    gwt_wait_ready(f);
    assert_int_equal(gwt_stop(f), 0);
    json_t *s = gwt_hs_state(f);
    gwt_assert_users(s, managed_users, 2);
    json_decref(s);
    gwt_restart_changes_nothing(f, managed, 2);
    gwt_assert_log(f, "gateway: registered @", 2);
}

/* var set wrong: the homeserver refuses it (exit 2, said once for each account) and nothing is
 * made; set right: the accounts are made once, and a second start changes nothing. Neither
 * value is ever logged. */
static void refused_then_fixed(gwt *f, const char *var, const char *wrong, const char *right,
                               const char *refusal, const char *method)
{
    setenv(var, wrong, 1);
    expect_refusal(f, refusal, 2);
    assert_nothing_made(f, NULL, 0);
    setenv(var, right, 1);
    first_and_second_start(f);
    char line[128];
    snprintf(line, sizeof line, "registration through %s", method);
    gwt_assert_log(f, line, 3);
    char *log = mr_tp_read_text(f->log);
    assert_null(strstr(log, wrong));
    assert_null(strstr(log, right));
    free(log);
}

static void test_appservice_refused_then_first_start(void **state)
{
    (void)state;
    gwt f;
    mr_hs_peer_opts o = {.appservice_token = AS_TOKEN};
    gwt_setup(&f, &o, CONFIG);
    setenv("MATRIX_MANAGED_ACCOUNT_AUTH", "appservice", 1);
    /* Registered before the first login: Synapse gives an appservice login of a user it does
     * not have a token, then refuses that token. */
    refused_then_fixed(&f, "MATRIX_APPSERVICE_TOKEN", "not-the-as-token", AS_TOKEN,
                       "the homeserver refused MATRIX_APPSERVICE_TOKEN (it must be the as_token of "
                       "an application service", "appservice");
    gwt_assert_log(&f, "M_UNKNOWN_TOKEN", 2);
    /* Passwordless: nothing to keep but the session, renewed on the same device. */
    assert_null(gwt_store_secret(&f, "account:mind:password"));
    char *device = gwt_store_field(&f, "account:mind", "device_id");
    gwt_hs_control(&f, "/_test/soft_logout", json_pack("{s:s}", "user_id", GWT_MIND));
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    char *device2 = gwt_store_field(&f, "account:mind", "device_id");
    assert_string_equal(device, device2);
    free(device);
    free(device2);
    gwt_assert_log(&f, "gateway: registered @", 2);
    gwt_teardown(&f);
}

static void test_shared_secret_refused_then_fixed(void **state)
{
    (void)state;
    gwt f;
    mr_hs_peer_opts o = {.shared_secret = SHARED_SECRET};
    gwt_setup(&f, &o, CONFIG);
    /* Unpaired, the provisioning URL gives way to the shared secret, with a warning. */
    setenv("MINDROOM_PROVISIONING_URL", "http://127.0.0.1:9", 1);
    refused_then_fixed(&f, "MATRIX_REGISTRATION_SHARED_SECRET", "wrong-shared-secret", SHARED_SECRET,
                       "the homeserver refused MATRIX_REGISTRATION_SHARED_SECRET (it must be the "
                       "registration_shared_secret of the homeserver's config)", "shared secret");
    gwt_assert_log(&f, "HMAC incorrect", 2);
    gwt_assert_log(&f, "MINDROOM_PROVISIONING_URL is not used: MINDROOM_LOCAL_CLIENT_ID and "
                   "MINDROOM_LOCAL_CLIENT_SECRET are not set, so accounts are registered with "
                   "MATRIX_REGISTRATION_SHARED_SECRET", 3);
    unsetenv("MINDROOM_PROVISIONING_URL");
    gwt_teardown(&f);
}

static void test_registration_token_refused_then_fixed(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    /* With a registration token the provisioning service is not asked, paired or not. */
    setenv("MINDROOM_PROVISIONING_URL", "http://127.0.0.1:9", 1);
    setenv("MINDROOM_LOCAL_CLIENT_ID", "client-id", 1);
    setenv("MINDROOM_LOCAL_CLIENT_SECRET", "client-secret", 1);
    refused_then_fixed(&f, "MATRIX_REGISTRATION_TOKEN", "not-the-token", GWT_TOKEN,
                       "the homeserver refused MATRIX_REGISTRATION_TOKEN (it must be a valid "
                       "registration token of the homeserver, with uses left)", "registration token");
    gwt_assert_log(&f, "MINDROOM_PROVISIONING_URL is not used: MATRIX_REGISTRATION_TOKEN is set, so "
                   "accounts are registered on the homeserver directly", 3);
    unsetenv("MINDROOM_PROVISIONING_URL");
    unsetenv("MINDROOM_LOCAL_CLIENT_ID");
    unsetenv("MINDROOM_LOCAL_CLIENT_SECRET");
    gwt_teardown(&f);
}

static void test_open_registration(void **state)
{
    (void)state;
    gwt f;
    mr_hs_peer_opts o = {.open_registration = true};
    gwt_setup(&f, &o, CONFIG);
    first_and_second_start(&f);
    gwt_assert_log(&f, "registration through open registration", 2);
    gwt_teardown(&f);
}

/* A homeserver that registers nobody: the message names every way out. */
static void test_registration_closed_names_every_option(void **state)
{
    (void)state;
    gwt f;
    mr_hs_peer_opts o = {0};
    gwt_setup(&f, &o, CONFIG);
    expect_refusal(&f, "the homeserver does not offer open registration; set "
                   "MATRIX_REGISTRATION_SHARED_SECRET, MATRIX_REGISTRATION_TOKEN, "
                   "MATRIX_MANAGED_ACCOUNT_AUTH=appservice with MATRIX_APPSERVICE_TOKEN, or existing "
                   "accounts as MATRIX_ACCOUNT_<ENTITY>_USER_ID with _PASSWORD or _ACCESS_TOKEN, or "
                   "run `mindroom connect --pair-code ...`", 2);
    assert_nothing_made(&f, NULL, 0);
    gwt_teardown(&f);
}

/* An account the admin has, given with its password (in a file): used, never registered. */
static void test_existing_account_with_password(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    mr_matrix_free(gwt_human(&f, "helper"));
    char pw_file[700];
    snprintf(pw_file, sizeof pw_file, "%s/helper-password", f.dir);
    mr_err err = {0};
    assert_int_equal(mr_fs_write_atomic(pw_file, GWT_PASSWORD "\n", strlen(GWT_PASSWORD) + 1, 0600,
                                        true, &err), MR_OK);
    setenv("MATRIX_ACCOUNT_MIND_USER_ID", "@helper:localhost", 1);
    setenv("MATRIX_ACCOUNT_MIND_PASSWORD_FILE", pw_file, 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    json_t *s = gwt_hs_state(&f);
    static const char *const users[] = {"@helper:localhost", GWT_ROUTER};
    gwt_assert_users(s, users, 2);
    json_decref(s);
    assert_joined(&f, "#lobby:localhost", "@helper:localhost");
    char *uid = gwt_store_field(&f, "account:mind", "user_id");
    assert_string_equal(uid, "@helper:localhost");
    free(uid);
    assert_null(gwt_store_secret(&f, "account:mind:password"));
    gwt_assert_log(&f, "gateway: registered @", 1);
    gwt_assert_log(&f, "(1 given in settings)", 1);
    gwt_restart_changes_nothing(&f, managed, 2);

    /* Its session ended and the password given no longer opens it. */
    unsetenv("MATRIX_ACCOUNT_MIND_PASSWORD_FILE");
    setenv("MATRIX_ACCOUNT_MIND_PASSWORD", "not-the-password", 1);
    gwt_hs_control(&f, "/_test/soft_logout", json_pack("{s:s}", "user_id", "@helper:localhost"));
    expect_refusal(&f, "account @helper:localhost (mind): MATRIX_ACCOUNT_MIND_PASSWORD does not "
                   "open @helper:localhost; give the one that opens it", 1);
    gwt_assert_log(&f, "M_FORBIDDEN", 1);
    s = gwt_hs_state(&f);
    gwt_assert_users(s, users, 2);
    json_decref(s);
    char *log = mr_tp_read_text(f.log);
    assert_null(strstr(log, GWT_PASSWORD));
    assert_null(strstr(log, "not-the-password"));
    free(log);
    gwt_teardown(&f);
}

/* An install that made its own account for an entity is handed an existing one instead: the
 * given account is used, and what was kept for the made one goes. */
static void test_given_account_replaces_made_one(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    char *made_device = gwt_store_field(&f, "account:mind", "device_id");
    mr_matrix_free(gwt_human(&f, "helper"));
    setenv("MATRIX_ACCOUNT_MIND_USER_ID", "@helper:localhost", 1);
    setenv("MATRIX_ACCOUNT_MIND_PASSWORD", GWT_PASSWORD, 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    gwt_assert_log(&f, "gateway: mind: MATRIX_ACCOUNT_MIND_USER_ID gives @helper:localhost in place "
                   "of " GWT_MIND "; the session and password kept for " GWT_MIND " are dropped", 1);
    assert_null(gwt_store_secret(&f, "account:mind:password"));
    char *uid = gwt_store_field(&f, "account:mind", "user_id");
    char *device = gwt_store_field(&f, "account:mind", "device_id");
    assert_string_equal(uid, "@helper:localhost");
    assert_string_not_equal(device, made_device);
    assert_joined(&f, "#lobby:localhost", "@helper:localhost");
    gwt_restart_changes_nothing(&f, managed, 2);
    free(uid);
    free(device);
    free(made_device);
    gwt_teardown(&f);
}

/* The router as an account the admin has, given with an access token: whoami decides. */
static void test_existing_account_with_token(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    mr_matrix *bot = gwt_human(&f, "bot");
    char device[MR_MATRIX_ID_SIZE];
    snprintf(device, sizeof device, "%s", mr_matrix_device_id(bot));
    setenv("MATRIX_ACCOUNT_ROUTER_USER_ID", "@bot:localhost", 1);
    setenv("MATRIX_ACCOUNT_ROUTER_ACCESS_TOKEN", mr_matrix_access_token(bot), 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    json_t *s = gwt_hs_state(&f);
    static const char *const users[] = {"@bot:localhost", GWT_MIND};
    gwt_assert_users(s, users, 2);
    json_decref(s);
    char *dev = gwt_store_field(&f, "account:router", "device_id");
    assert_string_equal(dev, device);
    free(dev);
    /* The token stays in the settings: the store keeps no copy. */
    assert_null(gwt_store_secret(&f, "account:router:token"));
    static const char *const made[] = {"mind"};
    gwt_restart_changes_nothing(&f, made, 1);
    dev = gwt_store_field(&f, "account:router", "device_id");
    assert_string_equal(dev, device);
    free(dev);

    /* The token revoked while the gateway runs: there is no logging in again, and the log
     * says what to do. */
    char token[512];
    snprintf(token, sizeof token, "%s", mr_matrix_access_token(bot));
    setenv("MINDROOM_GATEWAY_SYNC_TIMEOUT_MS", "200", 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    mr_err err = {0};
    assert_int_equal(mr_matrix_logout(bot, &err), MR_OK);
    gwt_wait_log(&f, "the homeserver no longer accepts MATRIX_ACCOUNT_ROUTER_ACCESS_TOKEN for "
                 "@bot:localhost; give a current access token of that account and restart", 1);
    assert_int_equal(gwt_stop(&f), 0);
    unsetenv("MINDROOM_GATEWAY_SYNC_TIMEOUT_MS");
    /* A token of someone else. */
    mr_matrix *other = gwt_human(&f, "other");
    setenv("MATRIX_ACCOUNT_ROUTER_ACCESS_TOKEN", mr_matrix_access_token(other), 1);
    expect_refusal(&f, "MATRIX_ACCOUNT_ROUTER_ACCESS_TOKEN does not open @bot:localhost; give a "
                   "current access token of that account: it opens @other:localhost, not "
                   "@bot:localhost", 1);
    /* A token the homeserver no longer knows. */
    setenv("MATRIX_ACCOUNT_ROUTER_ACCESS_TOKEN", token, 1);
    expect_refusal(&f, "MATRIX_ACCOUNT_ROUTER_ACCESS_TOKEN does not open @bot:localhost", 2);
    char *log = mr_tp_read_text(f.log);
    assert_null(strstr(log, token));
    free(log);
    s = gwt_hs_state(&f);
    static const char *const all[] = {"@bot:localhost", GWT_MIND, "@other:localhost"};
    gwt_assert_users(s, all, 3);
    json_decref(s);
    mr_matrix_free(other);
    mr_matrix_free(bot);
    gwt_teardown(&f);
}

/* Every account given: no registration method is needed, so an unpaired provisioning URL
 * and a homeserver closed to registration do not matter. */
static void test_all_accounts_given(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    mr_matrix *bot = gwt_human(&f, "bot");
    mr_matrix_free(gwt_human(&f, "helper"));
    unsetenv("MATRIX_REGISTRATION_TOKEN");
    setenv("MINDROOM_PROVISIONING_URL", "http://127.0.0.1:9", 1);
    setenv("MATRIX_ACCOUNT_ROUTER_USER_ID", "@bot:localhost", 1);
    setenv("MATRIX_ACCOUNT_ROUTER_ACCESS_TOKEN", mr_matrix_access_token(bot), 1);
    setenv("MATRIX_ACCOUNT_MIND_USER_ID", "@helper:localhost", 1);
    setenv("MATRIX_ACCOUNT_MIND_PASSWORD", GWT_PASSWORD, 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    json_t *s = gwt_hs_state(&f);
    static const char *const users[] = {"@bot:localhost", "@helper:localhost"};
    gwt_assert_users(s, users, 2);
    json_decref(s);
    assert_joined(&f, "#lobby:localhost", "@helper:localhost");
    gwt_assert_log(&f, "(2 given in settings)", 1);
    gwt_assert_log(&f, "gateway: registered @", 0);
    unsetenv("MINDROOM_PROVISIONING_URL");
    mr_matrix_free(bot);
    gwt_teardown(&f);
}

static void test_malformed_account_settings(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    static const struct {
        const char *vars[4][2];
        const char *line;
    } cases[] = {
        {{{"MATRIX_ACCOUNT_MIND_USER_ID", "helper"}, {"MATRIX_ACCOUNT_MIND_PASSWORD", "pw-1"}},
         "MATRIX_ACCOUNT_MIND_USER_ID is not a Matrix user ID ("},
        {{{"MATRIX_ACCOUNT_MIND_USER_ID", "@helper:localhost"},
          {"MATRIX_ACCOUNT_MIND_PASSWORD", "pw-2"},
          {"MATRIX_ACCOUNT_MIND_ACCESS_TOKEN", "tok-2"}},
         "MATRIX_ACCOUNT_MIND_PASSWORD and MATRIX_ACCOUNT_MIND_ACCESS_TOKEN are both set; give "
         "only one of them"},
        {{{"MATRIX_ACCOUNT_MIND_PASSWORD", "pw-3"}},
         "MATRIX_ACCOUNT_MIND_PASSWORD is set without MATRIX_ACCOUNT_MIND_USER_ID"},
        {{{"MATRIX_ACCOUNT_MIND_USER_ID", "@helper:localhost"}},
         "MATRIX_ACCOUNT_MIND_USER_ID is set, but neither MATRIX_ACCOUNT_MIND_PASSWORD nor "
         "MATRIX_ACCOUNT_MIND_ACCESS_TOKEN"},
        {{{"MATRIX_ACCOUNT_MIND_USER_ID", "@helper:elsewhere.org"},
          {"MATRIX_ACCOUNT_MIND_ACCESS_TOKEN", "tok-5"}},
         "MATRIX_ACCOUNT_MIND_USER_ID (@helper:elsewhere.org) is not an account of this "
         "homeserver, whose server name is localhost (MATRIX_SERVER_NAME)"},
        {{{"MATRIX_ACCOUNT_MINF_USER_ID", "@helper:localhost"}},
         "MATRIX_ACCOUNT_MINF_USER_ID names no account MindRoom manages"},
        {{{"MATRIX_ACCOUNT_ROUTER_USER_ID", "@helper:localhost"},
          {"MATRIX_ACCOUNT_ROUTER_PASSWORD", "pw-7"},
          {"MATRIX_ACCOUNT_MIND_USER_ID", "@helper:localhost"},
          {"MATRIX_ACCOUNT_MIND_PASSWORD", "pw-7"}},
         "router and mind would both be the Matrix account @helper:localhost; check "
         "MATRIX_ACCOUNT_MIND_USER_ID"},
        {{{"MATRIX_ACCOUNT_MIND_USER_ID", "@helper:localhost"},
          {"MATRIX_ACCOUNT_MIND_ACCESS_TOKEN_FILE", "/nonexistent/token"}},
         "MATRIX_ACCOUNT_MIND_ACCESS_TOKEN_FILE names a file that cannot be read"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (size_t k = 0; k < 4 && cases[i].vars[k][0]; k++)
            setenv(cases[i].vars[k][0], cases[i].vars[k][1], 1);
        expect_refusal(&f, cases[i].line, 1);
        for (size_t k = 0; k < 4 && cases[i].vars[k][0]; k++)
            unsetenv(cases[i].vars[k][0]);
    }
    /* The .env beside config.yaml counts as much as the environment. */
    char env_path[700];
    snprintf(env_path, sizeof env_path, "%s/.env", f.dir);
    static const char env_text[] = "MATRIX_ACCOUNT_TEAM1_USER_ID=@helper:localhost\n";
    mr_err err = {0};
    assert_int_equal(mr_fs_write_atomic(env_path, env_text, strlen(env_text), 0600, true, &err),
                     MR_OK);
    expect_refusal(&f, "MATRIX_ACCOUNT_TEAM1_USER_ID names no account MindRoom manages", 1);
    assert_nothing_made(&f, NULL, 0);
    char *log = mr_tp_read_text(f.log);
    assert_null(strstr(log, "pw-"));
    assert_null(strstr(log, "tok-"));
    free(log);
    gwt_teardown(&f);
}

/* Many accounts on a first start: each registered once, all of them kept, 429s waited out. */
static void test_many_accounts_register_at_once(void **state)
{
    (void)state;
    enum { AGENTS = 24 };
    char config[4096];
    size_t n = (size_t)snprintf(config, sizeof config,
                                "models:\n  default: {provider: openai, id: gpt-5.6}\nagents:\n");
    for (int i = 0; i < AGENTS; i++)
        n += (size_t)snprintf(config + n, sizeof config - n, "  agent%02d: {rooms: [lobby]}\n", i);
    snprintf(config + n, sizeof config - n,
             "authorization:\n  global_users: [\"@alice:localhost\"]\n");
    gwt f;
    gwt_setup(&f, NULL, config);
    gwt_hs_control(&f, "/_test/ratelimit", json_pack("{s:i, s:i}", "count", 30, "retry_after_ms", 20));
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    char ids[AGENTS + 1][64], entities[AGENTS + 1][16];
    const char *want[AGENTS + 1], *ents[AGENTS + 1];
    snprintf(ids[0], sizeof ids[0], "%s", GWT_ROUTER);
    snprintf(entities[0], sizeof entities[0], "router");
    for (int i = 0; i < AGENTS; i++) {
        snprintf(ids[i + 1], sizeof ids[i + 1], "@mindroom_agent%02d:localhost", i);
        snprintf(entities[i + 1], sizeof entities[i + 1], "agent%02d", i);
    }
    for (int i = 0; i <= AGENTS; i++) {
        want[i] = ids[i];
        ents[i] = entities[i];
        char key[64];
        snprintf(key, sizeof key, "account:%s", entities[i]);
        char *uid = gwt_store_field(&f, key, "user_id");
        assert_string_equal(uid, ids[i]);
        free(uid);
    }
    json_t *s = gwt_hs_state(&f);
    gwt_assert_users(s, want, AGENTS + 1);
    json_decref(s);
    gwt_assert_log(&f, "gateway: registered @", AGENTS + 1);
    gwt_restart_changes_nothing(&f, ents, AGENTS + 1);
    gwt_teardown(&f);
}

#define CONFIG_HELPER CONFIG "mindroom_user: {username: helper_user, display_name: Helper}\n"

/* The internal user takes the namespace like every other account; an install that registered
 * it before the namespace was set keeps the account it has. */
static void test_internal_user_namespace(void **state)
{
    (void)state;
    gwt f;
    mr_hs_peer_opts o = {.shared_secret = SHARED_SECRET};
    gwt_setup(&f, &o, CONFIG_HELPER);
    setenv("MATRIX_REGISTRATION_SHARED_SECRET", SHARED_SECRET, 1);
    setenv("MINDROOM_NAMESPACE", "AB3K9XYZ", 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    json_t *s = gwt_hs_state(&f);
    static const char *const ns_users[] = {"@mindroom_router_ab3k9xyz:localhost",
                                           "@mindroom_mind_ab3k9xyz:localhost",
                                           "@helper_user_ab3k9xyz:localhost"};
    gwt_assert_users(s, ns_users, 3);
    json_decref(s);
    gwt_teardown(&f);

    gwt_setup(&f, &o, CONFIG_HELPER);
    setenv("MATRIX_REGISTRATION_SHARED_SECRET", SHARED_SECRET, 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    setenv("MINDROOM_NAMESPACE", "AB3K9XYZ", 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    s = gwt_hs_state(&f);
    static const char *const kept[] = {GWT_ROUTER, GWT_MIND, "@helper_user:localhost"};
    gwt_assert_users(s, kept, 3);
    json_decref(s);
    unsetenv("MINDROOM_NAMESPACE");
    gwt_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appservice_refused_then_first_start),
        cmocka_unit_test(test_shared_secret_refused_then_fixed),
        cmocka_unit_test(test_registration_token_refused_then_fixed),
        cmocka_unit_test(test_open_registration),
        cmocka_unit_test(test_registration_closed_names_every_option),
        cmocka_unit_test(test_existing_account_with_password),
        cmocka_unit_test(test_given_account_replaces_made_one),
        cmocka_unit_test(test_existing_account_with_token),
        cmocka_unit_test(test_all_accounts_given),
        cmocka_unit_test(test_malformed_account_settings),
        cmocka_unit_test(test_many_accounts_register_at_once),
        cmocka_unit_test(test_internal_user_namespace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
