/* bus_internal.h -- what the bus front end and its backends share; not part of the public API.
 *
 * Functions shared between files of libs/bus are named Mr_bus_* (curl's Curl_* tier): a name that
 * starts with a capital is internal to the library, mr_bus_* is the public API in include/. */
#ifndef MINDROOM_BUS_INTERNAL_H
#define MINDROOM_BUS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include "mindroom/bus.h"
#include "mindroom/clock.h"
#include "mindroom/url_options.h"

/* A parsed MINDROOM_BUS_URL. */
typedef enum mr_bus_kind { MR_BUS_INPROC, MR_BUS_KAFKA, MR_BUS_REDIS } mr_bus_kind;

typedef struct mr_bus_url {
    mr_bus_kind kind;
    char display[512];    /* the URL with any password masked: safe for messages */
    char brokers[512];    /* kafka: "host:port,host:port" */
    char host[256];       /* redis */
    int port;             /* redis */
    int db;               /* redis */
    char user[128];       /* redis ACL user, may be empty */
    char password[256];   /* redis, may be empty; never printed */
    char path[512];       /* inproc: the journal file, empty for memory only */
    int partitions;       /* redis: ?partitions=N, for topics this bus creates; 0 when not given */
    int fetch_wait_ms;    /* kafka: ?fetch_wait_ms=N, consumers' fetch.wait.max.ms; 0 when not given */
    char prefix[MR_URL_PREFIX_MAX + 1]; /* kafka, redis: ?prefix=, the instance's namespace; "" for none */
} mr_bus_url;

mr_code Mr_bus_url_parse(const char *url, mr_bus_url *out, mr_err *err);

/* Each backend's bus and consumer structs start with these, so the front end can dispatch. */
typedef struct mr_bus_vtable {
    mr_code (*publish)(mr_bus *b, const char *topic, const char *key, const char *value, size_t len,
                       mr_err *err);
    mr_code (*flush)(mr_bus *b, int timeout_ms, mr_err *err);
    /* NULL: acknowledgements are not ordered after publishes, mr_bus_flush_for_ack flushes */
    mr_code (*flush_for_ack)(mr_bus *b, int timeout_ms, mr_err *err);
    mr_code (*subscribe)(mr_bus *b, const char *group, const char *const *topics, size_t n_topics,
                         mr_bus_consumer **out, mr_err *err);
    mr_code (*poll)(mr_bus_consumer *c, int timeout_ms, size_t max, mr_bus_handler h, void *ctx,
                    size_t *handled, mr_err *err);
    size_t (*partitions)(mr_bus_consumer *c);
    void (*consumer_close)(mr_bus_consumer *c);
    void (*close)(mr_bus *b);
    mr_code (*ping)(mr_bus *b, int timeout_ms, mr_err *err); /* NULL: always reachable */
    bool (*before_commit)(mr_bus *b, mr_bus_commit_hook fn, void *ctx); /* NULL: no journal */
    /* NULL: mr_bus_when_durable flushes and calls fn */
    mr_code (*when_durable)(mr_bus *b, mr_bus_durable_fn fn, void *ctx, mr_err *err);
} mr_bus_vtable;

struct mr_bus {
    const mr_bus_vtable *vt;
    mr_bus_options opts;   /* defaults filled in; opts.client_id is NULL: use client_id */
    char client_id[128];
    mr_bus_url url;
};

struct mr_bus_consumer {
    mr_bus *bus;
    char group[256];
};

/* Backend constructors: allocate the backend's struct, which starts with a copy of base (the
 * parsed URL and options with defaults), and set its vtable. */
mr_code Mr_bus_inproc_open(const mr_bus *base, mr_bus **out, mr_err *err);
mr_code Mr_bus_kafka_open(const mr_bus *base, mr_bus **out, mr_err *err);
mr_code Mr_bus_redis_open(const mr_bus *base, mr_bus **out, mr_err *err);

/* Turns a handler's failure into poll's error: the handler's code, and "handling
 * <topic>[<partition>] <id>: <its message>". Keeps the first failure of a poll. */
void Mr_bus_note_failure(mr_err *err, mr_code *first, mr_code rc, const mr_bus_msg *m,
                         const mr_err *herr);

/* Publishing threads and their delivery failures (publishers.c): a backend gives each message
 * the record of the thread that published it, records a failure found later on that record, and
 * its flush returns the calling thread's failure only. */
typedef struct mr_bus_publisher mr_bus_publisher;
typedef struct mr_bus_publishers {
    pthread_mutex_t mu;
    mr_bus_publisher *list;
} mr_bus_publishers;

void Mr_bus_publishers_init(mr_bus_publishers *ps);
void Mr_bus_publishers_free(mr_bus_publishers *ps);
/* The calling thread's record, made on its first publish; NULL when out of memory. */
mr_bus_publisher *Mr_bus_publisher_self(mr_bus_publishers *ps);
/* Keeps why as p's failure unless p has one since its last flush already. */
void Mr_bus_publisher_failed(mr_bus_publishers *ps, mr_bus_publisher *p, const mr_err *why);
/* The calling thread's first failure since its last flush, which it clears; MR_OK without one. */
mr_code Mr_bus_publisher_take(mr_bus_publishers *ps, mr_err *err);

/* Topics a backend has looked up or created already (known_topics.c); the caller locks. */
typedef struct mr_bus_known_topic {
    char *name;
    int partitions;           /* 0 where the backend does not count them */
    struct mr_bus_known_topic *next;
} mr_bus_known_topic;

/* name's entry; NULL while it is not known. */
const mr_bus_known_topic *Mr_bus_topic_find(const mr_bus_known_topic *list, const char *name);
/* Adds name to *list; MR_ENOMEM names b's URL and the topic. */
mr_code Mr_bus_topic_remember(const mr_bus *b, mr_bus_known_topic **list, const char *name, int partitions,
                              mr_err *err);
void Mr_bus_topics_free(mr_bus_known_topic *list);

/* The longest one poll's handlers may run before the consumer is taken for hung and its
 * partitions go to the others of its group (Kafka's max.poll.interval.ms default). */
#define MR_BUS_MAX_POLL_MS 300000

/* Initializes cv on the monotonic clock, which Mr_bus_wait's deadlines are on. */
void Mr_bus_cond_init(pthread_cond_t *cv);
/* Waits on cv until deadline on mr_clock_mono_ms (LLONG_MAX: without limit); false when the
 * deadline passed. */
bool Mr_bus_wait(pthread_cond_t *cv, pthread_mutex_t *mu, long long deadline);

/* What is left until a deadline on mr_clock_mono_ms (never negative). */
int Mr_bus_remaining_ms(long long deadline);
/* The deadline a publish waits for room until: LLONG_MAX when it waits without limit. */
long long Mr_bus_publish_deadline(const mr_bus *b);

#endif
