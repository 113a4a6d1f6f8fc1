/* ua_crypto.h -- digests, random tokens and base64url shared by the connect-token library and the
 * service (internal; not part of the public header). */
#ifndef MINDROOM_UA_CRYPTO_H
#define MINDROOM_UA_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

#define UA_SHA256_LEN 32
#define UA_SHA256_HEX_LEN 64
/* base64url without padding of 32 random bytes. */
#define UA_TOKEN_LEN 43

/* Base64url without padding of n bytes into out (room for 4*ceil(n/3)+1 bytes). */
void ua_b64url(const void *data, size_t n, char *out);
void ua_sha256(const void *data, size_t n, unsigned char out[UA_SHA256_LEN]);
/* Lower-case hex SHA-256 of a string. */
void ua_sha256_hex(const char *s, char out[UA_SHA256_HEX_LEN + 1]);
/* UA_TOKEN_LEN characters of base64url from 32 bytes of OpenSSL's CSPRNG. */
mr_code ua_random_token(char out[UA_TOKEN_LEN + 1], mr_err *err);
/* Equality of two secrets in time that depends on neither content nor length. */
bool ua_secret_equal(const char *a, const char *b);

#endif
