/* test_clock.c -- deadline arithmetic, the two clocks' units, sleeps of at least the time asked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "mindroom/clock.h"

static void test_add_ms_carries_into_seconds(void **state)
{
    (void)state;
    struct timespec t = mr_clock_add_ms((struct timespec){.tv_sec = 10, .tv_nsec = 900000000L}, 250);
    assert_int_equal(t.tv_sec, 11);
    assert_int_equal(t.tv_nsec, 150000000L);
    t = mr_clock_add_ms((struct timespec){.tv_sec = 10, .tv_nsec = 1000}, 3001);
    assert_int_equal(t.tv_sec, 13);
    assert_int_equal(t.tv_nsec, 1001000L);
    t = mr_clock_add_ms((struct timespec){.tv_sec = 7, .tv_nsec = 999999999L}, 0);
    assert_int_equal(t.tv_sec, 7);
    assert_int_equal(t.tv_nsec, 999999999L);
}

static void test_wall_ms_is_epoch_milliseconds(void **state)
{
    (void)state;
    /* Read around it with CLOCK_REALTIME itself: time() reads the coarse clock, which may still
     * show the previous second just after the precise one has moved on (seen flaky). */
    struct timespec b, a;
    clock_gettime(CLOCK_REALTIME, &b);
    long long wall = mr_clock_wall_ms();
    clock_gettime(CLOCK_REALTIME, &a);
    assert_true(wall >= (long long)b.tv_sec * 1000 + b.tv_nsec / 1000000);
    assert_true(wall <= (long long)a.tv_sec * 1000 + a.tv_nsec / 1000000);
}

static void test_after_ms_is_later_on_that_clock(void **state)
{
    (void)state;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct timespec at = mr_clock_after_ms(CLOCK_MONOTONIC, 5000);
    long long delta = ((long long)at.tv_sec - now.tv_sec) * 1000 + (at.tv_nsec - now.tv_nsec) / 1000000;
    assert_true(delta >= 5000);
    assert_true(at.tv_nsec < 1000000000L);
}

static void test_mono_units_agree(void **state)
{
    (void)state;
    long long ms0 = mr_clock_mono_ms();
    long long ns = mr_clock_mono_ns();
    double s = mr_clock_mono_s();
    long long ms1 = mr_clock_mono_ms();
    assert_true(ns / 1000000 >= ms0);
    assert_true(ns / 1000000 <= ms1);
    assert_true(s * 1000.0 >= (double)ms0);
    assert_true(s * 1000.0 <= (double)ms1 + 1.0);
}

static void test_sleep_lasts_at_least_the_time_asked(void **state)
{
    (void)state;
    long long t0 = mr_clock_mono_ms();
    mr_clock_sleep_ms(30);
    long long t1 = mr_clock_mono_ms();
    assert_true(t1 - t0 >= 30);
    mr_clock_sleep_ms(0);
    mr_clock_sleep_ms(-5);
    assert_true(mr_clock_mono_ms() >= t1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_ms_carries_into_seconds),
        cmocka_unit_test(test_wall_ms_is_epoch_milliseconds),
        cmocka_unit_test(test_after_ms_is_later_on_that_clock),
        cmocka_unit_test(test_mono_units_agree),
        cmocka_unit_test(test_sleep_lasts_at_least_the_time_asked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
