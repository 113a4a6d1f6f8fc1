/* session.c -- Olm sessions between two devices: outbound from a claimed one-time key, inbound
 * from a pre-key message, encryption, decryption, pickles. */
#include "olm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/b64.h"

MR_OLM_KIND(SESSION_KIND, "an Olm session", olm_session_size, olm_session, olm_clear_session, olm_pickle_session_length,
            olm_pickle_session, olm_unpickle_session, olm_session_last_error, olm_session_last_error_code);

/* An mr_olm_session is the libolm session's memory. */
static OlmSession *olm_of(mr_olm_session *s)
{
    return (OlmSession *)(void *)s;
}

void mr_olm_session_free(mr_olm_session *s)
{
    mr_olm_object_free(&SESSION_KIND, s);
}

static mr_code check_device(const mr_olm_device *d, mr_err *err)
{
    if (!d || !d->user_id || d->user_id[0] != '@' || !d->device_id || !d->device_id[0])
        return mr_err_set(err, MR_EINVAL, "an Olm session needs the other device's user ID and device ID");
    mr_code rc = mr_olm_check_b64("the device's curve25519 key", d->curve25519, 32, err);
    if (rc == MR_OK)
        rc = mr_olm_check_b64("the device's ed25519 key", d->ed25519, 32, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "device %s of %s", d->device_id, d->user_id);
    return rc;
}

mr_code mr_olm_session_new_outbound(mr_olm_account *a, const mr_olm_device *device, const json_t *claimed_key,
                                    mr_olm_session **out, mr_err *err)
{
    *out = NULL;
    mr_code rc = check_device(device, err);
    if (rc != MR_OK)
        return rc;
    const char *otk = json_string_value(json_object_get(claimed_key, "key"));
    rc = mr_olm_check_b64("the claimed one-time key's \"key\"", otk, 32, err);
    if (rc == MR_OK) {
        char key_id[300];
        snprintf(key_id, sizeof key_id, "ed25519:%s", device->device_id);
        rc = mr_olm_verify_json(claimed_key, device->user_id, key_id, device->ed25519, err);
    }
    if (rc != MR_OK) {
        mr_err_prefix(err, "one-time key claimed for device %s of %s", device->device_id, device->user_id);
        return rc;
    }
    mr_olm_session *s = mr_olm_object_new(&SESSION_KIND, err);
    if (!s)
        return MR_ENOMEM;
    size_t rlen = olm_create_outbound_session_random_length(olm_of(s));
    unsigned char *rnd = NULL;
    rc = mr_olm_random_new(rlen, &rnd, err);
    if (rc == MR_OK && olm_create_outbound_session(olm_of(s), a->olm, device->curve25519, strlen(device->curve25519),
                                                   otk, strlen(otk), rnd, rlen) == olm_error())
        rc = mr_olm_object_fail(&SESSION_KIND, s, "creating an outbound Olm session", err);
    mr_olm_free_secret(rnd, rlen);
    if (rc != MR_OK) {
        mr_olm_session_free(s);
        return rc;
    }
    *out = s;
    return MR_OK;
}

/* Reads a varint; false when it runs past end or past 64 bits. */
static bool read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* The pre-key message framing (Olm spec: version 3, then one_time_key 0x0A, base_key 0x12,
 * identity_key 0x1A of 32 bytes each and message 0x22). libolm 3.2 dereferences a missing key
 * field when it makes an inbound session, so a message without all four never reaches it. */
static mr_code check_pre_key_framing(const char *body, mr_err *err)
{
    size_t len = strlen(body), n = 0;
    unsigned char *raw = malloc(len);
    if (!raw)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading a pre-key message");
    mr_code rc = mr_b64_decode(body, len, MR_B64_STD_TOO, raw, len, &n, err);
    const unsigned char *p = raw + 1, *end = raw + n;
    /* Bit k set once field k (1 one-time key, 2 base key, 3 identity key, 4 message) is seen. */
    unsigned seen = 0;
    if (rc == MR_OK && (n < 1 || raw[0] != 3))
        rc = mr_err_set(err, MR_EINVAL, "the pre-key message is not Olm version 3");
    while (rc == MR_OK && p < end) {
        uint64_t tag = 0, value = 0;
        if (!read_varint(&p, end, &tag) || !read_varint(&p, end, &value) ||
            ((tag & 7) == 2 && value > (uint64_t)(end - p)) || ((tag & 7) != 0 && (tag & 7) != 2)) {
            rc = mr_err_set(err, MR_EINVAL, "the pre-key message is not well formed at byte %zu", (size_t)(p - raw));
            break;
        }
        if ((tag & 7) != 2)
            continue;
        unsigned field = (unsigned)(tag >> 3);
        if (field >= 1 && field <= 4 && (field == 4 ? value > 0 : value == 32))
            seen |= 1u << field;
        p += value;
    }
    if (rc == MR_OK && seen != 0x1e)
        rc = mr_err_set(err, MR_EINVAL, "the pre-key message lacks its %s",
                        !(seen & 2) ? "one-time key" : !(seen & 4) ? "base key" : !(seen & 8) ? "identity key"
                                                                                            : "inner message");
    free(raw);
    return rc;
}

static mr_code check_message(int type, const char *body, mr_err *err)
{
    if (type != MR_OLM_MSG_PRE_KEY && type != MR_OLM_MSG_NORMAL)
        return mr_err_set(err, MR_EINVAL, "Olm message type %d is neither 0 (pre-key) nor 1 (normal)", type);
    mr_code rc = mr_olm_check_b64("the Olm message body", body, 0, err);
    if (rc == MR_OK && !body[0])
        rc = mr_err_set(err, MR_EINVAL, "the Olm message body is empty");
    if (rc == MR_OK && type == MR_OLM_MSG_PRE_KEY)
        rc = check_pre_key_framing(body, err);
    return rc;
}

mr_code mr_olm_session_decrypt(mr_olm_session *s, int type, const char *body, char **plaintext, size_t *len,
                               mr_err *err)
{
    *plaintext = NULL;
    *len = 0;
    mr_code rc = check_message(type, body, err);
    char *copy = NULL;
    size_t clen = 0;
    if (rc == MR_OK)
        rc = mr_olm_copy(body, "the Olm message body", &copy, &clen, err);
    if (rc != MR_OK)
        return rc;
    /* The plaintext is shorter than the message's decoded bytes, which bound it without asking
     * libolm to decode the message one more time. */
    size_t max = clen * 3 / 4;
    char *plain = mr_olm_mem_new(max + 1, "an Olm plaintext", err);
    if (!plain) {
        free(copy);
        return MR_ENOMEM;
    }
    size_t n = olm_decrypt(olm_of(s), (size_t)type, copy, clen, plain, max);
    free(copy);
    if (n == olm_error()) {
        mr_olm_free_secret(plain, max + 1);
        return mr_olm_object_fail(&SESSION_KIND, s, "decrypting an Olm message", err);
    }
    /* Past the text libolm leaves the block padding; zero it so the buffer holds only the text. */
    explicit_bzero(plain + n, max + 1 - n);
    *plaintext = plain;
    *len = n;
    return MR_OK;
}

mr_code mr_olm_session_new_inbound(mr_olm_account *a, const char *their_curve25519, const char *body,
                                   mr_olm_session **out, char **plaintext, size_t *len, mr_err *err)
{
    *out = NULL;
    *plaintext = NULL;
    *len = 0;
    mr_code rc = mr_olm_check_b64("the sender's curve25519 key", their_curve25519, 32, err);
    if (rc == MR_OK)
        rc = check_message(MR_OLM_MSG_PRE_KEY, body, err);
    char *copy = NULL;
    size_t clen = 0;
    if (rc == MR_OK)
        rc = mr_olm_copy(body, "the pre-key message", &copy, &clen, err);
    if (rc != MR_OK)
        return rc;
    mr_olm_session *s = mr_olm_object_new(&SESSION_KIND, err);
    if (!s) {
        free(copy);
        return MR_ENOMEM;
    }
    if (olm_create_inbound_session_from(olm_of(s), a->olm, their_curve25519, strlen(their_curve25519), copy, clen) ==
        olm_error())
        rc = mr_olm_object_fail(&SESSION_KIND, s, "creating an inbound Olm session from a pre-key message", err);
    free(copy);
    if (rc == MR_OK)
        rc = mr_olm_session_decrypt(s, MR_OLM_MSG_PRE_KEY, body, plaintext, len, err);
    if (rc != MR_OK) {
        mr_olm_session_free(s);
        return rc;
    }
    /* Fails only when the session used the fallback key, which stays until it is replaced. */
    olm_remove_one_time_keys(a->olm, olm_of(s));
    *out = s;
    return MR_OK;
}

bool mr_olm_session_matches_inbound(mr_olm_session *s, const char *their_curve25519, const char *body)
{
    if (mr_olm_check_b64("the sender's curve25519 key", their_curve25519, 32, NULL) != MR_OK ||
        check_message(MR_OLM_MSG_PRE_KEY, body, NULL) != MR_OK)
        return false;
    char *copy = NULL;
    size_t clen = 0;
    if (mr_olm_copy(body, "the pre-key message", &copy, &clen, NULL) != MR_OK)
        return false;
    size_t r = olm_matches_inbound_session_from(olm_of(s), their_curve25519, strlen(their_curve25519), copy, clen);
    free(copy);
    return r == 1;
}

mr_code mr_olm_session_encrypt(mr_olm_session *s, const void *plaintext, size_t len, int *type, char **body,
                               mr_err *err)
{
    *body = NULL;
    *type = (int)olm_encrypt_message_type(olm_of(s));
    size_t rlen = olm_encrypt_random_length(olm_of(s));
    size_t mlen = olm_encrypt_message_length(olm_of(s), len);
    unsigned char *rnd = NULL;
    mr_code rc = mr_olm_random_new(rlen, &rnd, err);
    if (rc != MR_OK)
        return rc;
    char *msg = malloc(mlen + 1);
    if (!msg)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory encrypting an Olm message of %zu bytes", len);
    else if (olm_encrypt(olm_of(s), plaintext, len, rnd, rlen, msg, mlen) == olm_error())
        rc = mr_olm_object_fail(&SESSION_KIND, s, "encrypting an Olm message", err);
    mr_olm_free_secret(rnd, rlen);
    if (rc != MR_OK) {
        free(msg);
        return rc;
    }
    msg[mlen] = '\0';
    *body = msg;
    return MR_OK;
}

void mr_olm_session_id(mr_olm_session *s, char id[MR_OLM_KEY_SIZE])
{
    size_t n = olm_session_id(olm_of(s), id, MR_OLM_KEY_SIZE - 1);
    id[n == olm_error() ? 0 : n] = '\0';
}

mr_code mr_olm_session_pickle(mr_olm_session *s, const void *key, size_t key_len, char **pickle, mr_err *err)
{
    return mr_olm_object_pickle(&SESSION_KIND, s, key, key_len, pickle, err);
}

mr_code mr_olm_session_unpickle(const char *pickle, const void *key, size_t key_len, mr_olm_session **out,
                                mr_err *err)
{
    void *obj = NULL;
    mr_code rc = mr_olm_object_unpickle(&SESSION_KIND, pickle, key, key_len, &obj, err);
    *out = obj;
    return rc;
}
