/* test_rate_limit.c -- the sliding-window limits against a real redis-server, with the clock
 * passed in (rate_limit_hit_at), so minute boundaries and refills are exact and nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "peers.h"
#include "prov_internal.h"

/* A clock minute boundary: 2026-11-23T17:27:00Z in ms. */
#define MINUTE_MS (1795454820LL * 1000)

static struct {
    mr_tp_redis redis;
    prov p;
    int subjects;
} S;

static int setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_tp_redis_start(&S.redis, &err) != MR_OK || mr_store_open(S.redis.url, NULL, &S.p.stores[0], &err) != MR_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    S.p.nstores = 1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_store_close(S.p.stores[0]);
    mr_tp_redis_destroy(&S.redis);
    return 0;
}

/* A subject no other test has counted. */
static const char *fresh_subject(char *buf, size_t cap)
{
    snprintf(buf, cap, "@rate%d:localhost", ++S.subjects);
    return buf;
}

/* The Retry-After of one request at now_ms: 0 when admitted. */
static long hit(const rate_rule *rule, const char *subject, long long now_ms)
{
    long retry = -1;
    mr_err err = {0};
    if (rate_limit_hit_at(&S.p, rule, subject, now_ms, &retry, &err) != MR_OK)
        fail_msg("rate_limit_hit_at: %s", err.msg);
    return retry;
}

/* 20 pair/complete requests in the last second of a clock minute and 20 in the first of the
 * next: a fixed window per clock minute admitted all 40; a sliding window admits the first 20. */
static void test_minute_boundary_burst_does_not_fit(void **state)
{
    (void)state;
    char subject[64];
    fresh_subject(subject, sizeof subject);
    int admitted = 0;
    for (int i = 0; i < 40; i++) {
        long long t = MINUTE_MS - 1000 + i * 50; /* 40 requests over 2 s, across the boundary */
        if (hit(&rate_pair_complete, subject, t) == 0)
            admitted++;
    }
    assert_int_equal(admitted, 20);
}

static void test_budget_refills_as_requests_age(void **state)
{
    (void)state;
    char subject[64];
    fresh_subject(subject, sizeof subject);
    long long t0 = MINUTE_MS + 10000;
    for (int i = 0; i < 10; i++)
        assert_int_equal(hit(&rate_pair_start, subject, t0 + i * 1000), 0);
    /* The 11th within the minute: refused until the first leaves the window, 60 s after it. */
    assert_int_equal(hit(&rate_pair_start, subject, t0 + 15000), 45);
    assert_int_equal(hit(&rate_pair_start, subject, t0 + 59999), 1);
    /* Refused requests were not logged: exactly one slot frees per aged request. */
    assert_int_equal(hit(&rate_pair_start, subject, t0 + 60000), 0);
    assert_true(hit(&rate_pair_start, subject, t0 + 60000) > 0);
    assert_int_equal(hit(&rate_pair_start, subject, t0 + 61000), 0);
    /* Another subject has a budget of its own. */
    char other[64];
    assert_int_equal(hit(&rate_pair_start, fresh_subject(other, sizeof other), t0 + 61000), 0);
}

static void test_each_rule_has_the_reference_budget(void **state)
{
    (void)state;
    const struct {
        const rate_rule *rule;
        int budget;
    } rules[] = {{&rate_pair_start, 10}, {&rate_pair_status, 60}, {&rate_pair_complete, 20},
                 {&rate_register_agent, 60}};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        char subject[64];
        fresh_subject(subject, sizeof subject);
        for (int i = 0; i < rules[r].budget; i++)
            if (hit(rules[r].rule, subject, MINUTE_MS + i) != 0)
                fail_msg("%s: request %d of %d refused", rules[r].rule->scope, i + 1, rules[r].budget);
        if (hit(rules[r].rule, subject, MINUTE_MS + rules[r].budget) == 0)
            fail_msg("%s: request %d admitted", rules[r].rule->scope, rules[r].budget + 1);
    }
}

/* Seven spellings of one IPv6 address (and another in its /64) are one subject; an IPv4-mapped
 * IPv6 address is its IPv4 address. */
static void test_addresses_are_canonical(void **state)
{
    (void)state;
    static const char *const one[] = {
        "2001:db8:1:2::1", "2001:DB8:1:2::1", "2001:0db8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2:0:0:0:1",
        "2001:db8:1:2::0:1", "2001:db8:1:2:0::1", "2001:db8:1:2:0000::0001", "2001:db8:1:2:ffff:1:2:3",
    };
    char first[80], s[80];
    rate_address_subject(one[0], first, sizeof first);
    assert_string_equal(first, "2001:db8:1:2::/64");
    for (size_t i = 1; i < sizeof one / sizeof one[0]; i++) {
        rate_address_subject(one[i], s, sizeof s);
        assert_string_equal(s, first);
    }
    rate_address_subject("2001:db8:1:3::1", s, sizeof s);
    assert_string_equal(s, "2001:db8:1:3::/64");
    rate_address_subject("::ffff:192.0.2.7", s, sizeof s);
    assert_string_equal(s, "192.0.2.7");
    rate_address_subject("::FFFF:c000:0207", s, sizeof s);
    assert_string_equal(s, "192.0.2.7");
    rate_address_subject("192.0.2.7", s, sizeof s);
    assert_string_equal(s, "192.0.2.7");

    /* So the spellings share one budget of 20. */
    int admitted = 0;
    for (int i = 0; i < 28; i++) {
        rate_address_subject(one[i % 8], s, sizeof s);
        if (hit(&rate_pair_complete, s, MINUTE_MS + 20000 + i) == 0)
            admitted++;
    }
    assert_int_equal(admitted, 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minute_boundary_burst_does_not_fit),
        cmocka_unit_test(test_budget_refills_as_requests_age),
        cmocka_unit_test(test_each_rule_has_the_reference_budget),
        cmocka_unit_test(test_addresses_are_canonical),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
