/* fuzz_crypto_outbound_keys.c -- libFuzzer target: the answer to a key request of the outbound
 * path (room_encrypt.c) -- the /keys/query or /keys/claim response the gateway relays for a
 * message parked in an encrypted room -- never crashes or leaks, and a refusal says why. Each
 * input parks one answer first, so its response meets a request in flight: the first byte picks
 * a keys_query (alice's devices unknown) or a keys_claim (her device known, no Olm session to
 * it), and whether the gateway says the request succeeded; the rest is the response. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_harness.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define AGENT "@mind:example.org"
#define ALICE "@alice:example.org"
#define ROOM "!r:example.org"
#define WAIT_KEY "crypto:megolm:wait:" AGENT
#define DEVICES_KEY "crypto:devices:" ALICE

static mr_olm_account *alice;
static bool started;
static int seq;

static void finish(void)
{
    mr_olm_account_free(alice);
}

/* An inbound state event of ROOM, as the gateway publishes it. */
static void observe(const char *type, const char *state_key, json_t *content)
{
    char id[32];
    snprintf(id, sizeof id, "$s%d:example.org", ++seq);
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:i, s:o}}", "v", 1, "type",
                            "inbound_event", "account", AGENT, "room_id", ROOM, "event", "event_id", id, "sender",
                            ALICE, "type", type, "state_key", state_key, "origin_server_ts", 1, "content", content);
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    crypto_inbound in;
    mr_err err = {0};
    if (!text || crypto_inbound_parse(text, strlen(text), &in, &err) != MR_OK ||
        crypto_room_observe(&FZ.engine, &in, &err) != MR_OK)
        abort();
    crypto_inbound_free(&in);
    free(text);
    json_decref(msg);
}

/* The agent's device, alice's device, and an encrypted room both are in. */
static void start(void)
{
    mr_err err = {0};
    crypto_device *d = NULL;
    fuzz_engine_open("outkeys");
    if (crypto_device_get(&FZ.engine, AGENT, "MINDDEV", &d, &err) != MR_OK || mr_olm_account_new(&alice, &err) != MR_OK)
        abort();
    observe("m.room.encryption", "", json_pack("{s:s}", "algorithm", MR_OLM_ALGORITHM_MEGOLM));
    observe("m.room.member", AGENT, json_pack("{s:s}", "membership", "join"));
    observe("m.room.member", ALICE, json_pack("{s:s}", "membership", "join"));
    atexit(finish);
    started = true;
}

/* Parks one answer behind a keys_query (claim false) or a keys_claim; the txn_id in flight. */
static char *park(bool claim)
{
    mr_err err = {0};
    json_t *out = json_array();
    /* What the previous input left waiting goes; each input starts from the same request. */
    if (!out || mr_store_del(FZ.store, WAIT_KEY, &err) != MR_OK)
        abort();
    char *olm = mr_str_printf("crypto:olm:%s:%s", AGENT, mr_olm_account_curve25519(alice));
    json_t *devices = json_pack("{s:{s:s, s:s}}", "ALICEDEV", "curve25519", mr_olm_account_curve25519(alice),
                                "ed25519", mr_olm_account_ed25519(alice));
    if (!olm || !devices)
        abort();
    if ((claim ? crypto_vault_put_plain(&FZ.engine.vault, DEVICES_KEY, devices, 0, &err)
               : mr_store_del(FZ.store, DEVICES_KEY, &err)) != MR_OK ||
        mr_store_del(FZ.store, olm, &err) != MR_OK)
        abort();
    free(olm);
    json_decref(devices);
    char txn[32];
    snprintf(txn, sizeof txn, "mr.f-%d", ++seq);
    json_t *intent = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "v", 1, "type",
                               "outbound_intent", "account", AGENT, "room_id", ROOM, "action", "send", "txn_id", txn,
                               "event_type", "m.room.message", "content", "msgtype", "m.text", "body", "answer");
    char *text = intent ? json_dumps(intent, JSON_COMPACT) : NULL;
    if (!text || crypto_engine_outbound(&FZ.engine, text, strlen(text), out, &err) != MR_OK ||
        crypto_engine_commit(&FZ.engine, out, &err) != MR_OK)
        abort();
    free(text);
    json_decref(intent);
    json_decref(out);
    json_t *rec = NULL;
    if (crypto_vault_get_plain(&FZ.engine.vault, WAIT_KEY, &rec, &err) != MR_OK)
        abort();
    const char *in_flight = mr_msg_string(json_object_get(rec, ROOM), "txn");
    char *copy = in_flight ? strdup(in_flight) : NULL;
    json_decref(rec);
    if (!copy)
        abort();
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!started)
        start();
    if (size < 1)
        return 0;
    json_t *response = json_loadb((const char *)data + 1, size - 1, 0, NULL);
    if (!response)
        return 0;
    bool claim = data[0] & 1, ok = data[0] & 2;
    char *txn = park(claim);
    json_t *reply = json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:o}", "v", 1, "type", "keys_reply", "account", AGENT,
                              "kind", claim ? "keys_claim" : "keys_query", "txn_id", txn, "ok", ok, "response",
                              response);
    if (reply && !ok && json_object_set_new(reply, "error", json_string("M_UNKNOWN: fuzzed")) != 0)
        abort();
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_t *out = json_array();
    mr_err err = {0};
    if (!text || !out)
        abort();
    mr_code rc = crypto_engine_keys_reply(&FZ.engine, text, strlen(text), out, &err);
    fuzz_engine_settle(rc, out, &err);
    json_decref(reply);
    free(text);
    free(txn);
    return 0;
}
