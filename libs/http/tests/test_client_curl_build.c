/* test_client_curl_build.c -- what the tree needs of the libcurl `make deps` builds for HTTP and
 * HTTPS only (scripts/build-http-deps.sh): TLS, IPv6, the threaded resolver and zlib (the
 * website tool's CURLOPT_ACCEPT_ENCODING) compiled in, and a proxy from the environment
 * (http_proxy, as curl reads it) still taken by the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "http_test_server.h"
#include "mindroom/http.h"

static void test_features_the_tree_uses_are_built_in(void **state)
{
    (void)state;
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    assert_non_null(v);
    assert_true(v->features & CURL_VERSION_SSL);
    assert_true(v->features & CURL_VERSION_IPV6);
    assert_true(v->features & CURL_VERSION_ASYNCHDNS);
    assert_true(v->features & CURL_VERSION_LIBZ);
    assert_non_null(v->ssl_version);
    assert_non_null(strstr(v->ssl_version, "OpenSSL"));
    bool http = false, https = false;
    for (const char *const *p = v->protocols; *p; p++) {
        http |= strcmp(*p, "http") == 0;
        https |= strcmp(*p, "https") == 0;
    }
    assert_true(http);
    assert_true(https);
}

/* The proxy answers in place of the origin: it sees the request's absolute URL. */
static mr_http_response *proxy(void *ctx, const mr_http_request *req)
{
    (void)ctx;
    return mr_http_reply_text(200, req->path);
}

static void test_proxy_from_the_environment(void **state)
{
    (void)state;
    http_test_server s;
    assert_int_equal(http_test_server_start(&s, proxy, NULL), 0);
    assert_int_equal(setenv("http_proxy", s.base, 1), 0);
    assert_int_equal(unsetenv("no_proxy"), 0);
    assert_int_equal(unsetenv("NO_PROXY"), 0);
    mr_http_client *c = NULL;
    mr_http_client_opts o = {0};
    mr_err err = {0};
    assert_int_equal(mr_http_client_new(&o, &c, &err), MR_OK);
    mr_http_result r;
    mr_http_call call = {.method = "GET", .url = "http://origin.invalid/through/the/proxy"};
    mr_code rc = mr_http_client_do(c, &call, &r, &err);
    assert_int_equal(unsetenv("http_proxy"), 0);
    if (rc != MR_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "http://origin.invalid/through/the/proxy");
    mr_http_result_clear(&r);
    mr_http_client_free(c);
    http_test_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_the_tree_uses_are_built_in),
        cmocka_unit_test(test_proxy_from_the_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
