/* test_jwk.c -- JWKS parsing (RSA and EC keys made by OpenSSL, malformed keys skipped with a
 * reason), the libcurl fetcher against a loopback server, and the verifier's option checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "mindroom/jwt.h"
#include "jwks_server.h"
#include "testkeys.h"

static tk_key g_r1, g_e1, g_e2, g_small;

static int group_setup(void **state)
{
    (void)state;
    tk_rsa(&g_r1, "r1", 2048);
    tk_ec(&g_e1, "e1", "P-256");
    tk_ec(&g_e2, "e2", "P-384");
    tk_rsa(&g_small, "small", 1024);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tk_free(&g_r1);
    tk_free(&g_e1);
    tk_free(&g_e2);
    tk_free(&g_small);
    return 0;
}

static mr_jwt_keyset *parse_ok(const char *doc)
{
    mr_jwt_keyset *ks = NULL;
    mr_err err = {0};
    if (mr_jwt_keyset_parse(doc, strlen(doc), &ks, &err) != MR_OK)
        fail_msg("mr_jwt_keyset_parse: %s", err.msg);
    return ks;
}

/* A string member of a JWK text, copied. */
static char *member(const char *jwk, const char *name)
{
    json_t *j = json_loads(jwk, 0, NULL);
    assert_non_null(j);
    char *v = strdup(json_string_value(json_object_get(j, name)));
    json_decref(j);
    return v;
}

static void test_rsa_and_ec_keys(void **state)
{
    (void)state;
    char *jwks[] = {tk_jwk(&g_r1, "\"use\":\"sig\",\"key_ops\":[\"verify\"]"), tk_jwk(&g_e1, "\"alg\":\"ES256\""),
                    tk_jwk(&g_e2, NULL)};
    char *doc = tk_jwks((const char *const *)jwks, 3);
    mr_jwt_keyset *ks = parse_ok(doc);
    assert_int_equal(mr_jwt_keyset_count(ks), 3);
    assert_int_equal(mr_jwt_keyset_skipped_count(ks), 0);
    const tk_key *keys[] = {&g_r1, &g_e1, &g_e2};
    const char *algs[] = {"RS256 RS384 RS512", "ES256", "ES384"};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(mr_jwt_keyset_kid(ks, i), keys[i]->kid);
        assert_string_equal(mr_jwt_keyset_algs(ks, i), algs[i]);
        /* The key rebuilt from n/e or x/y is the very key OpenSSL generated. */
        char *pem = tk_pem(keys[i]);
        assert_string_equal(mr_jwt_keyset_pem(ks, i), pem);
        free(pem);
    }
    assert_null(mr_jwt_keyset_kid(ks, 3));
    assert_null(mr_jwt_keyset_pem(ks, 3));
    mr_jwt_keyset_free(ks);
    free(doc);
    for (size_t i = 0; i < 3; i++)
        free(jwks[i]);
}

static void test_alg_narrows_an_rsa_key(void **state)
{
    (void)state;
    char *jwk = tk_jwk(&g_r1, "\"alg\":\"RS512\"");
    char *doc = tk_jwks((const char *const *)&jwk, 1);
    mr_jwt_keyset *ks = parse_ok(doc);
    assert_int_equal(mr_jwt_keyset_count(ks), 1);
    assert_string_equal(mr_jwt_keyset_algs(ks, 0), "RS512");
    mr_jwt_keyset_free(ks);
    free(doc);
    free(jwk);
}

static void test_malformed_keys_are_skipped_with_a_reason(void **state)
{
    (void)state;
    char *r1 = tk_jwk(&g_r1, NULL);
    char *e1 = tk_jwk(&g_e1, NULL);
    char *n = member(r1, "n");
    char *x = member(e1, "x");
    char *y = member(e1, "y");
    /* Another y for the same x: the point leaves the curve. The last character carries four bits
     * of data and two zero bits, so swap it for another such character. */
    char *y_off = strdup(y);
    y_off[strlen(y_off) - 1] = y_off[strlen(y_off) - 1] == 'A' ? 'E' : 'A';
    unsigned char zeros[31] = {0};
    char *x31 = tk_b64url(zeros, sizeof zeros);

    char *keys[] = {
        strdup(r1),
        tk_jwk(&g_e2, "\"use\":\"enc\""),
        tk_printf("{\"kty\":\"EC\",\"kid\":\"ops\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"key_ops\":[\"encrypt\"]}", x, y),
        strdup("{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0\"}"),
        tk_printf("{\"kty\":\"EC\",\"kid\":\"es384\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"alg\":\"ES384\"}", x, y),
        tk_printf("{\"kty\":\"RSA\",\"kid\":\"ps\",\"n\":\"%s\",\"e\":\"AQAB\",\"alg\":\"PS256\"}", n),
        strdup("{\"kty\":\"RSA\",\"kid\":\"badn\",\"n\":\"ab*c\",\"e\":\"AQAB\"}"),
        tk_printf("{\"kty\":\"RSA\",\"kid\":\"noe\",\"n\":\"%s\"}", n),
        tk_printf("{\"kty\":\"EC\",\"kid\":\"short\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x31, y),
        tk_printf("{\"kty\":\"EC\",\"kid\":\"offcurve\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y_off),
        tk_jwk(&g_small, NULL),
        tk_printf("{\"kty\":\"EC\",\"kid\":\"p521\",\"crv\":\"P-521\",\"x\":\"%s\",\"y\":\"%s\"}", x, y),
        tk_printf("{\"kty\":\"EC\",\"kid\":\"r1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y),
        strdup("42"),
        tk_printf("{\"kty\":\"EC\",\"kid\":5,\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}", x, y),
        tk_jwk(&g_e1, "\"use\":\"sig\",\"key_ops\":[\"sign\",\"verify\"]"),
        tk_printf("{\"kty\":\"RSA\",\"kid\":\"emptye\",\"n\":\"%s\",\"e\":\"\"}", n),
        tk_printf("{\"kty\":\"RSA\",\"kid\":\"e-is-1\",\"n\":\"%s\",\"e\":\"AQ\"}", n),
        tk_printf("{\"kty\":\"EC\",\"kid\":\"usenum\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"use\":1}", x, y),
        strdup("{\"kid\":\"nokty\"}"),
    };
    size_t nkeys = sizeof keys / sizeof keys[0];
    char *doc = tk_jwks((const char *const *)keys, nkeys);
    mr_jwt_keyset *ks = parse_ok(doc);
    assert_int_equal(mr_jwt_keyset_count(ks), 2);
    assert_string_equal(mr_jwt_keyset_kid(ks, 0), "r1");
    assert_string_equal(mr_jwt_keyset_kid(ks, 1), "e1");

    static const char *const reasons[] = {
        "keys[1] (kid \"e2\"): use is \"enc\", not \"sig\"",
        "keys[2] (kid \"ops\"): key_ops does not hold \"verify\"",
        "keys[3] (kid \"hmac\"): kty \"oct\" is not RSA or EC",
        "keys[4] (kid \"es384\"): alg \"ES384\" is not one this key allows here (ES256)",
        "keys[5] (kid \"ps\"): alg \"PS256\" is not one this key allows here (RS256 RS384 RS512)",
        "keys[6] (kid \"badn\"): \"n\": character 3 is not base64url",
        "keys[7] (kid \"noe\"): \"e\" is missing or not a string",
        "keys[8] (kid \"short\"): P-256 coordinates must be 32 bytes; x has 31, y has 32",
        NULL, /* keys[9]: OpenSSL's own words follow */
        "keys[10] (kid \"small\"): RSA modulus is 1024 bits; 2048 to 8192 are accepted",
        "keys[11] (kid \"p521\"): crv \"P-521\" is not P-256 or P-384",
        "keys[12] (kid \"r1\"): a key with this kid came earlier",
        "keys[13]: not a JSON object",
        "keys[14]: kid is not a string",
        "keys[16] (kid \"emptye\"): \"e\" is empty",
        NULL, /* keys[17] */
        "keys[18] (kid \"usenum\"): use is \"(not a string)\", not \"sig\"",
        "keys[19] (kid \"nokty\"): kty \"\" is not RSA or EC",
    };
    size_t nreasons = sizeof reasons / sizeof reasons[0];
    assert_int_equal(mr_jwt_keyset_skipped_count(ks), nreasons);
    for (size_t i = 0; i < nreasons; i++)
        if (reasons[i])
            assert_string_equal(mr_jwt_keyset_skipped(ks, i), reasons[i]);
    const char *off = mr_jwt_keyset_skipped(ks, 8);
    const char *off_prefix = "keys[9] (kid \"offcurve\"): ";
    assert_memory_equal(off, off_prefix, strlen(off_prefix));
    assert_non_null(strstr(off, "EC"));
    const char *e_one = mr_jwt_keyset_skipped(ks, 15);
    const char *e_one_prefix = "keys[17] (kid \"e-is-1\"): ";
    assert_memory_equal(e_one, e_one_prefix, strlen(e_one_prefix));
    assert_non_null(strstr(e_one, "RSA"));
    assert_null(mr_jwt_keyset_skipped(ks, nreasons));
    mr_jwt_keyset_free(ks);

    free(doc);
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    free(x31);
    free(y_off);
    free(x);
    free(y);
    free(n);
    free(e1);
    free(r1);
}

static void expect_parse_error(const char *doc, const char *msg, bool prefix_only)
{
    mr_jwt_keyset *ks = (mr_jwt_keyset *)&ks; /* must be reset to NULL */
    mr_err err = {0};
    assert_int_equal(mr_jwt_keyset_parse(doc, strlen(doc), &ks, &err), MR_EINVAL);
    assert_null(ks);
    if (prefix_only)
        assert_memory_equal(err.msg, msg, strlen(msg));
    else
        assert_string_equal(err.msg, msg);
}

static void test_documents_that_are_not_key_sets(void **state)
{
    (void)state;
    expect_parse_error("<html>", "JWKS is not JSON: line 1 column 1: ", true);
    expect_parse_error("{\"keys\":[],\"keys\":[]}", "JWKS is not JSON: line 1 column ", true);
    expect_parse_error("[]", "JWKS has no \"keys\" array", false);
    expect_parse_error("{\"keys\":{}}", "JWKS has no \"keys\" array", false);
    expect_parse_error("{\"keys\":[]}", "JWKS has no usable key", false);
    expect_parse_error("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},{\"kid\":\"x\",\"kty\":\"RSA\"}]}",
                       "JWKS has no usable key: keys[0]: kty \"oct\" is not RSA or EC; "
                       "keys[1] (kid \"x\"): \"n\" is missing or not a string",
                       false);
}

static void test_curl_fetch(void **state)
{
    (void)state;
    jwks_server *s = js_start();
    char *jwk = tk_jwk(&g_e1, NULL);
    char *doc = tk_jwks((const char *const *)&jwk, 1);
    js_set(s, 200, doc);
    char *body = NULL;
    size_t len = 0;
    mr_err err = {0};
    assert_int_equal(mr_jwt_fetch_http(NULL, js_url(s), 5000, &body, &len, &err), MR_OK);
    assert_int_equal(len, strlen(doc));
    assert_string_equal(body, doc);
    free(body);
    assert_int_equal(js_requests(s), 1);

    js_set(s, 404, "{\"error\":\"not here\"}");
    assert_int_equal(mr_jwt_fetch_http(NULL, js_url(s), 5000, &body, &len, &err), MR_EUNAVAIL);
    assert_null(body);
    char *want = tk_printf("fetching JWKS from %s: HTTP status 404", js_url(s));
    assert_string_equal(err.msg, want);
    free(want);

    /* The size limit is inclusive. */
    char *big = malloc(MR_JWT_JWKS_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', MR_JWT_JWKS_MAX + 1);
    big[MR_JWT_JWKS_MAX] = '\0';
    js_set(s, 200, big);
    assert_int_equal(mr_jwt_fetch_http(NULL, js_url(s), 5000, &body, &len, &err), MR_OK);
    assert_int_equal(len, MR_JWT_JWKS_MAX);
    free(body);
    big[MR_JWT_JWKS_MAX] = ' ';
    big[MR_JWT_JWKS_MAX + 1] = '\0';
    js_set(s, 200, big);
    assert_int_equal(mr_jwt_fetch_http(NULL, js_url(s), 5000, &body, &len, &err), MR_EUNAVAIL);
    want = tk_printf("fetching JWKS: GET %s: response larger than 1048576 bytes", js_url(s));
    assert_string_equal(err.msg, want);
    free(want);
    free(big);

    /* A server slower than the timeout. */
    js_set(s, 200, doc);
    js_set_delay_ms(s, 1500);
    assert_int_equal(mr_jwt_fetch_http(NULL, js_url(s), 100, &body, &len, &err), MR_EUNAVAIL);
    want = tk_printf("fetching JWKS: GET %s: Timeout was reached: Operation timed out after ", js_url(s));
    assert_memory_equal(err.msg, want, strlen(want));
    free(want);

    /* Nobody listening. */
    js_stop(s);
    assert_int_equal(mr_jwt_fetch_http(NULL, js_url(s), 5000, &body, &len, &err), MR_EUNAVAIL);
    want = tk_printf("fetching JWKS: GET %s: Couldn't connect to server: Failed to connect to 127.0.0.1 port ", js_url(s));
    assert_memory_equal(err.msg, want, strlen(want));
    free(want);

    js_free(s);
    free(doc);
    free(jwk);
}

/* Options mr_jwt_verifier_new refuses: a good set but for one field, and the error it gives. */
typedef enum { OPT_STR, OPT_LONG, OPT_SIZE } opt_kind;
typedef struct bad_option {
    const char *name;
    size_t offset;
    opt_kind kind;
    const char *s;
    long n;
    const char *msg;
} bad_option;
#define BAD_STR(field, v, msg) {#field " = " #v, offsetof(mr_jwt_options, field), OPT_STR, v, 0, msg}
#define BAD_LONG(field, v, msg) {#field " = " #v, offsetof(mr_jwt_options, field), OPT_LONG, NULL, v, msg}
#define BAD_SIZE(field, v, msg) {#field " = " #v, offsetof(mr_jwt_options, field), OPT_SIZE, NULL, v, msg}

static const bad_option bad_options[] = {
    BAD_STR(jwks_url, NULL, "jwks_url is required"),
    BAD_STR(issuer, NULL, "issuer is required"),
    BAD_STR(audience, "", "audience is required"),
    BAD_STR(jwks_url, "http://gw.example/jwks.json",
            "jwks_url \"http://gw.example/jwks.json\" must be https:// (http:// only to a loopback host)"),
    BAD_STR(jwks_url, "ftp://127.0.0.1/jwks.json",
            "jwks_url \"ftp://127.0.0.1/jwks.json\" must be https:// (http:// only to a loopback host)"),
    BAD_STR(jwks_url, "https://user:pw@gw.example/jwks.json", "jwks_url must not carry a user name or password"),
    BAD_STR(jwks_url, "https://gw example/jwks", "jwks_url \"https://gw example/jwks\" is not a URL: Bad hostname"),
    BAD_STR(user_id_claim, "", "user_id_claim is empty; leave it unset to not require a claim"),
    BAD_LONG(leeway_s, -1, "leeway_s is -1; it must be 0 or more"),
    BAD_LONG(cache_ttl_ms, 0,
             "fetch_timeout_ms (5000) and cache_ttl_ms (0) must be positive, stale_grace_ms (300000) 0 or more"),
    BAD_LONG(fetch_timeout_ms, 0,
             "fetch_timeout_ms (0) and cache_ttl_ms (60000) must be positive, stale_grace_ms (300000) 0 or more"),
    BAD_LONG(stale_grace_ms, -1,
             "fetch_timeout_ms (5000) and cache_ttl_ms (60000) must be positive, stale_grace_ms (-1) 0 or more"),
    /* The cooldown between fetches for unknown kids is at least a second. */
    BAD_LONG(refetch_floor_ms, 999, "refetch_floor_ms is 999; it must be at least 1000"),
    BAD_SIZE(max_token_bytes, 0, "max_token_bytes must be positive"),
};

/* good with the case's field set as it says. */
static mr_jwt_options spoiled(mr_jwt_options good, const bad_option *c)
{
    size_t z = (size_t)c->n;
    char *at = (char *)&good + c->offset;
    if (c->kind == OPT_STR)
        memcpy(at, &c->s, sizeof c->s);
    else if (c->kind == OPT_LONG)
        memcpy(at, &c->n, sizeof c->n);
    else
        memcpy(at, &z, sizeof z);
    return good;
}

static void test_options_are_checked(void **state)
{
    (void)state;
    mr_jwt_options o;
    mr_jwt_options_init(&o);
    assert_string_equal(o.email_claim, "email");
    assert_int_equal(o.leeway_s, 30);
    assert_int_equal(o.fetch_timeout_ms, 5000);
    assert_int_equal(o.cache_ttl_ms, 60000);
    assert_int_equal(o.refetch_floor_ms, 10000);
    assert_int_equal(o.stale_grace_ms, 300000);
    assert_int_equal(o.max_token_bytes, 16384);
    o.jwks_url = "https://gw.example/jwks.json";
    o.issuer = "https://gw.example";
    o.audience = "dash";

    for (size_t i = 0; i < sizeof bad_options / sizeof bad_options[0]; i++) {
        const bad_option *c = &bad_options[i];
        mr_jwt_options bad = spoiled(o, c);
        mr_jwt_verifier *v = (mr_jwt_verifier *)&v; /* must be reset to NULL */
        mr_err err = {0};
        mr_code rc = mr_jwt_verifier_new(&bad, &v, &err);
        if (rc != MR_EINVAL || v || strcmp(err.msg, c->msg) != 0)
            fail_msg("%s: got %d, %s verifier, \"%s\"; expected MR_EINVAL, none, \"%s\"", c->name, rc,
                     v ? "a" : "no", err.msg, c->msg);
    }

    /* Each limit itself is taken; plain HTTP is fine to loopback, and nothing is fetched at
     * creation. */
    o.leeway_s = 0;
    o.cache_ttl_ms = 1;
    o.stale_grace_ms = 0;
    o.refetch_floor_ms = 1000;
    o.max_token_bytes = 1;
    static const char *const ok[] = {"https://gw.example/jwks.json", "http://127.0.0.1:1/jwks",
                                     "http://localhost:8080/jwks", "http://[::1]:8080/jwks"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        o.jwks_url = ok[i];
        mr_jwt_verifier *v = NULL;
        mr_err err = {0};
        assert_int_equal(mr_jwt_verifier_new(&o, &v, &err), MR_OK);
        mr_jwt_stats st;
        mr_jwt_verifier_stats(v, &st);
        assert_int_equal(st.fetches, 0);
        assert_int_equal(st.keys, 0);
        mr_jwt_verifier_free(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsa_and_ec_keys),
        cmocka_unit_test(test_alg_narrows_an_rsa_key),
        cmocka_unit_test(test_malformed_keys_are_skipped_with_a_reason),
        cmocka_unit_test(test_documents_that_are_not_key_sets),
        cmocka_unit_test(test_curl_fetch),
        cmocka_unit_test(test_options_are_checked),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
