/* test_replicas.c -- 1, 2 and 4 mindroom-agent replicas over Redis Streams and over the Kafka
 * mock, store in Redis, with a model stub that takes its time over each answer: every turn is
 * answered once (one message, one model call), each room's answers in the order of its turns
 * (an answer starts only after the one before it finished), and the replicas all answer.
 *
 * agent.turns has one partition, so one replica reads every turn (Kafka gives a partition to one
 * consumer of a group; the Redis bus leases it to one) and the others get work only by taking
 * the waiting turns of a busy replica (share.c). Each case has its own store and bus database
 * (Redis) or mock cluster (Kafka), so nothing of one case is seen by the next. A last case has
 * a replica that died holding a room: its turn is answered before the room's next. */
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_internal.h"
#include "kafka_peer.h"
#include "mindroom/bus.h"
#include "mindroom/clock.h"
#include "mindroom/fsutil.h"
#include "mindroom/store.h"
#include "model_stub_peer.h"
#include "peers.h"
#include "tp_check.h"

#define DEADLINE_MS 180000
#define KEY "sk-replicas-0123456789abcdef"
#define ROOMS 8
#define PER_ROOM 4
#define STALL_MS 300                 /* each answer takes this long at the model */
#define MAX_REPLICAS 4
#define ENTITY "mind"

static const char *const kafka_topics[] = {"agent.turns", "matrix.outbound", "matrix.send_failed"};

typedef struct suite {
    mr_tp_redis redis;
    mr_model_stub stub;
    char dir[512];
    char config[600];
    int cases;                   /* cases run so far: each has its own Redis databases */
} suite;

static suite S;

/* One case: the bus, the agents and what came out. */
typedef struct run {
    mr_tp_kafka kafka;
    bool have_kafka;
    mr_bus *bus;
    mr_bus_consumer *outbound;
    mr_store *store;
    pid_t pids[MAX_REPLICAS];
    char logs[MAX_REPLICAS][600];
    size_t replicas;
    int rooms, per_room;         /* turns: message 0 .. per_room - 1 of rooms 0 .. rooms - 1 */
    json_t *intents;             /* every intent read, in order */
    char prefix[16];             /* of this case's event IDs */
} run;

static const char *str_at(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void event_id(const run *r, int room, int n, char out[64])
{
    snprintf(out, 64, "$%sr%dn%d:example.org", r->prefix, room, n);
}

static void room_id(int room, char out[64])
{
    snprintf(out, 64, "!room%d:example.org", room);
}

/* The turn authz would publish: a person's message in an unmanaged room where only mind is
 * (JSON text the caller frees). */
static char *turn_text(const run *r, int room, int n)
{
    char ev[64], rid[64], body[64];
    event_id(r, room, n, ev);
    room_id(room, rid);
    snprintf(body, sizeof body, "room %d message %d", room, n);
    json_t *turn = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:s, s:I, s:{s:s, s:s}}, s:s, s:[s], s:[s]}", "v", 1,
                             "type", "turn", "room_id", rid, "event", "event_id", ev, "sender",
                             "@alice:example.org", "type", "m.room.message", "origin_server_ts",
                             (json_int_t)1764000000000, "content", "msgtype", "m.text", "body", body, "sender",
                             "@alice:example.org", "allowed_entities", ENTITY, "joined_entities", ENTITY);
    char *text = json_dumps(turn, JSON_COMPACT);
    json_decref(turn);
    assert_non_null(text);
    return text;
}

static void publish_turn(run *r, int room, int n)
{
    char rid[64], *text = turn_text(r, room, n);
    room_id(room, rid);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(r->bus, "agent.turns", rid, text, strlen(text), &err), &err, "publishing a turn");
    free(text);
}

static mr_code on_intent(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    run *r = ctx;
    json_t *i = json_loadb(m->value, m->len, 0, NULL);
    if (!i)
        return mr_err_set(err, MR_EINVAL, "intent is not JSON");
    json_array_append_new(r->intents, i);
    return MR_OK;
}

/* Index in r->intents of the first (or last) intent of the answer to ev, -1 when none. */
static long intent_index(const run *r, const char *ev, bool last)
{
    char prefix[TXN_MAX];
    txn_id(ev, ENTITY, "", -1, prefix);
    long found = -1;
    size_t i;
    json_t *it;
    json_array_foreach(r->intents, i, it) {
        const char *txn = str_at(it, "txn_id");
        if (txn && strncmp(txn, prefix, strlen(prefix)) == 0) {
            found = (long)i;
            if (!last)
                break;
        }
    }
    return found;
}

/* The answer to ev is complete: its last intent turns typing off. */
static bool finished(const run *r, const char *ev)
{
    long at = intent_index(r, ev, true);
    json_t *it = at >= 0 ? json_array_get(r->intents, (size_t)at) : NULL;
    return it && strcmp(str_at(it, "action"), "typing") == 0 && json_is_false(json_object_get(it, "typing"));
}

/* Messages of the answer to ev that are not edits: what a person sees as separate replies (a
 * send repeated under its transaction ID makes no second message). */
static size_t messages_of(const run *r, const char *ev)
{
    char prefix[TXN_MAX];
    txn_id(ev, ENTITY, "", -1, prefix);
    json_t *txns = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(r->intents, i, it) {
        const char *txn = str_at(it, "txn_id");
        if (txn && strncmp(txn, prefix, strlen(prefix)) == 0 && strcmp(str_at(it, "action"), "send") == 0 &&
            !json_object_get(json_object_get(it, "content"), "m.new_content"))
            json_object_set_new(txns, txn, json_true());
    }
    size_t n = json_object_size(txns);
    json_decref(txns);
    return n;
}

static bool all_finished(const run *r)
{
    for (int room = 0; room < r->rooms; room++) {
        for (int n = 0; n < r->per_room; n++) {
            char ev[64];
            event_id(r, room, n, ev);
            if (!finished(r, ev))
                return false;
        }
    }
    return true;
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_tp_redis_start(&S.redis, &err) != MR_OK || mr_model_stub_start(KEY, NULL, &S.stub, &err) != MR_OK ||
        mr_tp_mkdtemp("mr-agent-replicas", S.dir, sizeof S.dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(S.config, sizeof S.config, "%s/config.yaml", S.dir);
    char text[512];
    snprintf(text, sizeof text,
             "models:\n  default: {provider: openai, id: stub-model, host: \"%s\"}\n"
             "agents:\n  mind: {display_name: Mind, role: Personal assistant}\n",
             S.stub.url);
    if (mr_fs_write_atomic(S.config, text, strlen(text), 0600, true, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    setenv("OPENAI_API_KEY", KEY, 1);
    setenv("LOG_LEVEL", "info", 1);
    /* One turn at a time each: what one replica cannot take, another must. */
    setenv("MINDROOM_AGENT_MAX_CONCURRENT_TURNS", "1", 1);
    /* Typing on at once: each answer's intents begin and end with a typing notice. */
    setenv("MINDROOM_AGENT_TYPING_DELAY_MS", "0", 1);
    unsetenv("MINDROOM_NAMESPACE");
    unsetenv("MINDROOM_AGENT_LISTEN");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_code rc = mr_model_stub_stop(&S.stub, &err);
    if (rc != MR_OK)
        fprintf(stderr, "%s\n", err.msg);
    mr_tp_redis_destroy(&S.redis);
    mr_tp_cleanup_dir(S.dir);
    return rc == MR_OK ? 0 : -1;
}

/* Stops every agent still running, and what the case opened; a failed case leaves nothing. */
static void run_end(run *r)
{
    for (size_t i = 0; i < r->replicas; i++)
        mr_tp_stop_if_running(r->pids[i]);
    mr_bus_consumer_close(r->outbound);
    mr_bus_close(r->bus);
    mr_store_close(r->store);
    if (r->have_kafka)
        mr_tp_kafka_destroy(&r->kafka);
    json_decref(r->intents);
}

/* Opens a case's bus (Redis, or a Kafka mock cluster) and store, and scripts the model stub to
 * take its time over each of the case's turns. */
static void case_open(run *r, bool kafka, int rooms, int per_room)
{
    mr_err err = {0};
    int db = ++S.cases;
    snprintf(r->prefix, sizeof r->prefix, "c%d", db);
    r->intents = json_array();
    r->rooms = rooms;
    r->per_room = per_room;
    char bus_url[600], store_url[96];
    /* Database 0 holds nothing: each case's store is database 2c-1 and its Redis bus 2c. */
    snprintf(store_url, sizeof store_url, "redis://127.0.0.1:%d/%d", S.redis.port, 2 * db - 1);
    if (kafka) {
        mr_tp_check_step(mr_tp_kafka_start(&r->kafka, &err), &err, "starting the Kafka mock cluster");
        r->have_kafka = true;
        /* The mock answers no CreateTopics: the topics exist before anyone uses them. */
        for (size_t i = 0; i < sizeof kafka_topics / sizeof *kafka_topics; i++)
            mr_tp_check_step(mr_tp_kafka_topic(&r->kafka, kafka_topics[i], i == 0 ? 1 : 4, &err), &err, kafka_topics[i]);
        snprintf(bus_url, sizeof bus_url, "%s", r->kafka.url);
    } else {
        snprintf(bus_url, sizeof bus_url, "redis://127.0.0.1:%d/%d?partitions=1", S.redis.port, 2 * db);
    }
    mr_tp_check_step(mr_store_open(store_url, NULL, &r->store, &err), &err, "opening the store");
    mr_tp_check_step(mr_bus_open(bus_url, &(mr_bus_options){.client_id = "replicas-test"}, &r->bus, &err), &err,
          "opening the bus");
    mr_tp_check_step(mr_bus_subscribe(r->bus, "replicas-outbound", (const char *const[]){"matrix.outbound"}, 1, &r->outbound,
                           &err),
          &err, "subscribing to matrix.outbound");
    char script[96];
    snprintf(script, sizeof script, "{\"stall_ms\": %d, \"times\": %d}", STALL_MS, rooms * per_room);
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "resetting the model stub");
    mr_tp_check_step(mr_model_stub_script(&S.stub, script, &err), &err, "scripting the model stub");
    setenv("MINDROOM_BUS_URL", bus_url, 1);
    setenv("MINDROOM_STORE_URL", store_url, 1);
}

static void spawn_replicas(run *r, size_t replicas)
{
    mr_err err = {0};
    r->replicas = replicas;
    for (size_t i = 0; i < replicas; i++) {
        char worker[32];
        snprintf(worker, sizeof worker, "replica%zu", i);
        setenv("MINDROOM_WORKER_ID", worker, 1);
        snprintf(r->logs[i], sizeof r->logs[i], "%s/%s-%s.log", S.dir, r->prefix, worker);
        char *argv[] = {getenv("MINDROOM_AGENT_BIN"), "--config", S.config, NULL};
        if (!argv[0])
            fail_msg("MINDROOM_AGENT_BIN unset");
        mr_tp_check_step(mr_tp_spawn(argv, r->logs[i], &r->pids[i], &err), &err, "spawning mindroom-agent");
    }
    unsetenv("MINDROOM_WORKER_ID");
    /* Every replica looks for work before the turns come, so none is late to share them. */
    for (size_t i = 0; i < replicas; i++) {
        char up[48];
        snprintf(up, sizeof up, "worker replica%zu ", i);
        mr_tp_check_step(mr_tp_wait_in_file(r->logs[i], up, 1, DEADLINE_MS, r->pids[i], &err), &err, "a replica starting");
    }
}

/* Reads matrix.outbound until every turn of the case is answered, then stops the replicas and
 * reads what they sent last. */
static void answer_all(run *r)
{
    mr_err err = {0};
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    while (!all_finished(r)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("not every turn was answered in %d s; see %s", DEADLINE_MS / 1000, S.dir);
        for (size_t i = 0; i < r->replicas; i++)
            if (waitpid(r->pids[i], NULL, WNOHANG) == r->pids[i]) {
                r->pids[i] = 0;
                fail_msg("mindroom-agent replica%zu stopped; see %s", i, r->logs[i]);
            }
        size_t handled = 0;
        if (mr_bus_poll(r->outbound, 200, 100, on_intent, r, &handled, &err) != MR_OK)
            fprintf(stderr, "polling matrix.outbound: %s\n", err.msg);
    }
    for (size_t i = 0; i < r->replicas; i++) {
        int status = 0;
        pid_t pid = r->pids[i];
        r->pids[i] = 0;
        mr_tp_check_step(mr_tp_kill_wait(pid, SIGTERM, &status, &err), &err, "stopping mindroom-agent");
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    size_t handled = 1;
    while (handled > 0)
        mr_tp_check_step(mr_bus_poll(r->outbound, 500, 100, on_intent, r, &handled, &err), &err, "polling matrix.outbound");
}

static void run_case(run *r, bool kafka, size_t replicas)
{
    case_open(r, kafka, ROOMS, PER_ROOM);
    spawn_replicas(r, replicas);
    /* Message n of every room, then n + 1: the rooms' turns interleave on the partition. */
    for (int n = 0; n < PER_ROOM; n++)
        for (int room = 0; room < ROOMS; room++)
            publish_turn(r, room, n);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_flush(r->bus, 30000, &err), &err, "flushing the turns");
    answer_all(r);
}

static void expect_once_and_in_order(const run *r)
{
    for (int room = 0; room < r->rooms; room++) {
        long previous_end = -1;
        for (int n = 0; n < r->per_room; n++) {
            char ev[64];
            event_id(r, room, n, ev);
            if (messages_of(r, ev) != 1)
                fail_msg("%s was answered in %zu messages, not one", ev, messages_of(r, ev));
            long start = intent_index(r, ev, false);
            if (start <= previous_end)
                fail_msg("room %d: the answer to %s began before the one before it ended", room, ev);
            previous_end = intent_index(r, ev, true);
        }
    }
    /* One model call per turn: none answered twice, even where a turn moved between replicas. */
    json_t *reqs = NULL;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_requests(&S.stub, &reqs, &err), &err, "the model stub's requests");
    assert_int_equal(json_array_size(reqs), r->rooms * r->per_room);
    json_decref(reqs);
}

static void expect_every_replica_answered(const run *r)
{
    for (size_t i = 0; i < r->replicas; i++)
        if (mr_tp_count_in_file(r->logs[i], "answered") < 1)
            fail_msg("replica%zu answered nothing: the others kept every turn; see %s", i, r->logs[i]);
}

static run R;

/* After each case, passed or failed: no agent, mock cluster or connection is left. */
static int case_teardown(void **state)
{
    (void)state;
    run_end(&R);
    memset(&R, 0, sizeof R);
    return 0;
}

static void replicas_case(bool kafka, size_t replicas)
{
    run_case(&R, kafka, replicas);
    expect_once_and_in_order(&R);
    expect_every_replica_answered(&R);
}

/* A replica died holding a room's lease with a turn of the room still in its record, a minute
 * ago; the room's next turn comes to a live replica. The dead one's turn is answered first: the
 * lease is not taken over while the dead one's record holds a turn of the room, and the replica
 * that adopts that turn takes the lease with it. */
static void dead_holders_turn_first(void)
{
    case_open(&R, false, 1, 2);
    mr_err err = {0};
    char beat[64], rid[64], key[96], *first = turn_text(&R, 0, 0);
    static const char boot[] = "00112233aabbccdd";
    int n = snprintf(beat, sizeof beat, "%s %lld", boot, mr_clock_wall_ms() - 60000);
    mr_tp_check_step(mr_store_hset(R.store, WORKERS_KEY, "gone", beat, (size_t)n, &err), &err, "the dead one's heartbeat");
    mr_tp_check_step(inflight_put(R.store, "gone", "000000000000001.000000000001", first, strlen(first), &err), &err,
          "the dead one's in-flight turn");
    free(first);
    room_id(0, rid);
    snprintf(key, sizeof key, "agent:room:%s", rid);
    n = snprintf(beat, sizeof beat, "started gone %s", boot);
    mr_tp_check_step(mr_store_set(R.store, key, beat, (size_t)n, 0, &err), &err, "the dead one's room lease");
    spawn_replicas(&R, 1);
    publish_turn(&R, 0, 1);
    mr_tp_check_step(mr_bus_flush(R.bus, 30000, &err), &err, "flushing the turn");
    answer_all(&R);
    expect_once_and_in_order(&R);
}

static void test_redis_dead_holders_turn_first(void **state) { (void)state; dead_holders_turn_first(); }
static void test_redis_one(void **state) { (void)state; replicas_case(false, 1); }
static void test_redis_two(void **state) { (void)state; replicas_case(false, 2); }
static void test_redis_four(void **state) { (void)state; replicas_case(false, 4); }
static void test_kafka_one(void **state) { (void)state; replicas_case(true, 1); }
static void test_kafka_two(void **state) { (void)state; replicas_case(true, 2); }
static void test_kafka_four(void **state) { (void)state; replicas_case(true, 4); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_redis_one, case_teardown),
        cmocka_unit_test_teardown(test_redis_two, case_teardown),
        cmocka_unit_test_teardown(test_redis_four, case_teardown),
        cmocka_unit_test_teardown(test_kafka_one, case_teardown),
        cmocka_unit_test_teardown(test_kafka_two, case_teardown),
        cmocka_unit_test_teardown(test_kafka_four, case_teardown),
        cmocka_unit_test_teardown(test_redis_dead_holders_turn_first, case_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
