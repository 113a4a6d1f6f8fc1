/* test_redis.c -- the Redis Streams bus against a real redis-server: the behaviour suite, a
 * consumer killed mid-batch, and the server restarted or down mid-stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include "bus_suite.h"
#include "mindroom/clock.h"
#include "peer_fixture.h"
#include "mindroom/clock.h"

static mr_tp_redis redis;
static suite_env env_of_suite; /* the server's, once it is up: the shared suite's and every test's */

static int start_redis(void **state)
{
    (void)state;
    if (mr_tp_redis_setup(&redis) != 0)
        return -1;
    /* Short leases: a killed consumer's partitions move on within two seconds. */
    env_of_suite = suite_env_at(redis.url, 2000);
    return 0;
}

static int stop_redis(void **state)
{
    (void)state;
    mr_tp_redis_destroy(&redis);
    return 0;
}

/* Runs one command on the test server, failing the test when it gets no reply. */
static redisReply *redis_vcmd(const char *fmt, va_list ap)
{
    redisContext *c = redisConnect("127.0.0.1", redis.port);
    if (!c || c->err)
        fail_msg("connecting to the test redis on port %d", redis.port);
    redisReply *r = redisvCommand(c, fmt, ap);
    redisFree(c);
    if (!r)
        fail_msg("redis command %s: no reply", fmt);
    return r;
}

static redisReply *redis_cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(fmt, ap);
    va_end(ap);
    return r;
}

/* Runs one command that must succeed. */
static void redis_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(fmt, ap);
    va_end(ap);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis command %s: %s", fmt, r->str);
    freeReplyObject(r);
}

static long long redis_int(const char *fmt, const char *arg)
{
    redisReply *r = redis_cmd(fmt, arg);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("redis command %s %s: not an integer", fmt, arg);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Two keys of topic on different partitions. */
static void two_partitions(const char *topic, char *a, char *b, int *pa, int *pb)
{
    redis_ok("SET mr:bus:%s:partitions 8", topic);
    *pa = mr_bus_partition("!a:example.org", 8);
    strcpy(a, "!a:example.org");
    for (int i = 0;; i++) {
        sprintf(b, "!b%d:example.org", i);
        if ((*pb = mr_bus_partition(b, 8)) != *pa)
            return;
    }
}

/* Thread A publishes a message Redis refuses; thread B publishes and flushes after it; then A
 * flushes. B's flush must not take A's failure (A would then save progress past a lost message). */
static void test_a_refused_message_reaches_its_publisher(void **state)
{
    (void)state;
    char bad[64], good[64];
    int pbad, pgood;
    two_partitions("wrongtype", bad, good, &pbad, &pgood);
    /* A key of the stream's name that holds a string: XADD gets WRONGTYPE. */
    redis_ok("SET mr:bus:wrongtype:%d not-a-stream", pbad);
    suite_env env = env_of_suite;
    mr_bus *b = suite_open(&env);
    suite_publisher a, bb;
    suite_publisher_start(&a, b, "wrongtype", bad);
    suite_publisher_start(&bb, b, "wrongtype", good);
    suite_publisher_flush(&bb);
    suite_publisher_flush(&a);
    assert_int_equal(a.publish_rc, MR_OK);
    assert_int_equal(bb.publish_rc, MR_OK);
    if (bb.flush_rc != MR_OK)
        fail_msg("B's flush took a failure that is not B's: %s", bb.err.msg);
    assert_int_equal(a.flush_rc, MR_EIO);
    char want[256];
    snprintf(want, sizeof want, "%s: XADD mr:bus:wrongtype:%d: WRONGTYPE", redis.url, pbad);
    assert_memory_equal(a.err.msg, want, strlen(want));
    /* Reported once: A's next flush has nothing new to report. */
    mr_err err = {0};
    assert_int_equal(mr_bus_flush(b, 10000, &err), MR_OK);
    char stream[64];
    snprintf(stream, sizeof stream, "mr:bus:wrongtype:%d", pgood);
    assert_int_equal(redis_int("XLEN %s", stream), 1);
    mr_bus_close(b);
}

/* Redis out of memory (maxmemory with noeviction) refuses the XADD: the publisher's flush says so. */
static void test_maxmemory_reaches_the_publisher(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    mr_bus *b = suite_open(&env);
    suite_publish(b, "oom", 0, 1, 1);
    suite_flush(b, 10000);
    redis_ok("CONFIG SET maxmemory-policy noeviction");
    redis_ok("CONFIG SET maxmemory 1");
    suite_publish(b, "oom", 1, 1, 1);
    mr_err err = {0};
    mr_code rc = mr_bus_flush(b, 10000, &err);
    redis_ok("CONFIG SET maxmemory 0");
    assert_int_equal(rc, MR_EIO);
    assert_non_null(strstr(err.msg, ": OOM command not allowed"));
    /* Room again: the next message is stored and flushes clean. */
    suite_publish(b, "oom", 2, 1, 1);
    suite_flush(b, 10000);
    mr_bus_close(b);
}

/* ---- trimming what every group acknowledged ---- */

static long long stream_total(const char *topic)
{
    long long n = 0;
    for (int p = 0; p < 8; p++) {
        char key[128];
        snprintf(key, sizeof key, "mr:bus:%s:%d", topic, p);
        n += redis_int("XLEN %s", key);
    }
    return n;
}

/* Waits until the topic's streams hold `want` entries in all, polling c (a consumer runs on,
 * and trims after it rebalances) and counting what it handles in *seen; fails after timeout_ms
 * showing what they held. */
static void wait_stream_total(const char *topic, long long want, mr_bus_consumer *c, int *seen, int timeout_ms)
{
    long long deadline = mr_clock_mono_ms() + timeout_ms, n;
    while ((n = stream_total(topic)) != want && mr_clock_mono_ms() < deadline) {
        size_t handled = 0;
        mr_err err = {0};
        if (c)
            mr_bus_poll(c, 50, 100, suite_count_one, seen, &handled, &err);
        else
            mr_clock_sleep_ms(50);
    }
    if (n != want)
        fail_msg("%s: %lld entries kept after %d ms, expected %lld", topic, n, timeout_ms, want);
}

/* Two groups: "all" handles every message, "half" only part. The streams keep exactly what
 * "half" has not acknowledged, then nothing once it has; a group that subscribes after that
 * starts at the end. */
static void test_streams_are_trimmed_to_what_some_group_needs(void **state)
{
    (void)state;
    enum { N = 40, HALF = 15 };
    suite_env env = env_of_suite;
    mr_bus *b = suite_open(&env);
    mr_bus_consumer *half = suite_subscribe(b, "half", "trim");
    suite_publish(b, "trim", 0, N, 8);
    suite_flush(b, 10000);
    suite_handle_exactly(half, HALF);
    /* Its last acknowledgements go out with its next read, or as it leaves. */
    mr_bus_consumer_close(half);
    suite_collector *all = suite_collect_start(b, "all", "trim", N, NULL);
    suite_collect_wait(all, 60000);
    /* "half" has no consumer: only "all" trims, down to what "half" still needs. */
    int ignored = 0;
    wait_stream_total("trim", N - HALF, NULL, &ignored, 30000);
    half = suite_subscribe(b, "half", "trim");
    suite_handle_exactly(half, N - HALF);
    int more = 0;
    wait_stream_total("trim", 0, half, &more, 30000);
    assert_int_equal(more, 0);
    /* A group new now starts at the oldest entry kept: the next one published. */
    suite_late_group_starts_at(b, "trim", N, 10000);
    suite_collect_stop(all);
    mr_bus_consumer_close(half);
    mr_bus_close(b);
}

/* A consumer that keeps up trims as it goes, not only once a rebalance interval: with a minute's
 * lease (20 s between rebalances), once 4,000 entries are handled, its next poll leaves fewer
 * than a thousand (TRIM_AFTER_ACKS) in the streams, where before all 4,000 stayed. */
static void test_a_busy_consumer_trims_between_rebalances(void **state)
{
    (void)state;
    enum { N = 4000 };
    suite_env env = env_of_suite;
    env.opts.lease_ms = 60000;
    mr_bus *b = suite_open(&env);
    mr_bus_consumer *c = suite_subscribe(b, "busy", "bulk");
    suite_publish(b, "bulk", 0, N, 64);
    suite_flush(b, 30000);
    suite_handle_exactly(c, N);
    /* The consumer runs on, as a service's does: its next poll finds nothing new. */
    size_t handled = 0;
    int more = 0;
    mr_err err = {0};
    assert_int_equal(mr_bus_poll(c, 50, 100, suite_count_one, &more, &handled, &err), MR_OK);
    assert_int_equal(more, 0);
    long long kept = stream_total("bulk");
    if (kept >= 1000)
        fail_msg("%lld of %d handled entries still in the streams", kept, N);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

/* Consumer A handles the topic's one partition; its first handler runs 3.5 leases. Meanwhile B
 * joins, and B is the one the partition belongs to once both are live (its name sorts first).
 * A keeps the lease while its handler runs, so B takes the partition only after A is done. */
static void test_a_long_handler_keeps_its_partition(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    env.opts.partitions = 1;
    suite_long_handler_keeps_its_partition(&env, "long");
}

static mr_code refuse(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)ctx;
    (void)m;
    return mr_err_set(err, MR_EUNAVAIL, "not now");
}

/* A consumer that leaves with an entry unacknowledged (its handler failed, then it closed):
 * the next consumer of the group gets the entry. */
static void test_closed_consumer_leaves_its_entry(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    env.opts.partitions = 1;
    mr_bus *b = suite_open(&env);
    suite_publish(b, "closed", 0, 1, 1);
    suite_flush(b, 10000);
    mr_bus_consumer *first = suite_subscribe(b, "closed", "closed");
    mr_code rc = MR_OK;
    long long deadline = mr_clock_mono_ms() + 30000;
    while (rc == MR_OK && mr_clock_mono_ms() < deadline) {
        size_t handled = 0;
        mr_err err = {0};
        rc = mr_bus_poll(first, 200, 1, refuse, NULL, &handled, &err);
    }
    assert_int_equal(rc, MR_EUNAVAIL);
    mr_bus_consumer_close(first);
    mr_bus_consumer *next = suite_subscribe(b, "closed", "closed");
    assert_int_equal(suite_next_seq(next), 0);
    mr_bus_consumer_close(next);
    mr_bus_close(b);
}

/* The IDs pending for group on stream, oldest first (up to 10), as one comma-separated string. */
static void pending_ids(const char *stream, const char *group, char *out, size_t cap)
{
    redisReply *r = redis_cmd("XPENDING %s %s - + 10", stream, group);
    if (r->type != REDIS_REPLY_ARRAY)
        fail_msg("XPENDING %s %s: unexpected reply", stream, group);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->elements; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? "," : "", r->element[i]->element[0]->str);
    freeReplyObject(r);
}

/* The ID of the newest entry of stream. */
static void last_id(const char *stream, char *out, size_t cap)
{
    redisReply *r = redis_cmd("XREVRANGE %s + - COUNT 1", stream);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
        fail_msg("XREVRANGE %s: unexpected reply", stream);
    snprintf(out, cap, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
}

/* A poll does not wait for its acknowledgement: the XACK goes out behind the consumer's next
 * read, and the server runs it when that read returns (for a waiting consumer, in the turn of
 * its loop that runs the XADD waking the read: one fsync on an appendfsync-always server for
 * both). So after a poll its entry is still pending; after the next one, which handles the next
 * entry, only that one is; after the consumer leaves, none is. */
static void test_an_acknowledgement_goes_with_the_next_read(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    env.opts.partitions = 1;
    mr_bus *b = suite_open(&env);
    mr_bus_consumer *c = suite_subscribe(b, "ackread", "ackread");
    for (int seq = 0; seq < 2; seq++) {
        char id[64], pending[256];
        suite_publish(b, "ackread", seq, 1, 1);
        suite_flush(b, 10000);
        last_id("mr:bus:ackread:0", id, sizeof id);
        assert_int_equal(suite_next_seq(c), seq);
        pending_ids("mr:bus:ackread:0", "ackread", pending, sizeof pending);
        assert_string_equal(pending, id);
    }
    mr_bus_consumer_close(c);
    char pending[256];
    pending_ids("mr:bus:ackread:0", "ackread", pending, sizeof pending);
    assert_string_equal(pending, "");
    /* Nothing comes again to the group's next consumer. */
    mr_bus_consumer *next = suite_subscribe(b, "ackread", "ackread");
    int seen = 0;
    size_t handled = 0;
    mr_err err = {0};
    assert_int_equal(mr_bus_poll(next, 300, 10, suite_count_one, &seen, &handled, &err), MR_OK);
    assert_int_equal(seen, 0);
    mr_bus_consumer_close(next);
    mr_bus_close(b);
}

static void test_restart_mid_stream_loses_nothing(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    mr_bus *b = suite_open(&env);
    mr_err err = {0};
    suite_collector *c = suite_collect_start(b, "restart", "restart", 400, NULL);
    suite_publish(b, "restart", 0, 200, 16);
    assert_int_equal(mr_bus_flush(b, 30000, &err), MR_OK);
    assert_int_equal(mr_tp_redis_restart(&redis, &err), MR_OK);
    /* Producer and consumer both find the server gone and reconnect on their own. */
    suite_publish(b, "restart", 200, 200, 16);
    if (mr_bus_flush(b, 30000, &err) != MR_OK)
        fail_msg("flush after the restart: %s", err.msg);
    suite_collect_wait(c, 120000);
    suite_collect_stop(c);
    mr_bus_close(b);
    /* Writes to the connection the old server closed failed without SIGPIPE ending the test,
     * and the bus left the process's disposition alone. */
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);
}

static void test_publish_while_down_is_kept_until_back(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    env.opts.publish_timeout_ms = 500;
    mr_bus *b = suite_open(&env);
    mr_err err = {0};
    suite_publish(b, "down", 0, 50, 16);
    assert_int_equal(mr_bus_flush(b, 30000, &err), MR_OK);
    assert_int_equal(mr_bus_ping(b, 1000, &err), MR_OK);
    assert_int_equal(mr_tp_redis_stop(&redis, false, &err), MR_OK);
    /* Readiness probes say the bus is gone, naming it. */
    assert_int_equal(mr_bus_ping(b, 1000, &err), MR_EUNAVAIL);
    char gone[512];
    snprintf(gone, sizeof gone, "%s: connecting: Connection refused", redis.url);
    assert_string_equal(err.msg, gone);
    suite_publish(b, "down", 50, 50, 16);
    assert_int_equal(mr_bus_flush(b, 600, &err), MR_EUNAVAIL);
    char want[512];
    snprintf(want, sizeof want,
             "%s: 50 messages not yet stored after 600 ms; last error: %s: connecting: Connection refused",
             redis.url, redis.url);
    assert_string_equal(err.msg, want);
    /* The producer keeps up to 1024 unconfirmed messages; the next one waits, then is refused. */
    suite_publish(b, "down", 100, 974, 16);
    assert_int_equal(mr_bus_publish(b, "down", "!room0:example.org", "{\"v\":1,\"seq\":1074}", 19, &err),
                     MR_EUNAVAIL);
    snprintf(want, sizeof want,
             "%s: 1024 messages not yet stored after 500 ms; last error: %s: connecting: Connection refused",
             redis.url, redis.url);
    assert_string_equal(err.msg, want);
    assert_int_equal(mr_tp_redis_restart(&redis, &err), MR_OK);
    assert_int_equal(mr_bus_ping(b, 1000, &err), MR_OK);
    if (mr_bus_flush(b, 30000, &err) != MR_OK)
        fail_msg("flush once redis is back: %s", err.msg);
    suite_collector *c = suite_collect_start(b, "down", "down", 1074, NULL);
    suite_collect_wait(c, 60000);
    suite_collect_stop(c);
    mr_bus_close(b);
}

static void test_partition_count_is_fixed_by_the_first_user(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    mr_bus *first = suite_open(&env);
    suite_publish(first, "fixed", 0, 10, 10);
    env.opts.partitions = 3;
    mr_bus *second = suite_open(&env);
    /* Published with other options, yet placed as the topic's 8 partitions say. */
    suite_publish(second, "fixed", 10, 10, 10);
    mr_err err = {0};
    assert_int_equal(mr_bus_flush(first, 30000, &err), MR_OK);
    assert_int_equal(mr_bus_flush(second, 30000, &err), MR_OK);
    suite_collector *c = suite_collect_start(second, "fixed", "fixed", 20, NULL);
    suite_collect_wait(c, 60000);
    suite_collect_stop(c);
    mr_bus_close(first);
    mr_bus_close(second);
}

static long long partitions_of(const char *topic)
{
    redisReply *r = redis_cmd("GET mr:bus:%s:partitions", topic);
    long long n = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return n;
}

typedef struct wide_seen {
    int n, misplaced;
} wide_seen;

static mr_code count_wide(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)err;
    wide_seen *w = ctx;
    w->n++;
    w->misplaced += m->partition != mr_bus_partition(m->key, 32);
    return MR_OK;
}

/* ?partitions=N in the URL: the topics this bus creates have N partitions, keys go to them as
 * mr_bus_partition(key, N) says, and a lone consumer of the group owns all of them. */
static void test_partitions_from_the_url(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    snprintf(env.url, sizeof env.url, "%s?partitions=32", redis.url);
    mr_bus *b = suite_open(&env);
    suite_publish(b, "wide", 0, 200, 200);
    mr_err err = {0};
    assert_int_equal(mr_bus_flush(b, 30000, &err), MR_OK);
    assert_int_equal(partitions_of("wide"), 32);
    const char *topics[] = {"wide"};
    mr_bus_consumer *c = NULL;
    assert_int_equal(mr_bus_subscribe(b, "wide", topics, 1, &c, &err), MR_OK);
    wide_seen w = {0};
    long long deadline = mr_clock_mono_ms() + 60000;
    while (w.n < 200 && mr_clock_mono_ms() < deadline) {
        size_t handled = 0;
        assert_int_equal(mr_bus_poll(c, 200, 100, count_wide, &w, &handled, &err), MR_OK);
    }
    assert_int_equal(w.n, 200);
    assert_int_equal(w.misplaced, 0);
    assert_int_equal(mr_bus_consumer_partitions(c), 32);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

/* Instances on one Redis, told apart by ?prefix= (here beside ?partitions=): each handles only
 * its own messages, and every key of a prefixed bus (streams, partition counts, members, leases)
 * sits under "<prefix>:", what a Redis ACL's ~<prefix>:* pattern allows. */
static void test_prefixes_keep_apart(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    snprintf(env.url, sizeof env.url, "%s?partitions=4", redis.url);
    suite_prefixes_keep_apart(&env, "shared");
    redisReply *r = redis_cmd("KEYS %s", "*shared*");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int per[3] = {0};
    for (size_t i = 0; i < r->elements; i++) {
        const char *k = r->element[i]->str;
        int which = strncmp(k, "tenant-a:mr:bus:shared:", 23) == 0   ? 0
                    : strncmp(k, "tenant_b:mr:bus:shared:", 23) == 0 ? 1
                    : strncmp(k, "mr:bus:shared:", 14) == 0          ? 2
                                                                     : -1;
        if (which < 0)
            fail_msg("key %s is in no bus's namespace", k);
        per[which]++;
    }
    freeReplyObject(r);
    /* 4 streams and the partition count at least, for each. */
    for (int i = 0; i < 3; i++)
        assert_true(per[i] >= 5);
}

static void test_unreachable_server_is_reported(void **state)
{
    (void)state;
    int port = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    mr_bus *b = NULL;
    assert_int_equal(mr_bus_open(url, NULL, &b, &err), MR_OK);
    const char *topics[] = {"t"};
    mr_bus_consumer *c = NULL;
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 1, &c, &err), MR_EUNAVAIL);
    char want[256];
    snprintf(want, sizeof want, "%s: connecting: Connection refused", url);
    assert_string_equal(err.msg, want);
    mr_bus_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SUITE_NETWORK_TESTS(&env_of_suite),
        cmocka_unit_test(test_restart_mid_stream_loses_nothing),
        cmocka_unit_test(test_publish_while_down_is_kept_until_back),
        cmocka_unit_test(test_partition_count_is_fixed_by_the_first_user),
        cmocka_unit_test(test_partitions_from_the_url),
        cmocka_unit_test(test_prefixes_keep_apart),
        cmocka_unit_test(test_unreachable_server_is_reported),
        cmocka_unit_test(test_a_refused_message_reaches_its_publisher),
        cmocka_unit_test(test_maxmemory_reaches_the_publisher),
        cmocka_unit_test(test_a_long_handler_keeps_its_partition),
        cmocka_unit_test(test_closed_consumer_leaves_its_entry),
        cmocka_unit_test(test_an_acknowledgement_goes_with_the_next_read),
        cmocka_unit_test(test_streams_are_trimmed_to_what_some_group_needs),
        cmocka_unit_test(test_a_busy_consumer_trims_between_rebalances),
    };
    return cmocka_run_group_tests(tests, start_redis, stop_redis);
}
