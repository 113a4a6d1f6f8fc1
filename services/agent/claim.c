/* claim.c -- each (event, entity) is answered once: `reply:<event_id>:<entity>` is claimed with
 * set-if-absent before the model is called, refreshed while the answer streams, and marked done
 * once the final text is on the bus.
 *
 * The crash window: a worker that dies between claiming and "done" leaves a "started" claim.
 * The bus hands the turn over again (to this worker after a restart, or to a replica); while
 * the claim's last refresh is recent, the turn is left for later (CLAIM_BUSY: the owner may be
 * alive and streaming), and once it is older than CLAIM_STALE_MS the new worker takes it over
 * and answers again. The new answer uses the same transaction IDs (txn.c) for the first send
 * and the final edit, so the homeserver keeps one reply message; what the user may see is the
 * first attempt's partial text until the new edits replace it. An owner that went silent for
 * longer than CLAIM_STALE_MS without dying (a model call stuck that long) can be overtaken the
 * same way: two streams then edit the one message, and the first final edit stands. */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STARTED "started "
#define DONE "done"

static void claim_key(const char *event_id, const char *entity, char *out, size_t cap)
{
    snprintf(out, cap, "reply:%s:%s", event_id, entity);
}

static int started_value(long long now_ms, char *out, size_t cap)
{
    return snprintf(out, cap, STARTED "%lld", now_ms);
}

mr_code claim_take(mr_store *s, const char *event_id, const char *entity, long long now_ms, claim_result *out,
                   mr_err *err)
{
    char key[2 * MR_ID_MAX + 16], value[64];
    claim_key(event_id, entity, key, sizeof key);
    int n = started_value(now_ms, value, sizeof value);
    bool won = false;
    mr_code rc = mr_store_set_nx(s, key, value, (size_t)n, CLAIM_TTL_MS, &won, err);
    if (rc != MR_OK || won) {
        *out = CLAIM_WON;
        return rc;
    }
    char *held = NULL;
    size_t len = 0;
    rc = mr_store_get(s, key, &held, &len, err);
    if (rc == MR_ENOTFOUND)
        /* Expired between the two calls: the next delivery claims it afresh. */
        return mr_err_set(err, MR_ECONFLICT, "%s vanished while being read", key);
    if (rc != MR_OK)
        return rc;
    long long refreshed = 0;
    if (strcmp(held, DONE) == 0)
        *out = CLAIM_DONE;
    else if (sscanf(held, STARTED "%lld", &refreshed) == 1 && now_ms - refreshed < CLAIM_STALE_MS)
        *out = CLAIM_BUSY;
    else {
        bool swapped = false;
        rc = mr_store_cas(s, key, held, len, value, (size_t)n, CLAIM_TTL_MS, &swapped, err);
        /* Lost the race to another worker taking over: it answers. */
        *out = swapped ? CLAIM_TAKEN_OVER : CLAIM_BUSY;
    }
    free(held);
    return rc;
}

mr_code claim_refresh(mr_store *s, const char *event_id, const char *entity, long long now_ms, mr_err *err)
{
    char key[2 * MR_ID_MAX + 16], value[64];
    claim_key(event_id, entity, key, sizeof key);
    int n = started_value(now_ms, value, sizeof value);
    return mr_store_set(s, key, value, (size_t)n, CLAIM_TTL_MS, err);
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
