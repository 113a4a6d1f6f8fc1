/* test_passthrough.c -- mindroom-crypto's conversions: inbound_event to cleartext_event,
 * outbound_intent to send_request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypto_internal.h"

#define EVENT "{\"event_id\":\"$e1:example.org\",\"sender\":\"@alice:example.org\",\"type\":\"m.room.message\"," \
              "\"origin_server_ts\":1764000000000,\"content\":{\"msgtype\":\"m.text\",\"body\":\"hi\"}}"
#define INBOUND(event) "{\"v\":1,\"type\":\"inbound_event\",\"account\":\"@mindroom_router:example.org\"," \
                       "\"room_id\":\"!r:example.org\",\"event\":" event ",\"membership\":\"join\"}"

static void test_unencrypted_becomes_cleartext(void **state)
{
    (void)state;
    const char *msg = INBOUND(EVENT);
    crypto_inbound in;
    mr_err err = {0};
    assert_int_equal(crypto_inbound_parse(msg, strlen(msg), &in, &err), MR_OK);
    assert_false(in.encrypted);
    assert_string_equal(in.room_id, "!r:example.org");
    assert_string_equal(in.event_id, "$e1:example.org");
    char *text = crypto_cleartext_build(&in);
    assert_non_null(text);
    /* The event goes on untouched; membership is the gateway's business and is left behind. */
    assert_string_equal(text, "{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@mindroom_router:example.org\","
                              "\"room_id\":\"!r:example.org\",\"event\":" EVENT ",\"encrypted\":false,"
                              "\"verification\":\"unencrypted\"}");
    free(text);
    crypto_inbound_free(&in);
}

static void test_history_mark_travels(void **state)
{
    (void)state;
    const char *msg = "{\"v\":1,\"type\":\"inbound_event\",\"account\":\"@mindroom_router:example.org\","
                      "\"room_id\":\"!r:example.org\",\"event\":" EVENT ",\"membership\":\"join\","
                      "\"history\":true,\"room\":{\"key\":\"lobby\",\"alias\":\"#lobby:example.org\"}}";
    crypto_inbound in;
    mr_err err = {0};
    assert_int_equal(crypto_inbound_parse(msg, strlen(msg), &in, &err), MR_OK);
    char *text = crypto_cleartext_build(&in);
    assert_non_null(text);
    assert_string_equal(text, "{\"v\":1,\"type\":\"cleartext_event\",\"account\":\"@mindroom_router:example.org\","
                              "\"room_id\":\"!r:example.org\",\"event\":" EVENT ",\"encrypted\":false,"
                              "\"verification\":\"unencrypted\",\"history\":true,"
                              "\"room\":{\"key\":\"lobby\",\"alias\":\"#lobby:example.org\"}}");
    free(text);
    crypto_inbound_free(&in);
}

static void test_encrypted_is_recognised(void **state)
{
    (void)state;
    const char *msg = INBOUND("{\"event_id\":\"$x:example.org\",\"sender\":\"@alice:example.org\","
                              "\"type\":\"m.room.encrypted\",\"origin_server_ts\":1,\"content\":{"
                              "\"algorithm\":\"m.megolm.v1.aes-sha2\",\"ciphertext\":\"AwgA\",\"session_id\":\"S1\"}}");
    crypto_inbound in;
    mr_err err = {0};
    assert_int_equal(crypto_inbound_parse(msg, strlen(msg), &in, &err), MR_OK);
    assert_true(in.encrypted);
    assert_string_equal(in.session_id, "S1");
    crypto_inbound_free(&in);
}

static void expect_bad_inbound(const char *msg, const char *why)
{
    crypto_inbound in;
    mr_err err = {0};
    assert_int_equal(crypto_inbound_parse(msg, strlen(msg), &in, &err), MR_EINVAL);
    if (!strstr(err.msg, why))
        fail_msg("\"%s\" does not say \"%s\"", err.msg, why);
    assert_null(in.root);
}

static void test_bad_inbound(void **state)
{
    (void)state;
    expect_bad_inbound("nope", "not JSON");
    expect_bad_inbound("[1]", "message: not an object");
    expect_bad_inbound("{\"v\":2,\"type\":\"inbound_event\"}", "v: expected 1");
    expect_bad_inbound("{\"v\":1,\"type\":\"turn\"}", "type: expected \"inbound_event\", got \"turn\"");
    expect_bad_inbound("{\"v\":1,\"type\":\"inbound_event\",\"room_id\":\"!r:x\"}", "account: missing");
    expect_bad_inbound("{\"v\":1,\"type\":\"inbound_event\",\"account\":\"bob\",\"room_id\":\"!r:x\"}", "account");
    expect_bad_inbound("{\"v\":1,\"type\":\"inbound_event\",\"account\":\"@b:x\",\"room_id\":\"#r:x\"}", "room_id");
    expect_bad_inbound("{\"v\":1,\"type\":\"inbound_event\",\"account\":\"@b:x\",\"room_id\":\"!r:x\"}",
                       "event: missing");
    expect_bad_inbound(INBOUND("{\"event_id\":\"e1\",\"sender\":\"@a:x\",\"type\":\"t\",\"origin_server_ts\":1,"
                               "\"content\":{}}"), "event.event_id: \"e1\" is not an event ID");
    expect_bad_inbound(INBOUND("{\"event_id\":\"$e\",\"sender\":\"@a:x\",\"type\":\"t\",\"content\":{}}"),
                       "event.origin_server_ts");
    expect_bad_inbound(INBOUND("{\"event_id\":\"$e\",\"sender\":\"@a:x\",\"type\":\"t\",\"origin_server_ts\":1}"),
                       "event.content");
    expect_bad_inbound("{\"v\":1,\"type\":\"inbound_event\",\"account\":\"@b:x\",\"room_id\":\"!r:x\",\"event\":"
                       "{\"event_id\":\"$e\",\"sender\":\"@a:x\",\"type\":\"t\",\"origin_server_ts\":1,"
                       "\"content\":{}},\"encryption\":true}",
                       "encryption: not an object");
    expect_bad_inbound("{\"v\":1,\"type\":\"inbound_event\",\"account\":\"@b:x\",\"room_id\":\"!r:x\",\"event\":"
                       "{\"event_id\":\"$e\",\"sender\":\"@a:x\",\"type\":\"t\",\"origin_server_ts\":1,"
                       "\"content\":{}},\"encryption\":{\"rotation_period_msgs\":5}}",
                       "encryption.algorithm");
    /* What the schema says beyond the fields crypto reads. */
    expect_bad_inbound(INBOUND("{\"event_id\":\"$e\",\"sender\":\"@a:x\",\"type\":\"t\",\"origin_server_ts\":1,"
                               "\"content\":{}},\"room\":{\"alias\":\"#a:x\"}"), "room.key: missing");
}

#define INTENT_HEAD "{\"v\":1,\"type\":\"outbound_intent\",\"account\":\"@mindroom_mind:example.org\"," \
                    "\"room_id\":\"!r:example.org\",\"txn_id\":\"mr.a-1\","

static void expect_send(const char *intent, const char *want)
{
    json_t *req = NULL;
    mr_err err = {0};
    if (crypto_send_request(intent, strlen(intent), &req, &err) != MR_OK)
        fail_msg("%s: %s", intent, err.msg);
    char *out = json_dumps(req, JSON_COMPACT);
    assert_string_equal(out, want);
    free(out);
    json_decref(req);
}

#define REQ_HEAD "{\"v\":1,\"type\":\"send_request\",\"account\":\"@mindroom_mind:example.org\"," \
                 "\"txn_id\":\"mr.a-1\",\"room_id\":\"!r:example.org\","

static void test_intents_become_send_requests(void **state)
{
    (void)state;
    expect_send(INTENT_HEAD "\"action\":\"send\",\"event_type\":\"m.room.message\",\"content\":{\"body\":\"x\"},"
                            "\"in_reply_to\":\"$e1:example.org\"}",
                REQ_HEAD "\"event_type\":\"m.room.message\",\"content\":{\"body\":\"x\"},\"kind\":\"room_event\"}");
    /* An edit keeps naming the message it replaces by transaction ID, for the gateway. */
    expect_send(INTENT_HEAD "\"action\":\"send\",\"event_type\":\"m.room.message\",\"content\":{\"body\":\"* x\"},"
                            "\"replaces_txn\":\"mr.a-0\"}",
                REQ_HEAD "\"event_type\":\"m.room.message\",\"content\":{\"body\":\"* x\"},\"replaces_txn\":\"mr.a-0\","
                         "\"kind\":\"room_event\"}");
    expect_send(INTENT_HEAD "\"action\":\"typing\",\"typing\":true,\"timeout_ms\":30000}",
                REQ_HEAD "\"typing\":true,\"timeout_ms\":30000,\"kind\":\"typing\"}");
    expect_send(INTENT_HEAD "\"action\":\"typing\",\"typing\":false}", REQ_HEAD "\"typing\":false,\"kind\":\"typing\"}");
    expect_send(INTENT_HEAD "\"action\":\"redact\",\"redacts\":\"$e9:example.org\"}",
                REQ_HEAD "\"redacts\":\"$e9:example.org\",\"kind\":\"redact\"}");
}

static void expect_bad_intent(const char *intent, const char *why)
{
    json_t *unset = json_object(), *req = unset;
    mr_err err = {0};
    assert_int_equal(crypto_send_request(intent, strlen(intent), &req, &err), MR_EINVAL);
    json_decref(unset);
    if (!strstr(err.msg, why))
        fail_msg("\"%s\" does not say \"%s\"", err.msg, why);
    assert_null(req);
}

static void test_bad_intents(void **state)
{
    (void)state;
    expect_bad_intent("{\"v\":1,\"type\":\"send_request\"}", "type: expected \"outbound_intent\"");
    expect_bad_intent(INTENT_HEAD "\"action\":\"shout\"}", "action: \"shout\" is not one of send, typing, redact");
    expect_bad_intent(INTENT_HEAD "\"action\":\"send\",\"content\":{}}", "event_type: missing");
    expect_bad_intent(INTENT_HEAD "\"action\":\"send\",\"event_type\":\"m.room.message\"}", "content: missing");
    expect_bad_intent(INTENT_HEAD "\"action\":\"typing\"}", "typing: missing (required when action is \"typing\")");
    expect_bad_intent(INTENT_HEAD "\"action\":\"send\",\"event_type\":\"m.room.message\",\"content\":{},"
                                  "\"replaces_txn\":\"a b\"}", "replaces_txn: \"a b\" does not match");
    expect_bad_intent(INTENT_HEAD "\"action\":\"typing\",\"typing\":true,\"timeout_ms\":-1}", "timeout_ms");
    expect_bad_intent(INTENT_HEAD "\"action\":\"redact\",\"redacts\":\"e9\"}", "redacts: \"e9\" is not an event ID");
    expect_bad_intent("{\"v\":1,\"type\":\"outbound_intent\",\"account\":\"@m:x\",\"room_id\":\"!r:x\","
                      "\"txn_id\":\"a/b\",\"action\":\"typing\",\"typing\":true}", "txn_id: \"a/b\"");
    expect_bad_intent(INTENT_HEAD "\"action\":\"typing\",\"typing\":true,\"colour\":\"red\"}", "colour: not a field");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unencrypted_becomes_cleartext),
        cmocka_unit_test(test_history_mark_travels),
        cmocka_unit_test(test_encrypted_is_recognised),
        cmocka_unit_test(test_bad_inbound),
        cmocka_unit_test(test_intents_become_send_requests),
        cmocka_unit_test(test_bad_intents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
