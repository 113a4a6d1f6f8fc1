/* bus.c -- the bus front end: options, argument checks, and dispatch to the chosen backend. */
#include "bus_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void Mr_bus_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

bool Mr_bus_wait(pthread_cond_t *cv, pthread_mutex_t *mu, long long deadline)
{
    if (deadline == LLONG_MAX) {
        pthread_cond_wait(cv, mu);
        return true;
    }
    long long left = deadline - mr_clock_mono_ms();
    if (left <= 0)
        return false;
    struct timespec ts = mr_clock_after_ms(CLOCK_MONOTONIC, left);
    return pthread_cond_timedwait(cv, mu, &ts) != ETIMEDOUT || mr_clock_mono_ms() < deadline;
}

int Mr_bus_remaining_ms(long long deadline)
{
    long long left = deadline - mr_clock_mono_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

long long Mr_bus_publish_deadline(const mr_bus *b)
{
    if (b->opts.publish_timeout_ms < 0)
        return LLONG_MAX;
    return mr_clock_mono_ms() + b->opts.publish_timeout_ms;
}

/* Topic and group names end up in Kafka topic names and Redis keys: keep them to a set both
 * accept, and without ':' so Redis key names stay unambiguous. */
static mr_code check_name(const char *what, const char *name, mr_err *err)
{
    if (!name || !*name)
        return mr_err_set(err, MR_EINVAL, "%s is empty", what);
    size_t len = strlen(name);
    if (len > 200)
        return mr_err_set(err, MR_EINVAL, "%s \"%.40s...\" is longer than 200 characters", what, name);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        if (!ok)
            return mr_err_set(err, MR_EINVAL,
                              "%s \"%s\": only letters, digits, '.', '_' and '-' are allowed", what,
                              name);
    }
    return MR_OK;
}

static mr_code apply_options(mr_bus *base, const mr_bus_options *opts, mr_err *err)
{
    mr_bus_options o = opts ? *opts : (mr_bus_options){0};
    const char *id = o.client_id && *o.client_id ? o.client_id : "mindroom";
    mr_code rc = check_name("bus option client_id", id, err);
    if (rc != MR_OK)
        return rc;
    snprintf(base->client_id, sizeof base->client_id, "%s", id);
    o.client_id = NULL;
    if (o.partitions == 0)
        o.partitions = base->url.partitions ? base->url.partitions : 8;
    if (o.partitions < 1 || o.partitions > 1024)
        return mr_err_set(err, MR_EINVAL, "bus option partitions = %d: must be from 1 to 1024", o.partitions);
    if (o.inproc_capacity == 0)
        o.inproc_capacity = 1024;
    if (o.lease_ms == 0)
        o.lease_ms = 10000;
    if (o.lease_ms < 1000)
        return mr_err_set(err, MR_EINVAL, "bus option lease_ms = %d: must be at least 1000", o.lease_ms);
    if (o.publish_timeout_ms == 0)
        o.publish_timeout_ms = 30000;
    base->opts = o;
    return MR_OK;
}

mr_code mr_bus_open(const char *url, const mr_bus_options *opts, mr_bus **out, mr_err *err)
{
    *out = NULL;
    mr_bus base = {0};
    mr_code rc = Mr_bus_url_parse(url, &base.url, err);
    if (rc == MR_OK)
        rc = apply_options(&base, opts, err);
    if (rc != MR_OK)
        return rc;
    switch (base.url.kind) {
    case MR_BUS_INPROC: return Mr_bus_inproc_open(&base, out, err);
    case MR_BUS_KAFKA: return Mr_bus_kafka_open(&base, out, err);
    case MR_BUS_REDIS: return Mr_bus_redis_open(&base, out, err);
    }
    return mr_err_set(err, MR_EINTERNAL, "bus URL \"%s\": no backend", base.url.display);
}

void mr_bus_close(mr_bus *b)
{
    if (b)
        b->vt->close(b);
}

mr_code mr_bus_publish(mr_bus *b, const char *topic, const char *key, const char *value, size_t len,
                       mr_err *err)
{
    mr_code rc = check_name("topic name", topic, err);
    if (rc != MR_OK)
        return rc;
    if (!key || !*key)
        return mr_err_set(err, MR_EINVAL, "publishing to %s: the key is empty", topic);
    if (!value && len > 0)
        return mr_err_set(err, MR_EINVAL, "publishing to %s: no value", topic);
    return b->vt->publish(b, topic, key, value ? value : "", len, err);
}

mr_code mr_bus_flush(mr_bus *b, int timeout_ms, mr_err *err)
{
    return b->vt->flush(b, timeout_ms < 0 ? 0 : timeout_ms, err);
}

mr_code mr_bus_flush_for_ack(mr_bus *b, int timeout_ms, mr_err *err)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    return b->vt->flush_for_ack ? b->vt->flush_for_ack(b, timeout_ms, err) : b->vt->flush(b, timeout_ms, err);
}

mr_code mr_bus_when_durable(mr_bus *b, int timeout_ms, mr_bus_durable_fn fn, void *ctx, mr_err *err)
{
    if (b->vt->when_durable)
        return b->vt->when_durable(b, fn, ctx, err);
    mr_code rc = mr_bus_flush(b, timeout_ms, err);
    fn(ctx, rc == MR_OK);
    return rc;
}

bool mr_bus_before_commit(mr_bus *b, mr_bus_commit_hook fn, void *ctx)
{
    return b->vt->before_commit && b->vt->before_commit(b, fn, ctx);
}

mr_code mr_bus_ping(mr_bus *b, int timeout_ms, mr_err *err)
{
    return b->vt->ping ? b->vt->ping(b, timeout_ms < 1 ? 1 : timeout_ms, err) : MR_OK;
}

mr_code mr_bus_subscribe(mr_bus *b, const char *group, const char *const *topics, size_t n_topics,
                         mr_bus_consumer **out, mr_err *err)
{
    *out = NULL;
    mr_code rc = check_name("group name", group, err);
    if (rc != MR_OK)
        return rc;
    if (n_topics == 0)
        return mr_err_set(err, MR_EINVAL, "subscribing group %s: no topics", group);
    for (size_t i = 0; i < n_topics; i++) {
        rc = check_name("topic name", topics[i], err);
        if (rc != MR_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(topics[i], topics[j]) == 0)
                return mr_err_set(err, MR_EINVAL, "subscribing group %s: topic %s is listed twice", group,
                                  topics[i]);
    }
    rc = b->vt->subscribe(b, group, topics, n_topics, out, err);
    if (rc == MR_OK) {
        (*out)->bus = b;
        snprintf((*out)->group, sizeof (*out)->group, "%s", group);
    }
    return rc;
}

mr_code mr_bus_poll(mr_bus_consumer *c, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                    size_t *handled, mr_err *err)
{
    *handled = 0;
    if (!h || max == 0)
        return mr_err_set(err, MR_EINVAL, "polling group %s: needs a handler and max >= 1", c->group);
    return c->bus->vt->poll(c, timeout_ms < 0 ? 0 : timeout_ms, max, h, ctx, handled, err);
}

size_t mr_bus_consumer_partitions(mr_bus_consumer *c)
{
    return c->bus->vt->partitions(c);
}

void mr_bus_consumer_close(mr_bus_consumer *c)
{
    if (c)
        c->bus->vt->consumer_close(c);
}

void Mr_bus_note_failure(mr_err *err, mr_code *first, mr_code rc, const mr_bus_msg *m, const mr_err *herr)
{
    if (*first != MR_OK)
        return;
    *first = rc;
    mr_err_set(err, rc, "handling %s[%d] %s: %s", m->topic, m->partition, m->id,
               herr->msg[0] ? herr->msg : mr_code_str(rc));
}

/* Kafka's murmur2 (the Java client's Utils.murmur2), so every backend places a key where a Kafka
 * producer would. */
static uint32_t murmur2(const unsigned char *data, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28c ^ (uint32_t)len;
    for (; len >= 4; data += 4, len -= 4) {
        uint32_t k = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                     (uint32_t)data[3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    if (len >= 3)
        h ^= (uint32_t)data[2] << 16;
    if (len >= 2)
        h ^= (uint32_t)data[1] << 8;
    if (len >= 1) {
        h ^= data[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

int mr_bus_partition(const char *key, int n)
{
    if (n <= 1)
        return 0;
    return (int)((murmur2((const unsigned char *)key, strlen(key)) & 0x7fffffff) % (uint32_t)n);
}
