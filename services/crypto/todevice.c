/* todevice.c -- matrix.todevice and matrix.keys: key counts top up the device's keys, device list
 * changes drop what is known of those devices, Olm-encrypted to-device events are decrypted with
 * the sessions kept under crypto:olm:<user_id>:<sender_curve25519> (a pre-key message makes a new
 * one) and their payload checked; an m.room_key inside becomes a Megolm session, and so does an
 * m.forwarded_room_key that answers our key request. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/json.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/proto.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
/* Olm sessions kept per sender device: a client that keeps making new ones does not grow the
 * store without end. */
#define OLM_SESSIONS_MAX 16

bool crypto_retry(mr_code rc)
{
    return rc == MR_ENOMEM || rc == MR_EUNAVAIL || rc == MR_EIO || rc == MR_EINTERNAL;
}

static void refuse(const char *account, const char *sender, const char *type, const mr_err *why)
{
    const char *fields[] = {"account", account, "sender", sender, "event_type", type, "reason", why->msg, NULL};
    mr_log_write(MR_LOG_WARN, COMPONENT, fields, "refusing a to-device event from %s: %s", sender, why->msg);
}

/* The Olm sessions with one sender key as a decryption left them, to be saved once what the
 * message carried is safe: a crash before that decrypts the same message again. */
typedef struct olm_state {
    char *key;               /* crypto:olm:<user_id>:<sender_curve25519> */
    json_t *list;            /* session pickles, least recently used first */
    bool fresh;              /* a pre-key message made a new session: the account changed too */
} olm_state;

static void olm_state_free(olm_state *st)
{
    free(st->key);
    json_decref(st->list);
    memset(st, 0, sizeof *st);
}

/* The sessions are saved before the account, so a crash between the two leaves a one-time key
 * that the next try of the same message does not need. */
static mr_code olm_save(crypto_engine *e, crypto_device *d, olm_state *st, mr_err *err)
{
    mr_code rc = crypto_vault_put(&e->vault, st->key, st->list, err);
    return rc == MR_OK && st->fresh ? crypto_device_save(e, d, err) : rc;
}

/* Tries each stored session with the sender's key, then (a pre-key message) a new one; *st gets
 * the sessions to save. */
static mr_code olm_decrypt(crypto_engine *e, crypto_device *d, const char *sender_key, int type, const char *body,
                           char **plain, size_t *len, olm_state *st, mr_err *err)
{
    char *key = st->key = mr_str_printf("crypto:olm:%s:%s", d->user_id, sender_key);
    json_t *list = NULL;
    mr_code rc = key ? crypto_vault_get(&e->vault, key, &list, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory reading Olm sessions");
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = (list = json_array()) ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory reading Olm sessions");
    }
    const unsigned char *pk = e->vault.pickle_key;
    size_t pkl = sizeof e->vault.pickle_key;
    mr_olm_session *s = NULL;
    bool done = false, fresh = false;
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p) {
        if (rc != MR_OK)
            break;
        if (!json_is_string(p) || mr_olm_session_unpickle(json_string_value(p), pk, pkl, &s, err) != MR_OK) {
            rc = mr_err_set(err, MR_EINVAL, "%s in the store holds a damaged session", key);
            break;
        }
        if ((type != MR_OLM_MSG_PRE_KEY || mr_olm_session_matches_inbound(s, sender_key, body)) &&
            mr_olm_session_decrypt(s, type, body, plain, len, err) == MR_OK) {
            done = true;
            break;
        }
        mr_olm_session_free(s);
        s = NULL;
    }
    if (rc == MR_OK && !done && type == MR_OLM_MSG_PRE_KEY) {
        rc = mr_olm_session_new_inbound(d->account, sender_key, body, &s, plain, len, err);
        fresh = rc == MR_OK;
    } else if (rc == MR_OK && !done) {
        rc = mr_err_set(err, MR_ENOTFOUND, "no Olm session with %s decrypts this message", sender_key);
    }
    char *pickle = NULL;
    if (rc == MR_OK)
        rc = mr_olm_session_pickle(s, pk, pkl, &pickle, err);
    /* The session that decrypted goes last; the least recently used go first when a device has
     * made more than OLM_SESSIONS_MAX. */
    if (rc == MR_OK && !fresh)
        json_array_remove(list, i);
    if (rc == MR_OK && json_array_append_new(list, json_string(pickle)) != 0)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory saving an Olm session");
    while (rc == MR_OK && json_array_size(list) > OLM_SESSIONS_MAX)
        json_array_remove(list, 0);
    if (rc != MR_OK && *plain) {
        mr_olm_free_secret(*plain, *len);
        *plain = NULL;
    }
    st->list = list;
    st->fresh = fresh;
    mr_olm_free_secret(pickle, pickle ? strlen(pickle) : 0);
    mr_olm_session_free(s);
    return rc;
}

/* An m.olm.v1 event for d from sender. final: a /keys/query about sender has just been answered,
 * so a device still unknown is refused rather than waited for. */
static mr_code olm_event(crypto_engine *e, crypto_device *d, json_t *msg, const char *sender, bool final,
                         json_t *out, mr_err *err)
{
    json_t *content = json_object_get(json_object_get(msg, "event"), "content");
    const char *sender_key = mr_msg_string(content, "sender_key");
    json_t *mine = json_object_get(json_object_get(content, "ciphertext"), mr_olm_account_curve25519(d->account));
    json_t *type = json_object_get(mine, "type");
    const char *body = mr_msg_string(mine, "body");
    mr_err why = {0};
    if (!sender_key || !body || !json_is_integer(type) ||
        (json_integer_value(type) != MR_OLM_MSG_PRE_KEY && json_integer_value(type) != MR_OLM_MSG_NORMAL)) {
        mr_err_set(&why, MR_EINVAL, "sender_key or ciphertext.<our key>.{type,body} missing: not for device %s",
                   d->device_id);
        refuse(d->user_id, sender, "m.room.encrypted", &why);
        return MR_OK;
    }
    char *device_id = NULL, *ed25519 = NULL;
    mr_code rc = crypto_sender_device(e, sender, sender_key, &device_id, &ed25519, &why);
    if (rc == MR_ENOTFOUND && !final)
        return crypto_sender_wait(e, d, msg, sender, out, err);
    if (rc != MR_OK) {
        if (crypto_retry(rc)) {
            *err = why;
            return rc;
        }
        mr_err_prefix(&why, "unknown device");
        refuse(d->user_id, sender, "m.room.encrypted", &why);
        return MR_OK;
    }
    char *plain = NULL;
    size_t len = 0;
    json_t *payload = NULL;
    olm_state st = {0};
    rc = olm_decrypt(e, d, sender_key, (int)json_integer_value(type), body, &plain, &len, &st, &why);
    if (rc == MR_OK) {
        const mr_olm_payload_expect want = {.sender = sender, .sender_curve25519 = sender_key,
                                            .sender_ed25519 = ed25519, .recipient = d->user_id,
                                            .recipient_ed25519 = mr_olm_account_ed25519(d->account)};
        rc = mr_olm_payload_check(plain, len, &want, &payload, &why);
        mr_olm_free_secret(plain, len);
    }
    const char *inner = mr_msg_string(payload, "type");
    if (rc == MR_OK && inner && strcmp(inner, "m.room_key") == 0)
        rc = crypto_room_key(e, sender, device_id, sender_key, ed25519, json_object_get(payload, "content"), out,
                             &why);
    else if (rc == MR_OK && inner && strcmp(inner, "m.forwarded_room_key") == 0)
        rc = crypto_forwarded_key(e, sender, device_id, json_object_get(payload, "content"), out, &why);
    else if (rc == MR_OK)
        mr_log_info(COMPONENT, "%s: ignoring a to-device %s from %s (not handled yet)", d->user_id,
                    inner ? inner : "event", sender);
    /* The Olm sessions move on only once what the message carried is kept. */
    if (rc == MR_OK)
        rc = olm_save(e, d, &st, &why);
    olm_state_free(&st);
    if (rc != MR_OK && crypto_retry(rc))
        *err = why;
    else if (rc != MR_OK) {
        refuse(d->user_id, sender, inner ? inner : "m.room.encrypted", &why);
        rc = MR_OK;
    }
    json_decref(payload);
    free(device_id);
    free(ed25519);
    return rc;
}

/* msg passed the todevice_event schema (mr_proto_check), so the fields read here are there. */
static mr_code todevice(crypto_engine *e, json_t *msg, bool final, json_t *final_users, json_t *out, mr_err *err)
{
    json_t *ev = json_object_get(msg, "event");
    const char *account = mr_msg_string(msg, "account"), *sender = mr_msg_string(ev, "sender"),
               *type = mr_msg_string(ev, "type");
    crypto_device *d = NULL;
    mr_code rc = crypto_device_get(e, account, mr_msg_string(msg, "device_id"), &d, err);
    if (rc != MR_OK)
        return rc;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(json_object_get(msg, "device_lists"), "changed"), i, u)
        if (json_is_string(u) && (rc = crypto_sender_forget(e, json_string_value(u), err)) != MR_OK)
            return rc;
    json_t *counts = json_object_get(msg, "one_time_key_counts");
    if ((counts || !d->published) &&
        (rc = crypto_device_top_up(e, d, counts, json_object_get(msg, "unused_fallback_key_types"), out, err)) !=
            MR_OK)
        return rc;
    if ((rc = crypto_xsign_step(e, d, out, err)) != MR_OK)
        return rc;
    if (strcmp(type, "m.room.encrypted") != 0)
        return MR_OK;
    const char *alg = mr_msg_string(json_object_get(ev, "content"), "algorithm");
    if (!alg || strcmp(alg, MR_OLM_ALGORITHM_OLM) != 0) {
        mr_err why = {0};
        mr_err_set(&why, MR_EINVAL, "algorithm \"%s\" is not " MR_OLM_ALGORITHM_OLM, alg ? alg : "");
        refuse(account, sender, type, &why);
        return MR_OK;
    }
    return olm_event(e, d, msg, sender, final && mr_json_array_has(final_users, sender), out, err);
}

mr_code crypto_engine_todevice(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err)
{
    json_t *msg = NULL;
    mr_code rc = mr_msg_load(value, len, "todevice_event", &msg, err);
    if (rc == MR_OK)
        rc = todevice(e, msg, false, NULL, out, err);
    json_decref(msg);
    return rc;
}

mr_code crypto_engine_keys_reply(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err)
{
    json_t *msg = NULL;
    mr_code rc = mr_msg_load(value, len, "keys_reply", &msg, err);
    if (rc != MR_OK)
        return rc;
    /* The keys_reply schema requires these. */
    const char *account = mr_msg_string(msg, "account"), *kind = mr_msg_string(msg, "kind"),
               *txn = mr_msg_string(msg, "txn_id");
    crypto_device *d = crypto_device_of(e, account);
    if (crypto_outbound_owns(txn)) {
        rc = crypto_outbound_keys_reply(e, msg, out, err);
    } else if (strcmp(kind, "keys_upload") == 0 && d) {
        rc = crypto_device_uploaded(e, d, msg, err);
        json_t *later = d->later_counts;
        d->later_counts = NULL;
        if (rc == MR_OK && later)
            rc = crypto_device_top_up(e, d, json_object_get(later, "one_time_key_counts"),
                                      json_object_get(later, "unused_fallback_key_types"), out, err);
        json_decref(later);
        if (rc == MR_OK)
            rc = crypto_xsign_step(e, d, out, err);
    } else if ((strcmp(kind, "keys_device_signing_upload") == 0 || strcmp(kind, "keys_signatures_upload") == 0) &&
               d) {
        rc = crypto_xsign_answered(e, d, msg, out, err);
    } else if (strcmp(kind, "keys_query") == 0) {
        json_t *events = NULL, *users = NULL;
        rc = crypto_sender_answered(e, msg, &events, &users, err);
        if (rc == MR_ENOTFOUND) {
            mr_log_info(COMPONENT, "%s", err->msg);
            mr_err_clear(err);
            rc = MR_OK;
        }
        size_t i;
        json_t *ev;
        json_array_foreach(events, i, ev) {
            /* Parked from the store: checked again before it is read as one. */
            mr_err perr = {0};
            mr_code prc = mr_proto_check("todevice_event", ev, &perr);
            if (prc == MR_OK)
                prc = todevice(e, ev, true, users, out, &perr);
            if (crypto_retry(prc)) {
                *err = perr;
                rc = prc;
                break;
            }
        }
        if (rc == MR_OK && events)
            rc = crypto_sender_replayed(e, account, err);
        json_decref(events);
        json_decref(users);
    } else {
        mr_log_info(COMPONENT, "%s: ignoring the answer to %s %s", account, kind, txn);
    }
    json_decref(msg);
    return rc;
}
