/* fuzz_sync.c -- libFuzzer target: the gateway's reading of a /sync body (sync_parse.c) never
 * crashes on any body, walked as sync_loop.c walks it, and every message it builds for the bus
 * is one its consumers accept (mr_msg_load of its type, the fields they require). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_internal.h"
#include "mindroom/msg.h"

#define ACCOUNT "@mindroom_router:localhost"
#define DEVICE "ROUTERDEV"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Dumps msg and loads it back as a consumer would; aborts when a consumer would refuse it. */
static void check_message(json_t *msg, const char *type)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return;
    json_t *root = NULL;
    mr_err err = {0};
    const char *s = NULL;
    if (mr_msg_load(text, strlen(text), type, &root, &err) != MR_OK ||
        mr_msg_need_user(root, "", "account", &s, &err) != MR_OK ||
        mr_msg_need_string(json_object_get(root, "event"), "event", "type", &s, &err) != MR_OK)
        abort();
    if (strcmp(type, "inbound_event") == 0 &&
        (mr_msg_need_string(json_object_get(root, "event"), "event", "event_id", &s, &err) != MR_OK ||
         mr_msg_need_string(json_object_get(root, "event"), "event", "sender", &s, &err) != MR_OK))
        abort();
    json_decref(root);
    free(text);
}

static void room_events(const char *room_id, json_t *events, const char *membership)
{
    json_t *facts = json_pack("{s:s, s:s}", "key", "lobby", "alias", "#lobby:localhost");
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        if (!gw_sync_event_id(ev))
            continue;
        json_t *msg = gw_sync_inbound(ACCOUNT, room_id, ev, membership, i % 2 == 0, facts);
        if (msg && gw_sync_publishable("inbound_event", msg))
            check_message(msg, "inbound_event");
        json_decref(msg);
    }
    json_decref(facts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *sync = json_loadb((const char *)data, size, 0, NULL);
    if (!sync)
        return 0;
    json_t *rooms = json_object_get(sync, "rooms");
    const char *room_id;
    json_t *room;
    json_object_foreach(json_object_get(rooms, "join"), room_id, room) {
        gw_sync_own_join_ts(ACCOUNT, json_object_get(json_object_get(room, "state"), "events"));
        room_events(room_id, json_object_get(json_object_get(room, "state"), "events"), "join");
        room_events(room_id, json_object_get(json_object_get(room, "timeline"), "events"), "join");
    }
    json_object_foreach(json_object_get(rooms, "leave"), room_id, room)
        room_events(room_id, json_object_get(json_object_get(room, "timeline"), "events"), "leave");
    json_object_foreach(json_object_get(rooms, "invite"), room_id, room)
        gw_sync_inviter(ACCOUNT, room);
    json_t *lists = gw_sync_device_lists(sync), *counts = gw_sync_key_counts(sync);
    json_t *msgs = gw_sync_todevice(ACCOUNT, DEVICE, sync, lists, counts);
    size_t i;
    json_t *msg;
    json_array_foreach(msgs, i, msg)
        if (gw_sync_publishable("todevice_event", msg))
            check_message(msg, "todevice_event");
    json_decref(msgs);
    json_decref(lists);
    json_decref(counts);
    json_decref(sync);
    return 0;
}
