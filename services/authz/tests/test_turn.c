/* test_turn.c -- reading cleartext events, which become turns, the turn's JSON, authz's own record
 * of rooms from the events it reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "authz_internal.h"
#include "peers.h"

#define EVENT(extra_event, extra_content)                                                           \
    "{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@mindroom_router:example.org\","          \
    "\"room_id\":\"!abc:example.org\",\"encrypted\":false,\"event\":{\"event_id\":\"$ev1:example.org\"," \
    "\"sender\":\"@alice:example.org\",\"type\":\"m.room.message\",\"origin_server_ts\":1764000000000" \
    extra_event ",\"content\":{\"msgtype\":\"m.text\",\"body\":\"hello\"" extra_content "}}}"

static void parse_ok(const char *text, turn_event *ev)
{
    mr_err err = {0};
    if (turn_event_parse(text, strlen(text), ev, &err) != MR_OK)
        fail_msg("%s: %s", text, err.msg);
}

static void test_parse_fields(void **state)
{
    (void)state;
    turn_event ev;
    parse_ok(EVENT("", ",\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"$root:example.org\"},"
                       "\"com.mindroom.original_sender\":\"@bob:example.org\""),
             &ev);
    assert_string_equal(ev.account, "@mindroom_router:example.org");
    assert_string_equal(ev.room_id, "!abc:example.org");
    assert_string_equal(ev.event_id, "$ev1:example.org");
    assert_string_equal(ev.sender, "@alice:example.org");
    assert_string_equal(ev.type, "m.room.message");
    assert_false(ev.encrypted);
    assert_false(ev.is_state);
    assert_string_equal(ev.rel_type, "m.thread");
    assert_string_equal(ev.thread_root, "$root:example.org");
    assert_string_equal(ev.original_sender, "@bob:example.org");
    assert_null(turn_event_skip_reason(&ev));
    turn_event_free(&ev);

    /* A thread relation without a usable root, and an original sender that is no user ID. */
    parse_ok(EVENT("", ",\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"root\"},"
                       "\"com.mindroom.original_sender\":\"bob\""),
             &ev);
    assert_null(ev.thread_root);
    assert_null(ev.original_sender);
    turn_event_free(&ev);
}

#define CT_HEAD "{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@a:x\",\"room_id\":\"!r:x\","
/* A short event of type with content (a JSON object), as the "event" member. */
#define CT_EVENT_OF(type, content)                                                                  \
    "\"event\":{\"event_id\":\"$e1\",\"sender\":\"@b:x\",\"type\":\"" type "\",\"origin_server_ts\":1,"  \
    "\"content\":" content "}"
#define CT_EVENT CT_EVENT_OF("m.room.message", "{}")

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
    } cases[] = {
        {"[]", "message: not an object"},
        {"{\"v\":2}", "v: expected 1"},
        {"{\"v\":1,\"type\":\"turn\"}", "type: expected \"cleartext_event\", got \"turn\""},
        {"{\"v\":1,\"type\":\"cleartext_event\"}", "account: missing"},
        {"{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@a:x\"}", "room_id: missing"},
        {CT_HEAD CT_EVENT "}", "encrypted: missing"},
        {CT_HEAD "\"encrypted\":true}", "event: missing"},
        {CT_HEAD "\"encrypted\":true,\"event\":{\"event_id\":\"e1\"}}",
         "event.event_id: \"e1\" is not an event ID: '$' and one or more characters on one line"},
        {CT_HEAD "\"encrypted\":true,\"event\":{\"event_id\":\"$e1\",\"sender\":\"@b:x\"}}", "event.type: missing"},
        {CT_HEAD "\"encrypted\":true,\"event\":{\"event_id\":\"$e1\",\"sender\":\"@b:x\",\"type\":\"m.room.message\","
                 "\"origin_server_ts\":-1}}",
         "event.origin_server_ts: -1 is less than 0"},
        {CT_HEAD "\"encrypted\":true,\"event\":{\"event_id\":\"$e1\",\"sender\":\"@b:x\",\"type\":\"m.room.message\","
                 "\"origin_server_ts\":1,\"state_key\":5}}",
         "event.state_key: not a string"},
        {CT_HEAD "\"encrypted\":true,\"event\":{\"event_id\":\"$e1\",\"sender\":\"@b:x\",\"type\":\"m.room.message\","
                 "\"origin_server_ts\":1}}",
         "event.content: missing"},
        /* What the schema says beyond the fields authz reads. */
        {CT_HEAD CT_EVENT ",\"encrypted\":true,\"verification\":\"trusted\"}",
         "verification: \"trusted\" is not one of unencrypted, tofu, unverified"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        turn_event ev;
        mr_err err = {0};
        assert_int_equal(turn_event_parse(cases[i].text, strlen(cases[i].text), &ev, &err), MR_EINVAL);
        assert_string_equal(err.msg, cases[i].message);
        assert_null(ev.root);
    }
    /* The identifier grammar's own words follow the field's name. */
    const char *prefixed[][2] = {
        {"{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"bob\"}", "account: "},
        {"{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@a:x\",\"room_id\":\"#r:x\"}", "room_id: "},
        {"{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@a:x\",\"room_id\":\"!r:x\",\"encrypted\":true,"
         "\"event\":{\"event_id\":\"$e1\",\"sender\":\"b\"}}",
         "event.sender: "},
        {CT_HEAD CT_EVENT ",\"encrypted\":false,\"history\":\"yes\"}",
         "history: "},
        {"{\"v\":1,", "not JSON: "},
    };
    for (size_t i = 0; i < sizeof prefixed / sizeof prefixed[0]; i++) {
        turn_event ev;
        mr_err err = {0};
        assert_int_equal(turn_event_parse(prefixed[i][0], strlen(prefixed[i][0]), &ev, &err), MR_EINVAL);
        if (strncmp(err.msg, prefixed[i][1], strlen(prefixed[i][1])) != 0)
            fail_msg("%s: \"%s\" does not start with \"%s\"", prefixed[i][0], err.msg, prefixed[i][1]);
    }
}

static void expect_skip(const char *text, const char *reason)
{
    turn_event ev;
    parse_ok(text, &ev);
    const char *got = turn_event_skip_reason(&ev);
    if (reason)
        assert_string_equal(got, reason);
    else
        assert_null(got);
    turn_event_free(&ev);
}

static void test_which_events_become_turns(void **state)
{
    (void)state;
    expect_skip(EVENT("", ""), NULL);
    expect_skip(EVENT(",\"state_key\":\"\"", ""), "state event");
    const char *history = CT_HEAD "\"encrypted\":false,\"history\":true,"
        CT_EVENT_OF("m.room.message", "{\"msgtype\":\"m.text\",\"body\":\"old\"}") "}";
    expect_skip(history, "history: from before the agents were in the room, or older than the answer bound");
    const char *live = CT_HEAD "\"encrypted\":false,\"history\":false,"
        CT_EVENT_OF("m.room.message", "{\"msgtype\":\"m.text\",\"body\":\"new\"}") "}";
    expect_skip(live, NULL);
    expect_skip(EVENT("", ",\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":\"$ev0:example.org\"}"),
                "edit");
    expect_skip(EVENT("", ",\"m.new_content\":{\"body\":\"hi\"}"), "edit");
    const char *reaction = CT_HEAD "\"encrypted\":false," CT_EVENT_OF("m.reaction", "{}") "}";
    expect_skip(reaction, "not a message");
    const char *undecrypted =
        CT_HEAD "\"encrypted\":true," CT_EVENT_OF("m.room.encrypted", "{\"algorithm\":\"m.megolm.v1.aes-sha2\"}") "}";
    expect_skip(undecrypted, "still encrypted: crypto could not decrypt it");
}

static void test_build(void **state)
{
    (void)state;
    turn_event ev;
    parse_ok(EVENT("", ",\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"$root:example.org\"},"
                       "\"com.mindroom.original_sender\":\"@bob:example.org\""),
             &ev);
    const char *names[] = {"router", "coder"};
    turn_fields f = {.room_key = "lobby", .sender = "@alice:example.org", .relay = true, .entities = names,
                     .n_entities = 2};
    char *turn = turn_build(&ev, &f);
    assert_string_equal(
        turn, "{\"v\":1,\"type\":\"turn\",\"room_id\":\"!abc:example.org\",\"event\":{\"event_id\":\"$ev1:example.org\","
              "\"sender\":\"@alice:example.org\",\"type\":\"m.room.message\",\"origin_server_ts\":1764000000000,"
              "\"content\":{\"msgtype\":\"m.text\",\"body\":\"hello\",\"m.relates_to\":{\"rel_type\":\"m.thread\","
              "\"event_id\":\"$root:example.org\"},\"com.mindroom.original_sender\":\"@bob:example.org\"}},"
              "\"encrypted\":false,\"sender\":\"@alice:example.org\",\"allowed_entities\":[\"router\",\"coder\"],"
              "\"room_key\":\"lobby\",\"original_sender\":\"@bob:example.org\","
              "\"thread\":{\"root_event_id\":\"$root:example.org\"}}");
    free(turn);

    /* Not a relay, no managed room, nobody allowed: the optional fields go. */
    f = (turn_fields){.sender = "@alice:example.org", .relay = false};
    turn = turn_build(&ev, &f);
    assert_non_null(strstr(turn, "\"allowed_entities\":[]"));
    assert_null(strstr(turn, "room_key"));
    assert_null(strstr(turn, "\"original_sender\""));
    free(turn);
    turn_event_free(&ev);
}

typedef struct store_fixture {
    char dir[512];
    mr_store *store;
} store_fixture;

static int store_setup(void **state)
{
    store_fixture *f = calloc(1, sizeof *f);
    mr_err err = {0};
    char url[700];
    if (mr_tp_mkdtemp("mr-authz-turn", f->dir, sizeof f->dir, &err) != MR_OK)
        return -1;
    snprintf(url, sizeof url, "sqlite://%s/state.db", f->dir);
    if (mr_store_open(url, NULL, &f->store, &err) != MR_OK)
        return -1;
    *state = f;
    return 0;
}

static int store_teardown(void **state)
{
    store_fixture *f = *state;
    mr_store_close(f->store);
    mr_tp_rmtree(f->dir, NULL);
    free(f);
    return 0;
}

/* A cleartext m.room.member event of user in room, with the managed room's facts when key is
 * set. */
static void note_member(mr_store *s, const char *room, const char *key, const char *user, const char *membership)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@mindroom_router:example.org\","
             "\"room_id\":\"%s\",%s%s%s\"encrypted\":false,\"event\":{\"event_id\":\"$m:example.org\","
             "\"sender\":\"%s\",\"type\":\"m.room.member\",\"state_key\":\"%s\","
             "\"origin_server_ts\":1764000000000,\"content\":{\"membership\":\"%s\"}}}",
             room, key ? "\"room\":{\"key\":\"" : "", key ? key : "", key ? "\"}," : "", user, user, membership);
    turn_event ev;
    parse_ok(text, &ev);
    assert_string_equal(ev.member, user);
    assert_string_equal(ev.membership, membership);
    mr_err err = {0};
    if (room_state_note(s, &ev, &err) != MR_OK)
        fail_msg("%s", err.msg);
    turn_event_free(&ev);
}

/* The room facts an event carries, as the gateway recorded them; bad ones are refused. */
static void test_room_facts(void **state)
{
    (void)state;
    turn_event ev;
    parse_ok("{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@mindroom_router:example.org\","
             "\"room_id\":\"!lobby:example.org\",\"room\":{\"key\":\"lobby\",\"alias\":"
             "\"#lobby_ab3k9xyz:example.org\"},\"encrypted\":false,\"event\":{\"event_id\":\"$ev1:example.org\","
             "\"sender\":\"@alice:example.org\",\"type\":\"m.room.message\",\"origin_server_ts\":1,"
             "\"content\":{\"body\":\"hi\"}}}",
             &ev);
    assert_string_equal(ev.room_key, "lobby");
    assert_string_equal(ev.room_alias, "#lobby_ab3k9xyz:example.org");
    assert_null(ev.membership);
    turn_event_free(&ev);
    parse_ok(EVENT("", ""), &ev);
    assert_null(ev.room_key);
    assert_null(ev.room_alias);
    turn_event_free(&ev);
    static const char *const bad[] = {"\"room\":{\"alias\":\"#a:example.org\"}", "\"room\":{\"key\":\"a\",\"alias\":\"a\"}",
                                      "\"room\":\"lobby\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@mindroom_router:example.org\","
                 "\"room_id\":\"!lobby:example.org\",%s,\"encrypted\":false,\"event\":{\"event_id\":"
                 "\"$ev1:example.org\",\"sender\":\"@alice:example.org\",\"type\":\"m.room.message\","
                 "\"origin_server_ts\":1,\"content\":{}}}",
                 bad[i]);
        mr_err err = {0};
        assert_int_equal(turn_event_parse(text, strlen(text), &ev, &err), MR_EINVAL);
        assert_non_null(strstr(err.msg, "room"));
    }
}

/* Membership comes from the m.room.member events authz reads, into its own keys only. */
static void test_membership(void **state)
{
    store_fixture *f = *state;
    note_member(f->store, "!lounge:example.org", "lounge", "@dave:example.org", "join");
    note_member(f->store, "!lounge:example.org", "lounge", "@bob:example.org", "join");
    note_member(f->store, "!lounge:example.org", "lounge", "@bob:example.org", "leave");
    note_member(f->store, "!lounge:example.org", "lounge", "@carol:example.org", "invite");
    note_member(f->store, "!dm:example.org", NULL, "@mindroom_mind_ab3k9xyz:example.org", "join");
    note_member(f->store, "!dm:example.org", NULL, "@mindroom_coder_ab3k9xyz:example.org", "leave");
    room_members m = {.store = f->store, .server_name = "example.org", .ns = "ab3k9xyz"};
    assert_true(room_state_is_member(&m, "lounge", "@dave:example.org"));
    assert_false(room_state_is_member(&m, "lounge", "@bob:example.org"));
    assert_false(room_state_is_member(&m, "lounge", "@carol:example.org"));
    assert_false(room_state_is_member(&m, "lounge", "@nobody:example.org"));
    /* By room ID, by alias on our server in our namespace; not by a foreign alias. */
    assert_true(room_state_is_member(&m, "!lounge:example.org", "@dave:example.org"));
    assert_true(room_state_is_member(&m, "#lounge_ab3k9xyz:example.org", "@dave:example.org"));
    assert_false(room_state_is_member(&m, "#lounge_ab3k9xyz:elsewhere.org", "@dave:example.org"));
    assert_false(room_state_is_member(&m, "#lounge:example.org", "@dave:example.org"));
    /* A room authz never saw is no error, only no membership. */
    assert_false(room_state_is_member(&m, "attic", "@dave:example.org"));
    assert_int_equal(m.rc, MR_OK);
    /* Which entities have an account in a room the instance does not manage. */
    const char *names[] = {"router", "mind", "coder"}, *joined[3];
    size_t n = 0;
    mr_err err = {0};
    assert_int_equal(room_state_joined_entities(&m, "!dm:example.org", names, 3, joined, &n, &err), MR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(joined[0], "mind");
    /* Nothing of it is read from or written to the gateway's keys. */
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_hget(f->store, "members:!lounge:example.org", "@dave:example.org", &v, &len, &err),
                     MR_ENOTFOUND);
    assert_int_equal(mr_store_get(f->store, "roomkey:lounge", &v, &len, &err), MR_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_which_events_become_turns),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_room_facts),
        cmocka_unit_test_setup_teardown(test_membership, store_setup, store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
