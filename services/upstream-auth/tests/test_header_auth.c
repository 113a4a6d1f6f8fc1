/* test_header_auth.c -- header-only trusted upstream auth, the standalone API key and the single
 * owner: every 401 sentence, duplicated, oversize and forged headers, template derivation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ua_fixtures.h"

typedef ua_tauth fixture;

static int setup_headers(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    ua_tenv_trusted_headers(&f->env);
    /* Not used while trusted upstream auth is on. */
    ua_tenv_set(&f->env, "MINDROOM_API_KEY", "the-api-key");
    ua_tauth_open(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    ua_tauth_close(*state);
    free(*state);
    return 0;
}

static void test_missing_user_id_header(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    ua_tauth_expect_401(f, &h, "Missing trusted upstream identity header: " UA_H_USER);
    ua_thdrs_add(&h, UA_H_USER, "");
    ua_tauth_expect_401(f, &h, "Missing trusted upstream identity header: " UA_H_USER);
    /* The API key does not stand in for the trusted identity. */
    ua_thdrs k = {0};
    ua_thdrs_add(&k, "Authorization", "Bearer the-api-key");
    ua_tauth_expect_401(f, &k, "Missing trusted upstream identity header: " UA_H_USER);
}

static void test_forged_headers_are_not_identity(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    /* Names a client might try: the forward-auth answer headers and common proxy headers. */
    ua_thdrs_add(&h, "X-MindRoom-Auth-User-Id", "mallory");
    ua_thdrs_add(&h, "X-MindRoom-Auth-Matrix-User-Id", "@alice:example.org");
    ua_thdrs_add(&h, "X-Remote-User", "alice");
    ua_thdrs_add(&h, "X-Forwarded-User", "alice");
    ua_thdrs_add(&h, "X-Forwarded-Email", "alice@example.com");
    ua_tauth_expect_401(f, &h, "Missing trusted upstream identity header: " UA_H_USER);
}

static void test_header_names_are_case_insensitive(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    ua_thdrs_add(&h, "x-mindroom-user-id", "u-123");
    ua_thdrs_add(&h, "X-MINDROOM-MATRIX-USER-ID", "@alice:example.org");
    ua_tauth_expect_identity(f, &h, "u-123", NULL, "@alice:example.org", UA_METHOD_TRUSTED_HEADERS);
}

static void test_duplicated_headers(void **state)
{
    fixture *f = *state;
    static const char *const names[] = {UA_H_USER, UA_H_EMAIL, UA_H_MXID};
    static const char *const values[] = {"u-1", "alice@example.com", "@alice:example.org"};
    for (size_t dup = 0; dup < 3; dup++) {
        ua_thdrs h = {0};
        for (size_t i = 0; i < 3; i++)
            ua_thdrs_add(&h, names[i], values[i]);
        ua_thdrs_add(&h, names[dup], dup == 0 ? "u-2" : dup == 1 ? "mallory@example.com" : "@mallory:example.org");
        char msg[128];
        snprintf(msg, sizeof msg, "Duplicate trusted upstream header: %s", names[dup]);
        ua_tauth_expect_401(f, &h, msg);
    }
    /* The same value twice is still two headers. */
    ua_thdrs h = {0};
    ua_thdrs_add(&h, UA_H_USER, "u-1");
    ua_thdrs_add(&h, "x-mindroom-user-id", "u-1");
    ua_tauth_expect_401(f, &h, "Duplicate trusted upstream header: " UA_H_USER);
}

static void test_oversize_and_control_characters(void **state)
{
    fixture *f = *state;
    char big[UA_HEADER_VALUE_MAX + 2];
    memset(big, 'u', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ua_thdrs h = {0};
    ua_thdrs_add(&h, UA_H_USER, big);
    ua_tauth_expect_401(f, &h, "Trusted upstream header too long: " UA_H_USER);
    big[UA_HEADER_VALUE_MAX] = '\0';
    h = (ua_thdrs){0};
    ua_thdrs_add(&h, UA_H_USER, big);
    ua_thdrs_add(&h, UA_H_EMAIL, "alice@example.com");
    ua_identity id;
    mr_err err = {0};
    assert_int_equal(ua_authenticate(f->auth, ua_thdrs_get, &h, NULL, &id, &err), MR_OK);
    assert_int_equal(strlen(id.user_id), UA_HEADER_VALUE_MAX);
    ua_identity_clear(&id);

    char email[UA_HEADER_VALUE_MAX + 20];
    memset(email, 'a', UA_HEADER_VALUE_MAX);
    strcpy(email + UA_HEADER_VALUE_MAX, "@example.com");
    h = (ua_thdrs){0};
    ua_thdrs_add(&h, UA_H_USER, "u-1");
    ua_thdrs_add(&h, UA_H_EMAIL, email);
    ua_tauth_expect_401(f, &h, "Trusted upstream header too long: " UA_H_EMAIL);

    h = (ua_thdrs){0};
    ua_thdrs_add(&h, UA_H_USER, "u-1\tX-Evil: 1");
    ua_tauth_expect_401(f, &h, "Invalid characters in trusted upstream header: " UA_H_USER);
    h = (ua_thdrs){0};
    ua_thdrs_add(&h, UA_H_USER, "u-1");
    ua_thdrs_add(&h, UA_H_MXID, "@alice:example.org\x7f");
    ua_tauth_expect_401(f, &h, "Invalid characters in trusted upstream header: " UA_H_MXID);
    /* Bytes that are not UTF-8 (a stray Latin-1 byte, an overlong '/', a lone continuation, a
     * surrogate) cannot go into the JSON reply: refused, never a 500. Valid UTF-8 passes. */
    static const char *const not_utf8[] = {"al\xffice", "\xc0\xaf", "a\x80", "\xed\xa0\x80", "\xe2\x82"};
    for (size_t i = 0; i < sizeof not_utf8 / sizeof not_utf8[0]; i++) {
        h = (ua_thdrs){0};
        ua_thdrs_add(&h, UA_H_USER, not_utf8[i]);
        ua_tauth_expect_401(f, &h, "Invalid characters in trusted upstream header: " UA_H_USER);
        h = (ua_thdrs){0};
        ua_thdrs_add(&h, UA_H_USER, "u-1");
        ua_thdrs_add(&h, UA_H_EMAIL, not_utf8[i]);
        ua_tauth_expect_401(f, &h, "Invalid characters in trusted upstream header: " UA_H_EMAIL);
    }
    h = (ua_thdrs){0};
    ua_thdrs_add(&h, UA_H_USER, "j\xc3\xb6rg-\xe2\x82\xac");
    ua_thdrs_add(&h, UA_H_EMAIL, "alice@example.com");
    mr_err err2 = {0};
    assert_int_equal(ua_authenticate(f->auth, ua_thdrs_get, &h, NULL, &id, &err2), MR_OK);
    assert_string_equal(id.user_id, "j\xc3\xb6rg-\xe2\x82\xac");
    ua_identity_clear(&id);
}

static void test_matrix_id_from_header(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    ua_thdrs_add(&h, UA_H_USER, "u-1");
    ua_thdrs_add(&h, UA_H_EMAIL, "alice@example.com");
    /* The Matrix header is preferred over the template when the gateway supplies it. */
    ua_thdrs_add(&h, UA_H_MXID, "@alice.smith:example.org");
    ua_tauth_expect_identity(f, &h, "u-1", "alice@example.com", "@alice.smith:example.org", UA_METHOD_TRUSTED_HEADERS);
    h.values[2] = "alice";
    ua_tauth_expect_401(f, &h, "Invalid Matrix user ID in trusted upstream header: " UA_H_MXID);
}

static void test_matrix_id_from_template(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    ua_thdrs_add(&h, UA_H_USER, "u-1");
    ua_thdrs_add(&h, UA_H_EMAIL, "alice@example.com");
    ua_tauth_expect_identity(f, &h, "u-1", "alice@example.com", "@alice:example.org", UA_METHOD_TRUSTED_HEADERS);
    h.values[1] = "al:ice@example.com";
    ua_identity id;
    mr_err err = {0};
    assert_int_equal(ua_authenticate(f->auth, ua_thdrs_get, &h, NULL, &id, &err), MR_EAUTH);
    assert_true(strncmp(err.msg, "Trusted upstream email does not map to a Matrix user ID: the derived Matrix ID "
                                 "is not valid", 90) == 0);
    h.values[1] = "a@b@example.com";
    ua_tauth_expect_401(f, &h, "Trusted upstream email does not map to a Matrix user ID: the email has no single '@'");
    h.values[1] = "@example.com";
    ua_tauth_expect_401(f, &h, "Trusted upstream email does not map to a Matrix user ID: the email has an empty side around '@'");
    /* The template needs the email the gateway promised. */
    ua_thdrs only_user = {0};
    ua_thdrs_add(&only_user, UA_H_USER, "u-1");
    ua_tauth_expect_401(f, &only_user, "Missing trusted upstream identity header: " UA_H_EMAIL);
}

static void test_no_matrix_identity_without_template(void **state)
{
    fixture *f = *state;
    ua_tenv_set(&f->env, UA_TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", NULL);
    ua_tauth_open(f, NULL);
    ua_thdrs h = {0};
    ua_thdrs_add(&h, UA_H_USER, "u-1");
    ua_thdrs_add(&h, UA_H_EMAIL, "alice@example.com");
    ua_tauth_expect_identity(f, &h, "u-1", "alice@example.com", NULL, UA_METHOD_TRUSTED_HEADERS);
    ua_thdrs bare = {0};
    ua_thdrs_add(&bare, UA_H_USER, "u-1");
    ua_tauth_expect_identity(f, &bare, "u-1", NULL, NULL, UA_METHOD_TRUSTED_HEADERS);
}

/* ---- trusted upstream off --------------------------------------------------------------- */

static int setup_api_key(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    ua_tenv_set(&f->env, "MINDROOM_API_KEY", "s3cret-api-key");
    ua_tenv_set(&f->env, "MINDROOM_OWNER_USER_ID", "@owner:example.org");
    /* Trusted headers mean nothing while the mode is off. */
    ua_tenv_set(&f->env, UA_TU "USER_ID_HEADER", UA_H_USER);
    ua_tauth_open(f, NULL);
    *state = f;
    return 0;
}

static void test_api_key_missing(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    ua_tauth_expect_401(f, &h, "Missing or invalid credentials");
    ua_thdrs_add(&h, UA_H_USER, "alice");
    ua_tauth_expect_401(f, &h, "Missing or invalid credentials");
    ua_thdrs basic = {0};
    ua_thdrs_add(&basic, "Authorization", "Basic czNjcmV0LWFwaS1rZXk6");
    ua_tauth_expect_401(f, &basic, "Missing or invalid credentials");
    ua_thdrs empty = {0};
    ua_thdrs_add(&empty, "Authorization", "Bearer ");
    ua_tauth_expect_401(f, &empty, "Missing or invalid credentials");
    ua_thdrs dup = {0};
    ua_thdrs_add(&dup, "Authorization", "Bearer s3cret-api-key");
    ua_thdrs_add(&dup, "Authorization", "Bearer other");
    ua_tauth_expect_401(f, &dup, "Missing or invalid credentials");
}

static void test_api_key_wrong(void **state)
{
    fixture *f = *state;
    static const char *const wrong[] = {"Bearer s3cret-api-ke", "Bearer s3cret-api-key2", "Bearer S3CRET-API-KEY",
                                        "Bearer x"};
    for (size_t i = 0; i < 4; i++) {
        ua_thdrs h = {0};
        ua_thdrs_add(&h, "Authorization", wrong[i]);
        ua_tauth_expect_401(f, &h, "Invalid API key");
    }
    ua_thdrs c = {0};
    ua_thdrs_add(&c, "Cookie", "theme=dark; mindroom_api_key=nope");
    ua_tauth_expect_401(f, &c, "Invalid API key");
}

static void test_api_key_accepted(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    ua_thdrs_add(&h, "Authorization", "bearer s3cret-api-key");
    ua_tauth_expect_identity(f, &h, "@owner:example.org", NULL, "@owner:example.org", UA_METHOD_API_KEY);
    ua_thdrs c = {0};
    ua_thdrs_add(&c, "Cookie", "theme=dark; mindroom_api_key=s3cret-api-key; lang=en");
    ua_tauth_expect_identity(f, &c, "@owner:example.org", NULL, "@owner:example.org", UA_METHOD_API_KEY);
    assert_string_equal(ua_method_name(UA_METHOD_API_KEY), "api_key");
}

static int setup_open(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    ua_tauth_open(f, NULL);
    *state = f;
    return 0;
}

static void test_open_standalone(void **state)
{
    fixture *f = *state;
    ua_thdrs h = {0};
    ua_tauth_expect_identity(f, &h, "standalone", NULL, NULL, UA_METHOD_OPEN);
    ua_tenv_set(&f->env, "MINDROOM_OWNER_USER_ID", "@owner:example.org");
    ua_tauth_open(f, NULL);
    /* A header naming someone else changes nothing: the single owner is every request. */
    ua_thdrs_add(&h, UA_H_MXID, "@mallory:example.org");
    ua_tauth_expect_identity(f, &h, "@owner:example.org", NULL, "@owner:example.org", UA_METHOD_OPEN);
    assert_string_equal(ua_method_name(UA_METHOD_OPEN), "standalone");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup_headers, teardown)
#define API_KEY(name) cmocka_unit_test_setup_teardown(name, setup_api_key, teardown)
#define OPEN(name) cmocka_unit_test_setup_teardown(name, setup_open, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_missing_user_id_header),
        T(test_forged_headers_are_not_identity),
        T(test_header_names_are_case_insensitive),
        T(test_duplicated_headers),
        T(test_oversize_and_control_characters),
        T(test_matrix_id_from_header),
        T(test_matrix_id_from_template),
        T(test_no_matrix_identity_without_template),
        API_KEY(test_api_key_missing),
        API_KEY(test_api_key_wrong),
        API_KEY(test_api_key_accepted),
        OPEN(test_open_standalone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
