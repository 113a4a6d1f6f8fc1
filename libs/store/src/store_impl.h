/* store_impl.h -- what store.c needs from a backend, from the URL parser and from the sealer.
 *
 * Functions shared between files of libs/store are named Mr_store_* (curl's Curl_* tier): a name
 * that starts with a capital is internal to the library, mr_store_* is the public API in include/. */
#ifndef MINDROOM_STORE_IMPL_H
#define MINDROOM_STORE_IMPL_H

#include "mindroom/store.h"
#include "mindroom/url_options.h"

/* A backend's operations; the store serialises calls on one handle, so a backend needs no
 * locking of its own. Messages need not name the key: store.c prefixes the operation and key. */
typedef struct mr_store_ops {
    mr_code (*get)(void *b, const char *key, char **v, size_t *len, mr_err *err);
    /* n is 1 to MR_STORE_GET_MANY_MAX; an absent key leaves values[i] NULL; on an error every
     * values[i] is NULL. */
    mr_code (*get_many)(void *b, const char *const *keys, size_t n, char **values, size_t *lens, mr_err *err);
    mr_code (*set)(void *b, const char *key, const void *v, size_t len, long ttl_ms, mr_err *err);
    mr_code (*set_nx)(void *b, const char *key, const void *v, size_t len, long ttl_ms, bool *won,
                      mr_err *err);
    mr_code (*cas)(void *b, const char *key, const void *expect, size_t expect_len, const void *v,
                   size_t len, long ttl_ms, bool *swapped, mr_err *err);
    mr_code (*del)(void *b, const char *key, mr_err *err);
    mr_code (*ttl)(void *b, const char *key, long *ttl_ms, mr_err *err);
    /* n is 1 to MR_STORE_HSET_MAX, every name non-empty; all fields are set or none. */
    mr_code (*hset)(void *b, const char *key, const mr_store_field *fields, size_t n, mr_err *err);
    mr_code (*hget)(void *b, const char *key, const char *field, char **v, size_t *len, mr_err *err);
    mr_code (*hdel)(void *b, const char *key, const char *field, mr_err *err);
    mr_code (*hgetall)(void *b, const char *key, mr_store_hash *out, mr_err *err);
    mr_code (*incr)(void *b, const char *key, long long by, long ttl_ms_on_create, long long *value,
                    mr_err *err);
    /* keys[i] is ops[i]'s key as the backend names it; the input is checked. Sets every op's rc
     * and done, and *failed to the index of the first op that failed (n: the unit failed), whose
     * message err holds. */
    mr_code (*batch)(void *b, const char *const *keys, mr_store_op *ops, size_t n, size_t *failed, mr_err *err);
    mr_code (*ping)(void *b, mr_err *err);
    /* NULL: the backend's writes are as durable as its own settings make them. sync is the one
     * operation called without the store's lock, alone or beside any other, so writers need not
     * wait for the disk. */
    mr_code (*sync_on_demand)(void *b, mr_err *err);
    mr_code (*sync)(void *b, mr_err *err);
    void (*close)(void *b);
} mr_store_ops;

typedef enum mr_store_kind { MR_STORE_SQLITE, MR_STORE_REDIS } mr_store_kind;

/* A parsed MINDROOM_STORE_URL. Strings are owned; free with Mr_store_url_free. */
typedef struct mr_store_url {
    mr_store_kind kind;
    char *path;     /* sqlite: the database file */
    char *host;     /* redis */
    int port;
    int db;
    char *user;     /* redis ACL user, or NULL */
    char *password; /* redis password, or NULL; never printed */
    char *display;  /* the URL with any user and password replaced by "***", for messages */
    char prefix[MR_URL_PREFIX_MAX + 1]; /* redis ?prefix=: every key goes in as "<prefix>:<key>"; "" for none */
} mr_store_url;

mr_code Mr_store_url_parse(const char *url, mr_store_url *out, mr_err *err);
void Mr_store_url_free(mr_store_url *u);

mr_code Mr_store_sqlite_open(const mr_store_url *u, const mr_store_ops **ops, void **impl, mr_err *err);
mr_code Mr_store_redis_open(const mr_store_url *u, const mr_store_ops **ops, void **impl, mr_err *err);

/* Copies n bytes into a new NUL-terminated buffer (a value handed to a caller). */
char *Mr_store_dup_bytes(const void *p, size_t n);

#define MR_STORE_KEY_LEN 32

/* HKDF-SHA256(secret, info "mindroom-store-v1") -> the AES-256 key of secret values. */
mr_code Mr_store_seal_derive(const unsigned char *secret, size_t secret_len,
                             unsigned char key[MR_STORE_KEY_LEN], mr_err *err);
/* version || nonce || ciphertext || tag, with the store key as associated data. */
mr_code Mr_store_seal(const unsigned char key[MR_STORE_KEY_LEN], const char *store_key, const void *v,
                      size_t len, unsigned char **out, size_t *out_len, mr_err *err);
/* The reverse; MR_EAUTH when the value was not sealed under this key for this store key. */
mr_code Mr_store_unseal(const unsigned char key[MR_STORE_KEY_LEN], const char *store_key,
                        const unsigned char *in, size_t in_len, char **out, size_t *out_len, mr_err *err);

#endif
