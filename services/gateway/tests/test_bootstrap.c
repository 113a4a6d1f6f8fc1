/* test_bootstrap.c -- mindroom-gateway's start-up against an empty homeserver: every account and
 * room made exactly once, a second start changing nothing, sessions kept sealed and renewed on
 * the same device, namespaces, a 429 storm, an account collision (exit 1) and invalid settings
 * (exit 2). Each registration method and given accounts: test_accounts.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"

#define ALICE "@alice:localhost"
#define CONFIG                                                                                     \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n"                                                                                     \
    "  mind: {display_name: Mind, rooms: [personal]}\n"                                            \
    "  coder: {display_name: Coder, rooms: [personal, dev]}\n"                                     \
    "teams:\n  devteam: {display_name: Dev Team, agents: [mind, coder], rooms: [dev]}\n"           \
    "rooms:\n  dev: {display_name: Development, encrypted: true}\n"                                 \
    "matrix_room_access: {mode: single_user_private, room_admins: [\"" ALICE "\"]}\n"              \
    "matrix_space: {enabled: true, name: MindRoom}\n"                                               \
    "authorization:\n  global_users: [\"" ALICE "\"]\n"

static const char *str_at(json_t *o, const char *a, const char *b, const char *c)
{
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    if (c)
        v = json_object_get(v, c);
    return json_string_value(v);
}

static json_t *room_of(json_t *state, const char *alias)
{
    const char *id = json_string_value(json_object_get(json_object_get(state, "aliases"), alias));
    if (!id)
        fail_msg("no room has the alias %s", alias);
    return json_object_get(json_object_get(state, "rooms"), id);
}

static long long power_of(json_t *room, const char *user)
{
    return json_integer_value(json_object_get(json_object_get(json_object_get(room, "power_levels"),
                                                              "users"), user));
}

static char *store_value(gwt *f, const char *key)
{
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    if (mr_store_get(f->store, key, &v, &len, &err) != MR_OK)
        fail_msg("%s: %s", key, err.msg);
    return v;
}

static void test_first_start_creates_once_second_changes_nothing(void **state)
{
    (void)state;
    gwt f;
    mr_matrix *alice = gwt_start_with_human(&f, CONFIG, "alice");

    json_t *s = gwt_hs_state(&f);
    static const char *const users[] = {ALICE, "@mindroom_router:localhost",
                                        "@mindroom_mind:localhost", "@mindroom_coder:localhost",
                                        "@mindroom_devteam:localhost"};
    gwt_assert_users(s, users, 5);
    assert_int_equal(json_object_size(json_object_get(s, "rooms")), 3);
    assert_int_equal(json_object_size(json_object_get(s, "aliases")), 3);
    json_t *dev = room_of(s, "#dev:localhost");
    assert_string_equal(str_at(dev, "name", NULL, NULL), "Development");
    assert_true(json_is_true(json_object_get(dev, "encrypted")));
    assert_string_equal(str_at(dev, "join_rule", NULL, NULL), "invite");
    assert_false(json_is_true(json_object_get(dev, "published")));
    assert_int_equal(json_object_size(json_object_get(dev, "members")), 4);
    assert_string_equal(str_at(dev, "members", "@mindroom_router:localhost", NULL), "join");
    assert_string_equal(str_at(dev, "members", "@mindroom_coder:localhost", NULL), "join");
    assert_string_equal(str_at(dev, "members", "@mindroom_devteam:localhost", NULL), "join");
    assert_string_equal(str_at(dev, "members", ALICE, NULL), "invite");
    assert_int_equal(power_of(dev, "@mindroom_router:localhost"), 100);
    assert_int_equal(power_of(dev, ALICE), 100);
    assert_int_equal(power_of(dev, "@mindroom_coder:localhost"), 50);
    assert_int_equal(power_of(dev, "@mindroom_devteam:localhost"), 50);
    assert_null(json_object_get(json_object_get(json_object_get(dev, "power_levels"), "users"),
                                "@mindroom_mind:localhost"));
    json_t *personal = room_of(s, "#personal:localhost");
    assert_string_equal(str_at(personal, "name", NULL, NULL), "Personal");
    assert_false(json_is_true(json_object_get(personal, "encrypted")));
    assert_string_equal(str_at(personal, "members", "@mindroom_mind:localhost", NULL), "join");
    assert_string_equal(str_at(personal, "members", "@mindroom_coder:localhost", NULL), "join");
    assert_null(json_object_get(json_object_get(personal, "members"), "@mindroom_devteam:localhost"));
    json_t *space = room_of(s, "#_mindroom_root_space:localhost");
    assert_string_equal(str_at(space, "room_type", NULL, NULL), "m.space");
    assert_string_equal(str_at(space, "name", NULL, NULL), "MindRoom");
    assert_string_equal(str_at(space, "members", ALICE, NULL), "invite");
    json_decref(s);

    /* The Space lists both rooms. */
    mr_err err = {0};
    char space_id[MR_MATRIX_ID_SIZE], dev_id[MR_MATRIX_ID_SIZE], personal_id[MR_MATRIX_ID_SIZE];
    gwt_room_id(&f, "#_mindroom_root_space:localhost", space_id);
    gwt_room_id(&f, "#dev:localhost", dev_id);
    gwt_room_id(&f, "#personal:localhost", personal_id);
    assert_int_equal(mr_matrix_join(alice, space_id, NULL, &err), MR_OK);
    const char *children[] = {dev_id, personal_id};
    for (int i = 0; i < 2; i++) {
        json_t *child = NULL;
        assert_int_equal(mr_matrix_state_get(alice, space_id, "m.space.child", children[i], &child,
                                             &err), MR_OK);
        assert_string_equal(json_string_value(json_array_get(json_object_get(child, "via"), 0)),
                            "localhost");
        assert_true(json_is_true(json_object_get(child, "suggested")));
        json_decref(child);
    }
    char *name = NULL;
    assert_int_equal(mr_matrix_displayname_get(alice, "@mindroom_devteam:localhost", &name, &err), MR_OK);
    assert_string_equal(name, "Dev Team");
    free(name);

    /* The store: ids in the clear, the token sealed and working, the rooms recorded. */
    char *uid = gwt_store_field(&f, "account:router", "user_id");
    char *device = gwt_store_field(&f, "account:router", "device_id");
    assert_string_equal(uid, "@mindroom_router:localhost");
    assert_true(strlen(device) > 0);
    char *token = NULL, *raw = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_get_secret(f.store, "account:router:token", &token, &len, &err), MR_OK);
    assert_int_equal(mr_store_get(f.store, "account:router:token", &raw, &len, &err), MR_OK);
    assert_null(strstr(raw, token));
    mr_matrix_opts o = {.homeserver = f.hs.url, .access_token = token};
    mr_matrix *router = NULL;
    assert_int_equal(mr_matrix_new(&o, &router, &err), MR_OK);
    char who[MR_MATRIX_ID_SIZE], dev_seen[MR_MATRIX_ID_SIZE];
    assert_int_equal(mr_matrix_whoami(router, who, dev_seen, &err), MR_OK);
    assert_string_equal(who, "@mindroom_router:localhost");
    assert_string_equal(dev_seen, device);
    mr_matrix_free(router);
    char *log = mr_tp_read_text(f.log);
    assert_null(strstr(log, token));
    free(log);
    free(token);
    free(raw);
    char room_key[300];
    snprintf(room_key, sizeof room_key, "room:%s", dev_id);
    char *key = gwt_store_field(&f, room_key, "key"), *alias = gwt_store_field(&f, room_key, "alias");
    char *by_key = store_value(&f, "roomkey:dev");
    assert_string_equal(key, "dev");
    assert_string_equal(alias, "#dev:localhost");
    assert_string_equal(by_key, dev_id);
    free(key);
    free(alias);
    free(by_key);
    char *since = store_value(&f, "sync:@mindroom_router:localhost");
    assert_int_equal(since[0], 's');
    free(since);

    gwt_assert_log(&f, "gateway: registered @", 4);
    gwt_assert_log(&f, "gateway: created room #", 2);
    gwt_assert_log(&f, "gateway: created the Space #", 1);
    assert_int_equal(gwt_stop(&f), 0);

    /* Second start: nothing on the homeserver changes, not even one event. */
    json_t *before = gwt_hs_snapshot(&f);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    json_t *after = gwt_hs_snapshot(&f);
    if (!json_equal(before, after)) {
        char *b = json_dumps(before, JSON_INDENT(1)), *a = json_dumps(after, JSON_INDENT(1));
        fail_msg("the second start changed the homeserver:\nbefore %s\nafter %s", b, a);
    }
    json_decref(after);
    gwt_assert_log(&f, "gateway: registered @", 4);
    gwt_assert_log(&f, "gateway: created room #", 2);
    gwt_assert_log(&f, "logging in again", 0);

    /* Third start after the server ended the router's session: a login on the same device. */
    gwt_hs_control(&f, "/_test/soft_logout", json_pack("{s:s}", "user_id", "@mindroom_router:localhost"));
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    gwt_assert_log(&f, "@mindroom_router:localhost: stored session no longer valid", 1);
    char *device2 = gwt_store_field(&f, "account:router", "device_id");
    assert_string_equal(device2, device);
    after = gwt_hs_snapshot(&f);
    assert_true(json_equal(json_object_get(before, "rooms"), json_object_get(after, "rooms")));
    json_decref(after);
    json_decref(before);
    free(device2);
    free(uid);
    free(device);
    mr_matrix_free(alice);
    gwt_teardown(&f);
}

/* The sum of a counter's series whose labels contain `match`. */
static double metric_sum(const char *metrics, const char *name, const char *match)
{
    double sum = 0;
    size_t n = strlen(name);
    char *copy = strdup(metrics), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (strncmp(line, name, n) == 0 && line[n] == '{' && strstr(line, match))
            sum += strtod(strrchr(line, ' ') + 1, NULL);
    free(copy);
    return sum;
}

/* 40 refusals in a row while it starts: it waits each out and still makes everything once,
 * under its namespace. */
static void test_rate_limit_storm_with_namespace(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    setenv("MINDROOM_NAMESPACE", "AB3K9XYZ", 1);
    gwt_hs_control(&f, "/_test/ratelimit", json_pack("{s:i, s:i}", "count", 40, "retry_after_ms", 20));
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    json_t *s = gwt_hs_state(&f);
    static const char *const users[] = {"@mindroom_router_ab3k9xyz:localhost",
                                        "@mindroom_mind_ab3k9xyz:localhost",
                                        "@mindroom_coder_ab3k9xyz:localhost",
                                        "@mindroom_devteam_ab3k9xyz:localhost"};
    gwt_assert_users(s, users, 4);
    assert_int_equal(json_object_size(json_object_get(s, "rooms")), 3);
    room_of(s, "#dev_ab3k9xyz:localhost");
    room_of(s, "#personal_ab3k9xyz:localhost");
    room_of(s, "#_mindroom_root_space_ab3k9xyz:localhost");
    json_decref(s);
    char *metrics = NULL;
    assert_int_equal(mr_tp_http_get(f.http_port, "/metrics", &metrics), 200);
    assert_true(metric_sum(metrics, "mindroom_gateway_matrix_errors_total", "errcode=\"M_LIMIT_EXCEEDED\"") == 40);
    free(metrics);
    assert_int_equal(gwt_stop(&f), 0);
    unsetenv("MINDROOM_NAMESPACE");
    gwt_teardown(&f);
}

/* Someone else holds the name: the gateway stops and says what to do. */
static void test_account_collision(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    mr_matrix_free(gwt_human(&f, "mindroom_mind"));
    gwt_start(&f, NULL);
    assert_int_equal(gwt_wait_exit(&f), 1);
    gwt_assert_log(&f, "@mindroom_mind:localhost already exists and the stored "
                                       "password does not open it (account collision); set a "
                                       "unique MINDROOM_NAMESPACE", 1);
    gwt_teardown(&f);
}

static void test_invalid_settings(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    static const struct {
        const char *var, *value, *line;
    } cases[] = {
        {"MATRIX_MANAGED_ACCOUNT_AUTH", "token", "MATRIX_MANAGED_ACCOUNT_AUTH: must be password or appservice, not \"token\""},
        {"MATRIX_APPSERVICE_TOKEN", "x", "MATRIX_APPSERVICE_TOKEN is set, but MATRIX_MANAGED_ACCOUNT_AUTH is not appservice"},
        {"MINDROOM_GATEWAY_SYNC_TIMEOUT_MS", "soon", "MINDROOM_GATEWAY_SYNC_TIMEOUT_MS: \"soon\" is not a whole number from 0 to 3600000"},
        /* Once clamped to LONG_MAX and scaled to milliseconds past it. */
        {"MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS", "99999999999999999999",
         "MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS: \"99999999999999999999\" is not a whole number from 0 to 86400"},
        {"MATRIX_REGISTRATION_SHARED_SECRET_FILE", "/nonexistent/secret", "MATRIX_REGISTRATION_SHARED_SECRET_FILE names a file that cannot be read: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        setenv(cases[i].var, cases[i].value, 1);
        gwt_start(&f, NULL);
        assert_int_equal(gwt_wait_exit(&f), 2);
        if (mr_tp_count_in_file(f.log, cases[i].line) != 1)
            fail_msg("%s=%s: expected \"%s\" in %s", cases[i].var, cases[i].value, cases[i].line, f.log);
        unsetenv(cases[i].var);
    }
    /* A provisioning URL without the credentials `mindroom connect` writes, and no token. */
    unsetenv("MATRIX_REGISTRATION_TOKEN");
    setenv("MINDROOM_PROVISIONING_URL", "http://127.0.0.1:9/", 1);
    gwt_start(&f, NULL);
    assert_int_equal(gwt_wait_exit(&f), 2);
    gwt_assert_log(&f, "MINDROOM_LOCAL_CLIENT_ID and MINDROOM_LOCAL_CLIENT_SECRET are not set, and "
                   "MINDROOM_PROVISIONING_URL (http://127.0.0.1:9) needs them to register agent "
                   "accounts; set MATRIX_REGISTRATION_SHARED_SECRET, MATRIX_REGISTRATION_TOKEN, "
                   "MATRIX_MANAGED_ACCOUNT_AUTH=appservice with MATRIX_APPSERVICE_TOKEN, or existing "
                   "accounts as MATRIX_ACCOUNT_<ENTITY>_USER_ID with _PASSWORD or _ACCESS_TOKEN, or "
                   "run `mindroom connect --pair-code ...`", 1);
    unsetenv("MINDROOM_PROVISIONING_URL");
    unsetenv("MATRIX_HOMESERVER");
    gwt_start(&f, NULL);
    assert_int_equal(gwt_wait_exit(&f), 2);
    gwt_assert_log(&f, "MATRIX_HOMESERVER: not set; the gateway needs the homeserver URL", 1);
    gwt_teardown(&f);
}

/* Nothing answers at MATRIX_HOMESERVER: it keeps asking /versions, then gives up at the limit. */
static void test_homeserver_startup_timeout(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    int port = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char url[64], line[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    setenv("MATRIX_HOMESERVER", url, 1);
    setenv("MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS", "1", 1);
    gwt_start(&f, NULL);
    assert_int_equal(gwt_wait_exit(&f), 1);
    snprintf(line, sizeof line, "waiting for the homeserver %s: GET %s/_matrix/client/versions: ", url, url);
    gwt_assert_log(&f, line, 1);
    snprintf(line, sizeof line, "homeserver %s did not answer /versions within 1 s "
             "(MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS)", url);
    gwt_assert_log(&f, line, 1);
    unsetenv("MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS");
    gwt_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_start_creates_once_second_changes_nothing),
        cmocka_unit_test(test_rate_limit_storm_with_namespace),
        cmocka_unit_test(test_account_collision),
        cmocka_unit_test(test_invalid_settings),
        cmocka_unit_test(test_homeserver_startup_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
