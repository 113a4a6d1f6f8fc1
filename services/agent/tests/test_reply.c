/* test_reply.c -- transaction IDs and the Matrix content of replies, edits, hand-offs and
 * intents, compared as exact JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_internal.h"

static void test_txn_ids(void **state)
{
    (void)state;
    char id[TXN_MAX];
    /* sha256("$e1:example.org\nmind"), first 12 bytes. */
    txn_id("$e1:example.org", "mind", "m", -1, id);
    assert_string_equal(id, "mr75996ca822b97d0097932a08.m");
    txn_id("$e1:example.org", "mind", "e", 3, id);
    assert_string_equal(id, "mr75996ca822b97d0097932a08.e3");
    txn_id("$e1:example.org", "mind", "f", -1, id);
    assert_string_equal(id, "mr75996ca822b97d0097932a08.f");
    txn_id("$e1:example.org", "coder", "m", -1, id);
    assert_string_equal(id, "mr581df11c798f5746b7115bae.m");
    txn_id("$e2:example.org", "mind", "t", 0, id);
    assert_string_equal(id, "mra0aa54f3bdd3a023b44df155.t0");
    /* Within the schema's txn_id alphabet. */
    assert_int_equal(strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-"), strlen(id));
}

static void expect_json(json_t *got, const char *want)
{
    assert_non_null(got);
    char *text = json_dumps(got, JSON_COMPACT);
    if (strcmp(text, want) != 0)
        fail_msg("got  %s\nwant %s", text, want);
    free(text);
    json_decref(got);
}

static void expect_text(char *got, const char *want)
{
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("got  %s\nwant %s", got, want);
    free(got);
}

static void test_thread_reply(void **state)
{
    (void)state;
    reply_where w = {.room_id = "!r:x", .trigger = "$q:x", .thread_root = "$root:x"};
    expect_json(reply_content("hello", &w),
                "{\"msgtype\":\"m.text\",\"body\":\"hello\",\"m.relates_to\":{\"rel_type\":\"m.thread\","
                "\"event_id\":\"$root:x\",\"is_falling_back\":true,\"m.in_reply_to\":{\"event_id\":\"$q:x\"}}}");
    w.thread_root = NULL;
    expect_json(reply_content("hello", &w), "{\"msgtype\":\"m.text\",\"body\":\"hello\"}");
}

static void test_edit(void **state)
{
    (void)state;
    expect_json(reply_edit_content("hello world"),
                "{\"msgtype\":\"m.text\",\"body\":\"* hello world\",\"m.new_content\":{\"msgtype\":\"m.text\","
                "\"body\":\"hello world\"},\"m.relates_to\":{\"rel_type\":\"m.replace\"}}");
}

static void test_handoff(void **state)
{
    (void)state;
    roster_entry coder = {.name = "coder", .display_name = "R&D <Coder>", .user_id = "@mindroom_coder:x",
                          .kind = ENTITY_AGENT};
    reply_where w = {.room_id = "!r:x", .trigger = "$q:x", .thread_root = "$q:x"};
    expect_json(reply_handoff_content(&coder, "@alice:x", &w),
                "{\"msgtype\":\"m.text\",\"body\":\"@R&D <Coder> could you help with this?\","
                "\"format\":\"org.matrix.custom.html\",\"formatted_body\":\"<a href=\\\"https://matrix.to/#/"
                "@mindroom_coder:x\\\">@R&amp;D &lt;Coder&gt;</a> could you help with this?\","
                "\"m.mentions\":{\"user_ids\":[\"@mindroom_coder:x\"]},\"com.mindroom.original_sender\":\"@alice:x\","
                "\"m.relates_to\":{\"rel_type\":\"m.thread\",\"event_id\":\"$q:x\",\"is_falling_back\":true,"
                "\"m.in_reply_to\":{\"event_id\":\"$q:x\"}}}");
}

static void test_intents(void **state)
{
    (void)state;
    json_t *content = json_pack("{s:s}", "body", "x");
    expect_text(reply_send_intent("@mindroom_mind:x", "!r:x", "mr1.m", NULL, "$q:x", content),
                "{\"v\":1,\"type\":\"outbound_intent\",\"account\":\"@mindroom_mind:x\",\"room_id\":\"!r:x\","
                "\"action\":\"send\",\"txn_id\":\"mr1.m\",\"event_type\":\"m.room.message\",\"content\":{\"body\":\"x\"},"
                "\"in_reply_to\":\"$q:x\"}");
    /* An edit names the message it replaces by transaction ID: the gateway knows its event ID. */
    expect_text(reply_send_intent("@mindroom_mind:x", "!r:x", "mr1.e1", "mr1.m", "$q:x", content),
                "{\"v\":1,\"type\":\"outbound_intent\",\"account\":\"@mindroom_mind:x\",\"room_id\":\"!r:x\","
                "\"action\":\"send\",\"txn_id\":\"mr1.e1\",\"event_type\":\"m.room.message\",\"content\":{\"body\":\"x\"},"
                "\"in_reply_to\":\"$q:x\",\"replaces_txn\":\"mr1.m\"}");
    json_decref(content);
    expect_text(reply_typing_intent("@mindroom_mind:x", "!r:x", "mr1.t0", true),
                "{\"v\":1,\"type\":\"outbound_intent\",\"account\":\"@mindroom_mind:x\",\"room_id\":\"!r:x\","
                "\"action\":\"typing\",\"txn_id\":\"mr1.t0\",\"typing\":true,\"timeout_ms\":30000}");
    expect_text(reply_typing_intent("@mindroom_mind:x", "!r:x", "mr1.t1", false),
                "{\"v\":1,\"type\":\"outbound_intent\",\"account\":\"@mindroom_mind:x\",\"room_id\":\"!r:x\","
                "\"action\":\"typing\",\"txn_id\":\"mr1.t1\",\"typing\":false}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txn_ids),
        cmocka_unit_test(test_thread_reply),
        cmocka_unit_test(test_edit),
        cmocka_unit_test(test_handoff),
        cmocka_unit_test(test_intents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
