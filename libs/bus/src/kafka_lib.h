/* kafka_lib.h -- librdkafka, loaded on the first Kafka bus opened instead of linked: a process
 * on another bus never maps it and its compression and SASL libraries (about 0.5 MiB of RSS).
 * Include it in place of <librdkafka/rdkafka.h>: every rd_kafka_ function named below is a
 * pointer that Mr_bus_kafka_lib_load sets. A function used and not listed fails to link (mr_bus
 * does not link librdkafka): add it to MR_RDK_FUNCS and to the names below. */
#ifndef MINDROOM_BUS_KAFKA_LIB_H
#define MINDROOM_BUS_KAFKA_LIB_H

#include <librdkafka/rdkafka.h>

#include "mindroom/err.h"

#define MR_RDK_SONAME "librdkafka.so.1"
#define MR_RDK_PACKAGE "librdkafka1"

#define MR_RDK_FUNCS(X) \
    X(rd_kafka_AdminOptions_destroy) \
    X(rd_kafka_AdminOptions_new) \
    X(rd_kafka_AdminOptions_set_operation_timeout) \
    X(rd_kafka_AdminOptions_set_request_timeout) \
    X(rd_kafka_CreateTopics) \
    X(rd_kafka_CreateTopics_result_topics) \
    X(rd_kafka_NewTopic_destroy) \
    X(rd_kafka_NewTopic_new) \
    X(rd_kafka_assign) \
    X(rd_kafka_assignment) \
    X(rd_kafka_commit) \
    X(rd_kafka_conf_destroy) \
    X(rd_kafka_conf_new) \
    X(rd_kafka_conf_set) \
    X(rd_kafka_conf_set_dr_msg_cb) \
    X(rd_kafka_conf_set_log_cb) \
    X(rd_kafka_conf_set_opaque) \
    X(rd_kafka_conf_set_rebalance_cb) \
    X(rd_kafka_consumer_close) \
    X(rd_kafka_consumer_poll) \
    X(rd_kafka_destroy) \
    X(rd_kafka_err2str) \
    X(rd_kafka_error_destroy) \
    X(rd_kafka_event_CreateTopics_result) \
    X(rd_kafka_event_destroy) \
    X(rd_kafka_event_error) \
    X(rd_kafka_event_error_string) \
    X(rd_kafka_fatal_error) \
    X(rd_kafka_flush) \
    X(rd_kafka_last_error) \
    X(rd_kafka_message_destroy) \
    X(rd_kafka_metadata) \
    X(rd_kafka_metadata_destroy) \
    X(rd_kafka_new) \
    X(rd_kafka_offsets_store) \
    X(rd_kafka_outq_len) \
    X(rd_kafka_poll) \
    X(rd_kafka_poll_set_consumer) \
    X(rd_kafka_producev) \
    X(rd_kafka_queue_destroy) \
    X(rd_kafka_queue_new) \
    X(rd_kafka_queue_poll) \
    X(rd_kafka_seek_partitions) \
    X(rd_kafka_subscribe) \
    X(rd_kafka_topic_destroy) \
    X(rd_kafka_topic_name) \
    X(rd_kafka_topic_new) \
    X(rd_kafka_topic_partition_list_add) \
    X(rd_kafka_topic_partition_list_destroy) \
    X(rd_kafka_topic_partition_list_new) \
    X(rd_kafka_topic_result_error)

#define MR_RDK_DECLARE(f) extern __typeof__(&f) mr_rdk_##f;
MR_RDK_FUNCS(MR_RDK_DECLARE)
#undef MR_RDK_DECLARE

/* Loads librdkafka once per process; later calls return the first result (its message too). */
mr_code Mr_bus_kafka_lib_load(mr_err *err);

/* Function-like, so a type of the same name (struct rd_kafka_metadata) stays itself.
 * kafka_lib.c, which defines the pointers, sets MR_RDK_NO_RENAME. */
#ifndef MR_RDK_NO_RENAME
#define rd_kafka_AdminOptions_destroy(...) mr_rdk_rd_kafka_AdminOptions_destroy(__VA_ARGS__)
#define rd_kafka_AdminOptions_new(...) mr_rdk_rd_kafka_AdminOptions_new(__VA_ARGS__)
#define rd_kafka_AdminOptions_set_operation_timeout(...) mr_rdk_rd_kafka_AdminOptions_set_operation_timeout(__VA_ARGS__)
#define rd_kafka_AdminOptions_set_request_timeout(...) mr_rdk_rd_kafka_AdminOptions_set_request_timeout(__VA_ARGS__)
#define rd_kafka_CreateTopics(...) mr_rdk_rd_kafka_CreateTopics(__VA_ARGS__)
#define rd_kafka_CreateTopics_result_topics(...) mr_rdk_rd_kafka_CreateTopics_result_topics(__VA_ARGS__)
#define rd_kafka_NewTopic_destroy(...) mr_rdk_rd_kafka_NewTopic_destroy(__VA_ARGS__)
#define rd_kafka_NewTopic_new(...) mr_rdk_rd_kafka_NewTopic_new(__VA_ARGS__)
#define rd_kafka_assign(...) mr_rdk_rd_kafka_assign(__VA_ARGS__)
#define rd_kafka_assignment(...) mr_rdk_rd_kafka_assignment(__VA_ARGS__)
#define rd_kafka_commit(...) mr_rdk_rd_kafka_commit(__VA_ARGS__)
#define rd_kafka_conf_destroy(...) mr_rdk_rd_kafka_conf_destroy(__VA_ARGS__)
#define rd_kafka_conf_new(...) mr_rdk_rd_kafka_conf_new(__VA_ARGS__)
#define rd_kafka_conf_set(...) mr_rdk_rd_kafka_conf_set(__VA_ARGS__)
#define rd_kafka_conf_set_dr_msg_cb(...) mr_rdk_rd_kafka_conf_set_dr_msg_cb(__VA_ARGS__)
#define rd_kafka_conf_set_log_cb(...) mr_rdk_rd_kafka_conf_set_log_cb(__VA_ARGS__)
#define rd_kafka_conf_set_opaque(...) mr_rdk_rd_kafka_conf_set_opaque(__VA_ARGS__)
#define rd_kafka_conf_set_rebalance_cb(...) mr_rdk_rd_kafka_conf_set_rebalance_cb(__VA_ARGS__)
#define rd_kafka_consumer_close(...) mr_rdk_rd_kafka_consumer_close(__VA_ARGS__)
#define rd_kafka_consumer_poll(...) mr_rdk_rd_kafka_consumer_poll(__VA_ARGS__)
#define rd_kafka_destroy(...) mr_rdk_rd_kafka_destroy(__VA_ARGS__)
#define rd_kafka_err2str(...) mr_rdk_rd_kafka_err2str(__VA_ARGS__)
#define rd_kafka_error_destroy(...) mr_rdk_rd_kafka_error_destroy(__VA_ARGS__)
#define rd_kafka_event_CreateTopics_result(...) mr_rdk_rd_kafka_event_CreateTopics_result(__VA_ARGS__)
#define rd_kafka_event_destroy(...) mr_rdk_rd_kafka_event_destroy(__VA_ARGS__)
#define rd_kafka_event_error(...) mr_rdk_rd_kafka_event_error(__VA_ARGS__)
#define rd_kafka_event_error_string(...) mr_rdk_rd_kafka_event_error_string(__VA_ARGS__)
#define rd_kafka_fatal_error(...) mr_rdk_rd_kafka_fatal_error(__VA_ARGS__)
#define rd_kafka_flush(...) mr_rdk_rd_kafka_flush(__VA_ARGS__)
#define rd_kafka_last_error(...) mr_rdk_rd_kafka_last_error(__VA_ARGS__)
#define rd_kafka_message_destroy(...) mr_rdk_rd_kafka_message_destroy(__VA_ARGS__)
#define rd_kafka_metadata(...) mr_rdk_rd_kafka_metadata(__VA_ARGS__)
#define rd_kafka_metadata_destroy(...) mr_rdk_rd_kafka_metadata_destroy(__VA_ARGS__)
#define rd_kafka_new(...) mr_rdk_rd_kafka_new(__VA_ARGS__)
#define rd_kafka_offsets_store(...) mr_rdk_rd_kafka_offsets_store(__VA_ARGS__)
#define rd_kafka_outq_len(...) mr_rdk_rd_kafka_outq_len(__VA_ARGS__)
#define rd_kafka_poll(...) mr_rdk_rd_kafka_poll(__VA_ARGS__)
#define rd_kafka_poll_set_consumer(...) mr_rdk_rd_kafka_poll_set_consumer(__VA_ARGS__)
#define rd_kafka_producev(...) mr_rdk_rd_kafka_producev(__VA_ARGS__)
#define rd_kafka_queue_destroy(...) mr_rdk_rd_kafka_queue_destroy(__VA_ARGS__)
#define rd_kafka_queue_new(...) mr_rdk_rd_kafka_queue_new(__VA_ARGS__)
#define rd_kafka_queue_poll(...) mr_rdk_rd_kafka_queue_poll(__VA_ARGS__)
#define rd_kafka_seek_partitions(...) mr_rdk_rd_kafka_seek_partitions(__VA_ARGS__)
#define rd_kafka_subscribe(...) mr_rdk_rd_kafka_subscribe(__VA_ARGS__)
#define rd_kafka_topic_destroy(...) mr_rdk_rd_kafka_topic_destroy(__VA_ARGS__)
#define rd_kafka_topic_name(...) mr_rdk_rd_kafka_topic_name(__VA_ARGS__)
#define rd_kafka_topic_new(...) mr_rdk_rd_kafka_topic_new(__VA_ARGS__)
#define rd_kafka_topic_partition_list_add(...) mr_rdk_rd_kafka_topic_partition_list_add(__VA_ARGS__)
#define rd_kafka_topic_partition_list_destroy(...) mr_rdk_rd_kafka_topic_partition_list_destroy(__VA_ARGS__)
#define rd_kafka_topic_partition_list_new(...) mr_rdk_rd_kafka_topic_partition_list_new(__VA_ARGS__)
#define rd_kafka_topic_result_error(...) mr_rdk_rd_kafka_topic_result_error(__VA_ARGS__)

#endif
#endif
