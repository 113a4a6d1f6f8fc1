/* sync_parse.c -- what a /sync body turns into on the bus, apart from any I/O: which room events
 * are whole enough to travel, the matrix.inbound and matrix.todevice messages built from them,
 * an account's own join time and the sender of its invites. sync_loop.c publishes what these
 * build; fuzz/fuzz_sync.c feeds them arbitrary bodies. */
#include "gateway_internal.h"

#include <string.h>

#include "mindroom/ids.h"
#include "mindroom/log.h"
#include "mindroom/proto.h"

/* Sent on matrix.todevice when a sync reports device list changes but no to-device event to
 * carry them, so crypto still refreshes those users' keys. */
#define DEVICE_LISTS_EVENT "com.mindroom.device_lists"
/* Sent on matrix.todevice when the device's key counts changed but no to-device event carries
 * them, so crypto tops up one-time and fallback keys (and learns the device on a first sync). */
#define KEY_COUNTS_EVENT "com.mindroom.key_counts"

static bool is(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* A non-empty string member, what consumers' mr_msg_need_string requires. */
static const char *text(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : NULL;
}

const char *gw_sync_event_id(json_t *ev)
{
    /* Stripped state (no ID, no time) and events missing what every consumer reads stay out. */
    if (!text(ev, "type") || !text(ev, "sender") || !json_is_integer(json_object_get(ev, "origin_server_ts")))
        return NULL;
    return text(ev, "event_id");
}

long long gw_sync_own_join_ts(const char *user_id, json_t *events)
{
    long long ts = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        const char *m = json_string_value(json_object_get(json_object_get(ev, "content"), "membership"));
        if (is(json_string_value(json_object_get(ev, "type")), "m.room.member") &&
            is(json_string_value(json_object_get(ev, "state_key")), user_id) && is(m, "join"))
            ts = json_integer_value(json_object_get(ev, "origin_server_ts"));
    }
    return ts;
}

bool gw_sync_publishable(const char *type, json_t *msg)
{
    mr_err err = {0};
    if (mr_proto_check(type, msg, &err) == MR_OK)
        return true;
    json_t *ev = json_object_get(msg, "event");
    const char *id = json_string_value(json_object_get(ev, "event_id"));
    mr_log_warn("gateway", "skipped a %s the homeserver sent (event %s of %s): %s", type, id ? id : "without ID",
                json_string_value(json_object_get(msg, "account")), err.msg);
    return false;
}

json_t *gw_sync_inbound(const char *account, const char *room_id, json_t *ev, const char *membership,
                        bool history, json_t *facts)
{
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:O, s:s, s:b}", "v", 1, "type", "inbound_event",
                            "account", account, "room_id", room_id, "event", ev, "membership",
                            membership, "history", history);
    if (msg && facts && json_object_set(msg, "room", facts) != 0) {
        json_decref(msg);
        msg = NULL;
    }
    return msg;
}

/* The user IDs of a homeserver's list that are user IDs: one bad entry must not make crypto
 * refuse the whole message, and with it the to-device events beside it. */
static json_t *valid_users(json_t *list)
{
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        mr_id id;
        mr_err err;
        if (out && json_is_string(v) && mr_id_parse_user(json_string_value(v), &id, &err) == MR_OK &&
            json_array_append(out, v) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

json_t *gw_sync_device_lists(json_t *sync)
{
    json_t *dl = json_object_get(sync, "device_lists");
    json_t *changed = valid_users(json_object_get(dl, "changed")), *left = valid_users(json_object_get(dl, "left"));
    if (!changed || !left || (!json_array_size(changed) && !json_array_size(left))) {
        json_decref(changed);
        json_decref(left);
        return NULL;
    }
    return json_pack("{s:o, s:o}", "changed", changed, "left", left);
}

/* Counts as the schema has them: non-negative integers by algorithm, and the algorithm names. */
json_t *gw_sync_key_counts(json_t *sync)
{
    json_t *otk = json_object_get(sync, "device_one_time_keys_count");
    json_t *fb = json_object_get(sync, "device_unused_fallback_key_types");
    json_t *counts = json_object(), *types = json_array();
    const char *alg;
    json_t *v;
    bool ok = counts && types;
    json_object_foreach(otk, alg, v)
        if (ok && json_is_integer(v) && json_integer_value(v) >= 0)
            ok = json_object_set(counts, alg, v) == 0;
    size_t i;
    json_array_foreach(fb, i, v)
        if (ok && json_is_string(v))
            ok = json_array_append(types, v) == 0;
    if (!ok) {
        json_decref(counts);
        json_decref(types);
        return NULL;
    }
    return json_pack("{s:o, s:o}", "one_time_key_counts", counts, "unused_fallback_key_types", types);
}

json_t *gw_sync_todevice(const char *account, const char *device_id, json_t *sync, json_t *lists,
                         json_t *counts)
{
    json_t *events = json_object_get(json_object_get(sync, "to_device"), "events");
    json_t *synthetic = NULL, *out = json_array();
    if ((lists || counts) && !json_array_size(events)) {
        synthetic = json_pack("[{s:s, s:s, s:{}}]", "sender", account, "type",
                              lists ? DEVICE_LISTS_EVENT : KEY_COUNTS_EVENT, "content");
        events = synthetic;
        if (!synthetic) {
            json_decref(out);
            return NULL;
        }
    }
    size_t i;
    json_t *ev;
    bool first = true;
    json_array_foreach(events, i, ev) {
        if (!out)
            break;
        if (!text(ev, "type"))
            continue;
        json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:O}", "v", 1, "type", "todevice_event",
                                "account", account, "device_id", device_id, "event", ev);
        /* The first message carries the device list changes and key counts of the whole batch. */
        if (msg && first && ((lists && json_object_set(msg, "device_lists", lists) != 0) ||
                             (counts && json_object_update(msg, counts) != 0))) {
            json_decref(msg);
            msg = NULL;
        }
        if (!msg || json_array_append_new(out, msg) != 0) {
            json_decref(out);
            out = NULL;
        }
        first = false;
    }
    json_decref(synthetic);
    return out;
}

const char *gw_sync_inviter(const char *user_id, json_t *room)
{
    const char *inviter = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(json_object_get(room, "invite_state"), "events"), i, ev) {
        if (is(json_string_value(json_object_get(ev, "type")), "m.room.member") &&
            is(json_string_value(json_object_get(ev, "state_key")), user_id))
            inviter = json_string_value(json_object_get(ev, "sender"));
    }
    return inviter;
}
