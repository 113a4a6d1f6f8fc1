/* share.c -- replicas share the turns: a room's turns run under its lease `agent:room:<room_id>`,
 * and an idle replica moves the turns of a room nobody is running from a busy replica's
 * in-flight record into its own (proto/store.md, "The agent's claims").
 *
 * Why a lease per room: a replica accepts every turn of the partitions it reads, and rooms hash
 * unevenly over partitions, so one replica would queue turns while others idle. Moving queued
 * turns keeps a room's order only if no two workers run its turns at once and the later ones
 * wait for the earlier: the lease says who runs the room now. It is taken (as a claim is, with
 * the same takeover of a dead holder) before a turn starts and given up when the worker has no
 * more turns of the room, so a room that only waits in a busy worker's queue has no holder and
 * may move. A worker that finds its room held by another waits in place (room_queue keeps the
 * room's later turns behind it), and one that finds its turn gone from its record leaves it to
 * the worker that took it. */
#include "agent_internal.h"
#include "agent_run.h"
#include "agent_share.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"

#define COMPONENT "agent"
#define ROOM_KEY_MAX (MR_ID_MAX + 16)
#define SCAN_MAX 256                 /* turns of one worker's record looked at per scan */

static void room_key(const char *room_id, char out[ROOM_KEY_MAX])
{
    snprintf(out, ROOM_KEY_MAX, "agent:room:%s", room_id);
}

mr_code room_lease_take(mr_store *s, const agent_self *me, const char *room_id, long long now_ms,
                        claim_outcome *out, mr_err *err)
{
    char key[ROOM_KEY_MAX];
    room_key(room_id, key);
    return claim_take_key(s, me, key, now_ms, out, err);
}

mr_code room_lease_release(mr_store *s, const agent_self *me, const char *room_id, mr_err *err)
{
    char key[ROOM_KEY_MAX];
    room_key(room_id, key);
    char *held = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get(s, key, &held, &len, err);
    if (rc == MR_ENOTFOUND)
        return MR_OK;
    if (rc != MR_OK)
        return rc;
    char mine[WORKER_ID_MAX + WORKER_BOOT_LEN + 16];
    snprintf(mine, sizeof mine, "started %s %s", me->worker_id, me->boot);
    /* Only while it is ours: a worker that took it over (ours lapsed) keeps it. Ours cannot be
     * taken between the read and the delete while this process beats. */
    if (strcmp(held, mine) == 0)
        rc = mr_store_del(s, key, err);
    free(held);
    return rc;
}

/* Moves the turns of room_id from victim's record into this worker's, in their order; how many
 * moved. The record is read again under the lease: what is there now the victim has not
 * started, and cannot start while the lease is ours. */
static size_t move_room(mr_store *s, const char *victim, const char *room_id, const share_ops *ops)
{
    mr_store_hash theirs = {0};
    mr_err err = {0};
    if (inflight_list(s, victim, &theirs, &err) != MR_OK) {
        mr_log_warn(COMPONENT, "reading the in-flight turns of worker %s: %s", victim, err.msg);
        return 0;
    }
    size_t moved = 0;
    for (size_t i = 0; i < theirs.count; i++) {
        const mr_store_hash_entry *e = &theirs.entries[i];
        agent_turn turn;
        if (agent_turn_parse(e->value, e->value_len, &turn, &err) != MR_OK)
            continue;
        mr_code rc = MR_OK;
        if (strcmp(turn.room_id, room_id) == 0) {
            /* Ours first, then gone from theirs: a crash between the two leaves the turn in both
             * records, and its reply claims keep it answered once. */
            rc = ops->take(ops->ctx, e->value, e->value_len, &turn, &err);
            if (rc == MR_OK)
                rc = inflight_drop(s, victim, e->field, &err);
            moved += rc == MR_OK;
        }
        agent_turn_free(&turn);
        if (rc != MR_OK) {
            mr_log_warn(COMPONENT, "moving a turn of %s from worker %s: %s", room_id, victim, err.msg);
            break;
        }
    }
    mr_store_hash_free(&theirs);
    return moved;
}

/* Tries the rooms of one live worker's record, oldest first; rooms moved. */
static size_t steal_from(mr_store *s, const agent_self *me, const char *victim, size_t rooms, long long now_ms,
                         const share_ops *ops)
{
    mr_store_hash theirs = {0};
    mr_err err = {0};
    if (inflight_list(s, victim, &theirs, &err) != MR_OK) {
        mr_log_warn(COMPONENT, "reading the in-flight turns of worker %s: %s", victim, err.msg);
        return 0;
    }
    size_t stolen = 0;
    for (size_t i = 0; i < theirs.count && i < SCAN_MAX && stolen < rooms; i++) {
        const mr_store_hash_entry *e = &theirs.entries[i];
        agent_turn turn;
        if (agent_turn_parse(e->value, e->value_len, &turn, &err) != MR_OK)
            continue;
        claim_outcome lease;
        /* A room with turns here already is run here in its order; the victim runs the rooms
         * it holds the lease of. */
        if (!ops->has_room(ops->ctx, turn.room_id) &&
            room_lease_take(s, me, turn.room_id, now_ms, &lease, &err) == MR_OK && lease.result != CLAIM_BUSY) {
            size_t moved = move_room(s, victim, turn.room_id, ops);
            if (moved) {
                stolen++;
                mr_log_info(COMPONENT, "took %zu waiting turns of room %s from busy worker %s", moved, turn.room_id,
                            victim);
            } else if (room_lease_release(s, me, turn.room_id, &err) != MR_OK) {
                mr_log_warn(COMPONENT, "giving up the lease of room %s: %s", turn.room_id, err.msg);
            }
        }
        agent_turn_free(&turn);
    }
    mr_store_hash_free(&theirs);
    return stolen;
}

size_t share_steal(mr_store *s, const agent_self *me, long long now_ms, size_t rooms, const share_ops *ops)
{
    mr_store_hash workers = {0};
    mr_err err = {0};
    if (mr_store_hgetall(s, WORKERS_KEY, &workers, &err) != MR_OK) {
        mr_log_warn(COMPONENT, "reading %s: %s", WORKERS_KEY, err.msg);
        return 0;
    }
    size_t stolen = 0;
    /* Live workers only: a dead one's record is adopted whole (agent_service.c). */
    for (size_t i = 0; i < workers.count && stolen < rooms; i++) {
        const mr_store_hash_entry *w = &workers.entries[i];
        long long beat = 0;
        if (strcmp(w->field, me->worker_id) != 0 && worker_beat_of(w->value, &beat) && now_ms < beat + WORKER_LEASE_MS)
            stolen += steal_from(s, me, w->field, rooms - stolen, now_ms, ops);
    }
    mr_store_hash_free(&workers);
    return stolen;
}
