/* test_megolm.c -- Megolm: a room key shared over Olm as an m.room_key and room messages
 * decrypted with their indexes; a forwarded (exported) key; replay detection; pickles; and the
 * refusals: malformed base64, truncated ciphertext, another session's message, unknown index. */
#include "olm_test.h"

static const char ROOM[] = "!room:example.org";

/* An outbound room session and an inbound one from its key. */
static void room_sessions(mr_olm_outbound_group **g, mr_olm_inbound_group **in)
{
    mr_err err = {0};
    char *key = NULL;
    assert_ok(mr_olm_outbound_group_new(g, &err), err);
    assert_ok(mr_olm_outbound_group_key(*g, &key, &err), err);
    assert_ok(mr_olm_inbound_group_new(key, in, &err), err);
    mr_olm_free_secret(key, strlen(key));
}

static char *group_encrypt(mr_olm_outbound_group *g, const char *text)
{
    mr_err err = {0};
    char *ct = NULL;
    assert_ok(mr_olm_outbound_group_encrypt(g, text, strlen(text), &ct, &err), err);
    return ct;
}

static void expect_group_plain(mr_olm_inbound_group *g, const char *ct, const char *text, uint32_t index)
{
    mr_err err = {0};
    char *plain = NULL;
    size_t len = 0;
    uint32_t got = 99;
    assert_ok(mr_olm_inbound_group_decrypt(g, ct, &plain, &len, &got, &err), err);
    assert_string_equal(plain, text);
    assert_int_equal(len, strlen(text));
    assert_int_equal(got, index);
    mr_olm_free_secret(plain, len);
}

/* Alice makes a room session and sends its key to Bob in an Olm-encrypted m.room_key; Bob checks
 * the payload and makes the inbound session from it. */
static mr_olm_inbound_group *share_room_key(pair *p, mr_olm_outbound_group *g)
{
    mr_err err = {0};
    char id[MR_OLM_KEY_SIZE], *key = NULL;
    mr_olm_outbound_group_id(g, id);
    assert_ok(mr_olm_outbound_group_key(g, &key, &err), err);
    json_t *content = json_pack("{ss ss ss ss}", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "room_id", ROOM, "session_id",
                                id, "session_key", key);
    mr_olm_free_secret(key, strlen(key));
    mr_olm_payload_parties parties = {p->alice.user_id, mr_olm_account_ed25519(p->alice.account), p->bob.user_id,
                                      mr_olm_account_ed25519(p->bob.account)};
    char *payload = NULL;
    assert_ok(mr_olm_payload_build(&parties, "m.room_key", content, &payload, &err), err);
    json_decref(content);
    int type;
    char *body = NULL;
    assert_ok(mr_olm_session_encrypt(p->a2b, payload, strlen(payload), &type, &body, &err), err);
    mr_olm_free_secret(payload, strlen(payload));

    char *plain = NULL;
    size_t len = 0;
    assert_ok(mr_olm_session_decrypt(p->b2a, type, body, &plain, &len, &err), err);
    free(body);
    mr_olm_payload_expect want = {p->alice.user_id, mr_olm_account_curve25519(p->alice.account),
                                  mr_olm_account_ed25519(p->alice.account), p->bob.user_id,
                                  mr_olm_account_ed25519(p->bob.account)};
    json_t *ev = NULL;
    assert_ok(mr_olm_payload_check(plain, len, &want, &ev, &err), err);
    mr_olm_free_secret(plain, len);
    json_t *rk = json_object_get(ev, "content");
    assert_string_equal(json_string_value(json_object_get(rk, "session_id")), id);
    mr_olm_inbound_group *in = NULL;
    assert_ok(mr_olm_inbound_group_new(json_string_value(json_object_get(rk, "session_key")), &in, &err), err);
    json_decref(ev);
    char in_id[MR_OLM_KEY_SIZE];
    mr_olm_inbound_group_id(in, in_id);
    assert_string_equal(in_id, id);
    return in;
}

static void test_share_and_decrypt(void **state)
{
    (void)state;
    pair p;
    pair_up(&p);
    mr_err err = {0};
    mr_olm_outbound_group *g = NULL;
    assert_ok(mr_olm_outbound_group_new(&g, &err), err);
    assert_int_equal(mr_olm_outbound_group_index(g), 0);
    mr_olm_inbound_group *in = share_room_key(&p, g);
    assert_int_equal(mr_olm_inbound_group_first_index(in), 0);
    const char *texts[] = {("{\"type\":\"m.room.message\",\"content\":{\"body\":\"hi\"},"
                            "\"room_id\":\"!room:example.org\"}"),
                           "second", "third"};
    char *cts[3];
    for (uint32_t i = 0; i < 3; i++) {
        cts[i] = group_encrypt(g, texts[i]);
        assert_int_equal(mr_olm_outbound_group_index(g), i + 1);
    }
    /* Out of order, and the same message twice. */
    expect_group_plain(in, cts[2], texts[2], 2);
    expect_group_plain(in, cts[0], texts[0], 0);
    expect_group_plain(in, cts[1], texts[1], 1);
    expect_group_plain(in, cts[1], texts[1], 1);
    for (int i = 0; i < 3; i++)
        free(cts[i]);
    mr_olm_inbound_group_free(in);
    mr_olm_outbound_group_free(g);
    pair_free(&p);
}

/* m.forwarded_room_key: a key exported from index 1 decrypts 1 on, not 0. */
static void test_forwarded_key(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_olm_outbound_group *g = NULL;
    mr_olm_inbound_group *bob = NULL, *carol = NULL;
    room_sessions(&g, &bob);
    char *ct0 = group_encrypt(g, "zero"), *ct1 = group_encrypt(g, "one"), *ct2 = group_encrypt(g, "two");

    char *exported = NULL;
    assert_ok(mr_olm_inbound_group_export(bob, 1, &exported, &err), err);
    assert_ok(mr_olm_inbound_group_import(exported, &carol, &err), err);
    mr_olm_free_secret(exported, strlen(exported));
    assert_int_equal(mr_olm_inbound_group_first_index(carol), 1);
    char id_b[MR_OLM_KEY_SIZE], id_c[MR_OLM_KEY_SIZE];
    mr_olm_inbound_group_id(bob, id_b);
    mr_olm_inbound_group_id(carol, id_c);
    assert_string_equal(id_b, id_c);
    expect_group_plain(carol, ct2, "two", 2);
    expect_group_plain(carol, ct1, "one", 1);
    char *plain = NULL;
    size_t len = 0;
    uint32_t index = 0;
    assert_refused(mr_olm_inbound_group_decrypt(carol, ct0, &plain, &len, &index, &err), MR_ENOTFOUND, err,
                   "UNKNOWN_MESSAGE_INDEX");
    assert_null(plain);
    /* Carol cannot export what she never had. */
    assert_refused(mr_olm_inbound_group_export(carol, 0, &exported, &err), MR_ENOTFOUND, err, "UNKNOWN_MESSAGE_INDEX");
    assert_null(exported);
    /* An m.room_key session_key is not an export. */
    char *key = NULL;
    assert_ok(mr_olm_outbound_group_key(g, &key, &err), err);
    mr_olm_inbound_group *wrong = NULL;
    assert_refused(mr_olm_inbound_group_import(key, &wrong, &err), MR_EINVAL, err, "BAD_SESSION_KEY");
    mr_olm_free_secret(key, strlen(key));
    assert_null(wrong);
    free(ct0);
    free(ct1);
    free(ct2);
    mr_olm_inbound_group_free(bob);
    mr_olm_inbound_group_free(carol);
    mr_olm_outbound_group_free(g);
}

/* The same (session, index) for another event is refused; the same event again is fine. */
static void test_replay(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_olm_replay *r = NULL;
    assert_ok(mr_olm_replay_new(&r, &err), err);
    assert_ok(mr_olm_replay_check(r, "SESSION_A", 0, "$event1", &err), err);
    assert_ok(mr_olm_replay_check(r, "SESSION_A", 0, "$event1", &err), err);
    assert_refused(mr_olm_replay_check(r, "SESSION_A", 0, "$event2", &err), MR_EEXISTS, err,
                   "Megolm replay: message index 0 of session SESSION_A decrypted event $event1 already, and now "
                   "$event2");
    assert_ok(mr_olm_replay_check(r, "SESSION_A", 1, "$event2", &err), err);
    assert_ok(mr_olm_replay_check(r, "SESSION_B", 0, "$event3", &err), err);
    /* Enough entries to grow the table; every one is still found afterwards. */
    for (uint32_t i = 0; i < 2000; i++) {
        char ev[32];
        snprintf(ev, sizeof ev, "$many%u", i);
        assert_ok(mr_olm_replay_check(r, "SESSION_C", i, ev, &err), err);
    }
    for (uint32_t i = 0; i < 2000; i += 97) {
        char ev[32];
        snprintf(ev, sizeof ev, "$many%u", i);
        assert_ok(mr_olm_replay_check(r, "SESSION_C", i, ev, &err), err);
        assert_refused(mr_olm_replay_check(r, "SESSION_C", i, "$replayed", &err), MR_EEXISTS, err, "Megolm replay");
    }
    assert_refused(mr_olm_replay_check(r, "SESSION_A", 0, "$event2", &err), MR_EEXISTS, err, "Megolm replay");
    assert_refused(mr_olm_replay_check(r, "", 0, "$e", &err), MR_EINVAL, err, "needs a Megolm session ID");
    assert_refused(mr_olm_replay_check(r, "S", 0, NULL, &err), MR_EINVAL, err, "an event ID");
    mr_olm_replay_free(r);
}

/* A replayed ciphertext decrypts (libolm allows it) and the replay table is what refuses it. */
static void test_replayed_index_end_to_end(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_olm_outbound_group *g = NULL;
    mr_olm_inbound_group *in = NULL;
    room_sessions(&g, &in);
    char id[MR_OLM_KEY_SIZE];
    mr_olm_outbound_group_id(g, id);
    mr_olm_replay *r = NULL;
    assert_ok(mr_olm_replay_new(&r, &err), err);
    char *ct = group_encrypt(g, "pay 10");
    const char *events[] = {"$original", "$original", "$copy"};
    for (int i = 0; i < 3; i++) {
        char *plain = NULL;
        size_t len = 0;
        uint32_t index = 0;
        assert_ok(mr_olm_inbound_group_decrypt(in, ct, &plain, &len, &index, &err), err);
        mr_olm_free_secret(plain, len);
        mr_code rc = mr_olm_replay_check(r, id, index, events[i], &err);
        assert_int_equal(rc, i < 2 ? MR_OK : MR_EEXISTS);
    }
    free(ct);
    mr_olm_replay_free(r);
    mr_olm_inbound_group_free(in);
    mr_olm_outbound_group_free(g);
}

static void test_refusals(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_olm_outbound_group *g = NULL, *other = NULL;
    mr_olm_inbound_group *in = NULL;
    room_sessions(&g, &in);
    assert_ok(mr_olm_outbound_group_new(&other, &err), err);
    char *key = NULL;
    assert_ok(mr_olm_outbound_group_key(g, &key, &err), err);
    char *ct = group_encrypt(g, "secret"), *plain = NULL;
    size_t len = 0;
    uint32_t index = 0;

    char *bad = strdup(ct);
    bad[3] = '%';
    assert_refused(mr_olm_inbound_group_decrypt(in, bad, &plain, &len, &index, &err), MR_EINVAL, err,
                   "the Megolm ciphertext: character 4 is not base64");
    free(bad);
    bad = strndup(ct, 40);
    assert_refused(mr_olm_inbound_group_decrypt(in, bad, &plain, &len, &index, &err), MR_EINVAL, err,
                   "decrypting a Megolm message: libolm BAD_MESSAGE_");
    free(bad);
    bad = strndup(ct, strlen(ct) - 8);
    assert_int_not_equal(mr_olm_inbound_group_decrypt(in, bad, &plain, &len, &index, &err), MR_OK);
    assert_non_null(strstr(err.msg, "Megolm message: libolm"));
    free(bad);
    assert_refused(mr_olm_inbound_group_decrypt(in, "", &plain, &len, &index, &err), MR_EINVAL, err, "empty");
    char *foreign = group_encrypt(other, "not yours");
    assert_refused(mr_olm_inbound_group_decrypt(in, foreign, &plain, &len, &index, &err), MR_EAUTH, err, "libolm BAD_");
    free(foreign);
    assert_null(plain);
    expect_group_plain(in, ct, "secret", 0);

    /* Session keys: malformed base64, truncated. */
    mr_olm_inbound_group *none = NULL;
    assert_refused(mr_olm_inbound_group_new("not a key!", &none, &err), MR_EINVAL, err,
                   "the m.room_key session_key: character");
    size_t key_len = strlen(key);
    key[(key_len / 2) & ~(size_t)3] = '\0';
    assert_refused(mr_olm_inbound_group_new(key, &none, &err), MR_EINVAL, err, "BAD_SESSION_KEY");
    assert_refused(mr_olm_inbound_group_new(NULL, &none, &err), MR_EINVAL, err, "missing");
    assert_null(none);
    mr_olm_free_secret(key, key_len);
    free(ct);
    mr_olm_inbound_group_free(in);
    mr_olm_outbound_group_free(g);
    mr_olm_outbound_group_free(other);
}

/* Both kinds of session survive a pickle: same ID, same index, the ratchet where it was. */
static void test_pickles(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_olm_outbound_group *g = NULL;
    mr_olm_inbound_group *in = NULL;
    room_sessions(&g, &in);
    free(group_encrypt(g, "advance"));

    char *pickle = NULL, id[MR_OLM_KEY_SIZE], id2[MR_OLM_KEY_SIZE];
    assert_ok(mr_olm_outbound_group_pickle(g, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &pickle, &err), err);
    mr_olm_outbound_group *g2 = NULL;
    assert_refused(mr_olm_outbound_group_unpickle(pickle, TEST_OTHER_KEY, sizeof TEST_OTHER_KEY, &g2, &err), MR_EAUTH,
                   err, "unpickling an outbound Megolm session: libolm BAD_ACCOUNT_KEY");
    assert_ok(mr_olm_outbound_group_unpickle(pickle, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &g2, &err), err);
    free(pickle);
    mr_olm_outbound_group_id(g, id);
    mr_olm_outbound_group_id(g2, id2);
    assert_string_equal(id, id2);
    assert_int_equal(mr_olm_outbound_group_index(g2), 1);
    char *ct = group_encrypt(g2, "after restart");

    assert_ok(mr_olm_inbound_group_pickle(in, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &pickle, &err), err);
    mr_olm_inbound_group *in2 = NULL;
    assert_refused(mr_olm_inbound_group_unpickle(pickle, TEST_OTHER_KEY, sizeof TEST_OTHER_KEY, &in2, &err), MR_EAUTH,
                   err, "unpickling an inbound Megolm session: libolm BAD_ACCOUNT_KEY");
    assert_refused(mr_olm_inbound_group_unpickle(pickle, TEST_PICKLE_KEY, 3, &in2, &err), MR_EINVAL, err,
                   "pickle key has 3 bytes");
    assert_ok(mr_olm_inbound_group_unpickle(pickle, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &in2, &err), err);
    free(pickle);
    expect_group_plain(in2, ct, "after restart", 1);
    free(ct);
    mr_olm_inbound_group_free(in);
    mr_olm_inbound_group_free(in2);
    mr_olm_outbound_group_free(g);
    mr_olm_outbound_group_free(g2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_and_decrypt),
        cmocka_unit_test(test_forwarded_key),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_replayed_index_end_to_end),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_pickles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
