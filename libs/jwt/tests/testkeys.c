/* testkeys.c -- test keys, JWKs and tokens made with OpenSSL alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "testkeys.h"
#include "mindroom/b64.h"
#include "mindroom/str.h"

char *tk_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = mr_str_vprintf(fmt, ap);
    va_end(ap);
    assert_non_null(out);
    return out;
}

char *tk_b64url(const void *data, size_t n)
{
    char *out = malloc(MR_B64URL_LEN(n) + 1);
    assert_non_null(out);
    mr_b64url_encode(data, n, out);
    return out;
}

void tk_rsa(tk_key *k, const char *kid, int bits)
{
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    assert_non_null(k->pkey);
    snprintf(k->kid, sizeof k->kid, "%s", kid);
    snprintf(k->alg, sizeof k->alg, "RS256");
}

void tk_ec(tk_key *k, const char *kid, const char *crv)
{
    int p384 = strcmp(crv, "P-384") == 0;
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p384 ? "secp384r1" : "prime256v1");
    assert_non_null(k->pkey);
    snprintf(k->kid, sizeof k->kid, "%s", kid);
    snprintf(k->alg, sizeof k->alg, "%s", p384 ? "ES384" : "ES256");
}

void tk_free(tk_key *k)
{
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
}

/* A big-number parameter of the key as base64url, left-padded with zeros to pad bytes (0: none). */
static char *bn_param_b64(const tk_key *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k->pkey, param, &bn), 1);
    int len = pad ? pad : BN_num_bytes(bn);
    unsigned char *buf = malloc((size_t)len);
    assert_non_null(buf);
    assert_int_equal(BN_bn2binpad(bn, buf, len), len);
    char *out = tk_b64url(buf, (size_t)len);
    free(buf);
    BN_free(bn);
    return out;
}

char *tk_jwk(const tk_key *k, const char *extra)
{
    char *out = NULL;
    const char *more = extra ? extra : "";
    const char *comma = extra ? "," : "";
    if (EVP_PKEY_is_a(k->pkey, "RSA")) {
        char *n = bn_param_b64(k, OSSL_PKEY_PARAM_RSA_N, 0);
        char *e = bn_param_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
        out = tk_printf("{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", k->kid, n, e, comma,
                        more);
        free(n);
        free(e);
    } else {
        int p384 = strcmp(k->alg, "ES384") == 0;
        char *x = bn_param_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, p384 ? 48 : 32);
        char *y = bn_param_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, p384 ? 48 : 32);
        out = tk_printf("{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s}", k->kid,
                        p384 ? "P-384" : "P-256", x, y, comma, more);
        free(x);
        free(y);
    }
    return out;
}

char *tk_jwks(const char *const *jwks, size_t n)
{
    size_t cap = 32;
    for (size_t i = 0; i < n; i++)
        cap += strlen(jwks[i]) + 1;
    char *out = malloc(cap);
    assert_non_null(out);
    strcpy(out, "{\"keys\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, jwks[i]);
    }
    strcat(out, "]}");
    return out;
}

char *tk_pem(const tk_key *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k->pkey), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *pem = strndup(data, (size_t)n);
    BIO_free(bio);
    assert_non_null(pem);
    return pem;
}

/* "b64(header).b64(payload)": what gets signed. */
static char *signing_input(const char *header, const char *payload)
{
    char *h = tk_b64url(header, strlen(header));
    char *p = tk_b64url(payload, strlen(payload));
    char *out = tk_printf("%s.%s", h, p);
    free(h);
    free(p);
    return out;
}

/* input + "." + b64(sig); frees input. */
static char *with_signature(char *input, const void *sig, size_t sig_len)
{
    char *s = tk_b64url(sig, sig_len);
    char *out = tk_printf("%s.%s", input, s);
    free(s);
    free(input);
    return out;
}

char *tk_join(const char *header, const char *payload, const void *sig, size_t sig_len)
{
    return with_signature(signing_input(header, payload), sig, sig_len);
}

static const EVP_MD *md_of(const char *alg)
{
    if (strcmp(alg + 2, "256") == 0)
        return EVP_sha256();
    if (strcmp(alg + 2, "384") == 0)
        return EVP_sha384();
    return EVP_sha512();
}

/* ECDSA in a JWS is r || s, each as long as the curve's order, not OpenSSL's DER. */
static size_t der_to_raw(const unsigned char *der, size_t der_len, size_t half, unsigned char *raw)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    assert_non_null(sig);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, (int)half), (int)half);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + half, (int)half), (int)half);
    ECDSA_SIG_free(sig);
    return 2 * half;
}

char *tk_sign_alg(const tk_key *k, const char *alg, const char *header, const char *payload)
{
    char *input = signing_input(header, payload);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(EVP_DigestSignInit(md, NULL, md_of(alg), NULL, k->pkey), 1);
    size_t sig_len = 0;
    assert_int_equal(EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)input, strlen(input)), 1);
    unsigned char *sig = malloc(sig_len);
    assert_non_null(sig);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(md);
    if (alg[0] == 'E') {
        unsigned char raw[132];
        size_t half = (size_t)(EVP_PKEY_get_bits(k->pkey) + 7) / 8;
        sig_len = der_to_raw(sig, sig_len, half, raw);
        memcpy(sig, raw, sig_len);
    }
    char *out = with_signature(input, sig, sig_len);
    free(sig);
    return out;
}

char *tk_sign(const tk_key *k, const char *header, const char *payload)
{
    return tk_sign_alg(k, k->alg, header, payload);
}

char *tk_sign_hmac(const void *secret, size_t secret_len, const char *header, const char *payload)
{
    char *input = signing_input(header, payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)input, strlen(input), mac,
                         &mac_len));
    return with_signature(input, mac, mac_len);
}
