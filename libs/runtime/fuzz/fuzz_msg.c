/* fuzz_msg.c -- libFuzzer target: mr_msg_load and the field readers never crash on any bus
 * message (each of the topics' types, the gateway's send_request included), and a message they
 * accept is an object of that type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {"inbound_event", "cleartext_event", "turn", "outbound_intent",
                                    "send_request", "todevice_event"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        json_t *root = NULL;
        mr_err err = {0};
        if (mr_msg_load((const char *)data, size, types[t], &root, &err) != MR_OK)
            continue;
        const char *type = mr_msg_string(root, "type");
        if (!json_is_object(root) || !type || strcmp(type, types[t]) != 0)
            abort();
        const char *s = NULL;
        json_t *event = json_object_get(root, "event");
        mr_msg_need_string(event, "event", "type", &s, &err);
        mr_msg_need_user(event, "event", "sender", &s, &err);
        mr_msg_need_room_id(root, "", "room_id", &s, &err);
        mr_msg_need_user(root, "", "account", &s, &err);
        json_decref(root);
    }
    return 0;
}
