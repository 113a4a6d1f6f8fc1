/* share.c -- replicas share the turns: a room's turns run under its lease `agent:room:<room_id>`,
 * and an idle replica moves the waiting turns of a room from a busy replica's in-flight record
 * into its own (proto/store.md, "The agent's claims").
 *
 * Why: a replica accepts every turn of the partitions it reads, and rooms hash unevenly over
 * partitions (on Kafka a partition has one consumer, however many replicas run), so one replica
 * would queue turns while others idle. Moving turns keeps a room's order only if no two workers
 * run its turns at once and later turns wait for earlier ones, wherever they are: the lease
 * names the one worker that holds the room. A worker that accepts a turn of a room nobody holds
 * sets it to its "queued" (set-if-absent), so turns it accepted wait for nothing accepted later
 * elsewhere (a partition that moved, a turn the bus delivered again). It sets it to "started"
 * before each turn of the room (set-if-absent, or from its own "queued"; a dead holder's is
 * taken over by compare-and-set, as a claim is), and after the turn to "queued" when it has
 * more turns of the room, or deletes it. An idle worker takes a room whose lease is free or "queued" by the busy
 * worker whose record it reads (compare-and-set to its own "started"), then moves every turn of
 * the room in that record: none of them runs, and none can start while it holds the lease. A
 * worker that finds its room held by another waits in place (room_queue keeps the room's later
 * turns behind it), and one that finds its turn gone from its record leaves it to the worker
 * that took it. */
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
#define STARTED "started"            /* a turn of the room runs at the holder */
#define QUEUED "queued"              /* the holder has more turns of the room, none running */

static void room_key(const char *room_id, char out[ROOM_KEY_MAX])
{
    snprintf(out, ROOM_KEY_MAX, "agent:room:%s", room_id);
}

static const char *const LEASE_FORMS[] = {STARTED, QUEUED, NULL};

/* One attempt at a room's lease: set-if-absent of this worker's "started", and the value found
 * when that lost (MR_ENOTFOUND: given up between the two calls, for the next look to take). */
static mr_code lease_try_take(mr_store *s, const agent_self *me, const char *room_id, char key[ROOM_KEY_MAX],
                              holder_try *t, bool *won, mr_err *err)
{
    room_key(room_id, key);
    return holder_take(s, me, key, STARTED, LEASE_FORMS, CLAIM_TTL_MS, t, won, err);
}

/* The room of a turn in a record: named in its field, or (a field an older release wrote) read
 * from the turn; false when the value is not a turn. */
static bool entry_room(const mr_store_hash_entry *e, char out[MR_ID_MAX + 1])
{
    const char *room = inflight_room(e->field);
    if (room) {
        snprintf(out, MR_ID_MAX + 1, "%s", room);
        return true;
    }
    agent_turn turn;
    mr_err err = {0};
    if (agent_turn_parse(e->value, e->value_len, &turn, &err) != MR_OK)
        return false;
    snprintf(out, MR_ID_MAX + 1, "%s", turn.room_id);
    agent_turn_free(&turn);
    return true;
}

/* Whether worker_id's record holds a turn of room_id. */
static mr_code record_has_room(mr_store *s, const char *worker_id, const char *room_id, bool *has, mr_err *err)
{
    mr_store_hash rec = {0};
    *has = false;
    mr_code rc = inflight_list(s, worker_id, &rec, err);
    for (size_t i = 0; rc == MR_OK && i < rec.count && !*has; i++) {
        char room[MR_ID_MAX + 1];
        *has = entry_room(&rec.entries[i], room) && strcmp(room, room_id) == 0;
    }
    mr_store_hash_free(&rec);
    return rc;
}

mr_code room_lease_start(mr_store *s, const agent_self *me, const char *room_id, long long now_ms,
                         lease_result *out, mr_err *err)
{
    char key[ROOM_KEY_MAX];
    holder_try t;
    bool won = false;
    *out = LEASE_BUSY;
    /* The usual case first, in one round trip: accepting the turn left the lease this worker's
     * "queued". */
    char queued[HOLDER_MAX], started[HOLDER_MAX];
    room_key(room_id, key);
    size_t n_queued = holder_format(QUEUED, me, queued), n_started = holder_format(STARTED, me, started);
    mr_code rc = mr_store_cas(s, key, queued, n_queued, started, n_started, CLAIM_TTL_MS, &won, err);
    if (rc != MR_OK || won) {
        *out = won ? LEASE_OURS : LEASE_BUSY;
        return rc;
    }
    rc = lease_try_take(s, me, room_id, key, &t, &won, err);
    if (rc == MR_OK && won)
        *out = LEASE_OURS;
    if (rc != MR_OK || won) {
        holder_try_free(&t);
        return rc == MR_ENOTFOUND ? MR_OK : rc;
    }
    if (t.whose == HOLDER_ME && strcmp(t.h.state, STARTED) == 0) {
        *out = LEASE_OURS;
    } else {
        /* Another worker's: its while it lives, and after, while its record still holds turns
         * of the room, which come first (whoever adopts them takes the lease with them). An
         * earlier boot of this worker is dead, and its record is this worker's own; this boot's
         * own "queued" becomes "started". */
        long long alive_until = 0;
        bool waiting = false, swapped = false;
        if (t.whose == HOLDER_OTHER)
            rc = holder_alive_until(s, &t, now_ms, &alive_until, err);
        if (rc == MR_OK && !alive_until && t.whose == HOLDER_OTHER)
            rc = record_has_room(s, t.h.worker, room_id, &waiting, err);
        if (rc == MR_OK && !alive_until && !waiting)
            rc = holder_take_over(s, &t, &swapped, err);
        if (swapped)
            *out = t.whose == HOLDER_ME ? LEASE_OURS : LEASE_TAKEN_OVER;
    }
    holder_try_free(&t);
    return rc;
}

mr_code room_lease_accept(mr_store *s, const agent_self *me, const char *room_id, mr_err *err)
{
    char key[ROOM_KEY_MAX], queued[HOLDER_MAX];
    room_key(room_id, key);
    size_t n = holder_format(QUEUED, me, queued);
    bool won = false;
    return mr_store_set_nx(s, key, queued, n, CLAIM_TTL_MS, &won, err);
}

mr_code room_lease_adopt(mr_store *s, const agent_self *me, const char *room_id, const char *dead, mr_err *err)
{
    char key[ROOM_KEY_MAX], queued[HOLDER_MAX];
    room_key(room_id, key);
    size_t n = holder_format(QUEUED, me, queued);
    char *held = NULL;
    size_t len = 0;
    worker_holder h;
    mr_code rc = mr_store_get(s, key, &held, &len, err);
    if (rc == MR_OK && holder_parse(held, LEASE_FORMS, &h) && strcmp(h.worker, dead) == 0) {
        bool swapped = false;
        rc = mr_store_cas(s, key, held, len, queued, n, CLAIM_TTL_MS, &swapped, err);
    }
    free(held);
    return rc == MR_ENOTFOUND ? MR_OK : rc;
}

mr_code room_lease_end(mr_store *s, const agent_self *me, const char *room_id, bool more, mr_err *err)
{
    char key[ROOM_KEY_MAX], started[HOLDER_MAX], queued[HOLDER_MAX];
    room_key(room_id, key);
    size_t n_started = holder_format(STARTED, me, started), n_queued = holder_format(QUEUED, me, queued);
    if (more) {
        bool swapped = false;
        return mr_store_cas(s, key, started, n_started, queued, n_queued, CLAIM_TTL_MS, &swapped, err);
    }
    char *held = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get(s, key, &held, &len, err);
    if (rc == MR_ENOTFOUND)
        return MR_OK;
    /* Only while it is ours: a worker that took it (ours lapsed, or it took the room's waiting
     * turns) keeps it. Ours cannot change hands between the read and the delete: only a
     * "queued" lease moves, and this worker has no more turns of the room to leave queued. */
    if (rc == MR_OK && (strcmp(held, started) == 0 || strcmp(held, queued) == 0))
        rc = mr_store_del(s, key, err);
    free(held);
    return rc;
}

/* Takes the lease of a room whose turns wait at victim: when free, or when the victim holds it
 * with none of them running. */
static mr_code lease_steal(mr_store *s, const agent_self *me, const char *room_id, const char *victim, bool *won,
                           mr_err *err)
{
    char key[ROOM_KEY_MAX];
    holder_try t;
    mr_code rc = lease_try_take(s, me, room_id, key, &t, won, err);
    if (rc == MR_OK && !*won && t.whose == HOLDER_OTHER && strcmp(t.h.state, QUEUED) == 0 &&
        strcmp(t.h.worker, victim) == 0)
        rc = holder_take_over(s, &t, won, err);
    holder_try_free(&t);
    return rc == MR_ENOTFOUND ? MR_OK : rc;
}

static bool read_record(mr_store *s, const char *worker_id, mr_store_hash *out)
{
    mr_err err = {0};
    if (inflight_list(s, worker_id, out, &err) == MR_OK)
        return true;
    mr_log_warn(COMPONENT, "reading the in-flight turns of worker %s: %s", worker_id, err.msg);
    return false;
}

/* Moves the turns of room_id from victim's record into this worker's, in their order; how many
 * moved. The record is read again under the lease: what is there now the victim has not
 * started, and cannot start while the lease is ours. */
static size_t move_room(mr_store *s, const char *victim, const char *room_id, const share_ops *ops)
{
    mr_store_hash theirs = {0};
    mr_err err = {0};
    if (!read_record(s, victim, &theirs))
        return 0;
    size_t moved = 0;
    for (size_t i = 0; i < theirs.count; i++) {
        const mr_store_hash_entry *e = &theirs.entries[i];
        char room[MR_ID_MAX + 1];
        agent_turn turn;
        if (!entry_room(e, room) || strcmp(room, room_id) != 0 ||
            agent_turn_parse(e->value, e->value_len, &turn, &err) != MR_OK)
            continue;
        /* Ours first, then gone from theirs: a crash between the two leaves the turn in both
         * records, and its reply claims keep it answered once. */
        mr_code rc = ops->take(ops->ctx, e->value, e->value_len, &turn, &err);
        if (rc == MR_OK)
            rc = inflight_drop(s, victim, e->field, &err);
        moved += rc == MR_OK;
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
static size_t steal_from(mr_store *s, const agent_self *me, const char *victim, size_t rooms, const share_ops *ops)
{
    mr_store_hash theirs = {0};
    mr_err err = {0};
    if (!read_record(s, victim, &theirs))
        return 0;
    size_t stolen = 0;
    for (size_t i = 0; i < theirs.count && i < SCAN_MAX && stolen < rooms; i++) {
        char room[MR_ID_MAX + 1];
        if (!entry_room(&theirs.entries[i], room))
            continue;
        bool won = false;
        /* A room with turns here already is run here in its order. */
        mr_code rc = ops->has_room(ops->ctx, room) ? MR_OK : lease_steal(s, me, room, victim, &won, &err);
        if (rc != MR_OK) {
            mr_log_warn(COMPONENT, "taking the lease of room %s: %s", room, err.msg);
            break;
        }
        if (won) {
            size_t moved = move_room(s, victim, room, ops);
            if (moved) {
                stolen++;
                mr_log_info(COMPONENT, "took %zu waiting turns of room %s from busy worker %s", moved, room, victim);
            } else if (room_lease_end(s, me, room, false, &err) != MR_OK) {
                mr_log_warn(COMPONENT, "giving up the lease of room %s: %s", room, err.msg);
            }
        }
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
            stolen += steal_from(s, me, w->field, rooms - stolen, ops);
    }
    mr_store_hash_free(&workers);
    return stolen;
}
