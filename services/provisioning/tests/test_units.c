/* test_units.c -- the service's pure parts: pair codes, tokens, digests, username and namespace
 * rules, client addresses behind proxies, and settings from the environment. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mindroom/fsutil.h"
#include "mindroom/ids.h"
#include "prov_internal.h"

static bool in_alphabet(const char *s, const char *alphabet)
{
    return strspn(s, alphabet) == strlen(s);
}

static void test_codes_use_the_alphabet_and_format(void **state)
{
    (void)state;
    char seen[200][PAIR_CODE_LEN + 1];
    size_t distinct = 0;
    for (int i = 0; i < 200; i++) {
        char code[PAIR_CODE_LEN + 1], norm[PAIR_CODE_LEN + 1];
        mr_err err = {0};
        assert_int_equal(pair_code_generate(code, &err), MR_OK);
        assert_int_equal(strlen(code), 9);
        assert_int_equal(code[4], '-');
        code[4] = 'A';
        assert_true(in_alphabet(code, pair_code_alphabet));
        code[4] = '-';
        assert_null(strpbrk(code, "01OI"));
        assert_true(pair_code_normalize(code, norm));
        assert_string_equal(norm, code);
        bool dup = false;
        for (size_t k = 0; k < distinct; k++)
            dup = dup || strcmp(seen[k], code) == 0;
        if (!dup)
            snprintf(seen[distinct++], sizeof seen[0], "%s", code);
    }
    /* 32^8 codes: 200 draws repeat with probability ~2e-8. */
    assert_int_equal(distinct, 200);
}

static void test_code_normalisation(void **state)
{
    (void)state;
    char out[PAIR_CODE_LEN + 1];
    assert_true(pair_code_normalize("  abcd-efgh\n", out));
    assert_string_equal(out, "ABCD-EFGH");
    assert_true(pair_code_normalize("AB1D-0FGH", out));
    assert_string_equal(out, "AB1D-0FGH");
    const char *bad[] = {"ABCDEFGH", "ABC-DEFGH", "ABCD_EFGH", "ABCD-EFG", "ABCD-EFGHJ", "",
                         "\303\204BCD-EFGH" /* an A with umlaut */, "AB D-EFGH", "ABCD--FGH"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(pair_code_normalize(bad[i], out));
}

static void test_digest_and_times(void **state)
{
    (void)state;
    char hex[65], t[PAIR_TIME_LEN + 1];
    pair_sha256_hex("ABCD-EFGH", 9, hex);
    assert_string_equal(hex, "fc83f19a14cf51776f2520dfa572b08b093af1e22b3f28d2fe1edf8097198c65");
    pair_time_format(0, t);
    assert_string_equal(t, "1970-01-01T00:00:00Z");
    pair_time_format(1795454760LL, t);
    assert_string_equal(t, "2026-11-23T17:26:00Z");
}

static void test_tokens_and_namespaces(void **state)
{
    (void)state;
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char id[PAIR_TOKEN_MAX], secret[PAIR_TOKEN_MAX], other[PAIR_TOKEN_MAX], ns[PAIR_NAMESPACE_LEN + 1];
    mr_err err = {0};
    assert_int_equal(pair_random_token(PAIR_CLIENT_ID_BYTES, id, &err), MR_OK);
    assert_int_equal(pair_random_token(PAIR_SECRET_BYTES, secret, &err), MR_OK);
    assert_int_equal(pair_random_token(PAIR_SECRET_BYTES, other, &err), MR_OK);
    assert_int_equal(strlen(id), 24);
    assert_int_equal(strlen(secret), 43);
    assert_string_not_equal(secret, other);
    assert_true(in_alphabet(id, b64url) && in_alphabet(secret, b64url));
    assert_true(pair_token_shape_ok(id));
    assert_false(pair_token_shape_ok(""));
    assert_false(pair_token_shape_ok("a:b"));
    assert_false(pair_token_shape_ok("../etc"));
    char longer[PAIR_TOKEN_MAX + 1];
    memset(longer, 'a', PAIR_TOKEN_MAX);
    longer[PAIR_TOKEN_MAX] = '\0';
    assert_false(pair_token_shape_ok(longer));

    assert_int_equal(pair_namespace_generate(ns, &err), MR_OK);
    assert_int_equal(strlen(ns), PAIR_NAMESPACE_LEN);
    assert_true(in_alphabet(ns, pair_namespace_alphabet));
    char norm[MR_NAMESPACE_MAX + 1];
    assert_int_equal(mr_id_namespace_normalize(ns, norm, &err), MR_OK);
    assert_string_equal(norm, ns);
}

static void test_username_charset(void **state)
{
    (void)state;
    assert_true(agent_username_charset_ok("mindroom_mind_ab3k9xyz"));
    assert_true(agent_username_charset_ok("a.b-c=d/e+f_"));
    assert_true(agent_username_charset_ok("../"));
    const char *bad[] = {"", "Mindroom_mind_ab3k9xyz", "mindroom mind", "mindroom_m\xc3\xa9", "a:b", "a@b",
                         "mindroom_mind\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(agent_username_charset_ok(bad[i]));
    char longer[202];
    memset(longer, 'a', 201);
    longer[201] = '\0';
    assert_false(agent_username_charset_ok(longer));
    longer[200] = '\0';
    assert_true(agent_username_charset_ok(longer));
}

static void test_username_namespace(void **state)
{
    (void)state;
    assert_true(agent_username_in_namespace("mindroom_mind_ns12abcd", "ns12abcd"));
    assert_true(agent_username_in_namespace("mindroom_router_ns12abcd", "ns12abcd"));
    assert_true(agent_username_in_namespace("mindroom_dev_team_ns12abcd", "ns12abcd"));
    const char *escapes[] = {"mindroom_x_othernamespace", "mindroom__ns12abcd", "mindroom_ns12abcd", "../",
                             "mindroom_../_ns12abcd", "xmindroom_a_ns12abcd", "mindroom_a_xns12abcd",
                             "mindroom_a_ns12abcd_", "mindroom_a.b_ns12abcd", "mindroom_a_ns12abcd/..",
                             "mindroom_mind_ns12abcd_ns12abcdx"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        if (agent_username_in_namespace(escapes[i], "ns12abcd"))
            fail_msg("%s was accepted in namespace ns12abcd", escapes[i]);
    }
    /* An operator-set empty namespace only asks for the prefix and an entity. */
    assert_true(agent_username_in_namespace("mindroom_mind", ""));
    assert_false(agent_username_in_namespace("mindroom_", ""));
    assert_false(agent_username_in_namespace("alice", ""));
}

static void test_client_ip_behind_proxies(void **state)
{
    (void)state;
    char *proxies[] = {"127.0.0.1", "10.0.0.2", "::1"};
    const mr_provisioning_settings s = {.trusted_proxies = proxies, .n_trusted_proxies = 3}, none = {0};
    static const struct {
        bool trusting;
        const char *peer, *xff, *want;
    } cases[] = {
        {true, "127.0.0.1", "203.0.113.5, 10.0.0.2", "203.0.113.5"},
        /* A client can prepend anything; only the entry our proxy added counts. */
        {true, "127.0.0.1", "1.2.3.4,203.0.113.5", "203.0.113.5"},
        {true, "::1", " 2001:db8::7 ", "2001:db8::7"},
        {true, "127.0.0.1", NULL, "127.0.0.1"},
        {true, "127.0.0.1", "nonsense", "127.0.0.1"},
        {true, "127.0.0.1", "10.0.0.2", "10.0.0.2"},
        /* Not from a trusted proxy: the header is the client's own claim and is ignored. */
        {true, "192.0.2.9", "203.0.113.5", "192.0.2.9"},
        {false, "127.0.0.1", "203.0.113.5", "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char ip[64];
        api_client_ip(cases[i].trusting ? &s : &none, cases[i].peer, cases[i].xff, ip, sizeof ip);
        assert_string_equal(ip, cases[i].want);
    }
}

/* ---- settings ---- */

static const char *const vars[] = {
    "MATRIX_HOMESERVER", "MATRIX_SERVER_NAME", "MATRIX_REGISTRATION_TOKEN",
    "MATRIX_REGISTRATION_TOKEN_FILE", "MINDROOM_PROVISIONING_PAIR_TTL_SECONDS",
    "MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS", "MINDROOM_PROVISIONING_TRUSTED_PROXIES",
    "MINDROOM_PROVISIONING_CORS_ORIGINS",
};

static void base_env(void)
{
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("MATRIX_HOMESERVER", "https://hs.example.org:8448/", 1);
    setenv("MATRIX_REGISTRATION_TOKEN", "sekrit-token", 1);
}

/* Resolves the settings of the environment into s, failing the test when they are refused. */
static void resolve_ok(mr_provisioning_settings *s)
{
    mr_err err = {0};
    if (mr_provisioning_settings_resolve(s, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

/* Resolves and expects failure with a message starting with prefix and free of the token. */
static void expect_invalid(const char *prefix)
{
    mr_provisioning_settings s;
    mr_err err = {0};
    assert_int_equal(mr_provisioning_settings_resolve(&s, &err), MR_EINVAL);
    mr_provisioning_settings_free(&s);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("expected a message starting with %s, got: %s", prefix, err.msg);
    assert_null(strstr(err.msg, "sekrit-token"));
}

/* What resolving the environment must give beside base_env's homeserver and token; the lists
 * end at NULL. */
typedef struct settings_want {
    const char *server_name;
    long pair_ttl_s, poll_interval_s;
    const char *proxies[3];
    const char *origins[3];
} settings_want;

static void expect_list(char *const *got, size_t n, const char *const *want)
{
    size_t i = 0;
    for (; want[i]; i++) {
        assert_true(i < n);
        assert_string_equal(got[i], want[i]);
    }
    assert_int_equal(n, i);
}

static void expect_settings(const settings_want *w)
{
    mr_provisioning_settings s;
    resolve_ok(&s);
    assert_string_equal(s.homeserver, "https://hs.example.org:8448");
    assert_string_equal(s.registration_token, "sekrit-token");
    assert_string_equal(s.server_name, w->server_name);
    assert_int_equal(s.pair_ttl_s, w->pair_ttl_s);
    assert_int_equal(s.poll_interval_s, w->poll_interval_s);
    expect_list(s.trusted_proxies, s.n_trusted_proxies, w->proxies);
    expect_list(s.cors_origins, s.n_cors_origins, w->origins);
    mr_provisioning_settings_free(&s);
}

static void test_settings_defaults(void **state)
{
    (void)state;
    base_env();
    const settings_want w = {.server_name = "hs.example.org", .pair_ttl_s = 600, .poll_interval_s = 3,
                             .origins = {"https://chat.mindroom.chat"}};
    expect_settings(&w);
}

static void test_settings_overrides(void **state)
{
    (void)state;
    base_env();
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    setenv("MINDROOM_PROVISIONING_PAIR_TTL_SECONDS", "30", 1);
    setenv("MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS", "5", 1);
    setenv("MINDROOM_PROVISIONING_TRUSTED_PROXIES", " 127.0.0.1 ,::1,", 1);
    setenv("MINDROOM_PROVISIONING_CORS_ORIGINS", "https://a.example, http://localhost:5173", 1);
    const settings_want w = {.server_name = "example.org", .pair_ttl_s = 30, .poll_interval_s = 5,
                             .proxies = {"127.0.0.1", "::1"}, .origins = {"https://a.example", "http://localhost:5173"}};
    expect_settings(&w);
}

static void test_settings_token_file(void **state)
{
    (void)state;
    base_env();
    unsetenv("MATRIX_REGISTRATION_TOKEN");
    char path[] = "/tmp/mr-prov-token-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    mr_err err = {0};
    assert_int_equal(mr_fs_write_atomic(path, "  file-token \nsecond line\n", 26, 0600, true, &err), MR_OK);
    setenv("MATRIX_REGISTRATION_TOKEN_FILE", path, 1);
    mr_provisioning_settings s;
    resolve_ok(&s);
    assert_string_equal(s.registration_token, "file-token");
    mr_provisioning_settings_free(&s);
    unlink(path);
    expect_invalid("MATRIX_REGISTRATION_TOKEN_FILE");
}

static void test_settings_errors_name_the_variable(void **state)
{
    (void)state;
    static const struct {
        const char *var, *value, *prefix;
    } cases[] = {
        {"MINDROOM_PROVISIONING_PAIR_TTL_SECONDS", "29", "MINDROOM_PROVISIONING_PAIR_TTL_SECONDS: \"29\" is not a whole number from 30 to 86400"},
        {"MINDROOM_PROVISIONING_PAIR_TTL_SECONDS", "ten", "MINDROOM_PROVISIONING_PAIR_TTL_SECONDS: \"ten\""},
        {"MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS", "0", "MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS"},
        {"MINDROOM_PROVISIONING_TRUSTED_PROXIES", "proxy.local", "MINDROOM_PROVISIONING_TRUSTED_PROXIES: 'proxy.local'"},
        {"MINDROOM_PROVISIONING_CORS_ORIGINS", "chat.example", "MINDROOM_PROVISIONING_CORS_ORIGINS"},
        {"MATRIX_HOMESERVER", "hs.example.org", "MATRIX_HOMESERVER: 'hs.example.org' is not"},
        {"MATRIX_SERVER_NAME", "bad name", "MATRIX_SERVER_NAME"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        base_env();
        setenv(cases[i].var, cases[i].value, 1);
        expect_invalid(cases[i].prefix);
    }
    static const char *const required[] = {"MATRIX_HOMESERVER", "MATRIX_REGISTRATION_TOKEN"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        base_env();
        unsetenv(required[i]);
        expect_invalid(required[i]);
    }
}

/* What a thread's request got from prov_store_take, seen from that thread. */
typedef struct lease_probe {
    prov *p;
    mr_store *first, *second;
} lease_probe;

static void *take_and_look(void *arg)
{
    lease_probe *lp = arg;
    prov_store_take(lp->p);
    lp->first = prov_store(lp->p);
    lp->second = prov_store(lp->p);
    prov_store_give(lp->p);
    return NULL;
}

/* A request keeps the first free handle for all its calls; other requests in flight take the
 * next free ones; with every handle taken a request shares them round robin; a handle given
 * back is the first free again; with one handle (SQLite) nothing is taken. */
static void test_each_request_takes_the_first_free_store_handle(void **state)
{
    (void)state;
    /* Distinct addresses the lease only hands around: no store call is made here. */
    static char handles[3];
    prov p = {.nstores = 2};
    pthread_mutex_init(&p.lease_mu, NULL);
    for (size_t i = 0; i < 3; i++)
        p.stores[i] = (mr_store *)(void *)&handles[i];
    prov_store_take(&p);
    assert_ptr_equal(prov_store(&p), p.stores[0]);
    assert_ptr_equal(prov_store(&p), p.stores[0]);
    lease_probe other = {.p = &p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, take_and_look, &other), 0);
    pthread_join(t, NULL);
    assert_ptr_equal(other.first, p.stores[1]);
    assert_ptr_equal(other.second, p.stores[1]);
    /* Both taken by this thread's request and a third's: the third alternates. */
    p.leased[1] = true;
    assert_int_equal(pthread_create(&t, NULL, take_and_look, &other), 0);
    pthread_join(t, NULL);
    assert_ptr_not_equal(other.first, other.second);
    p.leased[1] = false;
    prov_store_give(&p);
    assert_false(p.leased[0]);
    prov_store_take(&p);
    assert_ptr_equal(prov_store(&p), p.stores[0]);
    prov_store_give(&p);
    p.nstores = 1;
    prov_store_take(&p);
    assert_false(p.leased[0]);
    prov_store_give(&p);
    pthread_mutex_destroy(&p.lease_mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_use_the_alphabet_and_format),
        cmocka_unit_test(test_code_normalisation),
        cmocka_unit_test(test_digest_and_times),
        cmocka_unit_test(test_tokens_and_namespaces),
        cmocka_unit_test(test_username_charset),
        cmocka_unit_test(test_username_namespace),
        cmocka_unit_test(test_client_ip_behind_proxies),
        cmocka_unit_test(test_settings_defaults),
        cmocka_unit_test(test_settings_overrides),
        cmocka_unit_test(test_settings_token_file),
        cmocka_unit_test(test_settings_errors_name_the_variable),
        cmocka_unit_test(test_each_request_takes_the_first_free_store_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
