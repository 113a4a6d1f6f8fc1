/* inproc.c -- the in-process bus: bounded per-partition rings shared by consumer groups.
 *
 * Each (topic, partition) is a ring of `inproc_capacity` messages numbered by a sequence, its
 * slots allocated in chunks as messages arrive and freed as they are handled (IP_CHUNK). Each
 * group keeps, per partition, the sequence of the next message to handle and whether a handler
 * is running on it; any consumer of the group may take the next message of a partition nobody
 * is handling, which keeps one handler per partition at a time and the partition's order. A
 * producer waits while the slowest group is a whole ring behind, so nothing is overwritten
 * before every group handled it, and a message is freed as soon as every group has handled it
 * (a group that subscribes later starts after it). All of it sits behind one mutex; handlers run outside it.
 * A consumer with nothing to take waits on a condition of its own, and a publish hands the message
 * to one waiting consumer that may take it and wakes that one only: with a dozen consumer threads
 * in `mindroom run`, waking them all on every message cost more than the hops themselves.
 * With a journal (inproc_journal.c) messages and cursor moves are committed there in the
 * background, and a flush waits for that. Consumers see a message as soon as it is published,
 * before its commit: everything runs in this one process, so a crash that loses an uncommitted
 * message loses its consumers' work on it too, and the producer, which flushes before it
 * acknowledges what it derived the message from (the gateway before it saves a sync token),
 * makes it again after the restart. What a consumer derives is committed after what it came
 * from (one writer, batches in publish order), so the journal never holds an effect without its
 * cause. Handling need not wait for the disk, only acknowledging does. A ring slot is reused,
 * and a message freed, only once the journal holds it.
 */
#include "inproc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ip_sub {
    ip_topic *topic;
    ip_group *group;
} ip_sub;

typedef struct ip_consumer {
    mr_bus_consumer base;
    pthread_cond_t wake;         /* signalled when it may have a message to take */
    struct ip_consumer *next_waiter; /* in the bus's waiters while it waits in a poll */
    bool waiting;
    long handed;                 /* the slot wake_waiters handed it, -1 for none */
    ip_sub *subs;
    size_t n_subs;
    bool *stopped; /* per (sub, partition): a handler failed there during this poll */
    size_t n_slots;
    size_t rr;     /* where the next search starts, so partitions take turns */
} ip_consumer;

static size_t n_chunks(size_t cap)
{
    return (cap + IP_CHUNK - 1) / IP_CHUNK;
}

static void free_topic(ip_topic *t, size_t cap)
{
    for (int p = 0; p < t->partitions && t->parts; p++) {
        ip_part *part = &t->parts[p];
        for (size_t c = 0; part->chunks && c < n_chunks(cap); c++) {
            for (size_t i = 0; part->chunks[c] && i < IP_CHUNK; i++) {
                free(part->chunks[c][i].key);
                free(part->chunks[c][i].value);
            }
            free(part->chunks[c]);
        }
        free(part->chunks);
    }
    free(t->parts);
    for (ip_group *g = t->groups, *n; g; g = n) {
        n = g->next;
        free(g->name);
        free(g->cur);
        free(g);
    }
    free(t->name);
    free(t);
}

ip_topic *Mr_bus_inproc_topic(ip_bus *b, const char *name, mr_err *err)
{
    for (ip_topic *t = b->topics; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    size_t cap = b->base.opts.inproc_capacity;
    ip_topic *t = calloc(1, sizeof *t);
    if (t) {
        t->partitions = b->base.opts.partitions;
        t->name = strdup(name);
        t->parts = calloc((size_t)t->partitions, sizeof *t->parts);
    }
    bool ok = t && t->name && t->parts;
    for (int p = 0; ok && p < t->partitions; p++) {
        t->parts[p].chunks = calloc(n_chunks(cap), sizeof *t->parts[p].chunks);
        ok = t->parts[p].chunks != NULL;
    }
    if (!ok) {
        if (t)
            free_topic(t, cap);
        mr_err_set(err, MR_ENOMEM, "inproc bus: no memory for topic %s", name);
        return NULL;
    }
    t->id = ++b->last_topic_id;
    t->next = b->topics;
    b->topics = t;
    return t;
}

uint64_t Mr_bus_inproc_passed(const ip_topic *t, int p)
{
    uint64_t low = UINT64_MAX;
    for (const ip_group *g = t->groups; g; g = g->next)
        if (g->cur[p].next < low)
            low = g->cur[p].next;
    return low;
}

/* The sequence below which a partition's messages may be overwritten: every group is past it
 * and the journal holds it. */
static uint64_t slowest(const ip_topic *t, int p)
{
    uint64_t low = Mr_bus_inproc_passed(t, p);
    /* Without any group yet, nothing has been handled: keep everything for the first one. */
    if (low == UINT64_MAX)
        low = t->parts[p].tail;
    return low < t->parts[p].durable ? low : t->parts[p].durable;
}

ip_entry *Mr_bus_inproc_slot(const ip_bus *b, const ip_part *part, uint64_t seq)
{
    size_t i = (size_t)(seq % b->base.opts.inproc_capacity);
    return &part->chunks[i / IP_CHUNK][i % IP_CHUNK];
}

/* Whether a message between tail and head sits in chunk c. */
static bool chunk_used(const ip_part *part, size_t cap, size_t c)
{
    uint64_t n = part->head - part->tail;
    if (n == 0 || n >= cap)
        return n != 0;
    size_t from = c * IP_CHUNK, to = from + IP_CHUNK < cap ? from + IP_CHUNK : cap;
    size_t s = (size_t)(part->tail % cap);
    size_t e = s + (size_t)n; /* the used slots: [s, e), past cap wrapping to the start */
    return (from < e && s < to) || (from + cap < e && s < to + cap);
}

mr_code Mr_bus_inproc_store(ip_bus *b, ip_part *part, uint64_t seq, char *key, char *value, size_t len,
                            mr_err *err)
{
    size_t cap = b->base.opts.inproc_capacity, c = (size_t)(seq % cap) / IP_CHUNK;
    if (!part->chunks[c]) {
        if (!key)
            return MR_OK;
        if (!(part->chunks[c] = calloc(IP_CHUNK, sizeof(ip_entry))))
            return mr_err_set(err, MR_ENOMEM, "inproc bus: no memory for %d ring slots", IP_CHUNK);
    }
    ip_entry *e = Mr_bus_inproc_slot(b, part, seq);
    b->held -= e->value ? e->len : 0;
    free(e->key);
    free(e->value);
    *e = (ip_entry){key, value, len};
    b->held += value ? len : 0;
    return MR_OK;
}

/* Frees the chunks no message between tail and head uses any more. Called with the mutex held;
 * the journal writer reads only slots between durable and head, which stay. */
static void free_unused_chunks(ip_bus *b, ip_part *part, uint64_t old_tail)
{
    size_t cap = b->base.opts.inproc_capacity;
    /* Only the chunks the tail moved through can have become unused. */
    uint64_t moved = part->tail - old_tail;
    size_t first = (size_t)(old_tail % cap) / IP_CHUNK;
    size_t count = moved >= cap ? n_chunks(cap) : (size_t)(moved / IP_CHUNK) + 2;
    for (size_t k = 0; k < count && k < n_chunks(cap); k++) {
        size_t c = (first + k) % n_chunks(cap);
        if (part->chunks[c] && !chunk_used(part, cap, c)) {
            free(part->chunks[c]);
            part->chunks[c] = NULL;
        }
    }
}

size_t Mr_bus_inproc_held_bytes(mr_bus *bb)
{
    ip_bus *b = (ip_bus *)bb;
    pthread_mutex_lock(&b->mu);
    size_t held = b->held;
    pthread_mutex_unlock(&b->mu);
    return held;
}

void Mr_bus_inproc_release(ip_bus *b, ip_topic *t, int p)
{
    ip_part *part = &t->parts[p];
    uint64_t passed = Mr_bus_inproc_passed(t, p);
    /* Without any group yet, nothing has been handled: keep everything for the first one. */
    if (passed == UINT64_MAX)
        return;
    uint64_t old_tail = part->tail;
    for (; part->tail < passed && part->tail < part->durable; part->tail++)
        Mr_bus_inproc_store(b, part, part->tail, NULL, NULL, 0, NULL);
    if (part->tail != old_tail)
        free_unused_chunks(b, part, old_tail);
}

/* Finds a message this consumer may handle now and marks its partition busy; called with the
 * mutex held. Returns the slot index or -1. */
static long take_next(ip_consumer *c, int partitions)
{
    for (size_t k = 0; k < c->n_slots; k++) {
        size_t slot = (c->rr + k) % c->n_slots;
        ip_sub *s = &c->subs[slot / (size_t)partitions];
        int p = (int)(slot % (size_t)partitions);
        ip_cursor *cur = &s->group->cur[p];
        if (!c->stopped[slot] && !cur->busy && cur->next < s->topic->parts[p].head) {
            cur->busy = true;
            c->rr = slot + 1;
            return (long)slot;
        }
    }
    return -1;
}

/* Hands each waiting consumer that may take a message now one such message (its partition
 * marked busy, as if it took it) and wakes it; called with the mutex held. A message goes to
 * one consumer only, so none wakes for a message another took first. */
static void wake_waiters(ip_bus *b)
{
    int partitions = b->base.opts.partitions;
    for (ip_consumer **at = &b->waiters; *at;) {
        ip_consumer *w = *at;
        long slot = take_next(w, partitions);
        if (slot < 0) {
            at = &w->next_waiter;
            continue;
        }
        *at = w->next_waiter;
        w->waiting = false;
        w->handed = slot;
        b->n_waiters--;
        b->consumer_wakes++;
        pthread_cond_signal(&w->wake);
    }
}

/* Waits for a message handed over by wake_waiters, until the deadline; returns its slot, or -1
 * at the deadline. Called with the mutex held. */
static long wait_for_message(ip_bus *b, ip_consumer *c, long long deadline)
{
    c->next_waiter = b->waiters;
    b->waiters = c;
    b->n_waiters++;
    c->waiting = true;
    c->handed = -1;
    while (c->handed < 0 && Mr_bus_wait(&c->wake, &b->mu, deadline)) {
    }
    if (c->waiting) {
        ip_consumer **at = &b->waiters;
        while (*at != c)
            at = &(*at)->next_waiter;
        *at = c->next_waiter;
        c->waiting = false;
        b->n_waiters--;
    }
    return c->handed;
}

static mr_code ip_publish(mr_bus *bb, const char *topic, const char *key, const char *value, size_t len,
                          mr_err *err)
{
    ip_bus *b = (ip_bus *)bb;
    size_t cap = bb->opts.inproc_capacity;
    char *k = strdup(key);
    char *v = malloc(len + 1);
    if (!k || !v) {
        free(k);
        free(v);
        return mr_err_set(err, MR_ENOMEM, "inproc bus: no memory for a %zu-byte message on %s", len, topic);
    }
    memcpy(v, value, len);
    v[len] = '\0';
    long long deadline = Mr_bus_publish_deadline(bb);
    pthread_mutex_lock(&b->mu);
    ip_topic *t = Mr_bus_inproc_topic(b, topic, err);
    if (!t) {
        pthread_mutex_unlock(&b->mu);
        free(k);
        free(v);
        return MR_ENOMEM;
    }
    int p = mr_bus_partition(key, t->partitions);
    ip_part *part = &t->parts[p];
    while (part->head - slowest(t, p) >= cap) {
        part->space_waiters++;
        bool woken = Mr_bus_wait(&b->space, &b->mu, deadline);
        part->space_waiters--;
        if (!woken) {
            pthread_mutex_unlock(&b->mu);
            free(k);
            free(v);
            return mr_err_set(err, MR_EUNAVAIL,
                              "inproc bus: %s[%d] is full (%zu messages not yet handled by every group) "
                              "after %d ms",
                              topic, p, cap, bb->opts.publish_timeout_ms);
        }
    }
    if (Mr_bus_inproc_store(b, part, part->head, k, v, len, err) != MR_OK) {
        pthread_mutex_unlock(&b->mu);
        free(k);
        free(v);
        return MR_ENOMEM;
    }
    part->head++;
    if (part->head - part->tail > cap)
        part->tail = part->head - cap;
    if (b->journal)
        Mr_bus_journal_published(b);
    else
        part->durable = part->head;
    wake_waiters(b);
    pthread_mutex_unlock(&b->mu);
    return MR_OK;
}

static mr_code ip_flush(mr_bus *bb, int timeout_ms, mr_err *err)
{
    ip_bus *b = (ip_bus *)bb;
    /* In memory a published message is in the ring already: there is nothing to wait for. */
    return b->journal ? Mr_bus_journal_flush(b, timeout_ms, err) : MR_OK;
}

/* An acknowledgement is a cursor move, which the journal commits in the same batch as the
 * messages published before it or a later one: nothing to wait for. */
static mr_code ip_flush_for_ack(mr_bus *bb, int timeout_ms, mr_err *err)
{
    (void)timeout_ms;
    ip_bus *b = (ip_bus *)bb;
    return b->journal ? Mr_bus_journal_failure(b, err) : MR_OK;
}

ip_group *Mr_bus_inproc_group(ip_bus *b, ip_topic *t, const char *name, mr_err *err)
{
    for (ip_group *g = t->groups; g; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    ip_group *g = calloc(1, sizeof *g);
    if (g) {
        g->name = strdup(name);
        g->cur = calloc((size_t)t->partitions, sizeof *g->cur);
    }
    if (!g || !g->name || !g->cur) {
        if (g) {
            free(g->name);
            free(g->cur);
        }
        free(g);
        mr_err_set(err, MR_ENOMEM, "inproc bus: no memory for group %s", name);
        return NULL;
    }
    /* A new group starts at the oldest message the ring still holds. */
    for (int p = 0; p < t->partitions; p++) {
        g->cur[p].next = t->parts[p].tail;
        if (b->journal)
            Mr_bus_journal_moved(b, &g->cur[p]);
    }
    g->next = t->groups;
    t->groups = g;
    return g;
}

static mr_code ip_subscribe(mr_bus *bb, const char *group, const char *const *topics, size_t n,
                            mr_bus_consumer **out, mr_err *err)
{
    ip_bus *b = (ip_bus *)bb;
    ip_consumer *c = calloc(1, sizeof *c);
    if (!c || !(c->subs = calloc(n, sizeof *c->subs)))
        goto nomem;
    c->n_subs = n;
    c->n_slots = n * (size_t)bb->opts.partitions;
    if (!(c->stopped = calloc(c->n_slots, sizeof *c->stopped)))
        goto nomem;
    Mr_bus_cond_init(&c->wake);
    pthread_mutex_lock(&b->mu);
    mr_code rc = MR_OK;
    for (size_t i = 0; i < n && rc == MR_OK; i++) {
        c->subs[i].topic = Mr_bus_inproc_topic(b, topics[i], err);
        c->subs[i].group = c->subs[i].topic ? Mr_bus_inproc_group(b, c->subs[i].topic, group, err) : NULL;
        if (!c->subs[i].group)
            rc = MR_ENOMEM;
    }
    pthread_mutex_unlock(&b->mu);
    if (rc != MR_OK) {
        pthread_cond_destroy(&c->wake);
        free(c->stopped);
        free(c->subs);
        free(c);
        return rc;
    }
    *out = &c->base;
    return MR_OK;
nomem:
    if (c)
        free(c->subs);
    free(c);
    return mr_err_set(err, MR_ENOMEM, "inproc bus: no memory for a consumer of group %s", group);
}

static mr_code ip_poll(mr_bus_consumer *cc, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                       size_t *handled, mr_err *err)
{
    ip_consumer *c = (ip_consumer *)cc;
    ip_bus *b = (ip_bus *)cc->bus;
    int partitions = cc->bus->opts.partitions;
    size_t cap = cc->bus->opts.inproc_capacity;
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    memset(c->stopped, 0, c->n_slots * sizeof *c->stopped);
    mr_code first = MR_OK;
    pthread_mutex_lock(&b->mu);
    long slot = take_next(c, partitions);
    if (slot < 0)
        slot = wait_for_message(b, c, deadline);
    while (slot >= 0) {
        ip_sub *s = &c->subs[(size_t)slot / (size_t)partitions];
        int p = (int)((size_t)slot % (size_t)partitions);
        ip_cursor *cur = &s->group->cur[p];
        /* The entry stays put while we handle it: producers cannot pass the busy cursor. */
        const ip_entry *e = Mr_bus_inproc_slot(b, &s->topic->parts[p], cur->next);
        char id[48];
        snprintf(id, sizeof id, "%d:%llu", p, (unsigned long long)cur->next);
        mr_bus_msg m = {s->topic->name, e->key, e->value, e->len, p, id};
        pthread_mutex_unlock(&b->mu);
        mr_err herr = {0};
        mr_code rc = h(ctx, &m, &herr);
        pthread_mutex_lock(&b->mu);
        cur->busy = false;
        if (rc == MR_OK) {
            ip_part *part = &s->topic->parts[p];
            bool was_full = part->head - slowest(s->topic, p) >= cap;
            cur->next++;
            Mr_bus_inproc_release(b, s->topic, p);
            if (b->journal)
                Mr_bus_journal_moved(b, cur);
            (*handled)++;
            /* Only a step that frees a slot producers wait for wakes them: with many producers
             * behind one mutex, waking them all on every step kept them from the lock. */
            if (part->space_waiters > 0 && was_full && part->head - slowest(s->topic, p) < cap) {
                b->space_wakes++;
                pthread_cond_broadcast(&b->space);
            }
        } else {
            c->stopped[slot] = true;
            Mr_bus_note_failure(err, &first, rc, &m, &herr);
        }
        /* This consumer, running already, takes the next message it may before the waiting
         * ones get what is left: handing it over costs a wake-up, and on a busy machine the
         * woken thread can wait milliseconds for a core. */
        slot = *handled < max ? take_next(c, partitions) : -1;
        wake_waiters(b);
    }
    pthread_mutex_unlock(&b->mu);
    return first;
}

static size_t ip_partitions(mr_bus_consumer *cc)
{
    return ((ip_consumer *)cc)->n_slots;
}

static void ip_consumer_close(mr_bus_consumer *cc)
{
    ip_consumer *c = (ip_consumer *)cc;
    /* The group's position stays with the topic, as committed offsets would: a later consumer
     * of the same group resumes there. */
    pthread_cond_destroy(&c->wake);
    free(c->stopped);
    free(c->subs);
    free(c);
}

static void ip_close(mr_bus *bb)
{
    ip_bus *b = (ip_bus *)bb;
    if (b->journal)
        Mr_bus_journal_close(b);
    for (ip_topic *t = b->topics, *n; t; t = n) {
        n = t->next;
        free_topic(t, bb->opts.inproc_capacity);
    }
    pthread_cond_destroy(&b->space);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static bool ip_before_commit(mr_bus *bb, mr_bus_commit_hook fn, void *ctx)
{
    ip_bus *b = (ip_bus *)bb;
    if (!b->journal)
        return false;
    Mr_bus_journal_hook(b, fn, ctx);
    return true;
}

static mr_code ip_when_durable(mr_bus *bb, mr_bus_durable_fn fn, void *ctx, mr_err *err)
{
    ip_bus *b = (ip_bus *)bb;
    if (b->journal)
        return Mr_bus_journal_when_durable(b, fn, ctx, err);
    /* In memory a published message is as durable as it gets once it is in the ring. */
    fn(ctx, true);
    return MR_OK;
}

static const mr_bus_vtable ip_vtable = {.publish = ip_publish,
                                        .flush = ip_flush,
                                        .flush_for_ack = ip_flush_for_ack,
                                        .subscribe = ip_subscribe,
                                        .poll = ip_poll,
                                        .partitions = ip_partitions,
                                        .consumer_close = ip_consumer_close,
                                        .close = ip_close,
                                        .before_commit = ip_before_commit,
                                        .when_durable = ip_when_durable};

mr_code Mr_bus_inproc_open(const mr_bus *base, mr_bus **out, mr_err *err)
{
    ip_bus *b = calloc(1, sizeof *b);
    if (!b)
        return mr_err_set(err, MR_ENOMEM, "inproc bus: no memory");
    b->base = *base;
    b->base.vt = &ip_vtable;
    pthread_mutex_init(&b->mu, NULL);
    Mr_bus_cond_init(&b->space);
    if (base->url.path[0]) {
        mr_code rc = Mr_bus_journal_open(b, base->url.path, err);
        if (rc != MR_OK) {
            ip_close(&b->base);
            return rc;
        }
    }
    *out = &b->base;
    return MR_OK;
}
