/* inproc_journal.c -- the inproc bus's write-ahead journal: a SQLite file that keeps published
 * messages and group positions across a crash.
 *
 * Publishers only add to the in-memory rings, where consumers see the messages at once (see
 * inproc.c for why that is safe); one writer thread takes everything added since its last batch
 * (messages, cursor moves, new topics) and commits it in one transaction (group commit), then
 * lets the rings free and reuse those messages and wakes the flushes they satisfy. In
 * the same transaction it deletes the rows every group has passed, so the file holds at most what
 * the rings hold, and when the bus is idle it gives freed pages back to the file system. Cursor
 * moves alone wait IP_MOVE_LINGER_MS for company: an acknowledgement lost in a crash only means
 * a redelivery, which at-least-once allows. After a commit the writer calls the functions waiting
 * for it (mr_bus_when_durable), so a caller that keeps a marker of what it published writes it
 * then instead of waiting in a flush. A file lock keeps a second process (or bus) from
 * using the same journal, whose rows would no longer match its rings.
 *
 * The writer runs at SCHED_IDLE: no consumer waits for a commit, so its commits and syncs should
 * never hold a core a woken consumer wants. Whoever does wait for it (a flush, a full ring)
 * sleeps, which frees a core, so it is never starved for long.
 */
#define _GNU_SOURCE /* SCHED_IDLE */
#include "inproc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "mindroom/fsutil.h"
#include "mindroom/log.h"
#include "mindroom/thread_name.h"

/* How long acknowledgements alone wait before a commit, so a busy consumer's acks share one. */
#define IP_MOVE_LINGER_MS 50
/* How long the writer waits after a failed commit before it tries again. */
#define IP_RETRY_MS 500
/* Rows a batch without messages deletes at most (a few ms of work). A batch with messages
 * deletes no more rows than it inserts: a consumer that caught up after a burst must not hold
 * back the next messages while thousands of rows go, yet under a steady load deletions keep pace
 * with inserts. The rest follows when the bus is idle, or at close, which deletes all it can. */
#define IP_TRIM_BUDGET 256

enum { J_BEGIN, J_COMMIT, J_ROLLBACK, J_TOPIC, J_MSG, J_CURSOR, J_TRIM, J_VACUUM, J_VACUUM_ALL, J_NSTMT };

static const char *const J_SQL[J_NSTMT] = {
    [J_BEGIN] = "BEGIN",
    [J_COMMIT] = "COMMIT",
    [J_ROLLBACK] = "ROLLBACK",
    [J_TOPIC] = "INSERT OR IGNORE INTO topics(id, name) VALUES(?1, ?2)",
    [J_MSG] = "INSERT INTO msgs(topic, part, seq, key, value) VALUES(?1, ?2, ?3, ?4, ?5)",
    [J_CURSOR] = "INSERT OR REPLACE INTO cursors(grp, topic, part, next) VALUES(?1, ?2, ?3, ?4)",
    [J_TRIM] = "DELETE FROM msgs WHERE topic = ?1 AND part = ?2 AND seq < ?3",
    /* A megabyte of free pages per idle batch (a few ms); all of them at close. */
    [J_VACUUM] = "PRAGMA incremental_vacuum(256)",
    [J_VACUUM_ALL] = "PRAGMA incremental_vacuum",
};

/* synchronous=FULL: a commit is what flush promises the gateway before it saves a sync token,
 * so it must survive power loss, not only a crash of the process. secure_delete (whatever the
 * build's default): handled messages, often cleartext, do not linger in free pages. The WAL is
 * cut back after checkpoints so the files stay as small as the rows they hold. */
static const char J_SCHEMA[] =
    "PRAGMA synchronous = FULL;"
    "PRAGMA secure_delete = ON;"
    "PRAGMA journal_size_limit = 4194304;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS topics (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS msgs (topic INTEGER NOT NULL, part INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (topic, part, seq));"
    "CREATE TABLE IF NOT EXISTS cursors (grp TEXT NOT NULL, topic INTEGER NOT NULL, part INTEGER NOT NULL,"
    " next INTEGER NOT NULL, PRIMARY KEY (grp, topic, part)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

/* A function waiting for the messages published before it to be committed. */
typedef struct ip_durable {
    uint64_t upto; /* the journal's published count when it was queued */
    mr_bus_durable_fn fn;
    void *ctx;
    struct ip_durable *next;
} ip_durable;

struct ip_journal {
    sqlite3 *db;
    char path[512];
    int lock_fd;
    sqlite3_stmt *st[J_NSTMT];
    pthread_t writer;
    bool writer_started;
    pthread_cond_t work; /* something to commit, a flush waits, or the bus closes */
    pthread_cond_t done; /* a batch was committed or failed */
    uint64_t published, committed; /* messages added to rings; those committed */
    uint64_t moves, moves_committed; /* cursor moves; those committed */
    bool trim_backlog;   /* the last batch left rows to delete */
    long long moved_at;  /* when the oldest move not yet committed was made */
    long long retry_at;  /* after a failure: no batch before this */
    int flushing;        /* flushes waiting */
    bool stop;
    bool failing;        /* the last batch failed; fail says why */
    mr_err fail;
    mr_bus_commit_hook hook; /* called before each commit (mr_bus_before_commit) */
    ip_durable *durable, **durable_tail; /* waiting for a commit, in the order queued */
    void *hook_ctx;
    /* The batch in progress: the topics it covers and the counters it brings up to date. */
    ip_topic *snap_topics;
    uint64_t snap_published, snap_moves;
};

static mr_code j_fail(ip_journal *j, const char *doing, mr_err *err)
{
    return mr_err_set(err, MR_EIO, "inproc bus journal %s: %s: %s", j->path, doing, sqlite3_errmsg(j->db));
}

/* Runs a prepared statement that returns no rows, and resets it for the next use. */
static mr_code j_step(ip_journal *j, sqlite3_stmt *st, const char *doing, mr_err *err)
{
    mr_code rc = sqlite3_step(st) == SQLITE_DONE ? MR_OK : j_fail(j, doing, err);
    sqlite3_reset(st);
    return rc;
}

static mr_code j_run(ip_journal *j, int id, const char *doing, mr_err *err)
{
    return j_step(j, j->st[id], doing, err);
}

/* ---- the writer ---- */

/* Takes everything not yet committed into the next batch; called with the mutex held. */
static void take_batch(ip_bus *b)
{
    ip_journal *j = b->journal;
    j->snap_topics = b->topics;
    j->snap_published = j->published;
    j->snap_moves = j->moves;
    j->trim_backlog = false;
    uint64_t inserts = j->published - j->committed;
    uint64_t budget = j->stop ? UINT64_MAX : inserts ? inserts : IP_TRIM_BUDGET;
    for (ip_topic *t = b->topics; t; t = t->next) {
        t->snap_groups = t->groups;
        for (int p = 0; p < t->partitions; p++) {
            ip_part *part = &t->parts[p];
            part->snap_from = part->durable;
            part->snap_to = part->head;
            uint64_t low = UINT64_MAX;
            for (ip_group *g = t->groups; g; g = g->next) {
                ip_cursor *cur = &g->cur[p];
                cur->writing = cur->dirty;
                cur->snap = cur->next;
                cur->dirty = false;
                if (cur->next < low)
                    low = cur->next;
            }
            /* Rows [trimmed, low) are there to delete: the writer inserts whole ranges and
             * deletes from the front. */
            uint64_t n = low != UINT64_MAX && low > part->trimmed ? low - part->trimmed : 0;
            if (n > budget) {
                n = budget;
                j->trim_backlog = true;
            }
            budget -= n;
            part->snap_low = part->trimmed + n;
        }
    }
}

static mr_code write_messages(const ip_bus *b, ip_journal *j, ip_topic *t, int p, mr_err *err)
{
    sqlite3_stmt *st = j->st[J_MSG];
    const ip_part *part = &t->parts[p];
    mr_code rc = MR_OK;
    /* Rings keep these entries in place: neither a producer nor a release touches a slot past
     * part->durable. */
    for (uint64_t seq = part->snap_from; seq < part->snap_to && rc == MR_OK; seq++) {
        const ip_entry *e = Mr_bus_inproc_slot(b, part, seq);
        sqlite3_bind_int64(st, 1, t->id);
        sqlite3_bind_int(st, 2, p);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
        sqlite3_bind_text(st, 4, e->key, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(st, 5, e->len ? e->value : "", e->len, SQLITE_STATIC);
        rc = j_step(j, st, "writing a message", err);
    }
    return rc;
}

static mr_code write_cursors(ip_journal *j, ip_topic *t, int p, mr_err *err)
{
    sqlite3_stmt *st = j->st[J_CURSOR];
    mr_code rc = MR_OK;
    for (ip_group *g = t->snap_groups; g && rc == MR_OK; g = g->next) {
        if (!g->cur[p].writing)
            continue;
        sqlite3_bind_text(st, 1, g->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, t->id);
        sqlite3_bind_int(st, 3, p);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)g->cur[p].snap);
        rc = j_step(j, st, "recording a group's position", err);
    }
    /* Every group is past snap_low and its position is on disk with this commit. */
    const ip_part *part = &t->parts[p];
    if (rc == MR_OK && part->snap_low > part->trimmed) {
        st = j->st[J_TRIM];
        sqlite3_bind_int64(st, 1, t->id);
        sqlite3_bind_int(st, 2, p);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)part->snap_low);
        rc = j_step(j, st, "deleting handled messages", err);
    }
    return rc;
}

static mr_code write_topic(ip_journal *j, ip_topic *t, mr_err *err)
{
    if (t->stored)
        return MR_OK;
    sqlite3_stmt *st = j->st[J_TOPIC];
    sqlite3_bind_int64(st, 1, t->id);
    sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
    return j_step(j, st, "writing a topic", err);
}

/* Truncates the file by free pages; each step of the pragma frees one. */
static mr_code vacuum(ip_journal *j, mr_err *err)
{
    sqlite3_stmt *st = j->st[j->stop ? J_VACUUM_ALL : J_VACUUM];
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    }
    mr_code rc = step == SQLITE_DONE ? MR_OK : j_fail(j, "giving free pages back", err);
    sqlite3_reset(st);
    return rc;
}

/* Writes the batch in one transaction; runs without the mutex. */
static mr_code write_batch(ip_bus *b, mr_err *err)
{
    ip_journal *j = b->journal;
    /* Before the commit: what was written elsewhere ahead of this batch's publishes and
     * acknowledgements must not be lost when they are not. */
    mr_code rc = j->hook ? j->hook(j->hook_ctx, err) : MR_OK;
    if (rc != MR_OK)
        return rc;
    rc = j_run(j, J_BEGIN, "beginning a transaction", err);
    for (ip_topic *t = j->snap_topics; t && rc == MR_OK; t = t->next) {
        rc = write_topic(j, t, err);
        for (int p = 0; p < t->partitions && rc == MR_OK; p++) {
            rc = write_messages(b, j, t, p, err);
            if (rc == MR_OK)
                rc = write_cursors(j, t, p, err);
        }
    }
    /* Only when idle: while messages flow, inserts reuse the free pages. */
    if (rc == MR_OK && j->snap_published == j->committed)
        rc = vacuum(j, err);
    if (rc == MR_OK)
        rc = j_run(j, J_COMMIT, "committing", err);
    if (rc != MR_OK)
        j_run(j, J_ROLLBACK, "rolling back", NULL);
    return rc;
}

/* Publishes the outcome of a batch; called with the mutex held. */
static void finish_batch(ip_bus *b, mr_code rc, const mr_err *err)
{
    ip_journal *j = b->journal;
    bool space = false; /* a producer waits for a slot the batch may have freed */
    for (ip_topic *t = j->snap_topics; t; t = t->next) {
        t->stored |= rc == MR_OK;
        for (int p = 0; p < t->partitions; p++) {
            ip_part *part = &t->parts[p];
            for (ip_group *g = t->snap_groups; g; g = g->next) {
                /* A failed batch leaves its cursors to the next one. */
                g->cur[p].dirty |= rc != MR_OK && g->cur[p].writing;
                g->cur[p].writing = false;
            }
            if (rc != MR_OK)
                continue;
            part->durable = part->snap_to;
            part->trimmed = part->snap_low;
            Mr_bus_inproc_release(b, t, p);
            space |= part->space_waiters > 0;
        }
    }
    long long now = mr_clock_mono_ms();
    if (rc == MR_OK) {
        j->committed = j->snap_published;
        j->moves_committed = j->snap_moves;
        j->moved_at = now;
        j->failing = false;
        if (space) {
            b->space_wakes++;
            pthread_cond_broadcast(&b->space);
        }
    } else {
        j->failing = true;
        j->fail = *err;
        j->retry_at = now + IP_RETRY_MS;
    }
    pthread_cond_broadcast(&j->done);
}

/* Detaches the waiting functions whose messages are committed (all of them when closing);
 * called with the mutex held. Their upto only grows along the list. */
static ip_durable *take_durable(ip_journal *j, bool all)
{
    ip_durable **end = &j->durable;
    while (*end && (all || (*end)->upto <= j->committed))
        end = &(*end)->next;
    if (end == &j->durable)
        return NULL;
    ip_durable *due = j->durable;
    j->durable = *end;
    *end = NULL;
    if (!j->durable)
        j->durable_tail = &j->durable;
    return due;
}

/* Calls and frees what take_durable detached; runs without the mutex. */
static void run_durable(ip_durable *due, bool durable)
{
    for (ip_durable *n; due; due = n) {
        n = due->next;
        due->fn(due->ctx, durable);
        free(due);
    }
}

/* See the top: on two cores this took a millisecond off the embedded pipeline's p99
 * (bench/pipeline/README.md). Without it the journal only costs the consumers more. */
static void writer_yield_to_consumers(const ip_journal *j)
{
    struct sched_param none = {0};
    int e = pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
    if (e != 0)
        mr_log_warn("bus.inproc", "journal %s: its writer thread keeps the normal priority: %s", j->path,
                    strerror(e));
}

static void *writer_main(void *arg)
{
    ip_bus *b = arg;
    mr_thread_name("bus-journal");
    ip_journal *j = b->journal;
    writer_yield_to_consumers(j);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        bool msgs = j->published > j->committed, moves = j->moves > j->moves_committed;
        if (!msgs && !moves && !j->trim_backlog) {
            if (j->stop)
                break;
            pthread_cond_wait(&j->work, &b->mu);
            continue;
        }
        long long at = j->retry_at;
        if (!msgs && !j->flushing && j->moved_at + IP_MOVE_LINGER_MS > at)
            at = j->moved_at + IP_MOVE_LINGER_MS;
        if (!j->stop && at > mr_clock_mono_ms()) {
            Mr_bus_wait(&j->work, &b->mu, at);
            continue;
        }
        take_batch(b);
        pthread_mutex_unlock(&b->mu);
        mr_err err = {0};
        mr_code rc = write_batch(b, &err);
        pthread_mutex_lock(&b->mu);
        finish_batch(b, rc, &err);
        ip_durable *due = rc == MR_OK ? take_durable(j, false) : NULL;
        if (due) {
            pthread_mutex_unlock(&b->mu);
            run_durable(due, true);
            pthread_mutex_lock(&b->mu);
        }
        /* Closing: one last attempt, then what is left is lost like any crash's. */
        if (rc != MR_OK && j->stop)
            break;
    }
    /* What a last failed commit left: never durable now. */
    ip_durable *left = take_durable(j, true);
    pthread_mutex_unlock(&b->mu);
    run_durable(left, false);
    return NULL;
}

void Mr_bus_journal_hook(ip_bus *b, mr_bus_commit_hook fn, void *ctx)
{
    pthread_mutex_lock(&b->mu);
    b->journal->hook = fn;
    b->journal->hook_ctx = ctx;
    pthread_mutex_unlock(&b->mu);
}

/* The writer waits only while nothing is pending (or while moves linger), so only the first
 * message or move after it caught up needs to wake it. */
void Mr_bus_journal_published(ip_bus *b)
{
    ip_journal *j = b->journal;
    if (j->published++ == j->committed)
        pthread_cond_signal(&j->work);
}

void Mr_bus_journal_moved(ip_bus *b, ip_cursor *cur)
{
    ip_journal *j = b->journal;
    cur->dirty = true;
    if (j->moves++ == j->moves_committed) {
        j->moved_at = mr_clock_mono_ms();
        pthread_cond_signal(&j->work);
    }
}

mr_code Mr_bus_journal_flush(ip_bus *b, int timeout_ms, mr_err *err)
{
    ip_journal *j = b->journal;
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    pthread_mutex_lock(&b->mu);
    uint64_t msgs = j->published, moves = j->moves;
    j->flushing++;
    pthread_cond_signal(&j->work);
    bool done = false;
    for (;;) {
        done = j->committed >= msgs && j->moves_committed >= moves;
        if (done || j->failing || !Mr_bus_wait(&j->done, &b->mu, deadline))
            break;
    }
    j->flushing--;
    mr_code rc = MR_OK;
    if (!done && j->failing)
        rc = mr_err_set(err, j->fail.code, "%s", j->fail.msg);
    else if (!done)
        rc = mr_err_set(err, MR_EUNAVAIL, "inproc bus journal %s: not all committed after %d ms", j->path,
                        timeout_ms);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

mr_code Mr_bus_journal_when_durable(ip_bus *b, mr_bus_durable_fn fn, void *ctx, mr_err *err)
{
    ip_journal *j = b->journal;
    ip_durable *d = malloc(sizeof *d);
    if (!d) {
        fn(ctx, false);
        return mr_err_set(err, MR_ENOMEM, "inproc bus journal %s: no memory to wait for a commit", j->path);
    }
    *d = (ip_durable){.fn = fn, .ctx = ctx};
    pthread_mutex_lock(&b->mu);
    d->upto = j->published;
    /* Committed already (or closing, when the writer may have stopped): nothing to wait for. */
    bool now = j->stop || d->upto <= j->committed;
    if (!now) {
        *j->durable_tail = d;
        j->durable_tail = &d->next;
    }
    bool committed = d->upto <= j->committed;
    pthread_mutex_unlock(&b->mu);
    if (now) {
        fn(ctx, committed);
        free(d);
    }
    return MR_OK;
}

mr_code Mr_bus_journal_failure(ip_bus *b, mr_err *err)
{
    ip_journal *j = b->journal;
    pthread_mutex_lock(&b->mu);
    mr_code rc = j->failing ? mr_err_set(err, j->fail.code, "%s", j->fail.msg) : MR_OK;
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* ---- opening and replaying ---- */

/* Creates the file 0600 (and missing parents 0700) before SQLite does, so it never exists with
 * the umask's looser mode (SQLite gives the -wal and -shm files the same mode), and locks it. */
static mr_code create_and_lock(ip_journal *j, mr_err *err)
{
    char dir[PATH_MAX];
    mr_fs_dirname(j->path, dir, sizeof dir);
    mr_code rc = mr_fs_mkdirs(dir, 0700, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "inproc bus journal %s", j->path);
        return rc;
    }
    j->lock_fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (j->lock_fd < 0)
        return mr_err_errno(err, MR_EIO, errno, "inproc bus journal %s: opening", j->path);
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) == 0)
        return MR_OK;
    if (errno == EWOULDBLOCK)
        return mr_err_set(err, MR_EUNAVAIL,
                          "inproc bus journal %s: another bus has it open (one `mindroom run` per "
                          "storage path)",
                          j->path);
    return mr_err_errno(err, MR_EIO, errno, "inproc bus journal %s: locking", j->path);
}

/* Runs one statement that returns a single integer (a pragma, a select). */
static mr_code query_int(ip_journal *j, const char *sql, long long *out, mr_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
        return j_fail(j, "reading the schema", err);
    mr_code rc = MR_OK;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (step != SQLITE_DONE)
        rc = j_fail(j, "reading the schema", err);
    sqlite3_finalize(st);
    return rc;
}

static mr_code setup_schema(ip_journal *j, int partitions, mr_err *err)
{
    sqlite3_busy_timeout(j->db, 5000);
    /* Only a new, empty file takes it, and only before WAL mode writes the header. The first
     * statement to read the file, so what fails here fails at opening it. */
    if (sqlite3_exec(j->db, "PRAGMA auto_vacuum = INCREMENTAL", NULL, NULL, NULL) != SQLITE_OK)
        return j_fail(j, "opening", err);
    long long version = 0, stored = 0;
    char mode[8] = "";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
        return j_fail(j, "setting journal_mode", err);
    mr_code rc = MR_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(mode, sizeof mode, "%s", (const char *)sqlite3_column_text(st, 0));
    else
        rc = j_fail(j, "setting journal_mode", err);
    sqlite3_finalize(st);
    if (rc != MR_OK)
        return rc;
    if (strcmp(mode, "wal") != 0)
        return mr_err_set(err, MR_EIO, "inproc bus journal %s: the file system does not allow WAL mode",
                          j->path);
    rc = query_int(j, "PRAGMA user_version", &version, err);
    if (rc != MR_OK)
        return rc;
    if (version > 1)
        return mr_err_set(err, MR_EINVAL, "inproc bus journal %s: written by a newer version (schema %lld)",
                          j->path, version);
    /* Messages sit on the partition their key had among this many: an empty journal takes the
     * bus's count, one with topics keeps its own. */
    char meta[256];
    snprintf(meta, sizeof meta,
             "INSERT INTO meta(key, value) VALUES('partitions', %d) ON CONFLICT(key) DO UPDATE "
             "SET value = excluded.value WHERE NOT EXISTS (SELECT 1 FROM topics)",
             partitions);
    if (sqlite3_exec(j->db, J_SCHEMA, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(j->db, meta, NULL, NULL, NULL) != SQLITE_OK)
        return j_fail(j, "creating tables", err);
    rc = query_int(j, "SELECT value FROM meta WHERE key = 'partitions'", &stored, err);
    if (rc == MR_OK && stored != partitions)
        rc = mr_err_set(err, MR_EINVAL,
                        "inproc bus journal %s: holds topics of %lld partitions, but the bus option "
                        "partitions is %d; open it with %lld",
                        j->path, stored, partitions, stored);
    for (int i = 0; i < J_NSTMT && rc == MR_OK; i++)
        if (sqlite3_prepare_v3(j->db, J_SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i], NULL) != SQLITE_OK)
            rc = j_fail(j, "preparing a statement", err);
    return rc;
}

static ip_topic *topic_by_id(ip_bus *b, long long id)
{
    for (ip_topic *t = b->topics; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

static mr_code damaged(ip_journal *j, const char *what, long long topic, int p, mr_err *err)
{
    return mr_err_set(err, MR_EIO, "inproc bus journal %s is damaged: %s (topic %lld, partition %d)", j->path,
                      what, topic, p);
}

/* The row's topic and partition; fails when they are not ones the journal knows. */
static mr_code row_place(ip_bus *b, ip_journal *j, sqlite3_stmt *st, int col, ip_topic **t, int *p,
                         mr_err *err)
{
    long long id = sqlite3_column_int64(st, col);
    *p = sqlite3_column_int(st, col + 1);
    *t = topic_by_id(b, id);
    if (!*t || *p < 0 || *p >= (*t)->partitions)
        return damaged(j, "a row names an unknown topic or partition", id, *p, err);
    return MR_OK;
}

static mr_code replay_topic(ip_bus *b, ip_journal *j, sqlite3_stmt *st, ip_topic *unused_t, int unused_p,
                            mr_err *err)
{
    (void)j, (void)unused_t, (void)unused_p;
    ip_topic *t = Mr_bus_inproc_topic(b, (const char *)sqlite3_column_text(st, 1), err);
    if (!t)
        return MR_ENOMEM;
    t->id = sqlite3_column_int64(st, 0);
    t->stored = true;
    if (t->id > b->last_topic_id)
        b->last_topic_id = t->id;
    return MR_OK;
}

/* Messages come in order per partition and without gaps: the writer inserts whole ranges and
 * deletes from the front. Rows every group has passed (a trim not done yet) stay on disk for
 * the writer to delete, but not in the ring. */
static mr_code replay_message(ip_bus *b, ip_journal *j, sqlite3_stmt *st, ip_topic *t, int p, mr_err *err)
{
    size_t cap = b->base.opts.inproc_capacity;
    ip_part *part = &t->parts[p];
    uint64_t seq = (uint64_t)sqlite3_column_int64(st, 2);
    if (part->trimmed == UINT64_MAX)
        part->trimmed = seq;
    uint64_t passed = Mr_bus_inproc_passed(t, p);
    if (passed != UINT64_MAX && seq < passed)
        return MR_OK;
    if (part->head == part->tail)
        part->tail = part->head = seq;
    if (seq != part->head)
        return damaged(j, "messages are missing", t->id, p, err);
    if (part->head - part->tail >= cap)
        return mr_err_set(err, MR_EINVAL,
                          "inproc bus journal %s: holds more than %zu messages of %s[%d], the bus option "
                          "inproc_capacity; open it with a larger one",
                          j->path, cap, t->name, p);
    size_t len = (size_t)sqlite3_column_bytes(st, 4);
    const void *value = sqlite3_column_blob(st, 4);
    char *k = strdup((const char *)sqlite3_column_text(st, 3)), *v = malloc(len + 1);
    if (!k || !v) {
        free(k);
        free(v);
        return mr_err_set(err, MR_ENOMEM, "inproc bus journal %s: no memory for a %zu-byte message", j->path,
                          len);
    }
    if (len)
        memcpy(v, value, len);
    v[len] = '\0';
    if (Mr_bus_inproc_store(b, part, seq, k, v, len, err) != MR_OK) {
        free(k);
        free(v);
        return MR_ENOMEM;
    }
    part->head++;
    return MR_OK;
}

static mr_code replay_cursor(ip_bus *b, ip_journal *j, sqlite3_stmt *st, ip_topic *t, int p, mr_err *err)
{
    (void)j;
    ip_group *g = Mr_bus_inproc_group(b, t, (const char *)sqlite3_column_text(st, 0), err);
    if (!g)
        return MR_ENOMEM;
    g->cur[p].next = (uint64_t)sqlite3_column_int64(st, 3);
    return MR_OK;
}

/* Reads one row; t and p are the topic and partition the row names (NULL and 0 for a row that
 * names none). */
typedef mr_code (*replay_row)(ip_bus *b, ip_journal *j, sqlite3_stmt *st, ip_topic *t, int p, mr_err *err);

/* Runs fn on every row of sql. place_col >= 0 is the column of the topic ID, the partition after
 * it: resolved here, so fn only sees a topic and partition the journal knows. */
static mr_code replay_query(ip_bus *b, ip_journal *j, const char *sql, int place_col, replay_row fn,
                            mr_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK)
        return j_fail(j, "reading", err);
    mr_code rc = MR_OK;
    int step = SQLITE_DONE;
    while (rc == MR_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        ip_topic *t = NULL;
        int p = 0;
        if (place_col >= 0)
            rc = row_place(b, j, st, place_col, &t, &p, err);
        if (rc == MR_OK)
            rc = fn(b, j, st, t, p, err);
    }
    if (rc == MR_OK && step != SQLITE_DONE)
        rc = j_fail(j, "reading", err);
    sqlite3_finalize(st);
    return rc;
}

/* Marks every partition as without rows on disk until replay_message sees one. */
static void replay_prepare(ip_bus *b)
{
    for (ip_topic *t = b->topics; t; t = t->next)
        for (int p = 0; p < t->partitions; p++)
            t->parts[p].trimmed = UINT64_MAX;
}

/* After the rows: a partition without messages continues where its groups are; every group
 * resumes within what the ring holds (one first seen after its messages were deleted starts at
 * the oldest kept, as a new group would). */
static mr_code replay_settle(ip_bus *b, ip_journal *j, mr_err *err)
{
    for (ip_topic *t = b->topics; t; t = t->next) {
        for (int p = 0; p < t->partitions; p++) {
            ip_part *part = &t->parts[p];
            uint64_t far = 0;
            for (ip_group *g = t->groups; g; g = g->next)
                if (g->cur[p].next > far)
                    far = g->cur[p].next;
            if (part->head == part->tail && far > part->head)
                part->tail = part->head = far;
            if (far > part->head)
                return damaged(j, "a group is past the last message", t->id, p, err);
            for (ip_group *g = t->groups; g; g = g->next)
                if (g->cur[p].next < part->tail)
                    g->cur[p].next = part->tail;
            part->durable = part->head;
            if (part->trimmed == UINT64_MAX)
                part->trimmed = part->tail;
        }
    }
    return MR_OK;
}

static mr_code replay(ip_bus *b, ip_journal *j, mr_err *err)
{
    mr_code rc = replay_query(b, j, "SELECT id, name FROM topics ORDER BY id", -1, replay_topic, err);
    if (rc == MR_OK)
        rc = replay_query(b, j, "SELECT grp, topic, part, next FROM cursors", 1, replay_cursor, err);
    if (rc == MR_OK) {
        replay_prepare(b);
        rc = replay_query(b, j, "SELECT topic, part, seq, key, value FROM msgs ORDER BY topic, part, seq", 0,
                          replay_message, err);
    }
    return rc == MR_OK ? replay_settle(b, j, err) : rc;
}

static void journal_free(ip_journal *j)
{
    for (int i = 0; i < J_NSTMT; i++)
        sqlite3_finalize(j->st[i]);
    sqlite3_close(j->db);
    /* Only now: closing any descriptor of the file would drop SQLite's own POSIX locks on it. */
    if (j->lock_fd >= 0)
        close(j->lock_fd);
    pthread_cond_destroy(&j->work);
    pthread_cond_destroy(&j->done);
    free(j);
}

mr_code Mr_bus_journal_open(ip_bus *b, const char *path, mr_err *err)
{
    ip_journal *j = calloc(1, sizeof *j);
    if (!j)
        return mr_err_set(err, MR_ENOMEM, "inproc bus journal %s: no memory", path);
    snprintf(j->path, sizeof j->path, "%s", path);
    j->lock_fd = -1;
    j->durable_tail = &j->durable;
    Mr_bus_cond_init(&j->work);
    Mr_bus_cond_init(&j->done);
    mr_code rc = create_and_lock(j, err);
    /* One thread at a time uses the connection: this one, then the writer. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (rc == MR_OK && sqlite3_open_v2(path, &j->db, flags, NULL) != SQLITE_OK)
        rc = j->db ? j_fail(j, "opening", err)
                   : mr_err_set(err, MR_ENOMEM, "inproc bus journal %s: no memory", path);
    if (rc == MR_OK)
        rc = setup_schema(j, b->base.opts.partitions, err);
    if (rc == MR_OK)
        rc = replay(b, j, err);
    if (rc == MR_OK) {
        /* Set before the writer starts, which reads it; replayed groups and rows are on disk. */
        b->journal = j;
        if (pthread_create(&j->writer, NULL, writer_main, b) == 0)
            j->writer_started = true;
        else
            rc = mr_err_set(err, MR_EINTERNAL, "inproc bus journal %s: cannot start its writer thread", path);
    }
    if (rc != MR_OK) {
        b->journal = NULL;
        journal_free(j);
    }
    return rc;
}

void Mr_bus_journal_close(ip_bus *b)
{
    ip_journal *j = b->journal;
    pthread_mutex_lock(&b->mu);
    j->stop = true;
    pthread_cond_signal(&j->work);
    pthread_mutex_unlock(&b->mu);
    if (j->writer_started)
        pthread_join(j->writer, NULL);
    b->journal = NULL;
    journal_free(j);
}
