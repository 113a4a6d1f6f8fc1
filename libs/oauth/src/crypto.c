/* crypto.c -- digests, random tokens, PKCE challenges and secret comparison on OpenSSL. */
#include "mindroom/oauth.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "mindroom/b64.h"

_Static_assert(MR_B64URL_LEN(32) == MR_OAUTH_TOKEN_LEN, "a token is 32 bytes in base64url");

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
    mr_b64url_encode(d, sizeof d, out);
}

mr_code mr_oauth_random_token(char out[MR_OAUTH_TOKEN_LEN + 1], mr_err *err)
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return mr_err_set(err, MR_EINTERNAL, "OpenSSL RAND_bytes failed: no random token");
    mr_b64url_encode(raw, sizeof raw, out);
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
