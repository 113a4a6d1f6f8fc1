/* test_client_tls.c -- the client's ca_file against a real TLS server (openssl s_server with a
 * self-signed certificate on loopback): trusted through that CA file, refused without it, as
 * the platform reaches an API server with its service account's ca.crt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/http.h"
#include "peers.h"

typedef struct tls_peer {
    char dir[256];
    char cert[300];
    char url[64];
    pid_t pid;
} tls_peer;

static int setup(void **state)
{
    tls_peer *t = calloc(1, sizeof *t);
    mr_err err = {0};
    assert_non_null(t);
    *state = t;
    assert_int_equal(mr_tp_mkdtemp("mr-http-tls", t->dir, sizeof t->dir, &err), MR_OK);
    char key[300], log[300];
    snprintf(t->cert, sizeof t->cert, "%s/cert.pem", t->dir);
    snprintf(key, sizeof key, "%s/key.pem", t->dir);
    snprintf(log, sizeof log, "%s/openssl.log", t->dir);
    char *req[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-keyout", key, "-out", t->cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                   "-addext", "subjectAltName=IP:127.0.0.1", NULL};
    int code = -1;
    assert_int_equal(mr_tp_run(req, log, &code, &err), MR_OK);
    assert_int_equal(code, 0);
    int port = 0;
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char accept[16];
    snprintf(accept, sizeof accept, "%d", port);
    /* -www answers GET / with a 200 status page: a real TLS handshake, then HTTP. */
    char *srv[] = {"openssl", "s_server", "-accept", accept, "-cert", t->cert, "-key", key, "-www", "-quiet", NULL};
    assert_int_equal(mr_tp_spawn(srv, log, &t->pid, &err), MR_OK);
    assert_int_equal(mr_tp_wait_port(port, 30000, &err), MR_OK);
    snprintf(t->url, sizeof t->url, "https://127.0.0.1:%d/", port);
    return 0;
}

static int teardown(void **state)
{
    tls_peer *t = *state;
    if (t->pid > 0)
        mr_tp_stop_if_running(t->pid);
    mr_tp_cleanup_dir(t->dir);
    free(t);
    return 0;
}

static mr_code get(const char *ca_file, const char *url, mr_http_result *r, mr_err *err)
{
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.ca_file = ca_file, .timeout_ms = 30000};
    mr_code rc = mr_http_client_new(&o, &c, err);
    if (rc != MR_OK)
        return rc;
    mr_http_call call = {.method = "GET", .url = url};
    rc = mr_http_client_do(c, &call, r, err);
    mr_http_client_free(c);
    return rc;
}

static void test_ca_file_verifies_the_server(void **state)
{
    tls_peer *t = *state;
    mr_http_result r;
    mr_err err = {0};
    assert_int_equal(get(t->cert, t->url, &r, &err), MR_OK);
    assert_int_equal(r.status, 200);
    mr_http_result_clear(&r);
}

static void test_without_the_ca_file_the_server_is_refused(void **state)
{
    tls_peer *t = *state;
    mr_http_result r;
    mr_err err = {0};
    mr_code rc = get(NULL, t->url, &r, &err);
    mr_http_result_clear(&r);
    assert_int_not_equal(rc, MR_OK);
    /* The message names the request, so a person sees which server was not trusted. */
    assert_non_null(strstr(err.msg, t->url));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    /* openssl is part of the machine (OpenSSL is a dependency); without the CLI, skip. */
    if (system("openssl version >/dev/null 2>&1") != 0) {
        printf("SKIP: no openssl command\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        T(test_ca_file_verifies_the_server),
        T(test_without_the_ca_file_the_server_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
