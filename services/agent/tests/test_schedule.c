/* test_schedule.c -- reading "!schedule" arguments: the forms that work, and for every other one
 * an error that says what is wrong and how to write it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "agent_schedule.h"

static void expect_ok(const char *text, long long delay_ms, bool every, const char *task)
{
    schedule_spec s;
    mr_err err = {0};
    if (schedule_parse(text, &s, &err) != MR_OK)
        fail_msg("%s: %s", text, err.msg);
    assert_int_equal(s.delay_ms, delay_ms);
    assert_int_equal(s.every, every);
    assert_string_equal(s.task, task);
}

static void expect_bad(const char *text, const char *why)
{
    schedule_spec s;
    mr_err err = {0};
    assert_int_equal(schedule_parse(text, &s, &err), MR_EINVAL);
    if (!strstr(err.msg, why))
        fail_msg("%s: got \"%s\", wanted \"%s\"", text, err.msg, why);
}

static void test_forms(void **state)
{
    (void)state;
    expect_ok("in 5 minutes check the deploy", 300000, false, "check the deploy");
    expect_ok("  IN 1 second  x", 1000, false, "x");
    expect_ok("in 2h, @coder review", 7200000, false, "@coder review");
    expect_ok("every 1 day water the plants", 86400000, true, "water the plants");
    expect_ok("every 90 s poll", 90000, true, "poll");
}

static void test_bad_input(void **state)
{
    (void)state;
    expect_bad("", "when is missing: write !schedule in <number>");
    expect_bad("tomorrow at 3pm report", "when is missing");
    expect_bad("in five minutes x", "the number must be a whole number from 1 to 1000000");
    expect_bad("in 0 minutes x", "the number must be a whole number");
    expect_bad("in 2000000 seconds x", "the number must be a whole number");
    expect_bad("in 5 fortnights x", "unknown unit 'fortnights'");
    expect_bad("in 5 minutes", "the task is missing");
    expect_bad("every 30 seconds x", "a schedule repeats at most once a minute");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
