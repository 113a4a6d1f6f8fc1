/* test_inproc.c -- the in-process bus: the shared behaviour suite, plus its bounded queues. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus_suite.h"
#include "inproc_internal.h"
#include "mindroom/clock.h"

static suite_env env_of_suite = {.url = "inproc:", .partitions_shared = true};

static suite_env inproc_env(void)
{
    return env_of_suite;
}

/* Records seqs handled, in order. */
typedef struct seq_log {
    long seqs[64];
    int n;
} seq_log;

static mr_code log_seq(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)err;
    seq_log *l = ctx;
    if (l->n < 64)
        l->seqs[l->n++] = suite_seq(m->value);
    return MR_OK;
}

static void poll_expect(mr_bus_consumer *c, size_t max, size_t want, seq_log *l)
{
    size_t handled = 0;
    mr_err err = {0};
    assert_int_equal(mr_bus_poll(c, 0, max, log_seq, l, &handled, &err), MR_OK);
    assert_int_equal(handled, want);
}

static void test_full_queue_times_out_without_dropping(void **state)
{
    (void)state;
    mr_bus_options opts = {.partitions = 1, .inproc_capacity = 4, .publish_timeout_ms = 200};
    mr_bus *b = NULL;
    mr_err err = {0};
    assert_int_equal(mr_bus_open("inproc:", &opts, &b, &err), MR_OK);
    suite_publish(b, "full", 0, 4, 3);
    /* Nobody handled anything yet: the fifth waits for room, then gives up, unqueued. */
    assert_int_equal(mr_bus_publish(b, "full", "!room1:example.org", "{\"v\":1,\"seq\":4}", 15, &err),
                     MR_EUNAVAIL);
    assert_string_equal(
        err.msg, "inproc bus: full[0] is full (4 messages not yet handled by every group) after 200 ms");
    const char *topics[] = {"full"};
    mr_bus_consumer *c = NULL;
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 1, &c, &err), MR_OK);
    seq_log l = {0};
    poll_expect(c, 1, 1, &l);
    /* One handled makes room for exactly one. */
    suite_publish(b, "full", 4, 1, 3);
    assert_int_equal(mr_bus_publish(b, "full", "!room2:example.org", "{\"v\":1,\"seq\":5}", 15, &err),
                     MR_EUNAVAIL);
    poll_expect(c, 10, 4, &l);
    poll_expect(c, 10, 0, &l);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(l.seqs[i], i);
    assert_int_equal(mr_bus_flush(b, 0, &err), MR_OK);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

/* A producer thread that publishes without a time limit while the test's handler watches it. */
typedef struct blocking_run {
    mr_bus *bus;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int published;   /* publishes that returned */
    int total;
    bool failed;
    long seen_ahead[200]; /* per handled seq: publishes returned while it was being handled */
    int handled;
} blocking_run;

static void *blocking_producer(void *arg)
{
    blocking_run *r = arg;
    for (int s = 0; s < r->total; s++) {
        char value[64];
        int len = snprintf(value, sizeof value, "{\"v\":1,\"seq\":%d}", s);
        mr_err err = {0};
        mr_code rc = mr_bus_publish(r->bus, "blocking", "!room0:example.org", value, (size_t)len, &err);
        pthread_mutex_lock(&r->mu);
        r->failed |= rc != MR_OK;
        r->published++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

static mr_code watch_producer(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)err;
    blocking_run *r = ctx;
    long seq = suite_seq(m->value);
    int capacity = 8, expect = (int)seq + capacity < r->total ? (int)seq + capacity : r->total;
    struct timespec until = mr_clock_after_ms(CLOCK_REALTIME, 30000);
    pthread_mutex_lock(&r->mu);
    /* The producer fills the ring, then must stop: message seq is not acknowledged yet. */
    while (r->published < expect && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0) {
    }
    if (seq == r->handled && r->handled < 200)
        r->seen_ahead[r->handled++] = r->published;
    pthread_mutex_unlock(&r->mu);
    return MR_OK;
}

static void test_full_queue_blocks_producer_until_consumer_catches_up(void **state)
{
    (void)state;
    mr_bus_options opts = {.partitions = 1, .inproc_capacity = 8, .publish_timeout_ms = -1};
    blocking_run r = {.total = 100};
    mr_err err = {0};
    assert_int_equal(mr_bus_open("inproc:", &opts, &r.bus, &err), MR_OK);
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    const char *topics[] = {"blocking"};
    mr_bus_consumer *c = NULL;
    assert_int_equal(mr_bus_subscribe(r.bus, "slow", topics, 1, &c, &err), MR_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocking_producer, &r), 0);
    while (r.handled < r.total) {
        size_t handled = 0;
        assert_int_equal(mr_bus_poll(c, 30000, 1, watch_producer, &r, &handled, &err), MR_OK);
        assert_int_equal(handled, 1);
    }
    pthread_join(t, NULL);
    assert_false(r.failed);
    for (int s = 0; s < r.total; s++) {
        int expect = s + 8 < r.total ? s + 8 : r.total;
        assert_int_equal(r.seen_ahead[s], expect);
    }
    mr_bus_consumer_close(c);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    mr_bus_close(r.bus);
}

/* Producers are woken when a slot they wait for is freed, not by every consumer step: a
 * consumer working through a full ring that no producer waits on wakes nobody. */
static void test_consumer_steps_wake_no_idle_producer(void **state)
{
    (void)state;
    mr_bus_options opts = {.partitions = 2, .inproc_capacity = 8};
    mr_bus *b = NULL;
    mr_err err = {0};
    assert_int_equal(mr_bus_open("inproc:", &opts, &b, &err), MR_OK);
    const char *topics[] = {"idle"};
    mr_bus_consumer *c = NULL;
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 1, &c, &err), MR_OK);
    suite_publish(b, "idle", 0, 8, 1);
    seq_log log = {0};
    poll_expect(c, 10, 8, &log);
    assert_int_equal(((ip_bus *)b)->space_wakes, 0);

    mr_bus_consumer_close(c);

    /* A producer blocked on the full ring is woken once, by the step that frees its slot, not by
     * each of the steps after it. */
    const char *blocking[] = {"blocking"};
    blocking_run r = {.bus = b, .total = 9};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    assert_int_equal(mr_bus_subscribe(b, "g", blocking, 1, &c, &err), MR_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocking_producer, &r), 0);
    struct timespec until = mr_clock_after_ms(CLOCK_REALTIME, 30000);
    pthread_mutex_lock(&r.mu);
    while (r.published < 8 && pthread_cond_timedwait(&r.cv, &r.mu, &until) == 0) {
    }
    pthread_mutex_unlock(&r.mu);
    seq_log all = {0};
    for (size_t handled = 0; all.n < 9; handled = 0)
        assert_int_equal(mr_bus_poll(c, 30000, 9, log_seq, &all, &handled, &err), MR_OK);
    pthread_join(t, NULL);
    assert_false(r.failed);
    assert_int_equal(r.published, 9);
    assert_true(((ip_bus *)b)->space_wakes <= 1);
    mr_bus_consumer_close(c);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    mr_bus_close(b);
}

/* A consumer thread polling once for one message, 30 s at most. */
typedef struct one_poll {
    mr_bus_consumer *c;
    pthread_t thread;
    size_t handled;
    mr_code rc;
} one_poll;

static void *poll_one(void *arg)
{
    one_poll *p = arg;
    seq_log l = {0};
    mr_err err = {0};
    p->rc = mr_bus_poll(p->c, 30000, 1, log_seq, &l, &p->handled, &err);
    return NULL;
}

/* The bus's consumer counts at one moment, read under its lock. */
typedef struct ip_counts {
    size_t waiting;  /* consumers asleep for a message */
    uint64_t wakes;  /* signals sent to waiting consumers so far */
} ip_counts;

static ip_counts counts_of(ip_bus *b)
{
    pthread_mutex_lock(&b->mu);
    ip_counts c = {.waiting = b->n_waiters, .wakes = b->consumer_wakes};
    pthread_mutex_unlock(&b->mu);
    return c;
}

/* Waits up to 30 s until n consumers of b are asleep waiting for a message, and says so. */
static void expect_waiting(ip_bus *b, size_t n)
{
    long long deadline = mr_clock_mono_ms() + 30000;
    while (counts_of(b).waiting != n && mr_clock_mono_ms() < deadline)
        sched_yield();
    assert_int_equal(counts_of(b).waiting, n);
}

/* A publish wakes one waiting consumer that may take the message, not every waiting consumer of
 * the bus: in `mindroom run` a dozen consumer threads (eight of them the gateway's senders) each
 * woke on every message of every topic. Three consumers of group g on "busy" and two of group q
 * on "quiet", one partition: each message wakes one consumer, once. */
static void test_a_publish_wakes_one_consumer_that_may_take_it(void **state)
{
    (void)state;
    mr_bus_options opts = {.partitions = 1};
    mr_bus *b = NULL;
    mr_err err = {0};
    assert_int_equal(mr_bus_open("inproc:", &opts, &b, &err), MR_OK);
    ip_bus *ib = (ip_bus *)b;
    const char *busy[] = {"busy"}, *quiet[] = {"quiet"};
    one_poll polls[5] = {0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(mr_bus_subscribe(b, i < 3 ? "g" : "q", i < 3 ? busy : quiet, 1, &polls[i].c, &err), MR_OK);
        assert_int_equal(pthread_create(&polls[i].thread, NULL, poll_one, &polls[i]), 0);
    }
    expect_waiting(ib, 5);

    suite_publish(b, "busy", 0, 1, 1);
    expect_waiting(ib, 4);
    assert_int_equal(counts_of(ib).wakes, 1);
    /* The rest, one message per consumer: the second and third of g in turn (the third once the
     * second is done with the partition), and the two of q likewise. */
    suite_publish(b, "busy", 1, 2, 1);
    suite_publish(b, "quiet", 0, 2, 1);
    size_t handled = 0;
    for (int i = 0; i < 5; i++) {
        pthread_join(polls[i].thread, NULL);
        assert_int_equal(polls[i].rc, MR_OK);
        handled += polls[i].handled;
        mr_bus_consumer_close(polls[i].c);
    }
    assert_int_equal(handled, 5);
    assert_int_equal(counts_of(ib).wakes, 5);
    mr_bus_close(b);
}

/* What the first message's handler does in the test below: once the other consumer of the group
 * waits, the next message of the same partition comes while this one is still being handled. */
typedef struct handoff {
    mr_bus *bus;
    one_poll *other;
    seq_log log;
} handoff;

static mr_code publish_next_while_busy(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)err;
    handoff *h = ctx;
    long seq = suite_seq(m->value);
    h->log.seqs[h->log.n++] = seq;
    if (seq == 0) {
        assert_int_equal(pthread_create(&h->other->thread, NULL, poll_one, h->other), 0);
        expect_waiting((ip_bus *)h->bus, 1);
        suite_publish(h->bus, "chain", 1, 1, 1);
    }
    return MR_OK;
}

/* A consumer that finished a message takes the next one of the partition itself (up to its
 * batch) rather than handing it to a waiting consumer of the group: a hand-over costs a
 * wake-up, and on a busy machine the woken thread waited milliseconds for a core while the
 * running one was free. The waiting consumer gets what comes after. */
static void test_a_running_consumer_takes_the_next_message_itself(void **state)
{
    (void)state;
    mr_bus_options opts = {.partitions = 1};
    mr_bus *b = NULL;
    mr_err err = {0};
    assert_int_equal(mr_bus_open("inproc:", &opts, &b, &err), MR_OK);
    const char *topics[] = {"chain"};
    mr_bus_consumer *running = NULL;
    one_poll other = {0};
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 1, &running, &err), MR_OK);
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 1, &other.c, &err), MR_OK);
    suite_publish(b, "chain", 0, 1, 1);
    handoff h = {.bus = b, .other = &other};
    size_t handled = 0;
    assert_int_equal(mr_bus_poll(running, 0, 8, publish_next_while_busy, &h, &handled, &err), MR_OK);
    assert_int_equal(handled, 2);
    assert_int_equal(h.log.seqs[1], 1);
    assert_int_equal(counts_of((ip_bus *)b).wakes, 0);
    assert_int_equal(counts_of((ip_bus *)b).waiting, 1);
    suite_publish(b, "chain", 2, 1, 1);
    pthread_join(other.thread, NULL);
    assert_int_equal(other.rc, MR_OK);
    assert_int_equal(other.handled, 1);
    mr_bus_consumer_close(other.c);
    mr_bus_consumer_close(running);
    mr_bus_close(b);
}

static void test_late_group_starts_after_what_every_group_handled(void **state)
{
    (void)state;
    mr_bus_options opts = {.partitions = 1, .inproc_capacity = 4};
    mr_bus *b = NULL;
    mr_err err = {0};
    assert_int_equal(mr_bus_open("inproc:", &opts, &b, &err), MR_OK);
    const char *topics[] = {"kept"};
    mr_bus_consumer *early = NULL, *late = NULL;
    /* Without any group the ring keeps what was published (a producer waits when it is full),
     * for the first group. */
    suite_publish(b, "kept", 0, 4, 1);
    assert_int_equal(mr_bus_subscribe(b, "early", topics, 1, &early, &err), MR_OK);
    seq_log el = {0}, ll = {0};
    poll_expect(early, 10, 4, &el);
    for (int i = 0; i < 4; i++)
        assert_int_equal(el.seqs[i], i);
    /* Every group handled those: they are freed, and a group that comes later starts after. */
    assert_int_equal(mr_bus_subscribe(b, "late", topics, 1, &late, &err), MR_OK);
    suite_publish(b, "kept", 4, 1, 1);
    poll_expect(late, 10, 1, &ll);
    assert_int_equal(ll.seqs[0], 4);
    /* A group's position outlives its consumer, like committed offsets. */
    mr_bus_consumer_close(late);
    suite_publish(b, "kept", 5, 1, 1);
    assert_int_equal(mr_bus_subscribe(b, "late", topics, 1, &late, &err), MR_OK);
    poll_expect(late, 10, 1, &ll);
    assert_int_equal(ll.seqs[1], 5);
    mr_bus_consumer_close(early);
    mr_bus_consumer_close(late);
    mr_bus_close(b);
}

/* Nothing to reach: an in-process bus is always ready. */
static void test_ping_always_answers(void **state)
{
    (void)state;
    suite_env env = inproc_env();
    mr_bus *b = suite_open(&env);
    mr_err err = {0};
    assert_int_equal(mr_bus_ping(b, 1, &err), MR_OK);
    mr_bus_close(b);
}

static void test_handled_messages_are_freed(void **state)
{
    (void)state;
    suite_env env = inproc_env();
    suite_inproc_frees_handled(&env);
}

/* Bytes malloc hands out right now; 0 when an allocator of a sanitizer stands in for glibc's. */
static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

static mr_code count_handled(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)m;
    (void)err;
    (*(size_t *)ctx)++;
    return MR_OK;
}

/* Ring slots follow the messages in flight: subscribing to topics costs no slots, and once every
 * group handled a burst its slots are given back, whatever inproc_capacity allows (with 8
 * topics of 8 partitions, 1,024 slots each held 1.5 MiB before a message was published). */
static void test_ring_slots_follow_messages_in_flight(void **state)
{
    (void)state;
    if (heap_in_use() == 0)
        skip();
    mr_bus_options opts = {.partitions = 8, .inproc_capacity = 1024};
    mr_bus *b = NULL;
    mr_err err = {0};
    size_t before = heap_in_use();
    assert_int_equal(mr_bus_open("inproc:", &opts, &b, &err), MR_OK);
    const char *topics[] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
    mr_bus_consumer *c = NULL;
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 8, &c, &err), MR_OK);
    size_t subscribed = heap_in_use() - before;
    assert_true(subscribed < 32 * 1024);
    for (int t = 0; t < 8; t++)
        suite_publish(b, topics[t], 0, 500, 64);
    size_t handled = 0;
    while (handled < 8 * 500) {
        size_t n = 0, counted = 0;
        assert_int_equal(mr_bus_poll(c, 1000, 1000, count_handled, &counted, &n, &err), MR_OK);
        assert_true(n > 0 && counted == n);
        handled += n;
    }
    assert_true(heap_in_use() - before <= subscribed + 8 * 1024);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SUITE_TESTS(&env_of_suite),
        cmocka_unit_test(test_ping_always_answers),
        cmocka_unit_test(test_full_queue_times_out_without_dropping),
        cmocka_unit_test(test_full_queue_blocks_producer_until_consumer_catches_up),
        cmocka_unit_test(test_consumer_steps_wake_no_idle_producer),
        cmocka_unit_test(test_a_publish_wakes_one_consumer_that_may_take_it),
        cmocka_unit_test(test_a_running_consumer_takes_the_next_message_itself),
        cmocka_unit_test(test_late_group_starts_after_what_every_group_handled),
        cmocka_unit_test(test_handled_messages_are_freed),
        cmocka_unit_test(test_ring_slots_follow_messages_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
