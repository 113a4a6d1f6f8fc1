/* megolm_inbound.c -- inbound Megolm sessions: made from an m.room_key or an exported key,
 * decrypting room messages with their index, exporting, pickles. */
#include "olm_internal.h"

#include <stdlib.h>
#include <string.h>

MR_OLM_KIND(GROUP_KIND, "an inbound Megolm session", olm_inbound_group_session_size, olm_inbound_group_session,
            olm_clear_inbound_group_session, olm_pickle_inbound_group_session_length,
            olm_pickle_inbound_group_session, olm_unpickle_inbound_group_session,
            olm_inbound_group_session_last_error, olm_inbound_group_session_last_error_code);

/* An mr_olm_inbound_group is the libolm session's memory. */
static OlmInboundGroupSession *olm_of(mr_olm_inbound_group *g)
{
    return (OlmInboundGroupSession *)(void *)g;
}

void mr_olm_inbound_group_free(mr_olm_inbound_group *g)
{
    mr_olm_object_free(&GROUP_KIND, g);
}

typedef size_t (*inbound_init_fn)(OlmInboundGroupSession *, const uint8_t *, size_t);

/* A session from base64 key text through init (libolm's init or import), which decodes a copy. */
static mr_code inbound_from(const char *key, inbound_init_fn init, const char *what, mr_olm_inbound_group **out,
                            mr_err *err)
{
    *out = NULL;
    mr_code rc = mr_olm_check_b64(what, key, 0, err);
    char *copy = NULL;
    size_t len = 0;
    if (rc == MR_OK)
        rc = mr_olm_copy(key, what, &copy, &len, err);
    if (rc != MR_OK)
        return rc;
    mr_olm_inbound_group *g = mr_olm_object_new(&GROUP_KIND, err);
    if (!g) {
        mr_olm_free_secret(copy, len);
        return MR_ENOMEM;
    }
    if (init(olm_of(g), (const uint8_t *)copy, len) == olm_error())
        rc = mr_olm_object_fail(&GROUP_KIND, g, what, err);
    mr_olm_free_secret(copy, len);
    if (rc != MR_OK) {
        mr_olm_inbound_group_free(g);
        return rc;
    }
    *out = g;
    return MR_OK;
}

mr_code mr_olm_inbound_group_new(const char *session_key, mr_olm_inbound_group **out, mr_err *err)
{
    return inbound_from(session_key, olm_init_inbound_group_session, "the m.room_key session_key", out, err);
}

mr_code mr_olm_inbound_group_import(const char *exported_key, mr_olm_inbound_group **out, mr_err *err)
{
    return inbound_from(exported_key, olm_import_inbound_group_session, "the exported Megolm session key", out,
                        err);
}

mr_code mr_olm_inbound_group_export(mr_olm_inbound_group *g, uint32_t index, char **exported_key, mr_err *err)
{
    *exported_key = NULL;
    size_t len = olm_export_inbound_group_session_length(olm_of(g));
    char *k = mr_olm_mem_new(len + 1, "an exported Megolm key", err);
    if (!k)
        return MR_ENOMEM;
    size_t n = olm_export_inbound_group_session(olm_of(g), (uint8_t *)k, len, index);
    if (n == olm_error()) {
        mr_olm_free_secret(k, len + 1);
        return mr_olm_object_fail(&GROUP_KIND, g, "exporting a Megolm session key", err);
    }
    k[n] = '\0';
    *exported_key = k;
    return MR_OK;
}

void mr_olm_inbound_group_id(mr_olm_inbound_group *g, char id[MR_OLM_KEY_SIZE])
{
    size_t n = olm_inbound_group_session_id(olm_of(g), (uint8_t *)id, MR_OLM_KEY_SIZE - 1);
    id[n == olm_error() ? 0 : n] = '\0';
}

uint32_t mr_olm_inbound_group_first_index(const mr_olm_inbound_group *g)
{
    return olm_inbound_group_session_first_known_index((const OlmInboundGroupSession *)(const void *)g);
}

mr_code mr_olm_inbound_group_decrypt(mr_olm_inbound_group *g, const char *ciphertext, char **plaintext,
                                     size_t *len, uint32_t *index, mr_err *err)
{
    *plaintext = NULL;
    *len = 0;
    *index = 0;
    mr_code rc = mr_olm_check_b64("the Megolm ciphertext", ciphertext, 0, err);
    if (rc == MR_OK && !ciphertext[0])
        rc = mr_err_set(err, MR_EINVAL, "the Megolm ciphertext is empty");
    char *copy = NULL;
    size_t clen = 0;
    if (rc == MR_OK)
        rc = mr_olm_copy(ciphertext, "the Megolm ciphertext", &copy, &clen, err);
    if (rc != MR_OK)
        return rc;
    /* The plaintext is shorter than the message's decoded bytes, which bound it without asking
     * libolm to decode the message one more time. */
    size_t max = clen * 3 / 4;
    char *plain = mr_olm_mem_new(max + 1, "a Megolm plaintext", err);
    if (!plain) {
        free(copy);
        return MR_ENOMEM;
    }
    uint32_t idx = 0;
    size_t n = olm_group_decrypt(olm_of(g), (uint8_t *)copy, clen, (uint8_t *)plain, max, &idx);
    free(copy);
    if (n == olm_error()) {
        mr_olm_free_secret(plain, max + 1);
        return mr_olm_object_fail(&GROUP_KIND, g, "decrypting a Megolm message", err);
    }
    /* Past the text libolm leaves the block padding; zero it so the buffer holds only the text. */
    explicit_bzero(plain + n, max + 1 - n);
    *plaintext = plain;
    *len = n;
    *index = idx;
    return MR_OK;
}

mr_code mr_olm_inbound_group_pickle(mr_olm_inbound_group *g, const void *key, size_t key_len, char **pickle,
                                    mr_err *err)
{
    return mr_olm_object_pickle(&GROUP_KIND, g, key, key_len, pickle, err);
}

mr_code mr_olm_inbound_group_unpickle(const char *pickle, const void *key, size_t key_len, mr_olm_inbound_group **out,
                                       mr_err *err)
{
    void *obj = NULL;
    mr_code rc = mr_olm_object_unpickle(&GROUP_KIND, pickle, key, key_len, &obj, err);
    *out = obj;
    return rc;
}
