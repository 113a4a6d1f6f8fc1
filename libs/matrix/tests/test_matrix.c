/* test_matrix.c -- libs/matrix against mr-test-homeserver: registration in every form, login,
 * soft logout, rooms, directory, transaction IDs, sync, to-device and keys, 429 retries,
 * transport backoff and long polls cancelled by a stopping caller. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hs_peer.h"
#include "mindroom/http.h"
#include "mindroom/matrix.h"
#include "mindroom/olm.h"
#include "mindroom/clock.h"
#include "peers.h"

#define REG_TOKEN "reg-token-1"
#define SHARED "shared-secret-1"
#define AS_TOKEN "as-token-1"

static mr_hs_peer hs;

/* What a client under test waited for and saw, instead of really sleeping. */
typedef struct recorder {
    long sleeps[64];
    int nsleeps;
    long statuses[64];
    char errcodes[64][32];
    char endpoints[64][32];
    int nattempts;
    int stop_after;   /* the sleep callback reports "stopping" after this many sleeps; 0 never */
} recorder;

static bool rec_sleep(void *ctx, long ms)
{
    recorder *r = ctx;
    if (r->nsleeps < 64)
        r->sleeps[r->nsleeps] = ms;
    r->nsleeps++;
    return r->stop_after && r->nsleeps >= r->stop_after;
}

static void rec_observe(void *ctx, const mr_matrix_attempt *a)
{
    recorder *r = ctx;
    if (r->nattempts < 64) {
        r->statuses[r->nattempts] = a->status;
        snprintf(r->errcodes[r->nattempts], 32, "%s", a->errcode ? a->errcode : "");
        snprintf(r->endpoints[r->nattempts], 32, "%s", a->endpoint);
    }
    r->nattempts++;
}

static mr_matrix *client_at(const char *url, recorder *rec)
{
    mr_matrix_opts o = {.homeserver = url, .timeout_ms = 20000, .backoff_ms = 100,
                        .max_backoff_ms = 400, .max_attempts = 4};
    if (rec) {
        o.sleep = rec_sleep;
        o.sleep_ctx = rec;
        o.observe = rec_observe;
        o.observe_ctx = rec;
    }
    mr_matrix *m = NULL;
    mr_err err = {0};
    if (mr_matrix_new(&o, &m, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return m;
}

static mr_matrix *client(recorder *rec)
{
    return client_at(hs.url, rec);
}

static void ok(mr_code rc, const mr_err *err)
{
    if (rc != MR_OK)
        fail_msg("%s", err->msg);
}

/* A registered and logged-in client for localpart (registration token stage). */
static mr_matrix *user(const char *localpart, recorder *rec)
{
    mr_matrix *m = client(rec);
    mr_err err = {0};
    mr_matrix_register_req req = {.username = localpart, .password = "pw-of-user",
                                  .registration_token = REG_TOKEN};
    ok(mr_matrix_register(m, &req, NULL, &err), &err);
    return m;
}

/* Something the homeserver's test controls do. */
static json_t *control(const char *method, const char *path, json_t *body)
{
    mr_matrix *m = client(NULL);
    json_t *out = NULL;
    mr_err err = {0};
    ok(mr_matrix_request(m, "test", method, path, body, false, &out, &err), &err);
    json_decref(body);
    mr_matrix_free(m);
    return out;
}

static json_t *hs_room(const char *room_id)
{
    json_t *state = control("GET", "/_test/state", NULL);
    json_t *room = json_incref(json_object_get(json_object_get(state, "rooms"), room_id));
    json_decref(state);
    assert_non_null(room);
    return room;
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_hs_peer_opts o = {.registration_token = REG_TOKEN, .shared_secret = SHARED,
                         .appservice_token = AS_TOKEN};
    if (mr_hs_peer_start(&o, &hs, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_hs_peer_stop(&hs, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

/* ---- tests ---- */

static void test_escape(void **state)
{
    (void)state;
    char *s = mr_matrix_escape("!a:b c/d~e_f.g-h#");
    assert_string_equal(s, "%21a%3Ab%20c%2Fd~e_f.g-h%23");
    free(s);
    mr_matrix *m = NULL;
    mr_err err = {0};
    mr_matrix_opts o = {.homeserver = "matrix.example.org"};
    assert_int_equal(mr_matrix_new(&o, &m, &err), MR_EINVAL);
    assert_string_equal(err.msg, "Matrix client: homeserver URL \"matrix.example.org\" must start "
                                 "with http:// or https://");
    assert_null(m);
}

static void test_versions(void **state)
{
    (void)state;
    mr_matrix *m = client(NULL);
    json_t *v = NULL;
    mr_err err = {0};
    ok(mr_matrix_versions(m, &v, &err), &err);
    assert_true(json_array_size(v) >= 1);
    assert_string_equal(json_string_value(json_array_get(v, 1)), "v1.1");
    json_decref(v);
    mr_matrix_free(m);
}

static bool registered_at(const mr_hs_peer *peer, const char *user_id)
{
    bool found;
    mr_err err = {0};
    ok(mr_hs_peer_has_user(peer, user_id, &found, &err), &err);
    return found;
}

static void test_register_token_stage(void **state)
{
    (void)state;
    recorder rec = {0};
    mr_matrix *m = client(&rec);
    mr_err err = {0};
    char uid[MR_MATRIX_ID_SIZE];
    mr_matrix_register_req req = {.username = "reg_alice", .password = "pw", .device_id = "DEVA",
                                  .registration_token = REG_TOKEN};
    ok(mr_matrix_register(m, &req, uid, &err), &err);
    assert_string_equal(uid, "@reg_alice:localhost");
    assert_string_equal(mr_matrix_user_id(m), "@reg_alice:localhost");
    assert_string_equal(mr_matrix_device_id(m), "DEVA");
    assert_non_null(mr_matrix_access_token(m));
    /* Synapse's flow [m.login.registration_token, m.login.dummy]: the challenge, the token stage
     * (401 listing it completed), then the dummy stage. */
    assert_int_equal(rec.nattempts, 3);
    assert_int_equal(rec.statuses[0], 401);
    assert_int_equal(rec.statuses[1], 401);
    assert_int_equal(rec.statuses[2], 200);
    char who[MR_MATRIX_ID_SIZE], dev[MR_MATRIX_ID_SIZE];
    ok(mr_matrix_whoami(m, who, dev, &err), &err);
    assert_string_equal(who, "@reg_alice:localhost");
    assert_string_equal(dev, "DEVA");

    /* Taken: M_USER_IN_USE is MR_EEXISTS. */
    mr_matrix *again = client(NULL);
    assert_int_equal(mr_matrix_register(again, &req, uid, &err), MR_EEXISTS);
    assert_true(mr_matrix_errcode_is(again, "M_USER_IN_USE"));
    assert_non_null(strstr(err.msg, "M_USER_IN_USE"));
    /* A wrong token is refused at its stage, in Synapse's words, and registers nothing. */
    mr_matrix_register_req bad = {.username = "reg_bob", .password = "pw",
                                  .registration_token = "wrong"};
    assert_int_equal(mr_matrix_register(again, &bad, uid, &err), MR_EAUTH);
    assert_string_equal(err.msg, "registering reg_bob: the homeserver refused the "
                                 "m.login.registration_token stage: M_UNAUTHORIZED: Invalid "
                                 "registration token");
    assert_false(registered_at(&hs, "@reg_bob:localhost"));
    /* Nothing to complete the only flow with: open registration does not cover a token. */
    mr_matrix_register_req none = {.username = "reg_carol", .password = "pw", .allow_dummy = true};
    assert_int_equal(mr_matrix_register(again, &none, uid, &err), MR_EPERM);
    assert_string_equal(err.msg, "registering reg_carol: the homeserver offers the flows "
                                 "[m.login.registration_token, m.login.dummy], and none can be "
                                 "completed with open registration");
    /* inhibit_login: a user ID and no session. */
    mr_matrix_register_req quiet = {.username = "reg_dave", .password = "pw",
                                    .registration_token = REG_TOKEN, .inhibit_login = true};
    ok(mr_matrix_register(again, &quiet, uid, &err), &err);
    assert_string_equal(uid, "@reg_dave:localhost");
    assert_null(mr_matrix_access_token(again));
    mr_matrix_free(again);
    mr_matrix_free(m);
}

/* A registration at a homeserver of its own, started with o: its outcome, err filled. */
static mr_code register_at(const mr_hs_peer_opts *o, const mr_matrix_register_req *req,
                           const char *user_id, bool *registered, mr_err *err)
{
    mr_hs_peer own;
    mr_err perr = {0};
    if (mr_hs_peer_start(o, &own, &perr) != MR_OK)
        fail_msg("%s", perr.msg);
    mr_matrix *m = client_at(own.url, NULL);
    mr_code rc = mr_matrix_register(m, req, NULL, err);
    mr_matrix_free(m);
    *registered = registered_at(&own, user_id);
    if (mr_hs_peer_stop(&own, &perr) != MR_OK)
        fail_msg("%s", perr.msg);
    return rc;
}

/* Synapse's registration token limits: an expired or used-up token is M_UNAUTHORIZED at its
 * stage, MR_EAUTH here, and nobody is registered. */
static void test_register_token_refused(void **state)
{
    (void)state;
    mr_err err = {0};
    bool registered;
    mr_matrix_register_req req = {.username = "late", .password = "pw",
                                  .registration_token = REG_TOKEN};
    mr_hs_peer_opts expired = {.registration_token = REG_TOKEN, .registration_token_expired = true};
    assert_int_equal(register_at(&expired, &req, "@late:localhost", &registered, &err), MR_EAUTH);
    assert_non_null(strstr(err.msg, "M_UNAUTHORIZED"));
    assert_false(registered);

    mr_hs_peer own;
    mr_hs_peer_opts once = {.registration_token = REG_TOKEN, .registration_token_uses = 1};
    ok(mr_hs_peer_start(&once, &own, &err), &err);
    mr_matrix *m = client_at(own.url, NULL);
    mr_matrix_register_req first = {.username = "first", .password = "pw",
                                    .registration_token = REG_TOKEN};
    ok(mr_matrix_register(m, &first, NULL, &err), &err);
    mr_matrix_register_req second = {.username = "second", .password = "pw",
                                     .registration_token = REG_TOKEN};
    assert_int_equal(mr_matrix_register(m, &second, NULL, &err), MR_EAUTH);
    assert_non_null(strstr(err.msg, "M_UNAUTHORIZED"));
    assert_true(registered_at(&own, "@first:localhost"));
    assert_false(registered_at(&own, "@second:localhost"));
    mr_matrix_free(m);
    ok(mr_hs_peer_stop(&own, &err), &err);
}

/* Synapse's flows without a token ([m.login.dummy]) and with a token as a second flow. */
static void test_register_open(void **state)
{
    (void)state;
    mr_err err = {0};
    bool registered;
    mr_hs_peer_opts open = {.open_registration = true};
    mr_matrix_register_req anyone = {.username = "opal", .password = "pw", .allow_dummy = true};
    ok(register_at(&open, &anyone, "@opal:localhost", &registered, &err), &err);
    assert_true(registered);
    /* A token alone does not make open registration allowed. */
    mr_matrix_register_req token = {.username = "tim", .password = "pw",
                                    .registration_token = REG_TOKEN};
    assert_int_equal(register_at(&open, &token, "@tim:localhost", &registered, &err), MR_EPERM);
    assert_string_equal(err.msg, "registering tim: the homeserver offers the flows "
                                 "[m.login.dummy], and none can be completed with a registration "
                                 "token");
    assert_false(registered);
    mr_hs_peer_opts both = {.open_registration = true, .registration_token = REG_TOKEN};
    ok(register_at(&both, &token, "@tim:localhost", &registered, &err), &err);
    assert_true(registered);
}

/* The flows a registering server offers, read without registering; a server that registers
 * nobody answers 403 and that is the error. */
static void test_register_flows(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_matrix *m = client(NULL);
    json_t *challenge = NULL;
    ok(mr_matrix_register_flows(m, &challenge, &err), &err);
    char *flows = json_dumps(json_object_get(challenge, "flows"), JSON_COMPACT);
    assert_string_equal(flows, "[{\"stages\":[\"m.login.registration_token\",\"m.login.dummy\"]}]");
    assert_true(json_is_string(json_object_get(challenge, "session")));
    free(flows);
    json_decref(challenge);
    mr_matrix_free(m);

    mr_hs_peer closed;
    mr_hs_peer_opts none = {0};
    mr_err perr = {0};
    if (mr_hs_peer_start(&none, &closed, &perr) != MR_OK)
        fail_msg("%s", perr.msg);
    m = client_at(closed.url, NULL);
    assert_int_not_equal(mr_matrix_register_flows(m, &challenge, &err), MR_OK);
    assert_null(challenge);
    assert_int_equal(mr_matrix_last(m)->status, 403);
    assert_true(mr_matrix_errcode_is(m, "M_FORBIDDEN"));
    mr_matrix_free(m);
    if (mr_hs_peer_stop(&closed, &perr) != MR_OK)
        fail_msg("%s", perr.msg);
}

static void test_register_shared_secret(void **state)
{
    (void)state;
    mr_matrix *m = client(NULL);
    mr_err err = {0};
    char uid[MR_MATRIX_ID_SIZE];
    ok(mr_matrix_register_shared_secret(m, SHARED, "ss_erin", "pw", "Erin", false, uid, &err), &err);
    assert_string_equal(uid, "@ss_erin:localhost");
    assert_string_equal(mr_matrix_user_id(m), "@ss_erin:localhost");
    char *name = NULL;
    ok(mr_matrix_displayname_get(m, uid, &name, &err), &err);
    assert_string_equal(name, "Erin");
    free(name);
    assert_int_equal(mr_matrix_register_shared_secret(m, "not-it", "ss_frank", "pw", NULL, false,
                                                      uid, &err), MR_EPERM);
    assert_true(mr_matrix_errcode_is(m, "M_FORBIDDEN"));
    assert_null(strstr(err.msg, "not-it"));
    assert_int_equal(mr_matrix_register_shared_secret(m, SHARED, "ss_erin", "pw", NULL, false, uid,
                                                      &err), MR_EEXISTS);
    mr_matrix_free(m);
}

/* A stand-in for Synapse's admin API whose nonce is longer than any Synapse makes. */
typedef struct nonce_stub {
    size_t nonce_len;
    atomic_int posts;
} nonce_stub;

static mr_http_response *nonce_stub_handle(void *ctx, const mr_http_request *req)
{
    nonce_stub *st = ctx;
    if (strcmp(req->method, "POST") == 0) {
        atomic_fetch_add(&st->posts, 1);
        return mr_http_reply_json(400, json_pack("{s:s, s:s}", "errcode", "M_UNKNOWN", "error",
                                                 "unrecognised nonce"));
    }
    char *nonce = malloc(st->nonce_len + 1);
    if (!nonce)
        return NULL;
    memset(nonce, 'a', st->nonce_len);
    nonce[st->nonce_len] = '\0';
    mr_http_response *r = mr_http_reply_json(200, json_pack("{s:s}", "nonce", nonce));
    free(nonce);
    return r;
}

/* Synapse's 128-character nonces work (test_register_shared_secret); past the 4 KiB bound the
 * nonce is refused with its length named, and nothing is posted. */
static void test_register_shared_secret_nonce_bound(void **state)
{
    (void)state;
    nonce_stub st = {.nonce_len = 4097};
    mr_http_server_opts so = {.listen = "127.0.0.1:0"};
    mr_http_server *srv = NULL;
    mr_err err = {0};
    ok(mr_http_server_start(&so, nonce_stub_handle, &st, &srv, &err), &err);
    char url[64];
    mr_http_server_url(so.listen, mr_http_server_port(srv), url, sizeof url);
    mr_matrix *m = client_at(url, NULL);
    char uid[MR_MATRIX_ID_SIZE];
    assert_int_equal(mr_matrix_register_shared_secret(m, SHARED, "ss_long", "pw", NULL, false, uid,
                                                      &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "the nonce is 4097 bytes, more than the 4096"));
    assert_int_equal(atomic_load(&st.posts), 0);
    /* At the bound it is taken (the stub then refuses the nonce). */
    st.nonce_len = 4096;
    assert_int_equal(mr_matrix_register_shared_secret(m, SHARED, "ss_long", "pw", NULL, false, uid,
                                                      &err), MR_EINVAL);
    assert_true(mr_matrix_errcode_is(m, "M_UNKNOWN"));
    assert_int_equal(atomic_load(&st.posts), 1);
    mr_matrix_free(m);
    mr_http_server_stop(srv);
}

static void test_appservice(void **state)
{
    (void)state;
    mr_matrix *m = client(NULL);
    mr_err err = {0};
    char uid[MR_MATRIX_ID_SIZE];
    mr_matrix_register_req req = {.username = "as_gina", .appservice_token = AS_TOKEN};
    ok(mr_matrix_register(m, &req, uid, &err), &err);
    assert_string_equal(uid, "@as_gina:localhost");
    assert_null(mr_matrix_access_token(m));
    ok(mr_matrix_login_appservice(m, AS_TOKEN, uid, "ASDEV", "MindRoom", &err), &err);
    assert_string_equal(mr_matrix_device_id(m), "ASDEV");
    char who[MR_MATRIX_ID_SIZE];
    ok(mr_matrix_whoami(m, who, NULL, &err), &err);
    assert_string_equal(who, "@as_gina:localhost");
    mr_matrix_register_req wrong = {.username = "as_hal", .appservice_token = "nope"};
    assert_int_equal(mr_matrix_register(m, &wrong, uid, &err), MR_EAUTH);
    assert_true(mr_matrix_errcode_is(m, "M_UNKNOWN_TOKEN"));
    assert_null(strstr(err.msg, "nope"));
    mr_matrix_free(m);
}

static void test_login_and_soft_logout(void **state)
{
    (void)state;
    mr_matrix *m = user("soft_ida", NULL);
    mr_err err = {0};
    char room[MR_MATRIX_ID_SIZE], ev1[MR_MATRIX_ID_SIZE], ev2[MR_MATRIX_ID_SIZE];
    json_t *body = json_pack("{s:s}", "preset", "private_chat");
    ok(mr_matrix_create_room(m, body, room, &err), &err);
    json_decref(body);
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", "before");
    ok(mr_matrix_send(m, room, "m.room.message", "txn-soft-1", content, ev1, &err), &err);
    char device[MR_MATRIX_ID_SIZE];
    snprintf(device, sizeof device, "%s", mr_matrix_device_id(m));

    json_decref(control("POST", "/_test/soft_logout", json_pack("{s:s}", "user_id", "@soft_ida:localhost")));
    assert_int_equal(mr_matrix_whoami(m, NULL, NULL, &err), MR_EAUTH);
    assert_true(mr_matrix_last(m)->soft_logout);
    assert_true(mr_matrix_errcode_is(m, "M_UNKNOWN_TOKEN"));
    assert_int_equal(strncmp(err.msg, "soft logout of @soft_ida:localhost: GET ", 40), 0);

    /* Logging in again on the same device keeps its transaction IDs. */
    ok(mr_matrix_login_password(m, "soft_ida", "pw-of-user", device, NULL, &err), &err);
    assert_string_equal(mr_matrix_device_id(m), device);
    ok(mr_matrix_send(m, room, "m.room.message", "txn-soft-1", content, ev2, &err), &err);
    assert_string_equal(ev1, ev2);
    json_decref(content);

    /* A token the server never issued is a hard logout. */
    ok(mr_matrix_set_session(m, "@soft_ida:localhost", device, "bogus", &err), &err);
    assert_int_equal(mr_matrix_whoami(m, NULL, NULL, &err), MR_EAUTH);
    assert_false(mr_matrix_last(m)->soft_logout);
    assert_null(strstr(err.msg, "bogus"));
    assert_int_equal(mr_matrix_login_password(m, "soft_ida", "wrong", device, NULL, &err), MR_EPERM);
    assert_true(mr_matrix_errcode_is(m, "M_FORBIDDEN"));
    assert_null(strstr(err.msg, "wrong"));
    mr_matrix_free(m);
}

static void test_rooms_and_directory(void **state)
{
    (void)state;
    mr_matrix *a = user("room_jo", NULL), *b = user("room_kim", NULL);
    mr_err err = {0};
    char room[MR_MATRIX_ID_SIZE], id[MR_MATRIX_ID_SIZE];
    json_t *body = json_pack("{s:s, s:s, s:s}", "name", "Lobby", "room_alias_name", "lobby_x",
                             "preset", "private_chat");
    ok(mr_matrix_create_room(a, body, room, &err), &err);
    json_decref(body);
    ok(mr_matrix_alias_get(b, "#lobby_x:localhost", id, &err), &err);
    assert_string_equal(id, room);
    assert_int_equal(mr_matrix_alias_get(b, "#nope:localhost", id, &err), MR_ENOTFOUND);
    assert_true(mr_matrix_errcode_is(b, "M_NOT_FOUND"));

    /* Invite-only: kim needs the invite. */
    assert_int_equal(mr_matrix_join(b, "#lobby_x:localhost", id, &err), MR_EPERM);
    ok(mr_matrix_invite(a, room, "@room_kim:localhost", &err), &err);
    ok(mr_matrix_join(b, "#lobby_x:localhost", id, &err), &err);
    assert_string_equal(id, room);
    json_t *joined = NULL;
    ok(mr_matrix_joined_members(a, room, &joined, &err), &err);
    assert_int_equal(json_object_size(joined), 2);
    assert_non_null(json_object_get(joined, "@room_kim:localhost"));
    json_decref(joined);

    /* State: kim (power 0) may not change the join rule, jo may. */
    json_t *rule = json_pack("{s:s}", "join_rule", "knock");
    assert_int_equal(mr_matrix_state_put(b, room, "m.room.join_rules", "", rule, NULL, &err), MR_EPERM);
    assert_true(mr_matrix_errcode_is(b, "M_FORBIDDEN"));
    ok(mr_matrix_state_put(a, room, "m.room.join_rules", "", rule, id, &err), &err);
    assert_int_equal(id[0], '$');
    json_decref(rule);
    json_t *got = NULL;
    ok(mr_matrix_state_get(b, room, "m.room.join_rules", "", &got, &err), &err);
    assert_string_equal(json_string_value(json_object_get(got, "join_rule")), "knock");
    json_decref(got);
    assert_int_equal(mr_matrix_state_get(b, room, "m.room.topic", "", &got, &err), MR_ENOTFOUND);
    assert_null(got);

    /* Directory. */
    bool published = true;
    ok(mr_matrix_visibility_get(a, room, &published, &err), &err);
    assert_false(published);
    assert_int_equal(mr_matrix_visibility_put(b, room, true, &err), MR_EPERM);
    ok(mr_matrix_visibility_put(a, room, true, &err), &err);
    ok(mr_matrix_visibility_get(b, room, &published, &err), &err);
    assert_true(published);
    ok(mr_matrix_alias_put(a, "#lobby_y:localhost", room, &err), &err);
    ok(mr_matrix_alias_get(b, "#lobby_y:localhost", id, &err), &err);
    assert_string_equal(id, room);

    /* Profile, typing, history, redaction, leaving. */
    ok(mr_matrix_displayname_put(b, "Kim K", &err), &err);
    char *name = NULL;
    ok(mr_matrix_displayname_get(a, "@room_kim:localhost", &name, &err), &err);
    assert_string_equal(name, "Kim K");
    free(name);
    ok(mr_matrix_typing(b, room, true, 5000, &err), &err);
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", "to be redacted");
    char ev[MR_MATRIX_ID_SIZE], red[MR_MATRIX_ID_SIZE];
    ok(mr_matrix_send(b, room, "m.room.message", "t1", content, ev, &err), &err);
    json_decref(content);
    ok(mr_matrix_redact(b, room, ev, "r1", "oops", red, &err), &err);
    assert_string_not_equal(red, ev);
    json_t *hist = NULL;
    ok(mr_matrix_messages(a, room, NULL, NULL, 'b', 2, &hist, &err), &err);
    json_t *chunk = json_object_get(hist, "chunk");
    assert_int_equal(json_array_size(chunk), 2);
    json_t *newest = json_array_get(chunk, 0), *redacted = json_array_get(chunk, 1);
    assert_string_equal(json_string_value(json_object_get(newest, "type")), "m.room.redaction");
    assert_string_equal(json_string_value(json_object_get(redacted, "event_id")), ev);
    assert_int_equal(json_object_size(json_object_get(redacted, "content")), 0);
    json_decref(hist);
    ok(mr_matrix_leave(b, room, &err), &err);
    joined = NULL;
    ok(mr_matrix_joined_members(a, room, &joined, &err), &err);
    assert_int_equal(json_object_size(joined), 1);
    json_decref(joined);
    mr_matrix_free(a);
    mr_matrix_free(b);
}

/* The same transaction ID from the same device makes one event, however often it is sent. */
static void test_send_txn_idempotent(void **state)
{
    (void)state;
    mr_matrix *m = user("txn_lee", NULL);
    mr_err err = {0};
    char room[MR_MATRIX_ID_SIZE], e1[MR_MATRIX_ID_SIZE], e2[MR_MATRIX_ID_SIZE], e3[MR_MATRIX_ID_SIZE];
    json_t *body = json_object();
    ok(mr_matrix_create_room(m, body, room, &err), &err);
    json_decref(body);
    json_t *before = hs_room(room);
    json_int_t events = json_integer_value(json_object_get(before, "events"));
    json_decref(before);
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", "once");
    ok(mr_matrix_send(m, room, "m.room.message", "mr.ev1.0", content, e1, &err), &err);
    ok(mr_matrix_send(m, room, "m.room.message", "mr.ev1.0", content, e2, &err), &err);
    ok(mr_matrix_send(m, room, "m.room.message", "mr.ev2.0", content, e3, &err), &err);
    json_decref(content);
    assert_string_equal(e1, e2);
    assert_string_not_equal(e1, e3);
    json_t *after = hs_room(room);
    assert_int_equal(json_integer_value(json_object_get(after, "events")), events + 2);
    json_decref(after);
    mr_matrix_free(m);
}

/* A 429 storm: each refusal is waited out for exactly the advertised retry_after_ms. */
static void test_rate_limit_retry_after(void **state)
{
    (void)state;
    recorder rec = {0};
    mr_matrix *m = user("rl_max", &rec);
    mr_err err = {0};
    char room[MR_MATRIX_ID_SIZE], ev[MR_MATRIX_ID_SIZE];
    json_t *body = json_object();
    ok(mr_matrix_create_room(m, body, room, &err), &err);
    json_decref(body);
    memset(&rec, 0, sizeof rec);
    json_decref(control("POST", "/_test/ratelimit", json_pack("{s:i, s:i}", "count", 5,
                                                              "retry_after_ms", 1234)));
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", "patient");
    ok(mr_matrix_send(m, room, "m.room.message", "rl-1", content, ev, &err), &err);
    assert_int_equal(rec.nsleeps, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rec.sleeps[i], 1234);
        assert_int_equal(rec.statuses[i], 429);
        assert_string_equal(rec.errcodes[i], "M_LIMIT_EXCEEDED");
        assert_string_equal(rec.endpoints[i], "send");
    }
    assert_int_equal(rec.nattempts, 6);
    assert_int_equal(rec.statuses[5], 200);
    assert_int_equal(ev[0], '$');

    /* A client that gives up after 2 in a row reports the limit. */
    mr_matrix_opts o = {.homeserver = hs.url, .max_rate_limited = 2, .sleep = rec_sleep,
                        .sleep_ctx = &rec, .user_id = mr_matrix_user_id(m),
                        .device_id = mr_matrix_device_id(m), .access_token = mr_matrix_access_token(m)};
    mr_matrix *impatient = NULL;
    ok(mr_matrix_new(&o, &impatient, &err), &err);
    memset(&rec, 0, sizeof rec);
    json_decref(control("POST", "/_test/ratelimit", json_pack("{s:i, s:i}", "count", 3,
                                                              "retry_after_ms", 10)));
    assert_int_equal(mr_matrix_send(impatient, room, "m.room.message", "rl-2", content, ev, &err),
                     MR_EUNAVAIL);
    assert_int_equal(rec.nsleeps, 1);
    assert_int_equal(mr_matrix_last(impatient)->retry_after_ms, 10);
    assert_true(mr_matrix_errcode_is(impatient, "M_LIMIT_EXCEEDED"));
    assert_non_null(strstr(err.msg, "HTTP 429"));
    /* Drain the one refusal left. */
    ok(mr_matrix_send(m, room, "m.room.message", "rl-2", content, ev, &err), &err);
    json_decref(content);

    /* A stopping caller is not held up by a wait. */
    rec = (recorder){.stop_after = 1};
    json_decref(control("POST", "/_test/ratelimit", json_pack("{s:i, s:i}", "count", 1,
                                                              "retry_after_ms", 60000)));
    assert_int_equal(mr_matrix_whoami(m, NULL, NULL, &err), MR_EUNAVAIL);
    assert_int_equal(rec.sleeps[0], 60000);
    assert_non_null(strstr(err.msg, "stopped while waiting 60000 ms to retry"));
    mr_matrix_free(impatient);
    mr_matrix_free(m);
}

/* A homeserver that is not there: retryable requests back off (doubling, jittered, capped),
 * createRoom is tried once. */
static void test_transport_backoff(void **state)
{
    (void)state;
    int port = 0;
    mr_err err = {0};
    ok(mr_tp_free_port(&port, &err), &err);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    recorder rec = {0};
    mr_matrix *m = client_at(url, &rec);
    assert_int_equal(mr_matrix_versions(m, NULL, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "GET "));
    assert_non_null(strstr(err.msg, "/_matrix/client/versions"));
    assert_int_equal(rec.nattempts, 4);
    assert_int_equal(rec.nsleeps, 3);
    static const long base[] = {100, 200, 400};
    for (int i = 0; i < 3; i++) {
        assert_true(rec.sleeps[i] >= base[i] / 2);
        assert_true(rec.sleeps[i] <= base[i]);
        assert_int_equal(rec.statuses[i], 0);
    }
    memset(&rec, 0, sizeof rec);
    json_t *body = json_object();
    assert_int_equal(mr_matrix_create_room(m, body, NULL, &err), MR_EUNAVAIL);
    json_decref(body);
    assert_int_equal(rec.nattempts, 1);
    assert_int_equal(rec.nsleeps, 0);
    mr_matrix_free(m);
}

static void test_sync_filter_since(void **state)
{
    (void)state;
    mr_matrix *a = user("sync_ned", NULL), *b = user("sync_ola", NULL);
    mr_err err = {0};
    char room[MR_MATRIX_ID_SIZE], fid[MR_MATRIX_ID_SIZE];
    json_t *body = json_pack("{s:s, s:[s]}", "preset", "private_chat", "invite", "@sync_ola:localhost");
    ok(mr_matrix_create_room(a, body, room, &err), &err);
    json_decref(body);
    json_t *filter = json_pack("{s:{s:{s:i, s:[s]}}}", "room", "timeline", "limit", 50, "types",
                               "m.room.message");
    ok(mr_matrix_filter_create(b, filter, fid, &err), &err);
    json_decref(filter);

    json_t *s1 = NULL;
    mr_matrix_sync_req req = {.filter = fid, .full_state = true};
    ok(mr_matrix_sync(b, &req, &s1, &err), &err);
    assert_non_null(json_object_get(json_object_get(json_object_get(s1, "rooms"), "invite"), room));
    char since[64];
    snprintf(since, sizeof since, "%s", json_string_value(json_object_get(s1, "next_batch")));
    json_decref(s1);
    ok(mr_matrix_join(b, room, NULL, &err), &err);
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", "hi ola");
    ok(mr_matrix_send(a, room, "m.room.message", "s1", content, NULL, &err), &err);
    json_decref(content);

    /* An inline filter works as well as an ID; the timeline holds only messages. */
    req = (mr_matrix_sync_req){.filter = "{\"room\":{\"timeline\":{\"types\":[\"m.room.message\"]}}}",
                               .since = since, .timeout_ms = 5000};
    json_t *s2 = NULL;
    ok(mr_matrix_sync(b, &req, &s2, &err), &err);
    json_t *tl = json_object_get(json_object_get(json_object_get(json_object_get(
        json_object_get(s2, "rooms"), "join"), room), "timeline"), "events");
    assert_int_equal(json_array_size(tl), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(tl, 0),
                                                                           "content"), "body")), "hi ola");
    json_decref(s2);
    req.since = "bogus";
    assert_int_equal(mr_matrix_sync(b, &req, &s2, &err), MR_EINVAL);
    assert_null(s2);
    mr_matrix_free(a);
    mr_matrix_free(b);
}

static void test_to_device_and_keys(void **state)
{
    (void)state;
    mr_matrix *a = user("keys_pam", NULL), *b = user("keys_quin", NULL);
    mr_err err = {0};
    const char *bdev = mr_matrix_device_id(b);
    json_t *upload = json_pack("{s:{s:s, s:s, s:[s], s:{}, s:{}}, s:{s:{s:s}}}", "device_keys",
                               "user_id", "@keys_quin:localhost", "device_id", bdev, "algorithms",
                               "m.olm.v1.curve25519-aes-sha2", "keys", "signatures",
                               "one_time_keys", "signed_curve25519:AAAA", "key", "otk-1");
    json_object_set_new(json_object_get(json_object_get(upload, "device_keys"), "keys"),
                        "curve25519:X", json_string("curve-key"));
    json_t *out = NULL;
    ok(mr_matrix_keys_upload(b, upload, &out, &err), &err);
    json_decref(upload);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "one_time_key_counts"),
                                                        "signed_curve25519")), 1);
    json_decref(out);

    json_t *query = json_pack("{s:{s:[]}}", "device_keys", "@keys_quin:localhost");
    ok(mr_matrix_keys_query(a, query, &out, &err), &err);
    json_decref(query);
    assert_non_null(json_object_get(json_object_get(json_object_get(out, "device_keys"),
                                                    "@keys_quin:localhost"), bdev));
    json_decref(out);
    json_t *claim = json_pack("{s:{s:{s:s}}}", "one_time_keys", "@keys_quin:localhost", bdev,
                              "signed_curve25519");
    ok(mr_matrix_keys_claim(a, claim, &out, &err), &err);
    json_decref(claim);
    assert_non_null(json_object_get(json_object_get(json_object_get(json_object_get(out, "one_time_keys"),
                                                                    "@keys_quin:localhost"), bdev),
                                    "signed_curve25519:AAAA"));
    json_decref(out);

    json_t *msgs = json_pack("{s:{s:{s:s}}}", "@keys_quin:localhost", bdev, "hello", "device");
    ok(mr_matrix_send_to_device(a, "m.test.ping", "td-1", msgs, &err), &err);
    json_decref(msgs);
    mr_matrix_sync_req req = {0};
    json_t *s = NULL;
    ok(mr_matrix_sync(b, &req, &s, &err), &err);
    json_t *ev = json_array_get(json_object_get(json_object_get(s, "to_device"), "events"), 0);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "m.test.ping");
    assert_string_equal(json_string_value(json_object_get(ev, "sender")), "@keys_pam:localhost");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "content"), "hello")),
                        "device");
    json_decref(s);
    mr_matrix_free(a);
    mr_matrix_free(b);
}

static bool flag_set(void *ctx)
{
    return atomic_load((atomic_bool *)ctx);
}

/* Raises the flag once the homeserver has a long poll asleep. */
static void *raise_when_waiting(void *arg)
{
    for (;;) {
        json_t *st = control("GET", "/_test/state", NULL);
        json_int_t waiting = json_integer_value(json_object_get(st, "syncs_waiting"));
        json_decref(st);
        if (waiting > 0)
            break;
        mr_clock_sleep_ms(10);
    }
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}


/* Cross-signing as Synapse does it: the first master key needs no user-interactive auth
 * (MSC3967), the same keys again neither; other keys need m.login.password, and without the
 * password or with a wrong one the upload is refused (MR_EPERM, the session is fine). The device
 * signed by the self-signing key shows the signature in /keys/query, beside the keys; a signature
 * by another key is a failure. */
static void test_cross_signing_upload(void **state)
{
    (void)state;
    const char *uid = "@xs_rita:localhost";
    mr_matrix *m = user("xs_rita", NULL), *other = user("xs_sam", NULL);
    mr_err err = {0};
    mr_olm_account *acct = NULL;
    mr_olm_signing_key *master = NULL, *ssk = NULL, *master2 = NULL, *ssk2 = NULL;
    ok(mr_olm_account_new(&acct, &err), &err);
    ok(mr_olm_signing_key_new(&master, &err), &err);
    ok(mr_olm_signing_key_new(&ssk, &err), &err);
    ok(mr_olm_signing_key_new(&master2, &err), &err);
    ok(mr_olm_signing_key_new(&ssk2, &err), &err);
    const char *dev = mr_matrix_device_id(m);
    json_t *body = NULL, *out = NULL;
    ok(mr_olm_account_keys_upload_body(acct, uid, dev, true, &body, &err), &err);
    ok(mr_matrix_keys_upload(m, body, &out, &err), &err);
    json_decref(body);
    json_decref(out);

    ok(mr_olm_cross_signing_upload_body(master, ssk, uid, &body, &err), &err);
    ok(mr_matrix_keys_device_signing_upload(m, body, NULL, &out, &err), &err);
    json_decref(out);
    ok(mr_matrix_keys_device_signing_upload(m, body, NULL, &out, &err), &err);
    json_decref(out);
    json_decref(body);

    ok(mr_olm_cross_signing_upload_body(master2, ssk2, uid, &body, &err), &err);
    assert_int_equal(mr_matrix_keys_device_signing_upload(m, body, NULL, &out, &err), MR_EPERM);
    assert_non_null(strstr(err.msg, "no password"));
    assert_int_equal(mr_matrix_keys_device_signing_upload(m, body, "wrong", &out, &err), MR_EPERM);
    assert_non_null(strstr(err.msg, "M_FORBIDDEN"));
    ok(mr_matrix_keys_device_signing_upload(m, body, "pw-of-user", &out, &err), &err);
    json_decref(out);
    json_decref(body);

    ok(mr_olm_cross_signing_device_signature(ssk, acct, uid, dev, &body, &err), &err);
    ok(mr_matrix_keys_signatures_upload(m, body, &out, &err), &err);
    assert_non_null(json_object_get(json_object_get(json_object_get(out, "failures"), uid), dev));
    json_decref(out);
    json_decref(body);
    ok(mr_olm_cross_signing_device_signature(ssk2, acct, uid, dev, &body, &err), &err);
    ok(mr_matrix_keys_signatures_upload(m, body, &out, &err), &err);
    assert_int_equal(json_object_size(json_object_get(out, "failures")), 0);
    json_decref(out);
    json_decref(body);

    json_t *query = json_pack("{s:{s:[]}}", "device_keys", uid);
    ok(mr_matrix_keys_query(other, query, &out, &err), &err);
    json_decref(query);
    char id[64];
    json_t *mk = json_object_get(json_object_get(out, "master_keys"), uid);
    json_t *sk = json_object_get(json_object_get(out, "self_signing_keys"), uid);
    snprintf(id, sizeof id, "ed25519:%s", mr_olm_signing_key_public(master2));
    assert_non_null(json_object_get(json_object_get(mk, "keys"), id));
    ok(mr_olm_verify_json(sk, uid, id, mr_olm_signing_key_public(master2), &err), &err);
    assert_null(json_object_get(out, "user_signing_keys") ? json_object_get(json_object_get(out, "user_signing_keys"), uid)
                                                          : NULL);
    json_t *dk = json_object_get(json_object_get(json_object_get(out, "device_keys"), uid), dev);
    snprintf(id, sizeof id, "ed25519:%s", mr_olm_signing_key_public(ssk2));
    ok(mr_olm_verify_json(dk, uid, id, mr_olm_signing_key_public(ssk2), &err), &err);
    json_decref(out);

    mr_olm_signing_key_free(master);
    mr_olm_signing_key_free(ssk);
    mr_olm_signing_key_free(master2);
    mr_olm_signing_key_free(ssk2);
    mr_olm_account_free(acct);
    mr_matrix_free(m);
    mr_matrix_free(other);
}

/* A stopping caller abandons a long poll in flight, and sends nothing more. */
static void test_stopping_cancels_long_poll(void **state)
{
    (void)state;
    mr_matrix *reg = user("stop_rae", NULL);
    atomic_bool stop = false;
    mr_matrix_opts o = {.homeserver = hs.url, .user_id = mr_matrix_user_id(reg),
                        .device_id = mr_matrix_device_id(reg),
                        .access_token = mr_matrix_access_token(reg), .stopping = flag_set,
                        .stopping_ctx = &stop};
    mr_matrix *m = NULL;
    mr_err err = {0};
    ok(mr_matrix_new(&o, &m, &err), &err);
    json_t *first = NULL;
    mr_matrix_sync_req req = {0};
    ok(mr_matrix_sync(m, &req, &first, &err), &err);
    req.since = json_string_value(json_object_get(first, "next_batch"));
    req.timeout_ms = 120000;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, raise_when_waiting, &stop), 0);
    json_t *second = NULL;
    assert_int_equal(mr_matrix_sync(m, &req, &second, &err), MR_EUNAVAIL);
    pthread_join(t, NULL);
    assert_null(second);
    assert_non_null(strstr(err.msg, "cancelled by the caller"));
    assert_int_equal(mr_matrix_whoami(m, NULL, NULL, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "not sent, the caller is stopping"));
    json_decref(first);
    mr_matrix_free(m);
    mr_matrix_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_register_token_stage),
        cmocka_unit_test(test_register_token_refused),
        cmocka_unit_test(test_register_open),
        cmocka_unit_test(test_register_flows),
        cmocka_unit_test(test_register_shared_secret),
        cmocka_unit_test(test_register_shared_secret_nonce_bound),
        cmocka_unit_test(test_appservice),
        cmocka_unit_test(test_login_and_soft_logout),
        cmocka_unit_test(test_rooms_and_directory),
        cmocka_unit_test(test_send_txn_idempotent),
        cmocka_unit_test(test_rate_limit_retry_after),
        cmocka_unit_test(test_transport_backoff),
        cmocka_unit_test(test_sync_filter_since),
        cmocka_unit_test(test_to_device_and_keys),
        cmocka_unit_test(test_cross_signing_upload),
        cmocka_unit_test(test_stopping_cancels_long_poll),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
