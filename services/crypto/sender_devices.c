/* sender_devices.c -- the devices of the people who write to our accounts, as /keys/query told
 * them (each self-signature checked), kept under crypto:devices:<user_id>; and the to-device
 * events that wait for such an answer under crypto:wait:<account>. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/json.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
/* To-device events that wait for one account's query, at most. */
#define WAIT_MAX 100

static mr_code oom(mr_err *err, const char *what)
{
    return mr_err_set(err, MR_ENOMEM, "out of memory %s", what);
}

mr_code crypto_devices_known(crypto_engine *e, const char *user_id, json_t **devs, mr_err *err)
{
    *devs = NULL;
    char *key = mr_str_printf("crypto:devices:%s", user_id);
    mr_code rc = key ? crypto_vault_get_plain(&e->vault, key, devs, err) : oom(err, "reading devices");
    free(key);
    return rc;
}

mr_code crypto_sender_device(crypto_engine *e, const char *sender, const char *curve, char **device_id,
                             char **ed25519, mr_err *err)
{
    *device_id = *ed25519 = NULL;
    json_t *devs = NULL;
    mr_code rc = crypto_devices_known(e, sender, &devs, err);
    if (rc == MR_ENOTFOUND)
        return mr_err_set(err, MR_ENOTFOUND, "no device of %s is known", sender);
    if (rc != MR_OK)
        return rc;
    const char *did;
    json_t *k;
    rc = mr_err_set(err, MR_ENOTFOUND, "%s has no device with Curve25519 key %s", sender, curve);
    json_object_foreach(devs, did, k) {
        const char *c = mr_msg_string(k, "curve25519"), *ed = mr_msg_string(k, "ed25519");
        if (c && ed && strcmp(c, curve) == 0) {
            *device_id = strdup(did);
            *ed25519 = strdup(ed);
            rc = *device_id && *ed25519 ? MR_OK : oom(err, "reading devices");
            break;
        }
    }
    json_decref(devs);
    if (rc != MR_OK) {
        free(*device_id);
        free(*ed25519);
        *device_id = *ed25519 = NULL;
    }
    return rc;
}

mr_code crypto_sender_forget(crypto_engine *e, const char *user_id, mr_err *err)
{
    char *key = mr_str_printf("crypto:devices:%s", user_id);
    mr_code rc = key ? mr_store_del(e->vault.store, key, err) : oom(err, "forgetting devices");
    free(key);
    return rc == MR_ENOTFOUND ? MR_OK : rc;
}

/* {device_id: {curve25519, ed25519}} of one user's /keys/query answer, keeping only devices whose
 * keys name that user and device and carry the device's own signature. */
static json_t *checked_devices(const char *user_id, json_t *devices)
{
    json_t *ok = json_object();
    const char *did;
    json_t *dk;
    json_object_foreach(devices, did, dk) {
        char *ck = mr_str_printf("curve25519:%s", did), *ek = mr_str_printf("ed25519:%s", did);
        json_t *keys = json_object_get(dk, "keys");
        const char *curve = ck ? mr_msg_string(keys, ck) : NULL, *ed = ek ? mr_msg_string(keys, ek) : NULL;
        const char *u = mr_msg_string(dk, "user_id"), *d = mr_msg_string(dk, "device_id");
        mr_err verr = {0};
        if (!curve || !ed || !u || !d || strcmp(u, user_id) != 0 || strcmp(d, did) != 0)
            mr_log_warn(COMPONENT, "/keys/query: device %s of %s: keys missing or naming another device", did,
                        user_id);
        else if (mr_olm_verify_json(dk, user_id, ek, ed, &verr) != MR_OK)
            mr_log_warn(COMPONENT, "/keys/query: device %s of %s: %s", did, user_id, verr.msg);
        else
            json_object_set_new(ok, did, json_pack("{s:s, s:s}", "curve25519", curve, "ed25519", ed));
        free(ck);
        free(ek);
    }
    return ok;
}

static char *wait_key(const char *account)
{
    return mr_str_printf("crypto:wait:%s", account);
}

mr_code crypto_sender_wait(crypto_engine *e, crypto_device *d, json_t *msg, const char *sender, json_t *out,
                           mr_err *err)
{
    char *key = wait_key(d->user_id);
    json_t *rec = NULL;
    mr_code rc = key ? crypto_vault_get_plain(&e->vault, key, &rec, err) : oom(err, "parking a to-device event");
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = (rec = json_pack("{s:[], s:[]}", "events", "users")) ? MR_OK : oom(err, "parking a to-device event");
    }
    json_t *events = json_object_get(rec, "events"), *users = json_object_get(rec, "users");
    if (rc == MR_OK && (!json_is_array(events) || !json_is_array(users)))
        rc = mr_err_set(err, MR_EINVAL, "%s in the store lacks events or users", key);
    if (rc == MR_OK && json_array_size(events) >= WAIT_MAX) {
        mr_log_warn(COMPONENT, "%s: %zu to-device events already wait for /keys/query; dropping one from %s",
                    d->user_id, json_array_size(events), sender);
        json_decref(rec);
        free(key);
        return MR_OK;
    }
    /* Parked without what the sync said besides the event: replaying a device list change would
     * forget the devices the answer brings. */
    json_t *ev = rc == MR_OK ? json_copy(msg) : NULL;
    if (rc == MR_OK && !ev)
        rc = oom(err, "parking a to-device event");
    if (rc == MR_OK) {
        json_object_del(ev, "device_lists");
        json_object_del(ev, "one_time_key_counts");
        json_object_del(ev, "unused_fallback_key_types");
        json_array_append_new(events, ev);
    }
    json_t *req = NULL;
    if (rc == MR_OK && !mr_json_array_has(users, sender)) {
        /* A new query for everyone waited for: the answer to the earlier one is then ignored. */
        json_array_append_new(users, json_string(sender));
        json_t *want = json_object();
        size_t i;
        json_t *u;
        json_array_foreach(users, i, u)
            json_object_set_new(want, json_string_value(u), json_array());
        char *txn = crypto_txn_new(e, "kq");
        req = txn ? json_pack("{s:i, s:s, s:s, s:s, s:s, s:{s:o}}", "v", 1, "type", "send_request", "account",
                              d->user_id, "kind", "keys_query", "txn_id", txn, "body", "device_keys", want)
                  : NULL;
        if (!req || json_object_set_new(rec, "txn", json_string(txn)) != 0)
            rc = oom(err, "asking for device keys");
        free(txn);
    }
    if (rc == MR_OK)
        rc = crypto_vault_put_plain(&e->vault, key, rec, 0, err);
    if (rc == MR_OK && req) {
        crypto_out_add(out, "matrix.send", d->user_id, req);
        req = NULL;
    }
    json_decref(req);
    json_decref(rec);
    free(key);
    return rc;
}

/* The record under key when it waits for txn; MR_ENOTFOUND otherwise. */
static mr_code record_of(crypto_engine *e, const char *key, const char *txn, json_t **rec, mr_err *err)
{
    mr_code rc = key ? crypto_vault_get_plain(&e->vault, key, rec, err) : oom(err, "reading a keys_query answer");
    if (rc == MR_OK && strcmp(mr_msg_string(*rec, "txn") ? mr_msg_string(*rec, "txn") : "", txn) != 0) {
        json_decref(*rec);
        *rec = NULL;
        rc = mr_err_set(err, MR_ENOTFOUND, "keys_query %s is not the one in flight", txn);
    }
    return rc;
}

mr_code crypto_devices_save(crypto_engine *e, json_t *reply, json_t *users, mr_err *err)
{
    if (!json_is_true(json_object_get(reply, "ok")))
        mr_log_warn(COMPONENT, "%s: /keys/query failed: %s", mr_msg_string(reply, "account"),
                    mr_msg_string(reply, "error"));
    json_t *dk = json_object_get(json_object_get(reply, "response"), "device_keys");
    size_t i;
    json_t *u;
    mr_code rc = MR_OK;
    json_array_foreach(users, i, u) {
        const char *uid = json_string_value(u);
        char *dkey = uid ? mr_str_printf("crypto:devices:%s", uid) : NULL;
        json_t *devs = dkey ? checked_devices(uid, json_object_get(dk, uid)) : NULL;
        if (!devs)
            rc = oom(err, "reading a keys_query answer");
        else if (json_object_size(devs))
            rc = crypto_vault_put_plain(&e->vault, dkey, devs, 0, err);
        json_decref(devs);
        free(dkey);
        if (rc != MR_OK)
            break;
    }
    return rc;
}

mr_code crypto_sender_answered(crypto_engine *e, json_t *reply, json_t **events, json_t **users, mr_err *err)
{
    *events = *users = NULL;
    const char *account = mr_msg_string(reply, "account"), *txn = mr_msg_string(reply, "txn_id");
    char *key = wait_key(account), *replay = mr_str_printf("crypto:wait:%s:replay", account);
    json_t *rec = NULL;
    mr_code rc = replay ? record_of(e, key, txn, &rec, err) : oom(err, "reading a keys_query answer");
    /* The devices are saved and the events moved to the replay record, which the caller deletes
     * once they are all handled: an answer delivered again after a crash finds them there. */
    if (rc == MR_OK && (rc = crypto_devices_save(e, reply, json_object_get(rec, "users"), err)) == MR_OK &&
        (rc = crypto_vault_put_plain(&e->vault, replay, rec, 0, err)) == MR_OK)
        rc = mr_store_del(e->vault.store, key, err);
    else if (rc == MR_ENOTFOUND && replay)
        rc = record_of(e, replay, txn, &rec, err);
    if (rc == MR_OK) {
        *events = json_incref(json_object_get(rec, "events"));
        *users = json_incref(json_object_get(rec, "users"));
    }
    json_decref(rec);
    free(key);
    free(replay);
    return rc;
}

mr_code crypto_sender_replayed(crypto_engine *e, const char *account, mr_err *err)
{
    char *replay = mr_str_printf("crypto:wait:%s:replay", account);
    mr_code rc = replay ? mr_store_del(e->vault.store, replay, err) : oom(err, "finishing a keys_query answer");
    free(replay);
    return rc;
}
