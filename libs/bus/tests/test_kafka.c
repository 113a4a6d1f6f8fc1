/* test_kafka.c -- the Kafka bus against three mock brokers (tests/peers/mr-kafka-mock): the
 * behaviour suite, a consumer killed mid-batch, the broker set down and back, and kcat as an
 * independent client proving the wire format and the key partitioning.
 * suite_long_handler_keeps_its_partition does not run here: librdkafka heartbeats from its own
 * thread, and a real broker waits for a member's rejoin up to its rebalance timeout
 * (max.poll.interval.ms), but the mock cluster elects a new leader session.timeout.ms - 1 s into a
 * rebalance, so over it a consumer that joins during a handler longer than the session takes the
 * partition and handles the message in flight again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bus_suite.h"
#include "peer_fixture.h"
#include "mindroom/clock.h"

static mr_tp_kafka kafka;
static suite_env env_of_suite; /* the brokers', once they are up: the shared suite's and every test's */

static void make_topic(void *ctx, const char *topic)
{
    (void)ctx;
    mr_err err = {0};
    if (mr_tp_kafka_topic(&kafka, topic, 8, &err) != MR_OK)
        fail_msg("creating topic %s: %s", topic, err.msg);
}

static int start_kafka(void **state)
{
    (void)state;
    if (mr_tp_kafka_setup(&kafka) != 0)
        return -1;
    /* A short session: a killed consumer's partitions move on within three seconds. */
    env_of_suite = suite_env_at(kafka.url, 3000);
    env_of_suite.make_topic = make_topic;
    return 0;
}

static int stop_kafka(void **state)
{
    (void)state;
    mr_tp_kafka_destroy(&kafka);
    return 0;
}

static void test_broker_set_down_and_back_loses_nothing(void **state)
{
    (void)state;
    suite_env env = env_of_suite;
    make_topic(NULL, "outage");
    mr_bus *b = suite_open(&env);
    mr_err err = {0};
    suite_collector *c = suite_collect_start(b, "outage", "outage", 200, NULL);
    suite_publish(b, "outage", 0, 100, 16);
    assert_int_equal(mr_bus_flush(b, 60000, &err), MR_OK);
    assert_int_equal(mr_bus_ping(b, 5000, &err), MR_OK);

    mr_tp_kafka_set_brokers(&kafka, false);
    /* Readiness probes say the brokers are gone, naming the bus. */
    assert_int_equal(mr_bus_ping(b, 1000, &err), MR_EUNAVAIL);
    char gone[600];
    snprintf(gone, sizeof gone, "%s: no broker answered within 1000 ms: ", kafka.url);
    assert_memory_equal(err.msg, gone, strlen(gone));
    suite_publish(b, "outage", 100, 100, 16);
    /* With every broker down nothing can be acknowledged: flush says so, and keeps them. */
    assert_int_equal(mr_bus_flush(b, 1000, &err), MR_EUNAVAIL);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s: ", kafka.url);
    assert_memory_equal(err.msg, prefix, strlen(prefix));
    assert_non_null(strstr(err.msg, " messages not yet acknowledged by the brokers after 1000 ms"));

    mr_tp_kafka_set_brokers(&kafka, true);
    long long until = mr_clock_mono_ms() + 60000;
    while (mr_bus_ping(b, 1000, &err) != MR_OK && mr_clock_mono_ms() < until)
        ;
    assert_int_equal(mr_bus_ping(b, 1000, &err), MR_OK);
    if (mr_bus_flush(b, 60000, &err) != MR_OK)
        fail_msg("flush once the brokers are back: %s", err.msg);
    suite_collect_wait(c, 120000);
    suite_collect_stop(c);
    mr_bus_close(b);
}

static void test_kcat_produces_we_consume(void **state)
{
    (void)state;
    make_topic(NULL, "from-kcat");
    char cmd[1024];
    /* kcat's own default partitioner differs; murmur2_random is what Java clients and we use. */
    snprintf(cmd, sizeof cmd, "kcat -b %s -P -t from-kcat -K '|' -X partitioner=murmur2_random",
             kafka.bootstrap);
    FILE *p = popen(cmd, "w");
    assert_non_null(p);
    for (int s = 0; s < 40; s++)
        fprintf(p, "!room%d:example.org|{\"v\":1,\"seq\":%d}\n", s % 7, s);
    int st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    suite_env env = env_of_suite;
    mr_bus *b = suite_open(&env);
    /* The collector checks each message's partition against mr_bus_partition(key). */
    suite_collector *c = suite_collect_start(b, "reads-kcat", "from-kcat", 40, NULL);
    suite_collect_wait(c, 60000);
    assert_int_equal(suite_collect_stop(c), 40);
    mr_bus_close(b);
}

static void test_we_produce_kcat_consumes(void **state)
{
    (void)state;
    make_topic(NULL, "to-kcat");
    suite_env env = env_of_suite;
    mr_bus *b = suite_open(&env);
    suite_publish(b, "to-kcat", 0, 40, 7);
    mr_err err = {0};
    assert_int_equal(mr_bus_flush(b, 60000, &err), MR_OK);
    mr_bus_close(b);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "kcat -b %s -C -e -q -t to-kcat -o beginning -f '%%p|%%k|%%s\\n'",
             kafka.bootstrap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    bool seen[40] = {0};
    int lines = 0;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        int partition = -1;
        char key[128] = "";
        long seq = suite_seq(line);
        assert_int_equal(sscanf(line, "%d|%127[^|]|", &partition, key), 2);
        assert_true(seq >= 0 && seq < 40);
        char want_key[64];
        snprintf(want_key, sizeof want_key, "!room%ld:example.org", seq % 7);
        assert_string_equal(key, want_key);
        assert_int_equal(partition, mr_bus_partition(key, 8));
        seen[seq] = true;
        lines++;
    }
    int st = pclose(p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(lines, 40);
    for (int s = 0; s < 40; s++)
        assert_true(seen[s]);

    snprintf(cmd, sizeof cmd, "kcat -b %s -L -t to-kcat", kafka.bootstrap);
    p = popen(cmd, "r");
    assert_non_null(p);
    bool listed = false;
    while (fgets(line, sizeof line, p))
        listed |= strstr(line, "topic \"to-kcat\" with 8 partitions") != NULL;
    pclose(p);
    assert_true(listed);
}

/* A real broker answers a consumer's waiting fetch as soon as a message arrives, so the fetch
 * wait is no part of a hop; the mock's relays copy that (tests/peers/kafka_fetch_proxy.c). With
 * the longest wait the URL allows, the second message, published right after the consumer
 * handled the first (when its next fetch went out), comes within a 5 s poll, where a broker
 * that held the fetch for its whole wait would answer after 10 s. */
static void test_a_waiting_fetch_is_answered_when_data_arrives(void **state)
{
    (void)state;
    make_topic(NULL, "prompt");
    suite_env env = env_of_suite;
    snprintf(env.url, sizeof env.url, "%s?fetch_wait_ms=10000", kafka.url);
    mr_bus *b = suite_open(&env);
    mr_bus_consumer *c = suite_subscribe(b, "prompt", "prompt");
    suite_publish(b, "prompt", 0, 1, 1);
    suite_flush(b, 30000);
    assert_int_equal(suite_next_seq(c), 0);
    suite_publish(b, "prompt", 1, 1, 1);
    suite_flush(b, 30000);
    int seen = 0;
    size_t handled = 0;
    mr_err err = {0};
    assert_int_equal(mr_bus_poll(c, 5000, 1, suite_count_one, &seen, &handled, &err), MR_OK);
    if (seen != 1)
        fail_msg("the second message did not come within 5 s: the broker held the fetch for its whole "
                 "wait (10 s)");
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

/* The Kafka protocol's API key of Produce (librdkafka's RD_KAFKAP_Produce is not public). */
#define KAFKA_API_PRODUCE 0

/* The broker refuses A's message (its next Produce request fails with "message too large", which
 * no retry cures). B flushes while that report comes, then publishes and flushes
 * its own message: B's flushes are clean, and A's flush gets A's failure. A cluster of its own,
 * in this process, since only librdkafka's mock API can inject errors. */
static void test_a_failed_delivery_reaches_its_publisher(void **state)
{
    (void)state;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr), RD_KAFKA_CONF_OK);
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    assert_non_null(host);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "denied", 8, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    suite_env env = env_of_suite;
    snprintf(env.url, sizeof env.url, "kafka://%s", rd_kafka_mock_cluster_bootstraps(mc));
    mr_bus *b = suite_open(&env);
    rd_kafka_mock_push_request_errors(mc, KAFKA_API_PRODUCE, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);

    suite_publisher a;
    suite_publisher_start(&a, b, "denied", "!a:example.org");
    mr_err err = {0};
    /* Waits for A's delivery report too (everything published so far), but is not A. */
    if (mr_bus_flush(b, 30000, &err) != MR_OK)
        fail_msg("a flush of a thread that published nothing took a failure: %s", err.msg);
    suite_publish(b, "denied", 0, 1, 1);
    if (mr_bus_flush(b, 30000, &err) != MR_OK)
        fail_msg("a flush of a delivered message took a failure that is not its publisher's: %s", err.msg);
    suite_publisher_flush(&a);
    assert_int_equal(a.publish_rc, MR_OK);
    assert_int_equal(a.flush_rc, MR_EUNAVAIL);
    char want[700];
    snprintf(want, sizeof want, "%s: delivering a message to denied[%d]: ", env.url,
             mr_bus_partition("!a:example.org", 8));
    assert_memory_equal(a.err.msg, want, strlen(want));
    assert_non_null(strstr(a.err.msg, rd_kafka_err2str(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)));
    mr_bus_close(b);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SUITE_NETWORK_TESTS(&env_of_suite),
        cmocka_unit_test_prestate(suite_test_prefixes_keep_apart, &env_of_suite),
        cmocka_unit_test(test_broker_set_down_and_back_loses_nothing),
        cmocka_unit_test(test_kcat_produces_we_consume),
        cmocka_unit_test(test_we_produce_kcat_consumes),
        cmocka_unit_test(test_a_waiting_fetch_is_answered_when_data_arrives),
        cmocka_unit_test(test_a_failed_delivery_reaches_its_publisher),
    };
    return cmocka_run_group_tests(tests, start_kafka, stop_kafka);
}
