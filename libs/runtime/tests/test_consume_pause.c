/* test_consume_pause.c -- the pause of the consume loop after failed polls: 200 ms, doubling while
 * polls keep failing, never past 5 s, and back to none after a poll that works. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "runtime_internal.h"

static void test_pause_doubles_to_a_ceiling(void **state)
{
    (void)state;
    static const int want[] = {200, 400, 800, 1600, 3200, 5000, 5000};
    int pause = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        pause = mr_runtime_failure_pause(pause);
        assert_int_equal(pause, want[i]);
    }
    /* After a poll that worked the next failure starts over. */
    assert_int_equal(mr_runtime_failure_pause(0), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause_doubles_to_a_ceiling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
