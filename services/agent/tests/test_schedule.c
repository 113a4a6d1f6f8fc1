/* test_schedule.c -- when a schedule fires, with the clock passed in: "!schedule" arguments
 * (intervals, calendar phrases, cron fields) in UTC and in New York, and for every other text an
 * error that names what was not understood; cron's next match across the clock changes; and
 * firing on a real store and bus, each occurrence once while two replicas tick side by side and
 * once more after a restart that missed several. Expected instants come from Python's zoneinfo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_schedule.h"
#include "mindroom/bus.h"
#include "mindroom/fsutil.h"
#include "peers.h"

#define T0 1796638530000LL /* Monday 2026-12-07 10:15:30 UTC (05:15:30 in New York) */

static mr_tz *zone(const char *name)
{
    mr_tz *tz = NULL;
    mr_err err = {0};
    if (mr_tz_open(name, &tz, &err) != MR_OK)
        fail_msg("%s: %s", name, err.msg);
    return tz;
}

static schedule_spec parse_in(const char *tzname, const char *text)
{
    schedule_spec s;
    mr_err err = {0};
    mr_tz *tz = zone(tzname);
    mr_code rc = schedule_parse(text, T0, tz, &s, &err);
    mr_tz_free(tz);
    if (rc != MR_OK)
        fail_msg("%s: %s", text, err.msg);
    return s;
}

static void expect_once(const char *text, long long due_ms, const char *when, const char *task)
{
    schedule_spec s = parse_in("UTC", text);
    if (s.due_ms != due_ms || s.repeats || strcmp(s.when, when) != 0 || strcmp(s.task, task) != 0)
        fail_msg("%s: due %lld when '%s' task '%s'", text, s.due_ms, s.when, s.task);
}

static void expect_every(const char *text, long long every_ms, const char *task)
{
    schedule_spec s = parse_in("UTC", text);
    if (s.every_ms != every_ms || s.due_ms != T0 + every_ms || !s.repeats || s.cron.text[0] || strcmp(s.task, task))
        fail_msg("%s: every %lld due %lld task '%s'", text, s.every_ms, s.due_ms, s.task);
}

static void expect_cron(const char *tzname, const char *text, const char *cron, long long due_s, const char *task)
{
    schedule_spec s = parse_in(tzname, text);
    if (strcmp(s.cron.text, cron) != 0 || s.due_ms != due_s * 1000 || s.every_ms || !s.repeats ||
        strcmp(s.task, task) != 0)
        fail_msg("%s: cron '%s' due %lld task '%s'", text, s.cron.text, s.due_ms / 1000, s.task);
}

static void test_intervals(void **state)
{
    (void)state;
    expect_once("in 5 minutes check the deploy", T0 + 300000, "in 300s", "check the deploy");
    expect_once("  IN 1 second  x", T0 + 1000, "in 1s", "x");
    expect_once("in 2h, @coder review", T0 + 7200000, "in 7200s", "@coder review");
    expect_once("in an hour stretch", T0 + 3600000, "in 3600s", "stretch");
    expect_every("every 1 day water the plants", 86400000, "water the plants");
    expect_every("every 90 s poll", 90000, "poll");
    expect_every("Every hour, @shell check server status", 3600000, "@shell check server status");
    expect_every("every 2 weeks, tidy up", 14 * 86400000LL, "tidy up");
    expect_every("every hour,, ,tidy up", 3600000, "tidy up"); /* the tool's "<when>, <task>" of "every hour," */
}

static void test_calendar_phrases(void **state)
{
    (void)state;
    expect_once("tomorrow at 3pm Send the weekly report", 1796742000000LL, "at 2026-12-08 15:00 (UTC)",
                "Send the weekly report");
    expect_once("at 9am stand up", 1796720400000LL, "at 2026-12-08 09:00 (UTC)", "stand up"); /* nine has passed */
    expect_once("today at 5 pm, go home", 1796662800000LL, "at 2026-12-07 17:00 (UTC)", "go home");
    expect_once("tomorrow at noon lunch", 1796731200000LL, "at 2026-12-08 12:00 (UTC)", "lunch");
    expect_once("tomorrow at 12am x", 1796688000000LL, "at 2026-12-08 00:00 (UTC)", "x");
    expect_once("tomorrow at 12:30pm x", 1796733000000LL, "at 2026-12-08 12:30 (UTC)", "x");
    expect_once("today at 23:59 x", 1796687940000LL, "at 2026-12-07 23:59 (UTC)", "x");
    expect_cron("UTC", "Daily at 9am, @finance market report", "0 9 * * *", 1796720400, "@finance market report");
    expect_cron("UTC", "every day at 9am x", "0 9 * * *", 1796720400, "x");
    expect_cron("UTC", "every weekday at 8:30 stand up", "30 8 * * 1-5", 1796718600, "stand up");
    expect_cron("UTC", "Weekly on Friday, @analyst prepare weekly summary", "0 9 * * 5", 1796979600,
                "@analyst prepare weekly summary");
    expect_cron("UTC", "every monday at 10am x", "0 10 * * 1", 1797242400, "x");
    expect_cron("UTC", "every Mondays at 10am x", "0 10 * * 1", 1797242400, "x");
    expect_cron("UTC", "every weekend at 10am x", "0 10 * * 0,6", 1797069600, "x");
    /* In New York it is 05:15 on Monday: today's 08:30 is still to come. */
    expect_cron("America/New_York", "every weekday at 8:30 stand up", "30 8 * * 1-5", 1796650200, "stand up");
    schedule_spec s = parse_in("America/New_York", "tomorrow at 3pm report");
    assert_int_equal(s.due_ms, 1796760000000LL);
    assert_string_equal(s.when, "at 2026-12-08 15:00 (America/New_York)");
    s = parse_in("America/New_York", "every weekday at 8:30 stand up");
    assert_string_equal(s.when, "cron 30 8 * * 1-5 (America/New_York), next 2026-12-07 08:30");
}

static void test_cron_fields(void **state)
{
    (void)state;
    expect_cron("UTC", "30 8 * * 1-5 standup", "30 8 * * 1-5", 1796718600, "standup");
    expect_cron("UTC", "*/15 * * * *, poll", "*/15 * * * *", 1796639400, "poll");
    expect_cron("UTC", "0 9 * JAN,jul MON-fri x", "0 9 * JAN,jul MON-fri", 1798794000, "x");
    expect_cron("UTC", "0 0 13 * 5 x", "0 0 13 * 5", 1796947200, "x");        /* the 13th or a Friday */
    expect_cron("UTC", "0 0 13 * * x", "0 0 13 * *", 1797120000, "x");
    expect_cron("UTC", "0 0 29 2 * leap", "0 0 29 2 *", 1835395200, "leap");
    expect_cron("UTC", "0 0 * * 7 x", "0 0 * * 7", 1797120000, "x");         /* 7 is Sunday */
    expect_cron("UTC", "5/20 10 * * * x", "5/20 10 * * *", 1796639100, "x"); /* 10:05, 10:25, 10:45 */
    expect_cron("UTC", "@daily x", "@daily", 1796688000, "x");
}

static long long next_after(const char *tzname, const char *fields, long long after_s)
{
    cron_expr c;
    size_t used;
    mr_err err = {0};
    if (cron_parse(fields, &c, &used, &err) != MR_OK)
        fail_msg("%s: %s", fields, err.msg);
    mr_tz *tz = zone(tzname);
    long long at = cron_next(&c, tz, after_s);
    mr_tz_free(tz);
    return at;
}

static void test_cron_across_clock_changes(void **state)
{
    (void)state;
    /* 2026-03-08 02:30 never happens in New York: it fires when it would have, read as EST. */
    long long gap = next_after("America/New_York", "30 2 * * *", 1772884800);
    assert_int_equal(gap, 1772955000);
    assert_int_equal(next_after("America/New_York", "30 2 * * *", gap), 1773037800);
    /* 2026-11-01 01:30 happens twice: it fires once, at the first. */
    long long twice = next_after("America/New_York", "30 1 * * *", 1793448000);
    assert_int_equal(twice, 1793511000);
    assert_int_equal(next_after("America/New_York", "30 1 * * *", twice), 1793601000);
    assert_int_equal(next_after("America/New_York", "*/30 * * * *", twice), 1793516400);
    /* Each next is after the one before, a minute apart at most for * * * * *. */
    long long t = T0 / 1000;
    for (int i = 0; i < 100; i++) {
        long long n = next_after("Europe/Berlin", "* * * * *", t);
        assert_true(n > t && n - t <= 60 && n % 60 == 0);
        t = n;
    }
}

static void expect_bad(const char *text, const char *why)
{
    schedule_spec s;
    mr_err err = {0};
    mr_tz *tz = zone("UTC");
    mr_code rc = schedule_parse(text, T0, tz, &s, &err);
    mr_tz_free(tz);
    if (rc != MR_EINVAL)
        fail_msg("%s: accepted (%d), due %lld, task '%s'", text, rc, s.due_ms, rc == MR_OK ? s.task : "");
    if (!strstr(err.msg, why))
        fail_msg("%s: got \"%s\", wanted \"%s\"", text, err.msg, why);
}

static void test_bad_input(void **state)
{
    (void)state;
    expect_bad("", "when is missing: write it as in 5 minutes, every 2 hours, tomorrow at 3pm");
    expect_bad("5 minutes check", "'5 minutes' needs in or every: write in 5 minutes, or every 5 minutes");
    expect_bad("next week report", "'next' is not understood as a time: write it as in 5 minutes");
    expect_bad("soon, x", "'soon' is not understood as a time");
    expect_bad("tomorrow maybe", "say at what time, as in tomorrow at 9am");
    expect_bad("today, x", "say at what time");
    expect_bad("today at 9am x", "09:00 has passed today (UTC): say tomorrow at ..., or a later time");
    expect_bad("in five minutes x", "'five' is not a number");
    expect_bad("in 0 minutes x", "the number must be a whole number from 1 to 1000000");
    expect_bad("in 2000000 seconds x", "the number must be a whole number");
    expect_bad("in 5 fortnights x", "unknown unit 'fortnights'");
    expect_bad("in 5", "the unit is missing");
    expect_bad("in 5 minutes", "the task is missing");
    expect_bad("every 30 seconds x", "a schedule repeats at most once a minute");
    expect_bad("every blue moon x", "unknown unit 'blue'");
    expect_bad("weekly x", "say which day, as in weekly on friday");
    expect_bad("tomorrow at 25:00 x", "'25:00' is not a time of day: hours are 1-12 with am/pm, else 0-23");
    expect_bad("tomorrow at 13pm x", "hours are 1-12 with am/pm");
    expect_bad("tomorrow at 9:5 x", "a time's minutes are two digits, as in 8:30");
    expect_bad("tomorrow at 9o'clock x", "'9o'clock' is not a time of day");
    expect_bad("tomorrow at teatime x", "'teatime' is not a time of day");
    expect_bad("every weekday at 8:30", "the task is missing");
    expect_bad("61 * * * * x", "cron minute '61': 61-61 is outside 0-59");
    expect_bad("0 24 * * * x", "cron hour '24'");
    expect_bad("0 0 0 * * x", "cron day of month '0'");
    expect_bad("0 0 * 13 * x", "cron month '13'");
    expect_bad("0 0 * * 8 x", "cron day of week '8'");
    expect_bad("5-1 * * * * x", "5-1 is outside 0-59 or runs backwards");
    expect_bad("*/0 * * * * x", "cron minute '*/0': a step is a number from 1 to 59");
    expect_bad("1- * * * * x", "a range needs an end");
    expect_bad("1,,2 * * * * x", "cron minute '1,,2': expected a number, '*', a range or a list");
    expect_bad("0 9 * * funday x", "cron day of week 'funday': expected a number or a name");
    expect_bad("0 9 * *", "the day of week is missing");
    expect_bad("0 0 30 2 * x", "never fires: none of its months has a day it names");
    expect_bad("0 0 31 4,6,9,11 * x", "never fires");
    expect_bad("@often x", "cron '@often' is not one of @hourly");
    expect_bad("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25 * * * * x", "is too long");
}

/* ---- firing, on a real store (SQLite) and bus (inproc) ---- */

typedef struct fire_fixture {
    char dir[512];
    mr_runtime *rt;
    mr_bus_consumer *out;
} fire_fixture;

static int fire_setup(void **state)
{
    fire_fixture *f = calloc(1, sizeof *f);
    mr_err err = {0};
    char cfg[600];
    if (!f || mr_tp_mkdtemp("mr-agent-schedule", f->dir, sizeof f->dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(cfg, sizeof cfg, "%s/config.yaml", f->dir);
    const char *yaml = "timezone: America/New_York\n";
    if (mr_fs_write_atomic(cfg, yaml, strlen(yaml), 0600, true, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    unsetenv("MINDROOM_BUS_URL");
    unsetenv("MINDROOM_STORE_URL");
    mr_runtime_opts opts = {.service = "agent", .config_path = cfg, .storage_path = f->dir,
                            .uses = MR_RUNTIME_USES_CONFIG | MR_RUNTIME_USES_BUS | MR_RUNTIME_USES_STORE};
    static const char *const topics[] = {"matrix.outbound"};
    if (mr_runtime_open(&opts, &f->rt, &err) != MR_OK ||
        mr_bus_subscribe(f->rt->bus, "test", topics, 1, &f->out, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    *state = f;
    return 0;
}

static int fire_teardown(void **state)
{
    fire_fixture *f = *state;
    mr_bus_consumer_close(f->out);
    mr_runtime_close(f->rt);
    mr_tp_rmtree(f->dir, NULL);
    free(f);
    return 0;
}

static mr_code count_trigger(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)err;
    if (strstr(m->value, "@Tooly stand up"))
        (*(int *)ctx)++;
    return MR_OK;
}

/* Triggers published since the last look. */
static int triggers(fire_fixture *f)
{
    int n = 0;
    size_t handled;
    mr_err err = {0};
    do {
        handled = 0;
        if (mr_bus_poll(f->out, 0, 100, count_trigger, &n, &handled, &err) != MR_OK)
            fail_msg("poll: %s", err.msg);
    } while (handled > 0);
    return n;
}

typedef struct replica {
    const mr_runtime *rt;
    agent_self self;
    long long now;
} replica;

static void *tick(void *arg)
{
    replica *r = arg;
    schedule_tick(r->rt, &r->self, r->now);
    return NULL;
}

static long long due_of(fire_fixture *f, const char *id)
{
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    if (mr_store_hget(f->rt->store, "agent:schedules", id, &v, &len, &err) != MR_OK)
        fail_msg("schedule %s: %s", id, err.msg);
    json_t *j = json_loads(v, 0, NULL);
    long long due = json_integer_value(json_object_get(j, "due_ms"));
    json_decref(j);
    free(v);
    return due;
}

/* Alice's "stand up" for Tooly in !r, due at due_ms, once. */
static schedule_new standup(long long due_ms)
{
    return (schedule_new){.room_id = "!r:example.org", .router_user = "@router:example.org", .entity = "tooly",
                          .entity_user = "@tooly:example.org", .entity_display = "Tooly",
                          .requester = "@alice:example.org", .task = "stand up", .due_ms = due_ms,
                          .origin = "command|$standup:example.org"};
}

static void test_cron_fires_once_per_occurrence(void **state)
{
    fire_fixture *f = *state;
    mr_err err = {0};
    replica a = {.rt = f->rt}, b = {.rt = f->rt};
    assert_int_equal(worker_self_init("pod-a", &a.self, &err), MR_OK);
    assert_int_equal(worker_self_init("pod-b", &b.self, &err), MR_OK);
    /* Asked for at T0 (05:15 in New York): weekdays at 8:30 there, first today at 13:30Z. */
    mr_tz *tz = NULL;
    schedule_spec spec;
    assert_int_equal(schedule_zone(f->rt, &tz, &err), MR_OK);
    assert_int_equal(schedule_parse("every weekday at 8:30 stand up", T0, tz, &spec, &err), MR_OK);
    mr_tz_free(tz);
    schedule_new n = standup(spec.due_ms);
    n.task = spec.task;
    n.cron = spec.cron.text;
    char id[SCHEDULE_ID_MAX];
    assert_int_equal(schedule_add(f->rt->store, &n, id, &err), MR_OK);
    assert_int_equal(due_of(f, id), 1796650200000LL);

    /* Two replicas tick at the same instants, side by side, for two weeks of minutes around
     * each 8:30: ten weekdays, ten triggers. */
    int fired = 0;
    for (int day = 0; day < 14; day++)
        for (int s = -60; s <= 120; s += 30) {
            long long now = 1796650200000LL + day * 86400000LL + s * 1000LL;
            a.now = b.now = now;
            assert_int_equal(worker_beat(f->rt->store, &a.self, now, &err), MR_OK);
            assert_int_equal(worker_beat(f->rt->store, &b.self, now, &err), MR_OK);
            pthread_t ta, tb;
            assert_int_equal(pthread_create(&ta, NULL, tick, &a), 0);
            assert_int_equal(pthread_create(&tb, NULL, tick, &b), 0);
            pthread_join(ta, NULL);
            pthread_join(tb, NULL);
            fired += triggers(f);
        }
    assert_int_equal(fired, 10);
    /* Next: Monday 2026-12-21 08:30 in New York. */
    assert_int_equal(due_of(f, id), 1797859800000LL);

    /* pod-a restarts after missing Monday to Wednesday: the missed occurrences come as one, and
     * the next is Thursday's. */
    replica a2 = {.rt = f->rt};
    assert_int_equal(worker_self_init("pod-a", &a2.self, &err), MR_OK);
    long long late = 1797859800000LL + 2 * 86400000LL + 3600000LL;
    assert_int_equal(worker_beat(f->rt->store, &a2.self, late, &err), MR_OK);
    schedule_tick(f->rt, &a2.self, late);
    schedule_tick(f->rt, &a2.self, late + 1000);
    assert_int_equal(triggers(f), 1);
    assert_int_equal(due_of(f, id), 1797859800000LL + 3 * 86400000LL);

    /* Back two hours after Thursday's occurrence: past scheduler_catch_up_grace_seconds (3600
     * by default), it is skipped, as the reference does; the next is Friday's. */
    long long thursday = 1797859800000LL + 3 * 86400000LL;
    assert_int_equal(worker_beat(f->rt->store, &a2.self, thursday + 7200000LL, &err), MR_OK);
    schedule_tick(f->rt, &a2.self, thursday + 7200000LL);
    assert_int_equal(triggers(f), 0);
    assert_int_equal(due_of(f, id), thursday + 86400000LL);
}

/* One-time schedules: within the catch-up window a late one still fires; past it, it is dropped
 * unfired, unless a process had begun to send it (that one is finished whatever its age). */
static void test_catch_up_window(void **state)
{
    fire_fixture *f = *state;
    mr_err err = {0};
    agent_self a;
    assert_int_equal(worker_self_init("pod-a", &a, &err), MR_OK);
    schedule_new n = standup(T0);
    char late[SCHEDULE_ID_MAX], stale[SCHEDULE_ID_MAX], begun[SCHEDULE_ID_MAX];
    assert_int_equal(schedule_add(f->rt->store, &n, late, &err), MR_OK);
    n.due_ms = T0 - 3 * 3600000LL;
    n.origin = "command|$stale:example.org";
    assert_int_equal(schedule_add(f->rt->store, &n, stale, &err), MR_OK);
    n.origin = "command|$begun:example.org";
    assert_int_equal(schedule_add(f->rt->store, &n, begun, &err), MR_OK);
    /* begun: a process that died while sending it claimed the occurrence three hours ago. */
    char key[SCHEDULE_ID_MAX + 64];
    snprintf(key, sizeof key, "schedule-fired:%s@%lld", begun, n.due_ms);
    assert_int_equal(mr_store_set(f->rt->store, key, "pod-gone 0123456789abcdef", 25, 3600000, &err), MR_OK);
    long long now = T0 + 30 * 60000LL;
    assert_int_equal(worker_beat(f->rt->store, &a, now, &err), MR_OK);
    schedule_tick(f->rt, &a, now);
    assert_int_equal(triggers(f), 2); /* late (30 minutes) and begun; stale (3 hours) not */
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_hget(f->rt->store, "agent:schedules", stale, &v, &len, &err), MR_ENOTFOUND);
    assert_int_equal(mr_store_hget(f->rt->store, "agent:schedules", late, &v, &len, &err), MR_ENOTFOUND);
    assert_int_equal(mr_store_hget(f->rt->store, "agent:schedules", begun, &v, &len, &err), MR_ENOTFOUND);
}

/* An occurrence this boot began (its send failed) is fired again by it at the next tick, and one
 * whose key names no holder is taken over: neither waits out its 7-day key. */
static void test_own_and_unnamed_firings_are_fired(void **state)
{
    fire_fixture *f = *state;
    mr_err err = {0};
    agent_self a;
    assert_int_equal(worker_self_init("pod-a", &a, &err), MR_OK);
    schedule_new n = standup(T0);
    char own[SCHEDULE_ID_MAX], unnamed[SCHEDULE_ID_MAX], key[SCHEDULE_ID_MAX + 64], mine[HOLDER_MAX];
    assert_int_equal(schedule_add(f->rt->store, &n, own, &err), MR_OK);
    n.origin = "command|$unnamed:example.org";
    assert_int_equal(schedule_add(f->rt->store, &n, unnamed, &err), MR_OK);
    snprintf(key, sizeof key, "schedule-fired:%s@%lld", own, n.due_ms);
    size_t len = holder_format(NULL, &a, mine);
    assert_int_equal(mr_store_set(f->rt->store, key, mine, len, 3600000, &err), MR_OK);
    snprintf(key, sizeof key, "schedule-fired:%s@%lld", unnamed, n.due_ms);
    assert_int_equal(mr_store_set(f->rt->store, key, "1764000000000", 13, 3600000, &err), MR_OK);
    long long now = T0 + 60000LL;
    assert_int_equal(worker_beat(f->rt->store, &a, now, &err), MR_OK);
    schedule_tick(f->rt, &a, now);
    assert_int_equal(triggers(f), 2);
    char *v = NULL;
    assert_int_equal(mr_store_get(f->rt->store, key, &v, &len, &err), MR_OK);
    assert_string_equal(v, "done");
    free(v);
}

/* How many schedules the store holds. */
static size_t schedules_stored(fire_fixture *f)
{
    mr_store_hash all = {0};
    mr_err err = {0};
    assert_int_equal(mr_store_hgetall(f->rt->store, "agent:schedules", &all, &err), MR_OK);
    size_t n = all.count;
    mr_store_hash_free(&all);
    return n;
}

/* A request handled again (its turn redelivered after a crash between the reply and the
 * acknowledgement) adds no second schedule: it finds the one it made, and finishes one whose
 * storing a crash cut short. A malformed origin record is an error, not a new schedule. */
static void test_one_request_adds_one_schedule(void **state)
{
    fire_fixture *f = *state;
    mr_err err = {0};
    schedule_new n = standup(T0);
    char first[SCHEDULE_ID_MAX], again[SCHEDULE_ID_MAX], other[SCHEDULE_ID_MAX], cut[SCHEDULE_ID_MAX];
    assert_int_equal(schedule_add(f->rt->store, &n, first, &err), MR_OK);
    assert_int_equal(schedule_add(f->rt->store, &n, again, &err), MR_OK);
    assert_string_equal(again, first);
    assert_int_equal(schedules_stored(f), 1);
    n.origin = "command|$other:example.org";
    assert_int_equal(schedule_add(f->rt->store, &n, other, &err), MR_OK);
    assert_string_not_equal(other, first);
    assert_int_equal(schedules_stored(f), 2);
    /* Cut short: the ID was taken, the schedule never stored. */
    assert_int_equal(mr_store_set(f->rt->store, "schedule-origin:command|$cut:example.org", "s90 adding", 10, 60000,
                                  &err), MR_OK);
    n.origin = "command|$cut:example.org";
    assert_int_equal(schedule_add(f->rt->store, &n, cut, &err), MR_OK);
    assert_string_equal(cut, "s90");
    assert_int_equal(due_of(f, "s90"), T0);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_get(f->rt->store, "schedule-origin:command|$cut:example.org", &v, &len, &err), MR_OK);
    assert_string_equal(v, "s90");
    free(v);
    assert_int_equal(mr_store_set(f->rt->store, "schedule-origin:command|$bad:example.org", "nonsense", 8, 60000,
                                  &err), MR_OK);
    n.origin = "command|$bad:example.org";
    assert_int_equal(schedule_add(f->rt->store, &n, cut, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "schedule-origin:command|$bad:example.org"));
    assert_int_equal(schedules_stored(f), 3);
}

#define T(name) cmocka_unit_test_setup_teardown(name, fire_setup, fire_teardown)

int main(void)
{
    if (access("/usr/share/zoneinfo/America/New_York", R_OK) != 0 && !getenv("TZDIR")) {
        fprintf(stderr, "tzdata is not installed (/usr/share/zoneinfo): skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intervals),
        cmocka_unit_test(test_calendar_phrases),
        cmocka_unit_test(test_cron_fields),
        cmocka_unit_test(test_cron_across_clock_changes),
        cmocka_unit_test(test_bad_input),
        T(test_cron_fires_once_per_occurrence),
        T(test_catch_up_window),
        T(test_own_and_unnamed_firings_are_fired),
        T(test_one_request_adds_one_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
