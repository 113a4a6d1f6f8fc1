/* bus_suite.h -- behaviour tests every bus backend must pass, run against a URL. */
#ifndef MINDROOM_BUS_SUITE_H
#define MINDROOM_BUS_SUITE_H

#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include "mindroom/bus.h"

typedef struct suite_env {
    char url[600];
    mr_bus_options opts;
    /* Creates a topic with 8 partitions before use (Kafka's mock cluster cannot be asked to);
     * NULL when the bus creates topics itself. */
    void (*make_topic)(void *ctx, const char *topic);
    void *ctx;
    /* inproc: every consumer of a group may take any partition, rather than owning some. */
    bool partitions_shared;
} suite_env;

/* Waits on cv (a CLOCK_REALTIME one) until *done or the deadline on mr_clock_mono_ms; the mutex
 * is held. */
void suite_wait_flag(pthread_cond_t *cv, pthread_mutex_t *mu, const bool *done, long long deadline);

/* The env of a bus at url, as client "test" with leases (or sessions) of lease_ms. */
suite_env suite_env_at(const char *url, int lease_ms);
/* Opens a bus on env's URL and options, failing the test on error. */
mr_bus *suite_open(const suite_env *env);
void suite_make_topic(const suite_env *env, const char *topic);

/* mr_bus_flush and a one-topic mr_bus_subscribe, failing the test on error. */
void suite_flush(mr_bus *b, int timeout_ms);
mr_bus_consumer *suite_subscribe(mr_bus *b, const char *group, const char *topic);

/* Publishes messages first..first+count-1: message s has key "!room<s % keys>:example.org" and
 * value {"v":1,"seq":s}. */
void suite_publish(mr_bus *b, const char *topic, int first, int count, int keys);
/* The seq of a value written by suite_publish, -1 when there is none. */
long suite_seq(const char *value);

/* A handler that counts the messages it gets in *(int *)ctx. */
mr_code suite_count_one(void *ctx, const mr_bus_msg *m, mr_err *err);
/* Handles exactly n messages with c (polls of at most what is left), failing the test when
 * they do not come within 30 s. */
void suite_handle_exactly(mr_bus_consumer *c, int n);
/* The seq of the next message c handles, failing the test when none comes within 30 s. */
long suite_next_seq(mr_bus_consumer *c);
/* inproc, with or without a journal: large messages are freed as soon as every group has
 * handled them (the bus's held bytes go back to zero), not when their ring slot is reused; a
 * group that has not handled them keeps them; a group new after that starts after them. */
void suite_inproc_frees_handled(const suite_env *env);

/* A thread that publishes one message, then flushes when told: what a flush reports must be the
 * flushing thread's own. */
typedef struct suite_publisher {
    mr_bus *bus;
    const char *topic, *key;
    sem_t go;
    pthread_t thread;
    mr_code publish_rc, flush_rc;
    mr_err err;
} suite_publisher;
/* Starts p publishing to topic under key, and returns once it has published. */
void suite_publisher_start(suite_publisher *p, mr_bus *b, const char *topic, const char *key);
/* Lets p flush (waiting up to 30 s) and waits until it has; its results are in p. */
void suite_publisher_flush(suite_publisher *p);

/* A consumer thread that records every seq it handles, while a test disturbs the backend.
 * `already` (may be NULL) marks seqs handled elsewhere that it need not see. */
typedef struct suite_collector suite_collector;
suite_collector *suite_collect_start(mr_bus *b, const char *group, const char *topic, int n_expected,
                                     const bool *already);
/* Waits until every seq in [0, n_expected) was handled at least once; fails the test when that
 * does not happen within timeout_ms. */
void suite_collect_wait(suite_collector *c, int timeout_ms);
/* Stops and frees it; returns how many messages it handled, duplicates included. */
long suite_collect_stop(suite_collector *c);

/* Several consumers of one group handle keys x per_key messages; each key's seqs arrive
 * strictly increasing, on the partition mr_bus_partition gives. */
void suite_order_per_key(const suite_env *env, const char *topic, int consumers, int keys, int per_key);
/* A handler failure stops the partition and the message comes again, in order. */
void suite_handler_failure_redelivers(const suite_env *env, const char *topic);
/* Messages published before two groups first subscribe reach both, each message once. */
void suite_groups_get_earlier_messages(const suite_env *env, const char *topic);
/* Consumer A's first handler runs 3.5 lease_ms while consumer B of its group joins, on a topic of
 * one partition that is B's once both are live (B's client_id "aa-fast" sorts before A's
 * "zz-slow"): no message is handled by both at once (A keeps the partition while its handler
 * runs), every message is handled, and B handles the ones after A's long one. */
void suite_long_handler_keeps_its_partition(const suite_env *env, const char *topic);
/* Runs bus_test_consumer (argv, output in log), which writes a line per message it handles to
 * out and hangs in the handler after stall_after; SIGKILLs it once out holds those lines, and
 * returns its wait status. */
int suite_kill_when_stalled(char *const argv[], const char *out, const char *log, int stall_after);
/* A group that subscribes to topic now starts at the next message published (seq), not at an
 * earlier one kept for another group. */
void suite_late_group_starts_at(mr_bus *b, const char *topic, int seq, int flush_ms);
/* Marks seen[seq] for each line of out (every seq below n); returns the number of lines. */
int suite_read_seen(const char *out, bool *seen, int n);
/* A consumer process killed mid-batch: another consumer of its group gets what it had not
 * acknowledged, so together they handled every message. */
void suite_killed_consumer_redelivers(const suite_env *env, const char *topic);

/* Three buses on env's server, two with their own ?prefix= and one without, each publishing to
 * and consuming one topic in one group of the same names: each consumer handles exactly its own
 * bus's messages, under the topic as published. Kafka's topics are made as <prefix>.<topic>. */
void suite_prefixes_keep_apart(const suite_env *env, const char *topic);

/* The behaviours above as cmocka tests, for every backend alike: *state is its suite_env
 * (cmocka_unit_test_prestate, or a fixture whose first member it is). */
void suite_test_order_per_key(void **state);
void suite_test_handler_failure_redelivers(void **state);
void suite_test_groups_get_earlier_messages(void **state);
void suite_test_killed_consumer_redelivers(void **state);
void suite_test_frees_handled(void **state);
void suite_test_prefixes_keep_apart(void **state);
/* Those every backend runs, for a test list; env is a suite_env *. */
#define SUITE_TESTS(env)                                                  \
    cmocka_unit_test_prestate(suite_test_order_per_key, env),             \
    cmocka_unit_test_prestate(suite_test_handler_failure_redelivers, env), \
    cmocka_unit_test_prestate(suite_test_groups_get_earlier_messages, env)
/* SUITE_TESTS and those of a backend served by another process, which a consumer process can
 * leave mid-batch. */
#define SUITE_NETWORK_TESTS(env) \
    SUITE_TESTS(env), cmocka_unit_test_prestate(suite_test_killed_consumer_redelivers, env)

#endif
