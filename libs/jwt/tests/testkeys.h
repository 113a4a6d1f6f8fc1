/* testkeys.h -- keys made by OpenSSL during a test, their JWKs, and tokens signed with OpenSSL EVP
 * (never with libjwt, so the code under test does not check itself). Failures abort the test. */
#ifndef MINDROOM_JWT_TESTKEYS_H
#define MINDROOM_JWT_TESTKEYS_H

#include <stddef.h>
#include <openssl/evp.h>

typedef struct tk_key {
    EVP_PKEY *pkey;
    char kid[64];
    char alg[8];   /* what tk_sign uses: "RS256" for RSA, "ES256"/"ES384" for EC */
} tk_key;

void tk_rsa(tk_key *k, const char *kid, int bits);
void tk_ec(tk_key *k, const char *kid, const char *crv); /* "P-256" or "P-384" */
void tk_free(tk_key *k);

/* The public JWK of k as a JSON object text; `extra` (or NULL) is more members, written as
 * `"alg":"RS384","use":"sig"` without braces. Caller frees. */
char *tk_jwk(const tk_key *k, const char *extra);
/* {"keys":[a, b, ...]} of JWK texts. Caller frees. */
char *tk_jwks(const char *const *jwks, size_t n);
/* The PEM SubjectPublicKeyInfo of k, as OpenSSL writes it. Caller frees. */
char *tk_pem(const tk_key *k);

/* header.payload.signature, with header and payload given as JSON text. */
char *tk_sign(const tk_key *k, const char *header, const char *payload);
char *tk_sign_alg(const tk_key *k, const char *alg, const char *header, const char *payload);
char *tk_sign_hmac(const void *secret, size_t secret_len, const char *header, const char *payload);
/* With a given signature (may be empty). */
char *tk_join(const char *header, const char *payload, const void *sig, size_t sig_len);

/* printf into a new string. Caller frees. */
char *tk_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Base64url without padding of n bytes. Caller frees. */
char *tk_b64url(const void *data, size_t n);

#endif
