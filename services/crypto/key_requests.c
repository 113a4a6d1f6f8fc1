/* key_requests.c -- room keys that did not come by themselves: an m.room_key_request to the
 * sender's devices (to-device, in clear as the spec sends it) for a Megolm session whose events
 * waited CRYPTO_KEY_REQUEST_MS, and the m.forwarded_room_key that answers it (over Olm), taken as
 * the session only when we asked for it and it comes from a device of the user who sent the
 * waiting events, for the sender key those events named. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"

/* The device ID of account's device: the loaded one, else the stored one (after a restart,
 * before any to-device traffic loaded it). NULL when none is known; malloc'd. */
static char *own_device(crypto_engine *e, const char *account)
{
    crypto_device *d = crypto_device_of(e, account);
    if (d)
        return strdup(d->device_id);
    char *key = mr_str_printf("crypto:account:%s", account);
    json_t *rec = NULL;
    mr_err ignored = {0};
    char *id = key && crypto_vault_get(&e->vault, key, &rec, &ignored) == MR_OK && mr_msg_string(rec, "device_id")
                   ? strdup(mr_msg_string(rec, "device_id"))
                   : NULL;
    json_decref(rec);
    free(key);
    return id;
}

json_t *crypto_key_request(crypto_engine *e, const char *account, const char *room_id, const char *session_id,
                           const char *sender, const char *sender_key)
{
    char *device = own_device(e, account);
    /* Derived from the session, so a sweep repeated after a crash asks under the same ID. */
    char *txn = mr_str_printf("mrkr.%s", session_id);
    for (char *p = txn; p && *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    json_t *req = device && txn ? json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:{s:{s:{s:s, s:s, s:s, s:{s:s, s:s, "
                                            "s:s, s:s}}}}}",
                                            "v", 1, "type", "send_request", "account", account, "kind", "to_device",
                                            "txn_id", txn, "event_type", "m.room_key_request", "messages", sender,
                                            "*", "action", "request", "request_id", txn, "requesting_device_id",
                                            device, "body", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "room_id",
                                            room_id, "sender_key", sender_key, "session_id", session_id)
                                : NULL;
    free(device);
    free(txn);
    return req;
}

mr_code crypto_forwarded_key(crypto_engine *e, const char *sender, const char *device_id, json_t *content,
                             json_t *out, mr_err *err)
{
    const char *alg = mr_msg_string(content, "algorithm"), *room_id = mr_msg_string(content, "room_id");
    const char *session_id = mr_msg_string(content, "session_id"), *skey = mr_msg_string(content, "session_key");
    const char *orig_key = mr_msg_string(content, "sender_key");
    const char *orig_ed = mr_msg_string(content, "sender_claimed_ed25519_key");
    if (!alg || strcmp(alg, MR_OLM_ALGORITHM_MEGOLM) != 0 || !room_id || room_id[0] != '!' || !session_id ||
        !skey || !orig_key || !orig_ed)
        return mr_err_set(err, MR_EINVAL, "m.forwarded_room_key: algorithm is not " MR_OLM_ALGORITHM_MEGOLM
                          " or room_id, session_id, session_key, sender_key or sender_claimed_ed25519_key is "
                          "missing");
    json_t *entry = NULL;
    mr_code rc = crypto_pending_entry(e, room_id, session_id, &entry, err);
    if (rc == MR_ENOTFOUND)
        return mr_err_set(err, MR_EPERM, "m.forwarded_room_key for session %s in %s: no event waits for it",
                          session_id, room_id);
    if (rc != MR_OK)
        return rc;
    const char *want_sender = mr_msg_string(entry, "sender"), *want_key = mr_msg_string(entry, "sender_key");
    if (!json_is_true(json_object_get(entry, "requested")))
        rc = mr_err_set(err, MR_EPERM, "m.forwarded_room_key for session %s in %s: not requested", session_id,
                        room_id);
    else if (!want_sender || strcmp(want_sender, sender) != 0 || !want_key || strcmp(want_key, orig_key) != 0)
        rc = mr_err_set(err, MR_EPERM, "m.forwarded_room_key for session %s in %s: from %s for key %s, but the "
                        "waiting events are from %s with key %s", session_id, room_id, sender, orig_key,
                        want_sender ? want_sender : "?", want_key ? want_key : "?");
    mr_olm_inbound_group *g = NULL;
    if (rc == MR_OK)
        rc = mr_olm_inbound_group_import(skey, &g, err);
    if (rc == MR_OK) {
        mr_log_info(COMPONENT, "forwarded key for Megolm session %s in %s from %s (device %s)", session_id, room_id,
                    sender, device_id);
        rc = crypto_megolm_keep(e, room_id, session_id, g, sender, device_id, orig_key, orig_ed, out, err);
    }
    mr_olm_inbound_group_free(g);
    json_decref(entry);
    return rc;
}
