/* test_payload.c -- the plaintext of m.olm.v1.curve25519-aes-sha2 events: built as the spec's
 * OlmPlaintext, accepted when it matches, refused with the reason when it is forged: another
 * sender, another recipient, another recipient key, a forged sender key, bad sender_device_keys. */
#include "olm_test.h"

#include <stdlib.h>

typedef struct parties {
    test_device alice, bob;
    mr_olm_payload_parties build;
    mr_olm_payload_expect want;
} parties;

static void parties_new(parties *p)
{
    test_device_new(&p->alice, "@alice:example.org", "ALICEDEV");
    test_device_new(&p->bob, "@bob:example.org", "BOBDEV");
    p->build = (mr_olm_payload_parties){p->alice.user_id, mr_olm_account_ed25519(p->alice.account), p->bob.user_id,
                                        mr_olm_account_ed25519(p->bob.account)};
    p->want = (mr_olm_payload_expect){p->alice.user_id, mr_olm_account_curve25519(p->alice.account),
                                      mr_olm_account_ed25519(p->alice.account), p->bob.user_id,
                                      mr_olm_account_ed25519(p->bob.account)};
}

static void parties_free(parties *p)
{
    mr_olm_account_free(p->alice.account);
    mr_olm_account_free(p->bob.account);
}

static char *build(const parties *p, const mr_olm_payload_parties *b)
{
    json_t *content = json_pack("{ss ss}", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "room_id", "!r:example.org");
    char *text = NULL;
    mr_err err = {0};
    assert_ok(mr_olm_payload_build(b ? b : &p->build, "m.room_key", content, &text, &err), err);
    json_decref(content);
    return text;
}

/* Checks text (a JSON object edited by edit when given) against want. */
static mr_code check(const char *text, void (*edit)(json_t *, const parties *), const parties *p,
                     const mr_olm_payload_expect *want, mr_err *err)
{
    json_t *obj = json_loads(text, 0, NULL);
    assert_non_null(obj);
    if (edit)
        edit(obj, p);
    char *edited = json_dumps(obj, JSON_COMPACT);
    json_t *ev = NULL;
    mr_code rc = mr_olm_payload_check(edited, strlen(edited), want, &ev, err);
    if (rc == MR_OK)
        assert_non_null(ev);
    else
        assert_null(ev);
    json_decref(ev);
    free(edited);
    json_decref(obj);
    return rc;
}

static void test_build_and_check(void **state)
{
    (void)state;
    parties p;
    parties_new(&p);
    char *text = build(&p, NULL);
    /* Canonical: sorted keys, no spaces. */
    assert_int_equal(strncmp(text, "{\"content\":{\"algorithm\":", 24), 0);
    assert_null(strchr(text, ' '));
    mr_err err = {0};
    json_t *ev = NULL;
    assert_ok(mr_olm_payload_check(text, strlen(text), &p.want, &ev, &err), err);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "m.room_key");
    assert_string_equal(json_string_value(json_object_get(ev, "sender")), "@alice:example.org");
    assert_string_equal(json_string_value(json_object_get(ev, "recipient")), "@bob:example.org");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "keys"), "ed25519")),
                        mr_olm_account_ed25519(p.alice.account));
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "recipient_keys"), "ed25519")),
                        mr_olm_account_ed25519(p.bob.account));
    json_decref(ev);

    /* Without the sender's key known yet, the payload passes and its keys.ed25519 is returned. */
    mr_olm_payload_expect unknown = p.want;
    unknown.sender_ed25519 = NULL;
    assert_ok(check(text, NULL, &p, &unknown, &err), err);
    free(text);
    parties_free(&p);
}

static void forge_sender_key(json_t *obj, const parties *p)
{
    /* Bob's Ed25519 key claimed as the sender's. */
    json_object_set_new(json_object_get(obj, "keys"), "ed25519", json_string(mr_olm_account_ed25519(p->bob.account)));
}

static void other_recipient(json_t *obj, const parties *p)
{
    (void)p;
    json_object_set_new(obj, "recipient", json_string("@carol:example.org"));
}

static void other_recipient_key(json_t *obj, const parties *p)
{
    json_object_set_new(json_object_get(obj, "recipient_keys"), "ed25519",
                        json_string(mr_olm_account_ed25519(p->alice.account)));
}

static void other_sender(json_t *obj, const parties *p)
{
    (void)p;
    json_object_set_new(obj, "sender", json_string("@mallory:example.org"));
}

static void drop_keys(json_t *obj, const parties *p)
{
    (void)p;
    json_object_del(obj, "keys");
}

static void content_not_object(json_t *obj, const parties *p)
{
    (void)p;
    json_object_set_new(obj, "content", json_string("x"));
}

static void test_forgeries(void **state)
{
    (void)state;
    parties p;
    parties_new(&p);
    char *text = build(&p, NULL);
    mr_err err = {0};
    assert_refused(check(text, forge_sender_key, &p, &p.want, &err), MR_EPERM, err, "forged sender key");
    assert_refused(check(text, other_recipient, &p, &p.want, &err), MR_EPERM, err,
                   "addressed to @carol:example.org, not to us (@bob:example.org)");
    assert_refused(check(text, other_recipient_key, &p, &p.want, &err), MR_EPERM, err,
                   "recipient_keys.ed25519 is");
    assert_refused(check(text, other_sender, &p, &p.want, &err), MR_EPERM, err,
                   "claims sender @mallory:example.org, but the to-device event came from @alice:example.org");
    assert_refused(check(text, drop_keys, &p, &p.want, &err), MR_EINVAL, err, "\"keys.ed25519\" is missing");
    assert_refused(check(text, content_not_object, &p, &p.want, &err), MR_EINVAL, err,
                   "\"content\" is missing or not an object");

    /* The event came from someone else than the payload says. */
    mr_olm_payload_expect from_mallory = p.want;
    from_mallory.sender = "@mallory:example.org";
    assert_refused(check(text, NULL, &p, &from_mallory, &err), MR_EPERM, err, "claims sender @alice:example.org");

    /* Not JSON, not an object, duplicate keys. */
    json_t *ev = NULL;
    assert_refused(mr_olm_payload_check("{\"type\":", 8, &p.want, &ev, &err), MR_EINVAL, err, "not a JSON object");
    assert_refused(mr_olm_payload_check("[1]", 3, &p.want, &ev, &err), MR_EINVAL, err, "not a JSON object");
    const char dup[] = "{\"sender\":\"@alice:example.org\",\"sender\":\"@bob:example.org\"}";
    assert_refused(mr_olm_payload_check(dup, sizeof dup - 1, &p.want, &ev, &err), MR_EINVAL, err, "duplicate");
    assert_null(ev);
    free(text);
    parties_free(&p);
}

/* sender_device_keys (spec v1.15): must be the sender's own signed device keys, for the
 * Curve25519 key the message came from and the Ed25519 key of the payload. */
static json_t *alice_device_keys(const parties *p)
{
    json_t *dk = NULL;
    mr_err err = {0};
    assert_ok(mr_olm_account_device_keys(p->alice.account, p->alice.user_id, p->alice.device_id, &dk, &err), err);
    return dk;
}

static void with_device_keys(json_t *obj, const parties *p)
{
    json_object_set_new(obj, "sender_device_keys", alice_device_keys(p));
}

static void with_device_keys_of_bob(json_t *obj, const parties *p)
{
    json_t *dk = NULL;
    mr_err err = {0};
    assert_ok(mr_olm_account_device_keys(p->bob.account, p->bob.user_id, p->bob.device_id, &dk, &err), err);
    json_object_set_new(obj, "sender_device_keys", dk);
}

static void with_unsigned_device_keys(json_t *obj, const parties *p)
{
    json_t *dk = alice_device_keys(p);
    json_object_set_new(json_object_get(dk, "keys"), "curve25519:ALICEDEV",
                        json_string(mr_olm_account_curve25519(p->bob.account)));
    json_object_set_new(obj, "sender_device_keys", dk);
}

static void with_resigned_device_keys(json_t *obj, const parties *p)
{
    /* A valid signature, but over a Curve25519 key that is not the one the message came from. */
    json_t *dk = alice_device_keys(p);
    json_object_set_new(json_object_get(dk, "keys"), "curve25519:ALICEDEV",
                        json_string(mr_olm_account_curve25519(p->bob.account)));
    json_object_del(dk, "signatures");
    mr_err err = {0};
    assert_ok(mr_olm_account_sign_json(p->alice.account, dk, p->alice.user_id, p->alice.device_id, &err), err);
    json_object_set_new(obj, "sender_device_keys", dk);
}

static void test_sender_device_keys(void **state)
{
    (void)state;
    parties p;
    parties_new(&p);
    char *text = build(&p, NULL);
    mr_err err = {0};
    assert_ok(check(text, with_device_keys, &p, &p.want, &err), err);
    assert_refused(check(text, with_device_keys_of_bob, &p, &p.want, &err), MR_EPERM, err,
                   "sender_device_keys belong to @bob:example.org");
    assert_refused(check(text, with_resigned_device_keys, &p, &p.want, &err), MR_EPERM, err,
                   "but the message came from");
    /* Tampered after signing: found by the signature once the keys themselves match. */
    mr_olm_payload_expect lax = p.want;
    lax.sender_curve25519 = NULL;
    assert_refused(check(text, with_unsigned_device_keys, &p, &lax, &err), MR_EPERM, err,
                   "sender_device_keys: the signature by @alice:example.org ed25519:ALICEDEV does not verify");
    free(text);
    parties_free(&p);
}

static void test_build_refusals(void **state)
{
    (void)state;
    parties p;
    parties_new(&p);
    mr_err err = {0};
    char *text = NULL;
    json_t *content = json_object();
    mr_olm_payload_parties b = p.build;
    b.recipient = "bob";
    assert_refused(mr_olm_payload_build(&b, "m.dummy", content, &text, &err), MR_EINVAL, err, "user IDs");
    b = p.build;
    b.sender_ed25519 = "AAAA";
    assert_refused(mr_olm_payload_build(&b, "m.dummy", content, &text, &err), MR_EINVAL, err,
                   "the sender's ed25519 key");
    assert_refused(mr_olm_payload_build(&p.build, "", content, &text, &err), MR_EINVAL, err, "event type");
    json_t *arr = json_array();
    assert_refused(mr_olm_payload_build(&p.build, "m.dummy", arr, &text, &err), MR_EINVAL, err, "object as content");
    assert_null(text);
    mr_olm_payload_expect want = p.want;
    want.recipient_ed25519 = NULL;
    json_t *ev = NULL;
    assert_refused(mr_olm_payload_check("{}", 2, &want, &ev, &err), MR_EINVAL, err, "our ed25519 key");
    json_decref(arr);
    json_decref(content);
    parties_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_check),
        cmocka_unit_test(test_forgeries),
        cmocka_unit_test(test_sender_device_keys),
        cmocka_unit_test(test_build_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
