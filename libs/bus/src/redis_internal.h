/* redis_internal.h -- what the Redis Streams producer and consumer share. */
#ifndef MINDROOM_BUS_REDIS_INTERNAL_H
#define MINDROOM_BUS_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>
#include "bus_internal.h"

/* Key names, all under "mr:bus:<topic>:" (topics cannot contain ':'), and that under
 * "<prefix>:" when the URL has ?prefix= (instances sharing one server; a Redis ACL user with
 * ~<prefix>:* reaches exactly its own):
 *   mr:bus:<topic>:<p>                      the stream of partition p
 *   mr:bus:<topic>:partitions               the topic's partition count, set by its first user
 *   mr:bus:<topic>:members:<group>          live consumers of a group (sorted set by expiry)
 *   mr:bus:<topic>:lease:<group>:<p>        which consumer of a group owns partition p */
#define MR_REDIS_KEY_MAX 512

void Mr_bus_redis_key(char *out, const mr_bus *b, const char *topic, const char *suffix_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Connects, authenticates and selects the database; read_timeout_ms bounds every reply. */
mr_code Mr_bus_redis_connect(const mr_bus *b, int read_timeout_ms, redisContext **out, mr_err *err);

/* Runs one command (arguments as NUL-terminated strings). NULL with err set when the connection
 * failed: the caller drops it. */
redisReply *Mr_bus_redis_command(redisContext *c, const mr_bus *b, int argc, const char **argv, mr_err *err);

/* Reads the next reply to a command `what` queued or sent earlier (replies come in the order of
 * the commands; a queued command is written out first); NULL with err set when the connection
 * failed. */
redisReply *Mr_bus_redis_reply(redisContext *c, const mr_bus *b, const char *what, mr_err *err);

/* Runs script with keys and up to two arguments (a NULL one and those after it are left out);
 * NULL with err set when the connection failed. */
redisReply *Mr_bus_redis_eval(redisContext *c, const mr_bus *b, const char *script, char *const *keys,
                              size_t n_keys, const char *a1, const char *a2, mr_err *err);

/* The partition count of topic: the one stored by its first user, or ours, stored now. */
mr_code Mr_bus_redis_partitions(const mr_bus *b, redisContext *c, const char *topic, int *out, mr_err *err);

/* A consumer's lease renewer (redis_renewer.c): while a poll runs, a thread renews the leases
 * the consumer `me` holds every lease_ms/3, on keys (per topic: the group's live consumers, then
 * the leases of its partitions) the consumer keeps until it stops the renewer. */
typedef struct mr_redis_renewer mr_redis_renewer;
mr_code Mr_bus_redis_renewer_start(const mr_bus *b, const char *me, char **const *keys, const size_t *n_keys,
                                   size_t n_topics, mr_redis_renewer **out, mr_err *err);
/* A poll begins (true) or ends (false). */
void Mr_bus_redis_renewer_polling(mr_redis_renewer *r, bool polling);
/* The consumer's own rebalance, sent at `sent`, renewed its leases; it holds `held`. */
void Mr_bus_redis_renewer_renewed(mr_redis_renewer *r, long long sent, size_t held);
/* Until when the consumer's leases last at least (on mr_clock_mono_ms). */
long long Mr_bus_redis_renewer_until(mr_redis_renewer *r);
/* Stops the thread and frees r; NULL is a no-op. */
void Mr_bus_redis_renewer_stop(mr_redis_renewer *r);

mr_code Mr_bus_redis_subscribe(mr_bus *b, const char *group, const char *const *topics, size_t n,
                               mr_bus_consumer **out, mr_err *err);
mr_code Mr_bus_redis_poll(mr_bus_consumer *c, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                          size_t *handled, mr_err *err);
size_t Mr_bus_redis_partitions_owned(mr_bus_consumer *c);
void Mr_bus_redis_consumer_close(mr_bus_consumer *c);

#endif
