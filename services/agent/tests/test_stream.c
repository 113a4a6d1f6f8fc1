/* test_stream.c -- the streaming cadence on a fake clock: no sleeping, exact times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "agent_internal.h"

static void test_ramps(void **state)
{
    (void)state;
    assert_int_equal(stream_interval_ms(-5), 500);
    assert_int_equal(stream_interval_ms(0), 500);
    assert_int_equal(stream_interval_ms(900), 770);
    assert_int_equal(stream_interval_ms(7500), 2750);
    assert_int_equal(stream_interval_ms(15000), 5000);
    assert_int_equal(stream_interval_ms(60000), 5000);
    assert_int_equal(stream_char_threshold(0), 48);
    assert_int_equal(stream_char_threshold(300), 52);
    assert_int_equal(stream_char_threshold(7500), 144);
    assert_int_equal(stream_char_threshold(15000), 240);
    assert_int_equal(stream_char_threshold(99999), 240);
}

static const char TEXT[] = "0123456789012345678901234567890123456789012345678901234567890123456789";

static bool push(stream_state *s, size_t n, long long t)
{
    return stream_push(s, TEXT, n, t);
}

static void test_cadence(void **state)
{
    (void)state;
    stream_state s;
    stream_begin(&s, 1000);
    /* The first update waits for enough to read (48 characters) or for the first interval. */
    assert_false(push(&s, 10, 1000));
    assert_true(push(&s, 40, 1100));
    assert_int_equal(s.updates, 1);
    assert_int_equal(s.chars_since, 0);
    /* Then: enough characters, but not 350 ms since the last update. */
    assert_false(push(&s, 10, 1200));
    assert_false(push(&s, 60, 1300));
    /* 360 ms later 71 characters pass the threshold of that moment (54). */
    assert_true(push(&s, 1, 1460));
    /* A trickle waits for the interval: 770 ms at 0.9 s, 920 ms at 1.4 s. */
    assert_false(push(&s, 5, 1900));
    assert_false(push(&s, 1, 2300));
    assert_true(push(&s, 1, 2400));
    assert_int_equal(s.updates, 3);
    /* Nothing new, nothing to show, however long it has been. */
    assert_false(stream_push(&s, "", 0, 9000));
    /* After the ramp: 5 s or 240 characters. */
    assert_true(push(&s, 1, 20000));
    assert_false(push(&s, 1, 24999));
    assert_true(push(&s, 1, 25000));
    assert_false(push(&s, 70, 25400));
    assert_false(push(&s, 70, 25500));
    assert_false(push(&s, 70, 25600));
    assert_true(push(&s, 30, 25700));
    assert_int_equal(s.updates, 6);
    assert_int_equal(s.last_ms, 25700);
}

static void test_first_update_by_time(void **state)
{
    (void)state;
    stream_state s;
    stream_begin(&s, 0);
    assert_false(push(&s, 3, 100));
    assert_false(push(&s, 3, 499));
    assert_true(push(&s, 3, 500));
}

static void test_counts_characters_not_bytes(void **state)
{
    (void)state;
    stream_state s;
    stream_begin(&s, 0);
    char dots[48 * 3 + 1] = "";
    for (int i = 0; i < 47; i++)
        strcat(dots, "\xe2\x8b\xaf");
    /* 47 characters in 141 bytes: not yet. */
    assert_false(stream_push(&s, dots, strlen(dots), 10));
    assert_int_equal(s.chars_since, 47);
    assert_true(stream_push(&s, "\xc3\xa9", 2, 20));
}

/* A stalled model: no chunk comes, and what was held back is due by the clock alone. */
static void test_quiet_stream_is_due_by_time(void **state)
{
    (void)state;
    stream_state s;
    stream_begin(&s, 0);
    assert_true(push(&s, 50, 100));
    /* Enough for the threshold, but within the 350 ms floor: held back. */
    assert_false(push(&s, 60, 200));
    assert_false(stream_due(&s, 400));
    /* The floor has passed by the next tick, with no new chunk. */
    assert_true(stream_due(&s, 460));
    assert_int_equal(s.chars_since, 0);
    assert_int_equal(s.updates, 2);
    /* A trickle held back is due once the interval (0.92 s at 1.4 s) has passed. */
    assert_false(push(&s, 3, 500));
    assert_false(stream_due(&s, 1000));
    assert_false(stream_due(&s, 1300));
    assert_true(stream_due(&s, 1400));
    /* Nothing held back: nothing due, however long the stall. */
    assert_false(stream_due(&s, 60000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ramps),
        cmocka_unit_test(test_cadence),
        cmocka_unit_test(test_first_update_by_time),
        cmocka_unit_test(test_counts_characters_not_bytes),
        cmocka_unit_test(test_quiet_stream_is_due_by_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
