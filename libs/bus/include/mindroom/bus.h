/* bus.h -- the message bus: keyed JSON messages on topics, consumer groups, at-least-once.
 *
 * One API over three backends, chosen by URL (MINDROOM_BUS_URL):
 *   inproc:                                  bounded in-memory queues between threads of one
 *                                            process; a crash loses what was queued
 *   inproc:///absolute/path/journal.db       the same queues with a write-ahead journal in a
 *                                            SQLite file (`mindroom run`): consumers see a
 *                                            message at once, mr_bus_flush waits until the
 *                                            journal committed it (a crash takes the consumers'
 *                                            work on what was not committed with it), groups'
 *                                            positions are kept there, and on open unacknowledged
 *                                            messages come again, in order, before anything new.
 *                                            The file is created 0600 (missing parents 0700) and
 *                                            one bus at a time may open it. Rows every group has
 *                                            passed are deleted. A group's position stays in the
 *                                            file like a committed offset: a group that stops
 *                                            subscribing for good holds back its partitions (and,
 *                                            once inproc_capacity behind, their producers)
 *   kafka://host:port[,host:port...][?fetch_wait_ms=N][&prefix=<ns>]
 *                                            Kafka through librdkafka; fetch_wait_ms (1-10000,
 *                                            default 10) is how long a broker may hold a fetch
 *                                            that finds nothing. Brokers answer as soon as data
 *                                            arrives, so it sets only how often an idle
 *                                            consumer asks (1000 / N a second per broker: 500
 *                                            saves most); a broker that holds every fetch to
 *                                            the end (the bare librdkafka mock) delays each hop
 *                                            by up to N
 *   redis://[[user]:password@]host[:port][/db][?partitions=N][&prefix=<ns>]
 *                                            Redis Streams (port 6379 and db 0 by default);
 *                                            partitions (1-1024) is the count of the topics
 *                                            this bus creates when options give none: more
 *                                            than 8 let more consumers of a group share them
 *   prefix (1 to 64 of [A-Za-z0-9_-]): the instance's namespace on a server other instances
 *   share. Kafka topics and groups are named "<ns>.<name>"; Redis keys begin "<ns>:". Handlers
 *   and messages see topics and groups as the caller named them. Options go in any order.
 *
 * Semantics shared by all backends:
 * - A topic has N partitions (mr_bus_options.partitions, default 8). A key goes to partition
 *   mr_bus_partition(key, N): Kafka's murmur2 (librdkafka's "murmur2_random" partitioner, the
 *   Java client's default), so kcat and Java clients place keys the same way.
 * - Within a consumer group each partition is handled by one consumer at a time, in order, so
 *   messages with one key are handled in the order they were published.
 * - At-least-once: a message is acknowledged only after its handler returns MR_OK. A handler
 *   failure stops that partition for the rest of the poll and the message comes again (Kafka:
 *   the consumer seeks back; Redis: the entry stays pending). A consumer that dies before
 *   acknowledging leaves its messages to the others of its group (Kafka: after its session
 *   times out; Redis: after its partition leases expire). Duplicates are possible; handlers
 *   must be idempotent (the agent claims each event ID once in the store).
 * - What every group of a topic has handled is dropped, except on Kafka (which keeps its log
 *   for the topic's retention): inproc frees a message as soon as the last group handled it (a
 *   journal deletes its row with the next commit); Redis trims each stream to the oldest entry
 *   some group has not acknowledged, within a rebalance interval (lease_ms/3) of the last
 *   acknowledgement. A topic without any group keeps everything (inproc: up to inproc_capacity
 *   messages a partition, then its producers wait).
 * - A group that subscribes for the first time starts at the oldest message still kept (Kafka:
 *   the start of the log; Redis and inproc: the oldest message some group has not handled, or
 *   everything when the topic has no group yet), so messages published before it subscribed
 *   are delivered to it unless every group that existed then had handled them already.
 *
 * Threads: an mr_bus may be shared by threads (publish, flush and subscribe are thread-safe);
 * an mr_bus_consumer belongs to one thread at a time. Close consumers before their bus.
 */
#ifndef MINDROOM_BUS_H
#define MINDROOM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

typedef struct mr_bus mr_bus;

typedef struct mr_bus_options {
    const char *client_id;  /* names this process to brokers and in Redis consumer names;
                               default "mindroom" */
    int partitions;         /* partitions of topics the bus creates; default the Redis URL's
                               ?partitions=N, else 8 */
    size_t inproc_capacity; /* inproc: messages kept per partition; a producer blocks while the
                               slowest group is this far behind; default 1024 */
    int lease_ms;           /* how long a silent consumer keeps its partitions before the rest of
                               its group takes them over (Kafka session.timeout.ms, Redis lease);
                               at least 1000, default 10000. Leases are renewed in the background
                               while a poll's handlers run (Kafka: librdkafka's heartbeats; Redis:
                               a thread per consumer), so a handler may run longer than this, up
                               to 300 s a poll (Kafka's max.poll.interval.ms); a consumer whose
                               poll runs longer is taken for hung and its partitions move on */
    int publish_timeout_ms; /* longest a publish waits for room in a full buffer before it
                               returns MR_EUNAVAIL (the message is then not queued); default
                               30000, negative: wait without limit */
} mr_bus_options;

/* Opens a bus for url (see above); opts may be NULL for the defaults. Bad URLs and options fail
 * with MR_EINVAL and a message naming the URL (passwords masked) and what is wrong. Kafka and
 * Redis connect lazily: an unreachable broker shows up on the first publish or subscribe.
 * A Redis bus sets SIGPIPE to ignored when it is at its default, so a connection Redis closed
 * is an error to recover from rather than the end of the process. */
mr_code mr_bus_open(const char *url, const mr_bus_options *opts, mr_bus **out, mr_err *err);
/* Waits a few seconds for unacknowledged messages (call mr_bus_flush first to know), then
 * frees everything. NULL is a no-op. */
void mr_bus_close(mr_bus *b);

/* Queues value (len bytes, a JSON document) under key (non-empty) on topic (letters, digits,
 * '.', '_', '-'; at most 200 characters). May block while the backend's buffer is full; it
 * never drops a message. */
mr_code mr_bus_publish(mr_bus *b, const char *topic, const char *key, const char *value, size_t len,
                       mr_err *err);
/* Waits until everything published so far is durably accepted (Kafka: delivery reports with
 * acks=all; Redis: XADD replies; inproc: at once; inproc with a journal: committed to the file,
 * with the acknowledgements made before the call). Returns MR_OK only when every message the
 * calling thread published since its last flush was accepted: otherwise the first of them the
 * backend refused (Redis: an XADD error reply such as WRONGTYPE or OOM; Kafka: a failed delivery
 * report), MR_EUNAVAIL when timeout_ms passed first, or a journal's failed commit. Failures are
 * kept per publishing thread: a flush never reports, nor clears, another thread's. Callers save
 * progress (sync tokens) only after their own flush returns MR_OK. */
mr_code mr_bus_flush(mr_bus *b, int timeout_ms, mr_err *err);

/* Before a handler returns MR_OK, when what it published must be kept whenever its message's
 * acknowledgement is, and nothing else it did since depends on them: on a bus that commits an
 * acknowledgement together with or after every message published before it (inproc, and inproc
 * with a journal: one writer, batches in publish order, so a crash or power loss keeps both,
 * neither, or the messages without the acknowledgement, which then comes again), it only
 * returns a journal's failed commit and does not wait for the disk; elsewhere it is
 * mr_bus_flush. Progress kept outside the bus (a sync token, a store marker, a ratchet) still
 * needs mr_bus_flush first: it is not ordered with the journal. */
mr_code mr_bus_flush_for_ack(mr_bus *b, int timeout_ms, mr_err *err);

/* Calls fn(ctx, true) once every message published before the call is durable, as mr_bus_flush
 * would have waited for, without making the caller wait: for progress kept outside the bus (a
 * store marker) that must never be durable ahead of the messages it stands for. With the inproc
 * journal the writer thread calls it after the commit that holds those messages (never for a
 * batch that failed: a later commit that succeeds runs it), or
 * fn(ctx, false) if the bus closes first; without a journal, at once. Elsewhere it is
 * mr_bus_flush and then fn on the calling thread, with false when the flush fails (and its error
 * returned). fn is called exactly once, so it may free ctx; it runs without the bus's locks but
 * must not flush or close the bus. */
typedef void (*mr_bus_durable_fn)(void *ctx, bool durable);
mr_code mr_bus_when_durable(mr_bus *b, int timeout_ms, mr_bus_durable_fn fn, void *ctx, mr_err *err);

/* For `mindroom run`: a function the inproc journal calls before each commit, once it has taken
 * what was published and acknowledged until then, so that what the caller wrote elsewhere
 * before publishing or acknowledging (the store, through mr_store_sync) is durable no later
 * than those. Its failure fails the commit, which is tried again. Returns false, setting
 * nothing, on a backend without a journal (there an acknowledgement is the caller's own call).
 * Set it before anything is published. */
typedef mr_code (*mr_bus_commit_hook)(void *ctx, mr_err *err);
bool mr_bus_before_commit(mr_bus *b, mr_bus_commit_hook fn, void *ctx);

/* Whether the backend answers now, within timeout_ms: Kafka a metadata request to any broker,
 * Redis a PING on a connection of its own; inproc is always there. MR_EUNAVAIL names the URL
 * (password masked) and what failed. For readiness checks: it costs a round trip. */
mr_code mr_bus_ping(mr_bus *b, int timeout_ms, mr_err *err);

typedef struct mr_bus_msg {
    const char *topic;
    const char *key;
    const char *value; /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    int partition;
    const char *id;    /* unique within the topic: "<partition>:<offset>" (Kafka, inproc), the
                          stream entry ID (Redis) */
} mr_bus_msg;

/* Returns MR_OK to acknowledge m. Anything else leaves it unacknowledged: it is delivered again
 * (to this or another consumer of the group) and its partition stops for the current poll. The
 * message is valid only during the call. */
typedef mr_code (*mr_bus_handler)(void *ctx, const mr_bus_msg *m, mr_err *err);

typedef struct mr_bus_consumer mr_bus_consumer;

/* Joins consumer group `group` (same characters as topics) for the given topics. */
mr_code mr_bus_subscribe(mr_bus *b, const char *group, const char *const *topics, size_t n_topics,
                         mr_bus_consumer **out, mr_err *err);
/* Handles up to max messages, waiting up to timeout_ms for the first, acknowledging each after
 * its handler returns MR_OK. *handled counts the acknowledged ones. On Redis a poll does not wait
 * for its acknowledgement: the XACK goes behind the consumer's next read (its next poll, or
 * mr_bus_consumer_close), and one lost with the connection leaves its entries to be claimed
 * again. Returns MR_OK; or the first handler failure, with the handler's code and "handling
 * <topic>[<partition>] <id>: <its message>" (other partitions are still handled); or
 * MR_EUNAVAIL when the backend cannot be reached within timeout_ms (call again: it reconnects). */
mr_code mr_bus_poll(mr_bus_consumer *c, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                    size_t *handled, mr_err *err);
/* How many partitions c owns right now (Kafka: its assignment; Redis: its leases; inproc: every
 * partition of its topics, which its group's consumers share). Zero means it handles nothing
 * yet: useful for readiness checks. Call it from the thread that polls c. */
size_t mr_bus_consumer_partitions(mr_bus_consumer *c);
/* Leaves the group (its partitions go to the other consumers at once) and frees c. */
void mr_bus_consumer_close(mr_bus_consumer *c);

/* The partition of key among n: (murmur2(key) & 0x7fffffff) % n, as Kafka's Java client and
 * librdkafka's murmur2_random partitioner compute it. */
int mr_bus_partition(const char *key, int n);

#endif
