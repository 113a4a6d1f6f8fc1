/* test_decrypt.c -- the decryption engine of mindroom-crypto with real libolm and a real SQLite
 * store: the agent's device and its key uploads, a human's device (human_device.c) that claims a
 * one-time key and sends an m.room_key over Olm, encrypted room events in clear, events that wait
 * for their key, the notice after the wait, restarts that keep every key, the bounds on what is
 * kept, and the refusals:
 * malformed ciphertext, unknown session, replayed index, forged sender and sender key, to-device
 * from an unknown device. */
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
#define ROOM "!lobby:example.org"
/* A todevice_event whose sender is no user ID. */
#define BAD_SENDER "{\"v\":1,\"type\":\"todevice_event\",\"account\":\"@a:x\",\"device_id\":\"D\"," \
                   "\"event\":{\"sender\":\"x\",\"type\":\"t\",\"content\":{}}}"

typedef struct suite {
    engine_fixture fx;
    human_device human;
    char agent_curve[MR_OLM_KEY_SIZE], agent_ed[MR_OLM_KEY_SIZE];
    json_t *upload;          /* the first keys_upload body */
    json_t *xsign;           /* the first keys_device_signing_upload request */
} suite;

static suite S;

/* A todevice_event for the agent, with the fields of extra (key counts, device lists) when not
 * NULL. Returns the outputs. */
static json_t *todevice(const char *sender, const char *type, json_t *content, json_t *extra)
{
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:o}}", "v", 1, "type", "todevice_event", "account",
                            AGENT, "device_id", AGENT_DEV, "event", "sender", sender, "type", type, "content",
                            content);
    if (extra)
        json_object_update(msg, extra);
    json_decref(extra);
    return fx_feed(&S.fx, crypto_engine_todevice, msg, "todevice");
}

static json_t *counts(int n)
{
    return json_pack("{s:{s:i}}", "one_time_key_counts", "signed_curve25519", n);
}

static json_t *keys_reply(const char *kind, const char *txn, json_t *response)
{
    return fx_keys_reply(&S.fx, AGENT, kind, txn, response);
}

/* The messages of out (the entries that are for crypto_engine_commit left out). */
static size_t messages(json_t *out)
{
    size_t n = 0, i;
    json_t *o;
    json_array_foreach(out, i, o)
        n += json_object_get(o, "msg") != NULL;
    return n;
}

/* The i-th message of out (borrowed). */
static json_t *message(json_t *out, size_t n)
{
    size_t i;
    json_t *o;
    json_array_foreach(out, i, o)
        if (json_object_get(o, "msg") && n-- == 0)
            return json_object_get(o, "msg");
    fail_msg("no message %zu", n);
    return NULL;
}

/* The one message on topic (borrowed from out). */
static json_t *only(json_t *out, const char *topic)
{
    if (messages(out) != 1)
        fail_msg("expected one output on %s, got %zu", topic, messages(out));
    size_t i;
    json_t *o;
    json_array_foreach(out, i, o)
        if (json_object_get(o, "msg"))
            assert_string_equal(json_string_value(json_object_get(o, "topic")), topic);
    return message(out, 0);
}

/* An m.room.encrypted inbound event in ROOM; returns the outputs. */
static json_t *room_event(const char *event_id, const char *sender, json_t *content)
{
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:I, s:o}, s:s}", "v", 1, "type",
                            "inbound_event", "account", AGENT, "room_id", ROOM, "event", "event_id", event_id,
                            "sender", sender, "type", "m.room.encrypted", "origin_server_ts",
                            (json_int_t)1764000000000, "content", content, "membership", "join");
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    crypto_inbound in;
    mr_err err = {0};
    fx_check(crypto_inbound_parse(text, strlen(text), &in, &err), &err, "inbound");
    json_t *out = json_array();
    fx_check(crypto_engine_room_event(&S.fx.engine, &in, text, strlen(text), out, &err), &err, "room event");
    crypto_inbound_free(&in);
    free(text);
    fx_commit(&S.fx, out);
    return out;
}

static const char *body_of(json_t *cleartext)
{
    return json_string_value(json_object_get(json_object_get(json_object_get(cleartext, "event"), "content"), "body"));
}

/* The n-th one-time key of the first upload, as /keys/claim hands it out. */
static json_t *claimed_key(size_t n)
{
    const char *id;
    json_t *otk;
    size_t i = 0;
    json_object_foreach(json_object_get(S.upload, "one_time_keys"), id, otk)
        if (i++ == n)
            return otk;
    fail_msg("no one-time key %zu", n);
    return NULL;
}

/* h, a device the agent has not met, opens an Olm session with the n-th one-time key and sends
 * its room key: the agent asks /keys/query about it, and txn is that request's. */
static void first_room_key(human_device *h, size_t n, char txn[128])
{
    human_start_olm(h, AGENT, AGENT_DEV, S.agent_curve, S.agent_ed, claimed_key(n));
    json_t *out = todevice(h->user_id, "m.room.encrypted",
                           human_room_key(h, ROOM, AGENT, S.agent_curve, S.agent_ed), NULL);
    snprintf(txn, 128, "%s", json_string_value(json_object_get(only(out, "matrix.send"), "txn_id")));
    json_decref(out);
}

static int group_setup(void **state)
{
    (void)state;
    if (fx_open(&S.fx, "mr-crypto-decrypt") != 0)
        return -1;
    human_new(&S.human, HUMAN, HUMAN_DEV);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    human_free(&S.human);
    json_decref(S.upload);
    json_decref(S.xsign);
    fx_close(&S.fx);
    return 0;
}

/* The first key counts make the device and ask to upload its device keys, half the one-time keys
 * libolm keeps and a fallback key; nothing more is asked while that is in flight. */
static void test_device_keys_uploaded(void **state)
{
    (void)state;
    json_t *out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(0));
    json_t *req = only(out, "matrix.send");
    assert_string_equal(json_string_value(json_object_get(req, "kind")), "keys_upload");
    assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "key")), AGENT);
    json_t *body = json_object_get(req, "body");
    json_t *dk = json_object_get(body, "device_keys");
    assert_string_equal(json_string_value(json_object_get(dk, "user_id")), AGENT);
    assert_string_equal(json_string_value(json_object_get(dk, "device_id")), AGENT_DEV);
    assert_int_equal(json_object_size(json_object_get(body, "one_time_keys")), 50);
    assert_int_equal(json_object_size(json_object_get(body, "fallback_keys")), 1);
    mr_err err = {0};
    fx_check(mr_olm_verify_json(dk, AGENT, "ed25519:" AGENT_DEV,
                             json_string_value(json_object_get(json_object_get(dk, "keys"), "ed25519:" AGENT_DEV)),
                             &err),
          &err, "device keys signature");
    snprintf(S.agent_curve, sizeof S.agent_curve, "%s",
             json_string_value(json_object_get(json_object_get(dk, "keys"), "curve25519:" AGENT_DEV)));
    snprintf(S.agent_ed, sizeof S.agent_ed, "%s",
             json_string_value(json_object_get(json_object_get(dk, "keys"), "ed25519:" AGENT_DEV)));
    S.upload = json_incref(body);
    char txn[128];
    snprintf(txn, sizeof txn, "%s", json_string_value(json_object_get(req, "txn_id")));
    json_decref(out);

    /* The sync after the upload (the gateway publishes counts when they change). */
    out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(50));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    /* An answer to another request changes nothing; the right one publishes the keys. */
    json_decref(keys_reply("keys_upload", "ku.0.0", json_pack("{s:{s:i}}", "one_time_key_counts",
                                                              "signed_curve25519", 50)));
    assert_non_null(crypto_device_of(&S.fx.engine, AGENT)->upload_txn);
    out = keys_reply("keys_upload", txn, json_pack("{s:{s:i}}", "one_time_key_counts", "signed_curve25519", 50));
    /* Published device keys are followed by the account's cross-signing keys. */
    req = only(out, "matrix.send");
    assert_string_equal(json_string_value(json_object_get(req, "kind")), "keys_device_signing_upload");
    S.xsign = json_incref(req);
    json_decref(out);
    assert_true(crypto_device_of(&S.fx.engine, AGENT)->published);
    out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(50));
    assert_int_equal(messages(out), 0);
    json_decref(out);
}

/* The public key of a cross-signing key object, checking its user and usage. */
static const char *xsign_public(json_t *k, const char *usage)
{
    assert_string_equal(json_string_value(json_object_get(k, "user_id")), AGENT);
    assert_string_equal(json_string_value(json_array_get(json_object_get(k, "usage"), 0)), usage);
    const char *id;
    json_t *v;
    json_object_foreach(json_object_get(k, "keys"), id, v)
        return json_string_value(v);
    fail_msg("the %s key has no keys", usage);
    return NULL;
}

/* The master key signs the self-signing key; once that upload is answered, the self-signing key
 * signs the device; once that is answered nothing more is asked, not after a restart either. A
 * refused step is not asked again in the same run. */
static void test_cross_signing(void **state)
{
    (void)state;
    json_t *body = json_object_get(S.xsign, "body");
    const char *master = xsign_public(json_object_get(body, "master_key"), "master");
    const char *ssk = xsign_public(json_object_get(body, "self_signing_key"), "self_signing");
    char master_id[MR_OLM_KEY_SIZE + 8], ssk_id[MR_OLM_KEY_SIZE + 8], ssk_pub[MR_OLM_KEY_SIZE];
    snprintf(master_id, sizeof master_id, "ed25519:%s", master);
    snprintf(ssk_id, sizeof ssk_id, "ed25519:%s", ssk);
    snprintf(ssk_pub, sizeof ssk_pub, "%s", ssk);
    mr_err err = {0};
    fx_check(mr_olm_verify_json(json_object_get(body, "self_signing_key"), AGENT, master_id, master, &err), &err,
          "the master key's signature on the self-signing key");

    json_t *out = keys_reply("keys_device_signing_upload", json_string_value(json_object_get(S.xsign, "txn_id")),
                             json_object());
    json_t *req = only(out, "matrix.send");
    assert_string_equal(json_string_value(json_object_get(req, "kind")), "keys_signatures_upload");
    json_t *dk = json_object_get(json_object_get(json_object_get(req, "body"), AGENT), AGENT_DEV);
    assert_string_equal(json_string_value(json_object_get(json_object_get(dk, "keys"), "ed25519:" AGENT_DEV)),
                        S.agent_ed);
    fx_check(mr_olm_verify_json(dk, AGENT, ssk_id, ssk_pub, &err), &err, "the self-signing key's signature on the device");
    fx_check(mr_olm_verify_json(dk, AGENT, "ed25519:" AGENT_DEV, S.agent_ed, &err), &err, "the device's own signature");
    char txn[128];
    snprintf(txn, sizeof txn, "%s", json_string_value(json_object_get(req, "txn_id")));
    json_decref(out);

    /* A refusal is logged and not asked again until a restart. */
    out = fx_feed(&S.fx, crypto_engine_keys_reply,
               json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:s}", "v", 1, "type", "keys_reply", "account", AGENT,
                         "kind", "keys_signatures_upload", "txn_id", txn, "ok", 0, "error", "500 M_UNKNOWN"),
               "keys_reply");
    assert_int_equal(messages(out), 0);
    json_decref(out);
    out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(50));
    assert_int_equal(messages(out), 0);
    json_decref(out);

    /* After a restart the keys are not uploaded again: the device signature is asked again. */
    crypto_engine_free(&S.fx.engine);
    fx_engine_start(&S.fx);
    out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(50));
    req = only(out, "matrix.send");
    assert_string_equal(json_string_value(json_object_get(req, "kind")), "keys_signatures_upload");
    snprintf(txn, sizeof txn, "%s", json_string_value(json_object_get(req, "txn_id")));
    json_decref(out);
    out = keys_reply("keys_signatures_upload", txn, json_pack("{s:{}}", "failures"));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    assert_true(crypto_device_of(&S.fx.engine, AGENT)->xsign_done);

    crypto_engine_free(&S.fx.engine);
    fx_engine_start(&S.fx);
    out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(50));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    assert_true(crypto_device_of(&S.fx.engine, AGENT)->xsign_done);
}

/* A restart keeps the device: same keys, device keys not uploaded again, and low counts top up
 * one-time keys only. */
static void test_restart_keeps_device(void **state)
{
    (void)state;
    crypto_engine_free(&S.fx.engine);
    fx_engine_start(&S.fx);
    json_t *out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(49));
    json_t *body = json_object_get(only(out, "matrix.send"), "body");
    assert_null(json_object_get(body, "device_keys"));
    assert_int_equal(json_object_size(json_object_get(body, "one_time_keys")), 1);
    assert_string_equal(mr_olm_account_curve25519(crypto_device_of(&S.fx.engine, AGENT)->account), S.agent_curve);
    json_decref(keys_reply("keys_upload", json_string_value(json_object_get(only(out, "matrix.send"), "txn_id")),
                           json_object()));
    json_decref(out);
}

/* Counts that drop while an upload is in flight (a claim) are topped up once it is answered:
 * the gateway publishes counts only when they change, so they would not come again. */
static void test_counts_during_upload(void **state)
{
    (void)state;
    json_t *out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(40));
    json_t *req = only(out, "matrix.send");
    assert_int_equal(json_object_size(json_object_get(json_object_get(req, "body"), "one_time_keys")), 10);
    char txn[128];
    snprintf(txn, sizeof txn, "%s", json_string_value(json_object_get(req, "txn_id")));
    json_decref(out);
    out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(39));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    out = keys_reply("keys_upload", txn, json_pack("{s:{s:i}}", "one_time_key_counts", "signed_curve25519", 50));
    req = only(out, "matrix.send");
    assert_string_equal(json_string_value(json_object_get(req, "kind")), "keys_upload");
    assert_int_equal(json_object_size(json_object_get(json_object_get(req, "body"), "one_time_keys")), 11);
    snprintf(txn, sizeof txn, "%s", json_string_value(json_object_get(req, "txn_id")));
    json_decref(out);
    json_decref(keys_reply("keys_upload", txn, json_object()));
    assert_null(crypto_device_of(&S.fx.engine, AGENT)->upload_txn);
}

/* The human claims a one-time key of the first upload and sends the room key over Olm; the
 * engine asks /keys/query about the sender first, then takes the key. */
static void test_room_key_over_olm(void **state)
{
    (void)state;
    human_start_olm(&S.human, AGENT, AGENT_DEV, S.agent_curve, S.agent_ed, claimed_key(0));
    /* The sync that brings it also says alice's device list changed (she just uploaded keys). */
    json_t *out = todevice(HUMAN, "m.room.encrypted", human_room_key(&S.human, ROOM, AGENT, S.agent_curve,
                                                                     S.agent_ed),
                           json_pack("{s:{s:[s], s:[]}}", "device_lists", "changed", HUMAN, "left"));
    json_t *req = only(out, "matrix.send");
    assert_string_equal(json_string_value(json_object_get(req, "kind")), "keys_query");
    assert_non_null(json_object_get(json_object_get(json_object_get(req, "body"), "device_keys"), HUMAN));
    char txn[128];
    snprintf(txn, sizeof txn, "%s", json_string_value(json_object_get(req, "txn_id")));
    json_decref(out);
    out = keys_reply("keys_query", txn, json_pack("{s:{s:{s:o}}}", "device_keys", HUMAN, HUMAN_DEV,
                                                  human_device_keys(&S.human)));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    mr_err err = {0};
    char *dev = NULL, *ed = NULL;
    fx_check(crypto_sender_device(&S.fx.engine, HUMAN, mr_olm_account_curve25519(S.human.account), &dev, &ed, &err), &err,
          "alice's device, from the answer");
    assert_string_equal(dev, HUMAN_DEV);
    free(dev);
    free(ed);
}

/* The human's message arrives in clear for authz, under its own event ID and sender. */
static void test_message_decrypted(void **state)
{
    (void)state;
    json_t *content = human_encrypt_text(&S.human, ROOM, "hello agent");
    json_object_set_new(content, "m.relates_to", json_pack("{s:s, s:s}", "rel_type", "m.thread", "event_id",
                                                           "$root:example.org"));
    json_t *out = room_event("$m1:example.org", HUMAN, content);
    json_t *c = only(out, "matrix.cleartext");
    assert_string_equal(json_string_value(json_object_get(c, "type")), "cleartext_event");
    assert_true(json_is_true(json_object_get(c, "encrypted")));
    assert_string_equal(json_string_value(json_object_get(c, "sender_device")), HUMAN_DEV);
    assert_string_equal(json_string_value(json_object_get(c, "verification")), "unverified");
    json_t *ev = json_object_get(c, "event");
    assert_string_equal(json_string_value(json_object_get(ev, "event_id")), "$m1:example.org");
    assert_string_equal(json_string_value(json_object_get(ev, "sender")), HUMAN);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "m.room.message");
    assert_string_equal(body_of(c), "hello agent");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(ev, "content"),
                                                                          "m.relates_to"), "event_id")),
                        "$root:example.org");
    json_decref(out);
}

/* The same ciphertext under another event ID is a replay; under its own ID (a second account's
 * copy) it decrypts again. Another sender, another sender key, a broken ciphertext, another
 * algorithm: refused, nothing out. */
static void test_refusals(void **state)
{
    (void)state;
    json_t *content = human_encrypt_text(&S.human, ROOM, "once");
    json_t *out = room_event("$once:example.org", HUMAN, json_deep_copy(content));
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "once");
    json_decref(out);
    out = room_event("$once:example.org", HUMAN, json_deep_copy(content));
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "once");
    json_decref(out);
    json_t *refused[5];
    refused[0] = room_event("$replay:example.org", HUMAN, json_deep_copy(content));
    refused[1] = room_event("$forged:example.org", "@mallory:example.org", json_deep_copy(content));
    json_t *other_key = json_deep_copy(content);
    json_object_set_new(other_key, "sender_key", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    refused[2] = room_event("$forgedkey:example.org", HUMAN, other_key);
    json_t *broken = json_deep_copy(content);
    json_object_set_new(broken, "ciphertext", json_string("not*base64"));
    refused[3] = room_event("$broken:example.org", HUMAN, broken);
    json_t *alg = json_deep_copy(content);
    json_object_set_new(alg, "algorithm", json_string("m.unknown"));
    refused[4] = room_event("$alg:example.org", HUMAN, alg);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(messages(refused[i]), 0);
        json_decref(refused[i]);
    }
    json_decref(content);
}

/* A message of a session whose key has not come waits; the key brings it out in clear. Past
 * the wait, one notice per session, not per event or sweep. */
static void test_waits_for_key_then_notice(void **state)
{
    (void)state;
    /* A new Megolm session whose key comes later over the same Olm session. The key is made
     * before the messages (a Megolm key opens messages from its index on) but delivered after. */
    human_rotate(&S.human);
    json_t *key = human_room_key(&S.human, ROOM, AGENT, S.agent_curve, S.agent_ed);
    json_t *out = room_event("$early:example.org", HUMAN, human_encrypt_text(&S.human, ROOM, "before the key"));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    out = room_event("$early2:example.org", HUMAN, human_encrypt_text(&S.human, ROOM, "also before"));
    json_decref(out);

    mr_err err = {0};
    out = json_array();
    long long now = mr_clock_wall_ms();
    fx_check(crypto_pending_sweep(&S.fx.engine, now, out, &err), &err, "sweep");
    assert_int_equal(messages(out), 0);
    /* First the key is asked for (test_forwarded_key_after_request looks at the request). */
    fx_check(crypto_pending_sweep(&S.fx.engine, now + CRYPTO_KEY_REQUEST_MS + 1000, out, &err), &err, "sweep");
    assert_string_equal(json_string_value(json_object_get(only(out, "matrix.send"), "event_type")),
                        "m.room_key_request");
    fx_commit(&S.fx, out);
    json_decref(out);
    out = json_array();
    fx_check(crypto_pending_sweep(&S.fx.engine, now + CRYPTO_KEY_WAIT_MS + 1000, out, &err), &err, "sweep");
    /* Until the notice is marked as published (a crash in between), a sweep makes it again,
     * under the same transaction ID. */
    json_t *again = json_array();
    fx_check(crypto_pending_sweep(&S.fx.engine, now + CRYPTO_KEY_WAIT_MS + 2000, again, &err), &err, "sweep");
    assert_string_equal(json_string_value(json_object_get(only(again, "matrix.send"), "txn_id")),
                        json_string_value(json_object_get(only(out, "matrix.send"), "txn_id")));
    json_decref(again);
    fx_commit(&S.fx, out);
    json_t *n = only(out, "matrix.send");
    assert_string_equal(json_string_value(json_object_get(n, "room_id")), ROOM);
    assert_string_equal(json_string_value(json_object_get(json_object_get(n, "content"), "msgtype")), "m.notice");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(n, "content"), "body")),
                           "could not decrypt"));
    json_decref(out);
    out = json_array();
    fx_check(crypto_pending_sweep(&S.fx.engine, now + 2 * CRYPTO_KEY_WAIT_MS, out, &err), &err, "sweep");
    assert_int_equal(messages(out), 0);
    json_decref(out);

    /* The key arrives (a normal Olm message now that the session exists) and both come out. */
    out = todevice(HUMAN, "m.room.encrypted", key, NULL);
    assert_int_equal(messages(out), 2);
    assert_string_equal(body_of(message(out, 0)), "before the key");
    assert_string_equal(body_of(message(out, 1)), "also before");
    json_decref(out);
}

/* A key that never comes by itself is asked for once from the sender's devices; the
 * m.forwarded_room_key that answers (over Olm) brings the waiting event out. A forwarded key
 * nobody asked for, or naming another sender key than the waiting events, is refused. */
static void test_forwarded_key_after_request(void **state)
{
    (void)state;
    human_rotate(&S.human);
    char id[MR_OLM_KEY_SIZE];
    mr_olm_outbound_group_id(S.human.megolm, id);
    const char *curve = mr_olm_account_curve25519(S.human.account);
    /* Made before the message: the forwarded keys open it from its index on. */
    json_t *good = human_forwarded_key(&S.human, ROOM, curve);
    json_t *other = human_forwarded_key(&S.human, ROOM, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    json_t *out = room_event("$lost:example.org", HUMAN, human_encrypt_text(&S.human, ROOM, "key never sent"));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    out = todevice(HUMAN, "m.room.encrypted",
                   human_olm_to_agent(&S.human, "m.forwarded_room_key", json_deep_copy(good), AGENT, S.agent_curve,
                                      S.agent_ed),
                   NULL);
    assert_int_equal(messages(out), 0);
    json_decref(out);

    mr_err err = {0};
    long long now = mr_clock_wall_ms();
    out = json_array();
    fx_check(crypto_pending_sweep(&S.fx.engine, now + CRYPTO_KEY_REQUEST_MS + 1000, out, &err), &err, "sweep");
    json_t *req = only(out, "matrix.send");
    /* Keyed by account, as topics.yaml keys requests that have no room. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "key")), AGENT);
    assert_string_equal(json_string_value(json_object_get(req, "kind")), "to_device");
    assert_string_equal(json_string_value(json_object_get(req, "event_type")), "m.room_key_request");
    json_t *c = json_object_get(json_object_get(json_object_get(req, "messages"), HUMAN), "*");
    assert_string_equal(json_string_value(json_object_get(c, "action")), "request");
    assert_string_equal(json_string_value(json_object_get(c, "requesting_device_id")), AGENT_DEV);
    assert_string_equal(json_string_value(json_object_get(c, "request_id")),
                        json_string_value(json_object_get(req, "txn_id")));
    json_t *body = json_object_get(c, "body");
    assert_string_equal(json_string_value(json_object_get(body, "session_id")), id);
    assert_string_equal(json_string_value(json_object_get(body, "sender_key")), curve);
    assert_string_equal(json_string_value(json_object_get(body, "room_id")), ROOM);
    fx_commit(&S.fx, out);
    json_decref(out);
    out = json_array();
    fx_check(crypto_pending_sweep(&S.fx.engine, now + CRYPTO_KEY_REQUEST_MS + 2000, out, &err), &err, "sweep");
    assert_int_equal(messages(out), 0);
    json_decref(out);

    out = todevice(HUMAN, "m.room.encrypted",
                   human_olm_to_agent(&S.human, "m.forwarded_room_key", other, AGENT, S.agent_curve, S.agent_ed),
                   NULL);
    assert_int_equal(messages(out), 0);
    json_decref(out);
    out = todevice(HUMAN, "m.room.encrypted",
                   human_olm_to_agent(&S.human, "m.forwarded_room_key", good, AGENT, S.agent_curve, S.agent_ed),
                   NULL);
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "key never sent");
    json_decref(out);
}

/* After a restart, the Olm and Megolm sessions are still there. */
static void test_restart_keeps_sessions(void **state)
{
    (void)state;
    crypto_engine_free(&S.fx.engine);
    fx_engine_start(&S.fx);
    json_t *out = room_event("$after:example.org", HUMAN, human_encrypt_text(&S.human, ROOM, "after restart"));
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "after restart");
    json_decref(out);
    out = todevice(HUMAN, "m.room.encrypted", human_room_key(&S.human, ROOM, AGENT, S.agent_curve, S.agent_ed), NULL);
    assert_int_equal(messages(out), 0);
    json_decref(out);
}

/* A to-device event from a device /keys/query does not know, or that is not for this device,
 * or that is not Olm: refused once the answer is in, nothing decrypted. */
static void test_unknown_device_refused(void **state)
{
    (void)state;
    human_device stranger;
    human_new(&stranger, "@eve:example.org", "EVEDEV");
    char txn[128];
    first_room_key(&stranger, 1, txn);
    /* The homeserver knows no device of eve's. */
    json_t *out = keys_reply("keys_query", txn, json_pack("{s:{s:{}}}", "device_keys", "@eve:example.org"));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    /* So her message stays unreadable: its session never became known. */
    out = room_event("$eve:example.org", "@eve:example.org", human_encrypt_text(&stranger, ROOM, "from eve"));
    assert_int_equal(messages(out), 0);
    json_decref(out);
    json_t *sweep = json_array();
    mr_err err = {0};
    fx_check(crypto_pending_sweep(&S.fx.engine, mr_clock_wall_ms() + CRYPTO_KEY_WAIT_MS * 10, sweep, &err), &err, "sweep");
    /* Her key is asked for, and the room told. */
    assert_int_equal(messages(sweep), 2);
    fx_commit(&S.fx, sweep);
    json_decref(sweep);
    /* A week later the waiting list has expired, and its entry leaves the index. */
    sweep = json_array();
    fx_check(crypto_pending_sweep(&S.fx.engine, mr_clock_wall_ms() + 8LL * 86400000LL, sweep, &err), &err, "sweep");
    assert_int_equal(messages(sweep), 0);
    json_decref(sweep);
    mr_store_hash h = {0};
    fx_check(mr_store_hgetall(S.fx.store, "crypto:pending", &h, &err), &err, "crypto:pending");
    assert_int_equal(h.count, 0);
    mr_store_hash_free(&h);

    /* Not for this device, and not Olm. */
    out = todevice(HUMAN, "m.room.encrypted", json_pack("{s:s, s:s, s:{}}", "algorithm", MR_OLM_ALGORITHM_OLM,
                                                        "sender_key", mr_olm_account_curve25519(S.human.account),
                                                        "ciphertext"), NULL);
    assert_int_equal(messages(out), 0);
    json_decref(out);
    out = todevice(HUMAN, "m.room.encrypted", json_pack("{s:s}", "algorithm", "m.megolm.v1.aes-sha2"), NULL);
    assert_int_equal(messages(out), 0);
    json_decref(out);
    human_free(&stranger);
}

/* A device that keeps opening Olm sessions (each with a new one-time key) leaves the newest
 * 16 in the store, and the newest still decrypts. */
static void test_olm_sessions_bounded(void **state)
{
    (void)state;
    for (size_t i = 2; i < 2 + 18; i++) {
        human_start_olm(&S.human, AGENT, AGENT_DEV, S.agent_curve, S.agent_ed, claimed_key(i));
        json_decref(todevice(HUMAN, "m.room.encrypted",
                             human_room_key(&S.human, ROOM, AGENT, S.agent_curve, S.agent_ed), NULL));
    }
    char key[256];
    snprintf(key, sizeof key, "crypto:olm:%s:%s", AGENT, mr_olm_account_curve25519(S.human.account));
    json_t *list = NULL;
    mr_err err = {0};
    fx_check(crypto_vault_get(&S.fx.engine.vault, key, &list, &err), &err, key);
    assert_int_equal(json_array_size(list), 16);
    json_decref(list);
    json_t *out = room_event("$bounded:example.org", HUMAN, human_encrypt_text(&S.human, ROOM, "still here"));
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "still here");
    json_decref(out);
}

/* An answer to /keys/query handled halfway (a crash after the devices were saved, before the
 * waiting events were) and delivered again: the events are still there and are handled. */
static void test_query_answer_again_after_crash(void **state)
{
    (void)state;
    human_device bob;
    human_new(&bob, "@bob:example.org", "BOBDEV");
    char txn[128];
    first_room_key(&bob, 30, txn);
    json_t *response = json_pack("{s:{s:{s:o}}}", "device_keys", bob.user_id, "BOBDEV", human_device_keys(&bob));
    json_t *reply = json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:O}", "v", 1, "type", "keys_reply", "account", AGENT,
                              "kind", "keys_query", "txn_id", txn, "ok", 1, "response", response);
    json_t *events = NULL, *users = NULL;
    mr_err err = {0};
    fx_check(crypto_sender_answered(&S.fx.engine, reply, &events, &users, &err), &err, "the first delivery");
    assert_int_equal(json_array_size(events), 1);
    json_decref(events);
    json_decref(users);
    json_decref(reply);

    json_t *out = keys_reply("keys_query", txn, response);
    assert_int_equal(messages(out), 0);
    json_decref(out);
    out = room_event("$bob:example.org", bob.user_id, human_encrypt_text(&bob, ROOM, "from bob"));
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "from bob");
    json_decref(out);
    json_t *rec = NULL;
    assert_int_equal(crypto_vault_get_plain(&S.fx.engine.vault, "crypto:wait:" AGENT ":replay", &rec, &err),
                     MR_ENOTFOUND);
    human_free(&bob);
}

/* The room key comes while events wait, and the process dies after their cleartexts went out
 * but before the store heard: the next sweep decrypts them again, and then they are done. */
static void test_retry_after_crash(void **state)
{
    (void)state;
    human_rotate(&S.human);
    json_t *key = human_room_key(&S.human, ROOM, AGENT, S.agent_curve, S.agent_ed);
    json_decref(room_event("$crash:example.org", HUMAN, human_encrypt_text(&S.human, ROOM, "through a crash")));
    S.fx.crash_before_commit = true;
    json_t *out = todevice(HUMAN, "m.room.encrypted", key, NULL);
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "through a crash");
    json_decref(out);

    char id[MR_OLM_KEY_SIZE];
    mr_olm_outbound_group_id(S.human.megolm, id);
    json_t *waiting = NULL;
    mr_err err = {0};
    fx_check(crypto_pending_get(&S.fx.engine, ROOM, id, &waiting, &err), &err, "waiting");
    assert_int_equal(json_array_size(waiting), 1);
    json_decref(waiting);
    out = json_array();
    fx_check(crypto_pending_sweep(&S.fx.engine, mr_clock_wall_ms(), out, &err), &err, "sweep");
    assert_string_equal(body_of(only(out, "matrix.cleartext")), "through a crash");
    fx_commit(&S.fx, out);
    json_decref(out);
    fx_check(crypto_pending_get(&S.fx.engine, ROOM, id, &waiting, &err), &err, "waiting");
    assert_int_equal(json_array_size(waiting), 0);
    json_decref(waiting);
}

/* An upload the homeserver refused is asked for again at the next key counts, with the same
 * keys (they stayed unpublished). */
static void test_refused_upload_asks_again(void **state)
{
    (void)state;
    json_t *out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(10));
    json_t *req = only(out, "matrix.send");
    json_t *first = json_incref(json_object_get(json_object_get(req, "body"), "one_time_keys"));
    json_t *refusal = json_pack("{s:i, s:s, s:s, s:s, s:O, s:b, s:s}", "v", 1, "type", "keys_reply", "account",
                                AGENT, "kind", "keys_upload", "txn_id", json_object_get(req, "txn_id"), "ok", 0,
                                "error", "400 M_UNKNOWN: One time key already exists");
    json_decref(out);
    out = fx_feed(&S.fx, crypto_engine_keys_reply, refusal, "refusal");
    assert_int_equal(messages(out), 0);
    json_decref(out);
    assert_null(crypto_device_of(&S.fx.engine, AGENT)->upload_txn);
    out = todevice(AGENT, "com.mindroom.key_counts", json_object(), counts(10));
    assert_true(json_equal(json_object_get(json_object_get(only(out, "matrix.send"), "body"), "one_time_keys"),
                           first));
    json_decref(out);
    json_decref(first);
}

/* Messages that break the todevice_event and keys_reply schemas are MR_EINVAL, naming the field. */
static void test_malformed_messages(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"v\":1,\"type\":\"todevice_event\",\"account\":\"@a:x\",\"event\":{}}",
        BAD_SENDER,
        "not json",
    };
    static const char *const why[] = {"device_id", "event.sender", "JSON"};
    for (size_t i = 0; i < 3; i++) {
        json_t *out = json_array();
        mr_err err = {0};
        assert_int_equal(crypto_engine_todevice(&S.fx.engine, bad[i], strlen(bad[i]), out, &err), MR_EINVAL);
        if (!strstr(err.msg, why[i]))
            fail_msg("expected \"%s\" in: %s", why[i], err.msg);
        assert_int_equal(messages(out), 0);
        json_decref(out);
    }
    const char *reply = "{\"v\":1,\"type\":\"keys_reply\",\"account\":\"@a:x\",\"txn_id\":\"k\",\"ok\":true}";
    json_t *out = json_array();
    mr_err err = {0};
    assert_int_equal(crypto_engine_keys_reply(&S.fx.engine, reply, strlen(reply), out, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "kind"));
    json_decref(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_keys_uploaded),
        cmocka_unit_test(test_cross_signing),
        cmocka_unit_test(test_restart_keeps_device),
        cmocka_unit_test(test_counts_during_upload),
        cmocka_unit_test(test_room_key_over_olm),
        cmocka_unit_test(test_message_decrypted),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_waits_for_key_then_notice),
        cmocka_unit_test(test_forwarded_key_after_request),
        cmocka_unit_test(test_restart_keeps_sessions),
        cmocka_unit_test(test_unknown_device_refused),
        cmocka_unit_test(test_olm_sessions_bounded),
        cmocka_unit_test(test_query_answer_again_after_crash),
        cmocka_unit_test(test_retry_after_crash),
        cmocka_unit_test(test_refused_upload_asks_again),
        cmocka_unit_test(test_malformed_messages),
    };
    return cmocka_run_group_tests_name("crypto_decrypt", tests, group_setup, group_teardown);
}
