/* test_rules.c -- the words of each kind of refusal, and the corners of the schema keywords the
 * examples do not reach (nested paths, NUL characters, lengths in characters, conditions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mindroom/proto.h"

#define EVENT "\"event\":{\"event_id\":\"$e1\",\"sender\":\"@a:x.org\",\"type\":\"m.room.message\"," \
              "\"origin_server_ts\":1,\"content\":{}}"
#define INBOUND "{\"v\":1,\"type\":\"inbound_event\",\"account\":\"@r:x.org\",\"room_id\":\"!r:x.org\","
#define INTENT "{\"v\":1,\"type\":\"outbound_intent\",\"account\":\"@r:x.org\",\"room_id\":\"!r:x.org\",\"txn_id\":\"t1\","
#define TURN "{\"v\":1,\"type\":\"turn\",\"room_id\":\"!r:x.org\",\"sender\":\"@a:x.org\"," EVENT ","

/* The validator's verdict on text as a message of type: NULL when valid, else its message. */
static const char *verdict(const char *type, const char *text)
{
    static mr_err err;
    json_error_t jerr;
    /* JSON_ALLOW_NUL: a message made in memory can hold one, though mr_msg_load refuses them. */
    json_t *msg = json_loads(text, JSON_ALLOW_NUL, &jerr);
    if (!msg)
        fail_msg("test input is not JSON: %s: %s", jerr.text, text);
    memset(&err, 0, sizeof err);
    mr_code rc = mr_proto_check(type, msg, &err);
    json_decref(msg);
    if (rc == MR_OK)
        return NULL;
    assert_int_equal(rc, MR_EINVAL);
    return err.msg;
}

static void test_each_refusal_names_field_and_rule(void **state)
{
    (void)state;
    static const struct {
        const char *type, *text, *msg;
    } cases[] = {
        {"inbound_event", "[]", "message: not an object"},
        {"inbound_event", "{\"v\":1}", "type: missing"},
        {"inbound_event", "{\"v\":1,\"type\":\"turn\"}", "type: expected \"inbound_event\", got \"turn\""},
        {"inbound_event", INBOUND "\"event\":{}}", "event.event_id: missing"},
        {"inbound_event", INBOUND "\"event\":[]}", "event: not an object"},
        {"inbound_event", INBOUND EVENT ",\"membership\":\"ban\"}",
         "membership: \"ban\" is not one of join, invite, leave"},
        {"inbound_event", INBOUND EVENT ",\"membership\":3}", "membership: not one of join, invite, leave"},
        {"inbound_event", INBOUND "\"event\":{\"event_id\":\"e1\"}}",
         "event.event_id: \"e1\" is not an event ID: '$' and one or more characters on one line"},
        {"inbound_event", INBOUND "\"event\":{\"event_id\":\"$e1\",\"sender\":\"alice\"}}",
         "event.sender: 'alice' is not a valid user ID: it must start with '@'"},
        {"inbound_event", INBOUND "\"event\":{\"event_id\":\"$e1\",\"sender\":\"@a:x.org\",\"type\":\"\"}}",
         "event.type: empty"},
        {"inbound_event", INBOUND "\"event\":{\"event_id\":\"$e1\",\"sender\":\"@a:x.org\",\"type\":\"t\","
                          "\"origin_server_ts\":-1}}", "event.origin_server_ts: -1 is less than 0"},
        {"inbound_event", INBOUND "\"event\":{\"event_id\":\"$e1\",\"sender\":\"@a:x.org\",\"type\":\"t\","
                          "\"origin_server_ts\":1.0}}", "event.origin_server_ts: not an integer"},
        {"inbound_event", INBOUND EVENT ",\"room\":{\"key\":\"lobby\",\"colour\":1}}",
         "room.colour: not a field of this message (proto/schemas)"},
        /* A NUL would cut the string a service reads short. */
        {"inbound_event", INBOUND EVENT ",\"room\":{\"key\":\"lo\\u0000bby\"}}", "room.key: holds a NUL character"},
        {"outbound_intent", INTENT "\"action\":\"redact\"}", "redacts: missing (required when action is \"redact\")"},
        {"outbound_intent", INTENT "\"action\":\"typing\",\"typing\":true,\"timeout_ms\":-5}",
         "timeout_ms: -5 is less than 0"},
        {"outbound_intent", INTENT "\"action\":\"send\",\"event_type\":\"m.room.message\",\"content\":{},"
                            "\"replaces_txn\":\"a b\"}", "replaces_txn: \"a b\" does not match ^[A-Za-z0-9._~-]{1,255}$"},
        {"send_request", "{\"v\":1,\"type\":\"send_request\",\"account\":\"@r:x.org\",\"kind\":\"to_device\","
                         "\"txn_id\":\"t\",\"event_type\":\"m.dummy\",\"messages\":{\"@a:x.org\":{\"DEV\":[]}}}",
         "messages.@a:x.org.DEV: not an object"},
        {"send_request", "{\"v\":1,\"type\":\"send_request\",\"account\":\"@r:x.org\",\"kind\":\"keys_claim\","
                         "\"txn_id\":\"t\"}",
         "body: missing (required when kind is one of keys_upload, keys_query, keys_claim, "
         "keys_device_signing_upload, keys_signatures_upload)"},
        {"keys_reply", "{\"v\":1,\"type\":\"keys_reply\",\"account\":\"@r:x.org\",\"kind\":\"keys_query\","
                       "\"txn_id\":\"t\",\"ok\":false}", "error: missing (required when ok is false)"},
        {"todevice_event", "{\"v\":1,\"type\":\"todevice_event\",\"account\":\"@r:x.org\",\"device_id\":\"D\","
                           "\"event\":{\"sender\":\"@a:x.org\",\"type\":\"m.dummy\",\"content\":{}},"
                           "\"device_lists\":{\"changed\":[\"@a:x.org\",\"bob\"]}}",
         "device_lists.changed[1]: 'bob' is not a valid user ID: it must start with '@'"},
        {"turn", TURN "\"allowed_entities\":[\"a\",\"b\",\"a\"]}", "allowed_entities[2]: the same as [0]: items must be unique"},
        {"turn", TURN "\"allowed_entities\":[],\"thread\":{\"root_event_id\":\"x\"}}",
         "thread.root_event_id: \"x\" is not an event ID: '$' and one or more characters on one line"},
        {"send_failure", "{\"v\":1,\"type\":\"send_failure\",\"account\":\"@r:x.org\",\"room_id\":\"!r:x.org\","
                         "\"txn_id\":\"t\",\"status\":600,\"errcode\":\"\",\"reason\":\"r\"}", "status: 600 is more than 599"},
        {"chat", "{}", "type: no schema for \"chat\" in proto/schemas"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = verdict(cases[i].type, cases[i].text);
        if (!got || strcmp(got, cases[i].msg) != 0)
            fail_msg("case %zu: expected \"%s\", got \"%s\"", i, cases[i].msg, got ? got : "(valid)");
    }
}

/* maxLength counts characters as JSON Schema does: 255 two-byte characters are within 255. */
static void test_lengths_count_characters(void **state)
{
    (void)state;
    char key[255 * 2 + 3] = "";
    for (int i = 0; i < 255; i++)
        strcat(key, "\xc3\xa9");
    char text[1024];
    snprintf(text, sizeof text, INBOUND EVENT ",\"room\":{\"key\":\"%s\"}}", key);
    assert_null(verdict("inbound_event", text));
    snprintf(text, sizeof text, INBOUND EVENT ",\"room\":{\"key\":\"%se\"}}", key);
    assert_string_equal(verdict("inbound_event", text), "room.key: longer than 255 characters");
}

/* An if on a field the message lacks holds, as JSON Schema says; here the field is required
 * anyway, so the message names the required field first. */
static void test_required_field_comes_before_its_conditions(void **state)
{
    (void)state;
    assert_string_equal(verdict("outbound_intent", INTENT "\"typing\":true}"), "action: missing");
    assert_null(verdict("outbound_intent", INTENT "\"action\":\"typing\",\"typing\":false}"));
}

static void test_a_missing_message_is_refused(void **state)
{
    (void)state;
    mr_err err = {0};
    assert_int_equal(mr_proto_check_turn(NULL, &err), MR_EINVAL);
    assert_string_equal(err.msg, "message: missing");
    assert_int_equal(mr_proto_check(NULL, NULL, &err), MR_EINVAL);
    assert_string_equal(err.msg, "type: no schema for \"(none)\" in proto/schemas");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_refusal_names_field_and_rule),
        cmocka_unit_test(test_lengths_count_characters),
        cmocka_unit_test(test_required_field_comes_before_its_conditions),
        cmocka_unit_test(test_a_missing_message_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
