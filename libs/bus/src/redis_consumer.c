/* redis_consumer.c -- Redis Streams consumer groups with partition leases and reclaiming.
 *
 * Each (topic, partition) is a stream read through one Redis consumer group per bus group. To
 * keep a partition's order with several consumers, a consumer reads only the partitions it
 * leases: every lease_ms/3 a script registers it among the group's live consumers, and gives it
 * partition p when p % (number of live consumers) is its rank by name, taking the lease only
 * when free (SET NX PX) and renewing it while held. A consumer that dies stops renewing and its
 * leases expire after lease_ms. On taking a partition (or after reconnecting) a consumer first
 * claims the partition's pending entries (XAUTOCLAIM), the ones a dead or failed handler left
 * unacknowledged, and handles them in order before reading new ones. XACK follows each
 * successful handler, and goes out behind the consumer's next read (XREADGROUP then XACK, one
 * write): a poll returns without waiting for it, and the server runs it right after that read
 * returns, for a consumer woken by an XADD often in the same turn of its event loop, so on an
 * appendfsync-always server the acknowledgement can share that XADD's fsync instead of costing
 * one of its own (measured: 24.9 fsyncs a question in the pipeline bench before, 22.6 after).
 * Until then its entries stay pending for the consumer; an XACK lost with the connection leaves
 * them to be claimed again after the reconnect (at-least-once). Any other command (a claim, a
 * rebalance, leaving) sends the held XACKs first and waits for them. While a poll runs, the
 * consumer's renewer thread (redis_renewer.c) keeps its leases, so a handler longer than a lease
 * keeps its partition: another consumer takes it only when the lease is free, and the XAUTOCLAIM
 * that follows never takes an entry from a consumer still handling it. After a rebalance, and
 * whenever it has acknowledged TRIM_AFTER_ACKS entries since its last trim, a consumer trims the
 * streams it acknowledged entries of down to what some group still needs.
 */
#include "redis_internal.h"
#include "mindroom/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* KEYS[1]: the group's live consumers; KEYS[2..]: the leases of partitions 0..P-1.
 * ARGV[1]: this consumer; ARGV[2]: the lease in ms. Returns, per partition, 0 (not ours),
 * 1 (ours, renewed) or 2 (ours, just taken). */
static const char REBALANCE_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local me, lease = ARGV[1], tonumber(ARGV[2])\n"
    "redis.call('ZADD', KEYS[1], now + lease, me)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "redis.call('PEXPIRE', KEYS[1], lease * 2)\n"
    "local members = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "table.sort(members)\n"
    "local rank, n = 0, #members\n"
    "for i, m in ipairs(members) do if m == me then rank = i - 1 end end\n"
    "local out = {}\n"
    "for p = 0, #KEYS - 2 do\n"
    "  local key, state = KEYS[p + 2], 0\n"
    "  local holder = redis.call('GET', key)\n"
    "  if p % n == rank then\n"
    "    if holder == me then redis.call('PEXPIRE', key, lease); state = 1\n"
    "    elseif not holder then redis.call('SET', key, me, 'PX', lease); state = 2 end\n"
    "  elseif holder == me then redis.call('DEL', key) end\n"
    "  out[#out + 1] = state\n"
    "end\n"
    "return out\n";

/* KEYS: streams. Deletes from each the entries every group of it has acknowledged: those
 * below the oldest entry still pending in some group, and below what some group has not read
 * yet (after its last-delivered ID). A stream without groups keeps everything. Returns how
 * many entries went. */
static const char TRIM_LUA[] =
    "local function id(s)\n"
    "  local ms, seq = string.match(s, '^(%d+)-(%d+)$')\n"
    "  return tonumber(ms), tonumber(seq)\n"
    "end\n"
    "local gone = 0\n"
    "for _, key in ipairs(KEYS) do\n"
    "  local min_ms, min_seq\n"
    "  local groups = redis.call('EXISTS', key) == 1 and redis.call('XINFO', 'GROUPS', key) or {}\n"
    "  for _, g in ipairs(groups) do\n"
    "    local f = {}\n"
    "    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end\n"
    "    local ms, seq\n"
    "    if f['pending'] > 0 then\n"
    "      ms, seq = id(redis.call('XPENDING', key, f['name'])[2])\n"
    "    else\n"
    "      ms, seq = id(f['last-delivered-id'])\n"
    "      seq = seq + 1\n"
    "    end\n"
    "    if not min_ms or ms < min_ms or (ms == min_ms and seq < min_seq) then\n"
    "      min_ms, min_seq = ms, seq\n"
    "    end\n"
    "  end\n"
    "  if min_ms then\n"
    "    gone = gone + redis.call('XTRIM', key, 'MINID', string.format('%.0f-%.0f', min_ms, min_seq))\n"
    "  end\n"
    "end\n"
    "return gone\n";

/* KEYS[1]: live consumers; KEYS[2..P+1]: leases; KEYS[P+2..2P+1]: streams. ARGV[1]: this
 * consumer; ARGV[2]: the group. Leaves at once, and forgets the consumer in streams where
 * nothing is pending for it. */
static const char LEAVE_LUA[] =
    "local me, p = ARGV[1], (#KEYS - 1) / 2\n"
    "redis.call('ZREM', KEYS[1], me)\n"
    "for i = 2, p + 1 do\n"
    "  if redis.call('GET', KEYS[i]) == me then redis.call('DEL', KEYS[i]) end\n"
    "  local s = KEYS[i + p]\n"
    "  if #redis.call('XPENDING', s, ARGV[2], '-', '+', 1, me) == 0 then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', s, ARGV[2], me)\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* Acknowledged entries after which a consumer trims without waiting for its next rebalance: at
 * tens of thousands of messages a second a rebalance interval (lease_ms/3) is a hundred
 * thousand entries kept for nothing (measured: 117 MiB of 1 KiB messages), whereas this bounds
 * what one consumer leaves behind to about a thousand, for one Lua step per thousand entries. */
#define TRIM_AFTER_ACKS 1000

typedef struct rpart {
    size_t topic;    /* index into the consumer's topics */
    int p;
    char stream[MR_REDIS_KEY_MAX];
    bool owned;
    bool acked;      /* we acknowledged entries since the stream was last trimmed */
    bool pending;    /* entries delivered to some consumer are unacknowledged: claim them first */
    bool stopped;    /* a handler failed here during this poll */
} rpart;

typedef struct rtopic {
    char *name;
    int partitions;
    size_t first;    /* index of its partition 0 in parts */
} rtopic;

typedef struct redis_consumer {
    mr_bus_consumer base;
    redisContext *c;
    char name[256];
    rtopic *topics;
    size_t n_topics;
    rpart *parts;
    size_t n_parts;
    char ***lease_keys;       /* per topic: members and leases */
    size_t *n_lease_keys;
    mr_redis_renewer *renewer;
    long long next_rebalance_ms;
    bool trim_failing;        /* the last trim failed: logged once */
    size_t acks_since_trim;   /* entries acknowledged since the last trim (TRIM_AFTER_ACKS) */
    char **acks;              /* XACKs held for the next command (redisFormatCommandArgv) */
    size_t *ack_lens;
    size_t n_acks, acks_cap;
    size_t acks_owed;         /* XACKs written on c whose replies are not read yet */
} redis_consumer;

/* What a poll is doing: the handler, its context and the running results. */
typedef struct poll_run {
    mr_bus_handler h;
    void *ctx;
    size_t max;
    size_t *handled;
    mr_code first;
    mr_err *err;
    mr_err conn;     /* why the connection failed, when it did */
} poll_run;

static int rebalance_interval(const redis_consumer *c)
{
    return c->base.bus->opts.lease_ms / 3;
}

/* Whether our leases still have a renewal interval to run. A consumer slowed down (a loaded
 * host, a slow fsync) stops reading and handling before they can expire, so that a partition
 * never has two readers: the next owner takes it only after expiry. */
static bool lease_fresh(const redis_consumer *c)
{
    return mr_clock_mono_ms() + rebalance_interval(c) < Mr_bus_redis_renewer_until(c->renewer);
}

static int read_timeout(const mr_bus *b)
{
    return b->opts.lease_ms / 3 + 5000;
}

static void drop(redis_consumer *c)
{
    if (c->c)
        redisFree(c->c);
    c->c = NULL;
    c->acks_owed = 0;
    /* Their entries stay pending and are claimed again after the reconnect. */
    for (size_t i = 0; i < c->n_acks; i++)
        redisFreeCommand(c->acks[i]);
    c->n_acks = 0;
}

/* Holds an XACK for the next command; false when out of memory. */
static bool hold_ack(redis_consumer *c, int argc, const char **argv)
{
    if (c->n_acks == c->acks_cap) {
        size_t cap = c->acks_cap ? c->acks_cap * 2 : 8;
        char **acks = realloc(c->acks, cap * sizeof *acks);
        if (acks)
            c->acks = acks;
        size_t *lens = acks ? realloc(c->ack_lens, cap * sizeof *lens) : NULL;
        if (!lens)
            return false;
        c->ack_lens = lens;
        c->acks_cap = cap;
    }
    char *cmd = NULL;
    long long len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0)
        return false;
    c->acks[c->n_acks] = cmd;
    c->ack_lens[c->n_acks++] = (size_t)len;
    return true;
}

/* Queues the held XACKs behind whatever is queued on the connection; written with the next
 * reply awaited. */
static bool queue_acks(redis_consumer *c, mr_err *err)
{
    size_t i = 0;
    for (; i < c->n_acks; i++) {
        if (redisAppendFormattedCommand(c->c, c->acks[i], c->ack_lens[i]) != REDIS_OK)
            break;
        c->acks_owed++;
    }
    for (size_t j = 0; j < c->n_acks; j++)
        redisFreeCommand(c->acks[j]);
    bool all = i == c->n_acks;
    c->n_acks = 0;
    if (!all)
        mr_err_set(err, MR_ENOMEM, "%s: queueing XACK: %s", c->base.bus->url.display,
                   c->c->errstr[0] ? c->c->errstr : "out of memory");
    return all;
}

/* Reads the replies of the XACKs written so far; false with err set when the connection failed.
 * An error reply changes nothing: the entries stay pending and are claimed again. */
static bool take_acks(redis_consumer *c, mr_err *err)
{
    for (; c->acks_owed > 0; c->acks_owed--) {
        redisReply *r = Mr_bus_redis_reply(c->c, c->base.bus, "XACK", err);
        if (!r)
            return false;
        freeReplyObject(r);
    }
    return true;
}

/* Sends the held XACKs and reads their replies; false with err set when the connection failed. */
static bool settle_acks(redis_consumer *c, mr_err *err)
{
    return queue_acks(c, err) && take_acks(c, err);
}

/* One command on the consumer's connection, after the held XACKs (one write for all). */
static redisReply *command(redis_consumer *c, int argc, const char **argv, mr_err *err)
{
    if (!settle_acks(c, err))
        return NULL;
    return Mr_bus_redis_command(c->c, c->base.bus, argc, argv, err);
}

/* XREADGROUP with the held XACKs behind it (one write): the server runs them once the read
 * returns. Their replies are read after the read's. */
static redisReply *read_command(redis_consumer *c, int argc, const char **argv, mr_err *err)
{
    if (redisAppendCommandArgv(c->c, argc, argv, NULL) != REDIS_OK) {
        mr_err_set(err, MR_ENOMEM, "%s: queueing %s: %s", c->base.bus->url.display, argv[0],
                   c->c->errstr[0] ? c->c->errstr : "out of memory");
        return NULL;
    }
    if (!queue_acks(c, err))
        return NULL;
    redisReply *r = Mr_bus_redis_reply(c->c, c->base.bus, argv[0], err);
    if (r && !take_acks(c, err)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* A script on the consumer's connection, after the held XACKs. */
static redisReply *eval(redis_consumer *c, const char *script, char *const *keys, size_t n_keys, const char *a1,
                        const char *a2, mr_err *err)
{
    if (!settle_acks(c, err))
        return NULL;
    return Mr_bus_redis_eval(c->c, c->base.bus, script, keys, n_keys, a1, a2, err);
}

/* Creates the group on every stream (from the start, so earlier messages are delivered). */
static mr_code create_groups(redis_consumer *c, mr_err *err)
{
    const mr_bus *b = c->base.bus;
    for (size_t i = 0; i < c->n_parts; i++) {
        const char *argv[] = {"XGROUP", "CREATE", c->parts[i].stream, c->base.group, "0", "MKSTREAM"};
        redisReply *r = Mr_bus_redis_command(c->c, b, 6, argv, err);
        if (!r)
            return MR_EUNAVAIL;
        mr_code rc = MR_OK;
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
            rc = mr_err_set(err, MR_EIO, "%s: XGROUP CREATE %s %s: %s", b->url.display, c->parts[i].stream,
                            c->base.group, r->str);
        freeReplyObject(r);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

/* Connects and sets up the groups. Entries delivered on the lost connection may still be
 * pending for us: claim before reading anew. */
static mr_code ensure_connected(redis_consumer *c, mr_err *err)
{
    if (c->c)
        return MR_OK;
    mr_code rc = Mr_bus_redis_connect(c->base.bus, read_timeout(c->base.bus), &c->c, err);
    if (rc == MR_OK)
        rc = create_groups(c, err);
    if (rc != MR_OK) {
        drop(c);
        return rc;
    }
    for (size_t i = 0; i < c->n_parts; i++)
        c->parts[i].pending = c->parts[i].owned;
    c->next_rebalance_ms = 0;
    return MR_OK;
}

redisReply *Mr_bus_redis_eval(redisContext *rc, const mr_bus *b, const char *script, char *const *keys,
                              size_t n_keys, const char *a1, const char *a2, mr_err *err)
{
    size_t n_args = a1 ? a2 ? 2 : 1 : 0;
    size_t argc = 3 + n_keys + n_args;
    const char **argv = calloc(argc, sizeof *argv);
    if (!argv) {
        mr_err_set(err, MR_ENOMEM, "%s: no memory for a script call", b->url.display);
        return NULL;
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%zu", n_keys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = nk;
    for (size_t i = 0; i < n_keys; i++)
        argv[3 + i] = keys[i];
    if (n_args > 0)
        argv[3 + n_keys] = a1;
    if (n_args > 1)
        argv[4 + n_keys] = a2;
    redisReply *r = Mr_bus_redis_command(rc, b, (int)argc, argv, err);
    free(argv);
    return r;
}

/* Keys of one topic for the scripts: members, leases, and (with streams) the streams. */
static char **topic_keys(redis_consumer *c, const rtopic *t, bool streams, size_t *n)
{
    size_t count = 1 + (size_t)t->partitions * (streams ? 2 : 1);
    char **keys = calloc(count, sizeof *keys);
    char *buf = keys ? malloc(count * MR_REDIS_KEY_MAX) : NULL;
    if (!buf) {
        free(keys);
        return NULL;
    }
    for (size_t i = 0; i < count; i++)
        keys[i] = buf + i * MR_REDIS_KEY_MAX;
    Mr_bus_redis_key(keys[0], c->base.bus, t->name, "members:%s", c->base.group);
    for (int p = 0; p < t->partitions; p++) {
        Mr_bus_redis_key(keys[1 + p], c->base.bus, t->name, "lease:%s:%d", c->base.group, p);
        if (streams)
            Mr_bus_redis_key(keys[1 + t->partitions + p], c->base.bus, t->name, "%d", p);
    }
    *n = count;
    return keys;
}

static void free_keys(char **keys)
{
    if (keys)
        free(keys[0]);
    free(keys);
}

static mr_code rebalance(redis_consumer *c, mr_err *err)
{
    const mr_bus *b = c->base.bus;
    long long sent = mr_clock_mono_ms();
    char lease[16];
    snprintf(lease, sizeof lease, "%d", b->opts.lease_ms);
    for (size_t t = 0; t < c->n_topics; t++) {
        redisReply *r = eval(c, REBALANCE_LUA, c->lease_keys[t], c->n_lease_keys[t], c->name, lease, err);
        if (!r)
            return MR_EUNAVAIL;
        mr_code rc = MR_OK;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)c->topics[t].partitions) {
            rc = mr_err_set(err, MR_EIO, "%s: leasing partitions of %s: %s", b->url.display,
                            c->topics[t].name, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        } else {
            for (size_t p = 0; p < r->elements; p++) {
                rpart *part = &c->parts[c->topics[t].first + p];
                long long state = r->element[p]->integer;
                /* Newly ours: whatever the previous owner left unacknowledged comes first. */
                if (state == 2 || (state == 1 && !part->owned))
                    part->pending = true;
                part->owned = state != 0;
            }
        }
        freeReplyObject(r);
        if (rc != MR_OK)
            return rc;
    }
    c->next_rebalance_ms = mr_clock_mono_ms() + rebalance_interval(c);
    Mr_bus_redis_renewer_renewed(c->renewer, sent, Mr_bus_redis_partitions_owned(&c->base));
    return MR_OK;
}

/* Trims the streams of the partitions we own and acknowledged entries of since their last trim:
 * whatever every group has acknowledged goes (memory, and cleartext kept for nothing). Cheap: a
 * Lua step per group of each stream, once a rebalance interval at most. A failure only
 * postpones it. */
static void trim_acked(redis_consumer *c)
{
    char **keys = calloc(c->n_parts, sizeof *keys);
    if (!keys)
        return;
    size_t n = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i].owned && c->parts[i].acked)
            keys[n++] = c->parts[i].stream;
    mr_err err = {0};
    redisReply *r = n ? eval(c, TRIM_LUA, keys, n, NULL, NULL, &err) : NULL;
    free(keys);
    if (!r)
        return;
    /* Counted afresh even when the trim failed: the next try waits for as many acknowledgements. */
    c->acks_since_trim = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!c->trim_failing)
            mr_log_warn("bus.redis", "consumer %s of group %s cannot trim its streams: %s", c->name,
                        c->base.group, r->str);
        c->trim_failing = true;
    } else {
        c->trim_failing = false;
        for (size_t i = 0; i < c->n_parts; i++)
            c->parts[i].acked &= !c->parts[i].owned;
    }
    freeReplyObject(r);
}

/* Finds a field's value in an entry's [field, value, ...] array. */
static const redisReply *field(const redisReply *fields, const char *name)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING && strcmp(fields->element[i]->str, name) == 0)
            return fields->element[i + 1]->type == REDIS_REPLY_STRING ? fields->element[i + 1] : NULL;
    return NULL;
}

typedef enum entry_result {
    ENTRY_HANDLED,  /* the handler returned MR_OK */
    ENTRY_FOREIGN,  /* not written by a bus producer: nothing can handle it, so only acknowledged */
    ENTRY_INVALID,  /* no ID: cannot even be acknowledged */
    ENTRY_FAILED,   /* the handler failed: the partition stops */
} entry_result;

/* Hands one [id, fields] entry to the handler. */
static entry_result handle_entry(redis_consumer *c, rpart *part, const redisReply *entry, poll_run *run)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return ENTRY_INVALID;
    const redisReply *k = field(entry->element[1], "k"), *v = field(entry->element[1], "v");
    if (!k || !v)
        return ENTRY_FOREIGN;
    mr_bus_msg m = {c->topics[part->topic].name, k->str, v->str, v->len, part->p, entry->element[0]->str};
    mr_err herr = {0};
    mr_code rc = run->h(run->ctx, &m, &herr);
    if (rc == MR_OK)
        return ENTRY_HANDLED;
    Mr_bus_note_failure(run->err, &run->first, rc, &m, &herr);
    part->stopped = true;
    part->pending = true;
    return ENTRY_FAILED;
}

/* Handles entries in order, stopping at a handler failure or at max, then holds one XACK of the
 * handled ones for the next command. Returns how many entries it went through; false in *ok when
 * out of memory, in which case they are not acknowledged and will come again. */
static size_t handle_entries(redis_consumer *c, rpart *part, const redisReply *entries, poll_run *run,
                             bool *ok)
{
    const char **argv = calloc(3 + entries->elements, sizeof *argv);
    if (!argv) {
        mr_err_set(&run->conn, MR_ENOMEM, "%s: no memory for acknowledgements", c->base.bus->url.display);
        *ok = false;
        return 0;
    }
    size_t n_ids = 0, handled = 0, i = 0;
    for (; i < entries->elements && *run->handled + handled < run->max && lease_fresh(c); i++) {
        entry_result r = handle_entry(c, part, entries->element[i], run);
        if (r == ENTRY_FAILED)
            break;
        if (r != ENTRY_INVALID)
            argv[3 + n_ids++] = entries->element[i]->element[0]->str;
        handled += r == ENTRY_HANDLED;
    }
    *ok = true;
    if (n_ids > 0) {
        argv[0] = "XACK";
        argv[1] = part->stream;
        argv[2] = c->base.group;
        if (hold_ack(c, (int)(3 + n_ids), argv)) {
            *run->handled += handled;
            part->acked = true;
            c->acks_since_trim += n_ids;
        } else {
            mr_err_set(&run->conn, MR_ENOMEM, "%s: no memory for an XACK", c->base.bus->url.display);
            part->pending = true;
            *ok = false;
        }
    }
    free(argv);
    return i;
}

/* Claims and handles pending entries of a partition; false on a connection failure. */
static bool claim_pending(redis_consumer *c, rpart *part, poll_run *run)
{
    char count[24];
    snprintf(count, sizeof count, "%zu", run->max - *run->handled);
    /* Min idle time 0: holding the lease makes us the partition's only rightful reader. */
    const char *argv[] = {"XAUTOCLAIM", part->stream, c->base.group, c->name, "0", "0-0", "COUNT", count};
    redisReply *r = command(c, 8, argv, &run->conn);
    if (!r)
        return false;
    bool ok = true;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = r->element[1];
        size_t done = handle_entries(c, part, entries, run, &ok);
        /* Done with the backlog when the scan wrapped around and everything was handled. */
        if (ok && done == entries->elements && !part->stopped && strcmp(r->element[0]->str, "0-0") == 0)
            part->pending = false;
    } else if (r->type == REDIS_REPLY_ERROR) {
        mr_err_set(&run->conn, MR_EIO, "%s: XAUTOCLAIM %s: %s", c->base.bus->url.display, part->stream,
                   r->str);
        ok = false;
    }
    freeReplyObject(r);
    return ok;
}

/* Reads new entries of the partitions that have no backlog. Returns 1 when entries came,
 * 0 when none did, -1 on a connection failure. */
static int read_new(redis_consumer *c, poll_run *run, int block_ms)
{
    rpart **sel = calloc(c->n_parts, sizeof *sel);
    const char **argv = calloc(9 + 2 * c->n_parts, sizeof *argv);
    if (!sel || !argv) {
        free(sel);
        free(argv);
        mr_err_set(&run->conn, MR_ENOMEM, "%s: no memory for a read", c->base.bus->url.display);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i].owned && !c->parts[i].pending && !c->parts[i].stopped)
            sel[n++] = &c->parts[i];
    char count[24], block[24];
    snprintf(count, sizeof count, "%zu", run->max - *run->handled);
    snprintf(block, sizeof block, "%d", block_ms);
    size_t argc = 0;
    const char *head[] = {"XREADGROUP", "GROUP", c->base.group, c->name, "COUNT", count};
    for (size_t i = 0; i < 6; i++)
        argv[argc++] = head[i];
    /* BLOCK 0 would wait forever: without time left, do not block at all. */
    if (block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < n; i++)
        argv[argc++] = sel[i]->stream;
    for (size_t i = 0; i < n; i++)
        argv[argc++] = ">";
    int result = 0;
    redisReply *r = n ? read_command(c, (int)argc, argv, &run->conn) : NULL;
    if (n && !r) {
        result = -1;
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: the server lost its data; setting up again on a new connection recreates the
         * groups. */
        mr_err_set(&run->conn, MR_EIO, "%s: XREADGROUP: %s", c->base.bus->url.display, r->str);
        result = -1;
    } else if (r && r->type == REDIS_REPLY_ARRAY) {
        result = 1;
        for (size_t s = 0; s < r->elements && result > 0; s++) {
            const redisReply *sr = r->element[s];
            rpart *part = NULL;
            for (size_t i = 0; i < n && sr->type == REDIS_REPLY_ARRAY && sr->elements == 2; i++)
                if (strcmp(sel[i]->stream, sr->element[0]->str) == 0)
                    part = sel[i];
            if (!part || sr->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            bool ok = true;
            /* Entries past a failure, or past max, are ours and pending now: claimed next. */
            if (handle_entries(c, part, sr->element[1], run, &ok) < sr->element[1]->elements)
                part->pending = true;
            if (!ok)
                result = -1;
        }
    }
    if (r)
        freeReplyObject(r);
    free(sel);
    free(argv);
    return result;
}

static bool any_readable(const redis_consumer *c)
{
    for (size_t i = 0; i < c->n_parts; i++)
        if (c->parts[i].owned && !c->parts[i].pending && !c->parts[i].stopped)
            return true;
    return false;
}

static mr_code poll_leased(mr_bus_consumer *cc, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                           size_t *handled, mr_err *err)
{
    redis_consumer *c = (redis_consumer *)cc;
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    poll_run run = {h, ctx, max, handled, MR_OK, err, {0}};
    for (size_t i = 0; i < c->n_parts; i++)
        c->parts[i].stopped = false;
    for (;;) {
        mr_code rc = ensure_connected(c, &run.conn);
        if (rc == MR_OK && (mr_clock_mono_ms() >= c->next_rebalance_ms || !lease_fresh(c))) {
            rc = rebalance(c, &run.conn);
            if (rc == MR_OK)
                trim_acked(c);
        } else if (rc == MR_OK && c->acks_since_trim >= TRIM_AFTER_ACKS) {
            trim_acked(c);
        }
        bool conn_ok = rc == MR_OK;
        for (size_t i = 0; conn_ok && i < c->n_parts && *handled < max; i++) {
            rpart *part = &c->parts[i];
            if (part->owned && part->pending && !part->stopped && lease_fresh(c))
                conn_ok = claim_pending(c, part, &run);
        }
        bool attempted = *handled > 0 || run.first != MR_OK;
        int got = 0;
        if (conn_ok && *handled < max && any_readable(c) && lease_fresh(c)) {
            int until_rebalance = (int)(c->next_rebalance_ms - mr_clock_mono_ms());
            int left = Mr_bus_remaining_ms(deadline);
            int block = attempted ? 0 : (left < until_rebalance ? left : until_rebalance);
            got = read_new(c, &run, block);
            conn_ok = got >= 0;
        }
        if (!conn_ok) {
            /* Entries delivered but not acknowledged on this connection are claimed after the
             * next connect. */
            if (c->c)
                mr_log_warn("bus.redis", "consumer %s of group %s reconnects: %s", c->name, cc->group,
                            run.conn.msg);
            drop(c);
            if (*handled > 0 || run.first != MR_OK)
                return run.first;
            int left = Mr_bus_remaining_ms(deadline);
            if (left == 0) {
                if (err)
                    *err = run.conn;
                return run.conn.code ? run.conn.code : MR_EUNAVAIL;
            }
            mr_clock_sleep_ms(left < 200 ? left : 200);
            continue;
        }
        if (*handled > 0 || run.first != MR_OK || got > 0 || Mr_bus_remaining_ms(deadline) == 0)
            return run.first;
        if (!any_readable(c)) {
            /* Nothing leased (yet): wait for the next rebalance or the deadline. */
            int until_rebalance = (int)(c->next_rebalance_ms - mr_clock_mono_ms());
            int left = Mr_bus_remaining_ms(deadline);
            mr_clock_sleep_ms(left < until_rebalance ? left : until_rebalance);
        }
    }
}

mr_code Mr_bus_redis_poll(mr_bus_consumer *cc, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                          size_t *handled, mr_err *err)
{
    redis_consumer *c = (redis_consumer *)cc;
    Mr_bus_redis_renewer_polling(c->renewer, true);
    mr_code rc = poll_leased(cc, timeout_ms, max, h, ctx, handled, err);
    Mr_bus_redis_renewer_polling(c->renewer, false);
    return rc;
}

static void free_consumer(redis_consumer *c)
{
    Mr_bus_redis_renewer_stop(c->renewer);
    for (size_t t = 0; c->lease_keys && t < c->n_topics; t++)
        free_keys(c->lease_keys[t]);
    free(c->lease_keys);
    free(c->n_lease_keys);
    drop(c);
    for (size_t t = 0; t < c->n_topics; t++)
        free(c->topics[t].name);
    free(c->topics);
    free(c->parts);
    free(c->acks);
    free(c->ack_lens);
    free(c);
}

mr_code Mr_bus_redis_subscribe(mr_bus *b, const char *group, const char *const *topics, size_t n,
                               mr_bus_consumer **out, mr_err *err)
{
    static unsigned counter;
    redis_consumer *c = calloc(1, sizeof *c);
    if (!c || !(c->topics = calloc(n, sizeof *c->topics))) {
        free(c);
        return mr_err_set(err, MR_ENOMEM, "%s: no memory for a consumer", b->url.display);
    }
    c->n_topics = n;
    c->base.bus = b;
    snprintf(c->base.group, sizeof c->base.group, "%s", group);
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    /* Unique per consumer, and telling an operator where it runs. */
    snprintf(c->name, sizeof c->name, "%s-%s-%ld-%u", b->client_id, host, (long)getpid(),
             __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
    mr_code rc = Mr_bus_redis_connect(b, read_timeout(b), &c->c, err);
    for (size_t t = 0; t < n && rc == MR_OK; t++) {
        c->topics[t].first = c->n_parts;
        if (!(c->topics[t].name = strdup(topics[t])))
            rc = mr_err_set(err, MR_ENOMEM, "%s: no memory for topic %s", b->url.display, topics[t]);
        else
            rc = Mr_bus_redis_partitions(b, c->c, topics[t], &c->topics[t].partitions, err);
        c->n_parts += rc == MR_OK ? (size_t)c->topics[t].partitions : 0;
    }
    if (rc == MR_OK && !(c->parts = calloc(c->n_parts, sizeof *c->parts)))
        rc = mr_err_set(err, MR_ENOMEM, "%s: no memory for a consumer", b->url.display);
    for (size_t t = 0; t < n && rc == MR_OK; t++) {
        for (int p = 0; p < c->topics[t].partitions; p++) {
            rpart *part = &c->parts[c->topics[t].first + (size_t)p];
            part->topic = t;
            part->p = p;
            Mr_bus_redis_key(part->stream, b, topics[t], "%d", p);
        }
    }
    if (rc == MR_OK && (!(c->lease_keys = calloc(n, sizeof *c->lease_keys)) ||
                        !(c->n_lease_keys = calloc(n, sizeof *c->n_lease_keys))))
        rc = mr_err_set(err, MR_ENOMEM, "%s: no memory for a consumer", b->url.display);
    for (size_t t = 0; t < n && rc == MR_OK; t++)
        if (!(c->lease_keys[t] = topic_keys(c, &c->topics[t], false, &c->n_lease_keys[t])))
            rc = mr_err_set(err, MR_ENOMEM, "%s: no memory for lease keys", b->url.display);
    if (rc == MR_OK)
        rc = create_groups(c, err);
    if (rc == MR_OK)
        rc = Mr_bus_redis_renewer_start(b, c->name, c->lease_keys, c->n_lease_keys, n, &c->renewer, err);
    if (rc != MR_OK) {
        free_consumer(c);
        return rc;
    }
    *out = &c->base;
    return MR_OK;
}

size_t Mr_bus_redis_partitions_owned(mr_bus_consumer *cc)
{
    redis_consumer *c = (redis_consumer *)cc;
    size_t n = 0;
    for (size_t i = 0; i < c->n_parts; i++)
        n += c->parts[i].owned;
    return n;
}

void Mr_bus_redis_consumer_close(mr_bus_consumer *cc)
{
    redis_consumer *c = (redis_consumer *)cc;
    mr_err ignored;
    /* No renewal may follow the leave. */
    Mr_bus_redis_renewer_stop(c->renewer);
    c->renewer = NULL;
    /* Leaving at once lets the others take our partitions now rather than when leases expire;
     * when Redis is unreachable they expire on their own. */
    if (ensure_connected(c, &ignored) == MR_OK) {
        for (size_t t = 0; t < c->n_topics; t++) {
            size_t n_keys = 0;
            char **keys = topic_keys(c, &c->topics[t], true, &n_keys);
            redisReply *r = keys ? eval(c, LEAVE_LUA, keys, n_keys, c->name, cc->group, &ignored) : NULL;
            free_keys(keys);
            if (r)
                freeReplyObject(r);
        }
    }
    free_consumer(c);
}
