/* redis_renewer.c -- keeps a Redis consumer's leases while its handlers run.
 *
 * The consumer renews its leases when it rebalances, between handlers; a handler that runs longer
 * than a lease would let the partition go to another consumer, which would claim the entry still
 * being handled. So while a poll is in progress a thread of the consumer's, on a connection of
 * its own, renews every lease the consumer holds (and its membership) each lease_ms/3. It only
 * extends: taking and giving up partitions stays with the polling thread. A process that dies
 * takes the thread along, and its leases lapse as before. Like Kafka's max.poll.interval.ms, a
 * poll that runs past MR_BUS_MAX_POLL_MS is taken for hung and no longer renewed.
 */
#include "redis_internal.h"
#include "mindroom/log.h"
#include "mindroom/thread_name.h"

#include <stdio.h>
#include <stdlib.h>

/* KEYS[1]: the group's live consumers; KEYS[2..]: the leases of partitions 0..P-1. ARGV[1]: this
 * consumer; ARGV[2]: the lease in ms. Extends this consumer's membership and every lease it
 * holds; returns how many it holds. */
static const char RENEW_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local me, lease = ARGV[1], tonumber(ARGV[2])\n"
    "redis.call('ZADD', KEYS[1], now + lease, me)\n"
    "redis.call('PEXPIRE', KEYS[1], lease * 2)\n"
    "local held = 0\n"
    "for i = 2, #KEYS do\n"
    "  if redis.call('GET', KEYS[i]) == me then redis.call('PEXPIRE', KEYS[i], lease); held = held + 1 end\n"
    "end\n"
    "return held\n";

struct mr_redis_renewer {
    const mr_bus *bus;
    const char *me;
    char **const *keys;   /* per topic: members, then leases (the consumer's) */
    const size_t *n_keys;
    size_t n_topics;
    redisContext *c;      /* the renewer thread's own */
    bool failing;         /* the last attempt failed: logged once until one succeeds */
    pthread_t thread;
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;
    bool stop;
    long long poll_since; /* when the current poll began; 0 between polls */
    long long renewed_at; /* when the last renewal was sent */
    long long until;      /* the leases last at least until then */
    size_t held;          /* leases the consumer holds, as of its last rebalance */
};

static int interval(const mr_redis_renewer *r)
{
    return r->bus->opts.lease_ms / 3;
}

static void drop(mr_redis_renewer *r, const mr_err *why)
{
    if (!r->failing)
        mr_log_warn("bus.redis", "consumer %s cannot renew its leases: %s", r->me, why->msg);
    r->failing = true;
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

/* One EVAL per topic; true when every lease the consumer holds was extended. */
static bool renew_all(mr_redis_renewer *r, size_t want)
{
    mr_err err = {0};
    if (!r->c && Mr_bus_redis_connect(r->bus, interval(r), &r->c, &err) != MR_OK) {
        drop(r, &err);
        return false;
    }
    char lease[16];
    snprintf(lease, sizeof lease, "%d", r->bus->opts.lease_ms);
    long long held = 0;
    for (size_t t = 0; t < r->n_topics; t++) {
        redisReply *rep =
            Mr_bus_redis_eval(r->c, r->bus, RENEW_LUA, r->keys[t], r->n_keys[t], r->me, lease, &err);
        if (!rep) {
            drop(r, &err);
            return false;
        }
        if (rep->type == REDIS_REPLY_INTEGER)
            held += rep->integer;
        else
            mr_log_warn("bus.redis", "consumer %s renewing its leases: %s", r->me,
                        rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        freeReplyObject(rep);
    }
    r->failing = false;
    /* Fewer than it holds: one lapsed (or the server lost it); the next rebalance sorts it out. */
    return held >= (long long)want;
}

static void *renewer_main(void *arg)
{
    mr_redis_renewer *r = arg;
    mr_thread_name("bus-lease");
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        long long now = mr_clock_mono_ms(), due = r->renewed_at + interval(r);
        bool polling = r->poll_since != 0 && now - r->poll_since < MR_BUS_MAX_POLL_MS;
        if (!polling) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        if (now < due) {
            Mr_bus_wait(&r->cv, &r->mu, due);
            continue;
        }
        size_t want = r->held;
        pthread_mutex_unlock(&r->mu);
        bool ok = renew_all(r, want);
        pthread_mutex_lock(&r->mu);
        /* A failed attempt is tried again an interval later; the leases run down meanwhile. */
        r->renewed_at = now;
        if (ok && now + r->bus->opts.lease_ms > r->until)
            r->until = now + r->bus->opts.lease_ms;
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

mr_code Mr_bus_redis_renewer_start(const mr_bus *b, const char *me, char **const *keys, const size_t *n_keys,
                                   size_t n_topics, mr_redis_renewer **out, mr_err *err)
{
    mr_redis_renewer *r = calloc(1, sizeof *r);
    if (!r)
        return mr_err_set(err, MR_ENOMEM, "%s: no memory for consumer %s", b->url.display, me);
    *r = (mr_redis_renewer){.bus = b, .me = me, .keys = keys, .n_keys = n_keys, .n_topics = n_topics};
    pthread_mutex_init(&r->mu, NULL);
    Mr_bus_cond_init(&r->cv);
    int e = pthread_create(&r->thread, NULL, renewer_main, r);
    if (e != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return mr_err_errno(err, MR_EINTERNAL, e, "%s: starting the lease renewer of consumer %s",
                            b->url.display, me);
    }
    *out = r;
    return MR_OK;
}

void Mr_bus_redis_renewer_polling(mr_redis_renewer *r, bool polling)
{
    pthread_mutex_lock(&r->mu);
    r->poll_since = polling ? mr_clock_mono_ms() : 0;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void Mr_bus_redis_renewer_renewed(mr_redis_renewer *r, long long sent, size_t held)
{
    pthread_mutex_lock(&r->mu);
    r->renewed_at = sent;
    r->held = held;
    if (sent + r->bus->opts.lease_ms > r->until)
        r->until = sent + r->bus->opts.lease_ms;
    pthread_mutex_unlock(&r->mu);
}

long long Mr_bus_redis_renewer_until(mr_redis_renewer *r)
{
    pthread_mutex_lock(&r->mu);
    long long until = r->until;
    pthread_mutex_unlock(&r->mu);
    return until;
}

void Mr_bus_redis_renewer_stop(mr_redis_renewer *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    if (r->c)
        redisFree(r->c);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
