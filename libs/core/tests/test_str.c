/* test_str.c -- formatted strings on the heap: exact text, long output, a va_list passed on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
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

/* The limit is on content bytes: reaching it exactly is fine, one more byte is too_big, and the
 * buffer keeps what it had. */
static void test_strbuf_stops_at_its_limit(void **state)
{
    (void)state;
    mr_strbuf b;
    mr_strbuf_init(&b, 8);
    assert_true(mr_strbuf_puts(&b, "12345678"));
    assert_true(mr_strbuf_ok(&b));
    assert_false(mr_strbuf_add(&b, "9", 1));
    assert_true(b.too_big);
    assert_false(b.failed);
    assert_false(mr_strbuf_printf(&b, "%d", 1));
    assert_string_equal(b.s, "12345678");
    assert_int_equal(b.len, 8);
    assert_null(mr_strbuf_take(&b));
    assert_null(b.s);
    assert_int_equal(b.max, 8);
}

/* A length near SIZE_MAX must be refused, not wrap around into a small allocation. */
static void test_strbuf_refuses_sizes_that_would_wrap(void **state)
{
    (void)state;
    mr_strbuf b;
    mr_strbuf_init(&b, SIZE_MAX);
    assert_true(mr_strbuf_puts(&b, "ab"));
    assert_false(mr_strbuf_add(&b, "x", SIZE_MAX - 1));
    assert_true(b.too_big);
    assert_string_equal(b.s, "ab");
    mr_strbuf_free(&b);
    mr_strbuf_init(&b, 0);
    assert_false(mr_strbuf_add(&b, "x", MR_STRBUF_DEFAULT_MAX + 1));
    assert_true(b.too_big);
    mr_strbuf_free(&b);
}

static void test_strbuf_printf_reset_and_take(void **state)
{
    (void)state;
    mr_strbuf b = {0};
    assert_true(mr_strbuf_printf(&b, "%s=%d", "n", 42));
    assert_true(mr_strbuf_printf(&b, "%300s|", "x"));
    assert_int_equal(b.len, 4 + 301);
    assert_memory_equal(b.s, "n=42 ", 5);
    mr_strbuf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.s, "");
    assert_true(mr_strbuf_puts(&b, "again"));
    char *s = mr_strbuf_take(&b);
    assert_string_equal(s, "again");
    free(s);
    assert_null(b.s);
    s = mr_strbuf_take(&b);
    assert_string_equal(s, "");
    free(s);
}

/* The sequences RFC 3629 allows, and each kind it forbids. */
static void test_utf8_seq_len(void **state)
{
    (void)state;
    assert_int_equal(mr_utf8_seq_len("a"), 1);
    assert_int_equal(mr_utf8_seq_len(""), 1);
    assert_int_equal(mr_utf8_seq_len("\xc3\xa9"), 2);          /* U+00E9 */
    assert_int_equal(mr_utf8_seq_len("\xe2\x82\xac"), 3);      /* U+20AC */
    assert_int_equal(mr_utf8_seq_len("\xf0\x9f\x98\x80"), 4);  /* U+1F600 */
    assert_int_equal(mr_utf8_seq_len("\xf4\x8f\xbf\xbf"), 4);  /* U+10FFFF */
    assert_int_equal(mr_utf8_seq_len("\x80"), 0);              /* a continuation byte alone */
    assert_int_equal(mr_utf8_seq_len("\xc0\xaf"), 0);          /* overlong '/' */
    assert_int_equal(mr_utf8_seq_len("\xe0\x80\xaf"), 0);      /* overlong, three bytes */
    assert_int_equal(mr_utf8_seq_len("\xed\xa0\x80"), 0);      /* a surrogate */
    assert_int_equal(mr_utf8_seq_len("\xf4\x90\x80\x80"), 0);  /* past U+10FFFF */
    assert_int_equal(mr_utf8_seq_len("\xe2\x82"), 0);          /* cut short by the NUL */
    assert_int_equal(mr_utf8_seq_len("\xff"), 0);
}

/* s (n bytes) as a JSON string, or NULL when refused. */
static char *json_string_of(const char *s, size_t n, bool upper_hex)
{
    mr_strbuf b = {0};
    bool ok = mr_strbuf_add_json_string(&b, s, n, upper_hex);
    char *out = mr_strbuf_take(&b);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

/* Quotes, backslashes and control characters (a NUL inside the n bytes too) are escaped, with
 * the hex case asked for; UTF-8 and 0x7f are left as they are; bytes that are not UTF-8, or a
 * sequence cut by n, are refused. */
static void test_json_string(void **state)
{
    (void)state;
    static const char text[] = "a\"b\\c\b\f\n\r\t\x1f\x7f caf\xc3\xa9 \xe2\x82\xac\0z";
    char *upper = json_string_of(text, sizeof text - 1, true);
    assert_string_equal(upper, "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u001F\x7f caf\xc3\xa9 \xe2\x82\xac\\u0000z\"");
    char *lower = json_string_of(text, sizeof text - 1, false);
    assert_non_null(strstr(lower, "\\u001f"));
    assert_non_null(strstr(lower, "\\u0000z"));
    free(upper);
    free(lower);
    char *empty = json_string_of("", 0, true);
    assert_string_equal(empty, "\"\"");
    free(empty);
    assert_null(json_string_of("bad \xff", 5, true));
    assert_null(json_string_of("over\xc3", 5, true));
    /* The sequence goes on past n: cut, so refused. */
    assert_null(json_string_of("cut\xc3\xa9", 4, true));
}

/* The word-at-a-time scan stops where a byte-by-byte one does, for every byte value at every
 * position of a run longer than a word, beside printable neighbours and at any length. */
static void test_printable_run(void **state)
{
    (void)state;
    char buf[19];
    for (size_t len = 0; len <= sizeof buf; len++) {
        for (size_t at = 0; at < len; at++) {
            for (int b = 0; b < 256; b++) {
                memset(buf, 'a' + (int)(at % 26), sizeof buf);
                buf[at] = (char)b;
                size_t want = 0;
                while (want < len && (unsigned char)buf[want] >= 0x20 && (unsigned char)buf[want] < 0x7f)
                    want++;
                if (mr_str_printable_run(buf, len) != want)
                    fail_msg("len %zu, byte 0x%02x at %zu: %zu, want %zu", len, b, at,
                             mr_str_printable_run(buf, len), want);
            }
        }
    }
    assert_int_equal(mr_str_printable_run("~ ok\x7f", 5), 4);
    assert_int_equal(mr_str_printable_run("", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printf_formats_exactly),
        cmocka_unit_test(test_printf_grows_past_any_buffer),
        cmocka_unit_test(test_vprintf_takes_a_callers_arguments),
        cmocka_unit_test(test_strbuf_appends_and_grows),
        cmocka_unit_test(test_strbuf_after_failure_appends_nothing),
        cmocka_unit_test(test_strbuf_stops_at_its_limit),
        cmocka_unit_test(test_strbuf_refuses_sizes_that_would_wrap),
        cmocka_unit_test(test_strbuf_printf_reset_and_take),
        cmocka_unit_test(test_utf8_seq_len),
        cmocka_unit_test(test_printable_run),
        cmocka_unit_test(test_json_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
