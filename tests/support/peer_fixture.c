/* peer_fixture.c -- the peers as cmocka tests use them (peer_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "peer_fixture.h"

int mr_tp_redis_setup(mr_tp_redis *r)
{
    mr_err err = {0};
    if (mr_tp_redis_start(r, &err) != MR_OK) {
        fprintf(stderr, "starting redis-server: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int mr_tp_kafka_setup(mr_tp_kafka *k)
{
    mr_err err = {0};
    if (mr_tp_kafka_start(k, &err) != MR_OK) {
        fprintf(stderr, "starting mr-kafka-mock: %s\n", err.msg);
        return -1;
    }
    return 0;
}

void mr_tp_kafka_set_brokers(mr_tp_kafka *k, bool up)
{
    mr_err err = {0};
    if (mr_tp_kafka_all_brokers(k, up, &err) != MR_OK)
        fail_msg("brokers %s: %s", up ? "up" : "down", err.msg);
}
