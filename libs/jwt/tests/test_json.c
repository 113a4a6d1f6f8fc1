/* test_json.c -- the JWT JSON parser (src/json.c) refuses and accepts what jansson does with
 * JSON_REJECT_DUPLICATES, case by case, and reads members, escapes and aud lists right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "../src/jwt_internal.h"

/* What jansson makes of text: 0 an object, 1 not JSON (or a duplicate), 2 JSON but no object. */
static int jansson_verdict(const char *text, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    int verdict = !j ? 1 : json_is_object(j) ? 0 : 2;
    json_decref(j);
    return verdict;
}

static mr_jwt_json_status parse(const char *text, size_t len, mr_jwt_json *o, char *why, size_t cap)
{
    /* The parser reads a copy followed by a NUL, as verify.c hands it the decoded part. */
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    copy[len] = '\0';
    mr_jwt_json_status st = mr_jwt_json_parse(copy, len, o, why, cap);
    free(copy); /* an array's raw text pointed into it: no caller reads one */
    return st;
}

static void agrees(const char *text, size_t len)
{
    mr_jwt_json o;
    char why[128] = "";
    mr_jwt_json_status st = parse(text, len, &o, why, sizeof why);
    int ours = st == MR_JWT_JSON_OK ? 0 : st == MR_JWT_JSON_NOT_OBJECT ? 2 : 1;
    int theirs = jansson_verdict(text, len);
    /* jansson takes only an object or an array at the top; we call any other value not an object. */
    if (theirs == 1 && ours == 2)
        ours = 1;
    if (ours != theirs)
        fail_msg("%.*s: ours %d (%s), jansson %d", (int)len, text, ours, why, theirs);
    if (st == MR_JWT_JSON_OK)
        mr_jwt_json_free(&o);
}

#define AGREES(lit) agrees(lit, sizeof lit - 1)

static void test_refuses_what_jansson_refuses(void **state)
{
    (void)state;
    AGREES("{}");
    AGREES(" {\"a\" : 1 } \n");
    AGREES("[1,2]");
    AGREES("\"s\"");
    AGREES("12");
    AGREES("");
    AGREES("{");
    AGREES("{\"a\":1,}");
    AGREES("{\"a\":1 \"b\":2}");
    AGREES("{\"a\":1}x");
    AGREES("{\"a\":1}{}");
    AGREES("{a:1}");
    AGREES("{'a':1}");
    /* Duplicates: plain, spelled with an escape, and in a nested object. */
    AGREES("{\"exp\":1,\"exp\":2}");
    AGREES("{\"exp\":1,\"\\u0065xp\":2}");
    AGREES("{\"o\":{\"k\":1,\"k\":2}}");
    AGREES("{\"o\":[{\"k\":1,\"k\":2}]}");
    AGREES("{\"o\":{\"k\":1},\"p\":{\"k\":2}}");
    /* Strings. */
    AGREES("{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}");
    AGREES("{\"a\":\"\\x\"}");
    AGREES("{\"a\":\"\\u00e9\\u20AC\\ud83d\\ude00\"}");
    AGREES("{\"a\":\"\\ud83d\"}");
    AGREES("{\"a\":\"\\ud83dx\"}");
    AGREES("{\"a\":\"\\ude00\"}");
    AGREES("{\"a\":\"\\ud83d\\u0041\"}");
    AGREES("{\"a\":\"\\u0000\"}");
    AGREES("{\"a\":\"\\u12\"}");
    AGREES("{\"a\":\"\\u12G4\"}");
    AGREES("{\"a\":\"tab\there\"}");
    AGREES("{\"a\":\"\xc3\xa9\"}");
    AGREES("{\"a\":\"\xc3\"}");
    AGREES("{\"a\":\"\xc0\xaf\"}");
    AGREES("{\"a\":\"\xed\xa0\x80\"}");
    AGREES("{\"a\":\"\xf4\x90\x80\x80\"}");
    AGREES("{\"a\":\"\xff\"}");
    AGREES("{\"a\":\"unterminated}");
    AGREES("{\"a\":\"nul\0inside\"}");
    AGREES("{\"a\":1}\0");
    /* jansson 2.14 skips a NUL after a literal; we refuse it, as a NUL anywhere outside strings. */
    static const char nul_after_literal[] = "{\"a\":[false\0\n,null]}";
    mr_jwt_json o;
    char why[128];
    assert_int_equal(parse(nul_after_literal, sizeof nul_after_literal - 1, &o, why, sizeof why), MR_JWT_JSON_INVALID);
    /* Numbers. */
    AGREES("{\"a\":-0.5e+10}");
    AGREES("{\"a\":1E-3}");
    AGREES("{\"a\":01}");
    AGREES("{\"a\":1.}");
    AGREES("{\"a\":.5}");
    AGREES("{\"a\":-}");
    AGREES("{\"a\":1e}");
    AGREES("{\"a\":+1}");
    AGREES("{\"a\":0x10}");
    AGREES("{\"a\":9223372036854775807}");
    AGREES("{\"a\":9223372036854775808}");
    AGREES("{\"a\":-9223372036854775809}");
    AGREES("{\"a\":1e400}");
    AGREES("{\"a\":1e-400}");
    AGREES("{\"a\":NaN}");
    AGREES("{\"a\":Infinity}");
    /* Literals and containers. */
    AGREES("{\"a\":true,\"b\":false,\"c\":null}");
    AGREES("{\"a\":tru}");
    AGREES("{\"a\":nul}");
    AGREES("{\"a\":[]}");
    AGREES("{\"a\":[1,]}");
    AGREES("{\"a\":[1 2]}");
    AGREES("{\"a\":[[[[{\"b\":[]}]]]]}");
}

/* Nesting: as deep as jansson takes, and one deeper. */
static void test_nesting_limit(void **state)
{
    (void)state;
    for (size_t depth = 2040; depth <= 2056; depth += 8) {
        size_t len = 6 + 2 * depth;
        char *text = malloc(len + 1);
        assert_non_null(text);
        memcpy(text, "{\"a\":", 5);
        memset(text + 5, '[', depth);
        memset(text + 5 + depth, ']', depth);
        text[len - 1] = '}';
        text[len] = '\0';
        agrees(text, len);
        free(text);
    }
}

static void test_reads_members(void **state)
{
    (void)state;
    static const char text[] = "{\"\\u0069ss\":\"https://gw\\/x\",\"exp\":1700000000,\"aud\":[\"a\",\"mind\\u0072oom\",3],"
                               "\"n\":null,\"o\":{\"iss\":\"inner\"},\"e\":\"\\u00e9\\ud83d\\ude00\"}";
    mr_jwt_json o;
    char why[128];
    assert_int_equal(parse(text, sizeof text - 1, &o, why, sizeof why), MR_JWT_JSON_OK);
    assert_string_equal(mr_jwt_json_string(&o, "iss"), "https://gw/x");
    const mr_jwt_json_value *exp = mr_jwt_json_get(&o, "exp");
    assert_non_null(exp);
    assert_int_equal(exp->kind, MR_JWT_JSON_NUMBER);
    assert_true(exp->num == 1700000000.0);
    assert_null(mr_jwt_json_string(&o, "exp"));
    assert_null(mr_jwt_json_get(&o, "missing"));
    assert_int_equal(mr_jwt_json_get(&o, "n")->kind, MR_JWT_JSON_NULL);
    assert_int_equal(mr_jwt_json_get(&o, "o")->kind, MR_JWT_JSON_OBJECT);
    assert_string_equal(mr_jwt_json_string(&o, "e"), "\xc3\xa9\xf0\x9f\x98\x80");
    mr_jwt_json_free(&o);
}

/* aud as a list: a string element matches once unescaped, a number never does. */
static void test_array_has(void **state)
{
    (void)state;
    static const char text[] = "{\"aud\":[\"a\", \"mind\\u0072oom\" ,3,[\"x\"],{\"y\":\"z\"}]}";
    char *copy = strdup(text);
    assert_non_null(copy);
    mr_jwt_json o;
    char why[128];
    assert_int_equal(mr_jwt_json_parse(copy, strlen(copy), &o, why, sizeof why), MR_JWT_JSON_OK);
    const mr_jwt_json_value *aud = mr_jwt_json_get(&o, "aud");
    assert_non_null(aud);
    assert_true(mr_jwt_json_array_has(aud, "mindroom"));
    assert_true(mr_jwt_json_array_has(aud, "a"));
    assert_false(mr_jwt_json_array_has(aud, "3"));
    assert_false(mr_jwt_json_array_has(aud, "x"));
    assert_false(mr_jwt_json_array_has(aud, "z"));
    assert_false(mr_jwt_json_array_has(aud, "mind\\u0072oom"));
    mr_jwt_json_free(&o);
    free(copy);
}

/* A refusal says what and where. */
static void test_error_names_the_place(void **state)
{
    (void)state;
    mr_jwt_json o;
    char why[128];
    static const char dup[] = "{\"kid\":\"a\",\"kid\":\"b\"}";
    assert_int_equal(parse(dup, sizeof dup - 1, &o, why, sizeof why), MR_JWT_JSON_INVALID);
    assert_string_equal(why, "a duplicate member name at character 12");
    static const char bad[] = "{\"a\":\"\\q\"}";
    assert_int_equal(parse(bad, sizeof bad - 1, &o, why, sizeof why), MR_JWT_JSON_INVALID);
    assert_string_equal(why, "an invalid escape at character 8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuses_what_jansson_refuses),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_reads_members),
        cmocka_unit_test(test_array_has),
        cmocka_unit_test(test_error_names_the_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
