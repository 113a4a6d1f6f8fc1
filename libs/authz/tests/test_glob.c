/* test_glob.c -- the reply-permission glob matcher: fixed cases, then random patterns checked
 * against libc fnmatch(3), which agrees with Python's fnmatchcase on this alphabet. */
#include "authz_test_util.h"
#include "../src/authz_internal.h"

#include <fnmatch.h>
#include <stdbool.h>
#include <stdlib.h>

static bool glob_match(const char *pattern, const char *s)
{
    mr_authz_glob g;
    mr_err err = {0};
    assert_int_equal(mr_authz_glob_compile(pattern, &g, &err), MR_OK);
    bool m = mr_authz_glob_match(&g, s, strlen(s));
    mr_authz_glob_free(&g);
    return m;
}

typedef struct glob_case {
    const char *pattern;
    const char *s;
    bool match;
} glob_case;

static const glob_case glob_cases[] = {
    {"*", "", true},
    {"*", "@a:b", true},
    {"*:example.com", "@bob:example.com", true},
    {"*:example.com", "@bob:example.com.evil", false},
    {"@admin:*", "@admin:", true},
    {"@admin:*", "@admin", false},
    {"@a?c:x", "@abc:x", true},
    {"@a?c:x", "@ac:x", false},
    {"@[abc]:x", "@b:x", true},
    {"@[abc]:x", "@d:x", false},
    {"@[!abc]:x", "@d:x", true},
    {"@[!abc]:x", "@a:x", false},
    {"@[a-c]x", "@bx", true},
    {"@[a-c]x", "@Bx", false},
    {"[]]", "]", true},
    {"[!]]", "]", false},
    {"[!]]", "a", true},
    {"[a-]", "-", true},
    {"[z-a]", "m", false},
    {"[abc", "[abc", true},  /* unclosed: literal */
    {"a[", "a[", true},
    {"[^a]", "^", true},     /* '^' is a member, not a negation, as in Python */
    {"**a**b", "xxaxxb", true},
    {"**a**b", "xxaxxbxx", false},
    {"*a*b", "ba", false},
    {"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
    {"", "", true},
    {"", "a", false},
    {"abc", "abc", true},
    {"abc", "ABC", false},
};

static void test_glob_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof glob_cases / sizeof glob_cases[0]; i++) {
        const glob_case *c = &glob_cases[i];
        if (glob_match(c->pattern, c->s) != c->match)
            fail_msg("glob '%s' on '%s': want %s", c->pattern, c->s, c->match ? "match" : "no match");
    }
}

static void test_glob_is_pattern(void **state)
{
    (void)state;
    assert_true(mr_authz_glob_is_pattern("*:example.com"));
    assert_true(mr_authz_glob_is_pattern("@a?:x"));
    assert_true(mr_authz_glob_is_pattern("@[ab]:x"));
    assert_false(mr_authz_glob_is_pattern("@alice:example.com"));
}

static uint64_t rng_state;

static void random_string(char *out, size_t max, const char *alphabet)
{
    size_t n = (size_t)(test_rng(&rng_state) % (max + 1)), k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[test_rng(&rng_state) % k];
    out[n] = '\0';
}

static void test_glob_against_fnmatch(void **state)
{
    (void)state;
    const uint64_t seed = test_seed();
    rng_state = seed;
    size_t matches = 0;
    for (size_t i = 0; i < 200000; i++) {
        char pattern[12], s[12];
        random_string(pattern, 10, "ab-*?[]!");
        random_string(s, 10, "ab-]!");
        bool want = fnmatch(pattern, s, FNM_NOESCAPE) == 0;
        if (glob_match(pattern, s) != want)
            fail_msg("MR_AUTHZ_SEED=%llu, case %zu: glob '%s' on '%s': fnmatch says %s", (unsigned long long)seed,
                     i, pattern, s, want ? "match" : "no match");
        matches += want;
    }
    assert_true(matches > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_cases),
        cmocka_unit_test(test_glob_is_pattern),
        cmocka_unit_test(test_glob_against_fnmatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
