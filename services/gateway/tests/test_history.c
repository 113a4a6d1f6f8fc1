/* test_history.c -- what the gateway publishes as history and what as live: messages from before
 * the agents joined a room are marked history, later ones are not; a limited timeline after a
 * restart is backfilled from /messages in order, up to MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS with
 * the gap logged; bad history settings stop start-up (exit 2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"

#define ALICE "@alice:localhost"
#define CONFIG GWT_CONFIG_MIND_NO_SPACE

/* A message whose body is its own transaction ID: each body here is sent once. */
static void say(mr_matrix *m, const char *room_id, const char *body)
{
    gwt_say(m, room_id, body, body);
}

/* The router's copy of the message whose body is body, or NULL. */
static json_t *router_copy(json_t *msgs, const char *body)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *b = json_string_value(json_object_get(json_object_get(json_object_get(m, "event"),
                                                                          "content"), "body"));
        const char *acct = json_string_value(json_object_get(m, "account"));
        if (b && strcmp(b, body) == 0 && acct && strcmp(acct, GWT_ROUTER) == 0)
            return m;
    }
    return NULL;
}

static bool has_body(json_t *msgs, void *body)
{
    return router_copy(msgs, body) != NULL;
}

static void test_messages_before_the_agents_joined_are_history(void **state)
{
    (void)state;
    gwt f;
    /* Alice's public #lobby, talked in long before MindRoom starts: the router adopts it. */
    char lobby[MR_MATRIX_ID_SIZE];
    mr_matrix *alice = gwt_alice_made_lobby(&f, CONFIG, "public_chat", lobby);
    char text[32];
    for (int i = 0; i < 50; i++) {
        snprintf(text, sizeof text, "old %d", i);
        say(alice, lobby, text);
    }
    gwt_reader r;
    gwt_reader_open(&f, &r, "history-test", "matrix.inbound");
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    say(alice, lobby, "new after the start");
    gwt_read_until(&r, has_body, "new after the start");
    for (int i = 0; i < 50; i++) {
        snprintf(text, sizeof text, "old %d", i);
        json_t *m = router_copy(r.msgs, text);
        if (!m)
            fail_msg("%s was not published", text);
        if (!json_is_true(json_object_get(m, "history")))
            fail_msg("%s is not marked history", text);
    }
    assert_false(json_is_true(json_object_get(router_copy(r.msgs, "new after the start"), "history")));
    gwt_reader_check_proto(&r);

    /* A restart keeps the line where it was: the same room's next message is live too. */
    assert_int_equal(gwt_stop(&f), 0);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    say(alice, lobby, "new after the restart");
    gwt_read_until(&r, has_body, "new after the restart");
    assert_false(json_is_true(json_object_get(router_copy(r.msgs, "new after the restart"), "history")));
    assert_int_equal(gwt_stop(&f), 0);
    gwt_reader_close(&r);
    mr_matrix_free(alice);
    gwt_teardown(&f);
}

/* Alice writes n messages while the gateway is down; the restarted gateway syncs with a timeline
 * of 5 events. Returns the reader holding everything published after the restart. */
static void gap_while_down(gwt *f, gwt_reader *r, int n, const char *last)
{
    mr_matrix *alice = gwt_human(f, "alice");
    setenv("MINDROOM_GATEWAY_TIMELINE_LIMIT", "5", 1);
    gwt_start(f, NULL);
    gwt_wait_ready(f);
    char lobby[MR_MATRIX_ID_SIZE];
    gwt_room_id(f, "#lobby:localhost", lobby);
    mr_err err = {0};
    assert_int_equal(mr_matrix_join(alice, lobby, NULL, &err), MR_OK);
    assert_int_equal(gwt_stop(f), 0);
    char text[32];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "gap %d", i);
        say(alice, lobby, text);
    }
    gwt_reader_open(f, r, "gap-test", "matrix.inbound");
    gwt_start(f, NULL);
    gwt_wait_ready(f);
    gwt_read_until(r, has_body, (void *)last);
    gwt_read_all(r);
    mr_matrix_free(alice);
}

/* The positions of the router's copies of "gap 0".."gap n-1" among what was read (-1: absent). */
static void positions(json_t *msgs, int n, int *pos)
{
    char text[32];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "gap %d", i);
        pos[i] = -1;
        size_t k;
        json_t *m;
        json_array_foreach(msgs, k, m) if (m == router_copy(msgs, text)) pos[i] = (int)k;
    }
}

static void test_limited_timeline_is_backfilled_in_order(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    gwt_reader r;
    gap_while_down(&f, &r, 20, "gap 19");
    int pos[20];
    positions(r.msgs, 20, pos);
    for (int i = 0; i < 20; i++) {
        if (pos[i] < 0)
            fail_msg("gap %d was lost", i);
        if (i && pos[i] < pos[i - 1])
            fail_msg("gap %d came before gap %d", i, i - 1);
        json_t *m = json_array_get(r.msgs, (size_t)pos[i]);
        assert_false(json_is_true(json_object_get(m, "history")));
        assert_int_equal(gwt_count_body(r.msgs, json_string_value(json_object_get(json_object_get(
                             json_object_get(m, "event"), "content"), "body")), GWT_ROUTER), 1);
    }
    gwt_reader_check_proto(&r);
    gwt_assert_log(&f, "older ones are not published", 0);
    assert_int_equal(gwt_stop(&f), 0);
    gwt_reader_close(&r);
    gwt_teardown(&f);
}

static void test_backfill_bound_logs_the_gap(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, CONFIG);
    setenv("MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS", "10", 1);
    gwt_reader r;
    gap_while_down(&f, &r, 20, "gap 19");
    int pos[20];
    positions(r.msgs, 20, pos);
    /* The 5 of the timeline and the 10 newest of the gap; the 5 oldest are named as a gap. */
    for (int i = 0; i < 20; i++)
        if ((pos[i] >= 0) != (i >= 5))
            fail_msg("gap %d was %s", i, pos[i] >= 0 ? "published past the bound" : "lost");
    gwt_assert_log(&f, "sync of " GWT_ROUTER ": the gap in ", 1);
    /* Only the room's publisher fetches the gap. */
    gwt_assert_log(&f, "the 10 newest were fetched, older ones are not published "
                       "(MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS)", 1);
    assert_int_equal(gwt_stop(&f), 0);
    gwt_reader_close(&r);
    gwt_teardown(&f);
}

static void test_bad_history_settings_exit_2(void **state)
{
    (void)state;
    static const char *const bad[][3] = {
        {"MINDROOM_ANSWER_MAX_AGE_SECONDS", "0", "MINDROOM_ANSWER_MAX_AGE_SECONDS: \"0\" is not a whole number from 1 to 518400"},
        {"MINDROOM_ANSWER_MAX_AGE_SECONDS", "604800", "MINDROOM_ANSWER_MAX_AGE_SECONDS: \"604800\" is not"},
        {"MINDROOM_GATEWAY_TIMELINE_LIMIT", "0", "MINDROOM_GATEWAY_TIMELINE_LIMIT: \"0\" is not a whole number from 1 to 50000"},
        {"MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS", "ten", "MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS: \"ten\" is not a whole number from 0 to 1000000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gwt f;
        gwt_setup(&f, NULL, CONFIG);
        setenv(bad[i][0], bad[i][1], 1);
        gwt_start(&f, NULL);
        assert_int_equal(gwt_wait_exit(&f), 2);
        gwt_assert_log(&f, bad[i][2], 1);
        /* Nothing was registered on the way out. */
        json_t *s = gwt_hs_state(&f);
        assert_int_equal(json_array_size(json_object_get(s, "users")), 0);
        json_decref(s);
        unsetenv(bad[i][0]);
        gwt_teardown(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_before_the_agents_joined_are_history),
        cmocka_unit_test(test_limited_timeline_is_backfilled_in_order),
        cmocka_unit_test(test_backfill_bound_logs_the_gap),
        cmocka_unit_test(test_bad_history_settings_exit_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
