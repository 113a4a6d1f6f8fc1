/* test_service.c -- mindroom-provisioning as a process against redis-server and the test
 * homeserver: pairing, reuse, expiry, concurrent claims, revocation, namespace escapes, rate
 * limits shared by replicas, restarts, settings, and secrets kept out of logs and the store. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "prov_internal.h"
#include "prov_stack.h"
#include "tp_check.h"

#define API "/v1/local-mindroom"
#define MAX_SECRETS 128
#define RACERS 8

typedef struct conn_creds {
    char id[64];
    char secret[64];
    char ns[16];
} conn_creds;

static struct {
    prov_stack st;
    prov_proc main;      /* trusts 127.0.0.1 as a proxy, so tests pick their address by X-Forwarded-For */
    prov_proc plain;     /* trusts no proxy: the TCP peer is the client */
    prov_proc short_ttl; /* codes live 30 s */
    char short_token[256], short_code[64], short_session[64];
    long long short_expires; /* wall clock, from the answer of pair/start */
    char secrets[MAX_SECRETS][160];
    int nsecrets;
    int users;
    int addresses;
} S;

/* Remembered, to be looked for in the logs and the store at the end. */
static void keep_secret(const char *s)
{
    assert_true(S.nsecrets < MAX_SECRETS);
    assert_true(snprintf(S.secrets[S.nsecrets++], sizeof S.secrets[0], "%s", s) < (int)sizeof S.secrets[0]);
}

static void keep_code(const char *code)
{
    char bare[16];
    snprintf(bare, sizeof bare, "%.4s%.4s", code, code + 5);
    keep_secret(code);
    keep_secret(bare);
}

/* A fresh Matrix user; its access token. */
static const char *new_user(char *token, size_t cap, char *user_id, size_t id_cap)
{
    char name[32];
    snprintf(name, sizeof name, "user%d", ++S.users);
    mr_err err = {0};
    mr_tp_check_step(prov_matrix_user(&S.st, name, token, cap, &err), &err, "registering a Matrix user");
    keep_secret(token);
    if (user_id)
        snprintf(user_id, id_cap, "@%s:localhost", name);
    return token;
}

/* A client address of its own for each test, so the per-address limit of one does not spill. */
static void new_address(char *xff, size_t cap)
{
    snprintf(xff, cap, "X-Forwarded-For: 198.51.100.%d", ++S.addresses);
}

static void bearer(char *out, size_t cap, const char *token)
{
    snprintf(out, cap, "Authorization: Bearer %s", token);
}

static void pair_start(const prov_proc *p, const char *token, char *code, char *session)
{
    mr_err err = {0};
    mr_tp_check_step(prov_pair_start(p, token, code, session, &err), &err, "pair/start");
    keep_code(code);
}

/* xff: the X-Forwarded-For line naming the test's address; NULL only where the TCP peer
 * (127.0.0.1) is meant to count. */
static prov_reply complete(const prov_proc *p, const char *code, const char *xff)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"pair_code\":\"%s\",\"client_name\":\"laptop\",\"client_pubkey_or_fingerprint\":\"sha256:0a1b\"}",
             code);
    const char *headers[] = {xff, NULL};
    return prov_call(p->url, "POST", API "/pair/complete", xff ? headers : NULL, body);
}

static void complete_ok(const prov_proc *p, const char *code, const char *xff, conn_creds *c)
{
    prov_reply r = complete(p, code, xff);
    if (r.status != 200)
        fail_msg("pair/complete: %ld %s", r.status, prov_detail(&r));
    snprintf(c->id, sizeof c->id, "%s", json_string_value(json_object_get(r.json, "client_id")));
    snprintf(c->secret, sizeof c->secret, "%s", json_string_value(json_object_get(r.json, "client_secret")));
    snprintf(c->ns, sizeof c->ns, "%s", json_string_value(json_object_get(r.json, "namespace")));
    keep_secret(c->secret);
    prov_reply_clear(&r);
}

/* A new user pairs a connection through p from a new address: the user's token, the pair code,
 * the address header and the connection come back. */
static void pair_new_user(const prov_proc *p, char token[256], char code[64], char xff[64], conn_creds *c)
{
    char session[64];
    new_user(token, 256, NULL, 0);
    new_address(xff, 64);
    pair_start(p, token, code, session);
    complete_ok(p, code, xff, c);
}

static prov_reply status_of(const prov_proc *p, const char *token, const char *session)
{
    char auth[400], sid[128];
    bearer(auth, sizeof auth, token);
    snprintf(sid, sizeof sid, "X-Local-MindRoom-Pair-Session-Id: %s", session);
    const char *headers[] = {auth, sid, NULL};
    return prov_call(p->url, "GET", API "/pair/status", headers, NULL);
}

static const char *status_word(const prov_reply *r)
{
    const char *s = json_string_value(json_object_get(r->json, "status"));
    return s ? s : "";
}

static prov_reply register_agent(const prov_proc *p, const conn_creds *c, const char *homeserver,
                                 const char *username, const char *password)
{
    char id[128], secret[128], body[512];
    snprintf(id, sizeof id, "X-Local-MindRoom-Client-Id: %s", c ? c->id : "");
    snprintf(secret, sizeof secret, "X-Local-MindRoom-Client-Secret: %s", c ? c->secret : "");
    snprintf(body, sizeof body, "{\"homeserver\":\"%s\",\"username\":\"%s\",\"password\":\"%s\",\"display_name\":\"Mind\"}",
             homeserver, username, password);
    const char *headers[] = {id, secret, NULL};
    return prov_call(p->url, "POST", API "/register-agent", c ? headers : NULL, body);
}

static void expect(prov_reply *r, long status, const char *detail_prefix)
{
    const char *d = prov_detail(r);
    if (r->status != status || (detail_prefix && strncmp(d, detail_prefix, strlen(detail_prefix)) != 0))
        fail_msg("expected %ld \"%s...\", got %ld \"%s\"", status, detail_prefix ? detail_prefix : "", r->status, d);
    prov_reply_clear(r);
}

/* ---- setup ---- */

static int setup(void **state)
{
    (void)state;
    mr_err err = {0};
    const char *trusting[] = {"MINDROOM_PROVISIONING_TRUSTED_PROXIES=127.0.0.1", NULL};
    const char *short_env[] = {"MINDROOM_PROVISIONING_PAIR_TTL_SECONDS=30",
                               "MINDROOM_PROVISIONING_TRUSTED_PROXIES=127.0.0.1", NULL};
    if (prov_stack_start(&S.st, &err) != MR_OK || prov_proc_start(&S.st, "main", 0, trusting, &S.main, &err) != MR_OK ||
        prov_proc_start(&S.st, "plain", 0, NULL, &S.plain, &err) != MR_OK ||
        prov_proc_start(&S.st, "short", 0, short_env, &S.short_ttl, &err) != MR_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    /* The expiry test waits for this code at the end, so the other tests fill the 30 s. */
    new_user(S.short_token, sizeof S.short_token, NULL, 0);
    if (prov_pair_start(&S.short_ttl, S.short_token, S.short_code, S.short_session, &err) != MR_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    keep_code(S.short_code);
    S.short_expires = (long long)time(NULL) + 30;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_err err = {0};
    prov_proc_stop(&S.main, &err);
    prov_proc_stop(&S.plain, &err);
    prov_proc_stop(&S.short_ttl, &err);
    prov_stack_stop(&S.st, &err);
    return 0;
}

/* ---- tests ---- */

static void test_ops_and_routing(void **state)
{
    (void)state;
    prov_reply r = prov_call(S.main.url, "GET", "/healthz", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(status_word(&r), "ok");
    prov_reply_clear(&r);
    r = prov_call(S.main.url, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(status_word(&r), "ready");
    prov_reply_clear(&r);
    r = prov_call(S.main.url, "GET", "/nope", NULL, NULL);
    expect(&r, 404, "Not Found: no endpoint GET /nope");
    r = prov_call(S.main.url, "GET", API "/pair/start", NULL, NULL);
    expect(&r, 405, "Method Not Allowed: " API "/pair/start takes POST");
    r = prov_call(S.main.url, "POST", API "/connections/abc", NULL, NULL);
    expect(&r, 405, "Method Not Allowed");

    /* The chat web app calls from its own origin; others get no CORS grant. */
    const char *allowed[] = {"Origin: https://chat.mindroom.chat", "Access-Control-Request-Method: POST", NULL};
    r = prov_call(S.main.url, "OPTIONS", API "/pair/start", allowed, NULL);
    assert_int_equal(r.status, 204);
    assert_string_equal(r.allow_origin, "https://chat.mindroom.chat");
    prov_reply_clear(&r);
    const char *other[] = {"Origin: https://evil.example", NULL};
    r = prov_call(S.main.url, "GET", "/healthz", other, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.allow_origin, "");
    prov_reply_clear(&r);
}

/* 256 connections from one address, left silent, do not shut another client out: /healthz
 * still answers a client from 127.0.0.2. */
static void test_one_address_cannot_starve_others(void **state)
{
    (void)state;
    char *answer;
    size_t held;
    mr_err err = {0};
    if (mr_tp_get_while_crowded(S.plain.port, "127.0.0.1", 256, "127.0.0.2", "/healthz", &answer, &held, &err) != MR_OK)
        fail_msg("%s", err.msg);
    if (!strstr(answer, "HTTP/1.1 200 "))
        fail_msg("with %zu connections held from 127.0.0.1, /healthz answered: %s", held, answer);
    free(answer);
}

static void test_browser_auth(void **state)
{
    (void)state;
    prov_reply r = prov_call(S.main.url, "POST", API "/pair/start", NULL, NULL);
    expect(&r, 401, "Missing Matrix access token");
    const char *bad[] = {"Authorization: Bearer not-a-token", NULL};
    r = prov_call(S.main.url, "POST", API "/pair/start", bad, NULL);
    expect(&r, 401, "Invalid Matrix access token");
    r = prov_call(S.main.url, "GET", API "/connections", bad, NULL);
    expect(&r, 401, "Invalid Matrix access token");
    char token[256], header[400];
    new_user(token, sizeof token, NULL, 0);
    snprintf(header, sizeof header, "X-Matrix-Access-Token: %s", token);
    const char *alt[] = {header, NULL};
    r = prov_call(S.main.url, "POST", API "/pair/start", alt, NULL);
    assert_int_equal(r.status, 200);
    keep_code(json_string_value(json_object_get(r.json, "pair_code")));
    prov_reply_clear(&r);
    /* The session header is required for status. */
    char auth[400];
    bearer(auth, sizeof auth, token);
    const char *no_session[] = {auth, NULL};
    r = prov_call(S.main.url, "GET", API "/pair/status", no_session, NULL);
    expect(&r, 400, "Missing X-Local-MindRoom-Pair-Session-Id header");
}

static void test_full_round_trip(void **state)
{
    (void)state;
    char token[256], owner[64], auth[400], xff[64];
    new_user(token, sizeof token, owner, sizeof owner);
    bearer(auth, sizeof auth, token);
    new_address(xff, sizeof xff);
    const char *headers[] = {auth, NULL};
    long long before = (long long)time(NULL);
    prov_reply r = prov_call(S.main.url, "POST", API "/pair/start", headers, NULL);
    long long after = (long long)time(NULL);
    assert_int_equal(r.status, 200);
    /* Codes live 600 s by default, counted from pair/start. */
    struct tm tm = {0};
    const char *exp = json_string_value(json_object_get(r.json, "expires_at"));
    assert_non_null(exp);
    assert_non_null(strptime(exp, "%Y-%m-%dT%H:%M:%SZ", &tm));
    long long expires = (long long)timegm(&tm);
    assert_true(expires >= before + 600 && expires <= after + 600);
    const char *code = json_string_value(json_object_get(r.json, "pair_code"));
    char saved_code[16], session[64];
    snprintf(saved_code, sizeof saved_code, "%s", code);
    snprintf(session, sizeof session, "%s", json_string_value(json_object_get(r.json, "pair_session_id")));
    keep_code(saved_code);
    assert_int_equal(json_integer_value(json_object_get(r.json, "poll_interval_seconds")), 3);
    assert_int_equal(strlen(json_string_value(json_object_get(r.json, "expires_at"))), 20);
    prov_reply_clear(&r);

    r = status_of(&S.main, token, session);
    assert_int_equal(r.status, 200);
    assert_string_equal(status_word(&r), "pending");
    prov_reply_clear(&r);

    /* The code is read case- and space-insensitively. */
    char sloppy[32];
    snprintf(sloppy, sizeof sloppy, " %s ", saved_code);
    for (char *c = sloppy; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    r = complete(&S.main, sloppy, xff);
    assert_int_equal(r.status, 200);
    const char *id = json_string_value(json_object_get(r.json, "client_id"));
    const char *secret = json_string_value(json_object_get(r.json, "client_secret"));
    const char *ns = json_string_value(json_object_get(r.json, "namespace"));
    assert_non_null(id);
    assert_non_null(secret);
    assert_non_null(ns);
    keep_secret(secret);
    assert_int_equal(strlen(id), 24);
    assert_int_equal(strlen(secret), 43);
    assert_int_equal(strlen(ns), 8);
    assert_int_equal(strspn(ns, pair_namespace_alphabet), 8);
    assert_string_equal(json_string_value(json_object_get(r.json, "owner_user_id")), owner);
    json_t *conn = json_object_get(r.json, "connection");
    assert_string_equal(json_string_value(json_object_get(conn, "id")), id);
    assert_string_equal(json_string_value(json_object_get(conn, "client_name")), "laptop");
    assert_string_equal(json_string_value(json_object_get(conn, "fingerprint")), "sha256:0a1b");
    assert_true(json_is_null(json_object_get(conn, "revoked_at")));
    conn_creds c;
    snprintf(c.id, sizeof c.id, "%s", id);
    snprintf(c.secret, sizeof c.secret, "%s", secret);
    snprintf(c.ns, sizeof c.ns, "%s", ns);
    prov_reply_clear(&r);

    r = status_of(&S.main, token, session);
    assert_string_equal(status_word(&r), "connected");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "connection"), "id")), c.id);
    prov_reply_clear(&r);

    r = prov_call(S.main.url, "GET", API "/connections", headers, NULL);
    assert_int_equal(r.status, 200);
    json_t *list = json_object_get(r.json, "connections");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "namespace")), c.ns);
    prov_reply_clear(&r);

    char username[64], user_id[96], password[64];
    snprintf(username, sizeof username, "mindroom_mind_%s", c.ns);
    snprintf(user_id, sizeof user_id, "@%s:localhost", username);
    snprintf(password, sizeof password, "agent-pw-%s", c.ns);
    keep_secret(password);
    r = register_agent(&S.main, &c, S.st.hs.url, username, password);
    assert_int_equal(r.status, 200);
    assert_string_equal(status_word(&r), "created");
    assert_string_equal(json_string_value(json_object_get(r.json, "user_id")), user_id);
    prov_reply_clear(&r);

    /* The account is real: it logs in with the password and got its display name. */
    char login[256];
    snprintf(login, sizeof login,
             "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"%s\"},\"password\":\"%s\"}",
             username, password);
    r = prov_call(S.st.hs.url, "POST", "/_matrix/client/v3/login", NULL, login);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "user_id")), user_id);
    prov_reply_clear(&r);
    char profile[160];
    snprintf(profile, sizeof profile, "/_matrix/client/v3/profile/%s/displayname", user_id);
    r = prov_call(S.st.hs.url, "GET", profile, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "displayname")), "Mind");
    prov_reply_clear(&r);

    /* A second registration of the same name: the account exists, which is not an error. */
    r = register_agent(&S.main, &c, S.st.hs.url, username, password);
    assert_int_equal(r.status, 200);
    assert_string_equal(status_word(&r), "user_in_use");
    assert_string_equal(json_string_value(json_object_get(r.json, "user_id")), user_id);
    prov_reply_clear(&r);

    r = prov_call(S.main.url, "GET", API "/connections", headers, NULL);
    json_t *seen = json_object_get(json_array_get(json_object_get(r.json, "connections"), 0), "last_seen_at");
    assert_true(json_is_string(seen));
    prov_reply_clear(&r);
}

static void test_code_is_single_use(void **state)
{
    (void)state;
    char token[256], code[64], xff[64];
    conn_creds c;
    pair_new_user(&S.main, token, code, xff, &c);
    prov_reply r = complete(&S.main, code, xff);
    expect(&r, 409, "Pair code already used");
}

static void test_new_start_expires_the_pending_code(void **state)
{
    (void)state;
    char token[256], first[64], first_session[64], second[64], second_session[64], xff[64];
    new_user(token, sizeof token, NULL, 0);
    new_address(xff, sizeof xff);
    pair_start(&S.main, token, first, first_session);
    pair_start(&S.main, token, second, second_session);
    prov_reply r = status_of(&S.main, token, first_session);
    assert_string_equal(status_word(&r), "expired");
    prov_reply_clear(&r);
    r = complete(&S.main, first, xff);
    expect(&r, 410, "Pair code expired");
    conn_creds c;
    complete_ok(&S.main, second, xff, &c);
    /* Someone else's session is not found, not shown. */
    char other[256];
    new_user(other, sizeof other, NULL, 0);
    r = status_of(&S.main, other, second_session);
    expect(&r, 404, "Pair session not found");
}

static void test_unknown_and_malformed_codes(void **state)
{
    (void)state;
    char xff[64];
    new_address(xff, sizeof xff);
    const char *headers[] = {xff, NULL};
    prov_reply r = complete(&S.main, "ZZZZ-2222", xff);
    expect(&r, 404, "Pair code not found");
    static const char *const malformed[] = {
        "{\"pair_code\":\"ABCD\",\"client_name\":\"a\",\"client_pubkey_or_fingerprint\":\"f\"}",
        "{\"pair_code\":\"ABCD-EFGH\",\"client_pubkey_or_fingerprint\":\"f\"}",
        "{\"pair_code\":\"ABCD-EFGH\",\"client_name\":\"\",\"client_pubkey_or_fingerprint\":\"f\"}",
        "{\"pair_code\":\"ABCD-EFGH\",\"client_name\":\"a\",\"client_pubkey_or_fingerprint\":\"\"}",
        "{\"pair_code\":7,\"client_name\":\"a\",\"client_pubkey_or_fingerprint\":\"f\"}",
        "not json",
        "[]",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        r = prov_call(S.main.url, "POST", API "/pair/complete", headers, malformed[i]);
        if (r.status != 422)
            fail_msg("%s: %ld %s", malformed[i], r.status, prov_detail(&r));
        assert_true(strlen(prov_detail(&r)) > 10);
        prov_reply_clear(&r);
    }
    /* 120 characters are fine (multi-byte ones count once), 121 are not. */
    char body[1024], name[400] = "";
    for (int i = 0; i < 120; i++)
        strcat(name, "\xc3\xa9");
    snprintf(body, sizeof body, "{\"pair_code\":\"ZZZZ-3333\",\"client_name\":\"%s\",\"client_pubkey_or_fingerprint\":\"f\"}", name);
    r = prov_call(S.main.url, "POST", API "/pair/complete", headers, body);
    expect(&r, 404, "Pair code not found");
    strcat(name, "x");
    snprintf(body, sizeof body, "{\"pair_code\":\"ZZZZ-3333\",\"client_name\":\"%s\",\"client_pubkey_or_fingerprint\":\"f\"}", name);
    r = prov_call(S.main.url, "POST", API "/pair/complete", headers, body);
    expect(&r, 422, "client_name must be a string of 1 to 120 characters");
}

typedef struct racer {
    const char *code;
    pthread_barrier_t *go;
    long status;
    char detail[160];
    char secret[64];
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->go);
    prov_reply rep = complete(&S.main, r->code, "X-Forwarded-For: 203.0.113.77");
    r->status = rep.status;
    snprintf(r->detail, sizeof r->detail, "%s", prov_detail(&rep));
    const char *s = json_string_value(json_object_get(rep.json, "client_secret"));
    snprintf(r->secret, sizeof r->secret, "%s", s ? s : "");
    prov_reply_clear(&rep);
    return NULL;
}

static void test_concurrent_completes_have_one_winner(void **state)
{
    (void)state;
    char token[256], code[64], session[64], auth[400];
    new_user(token, sizeof token, NULL, 0);
    pair_start(&S.main, token, code, session);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACERS);
    racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (racer){.code = code, .go = &go};
        assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
    }
    int won = 0, used = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        if (racers[i].status == 200) {
            won++;
            keep_secret(racers[i].secret);
        } else if (racers[i].status == 409 && strncmp(racers[i].detail, "Pair code already used", 22) == 0) {
            used++;
        } else {
            fail_msg("racer %d: %ld %s", i, racers[i].status, racers[i].detail);
        }
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(won, 1);
    assert_int_equal(used, RACERS - 1);
    /* The losers' connections were rolled back: the owner sees exactly one. */
    bearer(auth, sizeof auth, token);
    const char *headers[] = {auth, NULL};
    prov_reply r = prov_call(S.main.url, "GET", API "/connections", headers, NULL);
    assert_int_equal(json_array_size(json_object_get(r.json, "connections")), 1);
    prov_reply_clear(&r);
}

static void test_revocation_blocks_register_agent(void **state)
{
    (void)state;
    char token[256], code[64], xff[64], auth[400], other[256], other_auth[400], path[128];
    conn_creds c;
    pair_new_user(&S.main, token, code, xff, &c);
    new_user(other, sizeof other, NULL, 0);
    char username[64];
    snprintf(username, sizeof username, "mindroom_router_%s", c.ns);
    keep_secret("router-pw-1");
    prov_reply r = register_agent(&S.main, &c, S.st.hs.url, username, "router-pw-1");
    assert_int_equal(r.status, 200);
    prov_reply_clear(&r);

    snprintf(path, sizeof path, API "/connections/%s", c.id);
    bearer(other_auth, sizeof other_auth, other);
    const char *not_owner[] = {other_auth, NULL};
    r = prov_call(S.main.url, "DELETE", path, not_owner, NULL);
    expect(&r, 404, "Connection not found");
    bearer(auth, sizeof auth, token);
    const char *owner[] = {auth, NULL};
    r = prov_call(S.main.url, "DELETE", API "/connections/no-such-id", owner, NULL);
    expect(&r, 404, "Connection not found");
    r = prov_call(S.main.url, "DELETE", path, owner, NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "revoked")));
    assert_string_equal(json_string_value(json_object_get(r.json, "connection_id")), c.id);
    prov_reply_clear(&r);

    r = register_agent(&S.main, &c, S.st.hs.url, username, "router-pw-1");
    expect(&r, 403, "Connection revoked");
    r = prov_call(S.main.url, "GET", API "/connections", owner, NULL);
    json_t *listed = json_array_get(json_object_get(r.json, "connections"), 0);
    assert_string_equal(json_string_value(json_object_get(listed, "id")), c.id);
    assert_true(json_is_string(json_object_get(listed, "revoked_at")));
    prov_reply_clear(&r);
    /* Revoking twice is fine and keeps the first time. */
    r = prov_call(S.main.url, "DELETE", path, owner, NULL);
    assert_int_equal(r.status, 200);
    prov_reply_clear(&r);
}

static void test_register_agent_checks_in_order(void **state)
{
    (void)state;
    char token[256], code[64], xff[64];
    conn_creds c;
    pair_new_user(&S.main, token, code, xff, &c);
    conn_creds wrong = c;
    wrong.secret[0] = wrong.secret[0] == 'A' ? 'B' : 'A';
    char good[64], upper[64], nested[64];
    snprintf(good, sizeof good, "mindroom_mind_%s", c.ns);
    snprintf(upper, sizeof upper, "MINDROOM_MIND_%s", c.ns);
    snprintf(nested, sizeof nested, "mindroom_../_%s", c.ns);

    /* Homeserver and username shape come before credentials. */
    prov_reply r = register_agent(&S.main, NULL, "https://elsewhere.example", good, "pw");
    expect(&r, 400, "Homeserver mismatch");
    r = register_agent(&S.main, NULL, S.st.hs.url, upper, "pw");
    expect(&r, 400, "Invalid username");
    r = register_agent(&S.main, NULL, S.st.hs.url, good, "pw");
    expect(&r, 401, "Missing local client credentials");
    r = register_agent(&S.main, &wrong, S.st.hs.url, good, "pw");
    expect(&r, 401, "Invalid local client credentials");

    /* Escapes from the namespace. */
    static const char *const escapes[] = {"mindroom_x_othernamespace", "../", "mindroom_mind", "alice"};
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        r = register_agent(&S.main, &c, S.st.hs.url, escapes[i], "pw");
        expect(&r, 403, "Requested username is outside this local connection namespace");
    }
    r = register_agent(&S.main, &c, S.st.hs.url, nested, "pw");
    expect(&r, 403, "Requested username is outside this local connection namespace");
    char trailing[80];
    snprintf(trailing, sizeof trailing, "%s/", S.st.hs.url);
    keep_secret("mind-pw-77");
    r = register_agent(&S.main, &c, trailing, good, "mind-pw-77");
    assert_int_equal(r.status, 200);
    assert_string_equal(status_word(&r), "created");
    prov_reply_clear(&r);
    /* Without credentials, whatever the body: 401, before its shape is looked at. */
    r = prov_call(S.main.url, "POST", API "/register-agent", NULL, "{\"homeserver\":1}");
    expect(&r, 401, "Missing local client credentials");
    r = prov_call(S.main.url, "POST", API "/register-agent", NULL, NULL);
    expect(&r, 401, "Missing local client credentials");
    r = register_agent(&S.main, &wrong, S.st.hs.url, good, "");
    expect(&r, 401, "Invalid local client credentials");
    /* With them, the shape: 422. */
    r = register_agent(&S.main, &c, S.st.hs.url, good, "");
    expect(&r, 422, "password is a required non-empty string");
    char id[128], secret[128];
    snprintf(id, sizeof id, "X-Local-MindRoom-Client-Id: %s", c.id);
    snprintf(secret, sizeof secret, "X-Local-MindRoom-Client-Secret: %s", c.secret);
    const char *creds[] = {id, secret, NULL};
    r = prov_call(S.main.url, "POST", API "/register-agent", creds, "not json");
    expect(&r, 422, "The request body is not JSON");
}

static void test_homeserver_refusal_is_502(void **state)
{
    (void)state;
    const char *env[] = {"MATRIX_REGISTRATION_TOKEN=not-the-token", "MINDROOM_PROVISIONING_TRUSTED_PROXIES=127.0.0.1",
                         NULL};
    prov_proc bad;
    mr_err err = {0};
    mr_tp_check_step(prov_proc_start(&S.st, "badtoken", 0, env, &bad, &err), &err, "starting a service with a wrong token");
    char token[256], code[64], username[64], xff[64];
    conn_creds c;
    pair_new_user(&bad, token, code, xff, &c);
    snprintf(username, sizeof username, "mindroom_mind_%s", c.ns);
    prov_reply r = register_agent(&bad, &c, S.st.hs.url, username, "pw-x");
    expect(&r, 502, "Matrix registration failed: ");
    mr_tp_check_step(prov_proc_stop(&bad, &err), &err, "stopping the service");
    char *log = prov_slurp(bad.log);
    assert_non_null(log);
    assert_null(strstr(log, "not-the-token"));
    free(log);
}

static void test_brute_force_hits_429(void **state)
{
    (void)state;
    char xff[64], other[64];
    new_address(xff, sizeof xff);
    new_address(other, sizeof other);
    for (int i = 0; i < 20; i++) {
        char guess[16];
        snprintf(guess, sizeof guess, "QQQQ-%04d", 2000 + i);
        prov_reply r = complete(&S.main, guess, xff);
        expect(&r, 404, "Pair code not found");
    }
    /* The 21st try, even with a real code, is refused until the window ends. */
    char token[256], code[64], session[64];
    new_user(token, sizeof token, NULL, 0);
    pair_start(&S.main, token, code, session);
    prov_reply r = complete(&S.main, code, xff);
    assert_int_equal(r.status, 429);
    assert_true(r.retry_after >= 1 && r.retry_after <= 60);
    expect(&r, 429, "Rate limit exceeded: at most 20 pair/complete requests per minute per client address");
    /* Another address is not affected and gets the code. */
    conn_creds c;
    complete_ok(&S.main, code, other, &c);
}

/* One POST with the given Content-Type (NULL: none) and body; the status and the detail. */
static long post_raw(const char *path, const char *content_type, const char *body, size_t len, char *detail,
                     size_t cap)
{
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = S.main.url};
    mr_http_result res = {0};
    mr_err err = {0};
    /* An address of its own: 127.0.0.1's budget belongs to the replicas test. */
    char xff[64];
    new_address(xff, sizeof xff);
    const char *headers[] = {xff, NULL};
    mr_http_call call = {.method = "POST", .url = path, .body = body, .body_len = len, .content_type = content_type,
                         .headers = headers};
    mr_tp_check_step(mr_http_client_new(&o, &c, &err), &err, "client");
    mr_tp_check_step(mr_http_client_do(c, &call, &res, &err), &err, path);
    json_t *j = json_loadb(res.body, res.body_len, 0, NULL);
    const char *d = json_string_value(json_object_get(j, "detail"));
    snprintf(detail, cap, "%s", d ? d : "(no detail)");
    long status = res.status;
    json_decref(j);
    mr_http_result_clear(&res);
    mr_http_client_free(c);
    return status;
}

/* Bodies that are not JSON get 415, oversized ones 413 from libs/http, each as {"detail": ...}. */
static void test_body_type_and_size_answers(void **state)
{
    (void)state;
    char detail[256];
    static const char code[] = "{\"pair_code\":\"ZZZZ-4444\",\"client_name\":\"a\",\"client_pubkey_or_fingerprint\":\"f\"}";
    static const char *const wrong[] = {"text/plain", "application/x-www-form-urlencoded", "application/jsonx", NULL};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        long st = post_raw(API "/pair/complete", wrong[i], code, strlen(code), detail, sizeof detail);
        if (st != 415 || strncmp(detail, "Unsupported Media Type", 22) != 0)
            fail_msg("Content-Type %s: %ld %s", wrong[i] ? wrong[i] : "(none)", st, detail);
    }
    assert_int_equal(post_raw(API "/pair/complete", "Application/JSON; charset=utf-8", code, strlen(code), detail,
                              sizeof detail), 404);
    assert_int_equal(post_raw(API "/register-agent", "text/plain", "x", 1, detail, sizeof detail), 415);
    size_t big = 65 * 1024;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, ' ', big);
    assert_int_equal(post_raw(API "/pair/complete", "application/json", body, big, detail, sizeof detail), 413);
    assert_string_equal(detail, "request body exceeds 65536 bytes");
    free(body);
}

/* Seven spellings of one IPv6 address, and another address of its /64, share one budget of
 * pair/complete; an IPv4-mapped address counts as the IPv4 address. */
static void test_address_spellings_share_one_budget(void **state)
{
    (void)state;
    static const char *const spellings[] = {
        "2001:db8:77:1::1", "2001:DB8:77:1::1", "2001:0db8:0077:0001:0000:0000:0000:0001", "2001:db8:77:1:0:0:0:1",
        "2001:db8:77:1::0:1", "2001:db8:77:1:0::1", "2001:db8:77:1:0000::0001", "2001:db8:77:1:abcd::9",
    };
    for (int i = 0; i < 20; i++) {
        char xff[96], guess[16];
        snprintf(xff, sizeof xff, "X-Forwarded-For: %s", spellings[i % 8]);
        snprintf(guess, sizeof guess, "VVVV-%04d", 2000 + i);
        prov_reply r = complete(&S.main, guess, xff);
        expect(&r, 404, "Pair code not found");
    }
    prov_reply r = complete(&S.main, "VVVV-3000", "X-Forwarded-For: 2001:db8:77:1:ffff::1");
    expect(&r, 429, "Rate limit exceeded");
    r = complete(&S.main, "VVVV-3001", "X-Forwarded-For: 2001:db8:77:2::1");
    expect(&r, 404, "Pair code not found");

    for (int i = 0; i < 20; i++) {
        prov_reply q = complete(&S.main, "UUUU-2222", i % 2 ? "X-Forwarded-For: 198.51.100.250"
                                                             : "X-Forwarded-For: ::ffff:198.51.100.250");
        expect(&q, 404, "Pair code not found");
    }
    r = complete(&S.main, "UUUU-2222", "X-Forwarded-For: ::ffff:c633:64fa");
    expect(&r, 429, "Rate limit exceeded");
}

/* GET path from main: the status, the body and the Content-Security-Policy (each malloc'd). */
static long get_page(const char *path, char **body, char **csp, char **type)
{
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = S.main.url};
    mr_http_result res = {0};
    mr_err err = {0};
    mr_http_call call = {.method = "GET", .url = path};
    mr_tp_check_step(mr_http_client_new(&o, &c, &err), &err, "client");
    mr_tp_check_step(mr_http_client_do(c, &call, &res, &err), &err, path);
    const char *h = mr_http_result_header(&res, "Content-Security-Policy");
    const char *t = mr_http_result_header(&res, "Content-Type");
    *csp = strdup(h ? h : "");
    *type = strdup(t ? t : "");
    *body = strdup(res.body ? res.body : "");
    long status = res.status;
    mr_http_result_clear(&res);
    mr_http_client_free(c);
    return status;
}

/* The pairing page comes from the binary with a strict policy: script and style from this
 * origin only, none inline; network calls to this service and the homeserver only. */
static void test_pairing_page_is_served_with_a_strict_policy(void **state)
{
    (void)state;
    char *body, *csp, *type;
    char connect[160];
    snprintf(connect, sizeof connect, "connect-src 'self' %s;", S.st.hs.url);
    static const char *const assets[][2] = {{"/local-mindroom/", "text/html"},
                                            {"/local-mindroom/app.js", "text/javascript"},
                                            {"/local-mindroom/app.css", "text/css"}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(get_page(assets[i][0], &body, &csp, &type), 200);
        assert_true(strncmp(type, assets[i][1], strlen(assets[i][1])) == 0);
        assert_non_null(strstr(csp, "default-src 'none'; script-src 'self'; style-src 'self';"));
        assert_non_null(strstr(csp, connect));
        assert_non_null(strstr(csp, "frame-ancestors 'none'"));
        assert_null(strstr(csp, "unsafe"));
        if (i == 0) {
            assert_non_null(strstr(body, "<script src=\"app.js\" defer></script>"));
            assert_null(strstr(body, "<script>"));
            assert_null(strstr(body, "<style"));
            assert_null(strstr(body, " style="));
            assert_null(strstr(body, " onclick="));
        }
        if (i == 1) {
            /* The token stays with the tab. */
            assert_non_null(strstr(body, "sessionStorage"));
            assert_null(strstr(body, "localStorage"));
            assert_null(strstr(body, "document.cookie"));
        }
        free(body);
        free(csp);
        free(type);
    }
    assert_int_equal(get_page("/local-mindroom/config.json", &body, &csp, &type), 200);
    json_t *cfg = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(cfg, "homeserver")), S.st.hs.url);
    json_decref(cfg);
    free(body);
    free(csp);
    free(type);
    prov_reply r = prov_call(S.main.url, "GET", "/local-mindroom/secrets.txt", NULL, NULL);
    expect(&r, 404, "Not Found: the pairing page has no secrets.txt");
    r = prov_call(S.main.url, "POST", "/local-mindroom/", NULL, NULL);
    expect(&r, 405, "Method Not Allowed");
}

static void test_replicas_share_limits_and_ignore_forged_addresses(void **state)
{
    (void)state;
    /* plain trusts no proxy: its forged X-Forwarded-For headers all count as 127.0.0.1, the same
     * subject main counts for requests without the header. */
    for (int i = 0; i < 20; i++) {
        char guess[16], forged[64];
        snprintf(guess, sizeof guess, "WWWW-%04d", 2000 + i);
        snprintf(forged, sizeof forged, "X-Forwarded-For: 192.0.2.%d", i + 1);
        prov_reply r = complete(i % 2 ? &S.main : &S.plain, guess, i % 2 ? NULL : forged);
        expect(&r, 404, "Pair code not found");
    }
    prov_reply r = complete(&S.plain, "WWWW-3000", "X-Forwarded-For: 192.0.2.200");
    expect(&r, 429, "Rate limit exceeded");
    r = complete(&S.main, "WWWW-3001", NULL);
    expect(&r, 429, "Rate limit exceeded");

    /* Per user: ten pair/start a minute. */
    char token[256], auth[400];
    new_user(token, sizeof token, NULL, 0);
    bearer(auth, sizeof auth, token);
    const char *headers[] = {auth, NULL};
    for (int i = 0; i < 10; i++) {
        r = prov_call(i % 2 ? S.main.url : S.plain.url, "POST", API "/pair/start", headers, NULL);
        assert_int_equal(r.status, 200);
        keep_code(json_string_value(json_object_get(r.json, "pair_code")));
        prov_reply_clear(&r);
    }
    r = prov_call(S.main.url, "POST", API "/pair/start", headers, NULL);
    expect(&r, 429, "Rate limit exceeded: at most 10 pair/start requests per minute per Matrix user");
    char *text = NULL;
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = S.main.url};
    mr_http_result res = {0};
    mr_err err = {0};
    mr_http_call call = {.method = "GET", .url = "/metrics"};
    mr_tp_check_step(mr_http_client_new(&o, &c, &err), &err, "client");
    mr_tp_check_step(mr_http_client_do(c, &call, &res, &err), &err, "GET /metrics");
    assert_int_equal(res.status, 200);
    text = res.body;
    assert_non_null(strstr(text, "\nprovisioning_rate_limited_total{scope=\"pair_complete\"} "));
    assert_non_null(strstr(text, "\nprovisioning_rate_limited_total{scope=\"pair_start\"} 1\n"));
    assert_non_null(strstr(text, "\nprovisioning_pair_completes_total{result=\"not_found\"} "));
    assert_non_null(strstr(text, "\nhttp_requests_total{"));
    mr_http_result_clear(&res);
    mr_http_client_free(c);
}

static void test_restart_mid_flow_loses_nothing(void **state)
{
    (void)state;
    char token[256], code[64], session[64], xff[64];
    new_user(token, sizeof token, NULL, 0);
    new_address(xff, sizeof xff);
    pair_start(&S.main, token, code, session);
    mr_err err = {0};
    int port = S.main.port;
    const char *trusting[] = {"MINDROOM_PROVISIONING_TRUSTED_PROXIES=127.0.0.1", NULL};
    mr_tp_check_step(prov_proc_stop(&S.main, &err), &err, "stopping main");
    mr_tp_check_step(prov_proc_start(&S.st, "main", port, trusting, &S.main, &err), &err, "restarting main");
    assert_int_equal(S.main.port, port);

    prov_reply r = status_of(&S.main, token, session);
    assert_string_equal(status_word(&r), "pending");
    prov_reply_clear(&r);
    conn_creds c;
    complete_ok(&S.main, code, xff, &c);

    /* While Redis is down the service says so (503) instead of guessing; it comes back with
     * everything (append-only file) and the connection still authenticates. */
    mr_tp_check_step(mr_tp_redis_stop(&S.st.redis, false, &err), &err, "stopping redis");
    r = prov_call(S.main.url, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 503);
    assert_string_equal(status_word(&r), "not ready");
    assert_true(strncmp(json_string_value(json_object_get(r.json, "reason")), "store: ", 7) == 0);
    prov_reply_clear(&r);
    char auth[400];
    bearer(auth, sizeof auth, token);
    const char *headers[] = {auth, NULL};
    r = prov_call(S.main.url, "POST", API "/pair/start", headers, NULL);
    expect(&r, 503, "Service temporarily unavailable: its state store failed");
    mr_tp_check_step(mr_tp_redis_restart(&S.st.redis, &err), &err, "restarting redis");
    char username[64];
    snprintf(username, sizeof username, "mindroom_coder_%s", c.ns);
    keep_secret("coder-pw-9");
    r = register_agent(&S.main, &c, S.st.hs.url, username, "coder-pw-9");
    for (int i = 0; i < 50 && r.status == 503; i++) {
        /* The service reconnects to Redis on its own; a request may land before it has. */
        prov_reply_clear(&r);
        usleep(100000);
        r = register_agent(&S.main, &c, S.st.hs.url, username, "coder-pw-9");
    }
    assert_int_equal(r.status, 200);
    assert_string_equal(status_word(&r), "created");
    prov_reply_clear(&r);
    r = status_of(&S.main, token, session);
    assert_string_equal(status_word(&r), "connected");
    prov_reply_clear(&r);
}

static void test_settings_stop_start_up(void **state)
{
    (void)state;
    char *out = NULL;
    const char *no_token[] = {"MINDROOM_STORE_URL=redis://127.0.0.1:1/0", "MATRIX_HOMESERVER=http://127.0.0.1:1", NULL};
    assert_int_equal(prov_run_binary(no_token, NULL, &out), 2);
    assert_non_null(strstr(out, "mindroom-provisioning: MATRIX_REGISTRATION_TOKEN: not set"));
    free(out);
    const char *short_ttl[] = {"MINDROOM_STORE_URL=redis://127.0.0.1:1/0", "MATRIX_HOMESERVER=http://127.0.0.1:1",
                               "MATRIX_REGISTRATION_TOKEN=t0ken-value", "MINDROOM_PROVISIONING_PAIR_TTL_SECONDS=10",
                               NULL};
    assert_int_equal(prov_run_binary(short_ttl, NULL, &out), 2);
    assert_non_null(strstr(out, "MINDROOM_PROVISIONING_PAIR_TTL_SECONDS: \"10\" is not a whole number from 30 to 86400"));
    assert_null(strstr(out, "t0ken-value"));
    free(out);
    /* A store not up yet is waited for: the service answers, /readyz says why it is not ready. */
    const char *down[] = {"MINDROOM_STORE_URL=redis://127.0.0.1:1/0", NULL};
    prov_proc p;
    mr_err err = {0};
    if (prov_proc_start(&S.st, "store-down", 0, down, &p, &err) != MR_OK)
        fail_msg("%s", err.msg);
    prov_reply r = prov_call(p.url, "GET", "/readyz", NULL, NULL);
    assert_int_equal(r.status, 503);
    const char *reason = json_string_value(json_object_get(r.json, "reason"));
    assert_non_null(reason);
    assert_non_null(strstr(reason, "store: store ping: redis at 127.0.0.1:1: "));
    prov_reply_clear(&r);
    if (prov_proc_stop(&p, &err) != MR_OK)
        fail_msg("%s", err.msg);
    const char *bogus[] = {"--bogus", NULL};
    assert_int_equal(prov_run_binary(NULL, bogus, &out), 2);
    assert_non_null(strstr(out, "unknown option '--bogus'"));
    free(out);
    const char *help[] = {"--help", NULL};
    assert_int_equal(prov_run_binary(NULL, help, &out), 0);
    assert_non_null(strstr(out, "MINDROOM_PROVISIONING_TRUSTED_PROXIES"));
    free(out);
}

static void test_short_ttl_code_expires(void **state)
{
    (void)state;
    long long wait = S.short_expires + 1 - (long long)time(NULL);
    if (wait > 0)
        sleep((unsigned)wait);
    prov_reply r = status_of(&S.short_ttl, S.short_token, S.short_session);
    assert_string_equal(status_word(&r), "expired");
    prov_reply_clear(&r);
    char xff[64];
    new_address(xff, sizeof xff);
    r = complete(&S.short_ttl, S.short_code, xff);
    expect(&r, 410, "Pair code expired: codes are valid for 30 s");
}

static void assert_free_of_secrets(const char *where, const char *text)
{
    for (int i = 0; i < S.nsecrets; i++)
        if (strstr(text, S.secrets[i]))
            fail_msg("%s holds the secret %s in clear", where, S.secrets[i]);
}

static void test_secrets_stay_out_of_logs_and_store(void **state)
{
    (void)state;
    /* Stopped first, so every log line is flushed. */
    mr_err err = {0};
    mr_tp_check_step(prov_proc_stop(&S.main, &err), &err, "stopping main");
    mr_tp_check_step(prov_proc_stop(&S.plain, &err), &err, "stopping plain");
    mr_tp_check_step(prov_proc_stop(&S.short_ttl, &err), &err, "stopping short");
    assert_true(S.nsecrets > 20);
    const prov_proc *procs[] = {&S.main, &S.plain, &S.short_ttl};
    for (size_t i = 0; i < 3; i++) {
        char *log = prov_slurp(procs[i]->log);
        assert_non_null(log);
        assert_non_null(strstr(log, "serving pair codes"));
        assert_free_of_secrets(procs[i]->log, log);
        free(log);
    }
    char *main_log = prov_slurp(S.main.log);
    assert_non_null(strstr(main_log, "register-agent @mindroom_"));
    free(main_log);

    char *dump = prov_redis_dump(&S.st);
    assert_non_null(dump);
    assert_free_of_secrets("the Redis store", dump);
    /* What is there instead: the digests. */
    char digest[65], key[128];
    pair_sha256_hex(S.short_code, strlen(S.short_code), digest);
    snprintf(key, sizeof key, "KEY pair:code:%s", digest);
    assert_non_null(strstr(dump, key));
    assert_non_null(strstr(dump, "secret_sha256"));
    int digests_found = 0;
    for (int i = 0; i < S.nsecrets; i++) {
        pair_sha256_hex(S.secrets[i], strlen(S.secrets[i]), digest);
        digests_found += strstr(dump, digest) != NULL;
    }
    /* Every client secret and code handed out is stored as its digest (tokens and passwords
     * are not stored at all). */
    assert_true(digests_found >= 10);
    free(dump);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_and_routing),
        cmocka_unit_test(test_one_address_cannot_starve_others),
        cmocka_unit_test(test_browser_auth),
        cmocka_unit_test(test_full_round_trip),
        cmocka_unit_test(test_code_is_single_use),
        cmocka_unit_test(test_new_start_expires_the_pending_code),
        cmocka_unit_test(test_unknown_and_malformed_codes),
        cmocka_unit_test(test_concurrent_completes_have_one_winner),
        cmocka_unit_test(test_revocation_blocks_register_agent),
        cmocka_unit_test(test_register_agent_checks_in_order),
        cmocka_unit_test(test_homeserver_refusal_is_502),
        cmocka_unit_test(test_brute_force_hits_429),
        cmocka_unit_test(test_body_type_and_size_answers),
        cmocka_unit_test(test_pairing_page_is_served_with_a_strict_policy),
        cmocka_unit_test(test_address_spellings_share_one_budget),
        cmocka_unit_test(test_replicas_share_limits_and_ignore_forged_addresses),
        cmocka_unit_test(test_restart_mid_flow_loses_nothing),
        cmocka_unit_test(test_settings_stop_start_up),
        cmocka_unit_test(test_short_ttl_code_expires),
        cmocka_unit_test(test_secrets_stay_out_of_logs_and_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
