/* test_turn_in.c -- reading turns: every allowed entity is kept, however many; a bad name is
 * refused naming its place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_run.h"

/* A turn of room !r:x whose allowed_entities are names (JSON array text). */
static char *turn_with(const char *names)
{
    char *text = NULL;
    size_t cap = strlen(names) + 512;
    text = malloc(cap);
    assert_non_null(text);
    snprintf(text, cap,
             "{\"v\": 1, \"type\": \"turn\", \"room_id\": \"!r:x\", \"sender\": \"@alice:x\", "
             "\"event\": {\"event_id\": \"$e:x\", \"sender\": \"@alice:x\", \"type\": \"m.room.message\", "
             "\"origin_server_ts\": 1, \"content\": {\"msgtype\": \"m.text\", \"body\": \"hi\"}}, "
             "\"allowed_entities\": %s}",
             names);
    return text;
}

static void test_a_hundred_allowed_entities(void **state)
{
    (void)state;
    char names[2048] = "[\"router\"";
    for (int i = 0; i < 100; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), ", \"a%03d\"", i);
    strcat(names, "]");
    char *text = turn_with(names);
    agent_turn t;
    mr_err err = {0};
    assert_int_equal(agent_turn_parse(text, strlen(text), &t, &err), MR_OK);
    assert_int_equal(t.n_allowed, 101);
    assert_string_equal(t.allowed[0], "router");
    assert_string_equal(t.allowed[100], "a099");
    agent_turn_free(&t);
    free(text);
}

static void test_bad_allowed_entities(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"[\"mind\", \"not a name\"]", "allowed_entities[1]: \"not a name\" does not match ^[a-zA-Z0-9_]+$"},
        {"[\"mind\", 7]", "allowed_entities[1]: not a string"},
        {"{}", "allowed_entities: not an array"},
        {"[\"mind\", \"mind\"]", "allowed_entities[1]: the same as [0]: items must be unique"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = turn_with(cases[i][0]);
        agent_turn t;
        mr_err err = {0};
        assert_int_equal(agent_turn_parse(text, strlen(text), &t, &err), MR_EINVAL);
        assert_string_equal(err.msg, cases[i][1]);
        assert_null(t.root);
        assert_null(t.allowed);
        free(text);
    }
    /* None allowed is a turn nobody answers, not an error. */
    char *text = turn_with("[]");
    agent_turn t;
    mr_err err = {0};
    assert_int_equal(agent_turn_parse(text, strlen(text), &t, &err), MR_OK);
    assert_int_equal(t.n_allowed, 0);
    agent_turn_free(&t);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_hundred_allowed_entities),
        cmocka_unit_test(test_bad_allowed_entities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
