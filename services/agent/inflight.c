/* inflight.c -- the agent's own durable record of the turns it accepted: written before the bus
 * message is acknowledged, removed when the turn is finished, read again when a worker starts
 * (its own) or adopts a dead worker's. */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void inflight_key(const char *worker_id, char out[WORKER_ID_MAX + 24])
{
    snprintf(out, WORKER_ID_MAX + 24, "agent:inflight:%s", worker_id);
}

void inflight_field(long long boot_ms, unsigned long long seq, const char *room_id, char out[INFLIGHT_FIELD_MAX])
{
    int n = snprintf(out, INFLIGHT_FIELD_MAX, "%015lld.%012llu.%s", boot_ms, seq, room_id);
    if (n < 0 || (size_t)n >= INFLIGHT_FIELD_MAX)
        out[INFLIGHT_ORDER_LEN] = '\0';
}

const char *inflight_room(const char *field)
{
    return strlen(field) > INFLIGHT_ORDER_LEN + 1 && field[INFLIGHT_ORDER_LEN] == '.' ? field + INFLIGHT_ORDER_LEN + 1
                                                                                      : NULL;
}

mr_code inflight_put(mr_store *s, const char *worker_id, const char *field, const char *turn, size_t len,
                     mr_err *err)
{
    char key[WORKER_ID_MAX + 24];
    inflight_key(worker_id, key);
    return mr_store_hset(s, key, field, turn, len, err);
}

mr_code inflight_drop(mr_store *s, const char *worker_id, const char *field, mr_err *err)
{
    char key[WORKER_ID_MAX + 24];
    inflight_key(worker_id, key);
    return mr_store_hdel(s, key, field, err);
}

mr_code inflight_holds(mr_store *s, const char *worker_id, const char *field, bool *held, mr_err *err)
{
    char key[WORKER_ID_MAX + 24];
    inflight_key(worker_id, key);
    char *value = NULL;
    size_t len = 0;
    mr_code rc = mr_store_hget(s, key, field, &value, &len, err);
    free(value);
    *held = rc == MR_OK;
    return rc == MR_ENOTFOUND ? MR_OK : rc;
}

static int by_field(const void *a, const void *b)
{
    return strcmp(((const mr_store_hash_entry *)a)->field, ((const mr_store_hash_entry *)b)->field);
}

mr_code inflight_list(mr_store *s, const char *worker_id, mr_store_hash *out, mr_err *err)
{
    char key[WORKER_ID_MAX + 24];
    inflight_key(worker_id, key);
    mr_code rc = mr_store_hgetall(s, key, out, err);
    /* Redis gives a hash in no particular order. */
    if (rc == MR_OK && out->count > 1)
        qsort(out->entries, out->count, sizeof *out->entries, by_field);
    return rc;
}
