/* agent_share.h -- turns shared between replicas (share.c): rooms' leases, and idle replicas
 * taking the waiting turns of busy ones. */
#ifndef MINDROOM_AGENT_SHARE_H
#define MINDROOM_AGENT_SHARE_H

#include "agent_internal.h"
#include "agent_run.h"

#define ROOM_HOLD_MS 250             /* a turn whose room another worker holds looks again after this */
#define SHARE_TICK_MS 250            /* how often a replica with idle turn threads looks for work */

typedef enum lease_result { LEASE_OURS = 0, LEASE_TAKEN_OVER, LEASE_BUSY } lease_result;

/* `agent:room:<room_id>` before a turn of the room starts here: ours (set to "started"); taken
 * over from an earlier boot of this worker, or from a dead worker whose record holds no turn of
 * the room; or BUSY otherwise while another worker holds it. now_ms is wall-clock time. */
mr_code room_lease_start(mr_store *s, const agent_self *me, const char *room_id, long long now_ms,
                         lease_result *out, mr_err *err);
/* After a turn of the room ended here: kept as "queued" when this worker has more turns of the
 * room (another may take them, and the lease with them), given up otherwise. */
mr_code room_lease_end(mr_store *s, const agent_self *me, const char *room_id, bool more, mr_err *err);

/* When a turn of the room is accepted here: the lease becomes this worker's "queued" unless
 * some worker (this one included) holds it, whose turns of the room are older. */
mr_code room_lease_accept(mr_store *s, const agent_self *me, const char *room_id, mr_err *err);
/* Before a dead worker's turn of the room is adopted: a lease that worker held becomes this
 * one's "queued", so the room's later turns elsewhere wait for the adopted ones. */
mr_code room_lease_adopt(mr_store *s, const agent_self *me, const char *room_id, const char *dead, mr_err *err);

typedef struct share_ops {
    /* Records the turn (value as it came) in this worker's record and queues it; may take turn's
     * parts on success (the caller frees turn either way). */
    mr_code (*take)(void *ctx, const char *value, size_t len, agent_turn *turn, mr_err *err);
    /* Whether this worker has turns of the room queued, parked or running. */
    bool (*has_room)(void *ctx, const char *room_id);
    void *ctx;
} share_ops;

/* Moves the waiting turns of up to `rooms` rooms that no worker runs from live workers' records
 * into this one's, through ops; how many rooms moved. */
size_t share_steal(mr_store *s, const agent_self *me, long long now_ms, size_t rooms, const share_ops *ops);

#endif
