/* test_space.c -- mindroom-gateway's managed rooms and Space as clients see them: each room names
 * the Space as its canonical parent and the Space lists it, guests may join none of them, and an
 * alias held by a room the router cannot join leaves the start-up count honest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"

#define ALICE "@alice:localhost"
#define SPACE_ALIAS "#_mindroom_root_space:localhost"
#define CONFIG                                                                                     \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {display_name: Mind, rooms: [personal, lobby]}\n"                           \
    "matrix_space: {enabled: true, name: MindRoom}\n"                                               \
    "authorization:\n  global_users: [\"" ALICE "\"]\n"

static json_t *state_of(mr_matrix *m, const char *room_id, const char *type, const char *key)
{
    json_t *c = NULL;
    mr_err err = {0};
    if (mr_matrix_state_get(m, room_id, type, key, &c, &err) != MR_OK)
        fail_msg("%s %s[%s]: %s", room_id, type, key, err.msg);
    return c;
}

static void assert_no_guests(mr_matrix *m, const char *room_id)
{
    json_t *c = state_of(m, room_id, "m.room.guest_access", "");
    assert_string_equal(json_string_value(json_object_get(c, "guest_access")), "forbidden");
    json_decref(c);
}

static void test_rooms_name_their_space_and_refuse_guests(void **state)
{
    (void)state;
    gwt f;
    mr_matrix *alice = gwt_start_with_human(&f, CONFIG, "alice");
    gwt_assert_log(&f, "gateway: 2 managed rooms ready", 1);

    char space_id[MR_MATRIX_ID_SIZE], room_id[MR_MATRIX_ID_SIZE];
    gwt_room_id(&f, SPACE_ALIAS, space_id);
    mr_err err = {0};
    assert_int_equal(mr_matrix_join(alice, space_id, NULL, &err), MR_OK);
    assert_no_guests(alice, space_id);
    const char *const aliases[] = {"#personal:localhost", "#lobby:localhost"};
    for (size_t i = 0; i < 2; i++) {
        gwt_room_id(&f, aliases[i], room_id);
        assert_int_equal(mr_matrix_join(alice, room_id, NULL, &err), MR_OK);
        assert_no_guests(alice, room_id);
        json_t *parent = state_of(alice, room_id, "m.space.parent", space_id);
        assert_true(json_is_true(json_object_get(parent, "canonical")));
        assert_string_equal(json_string_value(json_array_get(json_object_get(parent, "via"), 0)),
                            "localhost");
        json_decref(parent);
        json_t *child = state_of(alice, space_id, "m.space.child", room_id);
        assert_true(json_is_true(json_object_get(child, "suggested")));
        json_decref(child);
    }
    assert_int_equal(gwt_stop(&f), 0);

    /* A second start finds every link in place and adds no event. */
    json_t *before = gwt_hs_state(&f);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    json_t *after = gwt_hs_state(&f);
    assert_true(json_equal(json_object_get(before, "rooms"), json_object_get(after, "rooms")));
    json_decref(before);
    json_decref(after);
    mr_matrix_free(alice);
    gwt_teardown(&f);
}

static void test_squatted_alias_is_not_counted_ready(void **state)
{
    (void)state;
    gwt f;
    /* Alice takes #lobby first, invite-only: the router can neither join nor manage it. */
    char squat[MR_MATRIX_ID_SIZE];
    mr_matrix *alice = gwt_alice_made_lobby(&f, CONFIG, "private_chat", squat);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    gwt_assert_log(&f, "room #lobby:localhost exists but @mindroom_router:localhost cannot join it", 1);
    gwt_assert_log(&f, "gateway: 1 of 2 managed rooms ready", 1);
    gwt_assert_log(&f, "managed rooms ready", 1);
    mr_matrix_free(alice);
    gwt_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms_name_their_space_and_refuse_guests),
        cmocka_unit_test(test_squatted_alias_is_not_counted_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
