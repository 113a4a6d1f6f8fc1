/* olm_test.h -- what the libs/olm tests share: a pickle key, assertions that print mr_err, and
 * a device with an account and a published one-time key to start sessions with. */
#ifndef MR_OLM_TEST_H
#define MR_OLM_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mindroom/olm.h"

static const unsigned char TEST_PICKLE_KEY[32] = "pickle key of 32 bytes, no more";
static const unsigned char TEST_OTHER_KEY[32] = "another key of 32 bytes, wrong!";

/* Fails the test with err's message unless call returned MR_OK. */
#define assert_ok(call, err)                                                                  \
    do {                                                                                      \
        mr_code rc_ = (call);                                                                 \
        if (rc_ != MR_OK)                                                                     \
            fail_msg("%s failed (%s): %s", #call, mr_code_str(rc_), (err).msg);                \
    } while (0)

/* Asserts that call returned code and that the message contains `needle`. */
#define assert_refused(call, code, err, needle)                                               \
    do {                                                                                      \
        mr_code rc_ = (call);                                                                 \
        if (rc_ != (code) || !strstr((err).msg, (needle)))                                    \
            fail_msg("%s: expected %s with \"%s\", got %s: %s", #call, mr_code_str(code),     \
                     (needle), mr_code_str(rc_), (err).msg);                                  \
    } while (0)

/* A Matrix device: user, device ID and account. */
typedef struct test_device {
    const char *user_id;
    const char *device_id;
    mr_olm_account *account;
} test_device;

static inline void test_device_new(test_device *d, const char *user_id, const char *device_id)
{
    mr_err err = {0};
    d->user_id = user_id;
    d->device_id = device_id;
    assert_ok(mr_olm_account_new(&d->account, &err), err);
}

static inline mr_olm_device test_device_view(const test_device *d)
{
    return (mr_olm_device){d->user_id, d->device_id, mr_olm_account_curve25519(d->account),
                           mr_olm_account_ed25519(d->account)};
}

/* One signed one-time key of d, as /keys/claim returns it (the caller decrefs). */
static inline json_t *test_claim_key(test_device *d)
{
    mr_err err = {0};
    json_t *body = NULL;
    assert_ok(mr_olm_account_generate_one_time_keys(d->account, 1, &err), err);
    assert_ok(mr_olm_account_keys_upload_body(d->account, d->user_id, d->device_id, false, &body, &err), err);
    mr_olm_account_mark_published(d->account);
    json_t *otks = json_object_get(body, "one_time_keys");
    assert_int_equal(json_object_size(otks), 1);
    void *it = json_object_iter(otks);
    json_t *key = json_incref(json_object_iter_value(it));
    json_decref(body);
    return key;
}

/* An outbound session from `from` to `to` on one of to's one-time keys. */
static inline mr_olm_session *test_outbound(test_device *from, test_device *to)
{
    mr_err err = {0};
    json_t *claimed = test_claim_key(to);
    mr_olm_device view = test_device_view(to);
    mr_olm_session *s = NULL;
    assert_ok(mr_olm_session_new_outbound(from->account, &view, claimed, &s, &err), err);
    json_decref(claimed);
    return s;
}

/* Two devices with an Olm session each way, set up with the message "first". */
typedef struct pair {
    test_device alice, bob;
    mr_olm_session *a2b, *b2a;
} pair;

static inline void encrypt(mr_olm_session *s, const char *text, int *type, char **body)
{
    mr_err err = {0};
    assert_ok(mr_olm_session_encrypt(s, text, strlen(text), type, body, &err), err);
}

static inline void expect_plain(mr_olm_session *s, int type, const char *body, const char *text)
{
    mr_err err = {0};
    char *plain = NULL;
    size_t len = 0;
    assert_ok(mr_olm_session_decrypt(s, type, body, &plain, &len, &err), err);
    assert_int_equal(len, strlen(text));
    assert_string_equal(plain, text);
    mr_olm_free_secret(plain, len);
}

/* Alice claims one of Bob's keys, sends a pre-key message, Bob makes the inbound session. */
/* alice's and bob's devices. */
static inline void test_alice_and_bob(test_device *alice, test_device *bob)
{
    test_device_new(alice, "@alice:example.org", "ALICEDEV");
    test_device_new(bob, "@bob:example.org", "BOBDEV");
}

static inline void test_alice_and_bob_free(test_device *alice, test_device *bob)
{
    mr_olm_account_free(alice->account);
    mr_olm_account_free(bob->account);
}

/* alice's and bob's devices, and alice's first message to bob, text, on a new session (returned):
 * a pre-key message, in body (the caller frees). */
static inline mr_olm_session *test_first_message(test_device *alice, test_device *bob, const char *text, char **body)
{
    test_alice_and_bob(alice, bob);
    mr_olm_session *s = test_outbound(alice, bob);
    int type = -1;
    encrypt(s, text, &type, body);
    assert_int_equal(type, MR_OLM_MSG_PRE_KEY);
    return s;
}

static inline void pair_up(pair *p)
{
    char *body = NULL;
    p->a2b = test_first_message(&p->alice, &p->bob, "first", &body);
    mr_err err = {0};
    char *plain = NULL;
    size_t len = 0;
    assert_ok(mr_olm_session_new_inbound(p->bob.account, mr_olm_account_curve25519(p->alice.account), body, &p->b2a,
                                         &plain, &len, &err),
              err);
    assert_string_equal(plain, "first");
    mr_olm_free_secret(plain, len);
    free(body);
}

static inline void pair_free(pair *p)
{
    mr_olm_session_free(p->a2b);
    mr_olm_session_free(p->b2a);
    test_alice_and_bob_free(&p->alice, &p->bob);
}

#endif
