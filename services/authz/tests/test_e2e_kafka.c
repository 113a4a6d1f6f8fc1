/* test_e2e_kafka.c -- mindroom-authz end to end on the Kafka mock cluster, with the store in Redis. */
#include <stdio.h>

#include "e2e_suite.h"
#include "kafka_peer.h"
#include "peers.h"

int main(void)
{
    mr_tp_redis redis;
    mr_tp_kafka kafka;
    mr_err err = {0};
    if (mr_tp_redis_start(&redis, &err) != MR_OK) {
        fprintf(stderr, "starting redis-server: %s\n", err.msg);
        return 1;
    }
    /* The mock cluster answers no CreateTopics: the topics exist before anyone publishes. */
    if (mr_tp_kafka_start(&kafka, &err) != MR_OK || mr_tp_kafka_topic(&kafka, "matrix.cleartext", 8, &err) != MR_OK ||
        mr_tp_kafka_topic(&kafka, "agent.turns", 8, &err) != MR_OK) {
        fprintf(stderr, "starting the Kafka mock cluster: %s\n", err.msg);
        mr_tp_redis_destroy(&redis);
        return 1;
    }
    int failed = e2e_run("authz_e2e_kafka", kafka.url, redis.url);
    mr_tp_kafka_destroy(&kafka);
    mr_tp_redis_destroy(&redis);
    return failed;
}
