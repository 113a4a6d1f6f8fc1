/* test_signed_json.c -- signing JSON against the spec's cryptographic test vectors, verifying
 * signatures, and refusing tampered objects, missing and malformed signatures. */
#include "olm_test.h"

#include <stdlib.h>

#include "mindroom/b64.h"

/* The spec's test vector key: seed "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1". */
static mr_olm_signing_key *vector_key(void)
{
    static const char seed_b64[] = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    unsigned char seed[32];
    size_t n = 0;
    mr_err err = {0};
    assert_ok(mr_b64_decode(seed_b64, strlen(seed_b64), MR_B64_STD_TOO, seed, sizeof seed, &n, &err), err);
    assert_int_equal(n, 32);
    mr_olm_signing_key *k = NULL;
    assert_ok(mr_olm_signing_key_from_seed(seed, sizeof seed, &k, &err), err);
    return k;
}

static const char *signature_of(const json_t *obj, const char *entity, const mr_olm_signing_key *k)
{
    char key_id[MR_OLM_KEY_SIZE + 8];
    snprintf(key_id, sizeof key_id, "ed25519:%s", mr_olm_signing_key_public(k));
    return json_string_value(json_object_get(json_object_get(json_object_get(obj, "signatures"), entity), key_id));
}

/* "JSON Signing" test vectors of the spec's appendix (the signature does not cover the key ID,
 * so ours, filed under ed25519:<public key>, must be byte for byte the spec's ed25519:1). */
static void test_spec_vectors(void **state)
{
    (void)state;
    mr_olm_signing_key *k = vector_key();
    mr_err err = {0};
    json_t *empty = json_object();
    assert_ok(mr_olm_signing_key_sign_json(k, empty, "domain", &err), err);
    assert_string_equal(signature_of(empty, "domain", k),
                        "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ");
    json_t *two = json_pack("{sisssO}", "one", 1, "two", "Two", "unsigned", json_pack("{si}", "age_ts", 1));
    json_decref(json_object_get(two, "unsigned"));
    assert_ok(mr_olm_signing_key_sign_json(k, two, "domain", &err), err);
    assert_string_equal(signature_of(two, "domain", k),
                        "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw");
    json_decref(empty);
    json_decref(two);

    /* And the spec's signed object, as published, verifies under its own key ID. */
    json_t *published = json_loads("{\"one\":1,\"signatures\":{\"domain\":{\"ed25519:1\":\"KqmLSbO39/Bzb0QIYE82zqLwsA"
                                   "+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw\"}},\"two\":\"Two\"}",
                                   0, NULL);
    assert_ok(mr_olm_verify_json(published, "domain", "ed25519:1", mr_olm_signing_key_public(k), &err), err);
    json_decref(published);
    mr_olm_signing_key_free(k);
}

/* Signing adds to existing signatures and leaves `unsigned` alone; a change to any signed part
 * breaks verification, a change to `unsigned` or other signatures does not. */
static void test_tampering(void **state)
{
    (void)state;
    test_device dev;
    test_device_new(&dev, "@alice:example.org", "ALICEDEV");
    mr_err err = {0};
    json_t *obj = json_pack("{ss s{si} s{s{ss}}}", "key", "abc", "unsigned", "age", 5, "signatures", "@other:x",
                            "ed25519:Z", "kept");
    assert_ok(mr_olm_account_sign_json(dev.account, obj, dev.user_id, dev.device_id, &err), err);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(obj, "signatures"),
                                                                          "@other:x"),
                                                          "ed25519:Z")),
                        "kept");
    const char *ed = mr_olm_account_ed25519(dev.account);
    assert_ok(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), err);

    json_object_set_new(json_object_get(obj, "unsigned"), "age", json_integer(99));
    assert_ok(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), err);

    json_object_set_new(obj, "key", json_string("abd"));
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), MR_EAUTH, err,
                   "does not verify");
    json_object_set_new(obj, "key", json_string("abc"));
    json_object_set_new(obj, "extra", json_true());
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), MR_EAUTH, err,
                   "does not verify");
    json_object_del(obj, "extra");
    assert_ok(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), err);

    /* Another device's key does not verify this device's signature. */
    test_device other;
    test_device_new(&other, "@alice:example.org", "OTHERDEV");
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", mr_olm_account_ed25519(other.account),
                                      &err),
                   MR_EAUTH, err, "does not verify");
    json_decref(obj);
    mr_olm_account_free(dev.account);
    mr_olm_account_free(other.account);
}

static void test_refusals(void **state)
{
    (void)state;
    test_device dev;
    test_device_new(&dev, "@alice:example.org", "ALICEDEV");
    const char *ed = mr_olm_account_ed25519(dev.account);
    mr_err err = {0};
    json_t *obj = json_pack("{ss}", "key", "abc");
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), MR_EAUTH, err,
                   "no signature by @alice:example.org ed25519:ALICEDEV");
    assert_ok(mr_olm_account_sign_json(dev.account, obj, dev.user_id, dev.device_id, &err), err);
    assert_refused(mr_olm_verify_json(obj, "@bob:example.org", "ed25519:ALICEDEV", ed, &err), MR_EAUTH, err,
                   "no signature");

    json_t *mine = json_object_get(json_object_get(obj, "signatures"), dev.user_id);
    char sig[MR_OLM_SIGNATURE_SIZE];
    snprintf(sig, sizeof sig, "%s", json_string_value(json_object_get(mine, "ed25519:ALICEDEV")));
    /* Malformed base64: a URL-alphabet character, a cut signature, padding. */
    char bad[MR_OLM_SIGNATURE_SIZE + 2];
    snprintf(bad, sizeof bad, "%s", sig);
    bad[10] = '-';
    json_object_set_new(mine, "ed25519:ALICEDEV", json_string(bad));
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), MR_EINVAL, err,
                   "character 11 is not unpadded standard base64");
    json_object_set_new(mine, "ed25519:ALICEDEV", json_stringn(sig, 80));
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), MR_EINVAL, err,
                   "80 characters of base64, expected 86");
    snprintf(bad, sizeof bad, "%s==", sig);
    json_object_set_new(mine, "ed25519:ALICEDEV", json_string(bad));
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), MR_EINVAL, err,
                   "not unpadded standard base64");
    json_object_set_new(mine, "ed25519:ALICEDEV", json_string(sig));
    assert_ok(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", ed, &err), err);

    /* A malformed verification key and a non-object. */
    assert_refused(mr_olm_verify_json(obj, dev.user_id, "ed25519:ALICEDEV", "short", &err), MR_EINVAL, err,
                   "the Ed25519 key to verify with");
    assert_refused(mr_olm_verify_json(obj, NULL, "ed25519:ALICEDEV", ed, &err), MR_EINVAL, err,
                   "needs the signer's user ID and key ID");
    json_t *arr = json_array();
    assert_refused(mr_olm_verify_json(arr, dev.user_id, "ed25519:ALICEDEV", ed, &err), MR_EINVAL, err,
                   "must be an object");

    /* Signing refuses a non-object `signatures` and leaves the object as it was. */
    json_t *odd = json_pack("{ss ss}", "key", "abc", "signatures", "oops");
    char *before = json_dumps(odd, JSON_SORT_KEYS);
    assert_refused(mr_olm_account_sign_json(dev.account, odd, dev.user_id, dev.device_id, &err), MR_EINVAL, err,
                   "\"signatures\" is not an object");
    char *after = json_dumps(odd, JSON_SORT_KEYS);
    assert_string_equal(before, after);
    free(before);
    free(after);
    json_decref(odd);
    json_decref(arr);
    json_decref(obj);
    mr_olm_account_free(dev.account);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_vectors),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
