/* kafka_fetch_proxy.h -- a Kafka-protocol relay in front of each mock broker that answers a
 * waiting fetch as soon as data arrives, as a real broker does (see kafka_fetch_proxy.c). */
#ifndef MR_PEERS_KAFKA_FETCH_PROXY_H
#define MR_PEERS_KAFKA_FETCH_PROXY_H

#include <stddef.h>

/* Starts one relay per broker of bootstraps ("127.0.0.1:P1,127.0.0.1:P2,..." as the mock
 * prints it, broker i+1 at entry i) on 127.0.0.1 ports of its own, and writes their list in
 * the same form to out. Returns 0, or -1 with a message on stderr. The relays run until the
 * process exits. */
int mr_kafka_fetch_proxy_start(const char *bootstraps, char *out, size_t cap);

#endif
