/* bench_bus.c -- bus throughput and publish-to-handle latency with 1 KiB messages.
 *
 * Usage: bench_bus URL TOPIC MESSAGES
 * URL is any bus URL; for the inproc journal (inproc:///path) give a path that does not exist
 * yet, since the group of an earlier run would stay in the file and hold its messages back.
 * One producer and one consumer (a thread, its own group) in this process. Phase 1 publishes
 * MESSAGES as fast as publish allows and measures messages/s from the first publish to the last
 * handled. Phase 2 publishes 2000 more at one per millisecond and measures each message's time
 * from publish to handler (p50, p99), the latency of a bus that is not saturated. Phase 3 publishes
 * 500 more one at a time, each flushed and waited for until its handler ran before the next, as
 * a message goes through the services one hop after another: p50 and p99 of that hop. Prints one
 * CSV line: msgs_per_s,p50_ms,p99_ms,hop_p50_ms,hop_p99_ms.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mindroom/bus.h"
#include "mindroom/clock.h"

#define MSG_SIZE 1024
#define PACED 2000
#define ONE_BY_ONE 500

typedef struct bench {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long handled;
    long want;       /* wake the main thread when handled reaches this */
    double *lat_ms;  /* per seq */
    long n;
    int owned; /* the consumer owns partitions: its group has formed */
    int stop;
} bench;

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)err;
    bench *b = ctx;
    long long t = mr_clock_mono_ns();
    long seq = -1;
    long long sent = 0;
    if (sscanf(m->value, "{\"v\":1,\"seq\":%ld,\"t\":%lld", &seq, &sent) != 2 || seq < 0 || seq >= b->n)
        return MR_OK;
    pthread_mutex_lock(&b->mu);
    b->lat_ms[seq] = (double)(t - sent) / 1e6;
    if (++b->handled >= b->want)
        pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return MR_OK;
}

typedef struct consumer_arg {
    bench *b;
    mr_bus_consumer *c;
} consumer_arg;

static void *consume(void *arg)
{
    consumer_arg *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->b->mu);
        int stop = a->b->stop;
        pthread_mutex_unlock(&a->b->mu);
        if (stop)
            return NULL;
        size_t handled = 0;
        mr_err err = {0};
        if (mr_bus_poll(a->c, 100, 500, on_message, a->b, &handled, &err) != MR_OK)
            fprintf(stderr, "bench_bus: poll: %s\n", err.msg);
        if (mr_bus_consumer_partitions(a->c) > 0) {
            pthread_mutex_lock(&a->b->mu);
            a->b->owned = 1;
            pthread_cond_signal(&a->b->cv);
            pthread_mutex_unlock(&a->b->mu);
        }
    }
}

static int publish(mr_bus *bus, const char *topic, long seq)
{
    char key[64], value[MSG_SIZE + 1];
    snprintf(key, sizeof key, "!room%ld:example.org", seq % 64);
    int len = snprintf(value, sizeof value, "{\"v\":1,\"seq\":%ld,\"t\":%lld,\"pad\":\"", seq, mr_clock_mono_ns());
    memset(value + len, 'x', MSG_SIZE - (size_t)len - 2);
    memcpy(value + MSG_SIZE - 2, "\"}", 2);
    mr_err err = {0};
    if (mr_bus_publish(bus, topic, key, value, MSG_SIZE, &err) != MR_OK) {
        fprintf(stderr, "bench_bus: publish: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Flushes and waits until `until` messages were handled; -1 after a minute without that. */
static int finish_phase(bench *b, mr_bus *bus, long until)
{
    mr_err err = {0};
    if (mr_bus_flush(bus, 60000, &err) != MR_OK) {
        fprintf(stderr, "bench_bus: flush: %s\n", err.msg);
        return -1;
    }
    struct timespec deadline = mr_clock_after_ms(CLOCK_REALTIME, 60000);
    pthread_mutex_lock(&b->mu);
    b->want = until;
    while (b->handled < until && pthread_cond_timedwait(&b->cv, &b->mu, &deadline) == 0) {
    }
    long handled = b->handled;
    pthread_mutex_unlock(&b->mu);
    if (handled < until) {
        fprintf(stderr, "bench_bus: only %ld of %ld messages handled\n", handled, until);
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 4 || atol(argv[3]) < 1) {
        fprintf(stderr, "usage: %s URL TOPIC MESSAGES\n", argv[0]);
        return 2;
    }
    const char *url = argv[1], *topic = argv[2];
    long n = atol(argv[3]);
    bench b = {.n = n + PACED + ONE_BY_ONE};
    b.lat_ms = calloc((size_t)b.n, sizeof *b.lat_ms);
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);

    mr_bus_options opts = {.client_id = "bench", .inproc_capacity = 4096};
    mr_bus *bus = NULL;
    mr_bus_consumer *c = NULL;
    mr_err err = {0};
    char group[64];
    snprintf(group, sizeof group, "bench-%ld", (long)getpid());
    const char *topics[] = {topic};
    if (!b.lat_ms || mr_bus_open(url, &opts, &bus, &err) != MR_OK ||
        mr_bus_subscribe(bus, group, topics, 1, &c, &err) != MR_OK) {
        fprintf(stderr, "bench_bus: %s\n", err.msg[0] ? err.msg : "no memory");
        return 1;
    }
    consumer_arg arg = {&b, c};
    pthread_t t;
    pthread_create(&t, NULL, consume, &arg);

    /* Joining a group takes seconds (Kafka's initial rebalance delay): not part of throughput. */
    struct timespec join_deadline = mr_clock_after_ms(CLOCK_REALTIME, 60000);
    pthread_mutex_lock(&b.mu);
    while (!b.owned && pthread_cond_timedwait(&b.cv, &b.mu, &join_deadline) == 0) {
    }
    int rc = b.owned ? 0 : -1;
    pthread_mutex_unlock(&b.mu);
    if (rc != 0)
        fprintf(stderr, "bench_bus: the consumer got no partitions within 60 s\n");
    long long t0 = mr_clock_mono_ns();
    for (long s = 0; s < n && rc == 0; s++)
        rc = publish(bus, topic, s);
    if (rc == 0)
        rc = finish_phase(&b, bus, n);
    double secs = (double)(mr_clock_mono_ns() - t0) / 1e9;

    for (long s = n; s < n + PACED && rc == 0; s++) {
        rc = publish(bus, topic, s);
        mr_clock_sleep_ms(1);
    }
    if (rc == 0)
        rc = finish_phase(&b, bus, n + PACED);
    for (long s = n + PACED; s < n + PACED + ONE_BY_ONE && rc == 0; s++) {
        rc = publish(bus, topic, s);
        if (rc == 0)
            rc = finish_phase(&b, bus, s + 1);
    }

    pthread_mutex_lock(&b.mu);
    b.stop = 1;
    pthread_mutex_unlock(&b.mu);
    pthread_join(t, NULL);
    mr_bus_consumer_close(c);
    mr_bus_close(bus);
    if (rc == 0) {
        double *paced = b.lat_ms + n, *hop = paced + PACED;
        qsort(paced, PACED, sizeof *paced, cmp_double);
        qsort(hop, ONE_BY_ONE, sizeof *hop, cmp_double);
        printf("%.0f,%.2f,%.2f,%.2f,%.2f\n", (double)n / secs, paced[PACED / 2], paced[PACED * 99 / 100],
               hop[ONE_BY_ONE / 2], hop[ONE_BY_ONE * 99 / 100]);
    }
    free(b.lat_ms);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    return rc == 0 ? 0 : 1;
}
