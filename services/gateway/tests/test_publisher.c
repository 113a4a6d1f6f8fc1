/* test_publisher.c -- one account publishes each room's events: with the router and three
 * agents in #lobby every event reaches matrix.inbound once, from the router, only the router's
 * syncs carry the room's timeline, and when the router leaves, the lowest remaining agent takes
 * over with no event lost or doubled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"

#define CODER "@mindroom_coder:localhost"
#define MIND "@mindroom_mind:localhost"
#define HELPER "@mindroom_helper:localhost"
#define CONFIG_THREE                                                                               \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {rooms: [lobby]}\n  coder: {rooms: [lobby]}\n  helper: {rooms: [lobby]}\n"   \
    "authorization:\n  global_users: [\"@alice:localhost\"]\n"
#define AFTER_LEAVE 5

/* Fails when an event ID came twice. */
static void assert_each_event_once(json_t *msgs)
{
    json_t *ids = json_object();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *id = json_string_value(json_object_get(json_object_get(m, "event"), "event_id"));
        assert_non_null(id);
        if (json_object_get(ids, id))
            fail_msg("%s was published twice (the second time by %s)", id,
                     json_string_value(json_object_get(m, "account")));
        json_object_set_new(ids, id, json_true());
    }
    json_decref(ids);
}

static mr_matrix *router_client(gwt *f)
{
    char *token = gwt_store_secret(f, "account:router:token");
    char *device = gwt_store_field(f, "account:router", "device_id");
    assert_non_null(token);
    mr_matrix_opts o = {.homeserver = f->hs.url, .user_id = GWT_ROUTER, .device_id = device,
                        .access_token = token};
    mr_matrix *m = NULL;
    mr_err err = {0};
    if (mr_matrix_new(&o, &m, &err) != MR_OK)
        fail_msg("%s", err.msg);
    free(token);
    free(device);
    return m;
}

static void test_one_publisher_and_hand_over(void **state)
{
    (void)state;
    gwt f;
    char lobby[MR_MATRIX_ID_SIZE];
    gwt_reader in;
    mr_matrix *alice = gwt_alice_in_lobby(&f, CONFIG_THREE, lobby);
    gwt_reader_open(&f, &in, "test-publisher", "matrix.inbound");
    mr_err err = {0};
    gwt_say(alice, lobby, "p1", "to four accounts");
    gwt_read_until(&in, gwt_seen_body, "to four accounts");
    /* Every account has synced past it once a later message is out. */
    gwt_say(alice, lobby, "p2", "marker one");
    gwt_read_until(&in, gwt_seen_body, "marker one");
    gwt_read_all(&in);
    assert_int_equal(gwt_count_body(in.msgs, "to four accounts", NULL), 1);
    assert_int_equal(gwt_count_body(in.msgs, "to four accounts", GWT_ROUTER), 1);
    assert_each_event_once(in.msgs);

    /* The router leaves and alice talks on at once: what its loop no longer sees, the next
     * publisher (the lowest user ID of the agents) publishes, each event once. */
    mr_matrix *router = router_client(&f);
    assert_int_equal(mr_matrix_leave(router, lobby, &err), MR_OK);
    char body[32], txn[16];
    for (int i = 0; i < AFTER_LEAVE; i++) {
        snprintf(body, sizeof body, "after the leave %d", i);
        snprintf(txn, sizeof txn, "l%d", i);
        gwt_say(alice, lobby, txn, body);
    }
    gwt_say(alice, lobby, "p3", "marker two");
    gwt_read_until(&in, gwt_seen_body, "marker two");
    gwt_read_all(&in);
    for (int i = 0; i < AFTER_LEAVE; i++) {
        snprintf(body, sizeof body, "after the leave %d", i);
        assert_int_equal(gwt_count_body(in.msgs, body, NULL), 1);
    }
    assert_int_equal(gwt_count_body(in.msgs, "marker two", CODER), 1);
    assert_each_event_once(in.msgs);
    mr_matrix_free(router);
    gwt_end(&f, &in, alice);
}

static json_int_t served(gwt *f, const char *user_id)
{
    json_t *st = gwt_hs_state(f);
    json_t *n = json_object_get(json_object_get(st, "timeline_served"), user_id);
    if (!json_is_integer(n))
        fail_msg("the homeserver's state has no timeline_served count for %s", user_id);
    json_int_t v = json_integer_value(n);
    json_decref(st);
    return v;
}

/* The agents' syncs leave #lobby's timeline out (the router publishes it): the homeserver
 * serves its timeline events to the router alone, while the agents still sync. */
static void test_only_the_publisher_fetches_timelines(void **state)
{
    (void)state;
    gwt f;
    char lobby[MR_MATRIX_ID_SIZE];
    gwt_reader in;
    mr_matrix *alice = gwt_alice_in_lobby(&f, CONFIG_THREE, lobby);
    gwt_reader_open(&f, &in, "test-publisher-served", "matrix.inbound");
    char body[32], txn[16];
    for (int i = 0; i < AFTER_LEAVE; i++) {
        snprintf(body, sizeof body, "served %d", i);
        snprintf(txn, sizeof txn, "s%d", i);
        gwt_say(alice, lobby, txn, body);
    }
    gwt_read_until(&in, gwt_seen_body, "served 4");
    gwt_read_all(&in);
    for (int i = 0; i < AFTER_LEAVE; i++) {
        snprintf(body, sizeof body, "served %d", i);
        assert_int_equal(gwt_count_body(in.msgs, body, GWT_ROUTER), 1);
    }
    assert_true(served(&f, GWT_ROUTER) >= AFTER_LEAVE);
    assert_int_equal(served(&f, CODER), 0);
    assert_int_equal(served(&f, MIND), 0);
    assert_int_equal(served(&f, HELPER), 0);
    gwt_end(&f, &in, alice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_the_publisher_fetches_timelines),
        cmocka_unit_test(test_one_publisher_and_hand_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
