/* test_api.c -- the bus front end: URL and option errors, name checks, key partitioning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "mindroom/bus.h"

static void expect_open_error(const char *url, const mr_bus_options *opts, const char *want)
{
    mr_bus *b = (mr_bus *)1;
    mr_err err = {0};
    assert_int_equal(mr_bus_open(url, opts, &b, &err), MR_EINVAL);
    assert_null(b);
    assert_int_equal(err.code, MR_EINVAL);
    assert_string_equal(err.msg, want);
}

static void test_bad_urls(void **state)
{
    (void)state;
#define REDIS_EXPECTED "; expected redis://[user:password@]host[:port][/db]"
    const char *expected = "expected inproc:, kafka://host:port[,host:port] or redis://host:port/db";
    char want[512];
    snprintf(want, sizeof want, "bus URL is empty; %s", expected);
    expect_open_error(NULL, NULL, want);
    expect_open_error("", NULL, want);
    snprintf(want, sizeof want, "bus URL \"amqp://localhost\": unknown scheme; %s", expected);
    expect_open_error("amqp://localhost", NULL, want);
    snprintf(want, sizeof want, "bus URL \"KAFKA://h:1\": unknown scheme; %s", expected);
    expect_open_error("KAFKA://h:1", NULL, want);
    expect_open_error("inproc:queue", NULL,
                      "bus URL \"inproc:queue\": expected inproc: (in memory) or "
                      "inproc:///absolute/path/journal.db");
    expect_open_error("kafka://", NULL,
                      "bus URL \"kafka://\": no broker; expected kafka://host:port[,host:port]");
    expect_open_error("kafka://broker1", NULL,
                      "bus URL \"kafka://broker1\": broker \"broker1\" needs a port (host:port)");
    expect_open_error("kafka://a:9092,,b:9092", NULL,
                      "bus URL \"kafka://a:9092,,b:9092\": empty broker in the list");
    expect_open_error("kafka://a:9092,", NULL, "bus URL \"kafka://a:9092,\": empty broker in the list");
    expect_open_error("kafka://:9092", NULL, "bus URL \"kafka://:9092\": broker \":9092\" has no host");
    expect_open_error(
        "kafka://a:99999", NULL,
        "bus URL \"kafka://a:99999\": broker \"a:99999\": port must be a number from 1 to 65535");
    expect_open_error("kafka://a:0", NULL,
                      "bus URL \"kafka://a:0\": broker \"a:0\": port must be a number from 1 to 65535");
    expect_open_error(
        "kafka://a:9092/x", NULL,
        "bus URL \"kafka://a:9092/x\": broker \"a:9092/x\": port must be a number from 1 to 65535");
    expect_open_error("kafka://a:9092?fetch_wait_ms=0", NULL,
                      "bus URL \"kafka://a:9092?fetch_wait_ms=0\": fetch_wait_ms \"0\" must be a whole number from 1 "
                      "to 10000");
    expect_open_error("kafka://a:9092?fetch_wait_ms=2x", NULL,
                      "bus URL \"kafka://a:9092?fetch_wait_ms=2x\": fetch_wait_ms \"2x\" must be a whole number from "
                      "1 to 10000");
    expect_open_error("kafka://a:9092?linger=1", NULL,
                      "bus URL \"kafka://a:9092?linger=1\": unknown option \"linger\"; the options are "
                      "fetch_wait_ms and prefix");
    expect_open_error("kafka://a:9092?prefix=mr.1", NULL,
                      "bus URL \"kafka://a:9092?prefix=mr.1\": prefix \"mr.1\" must be 1 to 64 letters, digits, '_' "
                      "or '-' (the instance's namespace on a shared server)");
    expect_open_error("kafka://a:9092?fetch_wait_ms=5&prefix=", NULL,
                      "bus URL \"kafka://a:9092?fetch_wait_ms=5&prefix=\": prefix \"\" must be 1 to 64 letters, "
                      "digits, '_' or '-' (the instance's namespace on a shared server)");
    expect_open_error("inproc:?prefix=a", NULL,
                      "bus URL \"inproc:?prefix=a\": expected inproc: (in memory) or "
                      "inproc:///absolute/path/journal.db");
    expect_open_error("kafka://u:secret@a:9092", NULL,
                      "bus URL \"kafka://u:***@a:9092\": credentials are not supported in kafka:// URLs");
    /* redis:// URLs go through the shared parser (libs/core redis_url.c). */
    expect_open_error("redis://", NULL, "bus URL \"redis://\": the host is empty" REDIS_EXPECTED);
    expect_open_error("redis://:6379/0", NULL, "bus URL \"redis://:6379/0\": the host is empty" REDIS_EXPECTED);
    expect_open_error("redis://h:port/0", NULL,
                      "bus URL \"redis://h:port/0\": the port must be a number from 1 to 65535");
    expect_open_error("redis://h:6379/zero", NULL,
                      "bus URL \"redis://h:6379/zero\": database \"zero\" is not a non-negative integer");
    expect_open_error("redis://h:6379/-1", NULL,
                      "bus URL \"redis://h:6379/-1\": database \"-1\" is not a non-negative integer");
    /* The password is masked in every message. */
    expect_open_error("redis://:hunter2@h:x/0", NULL,
                      "bus URL \"redis://***@h:x/0\": the port must be a number from 1 to 65535 (a '/', ':' "
                      "or '@' in the password must be written %2F, %3A or %40)");
    expect_open_error("redis://admin:hunter2@:1/0", NULL,
                      "bus URL \"redis://***@:1/0\": the host is empty" REDIS_EXPECTED);
    expect_open_error("redis://hunter2@h/0", NULL,
                      "bus URL \"redis://***@h/0\": a user without a password; write user:password@ or "
                      ":password@");
    expect_open_error("redis://h:6379/0?partitions=0", NULL,
                      "bus URL \"redis://h:6379/0?partitions=0\": partitions \"0\" must be a whole number from 1 to 1024");
    expect_open_error("redis://h/0?partitions=2000", NULL,
                      "bus URL \"redis://h/0?partitions=2000\": partitions \"2000\" must be a whole number from 1 to 1024");
    expect_open_error("redis://h/0?partitions=8x", NULL,
                      "bus URL \"redis://h/0?partitions=8x\": partitions \"8x\" must be a whole number from 1 to 1024");
    expect_open_error("redis://h/0?parts=8", NULL,
                      "bus URL \"redis://h/0?parts=8\": unknown option \"parts\"; the options are partitions and prefix");
    expect_open_error("redis://:hunter2@h/0?partitions=8&prefix=a:b", NULL,
                      "bus URL \"redis://:***@h/0?partitions=8&prefix=a:b\": prefix \"a:b\" must be 1 to 64 letters, "
                      "digits, '_' or '-' (the instance's namespace on a shared server)");
}

static void test_good_urls_open(void **state)
{
    (void)state;
    const char *urls[] = {"inproc:", "kafka://127.0.0.1:9092", "kafka://a:1,b:2,c:3", "redis://h",
                          "redis://h:6380", "redis://:pw@h:6380/3", "redis://user:pw@h/1",
                          "redis://h:6380/2?partitions=64", "kafka://a:1?fetch_wait_ms=500",
                          "redis://h/2?prefix=mr-0123abcd&partitions=16", "kafka://a:1?prefix=mr-0123abcd"};
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
        mr_bus *b = NULL;
        mr_err err = {0};
        /* Kafka and Redis connect lazily, so opening needs no server. */
        assert_int_equal(mr_bus_open(urls[i], NULL, &b, &err), MR_OK);
        assert_non_null(b);
        mr_bus_close(b);
    }
}

static void test_bad_options(void **state)
{
    (void)state;
    expect_open_error("inproc:", &(mr_bus_options){.partitions = -1},
                      "bus option partitions = -1: must be from 1 to 1024");
    expect_open_error("inproc:", &(mr_bus_options){.partitions = 2000},
                      "bus option partitions = 2000: must be from 1 to 1024");
    expect_open_error("inproc:", &(mr_bus_options){.lease_ms = 500},
                      "bus option lease_ms = 500: must be at least 1000");
    expect_open_error("inproc:", &(mr_bus_options){.client_id = "a b"},
                      "bus option client_id \"a b\": only letters, digits, '.', '_' and '-' are allowed");
}

static void test_names_and_keys_checked(void **state)
{
    (void)state;
    mr_bus *b = NULL;
    mr_err err = {0};
    assert_int_equal(mr_bus_open("inproc:", NULL, &b, &err), MR_OK);
    assert_int_equal(mr_bus_publish(b, "matrix:inbound", "k", "{}", 2, &err), MR_EINVAL);
    assert_string_equal(err.msg,
                        "topic name \"matrix:inbound\": only letters, digits, '.', '_' and '-' are allowed");
    assert_int_equal(mr_bus_publish(b, "", "k", "{}", 2, &err), MR_EINVAL);
    assert_string_equal(err.msg, "topic name is empty");
    assert_int_equal(mr_bus_publish(b, "matrix.inbound", "", "{}", 2, &err), MR_EINVAL);
    assert_string_equal(err.msg, "publishing to matrix.inbound: the key is empty");
    mr_bus_consumer *c = NULL;
    const char *topics[] = {"a", "b", "a"};
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 3, &c, &err), MR_EINVAL);
    assert_string_equal(err.msg, "subscribing group g: topic a is listed twice");
    assert_int_equal(mr_bus_subscribe(b, "g", topics, 0, &c, &err), MR_EINVAL);
    assert_string_equal(err.msg, "subscribing group g: no topics");
    assert_int_equal(mr_bus_subscribe(b, "g/1", topics, 1, &c, &err), MR_EINVAL);
    assert_string_equal(err.msg, "group name \"g/1\": only letters, digits, '.', '_' and '-' are allowed");
    assert_null(c);
    mr_bus_close(b);
}

static void test_partition_is_kafka_murmur2(void **state)
{
    (void)state;
    /* Kafka's Utils.murmur2 test vectors (signed 32-bit results), masked to 31 bits: with
     * n = INT_MAX the modulo leaves the masked hash itself. */
    struct { const char *key; int32_t java; } v[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        assert_int_equal(mr_bus_partition(v[i].key, INT_MAX), (int)((uint32_t)v[i].java & 0x7fffffff));
    /* Placements kcat made with -X partitioner=murmur2_random on an 8-partition topic. */
    assert_int_equal(mr_bus_partition("k1", 8), 1);
    assert_int_equal(mr_bus_partition("k2", 8), 1);
    assert_int_equal(mr_bus_partition("room", 8), 6);
    assert_int_equal(mr_bus_partition("anything", 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_good_urls_open),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_names_and_keys_checked),
        cmocka_unit_test(test_partition_is_kafka_murmur2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
