/* agent_share.h -- turns shared between replicas (share.c): rooms' leases, and idle replicas
 * taking the waiting turns of busy ones. */
#ifndef MINDROOM_AGENT_SHARE_H
#define MINDROOM_AGENT_SHARE_H

#include "agent_internal.h"
#include "agent_run.h"

#define ROOM_HOLD_MS 250             /* a turn whose room another worker runs looks again after this */
#define SHARE_TICK_MS 250            /* how often a replica with idle turn threads looks for work */

/* `agent:room:<room_id>`: taken as a claim is (claim_take_key), BUSY while another live worker
 * runs the room's turns. */
mr_code room_lease_take(mr_store *s, const agent_self *me, const char *room_id, long long now_ms,
                        claim_outcome *out, mr_err *err);
/* Gives the lease up if this boot holds it. */
mr_code room_lease_release(mr_store *s, const agent_self *me, const char *room_id, mr_err *err);

typedef struct share_ops {
    /* Records the turn (value as it came) in this worker's record and queues it; owns nothing of
     * turn's on failure, and may take turn's parts on success (turn is freed either way). */
    mr_code (*take)(void *ctx, const char *value, size_t len, agent_turn *turn, mr_err *err);
    /* Whether this worker has turns of the room queued, parked or running. */
    bool (*has_room)(void *ctx, const char *room_id);
    void *ctx;
} share_ops;

/* Moves the waiting turns of up to `rooms` rooms that no worker runs from live workers' records
 * into this one's, through ops; how many rooms moved. */
size_t share_steal(mr_store *s, const agent_self *me, long long now_ms, size_t rooms, const share_ops *ops);

#endif
