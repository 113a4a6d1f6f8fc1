/* olm_internal.h -- what the files of libs/olm share: the objects behind the opaque types and
 * the helpers around libolm (memory, randomness, errors, input checks). */
#ifndef MR_OLM_INTERNAL_H
#define MR_OLM_INTERNAL_H

#include <olm/olm.h>
#include <olm/pk.h>

#include "mindroom/olm.h"

/* Every libolm object lives in heap memory of libolm's stated size, wiped before it is freed.
 * An mr_olm_session, mr_olm_outbound_group or mr_olm_inbound_group is that memory itself (the
 * struct is never defined); an account and a signing key carry their public keys beside it. */
struct mr_olm_account {
    OlmAccount *olm;
    char curve25519[MR_OLM_KEY_SIZE];
    char ed25519[MR_OLM_KEY_SIZE];
};

struct mr_olm_signing_key {
    OlmPkSigning *olm;
    unsigned char seed[32];
    char public_key[MR_OLM_KEY_SIZE];
};

/* What differs between the picklable kinds of libolm object (account, session, outbound and
 * inbound group session); the mr_olm_object_* functions do the rest once. */
typedef struct mr_olm_kind {
    const char *name; /* "an Olm session", for messages */
    size_t (*size)(void);
    void *(*init)(void *mem);
    size_t (*clear)(void *obj);
    size_t (*pickle_length)(void *obj);
    size_t (*pickle)(void *obj, const void *key, size_t key_len, void *out, size_t out_len);
    size_t (*unpickle)(void *obj, const void *key, size_t key_len, void *in, size_t in_len);
    const char *(*last_error)(void *obj);
    enum OlmErrorCode (*last_error_code)(void *obj);
} mr_olm_kind;

/* Defines `static const mr_olm_kind var` from libolm's functions for one kind of object; the
 * wrappers only turn void pointers into libolm's types. */
#define MR_OLM_KIND(var, name, size_fn, init_fn, clear_fn, plen_fn, pickle_fn, unpickle_fn, error_fn, code_fn)       \
    static void *var##_init(void *m) { return init_fn(m); }                                                       \
    static size_t var##_clear(void *o) { return clear_fn(o); }                                                    \
    static size_t var##_plen(void *o) { return plen_fn(o); }                                                      \
    static size_t var##_pickle(void *o, const void *k, size_t kl, void *p, size_t pl)                             \
    {                                                                                                             \
        return pickle_fn(o, k, kl, p, pl);                                                                        \
    }                                                                                                             \
    static size_t var##_unpickle(void *o, const void *k, size_t kl, void *p, size_t pl)                           \
    {                                                                                                             \
        return unpickle_fn(o, k, kl, p, pl);                                                                      \
    }                                                                                                             \
    static const char *var##_error(void *o) { return error_fn(o); }                                               \
    static enum OlmErrorCode var##_code(void *o) { return code_fn(o); }                                           \
    static const mr_olm_kind var = {name,        size_fn,        var##_init,  var##_clear, var##_plen,             \
                                    var##_pickle, var##_unpickle, var##_error, var##_code}

/* A new, initialised object of kind k; NULL (err set) when out of memory. */
void *mr_olm_object_new(const mr_olm_kind *k, mr_err *err);
/* Clears, wipes and frees an object of kind k; NULL is allowed. */
void mr_olm_object_free(const mr_olm_kind *k, void *obj);
/* The error of a libolm call on obj that returned olm_error(), through mr_olm_fail. */
mr_code mr_olm_object_fail(const mr_olm_kind *k, void *obj, const char *what, mr_err *err);
/* Pickles obj with key (at least MR_OLM_PICKLE_KEY_MIN bytes) into a NUL-terminated heap string. */
mr_code mr_olm_object_pickle(const mr_olm_kind *k, void *obj, const void *key, size_t key_len, char **pickle,
                             mr_err *err);
/* A new object of kind k from a pickle: the key's length and the pickle's base64 are checked
 * first (libolm reads stray characters as data and then blames the key). */
mr_code mr_olm_object_unpickle(const mr_olm_kind *k, const char *pickle, const void *key, size_t key_len,
                               void **obj, mr_err *err);

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
