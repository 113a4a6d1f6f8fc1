/* jwk.c -- JWKS documents to OpenSSL public keys (RSA n/e, EC P-256/P-384 x/y), parsed once per fetch. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "jwt_internal.h"
#include "mindroom/json.h"

#define RSA_MIN_BITS 2048
/* Verification cost grows with the modulus; a hostile JWKS should not make each token slow. */
#define RSA_MAX_BITS 8192
#define WHY_MAX 200

static const struct {
    const char *name;
    ja_alg alg;
} ALGS[] = {
    {"RS256", JA_RS256}, {"RS384", JA_RS384}, {"RS512", JA_RS512},
    {"ES256", JA_ES256}, {"ES384", JA_ES384},
};

#define RSA_ALGS ((1u << JA_RS256) | (1u << JA_RS384) | (1u << JA_RS512))

static const struct {
    const char *crv;
    const char *group;
    size_t coord_len;
    ja_alg alg;
} CURVES[] = {
    {"P-256", "prime256v1", 32, JA_ES256},
    {"P-384", "secp384r1", 48, JA_ES384},
};

ja_alg mr_jwt_alg_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof ALGS / sizeof ALGS[0]; i++)
        if (strcmp(ALGS[i].name, name) == 0)
            return ALGS[i].alg;
    return JA_INVALID;
}

static void algs_to_str(unsigned algs, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof ALGS / sizeof ALGS[0] && n < cap; i++)
        if (algs & (1u << ALGS[i].alg))
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? " " : "", ALGS[i].name);
}

/* The newest OpenSSL error as text, clearing the thread's queue so it does not pile up. */
static const char *ossl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "no OpenSSL reason");
    ERR_clear_error();
    return buf;
}

/* A base64url member of the JWK; false with *why filled when absent or undecodable. */
static bool b64_member(json_t *jwk, const char *name, unsigned char **out, size_t *len, char *why)
{
    const char *text = json_string_value(json_object_get(jwk, name));
    if (!text) {
        snprintf(why, WHY_MAX, "\"%s\" is missing or not a string", name);
        return false;
    }
    mr_err e = {0};
    if (mr_jwt_b64url_decode(text, strlen(text), out, len, &e) != MR_OK) {
        snprintf(why, WHY_MAX, "\"%s\": %.160s", name, e.msg);
        return false;
    }
    if (*len == 0) {
        free(*out);
        *out = NULL;
        snprintf(why, WHY_MAX, "\"%s\" is empty", name);
        return false;
    }
    return true;
}

/* Builds a public key of type `type` from bld's parameters, then has OpenSSL check it. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, char *why)
{
    char reason[160];
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        snprintf(why, WHY_MAX, "OpenSSL rejects the %s key: %s", type, ossl_reason(reason, sizeof reason));
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (!pkey)
        return NULL;
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) != 1) {
        snprintf(why, WHY_MAX, "the %s public key fails OpenSSL's check: %s", type,
                 ossl_reason(reason, sizeof reason));
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(check);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *jwk, unsigned *algs, char *why)
{
    unsigned char *n = NULL, *e = NULL;
    size_t n_len, e_len;
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (!b64_member(jwk, "n", &n, &n_len, why) || !b64_member(jwk, "e", &e, &e_len, why))
        goto out;
    bn_n = BN_bin2bn(n, (int)n_len, NULL);
    bn_e = BN_bin2bn(e, (int)e_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn_n || !bn_e || !bld) {
        snprintf(why, WHY_MAX, "out of memory");
        goto out;
    }
    int bits = BN_num_bits(bn_n);
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        snprintf(why, WHY_MAX, "RSA modulus is %d bits; %d to %d are accepted", bits, RSA_MIN_BITS,
                 RSA_MAX_BITS);
        goto out;
    }
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1) {
        snprintf(why, WHY_MAX, "out of memory");
        goto out;
    }
    pkey = pkey_from_params("RSA", bld, why);
    *algs = RSA_ALGS;
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *ec_key(json_t *jwk, unsigned *algs, char *why)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    size_t c = 0;
    while (c < sizeof CURVES / sizeof CURVES[0] && !(crv && strcmp(CURVES[c].crv, crv) == 0))
        c++;
    if (c == sizeof CURVES / sizeof CURVES[0]) {
        char q[64];
        snprintf(why, WHY_MAX, "crv \"%s\" is not P-256 or P-384", crv ? mr_jwt_quote(crv, q, sizeof q) : "");
        return NULL;
    }
    unsigned char *x = NULL, *y = NULL, *point = NULL;
    size_t x_len, y_len, clen = CURVES[c].coord_len;
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    if (!b64_member(jwk, "x", &x, &x_len, why) || !b64_member(jwk, "y", &y, &y_len, why))
        goto out;
    if (x_len != clen || y_len != clen) {
        snprintf(why, WHY_MAX, "%s coordinates must be %zu bytes; x has %zu, y has %zu", CURVES[c].crv,
                 clen, x_len, y_len);
        goto out;
    }
    /* OpenSSL takes the public point in its uncompressed octet form: 04 || x || y. */
    point = malloc(1 + 2 * clen);
    bld = OSSL_PARAM_BLD_new();
    if (!point || !bld) {
        snprintf(why, WHY_MAX, "out of memory");
        goto out;
    }
    point[0] = 0x04;
    memcpy(point + 1, x, clen);
    memcpy(point + 1 + clen, y, clen);
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, CURVES[c].group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * clen) != 1) {
        snprintf(why, WHY_MAX, "out of memory");
        goto out;
    }
    pkey = pkey_from_params("EC", bld, why);
    *algs = 1u << CURVES[c].alg;
out:
    OSSL_PARAM_BLD_free(bld);
    free(point);
    free(x);
    free(y);
    return pkey;
}

static char *pem_of(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    if (bio && PEM_write_bio_PUBKEY(bio, pkey) == 1) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0)
            pem = strndup(data, (size_t)n);
    }
    ERR_clear_error();
    BIO_free(bio);
    return pem;
}

/* "use" and "key_ops" (RFC 7517 4.2, 4.3): a key meant for anything but verifying is not ours. */
static bool usage_allows_verify(json_t *jwk, char *why)
{
    json_t *use = json_object_get(jwk, "use");
    if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0)) {
        char q[64];
        snprintf(why, WHY_MAX, "use is \"%s\", not \"sig\"",
                 json_is_string(use) ? mr_jwt_quote(json_string_value(use), q, sizeof q) : "(not a string)");
        return false;
    }
    json_t *ops = json_object_get(jwk, "key_ops");
    if (!ops || mr_json_array_has(ops, "verify"))
        return true;
    snprintf(why, WHY_MAX, "key_ops does not hold \"verify\"");
    return false;
}

/* Turns one JWK into a key, or fills why and returns false. */
static bool key_from_jwk(json_t *jwk, const mr_jwt_keyset *ks, mr_jwt_key *key, char *why)
{
    if (!json_is_object(jwk)) {
        snprintf(why, WHY_MAX, "not a JSON object");
        return false;
    }
    json_t *kid = json_object_get(jwk, "kid");
    if (kid && !json_is_string(kid)) {
        snprintf(why, WHY_MAX, "kid is not a string");
        return false;
    }
    for (size_t i = 0; kid && i < ks->count; i++) {
        if (ks->keys[i].kid && strcmp(ks->keys[i].kid, json_string_value(kid)) == 0) {
            snprintf(why, WHY_MAX, "a key with this kid came earlier");
            return false;
        }
    }
    if (!usage_allows_verify(jwk, why))
        return false;
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    unsigned algs = 0;
    EVP_PKEY *pkey;
    if (kty && strcmp(kty, "RSA") == 0) {
        pkey = rsa_key(jwk, &algs, why);
    } else if (kty && strcmp(kty, "EC") == 0) {
        pkey = ec_key(jwk, &algs, why);
    } else {
        char q[32];
        snprintf(why, WHY_MAX, "kty \"%s\" is not RSA or EC", kty ? mr_jwt_quote(kty, q, sizeof q) : "");
        return false;
    }
    if (!pkey)
        return false;
    json_t *alg = json_object_get(jwk, "alg");
    if (alg) {
        const char *name = json_string_value(alg);
        ja_alg a = name ? mr_jwt_alg_lookup(name) : JA_INVALID;
        if (a == JA_INVALID || !(algs & (1u << a))) {
            char q[32], allowed[24];
            algs_to_str(algs, allowed, sizeof allowed);
            snprintf(why, WHY_MAX, "alg \"%s\" is not one this key allows here (%s)",
                     name ? mr_jwt_quote(name, q, sizeof q) : "(not a string)", allowed);
            EVP_PKEY_free(pkey);
            return false;
        }
        algs = 1u << a;
    }
    key->pem = pem_of(pkey);
    key->pkey = pkey;
    key->algs = algs;
    key->kid = kid ? strdup(json_string_value(kid)) : NULL;
    if (!key->pem || (kid && !key->kid)) {
        mr_jwt_key_clear(key);
        snprintf(why, WHY_MAX, "out of memory");
        return false;
    }
    if (!mr_jwt_key_prepare(key, why, WHY_MAX)) {
        mr_jwt_key_clear(key);
        return false;
    }
    algs_to_str(algs, key->algs_str, sizeof key->algs_str);
    return true;
}

static mr_code note_skipped(mr_jwt_keyset *ks, size_t index, json_t *jwk, const char *why, mr_err *err)
{
    char line[WHY_MAX + 96], q[64];
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    if (kid)
        snprintf(line, sizeof line, "keys[%zu] (kid \"%s\"): %s", index, mr_jwt_quote(kid, q, sizeof q), why);
    else
        snprintf(line, sizeof line, "keys[%zu]: %s", index, why);
    char *copy = strdup(line);
    if (!copy)
        return mr_err_set(err, MR_ENOMEM, "out of memory parsing JWKS");
    ks->skipped[ks->nskipped++] = copy;
    return MR_OK;
}

/* The no-usable-key message: every reason, as many as fit. */
static mr_code no_usable_key(const mr_jwt_keyset *ks, mr_err *err)
{
    char msg[MR_ERR_MSG_MAX];
    int n = snprintf(msg, sizeof msg, "JWKS has no usable key");
    for (size_t i = 0; i < ks->nskipped && (size_t)n < sizeof msg; i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "%s %s", i ? ";" : ":", ks->skipped[i]);
    return mr_err_set(err, MR_EINVAL, "%s", msg);
}

mr_code mr_jwt_keyset_parse(const char *json, size_t len, mr_jwt_keyset **out, mr_err *err)
{
    *out = NULL;
    json_error_t je;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return mr_err_set(err, MR_EINVAL, "JWKS is not JSON: line %d column %d: %s", je.line, je.column,
                          je.text);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        return mr_err_set(err, MR_EINVAL, "JWKS has no \"keys\" array");
    }
    size_t n = json_array_size(keys);
    mr_jwt_keyset *ks = calloc(1, sizeof *ks);
    if (ks) {
        atomic_init(&ks->refs, 1);
        ks->keys = calloc(n ? n : 1, sizeof *ks->keys);
        ks->skipped = calloc(n ? n : 1, sizeof *ks->skipped);
    }
    if (!ks || !ks->keys || !ks->skipped) {
        mr_jwt_keyset_free(ks);
        json_decref(doc);
        return mr_err_set(err, MR_ENOMEM, "out of memory parsing JWKS");
    }
    mr_code rc = MR_OK;
    for (size_t i = 0; i < n && rc == MR_OK; i++) {
        char why[WHY_MAX];
        json_t *jwk = json_array_get(keys, i);
        if (key_from_jwk(jwk, ks, &ks->keys[ks->count], why))
            ks->count++;
        else
            rc = note_skipped(ks, i, jwk, why, err);
    }
    json_decref(doc);
    if (rc == MR_OK && ks->count == 0)
        rc = no_usable_key(ks, err);
    if (rc != MR_OK) {
        mr_jwt_keyset_free(ks);
        return rc;
    }
    *out = ks;
    return MR_OK;
}

void mr_jwt_keyset_free(mr_jwt_keyset *ks)
{
    if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->count; i++)
        mr_jwt_key_clear(&ks->keys[i]);
    for (size_t i = 0; i < ks->nskipped; i++)
        free(ks->skipped[i]);
    free(ks->keys);
    free(ks->skipped);
    free(ks);
}

size_t mr_jwt_keyset_count(const mr_jwt_keyset *ks)
{
    return ks->count;
}

const char *mr_jwt_keyset_kid(const mr_jwt_keyset *ks, size_t i)
{
    return i < ks->count ? ks->keys[i].kid : NULL;
}

const char *mr_jwt_keyset_pem(const mr_jwt_keyset *ks, size_t i)
{
    return i < ks->count ? ks->keys[i].pem : NULL;
}

const char *mr_jwt_keyset_algs(const mr_jwt_keyset *ks, size_t i)
{
    return i < ks->count ? ks->keys[i].algs_str : NULL;
}

size_t mr_jwt_keyset_skipped_count(const mr_jwt_keyset *ks)
{
    return ks->nskipped;
}

const char *mr_jwt_keyset_skipped(const mr_jwt_keyset *ks, size_t i)
{
    return i < ks->nskipped ? ks->skipped[i] : NULL;
}
