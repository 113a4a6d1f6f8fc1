/* fuzz_crypto_messages.c -- libFuzzer target: crypto's inbound_event parser and the cleartext it
 * builds, and its outbound_intent to send_request conversion, never crash on any message. */
#include <stdint.h>
#include <stdlib.h>

#include "crypto_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crypto_inbound in;
    mr_err err = {0};
    if (crypto_inbound_parse((const char *)data, size, &in, &err) == MR_OK) {
        if (!in.root || !in.room_id || !in.event_id || (in.encrypted && !in.session_id))
            abort();
        if (!in.encrypted)
            free(crypto_cleartext_build(&in));
        crypto_inbound_free(&in);
    }
    json_t *req = NULL;
    if (crypto_send_request((const char *)data, size, &req, &err) == MR_OK &&
        (!req || !json_is_string(json_object_get(req, "room_id")) || !json_is_string(json_object_get(req, "kind"))))
        abort();
    json_decref(req);
    return 0;
}
