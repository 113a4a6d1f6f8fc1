/* fuzz_crypto_inbound.c -- libFuzzer target: what mindroom-crypto reads on its decrypt path
 * (inbound_event, todevice_event, keys_reply) never crashes or leaks, and bad input changes
 * nothing but the store. The first byte picks the message type; the store is SQLite in a
 * temporary directory, so waiting events and devices build up across inputs as in service. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_harness.h"
#include "mindroom/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool started;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!started) {
        fuzz_engine_open("crypto");
        started = true;
    }
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    json_t *out = json_array();
    mr_err err = {0};
    mr_code rc = MR_OK;
    switch (data[0] % 3) {
    case 0: {
        crypto_inbound in;
        if (crypto_inbound_parse(text, len, &in, &err) != MR_OK)
            break;
        if (in.encrypted)
            rc = crypto_engine_room_event(&FZ.engine, &in, text, len, out, &err);
        crypto_inbound_free(&in);
        break;
    }
    case 1:
        rc = crypto_engine_todevice(&FZ.engine, text, len, out, &err);
        break;
    default:
        rc = crypto_engine_keys_reply(&FZ.engine, text, len, out, &err);
        break;
    }
    fuzz_engine_settle(rc, out, &err);
    return 0;
}
