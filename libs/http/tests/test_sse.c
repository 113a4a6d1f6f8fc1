/* test_sse.c -- the event-stream parser: fields, comments, multi-line data, line endings, and
 * the same events whatever the pieces the bytes arrive in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mindroom/sse.h"

/* Events as "type|data" lines. */
typedef struct seen {
    char log[1024];
    int n;
    int stop_at;     /* fail on this event (1-based); 0: never */
} seen;

static mr_code on_event(void *ctx, const char *event, const char *data, size_t len, mr_err *err)
{
    seen *s = ctx;
    s->n++;
    assert_int_equal(strlen(data), len);
    size_t used = strlen(s->log);
    snprintf(s->log + used, sizeof s->log - used, "%s|%s\n", event, data);
    if (s->n == s->stop_at)
        return mr_err_set(err, MR_EINVAL, "stop at %d", s->n);
    return MR_OK;
}

/* Feeds text in pieces of `step` bytes (0: all at once) and returns what was seen. */
static seen parse(const char *text, size_t step)
{
    seen s = {0};
    mr_sse p;
    mr_sse_init(&p, 1024, on_event, &s);
    size_t len = strlen(text);
    size_t by = step ? step : len;
    for (size_t at = 0; at < len; at += by) {
        size_t n = len - at < by ? len - at : by;
        assert_int_equal(mr_sse_feed(&p, text + at, n, NULL), MR_OK);
    }
    mr_sse_free(&p);
    return s;
}

static void expect_any_split(const char *text, const char *want)
{
    for (size_t step = 0; step <= strlen(text); step++) {
        seen s = parse(text, step);
        assert_string_equal(s.log, want);
    }
}

static void test_openai_stream(void **state)
{
    (void)state;
    expect_any_split("data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n",
                     "message|{\"a\":1}\nmessage|{\"b\":2}\nmessage|[DONE]\n");
}

static void test_fields(void **state)
{
    (void)state;
    /* Multi-line data joins with '\n'; no space after the colon keeps the value whole; only
     * one leading space is dropped; id, retry and unknown fields are ignored. */
    expect_any_split("event: error\ndata: one\ndata:two\ndata:  three\nid: 7\nretry: 10\nx: y\n\n",
                     "error|one\ntwo\n three\n");
    /* A field name alone has an empty value; an empty data field still dispatches. */
    expect_any_split("data\n\nevent: ping\n\n", "message|\n");
}

static void test_line_endings(void **state)
{
    (void)state;
    expect_any_split("data: a\r\n\r\ndata: b\r\rdata: c\n\n", "message|a\nmessage|b\nmessage|c\n");
    /* A CR LF split across two pieces is one line ending, not two. */
    expect_any_split("data: x\r\ndata: y\r\n\r\n", "message|x\ny\n");
}

static void test_unfinished_event_is_dropped(void **state)
{
    (void)state;
    expect_any_split("data: whole\n\ndata: half", "message|whole\n");
}

static void test_limits_and_stop(void **state)
{
    (void)state;
    mr_sse p;
    seen s = {0};
    mr_err err = {0};
    mr_sse_init(&p, 16, on_event, &s);
    assert_int_equal(mr_sse_feed(&p, "data: 0123456789abcdef\n", 23, &err), MR_EINVAL);
    assert_string_equal(err.msg, "event stream: line longer than 16 bytes");
    mr_sse_free(&p);

    mr_sse_init(&p, 16, on_event, &s);
    const char *many = "data: 0123456789\ndata: 0123456789\n\n";
    assert_int_equal(mr_sse_feed(&p, many, strlen(many), &err), MR_EINVAL);
    assert_string_equal(err.msg, "event stream: event data longer than 16 bytes");
    mr_sse_free(&p);

    seen stop = {.stop_at = 2};
    mr_sse_init(&p, 1024, on_event, &stop);
    const char *three = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(mr_sse_feed(&p, three, strlen(three), &err), MR_EINVAL);
    assert_string_equal(err.msg, "stop at 2");
    assert_int_equal(stop.n, 2);
    mr_sse_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_unfinished_event_is_dropped),
        cmocka_unit_test(test_limits_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
