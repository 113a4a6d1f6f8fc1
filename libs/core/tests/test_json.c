/* test_json.c -- mr_json_array_has (strings match, anything else in or instead of the array
 * does not) and mr_json_array_pluck (one member of every element, or nothing). */
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

static bool is_string(const json_t *v)
{
    return json_is_string(v);
}

static void test_pluck_takes_the_member_of_every_element(void **state)
{
    (void)state;
    json_t *models = json_pack("[{s: s}, {s: s, s: i}, {s: s}]", "id", "gpt", "id", "stub", "created", 1, "id", "");
    assert_non_null(models);
    json_t *ids = mr_json_array_pluck(models, "id", is_string);
    assert_non_null(ids);
    assert_int_equal(json_array_size(ids), 3);
    assert_string_equal(json_string_value(json_array_get(ids, 0)), "gpt");
    assert_string_equal(json_string_value(json_array_get(ids, 1)), "stub");
    assert_string_equal(json_string_value(json_array_get(ids, 2)), "");
    json_decref(ids);
    json_t *none = json_array();
    ids = mr_json_array_pluck(none, "id", is_string);
    assert_non_null(ids);
    assert_int_equal(json_array_size(ids), 0);
    json_decref(ids);
    json_decref(none);
    json_decref(models);
}

static void test_pluck_is_all_or_nothing(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "[{\"id\": \"gpt\"}, {\"name\": \"stub\"}]", /* an element without the member */
        "[{\"id\": \"gpt\"}, {\"id\": 7}]",           /* one ok refuses */
        "[{\"id\": \"gpt\"}, \"id\"]",                 /* one that is no object */
        "{\"id\": \"gpt\"}",                            /* no array at all */
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *doc = json_loads(docs[i], 0, NULL);
        assert_non_null(doc);
        assert_null(mr_json_array_pluck(doc, "id", is_string));
        json_decref(doc);
    }
    assert_null(mr_json_array_pluck(NULL, "id", is_string));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_a_listed_string),
        cmocka_unit_test(test_entries_that_are_not_strings_never_match),
        cmocka_unit_test(test_not_an_array_holds_nothing),
        cmocka_unit_test(test_pluck_takes_the_member_of_every_element),
        cmocka_unit_test(test_pluck_is_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
