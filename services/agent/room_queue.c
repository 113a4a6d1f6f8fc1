/* room_queue.c -- one FIFO per room, and a pool of threads that takes the next job of the room
 * that has waited longest and is not already running: order within a room, rooms side by side.
 * A thread starts when a room is ready and no thread is idle (up to `workers`), and ends after
 * idle_ms without work, so an idle agent holds one thread, not `workers` stacks and arenas. */
#include "room_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/thread_name.h"

#define IDLE_MS_DEFAULT 30000

/* A worker index's thread: none yet, running, or ended by itself and not joined yet. */
enum { SLOT_FREE, SLOT_LIVE, SLOT_ENDED };

typedef struct rq_room rq_room;

typedef struct rq_job {
    struct rq_job *next;
    void *job;
    rq_room *room;
    long long due_ms;            /* parked: when it goes back to its room (monotonic) */
    bool holds_place;            /* parked at the head of its room: the room waits for it */
    bool ahead;                  /* queued by room_queue_push_ahead and not yet taken */
} rq_job;

struct rq_room {
    rq_room *next;               /* all rooms with jobs */
    rq_room *next_ready;
    char *name;
    rq_job *head, *tail;         /* queued */
    size_t refs;                 /* jobs queued, parked or running */
    size_t ahead;                /* queued jobs pushed ahead: the first `ahead` of the queue */
    bool running, ready, held;   /* held: a job parked with its place kept */
};

struct room_queue {
    room_queue_opts o;
    pthread_mutex_t lock;
    pthread_cond_t wake;         /* on CLOCK_MONOTONIC */
    pthread_t *threads;
    unsigned char *slots;        /* per worker index */
    size_t live, idle;           /* threads running; those of them not running a job */
    size_t n_ready;              /* rooms in the ready list */
    bool stopping;
    rq_room *rooms;
    rq_room *ready_head, *ready_tail;
    rq_job *parked;
    size_t waiting;
    size_t running;              /* jobs running now */
};

typedef struct rq_thread {
    room_queue *q;
    size_t index;
} rq_thread;

static void make_ready(room_queue *q, rq_room *r)
{
    if (r->running || r->ready || r->held || !r->head)
        return;
    r->ready = true;
    q->n_ready++;
    r->next_ready = NULL;
    if (q->ready_tail)
        q->ready_tail->next_ready = r;
    else
        q->ready_head = r;
    q->ready_tail = r;
}

static void enqueue(room_queue *q, rq_job *j)
{
    rq_room *r = j->room;
    j->next = NULL;
    if (r->tail)
        r->tail->next = j;
    else
        r->head = j;
    r->tail = j;
    make_ready(q, r);
}

/* Puts j behind the room's jobs pushed ahead, before the others. */
static void insert_behind_ahead(room_queue *q, rq_job *j)
{
    rq_room *r = j->room;
    rq_job **at = &r->head, *before = NULL;
    for (size_t i = 0; i < r->ahead && *at; i++) {
        before = *at;
        at = &(*at)->next;
    }
    j->next = *at;
    *at = j;
    if (r->tail == before)
        r->tail = j;
    make_ready(q, r);
}

static void room_unref(room_queue *q, rq_room *r)
{
    if (--r->refs > 0)
        return;
    for (rq_room **p = &q->rooms; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    free(r->name);
    free(r);
}

/* Moves parked jobs that are due back to their rooms; returns ms until the next is due, or -1. */
static long long unpark(room_queue *q, long long now)
{
    long long next = -1;
    for (rq_job **p = &q->parked; *p;) {
        rq_job *j = *p;
        if (j->due_ms <= now) {
            *p = j->next;
            if (j->holds_place) {
                /* Back in its place, before what queued meanwhile (but for older jobs pushed
                 * ahead). */
                j->holds_place = false;
                j->room->held = false;
                insert_behind_ahead(q, j);
            } else {
                enqueue(q, j);
            }
            continue;
        }
        if (next < 0 || j->due_ms - now < next)
            next = j->due_ms - now;
        p = &j->next;
    }
    return next;
}

static rq_job *take(room_queue *q)
{
    rq_room *r = q->ready_head;
    q->ready_head = r->next_ready;
    if (!q->ready_head)
        q->ready_tail = NULL;
    r->ready = false;
    q->n_ready--;
    r->running = true;
    rq_job *j = r->head;
    r->head = j->next;
    if (!r->head)
        r->tail = NULL;
    if (j->ahead) {
        j->ahead = false;
        r->ahead--;
    }
    q->waiting--;
    q->running++;
    return j;
}

static void finish(room_queue *q, rq_job *j, long long park_ms)
{
    rq_room *r = j->room;
    r->running = false;
    q->running--;
    j->holds_place = park_ms < 0;
    r->held = j->holds_place && !q->stopping;
    /* Before the room may be freed: a room with jobs queued is still referenced by them. */
    make_ready(q, r);
    if (park_ms != 0 && !q->stopping) {
        j->due_ms = mr_clock_mono_ms() + (park_ms < 0 ? -park_ms : park_ms);
        j->next = q->parked;
        q->parked = j;
        q->waiting++;
    } else {
        q->o.free_job(j->job);
        free(j);
        room_unref(q, r);
    }
    /* Another thread may wait on a room this one just freed, or sleep past the parked job. */
    pthread_cond_broadcast(&q->wake);
}

static void *worker_main(void *arg);

/* Starts a thread on a free worker index; called with the lock held. */
static int spawn(room_queue *q)
{
    size_t i = 0;
    while (i < q->o.workers && q->slots[i] == SLOT_LIVE)
        i++;
    if (i == q->o.workers)
        return EAGAIN;
    /* It unlocked for the last time before it ended: joining it needs no lock. */
    if (q->slots[i] == SLOT_ENDED)
        pthread_join(q->threads[i], NULL);
    q->slots[i] = SLOT_FREE;
    rq_thread *t = malloc(sizeof *t);
    if (!t)
        return ENOMEM;
    *t = (rq_thread){.q = q, .index = i};
    int e = pthread_create(&q->threads[i], NULL, worker_main, t);
    if (e) {
        free(t);
        return e;
    }
    q->slots[i] = SLOT_LIVE;
    q->live++;
    q->idle++;
    return 0;
}

/* More rooms ready than idle threads to take them: start one, within the bound. A thread that
 * cannot start leaves the job to the running ones (there is always one). */
static void grow(room_queue *q)
{
    if (!q->stopping && q->n_ready > q->idle && q->live < q->o.workers)
        spawn(q);
}

static void *worker_main(void *arg)
{
    rq_thread *t = arg;
    mr_thread_name("agent-turn");
    room_queue *q = t->q;
    pthread_mutex_lock(&q->lock);
    long long idle_since = mr_clock_mono_ms();
    bool ended = false;
    while (!q->stopping) {
        long long now = mr_clock_mono_ms();
        long long next = unpark(q, now);
        if (q->ready_head) {
            rq_job *j = take(q);
            q->idle--;
            grow(q);
            pthread_mutex_unlock(&q->lock);
            long long park = q->o.run(q->o.ctx, t->index, j->job);
            pthread_mutex_lock(&q->lock);
            finish(q, j, park);
            q->idle++;
            idle_since = mr_clock_mono_ms();
            continue;
        }
        /* The last thread stays, and so does one while jobs are parked, to bring them back. */
        bool may_end = q->live > 1 && !q->parked;
        long long left = q->o.idle_ms - (now - idle_since);
        if (may_end && left <= 0) {
            ended = true;
            break;
        }
        long long wait = next;
        if (may_end && (wait < 0 || left < wait))
            wait = left;
        if (wait >= 0) {
            struct timespec until = mr_clock_after_ms(CLOCK_MONOTONIC, wait);
            pthread_cond_timedwait(&q->wake, &q->lock, &until);
        } else {
            pthread_cond_wait(&q->wake, &q->lock);
        }
    }
    q->live--;
    q->idle--;
    if (ended)
        q->slots[t->index] = SLOT_ENDED;
    pthread_mutex_unlock(&q->lock);
    free(t);
    return NULL;
}

mr_code room_queue_start(const room_queue_opts *opts, room_queue **out, mr_err *err)
{
    *out = NULL;
    if (opts->workers == 0)
        return mr_err_set(err, MR_EINVAL, "a room queue needs at least one thread");
    room_queue *q = calloc(1, sizeof *q);
    pthread_condattr_t attr;
    if (!q || !(q->threads = calloc(opts->workers, sizeof *q->threads)) ||
        !(q->slots = calloc(opts->workers, sizeof *q->slots))) {
        if (q)
            free(q->threads);
        free(q);
        return mr_err_set(err, MR_ENOMEM, "out of memory starting %zu turn threads", opts->workers);
    }
    q->o = *opts;
    if (q->o.idle_ms <= 0)
        q->o.idle_ms = IDLE_MS_DEFAULT;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wake, &attr);
    pthread_condattr_destroy(&attr);
    /* The first thread, which never ends idle: a job always has one to run on. */
    pthread_mutex_lock(&q->lock);
    int e = spawn(q);
    pthread_mutex_unlock(&q->lock);
    if (e) {
        room_queue_stop(q);
        return e == ENOMEM ? mr_err_set(err, MR_ENOMEM, "out of memory starting a turn thread")
                           : mr_err_errno(err, MR_EINTERNAL, e, "starting a turn thread");
    }
    *out = q;
    return MR_OK;
}

static rq_room *room_of(room_queue *q, const char *name)
{
    for (rq_room *r = q->rooms; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    rq_room *r = calloc(1, sizeof *r);
    if (r && !(r->name = strdup(name))) {
        free(r);
        r = NULL;
    }
    if (r) {
        r->next = q->rooms;
        q->rooms = r;
    }
    return r;
}

static mr_code push(room_queue *q, const char *room, void *job, bool ahead, mr_err *err)
{
    rq_job *j = calloc(1, sizeof *j);
    if (!j)
        return mr_err_set(err, MR_ENOMEM, "out of memory queueing a turn of %s", room);
    pthread_mutex_lock(&q->lock);
    rq_room *r = room_of(q, room);
    if (r) {
        j->job = job;
        j->room = r;
        r->refs++;
        q->waiting++;
        if (ahead) {
            insert_behind_ahead(q, j);
            j->ahead = true;
            r->ahead++;
        } else {
            enqueue(q, j);
        }
        grow(q);
        pthread_cond_signal(&q->wake);
    }
    pthread_mutex_unlock(&q->lock);
    if (!r) {
        free(j);
        return mr_err_set(err, MR_ENOMEM, "out of memory queueing a turn of %s", room);
    }
    return MR_OK;
}

mr_code room_queue_push(room_queue *q, const char *room, void *job, mr_err *err)
{
    return push(q, room, job, false, err);
}

mr_code room_queue_push_ahead(room_queue *q, const char *room, void *job, mr_err *err)
{
    return push(q, room, job, true, err);
}

/* A count the queue's threads change, read under their lock. */
static size_t count_locked(room_queue *q, const size_t *count)
{
    pthread_mutex_lock(&q->lock);
    size_t n = *count;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t room_queue_threads(room_queue *q)
{
    return count_locked(q, &q->live);
}

size_t room_queue_waiting(room_queue *q)
{
    return count_locked(q, &q->waiting);
}

size_t room_queue_idle(room_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t busy = q->running + q->n_ready;
    size_t n = q->o.workers > busy ? q->o.workers - busy : 0;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t room_queue_jobs(room_queue *q, const char *room)
{
    pthread_mutex_lock(&q->lock);
    size_t n = 0;
    for (const rq_room *r = q->rooms; r; r = r->next)
        if (strcmp(r->name, room) == 0)
            n = r->refs;
    pthread_mutex_unlock(&q->lock);
    return n;
}

static void free_jobs(room_queue *q, rq_job *j)
{
    while (j) {
        rq_job *next = j->next;
        q->o.free_job(j->job);
        free(j);
        j = next;
    }
}

void room_queue_stop(room_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
    /* No thread starts once stopping is set: a slot only goes from live to ended now. */
    for (size_t i = 0; i < q->o.workers; i++) {
        pthread_mutex_lock(&q->lock);
        bool started = q->slots[i] != SLOT_FREE;
        pthread_mutex_unlock(&q->lock);
        if (started)
            pthread_join(q->threads[i], NULL);
    }
    free_jobs(q, q->parked);
    while (q->rooms) {
        rq_room *r = q->rooms;
        q->rooms = r->next;
        free_jobs(q, r->head);
        free(r->name);
        free(r);
    }
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    free(q->threads);
    free(q->slots);
    free(q);
}
