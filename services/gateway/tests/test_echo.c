/* test_echo.c -- the entities' own messages coming back in the room publisher's sync: an
 * agent's answer and its edits, and the router's messages that speak for no one, are left off
 * matrix.inbound (nothing reads them back: the thread history has them from when they were
 * sent, and the agent skips them); the router's relays (a hand-off, a schedule's trigger, with
 * com.mindroom.original_sender), the internal user's messages (a person's) and the people's are
 * published. They are sent as the agent sends them, through matrix.send, and the homeserver
 * serves them back as Synapse does (one event, with its sender, to every member's sync). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"
#include "tp_check.h"

#define INTERNAL_USER "@helper_user:localhost"
#define CONFIG GWT_CONFIG_MIND "mindroom_user: {username: helper_user, display_name: Helper}\n"
#define ECHOES "mindroom_gateway_echoes_unpublished_total "

/* A message of account, as the agent sends it; replaces (NULL: none) the transaction ID of the
 * message an edit replaces. */
static void send_message(gwt *f, const char *account, const char *room, const char *txn, const char *replaces,
                         json_t *content)
{
    json_t *r = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s*, s:o}", "v", 1, "type", "send_request",
                          "account", account, "kind", "room_event", "txn_id", txn, "room_id", room, "event_type",
                          "m.room.message", "replaces_txn", replaces, "content", content);
    gwt_publish(f, "matrix.send", room, r);
}

static json_t *text(const char *body)
{
    return json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body);
}

/* How many of msgs the account wrote (event.sender), whatever their body. */
static size_t count_sender(json_t *msgs, const char *sender)
{
    size_t n = 0, i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *s = json_string_value(json_object_get(json_object_get(m, "event"), "sender"));
        const char *type = json_string_value(json_object_get(json_object_get(m, "event"), "type"));
        n += s && type && strcmp(s, sender) == 0 && strcmp(type, "m.room.message") == 0;
    }
    return n;
}

static void test_answers_and_their_edits_stay_off_the_bus(void **state)
{
    (void)state;
    gwt f;
    char lobby[MR_MATRIX_ID_SIZE];
    gwt_reader in;
    mr_matrix *alice = gwt_alice_in_lobby(&f, CONFIG, lobby);
    gwt_reader_open(&f, &in, "test-echo", "matrix.inbound");
    /* The internal user is in no room of its own: alice invites it, and the gateway accepts. */
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_invite(alice, lobby, INTERNAL_USER, &err), &err, "inviting the internal user");
    gwt_wait_log(&f, INTERNAL_USER " accepted the invite", 1);
    gwt_say(alice, lobby, "q1", "a question");
    gwt_read_until(&in, gwt_seen_body, "a question");

    /* What the agent sends for one answer: the message, an edit as it streams, the final edit. */
    send_message(&f, GWT_MIND, lobby, "mr.q1.m", NULL, text("an answer \xe2\x8b\xaf"));
    json_t *edit = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "msgtype", "m.text", "body", "* an answer",
                             "m.new_content", "msgtype", "m.text", "body", "an answer", "m.relates_to", "rel_type",
                             "m.replace");
    send_message(&f, GWT_MIND, lobby, "mr.q1.f", "mr.q1.m", edit);
    /* The router's reply to a command speaks for no one; its hand-off speaks for alice. */
    send_message(&f, GWT_ROUTER, lobby, "mr.c1.m", NULL, text("Schedules in this room: none"));
    json_t *handoff = text("@Mind could you help with this?");
    json_object_set_new(handoff, "com.mindroom.original_sender", json_string("@alice:localhost"));
    send_message(&f, GWT_ROUTER, lobby, "mr.h1.m", NULL, handoff);
    /* The internal user is a person: what it says is a question like alice's. */
    send_message(&f, INTERNAL_USER, lobby, "mr.u1.m", NULL, text("a question of the internal user"));
    gwt_read_until(&in, gwt_seen_body, "a question of the internal user");
    /* The room's requests are sent in order and the publisher publishes in the room's order:
     * once alice's later message is out, every one of them came back through the sync. */
    gwt_say(alice, lobby, "q2", "after the answer");
    gwt_read_until(&in, gwt_seen_body, "after the answer");
    gwt_read_all(&in);

    assert_int_equal(count_sender(in.msgs, GWT_MIND), 0);
    assert_int_equal(gwt_count_body(in.msgs, "Schedules in this room: none", NULL), 0);
    assert_int_equal(gwt_count_body(in.msgs, "@Mind could you help with this?", GWT_ROUTER), 1);
    assert_int_equal(gwt_count_body(in.msgs, "a question of the internal user", GWT_ROUTER), 1);
    assert_int_equal(gwt_count_body(in.msgs, "a question", GWT_ROUTER), 1);
    assert_true(gwt_metric(&f, ECHOES) == 3);
    gwt_end(&f, &in, alice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_and_their_edits_stay_off_the_bus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
