/* sig.c -- JWS signatures checked by OpenSSL on keys parsed once: RSASSA-PKCS1-v1_5 and ECDSA. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "jwt_internal.h"

/* The largest ECDSA half we accept: P-384's 48 bytes. */
#define EC_HALF_MAX 48

static const char *digest_of(ja_alg alg)
{
    switch (alg) {
    case JA_RS256:
    case JA_ES256: return "SHA256";
    case JA_RS384:
    case JA_ES384: return "SHA384";
    case JA_RS512: return "SHA512";
    case JA_INVALID:
    case JA_COUNT: break;
    }
    return NULL;
}

/* A JWS ECDSA signature is r||s, each half the size of the curve's order (RFC 7518 3.4), where
 * OpenSSL wants DER. A half that is all zeros is refused here, before OpenSSL sees it: the
 * CVE-2022-21449 class of forgery (r = s = 0) must not depend on the verifier's own checks.
 * *der is malloc'd by OpenSSL (free with OPENSSL_free). */
static bool ecdsa_der(const unsigned char *sig, size_t sig_len, size_t half, unsigned char **der, int *der_len)
{
    if (sig_len != 2 * half)
        return false;
    static const unsigned char zeros[EC_HALF_MAX] = {0};
    if (memcmp(sig, zeros, half) == 0 || memcmp(sig + half, zeros, half) == 0)
        return false;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    bool ok = es && r && s && ECDSA_SIG_set0(es, r, s) == 1;
    if (ok) {
        r = s = NULL; /* owned by es now */
        *der = NULL;
        *der_len = i2d_ECDSA_SIG(es, der);
        ok = *der_len > 0;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return ok;
}

bool mr_jwt_key_prepare(mr_jwt_key *key, char *why, size_t cap)
{
    for (int a = JA_RS256; a < JA_COUNT; a++) {
        if (!(key->algs & (1u << a)))
            continue;
        bool rsa = a == JA_RS256 || a == JA_RS384 || a == JA_RS512;
        key->md[a] = EVP_MD_fetch(NULL, digest_of((ja_alg)a), NULL);
        key->prepared[a] = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
        if (!key->md[a] || !key->prepared[a] || EVP_PKEY_verify_init(key->prepared[a]) != 1 ||
            (rsa && EVP_PKEY_CTX_set_rsa_padding(key->prepared[a], RSA_PKCS1_PADDING) != 1) ||
            EVP_PKEY_CTX_set_signature_md(key->prepared[a], key->md[a]) != 1) {
            unsigned long e = ERR_peek_last_error();
            char reason[120] = "no OpenSSL reason";
            if (e)
                ERR_error_string_n(e, reason, sizeof reason);
            ERR_clear_error();
            snprintf(why, cap, "OpenSSL cannot verify %s with this key: %s", digest_of((ja_alg)a), reason);
            return false;
        }
    }
    return true;
}

bool mr_jwt_sig_verify(ja_alg alg, const mr_jwt_key *key, const unsigned char *input, size_t input_len,
                       const unsigned char *sig, size_t sig_len)
{
    if (alg <= JA_INVALID || alg >= JA_COUNT || !key->prepared[alg])
        return false;
    unsigned char *der = NULL;
    int der_len = 0;
    bool ec = alg == JA_ES256 || alg == JA_ES384;
    if (ec) {
        if (!ecdsa_der(sig, sig_len, alg == JA_ES256 ? 32 : 48, &der, &der_len))
            return false;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
        /* RFC 8017 8.2.2: the signature is exactly as long as the modulus. */
        return false;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    /* The prepared context is shared; each check works on its own copy. */
    EVP_PKEY_CTX *ctx = NULL;
    bool ok = EVP_Digest(input, input_len, digest, &digest_len, key->md[alg], NULL) == 1 &&
              (ctx = EVP_PKEY_CTX_dup(key->prepared[alg])) != NULL &&
              EVP_PKEY_verify(ctx, ec ? der : sig, ec ? (size_t)der_len : sig_len, digest, digest_len) == 1;
    EVP_PKEY_CTX_free(ctx);
    OPENSSL_free(der);
    /* A refused signature leaves reasons on the thread's queue; nobody reads them. */
    ERR_clear_error();
    return ok;
}
