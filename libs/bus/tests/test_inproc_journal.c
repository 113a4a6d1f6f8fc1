/* test_inproc_journal.c -- the inproc bus with a journal: the shared behaviour suite, and what
 * survives a SIGKILL of the publisher or the consumer, group cursors across restarts,
 * compaction, file modes and errors that name the path. */
#define _GNU_SOURCE /* SCHED_IDLE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus_suite.h"
#include "peers.h"
#include "mindroom/clock.h"

#define KEYS 10

typedef struct fixture {
    suite_env env; /* first: the shared suite's tests take the fixture as their suite_env */
    char dir[256];
    char path[320]; /* the journal file */
    char url[340];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mr_err err = {0};
    if (!f || mr_tp_mkdtemp("mr-bus-journal", f->dir, sizeof f->dir, &err) != MR_OK) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/bus.db", f->dir);
    snprintf(f->url, sizeof f->url, "inproc://%s", f->path);
    f->env.partitions_shared = true;
    snprintf(f->env.url, sizeof f->env.url, "%s", f->url);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    mr_tp_rmtree(f->dir, &err);
    free(f);
    return 0;
}

static mr_bus *open_ok(const char *url, const mr_bus_options *opts)
{
    mr_bus *b = NULL;
    mr_err err = {0};
    if (mr_bus_open(url, opts, &b, &err) != MR_OK)
        fail_msg("mr_bus_open(%s): %s", url, err.msg);
    return b;
}

/* After a failed commit the writer tries again after a pause; a flush meanwhile still reports
 * the failure. Flushes until one succeeds, or a minute has passed. */
static void flush_once_the_writer_retried(mr_bus *b)
{
    mr_err err = {0};
    long long deadline = mr_clock_mono_ms() + 60000;
    while (mr_bus_flush(b, 1000, &err) != MR_OK && mr_clock_mono_ms() < deadline)
        mr_clock_sleep_ms(50);
}

/* ---- what a group handled ---- */

typedef struct got {
    int n;       /* seqs 0..n-1 are tracked */
    int *count;  /* per seq: how many times it was handled */
    long last[KEYS];
    long order_errors;
    long total;
    int distinct;
} got;

static got *got_new(int n)
{
    got *g = calloc(1, sizeof *g);
    assert_non_null(g);
    g->n = n;
    g->count = calloc((size_t)n, sizeof *g->count);
    assert_non_null(g->count);
    for (int k = 0; k < KEYS; k++)
        g->last[k] = -1;
    return g;
}

static void got_free(got *g)
{
    free(g->count);
    free(g);
}

/* Records a message; within one consumer each key's seqs must rise. */
static mr_code got_one(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)err;
    got *g = ctx;
    long seq = suite_seq(m->value);
    int k = -1;
    sscanf(m->key, "!room%d:", &k);
    if (seq < 0 || seq >= g->n || k < 0 || k >= KEYS || seq % KEYS != k || seq <= g->last[k]) {
        g->order_errors++;
        return MR_OK;
    }
    g->last[k] = seq;
    g->distinct += g->count[seq]++ == 0;
    g->total++;
    return MR_OK;
}

/* Polls until `distinct` different seqs were handled, then once more to see nothing follows. */
static void drain(mr_bus_consumer *c, got *g, int distinct)
{
    long long deadline = mr_clock_mono_ms() + 60000;
    mr_err err = {0};
    while (g->distinct < distinct && mr_clock_mono_ms() < deadline) {
        size_t handled = 0;
        if (mr_bus_poll(c, 200, 100, got_one, g, &handled, &err) != MR_OK)
            fail_msg("poll: %s", err.msg);
    }
    if (g->distinct < distinct)
        fail_msg("%d of %d messages arrived within 60 s", g->distinct, distinct);
    size_t handled = 0;
    assert_int_equal(mr_bus_poll(c, 0, 100, got_one, g, &handled, &err), MR_OK);
    assert_int_equal(handled, 0);
    assert_int_equal(g->order_errors, 0);
}

/* Handles exactly n messages. */
static void handle_n(mr_bus_consumer *c, got *g, int n)
{
    long before = g->total;
    while (g->total - before < n) {
        size_t handled = 0;
        mr_err err = {0};
        if (mr_bus_poll(c, 5000, (size_t)(n - (g->total - before)), got_one, g, &handled, &err) != MR_OK)
            fail_msg("poll: %s", err.msg);
        if (handled == 0)
            fail_msg("only %ld of %d messages arrived", g->total - before, n);
    }
    assert_int_equal(g->order_errors, 0);
}

/* ---- processes killed mid-way ---- */

typedef bool (*child_fn)(const char *url, void *arg);

/* Runs fn in a forked child, which reports on a pipe once fn returned and then waits for the
 * SIGKILL this sends. The parent holds no bus meanwhile: one process at a time per journal. */
static void run_and_kill(child_fn fn, const char *url, void *arg)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        char ok = fn(url, arg) ? 'k' : 'e';
        if (write(fds[1], &ok, 1) != 1 || ok != 'k')
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    char ok = 0;
    ssize_t n = read(fds[0], &ok, 1);
    close(fds[0]);
    int st = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_kill_wait(pid, SIGKILL, &st, &err), MR_OK);
    if (n != 1 || ok != 'k')
        fail_msg("the child process failed before it was killed");
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

enum { FLUSHED = 1000, UNFLUSHED = 500 };

/* Publishes FLUSHED messages and flushes, then UNFLUSHED more without waiting for them. */
static bool publish_then_die(const char *url, void *arg)
{
    (void)arg;
    mr_bus *b = NULL;
    mr_err err = {0};
    if (mr_bus_open(url, NULL, &b, &err) != MR_OK)
        return false;
    for (int s = 0; s < FLUSHED + UNFLUSHED; s++) {
        char key[64], value[64];
        snprintf(key, sizeof key, "!room%d:example.org", s % KEYS);
        int len = snprintf(value, sizeof value, "{\"v\":1,\"seq\":%d}", s);
        if (mr_bus_publish(b, "inbound", key, value, (size_t)len, &err) != MR_OK)
            return false;
        if (s == FLUSHED - 1 && mr_bus_flush(b, 60000, &err) != MR_OK)
            return false;
    }
    return true;
}

static void test_killed_publisher_loses_nothing_flushed(void **state)
{
    fixture *f = *state;
    run_and_kill(publish_then_die, f->url, NULL);
    mr_bus *b = open_ok(f->url, NULL);
    mr_bus_consumer *c = suite_subscribe(b, "agent", "inbound");
    got *g = got_new(FLUSHED + UNFLUSHED);
    /* Everything flushed comes, each once, in order per key. Of the rest, each partition kept a
     * prefix of what was published to it, so each key's extra seqs carry on without a gap. */
    long long deadline = mr_clock_mono_ms() + 60000;
    while (mr_clock_mono_ms() < deadline) {
        size_t handled = 0;
        mr_err err = {0};
        assert_int_equal(mr_bus_poll(c, 200, 100, got_one, g, &handled, &err), MR_OK);
        bool flushed_all = true;
        for (int s = 0; s < FLUSHED && flushed_all; s++)
            flushed_all = g->count[s] == 1;
        if (flushed_all && handled == 0)
            break;
    }
    assert_int_equal(g->order_errors, 0);
    for (int s = 0; s < FLUSHED + UNFLUSHED; s++) {
        if (s < FLUSHED || g->count[s])
            assert_int_equal(g->count[s], 1);
        if (s >= KEYS && g->count[s])
            assert_int_equal(g->count[s - KEYS], 1);
    }
    assert_int_equal(g->total, g->distinct);
    got_free(g);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

enum { BATCH = 200, HALF = 100 };

typedef struct half_run {
    char handled_path[400]; /* where the child writes the seqs it handled, one a line */
} half_run;

static mr_code write_seq(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    FILE *out = ctx;
    if (fprintf(out, "%ld\n", suite_seq(m->value)) < 0 || fflush(out) != 0)
        return mr_err_set(err, MR_EIO, "writing the handled seqs");
    return MR_OK;
}

/* Handles HALF of the messages, acknowledging each, and flushes so the acknowledgements are
 * committed. */
static bool handle_half_then_die(const char *url, void *arg)
{
    half_run *r = arg;
    FILE *out = fopen(r->handled_path, "w");
    mr_bus *b = NULL;
    mr_bus_consumer *c = NULL;
    mr_err err = {0};
    const char *topics[] = {"inbound"};
    if (!out || mr_bus_open(url, NULL, &b, &err) != MR_OK ||
        mr_bus_subscribe(b, "agent", topics, 1, &c, &err) != MR_OK)
        return false;
    size_t total = 0;
    while (total < HALF) {
        size_t handled = 0;
        if (mr_bus_poll(c, 5000, HALF - total, write_seq, out, &handled, &err) != MR_OK || handled == 0)
            return false;
        total += handled;
    }
    return mr_bus_flush(b, 60000, &err) == MR_OK;
}

static void read_seqs(const char *path, bool *seen, int n, int want)
{
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    long seq;
    int lines = 0;
    while (fscanf(in, "%ld", &seq) == 1) {
        assert_true(seq >= 0 && seq < n);
        assert_false(seen[seq]);
        seen[seq] = true;
        lines++;
    }
    fclose(in);
    assert_int_equal(lines, want);
}

static void publish_batch(const char *url)
{
    mr_bus *b = open_ok(url, NULL);
    suite_publish(b, "inbound", 0, BATCH, KEYS);
    suite_flush(b, 60000);
    mr_bus_close(b);
}

static void test_killed_consumer_resumes_at_unacked(void **state)
{
    fixture *f = *state;
    publish_batch(f->url);
    half_run r;
    snprintf(r.handled_path, sizeof r.handled_path, "%s/handled.txt", f->dir);
    run_and_kill(handle_half_then_die, f->url, &r);
    bool seen[BATCH] = {0};
    read_seqs(r.handled_path, seen, BATCH, HALF);

    /* Its acknowledgements were flushed: the group resumes exactly at what it had not handled. */
    mr_bus *b = open_ok(f->url, NULL);
    mr_bus_consumer *c = suite_subscribe(b, "agent", "inbound");
    got *g = got_new(BATCH);
    drain(c, g, BATCH - HALF);
    for (int s = 0; s < BATCH; s++)
        assert_int_equal(g->count[s], seen[s] ? 0 : 1);
    got_free(g);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

static void test_consumer_killed_mid_batch_loses_nothing(void **state)
{
    fixture *f = *state;
    enum { STALL_AFTER = 45 };
    publish_batch(f->url);
    char out[400], log[400], stall[16];
    snprintf(out, sizeof out, "%s/values.txt", f->dir);
    snprintf(log, sizeof log, "%s/consumer.log", f->dir);
    snprintf(stall, sizeof stall, "%d", STALL_AFTER);
    /* bus_test_consumer handles STALL_AFTER messages in batches of 10, then hangs in a handler:
     * some of its acknowledgements may be committed, the latest perhaps not. */
    char *argv[] = {MR_BUS_TEST_CONSUMER, f->url, "agent", "inbound", out, stall, "1000", NULL};
    suite_kill_when_stalled(argv, out, log, STALL_AFTER);
    bool seen[BATCH] = {0};
    assert_int_equal(suite_read_seen(out, seen, BATCH), STALL_AFTER);

    /* Nothing it had not handled is lost; what it handled may come again (at-least-once). */
    mr_err err = {0};
    mr_bus *b = open_ok(f->url, NULL);
    mr_bus_consumer *c = suite_subscribe(b, "agent", "inbound");
    got *g = got_new(BATCH);
    long long until = mr_clock_mono_ms() + 60000;
    bool complete = false;
    while (!complete && mr_clock_mono_ms() < until) {
        size_t handled = 0;
        assert_int_equal(mr_bus_poll(c, 200, 100, got_one, g, &handled, &err), MR_OK);
        complete = true;
        for (int s = 0; s < BATCH && complete; s++)
            complete = seen[s] || g->count[s] > 0;
    }
    assert_true(complete);
    assert_int_equal(g->order_errors, 0);
    assert_int_equal(g->total, g->distinct);
    got_free(g);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

enum { BURST = 1000 };

static mr_code ignore(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)ctx;
    (void)m;
    (void)err;
    return MR_OK;
}

/* Publishes a burst, handles all of it and flushes: the acknowledgements are committed, while
 * the deletion of the rows they passed is spread over later batches. */
static bool handle_burst_then_die(const char *url, void *arg)
{
    (void)arg;
    mr_bus_options opts = {.partitions = 1, .inproc_capacity = BURST};
    mr_bus *b = NULL;
    mr_bus_consumer *c = NULL;
    mr_err err = {0};
    const char *topics[] = {"inbound"};
    if (mr_bus_open(url, &opts, &b, &err) != MR_OK)
        return false;
    for (int s = 0; s < BURST; s++)
        if (mr_bus_publish(b, "inbound", "!room0:example.org", "{}", 2, &err) != MR_OK)
            return false;
    if (mr_bus_flush(b, 60000, &err) != MR_OK || mr_bus_subscribe(b, "agent", topics, 1, &c, &err) != MR_OK)
        return false;
    size_t total = 0;
    while (total < BURST) {
        size_t handled = 0;
        if (mr_bus_poll(c, 5000, BURST, ignore, NULL, &handled, &err) != MR_OK || handled == 0)
            return false;
        total += handled;
    }
    return mr_bus_flush(b, 60000, &err) == MR_OK;
}

static void test_replay_skips_rows_every_group_passed(void **state)
{
    fixture *f = *state;
    run_and_kill(handle_burst_then_die, f->url, NULL);
    /* Rows not deleted yet are not replayed: they would not even fit this smaller ring. The
     * group carries on with what comes next. */
    mr_bus_options opts = {.partitions = 1, .inproc_capacity = BURST / 2};
    mr_bus *b = open_ok(f->url, &opts);
    mr_bus_consumer *c = suite_subscribe(b, "agent", "inbound");
    suite_publish(b, "inbound", BURST, 300, KEYS);
    got *g = got_new(BURST + 300);
    drain(c, g, 300);
    for (int s = 0; s < BURST + 300; s++)
        assert_int_equal(g->count[s], s >= BURST ? 1 : 0);
    got_free(g);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

/* ---- groups across restarts ---- */

static void handled_set(const got *g, bool *out)
{
    for (int s = 0; s < g->n; s++)
        out[s] = g->count[s] > 0;
}

static void test_two_groups_keep_their_cursors_across_restart(void **state)
{
    fixture *f = *state;
    enum { N = 100 };
    mr_bus *b = open_ok(f->url, NULL);
    suite_publish(b, "inbound", 0, N, KEYS);
    mr_bus_consumer *ca = suite_subscribe(b, "agent", "inbound");
    mr_bus_consumer *cb = suite_subscribe(b, "authz", "inbound");
    got *ga = got_new(N), *gb = got_new(N);
    handle_n(ca, ga, 30);
    handle_n(cb, gb, 70);
    bool a_done[N], b_done[N];
    handled_set(ga, a_done);
    handled_set(gb, b_done);
    got_free(ga);
    got_free(gb);
    mr_bus_consumer_close(ca);
    mr_bus_consumer_close(cb);
    /* A clean close commits the acknowledgements still lingering. */
    mr_bus_close(b);

    b = open_ok(f->url, NULL);
    ca = suite_subscribe(b, "agent", "inbound");
    cb = suite_subscribe(b, "authz", "inbound");
    mr_bus_consumer *cc = suite_subscribe(b, "crypto", "inbound");
    ga = got_new(N);
    gb = got_new(N);
    got *gc = got_new(N);
    drain(ca, ga, N - 30);
    drain(cb, gb, N - 70);
    /* A group first seen now starts at the oldest kept row: each partition keeps what one of
     * the groups has not handled yet. */
    int kept = 0;
    for (int s = 0; s < N; s++)
        kept += !(a_done[s] && b_done[s]);
    drain(cc, gc, kept);
    for (int s = 0; s < N; s++) {
        assert_int_equal(ga->count[s], a_done[s] ? 0 : 1);
        assert_int_equal(gb->count[s], b_done[s] ? 0 : 1);
        assert_int_equal(gc->count[s], a_done[s] && b_done[s] ? 0 : 1);
    }
    got_free(ga);
    got_free(gb);
    got_free(gc);
    mr_bus_consumer_close(ca);
    mr_bus_consumer_close(cb);
    mr_bus_consumer_close(cc);
    mr_bus_close(b);
}

/* ---- compaction ---- */

static long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static long long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long long)st.st_size;
}

/* Publishes seqs first .. first + count - 1 on "inbound", over KEYS rooms, each value padded with
 * pad zeros. */
static void publish_padded(mr_bus *b, int first, int count, int pad)
{
    char *value = malloc((size_t)pad + 64);
    assert_non_null(value);
    for (int s = first; s < first + count; s++) {
        char key[64];
        snprintf(key, sizeof key, "!room%d:example.org", s % KEYS);
        int len = snprintf(value, (size_t)pad + 64, "{\"v\":1,\"pad\":\"%0*d\",\"seq\":%d}", pad, 0, s);
        mr_err err = {0};
        if (mr_bus_publish(b, "inbound", key, value, (size_t)len, &err) != MR_OK)
            fail_msg("publish: %s", err.msg);
    }
    free(value);
}

static void test_compaction_keeps_the_file_small(void **state)
{
    fixture *f = *state;
    enum { ROUNDS = 200, PER_ROUND = 500, VALUE = 200 };
    mr_bus *b = open_ok(f->url, NULL);
    mr_bus_consumer *c = suite_subscribe(b, "agent", "inbound");
    got *g = got_new(ROUNDS * PER_ROUND);
    for (int r = 0; r < ROUNDS; r++) {
        publish_padded(b, r * PER_ROUND, PER_ROUND, VALUE);
        /* The flush also commits the last round's acknowledgements, and with them the deletion
         * of the rows they passed: only this round's messages are left. */
        suite_flush(b, 60000);
        if (r % 20 == 0 || r == ROUNDS - 1)
            assert_int_equal(sql_int(f->path, "SELECT count(*) FROM msgs"), PER_ROUND);
        handle_n(c, g, PER_ROUND);
    }
    assert_int_equal(g->distinct, ROUNDS * PER_ROUND);
    assert_int_equal(g->total, ROUNDS * PER_ROUND);
    mr_bus_consumer_close(c);
    /* Closing commits the last acknowledgements and deletes every row they passed. */
    mr_bus_close(b);
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM msgs"), 0);
    /* 100k messages of ~250 bytes went through; the file held about one round's worth. */
    assert_true(file_size(f->path) < 2 * 1024 * 1024);
    got_free(g);
}

static void test_idle_journal_gives_space_back(void **state)
{
    fixture *f = *state;
    enum { N = 5000, SIZE = 1024 };
    mr_bus *b = open_ok(f->url, &(mr_bus_options){.inproc_capacity = N});
    mr_bus_consumer *c = suite_subscribe(b, "agent", "inbound");
    publish_padded(b, 0, N, SIZE);
    suite_flush(b, 60000);
    /* Five megabytes are on disk, in the file or still in its WAL. */
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_true(file_size(f->path) + file_size(wal) > N * SIZE);
    got *g = got_new(N);
    drain(c, g, N);
    got_free(g);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
    /* Handled, deleted and given back: a few pages of schema and cursors remain. */
    assert_int_equal(sql_int(f->path, "SELECT count(*) FROM msgs"), 0);
    assert_true(file_size(f->path) < 64 * 1024);
}

/* ---- a full ring, files and errors ---- */

static void test_full_ring_blocks_and_survives_restart(void **state)
{
    fixture *f = *state;
    mr_bus_options opts = {.partitions = 1, .inproc_capacity = 4, .publish_timeout_ms = 200};
    mr_bus *b = open_ok(f->url, &opts);
    suite_publish(b, "full", 0, 4, KEYS);
    mr_err err = {0};
    assert_int_equal(mr_bus_publish(b, "full", "!room4:example.org", "{\"v\":1,\"seq\":4}", 15, &err),
                     MR_EUNAVAIL);
    assert_string_equal(
        err.msg, "inproc bus: full[0] is full (4 messages not yet handled by every group) after 200 ms");
    suite_flush(b, 60000);
    mr_bus_close(b);

    /* The four come back, still filling the ring, until a group handles one. */
    b = open_ok(f->url, &opts);
    assert_int_equal(mr_bus_publish(b, "full", "!room4:example.org", "{\"v\":1,\"seq\":4}", 15, &err),
                     MR_EUNAVAIL);
    mr_bus_consumer *c = suite_subscribe(b, "g", "full");
    got *g = got_new(8);
    handle_n(c, g, 1);
    suite_publish(b, "full", 4, 1, KEYS);
    handle_n(c, g, 4);
    for (int s = 0; s < 5; s++)
        assert_int_equal(g->count[s], 1);
    got_free(g);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

/* A consumer handles a message before the journal committed it, while a flush waits for the
 * commit: here another connection holds the journal's write lock, so no commit can land. Before,
 * the message reached consumers only after its commit, so every hop of a pipeline waited for the
 * disk. Once the lock is gone, the commit lands and the flush returns. */
static void test_consumers_do_not_wait_for_the_commit(void **state)
{
    fixture *f = *state;
    mr_bus_options opts = {.partitions = 1};
    mr_bus *b = open_ok(f->url, &opts);
    mr_bus_consumer *c = suite_subscribe(b, "g", "fast");
    suite_flush(b, 60000);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    suite_publish(b, "fast", 0, 1, KEYS);
    got *g = got_new(1);
    handle_n(c, g, 1);
    assert_int_equal(g->count[0], 1);
    mr_err err = {0};
    assert_int_not_equal(mr_bus_flush(b, 300, &err), MR_OK);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    suite_flush(b, 60000);
    got_free(g);
    mr_bus_consumer_close(c);
    mr_bus_close(b);
}

/* How many of this process's threads run at SCHED_IDLE. */
static int idle_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid > 0 && sched_getscheduler(tid) == SCHED_IDLE)
            n++;
    }
    closedir(d);
    return n;
}

/* The journal's writer runs at SCHED_IDLE, so its commits never hold a core a woken consumer
 * wants (no consumer waits for them); closing the bus ends it. */
static void test_the_writer_yields_to_consumers(void **state)
{
    fixture *f = *state;
    mr_bus_options opts = {.partitions = 1};
    int before = idle_threads();
    mr_bus *b = open_ok(f->url, &opts);
    suite_publish(b, "idle", 0, 1, KEYS);
    suite_flush(b, 60000);
    assert_int_equal(idle_threads(), before + 1);
    mr_bus_close(b);
    assert_int_equal(idle_threads(), before);
}

/* The hook before each commit: what it sees of the journal file through a connection of its
 * own (the rows committed so far), and whether it fails the commit. */
typedef struct hook_probe {
    const char *path;
    int calls;
    long long rows_seen; /* messages committed when the hook last ran */
    bool fail;
} hook_probe;

static mr_code probe_hook(void *ctx, mr_err *err)
{
    hook_probe *h = ctx;
    h->calls++;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(h->path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM msgs", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        h->rows_seen = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return h->fail ? mr_err_set(err, MR_EIO, "the store could not sync") : MR_OK;
}

/* A handler that derives one message and makes it safe to acknowledge after. */
typedef struct deriving {
    mr_bus *bus;
    int handled;
} deriving;

static mr_code derive(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    deriving *d = ctx;
    mr_code rc = mr_bus_publish(d->bus, "derived", m->key, m->value, m->len, err);
    if (rc == MR_OK)
        rc = mr_bus_flush_for_ack(d->bus, 5000, err);
    d->handled += rc == MR_OK;
    return rc;
}

/* Making a derived message safe to acknowledge after waits for no commit (the journal commits
 * an acknowledgement with or after the messages published before it), even while no commit can
 * land: another connection holds the journal's write lock. mr_bus_flush would wait and fail
 * there. Once the lock is gone both are committed: after a restart the input does not come
 * again and the derived message is there. A journal's failed commit is still reported. */
static void test_an_ack_needs_no_commit_of_what_came_before(void **state)
{
    fixture *f = *state;
    mr_bus_options opts = {.partitions = 1};
    mr_bus *mem = open_ok("inproc:", &opts);
    mr_err err = {0};
    assert_int_equal(mr_bus_flush_for_ack(mem, 0, &err), MR_OK);
    mr_bus_close(mem);

    mr_bus *b = open_ok(f->url, &opts);
    mr_bus_consumer *c = suite_subscribe(b, "g", "input");
    suite_publish(b, "input", 0, 1, KEYS);
    suite_flush(b, 60000);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    deriving d = {.bus = b};
    size_t handled = 0;
    assert_int_equal(mr_bus_poll(c, 60000, 1, derive, &d, &handled, &err), MR_OK);
    assert_int_equal(d.handled, 1);
    assert_int_equal(handled, 1);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    suite_flush(b, 60000);
    mr_bus_consumer_close(c);
    mr_bus_close(b);

    b = open_ok(f->url, &opts);
    c = suite_subscribe(b, "g", "input");
    assert_int_equal(mr_bus_poll(c, 0, 8, derive, &d, &handled, &err), MR_OK);
    assert_int_equal(handled, 0);
    mr_bus_consumer_close(c);
    c = suite_subscribe(b, "reader", "derived");
    got *g = got_new(1);
    handle_n(c, g, 1);
    assert_int_equal(g->count[0], 1);
    got_free(g);
    mr_bus_consumer_close(c);

    hook_probe h = {.path = f->path, .fail = true};
    assert_true(mr_bus_before_commit(b, probe_hook, &h));
    suite_publish(b, "input", 1, 1, KEYS);
    assert_int_equal(mr_bus_flush(b, 60000, &err), MR_EIO);
    assert_int_equal(mr_bus_flush_for_ack(b, 60000, &err), MR_EIO);
    assert_string_equal(err.msg, "the store could not sync");
    h.fail = false;
    flush_once_the_writer_retried(b);
    mr_bus_close(b);
}

/* `mindroom run` syncs its store before each commit of the bus journal: the hook runs before
 * the batch's rows are committed, and a failing hook fails the commit (the flush reports it)
 * until it succeeds again. A bus without a journal takes no hook. */
static void test_a_hook_runs_before_each_commit(void **state)
{
    fixture *f = *state;
    mr_bus *mem = open_ok("inproc:", NULL);
    hook_probe h = {.path = f->path};
    assert_false(mr_bus_before_commit(mem, probe_hook, &h));
    mr_bus_close(mem);

    mr_bus *b = open_ok(f->url, NULL);
    assert_true(mr_bus_before_commit(b, probe_hook, &h));
    suite_publish(b, "hooked", 0, 1, KEYS);
    suite_flush(b, 60000);
    assert_true(h.calls >= 1);
    assert_int_equal(h.rows_seen, 0);

    h.fail = true;
    suite_publish(b, "hooked", 1, 1, KEYS);
    mr_err err = {0};
    assert_int_equal(mr_bus_flush(b, 60000, &err), MR_EIO);
    assert_string_equal(err.msg, "the store could not sync");
    h.fail = false;
    flush_once_the_writer_retried(b);
    assert_int_equal(mr_bus_flush(b, 1000, &err), MR_OK);
    assert_int_equal(h.rows_seen, 1);
    mr_bus_close(b);
}

/* What a function given to mr_bus_when_durable saw: how often it ran, with what, and the rows the
 * journal file held then (through a connection of its own). It runs on the writer thread. */
typedef struct durable_probe {
    const char *path;
    pthread_mutex_t mu;
    pthread_cond_t ran;
    int calls;
    bool durable;
    long long rows_seen;
} durable_probe;

static long long committed_rows(const char *path)
{
    long long rows = -1;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM msgs", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        rows = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rows;
}

static void durable_seen(void *ctx, bool durable)
{
    durable_probe *p = ctx;
    long long rows = committed_rows(p->path);
    pthread_mutex_lock(&p->mu);
    p->calls++;
    p->durable = durable;
    p->rows_seen = rows;
    pthread_cond_signal(&p->ran);
    pthread_mutex_unlock(&p->mu);
}

/* The probe's call count once it reached at least `calls`, or after a minute. */
static int durable_calls(durable_probe *p, int calls)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&p->mu);
    while (p->calls < calls && pthread_cond_timedwait(&p->ran, &p->mu, &until) == 0) {
    }
    int n = p->calls;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* A marker kept outside the bus is written when its messages are committed, without a flush:
 * mr_bus_when_durable's function runs once, after the commit that holds what was published
 * before it (the file has the row by then), never for a batch that failed, and with false when
 * the bus closes before any commit held them. Without a journal, and once committed, it runs
 * at once. */
static void test_when_durable_runs_once_after_the_commit(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    durable_probe p = {.path = f->path, .mu = PTHREAD_MUTEX_INITIALIZER, .ran = PTHREAD_COND_INITIALIZER};
    mr_bus *mem = open_ok("inproc:", NULL);
    suite_publish(mem, "marked", 0, 1, KEYS);
    assert_int_equal(mr_bus_when_durable(mem, 1000, durable_seen, &p, &err), MR_OK);
    assert_int_equal(p.calls, 1);
    assert_true(p.durable);
    mr_bus_close(mem);

    p.calls = 0;
    mr_bus *b = open_ok(f->url, NULL);
    hook_probe h = {.path = f->path, .fail = true};
    assert_true(mr_bus_before_commit(b, probe_hook, &h));
    suite_publish(b, "marked", 0, 1, KEYS);
    assert_int_equal(mr_bus_when_durable(b, 1000, durable_seen, &p, &err), MR_OK);
    assert_int_equal(mr_bus_flush(b, 60000, &err), MR_EIO);
    h.fail = false;
    flush_once_the_writer_retried(b);
    assert_int_equal(durable_calls(&p, 1), 1);
    assert_true(p.durable);
    assert_int_equal(p.rows_seen, 1);
    suite_publish(b, "marked", 1, 1, KEYS);
    suite_flush(b, 60000);

    /* Committed already: at once, on the calling thread. */
    assert_int_equal(mr_bus_when_durable(b, 1000, durable_seen, &p, &err), MR_OK);
    assert_int_equal(p.calls, 2);
    assert_true(p.durable);
    assert_int_equal(p.rows_seen, 2);

    /* The bus closes while no commit can land: false, once; the writer has stopped, so every
     * call it made is counted. */
    h.fail = true;
    suite_publish(b, "marked", 2, 1, KEYS);
    assert_int_equal(mr_bus_when_durable(b, 1000, durable_seen, &p, &err), MR_OK);
    mr_bus_close(b);
    assert_int_equal(p.calls, 3);
    assert_false(p.durable);
    assert_int_equal(p.rows_seen, 2);
}

static void test_file_modes(void **state)
{
    fixture *f = *state;
    char url[340], path[320], parent[300];
    snprintf(parent, sizeof parent, "%s/new/storage", f->dir);
    snprintf(path, sizeof path, "%s/bus.db", parent);
    snprintf(url, sizeof url, "inproc://%s", path);
    mode_t old = umask(022);
    mr_bus *b = open_ok(url, NULL);
    umask(old);
    suite_publish(b, "modes", 0, 1, 1);
    suite_flush(b, 60000);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char wal[340];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(stat(wal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(parent, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(parent, sizeof parent, "%s/new", f->dir);
    assert_int_equal(stat(parent, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    mr_bus_close(b);
}

static void expect_open_error(const char *url, const mr_bus_options *opts, mr_code code, const char *want)
{
    mr_bus *b = (mr_bus *)1;
    mr_err err = {0};
    assert_int_equal(mr_bus_open(url, opts, &b, &err), code);
    assert_null(b);
    assert_string_equal(err.msg, want);
}

static void write_file(const char *path, const char *text)
{
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(text, out);
    fclose(out);
}

static void test_bad_paths_name_the_file(void **state)
{
    fixture *f = *state;
    char url[512], want[1024], file[400];
    expect_open_error("inproc://relative/bus.db", NULL, MR_EINVAL,
                      "bus URL \"inproc://relative/bus.db\": expected inproc: (in memory) or "
                      "inproc:///absolute/path/journal.db");
    expect_open_error("inproc:///var/lib/mindroom/", NULL, MR_EINVAL,
                      "bus URL \"inproc:///var/lib/mindroom/\": the journal path names a directory; add a "
                      "file name such as bus.db");

    /* A parent that is a file. */
    snprintf(file, sizeof file, "%s/plain", f->dir);
    write_file(file, "not a directory\n");
    snprintf(url, sizeof url, "inproc://%s/bus.db", file);
    snprintf(want, sizeof want,
             "inproc bus journal %s/bus.db: creating directory %s: a file of that name exists", file, file);
    expect_open_error(url, NULL, MR_EEXISTS, want);

    /* The path is a directory. */
    snprintf(url, sizeof url, "inproc://%s", f->dir);
    snprintf(want, sizeof want, "inproc bus journal %s: opening: Is a directory", f->dir);
    expect_open_error(url, NULL, MR_EIO, want);

    /* Something that is not a SQLite file. */
    write_file(f->path, "this is not a journal, but it is long enough to have a header of sorts.......\n");
    snprintf(want, sizeof want, "inproc bus journal %s: opening: file is not a database", f->path);
    expect_open_error(f->url, NULL, MR_EIO, want);
}

static void test_one_bus_per_journal(void **state)
{
    fixture *f = *state;
    mr_bus *b = open_ok(f->url, NULL);
    char want[600];
    snprintf(want, sizeof want,
             "inproc bus journal %s: another bus has it open (one `mindroom run` per storage path)", f->path);
    expect_open_error(f->url, NULL, MR_EUNAVAIL, want);
    suite_publish(b, "inbound", 0, 3, KEYS);
    suite_flush(b, 60000);
    mr_bus_close(b);

    /* Its messages sit on partitions of 8: a bus with another count may not replay them. */
    snprintf(want, sizeof want,
             "inproc bus journal %s: holds topics of 8 partitions, but the bus option partitions is 4; "
             "open it with 8",
             f->path);
    expect_open_error(f->url, &(mr_bus_options){.partitions = 4}, MR_EINVAL, want);
    b = open_ok(f->url, NULL);
    mr_bus_close(b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(suite_test_order_per_key),
        T(suite_test_handler_failure_redelivers),
        T(suite_test_groups_get_earlier_messages),
        T(suite_test_frees_handled),
        T(test_killed_publisher_loses_nothing_flushed),
        T(test_killed_consumer_resumes_at_unacked),
        T(test_consumer_killed_mid_batch_loses_nothing),
        T(test_replay_skips_rows_every_group_passed),
        T(test_two_groups_keep_their_cursors_across_restart),
        T(test_compaction_keeps_the_file_small),
        T(test_idle_journal_gives_space_back),
        T(test_full_ring_blocks_and_survives_restart),
        T(test_consumers_do_not_wait_for_the_commit),
        T(test_the_writer_yields_to_consumers),
        T(test_a_hook_runs_before_each_commit),
        T(test_an_ack_needs_no_commit_of_what_came_before),
        T(test_when_durable_runs_once_after_the_commit),
        T(test_file_modes),
        T(test_bad_paths_name_the_file),
        T(test_one_bus_per_journal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
