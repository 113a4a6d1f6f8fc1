/* claim.c -- each (event, entity) is answered once: `reply:<event_id>:<entity>` is claimed with
 * set-if-absent before the model is called, naming the worker and boot that hold it, and marked
 * done once the final text is on the bus.
 *
 * The crash window: a worker that dies between claiming and "done" leaves a "started" claim,
 * and the turn stays in its in-flight record. A restart of that worker runs the turn again and
 * finds the claim of its own earlier boot: that boot is dead, so it takes the claim over at
 * once. Another worker (a replica that adopted the dead one's turns, or a second delivery of the
 * event) sees the holder's heartbeat in `agent:workers` (workers.c): while it is younger than
 * WORKER_LEASE_MS the turn is busy and parked until then; once it lapsed, the claim is taken
 * over by compare-and-set. The new answer uses the same transaction IDs (txn.c) for the first
 * send and the final edit, so the homeserver keeps one reply message, and the final edit
 * replaces whatever half-written text the dead worker left. A value in no known form (an older
 * release's "started <ms>") has no live holder and is taken over too. */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STARTED "started"
#define DONE "done"

static void claim_key(const char *event_id, const char *entity, char *out, size_t cap)
{
    snprintf(out, cap, "reply:%s:%s", event_id, entity);
}

static const char *const CLAIM_FORMS[] = {STARTED, NULL};

/* What to do with a claim another boot or release left (t found it). */
static mr_code claim_judge(mr_store *s, holder_try *t, long long now_ms, claim_outcome *out, mr_err *err)
{
    if (strcmp(t->held, DONE) == 0) {
        out->result = CLAIM_DONE;
        return MR_OK;
    }
    if (t->whose == HOLDER_ME) {
        /* This boot's own, left by a failure it could not give up: this process runs one turn of
         * a room at a time, so nothing else here is answering it. */
        out->result = CLAIM_WON;
        return MR_OK;
    }
    mr_code rc = holder_alive_until(s, t, now_ms, &out->busy_until_ms, err);
    if (rc != MR_OK || out->busy_until_ms) {
        out->result = CLAIM_BUSY;
        return rc;
    }
    bool swapped = false;
    rc = holder_take_over(s, t, &swapped, err);
    out->why = t->whose == HOLDER_NONE              ? "the claim names no worker"
               : t->whose == HOLDER_MY_EARLIER_BOOT ? "an earlier boot of this worker held it"
                                                    : "its holder's heartbeat lease lapsed";
    /* Lost the race to another worker taking over: it answers; look again after its lease. */
    out->result = swapped ? CLAIM_TAKEN_OVER : CLAIM_BUSY;
    if (!swapped)
        out->busy_until_ms = now_ms + WORKER_LEASE_MS;
    return rc;
}

mr_code claim_take(mr_store *s, const agent_self *me, const char *event_id, const char *entity, long long now_ms,
                   claim_outcome *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    char key[2 * MR_ID_MAX + 16];
    claim_key(event_id, entity, key, sizeof key);
    holder_try t;
    bool won = false;
    mr_code rc = holder_take(s, me, key, STARTED, CLAIM_FORMS, CLAIM_TTL_MS, &t, &won, err);
    if (rc == MR_ENOTFOUND)
        /* Released or expired between the two calls: the next run claims it afresh. */
        rc = mr_err_set(err, MR_ECONFLICT, "%s vanished while being read", key);
    else if (rc == MR_OK && !won)
        rc = claim_judge(s, &t, now_ms, out, err);
    holder_try_free(&t);
    return rc;
}

mr_code claim_done(mr_store *s, const char *event_id, const char *entity, mr_err *err)
{
    char key[2 * MR_ID_MAX + 16];
    claim_key(event_id, entity, key, sizeof key);
    return mr_store_set(s, key, DONE, strlen(DONE), CLAIM_TTL_MS, err);
}

mr_code claim_release(mr_store *s, const char *event_id, const char *entity, mr_err *err)
{
    char key[2 * MR_ID_MAX + 16];
    claim_key(event_id, entity, key, sizeof key);
    return mr_store_del(s, key, err);
}
