/* olm.h -- end-to-end encryption for Matrix: Olm accounts and sessions, Megolm group sessions,
 * signed JSON (canonical JSON, device keys, one-time and fallback keys, cross-signing) and the
 * checks a decrypted event must pass. Every libolm call of the project is behind this header,
 * so another implementation (vodozemac) can replace libolm without touching a caller.
 *
 * Errors. Each call returns MR_OK or an mr_code with a message naming what failed and, where
 * libolm refused, its error name (BAD_MESSAGE_MAC, BAD_ACCOUNT_KEY, ...). Bad input is
 * MR_EINVAL; a wrong pickle key, a bad MAC or a bad signature MR_EAUTH; an unknown one-time key
 * or Megolm index MR_ENOTFOUND; a replayed Megolm index MR_EEXISTS. A refused call changes
 * nothing the caller can see.
 *
 * Secrets. Objects wipe their memory when freed. Heap buffers that hold secrets or decrypted
 * text (Megolm session keys, plaintexts, signing seeds) are freed with mr_olm_free_secret.
 * Pickles are encrypted with the caller's key and freed with free().
 *
 * Keys, signatures and IDs are unpadded standard base64, as Matrix sends them.
 * Threads: each object belongs to one thread at a time; separate objects are independent. */
#ifndef MINDROOM_OLM_H
#define MINDROOM_OLM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mindroom/err.h"

/* A Curve25519 or Ed25519 public key, an Olm or Megolm session ID: 43 characters and a NUL. */
#define MR_OLM_KEY_SIZE 44
/* An Ed25519 signature: 86 characters and a NUL. */
#define MR_OLM_SIGNATURE_SIZE 87
/* Pickle keys are at least this many bytes (the crypto service passes a key derived from the
 * instance secret). */
#define MR_OLM_PICKLE_KEY_MIN 16

#define MR_OLM_ALGORITHM_OLM "m.olm.v1.curve25519-aes-sha2"
#define MR_OLM_ALGORITHM_MEGOLM "m.megolm.v1.aes-sha2"

/* Olm message types, as the `type` of an m.olm.v1 ciphertext entry. */
#define MR_OLM_MSG_PRE_KEY 0
#define MR_OLM_MSG_NORMAL 1

typedef struct mr_olm_account mr_olm_account;
typedef struct mr_olm_session mr_olm_session;
typedef struct mr_olm_signing_key mr_olm_signing_key;
typedef struct mr_olm_outbound_group mr_olm_outbound_group;
typedef struct mr_olm_inbound_group mr_olm_inbound_group;
typedef struct mr_olm_replay mr_olm_replay;

/* Wipes len bytes of p and frees it; NULL is allowed. */
void mr_olm_free_secret(void *p, size_t len);

/* ---- Signed JSON ------------------------------------------------------------------------ */

/* The Matrix canonical encoding of v (sorted keys, no insignificant whitespace, UTF-8, integers
 * only): a NUL-terminated heap string the caller frees. Reals that are whole numbers within
 * +-(2^53 - 1) are written as integers, as the spec's `1e10` example asks; other reals, and
 * integers outside that range, are refused. */
mr_code mr_olm_canonical_json(const json_t *v, char **out, size_t *len, mr_err *err);

/* Checks that obj carries a valid signature by `signatures.<user_id>.<key_id>` from the Ed25519
 * public key ed25519, over obj without `signatures` and `unsigned`. key_id is "ed25519:DEVICE"
 * for a device, "ed25519:<public key>" for a cross-signing key. */
mr_code mr_olm_verify_json(const json_t *obj, const char *user_id, const char *key_id, const char *ed25519,
                           mr_err *err);

/* ---- Accounts: identity keys, one-time and fallback keys ---------------------------------- */

/* A new account with fresh identity keys (randomness from getrandom). */
mr_code mr_olm_account_new(mr_olm_account **out, mr_err *err);
void mr_olm_account_free(mr_olm_account *a);

/* The account's identity keys; valid until the account is freed. */
const char *mr_olm_account_curve25519(const mr_olm_account *a);
const char *mr_olm_account_ed25519(const mr_olm_account *a);

/* Signs len bytes with the account's Ed25519 key. */
mr_code mr_olm_account_sign(mr_olm_account *a, const void *msg, size_t len, char sig[MR_OLM_SIGNATURE_SIZE],
                            mr_err *err);

/* Adds `signatures.<user_id>."ed25519:<device_id>"` to obj, signed by the account. */
mr_code mr_olm_account_sign_json(mr_olm_account *a, json_t *obj, const char *user_id, const char *device_id,
                                 mr_err *err);

/* How many one-time keys the account keeps; generating more discards the oldest. */
size_t mr_olm_account_max_one_time_keys(const mr_olm_account *a);
/* Generates n one-time keys (1 .. max). They stay unpublished until mark_published. */
mr_code mr_olm_account_generate_one_time_keys(mr_olm_account *a, size_t n, mr_err *err);
/* The unpublished one-time keys, {"<key id>": "<curve25519>", ...}. */
mr_code mr_olm_account_one_time_keys(mr_olm_account *a, json_t **keys, mr_err *err);
/* Makes a new fallback key; the previous one is kept until forget_old_fallback_key, for
 * messages already on their way. */
mr_code mr_olm_account_generate_fallback_key(mr_olm_account *a, mr_err *err);
/* The unpublished fallback key, {"<key id>": "<curve25519>"}, or {} when it was published. */
mr_code mr_olm_account_unpublished_fallback_key(mr_olm_account *a, json_t **keys, mr_err *err);
void mr_olm_account_forget_old_fallback_key(mr_olm_account *a);
/* Marks the one-time and fallback keys as published: call after /keys/upload succeeded. */
void mr_olm_account_mark_published(mr_olm_account *a);

/* The signed `device_keys` object of /keys/upload. */
mr_code mr_olm_account_device_keys(mr_olm_account *a, const char *user_id, const char *device_id, json_t **out,
                                   mr_err *err);
/* The whole /keys/upload body: `device_keys` when with_device_keys, and the unpublished keys as
 * signed `one_time_keys` and `fallback_keys` ("signed_curve25519:<id>": {key, [fallback,]
 * signatures}). Keys stay unpublished: call mark_published once the homeserver took them. */
mr_code mr_olm_account_keys_upload_body(mr_olm_account *a, const char *user_id, const char *device_id,
                                        bool with_device_keys, json_t **body, mr_err *err);

/* Pickles the account encrypted with key (at least MR_OLM_PICKLE_KEY_MIN bytes). */
mr_code mr_olm_account_pickle(mr_olm_account *a, const void *key, size_t key_len, char **pickle, mr_err *err);
/* A wrong key is MR_EAUTH; a damaged pickle MR_EINVAL. */
mr_code mr_olm_account_unpickle(const char *pickle, const void *key, size_t key_len, mr_olm_account **out,
                                mr_err *err);

/* ---- Cross-signing keys ------------------------------------------------------------------ */

/* A new Ed25519 cross-signing key from a fresh random seed, or from a stored seed (32 bytes). */
mr_code mr_olm_signing_key_new(mr_olm_signing_key **out, mr_err *err);
mr_code mr_olm_signing_key_from_seed(const void *seed, size_t len, mr_olm_signing_key **out, mr_err *err);
void mr_olm_signing_key_free(mr_olm_signing_key *k);
const char *mr_olm_signing_key_public(const mr_olm_signing_key *k);
/* The seed, to store sealed: 32 bytes into seed. */
void mr_olm_signing_key_seed(const mr_olm_signing_key *k, unsigned char seed[32]);
/* Adds `signatures.<user_id>."ed25519:<public key>"` to obj, signed by k. */
mr_code mr_olm_signing_key_sign_json(mr_olm_signing_key *k, json_t *obj, const char *user_id, mr_err *err);

/* The /keys/device_signing/upload body: `master_key` (usage master) and `self_signing_key`
 * (usage self_signing, signed by master). */
mr_code mr_olm_cross_signing_upload_body(mr_olm_signing_key *master, mr_olm_signing_key *self_signing,
                                         const char *user_id, json_t **body, mr_err *err);
/* The /keys/signatures/upload body that signs this device with the self-signing key:
 * {"<user_id>": {"<device_id>": <device_keys with the self-signing signature added>}}. */
mr_code mr_olm_cross_signing_device_signature(mr_olm_signing_key *self_signing, mr_olm_account *a,
                                              const char *user_id, const char *device_id, json_t **body,
                                              mr_err *err);

/* ---- Olm sessions (to-device) ------------------------------------------------------------ */

/* The device a claimed one-time key belongs to, as /keys/query told (its keys verified). */
typedef struct mr_olm_device {
    const char *user_id;
    const char *device_id;
    const char *curve25519;
    const char *ed25519;
} mr_olm_device;

/* An outbound session to device from the key object /keys/claim returned for it
 * ({"key": ..., "signatures": ...}), refused unless the device's Ed25519 key signed it. */
mr_code mr_olm_session_new_outbound(mr_olm_account *a, const mr_olm_device *device, const json_t *claimed_key,
                                    mr_olm_session **out, mr_err *err);

/* An inbound session from a pre-key message sent by their_curve25519, its first plaintext
 * decrypted. Only then is the one-time key it used removed from the account (the spec's rule:
 * nothing is consumed until a message decrypts); the caller pickles the account afterwards. */
mr_code mr_olm_session_new_inbound(mr_olm_account *a, const char *their_curve25519, const char *body,
                                   mr_olm_session **out, char **plaintext, size_t *len, mr_err *err);

/* Whether a pre-key message from their_curve25519 belongs to session s (try existing sessions
 * before making a new one). */
bool mr_olm_session_matches_inbound(mr_olm_session *s, const char *their_curve25519, const char *body);

/* Encrypts len bytes: *type is MR_OLM_MSG_PRE_KEY until the session has received a message,
 * then MR_OLM_MSG_NORMAL; *body is base64 (free()). */
mr_code mr_olm_session_encrypt(mr_olm_session *s, const void *plaintext, size_t len, int *type, char **body,
                               mr_err *err);
/* Decrypts a message of the given type; *plaintext is NUL-terminated, len excludes the NUL
 * (mr_olm_free_secret). A message that does not belong to this session is MR_EAUTH and leaves
 * the session as it was. */
mr_code mr_olm_session_decrypt(mr_olm_session *s, int type, const char *body, char **plaintext, size_t *len,
                               mr_err *err);
void mr_olm_session_id(mr_olm_session *s, char id[MR_OLM_KEY_SIZE]);
mr_code mr_olm_session_pickle(mr_olm_session *s, const void *key, size_t key_len, char **pickle, mr_err *err);
mr_code mr_olm_session_unpickle(const char *pickle, const void *key, size_t key_len, mr_olm_session **out,
                                mr_err *err);
void mr_olm_session_free(mr_olm_session *s);

/* ---- The plaintext of an m.olm.v1.curve25519-aes-sha2 event ------------------------------ */

typedef struct mr_olm_payload_parties {
    const char *sender;            /* user ID of the sending device's owner */
    const char *sender_ed25519;    /* the sending device's Ed25519 key */
    const char *recipient;         /* user ID of the receiving device's owner */
    const char *recipient_ed25519; /* the receiving device's Ed25519 key */
} mr_olm_payload_parties;

/* {"type", "content", "sender", "recipient", "recipient_keys": {"ed25519"}, "keys": {"ed25519"}}
 * as canonical JSON, ready for mr_olm_session_encrypt. */
mr_code mr_olm_payload_build(const mr_olm_payload_parties *p, const char *type, const json_t *content,
                             char **plaintext, mr_err *err);

/* What a decrypted payload must match. */
typedef struct mr_olm_payload_expect {
    const char *sender;            /* the to-device event's `sender` */
    const char *sender_curve25519; /* the `sender_key` the message came with (its session's key) */
    const char *sender_ed25519;    /* the sender device's Ed25519 key from /keys/query; NULL when
                                      not known yet (then `keys.ed25519` is only returned) */
    const char *recipient;         /* our user ID */
    const char *recipient_ed25519; /* our Ed25519 key */
} mr_olm_payload_expect;

/* Parses a decrypted payload and applies the spec's checks (sender, recipient,
 * recipient_keys.ed25519, keys.ed25519, and sender_device_keys when present: its user, its
 * Curve25519 and Ed25519 keys and its signature). A forged payload is MR_EPERM with the reason;
 * a malformed one MR_EINVAL. *event is the whole payload (json_decref). */
mr_code mr_olm_payload_check(const char *plaintext, size_t len, const mr_olm_payload_expect *want, json_t **event,
                             mr_err *err);

/* ---- Megolm (room messages) -------------------------------------------------------------- */

mr_code mr_olm_outbound_group_new(mr_olm_outbound_group **out, mr_err *err);
void mr_olm_outbound_group_free(mr_olm_outbound_group *g);
void mr_olm_outbound_group_id(mr_olm_outbound_group *g, char id[MR_OLM_KEY_SIZE]);
/* The index the next message will have. */
uint32_t mr_olm_outbound_group_index(mr_olm_outbound_group *g);
/* The session_key an m.room_key carries, valid from the current index (mr_olm_free_secret). */
mr_code mr_olm_outbound_group_key(mr_olm_outbound_group *g, char **session_key, mr_err *err);
/* *ciphertext is base64 (free()). */
mr_code mr_olm_outbound_group_encrypt(mr_olm_outbound_group *g, const void *plaintext, size_t len,
                                      char **ciphertext, mr_err *err);
mr_code mr_olm_outbound_group_pickle(mr_olm_outbound_group *g, const void *key, size_t key_len, char **pickle,
                                     mr_err *err);
mr_code mr_olm_outbound_group_unpickle(const char *pickle, const void *key, size_t key_len,
                                       mr_olm_outbound_group **out, mr_err *err);

/* From the session_key of an m.room_key. */
mr_code mr_olm_inbound_group_new(const char *session_key, mr_olm_inbound_group **out, mr_err *err);
/* From an exported key: the session_key of an m.forwarded_room_key or a key export. */
mr_code mr_olm_inbound_group_import(const char *exported_key, mr_olm_inbound_group **out, mr_err *err);
/* Exports the key from message index `index` on (mr_olm_free_secret). */
mr_code mr_olm_inbound_group_export(mr_olm_inbound_group *g, uint32_t index, char **exported_key, mr_err *err);
void mr_olm_inbound_group_free(mr_olm_inbound_group *g);
void mr_olm_inbound_group_id(mr_olm_inbound_group *g, char id[MR_OLM_KEY_SIZE]);
uint32_t mr_olm_inbound_group_first_index(const mr_olm_inbound_group *g);
/* Decrypts; *plaintext is NUL-terminated (mr_olm_free_secret) and *index is the message index,
 * for mr_olm_replay_check. An index before the first known one is MR_ENOTFOUND. */
mr_code mr_olm_inbound_group_decrypt(mr_olm_inbound_group *g, const char *ciphertext, char **plaintext,
                                     size_t *len, uint32_t *index, mr_err *err);
mr_code mr_olm_inbound_group_pickle(mr_olm_inbound_group *g, const void *key, size_t key_len, char **pickle,
                                    mr_err *err);
mr_code mr_olm_inbound_group_unpickle(const char *pickle, const void *key, size_t key_len,
                                      mr_olm_inbound_group **out, mr_err *err);

/* Replay detection: remembers which event each (Megolm session, message index) decrypted.
 * The same event again is fine (a client may decrypt an event twice); another event with the
 * same session and index is a replay. */
mr_code mr_olm_replay_new(mr_olm_replay **out, mr_err *err);
void mr_olm_replay_free(mr_olm_replay *r);
/* Records (session_id, index) -> event_id, or refuses with MR_EEXISTS naming both events. */
mr_code mr_olm_replay_check(mr_olm_replay *r, const char *session_id, uint32_t index, const char *event_id,
                            mr_err *err);

#endif
