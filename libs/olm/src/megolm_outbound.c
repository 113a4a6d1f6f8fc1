/* megolm_outbound.c -- outbound Megolm sessions: the ratchet a device encrypts room messages
 * with, its session key for m.room_key, and its pickles. */
#include "olm_internal.h"

#include <stdlib.h>

#define OUTBOUND_FAIL(g, err, what)                                                          \
    mr_olm_fail(err, olm_outbound_group_session_last_error_code((g)->olm),                   \
                olm_outbound_group_session_last_error((g)->olm), what)

static mr_olm_outbound_group *outbound_alloc(mr_err *err)
{
    mr_olm_outbound_group *g = calloc(1, sizeof *g);
    void *mem = g ? mr_olm_mem_new(olm_outbound_group_session_size(), "a Megolm session", err) : NULL;
    if (!mem) {
        free(g);
        mr_err_set(err, MR_ENOMEM, "out of memory allocating an outbound Megolm session");
        return NULL;
    }
    g->olm = olm_outbound_group_session(mem);
    return g;
}

void mr_olm_outbound_group_free(mr_olm_outbound_group *g)
{
    if (!g)
        return;
    olm_clear_outbound_group_session(g->olm);
    mr_olm_mem_free(g->olm, olm_outbound_group_session_size());
    free(g);
}

mr_code mr_olm_outbound_group_new(mr_olm_outbound_group **out, mr_err *err)
{
    *out = NULL;
    mr_olm_outbound_group *g = outbound_alloc(err);
    if (!g)
        return MR_ENOMEM;
    size_t rlen = olm_init_outbound_group_session_random_length(g->olm);
    unsigned char *rnd = NULL;
    mr_code rc = mr_olm_random_new(rlen, &rnd, err);
    if (rc == MR_OK && olm_init_outbound_group_session(g->olm, rnd, rlen) == olm_error())
        rc = OUTBOUND_FAIL(g, err, "creating an outbound Megolm session");
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
    size_t n = olm_outbound_group_session_id(g->olm, (uint8_t *)id, MR_OLM_KEY_SIZE - 1);
    id[n == olm_error() ? 0 : n] = '\0';
}

uint32_t mr_olm_outbound_group_index(mr_olm_outbound_group *g)
{
    return olm_outbound_group_session_message_index(g->olm);
}

mr_code mr_olm_outbound_group_key(mr_olm_outbound_group *g, char **session_key, mr_err *err)
{
    *session_key = NULL;
    size_t len = olm_outbound_group_session_key_length(g->olm);
    char *k = mr_olm_mem_new(len + 1, "a Megolm session key", err);
    if (!k)
        return MR_ENOMEM;
    size_t n = olm_outbound_group_session_key(g->olm, (uint8_t *)k, len);
    if (n == olm_error()) {
        mr_olm_free_secret(k, len + 1);
        return OUTBOUND_FAIL(g, err, "reading the Megolm session key");
    }
    k[n] = '\0';
    *session_key = k;
    return MR_OK;
}

mr_code mr_olm_outbound_group_encrypt(mr_olm_outbound_group *g, const void *plaintext, size_t len,
                                      char **ciphertext, mr_err *err)
{
    *ciphertext = NULL;
    size_t mlen = olm_group_encrypt_message_length(g->olm, len);
    char *msg = malloc(mlen + 1);
    if (!msg)
        return mr_err_set(err, MR_ENOMEM, "out of memory encrypting a Megolm message of %zu bytes", len);
    size_t n = olm_group_encrypt(g->olm, plaintext, len, (uint8_t *)msg, mlen);
    if (n == olm_error()) {
        free(msg);
        return OUTBOUND_FAIL(g, err, "encrypting a Megolm message");
    }
    msg[n] = '\0';
    *ciphertext = msg;
    return MR_OK;
}

mr_code mr_olm_outbound_group_pickle(mr_olm_outbound_group *g, const void *key, size_t key_len, char **pickle,
                                     mr_err *err)
{
    *pickle = NULL;
    mr_code rc = mr_olm_check_pickle_key(key, key_len, "pickling an outbound Megolm session", err);
    if (rc != MR_OK)
        return rc;
    size_t len = olm_pickle_outbound_group_session_length(g->olm);
    char *p = malloc(len + 1);
    if (!p)
        return mr_err_set(err, MR_ENOMEM, "out of memory pickling an outbound Megolm session");
    size_t n = olm_pickle_outbound_group_session(g->olm, key, key_len, p, len);
    if (n == olm_error()) {
        free(p);
        return OUTBOUND_FAIL(g, err, "pickling an outbound Megolm session");
    }
    p[n] = '\0';
    *pickle = p;
    return MR_OK;
}

mr_code mr_olm_outbound_group_unpickle(const char *pickle, const void *key, size_t key_len,
                                       mr_olm_outbound_group **out, mr_err *err)
{
    *out = NULL;
    char *copy = NULL;
    size_t len = 0;
    mr_code rc = mr_olm_unpickle_input(pickle, key, key_len, "unpickling an outbound Megolm session", &copy, &len, err);
    if (rc != MR_OK)
        return rc;
    mr_olm_outbound_group *g = outbound_alloc(err);
    if (!g) {
        free(copy);
        return MR_ENOMEM;
    }
    if (olm_unpickle_outbound_group_session(g->olm, key, key_len, copy, len) == olm_error())
        rc = OUTBOUND_FAIL(g, err, "unpickling an outbound Megolm session");
    free(copy);
    if (rc != MR_OK) {
        mr_olm_outbound_group_free(g);
        return rc;
    }
    *out = g;
    return MR_OK;
}
