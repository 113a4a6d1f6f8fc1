/* test_jwt_auth.c -- strict JWT mode against a JWKS server on loopback with RSA and EC keys that
 * OpenSSL generates here: valid tokens, every invalid kind, every consistency rule between headers
 * and verified claims, key rotation, an unreachable JWKS, and the verified-token cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "jwks_server.h"
#include "ua_fixtures.h"

#define H_JWT "X-Trusted-Jwt"
#define ISS "https://gateway.example.com"
#define AUD "mindroom-dashboard"
#define ALICE_EMAIL "alice@example.com"
#define ALICE_MXID "@alice:example.org"
#define INVALID "Invalid trusted upstream JWT"

static tk_key g_rsa, g_ec, g_rsa2, g_evil;
static jwks_server *g_js;

typedef struct fixture {
    ua_tauth a;
    int64_t offset_ms;      /* added to the wall clock: moves time for the verifier and the cache */
} fixture;

static int64_t test_clock(void *ctx)
{
    const fixture *f = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + f->offset_ms;
}

static void serve_keys(const tk_key *a, const tk_key *b)
{
    char *ja = tk_jwk(a, "\"use\":\"sig\""), *jb = tk_jwk(b, NULL);
    const char *keys[] = {ja, jb};
    char *set = tk_jwks(keys, 2);
    js_set(g_js, 200, set);
    free(set);
    free(ja);
    free(jb);
}

static int group_setup(void **state)
{
    (void)state;
    tk_rsa(&g_rsa, "rsa-1", 2048);
    tk_ec(&g_ec, "ec-1", "P-256");
    tk_rsa(&g_rsa2, "rsa-2", 2048);
    tk_rsa(&g_evil, "rsa-1", 2048);   /* claims rsa-1's kid with other key material */
    g_js = js_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    js_free(g_js);
    tk_free(&g_rsa);
    tk_free(&g_ec);
    tk_free(&g_rsa2);
    tk_free(&g_evil);
    return 0;
}

static void reopen(fixture *f)
{
    const ua_auth_options o = {.clock = test_clock, .clock_ctx = f};
    ua_tauth_open(&f->a, &o);
}

/* Sets the variable name to value (NULL: unset) and reopens. */
static void reopen_with(fixture *f, const char *name, const char *value)
{
    ua_tenv_set(&f->a.env, name, value);
    reopen(f);
}

static int setup(void **state)
{
    serve_keys(&g_rsa, &g_ec);
    fixture *f = calloc(1, sizeof *f);
    ua_tenv_trusted_headers(&f->a.env);
    ua_tenv_set(&f->a.env, UA_TU "REQUIRE_JWT", "true");
    ua_tenv_set(&f->a.env, UA_TU "JWT_HEADER", H_JWT);
    ua_tenv_set(&f->a.env, UA_TU "JWKS_URL", js_url(g_js));
    ua_tenv_set(&f->a.env, UA_TU "JWT_AUDIENCE", AUD);
    reopen_with(f, UA_TU "JWT_ISSUER", ISS);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ua_tauth_close(&f->a);
    free(f);
    return 0;
}

/* Claims valid for ten minutes, with extra members (`"sub":"u-1"`) or none. */
static char *claims(const char *email, const char *extra)
{
    long long now = ua_now_s();
    return tk_printf("{\"iss\":\"%s\",\"aud\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"email\":\"%s\"%s%s}", ISS, AUD, now,
                     now + 600, email, extra ? "," : "", extra ? extra : "");
}

static char *signed_claims(const tk_key *k, const char *email, const char *extra)
{
    char *c = claims(email, extra);
    char *t = ua_token(k, c);
    free(c);
    return t;
}

/* Headers of a request: user ID, optional email and Matrix ID headers, and the token. */
static ua_thdrs request(const char *user_id, const char *email, const char *mxid, const char *token)
{
    ua_thdrs h = {0};
    if (user_id)
        ua_thdrs_add(&h, UA_H_USER, user_id);
    if (email)
        ua_thdrs_add(&h, UA_H_EMAIL, email);
    if (mxid)
        ua_thdrs_add(&h, UA_H_MXID, mxid);
    if (token)
        ua_thdrs_add(&h, H_JWT, token);
    return h;
}

static void expect_code(fixture *f, const ua_thdrs *h, mr_code code, const char *msg)
{
    ua_tauth_expect_refused(&f->a, h, code, msg);
}

static void expect_401(fixture *f, const ua_thdrs *h, const char *msg)
{
    ua_tauth_expect_401(&f->a, h, msg);
}

static void expect_ok(fixture *f, const ua_thdrs *h, const char *user_id, const char *email, const char *mxid)
{
    ua_tauth_expect_identity(&f->a, h, user_id, email, mxid, UA_METHOD_TRUSTED_JWT);
}

/* alice's token signed by k (returned, the caller frees) and the request h that carries it, which
 * is accepted. */
static char *alice_accepted(fixture *f, const tk_key *k, ua_thdrs *h)
{
    char *t = signed_claims(k, ALICE_EMAIL, NULL);
    *h = request(ALICE_EMAIL, NULL, NULL, t);
    expect_ok(f, h, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID);
    return t;
}

/* A token that must be refused with the generic sentence, whatever libs/jwt found. */
static void expect_invalid_token(fixture *f, char *token)
{
    ua_thdrs h = request(ALICE_EMAIL, NULL, NULL, token);
    expect_401(f, &h, INVALID);
    free(token);
}

/* One request with a token: its user ID, email and Matrix ID headers (NULL: not sent), then the
 * 401 sentence it gets or, when that is NULL, the identity it is accepted as. */
typedef struct header_case {
    const char *user, *email, *mxid, *refused, *id_user, *id_email, *id_mxid;
} header_case;

#define MISMATCH "Trusted upstream identity header does not match the JWT: "
#define REFUSED(u, e, m, why) {.user = (u), .email = (e), .mxid = (m), .refused = (why)}
#define ACCEPTED(u, e, m, id_u, id_e, id_m) \
    {.user = (u), .email = (e), .mxid = (m), .id_user = (id_u), .id_email = (id_e), .id_mxid = (id_m)}

/* A token signed by k for email with the extra claims, sent with each of the n cases. */
static void token_cases(fixture *f, const tk_key *k, const char *email, const char *extra, const header_case *cases,
                        size_t n)
{
    char *t = signed_claims(k, email, extra);
    for (size_t i = 0; i < n; i++) {
        const header_case *c = &cases[i];
        ua_thdrs h = request(c->user, c->email, c->mxid, t);
        if (c->refused)
            expect_401(f, &h, c->refused);
        else
            expect_ok(f, &h, c->id_user, c->id_email, c->id_mxid);
    }
    free(t);
}

#define CASES(c) (c), sizeof(c) / sizeof(c)[0]

static void test_valid_rs256_and_es256(void **state)
{
    static const header_case ok[] = {ACCEPTED(ALICE_EMAIL, ALICE_EMAIL, NULL, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID)};
    token_cases(*state, &g_rsa, ALICE_EMAIL, NULL, CASES(ok));
    token_cases(*state, &g_ec, ALICE_EMAIL, NULL, CASES(ok));
    assert_string_equal(ua_method_name(UA_METHOD_TRUSTED_JWT), "trusted_upstream_jwt");
}

static void test_missing_headers(void **state)
{
    fixture *f = *state;
    char *t = signed_claims(&g_rsa, ALICE_EMAIL, NULL);
    /* The user ID header comes first, even with a valid token. */
    ua_thdrs h = request(NULL, ALICE_EMAIL, NULL, t);
    expect_401(f, &h, "Missing trusted upstream identity header: " UA_H_USER);
    h = request(ALICE_EMAIL, ALICE_EMAIL, NULL, NULL);
    expect_401(f, &h, "Missing trusted upstream JWT header: " H_JWT);
    h = request(ALICE_EMAIL, ALICE_EMAIL, NULL, "");
    expect_401(f, &h, "Missing trusted upstream JWT header: " H_JWT);
    free(t);
}

static void test_duplicated_and_oversize_jwt_header(void **state)
{
    fixture *f = *state;
    char *t = signed_claims(&g_rsa, ALICE_EMAIL, NULL);
    ua_thdrs h = request(ALICE_EMAIL, NULL, NULL, t);
    ua_thdrs_add(&h, "x-trusted-jwt", t);
    expect_401(f, &h, "Duplicate trusted upstream header: " H_JWT);
    char *big = malloc(16384 + 2);
    memset(big, 'a', 16384 + 1);
    big[16384 + 1] = '\0';
    h = request(ALICE_EMAIL, NULL, NULL, big);
    expect_401(f, &h, "Trusted upstream header too long: " H_JWT);
    free(big);
    free(t);
}

static void test_malformed_tokens(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {"abc", "a.b", "a.b.c", "..", "eyJhbGciOiJSUzI1NiJ9.e30.", "a.b.c.d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_invalid_token(f, strdup(bad[i]));
    char *good = signed_claims(&g_rsa, ALICE_EMAIL, NULL);
    good[strlen(good) - 2] ^= 1;   /* one bit of the signature */
    expect_invalid_token(f, good);
}

static void test_expired(void **state)
{
    fixture *f = *state;
    char *p = tk_printf("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"email\":\"%s\"}", ISS, AUD, ua_now_s() - 3600,
                        ALICE_EMAIL);
    expect_invalid_token(f, ua_token(&g_rsa, p));
    free(p);
    p = tk_printf("{\"iss\":\"%s\",\"aud\":\"%s\",\"email\":\"%s\"}", ISS, AUD, ALICE_EMAIL);
    expect_invalid_token(f, ua_token(&g_rsa, p));
    free(p);
}

/* MINDROOM_TRUSTED_UPSTREAM_JWT_LEEWAY_SECONDS reaches the verifier: a token that expired 10 s
 * ago passes with the default 30 s of clock skew, and not with 5. */
static void test_leeway_setting(void **state)
{
    fixture *f = *state;
    char *p = tk_printf("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"email\":\"%s\"}", ISS, AUD, ua_now_s() - 10,
                        ALICE_EMAIL);
    char *t = ua_token(&g_rsa, p);
    ua_thdrs h = request(ALICE_EMAIL, NULL, NULL, t);
    expect_ok(f, &h, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID);
    reopen_with(f, UA_TU "JWT_LEEWAY_SECONDS", "5");
    expect_401(f, &h, INVALID);
    free(t);
    free(p);
}

static void test_not_yet_valid(void **state)
{
    fixture *f = *state;
    long long now = ua_now_s();
    char *p = tk_printf("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"nbf\":%lld,\"email\":\"%s\"}", ISS, AUD,
                        now + 7200, now + 3600, ALICE_EMAIL);
    expect_invalid_token(f, ua_token(&g_ec, p));
    free(p);
}

static void test_wrong_issuer(void **state)
{
    fixture *f = *state;
    char *p = tk_printf("{\"iss\":\"https://evil.example.com\",\"aud\":\"%s\",\"exp\":%lld,\"email\":\"%s\"}", AUD,
                        ua_now_s() + 600, ALICE_EMAIL);
    expect_invalid_token(f, ua_token(&g_rsa, p));
    free(p);
}

static void test_wrong_audience(void **state)
{
    fixture *f = *state;
    long long now = ua_now_s();
    char *p = tk_printf("{\"iss\":\"%s\",\"aud\":\"other-app\",\"exp\":%lld,\"email\":\"%s\"}", ISS, now + 600,
                        ALICE_EMAIL);
    expect_invalid_token(f, ua_token(&g_rsa, p));
    free(p);
    p = tk_printf("{\"iss\":\"%s\",\"exp\":%lld,\"email\":\"%s\"}", ISS, now + 600, ALICE_EMAIL);
    expect_invalid_token(f, ua_token(&g_rsa, p));
    free(p);
}

static void test_unknown_kid_and_wrong_key(void **state)
{
    fixture *f = *state;
    tk_key stranger;
    tk_rsa(&stranger, "stranger", 2048);
    expect_invalid_token(f, signed_claims(&stranger, ALICE_EMAIL, NULL));
    tk_free(&stranger);
    /* rsa-1's kid, another key's signature. */
    expect_invalid_token(f, signed_claims(&g_evil, ALICE_EMAIL, NULL));
}

static void test_alg_none_and_hmac_confusion(void **state)
{
    fixture *f = *state;
    char *c = claims(ALICE_EMAIL, NULL);
    expect_invalid_token(f, tk_join("{\"alg\":\"none\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}", c, "", 0));
    expect_invalid_token(f, tk_join("{\"alg\":\"none\",\"typ\":\"JWT\"}", c, "", 0));
    /* libjwt issue 200: HS256 keyed with the public key's PEM, which anyone can fetch. */
    char *pem = tk_pem(&g_rsa);
    expect_invalid_token(f, tk_sign_hmac(pem, strlen(pem), "{\"alg\":\"HS256\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}", c));
    free(pem);
    /* An EC key named with an RSA algorithm, and the reverse. */
    expect_invalid_token(f, tk_sign_alg(&g_rsa, "RS256", "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", c));
    expect_invalid_token(f, tk_sign_alg(&g_ec, "ES256", "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", c));
    free(c);
}

static void test_missing_configured_claims(void **state)
{
    fixture *f = *state;
    long long now = ua_now_s();
    char *p = tk_printf("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"mail\":\"%s\"}", ISS, AUD, now + 600, ALICE_EMAIL);
    expect_invalid_token(f, ua_token(&g_rsa, p));
    free(p);
    ua_tenv_set(&f->a.env, UA_TU "JWT_USER_ID_CLAIM", "sub");
    reopen_with(f, UA_TU "JWT_MATRIX_USER_ID_CLAIM", "matrix_user_id");
    static const header_case refused[] = {REFUSED("u-1", NULL, NULL, INVALID)};
    static const header_case ok[] = {ACCEPTED("u-1", NULL, NULL, "u-1", ALICE_EMAIL, ALICE_MXID)};
    token_cases(f, &g_rsa, ALICE_EMAIL, "\"matrix_user_id\":\"" ALICE_MXID "\"", CASES(refused));
    token_cases(f, &g_rsa, ALICE_EMAIL, "\"sub\":\"u-1\"", CASES(refused));
    token_cases(f, &g_rsa, ALICE_EMAIL, "\"sub\":\"u-1\",\"matrix_user_id\":\"" ALICE_MXID "\"", CASES(ok));
}

/* Without a user ID claim, the user ID header must equal the verified email. */
static void test_user_id_header_matches_email_claim(void **state)
{
    static const header_case cases[] = {
        REFUSED("u-1", NULL, NULL, MISMATCH UA_H_USER),
        REFUSED("bob@example.com", NULL, NULL, MISMATCH UA_H_USER),
        ACCEPTED(ALICE_EMAIL, NULL, NULL, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID),
    };
    token_cases(*state, &g_rsa, ALICE_EMAIL, "\"sub\":\"u-1\"", CASES(cases));
}

/* With a user ID claim, the header must equal that claim. */
static void test_user_id_header_matches_user_id_claim(void **state)
{
    fixture *f = *state;
    reopen_with(f, UA_TU "JWT_USER_ID_CLAIM", "sub");
    static const header_case cases[] = {
        REFUSED(ALICE_EMAIL, NULL, NULL, MISMATCH UA_H_USER),
        REFUSED("u-2", NULL, NULL, MISMATCH UA_H_USER),
        ACCEPTED("u-1", NULL, NULL, "u-1", ALICE_EMAIL, ALICE_MXID),
    };
    token_cases(f, &g_ec, ALICE_EMAIL, "\"sub\":\"u-1\"", CASES(cases));
}

static void test_email_header_matches_email_claim(void **state)
{
    static const header_case cases[] = {
        REFUSED(ALICE_EMAIL, "mallory@example.com", NULL, MISMATCH UA_H_EMAIL),
        REFUSED(ALICE_EMAIL, "ALICE@example.com", NULL, MISMATCH UA_H_EMAIL),
        ACCEPTED(ALICE_EMAIL, ALICE_EMAIL, NULL, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID),
    };
    token_cases(*state, &g_rsa, ALICE_EMAIL, NULL, CASES(cases));
}

static void test_matrix_header_matches_matrix_claim(void **state)
{
    fixture *f = *state;
    reopen_with(f, UA_TU "JWT_MATRIX_USER_ID_CLAIM", "matrix_user_id");
    static const header_case cases[] = {
        REFUSED(ALICE_EMAIL, NULL, ALICE_MXID, MISMATCH UA_H_MXID),
        ACCEPTED(ALICE_EMAIL, NULL, "@alice.smith:example.org", ALICE_EMAIL, ALICE_EMAIL, "@alice.smith:example.org"),
        /* The claim wins over the template when no header is sent. */
        ACCEPTED(ALICE_EMAIL, NULL, NULL, ALICE_EMAIL, ALICE_EMAIL, "@alice.smith:example.org"),
    };
    token_cases(f, &g_rsa, ALICE_EMAIL, "\"matrix_user_id\":\"@alice.smith:example.org\"", CASES(cases));
    static const header_case not_a_user_id[] = {REFUSED(ALICE_EMAIL, NULL, NULL, INVALID)};
    token_cases(f, &g_rsa, ALICE_EMAIL, "\"matrix_user_id\":\"alice\"", CASES(not_a_user_id));
}

static void test_matrix_header_matches_derived_identity(void **state)
{
    fixture *f = *state;
    /* Derivation uses the verified claim: no email header is configured here. */
    reopen_with(f, UA_TU "EMAIL_HEADER", NULL);
    static const header_case cases[] = {
        REFUSED(ALICE_EMAIL, NULL, "@mallory:example.org", MISMATCH UA_H_MXID),
        ACCEPTED(ALICE_EMAIL, NULL, ALICE_MXID, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID),
    };
    token_cases(f, &g_ec, ALICE_EMAIL, NULL, CASES(cases));
    char *t = signed_claims(&g_ec, "al:ice@example.com", NULL);
    ua_thdrs h = request("al:ice@example.com", NULL, NULL, t);
    ua_identity id;
    mr_err err = {0};
    assert_int_equal(ua_authenticate(f->a.auth, ua_thdrs_get, &h, NULL, &id, &err), MR_EAUTH);
    assert_true(strncmp(err.msg, "Trusted upstream email does not map to a Matrix user ID: ", 57) == 0);
    free(t);
}

static void test_unsigned_matrix_header_is_refused(void **state)
{
    fixture *f = *state;
    reopen_with(f, UA_TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", NULL);
    static const header_case cases[] = {
        REFUSED(ALICE_EMAIL, NULL, ALICE_MXID, "Trusted upstream Matrix identity is not signed"),
        ACCEPTED(ALICE_EMAIL, NULL, NULL, ALICE_EMAIL, ALICE_EMAIL, NULL),
    };
    token_cases(f, &g_rsa, ALICE_EMAIL, NULL, CASES(cases));
}

static void test_claims_with_control_characters(void **state)
{
    fixture *f = *state;
    reopen_with(f, UA_TU "JWT_USER_ID_CLAIM", "sub");
    static const header_case refused[] = {REFUSED("u-1", NULL, NULL, INVALID)};
    token_cases(f, &g_rsa, "alice@example.com\\r\\nX-MindRoom-Auth-User-Id: root", "\"sub\":\"u-1\"", CASES(refused));
}

static void test_key_rotation(void **state)
{
    fixture *f = *state;
    reopen_with(f, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE", "0");
    ua_thdrs h;
    char *old = alice_accepted(f, &g_rsa, &h);
    unsigned fetched = js_requests(g_js);
    /* The gateway rotates: rsa-2 in, rsa-1 out. A token with the new kid fetches the set again,
     * once the refetch floor (10 s by default) since the last fetch has passed. */
    serve_keys(&g_rsa2, &g_ec);
    f->offset_ms += 11000;
    char *fresh = alice_accepted(f, &g_rsa2, &h);
    assert_int_equal(js_requests(g_js), fetched + 1);
    h = request(ALICE_EMAIL, NULL, NULL, old);
    expect_401(f, &h, INVALID);
    /* Past the cache TTL the set is fetched again and the retired key stays out. */
    f->offset_ms += 61000;
    expect_401(f, &h, INVALID);
    free(old);
    free(fresh);
}

static void test_jwks_unreachable(void **state)
{
    fixture *f = *state;
    js_set(g_js, 503, "down");
    char *t = signed_claims(&g_rsa, ALICE_EMAIL, NULL);
    ua_thdrs h = request(ALICE_EMAIL, NULL, NULL, t);
    expect_code(f, &h, MR_EUNAVAIL, "Trusted upstream JWT keys are unavailable; try again shortly");
    free(t);
}

static void test_cache_hits_and_rechecks_expiry(void **state)
{
    fixture *f = *state;
    long long now = ua_now_s();
    char *p = tk_printf("{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,\"email\":\"%s\"}", ISS, AUD, now + 60, ALICE_EMAIL);
    char *t = ua_token(&g_rsa, p);
    ua_thdrs h = request(ALICE_EMAIL, NULL, NULL, t);
    expect_ok(f, &h, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID);
    expect_ok(f, &h, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID);
    ua_auth_stats st;
    ua_auth_stats_get(f->a.auth, &st);
    assert_int_equal(st.cache_misses, 1);
    assert_int_equal(st.cache_hits, 1);
    /* A cached token still meets the consistency rules. */
    ua_thdrs other = request("bob@example.com", NULL, NULL, t);
    expect_401(f, &other, "Trusted upstream identity header does not match the JWT: " UA_H_USER);
    ua_auth_stats_get(f->a.auth, &st);
    assert_int_equal(st.cache_hits, 2);
    /* Past exp (and the verifier's leeway) the cache must not answer for it. */
    f->offset_ms += 200000;
    expect_401(f, &h, INVALID);
    ua_auth_stats_get(f->a.auth, &st);
    assert_int_equal(st.cache_hits, 2);
    assert_int_equal(st.cache_misses, 2);
    free(t);
    free(p);
}

static void test_cache_off(void **state)
{
    fixture *f = *state;
    reopen_with(f, "MINDROOM_UPSTREAM_AUTH_JWT_CACHE", "0");
    ua_thdrs h;
    char *t = alice_accepted(f, &g_ec, &h);
    expect_ok(f, &h, ALICE_EMAIL, ALICE_EMAIL, ALICE_MXID);
    ua_auth_stats st;
    ua_auth_stats_get(f->a.auth, &st);
    assert_int_equal(st.cache_hits, 0);
    assert_int_equal(st.cache_misses, 0);
    free(t);
}

static void test_cache_is_bounded(void **state)
{
    (void)state;
    ua_token_cache *c = ua_token_cache_new(1);
    unsigned char a[32] = {1}, b[32] = {2};
    mr_jwt_identity ia = {.email = "a@example.com", .exp = 1000}, ib = {.email = "b@example.com", .exp = 1000};
    mr_jwt_identity out;
    ua_token_cache_put(c, a, &ia);
    assert_true(ua_token_cache_get(c, a, 999, &out));
    assert_string_equal(out.email, "a@example.com");
    assert_int_equal(out.exp, 1000);
    mr_jwt_identity_free(&out);
    ua_token_cache_put(c, b, &ib);
    assert_false(ua_token_cache_get(c, a, 999, &out));
    assert_true(ua_token_cache_get(c, b, 999, &out));
    mr_jwt_identity_free(&out);
    assert_false(ua_token_cache_get(c, b, 1000, &out));
    assert_false(ua_token_cache_get(c, b, 10, &out));   /* dropped at its expiry */
    ua_token_cache_free(c);
    assert_null(ua_token_cache_new(0));
    assert_false(ua_token_cache_get(NULL, a, 0, &out));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_valid_rs256_and_es256),
        T(test_missing_headers),
        T(test_duplicated_and_oversize_jwt_header),
        T(test_malformed_tokens),
        T(test_expired),
        T(test_leeway_setting),
        T(test_not_yet_valid),
        T(test_wrong_issuer),
        T(test_wrong_audience),
        T(test_unknown_kid_and_wrong_key),
        T(test_alg_none_and_hmac_confusion),
        T(test_missing_configured_claims),
        T(test_user_id_header_matches_email_claim),
        T(test_user_id_header_matches_user_id_claim),
        T(test_email_header_matches_email_claim),
        T(test_matrix_header_matches_matrix_claim),
        T(test_matrix_header_matches_derived_identity),
        T(test_unsigned_matrix_header_is_refused),
        T(test_claims_with_control_characters),
        T(test_key_rotation),
        T(test_jwks_unreachable),
        T(test_cache_hits_and_rechecks_expiry),
        T(test_cache_off),
        cmocka_unit_test(test_cache_is_bounded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
