/* workers.c -- the agent's processes and their heartbeats: each names itself by a stable worker
 * ID and a per-boot nonce, and says it is alive every few seconds in `agent:workers`, so a claim
 * or an in-flight turn it holds is its own exactly as long as it runs. */
#include "agent_internal.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mr_code worker_id_check(const char *id, mr_err *err)
{
    size_t n = strlen(id);
    if (n == 0 || n > WORKER_ID_MAX)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_WORKER_ID: must be 1 to %d characters, not %zu", WORKER_ID_MAX,
                          n);
    if (strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_WORKER_ID: \"%s\" may hold only letters, digits, '.', '_' and '-'",
                          id);
    return MR_OK;
}

mr_code worker_self_init(const char *worker_id, agent_self *out, mr_err *err)
{
    mr_code rc = worker_id_check(worker_id, err);
    if (rc != MR_OK)
        return rc;
    unsigned char raw[WORKER_BOOT_LEN / 2];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return mr_err_set(err, MR_EINTERNAL, "OpenSSL RAND_bytes failed: no boot nonce for worker %s", worker_id);
    snprintf(out->worker_id, sizeof out->worker_id, "%s", worker_id);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out->boot + 2 * i, 3, "%02x", raw[i]);
    return MR_OK;
}

mr_code worker_beat(mr_store *s, const agent_self *me, long long now_ms, mr_err *err)
{
    char value[WORKER_BOOT_LEN + 32];
    int n = snprintf(value, sizeof value, "%s %lld", me->boot, now_ms);
    return mr_store_hset(s, WORKERS_KEY, me->worker_id, value, (size_t)n, err);
}

mr_code worker_clash(mr_store *s, const agent_self *me, bool *clash, mr_err *err)
{
    *clash = false;
    char *value = NULL;
    size_t len = 0;
    mr_code rc = mr_store_hget(s, WORKERS_KEY, me->worker_id, &value, &len, err);
    if (rc == MR_ENOTFOUND)
        return MR_OK;
    if (rc == MR_OK)
        *clash = strncmp(value, me->boot, WORKER_BOOT_LEN) != 0 || value[WORKER_BOOT_LEN] != ' ';
    free(value);
    return rc;
}

bool worker_beat_of(const char *value, long long *beat_ms)
{
    char boot[WORKER_BOOT_LEN + 1];
    return sscanf(value, "%16s %lld", boot, beat_ms) == 2;
}

mr_code worker_alive_until(mr_store *s, const char *worker_id, const char *boot, long long now_ms,
                           long long *until_ms, mr_err *err)
{
    *until_ms = 0;
    char *value = NULL;
    size_t len = 0;
    mr_code rc = mr_store_hget(s, WORKERS_KEY, worker_id, &value, &len, err);
    if (rc == MR_ENOTFOUND)
        return MR_OK;
    if (rc != MR_OK)
        return rc;
    char seen[WORKER_BOOT_LEN + 1];
    long long beat = 0;
    if (sscanf(value, "%16s %lld", seen, &beat) == 2 && strcmp(seen, boot) == 0 && now_ms < beat + WORKER_LEASE_MS)
        *until_ms = beat + WORKER_LEASE_MS;
    free(value);
    return MR_OK;
}
