/* kafka_peer.h -- a Kafka broker set (tests/peers/mr-kafka-mock) in a child process, for tests. */
#ifndef MINDROOM_TEST_KAFKA_PEER_H
#define MINDROOM_TEST_KAFKA_PEER_H

#include <stdbool.h>
#include <sys/types.h>
#include "mindroom/err.h"

typedef struct mr_tp_kafka {
    pid_t pid;
    int ctl;             /* the peer's stdin: commands */
    int out;             /* the peer's stdout: one answer line per command */
    char bootstrap[512]; /* "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3" */
    char url[520];       /* "kafka://" + bootstrap */
} mr_tp_kafka;

/* Starts 3 mock brokers on loopback and reads their bootstrap list. */
mr_code mr_tp_kafka_start(mr_tp_kafka *k, mr_err *err);
/* Takes broker 1..3 down (it drops connections and refuses new ones) or up again. */
mr_code mr_tp_kafka_broker_down(mr_tp_kafka *k, int broker_id, mr_err *err);
mr_code mr_tp_kafka_broker_up(mr_tp_kafka *k, int broker_id, mr_err *err);
/* Takes every broker down, or brings every one up: the bus has nowhere to go meanwhile. */
mr_code mr_tp_kafka_all_brokers(mr_tp_kafka *k, bool up, mr_err *err);
/* Creates a topic with the given partitions (the mock has no CreateTopics request). */
mr_code mr_tp_kafka_topic(mr_tp_kafka *k, const char *topic, int partitions, mr_err *err);
/* Stops the brokers and reaps the process. */
void mr_tp_kafka_destroy(mr_tp_kafka *k);

#endif
