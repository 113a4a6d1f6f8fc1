/* test_room_access.c -- matrix_room_access through mindroom-gateway: multi_user rooms with knock
 * and directory publishing (invite_only_rooms kept restricted), the opt-in migration of existing
 * rooms, and the warning when the router lacks the power to change a room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"

#define HEAD                                                                                       \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {rooms: [lobby, secret]}\n"                                                   \
    "authorization:\n  global_users: [\"@alice:localhost\"]\n"

static json_t *room_of(json_t *state, const char *alias)
{
    const char *id = json_string_value(json_object_get(json_object_get(state, "aliases"), alias));
    if (!id)
        fail_msg("no room has the alias %s", alias);
    return json_object_get(json_object_get(state, "rooms"), id);
}

static void assert_access(gwt *f, const char *alias, const char *join_rule, bool published)
{
    json_t *s = gwt_hs_state(f);
    json_t *r = room_of(s, alias);
    const char *rule = json_string_value(json_object_get(r, "join_rule"));
    if (!rule || strcmp(rule, join_rule) != 0 || json_is_true(json_object_get(r, "published")) != published)
        fail_msg("%s: join rule %s, published %d; expected %s, %d", alias, rule ? rule : "(none)",
                 json_is_true(json_object_get(r, "published")), join_rule, published);
    json_decref(s);
}

static void test_multi_user_knock_and_directory(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, HEAD
              "matrix_room_access:\n  mode: multi_user\n  multi_user_join_rule: knock\n"
              "  publish_to_room_directory: true\n  invite_only_rooms: [secret]\n"
              "matrix_space: {enabled: true}\n");
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_access(&f, "#lobby:localhost", "knock", true);
    assert_access(&f, "#secret:localhost", "invite", false);
    assert_access(&f, "#_mindroom_root_space:localhost", "invite", false);

    /* A stranger finds the lobby in the directory and may knock, but not walk in; the secret
     * room takes no knocks. */
    mr_matrix *bob = gwt_human(&f, "bob");
    mr_err err = {0};
    json_t *list = NULL;
    assert_int_equal(mr_matrix_request(bob, "publicRooms", "GET", "/_matrix/client/v3/publicRooms",
                                       NULL, true, &list, &err), MR_OK);
    json_t *chunk = json_object_get(list, "chunk");
    assert_int_equal(json_array_size(chunk), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(chunk, 0), "canonical_alias")),
                        "#lobby:localhost");
    json_decref(list);
    assert_int_equal(mr_matrix_join(bob, "#lobby:localhost", NULL, &err), MR_EPERM);
    assert_int_equal(mr_matrix_request(bob, "knock", "POST", "/_matrix/client/v3/knock/%23lobby%3Alocalhost",
                                       NULL, true, NULL, &err), MR_OK);
    assert_int_equal(mr_matrix_request(bob, "knock", "POST", "/_matrix/client/v3/knock/%23secret%3Alocalhost",
                                       NULL, true, NULL, &err), MR_EPERM);
    assert_int_equal(gwt_stop(&f), 0);
    mr_matrix_free(bob);
    gwt_teardown(&f);
}

static void test_existing_rooms_migrate_only_when_asked(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, HEAD "matrix_room_access: {mode: single_user_private}\n");
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    assert_access(&f, "#lobby:localhost", "invite", false);

    /* multi_user without reconcile_existing_rooms: the rooms stay as they are. */
    gwt_write_config(&f, HEAD "matrix_room_access:\n  mode: multi_user\n  multi_user_join_rule: public\n"
                              "  publish_to_room_directory: true\n  invite_only_rooms: [secret]\n");
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    assert_access(&f, "#lobby:localhost", "invite", false);

    /* With it, the managed rooms move; invite_only_rooms stay restricted. */
    gwt_write_config(&f, HEAD "matrix_room_access:\n  mode: multi_user\n  multi_user_join_rule: public\n"
                              "  publish_to_room_directory: true\n  invite_only_rooms: [secret]\n"
                              "  reconcile_existing_rooms: true\n");
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_access(&f, "#lobby:localhost", "public", true);
    assert_access(&f, "#secret:localhost", "invite", false);
    gwt_assert_log(&f, "matrix_room_access: #lobby:localhost (", 2);
    gwt_assert_log(&f, "now has join rule public", 1);
    gwt_assert_log(&f, "is now in the room directory", 1);
    assert_int_equal(gwt_stop(&f), 0);

    /* And back to single_user_private: invite-only and out of the directory again. */
    gwt_write_config(&f, HEAD "matrix_room_access: {mode: single_user_private, reconcile_existing_rooms: true}\n");
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    assert_int_equal(gwt_stop(&f), 0);
    assert_access(&f, "#lobby:localhost", "invite", false);
    gwt_assert_log(&f, "is now out of the room directory", 1);
    gwt_teardown(&f);
}

/* The lobby alias belongs to a room carol made; the router joins it but has power 0. */
static void test_insufficient_power_warns(void **state)
{
    (void)state;
    gwt f;
    gwt_setup(&f, NULL, HEAD "matrix_room_access:\n  mode: multi_user\n  multi_user_join_rule: knock\n"
                             "  publish_to_room_directory: true\n  reconcile_existing_rooms: true\n");
    mr_matrix *carol = gwt_human(&f, "carol");
    mr_err err = {0};
    char room[MR_MATRIX_ID_SIZE];
    json_t *body = json_pack("{s:s, s:s}", "room_alias_name", "lobby", "preset", "public_chat");
    assert_int_equal(mr_matrix_create_room(carol, body, room, &err), MR_OK);
    json_decref(body);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    char want[1024];
    snprintf(want, sizeof want, "matrix_room_access: cannot set m.room.join_rules to knock in "
             "#lobby:localhost (%s): M_FORBIDDEN: ", room);
    gwt_assert_log(&f, want, 1);
    gwt_assert_log(&f, "; this needs power level 50 for m.room.join_rules and "
                                       "@mindroom_router:localhost has 0", 1);
    snprintf(want, sizeof want, "matrix_room_access: cannot publish the room to the room directory "
             "in #lobby:localhost (%s): M_FORBIDDEN: ", room);
    gwt_assert_log(&f, want, 1);
    gwt_assert_log(&f, "; this needs power level 50 (moderator) and "
                                       "@mindroom_router:localhost has 0", 1);
    /* Still served: the router and mind are in the room. */
    json_t *s = gwt_hs_state(&f);
    json_t *r = room_of(s, "#lobby:localhost");
    assert_string_equal(json_string_value(json_object_get(r, "join_rule")), "public");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "members"),
                                                          "@mindroom_mind:localhost")), "join");
    json_decref(s);
    assert_int_equal(gwt_stop(&f), 0);
    mr_matrix_free(carol);
    gwt_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_user_knock_and_directory),
        cmocka_unit_test(test_existing_rooms_migrate_only_when_asked),
        cmocka_unit_test(test_insufficient_power_warns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
