/* bench_share_scan.c -- what one look for rooms to take costs an idle replica (share_steal, every
 * 250 ms while a turn thread idles) over a busy worker's in-flight record of 256 turns: with the
 * room in each field, beside the same record with fields that name none (an older release's),
 * whose turns are parsed for their room, in the same run and store.
 * Usage: bench_share_scan STORE_URL [ROUNDS]; prints "<without room us> <with room us> <ratio>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent_internal.h"
#include "agent_run.h"
#include "agent_share.h"
#include "mindroom/clock.h"

#define TURNS 256
#define ROOMS 17

/* Every room already has turns here, so a scan looks at every turn and moves none. */
static bool has_every_room(void *ctx, const char *room_id)
{
    (void)ctx;
    (void)room_id;
    return true;
}

static mr_code take_none(void *ctx, const char *value, size_t len, agent_turn *turn, mr_err *err)
{
    (void)ctx;
    (void)value;
    (void)len;
    (void)turn;
    return mr_err_set(err, MR_EINTERNAL, "the bench moves no turn");
}

/* A turn of room i % ROOMS with a 500-byte body, as authz publishes it. */
static char *turn_text(int i, char room[64])
{
    char ev[64], body[501];
    snprintf(ev, sizeof ev, "$bench%d:example.org", i);
    snprintf(room, 64, "!room%d:example.org", i % ROOMS);
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    json_t *turn = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:s, s:I, s:{s:s, s:s}}, s:s, s:[s], s:[s]}", "v", 1,
                             "type", "turn", "room_id", room, "event", "event_id", ev, "sender",
                             "@alice:example.org", "type", "m.room.message", "origin_server_ts",
                             (json_int_t)1764000000000, "content", "msgtype", "m.text", "body", body, "sender",
                             "@alice:example.org", "allowed_entities", "coder", "joined_entities", "coder");
    char *text = turn ? json_dumps(turn, JSON_COMPACT) : NULL;
    json_decref(turn);
    return text;
}

static int fail(const char *what, const mr_err *err)
{
    fprintf(stderr, "bench_share_scan: %s: %s\n", what, err->msg);
    return 1;
}

/* Writes worker's record: TURNS turns, their fields naming the room or not. */
static int fill(mr_store *s, const char *worker, bool with_room, long long now)
{
    mr_err err = {0};
    for (int i = 0; i < TURNS; i++) {
        char field[INFLIGHT_FIELD_MAX], room[64], *v = turn_text(i, room);
        if (!v)
            return fprintf(stderr, "bench_share_scan: out of memory\n"), 1;
        inflight_field(now, (unsigned long long)i, room, field);
        if (!with_room)
            field[INFLIGHT_ORDER_LEN] = '\0';
        mr_code rc = inflight_put(s, worker, field, v, strlen(v), &err);
        free(v);
        if (rc != MR_OK)
            return fail("writing the record", &err);
    }
    return 0;
}

/* Microseconds one share_steal takes while only `busy` beats. */
static int scan_us(mr_store *s, const agent_self *me, const char *busy, const char *other, long long now,
                   int rounds, double *us)
{
    mr_err err = {0};
    char beat[64];
    int n = snprintf(beat, sizeof beat, "0123456789abcdef %lld", now);
    if (mr_store_hdel(s, WORKERS_KEY, other, &err) != MR_OK ||
        mr_store_hset(s, WORKERS_KEY, busy, beat, (size_t)n, &err) != MR_OK)
        return fail("writing the heartbeats", &err);
    const share_ops ops = {.take = take_none, .has_room = has_every_room};
    double start = mr_clock_mono_s();
    for (int r = 0; r < rounds; r++)
        share_steal(s, me, now, 4, &ops);
    *us = (mr_clock_mono_s() - start) / rounds * 1e6;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: bench_share_scan STORE_URL [ROUNDS]\n"), 2;
    int rounds = argc > 2 ? atoi(argv[2]) : 200;
    mr_err err = {0};
    mr_store *s = NULL;
    agent_self me;
    if (mr_store_open(argv[1], NULL, &s, &err) != MR_OK)
        return fail("opening the store", &err);
    if (worker_self_init("bench-idle", &me, &err) != MR_OK)
        return fail("the idle worker", &err);
    long long now = mr_clock_wall_ms();
    double without = 0, with = 0;
    int rc = fill(s, "bench-old", false, now) || fill(s, "bench-new", true, now) ||
             scan_us(s, &me, "bench-old", "bench-new", now, rounds, &without) ||
             scan_us(s, &me, "bench-new", "bench-old", now, rounds, &with);
    if (!rc)
        printf("%.0f %.0f %.2f\n", without, with, without / with);
    mr_store_close(s);
    return rc;
}
