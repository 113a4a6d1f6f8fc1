/* test_authz_explain.c -- `mindroom authz explain` run as a process: each decision printed with
 * the rule behind it, exit 0 allowed / 1 denied / 2 bad input. */
#include "cli_harness.h"

/* The seed's examples in one config: a room listed by alias, by ID and by managed key, bridge
 * aliases, and reply permissions with "*", an override and the router open to all. */
static const char seed_config[] =
    "models:\n"
    "  default: {provider: openai, id: gpt-5.6}\n"
    "agents:\n"
    "  code: {display_name: Code, rooms: [lobby, ops]}\n"
    "  research: {display_name: Research, rooms: [lobby]}\n"
    "authorization:\n"
    "  global_users: [\"@alice:example.com\"]\n"
    "  room_permissions:\n"
    "    \"!room1:example.com\": [\"@bob:example.com\"]\n"
    "    \"#lobby:example.com\": [\"@user3:example.com\"]\n"
    "    ops: [\"@user4:example.com\"]\n"
    "  default_room_access: false\n"
    "  aliases:\n"
    "    \"@alice:example.com\": [\"@telegram_123:example.com\"]\n"
    "    \"@bob:example.com\": [\"@telegram_789:example.com\"]\n"
    "  agent_reply_permissions:\n"
    "    \"*\": [\"@alice:example.com\"]\n"
    "    research: [\"@bob:example.com\"]\n"
    "    router: [\"*\"]\n";

typedef struct explain_case {
    const char *args[10];
    int status;
    const char *out; /* exact stdout */
    const char *err; /* a substring of stderr, or NULL for an empty stderr */
} explain_case;

static const explain_case cases[] = {
    {{"--sender", "@bob:example.com", "--room", "#lobby:example.com"}, 1,
     "room access: denied: room_permissions lists #lobby:example.com and @bob:example.com is not in it\n",
     NULL},
    {{"--sender", "@user3:example.com", "--room", "#lobby:example.com"}, 0,
     "room access: allowed: room_permissions lists #lobby:example.com and @user3:example.com is in it\n",
     NULL},
    {{"--sender", "@telegram_123:example.com", "--room", "!other:example.com"}, 0,
     "room access: allowed: @telegram_123:example.com (alias of @alice:example.com) is in global_users\n",
     NULL},
    {{"--sender", "@telegram_789:example.com", "--room", "!room1:example.com"}, 0,
     "room access: allowed: room_permissions lists !room1:example.com and @telegram_789:example.com "
     "(alias of @bob:example.com) is in it\n",
     NULL},
    {{"--sender", "@telegram_789:example.com", "--room", "!other:example.com"}, 1,
     "room access: denied: room_permissions has no entry for !other:example.com, @telegram_789:example.com "
     "(alias of @bob:example.com) is not in global_users, and default_room_access is false\n",
     NULL},
    {{"--sender", "@user4:example.com", "--room", "ops", "--namespace", "ab3k9xyz"}, 0,
     "room access: allowed: room_permissions lists ops and @user4:example.com is in it\n", NULL},
    {{"--sender", "@bob:example.com", "--room", "lobby", "--entity", "research"}, 1,
     "room access: denied: room_permissions lists #lobby:example.com and @bob:example.com is not in it\n"
     "reply (research): allowed: agent_reply_permissions[\"research\"] lists @bob:example.com\n",
     NULL},
    {{"--sender", "@alice:example.com", "--room", "lobby", "--entity", "research"}, 1,
     "room access: allowed: @alice:example.com is in global_users\n"
     "reply (research): denied: agent_reply_permissions[\"research\"] does not list @alice:example.com\n",
     NULL},
    {{"--sender", "@mindroom_user:example.com", "--room", "lobby"}, 0,
     "room access: allowed: @mindroom_user:example.com is the internal MindRoom user\n", NULL},
    {{"--sender", "@mindroom_user:elsewhere.org", "--room", "lobby"}, 1,
     "room access: denied: room_permissions lists #lobby:example.com and @mindroom_user:elsewhere.org is "
     "not in it\n",
     NULL},
    {{"--sender", "bob", "--room", "lobby"}, 2, "",
     "--sender: 'bob' is not a valid user ID: it must start with '@'"},
    {{"--sender", "@bob:example.com", "--room", "#nope"}, 2, "", "--room: '#nope' is not a valid room alias"},
    {{"--sender", "@bob:example.com", "--room", "lobby", "--namespace", "AB"}, 2, "",
     "namespace: 'AB' is not a valid namespace"},
    {{"--sender", "@bob:example.com"}, 2, "", "--room is required"},
    {{"--room", "lobby"}, 2, "", "--sender is required"},
    {{"--sender", "@bob:example.com", "--room", "lobby", "--colour", "red"}, 2, "", "--colour"},
};

/* Checks every case against the seed config, with the server name coming from the .env. */
static void test_decisions_and_bad_input(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"), seed_config);
    spit(sb_path(sb, ".env"), "MATRIX_HOMESERVER=https://example.com\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16] = {"authz", "explain", "--config", sb_path(sb, "config.yaml")};
        size_t n = 4;
        for (size_t j = 0; cases[i].args[j]; j++)
            args[n++] = cases[i].args[j];
        cli_run r = run_cli_env(sb, NULL, args);
        if (r.status != cases[i].status || strcmp(r.out, cases[i].out) != 0)
            fprintf(stderr, "case %zu: exit %d\nstdout:\n%s\nstderr:\n%s\n", i, r.status, r.out, r.err);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(r.out, cases[i].out);
        if (cases[i].err)
            assert_non_null(strstr(r.err, cases[i].err));
        else
            assert_string_equal(r.err, "");
        cli_run_free(&r);
    }
}

/* A flag beats the .env; without either, the command says what to set. */
static void test_server_name_sources(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"), seed_config);
    cli_run r = run_cli(sb, "authz", "explain", "--config", sb_path(sb, "config.yaml"), "--sender",
                        "@mindroom_code:example.com", "--room", "lobby");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "no server name: pass --server-name, or set MATRIX_SERVER_NAME"));
    cli_run_free(&r);

    spit(sb_path(sb, ".env"), "MATRIX_SERVER_NAME=elsewhere.org\n");
    r = run_cli(sb, "authz", "explain", "--config", sb_path(sb, "config.yaml"), "--sender",
                "@mindroom_code:example.com", "--room", "lobby", "--server-name", "example.com");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "room access: allowed: @mindroom_code:example.com is agent code\n");
    cli_run_free(&r);
}

/* A config that does not load is bad input: every diagnostic is shown and nothing decided. */
static void test_broken_config_is_bad_input(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "config.yaml"), "authorization:\n  global_users: [alice]\n  defualt_room_access: true\n");
    cli_run r = run_cli(sb, "authz", "explain", "--config", sb_path(sb, "config.yaml"), "--sender",
                        "@alice:example.com", "--room", "lobby", "--server-name", "example.com");
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "config.yaml:2:18: authorization.global_users[0]:"));
    assert_non_null(strstr(r.err, "config.yaml:3:3: authorization.defualt_room_access:"));
    cli_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SANDBOXED(test_decisions_and_bad_input),
        SANDBOXED(test_server_name_sources),
        SANDBOXED(test_broken_config_is_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
