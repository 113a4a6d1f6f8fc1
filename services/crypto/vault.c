/* vault.c -- crypto's state in the store: sealed JSON for pickles, plain JSON for public keys
 * and ciphertexts, and the pickle key derived from the instance secret. */
#include "crypto_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#define PICKLE_LABEL "mindroom-crypto-pickle"

mr_code crypto_vault_init(crypto_vault *v, mr_store *store, const unsigned char *secret, size_t len, mr_err *err)
{
    v->store = store;
    unsigned int n = 0;
    if (len == 0 || !HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)PICKLE_LABEL, strlen(PICKLE_LABEL),
                          v->pickle_key, &n) || n != sizeof v->pickle_key)
        return mr_err_set(err, MR_EINTERNAL, "deriving the pickle key from MINDROOM_INSTANCE_SECRET failed");
    return MR_OK;
}

void crypto_vault_wipe(crypto_vault *v)
{
    OPENSSL_cleanse(v->pickle_key, sizeof v->pickle_key);
}

static mr_code parse(const char *key, char *text, size_t len, bool secret, json_t **out, mr_err *err)
{
    json_error_t jerr;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (secret)
        OPENSSL_cleanse(text, len);
    free(text);
    if (!*out)
        return mr_err_set(err, MR_EINVAL, "%s in the store is not JSON: %s", key, jerr.text);
    return MR_OK;
}

mr_code crypto_vault_get(crypto_vault *v, const char *key, json_t **out, mr_err *err)
{
    char *text = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get_secret(v->store, key, &text, &len, err);
    return rc == MR_OK ? parse(key, text, len, true, out, err) : rc;
}

mr_code crypto_vault_get_plain(crypto_vault *v, const char *key, json_t **out, mr_err *err)
{
    char *text = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get(v->store, key, &text, &len, err);
    return rc == MR_OK ? parse(key, text, len, false, out, err) : rc;
}

static mr_code put(crypto_vault *v, const char *key, json_t *value, bool secret, long ttl_ms, mr_err *err)
{
    char *text = json_dumps(value, JSON_COMPACT);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory writing %s", key);
    size_t len = strlen(text);
    mr_code rc = secret ? mr_store_set_secret(v->store, key, text, len, 0, err)
                        : mr_store_set(v->store, key, text, len, ttl_ms, err);
    if (secret)
        OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

mr_code crypto_vault_put(crypto_vault *v, const char *key, json_t *value, mr_err *err)
{
    return put(v, key, value, true, 0, err);
}

mr_code crypto_vault_put_plain(crypto_vault *v, const char *key, json_t *value, long ttl_ms, mr_err *err)
{
    return put(v, key, value, false, ttl_ms, err);
}

mr_code crypto_sweep_hash(crypto_engine *e, long long now_ms, json_t *out, const char *key, crypto_sweep_fn fn,
                          mr_err *err)
{
    const crypto_sweep s = {.e = e, .now_ms = now_ms, .out = out};
    mr_store_hash h = {0};
    mr_code rc = mr_store_hgetall(e->vault.store, key, &h, err);
    for (size_t i = 0; rc == MR_OK && i < h.count; i++)
        rc = fn(&s, h.entries[i].field, h.entries[i].value, err);
    mr_store_hash_free(&h);
    return rc;
}
