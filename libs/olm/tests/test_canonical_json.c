/* test_canonical_json.c -- canonical JSON against every example of the spec's appendix, the
 * escapes its grammar allows, and the numbers it refuses. */
#include "olm_test.h"

#include <stdlib.h>

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("test JSON does not parse: %s: %s", text, jerr.text);
    return v;
}

static void assert_canonical(const char *input, const char *expected)
{
    json_t *v = parse(input);
    char *out = NULL;
    size_t len = 0;
    mr_err err = {0};
    assert_ok(mr_olm_canonical_json(v, &out, &len, &err), err);
    assert_string_equal(out, expected);
    assert_int_equal(len, strlen(expected));
    free(out);
    json_decref(v);
}

/* The examples of the "Canonical JSON" section of the spec's appendices, in its order. */
static void test_spec_examples(void **state)
{
    (void)state;
    assert_canonical("{}", "{}");
    assert_canonical("{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", "{\"one\":1,\"two\":\"Two\"}");
    assert_canonical("{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", "{\"a\":\"1\",\"b\":\"2\"}");
    assert_canonical("{\"b\":\"2\",\"a\":\"1\"}", "{\"a\":\"1\",\"b\":\"2\"}");
    assert_canonical("{\n    \"auth\": {\n        \"success\": true,\n        \"mxid\": \"@john.doe:example.com\",\n"
                     "        \"profile\": {\n            \"display_name\": \"John Doe\",\n"
                     "            \"three_pids\": [\n                {\n                    \"medium\": \"email\",\n"
                     "                    \"address\": \"john.doe@example.org\"\n                },\n"
                     "                {\n                    \"medium\": \"msisdn\",\n"
                     "                    \"address\": \"123456789\"\n                }\n            ]\n"
                     "        }\n    }\n}",
                     "{\"auth\":{\"mxid\":\"@john.doe:example.com\",\"profile\":{\"display_name\":\"John Doe\","
                     "\"three_pids\":[{\"address\":\"john.doe@example.org\",\"medium\":\"email\"},"
                     "{\"address\":\"123456789\",\"medium\":\"msisdn\"}]},\"success\":true}}");
    assert_canonical("{\n    \"a\": \"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\"\n}",
                     "{\"a\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\"}");
    assert_canonical("{\n    \"\xe6\x9c\xac\": 2,\n    \"\xe6\x97\xa5\": 1\n}",
                     "{\"\xe6\x97\xa5\":1,\"\xe6\x9c\xac\":2}");
    assert_canonical("{\n    \"a\": \"\\u65E5\"\n}", "{\"a\":\"\xe6\x97\xa5\"}");
    assert_canonical("{\n    \"a\": null\n}", "{\"a\":null}");
    assert_canonical("{\n    \"a\": -0,\n    \"b\": 1e10\n}", "{\"a\":0,\"b\":10000000000}");
}

/* The grammar's escapes: only '"', '\\' and control characters; short forms where they exist,
 * \u00XX in lower case otherwise; '/', DEL and U+2028 are written as they are. */
static void test_string_escapes(void **state)
{
    (void)state;
    assert_canonical("[\"q\\\"b\\\\s\\/\"]", "[\"q\\\"b\\\\s/\"]");
    assert_canonical("[\"\\b\\f\\n\\r\\t\"]", "[\"\\b\\f\\n\\r\\t\"]");
    assert_canonical("[\"\\u0001\\u001f\\u001F\\u000b\"]", "[\"\\u0001\\u001f\\u001f\\u000b\"]");
    assert_canonical("[\"\\u007f\\u2028\\u00e9\"]", "[\"\x7f\xe2\x80\xa8\xc3\xa9\"]");
    assert_canonical("{\"\\n\":[true,false,null,[],{}]}", "{\"\\n\":[true,false,null,[],{}]}");
}

/* Keys sort by code point: byte order of their UTF-8, upper case before lower, shorter first. */
static void test_key_order(void **state)
{
    (void)state;
    assert_canonical("{\"b\":1,\"B\":2,\"ba\":3,\"\xc3\xa9\":4,\"z\":5,\"\":6}",
                     "{\"\":6,\"B\":2,\"b\":1,\"ba\":3,\"z\":5,\"\xc3\xa9\":4}");
}

static void test_integer_range(void **state)
{
    (void)state;
    assert_canonical("[9007199254740991,-9007199254740991,0,-5,2.0,-3e2]",
                     "[9007199254740991,-9007199254740991,0,-5,2,-300]");
    const char *refused[] = {"{\"n\":9007199254740992}", "[-9007199254740992]", "{\"f\":1.5}", "[1e300]",
                             "{\"a\":{\"b\":[0.1]}}"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        json_t *v = parse(refused[i]);
        char *out = (char *)"untouched";
        mr_err err = {0};
        assert_int_equal(mr_olm_canonical_json(v, &out, NULL, &err), MR_EINVAL);
        assert_null(out);
        assert_non_null(strstr(err.msg, "canonical JSON"));
        json_decref(v);
    }
    mr_err err = {0};
    char *out = NULL;
    assert_refused(mr_olm_canonical_json(NULL, &out, NULL, &err), MR_EINVAL, err, "no value");
}

/* The number's nearest key is named, so a person can find it. */
static void test_refusal_names_the_key(void **state)
{
    (void)state;
    json_t *v = parse("{\"content\":{\"ratio\":0.5}}");
    char *out = NULL;
    mr_err err = {0};
    assert_refused(mr_olm_canonical_json(v, &out, NULL, &err), MR_EINVAL, err, "\"ratio\"");
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_key_order),
        cmocka_unit_test(test_integer_range),
        cmocka_unit_test(test_refusal_names_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
