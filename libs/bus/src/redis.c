/* redis.c -- the Redis Streams backend: connections, and the pipelined producer that resends.
 *
 * A publish appends the message to a ring of unconfirmed messages and writes its XADD at once;
 * replies are read in batches. Only a reply confirms a message (the server's appendfsync policy
 * decides how durable that is). When the connection fails, every unconfirmed message is sent
 * again on the next connection, in order: a message whose reply was lost may then appear twice,
 * which at-least-once allows. A publish blocks only when the ring is full. An error reply (a key
 * of the stream's name holding another type, maxmemory reached) fails that message, and only
 * its publisher's next flush reports it.
 */
#include "redis_internal.h"
#include "mindroom/log.h"
#include "mindroom/sigpipe.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_CAP 1024       /* unconfirmed messages a producer holds before publish blocks */
#define READ_BATCH 64       /* replies read at once while publishing */
#define REPLY_TIMEOUT_MS 5000
#define RETRY_MS 250        /* between connection attempts */

typedef struct pending_msg {
    char *stream;
    char *key;
    char *value;
    size_t len;
    mr_bus_publisher *from;
} pending_msg;

typedef struct redis_bus {
    mr_bus base;
    pthread_mutex_t mu;   /* guards everything below */
    redisContext *c;
    long long next_connect_ms;
    pending_msg ring[RING_CAP];
    size_t head, n;       /* unconfirmed messages, oldest at head */
    size_t sent;          /* of those, written on the current connection and awaiting replies */
    mr_bus_known_topic *known;
    mr_err down;          /* why the connection failed last */
    mr_bus_publishers pubs; /* who published what Redis refused */
} redis_bus;

void Mr_bus_redis_key(char *out, const mr_bus *b, const char *topic, const char *suffix_fmt, ...)
{
    int used = snprintf(out, MR_REDIS_KEY_MAX, "%s%smr:bus:%s:", b->url.prefix, *b->url.prefix ? ":" : "", topic);
    va_list ap;
    va_start(ap, suffix_fmt);
    vsnprintf(out + used, MR_REDIS_KEY_MAX - (size_t)used, suffix_fmt, ap);
    va_end(ap);
}

redisReply *Mr_bus_redis_command(redisContext *c, const mr_bus *b, int argc, const char **argv, mr_err *err)
{
    mr_sigpipe_guard g;
    mr_sigpipe_hold(&g);
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    mr_sigpipe_release(&g);
    if (!r)
        mr_err_set(err, MR_EUNAVAIL, "%s: %s: %s", b->url.display, argv[0],
                   c->errstr[0] ? c->errstr : "no reply");
    return r;
}

/* Queues one command and writes it out without reading its reply (read_replies does, in order).
 * MR_EUNAVAIL (MR_ENOMEM) with err set when the connection failed: the caller drops it. */
static mr_code send_command(redisContext *c, const mr_bus *b, int argc, const char **argv, const size_t *lens,
                            mr_err *err)
{
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK)
        return mr_err_set(err, MR_ENOMEM, "%s: queueing %s: %s", b->url.display, argv[0],
                          c->errstr[0] ? c->errstr : "out of memory");
    int done = 0;
    mr_sigpipe_guard g;
    mr_sigpipe_hold(&g);
    while (!done && c->err == 0)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            break;
    mr_sigpipe_release(&g);
    if (c->err)
        return mr_err_set(err, MR_EUNAVAIL, "%s: sending %s: %s", b->url.display, argv[0], c->errstr);
    return MR_OK;
}

redisReply *Mr_bus_redis_reply(redisContext *c, const mr_bus *b, const char *what, mr_err *err)
{
    void *reply = NULL;
    mr_sigpipe_guard g;
    mr_sigpipe_hold(&g);
    int got = redisGetReply(c, &reply);
    mr_sigpipe_release(&g);
    if (got != REDIS_OK || !reply) {
        mr_err_set(err, MR_EUNAVAIL, "%s: waiting for %s replies: %s", b->url.display, what,
                   c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }
    return reply;
}

/* One command whose error reply is a failure too; the reply is freed. */
static mr_code run_simple(redisContext *c, const mr_bus *b, int argc, const char **argv, mr_code on_error,
                          mr_err *err)
{
    redisReply *r = Mr_bus_redis_command(c, b, argc, argv, err);
    if (!r)
        return MR_EUNAVAIL;
    mr_code rc = MR_OK;
    if (r->type == REDIS_REPLY_ERROR)
        rc = mr_err_set(err, on_error, "%s: %s: %s", b->url.display, argv[0], r->str);
    freeReplyObject(r);
    return rc;
}

mr_code Mr_bus_redis_connect(const mr_bus *b, int read_timeout_ms, redisContext **out, mr_err *err)
{
    const mr_bus_url *u = &b->url;
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(u->host, u->port, tv);
    if (!c)
        return mr_err_set(err, MR_ENOMEM, "%s: no memory for a connection", u->display);
    if (c->err) {
        mr_err_set(err, MR_EUNAVAIL, "%s: connecting: %s", u->display, c->errstr);
        redisFree(c);
        return MR_EUNAVAIL;
    }
    tv.tv_sec = read_timeout_ms / 1000;
    tv.tv_usec = (read_timeout_ms % 1000) * 1000;
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    mr_code rc = MR_OK;
    if (u->password[0]) {
        const char *auth_user[] = {"AUTH", u->user, u->password};
        const char *auth[] = {"AUTH", u->password};
        rc = u->user[0] ? run_simple(c, b, 3, auth_user, MR_EAUTH, err)
                        : run_simple(c, b, 2, auth, MR_EAUTH, err);
    }
    if (rc == MR_OK && u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *sel[] = {"SELECT", db};
        rc = run_simple(c, b, 2, sel, MR_EINVAL, err);
    }
    if (rc != MR_OK) {
        redisFree(c);
        return rc;
    }
    *out = c;
    return MR_OK;
}

mr_code Mr_bus_redis_partitions(const mr_bus *b, redisContext *c, const char *topic, int *out, mr_err *err)
{
    char key[MR_REDIS_KEY_MAX], mine[16];
    Mr_bus_redis_key(key, b, topic, "partitions");
    snprintf(mine, sizeof mine, "%d", b->opts.partitions);
    /* The first user fixes the count; later ones follow it, so every producer and consumer
     * agrees where a key goes even when their options differ. */
    const char *set[] = {"SET", key, mine, "NX"};
    mr_code rc = run_simple(c, b, 4, set, MR_EIO, err);
    if (rc != MR_OK)
        return rc;
    const char *get[] = {"GET", key};
    redisReply *r = Mr_bus_redis_command(c, b, 2, get, err);
    if (!r)
        return MR_EUNAVAIL;
    int n = r->type == REDIS_REPLY_STRING ? atoi(r->str) : 0;
    freeReplyObject(r);
    if (n < 1 || n > 1024)
        return mr_err_set(err, MR_EIO, "%s: %s does not hold a partition count from 1 to 1024",
                          b->url.display, key);
    *out = n;
    return MR_OK;
}

static void drop_connection(redis_bus *b, const mr_err *why)
{
    if (why)
        b->down = *why;
    if (b->c) {
        if (why)
            mr_log_warn("bus.redis", "producer lost its connection, resending %zu messages on the next: %s",
                        b->n, why->msg);
        redisFree(b->c);
    }
    b->c = NULL;
    b->sent = 0;
    b->next_connect_ms = mr_clock_mono_ms() + RETRY_MS;
}

static pending_msg *ring_at(redis_bus *b, size_t i)
{
    return &b->ring[(b->head + i) % RING_CAP];
}

/* Queues the XADD of the i-th unconfirmed message and writes it out. */
static void send_one(redis_bus *b, size_t i)
{
    pending_msg *m = ring_at(b, i);
    const char *argv[] = {"XADD", m->stream, "*", "k", m->key, "v", m->value};
    size_t lens[] = {4, strlen(m->stream), 1, 1, strlen(m->key), 1, m->len};
    mr_err why;
    if (send_command(b->c, &b->base, 7, argv, lens, &why) != MR_OK)
        drop_connection(b, &why);
    else
        b->sent++;
}

/* Connects when the last attempt is long enough ago, and sends every unconfirmed message. */
static bool try_connect(redis_bus *b)
{
    if (b->c)
        return true;
    if (mr_clock_mono_ms() < b->next_connect_ms)
        return false;
    mr_err why = {0};
    if (Mr_bus_redis_connect(&b->base, REPLY_TIMEOUT_MS, &b->c, &why) != MR_OK) {
        drop_connection(b, &why);
        return false;
    }
    for (size_t i = 0; i < b->n && b->c; i++)
        send_one(b, i);
    return b->c != NULL;
}

static void pop_confirmed(redis_bus *b, const redisReply *r)
{
    pending_msg *m = ring_at(b, 0);
    if (r->type == REDIS_REPLY_ERROR) {
        mr_err why;
        mr_err_set(&why, MR_EIO, "%s: XADD %s: %s", b->base.url.display, m->stream, r->str);
        Mr_bus_publisher_failed(&b->pubs, m->from, &why);
    }
    free(m->stream);
    free(m->key);
    free(m->value);
    b->head = (b->head + 1) % RING_CAP;
    b->n--;
    b->sent--;
}

/* Reads replies until at most `keep` sent messages await one. */
static void read_replies(redis_bus *b, size_t keep)
{
    while (b->c && b->sent > keep) {
        mr_err why;
        redisReply *reply = Mr_bus_redis_reply(b->c, &b->base, "XADD", &why);
        if (!reply) {
            drop_connection(b, &why);
            return;
        }
        pop_confirmed(b, reply);
        freeReplyObject(reply);
    }
}

/* Gets every unconfirmed message confirmed, reconnecting as needed, and leaves a connection
 * with no reply outstanding; false when deadline passes first. */
static bool settle(redis_bus *b, long long deadline)
{
    for (;;) {
        if (try_connect(b)) {
            read_replies(b, 0);
            if (b->c)
                return true;
            continue;
        }
        int left = Mr_bus_remaining_ms(deadline);
        if (left == 0)
            return false;
        int wait = (int)(b->next_connect_ms - mr_clock_mono_ms());
        mr_clock_sleep_ms(wait < left ? wait : left);
    }
}

static mr_code unconfirmed_error(redis_bus *b, int waited_ms, mr_err *err)
{
    return mr_err_set(err, MR_EUNAVAIL, "%s: %zu messages not yet stored after %d ms; last error: %s",
                      b->base.url.display, b->n, waited_ms, b->down.msg[0] ? b->down.msg : "none");
}

/* The topic's partition count, looked up once. Called with the mutex held. */
static mr_code topic_partitions(redis_bus *b, const char *topic, long long deadline, int *out, mr_err *err)
{
    const mr_bus_known_topic *known = Mr_bus_topic_find(b->known, topic);
    if (known) {
        *out = known->partitions;
        return MR_OK;
    }
    /* A plain command needs a connection with no reply outstanding. */
    if (!settle(b, deadline))
        return mr_err_set(err, MR_EUNAVAIL, "%s: looking up topic %s: %s", b->base.url.display, topic,
                          b->down.msg);
    int n = 0;
    mr_code rc = Mr_bus_redis_partitions(&b->base, b->c, topic, &n, err);
    if (rc == MR_EUNAVAIL)
        drop_connection(b, err);
    if (rc != MR_OK)
        return rc;
    if ((rc = Mr_bus_topic_remember(&b->base, &b->known, topic, n, err)) != MR_OK)
        return rc;
    *out = n;
    return MR_OK;
}

static mr_code redis_publish(mr_bus *bb, const char *topic, const char *key, const char *value, size_t len,
                             mr_err *err)
{
    redis_bus *b = (redis_bus *)bb;
    long long deadline = Mr_bus_publish_deadline(bb);
    pthread_mutex_lock(&b->mu);
    int partitions = 0;
    mr_code rc = topic_partitions(b, topic, deadline, &partitions, err);
    while (rc == MR_OK && b->n == RING_CAP) {
        if (try_connect(b)) {
            read_replies(b, RING_CAP / 2);
            continue;
        }
        int left = Mr_bus_remaining_ms(deadline);
        if (left == 0)
            rc = unconfirmed_error(b, bb->opts.publish_timeout_ms, err);
        else
            mr_clock_sleep_ms(left < RETRY_MS ? left : RETRY_MS);
    }
    if (rc == MR_OK) {
        pending_msg m = {malloc(MR_REDIS_KEY_MAX), strdup(key), malloc(len + 1), len,
                         Mr_bus_publisher_self(&b->pubs)};
        if (!m.stream || !m.key || !m.value || !m.from) {
            free(m.stream);
            free(m.key);
            free(m.value);
            rc = mr_err_set(err, MR_ENOMEM, "%s: no memory for a %zu-byte message", bb->url.display, len);
        } else {
            Mr_bus_redis_key(m.stream, bb, topic, "%d", mr_bus_partition(key, partitions));
            memcpy(m.value, value, len);
            m.value[len] = '\0';
            *ring_at(b, b->n) = m;
            b->n++;
            if (b->c)
                send_one(b, b->n - 1);
            else
                try_connect(b);
            read_replies(b, READ_BATCH);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static mr_code redis_flush(mr_bus *bb, int timeout_ms, mr_err *err)
{
    redis_bus *b = (redis_bus *)bb;
    pthread_mutex_lock(&b->mu);
    mr_code rc = MR_OK;
    if (b->n > 0 && !settle(b, mr_clock_mono_ms() + timeout_ms)) {
        rc = unconfirmed_error(b, timeout_ms, err);
    } else {
        rc = Mr_bus_publisher_take(&b->pubs, err);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static void redis_close(mr_bus *bb)
{
    redis_bus *b = (redis_bus *)bb;
    if (b->n > 0)
        settle(b, mr_clock_mono_ms() + 5000);
    while (b->n > 0) {
        pending_msg *m = ring_at(b, 0);
        free(m->stream);
        free(m->key);
        free(m->value);
        b->head = (b->head + 1) % RING_CAP;
        b->n--;
    }
    drop_connection(b, NULL);
    Mr_bus_topics_free(b->known);
    Mr_bus_publishers_free(&b->pubs);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* A connection of its own, so a readiness probe never waits behind the producer's lock. */
static mr_code redis_ping(mr_bus *b, int timeout_ms, mr_err *err)
{
    redisContext *c = NULL;
    mr_code rc = Mr_bus_redis_connect(b, timeout_ms, &c, err);
    if (rc != MR_OK)
        return rc;
    const char *argv[] = {"PING"};
    redisReply *r = Mr_bus_redis_command(c, b, 1, argv, err);
    if (!r)
        rc = MR_EUNAVAIL;
    else if (r->type == REDIS_REPLY_ERROR)
        rc = mr_err_set(err, MR_EUNAVAIL, "%s: PING: %s", b->url.display, r->str);
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

static const mr_bus_vtable redis_vtable = {.publish = redis_publish,
                                           .flush = redis_flush,
                                           .subscribe = Mr_bus_redis_subscribe,
                                           .poll = Mr_bus_redis_poll,
                                           .partitions = Mr_bus_redis_partitions_owned,
                                           .consumer_close = Mr_bus_redis_consumer_close,
                                           .close = redis_close,
                                           .ping = redis_ping};

mr_code Mr_bus_redis_open(const mr_bus *base, mr_bus **out, mr_err *err)
{
    redis_bus *b = calloc(1, sizeof *b);
    if (!b)
        return mr_err_set(err, MR_ENOMEM, "%s: no memory", base->url.display);
    b->base = *base;
    b->base.vt = &redis_vtable;
    pthread_mutex_init(&b->mu, NULL);
    Mr_bus_publishers_init(&b->pubs);
    *out = &b->base;
    return MR_OK;
}
