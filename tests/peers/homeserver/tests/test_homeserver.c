/* test_homeserver.c -- mr-test-homeserver over real HTTP: registration, login, rooms, power
 * levels, join rules, sending, sync, to-device, keys and the 429 switch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hs_peer.h"
#include "peers.h"

#define SERVER "test.local"
#define TOKEN "tok-123"
#define SECRET "s3cret"
#define AS_TOKEN "as-tok-9"

static mr_hs_peer hs;

/* ---- HTTP ---- */

typedef struct resp {
    long status;
    json_t *body;
    char headers[4096];
    char *raw;
} resp;

/* One request to the homeserver; raw may be NULL (no body). */
static resp call_raw(const char *method, const char *path, const char *token, const char *raw)
{
    char url[1024], auth[256];
    snprintf(url, sizeof url, "%s%s", hs.url, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token ? token : "");
    const char *lines[] = {"Content-Type: application/json", token ? auth : NULL, NULL};
    mr_tp_http_reply h;
    mr_err err = {0};
    if (mr_tp_http_do(method, url, lines, raw, 60, &h, &err) != MR_OK)
        fail_msg("%s", err.msg);
    resp r = {.status = h.status, .raw = h.body, .body = json_loads(h.body, 0, NULL)};
    memcpy(r.headers, h.headers, sizeof r.headers);
    return r;
}

/* As call_raw with a JSON body (taken; NULL for none). */
static resp call(const char *method, const char *path, const char *token, json_t *body)
{
    char *raw = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    resp r = call_raw(method, path, token, raw);
    free(raw);
    return r;
}

static void resp_free(resp *r)
{
    json_decref(r->body);
    free(r->raw);
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void expect_error(resp r, long status, const char *errcode)
{
    if (r.status != status || !str(r.body, "errcode") || strcmp(str(r.body, "errcode"), errcode) != 0)
        fail_msg("expected %ld %s, got %ld %s", status, errcode, r.status, r.raw ? r.raw : "");
    resp_free(&r);
}

static json_t *expect_ok(resp r)
{
    if (r.status != 200 || !r.body)
        fail_msg("expected 200 JSON, got %ld %s", r.status, r.raw ? r.raw : "");
    free(r.raw);
    return r.body;
}

/* Percent-encodes for a path segment; four rotating buffers. */
static const char *enc(const char *s)
{
    static char bufs[4][512];
    static int next;
    char *out = bufs[next++ % 4];
    char *e = curl_easy_escape(NULL, s, 0);
    snprintf(out, 512, "%s", e);
    curl_free(e);
    return out;
}

static const char *path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *path(const char *fmt, ...)
{
    static char bufs[4][1024];
    static int next;
    char *out = bufs[next++ % 4];
    int n = snprintf(out, 1024, "/_matrix/client/v3");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, 1024 - (size_t)n, fmt, ap);
    va_end(ap);
    return out;
}

/* ---- accounts and rooms ---- */

typedef struct account {
    char user_id[128];
    char token[128];
    char device_id[64];
} account;

static account acct_from(json_t *j)
{
    account a = {0};
    snprintf(a.user_id, sizeof a.user_id, "%s", str(j, "user_id"));
    snprintf(a.token, sizeof a.token, "%s", str(j, "access_token"));
    snprintf(a.device_id, sizeof a.device_id, "%s", str(j, "device_id"));
    json_decref(j);
    return a;
}

/* POST /register for name (password "pw") with auth (taken; NULL for none) in session. */
static resp register_round(const char *name, const char *session, json_t *auth)
{
    json_t *body = json_pack("{s:s, s:s}", "username", name, "password", "pw");
    if (auth) {
        if (session)
            json_object_set_new(auth, "session", json_string(session));
        json_object_set_new(body, "auth", auth);
    }
    return call("POST", path("/register"), NULL, body);
}

static json_t *token_auth(const char *token)
{
    return json_pack("{s:s, s:s}", "type", "m.login.registration_token", "token", token);
}

static json_t *dummy_auth(void)
{
    return json_pack("{s:s}", "type", "m.login.dummy");
}

/* The first round: a 401 with no errcode; its session into out. */
static void register_start(const char *name, char session[64])
{
    resp r = register_round(name, NULL, NULL);
    assert_int_equal(r.status, 401);
    assert_null(json_object_get(r.body, "errcode"));
    assert_non_null(str(r.body, "session"));
    snprintf(session, 64, "%s", str(r.body, "session"));
    resp_free(&r);
}

/* A 401 for another round in session: the stages completed so far, ","-joined, and the
 * errcode ("" for none). */
static void expect_round(resp r, const char *session, const char *completed, const char *errcode)
{
    if (r.status != 401)
        fail_msg("expected 401, got %ld %s", r.status, r.raw ? r.raw : "");
    assert_string_equal(str(r.body, "session"), session);
    assert_non_null(json_object_get(r.body, "flows"));
    char got[256] = "";
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r.body, "completed"), i, v)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "," : "",
                 json_string_value(v));
    assert_string_equal(got, completed);
    assert_string_equal(str(r.body, "errcode") ? str(r.body, "errcode") : "", errcode);
    resp_free(&r);
}

/* Synapse's flows with the token required: every flow starts with the token stage, then the
 * dummy stage. */
static account signup(const char *name)
{
    char session[64];
    register_start(name, session);
    expect_round(register_round(name, session, token_auth(TOKEN)), session,
                 "m.login.registration_token", "");
    return acct_from(expect_ok(register_round(name, session, dummy_auth())));
}

/* The flows of a 401, as "[a, b], [c]". */
static void flows_of(json_t *challenge, char *out, size_t cap)
{
    size_t i, k, used = 0;
    json_t *flow, *stage;
    out[0] = '\0';
    json_array_foreach(json_object_get(challenge, "flows"), i, flow) {
        used += (size_t)snprintf(out + used, cap - used, "%s[", i ? ", " : "");
        json_array_foreach(json_object_get(flow, "stages"), k, stage)
            used += (size_t)snprintf(out + used, cap - used, "%s%s", k ? ", " : "",
                                     json_string_value(stage));
        used += (size_t)snprintf(out + used, cap - used, "]");
    }
}

static void room_create(const account *a, json_t *body, char *room_id, size_t cap)
{
    json_t *j = expect_ok(call("POST", path("/createRoom"), a->token, body));
    snprintf(room_id, cap, "%s", str(j, "room_id"));
    json_decref(j);
}

static json_t *test_state(void)
{
    return expect_ok(call("GET", "/_test/state", NULL, NULL));
}

static json_t *room_dump(const char *room_id)
{
    json_t *s = test_state();
    json_t *r = json_incref(json_object_get(json_object_get(s, "rooms"), room_id));
    json_decref(s);
    assert_non_null(r);
    return r;
}

static const char *member_of(json_t *dump, const char *user_id)
{
    return str(json_object_get(dump, "members"), user_id);
}

static char *send_text(const account *a, const char *room_id, const char *txn, const char *text)
{
    json_t *j = expect_ok(call("PUT", path("/rooms/%s/send/m.room.message/%s", enc(room_id), txn),
                               a->token, json_pack("{s:s, s:s}", "msgtype", "m.text", "body", text)));
    char *id = strdup(str(j, "event_id"));
    json_decref(j);
    return id;
}

static json_t *sync_since(const account *a, const char *since, int timeout_ms, const char *filter)
{
    char q[1024];
    int n = snprintf(q, sizeof q, "/sync?timeout=%d", timeout_ms);
    if (since)
        n += snprintf(q + n, sizeof q - (size_t)n, "&since=%s", since);
    if (filter)
        snprintf(q + n, sizeof q - (size_t)n, "&filter=%s", enc(filter));
    return expect_ok(call("GET", path("%s", q), a->token, NULL));
}

/* The position a sync now would return, for a later sync to start from. */
static void sync_position(const account *a, char *since, size_t cap)
{
    json_t *s = sync_since(a, NULL, 0, NULL);
    snprintf(since, cap, "%s", str(s, "next_batch"));
    json_decref(s);
}

static json_t *joined_room(json_t *sync, const char *room_id)
{
    return json_object_get(json_object_get(json_object_get(sync, "rooms"), "join"), room_id);
}

/* Bodies of the m.room.message events in a joined room's timeline, "|"-joined. */
static void timeline_texts(json_t *sync, const char *room_id, char *out, size_t cap)
{
    out[0] = '\0';
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(json_object_get(joined_room(sync, room_id), "timeline"),
                                       "events"), i, ev) {
        if (strcmp(str(ev, "type"), "m.room.message") != 0)
            continue;
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", used ? "|" : "", str(json_object_get(ev, "content"), "body"));
    }
}

/* ---- fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mr_hs_peer_opts o = {.server_name = SERVER, .registration_token = TOKEN, .shared_secret = SECRET,
                         .appservice_token = AS_TOKEN};
    mr_err err = {0};
    if (mr_hs_peer_start(&o, &hs, &err) != MR_OK) {
        print_error("%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_code rc = mr_hs_peer_stop(&hs, &err);
    curl_global_cleanup();
    if (rc != MR_OK) {
        print_error("%s\n", err.msg);
        return -1;
    }
    return 0;
}

/* ---- tests ---- */

static void test_versions_and_unknown_endpoints(void **state)
{
    (void)state;
    json_t *v = expect_ok(call("GET", "/_matrix/client/versions", NULL, NULL));
    json_t *list = json_object_get(v, "versions");
    bool has_v11 = false;
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
        has_v11 = has_v11 || strcmp(json_string_value(x), "v1.1") == 0;
    assert_true(has_v11);
    json_decref(v);
    expect_error(call("GET", path("/no/such/thing"), NULL, NULL), 404, "M_UNRECOGNIZED");
    expect_error(call("DELETE", path("/createRoom"), NULL, NULL), 405, "M_UNRECOGNIZED");
    resp r = call("OPTIONS", path("/createRoom"), NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Access-Control-Allow-Origin: *"));
    resp_free(&r);
}

/* Stops the homeserver's clock, then moves it ms ahead. */
static void clock_advance(long long ms)
{
    json_decref(expect_ok(call("POST", "/_test/clock", NULL,
                               json_pack("{s:I}", "advance_ms", (json_int_t)ms))));
}

static bool token_valid(const char *token)
{
    char q[256];
    snprintf(q, sizeof q, "/_matrix/client/v1/register/m.login.registration_token/validity?token=%s",
             token);
    json_t *j = expect_ok(call("GET", q, NULL, NULL));
    bool valid = json_is_true(json_object_get(j, "valid"));
    json_decref(j);
    return valid;
}

static bool user_exists(const char *user_id)
{
    bool found;
    mr_err err = {0};
    if (mr_hs_peer_has_user(&hs, user_id, &found, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return found;
}

static void test_register_user_interactive(void **state)
{
    (void)state;
    resp r = register_round("alice", NULL, NULL);
    assert_int_equal(r.status, 401);
    assert_null(json_object_get(r.body, "errcode"));
    char flows[256];
    flows_of(r.body, flows, sizeof flows);
    assert_string_equal(flows, "[m.login.registration_token, m.login.dummy]");
    char session[64];
    snprintf(session, sizeof session, "%s", str(r.body, "session"));
    resp_free(&r);

    /* A wrong token: 401 again, with the flows and Synapse's M_UNAUTHORIZED. */
    r = register_round("alice", session, token_auth("wrong"));
    assert_string_equal(str(r.body, "error"), "Invalid registration token");
    expect_round(r, session, "", "M_UNAUTHORIZED");
    expect_round(register_round("alice", session, json_pack("{s:s}", "type",
                                                            "m.login.registration_token")),
                 session, "", "M_MISSING_PARAM");
    /* The token stage needs the session, even on a first request. */
    r = register_round("alice", NULL, token_auth(TOKEN));
    assert_string_equal(str(r.body, "error"), "Missing UIA session");
    assert_int_equal(r.status, 401);
    assert_string_equal(str(r.body, "errcode"), "M_MISSING_PARAM");
    resp_free(&r);
    /* The dummy stage alone completes no flow. */
    expect_round(register_round("alice", session, dummy_auth()), session, "m.login.dummy", "");
    assert_false(user_exists("@alice:" SERVER));
    /* Stages in any order: the token now completes the flow. */
    json_t *body = json_pack("{s:s, s:s, s:s, s:o}", "username", "alice", "password", "pw",
                             "device_id", "ALICEDEV", "auth", token_auth(TOKEN));
    json_object_set_new(json_object_get(body, "auth"), "session", json_string(session));
    json_t *ok = expect_ok(call("POST", path("/register"), NULL, body));
    assert_string_equal(str(ok, "user_id"), "@alice:" SERVER);
    assert_string_equal(str(ok, "device_id"), "ALICEDEV");
    assert_int_equal(strncmp(str(ok, "access_token"), "syt_", 4), 0);
    json_decref(ok);
    /* The session ended with the registration. */
    expect_error(register_round("alice2", session, dummy_auth()), 400, "M_UNKNOWN");

    /* A session's token may not change once its stage passed. */
    register_start("carl", session);
    expect_round(register_round("carl", session, token_auth(TOKEN)), session,
                 "m.login.registration_token", "");
    expect_round(register_round("carl", session, token_auth("other")), session,
                 "m.login.registration_token", "M_INVALID_PARAM");

    /* Taken and invalid names fail before authentication, in Synapse's words; names are
     * lowercased first. */
    r = register_round("Alice", NULL, NULL);
    assert_string_equal(str(r.body, "error"), "User ID already taken.");
    expect_error(r, 400, "M_USER_IN_USE");
    expect_error(register_round("Bad Name", NULL, NULL), 400, "M_INVALID_USERNAME");
    expect_error(register_round("_hidden", NULL, NULL), 400, "M_INVALID_USERNAME");
    expect_error(call("POST", path("/register"), NULL, json_pack("{s:i}", "username", 5)), 400,
                 "M_UNKNOWN");
    expect_error(call("POST", path("/register?kind=guest"), NULL, json_object()), 403, "M_UNKNOWN");
    expect_error(call("POST", path("/register"), NULL,
                      json_pack("{s:s, s:{s:s}}", "username", "eve", "auth", "type",
                                "m.login.password")), 400, "M_UNKNOWN");

    /* inhibit_login: an account, no device. */
    register_start("quiet", session);
    expect_round(register_round("quiet", session, token_auth(TOKEN)), session,
                 "m.login.registration_token", "");
    ok = expect_ok(call("POST", path("/register"), NULL,
                        json_pack("{s:s, s:b, s:{s:s, s:s}}", "username", "quiet",
                                  "inhibit_login", 1, "auth", "type", "m.login.dummy", "session",
                                  session)));
    assert_string_equal(str(ok, "user_id"), "@quiet:" SERVER);
    assert_null(json_object_get(ok, "access_token"));
    json_decref(ok);

    assert_true(token_valid(TOKEN));
    assert_false(token_valid("wrong"));
    expect_error(call("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
                      NULL, NULL), 400, "M_MISSING_PARAM");
}

/* The group's homeserver is set aside while a test runs one of its own. */
static mr_hs_peer group_hs;

static void own_peer_start(const mr_hs_peer_opts *o)
{
    group_hs = hs;
    mr_err err = {0};
    if (mr_hs_peer_start(o, &hs, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

static void own_peer_stop(void)
{
    if (!group_hs.pid)
        return;
    mr_err err = {0};
    mr_code rc = mr_hs_peer_stop(&hs, &err);
    hs = group_hs;
    group_hs.pid = 0;
    if (rc != MR_OK)
        fail_msg("%s", err.msg);
}

/* A test that failed with its own homeserver running still stops it. */
static int own_peer_teardown(void **state)
{
    (void)state;
    own_peer_stop();
    return 0;
}

static json_t *token_counts(void)
{
    json_t *st = test_state();
    json_t *counts = json_incref(json_object_get(st, "registration_token"));
    json_decref(st);
    return counts;
}

/* Synapse's uses_allowed: a passed token stage is pending and counts against the uses, a
 * finished registration turns it into a completed one. */
static void test_registration_token_uses(void **state)
{
    (void)state;
    mr_hs_peer_opts o = {.server_name = SERVER, .registration_token = TOKEN,
                         .registration_token_uses = 1};
    own_peer_start(&o);
    assert_true(token_valid(TOKEN));
    char first[64], second[64];
    register_start("first", first);
    register_start("second", second);
    expect_round(register_round("first", first, token_auth(TOKEN)), first,
                 "m.login.registration_token", "");
    assert_false(token_valid(TOKEN));
    expect_round(register_round("second", second, token_auth(TOKEN)), second, "", "M_UNAUTHORIZED");
    json_t *counts = token_counts();
    assert_int_equal(json_integer_value(json_object_get(counts, "pending")), 1);
    assert_int_equal(json_integer_value(json_object_get(counts, "completed")), 0);
    json_decref(counts);
    json_decref(expect_ok(register_round("first", first, dummy_auth())));
    counts = token_counts();
    assert_int_equal(json_integer_value(json_object_get(counts, "pending")), 0);
    assert_int_equal(json_integer_value(json_object_get(counts, "completed")), 1);
    json_decref(counts);
    assert_false(token_valid(TOKEN));
    expect_round(register_round("second", second, token_auth(TOKEN)), second, "", "M_UNAUTHORIZED");
    assert_false(user_exists("@second:" SERVER));
    own_peer_stop();
}

static void test_registration_token_expired(void **state)
{
    (void)state;
    mr_hs_peer_opts o = {.server_name = SERVER, .registration_token = TOKEN,
                         .registration_token_expired = true};
    own_peer_start(&o);
    assert_false(token_valid(TOKEN));
    char session[64];
    register_start("late", session);
    expect_round(register_round("late", session, token_auth(TOKEN)), session, "", "M_UNAUTHORIZED");
    expect_round(register_round("late", session, dummy_auth()), session, "m.login.dummy", "");
    assert_false(user_exists("@late:" SERVER));
    own_peer_stop();
}

/* The flows Synapse offers for each setting, and its 403 when registration is off. */
static void test_registration_modes(void **state)
{
    (void)state;
    char flows[256], session[64];
    mr_hs_peer_opts open = {.server_name = SERVER, .open_registration = true};
    own_peer_start(&open);
    resp r = register_round("opal", NULL, NULL);
    flows_of(r.body, flows, sizeof flows);
    assert_string_equal(flows, "[m.login.dummy]");
    snprintf(session, sizeof session, "%s", str(r.body, "session"));
    resp_free(&r);
    json_decref(expect_ok(register_round("opal", session, dummy_auth())));
    /* No token stage without a token setting: Synapse has no checker for it. */
    expect_error(register_round("opal2", NULL, token_auth("x")), 400, "M_UNKNOWN");
    assert_false(token_valid("x"));
    own_peer_stop();

    mr_hs_peer_opts both = {.server_name = SERVER, .open_registration = true,
                            .registration_token = TOKEN};
    own_peer_start(&both);
    r = register_round("bea", NULL, NULL);
    flows_of(r.body, flows, sizeof flows);
    assert_string_equal(flows, "[m.login.dummy], [m.login.registration_token]");
    resp_free(&r);
    register_start("bea", session);
    json_decref(expect_ok(register_round("bea", session, token_auth(TOKEN))));
    own_peer_stop();

    mr_hs_peer_opts closed = {.server_name = SERVER};
    own_peer_start(&closed);
    r = register_round("cleo", NULL, NULL);
    assert_string_equal(str(r.body, "error"), "Registration has been disabled");
    expect_error(r, 403, "M_FORBIDDEN");
    expect_error(call("GET", "/_matrix/client/v1/register/m.login.registration_token/validity"
                             "?token=x", NULL, NULL), 403, "M_FORBIDDEN");
    /* Synapse hands out nonces without a shared secret and refuses only the POST. */
    json_t *j = expect_ok(call("GET", "/_synapse/admin/v1/register", NULL, NULL));
    r = call("POST", "/_synapse/admin/v1/register", NULL,
             json_pack("{s:s, s:s, s:s, s:s}", "nonce", str(j, "nonce"), "username", "cleo",
                       "password", "pw", "mac", "00"));
    json_decref(j);
    assert_string_equal(str(r.body, "error"), "Shared secret registration is not enabled");
    expect_error(r, 400, "M_UNKNOWN");
    own_peer_stop();
}

/* Synapse's rc_registration defaults: three registrations at once, then 429 until the bucket
 * drains at 0.17 a second; a refused request counts nothing. */
static void test_registration_rate_limit(void **state)
{
    (void)state;
    mr_hs_peer_opts o = {.server_name = SERVER, .open_registration = true,
                         .registration_rate_limit = true};
    own_peer_start(&o);
    clock_advance(0);
    char session[64], name[16];
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "rl%d", i);
        register_start(name, session);
        json_decref(expect_ok(register_round(name, session, dummy_auth())));
    }
    resp r = register_round("rl3", NULL, NULL);
    assert_int_equal(r.status, 429);
    assert_string_equal(str(r.body, "errcode"), "M_LIMIT_EXCEEDED");
    json_int_t retry = json_integer_value(json_object_get(r.body, "retry_after_ms"));
    assert_true(retry > 0 && retry <= 1000 / 0.17 + 1);
    resp_free(&r);
    /* retry_after_ms is rounded down, as Synapse's int(); one more millisecond drains it. */
    clock_advance(retry + 1);
    register_start("rl3", session);
    json_decref(expect_ok(register_round("rl3", session, dummy_auth())));
    own_peer_stop();
}

static void hmac_hex(const char *nonce, const char *user, const char *pw, bool admin, char out[41])
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s%c%s%c%s%c%s", nonce, 0, user, 0, pw, 0,
                     admin ? "admin" : "notadmin");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha1(), SECRET, (int)strlen(SECRET), (unsigned char *)msg, (size_t)n, md, &len);
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* A fresh nonce, checked to be Synapse's secrets.token_hex(64). */
static void admin_nonce(char nonce[256])
{
    json_t *j = expect_ok(call("GET", "/_synapse/admin/v1/register", NULL, NULL));
    snprintf(nonce, 256, "%s", str(j, "nonce"));
    json_decref(j);
    assert_int_equal(strlen(nonce), 128);
    assert_int_equal(strspn(nonce, "0123456789abcdef"), 128);
}

static resp admin_post(const char *nonce, const char *user, bool admin, const char *mac)
{
    return call("POST", "/_synapse/admin/v1/register", NULL,
                json_pack("{s:s, s:s, s:s, s:s, s:b}", "nonce", nonce, "username", user,
                          "password", "pw", "mac", mac, "admin", admin));
}

static void test_admin_register(void **state)
{
    (void)state;
    char nonce[256], mac[41];
    admin_nonce(nonce);
    hmac_hex(nonce, "root", "pw", true, mac);
    /* The MAC covers the admin flag: claiming notadmin with an admin MAC fails. */
    resp r = admin_post(nonce, "root", false, mac);
    assert_string_equal(str(r.body, "error"), "HMAC incorrect");
    expect_error(r, 403, "M_FORBIDDEN");
    /* Nonces are single use, right or wrong. */
    r = admin_post(nonce, "root", true, mac);
    assert_string_equal(str(r.body, "error"), "unrecognised nonce");
    expect_error(r, 400, "M_UNKNOWN");
    admin_nonce(nonce);
    hmac_hex(nonce, "root", "pw", true, mac);
    json_t *j = expect_ok(admin_post(nonce, "root", true, mac));
    assert_string_equal(str(j, "user_id"), "@root:" SERVER);
    assert_non_null(str(j, "access_token"));
    json_decref(j);

    /* The MAC is over the name as sent; the account's name is lowercased. */
    admin_nonce(nonce);
    hmac_hex(nonce, "Mixed", "pw", false, mac);
    j = expect_ok(admin_post(nonce, "Mixed", false, mac));
    assert_string_equal(str(j, "user_id"), "@mixed:" SERVER);
    json_decref(j);
    admin_nonce(nonce);
    hmac_hex(nonce, "root", "pw", false, mac);
    expect_error(admin_post(nonce, "root", false, mac), 400, "M_USER_IN_USE");
    admin_nonce(nonce);
    hmac_hex(nonce, "no way", "pw", false, mac);
    expect_error(admin_post(nonce, "no way", false, mac), 400, "M_INVALID_USERNAME");
    expect_error(call("POST", "/_synapse/admin/v1/register", NULL,
                      json_pack("{s:s}", "username", "x")), 400, "M_BAD_JSON");

    /* A nonce lasts Synapse's NONCE_TIMEOUT, 60 s, on the homeserver's clock, stopped here. */
    clock_advance(0);
    char kept[256];
    admin_nonce(kept);
    admin_nonce(nonce);
    clock_advance(60000);
    hmac_hex(kept, "intime", "pw", false, mac);
    json_decref(expect_ok(admin_post(kept, "intime", false, mac)));
    clock_advance(1);
    hmac_hex(nonce, "late", "pw", false, mac);
    expect_error(admin_post(nonce, "late", false, mac), 400, "M_UNKNOWN");
    assert_false(user_exists("@late:" SERVER));
}

static resp appservice_login(const char *token, const char *user, const char *device_id)
{
    return call("POST", path("/login"), token,
                json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "m.login.application_service",
                          "identifier", "type", "m.id.user", "user", user, "device_id", device_id));
}

static resp appservice_register(const char *token, const char *user)
{
    return call("POST", path("/register"), token,
                json_pack("{s:s, s:s, s:b}", "type", "m.login.application_service", "username",
                          user, "inhibit_login", 1));
}

static void expect_dead_token(const char *token)
{
    resp r = call("GET", path("/account/whoami"), token, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(str(r.body, "errcode"), "M_UNKNOWN_TOKEN");
    assert_true(json_is_false(json_object_get(r.body, "soft_logout")));
    resp_free(&r);
}

/* Synapse gives an appservice a token for a user that does not exist yet; the token is refused
 * (401 M_UNKNOWN_TOKEN) until the user is registered. */
static void test_appservice_login_before_register(void **state)
{
    (void)state;
    account ghost = acct_from(expect_ok(appservice_login(AS_TOKEN, "ghost", "GHOSTDEV")));
    assert_string_equal(ghost.user_id, "@ghost:" SERVER);
    assert_string_equal(ghost.device_id, "GHOSTDEV");
    expect_dead_token(ghost.token);
    expect_error(call("PUT", path("/profile/%s/displayname", enc(ghost.user_id)), ghost.token,
                      json_pack("{s:s}", "displayname", "Ghost")), 401, "M_UNKNOWN_TOKEN");
    assert_false(user_exists(ghost.user_id));

    /* Once registered, the user owns that device and its token. */
    json_t *reg = expect_ok(appservice_register(AS_TOKEN, "ghost"));
    assert_string_equal(str(reg, "user_id"), ghost.user_id);
    json_decref(reg);
    json_t *who = expect_ok(call("GET", path("/account/whoami"), ghost.token, NULL));
    assert_string_equal(str(who, "device_id"), "GHOSTDEV");
    json_decref(who);
    expect_error(appservice_register(AS_TOKEN, "ghost"), 400, "M_USER_IN_USE");
}

static void test_appservice_tokens(void **state)
{
    (void)state;
    account user = signup("astok");
    expect_error(appservice_login(NULL, "astok", "D1"), 401, "M_MISSING_TOKEN");
    expect_error(appservice_login("wrong", "astok", "D1"), 401, "M_UNKNOWN_TOKEN");
    resp r = appservice_login(user.token, "astok", "D1");
    assert_int_equal(r.status, 401);
    assert_string_equal(str(r.body, "error"), "This login method is only valid for application services");
    resp_free(&r);
    expect_error(appservice_login(AS_TOKEN, "@astok:elsewhere", "D1"), 403, "M_FORBIDDEN");
    expect_error(appservice_register(NULL, "asnew"), 400, "M_UNKNOWN");
    expect_error(appservice_register("wrong", "asnew"), 401, "M_UNKNOWN_TOKEN");
    expect_error(appservice_register(user.token, "asnew"), 401, "M_UNKNOWN_TOKEN");
    /* A user's registration carries no token. */
    expect_error(call("POST", path("/register"), user.token, json_pack("{s:s}", "username", "asnew")),
                 400, "M_UNKNOWN");
    /* The appservice logs an existing user in with a working token. */
    account as_user = acct_from(expect_ok(appservice_login(AS_TOKEN, "astok", "ASDEV")));
    json_t *who = expect_ok(call("GET", path("/account/whoami"), as_user.token, NULL));
    assert_string_equal(str(who, "user_id"), user.user_id);
    json_decref(who);
}

static void test_login_whoami_logout(void **state)
{
    (void)state;
    account bob = signup("bob");
    json_t *flows = expect_ok(call("GET", path("/login"), NULL, NULL));
    assert_string_equal(str(json_array_get(json_object_get(flows, "flows"), 0), "type"),
                        "m.login.password");
    json_decref(flows);
    expect_error(call("POST", path("/login"), NULL,
                      json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "m.login.password",
                                "identifier", "type", "m.id.user", "user", "bob", "password", "nope")),
                 403, "M_FORBIDDEN");
    expect_error(call("POST", path("/login"), NULL, json_pack("{s:s}", "type", "m.login.sso")),
                 400, "M_UNKNOWN");
    account phone = acct_from(expect_ok(call("POST", path("/login"), NULL,
                                          json_pack("{s:s, s:{s:s, s:s}, s:s}", "type",
                                                    "m.login.password", "identifier", "type",
                                                    "m.id.user", "user", "@bob:" SERVER,
                                                    "password", "pw"))));
    assert_string_equal(phone.user_id, bob.user_id);
    assert_string_not_equal(phone.device_id, bob.device_id);

    json_t *who = expect_ok(call("GET", path("/account/whoami"), phone.token, NULL));
    assert_string_equal(str(who, "user_id"), "@bob:" SERVER);
    assert_string_equal(str(who, "device_id"), phone.device_id);
    json_decref(who);
    /* The token also works as a query parameter. */
    char q[256];
    snprintf(q, sizeof q, "/account/whoami?access_token=%s", bob.token);
    who = expect_ok(call("GET", path("%s", q), NULL, NULL));
    assert_string_equal(str(who, "device_id"), bob.device_id);
    json_decref(who);

    expect_error(call("GET", path("/account/whoami"), NULL, NULL), 401, "M_MISSING_TOKEN");
    json_decref(expect_ok(call("POST", path("/logout"), phone.token, NULL)));
    expect_dead_token(phone.token);
}

static void test_bad_bodies(void **state)
{
    (void)state;
    account a = signup("bodies");
    expect_error(call_raw("POST", path("/createRoom"), a.token, "{nope"), 400, "M_NOT_JSON");
    expect_error(call_raw("POST", path("/createRoom"), a.token, ""), 400, "M_NOT_JSON");
    expect_error(call_raw("POST", path("/createRoom"), a.token, "[1]"), 400, "M_BAD_JSON");
    expect_error(call("POST", path("/createRoom"), a.token, json_pack("{s:i}", "name", 5)), 400,
                 "M_BAD_JSON");
    size_t big = 1024 * 1024 + 16;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    expect_error(call_raw("POST", path("/createRoom"), a.token, huge), 413, "M_TOO_LARGE");
    free(huge);
}

/* Synapse's 64 KiB event limit (federation form, canonical JSON): a 60,000-byte message goes,
 * a 65,000-byte one is 413 M_TOO_LARGE, and a type past 255 bytes too. */
static void test_event_size_limit(void **state)
{
    (void)state;
    account a = signup("sizer");
    char room[128];
    room_create(&a, json_pack("{s:s}", "preset", "private_chat"), room, sizeof room);
    char *body = malloc(65001);
    assert_non_null(body);
    memset(body, 'x', 65000);
    body[65000] = '\0';
    expect_error(call("PUT", path("/rooms/%s/send/m.room.message/big1", room), a.token,
                      json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body)),
                 413, "M_TOO_LARGE");
    body[60000] = '\0';
    json_decref(expect_ok(call("PUT", path("/rooms/%s/send/m.room.message/big2", room), a.token,
                               json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body))));
    memset(body, 't', 256);
    body[256] = '\0';
    expect_error(call("PUT", path("/rooms/%s/send/%s/big3", room, body), a.token, json_object()), 413,
                 "M_TOO_LARGE");
    free(body);
}

static void test_create_room_with_alias(void **state)
{
    (void)state;
    account a = signup("creator");
    char room[128];
    room_create(&a, json_pack("{s:s, s:s, s:s, s:s, s:s}", "room_alias_name", "lobby", "name",
                              "Lobby", "topic", "Say hi", "preset", "public_chat", "visibility",
                              "public"), room, sizeof room);
    json_t *j = expect_ok(call("GET", path("/directory/room/%s", enc("#lobby:" SERVER)), NULL, NULL));
    assert_string_equal(str(j, "room_id"), room);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "servers"), 0)), SERVER);
    json_decref(j);
    expect_error(call("POST", path("/createRoom"), a.token,
                      json_pack("{s:s}", "room_alias_name", "lobby")), 400, "M_ROOM_IN_USE");

    json_t *d = room_dump(room);
    assert_string_equal(str(d, "join_rule"), "public");
    assert_string_equal(str(d, "name"), "Lobby");
    assert_string_equal(str(d, "topic"), "Say hi");
    assert_true(json_is_true(json_object_get(d, "published")));
    assert_string_equal(member_of(d, a.user_id), "join");
    json_t *pl = json_object_get(d, "power_levels");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(pl, "users"), a.user_id)), 100);
    assert_int_equal(json_integer_value(json_object_get(pl, "state_default")), 50);
    assert_int_equal(json_integer_value(json_object_get(pl, "events_default")), 0);
    assert_int_equal(json_integer_value(json_object_get(pl, "invite")), 0);
    assert_int_equal(json_integer_value(json_object_get(pl, "kick")), 50);
    json_decref(d);

    j = expect_ok(call("GET", path("/rooms/%s/state/m.room.name/", enc(room)), a.token, NULL));
    assert_string_equal(str(j, "name"), "Lobby");
    json_decref(j);
    j = expect_ok(call("GET", path("/rooms/%s/state/m.room.canonical_alias", enc(room)), a.token, NULL));
    assert_string_equal(str(j, "alias"), "#lobby:" SERVER);
    json_decref(j);

    j = expect_ok(call("GET", path("/publicRooms"), NULL, NULL));
    bool listed = false;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "chunk"), i, e)
        if (strcmp(str(e, "room_id"), room) == 0)
            listed = str(e, "canonical_alias") && strcmp(str(e, "canonical_alias"), "#lobby:" SERVER) == 0;
    assert_true(listed);
    json_decref(j);
    j = expect_ok(call("GET", path("/directory/list/room/%s", enc(room)), NULL, NULL));
    assert_string_equal(str(j, "visibility"), "public");
    json_decref(j);

    /* Extra aliases: created once, conflict, deleted. */
    const char *extra = enc("#hall:" SERVER);
    json_decref(expect_ok(call("PUT", path("/directory/room/%s", extra), a.token,
                               json_pack("{s:s}", "room_id", room))));
    expect_error(call("PUT", path("/directory/room/%s", extra), a.token,
                      json_pack("{s:s}", "room_id", room)), 409, "M_UNKNOWN");
    json_decref(expect_ok(call("DELETE", path("/directory/room/%s", extra), a.token, NULL)));
    expect_error(call("GET", path("/directory/room/%s", extra), NULL, NULL), 404, "M_NOT_FOUND");
}

static void test_create_space_with_initial_state(void **state)
{
    (void)state;
    account a = signup("spacer");
    account b = signup("invitee");
    char room[128];
    room_create(&a, json_pack("{s:{s:s}, s:[{s:s, s:{s:s}}, {s:s, s:s, s:{s:{s:i, s:i}, s:i}}], s:[s], s:b}",
                              "creation_content", "type", "m.space",
                              "initial_state", "type", "m.room.encryption", "content", "algorithm",
                              "m.megolm.v1.aes-sha2", "type", "m.room.power_levels", "state_key", "",
                              "content", "users", a.user_id, 100, b.user_id, 40, "state_default", 60,
                              "invite", b.user_id, "is_direct", 1),
                room, sizeof room);
    json_t *d = room_dump(room);
    assert_string_equal(str(d, "room_type"), "m.space");
    assert_true(json_is_true(json_object_get(d, "encrypted")));
    assert_string_equal(str(d, "join_rule"), "invite");
    assert_string_equal(member_of(d, b.user_id), "invite");
    json_t *pl = json_object_get(d, "power_levels");
    assert_int_equal(json_integer_value(json_object_get(pl, "state_default")), 60);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(pl, "users"), b.user_id)), 40);
    json_decref(d);

    /* The invitee's sync carries the stripped state. */
    json_t *s = sync_since(&b, NULL, 0, NULL);
    json_t *inv = json_object_get(json_object_get(json_object_get(s, "rooms"), "invite"), room);
    assert_non_null(inv);
    bool saw_type = false, saw_enc = false, saw_me = false;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(json_object_get(inv, "invite_state"), "events"), i, e) {
        json_t *content = json_object_get(e, "content");
        saw_type |= strcmp(str(e, "type"), "m.room.create") == 0 &&
                    str(content, "type") && strcmp(str(content, "type"), "m.space") == 0;
        saw_enc |= strcmp(str(e, "type"), "m.room.encryption") == 0;
        saw_me |= strcmp(str(e, "type"), "m.room.member") == 0 &&
                  strcmp(str(e, "state_key"), b.user_id) == 0 &&
                  json_is_true(json_object_get(content, "is_direct"));
    }
    assert_true(saw_type && saw_enc && saw_me);
    json_decref(s);
}

/* Creates a private room of a with b joined; returns its ID in room. */
/* Two new accounts, and a private room a made and b joined. */
static void two_in_a_room(const char *a_name, const char *b_name, account *a, account *b, char room[128])
{
    *a = signup(a_name);
    *b = signup(b_name);
    room_create(a, json_pack("{s:s, s:[s]}", "preset", "private_chat", "invite", b->user_id), room, 128);
    json_decref(expect_ok(call("POST", path("/rooms/%s/join", enc(room)), b->token, NULL)));
}

static void test_power_levels(void **state)
{
    (void)state;
    account a, b;
    char room[128];
    two_in_a_room("boss", "member", &a, &b, room);
    const char *name_path = path("/rooms/%s/state/m.room.name/", enc(room));
    char name_url[512];
    snprintf(name_url, sizeof name_url, "%s", name_path);
    expect_error(call("PUT", name_url, b.token, json_pack("{s:s}", "name", "mine")), 403, "M_FORBIDDEN");
    free(send_text(&b, room, "t1", "messages need level 0"));

    /* Raise b to 50: now b may set the name, but still not the power levels (100). */
    json_t *pl = expect_ok(call("GET", path("/rooms/%s/state/m.room.power_levels/", enc(room)), a.token, NULL));
    json_object_set_new(json_object_get(pl, "users"), b.user_id, json_integer(50));
    json_decref(expect_ok(call("PUT", path("/rooms/%s/state/m.room.power_levels/", enc(room)),
                               a.token, json_deep_copy(pl))));
    json_decref(expect_ok(call("PUT", name_url, b.token, json_pack("{s:s}", "name", "ours"))));
    json_object_set_new(json_object_get(pl, "users"), b.user_id, json_integer(100));
    expect_error(call("PUT", path("/rooms/%s/state/m.room.power_levels/", enc(room)), b.token,
                      json_deep_copy(pl)), 403, "M_FORBIDDEN");

    /* events overrides events_default: messages at 60 lock b (50) out. */
    json_object_set_new(json_object_get(pl, "users"), b.user_id, json_integer(50));
    json_object_set_new(json_object_get(pl, "events"), "m.room.message", json_integer(60));
    json_decref(expect_ok(call("PUT", path("/rooms/%s/state/m.room.power_levels/", enc(room)),
                               a.token, pl)));
    expect_error(call("PUT", path("/rooms/%s/send/m.room.message/t2", enc(room)), b.token,
                      json_pack("{s:s, s:s}", "msgtype", "m.text", "body", "x")),
                 403, "M_FORBIDDEN");
    json_t *d = room_dump(room);
    assert_string_equal(str(d, "name"), "ours");
    json_decref(d);
    /* b (50) cannot kick a (100); a can kick b. */
    expect_error(call("POST", path("/rooms/%s/kick", enc(room)), b.token,
                      json_pack("{s:s}", "user_id", a.user_id)), 403, "M_FORBIDDEN");
    json_decref(expect_ok(call("POST", path("/rooms/%s/kick", enc(room)), a.token,
                               json_pack("{s:s, s:s}", "user_id", b.user_id, "reason", "test"))));
    d = room_dump(room);
    assert_string_equal(member_of(d, b.user_id), "leave");
    json_decref(d);
}

static void test_join_rules(void **state)
{
    (void)state;
    account a = signup("host");
    account c = signup("guest");
    char priv[128], knock[128], pub[128];
    room_create(&a, json_pack("{s:s}", "preset", "private_chat"), priv, sizeof priv);
    expect_error(call("POST", path("/join/%s", enc(priv)), c.token, NULL), 403, "M_FORBIDDEN");
    expect_error(call("POST", path("/knock/%s", enc(priv)), c.token, NULL), 403, "M_FORBIDDEN");
    /* Not joined, c reads neither its members nor its state: Synapse's 403 M_FORBIDDEN to a user
     * not in a room that is not world-readable. */
    expect_error(call("GET", path("/rooms/%s/joined_members", enc(priv)), c.token, NULL), 403, "M_FORBIDDEN");
    expect_error(call("GET", path("/rooms/%s/state", enc(priv)), c.token, NULL), 403, "M_FORBIDDEN");
    expect_error(call("GET", path("/rooms/%s/state/m.room.create/", enc(priv)), c.token, NULL), 403,
                 "M_FORBIDDEN");
    json_decref(expect_ok(call("POST", path("/rooms/%s/invite", enc(priv)), a.token,
                               json_pack("{s:s}", "user_id", c.user_id))));
    json_t *j = expect_ok(call("POST", path("/join/%s", enc(priv)), c.token, NULL));
    assert_string_equal(str(j, "room_id"), priv);
    json_decref(j);

    room_create(&a, json_pack("{s:s, s:[{s:s, s:{s:s}}]}", "preset", "private_chat",
                              "initial_state", "type", "m.room.join_rules", "content",
                              "join_rule", "knock"), knock, sizeof knock);
    j = expect_ok(call("POST", path("/knock/%s", enc(knock)), c.token,
                       json_pack("{s:s}", "reason", "let me in")));
    assert_string_equal(str(j, "room_id"), knock);
    json_decref(j);
    json_t *d = room_dump(knock);
    assert_string_equal(str(d, "join_rule"), "knock");
    assert_string_equal(member_of(d, c.user_id), "knock");
    json_decref(d);
    expect_error(call("POST", path("/rooms/%s/join", enc(knock)), c.token, NULL), 403, "M_FORBIDDEN");
    json_decref(expect_ok(call("POST", path("/rooms/%s/invite", enc(knock)), a.token,
                               json_pack("{s:s}", "user_id", c.user_id))));
    json_decref(expect_ok(call("POST", path("/rooms/%s/join", enc(knock)), c.token, NULL)));

    room_create(&a, json_pack("{s:s, s:s}", "preset", "public_chat", "room_alias_name", "open"),
                pub, sizeof pub);
    j = expect_ok(call("POST", path("/join/%s", enc("#open:" SERVER)), c.token, NULL));
    assert_string_equal(str(j, "room_id"), pub);
    json_decref(j);
    j = expect_ok(call("GET", path("/rooms/%s/joined_members", enc(pub)), c.token, NULL));
    assert_int_equal(json_object_size(json_object_get(j, "joined")), 2);
    assert_string_equal(str(json_object_get(json_object_get(j, "joined"), c.user_id), "display_name"),
                        "guest");
    json_decref(j);
    expect_error(call("POST", path("/join/%s", enc("#missing:" SERVER)), c.token, NULL), 404,
                 "M_NOT_FOUND");
}

static void test_send_is_idempotent(void **state)
{
    (void)state;
    account a = signup("sender");
    char room[128];
    room_create(&a, json_pack("{s:s}", "preset", "private_chat"), room, sizeof room);
    char *first = send_text(&a, room, "txn-1", "once");
    char *again = send_text(&a, room, "txn-1", "once");
    char *other = send_text(&a, room, "txn-2", "twice");
    assert_string_equal(first, again);
    assert_string_not_equal(first, other);
    /* The same transaction ID from another device is another message. */
    account tablet = acct_from(expect_ok(call("POST", path("/login"), NULL,
                                           json_pack("{s:s, s:{s:s, s:s}, s:s}", "type",
                                                     "m.login.password", "identifier", "type",
                                                     "m.id.user", "user", "sender", "password", "pw"))));
    char *third = send_text(&tablet, room, "txn-1", "thrice");
    assert_string_not_equal(first, third);
    json_t *m = expect_ok(call("GET", path("/rooms/%s/messages?dir=b&limit=50", enc(room)), a.token, NULL));
    int messages = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(m, "chunk"), i, e)
        messages += strcmp(str(e, "type"), "m.room.message") == 0;
    assert_int_equal(messages, 3);
    /* Newest first: thrice, twice, once. */
    assert_string_equal(str(json_object_get(json_array_get(json_object_get(m, "chunk"), 0), "content"), "body"),
                        "thrice");
    json_decref(m);
    /* /_test/rooms/{roomId}/events lists what the room holds, oldest first, state included. */
    char url[300];
    snprintf(url, sizeof url, "/_test/rooms/%s/events", enc(room));
    json_t *all = expect_ok(call("GET", url, NULL, NULL));
    json_t *evs = json_object_get(all, "events");
    assert_string_equal(str(json_array_get(evs, 0), "type"), "m.room.create");
    assert_string_equal(str(json_object_get(json_array_get(evs, json_array_size(evs) - 1), "content"), "body"),
                        "thrice");
    messages = 0;
    json_array_foreach(evs, i, e)
        messages += strcmp(str(e, "type"), "m.room.message") == 0;
    assert_int_equal(messages, 3);
    json_decref(all);
    expect_error(call("GET", "/_test/rooms/%21nowhere%3Alocalhost/events", NULL, NULL), 404, "M_NOT_FOUND");
    free(first);
    free(again);
    free(other);
    free(third);
}

static void test_messages_pagination_and_redaction(void **state)
{
    (void)state;
    account a, b;
    char room[128];
    two_in_a_room("pager", "reader", &a, &b, room);
    char *ids[4];
    for (int i = 0; i < 4; i++) {
        char txn[16], text[16];
        snprintf(txn, sizeof txn, "p%d", i);
        snprintf(text, sizeof text, "m%d", i);
        ids[i] = send_text(&a, room, txn, text);
    }
    json_t *page = expect_ok(call("GET", path("/rooms/%s/messages?dir=b&limit=2", enc(room)), b.token, NULL));
    json_t *chunk = json_object_get(page, "chunk");
    assert_int_equal(json_array_size(chunk), 2);
    assert_string_equal(str(json_array_get(chunk, 0), "event_id"), ids[3]);
    assert_string_equal(str(json_array_get(chunk, 1), "event_id"), ids[2]);
    char next[64];
    snprintf(next, sizeof next, "%s", str(page, "end"));
    json_decref(page);
    char q[256];
    snprintf(q, sizeof q, "/rooms/%s/messages?dir=b&limit=2&from=%s", enc(room), next);
    page = expect_ok(call("GET", path("%s", q), b.token, NULL));
    chunk = json_object_get(page, "chunk");
    assert_string_equal(str(json_array_get(chunk, 0), "event_id"), ids[1]);
    assert_string_equal(str(json_array_get(chunk, 1), "event_id"), ids[0]);
    json_decref(page);

    /* b (level 0) may not redact a's message; a may. */
    expect_error(call("PUT", path("/rooms/%s/redact/%s/r1", enc(room), enc(ids[0])), b.token,
                      json_object()), 403, "M_FORBIDDEN");
    json_t *red = expect_ok(call("PUT", path("/rooms/%s/redact/%s/r1", enc(room), enc(ids[0])),
                                 a.token, json_pack("{s:s}", "reason", "oops")));
    page = expect_ok(call("GET", path("%s", q), b.token, NULL));
    json_t *gone = json_array_get(json_object_get(page, "chunk"), 1);
    assert_int_equal(json_object_size(json_object_get(gone, "content")), 0);
    assert_string_equal(str(json_object_get(json_object_get(gone, "unsigned"), "redacted_because"),
                            "event_id"), str(red, "event_id"));
    json_decref(page);
    json_decref(red);
    expect_error(call("PUT", path("/rooms/%s/redact/%s/r2", enc(room), enc("$nope")), a.token,
                      json_object()), 404, "M_NOT_FOUND");
    for (int i = 0; i < 4; i++)
        free(ids[i]);
}

typedef struct long_poll {
    account who;
    char since[64];
    json_t *result;
} long_poll;

static void *long_poll_thread(void *p)
{
    long_poll *lp = p;
    lp->result = sync_since(&lp->who, lp->since, 30000, NULL);
    return NULL;
}

static int syncs_waiting(void)
{
    json_t *s = test_state();
    int n = (int)json_integer_value(json_object_get(s, "syncs_waiting"));
    json_decref(s);
    return n;
}

static void test_sync_since_and_long_poll(void **state)
{
    (void)state;
    account a, b;
    char room[128];
    two_in_a_room("talker", "listener", &a, &b, room);
    free(send_text(&a, room, "s0", "before"));

    json_t *first = sync_since(&b, NULL, 0, NULL);
    json_t *jr = joined_room(first, room);
    assert_non_null(jr);
    char texts[256];
    timeline_texts(first, room, texts, sizeof texts);
    assert_string_equal(texts, "before");
    /* The initial sync carries the room's state: the create event among it or the timeline. */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(jr, "summary"),
                                                        "m.joined_member_count")), 2);
    long_poll lp = {.who = b};
    snprintf(lp.since, sizeof lp.since, "%s", str(first, "next_batch"));
    json_decref(first);

    pthread_t t;
    pthread_create(&t, NULL, long_poll_thread, &lp);
    while (syncs_waiting() < 1)
        usleep(2000);
    char *id = send_text(&a, room, "s1", "wake up");
    pthread_join(t, NULL);
    timeline_texts(lp.result, room, texts, sizeof texts);
    assert_string_equal(texts, "wake up");
    json_t *ev = json_array_get(json_object_get(json_object_get(joined_room(lp.result, room),
                                                                "timeline"), "events"), 0);
    assert_string_equal(str(ev, "event_id"), id);
    assert_string_equal(str(ev, "sender"), a.user_id);
    assert_string_not_equal(str(lp.result, "next_batch"), lp.since);
    char since[64];
    snprintf(since, sizeof since, "%s", str(lp.result, "next_batch"));
    json_decref(lp.result);
    free(id);

    /* Nothing new: the room is absent. The sender sees its transaction ID, b does not. */
    json_t *quiet = sync_since(&b, since, 0, NULL);
    assert_null(joined_room(quiet, room));
    json_decref(quiet);
    json_t *mine = sync_since(&a, NULL, 0, NULL);
    json_t *events = json_object_get(json_object_get(joined_room(mine, room), "timeline"), "events");
    assert_string_equal(str(json_object_get(json_array_get(events, json_array_size(events) - 1),
                                            "unsigned"), "transaction_id"), "s1");
    json_decref(mine);

    /* Filters by ID and inline: a one-event timeline is limited and says where to go back. */
    json_t *f = expect_ok(call("POST", path("/user/%s/filter", enc(b.user_id)), b.token,
                               json_pack("{s:{s:{s:i}}}", "room", "timeline", "limit", 1)));
    char fid[32];
    snprintf(fid, sizeof fid, "%s", str(f, "filter_id"));
    json_decref(f);
    const char *filters[] = {fid, "{\"room\":{\"timeline\":{\"limit\":1}}}"};
    for (size_t i = 0; i < 2; i++) {
        json_t *s = sync_since(&b, NULL, 0, filters[i]);
        json_t *tl = json_object_get(joined_room(s, room), "timeline");
        assert_int_equal(json_array_size(json_object_get(tl, "events")), 1);
        assert_true(json_is_true(json_object_get(tl, "limited")));
        assert_non_null(str(tl, "prev_batch"));
        json_decref(s);
    }
    expect_error(call("GET", path("/sync?filter=999"), b.token, NULL), 400, "M_INVALID_PARAM");
    expect_error(call("GET", path("/sync?since=bogus"), b.token, NULL), 400, "M_INVALID_PARAM");

    /* The timeline filter's not_rooms (and a rooms list without the room) empties the room's
     * timeline, not limited, its membership still seen, as Synapse's filter_room_timeline does. */
    char tl_filter[320];
    const char *tl_keys[] = {"not_rooms", "rooms"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(tl_filter, sizeof tl_filter, "{\"room\":{\"timeline\":{\"%s\":[\"%s\"]}}}", tl_keys[i],
                 i == 0 ? room : "!elsewhere:localhost");
        json_t *s = sync_since(&b, NULL, 0, tl_filter);
        json_t *jr2 = joined_room(s, room);
        assert_non_null(jr2);
        json_t *tl = json_object_get(jr2, "timeline");
        assert_int_equal(json_array_size(json_object_get(tl, "events")), 0);
        assert_false(json_is_true(json_object_get(tl, "limited")));
        assert_true(json_array_size(json_object_get(json_object_get(jr2, "state"), "events")) > 0);
        json_decref(s);
    }
    snprintf(tl_filter, sizeof tl_filter, "{\"room\":{\"timeline\":{\"rooms\":[\"%s\"]}}}", room);
    json_t *only = sync_since(&b, NULL, 0, tl_filter);
    assert_true(json_array_size(json_object_get(json_object_get(joined_room(only, room), "timeline"),
                                                "events")) > 0);
    json_decref(only);

    /* Leaving shows the room under leave, with the leave event. */
    json_decref(expect_ok(call("POST", path("/rooms/%s/leave", enc(room)), b.token, NULL)));
    json_t *left = sync_since(&b, since, 0, NULL);
    json_t *lr = json_object_get(json_object_get(json_object_get(left, "rooms"), "leave"), room);
    assert_non_null(lr);
    json_t *last = json_array_get(json_object_get(json_object_get(lr, "timeline"), "events"), 0);
    assert_string_equal(str(last, "type"), "m.room.member");
    assert_string_equal(str(json_object_get(last, "content"), "membership"), "leave");
    json_decref(left);
}

static void test_to_device_and_keys(void **state)
{
    (void)state;
    account a, b;
    char room[128];
    two_in_a_room("olmsender", "olmreceiver", &a, &b, room);
    char since[64];
    sync_position(&b, since, sizeof since);

    /* Keys: upload, query, claim one (the count drops), claim the last, then nothing. */
    json_t *up = expect_ok(call("POST", path("/keys/upload"), b.token,
                                json_pack("{s:{s:s, s:s, s:[s], s:{s:s}, s:{}}, s:{s:s, s:s}}",
                                          "device_keys", "user_id", b.user_id, "device_id",
                                          b.device_id, "algorithms", "m.megolm.v1.aes-sha2",
                                          "keys", "ed25519:dev", "edkey", "signatures", "one_time_keys",
                                          "signed_curve25519:AAA", "k1", "signed_curve25519:AAB", "k2")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(up, "one_time_key_counts"),
                                                        "signed_curve25519")), 2);
    json_decref(up);
    /* Synapse's refusals: device keys of another user, null, or incomplete; a key ID without its
     * algorithm; a one-time key ID again with another key (the same one again is fine). */
    expect_error(call("POST", path("/keys/upload"), b.token,
                      json_pack("{s:{s:s, s:s, s:[], s:{}, s:{}}}", "device_keys", "user_id", a.user_id,
                                "device_id", b.device_id, "algorithms", "keys", "signatures")),
                 400, "M_BAD_JSON");
    expect_error(call("POST", path("/keys/upload"), b.token, json_pack("{s:n}", "device_keys")), 400,
                 "M_BAD_JSON");
    expect_error(call("POST", path("/keys/upload"), b.token,
                      json_pack("{s:{s:s, s:s}}", "device_keys", "user_id", b.user_id, "device_id",
                                b.device_id)), 400, "M_BAD_JSON");
    expect_error(call("POST", path("/keys/upload"), b.token,
                      json_pack("{s:{s:s}}", "one_time_keys", "AAC", "k3")), 400, "M_BAD_JSON");
    expect_error(call("POST", path("/keys/upload"), b.token,
                      json_pack("{s:{s:s}}", "one_time_keys", "signed_curve25519:AAA", "other")), 400,
                 "M_UNKNOWN");
    json_decref(expect_ok(call("POST", path("/keys/upload"), b.token,
                               json_pack("{s:{s:s}}", "one_time_keys", "signed_curve25519:AAA", "k1"))));
    json_t *q = expect_ok(call("POST", path("/keys/query"), a.token,
                               json_pack("{s:{s:[]}}", "device_keys", b.user_id)));
    json_t *dk = json_object_get(json_object_get(json_object_get(q, "device_keys"), b.user_id), b.device_id);
    assert_string_equal(str(json_object_get(dk, "keys"), "ed25519:dev"), "edkey");
    json_decref(q);
    for (int round = 0; round < 3; round++) {
        json_t *cl = expect_ok(call("POST", path("/keys/claim"), a.token,
                                    json_pack("{s:{s:{s:s}}}", "one_time_keys", b.user_id,
                                              b.device_id, "signed_curve25519")));
        json_t *got = json_object_get(json_object_get(json_object_get(cl, "one_time_keys"),
                                                      b.user_id), b.device_id);
        assert_int_equal(json_object_size(got), round < 2 ? 1 : 0);
        json_decref(cl);
    }

    /* To-device: delivered once, to the named device; "*" reaches every device. */
    json_decref(expect_ok(call("PUT", path("/sendToDevice/m.test/td1"), a.token,
                               json_pack("{s:{s:{s:{s:i}}}}", "messages", b.user_id,
                                         b.device_id, "n", 1))));
    json_decref(expect_ok(call("PUT", path("/sendToDevice/m.test/td1"), a.token,
                               json_pack("{s:{s:{s:{s:i}}}}", "messages", b.user_id,
                                         b.device_id, "n", 1))));
    json_decref(expect_ok(call("PUT", path("/sendToDevice/m.test/td2"), a.token,
                               json_pack("{s:{s:{s:{s:i}}}}", "messages", b.user_id, "*", "n", 2))));
    json_t *s = sync_since(&b, since, 0, NULL);
    json_t *td = json_object_get(json_object_get(s, "to_device"), "events");
    assert_int_equal(json_array_size(td), 2);
    assert_string_equal(str(json_array_get(td, 0), "sender"), a.user_id);
    assert_string_equal(str(json_array_get(td, 0), "type"), "m.test");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(td, 0), "content"), "n")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_array_get(td, 1), "content"), "n")), 2);
    /* b's key upload shows as a device list change for b's own account. */
    bool changed = false;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(json_object_get(s, "device_lists"), "changed"), i, u)
        changed |= strcmp(json_string_value(u), b.user_id) == 0;
    assert_true(changed);
    /* Synapse always counts signed_curve25519, 0 once the keys are gone. */
    json_t *count = json_object_get(json_object_get(s, "device_one_time_keys_count"), "signed_curve25519");
    assert_true(json_is_integer(count));
    assert_int_equal(json_integer_value(count), 0);
    snprintf(since, sizeof since, "%s", str(s, "next_batch"));
    json_decref(s);
    s = sync_since(&b, since, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(json_object_get(s, "to_device"), "events")), 0);
    json_decref(s);
}

static void upload_fallback(const account *a, const char *key_id, const char *key)
{
    json_decref(expect_ok(call("POST", path("/keys/upload"), a->token,
                               json_pack("{s:{s:{s:s, s:b}}}", "fallback_keys", key_id, "key", key, "fallback", 1))));
}

/* device_unused_fallback_key_types of a full sync, its first entry in first (may be NULL). */
static size_t unused_fallbacks(const account *a, char *first, size_t cap)
{
    json_t *s = sync_since(a, NULL, 0, NULL);
    json_t *types = json_object_get(s, "device_unused_fallback_key_types");
    size_t n = json_array_size(types);
    if (first)
        snprintf(first, cap, "%s", n ? json_string_value(json_array_get(types, 0)) : "");
    json_decref(s);
    return n;
}

/* Synapse's fallback keys: one per algorithm, unused until /keys/claim hands it out (no
 * one-time key left), handed out again while it stays, used until a different one comes. */
static void test_fallback_keys(void **state)
{
    (void)state;
    account a = signup("fbclaimer");
    account b = signup("fbowner");
    upload_fallback(&b, "signed_curve25519:F1", "fk1");
    char alg[64];
    assert_int_equal(unused_fallbacks(&b, alg, sizeof alg), 1);
    assert_string_equal(alg, "signed_curve25519");
    for (int round = 0; round < 2; round++) {
        json_t *cl = expect_ok(call("POST", path("/keys/claim"), a.token,
                                    json_pack("{s:{s:{s:s}}}", "one_time_keys", b.user_id, b.device_id,
                                              "signed_curve25519")));
        json_t *got = json_object_get(json_object_get(json_object_get(cl, "one_time_keys"), b.user_id),
                                      b.device_id);
        assert_string_equal(str(json_object_get(got, "signed_curve25519:F1"), "key"), "fk1");
        json_decref(cl);
    }
    assert_int_equal(unused_fallbacks(&b, NULL, 0), 0);
    /* The same key again leaves it used; a new one is unused. */
    upload_fallback(&b, "signed_curve25519:F1", "fk1");
    assert_int_equal(unused_fallbacks(&b, NULL, 0), 0);
    upload_fallback(&b, "signed_curve25519:F2", "fk2");
    assert_int_equal(unused_fallbacks(&b, NULL, 0), 1);
}

static void test_typing_and_profile(void **state)
{
    (void)state;
    account a, b;
    char room[128];
    two_in_a_room("typist", "watcher", &a, &b, room);
    char since[64];
    sync_position(&b, since, sizeof since);
    json_decref(expect_ok(call("PUT", path("/rooms/%s/typing/%s", enc(room), enc(a.user_id)),
                               a.token, json_pack("{s:b, s:i}", "typing", 1, "timeout", 30000))));
    /* As Synapse's typing handler: another user's typing is 400, not 403. */
    expect_error(call("PUT", path("/rooms/%s/typing/%s", enc(room), enc(a.user_id)), b.token,
                      json_pack("{s:b}", "typing", 1)), 400, "M_FORBIDDEN");
    json_t *s = sync_since(&b, since, 0, NULL);
    json_t *eph = json_array_get(json_object_get(json_object_get(joined_room(s, room), "ephemeral"),
                                                 "events"), 0);
    assert_string_equal(str(eph, "type"), "m.typing");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(eph, "content"),
                                                                         "user_ids"), 0)), a.user_id);
    json_decref(s);
    /* A filter that leaves ephemeral events out (Synapse's room.ephemeral filter) gets none, and
     * the room, with nothing else new, is not in the batch. */
    s = sync_since(&b, since, 0, "{\"room\":{\"ephemeral\":{\"not_types\":[\"*\"]}}}");
    assert_null(joined_room(s, room));
    json_decref(s);

    json_decref(expect_ok(call("PUT", path("/profile/%s/displayname", enc(a.user_id)), a.token,
                               json_pack("{s:s}", "displayname", "Typist Prime"))));
    expect_error(call("PUT", path("/profile/%s/displayname", enc(a.user_id)), b.token,
                      json_pack("{s:s}", "displayname", "hijack")), 403, "M_FORBIDDEN");
    json_t *p = expect_ok(call("GET", path("/profile/%s/displayname", enc(a.user_id)), NULL, NULL));
    assert_string_equal(str(p, "displayname"), "Typist Prime");
    json_decref(p);
    json_t *m = expect_ok(call("GET", path("/rooms/%s/joined_members", enc(room)), b.token, NULL));
    assert_string_equal(str(json_object_get(json_object_get(m, "joined"), a.user_id), "display_name"),
                        "Typist Prime");
    json_decref(m);
    expect_error(call("GET", path("/profile/%s", enc("@nobody:" SERVER)), NULL, NULL), 404, "M_NOT_FOUND");
}

static void test_rate_limit_switch(void **state)
{
    (void)state;
    account a = signup("limited");
    json_decref(expect_ok(call("POST", "/_test/ratelimit", NULL,
                               json_pack("{s:i, s:i}", "count", 2, "retry_after_ms", 1500))));
    for (int i = 0; i < 2; i++) {
        resp r = call("GET", path("/account/whoami"), a.token, NULL);
        assert_int_equal(r.status, 429);
        assert_string_equal(str(r.body, "errcode"), "M_LIMIT_EXCEEDED");
        assert_int_equal(json_integer_value(json_object_get(r.body, "retry_after_ms")), 1500);
        assert_non_null(strstr(r.headers, "Retry-After: 2\r\n"));
        resp_free(&r);
        /* The control endpoints stay reachable while limiting. */
        json_decref(test_state());
    }
    json_t *who = expect_ok(call("GET", path("/account/whoami"), a.token, NULL));
    assert_string_equal(str(who, "user_id"), a.user_id);
    json_decref(who);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_and_unknown_endpoints),
        cmocka_unit_test(test_register_user_interactive),
        cmocka_unit_test_teardown(test_registration_token_uses, own_peer_teardown),
        cmocka_unit_test_teardown(test_registration_token_expired, own_peer_teardown),
        cmocka_unit_test_teardown(test_registration_modes, own_peer_teardown),
        cmocka_unit_test_teardown(test_registration_rate_limit, own_peer_teardown),
        cmocka_unit_test(test_admin_register),
        cmocka_unit_test(test_login_whoami_logout),
        cmocka_unit_test(test_appservice_login_before_register),
        cmocka_unit_test(test_appservice_tokens),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_event_size_limit),
        cmocka_unit_test(test_create_room_with_alias),
        cmocka_unit_test(test_create_space_with_initial_state),
        cmocka_unit_test(test_power_levels),
        cmocka_unit_test(test_join_rules),
        cmocka_unit_test(test_send_is_idempotent),
        cmocka_unit_test(test_messages_pagination_and_redaction),
        cmocka_unit_test(test_sync_since_and_long_poll),
        cmocka_unit_test(test_to_device_and_keys),
        cmocka_unit_test(test_fallback_keys),
        cmocka_unit_test(test_typing_and_profile),
        cmocka_unit_test(test_rate_limit_switch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
