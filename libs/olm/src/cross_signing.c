/* cross_signing.c -- cross-signing keys (Ed25519 through olm_pk_signing) and the bodies of
 * /keys/device_signing/upload and /keys/signatures/upload. */
#include "olm_internal.h"

#include <stdlib.h>
#include <string.h>

void mr_olm_signing_key_free(mr_olm_signing_key *k)
{
    if (!k)
        return;
    olm_clear_pk_signing(k->olm);
    mr_olm_mem_free(k->olm, olm_pk_signing_size());
    mr_olm_free_secret(k, sizeof *k);
}

mr_code mr_olm_signing_key_from_seed(const void *seed, size_t len, mr_olm_signing_key **out, mr_err *err)
{
    *out = NULL;
    if (!seed || len != olm_pk_signing_seed_length())
        return mr_err_set(err, MR_EINVAL, "a cross-signing seed has %zu bytes, not %zu", seed ? len : 0,
                          olm_pk_signing_seed_length());
    mr_olm_signing_key *k = calloc(1, sizeof *k);
    void *mem = k ? mr_olm_mem_new(olm_pk_signing_size(), "a cross-signing key", err) : NULL;
    if (!mem) {
        free(k);
        return mr_err_set(err, MR_ENOMEM, "out of memory allocating a cross-signing key");
    }
    k->olm = olm_pk_signing(mem);
    memcpy(k->seed, seed, sizeof k->seed);
    if (olm_pk_signing_key_from_seed(k->olm, k->public_key, MR_OLM_KEY_SIZE - 1, k->seed, sizeof k->seed) ==
        olm_error()) {
        mr_code rc = mr_olm_fail(err, olm_pk_signing_last_error_code(k->olm), olm_pk_signing_last_error(k->olm),
                                 "deriving a cross-signing key from its seed");
        mr_olm_signing_key_free(k);
        return rc;
    }
    k->public_key[MR_OLM_KEY_SIZE - 1] = '\0';
    *out = k;
    return MR_OK;
}

mr_code mr_olm_signing_key_new(mr_olm_signing_key **out, mr_err *err)
{
    *out = NULL;
    unsigned char seed[32];
    mr_code rc = mr_olm_random(seed, sizeof seed, err);
    if (rc == MR_OK)
        rc = mr_olm_signing_key_from_seed(seed, sizeof seed, out, err);
    explicit_bzero(seed, sizeof seed);
    return rc;
}

const char *mr_olm_signing_key_public(const mr_olm_signing_key *k)
{
    return k->public_key;
}

void mr_olm_signing_key_seed(const mr_olm_signing_key *k, unsigned char seed[32])
{
    memcpy(seed, k->seed, sizeof k->seed);
}

static mr_code pk_sign_cb(void *ctx, const void *msg, size_t len, char sig[MR_OLM_SIGNATURE_SIZE], mr_err *err)
{
    mr_olm_signing_key *k = ctx;
    size_t n = olm_pk_sign(k->olm, msg, len, (uint8_t *)sig, MR_OLM_SIGNATURE_SIZE - 1);
    if (n == olm_error())
        return mr_olm_fail(err, olm_pk_signing_last_error_code(k->olm), olm_pk_signing_last_error(k->olm),
                           "signing with a cross-signing key");
    sig[MR_OLM_SIGNATURE_SIZE - 1] = '\0';
    return MR_OK;
}

mr_code mr_olm_signing_key_sign_json(mr_olm_signing_key *k, json_t *obj, const char *user_id, mr_err *err)
{
    char key_id[MR_OLM_KEY_SIZE + 8];
    snprintf(key_id, sizeof key_id, "ed25519:%s", k->public_key);
    return mr_olm_sign_json_with(obj, user_id, key_id, pk_sign_cb, k, err);
}

/* {"user_id", "usage": [usage], "keys": {"ed25519:<pub>": "<pub>"}} */
static mr_code cross_signing_key(const mr_olm_signing_key *k, const char *user_id, const char *usage, json_t **out,
                                 mr_err *err)
{
    char key_id[MR_OLM_KEY_SIZE + 8];
    snprintf(key_id, sizeof key_id, "ed25519:%s", k->public_key);
    *out = json_pack("{ss s[s] s{ss}}", "user_id", user_id, "usage", usage, "keys", key_id, k->public_key);
    return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory building the %s key", usage);
}

static mr_code check_user_id(const char *user_id, mr_err *err)
{
    if (!user_id || user_id[0] != '@')
        return mr_err_set(err, MR_EINVAL, "cross-signing needs a user ID (\"@user:server\"), got %s",
                          user_id ? user_id : "none");
    return MR_OK;
}

mr_code mr_olm_cross_signing_upload_body(mr_olm_signing_key *master, mr_olm_signing_key *self_signing,
                                         const char *user_id, json_t **body, mr_err *err)
{
    *body = NULL;
    mr_code rc = check_user_id(user_id, err);
    if (rc != MR_OK)
        return rc;
    json_t *mk = NULL, *ssk = NULL, *b = json_object();
    if (!b)
        return mr_err_set(err, MR_ENOMEM, "out of memory building the /keys/device_signing/upload body");
    rc = cross_signing_key(master, user_id, "master", &mk, err);
    if (rc == MR_OK)
        rc = mr_olm_json_set(b, "master_key", mk, err);
    if (rc == MR_OK)
        rc = cross_signing_key(self_signing, user_id, "self_signing", &ssk, err);
    if (rc == MR_OK)
        rc = mr_olm_signing_key_sign_json(master, ssk, user_id, err);
    if (rc == MR_OK) {
        rc = mr_olm_json_set(b, "self_signing_key", ssk, err);
        ssk = NULL;
    }
    json_decref(ssk);
    if (rc != MR_OK) {
        json_decref(b);
        return rc;
    }
    *body = b;
    return MR_OK;
}

mr_code mr_olm_cross_signing_device_signature(mr_olm_signing_key *self_signing, mr_olm_account *a,
                                              const char *user_id, const char *device_id, json_t **body,
                                              mr_err *err)
{
    *body = NULL;
    json_t *dk = NULL;
    mr_code rc = mr_olm_account_device_keys(a, user_id, device_id, &dk, err);
    if (rc == MR_OK)
        rc = mr_olm_signing_key_sign_json(self_signing, dk, user_id, err);
    if (rc != MR_OK) {
        json_decref(dk);
        return rc;
    }
    *body = json_pack("{s{so}}", user_id, device_id, dk);
    return *body ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory building the /keys/signatures/upload body");
}
