/* store.h -- the state store: values with TTL, claims, compare-and-set, hashes, counters, secrets. */
#ifndef MINDROOM_STORE_H
#define MINDROOM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

/* One handle per process is enough: every function may be called from several threads at
 * once (calls on one handle are serialised). */
typedef struct mr_store mr_store;

typedef struct mr_store_options {
    /* The instance secret (at least 32 bytes) that encrypts values written by
     * mr_store_set_secret; NULL when the handle never touches secrets. Copied at open. */
    const unsigned char *secret;
    size_t secret_len;
} mr_store_options;

#define MR_STORE_SECRET_MIN 32

/* Opens the store named by a MINDROOM_STORE_URL value:
 *   redis://[[user]:password@]host[:port][/db][?prefix=<ns>]   (port 6379, db 0 by default)
 *   sqlite:///absolute/path.db  or  sqlite://relative/path.db
 * prefix (1 to 64 of [A-Za-z0-9_-]) is the instance's namespace on a Redis other instances
 * share: every key is kept as "<prefix>:<key>" (sealed values bound to that name), while
 * callers and messages use the key as given.
 * Redis is connected at once (MR_EAUTH when it refuses the password); a server that does not
 * answer yet is no error: each call tries to connect (for up to ~750 ms) and fails with
 * MR_EUNAVAIL until it does, and reconnects on its own after a loss. A SQLite file is created 0600 in
 * parent directories created 0700. opts may be NULL. */
mr_code mr_store_open(const char *url, const mr_store_options *opts, mr_store **out, mr_err *err);
void mr_store_close(mr_store *s);

/* Values are bytes (NULs allowed). A value read is malloc'd, NUL-terminated for convenience
 * (*len excludes the NUL) and freed by the caller. An absent or expired key is MR_ENOTFOUND.
 * ttl_ms 0 means no expiry. A key holds either a value or a hash, not both. */
mr_code mr_store_get(mr_store *s, const char *key, char **value, size_t *len, mr_err *err);
mr_code mr_store_set(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms, mr_err *err);
/* Reads n keys (1 to MR_STORE_GET_MANY_MAX) in one call: one MGET on Redis, one read
 * transaction on SQLite, so a caller that needs several values on its path pays for one round
 * trip. values[i] gets the value of keys[i] as mr_store_get gives it (lens[i] its length; lens
 * may be NULL), or NULL when that key is absent or expired. On an error every values[i] is NULL. */
#define MR_STORE_GET_MANY_MAX 8
mr_code mr_store_get_many(mr_store *s, const char *const *keys, size_t n, char **values, size_t *lens,
                          mr_err *err);
/* Sets only when the key is absent: *won tells whether this call set it. This is how an event
 * is claimed once across replicas. */
mr_code mr_store_set_nx(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms, bool *won,
                        mr_err *err);
/* Sets to v only when the current value equals expect (expect NULL: only when absent);
 * *swapped tells whether it did. */
mr_code mr_store_cas(mr_store *s, const char *key, const void *expect, size_t expect_len, const void *v,
                     size_t len, long ttl_ms, bool *swapped, mr_err *err);
/* Removes a value or a whole hash; removing an absent key is not an error. */
mr_code mr_store_del(mr_store *s, const char *key, mr_err *err);
/* Remaining lifetime in ms, -1 for a key without expiry; MR_ENOTFOUND when absent. */
mr_code mr_store_ttl(mr_store *s, const char *key, long *ttl_ms, mr_err *err);

/* One write of mr_store_batch: what to do, and (filled in by the call) how it went. */
typedef enum mr_store_op_kind {
    MR_STORE_OP_SET,    /* key = value */
    MR_STORE_OP_SET_NX, /* key = value when absent; done tells whether it was */
    MR_STORE_OP_CAS,    /* key = value when it holds expect (expect NULL: when absent); done: swapped */
    MR_STORE_OP_DEL,    /* the value or hash at key removed */
} mr_store_op_kind;

typedef struct mr_store_op {
    mr_store_op_kind kind;
    const char *key;
    const void *value; /* SET, SET_NX, CAS */
    size_t len;
    const void *expect; /* CAS */
    size_t expect_len;
    long ttl_ms; /* SET, SET_NX, CAS; 0: no expiry */
    mr_code rc;  /* out: this write's outcome */
    bool done;   /* out: SET and DEL: rc is MR_OK; SET_NX: it set; CAS: it swapped */
} mr_store_op;

#define MR_STORE_BATCH_MAX 16
/* Runs n (1 to MR_STORE_BATCH_MAX) writes, in order, as one unit: one SQLite transaction, one
 * MULTI/EXEC round trip on Redis, where each was one of its own. Each write succeeds or fails on
 * its own, as in Redis's EXEC: one that fails (its rc; a value write over a key holding a hash is
 * MR_EINVAL on both backends) leaves its key as it was, and the others still apply. Returns
 * MR_OK when every write did, else the first failure, err naming its index and key. Bad input (n
 * out of range, a missing or empty key, a negative TTL, an unknown kind) is MR_EINVAL before
 * anything is sent. A failure of the unit itself (the transaction, the connection) is every
 * write's rc: nothing applied on SQLite; on Redis, as for any write that got no answer, it may or
 * may not have taken effect. For the writes of one step that go together (a turn's records). */
mr_code mr_store_batch(mr_store *s, mr_store_op *ops, size_t n, mr_err *err);

/* Hashes: a key holding fields, each with a byte value. */
typedef struct mr_store_hash_entry {
    char *field;
    char *value; /* NUL-terminated for convenience; value_len excludes the NUL */
    size_t value_len;
} mr_store_hash_entry;

typedef struct mr_store_hash {
    mr_store_hash_entry *entries; /* sorted by field on SQLite, in Redis's order on Redis */
    size_t count;
} mr_store_hash;

mr_code mr_store_hset(mr_store *s, const char *key, const char *field, const void *v, size_t len,
                      mr_err *err);
/* One field of mr_store_hset_fields. */
typedef struct mr_store_field {
    const char *name;
    const void *value;
    size_t len;
} mr_store_field;
#define MR_STORE_HSET_MAX 16
/* Sets n fields (1 to MR_STORE_HSET_MAX) of the hash at key, all or none: one HSET on Redis, one
 * transaction on SQLite. A record written field by field cost a round trip a field. */
mr_code mr_store_hset_fields(mr_store *s, const char *key, const mr_store_field *fields, size_t n,
                             mr_err *err);
/* MR_ENOTFOUND when the key or the field is absent. */
mr_code mr_store_hget(mr_store *s, const char *key, const char *field, char **value, size_t *len,
                      mr_err *err);
mr_code mr_store_hdel(mr_store *s, const char *key, const char *field, mr_err *err);
/* An absent key gives an empty hash (count 0), as in Redis. Free with mr_store_hash_free. */
mr_code mr_store_hgetall(mr_store *s, const char *key, mr_store_hash *out, mr_err *err);
void mr_store_hash_free(mr_store_hash *h);

/* Adds `by` to the decimal integer at key (absent counts as 0) and returns the new value.
 * A key created by this call expires after ttl_ms_on_create (0: never); later calls do not
 * extend it, so a window of a rate limit ends when it started plus the TTL. A value that is
 * not a decimal integer is MR_EINVAL. */
mr_code mr_store_incr(mr_store *s, const char *key, long long by, long ttl_ms_on_create, long long *value,
                      mr_err *err);

/* Like set/get, with the value encrypted at rest (AES-256-GCM under a key derived from the
 * instance secret, bound to the store key). A wrong secret, a changed byte or a value copied
 * to another key is MR_EAUTH; a handle opened without a secret is MR_EINVAL. */
mr_code mr_store_set_secret(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms,
                            mr_err *err);
mr_code mr_store_get_secret(mr_store *s, const char *key, char **v, size_t *len, mr_err *err);

/* A round trip to the backend, for /readyz. */
mr_code mr_store_ping(mr_store *s, mr_err *err);

/* Durability of the SQLite backend's writes (Redis follows its own fsync policy: both calls do
 * nothing there). By default each write is on disk when it returns: an fsync per write. After
 * mr_store_sync_on_demand, only sealed writes (mr_store_set_secret: keys, ratchets, tokens) are;
 * the others survive a crash of the process at once, but a power loss only once a later
 * mr_store_sync returned. For a caller that syncs before anything that depends on those writes
 * is made durable elsewhere: `mindroom run`'s bus journal does before each of its commits, so an
 * acknowledgement on the bus never outlives the store writes made before it. */
mr_code mr_store_sync_on_demand(mr_store *s, mr_err *err);
/* Makes every write so far durable (SQLite: one fsync of its write-ahead log, none when nothing
 * was written since the last). */
mr_code mr_store_sync(mr_store *s, mr_err *err);

#endif
