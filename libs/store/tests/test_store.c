/* test_store.c -- the store against a real redis-server and real SQLite files: every behaviour on both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include <sqlite3.h>

#include "mindroom/store.h"
#include "peers.h"
#include "mindroom/clock.h"

#define RACE_KEYS 1000
#define POLL_LIMIT_MS 10000

static const unsigned char SECRET[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char OTHER_SECRET[32] = "fedcba9876543210fedcba9876543210";
static const mr_store_options WITH_SECRET = {SECRET, sizeof SECRET};

static mr_tp_redis g_redis;
static char g_dir[256];
static int g_db_seq;

typedef struct backend {
    const char *name;
    bool redis;
} backend;

static backend B_SQLITE = {"sqlite", false};
static backend B_REDIS = {"redis", true};

/* Per test: a store on a fresh SQLite file, or on the shared redis-server flushed empty. */
typedef struct fx {
    const backend *b;
    char url[512];
    mr_store *s;
} fx;

/* A command sent to redis-server directly, beside the store, to look at what it wrote. */
static redisReply *raw_redis(int port, const char *fmt, ...)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(rep);
    return rep;
}

static mr_store *open_ok(const char *url, const mr_store_options *opts)
{
    mr_err err = {0};
    mr_store *s = NULL;
    mr_code rc = mr_store_open(url, opts, &s, &err);
    if (rc != MR_OK)
        fail_msg("opening %s: %s", url, err.msg);
    return s;
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_tp_redis_start(&g_redis, &err) != MR_OK) {
        fprintf(stderr, "starting redis-server: %s\n", err.msg);
        return -1;
    }
    if (mr_tp_mkdtemp("mr-store", g_dir, sizeof g_dir, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_tp_redis_destroy(&g_redis);
    mr_tp_rmtree(g_dir, NULL);
    return 0;
}

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->b = *state;
    if (f->b->redis) {
        freeReplyObject(raw_redis(g_redis.port, "FLUSHALL"));
        snprintf(f->url, sizeof f->url, "%s", g_redis.url);
    } else {
        snprintf(f->url, sizeof f->url, "sqlite://%s/t%d.db", g_dir, ++g_db_seq);
    }
    f->s = open_ok(f->url, &WITH_SECRET);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    mr_store_close(f->s);
    free(f);
    return 0;
}

static void check_value(mr_store *s, const char *key, const void *want, size_t want_len)
{
    mr_err err = {0};
    char *v = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get(s, key, &v, &len, &err);
    if (rc != MR_OK)
        fail_msg("get %s: %s", key, err.msg);
    assert_int_equal(len, want_len);
    assert_memory_equal(v, want, want_len);
    assert_int_equal(v[len], '\0');
    free(v);
}

static void expect_absent(mr_store *s, const char *key)
{
    mr_err err = {0};
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_get(s, key, &v, &len, &err), MR_ENOTFOUND);
    assert_null(v);
}

static void set_ok(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms)
{
    mr_err err = {0};
    mr_code rc = mr_store_set(s, key, v, len, ttl_ms, &err);
    if (rc != MR_OK)
        fail_msg("set %s: %s", key, err.msg);
}

static long ttl_of(mr_store *s, const char *key)
{
    mr_err err = {0};
    long ttl = -99;
    mr_code rc = mr_store_ttl(s, key, &ttl, &err);
    if (rc != MR_OK)
        fail_msg("ttl %s: %s", key, err.msg);
    return ttl;
}

/* Polls until the key is gone; the bound is generous so only a broken expiry fails. */
static void wait_gone(mr_store *s, const char *key)
{
    long long deadline = mr_clock_mono_ms() + POLL_LIMIT_MS;
    mr_err err = {0};
    char *v = NULL;
    size_t len;
    mr_code rc;
    while ((rc = mr_store_get(s, key, &v, &len, &err)) == MR_OK && mr_clock_mono_ms() < deadline) {
        free(v);
        v = NULL;
        mr_clock_sleep_ms(20);
    }
    free(v);
    assert_int_equal(rc, MR_ENOTFOUND);
}

/* ---- behaviours, run on both backends ---- */

static void test_roundtrip_binary(void **state)
{
    fx *f = *state;
    static const char bin[] = {'a', '\0', 'b', '\0', (char)0xff, '\n'};
    set_ok(f->s, "bin", bin, sizeof bin, 0);
    check_value(f->s, "bin", bin, sizeof bin);
    set_ok(f->s, "bin", "x\0y", 3, 0);
    check_value(f->s, "bin", "x\0y", 3);
    set_ok(f->s, "empty", NULL, 0, 0);
    check_value(f->s, "empty", "", 0);
    assert_int_equal(ttl_of(f->s, "bin"), -1);

    mr_err err = {0};
    assert_int_equal(mr_store_del(f->s, "bin", &err), MR_OK);
    expect_absent(f->s, "bin");
    assert_int_equal(mr_store_del(f->s, "bin", &err), MR_OK);

    char *v = NULL;
    size_t len;
    assert_int_equal(mr_store_get(f->s, "missing", &v, &len, &err), MR_ENOTFOUND);
    assert_string_equal(err.msg, "store get \"missing\": not found");
    long ttl;
    assert_int_equal(mr_store_ttl(f->s, "missing", &ttl, &err), MR_ENOTFOUND);
    assert_int_equal(mr_store_get(f->s, "", &v, &len, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store get: the key is empty");
    assert_int_equal(mr_store_set(f->s, "k", "v", 1, -5, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store set \"k\": ttl -5 ms is negative");
    assert_int_equal(mr_store_ping(f->s, &err), MR_OK);
}

/* Several keys in one call: values where there are, NULL for the absent, the expired and a hash;
 * a bad count or an empty key changes nothing and says why. */
static void test_get_many(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    set_ok(f->s, "a", "x\0y", 3, 0);
    set_ok(f->s, "b", "", 0, 0);
    set_ok(f->s, "short", "gone soon", 9, 150);
    assert_int_equal(mr_store_hset(f->s, "h", "f", "v", 1, &err), MR_OK);
    wait_gone(f->s, "short");
    const char *keys[] = {"a", "missing", "b", "short", "a", "h"};
    char *v[6];
    size_t lens[6] = {0};
    mr_code rc = mr_store_get_many(f->s, keys, 6, v, lens, &err);
    if (rc != MR_OK)
        fail_msg("get_many: %s", err.msg);
    assert_non_null(v[0]);
    assert_int_equal(lens[0], 3);
    assert_memory_equal(v[0], "x\0y", 4);
    assert_null(v[1]);
    assert_non_null(v[2]);
    assert_int_equal(lens[2], 0);
    assert_string_equal(v[2], "");
    assert_null(v[3]);
    assert_string_equal(v[4], "x");
    assert_null(v[5]);
    for (size_t i = 0; i < 6; i++)
        free(v[i]);
    /* Without lengths, one key. */
    assert_int_equal(mr_store_get_many(f->s, keys, 1, v, NULL, &err), MR_OK);
    assert_int_equal(v[0][1], '\0');
    free(v[0]);

    const char *nine[MR_STORE_GET_MANY_MAX + 1];
    for (size_t i = 0; i < MR_STORE_GET_MANY_MAX + 1; i++)
        nine[i] = "a";
    char *w[MR_STORE_GET_MANY_MAX + 1];
    assert_int_equal(mr_store_get_many(f->s, nine, MR_STORE_GET_MANY_MAX + 1, w, NULL, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store get_many: 9 keys; 1 to 8 can be read at once");
    assert_int_equal(mr_store_get_many(f->s, nine, 0, w, NULL, &err), MR_EINVAL);
    const char *empty[] = {"a", ""};
    assert_int_equal(mr_store_get_many(f->s, empty, 2, w, NULL, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store get_many: the key is empty");
    assert_null(w[0]);
    assert_null(w[1]);
    check_value(f->s, "a", "x\0y", 3);
}

static void test_ttl_expiry(void **state)
{
    fx *f = *state;
    set_ok(f->s, "long", "v", 1, 60000);
    long ttl = ttl_of(f->s, "long");
    assert_true(ttl > 0 && ttl <= 60000);
    /* A plain set clears an earlier TTL, as Redis's SET does. */
    set_ok(f->s, "long", "w", 1, 0);
    assert_int_equal(ttl_of(f->s, "long"), -1);

    set_ok(f->s, "short", "gone soon", 9, 150);
    wait_gone(f->s, "short");
    mr_err err = {0};
    assert_int_equal(mr_store_ttl(f->s, "short", &ttl, &err), MR_ENOTFOUND);
    /* An expired key is free to claim again. */
    bool won = false;
    assert_int_equal(mr_store_set_nx(f->s, "short", "again", 5, 0, &won, &err), MR_OK);
    assert_true(won);
    check_value(f->s, "short", "again", 5);
    check_value(f->s, "long", "w", 1);
}

typedef struct racer {
    mr_store *s;
    pthread_barrier_t *start;
    char tag;
    bool reverse;
    unsigned char won[RACE_KEYS];
    int failures;
    mr_err err;
} racer;

static void *race_claims(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->start);
    for (int n = 0; n < RACE_KEYS; n++) {
        int i = r->reverse ? RACE_KEYS - 1 - n : n;
        char key[64];
        snprintf(key, sizeof key, "claim:%d", i);
        bool won = false;
        if (mr_store_set_nx(r->s, key, &r->tag, 1, 600000, &won, &r->err) != MR_OK)
            r->failures++;
        r->won[i] = won;
    }
    return NULL;
}

/* Two threads claim the same keys at once; each key must go to exactly one, and hold its tag.
 * With b_reverse the second walks the keys backwards, so both are sure to win some even when
 * one connection keeps the write lock while the other backs off. */
static void race_and_check(mr_store *a, mr_store *b, bool b_reverse, mr_store *reader)
{
    static racer r[2];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    memset(r, 0, sizeof r);
    r[0] = (racer){.s = a, .start = &start, .tag = 'A'};
    r[1] = (racer){.s = b, .start = &start, .tag = 'B', .reverse = b_reverse};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_claims, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&start);
    if (r[0].failures || r[1].failures)
        fail_msg("%d+%d claims failed: %s%s", r[0].failures, r[1].failures, r[0].err.msg, r[1].err.msg);
    int won_a = 0;
    for (int i = 0; i < RACE_KEYS; i++) {
        if (r[0].won[i] + r[1].won[i] != 1)
            fail_msg("key claim:%d won %d times", i, r[0].won[i] + r[1].won[i]);
        char key[64];
        snprintf(key, sizeof key, "claim:%d", i);
        check_value(reader, key, r[0].won[i] ? "A" : "B", 1);
        won_a += r[0].won[i];
    }
    print_message("thread A won %d of %d claims\n", won_a, RACE_KEYS);
}

static void test_set_nx_race(void **state)
{
    fx *f = *state;
    race_and_check(f->s, f->s, false, f->s);
    bool won = true;
    mr_err err = {0};
    assert_int_equal(mr_store_set_nx(f->s, "claim:0", "C", 1, 0, &won, &err), MR_OK);
    assert_false(won);
    long ttl = ttl_of(f->s, "claim:0");
    assert_true(ttl > 0 && ttl <= 600000);
}

static void cas_expect(mr_store *s, const char *key, const void *expect, size_t expect_len, const char *v,
                       long ttl_ms, bool want)
{
    mr_err err = {0};
    bool swapped = !want;
    mr_code rc = mr_store_cas(s, key, expect, expect_len, v, strlen(v), ttl_ms, &swapped, &err);
    if (rc != MR_OK)
        fail_msg("cas %s: %s", key, err.msg);
    assert_int_equal(swapped, want);
}

static void test_cas(void **state)
{
    fx *f = *state;
    cas_expect(f->s, "c", NULL, 0, "one", 0, true);
    check_value(f->s, "c", "one", 3);
    cas_expect(f->s, "c", NULL, 0, "two", 0, false);
    cas_expect(f->s, "c", "on", 2, "two", 0, false);
    cas_expect(f->s, "c", "one!", 4, "two", 0, false);
    cas_expect(f->s, "c", "ONE", 3, "two", 0, false);
    check_value(f->s, "c", "one", 3);
    assert_int_equal(ttl_of(f->s, "c"), -1);
    cas_expect(f->s, "c", "one", 3, "two", 60000, true);
    check_value(f->s, "c", "two", 3);
    long ttl = ttl_of(f->s, "c");
    assert_true(ttl > 0 && ttl <= 60000);
    cas_expect(f->s, "c", "two", 3, "three", 0, true);
    assert_int_equal(ttl_of(f->s, "c"), -1);
    /* Binary expectations compare every byte, NULs included. */
    set_ok(f->s, "b", "a\0b", 3, 0);
    cas_expect(f->s, "b", "a\0c", 3, "x", 0, false);
    cas_expect(f->s, "b", "a\0b", 3, "x", 0, true);
    check_value(f->s, "b", "x", 1);
    cas_expect(f->s, "absent", "x", 1, "y", 0, false);
    expect_absent(f->s, "absent");
}

static mr_store_op op_of(mr_store_op_kind kind, const char *key, const char *value, const char *expect, long ttl)
{
    return (mr_store_op){.kind = kind, .key = key, .value = value, .len = value ? strlen(value) : 0,
                         .expect = expect, .expect_len = expect ? strlen(expect) : 0, .ttl_ms = ttl};
}

/* Every kind of write in one batch, each with the outcome a call of its own would have. */
static void test_batch_writes(void **state)
{
    fx *f = *state;
    set_ok(f->s, "held", "first", 5, 0);
    set_ok(f->s, "swap", "old", 3, 0);
    set_ok(f->s, "gone", "x", 1, 0);
    mr_store_op ops[] = {
        op_of(MR_STORE_OP_SET, "plain", "v1", NULL, 60000),
        op_of(MR_STORE_OP_SET_NX, "fresh", "mine", NULL, 0),
        op_of(MR_STORE_OP_SET_NX, "held", "mine", NULL, 0),
        op_of(MR_STORE_OP_CAS, "swap", "new", "old", 0),
        op_of(MR_STORE_OP_CAS, "swap", "newer", "old", 0),
        op_of(MR_STORE_OP_CAS, "created", "c", NULL, 0),
        op_of(MR_STORE_OP_DEL, "gone", NULL, NULL, 0),
    };
    mr_err err = {0};
    mr_code rc = mr_store_batch(f->s, ops, sizeof ops / sizeof ops[0], &err);
    if (rc != MR_OK)
        fail_msg("batch: %s", err.msg);
    const bool done[] = {true, true, false, true, false, true, true};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        assert_int_equal(ops[i].rc, MR_OK);
        assert_int_equal(ops[i].done, done[i]);
    }
    check_value(f->s, "plain", "v1", 2);
    long ttl = ttl_of(f->s, "plain");
    assert_true(ttl > 0 && ttl <= 60000);
    check_value(f->s, "fresh", "mine", 4);
    check_value(f->s, "held", "first", 5);
    /* In order: the second compare-and-set saw the first one's value. */
    check_value(f->s, "swap", "new", 3);
    check_value(f->s, "created", "c", 1);
    expect_absent(f->s, "gone");
}

/* A write that fails in the middle fails alone: those before and after it apply, and the call
 * names it. */
static void test_batch_failure_midway(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    assert_int_equal(mr_store_hset(f->s, "h", "field", "fv", 2, &err), MR_OK);
    mr_store_op ops[] = {
        op_of(MR_STORE_OP_SET, "before", "b", NULL, 0),
        op_of(MR_STORE_OP_CAS, "h", "over the hash", NULL, 0),
        op_of(MR_STORE_OP_SET_NX, "after", "a", NULL, 0),
    };
    assert_int_equal(mr_store_batch(f->s, ops, 3, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "store batch: write 1 (cas \"h\")"));
    assert_null(strstr(err.msg, "over the hash"));
    assert_int_equal(ops[0].rc, MR_OK);
    assert_true(ops[0].done);
    assert_int_equal(ops[1].rc, MR_EINVAL);
    assert_false(ops[1].done);
    assert_int_equal(ops[2].rc, MR_OK);
    assert_true(ops[2].done);
    check_value(f->s, "before", "b", 1);
    check_value(f->s, "after", "a", 1);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_hget(f->s, "h", "field", &v, &len, &err), MR_OK);
    assert_string_equal(v, "fv");
    free(v);
    /* A compare-and-set of its own fails the same way on both backends. */
    bool swapped = true;
    assert_int_equal(mr_store_cas(f->s, "h", NULL, 0, "x", 1, 0, &swapped, &err), MR_EINVAL);
    assert_false(swapped);
}

/* Bad input is refused before anything is written. */
static void test_batch_bad_input(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    mr_store_op ops[MR_STORE_BATCH_MAX + 1];
    for (size_t i = 0; i < MR_STORE_BATCH_MAX + 1; i++)
        ops[i] = op_of(MR_STORE_OP_SET, "k", "v", NULL, 0);
    assert_int_equal(mr_store_batch(f->s, ops, 0, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "1 to 16"));
    assert_int_equal(mr_store_batch(f->s, ops, MR_STORE_BATCH_MAX + 1, &err), MR_EINVAL);
    assert_int_equal(mr_store_batch(f->s, NULL, 1, &err), MR_EINVAL);
    ops[1].key = "";
    assert_int_equal(mr_store_batch(f->s, ops, 2, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "write 1 (set): the key is empty"));
    ops[1].key = NULL;
    assert_int_equal(mr_store_batch(f->s, ops, 2, &err), MR_EINVAL);
    ops[1] = op_of(MR_STORE_OP_SET_NX, "k2", "v", NULL, -5);
    assert_int_equal(mr_store_batch(f->s, ops, 2, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "ttl -5 ms is negative"));
    ops[1] = op_of((mr_store_op_kind)42, "k2", "v", NULL, 0);
    assert_int_equal(mr_store_batch(f->s, ops, 2, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "no known kind"));
    expect_absent(f->s, "k");
    expect_absent(f->s, "k2");
}

static long long incr_ok(mr_store *s, const char *key, long long by, long ttl)
{
    mr_err err = {0};
    long long v = 0;
    mr_code rc = mr_store_incr(s, key, by, ttl, &v, &err);
    if (rc != MR_OK)
        fail_msg("incr %s: %s", key, err.msg);
    return v;
}

static void test_incr_expiry(void **state)
{
    fx *f = *state;
    assert_int_equal(incr_ok(f->s, "rate", 5, 60000), 5);
    long first = ttl_of(f->s, "rate");
    assert_true(first > 0 && first <= 60000);
    /* A later call with a longer TTL must not extend the window. */
    assert_int_equal(incr_ok(f->s, "rate", 3, 6000000), 8);
    long second = ttl_of(f->s, "rate");
    assert_true(second > 0 && second <= first);
    assert_int_equal(incr_ok(f->s, "rate", -10, 0), -2);
    check_value(f->s, "rate", "-2", 2);

    assert_int_equal(incr_ok(f->s, "forever", 1, 0), 1);
    assert_int_equal(incr_ok(f->s, "forever", 1, 60000), 2);
    assert_int_equal(ttl_of(f->s, "forever"), -1);

    set_ok(f->s, "num", "41", 2, 0);
    assert_int_equal(incr_ok(f->s, "num", 1, 0), 42);

    /* A window ends and the next call starts a new one. */
    assert_int_equal(incr_ok(f->s, "window", 7, 150), 7);
    wait_gone(f->s, "window");
    assert_int_equal(incr_ok(f->s, "window", 7, 150), 7);

    mr_err err = {0};
    long long v = 0;
    set_ok(f->s, "text", "supersecret-value-123", 21, 0);
    assert_int_equal(mr_store_incr(f->s, "text", 1, 0, &v, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "\"text\""));
    assert_null(strstr(err.msg, "supersecret"));
    check_value(f->s, "text", "supersecret-value-123", 21);
    set_ok(f->s, "big", "9223372036854775807", 19, 0);
    assert_int_equal(mr_store_incr(f->s, "big", 1, 0, &v, &err), MR_EINVAL);
    check_value(f->s, "big", "9223372036854775807", 19);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const mr_store_hash_entry *)a)->field, ((const mr_store_hash_entry *)b)->field);
}

static void test_hashes(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    assert_int_equal(mr_store_hset(f->s, "h", "b", "two\0", 4, &err), MR_OK);
    assert_int_equal(mr_store_hset(f->s, "h", "a", "one", 3, &err), MR_OK);
    assert_int_equal(mr_store_hset(f->s, "h", "c", NULL, 0, &err), MR_OK);
    assert_int_equal(mr_store_hset(f->s, "h", "a", "uno", 3, &err), MR_OK);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_hget(f->s, "h", "b", &v, &len, &err), MR_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(v, "two\0", 4);
    free(v);
    assert_int_equal(mr_store_hget(f->s, "h", "zz", &v, &len, &err), MR_ENOTFOUND);
    assert_string_equal(err.msg, "store hget \"h\": field \"zz\": not found");
    assert_int_equal(mr_store_hget(f->s, "nohash", "a", &v, &len, &err), MR_ENOTFOUND);

    mr_store_hash h;
    assert_int_equal(mr_store_hgetall(f->s, "h", &h, &err), MR_OK);
    assert_int_equal(h.count, 3);
    qsort(h.entries, h.count, sizeof *h.entries, entry_cmp);
    assert_string_equal(h.entries[0].field, "a");
    assert_int_equal(h.entries[0].value_len, 3);
    assert_memory_equal(h.entries[0].value, "uno", 3);
    assert_string_equal(h.entries[1].field, "b");
    assert_int_equal(h.entries[1].value_len, 4);
    assert_memory_equal(h.entries[1].value, "two\0", 4);
    assert_string_equal(h.entries[2].field, "c");
    assert_int_equal(h.entries[2].value_len, 0);
    mr_store_hash_free(&h);
    assert_int_equal(ttl_of(f->s, "h"), -1);

    assert_int_equal(mr_store_hdel(f->s, "h", "b", &err), MR_OK);
    assert_int_equal(mr_store_hget(f->s, "h", "b", &v, &len, &err), MR_ENOTFOUND);
    assert_int_equal(mr_store_hdel(f->s, "h", "b", &err), MR_OK);
    assert_int_equal(mr_store_hgetall(f->s, "h", &h, &err), MR_OK);
    assert_int_equal(h.count, 2);
    mr_store_hash_free(&h);

    assert_int_equal(mr_store_del(f->s, "h", &err), MR_OK);
    assert_int_equal(mr_store_hgetall(f->s, "h", &h, &err), MR_OK);
    assert_int_equal(h.count, 0);
    assert_null(h.entries);
    long ttl;
    assert_int_equal(mr_store_ttl(f->s, "h", &ttl, &err), MR_ENOTFOUND);
    assert_int_equal(mr_store_hset(f->s, "h", "", "x", 1, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store hset \"h\": the field is empty");
}

/* A record written in one call: every field lands, later calls overwrite and add, and a call
 * with a bad field or count writes none of its fields. */
static void test_hset_fields(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    const mr_store_field first[] = {{"a", "one", 3}, {"b", "two\0", 4}, {"c", NULL, 0}};
    assert_int_equal(mr_store_hset_fields(f->s, "rec", first, 3, &err), MR_OK);
    const mr_store_field second[] = {{"a", "uno", 3}, {"d", "four", 4}};
    assert_int_equal(mr_store_hset_fields(f->s, "rec", second, 2, &err), MR_OK);
    mr_store_hash h;
    assert_int_equal(mr_store_hgetall(f->s, "rec", &h, &err), MR_OK);
    assert_int_equal(h.count, 4);
    qsort(h.entries, h.count, sizeof *h.entries, entry_cmp);
    static const char *const names[] = {"a", "b", "c", "d"};
    static const char *const values[] = {"uno", "two\0", "", "four"};
    static const size_t lens[] = {3, 4, 0, 4};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(h.entries[i].field, names[i]);
        assert_int_equal(h.entries[i].value_len, lens[i]);
        assert_memory_equal(h.entries[i].value, values[i], lens[i]);
    }
    mr_store_hash_free(&h);

    const mr_store_field bad[] = {{"x", "1", 1}, {"", "2", 1}};
    assert_int_equal(mr_store_hset_fields(f->s, "rec", bad, 2, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store hset \"rec\": the field is empty");
    mr_store_field many[MR_STORE_HSET_MAX + 1];
    for (size_t i = 0; i <= MR_STORE_HSET_MAX; i++)
        many[i] = (mr_store_field){"x", "1", 1};
    assert_int_equal(mr_store_hset_fields(f->s, "rec", many, MR_STORE_HSET_MAX + 1, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store hset \"rec\": 17 fields; 1 to 16 at once");
    assert_int_equal(mr_store_hset_fields(f->s, "rec", many, 0, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store hset \"rec\": 0 fields; 1 to 16 at once");
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_hget(f->s, "rec", "x", &v, &len, &err), MR_ENOTFOUND);
    assert_int_equal(mr_store_hset_fields(f->s, "rec", many, MR_STORE_HSET_MAX, &err), MR_OK);
    assert_int_equal(mr_store_hget(f->s, "rec", "x", &v, &len, &err), MR_OK);
    assert_string_equal(v, "1");
    free(v);
}

static const char TOKEN[] = "syt_YWxpY2U_secret\0token_42";
#define TOKEN_LEN (sizeof TOKEN - 1)
#define SEALED_OVERHEAD 29 /* version + nonce + tag */

static char *raw_get(mr_store *s, const char *key, size_t *len)
{
    mr_err err = {0};
    char *v = NULL;
    mr_code rc = mr_store_get(s, key, &v, len, &err);
    if (rc != MR_OK)
        fail_msg("get %s: %s", key, err.msg);
    return v;
}

static void expect_auth_failure(mr_store *s, const char *key)
{
    mr_err err = {0};
    char *v = NULL;
    size_t len;
    assert_int_equal(mr_store_get_secret(s, key, &v, &len, &err), MR_EAUTH);
    assert_null(v);
    char want[256];
    snprintf(want, sizeof want, "store get_secret \"%s\": wrong instance secret or corrupted value", key);
    assert_string_equal(err.msg, want);
    assert_null(strstr(err.msg, "syt_"));
}

static void set_secret_ok(mr_store *s, const char *key, const void *v, size_t len)
{
    mr_err err = {0};
    mr_code rc = mr_store_set_secret(s, key, v, len, 0, &err);
    if (rc != MR_OK)
        fail_msg("set_secret %s: %s", key, err.msg);
}

static void expect_secret(mr_store *s, const char *key, const void *want, size_t want_len)
{
    mr_err err = {0};
    char *v = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get_secret(s, key, &v, &len, &err);
    if (rc != MR_OK)
        fail_msg("get_secret %s: %s", key, err.msg);
    assert_int_equal(len, want_len);
    assert_memory_equal(v, want, want_len);
    free(v);
}

static void test_secret_roundtrip(void **state)
{
    fx *f = *state;
    set_secret_ok(f->s, "accounts:@a:x/token", TOKEN, TOKEN_LEN);
    expect_secret(f->s, "accounts:@a:x/token", TOKEN, TOKEN_LEN);
    size_t len;
    char *raw = raw_get(f->s, "accounts:@a:x/token", &len);
    assert_int_equal(len, TOKEN_LEN + SEALED_OVERHEAD);
    assert_int_equal((unsigned char)raw[0], 1);
    for (size_t i = 0; i + 4 <= len; i++)
        assert_memory_not_equal(raw + i, "syt_", 4);
    free(raw);
    /* Two seals of one value differ: every value gets its own nonce. */
    char *again;
    set_secret_ok(f->s, "second", TOKEN, TOKEN_LEN);
    raw = raw_get(f->s, "accounts:@a:x/token", &len);
    again = raw_get(f->s, "second", &len);
    assert_memory_not_equal(raw + 1, again + 1, 12);
    free(raw);
    free(again);
    set_secret_ok(f->s, "empty", NULL, 0);
    expect_secret(f->s, "empty", "", 0);

    mr_err err = {0};
    assert_int_equal(mr_store_set_secret(f->s, "ttl", "s", 1, 60000, &err), MR_OK);
    long ttl = ttl_of(f->s, "ttl");
    assert_true(ttl > 0 && ttl <= 60000);
    char *v = NULL;
    assert_int_equal(mr_store_get_secret(f->s, "absent", &v, &len, &err), MR_ENOTFOUND);
}

static void test_secret_wrong_secret(void **state)
{
    fx *f = *state;
    set_secret_ok(f->s, "accounts:@a:x/token", TOKEN, TOKEN_LEN);
    mr_store_options other = {OTHER_SECRET, sizeof OTHER_SECRET};
    mr_store *s2 = open_ok(f->url, &other);
    expect_auth_failure(s2, "accounts:@a:x/token");
    mr_store_close(s2);
    /* The same secret in another handle reads it. */
    s2 = open_ok(f->url, &WITH_SECRET);
    expect_secret(s2, "accounts:@a:x/token", TOKEN, TOKEN_LEN);
    mr_store_close(s2);
}

static void test_secret_tampered(void **state)
{
    fx *f = *state;
    set_secret_ok(f->s, "tok", TOKEN, TOKEN_LEN);
    size_t len;
    char *sealed = raw_get(f->s, "tok", &len);
    /* Every byte matters: version, nonce, ciphertext and tag. */
    for (size_t i = 0; i < len; i++) {
        sealed[i] ^= 0x01;
        set_ok(f->s, "tok", sealed, len, 0);
        expect_auth_failure(f->s, "tok");
        sealed[i] ^= 0x01;
    }
    set_ok(f->s, "tok", sealed, len - 1, 0);
    expect_auth_failure(f->s, "tok");
    set_ok(f->s, "tok", sealed, 5, 0);
    expect_auth_failure(f->s, "tok");
    set_ok(f->s, "tok", sealed, len, 0);
    expect_secret(f->s, "tok", TOKEN, TOKEN_LEN);
    free(sealed);
}

static void test_secret_moved(void **state)
{
    fx *f = *state;
    set_secret_ok(f->s, "accounts:@a:x/token", TOKEN, TOKEN_LEN);
    size_t len;
    char *sealed = raw_get(f->s, "accounts:@a:x/token", &len);
    set_ok(f->s, "accounts:@mallory:x/token", sealed, len, 0);
    free(sealed);
    expect_auth_failure(f->s, "accounts:@mallory:x/token");
    expect_secret(f->s, "accounts:@a:x/token", TOKEN, TOKEN_LEN);
}

static void test_secret_without_secret(void **state)
{
    fx *f = *state;
    set_secret_ok(f->s, "tok", TOKEN, TOKEN_LEN);
    mr_store *plain = open_ok(f->url, NULL);
    mr_err err = {0};
    char *v = NULL;
    size_t len;
    assert_int_equal(mr_store_get_secret(plain, "tok", &v, &len, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store get_secret \"tok\": this store was opened without an instance "
                                 "secret, so it cannot handle secret values");
    assert_int_equal(mr_store_set_secret(plain, "tok", "x", 1, 0, &err), MR_EINVAL);
    assert_string_equal(err.msg, "store set_secret \"tok\": this store was opened without an instance "
                                 "secret, so it cannot handle secret values");
    mr_store_close(plain);
    expect_secret(f->s, "tok", TOKEN, TOKEN_LEN);
}

/* ---- opening ---- */

static void test_short_secret(void **state)
{
    (void)state;
    char url[512], path[400];
    snprintf(path, sizeof path, "%s/short.db", g_dir);
    snprintf(url, sizeof url, "sqlite://%s", path);
    mr_store_options opts = {SECRET, 31};
    mr_err err = {0};
    mr_store *s = (mr_store *)&err;
    assert_int_equal(mr_store_open(url, &opts, &s, &err), MR_EINVAL);
    assert_null(s);
    assert_string_equal(err.msg, "store: the instance secret is 31 bytes; at least 32 are needed");
    assert_int_equal(access(path, F_OK), -1);
}

typedef struct bad_url {
    const char *url;
    mr_code code;
    const char *msg;
} bad_url;

#define EXPECTED "(expected sqlite:///path/to/file.db or redis://host:port/db)"
#define REDIS_EXPECTED "; expected redis://[user:password@]host[:port][/db]"

static void test_bad_urls(void **state)
{
    (void)state;
    static const bad_url cases[] = {
        {NULL, MR_EINVAL, "store URL is empty " EXPECTED},
        {"", MR_EINVAL, "store URL is empty " EXPECTED},
        {"localhost:6379", MR_EINVAL, "store URL has no scheme " EXPECTED},
        {"redis:hunter2@localhost", MR_EINVAL, "store URL has no scheme " EXPECTED},
        {"re dis://:hunter2@localhost", MR_EINVAL, "store URL has no scheme " EXPECTED},
        {"http://localhost", MR_EINVAL, "store URL scheme \"http\" is not supported " EXPECTED},
        {"mysql://root:hunter2@db/x", MR_EINVAL, "store URL scheme \"mysql\" is not supported " EXPECTED},
        {"sqlite://", MR_EINVAL, "store URL sqlite://: the database path is empty"},
        /* redis:// URLs go through the shared parser (libs/core redis_url.c). */
        {"redis://", MR_EINVAL, "store URL \"redis://\": the host is empty" REDIS_EXPECTED},
        {"redis:///3", MR_EINVAL, "store URL \"redis:///3\": the host is empty" REDIS_EXPECTED},
        {"redis://:hunter2@:6379/0", MR_EINVAL, "store URL \"redis://***@:6379/0\": the host is empty" REDIS_EXPECTED},
        {"redis://localhost:abc/0", MR_EINVAL,
         "store URL \"redis://localhost:abc/0\": the port must be a number from 1 to 65535"},
        {"redis://:hunter2@localhost:0", MR_EINVAL,
         "store URL \"redis://***@localhost:0\": the port must be a number from 1 to 65535"},
        {"redis://localhost:65536", MR_EINVAL,
         "store URL \"redis://localhost:65536\": the port must be a number from 1 to 65535"},
        {"redis://:hunter2/x@localhost:1", MR_EINVAL,
         "store URL \"redis://***@localhost:1\": the port must be a number from 1 to 65535 (a '/', ':' or '@' "
         "in the password must be written %2F, %3A or %40)"},
        {"redis://localhost:6379/x", MR_EINVAL,
         "store URL \"redis://localhost:6379/x\": database \"x\" is not a non-negative integer"},
        {"redis://localhost:6379/-1", MR_EINVAL,
         "store URL \"redis://localhost:6379/-1\": database \"-1\" is not a non-negative integer"},
        {"redis://localhost/0?db=1", MR_EINVAL,
         "store URL \"redis://localhost/0?db=1\": unknown option \"db\"; the options are prefix"},
        {"redis://localhost/0#x", MR_EINVAL,
         "store URL \"redis://localhost/0#x\": a query or fragment is not supported" REDIS_EXPECTED},
        {"redis://hunter2@localhost", MR_EINVAL,
         "store URL \"redis://***@localhost\": a user without a password; write user:password@ or :password@"},
        {"redis://:hunter2%zz@localhost", MR_EINVAL,
         "store URL \"redis://***@localhost\": the user or password has a bad %-escape"},
        {"redis://:hunter2%4@localhost", MR_EINVAL,
         "store URL \"redis://***@localhost\": the user or password has a bad %-escape"},
        {"redis://:hunter2%00@localhost", MR_EINVAL,
         "store URL \"redis://***@localhost\": the user or password has a bad %-escape"},
        {"redis://[::1:6379", MR_EINVAL, "store URL \"redis://[::1:6379\": Bad IPv6 address" REDIS_EXPECTED},
        {"redis://[::1]6379", MR_EINVAL, "store URL \"redis://[::1]6379\": the port must be a number from 1 to 65535"},
        /* The instance's namespace on a shared server (url_options.c). */
        {"redis://:hunter2@localhost/1?prefix=a.b", MR_EINVAL,
         "store URL \"redis://***@localhost/1?prefix=a.b\": prefix \"a.b\" must be 1 to 64 letters, digits, '_' or '-' "
         "(the instance's namespace on a shared server)"},
        {"redis://localhost/1?prefix=", MR_EINVAL,
         "store URL \"redis://localhost/1?prefix=\": prefix \"\" must be 1 to 64 letters, digits, '_' or '-' "
         "(the instance's namespace on a shared server)"},
        {"redis://localhost/1?prefix=a:b", MR_EINVAL,
         "store URL \"redis://localhost/1?prefix=a:b\": prefix \"a:b\" must be 1 to 64 letters, digits, '_' or '-' "
         "(the instance's namespace on a shared server)"},
        {"redis://localhost/1?prefix=a&prefix=b", MR_EINVAL,
         "store URL \"redis://localhost/1?prefix=a&prefix=b\": option \"prefix\" is given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_err err = {0};
        mr_store *s = NULL;
        mr_code rc = mr_store_open(cases[i].url, NULL, &s, &err);
        if (rc != cases[i].code || strcmp(err.msg, cases[i].msg) != 0)
            fail_msg("URL \"%s\": got %d \"%s\", want %d \"%s\"", cases[i].url ? cases[i].url : "(null)",
                     rc, err.msg, cases[i].code, cases[i].msg);
        assert_null(s);
        assert_null(strstr(err.msg, "hunter2"));
    }
}

/* A password in the URL reaches neither the message of a refused connection nor anything else. */
/* A server not up yet opens (the runtime waits for it); each call then fails naming it, and
 * the password stays out of every message. */
static void test_unreachable_redis(void **state)
{
    (void)state;
    int port;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char url[128], want[256];
    snprintf(url, sizeof url, "redis://:hunter2@127.0.0.1:%d/0", port);
    mr_store *s = NULL;
    assert_int_equal(mr_store_open(url, NULL, &s, &err), MR_OK);
    assert_int_equal(mr_store_ping(s, &err), MR_EUNAVAIL);
    snprintf(want, sizeof want, "store ping: redis at 127.0.0.1:%d: Connection refused", port);
    assert_string_equal(err.msg, want);
    assert_null(strstr(err.msg, "hunter2"));
    mr_store_close(s);
}

/* ---- SQLite only ---- */

static void test_sqlite_persist_mode_wal(void **state)
{
    (void)state;
    char dir[400], path[512], url[600], wal[600];
    snprintf(dir, sizeof dir, "%s/nested/deeper", g_dir);
    snprintf(path, sizeof path, "%s/store.db", dir);
    snprintf(url, sizeof url, "sqlite://%s", path);
    mr_store *s = open_ok(url, &WITH_SECRET);
    set_ok(s, "sync:@a:x", "s72_1", 5, 0);
    set_ok(s, "claims:$ev", "1", 1, 600000);
    set_secret_ok(s, "tok", TOKEN, TOKEN_LEN);
    mr_err err = {0};
    assert_int_equal(mr_store_hset(s, "pairing:c", "f", "v", 1, &err), MR_OK);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(stat(wal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(wal, sizeof wal, "%s/nested", g_dir);
    assert_int_equal(stat(wal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* What the file says about itself, asked through SQLite directly. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);

    mr_store_close(s);
    s = open_ok(url, &WITH_SECRET);
    check_value(s, "sync:@a:x", "s72_1", 5);
    long ttl = ttl_of(s, "claims:$ev");
    assert_true(ttl > 0 && ttl <= 600000);
    expect_secret(s, "tok", TOKEN, TOKEN_LEN);
    char *v = NULL;
    size_t len;
    assert_int_equal(mr_store_hget(s, "pairing:c", "f", &v, &len, &err), MR_OK);
    assert_string_equal(v, "v");
    free(v);
    mr_store_close(s);
}

/* `mindroom run` lets its bus journal sync the store (mr_store_sync) instead of an fsync per
 * write: the writes still land, survive the handle, and secrets still read back; a sync with
 * nothing new, and one after the log was checkpointed away, succeed. */
static void test_sqlite_sync_on_demand(void **state)
{
    (void)state;
    char url[512];
    snprintf(url, sizeof url, "sqlite://%s/on-demand.db", g_dir);
    mr_store *s = open_ok(url, &WITH_SECRET);
    mr_err err = {0};
    assert_int_equal(mr_store_sync_on_demand(s, &err), MR_OK);
    assert_int_equal(mr_store_sync(s, &err), MR_OK);
    set_ok(s, "reply:$ev:mind", "started", 7, 600000);
    assert_int_equal(mr_store_hset(s, "agent:inflight:w", "1", "turn", 4, &err), MR_OK);
    set_secret_ok(s, "tok", TOKEN, TOKEN_LEN);
    assert_int_equal(mr_store_sync(s, &err), MR_OK);
    assert_int_equal(mr_store_sync(s, &err), MR_OK);
    mr_store_close(s);
    s = open_ok(url, &WITH_SECRET);
    check_value(s, "reply:$ev:mind", "started", 7);
    expect_secret(s, "tok", TOKEN, TOKEN_LEN);
    assert_int_equal(mr_store_sync_on_demand(s, &err), MR_OK);
    set_ok(s, "after", "1", 1, 0);
    assert_int_equal(mr_store_sync(s, &err), MR_OK);
    mr_store_close(s);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* With syncs on demand no write checkpoints the log (an auto-checkpoint would cost the writing
 * thread two fsyncs and a copy); mr_store_sync does, once the log passes SQLite's threshold of
 * 1,000 pages. So the log grows past that between syncs, and after a sync the database file
 * holds what was written (and the next writes start the log over). */
static void test_sqlite_sync_on_demand_checkpoints_in_sync(void **state)
{
    (void)state;
    char url[530], path[512], wal[520];
    snprintf(path, sizeof path, "%s/ckpt.db", g_dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(url, sizeof url, "sqlite://%s", path);
    mr_store *s = open_ok(url, NULL);
    mr_err err = {0};
    assert_int_equal(mr_store_sync_on_demand(s, &err), MR_OK);
    long long db_before = file_size(path);
    char value[4000];
    memset(value, 'x', sizeof value);
    /* About 1,500 pages of 4 KiB: half again SQLite's threshold. */
    for (int i = 0; i < 1500; i++) {
        char key[32];
        snprintf(key, sizeof key, "history:%d", i);
        set_ok(s, key, value, sizeof value, 0);
    }
    long long wal_len = file_size(wal);
    assert_true(wal_len > 1200LL * 4096);
    assert_true(file_size(path) < 1000LL * 4096);
    assert_int_equal(mr_store_sync(s, &err), MR_OK);
    assert_true(file_size(path) > db_before + 1200LL * 4096);
    set_ok(s, "after", "1", 1, 0);
    assert_int_equal(mr_store_sync(s, &err), MR_OK);
    assert_int_equal(file_size(wal), wal_len);
    mr_store_close(s);
    s = open_ok(url, NULL);
    check_value(s, "history:1499", value, sizeof value);
    check_value(s, "after", "1", 1);
    mr_store_close(s);
}

static void test_sqlite_two_handles(void **state)
{
    (void)state;
    char url[512];
    snprintf(url, sizeof url, "sqlite://%s/shared.db", g_dir);
    mr_store *a = open_ok(url, NULL);
    mr_store *b = open_ok(url, NULL);
    set_ok(a, "seen", "by a", 4, 0);
    check_value(b, "seen", "by a", 4);
    race_and_check(a, b, true, b);
    mr_store_close(a);
    mr_store_close(b);
}

static void test_sqlite_relative_path(void **state)
{
    (void)state;
    char cwd[512], path[600];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(g_dir), 0);
    mr_store *s = open_ok("sqlite://rel/sub/store.db", NULL);
    assert_int_equal(chdir(cwd), 0);
    set_ok(s, "k", "v", 1, 0);
    mr_store_close(s);
    snprintf(path, sizeof path, "%s/rel/sub/store.db", g_dir);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_sqlite_unusable_path(void **state)
{
    (void)state;
    char file[400], url[600];
    snprintf(file, sizeof file, "%s/plainfile", g_dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(url, sizeof url, "sqlite://%s/x.db", file);
    mr_err err = {0};
    mr_store *s = NULL;
    assert_int_not_equal(mr_store_open(url, NULL, &s, &err), MR_OK);
    assert_null(s);
    assert_non_null(strstr(err.msg, file));
}

/* ---- Redis only ---- */

static void test_redis_restart_between_ops(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    bool won = false, swapped = false;
    set_ok(f->s, "sync:@a:x", "s1", 2, 0);
    assert_int_equal(mr_store_set_nx(f->s, "claims:$old", "1", 1, 0, &won, &err), MR_OK);
    assert_true(won);
    cas_expect(f->s, "cas", NULL, 0, "v1", 0, true);
    assert_int_equal(incr_ok(f->s, "rate", 1, 60000), 1);

    if (mr_tp_redis_restart(&g_redis, &err) != MR_OK)
        fail_msg("restarting redis-server: %s", err.msg);

    /* Each kind of call, first after the restart: a read, a claim, a script, a hash. */
    check_value(f->s, "sync:@a:x", "s1", 2);
    assert_int_equal(mr_store_set_nx(f->s, "claims:$old", "1", 1, 0, &won, &err), MR_OK);
    assert_false(won);
    assert_int_equal(mr_tp_redis_restart(&g_redis, &err), MR_OK);
    assert_int_equal(mr_store_set_nx(f->s, "claims:$new", "1", 1, 0, &won, &err), MR_OK);
    assert_true(won);
    assert_int_equal(mr_tp_redis_restart(&g_redis, &err), MR_OK);
    /* The restarted server has no scripts cached: EVALSHA falls back to EVAL. */
    assert_int_equal(mr_store_cas(f->s, "cas", "v1", 2, "v2", 2, 0, &swapped, &err), MR_OK);
    assert_true(swapped);
    assert_int_equal(incr_ok(f->s, "rate", 1, 60000), 2);
    assert_int_equal(mr_tp_redis_restart(&g_redis, &err), MR_OK);
    assert_int_equal(mr_store_hset(f->s, "h", "f", "v", 1, &err), MR_OK);
    assert_int_equal(mr_store_ping(f->s, &err), MR_OK);
}

static void test_redis_hard_stop(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    set_ok(f->s, "k", "v", 1, 0);
    assert_int_equal(mr_tp_redis_stop(&g_redis, true, &err), MR_OK);

    char want[256];
    char *v = NULL;
    size_t len;
    bool won = true;
    assert_int_equal(mr_store_get(f->s, "k", &v, &len, &err), MR_EUNAVAIL);
    snprintf(want, sizeof want, "store get \"k\": redis at 127.0.0.1:%d: Connection refused", g_redis.port);
    assert_string_equal(err.msg, want);
    assert_int_equal(mr_store_set_nx(f->s, "claims:$x", "1", 1, 0, &won, &err), MR_EUNAVAIL);
    assert_false(won);
    snprintf(want, sizeof want, "store set_nx \"claims:$x\": redis at 127.0.0.1:%d: Connection refused",
             g_redis.port);
    assert_string_equal(err.msg, want);
    assert_int_equal(mr_store_ping(f->s, &err), MR_EUNAVAIL);

    if (mr_tp_redis_restart(&g_redis, &err) != MR_OK)
        fail_msg("starting redis-server again: %s", err.msg);
    check_value(f->s, "k", "v", 1);
    assert_int_equal(mr_store_set_nx(f->s, "claims:$x", "1", 1, 0, &won, &err), MR_OK);
    assert_true(won);
}

typedef struct streamer {
    mr_store *s;
    volatile int restarted; /* set by the main thread once redis answers again */
    int ok_after, ok_total, unavail, other, wrong;
    mr_err other_err;
} streamer;

/* Writes and reads back in a loop until 50 round trips succeeded after the restart. */
static void *stream_ops(void *arg)
{
    streamer *w = arg;
    for (int i = 0; w->ok_after < 50 && i < 200000; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "mid:%d", i % 64);
        int n = snprintf(val, sizeof val, "%d", i);
        mr_err err = {0};
        char *v = NULL;
        size_t len = 0;
        mr_code rc = mr_store_set(w->s, key, val, (size_t)n, 0, &err);
        if (rc == MR_OK)
            rc = mr_store_get(w->s, key, &v, &len, &err);
        if (rc == MR_OK) {
            if (len != (size_t)n || memcmp(v, val, len) != 0)
                w->wrong++;
            w->ok_total++;
            if (__atomic_load_n(&w->restarted, __ATOMIC_ACQUIRE))
                w->ok_after++;
        } else if (rc == MR_EUNAVAIL) {
            w->unavail++;
        } else {
            w->other++;
            w->other_err = err;
        }
        free(v);
    }
    return NULL;
}

static void test_redis_restart_midstream(void **state)
{
    fx *f = *state;
    static streamer w;
    memset(&w, 0, sizeof w);
    w.s = f->s;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stream_ops, &w), 0);
    mr_err err = {0};
    mr_code rc = mr_tp_redis_restart(&g_redis, &err);
    __atomic_store_n(&w.restarted, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (rc != MR_OK)
        fail_msg("restarting redis-server: %s", err.msg);
    print_message("%d round trips, %d refused while down\n", w.ok_total, w.unavail);
    if (w.other)
        fail_msg("%d calls failed with something other than MR_EUNAVAIL: %s", w.other, w.other_err.msg);
    assert_int_equal(w.wrong, 0);
    assert_int_equal(w.ok_after, 50);
}

static void test_redis_password_and_db(void **state)
{
    (void)state;
    mr_tp_redis r;
    mr_err err = {0};
    if (mr_tp_redis_start(&r, &err) != MR_OK)
        fail_msg("starting redis-server: %s", err.msg);
    freeReplyObject(raw_redis(r.port, "CONFIG SET requirepass %s", "p@ss/w:rd"));

    char url[256], want[300];
    snprintf(url, sizeof url, "redis://:p%%40ss%%2Fw%%3Ard@127.0.0.1:%d/3", r.port);
    mr_store *s = open_ok(url, NULL);
    set_ok(s, "k", "in db 3", 7, 0);
    mr_store_close(s);
    snprintf(url, sizeof url, "redis://default:p%%40ss%%2Fw%%3Ard@127.0.0.1:%d/3", r.port);
    s = open_ok(url, NULL);
    check_value(s, "k", "in db 3", 7);
    mr_store_close(s);

    redisContext *c = redisConnect("127.0.0.1", r.port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "AUTH %s", "p@ss/w:rd");
    freeReplyObject(rep);
    rep = redisCommand(c, "GET k");
    assert_int_equal(rep->type, REDIS_REPLY_NIL);
    freeReplyObject(rep);
    rep = redisCommand(c, "SELECT 3");
    freeReplyObject(rep);
    rep = redisCommand(c, "GET k");
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "in db 3");
    freeReplyObject(rep);
    redisFree(c);

    snprintf(url, sizeof url, "redis://:hunter2@127.0.0.1:%d/3", r.port);
    s = NULL;
    assert_int_equal(mr_store_open(url, NULL, &s, &err), MR_EAUTH);
    assert_null(s);
    assert_null(strstr(err.msg, "hunter2"));
    snprintf(want, sizeof want, "store redis://***@127.0.0.1:%d/3: authenticating: redis at 127.0.0.1:%d: ",
             r.port, r.port);
    assert_memory_equal(err.msg, want, strlen(want));
    mr_tp_redis_destroy(&r);
}

/* Two instances on one Redis database, told apart by ?prefix=: neither sees, overwrites nor
 * deletes the other's keys (plain, hashes, the Lua-backed cas and incr), every key sits under
 * "<prefix>:" (what an ACL's ~<prefix>:* allows), and a sealed value copied into the other's
 * namespace does not open there even under the same instance secret. */
static void test_redis_prefixes(void **state)
{
    (void)state;
    char url_a[256], url_b[256];
    snprintf(url_a, sizeof url_a, "redis://127.0.0.1:%d/0?prefix=mr-aaaa", g_redis.port);
    snprintf(url_b, sizeof url_b, "redis://127.0.0.1:%d/0?prefix=mr-b_b", g_redis.port);
    freeReplyObject(raw_redis(g_redis.port, "FLUSHALL"));
    mr_store *a = open_ok(url_a, &WITH_SECRET), *b = open_ok(url_b, &WITH_SECRET);
    mr_err err = {0};
    set_ok(a, "room:!r:x", "of a", 4, 0);
    expect_absent(b, "room:!r:x");
    set_ok(b, "room:!r:x", "of b", 4, 0);
    check_value(a, "room:!r:x", "of a", 4);
    const char *both[] = {"room:!r:x", "nothing"};
    char *got[2];
    assert_int_equal(mr_store_get_many(b, both, 2, got, NULL, &err), MR_OK);
    assert_string_equal(got[0], "of b");
    assert_null(got[1]);
    free(got[0]);
    assert_int_equal(mr_store_hset(a, "agent:workers", "w1", "1", 1, &err), MR_OK);
    mr_store_hash h = {0};
    assert_int_equal(mr_store_hgetall(b, "agent:workers", &h, &err), MR_OK);
    assert_int_equal(h.count, 0);
    bool swapped = false;
    assert_int_equal(mr_store_cas(b, "lease", NULL, 0, "b", 1, 0, &swapped, &err), MR_OK);
    assert_true(swapped);
    assert_int_equal(mr_store_cas(a, "lease", NULL, 0, "a", 1, 0, &swapped, &err), MR_OK);
    assert_true(swapped);
    long long n = 0;
    assert_int_equal(mr_store_incr(a, "seq", 5, 0, &n, &err), MR_OK);
    assert_int_equal(mr_store_incr(b, "seq", 1, 0, &n, &err), MR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(mr_store_del(b, "room:!r:x", &err), MR_OK);
    check_value(a, "room:!r:x", "of a", 4);
    set_secret_ok(a, "account:router:token", "tok-a", 5);
    redisReply *rep = raw_redis(g_redis.port, "KEYS *");
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < rep->elements; i++)
        if (strncmp(rep->element[i]->str, "mr-aaaa:", 8) != 0 && strncmp(rep->element[i]->str, "mr-b_b:", 7) != 0)
            fail_msg("key %s is in neither namespace", rep->element[i]->str);
    assert_int_equal(rep->elements, 7);
    freeReplyObject(rep);
    freeReplyObject(raw_redis(g_redis.port, "EVAL %s 2 %s %s", "redis.call('SET', KEYS[2], redis.call('GET', KEYS[1]))",
                              "mr-aaaa:account:router:token", "mr-b_b:account:router:token"));
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_get_secret(b, "account:router:token", &v, &len, &err), MR_EAUTH);
    expect_secret(a, "account:router:token", "tok-a", 5);
    mr_store_close(a);
    mr_store_close(b);
    freeReplyObject(raw_redis(g_redis.port, "FLUSHALL"));
}

static void test_redis_wrong_type(void **state)
{
    fx *f = *state;
    mr_err err = {0};
    set_ok(f->s, "str", "plain value", 11, 0);
    assert_int_equal(mr_store_hset(f->s, "str", "f", "v", 1, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "store hset \"str\": redis at 127.0.0.1:"));
    assert_non_null(strstr(err.msg, "WRONGTYPE"));
    assert_null(strstr(err.msg, "plain value"));
}

/* A restarted Redis has no scripts: a batch's compare-and-set still runs, once. */
static void test_redis_batch_without_scripts(void **state)
{
    fx *f = *state;
    freeReplyObject(raw_redis(g_redis.port, "SCRIPT FLUSH"));
    mr_store_op ops[] = {
        op_of(MR_STORE_OP_CAS, "k", "one", NULL, 0),
        op_of(MR_STORE_OP_SET, "other", "o", NULL, 0),
    };
    mr_err err = {0};
    mr_code rc = mr_store_batch(f->s, ops, 2, &err);
    if (rc != MR_OK)
        fail_msg("batch: %s", err.msg);
    assert_true(ops[0].done);
    assert_true(ops[1].done);
    check_value(f->s, "k", "one", 3);
    check_value(f->s, "other", "o", 1);
}

#define ON(b, fn) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, &(b))
#define BEHAVIOURS(b)                                                                          \
    ON(b, test_roundtrip_binary), ON(b, test_get_many), ON(b, test_ttl_expiry), ON(b, test_set_nx_race), ON(b, test_cas), \
        ON(b, test_incr_expiry), ON(b, test_hashes), ON(b, test_hset_fields), ON(b, test_secret_roundtrip), \
        ON(b, test_secret_wrong_secret), ON(b, test_secret_tampered), ON(b, test_secret_moved),     \
        ON(b, test_secret_without_secret), ON(b, test_batch_writes), ON(b, test_batch_failure_midway), \
        ON(b, test_batch_bad_input)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        BEHAVIOURS(B_SQLITE),
        cmocka_unit_test(test_sqlite_persist_mode_wal),
        cmocka_unit_test(test_sqlite_sync_on_demand),
        cmocka_unit_test(test_sqlite_sync_on_demand_checkpoints_in_sync),
        cmocka_unit_test(test_sqlite_two_handles),
        cmocka_unit_test(test_sqlite_relative_path),
        cmocka_unit_test(test_sqlite_unusable_path),
    };
    const struct CMUnitTest redis_tests[] = {
        BEHAVIOURS(B_REDIS),
        ON(B_REDIS, test_redis_restart_between_ops),
        ON(B_REDIS, test_redis_hard_stop),
        ON(B_REDIS, test_redis_restart_midstream),
        ON(B_REDIS, test_redis_wrong_type),
        ON(B_REDIS, test_redis_batch_without_scripts),
        cmocka_unit_test(test_redis_password_and_db),
        cmocka_unit_test(test_redis_prefixes),
    };
    const struct CMUnitTest open_tests[] = {
        cmocka_unit_test(test_short_secret),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_unreachable_redis),
    };
    int failed = cmocka_run_group_tests_name("store_open", open_tests, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("store_sqlite", sqlite_tests, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("store_redis", redis_tests, group_setup, group_teardown);
    return failed;
}
