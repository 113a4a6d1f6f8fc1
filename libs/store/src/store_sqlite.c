/* store_sqlite.c -- the embedded store backend: one SQLite file in WAL mode, expiry by wall clock. */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include "mindroom/fsutil.h"
#include "mindroom/clock.h"

/* How long a writer waits for another connection's write lock before giving up. */
#define SQ_BUSY_TIMEOUT_MS 5000
/* Expired rows are swept once per this many writes (and at open); reads skip them anyway. */
#define SQ_SWEEP_EVERY 256
/* With syncs on demand the log is checkpointed by sq_sync once it holds this many pages
 * (SQLite's own auto-checkpoint threshold), instead of by whichever writer passes it. */
#define SQ_CHECKPOINT_PAGES 1000

enum {
    SQ_GET,
    SQ_SET,
    SQ_SET_NX,
    SQ_DEL_KV,
    SQ_DEL_HASH,
    SQ_HASH_EXISTS,
    SQ_HSET,
    SQ_HGET,
    SQ_HDEL,
    SQ_HGETALL,
    SQ_SWEEP,
    SQ_BEGIN,
    SQ_BEGIN_READ,
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_NSTMT
};

/* In kv statements ?1 is the key, ?2 the value, ?3 expires_at (ms since the epoch, NULL for
 * never), ?4 now; in hash statements ?1 key, ?2 field, ?3 value. */
static const char *const SQ_SQL[SQ_NSTMT] = {
    [SQ_GET] = "SELECT value, expires_at FROM kv WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?4)",
    [SQ_SET] = "INSERT INTO kv(key, value, expires_at) VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE "
               "SET value = excluded.value, expires_at = excluded.expires_at",
    /* The update branch runs only over an expired row, so sqlite3_changes() is 1 exactly
     * when this call claimed the key. One statement is one write transaction: two
     * connections cannot both see the key absent. */
    [SQ_SET_NX] = "INSERT INTO kv(key, value, expires_at) VALUES(?1, ?2, ?3) ON CONFLICT(key) DO UPDATE "
                  "SET value = excluded.value, expires_at = excluded.expires_at "
                  "WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?4",
    [SQ_DEL_KV] = "DELETE FROM kv WHERE key = ?1",
    [SQ_DEL_HASH] = "DELETE FROM hash WHERE key = ?1",
    [SQ_HASH_EXISTS] = "SELECT 1 FROM hash WHERE key = ?1 LIMIT 1",
    [SQ_HSET] = "INSERT INTO hash(key, field, value) VALUES(?1, ?2, ?3) ON CONFLICT(key, field) DO UPDATE "
                "SET value = excluded.value",
    [SQ_HGET] = "SELECT value FROM hash WHERE key = ?1 AND field = ?2",
    [SQ_HDEL] = "DELETE FROM hash WHERE key = ?1 AND field = ?2",
    [SQ_HGETALL] = "SELECT field, value FROM hash WHERE key = ?1 ORDER BY field",
    [SQ_SWEEP] = "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?4",
    /* IMMEDIATE takes the write lock up front: a read-then-write transaction that started
     * as a reader could not upgrade while another connection writes, and would fail. */
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    /* Reads only: several values seen at one moment, under one read lock. */
    [SQ_BEGIN_READ] = "BEGIN",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
};

/* synchronous=FULL: in WAL mode NORMAL would survive a process crash but could lose the
 * last commits on power loss, and the store holds Olm ratchet state and claims whose loss
 * means broken sessions or a second reply. FULL costs one fsync of the WAL per commit;
 * mr_store_sync_on_demand trades it for explicit syncs (sq_sync) where the caller orders them. */
static const char SQ_SCHEMA[] =
    "PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at INTEGER)"
    " WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires_at) WHERE expires_at IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS hash (key TEXT NOT NULL, field TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (key, field)) WITHOUT ROWID;";

typedef struct sq {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[SQ_NSTMT];
    unsigned writes;
    char *wal_path;          /* the write-ahead log, which sq_sync flushes */
    atomic_bool unsynced;    /* something was written since the last sq_sync */
    sqlite3 *ckpt;           /* syncs on demand: the connection sq_sync checkpoints through */
    atomic_int wal_pages;    /* syncs on demand: pages in the log after the last commit */
} sq;

static mr_code sq_fail(sq *q, int rc, const char *doing, mr_err *err)
{
    /* A lock held past the busy timeout is another process's long write: worth retrying. */
    mr_code code = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ? MR_EUNAVAIL : MR_EIO;
    return mr_err_set(err, code, "sqlite %s: %s: %s", q->path, doing, sqlite3_errmsg(q->db));
}

/* Times are wall clock, not monotonic: other processes on the same file compare against them. */

/* A prepared statement with ?1 = key and ?4 = now bound; cached for the life of the handle. */
static mr_code sq_stmt(sq *q, int id, const char *key, sqlite3_stmt **out, mr_err *err)
{
    if (!q->st[id]) {
        int rc = sqlite3_prepare_v3(q->db, SQ_SQL[id], -1, SQLITE_PREPARE_PERSISTENT, &q->st[id], NULL);
        if (rc != SQLITE_OK)
            return sq_fail(q, rc, "preparing a statement", err);
    }
    sqlite3_stmt *st = q->st[id];
    int n = sqlite3_bind_parameter_count(st);
    if (n >= 1)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (n >= 4)
        sqlite3_bind_int64(st, 4, mr_clock_wall_ms());
    *out = st;
    return MR_OK;
}

static void sq_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* sqlite3_bind_blob(NULL, 0) would bind SQL NULL; an empty value is an empty blob. */
static void bind_bytes(sqlite3_stmt *st, int i, const void *v, size_t len)
{
    sqlite3_bind_blob64(st, i, len ? v : "", len, SQLITE_STATIC);
}

static void bind_expiry(sqlite3_stmt *st, int i, long ttl_ms)
{
    if (ttl_ms > 0)
        sqlite3_bind_int64(st, i, mr_clock_wall_ms() + ttl_ms);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows; *changes (may be NULL) gets the rows it changed. */
static mr_code sq_exec(sq *q, sqlite3_stmt *st, const char *doing, int *changes, mr_err *err)
{
    int rc = sqlite3_step(st);
    mr_code out = rc == SQLITE_DONE ? MR_OK : sq_fail(q, rc, doing, err);
    if (!sqlite3_stmt_readonly(st))
        atomic_store(&q->unsynced, true);
    if (changes)
        *changes = sqlite3_changes(q->db);
    sq_done(st);
    return out;
}

static mr_code sq_simple(sq *q, int id, const char *key, const char *doing, mr_err *err)
{
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(q, id, key, &st, err);
    return rc == MR_OK ? sq_exec(q, st, doing, NULL, err) : rc;
}

static mr_code sq_begin(sq *q, mr_err *err)
{
    return sq_simple(q, SQ_BEGIN, NULL, "beginning a transaction", err);
}

/* Commits when rc is MR_OK, else rolls back keeping the first error. */
static mr_code sq_end(sq *q, mr_code rc, mr_err *err)
{
    if (rc == MR_OK)
        return sq_simple(q, SQ_COMMIT, NULL, "committing", err);
    sq_simple(q, SQ_ROLLBACK, NULL, "rolling back", NULL);
    return rc;
}

static mr_code sq_copy_column(sqlite3_stmt *st, int col, char **v, size_t *len, mr_err *err)
{
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *copy = Mr_store_dup_bytes(sqlite3_column_blob(st, col), n);
    if (!copy)
        return mr_err_set(err, MR_ENOMEM, "out of memory for a %zu-byte value", n);
    *v = copy;
    if (len)
        *len = n;
    return MR_OK;
}

/* Reads a live value; *expires_at (may be NULL) gets its deadline in ms, -1 for none. */
static mr_code sq_read(sq *q, const char *key, char **v, size_t *len, long long *expires_at, mr_err *err)
{
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(q, SQ_GET, key, &st, err);
    if (rc != MR_OK)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        rc = v ? sq_copy_column(st, 0, v, len, err) : MR_OK;
        if (expires_at)
            *expires_at = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 1);
    } else if (step == SQLITE_DONE) {
        rc = mr_err_set(err, MR_ENOTFOUND, "not found");
    } else {
        rc = sq_fail(q, step, "reading", err);
    }
    sq_done(st);
    return rc;
}

static mr_code sq_get_many(void *b, const char *const *keys, size_t n, char **values, size_t *lens,
                           mr_err *err)
{
    sq *q = b;
    mr_code rc = sq_simple(q, SQ_BEGIN_READ, NULL, "beginning a read transaction", err);
    for (size_t i = 0; rc == MR_OK && i < n; i++) {
        rc = sq_read(q, keys[i], &values[i], lens ? &lens[i] : NULL, NULL, err);
        if (rc == MR_ENOTFOUND) {
            mr_err_clear(err);
            rc = MR_OK;
        }
    }
    rc = sq_end(q, rc, err);
    for (size_t i = 0; rc != MR_OK && i < n; i++) {
        free(values[i]);
        values[i] = NULL;
    }
    return rc;
}

static mr_code sq_write(sq *q, int id, const char *key, const void *v, size_t len, long ttl_ms,
                        long long expires_at, int *changes, mr_err *err)
{
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(q, id, key, &st, err);
    if (rc != MR_OK)
        return rc;
    bind_bytes(st, 2, v, len);
    if (expires_at > 0)
        sqlite3_bind_int64(st, 3, expires_at);
    else
        bind_expiry(st, 3, ttl_ms);
    rc = sq_exec(q, st, "writing", changes, err);
    /* Sweeping is housekeeping: its failure leaves expired rows that reads skip anyway. */
    if (rc == MR_OK && ++q->writes % SQ_SWEEP_EVERY == 0)
        sq_simple(q, SQ_SWEEP, NULL, "sweeping expired values", NULL);
    return rc;
}

static mr_code sq_get(void *b, const char *key, char **v, size_t *len, mr_err *err)
{
    return sq_read(b, key, v, len, NULL, err);
}

static mr_code sq_set(void *b, const char *key, const void *v, size_t len, long ttl_ms, mr_err *err)
{
    return sq_write(b, SQ_SET, key, v, len, ttl_ms, 0, NULL, err);
}

static mr_code sq_set_nx(void *b, const char *key, const void *v, size_t len, long ttl_ms, bool *won,
                         mr_err *err)
{
    int changes = 0;
    mr_code rc = sq_write(b, SQ_SET_NX, key, v, len, ttl_ms, 0, &changes, err);
    *won = rc == MR_OK && changes == 1;
    return rc;
}

static mr_code sq_hash_exists(sq *q, const char *key, bool *exists, mr_err *err);

/* Inside one transaction: the value at key (cur NULL when there is none) handed to fn, which
 * may write; committed when fn returns MR_OK, else rolled back. */
typedef mr_code (*sq_update_fn)(sq *q, const char *key, const char *cur, size_t cur_len, long long expires_at,
                                void *ctx, mr_err *err);

/* The read and fn of sq_update, inside a transaction the caller holds. */
static mr_code sq_update_in(sq *q, const char *key, sq_update_fn fn, void *ctx, mr_err *err)
{
    char *cur = NULL;
    size_t cur_len = 0;
    long long expires_at = -1;
    mr_code rc = sq_read(q, key, &cur, &cur_len, &expires_at, err);
    bool found = rc == MR_OK;
    if (rc == MR_ENOTFOUND)
        rc = MR_OK;
    if (rc == MR_OK)
        rc = fn(q, key, found ? cur : NULL, cur_len, expires_at, ctx, err);
    free(cur);
    return rc;
}

static mr_code sq_update(sq *q, const char *key, sq_update_fn fn, void *ctx, mr_err *err)
{
    mr_code rc = sq_begin(q, err);
    return rc == MR_OK ? sq_end(q, sq_update_in(q, key, fn, ctx, err), err) : rc;
}

typedef struct sq_cas_op {
    const void *expect, *v;
    size_t expect_len, len;
    long ttl_ms;
    bool match;
} sq_cas_op;

static mr_code sq_cas_step(sq *q, const char *key, const char *cur, size_t cur_len, long long expires_at, void *ctx,
                           mr_err *err)
{
    (void)expires_at;
    sq_cas_op *op = ctx;
    op->match = cur ? op->expect && cur_len == op->expect_len && memcmp(cur, op->expect, cur_len) == 0
                    : op->expect == NULL;
    if (!op->match)
        return MR_OK;
    /* Redis's GET in the script fails on a hash (WRONGTYPE); so does this. */
    bool hash = false;
    mr_code rc = cur ? MR_OK : sq_hash_exists(q, key, &hash, err);
    if (rc == MR_OK && hash)
        rc = mr_err_set(err, MR_EINVAL, "the key holds a hash, not a value");
    return rc == MR_OK ? sq_write(q, SQ_SET, key, op->v, op->len, op->ttl_ms, 0, NULL, err) : rc;
}

static mr_code sq_cas(void *b, const char *key, const void *expect, size_t expect_len, const void *v,
                      size_t len, long ttl_ms, bool *swapped, mr_err *err)
{
    sq_cas_op op = {.expect = expect, .expect_len = expect_len, .v = v, .len = len, .ttl_ms = ttl_ms};
    mr_code rc = sq_update(b, key, sq_cas_step, &op, err);
    *swapped = rc == MR_OK && op.match;
    return rc;
}

static mr_code sq_del_both(sq *q, const char *key, mr_err *err)
{
    mr_code rc = sq_simple(q, SQ_DEL_KV, key, "deleting", err);
    return rc == MR_OK ? sq_simple(q, SQ_DEL_HASH, key, "deleting", err) : rc;
}

static mr_code sq_del(void *b, const char *key, mr_err *err)
{
    sq *q = b;
    mr_code rc = sq_begin(q, err);
    return rc == MR_OK ? sq_end(q, sq_del_both(q, key, err), err) : rc;
}

/* One write of a batch, inside its transaction. */
static mr_code sq_batch_one(sq *q, const char *key, mr_store_op *op, mr_err *err)
{
    int changes = 0;
    mr_code rc;
    switch (op->kind) {
    case MR_STORE_OP_SET:
        rc = sq_write(q, SQ_SET, key, op->value, op->len, op->ttl_ms, 0, NULL, err);
        op->done = rc == MR_OK;
        return rc;
    case MR_STORE_OP_SET_NX:
        rc = sq_write(q, SQ_SET_NX, key, op->value, op->len, op->ttl_ms, 0, &changes, err);
        op->done = rc == MR_OK && changes == 1;
        return rc;
    case MR_STORE_OP_CAS: {
        sq_cas_op cas = {.expect = op->expect, .expect_len = op->expect_len, .v = op->value, .len = op->len,
                         .ttl_ms = op->ttl_ms};
        rc = sq_update_in(q, key, sq_cas_step, &cas, err);
        op->done = rc == MR_OK && cas.match;
        return rc;
    }
    case MR_STORE_OP_DEL:
        rc = sq_del_both(q, key, err);
        op->done = rc == MR_OK;
        return rc;
    }
    return mr_err_set(err, MR_EINVAL, "no such write");
}

static mr_code sq_batch(void *b, const char *const *keys, mr_store_op *ops, size_t n, size_t *failed, mr_err *err)
{
    sq *q = b;
    *failed = n;
    mr_code rc = sq_begin(q, err), first = MR_OK;
    for (size_t i = 0; rc == MR_OK && i < n; i++) {
        mr_err one = {0};
        ops[i].rc = sq_batch_one(q, keys[i], &ops[i], &one);
        /* A write that failed left the transaction open (SQLite undoes the failed statement
         * alone) unless the failure was the transaction's own: then it is the unit's. */
        if (ops[i].rc != MR_OK && sqlite3_get_autocommit(q->db)) {
            rc = ops[i].rc;
            *err = one;
        } else if (ops[i].rc != MR_OK && first == MR_OK) {
            first = ops[i].rc;
            *failed = i;
            *err = one;
        }
    }
    if (rc == MR_OK)
        rc = sq_simple(q, SQ_COMMIT, NULL, "committing", err);
    if (rc == MR_OK)
        return first;
    if (!sqlite3_get_autocommit(q->db))
        sq_simple(q, SQ_ROLLBACK, NULL, "rolling back", NULL);
    *failed = n;
    for (size_t i = 0; i < n; i++) {
        ops[i].rc = rc;
        ops[i].done = false;
    }
    return rc;
}

static mr_code sq_hash_exists(sq *q, const char *key, bool *exists, mr_err *err)
{
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(q, SQ_HASH_EXISTS, key, &st, err);
    if (rc != MR_OK)
        return rc;
    int step = sqlite3_step(st);
    *exists = step == SQLITE_ROW;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = sq_fail(q, step, "reading", err);
    sq_done(st);
    return rc;
}

static mr_code sq_ttl(void *b, const char *key, long *ttl_ms, mr_err *err)
{
    sq *q = b;
    long long expires_at = -1;
    mr_code rc = sq_read(q, key, NULL, NULL, &expires_at, err);
    if (rc == MR_OK) {
        long long left = expires_at - mr_clock_wall_ms();
        /* Still live when read, so at least 1 ms is left even if the clock moved on since. */
        *ttl_ms = expires_at < 0 ? -1 : left < 1 ? 1 : (long)left;
        return MR_OK;
    }
    if (rc != MR_ENOTFOUND)
        return rc;
    bool exists = false;
    rc = sq_hash_exists(q, key, &exists, err);
    if (rc != MR_OK)
        return rc;
    if (!exists)
        return mr_err_set(err, MR_ENOTFOUND, "not found");
    *ttl_ms = -1;
    return MR_OK;
}

static mr_code sq_hset_one(sq *q, const char *key, const mr_store_field *f, mr_err *err)
{
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(q, SQ_HSET, key, &st, err);
    if (rc != MR_OK)
        return rc;
    sqlite3_bind_text(st, 2, f->name, -1, SQLITE_STATIC);
    bind_bytes(st, 3, f->value, f->len);
    return sq_exec(q, st, "writing", NULL, err);
}

static mr_code sq_hset(void *b, const char *key, const mr_store_field *fields, size_t n, mr_err *err)
{
    sq *q = b;
    if (n == 1)
        return sq_hset_one(q, key, fields, err);
    mr_code rc = sq_begin(q, err);
    for (size_t i = 0; rc == MR_OK && i < n; i++)
        rc = sq_hset_one(q, key, &fields[i], err);
    return sq_end(q, rc, err);
}

static mr_code sq_hget(void *b, const char *key, const char *field, char **v, size_t *len, mr_err *err)
{
    sq *q = b;
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(q, SQ_HGET, key, &st, err);
    if (rc != MR_OK)
        return rc;
    sqlite3_bind_text(st, 2, field, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = sq_copy_column(st, 0, v, len, err);
    else if (step == SQLITE_DONE)
        rc = mr_err_set(err, MR_ENOTFOUND, "not found");
    else
        rc = sq_fail(q, step, "reading", err);
    sq_done(st);
    return rc;
}

static mr_code sq_hdel(void *b, const char *key, const char *field, mr_err *err)
{
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(b, SQ_HDEL, key, &st, err);
    if (rc != MR_OK)
        return rc;
    sqlite3_bind_text(st, 2, field, -1, SQLITE_STATIC);
    return sq_exec(b, st, "deleting", NULL, err);
}

static mr_code sq_hash_append(sqlite3_stmt *st, mr_store_hash *out, size_t *cap, mr_err *err)
{
    if (out->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        mr_store_hash_entry *grown = realloc(out->entries, ncap * sizeof *grown);
        if (!grown)
            return mr_err_set(err, MR_ENOMEM, "out of memory reading a hash");
        out->entries = grown;
        *cap = ncap;
    }
    mr_store_hash_entry *e = &out->entries[out->count];
    mr_code rc = sq_copy_column(st, 0, &e->field, NULL, err);
    if (rc != MR_OK)
        return rc;
    rc = sq_copy_column(st, 1, &e->value, &e->value_len, err);
    if (rc != MR_OK) {
        free(e->field);
        return rc;
    }
    out->count++;
    return MR_OK;
}

static mr_code sq_hgetall(void *b, const char *key, mr_store_hash *out, mr_err *err)
{
    sq *q = b;
    sqlite3_stmt *st = NULL;
    mr_code rc = sq_stmt(q, SQ_HGETALL, key, &st, err);
    if (rc != MR_OK)
        return rc;
    size_t cap = 0;
    int step = SQLITE_DONE;
    while (rc == MR_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = sq_hash_append(st, out, &cap, err);
    if (rc == MR_OK && step != SQLITE_DONE)
        rc = sq_fail(q, step, "reading", err);
    sq_done(st);
    if (rc != MR_OK)
        mr_store_hash_free(out);
    return rc;
}

/* Redis's INCRBY accepts exactly an optional '-' and digits that fit in 64 bits; so do we. */
static bool parse_ll(const char *s, size_t len, long long *out)
{
    if (len == 0 || len > 20 || strlen(s) != len || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

typedef struct sq_incr_op {
    long long by, value;
    long ttl_ms_on_create;
} sq_incr_op;

static mr_code sq_incr_step(sq *q, const char *key, const char *cur, size_t cur_len, long long expires_at,
                            void *ctx, mr_err *err)
{
    sq_incr_op *op = ctx;
    long long old = 0, by = op->by;
    if (cur && !parse_ll(cur, cur_len, &old))
        return mr_err_set(err, MR_EINVAL, "the value is not a decimal integer");
    if ((by > 0 && old > LLONG_MAX - by) || (by < 0 && old < LLONG_MIN - by))
        return mr_err_set(err, MR_EINVAL, "adding %lld would overflow", by);
    op->value = old + by;
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", op->value);
    /* A new counter gets its TTL; an existing one keeps its deadline (or none). */
    return sq_write(q, SQ_SET, key, buf, (size_t)n, cur ? 0 : op->ttl_ms_on_create, cur ? expires_at : 0, NULL, err);
}

static mr_code sq_incr(void *b, const char *key, long long by, long ttl_ms_on_create, long long *value,
                       mr_err *err)
{
    sq_incr_op op = {.by = by, .ttl_ms_on_create = ttl_ms_on_create};
    mr_code rc = sq_update(b, key, sq_incr_step, &op, err);
    if (rc == MR_OK)
        *value = op.value;
    return rc;
}

static mr_code sq_ping(void *b, mr_err *err)
{
    bool exists;
    return sq_hash_exists(b, "ping", &exists, err);
}

/* Replaces SQLite's auto-checkpoint: notes the log's size for sq_sync. */
static int sq_wal_pages(void *ctx, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    atomic_store(&((sq *)ctx)->wal_pages, pages);
    return SQLITE_OK;
}

/* From now on a commit leaves the write-ahead log to the page cache; sq_sync flushes it, and
 * checkpoints it too: an auto-checkpoint runs inside the commit that passes the threshold, two
 * fsyncs and a copy of the log on whatever thread wrote (a message's hop), where sq_sync runs
 * on the thread that syncs (the bus journal's writer). The checkpoint has a connection of its
 * own (serialized, as two threads may sync at once), so writers go on meanwhile. */
static mr_code sq_sync_on_demand(void *b, mr_err *err)
{
    sq *q = b;
    int rc = sqlite3_exec(q->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(q, rc, "setting synchronous", err);
    if (!q->ckpt) {
        rc = sqlite3_open_v2(q->path, &q->ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
        /* A connection that has not read the file yet does not know it is in WAL mode, and its
         * checkpoints do nothing. */
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(q->ckpt, "PRAGMA journal_mode", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            mr_code code = q->ckpt ? mr_err_set(err, MR_EIO, "sqlite %s: opening its checkpoint connection: %s",
                                                q->path, sqlite3_errmsg(q->ckpt))
                                   : mr_err_set(err, MR_ENOMEM, "sqlite %s: out of memory", q->path);
            sqlite3_close(q->ckpt);
            q->ckpt = NULL;
            return code;
        }
    }
    sqlite3_wal_hook(q->db, sq_wal_pages, q);
    return MR_OK;
}

/* A passive checkpoint (it waits for no reader or writer) once the log is long. It syncs the
 * log first and the database file after, as an auto-checkpoint would. Busy (another checkpoint
 * of the file) leaves it to the next sync. */
static mr_code sq_checkpoint(sq *q, mr_err *err)
{
    if (!q->ckpt || atomic_load(&q->wal_pages) < SQ_CHECKPOINT_PAGES)
        return MR_OK;
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(q->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_BUSY)
        return MR_OK;
    if (rc != SQLITE_OK)
        return mr_err_set(err, MR_EIO, "sqlite %s: checkpointing its write-ahead log: %s", q->path,
                          sqlite3_errmsg(q->ckpt));
    /* All of it copied: the next commit starts the log over. */
    if (done == log)
        atomic_store(&q->wal_pages, 0);
    return MR_OK;
}

/* One fsync of the write-ahead log makes every commit in it durable; earlier ones were
 * checkpointed into the database file, which SQLite syncs after each checkpoint. Runs without
 * the store's lock, through a descriptor of its own, so writers go on meanwhile: a commit that
 * lands during the fsync sets unsynced again and the next sync covers it. The log carries no
 * POSIX locks (WAL mode locks the -shm file), so closing this descriptor releases none of
 * SQLite's. */
static mr_code sq_sync(void *b, mr_err *err)
{
    sq *q = b;
    if (!atomic_exchange(&q->unsynced, false))
        return MR_OK;
    int fd = open(q->wal_path, O_RDONLY | O_CLOEXEC);
    /* No log: closing it checkpointed everything into the synced database file. */
    if (fd < 0 && errno == ENOENT)
        return MR_OK;
    int e = fd < 0 ? errno : fdatasync(fd) == 0 ? 0 : errno;
    if (fd >= 0)
        close(fd);
    if (e == 0)
        return sq_checkpoint(q, err);
    atomic_store(&q->unsynced, true);
    return mr_err_errno(err, MR_EIO, e, "sqlite %s: syncing its write-ahead log", q->path);
}

static void sq_close(void *b)
{
    sq *q = b;
    /* First: the last connection to close checkpoints the log and removes it. */
    sqlite3_close(q->ckpt);
    for (int i = 0; i < SQ_NSTMT; i++)
        sqlite3_finalize(q->st[i]);
    sqlite3_close(q->db);
    free(q->path);
    free(q->wal_path);
    free(q);
}

static const mr_store_ops SQ_OPS = {
    .get = sq_get,
    .get_many = sq_get_many,
    .set = sq_set,
    .set_nx = sq_set_nx,
    .cas = sq_cas,
    .del = sq_del,
    .ttl = sq_ttl,
    .hset = sq_hset,
    .hget = sq_hget,
    .hdel = sq_hdel,
    .hgetall = sq_hgetall,
    .incr = sq_incr,
    .ping = sq_ping,
    .batch = sq_batch,
    .sync_on_demand = sq_sync_on_demand,
    .sync = sq_sync,
    .close = sq_close,
};

/* Creates the file 0600 (and missing parents 0700) before SQLite does, so it never exists
 * with the umask's looser mode. SQLite gives the -wal and -shm files the same mode. */
static mr_code sq_create_file(const char *path, mr_err *err)
{
    char dir[PATH_MAX];
    mr_fs_dirname(path, dir, sizeof dir);
    mr_code rc = mr_fs_mkdirs(dir, 0700, err);
    if (rc != MR_OK)
        return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return mr_err_errno(err, MR_EIO, errno, "opening %s", path);
    close(fd);
    return MR_OK;
}

static mr_code sq_setup(sq *q, mr_err *err)
{
    int rc = sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return q->db ? sq_fail(q, rc, "opening", err)
                     : mr_err_set(err, MR_ENOMEM, "sqlite %s: out of memory", q->path);
    sqlite3_busy_timeout(q->db, SQ_BUSY_TIMEOUT_MS);
    /* WAL lets readers go on while one connection writes; the pragma answers the mode it got. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(q, rc, "setting journal_mode", err);
    rc = sqlite3_step(st);
    bool wal = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sq_fail(q, rc, "setting journal_mode", err);
    if (!wal)
        return mr_err_set(err, MR_EIO, "sqlite %s: the file system does not allow WAL mode", q->path);
    rc = sqlite3_exec(q->db, SQ_SCHEMA, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(q, rc, "creating tables", err);
    return sq_simple(q, SQ_SWEEP, NULL, "sweeping expired values", err);
}

mr_code Mr_store_sqlite_open(const mr_store_url *u, const mr_store_ops **ops, void **impl, mr_err *err)
{
    sq *q = calloc(1, sizeof *q);
    size_t wal_len = strlen(u->path) + sizeof "-wal";
    if (!q || !(q->path = strdup(u->path)) || !(q->wal_path = malloc(wal_len))) {
        if (q)
            free(q->path);
        free(q);
        return mr_err_set(err, MR_ENOMEM, "out of memory");
    }
    snprintf(q->wal_path, wal_len, "%s-wal", u->path);
    mr_code rc = sq_create_file(q->path, err);
    if (rc == MR_OK)
        rc = sq_setup(q, err);
    if (rc != MR_OK) {
        sq_close(q);
        return rc;
    }
    *ops = &SQ_OPS;
    *impl = q;
    return MR_OK;
}
