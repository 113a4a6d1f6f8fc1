/* test_sync.c -- mindroom-gateway's sync loops: a matrix-nio client's message reaches
 * matrix.inbound once, from the room's publisher (the router), to-device events reach matrix.todevice, invites
 * are accepted only from authorized users, a SIGKILL between publishing a batch and saving its
 * token replays the batch and loses nothing, a soft logout is survived on the same device, and
 * a config reload is noted for the next start, and every event of an encrypted room carries its
 * m.room.encryption, after a restart and without a record of it too. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"


/* Waits for at least `total` copies of body, published by the router. */
typedef struct want_body {
    const char *body;
    size_t total;
} want_body;

static bool router_saw(json_t *msgs, void *ctx)
{
    want_body *w = ctx;
    return gwt_count_body(msgs, w->body, GWT_ROUTER) >= w->total;
}

static bool has_ping(json_t *msgs, void *ctx)
{
    (void)ctx;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *type = json_string_value(json_object_get(json_object_get(m, "event"), "type"));
        if (type && strcmp(type, "m.test.ping") == 0)
            return true;
    }
    return false;
}

static void test_nio_message_and_to_device(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, GWT_CONFIG_MIND);
    mr_matrix_free(gwt_human(&f, "alice"));
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    char lobby[MR_MATRIX_ID_SIZE];
    gwt_room_id(&f, "#lobby:localhost", lobby);
    static const char *const args[] = {"@alice:localhost", GWT_PASSWORD, "#lobby:localhost",
                                       "hello from nio", NULL};
    assert_int_equal(gwt_nio(&f, args), 0);

    gwt_reader in;
    gwt_reader_open(&f, &in, "test-nio", "matrix.inbound");
    want_body w = {"hello from nio", 1};
    gwt_read_until(&in, router_saw, &w);
    gwt_read_all(&in);
    assert_int_equal(gwt_count_body(in.msgs, "hello from nio", NULL), 1);
    size_t i;
    json_t *m;
    json_array_foreach(in.msgs, i, m) {
        const char *body = json_string_value(json_object_get(json_object_get(
            json_object_get(m, "event"), "content"), "body"));
        if (!body || strcmp(body, "hello from nio") != 0)
            continue;
        assert_string_equal(json_string_value(json_object_get(m, "type")), "inbound_event");
        assert_string_equal(json_string_value(json_object_get(m, "room_id")), lobby);
        assert_string_equal(json_string_value(json_object_get(m, "membership")), "join");
        assert_string_equal(json_string_value(json_object_get(json_object_get(m, "event"), "sender")),
                            "@alice:localhost");
        /* The managed room's facts travel with its events: no service reads the gateway's keys. */
        json_t *room = json_object_get(m, "room");
        assert_string_equal(json_string_value(json_object_get(room, "key")), "lobby");
        assert_string_equal(json_string_value(json_object_get(room, "alias")), "#lobby:localhost");
    }
    gwt_reader_check_proto(&in);
    gwt_reader_close(&in);

    /* A to-device message to mind's device. */
    char *device = gwt_store_field(&f, "account:mind", "device_id");
    mr_matrix *alice = gwt_human(&f, "alice2");
    json_t *msgs = json_pack("{s:{s:{s:s}}}", GWT_MIND, device, "ping", "pong");
    mr_err err = {0};
    assert_int_equal(mr_matrix_send_to_device(alice, "m.test.ping", "td-1", msgs, &err), MR_OK);
    json_decref(msgs);
    gwt_reader td;
    gwt_reader_open(&f, &td, "test-td", "matrix.todevice");
    gwt_read_until(&td, has_ping, NULL);
    json_array_foreach(td.msgs, i, m) {
        json_t *ev = json_object_get(m, "event");
        if (strcmp(json_string_value(json_object_get(ev, "type")), "m.test.ping") != 0)
            continue;
        assert_string_equal(json_string_value(json_object_get(m, "account")), GWT_MIND);
        assert_string_equal(json_string_value(json_object_get(m, "device_id")), device);
        assert_string_equal(json_string_value(json_object_get(ev, "sender")), "@alice2:localhost");
        assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "content"), "ping")),
                            "pong");
    }
    gwt_reader_check_proto(&td);
    gwt_reader_close(&td);
    free(device);

    char *metrics = NULL;
    assert_int_equal(mr_tp_http_get(f.http_port, "/metrics", &metrics), 200);
    assert_non_null(strstr(metrics, "mindroom_gateway_sync_lag_seconds_count "));
    assert_null(strstr(metrics, "mindroom_gateway_sync_lag_seconds_count 0\n"));
    assert_non_null(strstr(metrics, "mindroom_gateway_events_published_total{topic=\"matrix.inbound\"}"));
    free(metrics);
    assert_int_equal(gwt_stop(&f), 0);
    mr_matrix_free(alice);
    gwt_teardown(&f);
}

static const char *membership_in(json_t *state, const char *room, const char *user)
{
    return json_string_value(json_object_get(json_object_get(json_object_get(json_object_get(
        state, "rooms"), room), "members"), user));
}

static void test_invites_only_from_authorized(void **state)
{
    (void)state;
    gwt f;
    char lobby[MR_MATRIX_ID_SIZE];
    mr_matrix *alice = gwt_alice_in_lobby(&f, GWT_CONFIG_MIND, lobby);
    mr_matrix *bob = gwt_human(&f, "bob");
    mr_err err = {0};
    char from_alice[MR_MATRIX_ID_SIZE], from_bob[MR_MATRIX_ID_SIZE];
    json_t *body = json_pack("{s:[s]}", "invite", GWT_MIND);
    assert_int_equal(mr_matrix_create_room(bob, body, from_bob, &err), MR_OK);
    assert_int_equal(mr_matrix_create_room(alice, body, from_alice, &err), MR_OK);
    json_decref(body);
    char line[512];
    snprintf(line, sizeof line, "%s accepted the invite to %s from @alice:localhost", GWT_MIND, from_alice);
    gwt_wait_log(&f, line, 1);
    snprintf(line, sizeof line, "%s leaves the invite to %s from @bob:localhost unanswered: denied", GWT_MIND,
             from_bob);
    gwt_wait_log(&f, line, 1);
    json_t *s = gwt_hs_state(&f);
    assert_string_equal(membership_in(s, from_alice, GWT_MIND), "join");
    assert_string_equal(membership_in(s, from_bob, GWT_MIND), "invite");
    json_decref(s);
    assert_int_equal(gwt_stop(&f), 0);
    mr_matrix_free(alice);
    mr_matrix_free(bob);
    gwt_teardown(&f);
}

/* Killed after a batch with a message is on the bus and before its token is saved: the next
 * start syncs from the old token and publishes the batch again. */
static void test_crash_between_publish_and_save_replays(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, GWT_CONFIG_MIND);
    mr_matrix *alice = gwt_human(&f, "alice");
    gwt_start(&f, "after_publish");
    gwt_wait_ready(&f);
    char lobby[MR_MATRIX_ID_SIZE];
    gwt_room_id(&f, "#lobby:localhost", lobby);
    mr_err err = {0};
    assert_int_equal(mr_matrix_join(alice, lobby, NULL, &err), MR_OK);
    gwt_say(alice, lobby, "c1", "before the crash");
    assert_int_equal(gwt_wait_exit(&f), -9);

    /* The dead gateway flushed what it flushed: read all of it. */
    gwt_reader in;
    gwt_reader_open(&f, &in, "test-crash", "matrix.inbound");
    gwt_read_all(&in);
    size_t before = gwt_count_body(in.msgs, "before the crash", NULL);
    assert_true(before >= 1);

    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    want_body replay = {"before the crash", before + 1};
    gwt_read_until(&in, router_saw, &replay);
    gwt_say(alice, lobby, "c2", "after the restart");
    want_body after = {"after the restart", 1};
    gwt_read_until(&in, router_saw, &after);
    gwt_end(&f, &in, alice);
}

static void test_soft_logout_while_syncing(void **state)
{
    (void)state;
    gwt f;
    char lobby[MR_MATRIX_ID_SIZE];
    mr_matrix *alice = gwt_alice_in_lobby(&f, GWT_CONFIG_MIND, lobby);
    char *device = gwt_store_field(&f, "account:mind", "device_id");
    gwt_hs_control(&f, "/_test/soft_logout", json_pack("{s:s}", "user_id", GWT_MIND));
    gwt_say(alice, lobby, "s1", "after the soft logout");
    gwt_reader in;
    gwt_reader_open(&f, &in, "test-soft", "matrix.inbound");
    want_body w = {"after the soft logout", 1};
    gwt_read_until(&in, router_saw, &w);
    gwt_reader_close(&in);
    char line[512];
    snprintf(line, sizeof line, "%s: session ended (soft logout); logging in again on device %s", GWT_MIND,
             device);
    gwt_wait_log(&f, line, 1);
    char *device2 = gwt_store_field(&f, "account:mind", "device_id");
    assert_string_equal(device, device2);
    /* A reload is noted, not half applied. */
    kill(f.pid, SIGHUP);
    gwt_wait_log(&f, "config.yaml was reloaded; the gateway applies changes to accounts, rooms, "
                     "room access and authorization at its next start", 1);
    assert_int_equal(gwt_stop(&f), 0);
    free(device);
    free(device2);
    mr_matrix_free(alice);
    gwt_teardown(&f);
}

/* The m.room.encryption algorithm the inbound_event of body (published by the router) carries,
 * NULL when it carries none. */
static const char *encryption_of(json_t *msgs, const char *body)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *b = json_string_value(json_object_get(json_object_get(json_object_get(m, "event"), "content"),
                                                          "body"));
        if (b && strcmp(b, body) == 0)
            return json_string_value(json_object_get(json_object_get(m, "encryption"), "algorithm"));
    }
    fail_msg("no inbound_event of \"%s\"", body);
    return NULL;
}

/* Every event of an encrypted room carries its m.room.encryption, so crypto learns it from any
 * event: after a restart, whose syncs do not repeat the room's state (the gateway's record), and
 * when the gateway has no record of it (a room joined before it kept them: the homeserver's). */
static void test_encryption_on_every_event(void **state)
{
    (void)state;
    gwt f;
    char lobby[MR_MATRIX_ID_SIZE], key[MR_MATRIX_ID_SIZE + 16];
    mr_matrix *alice = gwt_alice_in_lobby(&f, GWT_CONFIG_MIND "rooms:\n  lobby: {encrypted: true}\n", lobby);
    gwt_reader in;
    gwt_reader_open(&f, &in, "test-enc", "matrix.inbound");
    static const char *const bodies[] = {"first", "after a restart", "without a record"};
    for (size_t i = 0; i < 3; i++) {
        if (i) {
            assert_int_equal(gwt_stop(&f), 0);
            snprintf(key, sizeof key, "encryption:%s", lobby);
            mr_err err = {0};
            if (i == 2)
                assert_int_equal(mr_store_del(f.store, key, &err), MR_OK);
            gwt_start(&f, NULL);
            gwt_wait_ready(&f);
        }
        char txn[16];
        snprintf(txn, sizeof txn, "enc%zu", i);
        gwt_say(alice, lobby, txn, bodies[i]);
        want_body w = {bodies[i], 1};
        gwt_read_until(&in, router_saw, &w);
        const char *alg = encryption_of(in.msgs, bodies[i]);
        if (!alg)
            fail_msg("the inbound_event of \"%s\" carries no encryption", bodies[i]);
        assert_string_equal(alg, "m.megolm.v1.aes-sha2");
    }
    gwt_end(&f, &in, alice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nio_message_and_to_device),
        cmocka_unit_test(test_invites_only_from_authorized),
        cmocka_unit_test(test_crash_between_publish_and_save_replays),
        cmocka_unit_test(test_soft_logout_while_syncing),
        cmocka_unit_test(test_encryption_on_every_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
