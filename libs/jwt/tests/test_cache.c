/* test_cache.c -- the JWKS cache against a real loopback server: TTL, key rotation, the refetch
 * floor under a flood of unknown kids (also from many threads), a server that is down or
 * serves garbage. The clock is the test's; requests are counted at the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/jwt.h"
#include "jwks_server.h"
#include "testkeys.h"

#define NOW_S 1700000000LL
#define ISS "https://gw.example"
#define AUD "mindroom-dashboard"
#define THREADS 8
#define PER_THREAD 25

static tk_key g_k1, g_k2;
static char *g_jwk1, *g_jwk2;
static _Atomic int64_t g_now_ms;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&g_now_ms);
}

static void advance_ms(int64_t ms)
{
    atomic_fetch_add(&g_now_ms, ms);
}

typedef struct fx {
    jwks_server *server;
    mr_jwt_verifier *v;
} fx;

static int group_setup(void **state)
{
    (void)state;
    tk_rsa(&g_k1, "k1", 2048);
    tk_ec(&g_k2, "k2", "P-256");
    g_jwk1 = tk_jwk(&g_k1, NULL);
    g_jwk2 = tk_jwk(&g_k2, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(g_jwk1);
    free(g_jwk2);
    tk_free(&g_k1);
    tk_free(&g_k2);
    return 0;
}

/* Serves the given JWKs with status 200. */
static void serve(jwks_server *s, const char *const *jwks, size_t n)
{
    char *doc = tk_jwks(jwks, n);
    js_set(s, 200, doc);
    free(doc);
}

/* Per test: a server holding k1 and a verifier with the default fetcher, TTL 60 s, floor 10 s. */
static int setup(void **state)
{
    atomic_store(&g_now_ms, NOW_S * 1000);
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->server = js_start();
    serve(f->server, (const char *const *)&g_jwk1, 1);
    mr_jwt_options o;
    mr_jwt_options_init(&o);
    o.jwks_url = js_url(f->server);
    o.issuer = ISS;
    o.audience = AUD;
    o.clock = test_clock;
    mr_err err = {0};
    if (mr_jwt_verifier_new(&o, &f->v, &err) != MR_OK)
        fail_msg("mr_jwt_verifier_new: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    mr_jwt_verifier_free(f->v);
    js_free(f->server);
    free(f);
    return 0;
}

/* A valid token from key k under kid (k's own when NULL), expiring an hour after the test clock. */
static char *token(const tk_key *k, const char *kid)
{
    char *h = tk_printf("{\"alg\":\"%s\",\"kid\":\"%s\"}", k->alg, kid ? kid : k->kid);
    char *p = tk_printf("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":%lld,\"email\":\"a@example.org\"}",
                        (long long)(atomic_load(&g_now_ms) / 1000 + 3600));
    char *t = tk_sign(k, h, p);
    free(h);
    free(p);
    return t;
}

static mr_code verify(fx *f, const tk_key *k, const char *kid, mr_err *err)
{
    char *t = token(k, kid);
    mr_code rc = mr_jwt_verify(f->v, t, NULL, err);
    free(t);
    return rc;
}

static void expect_ok(fx *f, const tk_key *k)
{
    mr_err err = {0};
    mr_code rc = verify(f, k, NULL, &err);
    if (rc != MR_OK)
        fail_msg("token of %s: %s: %s", k->kid, mr_code_str(rc), err.msg);
}

static void expect_unknown_kid(fx *f, const tk_key *k, const char *kid)
{
    mr_err err = {0};
    assert_int_equal(verify(f, k, kid, &err), MR_EAUTH);
    char *want = tk_printf("invalid JWT: no key with kid \"%s\" in the JWKS from %s", kid ? kid : k->kid,
                           js_url(f->server));
    assert_string_equal(err.msg, want);
    free(want);
}

static void expect_stats(fx *f, uint64_t fetches, uint64_t failures, size_t keys)
{
    mr_jwt_stats st;
    mr_jwt_verifier_stats(f->v, &st);
    assert_int_equal(st.fetches, fetches);
    assert_int_equal(st.fetch_failures, failures);
    assert_int_equal(st.keys, keys);
}

/* mr_jwt_verify_nowait(k's token under kid): its code, and whether it said to wait. */
static mr_code verify_nowait(fx *f, const tk_key *k, const char *kid, bool *must_wait)
{
    char *t = token(k, kid);
    mr_err err = {0};
    mr_code rc = mr_jwt_verify_nowait(f->v, t, NULL, must_wait, &err);
    free(t);
    return rc;
}

/* Without waiting: a token whose key is cached is verified, one that needs a fetch (none yet, an
 * unknown kid the floor allows a refetch for, a set past its TTL) is handed back untouched, and
 * one no fetch could help now is refused at once; nothing is ever fetched. */
static void test_nowait_fetches_nothing(void **state)
{
    fx *f = *state;
    bool must_wait = false;
    assert_int_equal(verify_nowait(f, &g_k1, NULL, &must_wait), MR_EUNAVAIL);
    assert_true(must_wait);
    assert_int_equal(js_requests(f->server), 0);
    expect_ok(f, &g_k1);
    assert_int_equal(verify_nowait(f, &g_k1, NULL, &must_wait), MR_OK);
    assert_false(must_wait);
    /* Within the floor an unknown kid is refused here and now. */
    assert_int_equal(verify_nowait(f, &g_k2, NULL, &must_wait), MR_EAUTH);
    assert_false(must_wait);
    advance_ms(10000);
    assert_int_equal(verify_nowait(f, &g_k2, NULL, &must_wait), MR_EUNAVAIL);
    assert_true(must_wait);
    advance_ms(50000);
    assert_int_equal(verify_nowait(f, &g_k1, NULL, &must_wait), MR_EUNAVAIL);
    assert_true(must_wait);
    assert_int_equal(js_requests(f->server), 1);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 2);
    assert_int_equal(verify_nowait(f, &g_k1, NULL, &must_wait), MR_OK);
    assert_false(must_wait);
}

static void test_one_fetch_serves_until_the_ttl(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 20; i++)
        expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 1);
    advance_ms(59999);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 1);
    advance_ms(1);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 2);
    expect_stats(f, 2, 0, 1);
}

static void test_key_rotation(void **state)
{
    fx *f = *state;
    expect_ok(f, &g_k1);
    /* The gateway adds k2. Its kid is unknown to the cache: once the floor since the last
     * fetch has passed, the set is refetched and k2 is accepted. */
    const char *both[] = {g_jwk1, g_jwk2};
    serve(f->server, both, 2);
    expect_unknown_kid(f, &g_k2, NULL);
    assert_int_equal(js_requests(f->server), 1);
    advance_ms(10000);
    expect_ok(f, &g_k2);
    assert_int_equal(js_requests(f->server), 2);
    expect_stats(f, 2, 0, 2);

    /* The gateway drops k1: the cached set still holds it until the TTL ends... */
    serve(f->server, (const char *const *)&g_jwk2, 1);
    advance_ms(59999);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 2);
    /* ...then the new set is fetched and k1 is refused. */
    advance_ms(1);
    expect_unknown_kid(f, &g_k1, NULL);
    assert_int_equal(js_requests(f->server), 3);
    expect_ok(f, &g_k2);
    assert_int_equal(js_requests(f->server), 3);
    expect_stats(f, 3, 0, 1);
}

/* The gateway replaces k1's key but keeps its kid. Each thread keeps its own copy of a key's
 * verify context; a new set's key must never be checked with the copy of the old one, even
 * when the new key lands where the old one was in memory. */
static void test_same_kid_new_key(void **state)
{
    fx *f = *state;
    tk_key k1b;
    tk_rsa(&k1b, g_k1.kid, 2048);
    char *jwk = tk_jwk(&k1b, NULL);
    for (int round = 0; round < 3; round++) {
        const tk_key *now_k = round % 2 ? &k1b : &g_k1, *then_k = round % 2 ? &g_k1 : &k1b;
        serve(f->server, round % 2 ? (const char *const *)&jwk : (const char *const *)&g_jwk1, 1);
        if (round)
            advance_ms(60000);
        expect_ok(f, now_k);
        mr_err err = {0};
        assert_int_equal(verify(f, then_k, NULL, &err), MR_EAUTH);
        assert_string_equal(err.msg, "invalid JWT: the RS256 signature does not verify with key \"k1\"");
    }
    assert_int_equal(js_requests(f->server), 3);
    free(jwk);
    tk_free(&k1b);
}

static void test_unknown_kids_respect_the_floor(void **state)
{
    fx *f = *state;
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 1);
    srandom(42);
    char kid[32];
    /* Within the floor of the first fetch: no request at all. */
    for (int i = 0; i < 100; i++) {
        snprintf(kid, sizeof kid, "x%08lx", random());
        expect_unknown_kid(f, &g_k1, kid);
    }
    assert_int_equal(js_requests(f->server), 1);
    /* Past the floor: the first unknown kid refetches, the 99 after it do not. */
    advance_ms(10000);
    for (int i = 0; i < 100; i++) {
        snprintf(kid, sizeof kid, "y%08lx", random());
        expect_unknown_kid(f, &g_k1, kid);
        advance_ms(99);
    }
    assert_int_equal(js_requests(f->server), 2);
    /* 9.9 s have passed since; 0.1 s more and one more request is allowed. */
    advance_ms(100);
    expect_unknown_kid(f, &g_k1, "z");
    expect_unknown_kid(f, &g_k1, "zz");
    assert_int_equal(js_requests(f->server), 3);
    expect_ok(f, &g_k1);
    expect_stats(f, 3, 0, 1);
}

typedef struct flood_arg {
    fx *f;
    char *tokens[PER_THREAD]; /* even: valid k1 tokens; odd: k1 signatures under unknown kids */
    int ok;                   /* valid tokens accepted */
    int refused;              /* unknown kids refused as invalid */
} flood_arg;

/* Tokens are made before and results checked after, on the main thread. */
static void *flood(void *p)
{
    flood_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        mr_err err = {0};
        mr_code rc = mr_jwt_verify(a->f->v, a->tokens[i], NULL, &err);
        if (i % 2 == 0 && rc == MR_OK)
            a->ok++;
        if (i % 2 == 1 && rc == MR_EAUTH && strstr(err.msg, "no key with kid"))
            a->refused++;
    }
    return NULL;
}

/* All threads verify at once; every valid token must pass and every unknown kid be refused. */
static void run_flood(fx *f)
{
    static flood_arg args[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (flood_arg){.f = f};
        for (int i = 0; i < PER_THREAD; i++) {
            char kid[32];
            snprintf(kid, sizeof kid, "t%d-%d", t, i);
            args[t].tokens[i] = token(&g_k1, i % 2 ? kid : NULL);
        }
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, flood, &args[t]), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(args[t].ok, (PER_THREAD + 1) / 2);
        assert_int_equal(args[t].refused, PER_THREAD / 2);
        for (int i = 0; i < PER_THREAD; i++)
            free(args[t].tokens[i]);
    }
}

static void test_threads_share_one_fetch(void **state)
{
    fx *f = *state;
    /* A slow server, so that threads arrive while the first fetch is under way. */
    js_set_delay_ms(f->server, 200);
    run_flood(f);
    /* The clock did not move: one fetch for the empty cache, none for the unknown kids. */
    assert_int_equal(js_requests(f->server), 1);
    expect_stats(f, 1, 0, 1);
    /* Past the floor, all threads at once again: one refetch between them. */
    advance_ms(10000);
    run_flood(f);
    assert_int_equal(js_requests(f->server), 2);
    expect_stats(f, 2, 0, 1);
}

static void test_server_down(void **state)
{
    fx *f = *state;
    js_stop(f->server);
    mr_err err = {0};
    assert_int_equal(verify(f, &g_k1, NULL, &err), MR_EUNAVAIL);
    char *want = tk_printf("fetching JWKS: GET %s: Couldn't connect to server: Failed to connect to 127.0.0.1 port ",
                           js_url(f->server));
    assert_memory_equal(err.msg, want, strlen(want));
    free(want);
    expect_stats(f, 1, 1, 0);

    /* Within the floor the failure is repeated without another attempt. */
    advance_ms(4000);
    assert_int_equal(verify(f, &g_k1, NULL, &err), MR_EUNAVAIL);
    want = tk_printf("JWKS unavailable (next fetch in 6000 ms): fetching JWKS: GET %s: Couldn't connect",
                     js_url(f->server));
    assert_memory_equal(err.msg, want, strlen(want));
    free(want);
    expect_stats(f, 1, 1, 0);
    advance_ms(6000);
    assert_int_equal(verify(f, &g_k1, NULL, &err), MR_EUNAVAIL);
    expect_stats(f, 2, 2, 0);
}

static void test_recovers_after_errors(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    js_set(f->server, 503, "busy");
    assert_int_equal(verify(f, &g_k1, NULL, &err), MR_EUNAVAIL);
    char *want = tk_printf("fetching JWKS from %s: HTTP status 503", js_url(f->server));
    assert_string_equal(err.msg, want);
    free(want);

    js_set(f->server, 200, "<html>login</html>");
    advance_ms(10000);
    assert_int_equal(verify(f, &g_k1, NULL, &err), MR_EUNAVAIL);
    want = tk_printf("JWKS from %s: JWKS is not JSON: line 1 column 1: ", js_url(f->server));
    assert_memory_equal(err.msg, want, strlen(want));
    free(want);

    js_set(f->server, 200, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}]}");
    advance_ms(10000);
    assert_int_equal(verify(f, &g_k1, NULL, &err), MR_EUNAVAIL);
    want = tk_printf("JWKS from %s: JWKS has no usable key: keys[0] (kid \"h\"): kty \"oct\" is not RSA or EC",
                     js_url(f->server));
    assert_string_equal(err.msg, want);
    free(want);
    assert_int_equal(js_requests(f->server), 3);

    serve(f->server, (const char *const *)&g_jwk1, 1);
    advance_ms(10000);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 4);
    expect_stats(f, 4, 3, 1);
}

/* An outage of the JWKS server: the last good set stays in use for the grace (300 s) past its TTL,
 * retried once per floor, then the keys are unavailable; the server's return ends it. */
static void test_outage_keeps_the_last_set_for_the_grace(void **state)
{
    fx *f = *state;
    expect_ok(f, &g_k1);
    js_set(f->server, 500, "oops");
    advance_ms(10000);
    /* An unknown kid prompts a refetch, which fails; the set in hand still serves k1. */
    expect_unknown_kid(f, &g_k2, NULL);
    assert_int_equal(js_requests(f->server), 2);
    expect_ok(f, &g_k1);
    expect_stats(f, 2, 1, 1);
    /* At its TTL the set is refetched, which fails: k1 is still accepted from the old set. */
    advance_ms(50000);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 3);
    /* Within the floor, no other attempt; past it, one more, still within the grace. */
    advance_ms(4000);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 3);
    advance_ms(6000);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 4);
    expect_stats(f, 4, 3, 1);
    /* Past TTL + grace (60 s + 300 s from the fetch) the old set is no longer used. */
    advance_ms(290000);
    mr_err err = {0};
    assert_int_equal(verify(f, &g_k1, NULL, &err), MR_EUNAVAIL);
    char *want = tk_printf("fetching JWKS from %s: HTTP status 500", js_url(f->server));
    assert_string_equal(err.msg, want);
    free(want);
    assert_int_equal(js_requests(f->server), 5);
    /* The server is back: the next fetch after the floor serves again. */
    serve(f->server, (const char *const *)&g_jwk1, 1);
    advance_ms(10000);
    expect_ok(f, &g_k1);
    assert_int_equal(js_requests(f->server), 6);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_one_fetch_serves_until_the_ttl),
        T(test_nowait_fetches_nothing),
        T(test_key_rotation),
        T(test_same_kid_new_key),
        T(test_unknown_kids_respect_the_floor),
        T(test_threads_share_one_fetch),
        T(test_server_down),
        T(test_recovers_after_errors),
        T(test_outage_keeps_the_last_set_for_the_grace),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
