/* fuzz_crypto_room_keys.c -- libFuzzer target: what an Olm payload that decrypted hands to the
 * Megolm side -- the content of an m.room_key or of an m.forwarded_room_key -- never crashes or
 * leaks, and refused content changes nothing. libolm's Olm layer stands in front of these
 * parsers in service, so fuzz_crypto_inbound never reaches them: here the content goes in
 * directly. One event waits for a requested session from the start, so forwarded keys for it
 * get past the request check. The first byte picks the event type. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_harness.h"
#include "mindroom/clock.h"
#include "mindroom/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define AGENT "@mind:example.org"
#define SENDER "@alice:example.org"
#define SENDER_KEY "aZzw2Ob35U1soKRFoNCMKfARSmMlFQxg+iONSFH4Vzg"
/* The event that waits: its session ID is what a forwarded key must name to get far. */
#define WAITING "{\"v\":1,\"type\":\"inbound_event\",\"account\":\"" AGENT "\",\"room_id\":\"!r:example.org\"," \
                "\"event\":{\"event_id\":\"$e:example.org\",\"sender\":\"" SENDER "\",\"type\":"                 \
                "\"m.room.encrypted\",\"origin_server_ts\":1,\"content\":{\"algorithm\":"                      \
                "\"m.megolm.v1.aes-sha2\",\"sender_key\":\"" SENDER_KEY "\",\"ciphertext\":\"AAAA\","          \
                "\"session_id\":\"S\",\"device_id\":\"ALICEDEV\"}},\"membership\":\"join\"}"

static bool started;

static void start(void)
{
    mr_err err = {0};
    crypto_device *d = NULL;
    crypto_inbound in;
    json_t *out = json_array();
    fuzz_engine_open("roomkeys");
    if (!out || crypto_device_get(&FZ.engine, AGENT, "MINDDEV", &d, &err) != MR_OK ||
        crypto_inbound_parse(WAITING, strlen(WAITING), &in, &err) != MR_OK)
        abort();
    long long now = mr_clock_wall_ms();
    if (crypto_pending_add(&FZ.engine, &in, WAITING, strlen(WAITING), now, &err) != MR_OK ||
        crypto_pending_sweep(&FZ.engine, now + CRYPTO_KEY_REQUEST_MS, out, &err) != MR_OK ||
        crypto_engine_commit(&FZ.engine, out, &err) != MR_OK)
        abort();
    crypto_inbound_free(&in);
    json_decref(out);
    started = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!started)
        start();
    if (size < 1)
        return 0;
    json_t *content = json_loadb((const char *)data + 1, size - 1, 0, NULL);
    if (!content)
        return 0;
    json_t *out = json_array();
    mr_err err = {0};
    mr_code rc = data[0] % 2 ? crypto_forwarded_key(&FZ.engine, SENDER, "ALICEDEV", content, out, &err)
                             : crypto_room_key(&FZ.engine, SENDER, "ALICEDEV", SENDER_KEY,
                                               "edKeyOfAliceDeviceAAAAAAAAAAAAAAAAAAAAAAAA", content, out, &err);
    fuzz_engine_settle(rc, out, &err);
    json_decref(content);
    return 0;
}
