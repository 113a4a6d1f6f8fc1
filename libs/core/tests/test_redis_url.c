/* test_redis_url.c -- the shared redis:// parser: every part read, decoded and defaulted; the
 * password never in display. Refusals and their messages are tested through the bus and the
 * store that use it (libs/bus/tests/test_api.c, libs/store/tests/test_store.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mindroom/redis_url.h"

static void test_parts_are_read_and_decoded(void **state)
{
    (void)state;
    mr_redis_url u;
    mr_err err = {0};
    assert_int_equal(mr_redis_url_parse("redis://ops:p%2Fw%40rd@[::1]:7000/12", "store URL", &u, &err), MR_OK);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 12);
    assert_string_equal(u.user, "ops");
    assert_string_equal(u.password, "p/w@rd");
    assert_string_equal(u.display, "redis://***@[::1]:7000/12");
    assert_null(strstr(u.display, "p%2F"));
    mr_redis_url_free(&u);
    assert_null(u.password);
}

static void test_defaults(void **state)
{
    (void)state;
    mr_redis_url u;
    mr_err err = {0};
    const char *urls[] = {"redis://cache", "redis://cache/", "redis://cache:"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        assert_int_equal(mr_redis_url_parse(urls[i], "bus URL", &u, &err), MR_OK);
        assert_string_equal(u.host, "cache");
        assert_int_equal(u.port, 6379);
        assert_int_equal(u.db, 0);
        assert_null(u.user);
        assert_null(u.password);
        mr_redis_url_free(&u);
    }
    assert_int_equal(mr_redis_url_parse("redis://:only-a-password@10.0.0.7:6380/3", "bus URL", &u, &err), MR_OK);
    assert_null(u.user);
    assert_string_equal(u.password, "only-a-password");
    assert_string_equal(u.host, "10.0.0.7");
    mr_redis_url_free(&u);
}

static void test_refusals_leave_nothing_and_hide_the_password(void **state)
{
    (void)state;
    const char *bad[] = {"redis://", "redis:///3", "http://h", "redis://:hunter2@h:0", "redis://:hunter2@h/x",
                         "redis://:hunter2%zz@h", "redis://h/0#frag", "redis://hunter2@h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mr_redis_url u;
        mr_err err = {0};
        assert_int_equal(mr_redis_url_parse(bad[i], "store URL", &u, &err), MR_EINVAL);
        assert_null(u.host);
        assert_null(u.password);
        assert_null(u.display);
        assert_null(strstr(err.msg, "hunter2"));
        assert_non_null(strstr(err.msg, "store URL"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parts_are_read_and_decoded),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_refusals_leave_nothing_and_hide_the_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
