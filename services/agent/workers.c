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

/* ---- holders ---- */

size_t holder_format(const char *state, const agent_self *me, char out[HOLDER_MAX])
{
    int n = state ? snprintf(out, HOLDER_MAX, "%s %s %s", state, me->worker_id, me->boot)
                  : snprintf(out, HOLDER_MAX, "%s %s", me->worker_id, me->boot);
    return (size_t)n;
}

/* Copies the word of len bytes at w into out (cap bytes); false when it does not fit. */
static bool holder_word(const char *w, size_t len, char *out, size_t cap)
{
    if (len == 0 || len >= cap)
        return false;
    memcpy(out, w, len);
    out[len] = '\0';
    return true;
}

bool holder_parse(const char *value, const char *const states[], worker_holder *out)
{
    memset(out, 0, sizeof *out);
    /* Words split at single spaces: two or three of them, none empty. */
    const char *word[3];
    size_t len[3], n = 0;
    for (const char *p = value;; p += len[n++] + 1) {
        if (n == 3)
            return false;
        word[n] = p;
        len[n] = strcspn(p, " ");
        if (p[len[n]] == '\0') {
            n++;
            break;
        }
    }
    bool fits = n >= 2 && (n == 2 || holder_word(word[0], len[0], out->state, sizeof out->state)) &&
                holder_word(word[n - 2], len[n - 2], out->worker, sizeof out->worker) &&
                holder_word(word[n - 1], len[n - 1], out->boot, sizeof out->boot);
    for (size_t i = 0; fits && states[i]; i++)
        if (strcmp(out->state, states[i]) == 0)
            return true;
    memset(out, 0, sizeof *out);
    return false;
}

mr_code holder_take(mr_store *s, const agent_self *me, const char *key, const char *state, const char *const states[],
                    long long ttl_ms, holder_try *t, bool *won, mr_err *err)
{
    memset(t, 0, sizeof *t);
    t->key = key;
    t->ttl_ms = ttl_ms;
    t->mine_len = holder_format(state, me, t->mine);
    mr_code rc = mr_store_set_nx(s, key, t->mine, t->mine_len, ttl_ms, won, err);
    if (rc != MR_OK || *won)
        return rc;
    rc = mr_store_get(s, key, &t->held, &t->held_len, err);
    if (rc != MR_OK || !holder_parse(t->held, states, &t->h))
        return rc;
    if (strcmp(t->h.worker, me->worker_id) != 0)
        t->whose = HOLDER_OTHER;
    else
        t->whose = strcmp(t->h.boot, me->boot) == 0 ? HOLDER_ME : HOLDER_MY_EARLIER_BOOT;
    return MR_OK;
}

mr_code holder_alive_until(mr_store *s, const holder_try *t, long long now_ms, long long *until_ms, mr_err *err)
{
    *until_ms = t->whose == HOLDER_ME ? now_ms + WORKER_LEASE_MS : 0;
    return t->whose == HOLDER_OTHER ? worker_alive_until(s, t->h.worker, t->h.boot, now_ms, until_ms, err) : MR_OK;
}

mr_code holder_take_over(mr_store *s, const holder_try *t, bool *swapped, mr_err *err)
{
    return mr_store_cas(s, t->key, t->held, t->held_len, t->mine, t->mine_len, t->ttl_ms, swapped, err);
}

void holder_try_free(holder_try *t)
{
    free(t->held);
    t->held = NULL;
}
