/* crypto_internal.h -- what the files of mindroom-crypto share: the pass-through conversions, the
 * decryption engine (its devices, Olm and Megolm sessions, and events waiting for keys) and the
 * encryption of outbound messages (room facts, outbound sessions, messages waiting for keys). */
#ifndef MINDROOM_CRYPTO_INTERNAL_H
#define MINDROOM_CRYPTO_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mindroom/err.h"
#include "mindroom/olm.h"
#include "mindroom/store.h"

/* An inbound_event, checked against its schema. Strings borrow from root. */
typedef struct crypto_inbound {
    json_t *root;
    const char *room_id;
    const char *event_id;
    bool encrypted;          /* an m.room.encrypted event */
    const char *session_id;  /* encrypted: content.session_id, "" when absent */
} crypto_inbound;

/* MR_EINVAL naming the field for a message that is not a valid inbound_event. */
mr_code crypto_inbound_parse(const char *value, size_t len, crypto_inbound *out, mr_err *err);
void crypto_inbound_free(crypto_inbound *in);
/* The cleartext_event of an unencrypted inbound event (JSON, malloc'd); NULL when out of memory. */
char *crypto_cleartext_build(const crypto_inbound *in);

/* The send_request for an outbound_intent, as it goes in clear (a new reference in *req).
 * MR_EINVAL naming the field for a message that is not a valid intent. */
mr_code crypto_send_request(const char *value, size_t len, json_t **req, mr_err *err);

/* ---- vault.c: crypto's sealed state in the store (proto/store.md, space crypto) ---- */

typedef struct crypto_vault {
    mr_store *store;
    unsigned char pickle_key[32];   /* libolm's pickle key, derived from the instance secret */
} crypto_vault;

/* The pickle key is HMAC-SHA256(instance secret, "mindroom-crypto-pickle"): the store seals
 * each value again under its own key, so a pickle copied out of the store opens with neither. */
mr_code crypto_vault_init(crypto_vault *v, mr_store *store, const unsigned char *secret, size_t len, mr_err *err);
void crypto_vault_wipe(crypto_vault *v);
/* A sealed JSON value (MR_ENOTFOUND when absent), and its write. */
mr_code crypto_vault_get(crypto_vault *v, const char *key, json_t **out, mr_err *err);
mr_code crypto_vault_put(crypto_vault *v, const char *key, json_t *value, mr_err *err);
/* A plain JSON value (public keys, ciphertexts) and its write; ttl_ms 0 keeps it. */
mr_code crypto_vault_get_plain(crypto_vault *v, const char *key, json_t **out, mr_err *err);
mr_code crypto_vault_put_plain(crypto_vault *v, const char *key, json_t *value, long ttl_ms, mr_err *err);

/* ---- the engine: what each input produces ---- */

/* One managed account's device: its Olm account and the state of its key upload. */
typedef struct crypto_device {
    char *user_id;
    char *device_id;
    mr_olm_account *account;
    bool published;          /* the homeserver has its device keys */
    char *upload_txn;        /* the keys_upload in flight, NULL when none */
    json_t *later_counts;    /* {one_time_key_counts, unused_fallback_key_types} a sync gave while
                                an upload was in flight: checked once it is answered */
    char *xsign_txn;         /* the cross-signing request in flight, NULL when none */
    bool xsign_done;         /* the device is signed by the account's self-signing key */
    bool xsign_refused;      /* the homeserver refused a step: asked again after a restart */
} crypto_device;

typedef struct crypto_engine {
    crypto_vault vault;
    crypto_device **devices;
    size_t n_devices;
    unsigned long seq;       /* transaction IDs of key requests */
    long long boot_ms;
} crypto_engine;

/* A sweep at now_ms adding to out (crypto_pending_sweep, crypto_outbound_sweep):
 * crypto_sweep_hash hands fn each field of the hash at key with its value, in turn, stopping at
 * the first failure; an absent hash has none. */
typedef struct crypto_sweep {
    crypto_engine *e;
    long long now_ms;
    json_t *out;
} crypto_sweep;
typedef mr_code (*crypto_sweep_fn)(const crypto_sweep *s, const char *field, const char *value, mr_err *err);
mr_code crypto_sweep_hash(crypto_engine *e, long long now_ms, json_t *out, const char *key, crypto_sweep_fn fn,
                          mr_err *err);

mr_code crypto_engine_init(crypto_engine *e, mr_store *store, const unsigned char *secret, size_t len, mr_err *err);
void crypto_engine_free(crypto_engine *e);

/* Each handler appends what it produces to out, as {"topic", "key", "msg"} objects, for the
 * service to publish before the input is acknowledged. Input that is refused (forged, replayed,
 * undecryptable) is logged naming the event and produces nothing; an error return (store, out
 * of memory) means the input should come again. */
void crypto_out_add(json_t *out, const char *topic, const char *key, json_t *msg);
/* An entry of out that writes value (taken) under key once out is published: sealed or plain;
 * a NULL value deletes key. */
mr_code crypto_out_put(json_t *out, const char *key, json_t *value, bool sealed, mr_err *err);
/* Whether a failure is the infrastructure's (store, memory): the input should come again. Other
 * codes are refusals of the input itself. */
bool crypto_retry(mr_code rc);

/* devices.c: the device of (user, device ID), loaded or made (and saved). */
mr_code crypto_device_get(crypto_engine *e, const char *user_id, const char *device_id, crypto_device **out,
                          mr_err *err);
/* The device of user_id this engine knows, or NULL. */
crypto_device *crypto_device_of(crypto_engine *e, const char *user_id);
mr_code crypto_device_save(crypto_engine *e, crypto_device *d, mr_err *err);
/* The device of user_id as this engine or the store knows it (the one the gateway last logged in
 * with); MR_ENOTFOUND when the account has none yet. */
mr_code crypto_device_stored(crypto_engine *e, const char *user_id, crypto_device **out, mr_err *err);
/* Asks for a keys_upload when the device keys are not published, one-time keys are below half
 * of what the account keeps, or there is no unused fallback key (counts and fallback_types as
 * the sync gave them; NULL when unknown). */
mr_code crypto_device_top_up(crypto_engine *e, crypto_device *d, json_t *counts, json_t *fallback_types,
                             json_t *out, mr_err *err);
/* A keys_upload answer for d. */
mr_code crypto_device_uploaded(crypto_engine *e, crypto_device *d, json_t *reply, mr_err *err);
/* A new transaction ID for a key request: "<prefix>.<boot ms>.<n>". */
char *crypto_txn_new(crypto_engine *e, const char *prefix);

/* sender_devices.c: the devices of senders, from /keys/query. */
/* The device of sender with Curve25519 key curve (both malloc'd); MR_ENOTFOUND when unknown. */
mr_code crypto_sender_device(crypto_engine *e, const char *sender, const char *curve, char **device_id,
                             char **ed25519, mr_err *err);
/* Drops what is known of user_id's devices (its device list changed). */
mr_code crypto_sender_forget(crypto_engine *e, const char *user_id, mr_err *err);
/* Parks msg (a todevice_event for d) until /keys/query answers for sender, asking when needed. */
mr_code crypto_sender_wait(crypto_engine *e, crypto_device *d, json_t *msg, const char *sender, json_t *out,
                           mr_err *err);
/* A keys_query answer: the devices saved, and the parked events (*events) and the users the query
 * covered (*users) handed back; they stay in the store until crypto_sender_replayed. MR_ENOTFOUND
 * when it answers no query in flight. */
mr_code crypto_sender_answered(crypto_engine *e, json_t *reply, json_t **events, json_t **users, mr_err *err);
/* The events an answer handed back are all handled. */
mr_code crypto_sender_replayed(crypto_engine *e, const char *account, mr_err *err);
/* Saves the devices a keys_query answer gives for each of users (those whose self-signature
 * checks), under crypto:devices:<user_id>. */
mr_code crypto_devices_save(crypto_engine *e, json_t *reply, json_t *users, mr_err *err);
/* The devices known of user_id ({device_id: {curve25519, ed25519}}, caller owns); MR_ENOTFOUND
 * when none were saved. */
mr_code crypto_devices_known(crypto_engine *e, const char *user_id, json_t **devs, mr_err *err);

/* cross_signing.c: the account's master and self-signing keys, and its device signed. */
/* Asks for the next cross-signing step of d (published device keys first) unless one is in
 * flight or all are done. */
mr_code crypto_xsign_step(crypto_engine *e, crypto_device *d, json_t *out, mr_err *err);
/* A keys_device_signing_upload or keys_signatures_upload answer for d; asks for the next step. */
mr_code crypto_xsign_answered(crypto_engine *e, crypto_device *d, json_t *reply, json_t *out, mr_err *err);

/* todevice.c: a todevice_event (matrix.todevice) and a keys_reply (matrix.keys). */
mr_code crypto_engine_todevice(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err);
mr_code crypto_engine_keys_reply(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err);

/* room_decrypt.c: an m.room.encrypted inbound event becomes a cleartext_event, or waits for its key. */
mr_code crypto_engine_room_event(crypto_engine *e, const crypto_inbound *in, const char *raw, size_t raw_len,
                                 json_t *out, mr_err *err);
/* An m.room_key from (sender, its device) stored as an inbound Megolm session; the events that
 * waited for it are decrypted. */
mr_code crypto_room_key(crypto_engine *e, const char *sender, const char *device_id, const char *sender_curve25519,
                        const char *sender_ed25519, json_t *content, json_t *out, mr_err *err);
/* Keeps g as the inbound session (room, session) of (sender, its device and keys), unless one
 * that starts earlier is kept already; the events that waited for it are decrypted. MR_EPERM
 * when g is another session. */
mr_code crypto_megolm_keep(crypto_engine *e, const char *room_id, const char *session_id, mr_olm_inbound_group *g,
                           const char *sender, const char *device_id, const char *sender_curve25519,
                           const char *sender_ed25519, json_t *out, mr_err *err);

/* key_requests.c: asking the sender's devices for a room key that did not come. */
/* The send_request of an m.room_key_request to sender's devices for (room, session) of
 * sender_key, as account's device; NULL when account's device is not known yet or out of
 * memory. */
json_t *crypto_key_request(crypto_engine *e, const char *account, const char *room_id, const char *session_id,
                           const char *sender, const char *sender_key);
/* The content of an m.forwarded_room_key that sender's device sent over Olm: kept as the session
 * when its events wait, it was requested, and sender and sender key are those of the waiting
 * events; MR_EPERM otherwise. */
mr_code crypto_forwarded_key(crypto_engine *e, const char *sender, const char *device_id, json_t *content,
                             json_t *out, mr_err *err);

/* room_members.c: what crypto knows of a room from the state events it forwards, under
 * crypto:room:<room_id>: {encryption, history_visibility, members: {user_id: membership}}. */
/* Records what a state event of in says (encryption, history visibility, membership). */
mr_code crypto_room_observe(crypto_engine *e, const crypto_inbound *in, mr_err *err);
/* The room's record; MR_ENOTFOUND when crypto has seen none of its state. */
mr_code crypto_room_facts(crypto_engine *e, const char *room_id, json_t **facts, mr_err *err);
/* The user IDs that should read the room's next message: the joined, and the invited unless
 * history_visibility is "joined" (a new reference, {user_id: true}). */
json_t *crypto_room_readers(json_t *facts);

/* outbound_sessions.c: the outbound Megolm session of (account, room), sealed under
 * crypto:megolm:out:<account>:<room_id>, and its sharing over Olm. */
typedef struct crypto_outbound {
    char *key;                      /* its store key */
    mr_olm_outbound_group *group;
    char session_id[MR_OLM_KEY_SIZE];
    long long created_ms;
    long long sent;                 /* messages encrypted with it */
    json_t *shared;                 /* {user_id: {device_id: curve25519}} that have its key */
} crypto_outbound;
/* The session in use, or a new one when there is none or it must rotate: its age or count reached
 * the room's rotation_period_ms / rotation_period_msgs, a user it was shared with is no longer
 * among readers, or a device it was shared with is no longer among its user's devices (devices:
 * {user_id: {device_id: {curve25519, ed25519}}} of the readers, as /keys/query last gave them; a
 * reader without an entry has none). A new session's key is kept as an inbound session too, so
 * the account reads its own messages. */
mr_code crypto_outbound_load(crypto_engine *e, crypto_device *d, const char *room_id, json_t *facts,
                             json_t *readers, json_t *devices, crypto_outbound *s, json_t *out, mr_err *err);
/* Whether s must rotate before its next message. */
bool crypto_outbound_due(const crypto_outbound *s, json_t *facts, json_t *readers, json_t *devices,
                         long long now_ms);
/* Replaces s by a new session (the old one is dropped). */
mr_code crypto_outbound_rotate(crypto_engine *e, crypto_device *d, const char *room_id, crypto_outbound *s,
                               json_t *out, mr_err *err);
/* The m.room.encrypted content of one room event (event_type, content), m.relates_to left in
 * clear; counts the message. */
mr_code crypto_outbound_encrypt(crypto_device *d, crypto_outbound *s, const char *room_id, const char *event_type,
                                json_t *content, json_t **encrypted, mr_err *err);
/* Appends the entry that seals s once out is published (crypto_engine_commit). */
mr_code crypto_outbound_keep(crypto_engine *e, crypto_outbound *s, json_t *out, mr_err *err);
void crypto_outbound_free(crypto_outbound *s);

/* The Olm session lists to devices one input reads and advances; the advanced ones are sealed
 * on commit. */
typedef struct crypto_olm_out {
    json_t *sessions;  /* {curve25519: [pickles]} as read and advanced during one input */
    json_t *advanced;  /* {curve25519: true} of those that changed */
} crypto_olm_out;
void crypto_olm_out_free(crypto_olm_out *o);
/* Whether there is an Olm session with the device of curve25519 (from the store or this input). */
mr_code crypto_olm_out_has(crypto_engine *e, crypto_olm_out *o, const char *account, const char *curve25519,
                           bool *has, mr_err *err);
/* A new outbound Olm session from a claimed one-time key, saved at once (nothing was sent with
 * it yet, so nothing depends on it being there). */
mr_code crypto_olm_out_start(crypto_engine *e, crypto_device *d, const mr_olm_device *dev, json_t *claimed,
                             mr_err *err);
/* The m.olm.v1 content carrying type/content to dev, with the most recent session to it. */
mr_code crypto_olm_out_encrypt(crypto_engine *e, crypto_olm_out *o, crypto_device *d, const mr_olm_device *dev,
                               const char *type, json_t *content, json_t **encrypted, mr_err *err);
/* Appends the entries that seal the advanced sessions once out is published. */
mr_code crypto_olm_out_keep(crypto_olm_out *o, const char *account, json_t *out, mr_err *err);

/* room_encrypt.c: outbound_intent to send_request, encrypted in an encrypted room. */
mr_code crypto_engine_outbound(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err);
/* Whether txn is a key request of the outbound path, and its answer. */
bool crypto_outbound_owns(const char *txn);
mr_code crypto_outbound_keys_reply(crypto_engine *e, json_t *reply, json_t *out, mr_err *err);
/* Asks again for what parked messages wait for when the request went unanswered for a minute
 * (the gateway lost it), so they do not wait for another message to come. */
mr_code crypto_outbound_sweep(crypto_engine *e, long long now_ms, json_t *out, mr_err *err);

/* pending.c: events waiting for their Megolm session. */
/* How long an event waits before its key is requested from the sender's devices. */
#define CRYPTO_KEY_REQUEST_MS 5000
/* How long an event waits before the room hears that it could not be decrypted. */
#define CRYPTO_KEY_WAIT_MS 60000
/* At most this many events wait per session; more are refused with a log line. */
#define CRYPTO_PENDING_MAX 100
mr_code crypto_pending_add(crypto_engine *e, const crypto_inbound *in, const char *raw, size_t raw_len,
                           long long now_ms, mr_err *err);
/* The index entry of (room, session): {since, account, notified, requested, sender, sender_key};
 * MR_ENOTFOUND when no event waits for it. */
mr_code crypto_pending_entry(crypto_engine *e, const char *room_id, const char *session_id, json_t **entry,
                             mr_err *err);
/* The waiting events of (room, session): a JSON array of inbound_event texts, [] when none. */
mr_code crypto_pending_get(crypto_engine *e, const char *room_id, const char *session_id, json_t **events,
                           mr_err *err);
/* Appends to out what crypto_engine_commit writes once out is published: of the events that
 * waited for (room, session), only keep (taken) still wait. */
void crypto_pending_resolve(json_t *out, const char *room_id, const char *session_id, json_t *keep);
/* Retries the waiting events of (room, session): cleartexts and the resolution into out; *all
 * when every one of them was handled. */
mr_code crypto_room_retry(crypto_engine *e, const char *room_id, const char *session_id, json_t *out, bool *all,
                          mr_err *err);
/* Retries waiting events whose key is there, requests the key of each (room, session) that
 * waited past CRYPTO_KEY_REQUEST_MS once (each request names its entry under "requested"), and
 * makes one "could not decrypt" notice per (room, session) that waited past CRYPTO_KEY_WAIT_MS
 * and was not announced yet (each names its entry under "pending"). Entries whose events expired
 * are dropped. */
mr_code crypto_pending_sweep(crypto_engine *e, long long now_ms, json_t *out, mr_err *err);
/* Writes what out's entries decided (notices sent, waiting events handled, sessions advanced):
 * call once the messages of out are on the bus. Entries of out without "msg" are for this only. */
mr_code crypto_engine_commit(crypto_engine *e, json_t *out, mr_err *err);
/* Whether crypto_engine_commit has anything to write for out (then out must be durable first). */
bool crypto_engine_commit_writes(const json_t *out);

#endif
