/* room_encrypt.c -- outbound_intent to send_request, encrypted when the room is: the readers'
 * devices come from /keys/query, an Olm session to each from /keys/claim, the room key goes to
 * every device that lacks it as an m.room_key over Olm (a to_device request published before the
 * message, on the same partition), then the message goes as m.room.encrypted. Messages that wait
 * for those answers are parked in order under crypto:megolm:wait:<account>, one entry per room
 * (proto/store.md), so an edit never overtakes the message it edits. A request the gateway never
 * answers is asked again by the next message or by the sweep, so the last message of a
 * conversation is not left waiting. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/json.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
#define TOPIC_SEND "matrix.send"
#define OTK_ALGORITHM "signed_curve25519"
/* How long the homeserver may wait for other servers' keys on /keys/claim (the spec's default). */
#define CLAIM_TIMEOUT_MS 10000
/* Transaction ID prefixes of the key requests this file makes. */
#define TXN_QUERY "oq"
#define TXN_CLAIM "oc"
/* At most this many messages wait per room; more are refused with a log line. */
#define PARKED_MAX 100
/* A key request unanswered this long (the gateway lost it) is asked again, by the next message
 * or the sweep, whichever comes first. */
#define ANSWER_WAIT_MS 60000
/* The hash of accounts with parked messages, for the sweep. */
#define WAITING "crypto:megolm:waiting"

static mr_code oom(mr_err *err, const char *what)
{
    return mr_err_set(err, MR_ENOMEM, "out of memory %s", what);
}

/* Appends the strings of more to arr. */
static mr_code add_all(json_t *arr, json_t *more, mr_err *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(more, i, v)
        if (json_array_append(arr, v) != 0)
            return oom(err, "noting a key request");
    return MR_OK;
}

static char *wait_key(const char *account)
{
    return mr_str_printf("crypto:megolm:wait:%s", account);
}

/* The account's parked record {room_id: {txn, asked, asked_ms, queried, tried, intents}}, {} when
 * none. */
static mr_code wait_get(crypto_engine *e, const char *account, json_t **rec, mr_err *err)
{
    char *key = wait_key(account);
    mr_code rc = key ? crypto_vault_get_plain(&e->vault, key, rec, err) : oom(err, "reading parked messages");
    free(key);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = (*rec = json_object()) ? MR_OK : oom(err, "reading parked messages");
    }
    if (rc == MR_OK && !json_is_object(*rec)) {
        json_decref(*rec);
        *rec = NULL;
        rc = mr_err_set(err, MR_EINVAL, "crypto:megolm:wait:%s in the store is not an object", account);
    }
    return rc;
}

/* The entry that writes rec once out is published (deleted when empty). An account with parked
 * messages is listed in WAITING at once: the sweep drops the field of one whose record turns out
 * empty, so a field written before a crash costs one look. */
static mr_code wait_keep(crypto_engine *e, const char *account, json_t *rec, json_t *out, mr_err *err)
{
    char *key = wait_key(account);
    mr_code rc = key ? MR_OK : oom(err, "parking messages");
    if (rc == MR_OK && json_object_size(rec))
        rc = mr_store_hset(e->vault.store, WAITING, account, "1", 1, err);
    if (rc == MR_OK)
        rc = crypto_out_put(out, key, json_object_size(rec) ? json_incref(rec) : NULL, false, err);
    free(key);
    return rc;
}

/* A send_request of kind for a key request; the txn and what it asks about go into entry. */
static mr_code ask(crypto_engine *e, const char *account, const char *kind, const char *prefix, json_t *body,
                   json_t *asked, json_t *entry, json_t *out, mr_err *err)
{
    char *txn = crypto_txn_new(e, prefix);
    json_t *req = txn ? json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}", "v", 1, "type", "send_request", "account",
                                  account, "kind", kind, "txn_id", txn, "body", body)
                      : NULL;
    if (!txn)
        json_decref(body);
    mr_code rc = req && json_object_set_new(entry, "txn", json_string(txn)) == 0 &&
                         json_object_set(entry, "asked", asked) == 0 &&
                         json_object_set_new(entry, "asked_ms", json_integer(mr_clock_wall_ms())) == 0
                     ? MR_OK
                     : oom(err, "asking for keys");
    if (rc == MR_OK) {
        mr_log_info(COMPONENT, "%s: %s for an encrypted message (%s)", account, kind, txn);
        crypto_out_add(out, TOPIC_SEND, account, req);
    } else {
        json_decref(req);
    }
    free(txn);
    return rc;
}

/* The devices of readers, {user_id: {device_id: {curve25519, ed25519}}}; users never queried
 * in this round go to unknown. */
static mr_code reader_devices(crypto_engine *e, json_t *readers, json_t *queried, json_t *devices, json_t *unknown,
                              mr_err *err)
{
    const char *user;
    json_t *v;
    json_object_foreach(readers, user, v) {
        json_t *devs = NULL;
        mr_code rc = crypto_devices_known(e, user, &devs, err);
        if (rc == MR_ENOTFOUND) {
            /* Once asked in this round, a user the answer gave no device has none to share with. */
            mr_err_clear(err);
            rc = MR_OK;
            if (!mr_json_array_has(queried, user) && json_array_append_new(unknown, json_string(user)) != 0)
                rc = oom(err, "reading devices");
        } else if (rc == MR_OK && json_object_set_new(devices, user, devs) != 0) {
            rc = oom(err, "reading devices");
        }
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

static mr_olm_device device_view(const char *user, const char *did, json_t *keys)
{
    return (mr_olm_device){.user_id = user, .device_id = did, .curve25519 = mr_msg_string(keys, "curve25519"),
                           .ed25519 = mr_msg_string(keys, "ed25519")};
}

/* Whether (user, did) with curve already has s's key. */
static bool shared_with(const crypto_outbound *s, const char *user, const char *did, const char *curve)
{
    const char *had = mr_msg_string(json_object_get(s->shared, user), did);
    return had && curve && strcmp(had, curve) == 0;
}

/* Whether user's device did (keys, seen as dev) reads s's messages and lacks its key: not d
 * itself, with a curve25519 key, not shared with yet. */
static bool lacks_key(const crypto_device *d, const crypto_outbound *s, const char *user, const char *did,
                      json_t *keys, mr_olm_device *dev)
{
    *dev = device_view(user, did, keys);
    bool mine = strcmp(user, d->user_id) == 0 && strcmp(did, d->device_id) == 0;
    return !mine && dev->curve25519 && !shared_with(s, user, did, dev->curve25519);
}

/* What one round needs before it can encrypt: devices of readers that lack s's key and have no
 * Olm session (and were not claimed for in this round), as a /keys/claim request. */
static mr_code missing_sessions(crypto_engine *e, crypto_device *d, crypto_olm_out *olm, crypto_outbound *s,
                                json_t *devices, json_t *tried, json_t *claim, json_t *curves, mr_err *err)
{
    const char *user, *did;
    json_t *devs, *keys;
    json_object_foreach(devices, user, devs) {
        json_object_foreach(devs, did, keys) {
            mr_olm_device dev;
            if (!lacks_key(d, s, user, did, keys, &dev) || mr_json_array_has(tried, dev.curve25519))
                continue;
            bool ok = false;
            mr_code rc = crypto_olm_out_has(e, olm, d->user_id, dev.curve25519, &ok, err);
            if (rc != MR_OK)
                return rc;
            if (ok)
                continue;
            json_t *u = json_object_get(claim, user);
            if ((!u && json_object_set_new(claim, user, u = json_object()) != 0) ||
                json_object_set_new(u, did, json_string(OTK_ALGORITHM)) != 0 ||
                json_array_append_new(curves, json_string(dev.curve25519)) != 0)
                return oom(err, "claiming one-time keys");
        }
    }
    return MR_OK;
}

/* Sends s's key (from its current index) to every reader device that lacks it and has an Olm
 * session: one to_device request, before the message that needs it. */
static mr_code share(crypto_engine *e, crypto_device *d, crypto_olm_out *olm, crypto_outbound *s,
                     const char *room_id, json_t *devices, json_t *out, mr_err *err)
{
    char *skey = NULL;
    mr_code rc = mr_olm_outbound_group_key(s->group, &skey, err);
    if (rc != MR_OK)
        return rc;
    json_t *rk = json_pack("{s:s, s:s, s:s, s:s}", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "room_id", room_id,
                           "session_id", s->session_id, "session_key", skey);
    mr_olm_free_secret(skey, strlen(skey));
    json_t *messages = json_object();
    if (!rk || !messages)
        rc = oom(err, "sharing a room key");
    size_t n = 0;
    const char *user, *did;
    json_t *devs, *keys;
    json_object_foreach(devices, user, devs) {
        json_object_foreach(devs, did, keys) {
            mr_olm_device dev;
            bool ok = false;
            if (rc != MR_OK || !lacks_key(d, s, user, did, keys, &dev) || !dev.ed25519)
                continue;
            if ((rc = crypto_olm_out_has(e, olm, d->user_id, dev.curve25519, &ok, err)) != MR_OK || !ok)
                continue;
            json_t *content = NULL;
            rc = crypto_olm_out_encrypt(e, olm, d, &dev, "m.room_key", rk, &content, err);
            json_t *u = json_object_get(messages, user), *su = json_object_get(s->shared, user);
            if (rc == MR_OK && ((!u && json_object_set_new(messages, user, u = json_object()) != 0) ||
                                json_object_set_new(u, did, content) != 0 ||
                                (!su && json_object_set_new(s->shared, user, su = json_object()) != 0) ||
                                json_object_set_new(su, did, json_string(dev.curve25519)) != 0))
                rc = oom(err, "sharing a room key");
            n++;
        }
    }
    json_decref(rk);
    char *txn = rc == MR_OK && n ? crypto_txn_new(e, "rk") : NULL;
    if (rc == MR_OK && n) {
        json_t *req = txn ? json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:O}", "v", 1, "type", "send_request",
                                      "account", d->user_id, "kind", "to_device", "txn_id", txn, "event_type",
                                      "m.room.encrypted", "messages", messages)
                          : NULL;
        if (req) {
            mr_log_info(COMPONENT, "%s: sharing Megolm session %s of %s with %zu devices (%s)", d->user_id,
                        s->session_id, room_id, n, txn);
            crypto_out_add(out, TOPIC_SEND, room_id, req);
        } else {
            rc = oom(err, "sharing a room key");
        }
    }
    free(txn);
    json_decref(messages);
    return rc;
}

/* Encrypts the parked intents of entry in order, or asks for what is missing first. rec is the
 * account's parked record, entry its room's entry (both kept on commit). */
static mr_code advance(crypto_engine *e, crypto_device *d, const char *room_id, json_t *facts, json_t *rec,
                       json_t *entry, json_t *out, mr_err *err)
{
    json_t *readers = crypto_room_readers(facts), *devices = json_object(), *unknown = json_array();
    json_t *claim = json_object(), *curves = json_array();
    crypto_outbound s = {0};
    crypto_olm_out olm = {0};
    /* A room that waited for nothing leaves the parked record as it was: no write. */
    bool parked = false, waited = json_object_get(rec, room_id) != NULL;
    mr_code rc = readers && devices && unknown && claim && curves ? MR_OK : oom(err, "encrypting a message");
    if (rc == MR_OK)
        rc = reader_devices(e, readers, json_object_get(entry, "queried"), devices, unknown, err);
    if (rc == MR_OK && json_array_size(unknown)) {
        json_t *want = json_object();
        size_t i;
        json_t *u;
        json_array_foreach(unknown, i, u)
            if (want && json_object_set_new(want, json_string_value(u), json_array()) != 0) {
                json_decref(want);
                want = NULL;
            }
        json_t *body = want ? json_pack("{s:o}", "device_keys", want) : NULL;
        rc = body ? ask(e, d->user_id, "keys_query", TXN_QUERY, body, unknown, entry, out, err)
                  : oom(err, "asking for device keys");
        parked = true;
    }
    if (rc == MR_OK && !parked)
        rc = crypto_outbound_load(e, d, room_id, facts, readers, devices, &s, out, err);
    if (rc == MR_OK && !parked)
        rc = missing_sessions(e, d, &olm, &s, devices, json_object_get(entry, "tried"), claim, curves, err);
    if (rc == MR_OK && !parked && json_object_size(claim)) {
        json_t *body = json_pack("{s:O, s:i}", "one_time_keys", claim, "timeout", CLAIM_TIMEOUT_MS);
        rc = body ? ask(e, d->user_id, "keys_claim", TXN_CLAIM, body, curves, entry, out, err)
                  : oom(err, "claiming one-time keys");
        parked = true;
    }
    size_t i;
    json_t *req;
    json_array_foreach(parked ? NULL : json_object_get(entry, "intents"), i, req) {
        if (rc != MR_OK)
            break;
        if (crypto_outbound_due(&s, facts, readers, devices, mr_clock_wall_ms()))
            rc = crypto_outbound_rotate(e, d, room_id, &s, out, err);
        if (rc == MR_OK)
            rc = share(e, d, &olm, &s, room_id, devices, out, err);
        json_t *enc = NULL;
        if (rc == MR_OK)
            rc = crypto_outbound_encrypt(d, &s, room_id, mr_msg_string(req, "event_type"),
                                         json_object_get(req, "content"), &enc, err);
        if (rc == MR_OK && (json_object_set_new(req, "content", enc) != 0 ||
                            json_object_set_new(req, "event_type", json_string("m.room.encrypted")) != 0))
            rc = oom(err, "encrypting a message");
        if (rc == MR_OK)
            crypto_out_add(out, TOPIC_SEND, room_id, json_incref(req));
    }
    /* A session made or rotated is kept even while its messages wait, so the next round does not
     * make another. */
    if (rc == MR_OK && s.group)
        rc = crypto_outbound_keep(e, &s, out, err);
    if (rc == MR_OK)
        rc = crypto_olm_out_keep(&olm, d->user_id, out, err);
    if (rc == MR_OK && !parked)
        json_object_del(rec, room_id);
    else if (rc == MR_OK && json_object_set(rec, room_id, entry) != 0)
        rc = oom(err, "parking a message");
    if (rc == MR_OK && (parked || waited))
        rc = wait_keep(e, d->user_id, rec, out, err);
    crypto_outbound_free(&s);
    crypto_olm_out_free(&olm);
    json_decref(readers);
    json_decref(devices);
    json_decref(unknown);
    json_decref(claim);
    json_decref(curves);
    return rc;
}

/* A room_event for an encrypted room: behind the room's parked messages, or encrypted now. */
static mr_code encrypt_intent(crypto_engine *e, json_t *req, json_t *facts, json_t *out, mr_err *err)
{
    const char *account = mr_msg_string(req, "account"), *room_id = mr_msg_string(req, "room_id");
    const char *txn = mr_msg_string(req, "txn_id");
    crypto_device *d = NULL;
    mr_code rc = crypto_device_stored(e, account, &d, err);
    if (rc == MR_ENOTFOUND) {
        /* Nothing can encrypt without the device; sending in clear would leak it. */
        mr_log_error(COMPONENT, "%s: refusing to send %s in encrypted room %s: the account has no device keys yet",
                     account, txn, room_id);
        mr_err_clear(err);
        return MR_OK;
    }
    json_t *rec = NULL;
    if (rc == MR_OK)
        rc = wait_get(e, account, &rec, err);
    if (rc != MR_OK)
        return rc;
    json_t *entry = json_object_get(rec, room_id);
    if (entry) {
        json_t *intents = json_object_get(entry, "intents");
        size_t i;
        json_t *p;
        bool dup = false;
        json_array_foreach(intents, i, p)
            dup = dup || strcmp(mr_msg_string(p, "txn_id") ? mr_msg_string(p, "txn_id") : "", txn) == 0;
        if (dup || json_array_size(intents) >= PARKED_MAX) {
            if (!dup)
                mr_log_warn(COMPONENT, "%s: %zu messages already wait for keys in %s; dropping %s", account,
                            json_array_size(intents), room_id, txn);
            json_decref(rec);
            return MR_OK;
        }
        json_t *asked_ms = json_object_get(entry, "asked_ms");
        bool lost = json_is_integer(asked_ms) && mr_clock_wall_ms() - json_integer_value(asked_ms) >= ANSWER_WAIT_MS;
        if (json_array_append(intents, req) != 0)
            rc = oom(err, "parking a message");
        else if (lost) {
            mr_log_warn(COMPONENT, "%s: no answer to %s for %d s; asking again", account,
                        mr_msg_string(entry, "txn") ? mr_msg_string(entry, "txn") : "", ANSWER_WAIT_MS / 1000);
            json_incref(entry);
            rc = advance(e, d, room_id, facts, rec, entry, out, err);
            json_decref(entry);
        } else {
            rc = wait_keep(e, account, rec, out, err);
        }
    } else {
        entry = json_pack("{s:[O], s:[], s:[]}", "intents", req, "queried", "tried");
        rc = entry ? advance(e, d, room_id, facts, rec, entry, out, err) : oom(err, "encrypting a message");
        json_decref(entry);
    }
    json_decref(rec);
    return rc;
}

mr_code crypto_engine_outbound(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err)
{
    json_t *req = NULL, *facts = NULL;
    mr_code rc = crypto_send_request(value, len, &req, err);
    if (rc != MR_OK)
        return rc;
    const char *room_id = mr_msg_string(req, "room_id");
    if (strcmp(mr_msg_string(req, "kind"), "room_event") == 0)
        rc = crypto_room_facts(e, room_id, &facts, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = MR_OK;
    }
    if (rc == MR_OK && json_object_get(facts, "encryption"))
        rc = encrypt_intent(e, req, facts, out, err);
    else if (rc == MR_OK)
        crypto_out_add(out, TOPIC_SEND, room_id, json_incref(req));
    json_decref(facts);
    json_decref(req);
    return rc;
}

bool crypto_outbound_owns(const char *txn)
{
    return strncmp(txn, TXN_QUERY ".", 3) == 0 || strncmp(txn, TXN_CLAIM ".", 3) == 0;
}

/* Outbound Olm sessions from the one-time keys a /keys/claim answer gave; a key that fails its
 * checks is logged and its device left without the room key. */
static mr_code claimed(crypto_engine *e, crypto_device *d, json_t *reply, mr_err *err)
{
    const char *user, *did;
    json_t *devs, *keys;
    json_object_foreach(json_object_get(json_object_get(reply, "response"), "one_time_keys"), user, devs) {
        json_t *known = NULL;
        mr_code rc = crypto_devices_known(e, user, &known, err);
        if (rc == MR_ENOTFOUND) {
            mr_err_clear(err);
            continue;
        }
        if (rc != MR_OK)
            return rc;
        json_object_foreach(devs, did, keys) {
            const char *kid;
            json_t *k, *first = NULL;
            json_object_foreach(keys, kid, k)
                if (!first && strncmp(kid, OTK_ALGORITHM ":", strlen(OTK_ALGORITHM) + 1) == 0)
                    first = k;
            mr_olm_device dev = device_view(user, did, json_object_get(known, did));
            mr_err why = {0};
            if (!first || !dev.curve25519 || !dev.ed25519)
                continue;
            rc = crypto_olm_out_start(e, d, &dev, first, &why);
            if (crypto_retry(rc)) {
                json_decref(known);
                *err = why;
                return rc;
            }
            if (rc != MR_OK)
                mr_log_warn(COMPONENT, "%s: /keys/claim: device %s of %s: %s", d->user_id, did, user, why.msg);
        }
        json_decref(known);
    }
    return MR_OK;
}

mr_code crypto_outbound_keys_reply(crypto_engine *e, json_t *reply, json_t *out, mr_err *err)
{
    const char *account = mr_msg_string(reply, "account"), *txn = mr_msg_string(reply, "txn_id");
    const char *kind = mr_msg_string(reply, "kind");
    json_t *rec = NULL, *entry = NULL, *facts = NULL;
    crypto_device *d = NULL;
    mr_code rc = wait_get(e, account, &rec, err);
    const char *room_id = NULL;
    json_t *v;
    json_object_foreach(rc == MR_OK ? rec : NULL, room_id, v)
        if (strcmp(mr_msg_string(v, "txn") ? mr_msg_string(v, "txn") : "", txn) == 0) {
            entry = v;
            break;
        }
    if (rc == MR_OK && !entry) {
        mr_log_info(COMPONENT, "%s: ignoring the answer to %s %s, not the one in flight", account, kind, txn);
        json_decref(rec);
        return MR_OK;
    }
    if (rc == MR_OK && !json_is_true(json_object_get(reply, "ok")))
        mr_log_warn(COMPONENT, "%s: %s %s failed (%s): devices it was about get no room key this time", account, kind,
                    txn, mr_msg_string(reply, "error") ? mr_msg_string(reply, "error") : "");
    if (rc == MR_OK)
        rc = crypto_device_stored(e, account, &d, err);
    json_t *asked = json_object_get(entry, "asked");
    bool query = strcmp(kind, "keys_query") == 0;
    if (rc == MR_OK && query)
        rc = crypto_devices_save(e, reply, asked, err);
    else if (rc == MR_OK)
        rc = claimed(e, d, reply, err);
    /* What was asked counts as answered in this round, whatever came back. */
    if (rc == MR_OK)
        rc = add_all(json_object_get(entry, query ? "queried" : "tried"), asked, err);
    if (rc == MR_OK) {
        json_object_del(entry, "txn");
        json_object_del(entry, "asked");
        rc = crypto_room_facts(e, room_id, &facts, err);
    }
    if (rc == MR_ENOTFOUND) {
        /* The room's record went away meanwhile: nobody else to share with. */
        mr_err_clear(err);
        rc = (facts = json_object()) ? MR_OK : oom(err, "encrypting parked messages");
    }
    if (rc == MR_OK) {
        /* room_id borrows from rec, which advance changes. */
        char *room = strdup(room_id);
        json_incref(entry);
        rc = room ? advance(e, d, room, facts, rec, entry, out, err) : oom(err, "encrypting parked messages");
        json_decref(entry);
        free(room);
    }
    json_decref(facts);
    json_decref(rec);
    return rc;
}

/* Asks again for what the rooms of account wait for when their request went unanswered. */
static mr_code sweep_account(const crypto_sweep *s, const char *account, const char *value, mr_err *err)
{
    (void)value;
    crypto_engine *e = s->e;
    long long now_ms = s->now_ms;
    json_t *out = s->out;
    json_t *rec = NULL, *late = json_array();
    crypto_device *d = NULL;
    mr_code rc = late ? wait_get(e, account, &rec, err) : oom(err, "checking parked messages");
    if (rc == MR_OK && !json_object_size(rec)) {
        rc = mr_store_hdel(e->vault.store, WAITING, account, err);
        if (rc == MR_ENOTFOUND) {
            mr_err_clear(err);
            rc = MR_OK;
        }
    }
    const char *room_id;
    json_t *entry;
    json_object_foreach(rc == MR_OK ? rec : NULL, room_id, entry) {
        json_t *asked_ms = json_object_get(entry, "asked_ms");
        if (json_is_integer(asked_ms) && now_ms - json_integer_value(asked_ms) >= ANSWER_WAIT_MS &&
            json_array_append_new(late, json_string(room_id)) != 0)
            rc = oom(err, "checking parked messages");
    }
    if (rc == MR_OK && json_array_size(late)) {
        rc = crypto_device_stored(e, account, &d, err);
        /* Messages parked for an account with no device (a store from elsewhere) wait for it. */
        if (rc == MR_ENOTFOUND) {
            mr_err_clear(err);
            json_array_clear(late);
            rc = MR_OK;
        }
    }
    size_t i;
    json_t *room;
    json_array_foreach(rc == MR_OK ? late : NULL, i, room) {
        json_t *facts = NULL;
        room_id = json_string_value(room);
        entry = json_incref(json_object_get(rec, room_id));
        mr_log_warn(COMPONENT, "%s: no answer to %s for %d s; asking again for the messages parked in %s", account,
                    mr_msg_string(entry, "txn") ? mr_msg_string(entry, "txn") : "", ANSWER_WAIT_MS / 1000, room_id);
        rc = crypto_room_facts(e, room_id, &facts, err);
        if (rc == MR_ENOTFOUND) {
            mr_err_clear(err);
            rc = (facts = json_object()) ? MR_OK : oom(err, "checking parked messages");
        }
        if (rc == MR_OK)
            rc = advance(e, d, room_id, facts, rec, entry, out, err);
        json_decref(entry);
        json_decref(facts);
        if (rc != MR_OK)
            break;
    }
    json_decref(late);
    json_decref(rec);
    return rc;
}

mr_code crypto_outbound_sweep(crypto_engine *e, long long now_ms, json_t *out, mr_err *err)
{
    return crypto_sweep_hash(e, now_ms, out, WAITING, sweep_account, err);
}
