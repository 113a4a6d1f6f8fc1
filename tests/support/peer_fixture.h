/* peer_fixture.h -- the peers as cmocka tests use them: started in a group setup, changed
 * mid-test, with the test failed (not the process aborted) when they do not answer. */
#ifndef MINDROOM_TEST_PEER_FIXTURE_H
#define MINDROOM_TEST_PEER_FIXTURE_H

#include <stdbool.h>
#include "kafka_peer.h"
#include "peers.h"

/* For a group setup: 0 once the peer is up, or -1 after saying on stderr why it is not (cmocka
 * then fails the whole group, as it does for any setup that answers non-zero). */
int mr_tp_redis_setup(mr_tp_redis *r);
int mr_tp_kafka_setup(mr_tp_kafka *k);
/* Takes every broker down, or brings every one up; fails the running test when it cannot. */
void mr_tp_kafka_set_brokers(mr_tp_kafka *k, bool up);

#endif
