/* test_json.c -- mr_json_array_has: strings match, anything else in or instead of the array
 * does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mindroom/json.h"

static void test_finds_a_listed_string(void **state)
{
    (void)state;
    json_t *a = json_pack("[s, s]", "m.login.dummy", "m.login.registration_token");
    assert_non_null(a);
    assert_true(mr_json_array_has(a, "m.login.registration_token"));
    assert_true(mr_json_array_has(a, "m.login.dummy"));
    assert_false(mr_json_array_has(a, "m.login"));
    assert_false(mr_json_array_has(a, ""));
    assert_false(mr_json_array_has(a, NULL));
    json_decref(a);
}

static void test_entries_that_are_not_strings_never_match(void **state)
{
    (void)state;
    json_t *a = json_pack("[n, i, {s: s}, [s], s]", 1, "verify", "verify", "verify", "verify");
    assert_non_null(a);
    assert_false(mr_json_array_has(a, "1"));
    assert_true(mr_json_array_has(a, "verify"));
    json_array_remove(a, 4);
    assert_false(mr_json_array_has(a, "verify"));
    json_decref(a);
}

static void test_not_an_array_holds_nothing(void **state)
{
    (void)state;
    json_t *o = json_pack("{s: s}", "verify", "verify");
    json_t *s = json_string("verify");
    assert_non_null(o);
    assert_non_null(s);
    assert_false(mr_json_array_has(NULL, "verify"));
    assert_false(mr_json_array_has(o, "verify"));
    assert_false(mr_json_array_has(s, "verify"));
    json_decref(o);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_a_listed_string),
        cmocka_unit_test(test_entries_that_are_not_strings_never_match),
        cmocka_unit_test(test_not_an_array_holds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
