/* test_str.c -- formatted strings on the heap: exact text, long output, a va_list passed on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mindroom/str.h"

static void test_printf_formats_exactly(void **state)
{
    (void)state;
    char *s = mr_str_printf("%s=%d;%05.1f", "retries", 3, 2.25);
    assert_string_equal(s, "retries=3;002.2");
    free(s);
    s = mr_str_printf("%s", "");
    assert_string_equal(s, "");
    free(s);
}

static void test_printf_grows_past_any_buffer(void **state)
{
    (void)state;
    char *s = mr_str_printf("%5000s|", "end");
    assert_int_equal(strlen(s), 5001);
    assert_string_equal(s + 4997, "end|");
    assert_int_equal(s[0], ' ');
    free(s);
}

static char *relay(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *relay(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = mr_str_vprintf(fmt, ap);
    va_end(ap);
    return s;
}

static void test_vprintf_takes_a_callers_arguments(void **state)
{
    (void)state;
    char *s = relay("%s has %zu keys at line %d", "config.yaml", (size_t)12, 40);
    assert_string_equal(s, "config.yaml has 12 keys at line 40");
    free(s);
}

static void test_strbuf_appends_and_grows(void **state)
{
    (void)state;
    mr_strbuf b = {0};
    mr_strbuf_puts(&b, "key=");
    mr_strbuf_add(&b, "value-and-more", 5);
    assert_false(b.failed);
    assert_string_equal(b.s, "key=value");
    assert_int_equal(b.len, 9);
    for (int i = 0; i < 1000; i++)
        mr_strbuf_puts(&b, "0123456789");
    assert_false(b.failed);
    assert_int_equal(b.len, 9 + 10000);
    assert_int_equal(strlen(b.s), b.len);
    assert_memory_equal(b.s + b.len - 10, "0123456789", 10);
    free(b.s);
}

/* Once an append has failed the buffer stays as it was: the caller checks failed once. */
static void test_strbuf_after_failure_appends_nothing(void **state)
{
    (void)state;
    mr_strbuf b = {0};
    mr_strbuf_puts(&b, "kept");
    b.failed = true;
    mr_strbuf_puts(&b, " dropped");
    assert_string_equal(b.s, "kept");
    assert_int_equal(b.len, 4);
    free(b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printf_formats_exactly),
        cmocka_unit_test(test_printf_grows_past_any_buffer),
        cmocka_unit_test(test_vprintf_takes_a_callers_arguments),
        cmocka_unit_test(test_strbuf_appends_and_grows),
        cmocka_unit_test(test_strbuf_after_failure_appends_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
