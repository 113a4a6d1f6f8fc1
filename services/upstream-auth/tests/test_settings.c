/* test_settings.c -- start-up validation of every variable of mindroom-upstream-auth, and the
 * email-to-Matrix template. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mindroom/ids.h"
#include "ua_fixtures.h"

#define TU "MINDROOM_TRUSTED_UPSTREAM_"

/* Loads e and expects MR_EINVAL with exactly msg. */
static void expect_refused(ua_tenv *e, const char *msg)
{
    ua_settings s;
    mr_err err = {0};
    assert_int_equal(ua_settings_load(ua_tenv_get, e, &s, &err), MR_EINVAL);
    assert_string_equal(err.msg, msg);
    ua_settings_free(&s);
}

static void expect_loaded(ua_tenv *e, ua_settings *s)
{
    mr_err err = {0};
    if (ua_settings_load(ua_tenv_get, e, s, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

static void strict_env(ua_tenv *e)
{
    ua_tenv_set(e, TU "AUTH_ENABLED", "true");
    ua_tenv_set(e, TU "USER_ID_HEADER", "X-MindRoom-User-Id");
    ua_tenv_set(e, TU "REQUIRE_JWT", "true");
    ua_tenv_set(e, TU "JWT_HEADER", "X-Trusted-Jwt");
    ua_tenv_set(e, TU "JWKS_URL", "https://gateway.example.com/.well-known/jwks.json");
    ua_tenv_set(e, TU "JWT_AUDIENCE", "mindroom-dashboard");
    ua_tenv_set(e, TU "JWT_ISSUER", "https://gateway.example.com");
}

static void test_defaults(void **state)
{
    (void)state;
    ua_tenv e = {0};
    ua_settings s;
    expect_loaded(&e, &s);
    assert_false(s.trusted);
    assert_false(s.require_jwt);
    assert_null(s.user_id_header);
    assert_string_equal(s.jwt_email_claim, "email");
    assert_int_equal(s.jwt_cache_entries, UA_JWT_CACHE_DEFAULT);
    assert_int_equal(s.jwt_leeway_s, 30);
    assert_null(s.api_key);
    assert_int_equal(s.n_providers, 0);
    ua_settings_free(&s);
}

static void test_full_strict_settings(void **state)
{
    (void)state;
    ua_tenv e = {0};
    strict_env(&e);
    ua_tenv_set(&e, TU "EMAIL_HEADER", "X-MindRoom-User-Email");
    ua_tenv_set(&e, TU "MATRIX_USER_ID_HEADER", "X-MindRoom-Matrix-User-Id");
    ua_tenv_set(&e, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "@{localpart}:example.org");
    ua_tenv_set(&e, TU "JWT_EMAIL_CLAIM", "mail");
    ua_tenv_set(&e, TU "JWT_USER_ID_CLAIM", "sub");
    ua_tenv_set(&e, TU "JWT_MATRIX_USER_ID_CLAIM", "matrix_user_id");
    ua_tenv_set(&e, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE", "0");
    ua_settings s;
    expect_loaded(&e, &s);
    assert_true(s.trusted);
    assert_true(s.require_jwt);
    assert_string_equal(s.email_header, "X-MindRoom-User-Email");
    assert_string_equal(s.matrix_user_id_header, "X-MindRoom-Matrix-User-Id");
    assert_string_equal(s.jwt_header, "X-Trusted-Jwt");
    assert_string_equal(s.jwks_url, "https://gateway.example.com/.well-known/jwks.json");
    assert_string_equal(s.jwt_email_claim, "mail");
    assert_string_equal(s.jwt_user_id_claim, "sub");
    assert_string_equal(s.jwt_matrix_user_id_claim, "matrix_user_id");
    assert_int_equal(s.jwt_cache_entries, 0);
    ua_settings_free(&s);
}

static void test_booleans(void **state)
{
    (void)state;
    ua_tenv e = {0};
    ua_tenv_set(&e, TU "AUTH_ENABLED", "maybe");
    expect_refused(&e, TU "AUTH_ENABLED: \"maybe\" is not a boolean (true or false)");
    ua_tenv_set(&e, TU "AUTH_ENABLED", "FALSE");
    ua_tenv_set(&e, TU "REQUIRE_JWT", "2");
    expect_refused(&e, TU "REQUIRE_JWT: \"2\" is not a boolean (true or false)");
    /* Empty counts as unset, as the chart renders "" for values left empty. */
    ua_tenv_set(&e, TU "REQUIRE_JWT", "");
    ua_settings s;
    expect_loaded(&e, &s);
    assert_false(s.trusted);
    ua_settings_free(&s);
}

static void test_user_id_header_required_when_enabled(void **state)
{
    (void)state;
    ua_tenv e = {0};
    ua_tenv_set(&e, TU "AUTH_ENABLED", "true");
    expect_refused(&e, TU "USER_ID_HEADER: required when " TU "AUTH_ENABLED is true");
    ua_tenv_set(&e, TU "USER_ID_HEADER", "X-MindRoom-User-Id");
    ua_settings s;
    expect_loaded(&e, &s);
    assert_true(s.trusted);
    assert_false(s.require_jwt);
    ua_settings_free(&s);
}

static void test_header_names(void **state)
{
    (void)state;
    static const char *const vars[] = {TU "USER_ID_HEADER", TU "EMAIL_HEADER", TU "MATRIX_USER_ID_HEADER",
                                       TU "JWT_HEADER"};
    for (size_t i = 0; i < 4; i++) {
        ua_tenv e = {0};
        ua_tenv_set(&e, vars[i], "X User");
        char msg[256];
        snprintf(msg, sizeof msg, "%s: \"X User\" is not a header name (character 2)", vars[i]);
        expect_refused(&e, msg);
        ua_tenv_set(&e, vars[i], "X-User:");
        snprintf(msg, sizeof msg, "%s: \"X-User:\" is not a header name (character 7)", vars[i]);
        expect_refused(&e, msg);
    }
}

static void test_template_placeholders(void **state)
{
    (void)state;
    ua_tenv e = {0};
    ua_tenv_set(&e, TU "EMAIL_HEADER", "X-Email");
    ua_tenv_set(&e, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "@{localpart}_{localpart}:example.org");
    expect_refused(&e, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE: must contain exactly one {localpart} placeholder, "
                          "found 2 in \"@{localpart}_{localpart}:example.org\"");
    ua_tenv_set(&e, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "@alice:example.org");
    expect_refused(&e, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE: must contain exactly one {localpart} placeholder, "
                          "found 0 in \"@alice:example.org\"");
    /* One placeholder, but nothing it makes is a user ID. */
    ua_tenv_set(&e, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "{localpart}@example.org");
    ua_settings s;
    mr_err err = {0};
    assert_int_equal(ua_settings_load(ua_tenv_get, &e, &s, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE: \"{localpart}@example.org\" gives no "
                                       "Matrix user ID for localpart \"x\""));
    ua_settings_free(&s);
}

static void test_template_needs_email_header_without_strict_mode(void **state)
{
    (void)state;
    ua_tenv e = {0};
    ua_tenv_set(&e, TU "AUTH_ENABLED", "true");
    ua_tenv_set(&e, TU "USER_ID_HEADER", "X-MindRoom-User-Id");
    ua_tenv_set(&e, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "@{localpart}:example.org");
    expect_refused(&e, TU "EMAIL_HEADER: required when " TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE is set without "
                          TU "REQUIRE_JWT: the Matrix localpart is derived from the trusted email header");
    /* Strict mode derives from the verified email claim: no header needed. */
    strict_env(&e);
    ua_settings s;
    expect_loaded(&e, &s);
    assert_null(s.email_header);
    assert_string_equal(s.email_template, "@{localpart}:example.org");
    ua_settings_free(&s);
}

static void test_strict_mode_requires_its_four_settings(void **state)
{
    (void)state;
    static const char *const vars[] = {TU "JWT_HEADER", TU "JWKS_URL", TU "JWT_AUDIENCE", TU "JWT_ISSUER"};
    for (size_t i = 0; i < 4; i++) {
        ua_tenv e = {0};
        strict_env(&e);
        ua_tenv_set(&e, vars[i], NULL);
        char msg[256];
        snprintf(msg, sizeof msg, "%s: required when " TU "REQUIRE_JWT is true", vars[i]);
        expect_refused(&e, msg);
    }
}

static void test_jwks_url(void **state)
{
    (void)state;
    ua_tenv e = {0};
    strict_env(&e);
    ua_tenv_set(&e, TU "JWKS_URL", "http://gateway.example.com/jwks.json");
    expect_refused(&e, TU "JWKS_URL: \"http://gateway.example.com/jwks.json\" must be https:// (http:// only to a "
                          "loopback host)");
    ua_tenv_set(&e, TU "JWKS_URL", "ftp://gateway.example.com/jwks.json");
    expect_refused(&e, TU "JWKS_URL: \"ftp://gateway.example.com/jwks.json\" is not an http(s) URL with a host");
    ua_tenv_set(&e, TU "JWKS_URL", "https://user:pw@gateway.example.com/jwks.json");
    expect_refused(&e, TU "JWKS_URL: must not carry a user name or password");
    ua_tenv_set(&e, TU "JWKS_URL", "http://127.0.0.1:8080/jwks.json");
    ua_settings s;
    expect_loaded(&e, &s);
    ua_settings_free(&s);
}

static void test_owner_and_cache(void **state)
{
    (void)state;
    ua_tenv e = {0};
    ua_tenv_set(&e, "MINDROOM_OWNER_USER_ID", "alice");
    ua_settings s;
    mr_err err = {0};
    assert_int_equal(ua_settings_load(ua_tenv_get, &e, &s, &err), MR_EINVAL);
    assert_true(strncmp(err.msg, "MINDROOM_OWNER_USER_ID: ", 24) == 0);
    ua_settings_free(&s);
    ua_tenv_set(&e, "MINDROOM_OWNER_USER_ID", "@alice:example.org");
    ua_tenv_set(&e, "MINDROOM_API_KEY", "k3y");
    ua_tenv_set(&e, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE", "-1");
    expect_refused(&e, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE: \"-1\" is not a whole number from 0 to 1000000");
    ua_tenv_set(&e, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE", "2000000");
    expect_refused(&e, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE: \"2000000\" is not a whole number from 0 to 1000000");
    ua_tenv_set(&e, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE", "16");
    ua_tenv_set(&e, TU "JWT_LEEWAY_SECONDS", "301");
    expect_refused(&e, TU "JWT_LEEWAY_SECONDS: \"301\" is not a whole number from 0 to 300");
    ua_tenv_set(&e, TU "JWT_LEEWAY_SECONDS", "5s");
    expect_refused(&e, TU "JWT_LEEWAY_SECONDS: \"5s\" is not a whole number from 0 to 300");
    ua_tenv_set(&e, TU "JWT_LEEWAY_SECONDS", "0");
    expect_loaded(&e, &s);
    assert_string_equal(s.owner_user_id, "@alice:example.org");
    assert_string_equal(s.api_key, "k3y");
    assert_int_equal(s.jwt_cache_entries, 16);
    assert_int_equal(s.jwt_leeway_s, 0);
    ua_settings_free(&s);
}

static void provider_env(ua_tenv *e)
{
    ua_tenv_set(e, "MINDROOM_OAUTH_PROVIDERS", " google_drive , github");
    ua_tenv_set(e, "MINDROOM_PUBLIC_URL", "https://mindroom.example.org/");
    ua_tenv_set(e, "MINDROOM_OAUTH_GOOGLE_DRIVE_AUTHORIZE_URL", "https://accounts.example.com/o/oauth2/auth");
    ua_tenv_set(e, "MINDROOM_OAUTH_GOOGLE_DRIVE_TOKEN_URL", "https://oauth2.example.com/token");
    ua_tenv_set(e, "MINDROOM_OAUTH_GOOGLE_DRIVE_CLIENT_ID", "gd-client");
    ua_tenv_set(e, "MINDROOM_OAUTH_GOOGLE_DRIVE_CLIENT_SECRET", "gd-secret");
    ua_tenv_set(e, "MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL", "https://github.example.com/login/oauth/authorize");
    ua_tenv_set(e, "MINDROOM_OAUTH_GITHUB_TOKEN_URL", "https://github.example.com/login/oauth/access_token");
    ua_tenv_set(e, "MINDROOM_OAUTH_GITHUB_CLIENT_ID", "gh-client");
    ua_tenv_set(e, "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET", "gh-secret");
    ua_tenv_set(e, "MINDROOM_OAUTH_GITHUB_REDIRECT_URL", "http://lan.example:8080/api/oauth/github/callback");
}

static void test_oauth_providers(void **state)
{
    (void)state;
    ua_tenv e = {0};
    provider_env(&e);
    ua_settings s;
    expect_loaded(&e, &s);
    assert_int_equal(s.n_providers, 2);
    const ua_provider *gd = ua_settings_provider(&s, "google_drive");
    assert_non_null(gd);
    assert_string_equal(gd->authorize_url, "https://accounts.example.com/o/oauth2/auth");
    assert_string_equal(gd->token_url, "https://oauth2.example.com/token");
    assert_string_equal(gd->client_id, "gd-client");
    assert_string_equal(gd->client_secret, "gd-secret");
    assert_string_equal(gd->redirect_url, "https://mindroom.example.org/api/oauth/google_drive/callback");
    assert_string_equal(ua_settings_provider(&s, "github")->redirect_url,
                        "http://lan.example:8080/api/oauth/github/callback");
    assert_null(ua_settings_provider(&s, "dropbox"));
    ua_settings_free(&s);
}

static void test_oauth_provider_refusals(void **state)
{
    (void)state;
    ua_tenv e = {0};
    provider_env(&e);
    ua_tenv_set(&e, "MINDROOM_OAUTH_PROVIDERS", "Google");
    expect_refused(&e, "MINDROOM_OAUTH_PROVIDERS: provider name \"Google\" may only hold a-z, 0-9 and _");
    ua_tenv_set(&e, "MINDROOM_OAUTH_PROVIDERS", "github,github");
    expect_refused(&e, "MINDROOM_OAUTH_PROVIDERS: \"github\" is listed twice");
    ua_tenv_set(&e, "MINDROOM_OAUTH_PROVIDERS", "github,,google_drive");
    expect_refused(&e, "MINDROOM_OAUTH_PROVIDERS: provider name must be 1 to 64 characters");
    ua_tenv_set(&e, "MINDROOM_OAUTH_PROVIDERS", "github");
    ua_tenv_set(&e, "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET", NULL);
    expect_refused(&e, "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET: required because MINDROOM_OAUTH_PROVIDERS lists \"github\"");
    ua_tenv_set(&e, "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET", "s");
    ua_tenv_set(&e, "MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL", NULL);
    expect_refused(&e, "MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL: required because MINDROOM_OAUTH_PROVIDERS lists \"github\"");
    ua_tenv_set(&e, "MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL", "https://github.example.com/authorize");
    /* The token endpoint receives the client secret: never over plain http to another host. */
    ua_tenv_set(&e, "MINDROOM_OAUTH_GITHUB_TOKEN_URL", "http://github.example.com/token");
    expect_refused(&e, "MINDROOM_OAUTH_GITHUB_TOKEN_URL: \"http://github.example.com/token\" must be https:// "
                       "(http:// only to a loopback host)");
    ua_tenv_set(&e, "MINDROOM_OAUTH_GITHUB_TOKEN_URL", "https://github.example.com/token");
    ua_tenv_set(&e, "MINDROOM_OAUTH_GITHUB_REDIRECT_URL", NULL);
    ua_tenv_set(&e, "MINDROOM_PUBLIC_URL", NULL);
    expect_refused(&e, "MINDROOM_PUBLIC_URL: required for the OAuth callback of \"github\" (or set "
                       "MINDROOM_OAUTH_GITHUB_REDIRECT_URL)");
    ua_tenv_set(&e, "MINDROOM_PUBLIC_URL", "mindroom.example.org");
    expect_refused(&e, "MINDROOM_PUBLIC_URL: \"mindroom.example.org\" is not an http(s) URL with a host");
}

static void derive_ok(const char *tmpl, const char *email, const char *want)
{
    char out[MR_ID_MAX + 1];
    mr_err err = {0};
    if (ua_email_to_matrix_id(tmpl, email, out, sizeof out, &err) != MR_OK)
        fail_msg("%s from %s: %s", tmpl, email, err.msg);
    assert_string_equal(out, want);
}

static void derive_refused(const char *email, const char *why)
{
    char out[MR_ID_MAX + 1];
    mr_err err = {0};
    assert_int_equal(ua_email_to_matrix_id("@{localpart}:example.org", email, out, sizeof out, &err), MR_EINVAL);
    if (!strstr(err.msg, why))
        fail_msg("\"%s\": got \"%s\", expected it to contain \"%s\"", email, err.msg, why);
}

static void test_email_to_matrix_id(void **state)
{
    (void)state;
    derive_ok("@{localpart}:example.org", "alice@example.com", "@alice:example.org");
    derive_ok("@mr_{localpart}:example.org", "bob.smith@corp.example", "@mr_bob.smith:example.org");
    derive_ok("@{localpart}:matrix.example.org:8448", "carol@example.com", "@carol:matrix.example.org:8448");
    derive_refused("alice", "the email has no single '@'");
    derive_refused("a@b@example.com", "the email has no single '@'");
    derive_refused("@example.com", "the email has an empty side around '@'");
    derive_refused("alice@", "the email has an empty side around '@'");
    /* Localparts that are not Matrix localparts. */
    derive_refused("al:ice@example.com", "the derived Matrix ID is not valid");
    derive_refused("al ice@example.com", "the derived Matrix ID is not valid");
    derive_refused("j\xc3\xb6rg@example.com", "the derived Matrix ID is not valid");
    char longer[300];
    memset(longer, 'a', 280);
    strcpy(longer + 280, "@example.com");
    derive_refused(longer, "the derived Matrix ID is longer than 255 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_strict_settings),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_user_id_header_required_when_enabled),
        cmocka_unit_test(test_header_names),
        cmocka_unit_test(test_template_placeholders),
        cmocka_unit_test(test_template_needs_email_header_without_strict_mode),
        cmocka_unit_test(test_strict_mode_requires_its_four_settings),
        cmocka_unit_test(test_jwks_url),
        cmocka_unit_test(test_owner_and_cache),
        cmocka_unit_test(test_oauth_providers),
        cmocka_unit_test(test_oauth_provider_refusals),
        cmocka_unit_test(test_email_to_matrix_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
