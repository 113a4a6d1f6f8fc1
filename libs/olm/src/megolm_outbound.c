/* megolm_outbound.c -- outbound Megolm sessions: the ratchet a device encrypts room messages
 * with, its session key for m.room_key, and its pickles. */
#include "olm_internal.h"

#include <stdlib.h>

MR_OLM_KIND(GROUP_KIND, "an outbound Megolm session", olm_outbound_group_session_size, olm_outbound_group_session,
            olm_clear_outbound_group_session, olm_pickle_outbound_group_session_length,
            olm_pickle_outbound_group_session, olm_unpickle_outbound_group_session,
            olm_outbound_group_session_last_error, olm_outbound_group_session_last_error_code);

/* An mr_olm_outbound_group is the libolm session's memory. */
static OlmOutboundGroupSession *olm_of(mr_olm_outbound_group *g)
{
    return (OlmOutboundGroupSession *)(void *)g;
}

void mr_olm_outbound_group_free(mr_olm_outbound_group *g)
{
    mr_olm_object_free(&GROUP_KIND, g);
}

mr_code mr_olm_outbound_group_new(mr_olm_outbound_group **out, mr_err *err)
{
    *out = NULL;
    mr_olm_outbound_group *g = mr_olm_object_new(&GROUP_KIND, err);
    if (!g)
        return MR_ENOMEM;
    size_t rlen = olm_init_outbound_group_session_random_length(olm_of(g));
    unsigned char *rnd = NULL;
    mr_code rc = mr_olm_random_new(rlen, &rnd, err);
    if (rc == MR_OK && olm_init_outbound_group_session(olm_of(g), rnd, rlen) == olm_error())
        rc = mr_olm_object_fail(&GROUP_KIND, g, "creating an outbound Megolm session", err);
    mr_olm_free_secret(rnd, rlen);
    if (rc != MR_OK) {
        mr_olm_outbound_group_free(g);
        return rc;
    }
    *out = g;
    return MR_OK;
}

void mr_olm_outbound_group_id(mr_olm_outbound_group *g, char id[MR_OLM_KEY_SIZE])
{
    size_t n = olm_outbound_group_session_id(olm_of(g), (uint8_t *)id, MR_OLM_KEY_SIZE - 1);
    id[n == olm_error() ? 0 : n] = '\0';
}

uint32_t mr_olm_outbound_group_index(mr_olm_outbound_group *g)
{
    return olm_outbound_group_session_message_index(olm_of(g));
}

mr_code mr_olm_outbound_group_key(mr_olm_outbound_group *g, char **session_key, mr_err *err)
{
    *session_key = NULL;
    size_t len = olm_outbound_group_session_key_length(olm_of(g));
    char *k = mr_olm_mem_new(len + 1, "a Megolm session key", err);
    if (!k)
        return MR_ENOMEM;
    size_t n = olm_outbound_group_session_key(olm_of(g), (uint8_t *)k, len);
    if (n == olm_error()) {
        mr_olm_free_secret(k, len + 1);
        return mr_olm_object_fail(&GROUP_KIND, g, "reading the Megolm session key", err);
    }
    k[n] = '\0';
    *session_key = k;
    return MR_OK;
}

mr_code mr_olm_outbound_group_encrypt(mr_olm_outbound_group *g, const void *plaintext, size_t len,
                                      char **ciphertext, mr_err *err)
{
    *ciphertext = NULL;
    size_t mlen = olm_group_encrypt_message_length(olm_of(g), len);
    char *msg = malloc(mlen + 1);
    if (!msg)
        return mr_err_set(err, MR_ENOMEM, "out of memory encrypting a Megolm message of %zu bytes", len);
    size_t n = olm_group_encrypt(olm_of(g), plaintext, len, (uint8_t *)msg, mlen);
    if (n == olm_error()) {
        free(msg);
        return mr_olm_object_fail(&GROUP_KIND, g, "encrypting a Megolm message", err);
    }
    msg[n] = '\0';
    *ciphertext = msg;
    return MR_OK;
}

mr_code mr_olm_outbound_group_pickle(mr_olm_outbound_group *g, const void *key, size_t key_len, char **pickle,
                                     mr_err *err)
{
    return mr_olm_object_pickle(&GROUP_KIND, g, key, key_len, pickle, err);
}

mr_code mr_olm_outbound_group_unpickle(const char *pickle, const void *key, size_t key_len, mr_olm_outbound_group **out,
                                       mr_err *err)
{
    void *obj = NULL;
    mr_code rc = mr_olm_object_unpickle(&GROUP_KIND, pickle, key, key_len, &obj, err);
    *out = obj;
    return rc;
}
