/* test_encrypt.c -- the encryption engine of mindroom-crypto with real libolm and a real SQLite
 * store: the room facts it learns from inbound state, the keys_query and keys_claim it asks for,
 * the m.room_key it sends over Olm and the m.room.encrypted it sends, each opened by the human's
 * devices (human_device.c) as a client would; rotation by count, by age, when a member leaves and
 * when a device is removed; a new device of the human getting the key; edits and replies keeping
 * m.relates_to in clear; a restart keeping the session; plain rooms passing through; invited
 * members as history_visibility says; a key request the gateway never answers asked again by the
 * next message after a minute, or by the sweep when none comes; a room whose m.room.encryption
 * crypto never saw, learnt from the gateway's copy on any event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crypto_internal.h"
#include "engine_fixture.h"
#include "human_device.h"
#include "mindroom/clock.h"

#define AGENT "@mindroom_mind:example.org"
#define AGENT_DEV "AGENTDEV"
#define HUMAN "@alice:example.org"
#define HUMAN_DEV "ALICEDEV"
#define HUMAN_DEV2 "ALICEPHONE"
#define BOB "@bob:example.org"
#define BOB_DEV "BOBDEV"
#define CAROL "@carol:example.org"
#define DAVE "@dave:example.org"
#define ERIN "@erin:example.org"
#define ROOM "!vault:example.org"
#define PLAIN_ROOM "!lobby:example.org"
#define OLD_ROOM "!archive:example.org"

/* A reader's device and what it received from the agent. */
typedef struct reader {
    human_device dev;
    mr_olm_session *from_agent;  /* the Olm session the agent's first pre-key message made */
    mr_olm_inbound_group *group; /* the last room key it got */
    char group_id[MR_OLM_KEY_SIZE];
} reader;

typedef struct suite {
    engine_fixture fx;
    reader alice, phone, bob;
    int seq;                 /* event and transaction numbers */
} suite;

static suite S;

/* The messages of out (commit entries left out), as a new array. */
static json_t *messages(json_t *out)
{
    json_t *m = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(out, i, o)
        if (json_object_get(o, "msg"))
            json_array_append(m, o);
    json_decref(out);
    return m;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static json_t *msg_at(json_t *msgs, size_t i)
{
    if (i >= json_array_size(msgs))
        fail_msg("expected at least %zu messages, got %zu", i + 1, json_array_size(msgs));
    return json_object_get(json_array_get(msgs, i), "msg");
}

/* An inbound_event (taken) seen on matrix.inbound. */
static void observe(json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    crypto_inbound in;
    mr_err err = {0};
    fx_check(crypto_inbound_parse(text, strlen(text), &in, &err), &err, "inbound");
    fx_check(crypto_room_observe(&S.fx.engine, &in, &err), &err, "observe");
    crypto_inbound_free(&in);
    free(text);
}

/* A state event of ROOM (or room) seen on matrix.inbound. */
static void room_state(const char *room, const char *type, const char *state_key, json_t *content)
{
    char id[64];
    snprintf(id, sizeof id, "$state%d", ++S.seq);
    observe(json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:I, s:o}}", "v", 1, "type", "inbound_event",
                      "account", AGENT, "room_id", room, "event", "event_id", id, "sender", HUMAN, "type", type,
                      "state_key", state_key, "origin_server_ts", (json_int_t)1764000000000, "content", content));
}

static void member(const char *user, const char *membership)
{
    room_state(ROOM, "m.room.member", user, json_pack("{s:s}", "membership", membership));
}

/* The agent's answer in room as an outbound_intent (content taken); extra fields merged. */
static json_t *intent(const char *room, const char *body, json_t *extra)
{
    char txn[32];
    snprintf(txn, sizeof txn, "mr.t-%d", ++S.seq);
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "v", 1, "type", "outbound_intent",
                            "account", AGENT, "room_id", room, "action", "send", "txn_id", txn, "event_type",
                            "m.room.message", "content", "msgtype", "m.text", "body", body);
    if (extra)
        json_object_update(msg, extra);
    json_decref(extra);
    return messages(fx_feed(&S.fx, crypto_engine_outbound, msg, "outbound"));
}

static json_t *keys_reply(const char *kind, const char *txn, json_t *response)
{
    return messages(fx_keys_reply(&S.fx, AGENT, kind, txn, response));
}

static crypto_device *agent(void)
{
    crypto_device *d = NULL;
    mr_err err = {0};
    fx_check(crypto_device_stored(&S.fx.engine, AGENT, &d, &err), &err, "agent device");
    return d;
}

/* /keys/query's answer: the device keys of each reader given, and the agent's own. */
static json_t *query_answer(reader **rs, size_t n)
{
    json_t *dk = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *u = json_object_get(dk, rs[i]->dev.user_id);
        if (!u)
            json_object_set_new(dk, rs[i]->dev.user_id, u = json_object());
        json_object_set_new(u, rs[i]->dev.device_id, human_device_keys(&rs[i]->dev));
    }
    json_t *mine = NULL;
    mr_err err = {0};
    fx_check(mr_olm_account_device_keys(agent()->account, AGENT, AGENT_DEV, &mine, &err), &err, "agent keys");
    json_object_set_new(dk, AGENT, json_pack("{s:o}", AGENT_DEV, mine));
    return json_pack("{s:o, s:{}}", "device_keys", dk, "failures");
}

/* /keys/claim's answer: one fresh signed one-time key of each reader given. */
static json_t *claim_answer(reader **rs, size_t n)
{
    json_t *otks = json_object();
    mr_err err = {0};
    for (size_t i = 0; i < n; i++) {
        human_device *h = &rs[i]->dev;
        json_t *body = NULL;
        fx_check(mr_olm_account_generate_one_time_keys(h->account, 1, &err), &err, "otk");
        fx_check(mr_olm_account_keys_upload_body(h->account, h->user_id, h->device_id, false, &body, &err), &err,
              "otk body");
        mr_olm_account_mark_published(h->account);
        json_t *u = json_object_get(otks, h->user_id);
        if (!u)
            json_object_set_new(otks, h->user_id, u = json_object());
        json_object_set(u, h->device_id, json_object_get(body, "one_time_keys"));
        json_decref(body);
    }
    return json_pack("{s:o, s:{}}", "one_time_keys", otks, "failures");
}

/* The one send_request of kind in msgs (borrowed); fails when there is none or more. */
static json_t *one_of(json_t *msgs, const char *kind)
{
    json_t *found = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(msgs, i, o) {
        json_t *m = json_object_get(o, "msg");
        if (strcmp(str(m, "kind"), kind) == 0) {
            if (found)
                fail_msg("more than one %s", kind);
            found = m;
        }
    }
    if (!found)
        fail_msg("no %s among %zu messages", kind, json_array_size(msgs));
    return found;
}

static size_t count_of(json_t *msgs, const char *kind)
{
    size_t n = 0, i;
    json_t *o;
    json_array_foreach(msgs, i, o)
        n += strcmp(str(json_object_get(o, "msg"), "kind"), kind) == 0;
    return n;
}

/* r opens the m.room_key the agent sent it (a to_device request's content for r). */
static void open_room_key(reader *r, json_t *content)
{
    assert_string_equal(str(content, "algorithm"), MR_OLM_ALGORITHM_OLM);
    const char *agent_curve = mr_olm_account_curve25519(agent()->account);
    assert_string_equal(str(content, "sender_key"), agent_curve);
    json_t *c = json_object_get(json_object_get(content, "ciphertext"), mr_olm_account_curve25519(r->dev.account));
    assert_non_null(c);
    int type = (int)json_integer_value(json_object_get(c, "type"));
    const char *body = str(c, "body");
    char *plain = NULL;
    size_t len = 0;
    mr_err err = {0};
    if (!r->from_agent) {
        assert_int_equal(type, MR_OLM_MSG_PRE_KEY);
        fx_check(mr_olm_session_new_inbound(r->dev.account, agent_curve, body, &r->from_agent, &plain, &len, &err), &err,
              "inbound Olm session");
    } else {
        fx_check(mr_olm_session_decrypt(r->from_agent, type, body, &plain, &len, &err), &err, "Olm decrypt");
    }
    const mr_olm_payload_expect want = {.sender = AGENT, .sender_curve25519 = agent_curve,
                                        .sender_ed25519 = mr_olm_account_ed25519(agent()->account),
                                        .recipient = r->dev.user_id,
                                        .recipient_ed25519 = mr_olm_account_ed25519(r->dev.account)};
    json_t *payload = NULL;
    fx_check(mr_olm_payload_check(plain, len, &want, &payload, &err), &err, "payload");
    mr_olm_free_secret(plain, len);
    assert_string_equal(str(payload, "type"), "m.room_key");
    json_t *rk = json_object_get(payload, "content");
    assert_string_equal(str(rk, "room_id"), ROOM);
    mr_olm_inbound_group_free(r->group);
    fx_check(mr_olm_inbound_group_new(str(rk, "session_key"), &r->group, &err), &err, "inbound Megolm");
    mr_olm_inbound_group_id(r->group, r->group_id);
    assert_string_equal(str(rk, "session_id"), r->group_id);
    json_decref(payload);
}

/* Each reader of rs that the to_device request in msgs addresses opens its key; the request
 * addresses exactly those. */
static void deliver(json_t *msgs, reader **rs, size_t n)
{
    json_t *td = one_of(msgs, "to_device");
    assert_string_equal(str(td, "event_type"), "m.room.encrypted");
    json_t *m = json_object_get(td, "messages");
    size_t addressed = 0;
    const char *u;
    json_t *devs;
    json_object_foreach(m, u, devs)
        addressed += json_object_size(devs);
    assert_int_equal(addressed, n);
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object_get(json_object_get(m, rs[i]->dev.user_id), rs[i]->dev.device_id);
        if (!c)
            fail_msg("the room key did not go to %s %s", rs[i]->dev.user_id, rs[i]->dev.device_id);
        open_room_key(rs[i], c);
    }
}

/* r decrypts the room_event of msgs; returns its session ID (in sid) and the decrypted payload. */
static json_t *read_answer(reader *r, json_t *msgs, char sid[MR_OLM_KEY_SIZE])
{
    json_t *ev = one_of(msgs, "room_event");
    assert_string_equal(str(ev, "event_type"), "m.room.encrypted");
    json_t *c = json_object_get(ev, "content");
    assert_string_equal(str(c, "algorithm"), MR_OLM_ALGORITHM_MEGOLM);
    assert_string_equal(str(c, "device_id"), AGENT_DEV);
    snprintf(sid, MR_OLM_KEY_SIZE, "%s", str(c, "session_id"));
    assert_string_equal(sid, r->group_id);
    char *plain = NULL;
    size_t len = 0;
    uint32_t index = 0;
    mr_err err = {0};
    fx_check(mr_olm_inbound_group_decrypt(r->group, str(c, "ciphertext"), &plain, &len, &index, &err), &err,
          "Megolm decrypt");
    json_t *payload = json_loadb(plain, len, 0, NULL);
    mr_olm_free_secret(plain, len);
    assert_non_null(payload);
    assert_string_equal(str(payload, "room_id"), ROOM);
    assert_string_equal(str(payload, "type"), "m.room.message");
    return payload;
}

static const char *body_of(json_t *payload)
{
    return str(json_object_get(payload, "content"), "body");
}

/* r reads the room_event of msgs: its body is body; its session ID goes to sid. */
static void read_body(reader *r, json_t *msgs, char sid[MR_OLM_KEY_SIZE], const char *body)
{
    json_t *p = read_answer(r, msgs, sid);
    assert_string_equal(body_of(p), body);
    json_decref(p);
}

/* alice reads the i-th of msgs alone: its body is body. */
static void read_body_at(json_t *msgs, size_t i, const char *body)
{
    char sid[MR_OLM_KEY_SIZE];
    json_t *one = json_pack("[O]", json_array_get(msgs, i));
    read_body(&S.alice, one, sid, body);
    json_decref(one);
}

/* Copies the txn_id of req, one of msgs, to txn and frees msgs. */
static void take_txn(json_t *msgs, json_t *req, char txn[128])
{
    snprintf(txn, 128, "%s", str(req, "txn_id"));
    json_decref(msgs);
}

/* The readers rs open the room key msgs sends them, then r reads the answer (see read_body);
 * msgs is freed. */
static void deliver_and_read(json_t *msgs, reader **rs, size_t n, reader *r, char sid[MR_OLM_KEY_SIZE],
                             const char *body)
{
    deliver(msgs, rs, n);
    read_body(r, msgs, sid, body);
    json_decref(msgs);
}

/* The gateway says user's device list changed. */
static void device_lists_changed(const char *user)
{
    json_decref(fx_feed(&S.fx, crypto_engine_todevice,
                        json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:{}}, s:{s:[s]}}", "v", 1, "type",
                                  "todevice_event", "account", AGENT, "device_id", AGENT_DEV, "event", "sender",
                                  AGENT, "type", "com.mindroom.device_lists", "content", "device_lists", "changed",
                                  user),
                        "device lists"));
}

/* The first answer in the encrypted room: keys_query for the readers, keys_claim for alice's
 * device, then the room key to it and the message; alice reads it. */
static void test_first_answer_shares_the_key(void **state)
{
    (void)state;
    /* The agent's device, as the gateway's first key counts make it. */
    json_decref(fx_feed(&S.fx, crypto_engine_todevice,
                     json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:{}}, s:{s:i}}", "v", 1, "type",
                               "todevice_event", "account", AGENT, "device_id", AGENT_DEV, "event", "sender", AGENT,
                               "type", "com.mindroom.key_counts", "content", "one_time_key_counts",
                               "signed_curve25519", 0),
                     "key counts"));
    room_state(ROOM, "m.room.encryption", "", json_pack("{s:s, s:i}", "algorithm", MR_OLM_ALGORITHM_MEGOLM,
                                                   "rotation_period_msgs", 3));
    member(AGENT, "join");
    member(HUMAN, "join");

    json_t *msgs = intent(ROOM, "first", NULL);
    json_t *q = one_of(msgs, "keys_query");
    assert_int_equal(json_array_size(msgs), 1);
    json_t *want = json_object_get(json_object_get(q, "body"), "device_keys");
    assert_non_null(json_object_get(want, HUMAN));
    assert_non_null(json_object_get(want, AGENT));
    char txn[128];
    take_txn(msgs, q, txn);

    /* A second answer queues behind the first, asking nothing new. */
    msgs = intent(ROOM, "second", NULL);
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(msgs);

    reader *rs[] = {&S.alice};
    msgs = keys_reply("keys_query", txn, query_answer(rs, 1));
    json_t *c = one_of(msgs, "keys_claim");
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(str(json_object_get(json_object_get(json_object_get(c, "body"), "one_time_keys"), HUMAN),
                            HUMAN_DEV),
                        "signed_curve25519");
    take_txn(msgs, c, txn);

    msgs = keys_reply("keys_claim", txn, claim_answer(rs, 1));
    /* The room key first, then both answers in order, on the room's partition. */
    assert_int_equal(json_array_size(msgs), 3);
    assert_string_equal(str(msg_at(msgs, 0), "kind"), "to_device");
    assert_string_equal(str(json_array_get(msgs, 0), "key"), ROOM);
    deliver(msgs, rs, 1);
    for (size_t i = 1; i <= 2; i++) {
        read_body_at(msgs, i, i == 1 ? "first" : "second");
    }
    json_decref(msgs);
}

/* The next answer needs no key request: it goes out at once under the same session. */
static void test_next_answer_at_once(void **state)
{
    (void)state;
    json_t *msgs = intent(ROOM, "third", NULL);
    assert_int_equal(json_array_size(msgs), 1);
    char sid[MR_OLM_KEY_SIZE];
    read_body(&S.alice, msgs, sid, "third");
    json_decref(msgs);
}

/* rotation_period_msgs 3: the fourth message has a new session, shared before it. */
static void test_rotation_by_count(void **state)
{
    (void)state;
    char before[MR_OLM_KEY_SIZE], after[MR_OLM_KEY_SIZE];
    snprintf(before, sizeof before, "%s", S.alice.group_id);
    json_t *msgs = intent(ROOM, "fourth", NULL);
    reader *rs[] = {&S.alice};
    deliver_and_read(msgs, rs, 1, &S.alice, after, "fourth");
    assert_string_not_equal(before, after);
}

/* A thread reply and its streamed edit: m.relates_to stays in clear (and out of the ciphertext),
 * the edit keeps replaces_txn for the gateway. */
static void test_relations_in_clear(void **state)
{
    (void)state;
    json_t *rel = json_pack("{s:s, s:s, s:b, s:{s:s}}", "rel_type", "m.thread", "event_id", "$root",
                            "is_falling_back", 1, "m.in_reply_to", "event_id", "$root");
    json_t *extra = json_pack("{s:{s:s, s:s, s:O}}", "content", "msgtype", "m.text", "body", "thread answer",
                              "m.relates_to", rel);
    json_t *msgs = intent(ROOM, "ignored", extra);
    json_t *ev = one_of(msgs, "room_event");
    assert_true(json_equal(json_object_get(json_object_get(ev, "content"), "m.relates_to"), rel));
    char sid[MR_OLM_KEY_SIZE];
    json_t *p = read_answer(&S.alice, msgs, sid);
    assert_string_equal(body_of(p), "thread answer");
    assert_null(json_object_get(json_object_get(p, "content"), "m.relates_to"));
    json_decref(p);
    json_decref(msgs);

    extra = json_pack("{s:s, s:{s:s, s:s, s:{s:s, s:s}, s:{s:s}}}", "replaces_txn", "mr.t-0", "content", "msgtype",
                      "m.text", "body", "* thread answer, longer", "m.new_content", "msgtype", "m.text", "body",
                      "thread answer, longer", "m.relates_to", "rel_type", "m.replace");
    msgs = intent(ROOM, "ignored", extra);
    ev = one_of(msgs, "room_event");
    assert_string_equal(str(ev, "replaces_txn"), "mr.t-0");
    assert_string_equal(str(json_object_get(json_object_get(ev, "content"), "m.relates_to"), "rel_type"),
                        "m.replace");
    p = read_answer(&S.alice, msgs, sid);
    assert_string_equal(str(json_object_get(json_object_get(p, "content"), "m.new_content"), "body"),
                        "thread answer, longer");
    json_decref(p);
    json_decref(msgs);
    json_decref(rel);
}

/* rotation_period_ms: once the session is older, the next message has a new one. */
static void test_rotation_by_time(void **state)
{
    (void)state;
    room_state(ROOM, "m.room.encryption", "", json_pack("{s:s, s:i, s:i}", "algorithm", MR_OLM_ALGORITHM_MEGOLM,
                                                   "rotation_period_msgs", 1000, "rotation_period_ms", 50));
    char before[MR_OLM_KEY_SIZE], after[MR_OLM_KEY_SIZE];
    json_t *msgs = intent(ROOM, "soon", NULL);
    reader *rs[] = {&S.alice};
    if (count_of(msgs, "to_device"))
        deliver(msgs, rs, 1);
    json_decref(read_answer(&S.alice, msgs, before));
    json_decref(msgs);
    /* Waits on the wall clock itself, not a guess: the session is then older than 50 ms. */
    long long until = mr_clock_wall_ms() + 60;
    while (mr_clock_wall_ms() < until)
        mr_clock_sleep_ms(5);
    msgs = intent(ROOM, "later", NULL);
    deliver_and_read(msgs, rs, 1, &S.alice, after, "later");
    assert_string_not_equal(before, after);
    room_state(ROOM, "m.room.encryption", "", json_pack("{s:s, s:i}", "algorithm", MR_OLM_ALGORITHM_MEGOLM,
                                                   "rotation_period_msgs", 1000));
}

/* alice signs in on her phone: her device list changes, the next message asks for her devices,
 * claims a key of the new one only and sends the room key to it alone, same session. */
static void test_new_device_gets_the_key(void **state)
{
    (void)state;
    device_lists_changed(HUMAN);
    char before[MR_OLM_KEY_SIZE], after[MR_OLM_KEY_SIZE];
    snprintf(before, sizeof before, "%s", S.alice.group_id);
    json_t *msgs = intent(ROOM, "for both devices", NULL);
    json_t *q = one_of(msgs, "keys_query");
    assert_non_null(json_object_get(json_object_get(json_object_get(q, "body"), "device_keys"), HUMAN));
    char txn[128];
    take_txn(msgs, q, txn);
    reader *both[] = {&S.alice, &S.phone};
    msgs = keys_reply("keys_query", txn, query_answer(both, 2));
    json_t *c = one_of(msgs, "keys_claim");
    json_t *claimed = json_object_get(json_object_get(json_object_get(c, "body"), "one_time_keys"), HUMAN);
    assert_int_equal(json_object_size(claimed), 1);
    assert_non_null(json_object_get(claimed, HUMAN_DEV2));
    take_txn(msgs, c, txn);
    reader *phone[] = {&S.phone};
    msgs = keys_reply("keys_claim", txn, claim_answer(phone, 1));
    deliver_and_read(msgs, phone, 1, &S.phone, after, "for both devices");
    assert_string_equal(before, after);
}

/* bob joins and gets the key; when he leaves, the next message has a new session he never gets. */
static void test_member_leaves_rotates(void **state)
{
    (void)state;
    member(BOB, "join");
    json_t *msgs = intent(ROOM, "hello bob", NULL);
    char txn[128];
    take_txn(msgs, one_of(msgs, "keys_query"), txn);
    reader *all[] = {&S.alice, &S.phone, &S.bob}, *bob[] = {&S.bob};
    msgs = keys_reply("keys_query", txn, query_answer(all, 3));
    take_txn(msgs, one_of(msgs, "keys_claim"), txn);
    msgs = keys_reply("keys_claim", txn, claim_answer(bob, 1));
    deliver(msgs, bob, 1);
    char with_bob[MR_OLM_KEY_SIZE], without[MR_OLM_KEY_SIZE];
    json_decref(read_answer(&S.bob, msgs, with_bob));
    json_decref(msgs);

    member(BOB, "leave");
    msgs = intent(ROOM, "bob is gone", NULL);
    reader *stay[] = {&S.alice, &S.phone};
    deliver_and_read(msgs, stay, 2, &S.alice, without, "bob is gone");
    assert_string_not_equal(with_bob, without);
}

/* A restart: the same session goes on, nothing is asked or shared again, no new device. */
static void test_restart_keeps_the_session(void **state)
{
    (void)state;
    char ed[MR_OLM_KEY_SIZE], sid[MR_OLM_KEY_SIZE];
    snprintf(ed, sizeof ed, "%s", mr_olm_account_ed25519(agent()->account));
    crypto_engine_free(&S.fx.engine);
    fx_engine_start(&S.fx);
    json_t *msgs = intent(ROOM, "after a restart", NULL);
    assert_int_equal(json_array_size(msgs), 1);
    json_t *p = read_answer(&S.alice, msgs, sid);
    assert_string_equal(body_of(p), "after a restart");
    assert_string_equal(mr_olm_account_ed25519(agent()->account), ed);
    json_decref(p);
    json_decref(msgs);
}

/* A room crypto never saw m.room.encryption in: the intent goes out as it came. */
static void test_plain_room_passes_through(void **state)
{
    (void)state;
    room_state(PLAIN_ROOM, "m.room.member", HUMAN, json_pack("{s:s}", "membership", "join"));
    json_t *msgs = intent(PLAIN_ROOM, "in clear", NULL);
    json_t *ev = one_of(msgs, "room_event");
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(str(ev, "event_type"), "m.room.message");
    assert_string_equal(str(json_object_get(ev, "content"), "body"), "in clear");
    json_decref(msgs);
    /* Typing in the encrypted room is not a room event: it passes through too. */
    json_t *t = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:b}", "v", 1, "type", "outbound_intent", "account", AGENT,
                          "room_id", ROOM, "action", "typing", "txn_id", "mr.typing-1", "typing", 1);
    msgs = messages(fx_feed(&S.fx, crypto_engine_outbound, t, "typing"));
    assert_true(json_is_true(json_object_get(one_of(msgs, "typing"), "typing")));
    json_decref(msgs);
}

/* An invited member reads what is sent after the invite unless history_visibility is "joined". */
static void test_invited_by_history_visibility(void **state)
{
    (void)state;
    room_state(ROOM, "m.room.history_visibility", "", json_pack("{s:s}", "history_visibility", "joined"));
    member(DAVE, "invite");
    json_t *msgs = intent(ROOM, "not for dave yet", NULL);
    assert_int_equal(count_of(msgs, "keys_query"), 0);
    assert_int_equal(count_of(msgs, "room_event"), 1);
    json_decref(msgs);

    room_state(ROOM, "m.room.history_visibility", "", json_pack("{s:s}", "history_visibility", "shared"));
    msgs = intent(ROOM, "dave may read this", NULL);
    json_t *q = one_of(msgs, "keys_query");
    assert_non_null(json_object_get(json_object_get(json_object_get(q, "body"), "device_keys"), DAVE));
    char txn[128];
    take_txn(msgs, q, txn);
    reader *none[] = {NULL};
    msgs = keys_reply("keys_query", txn, query_answer(none, 0));
    assert_int_equal(count_of(msgs, "room_event"), 1);
    json_decref(msgs);
    member(DAVE, "leave");
}

/* carol joins; the keys_query about her is lost. The next message within the minute waits behind
 * the first; after it, the next one asks again, and the answer sends all three in order. */
static void test_lost_request_asked_again(void **state)
{
    (void)state;
    member(CAROL, "join");
    json_t *msgs = intent(ROOM, "one", NULL);
    char lost[128];
    take_txn(msgs, one_of(msgs, "keys_query"), lost);
    msgs = intent(ROOM, "two", NULL);
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(msgs);

    /* The request went out a minute ago, as far as the parked record says. */
    mr_err err = {0};
    json_t *rec = NULL;
    fx_check(crypto_vault_get_plain(&S.fx.engine.vault, "crypto:megolm:wait:" AGENT, &rec, &err), &err, "parked");
    json_t *entry = json_object_get(rec, ROOM);
    json_object_set_new(entry, "asked_ms",
                        json_integer(json_integer_value(json_object_get(entry, "asked_ms")) - 61000));
    fx_check(crypto_vault_put_plain(&S.fx.engine.vault, "crypto:megolm:wait:" AGENT, rec, 0, &err), &err, "parked");
    json_decref(rec);

    msgs = intent(ROOM, "three", NULL);
    json_t *q = one_of(msgs, "keys_query");
    assert_string_not_equal(str(q, "txn_id"), lost);
    assert_non_null(json_object_get(json_object_get(json_object_get(q, "body"), "device_keys"), CAROL));
    char txn[128];
    take_txn(msgs, q, txn);
    /* The lost answer turning up late changes nothing. */
    reader *none[] = {NULL};
    msgs = keys_reply("keys_query", lost, query_answer(none, 0));
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(msgs);
    /* carol has no device: nothing to share, the three go out in order. */
    msgs = keys_reply("keys_query", txn, query_answer(none, 0));
    assert_int_equal(json_array_size(msgs), 3);
    static const char *const bodies[] = {"one", "two", "three"};
    for (size_t i = 0; i < 3; i++)
        read_body_at(msgs, i, bodies[i]);
    json_decref(msgs);
}

/* erin joins; the keys_query about her is lost and no other message comes. A minute later the
 * sweep asks again by itself, and the answer sends the parked message. */
static void test_lost_request_asked_by_the_sweep(void **state)
{
    (void)state;
    member(ERIN, "join");
    json_t *msgs = intent(ROOM, "the last word", NULL);
    char lost[128];
    take_txn(msgs, one_of(msgs, "keys_query"), lost);

    /* Within the minute the sweep leaves it alone. */
    msgs = messages(fx_outbound_sweep(&S.fx, mr_clock_wall_ms()));
    assert_int_equal(json_array_size(msgs), 0);
    json_decref(msgs);

    msgs = messages(fx_outbound_sweep(&S.fx, mr_clock_wall_ms() + 61000));
    json_t *q = one_of(msgs, "keys_query");
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_not_equal(str(q, "txn_id"), lost);
    assert_non_null(json_object_get(json_object_get(json_object_get(q, "body"), "device_keys"), ERIN));
    char txn[128];
    take_txn(msgs, q, txn);
    reader *none[] = {NULL};
    msgs = keys_reply("keys_query", txn, query_answer(none, 0));
    char sid[MR_OLM_KEY_SIZE];
    read_body(&S.alice, msgs, sid, "the last word");
    json_decref(msgs);

    /* Nothing waits any more: the account leaves the sweep's list. */
    json_t *out = fx_outbound_sweep(&S.fx, mr_clock_wall_ms() + 61000);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    assert_int_equal(mr_store_hget(S.fx.store, "crypto:megolm:waiting", AGENT, &v, &len, &err), MR_ENOTFOUND);
}

/* A room encrypted before crypto kept its record (its state never passed again): alice's message
 * carries the gateway's copy of m.room.encryption, so the answer is encrypted, for alice's
 * devices (her message says she is joined), never sent in clear. */
static void test_encryption_learnt_from_any_event(void **state)
{
    (void)state;
    char id[64];
    snprintf(id, sizeof id, "$msg%d", ++S.seq);
    observe(json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:I, s:{s:s, s:s}}, s:{s:s}}", "v", 1, "type",
                      "inbound_event", "account", AGENT, "room_id", OLD_ROOM, "event", "event_id", id, "sender",
                      HUMAN, "type", "m.room.message", "origin_server_ts", (json_int_t)1764000000000, "content",
                      "msgtype", "m.text", "body", "hello again", "encryption", "algorithm",
                      MR_OLM_ALGORITHM_MEGOLM));
    /* alice's devices and the Olm sessions to them are known from the other room. */
    json_t *msgs = intent(OLD_ROOM, "not in clear", NULL);
    json_t *td = one_of(msgs, "to_device");
    assert_int_equal(json_object_size(json_object_get(json_object_get(td, "messages"), HUMAN)), 2);
    json_t *ev = one_of(msgs, "room_event");
    assert_string_equal(str(ev, "event_type"), "m.room.encrypted");
    char *sent = json_dumps(ev, JSON_COMPACT);
    assert_null(strstr(sent, "not in clear"));
    free(sent);
    json_decref(msgs);
}

/* A message alone starts no record: a plain room crypto never saw stays plain. */
static void test_message_alone_keeps_a_room_plain(void **state)
{
    (void)state;
    observe(json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:I, s:{s:s, s:s}}}", "v", 1, "type",
                      "inbound_event", "account", AGENT, "room_id", "!other:example.org", "event", "event_id",
                      "$plainmsg", "sender", HUMAN, "type", "m.room.message", "origin_server_ts",
                      (json_int_t)1764000000000, "content", "msgtype", "m.text", "body", "hi"));
    json_t *facts = NULL;
    mr_err err = {0};
    assert_int_equal(crypto_room_facts(&S.fx.engine, "!other:example.org", &facts, &err), MR_ENOTFOUND);
    json_t *msgs = intent("!other:example.org", "plain", NULL);
    assert_string_equal(str(one_of(msgs, "room_event"), "event_type"), "m.room.message");
    json_decref(msgs);
}

/* alice signs her phone out: her device list changes and no longer has it, so the next message
 * has a new session, shared with her remaining device alone. */
static void test_device_removed_rotates(void **state)
{
    (void)state;
    device_lists_changed(HUMAN);
    char before[MR_OLM_KEY_SIZE], after[MR_OLM_KEY_SIZE];
    snprintf(before, sizeof before, "%s", S.alice.group_id);
    json_t *msgs = intent(ROOM, "the phone is gone", NULL);
    char txn[128];
    take_txn(msgs, one_of(msgs, "keys_query"), txn);
    reader *laptop[] = {&S.alice};
    msgs = keys_reply("keys_query", txn, query_answer(laptop, 1));
    deliver_and_read(msgs, laptop, 1, &S.alice, after, "the phone is gone");
    assert_string_not_equal(before, after);
}

static int group_setup(void **state)
{
    (void)state;
    if (fx_open(&S.fx, "mr-crypto-encrypt") != 0)
        return -1;
    human_new(&S.alice.dev, HUMAN, HUMAN_DEV);
    human_new(&S.phone.dev, HUMAN, HUMAN_DEV2);
    human_new(&S.bob.dev, BOB, BOB_DEV);
    return 0;
}

static void reader_free(reader *r)
{
    mr_olm_session_free(r->from_agent);
    mr_olm_inbound_group_free(r->group);
    human_free(&r->dev);
}

static int group_teardown(void **state)
{
    (void)state;
    reader_free(&S.alice);
    reader_free(&S.phone);
    reader_free(&S.bob);
    fx_close(&S.fx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_answer_shares_the_key),
        cmocka_unit_test(test_next_answer_at_once),
        cmocka_unit_test(test_rotation_by_count),
        cmocka_unit_test(test_relations_in_clear),
        cmocka_unit_test(test_rotation_by_time),
        cmocka_unit_test(test_new_device_gets_the_key),
        cmocka_unit_test(test_member_leaves_rotates),
        cmocka_unit_test(test_restart_keeps_the_session),
        cmocka_unit_test(test_plain_room_passes_through),
        cmocka_unit_test(test_invited_by_history_visibility),
        cmocka_unit_test(test_lost_request_asked_again),
        cmocka_unit_test(test_lost_request_asked_by_the_sweep),
        cmocka_unit_test(test_encryption_learnt_from_any_event),
        cmocka_unit_test(test_message_alone_keeps_a_room_plain),
        cmocka_unit_test(test_device_removed_rotates),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
