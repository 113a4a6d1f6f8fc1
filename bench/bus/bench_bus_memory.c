/* bench_bus_memory.c -- Redis memory while MESSAGES 1 KiB messages go through the Redis bus.
 *
 * Usage: bench_bus_memory PORT MESSAGES
 * PORT is a redis-server on 127.0.0.1 given to this run alone (db 0 is the bus). One producer
 * and one consumer thread (its own group) in this process; the consumer keeps up, since what a
 * group has not acknowledged must stay. The producer publishes in tenths; after each it flushes,
 * waits until the consumer handled all of it, and reads Redis's `used_memory` (INFO memory) and
 * the entries the bus's streams hold (XLEN of every `mr:bus:*` stream). A bus that trims its
 * streams once every group has passed keeps both flat, within what arrives in one trim interval
 * (lease_ms/3); one that never trims grows by the messages' bytes. Prints one line per tenth:
 * messages so far, used_memory in MiB, stream entries; then messages/s over the whole run.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/bus.h"
#include "mindroom/clock.h"

#define MSG_SIZE 1024
#define STEPS 10
#define WAIT_MS 120000

typedef struct counter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long handled;
    bool stop;
} counter;

typedef struct consumer_arg {
    counter *n;
    mr_bus_consumer *c;
} consumer_arg;

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)m;
    (void)err;
    counter *n = ctx;
    pthread_mutex_lock(&n->mu);
    n->handled++;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    return MR_OK;
}

static void *consume(void *arg)
{
    consumer_arg *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->n->mu);
        bool stop = a->n->stop;
        pthread_mutex_unlock(&a->n->mu);
        if (stop)
            return NULL;
        size_t handled = 0;
        mr_err err = {0};
        if (mr_bus_poll(a->c, 100, 500, on_message, a->n, &handled, &err) != MR_OK)
            fprintf(stderr, "bench_bus_memory: poll: %s\n", err.msg);
    }
}

/* Waits until the consumer handled `until` messages; false after WAIT_MS without that. */
static bool wait_handled(counter *n, long until)
{
    struct timespec deadline = mr_clock_after_ms(CLOCK_REALTIME, WAIT_MS);
    pthread_mutex_lock(&n->mu);
    while (n->handled < until && pthread_cond_timedwait(&n->cv, &n->mu, &deadline) == 0) {
    }
    bool done = n->handled >= until;
    pthread_mutex_unlock(&n->mu);
    if (!done)
        fprintf(stderr, "bench_bus_memory: the consumer did not handle %ld messages within %d s\n", until,
                WAIT_MS / 1000);
    return done;
}

/* used_memory in bytes, or -1. */
static long long used_memory(redisContext *r)
{
    redisReply *rep = redisCommand(r, "INFO memory");
    const char *at = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "used_memory:") : NULL;
    long long bytes = at ? atoll(at + strlen("used_memory:")) : -1;
    freeReplyObject(rep);
    return bytes;
}

/* Entries held by the bus's streams (db 0), or -1. */
static long long stream_entries(redisContext *r)
{
    long long total = 0;
    char cursor[32] = "0";
    do {
        redisReply *rep = redisCommand(r, "SCAN %s MATCH mr:bus:* TYPE stream COUNT 1000", cursor);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            freeReplyObject(rep);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            redisReply *len = redisCommand(r, "XLEN %s", rep->element[1]->element[i]->str);
            total += len && len->type == REDIS_REPLY_INTEGER ? len->integer : 0;
            freeReplyObject(len);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    return total;
}

static bool report(redisContext *r, long sent)
{
    long long bytes = used_memory(r), entries = stream_entries(r);
    if (bytes < 0 || entries < 0) {
        fprintf(stderr, "bench_bus_memory: INFO memory or XLEN failed: %s\n", r->err ? r->errstr : "bad reply");
        return false;
    }
    printf("%10ld %12.2f %10lld\n", sent, (double)bytes / (1024.0 * 1024.0), entries);
    fflush(stdout);
    return true;
}

static bool publish_range(mr_bus *bus, long from, long to)
{
    char key[64], value[MSG_SIZE];
    memset(value, 'x', sizeof value);
    for (long s = from; s < to; s++) {
        snprintf(key, sizeof key, "!room%ld:example.org", s % 64);
        mr_err err = {0};
        if (mr_bus_publish(bus, "bench-memory", key, value, sizeof value, &err) != MR_OK) {
            fprintf(stderr, "bench_bus_memory: publish: %s\n", err.msg);
            return false;
        }
    }
    mr_err err = {0};
    if (mr_bus_flush(bus, WAIT_MS, &err) != MR_OK) {
        fprintf(stderr, "bench_bus_memory: flush: %s\n", err.msg);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    int port = argc == 3 ? atoi(argv[1]) : 0;
    long n = argc == 3 ? atol(argv[2]) : 0;
    if (port <= 0 || n < STEPS) {
        fprintf(stderr, "usage: %s PORT MESSAGES (at least %d)\n", argv[0], STEPS);
        return 2;
    }
    redisContext *r = redisConnect("127.0.0.1", port);
    if (!r || r->err) {
        fprintf(stderr, "bench_bus_memory: redis on port %d: %s\n", port, r ? r->errstr : "no memory");
        redisFree(r);
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    counter cnt = {.handled = 0};
    pthread_mutex_init(&cnt.mu, NULL);
    pthread_cond_init(&cnt.cv, NULL);
    mr_bus_options opts = {.client_id = "bench-memory"};
    mr_bus *bus = NULL;
    mr_bus_consumer *c = NULL;
    mr_err err = {0};
    const char *topics[] = {"bench-memory"};
    if (mr_bus_open(url, &opts, &bus, &err) != MR_OK ||
        mr_bus_subscribe(bus, "bench-memory", topics, 1, &c, &err) != MR_OK) {
        fprintf(stderr, "bench_bus_memory: %s\n", err.msg);
        mr_bus_close(bus);
        redisFree(r);
        return 1;
    }
    consumer_arg arg = {&cnt, c};
    pthread_t t;
    bool started = pthread_create(&t, NULL, consume, &arg) == 0, ok = started;
    printf("%10s %12s %10s\n", "messages", "used_MiB", "entries");
    ok = ok && report(r, 0);
    long long t0 = mr_clock_mono_ns();
    for (int step = 1; step <= STEPS && ok; step++) {
        long to = n / STEPS * step;
        ok = publish_range(bus, n / STEPS * (step - 1), to) && wait_handled(&cnt, to) && report(r, to);
    }
    double secs = (double)(mr_clock_mono_ns() - t0) / 1e9;
    pthread_mutex_lock(&cnt.mu);
    cnt.stop = true;
    pthread_mutex_unlock(&cnt.mu);
    if (started)
        pthread_join(t, NULL);
    mr_bus_consumer_close(c);
    mr_bus_close(bus);
    redisFree(r);
    if (ok)
        printf("throughput: %.0f messages/s (publish to handled, one producer, one consumer)\n",
               (double)(n / STEPS * STEPS) / secs);
    pthread_cond_destroy(&cnt.cv);
    pthread_mutex_destroy(&cnt.mu);
    return ok ? 0 : 1;
}
