/* inproc_internal.h -- the in-process bus's rings and groups, shared by inproc.c and its journal. */
#ifndef MINDROOM_INPROC_INTERNAL_H
#define MINDROOM_INPROC_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include "bus_internal.h"

typedef struct ip_entry {
    char *key;
    char *value; /* NUL-terminated copy */
    size_t len;
} ip_entry;

typedef struct ip_cursor {
    uint64_t next; /* sequence of the next message to handle */
    bool busy;     /* a handler of the group runs on message `next` */
    bool dirty;    /* journal: next moved since the journal recorded it */
    bool writing;  /* journal writer: its current batch records `snap` */
    uint64_t snap;
} ip_cursor;

typedef struct ip_group {
    char *name;
    ip_cursor *cur; /* one per partition */
    struct ip_group *next;
} ip_group;

/* A ring's slots come in chunks of this many, each allocated when a message first lands in it
 * and freed once no message between tail and head uses it: an idle partition costs its chunk
 * table and at most one chunk, not inproc_capacity slots. */
#define IP_CHUNK 64

typedef struct ip_part {
    ip_entry **chunks; /* ceil(inproc_capacity / IP_CHUNK) chunks, NULL until used */
    uint64_t head;    /* sequence the next published message gets */
    uint64_t tail;    /* the oldest sequence the ring holds: what some group has not handled yet,
                         or without groups the last inproc_capacity messages */
    uint64_t durable; /* the messages below are committed to the journal (head in memory): only
                         these may be freed or overwritten, since the journal writer reads the
                         rest from the ring */
    int space_waiters; /* producers waiting for a slot of this partition */
    /* The journal writer's own: what its current batch inserts [snap_from, snap_to) and trims
     * (rows below snap_low, which every group has passed), and what is trimmed already. */
    uint64_t snap_from, snap_to, snap_low, trimmed;
} ip_part;

typedef struct ip_topic {
    char *name;
    int partitions;
    ip_part *parts;
    ip_group *groups;
    long long id;           /* the topic's number in the journal */
    bool stored;            /* journal writer: the topic's row is committed */
    ip_group *snap_groups;  /* journal writer: the groups its current batch covers */
    struct ip_topic *next;
} ip_topic;

typedef struct ip_journal ip_journal;

typedef struct ip_bus {
    mr_bus base;
    pthread_mutex_t mu;
    struct ip_consumer *waiters; /* consumers waiting in a poll for a message they may take */
    size_t n_waiters;
    pthread_cond_t space; /* a slot was freed in a partition a producer waits on */
    uint64_t space_wakes; /* broadcasts on space: how often waiting producers were woken */
    uint64_t consumer_wakes; /* signals to waiting consumers */
    ip_topic *topics;     /* newest first; a topic lives until the bus closes */
    long long last_topic_id;
    size_t held;          /* bytes of message values the rings hold */
    ip_journal *journal;  /* NULL: memory only */
} ip_bus;

/* Find or create a topic, or a group of a topic (starting at the oldest message the ring holds);
 * called with the mutex held. */
ip_topic *Mr_bus_inproc_topic(ip_bus *b, const char *name, mr_err *err);
ip_group *Mr_bus_inproc_group(ip_bus *b, ip_topic *t, const char *name, mr_err *err);
/* Puts a message (key and value now owned by the ring) at sequence seq of a partition, freeing
 * what the slot held; called with the mutex held. MR_ENOMEM (nothing taken) when its chunk
 * cannot be allocated; storing NULL (a release) never fails. */
mr_code Mr_bus_inproc_store(ip_bus *b, ip_part *part, uint64_t seq, char *key, char *value, size_t len,
                            mr_err *err);
/* The slot of a sequence between a partition's tail and head: its chunk stays allocated, and the
 * slot in place, as long as the sequence is there. */
ip_entry *Mr_bus_inproc_slot(const ip_bus *b, const ip_part *part, uint64_t seq);
/* Frees the messages of a partition every group has handled and the journal holds; called with
 * the mutex held. */
void Mr_bus_inproc_release(ip_bus *b, ip_topic *t, int p);
/* Bytes of message values the bus holds: those some group has not handled yet, and without
 * groups the last inproc_capacity messages of each partition. */
size_t Mr_bus_inproc_held_bytes(mr_bus *b);
/* The sequence every group of t has passed on partition p; UINT64_MAX without groups. Called
 * with the mutex held. */
uint64_t Mr_bus_inproc_passed(const ip_topic *t, int p);

/* The journal (inproc_journal.c). Open creates or replays the file at path into b, whose topics
 * are empty, and starts the writer thread; close commits what is left and stops it. */
mr_code Mr_bus_journal_open(ip_bus *b, const char *path, mr_err *err);
void Mr_bus_journal_close(ip_bus *b);
/* Called with the mutex held: a message was added to a ring; a cursor moved (an acknowledgement,
 * or a new group's start). */
void Mr_bus_journal_published(ip_bus *b);
void Mr_bus_journal_moved(ip_bus *b, ip_cursor *cur);
/* Sets the function the writer calls before each commit (mr_bus_before_commit). */
void Mr_bus_journal_hook(ip_bus *b, mr_bus_commit_hook fn, void *ctx);
/* Waits until what was published and acknowledged before the call is committed. */
mr_code Mr_bus_journal_flush(ip_bus *b, int timeout_ms, mr_err *err);
/* Queues fn for the writer to call once the messages published before the call are committed
 * (mr_bus_when_durable). */
mr_code Mr_bus_journal_when_durable(ip_bus *b, mr_bus_durable_fn fn, void *ctx, mr_err *err);
/* The last batch's failure (it is tried again), MR_OK when it committed; does not wait. */
mr_code Mr_bus_journal_failure(ip_bus *b, mr_err *err);

#endif
