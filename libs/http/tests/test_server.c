/* test_server.c -- the HTTP server over real loopback HTTP, driven by libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mindroom/http.h"
#include "peers.h"

typedef struct fixture {
    mr_http_server *srv;
    mr_http_metrics *metrics;
    int calls;           /* handler invocations */
    bool ready;
    char base[64];
} fixture;

typedef mr_tp_http_reply reply;

/* One request; body may be NULL. chunked sends the body without a Content-Length. */
static reply fetch(const char *method, const char *url, const char *body, bool chunked,
                   const char *header)
{
    const char *lines[3] = {0};
    size_t n = 0;
    if (header)
        lines[n++] = header;
    if (chunked)
        lines[n++] = "Transfer-Encoding: chunked";
    reply r;
    mr_err err = {0};
    if (mr_tp_http_do(method, url, lines, body, 20, &r, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return r;
}

static json_t *reply_json(const reply *r)
{
    json_error_t je;
    json_t *j = json_loads(r->body ? r->body : "", 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, r->body ? r->body : "");
    return j;
}

static bool ready_check(void *ctx, char *why, size_t cap)
{
    fixture *f = ctx;
    if (!f->ready)
        snprintf(why, cap, "store not connected");
    return f->ready;
}

/* Echoes the request as JSON; a few paths exercise other replies. */
static mr_http_response *echo(void *ctx, const mr_http_request *req)
{
    fixture *f = ctx;
    mr_http_response *ops = mr_http_ops_reply(req, f->metrics, ready_check, f);
    if (ops)
        return ops;
    __atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST);
    if (strcmp(req->path, "/null") == 0)
        return NULL;
    if (strcmp(req->path, "/created") == 0) {
        mr_http_response *r = mr_http_reply_text(201, "made\n");
        mr_http_response_header(r, "Retry-After", "7");
        return r;
    }
    if (strcmp(req->path, "/fields") == 0 || strcmp(req->path, "/fields-bad") == 0) {
        const char *fields[] = {"plain", "a/b c", "quoted \"q\" \\", "ctl\b\f\n\r\t\x01\x1f\x7f",
                                "utf8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "none", NULL,
                                "last", strcmp(req->path, "/fields") == 0 ? "" : "cut \xc3", NULL};
        mr_http_response *r = mr_http_reply_json_strings(200, fields);
        if (r && !(mr_http_response_header(r, "X-One", "1") && mr_http_response_header(r, "X-Two", "two"))) {
            mr_http_response_free(r);
            return NULL;
        }
        return r;
    }
    json_t *segs = json_array(), *query = json_object();
    for (size_t i = 0; i < req->nsegments; i++)
        json_array_append_new(segs, json_string(req->segments[i]));
    for (size_t i = 0; i < req->nquery; i++)
        json_object_set_new(query, req->query[i].name, json_string(req->query[i].value));
    const char *h = mr_http_request_header(req, "x-test");
    return mr_http_reply_json(200, json_pack("{s:s, s:s, s:o, s:o, s:s, s:I, s:s, s:s?}",
                                             "method", req->method, "path", req->path,
                                             "segments", segs, "query", query,
                                             "body", req->body, "body_len", (json_int_t)req->body_len,
                                             "ip", req->client_ip, "x_test", h));
}

/* A service's own error shape, {"detail": ...}, for the server's answers. */
static mr_http_response *detail_shape(int status, const char *message)
{
    return mr_http_reply_json(status, json_pack("{s:s}", "detail", message));
}

static int setup_shaped(void **state, const char *listen, mr_http_error_fn shape)
{
    fixture *f = calloc(1, sizeof *f);
    f->metrics = mr_http_metrics_new();
    f->ready = true;
    mr_http_server_opts o = {.listen = listen, .max_body = 64, .metrics = f->metrics, .error_reply = shape};
    mr_err err = {0};
    if (mr_http_server_start(&o, echo, f, &f->srv, &err) != MR_OK) {
        print_error("start %s: %s\n", listen, err.msg);
        return -1;
    }
    bool v6 = listen[0] == '[';
    snprintf(f->base, sizeof f->base, "http://%s:%d", v6 ? "[::1]" : "127.0.0.1",
             mr_http_server_port(f->srv));
    *state = f;
    return 0;
}

static int setup_with(void **state, const char *listen)
{
    return setup_shaped(state, listen, NULL);
}

static int setup(void **state)
{
    return setup_with(state, "127.0.0.1:0");
}

static int setup_detail(void **state)
{
    return setup_shaped(state, "127.0.0.1:0", detail_shape);
}

static int teardown(void **state)
{
    fixture *f = *state;
    mr_http_server_stop(f->srv);
    mr_http_metrics_free(f->metrics);
    free(f);
    return 0;
}

static char *url(const fixture *f, const char *path)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s%s", f->base, path);
    return buf;
}

static void test_request_fields(void **state)
{
    fixture *f = *state;
    assert_true(mr_http_server_port(f->srv) > 0);
    reply r = fetch("GET", url(f, "/a/b%2Fc/%21room%3Aex/?x=1&y=hello%20world&z=a+b%2Bc&empty"),
                    NULL, false, "X-Test: yes");
    assert_int_equal(r.status, 200);
    json_t *j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/a/b%2Fc/%21room%3Aex/");
    json_t *segs = json_object_get(j, "segments");
    assert_int_equal(json_array_size(segs), 4);
    assert_string_equal(json_string_value(json_array_get(segs, 0)), "a");
    assert_string_equal(json_string_value(json_array_get(segs, 1)), "b/c");
    assert_string_equal(json_string_value(json_array_get(segs, 2)), "!room:ex");
    assert_string_equal(json_string_value(json_array_get(segs, 3)), "");
    json_t *q = json_object_get(j, "query");
    assert_string_equal(json_string_value(json_object_get(q, "x")), "1");
    assert_string_equal(json_string_value(json_object_get(q, "y")), "hello world");
    assert_string_equal(json_string_value(json_object_get(q, "z")), "a b+c");
    assert_string_equal(json_string_value(json_object_get(q, "empty")), "");
    assert_string_equal(json_string_value(json_object_get(j, "x_test")), "yes");
    assert_string_equal(json_string_value(json_object_get(j, "ip")), "127.0.0.1");
    assert_true(strstr(r.headers, "Content-Type: application/json") != NULL);
    json_decref(j);
    free(r.body);
}

static void test_body_and_limit(void **state)
{
    fixture *f = *state;
    reply r = fetch("POST", url(f, "/post"), "{\"k\":\"v\"}", false, NULL);
    assert_int_equal(r.status, 200);
    json_t *j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "body")), "{\"k\":\"v\"}");
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 9);
    json_decref(j);
    free(r.body);
    assert_int_equal(f->calls, 1);

    /* 65 bytes with a Content-Length: refused before the handler. */
    char big[66];
    memset(big, 'x', 65);
    big[65] = '\0';
    r = fetch("POST", url(f, "/post"), big, false, NULL);
    assert_int_equal(r.status, 413);
    j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "errcode")), "M_TOO_LARGE");
    json_decref(j);
    free(r.body);
    /* The same without a declared length. */
    r = fetch("POST", url(f, "/post"), big, true, NULL);
    assert_int_equal(r.status, 413);
    free(r.body);
    assert_int_equal(f->calls, 1);
    /* Exactly the limit passes. */
    big[64] = '\0';
    r = fetch("PUT", url(f, "/post"), big, true, NULL);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_int_equal(f->calls, 2);
}

static void test_status_headers_and_500(void **state)
{
    fixture *f = *state;
    reply r = fetch("POST", url(f, "/created"), "", false, NULL);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "made\n");
    assert_non_null(strstr(r.headers, "Retry-After: 7\r\n"));
    free(r.body);
    r = fetch("GET", url(f, "/null"), NULL, false, NULL);
    assert_int_equal(r.status, 500);
    json_t *j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "errcode")), "M_UNKNOWN");
    json_decref(j);
    free(r.body);
}

/* mr_http_reply_json_strings writes what json_dumps writes for the same fields (escapes,
 * UTF-8, null), refuses what jansson refuses (a cut UTF-8 sequence: 500), and every header added
 * to a reply is sent. */
static void test_json_strings_as_jansson(void **state)
{
    fixture *f = *state;
    reply r = fetch("GET", url(f, "/fields"), NULL, false, NULL);
    assert_int_equal(r.status, 200);
    json_t *want = json_pack("{s:s, s:s, s:s, s:n, s:s}", "plain", "a/b c", "quoted \"q\" \\",
                             "ctl\b\f\n\r\t\x01\x1f\x7f", "utf8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "none",
                             "last", "");
    char *text = json_dumps(want, JSON_COMPACT);
    assert_string_equal(r.body, text);
    assert_non_null(strstr(r.headers, "X-One: 1\r\n"));
    assert_non_null(strstr(r.headers, "X-Two: two\r\n"));
    assert_non_null(strstr(r.headers, "Content-Type: application/json\r\n"));
    free(text);
    json_decref(want);
    free(r.body);
    r = fetch("GET", url(f, "/fields-bad"), NULL, false, NULL);
    assert_int_equal(r.status, 500);
    free(r.body);
}

/* With error_reply, the server's own 413, 500 and 400 come in the service's shape. */
static void test_errors_in_the_service_shape(void **state)
{
    fixture *f = *state;
    char big[66];
    memset(big, 'x', 65);
    big[65] = '\0';
    const struct {
        const char *method, *path, *body, *header;
        long status;
        const char *detail;
    } cases[] = {
        {"POST", "/post", big, NULL, 413, "request body exceeds 64 bytes"},
        {"GET", "/null", NULL, NULL, 500, "internal error"},
        {"GET", "/x", NULL, "X-Test: a\x01b", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reply r = fetch(cases[i].method, url(f, cases[i].path), cases[i].body, false, cases[i].header);
        assert_int_equal(r.status, cases[i].status);
        json_t *j = reply_json(&r);
        const char *d = json_string_value(json_object_get(j, "detail"));
        assert_non_null(d);
        if (cases[i].detail)
            assert_string_equal(d, cases[i].detail);
        assert_null(json_object_get(j, "errcode"));
        json_decref(j);
        free(r.body);
    }
}

static void test_ops_endpoints(void **state)
{
    fixture *f = *state;
    reply r = fetch("GET", url(f, "/healthz"), NULL, false, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    free(r.body);
    r = fetch("GET", url(f, "/readyz"), NULL, false, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}");
    free(r.body);
    f->ready = false;
    r = fetch("GET", url(f, "/readyz"), NULL, false, NULL);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"status\":\"not ready\",\"reason\":\"store not connected\"}");
    free(r.body);
    r = fetch("POST", url(f, "/healthz"), "", false, NULL);
    assert_int_equal(r.status, 200); /* not an ops request: the echo handler answered */
    free(r.body);
    r = fetch("GET", url(f, "/metrics"), NULL, false, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"));
    /* Counted before this request's own answer. */
    assert_non_null(strstr(r.body, "\nhttp_requests_total{method=\"GET\",code=\"200\"} 2\n"));
    assert_non_null(strstr(r.body, "\nhttp_requests_total{method=\"GET\",code=\"503\"} 1\n"));
    assert_non_null(strstr(r.body, "\nhttp_requests_total{method=\"POST\",code=\"200\"} 1\n"));
    assert_non_null(strstr(r.body, "\nhttp_request_duration_seconds_count{method=\"GET\"} 3\n"));
    free(r.body);
}

static void test_ipv6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0)
        skip();
    close(probe);
    void *st = NULL;
    if (setup_with(&st, "[::1]:0") != 0)
        skip(); /* loopback IPv6 disabled on this host */
    fixture *f = st;
    reply r = fetch("GET", url(f, "/v6"), NULL, false, NULL);
    assert_int_equal(r.status, 200);
    json_t *j = reply_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "ip")), "::1");
    json_decref(j);
    free(r.body);
    teardown(&st);
}

static void test_listen_errors(void **state)
{
    fixture *f = *state;
    mr_http_server *srv = NULL;
    mr_err err = {0};
    mr_http_server_opts o = {.listen = "no-port-here"};
    assert_int_equal(mr_http_server_start(&o, echo, f, &srv, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "\"no-port-here\": expected HOST:PORT"));
    o.listen = "127.0.0.1:99999";
    assert_int_equal(mr_http_server_start(&o, echo, f, &srv, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "port must be 0-65535"));
    char busy[64];
    snprintf(busy, sizeof busy, "127.0.0.1:%d", mr_http_server_port(f->srv));
    o.listen = busy;
    assert_int_equal(mr_http_server_start(&o, echo, f, &srv, &err), MR_EIO);
    assert_non_null(strstr(err.msg, busy));
    assert_non_null(strstr(err.msg, "in use"));
    assert_null(srv);
}

/* A handler blocked while stop runs finishes its request: stop waits for it. */
typedef struct slow {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool entered, release;
} slow;

static mr_http_response *slow_handler(void *ctx, const mr_http_request *req)
{
    (void)req;
    slow *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->entered = true;
    pthread_cond_broadcast(&s->cond);
    while (!s->release)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
    return mr_http_reply_text(200, "finished");
}

typedef struct client_arg {
    char url[64];
    reply r;
} client_arg;

static void *client_thread(void *p)
{
    client_arg *a = p;
    a->r = fetch("GET", a->url, NULL, false, NULL);
    return NULL;
}

static bool connects(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void *stopper(void *p)
{
    mr_http_server_stop(p);
    return NULL;
}

static void test_graceful_stop(void **state)
{
    (void)state;
    slow s = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    mr_http_server *srv = NULL;
    mr_http_server_opts o = {.listen = "127.0.0.1:0"};
    assert_int_equal(mr_http_server_start(&o, slow_handler, &s, &srv, NULL), MR_OK);
    client_arg a = {0};
    snprintf(a.url, sizeof a.url, "http://127.0.0.1:%d/slow", mr_http_server_port(srv));
    pthread_t client, stop;
    pthread_create(&client, NULL, client_thread, &a);
    pthread_mutex_lock(&s.lock);
    while (!s.entered)
        pthread_cond_wait(&s.cond, &s.lock);
    pthread_mutex_unlock(&s.lock);
    int port = mr_http_server_port(srv);
    pthread_create(&stop, NULL, stopper, srv);
    /* Once connections are refused the stop is under way; only then let the handler finish. */
    while (connects(port))
        usleep(1000);
    pthread_mutex_lock(&s.lock);
    s.release = true;
    pthread_cond_broadcast(&s.cond);
    pthread_mutex_unlock(&s.lock);
    pthread_join(stop, NULL);
    pthread_join(client, NULL);
    assert_int_equal(a.r.status, 200);
    assert_string_equal(a.r.body, "finished");
    free(a.r.body);
}

static void test_server_url(void **state)
{
    (void)state;
    static const struct {
        const char *listen, *url;
    } cases[] = {
        {"127.0.0.1:0", "http://127.0.0.1:8008"},  {"0.0.0.0:80", "http://127.0.0.1:8008"},
        {":80", "http://127.0.0.1:8008"},          {"[::]:80", "http://[::1]:8008"},
        {"[::1]:0", "http://[::1]:8008"},          {"hs.example.org:80", "http://hs.example.org:8008"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char url[64];
        mr_http_server_url(cases[i].listen, 8008, url, sizeof url);
        assert_string_equal(url, cases[i].url);
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_url),
        T(test_json_strings_as_jansson),
        T(test_request_fields),
        T(test_body_and_limit),
        T(test_status_headers_and_500),
        cmocka_unit_test_setup_teardown(test_errors_in_the_service_shape, setup_detail, teardown),
        T(test_ops_endpoints),
        T(test_listen_errors),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_graceful_stop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
