/* sig.c -- JWS signatures checked by OpenSSL on keys parsed once: RSASSA-PKCS1-v1_5 and ECDSA. */
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
    case JA_INVALID: break;
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

bool mr_jwt_sig_verify(ja_alg alg, EVP_PKEY *key, const unsigned char *input, size_t input_len,
                       const unsigned char *sig, size_t sig_len)
{
    const char *md = digest_of(alg);
    if (!md || !key)
        return false;
    unsigned char *der = NULL;
    int der_len = 0;
    bool ec = alg == JA_ES256 || alg == JA_ES384;
    if (ec) {
        if (!ecdsa_der(sig, sig_len, alg == JA_ES256 ? 32 : 48, &der, &der_len))
            return false;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(key)) {
        /* RFC 8017 8.2.2: the signature is exactly as long as the modulus. */
        return false;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    bool ok = ctx && EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, key, NULL) == 1 &&
              (ec || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
              EVP_DigestVerify(ctx, ec ? der : sig, ec ? (size_t)der_len : sig_len, input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    /* A refused signature leaves reasons on the thread's queue; nobody reads them. */
    ERR_clear_error();
    return ok;
}
