/* olm_internal.h -- what the files of libs/olm share: the objects behind the opaque types and
 * the helpers around libolm (memory, randomness, errors, input checks). */
#ifndef MR_OLM_INTERNAL_H
#define MR_OLM_INTERNAL_H

#include <olm/olm.h>
#include <olm/pk.h>

#include "mindroom/olm.h"

/* Every libolm object lives in heap memory of libolm's stated size, wiped before it is freed. */
struct mr_olm_account {
    OlmAccount *olm;
    char curve25519[MR_OLM_KEY_SIZE];
    char ed25519[MR_OLM_KEY_SIZE];
};

struct mr_olm_session {
    OlmSession *olm;
};

struct mr_olm_signing_key {
    OlmPkSigning *olm;
    unsigned char seed[32];
    char public_key[MR_OLM_KEY_SIZE];
};

struct mr_olm_outbound_group {
    OlmOutboundGroupSession *olm;
};

struct mr_olm_inbound_group {
    OlmInboundGroupSession *olm;
};

/* Zeroed memory for a libolm object of size bytes; NULL (err set) when out of memory. */
void *mr_olm_mem_new(size_t size, const char *what, mr_err *err);
/* Wipes and frees memory from mr_olm_mem_new. */
void mr_olm_mem_free(void *mem, size_t size);

/* len bytes from getrandom. */
mr_code mr_olm_random(void *buf, size_t len, mr_err *err);
/* A new heap buffer of len random bytes (at least one byte allocated), for a libolm call that
 * takes randomness; the caller frees it with mr_olm_free_secret(*buf, len). */
mr_code mr_olm_random_new(size_t len, unsigned char **buf, mr_err *err);

/* The error for a libolm call that returned olm_error(): "<what>: libolm <NAME>", with the code
 * that name deserves (MR_EAUTH for a wrong key or MAC, MR_ENOTFOUND for an unknown one-time key
 * or message index, MR_EINVAL for malformed input). */
mr_code mr_olm_fail(mr_err *err, enum OlmErrorCode code, const char *olm_text, const char *what);

/* Refuses s unless it is unpadded standard base64 (of exactly want bytes when want > 0). field
 * names it in the message. */
mr_code mr_olm_check_b64(const char *field, const char *s, size_t want, mr_err *err);
/* Refuses pickle keys shorter than MR_OLM_PICKLE_KEY_MIN. */
mr_code mr_olm_check_pickle_key(const void *key, size_t len, const char *what, mr_err *err);

/* A heap copy of text s (*len its length): libolm overwrites the buffers it decodes. A NULL s
 * is MR_EINVAL naming what. */
mr_code mr_olm_copy(const char *s, const char *what, char **copy, size_t *len, mr_err *err);

/* Everything an unpickle starts with: the key is long enough, the pickle is base64 (libolm
 * reads stray characters as data and then blames the key), and a copy for libolm to decode. */
mr_code mr_olm_unpickle_input(const char *pickle, const void *key, size_t key_len, const char *what, char **copy,
                              size_t *len, mr_err *err);

/* Signs with some Ed25519 key: sig receives the base64 signature. */
typedef mr_code (*mr_olm_sign_fn)(void *ctx, const void *msg, size_t len, char sig[MR_OLM_SIGNATURE_SIZE],
                                  mr_err *err);
/* Adds signatures.<user_id>.<key_id> to obj: sign over its canonical JSON without `signatures`
 * and `unsigned`. obj is unchanged when this fails. */
mr_code mr_olm_sign_json_with(json_t *obj, const char *user_id, const char *key_id, mr_olm_sign_fn sign, void *ctx,
                              mr_err *err);

/* The keys of libolm's {"curve25519": {"<id>": "<key>", ...}} text, as a new object. */
mr_code mr_olm_parse_curve25519_map(const char *text, size_t len, const char *what, json_t **out, mr_err *err);

/* json_object_set_new that reports failure (and frees value) as MR_ENOMEM naming key. */
mr_code mr_olm_json_set(json_t *obj, const char *key, json_t *value, mr_err *err);

#endif
