/* rate_limit.c -- per-user, per-address and per-connection request limits kept in the store, so
 * every replica behind one load balancer enforces the same budget.
 *
 * A sliding log: the store holds, per rule and subject, the times of the requests admitted in the
 * last 60 s, and a request is admitted only while fewer than the budget are there. So "20 a
 * minute" holds for every 60 s span, including one across a clock minute (a fixed window per
 * clock minute let 40 through in 2 s). The log is read and replaced by compare-and-set, so
 * concurrent requests on replicas cannot both take the last slot. */
#include "prov_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"

#define WINDOW_MS 60000LL
/* Slack on the log's TTL, so a replica whose clock is a little behind still finds it. */
#define TTL_SLACK_MS 5000L
/* Compare-and-set rounds before a request on a contended subject gives up (503). */
#define CAS_ATTEMPTS 64
#define STAMP_MAX 24

/* The reference product's budgets, per 60 s. */
const rate_rule rate_pair_start = {"pair_start", "pair/start requests", "Matrix user", 10};
const rate_rule rate_pair_status = {"pair_status", "pair/status requests", "Matrix user", 60};
const rate_rule rate_pair_complete = {"pair_complete", "pair/complete requests", "client address", 20};
const rate_rule rate_connections_list = {"conn_list", "connections requests", "Matrix user", 60};
const rate_rule rate_connections_revoke = {"conn_revoke", "revocations", "Matrix user", 20};
const rate_rule rate_register_agent = {"register_agent", "register-agent requests", "connection", 60};

void rate_address_subject(const char *ip, char *out, size_t cap)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, ip, a) == 1) {
        inet_ntop(AF_INET, a, text, sizeof text);
        snprintf(out, cap, "%s", text);
        return;
    }
    if (inet_pton(AF_INET6, ip, a) != 1) {
        /* Not an address (api_client_ip only yields addresses): count it as given. */
        snprintf(out, cap, "%s", ip);
        return;
    }
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, v4_mapped, sizeof v4_mapped) == 0) {
        inet_ntop(AF_INET, a + 12, text, sizeof text);
        snprintf(out, cap, "%s", text);
        return;
    }
    /* One host, or one customer's LAN, gets a /64: its other 2^64 addresses are free to it. */
    memset(a + 8, 0, 8);
    inet_ntop(AF_INET6, a, text, sizeof text);
    snprintf(out, cap, "%s/64", text);
}

/* The log as stored: admission times in ms, oldest first, space-separated. Entries older than
 * the window are dropped; at most max are kept (a budget lowered since they were written). */
static size_t log_parse(const char *text, long long now_ms, long long *out, size_t max)
{
    size_t n = 0;
    while (text && *text) {
        char *end;
        long long t = strtoll(text, &end, 10);
        if (end == text)
            break;
        text = end + strspn(end, " ");
        if (t > now_ms - WINDOW_MS) {
            if (n == max) {
                memmove(out, out + 1, (max - 1) * sizeof *out);
                n--;
            }
            out[n++] = t;
        }
    }
    return n;
}

mr_code rate_limit_hit_at(prov *p, const rate_rule *rule, const char *subject, long long now_ms,
                          long *retry_after_s, mr_err *err)
{
    char key[512];
    snprintf(key, sizeof key, "rate:%s:%s", rule->scope, subject);
    size_t max = (size_t)rule->per_minute;
    long long *times = calloc(max + 1, sizeof *times);
    char *next = malloc((max + 1) * STAMP_MAX);
    if (!times || !next) {
        free(times);
        free(next);
        return mr_err_set(err, MR_ENOMEM, "out of memory counting %s", rule->what);
    }
    mr_code rc = MR_OK;
    bool done = false;
    for (int attempt = 0; attempt < CAS_ATTEMPTS && rc == MR_OK && !done; attempt++) {
        char *old = NULL;
        size_t old_len = 0;
        rc = mr_store_get(prov_store(p), key, &old, &old_len, err);
        if (rc == MR_ENOTFOUND) {
            mr_err_clear(err);
            rc = MR_OK;
        }
        if (rc != MR_OK)
            break;
        size_t n = log_parse(old, now_ms, times, max);
        if (n >= max) {
            /* Full: the oldest entry leaves the window first. */
            long long wait_ms = times[0] + WINDOW_MS - now_ms;
            *retry_after_s = wait_ms > 1000 ? (long)((wait_ms + 999) / 1000) : 1;
            free(old);
            done = true;
            break;
        }
        /* Kept in order even when this replica's clock is behind the last writer's. */
        times[n] = n && times[n - 1] > now_ms ? times[n - 1] : now_ms;
        size_t len = 0;
        for (size_t i = 0; i <= n; i++)
            len += (size_t)snprintf(next + len, STAMP_MAX, i ? " %lld" : "%lld", times[i]);
        bool swapped = false;
        rc = mr_store_cas(prov_store(p), key, old, old ? old_len : 0, next, len, (long)WINDOW_MS + TTL_SLACK_MS,
                          &swapped, err);
        free(old);
        if (rc == MR_OK && swapped) {
            *retry_after_s = 0;
            done = true;
        }
    }
    free(times);
    free(next);
    if (rc == MR_OK && !done)
        rc = mr_err_set(err, MR_EUNAVAIL, "%d concurrent updates of the %s budget of one %s in a row; "
                        "try again", CAS_ATTEMPTS, rule->what, rule->per);
    return rc;
}

mr_code rate_limit_hit(prov *p, const rate_rule *rule, const char *subject, long *retry_after_s, mr_err *err)
{
    return rate_limit_hit_at(p, rule, subject, mr_clock_wall_ms(), retry_after_s, err);
}
