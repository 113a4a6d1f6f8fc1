/* test_crypto.c -- libs/oauth's primitives against published vectors: SHA-256 (FIPS 180-2),
 * the PKCE S256 challenge (RFC 7636 appendix B), random tokens, secret comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "mindroom/oauth.h"

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[MR_OAUTH_SHA256_HEX_LEN + 1];
    mr_oauth_sha256_hex("abc", hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    mr_oauth_sha256_hex("", hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    unsigned char raw[MR_OAUTH_SHA256_LEN];
    mr_oauth_sha256("abc", 3, raw);
    assert_int_equal(raw[0], 0xba);
    assert_int_equal(raw[31], 0xad);
}

static void test_pkce_challenge_rfc7636(void **state)
{
    (void)state;
    char challenge[MR_OAUTH_TOKEN_LEN + 1];
    mr_oauth_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge);
    assert_string_equal(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void test_random_tokens_are_base64url_and_distinct(void **state)
{
    (void)state;
    char a[MR_OAUTH_TOKEN_LEN + 1], b[MR_OAUTH_TOKEN_LEN + 1];
    mr_err err = {0};
    assert_int_equal(mr_oauth_random_token(a, &err), MR_OK);
    assert_int_equal(mr_oauth_random_token(b, &err), MR_OK);
    assert_int_equal(strlen(a), MR_OAUTH_TOKEN_LEN);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     MR_OAUTH_TOKEN_LEN);
    assert_string_not_equal(a, b);
}

static void test_secret_equal(void **state)
{
    (void)state;
    assert_true(mr_oauth_secret_equal("s3cret-key", "s3cret-key"));
    assert_true(mr_oauth_secret_equal("", ""));
    assert_false(mr_oauth_secret_equal("s3cret-key", "s3cret-kez"));
    assert_false(mr_oauth_secret_equal("s3cret-key", "s3cret-key2"));
    assert_false(mr_oauth_secret_equal("s3cret-key", "s3cret"));
    assert_false(mr_oauth_secret_equal("s3cret-key", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_pkce_challenge_rfc7636),
        cmocka_unit_test(test_random_tokens_are_base64url_and_distinct),
        cmocka_unit_test(test_secret_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
