/* test_b64.c -- base64url encoding (RFC 4648 vectors), strict and lenient decoding, their refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mindroom/b64.h"

static const struct {
    const char *bytes;
    const char *text;
} RFC4648[] = {
    {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

static void test_encode_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof RFC4648 / sizeof RFC4648[0]; i++) {
        char out[16];
        size_t n = strlen(RFC4648[i].bytes);
        assert_int_equal(mr_b64url_encode(RFC4648[i].bytes, n, out), strlen(RFC4648[i].text));
        assert_int_equal(MR_B64URL_LEN(n), strlen(RFC4648[i].text));
        assert_string_equal(out, RFC4648[i].text);
    }
    const unsigned char high[] = {0xfb, 0xff};
    char out[4];
    assert_int_equal(mr_b64url_encode(high, sizeof high, out), 3);
    assert_string_equal(out, "-_8");
}

static void test_decode_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof RFC4648 / sizeof RFC4648[0]; i++) {
        unsigned char out[16] = {0};
        size_t n = 99;
        mr_err err = {0};
        const char *t = RFC4648[i].text;
        assert_int_equal(mr_b64_decode(t, strlen(t), MR_B64_STRICT, out, sizeof out, &n, &err), MR_OK);
        assert_int_equal(n, strlen(RFC4648[i].bytes));
        assert_memory_equal(out, RFC4648[i].bytes, n);
    }
}

static void test_decode_alphabets(void **state)
{
    (void)state;
    unsigned char out[4] = {0};
    size_t n = 0;
    mr_err err = {0};
    assert_int_equal(mr_b64_decode("-_8", 3, MR_B64_STRICT, out, sizeof out, &n, &err), MR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(mr_b64_decode("+/8", 3, MR_B64_STRICT, out, sizeof out, &n, &err), MR_EINVAL);
    assert_string_equal(err.msg, "character 1 is not base64url");
    memset(out, 0, sizeof out);
    assert_int_equal(mr_b64_decode("+/8", 3, MR_B64_STD_TOO, out, sizeof out, &n, &err), MR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(mr_b64_decode("ab=c", 4, MR_B64_STD_TOO, out, sizeof out, &n, &err), MR_EINVAL);
    assert_string_equal(err.msg, "character 3 is not base64");
}

static void test_decode_refusals(void **state)
{
    (void)state;
    unsigned char out[8];
    size_t n = 7;
    mr_err err = {0};
    assert_int_equal(mr_b64_decode("Zm9vY", 5, 0, out, sizeof out, &n, &err), MR_EINVAL);
    assert_string_equal(err.msg, "base64url text of 5 characters cannot be whole bytes");
    assert_int_equal(n, 0);
    /* "Zh" carries a bit past 'f': refused when strict, dropped when not. */
    assert_int_equal(mr_b64_decode("Zh", 2, MR_B64_STRICT, out, sizeof out, &n, &err), MR_EINVAL);
    assert_string_equal(err.msg, "base64url text has non-zero trailing bits");
    assert_int_equal(mr_b64_decode("Zh", 2, 0, out, sizeof out, &n, &err), MR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'f');
}

static void test_decode_counts_past_cap(void **state)
{
    (void)state;
    unsigned char out[4] = {0};
    size_t n = 0;
    mr_err err = {0};
    assert_int_equal(mr_b64_decode("Zm9vYmFy", 8, 0, out, 3, &n, &err), MR_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foo", 3);
    assert_int_equal(out[3], 0);
}

/* Decoding goes four characters at a time while whole groups fit, then one at a time: every
 * length and every cap gives the bytes of mr_b64url_encode's input, and a bad character is named
 * by its position wherever it falls. */
static void test_decode_round_trips_every_length(void **state)
{
    (void)state;
    unsigned char data[64], out[64];
    char text[MR_B64URL_LEN(sizeof data) + 1];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof data; len++) {
        size_t chars = mr_b64url_encode(data, len, text);
        for (size_t cap = len > 5 ? len - 5 : 0; cap <= len; cap++) {
            size_t n = 0;
            mr_err err = {0};
            memset(out, 0xee, sizeof out);
            assert_int_equal(mr_b64_decode(text, chars, MR_B64_STRICT, out, cap, &n, &err), MR_OK);
            assert_int_equal(n, len);
            assert_memory_equal(out, data, cap);
            if (cap < sizeof out)
                assert_int_equal(out[cap], 0xee);
        }
        for (size_t bad = 0; bad < chars; bad += 7) {
            char spoiled[sizeof text];
            memcpy(spoiled, text, chars + 1);
            spoiled[bad] = '+';
            size_t n = 0;
            mr_err err = {0};
            assert_int_equal(mr_b64_decode(spoiled, chars, 0, out, sizeof out, &n, &err), MR_EINVAL);
            char want[64];
            snprintf(want, sizeof want, "character %zu is not base64url", bad + 1);
            assert_string_equal(err.msg, want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_rfc4648_vectors),
        cmocka_unit_test(test_decode_rfc4648_vectors),
        cmocka_unit_test(test_decode_alphabets),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_decode_counts_past_cap),
        cmocka_unit_test(test_decode_round_trips_every_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
