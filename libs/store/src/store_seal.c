/* store_seal.c -- AES-256-GCM sealing of secret values under a key derived from the instance secret. */
#include "store_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define SEAL_VERSION 1
#define SEAL_NONCE 12
#define SEAL_TAG 16
#define SEAL_OVERHEAD (1 + SEAL_NONCE + SEAL_TAG)
#define SEAL_INFO "mindroom-store-v1"

mr_code Mr_store_seal_derive(const unsigned char *secret, size_t secret_len,
                             unsigned char key[MR_STORE_KEY_LEN], mr_err *err)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!ctx)
        return mr_err_set(err, MR_EINTERNAL, "store secret: OpenSSL has no HKDF");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, SEAL_INFO, sizeof SEAL_INFO - 1),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, key, MR_STORE_KEY_LEN, params);
    EVP_KDF_CTX_free(ctx);
    return ok == 1 ? MR_OK : mr_err_set(err, MR_EINTERNAL, "store secret: HKDF-SHA256 failed");
}

/* The associated data binds a value to its format version and its store key. */
static int add_aad(EVP_CIPHER_CTX *ctx, unsigned char version, const char *store_key)
{
    int n;
    return EVP_CipherUpdate(ctx, NULL, &n, &version, 1) == 1 &&
           EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)store_key, (int)strlen(store_key)) == 1;
}

mr_code Mr_store_seal(const unsigned char key[MR_STORE_KEY_LEN], const char *store_key, const void *v,
                      size_t len, unsigned char **out, size_t *out_len, mr_err *err)
{
    if (len > (size_t)INT32_MAX - SEAL_OVERHEAD)
        return mr_err_set(err, MR_EINVAL, "secret value of %zu bytes is too large", len);
    unsigned char *buf = malloc(len + SEAL_OVERHEAD);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!buf || !ctx) {
        free(buf);
        EVP_CIPHER_CTX_free(ctx);
        return mr_err_set(err, MR_ENOMEM, "sealing a secret value: out of memory");
    }
    unsigned char *nonce = buf + 1, *ct = buf + 1 + SEAL_NONCE, *tag = ct + len;
    buf[0] = SEAL_VERSION;
    int n = 0, fin = 0;
    bool ok = RAND_bytes(nonce, SEAL_NONCE) == 1 &&
              EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
              add_aad(ctx, SEAL_VERSION, store_key) &&
              EVP_EncryptUpdate(ctx, ct, &n, v, (int)len) == 1 &&
              EVP_EncryptFinal_ex(ctx, ct + n, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(buf);
        return mr_err_set(err, MR_EINTERNAL, "sealing a secret value: AES-256-GCM failed");
    }
    *out = buf;
    *out_len = len + SEAL_OVERHEAD;
    return MR_OK;
}

mr_code Mr_store_unseal(const unsigned char key[MR_STORE_KEY_LEN], const char *store_key,
                        const unsigned char *in, size_t in_len, char **out, size_t *out_len, mr_err *err)
{
    /* One message for every failure: which check failed tells an attacker something and a
     * person nothing more. */
    const char *why = "wrong instance secret or corrupted value";
    if (in_len < SEAL_OVERHEAD || in_len > (size_t)INT32_MAX || in[0] != SEAL_VERSION)
        return mr_err_set(err, MR_EAUTH, "%s", why);
    size_t len = in_len - SEAL_OVERHEAD;
    const unsigned char *nonce = in + 1, *ct = in + 1 + SEAL_NONCE, *tag = ct + len;
    char *plain = malloc(len + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!plain || !ctx) {
        free(plain);
        EVP_CIPHER_CTX_free(ctx);
        return mr_err_set(err, MR_ENOMEM, "opening a secret value: out of memory");
    }
    int n = 0, fin = 0;
    bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
              add_aad(ctx, in[0], store_key) &&
              EVP_DecryptUpdate(ctx, (unsigned char *)plain, &n, ct, (int)len) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, (void *)tag) == 1 &&
              EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + n, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        /* GCM decrypts before it authenticates: wipe the unauthenticated bytes. */
        OPENSSL_cleanse(plain, len);
        free(plain);
        return mr_err_set(err, MR_EAUTH, "%s", why);
    }
    plain[len] = '\0';
    *out = plain;
    *out_len = len;
    return MR_OK;
}
