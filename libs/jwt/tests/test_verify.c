/* test_verify.c -- mr_jwt_verify on tokens signed by OpenSSL: algorithms, forgeries, claims,
 * malformed input; keys handed over by a fetch function and a clock the test sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jwt.h>

#include "mindroom/b64.h"
#include "mindroom/jwt.h"
#include "testkeys.h"

#define NOW_S 1700000000LL
#define ISS "https://gw.example"
#define AUD "mindroom-dashboard"
#define URL "https://gw.example/.well-known/jwks.json"

static tk_key g_r1, g_e1, g_e2, g_other;
static tk_key g_r384; /* g_r1's key material under kid "r384", limited to RS384 */
static char *g_jwks;
static int64_t g_now_ms = NOW_S * 1000;

/* A key set held in memory: what the fetch function hands over, and how often it was asked. */
typedef struct mem_jwks {
    const char *doc;
    unsigned calls;
} mem_jwks;

static mr_code mem_fetch(void *ctx, const char *url, long timeout_ms, char **body, size_t *len, mr_err *err)
{
    mem_jwks *m = ctx;
    assert_string_equal(url, URL);
    assert_int_equal(timeout_ms, 5000);
    m->calls++;
    *body = strdup(m->doc);
    *len = strlen(m->doc);
    return *body ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory");
}

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return g_now_ms;
}

static mem_jwks g_mem;
static mr_jwt_verifier *g_v;

static mr_jwt_verifier *verifier_with(mem_jwks *m, long leeway_s, size_t max_token_bytes)
{
    mr_jwt_options o;
    mr_jwt_options_init(&o);
    o.jwks_url = URL;
    o.issuer = ISS;
    o.audience = AUD;
    o.user_id_claim = "sub";
    o.matrix_user_id_claim = "matrix_user_id";
    o.leeway_s = leeway_s;
    o.max_token_bytes = max_token_bytes;
    o.fetch = mem_fetch;
    o.fetch_ctx = m;
    o.clock = test_clock;
    mr_err err = {0};
    mr_jwt_verifier *v = NULL;
    if (mr_jwt_verifier_new(&o, &v, &err) != MR_OK)
        fail_msg("mr_jwt_verifier_new: %s", err.msg);
    return v;
}

static int group_setup(void **state)
{
    (void)state;
    tk_rsa(&g_r1, "r1", 2048);
    tk_rsa(&g_other, "r1", 2048);
    tk_ec(&g_e1, "e1", "P-256");
    tk_ec(&g_e2, "e2", "P-384");
    g_r384 = g_r1;
    snprintf(g_r384.kid, sizeof g_r384.kid, "r384");
    snprintf(g_r384.alg, sizeof g_r384.alg, "RS384");
    char *jwks[] = {tk_jwk(&g_r1, "\"use\":\"sig\""), tk_jwk(&g_e1, NULL), tk_jwk(&g_e2, "\"alg\":\"ES384\""),
                    tk_jwk(&g_r384, "\"alg\":\"RS384\"")};
    g_jwks = tk_jwks((const char *const *)jwks, 4);
    for (size_t i = 0; i < 4; i++)
        free(jwks[i]);
    g_mem.doc = g_jwks;
    g_v = verifier_with(&g_mem, 30, 16384);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_jwt_verifier_free(g_v);
    free(g_jwks);
    tk_free(&g_r1);
    tk_free(&g_other);
    tk_free(&g_e1);
    tk_free(&g_e2);
    return 0;
}

static int reset_clock(void **state)
{
    (void)state;
    g_now_ms = NOW_S * 1000;
    return 0;
}

/* The usual header for key k: its signing alg and kid. Caller frees. */
static char *header_for(const tk_key *k)
{
    return tk_printf("{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->alg, k->kid);
}

/* A payload with every required claim; `extra` adds members or, coming later, is rejected as a
 * duplicate, so tests that change a claim build their own. Caller frees. */
static char *claims_with(long long exp, const char *extra)
{
    return tk_printf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"email\":\"alice@example.org\","
                     "\"sub\":\"u-123\",\"matrix_user_id\":\"@alice:example.org\"%s%s}",
                     exp, extra ? "," : "", extra ? extra : "");
}

static char *token_for(const tk_key *k, const char *payload)
{
    char *h = header_for(k);
    char *t = tk_sign(k, h, payload);
    free(h);
    return t;
}

static char *good_token(const tk_key *k)
{
    char *p = claims_with(NOW_S + 300, NULL);
    char *t = token_for(k, p);
    free(p);
    return t;
}

static void expect_ok_on(mr_jwt_verifier *v, const char *token, mr_jwt_identity *id)
{
    mr_err err = {0};
    mr_code rc = mr_jwt_verify(v, token, id, &err);
    if (rc != MR_OK)
        fail_msg("expected a valid token, got %s: %s", mr_code_str(rc), err.msg);
}

/* Rejected as invalid with exactly this message (or, when prefix_only, a message starting so),
 * and the message quotes neither the payload nor the signature of the token. */
static void expect_invalid_on(mr_jwt_verifier *v, const char *token, const char *msg, bool prefix_only)
{
    mr_err err = {0};
    mr_jwt_identity id;
    mr_code rc = mr_jwt_verify(v, token, &id, &err);
    if (rc != MR_EAUTH)
        fail_msg("expected %s, got %s: %s", mr_code_str(MR_EAUTH), mr_code_str(rc), err.msg);
    assert_int_equal(err.code, MR_EAUTH);
    if (prefix_only)
        assert_memory_equal(err.msg, msg, strlen(msg));
    else
        assert_string_equal(err.msg, msg);
    assert_null(id.email);
    assert_null(id.kid);
    const char *dot = strchr(token, '.');
    const char *last = strrchr(token, '.');
    if (dot && last > dot + 8) {
        char *payload_part = strndup(dot + 1, (size_t)(last - dot - 1));
        assert_null(strstr(err.msg, payload_part));
        free(payload_part);
    }
    if (last && strlen(last + 1) >= 8)
        assert_null(strstr(err.msg, last + 1));
}

static void expect_invalid(const char *token, const char *msg)
{
    expect_invalid_on(g_v, token, msg, false);
}

/* Signs payload with key k under its usual header and expects the exact rejection. */
static void expect_claims_invalid(const char *payload, const char *msg)
{
    char *t = token_for(&g_r1, payload);
    expect_invalid(t, msg);
    free(t);
}

static void test_valid_rs256_gives_identity(void **state)
{
    (void)state;
    char *t = good_token(&g_r1);
    mr_jwt_identity id;
    expect_ok_on(g_v, t, &id);
    assert_string_equal(id.email, "alice@example.org");
    assert_string_equal(id.user_id, "u-123");
    assert_string_equal(id.matrix_user_id, "@alice:example.org");
    assert_string_equal(id.subject, "u-123");
    assert_string_equal(id.kid, "r1");
    assert_string_equal(id.alg, "RS256");
    assert_int_equal(id.exp, NOW_S + 300);
    mr_jwt_identity_free(&id);
    assert_null(id.email);
    /* Checking only, without an identity to fill. */
    mr_err err = {0};
    assert_int_equal(mr_jwt_verify(g_v, t, NULL, &err), MR_OK);
    free(t);
}

static void test_every_accepted_algorithm(void **state)
{
    (void)state;
    static const struct {
        const tk_key *key;
        const char *alg;
    } cases[] = {{&g_r1, "RS256"}, {&g_r1, "RS384"}, {&g_r1, "RS512"},
                 {&g_e1, "ES256"}, {&g_e2, "ES384"}, {&g_r384, "RS384"}};
    char *p = claims_with(NOW_S + 60, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *h = tk_printf("{\"alg\":\"%s\",\"kid\":\"%s\"}", cases[i].alg, cases[i].key->kid);
        char *t = tk_sign_alg(cases[i].key, cases[i].alg, h, p);
        mr_jwt_identity id;
        expect_ok_on(g_v, t, &id);
        assert_string_equal(id.alg, cases[i].alg);
        assert_string_equal(id.kid, cases[i].key->kid);
        mr_jwt_identity_free(&id);
        free(t);
        free(h);
    }
    free(p);
    /* One fetch served all of them. */
    assert_int_equal(g_mem.calls, 1);
}

static void test_audience_string_and_list(void **state)
{
    (void)state;
    static const char *const ok[] = {"\"" AUD "\"", "[\"other\",\"" AUD "\"]", "[\"" AUD "\"]"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *p = tk_printf("{\"iss\":\"" ISS "\",\"aud\":%s,\"exp\":%lld,\"email\":\"a@b.c\",\"sub\":\"u\","
                            "\"matrix_user_id\":\"@a:b.c\"}", ok[i], NOW_S + 60);
        char *t = token_for(&g_r1, p);
        expect_ok_on(g_v, t, NULL);
        free(t);
        free(p);
    }
    static const struct {
        const char *aud;
        const char *msg;
    } bad[] = {
        {"\"mindroom-other\"", "invalid JWT: audience mindroom-other does not include \"" AUD "\""},
        {"[\"a\",\"b\"]", "invalid JWT: audience (a list) does not include \"" AUD "\""},
        {"[]", "invalid JWT: audience (a list) does not include \"" AUD "\""},
        {"[1,{\"x\":\"" AUD "\"}]", "invalid JWT: audience (a list) does not include \"" AUD "\""},
        {"7", "invalid JWT: aud is missing or neither a string nor a list"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = tk_printf("{\"iss\":\"" ISS "\",\"aud\":%s,\"exp\":%lld,\"email\":\"a@b.c\",\"sub\":\"u\","
                            "\"matrix_user_id\":\"@a:b.c\"}", bad[i].aud, NOW_S + 60);
        expect_claims_invalid(p, bad[i].msg);
        free(p);
    }
    char *p = tk_printf("{\"iss\":\"" ISS "\",\"exp\":%lld,\"email\":\"a@b.c\",\"sub\":\"u\","
                        "\"matrix_user_id\":\"@a:b.c\"}", NOW_S + 60);
    expect_claims_invalid(p, "invalid JWT: aud is missing or neither a string nor a list");
    free(p);
}

static void test_issuer(void **state)
{
    (void)state;
    char *p = tk_printf("{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\",\"exp\":%lld,\"email\":\"a@b.c\","
                        "\"sub\":\"u\",\"matrix_user_id\":\"@a:b.c\"}", NOW_S + 60);
    expect_claims_invalid(p, "invalid JWT: issuer \"https://evil.example\" is not the expected \"" ISS "\"");
    free(p);
    /* A trailing slash is another issuer. */
    p = tk_printf("{\"iss\":\"" ISS "/\",\"aud\":\"" AUD "\",\"exp\":%lld,\"email\":\"a@b.c\","
                  "\"sub\":\"u\",\"matrix_user_id\":\"@a:b.c\"}", NOW_S + 60);
    expect_claims_invalid(p, "invalid JWT: issuer \"" ISS "/\" is not the expected \"" ISS "\"");
    free(p);
    p = tk_printf("{\"aud\":\"" AUD "\",\"exp\":%lld,\"email\":\"a@b.c\",\"sub\":\"u\","
                  "\"matrix_user_id\":\"@a:b.c\"}", NOW_S + 60);
    expect_claims_invalid(p, "invalid JWT: iss is missing or not a string");
    free(p);
}

static void test_exp_required_and_well_formed(void **state)
{
    (void)state;
    const char *rest = "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"email\":\"a@b.c\",\"sub\":\"u\","
                       "\"matrix_user_id\":\"@a:b.c\"";
    char *p = tk_printf("{%s}", rest);
    expect_claims_invalid(p, "invalid JWT: exp is missing");
    free(p);
    p = tk_printf("{%s,\"exp\":\"%lld\"}", rest, NOW_S + 60);
    expect_claims_invalid(p, "invalid JWT: exp is not a number");
    free(p);
    p = tk_printf("{%s,\"exp\":1e20}", rest);
    expect_claims_invalid(p, "invalid JWT: exp 100000000000000000000 is out of range");
    free(p);
    p = tk_printf("{%s,\"exp\":%lld,\"nbf\":null}", rest, NOW_S + 60);
    expect_claims_invalid(p, "invalid JWT: nbf is not a number");
    free(p);
    /* A fractional NumericDate is a number too. */
    p = tk_printf("{%s,\"exp\":%lld.5}", rest, NOW_S + 60);
    char *t = token_for(&g_r1, p);
    mr_jwt_identity id;
    expect_ok_on(g_v, t, &id);
    assert_int_equal(id.exp, NOW_S + 60);
    mr_jwt_identity_free(&id);
    free(t);
    free(p);
}

/* exp: rejected once exp <= now - leeway. nbf and iat: rejected once they are > now + leeway. */
static void test_time_claims_at_the_leeway_edges(void **state)
{
    (void)state;
    char *p = claims_with(NOW_S - 29, NULL);
    char *t = token_for(&g_r1, p);
    expect_ok_on(g_v, t, NULL);
    free(t);
    free(p);
    p = claims_with(NOW_S - 30, NULL);
    expect_claims_invalid(p, "invalid JWT: expired at 1699999970, 30 s ago (leeway 30 s)");
    free(p);
    p = claims_with(NOW_S - 3600, NULL);
    expect_claims_invalid(p, "invalid JWT: expired at 1699996400, 3600 s ago (leeway 30 s)");
    free(p);

    p = claims_with(NOW_S + 60, "\"nbf\":1700000030");
    t = token_for(&g_r1, p);
    expect_ok_on(g_v, t, NULL);
    free(t);
    free(p);
    p = claims_with(NOW_S + 60, "\"nbf\":1700000031");
    expect_claims_invalid(p, "invalid JWT: not valid before 1700000031, 31 s from now (leeway 30 s)");
    free(p);

    p = claims_with(NOW_S + 60, "\"iat\":1700000030");
    t = token_for(&g_r1, p);
    expect_ok_on(g_v, t, NULL);
    free(t);
    free(p);
    p = claims_with(NOW_S + 60, "\"iat\":1700000031");
    expect_claims_invalid(p, "invalid JWT: issued at 1700000031, 31 s in the future (leeway 30 s)");
    free(p);

    /* The same token goes from valid to expired as the clock moves past exp + leeway. */
    p = claims_with(NOW_S + 10, NULL);
    t = token_for(&g_r1, p);
    g_now_ms = (NOW_S + 39) * 1000 + 999;
    expect_ok_on(g_v, t, NULL);
    g_now_ms = (NOW_S + 40) * 1000;
    expect_invalid(t, "invalid JWT: expired at 1700000010, 30 s ago (leeway 30 s)");
    free(t);
    free(p);
}

static void test_zero_leeway(void **state)
{
    (void)state;
    mem_jwks m = {g_jwks, 0};
    mr_jwt_verifier *v = verifier_with(&m, 0, 16384);
    char *p = claims_with(NOW_S + 1, "\"nbf\":1700000000");
    char *t = token_for(&g_r1, p);
    expect_ok_on(v, t, NULL);
    free(t);
    free(p);
    p = claims_with(NOW_S, NULL);
    t = token_for(&g_r1, p);
    expect_invalid_on(v, t, "invalid JWT: expired at 1700000000, 0 s ago (leeway 0 s)", false);
    free(t);
    free(p);
    p = claims_with(NOW_S + 60, "\"nbf\":1700000001");
    t = token_for(&g_r1, p);
    expect_invalid_on(v, t, "invalid JWT: not valid before 1700000001, 1 s from now (leeway 0 s)", false);
    free(t);
    free(p);
    mr_jwt_verifier_free(v);
}

static void test_required_claims(void **state)
{
    (void)state;
    const char *base = "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000300";
    static const struct {
        const char *claims;
        const char *msg;
    } cases[] = {
        {"\"sub\":\"u\",\"matrix_user_id\":\"@a:b.c\"", "invalid JWT: claim \"email\" is missing, empty or not a string"},
        {"\"email\":[\"a@b.c\"],\"sub\":\"u\",\"matrix_user_id\":\"@a:b.c\"",
         "invalid JWT: claim \"email\" is missing, empty or not a string"},
        {"\"email\":\"\",\"sub\":\"u\",\"matrix_user_id\":\"@a:b.c\"",
         "invalid JWT: claim \"email\" is missing, empty or not a string"},
        {"\"email\":\"a@b.c\",\"matrix_user_id\":\"@a:b.c\"", "invalid JWT: claim \"sub\" is missing, empty or not a string"},
        {"\"email\":\"a@b.c\",\"sub\":42,\"matrix_user_id\":\"@a:b.c\"",
         "invalid JWT: claim \"sub\" is missing, empty or not a string"},
        {"\"email\":\"a@b.c\",\"sub\":\"u\"", "invalid JWT: claim \"matrix_user_id\" is missing, empty or not a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = tk_printf("{%s,%s}", base, cases[i].claims);
        expect_claims_invalid(p, cases[i].msg);
        free(p);
    }

    /* Claims not configured are not required: only the default email claim here. */
    mr_jwt_options o;
    mr_jwt_options_init(&o);
    o.jwks_url = URL;
    o.issuer = ISS;
    o.audience = AUD;
    o.fetch = mem_fetch;
    o.fetch_ctx = &(mem_jwks){g_jwks, 0};
    o.clock = test_clock;
    mr_jwt_verifier *v = NULL;
    mr_err err = {0};
    assert_int_equal(mr_jwt_verifier_new(&o, &v, &err), MR_OK);
    char *p = tk_printf("{%s,\"email\":\"bob@example.org\"}", base);
    char *t = token_for(&g_e1, p);
    mr_jwt_identity id;
    expect_ok_on(v, t, &id);
    assert_string_equal(id.email, "bob@example.org");
    assert_null(id.user_id);
    assert_null(id.matrix_user_id);
    assert_null(id.subject);
    mr_jwt_identity_free(&id);
    free(t);
    free(p);
    mr_jwt_verifier_free(v);
}

static void test_malformed_tokens(void **state)
{
    (void)state;
    char *good = good_token(&g_r1);
    char *dot1 = strchr(good, '.');
    char *dot2 = strrchr(good, '.');

    expect_invalid("", "invalid JWT: the token is empty");
    expect_invalid("abc", "invalid JWT: the token has 1 parts; a signed JWT has 3");
    char *two = strndup(good, (size_t)(dot2 - good));
    expect_invalid(two, "invalid JWT: the token has 2 parts; a signed JWT has 3");
    char *four = tk_printf("%s.%s", good, dot2 + 1);
    expect_invalid(four, "invalid JWT: the token has 4 parts; a signed JWT has 3");
    /* An encrypted JWT (JWE) has 5 parts. */
    expect_invalid("a.b.c.d.e", "invalid JWT: the token has 5 parts; a signed JWT has 3");

    char *bad_b64 = tk_printf("eyJh*GciOiJSUzI1NiJ9%s", dot1);
    expect_invalid(bad_b64, "invalid JWT: header: character 5 is not base64url");
    char *padded = tk_printf("%s=", good);
    expect_invalid(padded, "invalid JWT: signature: character 343 is not base64url");
    char *std_b64 = strdup(good);
    std_b64[dot2 - good + 3] = '+';
    expect_invalid(std_b64, "invalid JWT: signature: character 3 is not base64url");
    char *empty_sig = strndup(good, (size_t)(dot2 - good + 1));
    expect_invalid(empty_sig, "invalid JWT: the signature is empty");

    char *p = claims_with(NOW_S + 60, NULL);
    static const struct {
        const char *header;
        const char *msg;
        bool prefix;
    } headers[] = {
        {"{\"alg\":\"RS256\",\"kid\":\"r1\"", "invalid JWT: the header is not JSON: ", true},
        {"[\"RS256\"]", "invalid JWT: the header is not a JSON object", false},
        {"{\"kid\":\"r1\"}", "invalid JWT: the header has no alg string", false},
        {"{\"alg\":\"RS256\",\"kid\":7}", "invalid JWT: kid is not a string", false},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"at+jwt\"}", "invalid JWT: typ is not \"JWT\"", false},
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"exp\"],\"exp\":1}",
         "invalid JWT: the header has crit extensions", false},
        /* Two algs: another JSON reader might take the other one. */
        {"{\"alg\":\"RS256\",\"kid\":\"r1\",\"alg\":\"HS256\"}", "invalid JWT: the header is not JSON: ", true},
        {"{\"alg\":\"PS256\",\"kid\":\"r1\"}",
         "invalid JWT: alg \"PS256\" is not accepted (RS256, RS384, RS512, ES256, ES384 are)", false},
        {"{\"alg\":\"rs256\",\"kid\":\"r1\"}",
         "invalid JWT: alg \"rs256\" is not accepted (RS256, RS384, RS512, ES256, ES384 are)", false},
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *t = tk_sign(&g_r1, headers[i].header, p);
        expect_invalid_on(g_v, t, headers[i].msg, headers[i].prefix);
        free(t);
    }
    /* "typ" is compared without regard to case, as RFC 7519 5.1 advises. */
    char *t = tk_sign(&g_r1, "{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"jwt\"}", p);
    expect_ok_on(g_v, t, NULL);
    free(t);

    /* Validly signed, but the payload is not a claims object. */
    char *h = header_for(&g_r1);
    t = tk_sign(&g_r1, h, "{\"iss\":");
    expect_invalid_on(g_v, t, "invalid JWT: the payload is not JSON: ", true);
    free(t);
    t = tk_sign(&g_r1, h, "[1,2]");
    expect_invalid(t, "invalid JWT: the payload is not a JSON object");
    free(t);
    free(h);

    free(p);
    free(two);
    free(four);
    free(bad_b64);
    free(padded);
    free(std_b64);
    free(empty_sig);
    free(good);
}

static void test_kid_selection(void **state)
{
    (void)state;
    char *p = claims_with(NOW_S + 60, NULL);
    char *t = tk_sign(&g_r1, "{\"alg\":\"RS256\",\"kid\":\"nope\"}", p);
    expect_invalid(t, "invalid JWT: no key with kid \"nope\" in the JWKS from " URL);
    free(t);
    /* Without kid, a set of several keys does not say which one. */
    t = tk_sign(&g_r1, "{\"alg\":\"RS256\"}", p);
    expect_invalid(t, "invalid JWT: the token has no kid and the JWKS from " URL " holds 4 keys");
    free(t);

    /* Without kid, the only key of a set is the key. */
    char *jwk = tk_jwk(&g_e1, NULL);
    char *one = tk_jwks((const char *const *)&jwk, 1);
    mem_jwks m = {one, 0};
    mr_jwt_verifier *v = verifier_with(&m, 30, 16384);
    t = tk_sign(&g_e1, "{\"alg\":\"ES256\"}", p);
    mr_jwt_identity id;
    expect_ok_on(v, t, &id);
    assert_string_equal(id.kid, "e1");
    mr_jwt_identity_free(&id);
    free(t);
    mr_jwt_verifier_free(v);
    free(one);
    free(jwk);
    free(p);
}

static void test_alg_none_is_rejected(void **state)
{
    (void)state;
    char *p = claims_with(NOW_S + 60, NULL);
    char *t = tk_join("{\"alg\":\"none\",\"kid\":\"r1\"}", p, "", 0);
    expect_invalid(t, "invalid JWT: the signature is empty");
    free(t);
    t = tk_join("{\"alg\":\"none\",\"kid\":\"r1\"}", p, "\0\0\0\0\0\0\0\0\0", 9);
    expect_invalid(t, "invalid JWT: alg \"none\" is not accepted (RS256, RS384, RS512, ES256, ES384 are)");
    free(t);
    t = tk_join("{\"alg\":\"None\"}", p, "x", 1);
    expect_invalid(t, "invalid JWT: alg \"None\" is not accepted (RS256, RS384, RS512, ES256, ES384 are)");
    free(t);
    free(p);
}

/* libjwt issue 200: HS256 keyed with the text of the RSA public key's PEM. */
static void test_hmac_with_public_key_is_rejected(void **state)
{
    (void)state;
    char *pem = tk_pem(&g_r1);
    char *p = claims_with(NOW_S + 60, NULL);
    char *forged = tk_sign_hmac(pem, strlen(pem), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"r1\"}", p);

    /* Keep the test honest: libjwt alone, handed the key as PEM, takes the forgery. */
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, forged, (const unsigned char *)pem, (int)strlen(pem)), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    assert_string_equal(jwt_get_grant(jwt, "email"), "alice@example.org");
    jwt_free(jwt);

    expect_invalid(forged, "invalid JWT: alg \"HS256\" is not accepted (RS256, RS384, RS512, ES256, ES384 are)");
    free(forged);
    free(p);
    free(pem);
}

static void test_alg_must_match_the_key(void **state)
{
    (void)state;
    char *p = claims_with(NOW_S + 60, NULL);
    static const struct {
        const tk_key *signer;
        const char *header;
        const char *msg;
    } cases[] = {
        {&g_e1, "{\"alg\":\"ES256\",\"kid\":\"r1\"}",
         "invalid JWT: alg ES256 does not match key \"r1\", which allows RS256 RS384 RS512"},
        {&g_r1, "{\"alg\":\"RS256\",\"kid\":\"e1\"}", "invalid JWT: alg RS256 does not match key \"e1\", which allows ES256"},
        {&g_e2, "{\"alg\":\"ES384\",\"kid\":\"e1\"}", "invalid JWT: alg ES384 does not match key \"e1\", which allows ES256"},
        {&g_r1, "{\"alg\":\"RS256\",\"kid\":\"r384\"}",
         "invalid JWT: alg RS256 does not match key \"r384\", which allows RS384"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = tk_sign(cases[i].signer, cases[i].header, p);
        expect_invalid(t, cases[i].msg);
        free(t);
    }
    free(p);
}

static void test_bad_signatures(void **state)
{
    (void)state;
    /* Same kid, another key. */
    char *t = good_token(&g_other);
    expect_invalid(t, "invalid JWT: the RS256 signature does not verify with key \"r1\"");
    free(t);
    t = good_token(&g_e1);
    char *p2 = claims_with(NOW_S + 60, "\"admin\":true");
    char *other = token_for(&g_e1, p2);
    /* The payload of one token under the signature of another. */
    char *dot = strchr(t, '.'), *odot1 = strchr(other, '.'), *odot2 = strrchr(other, '.');
    char *spliced = tk_printf("%.*s.%.*s%s", (int)(dot - t), t, (int)(odot2 - odot1 - 1), odot1 + 1, strrchr(t, '.'));
    expect_invalid(spliced, "invalid JWT: the ES256 signature does not verify with key \"e1\"");
    /* An ES256 signature of the wrong length. */
    char *shortsig = tk_join("{\"alg\":\"ES256\",\"kid\":\"e1\"}", p2, "0123456789", 10);
    expect_invalid(shortsig, "invalid JWT: the ES256 signature does not verify with key \"e1\"");
    free(shortsig);
    free(spliced);
    free(other);
    free(p2);
    free(t);
}

/* CVE-2022-21449 class: an ECDSA signature whose r and s are zero (or either one) verifies
 * nothing, whatever the verifier underneath does with it; and halves past the order of the
 * curve are refused as well. */
static void test_ecdsa_zero_and_out_of_range_signatures(void **state)
{
    (void)state;
    char *p = claims_with(NOW_S + 60, NULL);
    unsigned char sig[96];
    static const struct {
        const char *header;
        size_t half;
        const char *msg;
    } keys[] = {
        {"{\"alg\":\"ES256\",\"kid\":\"e1\"}", 32, "invalid JWT: the ES256 signature does not verify with key \"e1\""},
        {"{\"alg\":\"ES384\",\"kid\":\"e2\"}", 48, "invalid JWT: the ES384 signature does not verify with key \"e2\""},
    };
    for (size_t k = 0; k < 2; k++) {
        size_t half = keys[k].half;
        /* r = s = 0; r = 0 with s = 1; r = 1 with s = 0; r = s = 2^n - 1, beyond the order. */
        for (int c = 0; c < 4; c++) {
            memset(sig, c == 3 ? 0xff : 0, sizeof sig);
            if (c == 1)
                sig[2 * half - 1] = 1;
            if (c == 2)
                sig[half - 1] = 1;
            char *t = tk_join(keys[k].header, p, sig, 2 * half);
            expect_invalid(t, keys[k].msg);
            free(t);
        }
    }
    free(p);
}

/* OpenSSL takes an ECDSA signature as DER, which has one encoding per number: the JWS halves
 * lose their leading zero bytes and gain one when their top bit is set. Signs tokens until r and
 * s have each come with a leading zero byte and with the top bit set (1 in 256 and 1 in 2 a
 * signature), and every one of them must verify. */
static void test_ecdsa_signatures_of_every_shape(void **state)
{
    (void)state;
    const tk_key *keys[] = {&g_e1, &g_e2};
    for (size_t k = 0; k < 2; k++) {
        size_t half = k == 0 ? 32 : 48;
        enum { R_ZERO = 1, S_ZERO = 2, R_HIGH = 4, S_HIGH = 8, ALL = 15 };
        unsigned seen = 0;
        int n = 0;
        for (; seen != ALL && n < 20000; n++) {
            char extra[32];
            snprintf(extra, sizeof extra, "\"n\":%d", n);
            char *p = claims_with(NOW_S + 60, extra);
            char *t = token_for(keys[k], p);
            const char *sig64 = strrchr(t, '.') + 1;
            unsigned char sig[96];
            size_t sig_len = 0;
            mr_err err = {0};
            assert_int_equal(mr_b64_decode(sig64, strlen(sig64), MR_B64_STRICT, sig, sizeof sig, &sig_len, &err), MR_OK);
            assert_int_equal(sig_len, 2 * half);
            seen |= (sig[0] == 0 ? R_ZERO : 0) | (sig[half] == 0 ? S_ZERO : 0) | (sig[0] & 0x80 ? R_HIGH : 0) |
                    (sig[half] & 0x80 ? S_HIGH : 0);
            expect_ok_on(g_v, t, NULL);
            free(t);
            free(p);
        }
        if (seen != ALL)
            fail_msg("%s: %d signatures did not show every shape (seen %#x)", keys[k]->alg, n, seen);
    }
}

/* Algorithm confusion beyond HS256: RSASSA-PSS names, HMAC of every size, lower-case and
 * padded spellings are never looked up, whichever key the kid names. */
static void test_other_algorithm_names_are_refused(void **state)
{
    (void)state;
    char *p = claims_with(NOW_S + 60, NULL);
    static const char *const names[] = {"PS256", "PS384", "PS512", "HS256", "HS384", "HS512", "rs256", "RS256 ",
                                        "ES256K", "EdDSA", "ES512", ""};
    static const char *const kids[] = {"r1", "e1"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (size_t k = 0; k < 2; k++) {
            char *h = tk_printf("{\"alg\":\"%s\",\"kid\":\"%s\"}", names[i], kids[k]);
            /* The name is refused before any signature is looked at. */
            char *t = tk_join(h, p, "sig", 3);
            char *msg = tk_printf("invalid JWT: alg \"%s\" is not accepted (RS256, RS384, RS512, ES256, ES384 are)",
                                  names[i]);
            expect_invalid(t, msg);
            free(msg);
            free(t);
            free(h);
        }
    }
    free(p);
}

/* jku, x5u, jwk and x5c name or carry keys; none is read. A token signed by another key that
 * brings its own key in the header is refused without any fetch but the configured JWKS, and a
 * genuine token that carries them is verified by kid against the JWKS alone. */
static void test_key_carrying_headers_are_ignored(void **state)
{
    (void)state;
    mem_jwks m = {.doc = g_jwks};
    mr_jwt_verifier *v = verifier_with(&m, 30, 16384);
    char *evil_jwk = tk_jwk(&g_other, NULL);
    char *p = claims_with(NOW_S + 60, NULL);
    char *h = tk_printf("{\"alg\":\"RS256\",\"kid\":\"r1\",\"jku\":\"https://evil.example/jwks.json\","
                        "\"x5u\":\"https://evil.example/cert.pem\",\"jwk\":%s,\"x5c\":[\"MIIB\"]}", evil_jwk);
    char *forged = tk_sign(&g_other, h, p);
    expect_invalid_on(v, forged, "invalid JWT: the RS256 signature does not verify with key \"r1\"", false);
    char *genuine = tk_sign(&g_r1, h, p);
    expect_ok_on(v, genuine, NULL);
    /* mem_fetch asserts the URL is the configured one; it was asked once. */
    assert_int_equal(m.calls, 1);
    free(genuine);
    free(forged);
    free(h);
    free(p);
    free(evil_jwk);
    mr_jwt_verifier_free(v);
}

static void test_token_size_cap(void **state)
{
    (void)state;
    mem_jwks m = {g_jwks, 0};
    mr_jwt_verifier *v = verifier_with(&m, 30, 16384);
    char *huge = malloc(20001);
    assert_non_null(huge);
    memset(huge, 'A', 20000);
    huge[20000] = '\0';
    expect_invalid_on(v, huge, "invalid JWT: the token is longer than 16384 bytes", false);
    /* Refused before any key was fetched. */
    assert_int_equal(m.calls, 0);
    free(huge);
    mr_jwt_verifier_free(v);

    /* The cap is inclusive. */
    char *t = good_token(&g_r1);
    m.calls = 0;
    v = verifier_with(&m, 30, strlen(t));
    expect_ok_on(v, t, NULL);
    mr_jwt_verifier_free(v);
    v = verifier_with(&m, 30, strlen(t) - 1);
    char *msg = tk_printf("invalid JWT: the token is longer than %zu bytes", strlen(t) - 1);
    expect_invalid_on(v, t, msg, false);
    free(msg);
    mr_jwt_verifier_free(v);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_valid_rs256_gives_identity, reset_clock),
        cmocka_unit_test_setup(test_every_accepted_algorithm, reset_clock),
        cmocka_unit_test_setup(test_audience_string_and_list, reset_clock),
        cmocka_unit_test_setup(test_issuer, reset_clock),
        cmocka_unit_test_setup(test_exp_required_and_well_formed, reset_clock),
        cmocka_unit_test_setup(test_time_claims_at_the_leeway_edges, reset_clock),
        cmocka_unit_test_setup(test_zero_leeway, reset_clock),
        cmocka_unit_test_setup(test_required_claims, reset_clock),
        cmocka_unit_test_setup(test_malformed_tokens, reset_clock),
        cmocka_unit_test_setup(test_kid_selection, reset_clock),
        cmocka_unit_test_setup(test_alg_none_is_rejected, reset_clock),
        cmocka_unit_test_setup(test_hmac_with_public_key_is_rejected, reset_clock),
        cmocka_unit_test_setup(test_alg_must_match_the_key, reset_clock),
        cmocka_unit_test_setup(test_bad_signatures, reset_clock),
        cmocka_unit_test_setup(test_token_size_cap, reset_clock),
        cmocka_unit_test_setup(test_ecdsa_zero_and_out_of_range_signatures, reset_clock),
        cmocka_unit_test_setup(test_ecdsa_signatures_of_every_shape, reset_clock),
        cmocka_unit_test_setup(test_other_algorithm_names_are_refused, reset_clock),
        cmocka_unit_test_setup(test_key_carrying_headers_are_ignored, reset_clock),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
