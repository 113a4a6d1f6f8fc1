/* test_connect.c -- libs/oauth on SQLite and on a real redis-server: minting, links,
 * lookup, single use (also under concurrency), expiry, request checks, sealed credentials and
 * when they can be used or refreshed without the provider. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mindroom/oauth.h"
#include "peers.h"
#include "tp_check.h"

#define ALICE "@alice:example.org"

static const unsigned char SECRET[32] = "0123456789abcdef0123456789abcdef";

typedef struct backend {
    const char *name;
    mr_store *store;
} backend;

static mr_tp_redis g_redis;
static char g_dir[512];
static backend g_sqlite = {"sqlite", NULL}, g_redis_store = {"redis", NULL};

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_store_options o = {.secret = SECRET, .secret_len = sizeof SECRET};
    char url[600];
    mr_tp_check(mr_tp_mkdtemp("mr-oauth", g_dir, sizeof g_dir, &err), &err);
    snprintf(url, sizeof url, "sqlite://%s/state.db", g_dir);
    mr_tp_check(mr_store_open(url, &o, &g_sqlite.store, &err), &err);
    mr_tp_check(mr_tp_redis_start(&g_redis, &err), &err);
    mr_tp_check(mr_store_open(g_redis.url, &o, &g_redis_store.store, &err), &err);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_store_close(g_sqlite.store);
    mr_store_close(g_redis_store.store);
    mr_tp_redis_destroy(&g_redis);
    mr_tp_rmtree(g_dir, NULL);
    return 0;
}

static void mint(mr_store *s, const char *requester, const char *provider, long ttl_ms,
                 char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1])
{
    mr_err err = {0};
    mr_oauth_connect_request rq = {.requester = requester, .provider = provider, .scopes = "repo read:user",
                                   .agent = "coder", .room_id = "!lobby:example.org", .ttl_ms = ttl_ms};
    mr_tp_check(mr_oauth_connect_mint(s, &rq, token, &err), &err);
}

static void test_mint_and_lookup(void **state)
{
    backend *b = *state;
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    mint(b->store, ALICE, "github", 0, token);
    assert_int_equal(strlen(token), MR_OAUTH_CONNECT_TOKEN_LEN);
    mr_oauth_connect_grant g;
    mr_err err = {0};
    mr_tp_check(mr_oauth_connect_lookup(b->store, token, &g, &err), &err);
    assert_string_equal(g.requester, ALICE);
    assert_string_equal(g.provider, "github");
    assert_string_equal(g.scopes, "repo read:user");
    assert_string_equal(g.agent, "coder");
    assert_string_equal(g.room_id, "!lobby:example.org");
    assert_int_equal(g.expires_at_ms - g.created_at_ms, MR_OAUTH_CONNECT_TTL_DEFAULT_MS);
    char digest[MR_OAUTH_SHA256_HEX_LEN + 1];
    mr_oauth_sha256_hex(token, digest);
    assert_string_equal(g.token_sha256, digest);
    /* Only the digest names the grant, and the grant does not hold the token. */
    char key[128], *value = NULL;
    size_t len = 0;
    snprintf(key, sizeof key, "oauth:connect:%s", token);
    assert_int_equal(mr_store_get(b->store, key, &value, &len, &err), MR_ENOTFOUND);
    snprintf(key, sizeof key, "oauth:connect:%s", digest);
    mr_tp_check(mr_store_get(b->store, key, &value, &len, &err), &err);
    assert_null(strstr(value, token));
    free(value);
    long ttl = 0;
    mr_tp_check(mr_store_ttl(b->store, key, &ttl, &err), &err);
    assert_true(ttl > 0 && ttl <= MR_OAUTH_CONNECT_TTL_DEFAULT_MS);
    mr_oauth_connect_grant_clear(&g);
    /* Two mints never give the same token. */
    char other[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    mint(b->store, ALICE, "github", 0, other);
    assert_string_not_equal(token, other);
}

/* A token of alice's for a provider, good for a minute, and its grant as looked up. */
typedef struct minted {
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    mr_oauth_connect_grant grant;
} minted;

static void minted_grant(mr_store *s, const char *provider, minted *m)
{
    mint(s, ALICE, provider, 60000, m->token);
    mr_err err = {0};
    mr_tp_check(mr_oauth_connect_lookup(s, m->token, &m->grant, &err), &err);
}

static void test_single_use(void **state)
{
    backend *b = *state;
    minted m;
    minted_grant(b->store, "google_drive", &m);
    mr_err err = {0};
    mr_tp_check(mr_oauth_connect_redeem(b->store, &m.grant, &err), &err);
    assert_int_equal(mr_oauth_connect_redeem(b->store, &m.grant, &err), MR_EEXISTS);
    assert_string_equal(err.msg, "connect token was already used");
    mr_oauth_connect_grant again;
    assert_int_equal(mr_oauth_connect_lookup(b->store, m.token, &again, &err), MR_EEXISTS);
    assert_null(again.requester);
    mr_oauth_connect_grant_clear(&m.grant);
}

typedef struct racer {
    mr_store *store;
    const char *token;
    mr_code rc;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    mr_oauth_connect_grant g;
    mr_err err = {0};
    r->rc = mr_oauth_connect_lookup(r->store, r->token, &g, &err);
    if (r->rc == MR_OK) {
        r->rc = mr_oauth_connect_redeem(r->store, &g, &err);
        mr_oauth_connect_grant_clear(&g);
    }
    return NULL;
}

static void test_concurrent_redeem_has_one_winner(void **state)
{
    backend *b = *state;
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    mint(b->store, ALICE, "github", 60000, token);
    racer r[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (racer){b->store, token, MR_EINTERNAL};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    int won = 0, used = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        won += r[i].rc == MR_OK;
        used += r[i].rc == MR_EEXISTS;
    }
    assert_int_equal(won, 1);
    assert_int_equal(used, 7);
}

/* On a moved clock, not by waiting: from its expires_at on, a grant is neither looked up nor
 * redeemed, even while the store still holds it (the store drops it on its own clock). */
static void test_expiry(void **state)
{
    backend *b = *state;
    minted m;
    minted_grant(b->store, "github", &m);
    long long end = m.grant.expires_at_ms;
    mr_oauth_connect_grant late;
    mr_err err = {0};
    mr_tp_check(mr_oauth_connect_lookup_at(b->store, m.token, end - 1, &late, &err), &err);
    mr_oauth_connect_grant_clear(&late);
    assert_int_equal(mr_oauth_connect_lookup_at(b->store, m.token, end, &late, &err), MR_ENOTFOUND);
    assert_string_equal(err.msg, "connect token is unknown or has expired");
    assert_int_equal(mr_oauth_connect_redeem_at(b->store, &m.grant, end, &err), MR_ENOTFOUND);
    assert_string_equal(err.msg, "connect token has expired");
    mr_tp_check(mr_oauth_connect_redeem_at(b->store, &m.grant, end - 1, &err), &err);
    mr_oauth_connect_grant_clear(&m.grant);
}

static void test_unknown_and_malformed_tokens(void **state)
{
    backend *b = *state;
    mr_oauth_connect_grant g;
    mr_err err = {0};
    assert_int_equal(mr_oauth_connect_lookup(b->store, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &g, &err),
                     MR_ENOTFOUND);
    static const char *const bad[] = {"", "short", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mr_oauth_connect_lookup(b->store, bad[i], &g, &err), MR_EINVAL);
        assert_string_equal(err.msg, "connect token is malformed");
    }
}

/* Requests mint refuses, each with the start of the error it must give; the rest of each is
 * alice's for github, which mint takes. */
#define GH .requester = ALICE, .provider = "github"
static const struct {
    const char *name;
    mr_oauth_connect_request rq;
    const char *msg_prefix;
} refused_mints[] = {
    {"requester not a Matrix ID", {.requester = "alice", .provider = "github"}, "requester: "},
    {"no requester", {.provider = "github"}, "requester: "},
    {"provider name", {.requester = ALICE, .provider = "Git-Hub"},
     "provider name \"Git-Hub\" may only hold a-z, 0-9 and _"},
    {"two spaces in scopes", {GH, .scopes = "repo  user"}, "scopes: character 5 is not allowed"},
    {"quotes in scopes", {GH, .scopes = "repo \"user\""}, "scopes: character 6 is not allowed"},
    {"leading space in scopes", {GH, .scopes = " repo"}, "scopes: character 1 is not allowed"},
    {"room_id not a room ID", {GH, .room_id = "lobby"}, "room_id: "},
    {"control character in agent", {GH, .agent = "co\nder"}, "agent: holds a control character"},
    {"negative ttl", {GH, .ttl_ms = -1}, "ttl_ms is -1; it must be 1 to 3600000 (0 for the default)"},
    {"ttl over the maximum", {GH, .ttl_ms = MR_OAUTH_CONNECT_TTL_MAX_MS + 1}, "ttl_ms is 3600001;"},
};
#undef GH

static void test_mint_checks_the_request(void **state)
{
    backend *b = *state;
    for (size_t i = 0; i < sizeof refused_mints / sizeof refused_mints[0]; i++) {
        char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1] = "x";
        mr_err err = {0};
        const char *want = refused_mints[i].msg_prefix;
        mr_code rc = mr_oauth_connect_mint(b->store, &refused_mints[i].rq, token, &err);
        if (rc != MR_EINVAL || strncmp(err.msg, want, strlen(want)) != 0 || token[0])
            fail_msg("%s: got %d \"%s\" and token \"%s\", expected MR_EINVAL \"%s...\" and no token",
                     refused_mints[i].name, rc, err.msg, token, want);
    }
    mr_oauth_connect_request ok = {.requester = ALICE, .provider = "github"};
    /* Optional fields may be left out. */
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    mr_err err = {0};
    mr_tp_check(mr_oauth_connect_mint(b->store, &ok, token, &err), &err);
    mr_oauth_connect_grant g;
    mr_tp_check(mr_oauth_connect_lookup(b->store, token, &g, &err), &err);
    assert_string_equal(g.scopes, "");
    assert_null(g.agent);
    assert_null(g.room_id);
    mr_oauth_connect_grant_clear(&g);
}

static void test_credentials_are_sealed(void **state)
{
    backend *b = *state;
    static const char creds[] = "{\"access_token\":\"at-secret-123\",\"token_type\":\"Bearer\"}";
    mr_err err = {0};
    mr_tp_check(mr_oauth_credentials_put(b->store, ALICE, "github", creds, strlen(creds), &err), &err);
    char *json = NULL, *raw = NULL;
    size_t len = 0;
    mr_tp_check(mr_oauth_credentials_get(b->store, ALICE, "github", &json, &len, &err), &err);
    assert_string_equal(json, creds);
    free(json);
    mr_tp_check(mr_store_get(b->store, "oauth:cred:github:" ALICE, &raw, &len, &err), &err);
    for (size_t i = 0; i + 13 <= len; i++)
        assert_false(memcmp(raw + i, "at-secret-123", 13) == 0);
    free(raw);
    assert_int_equal(mr_oauth_credentials_get(b->store, "@bob:example.org", "github", &json, &len, &err), MR_ENOTFOUND);
    assert_null(json);
    assert_int_equal(mr_oauth_credentials_get(b->store, ALICE, "google_drive", &json, &len, &err), MR_ENOTFOUND);
    assert_int_equal(mr_oauth_credentials_put(b->store, "alice", "github", creds, strlen(creds), &err), MR_EINVAL);
}

static void put(mr_store *s, const char *json)
{
    mr_err err = {0};
    mr_tp_check(mr_oauth_credentials_put(s, ALICE, "gitlab", json, strlen(json), &err), &err);
}

/* What needs no provider: a token without expiry is used as it is; an expired one without a
 * refresh token means connecting again; an unreachable token endpoint is worth a retry and
 * leaves no refresh lock behind. Nothing listens on port 1. */
static void test_fresh_credentials_without_the_provider(void **state)
{
    backend *b = *state;
    mr_oauth_client c = {.token_url = "http://127.0.0.1:1/token", .client_id = "id", .client_secret = "secret"};
    char *token = NULL;
    mr_err err = {0};
    assert_int_equal(mr_oauth_credentials_fresh(b->store, ALICE, "gitlab", &c, &token, &err), MR_ENOTFOUND);
    put(b->store, "{\"access_token\":\"at-forever\"}");
    mr_tp_check(mr_oauth_credentials_fresh(b->store, ALICE, "gitlab", &c, &token, &err), &err);
    assert_string_equal(token, "at-forever");
    free(token);
    put(b->store, "{\"access_token\":\"at-old\",\"expires_in\":3600,\"obtained_at\":1000}");
    assert_int_equal(mr_oauth_credentials_fresh(b->store, ALICE, "gitlab", &c, &token, &err), MR_ENOTFOUND);
    assert_non_null(strstr(err.msg, "has expired and there is no refresh token"));
    assert_null(token);
    put(b->store, "{\"access_token\":\"at-old\",\"expires_in\":3600,\"obtained_at\":1000,\"refresh_token\":\"rt\"}");
    assert_int_equal(mr_oauth_credentials_fresh(b->store, ALICE, "gitlab", &c, &token, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "http://127.0.0.1:1/token"));
    char *lock = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_get(b->store, "oauth:refresh:gitlab:" ALICE, &lock, &len, &err), MR_ENOTFOUND);
}

static void test_link(void **state)
{
    (void)state;
    char out[256];
    mr_err err = {0};
    static const char t[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    mr_tp_check(mr_oauth_connect_link("https://mindroom.example.org/", "google_drive", t, out, sizeof out, &err), &err);
    assert_string_equal(out, "https://mindroom.example.org/api/oauth/google_drive/authorize?connect_token=" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    mr_tp_check(mr_oauth_connect_link(NULL, "github", t, out, sizeof out, &err), &err);
    assert_string_equal(out, "/api/oauth/github/authorize?connect_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(mr_oauth_connect_link(NULL, "github", t, out, 40, &err), MR_EINVAL);
}

int main(void)
{
#define ON(fn, b) cmocka_unit_test_prestate(fn, &b)
    const struct CMUnitTest tests[] = {
        ON(test_mint_and_lookup, g_sqlite), ON(test_mint_and_lookup, g_redis_store),
        ON(test_single_use, g_sqlite), ON(test_single_use, g_redis_store),
        ON(test_concurrent_redeem_has_one_winner, g_sqlite), ON(test_concurrent_redeem_has_one_winner, g_redis_store),
        ON(test_expiry, g_sqlite), ON(test_expiry, g_redis_store),
        ON(test_unknown_and_malformed_tokens, g_sqlite), ON(test_unknown_and_malformed_tokens, g_redis_store),
        ON(test_mint_checks_the_request, g_sqlite), ON(test_mint_checks_the_request, g_redis_store),
        ON(test_credentials_are_sealed, g_sqlite), ON(test_credentials_are_sealed, g_redis_store),
        ON(test_fresh_credentials_without_the_provider, g_sqlite),
        ON(test_fresh_credentials_without_the_provider, g_redis_store),
        cmocka_unit_test(test_link),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
