/* test_account.c -- accounts: identity keys, the /keys/upload body (device_keys, one-time and
 * fallback keys, each signed and checked with OpenSSL as well), key limits, pickles with right
 * and wrong keys, and the cross-signing upload bodies. */
#include "olm_test.h"

#include <stdlib.h>
#include <openssl/evp.h>

#include "mindroom/b64.h"

static void b64_decode(const char *s, unsigned char *out, size_t want)
{
    size_t n = 0;
    mr_err err = {0};
    assert_ok(mr_b64_decode(s, strlen(s), MR_B64_STD_TOO, out, want, &n, &err), err);
    assert_int_equal(n, want);
}

/* Checks the signature with OpenSSL's Ed25519, apart from libolm: the bytes signed are the
 * canonical JSON of obj without signatures and unsigned. */
static void assert_openssl_verifies(const json_t *obj, const char *user_id, const char *key_id, const char *ed25519)
{
    json_t *copy = json_copy((json_t *)obj);
    json_object_del(copy, "signatures");
    json_object_del(copy, "unsigned");
    char *bytes = NULL;
    size_t len = 0;
    mr_err err = {0};
    assert_ok(mr_olm_canonical_json(copy, &bytes, &len, &err), err);
    unsigned char pub[32], sig[64];
    b64_decode(ed25519, pub, sizeof pub);
    const char *sig_b64 =
        json_string_value(json_object_get(json_object_get(json_object_get(obj, "signatures"), user_id), key_id));
    assert_non_null(sig_b64);
    b64_decode(sig_b64, sig, sizeof sig);
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof pub);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(pkey);
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey), 1);
    assert_int_equal(EVP_DigestVerify(ctx, sig, sizeof sig, (const unsigned char *)bytes, len), 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    free(bytes);
    json_decref(copy);
}

static void test_identity_keys(void **state)
{
    (void)state;
    test_device a, b;
    test_device_new(&a, "@alice:example.org", "ALICEDEV");
    test_device_new(&b, "@bob:example.org", "BOBDEV");
    mr_err err = {0};
    assert_int_equal(strlen(mr_olm_account_curve25519(a.account)), 43);
    assert_int_equal(strlen(mr_olm_account_ed25519(a.account)), 43);
    assert_string_not_equal(mr_olm_account_ed25519(a.account), mr_olm_account_ed25519(b.account));
    assert_string_not_equal(mr_olm_account_curve25519(a.account), mr_olm_account_curve25519(b.account));
    char sig[MR_OLM_SIGNATURE_SIZE];
    assert_ok(mr_olm_account_sign(a.account, "hello", 5, sig, &err), err);
    assert_int_equal(strlen(sig), 86);
    mr_olm_account_free(a.account);
    mr_olm_account_free(b.account);
}

/* device_keys as the spec's DeviceKeys: user, device, both algorithms, both keys, signed by the
 * device's Ed25519 key over its canonical JSON. */
static void test_device_keys(void **state)
{
    (void)state;
    test_device a;
    test_device_new(&a, "@alice:example.org", "ALICEDEV");
    mr_err err = {0};
    json_t *dk = NULL;
    assert_ok(mr_olm_account_device_keys(a.account, a.user_id, a.device_id, &dk, &err), err);
    assert_string_equal(json_string_value(json_object_get(dk, "user_id")), a.user_id);
    assert_string_equal(json_string_value(json_object_get(dk, "device_id")), a.device_id);
    json_t *alg = json_object_get(dk, "algorithms");
    assert_int_equal(json_array_size(alg), 2);
    assert_string_equal(json_string_value(json_array_get(alg, 0)), MR_OLM_ALGORITHM_OLM);
    assert_string_equal(json_string_value(json_array_get(alg, 1)), MR_OLM_ALGORITHM_MEGOLM);
    json_t *keys = json_object_get(dk, "keys");
    assert_int_equal(json_object_size(keys), 2);
    assert_string_equal(json_string_value(json_object_get(keys, "curve25519:ALICEDEV")),
                        mr_olm_account_curve25519(a.account));
    assert_string_equal(json_string_value(json_object_get(keys, "ed25519:ALICEDEV")),
                        mr_olm_account_ed25519(a.account));
    const char *ed = mr_olm_account_ed25519(a.account);
    assert_ok(mr_olm_verify_json(dk, a.user_id, "ed25519:ALICEDEV", ed, &err), err);
    assert_openssl_verifies(dk, a.user_id, "ed25519:ALICEDEV", ed);

    /* A tampered key fails. */
    json_object_set_new(keys, "curve25519:ALICEDEV", json_string(mr_olm_account_ed25519(a.account)));
    assert_refused(mr_olm_verify_json(dk, a.user_id, "ed25519:ALICEDEV", ed, &err), MR_EAUTH, err,
                   "does not verify");
    json_decref(dk);

    json_t *none = NULL;
    assert_refused(mr_olm_account_device_keys(a.account, "alice", a.device_id, &none, &err), MR_EINVAL, err,
                   "user ID");
    assert_refused(mr_olm_account_device_keys(a.account, a.user_id, "", &none, &err), MR_EINVAL, err, "device ID");
    assert_null(none);
    mr_olm_account_free(a.account);
}

/* The upload body: signed_curve25519 one-time keys and a fallback key marked "fallback": true,
 * each signed; publishing empties both lists. */
static void test_keys_upload_body(void **state)
{
    (void)state;
    test_device a;
    test_device_new(&a, "@alice:example.org", "ALICEDEV");
    const char *ed = mr_olm_account_ed25519(a.account);
    mr_err err = {0};
    assert_ok(mr_olm_account_generate_one_time_keys(a.account, 5, &err), err);
    assert_ok(mr_olm_account_generate_fallback_key(a.account, &err), err);
    json_t *body = NULL;
    assert_ok(mr_olm_account_keys_upload_body(a.account, a.user_id, a.device_id, true, &body, &err), err);
    assert_non_null(json_object_get(body, "device_keys"));

    json_t *otks = json_object_get(body, "one_time_keys");
    assert_int_equal(json_object_size(otks), 5);
    json_t *plain = NULL;
    assert_ok(mr_olm_account_one_time_keys(a.account, &plain, &err), err);
    const char *name;
    json_t *obj;
    json_object_foreach(otks, name, obj) {
        assert_int_equal(strncmp(name, "signed_curve25519:", 18), 0);
        assert_string_equal(json_string_value(json_object_get(obj, "key")),
                            json_string_value(json_object_get(plain, name + 18)));
        assert_null(json_object_get(obj, "fallback"));
        assert_ok(mr_olm_verify_json(obj, a.user_id, "ed25519:ALICEDEV", ed, &err), err);
        assert_openssl_verifies(obj, a.user_id, "ed25519:ALICEDEV", ed);
    }
    json_decref(plain);

    json_t *fallback = json_object_get(body, "fallback_keys");
    assert_int_equal(json_object_size(fallback), 1);
    json_object_foreach(fallback, name, obj) {
        assert_int_equal(strncmp(name, "signed_curve25519:", 18), 0);
        assert_true(json_is_true(json_object_get(obj, "fallback")));
        assert_ok(mr_olm_verify_json(obj, a.user_id, "ed25519:ALICEDEV", ed, &err), err);
        /* "fallback" is signed: dropping it breaks the signature. */
        json_t *stripped = json_deep_copy(obj);
        json_object_del(stripped, "fallback");
        assert_refused(mr_olm_verify_json(stripped, a.user_id, "ed25519:ALICEDEV", ed, &err), MR_EAUTH, err,
                       "does not verify");
        json_decref(stripped);
    }
    json_decref(body);

    mr_olm_account_mark_published(a.account);
    assert_ok(mr_olm_account_keys_upload_body(a.account, a.user_id, a.device_id, false, &body, &err), err);
    assert_int_equal(json_object_size(body), 0);
    json_decref(body);

    /* A new fallback key is unpublished again; forgetting the old one keeps the new. */
    assert_ok(mr_olm_account_generate_fallback_key(a.account, &err), err);
    mr_olm_account_forget_old_fallback_key(a.account);
    assert_ok(mr_olm_account_unpublished_fallback_key(a.account, &plain, &err), err);
    assert_int_equal(json_object_size(plain), 1);
    json_decref(plain);
    mr_olm_account_free(a.account);
}

static void test_one_time_key_limits(void **state)
{
    (void)state;
    test_device a;
    test_device_new(&a, "@alice:example.org", "ALICEDEV");
    mr_err err = {0};
    size_t max = mr_olm_account_max_one_time_keys(a.account);
    assert_true(max >= 50);
    assert_refused(mr_olm_account_generate_one_time_keys(a.account, 0, &err), MR_EINVAL, err, "between 1 and");
    assert_refused(mr_olm_account_generate_one_time_keys(a.account, max + 1, &err), MR_EINVAL, err, "between 1 and");
    assert_ok(mr_olm_account_generate_one_time_keys(a.account, max, &err), err);
    json_t *plain = NULL;
    assert_ok(mr_olm_account_one_time_keys(a.account, &plain, &err), err);
    assert_int_equal(json_object_size(plain), max);
    json_decref(plain);
    mr_olm_account_free(a.account);
}

/* A pickle comes back with the same identity keys and unpublished keys; a wrong key, a short key
 * and a damaged pickle are refused with a message naming what went wrong. */
static void test_pickle(void **state)
{
    (void)state;
    test_device a;
    test_device_new(&a, "@alice:example.org", "ALICEDEV");
    mr_err err = {0};
    assert_ok(mr_olm_account_generate_one_time_keys(a.account, 3, &err), err);
    char *pickle = NULL;
    assert_ok(mr_olm_account_pickle(a.account, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &pickle, &err), err);
    /* The pickle is encrypted: no key appears in it. */
    assert_null(strstr(pickle, mr_olm_account_ed25519(a.account)));

    mr_olm_account *back = NULL;
    assert_ok(mr_olm_account_unpickle(pickle, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &back, &err), err);
    assert_string_equal(mr_olm_account_ed25519(back), mr_olm_account_ed25519(a.account));
    assert_string_equal(mr_olm_account_curve25519(back), mr_olm_account_curve25519(a.account));
    json_t *k1 = NULL, *k2 = NULL;
    assert_ok(mr_olm_account_one_time_keys(a.account, &k1, &err), err);
    assert_ok(mr_olm_account_one_time_keys(back, &k2, &err), err);
    assert_true(json_equal(k1, k2));
    json_decref(k1);
    json_decref(k2);
    mr_olm_account_free(back);

    back = NULL;
    assert_refused(mr_olm_account_unpickle(pickle, TEST_OTHER_KEY, sizeof TEST_OTHER_KEY, &back, &err), MR_EAUTH, err,
                   "BAD_ACCOUNT_KEY (wrong pickle key");
    assert_null(back);
    assert_refused(mr_olm_account_unpickle(pickle, TEST_PICKLE_KEY, 8, &back, &err), MR_EINVAL, err,
                   "the pickle key has 8 bytes, at least 16");
    char *none = NULL;
    assert_refused(mr_olm_account_pickle(a.account, "short", 5, &none, &err), MR_EINVAL, err, "pickle key");
    assert_null(none);
    free(pickle);
    assert_ok(mr_olm_account_pickle(a.account, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &pickle, &err), err);
    pickle[strlen(pickle) / 2] = '!';
    assert_refused(mr_olm_account_unpickle(pickle, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &back, &err), MR_EINVAL,
                   err, "unpickling an Olm account: the pickle: character");
    free(pickle);
    assert_ok(mr_olm_account_pickle(a.account, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &pickle, &err), err);
    /* Cut to whole base64 groups, so that libolm itself finds the pickle short. */
    pickle[(strlen(pickle) - 10) & ~(size_t)3] = '\0';
    assert_int_not_equal(mr_olm_account_unpickle(pickle, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &back, &err), MR_OK);
    assert_non_null(strstr(err.msg, "unpickling an Olm account: libolm"));
    assert_refused(mr_olm_account_unpickle(NULL, TEST_PICKLE_KEY, sizeof TEST_PICKLE_KEY, &back, &err), MR_EINVAL,
                   err, "unpickling an Olm account: the pickle is missing");
    assert_null(back);
    free(pickle);
    mr_olm_account_free(a.account);
}

/* /keys/device_signing/upload: master and self-signing keys, the latter signed by the former;
 * /keys/signatures/upload: this device signed by the self-signing key. */
static void test_cross_signing(void **state)
{
    (void)state;
    test_device a;
    test_device_new(&a, "@alice:example.org", "ALICEDEV");
    mr_err err = {0};
    mr_olm_signing_key *master = NULL, *ssk = NULL;
    assert_ok(mr_olm_signing_key_new(&master, &err), err);
    assert_ok(mr_olm_signing_key_new(&ssk, &err), err);
    json_t *body = NULL;
    assert_ok(mr_olm_cross_signing_upload_body(master, ssk, a.user_id, &body, &err), err);

    const char *mpub = mr_olm_signing_key_public(master), *spub = mr_olm_signing_key_public(ssk);
    char mid[64], sid[64];
    snprintf(mid, sizeof mid, "ed25519:%s", mpub);
    snprintf(sid, sizeof sid, "ed25519:%s", spub);
    json_t *mk = json_object_get(body, "master_key"), *sk = json_object_get(body, "self_signing_key");
    assert_string_equal(json_string_value(json_object_get(mk, "user_id")), a.user_id);
    assert_string_equal(json_string_value(json_array_get(json_object_get(mk, "usage"), 0)), "master");
    assert_string_equal(json_string_value(json_object_get(json_object_get(mk, "keys"), mid)), mpub);
    assert_string_equal(json_string_value(json_array_get(json_object_get(sk, "usage"), 0)), "self_signing");
    assert_string_equal(json_string_value(json_object_get(json_object_get(sk, "keys"), sid)), spub);
    assert_ok(mr_olm_verify_json(sk, a.user_id, mid, mpub, &err), err);
    assert_openssl_verifies(sk, a.user_id, mid, mpub);
    json_decref(body);

    assert_ok(mr_olm_cross_signing_device_signature(ssk, a.account, a.user_id, a.device_id, &body, &err), err);
    json_t *dk = json_object_get(json_object_get(body, a.user_id), a.device_id);
    assert_non_null(dk);
    assert_ok(mr_olm_verify_json(dk, a.user_id, sid, spub, &err), err);
    assert_ok(mr_olm_verify_json(dk, a.user_id, "ed25519:ALICEDEV", mr_olm_account_ed25519(a.account), &err), err);
    assert_openssl_verifies(dk, a.user_id, sid, spub);
    json_decref(body);

    /* The seed brings the same key back; bad seeds and user IDs are refused. */
    unsigned char seed[32];
    mr_olm_signing_key_seed(ssk, seed);
    mr_olm_signing_key *again = NULL;
    assert_ok(mr_olm_signing_key_from_seed(seed, sizeof seed, &again, &err), err);
    assert_string_equal(mr_olm_signing_key_public(again), spub);
    mr_olm_signing_key_free(again);
    again = NULL;
    assert_refused(mr_olm_signing_key_from_seed(seed, 31, &again, &err), MR_EINVAL, err, "has 31 bytes, not 32");
    assert_null(again);
    assert_refused(mr_olm_cross_signing_upload_body(master, ssk, "alice", &body, &err), MR_EINVAL, err,
                   "needs a user ID");
    assert_null(body);
    mr_olm_signing_key_free(master);
    mr_olm_signing_key_free(ssk);
    mr_olm_account_free(a.account);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_keys),
        cmocka_unit_test(test_device_keys),
        cmocka_unit_test(test_keys_upload_body),
        cmocka_unit_test(test_one_time_key_limits),
        cmocka_unit_test(test_pickle),
        cmocka_unit_test(test_cross_signing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
