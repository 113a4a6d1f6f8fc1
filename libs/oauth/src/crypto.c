/* crypto.c -- digests, random tokens, base64url, PKCE challenges and secret comparison on OpenSSL. */
#include "mindroom/oauth.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* Base64url without padding of n bytes into out (room for 4*ceil(n/3)+1 bytes). */
static void b64url(const void *data, size_t n, char *out)
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

void mr_oauth_sha256(const void *data, size_t n, unsigned char out[MR_OAUTH_SHA256_LEN])
{
    EVP_Digest(data, n, out, NULL, EVP_sha256(), NULL);
}

void mr_oauth_sha256_hex(const char *s, char out[MR_OAUTH_SHA256_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[MR_OAUTH_SHA256_LEN];
    mr_oauth_sha256(s, strlen(s), d);
    for (size_t i = 0; i < sizeof d; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[MR_OAUTH_SHA256_HEX_LEN] = '\0';
}

void mr_oauth_pkce_challenge(const char *verifier, char out[MR_OAUTH_TOKEN_LEN + 1])
{
    unsigned char d[MR_OAUTH_SHA256_LEN];
    mr_oauth_sha256(verifier, strlen(verifier), d);
    b64url(d, sizeof d, out);
}

mr_code mr_oauth_random_token(char out[MR_OAUTH_TOKEN_LEN + 1], mr_err *err)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return mr_err_set(err, MR_EINTERNAL, "OpenSSL RAND_bytes failed: no random token");
    b64url(raw, sizeof raw, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return MR_OK;
}

/* Comparing digests makes the time independent of the length as well as of the bytes. */
bool mr_oauth_secret_equal(const char *a, const char *b)
{
    unsigned char da[MR_OAUTH_SHA256_LEN], db[MR_OAUTH_SHA256_LEN];
    mr_oauth_sha256(a, strlen(a), da);
    mr_oauth_sha256(b, strlen(b), db);
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}
