/* test_room_queue.c -- the turn threads' queue: a room's jobs in order and one at a time, rooms
 * side by side, never more jobs at once than threads, parked jobs coming back behind their room,
 * and a stop that frees what never ran. Jobs wait on conditions with deadlines, never on sleeps. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mindroom/clock.h"
#include "room_queue.h"

#define DEADLINE_MS 30000
#define MAX_LOG 64

typedef struct job {
    const char *room;
    int id;
    bool hold;                   /* wait until the test opens the gate */
    const char *await;           /* wait until the job of this room has started */
    long long park_ms;           /* the first run parks for this long */
    int runs;
} job;

/* What the jobs did, under one lock. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t change;
    int started[MAX_LOG];        /* job IDs in the order they started */
    size_t n_started;
    int finished, freed, running, max_running;
    int running_in[4];           /* per room "a".."d" */
    int started_in[4];
    int max_in_room;
    bool gate_open;
    bool timed_out;
} L;

static void reset(void)
{
    pthread_mutex_lock(&L.lock);
    memset(L.started, 0, sizeof L.started);
    L.n_started = 0;
    L.finished = L.freed = L.running = L.max_running = L.max_in_room = 0;
    memset(L.running_in, 0, sizeof L.running_in);
    memset(L.started_in, 0, sizeof L.started_in);
    L.gate_open = L.timed_out = false;
    pthread_mutex_unlock(&L.lock);
}

static bool room_started(const char *room)
{
    return L.started_in[room[0] - 'a'] > 0;
}

/* Waits (L.lock held) until cond(arg) holds or the deadline passes. */
static bool wait_until(bool (*cond)(const void *), const void *arg)
{
    struct timespec until = mr_clock_after_ms(CLOCK_REALTIME, DEADLINE_MS);
    while (!cond(arg))
        if (pthread_cond_timedwait(&L.change, &L.lock, &until) != 0)
            return cond(arg);
    return true;
}

static bool gate_open(const void *arg)
{
    (void)arg;
    return L.gate_open;
}

static bool other_started(const void *arg)
{
    return room_started(arg);
}

static long long run(void *ctx, size_t worker, void *p)
{
    (void)ctx;
    (void)worker;
    job *j = p;
    pthread_mutex_lock(&L.lock);
    if (L.n_started < MAX_LOG)
        L.started[L.n_started++] = j->id;
    int r = j->room[0] - 'a';
    L.running++;
    L.running_in[r]++;
    L.started_in[r]++;
    L.max_running = L.running > L.max_running ? L.running : L.max_running;
    L.max_in_room = L.running_in[r] > L.max_in_room ? L.running_in[r] : L.max_in_room;
    pthread_cond_broadcast(&L.change);
    if ((j->hold && !wait_until(gate_open, NULL)) || (j->await && !wait_until(other_started, j->await)))
        L.timed_out = true;
    L.running--;
    L.running_in[r]--;
    long long park = j->runs++ == 0 ? j->park_ms : 0;
    if (!park)
        L.finished++;
    pthread_cond_broadcast(&L.change);
    pthread_mutex_unlock(&L.lock);
    return park;
}

static void free_job(void *p)
{
    pthread_mutex_lock(&L.lock);
    L.freed++;
    pthread_cond_broadcast(&L.change);
    pthread_mutex_unlock(&L.lock);
    free(p);
}

static room_queue *start_idle(size_t workers, long long idle_ms)
{
    reset();
    room_queue *q = NULL;
    mr_err err = {0};
    room_queue_opts o = {.workers = workers, .idle_ms = idle_ms, .run = run, .free_job = free_job};
    if (room_queue_start(&o, &q, &err) != MR_OK)
        fail_msg("room_queue_start: %s", err.msg);
    return q;
}

static room_queue *start(size_t workers)
{
    return start_idle(workers, 0);
}

/* Threads of this process, from /proc/self/task. */
static int process_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Queues a copy of spec, ahead of the room's others or behind them. */
static void push_as(room_queue *q, job spec, bool ahead)
{
    job *j = malloc(sizeof *j);
    assert_non_null(j);
    *j = spec;
    mr_err err = {0};
    mr_code rc = ahead ? room_queue_push_ahead(q, j->room, j, &err) : room_queue_push(q, j->room, j, &err);
    if (rc != MR_OK)
        fail_msg("queueing job %d: %s", spec.id, err.msg);
}

static void push(room_queue *q, job spec)
{
    push_as(q, spec, false);
}

static void push_ahead(room_queue *q, job spec)
{
    push_as(q, spec, true);
}

static bool finished_at_least(const void *arg)
{
    return L.finished >= *(const int *)arg;
}

/* Freed by the queue once it is done with the job: its counts no longer include it. */
static bool freed_at_least(const void *arg)
{
    return L.freed >= *(const int *)arg;
}

static bool running_at_least(const void *arg)
{
    return L.running >= *(const int *)arg;
}

static void wait_for(bool (*cond)(const void *), int n)
{
    pthread_mutex_lock(&L.lock);
    bool ok = wait_until(cond, &n);
    pthread_mutex_unlock(&L.lock);
    if (!ok)
        fail_msg("the queue never got there (%d wanted; %d running, %d finished)", n, L.running, L.finished);
}

static void open_gate(void)
{
    pthread_mutex_lock(&L.lock);
    L.gate_open = true;
    pthread_cond_broadcast(&L.change);
    pthread_mutex_unlock(&L.lock);
}

/* " 1 2 1": the job IDs ids[0..n) as a failure message shows them. */
static const char *id_list(const int *ids, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, " %d", ids[i]);
    return out;
}

/* The jobs started, in order (a parked job once per run), were exactly want[0..n). */
static void expect_started(const int *want, size_t n)
{
    bool same = L.n_started == n;
    for (size_t i = 0; same && i < n; i++)
        same = L.started[i] == want[i];
    char got[MAX_LOG * 12], wanted[MAX_LOG * 12];
    if (!same)
        fail_msg("jobs started in the order%s; expected%s", id_list(L.started, L.n_started, got, sizeof got),
                 id_list(want, n, wanted, sizeof wanted));
}
#define EXPECT_STARTED(...) \
    expect_started((const int[]){__VA_ARGS__}, sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static void test_order_kept_within_a_room(void **state)
{
    (void)state;
    room_queue *q = start(4);
    /* The first job holds the room while the rest queue up behind it. */
    push(q, (job){.room = "a", .id = 1, .hold = true});
    for (int i = 2; i <= 8; i++)
        push(q, (job){.room = "a", .id = i});
    wait_for(running_at_least, 1);
    assert_int_equal(room_queue_waiting(q), 7);
    open_gate();
    wait_for(finished_at_least, 8);
    room_queue_stop(q);
    EXPECT_STARTED(1, 2, 3, 4, 5, 6, 7, 8);
    /* Four threads, yet never two jobs of the room at once. */
    assert_int_equal(L.max_in_room, 1);
    assert_int_equal(L.freed, 8);
    assert_false(L.timed_out);
}

static void test_two_rooms_run_side_by_side(void **state)
{
    (void)state;
    room_queue *q = start(2);
    /* Each waits until the other room's job has started: with one job at a time both would
     * wait out the deadline. A second job of room a waits behind the first. */
    push(q, (job){.room = "a", .id = 1, .await = "b"});
    push(q, (job){.room = "a", .id = 2});
    push(q, (job){.room = "b", .id = 3, .await = "a"});
    wait_for(finished_at_least, 3);
    room_queue_stop(q);
    assert_false(L.timed_out);
    assert_int_equal(L.max_running, 2);
    /* Room b's job did not wait for room a's second one. */
    assert_int_equal(L.started[2], 2);
}

static void test_bound_on_jobs_at_once(void **state)
{
    (void)state;
    room_queue *q = start(3);
    for (int i = 0; i < 6; i++)
        push(q, (job){.room = (const char *[]){"a", "b", "c", "d"}[i % 4], .id = i, .hold = true});
    wait_for(running_at_least, 3);
    /* Three threads are busy; the rest wait, however many rooms they are in. */
    assert_int_equal(room_queue_waiting(q), 3);
    open_gate();
    wait_for(finished_at_least, 6);
    room_queue_stop(q);
    assert_int_equal(L.max_running, 3);
    assert_int_equal(L.max_in_room, 1);
    assert_false(L.timed_out);
}

static void test_parked_job_comes_back_behind_its_room(void **state)
{
    (void)state;
    room_queue *q = start(2);
    push(q, (job){.room = "a", .id = 1, .park_ms = 50});
    push(q, (job){.room = "a", .id = 2});
    wait_for(finished_at_least, 2);
    room_queue_stop(q);
    /* The parked job did not hold its room: the next one ran, then the parked one again. */
    EXPECT_STARTED(1, 2, 1);
    assert_int_equal(L.freed, 2);
}

static void test_job_parked_keeping_its_place_holds_its_room(void **state)
{
    (void)state;
    room_queue *q = start(2);
    push(q, (job){.room = "a", .id = 1, .park_ms = -50});
    push(q, (job){.room = "a", .id = 2});
    push(q, (job){.room = "b", .id = 3});
    wait_for(freed_at_least, 3);
    /* Nothing runs or waits: both threads would find nothing to do, and no job is left. */
    assert_int_equal(room_queue_idle(q), 2);
    assert_int_equal(room_queue_jobs(q, "a"), 0);
    room_queue_stop(q);
    /* Room a's second job waited for the parked first one; room b's went on meanwhile. */
    assert_int_equal(L.n_started, 4);
    int in_a[3], n_a = 0;
    for (size_t i = 0; i < L.n_started; i++)
        if (L.started[i] != 3)
            in_a[n_a++] = L.started[i];
    assert_int_equal(n_a, 3);
    assert_int_equal(in_a[0], 1);
    assert_int_equal(in_a[1], 1);
    assert_int_equal(in_a[2], 2);
    assert_int_equal(L.freed, 3);
}

static void test_job_pushed_ahead_runs_before_the_rooms_others(void **state)
{
    (void)state;
    room_queue *q = start(2);
    push(q, (job){.room = "a", .id = 1, .hold = true});
    wait_for(running_at_least, 1);
    /* While job 1 runs: job 2 as usual, then 3 and 4 ahead of it, in their order. */
    push(q, (job){.room = "a", .id = 2});
    push_ahead(q, (job){.room = "a", .id = 3});
    push_ahead(q, (job){.room = "a", .id = 4});
    open_gate();
    wait_for(freed_at_least, 4);
    room_queue_stop(q);
    EXPECT_STARTED(1, 3, 4, 2);
}

static void test_job_holding_its_place_comes_back_behind_jobs_pushed_ahead(void **state)
{
    (void)state;
    room_queue *q = start(2);
    /* Job 1 waits for the gate, then parks keeping its place; job 2 is pushed ahead meanwhile. */
    push(q, (job){.room = "a", .id = 1, .hold = true, .park_ms = -50});
    wait_for(running_at_least, 1);
    push_ahead(q, (job){.room = "a", .id = 2});
    open_gate();
    wait_for(freed_at_least, 2);
    room_queue_stop(q);
    EXPECT_STARTED(1, 2, 1);
}

static void test_idle_threads_and_jobs_of_a_room(void **state)
{
    (void)state;
    room_queue *q = start(3);
    push(q, (job){.room = "a", .id = 1, .hold = true});
    push(q, (job){.room = "a", .id = 2});
    wait_for(running_at_least, 1);
    /* One thread runs room a; its second job waits behind it and occupies no other thread. */
    assert_int_equal(room_queue_idle(q), 2);
    assert_int_equal(room_queue_jobs(q, "a"), 2);
    assert_int_equal(room_queue_jobs(q, "b"), 0);
    push(q, (job){.room = "b", .id = 3, .hold = true});
    wait_for(running_at_least, 2);
    assert_int_equal(room_queue_idle(q), 1);
    open_gate();
    wait_for(freed_at_least, 3);
    assert_int_equal(room_queue_idle(q), 3);
    room_queue_stop(q);
}

static void test_stop_frees_what_never_ran(void **state)
{
    (void)state;
    room_queue *q = start(1);
    push(q, (job){.room = "a", .id = 1, .hold = true});
    push(q, (job){.room = "a", .id = 2});
    push(q, (job){.room = "b", .id = 3});
    push(q, (job){.room = "c", .id = 4, .park_ms = 3600000});
    wait_for(running_at_least, 1);
    open_gate();
    wait_for(finished_at_least, 3);
    room_queue_stop(q);
    /* Every job was freed, the parked one included, whether it ran or not. */
    assert_int_equal(L.freed, 4);
}

/* Sixteen allowed, one started: threads come with jobs and end once idle, down to one. */
static void test_threads_start_on_demand_and_end_when_idle(void **state)
{
    (void)state;
    int before = process_threads();
    room_queue *q = start_idle(16, 1);
    assert_int_equal(process_threads(), before + 1);
    for (int i = 0; i < 3; i++)
        push(q, (job){.room = (const char *[]){"a", "b", "c"}[i], .id = i, .hold = true});
    wait_for(running_at_least, 3);
    assert_int_equal(room_queue_threads(q), 3);
    assert_int_equal(process_threads(), before + 3);
    open_gate();
    wait_for(finished_at_least, 3);
    /* A 1 ms idle bound: the two spare threads end; what is waited for is their ending. */
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    while (room_queue_threads(q) > 1 && mr_clock_mono_ms() < deadline)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    assert_int_equal(room_queue_threads(q), 1);
    /* An ended thread's index is taken again by the next that starts. */
    pthread_mutex_lock(&L.lock);
    L.gate_open = false;
    pthread_mutex_unlock(&L.lock);
    push(q, (job){.room = "a", .id = 4, .hold = true});
    push(q, (job){.room = "b", .id = 5, .hold = true});
    wait_for(running_at_least, 2);
    assert_int_equal(room_queue_threads(q), 2);
    open_gate();
    wait_for(finished_at_least, 5);
    room_queue_stop(q);
    assert_int_equal(process_threads(), before);
    assert_int_equal(L.freed, 5);
    assert_false(L.timed_out);
}

static void test_needs_a_thread(void **state)
{
    (void)state;
    room_queue *q = NULL;
    mr_err err = {0};
    room_queue_opts o = {.workers = 0, .run = run, .free_job = free_job};
    assert_int_equal(room_queue_start(&o, &q, &err), MR_EINVAL);
    assert_null(q);
    room_queue_stop(NULL);
}

int main(void)
{
    pthread_mutex_init(&L.lock, NULL);
    pthread_cond_init(&L.change, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_kept_within_a_room),
        cmocka_unit_test(test_two_rooms_run_side_by_side),
        cmocka_unit_test(test_bound_on_jobs_at_once),
        cmocka_unit_test(test_parked_job_comes_back_behind_its_room),
        cmocka_unit_test(test_job_parked_keeping_its_place_holds_its_room),
        cmocka_unit_test(test_idle_threads_and_jobs_of_a_room),
        cmocka_unit_test(test_job_pushed_ahead_runs_before_the_rooms_others),
        cmocka_unit_test(test_job_holding_its_place_comes_back_behind_jobs_pushed_ahead),
        cmocka_unit_test(test_stop_frees_what_never_ran),
        cmocka_unit_test(test_threads_start_on_demand_and_end_when_idle),
        cmocka_unit_test(test_needs_a_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
