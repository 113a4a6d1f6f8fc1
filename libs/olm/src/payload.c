/* payload.c -- the plaintext inside an m.olm.v1.curve25519-aes-sha2 event: building it, and the
 * checks the spec requires before a decrypted one is believed. */
#include "olm_internal.h"

#include <stdio.h>
#include <string.h>

static bool is_user_id(const char *s)
{
    return s && s[0] == '@' && strchr(s, ':');
}

mr_code mr_olm_payload_build(const mr_olm_payload_parties *p, const char *type, const json_t *content,
                             char **plaintext, mr_err *err)
{
    *plaintext = NULL;
    if (!is_user_id(p->sender) || !is_user_id(p->recipient))
        return mr_err_set(err, MR_EINVAL, "an Olm payload needs sender and recipient user IDs, got %s and %s",
                          p->sender ? p->sender : "none", p->recipient ? p->recipient : "none");
    if (!type || !type[0] || !json_is_object(content))
        return mr_err_set(err, MR_EINVAL, "an Olm payload needs an event type and an object as content");
    mr_code rc = mr_olm_check_b64("the sender's ed25519 key", p->sender_ed25519, 32, err);
    if (rc == MR_OK)
        rc = mr_olm_check_b64("the recipient's ed25519 key", p->recipient_ed25519, 32, err);
    if (rc != MR_OK)
        return rc;
    json_t *payload = json_pack("{ss sO ss ss s{ss} s{ss}}", "type", type, "content", content, "sender", p->sender,
                                "recipient", p->recipient, "recipient_keys", "ed25519", p->recipient_ed25519,
                                "keys", "ed25519", p->sender_ed25519);
    if (!payload)
        return mr_err_set(err, MR_ENOMEM, "out of memory building an Olm payload");
    rc = mr_olm_canonical_json(payload, plaintext, NULL, err);
    json_decref(payload);
    return rc;
}

/* The string at obj.a(.b), or NULL. */
static const char *field(const json_t *obj, const char *a, const char *b)
{
    const json_t *v = json_object_get(obj, a);
    return json_string_value(b ? json_object_get(v, b) : v);
}

/* Spec step 5: sender_device_keys, when present, must be the sender's own signed keys. */
static mr_code check_sender_device_keys(const json_t *dk, const mr_olm_payload_expect *want, const char *sender_ed,
                                        mr_err *err)
{
    const char *user_id = field(dk, "user_id", NULL);
    const char *device_id = field(dk, "device_id", NULL);
    if (!json_is_object(dk) || !user_id || !device_id)
        return mr_err_set(err, MR_EINVAL, "decrypted Olm payload: \"sender_device_keys\" lacks user_id or device_id");
    if (strcmp(user_id, want->sender) != 0)
        return mr_err_set(err, MR_EPERM, "decrypted Olm payload: sender_device_keys belong to %s, not the sender %s",
                          user_id, want->sender);
    char curve_id[300], ed_id[300];
    snprintf(curve_id, sizeof curve_id, "curve25519:%s", device_id);
    snprintf(ed_id, sizeof ed_id, "ed25519:%s", device_id);
    const char *curve = field(dk, "keys", curve_id), *ed = field(dk, "keys", ed_id);
    if (!curve || !ed)
        return mr_err_set(err, MR_EINVAL, "decrypted Olm payload: sender_device_keys lack keys.%s or keys.%s",
                          curve_id, ed_id);
    if (want->sender_curve25519 && strcmp(curve, want->sender_curve25519) != 0)
        return mr_err_set(err, MR_EPERM,
                          "decrypted Olm payload: sender_device_keys name curve25519 key %s, but the message came "
                          "from %s",
                          curve, want->sender_curve25519);
    if (strcmp(ed, sender_ed) != 0)
        return mr_err_set(err, MR_EPERM,
                          "decrypted Olm payload: sender_device_keys name ed25519 key %s, but keys.ed25519 is %s", ed,
                          sender_ed);
    mr_code rc = mr_olm_verify_json(dk, user_id, ed_id, ed, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "decrypted Olm payload: sender_device_keys");
        return MR_EPERM;
    }
    return MR_OK;
}

static mr_code check_payload(const json_t *ev, const mr_olm_payload_expect *want, mr_err *err)
{
    const char *type = field(ev, "type", NULL), *sender = field(ev, "sender", NULL);
    const char *recipient = field(ev, "recipient", NULL);
    const char *recipient_ed = field(ev, "recipient_keys", "ed25519"), *sender_ed = field(ev, "keys", "ed25519");
    const char *missing = !type ? "type"
                          : !json_is_object(json_object_get(ev, "content")) ? "content"
                          : !sender ? "sender"
                          : !recipient ? "recipient"
                          : !recipient_ed ? "recipient_keys.ed25519"
                          : !sender_ed ? "keys.ed25519"
                                       : NULL;
    if (missing)
        return mr_err_set(err, MR_EINVAL, "decrypted Olm payload: \"%s\" is missing or not %s", missing,
                          strcmp(missing, "content") == 0 ? "an object" : "a string");
    if (strcmp(sender, want->sender) != 0)
        return mr_err_set(err, MR_EPERM,
                          "decrypted Olm payload: it claims sender %s, but the to-device event came from %s", sender,
                          want->sender);
    if (strcmp(recipient, want->recipient) != 0)
        return mr_err_set(err, MR_EPERM, "decrypted Olm payload: it is addressed to %s, not to us (%s)", recipient,
                          want->recipient);
    if (strcmp(recipient_ed, want->recipient_ed25519) != 0)
        return mr_err_set(err, MR_EPERM,
                          "decrypted Olm payload: recipient_keys.ed25519 is %s, not our device's key %s", recipient_ed,
                          want->recipient_ed25519);
    if (want->sender_ed25519 && strcmp(sender_ed, want->sender_ed25519) != 0)
        return mr_err_set(err, MR_EPERM,
                          "decrypted Olm payload: keys.ed25519 is %s, but the sending device's key is %s (forged "
                          "sender key)",
                          sender_ed, want->sender_ed25519);
    const json_t *dk = json_object_get(ev, "sender_device_keys");
    return dk ? check_sender_device_keys(dk, want, sender_ed, err) : MR_OK;
}

mr_code mr_olm_payload_check(const char *plaintext, size_t len, const mr_olm_payload_expect *want, json_t **event,
                             mr_err *err)
{
    *event = NULL;
    if (!want->sender || !want->recipient || !want->recipient_ed25519)
        return mr_err_set(err, MR_EINVAL, "checking an Olm payload needs the event's sender, our user ID and our "
                                          "ed25519 key");
    json_error_t jerr;
    json_t *ev = json_loadb(plaintext, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(ev)) {
        json_decref(ev);
        return mr_err_set(err, MR_EINVAL, "decrypted Olm payload is not a JSON object: %s",
                          jerr.text[0] ? jerr.text : "another type");
    }
    mr_code rc = check_payload(ev, want, err);
    if (rc != MR_OK) {
        json_decref(ev);
        return rc;
    }
    *event = ev;
    return MR_OK;
}
