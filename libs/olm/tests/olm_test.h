/* olm_test.h -- what the libs/olm tests share: a pickle key, assertions that print mr_err, and
 * a device with an account and a published one-time key to start sessions with. */
#ifndef MR_OLM_TEST_H
#define MR_OLM_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

#endif
