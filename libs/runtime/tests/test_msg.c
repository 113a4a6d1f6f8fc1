/* test_msg.c -- bus message envelopes and required fields: what is accepted, and each refusal's words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mindroom/msg.h"

static mr_code load(const char *text, const char *type, json_t **out, mr_err *err)
{
    return mr_msg_load(text, strlen(text), type, out, err);
}

static void test_load_accepts_a_version_1_message_of_its_type(void **state)
{
    (void)state;
    json_t *r = NULL;
    mr_err err = {0};
    assert_int_equal(load("{\"v\":1,\"type\":\"turn\",\"room_id\":\"!a:b.c\"}", "turn", &r, &err), MR_OK);
    assert_string_equal(mr_msg_string(r, "room_id"), "!a:b.c");
    json_decref(r);
}

static void test_load_refusals_name_the_problem(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"{\"v\":1,", "not JSON: string or '}' expected near end of file (line 1, column 7)"},
        {"[1]", "not a JSON object"},
        {"{\"type\":\"turn\"}", "v: expected 1"},
        {"{\"v\":2,\"type\":\"turn\"}", "v: expected 1"},
        {"{\"v\":1}", "type: missing or not a non-empty string"},
        {"{\"v\":1,\"type\":\"\"}", "type: missing or not a non-empty string"},
        {"{\"v\":1,\"type\":\"cleartext_event\"}", "type: expected turn, got \"cleartext_event\""},
        {"{\"v\":1,\"type\":\"turn\",\"type\":\"turn\"}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *r = (json_t *)&r;
        mr_err err = {0};
        assert_int_equal(load(cases[i].text, "turn", &r, &err), MR_EINVAL);
        assert_null(r);
        if (cases[i].msg)
            assert_string_equal(err.msg, cases[i].msg);
        else
            assert_non_null(strstr(err.msg, "duplicate object key"));
    }
}

static void test_fields(void **state)
{
    (void)state;
    json_t *e = json_pack("{s:s, s:s, s:i, s:s, s:s}", "sender", "@alice:example.org", "type", "", "n", 3, "bad",
                          "alice", "room", "!lobby:example.org");
    const char *out = NULL;
    mr_err err = {0};
    assert_null(mr_msg_string(e, "n"));
    assert_null(mr_msg_string(e, "missing"));
    assert_null(mr_msg_string(NULL, "sender"));
    assert_int_equal(mr_msg_need_user(e, "event.", "sender", &out, &err), MR_OK);
    assert_string_equal(out, "@alice:example.org");
    assert_int_equal(mr_msg_need_string(e, "event.", "type", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "event.type: missing or not a non-empty string");
    assert_int_equal(mr_msg_need_string(e, "", "n", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "n: missing or not a non-empty string");
    assert_int_equal(mr_msg_need_user(e, "event.", "bad", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "event.bad: 'alice' is not a valid user ID: it must start with '@'");
    assert_int_equal(mr_msg_need_room_id(e, "", "room", &out, &err), MR_OK);
    assert_string_equal(out, "!lobby:example.org");
    assert_int_equal(mr_msg_need_room_id(e, "", "sender", &out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "sender: '@alice:example.org' is not a valid room ID: it must start with '!'");
    json_decref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_accepts_a_version_1_message_of_its_type),
        cmocka_unit_test(test_load_refusals_name_the_problem),
        cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
