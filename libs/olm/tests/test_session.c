/* test_session.c -- Olm between two accounts: a claimed one-time key, pre-key then normal
 * messages both ways, pickles, and the refusals: forged key signatures, malformed base64,
 * truncated messages, messages of another session, a one-time key used twice. */
#include "olm_test.h"

#include <stdlib.h>

#include "mindroom/b64.h"

/* Pre-key messages until the first reply, normal messages after, both ways; same session ID on
 * both sides. (That the used one-time key is gone is test_refusals' spent-key case.) */
static void test_full_exchange(void **state)
{
    (void)state;
    pair p;
    pair_up(&p);
    char id_a[MR_OLM_KEY_SIZE], id_b[MR_OLM_KEY_SIZE];
    mr_olm_session_id(p.a2b, id_a);
    mr_olm_session_id(p.b2a, id_b);
    assert_int_equal(strlen(id_a), 43);
    assert_string_equal(id_a, id_b);
    int type;
    char *body;
    /* Alice has not heard back: still pre-key. */
    encrypt(p.a2b, "second", &type, &body);
    assert_int_equal(type, MR_OLM_MSG_PRE_KEY);
    assert_true(mr_olm_session_matches_inbound(p.b2a, mr_olm_account_curve25519(p.alice.account), body));
    assert_false(mr_olm_session_matches_inbound(p.b2a, mr_olm_account_curve25519(p.bob.account), body));
    expect_plain(p.b2a, type, body, "second");
    free(body);

    /* Bob has received: normal messages. */
    encrypt(p.b2a, "reply", &type, &body);
    assert_int_equal(type, MR_OLM_MSG_NORMAL);
    expect_plain(p.a2b, type, body, "reply");
    free(body);
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof text, "message %d", i);
        encrypt(p.a2b, text, &type, &body);
        assert_int_equal(type, MR_OLM_MSG_NORMAL);
        expect_plain(p.b2a, type, body, text);
        free(body);
        encrypt(p.b2a, text, &type, &body);
        expect_plain(p.a2b, type, body, text);
        free(body);
    }
    pair_free(&p);
}

/* A session pickled mid-conversation carries on after unpickling; a wrong key is refused. */
static void test_session_pickle(void **state)
{
    (void)state;
    pair p;
    pair_up(&p);
    mr_err err = {0};
    char *pickle = NULL;
    assert_ok(mr_olm_session_pickle(p.b2a, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &pickle, &err), err);
    mr_olm_session *back = NULL;
    char *none = NULL;
    assert_refused(mr_olm_session_pickle(p.b2a, TEST_PICKLE_KEY, 4, &none, &err), MR_EINVAL, err,
                   "pickle key has 4 bytes");
    assert_null(none);
    assert_refused(mr_olm_session_unpickle(pickle, TEST_OTHER_KEY, sizeof TEST_OTHER_KEY, &back, &err), MR_EAUTH, err,
                   "unpickling an Olm session: libolm BAD_ACCOUNT_KEY");
    assert_null(back);
    assert_ok(mr_olm_session_unpickle(pickle, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &back, &err), err);
    free(pickle);
    mr_olm_session_free(p.b2a);
    p.b2a = back;
    int type;
    char *body;
    encrypt(p.b2a, "after restart", &type, &body);
    expect_plain(p.a2b, type, body, "after restart");
    free(body);
    encrypt(p.a2b, "and back", &type, &body);
    expect_plain(p.b2a, type, body, "and back");
    free(body);
    pair_free(&p);
}

/* A claimed key whose signature is not the device's, or is missing, makes no session. */
static void test_forged_one_time_key(void **state)
{
    (void)state;
    test_device alice, bob, mallory;
    test_alice_and_bob(&alice, &bob);
    test_device_new(&mallory, "@mallory:example.org", "MALDEV");
    mr_err err = {0};
    mr_olm_device bob_view = test_device_view(&bob);
    mr_olm_session *s = NULL;

    /* Mallory's key, signed by Mallory, passed off as Bob's. */
    json_t *forged = test_claim_key(&mallory);
    json_t *sigs = json_object_get(forged, "signatures");
    json_object_set(sigs, "@bob:example.org", json_object_get(sigs, "@mallory:example.org"));
    json_t *bob_sig = json_object_get(sigs, "@bob:example.org");
    json_object_set(bob_sig, "ed25519:BOBDEV", json_object_get(bob_sig, "ed25519:MALDEV"));
    assert_refused(mr_olm_session_new_outbound(alice.account, &bob_view, forged, &s, &err), MR_EAUTH, err,
                   "does not verify");
    assert_non_null(strstr(err.msg, "one-time key claimed for device BOBDEV of @bob:example.org"));
    assert_null(s);
    json_decref(forged);

    /* Bob's real key with its key swapped, and with no signature. */
    json_t *claimed = test_claim_key(&bob);
    json_t *swapped = json_deep_copy(claimed);
    json_object_set_new(swapped, "key", json_string(mr_olm_account_curve25519(mallory.account)));
    assert_refused(mr_olm_session_new_outbound(alice.account, &bob_view, swapped, &s, &err), MR_EAUTH, err,
                   "does not verify");
    json_object_del(swapped, "signatures");
    assert_refused(mr_olm_session_new_outbound(alice.account, &bob_view, swapped, &s, &err), MR_EAUTH, err,
                   "no signature by @bob:example.org ed25519:BOBDEV");
    json_object_set_new(swapped, "key", json_string("not base64!"));
    assert_refused(mr_olm_session_new_outbound(alice.account, &bob_view, swapped, &s, &err), MR_EINVAL, err,
                   "the claimed one-time key's \"key\"");
    json_decref(swapped);

    /* A device with a malformed key is refused before anything else. */
    mr_olm_device broken = bob_view;
    broken.curve25519 = "AAAA";
    assert_refused(mr_olm_session_new_outbound(alice.account, &broken, claimed, &s, &err), MR_EINVAL, err,
                   "device BOBDEV of @bob:example.org: the device's curve25519 key");
    assert_null(s);
    assert_ok(mr_olm_session_new_outbound(alice.account, &bob_view, claimed, &s, &err), err);
    json_decref(claimed);
    mr_olm_session_free(s);
    test_alice_and_bob_free(&alice, &bob);
    mr_olm_account_free(mallory.account);
}

/* Bad input: malformed base64, a truncated message, a bad type, a message from another
 * session, a pre-key message whose one-time key is spent. Each is refused and changes nothing:
 * the session still decrypts the next good message. */
static void test_refusals(void **state)
{
    (void)state;
    pair p;
    pair_up(&p);
    mr_err err = {0};
    int type;
    char *body, *plain = NULL;
    size_t len = 0;
    encrypt(p.b2a, "good", &type, &body);

    char *bad = strdup(body);
    bad[5] = '*';
    assert_refused(mr_olm_session_decrypt(p.a2b, type, bad, &plain, &len, &err), MR_EINVAL, err,
                   "the Olm message body: character 6 is not base64");
    bad[5] = '_';
    assert_refused(mr_olm_session_decrypt(p.a2b, type, bad, &plain, &len, &err), MR_EINVAL, err,
                   "character 6 is not unpadded standard base64");
    free(bad);
    /* Truncated: whole base64 groups shorter than the message. */
    bad = strndup(body, (strlen(body) / 2) & ~(size_t)3);
    assert_refused(mr_olm_session_decrypt(p.a2b, type, bad, &plain, &len, &err), MR_EINVAL, err,
                   "libolm BAD_MESSAGE_FORMAT");
    free(bad);
    bad = strndup(body, strlen(body) - 4);
    assert_int_not_equal(mr_olm_session_decrypt(p.a2b, type, bad, &plain, &len, &err), MR_OK);
    assert_non_null(strstr(err.msg, "decrypting an Olm message: libolm"));
    free(bad);
    assert_refused(mr_olm_session_decrypt(p.a2b, 2, body, &plain, &len, &err), MR_EINVAL, err,
                   "Olm message type 2");
    assert_refused(mr_olm_session_decrypt(p.a2b, type, "", &plain, &len, &err), MR_EINVAL, err, "empty");
    assert_refused(mr_olm_session_decrypt(p.a2b, type, NULL, &plain, &len, &err), MR_EINVAL, err, "missing");
    assert_null(plain);

    /* An unknown session: a message of another pair's session. */
    pair q;
    pair_up(&q);
    int qtype;
    char *qbody;
    encrypt(q.b2a, "other", &qtype, &qbody);
    assert_refused(mr_olm_session_decrypt(p.a2b, qtype, qbody, &plain, &len, &err), MR_EAUTH, err,
                   "libolm BAD_MESSAGE_MAC");
    free(qbody);

    /* The good message still decrypts after all of that. */
    expect_plain(p.a2b, type, body, "good");
    free(body);

    /* A second pre-key message from a new outbound session on the same (spent) one-time key. */
    mr_olm_session *out = test_outbound(&q.alice, &q.bob), *in = NULL;
    encrypt(out, "once", &qtype, &qbody);
    char *copy = strdup(qbody);
    assert_ok(mr_olm_session_new_inbound(q.bob.account, mr_olm_account_curve25519(q.alice.account), qbody, &in,
                                         &plain, &len, &err),
              err);
    mr_olm_free_secret(plain, len);
    mr_olm_session_free(in);
    in = NULL;
    assert_refused(mr_olm_session_new_inbound(q.bob.account, mr_olm_account_curve25519(q.alice.account), copy, &in,
                                              &plain, &len, &err),
                   MR_ENOTFOUND, err, "BAD_MESSAGE_KEY_ID");
    assert_null(in);
    /* The pre-key message claims another sender: refused. */
    assert_int_not_equal(mr_olm_session_new_inbound(q.bob.account, mr_olm_account_curve25519(p.bob.account), copy,
                                                    &in, &plain, &len, &err),
                         MR_OK);
    assert_null(in);
    assert_refused(mr_olm_session_new_inbound(q.bob.account, "short", copy, &in, &plain, &len, &err), MR_EINVAL, err,
                   "the sender's curve25519 key");
    free(copy);
    free(qbody);
    mr_olm_session_free(out);
    pair_free(&q);
    pair_free(&p);
}

/* A pre-key message whose inner ciphertext is bad makes no session and keeps the one-time key:
 * nothing is consumed until a message decrypts. */
static void test_inbound_keeps_key_on_failure(void **state)
{
    (void)state;
    test_device alice, bob;
    char *body;
    mr_olm_session *out = test_first_message(&alice, &bob, "a longer message so the ciphertext has room", &body);
    mr_olm_session *in = NULL;
    mr_err err = {0};
    int type;
    /* Flip a character near the end: inside the MAC or ciphertext, past the session keys. */
    size_t n = strlen(body);
    body[n - 6] = body[n - 6] == 'A' ? 'B' : 'A';
    char *plain = NULL;
    size_t len = 0;
    assert_int_not_equal(mr_olm_session_new_inbound(bob.account, mr_olm_account_curve25519(alice.account), body, &in,
                                                    &plain, &len, &err),
                         MR_OK);
    assert_null(in);
    /* The key is still in the account: the same key works for a good message. */
    free(body);
    encrypt(out, "good", &type, &body);
    assert_ok(mr_olm_session_new_inbound(bob.account, mr_olm_account_curve25519(alice.account), body, &in, &plain,
                                         &len, &err),
              err);
    assert_string_equal(plain, "good");
    mr_olm_free_secret(plain, len);
    free(body);
    mr_olm_session_free(out);
    mr_olm_session_free(in);
    test_alice_and_bob_free(&alice, &bob);
}

/* A session set up on the fallback key when the one-time keys ran out. */
static void test_fallback_key_session(void **state)
{
    (void)state;
    test_device alice, bob;
    test_alice_and_bob(&alice, &bob);
    mr_err err = {0};
    assert_ok(mr_olm_account_generate_fallback_key(bob.account, &err), err);
    json_t *body = NULL;
    assert_ok(mr_olm_account_keys_upload_body(bob.account, bob.user_id, bob.device_id, false, &body, &err), err);
    mr_olm_account_mark_published(bob.account);
    void *it = json_object_iter(json_object_get(body, "fallback_keys"));
    json_t *claimed = json_object_iter_value(it);
    mr_olm_device bob_view = test_device_view(&bob);
    for (int i = 0; i < 2; i++) {
        mr_olm_session *out = NULL, *in = NULL;
        assert_ok(mr_olm_session_new_outbound(alice.account, &bob_view, claimed, &out, &err), err);
        int type;
        char *msg, *plain = NULL;
        size_t len = 0;
        encrypt(out, "via fallback", &type, &msg);
        /* The fallback key is not consumed: a second session on it works too. */
        assert_ok(mr_olm_session_new_inbound(bob.account, mr_olm_account_curve25519(alice.account), msg, &in, &plain,
                                             &len, &err),
                  err);
        assert_string_equal(plain, "via fallback");
        mr_olm_free_secret(plain, len);
        free(msg);
        mr_olm_session_free(out);
        mr_olm_session_free(in);
    }
    json_decref(body);
    test_alice_and_bob_free(&alice, &bob);
}

/* Rebuilds the pre-key message body without its length-delimited field `field` (1 one-time key,
 * 2 base key, 3 identity key), as unpadded standard base64. */
static char *drop_pre_key_field(const char *body, unsigned field)
{
    unsigned char raw[1024], out[1024];
    size_t n = 0, o = 1;
    mr_err err = {0};
    assert_ok(mr_b64_decode(body, strlen(body), MR_B64_STD_TOO, raw, sizeof raw, &n, &err), err);
    assert_true(n < sizeof raw);
    out[0] = raw[0];
    /* Every field of a pre-key message is a one-byte tag and a one-byte length except the
     * message, which is last; copy all but the dropped one. */
    for (size_t i = 1; i < n;) {
        unsigned tag = raw[i];
        size_t flen = raw[i + 1] & 0x80 ? n - i : (size_t)raw[i + 1] + 2;
        if (tag >> 3 != field) {
            memcpy(out + o, raw + i, flen);
            o += flen;
        }
        i += flen;
    }
    char *text = malloc(MR_B64URL_LEN(o) + 1);
    mr_b64url_encode(out, o, text);
    for (char *c = text; *c; c++)
        *c = *c == '-' ? '+' : *c == '_' ? '/' : *c;
    return text;
}

/* A pre-key message without one of its keys made libolm 3.2 read through a NULL pointer (found
 * by fuzz_olm_decrypt); it is refused before libolm sees it, naming the missing key. */
static void test_pre_key_missing_fields(void **state)
{
    (void)state;
    test_device alice, bob;
    char *body, *plain = NULL;
    mr_olm_session *out = test_first_message(&alice, &bob, "hi", &body), *in = NULL;
    mr_err err = {0};
    size_t len = 0;
    const char *names[] = {NULL, "lacks its one-time key", "lacks its base key", "lacks its identity key"};
    /* The identity key first: that one crashed libolm. */
    for (unsigned field = 3; field >= 1; field--) {
        char *cut = drop_pre_key_field(body, field);
        assert_refused(mr_olm_session_new_inbound(bob.account, mr_olm_account_curve25519(alice.account), cut, &in,
                                                  &plain, &len, &err),
                       MR_EINVAL, err, names[field]);
        assert_false(mr_olm_session_matches_inbound(out, mr_olm_account_curve25519(bob.account), cut));
        assert_refused(mr_olm_session_decrypt(out, MR_OLM_MSG_PRE_KEY, cut, &plain, &len, &err), MR_EINVAL, err,
                       names[field]);
        free(cut);
    }
    assert_null(in);
    assert_null(plain);
    /* Not version 3. */
    char *old = strdup(body);
    old[0] = 'B';
    assert_refused(mr_olm_session_new_inbound(bob.account, mr_olm_account_curve25519(alice.account), old, &in, &plain,
                                              &len, &err),
                   MR_EINVAL, err, "not Olm version 3");
    free(old);
    /* The untouched message still makes the session. */
    assert_ok(mr_olm_session_new_inbound(bob.account, mr_olm_account_curve25519(alice.account), body, &in, &plain, &len,
                                         &err),
              err);
    assert_string_equal(plain, "hi");
    mr_olm_free_secret(plain, len);
    free(body);
    mr_olm_session_free(out);
    mr_olm_session_free(in);
    test_alice_and_bob_free(&alice, &bob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_exchange),
        cmocka_unit_test(test_session_pickle),
        cmocka_unit_test(test_forged_one_time_key),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_inbound_keeps_key_on_failure),
        cmocka_unit_test(test_fallback_key_session),
        cmocka_unit_test(test_pre_key_missing_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
