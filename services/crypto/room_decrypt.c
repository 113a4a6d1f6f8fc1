/* room_decrypt.c -- Megolm: an m.room_key becomes an inbound session sealed under
 * crypto:megolm:in:<room_id>:<session_id> with the user, device and keys that sent it; an
 * m.room.encrypted room event is decrypted with it into a cleartext_event, or waits for it.
 * Refused: another sender or sender key than the session's, an index that already decrypted
 * another event (crypto:megolm:idx:<session_id>:<index>), a plaintext for another room. */
#include "crypto_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
/* How long the event of each (session, index) is remembered against replays. */
#define REPLAY_TTL_MS (30L * 86400000L)

static char *session_key(const char *room_id, const char *session_id)
{
    return mr_str_printf("crypto:megolm:in:%s:%s", room_id, session_id);
}

static mr_code oom(mr_err *err, const char *what)
{
    return mr_err_set(err, MR_ENOMEM, "out of memory %s", what);
}

/* Whether the stored session (if any) already starts at or before first_index: a key that
 * starts later must not replace one that decrypts more. */
static bool have_earlier(crypto_engine *e, const char *key, uint32_t first_index)
{
    json_t *rec = NULL;
    mr_err ignored = {0};
    if (crypto_vault_get(&e->vault, key, &rec, &ignored) != MR_OK)
        return false;
    mr_olm_inbound_group *g = NULL;
    bool earlier = mr_olm_inbound_group_unpickle(mr_msg_string(rec, "pickle") ? mr_msg_string(rec, "pickle") : "",
                                                 e->vault.pickle_key, sizeof e->vault.pickle_key, &g,
                                                 &ignored) == MR_OK &&
                   mr_olm_inbound_group_first_index(g) <= first_index;
    mr_olm_inbound_group_free(g);
    json_decref(rec);
    return earlier;
}

static mr_code store_session(crypto_engine *e, const char *key, mr_olm_inbound_group *g, const char *sender,
                             const char *device_id, const char *curve, const char *ed25519, mr_err *err)
{
    char *pickle = NULL;
    mr_code rc = mr_olm_inbound_group_pickle(g, e->vault.pickle_key, sizeof e->vault.pickle_key, &pickle, err);
    json_t *rec = rc == MR_OK ? json_pack("{s:s, s:s, s:s, s:s, s:s}", "pickle", pickle, "sender", sender,
                                          "device_id", device_id, "sender_key", curve, "ed25519", ed25519)
                              : NULL;
    if (rc == MR_OK)
        rc = rec ? crypto_vault_put(&e->vault, key, rec, err) : oom(err, "saving a Megolm session");
    json_decref(rec);
    mr_olm_free_secret(pickle, pickle ? strlen(pickle) : 0);
    return rc;
}

mr_code crypto_megolm_keep(crypto_engine *e, const char *room_id, const char *session_id, mr_olm_inbound_group *g,
                           const char *sender, const char *device_id, const char *sender_curve25519,
                           const char *sender_ed25519, json_t *out, mr_err *err)
{
    char id[MR_OLM_KEY_SIZE];
    mr_olm_inbound_group_id(g, id);
    if (strcmp(id, session_id) != 0)
        return mr_err_set(err, MR_EPERM, "session_key is of session %s, not %s", id, session_id);
    char *key = session_key(room_id, session_id);
    mr_code rc = key ? MR_OK : oom(err, "saving a Megolm session");
    if (rc == MR_OK && have_earlier(e, key, mr_olm_inbound_group_first_index(g))) {
        mr_log_info(COMPONENT, "key of session %s in %s from %s: already known", session_id, room_id, sender);
    } else if (rc == MR_OK) {
        rc = store_session(e, key, g, sender, device_id, sender_curve25519, sender_ed25519, err);
        if (rc == MR_OK)
            mr_log_info(COMPONENT, "new Megolm session %s in %s from %s (device %s)", session_id, room_id, sender,
                        device_id);
    }
    free(key);
    bool all = false;
    return rc == MR_OK ? crypto_room_retry(e, room_id, session_id, out, &all, err) : rc;
}

mr_code crypto_room_key(crypto_engine *e, const char *sender, const char *device_id, const char *sender_curve25519,
                        const char *sender_ed25519, json_t *content, json_t *out, mr_err *err)
{
    const char *alg = mr_msg_string(content, "algorithm"), *room_id = mr_msg_string(content, "room_id");
    const char *session_id = mr_msg_string(content, "session_id"), *skey = mr_msg_string(content, "session_key");
    if (!alg || strcmp(alg, MR_OLM_ALGORITHM_MEGOLM) != 0 || !room_id || room_id[0] != '!' || !session_id || !skey)
        return mr_err_set(err, MR_EINVAL, "m.room_key: algorithm is not " MR_OLM_ALGORITHM_MEGOLM
                          " or room_id, session_id or session_key is missing");
    mr_olm_inbound_group *g = NULL;
    mr_code rc = mr_olm_inbound_group_new(skey, &g, err);
    if (rc == MR_OK)
        rc = crypto_megolm_keep(e, room_id, session_id, g, sender, device_id, sender_curve25519, sender_ed25519, out,
                                err);
    if (rc != MR_OK && rc != MR_ENOMEM)
        mr_err_prefix(err, "m.room_key: ");
    mr_olm_inbound_group_free(g);
    return rc;
}

static void refuse(const crypto_inbound *in, const char *session_id, const mr_err *why)
{
    const char *fields[] = {"room_id", in->room_id, "event_id", in->event_id, "session_id", session_id, "reason",
                            why->msg, NULL};
    mr_log_write(MR_LOG_WARN, COMPONENT, fields, "refusing encrypted event %s: %s", in->event_id, why->msg);
}

/* Refuses another event under a (session, index) that already decrypted one. */
static mr_code replay_check(crypto_engine *e, const char *session_id, uint32_t index, const char *event_id,
                            mr_err *err)
{
    char *key = mr_str_printf("crypto:megolm:idx:%s:%u", session_id, index);
    if (!key)
        return oom(err, "checking for a replay");
    bool won = false;
    mr_code rc = mr_store_set_nx(e->vault.store, key, event_id, strlen(event_id), REPLAY_TTL_MS, &won, err);
    char *first = NULL;
    size_t len = 0;
    if (rc == MR_OK && !won && (rc = mr_store_get(e->vault.store, key, &first, &len, err)) == MR_OK &&
        (len != strlen(event_id) || memcmp(first, event_id, len) != 0))
        rc = mr_err_set(err, MR_EEXISTS, "replay: index %u of session %s already decrypted %.*s", index, session_id,
                        (int)len, first);
    free(first);
    free(key);
    return rc;
}

/* The decrypted event as authz reads it: the original event with the plaintext's type and
 * content; the relation (kept in clear by the spec) goes back into the content. */
static json_t *cleartext(const crypto_inbound *in, json_t *plain, json_t *rec)
{
    json_t *ev = json_deep_copy(json_object_get(in->root, "event"));
    json_t *content = json_deep_copy(json_object_get(plain, "content"));
    json_t *rel = json_object_get(json_object_get(ev, "content"), "m.relates_to");
    if (!ev || !content || (rel && !json_object_get(content, "m.relates_to") &&
                            json_object_set(content, "m.relates_to", rel) != 0) ||
        json_object_set(ev, "type", json_object_get(plain, "type")) != 0 ||
        json_object_set_new(ev, "content", content) != 0) {
        json_decref(ev);
        return NULL;
    }
    json_t *c = json_pack("{s:i, s:s, s:O, s:O, s:o, s:b, s:O, s:s}", "v", 1, "type", "cleartext_event", "account",
                          json_object_get(in->root, "account"), "room_id", json_object_get(in->root, "room_id"),
                          "event", ev, "encrypted", 1, "sender_device", json_object_get(rec, "device_id"),
                          "verification", "unverified");
    json_t *history = json_object_get(in->root, "history");
    if (c && history && json_object_set(c, "history", history) != 0) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* Decrypts with the stored session rec; MR_ENOTFOUND when the index precedes what it holds. */
static mr_code decrypt(crypto_engine *e, const crypto_inbound *in, json_t *rec, json_t *content, json_t **plain,
                       mr_err *err)
{
    json_t *ev = json_object_get(in->root, "event");
    const char *sender = mr_msg_string(ev, "sender"), *sender_key = mr_msg_string(content, "sender_key");
    if (strcmp(mr_msg_string(rec, "sender") ? mr_msg_string(rec, "sender") : "", sender) != 0 ||
        (sender_key && strcmp(mr_msg_string(rec, "sender_key") ? mr_msg_string(rec, "sender_key") : "",
                              sender_key) != 0))
        return mr_err_set(err, MR_EPERM, "forged: session %s belongs to %s (key %s), not %s (key %s)",
                          in->session_id, mr_msg_string(rec, "sender"), mr_msg_string(rec, "sender_key"), sender,
                          sender_key ? sender_key : "none");
    mr_olm_inbound_group *g = NULL;
    const char *pickle = mr_msg_string(rec, "pickle");
    mr_code rc = pickle ? mr_olm_inbound_group_unpickle(pickle, e->vault.pickle_key, sizeof e->vault.pickle_key, &g,
                                                        err)
                        : mr_err_set(err, MR_EINVAL, "the stored session %s has no pickle", in->session_id);
    char *text = NULL;
    size_t len = 0;
    uint32_t index = 0;
    if (rc == MR_OK)
        rc = mr_olm_inbound_group_decrypt(g, mr_msg_string(content, "ciphertext"), &text, &len, &index, err);
    mr_olm_inbound_group_free(g);
    if (rc == MR_OK)
        rc = replay_check(e, in->session_id, index, in->event_id, err);
    json_error_t jerr;
    if (rc == MR_OK && !(*plain = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
        rc = mr_err_set(err, MR_EINVAL, "the plaintext is not JSON: %s", jerr.text);
    mr_olm_free_secret(text, len);
    const char *room = mr_msg_string(*plain, "room_id"), *type = mr_msg_string(*plain, "type");
    if (rc == MR_OK && (!type || !json_is_object(json_object_get(*plain, "content"))))
        rc = mr_err_set(err, MR_EINVAL, "the plaintext lacks type or content");
    else if (rc == MR_OK && (!room || strcmp(room, in->room_id) != 0))
        rc = mr_err_set(err, MR_EPERM, "the plaintext is for room %s, not %s", room ? room : "(none)", in->room_id);
    if (rc != MR_OK) {
        json_decref(*plain);
        *plain = NULL;
    }
    return rc;
}

/* Decrypts in into out, or sets *waits when its session (or its index) is not known yet. */
static mr_code decrypt_event(crypto_engine *e, const crypto_inbound *in, json_t *out, bool *waits, mr_err *err)
{
    json_t *content = json_object_get(json_object_get(in->root, "event"), "content");
    const char *alg = mr_msg_string(content, "algorithm");
    mr_err why = {0};
    *waits = false;
    if (!alg || strcmp(alg, MR_OLM_ALGORITHM_MEGOLM) != 0 || !in->session_id[0] ||
        !mr_msg_string(content, "ciphertext")) {
        mr_err_set(&why, MR_EINVAL, "algorithm is not " MR_OLM_ALGORITHM_MEGOLM
                   " or session_id or ciphertext is missing");
        refuse(in, in->session_id, &why);
        return MR_OK;
    }
    char *key = session_key(in->room_id, in->session_id);
    json_t *rec = NULL, *plain = NULL;
    mr_code rc = key ? crypto_vault_get(&e->vault, key, &rec, &why) : oom(&why, "reading a Megolm session");
    free(key);
    if (rc == MR_OK)
        rc = decrypt(e, in, rec, content, &plain, &why);
    if (rc == MR_ENOTFOUND) {
        *waits = true;
        rc = MR_OK;
    } else if (rc == MR_OK) {
        json_t *c = cleartext(in, plain, rec);
        if (c)
            crypto_out_add(out, "matrix.cleartext", in->room_id, c);
        else
            rc = oom(err, "building a cleartext event");
    } else if (crypto_retry(rc)) {
        *err = why;
    } else {
        refuse(in, in->session_id, &why);
        rc = MR_OK;
    }
    json_decref(plain);
    json_decref(rec);
    return rc;
}

mr_code crypto_engine_room_event(crypto_engine *e, const crypto_inbound *in, const char *raw, size_t raw_len,
                                 json_t *out, mr_err *err)
{
    bool waits = false;
    mr_code rc = decrypt_event(e, in, out, &waits, err);
    return rc == MR_OK && waits ? crypto_pending_add(e, in, raw, raw_len, mr_clock_wall_ms(), err) : rc;
}

mr_code crypto_room_retry(crypto_engine *e, const char *room_id, const char *session_id, json_t *out, bool *all,
                          mr_err *err)
{
    *all = false;
    json_t *waiting = NULL, *keep = json_array();
    mr_code rc = keep ? crypto_pending_get(e, room_id, session_id, &waiting, err)
                      : oom(err, "retrying waiting events");
    size_t i;
    json_t *raw;
    json_array_foreach(waiting, i, raw) {
        crypto_inbound in;
        mr_err perr = {0};
        const char *text = json_string_value(raw);
        bool waits = false;
        if (rc != MR_OK)
            break;
        /* A damaged entry is dropped: it would never parse. */
        if (!text || crypto_inbound_parse(text, strlen(text), &in, &perr) != MR_OK)
            continue;
        rc = decrypt_event(e, &in, out, &waits, err);
        crypto_inbound_free(&in);
        if (rc == MR_OK && waits && json_array_append(keep, raw) != 0)
            rc = oom(err, "retrying waiting events");
    }
    *all = rc == MR_OK && json_array_size(waiting) && !json_array_size(keep);
    if (rc == MR_OK && json_array_size(keep) < json_array_size(waiting)) {
        crypto_pending_resolve(out, room_id, session_id, keep);
        keep = NULL;
    }
    json_decref(keep);
    json_decref(waiting);
    return rc;
}
