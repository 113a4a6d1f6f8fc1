/* test_msg.c -- loading bus messages against their schemas, reading their fields: what is
 * accepted, and each refusal's words; which of the entities' own events anything reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mindroom/msg.h"

static mr_code load(const char *text, const char *type, json_t **out, mr_err *err)
{
    return mr_msg_load(text, strlen(text), type, out, err);
}

#define EVENT "{\"event_id\":\"$e1\",\"sender\":\"@a:b.c\",\"type\":\"m.room.message\"," \
              "\"state_key\":\"\",\"origin_server_ts\":1,\"content\":{\"body\":\"hi\"}}"
#define TURN "{\"v\":1,\"type\":\"turn\",\"room_id\":\"!a:b.c\",\"sender\":\"@a:b.c\",\"event\":" EVENT ","

static void test_load_accepts_a_message_its_schema_accepts(void **state)
{
    (void)state;
    json_t *r = NULL;
    mr_err err = {0};
    assert_int_equal(load(TURN "\"allowed_entities\":[]}", "turn", &r, &err), MR_OK);
    assert_string_equal(mr_msg_string(r, "room_id"), "!a:b.c");
    mr_msg_event e;
    mr_msg_event_read(json_object_get(r, "event"), &e);
    assert_string_equal(e.event_id, "$e1");
    assert_string_equal(e.sender, "@a:b.c");
    assert_string_equal(e.type, "m.room.message");
    assert_string_equal(e.state_key, "");
    assert_string_equal(mr_msg_string(e.content, "body"), "hi");
    json_decref(r);
}

static void test_load_refusals_name_the_problem(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"{\"v\":1,", "not JSON: string or '}' expected near end of file (line 1, column 7)"},
        {"[1]", "message: not an object"},
        {"{\"type\":\"turn\"}", "v: missing"},
        {"{\"v\":2,\"type\":\"turn\"}", "v: expected 1"},
        {"{\"v\":1}", "type: missing"},
        {"{\"v\":1,\"type\":\"\"}", "type: expected \"turn\", got \"\""},
        {"{\"v\":1,\"type\":\"cleartext_event\"}", "type: expected \"turn\", got \"cleartext_event\""},
        /* What the schema asks beyond the envelope: its fields. */
        {TURN "\"allowed_entities\":[\"a-b\"]}", "allowed_entities[0]: \"a-b\" does not match ^[a-zA-Z0-9_]+$"},
        {TURN "\"allowed_entities\":[],\"colour\":1}", "colour: not a field of this message (proto/schemas)"},
        {"{\"v\":1,\"type\":\"turn\",\"type\":\"turn\"}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *r = (json_t *)&r;
        mr_err err = {0};
        assert_int_equal(load(cases[i].text, "turn", &r, &err), MR_EINVAL);
        assert_null(r);
        if (cases[i].msg)
            assert_string_equal(err.msg, cases[i].msg);
        else
            assert_non_null(strstr(err.msg, "duplicate object key"));
    }
}

static void test_fields(void **state)
{
    (void)state;
    json_t *e = json_pack("{s:s, s:s, s:i, s:s, s:s}", "sender", "@alice:example.org", "type", "", "n", 3, "bad",
                          "alice", "room", "!lobby:example.org");
    const char *out = NULL;
    mr_err err = {0};
    assert_null(mr_msg_string(e, "n"));
    assert_null(mr_msg_string(e, "missing"));
    assert_null(mr_msg_string(NULL, "sender"));
    assert_int_equal(mr_msg_need_user(e, "event.", "sender", &out, &err), MR_OK);
    assert_string_equal(out, "@alice:example.org");
    assert_int_equal(mr_msg_need_string(e, "event.", "type", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "event.type: missing or not a non-empty string");
    assert_int_equal(mr_msg_need_string(e, "", "n", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "n: missing or not a non-empty string");
    assert_int_equal(mr_msg_need_user(e, "event.", "bad", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "event.bad: 'alice' is not a valid user ID: it must start with '@'");
    assert_int_equal(mr_msg_need_room_id(e, "", "room", &out, &err), MR_OK);
    assert_string_equal(out, "!lobby:example.org");
    assert_int_equal(mr_msg_need_room_id(e, "", "sender", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "sender: '@alice:example.org' is not a valid room ID: it must start with '!'");
    json_decref(e);
}

/* Which of an entity's own events anything reads back: the router's relays and every event that
 * is not a message; an answer, an edit, the router's message that speaks for no one are not. */
static void test_entity_echo_read(void **state)
{
    (void)state;
    static const struct {
        const char *event;
        bool from_router, read;
    } cases[] = {
        {"{\"type\":\"m.room.message\",\"content\":{\"body\":\"an answer\"}}", false, false},
        {"{\"type\":\"m.room.message\",\"content\":{\"body\":\"* an answer\",\"m.new_content\":{},"
         "\"m.relates_to\":{\"rel_type\":\"m.replace\"}}}", false, false},
        {"{\"type\":\"m.room.message\",\"content\":{\"body\":\"Schedules in this room:\"}}", true, false},
        {"{\"type\":\"m.room.message\",\"content\":{\"body\":\"@Mind could you help with this?\","
         "\"com.mindroom.original_sender\":\"@alice:example.org\"}}", true, true},
        /* Only the router speaks for someone: an agent's claim to is an answer like any other. */
        {"{\"type\":\"m.room.message\",\"content\":{\"body\":\"hi\","
         "\"com.mindroom.original_sender\":\"@alice:example.org\"}}", false, false},
        {"{\"type\":\"m.room.message\",\"content\":{\"body\":\"for no one\","
         "\"com.mindroom.original_sender\":7}}", true, false},
        {"{\"type\":\"m.room.encrypted\",\"content\":{\"ciphertext\":\"x\"}}", false, true},
        {"{\"type\":\"m.reaction\",\"content\":{}}", false, true},
        {"{\"type\":\"m.room.member\",\"state_key\":\"@mindroom_mind:example.org\","
         "\"content\":{\"membership\":\"join\"}}", false, true},
        {"{\"type\":\"m.room.message\",\"state_key\":\"\",\"content\":{}}", false, true},
        {"{\"content\":{}}", false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *ev = json_loads(cases[i].event, 0, NULL);
        assert_non_null(ev);
        if (mr_msg_entity_echo_read(ev, cases[i].from_router) != cases[i].read)
            fail_msg("case %zu (%s, %s): expected %s", i, cases[i].event, cases[i].from_router ? "router" : "agent",
                     cases[i].read ? "read" : "not read");
        json_decref(ev);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_accepts_a_message_its_schema_accepts),
        cmocka_unit_test(test_load_refusals_name_the_problem),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_entity_echo_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
