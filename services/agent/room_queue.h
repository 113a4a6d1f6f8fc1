/* room_queue.h -- a pool of threads that runs jobs keyed by room: one room's jobs one at a time
 * and in the order they came, many rooms at once, never more jobs at once than threads. Threads
 * start when jobs need them and end when idle, down to one. */
#ifndef MINDROOM_AGENT_ROOM_QUEUE_H
#define MINDROOM_AGENT_ROOM_QUEUE_H

#include <stddef.h>

#include "mindroom/err.h"

/* Runs job on pool thread `worker` (0 .. workers - 1). Returns 0 when the job is finished (it is
 * then freed), or how many ms to park it: it then runs again after that long, behind what its
 * room queued meanwhile, and the room's other jobs go on without it. A negative value parks it
 * for -value ms keeping its place: the room's other jobs wait behind it. */
typedef long long (*room_queue_run)(void *ctx, size_t worker, void *job);
typedef void (*room_queue_free)(void *job);

typedef struct room_queue_opts {
    size_t workers;              /* threads, and so the most jobs running at once; at least 1 */
    long long idle_ms;           /* a thread idle this long ends, unless it is the last or jobs
                                    are parked; 0 for 30 s */
    room_queue_run run;
    room_queue_free free_job;
    void *ctx;                   /* run's */
} room_queue_opts;

typedef struct room_queue room_queue;

mr_code room_queue_start(const room_queue_opts *opts, room_queue **out, mr_err *err);
/* Queues job (owned by the queue once this returns MR_OK) behind the room's others. */
mr_code room_queue_push(room_queue *q, const char *room, void *job, mr_err *err);
/* Queues job before the room's jobs that came through room_queue_push and behind those pushed
 * ahead before it: for jobs older than what the room has (a dead worker's turns, adopted). A
 * job parked keeping its place comes back behind these too. */
mr_code room_queue_push_ahead(room_queue *q, const char *room, void *job, mr_err *err);
/* Jobs queued or parked, not counting those running. */
size_t room_queue_waiting(room_queue *q);
/* Threads that would find nothing to run now (free, with no room ready for them). */
size_t room_queue_idle(room_queue *q);
/* The jobs of room here: queued, parked or running (the caller's own included). */
size_t room_queue_jobs(room_queue *q, const char *room);
/* Threads alive now (1 .. workers). */
size_t room_queue_threads(room_queue *q);
/* Lets the running jobs finish, frees the jobs that never started or are parked, and q. */
void room_queue_stop(room_queue *q);

#endif
