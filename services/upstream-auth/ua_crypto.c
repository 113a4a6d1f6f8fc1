/* ua_crypto.c -- digests, random tokens, base64url and secret comparison on OpenSSL. */
#include "ua_crypto.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

void ua_b64url(const void *data, size_t n, char *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

void ua_sha256(const void *data, size_t n, unsigned char out[UA_SHA256_LEN])
{
    EVP_Digest(data, n, out, NULL, EVP_sha256(), NULL);
}

void ua_sha256_hex(const char *s, char out[UA_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[UA_SHA256_LEN];
    ua_sha256(s, strlen(s), d);
    for (size_t i = 0; i < sizeof d; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[UA_SHA256_HEX_LEN] = '\0';
}

mr_code ua_random_token(char out[UA_TOKEN_LEN + 1], mr_err *err)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return mr_err_set(err, MR_EINTERNAL, "OpenSSL RAND_bytes failed: no random token");
    ua_b64url(raw, sizeof raw, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return MR_OK;
}

/* Comparing digests makes the time independent of the length as well as of the bytes. */
bool ua_secret_equal(const char *a, const char *b)
{
    unsigned char da[UA_SHA256_LEN], db[UA_SHA256_LEN];
    ua_sha256(a, strlen(a), da);
    ua_sha256(b, strlen(b), db);
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}
