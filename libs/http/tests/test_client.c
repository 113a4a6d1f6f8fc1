/* test_client.c -- the libcurl client against the libs/http server on loopback: JSON round
 * trips, connection reuse, headers, Retry-After, status checks and transport errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_test_server.h"
#include "mindroom/http.h"

typedef struct fixture {
    http_test_server s;
    bool release;   /* lets /slow return */
} fixture;

static mr_http_response *handler(void *ctx, const mr_http_request *req)
{
    fixture *f = ctx;
    const char *p = req->path;
    if (strcmp(p, "/echo") == 0 || strncmp(p, "/base/", 6) == 0) {
        const char *auth = mr_http_request_header(req, "Authorization");
        const char *ct = mr_http_request_header(req, "Content-Type");
        const char *extra = mr_http_request_header(req, "X-Extra");
        mr_http_response *r = mr_http_reply_json(
            200, json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?}", "method", req->method,
                           "path", req->path, "body", req->body, "content_type", ct, "auth",
                           auth, "ua", mr_http_request_header(req, "User-Agent"), "extra", extra));
        mr_http_response_header(r, "X-Reply", "yes");
        return r;
    }
    if (strcmp(p, "/limited") == 0) {
        mr_http_response *r = mr_http_reply_error(429, "M_LIMIT_EXCEEDED", "slow down");
        mr_http_response_header(r, "Retry-After", "3");
        return r;
    }
    if (strcmp(p, "/dated") == 0) {
        mr_http_response *r = mr_http_reply_text(503, "later\n");
        mr_http_response_header(r, "Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT");
        return r;
    }
    if (strcmp(p, "/text") == 0)
        return mr_http_reply_text(200, "not json");
    if (strcmp(p, "/forbidden") == 0)
        return mr_http_reply_error(403, "M_FORBIDDEN", "no entry for access_token=abc");
    if (strcmp(p, "/empty") == 0)
        return mr_http_reply(204, "text/plain", "", 0);
    if (strcmp(p, "/big") == 0) {
        char big[2048];
        memset(big, 'b', sizeof big);
        return mr_http_reply(200, "text/plain", big, sizeof big);
    }
    if (strcmp(p, "/slow") == 0) {
        pthread_mutex_lock(&f->s.lock);
        while (!f->release)
            pthread_cond_wait(&f->s.cond, &f->s.lock);
        pthread_mutex_unlock(&f->s.lock);
        return mr_http_reply_text(200, "late");
    }
    return mr_http_reply_error(404, "M_NOT_FOUND", "nothing at %s", p);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    *state = f;
    return f ? http_test_server_start(&f->s, handler, f) : -1;
}

static void release_slow(fixture *f)
{
    http_test_server_set(&f->s, &f->release);
}

static int teardown(void **state)
{
    fixture *f = *state;
    release_slow(f);
    http_test_server_stop(&f->s);
    free(f);
    return 0;
}

static mr_http_client *client_for(const fixture *f, const char *token, long timeout_ms)
{
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = f->s.base, .bearer_token = token, .timeout_ms = timeout_ms,
                             .max_response = 1024};
    assert_int_equal(mr_http_client_new(&o, &c, NULL), MR_OK);
    return c;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_json_round_trip_and_reuse(void **state)
{
    fixture *f = *state;
    mr_http_client *c = client_for(f, "sekrit", 0);
    mr_http_result r;
    mr_err err = {0};
    json_t *body = json_pack("{s:s}", "hello", "world");
    assert_int_equal(mr_http_client_json(c, "POST", "/echo", body, &r, &err), MR_OK);
    json_decref(body);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.method, "POST");
    assert_string_equal(jstr(r.json, "method"), "POST");
    assert_string_equal(jstr(r.json, "body"), "{\"hello\":\"world\"}");
    assert_string_equal(jstr(r.json, "content_type"), "application/json");
    assert_string_equal(jstr(r.json, "auth"), "Bearer sekrit");
    assert_string_equal(jstr(r.json, "ua"), "mindroom/" MR_VERSION);
    assert_string_equal(mr_http_result_header(&r, "x-reply"), "yes");
    assert_null(mr_http_result_header(&r, "X-Missing"));
    assert_int_equal(r.new_connections, 1);
    assert_int_equal(mr_http_result_check(&r, NULL), MR_OK);
    mr_http_result_clear(&r);

    /* The second request rides the same connection; GET after POST sends no body. */
    assert_int_equal(mr_http_client_json(c, "GET", "/echo", NULL, &r, &err), MR_OK);
    assert_string_equal(jstr(r.json, "method"), "GET");
    assert_string_equal(jstr(r.json, "body"), "");
    assert_int_equal(r.new_connections, 0);
    mr_http_result_clear(&r);

    /* Absolute URLs bypass base_url; extra headers pass through; PUT and DELETE keep their verb. */
    char abs[128];
    snprintf(abs, sizeof abs, "%s/base/x", f->s.base);
    static const char *const extra[] = {"X-Extra: 42", NULL};
    mr_http_call call = {.method = "PUT", .url = abs, .body = "raw", .body_len = 3,
                         .content_type = "text/plain", .headers = extra};
    assert_int_equal(mr_http_client_do(c, &call, &r, &err), MR_OK);
    assert_string_equal(r.body, "{\"method\":\"PUT\",\"path\":\"/base/x\",\"body\":\"raw\","
                                "\"content_type\":\"text/plain\",\"auth\":\"Bearer sekrit\","
                                "\"ua\":\"mindroom/" MR_VERSION "\",\"extra\":\"42\"}");
    mr_http_result_clear(&r);
    assert_int_equal(mr_http_client_json(c, "DELETE", "echo", NULL, &r, &err), MR_OK);
    assert_string_equal(jstr(r.json, "method"), "DELETE");
    mr_http_result_clear(&r);

    assert_int_equal(mr_http_client_json(c, "GET", "/empty", NULL, &r, &err), MR_OK);
    assert_int_equal(r.status, 204);
    assert_null(r.json);
    assert_string_equal(r.body, "");
    mr_http_result_clear(&r);
    mr_http_client_free(c);
}

static void test_retry_after_and_status_errors(void **state)
{
    fixture *f = *state;
    mr_http_client *c = client_for(f, NULL, 0);
    mr_http_result r;
    mr_err err = {0};
    assert_int_equal(mr_http_client_json(c, "GET", "/limited", NULL, &r, &err), MR_OK);
    assert_int_equal(r.status, 429);
    assert_int_equal(mr_http_result_retry_after_ms(&r), 3000);
    assert_int_equal(mr_http_result_check(&r, &err), MR_EUNAVAIL);
    char want[160];
    snprintf(want, sizeof want, "GET %s/limited: HTTP 429: M_LIMIT_EXCEEDED: slow down", f->s.base);
    assert_string_equal(err.msg, want);
    mr_http_result_clear(&r);

    assert_int_equal(mr_http_client_json(c, "GET", "/dated", NULL, &r, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "HTTP 503 response is not JSON"));
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "later\n");
    assert_int_equal(mr_http_result_retry_after_ms(&r), 0); /* a date in the past */
    mr_http_result_clear(&r);

    assert_int_equal(mr_http_client_json(c, "GET", "/forbidden?access_token=hunter2", NULL, &r, &err), MR_OK);
    assert_int_equal(mr_http_result_retry_after_ms(&r), -1);
    assert_int_equal(mr_http_result_check(&r, &err), MR_EPERM);
    assert_non_null(strstr(err.msg, "/forbidden?access_token=[redacted]: HTTP 403: M_FORBIDDEN"));
    assert_null(strstr(err.msg, "hunter2"));
    assert_null(strstr(err.msg, "abc"));
    mr_http_result_clear(&r);

    assert_int_equal(mr_http_client_json(c, "GET", "/nowhere", NULL, &r, &err), MR_OK);
    assert_int_equal(mr_http_result_check(&r, &err), MR_ENOTFOUND);
    mr_http_result_clear(&r);
    mr_http_client_free(c);
}

static void test_transport_errors(void **state)
{
    fixture *f = *state;
    mr_http_client *c = client_for(f, NULL, 300);
    mr_http_result r;
    mr_err err = {0};
    /* Larger than max_response (1024). */
    assert_int_equal(mr_http_client_json(c, "GET", "/big", NULL, &r, &err), MR_EIO);
    assert_non_null(strstr(err.msg, "/big: response larger than 1024 bytes"));
    mr_http_result_clear(&r);

    /* A handler that never answers within the client's timeout. */
    assert_int_equal(mr_http_client_json(c, "GET", "/slow", NULL, &r, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "GET "));
    assert_non_null(strstr(err.msg, "/slow: Timeout was reached"));
    mr_http_result_clear(&r);
    release_slow(f);
    mr_http_client_free(c);

    /* Nothing listens any more once the server stopped. */
    char url[160];
    snprintf(url, sizeof url, "%s/gone?since=s1&access_token=topsecret", f->s.base);
    mr_http_server_stop(f->s.srv);
    f->s.srv = NULL;
    mr_http_client *lone = NULL;
    assert_int_equal(mr_http_client_new(NULL, &lone, NULL), MR_OK);
    assert_int_equal(mr_http_client_json(lone, "PUT", url, NULL, &r, &err), MR_EUNAVAIL);
    char want[200];
    snprintf(want, sizeof want, "PUT %s/gone?since=s1&access_token=[redacted]: Couldn't connect",
             f->s.base);
    assert_int_equal(strncmp(err.msg, want, strlen(want)), 0);
    assert_null(strstr(err.msg, "topsecret"));
    mr_http_result_clear(&r);
    mr_http_client_free(lone);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_json_round_trip_and_reuse),
        T(test_retry_after_and_status_errors),
        T(test_transport_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
