/* test_service.c -- mindroom-upstream-auth as a process against real peers on loopback (redis-server
 * for store and bus, a JWKS server, a fake OAuth provider): health and metrics, forward auth in each
 * mode, the OAuth connect flow end to end with its 401s and 403s, the oauth_api tool through that
 * flow (connect link, connect, API call, refresh), start-up validation (exit 2), and secrets kept
 * out of the log. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_provider.h"
#include "jwks_server.h"
#include "mindroom/oauth.h"
#include "mindroom/tools.h"
#include "peers.h"
#include "tp_check.h"
#include "ua_fixtures.h"

#define TU "MINDROOM_TRUSTED_UPSTREAM_"
#define ALICE "@alice:example.org"
#define BOB "@bob:example.org"
#define CAROL "@carol:example.org"
#define CLIENT_SECRET "gh-client-secret-never-logged"
#define API_KEY "api-key-never-logged"

static mr_tp_redis g_redis;
static mr_store *g_store;
static jwks_server *g_js;
static tk_key g_key;

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check(mr_tp_redis_start(&g_redis, &err), &err);
    unsigned char secret[32];
    for (size_t i = 0; i < sizeof secret; i++)
        sscanf(&UA_TEST_SECRET_HEX[2 * i], "%2hhx", &secret[i]);
    mr_store_options o = {.secret = secret, .secret_len = sizeof secret};
    mr_tp_check(mr_store_open(g_redis.url, &o, &g_store, &err), &err);
    tk_ec(&g_key, "ec-1", "P-256");
    char *jwk = tk_jwk(&g_key, NULL);
    const char *keys[] = {jwk};
    char *set = tk_jwks(keys, 1);
    g_js = js_start();
    js_set(g_js, 200, set);
    free(set);
    free(jwk);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    js_free(g_js);
    tk_free(&g_key);
    mr_store_close(g_store);
    mr_tp_redis_destroy(&g_redis);
    return 0;
}

typedef struct svc_fixture {
    ua_proc proc;
    fake_provider *fp;
    jwks_server *js;  /* a test's own JWKS server, when it stalls one */
} svc_fixture;

static int setup(void **state)
{
    *state = calloc(1, sizeof(svc_fixture));
    return 0;
}

/* Also after a failed assertion: no service or provider outlives its test. */
static int teardown(void **state)
{
    svc_fixture *f = *state;
    ua_proc_kill(&f->proc);
    fp_stop(f->fp);
    if (f->js)
        js_free(f->js);
    free(f);
    return 0;
}

static void header_mode_env(void)
{
    ua_proc_env(g_redis.url);
    setenv(TU "AUTH_ENABLED", "true", 1);
    setenv(TU "USER_ID_HEADER", "X-MindRoom-User-Id", 1);
    setenv(TU "EMAIL_HEADER", "X-MindRoom-User-Email", 1);
    setenv(TU "MATRIX_USER_ID_HEADER", "X-MindRoom-Matrix-User-Id", 1);
    setenv(TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "@{localpart}:example.org", 1);
}

/* The service of this test started (with the environment set so far). */
static ua_proc *service_start(void **state)
{
    ua_proc *p = &((svc_fixture *)*state)->proc;
    ua_proc_start(p);
    return p;
}

/* The fake GitHub of this test, started, and the service's variables naming it. */
static fake_provider *provider_start(void **state)
{
    fake_provider *fp = ((svc_fixture *)*state)->fp = fp_start("gh-client", CLIENT_SECRET);
    setenv("MINDROOM_OAUTH_PROVIDERS", "github", 1);
    setenv("MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL", fp_authorize_url(fp), 1);
    setenv("MINDROOM_OAUTH_GITHUB_TOKEN_URL", fp_token_url(fp), 1);
    setenv("MINDROOM_OAUTH_GITHUB_CLIENT_ID", "gh-client", 1);
    setenv("MINDROOM_OAUTH_GITHUB_CLIENT_SECRET", CLIENT_SECRET, 1);
    return fp;
}

/* The service in header mode with the fake GitHub (*fp) as its OAuth provider, started. */
static ua_proc *oauth_service_start(void **state, fake_provider **fp)
{
    header_mode_env();
    *fp = provider_start(state);
    return service_start(state);
}

static void get(const ua_proc *p, const char *path, const char *const *headers, mr_http_result *out)
{
    ua_http("GET", p->port, path, headers, out);
}

static void expect_status(const ua_proc *p, const char *path, const char *const *headers, long status,
                          const char *body)
{
    mr_http_result r = {0};
    get(p, path, headers, &r);
    if (r.status != status || (body && strcmp(r.body, body) != 0))
        fail_msg("GET %s: got %ld %s, expected %ld %s", path, r.status, r.body, status, body ? body : "");
    if (status == 401)
        assert_string_equal(mr_http_result_header(&r, "WWW-Authenticate"), "Bearer realm=\"mindroom\"");
    mr_http_result_clear(&r);
}

static void assert_log_lacks(const ua_proc *p, const char *secret)
{
    char *log = ua_proc_log(p);
    if (strstr(log, secret))
        fail_msg("the log holds \"%s\":\n%s", secret, log);
    free(log);
}

static const char *const ALICE_HEADERS[] = {"X-MindRoom-User-Id: u-alice", "X-MindRoom-User-Email: alice@example.com",
                                            NULL};
static const char *const BOB_HEADERS[] = {"X-MindRoom-User-Id: u-bob", "X-MindRoom-User-Email: bob@example.com",
                                          NULL};

/* A link made for Alice: without an identity it is 401, for Bob 403, and neither uses it up. */
static void expect_refused_to_others(const ua_proc *p, const char *path)
{
    expect_status(p, path, NULL, 401, "{\"detail\":\"Missing trusted upstream identity header: X-MindRoom-User-Id\"}");
    expect_status(p, path, BOB_HEADERS, 403,
                  "{\"detail\":\"Your identity does not match the Matrix user this link was made for\"}");
}

static void test_ops_endpoints_and_metrics(void **state)
{
    header_mode_env();
    ua_proc *p = service_start(state);
    expect_status(p, "/healthz", NULL, 200, "{\"status\":\"ok\"}");
    expect_status(p, "/readyz", NULL, 200, "{\"status\":\"ready\"}");
    expect_status(p, "/auth/verify", ALICE_HEADERS, 200, NULL);
    expect_status(p, "/auth/verify", NULL, 401, NULL);
    mr_http_result r = {0};
    get(p, "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "upstream_auth_decisions_total{method=\"trusted_upstream\",code=\"200\"} 1\n"));
    assert_non_null(strstr(r.body, "upstream_auth_decisions_total{method=\"trusted_upstream\",code=\"401\"} 1\n"));
    mr_http_result_clear(&r);
    ua_proc_stop(p);
}

static void test_forward_auth_header_mode(void **state)
{
    header_mode_env();
    ua_proc *p = service_start(state);
    mr_http_result r = {0};
    get(p, "/auth/verify", ALICE_HEADERS, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-User-Id"), "u-alice");
    assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-Email"), "alice@example.com");
    assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-Matrix-User-Id"), ALICE);
    assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-Method"), "trusted_upstream");
    assert_string_equal(r.body, "{\"user_id\":\"u-alice\",\"email\":\"alice@example.com\",\"matrix_user_id\":\""
                                ALICE "\",\"method\":\"trusted_upstream\"}");
    mr_http_result_clear(&r);
    /* Ingress controllers keep the client's method. */
    ua_http("POST", p->port, "/auth/verify", ALICE_HEADERS, &r);
    assert_int_equal(r.status, 200);
    mr_http_result_clear(&r);
    get(p, "/api/auth/me", ALICE_HEADERS, &r);
    assert_string_equal(r.body, "{\"user_id\":\"u-alice\",\"email\":\"alice@example.com\",\"matrix_user_id\":\""
                                ALICE "\",\"method\":\"trusted_upstream\"}");
    mr_http_result_clear(&r);

    expect_status(p, "/auth/verify", NULL, 401,
                  "{\"detail\":\"Missing trusted upstream identity header: X-MindRoom-User-Id\"}");
    const char *const dup[] = {"X-MindRoom-User-Id: u-alice", "X-MindRoom-User-Id: u-bob", NULL};
    expect_status(p, "/auth/verify", dup, 401, "{\"detail\":\"Duplicate trusted upstream header: X-MindRoom-User-Id\"}");
    const char *const forged[] = {"X-MindRoom-Auth-User-Id: u-alice", "X-MindRoom-Auth-Matrix-User-Id: " ALICE,
                                  "X-Forwarded-User: u-alice", NULL};
    expect_status(p, "/auth/verify", forged, 401,
                  "{\"detail\":\"Missing trusted upstream identity header: X-MindRoom-User-Id\"}");
    char big[UA_HEADER_VALUE_MAX + 64];
    int n = snprintf(big, sizeof big, "X-MindRoom-User-Id: ");
    memset(big + n, 'u', UA_HEADER_VALUE_MAX + 1);
    big[n + UA_HEADER_VALUE_MAX + 1] = '\0';
    const char *const oversize[] = {big, NULL};
    expect_status(p, "/auth/verify", oversize, 401, "{\"detail\":\"Trusted upstream header too long: X-MindRoom-User-Id\"}");
    const char *const unmappable[] = {"X-MindRoom-User-Id: u-1", "X-MindRoom-User-Email: al:ice@example.com", NULL};
    get(p, "/auth/verify", unmappable, &r);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "Trusted upstream email does not map to a Matrix user ID"));
    mr_http_result_clear(&r);
    expect_status(p, "/nowhere", ALICE_HEADERS, 404, "{\"detail\":\"Not found\"}");
    /* A byte that is not UTF-8 was a 500 when the reply's JSON refused it; it is a 401. */
    const char *const latin1[] = {"X-MindRoom-User-Id: al\xe9x", "X-MindRoom-User-Email: alice@example.com", NULL};
    expect_status(p, "/auth/verify", latin1, 401,
                  "{\"detail\":\"Invalid characters in trusted upstream header: X-MindRoom-User-Id\"}");
    ua_proc_stop(p);
}

/* Header lines no HTTP library would send, as raw bytes: a bare LF that would add a forged
 * X-MindRoom-User-Email line, a NUL that would cut "u-alice\0bob" to "u-alice", a folded line.
 * Each is a 400 from the HTTP layer, and no identity is answered. */
static void test_smuggled_header_lines_refused(void **state)
{
    header_mode_env();
    ua_proc *p = service_start(state);
    static const char bare_lf[] = "GET /auth/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  "X-MindRoom-User-Id: u-alice\nX-MindRoom-User-Email: evil@attacker.example\r\n\r\n";
    static const char nul[] = "GET /auth/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              "X-MindRoom-User-Id: u-alice\0bob\r\nX-MindRoom-User-Email: alice@example.com\r\n\r\n";
    /* Folded, a header the proxy in front sees as "X-MindRoom-User" would come out as the
     * identity header, which that proxy would not have stripped. */
    static const char folded[] = "GET /auth/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 "X-MindRoom-User: u-alice\r\n -Id\r\n\r\n";
    const struct {
        const char *raw;
        size_t len;
    } cases[] = {{bare_lf, sizeof bare_lf - 1}, {nul, sizeof nul - 1}, {folded, sizeof folded - 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *answer;
        mr_err err = {0};
        if (mr_tp_raw_exchange("127.0.0.1", p->port, cases[i].raw, cases[i].len, 20000, &answer, &err) != MR_OK)
            fail_msg("case %zu: %s", i, err.msg);
        if (!strstr(answer, "HTTP/1.1 400 ") || strstr(answer, "X-MindRoom-Auth-") ||
            !strstr(answer, "header \\\"X-MindRoom-User-Id\\\""))
            fail_msg("case %zu: not refused with a 400 naming the header: %s", i, answer);
        free(answer);
    }
    /* The same identity sent cleanly still passes. */
    mr_http_result r = {0};
    get(p, "/auth/verify", ALICE_HEADERS, &r);
    assert_int_equal(r.status, 200);
    mr_http_result_clear(&r);
    ua_proc_stop(p);
}

/* 256 connections from one address, left silent, do not shut another client out: the service's
 * /healthz still answers a client from 127.0.0.2. */
static void test_one_address_cannot_starve_others(void **state)
{
    header_mode_env();
    ua_proc *p = service_start(state);
    char *answer;
    size_t held;
    mr_err err = {0};
    if (mr_tp_get_while_crowded(p->port, "127.0.0.1", 256, "127.0.0.2", "/healthz", &answer, &held, &err) != MR_OK)
        fail_msg("%s", err.msg);
    if (!strstr(answer, "HTTP/1.1 200 "))
        fail_msg("with %zu connections held from 127.0.0.1, /healthz answered: %s", held, answer);
    free(answer);
    ua_proc_stop(p);
}

static char *strict_token(const char *email)
{
    long long now = ua_now_s();
    char *c = tk_printf("{\"iss\":\"https://gateway.example.com\",\"aud\":\"mindroom-dashboard\",\"exp\":%lld,"
                        "\"email\":\"%s\"}", now + 600, email);
    char *t = ua_token(&g_key, c);
    free(c);
    return t;
}

/* Strict mode with the keys at jwks_url. */
static void strict_mode_env(const char *jwks_url)
{
    header_mode_env();
    setenv(TU "REQUIRE_JWT", "true", 1);
    setenv(TU "JWT_HEADER", "X-Trusted-Jwt", 1);
    setenv(TU "JWKS_URL", jwks_url, 1);
    setenv(TU "JWT_AUDIENCE", "mindroom-dashboard", 1);
    setenv(TU "JWT_ISSUER", "https://gateway.example.com", 1);
}

static void test_forward_auth_strict_mode(void **state)
{
    strict_mode_env(js_url(g_js));
    ua_proc *p = service_start(state);
    char *t = strict_token("alice@example.com");
    char *jwt_line = tk_printf("X-Trusted-Jwt: %s", t);
    const char *const ok[] = {"X-MindRoom-User-Id: alice@example.com", jwt_line, NULL};
    for (int i = 0; i < 2; i++) {
        mr_http_result r = {0};
        get(p, "/auth/verify", ok, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-Matrix-User-Id"), ALICE);
        assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-Method"), "trusted_upstream_jwt");
        mr_http_result_clear(&r);
    }
    const char *const spoofed[] = {"X-MindRoom-User-Id: bob@example.com", jwt_line, NULL};
    expect_status(p, "/auth/verify", spoofed, 401,
                  "{\"detail\":\"Trusted upstream identity header does not match the JWT: X-MindRoom-User-Id\"}");
    const char *const header_only[] = {"X-MindRoom-User-Id: alice@example.com", NULL};
    expect_status(p, "/auth/verify", header_only, 401, "{\"detail\":\"Missing trusted upstream JWT header: X-Trusted-Jwt\"}");
    const char *const garbage[] = {"X-MindRoom-User-Id: alice@example.com", "X-Trusted-Jwt: a.b.c", NULL};
    expect_status(p, "/auth/verify", garbage, 401, "{\"detail\":\"Invalid trusted upstream JWT\"}");
    mr_http_result r = {0};
    get(p, "/metrics", NULL, &r);
    /* The first valid token and the garbage one missed; the two later uses of the valid one hit. */
    assert_non_null(strstr(r.body, "upstream_auth_jwt_cache_total{result=\"miss\"} 2\n"));
    assert_non_null(strstr(r.body, "upstream_auth_jwt_cache_total{result=\"hit\"} 2\n"));
    mr_http_result_clear(&r);
    assert_log_lacks(p, t);
    ua_proc_stop(p);
    free(jwt_line);
    free(t);
}

static void mint(const char *requester, const char *provider, long ttl_ms, char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1])
{
    mr_err err = {0};
    mr_oauth_connect_request rq = {.requester = requester, .provider = provider, .scopes = "repo read:user",
                                   .agent = "coder", .ttl_ms = ttl_ms};
    mr_tp_check(mr_oauth_connect_mint(g_store, &rq, token, &err), &err);
}

static char *link_for(const char *provider, const char *token)
{
    char path[256];
    mr_err err = {0};
    mr_tp_check(mr_oauth_connect_link(NULL, provider, token, path, sizeof path, &err), &err);
    return strdup(path);
}

/* A connect token for requester at provider, and the link that redeems it. Caller frees. */
static char *mint_link(const char *requester, const char *provider, long ttl_ms,
                       char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1])
{
    mint(requester, provider, ttl_ms, token);
    return link_for(provider, token);
}

/* The service's 302 for the authorize link: the provider's URL it points at. Caller frees. */
static char *authorize_redirect(const ua_proc *p, const char *path, const char *const *headers)
{
    mr_http_result r = {0};
    get(p, path, headers, &r);
    if (r.status != 302)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    char *location = strdup(mr_http_result_header(&r, "Location"));
    mr_http_result_clear(&r);
    return location;
}

/* The provider's 302 back to the callback: the path and query on the service. Caller frees. */
static char *provider_redirect(const char *authorize_url, int service_port)
{
    mr_http_result r = {0};
    ua_http("GET", 0, authorize_url, NULL, &r);
    if (r.status != 302)
        fail_msg("GET %s: %ld %s", authorize_url, r.status, r.body);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "http://127.0.0.1:%d", service_port);
    const char *location = mr_http_result_header(&r, "Location");
    assert_true(strncmp(location, prefix, strlen(prefix)) == 0);
    char *path = strdup(location + strlen(prefix));
    mr_http_result_clear(&r);
    return path;
}

/* More requests waiting than the service has polling threads (a core each, at least 2). */
#define WAITERS 5

/* GET path with headers (NULL-ended "Name: value" lines) sent on a new connection, left for its
 * answer: the connection. */
static int send_get(int port, const char *path, const char *const *headers)
{
    int fd = mr_tp_connect_from("127.0.0.1", port);
    assert_true(fd >= 0);
    char raw[4096];
    int n = snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", path);
    for (size_t i = 0; headers && headers[i]; i++)
        n += snprintf(raw + n, sizeof raw - (size_t)n, "%s\r\n", headers[i]);
    n += snprintf(raw + n, sizeof raw - (size_t)n, "\r\n");
    assert_true(n < (int)sizeof raw);
    assert_int_equal(write(fd, raw, (size_t)n), n);
    return fd;
}

/* Nothing has come back on fd yet. */
static bool unanswered(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* The answer on fd starts with "HTTP/1.1 <status> "; closes fd. */
static void expect_answer(int fd, int status)
{
    bool closed = false;
    char *answer = mr_tp_read_until(fd, "\r\n\r\n", 20000, &closed);
    assert_non_null(answer);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    if (strncmp(answer, want, strlen(want)) != 0)
        fail_msg("expected %d, got: %.200s", status, answer);
    free(answer);
    close(fd);
}

/* Requests that wait (for a JWKS server that stalls, or an OAuth provider that stalls during the
 * code exchange), more of them than the service has polling threads, hold up neither /healthz,
 * /readyz nor forward auth with keys in memory: the service serves from a pool of polling
 * threads, and what waits goes to worker threads. */
static void test_waiting_requests_hold_up_no_other(void **state)
{
    svc_fixture *f = *state;
    f->js = js_start();
    char *jwk = tk_jwk(&g_key, NULL);
    const char *keys[] = {jwk};
    char *set = tk_jwks(keys, 1);
    js_set(f->js, 200, set);
    js_hold(f->js);
    strict_mode_env(js_url(f->js));
    fake_provider *fp = provider_start(state);
    ua_proc *p = service_start(state);
    char *t = strict_token("alice@example.com");
    char *jwt_line = tk_printf("X-Trusted-Jwt: %s", t);
    const char *const alice[] = {"X-MindRoom-User-Id: alice@example.com", jwt_line, NULL};

    /* No key yet: the first token fetches the JWKS, which stalls; the others wait for it. */
    int fds[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        fds[i] = send_get(p->port, "/auth/verify", alice);
        if (i == 0)
            assert_true(js_wait_held(f->js, 1));
    }
    char *body = NULL;
    assert_int_equal(mr_tp_http_get(p->port, "/healthz", &body), 200);
    free(body);
    assert_int_equal(mr_tp_http_get(p->port, "/readyz", &body), 200);
    free(body);
    for (int i = 0; i < WAITERS; i++)
        assert_true(unanswered(fds[i]));
    js_release(f->js);
    for (int i = 0; i < WAITERS; i++)
        expect_answer(fds[i], 200);

    /* Keys in memory now; OAuth code exchanges stall at the provider. */
    char *callbacks[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
        char *link = mint_link(ALICE, "github", 0, token);
        char *to_provider = authorize_redirect(p, link, alice);
        callbacks[i] = provider_redirect(to_provider, p->port);
        free(to_provider);
        free(link);
    }
    fp_stall_exchanges(fp);
    for (int i = 0; i < WAITERS; i++)
        fds[i] = send_get(p->port, callbacks[i], alice);
    assert_true(fp_wait_stalled(fp, WAITERS));
    assert_int_equal(mr_tp_http_get(p->port, "/healthz", &body), 200);
    free(body);
    /* A token not seen before, checked with the key in memory. */
    char *bob_token = strict_token("bob@example.com");
    char *bob_line = tk_printf("X-Trusted-Jwt: %s", bob_token);
    const char *const bob[] = {"X-MindRoom-User-Id: bob@example.com", bob_line, NULL};
    mr_http_result r = {0};
    get(p, "/auth/verify", bob, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-Matrix-User-Id"), BOB);
    mr_http_result_clear(&r);
    free(bob_line);
    free(bob_token);
    for (int i = 0; i < WAITERS; i++)
        assert_true(unanswered(fds[i]));
    fp_release_exchanges(fp);
    for (int i = 0; i < WAITERS; i++) {
        expect_answer(fds[i], 200);
        free(callbacks[i]);
    }
    assert_int_equal(fp_tokens_issued(fp), WAITERS);
    ua_proc_stop(p);
    free(jwt_line);
    free(t);
    free(set);
    free(jwk);
}

static void test_oauth_connect_flow(void **state)
{
    fake_provider *fp = NULL;
    ua_proc *p = oauth_service_start(state, &fp);
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    char *link = mint_link(ALICE, "github", 0, token);

    /* No identity: 401; someone else: 403; neither uses the token up. */
    expect_refused_to_others(p, link);
    char *to_provider = authorize_redirect(p, link, ALICE_HEADERS);
    char expected[256];
    snprintf(expected, sizeof expected, "%s?response_type=code&client_id=gh-client&redirect_uri=", fp_authorize_url(fp));
    assert_true(strncmp(to_provider, expected, strlen(expected)) == 0);
    /* The link works once. */
    expect_status(p, link, ALICE_HEADERS, 409, "{\"detail\":\"Connect token was already used; ask the agent for a new link\"}");

    char *callback = provider_redirect(to_provider, p->port);
    assert_string_equal(fp_last_authorize_param(fp, "scope"), "repo read:user");
    assert_string_equal(fp_last_authorize_param(fp, "code_challenge_method"), "S256");
    snprintf(expected, sizeof expected, "http://127.0.0.1:%d/api/oauth/github/callback", p->port);
    assert_string_equal(fp_last_authorize_param(fp, "redirect_uri"), expected);
    assert_true(strncmp(callback, "/api/oauth/github/callback?code=", 32) == 0);

    expect_refused_to_others(p, callback);
    expect_status(p, callback, ALICE_HEADERS, 200, NULL);
    assert_int_equal(fp_tokens_issued(fp), 1);
    assert_int_equal(fp_tokens_refused(fp), 0);
    /* The state is single use too. */
    expect_status(p, callback, ALICE_HEADERS, 410,
                  "{\"detail\":\"OAuth state is unknown, used or expired; ask the agent for a new link\"}");

    char *creds = NULL;
    size_t len = 0;
    mr_err err = {0};
    mr_tp_check(mr_oauth_credentials_get(g_store, ALICE, "github", &creds, &len, &err), &err);
    json_t *j = json_loads(creds, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "access_token")), "at-1");
    assert_string_equal(json_string_value(json_object_get(j, "refresh_token")), "rt-1");
    assert_string_equal(json_string_value(json_object_get(j, "scope")), "repo read:user");
    assert_true(json_integer_value(json_object_get(j, "obtained_at")) >= ua_now_s() - 60);
    json_decref(j);
    free(creds);
    assert_int_equal(mr_oauth_credentials_get(g_store, BOB, "github", &creds, &len, &err), MR_ENOTFOUND);

    assert_log_lacks(p, CLIENT_SECRET);
    assert_log_lacks(p, token);
    assert_log_lacks(p, "at-1");
    assert_log_lacks(p, "rt-1");
    ua_proc_stop(p);
    free(callback);
    free(to_provider);
    free(link);
}

static void test_oauth_refusals(void **state)
{
    fake_provider *fp = NULL;
    ua_proc *p = oauth_service_start(state, &fp);
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    mint(ALICE, "google_drive", 0, token);
    char *link = link_for("dropbox", token);
    expect_status(p, link, ALICE_HEADERS, 404, "{\"detail\":\"Unknown OAuth provider\"}");
    free(link);
    link = link_for("github", token);
    expect_status(p, link, ALICE_HEADERS, 400, "{\"detail\":\"Connect token is for provider google_drive, not github\"}");
    free(link);
    expect_status(p, "/api/oauth/github/authorize", ALICE_HEADERS, 400, "{\"detail\":\"Missing connect_token\"}");
    expect_status(p, "/api/oauth/github/authorize?connect_token=abc", ALICE_HEADERS, 400,
                  "{\"detail\":\"Malformed connect token\"}");
    expect_status(p, "/api/oauth/github/authorize?connect_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                  ALICE_HEADERS, 410, "{\"detail\":\"Connect token is unknown or has expired; ask the agent for a new link\"}");
    link = mint_link(ALICE, "github", 1, token);
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000L}, NULL);
    expect_status(p, link, ALICE_HEADERS, 410, "{\"detail\":\"Connect token is unknown or has expired; ask the agent for a new link\"}");
    free(link);

    /* The user declines at the provider: the state is used up all the same. */
    link = mint_link(ALICE, "github", 0, token);
    char *to_provider = authorize_redirect(p, link, ALICE_HEADERS);
    const char *state_at = strstr(to_provider, "&state=");
    assert_non_null(state_at);
    char declined[512];
    snprintf(declined, sizeof declined, "/api/oauth/github/callback?error=access_denied&state=%.*s",
             (int)strcspn(state_at + 7, "&"), state_at + 7);
    expect_status(p, declined, ALICE_HEADERS, 400,
                  "{\"detail\":\"The provider did not grant access (access_denied); ask the agent for a new link\"}");
    expect_status(p, declined, ALICE_HEADERS, 410,
                  "{\"detail\":\"OAuth state is unknown, used or expired; ask the agent for a new link\"}");
    expect_status(p, "/api/oauth/github/callback?code=x", ALICE_HEADERS, 400, "{\"detail\":\"Missing state\"}");
    expect_status(p, "/api/oauth/github/callback?code=x&state=forged", ALICE_HEADERS, 410,
                  "{\"detail\":\"OAuth state is unknown, used or expired; ask the agent for a new link\"}");
    assert_int_equal(fp_tokens_issued(fp), 0);
    ua_proc_stop(p);
    free(to_provider);
    free(link);
}

/* One oauth_api call as the agent makes it: its result, which must not be an error. */
static char *tool_call(const mr_tools_env *env, const char *args)
{
    mr_tools_call c = {.def = mr_tools_find("oauth_api"), .name = "oauth_api", .arguments = args};
    mr_err err = {0};
    mr_tp_check(mr_tools_run(env, &c, 1, &err), &err);
    if (c.failed)
        fail_msg("oauth_api %s: %s", args, c.result);
    return c.result;
}

/* The path of the connect link in a tool result, on the service at public_url. Caller frees. */
static char *link_in(const char *result, const char *public_url)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s/api/oauth/github/authorize?connect_token=", public_url);
    const char *at = strstr(result, prefix);
    if (!at)
        fail_msg("no connect link in \"%s\"", result);
    return strndup(at + strlen(public_url), strcspn(at + strlen(public_url), " \n"));
}

static void expect_api_answer(const mr_tools_env *env, fake_provider *fp, const char *want_token)
{
    char *r = tool_call(env, "{\"provider\":\"github\",\"path\":\"/user\"}");
    if (strncmp(r, "HTTP 200\n\n", 10) != 0 || !strstr(r, "\"login\":\"carol-at-provider\""))
        fail_msg("oauth_api: \"%s\"", r);
    char seen[32];
    fp_last_api_token(fp, seen);
    assert_string_equal(seen, want_token);
    free(r);
}

/* Seed 004 as a person lives it: the agent's tool has no credential and answers with a link; Bob
 * cannot use Carol's link; Carol opens it, signs in at the provider and comes back; the same call
 * then reads the API with her token, refreshed once it is about to expire; revoked at the
 * provider, the tool asks her to connect again. */
static void test_oauth_tool_through_the_connect_flow(void **state)
{
    /* Carol, whom no other test connects: the store is shared by the group. */
    static const char *const CAROL_HEADERS[] = {"X-MindRoom-User-Id: u-carol", "X-MindRoom-User-Email: carol@example.com",
                                                NULL};
    header_mode_env();
    fake_provider *fp = provider_start(state);
    /* An authorize URL with its own query keeps it, and the flow's parameters follow it. */
    char authorize[128];
    snprintf(authorize, sizeof authorize, "%s?prompt=consent", fp_authorize_url(fp));
    setenv("MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL", authorize, 1);
    ua_proc *p = service_start(state);

    /* The agent's side: the provider in config.yaml; the client secret is the variable
     * upstream-auth reads too (the default client_secret_env). */
    char yaml[1024], public_url[64];
    snprintf(yaml, sizeof yaml, "oauth_providers:\n  github:\n    authorize_url: %s\n    token_url: %s\n"
             "    client_id: gh-client\n    scopes: [repo]\n    api_base_url: %s\n", fp_authorize_url(fp),
             fp_token_url(fp), fp_api_url(fp));
    snprintf(public_url, sizeof public_url, "http://127.0.0.1:%d", p->port);
    mr_config *cfg = NULL;
    mr_err err = {0};
    mr_tp_check(mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, NULL, &err), &err);
    mr_dotenv dotenv = {0};
    mr_tools_oauth oauth = {.store = g_store, .providers = cfg->oauth_providers, .n_providers = cfg->n_oauth_providers,
                            .dotenv = &dotenv, .public_url = public_url};
    mr_tools_env env = {.entity = "coder", .requester = CAROL, .room_id = "!room:example.org", .timeout_ms = 60000,
                        .oauth = &oauth};

    char *r = tool_call(&env, "{\"provider\":\"github\",\"path\":\"/user\"}");
    assert_non_null(strstr(r, "Not connected, or the connection has expired: " CAROL " must connect their github account first"));
    char *link = link_in(r, public_url);
    free(r);
    expect_status(p, link, BOB_HEADERS, 403,
                  "{\"detail\":\"Your identity does not match the Matrix user this link was made for\"}");
    char *to_provider = authorize_redirect(p, link, CAROL_HEADERS);
    char expected[256];
    snprintf(expected, sizeof expected, "%s&response_type=code&client_id=gh-client&", authorize);
    assert_true(strncmp(to_provider, expected, strlen(expected)) == 0);
    expect_status(p, link, CAROL_HEADERS, 409, "{\"detail\":\"Connect token was already used; ask the agent for a new link\"}");
    /* The first access token is issued close to its expiry, as if the person had connected a
     * while ago: the next call must refresh it first. */
    fp_set_expires_in(fp, MR_OAUTH_REFRESH_MARGIN_S / 2);
    char *callback = provider_redirect(to_provider, p->port);
    assert_string_equal(fp_last_authorize_param(fp, "prompt"), "consent");
    assert_string_equal(fp_last_authorize_param(fp, "scope"), "repo");
    expect_status(p, callback, CAROL_HEADERS, 200, NULL);
    fp_set_expires_in(fp, 3600);

    /* The model calls twice in one round: the provider rotates refresh tokens, so only one
     * refresh may reach it; the other call waits for its result. Both are answered. */
    fp_hold_refreshes(fp, 2, 2000);
    mr_tools_call both[2];
    for (size_t i = 0; i < 2; i++)
        both[i] = (mr_tools_call){.def = mr_tools_find("oauth_api"), .name = "oauth_api",
                                  .arguments = "{\"provider\":\"github\",\"path\":\"/user\"}"};
    mr_tp_check(mr_tools_run(&env, both, 2, &err), &err);
    for (size_t i = 0; i < 2; i++)
        if (both[i].failed || strncmp(both[i].result, "HTTP 200", 8) != 0)
            fail_msg("parallel call %zu: %s", i, both[i].result);
    mr_tools_calls_clear(both, 2);
    assert_int_equal(fp_refreshes(fp), 1);
    assert_int_equal(fp_tokens_refused(fp), 0);
    /* Fresh now: used as it is. */
    expect_api_answer(&env, fp, "at-2");
    assert_int_equal(fp_refreshes(fp), 1);

    /* Credentials are per requester: Bob gets his own link. */
    mr_tools_env bob = env;
    bob.requester = BOB;
    r = tool_call(&bob, "{\"provider\":\"github\",\"path\":\"/user\"}");
    assert_non_null(strstr(r, BOB " must connect their github account first"));
    free(r);

    fp_revoke_all(fp);
    r = tool_call(&env, "{\"provider\":\"github\",\"path\":\"/user\"}");
    assert_non_null(strstr(r, "The provider no longer accepts the stored credentials: " CAROL " must connect"));
    free(link_in(r, public_url));
    free(r);

    assert_int_equal(fp_tokens_refused(fp), 0);
    assert_log_lacks(p, CLIENT_SECRET);
    assert_log_lacks(p, "at-1");
    assert_log_lacks(p, "rt-1");
    ua_proc_stop(p);
    mr_config_release(cfg);
    free(callback);
    free(to_provider);
    free(link);
}

static void test_api_key_and_single_owner(void **state)
{
    ua_proc_env(g_redis.url);
    fake_provider *fp = provider_start(state);
    setenv("MINDROOM_API_KEY", API_KEY, 1);
    setenv("MINDROOM_OWNER_USER_ID", ALICE, 1);
    /* Ignored while trusted upstream auth is off. */
    setenv(TU "USER_ID_HEADER", "X-MindRoom-User-Id", 1);
    ua_proc *p = service_start(state);
    expect_status(p, "/auth/verify", ALICE_HEADERS, 401, "{\"detail\":\"Missing or invalid credentials\"}");
    const char *const wrong[] = {"Authorization: Bearer not-the-key", NULL};
    expect_status(p, "/auth/verify", wrong, 401, "{\"detail\":\"Invalid API key\"}");
    const char *const right[] = {"Authorization: Bearer " API_KEY, NULL};
    mr_http_result r = {0};
    get(p, "/auth/verify", right, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"user_id\":\"" ALICE "\",\"email\":null,\"matrix_user_id\":\"" ALICE
                                "\",\"method\":\"api_key\"}");
    assert_string_equal(mr_http_result_header(&r, "X-MindRoom-Auth-Method"), "api_key");
    assert_null(mr_http_result_header(&r, "X-MindRoom-Auth-Email"));
    mr_http_result_clear(&r);
    const char *const cookie[] = {"Cookie: mindroom_api_key=" API_KEY, NULL};
    expect_status(p, "/auth/verify", cookie, 200, NULL);

    /* The single owner redeems links made for the owner, and no other. */
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    char *link = mint_link(BOB, "github", 0, token);
    expect_status(p, link, right, 403, "{\"detail\":\"Your identity does not match the Matrix user this link was made for\"}");
    free(link);
    link = mint_link(ALICE, "github", 0, token);
    char *to_provider = authorize_redirect(p, link, cookie);
    char *callback = provider_redirect(to_provider, p->port);
    expect_status(p, callback, cookie, 200, NULL);
    assert_int_equal(fp_tokens_issued(fp), 1);
    assert_log_lacks(p, API_KEY);
    ua_proc_stop(p);
    free(callback);
    free(to_provider);
    free(link);
}

/* Seed 004 configures the service with MINDROOM_TRUSTED_UPSTREAM_* alone: with those, the store
 * URL and the instance secret it starts, with no config.yaml, no bus and no Matrix server name
 * (ua_proc_env leaves them unset); without the store it needs, it refuses, naming the variable. */
static void test_starts_from_its_environment_alone(void **state)
{
    ua_proc *p = &((svc_fixture *)*state)->proc;
    header_mode_env();
    assert_null(getenv("MINDROOM_BUS_URL"));
    assert_null(getenv("MINDROOM_CONFIG_PATH"));
    assert_null(getenv("MATRIX_SERVER_NAME"));
    ua_proc_start(p);
    expect_status(p, "/auth/verify", ALICE_HEADERS, 200, NULL);
    char *log = ua_proc_log(p);
    assert_null(strstr(log, "config.yaml"));
    free(log);
    ua_proc_stop(p);

    header_mode_env();
    unsetenv("MINDROOM_STORE_URL");
    char *out = NULL;
    int status = ua_proc_run(&out);
    if (status != 2 || !strstr(out, "mindroom-upstream-auth: MINDROOM_STORE_URL: not set"))
        fail_msg("exit status %d, expected 2 naming MINDROOM_STORE_URL:\n%s", status, out);
    free(out);
}

/* Runs the binary with the variables set and expects exit 2 and a message naming `want`. */
static void expect_exit_2(const char *const *vars, const char *want)
{
    ua_proc_env(g_redis.url);
    for (size_t i = 0; vars[i]; i += 2)
        setenv(vars[i], vars[i + 1], 1);
    char *out = NULL;
    int status = ua_proc_run(&out);
    if (status != 2 || !strstr(out, want))
        fail_msg("exit status %d, expected 2 and \"%s\" in:\n%s", status, want, out);
    free(out);
}

static void test_invalid_settings_stop_start_up(void **state)
{
    (void)state;
    const char *const no_user_header[] = {TU "AUTH_ENABLED", "true", NULL};
    expect_exit_2(no_user_header, TU "USER_ID_HEADER: required when " TU "AUTH_ENABLED is true");
    const char *const two_placeholders[] = {TU "EMAIL_HEADER", "X-Email", TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE",
                                            "@{localpart}{localpart}:example.org", NULL};
    expect_exit_2(two_placeholders, TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE: must contain exactly one {localpart}");
    const char *const no_email_header[] = {TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "@{localpart}:example.org", NULL};
    expect_exit_2(no_email_header, TU "EMAIL_HEADER: required when " TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE is set");
    const char *const strict_without_jwks[] = {TU "REQUIRE_JWT", "true", TU "JWT_HEADER", "X-Trusted-Jwt", NULL};
    expect_exit_2(strict_without_jwks, TU "JWKS_URL: required when " TU "REQUIRE_JWT is true");
    const char *const bad_bool[] = {TU "REQUIRE_JWT", "yes please", NULL};
    expect_exit_2(bad_bool, TU "REQUIRE_JWT: \"yes please\" is not a boolean");
    const char *const bad_owner[] = {"MINDROOM_OWNER_USER_ID", "owner", NULL};
    expect_exit_2(bad_owner, "MINDROOM_OWNER_USER_ID: ");
    const char *const no_secret[] = {"MINDROOM_OAUTH_PROVIDERS", "github", "MINDROOM_PUBLIC_URL",
                                     "https://mindroom.example.org", "MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL",
                                     "https://github.example.com/authorize", "MINDROOM_OAUTH_GITHUB_TOKEN_URL",
                                     "https://github.example.com/token", "MINDROOM_OAUTH_GITHUB_CLIENT_ID", "c", NULL};
    expect_exit_2(no_secret, "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET: required");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_ops_endpoints_and_metrics),
        T(test_forward_auth_header_mode),
        T(test_forward_auth_strict_mode),
        T(test_smuggled_header_lines_refused),
        T(test_one_address_cannot_starve_others),
        T(test_oauth_connect_flow),
        T(test_waiting_requests_hold_up_no_other),
        T(test_oauth_refusals),
        T(test_oauth_tool_through_the_connect_flow),
        T(test_api_key_and_single_owner),
        T(test_invalid_settings_stop_start_up),
        T(test_starts_from_its_environment_alone),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
