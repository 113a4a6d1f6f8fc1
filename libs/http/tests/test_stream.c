/* test_stream.c -- streamed bodies both ways: mr_http_reply_stream on the server, on_data and
 * the stall timeout on the client, over loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_test_server.h"
#include "mindroom/http.h"
#include "mindroom/clock.h"

/* Bounds every wait on the other side so a broken stream fails a test instead of hanging it. */
#define GUARD_S 10

typedef struct fixture {
    http_test_server s;
    bool client_got_first;   /* the client has seen the first part */
    bool release;            /* lets a held stream go on */
    bool saw_first_in_time;  /* the server saw client_got_first before its second part */
    int streams_done;        /* stream contexts released */
} fixture;

/* One streamed body: parts sent in order; `hold` makes the producer wait after the first. */
typedef struct stream {
    fixture *f;
    const char *const *parts;
    size_t next;
    bool hold_for_client;    /* wait for client_got_first */
    bool hold_for_release;   /* wait for release */
    bool cut;                /* end by cutting the connection */
} stream;

static bool wait_flag(fixture *f, const bool *flag)
{
    struct timespec until = mr_clock_after_ms(CLOCK_REALTIME, GUARD_S * 1000L);
    pthread_mutex_lock(&f->s.lock);
    int rc = 0;
    while (!*flag && rc == 0)
        rc = pthread_cond_timedwait(&f->s.cond, &f->s.lock, &until);
    bool ok = *flag;
    pthread_mutex_unlock(&f->s.lock);
    return ok;
}


static long stream_next(void *ctx, char *buf, size_t cap)
{
    stream *s = ctx;
    if (s->next == 1 && s->hold_for_client)
        s->f->saw_first_in_time = wait_flag(s->f, &s->f->client_got_first);
    if (s->next == 1 && s->hold_for_release)
        wait_flag(s->f, &s->f->release);
    const char *part = s->parts[s->next];
    if (!part)
        return s->cut ? -1 : 0;
    s->next++;
    size_t n = strlen(part);
    if (n > cap)
        return -1;
    memcpy(buf, part, n);
    return (long)n;
}

static void stream_done(void *ctx)
{
    stream *s = ctx;
    pthread_mutex_lock(&s->f->s.lock);
    s->f->streams_done++;
    pthread_cond_broadcast(&s->f->s.cond);
    pthread_mutex_unlock(&s->f->s.lock);
    free(s);
}

static const char *const two_parts[] = {"data: one\n\n", "data: two\n\n", NULL};

static mr_http_response *handler(void *ctx, const mr_http_request *req)
{
    fixture *f = ctx;
    if (strcmp(req->path, "/missing") == 0)
        return mr_http_reply_text(404, "no such stream");
    stream *s = calloc(1, sizeof *s);
    s->f = f;
    s->parts = two_parts;
    s->hold_for_client = strcmp(req->path, "/handshake") == 0;
    s->hold_for_release = strcmp(req->path, "/held") == 0;
    s->cut = strcmp(req->path, "/cut") == 0;
    return mr_http_reply_stream(200, "text/event-stream", stream_next, s, stream_done);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    return f ? http_test_server_start(&f->s, handler, f) : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    http_test_server_set(&f->s, &f->release);
    http_test_server_stop(&f->s);
    free(f);
    return 0;
}

/* What the client side collects. */
typedef struct sink {
    fixture *f;
    char data[256];
    size_t len;
    int calls;
    int abort_after;   /* return false on this call (1-based); 0: never */
} sink;

static bool on_data(void *ctx, const char *data, size_t len)
{
    sink *k = ctx;
    assert_true(k->len + len < sizeof k->data);
    memcpy(k->data + k->len, data, len);
    k->len += len;
    k->data[k->len] = '\0';
    k->calls++;
    if (strstr(k->data, "one"))
        http_test_server_set(&k->f->s, &k->f->client_got_first);
    return k->calls != k->abort_after;
}

static mr_code get(fixture *f, const char *path, sink *k, long stall_ms, mr_http_result *res,
                   mr_err *err)
{
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = f->s.base, .timeout_ms = GUARD_S * 1000};
    assert_int_equal(mr_http_client_new(&o, &c, NULL), MR_OK);
    mr_http_call call = {.method = "GET", .url = path, .on_data = on_data, .data_ctx = k,
                         .stall_timeout_ms = stall_ms};
    mr_code rc = mr_http_client_do(c, &call, res, err);
    mr_http_client_free(c);
    return rc;
}

static void wait_streams_done(fixture *f, int n)
{
    struct timespec until = mr_clock_after_ms(CLOCK_REALTIME, GUARD_S * 1000L);
    pthread_mutex_lock(&f->s.lock);
    while (f->streams_done < n && pthread_cond_timedwait(&f->s.cond, &f->s.lock, &until) == 0)
        ;
    int done = f->streams_done;
    pthread_mutex_unlock(&f->s.lock);
    assert_int_equal(done, n);
}

static void test_parts_arrive_as_sent(void **state)
{
    fixture *f = *state;
    sink k = {.f = f};
    mr_http_result res;
    mr_err err = {0};
    assert_int_equal(get(f, "/handshake", &k, 0, &res, &err), MR_OK);
    assert_int_equal(res.status, 200);
    assert_string_equal(mr_http_result_header(&res, "Content-Type"), "text/event-stream");
    /* The second part was produced only after the client had read the first. */
    assert_true(f->saw_first_in_time);
    assert_string_equal(k.data, "data: one\n\ndata: two\n\n");
    assert_int_equal(k.calls, 2);
    assert_int_equal(res.body_len, 0);
    assert_string_equal(res.body, "");
    mr_http_result_clear(&res);
    wait_streams_done(f, 1);
}

static void test_error_status_is_collected(void **state)
{
    fixture *f = *state;
    sink k = {.f = f};
    mr_http_result res;
    assert_int_equal(get(f, "/missing", &k, 0, &res, NULL), MR_OK);
    assert_int_equal(res.status, 404);
    assert_string_equal(res.body, "no such stream");
    assert_int_equal(k.calls, 0);
    mr_http_result_clear(&res);
}

static void test_receiver_aborts(void **state)
{
    fixture *f = *state;
    sink k = {.f = f, .abort_after = 1};
    mr_http_result res;
    mr_err err = {0};
    assert_int_equal(get(f, "/held", &k, 0, &res, &err), MR_EIO);
    assert_non_null(strstr(err.msg, "aborted by the receiver"));
    assert_non_null(strstr(err.msg, "/held"));
    assert_string_equal(k.data, "data: one\n\n");
    mr_http_result_clear(&res);
    http_test_server_set(&f->s, &f->release);
    wait_streams_done(f, 1);
}

static void test_stall_times_out(void **state)
{
    fixture *f = *state;
    sink k = {.f = f};
    mr_http_result res;
    mr_err err = {0};
    assert_int_equal(get(f, "/held", &k, 300, &res, &err), MR_EUNAVAIL);
    char want[128];
    snprintf(want, sizeof want, "GET %s/held: no data for 300 ms (stall timeout)", f->s.base);
    assert_string_equal(err.msg, want);
    assert_string_equal(k.data, "data: one\n\n");
    mr_http_result_clear(&res);
    http_test_server_set(&f->s, &f->release);
    wait_streams_done(f, 1);
}

static void test_cut_stream_is_unavailable(void **state)
{
    fixture *f = *state;
    sink k = {.f = f};
    mr_http_result res;
    mr_err err = {0};
    assert_int_equal(get(f, "/cut", &k, 0, &res, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "/cut"));
    assert_string_equal(k.data, "data: one\n\ndata: two\n\n");
    mr_http_result_clear(&res);
    wait_streams_done(f, 1);
}

static void test_unsent_stream_releases_ctx(void **state)
{
    fixture *f = *state;
    stream *s = calloc(1, sizeof *s);
    s->f = f;
    mr_http_response *r = mr_http_reply_stream(200, "text/plain", stream_next, s, stream_done);
    assert_int_equal(mr_http_response_status(r), 200);
    mr_http_response_free(r);
    assert_int_equal(f->streams_done, 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_parts_arrive_as_sent),
        T(test_error_status_is_collected),
        T(test_receiver_aborts),
        T(test_stall_times_out),
        T(test_cut_stream_is_unavailable),
        T(test_unsent_stream_releases_ctx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
