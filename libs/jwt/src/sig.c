/* sig.c -- JWS signatures checked by OpenSSL on keys parsed once: RSASSA-PKCS1-v1_5 and ECDSA. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "jwt_internal.h"

/* The largest ECDSA half we accept: P-384's 48 bytes; its DER signature: a SEQUENCE of two
 * INTEGERs, each a tag, a length, a sign byte and the half. */
#define EC_HALF_MAX 48
#define ECDSA_DER_MAX (2 + 2 * (3 + EC_HALF_MAX))

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

/* The DER INTEGER of an unsigned big-endian number (not zero): leading zeros dropped, one put
 * back when the top bit is set, so the encoding is the single one DER allows. */
static size_t der_integer(const unsigned char *n, size_t len, unsigned char *out)
{
    while (len > 1 && n[0] == 0) {
        n++;
        len--;
    }
    size_t pad = n[0] & 0x80 ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char)(len + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, n, len);
    return 2 + pad + len;
}

/* A JWS ECDSA signature is r||s, each half the size of the curve's order (RFC 7518 3.4), where
 * OpenSSL wants DER (written here: at most 2 + 2 * 51 bytes, short lengths only). A half that is
 * all zeros is refused here, before OpenSSL sees it: the CVE-2022-21449 class of forgery
 * (r = s = 0) must not depend on the verifier's own checks. */
static bool ecdsa_der(const unsigned char *sig, size_t sig_len, size_t half, unsigned char der[ECDSA_DER_MAX],
                      size_t *der_len)
{
    if (sig_len != 2 * half)
        return false;
    static const unsigned char zeros[EC_HALF_MAX] = {0};
    if (memcmp(sig, zeros, half) == 0 || memcmp(sig + half, zeros, half) == 0)
        return false;
    size_t n = der_integer(sig, half, der + 2);
    n += der_integer(sig + half, half, der + 2 + n);
    der[0] = 0x30;
    der[1] = (unsigned char)n;
    *der_len = n + 2;
    return true;
}

/* Serial numbers of prepared keys, never reused, so a thread's copy of a key's context is known
 * to be of that key even when a freed key's memory comes back as another's. */
static atomic_uint_fast64_t key_serials;

bool mr_jwt_key_prepare(mr_jwt_key *key, char *why, size_t cap)
{
    key->serial = atomic_fetch_add(&key_serials, 1) + 1;
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

/* A thread's own copies of the prepared contexts it last used (one an algorithm, tagged with
 * the key's serial) and a digest context: the prepared ones are shared and OpenSSL's are not
 * safe to use from two threads at once, and copying one for every token cost more than the
 * digest. A copy holds its own reference to the key, so it outlives a replaced key set; it is
 * freed when the thread uses another key for that algorithm or ends. */
typedef struct thread_ctx {
    uint64_t serial[JA_COUNT];
    EVP_PKEY_CTX *verify[JA_COUNT];
    EVP_MD_CTX *digest;
} thread_ctx;

static pthread_key_t thread_ctx_key;
static bool thread_ctx_ready;
static pthread_once_t thread_ctx_once = PTHREAD_ONCE_INIT;

static void thread_ctx_free(void *p)
{
    thread_ctx *t = p;
    for (int a = 0; a < JA_COUNT; a++)
        EVP_PKEY_CTX_free(t->verify[a]);
    EVP_MD_CTX_free(t->digest);
    free(t);
}

static void thread_ctx_init(void)
{
    thread_ctx_ready = pthread_key_create(&thread_ctx_key, thread_ctx_free) == 0;
}

/* This thread's contexts, made on its first token; NULL when out of memory. */
static thread_ctx *thread_ctx_get(void)
{
    pthread_once(&thread_ctx_once, thread_ctx_init);
    if (!thread_ctx_ready)
        return NULL;
    thread_ctx *t = pthread_getspecific(thread_ctx_key);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t || !(t->digest = EVP_MD_CTX_new()) || pthread_setspecific(thread_ctx_key, t) != 0) {
        if (t)
            EVP_MD_CTX_free(t->digest);
        free(t);
        return NULL;
    }
    return t;
}

/* This thread's verify context for key and alg, copied from the prepared one when it has none. */
static EVP_PKEY_CTX *thread_verify_ctx(thread_ctx *t, ja_alg alg, const mr_jwt_key *key)
{
    if (t->verify[alg] && t->serial[alg] == key->serial)
        return t->verify[alg];
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_dup(key->prepared[alg]);
    if (!ctx)
        return NULL;
    EVP_PKEY_CTX_free(t->verify[alg]);
    t->verify[alg] = ctx;
    t->serial[alg] = key->serial;
    return ctx;
}

bool mr_jwt_sig_verify(ja_alg alg, const mr_jwt_key *key, const unsigned char *input, size_t input_len,
                       const unsigned char *sig, size_t sig_len)
{
    if (alg <= JA_INVALID || alg >= JA_COUNT || !key->prepared[alg])
        return false;
    unsigned char der[ECDSA_DER_MAX];
    size_t der_len = 0;
    bool ec = alg == JA_ES256 || alg == JA_ES384;
    if (ec) {
        if (!ecdsa_der(sig, sig_len, alg == JA_ES256 ? 32 : 48, der, &der_len))
            return false;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
        /* RFC 8017 8.2.2: the signature is exactly as long as the modulus. */
        return false;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    thread_ctx *t = thread_ctx_get();
    EVP_PKEY_CTX *ctx = NULL;
    bool ok = t && EVP_DigestInit_ex2(t->digest, key->md[alg], NULL) == 1 &&
              EVP_DigestUpdate(t->digest, input, input_len) == 1 &&
              EVP_DigestFinal_ex(t->digest, digest, &digest_len) == 1 &&
              (ctx = thread_verify_ctx(t, alg, key)) != NULL &&
              EVP_PKEY_verify(ctx, ec ? der : sig, ec ? der_len : sig_len, digest, digest_len) == 1;
    /* A refused signature leaves reasons on the thread's queue; nobody reads them. */
    if (!ok)
        ERR_clear_error();
    return ok;
}
