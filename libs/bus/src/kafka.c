/* kafka.c -- the Kafka backend on librdkafka: idempotent acks=all producer, manual commits.
 *
 * Producer: enable.idempotence=true, acks=all, partitioner=murmur2_random, linger.ms=0; each
 * message carries its publisher's record (publishers.c), where its failed delivery report lands
 * for that publisher's next mr_bus_flush. Topics are looked up on first use and
 * created with the configured partition count when missing (CreateTopics).
 * Consumer: enable.auto.commit=false, enable.auto.offset.store=false, auto.offset.reset=earliest.
 * An offset is stored after its handler returns MR_OK, and stored offsets are committed at the
 * end of each poll and when partitions are revoked, so a partition's next owner starts right
 * after the last handled message. A handler failure seeks the partition back to the message.
 */
#include "bus_internal.h"
#include "kafka_lib.h"
#include "mindroom/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KAFKA_ADMIN_TIMEOUT_MS 10000
/* fetch.wait.max.ms unless the URL gives fetch_wait_ms: how long a broker may hold a fetch that
 * finds no data. A broker answers it as soon as data arrives (the mock cluster of the tests and
 * the demo too, through mr-kafka-mock's relays), so the wait is no part of a hop's latency: it
 * is how often an idle consumer asks again, 1000 / N fetches a second per broker it reads
 * from, 100 here; ?fetch_wait_ms=500 (librdkafka's default) saves most of them. A broker that
 * holds every fetch to the end (the bare librdkafka mock) delays each hop by up to this. */
#define KAFKA_FETCH_WAIT_MS 10

typedef struct kafka_bus {
    mr_bus base;
    pthread_mutex_t mu;     /* guards everything below */
    rd_kafka_t *producer;   /* created on the first publish */
    mr_bus_known_topic *known; /* topics looked up or created already */
    mr_bus_publishers pubs; /* who published the messages whose delivery failed */
} kafka_bus;

typedef struct kafka_consumer {
    mr_bus_consumer base;
    rd_kafka_t *rk;
    char *buf;              /* NUL-terminated copies of the current key and value */
    size_t buf_cap;
} kafka_consumer;

/* A partition whose handler failed during the current poll, and the message that failed. */
typedef struct stopped_part {
    char topic[256];
    int partition;
    int64_t offset;
} stopped_part;

static mr_code conf_set(const kafka_bus *b, rd_kafka_conf_t *conf, const char *name, const char *value,
                        mr_err *err)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        return mr_err_set(err, MR_EINVAL, "%s: setting %s=%s: %s", b->base.url.display, name, value, errstr);
    return MR_OK;
}

/* librdkafka's own lines (broker connections, rebalances) go through the project's logger;
 * levels are syslog's. */
static void on_log(const rd_kafka_t *rk, int level, const char *facility, const char *line)
{
    (void)rk;
    mr_log_level l = level <= 3   ? MR_LOG_ERROR
                     : level == 4 ? MR_LOG_WARN
                     : level <= 6 ? MR_LOG_INFO
                                  : MR_LOG_DEBUG;
    const char *fields[] = {"facility", facility, NULL};
    mr_log_write(l, "bus.kafka", fields, "%s", line);
}

/* Creates a client from name/value pairs (NULL-terminated) on top of the common settings. The
 * configuration is consumed. */
static mr_code new_client(kafka_bus *b, rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *const *kv,
                          rd_kafka_t **out, mr_err *err)
{
    /* Without Nagle a small request (a produce, a commit) leaves at once instead of waiting for
     * the broker to acknowledge the one before it, which on a held fetch's connection can take
     * the whole fetch wait. */
    const char *common[] = {"bootstrap.servers", b->base.url.brokers, "client.id", b->base.client_id,
                            "log.connection.close", "false", "socket.nagle.disable", "true", NULL};
    mr_code rc = MR_OK;
    for (size_t i = 0; common[i] && rc == MR_OK; i += 2)
        rc = conf_set(b, conf, common[i], common[i + 1], err);
    for (size_t i = 0; kv[i] && rc == MR_OK; i += 2)
        rc = conf_set(b, conf, kv[i], kv[i + 1], err);
    if (rc != MR_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    char errstr[512];
    *out = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (!*out) {
        rd_kafka_conf_destroy(conf);
        return mr_err_set(err, MR_EINVAL, "%s: creating a Kafka client: %s", b->base.url.display, errstr);
    }
    return MR_OK;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka_bus *b = opaque;
    if (!m->err)
        return;
    mr_err why;
    mr_err_set(&why, MR_EUNAVAIL, "%s: delivering a message to %s[%d]: %s", b->base.url.display,
               rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_err2str(m->err));
    Mr_bus_publisher_failed(&b->pubs, m->_private, &why);
}

/* Called with b->mu held. */
static mr_code get_producer(kafka_bus *b, rd_kafka_t **out, mr_err *err)
{
    if (!b->producer) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, b);
        /* No broker-side auto-creation when we look a topic up: it would use the broker's
         * default partition count instead of ours. linger.ms 0: a message leaves when it is
         * published rather than 5 ms later (what is published while a request is out still
         * goes in one batch). */
        const char *kv[] = {"enable.idempotence", "true", "acks", "all", "partitioner", "murmur2_random",
                            "allow.auto.create.topics", "false", "linger.ms", "0", NULL};
        mr_code rc = new_client(b, RD_KAFKA_PRODUCER, conf, kv, &b->producer, err);
        if (rc != MR_OK)
            return rc;
    }
    *out = b->producer;
    return MR_OK;
}

static mr_code create_topic(kafka_bus *b, rd_kafka_t *rk, const char *topic, mr_err *err)
{
    char errstr[256];
    int partitions = b->base.opts.partitions;
    /* Replication factor -1: the broker's default. */
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, errstr, sizeof errstr);
    if (!nt)
        return mr_err_set(err, MR_EINVAL, "%s: topic %s: %s", b->base.url.display, topic, errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(ao, KAFKA_ADMIN_TIMEOUT_MS, errstr, sizeof errstr);
    rd_kafka_AdminOptions_set_operation_timeout(ao, KAFKA_ADMIN_TIMEOUT_MS, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, KAFKA_ADMIN_TIMEOUT_MS * 2);
    mr_code rc = MR_OK;
    if (!ev) {
        rc = mr_err_set(err, MR_EUNAVAIL, "%s: creating topic %s: no answer", b->base.url.display, topic);
    } else if (rd_kafka_event_error(ev)) {
        rc = mr_err_set(err, MR_EUNAVAIL, "%s: creating topic %s with %d partitions: %s", b->base.url.display,
                        topic, partitions, rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t e = n == 1 ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
        /* Another client may have created it between our lookup and now. */
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = mr_err_set(err, MR_EUNAVAIL, "%s: creating topic %s with %d partitions: %s",
                            b->base.url.display, topic, partitions, rd_kafka_err2str(e));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* Makes sure topic exists, creating it when the cluster does not know it; called with b->mu
 * held, through any client (a consumer may be the first to use a topic). */
static mr_code ensure_topic(kafka_bus *b, rd_kafka_t *rk, const char *topic, mr_err *err)
{
    if (Mr_bus_topic_find(b->known, topic))
        return MR_OK;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return mr_err_set(err, MR_EINVAL, "%s: topic %s: %s", b->base.url.display, topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_ADMIN_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (e)
        return mr_err_set(err, MR_EUNAVAIL, "%s: looking up topic %s: %s", b->base.url.display, topic,
                          rd_kafka_err2str(e));
    rd_kafka_resp_err_t te = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    rd_kafka_metadata_destroy(md);
    mr_code rc = MR_OK;
    if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        rc = create_topic(b, rk, topic, err);
    else if (te && te != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
        rc = mr_err_set(err, MR_EUNAVAIL, "%s: looking up topic %s: %s", b->base.url.display, topic,
                        rd_kafka_err2str(te));
    if (rc != MR_OK)
        return rc;
    return Mr_bus_topic_remember(&b->base, &b->known, topic, 0, err);
}

/* A topic or group as the cluster names it: "<prefix>.<name>" when the URL has ?prefix= (the
 * instance's namespace: a prefixed ACL on "<prefix>." grants exactly its own), else name. */
#define KAFKA_NAME_MAX (MR_URL_PREFIX_MAX + 1 + 256)
static const char *kafka_name(const mr_bus *b, const char *name, char out[KAFKA_NAME_MAX])
{
    if (!*b->url.prefix)
        return name;
    snprintf(out, KAFKA_NAME_MAX, "%s.%s", b->url.prefix, name);
    return out;
}

/* The reverse, for what handlers see: the topic as it was published. */
static const char *topic_as_published(const mr_bus *b, const char *name)
{
    size_t n = strlen(b->url.prefix);
    return n && strncmp(name, b->url.prefix, n) == 0 && name[n] == '.' ? name + n + 1 : name;
}

static mr_code kafka_publish(mr_bus *bb, const char *topic_in, const char *key, const char *value, size_t len,
                             mr_err *err)
{
    kafka_bus *b = (kafka_bus *)bb;
    char named[KAFKA_NAME_MAX];
    const char *topic = kafka_name(bb, topic_in, named);
    rd_kafka_t *rk = NULL;
    pthread_mutex_lock(&b->mu);
    mr_code rc = get_producer(b, &rk, err);
    if (rc == MR_OK)
        rc = ensure_topic(b, rk, topic, err);
    pthread_mutex_unlock(&b->mu);
    if (rc != MR_OK)
        return rc;
    mr_bus_publisher *from = Mr_bus_publisher_self(&b->pubs);
    if (!from)
        return mr_err_set(err, MR_ENOMEM, "%s: no memory to publish to %s", bb->url.display, topic);
    long long deadline = Mr_bus_publish_deadline(bb);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(from), RD_KAFKA_V_END);
        if (!e)
            break;
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            char reason[256];
            rd_kafka_fatal_error(rk, reason, sizeof reason);
            return mr_err_set(err, MR_EUNAVAIL, "%s: the producer stopped: %s", bb->url.display, reason);
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return mr_err_set(err, MR_EUNAVAIL, "%s: publishing to %s: %s", bb->url.display, topic,
                              rd_kafka_err2str(e));
        int left = Mr_bus_remaining_ms(deadline);
        if (left == 0)
            return mr_err_set(err, MR_EUNAVAIL, "%s: the producer queue stayed full for %d ms",
                              bb->url.display, bb->opts.publish_timeout_ms);
        /* Serving delivery reports is what frees room in the queue. */
        rd_kafka_poll(rk, left < 100 ? left : 100);
    }
    rd_kafka_poll(rk, 0);
    return MR_OK;
}

static mr_code kafka_flush(mr_bus *bb, int timeout_ms, mr_err *err)
{
    kafka_bus *b = (kafka_bus *)bb;
    pthread_mutex_lock(&b->mu);
    rd_kafka_t *rk = b->producer;
    pthread_mutex_unlock(&b->mu);
    if (rk && rd_kafka_flush(rk, timeout_ms) == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return mr_err_set(err, MR_EUNAVAIL, "%s: %d messages not yet acknowledged by the brokers after %d ms",
                          bb->url.display, rd_kafka_outq_len(rk), timeout_ms);
    return Mr_bus_publisher_take(&b->pubs, err);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    (void)opaque;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        return;
    }
    /* Revoked: commit what was handled (rebalances run inside consumer_poll, between handlers)
     * so the next owner starts right after it instead of handling it again. */
    rd_kafka_commit(rk, NULL, 0);
    rd_kafka_assign(rk, NULL);
}

static mr_code kafka_subscribe(mr_bus *bb, const char *group_in, const char *const *topics, size_t n,
                               mr_bus_consumer **out, mr_err *err)
{
    kafka_bus *b = (kafka_bus *)bb;
    char named[KAFKA_NAME_MAX];
    const char *group = kafka_name(bb, group_in, named);
    kafka_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return mr_err_set(err, MR_ENOMEM, "%s: no memory for a consumer", bb->url.display);
    char session[16], heartbeat[16], max_poll[16], fetch_wait[16];
    snprintf(session, sizeof session, "%d", bb->opts.lease_ms);
    snprintf(heartbeat, sizeof heartbeat, "%d", bb->opts.lease_ms / 3);
    /* librdkafka heartbeats from its own thread, so a handler longer than the session keeps the
     * partition; only one longer than this (librdkafka's default too, at least the session)
     * makes the consumer leave the group, as the Redis backend's renewer gives up then. */
    snprintf(max_poll, sizeof max_poll, "%d",
             bb->opts.lease_ms > MR_BUS_MAX_POLL_MS ? bb->opts.lease_ms : MR_BUS_MAX_POLL_MS);
    snprintf(fetch_wait, sizeof fetch_wait, "%d", bb->url.fetch_wait_ms ? bb->url.fetch_wait_ms : KAFKA_FETCH_WAIT_MS);
    const char *kv[] = {"group.id", group, "enable.auto.commit", "false", "enable.auto.offset.store", "false",
                        "auto.offset.reset", "earliest", "session.timeout.ms", session,
                        "heartbeat.interval.ms", heartbeat, "max.poll.interval.ms", max_poll,
                        "fetch.wait.max.ms", fetch_wait, NULL};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    mr_code rc = new_client(b, RD_KAFKA_CONSUMER, conf, kv, &c->rk, err);
    if (rc != MR_OK) {
        free(c);
        return rc;
    }
    rd_kafka_poll_set_consumer(c->rk);
    pthread_mutex_lock(&b->mu);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n && rc == MR_OK; i++) {
        char topic[KAFKA_NAME_MAX];
        rc = ensure_topic(b, c->rk, kafka_name(bb, topics[i], topic), err);
        rd_kafka_topic_partition_list_add(list, kafka_name(bb, topics[i], topic), RD_KAFKA_PARTITION_UA);
    }
    pthread_mutex_unlock(&b->mu);
    rd_kafka_resp_err_t e = rc == MR_OK ? rd_kafka_subscribe(c->rk, list) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(list);
    if (rc == MR_OK && e)
        rc = mr_err_set(err, MR_EUNAVAIL, "%s: subscribing group %s: %s", bb->url.display, group,
                        rd_kafka_err2str(e));
    if (rc != MR_OK) {
        rd_kafka_destroy(c->rk);
        free(c);
        return rc;
    }
    *out = &c->base;
    return MR_OK;
}

static bool is_stopped(const stopped_part *s, size_t n, const char *topic, int partition)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].partition == partition && strcmp(s[i].topic, topic) == 0)
            return true;
    return false;
}

static void store_offset(rd_kafka_t *rk, const char *topic, int partition, int64_t next)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next;
    /* Fails only when the partition was revoked meanwhile: its next owner starts at the last
     * commit, which does not cover this message. */
    rd_kafka_offsets_store(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Rewinds every stopped partition to its failed message. Done once at the end of the poll:
 * messages of a stopped partition fetched after a rewind would move the fetch position past the
 * failed one again, and a seek discards everything fetched before it. */
static void seek_back(rd_kafka_t *rk, const stopped_part *s, size_t n)
{
    if (n == 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, s[i].topic, s[i].partition)->offset = s[i].offset;
    /* Fails for partitions revoked meanwhile; their next owner starts at the last commit. */
    rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, l, KAFKA_ADMIN_TIMEOUT_MS);
    if (e)
        rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Hands one message to the handler; false when it failed. */
static bool handle_one(kafka_consumer *c, const rd_kafka_message_t *km, mr_bus_handler h, void *ctx,
                       mr_code *first, mr_err *err)
{
    size_t need = km->key_len + km->len + 2;
    if (need > c->buf_cap) {
        char *nb = realloc(c->buf, need);
        if (!nb) {
            mr_err herr;
            mr_err_set(&herr, MR_ENOMEM, "no memory for a %zu-byte message", km->len);
            mr_bus_msg m = {topic_as_published(c->base.bus, rd_kafka_topic_name(km->rkt)), "", "", 0,
                            (int)km->partition, "?"};
            Mr_bus_note_failure(err, first, MR_ENOMEM, &m, &herr);
            return false;
        }
        c->buf = nb;
        c->buf_cap = need;
    }
    char *key = c->buf, *value = c->buf + km->key_len + 1;
    if (km->key_len)
        memcpy(key, km->key, km->key_len);
    key[km->key_len] = '\0';
    if (km->len)
        memcpy(value, km->payload, km->len);
    value[km->len] = '\0';
    char id[48];
    snprintf(id, sizeof id, "%d:%lld", (int)km->partition, (long long)km->offset);
    mr_bus_msg m = {topic_as_published(c->base.bus, rd_kafka_topic_name(km->rkt)), key, value, km->len,
                    (int)km->partition, id};
    mr_err herr = {0};
    mr_code rc = h(ctx, &m, &herr);
    if (rc != MR_OK)
        Mr_bus_note_failure(err, first, rc, &m, &herr);
    return rc == MR_OK;
}

static mr_code kafka_poll(mr_bus_consumer *cc, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                          size_t *handled, mr_err *err)
{
    kafka_consumer *c = (kafka_consumer *)cc;
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    stopped_part *stopped = NULL;
    size_t n_stopped = 0;
    mr_code first = MR_OK;
    bool attempted = false;
    while (*handled < max) {
        rd_kafka_message_t *km = rd_kafka_consumer_poll(c->rk, attempted ? 0 : Mr_bus_remaining_ms(deadline));
        if (!km) {
            if (attempted || Mr_bus_remaining_ms(deadline) == 0)
                break;
            continue;
        }
        const char *topic = km->rkt ? rd_kafka_topic_name(km->rkt) : "";
        /* Errors on the consumer queue are reports (a broker went away, end of a partition);
         * librdkafka keeps retrying on its own. */
        if (km->err || is_stopped(stopped, n_stopped, topic, (int)km->partition)) {
            rd_kafka_message_destroy(km);
            continue;
        }
        attempted = true;
        if (handle_one(c, km, h, ctx, &first, err)) {
            store_offset(c->rk, topic, (int)km->partition, km->offset + 1);
            (*handled)++;
        } else {
            stopped_part one = {.partition = (int)km->partition, .offset = km->offset};
            snprintf(one.topic, sizeof one.topic, "%s", topic);
            stopped_part *ns = realloc(stopped, (n_stopped + 1) * sizeof *ns);
            if (!ns) {
                /* Without room to remember it, rewind it now and end the poll. */
                seek_back(c->rk, &one, 1);
                rd_kafka_message_destroy(km);
                break;
            }
            stopped = ns;
            stopped[n_stopped++] = one;
        }
        rd_kafka_message_destroy(km);
    }
    seek_back(c->rk, stopped, n_stopped);
    free(stopped);
    if (*handled > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET && first == MR_OK)
            return mr_err_set(err, MR_EUNAVAIL,
                              "%s: committing offsets of group %s: %s (handled messages will "
                              "come again)",
                              cc->bus->url.display, cc->group, rd_kafka_err2str(e));
    }
    return first;
}

static size_t kafka_partitions(mr_bus_consumer *cc)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(((kafka_consumer *)cc)->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || !l)
        return 0;
    size_t n = (size_t)l->cnt;
    rd_kafka_topic_partition_list_destroy(l);
    return n;
}

static void kafka_consumer_close(mr_bus_consumer *cc)
{
    kafka_consumer *c = (kafka_consumer *)cc;
    /* Leaving the group revokes our partitions, which commits what was handled. */
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    free(c->buf);
    free(c);
}

static void kafka_close(mr_bus *bb)
{
    kafka_bus *b = (kafka_bus *)bb;
    if (b->producer) {
        rd_kafka_flush(b->producer, 5000);
        rd_kafka_destroy(b->producer);
    }
    Mr_bus_topics_free(b->known);
    Mr_bus_publishers_free(&b->pubs);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* A metadata request goes to a broker every time (librdkafka does not answer it from cache). */
static mr_code kafka_ping(mr_bus *bb, int timeout_ms, mr_err *err)
{
    kafka_bus *b = (kafka_bus *)bb;
    rd_kafka_t *rk = NULL;
    pthread_mutex_lock(&b->mu);
    mr_code rc = get_producer(b, &rk, err);
    pthread_mutex_unlock(&b->mu);
    if (rc != MR_OK)
        return rc;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return mr_err_set(err, MR_EUNAVAIL, "%s: no broker answered within %d ms: %s", b->base.url.display,
                          timeout_ms, rd_kafka_err2str(e));
    rd_kafka_metadata_destroy(md);
    return MR_OK;
}

static const mr_bus_vtable kafka_vtable = {.publish = kafka_publish,
                                           .flush = kafka_flush,
                                           .subscribe = kafka_subscribe,
                                           .poll = kafka_poll,
                                           .partitions = kafka_partitions,
                                           .consumer_close = kafka_consumer_close,
                                           .close = kafka_close,
                                           .ping = kafka_ping};

mr_code Mr_bus_kafka_open(const mr_bus *base, mr_bus **out, mr_err *err)
{
    mr_code rc = Mr_bus_kafka_lib_load(err);
    if (rc != MR_OK)
        return rc;
    kafka_bus *b = calloc(1, sizeof *b);
    if (!b)
        return mr_err_set(err, MR_ENOMEM, "%s: no memory", base->url.display);
    b->base = *base;
    b->base.vt = &kafka_vtable;
    pthread_mutex_init(&b->mu, NULL);
    Mr_bus_publishers_init(&b->pubs);
    *out = &b->base;
    return MR_OK;
}
